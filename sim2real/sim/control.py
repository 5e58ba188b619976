"""Backend-independent end-effector control: action validation, clipping with counters,
damped-least-squares IK steps and action latency.

The action and proprio-state layouts (names, units, the rotation convention) are
:mod:`sim2real.contracts.actions`.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass

import numpy as np

from sim2real.contracts.actions import ACTION_DIM, ACTION_NAMES
from sim2real.contracts.cell import WORKSPACE_HIGH, WORKSPACE_LOW
from sim2real.contracts.geometry import rpy_to_matrix


class ActionError(ValueError):
    """An action that cannot be executed (wrong shape, NaN or Inf)."""


@dataclass(frozen=True)
class ControllerConfig:
    """Limits of the end-effector controller.

    ``max_position_delta`` (m) and ``max_rotation_delta`` (rad) bound each action component
    per control step; ``workspace_low/high`` (m) bound the commanded TCP position (default: the
    cell's, :data:`sim2real.contracts.cell.WORKSPACE_LOW`; the experts never go below 2.4 cm);
    ``ik_damping`` is the DLS damping (m); ``joint_limit_margin`` (rad) keeps targets
    inside the joint limits; ``interpolation_segments``: the joint targets move from the
    previous command to the new one in this many equal steps within a control period (a
    ramp, as a robot's joint trajectory interpolator does, instead of a step that jerks the
    arm and shakes loose what it holds).
    """

    max_position_delta: float = 0.05
    max_rotation_delta: float = 0.3
    workspace_low: tuple[float, float, float] = WORKSPACE_LOW
    workspace_high: tuple[float, float, float] = WORKSPACE_HIGH
    ik_damping: float = 0.05
    ik_iterations: int = 2
    joint_limit_margin: float = 0.01
    interpolation_segments: int = 10

    def __post_init__(self) -> None:
        if self.interpolation_segments < 1:
            raise ValueError(f"controller.interpolation_segments must be >= 1, got {self.interpolation_segments}")


def validate_action(action: np.ndarray) -> np.ndarray:
    """Return ``action`` as float64 (7,), raising :class:`ActionError` on a wrong shape or
    non-finite values."""
    arr = np.asarray(action)
    if arr.shape != (ACTION_DIM,):
        raise ActionError(f"action must have shape ({ACTION_DIM},) {list(ACTION_NAMES)}, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number):
        raise ActionError(f"action must be numeric, got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    bad = ~np.isfinite(arr)
    if bad.any():
        names = [ACTION_NAMES[i] for i in np.flatnonzero(bad)]
        raise ActionError(f"action has non-finite values in {names}: {arr.tolist()}")
    return arr


class ClipCounter(Counter[str]):
    """Counts of every clip the controller applied, by reason."""

    def clip(self, values: np.ndarray, low: np.ndarray | float, high: np.ndarray | float, reason: str) -> np.ndarray:
        clipped = np.clip(values, low, high)
        if not np.array_equal(clipped, values):
            self[reason] += 1
        return clipped


def clip_action(action: np.ndarray, config: ControllerConfig, counter: ClipCounter) -> np.ndarray:
    """Clip a validated action to the per-step limits, counting every clip."""
    out = action.copy()
    out[:3] = counter.clip(out[:3], -config.max_position_delta, config.max_position_delta, "position_delta")
    out[3:6] = counter.clip(out[3:6], -config.max_rotation_delta, config.max_rotation_delta, "rotation_delta")
    out[6:] = counter.clip(out[6:], 0.0, 1.0, "gripper")
    return out


def target_pose(
    action: np.ndarray, ee_pos: np.ndarray, ee_mat: np.ndarray, config: ControllerConfig, counter: ClipCounter
) -> tuple[np.ndarray, np.ndarray]:
    """Commanded TCP position (3,) m, clipped to the workspace, and orientation (3, 3)."""
    pos = counter.clip(
        ee_pos + action[:3], np.array(config.workspace_low), np.array(config.workspace_high), "workspace"
    )
    mat = rpy_to_matrix(action[3:6]) @ ee_mat
    return pos, mat


def joint_target_ramp(start: np.ndarray, target: np.ndarray, segments: int) -> list[np.ndarray]:
    """Joint targets (n,) rad moving linearly from ``start`` to ``target`` in ``segments`` equal
    steps (the last one is ``target``): what a backend holds during each part of a control period."""
    return [start + (target - start) * (segment / segments) for segment in range(1, segments + 1)]


def dls_step(jacobian: np.ndarray, error: np.ndarray, damping: float) -> np.ndarray:
    """Damped least squares: dq = J^T (J J^T + damping^2 I)^-1 e.  J: (6, n), e: (6,) -> (n,)."""
    jjt = jacobian @ jacobian.T
    return jacobian.T @ np.linalg.solve(jjt + damping**2 * np.eye(jjt.shape[0]), error)


class LatencyBuffer:
    """Delays actions by ``steps`` control steps; until then it repeats ``initial``."""

    def __init__(self, steps: int, initial: np.ndarray) -> None:
        if steps < 0:
            raise ValueError(f"action latency must be >= 0 steps, got {steps}")
        self._queue: deque[np.ndarray] = deque([initial.copy() for _ in range(steps)])

    def push(self, action: np.ndarray) -> np.ndarray:
        self._queue.append(action)
        return self._queue.popleft()
