"""Translate a SceneSpec into an ordered list of typed stage operations (pure: no Isaac imports).

The Isaac backend never reads a SceneSpec directly: :func:`scene_to_ops` turns it into small
frozen dataclasses, and :mod:`sim2real.sim.isaac.executor` maps each one onto Isaac Sim / USD /
Replicator calls. Everything about the translation (units, frames, conversions, which field
goes where) is therefore testable without Kit; :data:`FIELD_MAP` documents, for every
SceneSpec field, the op that consumes it, and a test fails when a field has no entry or when
changing a field leaves the ops unchanged.

Units and conventions
---------------------
* Lengths in metres (the stage is authored with ``metersPerUnit = 1``, z up), angles in
  radians unless a name ends in ``_deg``, masses in kg, colours linear RGB in [0, 1],
  quaternions scalar-first ``(w, x, y, z)``.
* The world frame is the robot base frame, as in the SceneSpec.
* Camera lens values are in millimetres, as USD's ``focalLength`` / ``horizontalAperture``
  attributes; only their ratio matters for the rendered field of view.
* Robot joint positions in ops are in the **Franka** convention of Isaac's Franka USD
  (:data:`sim2real.sim.isaac.kinematics.FRANKA_JOINT_OFFSETS`).

Light intensities
-----------------
MuJoCo lights are unitless colour multipliers (``diffuse``, ``specular``, ``ambient`` in [0, 1])
that do not fall off with distance; RTX lights are physical (UsdLux ``intensity`` in nits,
with inverse-square falloff for sphere lights). The conversion used here:

* directional -> ``DistantLight`` with ``intensity = DISTANT_INTENSITY_PER_UNIT * max(diffuse)``
  and ``color = diffuse / max(diffuse)``;
* point -> ``SphereLight`` of radius ``SPHERE_LIGHT_RADIUS``; a non-normalised sphere light of
  radiance ``L`` gives irradiance ``L * pi * r^2 / d^2`` at distance ``d``, so
  ``intensity = DISTANT_INTENSITY_PER_UNIT * max(diffuse) * d_ref^2 / (pi * r^2)`` with
  ``d_ref`` the distance from the light to :data:`sim2real.contracts.cell.WORKSPACE_CENTER`: the workspace receives the
  irradiance a directional light of the same ``diffuse`` would give (MuJoCo's point lights
  have no attenuation);
* spot -> the same ``SphereLight`` plus ``UsdLux.ShapingAPI`` with ``cone:angle = cutoff_deg``;
* the sum of all lights' ``ambient`` -> one ``DomeLight`` with
  ``intensity = DISTANT_INTENSITY_PER_UNIT * max(sum ambient) / pi`` (a uniform dome of radiance
  ``L`` gives irradiance ``pi * L`` on an upward surface);
* ``specular`` -> the light's ``inputs:specular`` multiplier,
  ``mean(specular) / SPECULAR_REFERENCE`` clipped to [0, 1] (MuJoCo's default light specular
  is 0.3).

``DISTANT_INTENSITY_PER_UNIT`` is a calibration constant of the renderer's exposure, not a
physical fact: ``benchmarks/validate_isaac.py --compare-mujoco`` prints the per-camera image mean
of both backends on the same SceneSpecs so it can be re-fitted on a GPU server.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import ClassVar

import numpy as np

from sim2real.contracts import cell
from sim2real.contracts.geometry import look_at_matrix, matrix_to_quat_wxyz, yaw_to_quat_wxyz
from sim2real.contracts.shapes import Primitive, primitives, prism_vertices
from sim2real.sim import shapes
from sim2real.sim.backend import BackendConfig
from sim2real.sim.isaac.kinematics import project_to_franka
from sim2real.sim.robots import ROBOTS
from sim2real.sim.scene_spec import CameraSpec, LightSpec, MaterialSpec, ObjectSpec, SceneSpec, TextureSpec
from sim2real.sim.textures import render_texture

Vec3 = tuple[float, float, float]
Quat = tuple[float, float, float, float]

# ----------------------------------------------------------------------------- stage layout
WORLD_PATH = "/World"
ROBOT_PATH = "/World/Robot"
OBJECTS_PATH = "/World/Objects"
LOOKS_PATH = "/World/Looks"
PHYSICS_MATERIALS_PATH = "/World/PhysicsMaterials"
LIGHTS_PATH = "/World/Lights"
CAMERAS_PATH = "/World/Cameras"
GROUND_PATH = "/World/Ground"
TABLE_PATH = "/World/Table"
BACKDROP_PATH = "/World/Backdrop"
#: The prim of each of the cell's surfaces (:data:`sim2real.contracts.cell.SURFACES`).
SURFACE_PATHS = {"table": TABLE_PATH, "floor": GROUND_PATH, "backdrop": BACKDROP_PATH}

#: Franka Panda asset, relative to ``isaacsim.storage.native.get_assets_root_path()``: the path the
#: Isaac Sim 6.2 ``isaacsim.core.experimental`` API examples load (links ``<root>/panda_link0`` ..
#: ``panda_link7``, ``panda_hand``, ``panda_leftfinger``, ``panda_rightfinger``).
FRANKA_USD = "/Isaac/Robots_Multiphysics/FrankaRobotics/FrankaPanda/franka/franka.usda"
FRANKA_ARM_JOINTS = tuple(f"panda_joint{i}" for i in range(1, 8))
FRANKA_FINGER_JOINTS = ("panda_finger_joint1", "panda_finger_joint2")
FRANKA_HAND_LINK = "panda_hand"
FRANKA_FINGER_LINKS = ("panda_leftfinger", "panda_rightfinger")
FRANKA_LINKS = (*(f"panda_link{i}" for i in range(8)), FRANKA_HAND_LINK, *FRANKA_FINGER_LINKS)
#: ``class`` label of the hand and finger links (not a scene object: ``segmentation`` maps it to -1);
#: ``benchmarks/validate_isaac.py`` compares its mask with the projected TCP
HAND_LABEL = "robot_hand"

ELLIPSOID_SEGMENTS = (16, 8)  # (around, pole to pole) of the ellipsoid mesh

# Robot dynamics: the MuJoCo backend's nominal values (SI: N m/rad, N m s/rad, N/m, N s/m).
PANDA_KP = (4500.0, 4500.0, 3500.0, 3500.0, 2000.0, 2000.0, 2000.0)
PANDA_KV = (80.0, 80.0, 60.0, 60.0, 20.0, 20.0, 20.0)  # drive damping = the servo's derivative gain
GRIPPER_KP = 300.0
GRIPPER_DAMPING = 20.0
FINGER_FRICTION = 1.5  # the MuJoCo finger pads' sliding friction
SURFACE_FRICTION = 1.0  # MuJoCo's default geom friction (table, floor)

# Appearance (texture sizes and repeats: :mod:`sim2real.contracts.cell`).
DISTANT_INTENSITY_PER_UNIT = 3000.0
SPHERE_LIGHT_RADIUS = 0.05  # m
SPECULAR_REFERENCE = 0.3
SPOT_CONE_SOFTNESS = 0.2
HORIZONTAL_APERTURE_MM = 20.955  # USD's default camera aperture
CLIPPING_RANGE: tuple[float, float] = (0.01, 100.0)  # m


# ------------------------------------------------------------------------------- geometry
@dataclass(frozen=True)
class GeomPart:
    """One piece of an object's geometry, in the object's frame (origin at its centre).

    ``kind``: ``cube`` (a unit cube scaled by ``scale`` = full extents, m), ``sphere``
    (``radius``), ``cylinder`` / ``capsule`` (``radius``, ``height`` = full shaft length, axis z),
    or ``mesh`` (``points`` m, ``face_vertex_counts``, ``face_vertex_indices``; collides as its
    convex hull).
    """

    kind: str
    translation: Vec3 = (0.0, 0.0, 0.0)
    orientation: Quat = (1.0, 0.0, 0.0, 0.0)
    scale: Vec3 = (1.0, 1.0, 1.0)
    radius: float = 0.0
    height: float = 0.0
    points: tuple[Vec3, ...] = ()
    face_vertex_counts: tuple[int, ...] = ()
    face_vertex_indices: tuple[int, ...] = ()


def _vec(values: object) -> Vec3:
    x, y, z = (float(v) for v in values)  # type: ignore[attr-defined]
    return (x, y, z)


def _quat(values: object) -> Quat:
    w, x, y, z = (float(v) for v in values)  # type: ignore[attr-defined]
    return (w, x, y, z)


def _prism_mesh(sides: int, radius: float, half_height: float) -> GeomPart:
    points = tuple(_vec(p) for p in prism_vertices(sides, radius, half_height))
    counts: list[int] = []
    indices: list[int] = []
    for k in range(sides):  # side quads, counter-clockwise seen from outside
        a, b = k, (k + 1) % sides
        counts.append(4)
        indices += [a, b, b + sides, a + sides]
    counts += [sides, sides]
    indices += list(range(sides - 1, -1, -1))  # bottom, facing -z
    indices += [sides + k for k in range(sides)]  # top, facing +z
    return GeomPart("mesh", points=points, face_vertex_counts=tuple(counts), face_vertex_indices=tuple(indices))


def _ellipsoid_mesh(axes: tuple[float, ...]) -> GeomPart:
    around, rings = ELLIPSOID_SEGMENTS
    ax, ay, az = axes
    points: list[Vec3] = [(0.0, 0.0, -az)]
    for i in range(1, rings):
        polar = math.pi * i / rings - math.pi / 2
        for k in range(around):
            azimuth = 2 * math.pi * k / around
            ring = math.cos(polar)
            points.append((ax * ring * math.cos(azimuth), ay * ring * math.sin(azimuth), az * math.sin(polar)))
    points.append((0.0, 0.0, az))
    top = len(points) - 1
    counts: list[int] = []
    indices: list[int] = []
    for k in range(around):  # bottom fan
        counts.append(3)
        indices += [0, 1 + (k + 1) % around, 1 + k]
    for i in range(rings - 2):
        base = 1 + i * around
        for k in range(around):
            counts.append(4)
            indices += [base + k, base + (k + 1) % around, base + around + (k + 1) % around, base + around + k]
    last = 1 + (rings - 2) * around
    for k in range(around):  # top fan
        counts.append(3)
        indices += [last + k, last + (k + 1) % around, top]
    return GeomPart("mesh", points=tuple(points), face_vertex_counts=tuple(counts), face_vertex_indices=tuple(indices))


def _part(primitive: Primitive) -> GeomPart:
    """The USD geometry of one primitive: boxes become scaled cubes, ellipsoids and prisms meshes."""
    size, placement = primitive.size, {"translation": primitive.pos, "orientation": primitive.quat}
    match primitive.kind:
        case "box":
            return GeomPart("cube", scale=_vec(2 * s for s in size), **placement)
        case "cylinder" | "capsule":
            return GeomPart(primitive.kind, radius=size[0], height=2 * size[1], **placement)
        case "sphere":
            return GeomPart("sphere", radius=size[0], **placement)
        case "ellipsoid":
            return replace(_ellipsoid_mesh(size), **placement)
        case "prism":
            return replace(_prism_mesh(primitive.sides, *size), **placement)
    raise ValueError(f"primitive kind {primitive.kind!r} has no USD geometry")


def shape_parts(shape: str, size: tuple[float, ...]) -> tuple[GeomPart, ...]:
    """The geometry of a :mod:`sim2real.contracts.shapes` shape (half-extents ``size``, m) as parts
    centred on the object's centre: the shape's primitives, as the MuJoCo backend builds them."""
    return tuple(_part(primitive) for primitive in primitives(shape, size))


def sanitize_name(name: str) -> str:
    """A valid USD prim name for ``name`` (letters, digits and ``_``; not starting with a digit)."""
    clean = "".join(c if c.isascii() and (c.isalnum() or c == "_") else "_" for c in name) or "_"
    return f"_{clean}" if clean[0].isdigit() else clean


# ------------------------------------------------------------------------------------ ops
@dataclass(frozen=True)
class StageOp:
    """Base of all stage operations.

    :meth:`structure` returns what decides the kind of the op's prim (``None`` for ops that only set
    values). A new stage is opened only when the :func:`structure_key` (the structures of the ops
    marked ``NEW_STAGE``: physics scene, robot asset and variants) changes; otherwise
    :func:`plan_stage_update` keeps every prim slot and the executor edits attribute values in
    place, deleting and recreating only a prim whose structure changed (an object of another
    kind) and deactivating the prims a scene no longer has (reactivated when a later scene does),
    as the MuJoCo backend keeps its light and texture slots.
    """

    NEW_STAGE: ClassVar[bool] = False

    def structure(self) -> tuple | None:
        return None

    def created_path(self) -> str | None:
        """The prim this op creates (for ops with a :meth:`structure`)."""
        return getattr(self, "path", None)


@dataclass(frozen=True)
class AnnotateStage(StageOp):
    """Scene metadata written into the stage for provenance.

    USD: ``stage.GetRootLayer().customLayerData["sim2real"] = {...}``. Not read back by the
    backend: tasks, experts and writers read these fields from the SceneSpec itself.
    """

    task: str
    instruction: str
    split: str
    seed: int
    version: int
    task_params_json: str
    content_hash: str


@dataclass(frozen=True)
class ConfigurePhysics(StageOp):
    """Physics and rendering rates: ``physics_dt`` and ``rendering_dt`` in s, gravity m/s^2.

    Isaac: ``SimulationManager.setup_simulation(dt=physics_dt, device=device)`` and
    ``RenderingManager.set_dt(rendering_dt)`` (one rendered frame per control step).
    USD: ``PhysicsScene.gravityDirection/gravityMagnitude``, ``PhysxSceneAPI.timeStepsPerSecond``.
    """

    physics_dt: float
    rendering_dt: float
    device: str = "cpu"
    gravity: Vec3 = (0.0, 0.0, -9.81)

    NEW_STAGE: ClassVar[bool] = True

    def structure(self) -> tuple:
        return ("physics", self.physics_dt, self.device)

    def created_path(self) -> str | None:
        return None


@dataclass(frozen=True)
class CreateGround(StageOp):
    """Floor: a collidable square of half-size ``half_size`` m at height ``z`` m.

    Isaac: ``isaacsim.core.experimental.objects.Cube`` (thin box) + ``physics.apply_collision``.
    Replicator: ``rep.create.plane(position=(0, 0, z), scale=...)``.
    """

    path: str
    z: float
    half_size: float

    def structure(self) -> tuple:
        return ("ground", self.path, self.z, self.half_size)


@dataclass(frozen=True)
class CreateTable(StageOp):
    """Table: a kinematic box collider centred at ``center`` m with ``half_extents`` m (top at z = 0).

    Kinematic (not merely static) so that contact reports can name it. Isaac: ``Cube`` +
    ``physics.apply_rigid_body(kinematic=True)``. Replicator: ``rep.create.cube(...)`` +
    ``rep.physics.collider()``.
    """

    path: str
    center: Vec3
    half_extents: Vec3

    def structure(self) -> tuple:
        return ("table", self.path, self.center, self.half_extents)


@dataclass(frozen=True)
class CreateBackdrop(StageOp):
    """Visual-only backdrop box behind the robot (no collision), ``center`` / ``half_extents`` m.

    Isaac: ``Cube``. Replicator: ``rep.create.cube(...)``.
    """

    path: str
    center: Vec3
    half_extents: Vec3

    def structure(self) -> tuple:
        return ("backdrop", self.path, self.center, self.half_extents)


@dataclass(frozen=True)
class AddRobot(StageOp):
    """Reference the robot USD at ``path`` and set its initial joint state.

    ``asset`` is relative to the Isaac assets root unless absolute (URL or file path);
    ``variants``: USD variant selections ``(variant set, selection)`` authored on the reference (the
    Franka asset's ``Gripper`` / ``Mesh`` / ``Physics`` sets), explicit so that joint names and drives
    do not depend on the asset's defaults; ``arm_positions`` (7,) rad in the Franka convention;
    ``finger_positions`` (2,) m per finger. Isaac: ``stage_utils.add_reference_to_stage(usd_path,
    path, variants=...)``, then the DOF and link names are checked (:func:`articulation_problems`)
    and ``Articulation(path).set_dof_positions/set_dof_position_targets``.
    Replicator: ``rep.create.from_usd(usd_path)``.
    """

    path: str
    robot: str
    asset: str
    arm_joints: tuple[str, ...]
    finger_joints: tuple[str, ...]
    arm_positions: tuple[float, ...]
    finger_positions: tuple[float, ...]
    variants: tuple[tuple[str, str], ...] = ()

    NEW_STAGE: ClassVar[bool] = True

    def structure(self) -> tuple:
        return ("robot", self.path, self.robot, self.asset, self.variants)


@dataclass(frozen=True)
class SetRobotGravity(StageOp):
    """Enable or disable gravity on the robot links (disabled = MuJoCo's ``gravcomp = 1``).

    Isaac: ``Articulation.set_link_enabled_gravities(enabled)``. USD: ``PhysxRigidBodyAPI.disableGravity``.
    """

    path: str
    enabled: bool


@dataclass(frozen=True)
class SetJointGains(StageOp):
    """Joint-drive gains: ``stiffness`` (N m/rad or N/m) and ``damping`` (N m s/rad or N s/m).

    Arm values are the MuJoCo backend's nominal gains times ``DynamicsSpec.actuator_gain_scale``
    (stiffness) and ``joint_damping_scale`` (damping): MuJoCo's position actuator plus passive
    joint damping equal a PhysX drive with a zero velocity target.
    Isaac: ``Articulation.set_dof_gains(stiffnesses, dampings, dof_indices=...)``.
    USD: ``UsdPhysics.DriveAPI`` ``stiffness`` / ``damping`` (per degree for angular drives).
    """

    path: str
    joints: tuple[str, ...]
    stiffness: tuple[float, ...]
    damping: tuple[float, ...]


@dataclass(frozen=True)
class SetActionLatency(StageOp):
    """Action latency in control steps (backend-side: :class:`sim2real.sim.control.LatencyBuffer`).

    No USD/Replicator equivalent: the delay is applied by the controller before the IK.
    """

    steps: int


@dataclass(frozen=True)
class SetSensorNoise(StageOp):
    """Observation corruption parameters (see :class:`sim2real.sim.scene_spec.SensorNoiseSpec`).

    Recorded by the backend and exposed as ``IsaacBackend.sensor_noise``; the Backend protocol
    returns clean images, and :class:`sim2real.randomizers.sensor_noise.SensorNoise` corrupts
    them downstream for both backends. Replicator equivalent: an annotator augmentation
    (``rep.AnnotatorRegistry.get_augmentation`` / ``annotator.augment(...)``) on the ``rgb`` output.
    """

    image_noise_std: float
    blur_sigma: float
    jpeg_quality: int
    state_noise_std: float
    seed: int


@dataclass(frozen=True)
class CreateRigidPrim(StageOp):
    """A collidable object: an Xform at ``path`` holding ``parts``, posed at ``pos`` m / ``quat``.

    ``kinematic = False``: a dynamic rigid body of ``mass`` kg (``RigidPrim(path, masses=...)``);
    ``kinematic = True`` (SceneSpec ``static`` objects): a kinematic body that never moves and
    whose ``mass`` is ignored, as in the MuJoCo backend. Isaac: ``Cube``/``Sphere``/``Cylinder``/
    ``Capsule``/``Mesh`` children + ``physics.apply_rigid_body(path, approximation="convexHull",
    kinematic=...)``. Replicator: ``rep.create.<shape>(...)`` + ``rep.physics.rigid_body(...)``.
    """

    path: str
    name: str
    shape: str
    parts: tuple[GeomPart, ...]
    pos: Vec3
    quat: Quat
    mass: float
    kinematic: bool

    def structure(self) -> tuple:
        return ("rigid", self.path, self.kinematic, tuple(part.kind for part in self.parts))


@dataclass(frozen=True)
class CreateVisualPrim(StageOp):
    """A visual-only object (role ``marker``: goal regions): no collision, no rigid body.

    Isaac: shape children under an Xform posed with ``XformPrim.set_world_poses``.
    Replicator: ``rep.create.<shape>(...)`` without physics.
    """

    path: str
    name: str
    shape: str
    parts: tuple[GeomPart, ...]
    pos: Vec3
    quat: Quat

    def structure(self) -> tuple:
        return ("visual", self.path, tuple(part.kind for part in self.parts))


@dataclass(frozen=True)
class SetSemanticLabels(StageOp):
    """Semantic labels per taxonomy (``class`` = the object name, read back by ``segmentation``).

    Isaac: ``isaacsim.core.experimental.utils.semantics.add_labels(path, labels=..., taxonomy=...)``.
    Replicator: ``rep.modify.semantics([("class", name)])``.
    """

    path: str
    labels: tuple[tuple[str, str], ...]  # (taxonomy, label)


@dataclass(frozen=True)
class BindPhysicsMaterial(StageOp):
    """Create (or update) a rigid-body physics material and bind it to ``prim_path``.

    Friction coefficients are dimensionless; ``combine_mode = "max"`` reproduces MuJoCo's rule
    (the larger of two touching geoms' frictions). Isaac: ``RigidBodyMaterial(material_path,
    static_frictions=..., dynamic_frictions=..., restitutions=...)``, ``set_combine_modes`` and
    ``XformPrim.apply_physics_materials``. USD: ``UsdPhysics.MaterialAPI`` +
    ``UsdShade.MaterialBindingAPI`` (purpose ``physics``).
    """

    prim_path: str
    material_path: str
    static_friction: float
    dynamic_friction: float
    restitution: float = 0.0
    combine_mode: str = "max"

    def structure(self) -> tuple:
        return ("physics_material", self.material_path)

    def created_path(self) -> str | None:
        return self.material_path


@dataclass(frozen=True)
class CreateOmniPBRMaterial(StageOp):
    """An OmniPBR material at ``path``.

    ``diffuse`` RGB [0, 1] (the SceneSpec ``rgba``; white when textured, since MuJoCo multiplies
    the texture by a neutral colour); ``opacity`` = alpha; ``roughness = 1 - shininess``;
    ``metallic = reflectance`` (MuJoCo's mirror reflection is closest to a metallic lobe);
    ``specular_level = specular``. A procedural ``texture`` is rendered to the PNG
    ``texture_file`` (relative to the backend's texture folder) by
    :func:`sim2real.sim.textures.render_texture` at ``texture_size`` px and projected with
    ``texture_scale`` repetitions per metre (OmniPBR ``project_uvw``; ``world_space`` for the
    static surroundings, object space for objects). Isaac: ``OmniPbrMaterial(path)`` +
    ``set_input_values``. Replicator: ``rep.create.material_omnipbr(diffuse=..., roughness=...,
    metallic=..., specular=..., diffuse_texture=...)``.
    """

    path: str
    diffuse: Vec3
    opacity: float
    roughness: float
    metallic: float
    specular_level: float
    texture: TextureSpec | None
    texture_file: str | None
    texture_size: int
    texture_scale: float
    world_space: bool

    def structure(self) -> tuple:
        return ("omnipbr", self.path)


@dataclass(frozen=True)
class BindMaterial(StageOp):
    """Bind a visual material to a prim and its descendants.

    Isaac: ``XformPrim(prim_path).apply_visual_materials(OmniPbrMaterial(material_path))``.
    Replicator: ``rep.randomizer.materials([...])`` / ``rep.modify.material``. USD:
    ``UsdShade.MaterialBindingAPI(prim).Bind(material)``.
    """

    prim_path: str
    material_path: str


@dataclass(frozen=True)
class CreateLight(StageOp):
    """A light. ``kind``: ``distant`` (UsdLux.DistantLight) or ``sphere`` (UsdLux.SphereLight,
    ``radius`` m); ``cone_angle_deg`` set = a spot light (``UsdLux.ShapingAPI`` ``cone:angle``,
    ``cone:softness``). ``intensity`` in UsdLux units (see the module docstring), ``color`` RGB
    [0, 1]; ``pos`` m and ``quat`` orient the light's emission axis (local -z) along the
    SceneSpec direction. ``specular`` multiplies the light's specular response; ``shadow``:
    ``UsdLux.ShadowAPI`` ``shadow:enable``. Isaac: ``DistantLight``/``SphereLight`` from
    ``isaacsim.core.experimental.objects``. Replicator: ``rep.create.light(light_type="distant"|
    "sphere", intensity=..., color=..., position=..., rotation=...)``.
    """

    path: str
    kind: str
    intensity: float
    color: Vec3
    pos: Vec3
    quat: Quat
    radius: float
    cone_angle_deg: float | None
    cone_softness: float
    specular: float
    shadow: bool

    def structure(self) -> tuple:
        return ("light", self.path, self.kind)


@dataclass(frozen=True)
class SetDomeLight(StageOp):
    """Uniform ambient light: the sum of the lights' ``ambient`` as a ``UsdLux.DomeLight``.

    Isaac: ``isaacsim.core.experimental.objects.DomeLight``. Replicator:
    ``rep.create.light(light_type="dome", intensity=..., color=...)``.
    """

    path: str
    intensity: float
    color: Vec3

    def structure(self) -> tuple:
        return ("dome", self.path)


@dataclass(frozen=True)
class CreateCamera(StageOp):
    """A pinhole camera rendering ``width`` x ``height`` px.

    ``parent`` = ``/World/Cameras`` (world mount) or the hand link (hand mount); ``pos`` m and
    ``quat`` in the parent's frame (USD cameras look along local -z with +y up, the convention of
    :func:`sim2real.contracts.geometry.look_at_matrix`). Lens in mm: ``focal_length_mm =
    vertical_aperture_mm / (2 tan(fovy / 2))`` with a fixed horizontal aperture and square
    pixels. Isaac: ``isaacsim.core.experimental.objects.Camera`` (+ ``set_focal_lengths``,
    ``set_apertures``, ``set_clipping_ranges``); rendering: ``rep.create.render_product(path,
    (width, height))`` with ``rgb`` and ``semantic_segmentation`` annotators.
    """

    path: str
    name: str
    parent: str
    pos: Vec3
    quat: Quat
    focal_length_mm: float
    horizontal_aperture_mm: float
    vertical_aperture_mm: float
    width: int
    height: int
    clipping_range: tuple[float, float] = CLIPPING_RANGE

    def structure(self) -> tuple:
        return ("camera", self.path, self.parent, self.width, self.height)


OP_TYPES: tuple[type[StageOp], ...] = (
    AnnotateStage, ConfigurePhysics, CreateGround, CreateTable, CreateBackdrop, AddRobot, SetRobotGravity,
    SetJointGains, SetActionLatency, SetSensorNoise, CreateRigidPrim, CreateVisualPrim, SetSemanticLabels,
    BindPhysicsMaterial, CreateOmniPBRMaterial, BindMaterial, CreateLight, SetDomeLight, CreateCamera,
)  # fmt: skip


# ---------------------------------------------------------------------------- conversions
def texture_file_name(spec: TextureSpec, size: int) -> str:
    """Deterministic PNG name for a texture's pixels (the same spec and size share one file)."""
    digest = hashlib.sha256(json.dumps([spec.family, spec.rgb1, spec.rgb2, spec.scale, spec.seed, size]).encode())
    return f"tex_{spec.family}_{digest.hexdigest()[:16]}_{size}px.png"


def omnipbr_material(
    path: str, spec: MaterialSpec, size: int, repeat: float, world_space: bool, reflections: bool = True
) -> CreateOmniPBRMaterial:
    """The OmniPBR parameters of a SceneSpec material (see :class:`CreateOmniPBRMaterial`);
    ``reflections = False`` (``BackendConfig.reflections``) drops the reflectance, as the MuJoCo
    backend renders no mirror reflections then."""
    r, g, b, a = (float(v) for v in spec.rgba)
    textured = spec.texture is not None
    return CreateOmniPBRMaterial(
        path=path, diffuse=(1.0, 1.0, 1.0) if textured else (r, g, b), opacity=a,
        roughness=float(np.clip(1.0 - spec.shininess, 0.0, 1.0)),
        metallic=float(np.clip(spec.reflectance, 0.0, 1.0)) if reflections else 0.0,
        specular_level=float(spec.specular), texture=spec.texture,
        texture_file=texture_file_name(spec.texture, size) if spec.texture is not None else None,
        texture_size=size, texture_scale=repeat, world_space=world_space,
    )  # fmt: skip


def emission_quat(direction: Vec3) -> Quat:
    """Orientation whose local -z axis points along ``direction`` (lights emit along -z)."""
    d = np.asarray(direction, float)
    norm = np.linalg.norm(d)
    if norm < 1e-9:
        raise ValueError(f"light direction {direction} has zero length")
    z = -d / norm
    helper = np.array([1.0, 0.0, 0.0]) if abs(z[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    x = np.cross(helper, z)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    return _quat(matrix_to_quat_wxyz(np.stack([x, y, z], axis=1)))


def _color_and_level(rgb: tuple[float, ...]) -> tuple[Vec3, float]:
    level = float(max(rgb))
    if level <= 0.0:
        return (1.0, 1.0, 1.0), 0.0
    return _vec(np.asarray(rgb, float) / level), level


def light_op(index: int, light: LightSpec, shadows: bool) -> CreateLight:
    """Translate one SceneSpec light (see the module docstring for the intensity conversion)."""
    if light.type not in ("directional", "point", "spot"):
        raise ValueError(f"light {index}: unknown type {light.type!r}; known types: directional, point, spot")
    color, level = _color_and_level(light.diffuse)
    specular = float(np.clip(np.mean(light.specular) / SPECULAR_REFERENCE, 0.0, 1.0))
    quat = emission_quat(light.direction)
    if light.type == "directional":
        kind, intensity, radius, cone = "distant", DISTANT_INTENSITY_PER_UNIT * level, 0.0, None
    else:
        distance_sq = float(np.sum((np.asarray(light.pos) - np.asarray(cell.WORKSPACE_CENTER)) ** 2))
        intensity = DISTANT_INTENSITY_PER_UNIT * level * distance_sq / (math.pi * SPHERE_LIGHT_RADIUS**2)
        kind, radius = "sphere", SPHERE_LIGHT_RADIUS
        cone = float(light.cutoff_deg) if light.type == "spot" else None
    return CreateLight(
        path=f"{LIGHTS_PATH}/light{index}", kind=kind, intensity=float(intensity), color=color, pos=_vec(light.pos),
        quat=quat, radius=radius, cone_angle_deg=cone, cone_softness=SPOT_CONE_SOFTNESS if cone is not None else 0.0,
        specular=specular, shadow=bool(light.castshadow and shadows),
    )  # fmt: skip


def dome_op(lights: tuple[LightSpec, ...]) -> SetDomeLight:
    """Sum of the lights' ambient terms as one dome light."""
    total = np.sum([light.ambient for light in lights], axis=0) if lights else np.zeros(3)
    color, level = _color_and_level(tuple(float(v) for v in total))
    intensity = DISTANT_INTENSITY_PER_UNIT * level / math.pi
    return SetDomeLight(path=f"{LIGHTS_PATH}/ambient", intensity=intensity, color=color)


def focal_length_mm(fovy_deg: float, width: int, height: int) -> tuple[float, float, float]:
    """(focal length, horizontal aperture, vertical aperture) in mm for a vertical field of view
    ``fovy_deg`` and square pixels."""
    if not 0.0 < fovy_deg < 180.0:
        raise ValueError(f"fovy must be in (0, 180) degrees, got {fovy_deg}")
    vertical = HORIZONTAL_APERTURE_MM * height / width
    return vertical / (2.0 * math.tan(math.radians(fovy_deg) / 2.0)), HORIZONTAL_APERTURE_MM, vertical


def camera_op(cam: CameraSpec) -> CreateCamera:
    """Translate a SceneSpec camera (pose in its mount's frame)."""
    if cam.mount == "world":
        parent, up = CAMERAS_PATH, np.array([0.0, 0.0, 1.0])
    elif cam.mount == "hand":
        parent, up = f"{ROBOT_PATH}/{FRANKA_HAND_LINK}", np.array([1.0, 0.0, 0.0])
    else:
        raise ValueError(f"camera {cam.name!r}: unknown mount {cam.mount!r}; known mounts: hand, world")
    if cam.width <= 0 or cam.height <= 0:
        raise ValueError(f"camera {cam.name!r}: resolution must be positive, got {cam.width}x{cam.height}")
    rot = look_at_matrix(np.asarray(cam.pos, float), np.asarray(cam.lookat, float), cam.roll, up)
    focal, horizontal, vertical = focal_length_mm(cam.fovy, cam.width, cam.height)
    return CreateCamera(
        path=f"{parent}/{sanitize_name(cam.name)}", name=cam.name, parent=parent, pos=_vec(cam.pos),
        quat=_quat(matrix_to_quat_wxyz(rot)), focal_length_mm=focal, horizontal_aperture_mm=horizontal,
        vertical_aperture_mm=vertical, width=int(cam.width), height=int(cam.height),
    )  # fmt: skip


def object_ops(obj: ObjectSpec, reflections: bool = True) -> list[StageOp]:
    """Prim, looks, physics material and labels of one SceneSpec object."""
    name = sanitize_name(obj.name)
    path = f"{OBJECTS_PATH}/{name}"
    parts = shape_parts(obj.shape, obj.size)
    pos = (float(obj.pos[0]), float(obj.pos[1]), float(obj.pos[2]) + shapes.half_height(obj.shape, obj.size))
    quat = _quat(yaw_to_quat_wxyz(obj.yaw))
    ops: list[StageOp] = []
    if obj.role == "marker":
        ops.append(CreateVisualPrim(path, obj.name, obj.shape, parts, pos, quat))
    else:
        ops.append(CreateRigidPrim(path, obj.name, obj.shape, parts, pos, quat, float(obj.mass), bool(obj.static)))
        friction = float(obj.friction)
        ops.append(BindPhysicsMaterial(path, f"{PHYSICS_MATERIALS_PATH}/{name}", friction, friction))
    material = omnipbr_material(f"{LOOKS_PATH}/obj_{name}", obj.material, cell.OBJECT_TEXTURE_SIZE,
                                cell.TEXTURE_REPEAT["object"], world_space=False, reflections=reflections)  # fmt: skip
    ops += [material, BindMaterial(path, material.path)]
    ops.append(SetSemanticLabels(path, (("class", obj.name), ("color", obj.color), ("role", obj.role))))
    return ops


def scene_to_ops(
    scene: SceneSpec,
    config: BackendConfig | None = None,
    *,
    robot_asset: str = FRANKA_USD,
    robot_variants: tuple[tuple[str, str], ...] = (),
    physics_device: str = "cpu",
) -> tuple[StageOp, ...]:
    """Every operation that builds and resets ``scene``, in execution order.

    From ``config`` (default ``BackendConfig()``): ``physics_hz`` / ``control_hz`` (Hz) set the
    physics and rendering steps; ``shadows`` gates the shadows lights request; ``reflections``
    gates material reflectance. ``robot_asset`` overrides the Franka USD path and
    ``robot_variants`` selects its USD variants ``(set, selection)``; ``physics_device`` is ``cpu``
    or a CUDA device.
    """
    config = config or BackendConfig()
    physics_hz, control_hz, shadows = config.physics_hz, config.control_hz, config.shadows
    reflections = bool(getattr(config, "reflections", False))
    if physics_hz <= 0 or control_hz <= 0:
        raise ValueError(f"rates must be positive, got physics_hz={physics_hz}, control_hz={control_hz}")
    robot = ROBOTS.get(scene.robot.name)
    if scene.robot.name != "panda":
        raise NotImplementedError(f"the Isaac backend has no asset for robot {scene.robot.name!r}")
    joints = np.asarray(scene.robot.joint_positions or robot.home, float)
    if joints.shape != (robot.num_joints,):
        raise ValueError(f"robot.joint_positions must have {robot.num_joints} values, got {joints.shape}")
    finger = float(np.clip(scene.robot.gripper, 0.0, 1.0)) * robot.gripper_max_opening / 2
    dyn = scene.dynamics
    if dyn.action_latency_steps < 0:
        raise ValueError(f"action latency must be >= 0 steps, got {dyn.action_latency_steps}")
    ops: list[StageOp] = [
        AnnotateStage(
            task=scene.task, instruction=scene.instruction, split=scene.split, seed=int(scene.seed),
            version=int(scene.version), task_params_json=json.dumps(scene.task_params, sort_keys=True, default=str),
            content_hash=scene.content_hash(),
        ),
        ConfigurePhysics(physics_dt=1.0 / physics_hz, rendering_dt=1.0 / control_hz, device=physics_device),
        CreateGround(GROUND_PATH, cell.FLOOR_Z, cell.FLOOR_HALF_SIZE),
        CreateTable(TABLE_PATH, cell.TABLE.center, cell.TABLE.half_extents),
        CreateBackdrop(BACKDROP_PATH, cell.BACKDROP.center, cell.BACKDROP.half_extents),
    ]  # fmt: skip
    for surface in cell.SURFACES:
        material = omnipbr_material(f"{LOOKS_PATH}/surface_{surface}", getattr(scene.surfaces, surface),
                                    cell.SURFACE_TEXTURE_SIZE, cell.TEXTURE_REPEAT[surface], world_space=True,
                                    reflections=reflections)  # fmt: skip
        ops += [material, BindMaterial(SURFACE_PATHS[surface], material.path)]
    for prim in (TABLE_PATH, GROUND_PATH):
        ops.append(BindPhysicsMaterial(prim, f"{PHYSICS_MATERIALS_PATH}/{prim.rsplit('/', 1)[1].lower()}",
                                       SURFACE_FRICTION, SURFACE_FRICTION))  # fmt: skip
    ops += [
        AddRobot(ROBOT_PATH, scene.robot.name, robot_asset, FRANKA_ARM_JOINTS, FRANKA_FINGER_JOINTS,
                 tuple(float(q) for q in project_to_franka(joints)), (finger, finger),
                 tuple((str(a), str(b)) for a, b in robot_variants)),
        *(SetSemanticLabels(f"{ROBOT_PATH}/{link}", (("class", HAND_LABEL),))
          for link in (FRANKA_HAND_LINK, *FRANKA_FINGER_LINKS)),
        SetRobotGravity(ROBOT_PATH, enabled=False),
        SetJointGains(ROBOT_PATH, FRANKA_ARM_JOINTS, tuple(k * dyn.actuator_gain_scale for k in PANDA_KP),
                      tuple(d * dyn.joint_damping_scale for d in PANDA_KV)),
        SetJointGains(ROBOT_PATH, FRANKA_FINGER_JOINTS, (GRIPPER_KP,) * 2, (GRIPPER_DAMPING,) * 2),
    ]  # fmt: skip
    for link in FRANKA_FINGER_LINKS:
        ops.append(BindPhysicsMaterial(f"{ROBOT_PATH}/{link}", f"{PHYSICS_MATERIALS_PATH}/{link}",
                                       FINGER_FRICTION, FINGER_FRICTION))  # fmt: skip
    ops.append(SetActionLatency(int(dyn.action_latency_steps)))
    names = [o.name for o in scene.objects]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"object names must be unique; repeated: {duplicates}")
    for obj in scene.objects:
        ops += object_ops(obj, reflections)
    ops += [light_op(i, light, shadows) for i, light in enumerate(scene.lights)]
    ops.append(dome_op(scene.lights))
    cameras = [c.name for c in scene.cameras]
    if len(set(cameras)) != len(cameras):
        raise ValueError(f"camera names must be unique, got {cameras}")
    ops += [camera_op(cam) for cam in scene.cameras]
    noise = scene.sensor_noise
    ops.append(SetSensorNoise(float(noise.image_noise_std), float(noise.blur_sigma), int(noise.jpeg_quality),
                              float(noise.state_noise_std), int(noise.seed)))  # fmt: skip
    return tuple(ops)


def structure_key(ops: tuple[StageOp, ...]) -> tuple:
    """Everything that needs a fresh stage when it changes: the structures of the ``NEW_STAGE`` ops
    (physics scene, robot asset and variants); see :meth:`StageOp.structure`."""
    return tuple(s for op in ops if op.NEW_STAGE and (s := op.structure()) is not None)


def prim_structures(ops: Sequence[StageOp]) -> dict[str, tuple]:
    """Prim path -> structure of every op that creates a prim (see :meth:`StageOp.structure`)."""
    out: dict[str, tuple] = {}
    for op in ops:
        structure, path = op.structure(), op.created_path()
        if structure is not None and path is not None:
            out[path] = structure
    return out


@dataclass(frozen=True)
class StagePlan:
    """How the executor turns the stage of the previous scenes into this scene's.

    ``new_stage``: open an empty stage and build everything (the :func:`structure_key` changed);
    ``recreate``: prims to delete before authoring (their structure changed: an object of another
    part layout or kinematic state, a light of another type); ``deactivate``: prims of earlier
    scenes this one does not have (kept, inactive, for a later scene); ``activate``: prims this
    scene has that exist already (set active again when an earlier scene deactivated them);
    ``cameras_release`` / ``cameras_create``: camera names whose render product goes, or is
    (re)created (a new camera, or one whose path or resolution changed).
    """

    new_stage: bool
    recreate: tuple[str, ...] = ()
    deactivate: tuple[str, ...] = ()
    activate: tuple[str, ...] = ()
    cameras_release: tuple[str, ...] = ()
    cameras_create: tuple[str, ...] = ()


def plan_stage_update(
    stage_key: tuple | None,
    authored: Mapping[str, tuple],
    cameras: Mapping[str, tuple],
    ops: Sequence[StageOp],
) -> StagePlan:
    """The :class:`StagePlan` for ``ops`` given the stage's :func:`structure_key` ``stage_key`` (None:
    no stage yet), the structure of every prim authored on it so far (``authored``: path ->
    structure, active or not) and the render products attached (``cameras``: name -> camera
    structure)."""
    wanted_cameras = {op.name: op.structure() for op in ops if isinstance(op, CreateCamera)}
    if stage_key is None or stage_key != structure_key(tuple(ops)):
        return StagePlan(new_stage=True, cameras_release=tuple(sorted(cameras)),
                         cameras_create=tuple(wanted_cameras))  # fmt: skip
    wanted = prim_structures(ops)
    recreate = tuple(path for path, structure in wanted.items() if path in authored and authored[path] != structure)
    activate = tuple(path for path in wanted if path in authored and path not in recreate)
    deactivate = tuple(sorted(path for path in authored if path not in wanted))
    changed = [name for name, structure in cameras.items() if wanted_cameras.get(name) != structure]
    create = tuple(name for name, structure in wanted_cameras.items() if cameras.get(name) != structure)
    return StagePlan(False, recreate, deactivate, activate, tuple(sorted(changed)), create)


def articulation_problems(
    op: AddRobot, dof_names: Sequence[str], link_names: Sequence[str], dof_types: Sequence[object]
) -> list[str]:
    """What is wrong with the loaded robot articulation for ``op`` (empty when nothing): DOFs of
    ``op.arm_joints`` / ``op.finger_joints`` missing, links the backend reads missing, or a DOF of
    the wrong type (arm joints revolute, fingers prismatic: ``omni.physics.tensors.DofType``
    ``Rotation`` / ``Translation``, or their values 0 / 1)."""
    problems = []
    names = list(dof_names)
    missing = [j for j in (*op.arm_joints, *op.finger_joints) if j not in names]
    if missing:
        problems.append(f"DOFs {missing} missing (the articulation has {names})")
    missing_links = [link for link in FRANKA_LINKS if link not in link_names]
    if missing_links:
        problems.append(f"links {missing_links} missing (the articulation has {list(link_names)})")
    if len(dof_types) == len(names):
        kinds = {name: _dof_kind(kind) for name, kind in zip(names, dof_types, strict=True)}
        wrong = [j for j in op.arm_joints if j in kinds and kinds[j] != "rotation"]
        wrong += [j for j in op.finger_joints if j in kinds and kinds[j] != "translation"]
        if wrong:
            problems.append(f"DOFs of the wrong type {[(j, kinds[j]) for j in wrong]} (arm: rotation, fingers: "
                            "translation)")  # fmt: skip
    return problems


def _dof_kind(kind: object) -> str:
    text = str(getattr(kind, "name", kind)).lower()
    return {"0": "rotation", "1": "translation"}.get(text, text.rsplit(".", 1)[-1])


def ops_of_type(ops: tuple[StageOp, ...], kind: type[StageOp]) -> list:
    """The ops of one type, in order."""
    return [op for op in ops if isinstance(op, kind)]


def write_texture_files(ops: tuple[StageOp, ...], directory: str | Path) -> list[Path]:
    """Render every texture the ops reference to PNG under ``directory`` (skipping existing
    files, whose names are content hashes); returns all referenced paths."""
    from PIL import Image

    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    for op in ops_of_type(ops, CreateOmniPBRMaterial):
        if op.texture is None or op.texture_file is None:
            continue
        path = folder / op.texture_file
        if not path.exists():
            tmp = path.with_suffix(".tmp.png")
            Image.fromarray(render_texture(op.texture, op.texture_size)).save(tmp)
            tmp.replace(path)
        paths.append(path)
    return paths


# ----------------------------------------------------------------------------- field map
#: Every SceneSpec field path -> ``"Op.field: how"``. ``objects[]`` / ``lights[]`` /
#: ``cameras[]`` stand for every element; ``surfaces.<s>`` for table, floor and backdrop.
FIELD_MAP: dict[str, str] = {
    "task": "AnnotateStage.task: stage metadata (tasks and experts read the SceneSpec)",
    "instruction": "AnnotateStage.instruction: stage metadata",
    "task_params": "AnnotateStage.task_params_json: stage metadata (JSON)",
    "split": "AnnotateStage.split: stage metadata",
    "seed": "AnnotateStage.seed: stage metadata",
    "version": "AnnotateStage.version: stage metadata (SceneSpec.from_json rejects other versions)",
    "robot.name": "AddRobot.robot: selects the asset (panda only)",
    "robot.joint_positions": "AddRobot.arm_positions: initial arm joints, project -> Franka convention",
    "robot.gripper": "AddRobot.finger_positions: opening fraction * max opening / 2 per finger",
    "objects[].name": "CreateRigidPrim.path: prim name (sanitised), class label, contact name",
    "objects[].role": "CreateVisualPrim.name: marker -> visual-only prim, otherwise CreateRigidPrim",
    "objects[].shape": "CreateRigidPrim.parts: shape_parts(shape, size)",
    "objects[].size": "CreateRigidPrim.parts: half-extents -> part dimensions; pos z += half height",
    "objects[].color": "SetSemanticLabels.labels: 'color' taxonomy (appearance comes from material.rgba)",
    "objects[].material.rgba": "CreateOmniPBRMaterial.diffuse: rgb -> diffuse_color_constant, a -> opacity",
    "objects[].material.specular": "CreateOmniPBRMaterial.specular_level",
    "objects[].material.shininess": "CreateOmniPBRMaterial.roughness: 1 - shininess",
    "objects[].material.reflectance": "CreateOmniPBRMaterial.metallic: when BackendConfig.reflections is on",
    "objects[].material.texture.family": "CreateOmniPBRMaterial.texture: PNG via render_texture",
    "objects[].material.texture.rgb1": "CreateOmniPBRMaterial.texture: PNG via render_texture",
    "objects[].material.texture.rgb2": "CreateOmniPBRMaterial.texture: PNG via render_texture",
    "objects[].material.texture.scale": "CreateOmniPBRMaterial.texture: PNG via render_texture",
    "objects[].material.texture.seed": "CreateOmniPBRMaterial.texture: PNG via render_texture",
    "objects[].pos": "CreateRigidPrim.pos: base centre -> body centre (z + half height), m",
    "objects[].yaw": "CreateRigidPrim.quat: rotation about z",
    "objects[].mass": "CreateRigidPrim.mass: kg (ignored for kinematic/static objects, as in MuJoCo)",
    "objects[].friction": "BindPhysicsMaterial.static_friction: static = dynamic friction, combine max",
    "objects[].static": "CreateRigidPrim.kinematic: static objects are kinematic bodies",
    "lights[].type": "CreateLight.kind: directional -> DistantLight; point/spot -> SphereLight (+ShapingAPI)",
    "lights[].pos": "CreateLight.pos: translation; sets the sphere-light distance scaling",
    "lights[].direction": "CreateLight.quat: local -z along the direction",
    "lights[].diffuse": "CreateLight.intensity: max(diffuse) * scale; colour = diffuse / max",
    "lights[].specular": "CreateLight.specular: inputs:specular multiplier",
    "lights[].ambient": "SetDomeLight.intensity: summed over lights into one DomeLight",
    "lights[].cutoff_deg": "CreateLight.cone_angle_deg: ShapingAPI cone:angle for spot lights",
    "lights[].castshadow": "CreateLight.shadow: ShadowAPI shadow:enable (and BackendConfig.shadows)",
    "cameras[].name": "CreateCamera.name: prim name and image key",
    "cameras[].mount": "CreateCamera.parent: /World/Cameras or the hand link",
    "cameras[].pos": "CreateCamera.pos: translation in the mount frame, m",
    "cameras[].lookat": "CreateCamera.quat: look_at_matrix(pos, lookat, roll)",
    "cameras[].roll": "CreateCamera.quat: rotation about the optical axis",
    "cameras[].fovy": "CreateCamera.focal_length_mm: vertical aperture / (2 tan(fovy/2))",
    "cameras[].width": "CreateCamera.width: render product resolution",
    "cameras[].height": "CreateCamera.height: render product resolution",
    "dynamics.joint_damping_scale": "SetJointGains.damping: x nominal joint damping",
    "dynamics.actuator_gain_scale": "SetJointGains.stiffness: x nominal position gains",
    "dynamics.action_latency_steps": "SetActionLatency.steps: LatencyBuffer in the controller",
    "sensor_noise.image_noise_std": "SetSensorNoise.image_noise_std: applied downstream (SensorNoise)",
    "sensor_noise.blur_sigma": "SetSensorNoise.blur_sigma: applied downstream (SensorNoise)",
    "sensor_noise.jpeg_quality": "SetSensorNoise.jpeg_quality: applied downstream (SensorNoise)",
    "sensor_noise.state_noise_std": "SetSensorNoise.state_noise_std: applied downstream (SensorNoise)",
    "sensor_noise.seed": "SetSensorNoise.seed: applied downstream (SensorNoise)",
}
for _surface in cell.SURFACES:
    for _key, _value in list(FIELD_MAP.items()):
        if _key.startswith("objects[].material."):
            FIELD_MAP[f"surfaces.{_surface}." + _key.removeprefix("objects[].material.")] = _value

#: Op classes by name, to check :data:`FIELD_MAP` entries.
OPS_BY_NAME: dict[str, type[StageOp]] = {t.__name__: t for t in OP_TYPES}


def field_map_targets() -> list[tuple[str, str, str]]:
    """(SceneSpec path, op name, op field) for each :data:`FIELD_MAP` entry."""
    out = []
    for path, text in FIELD_MAP.items():
        target = text.split(":", 1)[0]
        op_name, op_field = target.split(".", 1)
        out.append((path, op_name, op_field))
    return out


def op_field_names(kind: type[StageOp]) -> set[str]:
    """Field names of an op class."""
    return {f.name for f in fields(kind)}
