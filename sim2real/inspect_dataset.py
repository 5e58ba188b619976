"""``sim2real inspect PATH``: what a dataset holds — episodes, steps, success rate, instruction
counts, per-factor randomization histograms (PNG) and a strip of frames from chosen episodes."""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from sim2real.datasets import open_dataset
from sim2real.datasets.integrity import verify_recorded_files
from sim2real.randomizers.factors import CATEGORICAL, scene_factors
from sim2real.sim.scene_spec import SceneSpec


def summarize(path: Path, **reader_options: Any) -> dict[str, Any]:
    """Counts and per-factor values over every episode of the dataset at ``path``."""
    reader = open_dataset(path, **reader_options)
    steps, successes, instructions, tasks = 0, 0, Counter(), Counter()
    factors: dict[str, list[Any]] = {}
    for index in range(len(reader)):  # type: ignore[arg-type]
        episode = reader.episode(index)
        steps += episode.steps.num_steps
        successes += int(episode.metadata.success)
        instructions[episode.steps.language_instruction] += 1
        tasks[episode.metadata.task] += 1
        if episode.metadata.scene_spec_json:
            for name, value in scene_factors(SceneSpec.from_json(episode.metadata.scene_spec_json)).items():
                factors.setdefault(name, []).append(value)
    count = len(reader)  # type: ignore[arg-type]
    reader.close()
    return {
        "path": str(path), "episodes": count, "steps": steps, "success_rate": successes / max(count, 1),
        "tasks": dict(tasks), "instructions": dict(instructions.most_common()), "factors": factors,
    }  # fmt: skip


def plot_factors(factors: dict[str, list[Any]], output: Path) -> None:
    """A grid of histograms (numbers) and bar charts (categories), one per factor."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    names = sorted(factors)
    columns = 4
    rows = max(1, (len(names) + columns - 1) // columns)
    figure = Figure(figsize=(4 * columns, 2.6 * rows))
    FigureCanvasAgg(figure)
    for i, name in enumerate(names):
        axis = figure.add_subplot(rows, columns, i + 1)
        values = factors[name]
        if name in CATEGORICAL:
            counts = Counter(values)
            axis.bar(list(counts), list(counts.values()), color="tab:orange")
            axis.tick_params(axis="x", labelrotation=30, labelsize=7)
        else:
            axis.hist(np.asarray(values, float), bins=15, color="tab:blue")
        axis.set_title(name, fontsize=9)
    figure.tight_layout()
    figure.savefig(output, dpi=80)


def frame_strip(path: Path, episodes: list[int], output: Path, frames: int = 6, **reader_options: Any) -> None:
    """Rows of evenly spaced frames (cameras side by side) from each chosen episode."""
    reader = open_dataset(path, **reader_options)
    rows = []
    for index in episodes:
        episode = reader.episode(index)
        cameras = sorted(episode.steps.images)
        picks = np.linspace(0, episode.steps.num_steps - 1, frames).round().astype(int)
        rows.append(np.concatenate([np.concatenate([episode.steps.images[c][t] for c in cameras], axis=0)
                                    for t in picks], axis=1))  # fmt: skip
    reader.close()
    Image.fromarray(np.concatenate(rows, axis=0)).save(output)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="sim2real inspect", description=__doc__)
    parser.add_argument("path", type=Path, help="a dataset: zarr/, hdf5/ (sharded), an RLDS version folder, a store")
    parser.add_argument("--episodes", default="0", help="comma-separated episode indices for the frame strip")
    parser.add_argument("-o", "--output", type=Path, default=None, help="folder for the PNGs (default: beside PATH)")
    args = parser.parse_args(argv)
    checked = verify_recorded_files(args.path)  # a generated dataset's files against their checksums
    summary = summarize(args.path)
    out = args.output or args.path.parent / "inspect"
    out.mkdir(parents=True, exist_ok=True)
    print(f"{summary['path']}: {summary['episodes']} episodes, {summary['steps']} steps, "
          f"success rate {summary['success_rate']:.1%}"
          + (f"; {checked} files match their checksums" if checked else ""))  # fmt: skip
    print("tasks: " + ", ".join(f"{k} {v}" for k, v in summary["tasks"].items()))
    print(f"instructions ({len(summary['instructions'])} distinct):")
    for text, count in list(summary["instructions"].items())[:15]:
        print(f"  {count:5d}  {text}")
    if summary["factors"]:
        plot_factors(summary["factors"], out / "factors.png")
        print(f"factor histograms: {out / 'factors.png'}")
    episodes = [int(e) for e in args.episodes.split(",") if e]
    frame_strip(args.path, episodes, out / "frames.png")
    print(f"frame strip: {out / 'frames.png'}")
    (out / "summary.json").write_text(json.dumps({k: v for k, v in summary.items() if k != "factors"}, indent=1))
