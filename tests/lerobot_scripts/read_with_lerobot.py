"""Runs in the lerobot venv (not the project's): open a dataset with ``lerobot``'s own ``LeRobotDataset`` and dump
what it gives for every frame.

Usage: ``python read_with_lerobot.py ROOT OUT.npz [ROOT OUT.npz ...]``. Prints one JSON line: ``versions`` (lerobot,
torch, torchcodec) and ``datasets``, per dataset what lerobot says about it (lengths, episode boundaries, tasks,
features). Each ``OUT.npz`` holds per-frame arrays in lerobot's index
order: ``action``, ``state``, ``index``, ``episode_index``, ``frame_index``, ``timestamp``, ``task_index``,
``task`` (the task string) and, per camera feature ``observation.images.<cam>``, ``image.<cam>`` as
(N, H, W, 3) uint8: lerobot's float [0, 1] CHW frames times 255, rounded (exact, since lerobot makes them as
uint8 / 255).
"""

from __future__ import annotations

import json
import sys
from importlib.metadata import version

import numpy as np
import torch
import torchcodec
from lerobot.datasets.lerobot_dataset import LeRobotDataset


def read(root: str, out: str) -> dict:
    dataset = LeRobotDataset(repo_id="local/sim2real", root=root, video_backend="torchcodec")
    meta = dataset.meta
    episodes = meta.episodes
    columns: dict[str, list] = {
        key: [] for key in ("action", "state", "index", "episode_index", "frame_index", "timestamp", "task_index")
    }
    cameras = list(meta.camera_keys)
    images: dict[str, list[np.ndarray]] = {key: [] for key in cameras}
    tasks: list[str] = []
    for i in range(len(dataset)):
        item = dataset[i]
        columns["action"].append(item["action"].numpy())
        columns["state"].append(item["observation.state"].numpy())
        for key in ("index", "episode_index", "frame_index", "timestamp", "task_index"):
            columns[key].append(item[key].numpy())
        for key in cameras:
            frame = item[key]
            assert frame.dtype == torch.float32 and frame.ndim == 3 and frame.shape[0] == 3, (key, frame.shape)
            images[key].append((frame.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
        tasks.append(item["task"])
    arrays = {key: np.stack(values) for key, values in columns.items()}
    arrays |= {"image." + key.removeprefix("observation.images."): np.stack(values) for key, values in images.items()}
    np.savez(out, task=np.array(tasks), **arrays)
    report = {
        "len": len(dataset),
        "num_frames": dataset.num_frames,
        "num_episodes": dataset.num_episodes,
        "total_frames": meta.total_frames,
        "total_episodes": meta.total_episodes,
        "fps": meta.fps,
        "codebase_version": meta.info["codebase_version"],
        "episode_index": [int(v) for v in episodes["episode_index"]],
        "dataset_from_index": [int(v) for v in episodes["dataset_from_index"]],
        "dataset_to_index": [int(v) for v in episodes["dataset_to_index"]],
        "length": [int(v) for v in episodes["length"]],
        "episode_tasks": [list(v) for v in episodes["tasks"]],
        "tasks": [str(t) for t in meta.tasks.index],
        "task_indices": [int(v) for v in meta.tasks["task_index"]],
        "camera_keys": cameras,
        "video_keys": list(meta.video_keys),
        "features": sorted(meta.features),
        "names": {key: meta.features[key].get("names") for key in ("action", "observation.state")},
    }
    return report


def main(args: list[str]) -> None:
    reports = [read(root, out) for root, out in zip(args[::2], args[1::2], strict=True)]
    versions = {"lerobot": version("lerobot"), "torch": torch.__version__, "torchcodec": torchcodec.__version__}
    print(json.dumps({"versions": versions, "datasets": reports}))


if __name__ == "__main__":
    main(sys.argv[1:])
