"""Why a policy's push episodes fail: where the object went, against where it was sent.

Rolls the policy out on the evaluation's push scenes (the same seeds ``evaluate.py`` draws for
``variants=[in_distribution]``), follows the object, the TCP and both targets at every step,
and sorts each failure into one kind:

* ``wrong_target``: the object ended nearer the other target than it started, and nearer to it
  than to the named one;
* ``wrong_direction``: it moved (2 cm or more) but more than 45 degrees off the line to the
  named target;
* ``overshot``: it came within the target's radius and left it again;
* ``passed_beside``: it came nearer the named target, then moved 2 cm or more away from it again
  without entering its radius: its path missed the target to one side;
* ``stalled``: it moved toward the named target but stopped (its last 2 cm of movement more than
  10 steps before the end) outside the radius, never moving away again;
* ``still_pushing``: it was still moving toward the target when the episode's steps ran out;
* ``never_moved``: it moved less than 2 cm.

The heading error is the angle between the object's displacement and the line from its start to
the named target: over the whole episode, and over its first 3 cm (where the push was aimed).

Prints one line per episode and a count per kind, with the mean distances. The scripted
expert (``--policy expert``) runs the same scenes as a check of the measurement.

    python benchmarks/bench_push_failures.py --checkpoint runs/bench_vla/train/checkpoints/last \\
        [--episodes 50] [--seed 1000] [--randomization light] [--policy vla] \
        [--policy-option temporal_ensemble=null ...]
"""

from __future__ import annotations

import argparse
import collections
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import yaml

from sim2real.envs import Sim2RealEnv
from sim2real.evaluation.closed_loop import scene_seed
from sim2real.evaluation.policies import make_rollout_policy
from sim2real.randomizers import VARIANTS, resolve_randomization, sample_scene
from sim2real.sim.backend import BackendConfig, make_backend

TASK = "push"
MOVED = 0.02  # m: the object counts as moved
OFF_LINE_DEG = 45.0
FIRST_MOVE = 0.03  # m: the heading of the push's start is taken over the object's first 3 cm


@dataclass
class PushTrace:
    """One episode: the named side, the outcome and the object's path summarised (m, degrees)."""

    episode: int
    side: str
    instruction: str
    success: bool
    steps: int
    start_distance: float
    final_distance: float
    closest_distance: float
    final_distance_other: float
    moved: float
    heading_error_deg: float
    first_heading_error_deg: float
    last_move_step: int
    radius: float
    kind: str


def angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    """The angle between two xy vectors (degrees; 0 when either is zero)."""
    norms = np.linalg.norm(a) * np.linalg.norm(b)
    return 0.0 if norms < 1e-12 else float(np.degrees(np.arccos(np.clip(a @ b / norms, -1.0, 1.0))))


def classify(trace: PushTrace, start_distance_other: float, max_steps: int) -> str:
    """The failure kind of a traced episode (``success`` when it succeeded)."""
    if trace.success:
        return "success"
    if trace.moved < MOVED:
        return "never_moved"
    if trace.final_distance_other < min(trace.final_distance, start_distance_other):
        return "wrong_target"
    if trace.heading_error_deg > OFF_LINE_DEG:
        return "wrong_direction"
    if trace.closest_distance < trace.radius:
        return "overshot"
    if trace.final_distance - trace.closest_distance >= MOVED:
        return "passed_beside"
    if trace.last_move_step >= max_steps - 10:
        return "still_pushing"
    return "stalled"


