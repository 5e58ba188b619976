"""The LeRobot dataset format: v3.0 written exactly as the ``lerobot`` library (0.4) writes it; v3.0 and
v2.1 (and v2.0) read, through a declarative :class:`LeRobotMapping`.

Layout of a v3.0 dataset (``N`` frames in all, ``E`` episodes; ``{c}``/``{f}`` = chunk/file index)::

    <root>/meta/info.json                codebase_version "v3.0", fps, robot_type, totals, path templates,
                                         features: dtype, shape, names (videos: + info)
    <root>/meta/stats.json               feature -> min/max/mean/std/count/q01..q99 (lerobot_stats)
    <root>/meta/tasks.parquet            index: the task string, column task_index (a pandas frame)
    <root>/meta/episodes/chunk-{c:03d}/file-{f:03d}.parquet
                                         one row per episode: episode_index, tasks, length,
                                         data/chunk_index, data/file_index, dataset_from_index,
                                         dataset_to_index, videos/<key>/{chunk_index, file_index,
                                         from_timestamp, to_timestamp}, stats/<key>/<stat>,
                                         meta/episodes/{chunk_index, file_index}, sim2real.metadata
    <root>/data/chunk-{c:03d}/file-{f:03d}.parquet
                                         one row per frame (see the feature table)
    <root>/videos/<key>/chunk-{c:03d}/file-{f:03d}.mp4
                                         episodes one after the other; frame t of an episode at
                                         from_timestamp + t / fps seconds

Features of a sim2real dataset (per frame; ``T`` frames per episode):

==============================  =============  =====================================================
key                             dtype, shape   canonical field
==============================  =============  =====================================================
``observation.images.<cam>``    video (H,W,3)  ``images[cam]`` (or ``image``: PNG bytes in the parquet)
``observation.state``           float32 (14,)  ``state``, names :data:`~sim2real.datasets.schema.STATE_NAMES`
``action``                      float32 (7,)   ``action``, names :data:`~sim2real.datasets.schema.ACTION_NAMES`
``next.reward``                 float32 (1,)   ``reward``
``next.done``                   bool (1,)      ``is_last``
``discount``                    float32 (1,)   ``discount``
``is_terminal``                 bool (1,)      ``is_terminal``
``timestamp``                   float32 (1,)   ``frame_index / fps`` (s)
``frame_index``                 int64 (1,)     t (``is_first`` is ``frame_index == 0``)
``episode_index``, ``index``    int64 (1,)     episode number; frame number in the dataset
``task_index``                  int64 (1,)     row of ``meta/tasks.parquet``: the language instruction
==============================  =============  =====================================================

The episode's canonical metadata (seed, success, SceneSpec JSON, ...) is the ``sim2real.metadata``
column of ``meta/episodes`` (canonical JSON); ``fps`` is the control rate. With
:data:`~sim2real.datasets.lerobot_video.LOSSLESS` video (or images) a Zarr -> LeRobot -> Zarr round
trip is bit-exact; the default (LeRobot's AV1 at CRF 30) keeps everything but the pixels exact.

Reading a foreign dataset (another robot, joint-position actions, a humanoid) through the generic
mapping ``lerobot`` gives every camera, the state when it is our 14-D layout (else NaN: unknown),
and the actions: our 7-D end-effector deltas when the action names say so, else the recorded
(T, A) actions with ``metadata.extras["action_space"]`` = ``joint_position`` (names of joints or
motors) or ``unknown``, so that metrics needing end-effector deltas skip them (see
:mod:`sim2real.evaluation.replay`).
"""

from __future__ import annotations

import bisect
import json
import os
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from sim2real.datasets.imagecodec import decode_image, encode_pngs, resize_frames
from sim2real.datasets.lerobot_stats import feature_stats, image_stats, merge_all, stats_columns, stats_json
from sim2real.datasets.lerobot_video import LEROBOT_DEFAULT, VideoCodec, VideoReader, VideoWriter, video_info
from sim2real.datasets.registry import (
    DATASET_READERS,
    DATASET_WRITERS,
    EpisodeReader,
    EpisodeWriter,
    FormatOptions,
    RunShards,
    ShardFormat,
    numbered_shards,
    register_shard_format,
)
from sim2real.datasets.rlds_mapping import EpisodeMapping, map_action, map_state
from sim2real.datasets.schema import (
    ACTION_DIM,
    ACTION_NAMES,
    STATE_DIM,
    STATE_NAMES,
    CorruptDataError,
    DatasetError,
    Episode,
    EpisodeMetadata,
    EpisodeSteps,
    reading,
    validate_episode,
)
from sim2real.datasets.sharded import write_shard_index
from sim2real.registry import Registry

CODEBASE_VERSION = "v3.0"
#: Versions the reader takes (v2.0 has v2.1's layout).
READABLE_VERSIONS = ("v3.0", "v2.1", "v2.0")
INFO_PATH = "meta/info.json"
STATS_PATH = "meta/stats.json"
TASKS_PATH = "meta/tasks.parquet"
EPISODES_DIR = "meta/episodes"
CHUNK_FILE = "chunk-{chunk_index:03d}/file-{file_index:03d}"
DATA_PATH = "data/" + CHUNK_FILE + ".parquet"
VIDEO_PATH = "videos/{video_key}/" + CHUNK_FILE + ".mp4"
EPISODES_PATH = EPISODES_DIR + "/" + CHUNK_FILE + ".parquet"
#: LeRobot's defaults: files per chunk folder, and the sizes (MB) at which a new data or video file starts.
DEFAULT_CHUNK_SIZE = 1000
DEFAULT_DATA_FILE_SIZE_IN_MB = 100
DEFAULT_VIDEO_FILE_SIZE_IN_MB = 200

