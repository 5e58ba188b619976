"""Batch generation: sharded, parallel, resumable, deterministic.

Episode ``i`` of a run with base seed ``s`` is drawn from seeds derived from ``(s, i, attempt)``
alone, so it is byte-identical whatever the number of workers, the shard size or a resume.
Shard ``k`` holds episodes ``[k * shard_size, (k + 1) * shard_size)``; a worker writes each
format's shard under a temporary name and renames it when complete, then the parent records
it in ``manifest.json`` (written atomically). A rerun skips recorded shards and deletes
leftovers of interrupted ones. ``build_index`` writes the dataset-wide views: RLDS's
``dataset_info.json`` / ``features.json`` and ``index.json`` for the Zarr and HDF5 shards.
"""

from __future__ import annotations

import atexit
import json
import math
import multiprocessing as mp
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import sim2real
from sim2real.datasets.registry import DATASET_WRITERS, load_builtin_formats
from sim2real.datasets.schema import content_hash
from sim2real.errors import UsageError
from sim2real.randomizers import RandomizationConfig, config_from_dict, sample_scene
from sim2real.randomizers.splits import check_split
from sim2real.sim.tasks import TASKS

MANIFEST = "manifest.json"
RLDS_NAME, RLDS_VERSION = "sim2real_dataset", "1.0.0"
FORMATS = ("zarr", "rlds", "hdf5")


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
                "randomization", "codecs")  # fmt: skip
        data = asdict(self)
        return json.loads(json.dumps({k: data[k] for k in keep}))


#: writer options ``codecs.<format>`` may set (RLDS images are always PNG: TFDS's Image feature)
CODEC_OPTIONS = {
    "zarr": ("cname", "clevel", "image_shuffle", "image_chunk_steps", "lowdim_chunk_steps"),
    "hdf5": ("image_compression", "image_compression_opts", "image_chunk_steps"),
}


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


def validate(config: GenerationConfig) -> RandomizationConfig:
    """Check every option before any episode runs; return the parsed randomization."""
    if config.task != "all":
        TASKS.get(config.task)
    check_split(config.split)
    from sim2real.sim.backend import BACKENDS

    BACKENDS.get(config.backend)
    if config.backend == "isaac":
        from sim2real.sim.isaac.app import require_isaacsim

        require_isaacsim()  # fails at once, with the install steps
    load_builtin_formats()
    for name in config.formats:
        DATASET_WRITERS.get(name)
    _check_codecs(config.codecs)
    for key in ("num_episodes", "workers", "shard_size", "max_attempts", "image_size"):
        if getattr(config, key) < 1:
            raise GenerationError(f"{key} must be >= 1, got {getattr(config, key)}")
    if config.expert_noise < 0:
        raise GenerationError(f"expert_noise must be >= 0, got {config.expert_noise}")
    if not 0.0 <= config.expert_noise_rate <= 1.0:
        raise GenerationError(f"expert_noise_rate is a probability per step in [0, 1], got {config.expert_noise_rate}")
    if config.shard_range is not None:
        first, stop = config.shard_range
        if not 0 <= first < stop <= config.num_shards:
            raise GenerationError(f"shard_range {list(config.shard_range)} must lie in [0, {config.num_shards}]")
    if config.image_size != 128:
        raise GenerationError(f"image_size: cameras render at 128x128 (the SceneSpec default), got {config.image_size}")
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
        "rlds": rlds_dir / f"{RLDS_NAME}-{split}.tfrecord-{shard:05d}-of-{num_shards:05d}",
    }


def _temp(path: Path) -> Path:
    return path.with_name(f".{path.name}.incomplete")


def checksum(path: Path) -> str:
    """CRC-32C (hex) of a file, or of a directory's files (relative names and bytes, sorted).

    An integrity check against truncated or corrupted copies, as TFRecord and cloud storage use
    it; hardware-accelerated, it costs a fraction of a cryptographic hash on every shard."""
    import google_crc32c

    digest = google_crc32c.Checksum()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        digest.update(str(file.relative_to(path) if file != path else file.name).encode())
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 22), b""):
                digest.update(block)
    return digest.hexdigest().decode()


