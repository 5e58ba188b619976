"""The Isaac Sim backend: SceneSpecs applied through stage ops, RTX cameras, PhysX physics.

Importing this module never imports Isaac Sim; constructing :class:`IsaacBackend` checks for
the ``isaacsim`` package first and raises :class:`IsaacNotInstalledError` (with install
instructions) at once when it is missing, then starts Kit headless.

Control is the MuJoCo backend's, shared through :mod:`sim2real.sim.control`: the 7-D end-effector
delta is validated, clipped (every clip counted), delayed by the scene's action latency,
turned into a TCP target clipped to the workspace, and solved by damped least squares onto
joint position targets of the Franka's PhysX drives. The first DLS iteration uses the TCP pose
and Jacobian measured by PhysX (``Articulation.get_jacobian_matrices``, moved from the hand
link to the TCP); further iterations evaluate :mod:`sim2real.sim.isaac.kinematics`, since
PhysX cannot evaluate hypothetical configurations.

Proprio (float32 (14,), :data:`sim2real.sim.control.STATE_NAMES`): TCP position (m), TCP
roll/pitch/yaw (rad), gripper opening fraction, 7 arm joints (rad, **project** convention:
Isaac's Franka joints minus :data:`~sim2real.sim.isaac.kinematics.FRANKA_JOINT_OFFSETS`).

One backend per process: Kit is a process-wide singleton holding one stage.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from sim2real.sim.backend import BackendConfig, ObjectState, PrivilegedState
from sim2real.sim.control import (
    STATE_DIM,
    ClipCounter,
    LatencyBuffer,
    clip_action,
    joint_target_ramp,
    target_pose,
    validate_action,
)
from sim2real.sim.geometry import matrix_to_rpy, quat_wxyz_to_matrix
from sim2real.sim.isaac.app import AppSettings, IsaacNotInstalledError, launch, require_isaacsim
from sim2real.sim.isaac.kinematics import (
    franka_to_project,
    project_to_franka,
    shift_jacobian,
    solve_ik,
    tcp_from_hand,
    tcp_jacobian,
)
from sim2real.sim.isaac.stage_ops import (
    FRANKA_USD,
    SetActionLatency,
    SetSensorNoise,
    StageOp,
    ops_of_type,
    scene_to_ops,
    structure_key,
)
from sim2real.sim.robots import ROBOTS
from sim2real.sim.scene_spec import SceneSpec

if TYPE_CHECKING:  # the executor imports Isaac Sim; only its types are needed here
    from sim2real.sim.isaac.executor import SceneHandles

__all__ = ["IsaacBackend", "IsaacNotInstalledError", "IsaacOptions"]


@dataclass(frozen=True)
class IsaacOptions:
    """``BackendConfig.options`` understood by the Isaac backend.

    ``renderer``: RTX mode (``RaytracedLighting``, ``RealTimePathTracing``, ``PathTracing``);
    ``assets_root``: Isaac assets root (default: ``get_assets_root_path()``); ``robot_usd``: the
    Franka USD (absolute, or relative to the assets root; default
    :data:`~sim2real.sim.isaac.stage_ops.FRANKA_USD`); ``texture_dir``: where texture PNGs are
    written (default: a temporary folder); ``render_frames``: app updates per rendered
    observation (raise it if a renderer needs frames to converge); ``physics_device``: ``cpu``
    (deterministic; the default) or ``cuda:0``; ``active_gpu``: render GPU index;
    ``experience``: ``.kit`` file to launch; ``jacobian``: ``physx`` (measured, default) or
    ``model`` (analytic) for the first IK iteration.
    """

    renderer: str = "RaytracedLighting"
    assets_root: str | None = None
    robot_usd: str | None = None
    texture_dir: str | None = None
    render_frames: int = 1
    physics_device: str = "cpu"
    active_gpu: int | None = None
    experience: str = ""
    jacobian: str = "physx"

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any]) -> IsaacOptions:
        """Build from ``BackendConfig.options``; unknown keys are an error listing the known ones."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ValueError(f"unknown Isaac backend options {unknown}; known options: {sorted(known)}")
        result = cls(**dict(options))
        if result.render_frames < 1:
            raise ValueError(f"render_frames must be >= 1, got {result.render_frames}")
        if result.jacobian not in ("physx", "model"):
            raise ValueError(f"jacobian must be 'physx' or 'model', got {result.jacobian!r}")
        return result


def _numpy(data: Any) -> np.ndarray:
    return np.asarray(data.numpy() if hasattr(data, "numpy") else data)


