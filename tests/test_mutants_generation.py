"""Batch generation (`sim2real/generation.py`) at the edges the whole-run tests of
`test_generation.py` pass by: the options accepted, what one job of a multi-job run returns,
runs recorded by older versions, and full-disk errors that libraries report without an errno.
Each test kills mutants that `test_generation.py` let live (docs/testing.md)."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import pytest

import sim2real.rollout
from sim2real.datasets import content_hash, open_dataset
from sim2real.errors import StorageError
from sim2real.generation import (
    _PROCESS_BACKENDS,
    GenerationConfig,
    GenerationError,
    _is_storage_failure,
    _storage_failure,
    generate,
    load_run,
    validate,
    write_json_atomic,
)


@pytest.mark.parametrize("cname", ["lz4", "lz4hc", "blosclz", "zstd", "zlib"])
def test_every_blosc_codec_numcodecs_writes_is_accepted(cname):
    validate(GenerationConfig(codecs={"zarr": {"cname": cname, "clevel": 9}}))


@pytest.mark.parametrize("clevel", [-1, 10])
def test_a_blosc_level_outside_0_to_9_is_refused(clevel):
    with pytest.raises(GenerationError, match=rf"^codecs\.zarr\.clevel: {clevel} is outside \[0, 9\]$"):
        validate(GenerationConfig(codecs={"zarr": {"clevel": clevel}}))


def test_one_job_of_a_multi_job_run_returns_its_own_shards(tmp_path):
    # generate.py prints a job's summary from the returned manifest's "shards"
    config = GenerationConfig(
        task="pick_place", num_episodes=2, shard_size=1, formats=("zarr",), output_dir=str(tmp_path / "run"),
        progress=False, shard_range=(1, 2),
    )  # fmt: skip
    manifest = generate(config)
    assert sorted(manifest) == ["config", "generator_version", "shards"]
    assert list(manifest["shards"]) == ["1"]
    shard = manifest["shards"]["1"]
    with open_dataset(Path(shard["files"]["zarr"]["path"])) as dataset:
        episode = dataset.episode(0)
    assert shard["episodes"] == [
        {
            "index": 1,
            "task": "pick_place",
            "success": episode.metadata.success,
            "attempts": shard["attempts"],
            "steps": episode.num_steps,
            "hash": content_hash(episode),
            "hash_covers": "all",
        }
    ]
    assert shard["steps"] == episode.num_steps
    assert manifest["config"] == config.fingerprint()
    assert not (tmp_path / "run" / "manifest.json").exists()  # one job of several builds no index


def test_shard_records_of_a_run_recorded_in_per_job_manifests_are_read(tmp_path):
    # runs from before shards/ kept each job's records in manifests/manifest-*.json
    config = GenerationConfig(num_episodes=4, shard_size=2, output_dir=str(tmp_path))
    (tmp_path / "manifests").mkdir()
    for shard in (0, 1):
        record = {"shard": shard, "episodes": [], "successes": 0, "attempts": 0, "steps": 0, "files": {}}
        part = {"config": config.fingerprint(), "generator_version": "0.1", "shards": {str(shard): record}}
        (tmp_path / "manifests" / f"manifest-{shard}.json").write_text(json.dumps(part))
    run = load_run(tmp_path)
    assert run.generator_version == "0.1"
    assert [r["shard"] for r in run.records()] == [0, 1]


@pytest.mark.parametrize(
    ("text", "errno_value", "reason"),
    [
        (
            "Can't synchronously write data (file write failed: errno = 28, No space left on device)",
            28,
            "no space left on device",
        ),
        ("blosc: no space left on device while writing chunk", 28, "no space left on device"),
        ("Unable to create file (Read-only file system)", 30, "read-only file system"),
    ],
)
def test_a_full_or_read_only_disk_reported_without_an_errno_is_named(text, errno_value, reason):
    error = RuntimeError(text)  # h5py and zarr wrap the OSError and keep only its text
    assert _is_storage_failure(error)
    converted = _storage_failure(error, Path("/data/run"), 3)
    assert isinstance(converted, StorageError)
    assert converted.errno == errno_value
    assert converted.strerror.startswith(f"/data/run: {reason} while writing shard 3;")
    assert not _is_storage_failure(RuntimeError("Can't read data (inflate() failed)"))


def test_a_failing_episode_aborts_its_shard_with_its_own_error(tmp_path, monkeypatch):
    def fail(*args, **kwargs):
        raise RuntimeError("expert crashed")

    monkeypatch.setattr(sim2real.rollout, "record_expert_episode", fail)
    config = GenerationConfig(
        task="pick_place", num_episodes=1, formats=("zarr", "hdf5"), output_dir=str(tmp_path / "run"), progress=False
    )
    with pytest.raises(RuntimeError, match=r"^expert crashed$"):
        generate(config)
    assert _PROCESS_BACKENDS == {}
    assert sorted(p.name for p in (tmp_path / "run" / "zarr").iterdir()) == []
    assert sorted(p.name for p in (tmp_path / "run" / "hdf5").iterdir()) == []
    assert not (tmp_path / "run" / "shards").exists()


def test_a_full_disk_while_writing_a_record_is_named_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_text", full)
    with pytest.raises(StorageError) as info:
        write_json_atomic(tmp_path / "shards" / "shard-00000.json", {"shard": 0})
    assert info.value.errno == errno.ENOSPC
    assert str(tmp_path / "shards" / "shard-00000.json") in str(info.value)
    assert "no space left on device" in str(info.value)
    assert list((tmp_path / "shards").iterdir()) == []
