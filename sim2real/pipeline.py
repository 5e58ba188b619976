"""``sim2real pipeline``: the whole loop on the embedded MuJoCo backend, small enough for a
laptop CPU — generate a dataset of every task (with DART kicks, so that the policy sees
recoveries), train the VLA on it, evaluate it closed loop (in-distribution and held-out
textures, with the expert and random reference rows) and on the real-robot replay set when
``../shared/real_replay`` is present; print where the report is."""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from sim2real.sim.experts import TRAINING_DART

ROOT = Path(__file__).resolve().parents[1]
BRIDGE = ROOT.parent / "shared" / "real_replay" / "bridge_debug" / "bridge_dataset" / "1.0.0"


def _run(step: str, args: list[str]) -> float:
    print(f"\n=== {step}: python {' '.join(args)}", flush=True)
    start = time.perf_counter()
    subprocess.run([sys.executable, *args], cwd=ROOT, check=True)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="sim2real pipeline", description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "pipeline")
    parser.add_argument("--episodes", type=int, default=90, help="generated episodes (all tasks)")
    parser.add_argument("--steps", type=int, default=1500, help="training steps")
    parser.add_argument("--eval-episodes", type=int, default=5, help="per task and variant")
    parser.add_argument("--preset", default="light")
    parser.add_argument("--expert-noise", type=float, default=TRAINING_DART.scale, help="DART kick std (m)")
    parser.add_argument("--expert-noise-rate", type=float, default=TRAINING_DART.rate, help="fraction kicked")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    data, run, report = args.out / "data", args.out / "train", args.out / "eval"
    times = {
        "generate": _run("generate", ["generate.py", "task=all", f"randomization={args.preset}",
                                      f"num_episodes={args.episodes}", f"workers={args.workers}", "shard_size=15",
                                      "formats=[zarr,rlds,hdf5]", f"output_dir={data}",
                                      f"expert_noise={args.expert_noise}",
                                      f"expert_noise_rate={args.expert_noise_rate}"]),
        "train": _run("train", ["train.py", f"data.path={data / 'zarr'}", f"output_dir={run}",
                                f"train.max_steps={args.steps}", "train.val_every=250", "train.checkpoint_every=500"]),
    }  # fmt: skip
    evaluate = ["evaluate.py", "policy=vla", f"policy.checkpoint={run / 'checkpoints' / 'last'}",
                "variants=[in_distribution,textures]", f"episodes_per_variant={args.eval_episodes}",
                f"randomization={args.preset}", f"workers={args.workers}", f"output_dir={report}"]  # fmt: skip
    if BRIDGE.is_dir():
        evaluate += [f"replay.path={BRIDGE}", "replay.mapping=bridge"]
    times["evaluate"] = _run("evaluate", evaluate)
    print("\n" + ", ".join(f"{name} {seconds / 60:.1f} min" for name, seconds in times.items()))
    print(f"report: {report / 'report.md'}")
