"""The Isaac backend without Kit: SceneSpec -> stage ops, kinematics, app settings, the missing-Isaac
error, the static API check; and (marker ``isaac``) the backend itself where Isaac Sim is installed."""

from __future__ import annotations

import dataclasses
import math
import os
import subprocess
import sys
import types
import typing
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sim2real.contracts import cell
from sim2real.contracts.geometry import quat_wxyz_to_matrix
from sim2real.contracts.shapes import BOWL_THICKNESS, primitives
from sim2real.randomizers import load_preset, sample_scene
from sim2real.sim import shapes
from sim2real.sim.backend import BACKENDS, BackendConfig
from sim2real.sim.control import ClipCounter, ControllerConfig
from sim2real.sim.isaac import app as isaac_app
from sim2real.sim.isaac import kinematics as kin
from sim2real.sim.isaac import stage_ops as so
from sim2real.sim.isaac.app import IsaacNotInstalledError
from sim2real.sim.scene_spec import CameraSpec, LightSpec, MaterialSpec, SceneSpec, TextureSpec
from sim2real.sim.tasks import TASKS
from sim2real.sim.textures import TEXTURE_FAMILIES, render_texture

REPO = Path(__file__).resolve().parents[1]
TASK_NAMES = ("pick_place", "stack", "push")
FULL = BackendConfig(shadows=True, reflections=True)


# ------------------------------------------------------------------------- fixtures
def rich_scene(task: str = "pick_place", seed: int = 0) -> SceneSpec:
    """A scene exercising every SceneSpec branch: textured object and surfaces, three light types,
    world and hand cameras, latency and sensor noise."""
    scene = sample_scene(task, seed, load_preset("heavy"))
    objects = list(scene.objects)
    material = replace(objects[0].material, texture=TextureSpec("checker", (0.9, 0.1, 0.1), (0.1, 0.1, 0.9), 3.0, 7),
                       reflectance=0.2)  # fmt: skip
    objects[0] = replace(objects[0], material=material, static=False, role="manipulated")
    surfaces = replace(
        scene.surfaces,
        table=replace(scene.surfaces.table, texture=TextureSpec("stripes", scale=5.0)),
        floor=replace(scene.surfaces.floor, texture=TextureSpec("noise", seed=3)),
        backdrop=replace(scene.surfaces.backdrop, texture=TextureSpec("gradient")),
    )
    lights = (
        LightSpec("directional", pos=(0.5, 0.5, 2.0), direction=(-0.3, -0.3, -1.0), castshadow=True),
        LightSpec("point", pos=(1.0, 1.0, 1.5), diffuse=(0.3, 0.3, 0.3), ambient=(0.1, 0.1, 0.1)),
        LightSpec("spot", pos=(0.6, -0.6, 1.4), direction=(-0.1, 0.4, -1.0), cutoff_deg=35.0, castshadow=True),
    )
    cameras = (
        CameraSpec("front", "world", pos=(1.25, 0.3, 0.65), lookat=(0.3, 0.0, 0.12), fovy=50.0),
        CameraSpec("wrist", "hand", pos=(0.1, 0.0, 0.0), lookat=(0.0, 0.0, 0.18), fovy=80.0, width=96, height=64),
    )
    dynamics = replace(scene.dynamics, action_latency_steps=1, joint_damping_scale=1.2, actuator_gain_scale=0.9)
    noise = replace(scene.sensor_noise, image_noise_std=2.0, blur_sigma=0.5, jpeg_quality=80, state_noise_std=0.001)
    return replace(scene, objects=tuple(objects), surfaces=surfaces, lights=lights, cameras=cameras, dynamics=dynamics,
                   sensor_noise=noise, task_params={**scene.task_params, "note": "x"})  # fmt: skip


# --------------------------------------------------------------- field coverage
def _leaf_paths(tp: type, prefix: str = "") -> list[str]:
    hints = typing.get_type_hints(tp)
    paths = []
    for f in dataclasses.fields(tp):
        annotation = hints[f.name]
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        origin = typing.get_origin(annotation)
        if dataclasses.is_dataclass(annotation):
            paths += _leaf_paths(annotation, f"{prefix}{f.name}.")
        elif origin is tuple and args and dataclasses.is_dataclass(args[0]):
            paths += _leaf_paths(args[0], f"{prefix}{f.name}[].")
        elif origin in (typing.Union, types.UnionType) and args and dataclasses.is_dataclass(args[0]):
            paths += _leaf_paths(args[0], f"{prefix}{f.name}.")
        else:
            paths.append(prefix + f.name)
    return paths


