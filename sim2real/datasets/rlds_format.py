"""RLDS exactly as TensorFlow Datasets writes it, read and written without TensorFlow.

Layout (one directory per dataset version)::

    <root>/<name>/<version>/
        dataset_info.json                         splits, shard lengths, byte counts
        features.json                             the TFDS feature tree (see below)
        <name>-<split>.tfrecord-00000-of-00003    one serialized tf.train.Example per episode
        ...

Feature tree of a sim2real dataset (Open X-Embodiment key names; ``T`` steps)::

    steps: Dataset
        observation/image            Image uint8 (H, W, 3), PNG (or JPEG)  camera ``front``
        observation/wrist_image      Image uint8 (H, W, 3)                 camera ``wrist``
        observation/<cam>_image      Image uint8 (H, W, 3)                 any other camera
        observation/state            Tensor float32 (14,)   layout schema.STATE_NAMES
        action                       Tensor float32 (7,)    [dx, dy, dz, droll, dpitch, dyaw, gripper]
        reward, discount             Scalar float32
        is_first, is_last, is_terminal  Scalar bool
        language_instruction         Text (the episode's instruction on every step)
    episode_metadata:
        file_path, episode_id, task, backend, robot, split, scene_spec, scene_spec_hash,
        generator_version, extras_json (canonical JSON of ``metadata.extras``)   Text
        episode_index, seed          Scalar int64
        control_hz                   Scalar float32 (the writer refuses rates float32 cannot hold exactly)
        success                      Scalar bool

JPEG frames are decoded with Pillow (libjpeg's accurate integer DCT), which equals
``tf.io.decode_jpeg(..., dct_method="INTEGER_ACCURATE")``; TFDS's default decoding uses the
fast DCT and can differ by a few grey levels. PNG decoding is exact everywhere.

In the Example, step features are flattened TFDS-style: ``steps/action`` is one float list of
T * 7 values, ``steps/observation/image`` a list of T encoded images, booleans are int64 0/1.
``file_path`` holds the episode id (simulated episodes have no source file).

Reading goes through an :class:`~sim2real.datasets.rlds_mapping.RLDSMapping`, so foreign RLDS
(e.g. BridgeData) reads into the canonical episode too. Every record's CRCs are checked; a
missing file, key, wrong dtype or shape raises :class:`DatasetError` naming the file and episode.
"""

from __future__ import annotations

import bisect
import itertools
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from sim2real.datasets.imagecodec import IMAGE_FORMATS, decode_image, encode_images, resize_frames
from sim2real.datasets.integrity import write_text_atomic
from sim2real.datasets.registry import (
    DATASET_READERS,
    DATASET_WRITERS,
    EpisodeReader,
    EpisodeWriter,
    RunShards,
    ShardFormat,
    ShardSlot,
    register_shard_format,
)
from sim2real.datasets.rlds_mapping import GRIPPER_CONVENTIONS, RLDS_MAPPINGS, RLDSMapping
from sim2real.datasets.schema import (
    ACTION_DIM,
    STATE_DIM,
    DatasetError,
    Episode,
    EpisodeMetadata,
    EpisodeSteps,
    canonical_json,
    validate_episode,
)
from sim2real.datasets.tfds_spec import (
    STEPS,
    FeatureSpec,
    JSONDict,
    SplitInfo,
    dataset_feature,
    dataset_info_json,
    decode_tensor,
    decode_text,
    features_dict,
    get_values,
    image_feature,
    parse_features,
    parse_splits,
    read_json,
    tensor_feature,
    text_feature,
)
from sim2real.datasets.tfrecord_io import (
    FeatureValue,
    TFRecordWriter,
    iter_records,
    parse_example,
    read_record,
    record_offsets,
    serialize_example,
)

DATASET_INFO = "dataset_info.json"
FEATURES = "features.json"
#: the name and version of a sim2real RLDS dataset (``<root>/<name>/<version>/``)
DATASET_NAME, DATASET_VERSION = "sim2real_dataset", "1.0.0"
_SPECIAL_CAMERA_KEYS = {"front": "image", "wrist": "wrist_image"}


