"""A torch ``Dataset`` of (observation history, action chunk) samples for policy training.

Sample ``(episode, t)``: frames ``t - To + 1 .. t`` and actions ``t .. t + Ta - 1``. At the
episode start the history is padded by repeating frame 0 (``obs_mask`` False there); past
the episode end the chunk is padded by repeating the last action (``action_mask`` False).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    Dataset,
    RandomSampler,
    Sampler,
    SequentialSampler,
    get_worker_info,
)

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

    def task_balanced_weights(self) -> np.ndarray:
        """Sampling probabilities (N,) float64 that give every task the same share of the samples,
        split evenly over that task's frames (a task of short episodes gets as many as one of long ones)."""
        tasks = np.asarray(self.data.task_index)[self._episode]
        _, inverse, counts = np.unique(tasks, return_inverse=True, return_counts=True)
        weights = 1.0 / (counts[inverse] * len(counts))
        return weights / weights.sum()

    def __getitem__(self, index: int) -> dict[str, Any]:
        batch = self.batch([index])
        sample = {key: value[0] for key, value in batch.items() if key != "images"}
        sample["images"] = {camera: frames[0] for camera, frames in batch["images"].items()}
        sample["episode"], sample["t"] = int(sample["episode"]), int(sample["t"])
        return sample

    def batch(self, indices: Sequence[int]) -> dict[str, Any]:
        """A whole batch at once: what ``default_collate([self[i] for i in indices])`` gives
        (tensors with a leading batch axis ``B``, ``instruction`` a list of B strings). Frames are
        gathered with one indexing call per camera, into shared memory inside a loader worker (as
        ``default_collate`` does) so that the batch reaches the trainer without another copy."""
        index = np.asarray(indices, np.int64)
        step, start, end = self._step[index], self._start[index], self._end[index]
        frames = step[:, None] + np.arange(1 - self.history, 1)  # (B, To)
        obs_mask = frames >= start[:, None]
        frames = np.maximum(frames, start[:, None])
        chunk = step[:, None] + np.arange(self.chunk)  # (B, Ta)
        action_mask = chunk < end[:, None]
        chunk = np.minimum(chunk, end[:, None] - 1)
        data = self.data
        episodes = self._episode[index]
        return {
            "images": {c: _gather(im, frames) for c, im in data.images.items()},
            "state": torch.from_numpy(data.state[frames]),
            "instruction": [data.instructions[int(e)] for e in episodes],
            "actions": torch.from_numpy(data.action[chunk]),
            "action_mask": torch.from_numpy(action_mask),
            "obs_mask": torch.from_numpy(obs_mask),
            "episode": torch.from_numpy(episodes.astype(np.int64)),
            "t": torch.from_numpy((step - start).astype(np.int64)),
        }


class _Batches(Dataset):
    """Item ``indices`` (a list) is ``dataset.batch(indices)``. Inside a loader worker its
    small arrays leave as numpy arrays, copied through the pipe: every tensor a worker returns
    goes through its own shared-memory file and file-descriptor hand-off, which for six small
    arrays costs more than the two camera batches. :class:`BatchLoader` makes them tensors."""

    def __init__(self, dataset: ChunkedEpisodeDataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, indices: Sequence[int]) -> dict[str, Any]:
        batch = self.dataset.batch(indices)
        if get_worker_info() is None:
            return batch
        return {k: v.numpy() if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


class BatchLoader:
    """Batches of a :class:`ChunkedEpisodeDataset` made whole by :meth:`~ChunkedEpisodeDataset.batch`
    (one gather per camera instead of one sample at a time): takes a ``DataLoader``'s
    ``batch_size``/``shuffle``/``drop_last`` or ``batch_sampler``, and its other arguments
    (``num_workers``, ``persistent_workers``, ...). Yields what a ``DataLoader`` with
    ``default_collate`` would."""

    def __init__(
        self,
        dataset: ChunkedEpisodeDataset,
        *,
        batch_size: int = 1,
        shuffle: bool = False,
        drop_last: bool = False,
        batch_sampler: Sampler[list[int]] | None = None,
        **loader_args: Any,
    ) -> None:
        if batch_sampler is None:
            order = RandomSampler(dataset) if shuffle else SequentialSampler(dataset)
            batch_sampler = BatchSampler(order, batch_size, drop_last)
        self.loader = DataLoader(_Batches(dataset), sampler=batch_sampler, batch_size=None, collate_fn=_keep,
                                 **loader_args)  # fmt: skip

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for batch in self.loader:
            yield {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in batch.items()}


def _keep(batch: dict[str, Any]) -> dict[str, Any]:
    return batch


def _gather(frames: np.ndarray, index: np.ndarray) -> torch.Tensor:
    """``frames[index]`` as a uint8 tensor (``index`` (B, To) -> (B, To, H, W, 3)), in shared
    memory when called in a loader worker."""
    shape = (*index.shape, *frames.shape[1:])
    if get_worker_info() is None:
        out = torch.empty(shape, dtype=torch.uint8)
    else:
        storage = torch.UntypedStorage._new_shared(int(np.prod(shape)))
        out = torch.empty(0, dtype=torch.uint8).set_(storage).view(shape)
    np.take(frames, index.reshape(-1), axis=0, out=out.numpy().reshape(-1, *frames.shape[1:]))
    return out


def split_episodes(num_episodes: int, val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Held-out validation episodes (a seeded random subset, at least one when possible)."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(num_episodes)
    count = min(num_episodes - 1, max(1, round(num_episodes * val_fraction))) if num_episodes > 1 else 0
    return sorted(order[count:].tolist()), sorted(order[:count].tolist())
