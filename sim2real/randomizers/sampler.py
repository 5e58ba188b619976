"""``sample_scene(task, seed, config, split) -> SceneSpec``: pure sampling from explicit seeds.

Each factor draws from its own generator, derived from ``(seed, factor stream)`` with
``numpy.random.SeedSequence``, so a scene depends only on its seed (not on the worker, the
order of sampling, or which other factors are enabled).
"""

from __future__ import annotations

import colorsys
from dataclasses import replace

import numpy as np

from sim2real.contracts import cell
from sim2real.contracts.seeds import derived_rng
from sim2real.randomizers import splits
from sim2real.randomizers.config import RandomizationConfig
from sim2real.randomizers.distributions import Distribution
from sim2real.sim import shapes
from sim2real.sim.palette import COLORS
from sim2real.sim.robots import ROBOTS
from sim2real.sim.scene_spec import (
    CameraSpec,
    DynamicsSpec,
    LightSpec,
    MaterialSpec,
    ObjectSpec,
    RobotSpec,
    SceneSpec,
    SensorNoiseSpec,
    SurfacesSpec,
    TextureSpec,
)
from sim2real.sim.tasks import DEFAULT_SIZES, SHAPE_NOUNS, ObjectRole, Task, make_task

FRONT_CAMERA = CameraSpec("front", "world", pos=(1.25, 0.3, 0.65), lookat=(0.3, 0.0, 0.12), fovy=50.0)
WRIST_CAMERA = CameraSpec("wrist", "hand", pos=(0.1, 0.0, 0.0), lookat=(0.0, 0.0, 0.18), fovy=80.0)
DEFAULT_CAMERAS = (FRONT_CAMERA, WRIST_CAMERA)
DISTRACTOR_REGION = ((0.32, 0.66), (-0.3, 0.3))
PLACEMENT_MARGIN = 0.02  # m between footprints
MAX_PLACEMENT_TRIES = 200

# One generator stream per factor.
STREAMS = {
    "objects": 1, "placement": 2, "lighting": 3, "textures": 4, "materials": 5, "camera": 6,
    "robot": 7, "distractors": 8, "dynamics": 9, "sensor_noise": 10, "instruction": 11, "object_dynamics": 12,
}  # fmt: skip


class PlacementError(RuntimeError):
    """No collision-free placement was found within the tries allowed."""


def _rng(seed: int, factor: str) -> np.random.Generator:
    """The generator of ``factor`` for the scene of ``seed``: the same whatever order scenes are drawn in."""
    return derived_rng(seed, STREAMS[factor])


def kelvin_to_rgb(kelvin: float) -> tuple[float, float, float]:
    """Approximate RGB (each in [0, 1]) of a black body at ``kelvin`` (1000-40000 K)."""
    t = np.clip(kelvin, 1000.0, 40000.0) / 100.0
    red = 1.0 if t <= 66 else 1.292936186 * (t - 60) ** -0.1332047592
    green = 0.390081579 * np.log(t) - 0.631841444 if t <= 66 else 1.129890861 * (t - 60) ** -0.0755148492
    blue = 1.0 if t >= 66 else (0.0 if t <= 19 else 0.543206789 * np.log(t - 10) - 1.196254089)
    return tuple(float(np.clip(c, 0.0, 1.0)) for c in (red, green, blue))  # type: ignore[return-value]


def place_objects(
    rng: np.random.Generator,
    footprints: list[tuple[float, tuple[tuple[float, float], tuple[float, float]]]],
    placed: list[tuple[float, float, float]] | None = None,
    required: bool = True,
) -> list[tuple[float, float] | None]:
    """Rejection-sample (x, y) per (radius, region) so that no two footprints overlap.
    With ``required=False`` an object that does not fit gets ``None`` instead of an error."""
    placed = placed if placed is not None else []
    result: list[tuple[float, float] | None] = []
    for radius, ((x0, x1), (y0, y1)) in footprints:
        for _ in range(MAX_PLACEMENT_TRIES):
            x, y = float(rng.uniform(x0, x1)), float(rng.uniform(y0, y1))
            if all(np.hypot(x - px, y - py) > radius + pr + PLACEMENT_MARGIN for px, py, pr in placed):
                placed.append((x, y, radius))
                result.append((x, y))
                break
        else:
            if required:
                raise PlacementError(f"no free spot for an object of radius {radius:.3f} m in {(x0, x1), (y0, y1)}")
            result.append(None)
    return result


