"""Datasets: the canonical episode schema and its on-disk formats (Zarr, RLDS, HDF5).

>>> from sim2real.datasets import create_writer, open_dataset
>>> with create_writer("zarr", "run.zarr") as writer:          # doctest: +SKIP
...     writer.write(episode)
>>> dataset = open_dataset("run.zarr")                          # doctest: +SKIP
>>> dataset.episode(0).steps.action.shape                       # doctest: +SKIP
(T, 7)

Importing this package never imports a simulator or TensorFlow.
"""

from sim2real.datasets.hdf5_format import HDF5Dataset, HDF5EpisodeWriter
from sim2real.datasets.registry import (
    DATASET_READERS,
    DATASET_WRITERS,
    EpisodeReader,
    EpisodeWriter,
    create_writer,
    detect_format,
    open_dataset,
)
from sim2real.datasets.rlds_format import RLDSDataset, RLDSEpisodeWriter
from sim2real.datasets.rlds_mapping import RLDS_MAPPINGS, RLDSMapping
from sim2real.datasets.schema import (
    ACTION_DIM,
    ACTION_NAMES,
    DEFAULT_CAMERAS,
    STATE_DIM,
    STATE_NAMES,
    DatasetError,
    Episode,
    EpisodeMetadata,
    EpisodeSteps,
    content_hash,
    diff_episodes,
    validate_episode,
)
from sim2real.datasets.zarr_format import ZarrDataset, ZarrEpisodeWriter

__all__ = [
    "ACTION_DIM",
    "ACTION_NAMES",
    "DATASET_READERS",
    "DATASET_WRITERS",
    "DEFAULT_CAMERAS",
    "RLDS_MAPPINGS",
    "STATE_DIM",
    "STATE_NAMES",
    "DatasetError",
    "Episode",
    "EpisodeMetadata",
    "EpisodeReader",
    "EpisodeSteps",
    "EpisodeWriter",
    "HDF5Dataset",
    "HDF5EpisodeWriter",
    "RLDSDataset",
    "RLDSEpisodeWriter",
    "RLDSMapping",
    "ZarrDataset",
    "ZarrEpisodeWriter",
    "content_hash",
    "create_writer",
    "detect_format",
    "diff_episodes",
    "open_dataset",
    "validate_episode",
]
