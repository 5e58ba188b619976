"""HDF5 in robomimic's layout, written and read with h5py.

Layout of one file (``T`` steps per demo)::

    /data                       attrs: total (int, steps over all demos),
                                       env_args (JSON: env_name, type, env_kwargs)
    /data/demo_<i>              attrs: num_samples (= T), language_instruction, and every
                                       EpisodeMetadata field (extras as JSON in extras_json)
        obs/<camera>_image      uint8   (T, H, W, 3)   e.g. front_image, wrist_image
        obs/state               float32 (T, 14)        hard link to ``states``
        obs/ee_pos              float32 (T, 3)         state[:, 0:3], m
        obs/ee_rpy              float32 (T, 3)         state[:, 3:6], rad
        obs/gripper             float32 (T, 1)         state[:, 6:7], 1 = open
        obs/joint_pos           float32 (T, 7)         state[:, 7:14], rad
        actions                 float32 (T, 7)         [dx, dy, dz, droll, dpitch, dyaw, gripper]
        rewards                 float32 (T,)
        dones                   uint8   (T,)           1 where the episode reached a terminal state
        states                  float32 (T, 14)        proprio state (not a simulator snapshot:
                                                       a scene is rebuilt from its SceneSpec)
        discount                float32 (T,)
        is_first, is_last, is_terminal   bool (T,)
    /mask/<split>               byte strings of demo names per metadata.split (filter keys),
                                plus ``success`` (demos whose task succeeded)

``env_args.type`` is 2 (robomimic's gym type: episodes come from a gymnasium env); its
``env_kwargs`` carry backend, robot, control rate and cameras. robomimic's ``next_obs`` is
not written; load with ``hdf5_load_next_obs=False``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from sim2real.datasets.registry import (
    DATASET_READERS,
    DATASET_WRITERS,
    EpisodeReader,
    EpisodeWriter,
    FormatOptions,
    ShardFormat,
    numbered_shards,
    register_shard_format,
)
from sim2real.datasets.schema import (
    STATE_SLICES,
    DatasetError,
    Episode,
    EpisodeMetadata,
    EpisodeSteps,
    canonical_json,
    reading,
    validate_episode,
)
from sim2real.datasets.sharded import write_shard_index

FORMAT_NAME = "sim2real.robomimic"
FORMAT_VERSION = 1
ROBOMIMIC_GYM_TYPE = 2
IMAGE_SUFFIX = "_image"
_DEMO = re.compile(r"^demo_(\d+)$")
_FLAG_KEYS = ("is_first", "is_last", "is_terminal")
_METADATA_ATTRS = (
    "episode_id", "episode_index", "seed", "task", "backend", "robot", "control_hz", "split", "success",
    "scene_spec_json", "scene_spec_hash", "generator_version",
)  # fmt: skip


def demo_name(index: int) -> str:
    """robomimic's name of demo ``index``."""
    return f"demo_{index}"


def _demo_names(data: h5py.Group) -> list[str]:
    """Demo names sorted by their integer index (``demo_2`` before ``demo_10``)."""
    names = [name for name in data if _DEMO.match(name)]
    return sorted(names, key=lambda name: int(name.split("_")[1]))


#: the image compressions the HDF5 writer takes (None: contiguous, uncompressed, as robomimic writes)
IMAGE_COMPRESSIONS = (None, "lzf", "gzip")


@dataclass(frozen=True)
class HDF5Options(FormatOptions):
    """The HDF5 writer's options (``codecs.hdf5.<key>``). No image compression is robomimic's
    default; lzf or gzip shrink files at a write cost."""

    image_compression: str | None = None
    image_compression_opts: int | None = None
    image_chunk_steps: int = 8

    def invalid(self) -> dict[str, str]:
        problems = {}
        if self.image_compression not in IMAGE_COMPRESSIONS:
            problems["image_compression"] = "null, lzf or gzip"
        if self.image_chunk_steps < 1:
            problems["image_chunk_steps"] = "a number of steps >= 1"
        return problems


