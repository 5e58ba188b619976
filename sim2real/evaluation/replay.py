"""The real-robot replay set: open-loop action error on real frames (and on held-out sim
episodes, and the gap), the visual gap (Fréchet distance of the policy encoder's features of
real and sim frames, per camera), and dynamics replay (real actions executed in sim from a
matched start pose, EE trajectory compared with the recorded one)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sim2real.datasets import DatasetError, Episode, open_dataset
from sim2real.evaluation.metrics import (
    aggregate_trajectory_errors,
    frechet_distance_from_features,
    open_loop_gap,
    trajectory_errors,
)

#: Where a replayed trajectory starts in the simulator (TCP, m): the middle of the workspace.
REPLAY_START = np.array([0.45, 0.0, 0.15])


@dataclass(frozen=True)
class ReplaySet:
    """Episodes of a replay dataset, mapped onto the canonical schema."""

    path: str
    episodes: list[Episode]
    control_hz: float


def load_replay_set(path: str | Path, mapping: str | None, max_episodes: int) -> ReplaySet:
    """Real episodes from RLDS (through a declarative ``mapping``), Zarr or HDF5; checked
    before any rollout: episodes exist, have 7-D actions and an instruction."""
    options = {"mapping": mapping} if mapping else {}
    try:
        reader = open_dataset(path, **options)
    except TypeError:
        raise DatasetError(f"{path}: replay.mapping={mapping!r} applies to RLDS datasets only") from None
    count = min(len(reader), max_episodes)  # type: ignore[arg-type]
    if count == 0:
        raise DatasetError(f"{path}: the replay set has no episodes")
    episodes = [reader.episode(i) for i in range(count)]
    reader.close()
    for index, episode in enumerate(episodes):
        if episode.steps.action.ndim != 2 or episode.steps.action.shape[1] != 7 or len(episode.steps.action) == 0:
            raise DatasetError(f"{path}: episode {index} has no 7-D actions (shape {episode.steps.action.shape})")
    return ReplaySet(str(path), episodes, float(episodes[0].metadata.control_hz or 10.0))


def _resize(frames: np.ndarray, size: int) -> np.ndarray:
    if frames.shape[1] == size and frames.shape[2] == size:
        return frames
    from PIL import Image

    return np.stack([np.asarray(Image.fromarray(f).resize((size, size), Image.BILINEAR)) for f in frames])


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
    available = sorted(episode.steps.images)
    for i, camera in enumerate(cameras):
        source = camera if camera in episode.steps.images else available[min(i, len(available) - 1)]
        frames = _resize(episode.steps.images[source], config.image_size)
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
    recorded action, over every step of ``episodes``."""
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


def visual_gap(policy: Any, real: Sequence[Episode], sim: Sequence[Episode]) -> tuple[dict[str, float], dict]:
    """Fréchet distance between encoder features (FiLM off) of real and sim frames, per camera
    (empty for a policy type without per-camera features)."""
    import torch

    feats: dict[str, dict[str, list[np.ndarray]]] = {"real": {}, "sim": {}}
    for name, episodes in (("real", real), ("sim", sim)):
        for episode in episodes:
            available = sorted(episode.steps.images)
            images = {}
            for i, camera in enumerate(policy.config.cameras):
                source = camera if camera in episode.steps.images else available[min(i, len(available) - 1)]
                images[camera] = torch.from_numpy(_resize(episode.steps.images[source], policy.config.image_size))
            features = policy.image_features(images)
            if features is None:
                return {}, {}
            for camera, f in features.items():
                feats[name].setdefault(camera, []).append(f.cpu().numpy())
    gap, embedding = {}, {}
    for camera in policy.config.cameras:
        a, b = np.concatenate(feats["real"][camera]), np.concatenate(feats["sim"][camera])
        gap[camera] = frechet_distance_from_features(a, b)
        embedding[camera] = (a, b)
    return gap, embedding


def dynamics_replay(episodes: Sequence[Episode], control_hz: float) -> dict[str, Any] | None:
    """Execute each real action sequence in sim from a start pose matched to the recorded one
    (the recorded start translated to ``REPLAY_START``, gripper pointing down) and compare the
    EE trajectories relative to their start: position (m) and orientation (rad) error per step."""
    from sim2real.randomizers import sample_scene
    from sim2real.sim.backend import BackendConfig, make_backend

    if not all(np.isfinite(e.steps.state[:, :6]).all() for e in episodes):
        return None  # the set records no EE state
    backend = make_backend("mujoco", BackendConfig(control_hz=control_hz, physics_hz=500.0))
    errors = []
    try:
        for episode in episodes:
            scene = sample_scene("pick_place", 0)
            backend.reset(scene)
            _move_to(backend, REPLAY_START)
            sim_pos, sim_rpy = [backend.proprio()[:3].copy()], [backend.proprio()[3:6].copy()]
            for action in episode.steps.action[:-1]:
                backend.step(np.clip(action, [-0.05] * 3 + [-0.3] * 3 + [0.0], [0.05] * 3 + [0.3] * 3 + [1.0]))
                sim_pos.append(backend.proprio()[:3].copy())
                sim_rpy.append(backend.proprio()[3:6].copy())
            real = episode.steps.state
            sim_p = np.array(sim_pos) - sim_pos[0]
            real_p = real[:, :3] - real[0, :3]
            errors.append(trajectory_errors(sim_p, np.array(sim_rpy) - sim_rpy[0], real_p, real[:, 3:6] - real[0, 3:6]))
    finally:
        backend.close()
    return aggregate_trajectory_errors(errors)


def _move_to(backend: Any, target: np.ndarray, steps: int = 30) -> None:
    for _ in range(steps):
        delta = np.clip(target - backend.proprio()[:3], -0.05, 0.05)
        backend.step(np.r_[delta, 0.0, 0.0, 0.0, 1.0])


def replay_metrics(policy: Any, replay: ReplaySet, sim_episodes: Sequence[Episode]) -> tuple[dict[str, Any], dict]:
    """The ``replay`` block of metrics.json, and encoder features for the embedding plot."""
    real = open_loop(policy, replay.episodes)
    sim = open_loop(policy, sim_episodes)
    gap, embedding = visual_gap(policy, replay.episodes, sim_episodes)
    return {
        "path": replay.path,
        "episodes": len(replay.episodes),
        "open_loop": {"real": real, "sim": sim, "gap": open_loop_gap(real, sim)},
        "visual_gap": gap,
        "dynamics": dynamics_replay(replay.episodes, replay.control_hz),
    }, embedding
