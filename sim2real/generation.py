"""Batch generation: sharded, parallel, resumable, deterministic.

Episode ``i`` of a run with base seed ``s`` is drawn from seeds derived from ``(s, i, attempt)``
alone, so it is byte-identical whatever the number of workers, the shard size or a resume (on a
backend whose images are bit-exact, ``bit_exact_images``; on Isaac Sim the SceneSpec, physics,
actions, states and labels are the same, the RTX images are not, and the manifest's per-episode
``hash`` covers the low-dimensional data only: ``hash_covers``, see :func:`episode_hash`).
Shard ``k`` holds episodes ``[k * shard_size, (k + 1) * shard_size)``; a worker writes each
format's shard under a temporary name and renames it when complete, then the parent records
it in ``manifest.json`` (written atomically). A rerun skips recorded shards and deletes
leftovers of interrupted ones. ``build_index`` writes the dataset-wide views: RLDS's
``dataset_info.json`` / ``features.json``, ``index.json`` for the Zarr, HDF5 and LeRobot shards, and
(once every shard is written) the LeRobot shards merged into one LeRobot dataset at ``lerobot/``
(:mod:`sim2real.datasets.lerobot_merge`), which ``lerobot``'s ``LeRobotDataset`` opens.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import math
import multiprocessing as mp
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import sim2real
from sim2real.datasets.claims import ShardClaim, claim_path, current_holder
from sim2real.datasets.integrity import (
    MANIFEST,
    SHARD_RECORDS_DIR,
    checksum,  # noqa: F401 - part of this module's API
    checksums,
    remove_path,
    require_intact,
)
from sim2real.datasets.registry import DATASET_WRITERS, load_builtin_formats
from sim2real.datasets.schema import content_hash
from sim2real.errors import STORAGE_ERRNOS, StorageError, UsageError, storage_error
from sim2real.randomizers import RandomizationConfig, config_from_dict, sample_scene
from sim2real.randomizers.splits import check_split
from sim2real.sim.tasks import TASKS

RLDS_NAME, RLDS_VERSION = "sim2real_dataset", "1.0.0"
FORMATS = ("zarr", "rlds", "hdf5", "lerobot")


class GenerationError(UsageError, ValueError):
    """A generation request that cannot run (bad option, inconsistent resume)."""


@dataclass(frozen=True)
class GenerationConfig:
    """What ``generate.py`` takes. ``task`` is a task name or ``all`` (every registered task,
    round-robin by episode index); ``shard_range`` = [first, stop) shard indices for one job
    of a multi-node run (None = all shards)."""

    task: str = "pick_place"
    split: str = "train"
    num_episodes: int = 200
    seed: int = 0
    formats: tuple[str, ...] = ("zarr", "rlds", "hdf5")
    output_dir: str = "data/pick_place"
    workers: int = 1
    shard_size: int = 50
    backend: str = "mujoco"
    backend_options: dict[str, Any] = field(default_factory=dict)  # the backend's own settings (its options class)
    shard_range: tuple[int, int] | None = None
    max_attempts: int = 3
    expert_noise: float = 0.0
    expert_noise_rate: float = 1.0
    cameras: tuple[str, ...] = ("front", "wrist")
    image_size: int = 128
    control_hz: float = 10.0
    physics_hz: float = 500.0
    shadows: bool = False
    build_index: bool = True
    progress: bool = True
    randomization: dict[str, Any] = field(default_factory=lambda: {"name": "none"})
    codecs: dict[str, dict[str, Any]] = field(default_factory=dict)  # writer options per format (zarr, hdf5)

    def tasks(self) -> list[str]:
        return TASKS.names() if self.task == "all" else [self.task]

    @property
    def num_shards(self) -> int:
        return max(1, math.ceil(self.num_episodes / self.shard_size))

    def shard_episodes(self, shard: int) -> range:
        return range(shard * self.shard_size, min((shard + 1) * self.shard_size, self.num_episodes))

    def fingerprint(self) -> dict[str, Any]:
        """The options that determine the data: a resume must match them exactly."""
        keep = ("task", "split", "num_episodes", "seed", "formats", "shard_size", "backend", "max_attempts",
                "expert_noise", "expert_noise_rate", "cameras", "image_size", "control_hz", "physics_hz",
                "randomization", "codecs", "backend_options")  # fmt: skip
        data = asdict(self)
        return json.loads(json.dumps({k: data[k] for k in keep}))


#: writer options ``codecs.<format>`` may set (RLDS images are always PNG: TFDS's Image feature)
CODEC_OPTIONS = {
    "zarr": ("cname", "clevel", "image_shuffle", "image_chunk_steps", "lowdim_chunk_steps"),
    "hdf5": ("image_compression", "image_compression_opts", "image_chunk_steps"),
    "lerobot": ("cameras_as", "vcodec", "pix_fmt", "g", "crf", "preset", "threads"),
}
#: LeRobot writer options generation applies unless ``codecs.lerobot`` sets them. One encoder thread per
#: camera, so that a shard's video bytes do not depend on the machine's core count; and, unless
#: ``codecs.lerobot.vcodec`` names a codec, H.264 (x264 ``ultrafast``, CRF 23, a key frame every 2 frames):
#: at 128 px it decodes as close to the frames as LeRobot's default AV1 at CRF 30 (mean error ~3 grey
#: levels) for a quarter of the CPU time (``benchmarks/bench_generation.py``). ``vcodec: libsvtav1``
#: gives LeRobot's own default (the writer's).
LEROBOT_GENERATION_DEFAULTS: dict[str, Any] = {"threads": 1}
LEROBOT_GENERATION_CODEC: dict[str, Any] = {"vcodec": "libx264", "preset": "ultrafast", "crf": 23, "g": 2}


def _check_codecs(codecs: dict[str, dict[str, Any]]) -> None:
    for name, options in codecs.items():
        if name not in CODEC_OPTIONS:
            raise GenerationError(f"codecs.{name}: no writer options for {name!r}; formats with options: "
                                  f"{', '.join(CODEC_OPTIONS)}")  # fmt: skip
        for key in options:
            if key not in CODEC_OPTIONS[name]:
                raise GenerationError(f"codecs.{name}.{key}: unknown option; known: {', '.join(CODEC_OPTIONS[name])}")
    zarr = codecs.get("zarr", {})
    if zarr.get("cname", "lz4") not in ("lz4", "lz4hc", "blosclz", "zstd", "zlib"):
        raise GenerationError(
            f"codecs.zarr.cname: {zarr['cname']!r} is not a Blosc codec (lz4, lz4hc, blosclz, zstd, zlib)"
        )
    if not 0 <= int(zarr.get("clevel", 5)) <= 9:
        raise GenerationError(f"codecs.zarr.clevel: {zarr['clevel']} is outside [0, 9]")
    if codecs.get("hdf5", {}).get("image_compression") not in (None, "lzf", "gzip"):
        raise GenerationError(f"codecs.hdf5.image_compression: {codecs['hdf5']['image_compression']!r}; "
                              "expected null, lzf or gzip")  # fmt: skip
    lerobot = codecs.get("lerobot", {})
    if lerobot.get("cameras_as", "video") not in ("video", "image"):
        raise GenerationError(f"codecs.lerobot.cameras_as: {lerobot['cameras_as']!r}; expected video or image")
    if "vcodec" in lerobot:
        from sim2real.datasets.lerobot_video import check_encoder

        try:
            check_encoder(str(lerobot["vcodec"]))
        except ValueError as error:
            raise GenerationError(f"codecs.lerobot.vcodec: {error}") from None


def validate(config: GenerationConfig) -> RandomizationConfig:
    """Check every option before any episode runs; return the parsed randomization."""
    if config.task != "all":
        TASKS.get(config.task)
    check_split(config.split)
    from sim2real.sim.backend import BACKENDS, parse_backend_options

    BACKENDS.get(config.backend)
    parse_backend_options(config.backend, config.backend_options)  # unknown key / bad value: backend_options.<key>
    if config.backend == "isaac":
        from sim2real.sim.isaac.app import require_isaacsim

        require_isaacsim()  # fails at once, with the install steps
    load_builtin_formats()
    for name in config.formats:
        DATASET_WRITERS.get(name)
    _check_codecs(config.codecs)
    for key in ("num_episodes", "workers", "shard_size", "max_attempts", "image_size"):
        if getattr(config, key) < 1:
            raise GenerationError(f"{key}={getattr(config, key)}: expected an integer >= 1")
    if config.expert_noise < 0:
        raise GenerationError(f"expert_noise={config.expert_noise}: expected a standard deviation >= 0 (m)")
    if not 0.0 <= config.expert_noise_rate <= 1.0:
        raise GenerationError(
            f"expert_noise_rate={config.expert_noise_rate}: expected a probability per step in [0, 1]"
        )
    if config.shard_range is not None:
        first, stop = config.shard_range
        if not 0 <= first < stop <= config.num_shards:
            raise GenerationError(
                f"shard_range={list(config.shard_range)}: expected [first, stop) with 0 <= first < stop <= "
                f"{config.num_shards} (the number of shards)"
            )
    if config.image_size != 128:
        raise GenerationError(f"image_size={config.image_size}: expected 128 (cameras render at 128x128)")
    return config_from_dict(dict(config.randomization), name=str(config.randomization.get("name", "custom")))


# ------------------------------------------------------------------------------ worker side
@dataclass(frozen=True)
class ShardJob:
    config: GenerationConfig
    shard: int


def _shard_paths(root: Path, shard: int, num_shards: int, split: str) -> dict[str, Path]:
    rlds_dir = root / "rlds" / RLDS_NAME / RLDS_VERSION
    return {
        "zarr": root / "zarr" / f"shard-{shard:05d}.zarr",
        "hdf5": root / "hdf5" / f"shard-{shard:05d}.hdf5",
        "lerobot": root / "lerobot" / f"shard-{shard:05d}",
        "rlds": rlds_dir / f"{RLDS_NAME}-{split}.tfrecord-{shard:05d}-of-{num_shards:05d}",
    }


def _temp(path: Path) -> Path:
    return path.with_name(f".{path.name}.incomplete")


class _ShardWriters:
    """One writer per format, each writing to its temporary name."""

    def __init__(self, config: GenerationConfig, paths: dict[str, Path]) -> None:
        from sim2real.datasets.rlds_format import episode_to_example
        from sim2real.datasets.tfrecord_io import TFRecordWriter

        load_builtin_formats()  # a spawned worker has imported none of them yet
        self._encode = episode_to_example
        self.paths = paths
        self.writers: dict[str, Any] = {}
        self.rlds: Any = None
        self.seconds_by_format: dict[str, float] = {}  # opening, encoding, writing and checksumming
        for name in config.formats:
            start = time.perf_counter()
            temp = _temp(paths[name])
            temp.parent.mkdir(parents=True, exist_ok=True)
            _remove(temp)
            if name == "rlds":
                self.rlds = TFRecordWriter(temp)
            else:
                self.writers[name] = DATASET_WRITERS.get(name)(temp, **_writer_options(config, name))
            self._count(name, start)

    def write(self, episode: Any) -> None:
        for name, writer in self.writers.items():
            start = time.perf_counter()
            writer.write(episode)
            self._count(name, start)
        if self.rlds is not None:
            start = time.perf_counter()
            self.rlds.write(self._encode(episode))
            self._count("rlds", start)

    @property
    def seconds(self) -> float:
        return sum(self.seconds_by_format.values())

    def _count(self, name: str, start: float) -> None:
        elapsed = time.perf_counter() - start
        self.seconds_by_format[name] = self.seconds_by_format.get(name, 0.0) + elapsed

    def _names(self) -> list[str]:
        return [*self.writers, *(["rlds"] if self.rlds is not None else [])]

    def commit(self) -> dict[str, dict[str, Any]]:
        """Close every writer, rename its output into place, checksum it; return paths and checksums."""
        out = {}
        for name in self._names():
            start = time.perf_counter()
            (self.rlds if name == "rlds" else self.writers[name]).close()
            final = self.paths[name]
            _remove(final)
            os.replace(_temp(final), final)
            whole, per_file, size = checksums(final)
            out[name] = {"path": str(final), "crc32c": whole, "bytes": size}
            if final.is_dir():
                out[name]["files_crc32c"] = per_file
            self._count(name, start)
        return out

    def abort(self) -> None:
        """Close every writer, ignoring its errors, and delete every temporary and half-renamed output."""
        for name in self._names():
            with contextlib.suppress(Exception):  # the output is deleted next; the first error is what counts
                (self.rlds if name == "rlds" else self.writers[name]).close()
        for name in self.paths:
            _remove(_temp(self.paths[name]))


def _writer_options(config: GenerationConfig, name: str) -> dict[str, Any]:
    """The options of format ``name``'s shard writer: ``codecs.<name>`` over the generation defaults."""
    options = dict(config.codecs.get(name, {}))
    if name != "lerobot":
        return options
    codec = LEROBOT_GENERATION_CODEC if "vcodec" not in options else {}
    return {**LEROBOT_GENERATION_DEFAULTS, **codec, **options}


