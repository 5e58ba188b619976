"""One dataset view over the shards of a generation run (``<format>/index.json``)."""

from __future__ import annotations

import bisect
import json
from pathlib import Path

from sim2real.datasets.integrity import write_json_atomic
from sim2real.datasets.registry import DATASET_READERS, EpisodeReader, RunShards
from sim2real.datasets.schema import DatasetError, Episode

INDEX = "index.json"


def write_shard_index(run: RunShards, format_name: str) -> None:
    """Write ``<format>/index.json``: the recorded shards of ``format_name`` in episode order, which
    :class:`ShardedDataset` reads as one dataset (a :class:`~sim2real.datasets.registry.ShardFormat`
    finalize hook)."""
    entries = [{"shard": s["shard"], "path": Path(s["files"][format_name]["path"]).name,
                "first_episode": s["episodes"][0]["index"], "num_episodes": len(s["episodes"])}
               for s in run.records]  # fmt: skip
    index = {"format": format_name, "complete": run.complete, "shards": entries}
    write_json_atomic(run.root / format_name / INDEX, index)


@DATASET_READERS.register("sharded")
class ShardedDataset(EpisodeReader):
    """Reads the Zarr or HDF5 shards listed in ``index.json`` as one dataset; episode ``i`` is
    the run's episode ``i``. Shards are opened lazily and kept open."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        index_path = self.path / INDEX
        if not index_path.is_file():
            raise DatasetError(f"{self.path}: no {INDEX}; run the index step (generate.py ... or sim2real index)")
        try:
            index = json.loads(index_path.read_text())
            self.format = str(index["format"])
            self.shards = [
                (self.path / s["path"], int(s["first_episode"]), int(s["num_episodes"])) for s in index["shards"]
            ]
        except (KeyError, TypeError, ValueError) as error:
            raise DatasetError(f"{index_path}: malformed index ({error})") from None
        self.complete = bool(index.get("complete", False))
        self._starts = []
        total = 0
        for _, _, count in self.shards:
            self._starts.append(total)
            total += count
        self._len = total
        self._open: dict[int, EpisodeReader] = {}

    @classmethod
    def detect(cls, path: Path) -> bool:
        return path.is_dir() and (path / INDEX).is_file()

    def __len__(self) -> int:
        return self._len

    def shard(self, number: int) -> EpisodeReader:
        from sim2real.datasets.registry import open_dataset

        if number not in self._open:
            shard_path, _, count = self.shards[number]
            reader = open_dataset(shard_path, self.format)
            if len(reader) != count:  # type: ignore[arg-type]
                raise DatasetError(f"{shard_path}: holds {len(reader)} episodes, the index says {count}")  # type: ignore[arg-type]
            self._open[number] = reader
        return self._open[number]

    def locate(self, index: int) -> tuple[int, int]:
        """(shard number, index inside the shard) of dataset episode ``index``."""
        if not 0 <= index < self._len:
            raise IndexError(f"{self.path}: episode {index} out of range [0, {self._len})")
        number = bisect.bisect_right(self._starts, index) - 1
        return number, index - self._starts[number]

    def episode(self, index: int) -> Episode:
        number, local = self.locate(index)
        return self.shard(number).episode(local)

    def close(self) -> None:
        for reader in self._open.values():
            reader.close()
        self._open.clear()
