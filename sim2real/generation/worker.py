"""One shard of a run, written in this process: :func:`run_shard` claims the shard, runs the expert
on each of its episodes, writes every format's shard under a temporary name through its
registered :class:`~sim2real.datasets.registry.ShardFormat`, renames each into place when
complete, checksums it and then writes the shard's record (``shards/shard-<k>.json``)."""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sim2real.datasets.claims import ShardClaim
from sim2real.datasets.integrity import checksums, remove_path, write_json_atomic
from sim2real.datasets.registry import EpisodeWriter, ShardSlot, load_builtin_formats, shard_format
from sim2real.datasets.schema import content_hash
from sim2real.errors import STORAGE_ERRNOS, StorageError
from sim2real.generation.config import GenerationConfig, validate
from sim2real.generation.manifest import shard_paths, shard_record_path, temp_path
from sim2real.randomizers import sample_scene


@dataclass(frozen=True)
class ShardJob:
    config: GenerationConfig
    shard: int


class _ShardWriters:
    """One writer per format, each writing to its temporary name."""

    def __init__(self, config: GenerationConfig, paths: dict[str, Path]) -> None:
        load_builtin_formats()  # a spawned worker has imported none of them yet
        self.paths = paths
        self.writers: dict[str, EpisodeWriter] = {}
        self.seconds_by_format: dict[str, float] = {}  # opening, encoding, writing and checksumming
        for name in config.formats:
            start = time.perf_counter()
            temp = temp_path(paths[name])
            temp.parent.mkdir(parents=True, exist_ok=True)
            remove_path(temp)
            self.writers[name] = shard_format(name).open(temp, config.codecs.get(name, {}))
            self._count(name, start)

    def write(self, episode: Any) -> None:
        for name, writer in self.writers.items():
            start = time.perf_counter()
            writer.write(episode)
            self._count(name, start)

    @property
    def seconds(self) -> float:
        return sum(self.seconds_by_format.values())

    def _count(self, name: str, start: float) -> None:
        elapsed = time.perf_counter() - start
        self.seconds_by_format[name] = self.seconds_by_format.get(name, 0.0) + elapsed

    def commit(self) -> dict[str, dict[str, Any]]:
        """Close every writer, rename its output into place, checksum it; return paths and checksums."""
        out = {}
        for name, writer in self.writers.items():
            start = time.perf_counter()
            writer.close()
            final = self.paths[name]
            remove_path(final)
            os.replace(temp_path(final), final)
            whole, per_file, size = checksums(final)
            out[name] = {"path": str(final), "crc32c": whole, "bytes": size}
            if final.is_dir():
                out[name]["files_crc32c"] = per_file
            self._count(name, start)
        return out

    def abort(self) -> None:
        """Close every writer, ignoring its errors, and delete every temporary and half-renamed output."""
        for writer in self.writers.values():
            with contextlib.suppress(Exception):  # the output is deleted next; the first error is what counts
                writer.close()
        for path in self.paths.values():
            remove_path(temp_path(path))


#: this process's simulators, reused across the shards it runs (a model build and a GL context
#: per shard would otherwise cost every worker a start-up per shard)
_PROCESS_BACKENDS: dict[tuple[str, str], Any] = {}


def _backend_key(name: str, config: Any) -> tuple[str, str]:
    return (name, repr(config))  # BackendConfig holds a dict: not hashable itself


def _process_backend(name: str, config: Any) -> Any:
    from sim2real.sim.backend import make_backend

    key = _backend_key(name, config)
    if key not in _PROCESS_BACKENDS:
        if not _PROCESS_BACKENDS:
            atexit.register(close_process_backends)
        _PROCESS_BACKENDS[key] = make_backend(name, config)
    return _PROCESS_BACKENDS[key]


def close_process_backends() -> None:
    """Close the simulators this process keeps for its shards."""
    while _PROCESS_BACKENDS:
        _, backend = _PROCESS_BACKENDS.popitem()
        backend.close()


