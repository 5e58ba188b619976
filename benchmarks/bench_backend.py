"""Expert success rate per task and MuJoCo backend speed (control steps/s with rendering,
reset time incl. sampling the SceneSpec), printed as a table.
Usage: python benchmarks/bench_backend.py [--scenes 200] [--preset default] [--split train]
       [--no-render] [--expert-noise 0.03 --expert-noise-rate 0.2]"""

from __future__ import annotations

import argparse
import time

import numpy as np

from sim2real.randomizers import load_preset, sample_scene
from sim2real.randomizers.sensor_noise import SensorNoise
from sim2real.sim.backend import make_backend
from sim2real.sim.experts import make_expert
from sim2real.sim.tasks import TASKS, make_task


def run_task(
    task_name: str,
    scenes: int,
    render: bool,
    preset: str,
    split: str,
    expert_noise: float = 0.0,
    expert_noise_rate: float = 1.0,
) -> dict[str, float]:
    config = load_preset(preset)
    backend = make_backend("mujoco")
    task = make_task(task_name)
    successes, steps, step_time, reset_times, lengths, retried = 0, 0, 0.0, [], [], 0
    for seed in range(scenes):
        start = time.perf_counter()
        scene = sample_scene(task_name, seed, config, split)
        backend.reset(scene)
        noise = SensorNoise(scene.sensor_noise)
        if render:
            backend.images()
        reset_times.append(time.perf_counter() - start)
        expert = make_expert(scene, np.random.default_rng(seed), expert_noise, expert_noise_rate)
        length = task.max_steps
        for t in range(task.max_steps):
            start = time.perf_counter()
            backend.step(expert.perturb(expert.act(backend.privileged_state())))
            if render:
                images = backend.images()
                if noise.active:
                    images = {name: noise.image(image) for name, image in images.items()}
                noise.state(backend.proprio())
            step_time += time.perf_counter() - start
            steps += 1
            if task.success(backend.privileged_state(), scene):
                successes += 1
                length = t + 1
                break
        lengths.append(length)
        retried += expert.retries > 0
    backend.close()
    return {
        "success": successes / scenes,
        "steps_per_s": steps / step_time,
        "reset_ms_median": 1000 * float(np.median(reset_times[1:] or reset_times)),
        "reset_ms_first": 1000 * reset_times[0],
        "mean_length": float(np.mean(lengths)),
        "retried": retried / scenes,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scenes", type=int, default=200)
    parser.add_argument("--tasks", nargs="*", default=TASKS.names())
    parser.add_argument("--no-render", action="store_true")
    parser.add_argument("--preset", default="none", help="randomization preset")
    parser.add_argument("--split", default="train")
    parser.add_argument("--expert-noise", type=float, default=0.0, help="DART noise (m) on the executed positions")
    parser.add_argument("--expert-noise-rate", type=float, default=1.0, help="fraction of steps with DART noise")
    args = parser.parse_args()
    print(f"preset={args.preset} split={args.split} scenes={args.scenes} expert_noise={args.expert_noise} "
          f"expert_noise_rate={args.expert_noise_rate}")  # fmt: skip
    print(f"{'task':<12}{'success':>9}{'steps/s':>10}{'reset ms':>10}{'1st reset ms':>14}{'len':>7}{'retried':>9}")
    for name in args.tasks:
        r = run_task(name, args.scenes, not args.no_render, args.preset, args.split, args.expert_noise,
                     args.expert_noise_rate)  # fmt: skip
        print(f"{name:<12}{r['success']:>9.1%}{r['steps_per_s']:>10.0f}{r['reset_ms_median']:>10.1f}"
              f"{r['reset_ms_first']:>14.0f}{r['mean_length']:>7.1f}{r['retried']:>9.1%}")  # fmt: skip


if __name__ == "__main__":
    main()
