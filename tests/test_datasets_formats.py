"""Canonical episode schema and the Zarr / RLDS / HDF5 formats: round trips, validation, corruption, real data."""

from __future__ import annotations

import dataclasses
import json
import struct
from pathlib import Path

import numpy as np
import pytest
from conftest import run_tensorflow

from sim2real.datasets import (
    ACTION_NAMES,
    DATASET_READERS,
    DATASET_WRITERS,
    STATE_NAMES,
    DatasetError,
    Episode,
    HDF5Dataset,
    RLDSDataset,
    ZarrDataset,
    ZarrEpisodeWriter,
    content_hash,
    create_writer,
    detect_format,
    diff_episodes,
    open_dataset,
    validate_episode,
)
from sim2real.datasets.rlds_mapping import BRIDGE, GRIPPER_CONVENTIONS, SIM2REAL, RLDSMapping
from sim2real.datasets.synthetic import synthetic_episode
from sim2real.datasets.tfrecord_io import frame_record, parse_example, serialize_example
from sim2real.registry import UnknownNameError

REAL_REPLAY = Path(__file__).resolve().parents[1].parent / "shared" / "real_replay"
BRIDGE_DIR = REAL_REPLAY / "bridge_debug" / "bridge_dataset" / "1.0.0"
FORMATS = ("zarr", "rlds", "hdf5")
TARGETS = {"zarr": "episodes.zarr", "rlds": "rlds", "hdf5": "episodes.hdf5"}


@pytest.fixture(scope="module")
def episodes() -> list[Episode]:
    return [synthetic_episode(i, num_steps=5 + i, image_size=(32, 32)) for i in range(4)]


@pytest.fixture(scope="module")
def bridge_dir() -> Path:
    if not BRIDGE_DIR.is_dir():
        pytest.skip(f"real replay data not found at {BRIDGE_DIR}")
    return BRIDGE_DIR


def write_all(format_name: str, path: Path, episodes: list[Episode], **options) -> Path:
    with create_writer(format_name, path, **options) as writer:
        for episode in episodes:
            writer.write(episode)
    return path


def replace_steps(episode: Episode, **changes) -> Episode:
    return Episode(steps=dataclasses.replace(episode.steps, **changes), metadata=episode.metadata)


def rlds_version_dir(root: Path, name: str = "sim2real_dataset") -> Path:
    return root / name / "1.0.0"


def shard_paths(version_dir: Path, split: str = "train") -> list[Path]:
    return sorted(version_dir.glob(f"*-{split}.tfrecord-*"))


def record_spans(path: Path) -> list[tuple[int, int]]:
    """(offset, data length) of every record of a TFRecord file."""
    data, spans, offset = path.read_bytes(), [], 0
    while offset < len(data):
        (length,) = struct.unpack("<Q", data[offset : offset + 8])
        spans.append((offset, length))
        offset += 16 + length
    return spans


# ---------------------------------------------------------------------------------------------
# schema


def test_valid_episode_and_content_hash(episodes):
    episode = episodes[0]
    assert validate_episode(episode, "synthetic") == episode.num_steps == 5
    assert content_hash(episode) == content_hash(synthetic_episode(0, num_steps=5, image_size=(32, 32)))
    images = {k: v.copy() for k, v in episode.steps.images.items()}
    images["front"][2, 3, 4, 0] ^= 1
    changed = replace_steps(episode, images=images)
    assert content_hash(changed) != content_hash(episode)
    assert diff_episodes(episode, changed) == ["images/front: values differ at 1 positions"]
    other_meta = Episode(episode.steps, dataclasses.replace(episode.metadata, success=not episode.metadata.success))
    assert content_hash(other_meta) != content_hash(episode)


def test_state_and_action_layouts_are_the_simulators():
    from sim2real.contracts import actions
    from sim2real.sim import control

    assert STATE_NAMES is actions.STATE_NAMES and len(STATE_NAMES) == actions.STATE_DIM == 14
    assert ACTION_NAMES is actions.ACTION_NAMES is control.ACTION_NAMES and actions.ACTION_DIM == 7


