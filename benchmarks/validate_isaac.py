"""Cross-validate the Isaac backend against the MuJoCo backend on the same SceneSpecs (GPU server).

For every task, ``--episodes`` scenes are sampled (``sample_scene(task, seed, preset)``) and the
scripted expert runs closed loop on both backends; the MuJoCo actions are then replayed open
loop on Isaac. Printed per task and backend: expert success rate (Wilson 95 % interval), mean
episode length, action range per dimension, clip counts, the image mean / std per camera (the
light-intensity calibration check of ``stage_ops.DISTANT_INTENSITY_PER_UNIT``), the TCP
difference after reset (checks the joint-convention offsets) and the TCP RMSE of the open-loop
replay (checks control and dynamics parity). Each backend runs in its own process.

Usage (in the Isaac Sim 6.2 / Python 3.12 environment, with this repository installed)::

    OMNI_KIT_ACCEPT_EULA=YES python benchmarks/validate_isaac.py --episodes 10 --preset default \\
        [--isaac-python /path/to/isaac/venv/bin/python] [--out validate_isaac.json]

Without Isaac Sim it stops at once with the install instructions (exit status 2).
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from sim2real.randomizers import load_preset, sample_scene
from sim2real.sim.backend import BACKENDS, BackendConfig
from sim2real.sim.experts import make_expert
from sim2real.sim.tasks import make_task

TASKS = ("pick_place", "stack", "push")
IMAGE_EVERY = 5  # control steps between image statistics samples


def make(name: str) -> object:
    """A backend by registry name; ``isaac`` also works before it is registered."""
    target = BACKENDS.get(name) if name in BACKENDS else "sim2real.sim.isaac.backend:IsaacBackend"
    module_name, class_name = target.split(":")
    return getattr(importlib.import_module(module_name), class_name)(BackendConfig())


def wilson(successes: int, trials: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a success rate."""
    if trials == 0:
        return (0.0, 1.0)
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    return (centre - half, centre + half)


def run_worker(backend_name: str, episodes: int, preset: str, seed0: int, replay: Path | None) -> dict:
    """Closed-loop expert episodes (and optional open-loop replays) on one backend."""
    backend = make(backend_name)
    config = load_preset(preset)
    out: dict = {"backend": backend_name, "tasks": {}}
    try:
        recorded = json.loads(replay.read_text())["tasks"] if replay else {}
        for task_name in TASKS:
            task = make_task(task_name)
            rows, image_stats = [], {}
            for episode in range(episodes):
                seed = seed0 + episode
                scene = sample_scene(task_name, seed, config)
                backend.reset(scene)
                state = backend.privileged_state()
                initial_tcp = state.ee_pos.tolist()
                expert = make_expert(scene, np.random.default_rng(seed))
                actions, tcp, success, start = [], [], False, time.perf_counter()
                for t in range(task.max_steps):
                    action = expert.act(state)
                    backend.step(action)
                    state = backend.privileged_state()
                    actions.append(np.asarray(action, float).tolist())
                    tcp.append(state.ee_pos.tolist())
                    if t % IMAGE_EVERY == 0:
                        for camera, image in backend.images().items():
                            image_stats.setdefault(camera, []).append([float(image.mean()), float(image.std())])
                    if task.success(state, scene):
                        success = True
                        break
                rows.append({
                    "seed": seed, "success": success, "length": len(actions), "actions": actions, "tcp": tcp,
                    "initial_tcp": initial_tcp, "clips": dict(backend.clip_counts),
                    "step_ms": 1000 * (time.perf_counter() - start) / max(len(actions), 1),
                })  # fmt: skip
            replays = []
            for row in recorded.get(task_name, {}).get("episodes", []):
                scene = sample_scene(task_name, row["seed"], config)
                backend.reset(scene)
                tcp = []
                for action in row["actions"]:
                    backend.step(np.asarray(action, dtype=np.float32))
                    tcp.append(backend.privileged_state().ee_pos.tolist())
                error = np.linalg.norm(np.asarray(tcp) - np.asarray(row["tcp"]), axis=1) if tcp else np.zeros(1)
                replays.append({"seed": row["seed"], "tcp_rmse": float(np.sqrt(np.mean(error**2))),
                                "tcp_final": float(error[-1])})  # fmt: skip
            out["tasks"][task_name] = {"episodes": rows, "images": image_stats, "replays": replays}
    finally:
        backend.close()
    return out


