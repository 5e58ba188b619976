"""SceneSpec: everything a backend needs to build and reset one episode's scene, fully sampled.

A SceneSpec is pure data (a frozen dataclass tree) with ``to_json`` / ``from_json`` and a
stable content hash. Randomizers produce it; backends only apply it. Units: metres,
radians, kilograms; colours are linear RGB(A) in [0, 1]; the world frame is the robot
base frame (x forward, z up, table top at z = 0).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from sim2real.contracts.typed import from_dict

SCENE_SPEC_VERSION = 1

Vec3 = tuple[float, float, float]
Rgba = tuple[float, float, float, float]


@dataclass(frozen=True)
class TextureSpec:
    """A procedural texture: ``family`` in flat | checker | gradient | stripes | noise.

    ``scale`` is the number of pattern periods across the texture; ``seed`` drives the
    noise family. Pixels are produced by :func:`sim2real.sim.textures.render_texture`.
    """

    family: str = "flat"
    rgb1: Vec3 = (0.5, 0.5, 0.5)
    rgb2: Vec3 = (0.3, 0.3, 0.3)
    scale: float = 4.0
    seed: int = 0


@dataclass(frozen=True)
class MaterialSpec:
    """Surface appearance. ``specular``, ``shininess`` and ``reflectance`` are in [0, 1]."""

    rgba: Rgba = (0.5, 0.5, 0.5, 1.0)
    specular: float = 0.2
    shininess: float = 0.2
    reflectance: float = 0.0
    texture: TextureSpec | None = None


@dataclass(frozen=True)
class ObjectSpec:
    """One rigid object on the table.

    ``role``: ``manipulated`` (moved by the task), ``receptacle`` (static container),
    ``marker`` (static, visual-only goal region) or ``distractor``.
    ``size``: shape-specific half-extents in metres (see :mod:`sim2real.sim.shapes`).
    ``pos``: centre of the object's base footprint on the table (x, y, z-of-bottom), m.
    """

    name: str
    role: str
    shape: str
    size: tuple[float, ...]
    color: str
    material: MaterialSpec
    pos: Vec3
    yaw: float = 0.0
    mass: float = 0.05
    friction: float = 1.0
    static: bool = False


@dataclass(frozen=True)
class LightSpec:
    """A light. ``type`` in directional | spot | point; intensities are RGB in [0, 1]."""

    type: str = "directional"
    pos: Vec3 = (0.5, 0.0, 2.0)
    direction: Vec3 = (0.0, 0.0, -1.0)
    diffuse: Vec3 = (0.7, 0.7, 0.7)
    specular: Vec3 = (0.2, 0.2, 0.2)
    ambient: Vec3 = (0.2, 0.2, 0.2)
    cutoff_deg: float = 45.0
    castshadow: bool = False


@dataclass(frozen=True)
class CameraSpec:
    """A pinhole camera. ``mount`` is ``world`` or ``hand``; ``pos`` and ``lookat`` are in
    the mount's frame (m); ``roll`` rotates about the optical axis (rad); ``fovy`` in degrees.
    """

    name: str
    mount: str = "world"
    pos: Vec3 = (1.3, 0.0, 0.6)
    lookat: Vec3 = (0.45, 0.0, 0.05)
    roll: float = 0.0
    fovy: float = 45.0
    width: int = 128
    height: int = 128


@dataclass(frozen=True)
class SurfacesSpec:
    """Materials of the static surroundings."""

    table: MaterialSpec = MaterialSpec(rgba=(0.55, 0.45, 0.35, 1.0))
    floor: MaterialSpec = MaterialSpec(rgba=(0.3, 0.3, 0.32, 1.0))
    backdrop: MaterialSpec = MaterialSpec(rgba=(0.75, 0.78, 0.8, 1.0))


@dataclass(frozen=True)
class RobotSpec:
    """Robot name and initial configuration: arm joints (rad) and gripper opening in [0, 1]."""

    name: str = "panda"
    joint_positions: tuple[float, ...] = ()
    gripper: float = 1.0


@dataclass(frozen=True)
class DynamicsSpec:
    """Multipliers on the robot's nominal joint damping and actuator gains, and action
    latency in control steps (the action applied at step t is the one issued at t - latency).
    """

    joint_damping_scale: float = 1.0
    actuator_gain_scale: float = 1.0
    action_latency_steps: int = 0


@dataclass(frozen=True)
class SensorNoiseSpec:
    """Observation corruption: Gaussian pixel noise (std, uint8 units), Gaussian blur
    (sigma, px), JPEG re-compression quality (0 = off), proprio state noise (std, native units).
    ``seed`` drives the per-step noise stream.
    """

    image_noise_std: float = 0.0
    blur_sigma: float = 0.0
    jpeg_quality: int = 0
    state_noise_std: float = 0.0
    seed: int = 0


@dataclass(frozen=True)
class SceneSpec:
    """One episode's scene. ``task_params`` carries task-specific choices (e.g. which target)."""

    task: str
    instruction: str
    robot: RobotSpec
    objects: tuple[ObjectSpec, ...]
    lights: tuple[LightSpec, ...]
    cameras: tuple[CameraSpec, ...]
    surfaces: SurfacesSpec = SurfacesSpec()
    dynamics: DynamicsSpec = DynamicsSpec()
    sensor_noise: SensorNoiseSpec = SensorNoiseSpec()
    task_params: dict[str, Any] = field(default_factory=dict)
    split: str = "train"
    seed: int = 0
    version: int = SCENE_SPEC_VERSION

    def object(self, name: str) -> ObjectSpec:
        for obj in self.objects:
            if obj.name == name:
                return obj
        known = ", ".join(o.name for o in self.objects)
        raise KeyError(f"scene has no object {name!r}; objects: {known}")

    def camera(self, name: str) -> CameraSpec:
        for cam in self.cameras:
            if cam.name == name:
                return cam
        known = ", ".join(c.name for c in self.cameras)
        raise KeyError(f"unknown camera {name!r}; known cameras: {known}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self, indent: int | None = None) -> str:
        """Canonical JSON: sorted keys, tuples as lists, floats in shortest round-trip form."""
        return json.dumps(self.to_dict(), sort_keys=True, indent=indent, separators=None if indent else (",", ":"))

    @classmethod
    def from_json(cls, text: str) -> SceneSpec:
        data = json.loads(text)
        version = data.get("version")
        if version != SCENE_SPEC_VERSION:
            raise ValueError(f"SceneSpec version {version!r} is not supported (expected {SCENE_SPEC_VERSION})")
        return from_dict(cls, data)

    def content_hash(self) -> str:
        """sha256 hex digest of the canonical JSON; equal specs have equal hashes."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()