IMAGE_PREFIX = "observation.images."
STATE_KEY = "observation.state"
ACTION_KEY = "action"
REWARD_KEY = "next.reward"
DONE_KEY = "next.done"
SUCCESS_KEY = "next.success"
DISCOUNT_KEY = "discount"
TERMINAL_KEY = "is_terminal"
#: ``meta/episodes`` column holding the canonical metadata JSON of our episodes.
METADATA_COLUMN = "sim2real.metadata"
#: Per-frame columns every LeRobot dataset has (LeRobot's ``DEFAULT_FEATURES``), in its order.
DEFAULT_FEATURES: dict[str, dict[str, Any]] = {
    "timestamp": {"dtype": "float32", "shape": [1], "names": None},
    "frame_index": {"dtype": "int64", "shape": [1], "names": None},
    "episode_index": {"dtype": "int64", "shape": [1], "names": None},
    "index": {"dtype": "int64", "shape": [1], "names": None},
    "task_index": {"dtype": "int64", "shape": [1], "names": None},
}
_IMAGE_NAMES = ["height", "width", "channels"]
_ARROW_TYPES = {"float32": pa.float32(), "float64": pa.float64(), "int64": pa.int64(), "int32": pa.int32(),
                "bool": pa.bool_(), "string": pa.string()}  # fmt: skip
_IMAGE_TYPE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
_MIB = 1024 * 1024


def camera_feature(camera: str) -> str:
    """The LeRobot feature key of a camera: ``observation.images.<camera>``."""
    return IMAGE_PREFIX + camera


def next_chunk_file(chunk: int, file: int, chunks_size: int) -> tuple[int, int]:
    """The (chunk, file) index after ``(chunk, file)``: a new chunk folder every ``chunks_size`` files."""
    return (chunk + 1, 0) if file == chunks_size - 1 else (chunk, file + 1)


def sim2real_features(cameras: Mapping[str, tuple[int, ...]], video: bool) -> dict[str, dict[str, Any]]:
    """The ``info.json`` features of a sim2real dataset with these cameras ((H, W, 3) each), in LeRobot's order
    (the dataset's own features, then :data:`DEFAULT_FEATURES`); video features get their ``info`` later."""
    features: dict[str, dict[str, Any]] = {
        camera_feature(camera): {"dtype": "video" if video else "image", "shape": list(shape), "names": _IMAGE_NAMES}
        for camera, shape in sorted(cameras.items())
    }
    features[STATE_KEY] = {"dtype": "float32", "shape": [STATE_DIM], "names": list(STATE_NAMES)}
    features[ACTION_KEY] = {"dtype": "float32", "shape": [ACTION_DIM], "names": list(ACTION_NAMES)}
    features[REWARD_KEY] = {"dtype": "float32", "shape": [1], "names": None}
    features[DONE_KEY] = {"dtype": "bool", "shape": [1], "names": None}
    features[DISCOUNT_KEY] = {"dtype": "float32", "shape": [1], "names": None}
    features[TERMINAL_KEY] = {"dtype": "bool", "shape": [1], "names": None}
    return {**features, **json.loads(json.dumps(DEFAULT_FEATURES))}


def arrow_type(feature: Mapping[str, Any]) -> pa.DataType:
    """The parquet column type LeRobot (Hugging Face ``datasets``) uses for a non-video feature."""
    if feature["dtype"] == "image":
        return _IMAGE_TYPE
    value = _ARROW_TYPES[feature["dtype"]]
    shape = [int(d) for d in feature["shape"]]
    if shape == [1]:
        return value
    if len(shape) == 1:
        return pa.list_(value, shape[0])
    raise DatasetError(f"feature shape {shape} is not supported")


def tasks_table(tasks: list[str]) -> pa.Table:
    """``meta/tasks.parquet`` as pandas writes LeRobot's task frame: index = task, column ``task_index``."""
    table = pa.table({"task_index": pa.array(range(len(tasks)), pa.int64()),
                      "__index_level_0__": pa.array(tasks, pa.string())})  # fmt: skip
    pandas = {
        "index_columns": ["__index_level_0__"],
        "column_indexes": [{"name": None, "field_name": None, "pandas_type": "unicode", "numpy_type": "object",
                            "metadata": {"encoding": "UTF-8"}}],
        "columns": [
            {"name": "task_index", "field_name": "task_index", "pandas_type": "int64", "numpy_type": "int64",
             "metadata": None},
            {"name": None, "field_name": "__index_level_0__", "pandas_type": "unicode", "numpy_type": "object",
             "metadata": None},
        ],
        "creator": {"library": "pyarrow", "version": pa.__version__},
        "pandas_version": "2.2.3",
    }  # fmt: skip
    return table.replace_schema_metadata({b"pandas": json.dumps(pandas).encode()})


def read_tasks(path: Path) -> list[str]:
    """Task strings by task index from a v3.0 ``meta/tasks.parquet`` (the pandas index, or a ``task`` column)."""
    with reading(str(path)):
        table = pq.read_table(path)
    names = table.column_names
    column = "task" if "task" in names else None
    if column is None:
        metadata = json.loads((table.schema.metadata or {}).get(b"pandas", b"{}"))
        index = [c for c in metadata.get("index_columns", []) if isinstance(c, str)]
        column = index[0] if index else None
    if column is None or "task_index" not in names:
        raise DatasetError(f"{path}: expected a task_index column and the task strings (as the index or 'task')")
    by_index = dict(zip(table.column("task_index").to_pylist(), table.column(column).to_pylist(), strict=True))
    return [str(by_index[i]) for i in sorted(by_index)]


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_text(json.dumps(data, indent=4, ensure_ascii=False))
    os.replace(temp, path)


# ---------------------------------------------------------------------------------------------
# writer


