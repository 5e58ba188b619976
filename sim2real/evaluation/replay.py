"""The real-robot replay set: open-loop action error on real frames (and on held-out sim
episodes, and the gap), the visual gap per camera (Fréchet distance of the policy encoder's
features of real and sim frames; encoder-free image statistics), and dynamics replay (the
recorded actions executed in sim, EE trajectory compared with the recorded one).

What each metric needs, and what happens to a set that lacks it:

* open loop and dynamics need 7-D end-effector delta actions (``ACTION_NAMES``). An episode
  whose ``metadata.extras["action_space"]`` is anything but ``"ee_delta"`` (the default when
  absent; readers of other embodiments write e.g. ``"joint_position"``), or whose actions are
  not finite (T, 7), is left out of both, with the reason in the block's ``skipped``.
* dynamics also needs recorded EE positions (state ``ee_x..ee_z``); orientation errors need
  ``ee_roll..ee_yaw`` and are ``None`` without them.
* the visual gap needs a trained policy (encoder features) and, per camera, frames of that
  camera on the real side: a camera the set lacks is reported missing (``None`` and a reason),
  never stood in for by another camera. Image statistics need no policy.

Only an unreadable set is an error.

Dynamics replay (:func:`dynamics_replay`) runs each episode at its own control rate
(``metadata.control_hz``): the simulator's control period is set to the recorded one (physics
rate chosen to divide evenly), so each recorded delta is executed over the period it was
recorded for. Resampling the actions to a fixed rate would be wrong: a delta action is "move this
far by the next step", and merging or splitting steps changes both the per-step limits the
controller applies and the timing whose tracking we measure. Episodes start from:

* ``recorded_joints``: a set of our robot (``metadata.robot`` names it, state ``q1..q7``
  finite at t = 0, inside the joint limits) starts from its recorded joint positions, if their
  forward kinematics in sim reproduce the recorded EE pose (:data:`JOINT_START_TOLERANCE_M`,
  :data:`JOINT_START_TOLERANCE_RAD`; a mismatch means another joint convention, TCP or base
  frame, and the episode falls back to an EE start, saying why). Errors are absolute, in the
  shared base frame.
* ``recorded_ee``: a set of our robot without usable joints starts with our TCP at the recorded
  start position (the same robot's base frame), pointing down, when the whole recorded trajectory
  then lies inside the simulated workspace. Errors are compared as motion since the start
  (:func:`~sim2real.evaluation.metrics.relative_to_start`): the tool frame may differ.
* ``workspace_fit``: another robot's set (or ours whose trajectory does not fit) is translated,
  per axis, to lie inside the simulated workspace as close to :data:`REPLAY_START` as it allows
  (centred on an axis where it is longer than the workspace, which then counts as leaving it);
  errors relative to the start. Another robot's recorded coordinates are in *its* base frame:
  placing our arm there measures our arm's reach at someone else's coordinates, not the
  simulator (BridgeData's WidowX starts 0.23 m in front of its base, where the Panda runs into
  its joint limits), so they are used only on request (``foreign_start="recorded_ee"``).

Every replay reports the controller's clips per episode and in total (workspace, per-step
position/rotation delta, joint limits, ...), per-axis errors, and the steps at which the recorded
trajectory, placed in the sim frame, lies outside the simulated workspace.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from sim2real.datasets import DatasetError, Episode, open_dataset
from sim2real.datasets.schema import ACTION_DIM, STATE_SLICES
from sim2real.evaluation.metrics import (
    AXES,
    TrajectoryErrors,
    aggregate_trajectory_errors,
    frechet_distance_from_features,
    image_statistics,
    open_loop_gap,
    relative_to_start,
    trajectory_errors,
)

#: Where a replayed trajectory of another robot is placed in the simulator when it does not fit
#: at its recorded position (TCP, m, robot base frame): the middle of the workspace.
REPLAY_START = np.array([0.45, 0.0, 0.15])

#: The action space of end-effector deltas (``metadata.extras["action_space"]``; the default
#: when absent). Other values readers write: ``"joint_position"``, ``"unknown"``.
EE_DELTA = "ee_delta"

#: The most the sim's forward kinematics of recorded joint positions may differ from the recorded
#: EE pose for the joints to be trusted as the start (position m, orientation rad).
JOINT_START_TOLERANCE_M = 0.01
JOINT_START_TOLERANCE_RAD = 0.05

#: A recorded position counts as outside the simulated workspace beyond this margin (m).
WORKSPACE_TOLERANCE_M = 1e-3

#: Clip reasons (:mod:`sim2real.sim.control` counters) reported even when zero.
REPORTED_CLIPS: tuple[str, ...] = ("workspace", "position_delta", "rotation_delta", "joint_limit")

#: Physics rate the replay aims for (Hz); the exact rate is a multiple of the control rate.
REPLAY_PHYSICS_HZ = 500.0

#: Where another robot's episodes start (module docstring): fitted around :data:`REPLAY_START`
#: (default), or at the recorded position when the trajectory fits the workspace there.
FOREIGN_STARTS: tuple[str, ...] = ("workspace_fit", "recorded_ee")

#: Control steps the arm gets to reach an end-effector start pose before an episode.
_MOVE_STEPS = 60


@dataclass(frozen=True)
class ReplaySet:
    """Episodes of a replay dataset, mapped onto the canonical schema; ``control_hz`` is the
    first episode's rate (Hz; each episode is replayed at its own)."""

    path: str
    episodes: list[Episode]
    control_hz: float