class _ShardWriters:
    """One writer per format, each writing to its temporary name."""

    def __init__(self, config: GenerationConfig, paths: dict[str, Path]) -> None:
        from sim2real.datasets.rlds_format import episode_to_example
        from sim2real.datasets.tfrecord_io import TFRecordWriter

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
                self.writers[name] = DATASET_WRITERS.get(name)(temp, **config.codecs.get(name, {}))
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

    def commit(self) -> dict[str, dict[str, Any]]:
        """Close every writer, rename its output into place, checksum it; return paths and checksums."""
        out = {}
        for name in [*self.writers, *(["rlds"] if self.rlds is not None else [])]:
            start = time.perf_counter()
            (self.rlds if name == "rlds" else self.writers[name]).close()
            final = self.paths[name]
            _remove(final)
            os.replace(_temp(final), final)
            out[name] = {"path": str(final), "crc32c": checksum(final), "bytes": _size(final)}
            self._count(name, start)
        return out


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def _size(path: Path) -> int:
    return path.stat().st_size if path.is_file() else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


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


def run_shard(job: ShardJob, progress: Any = None) -> dict[str, Any]:
    """Generate one shard in this process (its own simulator) and commit its files."""
    from sim2real.rollout import derived_seed, record_expert_episode
    from sim2real.sim.backend import BackendConfig
    from sim2real.sim.env import Sim2RealEnv

    config = job.config
    randomization = validate(config)
    root = Path(config.output_dir)
    paths = _shard_paths(root, job.shard, config.num_shards, config.split)
    backend_config = BackendConfig(control_hz=config.control_hz, physics_hz=config.physics_hz, shadows=config.shadows)
    backend = _process_backend(config.backend, backend_config)  # one simulator per worker, shared by the tasks
    tasks = config.tasks()
    envs: dict[str, Sim2RealEnv] = {}
    writers = _ShardWriters(config, paths)
    record: dict[str, Any] = {"shard": job.shard, "episodes": [], "successes": 0, "attempts": 0, "steps": 0}
    start = time.perf_counter()
    try:
        for index in config.shard_episodes(job.shard):
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
                                       "hash": content_hash(result.episode)})  # fmt: skip
            record["successes"] += int(result.success)
            record["attempts"] += attempt + 1
            record["steps"] += result.episode.steps.num_steps
            if progress is not None:
                progress.put((1, int(result.success)))
        record["files"] = writers.commit()
        record["write_seconds"] = writers.seconds
        record["write_seconds_by_format"] = writers.seconds_by_format
    except BaseException:
        _PROCESS_BACKENDS.pop(_backend_key(config.backend, backend_config), None)
        backend.close()
        raise
    record["seconds"] = time.perf_counter() - start
    return record


# ------------------------------------------------------------------------------ parent side
def _manifest_path(root: Path, config: GenerationConfig) -> Path:
    if config.shard_range is None:
        return root / MANIFEST
    first, stop = config.shard_range
    return root / "manifests" / f"manifest-{first:05d}-{stop:05d}.json"


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    os.replace(temp, path)


def _load_manifest(path: Path, config: GenerationConfig) -> dict[str, Any]:
    if not path.exists():
        return {"config": config.fingerprint(), "generator_version": sim2real.__version__, "shards": {}}
    manifest = json.loads(path.read_text())
    # an option added since the manifest was written counts at its default, which keeps what came before
    old, new = {**GenerationConfig().fingerprint(), **manifest.get("config", {})}, config.fingerprint()
    if old != new:
        changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        raise GenerationError(
            f"{path}: this output directory holds a run with other options ({', '.join(changed)} differ); "
            "use another output_dir or the same options to resume"
        )
    return manifest


