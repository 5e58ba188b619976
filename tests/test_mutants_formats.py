"""The Zarr, HDF5 and TFRecord formats beyond the round trip: writers used the way a run uses
them (flushes between episodes, appends, an empty shard), the readers' checks of damaged or
inconsistent files and the file and episode their errors name, and the options and layout
other tools read. Each test kills mutants that `test_datasets_formats.py` let live (docs/testing.md)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import zarr

from sim2real.datasets import (
    DatasetError,
    Episode,
    HDF5Dataset,
    ZarrDataset,
    ZarrEpisodeWriter,
    content_hash,
    create_writer,
    detect_format,
    open_dataset,
)
from sim2real.datasets.hdf5_format import HDF5EpisodeWriter
from sim2real.datasets.schema import CorruptDataError
from sim2real.datasets.synthetic import synthetic_episode
from sim2real.datasets.tfds_spec import tensor_feature
from sim2real.datasets.tfrecord_io import (
    TFRecordWriter,
    frame_record,
    iter_records,
    parse_example,
    read_record,
    record_offsets,
    serialize_example,
)


@pytest.fixture(scope="module")
def episodes() -> list[Episode]:
    return [synthetic_episode(i, num_steps=5 + i, image_size=(8, 8)) for i in range(3)]


def _hashes(dataset) -> list[str]:
    return [content_hash(e) for e in dataset]


def _write(format_name: str, path: Path, episodes: list[Episode], **options) -> Path:
    with create_writer(format_name, path, **options) as writer:
        for episode in episodes:
            writer.write(episode)
    return path


# ---------------------------------------------------------------------------------------------
# Zarr: the writer


def test_zarr_writer_counts_its_episodes_and_names_the_next_one(tmp_path, episodes):
    writer = ZarrEpisodeWriter(tmp_path / "e.zarr")
    for i, episode in enumerate(episodes):
        assert writer.num_episodes == i
        writer.write(episode)
    assert writer.num_episodes == 3
    bad = Episode(episodes[0].steps, dataclasses.replace(episodes[0].metadata, seed="x"))
    with pytest.raises(DatasetError, match=r"e\.zarr \(episode 3\): key 'metadata/seed'"):
        writer.write(bad)
    writer.close()
    assert ZarrEpisodeWriter(tmp_path / "e.zarr", mode="a").num_episodes == 3


def test_zarr_flushes_between_episodes_leave_every_episode_readable(tmp_path, episodes):
    # after a flush, later rows start inside a chunk already on disk: they go through zarr, not
    # the direct chunk writer, and the result must be the store an unflushed writer makes
    path = tmp_path / "e.zarr"
    writer = ZarrEpisodeWriter(path, image_chunk_steps=4, lowdim_chunk_steps=4)
    for episode in [*episodes, *episodes]:
        writer.write(episode)
        writer.flush()
        assert len(ZarrDataset(path)) == writer.num_episodes
    writer.close()
    assert _hashes(ZarrDataset(path)) == _hashes([*episodes, *episodes])
    once = _write("zarr", tmp_path / "once.zarr", [*episodes, *episodes], image_chunk_steps=4, lowdim_chunk_steps=4)
    reference = zarr.open_group(str(once), mode="r")
    flushed = zarr.open_group(str(path), mode="r")
    for name in ("data/img_front", "data/state", "meta/episode_ends", "meta/episode_json"):
        assert flushed[name].shape == reference[name].shape
        assert np.array_equal(flushed[name][:], reference[name][:]), name


def test_zarr_writer_closed_without_episodes_leaves_an_empty_store(tmp_path):
    path = tmp_path / "e.zarr"
    ZarrEpisodeWriter(path).close()
    dataset = ZarrDataset(path)
    assert len(dataset) == 0 and list(dataset) == []


def test_zarr_writer_defaults_and_compression_options_reach_the_store(tmp_path, episodes):
    path = _write("zarr", tmp_path / "e.zarr", episodes[:1])
    root = zarr.open_group(str(path), mode="r")
    assert root["data/state"].chunks == (4096, 14)  # time-only chunks, Diffusion Policy's layout
    assert root["data/img_front"].chunks == (16, 8, 8, 3)
    assert root["data/img_front"].compressors[0].clevel == 5
    path = _write("zarr", tmp_path / "c.zarr", episodes[:1], clevel=9, cname="zstd", image_shuffle="bitshuffle")
    root = zarr.open_group(str(path), mode="r")
    for name in ("data/img_front", "data/state", "meta/episode_ends"):
        codec = root[name].compressors[0]
        assert (codec.cname.value, codec.clevel) == ("zstd", 9), name
    assert root["data/img_front"].compressors[0].shuffle.value == "bitshuffle"
    assert root["data/state"].compressors[0].shuffle.value == "shuffle"
    assert _hashes(ZarrDataset(path)) == _hashes(episodes[:1])


# ---------------------------------------------------------------------------------------------
# Zarr: the reader's checks


def _replace_array(path: Path, name: str, values: np.ndarray) -> None:
    group_name, key = name.split("/")
    group = zarr.open_group(str(path), mode="a")[group_name]
    del group[key]
    group.create_array(key, data=values)


@pytest.mark.parametrize("ends", [[5, 5, 18], [5, 4, 18], [0, 11, 18]])
def test_zarr_episode_ends_must_increase_strictly_from_above_zero(tmp_path, episodes, ends):
    path = _write("zarr", tmp_path / "e.zarr", episodes)
    _replace_array(path, "meta/episode_ends", np.array(ends, np.int64))
    with pytest.raises(DatasetError) as info:
        ZarrDataset(path)
    assert str(info.value) == f"{path}: key 'meta/episode_ends' is not strictly increasing from > 0"


def test_zarr_episode_ends_of_another_dtype_are_named(tmp_path, episodes):
    path = _write("zarr", tmp_path / "e.zarr", episodes)
    _replace_array(path, "meta/episode_ends", np.array([5, 11, 18], np.int32))
    with pytest.raises(DatasetError) as info:
        ZarrDataset(path)
    assert str(info.value) == f"{path}: key 'meta/episode_ends' is int32 (3,), expected int64 (E,)"


def test_zarr_data_shorter_than_the_last_episode_end_is_named(tmp_path, episodes):
    path = _write("zarr", tmp_path / "e.zarr", episodes)
    state = zarr.open_group(str(path), mode="a")["data/state"]
    state.resize((12, 14))  # the last episode ends at 18; the second at 11
    with pytest.raises(DatasetError) as info:
        ZarrDataset(path)
    assert str(info.value) == f"{path}: key 'data/state' has 12 steps, episode_ends needs 18"


def test_a_zarr_group_without_episode_ends_is_not_a_replay_buffer(tmp_path):
    path = tmp_path / "plain.zarr"
    zarr.open_group(str(path), mode="w", zarr_format=3)
    assert not ZarrDataset.detect(path)
    with pytest.raises(DatasetError, match="not a Zarr replay buffer"):
        ZarrDataset(path)
    with pytest.raises(DatasetError, match="not a dataset of any known format"):
        open_dataset(path)


def test_zarr_unreadable_metadata_names_the_store(tmp_path, episodes):
    path = _write("zarr", tmp_path / "e.zarr", episodes)
    (path / "data" / "zarr.json").write_text("{ not json")
    with pytest.raises(CorruptDataError) as info:
        ZarrDataset(path)
    assert str(info.value).startswith(f"{path}: cannot be read (")


def test_zarr_bad_episode_records_name_the_store_and_episode(tmp_path, episodes):
    path = _write("zarr", tmp_path / "e.zarr", episodes)
    dataset = ZarrDataset(path)
    raw = dataset.meta["episode_json"][:].tobytes()
    start = int(dataset.meta["episode_json_ends"][0])
    record = json.loads(raw[start : int(dataset.meta["episode_json_ends"][1])])
    del record["metadata"]["seed"]
    record["metadata"]["colour"] = "red"
    second = json.dumps(record).encode()
    third = raw[int(dataset.meta["episode_json_ends"][1]) :]
    new = raw[:start] + second + third
    _replace_array(path, "meta/episode_json", np.frombuffer(new, np.uint8))
    _replace_array(path, "meta/episode_json_ends", np.cumsum([start, len(second), len(third)]).astype(np.int64))
    dataset = ZarrDataset(path)
    message = f"{path} (episode 1): episode metadata has missing keys ['seed'] and unknown keys ['colour']"
    for read in (dataset.episode, dataset.metadata):
        with pytest.raises(DatasetError) as info:
            read(1)
        assert str(info.value) == message
    _replace_array(path, "meta/episode_json", np.frombuffer(raw[:start] + b"{not json" + raw[start + 9 :], np.uint8))
    _replace_array(path, "meta/episode_json_ends", np.cumsum([start, len(second), len(third)]).astype(np.int64))
    with pytest.raises(DatasetError, match=rf"^{path} \(episode 1\): key 'meta/episode_json' is not JSON"):
        ZarrDataset(path).metadata(1)


# ---------------------------------------------------------------------------------------------
# HDF5


def test_hdf5_append_mode_adds_demos_and_rewrites_totals_and_masks(tmp_path, episodes):
    path = _write("hdf5", tmp_path / "e.hdf5", episodes[:2])
    with HDF5EpisodeWriter(path, mode="a") as writer:
        assert writer.num_episodes == 2
        writer.write(episodes[2])
        assert writer.num_episodes == 3
    with h5py.File(path, "r") as file:
        assert sorted(file["data"]) == ["demo_0", "demo_1", "demo_2"]
        assert file["data"].attrs["total"] == sum(e.num_steps for e in episodes)
        successes = sorted(bytes(n).decode() for n in file["mask/success"][()])
        assert successes == [f"demo_{i}" for i, e in enumerate(episodes) if e.metadata.success]
    with HDF5Dataset(path) as dataset:
        assert _hashes(dataset) == _hashes(episodes)
    with HDF5Dataset(path, filter_key="success") as dataset:
        assert _hashes(dataset) == _hashes([e for e in episodes if e.metadata.success])


def test_hdf5_file_attributes_and_env_args_for_robomimic(tmp_path, episodes):
    path = _write("hdf5", tmp_path / "e.hdf5", episodes)
    with h5py.File(path, "r") as file:
        assert dict(file.attrs) == {"format": "sim2real.robomimic", "format_version": 1}
    meta = episodes[0].metadata
    with HDF5Dataset(path) as dataset:
        assert dataset.env_args == {
            "env_name": meta.task,
            "type": 2,
            "env_kwargs": {
                "backend": meta.backend,
                "robot": meta.robot,
                "control_hz": meta.control_hz,
                "cameras": ["front", "wrist"],
                "image_shapes": {"front": [8, 8, 3], "wrist": [8, 8, 3]},
                "generator_version": meta.generator_version,
            },
        }


def test_hdf5_images_are_contiguous_unless_compressed(tmp_path, episodes):
    plain = _write("hdf5", tmp_path / "plain.hdf5", episodes)
    packed = _write("hdf5", tmp_path / "gzip.hdf5", episodes, image_compression="gzip", image_chunk_steps=6)
    with h5py.File(plain, "r") as file:
        assert file["data/demo_0/obs/front_image"].chunks is None
    with h5py.File(packed, "r") as file:
        assert file["data/demo_0/obs/front_image"].chunks == (5, 8, 8, 3)  # shorter than a chunk
        assert file["data/demo_2/obs/wrist_image"].chunks == (6, 8, 8, 3)
        assert file["data/demo_2/obs/wrist_image"].compression == "gzip"
    with HDF5Dataset(packed) as dataset:
        assert _hashes(dataset) == _hashes(episodes)


@pytest.mark.parametrize("key", ["actions", "states", "rewards", "discount", "is_last", "obs"])
def test_hdf5_a_missing_dataset_names_file_episode_and_key(tmp_path, episodes, key):
    path = _write("hdf5", tmp_path / "e.hdf5", episodes)
    with h5py.File(path, "a") as file:
        del file[f"data/demo_1/{key}"]
    with HDF5Dataset(path) as dataset, pytest.raises(DatasetError) as info:
        dataset.episode(1)
    name = key.split("/")[-1]
    assert str(info.value) == f"{path} (episode 1, data/demo_1): key {name!r} is missing"


@pytest.mark.parametrize("attr", ["language_instruction", "extras_json", "seed", "num_samples"])
def test_hdf5_a_missing_attribute_names_file_episode_and_attribute(tmp_path, episodes, attr):
    path = _write("hdf5", tmp_path / "e.hdf5", episodes)
    with h5py.File(path, "a") as file:
        del file["data/demo_2"].attrs[attr]
    with HDF5Dataset(path) as dataset, pytest.raises(DatasetError) as info:
        dataset.episode(2)
    assert str(info.value) == f"{path} (episode 2, data/demo_2): attribute {attr!r} is missing"


def test_hdf5_a_wrong_step_count_is_named(tmp_path, episodes):
    path = _write("hdf5", tmp_path / "e.hdf5", episodes)
    with h5py.File(path, "a") as file:
        file["data/demo_0"].attrs["num_samples"] = 9
    with HDF5Dataset(path) as dataset, pytest.raises(DatasetError) as info:
        dataset.episode(0)
    assert str(info.value) == f"{path} (episode 0, data/demo_0): attribute 'num_samples' is 9 but the demo has 5 steps"


def test_hdf5_library_errors_name_the_file(tmp_path, episodes):
    path = _write("hdf5", tmp_path / "e.hdf5", episodes)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])  # the HDF5 signature survives, the rest does not
    with pytest.raises(CorruptDataError) as info:
        HDF5Dataset(path)
    assert str(info.value).startswith(f"{path}: cannot be read (")


def test_an_hdf5_file_without_a_data_group_is_not_a_dataset(tmp_path):
    path = tmp_path / "other.hdf5"
    with h5py.File(path, "w") as file:
        file.create_dataset("x", data=[1, 2, 3])
    assert not HDF5Dataset.detect(path)
    with pytest.raises(DatasetError, match="not a dataset of any known format"):
        detect_format(path)
    with pytest.raises(DatasetError, match="not an HDF5 file with a data/ group"):
        HDF5Dataset(path)


# ---------------------------------------------------------------------------------------------
# TFRecord framing and tf.train.Example, against bytes TensorFlow wrote

#: tf.io.TFRecordWriter's file with the records b"sim2real" and b"" (TensorFlow 2, once)
TF_RECORDS = bytes.fromhex(
    "0800000000000000ff86240f73696d327265616c65ea2504" "000000000000000029039807d8ea82a2"
)  # fmt: skip
#: tf.train.Example(a: int64 [3, -1], b: float [1.5], c: bytes [b"x"]).SerializeToString(deterministic=True)
TF_EXAMPLE = bytes.fromhex(
    "0a310a140a0161120f1a0d0a0b03ffffffffffffffffff010a0d0a0162120812060a040000c03f0a0a0a016312050a030a0178"
)


def test_tfrecord_framing_is_tensorflows(tmp_path):
    assert frame_record(b"sim2real") + frame_record(b"") == TF_RECORDS
    path = tmp_path / "tf.tfrecord"
    path.write_bytes(TF_RECORDS)
    assert list(iter_records(path)) == [b"sim2real", b""]
    assert record_offsets(path) == [0, 24]
    assert read_record(path, 24, 1) == b""
    writer = TFRecordWriter(tmp_path / "ours.tfrecord")
    assert writer.write(b"sim2real") == 24 and writer.write(b"") == 16
    writer.close()
    assert (tmp_path / "ours.tfrecord").read_bytes() == TF_RECORDS


def test_tf_example_bytes_are_tensorflows_whatever_the_key_order():
    features = {"c": ("bytes", [b"x"]), "b": ("float", [1.5]), "a": ("int64", [3, -1])}
    assert serialize_example(features) == TF_EXAMPLE
    assert serialize_example(dict(reversed(features.items()))) == TF_EXAMPLE
    parsed = parse_example(TF_EXAMPLE, "test")
    assert sorted(parsed) == ["a", "b", "c"]
    assert parsed["a"][0] == "int64" and parsed["a"][1].dtype == np.int64 and parsed["a"][1].tolist() == [3, -1]
    assert parsed["b"][0] == "float" and parsed["b"][1].dtype == np.float32 and parsed["b"][1].tolist() == [1.5]
    assert parsed["c"] == ("bytes", [b"x"])


def test_an_unknown_feature_kind_is_named():
    with pytest.raises(ValueError, match=r"^unknown feature kind 'text' for key 'x'$"):
        serialize_example({"x": ("text", ["a"])})


def test_a_damaged_record_read_by_offset_names_file_record_and_episode(tmp_path):
    path = tmp_path / "tf.tfrecord"
    damaged = bytearray(TF_RECORDS)
    damaged[24 + 8] ^= 0xFF  # the length CRC of record 1
    path.write_bytes(bytes(damaged))
    with pytest.raises(CorruptDataError) as info:
        read_record(path, 24, 1, first_episode=10)
    assert str(info.value) == f"{path}: record 1 (episode 11) has a bad length CRC at byte 24 (corrupted file)"


def test_hdf5_a_damaged_chunk_names_file_and_episode(tmp_path, episodes):
    path = _write("hdf5", tmp_path / "e.hdf5", episodes, image_compression="gzip")
    with h5py.File(path, "r") as file:
        chunk = file["data/demo_1/obs/front_image"].id.get_chunk_info(0)
    data = bytearray(path.read_bytes())
    data[chunk.byte_offset : chunk.byte_offset + 16] = bytes(16)  # a gzip stream that no longer inflates
    path.write_bytes(bytes(data))
    with HDF5Dataset(path) as dataset:
        assert content_hash(dataset.episode(0)) == content_hash(episodes[0])
        with pytest.raises(CorruptDataError) as info:
            dataset.episode(1)
    assert str(info.value).startswith(f"{path} (episode 1, data/demo_1): cannot be read (")


# ---------------------------------------------------------------------------------------------
# RLDS: naming and features.json


def test_rlds_of_another_name_without_file_format_reads_back_as_ours(tmp_path, episodes):
    _write("rlds", tmp_path, episodes, name="pick_cube", episodes_per_shard=2)
    info = tmp_path / "pick_cube" / "1.0.0" / "dataset_info.json"
    record = json.loads(info.read_text())
    assert record.pop("fileFormat") == "tfrecord"  # older TFDS versions leave it out: TFRecord
    info.write_text(json.dumps(record))
    with open_dataset(tmp_path, "rlds") as dataset:
        assert dataset.mapping.name == "sim2real"  # found by its metadata, whatever the dataset's name
        assert _hashes(dataset) == [content_hash(e) for e in episodes]


def test_rlds_a_feature_of_the_wrong_kind_names_features_json(tmp_path, episodes):
    _write("rlds", tmp_path, episodes)
    path = tmp_path / "sim2real_dataset" / "1.0.0" / "features.json"
    spec = json.loads(path.read_text())
    steps = spec["featuresDict"]["features"]["steps"]["sequence"]["feature"]["featuresDict"]["features"]
    steps["language_instruction"] = tensor_feature((), "float32")
    path.write_text(json.dumps(spec))
    with pytest.raises(DatasetError) as info:
        open_dataset(tmp_path, "rlds")
    message = str(info.value)
    assert message.startswith(f"{path}: key 'steps/language_instruction' is a ")
    assert message.endswith(" feature, expected text")


def test_rlds_a_damaged_record_in_a_later_shard_names_its_episode(tmp_path, episodes):
    _write("rlds", tmp_path, episodes, episodes_per_shard=2)
    shard = tmp_path / "sim2real_dataset" / "1.0.0" / "sim2real_dataset-train.tfrecord-00001-of-00002"
    damaged = bytearray(shard.read_bytes())
    damaged[8] ^= 0xFF  # the length CRC of the shard's first record: dataset episode 2
    shard.write_bytes(bytes(damaged))
    with open_dataset(tmp_path, "rlds") as dataset:
        assert content_hash(dataset.episode(0)) == content_hash(episodes[0])
        with pytest.raises(CorruptDataError) as info:
            dataset.episode(2)
    assert str(info.value).startswith(f"{shard}: record 0 (episode 2) has a bad length CRC")
