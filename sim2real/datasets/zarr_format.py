"""Zarr v3 replay buffer (the Diffusion Policy layout), written and read episode by episode.

Layout of one store (``N`` = total steps over all episodes, ``E`` = episodes)::

    <store>/                       group attrs: format name/version, cameras, key documentation
        data/img_<camera>          uint8   (N, H, W, 3)  chunks (image_chunk_steps, H, W, 3)
        data/state                 float32 (N, 14)       layout schema.STATE_NAMES
        data/action                float32 (N, 7)        [dx, dy, dz, droll, dpitch, dyaw, gripper]
        data/reward                float32 (N,)
        data/discount              float32 (N,)
        data/is_first              bool    (N,)
        data/is_last               bool    (N,)
        data/is_terminal           bool    (N,)
        meta/episode_ends          int64   (E,)  cumulative: episode i is data[ends[i-1]:ends[i]]
        meta/episode_index         int64   (E,)  metadata.episode_index (an index for filtering)
        meta/seed                  int64   (E,)  metadata.seed
        meta/success               bool    (E,)  metadata.success
        meta/episode_json          uint8   (B,)  concatenated UTF-8 JSON records, one per episode:
                                                 {"language_instruction": ..., "metadata": {...}}
        meta/episode_json_ends     int64   (E,)  cumulative byte ends of those records

Cameras are flat ``data/img_<camera>`` arrays (not a nested group) so that every array under
``data/`` shares axis 0 and a loader can slice them all alike. Every array is chunked along
time only and compressed with Blosc (LZ4 by default, as Diffusion Policy's replay buffer).

Writing goes in whole chunks: appended rows wait in memory until they fill a chunk (at most one
chunk per array, so memory stays flat in the episode count), no chunk is ever read back and
re-compressed, and an array's shape is written once, at ``flush``/``close``.
Whole chunks of a local store are encoded with the array's own codecs (bytes + Blosc, read from
its metadata) and written straight to their chunk files: the same bytes zarr would store, without
the three thread hand-offs per chunk of zarr's asynchronous write path, which cost ~20x the
LZ4 compression itself. Anything else (a partial chunk, other codecs, another store) goes
through zarr. A new store's ``zarr.json`` documents are the ones zarr itself makes for the
layout, made once per process in memory and written as files (creating each array through
zarr's asynchronous API cost several milliseconds), and the shapes are rewritten from the same
metadata objects.
``meta/episode_ends`` is written last, so an interrupted write leaves the store readable up to
the last flushed episode (and ``mode="a"`` resumes from there).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numcodecs
import numpy as np
import zarr
from zarr.codecs import BloscCodec, BytesCodec
from zarr.core.buffer import default_buffer_prototype
from zarr.storage import LocalStore, MemoryStore

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
    LOW_DIM_SPECS,
    DatasetError,
    Episode,
    EpisodeMetadata,
    EpisodeSteps,
    canonical_json,
    reading,
    validate_episode,
)
from sim2real.datasets.sharded import write_shard_index

FORMAT_NAME = "sim2real.replay_buffer"
FORMAT_VERSION = 1
IMAGE_PREFIX = "img_"
_META_SCALARS: dict[str, np.dtype] = {
    "episode_index": np.dtype(np.int64),
    "seed": np.dtype(np.int64),
    "success": np.dtype(np.bool_),
}
_LAYOUT_DOC = {
    "data/img_<camera>": "uint8 (N, H, W, 3) RGB",
    "data/state": "float32 (N, 14): ee_xyz (m), ee_rpy (rad), gripper (1 = open), q1..q7 (rad)",
    "data/action": "float32 (N, 7): dx, dy, dz (m), droll, dpitch, dyaw (rad), gripper (1 = open)",
    "data/reward, data/discount": "float32 (N,)",
    "data/is_first, data/is_last, data/is_terminal": "bool (N,)",
    "meta/episode_ends": "int64 (E,) cumulative step counts",
    "meta/episode_json, meta/episode_json_ends": "ragged UTF-8 JSON per episode: language_instruction, metadata",
}


def _blosc(cname: str, clevel: int, shuffle: str) -> BloscCodec:
    return BloscCodec(cname=cname, clevel=clevel, shuffle=shuffle)


def _create(group: zarr.Group, name: str, trailing: tuple[int, ...], dtype: np.dtype, chunk: int, codec: Any) -> Any:
    """An empty array (0, *trailing) chunked along time only. Chunk files sit flat in the
    array's folder (``c.<i>.0.0.0``: no directory to create per chunk)."""
    return group.create_array(
        name, shape=(0, *trailing), chunks=(chunk, *trailing), dtype=dtype, compressors=codec, fill_value=0,
        chunk_key_encoding={"name": "default", "separator": "."},
    )  # fmt: skip