def _episode_records(config: GenerationConfig, shard: int, writers: _ShardWriters, progress: Any) -> dict[str, Any]:
    """Run the expert on every episode of ``shard`` and write each one; return the shard record."""
    from sim2real.contracts.seeds import derived_seed
    from sim2real.envs import Sim2RealEnv
    from sim2real.rollout import record_expert_episode

    randomization = validate(config)
    backend = _process_backend(config.backend, _backend_config(config))  # one simulator per worker
    hash_images = bool(getattr(backend, "bit_exact_images", True))
    tasks = config.tasks()
    envs: dict[str, Sim2RealEnv] = {}
    record: dict[str, Any] = {"shard": shard, "episodes": [], "successes": 0, "attempts": 0, "steps": 0}
    for index in config.shard_episodes(shard):
        task = tasks[index % len(tasks)]
        if task not in envs:
            envs[task] = Sim2RealEnv(task, backend, cameras=config.cameras)
        result = None
        for attempt in range(config.max_attempts):
            scene = sample_scene(task, derived_seed(config.seed, index, attempt), randomization, config.split)
            result = record_expert_episode(envs[task], scene, derived_seed(config.seed, index, attempt, 1),
                                           config.expert_noise, index, attempt + 1,
                                           config.expert_noise_rate)  # fmt: skip
            if result.success:
                break
        assert result is not None
        writers.write(result.episode)
        record["episodes"].append({"index": index, "task": task, "success": result.success,
                                   "attempts": attempt + 1, "steps": result.episode.steps.num_steps,
                                   "hash": episode_hash(result.episode, images=hash_images),
                                   "hash_covers": "all" if hash_images else "low_dim"})  # fmt: skip
        record["successes"] += int(result.success)
        record["attempts"] += attempt + 1
        record["steps"] += result.episode.steps.num_steps
        if progress is not None:
            progress.put((1, int(result.success)))
    return record


def _backend_config(config: GenerationConfig) -> Any:
    from sim2real.sim.backend import BackendConfig

    return BackendConfig(control_hz=config.control_hz, physics_hz=config.physics_hz, shadows=config.shadows,
                         options=dict(config.backend_options))  # fmt: skip


def episode_hash(episode: Any, images: bool = True) -> str:
    """The manifest's per-episode hash: :func:`~sim2real.datasets.schema.content_hash` of the whole
    episode, or (``images=False``, backends whose images are not bit-exact) of its low-dimensional
    data, instruction and metadata only."""
    return content_hash(episode if images else replace(episode, steps=replace(episode.steps, images={})))


def _is_storage_failure(error: BaseException) -> bool:
    """A full or read-only device, also when a library (h5py, zarr) wraps the OSError without its errno."""
    if isinstance(error, OSError) and error.errno in STORAGE_ERRNOS:
        return True
    text = str(error).lower()
    return any(reason in text for reason in ("no space left on device", "read-only file system", "errno = 28"))


def _storage_failure(error: BaseException, root: Path, shard: int) -> StorageError:
    """One line for a full or read-only device: which, the path, and how to go on."""
    text = str(error).lower()
    errno_value = error.errno if isinstance(error, OSError) and error.errno in STORAGE_ERRNOS else None
    if errno_value is None:
        errno_value = 28 if "space" in text or "errno = 28" in text else 30
    reason = STORAGE_ERRNOS[errno_value]
    return StorageError(
        errno_value,
        f"{root}: {reason} while writing shard {shard}; its partial files were removed: "
        "make room (or a writable output_dir) and rerun the same command to resume",
    )


def run_shard(job: ShardJob, progress: Any = None) -> dict[str, Any]:
    """Generate one shard in this process (its own simulator) under an exclusive claim.

    Returns the shard record once its files and record are committed, or ``{"shard": k,
    "claimed_by": ...}`` when another live process holds the shard's claim. On a full or
    read-only disk, the shard's temporary files are removed and :class:`StorageError` names the path."""
    config = job.config
    root = Path(config.output_dir)
    claim = ShardClaim(root, job.shard)
    if not claim.acquire():
        holder = claim.holder()
        return {"shard": job.shard, "claimed_by": holder.describe() if holder else "a process that just finished"}
    try:
        if shard_record_path(root, job.shard).exists():  # written by the previous holder
            return json.loads(shard_record_path(root, job.shard).read_text())
        return _write_shard(config, root, job.shard, progress)
    finally:
        claim.release()


def _write_shard(config: GenerationConfig, root: Path, shard: int, progress: Any) -> dict[str, Any]:
    paths = shard_paths(root, ShardSlot(shard, config.num_shards, config.split), config.formats)
    start = time.perf_counter()
    writers: _ShardWriters | None = None
    try:
        writers = _ShardWriters(config, paths)
        record = _episode_records(config, shard, writers, progress)
        record["files"] = writers.commit()
        record["write_seconds"] = writers.seconds
        record["write_seconds_by_format"] = writers.seconds_by_format
        record["seconds"] = time.perf_counter() - start
        write_json_atomic(shard_record_path(root, shard), record)
    except BaseException as error:
        if writers is not None:
            writers.abort()
        for path in paths.values():  # a shard without its record is not a shard: the claim holder cleans it
            remove_path(path)
        if _is_storage_failure(error):
            close_process_backends()
            raise _storage_failure(error, root, shard) from None
        _PROCESS_BACKENDS.pop(_backend_key(config.backend, _backend_config(config)), None)
        raise
    return record