def _int(dist: Distribution, rng: np.random.Generator) -> int:
    return round(float(dist.sample(rng)))


def _texture(rng: np.random.Generator, family_dist: Distribution, scale: Distribution, heldout: bool,
             rgb1: tuple[float, float, float]) -> TextureSpec:  # fmt: skip
    family = str(splits.HELDOUT_TEXTURE_FAMILIES.sample(rng) if heldout else family_dist.sample(rng))
    low, high = splits.HELDOUT_TEXTURE_SEEDS if heldout else splits.TRAIN_TEXTURE_SEEDS
    shade = float(rng.uniform(0.5, 0.8))
    rgb2 = tuple(float(c * shade) for c in rgb1)
    return TextureSpec(family, rgb1, rgb2, float(scale.sample(rng)), int(rng.integers(low, high)))  # type: ignore[arg-type]


def _material(
    rng: np.random.Generator, config: RandomizationConfig, rgba: tuple, textured: bool, heldout: bool
) -> MaterialSpec:
    m = config.materials
    texture = (
        _texture(rng, config.textures.families, config.textures.scale, heldout, tuple(rgba[:3])) if textured else None
    )
    return MaterialSpec(
        rgba=tuple(float(c) for c in rgba),  # type: ignore[arg-type]
        specular=float(m.specular.sample(rng)), shininess=float(m.shininess.sample(rng)),
        reflectance=float(m.reflectance.sample(rng)), texture=texture,
    )  # fmt: skip


def _surfaces(seed: int, config: RandomizationConfig, split: str) -> SurfacesSpec:
    rng = _rng(seed, "textures")
    nominal = SurfacesSpec()
    heldout = split == "textures"
    surfaces = {}
    for name in cell.SURFACES:
        base: MaterialSpec = getattr(nominal, name)
        hue = float(config.materials.surface_hue_deg.sample(rng))
        rgba = base.rgba
        if hue >= 0:
            rgb = colorsys.hsv_to_rgb((hue % 360) / 360, config.materials.surface_saturation.sample(rng),
                                      config.materials.surface_value.sample(rng))  # fmt: skip
            rgba = (*rgb, 1.0)
        textured = heldout or rng.random() < config.textures.surface_probability
        surfaces[name] = _material(rng, config, rgba, textured, heldout)
    return SurfacesSpec(**surfaces)


def _lights(seed: int, config: RandomizationConfig, split: str) -> tuple[LightSpec, ...]:
    rng = _rng(seed, "lighting")
    lc = config.lighting
    count = int(np.clip(_int(lc.num_lights, rng), 1, 4))
    intensity_dist = splits.HELDOUT_LIGHT_INTENSITY if split == "lighting" else lc.intensity
    temperature_dist = splits.HELDOUT_COLOR_TEMPERATURE if split == "lighting" else lc.color_temperature_k
    lights = []
    for index in range(count):
        azimuth = rng.uniform(-np.pi, np.pi) if index else rng.uniform(-np.pi / 3, np.pi / 3)
        elevation = np.deg2rad(lc.elevation_deg.sample(rng))
        distance = lc.distance.sample(rng)
        offset = distance * np.array([np.cos(elevation) * np.cos(azimuth), np.cos(elevation) * np.sin(azimuth),
                                      np.sin(elevation)])  # fmt: skip
        pos = np.asarray(cell.WORKSPACE_CENTER) + offset
        color = np.array(kelvin_to_rgb(temperature_dist.sample(rng)))
        diffuse = color * intensity_dist.sample(rng) / np.sqrt(count)
        lights.append(
            LightSpec(
                type=str(lc.light_type.sample(rng)) if index else "directional",
                pos=tuple(float(v) for v in pos), direction=tuple(float(v) for v in -offset / distance),
                diffuse=tuple(float(v) for v in diffuse), specular=(float(lc.specular.sample(rng)),) * 3,
                ambient=(float(lc.ambient.sample(rng)),) * 3 if index == 0 else (0.0, 0.0, 0.0),
                cutoff_deg=float(lc.spot_cutoff_deg.sample(rng)), castshadow=bool(rng.random() < lc.shadow_probability),
            )  # type: ignore[arg-type]
        )  # fmt: skip
    return tuple(lights)


