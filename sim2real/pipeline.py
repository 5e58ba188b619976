"""``sim2real pipeline``: the whole loop on the embedded MuJoCo backend, small enough for a
laptop CPU: generate demonstrations (with DART kicks, so that the policy sees recoveries),
train the VLA on them, evaluate it closed loop on held-out scenes next to the scripted expert
and a random policy, and on the real-robot replay set when ``../shared/real_replay`` is present;
print where the report is. Its settings are data: ``configs/pipeline.yaml``."""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from sim2real.errors import UsageError

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = ROOT / "configs" / "pipeline.yaml"
BRIDGE = ROOT.parent / "shared" / "real_replay" / "bridge_debug" / "bridge_dataset" / "1.0.0"
STEPS = ("generate", "train", "evaluate")


@dataclass
class PipelineSettings:
    """``configs/pipeline.yaml``: the common knobs and each step's extra hydra overrides."""

    task: str
    preset: str
    episodes: int
    steps: int
    eval_episodes: int
    workers: int
    overrides: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path = SETTINGS) -> PipelineSettings:
        data = yaml.safe_load(path.read_text())
        overrides = {step: [str(o) for o in data.pop(step, None) or []] for step in STEPS}
        known = set(cls.__dataclass_fields__) - {"overrides"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise UsageError(f"{path}: unknown keys {unknown}; expected {sorted(known | set(STEPS))}")
        return cls(**data, overrides=overrides)


def commands(settings: PipelineSettings, out: Path, extra: dict[str, list[str]] | None = None) -> dict[str, list[str]]:
    """The three scripts' command lines: the script, its overrides from the settings file, the
    common knobs, then ``extra`` (the later of two overrides of one key wins)."""
    data, run, report = out / "data", out / "train", out / "eval"
    generate = ["generate.py", f"task={settings.task}", f"randomization={settings.preset}",
                f"num_episodes={settings.episodes}", f"workers={settings.workers}", f"output_dir={data}"]  # fmt: skip
    train = ["train.py", f"data.path={data / 'zarr'}", f"output_dir={run}", f"train.max_steps={settings.steps}"]
    tasks = [] if settings.task == "all" else [f"tasks=[{settings.task}]"]
    evaluate = ["evaluate.py", f"policy.checkpoint={run / 'checkpoints' / 'last'}", *tasks,
                f"episodes_per_variant={settings.eval_episodes}", f"randomization={settings.preset}",
                f"workers={settings.workers}", f"output_dir={report}"]  # fmt: skip
    lines = {"generate": generate, "train": train, "evaluate": evaluate}
    for step in STEPS:
        added = settings.overrides.get(step, []), (extra or {}).get(step, [])
        lines[step] = [lines[step][0], *added[0], *lines[step][1:], *added[1]]
    if BRIDGE.is_dir():
        lines["evaluate"] += [f"replay.path={BRIDGE}", "replay.mapping=bridge"]
    return lines


def _run(step: str, args: list[str]) -> float:
    print(f"\n=== {step}: python {' '.join(args)}", flush=True)
    start = time.perf_counter()
    subprocess.run([sys.executable, *args], cwd=ROOT, check=True)
    return time.perf_counter() - start


def parse_args(argv: list[str] | None, settings: PipelineSettings) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="sim2real pipeline", description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "pipeline")
    parser.add_argument("--task", default=settings.task, help="a registered task, or all")
    parser.add_argument("--episodes", type=int, default=settings.episodes, help="generated demonstrations")
    parser.add_argument("--steps", type=int, default=settings.steps, help="training steps")
    parser.add_argument("--eval-episodes", type=int, default=settings.eval_episodes, help="per task and variant")
    parser.add_argument("--preset", default=settings.preset, help="randomization preset (data and evaluation)")
    parser.add_argument("--workers", type=int, default=settings.workers)
    parser.add_argument("--set", action="append", default=[], metavar="STEP:OVERRIDE",
                        help="one more hydra override for a step, e.g. train:train.lr=3e-4")  # fmt: skip
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    settings = PipelineSettings.load()
    args = parse_args(argv, settings)
    for name in ("task", "episodes", "steps", "eval_episodes", "preset", "workers"):
        setattr(settings, name, getattr(args, name))
    extra: dict[str, list[str]] = {step: [] for step in STEPS}
    for item in args.set:
        step, _, override = item.partition(":")
        if step not in STEPS or not override:
            raise UsageError(f"--set {item!r}: expected STEP:OVERRIDE with STEP one of {list(STEPS)}")
        extra[step].append(override)
    times = {step: _run(step, line) for step, line in commands(settings, args.out, extra).items()}
    print("\n" + ", ".join(f"{name} {seconds / 60:.1f} min" for name, seconds in times.items()))
    print(f"total {sum(times.values()) / 60:.1f} min; report: {args.out / 'eval' / 'report.md'}")


if __name__ == "__main__":
    main()