def _bad_variants(ep: Episode) -> dict[str, tuple[Episode, tuple[str, ...]]]:
    steps, t = ep.steps, ep.num_steps
    first_late = np.zeros(t, bool)
    first_late[1] = True
    no_last = np.zeros(t, bool)
    float_images = {**steps.images, "front": steps.images["front"].astype(np.float32)}
    rgba = {**steps.images, "wrist": np.zeros((t, 32, 32, 4), np.uint8)}
    nan_action = steps.action.copy()
    nan_action[2, 0] = np.nan
    return {
        "dtype": (replace_steps(ep, action=steps.action.astype(np.float64)), ("'action'", "float64", "float32")),
        "shape": (replace_steps(ep, state=steps.state[:, :13]), ("'state'", "(5, 13)", "(T, 14)")),
        "length": (replace_steps(ep, reward=steps.reward[:-1]), ("'reward'", "T=4", "T=5")),
        "missing": (replace_steps(ep, images={}), ("'images'", "non-empty")),
        "image_dtype": (replace_steps(ep, images=float_images), ("'images/front'", "float32", "uint8 (T, H, W, 3)")),
        "image_channels": (replace_steps(ep, images=rgba), ("'images/wrist'", "(5, 32, 32, 4)")),
        "is_first": (replace_steps(ep, is_first=first_late), ("'is_first'", "[1]", "exactly [0]")),
        "is_last": (replace_steps(ep, is_last=no_last, is_terminal=no_last), ("'is_last'", "exactly [4]")),
        "terminal": (replace_steps(ep, is_terminal=~no_last), ("'is_terminal'",)),
        "nan": (replace_steps(ep, action=nan_action), ("'action'", "non-finite", "step 2")),
        "instruction": (replace_steps(ep, language_instruction=b"pick"), ("'language_instruction'", "bytes")),
        "seed": (Episode(steps, dataclasses.replace(ep.metadata, seed="7")), ("'metadata/seed'", "str")),
        "extras": (Episode(steps, dataclasses.replace(ep.metadata, extras={"x": [1]})), ("'metadata/extras/x'",)),
    }


@pytest.mark.parametrize(
    "case", ["dtype", "shape", "length", "missing", "image_dtype", "image_channels", "is_first", "is_last",
             "terminal", "nan", "instruction", "seed", "extras"],
)  # fmt: skip
def test_validation_errors_name_source_and_key(episodes, case):
    bad, fragments = _bad_variants(episodes[0])[case]
    with pytest.raises(DatasetError) as info:
        validate_episode(bad, "run.zarr (episode 0)")
    message = str(info.value)
    assert message.startswith("run.zarr (episode 0): ")
    for fragment in fragments:
        assert fragment in message, message


def test_is_last_can_be_optional_for_cut_episodes(episodes):
    ep = episodes[0]
    cut = np.zeros(ep.num_steps, bool)
    cut_episode = replace_steps(ep, is_last=cut, is_terminal=cut)
    assert validate_episode(cut_episode, "cut", require_is_last=False) == ep.num_steps
    early = cut.copy()
    early[1] = True
    with pytest.raises(DatasetError, match="'is_last'"):
        validate_episode(replace_steps(ep, is_last=early, is_terminal=cut), "cut", require_is_last=False)


# ---------------------------------------------------------------------------------------------
# round trips and the registry


@pytest.mark.parametrize("format_name", FORMATS)
def test_round_trip_is_byte_identical(tmp_path, episodes, format_name):
    path = write_all(format_name, tmp_path / TARGETS[format_name], episodes)
    assert detect_format(path) == format_name
    with open_dataset(path) as dataset:
        assert len(dataset) == len(episodes)
        read = list(dataset)
        assert [content_hash(e) for e in read] == [content_hash(e) for e in episodes]
        assert content_hash(dataset.episode(2)) == content_hash(episodes[2])
        assert content_hash(dataset.episode(-1)) == content_hash(episodes[-1])
        with pytest.raises(IndexError, match="out of range"):
            dataset.episode(len(episodes))


@pytest.mark.parametrize("format_name", FORMATS)
def test_writers_refuse_inconsistent_cameras(tmp_path, episodes, format_name):
    other = synthetic_episode(9, num_steps=6, image_size=(16, 16))
    writer = create_writer(format_name, tmp_path / TARGETS[format_name])
    writer.write(episodes[0])
    if format_name != "hdf5":  # robomimic demos are independent; the other formats share arrays/features
        with pytest.raises(DatasetError, match="frame shapes"):
            writer.write(other)
    with pytest.raises(DatasetError, match="'state'"):
        writer.write(replace_steps(episodes[1], state=episodes[1].steps.state.astype(np.float64)))
    writer.close()


