"""A torch ``Dataset`` of (observation history, action chunk) samples for policy training.

Sample ``(episode, t)``: frames ``t - To + 1 .. t`` and actions ``t .. t + Ta - 1``. At the
episode start the history is padded by repeating frame 0 (``obs_mask`` False there); past
the episode end the chunk is padded by repeating the last action (``action_mask`` False).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from sim2real.datasets.training_cache import TrainingData


class ChunkedEpisodeDataset(Dataset):
    """Items: ``images`` {camera: uint8 (To, H, W, 3)}, ``state`` float32 (To, 14),
    ``instruction`` str, ``actions`` float32 (Ta, 7), ``action_mask`` bool (Ta,),
    ``obs_mask`` bool (To,), ``episode`` int, ``t`` int."""

    def __init__(self, data: TrainingData, episodes: Sequence[int], history: int, chunk: int) -> None:
        if history < 1 or chunk < 1:
            raise ValueError(f"history and chunk must be >= 1, got history={history}, chunk={chunk}")
        self.data, self.history, self.chunk = data, history, chunk
        starts, ends, episode_ids = [], [], []
        for episode in episodes:
            start, end = data.episode_range(int(episode))
            starts.append(np.full(end - start, start))
            ends.append(np.full(end - start, end))
            episode_ids.append(np.full(end - start, int(episode)))
        self._start = np.concatenate(starts) if starts else np.zeros(0, np.int64)
        self._end = np.concatenate(ends) if ends else np.zeros(0, np.int64)
        self._episode = np.concatenate(episode_ids) if episode_ids else np.zeros(0, np.int64)
        self._step = (
            np.concatenate([np.arange(s[0], e[0]) for s, e in zip(starts, ends, strict=True)])
            if starts
            else self._start
        )

    def __len__(self) -> int:
        return len(self._step)

    def __getitem__(self, index: int) -> dict[str, Any]:
        step, start, end = int(self._step[index]), int(self._start[index]), int(self._end[index])
        frames = np.arange(step - self.history + 1, step + 1)
        obs_mask = frames >= start
        frames = np.maximum(frames, start)
        chunk = np.arange(step, step + self.chunk)
        action_mask = chunk < end
        chunk = np.minimum(chunk, end - 1)
        data = self.data
        episode = int(self._episode[index])
        return {
            "images": {c: torch.from_numpy(np.ascontiguousarray(im[frames])) for c, im in data.images.items()},
            "state": torch.from_numpy(data.state[frames]),
            "instruction": data.instructions[episode],
            "actions": torch.from_numpy(data.action[chunk]),
            "action_mask": torch.from_numpy(action_mask),
            "obs_mask": torch.from_numpy(obs_mask),
            "episode": episode,
            "t": step - start,
        }


def split_episodes(num_episodes: int, val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Held-out validation episodes (a seeded random subset, at least one when possible)."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(num_episodes)
    count = min(num_episodes - 1, max(1, round(num_episodes * val_fraction))) if num_episodes > 1 else 0
    return sorted(order[count:].tolist()), sorted(order[:count].tolist())
