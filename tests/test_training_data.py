"""The training view of datasets: cache, statistics, padding of histories and chunks, inspect."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from sim2real.datasets import DatasetError, open_dataset
from sim2real.datasets.torch_dataset import BatchLoader, ChunkedEpisodeDataset, split_episodes
from sim2real.datasets.training_cache import load_training_data
from sim2real.generation import GenerationConfig, generate
from sim2real.sim.tasks import TASK_NAMES


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("train") / "data"
    generate(GenerationConfig(task="all", num_episodes=3, shard_size=2, output_dir=str(out), progress=False,
                              formats=("zarr", "rlds")))  # fmt: skip
    return out


def test_cache_holds_every_step_and_stats(dataset: Path) -> None:
    data = load_training_data(dataset / "zarr")
    reader = open_dataset(dataset / "zarr")
    lengths = [reader.episode(i).steps.num_steps for i in range(3)]
    assert data.episode_ends.tolist() == np.cumsum(lengths).tolist()
    assert data.images["front"].shape == (sum(lengths), 128, 128, 3)
    assert np.array_equal(data.images["wrist"][lengths[0]], reader.episode(1).steps.images["wrist"][0])
    assert np.allclose(data.stats["action_p01"], np.percentile(data.action, 1, axis=0))
    assert data.stats["state_std"].min() > 0
    assert set(data.tasks) == set(TASK_NAMES[: len(lengths)])  # task=all: one episode per task, in name order
    rlds = load_training_data(dataset / "rlds" / "sim2real_dataset" / "1.0.0")
    assert np.array_equal(rlds.action, data.action) and np.array_equal(rlds.images["front"][5], data.images["front"][5])


def test_episode_range_of_every_episode_holds_exactly_that_episodes_steps(dataset: Path) -> None:
    data = load_training_data(dataset / "zarr")
    reader = open_dataset(dataset / "zarr")
    previous_end = 0
    for index in range(len(reader)):
        steps = reader.episode(index).steps
        start, end = data.episode_range(index)
        assert (start, end) == (previous_end, previous_end + steps.num_steps)
        assert np.array_equal(data.state[start:end], steps.state)
        assert np.array_equal(data.action[start:end], steps.action)
        for camera in ("front", "wrist"):
            assert np.array_equal(data.images[camera][start:end], steps.images[camera])
        previous_end = end
    assert previous_end == len(data.action)


def test_first_sample_of_each_episode_is_its_first_step(dataset: Path) -> None:
    data = load_training_data(dataset / "zarr")
    reader = open_dataset(dataset / "zarr")
    samples = ChunkedEpisodeDataset(data, [0, 1, 2], history=2, chunk=3)
    firsts = [i for i in range(len(samples)) if int(samples[i]["t"]) == 0]
    assert [int(samples[i]["episode"]) for i in firsts] == [0, 1, 2]
    for index, sample in zip((0, 1, 2), (samples[i] for i in firsts), strict=True):
        steps = reader.episode(index).steps
        assert np.array_equal(sample["images"]["front"][-1].numpy(), steps.images["front"][0])
        assert np.array_equal(sample["state"][-1].numpy(), steps.state[0])
        assert np.array_equal(sample["actions"].numpy(), steps.action[:3])


def test_cache_is_reused_until_the_dataset_changes(dataset: Path) -> None:
    first = load_training_data(dataset / "zarr")
    stamp = (first.root / "meta.json").stat().st_mtime_ns
    load_training_data(dataset / "zarr")
    assert (first.root / "meta.json").stat().st_mtime_ns == stamp


def test_samples_pad_history_and_chunks_explicitly(dataset: Path) -> None:
    data = load_training_data(dataset / "zarr")
    samples = ChunkedEpisodeDataset(data, [0], history=3, chunk=5)
    start, end = data.episode_range(0)
    first = samples[0]
    assert first["obs_mask"].tolist() == [False, False, True]
    assert np.array_equal(first["images"]["front"][0].numpy(), data.images["front"][start])
    last = samples[len(samples) - 1]
    assert last["action_mask"].tolist() == [True, False, False, False, False]
    assert np.array_equal(last["actions"][4].numpy(), data.action[end - 1])
    middle = samples[3]
    assert middle["obs_mask"].all() and middle["action_mask"].all()
    assert np.array_equal(middle["actions"].numpy(), data.action[start + 3 : start + 8])
    assert np.array_equal(middle["state"].numpy(), data.state[start + 1 : start + 4])
    batch = next(iter(DataLoader(samples, batch_size=4)))
    assert batch["images"]["wrist"].shape == (4, 3, 128, 128, 3) and len(batch["instruction"]) == 4


def _same(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    return a == b


@pytest.mark.parametrize("workers", [0, 2])
def test_batch_loader_gives_default_collate_batches(dataset: Path, workers: int) -> None:
    data = load_training_data(dataset / "zarr")
    samples = ChunkedEpisodeDataset(data, [0, 1, 2], history=2, chunk=4)
    ours = list(BatchLoader(samples, batch_size=5, num_workers=workers))
    reference = list(DataLoader(samples, batch_size=5))
    assert len(ours) == len(reference) == -(-len(samples) // 5)
    assert all(_same(a, b) for a, b in zip(ours, reference, strict=True))  # tensors, even from workers
    dropped = list(BatchLoader(samples, batch_size=5, shuffle=True, drop_last=True))
    assert len(dropped) == len(samples) // 5
    seen = np.concatenate([b["t"].numpy() + 1000 * b["episode"].numpy() for b in dropped])
    assert len(set(seen.tolist())) == len(seen)  # a permutation: no sample twice


def test_validation_split_is_disjoint_and_seeded() -> None:
    train, val = split_episodes(20, 0.1, seed=3)
    assert len(val) == 2 and set(train).isdisjoint(val) and sorted(train + val) == list(range(20))
    assert split_episodes(20, 0.1, seed=3) == (train, val)


def test_bad_dataset_paths_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no such file or directory"):
        load_training_data(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="not a dataset"):
        load_training_data(tmp_path / "empty")


def test_inspect_prints_counts_and_writes_pngs(dataset: Path, tmp_path: Path, capsys) -> None:
    from sim2real.inspect_dataset import main

    main([str(dataset / "zarr"), "--episodes", "0,2", "-o", str(tmp_path / "inspect")])
    out = capsys.readouterr().out
    assert "3 episodes" in out and "success rate 100.0%" in out and "pick_place 1" in out
    assert (tmp_path / "inspect" / "factors.png").stat().st_size > 1000
    assert (tmp_path / "inspect" / "frames.png").stat().st_size > 1000