class _RollingParquet:
    """Parquet files ``template.format(chunk_index, file_index)`` under ``root``, one row group per
    :meth:`write`; a new file starts once the current one reaches ``limit_bytes``."""

    def __init__(self, root: Path, template: str, limit_bytes: int, chunks_size: int) -> None:
        self.root, self.template, self.limit, self.chunks_size = root, template, limit_bytes, chunks_size
        self.chunk, self.file = 0, 0
        self._writer: pq.ParquetWriter | None = None
        self._path: Path | None = None

    def next_location(self) -> tuple[int, int]:
        """The (chunk, file) index the next :meth:`write` goes to (a new file once the current one is full)."""
        if self._writer is not None and self._path is not None and self._path.stat().st_size >= self.limit:
            self._writer.close()
            self._writer = None
            self.chunk, self.file = next_chunk_file(self.chunk, self.file, self.chunks_size)
        return self.chunk, self.file

    def write(self, table: pa.Table) -> tuple[int, int]:
        """Append ``table``; return the (chunk, file) index it went to."""
        self.next_location()
        if self._writer is None:
            self._path = self.root / self.template.format(chunk_index=self.chunk, file_index=self.file)
            self._path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = pq.ParquetWriter(self._path, table.schema, compression="snappy", use_dictionary=True)
        self._writer.write_table(table)
        return self.chunk, self.file

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class _RollingVideo:
    """One camera's video files: frames appended to the current file; a new file once it reaches ``limit_bytes``."""

    def __init__(self, root: Path, key: str, fps: int, codec: VideoCodec, limit_bytes: int, chunks_size: int) -> None:
        self.root, self.key, self.fps, self.codec = root, key, fps, codec
        self.limit, self.chunks_size = limit_bytes, chunks_size
        self.chunk, self.file = 0, 0
        self._writer: VideoWriter | None = None

    def write(self, frames: np.ndarray) -> dict[str, Any]:
        """Append one episode's uint8 (T, H, W, 3) frames; return its ``videos/<key>/...`` columns."""
        if self._writer is not None and self._writer.size_bytes >= self.limit:
            self._writer.close()
            self._writer = None
            self.chunk, self.file = next_chunk_file(self.chunk, self.file, self.chunks_size)
        if self._writer is None:
            path = self.root / VIDEO_PATH.format(video_key=self.key, chunk_index=self.chunk, file_index=self.file)
            self._writer = VideoWriter(path, frames.shape[2], frames.shape[1], self.fps, self.codec)
        start = self._writer.frames
        self._writer.write(frames)
        prefix = f"videos/{self.key}/"
        return {prefix + "chunk_index": self.chunk, prefix + "file_index": self.file,
                prefix + "from_timestamp": start / self.fps,
                prefix + "to_timestamp": (start + len(frames)) / self.fps}  # fmt: skip

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


#: how cameras are stored: MP4 video, or PNG images inside the data parquet
CAMERAS_AS = ("video", "image")
#: the video generation writes unless ``codecs.lerobot.vcodec`` names a codec: H.264 (x264
#: ``ultrafast``, CRF 23, a key frame every 2 frames); at 128 px it decodes as close to the frames as
#: LeRobot's default AV1 at CRF 30 (mean error ~3 grey levels) for a quarter of the CPU time
#: (``benchmarks/bench_generation.py``). ``vcodec: libsvtav1`` gives LeRobot's own default.
GENERATION_VIDEO: dict[str, Any] = {"vcodec": "libx264", "preset": "ultrafast", "crf": 23, "g": 2}


@dataclass(frozen=True)
class LeRobotOptions(FormatOptions):
    """The LeRobot writer's options as generation sets them (``codecs.lerobot.<key>``): the writer's
    defaults, but one encoder thread per camera (so that a shard's video bytes do not depend on
    the machine's core count) and :data:`GENERATION_VIDEO` unless ``vcodec`` is given."""

    cameras_as: str = "video"
    vcodec: str = LEROBOT_DEFAULT.codec
    pix_fmt: str | None = None
    g: int | None = LEROBOT_DEFAULT.g
    crf: int | None = LEROBOT_DEFAULT.crf
    preset: str | int | None = None
    threads: int | None = 1

    @classmethod
    def from_codecs(cls, given: Mapping[str, Any]) -> LeRobotOptions:
        video = GENERATION_VIDEO if "vcodec" not in given else {}
        return cls(**{**video, **given})

    def invalid(self) -> dict[str, str]:
        from sim2real.datasets.lerobot_video import check_encoder

        problems = {}
        if self.cameras_as not in CAMERAS_AS:
            problems["cameras_as"] = " or ".join(CAMERAS_AS)
        try:
            check_encoder(self.vcodec)
        except ValueError as error:
            problems["vcodec"] = f"a video encoder ({error})"
        return problems


