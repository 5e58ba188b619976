"""Randomization cost: time to sample + apply a SceneSpec without a rebuild, and expert data
generation throughput (steps/s incl. rendering both cameras and sensor noise) per preset.
Usage: python benchmarks/bench_randomization.py [--scenes 30]"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import numpy as np

from sim2real.randomizers import load_preset, sample_scene
from sim2real.randomizers.distributions import Choice
from sim2real.randomizers.sensor_noise import SensorNoise
from sim2real.sim.backend import make_backend
from sim2real.sim.experts import make_expert
from sim2real.sim.tasks import TASKS, make_task


def sample_and_apply_ms(backend, scenes: int) -> tuple[float, float]:
    """Median ms of sample_scene alone and of sample + reset (same structure: no rebuild)."""
    base = load_preset("heavy")
    config = replace(base, distractors=replace(base.distractors, count=Choice((0,))),
                     objects=replace(base.objects, randomize_shapes=False))  # fmt: skip
    backend.reset(sample_scene("pick_place", 0, config))
    rebuilds = backend.rebuilds
    sample_times, total_times = [], []
    for seed in range(1, scenes + 1):
        start = time.perf_counter()
        scene = sample_scene("pick_place", seed, config)
        sampled = time.perf_counter()
        backend.reset(scene)
        total_times.append(time.perf_counter() - start)
        sample_times.append(sampled - start)
    assert backend.rebuilds == rebuilds, "a rebuild happened"
    return 1000 * float(np.median(sample_times)), 1000 * float(np.median(total_times))


def throughput(backend, preset: str, scenes: int) -> tuple[float, float]:
    """(control steps/s, episodes/s) of expert rollouts with rendering and sensor noise."""
    config = load_preset(preset)
    steps, start = 0, time.perf_counter()
    episodes = 0
    for task_name in TASKS.names():
        task = make_task(task_name)
        for seed in range(scenes):
            scene = sample_scene(task_name, seed, config)
            backend.reset(scene)
            noise = SensorNoise(scene.sensor_noise)
            expert = make_expert(scene, np.random.default_rng(seed))
            for _ in range(task.max_steps):
                backend.step(expert.act(backend.privileged_state()))
                images = backend.images()
                if noise.active:
                    images = {c: noise.image(i) for c, i in images.items()}
                    noise.state(backend.proprio())
                steps += 1
                if task.success(backend.privileged_state(), scene):
                    break
            episodes += 1
    elapsed = time.perf_counter() - start
    return steps / elapsed, episodes / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scenes", type=int, default=30, help="scenes per task for throughput")
    args = parser.parse_args()
    backend = make_backend("mujoco")
    sample_ms, total_ms = sample_and_apply_ms(backend, 50)
    print(
        f"sample SceneSpec: {sample_ms:.2f} ms; sample + apply (no rebuild) + reset: {total_ms:.2f} ms (median of 50)"
    )
    rates = {}
    for preset in ("none", "default", "heavy"):
        rates[preset] = throughput(backend, preset, args.scenes)
        steps, eps = rates[preset]
        print(f"{preset:<8} {steps:7.1f} steps/s  {eps:5.2f} episodes/s  (shadows off)")
    step_ratio, episode_ratio = (rates["default"][k] / rates["none"][k] for k in (0, 1))
    print(f"default / none: {step_ratio:.2f} in steps/s (target >= 0.75), "
          f"{episode_ratio:.2f} in episodes/s (action latency lengthens episodes)")  # fmt: skip
    backend.close()


if __name__ == "__main__":
    main()