SCENE_PATHS = _leaf_paths(SceneSpec)


def test_every_scene_spec_field_has_a_documented_translation() -> None:
    missing = sorted(set(SCENE_PATHS) - set(so.FIELD_MAP))
    stale = sorted(set(so.FIELD_MAP) - set(SCENE_PATHS))
    assert not missing, f"SceneSpec fields without an entry in stage_ops.FIELD_MAP: {missing}"
    assert not stale, f"FIELD_MAP entries for fields SceneSpec no longer has: {stale}"
    for path, op_name, op_field in so.field_map_targets():
        assert op_name in so.OPS_BY_NAME, f"{path}: unknown op {op_name}"
        assert op_field in so.op_field_names(so.OPS_BY_NAME[op_name]), f"{path}: {op_name} has no field {op_field}"


_ALTERNATIVES = {
    "task": "other_task", "split": "textures", "objects[].role": "marker", "objects[].color": "violet",
    "objects[].name": "renamed", "cameras[].name": "renamed", "cameras[].mount": "world",
    "lights[].type": "point",
}  # fmt: skip


def _perturb_value(path: str, value: object) -> object:
    leaf = path.rsplit(".", 1)[-1]
    if path.endswith("texture.family"):
        return next(f for f in TEXTURE_FAMILIES.names() if f != value)
    for key, alternative in _ALTERNATIVES.items():
        if path.endswith(key):
            return alternative
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 16 if leaf in ("width", "height") else value + 1
    if isinstance(value, float):
        if leaf.endswith("scale") or leaf == "fovy":
            return value * 0.5
        return value - 0.1 if 0.9 < value <= 1.0 else value + 0.1  # stay inside [0, 1] ranges
    if isinstance(value, str):
        return value + " (changed)"
    if isinstance(value, dict):
        return {**value, "extra": 1}
    if isinstance(value, tuple):
        first = value[0] - 0.1 if leaf in ("rgba", "rgb1", "rgb2", "diffuse") else value[0] + 0.05
        return (first, *value[1:])
    raise TypeError(f"{path}: no perturbation for {type(value).__name__}")


def _element_index(scene: SceneSpec, path: str) -> int:
    if path.startswith("lights[]") and path.endswith("cutoff_deg"):
        return next(i for i, light in enumerate(scene.lights) if light.type == "spot")
    if path.startswith("cameras[]"):
        return 1  # the hand camera (mount -> world is a change)
    return 0


def perturb(scene: SceneSpec, path: str) -> SceneSpec:
    """``scene`` with the field at ``path`` changed (first relevant element of sequences)."""
    head, _, rest = path.partition(".")
    if path.endswith(".rgba"):  # a textured material ignores the rgb (as in MuJoCo): test an untextured one
        scene = _untextured(scene, path)
    if head.endswith("[]"):
        name = head[:-2]
        items = list(getattr(scene, name))
        index = _element_index(scene, path)
        items[index] = _perturb_nested(items[index], rest, path)
        return replace(scene, **{name: tuple(items)})
    if rest:
        return replace(scene, **{head: _perturb_nested(getattr(scene, head), rest, path)})
    return replace(scene, **{head: _perturb_value(path, getattr(scene, head))})


def _untextured(scene: SceneSpec, path: str) -> SceneSpec:
    if path.startswith("objects[]"):
        obj = scene.objects[0]
        return replace(scene, objects=(replace(obj, material=replace(obj.material, texture=None)), *scene.objects[1:]))
    surface = path.split(".")[1]
    material = replace(getattr(scene.surfaces, surface), texture=None)
    return replace(scene, surfaces=replace(scene.surfaces, **{surface: material}))


def _perturb_nested(obj: object, rest: str, path: str) -> object:
    head, _, tail = rest.partition(".")
    value = getattr(obj, head)
    if tail:
        return replace(obj, **{head: _perturb_nested(value, tail, path)})  # type: ignore[type-var]
    if head == "shape":  # a new shape needs a matching size
        return replace(obj, shape="sphere", size=(0.02,))  # type: ignore[type-var]
    if head == "size":
        return replace(obj, size=tuple(s * 1.2 for s in value))  # type: ignore[type-var]
    return replace(obj, **{head: _perturb_value(path, value)})  # type: ignore[type-var]


