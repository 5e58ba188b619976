"""Batch generation (`sim2real/generation/`) at the edges the whole-run tests of
`test_generation.py` pass by: the options accepted, what one job of a multi-job run returns,
runs recorded by older versions, and full-disk errors that libraries report without an errno.
Each test kills mutants that `test_generation.py` let live (docs/testing.md)."""

from __future__ import annotations

import errno
import importlib.util
import json
import os
import socket
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

import sim2real.rollout
import sim2real.sim.backend
from sim2real.datasets import content_hash, open_dataset
from sim2real.datasets.claims import ShardClaim
from sim2real.datasets.integrity import write_json_atomic
from sim2real.datasets.synthetic import synthetic_episode
from sim2real.errors import StorageError
from sim2real.generation import (
    GenerationConfig,
    GenerationError,
    build_index,
    episode_hash,
    generate,
    load_run,
    main,
    remove_shard,
    validate,
)
from sim2real.generation.worker import _PROCESS_BACKENDS, _is_storage_failure, _storage_failure
from sim2real.sim.isaac.app import IsaacNotInstalledError


@pytest.mark.parametrize("cname", ["lz4", "lz4hc", "blosclz", "zstd", "zlib"])
def test_every_blosc_codec_numcodecs_writes_is_accepted(cname):
    validate(GenerationConfig(codecs={"zarr": {"cname": cname, "clevel": 9}}))


@pytest.mark.parametrize("clevel", [-1, 10])
def test_a_blosc_level_outside_0_to_9_is_refused(clevel):
    with pytest.raises(GenerationError, match=rf"^codecs\.zarr\.clevel={clevel}: expected a Blosc level in \[0, 9\]$"):
        validate(GenerationConfig(codecs={"zarr": {"clevel": clevel}}))


