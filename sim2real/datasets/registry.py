"""Dataset formats keyed by name: writers, readers and shard formats, each registered where it is defined.

>>> from sim2real.datasets import DATASET_READERS
>>> DATASET_READERS.names()
['hdf5', 'lerobot', 'rlds', 'sharded', 'zarr']

:func:`open_dataset` finds the format of a path by asking each registered reader's
``detect``; :func:`create_writer` builds a writer by format name.

A :class:`ShardFormat` is what generation (``generate.py formats=[...]``) knows of a format: its
shard writer, where shard ``k`` of a run lies, the writer options users set with
``+codecs.<format>.<key>=<value>`` (a :class:`FormatOptions` dataclass), how to count a shard's
episodes, and the hook that writes the dataset-wide files once shards are recorded. A format
module registers one with :func:`register_shard_format`; :data:`_BUILTIN_FORMAT_MODULES` lists
the modules imported for their registrations.
"""

from __future__ import annotations

import abc
import dataclasses
import importlib
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from sim2real.datasets.schema import DatasetError, Episode
from sim2real.errors import UsageError
from sim2real.registry import Registry

#: Writer classes by format name; ``cls(path, **options)`` returns an :class:`EpisodeWriter`.
DATASET_WRITERS: Registry[type[EpisodeWriter]] = Registry("dataset writer")
#: Reader classes by format name; ``cls(path, **options)`` returns an :class:`EpisodeReader`.
DATASET_READERS: Registry[type[EpisodeReader]] = Registry("dataset reader")
#: What generation writes per format name (``formats=[...]``): see :class:`ShardFormat`.
SHARD_FORMATS: Registry[ShardFormat] = Registry("dataset format")

_BUILTIN_FORMAT_MODULES = (
    "sim2real.datasets.zarr_format",
    "sim2real.datasets.rlds_format",
    "sim2real.datasets.hdf5_format",
    "sim2real.datasets.lerobot_format",
    "sim2real.datasets.sharded",
)


class EpisodeWriter(abc.ABC):
    """Appends canonical episodes to one dataset; a context manager that closes on exit."""

    path: Path

    @abc.abstractmethod
    def write(self, episode: Episode) -> None:
        """Validate and append one episode."""

    @abc.abstractmethod
    def close(self) -> None:
        """Flush and finalise the dataset; idempotent."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class EpisodeReader(abc.ABC):
    """Random access to the canonical episodes of one dataset."""

    path: Path

    @classmethod
    @abc.abstractmethod
    def detect(cls, path: Path) -> bool:
        """Whether ``path`` looks like a dataset of this format (cheap; reads at most a small file)."""

    @abc.abstractmethod
    def __len__(self) -> int:
        """Number of episodes."""

    @abc.abstractmethod
    def episode(self, index: int) -> Episode:
        """Episode ``index`` (0-based; negative counts from the end) as a canonical episode."""

    def __iter__(self) -> Iterator[Episode]:
        for index in range(len(self)):
            yield self.episode(index)

    def close(self) -> None:  # noqa: B027 - optional hook, most readers hold nothing open
        """Release open files (a no-op unless the reader keeps one open)."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _check_index(self, index: int) -> int:
        """Normalise a possibly negative index; raise IndexError naming the dataset when out of range."""
        count = len(self)
        if not -count <= index < count:
            raise IndexError(f"{self.path}: episode index {index} out of range for {count} episodes")
        return index % count


def load_builtin_formats() -> None:
    """Import the built-in format modules so that their decorators fill the registries."""
    for module in _BUILTIN_FORMAT_MODULES:
        importlib.import_module(module)


def create_writer(format_name: str, path: str | Path, **options: Any) -> EpisodeWriter:
    """A writer of the registered format ``format_name`` (``zarr``, ``rlds``, ``hdf5``, ``lerobot``) at ``path``."""
    load_builtin_formats()
    return DATASET_WRITERS.get(format_name)(Path(path), **options)


def detect_format(path: str | Path) -> str:
    """The name of the registered format that ``path`` holds; DatasetError when none or missing."""
    load_builtin_formats()
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"{path}: no such file or directory")
    for name in DATASET_READERS.names():
        if DATASET_READERS.get(name).detect(path):
            return name
    known = ", ".join(DATASET_READERS.names())
    raise DatasetError(
        f"{path}: not a dataset of any known format ({known}): expected a Zarr store with "
        "data/ and meta/episode_ends, an RLDS directory with dataset_info.json and features.json, "
        "an HDF5 file with a data/ group, or a LeRobot folder with meta/info.json"
    )


def open_dataset(path: str | Path, format_name: str | None = None, **options: Any) -> EpisodeReader:
    """Open a dataset for reading, detecting its format unless ``format_name`` is given."""
    load_builtin_formats()
    name = format_name or detect_format(path)
    return DATASET_READERS.get(name)(Path(path), **options)


# ------------------------------------------------------------------------------ shard formats
class FormatOptionError(UsageError, ValueError):
    """A ``codecs.<format>.<key>`` that the format's writer does not take: unknown key, wrong type or value."""


