"""Batch generation: determinism across workers and resumes, manifests, multi-job indexing, bad input."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from conftest import run_tensorflow

from sim2real.datasets import content_hash, open_dataset
from sim2real.generation import GenerationConfig, GenerationError, build_index, checksum, generate

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


def test_two_workers_give_byte_identical_episodes(one_worker: Path, tmp_path: Path) -> None:
    config = _config(tmp_path, "two", workers=2)
    generate(config)
    assert _hashes(Path(config.output_dir)) == _hashes(one_worker)


def test_multi_job_shard_ranges_and_index_equal_one_run(one_worker: Path, tmp_path: Path) -> None:
    config = _config(tmp_path, "jobs")
    generate(replace(config, shard_range=(1, 2)))
    generate(replace(config, shard_range=(0, 1)))
    manifest = build_index(config.output_dir)
    assert manifest["complete"]
    assert _hashes(Path(config.output_dir)) == _hashes(one_worker)


def test_a_killed_run_resumes_without_losing_or_duplicating_episodes(one_worker: Path, tmp_path: Path) -> None:
    out = tmp_path / "killed"
    command = [sys.executable, str(ROOT / "generate.py"), "task=all", "num_episodes=4", "shard_size=1", "seed=7",
               "randomization=light", "progress=false",
               f"output_dir={out}", "formats=[zarr,hdf5]"]  # fmt: skip
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
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
    subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    reader = open_dataset(out / "zarr")
    assert len(reader) == 4
    hashes = [content_hash(reader.episode(i)) for i in range(4)]
    assert hashes == _hashes(out)
    assert len(set(hashes)) == 4
    assert not list(out.rglob("*.incomplete"))


def test_resume_with_other_options_is_refused(one_worker: Path) -> None:
    config = _config(one_worker.parent, "one", seed=8)
    with pytest.raises(GenerationError, match="seed: 7 -> 8"):
        generate(config)
    with pytest.raises(GenerationError, match="expert_noise_rate: 1.0 -> 0.2"):
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
    ("overrides", "message"),
    [
        ({"task": "fold"}, "known tasks"),
        ({"formats": ("zarr", "parquet")}, "known"),
        ({"split": "night"}, "known splits"),
        ({"num_episodes": 0}, "num_episodes must be >= 1"),
        ({"expert_noise_rate": 1.5}, r"expert_noise_rate is a probability per step in \[0, 1\], got 1.5"),
        ({"backend": "bullet"}, "known backends"),
        ({"backend": "isaac"}, "pip install"),
        ({"shard_range": (3, 9)}, "shard_range"),
        ({"randomization": {"name": "x", "lighting": {"intensity": {"uniform": [1, 0.5]}}}}, "lighting.intensity"),
        ({"codecs": {"zarr": {"cname": "brotli"}}}, r"codecs\.zarr\.cname: 'brotli' is not a Blosc codec"),
        ({"codecs": {"zarr": {"level": 3}}}, r"codecs\.zarr\.level: unknown option; known: cname, clevel"),
        ({"codecs": {"hdf5": {"image_compression": "szip"}}}, r"codecs\.hdf5\.image_compression: 'szip'"),
        ({"codecs": {"rlds": {"png_level": 3}}}, r"codecs\.rlds: no writer options"),
    ],
)
def test_bad_options_fail_before_any_episode(tmp_path: Path, overrides: dict, message: str) -> None:
    config = _config(tmp_path, "bad", **overrides)
    with pytest.raises(Exception, match=message):
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
