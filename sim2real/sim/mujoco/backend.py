"""The MuJoCo backend: applies SceneSpecs, runs the end-effector controller, renders."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from typing import ClassVar

import mujoco
import numpy as np

from sim2real.contracts.actions import STATE_DIM
from sim2real.contracts.geometry import matrix_to_rpy, rotation_error, yaw_to_quat_wxyz
from sim2real.sim import shapes
from sim2real.sim.backend import BackendConfig, ObjectState, PrivilegedState, parse_backend_options
from sim2real.sim.control import (
    ClipCounter,
    LatencyBuffer,
    clip_action,
    dls_step,
    joint_target_ramp,
    target_pose,
    validate_action,
)
from sim2real.sim.mujoco.apply import SceneApplier
from sim2real.sim.mujoco.render import OffscreenRenderer
from sim2real.sim.mujoco.scene import BuildOptions, build_model, structure_key
from sim2real.sim.robots import ROBOTS
from sim2real.sim.scene_spec import SceneSpec


class MujocoWarningError(RuntimeError):
    """MuJoCo raised a simulation warning (instability, contact overflow, ...)."""


class MujocoBackend:
    """One simulator instance. Rebuilds the model only when the scene's structure changes."""

    #: the same scene and actions render byte-identical images (same machine and library versions)
    bit_exact_images: ClassVar[bool] = True

    def __init__(self, config: BackendConfig) -> None:
        self.config = config
        self.substeps = config.physics_steps_per_control_step()
        options = parse_backend_options("mujoco", config.options)  # unknown keys / bad values: one clean error
        self.build_options = BuildOptions(physics_hz=config.physics_hz, **asdict(options))
        self.robot = ROBOTS.get("panda")
        self._renderer: OffscreenRenderer | None = None
        self._structure: tuple | None = None
        self.model: mujoco.MjModel | None = None
        self.scene: SceneSpec | None = None
        self._clips = ClipCounter()
        self._state: PrivilegedState | None = None
        self.rebuilds = 0

    # ------------------------------------------------------------------ scene
    def reset(self, scene: SceneSpec) -> None:
        """Build (if the structure changed) and reset to ``scene``'s initial state."""
        key = structure_key(scene)
        if key != self._structure:
            self._rebuild(scene, key)
        changed_textures = self._applier.apply(scene)
        mujoco.mj_setConst(self.model, self.data)  # masses changed: refresh derived constants
        for tex_id in changed_textures:
            self._renderer_for_model().upload_texture(tex_id)
        self.scene = scene
        self._set_initial_state(scene)
        self._clips = ClipCounter()
        self._state = None
        self._latency = LatencyBuffer(scene.dynamics.action_latency_steps, np.r_[np.zeros(6), scene.robot.gripper])

    def _rebuild(self, scene: SceneSpec, key: tuple) -> None:
        model = build_model(scene, self.build_options)
        self.model = model
        self.data = mujoco.MjData(model)
        self._ik_data = mujoco.MjData(model)
        self._applier = SceneApplier(model)
        self._structure = key
        self.rebuilds += 1
        self._index_model(scene)
        if self._renderer is None:
            self._renderer = OffscreenRenderer(
                model.vis.global_.offwidth, model.vis.global_.offheight, self.config.shadows, self.config.reflections
            )
        self._renderer.set_model(model)

    def _index_model(self, scene: SceneSpec) -> None:
        model = self.model
        assert model is not None
        self._arm_qpos = np.array([model.joint(n).qposadr[0] for n in self.robot.joint_names])
        self._arm_dof = np.array([model.joint(n).dofadr[0] for n in self.robot.joint_names])
        self._finger_qpos = np.array([model.joint(f"finger_joint{i}").qposadr[0] for i in (1, 2)])
        self._tcp = model.site("tcp").id
        self._object_bodies = {o.name: model.body(f"obj_{o.name}").id for o in scene.objects}
        self._object_free = {
            o.name: (model.joint(f"free_{o.name}").qposadr[0], model.joint(f"free_{o.name}").dofadr[0])
            for o in scene.objects
            if not o.static
        }
        robot_links = ["link0", *[f"link{i}" for i in range(1, 8)], "hand", "left_finger", "right_finger"]
        robot_bodies = {model.body(name).id for name in robot_links}
        self._body_names = {b: "robot" for b in robot_bodies}
        self._body_names.update({b: name for name, b in self._object_bodies.items()})
        self._body_names[0] = "table"  # world body: table, floor
        self._cameras = {c.name: (model.camera(c.name).id, c.width, c.height) for c in scene.cameras}
        names = list(self._object_bodies)
        self._segment_names = names
        self._geom_to_object = np.full(model.ngeom, -1, dtype=np.int32)
        for idx, name in enumerate(names):
            body = self._object_bodies[name]
            start, count = model.body_geomadr[body], model.body_geomnum[body]
            self._geom_to_object[start : start + count] = idx

    def _set_initial_state(self, scene: SceneSpec) -> None:
        model, data = self.model, self.data
        mujoco.mj_resetData(model, data)
        joints = np.asarray(scene.robot.joint_positions or self.robot.home, float)
        if joints.shape != (self.robot.num_joints,):
            raise ValueError(f"robot.joint_positions must have {self.robot.num_joints} values, got {joints.shape}")
        data.qpos[self._arm_qpos] = joints
        finger = scene.robot.gripper * self.robot.gripper_max_opening / 2
        data.qpos[self._finger_qpos] = finger
        for obj in scene.objects:
            if obj.static:
                body = self._object_bodies[obj.name]
                model.body_pos[body] = (obj.pos[0], obj.pos[1], obj.pos[2] + shapes.half_height(obj.shape, obj.size))
                model.body_quat[body] = yaw_to_quat_wxyz(obj.yaw)
                continue
            qadr, _ = self._object_free[obj.name]
            data.qpos[qadr : qadr + 3] = (obj.pos[0], obj.pos[1], obj.pos[2] + shapes.half_height(obj.shape, obj.size))
            data.qpos[qadr + 3 : qadr + 7] = yaw_to_quat_wxyz(obj.yaw)
        data.ctrl[:7] = joints
        data.ctrl[7] = finger
        mujoco.mj_forward(model, data)

    # ---------------------------------------------------------------- control
    def step(self, action: np.ndarray) -> None:
        """Execute one control step of the 7-D end-effector delta action."""
        if self.scene is None:
            raise RuntimeError("call reset(scene) before step(action)")
        command = clip_action(validate_action(action), self.config.controller, self._clips)
        command = self._latency.push(command)
        ee_pos = self.data.site_xpos[self._tcp].copy()
        ee_mat = self.data.site_xmat[self._tcp].reshape(3, 3).copy()
        pos, mat = target_pose(command, ee_pos, ee_mat, self.config.controller, self._clips)
        q_target = self._solve_ik(pos, mat)
        self.data.ctrl[7] = command[6] * self.robot.gripper_max_opening / 2
        self._ramp_joint_targets(q_target)
        self._state = None
        self._check_warnings()

    def _ramp_joint_targets(self, q_target: np.ndarray) -> None:
        """Move the arm's joint targets (7,) rad linearly from the last command to ``q_target``
        over the control period, stepping the physics between segments."""
        segments = self.config.controller.interpolation_segments
        for q in joint_target_ramp(self.data.ctrl[:7].copy(), q_target, segments):
            self.data.ctrl[:7] = q
            mujoco.mj_step(self.model, self.data, nstep=self.substeps // segments)

    def _solve_ik(self, pos: np.ndarray, mat: np.ndarray) -> np.ndarray:
        model, ik = self.model, self._ik_data
        cfg = self.config.controller
        q_now = self.data.qpos[self._arm_qpos].copy()
        ik.qpos[:] = self.data.qpos
        q = q_now.copy()
        jacp, jacr = np.zeros((3, model.nv)), np.zeros((3, model.nv))
        limits = np.asarray(self.robot.joint_limits)
        low, high = limits[:, 0] + cfg.joint_limit_margin, limits[:, 1] - cfg.joint_limit_margin
        for iteration in range(cfg.ik_iterations):
            ik.qpos[self._arm_qpos] = q
            mujoco.mj_kinematics(model, ik)
            mujoco.mj_comPos(model, ik)
            mujoco.mj_jacSite(model, ik, jacp, jacr, self._tcp)
            error = np.r_[pos - ik.site_xpos[self._tcp], rotation_error(mat, ik.site_xmat[self._tcp].reshape(3, 3))]
            jac = np.vstack([jacp[:, self._arm_dof], jacr[:, self._arm_dof]])
            q = q + dls_step(jac, error, cfg.ik_damping)
            if iteration == cfg.ik_iterations - 1:  # count only the final solution's clip
                q = self._clips.clip(q, low, high, "joint_limit")
            else:  # keep iterating from a feasible point
                q = np.clip(q, low, high)
        max_step = np.asarray(self.robot.velocity_limits) / self.config.control_hz
        return q_now + self._clips.clip(q - q_now, -max_step, max_step, "joint_velocity")

    def _check_warnings(self) -> None:
        counts = self.data.warning.number
        if counts.any():
            names = [mujoco.mjtWarning(i).name for i, n in enumerate(counts) if n]
            raise MujocoWarningError(f"MuJoCo warnings during the step: {names}")

    @property
    def clip_counts(self) -> Mapping[str, int]:
        return dict(self._clips)

    # ------------------------------------------------------------ observation
    def _renderer_for_model(self) -> OffscreenRenderer:
        assert self._renderer is not None
        return self._renderer

    def images(self) -> dict[str, np.ndarray]:
        renderer = self._renderer_for_model()
        return {name: renderer.rgb(self.data, cam_id, w, h) for name, (cam_id, w, h) in self._cameras.items()}

    def proprio(self) -> np.ndarray:
        data = self.data
        state = np.empty(STATE_DIM, dtype=np.float32)
        state[:3] = data.site_xpos[self._tcp]
        state[3:6] = matrix_to_rpy(data.site_xmat[self._tcp].reshape(3, 3))
        state[6] = data.qpos[self._finger_qpos].sum() / self.robot.gripper_max_opening
        state[7:] = data.qpos[self._arm_qpos]
        return state

    def privileged_state(self) -> PrivilegedState:
        """Ground truth of the current step; computed once per step (expert, task predicate and
        guardrails all read it)."""
        if self._state is None:
            self._state = self._read_state()
        return self._state

    def _read_state(self) -> PrivilegedState:
        data = self.data
        contacts, robot_force, table_force = self._contacts()
        objects = {}
        for name, body in self._object_bodies.items():
            linvel = np.zeros(3)
            if name in self._object_free:
                linvel = data.qvel[self._object_free[name][1] : self._object_free[name][1] + 3].copy()
            objects[name] = ObjectState(data.xpos[body].copy(), data.xquat[body].copy(), linvel)
        return PrivilegedState(
            ee_pos=data.site_xpos[self._tcp].copy(),
            ee_mat=data.site_xmat[self._tcp].reshape(3, 3).copy(),
            gripper_opening=float(data.qpos[self._finger_qpos].sum()),
            gripper_max_opening=self.robot.gripper_max_opening,
            joint_positions=data.qpos[self._arm_qpos].copy(),
            objects=objects,
            contacts=contacts,
            robot_contact_force=robot_force,
            robot_table_force=table_force,
            time=float(data.time),
        )

    def _contacts(self) -> tuple[frozenset[tuple[str, str]], float, float]:
        """Touching body pairs by scene name, the largest contact normal force (N) on the robot,
        and the largest one between the robot and the table."""
        model, data = self.model, self.data
        if data.ncon == 0:
            return frozenset(), 0.0, 0.0
        bodies1 = model.geom_bodyid[data.contact.geom1[: data.ncon]]
        bodies2 = model.geom_bodyid[data.contact.geom2[: data.ncon]]
        pairs = set()
        max_force = table_force = 0.0
        wrench = np.zeros(6)
        for i, (b1, b2) in enumerate(zip(bodies1, bodies2, strict=True)):
            a, b = self._body_names.get(int(b1)), self._body_names.get(int(b2))
            if a is None or b is None or a == b:
                continue
            pairs.add((a, b))
            if "robot" in (a, b):
                mujoco.mj_contactForce(model, data, i, wrench)
                max_force = max(max_force, abs(float(wrench[0])))
                if "table" in (a, b):
                    table_force = max(table_force, abs(float(wrench[0])))
        return frozenset(pairs), max_force, table_force

    def segmentation(self, camera: str) -> tuple[np.ndarray, list[str]]:
        if camera not in self._cameras:
            raise KeyError(f"unknown camera {camera!r}; known cameras: {sorted(self._cameras)}")
        cam_id, w, h = self._cameras[camera]
        geoms = self._renderer_for_model().geom_ids(self.data, cam_id, w, h)
        lookup = np.r_[self._geom_to_object, -1]
        return lookup[np.where(geoms >= 0, geoms, len(lookup) - 1)], list(self._segment_names)

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