@pytest.mark.parametrize("path", SCENE_PATHS)
def test_changing_any_scene_spec_field_changes_its_ops(path: str) -> None:
    base = rich_scene()
    changed = perturb(base, path)
    if path.endswith(".rgba"):
        base = _untextured(base, path)
    assert changed != base
    if path == "robot.name":  # only the panda has an asset: another name must be rejected, not ignored
        with pytest.raises((NotImplementedError, KeyError)):
            so.scene_to_ops(replace(base, robot=replace(base.robot, name="ur5")), FULL)
        return
    before, after = so.scene_to_ops(base, FULL), so.scene_to_ops(changed, FULL)
    op_name = so.FIELD_MAP[path].split(".", 1)[0]
    kind = so.OPS_BY_NAME[op_name]
    assert so.ops_of_type(before, kind) != so.ops_of_type(after, kind), f"{path} does not change the {op_name} ops"


# -------------------------------------------------------------------- tasks
@pytest.mark.parametrize("task", TASK_NAMES)
@pytest.mark.parametrize("preset", ["none", "heavy"])
def test_every_task_translates_to_a_consistent_op_list(task: str, preset: str) -> None:
    assert task in TASKS.names()
    for seed in range(4):
        scene = sample_scene(task, seed, load_preset(preset))
        ops = so.scene_to_ops(scene)
        assert len(so.ops_of_type(ops, so.AddRobot)) == 1
        assert isinstance(ops[0], so.AnnotateStage) and ops[0].content_hash == scene.content_hash()
        prims = so.ops_of_type(ops, so.CreateRigidPrim) + so.ops_of_type(ops, so.CreateVisualPrim)
        assert sorted(op.name for op in prims) == sorted(o.name for o in scene.objects)
        cameras = so.ops_of_type(ops, so.CreateCamera)
        assert [c.name for c in cameras] == [c.name for c in scene.cameras]
        paths = [op.path for op in [*prims, *cameras, *so.ops_of_type(ops, so.CreateOmniPBRMaterial)]]
        assert len(paths) == len(set(paths)), "prim paths must be unique"
        hash(so.structure_key(ops))
        for op in ops:  # all numbers finite
            for f in dataclasses.fields(op):
                values = np.ravel(np.asarray(getattr(op, f.name), dtype=object))
                floats = [v for v in values if isinstance(v, float)]
                assert all(math.isfinite(v) for v in floats), f"{type(op).__name__}.{f.name} not finite"
        assert so.scene_to_ops(scene) == ops, "translation must be deterministic"


def test_structure_key_changes_only_with_the_physics_scene_or_robot_asset() -> None:
    """A new stage only for another physics device / rate or robot asset / variants; objects, lights
    and cameras are slots edited in place (tests/test_isaac_fixes.py checks the plan)."""
    scene = sample_scene("pick_place", 0)
    key = so.structure_key(so.scene_to_ops(scene))
    recoloured = replace(scene, objects=(replace(scene.objects[0], material=MaterialSpec(rgba=(0, 1, 0, 1))),
                                         *scene.objects[1:]))  # fmt: skip
    reshaped = replace(scene, objects=(replace(scene.objects[0], shape="sphere", size=(0.02,)), *scene.objects[1:]))
    relit = replace(scene, lights=scene.lights[:1])
    for other in (recoloured, reshaped, relit, sample_scene("stack", 3, load_preset("heavy"))):
        assert so.structure_key(so.scene_to_ops(other)) == key
    assert so.structure_key(so.scene_to_ops(scene, physics_device="cuda:0")) != key
    assert so.structure_key(so.scene_to_ops(scene, robot_asset="/other/franka.usd")) != key
    assert so.structure_key(so.scene_to_ops(scene, robot_variants=(("Gripper", "default"),))) != key


