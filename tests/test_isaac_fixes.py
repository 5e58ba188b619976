"""The Isaac backend and its executor run end to end against a fake Isaac Sim (every ``isaacsim`` /
``omni`` / ``carb`` / ``pxr`` module replaced by recording fakes), checking each first-run fix of
issue 20 without a GPU: frames never empty or stale, one physics step before the first render,
the capture call, physics views invalidated on stop and asserted after play, the assets-root
message, explicit Franka variants and DOF checks, the Jacobian's centre-of-mass shift, and object /
light / camera slots edited in place. The pure parts (frames, plans, kinematics) are tested directly.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import pytest

from sim2real.randomizers import load_preset, sample_scene
from sim2real.sim.backend import BackendConfig
from sim2real.sim.isaac import frames
from sim2real.sim.isaac import kinematics as kin
from sim2real.sim.isaac import stage_ops as so
from sim2real.sim.robots import ROBOTS
from sim2real.sim.scene_spec import LightSpec

H = W = 128


# ------------------------------------------------------------------ frames
def test_empty_or_wrongly_sized_frames_are_errors_never_h_w_0_images() -> None:
    bad = (np.zeros(0, np.uint8), {"data": np.zeros((0,), np.uint8)}, None, {"data": None},
           np.ones((H, W, 0), np.uint8), np.ones((64, 64, 3), np.uint8), np.ones(H * W * 2, np.uint8))  # fmt: skip
    for data in bad:
        with pytest.raises(frames.EmptyFrameError, match="camera 'front'"):
            frames.rgb_frame(data, H, W, "front")
    with pytest.raises(frames.EmptyFrameError, match="every pixel is 0"):
        frames.rgb_frame(np.zeros((H, W, 4), np.uint8), H, W, "front")
    rgba = np.full((H * W * 4,), 7, np.uint8)  # a flat RGBA buffer
    image = frames.rgb_frame({"data": rgba}, H, W, "front")
    assert image.shape == (H, W, 3) and image.dtype == np.uint8 and image.flags.c_contiguous


def test_segmentation_frames_and_label_maps() -> None:
    ids = np.array([[0, 1], [2, 3]], np.uint32)
    labels = {"0": {"class": "BACKGROUND"}, "1": {"class": "cube"}, "2": {"class": so.HAND_LABEL}, "3": "bowl"}
    got, id_to_labels = frames.segmentation_frame({"data": ids.reshape(-1), "info": {"idToLabels": labels}}, 2, 2, "c")
    np.testing.assert_array_equal(frames.object_index_map(got, id_to_labels, ["bowl", "cube"], "class"),
                                  [[-1, 1], [-1, 0]])  # fmt: skip
    np.testing.assert_array_equal(frames.label_mask(got, id_to_labels, so.HAND_LABEL, "class"), [[0, 0], [1, 0]])
    with pytest.raises(frames.EmptyFrameError, match="returned 0 ids for 2x2 px"):
        frames.segmentation_frame({"data": np.zeros(0), "info": {}}, 2, 2, "c")


def test_repeated_frames_are_stale_only_when_every_camera_repeats_after_a_change() -> None:
    a, b = np.ones((2, 2, 3), np.uint8), np.full((2, 2, 3), 2, np.uint8)
    assert frames.repeated_frames({"front": a, "wrist": b}, {"front": a, "wrist": b}, changed=True)
    assert not frames.repeated_frames({"front": a, "wrist": b}, {"front": a, "wrist": b}, changed=False)
    assert not frames.repeated_frames({"front": a, "wrist": a}, {"front": a, "wrist": b}, changed=True)
    assert not frames.repeated_frames({}, {"front": a}, changed=True)


# ----------------------------------------------------------------- kinematics
def test_physx_jacobian_is_moved_from_the_hand_centre_of_mass_to_the_tcp() -> None:
    q = np.array([0.1, -0.3, 0.2, -2.3, 0.1, 0.7, 0.3])
    hand = kin.joint_frames(q)[-1]
    hand_pos, hand_mat = hand[:3, 3], hand[:3, :3]
    com_local = np.array([0.0, 0.0, 0.04])  # the hand's centre of mass, hand frame (m)
    at_origin = kin.shift_jacobian(kin.tcp_jacobian(q), hand_pos - kin.tcp_pose(q)[0])
    at_com = kin.shift_jacobian(at_origin, hand_mat @ com_local)  # what PhysX reports
    tcp = kin.tcp_pose(q)[0]
    np.testing.assert_allclose(kin.physx_tcp_jacobian(at_com, hand_pos, hand_mat, com_local, tcp),
                               kin.tcp_jacobian(q), atol=1e-12)  # fmt: skip
    old = kin.shift_jacobian(at_com, tcp - hand_pos)  # the shift that ignored the centre of mass
    assert np.abs(old - kin.tcp_jacobian(q)).max() > 0.01


# -------------------------------------------------------------- stage plans
def _scene(task: str = "pick_place", seed: int = 0) -> Any:
    return sample_scene(task, seed, load_preset("default"))


def _plan(previous: tuple, ops: tuple, cameras: dict | None = None) -> so.StagePlan:
    camera_structures = {op.name: op.structure() for op in previous if isinstance(op, so.CreateCamera)}
    return so.plan_stage_update(so.structure_key(previous), so.prim_structures(previous),
                                camera_structures if cameras is None else cameras, ops)  # fmt: skip


def test_a_new_episode_edits_slots_instead_of_opening_a_new_stage() -> None:
    scene = _scene()
    ops = so.scene_to_ops(scene)
    assert so.plan_stage_update(None, {}, {}, ops).new_stage
    same = _plan(ops, ops)
    assert not same.new_stage and not same.recreate and not same.deactivate and not same.cameras_create
    moved = replace(scene, objects=(replace(scene.objects[0], pos=(0.5, 0.1, 0.0), size=tuple(
        s * 1.5 for s in scene.objects[0].size)), *scene.objects[1:]))  # fmt: skip
    plan = _plan(ops, so.scene_to_ops(moved))
    assert not plan.new_stage and not plan.recreate  # a new size or pose is an attribute edit


def test_objects_lights_and_cameras_that_change_kind_are_recreated_or_deactivated() -> None:
    scene = _scene()
    ops = so.scene_to_ops(scene)
    first = scene.objects[0]
    path = f"{so.OBJECTS_PATH}/{so.sanitize_name(first.name)}"
    other_kind = "sphere" if first.shape != "sphere" else "bowl"
    size = (0.02,) if other_kind == "sphere" else (0.05, 0.03)
    reshaped = replace(scene, objects=(replace(first, shape=other_kind, size=size), *scene.objects[1:]))
    assert path in _plan(ops, so.scene_to_ops(reshaped)).recreate
    fewer = replace(scene, objects=scene.objects[1:])
    plan = _plan(ops, so.scene_to_ops(fewer))
    assert path in plan.deactivate and f"{so.LOOKS_PATH}/obj_{so.sanitize_name(first.name)}" in plan.deactivate
    back = _plan(so.scene_to_ops(fewer), ops)  # a later scene with the object again: reactivated
    assert path not in back.activate  # (the slot was authored by the first scene, not `fewer`)
    authored = {**so.prim_structures(ops), **so.prim_structures(so.scene_to_ops(fewer))}
    again = so.plan_stage_update(so.structure_key(ops), authored, {}, ops)
    assert path in again.activate and path not in again.deactivate
    lights = (LightSpec("point", pos=(1.0, 1.0, 1.5)), *scene.lights[1:])
    relit = so.scene_to_ops(replace(scene, lights=lights))
    light_path = f"{so.LIGHTS_PATH}/light0"
    assert (light_path in _plan(ops, relit).recreate) == (scene.lights[0].type == "directional")
    bigger = replace(scene, cameras=(replace(scene.cameras[0], width=96), *scene.cameras[1:]))
    plan = _plan(ops, so.scene_to_ops(bigger))
    assert plan.cameras_release == (scene.cameras[0].name,) and plan.cameras_create == (scene.cameras[0].name,)
    variants = so.scene_to_ops(scene, robot_variants=(("Gripper", "default"),))
    assert _plan(ops, variants).new_stage


def test_robot_ops_carry_the_variants_and_label_the_hand() -> None:
    ops = so.scene_to_ops(_scene(), robot_variants=(("Gripper", "alternatefinger"), ("Mesh", "performance")))
    robot = so.ops_of_type(ops, so.AddRobot)[0]
    assert robot.variants == (("Gripper", "alternatefinger"), ("Mesh", "performance"))
    labelled = {op.path for op in so.ops_of_type(ops, so.SetSemanticLabels) if op.labels == (("class", so.HAND_LABEL),)}
    assert labelled == {f"{so.ROBOT_PATH}/{link}" for link in (so.FRANKA_HAND_LINK, *so.FRANKA_FINGER_LINKS)}


class _DofType:
    def __init__(self, name: str) -> None:
        self.name = name


def test_articulation_problems_name_missing_dofs_links_and_wrong_drive_types() -> None:
    op = so.ops_of_type(so.scene_to_ops(_scene()), so.AddRobot)[0]
    names = [*so.FRANKA_ARM_JOINTS, *so.FRANKA_FINGER_JOINTS]
    types = [_DofType("Rotation")] * 7 + [_DofType("Translation")] * 2
    assert so.articulation_problems(op, names, so.FRANKA_LINKS, types) == []
    assert so.articulation_problems(op, names, so.FRANKA_LINKS, [0] * 7 + [1] * 2) == []
    renamed = [*so.FRANKA_ARM_JOINTS, "finger_joint1", "finger_joint2"]
    [problem] = so.articulation_problems(op, renamed, so.FRANKA_LINKS, types)
    assert "DOFs ['panda_finger_joint1', 'panda_finger_joint2'] missing" in problem
    [problem] = so.articulation_problems(op, names, so.FRANKA_LINKS, [_DofType("Rotation")] * 9)
    assert "wrong type" in problem and "panda_finger_joint1" in problem
    assert (
        "links ['panda_hand', 'panda_leftfinger', 'panda_rightfinger'] missing"
        in so.articulation_problems(op, names, so.FRANKA_LINKS[:8], types)[0]
    )


# ------------------------------------------------------------ fake Isaac Sim
class FakeStage:
    """The part of a USD stage the executor touches: prim existence and activity."""

    def __init__(self) -> None:
        self.defined: set[str] = set()
        self.inactive: set[str] = set()
        self.layer = mock.MagicMock(customLayerData={})

    def define(self, path: str, *_: Any) -> None:
        self.defined.add(path)

    def delete(self, path: str) -> bool:
        self.defined = {p for p in self.defined if p != path and not p.startswith(path + "/")}
        return True

    def GetPrimAtPath(self, path: str) -> Any:  # noqa: N802 - USD's name
        stage = self
        prim = mock.MagicMock()
        prim.IsValid.side_effect = lambda: path in stage.defined
        prim.IsActive.side_effect = lambda: path not in stage.inactive
        prim.HasAPI.return_value = False
        prim.SetActive.side_effect = lambda on: stage.inactive.discard(path) if on else stage.inactive.add(path)
        return prim

    def GetRootLayer(self) -> Any:  # noqa: N802 - USD's name
        return self.layer


class Kit:
    """Shared state of the fake Isaac Sim: an event log, settings, prim validity, rendered frames."""

    def __init__(self) -> None:
        self.log: list[tuple] = []
        self.settings: dict[str, Any] = {"/rtx/rendermode": "RealTimePathTracing",
                                         "/app/player/playSimulations": True}  # fmt: skip
        self.invalid: set[str] = set()
        self.dof_names = [*so.FRANKA_ARM_JOINTS, *so.FRANKA_FINGER_JOINTS]
        self.stage = FakeStage()
        self.frame_queue: list[Any] = []  # rgb annotator outputs, consumed per read; then a fresh frame
        self.frame_counter = 0
        self.q = np.zeros((1, 9), np.float32)

    def next_rgb(self) -> Any:
        if self.frame_queue:
            return self.frame_queue.pop(0)
        self.frame_counter += 1
        return np.full((H, W, 4), self.frame_counter % 250 + 1, np.uint8)


KIT: Kit


class FakeSettings:
    def get(self, path: str) -> Any:
        return KIT.settings.get(path)

    def get_as_bool(self, path: str) -> bool:
        return bool(KIT.settings.get(path))

    def set_bool(self, path: str, value: bool) -> None:
        KIT.settings[path] = value


class FakeXformPrim:
    def __init__(self, paths: str, **kwargs: Any) -> None:
        self.paths = [paths]
        KIT.log.append(("wrap", type(self).__name__, paths))

    def __getattr__(self, name: str) -> Any:  # setters the executor calls: recorded
        return lambda *args, **kwargs: KIT.log.append((name, self.paths[0]))

    def get_world_poses(self) -> tuple[np.ndarray, np.ndarray]:  # the hand follows joint 1
        return np.array([[0.45 + 0.2 * float(KIT.q[0, 0]), 0.0, 0.4]]), np.array([[0.0, 1.0, 0.0, 0.0]])

    def is_physics_tensor_entity_valid(self) -> bool:
        return self.paths[0] not in KIT.invalid


class FakeRigidPrim(FakeXformPrim):
    def get_velocities(self) -> tuple[np.ndarray, np.ndarray]:
        return np.zeros((1, 3)), np.zeros((1, 3))

    def get_contact_force_matrix(self) -> np.ndarray:
        return np.zeros((1, 16, 3))


class FakeArticulation(FakeXformPrim):
    num_links = len(so.FRANKA_LINKS)
    jacobian_matrix_shape = (num_links - 1, 6, 9)

    @property
    def dof_names(self) -> list[str]:
        return KIT.dof_names

    @property
    def link_names(self) -> list[str]:
        return list(so.FRANKA_LINKS)

    @property
    def dof_types(self) -> list[Any]:
        return [_DofType("Rotation")] * 7 + [_DofType("Translation")] * 2

    def get_dof_indices(self, names: list[str]) -> np.ndarray:
        return np.array([KIT.dof_names.index(n) for n in names])

    def get_link_indices(self, name: str) -> np.ndarray:
        return np.array([so.FRANKA_LINKS.index(name)])

    def get_link_coms(self, link_indices: list[int]) -> tuple[np.ndarray, np.ndarray]:
        return np.array([[[0.0, 0.0, 0.04]]]), np.array([[[1.0, 0.0, 0.0, 0.0]]])

    def get_dof_positions(self, dof_indices: list[int]) -> np.ndarray:
        return KIT.q[:, dof_indices]

    def set_dof_positions(self, q: np.ndarray, dof_indices: list[int]) -> None:
        KIT.q[:, dof_indices] = q
        KIT.log.append(("set_dof_positions", self.paths[0]))

    def get_jacobian_matrices(self) -> np.ndarray:
        jac = np.zeros((1, *self.jacobian_matrix_shape))
        jac[0, :, :, :7] = np.eye(6, 7)
        return jac


class FakeAnnotator:
    def __init__(self, name: str) -> None:
        self.name = name

    def attach(self, products: list[Any]) -> None:
        KIT.log.append(("attach", self.name))

    def detach(self) -> None:
        KIT.log.append(("detach", self.name))

    def get_data(self, do_array_copy: bool = True) -> Any:
        if self.name == "rgb":
            return KIT.next_rgb()
        ids = np.zeros((H, W), np.uint32)
        ids[60:70, 60:70] = 1
        return {"data": ids, "info": {"idToLabels": {"0": {"class": "BACKGROUND"}, "1": {"class": so.HAND_LABEL}}}}


MODULES = (
    "carb", "isaacsim", "isaacsim.core", "isaacsim.core.experimental", "isaacsim.core.experimental.utils",
    "isaacsim.core.experimental.utils.app", "isaacsim.core.experimental.utils.backend",
    "isaacsim.core.experimental.utils.physics", "isaacsim.core.experimental.utils.semantics",
    "isaacsim.core.experimental.utils.stage", "isaacsim.core.experimental.materials",
    "isaacsim.core.experimental.objects", "isaacsim.core.experimental.prims", "isaacsim.core.rendering_manager",
    "isaacsim.core.simulation_manager", "isaacsim.storage", "isaacsim.storage.native", "omni", "omni.replicator",
    "omni.replicator.core", "pxr",
)  # fmt: skip


def _record(name: str, result: Any = None) -> Any:
    def call(*args: Any, **kwargs: Any) -> Any:
        KIT.log.append((name, kwargs) if kwargs else (name,))
        return result

    return call


@pytest.fixture
def fake_isaac(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """Fake Isaac Sim modules in ``sys.modules`` and a freshly imported executor bound to them."""
    global KIT
    KIT = Kit()
    modules: dict[str, Any] = {}
    for name in MODULES:
        modules[name] = mock.MagicMock(name=name)
        parent, _, leaf = name.rpartition(".")
        if parent:
            setattr(modules[parent], leaf, modules[name])
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    prims = modules["isaacsim.core.experimental.prims"]
    prims.Articulation, prims.RigidPrim, prims.XformPrim = FakeArticulation, FakeRigidPrim, FakeXformPrim
    modules["carb"].settings.get_settings.return_value = FakeSettings()
    app = modules["isaacsim.core.experimental.utils.app"]
    playing = {"on": False}
    app.is_playing.side_effect = lambda: playing["on"]
    app.play.side_effect = lambda: (playing.update(on=True), KIT.log.append(("play",)))
    app.stop.side_effect = lambda: (playing.update(on=False), KIT.log.append(("stop",)))
    stage = modules["isaacsim.core.experimental.utils.stage"]
    stage.get_current_stage.return_value = KIT.stage
    stage.define_prim.side_effect = KIT.stage.define
    stage.delete_prim.side_effect = lambda path: (KIT.log.append(("delete_prim", path)), KIT.stage.delete(path))
    stage.create_new_stage.side_effect = lambda: (KIT.log.append(("create_new_stage",)), KIT.stage.__init__())
    stage.add_reference_to_stage.side_effect = lambda **kw: (KIT.log.append(("add_reference", kw)),
                                                             KIT.stage.define(kw["path"]))  # fmt: skip
    manager = modules["isaacsim.core.simulation_manager"].SimulationManager
    manager.invalidate_physics.side_effect = _record("invalidate_physics")
    manager.initialize_physics.side_effect = _record("initialize_physics")
    manager.step.side_effect = _record("physics_step")
    manager.is_fabric_enabled.return_value = True
    modules["isaacsim.core.rendering_manager"].RenderingManager.render.side_effect = _record("app_update_no_physics")
    modules["isaacsim.storage.native"].get_assets_root_path.return_value = "https://assets.example/6.2"
    rep = modules["omni.replicator.core"]
    rep.AnnotatorRegistry.get_annotator.side_effect = lambda name, **kw: FakeAnnotator(name)
    rep.orchestrator.step.side_effect = lambda **kw: KIT.log.append(
        ("capture", kw, KIT.settings["/app/player/playSimulations"])
    )
    backend_utils = modules["isaacsim.core.experimental.utils.backend"]
    backend_utils.use_backend.side_effect = lambda *a, **kw: mock.MagicMock()  # a context manager
    monkeypatch.delitem(sys.modules, "sim2real.sim.isaac.executor", raising=False)
    executor = importlib.import_module("sim2real.sim.isaac.executor")
    yield {"modules": modules, "executor": executor, "kit": KIT}
    sys.modules.pop("sim2real.sim.isaac.executor", None)
    package = sys.modules["sim2real.sim.isaac"]
    if getattr(package, "executor", None) is executor:  # no later import may find the fake-bound module
        delattr(package, "executor")


def _names(log: list[tuple]) -> list[str]:
    return [entry[0] for entry in log]


def test_stop_delivers_the_stop_callbacks_and_invalidates_physics(fake_isaac: dict) -> None:
    ex = fake_isaac["executor"].StageExecutor(Path("/tmp"))
    fake_isaac["modules"]["isaacsim.core.experimental.utils.app"].play()
    KIT.log.clear()
    ex.stop()
    assert _names(KIT.log) == ["stop", "app_update_no_physics", "invalidate_physics"]


def test_start_wraps_prims_after_physics_is_initialized_and_checks_dofs_and_views(
    fake_isaac: dict, tmp_path: Path
) -> None:
    ex = fake_isaac["executor"].StageExecutor(tmp_path)
    ops = so.scene_to_ops(_scene(), robot_variants=(("Gripper", "alternatefinger"),))
    ex.prepare(ops)
    ex.author(ops)
    KIT.log.clear()
    handles = ex.start(ops)
    names = _names(KIT.log)
    assert names[:3] == ["play", "app_update_no_physics", "initialize_physics"]
    assert names.index("wrap") > names.index("initialize_physics")  # wrappers bind to the new physics view
    assert handles.jacobian_row == so.FRANKA_LINKS.index("panda_hand") - 1
    np.testing.assert_allclose(handles.hand_com, [0.0, 0.0, 0.04])
    KIT.invalid.add(f"{so.ROBOT_PATH}/{so.FRANKA_HAND_LINK}")
    with pytest.raises(fake_isaac["executor"].PhysicsHandleError, match=r"not valid for \['hand'\]"):
        ex.start(ops)
    KIT.invalid.clear()
    KIT.dof_names = [*so.FRANKA_ARM_JOINTS, "finger_joint1", "finger_joint2"]
    with pytest.raises(RuntimeError, match=r"variants \[\('Gripper', 'alternatefinger'\)\]\): DOFs \['panda_finger"):
        ex.start(ops)


def test_the_robot_is_referenced_with_its_variants(fake_isaac: dict, tmp_path: Path) -> None:
    ex = fake_isaac["executor"].StageExecutor(tmp_path)
    ops = so.scene_to_ops(_scene(), robot_variants=(("Gripper", "alternatefinger"), ("Mesh", "performance")))
    ex.prepare(ops)
    ex.author(ops)
    [reference] = [entry[1] for entry in KIT.log if entry[0] == "add_reference"]
    assert reference["variants"] == [("Gripper", "alternatefinger"), ("Mesh", "performance")]
    assert reference["usd_path"] == "https://assets.example/6.2" + so.FRANKA_USD


def test_an_unset_assets_root_gives_the_backends_message(fake_isaac: dict) -> None:
    executor = fake_isaac["executor"]

    def missing() -> str:  # Isaac Sim 6.2 raises instead of returning None
        raise RuntimeError("The '/persistent/isaac/asset_root/default' setting is not set")

    from sim2real.errors import UsageError

    assert issubclass(executor.AssetsRootError, UsageError)  # a setting: one line, exit status 2
    with pytest.raises(executor.AssetsRootError, match=r"(?s)assets root is unknown.*setting is not set.*"
                                                       r"backend_options\.assets_root"):  # fmt: skip
        executor.resolve_asset(so.FRANKA_USD, None, missing)
    with pytest.raises(executor.AssetsRootError, match="assets root is unknown"):
        executor.resolve_asset(so.FRANKA_USD, None, lambda: "")  # what earlier releases returned (None / "")
    assert executor.resolve_asset(so.FRANKA_USD, "/mnt/assets/", missing) == "/mnt/assets" + so.FRANKA_USD
    assert executor.resolve_asset("omniverse://host/franka.usd", None, missing) == "omniverse://host/franka.usd"


def test_state_writes_reach_the_renderer_through_a_physics_step_and_captures_step_no_physics(
    fake_isaac: dict, tmp_path: Path
) -> None:
    ex = fake_isaac["executor"].StageExecutor(tmp_path)
    ops = so.scene_to_ops(_scene())
    ex.prepare(ops)
    ex.author(ops)
    handles = ex.start(ops)
    KIT.log.clear()
    ex.reset_state(ops, handles)
    names = _names(KIT.log)
    assert names[-1] == "physics_step" and names.index("set_dof_positions") < names.index("physics_step")
    KIT.log.clear()
    ex.warm_up(2, rt_subframes=3)
    assert KIT.log == [("capture", {"rt_subframes": 3, "delta_time": 0.0, "pause_timeline": False}, False)] * 2
    assert KIT.settings["/app/player/playSimulations"] is True  # restored after the capture


def test_a_new_episode_keeps_the_stage_and_deactivates_or_recreates_slots(fake_isaac: dict, tmp_path: Path) -> None:
    ex = fake_isaac["executor"].StageExecutor(tmp_path)
    scene = _scene()
    first = so.scene_to_ops(scene)
    assert ex.prepare(first).new_stage
    ex.author(first)
    ex.start(first)
    removed = f"{so.OBJECTS_PATH}/{so.sanitize_name(scene.objects[-1].name)}"
    fewer = so.scene_to_ops(replace(scene, objects=scene.objects[:-1]))
    KIT.log.clear()
    plan = ex.prepare(fewer)
    assert not plan.new_stage and "create_new_stage" not in _names(KIT.log) and removed in KIT.stage.inactive
    ex.author(fewer)
    ex.start(fewer)
    ex.prepare(first)  # the object is back: its slot is active again
    assert removed not in KIT.stage.inactive
    obj = scene.objects[0]
    reshaped = so.scene_to_ops(replace(scene, objects=(replace(obj, shape="bowl" if obj.shape != "bowl" else "sphere",
                                                               size=(0.05, 0.03) if obj.shape != "bowl" else (0.02,)),
                                                       *scene.objects[1:])))  # fmt: skip
    ex.author(first)
    KIT.log.clear()
    ex.prepare(reshaped)
    assert ("delete_prim", f"{so.OBJECTS_PATH}/{so.sanitize_name(obj.name)}") in KIT.log
    assert ex.new_stages == 1


# ---------------------------------------------------------------- backend
@pytest.fixture
def isaac_backend(fake_isaac: dict, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Any]:
    from sim2real.sim.isaac import backend as backend_module

    monkeypatch.setattr(backend_module, "require_isaacsim", lambda: None)
    monkeypatch.setattr(backend_module, "launch", lambda settings: mock.MagicMock(settings=settings))
    instance = backend_module.IsaacBackend(BackendConfig(options={"texture_dir": str(tmp_path), "warmup_frames": 2}))
    yield instance
    instance.close()


def test_backend_reset_steps_physics_then_warms_up_before_the_first_capture(isaac_backend: Any) -> None:
    KIT.log.clear()
    isaac_backend.reset(_scene())
    names = _names(KIT.log)
    last_step = len(names) - 1 - names[::-1].index("physics_step")
    assert names[last_step + 1 :] == ["capture", "capture"]  # the warm-up frames, after the settle step
    images = isaac_backend.images()
    assert all(image.shape == (H, W, 3) and image.dtype == np.uint8 for image in images.values())
    assert isaac_backend.images().keys() == images.keys()
    assert _names(KIT.log).count("capture") == 3  # one capture per control step, however often it is read


def test_backend_recaptures_an_empty_frame_and_never_returns_one(isaac_backend: Any) -> None:
    isaac_backend.reset(_scene())
    KIT.frame_queue = [np.zeros(0, np.uint8)]  # the first read of the first camera is empty
    images = isaac_backend.images()
    assert isaac_backend.recaptures == 1 and all(i.shape == (H, W, 3) for i in images.values())
    isaac_backend.step(np.zeros(7, np.float32))
    KIT.frame_queue = [np.zeros((H, W, 0), np.uint8)] * 20
    from sim2real.sim.isaac.backend import CaptureError

    with pytest.raises(CaptureError, match=r"no valid frame after 3 re-captures .*empty buffer \(128, 128, 0\)"):
        isaac_backend.images()


def test_backend_refuses_a_stale_first_frame_after_the_hand_moved(isaac_backend: Any) -> None:
    from sim2real.sim.isaac.backend import CaptureError

    scene = _scene()
    isaac_backend.reset(scene)
    last = isaac_backend.images()
    joints = np.asarray(scene.robot.joint_positions or ROBOTS.get("panda").home, float) + np.r_[0.3, np.zeros(6)]
    moved = replace(scene, robot=replace(scene.robot, joint_positions=tuple(joints)))  # the TCP moves 6 cm
    isaac_backend.reset(replace(scene, seed=5))  # another scene, the hand where it was: the same frames are fine
    KIT.frame_queue = [np.concatenate([last[c], np.full((H, W, 1), 255, np.uint8)], axis=2) for c in last]
    assert isaac_backend.images().keys() == last.keys() and isaac_backend.recaptures == 0
    isaac_backend.reset(moved)
    cameras = list(last)
    KIT.frame_queue = [np.concatenate([last[c], np.full((H, W, 1), 255, np.uint8)], axis=2) for c in cameras] * 10
    with pytest.raises(CaptureError, match="repeat their previous frames although the scene changed"):
        isaac_backend.images()


def test_backend_checks_the_renderer_and_exposes_the_validation_hooks(fake_isaac: dict, isaac_backend: Any) -> None:
    isaac_backend.reset(_scene())
    assert isaac_backend.render_mode == "RealTimePathTracing"
    assert all(isaac_backend.physics_valid().values())
    mask = isaac_backend.hand_mask(_scene().cameras[0].name)
    assert mask.shape == (H, W) and mask.sum() == 100
    state = isaac_backend.privileged_state()
    assert state.ee_pos.shape == (3,) and isaac_backend.proprio().shape == (14,)
    isaac_backend.step(np.r_[0.01, 0, 0, 0, 0, 0, 1.0].astype(np.float32))
    from sim2real.sim.isaac import backend as backend_module

    KIT.settings["/rtx/rendermode"] = "RaytracedLighting"
    isaac_backend.close()
    with pytest.raises(RuntimeError, match="Kit renders with 'RaytracedLighting', not the requested"):
        backend_module.IsaacBackend(BackendConfig(options={"renderer": "RealTimePathTracing"}))
