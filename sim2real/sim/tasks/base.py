"""The task contract: objects by role, instruction templates, a success predicate, and the
milestones on the way to success (what an evaluation's failure breakdown counts)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from sim2real.registry import Registry
from sim2real.sim.backend import PrivilegedState
from sim2real.sim.scene_spec import SceneSpec

#: Words for shapes in instructions.
SHAPE_NOUNS = {
    "cube": "cube", "block": "block", "cylinder": "cylinder", "sphere": "ball", "capsule": "capsule",
    "ellipsoid": "egg", "hex_prism": "hexagonal prism", "tri_prism": "triangular prism",
    "bowl": "bowl", "disc": "target",
}  # fmt: skip

#: Default half-extents (m) per shape for task objects. The ellipsoid (an egg) lies on its side
#: with its shortest semi-axis vertical, the one resting pose in which a touch does not tip it:
#: stood on end (semi-axes 2.2 x 2.2 x 2.8 cm) it topples and rolls off before the robot moves.
DEFAULT_SIZES: dict[str, tuple[float, ...]] = {
    "cube": (0.02,), "block": (0.025, 0.025, 0.018), "cylinder": (0.024, 0.024), "sphere": (0.022,),
    "capsule": (0.018, 0.012), "ellipsoid": (0.022, 0.028, 0.02), "hex_prism": (0.024, 0.022),
    "tri_prism": (0.028, 0.022), "bowl": (0.075, 0.03), "disc": (0.045, 0.001),
}  # fmt: skip


@dataclass(frozen=True)
class ObjectRole:
    """One object a task needs. ``shapes`` / ``colors``: training choices (the first is the
    canonical one); ``heldout_shapes``: shapes only used by the held-out ``objects`` split;
    ``region``: placement box ((x_low, x_high), (y_low, y_high)) in m."""

    key: str
    role: str
    shapes: tuple[str, ...]
    colors: tuple[str, ...]
    region: tuple[tuple[float, float], tuple[float, float]]
    heldout_shapes: tuple[str, ...] = ()
    static: bool = False
    mass: float = 0.05


class Task(ABC):
    """A language-conditioned manipulation task.

    Subclasses set ``name``, ``roles``, ``templates`` (instruction paraphrases with
    ``{role_key}`` fields; the last ``num_heldout_templates`` are reserved for the
    held-out ``instructions`` split) and ``max_steps`` (control steps), and define
    :meth:`success` on privileged state. ``milestones`` names the stages on the way to
    success, in order, and :meth:`milestones_reached` says how many of them a state shows; an
    evaluation records the furthest one each episode reached, so its failures break down by
    stage ("reached the object but never lifted it").
    """

    name: ClassVar[str]
    roles: ClassVar[tuple[ObjectRole, ...]]
    templates: ClassVar[tuple[str, ...]]
    num_heldout_templates: ClassVar[int] = 3
    max_steps: ClassVar[int] = 100
    milestones: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def train_templates(cls) -> tuple[str, ...]:
        return cls.templates[: -cls.num_heldout_templates]

    @classmethod
    def heldout_templates(cls) -> tuple[str, ...]:
        return cls.templates[-cls.num_heldout_templates :]

    def task_params(self, rng_choice: int) -> dict[str, object]:
        """Task-specific discrete choices, indexed by an integer drawn by the sampler."""
        return {}

    @abstractmethod
    def success(self, state: PrivilegedState, scene: SceneSpec) -> bool:
        """Whether the task is achieved in ``state``."""

    def milestones_reached(self, state: PrivilegedState, scene: SceneSpec, initial: PrivilegedState) -> int:
        """How many of ``milestones`` (0..len) ``state`` has passed, ``initial`` being the
        state at the episode's start."""
        return 0

    @staticmethod
    def object_name(role: ObjectRole, color: str, shape: str) -> str:
        return f"{color}_{shape}"


#: m: the TCP is "at" an object within this distance of the object's centre
REACH_DISTANCE = 0.03
#: m: an object is lifted this far above where it started
LIFT_HEIGHT = 0.03
#: m: a held object's centre stays this close to the TCP
IN_HAND_DISTANCE = 0.045


def pick_and_place_milestones(
    state: PrivilegedState, initial: PrivilegedState, obj: str, target_xy: np.ndarray, target_radius: float
) -> int:
    """Milestones of a pick-and-place: 1 ``reached`` (TCP at the object), 2 ``lifted`` (the
    object up by ``LIFT_HEIGHT`` and in the hand), 3 ``over_target`` (the object's centre within
    ``target_radius`` m of ``target_xy`` (2,) in xy); a later one counts only with the earlier."""
    pos = state.objects[obj].pos
    distance = np.linalg.norm(state.ee_pos - pos)
    held = pos[2] - initial.objects[obj].pos[2] > LIFT_HEIGHT and distance < IN_HAND_DISTANCE
    if not held:
        return int(distance < REACH_DISTANCE)
    return 3 if np.hypot(*(pos[:2] - target_xy)) < target_radius else 2


TASKS: Registry[type[Task]] = Registry("task")


def make_task(name: str) -> Task:
    return TASKS.get(name)()
