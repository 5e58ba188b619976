"""The VLA closed-loop benchmark: generate 200 episodes per task, train the CPU default VLA on
all three tasks, evaluate it closed loop on in-distribution scenes; print the times, the
validation curve and the success rates. The demonstrations carry DART kicks (3 cm on 20 % of
the steps, the expert's clean actions recorded): ``--expert-noise 0`` records clean ones.
Usage: python benchmarks/bench_vla_closed_loop.py [--episodes-per-task 200] [--steps 12000]
       [--preset light] [--expert-noise 0.03] [--expert-noise-rate 0.2] [--eval-episodes 50] [--out runs/bench_vla]
       [--train-override KEY=VALUE ...] [--eval-override KEY=VALUE ...]
A rerun with the same --out reuses finished stages (the dataset, the last checkpoint)."""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import time
from pathlib import Path

from sim2real.sim.experts import TRAINING_DART

ROOT = Path(__file__).resolve().parents[1]


def run(command: list[str]) -> float:
    start = time.perf_counter()
    print("$", " ".join(command), flush=True)
    subprocess.run(command, cwd=ROOT, check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--episodes-per-task", type=int, default=200)
    parser.add_argument("--steps", type=int, default=12000)
    parser.add_argument("--preset", default="light")
    parser.add_argument("--expert-noise", type=float, default=TRAINING_DART.scale, help="DART kick std (m)")
    parser.add_argument("--expert-noise-rate", type=float, default=TRAINING_DART.rate, help="fraction kicked")
    parser.add_argument("--eval-episodes", type=int, default=50)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench_vla")
    parser.add_argument("--train-override", action="append", default=[], help="hydra override for train.py")
    parser.add_argument("--eval-override", action="append", default=[], help="hydra override for evaluate.py")
    args = parser.parse_args()
    data, run_dir, eval_dir = args.out / "data", args.out / "train", args.out / "eval"
    python = sys.executable
    times = {}
    times["generate"] = run([python, "generate.py", "task=all", f"randomization={args.preset}",
                             f"num_episodes={3 * args.episodes_per_task}", "workers=2", "shard_size=50",
                             "formats=[zarr]", f"output_dir={data}", f"expert_noise={args.expert_noise}",
                             f"expert_noise_rate={args.expert_noise_rate}",
                             "progress=false"])  # fmt: skip
    times["train"] = run([python, "train.py", f"data.path={data / 'zarr'}", f"output_dir={run_dir}",
                          f"train.max_steps={args.steps}", "train.val_every=500", "train.checkpoint_every=1000",
                          "progress=false", *args.train_override])  # fmt: skip
    checkpoint = run_dir / "checkpoints" / "last"
    times["evaluate"] = run([python, "evaluate.py", "policy=vla", f"policy.checkpoint={checkpoint}",
                             "variants=[in_distribution]", f"episodes_per_variant={args.eval_episodes}",
                             f"randomization={args.preset}", "workers=2", "reference_rows=false",
                             f"output_dir={eval_dir}", "progress=false", *args.eval_override])  # fmt: skip
    metrics = json.loads((eval_dir / "metrics.json").read_text())
    with open(run_dir / "metrics.csv", newline="") as handle:
        curve = [r for r in csv.DictReader(handle) if r["split"] == "val"]
    print("\nvalidation curve (step, loss, token accuracy, action L1):")
    for row in curve:
        loss, accuracy, l1 = (float(row[k]) for k in ("loss", "token_accuracy", "action_l1"))
        print(f"  {row['step']:>6} {loss:.4f} {accuracy:.3f} {l1:.4f}")
    print("\nclosed-loop success, in-distribution scenes:")
    for task, entry in metrics["closed_loop"]["in_distribution"].items():
        low, high = entry["ci95"]
        counts = f"{entry['successes']}/{entry['trials']}"
        print(f"  {task:<11} {counts} = {entry['rate']:.1%} (95% CI {low:.2f}-{high:.2f})")
    print("\n" + ", ".join(f"{k} {v / 60:.1f} min" for k, v in times.items()))


if __name__ == "__main__":
    main()
