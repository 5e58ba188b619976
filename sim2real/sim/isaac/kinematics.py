"""Franka Panda kinematics shared by the Isaac backend and its tests (pure numpy, no simulator).

Two joint conventions meet here:

* the **project** convention (:mod:`sim2real.sim.robots.panda`, used in SceneSpecs, proprio and
  by the MuJoCo backend), whose joint 6 and joint 7 zeros come from the gymnasium-robotics mesh
  set;
* the **Franka** convention of Franka's published kinematics, which Isaac Sim's Franka USD
  (converted from ``franka_description``) follows.

They differ by constant offsets: ``q_franka = q_project + FRANKA_JOINT_OFFSETS`` (rad). The
offsets were fitted by matching this module's forward kinematics to the MuJoCo model's hand
pose over random configurations (``tests/test_isaac_translation.py`` repeats the check; the
residual is below 1 mm); they equal the extra z rotations the MuJoCo chain authors on link 6
(1.57 rad) and link 7 (0.7854 rad).

Frames (all in the robot base frame = world frame, metres):

* ``hand``: Franka's ``panda_hand`` link (flange + 0.107 m, rotated -45 deg about z), the
  frame of the MuJoCo ``hand`` body;
* ``tcp``: the fingertip centre, ``TCP_OFFSET`` m along the hand's z axis, rotated 180 deg
  about x so that z points up when the gripper points down (as the MuJoCo ``tcp`` site).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from sim2real.contracts.geometry import rotation_error
from sim2real.sim.control import ClipCounter, ControllerConfig, dls_step
from sim2real.sim.robots import ROBOTS

#: q_franka = q_project + offsets (rad), per arm joint.
FRANKA_JOINT_OFFSETS = np.array([0.0, 0.0, 0.0, 0.0, 0.0, 1.57, 0.7854])
#: Fingertip centre along the hand's z axis (m); the MuJoCo backend's ``TCP_OFFSET``.
TCP_OFFSET = 0.103
#: Hand frame -> TCP frame rotation (180 deg about x).
HAND_TO_TCP_ROTATION = np.diag([1.0, -1.0, -1.0])

# Craig (modified) DH parameters of the Panda arm, Franka's published values (m, rad).
_DH_A = (0.0, 0.0, 0.0, 0.0825, -0.0825, 0.0, 0.088)
_DH_D = (0.333, 0.0, 0.316, 0.0, 0.384, 0.0, 0.0)
_DH_ALPHA = (0.0, -np.pi / 2, np.pi / 2, np.pi / 2, -np.pi / 2, np.pi / 2, np.pi / 2)
_FLANGE_D = 0.107
_HAND_YAW = -np.pi / 4


def project_to_franka(q_project: np.ndarray) -> np.ndarray:
    """Arm joints (7,) rad: project convention -> Franka/Isaac convention."""
    return np.asarray(q_project, float) + FRANKA_JOINT_OFFSETS


def franka_to_project(q_franka: np.ndarray) -> np.ndarray:
    """Arm joints (7,) rad: Franka/Isaac convention -> project convention."""
    return np.asarray(q_franka, float) - FRANKA_JOINT_OFFSETS


def _dh(a: float, d: float, alpha: float, theta: float) -> np.ndarray:
    ca, sa, ct, st = np.cos(alpha), np.sin(alpha), np.cos(theta), np.sin(theta)
    return np.array(
        [[ct, -st, 0.0, a], [st * ca, ct * ca, -sa, -d * sa], [st * sa, ct * sa, ca, d * ca], [0.0, 0.0, 0.0, 1.0]]
    )


def joint_frames(q_project: np.ndarray) -> list[np.ndarray]:
    """World transforms (4, 4) of joint frames 1..7 (z = joint axis) and, last, of the hand."""
    q = project_to_franka(q_project)
    frames = []
    transform = np.eye(4)
    for i in range(7):
        transform = transform @ _dh(_DH_A[i], _DH_D[i], _DH_ALPHA[i], q[i])
        frames.append(transform.copy())
    flange = transform @ _dh(0.0, _FLANGE_D, 0.0, 0.0)
    frames.append(flange @ _dh(0.0, 0.0, 0.0, _HAND_YAW))
    return frames


def hand_pose(q_project: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hand position (3,) m and rotation (3, 3) for arm joints ``q_project`` (rad)."""
    hand = joint_frames(q_project)[-1]
    return hand[:3, 3].copy(), hand[:3, :3].copy()


