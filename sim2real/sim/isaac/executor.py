"""Apply stage operations to a running Isaac Sim 6.x (Kit) process.

Import this module only after :func:`sim2real.sim.isaac.app.launch` has started Kit: the
``isaacsim.*``, ``omni.*``, ``carb`` and ``pxr`` modules it imports exist only inside a running app.

Each op of :mod:`sim2real.sim.isaac.stage_ops` has one handler here that creates its prim if it is
missing and (re)writes its values, so the same op list both builds a stage and updates one.
:meth:`StageExecutor.prepare` follows :func:`~sim2real.sim.isaac.stage_ops.plan_stage_update`: a new
stage only when the physics scene or the robot asset changes; otherwise every prim slot stays (the
Franka reference, objects, lights, render products) and a new episode edits attribute values, deletes
and recreates only prims whose kind changed and deactivates those the scene does not use.

Physics lifecycle (the tensor views of ``isaacsim.core.experimental.prims`` are valid only between a
timeline PLAY and STOP, and ``SimulationManager`` reacts to both through event callbacks that may
arrive late): :meth:`StageExecutor.stop` stops the timeline, delivers the STOP callbacks with an app
update that steps no physics, and invalidates the physics views explicitly;
:meth:`StageExecutor.start` plays, delivers the PLAY callbacks the same way, initializes physics
(a no-op when the PLAY callback did), only then wraps the prims, so that each wrapper binds to the new
physics view at construction, and asserts that every tensor entity is valid. Per-step physics calls
run under :func:`tensor_backend` (``raise_on_fallback=True``): a wrapper never falls back to USD
silently.

Rendering: one render product per camera with ``rgb`` and ``semantic_segmentation`` annotators;
observations are captured with ``rep.orchestrator.step(rt_subframes=N, delta_time=0.0,
pause_timeline=False)`` (Isaac Sim's own capture pattern) with physics paused, after at least one
physics step since the last state write (tensor writes reach the renderer through that step).

APIs used (Isaac Sim 6.2, checked by ``tools/check_isaac_api.py``):
``isaacsim.core.experimental.{prims,objects,materials,utils}``,
``isaacsim.core.simulation_manager.SimulationManager``,
``isaacsim.core.rendering_manager.RenderingManager``,
``isaacsim.storage.native.get_assets_root_path``; Replicator (``omni.replicator.core``) render
products, annotators and orchestrator; ``carb`` settings; plain USD (``pxr``) for schema attributes
without a wrapper.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import carb
import isaacsim.core.experimental.utils.app as app_utils
import isaacsim.core.experimental.utils.backend as backend_utils
import isaacsim.core.experimental.utils.physics as physics_utils
import isaacsim.core.experimental.utils.semantics as semantics_utils
import isaacsim.core.experimental.utils.stage as stage_utils
import numpy as np
import omni.replicator.core as rep
from isaacsim.core.experimental.materials import OmniPbrMaterial, RigidBodyMaterial
from isaacsim.core.experimental.objects import (
    Camera,
    Capsule,
    Cube,
    Cylinder,
    DistantLight,
    DomeLight,
    Mesh,
    Sphere,
    SphereLight,
)
from isaacsim.core.experimental.prims import Articulation, RigidPrim, XformPrim
from isaacsim.core.rendering_manager import RenderingManager
from isaacsim.core.simulation_manager import PhysicsScene, SimulationManager
from isaacsim.storage.native import get_assets_root_path
from pxr import UsdLux, UsdPhysics

from sim2real.errors import UsageError
from sim2real.sim.isaac import frames
from sim2real.sim.isaac import stage_ops as so
from sim2real.sim.isaac.app import RENDER_MODE_SETTING

#: ``isaacsim.core.experimental.objects.Camera`` multiplies focal lengths and apertures by 10
#: before writing the USD attributes (which are in tenths of a stage unit), so mm values are
#: divided by this factor on the way in.
CAMERA_WRAPPER_UNIT = 10.0
SEGMENTATION_TAXONOMY = "class"
#: the carb setting that lets app updates step physics while the timeline plays
PLAY_SIMULATIONS_SETTING = "/app/player/playSimulations"


class AssetsRootError(UsageError, RuntimeError):
    """Isaac Sim's assets root is unknown or unreachable; the message says how to set it (a setting,
    so one line and exit status 2 from the entry points)."""


class PhysicsHandleError(RuntimeError):
    """A physics tensor view is not valid (physics not initialized, or invalidated by a late STOP)."""


class Annotator(Protocol):
    """omni.replicator.core annotator (external API): the part used here."""

    def attach(self, render_products: list[Any]) -> None: ...

    def detach(self) -> None: ...

    def get_data(self, do_array_copy: bool = True) -> Any: ...


class RenderProduct(Protocol):
    """omni.replicator.core render product (external API): the part used here."""

    def destroy(self) -> None: ...


class TensorSimulationView(Protocol):
    """omni.physics.tensors simulation view (external API): the part used here."""

    def update_articulations_kinematic(self) -> Any: ...


class CarbSettings(Protocol):
    """carb.settings interface (external API): the part used here."""

    def get(self, path: str) -> Any: ...

    def get_as_bool(self, path: str) -> bool: ...

    def set_bool(self, path: str, value: bool) -> None: ...


@dataclass
class CameraHandle:
    """A camera's render product and annotators; ``width`` x ``height`` px; ``structure``: the
    camera op's structure it was made for (a changed one gets a new render product)."""

    name: str
    path: str
    width: int
    height: int
    render_product: RenderProduct
    rgb: Annotator
    segmentation: Annotator
    structure: tuple = ()