@DATASET_WRITERS.register("lerobot")
class LeRobotEpisodeWriter(EpisodeWriter):
    """Writes episodes as a LeRobot v3.0 dataset at ``path`` (layout and features in the module docstring).

    Cameras are MP4 video (``cameras_as="video"``) encoded with ``vcodec``, ``pix_fmt``, GOP ``g``,
    ``crf``, ``preset`` and ``threads`` (:class:`~sim2real.datasets.lerobot_video.VideoCodec`;
    LeRobot's defaults unless given; ``vcodec="lossless"`` selects
    :data:`~sim2real.datasets.lerobot_video.LOSSLESS`), or PNG images inside the data parquet
    (``cameras_as="image"``). ``fps`` is the episodes' control rate, which must be a whole number
    of Hz. ``mode``: ``"w-"`` create (error if ``path`` holds a dataset), ``"w"`` overwrite.
    Memory holds one episode plus one row of metadata per episode; ``info.json``, ``stats.json``,
    ``tasks.parquet`` and ``meta/episodes`` are written by :meth:`close`.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        mode: str = "w-",
        cameras_as: str = LeRobotOptions.cameras_as,
        vcodec: str = LeRobotOptions.vcodec,
        pix_fmt: str | None = LeRobotOptions.pix_fmt,
        g: int | None = LeRobotOptions.g,
        crf: int | None = LeRobotOptions.crf,
        preset: str | int | None = LeRobotOptions.preset,
        threads: int | None = None,
        robot_type: str | None = None,
        chunks_size: int = DEFAULT_CHUNK_SIZE,
        data_files_size_in_mb: int = DEFAULT_DATA_FILE_SIZE_IN_MB,
        video_files_size_in_mb: int = DEFAULT_VIDEO_FILE_SIZE_IN_MB,
    ) -> None:
        if mode not in ("w-", "w"):
            raise ValueError(f"mode must be 'w-' or 'w', got {mode!r}")
        if cameras_as not in CAMERAS_AS:
            raise ValueError(f"cameras_as must be 'video' or 'image', got {cameras_as!r}")
        self.path = Path(path)
        if mode == "w-" and (self.path / INFO_PATH).exists():
            raise DatasetError(f"{self.path}: already holds a LeRobot dataset (use mode='w' to overwrite)")
        if self.path.exists() and not self.path.is_dir():
            raise DatasetError(f"{self.path}: is a file, not a folder")
        if mode == "w" and self.path.exists():
            shutil.rmtree(self.path)
        self.video = cameras_as == "video"
        if vcodec == "lossless":
            from sim2real.datasets.lerobot_video import LOSSLESS

            self.codec = replace(LOSSLESS, threads=threads)
        else:
            default_pix = "rgb24" if vcodec == "libx264rgb" else "yuv420p"
            self.codec = VideoCodec(vcodec, pix_fmt or default_pix, g, crf, preset, threads)
        self.robot_type = robot_type
        self.chunks_size = chunks_size
        self.data_limit = data_files_size_in_mb
        self.video_limit = video_files_size_in_mb
        self._data = _RollingParquet(self.path, DATA_PATH, data_files_size_in_mb * _MIB, chunks_size)
        self._episodes = _RollingParquet(self.path, EPISODES_PATH, data_files_size_in_mb * _MIB, chunks_size)
        self._videos: dict[str, _RollingVideo] = {}
        self._pending: list[dict[str, Any]] = []
        self._cameras: dict[str, tuple[int, ...]] | None = None
        self._features: dict[str, dict[str, Any]] = {}
        self._schema: pa.Schema | None = None
        self._tasks: dict[str, int] = {}
        self._stats: dict[str, Any] | None = None
        self._fps: int | None = None
        self._num_frames = 0
        self._num_episodes = 0
        self._closed = False
        self.path.mkdir(parents=True, exist_ok=True)

    @property
    def num_episodes(self) -> int:
        """Episodes written so far."""
        return self._num_episodes

    def write(self, episode: Episode) -> None:
        """Validate one episode and append its frames, videos and metadata row."""
        if self._closed:
            raise DatasetError(f"{self.path}: writer is closed")
        where = f"{self.path} (episode {self._num_episodes})"
        num_steps = validate_episode(episode, where)
        self._check_consistent(episode, where)
        steps = episode.steps
        task_index = self._tasks.setdefault(steps.language_instruction, len(self._tasks))
        index = self._num_episodes
        frame_index = np.arange(num_steps, dtype=np.int64)
        columns: dict[str, np.ndarray] = {
            STATE_KEY: steps.state, ACTION_KEY: steps.action, REWARD_KEY: steps.reward, DONE_KEY: steps.is_last,
            DISCOUNT_KEY: steps.discount, TERMINAL_KEY: steps.is_terminal,
            "timestamp": (frame_index / self._fps).astype(np.float32), "frame_index": frame_index,
            "episode_index": np.full(num_steps, index, np.int64),
            "index": np.arange(self._num_frames, self._num_frames + num_steps, dtype=np.int64),
            "task_index": np.full(num_steps, task_index, np.int64),
        }  # fmt: skip
        row: dict[str, Any] = {"episode_index": index, "tasks": [steps.language_instruction], "length": num_steps}
        chunk, file = self._data.write(self._frame_table(columns, steps.images))
        row |= {"data/chunk_index": chunk, "data/file_index": file, "dataset_from_index": self._num_frames,
                "dataset_to_index": self._num_frames + num_steps}  # fmt: skip
        if self.video:
            for camera, frames in sorted(steps.images.items()):
                row |= self._video(camera).write(frames)
        stats = {key: feature_stats(values) for key, values in columns.items()}
        stats |= {camera_feature(camera): image_stats(frames) for camera, frames in steps.images.items()}
        row |= stats_columns(stats)
        row[METADATA_COLUMN] = episode.metadata.to_json()
        self._stats = merge_all(self._stats, stats)
        self._pending.append(row)
        if len(self._pending) >= 64:
            self._flush_episodes()
        self._num_frames += num_steps
        self._num_episodes += 1

    def _video(self, camera: str) -> _RollingVideo:
        if camera not in self._videos:
            assert self._fps is not None
            self._videos[camera] = _RollingVideo(self.path, camera_feature(camera), self._fps, self.codec,
                                                 self.video_limit * _MIB, self.chunks_size)  # fmt: skip
        return self._videos[camera]

    def _frame_table(self, columns: Mapping[str, np.ndarray], images: Mapping[str, np.ndarray]) -> pa.Table:
        assert self._schema is not None
        arrays = []
        for field in self._schema:
            if field.name.startswith(IMAGE_PREFIX):
                camera = field.name.removeprefix(IMAGE_PREFIX)
                pngs = encode_pngs(images[camera])
                paths = [f"frame-{t:06d}.png" for t in range(len(pngs))]
                arrays.append(pa.StructArray.from_arrays([pa.array(pngs, pa.binary()), pa.array(paths, pa.string())],
                                                         fields=list(_IMAGE_TYPE)))  # fmt: skip
                continue
            values = np.ascontiguousarray(columns[field.name])
            if pa.types.is_fixed_size_list(field.type):
                flat = pa.array(values.reshape(-1), field.type.value_type)
                arrays.append(pa.FixedSizeListArray.from_arrays(flat, field.type.list_size))
            else:
                arrays.append(pa.array(values, field.type))
        return pa.Table.from_arrays(arrays, schema=self._schema)

    def _check_consistent(self, episode: Episode, where: str) -> None:
        cameras = {camera: tuple(int(d) for d in frames.shape[1:]) for camera, frames in episode.steps.images.items()}
        hz = episode.metadata.control_hz
        if self._cameras is None:
            if float(hz) != round(hz):
                raise DatasetError(f"{where}: key 'metadata/control_hz' = {hz!r}: LeRobot needs a whole number of fps")
            self._fps = round(hz)
            self._cameras = cameras
            self._features = sim2real_features(cameras, self.video)
            fields = [pa.field(key, arrow_type(ft)) for key, ft in self._features.items() if ft["dtype"] != "video"]
            self._schema = pa.schema(fields)
        elif cameras != self._cameras:
            raise DatasetError(f"{where}: cameras/frame shapes {cameras} differ from the dataset's {self._cameras}")
        elif hz != self._fps:
            raise DatasetError(f"{where}: key 'metadata/control_hz' = {hz!r} differs from the dataset's fps "
                               f"{self._fps}")  # fmt: skip

    def _flush_episodes(self) -> None:
        if not self._pending:
            return
        table = pa.Table.from_pylist(self._pending)
        chunk, file = self._episodes.next_location()
        table = table.append_column("meta/episodes/chunk_index", pa.array([chunk] * len(table), pa.int64()))
        table = table.append_column("meta/episodes/file_index", pa.array([file] * len(table), pa.int64()))
        self._episodes.write(table)
        self._pending = []

    def _info(self) -> dict[str, Any]:
        features = self._features
        for camera, writer in self._videos.items():
            first = self.path / VIDEO_PATH.format(video_key=writer.key, chunk_index=0, file_index=0)
            features[camera_feature(camera)]["info"] = video_info(first)
        return {
            "codebase_version": CODEBASE_VERSION,
            "robot_type": self.robot_type,
            "total_episodes": self._num_episodes,
            "total_frames": self._num_frames,
            "total_tasks": len(self._tasks),
            "chunks_size": self.chunks_size,
            "data_files_size_in_mb": self.data_limit,
            "video_files_size_in_mb": self.video_limit,
            "fps": self._fps,
            "splits": {"train": f"0:{self._num_episodes}"},
            "data_path": DATA_PATH,
            "video_path": VIDEO_PATH if self.video else None,
            "features": features,
        }

    def close(self) -> None:
        """Finish the data, video and episode files, then write ``tasks.parquet``, ``stats.json`` and
        ``info.json`` (last). Idempotent; a writer that wrote nothing leaves no dataset."""
        if self._closed:
            return
        self._closed = True
        self._data.close()
        for writer in self._videos.values():
            writer.close()
        self._flush_episodes()
        self._episodes.close()
        if self._cameras is None:
            return
        tasks_path = self.path / TASKS_PATH
        tasks_path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(tasks_table(list(self._tasks)), tasks_path)
        _write_json(self.path / STATS_PATH, stats_json(self._stats or {}))
        _write_json(self.path / INFO_PATH, self._info())


# ---------------------------------------------------------------------------------------------
# mappings


@dataclass(frozen=True)
class LeRobotMapping(EpisodeMapping):
    """How a LeRobot dataset maps onto the canonical episode (:class:`~sim2real.datasets.rlds_mapping.EpisodeMapping`).

    Keys are LeRobot feature names; ``cameras=None`` takes every image or video feature
    ``observation.images.<cam>`` as camera ``<cam>`` (other image features by their full key).
    ``control_hz=0`` takes the dataset's ``fps``. ``auto`` (the generic mapping) decides per
    dataset: the state is used when it is our 14-D layout (by its names), else it is unknown (NaN);
    the action is ours when its names are :data:`~sim2real.datasets.schema.ACTION_NAMES`, else
    it is kept as recorded and ``action_space`` says ``joint_position`` (joint or motor names)
    or ``unknown``.
    """

    state_key: str = STATE_KEY
    action_key: str = ACTION_KEY
    instruction_key: str = "task"
    control_hz: float = 0.0
    require_is_last: bool = False
    auto: bool = False


LEROBOT_MAPPINGS: Registry[LeRobotMapping] = Registry("LeRobot mapping")

#: Datasets written by :class:`LeRobotEpisodeWriter`: every canonical field back, exactly.
SIM2REAL = LEROBOT_MAPPINGS.register("sim2real")(
    LeRobotMapping(name="sim2real", sim2real_metadata=True, require_is_last=True)
)
#: Any other LeRobot dataset (real robots, other arms, humanoids): see :class:`LeRobotMapping`.
GENERIC = LEROBOT_MAPPINGS.register("lerobot")(LeRobotMapping(name="lerobot", auto=True, action_space="unknown"))


def _joint_like(names: list[str]) -> bool:
    """Whether action names read as joint or motor positions (``shoulder_pan.pos``, ``joint_3``, ``left_hip``)."""
    words = ("joint", ".pos", "shoulder", "elbow", "wrist", "hip", "knee", "ankle", "waist", "motor")
    return bool(names) and all(any(word in name.lower() for word in words) or name.lower() == "gripper"
                               for name in names)  # fmt: skip


def _feature_names(feature: Mapping[str, Any]) -> list[str]:
    names = feature.get("names")
    if isinstance(names, Mapping):  # {"motors": [...]} in older datasets
        names = next(iter(names.values()), [])
    return [str(n) for n in names] if isinstance(names, list) else []


# ---------------------------------------------------------------------------------------------
# reader


@dataclass(frozen=True)
class _EpisodeFiles:
    """Where one episode's rows and frames are: the data file and its first row there, each video
    file and the time of the episode's first frame in it (s)."""

    index: int
    length: int
    data: Path
    row: int
    videos: dict[str, tuple[Path, float]]
    tasks: tuple[str, ...]
    metadata_json: str | None


