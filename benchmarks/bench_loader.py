"""Training loader throughput: samples/s through the training loader (2 cameras 128x128,
chunk 4; the CPU default's history 1 and batch 64 unless told) over a generated dataset of any format
(Zarr, HDF5, RLDS, a LeRobot folder): the first pass decodes it into the training cache (its time is
printed), later epochs read the cache, so the samples/s do not depend on the format.
Usage: python benchmarks/bench_loader.py DATASET_PATH [--workers 2] [--batches 200] [--history 1]
       [--batch-size 64]"""

from __future__ import annotations

import argparse
import time

from sim2real.datasets.torch_dataset import BatchLoader, ChunkedEpisodeDataset
from sim2real.datasets.training_cache import load_training_data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("path")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--history", type=int, default=1)
    args = parser.parse_args()
    start = time.perf_counter()
    data = load_training_data(args.path)
    print(f"cache ready in {time.perf_counter() - start:.1f} s: {data.num_episodes} episodes, {len(data.action)} steps")
    dataset = ChunkedEpisodeDataset(data, range(data.num_episodes), history=args.history, chunk=4)
    loader = BatchLoader(dataset, batch_size=args.batch_size, shuffle=True, num_workers=args.workers,
                         persistent_workers=args.workers > 0, drop_last=True)  # fmt: skip
    seen, batches = 0, 0
    iterator = iter(loader)
    next(iterator)  # start-up
    start = time.perf_counter()
    while batches < args.batches:
        try:
            batch = next(iterator)
        except StopIteration:
            iterator = iter(loader)
            continue
        seen += batch["actions"].shape[0]
        batches += 1
    elapsed = time.perf_counter() - start
    print(f"{seen / elapsed:.0f} samples/s with {args.workers} loader workers (batch {args.batch_size})")


if __name__ == "__main__":
    main()