# ------------------------------------------------------------------- lights
def test_lights_of_each_type() -> None:
    ops = so.scene_to_ops(rich_scene(), FULL)
    distant, point, spot = so.ops_of_type(ops, so.CreateLight)
    lights = rich_scene().lights
    assert (distant.kind, point.kind, spot.kind) == ("distant", "sphere", "sphere")
    assert distant.cone_angle_deg is None and point.cone_angle_deg is None and spot.cone_angle_deg == 35.0
    assert distant.intensity == pytest.approx(so.DISTANT_INTENSITY_PER_UNIT * max(lights[0].diffuse))
    d2 = sum((a - b) ** 2 for a, b in zip(lights[1].pos, cell.WORKSPACE_CENTER, strict=True))
    expected = so.DISTANT_INTENSITY_PER_UNIT * 0.3 * d2 / (math.pi * so.SPHERE_LIGHT_RADIUS**2)
    assert point.intensity == pytest.approx(expected)
    for op, light in zip((distant, point, spot), lights, strict=True):
        emission = quat_wxyz_to_matrix(np.asarray(op.quat)) @ np.array([0.0, 0.0, -1.0])
        direction = np.asarray(light.direction) / np.linalg.norm(light.direction)
        np.testing.assert_allclose(emission, direction, atol=1e-9)
        assert max(op.color) == pytest.approx(1.0)
    assert distant.shadow and spot.shadow and not point.shadow
    no_shadows = so.ops_of_type(so.scene_to_ops(rich_scene(), BackendConfig()), so.CreateLight)
    assert not any(op.shadow for op in no_shadows), "BackendConfig.shadows gates the lights' shadows"
    (dome,) = so.ops_of_type(ops, so.SetDomeLight)
    total = np.sum([light.ambient for light in lights], axis=0)
    assert dome.intensity == pytest.approx(so.DISTANT_INTENSITY_PER_UNIT * total.max() / math.pi)
    with pytest.raises(ValueError, match="unknown type 'laser'"):
        so.light_op(0, LightSpec("laser"), False)


# ----------------------------------------------------------------- textures
@pytest.mark.parametrize("family", TEXTURE_FAMILIES.names())
def test_each_texture_family_is_rendered_to_a_png(family: str, tmp_path: Path) -> None:
    spec = TextureSpec(family, (0.8, 0.2, 0.1), (0.1, 0.3, 0.7), 4.0, 5)
    scene = rich_scene()
    scene = replace(scene, surfaces=replace(scene.surfaces, table=replace(scene.surfaces.table, texture=spec)))
    ops = so.scene_to_ops(scene)
    (table,) = [op for op in so.ops_of_type(ops, so.CreateOmniPBRMaterial) if op.path.endswith("surface_table")]
    assert table.texture == spec and table.texture_file == so.texture_file_name(spec, cell.SURFACE_TEXTURE_SIZE)
    assert table.diffuse == (1.0, 1.0, 1.0), "a textured material's colour comes from the texture"
    written = so.write_texture_files(ops, tmp_path)
    png = tmp_path / table.texture_file
    assert png in written
    np.testing.assert_array_equal(np.asarray(Image.open(png)), render_texture(spec, cell.SURFACE_TEXTURE_SIZE))
    mtime = png.stat().st_mtime_ns
    so.write_texture_files(ops, tmp_path)
    assert png.stat().st_mtime_ns == mtime, "existing (content-addressed) files are reused"


def test_materials_map_rgba_shininess_specular_reflectance() -> None:
    spec = MaterialSpec(rgba=(0.2, 0.4, 0.6, 0.5), specular=0.7, shininess=0.8, reflectance=0.3)
    op = so.omnipbr_material("/World/Looks/m", spec, 32, 8.0, world_space=False)
    assert op.diffuse == (0.2, 0.4, 0.6) and op.opacity == 0.5
    assert op.roughness == pytest.approx(0.2) and op.specular_level == 0.7 and op.metallic == 0.3
    assert so.omnipbr_material("/m", spec, 32, 8.0, False, reflections=False).metallic == 0.0
    assert op.texture is None and op.texture_file is None


# ------------------------------------------------------------------ cameras
def test_cameras_world_and_hand_mounts() -> None:
    scene = rich_scene()
    front, wrist = so.ops_of_type(so.scene_to_ops(scene), so.CreateCamera)
    assert front.parent == so.CAMERAS_PATH and front.path == f"{so.CAMERAS_PATH}/front"
    assert wrist.parent == f"{so.ROBOT_PATH}/{so.FRANKA_HAND_LINK}"
    for op, spec in ((front, scene.cameras[0]), (wrist, scene.cameras[1])):
        fovy = math.degrees(2 * math.atan(op.vertical_aperture_mm / (2 * op.focal_length_mm)))
        assert fovy == pytest.approx(spec.fovy)
        assert op.horizontal_aperture_mm / op.vertical_aperture_mm == pytest.approx(spec.width / spec.height)
        assert (op.width, op.height) == (spec.width, spec.height)
        view = quat_wxyz_to_matrix(np.asarray(op.quat)) @ np.array([0.0, 0.0, -1.0])  # USD cameras look along -z
        target = np.asarray(spec.lookat) - np.asarray(spec.pos)
        np.testing.assert_allclose(view, target / np.linalg.norm(target), atol=1e-9)
    with pytest.raises(ValueError, match="unknown mount 'tripod'"):
        so.camera_op(CameraSpec("x", "tripod"))