def _cameras(seed: int, config: RandomizationConfig, split: str) -> tuple[CameraSpec, ...]:
    rng = _rng(seed, "camera")
    pc = config.poses
    heldout = split == "camera"
    jitter = (splits.HELDOUT_CAMERA_JITTER if heldout else pc.camera_position_jitter).sample(rng)
    direction = rng.normal(size=3)
    direction /= np.linalg.norm(direction)
    lookat_offset = rng.normal(size=3)
    lookat_offset *= pc.camera_lookat_jitter.sample(rng) / np.linalg.norm(lookat_offset)
    front = replace(
        FRONT_CAMERA,
        pos=tuple(float(v) for v in np.asarray(FRONT_CAMERA.pos) + direction * jitter),
        lookat=tuple(float(v) for v in np.asarray(FRONT_CAMERA.lookat) + lookat_offset),
        roll=float((splits.HELDOUT_CAMERA_ROLL if heldout else pc.camera_roll).sample(rng)),
        fovy=float((splits.HELDOUT_CAMERA_FOVY if heldout else pc.camera_fovy).sample(rng)),
    )  # type: ignore[arg-type]
    wrist_offset = rng.normal(size=3) * 0.002 * (jitter > 0)
    wrist = replace(WRIST_CAMERA, pos=tuple(float(v) for v in np.asarray(WRIST_CAMERA.pos) + wrist_offset))  # type: ignore[arg-type]
    return (front, wrist)


def _task_objects(
    seed: int, task: Task, config: RandomizationConfig, split: str
) -> tuple[list[ObjectSpec], dict[str, str]]:
    rng = _rng(seed, "objects")
    heldout = split == "objects"
    colors: list[str] = []
    chosen: list[tuple[ObjectRole, str]] = []
    for role in task.roles:
        options = [c for c in role.colors if c not in colors] if config.objects.randomize_colors else [role.colors[0]]
        colors.append(str(options[int(rng.integers(len(options)))]))
        shape_options = role.heldout_shapes if heldout and role.heldout_shapes else role.shapes
        if not config.objects.randomize_shapes and not (heldout and role.heldout_shapes):
            shape_options = role.shapes[:1]
        chosen.append((role, str(shape_options[int(rng.integers(len(shape_options)))])))
    placement = _rng(seed, "placement")
    footprints = [(shapes.footprint_radius(s, DEFAULT_SIZES[s]), role.region) for role, s in chosen]
    positions = place_objects(placement, footprints)
    dynamics = _rng(seed, "object_dynamics")
    mass_scale = float(config.dynamics.mass_scale.sample(dynamics))
    objects = []
    for (role, shape), color, xy in zip(chosen, colors, positions, strict=True):
        assert xy is not None
        rgba = COLORS.get(color).sample_rgba(rng, heldout=heldout) if config.objects.randomize_colors or heldout else (
            COLORS.get(color).canonical_rgba())  # fmt: skip
        textured = rng.random() < config.textures.object_probability
        objects.append(ObjectSpec(
            name=role.key, role=role.role, shape=shape, size=DEFAULT_SIZES[shape], color=color,
            material=_material(rng, config, rgba, textured, heldout=False),
            pos=(xy[0], xy[1], 0.0), yaw=float(config.objects.yaw.sample(rng)),
            mass=role.mass * mass_scale, friction=float(config.dynamics.friction.sample(dynamics)), static=role.static,
        ))  # fmt: skip
    fields = {role.key: f"{color} {SHAPE_NOUNS[shape]}" for (role, shape), color in zip(chosen, colors, strict=True)}
    return objects, fields