def test_one_job_of_a_multi_job_run_returns_its_own_shards(tmp_path, capsys):
    # generate.py prints a job's summary from the returned manifest's "shards"
    config = GenerationConfig(
        task="pick_place", num_episodes=2, shard_size=1, formats=("zarr", "rlds"), output_dir=str(tmp_path / "run"),
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

    first = generate(replace(config, shard_range=(0, 1)))["shards"]["0"]
    index = build_index(tmp_path / "run")
    assert (index["num_shards"], index["complete"], index["num_episodes"]) == (2, True, 2)
    assert index["steps"] == first["steps"] + shard["steps"]
    assert index["attempts"] == first["attempts"] + shard["attempts"]
    assert index["successes"] == first["successes"] + shard["successes"]
    info = json.loads((tmp_path / "run/rlds/sim2real_dataset/1.0.0/dataset_info.json").read_text())
    assert (info["name"], info["version"]) == ("sim2real_dataset", "1.0.0")
    assert [(split["name"], split["shardLengths"]) for split in info["splits"]] == [("train", ["1", "1"])]
    main([str(tmp_path / "run")])
    assert capsys.readouterr().out == "2 episodes in 2 shards: complete\n"


def _legacy_run(root: Path) -> None:
    """A run recorded before shards/: each job's records in manifests/manifest-<k>.json."""
    config = GenerationConfig(num_episodes=4, shard_size=2, output_dir=str(root))
    (root / "manifests").mkdir()
    for shard in (0, 1):
        record = {"shard": shard, "episodes": [], "successes": 0, "attempts": 0, "steps": 0, "files": {}}
        part = {"config": config.fingerprint(), "generator_version": "0.1", "shards": {str(shard): record},
                "complete": True}  # fmt: skip
        (root / "manifests" / f"manifest-{shard}.json").write_text(json.dumps(part))


def test_shard_records_of_a_run_recorded_in_per_job_manifests_are_read(tmp_path):
    _legacy_run(tmp_path)
    run = load_run(tmp_path)
    assert run.generator_version == "0.1"
    assert [r["shard"] for r in run.records()] == [0, 1]


def test_removing_a_shard_of_an_older_run_drops_its_record_from_the_job_manifest(tmp_path):
    _legacy_run(tmp_path)
    remove_shard(tmp_path, load_run(tmp_path), 1)
    assert [r["shard"] for r in load_run(tmp_path).records()] == [0]
    part = json.loads((tmp_path / "manifests" / "manifest-1.json").read_text())
    assert part["shards"] == {} and part["complete"] is False
    assert json.loads((tmp_path / "manifests" / "manifest-0.json").read_text())["complete"] is True


def test_a_shard_being_written_is_not_removed_and_its_writer_is_named(tmp_path):
    _legacy_run(tmp_path)
    with ShardClaim(tmp_path, 1) as claim:
        assert claim.held
        with pytest.raises(GenerationError) as info:
            remove_shard(tmp_path, load_run(tmp_path), 1)
        assert str(info.value) == f"shard 1 of {tmp_path} is being written by {claim.holder().describe()}"
    assert [r["shard"] for r in load_run(tmp_path).records()] == [0, 1]


def test_the_low_dimensional_hash_ignores_images_only():
    episode = synthetic_episode(0, num_steps=3, image_size=(4, 4))
    other_images = synthetic_episode(0, num_steps=3, image_size=(4, 4), noise=9.0)
    assert episode_hash(episode) != episode_hash(other_images)
    assert episode_hash(episode, images=False) == episode_hash(other_images, images=False)
    assert episode_hash(episode, images=False) != episode_hash(synthetic_episode(1, num_steps=3), images=False)


def test_backend_options_reach_the_simulator(tmp_path, monkeypatch):
    made = []

    def make_backend(name, config):
        made.append((name, config))
        raise RuntimeError("no simulator in this test")

    monkeypatch.setattr(sim2real.sim.backend, "make_backend", make_backend)
    config = GenerationConfig(
        task="pick_place", num_episodes=1, formats=("zarr",), output_dir=str(tmp_path / "run"), progress=False,
        backend_options={"multisamples": 2}, control_hz=20.0, physics_hz=400.0,
    )  # fmt: skip
    with pytest.raises(RuntimeError, match="no simulator"):
        generate(config)
    [(name, backend_config)] = made
    assert name == "mujoco"
    assert backend_config.options == {"multisamples": 2}
    assert (backend_config.control_hz, backend_config.physics_hz, backend_config.shadows) == (20.0, 400.0, False)


@pytest.mark.parametrize(
    ("text", "errno_value", "reason"),
    [
        (
            "Can't synchronously write data (file write failed: errno = 28, No space left on device)",
            28,
            "no space left on device",
        ),
        ("blosc: no space left on device while writing chunk", 28, "no space left on device"),
        ("Can't write data (file write failed: errno = 28)", 28, "no space left on device"),
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


def test_an_image_size_other_than_the_cameras_is_refused():
    with pytest.raises(GenerationError, match=r"^image_size=64: expected 128 \(cameras render at 128x128\)$"):
        validate(GenerationConfig(image_size=64))


def test_a_shard_that_cannot_open_its_writers_fails_with_that_error(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "zarr").write_text("a file where the zarr shards go")
    config = GenerationConfig(
        task="pick_place", num_episodes=1, formats=("zarr",), output_dir=str(tmp_path / "run"), progress=False
    )
    with pytest.raises(FileExistsError):
        generate(config)
    assert (tmp_path / "run" / "zarr").read_text() == "a file where the zarr shards go"


def test_a_missing_isaac_sim_is_reported_before_the_output_folder_is_made(tmp_path):
    if importlib.util.find_spec("isaacsim") is not None:
        pytest.skip("Isaac Sim is installed here")
    config = GenerationConfig(backend="isaac", num_episodes=1, output_dir=str(tmp_path / "run"), progress=False)
    with pytest.raises(IsaacNotInstalledError):
        generate(config)
    assert not (tmp_path / "run").exists()


def test_a_run_waits_for_a_shard_another_process_holds_and_indexes_it(tmp_path, capsys):
    root = tmp_path / "run"
    config = GenerationConfig(
        task="pick_place", num_episodes=2, shard_size=1, formats=("zarr",), output_dir=str(root), progress=False
    )
    root.mkdir()
    other = ShardClaim(root, 1)  # "another process" holds shard 1 and records it once shard 0 is done
    assert other.acquire()

    def finish_shard_1() -> None:
        while not (root / "shards" / "shard-00000.json").exists():
            time.sleep(0.05)
        time.sleep(1.0)  # the run is waiting by now
        episode = {"index": 1, "task": "pick_place", "success": True, "attempts": 1, "steps": 3}
        record = {"shard": 1, "episodes": [episode], "successes": 1, "attempts": 1, "steps": 3,
                  "files": {"zarr": {"path": str(root / "zarr" / "shard-00001.zarr")}}}  # fmt: skip
        write_json_atomic(root / "shards" / "shard-00001.json", record)
        other.release()

    helper = threading.Thread(target=finish_shard_1)
    helper.start()
    try:
        manifest = generate(config)
    finally:
        helper.join()
    assert (manifest["complete"], sorted(manifest["shards"]), manifest["num_episodes"]) == (True, ["0", "1"], 2)
    holder = f"pid {os.getpid()} on {socket.gethostname()} since"
    assert f"shard 1 is being written by {holder}" in capsys.readouterr().err  # announced once, while waiting
