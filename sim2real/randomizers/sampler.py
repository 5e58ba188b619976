"""Sample a SceneSpec for a task from an explicit seed."""

from __future__ import annotations

import numpy as np

from sim2real.sim import shapes
from sim2real.sim.palette import COLORS
from sim2real.sim.robots import ROBOTS
from sim2real.sim.scene_spec import (
    CameraSpec,
    LightSpec,
    MaterialSpec,
    ObjectSpec,
    RobotSpec,
    SceneSpec,
)
from sim2real.sim.tasks import DEFAULT_SIZES, SHAPE_NOUNS, ObjectRole, Task, make_task

DEFAULT_CAMERAS = (
    CameraSpec("front", "world", pos=(1.25, 0.3, 0.65), lookat=(0.3, 0.0, 0.12), fovy=50.0),
    CameraSpec("wrist", "hand", pos=(0.1, 0.0, 0.0), lookat=(0.0, 0.0, 0.18), fovy=80.0),
)
DEFAULT_LIGHTS = (
    LightSpec("directional", pos=(0.5, 0.5, 2.0), direction=(-0.3, -0.3, -1.0)),
    LightSpec("point", pos=(1.0, 1.0, 1.5), diffuse=(0.3, 0.3, 0.3), ambient=(0.1, 0.1, 0.1)),
)
PLACEMENT_MARGIN = 0.02  # m between footprints
MAX_PLACEMENT_TRIES = 200


class PlacementError(RuntimeError):
    """No collision-free placement was found within the tries allowed."""


def episode_rng(seed: int, *stream: int) -> np.random.Generator:
    """Independent generator for (seed, stream...) — the same whatever order scenes are drawn in."""
    return np.random.default_rng(np.random.SeedSequence([seed, *stream]))


def place_objects(
    rng: np.random.Generator, footprints: list[tuple[float, tuple[tuple[float, float], tuple[float, float]]]]
) -> list[tuple[float, float]]:
    """Rejection-sample (x, y) per (radius, region) so that no two footprints overlap."""
    placed: list[tuple[float, float, float]] = []
    for radius, ((x0, x1), (y0, y1)) in footprints:
        for _ in range(MAX_PLACEMENT_TRIES):
            x, y = rng.uniform(x0, x1), rng.uniform(y0, y1)
            if all(np.hypot(x - px, y - py) > radius + pr + PLACEMENT_MARGIN for px, py, pr in placed):
                placed.append((x, y, radius))
                break
        else:
            raise PlacementError(f"no free spot for an object of radius {radius:.3f} m in region {(x0, x1), (y0, y1)}")
    return [(x, y) for x, y, _ in placed]


def _choose_colors(rng: np.random.Generator, task: Task, randomize: bool) -> list[str]:
    chosen: list[str] = []
    for role in task.roles:
        options = [c for c in role.colors if c not in chosen] if randomize else [role.colors[0]]
        chosen.append(str(options[rng.integers(len(options))]))
    return chosen


def _object(role: ObjectRole, shape: str, color: str, rgba: tuple, xy: tuple[float, float], yaw: float) -> ObjectSpec:
    return ObjectSpec(
        name=role.key, role=role.role, shape=shape, size=DEFAULT_SIZES[shape], color=color,
        material=MaterialSpec(rgba=rgba, specular=0.3, shininess=0.3), pos=(float(xy[0]), float(xy[1]), 0.0),
        yaw=float(yaw), mass=role.mass, friction=1.0, static=role.static,
    )  # fmt: skip


def sample_scene(task_name: str, seed: int, split: str = "train", randomize_objects: bool = True) -> SceneSpec:
    """A SceneSpec for ``task_name`` drawn from ``seed`` alone."""
    task = make_task(task_name)
    rng = episode_rng(seed, 0)
    colors = _choose_colors(rng, task, randomize_objects)
    chosen_shapes = [str(role.shapes[rng.integers(len(role.shapes))]) if randomize_objects else role.shapes[0]
                     for role in task.roles]  # fmt: skip
    footprints = [
        (shapes.footprint_radius(s, DEFAULT_SIZES[s]), r.region)
        for r, s in zip(task.roles, chosen_shapes, strict=False)
    ]
    positions = place_objects(rng, footprints)
    objects = tuple(
        _object(role, shape, color, COLORS.get(color).sample_rgba(rng, heldout=False), xy, rng.uniform(-np.pi, np.pi))
        for role, shape, color, xy in zip(task.roles, chosen_shapes, colors, positions, strict=False)
    )
    params = task.task_params(int(rng.integers(1 << 16)))
    fields = {
        role.key: f"{color} {SHAPE_NOUNS[shape]}"
        for role, shape, color in zip(task.roles, chosen_shapes, colors, strict=False)
    }
    fields.update({k: str(v) for k, v in params.items()})
    templates = task.train_templates()
    instruction = templates[rng.integers(len(templates))].format(**fields)
    robot = ROBOTS.get("panda")
    return SceneSpec(
        task=task.name, instruction=instruction, robot=RobotSpec("panda", robot.home, 1.0), objects=objects,
        lights=DEFAULT_LIGHTS, cameras=DEFAULT_CAMERAS, task_params=params, split=split, seed=seed,
    )  # fmt: skip