class IsaacBackend:
    """One Isaac Sim scene. Rebuilds the stage only when the scene's structure changes."""

    _active: ClassVar[IsaacBackend | None] = None

    def __init__(self, config: BackendConfig) -> None:
        require_isaacsim()
        self.substeps = config.physics_steps_per_control_step()  # checked before Kit starts
        if IsaacBackend._active is not None:
            raise RuntimeError("an IsaacBackend is already open in this process (one Kit per process)")
        self.config = config
        self.options = IsaacOptions.from_mapping(config.options)
        self.robot = ROBOTS.get("panda")
        self.app = launch(
            AppSettings(renderer=self.options.renderer, active_gpu=self.options.active_gpu,
                        experience=self.options.experience)
        )  # fmt: skip
        from sim2real.sim.isaac import executor  # needs the running app

        self._ex = executor
        texture_dir = Path(self.options.texture_dir or tempfile.mkdtemp(prefix="sim2real_isaac_textures_"))
        self._executor = executor.StageExecutor(texture_dir, self.options.assets_root)
        self._structure: tuple | None = None
        self._handles: SceneHandles | None = None
        self._ops: tuple[StageOp, ...] = ()
        self.scene: SceneSpec | None = None
        self.sensor_noise: SetSensorNoise | None = None
        self._clips = ClipCounter()
        self._time = 0.0
        self._frame_stale = True
        self._frame: dict[str, np.ndarray] = {}
        self.rebuilds = 0
        IsaacBackend._active = self

    # ------------------------------------------------------------------ scene
    def reset(self, scene: SceneSpec) -> None:
        """Build (if the structure changed) or update the stage, restart physics from it, and set
        ``scene``'s initial state."""
        asset = self.options.robot_usd or FRANKA_USD
        ops = scene_to_ops(scene, self.config, robot_asset=asset, physics_device=self.options.physics_device)
        key = structure_key(ops)
        if key != self._structure:
            self._structure = None  # until the new stage is complete
            self._executor.new_stage()
            self.rebuilds += 1
        else:
            self._executor.stop()
        self._executor.author(ops)
        self._handles = self._executor.start(ops)
        self._structure = key
        self._executor.reset_state(ops, self._handles)
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
        q = _numpy(handles.robot.get_dof_positions(dof_indices=handles.arm_dofs))[0]
        return franka_to_project(q.astype(float))

    def _finger_positions(self) -> np.ndarray:
        handles = self._require_scene()
        return _numpy(handles.robot.get_dof_positions(dof_indices=handles.finger_dofs))[0].astype(float)

    def _hand_pose(self) -> tuple[np.ndarray, np.ndarray]:
        pos, quat = self._ex.pose_arrays(self._require_scene().hand)
        return pos, quat_wxyz_to_matrix(quat)

    def _tcp(self) -> tuple[np.ndarray, np.ndarray]:
        return tcp_from_hand(*self._hand_pose())

    def _tcp_jacobian(self, tcp_pos: np.ndarray, hand_pos: np.ndarray) -> np.ndarray:
        """(6, 7) TCP Jacobian, world frame: PhysX's hand-link Jacobian moved to the TCP."""
        handles = self._require_scene()
        if self.options.jacobian == "model":
            return tcp_jacobian(self._arm_positions())
        jacobians = _numpy(handles.robot.get_jacobian_matrices())[0]  # (links - 1, 6, dofs): fixed base
        hand = jacobians[handles.hand_link - 1][:, handles.arm_dofs]
        return shift_jacobian(hand, tcp_pos - hand_pos)

    def step(self, action: np.ndarray) -> None:
        """Execute one control step of the 7-D end-effector delta action."""
        handles = self._require_scene()
        cfg = self.config.controller
        command = clip_action(validate_action(action), cfg, self._clips)
        command = self._latency.push(command)
        hand_pos, hand_mat = self._hand_pose()
        ee_pos, ee_mat = tcp_from_hand(hand_pos, hand_mat)
        pos, mat = target_pose(command, ee_pos, ee_mat, cfg, self._clips)
        first = (ee_pos, ee_mat, self._tcp_jacobian(ee_pos, hand_pos))
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
            handles.robot.set_dof_position_targets(targets, dof_indices=handles.arm_dofs + handles.finger_dofs)
            self._executor.step_physics(self.substeps // segments)
        self._arm_target = q_target

    @property
    def clip_counts(self) -> Mapping[str, int]:
        return dict(self._clips)

    # ------------------------------------------------------------ observation
    def _render(self) -> None:
        if self._frame_stale:
            self._executor.render(self.options.render_frames)
            self._frame_stale = False
            self._frame = {}

    def images(self) -> dict[str, np.ndarray]:
        """Clean RGB per camera, uint8 (H, W, 3)."""
        handles = self._require_scene()
        self._render()
        if not self._frame:
            self._frame = {name: self._ex.read_rgb(camera) for name, camera in handles.cameras.items()}
        return {name: image.copy() for name, image in self._frame.items()}

    def segmentation(self, camera: str) -> tuple[np.ndarray, list[str]]:
        """int32 (H, W) index into the scene's object names per pixel, -1 elsewhere."""
        handles = self._require_scene()
        if camera not in handles.cameras:
            raise KeyError(f"unknown camera {camera!r}; known cameras: {sorted(handles.cameras)}")
        self._render()
        assert self.scene is not None
        names = [o.name for o in self.scene.objects]
        return self._ex.read_segmentation(handles.cameras[camera], names), names

    def proprio(self) -> np.ndarray:
        """float32 (14,) in the order of ``control.STATE_NAMES``."""
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