@dataclass
class SceneHandles:
    """Wrappers over the simulated prims, valid while the timeline plays.

    ``arm_dofs`` / ``finger_dofs``: DOF indices of the Franka joints in the articulation;
    ``hand_link``: the hand's link index; ``jacobian_row``: its index in the first axis of
    ``get_jacobian_matrices`` (links minus the fixed base); ``hand_com``: the hand's centre of
    mass in the hand frame (3,) m; objects by scene name: ``dynamic`` rigid bodies, ``kinematic``
    (static) bodies and ``visual`` prims; ``contact_columns``: per dynamic object, the scene name of
    each column of its contact force matrix.
    """

    robot: Articulation
    hand: RigidPrim
    arm_dofs: list[int]
    finger_dofs: list[int]
    hand_link: int
    jacobian_row: int
    hand_com: np.ndarray
    dynamic: dict[str, RigidPrim]
    kinematic: dict[str, RigidPrim]
    visual: dict[str, XformPrim]
    contact_columns: dict[str, list[str]]
    cameras: dict[str, CameraHandle] = field(default_factory=dict)

    def prim(self, name: str) -> XformPrim:
        """The wrapper of a scene object by name."""
        for group in (self.dynamic, self.kinematic, self.visual):
            if name in group:
                return group[name]
        raise KeyError(f"no object {name!r} in the stage")


def _numpy(data: Any) -> np.ndarray:
    """A wrapper result (warp array, tensor or array) as a numpy array."""
    if hasattr(data, "numpy"):
        return np.asarray(data.numpy())
    return np.asarray(data)


def _settings() -> CarbSettings:
    settings: CarbSettings = carb.settings.get_settings()
    return settings


def render_mode() -> Any:
    """The RTX mode Kit renders with (the ``/rtx/rendermode`` setting)."""
    return _settings().get(RENDER_MODE_SETTING)


@contextlib.contextmanager
def physics_paused() -> Iterator[None]:
    """App updates inside this block step no physics (as ``RenderingManager.render`` does)."""
    settings = _settings()
    playing = settings.get_as_bool(PLAY_SIMULATIONS_SETTING)
    if playing:
        settings.set_bool(PLAY_SIMULATIONS_SETTING, False)
    try:
        yield
    finally:
        if playing:
            settings.set_bool(PLAY_SIMULATIONS_SETTING, True)


@contextlib.contextmanager
def tensor_backend() -> Iterator[None]:
    """Physics reads and writes through the tensor API only: a wrapper whose tensor view is not
    valid raises instead of falling back to USD (which would read or write stale values quietly)."""
    with backend_utils.use_backend("tensor", raise_on_fallback=True):
        yield