# ------------------------------------------------------- dynamics and noise
def test_dynamics_latency_and_sensor_noise() -> None:
    scene = rich_scene()
    ops = so.scene_to_ops(scene)
    arm, fingers = so.ops_of_type(ops, so.SetJointGains)
    assert arm.joints == so.FRANKA_ARM_JOINTS and fingers.joints == so.FRANKA_FINGER_JOINTS
    np.testing.assert_allclose(arm.stiffness, np.asarray(so.PANDA_KP) * 0.9)
    np.testing.assert_allclose(arm.damping, np.asarray(so.PANDA_KV) * 1.2)
    assert so.ops_of_type(ops, so.SetActionLatency) == [so.SetActionLatency(1)]
    (noise,) = so.ops_of_type(ops, so.SetSensorNoise)
    assert dataclasses.astuple(noise) == dataclasses.astuple(scene.sensor_noise)
    (robot,) = so.ops_of_type(ops, so.AddRobot)
    np.testing.assert_allclose(robot.arm_positions, np.asarray(scene.robot.joint_positions) + kin.FRANKA_JOINT_OFFSETS)
    assert robot.finger_positions == pytest.approx((scene.robot.gripper * 0.04,) * 2)
    assert so.SetRobotGravity(so.ROBOT_PATH, enabled=False) in ops


def test_static_dynamic_and_marker_objects() -> None:
    ops = so.scene_to_ops(sample_scene("pick_place", 0))
    pick, bowl = so.ops_of_type(ops, so.CreateRigidPrim)
    assert not pick.kinematic and pick.mass == pytest.approx(0.05) and bowl.kinematic
    push = so.scene_to_ops(sample_scene("push", 0))
    markers = so.ops_of_type(push, so.CreateVisualPrim)
    assert {m.name for m in markers} == {"left", "right"}
    bound = {op.prim_path for op in so.ops_of_type(push, so.BindPhysicsMaterial)}
    assert not any(m.path in bound for m in markers), "visual-only markers get no physics material"
    labels = {op.path: dict(op.labels) for op in so.ops_of_type(push, so.SetSemanticLabels)}
    assert labels[f"{so.OBJECTS_PATH}/left"]["class"] == "left"


def test_object_pose_is_its_centre() -> None:
    scene = sample_scene("stack", 2)
    for op, obj in zip(so.ops_of_type(so.scene_to_ops(scene), so.CreateRigidPrim), scene.objects, strict=True):
        assert op.pos[2] == pytest.approx(obj.pos[2] + shapes.half_height(obj.shape, obj.size))
        yaw = 2 * math.atan2(op.quat[3], op.quat[0])
        assert math.isclose(math.cos(yaw), math.cos(obj.yaw)) and math.isclose(math.sin(yaw), math.sin(obj.yaw))


# ------------------------------------------------------------------- shapes
def _part_points(part: so.GeomPart) -> np.ndarray:
    if part.kind == "cube":
        corners = np.array([[x, y, z] for x in (-0.5, 0.5) for y in (-0.5, 0.5) for z in (-0.5, 0.5)])
        local = corners * np.asarray(part.scale)
    elif part.kind == "mesh":
        local = np.asarray(part.points)
    else:
        r, half = part.radius, part.height / 2 + (part.radius if part.kind == "capsule" else 0.0)
        if part.kind == "sphere":
            half = r
        angles = np.linspace(0, 2 * np.pi, 64, endpoint=False)
        ring = np.stack([r * np.cos(angles), r * np.sin(angles)], axis=1)
        local = np.concatenate([np.c_[ring, np.full(64, z)] for z in (-half, half)])
    rot = quat_wxyz_to_matrix(np.asarray(part.orientation))
    return local @ rot.T + np.asarray(part.translation)


def _signed_volume(part: so.GeomPart) -> float:
    points, counts, indices = np.asarray(part.points), part.face_vertex_counts, part.face_vertex_indices
    volume, start = 0.0, 0
    for count in counts:
        face = indices[start : start + count]
        start += count
        for k in range(1, count - 1):
            volume += np.dot(points[face[0]], np.cross(points[face[k]], points[face[k + 1]])) / 6.0
    return volume


