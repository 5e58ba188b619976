"""The action and proprio-state layouts every backend, dataset and policy shares.

Action: float32 ``(ACTION_DIM,) = (7,)``, an end-effector delta in the robot base frame::

    [dx, dy, dz (m), droll, dpitch, dyaw (rad), gripper]

``gripper`` is in [0, 1] with 1 = open (the BridgeData / OpenVLA convention). The rotation
delta is applied on the left of the current orientation, ``R_target = R(droll, dpitch, dyaw) @
R_current``, with extrinsic xyz Euler angles.

Proprio state: float32 ``(STATE_DIM,) = (14,)``, in the order of :data:`STATE_NAMES`:
TCP position (m, robot base frame), TCP orientation (rad, extrinsic xyz roll / pitch / yaw; z up
when the gripper points down), gripper opening fraction (1 = fully open), joint positions (rad).
"""

from __future__ import annotations

#: Names of the action dimensions, in order (units in the module docstring).
ACTION_NAMES: tuple[str, ...] = ("dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper")
ACTION_DIM = len(ACTION_NAMES)

#: Names of the proprio state dimensions, in order.
STATE_NAMES: tuple[str, ...] = (
    "ee_x", "ee_y", "ee_z",  # m, robot base frame
    "ee_roll", "ee_pitch", "ee_yaw",  # rad, extrinsic xyz Euler angles of the TCP frame
    "gripper",  # opening fraction, 1 = fully open
    "q1", "q2", "q3", "q4", "q5", "q6", "q7",  # joint positions, rad
)  # fmt: skip
STATE_DIM = len(STATE_NAMES)

#: Named views of :data:`STATE_NAMES`, for formats that store low-dimensional parts apart.
STATE_SLICES: dict[str, slice] = {
    "ee_pos": slice(0, 3),
    "ee_rpy": slice(3, 6),
    "gripper": slice(6, 7),
    "joint_pos": slice(7, 14),
}