@dataclass(frozen=True)
class _Template:
    """The metadata documents zarr writes for some arrays and groups of an empty store:
    ``documents`` maps store keys (``data/state/zarr.json``, ...) to their bytes and
    ``arrays`` maps array paths (``data/state``) to their metadata objects."""

    documents: dict[str, bytes]
    arrays: dict[str, Any]


def _template(build: Callable[[zarr.Group], dict[str, Any]]) -> _Template:
    """Run ``build`` (which creates arrays in a group and returns them by path) on an empty
    in-memory store and keep what zarr wrote."""
    stored: dict[str, Any] = {}
    root = zarr.open_group(MemoryStore(store_dict=stored), mode="w", zarr_format=3)
    arrays = build(root)
    return _Template({key: value.to_bytes() for key, value in stored.items()},
                     {path: array.metadata for path, array in arrays.items()})  # fmt: skip


_ROOT_ATTRS = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "layout": _LAYOUT_DOC}


@functools.lru_cache(maxsize=8)
def _base_template(lowdim_chunk: int, blosc: tuple[str, int, str]) -> _Template:
    """Root group, ``data/`` low-dimensional arrays and ``meta/`` arrays of a new store, Blosc
    ``(cname, clevel, shuffle)`` (made once per process and layout: creating arrays through
    zarr costs several ms each)."""
    codec = _blosc(*blosc)

    def build(root: zarr.Group) -> dict[str, Any]:
        root.attrs.update(_ROOT_ATTRS)
        data, meta = root.require_group("data"), root.require_group("meta")
        arrays = {f"data/{key}": _create(data, key, trailing, dtype, lowdim_chunk, codec)
                  for key, (dtype, trailing) in LOW_DIM_SPECS.items()}  # fmt: skip
        for key, dtype in {"episode_ends": np.dtype(np.int64), **_META_SCALARS, "episode_json_ends": np.int64}.items():
            arrays[f"meta/{key}"] = _create(meta, key, (), np.dtype(dtype), 1024, codec)
        arrays["meta/episode_json"] = _create(meta, "episode_json", (), np.dtype(np.uint8), 1 << 20, codec)
        return arrays

    return _template(build)


@functools.lru_cache(maxsize=8)
def _camera_template(
    cameras: tuple[tuple[str, tuple[int, ...]], ...], chunk: int, blosc: tuple[str, int, str]
) -> _Template:
    """``data/img_<camera>`` arrays (``cameras``: name and frame shape pairs) and the root
    group's attributes naming the cameras."""
    codec = _blosc(*blosc)

    def build(root: zarr.Group) -> dict[str, Any]:
        root.attrs.update({**_ROOT_ATTRS, "cameras": sorted(camera for camera, _ in cameras)})
        data = root.require_group("data")
        return {f"data/{IMAGE_PREFIX}{camera}": _create(data, IMAGE_PREFIX + camera, trailing, np.dtype(np.uint8),
                                                         chunk, codec)
                for camera, trailing in cameras}  # fmt: skip

    return _template(build)


def _write_file_atomic(path: Path, data: bytes) -> None:
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_bytes(data)
    os.replace(temp, path)


_NUMCODECS_SHUFFLE = {"noshuffle": numcodecs.Blosc.NOSHUFFLE, "shuffle": numcodecs.Blosc.SHUFFLE,
                      "bitshuffle": numcodecs.Blosc.BITSHUFFLE}  # fmt: skip


