"""Batch generation: determinism across workers, shard sizes and resumes, scene seeds of episodes and retries,
DART kick rates, manifests, multi-job indexing, bad input, a dataset format registered outside the package."""

from __future__ import annotations

import copy
import json
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest
from conftest import run_tensorflow

from sim2real.datasets import content_hash, open_dataset, registry
from sim2real.datasets.integrity import checksum, verify_dataset
from sim2real.datasets.registry import (
    EpisodeWriter,
    FormatOptions,
    RunShards,
    ShardFormat,
    load_builtin_formats,
    numbered_shards,
    register_shard_format,
)
from sim2real.datasets.schema import Episode
from sim2real.datasets.training_cache import CACHE_DIR, load_training_data
from sim2real.generation import GenerationConfig, GenerationError, build_index, generate, validate
from sim2real.randomizers import ConfigError
from sim2real.registry import UnknownNameError
from sim2real.sim.isaac.app import IsaacNotInstalledError

ROOT = Path(__file__).resolve().parents[1]


def _config(tmp_path: Path, name: str, **overrides: object) -> GenerationConfig:
    base = GenerationConfig(
        task="all", num_episodes=4, shard_size=2, seed=7, output_dir=str(tmp_path / name), progress=False,
        randomization={"name": "light", "objects": {"randomize_colors": True, "randomize_shapes": True}},
    )  # fmt: skip
    return replace(base, **overrides)


def _hashes(root: Path) -> list[str]:
    manifest = json.loads((root / "manifest.json").read_text())
    return [e["hash"] for k in sorted(manifest["shards"], key=int) for e in manifest["shards"][k]["episodes"]]


def _data_files(root: Path) -> dict[str, bytes]:
    """Every file of every format folder (not manifests or shard records, whose timings differ), by relative name."""
    return {
        str(path.relative_to(root)): path.read_bytes()
        for name in ("zarr", "rlds", "hdf5")
        for path in sorted((root / name).rglob("*"))
        if path.is_file()
    }


def _assert_same_files(root: Path, reference: Path) -> None:
    got, want = _data_files(root), _data_files(reference)
    assert sorted(got) == sorted(want)
    assert [name for name in want if got[name] != want[name]] == []


@pytest.fixture(scope="module")
def one_worker(tmp_path_factory) -> Path:
    config = _config(tmp_path_factory.mktemp("gen"), "one")
    generate(config)
    return Path(config.output_dir)


def test_every_format_holds_the_same_episodes(one_worker: Path) -> None:
    hashes = _hashes(one_worker)
    assert len(hashes) == 4
    for reader in (
        open_dataset(one_worker / "zarr"),
        open_dataset(one_worker / "hdf5"),
        open_dataset(one_worker / "rlds" / "sim2real_dataset" / "1.0.0"),
    ):
        assert [content_hash(reader.episode(i)) for i in range(len(reader))] == hashes
    manifest = json.loads((one_worker / "manifest.json").read_text())
    assert manifest["complete"] and manifest["num_episodes"] == 4
    for shard in manifest["shards"].values():
        assert set(shard["files"]) == {"zarr", "rlds", "hdf5"}
        assert all(f["crc32c"] == checksum(Path(f["path"])) and len(f["crc32c"]) == 8 for f in shard["files"].values())
    episode = open_dataset(one_worker / "zarr").episode(1)
    assert episode.metadata.task == "push" and episode.steps.is_first[0] and episode.steps.is_last[-1]
    assert episode.metadata.scene_spec_hash and episode.steps.language_instruction


def test_two_workers_write_byte_identical_files(one_worker: Path, tmp_path: Path) -> None:
    config = _config(tmp_path, "two", workers=2)
    generate(config)
    _assert_same_files(Path(config.output_dir), one_worker)


def test_episode_i_is_the_same_whatever_the_shard_size(one_worker: Path, tmp_path: Path) -> None:
    config = _config(tmp_path, "one_shard", shard_size=4, formats=("zarr",))
    generate(config)
    assert _hashes(Path(config.output_dir)) == _hashes(one_worker)


def test_every_episode_of_a_run_has_its_own_scene(one_worker: Path) -> None:
    reader = open_dataset(one_worker / "zarr")
    metadata = [reader.episode(i).metadata for i in range(len(reader))]
    assert len({m.seed for m in metadata}) == len(metadata) == 4
    assert len({m.scene_spec_hash for m in metadata}) == 4


