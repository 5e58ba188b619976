"""The parent side of a run: :func:`generate` claims the run folder, hands the unrecorded shards
to workers (this process, or a pool of spawned ones) and waits for those other processes hold."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sim2real.datasets.claims import claim_path, current_holder
from sim2real.errors import storage_error
from sim2real.generation.config import GenerationConfig, GenerationError, validate
from sim2real.generation.manifest import build_index, claim_run, clean_leftovers, shard_record_path, verify_recorded
from sim2real.generation.worker import ShardJob, close_process_backends, run_shard


def _prepare_output_dir(root: Path) -> None:
    from sim2real.entrypoint import check_writable_folder

    check_writable_folder("output_dir", root)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        converted = storage_error(error, root)
        if converted is None:
            raise
        raise GenerationError(f"output_dir={root}: cannot be created ({converted})") from None


def _progress_bar(total: int, done: int, successes: int, enabled: bool) -> Any:
    from tqdm import tqdm

    bar = tqdm(total=total, initial=done, unit="ep", desc="generate", disable=not enabled, dynamic_ncols=True)
    bar.successes = successes  # counted on from the recorded shards' successes
    bar.set_postfix(successes=successes)
    return bar


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def generate(config: GenerationConfig) -> dict[str, Any]:
    """Run (or resume) a generation job; return the manifest of its shards.

    Any number of processes may run the same command into one folder at once (on one machine or
    on a shared file system): each shard is written by the one process that claims it, the others
    take the unclaimed shards and then wait for the claimed ones (taking over any whose holder
    dies). Shards recorded before are verified against their checksums and skipped."""
    validate(config)
    root = Path(config.output_dir)
    _prepare_output_dir(root)
    run = claim_run(root, config)
    removed = clean_leftovers(root, run)
    if removed:
        _log(f"removed {removed} temporary file(s) left by interrupted runs in {root}")
    first, stop = config.shard_range or (0, config.num_shards)
    wanted = range(first, stop)
    records = {int(r["shard"]): r for r in verify_recorded(run, wanted)}
    done_eps = sum(len(r["episodes"]) for r in records.values())
    total = sum(len(config.shard_episodes(k)) for k in wanted)
    bar = _progress_bar(total, done_eps, sum(r["successes"] for r in records.values()), config.progress)
    try:
        _run_until_recorded(config, root, wanted, records, bar)
    finally:
        bar.close()
    manifest = {"config": run.config, "generator_version": run.generator_version,
                "shards": {str(k): records[k] for k in sorted(records)}}  # fmt: skip
    if config.build_index and config.shard_range is None:
        return build_index(root)
    return manifest


def _run_until_recorded(
    config: GenerationConfig, root: Path, wanted: range, records: dict[int, dict[str, Any]], bar: Any
) -> None:
    """Write every shard of ``wanted`` that has no record; wait for those other processes hold."""
    announced: set[int] = set()
    while True:
        pending = [k for k in wanted if k not in records and not shard_record_path(root, k).exists()]
        for k in [k for k in wanted if k not in records and shard_record_path(root, k).exists()]:
            records[k] = json.loads(shard_record_path(root, k).read_text())  # written by another process
            bar.successes = getattr(bar, "successes", 0) + records[k]["successes"]
            bar.set_postfix(successes=bar.successes, refresh=False)
            bar.update(len(records[k]["episodes"]))
        if not pending:
            return
        free = [k for k in pending if current_holder(claim_path(root, k)) is None]
        busy = []
        for result in _run_shards(config, free, bar) if free else []:
            if "claimed_by" in result:
                busy.append(result["shard"])
            else:
                records[int(result["shard"])] = result
        if free and not busy:
            continue
        for shard in sorted(set(pending) - set(free) | set(busy)):
            holder = current_holder(claim_path(root, shard))
            if shard not in announced and holder is not None:
                announced.add(shard)
                _log(f"shard {shard} is being written by {holder.describe()}: waiting for it")
        time.sleep(0.5)


def _run_shards(config: GenerationConfig, shards: list[int], bar: Any) -> Iterator[dict[str, Any]]:
    successes = [getattr(bar, "successes", 0)]

    def tick(message: tuple[int, int]) -> None:
        bar.update(message[0])
        successes[0] += message[1]
        bar.successes = successes[0]
        bar.set_postfix(successes=successes[0])

    if config.workers == 1 or len(shards) <= 1:
        queue = _InlineQueue(tick)
        try:
            for shard in shards:
                yield run_shard(ShardJob(config, shard), queue)
        finally:
            close_process_backends()
        return
    context = mp.get_context("spawn")
    with context.Manager() as manager:
        queue = manager.Queue()
        with context.Pool(min(config.workers, len(shards)), initializer=_init_worker) as pool:
            results = [pool.apply_async(run_shard, (ShardJob(config, shard), queue)) for shard in shards]
            remaining = list(results)
            while remaining:
                while not queue.empty():
                    tick(queue.get())
                for result in [r for r in remaining if r.ready()]:
                    remaining.remove(result)
                    yield result.get()
                time.sleep(0.05)
            while not queue.empty():
                tick(queue.get())
            pool.close()  # let the workers exit on their own (closing their simulators) before the
            pool.join()  # context manager's terminate()


def _init_worker() -> None:
    """Pool workers already fill the cores: Mesa's software rasteriser (llvmpipe) renders in the
    calling thread instead of starting a thread per core in every worker (user settings win)."""
    os.environ.setdefault("LP_NUM_THREADS", "0")


class _InlineQueue:
    def __init__(self, callback: Any) -> None:
        self.callback = callback

    def put(self, message: tuple[int, int]) -> None:
        self.callback(message)