def test_registry_lists_formats(tmp_path):
    from sim2real.datasets.registry import load_builtin_formats

    load_builtin_formats()
    assert DATASET_WRITERS.names() == ["hdf5", "lerobot", "rlds", "zarr"]
    assert DATASET_READERS.names() == ["hdf5", "lerobot", "rlds", "sharded", "zarr"]  # sharded: a view over shards
    with pytest.raises(UnknownNameError, match="known dataset writers: hdf5, lerobot, rlds, zarr"):
        create_writer("parquet", tmp_path / "x")


def test_open_dataset_rejects_missing_and_non_datasets(tmp_path):
    with pytest.raises(DatasetError, match="no such file or directory"):
        open_dataset(tmp_path / "absent.zarr")
    (tmp_path / "notes.txt").write_text("hello")
    for path in (tmp_path, tmp_path / "notes.txt"):
        with pytest.raises(DatasetError, match="not a dataset of any known format"):
            open_dataset(path)
    with pytest.raises(DatasetError, match="not an RLDS dataset"):
        RLDSDataset(tmp_path)
    with pytest.raises(DatasetError, match="not a Zarr replay buffer"):
        ZarrDataset(tmp_path)
    with pytest.raises(DatasetError, match="not an HDF5 file"):
        HDF5Dataset(tmp_path / "notes.txt")


# ---------------------------------------------------------------------------------------------
# Zarr


def test_zarr_layout_chunks_and_metadata(tmp_path, episodes):
    import zarr

    path = write_all("zarr", tmp_path / "e.zarr", episodes)
    root = zarr.open_group(str(path), mode="r")
    ends = root["meta/episode_ends"][:]
    assert ends.dtype == np.int64
    assert ends.tolist() == np.cumsum([e.num_steps for e in episodes]).tolist()
    image = root["data/img_front"]
    assert image.shape == (int(ends[-1]), 32, 32, 3)
    assert image.chunks == (16, 32, 32, 3)  # time only: 16 frames per chunk
    assert type(image.compressors[0]).__name__ == "BloscCodec"
    assert root["data/state"].chunks[1:] == (14,)
    assert root["meta/success"][:].tolist() == [e.metadata.success for e in episodes]
    dataset = ZarrDataset(path)
    part = dataset.episode_slice(1)
    assert np.array_equal(dataset.data["action"][part], episodes[1].steps.action)
    assert dataset.metadata(3) == episodes[3].metadata
    assert dataset.language_instruction(3) == episodes[3].steps.language_instruction


