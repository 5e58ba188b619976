"""The closed-loop benchmark: generate 600 episodes per task, train each policy type asked for
(``--policy vla,bc``: the 256-bin VLA and the regression-head BC on the same encoders) on all three
tasks, evaluate each closed loop on the same in-distribution scenes (50 per task) and on every
held-out variant (30 pick_place scenes each); print the times, the validation curves and the
success rates, one row per policy type side by side.
Training uses the main job's model and schedule settings (``configs/pipeline.yaml``'s ``train``
list: 64x64 images, wide bin targets, lr 1e-3, a short weight average) for 18,000 steps, six
times the main job's for three times its tasks and data, every task drawn equally often
(``--balance task``: push's episodes are half as long, so drawn by frame it would get 22 % of the
batches; it needs about 600 demonstrations and 6,000 steps' share; see the README);
``--train-defaults`` trains with train.py's own
defaults instead (128x128, narrow bin targets); either way with photometric augmentation
(``train.augment_color``, ``--augment-color 0.5``; 0: none). ``--train-override`` comes last.
The training scenes are ``--preset``'s plus 0 to ``--training-distractors`` (2) distractors of
the training shapes (0: none); the evaluation scenes keep ``--preset`` (in-distribution: no
distractors). ``--generate-override`` changes the demonstrations further.
The demonstrations carry DART kicks (3 cm on 20 % of the steps, the expert's clean actions
recorded): ``--expert-noise 0`` records clean ones.
``--seeds N`` trains each type N times (``train.seed`` 0..N-1, same data, same evaluation scenes)
and prints each seed's successes with their mean and spread per variant and task: training
outcome varies more between runs than one evaluation's interval admits; ``--parallel 2`` trains two
of them at a time, each on half the cores (more steps per second in all than one run on every
core). ``--held-out V1,V2``
evaluates each seed on those held-out variants, on ``--held-out-task``'s scenes only
(``--held-out-episodes`` each; ``--held-out ""`` evaluates none). A rerun skips the evaluations
that finished and resumes the training runs.
Usage: python benchmarks/bench_vla_closed_loop.py [--policy vla[,bc]] [--episodes-per-task 600] [--steps 18000]
       [--balance task]
       [--preset light] [--expert-noise 0.03] [--expert-noise-rate 0.2] [--eval-episodes 50] [--out runs/bench_vla]
       [--seeds 1] [--parallel 1] [--variants in_distribution] [--held-out textures,lighting,...]
       [--held-out-task pick_place] [--held-out-episodes 30] [--train-defaults]
       [--training-distractors 2] [--augment-color 0.5] [--generate-override KEY=VALUE ...]
       [--train-override KEY=VALUE ...] [--eval-override KEY=VALUE ...]
Folders under --out: data/, and per type train/ + eval/ (vla) or train_<type>/ + eval_<type>/; seeds after
the first add _seed<N>."""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sim2real.pipeline import PipelineSettings
from sim2real.policies import POLICIES
from sim2real.randomizers import HELD_OUT_VARIANTS
from sim2real.sim.experts import TRAINING_DART
from sim2real.training.config import BALANCE_MODES

ROOT = Path(__file__).resolve().parents[1]


