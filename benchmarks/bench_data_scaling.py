"""How much synthetic data a skill needs, and how broad its randomization should be.

Two curves, each at a fixed training budget and one task. The budget is the main job's
(``configs/pipeline.yaml``: its steps and its training overrides, e.g. 64x64 images and wide bin
targets); ``--steps`` and ``--train-override`` change it.

* **episodes**: closed-loop success on in-distribution scenes against the number of training
  episodes (``--episodes 50,100,200,400,800``). One dataset of the largest size is generated
  with the ``--preset`` randomization; each run trains on its first N episodes
  (``data.max_episodes``), so the smaller sets are prefixes of the larger ones.
* **presets**: success on every evaluation variant (in-distribution and each held-out one)
  against the randomization preset trained on (``--presets light,default,heavy``, each with
  ``--preset-episodes`` episodes). Evaluation scenes always come from the ``--preset``
  randomization's held-out splits, so the presets are compared on the same scenes.

Every (point, seed) trains ``--seeds`` times with ``train.seed`` 0..N-1 and reports each seed's
successes, their mean and their spread. Evaluation scenes are never training scenes (the
evaluation split's seeds). Finished steps are skipped on a rerun (a folder with its result).

Writes under ``--out``: ``episodes.csv``/``episodes.png``, ``presets.csv``/``presets.png`` and one
folder per dataset, run and evaluation. Prints one table per curve.

    python benchmarks/bench_data_scaling.py --out runs/scaling --seeds 3 [--steps 3000] \\
        [--task pick_place] [--episodes 50,100,200,400,800] [--presets light,default,heavy] \\
        [--preset-episodes 200] [--eval-episodes 30] [--policy vla] [--part episodes|presets|both]
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sim2real.pipeline import PipelineSettings
from sim2real.randomizers import HELD_OUT_VARIANTS
from sim2real.sim.experts import TRAINING_DART

ROOT = Path(__file__).resolve().parents[1]
MAIN_JOB = PipelineSettings.load()


@dataclass(frozen=True)
class Point:
    """One training configuration of a curve: its label, dataset folder and episode cap."""

    label: str
    data: Path
    max_episodes: int | None


def run(command: Sequence[str]) -> None:
    """Run one CLI step from the project root; stop the benchmark if it fails."""
    print("$", " ".join(map(str, command)), flush=True)
    subprocess.run([sys.executable, *map(str, command)], cwd=ROOT, check=True)


def generate(folder: Path, task: str, preset: str, episodes: int) -> Path:
    """A DART dataset of ``episodes`` episodes (Zarr) at ``folder``; reused when complete."""
    manifest = folder / "manifest.json"
    if not (manifest.exists() and json.loads(manifest.read_text()).get("complete")):
        run(["generate.py", f"task={task}", f"randomization={preset}", f"num_episodes={episodes}", "workers=2",
             "shard_size=25", "formats=[zarr]", f"output_dir={folder}", f"expert_noise={TRAINING_DART.scale}",
             f"expert_noise_rate={TRAINING_DART.rate}", "progress=false"])  # fmt: skip
    return folder / "zarr"


def train(point: Point, run_dir: Path, args: argparse.Namespace, seed: int) -> Path:
    """Train one seed of ``point`` (an interrupted run resumes); returns its last checkpoint."""
    checkpoint = run_dir / "checkpoints" / "last"
    if not (checkpoint / "model.safetensors").exists():
        cap = [] if point.max_episodes is None else [f"data.max_episodes={point.max_episodes}"]
        run(["train.py", f"model={args.policy}", f"data.path={point.data}", f"output_dir={run_dir}",
             f"train.max_steps={args.steps}", f"train.seed={seed}", "progress=false", *cap,
             *MAIN_JOB.overrides["train"], *args.train_override])  # fmt: skip
    return checkpoint


def evaluate(checkpoint: Path, eval_dir: Path, variants: Sequence[str], args: argparse.Namespace) -> dict[str, int]:
    """Successes per variant on ``args.task`` (``--eval-episodes`` scenes each)."""
    metrics = eval_dir / "metrics.json"
    if not metrics.exists():
        run(["evaluate.py", f"policy={args.policy}", f"policy.checkpoint={checkpoint}", f"tasks=[{args.task}]",
             f"variants=[{','.join(variants)}]", f"episodes_per_variant={args.eval_episodes}",
             f"randomization={args.preset}", "workers=2", "reference_rows=false", f"output_dir={eval_dir}",
             "progress=false", *args.eval_override])  # fmt: skip
    closed_loop = json.loads(metrics.read_text())["closed_loop"]
    return {variant: int(closed_loop[variant][args.task]["successes"]) for variant in variants}


def measure(points: Sequence[Point], variants: Sequence[str], folder: Path, args: argparse.Namespace) -> list[dict]:
    """Train and evaluate every point for every seed; one row per (point, variant)."""
    rows = []
    for point in points:
        per_seed: list[dict[str, int]] = []
        for seed in range(args.seeds):
            run_dir = folder / point.label / f"seed{seed}"
            checkpoint = run_dir / "train" / "checkpoints" / "last"
            if not (run_dir / "eval" / "metrics.json").exists():
                checkpoint = train(point, run_dir / "train", args, seed)
            per_seed.append(evaluate(checkpoint, run_dir / "eval", variants, args))
        for variant in variants:
            successes = [result[variant] for result in per_seed]
            rows.append(summary_row(point.label, variant, successes, args.eval_episodes))
    return rows


def summary_row(label: str, variant: str, successes: Sequence[int], trials: int) -> dict:
    """Each seed's successes, their mean and spread (sample std; 0 for one seed), out of ``trials``."""
    mean = statistics.fmean(successes)
    spread = statistics.stdev(successes) if len(successes) > 1 else 0.0
    return {"point": label, "variant": variant, "trials": trials, "seeds": " ".join(map(str, successes)),
            "mean": round(mean, 2), "std": round(spread, 2), "rate": round(mean / trials, 4)}  # fmt: skip