class StageExecutor:
    """Builds and updates the stage from ops; owns the render products.

    ``texture_dir``: folder for the rendered texture PNGs; ``assets_root``: root of the Isaac
    assets (default: ``get_assets_root_path()``).
    """

    def __init__(self, texture_dir: Path, assets_root: str | None = None) -> None:
        self.texture_dir = Path(texture_dir)
        self._assets_root = assets_root
        self._handlers: dict[type[so.StageOp], Callable[[Any], None]] = {
            so.AnnotateStage: self._annotate,
            so.ConfigurePhysics: self._configure_physics,
            so.CreateGround: self._ground,
            so.CreateTable: self._table,
            so.CreateBackdrop: self._backdrop,
            so.AddRobot: self._robot,
            so.SetRobotGravity: self._noop_until_running,
            so.SetJointGains: self._noop_until_running,
            so.SetActionLatency: self._noop_backend_side,
            so.SetSensorNoise: self._noop_backend_side,
            so.CreateRigidPrim: self._rigid,
            so.CreateVisualPrim: self._visual,
            so.SetSemanticLabels: self._labels,
            so.BindPhysicsMaterial: self._physics_material,
            so.CreateOmniPBRMaterial: self._omnipbr,
            so.BindMaterial: self._bind_material,
            so.CreateLight: self._light,
            so.SetDomeLight: self._dome,
            so.CreateCamera: self._camera,
        }
        self._cameras: dict[str, CameraHandle] = {}
        self._stage_key: tuple | None = None
        self._authored: dict[str, tuple] = {}
        self._inactive: set[str] = set()
        self.new_stages = 0
        rep.orchestrator.set_capture_on_play(False)  # captures happen only in capture()

    # ------------------------------------------------------------------ lifecycle
    def prepare(self, ops: tuple[so.StageOp, ...]) -> so.StagePlan:
        """Stop the timeline and make the stage ready for :meth:`author` (see the module docstring)."""
        plan = so.plan_stage_update(self._stage_key, self._authored,
                                    {name: c.structure for name, c in self._cameras.items()}, ops)  # fmt: skip
        self.stop()
        if plan.new_stage:
            self.new_stage()
            return plan
        stage = stage_utils.get_current_stage(backend="usd")
        for name in plan.cameras_release:
            self._release_camera(name)
        for path in plan.recreate:
            stage_utils.delete_prim(path)
            self._authored.pop(path, None)
            self._inactive.discard(path)
        for path in plan.deactivate:
            if path not in self._inactive:
                stage.GetPrimAtPath(path).SetActive(False)
                self._inactive.add(path)
        for path in plan.activate:
            if path in self._inactive:
                stage.GetPrimAtPath(path).SetActive(True)
                self._inactive.discard(path)
        return plan

    def new_stage(self) -> None:
        """Stop the timeline, release render products and open an empty metre / z-up stage."""
        self.stop()
        self.release_cameras()
        stage_utils.create_new_stage()
        stage_utils.set_stage_units(meters_per_unit=1.0, kilograms_per_unit=1.0)
        stage_utils.set_stage_up_axis("Z")
        for path in (so.WORLD_PATH, so.OBJECTS_PATH, so.LOOKS_PATH, so.PHYSICS_MATERIALS_PATH, so.LIGHTS_PATH,
                     so.CAMERAS_PATH):  # fmt: skip
            stage_utils.define_prim(path, "Xform")
        self._stage_key = None
        self._authored = {}
        self._inactive = set()
        self.new_stages += 1

    def stop(self) -> None:
        """Stop the timeline, deliver the STOP callbacks now (an app update that steps no physics) and
        invalidate the physics views explicitly, so that no late STOP invalidates the next episode's."""
        if app_utils.is_playing():
            app_utils.stop()
            RenderingManager.render()
        SimulationManager.invalidate_physics()

    def author(self, ops: tuple[so.StageOp, ...]) -> None:
        """Create or update the USD of every op (timeline stopped)."""
        so.write_texture_files(ops, self.texture_dir)
        for op in ops:
            handler = self._handlers.get(type(op))
            if handler is None:
                raise TypeError(f"no executor handler for stage op {type(op).__name__}")
            handler(op)
        self._authored.update(so.prim_structures(ops))
        self._stage_key = so.structure_key(ops)

    def start(self, ops: tuple[so.StageOp, ...]) -> SceneHandles:
        """Play the timeline, initialize physics, wrap the prims (checking the robot's DOFs and every
        tensor view) and attach the cameras."""
        app_utils.play()
        RenderingManager.render()  # deliver the PLAY callbacks without stepping physics
        SimulationManager.initialize_physics()  # a no-op when the PLAY callback initialized it
        robot_op = so.ops_of_type(ops, so.AddRobot)[0]
        robot = Articulation(robot_op.path)
        problems = so.articulation_problems(robot_op, list(robot.dof_names), list(robot.link_names),
                                            list(robot.dof_types))  # fmt: skip
        if problems:
            raise RuntimeError(f"robot asset {robot_op.asset} (variants {list(robot_op.variants)}): "
                               + "; ".join(problems))  # fmt: skip
        hand = RigidPrim(f"{robot_op.path}/{so.FRANKA_HAND_LINK}")
        dynamic, kinematic, visual, contact_columns = self._wrap_objects(ops, robot_op.path)
        arm_dofs = [int(i) for i in _numpy(robot.get_dof_indices(list(robot_op.arm_joints)))]
        finger_dofs = [int(i) for i in _numpy(robot.get_dof_indices(list(robot_op.finger_joints)))]
        hand_link = int(_numpy(robot.get_link_indices(so.FRANKA_HAND_LINK)).reshape(-1)[0])
        jacobian_row = hand_link - (robot.num_links - int(robot.jacobian_matrix_shape[0]))
        with tensor_backend():
            com_positions, _ = robot.get_link_coms(link_indices=[hand_link])
        hand_com = _numpy(com_positions).reshape(-1, 3)[0].astype(float)
        handles = SceneHandles(robot, hand, arm_dofs, finger_dofs, hand_link, jacobian_row, hand_com, dynamic,
                               kinematic, visual, contact_columns)  # fmt: skip
        self.require_physics(handles)
        self.apply_runtime(ops, handles)
        handles.cameras = self.attach_cameras(ops)
        return handles

    @staticmethod
    def physics_valid(handles: SceneHandles) -> dict[str, bool]:
        """Whether each wrapper's physics tensor view is valid: ``robot``, ``hand`` and every object
        with a rigid body, by scene name."""
        valid = {"robot": handles.robot.is_physics_tensor_entity_valid(),
                 "hand": handles.hand.is_physics_tensor_entity_valid()}  # fmt: skip
        for group in (handles.dynamic, handles.kinematic):
            for name, body in group.items():
                valid[name] = body.is_physics_tensor_entity_valid()
        return valid

    def require_physics(self, handles: SceneHandles) -> None:
        """Raise :class:`PhysicsHandleError` naming every wrapper without a valid tensor view."""
        invalid = sorted(name for name, ok in self.physics_valid(handles).items() if not ok)
        if invalid:
            raise PhysicsHandleError(
                f"physics tensor views not valid for {invalid} after play (physics not initialized, or a late "
                "timeline STOP invalidated them)"
            )

    def apply_runtime(self, ops: tuple[so.StageOp, ...], handles: SceneHandles) -> None:
        """Values written through the physics tensor API (timeline playing): drive gains and robot
        gravity. (Object masses are authored in USD with ``UsdPhysics.MassAPI``, so PhysX derives
        the inertia from them when it parses the stage.)"""
        robot = handles.robot
        with tensor_backend():
            for op in ops:
                if isinstance(op, so.SetJointGains):
                    dofs = [int(i) for i in _numpy(robot.get_dof_indices(list(op.joints)))]
                    robot.set_dof_gains(
                        np.asarray([op.stiffness], dtype=np.float32), np.asarray([op.damping], dtype=np.float32),
                        dof_indices=dofs,
                    )  # fmt: skip
                elif isinstance(op, so.SetRobotGravity):
                    robot.set_link_enabled_gravities([op.enabled])

    def reset_state(self, ops: tuple[so.StageOp, ...], handles: SceneHandles) -> None:
        """Initial joint state, object poses and zero velocities (timeline playing), then one physics
        step so that the writes reach the renderer (tensor writes land in the physics buffers; the
        renderer sees them after a step). Without it the first image of an episode can show the
        asset's default pose or the previous episode."""
        robot_op = so.ops_of_type(ops, so.AddRobot)[0]
        robot = handles.robot
        dofs = handles.arm_dofs + handles.finger_dofs
        q = np.asarray([list(robot_op.arm_positions) + list(robot_op.finger_positions)], dtype=np.float32)
        with tensor_backend():
            robot.set_dof_positions(q, dof_indices=dofs)
            robot.set_dof_velocities(np.zeros_like(q), dof_indices=dofs)
            robot.set_dof_position_targets(q, dof_indices=dofs)
            body: RigidPrim
            for op in ops:
                if isinstance(op, so.CreateRigidPrim):
                    body = handles.dynamic[op.name] if op.name in handles.dynamic else handles.kinematic[op.name]
                    body.set_world_poses(positions=[op.pos], orientations=[op.quat])
            for body in handles.dynamic.values():
                body.set_velocities(linear_velocities=[(0.0, 0.0, 0.0)], angular_velocities=[(0.0, 0.0, 0.0)])
        for op in so.ops_of_type(ops, so.CreateVisualPrim):
            handles.visual[op.name].set_world_poses(positions=[op.pos], orientations=[op.quat])
        view: TensorSimulationView | None = SimulationManager.get_physics_simulation_view()
        if view is not None:  # propagate the new joint positions to the link poses
            view.update_articulations_kinematic()
        self.step_physics(1)

    def attach_cameras(self, ops: tuple[so.StageOp, ...]) -> dict[str, CameraHandle]:
        """Render products with ``rgb`` and ``semantic_segmentation`` annotators per camera: kept
        across episodes, (re)created for a new camera or one whose path or resolution changed."""
        for op in so.ops_of_type(ops, so.CreateCamera):
            if op.name in self._cameras and self._cameras[op.name].structure == op.structure():
                continue
            self._release_camera(op.name)
            product: RenderProduct = rep.create.render_product(op.path, (op.width, op.height))
            rgb: Annotator = rep.AnnotatorRegistry.get_annotator("rgb")
            rgb.attach([product])
            segmentation: Annotator = rep.AnnotatorRegistry.get_annotator(
                "semantic_segmentation", init_params={"colorize": False, "semanticTypes": [SEGMENTATION_TAXONOMY]}
            )
            segmentation.attach([product])
            self._cameras[op.name] = CameraHandle(op.name, op.path, op.width, op.height, product, rgb, segmentation,
                                                  op.structure())  # fmt: skip
        names = {op.name for op in so.ops_of_type(ops, so.CreateCamera)}
        return {name: handle for name, handle in self._cameras.items() if name in names}

    def _release_camera(self, name: str) -> None:
        handle = self._cameras.pop(name, None)
        if handle is not None:
            handle.rgb.detach()
            handle.segmentation.detach()
            handle.render_product.destroy()

    def release_cameras(self) -> None:
        """Detach annotators and destroy render products."""
        for name in list(self._cameras):
            self._release_camera(name)

    @staticmethod
    def step_physics(steps: int) -> None:
        """Advance physics by ``steps`` physics steps (no rendering); with Fabric enabled, the
        last step also copies the physics state into Fabric, which the renderer reads."""
        if steps > 1:
            SimulationManager.step(steps=steps - 1)
        SimulationManager.step(steps=1, update_fabric=SimulationManager.is_fabric_enabled())

    @staticmethod
    def capture(rt_subframes: int = 1) -> None:
        """Render one observation of every render product and wait until the annotators hold it:
        ``rt_subframes`` RTX subframes, the timeline not advanced and physics not stepped."""
        with physics_paused():
            rep.orchestrator.step(rt_subframes=rt_subframes, delta_time=0.0, pause_timeline=False)

    def warm_up(self, frames_count: int, rt_subframes: int = 1) -> None:
        """Render and discard ``frames_count`` frames at the current state (the renderer's temporal
        history then holds only this state)."""
        for _ in range(frames_count):
            self.capture(rt_subframes)

    # ------------------------------------------------------------------- handlers
    def _annotate(self, op: so.AnnotateStage) -> None:
        stage = stage_utils.get_current_stage(backend="usd")
        layer = stage.GetRootLayer()
        data = dict(layer.customLayerData)
        data["sim2real"] = {
            "task": op.task, "instruction": op.instruction, "split": op.split, "seed": op.seed,
            "version": op.version, "task_params": op.task_params_json, "scene_hash": op.content_hash,
        }  # fmt: skip
        layer.customLayerData = data

    def _configure_physics(self, op: so.ConfigurePhysics) -> None:
        SimulationManager.setup_simulation(dt=op.physics_dt, device=op.device)
        RenderingManager.set_dt(op.rendering_dt)
        scene: PhysicsScene
        for scene in SimulationManager.get_physics_scenes():
            scene.set_gravity(op.gravity)

    def _box(self, path: str, center: so.Vec3, half_extents: so.Vec3) -> None:
        full = [2.0 * h for h in half_extents]
        cube = Cube(path, sizes=1.0)
        cube.set_local_poses(translations=[center], orientations=[(1.0, 0.0, 0.0, 0.0)])
        cube.set_local_scales([full])

    def _ground(self, op: so.CreateGround) -> None:
        self._box(op.path, (0.0, 0.0, op.z - 0.05), (op.half_size, op.half_size, 0.05))
        physics_utils.apply_collision(op.path)

    def _table(self, op: so.CreateTable) -> None:
        self._box(op.path, op.center, op.half_extents)
        if not stage_utils.get_current_stage(backend="usd").GetPrimAtPath(op.path).HasAPI(UsdPhysics.RigidBodyAPI):
            physics_utils.apply_rigid_body(op.path, kinematic=True)

    def _backdrop(self, op: so.CreateBackdrop) -> None:
        self._box(op.path, op.center, op.half_extents)

    def _asset_path(self, asset: str) -> str:
        return resolve_asset(asset, self._assets_root, get_assets_root_path)

    def _robot(self, op: so.AddRobot) -> None:
        stage = stage_utils.get_current_stage(backend="usd")
        if not stage.GetPrimAtPath(op.path).IsValid():
            stage_utils.add_reference_to_stage(usd_path=self._asset_path(op.asset), path=op.path,
                                               variants=[tuple(v) for v in op.variants])  # fmt: skip
        robot = XformPrim(op.path, reset_xform_op_properties=True)
        robot.set_world_poses(positions=[(0.0, 0.0, 0.0)], orientations=[(1.0, 0.0, 0.0, 0.0)])

    def _noop_until_running(self, op: so.StageOp) -> None:
        """Written in :meth:`apply_runtime` through the tensor API."""

    def _noop_backend_side(self, op: so.StageOp) -> None:
        """Applied by the backend (controller latency, downstream sensor noise)."""

    def _parts(self, root: str, parts: tuple[so.GeomPart, ...]) -> list[str]:
        paths = []
        for index, part in enumerate(parts):
            path = f"{root}/part{index}"
            if part.kind == "cube":
                prim: XformPrim = Cube(path, sizes=1.0)
            elif part.kind == "sphere":
                prim = Sphere(path, radii=part.radius)
            elif part.kind == "cylinder":
                prim = Cylinder(path, radii=part.radius, heights=part.height, axes="Z")
            elif part.kind == "capsule":
                prim = Capsule(path, radii=part.radius, heights=part.height, axes="Z")
            elif part.kind == "mesh":
                mesh = Mesh(path)
                mesh.set_points([np.asarray(part.points, dtype=np.float32)])
                mesh.set_face_specs(
                    vertex_indices=[np.asarray(part.face_vertex_indices, dtype=np.int32)],
                    vertex_counts=[np.asarray(part.face_vertex_counts, dtype=np.int32)],
                )
                prim = mesh
            else:
                raise ValueError(f"unknown geometry part kind {part.kind!r}")
            prim.set_local_poses(translations=[part.translation], orientations=[part.orientation])
            prim.set_local_scales([part.scale])
            paths.append(path)
        return paths

    def _object_root(self, path: str, pos: so.Vec3, quat: so.Quat) -> bool:
        """Define the object's Xform (if new) and pose it; returns whether it was created."""
        stage = stage_utils.get_current_stage(backend="usd")
        created = not stage.GetPrimAtPath(path).IsValid()
        if created:
            stage_utils.define_prim(path, "Xform")
        XformPrim(path, reset_xform_op_properties=True).set_world_poses(positions=[pos], orientations=[quat])
        return created

    def _rigid(self, op: so.CreateRigidPrim) -> None:
        """A new object slot gets its parts, rigid body and contact reporting; an existing one (same
        kinematic state and part kinds) gets its part sizes, poses and mass rewritten in place."""
        created = self._object_root(op.path, op.pos, op.quat)
        self._parts(op.path, op.parts)
        if created:
            physics_utils.apply_rigid_body(op.path, approximation="convexHull", kinematic=op.kinematic)
            if not op.kinematic:  # PhysxContactReportAPI, authored before PhysX parses the stage at play
                RigidPrim(op.path).set_enabled_contact_tracking([True])
        if not op.kinematic:
            mass_api = UsdPhysics.MassAPI.Apply(stage_utils.get_current_stage(backend="usd").GetPrimAtPath(op.path))
            mass_api.CreateMassAttr().Set(op.mass)

    def _visual(self, op: so.CreateVisualPrim) -> None:
        self._object_root(op.path, op.pos, op.quat)
        self._parts(op.path, op.parts)

    def _labels(self, op: so.SetSemanticLabels) -> None:
        semantics_utils.remove_all_labels(op.path)
        for taxonomy, label in op.labels:
            semantics_utils.add_labels(op.path, labels=[label], taxonomy=taxonomy)

    def _physics_material(self, op: so.BindPhysicsMaterial) -> None:
        material = RigidBodyMaterial(
            op.material_path, static_frictions=[op.static_friction], dynamic_frictions=[op.dynamic_friction],
            restitutions=[op.restitution],
        )  # fmt: skip
        material.set_combine_modes(frictions=op.combine_mode, restitutions=op.combine_mode)
        XformPrim(op.prim_path).apply_physics_materials(material)

    def _omnipbr(self, op: so.CreateOmniPBRMaterial) -> None:
        material = OmniPbrMaterial(op.path)
        material.set_input_values("diffuse_color_constant", [op.diffuse])
        material.set_input_values("reflection_roughness_constant", [op.roughness])
        material.set_input_values("metallic_constant", [op.metallic])
        material.set_input_values("specular_level", [op.specular_level])
        material.set_input_values("enable_opacity", [op.opacity < 1.0])
        material.set_input_values("opacity_constant", [op.opacity])
        texture = str(self.texture_dir / op.texture_file) if op.texture_file else ""
        material.set_input_values("diffuse_texture", [texture])
        material.set_input_values("project_uvw", [op.texture_file is not None])
        material.set_input_values("world_or_object", [op.world_space])
        material.set_input_values("texture_scale", [(op.texture_scale, op.texture_scale)])

    def _bind_material(self, op: so.BindMaterial) -> None:
        XformPrim(op.prim_path).apply_visual_materials(OmniPbrMaterial(op.material_path))

    def _light(self, op: so.CreateLight) -> None:
        light: DistantLight | SphereLight
        if op.kind == "distant":
            light = DistantLight(op.path)
        elif op.kind == "sphere":
            sphere = SphereLight(op.path, radii=op.radius)
            sphere.set_enabled_treat_as_points([False])
            light = sphere
        else:
            raise ValueError(f"unknown light kind {op.kind!r}")
        light.set_local_poses(translations=[op.pos], orientations=[op.quat])
        light.set_intensities([op.intensity])
        light.set_colors([op.color])
        light.set_enabled_normalizations([False])
        prim = light.prims[0]
        UsdLux.LightAPI(prim).CreateSpecularAttr().Set(float(op.specular))
        UsdLux.ShadowAPI.Apply(prim).CreateShadowEnableAttr().Set(bool(op.shadow))
        if op.cone_angle_deg is not None:
            shaping = UsdLux.ShapingAPI.Apply(prim)
            shaping.CreateShapingConeAngleAttr().Set(float(op.cone_angle_deg))
            shaping.CreateShapingConeSoftnessAttr().Set(float(op.cone_softness))
        elif prim.HasAPI(UsdLux.ShapingAPI):
            UsdLux.ShapingAPI(prim).CreateShapingConeAngleAttr().Set(180.0)  # no cone

    def _dome(self, op: so.SetDomeLight) -> None:
        dome = DomeLight(op.path)
        dome.set_intensities([op.intensity])
        dome.set_colors([op.color])
        UsdLux.ShadowAPI.Apply(dome.prims[0]).CreateShadowEnableAttr().Set(False)

    def _camera(self, op: so.CreateCamera) -> None:
        camera = Camera(op.path)
        camera.set_local_poses(translations=[op.pos], orientations=[op.quat])
        camera.set_projections("perspective")
        camera.set_focal_lengths([op.focal_length_mm / CAMERA_WRAPPER_UNIT])
        camera.set_apertures(
            horizontal_apertures=[op.horizontal_aperture_mm / CAMERA_WRAPPER_UNIT],
            vertical_apertures=[op.vertical_aperture_mm / CAMERA_WRAPPER_UNIT],
        )
        camera.set_clipping_ranges(near_distances=[op.clipping_range[0]], far_distances=[op.clipping_range[1]])

    # ------------------------------------------------------------------- wrappers
    def _wrap_objects(self, ops: tuple[so.StageOp, ...], robot_path: str) -> tuple[
        dict[str, RigidPrim], dict[str, RigidPrim], dict[str, XformPrim], dict[str, list[str]]
    ]:  # fmt: skip
        rigid = so.ops_of_type(ops, so.CreateRigidPrim)
        stage = stage_utils.get_current_stage(backend="usd")
        robot_links = [(f"{robot_path}/{link}", "robot") for link in so.FRANKA_LINKS]
        colliders = [*robot_links, (so.TABLE_PATH, "table"), *[(op.path, op.name) for op in rigid]]
        colliders = [(path, name) for path, name in colliders
                     if stage.GetPrimAtPath(path).IsValid() and stage.GetPrimAtPath(path).IsActive()]  # fmt: skip
        dynamic: dict[str, RigidPrim] = {}
        kinematic: dict[str, RigidPrim] = {}
        contact_columns: dict[str, list[str]] = {}
        for op in rigid:
            if op.kinematic:
                kinematic[op.name] = RigidPrim(op.path)
                continue
            filters = [(path, name) for path, name in colliders if path != op.path]
            dynamic[op.name] = RigidPrim(op.path, contact_filter_paths=[path for path, _ in filters])
            contact_columns[op.name] = [name for _, name in filters]
        visual = {op.name: XformPrim(op.path) for op in so.ops_of_type(ops, so.CreateVisualPrim)}
        return dynamic, kinematic, visual, contact_columns