def camera_key(camera: str) -> str:
    """Observation key of a camera: ``front`` -> ``image``, ``wrist`` -> ``wrist_image``, else ``<cam>_image``."""
    return _SPECIAL_CAMERA_KEYS.get(camera, f"{camera}_image")


def camera_from_key(key: str) -> str | None:
    """Inverse of :func:`camera_key` (None for keys that are not camera keys)."""
    for camera, special in _SPECIAL_CAMERA_KEYS.items():
        if key == special:
            return camera
    return key.removesuffix("_image") if key.endswith("_image") and key != "_image" else None


# ---------------------------------------------------------------------------------------------
# features.json for sim2real datasets

_STEP_DOCS = {
    "state": "Proprio state: EE position (3, m), EE roll/pitch/yaw (3, rad), gripper opening (1, 1 = open), "
    "joint positions (7, rad), in the robot base frame.",
    "action": "End-effector delta in the robot base frame: [dx, dy, dz (m), droll, dpitch, dyaw (rad), "
    "gripper (1 = open)].",
    "reward": "Reward after the step's action (1 on success for demos).",
    "discount": "Discount, 1 for demos.",
    "is_first": "True on the first step of the episode.",
    "is_last": "True on the last step of the episode.",
    "is_terminal": "True on the last step if the episode ended in a terminal state.",
    "language_instruction": "Language instruction of the episode.",
}

_METADATA_DOCS: dict[str, tuple[str, str]] = {
    "file_path": ("text", "The episode id (simulated episodes have no source file)."),
    "episode_id": ("text", "Unique episode id."),
    "episode_index": ("int64", "Index of the episode in its generation run."),
    "seed": ("int64", "The episode's derived seed."),
    "task": ("text", "Task name."),
    "backend": ("text", "Simulator backend."),
    "robot": ("text", "Robot name."),
    "control_hz": ("float32", "Control rate (Hz)."),
    "split": ("text", "Scene split (train or a held-out variant)."),
    "success": ("bool", "Whether the task succeeded."),
    "scene_spec": ("text", "Canonical SceneSpec JSON."),
    "scene_spec_hash": ("text", "sha256 of the SceneSpec JSON."),
    "generator_version": ("text", "Version of the generator that wrote the episode."),
    "extras_json": ("text", "Canonical JSON of extra scalars (clip counts, attempts, ...)."),
}


def sim2real_features(cameras: Mapping[str, tuple[int, ...]], image_format: str) -> JSONDict:
    """The ``features.json`` tree of a sim2real dataset with the given cameras and frame shapes."""
    observation = {
        camera_key(camera): image_feature(shape, image_format, f"Camera {camera!r} RGB.")
        for camera, shape in cameras.items()
    }
    observation["state"] = tensor_feature((STATE_DIM,), "float32", _STEP_DOCS["state"])
    step = {
        "observation": features_dict(observation),
        "action": tensor_feature((ACTION_DIM,), "float32", _STEP_DOCS["action"]),
        "language_instruction": text_feature(_STEP_DOCS["language_instruction"]),
    }
    step |= {key: tensor_feature((), "float32", _STEP_DOCS[key]) for key in ("reward", "discount")}
    step |= {key: tensor_feature((), "bool", _STEP_DOCS[key]) for key in ("is_first", "is_last", "is_terminal")}
    metadata = {
        key: text_feature(doc) if kind == "text" else tensor_feature((), kind, doc)
        for key, (kind, doc) in _METADATA_DOCS.items()
    }
    return features_dict({STEPS: dataset_feature(features_dict(step)), "episode_metadata": features_dict(metadata)})


def _metadata_features(meta: EpisodeMetadata) -> dict[str, FeatureValue]:
    values: dict[str, FeatureValue] = {
        "file_path": ("bytes", [meta.episode_id.encode()]),
        "episode_id": ("bytes", [meta.episode_id.encode()]),
        "episode_index": ("int64", [meta.episode_index]),
        "seed": ("int64", [meta.seed]),
        "task": ("bytes", [meta.task.encode()]),
        "backend": ("bytes", [meta.backend.encode()]),
        "robot": ("bytes", [meta.robot.encode()]),
        "control_hz": ("float", [meta.control_hz]),
        "split": ("bytes", [meta.split.encode()]),
        "success": ("int64", [int(meta.success)]),
        "scene_spec": ("bytes", [meta.scene_spec_json.encode()]),
        "scene_spec_hash": ("bytes", [meta.scene_spec_hash.encode()]),
        "generator_version": ("bytes", [meta.generator_version.encode()]),
        "extras_json": ("bytes", [canonical_json(meta.extras).encode()]),
    }
    return {f"episode_metadata/{key}": value for key, value in values.items()}


