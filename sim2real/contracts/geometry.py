"""Rotation helpers shared by the controller, the backends, the experts and the remote mapping (pure numpy/scipy).

Conventions: quaternions are scalar-first ``[w, x, y, z]`` (MuJoCo and USD order);
Euler angles are extrinsic ``xyz`` roll/pitch/yaw in radians, i.e.
``R = Rz(yaw) @ Ry(pitch) @ Rx(roll)``.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

_EULER_SEQ = "xyz"  # lower case: extrinsic axes in scipy


def quat_wxyz_to_matrix(quat: np.ndarray) -> np.ndarray:
    """(4,) [w, x, y, z] -> (3, 3) rotation matrix."""
    w, x, y, z = quat
    return Rotation.from_quat([x, y, z, w]).as_matrix()


def matrix_to_quat_wxyz(matrix: np.ndarray) -> np.ndarray:
    """(3, 3) rotation matrix -> (4,) [w, x, y, z] with w >= 0."""
    x, y, z, w = Rotation.from_matrix(matrix).as_quat()
    quat = np.array([w, x, y, z])
    return quat if w >= 0 else -quat


def rpy_to_matrix(rpy: np.ndarray) -> np.ndarray:
    """(3,) roll, pitch, yaw (rad) -> (3, 3)."""
    return Rotation.from_euler(_EULER_SEQ, rpy).as_matrix()


def matrix_to_rpy(matrix: np.ndarray) -> np.ndarray:
    """(3, 3) -> (3,) roll, pitch, yaw (rad), each in [-pi, pi] (pitch in [-pi/2, pi/2])."""
    m = np.asarray(matrix)
    pitch = np.arcsin(np.clip(-m[2, 0], -1.0, 1.0))
    if abs(m[2, 0]) < 1.0 - 1e-9:
        roll = np.arctan2(m[2, 1], m[2, 2])
        yaw = np.arctan2(m[1, 0], m[0, 0])
    else:  # gimbal lock: put the whole rotation about z into yaw
        roll = 0.0
        yaw = np.arctan2(-m[0, 1], m[1, 1])
    return np.array([roll, pitch, yaw])


def yaw_to_quat_wxyz(yaw: float) -> np.ndarray:
    """Rotation about world z by ``yaw`` rad -> (4,) [w, x, y, z]."""
    return np.array([np.cos(yaw / 2.0), 0.0, 0.0, np.sin(yaw / 2.0)])


def rotation_error(target: np.ndarray, current: np.ndarray) -> np.ndarray:
    """Axis-angle vector (3,) rad of ``target @ current.T``, in the world frame."""
    r = target @ current.T
    cos_angle = np.clip((np.trace(r) - 1.0) / 2.0, -1.0, 1.0)
    angle = np.arccos(cos_angle)
    axis_sin = np.array([r[2, 1] - r[1, 2], r[0, 2] - r[2, 0], r[1, 0] - r[0, 1]]) / 2.0  # axis * sin(angle)
    if angle < 1e-6:
        return axis_sin
    if angle > np.pi - 1e-4:  # near pi: sin is ~0, fall back to the robust general method
        return Rotation.from_matrix(r).as_rotvec()
    return axis_sin * (angle / np.sin(angle))


def wrap_angle(angle: np.ndarray | float) -> np.ndarray | float:
    """Wrap radians into [-pi, pi)."""
    return (np.asarray(angle) + np.pi) % (2.0 * np.pi) - np.pi


def symmetric_yaw_error(target_yaw: float, current_yaw: float, symmetry: float) -> float:
    """Smallest yaw change (rad) that aligns ``current`` with ``target`` modulo ``symmetry`` rad."""
    delta = float(wrap_angle(target_yaw - current_yaw))
    return float((delta + symmetry / 2.0) % symmetry - symmetry / 2.0)


def look_at_matrix(pos: np.ndarray, target: np.ndarray, roll: float, up: np.ndarray) -> np.ndarray:
    """Camera orientation (3, 3), columns = camera x (right), y (up), z (backward), for a
    camera at ``pos`` looking at ``target`` (MuJoCo/OpenGL cameras look along -z), rolled
    by ``roll`` rad about the optical axis. ``up`` is the approximate up direction."""
    forward = np.asarray(target, float) - np.asarray(pos, float)
    norm = np.linalg.norm(forward)
    if norm < 1e-9:
        raise ValueError(f"camera position {pos} equals its look-at point")
    forward /= norm
    right = np.cross(forward, up)
    if np.linalg.norm(right) < 1e-6:  # looking along `up`: pick any perpendicular
        right = np.cross(forward, np.array([1.0, 0.0, 0.0]))
    right /= np.linalg.norm(right)
    cam_up = np.cross(right, forward)
    c, s = np.cos(roll), np.sin(roll)
    right, cam_up = c * right + s * cam_up, -s * right + c * cam_up
    return np.stack([right, cam_up, -forward], axis=1)