@pytest.mark.parametrize("shape", shapes.SHAPES.names())
def test_each_shape_has_geometry_of_its_size(shape: str) -> None:
    from sim2real.sim.tasks import DEFAULT_SIZES

    size = DEFAULT_SIZES[shape]
    parts = so.shape_parts(shape, size)
    points = np.concatenate([_part_points(p) for p in parts])
    assert points[:, 2].max() == pytest.approx(shapes.half_height(shape, size), rel=1e-6, abs=1e-9)
    assert points[:, 2].min() == pytest.approx(-shapes.half_height(shape, size), rel=1e-6, abs=1e-9)
    footprint = np.hypot(points[:, 0], points[:, 1]).max()
    assert footprint <= shapes.footprint_radius(shape, size) * 1.0 + 0.01
    for part in parts:
        if part.kind == "mesh":
            assert sum(part.face_vertex_counts) == len(part.face_vertex_indices)
            assert max(part.face_vertex_indices) < len(part.points)
            assert _signed_volume(part) > 0, "mesh faces must wind outward (closed, positive volume)"
    with pytest.raises(ValueError, match="takes"):
        so.shape_parts(shape, (*size, 0.1))


def test_ellipsoid_and_prism_meshes_have_the_right_volume() -> None:
    (ellipsoid,) = so.shape_parts("ellipsoid", (0.02, 0.03, 0.04))
    exact = 4 / 3 * math.pi * 0.02 * 0.03 * 0.04
    assert 0.85 * exact < _signed_volume(ellipsoid) < exact
    (hexagon,) = so.shape_parts("hex_prism", (0.03, 0.02))
    assert _signed_volume(hexagon) == pytest.approx(3 * math.sqrt(3) / 2 * 0.03**2 * 0.04)


def test_bowl_parts_are_its_primitives_in_usd_terms() -> None:
    radius, half = 0.075, 0.03
    floor, *walls = so.shape_parts("bowl", (radius, half))
    assert (floor.kind, floor.radius, floor.height) == ("cylinder", radius, BOWL_THICKNESS)
    assert floor.translation == (0.0, 0.0, -half + BOWL_THICKNESS / 2)
    for wall, primitive in zip(walls, primitives("bowl", (radius, half))[1:], strict=True):
        assert wall.kind == "cube" and wall.scale == tuple(2 * s for s in primitive.size)
        assert (wall.translation, wall.orientation) == (primitive.pos, primitive.quat)
        assert wall.scale[0] == BOWL_THICKNESS and wall.scale[2] == 2 * half


def test_the_stage_has_the_cell_of_the_contract() -> None:
    ops = so.scene_to_ops(rich_scene())
    (ground,) = so.ops_of_type(ops, so.CreateGround)
    (table,) = so.ops_of_type(ops, so.CreateTable)
    (backdrop,) = so.ops_of_type(ops, so.CreateBackdrop)
    assert (ground.z, ground.half_size) == (cell.FLOOR_Z, cell.FLOOR_HALF_SIZE)
    assert (table.center, table.half_extents) == (cell.TABLE.center, cell.TABLE.half_extents)
    assert (backdrop.center, backdrop.half_extents) == (cell.BACKDROP.center, cell.BACKDROP.half_extents)
    assert table.center[2] + table.half_extents[2] == 0.0, "the table top is at z = 0"
    surfaces = {op.path.rsplit("_", 1)[1]: op for op in so.ops_of_type(ops, so.CreateOmniPBRMaterial)
                if "/surface_" in op.path}  # fmt: skip
    assert tuple(surfaces) == cell.SURFACES
    assert all(op.texture_size == cell.SURFACE_TEXTURE_SIZE for op in surfaces.values())


def test_constants_match_the_mujoco_backend() -> None:
    from sim2real.sim.mujoco import scene as mj_scene

    assert so.PANDA_KP == mj_scene.PANDA_KP and so.PANDA_KV == mj_scene.PANDA_KV
    assert (so.GRIPPER_KP, so.GRIPPER_DAMPING) == (mj_scene.GRIPPER_KP, mj_scene.GRIPPER_DAMPING)
    assert kin.TCP_OFFSET == mj_scene.TCP_OFFSET


