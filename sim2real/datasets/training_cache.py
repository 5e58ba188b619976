"""A training view of any dataset: low-dim arrays in memory, images in uncompressed
memory-mapped ``.npy`` files (built once, shared by every loader worker through the page
cache), and normalization statistics computed once and stored beside them.

Cache layout (``<dataset>/.sim2real_cache/`` unless given)::

    lowdim.npz        state (N, 14) float32, action (N, 7) float32, episode_ends (E,) int64,
                      success (E,) bool, task_index (E,) int64
    images_<cam>.npy  uint8 (N, H, W, 3), N = total steps
    meta.json         cameras, instructions (E,), tasks, source fingerprint, schema version
    stats.json        action_p01 / action_p99 (7,), state_mean / state_std (14,)
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sim2real.datasets.integrity import verify_recorded_files
from sim2real.datasets.registry import EpisodeReader, open_dataset
from sim2real.datasets.schema import DatasetError

CACHE_VERSION = 1
CACHE_DIR = ".sim2real_cache"


def _fingerprint(path: Path) -> dict[str, Any]:
    """Changes when the dataset's files change (names, sizes, modification times)."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file() and CACHE_DIR not in p.parts)
    digest = [
        (str(f.relative_to(path) if f != path else f.name), f.stat().st_size, int(f.stat().st_mtime)) for f in files
    ]
    return {"version": CACHE_VERSION, "files": len(digest), "sha256": hashlib.sha256(repr(digest).encode()).hexdigest()}


@dataclass
class TrainingData:
    """Arrays of a whole dataset (see the module table). ``images`` are read-only memmaps."""

    root: Path
    state: np.ndarray
    action: np.ndarray
    episode_ends: np.ndarray
    success: np.ndarray
    instructions: list[str]
    tasks: list[str]
    task_index: np.ndarray
    images: dict[str, np.ndarray]
    stats: dict[str, np.ndarray]

    @property
    def num_episodes(self) -> int:
        return len(self.episode_ends)

    def episode_range(self, episode: int) -> tuple[int, int]:
        start = int(self.episode_ends[episode - 1]) if episode else 0
        return start, int(self.episode_ends[episode])

    def stats_of_first(self, count: int) -> dict[str, np.ndarray]:
        """``stats`` of the first ``count`` episodes only: a run capped at ``count`` episodes
        normalizes as a run on a dataset of that size would."""
        if count >= self.num_episodes:
            return self.stats
        end = int(self.episode_ends[count - 1])
        return compute_stats(self.state[:end], self.action[:end])


def compute_stats(state: np.ndarray, action: np.ndarray) -> dict[str, np.ndarray]:
    """Per-dimension 1st/99th action percentiles and state mean/std (std floored at 1e-6)."""
    finite_state = np.where(np.isfinite(state), state, 0.0)
    return {
        "action_p01": np.percentile(action, 1, axis=0).astype(np.float32),
        "action_p99": np.percentile(action, 99, axis=0).astype(np.float32),
        "state_mean": finite_state.mean(axis=0).astype(np.float32),
        "state_std": np.maximum(finite_state.std(axis=0), 1e-6).astype(np.float32),
    }


def _fresh(cache: Path, source: Path, cameras: tuple[str, ...] | None) -> bool:
    """Whether ``cache`` holds the current files of ``source`` with (at least) ``cameras``."""
    meta_path = cache / "meta.json"
    if not meta_path.exists():
        return False
    meta = json.loads(meta_path.read_text())
    return meta.get("fingerprint") == _fingerprint(source) and not set(cameras or ()) - set(meta["cameras"])


@contextmanager
def _building(cache: Path) -> Iterator[None]:
    """An exclusive lock on ``cache``'s parent folder while one process checks and builds the
    cache: runs that start together (seeds trained side by side) build it once; the others wait,
    then find it fresh. Closing the folder releases the lock, also when the process dies; the
    half-built folders that dead builders left are removed once the lock is held."""
    cache.parent.mkdir(parents=True, exist_ok=True)
    handle = os.open(cache.parent, os.O_RDONLY)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        for stale in cache.parent.glob(f"{cache.name}.incomplete-*"):  # a builder holds the lock: these are dead
            shutil.rmtree(stale, ignore_errors=True)
        yield
    finally:
        os.close(handle)


