"""Batch generation (`sim2real/generation.py`) at the edges the whole-run tests of
`test_generation.py` pass by: the options accepted, what one job of a multi-job run returns,
runs recorded by older versions, and full-disk errors that libraries report without an errno.
Each test kills mutants that `test_generation.py` let live (docs/testing.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sim2real.errors import StorageError
from sim2real.generation import (
    GenerationConfig,
    GenerationError,
    _is_storage_failure,
    _storage_failure,
    generate,
    load_run,
    validate,
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
    assert [e["index"] for e in shard["episodes"]] == [1]
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