# --------------------------------------------------------------- kinematics
@pytest.fixture(scope="module")
def mujoco_panda() -> tuple:
    from sim2real.sim.mujoco import scene as mj_scene  # the package sets MUJOCO_GL before importing mujoco

    mujoco = mj_scene.mujoco
    model = mj_scene.build_model(sample_scene("pick_place", 0), mj_scene.BuildOptions())
    data = mujoco.MjData(model)
    qpos = np.array([model.joint(f"joint{i}").qposadr[0] for i in range(1, 8)])
    dofs = np.array([model.joint(f"joint{i}").dofadr[0] for i in range(1, 8)])
    return mujoco, model, data, qpos, dofs, model.site("tcp").id


def _mujoco_kinematics(mujoco_panda: tuple, q: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    mujoco, model, data, qpos, dofs, tcp = mujoco_panda
    data.qpos[qpos] = q
    mujoco.mj_kinematics(model, data)
    mujoco.mj_comPos(model, data)
    jacp, jacr = np.zeros((3, model.nv)), np.zeros((3, model.nv))
    mujoco.mj_jacSite(model, data, jacp, jacr, tcp)
    return (
        data.site_xpos[tcp].copy(),
        data.site_xmat[tcp].reshape(3, 3).copy(),
        np.vstack([jacp[:, dofs], jacr[:, dofs]]),
    )


def test_franka_kinematics_match_the_mujoco_model(mujoco_panda: tuple) -> None:
    from sim2real.sim.robots import ROBOTS

    rng = np.random.default_rng(0)
    home = np.asarray(ROBOTS.get("panda").home)
    for _ in range(30):
        q = home + rng.uniform(-0.6, 0.6, 7)
        pos, mat, jac = _mujoco_kinematics(mujoco_panda, q)
        model_pos, model_mat = kin.tcp_pose(q)
        np.testing.assert_allclose(model_pos, pos, atol=5e-4)  # m
        np.testing.assert_allclose(model_mat, mat, atol=3e-3)
        np.testing.assert_allclose(kin.tcp_jacobian(q), jac, atol=3e-3)
    np.testing.assert_allclose(kin.franka_to_project(kin.project_to_franka(home)), home)


def test_hand_jacobian_moved_to_the_tcp_is_the_tcp_jacobian() -> None:
    q = np.array([0.1, -0.3, 0.2, -2.3, 0.1, 0.7, 0.3])
    frames = kin.joint_frames(q)
    hand_pos = frames[-1][:3, 3]
    hand_jac = np.zeros((6, 7))
    for i in range(7):
        axis, origin = frames[i][:3, 2], frames[i][:3, 3]
        hand_jac[:3, i], hand_jac[3:, i] = np.cross(axis, hand_pos - origin), axis
    tcp_pos, _ = kin.tcp_pose(q)
    np.testing.assert_allclose(kin.shift_jacobian(hand_jac, tcp_pos - hand_pos), kin.tcp_jacobian(q), atol=1e-12)


def test_ik_with_the_model_matches_ik_with_mujoco_kinematics(mujoco_panda: tuple) -> None:
    from sim2real.sim.robots import ROBOTS

    config, home = ControllerConfig(), np.asarray(ROBOTS.get("panda").home)
    rng = np.random.default_rng(1)
    for _ in range(10):
        q = home + rng.uniform(-0.3, 0.3, 7)
        pos, mat, jac = _mujoco_kinematics(mujoco_panda, q)
        target = pos + rng.uniform(-0.03, 0.03, 3)
        ours = kin.solve_ik(q, target, mat, config, 10.0, ClipCounter())
        reference = kin.solve_ik(q, target, mat, config, 10.0, ClipCounter(), first=(pos, mat, jac),
                                 kinematics=lambda x: _mujoco_kinematics(mujoco_panda, x))  # fmt: skip
        np.testing.assert_allclose(ours, reference, atol=2e-3)
        reached, _ = kin.tcp_pose(ours)
        assert np.linalg.norm(reached - target) < np.linalg.norm(pos - target) * 0.2 + 1e-3


# ---------------------------------------------------------- app and options
def test_launch_config_is_headless_without_anti_aliasing() -> None:
    config = isaac_app.launch_config(isaac_app.AppSettings())
    assert config["headless"] is True and config["anti_aliasing"] == 0 and config["renderer"] == "RealTimePathTracing"
    assert "--/app/asyncRendering=0" in config["extra_args"]
    with pytest.raises(ValueError, match="unknown renderer 'Rasterizer'"):
        isaac_app.launch_config(isaac_app.AppSettings(renderer="Rasterizer"))


def test_importing_the_package_imports_no_simulator() -> None:
    code = (
        "import sys, sim2real.sim.isaac, sim2real.sim.isaac.stage_ops, sim2real.sim.isaac.backend, "
        "sim2real.sim.isaac.kinematics, sim2real.sim.isaac.options, sim2real.sim.isaac.frames\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('isaacsim', 'omni', 'pxr', 'carb', 'mujoco'))\n"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_constructing_the_backend_without_isaac_sim_fails_with_install_instructions(monkeypatch) -> None:
    monkeypatch.setattr(isaac_app.importlib.util, "find_spec", lambda name, *a: None)
    from sim2real.sim.isaac.backend import IsaacBackend

    for construct in (lambda: IsaacBackend(BackendConfig()), lambda: _make_isaac_backend()):
        with pytest.raises(IsaacNotInstalledError) as error:
            construct()
        message = str(error.value)
        assert "pip install 'isaacsim[all,extscache]==6.2.0.0' --extra-index-url https://pypi.nvidia.com" in message
        assert "Python 3.12" in message and "RTX" in message and "H100" in message


def _make_isaac_backend() -> object:
    """``make_backend("isaac")`` once the registry has the entry; the same import path until then."""
    if "isaac" in BACKENDS:
        from sim2real.sim.backend import make_backend

        return make_backend("isaac")
    import importlib

    return importlib.import_module("sim2real.sim.isaac.backend").IsaacBackend(BackendConfig())


# ------------------------------------------------------------- static check
def _wheels() -> Path | None:
    folder = Path(os.environ.get("ISAAC_WHEELS", "/tmp/isaac_wheels"))
    return folder if any(folder.glob("isaacsim_core-*.whl")) else None


def test_static_api_check_passes_and_catches_mistakes(tmp_path: Path, capsys) -> None:
    wheels = _wheels()
    if wheels is None:
        pytest.skip("no isaacsim wheels (set ISAAC_WHEELS; see tools/check_isaac_api.py)")
    sys.path.insert(0, str(REPO / "tools"))
    try:
        import check_isaac_api
    finally:
        sys.path.remove(str(REPO / "tools"))
    assert check_isaac_api.main(["--wheels", str(wheels)]) == 0
    bad = tmp_path / "bad.py"
    bad.write_text(
        "from isaacsim.core.experimental.prims import Articulation\n\n"
        "def f() -> None:\n"
        "    robot = Articulation('/World/Robot', bogus=1)\n"
        "    robot.set_dof_gains(stiffnesses=[1.0], dof_indexes=[0])\n"
    )
    capsys.readouterr()
    assert check_isaac_api.main(["--wheels", str(wheels), "--targets", str(bad)]) == 1
    out = capsys.readouterr().out
    assert "unknown keyword 'bogus'" in out and "unknown keyword 'dof_indexes'" in out


# ---------------------------------------------------------------- real Isaac
@pytest.mark.isaac
@pytest.mark.gpu
def test_isaac_backend_runs_a_scene() -> None:
    if not isaac_app.isaacsim_available():
        pytest.skip("Isaac Sim (isaacsim) is not installed")
    from sim2real.sim.experts import make_expert
    from sim2real.sim.isaac.backend import IsaacBackend

    backend = IsaacBackend(BackendConfig())
    try:
        scene = sample_scene("pick_place", 0)
        backend.reset(scene)
        state = backend.privileged_state()
        model_pos, _ = kin.tcp_pose(state.joint_positions)
        np.testing.assert_allclose(state.ee_pos, model_pos, atol=3e-3)  # joint offsets and TCP agree with PhysX
        expert = make_expert(scene, np.random.default_rng(0))
        for _ in range(5):
            backend.step(expert.act(backend.privileged_state()))
        images = backend.images()
        assert set(images) == {c.name for c in scene.cameras}
        for cam in scene.cameras:
            assert images[cam.name].shape == (cam.height, cam.width, 3) and images[cam.name].dtype == np.uint8
            segmentation, names = backend.segmentation(cam.name)
            assert segmentation.shape == (cam.height, cam.width) and names == [o.name for o in scene.objects]
        assert (backend.segmentation("front")[0] >= 0).any()
        assert backend.proprio().shape == (14,) and np.isfinite(backend.proprio()).all()
        assert backend.render_mode == backend.options.renderer and all(backend.physics_valid().values())
        assert backend.hand_mask("front").any()
        backend.reset(sample_scene("stack", 1))  # another scene: slots edited, no new stage
        assert backend.rebuilds == 1 and all(backend.physics_valid().values())
    finally:
        backend.close()