def _remove(path: Path) -> None:
    remove_path(path)


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
    from dataclasses import replace

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
        if _shard_record_path(root, job.shard).exists():  # written by the previous holder
            return json.loads(_shard_record_path(root, job.shard).read_text())
        return _write_shard(config, root, job.shard, progress)
    finally:
        claim.release()


def _write_shard(config: GenerationConfig, root: Path, shard: int, progress: Any) -> dict[str, Any]:
    paths = _shard_paths(root, shard, config.num_shards, config.split)
    start = time.perf_counter()
    writers: _ShardWriters | None = None
    try:
        writers = _ShardWriters(config, paths)
        record = _episode_records(config, shard, writers, progress)
        record["files"] = writers.commit()
        record["write_seconds"] = writers.seconds
        record["write_seconds_by_format"] = writers.seconds_by_format
        record["seconds"] = time.perf_counter() - start
        write_json_atomic(_shard_record_path(root, shard), record)
    except BaseException as error:
        if writers is not None:
            writers.abort()
        for name in paths:  # a shard without its record is not a shard: the claim holder cleans it
            _remove(paths[name])
        if _is_storage_failure(error):
            close_process_backends()
            raise _storage_failure(error, root, shard) from None
        _PROCESS_BACKENDS.pop(_backend_key(config.backend, _backend_config(config)), None)
        raise
    return record


