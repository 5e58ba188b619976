"""Generation scaling and write cost: episodes/s with 1 and 2 workers, the share of time spent
encoding and writing, and bytes per episode for each format (LeRobot: MP4 video with the writer's
codec settings; ``--lerobot-option vcodec=libx264`` etc. sets them as ``codecs.lerobot``).
Usage: python benchmarks/bench_generation.py [--episodes 24] [--preset default] [--formats zarr,rlds,hdf5,lerobot]
       [--workers 1,2] [--lerobot-option KEY=VALUE ...]"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import yaml

from sim2real.datasets.convert import parse_options
from sim2real.datasets.registry import SHARD_FORMATS, load_builtin_formats
from sim2real.generation import GenerationConfig, generate
from sim2real.randomizers.config import PRESETS_DIR


def run(workers: int, episodes: int, preset: str, out: Path, formats: tuple[str, ...],
        lerobot: dict) -> tuple[float, dict]:  # fmt: skip
    config = GenerationConfig(
        task="all", num_episodes=episodes, shard_size=max(1, episodes // 4), workers=workers, output_dir=str(out),
        progress=False, randomization=yaml.safe_load((PRESETS_DIR / f"{preset}.yaml").read_text()),
        formats=formats, codecs={"lerobot": lerobot} if lerobot and "lerobot" in formats else {},
    )  # fmt: skip
    start = time.perf_counter()
    manifest = generate(config)
    return time.perf_counter() - start, manifest


def main() -> None:
    load_builtin_formats()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--episodes", type=int, default=24)
    parser.add_argument("--preset", default="default")
    parser.add_argument("--formats", default=",".join(SHARD_FORMATS.names()))
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--lerobot-option", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    formats = tuple(args.formats.split(","))
    lerobot = parse_options(args.lerobot_option)
    with tempfile.TemporaryDirectory() as tmp:
        times = {}
        for workers in [int(w) for w in args.workers.split(",")]:
            seconds, manifest = run(workers, args.episodes, args.preset, Path(tmp) / f"w{workers}", formats, lerobot)
            times[workers] = seconds
            shards = manifest["shards"].values()
            worker_seconds = sum(s["seconds"] for s in shards)
            write_seconds = sum(s["write_seconds"] for s in shards)
            by_format = {name: sum(s["write_seconds_by_format"].get(name, 0.0) for s in shards) for name in formats}
            shares = ", ".join(f"{name} {seconds / worker_seconds:.1%} {seconds / args.episodes * 1e3:.1f} ms"
                               for name, seconds in by_format.items())  # fmt: skip
            busy = worker_seconds / (workers * seconds)  # the rest: start-up, imbalance, the parent's own work
            print(f"{workers} worker(s): {args.episodes / seconds:.2f} episodes/s ({seconds:.1f} s wall, "
                  f"workers busy {busy:.0%} of it); "
                  f"opening + encoding + writing + checksumming = {write_seconds / worker_seconds:.1%} of worker time, "
                  f"{write_seconds / args.episodes * 1e3:.1f} ms per episode ({shares} per episode)")  # fmt: skip
        if {1, 2} <= set(times):
            print(f"speed-up 1 -> 2 workers: {times[1] / times[2]:.2f}x")
        for name in formats:
            total = sum(s["files"][name]["bytes"] for s in manifest["shards"].values())
            print(f"{name:<5} {total / args.episodes / 1e6:.2f} MB per episode")
        steps = sum(s["steps"] for s in manifest["shards"].values())
        print(f"mean episode length {steps / args.episodes:.1f} steps; raw images "
              f"{steps / args.episodes * 2 * 128 * 128 * 3 / 1e6:.2f} MB per episode")  # fmt: skip


if __name__ == "__main__":
    main()
