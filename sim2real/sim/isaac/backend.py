"""The Isaac Sim backend: SceneSpecs applied through stage ops, RTX cameras, PhysX physics.

Importing this module never imports Isaac Sim; constructing :class:`IsaacBackend` checks its
options (:class:`~sim2real.sim.isaac.options.IsaacOptions`) and the ``isaacsim`` package first,
raising :class:`~sim2real.sim.backend.BackendOptionsError` or :class:`IsaacNotInstalledError` (with
install instructions) at once, then starts Kit headless and checks that it renders with the
requested RTX mode.

Control is the MuJoCo backend's, shared through :mod:`sim2real.sim.control`: the 7-D end-effector
delta is validated, clipped (every clip counted), delayed by the scene's action latency,
turned into a TCP target clipped to the workspace, and solved by damped least squares onto
joint position targets of the Franka's PhysX drives. The first DLS iteration uses the TCP pose
and Jacobian measured by PhysX (``Articulation.get_jacobian_matrices``, whose linear rows refer to
the hand link's centre of mass, moved to the TCP by
:func:`~sim2real.sim.isaac.kinematics.physx_tcp_jacobian`); further iterations evaluate
:mod:`sim2real.sim.isaac.kinematics`, since PhysX cannot evaluate hypothetical configurations.

Observations: after every reset the state is written, physics steps once (so the writes reach the
renderer) and ``warmup_frames`` frames are rendered and discarded; each observation is then captured
once per control step with ``rt_subframes`` RTX subframes. An empty annotator buffer, or a capture
in which every camera repeats its previous frame although the hand moved more than
:data:`~sim2real.sim.isaac.frames.STALE_MOTION_M` since (a stale frame), is re-captured after
warm-up frames, up to :data:`~sim2real.sim.isaac.frames.CAPTURE_RETRIES` times, and is an error
after that: the backend never returns an ``(H, W, 0)`` image or a stale frame.

What is deterministic: the same SceneSpec gives the same stage, physics (PhysX on the CPU, the
default ``physics_device``), actions, states, success labels and segmentation labels; RTX images
are not bit-exact across GPUs, drivers or runs (``bit_exact_images = False``), so generation hashes
only the low-dimensional data of Isaac episodes into its manifests.

Proprio (float32 (14,), :data:`sim2real.contracts.actions.STATE_NAMES`): TCP position (m), TCP
roll/pitch/yaw (rad), gripper opening fraction, 7 arm joints (rad, **project** convention:
Isaac's Franka joints minus :data:`~sim2real.sim.isaac.kinematics.FRANKA_JOINT_OFFSETS`).

One backend per process: Kit is a process-wide singleton holding one stage.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from sim2real.contracts.actions import STATE_DIM
from sim2real.contracts.geometry import matrix_to_rpy, quat_wxyz_to_matrix
from sim2real.sim.backend import BackendConfig, ObjectState, PrivilegedState, parse_backend_options
from sim2real.sim.control import (
    ClipCounter,
    LatencyBuffer,
    clip_action,
    joint_target_ramp,
    target_pose,
    validate_action,
)
from sim2real.sim.isaac.app import AppSettings, IsaacNotInstalledError, launch, renderer_problem, require_isaacsim
from sim2real.sim.isaac.frames import (
    CAPTURE_RETRIES,
    STALE_MOTION_M,
    EmptyFrameError,
    StaleFrameError,
    repeated_frames,
)
from sim2real.sim.isaac.kinematics import (
    franka_to_project,
    physx_tcp_jacobian,
    project_to_franka,
    solve_ik,
    tcp_from_hand,
    tcp_jacobian,
)
from sim2real.sim.isaac.options import IsaacOptions
from sim2real.sim.isaac.stage_ops import (
    FRANKA_USD,
    HAND_LABEL,
    SetActionLatency,
    SetSensorNoise,
    StageOp,
    ops_of_type,
    scene_to_ops,
)
from sim2real.sim.robots import ROBOTS
from sim2real.sim.scene_spec import SceneSpec

if TYPE_CHECKING:  # the executor imports Isaac Sim; only its types are needed here
    from sim2real.sim.isaac.executor import SceneHandles

__all__ = ["IsaacBackend", "IsaacNotInstalledError", "IsaacOptions"]


def _numpy(data: Any) -> np.ndarray:
    return np.asarray(data.numpy() if hasattr(data, "numpy") else data)


class CaptureError(RuntimeError):
    """No valid observation after :data:`~sim2real.sim.isaac.frames.CAPTURE_RETRIES` re-captures."""


class IsaacBackend:
    """One Isaac Sim scene. Opens a new stage only when the physics scene or robot asset changes;
    otherwise a new episode edits the prims in place (see ``stage_ops.plan_stage_update``)."""

    _active: ClassVar[IsaacBackend | None] = None
    #: RTX images are not byte-identical across GPUs, drivers or runs
    bit_exact_images: ClassVar[bool] = False

    def __init__(self, config: BackendConfig) -> None:
        self.options: IsaacOptions = parse_backend_options("isaac", config.options)  # before Kit starts
        require_isaacsim()
        self.substeps = config.physics_steps_per_control_step()  # checked before Kit starts
        if IsaacBackend._active is not None:
            raise RuntimeError("an IsaacBackend is already open in this process (one Kit per process)")
        self.config = config
        self.robot = ROBOTS.get("panda")
        self.app = launch(
            AppSettings(renderer=self.options.renderer, active_gpu=self.options.active_gpu,
                        experience=self.options.experience)
        )  # fmt: skip
        from sim2real.sim.isaac import executor  # needs the running app

        self._ex = executor
        problem = renderer_problem(self.options.renderer, executor.render_mode())
        if problem is not None:
            raise RuntimeError(problem)
        texture_dir = Path(self.options.texture_dir or tempfile.mkdtemp(prefix="sim2real_isaac_textures_"))
        self._executor = executor.StageExecutor(texture_dir, self.options.assets_root)
        self._handles: SceneHandles | None = None
        self._ops: tuple[StageOp, ...] = ()
        self.scene: SceneSpec | None = None
        self.sensor_noise: SetSensorNoise | None = None
        self._clips = ClipCounter()
        self._time = 0.0
        self._frame_stale = True
        self._frame: dict[str, np.ndarray] = {}
        self._tcp_at_capture: np.ndarray | None = None  # TCP (m) when self._frame was captured
        self.rebuilds = 0
        self.recaptures = 0
        IsaacBackend._active = self

    # ------------------------------------------------------------------ scene
    def reset(self, scene: SceneSpec) -> None:
        """Update the stage to ``scene`` (a new stage only when the physics scene or robot asset
        changed), restart physics from it, set the initial state, step physics once and render the
        warm-up frames."""
        asset = self.options.robot_usd or FRANKA_USD
        ops = scene_to_ops(scene, self.config, robot_asset=asset, robot_variants=self.options.robot_variants,
                           physics_device=self.options.physics_device)  # fmt: skip
        self._handles = None  # until the new scene runs
        plan = self._executor.prepare(ops)
        self.rebuilds += int(plan.new_stage)
        self._executor.author(ops)
        handles = self._executor.start(ops)
        self._executor.reset_state(ops, handles)  # ends with one physics step: the writes reach the renderer
        self._executor.warm_up(self.options.warmup_frames, self.options.rt_subframes)
        self._handles = handles
        self._ops = ops
        self.scene = scene
        self.sensor_noise = ops_of_type(ops, SetSensorNoise)[0]
        self._clips = ClipCounter()
        latency = ops_of_type(ops, SetActionLatency)[0].steps
        self._latency = LatencyBuffer(latency, np.r_[np.zeros(6), scene.robot.gripper])
        self._time = 0.0
        self._frame_stale = True
        self._arm_target = self._arm_positions()

    # ---------------------------------------------------------------- control
    def _require_scene(self) -> SceneHandles:
        if self.scene is None or self._handles is None:
            raise RuntimeError("call reset(scene) first")
        return self._handles

    def _arm_positions(self) -> np.ndarray:
        handles = self._require_scene()
        with self._ex.tensor_backend():
            q = _numpy(handles.robot.get_dof_positions(dof_indices=handles.arm_dofs))[0]
        return franka_to_project(q.astype(float))

    def _finger_positions(self) -> np.ndarray:
        handles = self._require_scene()
        with self._ex.tensor_backend():
            return _numpy(handles.robot.get_dof_positions(dof_indices=handles.finger_dofs))[0].astype(float)

    def _hand_pose(self) -> tuple[np.ndarray, np.ndarray]:
        pos, quat = self._ex.pose_arrays(self._require_scene().hand)
        return pos, quat_wxyz_to_matrix(quat)

    def _tcp(self) -> tuple[np.ndarray, np.ndarray]:
        return tcp_from_hand(*self._hand_pose())

    def _tcp_jacobian(self, tcp_pos: np.ndarray, hand_pos: np.ndarray, hand_mat: np.ndarray) -> np.ndarray:
        """(6, 7) TCP Jacobian, world frame: PhysX's hand-link Jacobian (linear rows at the hand's
        centre of mass) moved to the TCP."""
        handles = self._require_scene()
        if self.options.jacobian == "model":
            return tcp_jacobian(self._arm_positions())
        with self._ex.tensor_backend():
            jacobians = _numpy(handles.robot.get_jacobian_matrices())[0]  # (links - 1, 6, dofs): fixed base
        hand = jacobians[handles.jacobian_row][:, handles.arm_dofs]
        return physx_tcp_jacobian(hand, hand_pos, hand_mat, handles.hand_com, tcp_pos)

    def step(self, action: np.ndarray) -> None:
        """Execute one control step of the 7-D end-effector delta action."""
        handles = self._require_scene()
        cfg = self.config.controller
        command = clip_action(validate_action(action), cfg, self._clips)
        command = self._latency.push(command)
        hand_pos, hand_mat = self._hand_pose()
        ee_pos, ee_mat = tcp_from_hand(hand_pos, hand_mat)
        pos, mat = target_pose(command, ee_pos, ee_mat, cfg, self._clips)
        first = (ee_pos, ee_mat, self._tcp_jacobian(ee_pos, hand_pos, hand_mat))
        q_target = solve_ik(self._arm_positions(), pos, mat, cfg, self.config.control_hz, self._clips, first=first)
        finger = float(command[6]) * self.robot.gripper_max_opening / 2
        self._ramp_joint_targets(handles, q_target, finger)
        self._time += self.substeps / self.config.physics_hz
        self._frame_stale = True

    def _ramp_joint_targets(self, handles: SceneHandles, q_target: np.ndarray, finger: float) -> None:
        """Move the arm's drive targets (7,) rad linearly from the last command to ``q_target``
        over the control period (``controller.interpolation_segments`` steps), as the MuJoCo
        backend does; the finger target (m) is set at once."""
        segments = self.config.controller.interpolation_segments
        for q in joint_target_ramp(self._arm_target, q_target, segments):
            targets = np.r_[project_to_franka(q), finger, finger].astype(np.float32)[None]
            with self._ex.tensor_backend():
                handles.robot.set_dof_position_targets(targets, dof_indices=handles.arm_dofs + handles.finger_dofs)
            self._executor.step_physics(self.substeps // segments)
        self._arm_target = q_target

    @property
    def clip_counts(self) -> Mapping[str, int]:
        return dict(self._clips)

    # ------------------------------------------------------------ observation
    def _capture(self) -> None:
        """Capture this control step's frame of every camera once (see the module docstring)."""
        if not self._frame_stale:
            return
        handles = self._require_scene()
        tcp, _ = self._tcp()
        # the hand moved since the previous capture (within an episode, or from the previous episode's last
        # frame to this reset pose): every camera, the wrist camera first, must show something new
        last = self._tcp_at_capture
        changed = last is not None and float(np.linalg.norm(tcp - last)) > STALE_MOTION_M
        problem: Exception | None = None
        for attempt in range(CAPTURE_RETRIES + 1):
            if attempt:
                self.recaptures += 1
                self._executor.warm_up(max(1, self.options.warmup_frames), self.options.rt_subframes)
            self._executor.capture(self.options.rt_subframes)
            try:
                current = {name: self._ex.read_rgb(camera) for name, camera in handles.cameras.items()}
                if repeated_frames(self._frame, current, changed):
                    raise StaleFrameError(f"cameras {sorted(current)} repeat their previous frames although the "
                                          "scene changed")  # fmt: skip
            except (EmptyFrameError, StaleFrameError) as error:
                problem = error
                continue
            self._frame, self._frame_stale, self._tcp_at_capture = current, False, tcp
            return
        raise CaptureError(f"no valid frame after {CAPTURE_RETRIES} re-captures with warm-up frames "
                           f"(renderer {self.options.renderer}): {problem}")  # fmt: skip

    def images(self) -> dict[str, np.ndarray]:
        """Clean RGB per camera, uint8 (H, W, 3)."""
        self._capture()
        return {name: image.copy() for name, image in self._frame.items()}

    def _camera(self, camera: str) -> Any:
        handles = self._require_scene()
        if camera not in handles.cameras:
            raise KeyError(f"unknown camera {camera!r}; known cameras: {sorted(handles.cameras)}")
        self._capture()
        return handles.cameras[camera]

    def segmentation(self, camera: str) -> tuple[np.ndarray, list[str]]:
        """int32 (H, W) index into the scene's object names per pixel, -1 elsewhere."""
        handle = self._camera(camera)
        assert self.scene is not None
        names = [o.name for o in self.scene.objects]
        return self._ex.read_segmentation(handle, names), names

    def hand_mask(self, camera: str) -> np.ndarray:
        """bool (H, W): pixels of ``camera`` showing the hand or fingers (``stage_ops.HAND_LABEL``)."""
        return self._ex.read_label_mask(self._camera(camera), HAND_LABEL)

    def physics_valid(self) -> dict[str, bool]:
        """Whether each physics tensor view (robot, hand, rigid objects by name) is valid now."""
        return self._executor.physics_valid(self._require_scene())

    @property
    def dof_names(self) -> list[str]:
        """The robot articulation's DOF names, in PhysX order."""
        return list(self._require_scene().robot.dof_names)

    @property
    def render_mode(self) -> Any:
        """The RTX mode Kit renders with (``/rtx/rendermode``)."""
        return self._ex.render_mode()

    def proprio(self) -> np.ndarray:
        """float32 (14,) in the order of ``contracts.actions.STATE_NAMES``."""
        pos, mat = self._tcp()
        state = np.empty(STATE_DIM, dtype=np.float32)
        state[:3] = pos
        state[3:6] = matrix_to_rpy(mat)
        state[6] = self._finger_positions().sum() / self.robot.gripper_max_opening
        state[7:] = self._arm_positions()
        return state

    def privileged_state(self) -> PrivilegedState:
        handles = self._require_scene()
        pos, mat = self._tcp()
        assert self.scene is not None
        objects = {}
        for obj in self.scene.objects:
            obj_pos, obj_quat = self._ex.pose_arrays(handles.prim(obj.name))
            linvel = np.zeros(3)
            if obj.name in handles.dynamic:
                with self._ex.tensor_backend():
                    linvel = _numpy(handles.dynamic[obj.name].get_velocities()[0])[0].astype(float)
            objects[obj.name] = ObjectState(obj_pos, obj_quat, linvel)
        return PrivilegedState(
            ee_pos=pos,
            ee_mat=mat,
            gripper_opening=float(self._finger_positions().sum()),
            gripper_max_opening=self.robot.gripper_max_opening,
            joint_positions=self._arm_positions(),
            objects=objects,
            contacts=self._ex.contact_pairs(handles),
            time=self._time,
        )

    def close(self) -> None:
        """Release the render products and stop the timeline. Kit itself stays up until the
        process exits (it cannot restart in the same process); see ``app.shutdown``."""
        if IsaacBackend._active is self:
            self._executor.release_cameras()
            self._executor.stop()
            IsaacBackend._active = None
        self._handles = None
        self.scene = None
