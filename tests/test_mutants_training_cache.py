"""The training cache on a small synthetic dataset (no simulator): every array, the stats, the
fingerprint that decides when the cache is rebuilt, and the errors of unusable episodes."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from sim2real.datasets import create_writer
from sim2real.datasets.schema import DatasetError
from sim2real.datasets.synthetic import synthetic_episode
from sim2real.datasets.training_cache import (
    CACHE_DIR,
    CACHE_VERSION,
    TrainingData,
    _fingerprint,
    build_cache,
    cache_location,
    compute_stats,
    load_training_data,
)

LENGTHS = (5, 7, 4)
TASKS = ("push", "pick_place", "push")


def _episodes() -> list:
    episodes = []
    for index, (length, task) in enumerate(zip(LENGTHS, TASKS, strict=True)):
        episode = synthetic_episode(index, num_steps=length, image_size=(8, 8))
        episodes.append(replace(episode, metadata=replace(episode.metadata, task=task)))
    return episodes


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    path = tmp_path / "episodes.zarr"
    with create_writer("zarr", path) as writer:
        for episode in _episodes():
            writer.write(episode)
    return path


class _Reader:
    def __init__(self, episodes: list) -> None:
        self.episodes = episodes

    def __len__(self) -> int:
        return len(self.episodes)

    def episode(self, index: int):
        return self.episodes[index]


def test_the_cache_holds_every_array_of_every_episode(dataset: Path) -> None:
    episodes = _episodes()
    data = load_training_data(dataset)
    assert data.root == dataset / CACHE_DIR / dataset.name
    assert data.num_episodes == 3
    np.testing.assert_array_equal(data.episode_ends, np.cumsum(LENGTHS))
    assert data.episode_ends.dtype == np.int64
    assert [data.episode_range(i) for i in range(3)] == [(0, 5), (5, 12), (12, 16)]
    np.testing.assert_array_equal(data.state, np.concatenate([e.steps.state for e in episodes]))
    np.testing.assert_array_equal(data.action, np.concatenate([e.steps.action for e in episodes]))
    np.testing.assert_array_equal(data.success, [e.metadata.success for e in episodes])
    assert data.success.dtype == np.bool_
    assert data.instructions == [e.steps.language_instruction for e in episodes]
    assert data.tasks == ["pick_place", "push"]
    np.testing.assert_array_equal(data.task_index, [1, 0, 1])
    assert sorted(data.images) == ["front", "wrist"]
    for camera, frames in data.images.items():
        assert frames.dtype == np.uint8
        assert not frames.flags.writeable
        np.testing.assert_array_equal(frames, np.concatenate([e.steps.images[camera] for e in episodes]))
    expected = compute_stats(data.state, data.action)
    assert sorted(data.stats) == sorted(expected)
    for key, value in expected.items():
        np.testing.assert_array_equal(data.stats[key], value)
        assert data.stats[key].dtype == np.float32
    meta = json.loads((data.root / "meta.json").read_text())
    assert meta["cameras"] == ["front", "wrist"]
    assert meta["source"] == str(dataset)
    assert meta["fingerprint"] == _fingerprint(dataset)
    assert sorted(p.name for p in data.root.parent.iterdir()) == [dataset.name]  # no temporary folder left


def test_one_camera_and_a_cache_root(dataset: Path, tmp_path: Path) -> None:
    data = load_training_data(dataset, cameras=("wrist",), cache_dir=tmp_path / "caches")
    assert data.root == cache_location(dataset, tmp_path / "caches")
    assert data.root.parent == tmp_path / "caches"
    assert list(data.images) == ["wrist"]
    assert json.loads((data.root / "meta.json").read_text())["cameras"] == ["wrist"]
    assert not (dataset / CACHE_DIR).exists()
    both = load_training_data(dataset, cameras=("front", "wrist"), cache_dir=tmp_path / "caches")
    assert sorted(both.images) == ["front", "wrist"]  # a camera the cache lacks rebuilds it
    with pytest.raises(DatasetError, match=r"no camera \['top'\]"):
        load_training_data(dataset, cameras=("top",), cache_dir=tmp_path / "other")


def test_the_cache_is_reused_and_rebuilt_when_a_file_changes(dataset: Path) -> None:
    data = load_training_data(dataset)
    meta = data.root / "meta.json"
    meta.write_text(meta.read_text().replace("pick up", "PICK UP"))
    assert "PICK UP the red cube" in load_training_data(dataset).instructions[0]  # reused, not rebuilt
    extra = dataset / "zz_extra.txt"
    extra.write_text("x")
    assert load_training_data(dataset).instructions[0] == "pick up the red cube"  # rebuilt


def test_fingerprint_follows_names_sizes_and_times_but_not_the_cache(tmp_path: Path) -> None:
    root = tmp_path / "data"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "a.bin").write_bytes(b"abc")
    (root / "b.bin").write_bytes(b"de")
    first = _fingerprint(root)
    assert first["version"] == CACHE_VERSION
    assert first["files"] == 2
    assert len(first["sha256"]) == 64
    digest = [
        ("b.bin", 2, int((root / "b.bin").stat().st_mtime)),
        ("sub/a.bin", 3, int((root / "sub" / "a.bin").stat().st_mtime)),
    ]
    assert first["sha256"] == hashlib.sha256(repr(digest).encode()).hexdigest()
    (root / CACHE_DIR).mkdir()
    (root / CACHE_DIR / "meta.json").write_text("{}")
    assert _fingerprint(root) == first
    stamp = (root / "b.bin").stat().st_mtime
    os.utime(root / "b.bin", (stamp + 5, stamp + 5))
    moved = _fingerprint(root)
    assert moved != first
    os.utime(root / "b.bin", (stamp, stamp))
    (root / "b.bin").write_bytes(b"dX")  # same size, same second: the same fingerprint
    os.utime(root / "b.bin", (stamp, stamp))
    assert _fingerprint(root) == first
    (root / "b.bin").rename(root / "c.bin")
    assert _fingerprint(root) != first
    single = _fingerprint(root / "c.bin")
    assert single["files"] == 1
    entry = [("c.bin", 2, int(stamp))]
    assert single["sha256"] == hashlib.sha256(repr(entry).encode()).hexdigest()


def test_compute_stats_percentiles_mean_and_floored_std() -> None:
    state = np.zeros((100, 14), np.float32)
    state[:, 0] = np.arange(100)
    state[0, 1] = np.nan
    state[1, 2] = np.inf
    scale = np.arange(1, 8, dtype=np.float32)
    action = np.arange(100, dtype=np.float32)[:, None] * scale  # each dimension its own range
    stats = compute_stats(state, action)
    assert sorted(stats) == ["action_p01", "action_p99", "state_mean", "state_std"]
    assert all(v.dtype == np.float32 for v in stats.values())
    np.testing.assert_allclose(stats["action_p01"], 0.99 * scale, rtol=1e-6)
    np.testing.assert_allclose(stats["action_p99"], 98.01 * scale, rtol=1e-6)
    assert stats["state_mean"][0] == pytest.approx(49.5)
    assert stats["state_std"][0] == pytest.approx(np.arange(100).std())
    assert stats["state_mean"][1] == 0.0  # non-finite values count as 0
    assert stats["state_mean"][2] == 0.0
    assert stats["state_std"][3] == pytest.approx(1e-6)  # a constant dimension: std floored


def test_unusable_episodes_are_clear_errors(tmp_path: Path) -> None:
    good = _episodes()
    with pytest.raises(DatasetError, match="has no episodes"):
        build_cache(_Reader([]), tmp_path / "src", tmp_path / "cache", None)
    silent = replace(good[1], steps=replace(good[1].steps, language_instruction=""))
    with pytest.raises(DatasetError, match="episode 1 has no language instruction"):
        build_cache(_Reader([good[0], silent]), tmp_path / "src", tmp_path / "cache", None)
    six = replace(good[0], steps=replace(good[0].steps, action=good[0].steps.action[:, :6]))
    with pytest.raises(DatasetError, match=r"episode 0 has actions of shape \(6,\), expected \(7,\)"):
        build_cache(_Reader([six]), tmp_path / "src", tmp_path / "cache", None)
    with pytest.raises(DatasetError, match="no such file or directory"):
        load_training_data(tmp_path / "missing")


def test_episode_range_of_a_hand_built_view() -> None:
    data = TrainingData(Path("."), np.zeros((9, 14)), np.zeros((9, 7)), np.array([4, 9]), np.zeros(2, bool),
                        ["a", "b"], ["t"], np.zeros(2, np.int64), {}, {})  # fmt: skip
    assert data.num_episodes == 2
    assert data.episode_range(0) == (0, 4)
    assert data.episode_range(1) == (4, 9)


def test_a_one_episode_dataset_builds(tmp_path: Path) -> None:
    episode = _episodes()[0]
    cache = tmp_path / "cache"
    build_cache(_Reader([episode]), tmp_path / "src", cache, None)
    lowdim = np.load(cache / "lowdim.npz")
    np.testing.assert_array_equal(lowdim["episode_ends"], [5])
    np.testing.assert_array_equal(np.load(cache / "images_front.npy"), episode.steps.images["front"])
    assert json.loads((cache / "meta.json").read_text())["cameras"] == ["front", "wrist"]


def test_cache_location_beside_a_file_or_a_folder_or_under_a_root(tmp_path: Path) -> None:
    file = tmp_path / "episodes.hdf5"
    file.write_bytes(b"")
    folder = tmp_path / "episodes.zarr"
    folder.mkdir()
    assert cache_location(file) == tmp_path / CACHE_DIR / "episodes.hdf5"
    assert cache_location(folder) == folder / CACHE_DIR / "episodes.zarr"
    digest = hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:12]
    assert cache_location(folder, tmp_path / "root") == tmp_path / "root" / f"episodes.zarr-{digest}"


def test_a_cache_another_process_finished_first_is_kept(dataset: Path) -> None:
    data = load_training_data(dataset)
    before = (data.root / "meta.json").read_text().replace("pick up", "kept: pick up")
    (data.root / "meta.json").write_text(before)
    build_cache(_Reader(_episodes()), dataset, data.root, None)
    assert (data.root / "meta.json").read_text() == before
    assert sorted(p.name for p in data.root.parent.iterdir()) == [dataset.name]


def _load_instructions(path: str) -> list[str]:
    return load_training_data(Path(path)).instructions


def test_runs_that_start_together_build_one_cache_and_all_use_it(dataset: Path) -> None:
    """Seeds trained side by side open a stale cache at once: while one builds it the others wait
    (they neither build their own nor swap it in under the first), then all use it; no
    half-built folder is left behind."""
    import multiprocessing
    import time

    from sim2real.datasets.training_cache import _building

    first = load_training_data(dataset)
    (dataset / "zz_extra.txt").write_text("x")  # every process now finds the cache stale
    dead = first.root.with_name(f"{first.root.name}.incomplete-999999")  # a killed build's leftovers
    dead.mkdir()
    with multiprocessing.get_context("fork").Pool(4) as pool:
        with _building(first.root):  # this process is "building": the others must wait for it
            pending = pool.map_async(_load_instructions, [str(dataset)] * 4)
            time.sleep(1.0)
            assert not pending.ready()
        assert pending.get(timeout=60) == [first.instructions] * 4
    assert sorted(p.name for p in first.root.parent.iterdir()) == [dataset.name]
    assert load_training_data(dataset).root == first.root


def test_reader_options_reach_the_reader(dataset: Path) -> None:
    with pytest.raises(DatasetError, match="not an HDF5 file"):
        load_training_data(dataset, format_name="hdf5")
    assert load_training_data(dataset, format_name="zarr").num_episodes == 3
