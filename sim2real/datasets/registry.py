"""Dataset formats keyed by name: writers and readers, each registered where it is defined.

>>> from sim2real.datasets import DATASET_READERS
>>> DATASET_READERS.names()
['hdf5', 'lerobot', 'rlds', 'sharded', 'zarr']

:func:`open_dataset` finds the format of a path by asking each registered reader's
``detect``; :func:`create_writer` builds a writer by format name.
"""

from __future__ import annotations

import abc
import importlib
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from sim2real.datasets.schema import DatasetError, Episode
from sim2real.registry import Registry

#: Writer classes by format name; ``cls(path, **options)`` returns an :class:`EpisodeWriter`.
DATASET_WRITERS: Registry[type[EpisodeWriter]] = Registry("dataset writer")
#: Reader classes by format name; ``cls(path, **options)`` returns an :class:`EpisodeReader`.
DATASET_READERS: Registry[type[EpisodeReader]] = Registry("dataset reader")

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