@dataclass(frozen=True)
class FormatOptions:
    """Base of a format's writer options: each field is a ``codecs.<format>.<key>`` users may set,
    its default the writer's. Subclasses add fields and, for values a type cannot rule out,
    :meth:`invalid`."""

    @classmethod
    def from_codecs(cls, given: Mapping[str, Any]) -> Self:
        """The options from the keys ``codecs.<format>`` sets (keys and types already checked)."""
        return cls(**given)

    def invalid(self) -> dict[str, str]:
        """``{key: what is expected}`` for each value the writer would refuse (empty: all good)."""
        return {}

    def writer_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of the format's writer."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class ShardSlot:
    """Shard ``index`` of the ``count`` shards of a run of split ``split``."""

    index: int
    count: int
    split: str


@dataclass(frozen=True)
class RunShards:
    """What a format's finalize hook sees of a run: its folder, its recorded options (``run.json``'s
    ``config``), its shard records (by shard number; ``files[<format>]`` holds each shard's path,
    checksum and size) and its number of shards."""

    root: Path
    config: Mapping[str, Any]
    records: list[dict[str, Any]]
    num_shards: int

    @property
    def complete(self) -> bool:
        """Whether every shard of the run is recorded."""
        return len(self.records) == self.num_shards

    def shard_paths(self, format_name: str) -> list[Path]:
        """The paths of format ``format_name``'s recorded shards, by shard number."""
        spec = SHARD_FORMATS.get(format_name)
        split = str(self.config["split"])
        return [self.root / spec.shard_path(ShardSlot(int(r["shard"]), self.num_shards, split)) for r in self.records]


@dataclass(frozen=True)
class ShardFormat:
    """How generation writes one dataset format.

    ``writer(path, **options.writer_kwargs())`` opens one shard's writer at ``path`` (a file or a
    folder, created by the writer); ``shard_path(slot)`` is that shard's path relative to the run
    folder; ``options`` the :class:`FormatOptions` subclass of ``codecs.<name>`` (None: the writer
    takes none); ``finalize(run, name)`` writes the dataset-wide files (indexes, merged datasets,
    metadata) after the shard records; ``count_episodes(path)`` counts a shard's episodes for
    ``sim2real verify`` (None: the length of the registered reader of ``name``)."""

    name: str
    writer: Callable[..., EpisodeWriter]
    shard_path: Callable[[ShardSlot], Path]
    options: type[FormatOptions] | None = None
    finalize: Callable[[RunShards, str], None] | None = None
    count_episodes: Callable[[Path], int] | None = None

    def parse_options(self, given: Mapping[str, Any]) -> FormatOptions | None:
        """The writer options ``codecs.<name>`` sets; :class:`FormatOptionError` naming the first bad key."""
        if self.options is None:
            for key, value in given.items():
                raise FormatOptionError(f"codecs.{self.name}.{key}={value!r}: {self.name} takes no writer options")
            return None
        hints = typing.get_type_hints(self.options)
        known = [f.name for f in dataclasses.fields(self.options)]
        for key, value in given.items():
            if key not in hints:
                raise FormatOptionError(
                    f"codecs.{self.name}.{key}={value!r}: unknown option; known: {', '.join(known)}"
                )
            if not _is_instance(value, hints[key]):
                raise FormatOptionError(f"codecs.{self.name}.{key}={value!r}: expected {_type_name(hints[key])}")
        options = self.options.from_codecs(given)
        for key, expected in options.invalid().items():
            raise FormatOptionError(f"codecs.{self.name}.{key}={getattr(options, key)!r}: expected {expected}")
        return options

    def open(self, path: Path, given: Mapping[str, Any]) -> EpisodeWriter:
        """A writer of one shard at ``path`` with the options ``codecs.<name>`` sets."""
        options = self.parse_options(given)
        return self.writer(path, **(options.writer_kwargs() if options is not None else {}))

    def episode_count(self, path: Path) -> int:
        """How many episodes the shard at ``path`` holds."""
        if self.count_episodes is not None:
            return self.count_episodes(path)
        with DATASET_READERS.get(self.name)(path) as reader:
            return len(reader)


def register_shard_format(spec: ShardFormat) -> ShardFormat:
    """Make ``spec`` a format ``generate.py formats=[...]`` writes."""
    return SHARD_FORMATS.register(spec.name)(spec)


def numbered_shards(folder: str, suffix: str) -> Callable[[ShardSlot], Path]:
    """Shard naming ``<folder>/shard-<index, 5 digits><suffix>`` (``zarr/shard-00003.zarr``)."""

    def shard_path(slot: ShardSlot) -> Path:
        return Path(folder) / f"shard-{slot.index:05d}{suffix}"

    return shard_path


def shard_format(name: str) -> ShardFormat:
    """The registered shard format ``name`` (the built-in ones imported first)."""
    load_builtin_formats()
    return SHARD_FORMATS.get(name)


def _is_instance(value: object, hint: Any) -> bool:
    """Whether ``value`` is of the (union of) simple types ``hint``; an int counts as a float, a bool as neither."""
    if hint is Any:
        return True
    choices = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    for choice in choices:
        if choice is type(None) and value is None:
            return True
        if isinstance(value, bool):
            if choice is bool:
                return True
            continue
        if choice is float and isinstance(value, int | float):
            return True
        if isinstance(choice, type) and choice is not type(None) and isinstance(value, choice):
            return True
    return False


def _type_name(hint: Any) -> str:
    choices = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    return " or ".join("null" if c is type(None) else getattr(c, "__name__", str(c)) for c in choices)
