"""Batch generation: sharded, parallel, resumable, deterministic.

Episode ``i`` of a run with base seed ``s`` is drawn from seeds derived from ``(s, i, attempt)``
alone, so it is byte-identical whatever the number of workers, the shard size or a resume (on a
backend whose images are bit-exact, ``bit_exact_images``; on Isaac Sim the SceneSpec, physics,
actions, states and labels are the same, the RTX images are not, and the manifest's per-episode
``hash`` covers the low-dimensional data only: ``hash_covers``, see :func:`episode_hash`).
Shard ``k`` holds episodes ``[k * shard_size, (k + 1) * shard_size)``; a worker writes each
format's shard under a temporary name and renames it when complete, then the parent records
it in ``manifest.json`` (written atomically). A rerun skips recorded shards and deletes
leftovers of interrupted ones. ``build_index`` writes ``manifest.json`` and runs each format's
finalize hook for the dataset-wide views: RLDS's ``dataset_info.json`` / ``features.json``,
``index.json`` for the Zarr, HDF5 and LeRobot shards, and (once every shard is written) the LeRobot
shards merged into one LeRobot dataset at ``lerobot/`` (:mod:`sim2real.datasets.lerobot_merge`),
which ``lerobot``'s ``LeRobotDataset`` opens. Formats are :class:`~sim2real.datasets.registry.ShardFormat`
registrations: the package names none.

:mod:`.config` holds the options and their checks, :mod:`.worker` the per-shard worker,
:mod:`.manifest` the run folder's records (manifest, index, resume), :mod:`.runner` the parent side.
"""

from sim2real.generation.config import GenerationConfig, GenerationError, validate
from sim2real.generation.manifest import RunState, build_index, load_run, main, remove_shard
from sim2real.generation.runner import generate
from sim2real.generation.worker import episode_hash

__all__ = [
    "GenerationConfig",
    "GenerationError",
    "RunState",
    "build_index",
    "episode_hash",
    "generate",
    "load_run",
    "main",
    "remove_shard",
    "validate",
]