def summarise(result: dict, task: str) -> dict:
    data = result["tasks"][task]
    rows = data["episodes"]
    successes = sum(r["success"] for r in rows)
    actions = np.concatenate(
        [np.asarray(r["actions"]).reshape(-1, 7) for r in rows if r["actions"]] or [np.zeros((1, 7))]
    )
    clips: dict[str, int] = {}
    for r in rows:
        for key, value in r["clips"].items():
            clips[key] = clips.get(key, 0) + value
    return {
        "success": successes / max(len(rows), 1), "wilson": wilson(successes, len(rows)),
        "length": float(np.mean([r["length"] for r in rows])),
        "action_min": actions.min(0), "action_max": actions.max(0),
        "clips": clips, "step_ms": float(np.mean([r["step_ms"] for r in rows])),
        "images": {cam: np.asarray(v).mean(0) for cam, v in data["images"].items()},
        "initial_tcp": np.asarray([r["initial_tcp"] for r in rows]),
        "replay_rmse": [r["tcp_rmse"] for r in data.get("replays", [])],
    }  # fmt: skip


def print_report(mujoco: dict, isaac: dict) -> None:
    np.set_printoptions(precision=3, suppress=True)
    for task in TASKS:
        a, b = summarise(mujoco, task), summarise(isaac, task)
        print(f"\n== {task}")
        print(f"{'':24}{'mujoco':>46}{'isaac':>46}")
        for label, key in (("success rate", "success"), ("mean episode length", "length"), ("ms per step", "step_ms")):
            print(f"{label:24}{a[key]:>46.3f}{b[key]:>46.3f}")
        wa, wb = (f"[{x['wilson'][0]:.2f}, {x['wilson'][1]:.2f}]" for x in (a, b))
        print(f"{'success 95% interval':24}{wa:>46}{wb:>46}")
        print(f"{'action min':24}{np.array2string(a['action_min']):>46}{np.array2string(b['action_min']):>46}")
        print(f"{'action max':24}{np.array2string(a['action_max']):>46}{np.array2string(b['action_max']):>46}")
        print(f"{'clip counts':24}{json.dumps(a['clips']):>46}{json.dumps(b['clips']):>46}")
        for camera in sorted(set(a["images"]) | set(b["images"])):
            sa = a["images"].get(camera, np.full(2, np.nan))
            sb = b["images"].get(camera, np.full(2, np.nan))
            print(
                f"{'image mean/std ' + camera:24}{f'{sa[0]:.1f} / {sa[1]:.1f}':>46}{f'{sb[0]:.1f} / {sb[1]:.1f}':>46}"
            )
        n = min(len(a["initial_tcp"]), len(b["initial_tcp"]))  # the same seeds, in order
        gap = np.linalg.norm(a["initial_tcp"][:n] - b["initial_tcp"][:n], axis=1)
        print(f"{'reset TCP diff (mm)':24}{'':>46}{f'max {1000 * gap.max():.2f}':>46}")
        if b["replay_rmse"]:
            rmse = 1000 * np.asarray(b["replay_rmse"])
            print(f"{'replay TCP RMSE (mm)':24}{'':>46}{f'mean {rmse.mean():.1f}, max {rmse.max():.1f}':>46}")


def isaac_ready(python: str | None) -> bool:
    """Whether the Isaac worker can start; prints the reason when not."""
    if python:
        probe = subprocess.run([python, "-c", "import importlib.util as u; print(u.find_spec('isaacsim') is not None)"],
                               capture_output=True, text=True)  # fmt: skip
        if probe.stdout.strip() == "True":
            return True
        print(f"{python}: Isaac Sim is not importable there.", file=sys.stderr)
    from sim2real.sim.isaac.app import INSTALL_HELP, isaacsim_available

    if not python and isaacsim_available():
        return True
    print(INSTALL_HELP, file=sys.stderr)
    return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--episodes", type=int, default=5)
    parser.add_argument("--preset", default="none")
    parser.add_argument("--seed", type=int, default=1000, help="first scene seed")
    parser.add_argument("--isaac-python", default=None, help="Python of the Isaac Sim environment (default: this one)")
    parser.add_argument("--out", type=Path, default=None, help="write the raw results as JSON")
    parser.add_argument("--worker", choices=("mujoco", "isaac"), help=argparse.SUPPRESS)
    parser.add_argument("--replay", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        result = run_worker(args.worker, args.episodes, args.preset, args.seed, args.replay)
        args.result.write_text(json.dumps(result))
        return 0
    if not isaac_ready(args.isaac_python):
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        results = {}
        for name, python in (("mujoco", sys.executable), ("isaac", args.isaac_python or sys.executable)):
            path = Path(tmp) / f"{name}.json"
            command = [python, __file__, "--worker", name, "--episodes", str(args.episodes), "--preset", args.preset,
                       "--seed", str(args.seed), "--result", str(path)]  # fmt: skip
            if name == "isaac":
                command += ["--replay", str(Path(tmp) / "mujoco.json")]
            print(f"running {name} ...", flush=True)
            subprocess.run(command, check=True)
            results[name] = json.loads(path.read_text())
    print_report(results["mujoco"], results["isaac"])
    if args.out:
        args.out.write_text(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
