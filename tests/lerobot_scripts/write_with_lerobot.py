"""Runs in the lerobot venv (not the project's): write datasets with ``lerobot``'s own API
(``LeRobotDataset.create``, ``add_frame``, ``save_episode``, ``finalize``) and its default video settings.

Usage: ``python write_with_lerobot.py SPEC.json``. ``SPEC.json`` holds ``datasets``, a list of objects with
``root``, ``fps``, ``robot_type``, ``features`` (lerobot's feature dict) and ``episodes``: a list of
``{"task": str, "npz": path}``, each npz holding one array per feature key, (T, ...) per frame (images
(T, H, W, 3) uint8). Prints one JSON line: what lerobot wrote (its info.json totals, video info per camera).
"""

from __future__ import annotations

import json
import sys
from importlib.metadata import version
from pathlib import Path

import numpy as np
from lerobot.datasets.lerobot_dataset import LeRobotDataset


def write(spec: dict) -> dict:
    # shapes as tuples, as lerobot's own recording scripts give them (validate_frame compares them to array shapes)
    features = {key: {**feature, "shape": tuple(feature["shape"])} for key, feature in spec["features"].items()}
    dataset = LeRobotDataset.create(
        repo_id="local/written",
        fps=spec["fps"],
        root=spec["root"],
        features=features,
        robot_type=spec["robot_type"],
        use_videos=True,
    )
    for episode in spec["episodes"]:
        with np.load(episode["npz"]) as data:
            arrays = {key: data[key] for key in spec["features"]}
        for t in range(len(next(iter(arrays.values())))):
            dataset.add_frame({key: values[t] for key, values in arrays.items()} | {"task": episode["task"]})
        dataset.save_episode()
    dataset.finalize()
    info = dataset.meta.info
    return {
        "codebase_version": info["codebase_version"],
        "total_frames": info["total_frames"],
        "total_episodes": info["total_episodes"],
        "video_info": {key: ft.get("info") for key, ft in info["features"].items() if ft["dtype"] == "video"},
    }


def main(spec_path: str) -> None:
    specs = json.loads(Path(spec_path).read_text())["datasets"]
    print(json.dumps({"lerobot": version("lerobot"), "datasets": [write(spec) for spec in specs]}))


if __name__ == "__main__":
    main(sys.argv[1])