def read_rgb(handle: CameraHandle) -> np.ndarray:
    """The camera's last captured RGB frame, uint8 (height, width, 3); :class:`frames.EmptyFrameError`
    when the annotator holds none."""
    return frames.rgb_frame(handle.rgb.get_data(do_array_copy=True), handle.height, handle.width, handle.name)


def _segmentation(handle: CameraHandle) -> tuple[np.ndarray, dict[str, Any]]:
    data = handle.segmentation.get_data(do_array_copy=True)
    return frames.segmentation_frame(data, handle.height, handle.width, handle.name)


def read_segmentation(handle: CameraHandle, names: list[str]) -> np.ndarray:
    """int32 (height, width): index into ``names`` of the object seen at each pixel, -1 elsewhere."""
    ids, id_to_labels = _segmentation(handle)
    return frames.object_index_map(ids, id_to_labels, names, SEGMENTATION_TAXONOMY)


def read_label_mask(handle: CameraHandle, label: str) -> np.ndarray:
    """bool (height, width): pixels whose ``class`` label is ``label`` (e.g. ``stage_ops.HAND_LABEL``)."""
    ids, id_to_labels = _segmentation(handle)
    return frames.label_mask(ids, id_to_labels, label, SEGMENTATION_TAXONOMY)


def pose_arrays(prim: XformPrim) -> tuple[np.ndarray, np.ndarray]:
    """First prim's world position (3,) m and quaternion (4,) wxyz from a prim wrapper: rigid bodies
    through the physics tensor view (never a silent USD fallback), visual prims from USD."""
    context = tensor_backend() if isinstance(prim, RigidPrim) else backend_utils.use_backend("usd")
    with context:
        positions, orientations = prim.get_world_poses()
    return _numpy(positions)[0].astype(float), _numpy(orientations)[0].astype(float)