def build_cache(reader: EpisodeReader, source: Path, cache: Path, cameras: tuple[str, ...] | None) -> None:
    """Decode every episode once into ``cache`` (written to a temporary folder, then renamed)."""
    count = len(reader)  # type: ignore[arg-type]
    if count == 0:
        raise DatasetError(f"{source}: the dataset has no episodes")
    temp = cache.with_name(f"{cache.name}.incomplete-{os.getpid()}")  # private: two runs may build at once
    shutil.rmtree(temp, ignore_errors=True)
    temp.mkdir(parents=True)
    lengths, states, actions, instructions, tasks, success = [], [], [], [], [], []
    for index in range(count):
        episode = reader.episode(index)
        if not episode.steps.language_instruction:
            raise DatasetError(f"{source}: episode {index} has no language instruction; a VLA needs one per episode")
        if episode.steps.action.shape[1:] != (7,):
            raise DatasetError(
                f"{source}: episode {index} has actions of shape {episode.steps.action.shape[1:]}, expected (7,)"
            )
        lengths.append(episode.steps.num_steps)
        states.append(episode.steps.state)
        actions.append(episode.steps.action)
        instructions.append(episode.steps.language_instruction)
        tasks.append(episode.metadata.task)
        success.append(episode.metadata.success)
    total = int(np.sum(lengths))
    first = reader.episode(0)
    cameras = cameras or tuple(sorted(first.steps.images))
    missing = [c for c in cameras if c not in first.steps.images]
    if missing:
        raise DatasetError(f"{source}: no camera {missing}; the dataset has {sorted(first.steps.images)}")
    for camera in cameras:
        shape = (total, *first.steps.images[camera].shape[1:])
        frames = np.lib.format.open_memmap(temp / f"images_{camera}.npy", mode="w+", dtype=np.uint8, shape=shape)
        offset = 0
        for index in range(count):
            images = reader.episode(index).steps.images[camera]
            frames[offset : offset + len(images)] = images
            offset += len(images)
        frames.flush()
        del frames
    state, action = np.concatenate(states), np.concatenate(actions)
    task_names = sorted(set(tasks))
    np.savez(temp / "lowdim.npz", state=state, action=action, episode_ends=np.cumsum(lengths).astype(np.int64),
             success=np.asarray(success, bool), task_index=np.array([task_names.index(t) for t in tasks]))  # fmt: skip
    stats = compute_stats(state, action)
    (temp / "stats.json").write_text(json.dumps({k: v.tolist() for k, v in stats.items()}, indent=1))
    meta = {"cameras": list(cameras), "instructions": instructions, "tasks": task_names,
            "fingerprint": _fingerprint(source), "source": str(source)}  # fmt: skip
    (temp / "meta.json").write_text(json.dumps(meta))
    if _fresh(cache, source, cameras):  # another process finished the same cache first: keep its files
        shutil.rmtree(temp)
        return
    shutil.rmtree(cache, ignore_errors=True)
    os.replace(temp, cache)


def cache_location(source: Path, cache_dir: str | Path | None = None) -> Path:
    """The cache folder of the dataset at ``source``: ``<source>/.sim2real_cache/<name>`` beside the
    data, or ``<cache_dir>/<name>-<hash of its absolute path>`` when a cache root is given (one root
    may hold the caches of many datasets, e.g. when the datasets are on read-only storage)."""
    if cache_dir is None:
        return (source if source.is_dir() else source.parent) / CACHE_DIR / source.name
    digest = hashlib.sha256(str(source.resolve()).encode()).hexdigest()[:12]
    return Path(cache_dir) / f"{source.name}-{digest}"


def load_training_data(
    path: str | Path, cameras: tuple[str, ...] | None = None, cache_dir: str | Path | None = None, **reader_options: Any
) -> TrainingData:
    """Open (building if needed) the training cache of the dataset at ``path`` (any format)."""
    source = Path(path)
    if not source.exists():
        raise DatasetError(f"{source}: no such file or directory")
    cache = cache_location(source, cache_dir)
    meta_path = cache / "meta.json"
    if not _fresh(cache, source, cameras):
        verify_recorded_files(source)  # the bytes a generation run recorded, before anything is written
        with _building(cache):
            if not _fresh(cache, source, cameras):  # not built by a run that held the lock first
                reader = open_dataset(source, **reader_options)
                try:
                    build_cache(reader, source, cache, cameras)
                finally:
                    reader.close()
    meta = json.loads(meta_path.read_text())
    lowdim = np.load(cache / "lowdim.npz")
    stats = {k: np.asarray(v, np.float32) for k, v in json.loads((cache / "stats.json").read_text()).items()}
    use = cameras or tuple(meta["cameras"])
    return TrainingData(
        root=cache, state=lowdim["state"], action=lowdim["action"], episode_ends=lowdim["episode_ends"],
        success=lowdim["success"], instructions=list(meta["instructions"]), tasks=list(meta["tasks"]),
        task_index=lowdim["task_index"],
        images={c: np.load(cache / f"images_{c}.npy", mmap_mode="r") for c in use}, stats=stats,
    )  # fmt: skip
