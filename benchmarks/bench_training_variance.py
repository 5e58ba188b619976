"""Where the variation between training runs comes from: initialisation, data order, CPU numerics.

Trains the main job's policy (``configs/pipeline.yaml``: its task, data, budget and model) once
per run, each run changing one source of variation against the first, and evaluates every run
closed loop on the same scenes. A run is ``TRAIN_SEED:DATA_SEED:THREADS``:

* ``train.seed``: the initial weights, dropout and augmentation;
* ``data.seed``: the validation split and the batch order;
* torch threads (``OMP_NUM_THREADS`` of the training process): the same arithmetic summed in
  another order, the way another machine or thread count sums it.

The default runs ``0:0:1,1:0:1,0:1:1,1:1:1,0:0:2`` vary initialisation alone, data alone, both,
and numerics alone. Finished runs and evaluations are skipped on a rerun. Writes
``variance.csv`` under ``--out`` and prints one line per run.

    python benchmarks/bench_training_variance.py --out runs/variance [--runs 0:0:1,1:0:1,...] \\
        [--steps 3000] [--eval-episodes 30] [--data DATASET]
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from sim2real.pipeline import PipelineSettings, commands

ROOT = Path(__file__).resolve().parents[1]
MAIN_JOB = PipelineSettings.load()
DEFAULT_RUNS = "0:0:1,1:0:1,0:1:1,1:1:1,0:0:2"


@dataclass(frozen=True)
class Run:
    """One training run: its seeds and the torch threads it trains with."""

    train_seed: int
    data_seed: int
    threads: int

    @property
    def label(self) -> str:
        return f"seed{self.train_seed}_data{self.data_seed}_threads{self.threads}"


def parse_runs(value: str) -> list[Run]:
    """``"0:0:1,1:0:1"`` -> runs; each item ``TRAIN_SEED:DATA_SEED:THREADS``."""
    runs = []
    for item in value.split(","):
        parts = item.strip().split(":")
        if len(parts) != 3 or not all(p.isdigit() for p in parts) or int(parts[2]) < 1:
            raise argparse.ArgumentTypeError(f"{item!r}: expected TRAIN_SEED:DATA_SEED:THREADS, e.g. 0:1:1")
        runs.append(Run(*map(int, parts)))
    return runs


def run(command: list[str], threads: int | None = None) -> None:
    """One CLI step from the project root (with ``threads`` torch threads); stops on failure."""
    env = dict(os.environ)
    if threads is not None:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    print("$", " ".join(map(str, command)), flush=True)
    subprocess.run([sys.executable, *map(str, command)], cwd=ROOT, check=True, env=env)


def dataset(args: argparse.Namespace) -> Path:
    """``--data``, or the main job's dataset generated once under ``--out`` (Zarr only)."""
    if args.data is not None:
        return args.data
    folder = args.out / "data"
    manifest = folder / "manifest.json"
    if not (manifest.exists() and json.loads(manifest.read_text()).get("complete")):
        generate = commands(MAIN_JOB, args.out)["generate"]
        run([*generate, "formats=[zarr]", "progress=false"])
    return folder / "zarr"


def weights_digest(checkpoint: Path) -> str:
    """The first 12 hex digits of the SHA-256 of the checkpoint's weights file."""
    return hashlib.sha256((checkpoint / "model.safetensors").read_bytes()).hexdigest()[:12]


def train_and_evaluate(spec: Run, data: Path, args: argparse.Namespace) -> dict:
    """Train ``spec`` (skipped when its last checkpoint exists), evaluate it (skipped when its
    metrics exist); one result row."""
    folder = args.out / spec.label
    checkpoint = folder / "train" / "checkpoints" / "last"
    if not (checkpoint / "model.safetensors").exists():
        run(["train.py", *MAIN_JOB.overrides["train"], f"data.path={data}", f"output_dir={folder / 'train'}",
             f"train.max_steps={args.steps}", f"train.seed={spec.train_seed}", f"data.seed={spec.data_seed}",
             "progress=false"], threads=spec.threads)  # fmt: skip
    metrics = folder / "eval" / "metrics.json"
    if not metrics.exists():
        run(["evaluate.py", "policy=vla", f"policy.checkpoint={checkpoint}", f"tasks=[{MAIN_JOB.task}]",
             "variants=[in_distribution]", f"episodes_per_variant={args.eval_episodes}",
             f"randomization={MAIN_JOB.preset}", "workers=2", "reference_rows=false",
             f"output_dir={folder / 'eval'}", "progress=false"])  # fmt: skip
    entry = json.loads(metrics.read_text())["closed_loop"]["in_distribution"][MAIN_JOB.task]
    summary = json.loads((folder / "train" / "summary.json").read_text())
    return {"run": spec.label, "train_seed": spec.train_seed, "data_seed": spec.data_seed, "threads": spec.threads,
            "successes": entry["successes"], "trials": entry["trials"], "val_loss": round(summary["val"]["loss"], 4),
            "weights": weights_digest(checkpoint)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "variance")
    parser.add_argument("--runs", type=parse_runs, default=parse_runs(DEFAULT_RUNS))
    parser.add_argument("--steps", type=int, default=MAIN_JOB.steps)
    parser.add_argument("--eval-episodes", type=int, default=MAIN_JOB.eval_episodes)
    parser.add_argument("--data", type=Path, default=None, help="a dataset instead of the main job's, generated")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    data = dataset(args)
    rows = [train_and_evaluate(spec, data, args) for spec in args.runs]
    with open(args.out / "variance.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"\n{MAIN_JOB.task}, {args.steps} steps, {args.eval_episodes} scenes ({args.out / 'variance.csv'}):")
    print(f"  {'train.seed':>10} {'data.seed':>9} {'threads':>7} {'successes':>10} {'val loss':>8}  weights")
    for row in rows:
        print(f"  {row['train_seed']:>10} {row['data_seed']:>9} {row['threads']:>7} "
              f"{row['successes']:>4}/{row['trials']:<5} {row['val_loss']:>8}  {row['weights']}")  # fmt: skip


if __name__ == "__main__":
    main()