def trace_episode(env: Sim2RealEnv, backend, policy, scene, episode: int) -> PushTrace:
    """Roll one scene out and summarise the object's path against both targets."""
    pushed, left, right = scene.objects[0], scene.objects[1], scene.objects[2]
    side = str(scene.task_params.get("side"))
    named, other = (left, right) if side == "left" else (right, left)
    goal, elsewhere = np.array(named.pos[:2]), np.array(other.pos[:2])
    observation, info = env.reset(options={"scene": scene})
    policy.reset(env)
    path = [backend.privileged_state().objects[pushed.name].pos[:2].copy()]
    success, steps = False, 0
    for steps in range(1, env.max_steps + 1):  # noqa: B007
        observation, _, terminated, truncated, info = env.step(policy.act(observation, scene.instruction))
        path.append(backend.privileged_state().objects[pushed.name].pos[:2].copy())
        if terminated or truncated:
            success = bool(info["success"])
            break
    xy = np.array(path)
    to_goal = np.linalg.norm(xy - goal, axis=1)
    displacement = xy[-1] - xy[0]
    line = goal - xy[0]
    first = xy[np.argmax(np.linalg.norm(xy - xy[0], axis=1) >= FIRST_MOVE)] - xy[0]
    moved_from_end = np.linalg.norm(xy - xy[-1], axis=1)
    last_move = int(np.flatnonzero(moved_from_end > MOVED).max(initial=0))
    trace = PushTrace(
        episode=episode, side=side, instruction=scene.instruction, success=success, steps=steps,
        start_distance=float(to_goal[0]), final_distance=float(to_goal[-1]), closest_distance=float(to_goal.min()),
        final_distance_other=float(np.linalg.norm(xy[-1] - elsewhere)),
        moved=float(np.linalg.norm(xy - xy[0], axis=1).max()),
        heading_error_deg=angle_deg(displacement, line), first_heading_error_deg=angle_deg(first, line),
        last_move_step=last_move,
        radius=float(named.size[0]), kind="",
    )  # fmt: skip
    trace.kind = classify(trace, float(np.linalg.norm(xy[0] - elsewhere)), env.max_steps)
    return trace


def policy_option(value: str) -> tuple[str, object]:
    """``"execute_steps=2"`` -> ``("execute_steps", 2)``; the value read as YAML."""
    key, sep, raw = value.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{value!r}: expected KEY=VALUE")
    return key, yaml.safe_load(raw)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, help="a checkpoint folder (for --policy vla or bc)")
    parser.add_argument("--policy", default="vla")
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1000, help="evaluate.py's seed")
    parser.add_argument("--randomization", default="light")
    parser.add_argument("--out", type=Path, default=None, help="a JSON file for the traces")
    parser.add_argument("--policy-option", action="append", default=[], type=policy_option,
                        help="KEY=VALUE (YAML value) for the rollout policy, e.g. temporal_ensemble=null")  # fmt: skip
    args = parser.parse_args()
    options = {"checkpoint": str(args.checkpoint)} if args.checkpoint else {}
    options.update(dict(args.policy_option))
    config = resolve_randomization(args.randomization)
    backend = make_backend("mujoco", BackendConfig())
    policy = make_rollout_policy(args.policy, seed=args.seed, **options)
    env = Sim2RealEnv(TASK, backend)
    traces = []
    try:
        for episode in range(args.episodes):
            seed = scene_seed(args.seed, "in_distribution", TASK, episode)
            scene = sample_scene(TASK, seed, config, VARIANTS["in_distribution"])
            trace = trace_episode(env, backend, policy, scene, episode)
            traces.append(trace)
            print(f"  {episode:>3} {trace.side:<5} {trace.kind:<15} start {trace.start_distance:.3f} "
                  f"end {trace.final_distance:.3f} closest {trace.closest_distance:.3f} "
                  f"heading {trace.heading_error_deg:5.1f} deg  steps {trace.steps:>3}  "
                  f"last move {trace.last_move_step:>3}",
                  flush=True)  # fmt: skip
    finally:
        getattr(policy, "close", lambda: None)()
        backend.close()
    kinds = collections.Counter(t.kind for t in traces)
    print(f"\n{args.policy} on {args.episodes} push scenes: " + ", ".join(f"{k} {n}" for k, n in kinds.most_common()))
    for kind in kinds:
        chosen = [t for t in traces if t.kind == kind]
        print(f"  {kind:<15} start {np.mean([t.start_distance for t in chosen]):.3f} m, "
              f"end {np.mean([t.final_distance for t in chosen]):.3f} m, "
              f"closest {np.mean([t.closest_distance for t in chosen]):.3f} m, "
              f"heading error {np.mean([t.heading_error_deg for t in chosen]):.0f} deg "
              f"(first 3 cm: {np.mean([t.first_heading_error_deg for t in chosen]):.0f} deg)")  # fmt: skip
    by_side = {s: [t.success for t in traces if t.side == s] for s in ("left", "right")}
    print("  by side: " + ", ".join(f"{s} {sum(v)}/{len(v)}" for s, v in by_side.items()))
    if args.out:
        args.out.write_text(json.dumps([asdict(t) for t in traces], indent=1))


if __name__ == "__main__":
    main()