def write_table(rows: Sequence[dict], path: Path, title: str) -> None:
    """CSV at ``path``; the same rows printed as an aligned table."""
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"\n{title} ({path}):")
    print(f"  {'point':<10} {'variant':<16} {'per seed':<14} {'mean':>6} {'std':>6} {'rate':>6}")
    for row in rows:
        print(f"  {row['point']:<10} {row['variant']:<16} {row['seeds']:<14} {row['mean']:>6} {row['std']:>6} "
              f"{row['rate']:>6.1%}")  # fmt: skip


def plot(rows: Sequence[dict], path: Path, xlabel: str, numeric_x: bool) -> None:
    """Success rate (mean over seeds, error bar = std) per variant against the curve's points."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6.4, 4.0))
    for variant in dict.fromkeys(row["variant"] for row in rows):
        chosen = [row for row in rows if row["variant"] == variant]
        xs = [int(row["point"]) if numeric_x else row["point"] for row in chosen]
        axes.errorbar(xs, [row["rate"] for row in chosen], yerr=[row["std"] / row["trials"] for row in chosen],
                      marker="o", capsize=3, label=variant)  # fmt: skip
    if numeric_x:
        axes.set_xscale("log")
        axes.minorticks_off()
        axes.set_xticks(xs, [str(x) for x in xs])
    axes.set(xlabel=xlabel, ylabel="closed-loop success rate", ylim=(0, 1))
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def episodes_curve(args: argparse.Namespace) -> None:
    data = generate(args.out / "data" / args.preset, args.task, args.preset, max(args.episodes))
    points = [Point(str(n), data, n) for n in sorted(args.episodes)]
    rows = measure(points, ["in_distribution"], args.out / "episodes", args)
    write_table(
        rows, args.out / "episodes.csv", f"success against training episodes ({args.preset}, {args.steps} steps)"
    )
    plot(rows, args.out / "episodes.png", "training episodes", numeric_x=True)


def presets_curve(args: argparse.Namespace) -> None:
    # The cap matters where a preset's folder holds more episodes (the episodes curve's own).
    points = [
        Point(p, generate(args.out / "data" / p, args.task, p, args.preset_episodes), args.preset_episodes)
        for p in args.presets
    ]
    rows = measure(points, ["in_distribution", *HELD_OUT_VARIANTS], args.out / "presets", args)
    write_table(
        rows, args.out / "presets.csv", f"success per variant against the preset trained on ({args.steps} steps)"
    )
    plot(rows, args.out / "presets.png", "randomization preset trained on", numeric_x=False)


def comma_ints(value: str) -> list[int]:
    return [int(v) for v in value.split(",") if v]


def comma_names(value: str) -> list[str]:
    return [v for v in value.split(",") if v]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "scaling")
    parser.add_argument("--task", default="pick_place")
    parser.add_argument("--policy", default="vla")
    parser.add_argument("--steps", type=int, default=MAIN_JOB.steps, help="training steps of every run (the budget)")
    parser.add_argument("--seeds", type=int, default=1, help="training seeds per point")
    parser.add_argument("--episodes", type=comma_ints, default=[50, 100, 200, 400, 800])
    parser.add_argument("--preset", default="light", help="the episodes curve's preset; the evaluation scenes'")
    parser.add_argument("--presets", type=comma_names, default=["light", "default", "heavy"])
    parser.add_argument("--preset-episodes", type=int, default=200)
    parser.add_argument("--eval-episodes", type=int, default=30)
    parser.add_argument("--part", choices=("episodes", "presets", "both"), default="both")
    parser.add_argument("--train-override", action="append", default=[], help="hydra override for train.py")
    parser.add_argument("--eval-override", action="append", default=[], help="hydra override for evaluate.py")
    args = parser.parse_args()
    start = time.perf_counter()
    if args.part in ("episodes", "both"):
        episodes_curve(args)
    if args.part in ("presets", "both"):
        presets_curve(args)
    print(f"\ntotal {(time.perf_counter() - start) / 60:.1f} min")


if __name__ == "__main__":
    main()