class _DirectChunkWriter:
    """Writes the chunks and the metadata document of a zarr v3 array in a local store as
    files: each chunk (rows along axis 0) is cast to the array's byte order, Blosc-encoded with
    the array's codec settings and written to ``<store>/<array>/<chunk key>``; :meth:`write_shape`
    rewrites ``zarr.json`` with a new shape. :meth:`for_metadata` returns ``None`` for arrays
    it cannot write exactly as zarr would (codecs other than bytes + Blosc)."""

    def __init__(self, metadata: Any, directory: Path, dtype: np.dtype, blosc: numcodecs.Blosc) -> None:
        self.metadata = metadata
        self.directory = directory
        self.dtype = dtype
        self.blosc = blosc
        self.chunk = int(metadata.chunks[0])

    @classmethod
    def for_array(cls, array: Any) -> _DirectChunkWriter | None:
        """For an open zarr array (``None`` unless its store is a local folder)."""
        store = array.store_path.store
        if not isinstance(store, LocalStore):
            return None
        return cls.for_metadata(array.metadata, Path(store.root) / array.store_path.path)

    @classmethod
    def for_metadata(cls, metadata: Any, directory: Path) -> _DirectChunkWriter | None:
        """For the array whose metadata object is ``metadata`` stored in ``directory``."""
        codecs = metadata.codecs
        if len(codecs) != 2:
            return None
        serializer, compressor = codecs
        if not isinstance(serializer, BytesCodec) or not isinstance(compressor, BloscCodec):
            return None
        order = "<" if serializer.endian is None or serializer.endian.value == "little" else ">"
        shuffle = _NUMCODECS_SHUFFLE[compressor.shuffle.value]
        blosc = numcodecs.Blosc(compressor.cname.value, compressor.clevel, shuffle, compressor.blocksize)
        return cls(metadata, directory, np.dtype(metadata.data_type.to_native_dtype()).newbyteorder(order), blosc)

    def write(self, first_chunk: int, rows: np.ndarray) -> None:
        """Write ``rows`` (a whole number of chunks) as chunks ``first_chunk, first_chunk + 1, ...``."""
        trailing_zeros = (0,) * (rows.ndim - 1)
        for i in range(len(rows) // self.chunk):
            block = np.ascontiguousarray(rows[i * self.chunk : (i + 1) * self.chunk], dtype=self.dtype)
            key = self.metadata.encode_chunk_key((first_chunk + i, *trailing_zeros))
            (self.directory / key).write_bytes(self.blosc.encode(block))

    def write_shape(self, length: int) -> None:
        """Set the array's shape to ``length`` rows (``zarr.json`` replaced atomically)."""
        self.metadata = dataclasses.replace(self.metadata, shape=(length, *self.metadata.shape[1:]))
        document = self.metadata.to_buffer_dict(default_buffer_prototype())["zarr.json"].to_bytes()
        _write_file_atomic(self.directory / "zarr.json", document)


class _ChunkAppender:
    """Appends rows to one zarr array ``length`` rows long, writing whole chunks only.

    Whole chunks go through ``direct`` (a :class:`_DirectChunkWriter`, when there is one), and
    the array's shape is then written once, at :meth:`flush`. Rows that must go through zarr (a
    partial chunk already in the store, e.g. after a resume; other codecs) use the array that
    ``open_array`` opens, with ``write_empty_chunks`` on: recorded chunks are never all fill
    value, and zarr would otherwise compare every chunk against it before writing."""

    def __init__(
        self, length: int, chunk: int, direct: _DirectChunkWriter | None, open_array: Callable[[], Any]
    ) -> None:
        self.chunk = chunk
        self.length = length  # rows written
        self.shape_rows = length  # rows in the stored shape
        self._pending: list[np.ndarray] = []
        self._pending_rows = 0
        self._direct = direct
        self._open_array = open_array
        self._array: Any = None

    @property
    def array(self) -> Any:
        if self._array is None:
            self._array = self._open_array().with_config({"write_empty_chunks": True})  # runtime, not stored
        return self._array

    def append(self, values: np.ndarray) -> None:
        self._pending.append(values)
        self._pending_rows += len(values)
        if (self.length % self.chunk) + self._pending_rows >= self.chunk:
            self._write(final=False)

    def flush(self) -> None:
        """Write every pending row and set the array's shape to ``length`` rows."""
        if self._pending_rows:
            self._write(final=True)
        if self.shape_rows != self.length:
            if self._direct is not None:
                self._direct.write_shape(self.length)
            else:
                self.array.resize((self.length, *self.array.shape[1:]))
            self.shape_rows = self.length

    def _write(self, final: bool) -> None:
        rows = self._pending[0] if len(self._pending) == 1 else np.concatenate(self._pending)
        end = self.length + len(rows)
        if not final:
            end -= end % self.chunk  # up to the last chunk boundary; the rest waits
        count = end - self.length
        if self._direct is not None and self.length % self.chunk == 0:
            block, padding = rows[:count], -count % self.chunk
            if padding:  # the last chunk of a flush is padded with the fill value
                block = np.concatenate([block, np.zeros((padding, *rows.shape[1:]), rows.dtype)])
            self._direct.write(self.length // self.chunk, block)
        else:
            if self.shape_rows < end:
                self.array.resize((end, *self.array.shape[1:]))
                self.shape_rows = end
                if self._direct is not None:  # zarr rewrote zarr.json: keep the metadata in step
                    self._direct.metadata = self.array.metadata
            self.array[self.length : end] = rows[:count]
        self.length = end
        self._pending = [rows[count:]] if count < len(rows) else []
        self._pending_rows = len(rows) - count


def _episode_record(ep: Episode) -> bytes:
    return canonical_json({"language_instruction": ep.steps.language_instruction, "metadata": ep.metadata.to_dict()})


#: the Blosc compressors numcodecs writes
BLOSC_CODECS = ("lz4", "lz4hc", "blosclz", "zstd", "zlib")


@dataclass(frozen=True)
class ZarrOptions(FormatOptions):
    """The Zarr writer's options (``codecs.zarr.<key>``). LZ4 at level 5 is Diffusion Policy's
    default; zstd is ~15 % smaller and ~2x slower to write."""

    cname: str = "lz4"
    clevel: int = 5
    image_shuffle: str = "noshuffle"
    image_chunk_steps: int = 16
    lowdim_chunk_steps: int = 4096

    def invalid(self) -> dict[str, str]:
        problems = {}
        if self.cname not in BLOSC_CODECS:
            problems["cname"] = f"a Blosc codec ({', '.join(BLOSC_CODECS)})"
        if not 0 <= self.clevel <= 9:
            problems["clevel"] = "a Blosc level in [0, 9]"
        if self.image_shuffle not in _NUMCODECS_SHUFFLE:
            problems["image_shuffle"] = ", ".join(_NUMCODECS_SHUFFLE)
        for key in ("image_chunk_steps", "lowdim_chunk_steps"):
            if getattr(self, key) < 1:
                problems[key] = "a number of steps >= 1"
        return problems


@DATASET_WRITERS.register("zarr")
class ZarrEpisodeWriter(EpisodeWriter):
    """Appends episodes to a Zarr v3 replay buffer at ``path`` (layout in the module docstring).

    ``mode``: ``"w-"`` create (error if the path holds data), ``"w"`` overwrite, ``"a"``
    append to an existing store (or create one). Images are compressed with Blosc ``cname``
    at ``clevel`` with ``image_shuffle`` (``noshuffle`` suits clean renders best; ``bitshuffle``
    gains a little on noisy frames) and chunked ``image_chunk_steps`` frames per chunk;
    low-dimensional arrays ``lowdim_chunk_steps`` steps per chunk (byte shuffle). Memory stays
    constant as episodes are added.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        mode: str = "w-",
        image_chunk_steps: int = ZarrOptions.image_chunk_steps,
        lowdim_chunk_steps: int = ZarrOptions.lowdim_chunk_steps,
        cname: str = ZarrOptions.cname,
        clevel: int = ZarrOptions.clevel,
        image_shuffle: str = ZarrOptions.image_shuffle,
    ) -> None:
        if mode not in ("w-", "w", "a"):
            raise ValueError(f"mode must be 'w-', 'w' or 'a', got {mode!r}")
        self.path = Path(path)
        self._image_chunk = image_chunk_steps
        self._lowdim_chunk = lowdim_chunk_steps
        self._image_blosc = (cname, clevel, image_shuffle)
        self._lowdim_blosc = (cname, clevel, "shuffle")
        if mode == "w-" and (self.path / "zarr.json").exists():
            raise DatasetError(f"{self.path}: already holds data (use mode='w' to overwrite or 'a' to append)")
        if mode == "w" and self.path.exists():
            shutil.rmtree(self.path) if self.path.is_dir() else self.path.unlink()
        if self.path.exists() and not self.path.is_dir():
            raise DatasetError(f"{self.path}: is a file, not a Zarr store (a folder)")
        self._closed = False
        self._appenders: dict[str, _ChunkAppender] = {}
        self._root: Any = None
        if mode == "a" and ZarrDataset.detect(self.path):
            self._root = zarr.open_group(str(self.path), mode="a", zarr_format=3)
            self._resume()
        else:
            self._start()

    def _start(self) -> None:
        """A new store, written from the metadata documents zarr makes for this layout."""
        self._add(_base_template(self._lowdim_chunk, self._lowdim_blosc))
        self._num_steps, self._num_json_bytes, self._num_episodes = 0, 0, 0
        self._cameras: dict[str, tuple[int, ...]] | None = None

    def _add(self, template: _Template) -> None:
        """Write ``template``'s documents into the store and append to its (empty) arrays directly."""
        for key, document in template.documents.items():
            target = self.path / key
            target.parent.mkdir(parents=True, exist_ok=True)
            _write_file_atomic(target, document)
        for name, metadata in template.arrays.items():
            direct = _DirectChunkWriter.for_metadata(metadata, self.path / name)
            opener = functools.partial(self._open, name)
            self._appenders[name] = _ChunkAppender(0, int(metadata.chunks[0]), direct, opener)

    def _open(self, name: str) -> Any:
        if self._root is None:
            self._root = zarr.open_group(str(self.path), mode="a", zarr_format=3)
        return self._root[name]

    def _resume(self) -> None:
        """Open an existing store: cut anything written after the last complete episode."""
        reader = ZarrDataset(self.path)
        self._num_episodes = len(reader)
        self._num_steps = int(reader.episode_ends[-1]) if self._num_episodes else 0
        json_ends = reader.meta["episode_json_ends"]
        self._num_json_bytes = int(json_ends[self._num_episodes - 1]) if self._num_episodes else 0
        self._cameras = {c: tuple(reader.data[IMAGE_PREFIX + c].shape[1:]) for c in reader.cameras} or None
        for array in self._arrays("data").values():
            array.resize((self._num_steps, *array.shape[1:]))
        for name, array in self._arrays("meta").items():
            length = self._num_json_bytes if name == "episode_json" else self._num_episodes
            array.resize((length, *array.shape[1:]))

    def _arrays(self, group: str) -> dict[str, Any]:
        return {name: array for name, array in self._root[group].arrays()}

    @property
    def num_episodes(self) -> int:
        """Episodes in the store, including those there before this writer opened it."""
        return self._num_episodes

    def write(self, episode: Episode) -> None:
        """Validate and append one episode (data arrays first, ``meta/episode_ends`` last)."""
        if self._closed:
            raise DatasetError(f"{self.path}: writer is closed")
        where = f"{self.path} (episode {self._num_episodes})"
        num_steps = validate_episode(episode, where)
        self._check_cameras(episode.steps.images, where)
        for camera, frames in episode.steps.images.items():
            self._appender("data", IMAGE_PREFIX + camera).append(frames)
        for key, values in episode.steps.low_dim().items():
            self._appender("data", key).append(values)
        self._append_meta(episode)
        self._num_steps += num_steps
        self._num_episodes += 1
        self._appender("meta", "episode_ends").append(np.array([self._num_steps], np.int64))

    def _appender(self, group_name: str, key: str) -> _ChunkAppender:
        name = f"{group_name}/{key}"
        if name not in self._appenders:  # an array of a resumed store: open it once
            array = self._open(name)
            direct = _DirectChunkWriter.for_array(array)
            self._appenders[name] = _ChunkAppender(int(array.shape[0]), int(array.chunks[0]), direct, lambda: array)
        return self._appenders[name]

    def _append_meta(self, episode: Episode) -> None:
        record = np.frombuffer(_episode_record(episode).encode(), dtype=np.uint8)
        self._appender("meta", "episode_json").append(record)
        self._num_json_bytes += len(record)
        ends = np.array([self._num_json_bytes], dtype=np.int64)
        self._appender("meta", "episode_json_ends").append(ends)
        for key, dtype in _META_SCALARS.items():
            self._appender("meta", key).append(np.array([getattr(episode.metadata, key)], dtype=dtype))

    def flush(self) -> None:
        """Write every buffered row: data arrays first, ``meta/episode_ends`` last."""
        ordered = sorted(self._appenders, key=lambda name: (name == "meta/episode_ends", name))
        for name in ordered:
            self._appenders[name].flush()

    def _check_cameras(self, images: Mapping[str, np.ndarray], where: str) -> None:
        cameras = {camera: tuple(int(d) for d in frames.shape[1:]) for camera, frames in images.items()}
        if self._cameras is None:
            layout = tuple(sorted(cameras.items()))
            self._add(_camera_template(layout, self._image_chunk, self._image_blosc))
            self._cameras = cameras
        elif cameras != self._cameras:
            raise DatasetError(f"{where}: cameras/frame shapes {cameras} differ from the store's {self._cameras}")

    def close(self) -> None:
        """Flush and mark the writer closed. Idempotent."""
        if not self._closed:
            self.flush()
        self._closed = True


@DATASET_READERS.register("zarr")
class ZarrDataset(EpisodeReader):
    """Reads a Zarr replay buffer episode by episode; raw arrays are open for training loaders.

    ``data`` maps keys (``img_front``, ``state``, ``action``, ...) to lazily read zarr arrays of
    all steps; ``episode_ends`` is the int64 (E,) cumulative step count; ``episode_slice(i)``
    is the step range of episode ``i`` in those arrays.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise DatasetError(f"{self.path}: no such file or directory")
        if not self.detect(self.path):
            raise DatasetError(f"{self.path}: not a Zarr replay buffer (no zarr.json with data/ and meta/episode_ends)")
        with reading(str(self.path)):
            self.root = zarr.open_group(str(self.path), mode="r", zarr_format=3)
            self.data: dict[str, Any] = dict(self.root["data"].arrays())
            self.meta: dict[str, Any] = dict(self.root["meta"].arrays())
            self.cameras = sorted(key.removeprefix(IMAGE_PREFIX) for key in self.data if key.startswith(IMAGE_PREFIX))
            self._check_layout()
            self.episode_ends: np.ndarray = self._episode_ends()
            self._json_ends: np.ndarray = np.asarray(self.meta["episode_json_ends"][: len(self.episode_ends)])

    @classmethod
    def detect(cls, path: Path) -> bool:
        """A directory with a root ``zarr.json`` and ``meta/episode_ends``."""
        return (path / "zarr.json").is_file() and (path / "meta" / "episode_ends" / "zarr.json").is_file()

    def _check_layout(self) -> None:
        expected: dict[str, tuple[np.dtype, tuple[int, ...] | None]] = dict(LOW_DIM_SPECS)
        expected |= {IMAGE_PREFIX + c: (np.dtype(np.uint8), None) for c in self.cameras}
        for key, (dtype, trailing) in expected.items():
            if key not in self.data:
                raise DatasetError(f"{self.path}: key 'data/{key}' is missing")
            array = self.data[key]
            shape_ok = trailing is None or tuple(array.shape[1:]) == trailing
            if np.dtype(array.dtype) != dtype or not shape_ok or (trailing is None and array.ndim != 4):
                raise DatasetError(f"{self.path}: key 'data/{key}' is {array.dtype} {array.shape}, expected {dtype}")
        for key in ("episode_ends", "episode_json", "episode_json_ends"):
            if key not in self.meta:
                raise DatasetError(f"{self.path}: key 'meta/{key}' is missing")
        if not self.cameras and self.meta["episode_ends"].shape[0]:
            raise DatasetError(f"{self.path}: no camera arrays 'data/{IMAGE_PREFIX}<camera>'")

    def _episode_ends(self) -> np.ndarray:
        ends = np.asarray(self.meta["episode_ends"][:])
        if ends.dtype != np.int64 or ends.ndim != 1:
            found = f"{ends.dtype} {ends.shape}"
            raise DatasetError(f"{self.path}: key 'meta/episode_ends' is {found}, expected int64 (E,)")
        if len(ends) and (ends[0] <= 0 or np.any(np.diff(ends) <= 0)):
            raise DatasetError(f"{self.path}: key 'meta/episode_ends' is not strictly increasing from > 0")
        total = int(ends[-1]) if len(ends) else 0
        for key, array in self.data.items():
            if array.shape[0] < total:
                found = array.shape[0]
                raise DatasetError(f"{self.path}: key 'data/{key}' has {found} steps, episode_ends needs {total}")
        if self.meta["episode_json_ends"].shape[0] < len(ends):
            raise DatasetError(f"{self.path}: key 'meta/episode_json_ends' is shorter than meta/episode_ends")
        return ends

    def __len__(self) -> int:
        return len(self.episode_ends)

    def episode_slice(self, index: int) -> slice:
        """Step range of episode ``index`` in the ``data`` arrays."""
        index = self._check_index(index)
        start = int(self.episode_ends[index - 1]) if index else 0
        return slice(start, int(self.episode_ends[index]))

    def _record(self, index: int) -> dict[str, Any]:
        start = int(self._json_ends[index - 1]) if index else 0
        raw = np.asarray(self.meta["episode_json"][start : int(self._json_ends[index])]).tobytes()
        try:
            record = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            where = f"{self.path} (episode {index})"
            raise DatasetError(f"{where}: key 'meta/episode_json' is not JSON ({error})") from error
        if not isinstance(record, dict) or "metadata" not in record or "language_instruction" not in record:
            raise DatasetError(f"{self.path} (episode {index}): key 'meta/episode_json' lacks metadata/instruction")
        return record

    def metadata(self, index: int) -> EpisodeMetadata:
        """Episode ``index``'s metadata without reading any step arrays."""
        index = self._check_index(index)
        return EpisodeMetadata.from_dict(self._record(index)["metadata"], f"{self.path} (episode {index})")

    def language_instruction(self, index: int) -> str:
        """Episode ``index``'s instruction without reading any step arrays."""
        index = self._check_index(index)
        return str(self._record(index)["language_instruction"])

    def episode(self, index: int) -> Episode:
        """Episode ``index`` read from its step range, validated."""
        index = self._check_index(index)
        where = f"{self.path} (episode {index})"
        steps_range = self.episode_slice(index)
        with reading(where):
            record = self._record(index)
            arrays = {key: np.asarray(array[steps_range]) for key, array in self.data.items()}
        steps = EpisodeSteps(
            images={camera: arrays[IMAGE_PREFIX + camera] for camera in self.cameras},
            language_instruction=record["language_instruction"],
            **{key: arrays[key] for key in LOW_DIM_SPECS},
        )
        episode = Episode(steps=steps, metadata=EpisodeMetadata.from_dict(record["metadata"], where))
        validate_episode(episode, where)
        return episode


register_shard_format(
    ShardFormat("zarr", ZarrEpisodeWriter, numbered_shards("zarr", ".zarr"), ZarrOptions, write_shard_index)
)
