"""Several LeRobot v3.0 datasets (the shards of a generation run) merged into one that ``lerobot`` opens.

Episode ``i`` of source ``k`` becomes episode ``sum(len(source j) for j < k) + i``; frame indices,
``dataset_from_index``/``dataset_to_index`` and task indices (tasks in order of first appearance)
are renumbered. Each source data file is rewritten with the new ``episode_index``, ``index`` and
``task_index`` columns (the other columns are copied as they are); each source video file becomes
one video file of the merged dataset unchanged (a hard link where the file system allows, else a
copy), so its episodes keep their ``from_timestamp``/``to_timestamp``. ``stats.json`` is the
count-weighted merge of the sources'. Everything is written beside the target's own files first
and moved into place with ``meta/`` (and so ``meta/info.json``) last, under a lock on the target
(two processes that finish one run at once both merge; the second rewrites the same bytes).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from sim2real.datasets.lerobot_format import (
    CODEBASE_VERSION,
    DATA_PATH,
    EPISODES_PATH,
    INFO_PATH,
    STATS_PATH,
    TASKS_PATH,
    VIDEO_PATH,
    next_chunk_file,
    read_tasks,
    tasks_table,
)
from sim2real.datasets.lerobot_stats import merge_all, stats_from_json, stats_json
from sim2real.datasets.schema import DatasetError, reading

#: The folders of a LeRobot dataset that a merge replaces.
DATASET_FOLDERS = ("data", "videos", "meta")
#: Held (``flock``) while a merge writes the target.
LOCK_FILE = ".merge.lock"


def _link_or_copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


class _Numbering:
    """Running (chunk, file) indices of one kind of file in the merged dataset."""

    def __init__(self, chunks_size: int) -> None:
        self.chunks_size = chunks_size
        self.next: tuple[int, int] = (0, 0)

    def take(self) -> tuple[int, int]:
        current = self.next
        self.next = next_chunk_file(*current, self.chunks_size)
        return current


def _episodes_table(root: Path) -> pa.Table:
    files = sorted((root / "meta" / "episodes").glob("*/*.parquet"))
    if not files:
        raise DatasetError(f"{root}: no meta/episodes parquet files")
    with reading(str(files[0])):
        table = pa.concat_tables([pq.read_table(f) for f in files], promote_options="default")
    return table.sort_by("episode_index")


def _with_column(table: pa.Table, name: str, values: Any) -> pa.Table:
    index = table.schema.get_field_index(name)
    column = pa.array(values, table.schema.field(name).type)
    return table.set_column(index, name, column)


def merge_datasets(sources: list[Path], target: Path) -> dict[str, Any]:
    """Merge the LeRobot v3.0 datasets ``sources`` (in order) into one at ``target``; return its ``info.json``.

    ``target`` may hold other files (the sources themselves, an index); only its ``data/``,
    ``videos/`` and ``meta/`` are replaced."""
    if not sources:
        raise DatasetError(f"{target}: no datasets to merge")
    infos = []
    for source in sources:
        info = json.loads((source / INFO_PATH).read_text())
        if info.get("codebase_version") != CODEBASE_VERSION:
            raise DatasetError(f"{source / INFO_PATH}: codebase_version {info.get('codebase_version')!r}, "
                               f"expected {CODEBASE_VERSION!r} to merge")  # fmt: skip
        infos.append(info)
    first = infos[0]
    for source, info in zip(sources, infos, strict=True):
        if info["features"] != first["features"] or info["fps"] != first["fps"]:
            raise DatasetError(f"{source / INFO_PATH}: features or fps differ from {sources[0] / INFO_PATH}")
    target.mkdir(parents=True, exist_ok=True)
    with open(target / LOCK_FILE, "a") as lock:  # two runs finishing at once merge one after the other
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            return _merge(sources, infos, target)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _merge(sources: list[Path], infos: list[dict[str, Any]], target: Path) -> dict[str, Any]:
    first = infos[0]
    chunks_size = int(first.get("chunks_size") or 1000)
    video_keys = [key for key, ft in first["features"].items() if ft["dtype"] == "video"]
    staging = target / f".merge.tmp-{os.getpid()}"  # removed by a later run once this process is gone
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    tasks: dict[str, int] = {}
    data_numbers = _Numbering(chunks_size)
    video_numbers = {key: _Numbering(chunks_size) for key in video_keys}
    episode_tables = []
    stats: dict[str, Any] | None = None
    episode_offset = frame_offset = 0
    for source in sources:
        task_map = np.array([tasks.setdefault(task, len(tasks)) for task in read_tasks(source / TASKS_PATH)], np.int64)
        episodes = _episodes_table(source)
        data_map: dict[tuple[int, int], tuple[int, int]] = {}
        for chunk, file in sorted(set(zip(episodes["data/chunk_index"].to_pylist(),
                                          episodes["data/file_index"].to_pylist(), strict=True))):  # fmt: skip
            path = source / DATA_PATH.format(chunk_index=chunk, file_index=file)
            with reading(str(path)):
                table = pq.read_table(path)
            table = _with_column(table, "episode_index", pc.add(table["episode_index"], episode_offset))
            table = _with_column(table, "index", pc.add(table["index"], frame_offset))
            table = _with_column(table, "task_index", task_map[table["task_index"].to_numpy()])
            data_map[(chunk, file)] = data_numbers.take()
            out = staging / DATA_PATH.format(chunk_index=data_map[(chunk, file)][0],
                                             file_index=data_map[(chunk, file)][1])  # fmt: skip
            out.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(table, out, compression="snappy", use_dictionary=True)
        mapped = [data_map[(c, f)] for c, f in zip(episodes["data/chunk_index"].to_pylist(),
                                                    episodes["data/file_index"].to_pylist(), strict=True)]  # fmt: skip
        episodes = _with_column(episodes, "data/chunk_index", [c for c, _ in mapped])
        episodes = _with_column(episodes, "data/file_index", [f for _, f in mapped])
        for key in video_keys:
            prefix = f"videos/{key}/"
            pairs = list(zip(episodes[prefix + "chunk_index"].to_pylist(), episodes[prefix + "file_index"].to_pylist(),
                             strict=True))  # fmt: skip
            video_map = {}
            for chunk, file in sorted(set(pairs)):
                video_map[(chunk, file)] = video_numbers[key].take()
                new_chunk, new_file = video_map[(chunk, file)]
                _link_or_copy(
                    source / VIDEO_PATH.format(video_key=key, chunk_index=chunk, file_index=file),
                    staging / VIDEO_PATH.format(video_key=key, chunk_index=new_chunk, file_index=new_file),
                )
            episodes = _with_column(episodes, prefix + "chunk_index", [video_map[p][0] for p in pairs])
            episodes = _with_column(episodes, prefix + "file_index", [video_map[p][1] for p in pairs])
        for name, offset in (("episode_index", episode_offset), ("dataset_from_index", frame_offset),
                             ("dataset_to_index", frame_offset)):  # fmt: skip
            episodes = _with_column(episodes, name, pc.add(episodes[name], offset))
        episode_tables.append(episodes)
        stats = merge_all(stats, stats_from_json(json.loads((source / STATS_PATH).read_text())))
        episode_offset += len(episodes)
        frame_offset += int(sum(episodes["length"].to_pylist()))
    episodes = pa.concat_tables(episode_tables, promote_options="default")
    episodes = _with_column(episodes, "meta/episodes/chunk_index", [0] * len(episodes))
    episodes = _with_column(episodes, "meta/episodes/file_index", [0] * len(episodes))
    path = staging / EPISODES_PATH.format(chunk_index=0, file_index=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(episodes, path, compression="snappy", use_dictionary=True)
    pq.write_table(tasks_table(list(tasks)), staging / TASKS_PATH)
    (staging / STATS_PATH).write_text(json.dumps(stats_json(stats or {}), indent=4, ensure_ascii=False))
    info = {**first, "total_episodes": episode_offset, "total_frames": frame_offset, "total_tasks": len(tasks),
            "splits": {"train": f"0:{episode_offset}"}}  # fmt: skip
    (staging / INFO_PATH).write_text(json.dumps(info, indent=4, ensure_ascii=False))
    for folder in reversed(DATASET_FOLDERS):  # meta first out, last in: meta/info.json only over complete data
        shutil.rmtree(target / folder, ignore_errors=True)
    for folder in DATASET_FOLDERS:
        if (staging / folder).exists():
            os.replace(staging / folder, target / folder)
    shutil.rmtree(staging)
    return info