def load_replay_set(path: str | Path, mapping: str | None, max_episodes: int) -> ReplaySet:
    """Up to ``max_episodes`` episodes from RLDS (through a declarative ``mapping``), Zarr, HDF5
    or any other readable format. Only an unreadable or empty set is an error
    (:class:`DatasetError`): episodes of another embodiment (joint-position actions, another
    action size) load, and the metrics they cannot give are skipped with a reason."""
    options = {"mapping": mapping} if mapping else {}
    try:
        reader = open_dataset(path, **options)
    except TypeError:
        raise DatasetError(f"{path}: replay.mapping={mapping!r} applies to RLDS datasets only") from None
    try:
        count = min(len(reader), max_episodes)  # type: ignore[arg-type]
        if count == 0:
            raise DatasetError(f"{path}: the replay set has no episodes")
        episodes = [reader.episode(i) for i in range(count)]
    finally:
        reader.close()
    return ReplaySet(str(path), episodes, float(episodes[0].metadata.control_hz or 10.0))


# ---------------------------------------------------------------------------------------------
# What a set allows
# ---------------------------------------------------------------------------------------------


def action_space(episode: Episode) -> tuple[str, str | None]:
    """The episode's action space and, when open-loop and dynamics replay cannot use its actions,
    why: ``(space, reason)``; ``reason`` is ``None`` for finite (T, 7) end-effector deltas.

    ``space`` is ``metadata.extras["action_space"]`` (default :data:`EE_DELTA`), or
    ``"unknown"`` when the actions' shape or values contradict an end-effector delta."""
    declared = str(episode.metadata.extras.get("action_space", EE_DELTA))
    action = np.asarray(episode.steps.action)
    dim = _action_dim(episode)
    if declared != EE_DELTA:
        expected = "end-effector deltas" if dim == ACTION_DIM else f"{ACTION_DIM}-D end-effector deltas"
        return declared, f"actions are {declared.replace('_', ' ')}s ({dim}-D), not {expected}"
    if action.ndim != 2 or dim != ACTION_DIM or action.shape[0] == 0:
        return "unknown", f"actions are {dim}-D, not {ACTION_DIM}-D end-effector deltas"
    if not np.isfinite(action).all():
        return "unknown", "actions hold NaN or infinite values"
    return EE_DELTA, None


def _action_dim(episode: Episode) -> int:
    """Size of one action (an episode's actions are (T, D); a (T,) array counts as 1-D)."""
    action = np.asarray(episode.steps.action)
    return int(np.prod(action.shape[1:], dtype=int))


def _state(episode: Episode, key: str) -> np.ndarray | None:
    """A named slice of the state (:data:`STATE_SLICES`), float64 (T, k), or ``None`` when the
    state is not the canonical (T, 14) layout."""
    state = np.asarray(episode.steps.state)
    if state.ndim != 2 or state.shape[1] < STATE_SLICES["joint_pos"].stop:
        return None
    return state[:, STATE_SLICES[key]].astype(np.float64)


def _joined(reasons: Mapping[str, str]) -> str:
    """One reason for several episodes: ``"<reason> (episodes a, b)"`` per distinct reason."""
    by_reason: dict[str, list[str]] = {}
    for episode_id, reason in reasons.items():
        by_reason.setdefault(reason, []).append(episode_id)
    parts = []
    for reason, ids in by_reason.items():
        shown = ", ".join(ids[:3]) + (f" and {len(ids) - 3} more" if len(ids) > 3 else "")
        parts.append(f"{reason} ({len(ids)} episode{'s' if len(ids) != 1 else ''}: {shown})")
    return "; ".join(parts)


