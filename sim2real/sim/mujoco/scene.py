"""Build a MuJoCo model from a SceneSpec with the MjSpec API, from parts: the Panda, the
table, floor and backdrop, objects and receptacles, lights and cameras.

The model's *structure* (which bodies, geoms, lights, cameras and textures exist) depends
only on :func:`structure_key`; every other SceneSpec field is written into the compiled
model in place by :mod:`sim2real.sim.mujoco.apply`, so that a scene whose structure is
unchanged needs no recompile.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import mujoco
import numpy as np

from sim2real.sim import shapes
from sim2real.sim.mujoco.assets import PANDA_LINKS, panda_mesh
from sim2real.sim.robots import ROBOTS
from sim2real.sim.scene_spec import SceneSpec

# Table: top at z = 0, the robot base sits on it at the origin.
TABLE_CENTER = (0.40, 0.0, -0.375)
TABLE_HALF = (0.65, 0.70, 0.375)
FLOOR_Z = -0.75
BACKDROP_X = -0.65
SURFACE_TEXTURE_SIZE = 128
OBJECT_TEXTURE_SIZE = 32
MAX_LIGHTS = 4
BOWL_WALL_SEGMENTS = 12

# Collision filtering: the robot (type 2) never collides with itself; everything else does.
ROBOT_CONTYPE, ROBOT_CONAFFINITY = 2, 1
WORLD_CONTYPE, WORLD_CONAFFINITY = 1, 3
VISUAL_GROUP, COLLISION_GROUP = 2, 3

# Panda kinematics (link frames of the gymnasium-robotics mesh set): (pos, quat or euler xyz).
_PANDA_CHAIN = (
    ((0.0, 0.0, 0.333), None, None),
    ((0.0, 0.0, 0.0), (0.707107, -0.707107, 0.0, 0.0), None),
    ((0.0, -0.316, 0.0), (0.707107, 0.707107, 0.0, 0.0), None),
    ((0.0825, 0.0, 0.0), (0.707107, 0.707107, 0.0, 0.0), None),
    ((-0.0825, 0.384, 0.0), (0.707107, -0.707107, 0.0, 0.0), None),
    ((0.0, 0.0, 0.0), None, (1.57, 0.0, 1.57)),
    ((0.088, 0.0, 0.0), None, (1.57, 0.0, 0.7854)),
)
_PANDA_MASSES = (2.91242, 2.7063, 2.73046, 2.04104, 2.08129, 3.00049, 1.3235, 0.2)
#: Nominal position-servo stiffness (N m / rad) and joint damping (N m s / rad) per joint.
PANDA_KP = (4500.0, 4500.0, 3500.0, 3500.0, 2000.0, 2000.0, 2000.0)
PANDA_DAMPING = (80.0, 80.0, 60.0, 60.0, 20.0, 20.0, 20.0)
PANDA_FORCE_LIMIT = (87.0, 87.0, 87.0, 87.0, 12.0, 12.0, 12.0)
GRIPPER_KP = 300.0
GRIPPER_DAMPING = 20.0
TCP_OFFSET = 0.103  # fingertip centre along the hand's approach axis (m)


@dataclass(frozen=True)
class BuildOptions:
    """Model-level options. ``visual_mesh_reduction``: fraction of Panda visual triangles
    removed (0 keeps the full meshes, for GPU servers); ``physics_hz``: simulation rate."""

    physics_hz: float = 500.0
    visual_mesh_reduction: float = 0.93
    max_width: int = 128
    max_height: int = 128
    multisamples: int = 0  # MSAA samples of the offscreen buffer (0 = off; costly in software)


def structure_key(scene: SceneSpec) -> tuple:
    """Everything about a scene that needs a recompile when it changes."""
    objects = tuple((o.name, o.role, o.shape, tuple(o.size), o.static) for o in scene.objects)
    cameras = tuple((c.name, c.mount, c.width, c.height) for c in scene.cameras)
    return (scene.robot.name, objects, cameras)


def _quat_from_euler(euler: tuple[float, float, float]) -> np.ndarray:
    quat = np.zeros(4)
    mujoco.mju_euler2Quat(quat, np.asarray(euler, float), "xyz")
    return quat


def _add_texture(spec: mujoco.MjSpec, name: str, size: int) -> None:
    spec.add_texture(
        name=name,
        type=mujoco.mjtTexture.mjTEXTURE_2D,
        width=size,
        height=size,
        nchannel=3,
        data=np.zeros(size * size * 3, dtype=np.uint8),
    )


def _add_material(spec: mujoco.MjSpec, name: str, texture: str | None, texrepeat: tuple[float, float] = (1, 1)) -> None:
    mat = spec.add_material(name=name)
    if texture is not None:
        mat.textures[mujoco.mjtTextureRole.mjTEXROLE_RGB] = texture
        mat.texrepeat = texrepeat
        mat.texuniform = True


def _add_surroundings(spec: mujoco.MjSpec) -> None:
    for surface, repeat in (("table", (2, 2)), ("floor", (4, 4)), ("backdrop", (3, 3))):
        _add_texture(spec, f"tex_{surface}", SURFACE_TEXTURE_SIZE)
        _add_material(spec, f"mat_{surface}", f"tex_{surface}", repeat)
    world = spec.worldbody
    world.add_geom(
        name="floor", type=mujoco.mjtGeom.mjGEOM_PLANE, pos=(0, 0, FLOOR_Z), size=(4, 4, 0.1),
        material="mat_floor", contype=WORLD_CONTYPE, conaffinity=WORLD_CONAFFINITY,
    )  # fmt: skip
    world.add_geom(
        name="table", type=mujoco.mjtGeom.mjGEOM_BOX, pos=TABLE_CENTER, size=TABLE_HALF,
        material="mat_table", contype=WORLD_CONTYPE, conaffinity=WORLD_CONAFFINITY,
    )  # fmt: skip
    world.add_geom(
        name="backdrop", type=mujoco.mjtGeom.mjGEOM_BOX, pos=(BACKDROP_X, 0, 0.4), size=(0.01, 2.0, 1.2),
        material="mat_backdrop", contype=0, conaffinity=0,
    )  # fmt: skip


def _add_panda(spec: mujoco.MjSpec, options: BuildOptions) -> None:
    robot = ROBOTS.get("panda")
    for link in PANDA_LINKS:
        visual = panda_mesh(link, "visual", options.visual_mesh_reduction)
        spec.add_mesh(name=f"{link}_viz", uservert=visual.vertices.ravel(), userface=visual.faces.ravel())
        if link != "finger":
            collision = panda_mesh(link, "collision", 0.0)
            spec.add_mesh(name=f"{link}_col", uservert=collision.vertices.ravel(), userface=collision.faces.ravel())
    spec.add_material(name="mat_robot", rgba=(0.95, 0.95, 0.93, 1.0), specular=0.4, shininess=0.4)
    spec.add_material(name="mat_robot_dark", rgba=(0.2, 0.2, 0.22, 1.0), specular=0.3, shininess=0.3)

    def visual_geom(body: mujoco.MjsBody, mesh: str, material: str = "mat_robot", **kw: object) -> None:
        body.add_geom(type=mujoco.mjtGeom.mjGEOM_MESH, meshname=mesh, material=material,
                      contype=0, conaffinity=0, group=VISUAL_GROUP, mass=0, **kw)  # fmt: skip

    def collision_geom(body: mujoco.MjsBody, mesh: str, mass: float, **kw: object) -> None:
        body.add_geom(type=mujoco.mjtGeom.mjGEOM_MESH, meshname=mesh, contype=ROBOT_CONTYPE,
                      conaffinity=ROBOT_CONAFFINITY, group=COLLISION_GROUP, mass=mass, **kw)  # fmt: skip

    parent = spec.worldbody.add_body(name="link0", gravcomp=1.0)
    visual_geom(parent, "link0_viz")
    collision_geom(parent, "link0_col", _PANDA_MASSES[0])
    for i, ((pos, quat, euler), name) in enumerate(zip(_PANDA_CHAIN, robot.joint_names, strict=True)):
        orientation = quat if quat is not None else (_quat_from_euler(euler) if euler is not None else (1, 0, 0, 0))
        body = parent.add_body(name=f"link{i + 1}", pos=pos, quat=orientation, gravcomp=1.0)
        low, high = robot.joint_limits[i]
        body.add_joint(name=name, type=mujoco.mjtJoint.mjJNT_HINGE, axis=(0, 0, 1), range=(low, high),
                       damping=PANDA_DAMPING[i], armature=0.1)  # fmt: skip
        visual_geom(body, f"link{i + 1}_viz")
        collision_geom(body, f"link{i + 1}_col", _PANDA_MASSES[i + 1])
        parent = body
    _add_hand(spec, parent, visual_geom, collision_geom)
    for i, name in enumerate(robot.joint_names):
        act = spec.add_actuator(name=f"act_{name}", target=name, trntype=mujoco.mjtTrn.mjTRN_JOINT)
        act.set_to_position(kp=PANDA_KP[i])
        act.forcelimited = True
        act.forcerange = (-PANDA_FORCE_LIMIT[i], PANDA_FORCE_LIMIT[i])
        act.ctrlrange = robot.joint_limits[i]
        act.ctrllimited = True
    act = spec.add_actuator(name="act_gripper", target="finger_joint1", trntype=mujoco.mjtTrn.mjTRN_JOINT)
    act.set_to_position(kp=GRIPPER_KP)
    act.forcelimited = True
    act.forcerange = (-70.0, 70.0)
    act.ctrlrange = (0.0, robot.gripper_max_opening / 2)
    act.ctrllimited = True
    spec.add_equality(type=mujoco.mjtEq.mjEQ_JOINT, name1="finger_joint2", name2="finger_joint1",
                      data=np.r_[0.0, 1.0, np.zeros(10)])  # fmt: skip


def _add_hand(spec: mujoco.MjSpec, link7: mujoco.MjsBody, visual_geom, collision_geom) -> None:  # noqa: ANN001
    hand_quat = (0.92388, 0.0, 0.0, -0.382683)
    hand = link7.add_body(name="hand", pos=(0, 0, 0.107), quat=hand_quat, gravcomp=1.0)
    visual_geom(hand, "hand_viz")
    collision_geom(hand, "hand_col", 0.81909)
    # TCP frame: z points away from the fingers, so a top-down gripper has roll = pitch = 0.
    hand.add_site(name="tcp", pos=(0, 0, TCP_OFFSET), quat=(0, 1, 0, 0), size=(0.005, 0, 0), group=5)
    for side, sign in (("left", 1.0), ("right", -1.0)):
        finger = hand.add_body(name=f"{side}_finger", pos=(0, 0, 0.0584), gravcomp=1.0)
        finger.add_joint(name=f"finger_joint{1 if sign > 0 else 2}", type=mujoco.mjtJoint.mjJNT_SLIDE,
                         axis=(0, sign, 0), range=(0, 0.04), damping=GRIPPER_DAMPING, armature=0.05)  # fmt: skip
        visual_geom(finger, "finger_viz", material="mat_robot_dark", quat=(1, 0, 0, 0) if sign > 0 else (0, 0, 0, 1))
        # Finger pads: boxes give flat, stable contacts with the objects.
        finger.add_geom(
            name=f"{side}_pad", type=mujoco.mjtGeom.mjGEOM_BOX, size=(0.0095, 0.004, 0.024),
            pos=(0, sign * 0.0085, 0.037), contype=ROBOT_CONTYPE, conaffinity=ROBOT_CONAFFINITY,
            group=COLLISION_GROUP, mass=0.05, friction=(1.5, 0.01, 0.001), condim=4,
            solimp=(0.95, 0.99, 0.001, 0.5, 2),
        )  # fmt: skip


def _add_object_geoms(spec: mujoco.MjSpec, body: mujoco.MjsBody, obj, material: str) -> None:  # noqa: ANN001
    g = mujoco.mjtGeom
    collide = {"contype": WORLD_CONTYPE, "conaffinity": WORLD_CONAFFINITY}
    if obj.role == "marker":
        collide = {"contype": 0, "conaffinity": 0}
    common = {"material": material, "condim": 3, **collide}
    size = obj.size
    match obj.shape:
        case "cube":
            body.add_geom(type=g.mjGEOM_BOX, size=(size[0],) * 3, **common)
        case "block" | "ellipsoid":
            body.add_geom(type=g.mjGEOM_BOX if obj.shape == "block" else g.mjGEOM_ELLIPSOID, size=size, **common)
        case "cylinder" | "disc":
            body.add_geom(type=g.mjGEOM_CYLINDER, size=(size[0], size[1], 0), **common)
        case "sphere":
            body.add_geom(type=g.mjGEOM_SPHERE, size=(size[0], 0, 0), **common)
        case "capsule":
            body.add_geom(type=g.mjGEOM_CAPSULE, size=(size[0], size[1], 0), **common)
        case "hex_prism" | "tri_prism":
            sides = 6 if obj.shape == "hex_prism" else 3
            mesh = f"mesh_{obj.name}"
            spec.add_mesh(name=mesh, uservert=np.ravel(shapes.prism_vertices(sides, size[0], size[1])))
            body.add_geom(type=g.mjGEOM_MESH, meshname=mesh, **common)
        case "bowl":
            radius, half = size
            thickness = 0.006
            body.add_geom(
                type=g.mjGEOM_CYLINDER, size=(radius, thickness / 2, 0), pos=(0, 0, -half + thickness / 2), **common
            )
            seg = math.pi * radius / BOWL_WALL_SEGMENTS * 1.08
            for k in range(BOWL_WALL_SEGMENTS):
                angle = 2 * math.pi * k / BOWL_WALL_SEGMENTS
                body.add_geom(
                    type=g.mjGEOM_BOX, size=(thickness / 2, seg, half),
                    pos=(radius * math.cos(angle), radius * math.sin(angle), 0),
                    quat=(math.cos(angle / 2), 0, 0, math.sin(angle / 2)), **common,
                )  # fmt: skip
        case _:
            raise ValueError(
                f"object {obj.name!r}: unsupported shape {obj.shape!r}; known shapes: {shapes.SHAPES.names()}"
            )


def _add_objects(spec: mujoco.MjSpec, scene: SceneSpec) -> None:
    for obj in scene.objects:
        texture = f"tex_obj_{obj.name}"  # always allocated: texture changes need no rebuild
        _add_texture(spec, texture, OBJECT_TEXTURE_SIZE)
        _add_material(spec, f"mat_obj_{obj.name}", texture, (8, 8))
        z = obj.pos[2] + shapes.half_height(obj.shape, obj.size)
        body = spec.worldbody.add_body(name=f"obj_{obj.name}", pos=(obj.pos[0], obj.pos[1], z))
        if not obj.static:
            body.add_freejoint(name=f"free_{obj.name}")
        _add_object_geoms(spec, body, obj, f"mat_obj_{obj.name}")


def _add_lights_and_cameras(spec: mujoco.MjSpec, scene: SceneSpec) -> None:
    for i in range(MAX_LIGHTS):  # unused lights are switched off in place
        spec.worldbody.add_light(name=f"light{i}", pos=(0, 0, 2), dir=(0, 0, -1))
    for cam in scene.cameras:
        if cam.mount == "world":
            parent = spec.worldbody
        elif cam.mount == "hand":
            parent = spec.body("hand")
        else:
            raise ValueError(f"camera {cam.name!r}: unknown mount {cam.mount!r}; known mounts: hand, world")
        parent.add_camera(name=cam.name, fovy=cam.fovy, resolution=(cam.width, cam.height))


def build_model(scene: SceneSpec, options: BuildOptions) -> mujoco.MjModel:
    """Compile the model for ``scene``'s structure (appearance and state are applied later)."""
    if scene.robot.name != "panda":
        ROBOTS.get(scene.robot.name)  # unknown name -> error listing the known ones
        raise NotImplementedError(f"the MuJoCo backend has no builder for robot {scene.robot.name!r}")
    spec = mujoco.MjSpec()
    spec.modelname = f"sim2real_{scene.task}"
    spec.compiler.degree = False  # joint ranges in radians
    spec.option.timestep = 1.0 / options.physics_hz
    spec.option.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    spec.option.cone = mujoco.mjtCone.mjCONE_PYRAMIDAL
    spec.option.impratio = 1.0
    spec.visual.headlight.active = 0
    spec.visual.global_.offwidth = max([options.max_width] + [c.width for c in scene.cameras])
    spec.visual.global_.offheight = max([options.max_height] + [c.height for c in scene.cameras])
    spec.visual.quality.shadowsize = 1024
    spec.visual.quality.offsamples = options.multisamples
    spec.stat.extent = 1.5
    spec.stat.center = (0.4, 0.0, 0.2)
    _add_surroundings(spec)
    _add_panda(spec, options)
    _add_objects(spec, scene)
    _add_lights_and_cameras(spec, scene)
    return spec.compile()
