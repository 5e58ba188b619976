"""The LeRobot format without the lerobot library: the v3.0 layout as lerobot 0.4 writes it, bit-exact round
trips (lossless video, images), lossy codecs within tolerance, v2.1 recordings of another robot, errors naming
file and episode, generation (workers, kill and resume, merged index), ``sim2real convert``, training on it."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sim2real.datasets import DatasetError, content_hash, create_writer, diff_episodes, open_dataset
from sim2real.datasets.convert import convert
from sim2real.datasets.lerobot_format import (
    LeRobotDatasetReader,
    LeRobotEpisodeWriter,
    read_tasks,
)
from sim2real.datasets.schema import ACTION_NAMES, STATE_NAMES, CorruptDataError
from sim2real.datasets.synthetic import synthetic_episode
from sim2real.generation import GenerationConfig, generate

ROOT = Path(__file__).resolve().parents[1]
SIZE = (32, 48)


def _episodes(count: int = 3, noise: float = 2.0) -> list:
    return [synthetic_episode(i, num_steps=6 + 3 * i, image_size=SIZE, noise=noise) for i in range(count)]


def _write(path: Path, episodes: list, **options: object) -> Path:
    with create_writer("lerobot", path, **options) as writer:
        for episode in episodes:
            writer.write(episode)
    return path


@pytest.fixture(scope="module")
def lossless(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write(tmp_path_factory.mktemp("lr") / "lossless", _episodes(), vcodec="lossless")


# ------------------------------------------------------------------------------------------- layout


def test_the_v30_layout_and_info_json_are_what_lerobot_writes(lossless: Path) -> None:
    files = sorted(str(p.relative_to(lossless)) for p in lossless.rglob("*") if p.is_file())
    assert files == [
        "data/chunk-000/file-000.parquet",
        "meta/episodes/chunk-000/file-000.parquet",
        "meta/info.json",
        "meta/stats.json",
        "meta/tasks.parquet",
        "videos/observation.images.front/chunk-000/file-000.mp4",
        "videos/observation.images.wrist/chunk-000/file-000.mp4",
    ]
    info = json.loads((lossless / "meta/info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["fps"] == 10
    assert (info["total_episodes"], info["total_frames"], info["total_tasks"]) == (3, 6 + 9 + 12, 3)
    assert info["data_path"] == "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
    assert info["video_path"] == "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
    assert (info["chunks_size"], info["data_files_size_in_mb"], info["video_files_size_in_mb"]) == (1000, 100, 200)
    assert info["splits"] == {"train": "0:3"}
    features = info["features"]
    assert list(features)[-5:] == ["timestamp", "frame_index", "episode_index", "index", "task_index"]
    assert features["observation.state"] == {"dtype": "float32", "shape": [14], "names": list(STATE_NAMES)}
    assert features["action"] == {"dtype": "float32", "shape": [7], "names": list(ACTION_NAMES)}
    front = features["observation.images.front"]
    assert front["dtype"] == "video" and front["shape"] == [32, 48, 3]
    assert front["names"] == ["height", "width", "channels"]
    assert front["info"] == {"video.height": 32, "video.width": 48, "video.codec": "h264", "video.pix_fmt": "gbrp",
                             "video.is_depth_map": False, "video.fps": 10, "video.channels": 3,
                             "has_audio": False}  # fmt: skip
    data = pq.read_table(lossless / "data/chunk-000/file-000.parquet")
    assert set(data.column_names) == {k for k, f in features.items() if f["dtype"] != "video"}
    assert data.schema.field("action").type == pa.list_(pa.float32(), 7)
    assert data.schema.field("timestamp").type == pa.float32()
    assert data["index"].to_pylist() == list(range(27))
    assert data["frame_index"].to_pylist()[:7] == [0, 1, 2, 3, 4, 5, 0]
    np.testing.assert_allclose(data["timestamp"].to_numpy()[:6], np.arange(6) / 10, rtol=0, atol=1e-7)
    episodes = pq.read_table(lossless / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    assert [e["dataset_from_index"] for e in episodes] == [0, 6, 15]
    assert [e["videos/observation.images.front/from_timestamp"] for e in episodes] == [0.0, 0.6, 1.5]
    assert [e["videos/observation.images.front/to_timestamp"] for e in episodes] == [0.6, 1.5, 2.7]
    assert episodes[1]["tasks"] == [_episodes()[1].steps.language_instruction] and episodes[1]["length"] == 9
    assert {"meta/episodes/chunk_index", "meta/episodes/file_index", "stats/action/q99"} <= set(episodes[0])
    assert read_tasks(lossless / "meta/tasks.parquet") == [e.steps.language_instruction for e in _episodes()]
    pandas = json.loads(pq.read_schema(lossless / "meta/tasks.parquet").metadata[b"pandas"])
    assert pandas["index_columns"] == ["__index_level_0__"]
    stats = json.loads((lossless / "meta/stats.json").read_text())
    assert np.asarray(stats["observation.images.front"]["mean"]).shape == (3, 1, 1)
    assert stats["action"]["count"] == [27] and len(stats["action"]["q01"]) == 7
    all_actions = np.concatenate([e.steps.action for e in _episodes()])
    np.testing.assert_allclose(stats["action"]["mean"], all_actions.mean(axis=0), atol=1e-6)
    np.testing.assert_allclose(stats["action"]["std"], all_actions.std(axis=0), atol=1e-6)


def test_a_zarr_lerobot_zarr_round_trip_is_bit_exact_with_lossless_video(tmp_path: Path) -> None:
    source = tmp_path / "source.zarr"
    with create_writer("zarr", source) as writer:
        for episode in _episodes():
            writer.write(episode)
    assert convert(source, tmp_path / "lerobot", "lerobot", options={"vcodec": "lossless"}) == 3
    assert convert(tmp_path / "lerobot", tmp_path / "back.zarr", "zarr") == 3
    before, after = open_dataset(source), open_dataset(tmp_path / "back.zarr")
    assert [content_hash(after.episode(i)) for i in range(3)] == [content_hash(before.episode(i)) for i in range(3)]


def test_cameras_as_images_round_trip_bit_exact(tmp_path: Path) -> None:
    path = _write(tmp_path / "images", _episodes(2), cameras_as="image")
    info = json.loads((path / "meta/info.json").read_text())
    assert info["video_path"] is None and info["features"]["observation.images.front"]["dtype"] == "image"
    assert not (path / "videos").exists()
    reader = open_dataset(path)
    for i, episode in enumerate(_episodes(2)):
        assert diff_episodes(reader.episode(i), episode) == []


@pytest.mark.parametrize(("vcodec", "tolerance"), [("libsvtav1", 6.0), ("libx264", 6.0), ("mpeg4", 8.0)])
def test_lossy_codecs_keep_everything_but_pixels_exact(tmp_path: Path, vcodec: str, tolerance: float) -> None:
    episodes = _episodes(2, noise=0.0)
    reader = open_dataset(_write(tmp_path / vcodec, episodes, vcodec=vcodec))
    codec = {"libsvtav1": "av1", "libx264": "h264", "mpeg4": "mpeg4"}[vcodec]
    assert reader.features["observation.images.front"]["info"]["video.codec"] == codec
    for i, episode in enumerate(episodes):
        got = reader.episode(i)
        assert [d for d in diff_episodes(got, episode) if not d.startswith("images/")] == []
        for camera, frames in episode.steps.images.items():
            assert got.steps.images[camera].shape == frames.shape
            assert np.abs(got.steps.images[camera].astype(float) - frames).mean() < tolerance


def test_codec_settings_reach_the_encoder(tmp_path: Path) -> None:
    path = _write(tmp_path / "x264", _episodes(1), vcodec="libx264", crf=18, g=4, preset="ultrafast", threads=1)
    with av.open(str(path / "videos/observation.images.front/chunk-000/file-000.mp4")) as container:
        stream = container.streams.video[0]
        keyframes = [packet.is_keyframe for packet in container.demux(stream) if packet.size]
    assert stream.codec_context.pix_fmt == "yuv420p"
    assert keyframes[:5] == [True, False, False, False, True]


# ------------------------------------------------------------------------------------------- v2.1


def _write_mp4(path: Path, frames: np.ndarray, fps: int, codec: str = "libx264rgb") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps, options={"qp": "0"} if codec == "libx264rgb" else {})
        stream.pix_fmt = "rgb24" if codec == "libx264rgb" else "yuv420p"
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        for n, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = n, Fraction(1, fps)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _v21_dataset(root: Path, lengths: tuple[int, ...] = (5, 7), fps: int = 30) -> dict[int, dict[str, np.ndarray]]:
    """A v2.1 recording of a 6-joint arm (joint-position actions), one camera ``top``, as lerobot 0.2/0.3 wrote it."""
    joints = ["shoulder_pan.pos", "shoulder_lift.pos", "elbow_flex.pos", "wrist_flex.pos", "wrist_roll.pos",
              "gripper.pos"]  # fmt: skip
    info = {
        "codebase_version": "v2.1", "robot_type": "so100", "total_episodes": len(lengths),
        "total_frames": sum(lengths), "total_tasks": 1, "total_videos": len(lengths), "total_chunks": 1,
        "chunks_size": 1000, "fps": fps, "splits": {"train": f"0:{len(lengths)}"},
        "data_path": "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet",
        "video_path": "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4",
        "features": {
            "action": {"dtype": "float32", "shape": [6], "names": joints},
            "observation.state": {"dtype": "float32", "shape": [6], "names": joints},
            "observation.images.top": {"dtype": "video", "shape": [24, 32, 3], "names": ["height", "width", "channels"],
                                       "info": {"video.fps": fps, "video.codec": "h264"}},
            "timestamp": {"dtype": "float32", "shape": [1], "names": None},
            "frame_index": {"dtype": "int64", "shape": [1], "names": None},
            "episode_index": {"dtype": "int64", "shape": [1], "names": None},
            "index": {"dtype": "int64", "shape": [1], "names": None},
            "task_index": {"dtype": "int64", "shape": [1], "names": None},
        },
    }  # fmt: skip
    (root / "meta").mkdir(parents=True)
    (root / "meta/info.json").write_text(json.dumps(info))
    (root / "meta/tasks.jsonl").write_text(json.dumps({"task_index": 0, "task": "Grasp the lego brick"}) + "\n")
    episodes = "".join(json.dumps({"episode_index": i, "tasks": ["Grasp the lego brick"], "length": n}) + "\n"
                       for i, n in enumerate(lengths))  # fmt: skip
    (root / "meta/episodes.jsonl").write_text(episodes)
    (root / "meta/episodes_stats.jsonl").write_text(
        "".join(json.dumps({"episode_index": i, "stats": {}}) + "\n" for i in range(len(lengths)))
    )
    rng = np.random.default_rng(3)
    written, offset = {}, 0
    for i, n in enumerate(lengths):
        action = rng.normal(size=(n, 6)).astype(np.float32)
        frames = rng.integers(0, 255, size=(n, 24, 32, 3), dtype=np.uint8)
        table = pa.table({
            "action": pa.array(list(action), pa.list_(pa.float32())),
            "observation.state": pa.array(list(action + 1), pa.list_(pa.float32())),
            "timestamp": pa.array(np.arange(n, dtype=np.float32) / fps),
            "frame_index": pa.array(np.arange(n, dtype=np.int64)),
            "episode_index": pa.array(np.full(n, i, np.int64)),
            "index": pa.array(np.arange(offset, offset + n, dtype=np.int64)),
            "task_index": pa.array(np.zeros(n, np.int64)),
        })  # fmt: skip
        (root / "data/chunk-000").mkdir(parents=True, exist_ok=True)
        pq.write_table(table, root / f"data/chunk-000/episode_{i:06d}.parquet")
        _write_mp4(root / f"videos/chunk-000/observation.images.top/episode_{i:06d}.mp4", frames, fps)
        written[i] = {"action": action, "frames": frames}
        offset += n
    return written


def test_a_v21_recording_of_another_arm_reads_with_its_images_and_joint_actions(tmp_path: Path) -> None:
    root = tmp_path / "so100_v21"
    written = _v21_dataset(root)
    reader = open_dataset(root)
    assert isinstance(reader, LeRobotDatasetReader) and reader.mapping.name == "lerobot" and len(reader) == 2
    for i, want in written.items():
        episode = reader.episode(i)
        assert np.array_equal(episode.steps.images["top"], want["frames"])
        assert np.array_equal(episode.steps.action, want["action"])
        assert np.isnan(episode.steps.state).all()  # another robot's state: unknown in our layout
        assert episode.steps.language_instruction == "Grasp the lego brick"
        assert episode.metadata.extras["action_space"] == "joint_position"
        assert episode.metadata.control_hz == 30.0 and episode.metadata.robot == "so100"


def test_the_replay_harness_skips_actions_of_a_foreign_set_by_its_flag(tmp_path: Path) -> None:
    from sim2real.evaluation.replay import action_space, load_replay_set

    _v21_dataset(tmp_path / "v21")
    replay = load_replay_set(tmp_path / "v21", "lerobot", 5)
    assert len(replay.episodes) == 2 and replay.control_hz == 30.0
    space, reason = action_space(replay.episodes[0])
    assert space == "joint_position" and "6-D" in str(reason)


# ------------------------------------------------------------------------------------------- bad input


def test_an_unknown_codebase_version_is_named(lossless: Path, tmp_path: Path) -> None:
    path = shutil.copytree(lossless, tmp_path / "d")
    info = json.loads((path / "meta/info.json").read_text())
    (path / "meta/info.json").write_text(json.dumps({**info, "codebase_version": "v4.0"}))
    with pytest.raises(DatasetError, match=r"meta/info\.json: unknown codebase_version 'v4\.0'"):
        open_dataset(path)


def test_a_missing_video_file_names_the_file_and_episode(tmp_path: Path) -> None:
    root = tmp_path / "v21"
    _v21_dataset(root)
    (root / "videos/chunk-000/observation.images.top/episode_000001.mp4").unlink()
    reader = open_dataset(root)
    reader.episode(0)
    with pytest.raises(DatasetError, match=r"episode_000001\.mp4 \(episode 1\): video file of .* is missing"):
        reader.episode(1)


def test_a_parquet_without_a_declared_feature_names_the_file_and_episode(lossless: Path, tmp_path: Path) -> None:
    path = shutil.copytree(lossless, tmp_path / "d")
    data = path / "data/chunk-000/file-000.parquet"
    pq.write_table(pq.read_table(data).drop_columns(["next.reward"]), data)
    with pytest.raises(DatasetError, match=r"file-000\.parquet \(episode 0\): no column 'next\.reward', which meta"):
        open_dataset(path).episode(0)


def test_a_video_shorter_than_its_episode_names_the_file_and_episode(tmp_path: Path) -> None:
    root = tmp_path / "v21"
    written = _v21_dataset(root)
    short = root / "videos/chunk-000/observation.images.top/episode_000001.mp4"
    _write_mp4(short, written[1]["frames"][:4], 30)
    with pytest.raises(DatasetError, match=r"episode_000001\.mp4 \(episode 1, .*\): no frame at .* shorter than"):
        open_dataset(root).episode(1)


def test_a_damaged_video_is_a_corrupt_data_error(lossless: Path, tmp_path: Path) -> None:
    path = shutil.copytree(lossless, tmp_path / "d")
    (path / "videos/observation.images.wrist/chunk-000/file-000.mp4").write_bytes(b"not a video")
    with pytest.raises(CorruptDataError, match=r"file-000\.mp4: cannot be read as a video"):
        open_dataset(path).episode(0)


def test_writer_refusals(tmp_path: Path, lossless: Path) -> None:
    with pytest.raises(DatasetError, match="already holds a LeRobot dataset"):
        LeRobotEpisodeWriter(lossless)
    episode = _episodes(1)[0]
    odd = replace(episode, metadata=replace(episode.metadata, control_hz=7.5))
    with pytest.raises(DatasetError, match="whole number of fps"), create_writer("lerobot", tmp_path / "o") as writer:
        writer.write(odd)


# ------------------------------------------------------------------------------------------- generation


def _generation(out: Path, workers: int = 1, **overrides: object) -> GenerationConfig:
    config = GenerationConfig(task="all", num_episodes=4, shard_size=2, seed=7, output_dir=str(out), progress=False,
                              workers=workers, randomization={"name": "light"}, formats=("zarr", "lerobot"),
                              codecs={"lerobot": {"vcodec": "lossless"}})  # fmt: skip
    return replace(config, **overrides)


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    config = _generation(tmp_path_factory.mktemp("gen") / "one")
    generate(config)
    return Path(config.output_dir)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted((root / "lerobot").rglob("*")) if p.is_file()}


def test_generation_writes_shards_and_one_merged_dataset_equal_to_zarr(generated: Path) -> None:
    merged, zarr = open_dataset(generated / "lerobot"), open_dataset(generated / "zarr")
    assert isinstance(merged, LeRobotDatasetReader) and len(merged) == 4
    assert [content_hash(merged.episode(i)) for i in range(4)] == [content_hash(zarr.episode(i)) for i in range(4)]
    info = json.loads((generated / "lerobot/meta/info.json").read_text())
    assert info["total_episodes"] == 4 and info["total_frames"] == sum(zarr.episode(i).num_steps for i in range(4))
    data = pq.read_table(generated / "lerobot/data/chunk-000/file-001.parquet")
    first = zarr.episode(0).num_steps + zarr.episode(1).num_steps
    assert data["index"][0].as_py() == first and data["episode_index"][0].as_py() == 2
    sharded = open_dataset(generated / "lerobot", "sharded")
    assert content_hash(sharded.episode(3)) == content_hash(zarr.episode(3))
    from sim2real.datasets.integrity import verify_dataset

    assert verify_dataset(generated).ok


@pytest.mark.slow
def test_generation_with_two_workers_writes_the_same_files(generated: Path, tmp_path: Path) -> None:
    config = _generation(tmp_path / "two", workers=2)
    generate(config)
    assert _files(Path(config.output_dir)) == _files(generated)


@pytest.mark.slow
def test_a_killed_generation_resumes_to_the_same_lerobot_files(tmp_path: Path) -> None:
    out = tmp_path / "killed"

    def command_for(folder: Path) -> list[str]:
        return [sys.executable, str(ROOT / "generate.py"), "task=all", "num_episodes=4", "shard_size=2", "seed=7",
                "randomization=light", "progress=false", f"output_dir={folder}", "formats=[zarr,lerobot]",
                "+codecs.lerobot.vcodec=lossless"]  # fmt: skip

    command = command_for(out)
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and process.poll() is None and not list((out / "shards").glob("shard-*.json")):
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    straight = tmp_path / "straight"
    subprocess.run(command_for(straight), cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert _files(out) == _files(straight)
    assert not list(out.rglob("*.incomplete"))
    zarr, merged = open_dataset(out / "zarr"), open_dataset(out / "lerobot")
    assert [content_hash(e) for e in merged] == [content_hash(e) for e in zarr]


def test_bad_lerobot_codec_options_fail_before_any_episode(tmp_path: Path) -> None:
    from sim2real.generation import GenerationError

    with pytest.raises(
        GenerationError,
        match=r"codecs\.lerobot\.vcodec='nope': expected a video encoder \('nope' is not a video encoder",
    ):
        generate(_generation(tmp_path / "bad", codecs={"lerobot": {"vcodec": "nope"}}))
    with pytest.raises(GenerationError, match=r"codecs\.lerobot\.cameras_as='gif': expected video or image"):
        generate(_generation(tmp_path / "bad2", codecs={"lerobot": {"cameras_as": "gif"}}))


# ------------------------------------------------------------------------------------------- convert, train


def test_sim2real_convert_streams_and_refuses_in_one_line(lossless: Path, tmp_path: Path) -> None:
    run = [sys.executable, "-m", "sim2real.cli", "convert"]
    done = subprocess.run([*run, str(lossless), str(tmp_path / "out.hdf5"), "--to", "hdf5", "--no-progress"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    assert "3 episodes written" in done.stdout
    assert [content_hash(e) for e in open_dataset(tmp_path / "out.hdf5")] == [
        content_hash(e) for e in open_dataset(lossless)
    ]
    bad = subprocess.run([*run, str(tmp_path / "missing"), str(tmp_path / "x"), "--to", "zarr"],
                         capture_output=True, text=True)  # fmt: skip
    assert bad.returncode == 2 and bad.stderr.strip().splitlines() == [f"error: {tmp_path / 'missing'}: no such file "
                                                                      "or directory"]  # fmt: skip
    foreign = tmp_path / "v21"
    _v21_dataset(foreign)
    refused = subprocess.run([*run, str(foreign), str(tmp_path / "y"), "--to", "zarr", "--no-progress"],
                             capture_output=True, text=True)  # fmt: skip
    assert refused.returncode == 2 and "episode 0" in refused.stderr and "action" in refused.stderr


def test_train_py_trains_on_a_lerobot_dataset(generated: Path, tmp_path: Path) -> None:
    from sim2real.training.config import DataConfig, OptimConfig
    from sim2real.training.run import TrainConfig, train

    tiny = {"vision_width": 8, "embed_dim": 32, "layers": 1, "heads": 2, "tokens_per_frame": 2, "language": "learned",
            "language_dim": 16, "language_buckets": 64, "dropout": 0.1}  # fmt: skip
    config = TrainConfig(data=DataConfig(path=str(generated / "lerobot"), batch_size=4, workers=0, val_fraction=0.25),
                         model=tiny, train=OptimConfig(max_steps=2, warmup_steps=1, val_every=2, checkpoint_every=2,
                                                       log_every=1, val_batches=1),
                         output_dir=str(tmp_path / "run"), progress=False)  # fmt: skip
    summary = train(config)
    assert summary["steps"] == 2