def run(command: list[str], threads: int | None = None) -> float:
    """Run ``command`` in the repository root (with ``threads`` torch threads when given); return
    its wall time (s)."""
    start = time.perf_counter()
    print("$", " ".join(command), flush=True)
    env = None if threads is None else {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    subprocess.run(command, cwd=ROOT, check=True, env=env)
    return time.perf_counter() - start


def threads_per_run(parallel: int, cores: int | None = None) -> int | None:
    """Torch threads for each of ``parallel`` side-by-side training runs: the cores shared out, at
    least one; ``None`` (the default) for a single run."""
    if parallel <= 1:
        return None
    return max(1, (cores or os.cpu_count() or 1) // parallel)


def run_all(commands: dict[str, list[str]], parallel: int) -> dict[str, float]:
    """Run ``commands`` (label -> command), at most ``parallel`` at once; wall time per label (s).
    A failed command fails the whole benchmark once the others have finished."""
    threads = threads_per_run(parallel)
    with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        futures = {label: pool.submit(run, command, threads) for label, command in commands.items()}
        return {label: future.result() for label, future in futures.items()}


def policy_types(value: str) -> list[str]:
    """``vla,bc`` -> ``["vla", "bc"]``, each a registered policy type."""
    names = [n.strip() for n in value.split(",") if n.strip()]
    unknown = [n for n in names if n not in POLICIES]
    if not names or unknown:
        raise argparse.ArgumentTypeError(f"{value!r}: expected registered policy types ({', '.join(POLICIES.names())})")
    return names


def folders(out: Path, policy: str, seed: int = 0) -> tuple[Path, Path]:
    """(training run, evaluation) folders of ``policy``'s training seed ``seed`` under ``out``."""
    suffix = ("" if policy == "vla" else f"_{policy}") + ("" if seed == 0 else f"_seed{seed}")
    return out / f"train{suffix}", out / f"eval{suffix}"


def seed_label(policy: str, seed: int) -> str:
    """``vla`` for seed 0, ``vla seed 2`` for the others."""
    return policy if seed == 0 else f"{policy} seed {seed}"


def training_settings(policy: str, train_defaults: bool) -> list[str]:
    """The main job's training overrides that apply to ``policy``'s config class (``model.*``
    keys it lacks, such as the VLA's bin targets for ``bc``, are left out); none with
    ``train_defaults``."""
    if train_defaults:
        return []
    fields = set(POLICIES.get(policy).config_class.__dataclass_fields__)
    overrides = PipelineSettings.load().overrides["train"]
    return [o for o in overrides if not o.startswith("model.") or o.split("=")[0].split(".", 1)[1] in fields]


def distractor_overrides(most: int) -> list[str]:
    """generate.py's override for 0 to ``most`` distractors per training scene; none for 0."""
    if most <= 0:
        return []
    return ["++randomization.distractors.count={choice:[" + ",".join(map(str, range(most + 1))) + "]}"]


def evaluate(command: list[str], eval_dir: Path) -> tuple[float, dict]:
    """Run one evaluation unless ``eval_dir`` holds its finished ``metrics.json``; returns the
    seconds it took (0 when skipped) and the metrics document."""
    metrics = eval_dir / "metrics.json"
    seconds = 0.0 if metrics.exists() else run([*command, f"output_dir={eval_dir}"])
    return seconds, json.loads(metrics.read_text())


def merged(first: dict, second: dict) -> dict:
    """``first``'s metrics with ``second``'s closed-loop variants added."""
    return {**first, "closed_loop": {**first["closed_loop"], **second["closed_loop"]}}


def seed_table(metrics: dict[str, list[dict]]) -> list[str]:
    """One line per policy type, variant and task: each seed's successes, their mean and sample
    standard deviation (0 for one seed), out of the trials per seed."""
    lines = [f"  {'policy':<7} {'variant':<16} {'task':<11} {'per seed':<16} {'mean':>6} {'std':>5} {'trials':>6}"]
    for policy, runs in metrics.items():
        for variant, tasks in runs[0]["closed_loop"].items():
            for task, entry in tasks.items():
                counts = [run["closed_loop"][variant][task]["successes"] for run in runs]
                spread = statistics.stdev(counts) if len(counts) > 1 else 0.0
                lines.append(f"  {policy:<7} {variant:<16} {task:<11} {' '.join(map(str, counts)):<16} "
                             f"{statistics.fmean(counts):>6.1f} {spread:>5.1f} {entry['trials']:>6}")  # fmt: skip
    return lines


def success_table(metrics: dict[str, dict]) -> list[str]:
    """One line per policy type (its ``metrics.json``): per task ``successes/trials = rate (95 % CI)``
    and the mean rate over tasks, the types side by side under one header."""
    tasks = list(next(iter(metrics.values()))["closed_loop"]["in_distribution"])
    lines = [f"  {'policy':<7}" + "".join(f" {task:<28}" for task in tasks) + " mean"]
    for policy, block in metrics.items():
        entries = block["closed_loop"]["in_distribution"]
        cells = []
        for task in tasks:
            entry = entries[task]
            low, high = entry["ci95"]
            cells.append(f"{entry['successes']}/{entry['trials']} = {entry['rate']:.1%} ({low:.2f}-{high:.2f})")
        mean = sum(entries[t]["rate"] for t in tasks) / len(tasks)
        lines.append(f"  {policy:<7}" + "".join(f" {cell:<28}" for cell in cells) + f" {mean:.1%}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--policy", type=policy_types, default=["vla"], help="policy types, comma-separated")
    parser.add_argument("--episodes-per-task", type=int, default=600)
    parser.add_argument("--steps", type=int, default=18000)
    parser.add_argument("--balance", default="task", choices=BALANCE_MODES, help="train's data.balance")
    parser.add_argument("--preset", default="light")
    parser.add_argument("--expert-noise", type=float, default=TRAINING_DART.scale, help="DART kick std (m)")
    parser.add_argument("--expert-noise-rate", type=float, default=TRAINING_DART.rate, help="fraction kicked")
    parser.add_argument("--eval-episodes", type=int, default=50)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench_vla")
    parser.add_argument("--seeds", type=int, default=1, help="training seeds per policy type")
    parser.add_argument("--parallel", type=int, default=1, help="training runs side by side, the cores shared out")
    parser.add_argument("--variants", default="in_distribution", help="evaluation variants, comma-separated")
    parser.add_argument("--training-distractors", type=int, default=2, help="most distractors per training scene")
    parser.add_argument("--augment-color", type=float, default=0.5, help="train.augment_color of every run")
    parser.add_argument("--generate-override", action="append", default=[], help="hydra override for generate.py")
    parser.add_argument("--train-override", action="append", default=[], help="hydra override for train.py")
    parser.add_argument("--eval-override", action="append", default=[], help="hydra override for evaluate.py")
    parser.add_argument("--held-out", default=",".join(HELD_OUT_VARIANTS), help="held-out variants on --held-out-task")
    parser.add_argument("--held-out-task", default="pick_place")
    parser.add_argument("--held-out-episodes", type=int, default=30)
    parser.add_argument("--train-defaults", action="store_true", help="train.py's defaults, not the main job's")
    args = parser.parse_args()
    data = args.out / "data"
    python = sys.executable
    times = {}
    times["generate"] = run([python, "generate.py", "task=all", f"randomization={args.preset}",
                             f"num_episodes={3 * args.episodes_per_task}", "workers=2", "shard_size=50",
                             "formats=[zarr]", f"output_dir={data}", f"expert_noise={args.expert_noise}",
                             f"expert_noise_rate={args.expert_noise_rate}",
                             "progress=false", *distractor_overrides(args.training_distractors),
                             *args.generate_override])  # fmt: skip
    trainings = {}
    for policy in args.policy:
        settings = [
            *training_settings(policy, args.train_defaults),
            f"train.augment_color={args.augment_color}",
            f"data.balance={args.balance}",
        ]
        for seed in range(args.seeds):
            run_dir = folders(args.out, policy, seed)[0]
            trainings[f"train {seed_label(policy, seed)}"] = [
                python, "train.py", f"model={policy}", f"data.path={data / 'zarr'}", f"output_dir={run_dir}",
                f"train.max_steps={args.steps}", f"train.seed={seed}", "train.val_every=500",
                "train.checkpoint_every=1000", "progress=false", *settings, *args.train_override]  # fmt: skip
    times.update(run_all(trainings, args.parallel))
    results, per_seed = {}, {}
    for policy in args.policy:
        per_seed[policy] = []
        for seed in range(args.seeds):
            run_dir, eval_dir = folders(args.out, policy, seed)
            label = seed_label(policy, seed)
            evaluation = [python, "evaluate.py", f"policy={policy}",
                          f"policy.checkpoint={run_dir / 'checkpoints' / 'last'}", f"randomization={args.preset}",
                          "workers=2", "reference_rows=false", "progress=false", *args.eval_override]  # fmt: skip
            times[f"evaluate {label}"], metrics = evaluate(
                [*evaluation, f"variants=[{args.variants}]", f"episodes_per_variant={args.eval_episodes}"], eval_dir
            )
            if args.held_out:
                times[f"held-out {label}"], held_out = evaluate(
                    [*evaluation, f"variants=[{args.held_out}]", f"tasks=[{args.held_out_task}]",
                     f"episodes_per_variant={args.held_out_episodes}"], eval_dir.with_name(eval_dir.name + "_held_out")
                )  # fmt: skip
                metrics = merged(metrics, held_out)
            per_seed[policy].append(metrics)
        with open(folders(args.out, policy)[0] / "metrics.csv", newline="") as handle:
            curve = [r for r in csv.DictReader(handle) if r["split"] == "val"]
        results[policy] = (curve, per_seed[policy][0])
    for policy, (curve, _) in results.items():
        print(f"\n{policy}: validation curve (step, loss, token accuracy, action L1):")
        for row in curve:
            loss, accuracy, l1 = (float(row[k]) for k in ("loss", "token_accuracy", "action_l1"))
            print(f"  {row['step']:>6} {loss:.4f} {accuracy:.3f} {l1:.4f}")
    print("\nclosed-loop success, in-distribution scenes (same data, same scenes):")
    print("\n".join(success_table({policy: metrics for policy, (_, metrics) in results.items()})))
    print(f"\nsuccesses per training seed ({args.seeds} seeds; mean and sample std):")
    print("\n".join(seed_table(per_seed)))
    print("\n" + ", ".join(f"{k} {v / 60:.1f} min" for k, v in times.items()))


if __name__ == "__main__":
    main()
