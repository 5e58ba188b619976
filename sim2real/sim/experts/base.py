"""Phase-based scripted experts computing end-effector delta actions from privileged state."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from sim2real.contracts.geometry import rotation_error, rpy_to_matrix, symmetric_yaw_error
from sim2real.registry import Registry
from sim2real.sim import shapes
from sim2real.sim.backend import PrivilegedState
from sim2real.sim.scene_spec import ObjectSpec, SceneSpec

OPEN, CLOSED = 1.0, 0.0
#: Proportional gain multiplier per action latency (0, 1, 2+ steps), used with the predictor.
LATENCY_GAIN = (1.0, 0.8, 0.7)


@dataclass(frozen=True)
class DartNoise:
    """DART noise for :class:`Expert`: ``scale`` (m, std per axis) on a fraction ``rate`` of the steps."""

    scale: float
    rate: float


#: the noise of demonstrations a policy is trained on: 3 cm kicks on 20 % of the steps
TRAINING_DART = DartNoise(scale=0.03, rate=0.2)


@dataclass(frozen=True)
class Waypoint:
    """Where the TCP should go: ``pos`` (3,) m, ``yaw`` rad, ``gripper`` (1 = open)."""

    pos: np.ndarray
    yaw: float
    gripper: float


@dataclass(frozen=True)
class Phase:
    """One phase: a waypoint function of state, a position tolerance (m) that ends it, and
    step bounds (``min_steps`` waits, e.g. for the gripper to close; ``max_steps`` gives up
    waiting for the tolerance and moves on). A phase with ``verify`` checks the state when it
    ends and, when the check fails (a grasp that caught nothing), sends the expert back to the
    phase ``retry_from``, at most ``Expert.max_retries`` times an episode."""

    name: str
    target: Callable[[PrivilegedState], Waypoint]
    tolerance: float = 0.01
    min_steps: int = 0
    max_steps: int = 30
    max_position_step: float | None = None  # m per step; None = the expert's default
    verify: Callable[[PrivilegedState], bool] | None = None  # checked when the phase ends
    retry_from: str | None = None  # the phase to go back to when ``verify`` fails


class Expert:
    """Runs phases in order. ``act`` returns the expert's (clean) action; ``perturb`` returns the
    action to execute: with ``noise_scale`` (m) > 0, Gaussian noise (drawn from the explicit
    ``rng``) on its position part, on a fraction ``noise_rate`` of the steps. Recording ``act``'s
    label while executing ``perturb``'s action is DART (Laskey et al., 2017): the demonstrations
    visit the states a learner's errors lead to, labelled with the expert's correction from there.
    Noise on every step (``noise_rate`` 1) keeps the TCP from settling within a phase's
    tolerance, so phases end on their step limit and the moment the gripper closes no longer
    follows from what the cameras see; occasional larger kicks (:data:`TRAINING_DART`)
    let each phase settle between them and still knock some grasps off, which the expert
    retries.

    The expert knows the scene's action latency (privileged information): it predicts where
    its still-queued actions will take the TCP (a Smith predictor) and aims from there, lowers
    its gain a little, and holds the gripper phases (``min_steps``) longer by the delay."""

    max_position_step = 0.05
    max_rotation_step = 0.3
    position_gain = 1.0
    max_retries = 2

    def __init__(
        self, scene: SceneSpec, rng: np.random.Generator, noise_scale: float = 0.0, noise_rate: float = 1.0
    ) -> None:
        if not 0.0 <= noise_rate <= 1.0:
            raise ValueError(f"noise_rate is a probability per step, got {noise_rate}")
        self.scene = scene
        self.rng = rng
        self.noise_scale = noise_scale
        self.noise_rate = noise_rate
        self.latency = scene.dynamics.action_latency_steps
        self._pending: deque[np.ndarray] = deque(maxlen=max(self.latency, 1))
        self.gain = self.position_gain * LATENCY_GAIN[min(self.latency, len(LATENCY_GAIN) - 1)]
        self.phases = self.plan(scene)
        self.phase_index = 0
        self.steps_in_phase = 0
        self.retries = 0

    def plan(self, scene: SceneSpec) -> list[Phase]:
        raise NotImplementedError

    @property
    def phase(self) -> str:
        return self.phases[min(self.phase_index, len(self.phases) - 1)].name

    @property
    def done(self) -> bool:
        return self.phase_index >= len(self.phases)

    def act(self, state: PrivilegedState) -> np.ndarray:
        """Action float32 (7,) for ``state``."""
        while not self.done:
            phase = self.phases[self.phase_index]
            waypoint = phase.target(state)
            error = np.linalg.norm(waypoint.pos - state.ee_pos)
            min_steps = phase.min_steps + (self.latency if phase.min_steps else 0)
            reached = error < phase.tolerance and self.steps_in_phase >= min_steps
            max_steps = int(phase.max_steps / LATENCY_GAIN[min(self.latency, len(LATENCY_GAIN) - 1)]) + min_steps
            if reached or self.steps_in_phase >= max_steps:
                self._next_phase(phase, state)
                continue
            self.steps_in_phase += 1
            return self._action(state, waypoint, phase.max_position_step or self.max_position_step)
        last = self.phases[-1].target(state)
        return self._action(state, Waypoint(state.ee_pos, last.yaw, last.gripper), self.max_position_step)

    def _next_phase(self, ended: Phase, state: PrivilegedState) -> None:
        """Move on from ``ended``, or back to its ``retry_from`` phase when its check fails."""
        self.steps_in_phase = 0
        failed = ended.verify is not None and not ended.verify(state)
        if failed and ended.retry_from is not None and self.retries < self.max_retries:
            self.retries += 1
            self.phase_index = [p.name for p in self.phases].index(ended.retry_from)
            self.on_retry()
        else:
            self.phase_index += 1

    def on_retry(self) -> None:
        """Forget what the failed attempt fixed (e.g. a grasp yaw); called before a retry."""

    def perturb(self, action: np.ndarray) -> np.ndarray:
        """The action to execute for ``act``'s ``action`` (7,): on a fraction ``noise_rate`` of
        the steps its position part plus N(0, ``noise_scale``^2) m per axis, else ``action``
        itself; no draw is made when ``noise_scale`` is 0."""
        if self.noise_scale <= 0:
            return action
        if self.noise_rate < 1.0 and self.rng.random() >= self.noise_rate:
            return action
        noise = self.rng.normal(0.0, self.noise_scale, size=3)
        if self.latency:  # the Smith predictor must expect what will really be executed
            self._pending[-1] = self._pending[-1] + noise
        executed = action.copy()
        executed[:3] += noise.astype(action.dtype)
        return executed

    def _action(self, state: PrivilegedState, waypoint: Waypoint, max_step: float) -> np.ndarray:
        predicted = state.ee_pos + (sum(self._pending) if self.latency else 0.0)
        delta = self.gain * (waypoint.pos - predicted)
        norm = np.linalg.norm(delta)
        if norm > max_step:
            delta *= max_step / norm
        target_mat = rpy_to_matrix(np.array([0.0, 0.0, waypoint.yaw]))
        if self.latency:
            self._pending.append(delta.copy())
        rot = rotation_error(target_mat, state.ee_mat)
        rot = np.clip(self.gain * rot, -self.max_rotation_step, self.max_rotation_step)
        return np.r_[delta, rot, waypoint.gripper].astype(np.float32)


def grasp_yaw(obj: ObjectSpec, object_quat: np.ndarray, current_yaw: float) -> float:
    """TCP yaw (rad) that closes the fingers across the object's x axis, choosing among the
    object's symmetric equivalents the one closest to ``current_yaw``."""
    w, _, _, z = object_quat
    object_yaw = 2.0 * np.arctan2(z, w)
    target = object_yaw + np.pi / 2.0
    symmetry = shapes.SHAPES.get(obj.shape).yaw_symmetry
    if symmetry == 0.0:
        return current_yaw
    return current_yaw + symmetric_yaw_error(target, current_yaw, symmetry)


EXPERTS: Registry[type[Expert]] = Registry("expert")


def make_expert(
    scene: SceneSpec, rng: np.random.Generator, noise_scale: float = 0.0, noise_rate: float = 1.0
) -> Expert:
    return EXPERTS.get(scene.task)(scene, rng, noise_scale, noise_rate)