def episode_to_example(ep: Episode, image_format: str = "png", png_level: int = 1, jpeg_quality: int = 95) -> bytes:
    """One canonical episode as a serialized ``tf.train.Example`` in the sim2real RLDS layout."""
    steps = ep.steps
    features: dict[str, FeatureValue] = {}
    for camera, frames in steps.images.items():
        encoded = encode_images(frames, image_format, png_level=png_level, jpeg_quality=jpeg_quality)
        features[f"steps/observation/{camera_key(camera)}"] = ("bytes", encoded)
    features["steps/observation/state"] = ("float", steps.state)
    features["steps/action"] = ("float", steps.action)
    features["steps/reward"] = ("float", steps.reward)
    features["steps/discount"] = ("float", steps.discount)
    for key in ("is_first", "is_last", "is_terminal"):
        features[f"steps/{key}"] = ("int64", getattr(steps, key))
    features["steps/language_instruction"] = ("bytes", [steps.language_instruction.encode()] * ep.num_steps)
    features |= _metadata_features(ep.metadata)
    return serialize_example(features)


# ---------------------------------------------------------------------------------------------
# writer


@DATASET_WRITERS.register("rlds")
class RLDSEpisodeWriter(EpisodeWriter):
    """Writes one split of an RLDS dataset at ``<root>/<name>/<version>/``.

    Episodes are appended to shards of ``episodes_per_shard`` episodes (written under
    temporary names); ``close()`` renames them to TFDS's ``...-00000-of-0000N`` names and
    writes ``features.json`` and then ``dataset_info.json`` (merging the splits of an existing
    dataset_info.json, so that several splits can be written one after the other). Images are
    PNG (lossless, zlib level ``png_level``) or JPEG (``jpeg_quality``). Memory does not grow
    with the number of episodes beyond one integer per shard.
    """

    def __init__(
        self,
        root: str | Path,
        name: str = DATASET_NAME,
        version: str = DATASET_VERSION,
        split: str = "train",
        *,
        episodes_per_shard: int = 64,
        image_format: str = "png",
        png_level: int = 1,
        jpeg_quality: int = 95,
        overwrite: bool = False,
    ) -> None:
        if image_format not in IMAGE_FORMATS:
            raise ValueError(f"unknown image format {image_format!r}; known formats: {', '.join(IMAGE_FORMATS)}")
        if episodes_per_shard < 1:
            raise ValueError(f"episodes_per_shard must be >= 1, got {episodes_per_shard}")
        self.path = Path(root) / name / version
        self.name, self.version, self.split = name, version, split
        self.episodes_per_shard = episodes_per_shard
        self._codec = {"image_format": image_format, "png_level": png_level, "jpeg_quality": jpeg_quality}
        self._cameras: dict[str, tuple[int, ...]] | None = None
        self._shard_lengths: list[int] = []
        self._num_bytes = 0
        self._writer: TFRecordWriter | None = None
        self._closed = False
        self.path.mkdir(parents=True, exist_ok=True)
        self._clear_split(overwrite)

    def _shard_glob(self) -> list[Path]:
        final = self.path.glob(f"{self.name}-{self.split}.tfrecord-*")
        return sorted(itertools.chain(final, self.path.glob(self._temp_name("*"))))

    def _temp_name(self, index: int | str) -> str:
        suffix = f"{index:05d}" if isinstance(index, int) else index
        return f".{self.name}-{self.split}.tfrecord-{suffix}.incomplete"

    def _clear_split(self, overwrite: bool) -> None:
        existing = self._shard_glob()
        if existing and not overwrite:
            raise DatasetError(f"{self.path}: split {self.split!r} already has shards (pass overwrite=True)")
        for path in existing:
            path.unlink()

    @property
    def num_episodes(self) -> int:
        """Episodes written so far."""
        return sum(self._shard_lengths)

    def write(self, episode: Episode) -> None:
        """Validate, encode and append one episode."""
        if self._closed:
            raise DatasetError(f"{self.path}: writer is closed")
        where = f"{self.path} (split {self.split!r}, episode {self.num_episodes})"
        validate_episode(episode, where)
        self._check_consistent(episode, where)
        data = episode_to_example(episode, **self._codec)
        if self._writer is None or self._shard_lengths[-1] >= self.episodes_per_shard:
            self._next_shard()
        assert self._writer is not None
        self._writer.write(data)
        self._shard_lengths[-1] += 1
        self._num_bytes += len(data)

    def _check_consistent(self, episode: Episode, where: str) -> None:
        cameras = {camera: tuple(int(d) for d in frames.shape[1:]) for camera, frames in episode.steps.images.items()}
        if self._cameras is None:
            self._cameras = cameras
        elif cameras != self._cameras:
            raise DatasetError(f"{where}: cameras/frame shapes {cameras} differ from the dataset's {self._cameras}")
        hz = episode.metadata.control_hz
        if float(np.float32(hz)) != hz:
            raise DatasetError(f"{where}: key 'metadata/control_hz' = {hz!r} is not exactly representable as float32")

    def _next_shard(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._writer = TFRecordWriter(self.path / self._temp_name(len(self._shard_lengths)))
        self._shard_lengths.append(0)

    def close(self) -> None:
        """Finalise shard names, ``features.json`` and ``dataset_info.json``; idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._writer is not None:
            self._writer.close()
        if self._cameras is None:
            return  # nothing written: leave no dataset behind
        split = SplitInfo(self.split, tuple(self._shard_lengths), self._num_bytes)
        for index, filename in enumerate(split.shard_filenames(self.name)):
            (self.path / self._temp_name(index)).rename(self.path / filename)
        self._write_features()
        self._write_info(split)

    def _write_features(self) -> None:
        assert self._cameras is not None
        tree = sim2real_features(self._cameras, str(self._codec["image_format"]))
        path = self.path / FEATURES
        if path.exists() and read_json(path) != tree:
            raise DatasetError(f"{path}: existing features differ from split {self.split!r}'s (cameras, image sizes)")
        path.write_text(json.dumps(tree, indent=4) + "\n")

    def _write_info(self, split: SplitInfo) -> None:
        path = self.path / DATASET_INFO
        splits = parse_splits(read_json(path), path) if path.exists() else {}
        splits[split.name] = split
        info = dataset_info_json(self.name, self.version, splits, "Simulated episodes written by sim2real.")
        path.write_text(json.dumps(info, indent=2) + "\n")


# ---------------------------------------------------------------------------------------------
# reader


def _version_key(path: Path) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in path.name.split("."))
    except ValueError:
        return (-1,)


def _newest_version(path: Path) -> Path | None:
    """The newest ``<path>/<version>/`` holding ``dataset_info.json``, or ``path`` itself if it holds one."""
    if (path / DATASET_INFO).is_file():
        return path
    versions = [child for child in path.iterdir() if child.is_dir() and (child / DATASET_INFO).is_file()]
    return max(versions, key=_version_key) if versions else None


def find_version_dir(path: Path) -> Path | None:
    """The directory holding ``dataset_info.json``: ``path``, its newest version, or its only dataset's newest."""
    if not path.is_dir():
        return None
    found = _newest_version(path)
    if found is not None:
        return found
    datasets = [v for v in (_newest_version(c) for c in path.iterdir() if c.is_dir()) if v is not None]
    return datasets[0] if len(datasets) == 1 else None


@DATASET_READERS.register("rlds")
class RLDSDataset(EpisodeReader):
    """Episodes of one split of an RLDS dataset, mapped onto the canonical episode.

    ``path`` is the version directory (``.../name/1.0.0``), the dataset directory (newest
    version) or a folder with a single dataset. ``mapping`` is a registered mapping name
    (``sim2real``, ``bridge``), an :class:`RLDSMapping`, or None to pick ``sim2real`` for our
    datasets and ``bridge`` for ``bridge_dataset``. Episode ``i`` is located through the
    split's ``shardLengths`` and a per-shard offset index built on first access.
    """

    def __init__(self, path: str | Path, split: str = "train", mapping: str | RLDSMapping | None = None) -> None:
        given = Path(path)
        if not given.exists():
            raise DatasetError(f"{given}: no such file or directory")
        version_dir = find_version_dir(given)
        if version_dir is None:
            raise DatasetError(f"{given}: not an RLDS dataset (no {DATASET_INFO} here or in a version folder)")
        self.path = version_dir
        self.info = read_json(version_dir / DATASET_INFO)
        self.features = parse_features(read_json(version_dir / FEATURES), version_dir / FEATURES)
        self.name = str(self.info.get("name") or version_dir.parent.name)
        self.version = str(self.info.get("version") or version_dir.name)
        self.split = split
        self.split_info = self._split_info(split)
        self.files = self._shard_files()
        self._ends = list(itertools.accumulate(self.split_info.shard_lengths))
        self._offsets: dict[int, list[int]] = {}
        self.mapping = self._resolve_mapping(mapping)
        self._specs = _MappedSpecs.build(self.mapping, self.features, version_dir / FEATURES)

    def _split_info(self, split: str) -> SplitInfo:
        splits = parse_splits(self.info, self.path / DATASET_INFO)
        if split not in splits:
            raise DatasetError(f"{self.path / DATASET_INFO}: no split {split!r}; splits: {', '.join(sorted(splits))}")
        return splits[split]

    def _shard_files(self) -> list[Path]:
        file_format = str(self.info.get("fileFormat") or "tfrecord")
        if file_format != "tfrecord":
            raise DatasetError(f"{self.path / DATASET_INFO}: file format {file_format!r} is not supported")
        files = [self.path / name for name in self.split_info.shard_filenames(self.name, file_format)]
        for file in files:
            if not file.is_file():
                raise DatasetError(f"{file}: shard listed in {DATASET_INFO} is missing")
        return files

    def _resolve_mapping(self, mapping: str | RLDSMapping | None) -> RLDSMapping:
        if isinstance(mapping, RLDSMapping):
            return mapping
        if mapping is None:
            ours = "episode_metadata/extras_json" in self.features
            mapping = "sim2real" if ours else self.name.removesuffix("_dataset")
            if mapping not in RLDS_MAPPINGS:
                known = ", ".join(RLDS_MAPPINGS.names())
                raise DatasetError(
                    f"{self.path}: no built-in mapping for dataset {self.name!r}; pass mapping= (an RLDSMapping "
                    f"or one of: {known})"
                )
        return RLDS_MAPPINGS.get(mapping)

    @classmethod
    def detect(cls, path: Path) -> bool:
        """A directory with ``dataset_info.json`` and ``features.json`` (itself, a version or a dataset below)."""
        version_dir = find_version_dir(path) if path.is_dir() else None
        return version_dir is not None and (version_dir / FEATURES).is_file()

    def __len__(self) -> int:
        return self._ends[-1] if self._ends else 0

    @property
    def cameras(self) -> list[str]:
        """Canonical camera names this reader returns."""
        return list(self._specs.cameras)

    def _locate(self, index: int) -> tuple[int, int]:
        shard = bisect.bisect_right(self._ends, index)
        return shard, index - self._shard_start(shard)

    def _shard_start(self, shard: int) -> int:
        return self._ends[shard - 1] if shard else 0

    def _shard_offsets(self, shard: int) -> list[int]:
        if shard not in self._offsets:
            offsets = record_offsets(self.files[shard], self._shard_start(shard))
            expected = self.split_info.shard_lengths[shard]
            if len(offsets) != expected:
                raise DatasetError(
                    f"{self.files[shard]}: holds {len(offsets)} records but {DATASET_INFO} lists {expected}"
                )
            self._offsets[shard] = offsets
        return self._offsets[shard]

    def raw_example(self, index: int) -> dict[str, FeatureValue]:
        """The flat ``{key: (kind, values)}`` of episode ``index``'s Example, before any mapping."""
        index = self._check_index(index)
        shard, local = self._locate(index)
        where = f"{self.files[shard]} (episode {index})"
        offset = self._shard_offsets(shard)[local]
        data = read_record(self.files[shard], offset, local, self._shard_start(shard))
        return parse_example(data, where)

    def episode(self, index: int) -> Episode:
        """Episode ``index`` of the split as a validated canonical episode."""
        index = self._check_index(index)
        shard, _ = self._locate(index)
        return self._decode(self.raw_example(index), index, f"{self.files[shard]} (episode {index})")

    def __iter__(self) -> Iterator[Episode]:
        """Stream every episode in order, reading each shard once and checking its record count."""
        index = 0
        for shard, file in enumerate(self.files):
            start = index
            for data in iter_records(file, start):
                where = f"{file} (episode {index})"
                yield self._decode(parse_example(data, where), index, where)
                index += 1
            expected = self.split_info.shard_lengths[shard]
            if index - start != expected:
                raise DatasetError(f"{file}: holds {index - start} records but {DATASET_INFO} lists {expected}")

    def _decode(self, features: Mapping[str, FeatureValue], index: int, where: str) -> Episode:
        steps = self._specs.decode_steps(features, where)
        if self.mapping.sim2real_metadata:
            metadata = _sim2real_metadata(features, self.features, where)
        else:
            metadata = self._foreign_metadata(features, index, where)
        episode = Episode(steps=steps, metadata=metadata)
        validate_episode(episode, where, require_is_last=self.mapping.require_is_last)
        return episode

    def _foreign_metadata(self, features: Mapping[str, FeatureValue], index: int, where: str) -> EpisodeMetadata:
        extras = {name: _episode_scalar(features, self.features[key], where) for name, key in self._specs.extras}
        return EpisodeMetadata(
            episode_id=f"{self.name}/{self.split}/{index:06d}",
            episode_index=index,
            seed=-1,
            task=self.mapping.task or self.name,
            backend=self.mapping.backend,
            robot=self.mapping.robot,
            control_hz=float(self.mapping.control_hz),
            split=self.split,
            success=False,
            generator_version=f"rlds:{self.name}/{self.version}",
            extras=extras,
        )


def _episode_scalar(features: Mapping[str, FeatureValue], spec: FeatureSpec, where: str) -> Any:
    """One episode-level value as a Python scalar (text as str)."""
    if spec.kind == "text":
        values = decode_text(features, spec, where)
        if len(values) != 1:
            raise DatasetError(f"{where}: key {spec.key!r} has {len(values)} values, expected 1")
        return values[0]
    return decode_tensor(features, spec, None, where).item()


def _sim2real_metadata(
    features: Mapping[str, FeatureValue], specs: Mapping[str, FeatureSpec], where: str
) -> EpisodeMetadata:
    def value(name: str) -> Any:
        key = f"episode_metadata/{name}"
        if key not in specs:
            raise DatasetError(f"{where}: key {key!r} is missing from features.json")
        return _episode_scalar(features, specs[key], where)

    try:
        extras = json.loads(value("extras_json"))
    except json.JSONDecodeError as error:
        raise DatasetError(f"{where}: key 'episode_metadata/extras_json' is not JSON ({error})") from error
    return EpisodeMetadata(
        episode_id=value("episode_id"),
        episode_index=value("episode_index"),
        seed=value("seed"),
        task=value("task"),
        backend=value("backend"),
        robot=value("robot"),
        control_hz=float(value("control_hz")),
        split=value("split"),
        success=bool(value("success")),
        scene_spec_json=value("scene_spec"),
        scene_spec_hash=value("scene_spec_hash"),
        generator_version=value("generator_version"),
        extras=extras,
    )


class _MappedSpecs:
    """The feature specs a mapping needs, checked against ``features.json`` once per reader."""

    def __init__(self, mapping: RLDSMapping, specs: dict[str, FeatureSpec]) -> None:
        self.mapping = mapping
        self.specs = specs
        self.cameras: dict[str, FeatureSpec] = {}
        self.extras: list[tuple[str, str]] = list(mapping.extras_keys.items())

    @classmethod
    def build(cls, mapping: RLDSMapping, features: Mapping[str, FeatureSpec], source: Path) -> _MappedSpecs:
        def need(key: str, kinds: tuple[str, ...]) -> FeatureSpec:
            spec = features.get(key)
            if spec is None:
                raise DatasetError(f"{source}: mapping {mapping.name!r} needs key {key!r}, which is missing")
            if spec.kind not in kinds:
                raise DatasetError(f"{source}: key {key!r} is a {spec.kind} feature, expected {' or '.join(kinds)}")
            return spec

        step_keys = ("is_first", "is_last", "is_terminal", "reward", "discount")
        specs = {key: need(f"steps/{key}", ("tensor",)) for key in step_keys}
        specs["state"] = need(mapping.state_key, ("tensor",))
        specs["action"] = need(mapping.action_key, ("tensor",))
        specs["instruction"] = need(mapping.instruction_key, ("text",))
        out = cls(mapping, specs)
        cameras = mapping.cameras if mapping.cameras is not None else _discover_cameras(features)
        out.cameras = {camera: need(key, ("image",)) for camera, key in cameras.items()}
        for _, key in out.extras:
            need(key, ("text", "tensor"))
        if mapping.sim2real_metadata:
            for name, (kind, _) in _METADATA_DOCS.items():
                need(f"episode_metadata/{name}", ("text",) if kind == "text" else ("tensor",))
        if not out.cameras:
            raise DatasetError(f"{source}: mapping {mapping.name!r} finds no camera image features")
        return out

    def decode_steps(self, features: Mapping[str, FeatureValue], where: str) -> EpisodeSteps:
        """Per-step arrays mapped onto the canonical layout (see :class:`RLDSMapping`)."""
        count = len(get_values(features, self.specs["is_first"], where))
        flags = {key: decode_tensor(features, self.specs[key], count, where) for key in ("is_first", "is_last")}
        return EpisodeSteps(
            images={camera: self._frames(features, spec, count, where) for camera, spec in self.cameras.items()},
            state=self._state(decode_tensor(features, self.specs["state"], count, where), where),
            action=self._action(decode_tensor(features, self.specs["action"], count, where), where),
            reward=self._float(features, "reward", count, where),
            discount=self._float(features, "discount", count, where),
            is_first=flags["is_first"].astype(bool),
            is_last=flags["is_last"].astype(bool),
            is_terminal=decode_tensor(features, self.specs["is_terminal"], count, where).astype(bool),
            language_instruction=self._instruction(features, count, where),
        )

    def _float(self, features: Mapping[str, FeatureValue], key: str, count: int, where: str) -> np.ndarray:
        values = decode_tensor(features, self.specs[key], count, where)
        if not np.issubdtype(values.dtype, np.floating):
            raise DatasetError(f"{where}: key {self.specs[key].key!r} is {values.dtype}, expected a float dtype")
        return values.astype(np.float32).reshape(count)

    def _frames(self, features: Mapping[str, FeatureValue], spec: FeatureSpec, count: int, where: str) -> np.ndarray:
        encoded = get_values(features, spec, where)
        if len(encoded) != count:
            raise DatasetError(f"{where}: key {spec.key!r} has {len(encoded)} images, expected {count} (one per step)")
        frames = [decode_image(data, f"{where}, key {spec.key!r}, step {t}") for t, data in enumerate(encoded)]
        for t, frame in enumerate(frames):
            if any(d is not None and d != s for d, s in zip(spec.shape, frame.shape, strict=False)):
                raise DatasetError(
                    f"{where}: key {spec.key!r} step {t} decodes to {frame.shape}, features.json says {spec.shape}"
                )
        stacked = np.stack(frames) if frames else np.zeros((0, 1, 1, 3), np.uint8)
        if len({f.shape for f in frames}) > 1:
            raise DatasetError(f"{where}: key {spec.key!r} has frames of different shapes")
        size = self.mapping.image_size
        return resize_frames(stacked, size) if size is not None else stacked

    def _state(self, state: np.ndarray, where: str) -> np.ndarray:
        key = self.specs["state"].key
        if not np.issubdtype(state.dtype, np.floating):
            raise DatasetError(f"{where}: key {key!r} is {state.dtype}, expected a float dtype")
        slots = self.mapping.state_slots
        if slots is None:
            if state.shape[1:] != (STATE_DIM,):
                raise DatasetError(f"{where}: key {key!r} has shape {state.shape}, expected (T, {STATE_DIM})")
            return state.astype(np.float32)
        if state.shape[1:] != (len(slots),):
            raise DatasetError(f"{where}: key {key!r} has shape {state.shape}, mapping expects (T, {len(slots)})")
        out = np.full((state.shape[0], STATE_DIM), np.nan, dtype=np.float32)
        out[:, list(slots)] = state
        return out

    def _action(self, action: np.ndarray, where: str) -> np.ndarray:
        key = self.specs["action"].key
        indices = list(self.mapping.action_indices)
        if not np.issubdtype(action.dtype, np.floating) or action.ndim != 2 or action.shape[1] <= max(indices):
            raise DatasetError(f"{where}: key {key!r} is {action.dtype} {action.shape}, expected float (T, >= 7)")
        out = action[:, indices].astype(np.float32)
        out[:, 6] = GRIPPER_CONVENTIONS[self.mapping.gripper](out[:, 6])
        return out

    def _instruction(self, features: Mapping[str, FeatureValue], count: int, where: str) -> str:
        spec = self.specs["instruction"]
        texts = decode_text(features, spec, where)
        if len(texts) != count or len(set(texts)) != 1:
            found = sorted(set(texts))[:3]
            raise DatasetError(f"{where}: key {spec.key!r} should repeat one instruction on {count} steps, got {found}")
        return texts[0]


def _discover_cameras(features: Mapping[str, FeatureSpec]) -> dict[str, str]:
    """sim2real camera naming: ``steps/observation/<camera_key(cam)>`` image features."""
    prefix = "steps/observation/"
    out: dict[str, str] = {}
    for key, spec in features.items():
        camera = camera_from_key(key.removeprefix(prefix)) if key.startswith(prefix) else None
        if camera is not None and spec.kind == "image" and "/" not in key.removeprefix(prefix):
            out[camera] = key
    return out


# ---------------------------------------------------------------------------------------------
# generation shards: one TFRecord file per shard, one dataset_info.json for the run


class RLDSShardWriter(EpisodeWriter):
    """Writes episodes (PNG frames, TFDS's Image feature) as TFRecords to the one file ``path``: a
    shard of a generation run, whose ``features.json`` and ``dataset_info.json`` :func:`finalize_rlds`
    writes once every shard is recorded."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._writer = TFRecordWriter(self.path)

    def write(self, episode: Episode) -> None:
        self._writer.write(episode_to_example(episode))

    def close(self) -> None:
        self._writer.close()


def rlds_shard_path(slot: ShardSlot) -> Path:
    """``rlds/<name>/<version>/<name>-<split>.tfrecord-<index>-of-<count>``: TFDS's shard name."""
    filename = SplitInfo(slot.split, (0,) * slot.count, 0).shard_filenames(DATASET_NAME)[slot.index]
    return Path("rlds") / DATASET_NAME / DATASET_VERSION / filename


def finalize_rlds(run: RunShards, format_name: str) -> None:
    """Write ``features.json`` and ``dataset_info.json`` beside a complete run's shards."""
    if not run.complete:
        return
    version_dir = run.root / "rlds" / DATASET_NAME / DATASET_VERSION
    size = int(run.config["image_size"])
    cameras = {camera: (size, size, 3) for camera in run.config["cameras"]}
    write_text_atomic(version_dir / FEATURES, json.dumps(sim2real_features(cameras, "png"), indent=4) + "\n")
    lengths = tuple(len(record["episodes"]) for record in run.records)
    split_bytes = sum(record["files"][format_name]["bytes"] for record in run.records)
    split = SplitInfo(run.config["split"], lengths, split_bytes)
    description = "Scripted-expert episodes written by sim2real."
    info = dataset_info_json(DATASET_NAME, DATASET_VERSION, {split.name: split}, description)
    write_text_atomic(version_dir / DATASET_INFO, json.dumps(info, indent=2) + "\n")


def tfrecord_count(path: Path) -> int:
    """The number of records (episodes) in the TFRecord file at ``path``, each framing checked."""
    return len(record_offsets(path))


register_shard_format(
    ShardFormat("rlds", RLDSShardWriter, rlds_shard_path, finalize=finalize_rlds, count_episodes=tfrecord_count)
)