def tcp_from_hand(hand_pos: np.ndarray, hand_mat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """TCP position (3,) m and rotation (3, 3) from the hand link's world pose."""
    hand_mat = np.asarray(hand_mat, float)
    return np.asarray(hand_pos, float) + hand_mat[:, 2] * TCP_OFFSET, hand_mat @ HAND_TO_TCP_ROTATION


def tcp_pose(q_project: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """TCP position (3,) m and rotation (3, 3) for arm joints ``q_project`` (rad)."""
    return tcp_from_hand(*hand_pose(q_project))


def tcp_jacobian(q_project: np.ndarray) -> np.ndarray:
    """Geometric Jacobian (6, 7) of the TCP: rows = linear (m/rad), angular (rad/rad), world frame."""
    frames = joint_frames(q_project)
    tcp_pos, _ = tcp_from_hand(frames[-1][:3, 3], frames[-1][:3, :3])
    jac = np.zeros((6, 7))
    for i in range(7):
        axis, origin = frames[i][:3, 2], frames[i][:3, 3]
        jac[:3, i] = np.cross(axis, tcp_pos - origin)
        jac[3:, i] = axis
    return jac


def shift_jacobian(jacobian: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """Move a (6, n) geometric Jacobian's reference point by ``offset`` (3,) m (world frame):
    ``v_new = v + w x offset``."""
    out = np.array(jacobian, float)
    ox, oy, oz = offset
    skew = np.array([[0.0, -oz, oy], [oz, 0.0, -ox], [-oy, ox, 0.0]])
    out[:3] = out[:3] - skew @ out[3:]
    return out


def physx_tcp_jacobian(
    link_jacobian: np.ndarray, link_pos: np.ndarray, link_mat: np.ndarray, com_local: np.ndarray, tcp_pos: np.ndarray
) -> np.ndarray:
    """(6, n) TCP Jacobian, world frame, from a link Jacobian measured by PhysX.

    PhysX (``Articulation.get_jacobian_matrices``, the tensor API's ``get_jacobians``) refers the
    linear rows of a link's Jacobian to the link's **centre of mass**, not to its frame origin
    (PhysX issue NVIDIAGameWorks/PhysX#225; Isaac Lab shifts them the same way). ``link_pos`` (3,) m
    and ``link_mat`` (3, 3): the link frame's world pose; ``com_local`` (3,) m: its centre of mass in
    the link frame (``Articulation.get_link_coms``); ``tcp_pos`` (3,) m. The reference point moves
    from the centre of mass to the TCP."""
    com_world = np.asarray(link_pos, float) + np.asarray(link_mat, float) @ np.asarray(com_local, float)
    return shift_jacobian(link_jacobian, np.asarray(tcp_pos, float) - com_world)


def solve_ik(
    q_now: np.ndarray,
    pos: np.ndarray,
    mat: np.ndarray,
    config: ControllerConfig,
    control_hz: float,
    clips: ClipCounter,
    first: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    kinematics: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]] | None = None,
) -> np.ndarray:
    """Joint position targets (7,) rad (project convention) that move the TCP toward ``pos`` (3,) m
    and ``mat`` (3, 3), by ``config.ik_iterations`` damped-least-squares steps.

    ``first`` = (tcp_pos, tcp_mat, jacobian (6, 7)) measured by the simulator at ``q_now``; the
    following iterations evaluate ``kinematics(q) -> (tcp_pos, tcp_mat, jacobian)`` (default: this
    module's model) at the iterate, since a simulator cannot evaluate hypothetical
    configurations. Limits, margins and clip reasons are those of the MuJoCo backend:
    ``joint_limit`` on the final iterate, then ``joint_velocity`` on the step.
    """
    robot = ROBOTS.get("panda")
    kinematics = kinematics or _model_kinematics
    limits = np.asarray(robot.joint_limits)
    low, high = limits[:, 0] + config.joint_limit_margin, limits[:, 1] - config.joint_limit_margin
    q_now = np.asarray(q_now, float)
    q = q_now.copy()
    for iteration in range(config.ik_iterations):
        if iteration == 0 and first is not None:
            cur_pos, cur_mat, jac = first
        else:
            cur_pos, cur_mat, jac = kinematics(q)
        error = np.r_[pos - cur_pos, rotation_error(mat, cur_mat)]
        q = q + dls_step(np.asarray(jac, float), error, config.ik_damping)
        last = iteration == config.ik_iterations - 1
        q = clips.clip(q, low, high, "joint_limit") if last else np.clip(q, low, high)  # count the final clip only
    max_step = np.asarray(robot.velocity_limits) / control_hz
    return q_now + clips.clip(q - q_now, -max_step, max_step, "joint_velocity")


def _model_kinematics(q: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pos, mat = tcp_pose(q)
    return pos, mat, tcp_jacobian(q)
