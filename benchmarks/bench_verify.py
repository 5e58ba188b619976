"""What checking checksums costs: `sim2real verify` throughput, and the share of a resume spent
verifying the shards it skips.

    python benchmarks/bench_verify.py --episodes 1000 --out /tmp/bench_verify

Generates (or reuses) a dataset of every format, verifies it (MB/s), then forgets the second half
of its shards (as a run killed half-way leaves it) and times the resume that verifies the first
half and writes the second, against the verification alone.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from sim2real.datasets.integrity import verify_dataset
from sim2real.generation import GenerationConfig, generate, load_run, remove_shard


def _config(out: Path, episodes: int, workers: int) -> GenerationConfig:
    return GenerationConfig(task="all", num_episodes=episodes, shard_size=50, seed=0, workers=workers,
                            output_dir=str(out), randomization={"name": "default"})  # fmt: skip


def _drop_page_cache() -> bool:
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--episodes", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("/tmp/bench_verify"))
    args = parser.parse_args()
    config = _config(args.out, args.episodes, args.workers)
    start = time.perf_counter()
    generate(config)
    seconds = time.perf_counter() - start
    print(f"dataset: {args.episodes} episodes in {args.out} ({seconds:.0f} s to generate or resume)")
    for label, cold in (("page cache warm", False), ("page cache dropped", True)):
        if cold and not _drop_page_cache():
            print("page cache dropped: skipped (no permission to drop the page cache)")
            continue
        report = verify_dataset(args.out)
        assert report.ok, report.summary()
        print(f"verify, {label}: {report.bytes / 1e6:.0f} MB in {report.seconds:.2f} s = "
              f"{report.bytes / 1e6 / report.seconds:.0f} MB/s")  # fmt: skip
    run = load_run(args.out)
    half = run.num_shards // 2
    for shard in range(half, run.num_shards):
        remove_shard(args.out, run, shard)
    check = verify_dataset(args.out)
    start = time.perf_counter()
    generate(config)
    resume = time.perf_counter() - start
    print(f"resume of a run stopped half-way: {resume:.1f} s, of which verifying the {check.shards} recorded "
          f"shards ({check.bytes / 1e6:.0f} MB) {check.seconds:.2f} s = {check.seconds / resume:.1%}")  # fmt: skip
    summary = {"episodes": args.episodes, "verify_seconds": check.seconds, "resume_seconds": resume}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