def embodiment(episodes: Sequence[Episode]) -> dict[str, Any]:
    """What the set is: robots, action spaces and sizes, cameras and control rates, and whether
    it carries joint positions and EE poses (the ``replay.embodiment`` block)."""
    spaces = Counter(action_space(e)[0] for e in episodes)
    dims = Counter(_action_dim(e) for e in episodes)
    cameras = sorted({c for e in episodes for c in e.steps.images})
    joints = [_state(e, "joint_pos") for e in episodes]
    ee = [_state(e, "ee_pos") for e in episodes]
    return {
        "robots": sorted({e.metadata.robot or "unknown" for e in episodes}),
        "action_spaces": dict(sorted(spaces.items())),
        "action_dims": {str(k): v for k, v in sorted(dims.items())},
        "cameras": cameras,
        "control_hz": sorted({float(e.metadata.control_hz) for e in episodes}),
        "joint_positions": sum(1 for q in joints if q is not None and np.isfinite(q[0]).all()),
        "ee_positions": sum(1 for p in ee if p is not None and np.isfinite(p).all()),
    }


# ---------------------------------------------------------------------------------------------
# Open loop and visual gap
# ---------------------------------------------------------------------------------------------


def _resize(frames: np.ndarray, size: int) -> np.ndarray:
    if frames.shape[1] == size and frames.shape[2] == size:
        return frames
    from PIL import Image

    return np.stack([np.asarray(Image.fromarray(f).resize((size, size), Image.BILINEAR)) for f in frames])


def _input_camera(episode: Episode, camera: str, index: int) -> str:
    """The set's camera that feeds the policy's ``camera`` input for open-loop prediction: the
    same name, else the set's cameras in order (a policy needs every input; the report says so)."""
    if camera in episode.steps.images:
        return camera
    available = sorted(episode.steps.images)
    return available[min(index, len(available) - 1)]


def _episode_batch(policy: Any, episode: Episode, cameras: Sequence[str]) -> dict[str, Any]:
    """All timesteps of an episode as one batch: observation history ending at each step."""
    import torch

    config = policy.config
    length = episode.steps.num_steps
    history = config.history
    index = np.clip(np.arange(length)[:, None] + np.arange(-history + 1, 1)[None, :], 0, length - 1)
    obs_mask = (np.arange(length)[:, None] + np.arange(-history + 1, 1)[None, :]) >= 0
    state = np.where(np.isfinite(episode.steps.state), episode.steps.state, policy.state_fill()).astype(np.float32)
    images = {}
    for i, camera in enumerate(cameras):
        frames = _resize(episode.steps.images[_input_camera(episode, camera, i)], config.image_size)
        images[camera] = torch.from_numpy(frames[index])
    return {
        "images": images,
        "state": torch.from_numpy(state[index]),
        "instruction": [episode.steps.language_instruction] * length,
        "obs_mask": torch.from_numpy(obs_mask),
    }


def open_loop(policy: Any, episodes: Sequence[Episode]) -> dict[str, Any]:
    """Per-dimension normalized L1/MSE, gripper and token accuracy of the policy's first
    predicted action (its point prediction, :meth:`ChunkPolicy.predict_batch`) against the
    recorded action, over every step of ``episodes`` (7-D end-effector deltas)."""
    from sim2real.evaluation.metrics import action_errors

    preds, trues = [], []
    for episode in episodes:
        batch = _episode_batch(policy, episode, policy.config.cameras)
        preds.append(policy.predict_batch(batch)[:, 0].cpu().numpy())
        trues.append(episode.steps.action)
    pred, true = np.concatenate(preds), np.concatenate(trues)
    scale = policy.tokenizer.p99 - policy.tokenizer.p01
    tokens = (policy.tokenizer.encode(pred), policy.tokenizer.encode(true))
    errors = action_errors(pred, true, np.maximum(scale, 1e-6), pred_tokens=tokens[0], true_tokens=tokens[1])
    return errors.to_dict()


def missing_cameras(cameras: Sequence[str], episodes: Sequence[Episode]) -> dict[str, str]:
    """Cameras of ``cameras`` that no episode of ``episodes`` has, each with the reason text."""
    have = sorted({c for e in episodes for c in e.steps.images})
    return {c: f"the replay set has no {c!r} camera (it has: {', '.join(have)})" for c in cameras if c not in have}