def test_a_retry_after_a_failed_attempt_draws_a_new_scene(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sim2real.rollout as rollout

    record = rollout.record_expert_episode
    scenes = []

    def first_attempt_fails(env, scene, *args, **kwargs):
        scenes.append(scene)
        result = record(env, scene, *args, **kwargs)
        return replace(result, success=False) if len(scenes) == 1 else result

    monkeypatch.setattr(rollout, "record_expert_episode", first_attempt_fails)
    config = _config(tmp_path, "retry", task="pick_place", num_episodes=1, max_attempts=2, formats=("zarr",))
    generate(config)
    assert len(scenes) == 2
    assert scenes[1].seed != scenes[0].seed
    assert scenes[1].content_hash() != scenes[0].content_hash()
    written = open_dataset(Path(config.output_dir) / "zarr").episode(0)
    assert written.metadata.scene_spec_hash == scenes[1].content_hash()
    assert written.metadata.extras["attempts"] == 2


def _first_episode(config: GenerationConfig):
    generate(config)
    return open_dataset(Path(config.output_dir) / "zarr").episode(0)


def test_expert_noise_at_rate_zero_executes_the_noiseless_trajectory(tmp_path: Path) -> None:
    quiet = _config(tmp_path, "quiet", task="pick_place", num_episodes=1, formats=("zarr",))
    never = replace(quiet, output_dir=str(tmp_path / "never"), expert_noise=0.05, expert_noise_rate=0.0)
    expected, got = _first_episode(quiet).steps, _first_episode(never).steps
    assert got.num_steps == expected.num_steps
    assert np.array_equal(got.state, expected.state)
    assert np.array_equal(got.action, expected.action)
    assert np.array_equal(got.images["front"], expected.images["front"])


def test_expert_noise_rate_is_the_fraction_of_kicked_steps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sim2real.sim.experts import Expert

    perturb = Expert.perturb
    kicked: list[bool] = []

    def spy(self, action):
        executed = perturb(self, action)
        kicked.append(not np.array_equal(executed, action))
        return executed

    monkeypatch.setattr(Expert, "perturb", spy)
    generate(_config(tmp_path, "kicks", task="pick_place", num_episodes=2, formats=("zarr",), expert_noise=0.03,
                     expert_noise_rate=0.2))  # fmt: skip
    assert len(kicked) >= 40
    assert 0.05 <= np.mean(kicked) <= 0.4


def test_multi_job_shard_ranges_and_index_equal_one_run(one_worker: Path, tmp_path: Path) -> None:
    config = _config(tmp_path, "jobs")
    generate(replace(config, shard_range=(1, 2)))
    generate(replace(config, shard_range=(0, 1)))
    manifest = build_index(config.output_dir)
    assert manifest["complete"]
    assert _hashes(Path(config.output_dir)) == _hashes(one_worker)
    _assert_same_files(Path(config.output_dir), one_worker)


def _generate_command(out: Path) -> list[str]:
    return [sys.executable, str(ROOT / "generate.py"), "task=all", "num_episodes=4", "shard_size=1", "seed=7",
            "randomization=light", "progress=false", f"output_dir={out}", "formats=[zarr,hdf5]"]  # fmt: skip


def test_a_killed_run_resumes_to_the_files_of_an_uninterrupted_run(tmp_path: Path) -> None:
    out = tmp_path / "killed"
    process = subprocess.Popen(_generate_command(out), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    records = out / "shards"
    deadline = time.time() + 120
    while time.time() < deadline and process.poll() is None:
        if records.is_dir() and len(list(records.glob("shard-*.json"))) >= 1:
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    recorded_before = set(records.glob("shard-*.json"))
    assert 1 <= len(recorded_before) < 4
    subprocess.run(_generate_command(out), cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    straight = tmp_path / "straight"
    subprocess.run(_generate_command(straight), cwd=ROOT, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)  # fmt: skip
    _assert_same_files(out, straight)
    assert _hashes(out) == _hashes(straight)
    assert len(open_dataset(out / "zarr")) == 4
    assert not list(out.rglob("*.incomplete"))


def test_a_rerun_of_a_finished_run_leaves_its_training_cache_fresh(one_worker: Path, tmp_path: Path) -> None:
    """The benchmark reruns generation before every training: a finished run must not touch its
    format folders, or every rerun would rebuild the training cache (minutes on a large dataset)."""
    done = tmp_path / "done"
    shutil.copytree(one_worker, done)
    load_training_data(done / "zarr")
    built = (done / "zarr" / CACHE_DIR / "zarr" / "meta.json").stat().st_mtime_ns
    before = {p: p.stat().st_mtime_ns for p in (done / "zarr").iterdir() if p.is_file()}
    time.sleep(1.1)  # the fingerprint's mtimes are whole seconds
    generate(_config(tmp_path, "done"))
    assert {p: p.stat().st_mtime_ns for p in before} == before
    load_training_data(done / "zarr")
    assert (done / "zarr" / CACHE_DIR / "zarr" / "meta.json").stat().st_mtime_ns == built


def test_resume_with_other_options_is_refused(one_worker: Path) -> None:
    config = _config(one_worker.parent, "one", seed=8)
    with pytest.raises(GenerationError, match="seed: 7 -> 8"):
        generate(config)
    with pytest.raises(GenerationError, match=r"expert_noise_rate: 1\.0 -> 0\.2"):
        generate(_config(one_worker.parent, "one", expert_noise=0.03, expert_noise_rate=0.2))


def test_a_manifest_from_before_expert_noise_rate_resumes(one_worker: Path, tmp_path: Path) -> None:
    old = tmp_path / "old"
    shutil.copytree(one_worker, old)
    shutil.rmtree(old / "shards")  # the layout before shard records and run.json: manifest.json held both
    (old / "run.json").unlink()
    manifest = json.loads((old / "manifest.json").read_text())
    del manifest["config"]["expert_noise_rate"]  # written before the option existed: every step had noise
    (old / "manifest.json").write_text(json.dumps(manifest))
    generate(_config(tmp_path, "old"))  # nothing left to do, and no refusal
    assert _hashes(old) == _hashes(one_worker)


@pytest.mark.parametrize(
    ("overrides", "error", "message"),
    [
        ({"task": "fold"}, UnknownNameError, r"unknown task 'fold'; known tasks: (\w+, )*pick_place"),
        ({"formats": ("zarr", "parquet")}, UnknownNameError,
         r"unknown dataset format 'parquet'; known dataset formats: hdf5, lerobot, rlds, zarr"),
        ({"split": "night"}, ConfigError, r"split: unknown split 'night'; known splits: \['train', 'textures'"),
        ({"num_episodes": 0}, GenerationError, r"num_episodes=0: expected an integer >= 1"),
        ({"expert_noise_rate": 1.5}, GenerationError,
         r"expert_noise_rate=1\.5: expected a probability per step in \[0, 1\]"),
        ({"backend": "bullet"}, UnknownNameError, r"unknown backend 'bullet'; known backends: (\w+, )*mujoco"),
        ({"backend": "isaac"}, IsaacNotInstalledError,
         r"(?s)the 'isaacsim' package is missing.*pip install 'isaacsim\[all,extscache\]==6\.2\.0\.0'"),
        ({"shard_range": (3, 9)}, GenerationError,
         r"shard_range=\[3, 9\]: expected \[first, stop\) with 0 <= first < stop <= 2"),
        ({"randomization": {"name": "x", "lighting": {"intensity": {"uniform": [1, 0.5]}}}}, ConfigError,
         r"lighting\.intensity: low \(1\.0\) > high \(0\.5\)"),
        ({"codecs": {"zarr": {"cname": "brotli"}}}, GenerationError,
         r"codecs\.zarr\.cname='brotli': expected a Blosc codec \(lz4, "),
        ({"codecs": {"zarr": {"level": 3}}}, GenerationError,
         r"codecs\.zarr\.level=3: unknown option; known: cname, clevel"),
        ({"codecs": {"hdf5": {"image_compression": "szip"}}}, GenerationError,
         r"codecs\.hdf5\.image_compression='szip': expected null, lzf or gzip"),
        ({"codecs": {"rlds": {"png_level": 3}}}, GenerationError,
         r"codecs\.rlds\.png_level=3: rlds takes no writer options"),
    ],
)  # fmt: skip
def test_bad_options_fail_before_any_episode(
    tmp_path: Path, overrides: dict, error: type[Exception], message: str
) -> None:
    config = _config(tmp_path, "bad", **overrides)
    with pytest.raises(error, match=message):
        generate(config)
    assert not (Path(config.output_dir) / "manifest.json").exists()


_TFDS_DUMP = """
import sys, numpy as np, tensorflow_datasets as tfds
dataset = tfds.builder_from_directory(sys.argv[1]).as_dataset(split="train")
out = {}
for i, example in enumerate(dataset):
    steps = list(example["steps"])
    out[f"{i}/image"] = np.stack([s["observation"]["image"].numpy() for s in steps])
    out[f"{i}/wrist_image"] = np.stack([s["observation"]["wrist_image"].numpy() for s in steps])
    out[f"{i}/action"] = np.stack([s["action"].numpy() for s in steps])
    out[f"{i}/instruction"] = np.array(steps[0]["language_instruction"].numpy().decode())
np.savez(sys.argv[-1], **out)
"""


@pytest.mark.interop
def test_tfds_loads_generated_rlds_and_equals_zarr(one_worker: Path, tmp_path: Path) -> None:
    pytest.importorskip("tensorflow_datasets")
    loaded = run_tensorflow(_TFDS_DUMP, str(one_worker / "rlds" / "sim2real_dataset" / "1.0.0"))
    zarr = open_dataset(one_worker / "zarr")
    assert len({k.split("/")[0] for k in loaded}) == len(zarr)
    for index in range(len(zarr)):
        episode = zarr.episode(index)
        assert np.array_equal(loaded[f"{index}/image"], episode.steps.images["front"])
        assert np.array_equal(loaded[f"{index}/wrist_image"], episode.steps.images["wrist"])
        assert np.array_equal(loaded[f"{index}/action"], episode.steps.action)
        assert str(loaded[f"{index}/instruction"]) == episode.steps.language_instruction


# ------------------------------------------------------------------------------ a format defined here
@dataclass(frozen=True)
class NpzOptions(FormatOptions):
    """``codecs.npz.compressed``: deflate the arrays."""

    compressed: bool = False


class NpzShardWriter(EpisodeWriter):
    """A toy format: each episode's actions and front frames as two arrays of one ``.npz`` file."""

    def __init__(self, path: Path, compressed: bool = NpzOptions.compressed) -> None:
        self.path, self.compressed = path, compressed
        self.arrays: dict[str, np.ndarray] = {}

    def write(self, episode: Episode) -> None:
        index = len(self.arrays) // 2
        self.arrays[f"action_{index}"] = episode.steps.action
        self.arrays[f"front_{index}"] = episode.steps.images["front"]

    def close(self) -> None:
        with open(self.path, "wb") as file:
            (np.savez_compressed if self.compressed else np.savez)(file, **self.arrays)


def _npz_episodes(path: Path) -> int:
    with np.load(path) as data:
        return len(data.files) // 2


def _npz_summary(run: RunShards, format_name: str) -> None:
    episodes = sum(len(record["episodes"]) for record in run.records)
    summary = {"episodes": episodes, "complete": run.complete, "shards": [p.name for p in run.shard_paths(format_name)]}
    (run.root / format_name / "summary.json").write_text(json.dumps(summary))


NPZ = ShardFormat("npz", NpzShardWriter, numbered_shards("npz", ".npz"), NpzOptions, _npz_summary, _npz_episodes)


@pytest.fixture
def npz_format(monkeypatch: pytest.MonkeyPatch) -> None:
    load_builtin_formats()
    monkeypatch.setattr(registry, "SHARD_FORMATS", copy.deepcopy(registry.SHARD_FORMATS))  # npz leaves with the test
    register_shard_format(NPZ)  # what a format module does to be generated


def test_a_format_registered_outside_the_package_is_generated_checksummed_and_finalized(
    npz_format: None, one_worker: Path, tmp_path: Path
) -> None:
    config = _config(tmp_path, "npz", formats=("npz",), codecs={"npz": {"compressed": True}})
    manifest = generate(config)
    root = Path(config.output_dir)
    shards = sorted((root / "npz").glob("shard-*.npz"))
    assert [path.name for path in shards] == ["shard-00000.npz", "shard-00001.npz"]
    zarr = open_dataset(one_worker / "zarr")
    for key, record in manifest["shards"].items():
        recorded = record["files"]["npz"]
        assert Path(recorded["path"]) == shards[int(key)] and recorded["crc32c"] == checksum(shards[int(key)])
        assert recorded["bytes"] == shards[int(key)].stat().st_size
        with zipfile.ZipFile(shards[int(key)]) as archive:
            assert {info.compress_type for info in archive.infolist()} == {zipfile.ZIP_DEFLATED}
        with np.load(shards[int(key)]) as data:
            for local, episode in enumerate(record["episodes"]):
                assert np.array_equal(data[f"action_{local}"], zarr.episode(episode["index"]).steps.action)
    summary = json.loads((root / "npz" / "summary.json").read_text())
    assert summary == {"episodes": 4, "complete": True, "shards": ["shard-00000.npz", "shard-00001.npz"]}
    assert _hashes(root) == _hashes(one_worker)
    assert verify_dataset(root).ok
    written = [path.stat().st_mtime_ns for path in shards]
    generate(config)  # a rerun verifies the recorded shards and writes nothing
    assert [path.stat().st_mtime_ns for path in shards] == written
    with pytest.raises(GenerationError, match=r"^codecs\.npz\.level=1: unknown option; known: compressed$"):
        validate(replace(config, codecs={"npz": {"level": 1}}))
    with pytest.raises(GenerationError, match=r"^codecs\.npz\.compressed='yes': expected bool$"):
        validate(replace(config, codecs={"npz": {"compressed": "yes"}}))


def test_writer_options_stated_at_their_defaults_resume_a_run_recorded_without_them(one_worker: Path) -> None:
    defaults = {"zarr": {"cname": "lz4", "clevel": 5}, "hdf5": {"image_compression": None}}
    generate(_config(one_worker.parent, "one", codecs=defaults))  # nothing left to do, and no refusal
    with pytest.raises(GenerationError, match=r"codecs: \{\} -> \{'zarr': \{'clevel': 3\}\}"):
        generate(_config(one_worker.parent, "one", codecs={"zarr": {"clevel": 3}}))
