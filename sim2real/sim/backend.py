"""The simulator backend protocol and the backend registry (loaded lazily by name).

A backend builds and resets a scene from a :class:`SceneSpec`, executes the 7-D
end-effector delta action, and returns observations and privileged state. Importing this
module never imports a simulator.
"""

from __future__ import annotations

import importlib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, ClassVar, Protocol, TypeVar

import numpy as np

from sim2real.errors import UsageError
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
    #: backend-specific settings (``backend_options`` in generate.py / evaluate.py), checked by the
    #: backend's options class (:data:`BACKEND_OPTIONS`, :func:`parse_backend_options`)
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
    """What the env, the generators and the evaluators need from a simulator.

    ``bit_exact_images``: whether the same SceneSpec and actions give byte-identical images on the
    same machine and library versions (MuJoCo: yes; RTX rendering: no). Generation hashes the
    images of an episode into its manifest only when this is true (see ``generation.episode_hash``).
    """

    config: BackendConfig
    bit_exact_images: ClassVar[bool]

    def reset(self, scene: SceneSpec) -> None: ...

    def step(self, action: np.ndarray) -> None: ...

    def images(self) -> dict[str, np.ndarray]:
        """Clean RGB per camera, uint8 (H, W, 3)."""
        ...

    def proprio(self) -> np.ndarray:
        """Clean proprio state, float32 (14,) in the order of ``contracts.actions.STATE_NAMES``."""
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

#: each backend's options class (``module:Class``), in a module that imports no simulator, so that
#: ``backend_options`` are checked before any work starts; one definition of each key per backend
BACKEND_OPTIONS: dict[str, str] = {
    "mujoco": "sim2real.sim.mujoco.options:MujocoOptions",
    "isaac": "sim2real.sim.isaac.options:IsaacOptions",
}


class BackendOptionsError(UsageError, ValueError):
    """A ``backend_options`` key the backend does not know, or a value it cannot take; the message
    names ``backend_options.<key>``, the value and what is expected."""


OptionsT = TypeVar("OptionsT")


def _allowed(annotation: Any) -> tuple[Any, ...]:
    """The alternatives of a (possibly optional) annotation."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return typing.get_args(annotation)
    return (annotation,)


def _coerce(key: str, value: Any, annotation: Any) -> Any:
    """``value`` as ``annotation`` (YAML lists become tuples, ints may be floats), else an error."""
    for kind in _allowed(annotation):
        if kind is type(None) and value is None:
            return None
        origin = typing.get_origin(kind)
        if origin is tuple and isinstance(value, list | tuple):
            args = typing.get_args(kind)
            inner = args[0] if len(args) == 2 and args[1] is Ellipsis else None
            if inner is None:
                if len(args) != len(value):
                    continue
                try:
                    return tuple(_coerce(key, v, a) for v, a in zip(value, args, strict=True))
                except BackendOptionsError:
                    continue
            try:
                return tuple(_coerce(key, v, inner) for v in value)
            except BackendOptionsError:
                continue
        if kind is bool and isinstance(value, bool):
            return value
        if kind is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if kind is float and isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if kind is str and isinstance(value, str):
            return value
    expected = " or ".join("null" if k is type(None) else getattr(k, "__name__", str(k)) for k in _allowed(annotation))
    if any(typing.get_origin(k) is tuple for k in _allowed(annotation)):
        expected = str(annotation).replace("typing.", "")
    raise BackendOptionsError(f"backend_options.{key}: {value!r} is not a valid value; expected {expected}")


def options_from_mapping(cls: type[OptionsT], options: Mapping[str, Any], backend: str) -> OptionsT:
    """Build the frozen dataclass ``cls`` from ``options``: an unknown key or a value of the wrong type
    is a :class:`BackendOptionsError` naming ``backend_options.<key>`` and what is known or expected;
    then ``cls.check()`` (when defined) checks value ranges the same way."""
    assert is_dataclass(cls)
    hints = typing.get_type_hints(cls)
    known = [f.name for f in fields(cls)]
    for key in options:
        if key not in known:
            raise BackendOptionsError(
                f"backend_options.{key}: unknown option for backend={backend}; known: {', '.join(known)}"
            )
    values = {key: _coerce(key, value, hints[key]) for key, value in options.items()}
    result = cls(**values)
    check = getattr(result, "check", None)
    if check is not None:
        check()
    return result


def parse_backend_options(backend: str, options: Mapping[str, Any] | None) -> Any:
    """The options object of backend ``backend`` for ``options`` (imports no simulator); raises
    :class:`BackendOptionsError` (exit 2) for an unknown key or a bad value, and the registry's
    error for an unknown backend."""
    BACKENDS.get(backend)
    module_name, class_name = BACKEND_OPTIONS[backend].split(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    return options_from_mapping(cls, dict(options or {}), backend)


def make_backend(name: str, config: BackendConfig | None = None) -> Backend:
    """Instantiate a backend by registry name, importing its simulator only now."""
    module_name, class_name = BACKENDS.get(name).split(":")
    module = importlib.import_module(module_name)
    return getattr(module, class_name)(config or BackendConfig())
