"""The simulator backend protocol and the backend registry (loaded lazily by name).

A backend builds and resets a scene from a :class:`SceneSpec`, executes the 7-D
end-effector delta action, and returns observations and privileged state. Importing this
module never imports a simulator.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from sim2real.registry import Registry
from sim2real.sim.control import ControllerConfig
from sim2real.sim.scene_spec import SceneSpec


@dataclass(frozen=True)
class ObjectState:
    """World pose of an object's centre: ``pos`` (3,) m, ``quat`` (4,) wxyz, ``linvel`` (3,) m/s."""

    pos: np.ndarray
    quat: np.ndarray
    linvel: np.ndarray


@dataclass(frozen=True)
class PrivilegedState:
    """Simulator ground truth used by task predicates and scripted experts.

    ``ee_pos`` (3,) m and ``ee_mat`` (3, 3) are the TCP pose (z up when the gripper points
    down); ``gripper_opening`` is the finger distance (m); ``joint_positions`` (n,) rad;
    ``contacts`` lists pairs of touching bodies by scene name (``robot``, ``table``, objects);
    ``robot_contact_force`` is the largest contact normal force on the robot and
    ``robot_table_force`` the largest between robot and table (N).
    """

    ee_pos: np.ndarray
    ee_mat: np.ndarray
    gripper_opening: float
    gripper_max_opening: float
    joint_positions: np.ndarray
    objects: Mapping[str, ObjectState]
    contacts: frozenset[tuple[str, str]] = field(default_factory=frozenset)
    robot_contact_force: float = 0.0
    robot_table_force: float = 0.0
    time: float = 0.0

    def touching(self, a: str, b: str) -> bool:
        return (a, b) in self.contacts or (b, a) in self.contacts


@dataclass(frozen=True)
class BackendConfig:
    """Options every backend understands. Rates in Hz; ``shadows`` globally enables the
    shadows that lights request (they cost ~20x in software rendering); ``reflections``
    enables mirror reflections of materials with reflectance > 0 (an extra render pass per
    reflective surface, ~1.6x in software rendering). Both default to off for CPU machines;
    the SceneSpec records the sampled values either way."""

    control_hz: float = 10.0
    physics_hz: float = 500.0
    shadows: bool = False
    reflections: bool = False
    controller: ControllerConfig = field(default_factory=ControllerConfig)
    options: Mapping[str, Any] = field(default_factory=dict)

    def physics_steps_per_control_step(self) -> int:
        """Physics steps per control step, checking that the rates and the controller's
        interpolation segments divide evenly."""
        if self.physics_hz % self.control_hz:
            raise ValueError(f"physics_hz ({self.physics_hz}) must be a multiple of control_hz ({self.control_hz})")
        substeps = round(self.physics_hz / self.control_hz)
        segments = self.controller.interpolation_segments
        if substeps % segments:
            raise ValueError(
                f"physics steps per control step ({substeps}) must be a multiple of "
                f"controller.interpolation_segments ({segments})"
            )
        return substeps


class Backend(Protocol):
    """What the env, the generators and the evaluators need from a simulator."""

    config: BackendConfig

    def reset(self, scene: SceneSpec) -> None: ...

    def step(self, action: np.ndarray) -> None: ...

    def images(self) -> dict[str, np.ndarray]:
        """Clean RGB per camera, uint8 (H, W, 3)."""
        ...

    def proprio(self) -> np.ndarray:
        """Clean proprio state, float32 (14,) in the order of ``control.STATE_NAMES``."""
        ...

    def privileged_state(self) -> PrivilegedState: ...

    def segmentation(self, camera: str) -> tuple[np.ndarray, list[str]]:
        """int32 (H, W) index into the returned object names per pixel, -1 elsewhere."""
        ...

    @property
    def clip_counts(self) -> Mapping[str, int]: ...

    def close(self) -> None: ...


BACKENDS: Registry[str] = Registry("backend")
BACKENDS.register("mujoco")("sim2real.sim.mujoco.backend:MujocoBackend")
BACKENDS.register("isaac")("sim2real.sim.isaac.backend:IsaacBackend")


def make_backend(name: str, config: BackendConfig | None = None) -> Backend:
    """Instantiate a backend by registry name, importing its simulator only now."""
    module_name, class_name = BACKENDS.get(name).split(":")
    module = importlib.import_module(module_name)
    return getattr(module, class_name)(config or BackendConfig())