def visual_gap(
    policy: Any, real: Sequence[Episode], sim: Sequence[Episode]
) -> tuple[dict[str, float | None], dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Fréchet distance between encoder features (FiLM off) of real and sim frames, per policy
    camera: ``None`` for a camera the real set lacks (its frames are never stood in for by another
    camera's); empty for a policy type without per-camera features. Also the (N, C) real and
    (M, C) sim features per measured camera, for the embedding plot."""
    import torch

    feats: dict[str, dict[str, list[np.ndarray]]] = {"real": {}, "sim": {}}
    cameras = list(policy.config.cameras)
    for name, episodes in (("real", real), ("sim", sim)):
        for episode in episodes:
            length = episode.steps.num_steps
            size = policy.config.image_size
            images = {}
            for camera in cameras:
                if camera in episode.steps.images:
                    images[camera] = torch.from_numpy(_resize(episode.steps.images[camera], size))
                else:  # the encoder wants every input; this camera's features are discarded below
                    images[camera] = torch.zeros((length, size, size, 3), dtype=torch.uint8)
            features = policy.image_features(images)
            if features is None:
                return {}, {}
            for camera, f in features.items():
                if camera in episode.steps.images:
                    feats[name].setdefault(camera, []).append(f.cpu().numpy())
    gap: dict[str, float | None] = {}
    embedding = {}
    for camera in cameras:
        if camera not in feats["real"] or camera not in feats["sim"]:
            gap[camera] = None
            continue
        a, b = np.concatenate(feats["real"][camera]), np.concatenate(feats["sim"][camera])
        gap[camera] = frechet_distance_from_features(a, b)
        embedding[camera] = (a, b)
    return gap, embedding


def image_stats(
    real: Sequence[Episode], sim: Sequence[Episode]
) -> tuple[dict[str, dict[str, Any] | None], dict[str, str]]:
    """Per camera of the sim episodes and the real set: :func:`image_statistics` of the real and
    sim frames, or ``None`` for a camera one side lacks; and for those, why (by camera)."""
    cameras = sorted({c for e in (*real, *sim) for c in e.steps.images})
    out: dict[str, dict[str, Any] | None] = {}
    reasons: dict[str, str] = {}
    for camera in cameras:
        real_frames = [e.steps.images[camera] for e in real if camera in e.steps.images]
        sim_frames = [e.steps.images[camera] for e in sim if camera in e.steps.images]
        out[camera] = image_statistics(real_frames, sim_frames) if real_frames and sim_frames else None
        if not real_frames:
            reasons[camera] = missing_cameras([camera], real)[camera]
        elif not sim_frames:
            have = sorted({c for e in sim for c in e.steps.images})
            reasons[camera] = f"the simulated episodes have no {camera!r} camera (they have: {', '.join(have)})"
    return out, reasons


# ---------------------------------------------------------------------------------------------
# Dynamics replay
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EpisodeReplay:
    """One episode's dynamics replay.

    ``start``: ``recorded_joints`` | ``recorded_ee`` | ``workspace_fit`` (module docstring);
    ``start_note``: why recorded joints were not used (``None`` when they were, or the set has
    none); ``frame``: ``absolute`` or ``relative_to_start``; ``start_offset_m``: recorded start
    position minus the sim's start position (3,) m (zero for an absolute start up to the FK
    mismatch); ``clips``: controller clip counts by reason; ``outside``: steps at which the recorded
    trajectory, placed in the sim frame, lies outside the workspace, by ``<axis>_low|high``.
    """

    episode_id: str
    start: str
    start_note: str | None
    frame: str
    control_hz: float
    physics_hz: float
    errors: TrajectoryErrors
    clips: dict[str, int]
    steps: int
    steps_outside: int
    outside: dict[str, int] = field(default_factory=dict)
    start_offset_m: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the identification, start, frame and rates, :meth:`TrajectoryErrors.to_dict`,
        clips and the workspace departure."""
        return {
            "episode_id": self.episode_id,
            "start": self.start,
            "start_note": self.start_note,
            "frame": self.frame,
            "start_offset_m": list(self.start_offset_m),
            "control_hz": self.control_hz,
            "physics_hz": self.physics_hz,
            **self.errors.to_dict(),
            "clips": dict(self.clips),
            "steps": self.steps,
            "steps_outside_workspace": self.steps_outside,
            "outside_workspace": dict(self.outside),
        }


def replay_physics_hz(control_hz: float, segments: int) -> float:
    """The physics rate (Hz) closest to :data:`REPLAY_PHYSICS_HZ` that is a whole multiple of
    ``control_hz * segments`` (each control period split into ``segments`` equal ramp segments
    of whole physics steps)."""
    per = control_hz * segments
    return per * max(1, round(REPLAY_PHYSICS_HZ / per))


def _replay_scene() -> Any:
    """The scene replays run in: the nominal ``pick_place`` scene (no randomisation, no latency,
    no sensor noise) with every object removed, so the arm moves in free space."""
    from sim2real.randomizers import sample_scene

    return replace(sample_scene("pick_place", 0), objects=())


def _with_start(scene: Any, joints: np.ndarray, gripper: float) -> Any:
    """``scene`` with the robot starting at ``joints`` (7,) rad, gripper opening fraction in [0, 1]."""
    robot = replace(scene.robot, joint_positions=tuple(float(q) for q in joints), gripper=float(gripper))
    return replace(scene, robot=robot)


def _same_robot(recorded: str, ours: str) -> bool:
    """Whether the robot named ``recorded`` in a set's metadata is ``ours`` (case, spaces and
    punctuation ignored; e.g. ``"Franka Panda"`` names ``panda``)."""
    return ours in re.sub(r"[^a-z0-9]", "", recorded.lower())


def _joint_start(episode: Episode, robot: Any) -> tuple[np.ndarray | None, str | None]:
    """The recorded joint positions (7,) rad at t = 0 when the set is of our ``robot``
    (:class:`~sim2real.sim.robots.RobotDescription`), else ``None`` and, when the set claims our
    robot, why its joints cannot be used."""
    if not _same_robot(episode.metadata.robot, robot.name):
        return None, None
    joints = _state(episode, "joint_pos")
    if joints is None or not np.isfinite(joints[0]).all():
        return None, "no recorded joint positions at the first step"
    limits = np.asarray(robot.joint_limits)
    outside = [i + 1 for i, q in enumerate(joints[0]) if not limits[i, 0] - 1e-3 <= q <= limits[i, 1] + 1e-3]
    if outside:
        return None, f"recorded joint positions outside {robot.name}'s limits (joints {outside})"
    return joints[0], None


def _placement(
    start: np.ndarray, relative: np.ndarray, low: np.ndarray, high: np.ndarray, use_recorded: bool
) -> tuple[np.ndarray, str]:
    """Where the TCP starts (3,) m, and the start kind: the recorded ``start`` (recorded_ee) when
    ``use_recorded`` and ``start + relative`` (T, 3) lies inside ``[low, high]``; else per axis the
    position closest to :data:`REPLAY_START` that keeps it inside (centred where it cannot fit)
    (workspace_fit)."""
    lo, hi = relative.min(axis=0), relative.max(axis=0)
    if use_recorded and np.all(start + lo >= low) and np.all(start + hi <= high):
        return start, "recorded_ee"
    first, last = low - lo, high - hi  # the feasible start positions, per axis
    centred = (low + high) / 2 - (lo + hi) / 2
    fitted = np.where(first <= last, np.clip(REPLAY_START, first, np.maximum(first, last)), centred)
    return fitted, "workspace_fit"


def _joints_reaching(backend: Any, scene: Any, target: np.ndarray) -> np.ndarray:
    """Joint positions (7,) rad that hold the TCP at ``target`` (3,) m, pointing down as in the home
    pose: the arm driven there from home by the controller (the clips this costs are not counted:
    the caller resets the scene afterwards)."""
    backend.reset(scene)
    limit = backend.config.controller.max_position_delta
    for _ in range(_MOVE_STEPS):
        error = target - backend.proprio()[:3]
        if np.linalg.norm(error) < 2e-4:
            break
        backend.step(np.r_[np.clip(error, -limit, limit), 0.0, 0.0, 0.0, scene.robot.gripper])
    return np.asarray(backend.privileged_state().joint_positions, dtype=np.float64)


def _outside(positions: np.ndarray, low: np.ndarray, high: np.ndarray) -> tuple[int, dict[str, int]]:
    """Steps of ``positions`` (T, 3) m outside ``[low, high]`` (beyond :data:`WORKSPACE_TOLERANCE_M`),
    and the count per ``<axis>_low`` / ``<axis>_high`` side."""
    below = positions < low - WORKSPACE_TOLERANCE_M
    above = positions > high + WORKSPACE_TOLERANCE_M
    sides = {}
    for i, axis in enumerate(AXES):
        for name, mask in (("low", below[:, i]), ("high", above[:, i])):
            if mask.any():
                sides[f"{axis}_{name}"] = int(mask.sum())
    return int((below | above).any(axis=1).sum()), sides


def replay_episode(backend: Any, scene: Any, episode: Episode, foreign_start: str = "workspace_fit") -> EpisodeReplay:
    """Replay one episode's actions in ``backend`` (already at the episode's control rate) from
    the start described in the module docstring (``foreign_start``: ``workspace_fit`` or
    ``recorded_ee``, for another robot's episode); compare the EE trajectory with the recorded one.

    Needs finite (T, 7) end-effector delta actions and finite recorded EE positions; action t is
    executed after observing step t, so the sim's state after action t is compared with the
    recorded state t + 1 (T states from T - 1 actions)."""
    from sim2real.sim.robots import ROBOTS

    robot = ROBOTS.get(scene.robot.name)
    controller = backend.config.controller
    low, high = np.asarray(controller.workspace_low), np.asarray(controller.workspace_high)
    pos = _state(episode, "ee_pos")
    rpy = _state(episode, "ee_rpy")
    assert pos is not None and rpy is not None
    rpy = rpy if np.isfinite(rpy).all() else None
    grip = _state(episode, "gripper")
    gripper = float(np.clip(grip[0, 0], 0.0, 1.0)) if grip is not None and np.isfinite(grip[0, 0]) else 1.0

    ours = _same_robot(episode.metadata.robot, robot.name)
    joints, note = _joint_start(episode, robot) if ours else (None, None)
    start = None
    if joints is not None:
        backend.reset(_with_start(scene, joints, gripper))
        sim_state = backend.proprio().astype(np.float64)
        position_gap = float(np.linalg.norm(sim_state[:3] - pos[0]))
        angle_gap = 0.0
        if rpy is not None:
            angle_gap = float(trajectory_errors(sim_state[None, :3], sim_state[None, 3:6], pos[:1], rpy[:1])
                              .orientation_error[0])  # type: ignore[index]  # fmt: skip
        if position_gap <= JOINT_START_TOLERANCE_M and angle_gap <= JOINT_START_TOLERANCE_RAD:
            start, frame = "recorded_joints", "absolute"
        else:
            note = (f"the recorded joint positions put the sim TCP {position_gap * 1000:.1f} mm and {angle_gap:.3f} "
                    f"rad from the recorded EE pose (another joint convention, TCP or base frame)")  # fmt: skip
    if start is None:
        frame = "relative_to_start"
        recorded = ours or foreign_start == "recorded_ee"
        target, start = _placement(pos[0], pos - pos[0], low, high, use_recorded=recorded)
        backend.reset(_with_start(scene, _joints_reaching(backend, scene, target), gripper))

    sim = [backend.proprio().astype(np.float64)]
    for action in episode.steps.action[:-1]:
        backend.step(action)
        sim.append(backend.proprio().astype(np.float64))
    sim_states = np.stack(sim)
    sim_pos, sim_rpy = sim_states[:, :3], sim_states[:, 3:6] if rpy is not None else None
    if frame == "absolute":
        errors = trajectory_errors(sim_pos, sim_rpy, pos, rpy)
        placed = pos
    else:
        rel_sim, rel_sim_rpy = relative_to_start(sim_pos, sim_rpy)
        rel_true, rel_true_rpy = relative_to_start(pos, rpy)
        errors = trajectory_errors(rel_sim, rel_sim_rpy, rel_true, rel_true_rpy)
        placed = rel_true + sim_pos[0]
    steps_outside, sides = _outside(placed, low, high)
    clips = {reason: 0 for reason in REPORTED_CLIPS}
    clips.update({k: int(v) for k, v in backend.clip_counts.items()})
    return EpisodeReplay(
        episode_id=episode.metadata.episode_id, start=start, start_note=note, frame=frame,
        control_hz=float(backend.config.control_hz), physics_hz=float(backend.config.physics_hz), errors=errors,
        clips=dict(sorted(clips.items())), steps=len(pos), steps_outside=steps_outside, outside=sides,
        start_offset_m=tuple(float(v) for v in pos[0] - sim_pos[0]),  # type: ignore[arg-type]
    )  # fmt: skip


def _dynamics_reason(episode: Episode) -> str | None:
    """Why dynamics replay cannot use ``episode`` (actions that are not 7-D end-effector deltas, no
    recorded EE positions), or ``None``."""
    _, reason = action_space(episode)
    pos = _state(episode, "ee_pos")
    if reason is None and (pos is None or not np.isfinite(pos).all()):
        reason = "the set records no end-effector positions"
    return reason


def dynamics_skips(episodes: Sequence[Episode]) -> dict[str, str]:
    """Episodes dynamics replay cannot use, by episode id, with the reason."""
    return {e.metadata.episode_id: r for e in episodes if (r := _dynamics_reason(e)) is not None}


def dynamics_replay(
    episodes: Sequence[Episode],
    backend: str = "mujoco",
    backend_options: Mapping[str, Any] | None = None,
    foreign_start: str = "workspace_fit",
) -> dict[str, Any] | None:
    """Replay every usable episode (see :func:`dynamics_skips`) at its own control rate from its
    start (module docstring; ``foreign_start``: :data:`FOREIGN_STARTS`); ``None`` when no episode
    is usable (:func:`dynamics_with_skips` also says why).

    Returns the ``replay.dynamics`` block: :func:`aggregate_trajectory_errors` over the replayed
    episodes (m, rad; per-axis dicts over x, y, z), then ``control_hz`` / ``physics_hz`` (rates
    used), ``starts`` (episodes per start kind), ``frames`` (episodes per error frame), ``clips``
    (``total`` by reason, ``episodes_with_clips``), ``workspace`` (``steps``, ``steps_outside``,
    ``fraction_steps_outside``, ``episodes_leaving``, ``fraction_episodes_leaving``,
    ``outside_by_side``), ``episodes`` (:meth:`EpisodeReplay.to_dict` each) and
    ``skipped_episodes`` (episode id -> reason)."""
    return dynamics_with_skips(episodes, backend, backend_options, foreign_start)[0]


def dynamics_with_skips(
    episodes: Sequence[Episode],
    backend: str = "mujoco",
    backend_options: Mapping[str, Any] | None = None,
    foreign_start: str = "workspace_fit",
) -> tuple[dict[str, Any] | None, dict[str, str]]:
    """:func:`dynamics_replay`'s block, and the episodes it left out by id with the reason."""
    from sim2real.sim.backend import BackendConfig, make_backend

    if foreign_start not in FOREIGN_STARTS:
        raise ValueError(f"replay.foreign_start={foreign_start!r}: expected one of {', '.join(FOREIGN_STARTS)}")
    skips = dynamics_skips(episodes)
    usable = [e for e in episodes if _dynamics_reason(e) is None]
    if not usable:
        return None, skips
    scene = _replay_scene()
    backends: dict[float, Any] = {}  # control rate (Hz) -> backend, or why that rate cannot be replayed
    replays: list[EpisodeReplay] = []
    try:
        for episode in usable:
            hz = float(episode.metadata.control_hz)
            if hz not in backends:
                config = BackendConfig(control_hz=hz, options=dict(backend_options or {}))
                config = replace(config, physics_hz=replay_physics_hz(hz, config.controller.interpolation_segments))
                try:
                    config.physics_steps_per_control_step()
                except ValueError as error:  # a rate the physics cannot divide into whole steps
                    backends[hz] = f"control rate {hz:g} Hz cannot be simulated: {error}"
                else:
                    backends[hz] = make_backend(backend, config)
            if isinstance(backends[hz], str):
                skips[episode.metadata.episode_id] = backends[hz]
                continue
            replays.append(replay_episode(backends[hz], scene, episode, foreign_start))
    finally:
        for instance in backends.values():
            if not isinstance(instance, str):
                instance.close()
    if not replays:
        return None, skips
    total: Counter[str] = Counter()
    for item in replays:
        total.update(item.clips)
    steps = sum(r.steps for r in replays)
    outside = sum(r.steps_outside for r in replays)
    leaving = sum(1 for r in replays if r.steps_outside)
    sides: Counter[str] = Counter()
    for item in replays:
        sides.update(item.outside)
    block = {
        **aggregate_trajectory_errors([r.errors for r in replays]),
        "control_hz": sorted({r.control_hz for r in replays}),
        "physics_hz": sorted({r.physics_hz for r in replays}),
        "starts": dict(sorted(Counter(r.start for r in replays).items())),
        "frames": dict(sorted(Counter(r.frame for r in replays).items())),
        "clips": {
            "total": {k: int(total[k]) for k in sorted(total)},
            "episodes_with_clips": sum(1 for r in replays if any(r.clips.values())),
        },
        "workspace": {
            "steps": steps,
            "steps_outside": outside,
            "fraction_steps_outside": outside / steps,
            "episodes_leaving": leaving,
            "fraction_episodes_leaving": leaving / len(replays),
            "outside_by_side": dict(sorted(sides.items())),
        },
        "episodes": [r.to_dict() for r in replays],
        "skipped_episodes": skips,
    }
    return block, skips


# ---------------------------------------------------------------------------------------------
# The replay block
# ---------------------------------------------------------------------------------------------


def replay_metrics(
    policy: Any | None,
    replay: ReplaySet,
    sim_episodes: Sequence[Episode] | None,
    backend: str = "mujoco",
    backend_options: Mapping[str, Any] | None = None,
    foreign_start: str = "workspace_fit",
) -> tuple[dict[str, Any], dict[str, tuple[np.ndarray, np.ndarray]]]:
    """The ``replay`` block of metrics.json, and encoder features per camera for the embedding plot.

    ``policy``: a trained policy (open loop, encoder features) or ``None``; ``sim_episodes``:
    held-out sim episodes for the sim side of open loop, visual gap and image statistics, or
    ``None``; ``foreign_start``: see :func:`dynamics_replay`. Every metric that cannot be measured
    is ``None`` (a camera: ``None`` in ``visual_gap``) with its reason in ``skipped`` (key: the
    metric, or ``visual_gap.<camera>``); ``notes`` lists what was measured differently from the
    plain definition."""
    episodes = replay.episodes
    skipped: dict[str, str] = {}
    notes: list[str] = []
    ee = [e for e in episodes if action_space(e)[1] is None]
    action_skips = {e.metadata.episode_id: r for e in episodes if (r := action_space(e)[1]) is not None}
    if action_skips and not ee:
        skipped["open_loop"] = skipped["dynamics"] = _joined(action_skips)
    elif action_skips:
        notes.append(f"{len(episodes) - len(ee)} of {len(episodes)} episodes left out of open loop and dynamics: "
                     f"{_joined(action_skips)}")  # fmt: skip

    open_loop_block = None
    gap: dict[str, float | None] | None = None
    embedding: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    if policy is None:
        why = "the evaluated policy is not a trained checkpoint (no predictions on recorded frames, no encoder)"
        skipped.setdefault("open_loop", why)
        skipped["visual_gap"] = why
    else:
        sim = list(sim_episodes or [])
        if ee:
            real = open_loop(policy, ee)
            sim_block = open_loop(policy, sim) if sim else None
            open_loop_block = {"real": real, "sim": sim_block,
                               "gap": open_loop_gap(real, sim_block) if sim_block else None}  # fmt: skip
            for i, camera in enumerate(policy.config.cameras):
                fed = sorted({_input_camera(e, camera, i) for e in ee})
                if fed != [camera]:
                    sources = " / ".join(repr(c) for c in fed)
                    notes.append(f"open loop: the policy's {camera!r} input was fed the set's {sources} frames "
                                 f"(the set has no {camera!r} camera)")  # fmt: skip
        gap, embedding = visual_gap(policy, episodes, sim) if sim else ({}, {})
        if not sim:
            skipped["visual_gap"] = "no simulated episodes to compare with"
            gap = None
        elif not gap:
            skipped["visual_gap"] = "the policy type has no per-camera encoder features"
            gap = None
        else:
            real_missing = missing_cameras(list(gap), episodes)
            sim_missing = missing_cameras(list(gap), sim)
            for camera in (c for c, value in gap.items() if value is None):
                reason = real_missing.get(camera) or sim_missing[camera].replace("the replay set", "the sim episodes")
                skipped[f"visual_gap.{camera}"] = reason
    stats = None
    if sim_episodes:
        stats, reasons = image_stats(episodes, sim_episodes)
        skipped.update({f"image_stats.{camera}": reason for camera, reason in reasons.items()})
    else:
        skipped["image_stats"] = "no simulated episodes to compare with"

    dynamics = None
    if "dynamics" not in skipped:
        dynamics, left_out = dynamics_with_skips(episodes, backend, backend_options, foreign_start)
        if dynamics is None:
            skipped["dynamics"] = _joined(left_out)
    return {
        "path": replay.path,
        "episodes": len(episodes),
        "embodiment": embodiment(episodes),
        "open_loop": open_loop_block,
        "visual_gap": gap,
        "image_stats": stats,
        "dynamics": dynamics,
        "skipped": skipped,
        "notes": notes,
    }, embedding