def _distractors(seed: int, config: RandomizationConfig, split: str, objects: list[ObjectSpec]) -> list[ObjectSpec]:
    rng = _rng(seed, "distractors")
    heldout = split == "distractors"
    count = _int(splits.HELDOUT_DISTRACTOR_COUNT if heldout else config.distractors.count, rng)
    shape_dist = splits.HELDOUT_DISTRACTOR_SHAPES if heldout else config.distractors.shapes
    used_colors = {o.color for o in objects}
    free_colors = [c for c in COLORS.names() if c not in used_colors]
    placed = [(o.pos[0], o.pos[1], shapes.footprint_radius(o.shape, o.size)) for o in objects]
    result = []
    for index in range(count):
        shape = str(shape_dist.sample(rng))
        color = free_colors[int(rng.integers(len(free_colors)))]
        size = DEFAULT_SIZES[shape]
        (xy,) = place_objects(rng, [(shapes.footprint_radius(shape, size), DISTRACTOR_REGION)], placed, required=False)
        if xy is None:
            continue
        result.append(ObjectSpec(
            name=f"distractor{index}", role="distractor", shape=shape, size=size, color=color,
            material=_material(rng, config, COLORS.get(color).sample_rgba(rng, heldout=False), False, False),
            pos=(xy[0], xy[1], 0.0), yaw=float(rng.uniform(-np.pi, np.pi)), mass=0.05, friction=1.0,
        ))  # fmt: skip
    return result


def _robot(seed: int, config: RandomizationConfig) -> RobotSpec:
    rng = _rng(seed, "robot")
    robot = ROBOTS.get("panda")
    limits = np.asarray(robot.joint_limits)
    joints = np.asarray(robot.home) + rng.normal(0.0, config.poses.robot_joint_noise_std, robot.num_joints)
    joints = np.clip(joints, limits[:, 0] + 0.05, limits[:, 1] - 0.05)
    return RobotSpec("panda", tuple(float(q) for q in joints), 1.0)


def _dynamics(seed: int, config: RandomizationConfig) -> tuple[DynamicsSpec, SensorNoiseSpec]:
    rng = _rng(seed, "dynamics")
    dc = config.dynamics
    dynamics = DynamicsSpec(
        joint_damping_scale=float(dc.joint_damping_scale.sample(rng)),
        actuator_gain_scale=float(dc.actuator_gain_scale.sample(rng)),
        action_latency_steps=_int(dc.action_latency_steps, rng),
    )
    noise_rng = _rng(seed, "sensor_noise")
    nc = config.sensor_noise
    noise = SensorNoiseSpec(
        image_noise_std=float(nc.image_noise_std.sample(noise_rng)),
        blur_sigma=float(nc.blur_sigma.sample(noise_rng)),
        jpeg_quality=_int(nc.jpeg_quality, noise_rng) if noise_rng.random() < nc.jpeg_probability else 0,
        state_noise_std=float(nc.state_noise_std.sample(noise_rng)),
        seed=int(noise_rng.integers(2**31)),
    )
    return dynamics, noise


def sample_scene(
    task_name: str, seed: int, config: RandomizationConfig | None = None, split: str = "train"
) -> SceneSpec:
    """A SceneSpec for ``task_name`` drawn from ``seed`` alone (default config: preset ``none``)."""
    splits.check_split(split)
    config = config or RandomizationConfig()
    task = make_task(task_name)
    objects, fields = _task_objects(seed, task, config, split)
    objects += _distractors(seed, config, split, objects)
    rng = _rng(seed, "instruction")
    params = task.task_params(int(rng.integers(1 << 16)))
    fields.update({k: str(v) for k, v in params.items()})
    templates = task.heldout_templates() if split == "instructions" else task.train_templates()
    instruction = templates[int(rng.integers(len(templates)))].format(**fields)
    dynamics, noise = _dynamics(seed, config)
    return SceneSpec(
        task=task.name, instruction=instruction, robot=_robot(seed, config), objects=tuple(objects),
        lights=_lights(seed, config, split), cameras=_cameras(seed, config, split),
        surfaces=_surfaces(seed, config, split), dynamics=dynamics, sensor_noise=noise,
        task_params=params, split=split, seed=seed,
    )  # fmt: skip