class _DataFile:
    """One parquet file read by row ranges through its row groups (rows of other episodes are not decoded)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.file = pq.ParquetFile(path)
        self.columns = set(self.file.schema_arrow.names)
        counts = [self.file.metadata.row_group(i).num_rows for i in range(self.file.num_row_groups)]
        self.starts = list(np.concatenate([[0], np.cumsum(counts)]).astype(int))

    def rows(self, start: int, stop: int, columns: list[str]) -> pa.Table:
        if stop > self.starts[-1]:
            raise CorruptDataError(f"{self.path}: holds {self.starts[-1]} rows, rows {start}-{stop - 1} are needed")
        first = bisect.bisect_right(self.starts, start) - 1
        last = bisect.bisect_left(self.starts, stop) - 1
        groups = list(range(first, max(last, first) + 1))
        table = self.file.read_row_groups(groups, columns=columns)
        return table.slice(start - self.starts[first], stop - start)


@DATASET_READERS.register("lerobot")
class LeRobotDatasetReader(EpisodeReader):
    """Episodes of a LeRobot dataset (v3.0, v2.1 or v2.0) mapped onto the canonical episode.

    ``mapping``: a :data:`LEROBOT_MAPPINGS` name (``sim2real``, ``lerobot``), a :class:`LeRobotMapping`,
    or None: ``sim2real`` for datasets our writer made, ``lerobot`` (generic) for any other.
    Video files stay open (one decoder each) until :meth:`close`.
    """

    def __init__(self, path: str | Path, mapping: str | LeRobotMapping | None = None) -> None:
        self.path = Path(path)
        info_path = self.path / INFO_PATH
        if not info_path.is_file():
            raise DatasetError(f"{self.path}: not a LeRobot dataset (no {INFO_PATH})")
        with reading(str(info_path)):
            self.info: dict[str, Any] = json.loads(info_path.read_text())
        if not isinstance(self.info, dict) or not isinstance(self.info.get("features"), dict):
            raise DatasetError(f"{info_path}: expected a JSON object with 'features'")
        self.version = str(self.info.get("codebase_version"))
        if self.version not in READABLE_VERSIONS:
            raise DatasetError(f"{info_path}: unknown codebase_version {self.version!r}; this reader reads "
                               f"{', '.join(READABLE_VERSIONS)}")  # fmt: skip
        self.fps = float(self.info.get("fps") or 0)
        if self.fps <= 0:
            raise DatasetError(f"{info_path}: fps is {self.info.get('fps')!r}, expected a positive number")
        self.features: dict[str, dict[str, Any]] = self.info["features"]
        self.video_keys = [k for k, ft in self.features.items() if ft.get("dtype") == "video"]
        self.image_keys = [k for k, ft in self.features.items() if ft.get("dtype") == "image"]
        if self.version == CODEBASE_VERSION:
            self.tasks = read_tasks(self.path / TASKS_PATH)
            self._episodes = self._episodes_v3()
        else:
            self.tasks = self._tasks_v2()
            self._episodes = self._episodes_v2()
        self.mapping = self._resolve_mapping(mapping)
        self.cameras = self._cameras()
        self._data_files: dict[Path, _DataFile] = {}
        self._video_files: dict[Path, VideoReader] = {}

    @classmethod
    def detect(cls, path: Path) -> bool:
        """A folder with ``meta/info.json``."""
        return path.is_dir() and (path / INFO_PATH).is_file()

    def __len__(self) -> int:
        return len(self._episodes)

    # -- metadata tables -------------------------------------------------------------------------
    def _episodes_v3(self) -> list[_EpisodeFiles]:
        files = sorted((self.path / EPISODES_DIR).glob("*/*.parquet"))
        if not files:
            raise DatasetError(f"{self.path / EPISODES_DIR}: no episode parquet files")
        rows: list[dict[str, Any]] = []
        for file in files:
            with reading(str(file)):
                schema = pq.read_schema(file)
                keep = [name for name in schema.names if not name.startswith("stats/")]
                rows += pq.read_table(file, columns=keep).to_pylist()
        rows.sort(key=lambda r: int(r["episode_index"]))
        data_template = str(self.info.get("data_path") or DATA_PATH)
        video_template = str(self.info.get("video_path") or VIDEO_PATH)
        file_starts: dict[Path, int] = {}
        located = []
        for position, row in enumerate(rows):
            where = f"{files[0].parent.parent} (episode {row.get('episode_index')})"
            try:
                if int(row["episode_index"]) != position:
                    raise DatasetError(f"{where}: episode indices are not 0..{len(rows) - 1} ({position} is missing)")
                data = self.path / data_template.format(chunk_index=int(row["data/chunk_index"]),
                                                        file_index=int(row["data/file_index"]))  # fmt: skip
                start = int(row["dataset_from_index"])
                file_starts[data] = min(file_starts.get(data, start), start)
                videos = {
                    key: (self.path / video_template.format(video_key=key,
                                                            chunk_index=int(row[f"videos/{key}/chunk_index"]),
                                                            file_index=int(row[f"videos/{key}/file_index"])),
                          float(row[f"videos/{key}/from_timestamp"]))
                    for key in self.video_keys
                }  # fmt: skip
                length = int(row["length"])
                if int(row["dataset_to_index"]) - start != length:
                    raise DatasetError(f"{where}: dataset_to_index - dataset_from_index != length {length}")
            except KeyError as error:
                raise DatasetError(f"{where}: meta/episodes has no column {error.args[0]!r}") from None
            located.append((row, data, start, videos, length))
        return [
            _EpisodeFiles(int(row["episode_index"]), length, data, start - file_starts[data], videos,
                          tuple(row.get("tasks") or ()), row.get(METADATA_COLUMN))
            for row, data, start, videos, length in located
        ]  # fmt: skip

    def _jsonl(self, name: str) -> list[dict[str, Any]]:
        path = self.path / "meta" / name
        if not path.is_file():
            raise DatasetError(f"{path}: missing (a LeRobot {self.version} dataset has meta/{name})")
        with reading(str(path)):
            return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def _tasks_v2(self) -> list[str]:
        by_index = {int(r["task_index"]): str(r["task"]) for r in self._jsonl("tasks.jsonl")}
        return [by_index[i] for i in sorted(by_index)]

    def _episodes_v2(self) -> list[_EpisodeFiles]:
        rows = sorted(self._jsonl("episodes.jsonl"), key=lambda r: int(r["episode_index"]))
        chunks_size = int(self.info.get("chunks_size") or DEFAULT_CHUNK_SIZE)
        data_template = str(self.info["data_path"])
        video_template = str(self.info.get("video_path") or "")
        out = []
        for row in rows:
            index = int(row["episode_index"])
            names = {"episode_chunk": index // chunks_size, "episode_index": index}
            videos = {key: (self.path / video_template.format(video_key=key, **names), 0.0) for key in self.video_keys}
            out.append(_EpisodeFiles(index, int(row["length"]), self.path / data_template.format(**names), 0, videos,
                                     tuple(row.get("tasks") or ()), None))  # fmt: skip
        return out

    def _resolve_mapping(self, mapping: str | LeRobotMapping | None) -> LeRobotMapping:
        if isinstance(mapping, LeRobotMapping):
            return mapping
        if mapping is None:
            ours = bool(self._episodes) and self._episodes[0].metadata_json is not None
            return SIM2REAL if ours else GENERIC
        return LEROBOT_MAPPINGS.get(mapping)

    def _cameras(self) -> dict[str, str]:
        if self.mapping.cameras is not None:
            for key in self.mapping.cameras.values():
                if key not in self.video_keys + self.image_keys:
                    raise DatasetError(f"{self.path / INFO_PATH}: mapping {self.mapping.name!r} needs camera feature "
                                       f"{key!r}; the dataset has {self.video_keys + self.image_keys}")  # fmt: skip
            return dict(self.mapping.cameras)
        return {key.removeprefix(IMAGE_PREFIX): key for key in self.video_keys + self.image_keys}

    # -- episodes --------------------------------------------------------------------------------
    def location(self, index: int) -> _EpisodeFiles:
        """Where episode ``index``'s rows and frames are."""
        return self._episodes[self._check_index(index)]

    def language_instruction(self, index: int) -> str:
        """Episode ``index``'s first task without reading any frame."""
        files = self.location(index)
        return files.tasks[0] if files.tasks else ""

    def metadata(self, index: int) -> EpisodeMetadata:
        """Episode ``index``'s metadata without reading any frame (our datasets only)."""
        files = self.location(index)
        if self.mapping.sim2real_metadata and files.metadata_json is not None:
            return EpisodeMetadata.from_dict(json.loads(files.metadata_json), f"{self.path} (episode {index})")
        return self._foreign_metadata(files, None, None)

    def _data_file(self, path: Path, where: str) -> _DataFile:
        if path not in self._data_files:
            if not path.is_file():
                raise DatasetError(f"{path} ({where}): data file is missing")
            with reading(f"{path} ({where})"):
                self._data_files[path] = _DataFile(path)
        return self._data_files[path]

    def _video_file(self, path: Path, key: str, where: str) -> VideoReader:
        if path not in self._video_files:
            if not path.is_file():
                raise DatasetError(f"{path} ({where}): video file of {key!r} is missing")
            self._video_files[path] = VideoReader(path)
        return self._video_files[path]

    def episode(self, index: int) -> Episode:
        """Episode ``index`` as a validated canonical episode."""
        files = self.location(index)
        where = f"episode {files.index}"
        data = self._data_file(files.data, where)
        needed = [k for k, ft in self.features.items() if ft.get("dtype") != "video"]
        missing = [k for k in needed if k not in data.columns]
        if missing:
            raise DatasetError(f"{files.data} ({where}): no column {missing[0]!r}, which {INFO_PATH} declares")
        with reading(f"{files.data} ({where})"):
            table = data.rows(files.row, files.row + files.length, needed)
        source = f"{files.data} ({where})"
        episode_column = table.column("episode_index").to_numpy()
        if (episode_column != files.index).any():
            raise CorruptDataError(f"{source}: rows {files.row}-{files.row + files.length - 1} belong to episodes "
                                   f"{sorted(set(episode_column.tolist()))}, not {files.index}")  # fmt: skip
        timestamps = table.column("timestamp").to_numpy().astype(np.float64)
        images = {camera: self._frames(files, key, table, timestamps, where) for camera, key in self.cameras.items()}
        if self.mapping.image_size is not None:
            images = {camera: resize_frames(frames, self.mapping.image_size) for camera, frames in images.items()}
        columns = {name: self._column(table, name, source) for name in table.column_names
                   if name not in self.image_keys}  # fmt: skip
        return self._assemble(files, images, columns, source)

    def _frames(self, files: _EpisodeFiles, key: str, table: pa.Table, times: np.ndarray, where: str) -> np.ndarray:
        if key in self.image_keys:
            column = table.column(key).to_pylist()
            frames = []
            for t, cell in enumerate(column):
                data = cell.get("bytes") if isinstance(cell, dict) else None
                if data is None:
                    raise DatasetError(f"{files.data} ({where}): image {key!r} of frame {t} holds no bytes")
                frame = decode_image(data, f"{files.data} ({where}), key {key!r}, frame {t}")
                frames.append(frame if frame.ndim == 3 else np.repeat(frame[..., None], 3, axis=2))
            return np.stack(frames)
        path, start = files.videos[key]
        video = self._video_file(path, key, where)
        return video.frames_at(start + times, 0.5 / self.fps, f"{path} ({where}, {key!r})")

    @staticmethod
    def _column(table: pa.Table, name: str, source: str) -> np.ndarray:
        column = table.column(name).combine_chunks()
        if (
            pa.types.is_list(column.type)
            or pa.types.is_fixed_size_list(column.type)
            or pa.types.is_large_list(column.type)
        ):
            flat = column.flatten().to_numpy(zero_copy_only=False)
            if len(column) and len(flat) % len(column):
                raise CorruptDataError(f"{source}: column {name!r} has lists of different lengths")
            return flat.reshape(len(column), -1) if len(column) else flat.reshape(0, 0)
        if pa.types.is_string(column.type) or pa.types.is_struct(column.type):
            return np.asarray(column.to_pylist(), dtype=object)
        return column.to_numpy(zero_copy_only=False)

    def _assemble(
        self, files: _EpisodeFiles, images: dict[str, np.ndarray], columns: dict[str, np.ndarray], source: str
    ) -> Episode:
        mapping = self.mapping
        count = files.length
        task_index = columns["task_index"].astype(np.int64)
        if len(task_index) and not 0 <= int(task_index[0]) < len(self.tasks):
            raise DatasetError(f"{source}: task_index {int(task_index[0])} is not in the {len(self.tasks)} tasks")
        instruction = self.tasks[int(task_index[0])] if len(task_index) else ""
        flags = np.zeros(count, dtype=bool)
        is_first = flags.copy()
        is_first[0] = True
        is_last = flags.copy()
        is_last[-1] = True
        if mapping.sim2real_metadata:
            done = columns[DONE_KEY].astype(bool)
            steps = EpisodeSteps(
                images=images, state=map_state(columns[mapping.state_key], None, source, mapping.state_key),
                action=map_action(columns[mapping.action_key], mapping, source, mapping.action_key),
                reward=columns[REWARD_KEY].astype(np.float32), discount=columns[DISCOUNT_KEY].astype(np.float32),
                is_first=columns["frame_index"] == 0, is_last=done,
                is_terminal=columns[TERMINAL_KEY].astype(bool), language_instruction=instruction,
            )  # fmt: skip
            if files.metadata_json is None:
                raise DatasetError(f"{source}: meta/episodes has no {METADATA_COLUMN!r} (mapping 'sim2real')")
            metadata = EpisodeMetadata.from_dict(json.loads(files.metadata_json), source)
            episode = Episode(steps=steps, metadata=metadata)
            validate_episode(episode, source, require_is_last=mapping.require_is_last)
            return episode
        state, action, space = self._state_action(columns, count, source)
        reward = columns[REWARD_KEY].astype(np.float32).reshape(count) if REWARD_KEY in columns else flags + 0.0
        success = bool(columns[SUCCESS_KEY].astype(bool).any()) if SUCCESS_KEY in columns else False
        steps = EpisodeSteps(
            images=images, state=state, action=action, reward=reward.astype(np.float32),
            discount=np.ones(count, np.float32), is_first=is_first, is_last=is_last, is_terminal=flags.copy(),
            language_instruction=instruction,
        )  # fmt: skip
        episode = Episode(steps=steps, metadata=self._foreign_metadata(files, space, success))
        standin = episode
        if action.shape[1:] != (ACTION_DIM,) or not np.isfinite(action).all():  # checked by the replay harness
            standin = Episode(replace(steps, action=np.zeros((count, ACTION_DIM), np.float32)), episode.metadata)
        validate_episode(standin, source, require_is_last=False)
        return episode

    def _state_action(
        self, columns: dict[str, np.ndarray], count: int, source: str
    ) -> tuple[np.ndarray, np.ndarray, str]:
        mapping = self.mapping
        state = np.full((count, STATE_DIM), np.nan, np.float32)
        state_feature = self.features.get(mapping.state_key, {})
        if mapping.state_key in columns:
            values = columns[mapping.state_key].reshape(count, -1)
            ours = _feature_names(state_feature) == list(STATE_NAMES)
            if not mapping.auto or ours:
                slots = mapping.state_slots if not (mapping.auto and ours) else None
                state = map_state(values.astype(np.float32), slots, source, mapping.state_key)
        elif not mapping.auto:
            raise DatasetError(f"{source}: mapping {mapping.name!r} needs column {mapping.state_key!r}")
        if mapping.action_key not in columns:
            raise DatasetError(f"{source}: mapping {mapping.name!r} needs column {mapping.action_key!r}")
        raw = columns[mapping.action_key].reshape(count, -1).astype(np.float32)
        space = mapping.action_space
        if mapping.auto:
            names = _feature_names(self.features.get(mapping.action_key, {}))
            space = "ee_delta" if names == list(ACTION_NAMES) else "joint_position" if _joint_like(names) else "unknown"
        return state, map_action(raw, replace(mapping, action_space=space), source, mapping.action_key), space

    def _foreign_metadata(self, files: _EpisodeFiles, space: str | None, success: bool | None) -> EpisodeMetadata:
        mapping = self.mapping
        extras: dict[str, Any] = {"source_format": f"lerobot {self.version}", "source_episode_index": files.index}
        if space is not None:
            extras["action_space"] = space
        return EpisodeMetadata(
            episode_id=f"{self.path.name}/{files.index:06d}",
            episode_index=files.index,
            seed=-1,
            task=mapping.task or self.path.name,
            backend=mapping.backend,
            robot=mapping.robot or str(self.info.get("robot_type") or ""),
            control_hz=float(mapping.control_hz or self.fps),
            split="train",
            success=bool(success),
            generator_version=f"lerobot:{self.version}",
            extras=extras,
        )

    def __iter__(self) -> Iterator[Episode]:
        for index in range(len(self)):
            yield self.episode(index)

    def close(self) -> None:
        """Close the open video files."""
        for video in self._video_files.values():
            video.close()
        self._video_files.clear()
        self._data_files.clear()


def finalize_lerobot(run: RunShards, format_name: str) -> None:
    """Write ``lerobot/index.json`` and, once every shard is recorded, merge the shards into the one
    LeRobot dataset at ``lerobot/`` that ``lerobot``'s ``LeRobotDataset`` opens."""
    from sim2real.datasets.lerobot_merge import merge_datasets  # it reads and writes through this module

    write_shard_index(run, format_name)
    if run.complete:
        merge_datasets(run.shard_paths(format_name), run.root / format_name)


register_shard_format(
    ShardFormat("lerobot", LeRobotEpisodeWriter, numbered_shards("lerobot", ""), LeRobotOptions, finalize_lerobot)
)
