"""Dynamics-replay self-check: our own scripted-expert episodes, replayed as if they were real
(from their recorded start, at their recorded control rate, in the replay scene with no objects),
must reproduce their recorded end-effector trajectory: mean position error <= 5 mm.

    MUJOCO_GL=egl python benchmarks/bench_replay_selfcheck.py --episodes 6
    MUJOCO_GL=egl python benchmarks/bench_replay_selfcheck.py --episodes 0 \\
        --replay-path ../shared/real_replay/bridge_debug/bridge_dataset/1.0.0 --mapping bridge

Prints, per set, the mean / final / max position error (m), per-axis mean and max absolute
errors, orientation error (rad), the starts used, the controller's clips and the workspace
departures; ``--json`` writes the full ``replay.dynamics`` blocks.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from sim2real.evaluation.replay import FOREIGN_STARTS, dynamics_replay, load_replay_set
from sim2real.rollout import record_clean_expert_episodes

TASKS = ("pick_place", "push", "stack")


def _mm(value: float | None) -> str:
    return "–" if value is None else f"{value * 1000:.3f} mm"


def summary(name: str, block: dict[str, Any] | None, seconds: float) -> None:
    """Print the figures of one ``replay.dynamics`` block."""
    print(f"== {name} ({seconds:.1f} s)")
    if block is None:
        print("   dynamics skipped (no usable episode)")
        return
    print(f"   episodes {block['n_episodes']}, control {block['control_hz']} Hz, physics {block['physics_hz']} Hz, "
          f"starts {block['starts']}, frames {block['frames']}")  # fmt: skip
    mean, final, top = (_mm(block[f"{k}_position_error_m"]) for k in ("mean", "final", "max"))
    print(f"   position error: mean {mean}, final {final}, max {top}")
    for key in ("mean_abs_position_error_m", "max_abs_position_error_m"):
        axes = block[key]
        print(f"   {key}: " + ", ".join(f"{axis} {_mm(value)}" for axis, value in axes.items()))
    rot = block["mean_abs_rotation_error_rad"]
    if block["mean_orientation_error_rad"] is not None:
        print(f"   orientation error: mean {block['mean_orientation_error_rad']:.5f} rad; per axis "
              + ", ".join(f"{axis} {value:.5f}" for axis, value in rot.items()))  # fmt: skip
    print(f"   clips: {block['clips']['total']} ({block['clips']['episodes_with_clips']} episodes with clips)")
    ws = block["workspace"]
    print(f"   outside the workspace: {ws['steps_outside']}/{ws['steps']} steps ({ws['fraction_steps_outside']:.1%}), "
          f"{ws['episodes_leaving']} episodes ({ws['fraction_episodes_leaving']:.1%}) "
          f"{ws['outside_by_side']}")  # fmt: skip
    if block["skipped_episodes"]:
        print(f"   skipped: {block['skipped_episodes']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=6, help="scripted-expert episodes for the self-check")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--control-hz", type=float, default=10.0, help="control rate of the self-check episodes (Hz)")
    parser.add_argument("--replay-path", help="also replay this set (any readable format)")
    parser.add_argument("--mapping", help="RLDS mapping of --replay-path (e.g. bridge)")
    parser.add_argument("--max-episodes", type=int, default=25)
    parser.add_argument("--foreign-start", choices=FOREIGN_STARTS, default=FOREIGN_STARTS[0])
    parser.add_argument("--json", type=Path, help="write the full dynamics blocks here")
    args = parser.parse_args()
    blocks: dict[str, Any] = {}
    if args.episodes:
        start = time.perf_counter()
        episodes = record_clean_expert_episodes(TASKS, args.episodes, args.seed, args.control_hz)
        generated = time.perf_counter() - start
        start = time.perf_counter()
        blocks["selfcheck"] = dynamics_replay(episodes, foreign_start=args.foreign_start)
        lengths = [e.num_steps for e in episodes]
        summary(f"self-check: {len(episodes)} expert episodes ({sum(lengths)} steps, generated in {generated:.1f} s)",
                blocks["selfcheck"], time.perf_counter() - start)  # fmt: skip
    if args.replay_path:
        replay = load_replay_set(args.replay_path, args.mapping, args.max_episodes)
        start = time.perf_counter()
        blocks["replay_set"] = dynamics_replay(replay.episodes, foreign_start=args.foreign_start)
        summary(f"{args.replay_path} ({len(replay.episodes)} episodes, foreign_start={args.foreign_start})",
                blocks["replay_set"], time.perf_counter() - start)  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(blocks, indent=1))


if __name__ == "__main__":
    main()
