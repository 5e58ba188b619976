"""Write and read synthetic episodes in every dataset format; print time and bytes per episode.

    python benchmarks/bench_datasets.py --episodes 20 --steps 60 --size 128

Episodes have two cameras (front, wrist) of size x size RGB frames that look like renders
(gradients, a moving disc, mild noise), so compression figures are meaningful.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from sim2real.datasets import content_hash, create_writer, open_dataset
from sim2real.datasets.synthetic import synthetic_episode

VARIANTS: list[tuple[str, str, dict]] = [
    ("zarr", "blosc lz4-5 (default)", {}),
    ("zarr", "blosc zstd-3", {"cname": "zstd", "clevel": 3}),
    ("zarr", "blosc zstd-3 bitshuffle", {"cname": "zstd", "clevel": 3, "image_shuffle": "bitshuffle"}),
    ("rlds", "png level 1 (default)", {}),
    ("rlds", "png level 3", {"png_level": 3}),
    ("rlds", "jpeg q95 (lossy)", {"image_format": "jpeg"}),
    ("hdf5", "uncompressed (default)", {}),
    ("hdf5", "lzf", {"image_compression": "lzf"}),
    ("hdf5", "gzip-4", {"image_compression": "gzip", "image_compression_opts": 4}),
]


def disk_bytes(path: Path) -> int:
    """Total size of a file or of every file under a directory."""
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def run_variant(format_name: str, options: dict, episodes: list, directory: Path) -> tuple[float, float, float, bool]:
    """(write s/episode, read s/episode, bytes/episode, exact round trip) for one writer configuration."""
    path = directory / {"zarr": "bench.zarr", "rlds": "rlds", "hdf5": "bench.hdf5"}[format_name]
    start = time.perf_counter()
    with create_writer(format_name, path, **options) as writer:
        for episode in episodes:
            writer.write(episode)
    write_s = (time.perf_counter() - start) / len(episodes)
    start = time.perf_counter()
    with open_dataset(path) as dataset:
        hashes = [content_hash(e) for e in dataset]
    read_s = (time.perf_counter() - start) / len(episodes)
    exact = hashes == [content_hash(e) for e in episodes]
    return write_s, read_s, disk_bytes(path) / len(episodes), exact


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--noise", type=float, default=2.0, help="per-pixel noise std in grey levels (0 = clean)")
    args = parser.parse_args()
    size = (args.size, args.size)
    episodes = [synthetic_episode(i, args.steps, size, noise=args.noise) for i in range(args.episodes)]
    raw = sum(a.nbytes for _, a in episodes[0].steps.arrays())
    shape = f"T={args.steps}, 2 cameras {args.size}x{args.size}, noise {args.noise}"
    print(f"{args.episodes} episodes, {shape}; raw {raw / 1e6:.2f} MB/episode")
    print(f"{'format':6} {'options':34} {'write ms/ep':>11} {'read ms/ep':>10} {'MB/ep':>7} {'ratio':>6}  exact")
    for index, (format_name, label, options) in enumerate(VARIANTS):
        with tempfile.TemporaryDirectory(prefix=f"bench{index}-") as directory:
            write_s, read_s, size, exact = run_variant(format_name, options, episodes, Path(directory))
        print(
            f"{format_name:6} {label:34} {write_s * 1e3:11.1f} {read_s * 1e3:10.1f} {size / 1e6:7.3f} "
            f"{raw / size:6.1f}  {exact}"
        )


if __name__ == "__main__":
    main()