def resolve_asset(asset: str, assets_root: str | None, find_root: Callable[[], str]) -> str:
    """The USD path of ``asset``: itself when absolute (a URL or an existing file), else under
    ``assets_root`` or, when that is None, under ``find_root()`` (``get_assets_root_path``, which
    raises ``RuntimeError`` in Isaac Sim 6.2 when the root is not set or not reachable, and returned
    None in earlier releases); :class:`AssetsRootError` says how to set it."""
    if "://" in asset or Path(asset).is_file():
        return asset
    root: str | None = assets_root
    reason = ""
    if not root:
        try:
            root = find_root()
        except RuntimeError as error:
            root, reason = None, f": {error}"
    if not root:
        raise AssetsRootError(
            f"Isaac Sim's assets root is unknown (get_assets_root_path() found none{reason}); set "
            "backend_options.assets_root (a local mirror or URL) or backend_options.robot_usd, or configure "
            "/persistent/isaac/asset_root/default"
        )
    return root.rstrip("/") + asset


def contact_pairs(handles: SceneHandles) -> frozenset[tuple[str, str]]:
    """Touching (object, other) pairs by scene name, from the dynamic objects' contact matrices."""
    pairs = set()
    body: RigidPrim
    for name, body in handles.dynamic.items():
        with tensor_backend():
            forces = _numpy(body.get_contact_force_matrix())[0]
        for column, other in enumerate(handles.contact_columns[name]):
            if np.any(np.abs(forces[column]) > 0.0):
                pairs.add((name, other))
    return frozenset(pairs)


def stage_metadata() -> dict[str, Any]:
    """The ``sim2real`` custom layer data of the current stage (for debugging)."""
    layer = stage_utils.get_current_stage(backend="usd").GetRootLayer()
    return json.loads(json.dumps(dict(layer.customLayerData).get("sim2real", {}), default=str))