@DATASET_WRITERS.register("hdf5")
class HDF5EpisodeWriter(EpisodeWriter):
    """Writes episodes as robomimic demos to one HDF5 file (layout in the module docstring).

    ``mode``: ``"w-"`` create (error if the file exists), ``"w"`` overwrite, ``"a"`` append
    demos to an existing file. Images use ``image_compression`` (``"gzip"``, ``"lzf"`` or
    None) with ``image_compression_opts`` and chunks of ``image_chunk_steps`` frames; without
    compression they are stored contiguously (no chunk index, no padding of the last chunk).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        mode: str = "w-",
        image_compression: str | None = HDF5Options.image_compression,
        image_compression_opts: int | None = HDF5Options.image_compression_opts,
        image_chunk_steps: int = HDF5Options.image_chunk_steps,
    ) -> None:
        if mode not in ("w-", "w", "a"):
            raise ValueError(f"mode must be 'w-', 'w' or 'a', got {mode!r}")
        self.path = Path(path)
        try:
            self._file: h5py.File | None = h5py.File(self.path, mode)
        except (FileExistsError, OSError) as error:
            raise DatasetError(f"{self.path}: cannot open for writing with mode {mode!r} ({error})") from error
        self._image_options = {"compression": image_compression, "compression_opts": image_compression_opts}
        self._image_chunk = image_chunk_steps
        self._file.attrs.update({"format": FORMAT_NAME, "format_version": FORMAT_VERSION})
        self._data = self._file.require_group("data")
        self._num_demos = len(_demo_names(self._data))
        self._total = int(self._data.attrs.get("total", 0))

    @property
    def num_episodes(self) -> int:
        """Demos in the file, including those there before this writer opened it."""
        return self._num_demos

    def write(self, episode: Episode) -> None:
        """Validate and write one episode as ``data/demo_<i>``."""
        if self._file is None:
            raise DatasetError(f"{self.path}: writer is closed")
        where = f"{self.path} (episode {self._num_demos})"
        num_steps = validate_episode(episode, where)
        if self._num_demos == 0 and "env_args" not in self._data.attrs:
            self._data.attrs["env_args"] = _env_args(episode)
        demo = self._data.create_group(demo_name(self._num_demos))
        self._write_obs(demo.create_group("obs"), episode.steps)
        self._write_steps(demo, episode.steps)
        demo["obs/state"] = demo["states"]  # hard link, stored once
        demo.attrs.update(_demo_attrs(episode, num_steps))
        self._num_demos += 1
        self._total += num_steps
        self._data.attrs["total"] = self._total

    def _write_obs(self, obs: h5py.Group, steps: EpisodeSteps) -> None:
        compressed = self._image_options["compression"] is not None
        for camera, frames in steps.images.items():
            chunks = (min(self._image_chunk, len(frames)), *frames.shape[1:]) if compressed else None
            obs.create_dataset(f"{camera}{IMAGE_SUFFIX}", data=frames, chunks=chunks, **self._image_options)
        for key, part in STATE_SLICES.items():
            obs.create_dataset(key, data=steps.state[:, part])

    @staticmethod
    def _write_steps(demo: h5py.Group, steps: EpisodeSteps) -> None:
        demo.create_dataset("actions", data=steps.action)
        demo.create_dataset("rewards", data=steps.reward)
        demo.create_dataset("dones", data=steps.is_terminal.astype(np.uint8))
        demo.create_dataset("states", data=steps.state)
        demo.create_dataset("discount", data=steps.discount)
        for key in _FLAG_KEYS:
            demo.create_dataset(key, data=getattr(steps, key))

    def _write_masks(self) -> None:
        assert self._file is not None
        groups: dict[str, list[str]] = {}
        for name in _demo_names(self._data):
            attrs = self._data[name].attrs
            groups.setdefault(str(attrs["split"]), []).append(name)
            if bool(attrs["success"]):
                groups.setdefault("success", []).append(name)
        if "mask" in self._file:
            del self._file["mask"]
        mask = self._file.create_group("mask")
        for key, names in groups.items():
            mask.create_dataset(key, data=np.array(names, dtype="S"))

    def close(self) -> None:
        """Write the ``mask/`` filter keys and close the file; idempotent."""
        if self._file is None:
            return
        try:
            self._write_masks()
        finally:
            self._file.close()
            self._file = None


def _env_args(episode: Episode) -> str:
    meta = episode.metadata
    kwargs = {
        "backend": meta.backend,
        "robot": meta.robot,
        "control_hz": meta.control_hz,
        "cameras": sorted(episode.steps.images),
        "image_shapes": {c: list(frames.shape[1:]) for c, frames in episode.steps.images.items()},
        "generator_version": meta.generator_version,
    }
    return json.dumps({"env_name": meta.task, "type": ROBOMIMIC_GYM_TYPE, "env_kwargs": kwargs}, sort_keys=True)


def _demo_attrs(episode: Episode, num_steps: int) -> dict[str, Any]:
    attrs: dict[str, Any] = {name: getattr(episode.metadata, name) for name in _METADATA_ATTRS}
    attrs["extras_json"] = canonical_json(episode.metadata.extras)
    attrs["language_instruction"] = episode.steps.language_instruction
    attrs["num_samples"] = num_steps
    return attrs


@DATASET_READERS.register("hdf5")
class HDF5Dataset(EpisodeReader):
    """Reads robomimic-layout demos as canonical episodes, in demo index order.

    ``filter_key`` restricts the episodes to the demo names listed in ``mask/<filter_key>``.
    The file stays open until :meth:`close` (or the end of a ``with`` block).
    """

    def __init__(self, path: str | Path, filter_key: str | None = None) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise DatasetError(f"{self.path}: no such file or directory")
        if not self.detect(self.path):
            raise DatasetError(f"{self.path}: not an HDF5 file with a data/ group")
        with reading(str(self.path)):
            self.file = h5py.File(self.path, "r")
            self.demos = self._select(filter_key)

    def _select(self, filter_key: str | None) -> list[str]:
        names = _demo_names(self.file["data"])
        if filter_key is None:
            return names
        masks = self.file.get("mask")
        if masks is None or filter_key not in masks:
            known = sorted(masks) if masks is not None else []
            raise DatasetError(f"{self.path}: no filter key 'mask/{filter_key}'; filter keys: {known}")
        wanted = {bytes(n).decode() for n in masks[filter_key][()]}
        missing = sorted(wanted - set(names))
        if missing:
            raise DatasetError(f"{self.path}: mask/{filter_key} lists demos that do not exist: {missing[:5]}")
        return [name for name in names if name in wanted]

    @classmethod
    def detect(cls, path: Path) -> bool:
        """An HDF5 file whose root holds a ``data`` group."""
        if not path.is_file() or not h5py.is_hdf5(path):
            return False
        try:
            with h5py.File(path, "r") as file:
                return isinstance(file.get("data"), h5py.Group)
        except OSError:  # an HDF5 signature on a damaged file: the reader names what is wrong
            return True

    def close(self) -> None:
        """Close the file."""
        self.file.close()

    def __len__(self) -> int:
        return len(self.demos)

    @property
    def env_args(self) -> dict[str, Any]:
        """The parsed ``data.attrs["env_args"]``."""
        return json.loads(self.file["data"].attrs["env_args"])

    def episode(self, index: int) -> Episode:
        """Demo ``index`` (in sorted demo order, after filtering) as a validated canonical episode."""
        index = self._check_index(index)
        where = f"{self.path} (episode {index}, data/{self.demos[index]})"
        with reading(where):
            return self._episode(index, where)

    def _episode(self, index: int, where: str) -> Episode:
        name = self.demos[index]
        demo = self.file["data"][name]
        steps = EpisodeSteps(
            images=_read_images(demo, where),
            state=_read(demo, "states", where),
            action=_read(demo, "actions", where),
            reward=_read(demo, "rewards", where),
            discount=_read(demo, "discount", where),
            language_instruction=str(_attr(demo.attrs, "language_instruction", where)),
            **{key: _read(demo, key, where) for key in _FLAG_KEYS},
        )
        episode = Episode(steps=steps, metadata=_read_metadata(demo.attrs, where))
        validate_episode(episode, where)
        num_samples = int(_attr(demo.attrs, "num_samples", where))
        if num_samples != episode.num_steps:
            found = episode.num_steps
            raise DatasetError(f"{where}: attribute 'num_samples' is {num_samples} but the demo has {found} steps")
        return episode


def _read(group: h5py.Group, key: str, where: str) -> np.ndarray:
    if key not in group:
        raise DatasetError(f"{where}: key {key!r} is missing")
    return np.asarray(group[key][()])


def _read_images(demo: h5py.Group, where: str) -> dict[str, np.ndarray]:
    if "obs" not in demo:
        raise DatasetError(f"{where}: key 'obs' is missing")
    obs = demo["obs"]
    keys = [key for key in obs if key.endswith(IMAGE_SUFFIX)]
    if not keys:
        raise DatasetError(f"{where}: no camera keys 'obs/<camera>{IMAGE_SUFFIX}'")
    return {key.removesuffix(IMAGE_SUFFIX): _read(obs, key, where) for key in keys}


def _attr(attrs: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in attrs:
        raise DatasetError(f"{where}: attribute {key!r} is missing")
    value = attrs[key]
    return value.decode() if isinstance(value, bytes) else value


def _read_metadata(attrs: Mapping[str, Any], where: str) -> EpisodeMetadata:
    values = {name: _attr(attrs, name, where) for name in _METADATA_ATTRS}
    try:
        values["extras"] = json.loads(_attr(attrs, "extras_json", where))
    except json.JSONDecodeError as error:
        raise DatasetError(f"{where}: attribute 'extras_json' is not JSON ({error})") from error
    return EpisodeMetadata.from_dict(values, where)


def demo_count(path: Path) -> int:
    """The number of demos in the HDF5 file at ``path`` (without reading any)."""
    with h5py.File(path, "r") as file:
        return len(file["data"])


register_shard_format(
    ShardFormat("hdf5", HDF5EpisodeWriter, numbered_shards("hdf5", ".hdf5"), HDF5Options, write_shard_index, demo_count)
)