def _progress_bar(total: int, done: int, successes: int, enabled: bool) -> Any:
    from tqdm import tqdm

    bar = tqdm(total=total, initial=done, unit="ep", desc="generate", disable=not enabled, dynamic_ncols=True)
    bar.set_postfix(successes=successes)
    return bar


def generate(config: GenerationConfig) -> dict[str, Any]:
    """Run (or resume) a generation job; return the manifest."""
    validate(config)
    root = Path(config.output_dir)
    root.mkdir(parents=True, exist_ok=True)
    manifest_path = _manifest_path(root, config)
    manifest = _load_manifest(manifest_path, config)
    first, stop = config.shard_range or (0, config.num_shards)
    pending = [k for k in range(first, stop) if str(k) not in manifest["shards"]]
    done_eps = sum(len(s["episodes"]) for s in manifest["shards"].values())
    done_successes = sum(s["successes"] for s in manifest["shards"].values())
    total = sum(len(config.shard_episodes(k)) for k in range(first, stop))
    bar = _progress_bar(total, done_eps, done_successes, config.progress)
    for record in _run_shards(config, pending, bar):
        manifest["shards"][str(record["shard"])] = record
        _write_json_atomic(manifest_path, manifest)
    bar.close()
    if config.build_index and config.shard_range is None:
        build_index(root)
    return manifest


def _run_shards(config: GenerationConfig, shards: list[int], bar: Any) -> Iterator[dict[str, Any]]:
    successes = [0]

    def tick(message: tuple[int, int]) -> None:
        bar.update(message[0])
        successes[0] += message[1]
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


def _merge_manifests(root: Path) -> dict[str, Any]:
    parts = [root / MANIFEST] if (root / MANIFEST).exists() else []
    parts += sorted((root / "manifests").glob("manifest-*.json")) if (root / "manifests").is_dir() else []
    if not parts:
        raise GenerationError(f"{root}: no manifest.json or manifests/manifest-*.json to index")
    merged: dict[str, Any] | None = None
    for part in parts:
        data = json.loads(part.read_text())
        if merged is None:
            merged = {"config": data["config"], "generator_version": data["generator_version"], "shards": {}}
        elif data["config"] != merged["config"]:
            raise GenerationError(f"{part}: its options differ from {parts[0]}'s; these jobs are not one dataset")
        merged["shards"].update(data["shards"])
    assert merged is not None
    return merged


def build_index(root: str | Path) -> dict[str, Any]:
    """Merge job manifests into ``manifest.json`` and write the dataset-wide views."""
    from sim2real.datasets.rlds_format import sim2real_features
    from sim2real.datasets.tfds_spec import SplitInfo, dataset_info_json

    root = Path(root)
    manifest = _merge_manifests(root)
    config = manifest["config"]
    shards = [manifest["shards"][k] for k in sorted(manifest["shards"], key=int)]
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
    _write_json_atomic(root / MANIFEST, manifest)
    for name in ("zarr", "hdf5"):
        if name in config["formats"]:
            entries = [{"shard": s["shard"], "path": Path(s["files"][name]["path"]).name,
                        "first_episode": s["episodes"][0]["index"], "num_episodes": len(s["episodes"])}
                       for s in shards]  # fmt: skip
            _write_json_atomic(root / name / "index.json", {"format": name, "complete": complete, "shards": entries})
    if "rlds" in config["formats"] and complete:
        version_dir = root / "rlds" / RLDS_NAME / RLDS_VERSION
        cameras = {c: (128, 128, 3) for c in config["cameras"]}
        (version_dir / "features.json").write_text(json.dumps(sim2real_features(cameras, "png"), indent=4) + "\n")
        lengths = tuple(len(s["episodes"]) for s in shards)
        split = SplitInfo(config["split"], lengths, sum(s["files"]["rlds"]["bytes"] for s in shards))
        description = "Scripted-expert episodes written by sim2real."
        info = dataset_info_json(RLDS_NAME, RLDS_VERSION, {config["split"]: split}, description)
        (version_dir / "dataset_info.json").write_text(json.dumps(info, indent=2) + "\n")
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