# ------------------------------------------------------------------------------ run state
RUN_FILE = "run.json"


def _shard_record_path(root: Path, shard: int) -> Path:
    return root / SHARD_RECORDS_DIR / f"shard-{shard:05d}.json"


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` to ``path`` through a temporary file private to this process, then rename."""
    write_text_atomic(path, json.dumps(data, indent=1, sort_keys=True) + "\n")


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file private to this process, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        temp.write_text(text)
        os.replace(temp, path)
    except OSError as error:
        temp.unlink(missing_ok=True)
        converted = storage_error(error, path)
        if converted is not None:
            raise converted from None
        raise


@dataclass(frozen=True)
class RunState:
    """What a run folder holds: the options it was started with and its recorded shards."""

    root: Path
    config: dict[str, Any]
    generator_version: str

    @property
    def num_shards(self) -> int:
        return max(1, math.ceil(self.config["num_episodes"] / self.config["shard_size"]))

    def locate(self, shard: int) -> dict[str, Path]:
        """Each format's path of shard ``shard``."""
        return _shard_paths(self.root, shard, self.num_shards, self.config["split"])

    def records(self) -> list[dict[str, Any]]:
        """Every recorded shard, by shard number: ``shards/*.json`` and older runs' manifests."""
        merged: dict[int, dict[str, Any]] = {}
        for part in _legacy_manifests(self.root):
            for record in json.loads(part.read_text()).get("shards", {}).values():
                merged[int(record["shard"])] = record
        folder = self.root / SHARD_RECORDS_DIR
        for path in sorted(folder.glob("shard-*.json")) if folder.is_dir() else []:
            record = json.loads(path.read_text())
            merged[int(record["shard"])] = record
        return [merged[k] for k in sorted(merged)]


def _legacy_manifests(root: Path) -> list[Path]:
    """Manifests that held shard records before ``shards/`` (``manifest.json``, ``manifests/``)."""
    parts = [root / MANIFEST] if (root / MANIFEST).is_file() else []
    return parts + (sorted((root / "manifests").glob("manifest-*.json")) if (root / "manifests").is_dir() else [])


def load_run(root: Path) -> RunState:
    """The run recorded in ``root``; GenerationError when the folder holds none."""
    for source in [root / RUN_FILE, *_legacy_manifests(root)]:
        if source.is_file():
            data = json.loads(source.read_text())
            # an option added since the run was started counts at its default, which keeps what came before
            config = {**GenerationConfig().fingerprint(), **data["config"]}
            return RunState(root, config, data.get("generator_version", "?"))
    raise GenerationError(f"{root}: no {RUN_FILE} or {MANIFEST}: not a folder written by generate.py")


def _claim_run(root: Path, config: GenerationConfig) -> RunState:
    """Record the run's options in ``run.json`` before any episode, or check them against it."""
    wanted = {"config": config.fingerprint(), "generator_version": sim2real.__version__}
    if not (root / RUN_FILE).exists() and not _legacy_manifests(root):
        temp = root / f".{RUN_FILE}.tmp-{os.getpid()}"
        temp.write_text(json.dumps(wanted, indent=1, sort_keys=True) + "\n")
        try:
            os.link(temp, root / RUN_FILE)  # atomic create-if-absent: the first of two runs wins
        except FileExistsError:
            pass
        finally:
            temp.unlink(missing_ok=True)
    run = load_run(root)
    new = config.fingerprint()
    changed = sorted(k for k in set(run.config) | set(new) if run.config.get(k) != new.get(k))
    if changed:
        detail = "; ".join(f"{k}: {run.config.get(k)!r} -> {new.get(k)!r}" for k in changed)
        raise GenerationError(
            f"output_dir={root}: holds a run started with other options ({detail}); "
            "use another output_dir, or the same options to resume it"
        )
    return run


def _clean_leftovers(root: Path, run: RunState) -> int:
    """Delete temporary shard files that no live process is writing; return how many."""
    removed = 0
    for folder in {p.parent for p in run.locate(0).values()}:
        for temp in sorted(folder.glob(".*.incomplete")) if folder.is_dir() else []:
            shard = _shard_of_temp(temp.name)
            claim = ShardClaim(root, shard) if shard is not None else None
            if claim is not None and not claim.acquire():
                continue  # its writer is alive
            try:
                _remove(temp)
                removed += 1
            finally:
                if claim is not None:
                    claim.release()
    folders = {root, root / SHARD_RECORDS_DIR, *(p.parent for p in run.locate(0).values())}
    for temp in sorted(t for folder in folders if folder.is_dir() for t in folder.glob(".*.tmp-*")):
        pid = temp.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not _pid_alive(int(pid)):
            _remove(temp)
            removed += 1
    return removed


def _shard_of_temp(name: str) -> int | None:
    """The shard number in a temporary shard file name (``.shard-00003.zarr.incomplete``,
    ``.sim2real_dataset-train.tfrecord-00003-of-00008.incomplete``)."""
    import re

    found = re.search(r"shard-(\d+)\.|tfrecord-(\d+)-of-", name)
    return int(found.group(1) or found.group(2)) if found else None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_shard(root: Path, run: RunState, shard: int) -> None:
    """Forget shard ``shard``: delete its files and its record, so that the same generate command rewrites it."""
    with ShardClaim(root, shard) as claim:
        if not claim.held:
            holder = claim.holder()
            raise GenerationError(f"shard {shard} of {root} is being written by {holder.describe() if holder else '?'}")
        for path in run.locate(shard).values():
            _remove(path)
        _shard_record_path(root, shard).unlink(missing_ok=True)
        for part in _legacy_manifests(root):
            data = json.loads(part.read_text())
            if str(shard) in data.get("shards", {}):
                del data["shards"][str(shard)]
                if "complete" in data:
                    data["complete"] = False
                write_json_atomic(part, data)


def _verify_recorded(run: RunState, shards: range) -> list[dict[str, Any]]:
    """Check the recorded shards in ``shards`` against their checksums; return their records."""
    records = [r for r in run.records() if int(r["shard"]) in shards]
    for record in records:
        require_intact(run.root, record, run.locate)
    return records


# ------------------------------------------------------------------------------ parent side
def _prepare_output_dir(root: Path) -> None:
    from sim2real.entrypoint import check_writable_folder

    check_writable_folder("output_dir", root)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        converted = storage_error(error, root)
        if converted is None:
            raise
        raise GenerationError(f"output_dir={root}: cannot be created ({converted})") from None


def _progress_bar(total: int, done: int, successes: int, enabled: bool) -> Any:
    from tqdm import tqdm

    bar = tqdm(total=total, initial=done, unit="ep", desc="generate", disable=not enabled, dynamic_ncols=True)
    bar.successes = successes  # counted on from the recorded shards' successes
    bar.set_postfix(successes=successes)
    return bar


def _log(message: str) -> None:
    import sys

    print(message, file=sys.stderr, flush=True)


def generate(config: GenerationConfig) -> dict[str, Any]:
    """Run (or resume) a generation job; return the manifest of its shards.

    Any number of processes may run the same command into one folder at once (on one machine or
    on a shared file system): each shard is written by the one process that claims it, the others
    take the unclaimed shards and then wait for the claimed ones (taking over any whose holder
    dies). Shards recorded before are verified against their checksums and skipped."""
    validate(config)
    root = Path(config.output_dir)
    _prepare_output_dir(root)
    run = _claim_run(root, config)
    removed = _clean_leftovers(root, run)
    if removed:
        _log(f"removed {removed} temporary file(s) left by interrupted runs in {root}")
    first, stop = config.shard_range or (0, config.num_shards)
    wanted = range(first, stop)
    records = {int(r["shard"]): r for r in _verify_recorded(run, wanted)}
    done_eps = sum(len(r["episodes"]) for r in records.values())
    total = sum(len(config.shard_episodes(k)) for k in wanted)
    bar = _progress_bar(total, done_eps, sum(r["successes"] for r in records.values()), config.progress)
    try:
        _run_until_recorded(config, root, wanted, records, bar)
    finally:
        bar.close()
    manifest = {"config": run.config, "generator_version": run.generator_version,
                "shards": {str(k): records[k] for k in sorted(records)}}  # fmt: skip
    if config.build_index and config.shard_range is None:
        return build_index(root)
    return manifest


def _run_until_recorded(
    config: GenerationConfig, root: Path, wanted: range, records: dict[int, dict[str, Any]], bar: Any
) -> None:
    """Write every shard of ``wanted`` that has no record; wait for those other processes hold."""
    announced: set[int] = set()
    while True:
        pending = [k for k in wanted if k not in records and not _shard_record_path(root, k).exists()]
        for k in [k for k in wanted if k not in records and _shard_record_path(root, k).exists()]:
            records[k] = json.loads(_shard_record_path(root, k).read_text())  # written by another process
            bar.successes = getattr(bar, "successes", 0) + records[k]["successes"]
            bar.set_postfix(successes=bar.successes, refresh=False)
            bar.update(len(records[k]["episodes"]))
        if not pending:
            return
        free = [k for k in pending if current_holder(claim_path(root, k)) is None]
        busy = []
        for result in _run_shards(config, free, bar) if free else []:
            if "claimed_by" in result:
                busy.append(result["shard"])
            else:
                records[int(result["shard"])] = result
        if free and not busy:
            continue
        for shard in sorted(set(pending) - set(free) | set(busy)):
            holder = current_holder(claim_path(root, shard))
            if shard not in announced and holder is not None:
                announced.add(shard)
                _log(f"shard {shard} is being written by {holder.describe()}: waiting for it")
        time.sleep(0.5)


def _run_shards(config: GenerationConfig, shards: list[int], bar: Any) -> Iterator[dict[str, Any]]:
    successes = [getattr(bar, "successes", 0)]

    def tick(message: tuple[int, int]) -> None:
        bar.update(message[0])
        successes[0] += message[1]
        bar.successes = successes[0]
        bar.set_postfix(successes=successes[0])

    if config.workers == 1 or len(shards) <= 1:
        queue = _InlineQueue(tick)
        try:
            for shard in shards:
                yield run_shard(ShardJob(config, shard), queue)
        finally:
            close_process_backends()
        return
    context = mp.get_context("spawn")
    with context.Manager() as manager:
        queue = manager.Queue()
        with context.Pool(min(config.workers, len(shards)), initializer=_init_worker) as pool:
            results = [pool.apply_async(run_shard, (ShardJob(config, shard), queue)) for shard in shards]
            remaining = list(results)
            while remaining:
                while not queue.empty():
                    tick(queue.get())
                for result in [r for r in remaining if r.ready()]:
                    remaining.remove(result)
                    yield result.get()
                time.sleep(0.05)
            while not queue.empty():
                tick(queue.get())
            pool.close()  # let the workers exit on their own (closing their simulators) before the
            pool.join()  # context manager's terminate()


def _init_worker() -> None:
    """Pool workers already fill the cores: Mesa's software rasteriser (llvmpipe) renders in the
    calling thread instead of starting a thread per core in every worker (user settings win)."""
    os.environ.setdefault("LP_NUM_THREADS", "0")


class _InlineQueue:
    def __init__(self, callback: Any) -> None:
        self.callback = callback

    def put(self, message: tuple[int, int]) -> None:
        self.callback(message)


def build_index(root: str | Path) -> dict[str, Any]:
    """Merge job manifests into ``manifest.json`` and write the dataset-wide views."""
    from sim2real.datasets.rlds_format import sim2real_features
    from sim2real.datasets.tfds_spec import SplitInfo, dataset_info_json

    root = Path(root)
    run = load_run(root)
    shards = run.records()
    config = run.config
    manifest: dict[str, Any] = {"config": config, "generator_version": run.generator_version,
                                "shards": {str(s["shard"]): s for s in shards}}  # fmt: skip
    num_shards = max(1, math.ceil(config["num_episodes"] / config["shard_size"]))
    complete = len(shards) == num_shards
    manifest.update(
        num_shards=num_shards, complete=complete,
        num_episodes=sum(len(s["episodes"]) for s in shards),
        successes=sum(s["successes"] for s in shards),
        attempts=sum(s["attempts"] for s in shards),
        steps=sum(s["steps"] for s in shards),
    )  # fmt: skip
    manifest["yield"] = manifest["successes"] / max(manifest["attempts"], 1)
    write_json_atomic(root / MANIFEST, manifest)
    for name in ("zarr", "hdf5", "lerobot"):
        if name in config["formats"]:
            entries = [{"shard": s["shard"], "path": Path(s["files"][name]["path"]).name,
                        "first_episode": s["episodes"][0]["index"], "num_episodes": len(s["episodes"])}
                       for s in shards]  # fmt: skip
            write_json_atomic(root / name / "index.json", {"format": name, "complete": complete, "shards": entries})
    if "lerobot" in config["formats"] and complete:
        from sim2real.datasets.lerobot_merge import merge_datasets

        merge_datasets([run.locate(int(s["shard"]))["lerobot"] for s in shards], root / "lerobot")
    if "rlds" in config["formats"] and complete:
        version_dir = root / "rlds" / RLDS_NAME / RLDS_VERSION
        cameras = {c: (128, 128, 3) for c in config["cameras"]}
        write_text_atomic(version_dir / "features.json", json.dumps(sim2real_features(cameras, "png"), indent=4) + "\n")
        lengths = tuple(len(s["episodes"]) for s in shards)
        split = SplitInfo(config["split"], lengths, sum(s["files"]["rlds"]["bytes"] for s in shards))
        description = "Scripted-expert episodes written by sim2real."
        info = dataset_info_json(RLDS_NAME, RLDS_VERSION, {config["split"]: split}, description)
        write_text_atomic(version_dir / "dataset_info.json", json.dumps(info, indent=2) + "\n")
    return manifest


def main(argv: list[str] | None = None) -> None:
    """``sim2real index OUTPUT_DIR``: merge the job manifests of a multi-node run and write the views."""
    import argparse

    parser = argparse.ArgumentParser(prog="sim2real index", description=main.__doc__)
    parser.add_argument("output_dir", type=Path)
    manifest = build_index(parser.parse_args(argv).output_dir)
    state = (
        "complete"
        if manifest["complete"]
        else f"incomplete ({len(manifest['shards'])}/{manifest['num_shards']} shards)"
    )
    print(f"{manifest['num_episodes']} episodes in {len(manifest['shards'])} shards: {state}")