def test_zarr_chunks_written_directly_are_the_bytes_zarr_writes(tmp_path, episodes):
    import zarr

    from sim2real.datasets.zarr_format import _DirectChunkWriter

    path = tmp_path / "e.zarr"
    writer = ZarrEpisodeWriter(path, lowdim_chunk_steps=8)  # several whole low-dim chunks too
    for episode in episodes:
        writer.write(episode)
    writer.close()
    ours = zarr.open_group(str(path), mode="r")
    assert _DirectChunkWriter.for_array(ours["data/img_front"]) is not None  # the fast path was taken
    reference = zarr.open_group(str(tmp_path / "reference.zarr"), mode="w", zarr_format=3)
    compared = 0
    for name in ("data/img_front", "data/state", "data/action", "data/is_first"):
        array = ours[name]
        copy = reference.create_array(name.replace("/", "_"), shape=array.shape, chunks=array.chunks,
                                      dtype=array.dtype, compressors=array.compressors, fill_value=0,
                                      chunk_key_encoding={"name": "default", "separator": "."})  # fmt: skip
        copy[:] = array[:]
        for i in range(array.shape[0] // array.chunks[0]):  # whole chunks
            key = "c." + ".".join(["0"] * array.ndim).replace("0", str(i), 1)
            ours_bytes = (path / name / key).read_bytes()
            assert ours_bytes == (tmp_path / "reference.zarr" / name.replace("/", "_") / key).read_bytes(), (name, i)
            compared += 1
    assert compared >= 8


def test_zarr_overwrite_mode_replaces_the_store_and_a_file_path_is_refused(tmp_path, episodes):
    path = write_all("zarr", tmp_path / "e.zarr", episodes)
    write_all("zarr", path, episodes[:2], mode="w")
    reopened = ZarrDataset(path)
    assert len(reopened) == 2
    assert reopened.data["img_front"].shape[0] == reopened.episode_ends[-1]  # no rows left from the first store
    (tmp_path / "notes.txt").write_text("not a store")
    with pytest.raises(DatasetError, match=r"notes\.txt: is a file"):
        ZarrEpisodeWriter(tmp_path / "notes.txt", mode="a")


def test_zarr_store_stays_writable_by_zarr_itself(tmp_path, episodes):
    import zarr

    path = write_all("zarr", tmp_path / "e.zarr", episodes[:2])
    image = zarr.open_group(str(path), mode="a")["data/img_front"]
    total = image.shape[0]
    image.resize((total + 1, *image.shape[1:]))
    image[total] = np.full(image.shape[1:], 7, np.uint8)
    assert np.array_equal(image[:total], ZarrDataset(path).data["img_front"][:total])
    assert (image[total] == 7).all()


def test_zarr_append_resume_and_crash_recovery(tmp_path, episodes):
    path = write_all("zarr", tmp_path / "e.zarr", episodes[:2])
    with pytest.raises(DatasetError, match="already holds data"):
        ZarrEpisodeWriter(path)
    # a crash after writing data arrays but before meta/episode_ends: extra steps are ignored, then cut
    import zarr

    state = zarr.open_group(str(path), mode="a")["data/state"]
    state.resize((state.shape[0] + 3, 14))
    assert len(ZarrDataset(path)) == 2
    write_all("zarr", path, episodes[2:], mode="a")
    assert [content_hash(e) for e in ZarrDataset(path)] == [content_hash(e) for e in episodes]


def test_zarr_missing_key_is_named(tmp_path, episodes):
    import shutil

    path = write_all("zarr", tmp_path / "e.zarr", episodes[:1])
    shutil.rmtree(path / "data" / "reward")
    with pytest.raises(DatasetError, match="key 'data/reward' is missing"):
        ZarrDataset(path)


def test_zarr_wrong_dtype_is_named(tmp_path, episodes):
    import zarr

    path = write_all("zarr", tmp_path / "e.zarr", episodes[:1])
    data = zarr.open_group(str(path), mode="a")["data"]
    action = data["action"][:]
    del data["action"]
    data.create_array("action", data=action.astype(np.float64))
    with pytest.raises(DatasetError, match="key 'data/action' is float64"):
        ZarrDataset(path)


# ---------------------------------------------------------------------------------------------
# RLDS


def test_rlds_shards_and_dataset_info(tmp_path, episodes):
    extra = synthetic_episode(4, num_steps=7, image_size=(32, 32))
    write_all("rlds", tmp_path, [*episodes, extra], episodes_per_shard=2)
    version_dir = rlds_version_dir(tmp_path)
    shards = shard_paths(version_dir)
    assert [p.name for p in shards] == [f"sim2real_dataset-train.tfrecord-0000{i}-of-00003" for i in range(3)]
    info = json.loads((version_dir / "dataset_info.json").read_text())
    (split,) = info["splits"]
    assert split["shardLengths"] == ["2", "2", "1"]
    assert split["filepathTemplate"] == "{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}"
    assert int(split["numBytes"]) == sum(length for p in shards for _, length in record_spans(p))
    assert not list(version_dir.glob(".*incomplete"))


def test_rlds_example_layout(tmp_path, episodes):
    write_all("rlds", tmp_path, episodes[:1])
    (data,) = [bytes(b) for b in _records(shard_paths(rlds_version_dir(tmp_path))[0])]
    features = parse_example(data, "test")
    t = episodes[0].num_steps
    assert features["steps/action"][0] == "float" and features["steps/action"][1].shape == (t * 7,)
    assert features["steps/observation/state"][1].shape == (t * 14,)
    assert features["steps/is_first"] == ("int64", features["steps/is_first"][1])
    assert features["steps/observation/image"][1][0].startswith(b"\x89PNG")
    assert len(features["steps/observation/wrist_image"][1]) == t
    assert features["steps/language_instruction"][1] == [episodes[0].steps.language_instruction.encode()] * t
    assert features["episode_metadata/scene_spec"][1] == [episodes[0].metadata.scene_spec_json.encode()]


def _records(path: Path) -> list[bytes]:
    raw = path.read_bytes()
    return [raw[offset + 12 : offset + 12 + length] for offset, length in record_spans(path)]


def test_rlds_features_json_follows_tfds(tmp_path, episodes, bridge_dir):
    write_all("rlds", tmp_path, episodes[:1])
    ours = json.loads((rlds_version_dir(tmp_path) / "features.json").read_text())
    theirs = json.loads((bridge_dir / "features.json").read_text())

    def leaves(node, out):
        for key in ("featuresDict", "sequence"):
            if key in node:
                children = node[key]["features"].values() if key == "featuresDict" else [node[key]["feature"]]
                for child in children:
                    leaves(child, out)
                return out
        body_key = next(k for k in ("tensor", "image", "text") if k in node)
        out[node["pythonClassName"]] = sorted(node[body_key])
        return out

    assert set(leaves(ours, {})) == set(leaves(theirs, {}))
    assert leaves(ours, {}) == leaves(theirs, {})  # same fields per feature class
    steps = ours["featuresDict"]["features"]["steps"]
    assert steps["sequence"]["length"] == "-1"
    image = steps["sequence"]["feature"]["featuresDict"]["features"]["observation"]["featuresDict"]["features"]["image"]
    assert image["image"] == {"shape": {"dimensions": ["32", "32", "3"]}, "dtype": "uint8", "encodingFormat": "png"}


def test_rlds_jpeg_option(tmp_path, episodes):
    write_all("rlds", tmp_path, episodes[:2], image_format="jpeg", jpeg_quality=95)
    features = (rlds_version_dir(tmp_path) / "features.json").read_text()
    assert '"encodingFormat": "jpeg"' in features
    for original, read in zip(episodes[:2], RLDSDataset(tmp_path), strict=True):
        error = np.abs(read.steps.images["front"].astype(int) - original.steps.images["front"]).mean()
        assert error < 8.0  # lossy, but close (noise in the frames is sigma 4)
        assert np.array_equal(read.steps.action, original.steps.action)
        assert read.metadata == original.metadata


def test_rlds_two_splits(tmp_path, episodes):
    write_all("rlds", tmp_path, episodes[:3])
    write_all("rlds", tmp_path, episodes[3:], split="val")
    info = json.loads((rlds_version_dir(tmp_path) / "dataset_info.json").read_text())
    assert [s["name"] for s in info["splits"]] == ["train", "val"]
    assert len(RLDSDataset(tmp_path, split="train")) == 3
    assert content_hash(RLDSDataset(tmp_path / "sim2real_dataset", split="val").episode(0)) == content_hash(episodes[3])
    with pytest.raises(DatasetError, match="already has shards"):
        create_writer("rlds", tmp_path, split="val")
    with pytest.raises(DatasetError, match="no split 'test'; splits: train, val"):
        RLDSDataset(tmp_path, split="test")


def _corrupt(path: Path, offset: int) -> None:
    raw = bytearray(path.read_bytes())
    raw[offset] ^= 0xFF
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize("damage", ["data_crc", "length_crc", "truncated"])
def test_rlds_corrupted_shard_is_detected(tmp_path, episodes, damage):
    write_all("rlds", tmp_path, episodes[:3])
    shard = shard_paths(rlds_version_dir(tmp_path))[0]
    spans = record_spans(shard)
    offset, length = spans[1]
    if damage == "data_crc":
        _corrupt(shard, offset + 12 + length // 2)
        expected = r"record 1 \(episode 1\) has a bad data CRC"
    elif damage == "length_crc":
        _corrupt(shard, offset + 2)
        expected = r"record 1 \(episode 1\) has a bad length CRC"
    else:
        shard.write_bytes(shard.read_bytes()[: spans[2][0] + 100])
        expected = r"record 2 \(episode 2\) is truncated"
    bad_episode = 2 if damage == "truncated" else 1
    dataset = RLDSDataset(tmp_path)
    with pytest.raises(DatasetError, match=expected) as info:
        list(dataset)
    assert str(info.value).startswith(f"{shard}: ")
    with pytest.raises(DatasetError, match=expected):
        RLDSDataset(tmp_path).episode(bad_episode)
    if damage == "data_crc":  # random access to an intact record still works
        assert content_hash(RLDSDataset(tmp_path).episode(0)) == content_hash(episodes[0])


def test_rlds_errors_count_episodes_across_shards(tmp_path, episodes):
    write_all("rlds", tmp_path, episodes, episodes_per_shard=2)
    second = shard_paths(rlds_version_dir(tmp_path))[1]
    offset, length = record_spans(second)[1]
    _corrupt(second, offset + 12 + length - 1)
    dataset = RLDSDataset(tmp_path)
    assert content_hash(dataset.episode(2)) == content_hash(episodes[2])
    with pytest.raises(DatasetError, match=r"-00001-of-00002: record 1 \(episode 3\) has a bad data CRC"):
        dataset.episode(3)


def test_rlds_missing_key_wrong_shape_and_missing_shard(tmp_path, episodes):
    write_all("rlds", tmp_path, episodes[:1])
    version_dir = rlds_version_dir(tmp_path)
    shard = shard_paths(version_dir)[0]
    (data,) = _records(shard)
    features = parse_example(data, "test")
    del features["steps/reward"]
    shard.write_bytes(frame_record(serialize_example(features)))
    with pytest.raises(DatasetError, match=r"\(episode 0\): key 'steps/reward' is missing"):
        RLDSDataset(tmp_path).episode(0)

    tree = json.loads((version_dir / "features.json").read_text())
    obs = tree["featuresDict"]["features"]["steps"]["sequence"]["feature"]["featuresDict"]["features"]["observation"]
    obs["featuresDict"]["features"]["state"]["tensor"]["shape"]["dimensions"] = ["13"]
    (version_dir / "features.json").write_text(json.dumps(tree))
    with pytest.raises(DatasetError, match="'steps/observation/state' has 70 values, expected 65"):
        RLDSDataset(tmp_path).episode(0)

    shard.unlink()
    with pytest.raises(DatasetError, match=r"shard listed in dataset_info\.json is missing"):
        RLDSDataset(tmp_path)


# ---------------------------------------------------------------------------------------------
# HDF5


@pytest.mark.interop
def test_hdf5_layout_with_h5py(tmp_path, episodes):
    import h5py

    path = write_all("hdf5", tmp_path / "e.hdf5", episodes)
    with h5py.File(path, "r") as f:
        data = f["data"]
        assert data.attrs["total"] == sum(e.num_steps for e in episodes)
        env_args = json.loads(data.attrs["env_args"])
        assert env_args["env_name"] == "pick_place" and env_args["type"] == 2
        assert env_args["env_kwargs"]["cameras"] == ["front", "wrist"]
        demo = data["demo_1"]
        assert demo.attrs["num_samples"] == episodes[1].num_steps
        assert set(demo) >= {"obs", "actions", "rewards", "dones", "states"}
        obs = demo["obs"]
        assert set(obs) == {"front_image", "wrist_image", "state", "ee_pos", "ee_rpy", "gripper", "joint_pos"}
        assert obs["front_image"].shape == (6, 32, 32, 3) and obs["front_image"].dtype == np.uint8
        assert obs["state"].id == demo["states"].id  # a hard link, stored once
        assert np.array_equal(obs["ee_pos"][()], episodes[1].steps.state[:, :3])
        assert demo["actions"].dtype == np.float32 and demo["actions"].shape == (6, 7)
        assert demo["dones"][()].tolist() == episodes[1].steps.is_terminal.astype(int).tolist()
        train = sorted(bytes(n).decode() for n in f["mask/train"][()])
        assert train == [f"demo_{i}" for i, e in enumerate(episodes) if e.metadata.split == "train"]


def test_hdf5_filter_key(tmp_path, episodes):
    path = write_all("hdf5", tmp_path / "e.hdf5", episodes)
    with HDF5Dataset(path, filter_key="train") as dataset:
        expected = [e for e in episodes if e.metadata.split == "train"]
        assert [content_hash(e) for e in dataset] == [content_hash(e) for e in expected]
    with pytest.raises(DatasetError, match="no filter key 'mask/valid'"):
        HDF5Dataset(path, filter_key="valid")


# ---------------------------------------------------------------------------------------------
# gripper conventions of the RLDS mappings

#: convention -> its encoding of a fully open, a fully closed and a half-open gripper
GRIPPER_ENCODINGS = {
    "open_is_1": (1.0, 0.0, 0.5),
    "closed_is_1": (0.0, 1.0, 0.5),
    "signed_open_is_1": (1.0, -1.0, 0.0),
    "signed_closed_is_1": (-1.0, 1.0, 0.0),
}
CANONICAL_GRIPPER = (1.0, 0.0, 0.5)  # open, closed, half open: 1 = open


def test_every_gripper_convention_has_a_row_in_the_table():
    assert sorted(GRIPPER_ENCODINGS) == sorted(GRIPPER_CONVENTIONS)


@pytest.mark.parametrize("convention", sorted(GRIPPER_ENCODINGS))
def test_gripper_convention_maps_open_closed_and_half_onto_the_canonical_values(convention):
    foreign = np.array(GRIPPER_ENCODINGS[convention], np.float32)
    assert GRIPPER_CONVENTIONS[convention](foreign).tolist() == list(CANONICAL_GRIPPER)


@pytest.mark.parametrize("convention", sorted(GRIPPER_ENCODINGS))
def test_rlds_reader_converts_the_gripper_of_its_mapping_convention(tmp_path, convention):
    encoding = dict(zip(CANONICAL_GRIPPER, GRIPPER_ENCODINGS[convention], strict=True))
    episode = synthetic_episode(0, num_steps=6, image_size=(16, 16))
    canonical = np.array([1.0, 1.0, 0.5, 0.0, 0.0, 1.0], np.float32)
    action = episode.steps.action.copy()
    action[:, 6] = [encoding[float(g)] for g in canonical]
    write_all("rlds", tmp_path, [dataclasses.replace(episode, steps=dataclasses.replace(episode.steps, action=action))])
    mapping = dataclasses.replace(SIM2REAL, name=f"sim2real_{convention}", gripper=convention)
    read = RLDSDataset(tmp_path, mapping=mapping).episode(0).steps.action
    assert read[:, 6].tolist() == canonical.tolist()
    assert np.array_equal(read[:, :6], action[:, :6])


# ---------------------------------------------------------------------------------------------
# real BridgeData through the bridge mapping


def test_bridge_debug_reads_through_mapping(bridge_dir):
    dataset = open_dataset(bridge_dir)
    assert isinstance(dataset, RLDSDataset) and dataset.mapping is BRIDGE
    episodes = list(dataset)
    assert len(episodes) == 25
    assert {e.num_steps for e in episodes} == {10}
    first = episodes[0]
    shapes = {camera: frames.shape for camera, frames in first.steps.images.items()}
    assert shapes == {camera: (10, 64, 64, 3) for camera in ("front", "wrist", "side")}
    assert first.steps.action.shape == (10, 7) and first.steps.action.dtype == np.float32
    assert np.isnan(first.steps.state[:, 7:]).all() and np.isfinite(first.steps.state[:, :7]).all()
    assert len({e.steps.language_instruction for e in episodes}) == 4
    assert not any(e.steps.is_last.any() for e in episodes)  # cut at 10 steps
    assert all(e.metadata.control_hz == 5.0 and e.metadata.backend == "real" for e in episodes)
    val = RLDSDataset(bridge_dir.parent, split="val")
    assert sorted(map(_source, val)) == sorted(map(_source, episodes))


def _source(episode: Episode) -> tuple[str, int]:
    return episode.metadata.extras["source_file_path"], episode.metadata.extras["source_episode_id"]


def test_bridge_strict_mapping_refuses_cut_episodes(bridge_dir):
    strict = dataclasses.replace(BRIDGE, require_is_last=True)
    with pytest.raises(DatasetError, match=r"\(episode 0\): key 'is_last'"):
        RLDSDataset(bridge_dir, mapping=strict).episode(0)
    missing = RLDSMapping(name="broken", cameras={"front": "steps/observation/image_9"})
    with pytest.raises(DatasetError, match="needs key 'steps/observation/image_9', which is missing"):
        RLDSDataset(bridge_dir, mapping=missing)


def test_bridge_resized_and_converted_to_our_formats(tmp_path, bridge_dir):
    resized = dataclasses.replace(BRIDGE, image_size=(32, 48))
    episodes = [RLDSDataset(bridge_dir, mapping=resized).episode(i) for i in range(3)]
    assert episodes[0].steps.images["front"].shape == (10, 32, 48, 3)
    for format_name in FORMATS:
        path = tmp_path / TARGETS[format_name]
        with create_writer(format_name, path) as writer:
            for episode in episodes:
                writer.write(dataclasses.replace(episode, steps=_with_last(episode)))
        back = list(open_dataset(path))
        assert [content_hash(e) for e in back] == [content_hash(_with_last_episode(e)) for e in episodes]


def _with_last(episode: Episode):
    is_last = episode.steps.is_last.copy()
    is_last[-1] = True
    return dataclasses.replace(episode.steps, is_last=is_last)


def _with_last_episode(episode: Episode) -> Episode:
    return Episode(_with_last(episode), episode.metadata)


# ---------------------------------------------------------------------------------------------
# interop: TensorFlow Datasets loads what we write


_TFDS_DUMP = """
import sys, numpy as np, tensorflow_datasets as tfds
builder = tfds.builder_from_directory(sys.argv[1])
out = {"train_count": builder.info.splits["train"].num_examples, "val_count": builder.info.splits["val"].num_examples}
loaded = [*tfds.as_numpy(builder.as_dataset(split="train")), *tfds.as_numpy(builder.as_dataset(split="val"))]
for i, example in enumerate(loaded):
    steps = list(example["steps"])
    obs = [s["observation"] for s in steps]
    for key in ("image", "wrist_image", "state"):
        out[f"{i}/{key}"] = np.stack([o[key] for o in obs])
    for key in ("action", "reward", "discount", "is_first", "is_last", "is_terminal"):
        out[f"{i}/{key}"] = np.stack([s[key] for s in steps])
    out[f"{i}/instructions"] = np.array(sorted({s["language_instruction"].decode() for s in steps}))
    meta = example["episode_metadata"]
    out[f"{i}/episode_id"] = np.array(meta["episode_id"].decode())
    out[f"{i}/seed"] = np.array(int(meta["seed"]))
    out[f"{i}/success"] = np.array(bool(meta["success"]))
np.savez(sys.argv[-1], **out)
"""


@pytest.mark.interop
def test_tfds_loads_our_rlds_like_the_zarr_copy(tmp_path, episodes):
    pytest.importorskip("tensorflow_datasets")
    write_all("rlds", tmp_path / "rlds", episodes[:3], episodes_per_shard=2)
    write_all("rlds", tmp_path / "rlds", episodes[3:], split="val")
    zarr_copy = ZarrDataset(write_all("zarr", tmp_path / "e.zarr", episodes))
    loaded = run_tensorflow(_TFDS_DUMP, str(rlds_version_dir(tmp_path / "rlds")))
    assert int(loaded["train_count"]) == 3 and int(loaded["val_count"]) == 1
    for index in range(len(episodes)):
        reference = zarr_copy.episode(index)
        assert np.array_equal(loaded[f"{index}/image"], reference.steps.images["front"])
        assert np.array_equal(loaded[f"{index}/wrist_image"], reference.steps.images["wrist"])
        assert loaded[f"{index}/state"].tobytes() == reference.steps.state.tobytes()
        for key in ("action", "reward", "discount", "is_first", "is_last", "is_terminal"):
            assert loaded[f"{index}/{key}"].tobytes() == getattr(reference.steps, key).tobytes(), key
        assert list(loaded[f"{index}/instructions"]) == [reference.steps.language_instruction]
        assert str(loaded[f"{index}/episode_id"]) == reference.metadata.episode_id
        assert int(loaded[f"{index}/seed"]) == reference.metadata.seed
        assert bool(loaded[f"{index}/success"]) == reference.metadata.success


_BRIDGE_DUMP = """
import sys, numpy as np, tensorflow as tf, tensorflow_datasets as tfds
from sim2real.datasets import RLDSDataset
out = {}
loaded = tfds.as_numpy(tfds.builder_from_directory(sys.argv[1]).as_dataset(split="train"))
for i, example in enumerate(loaded):
    steps = list(example["steps"])
    out[f"{i}/action"] = np.stack([s["action"] for s in steps])
    out[f"{i}/state"] = np.stack([s["observation"]["state"] for s in steps])
    out[f"{i}/instruction"] = np.array(steps[0]["language_instruction"].decode())
    out[f"{i}/image_0"] = np.stack([s["observation"]["image_0"] for s in steps])
raw = RLDSDataset(sys.argv[1]).raw_example(0)["steps/observation/image_0"][1]
out["accurate_0"] = np.stack([tf.io.decode_jpeg(b, dct_method="INTEGER_ACCURATE").numpy() for b in raw])
np.savez(sys.argv[-1], **out)
"""


@pytest.mark.interop
def test_our_reader_matches_tfds_on_bridge(bridge_dir):
    pytest.importorskip("tensorflow_datasets")
    ours = list(RLDSDataset(bridge_dir))
    loaded = run_tensorflow(_BRIDGE_DUMP, str(bridge_dir))
    assert len({k.split("/")[0] for k in loaded if "/" in k}) == len(ours)
    for index, episode in enumerate(ours):
        assert loaded[f"{index}/action"].tobytes() == episode.steps.action.tobytes()
        assert loaded[f"{index}/state"].tobytes() == episode.steps.state[:, :7].tobytes()
        assert str(loaded[f"{index}/instruction"]) == episode.steps.language_instruction
        tfds_front = loaded[f"{index}/image_0"].astype(int)
        assert np.abs(tfds_front - episode.steps.images["front"]).mean() < 4.0  # TFDS decodes with the fast DCT
    assert np.array_equal(loaded["accurate_0"], ours[0].steps.images["front"])
