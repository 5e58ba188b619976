"""``sim2real serve`` over loopback: round-trip overhead per request and requests/s with 1 and 4 clients.

A temporary checkpoint of the CPU configuration (two 128x128 cameras, history 1, chunk 4, small
CNN; the learned language embedding unless ``--language minilm``) is served by ``sim2real serve``
in a subprocess; this process is the client (one websocket connection per client thread, batch 1).

* overhead: per request, the client's round trip (pack, send, server-side unpack and checks,
  ``act()``, pack, receive, unpack) minus the ``act()`` time the server reports for that request
  (``server_timing.infer_ms``); the median over ``--requests`` requests of one client. The
  in-process ``act()`` median (the same policy loaded here, same observations) is printed beside.
* requests/s: ``--clients`` connections (default 1 and 4) each sending ``--requests`` requests
  one after another; total replies over wall time.

    python benchmarks/bench_serve.py [--requests 300] [--clients 1 4] [--threads N] [--workers 4]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch
from websockets.sync.client import connect

from sim2real.policies import load_policy
from sim2real.policies.checkpoint import save_checkpoint
from sim2real.policies.tokenizer import ActionTokenizer
from sim2real.policies.vla import VLAConfig, VLAModel
from sim2real.remote.wire import packb, unpackb

STATS = {
    "action_p01": np.array([-0.05] * 3 + [-0.3] * 3 + [0.0], np.float32),
    "action_p99": np.array([0.05] * 3 + [0.3] * 3 + [1.0], np.float32),
    "state_mean": np.zeros(14, np.float32),
    "state_std": np.ones(14, np.float32),
}
PROMPT = "put the red block in the bowl"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=300, help="timed requests per client (after 20 warm-up)")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4], help="concurrent clients for requests/s")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads, here and in the server")
    parser.add_argument("--workers", type=int, default=4, help="the server's --workers")
    parser.add_argument("--language", choices=("minilm", "learned"), default="learned")
    parser.add_argument("--image-size", type=int, default=128)
    return parser.parse_args()


def make_checkpoint(folder: Path, language: str, image_size: int) -> Path:
    torch.manual_seed(0)
    model = VLAModel(VLAConfig(language=language, image_size=image_size))
    model.set_normalization(STATS)
    return save_checkpoint(folder / "ckpt", model.eval(), ActionTokenizer.from_stats(STATS), STATS)


def make_requests(n: int, image_size: int) -> list[dict]:
    rng = np.random.default_rng(0)
    return [
        {
            "observation/image/front": rng.integers(0, 256, (image_size, image_size, 3), dtype=np.uint8),
            "observation/image/wrist": rng.integers(0, 256, (image_size, image_size, 3), dtype=np.uint8),
            "observation/state": rng.normal(size=14).astype(np.float32),
            "prompt": PROMPT,
        }
        for _ in range(n)
    ]


def start_server(checkpoint: Path, threads: int | None, workers: int) -> tuple[subprocess.Popen, str]:
    command = [sys.executable, "-m", "sim2real.cli", "serve", "--checkpoint", str(checkpoint), "--port", "0",
               "--workers", str(workers)]  # fmt: skip
    if threads is not None:
        command += ["--threads", str(threads)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = process.stdout.readline()  # type: ignore[union-attr]
    if " on ws://" not in line:
        process.kill()
        raise SystemExit(f"sim2real serve did not start: {line!r}")
    return process, line.rsplit(" on ", 1)[1].strip()


def one_client(url: str, requests: list[dict], warmup: int, timings: list[tuple[float, float]] | None) -> None:
    """Send ``requests`` (the first ``warmup`` untimed); append (round trip ms, server act ms) to ``timings``."""
    with connect(url, compression=None, max_size=None) as ws:
        unpackb(ws.recv())
        for i, request in enumerate(requests):
            start = time.perf_counter()
            ws.send(packb(request))
            reply = unpackb(ws.recv())  # type: ignore[arg-type]
            rtt = (time.perf_counter() - start) * 1e3
            assert reply["actions"].shape == (1, 7), reply
            if timings is not None and i >= warmup:
                timings.append((rtt, float(reply["server_timing"]["infer_ms"])))


def throughput(url: str, clients: int, requests: list[dict], warmup: int) -> float:
    threads = [threading.Thread(target=one_client, args=(url, requests[:warmup], 0, None)) for _ in range(clients)]
    for thread in threads:  # connect and warm up every client first
        thread.start()
    for thread in threads:
        thread.join()
    timed = requests[warmup:]
    threads = [threading.Thread(target=one_client, args=(url, timed, 0, None)) for _ in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return clients * len(timed) / (time.perf_counter() - start)


def main() -> None:
    args = parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    warmup = 20
    requests = make_requests(warmup + args.requests, args.image_size)
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = make_checkpoint(Path(tmp), args.language, args.image_size)
        policy = load_policy(checkpoint, temporal_ensemble=0.1, decoding="expectation")
        in_process = []
        for i, request in enumerate(requests):
            observation = {"image": {c: request[f"observation/image/{c}"] for c in ("front", "wrist")},
                           "state": request["observation/state"]}  # fmt: skip
            start = time.perf_counter()
            policy.act(observation, PROMPT)
            if i >= warmup:
                in_process.append((time.perf_counter() - start) * 1e3)
        del policy
        process, url = start_server(checkpoint, args.threads, args.workers)
        try:
            timings: list[tuple[float, float]] = []
            one_client(url, requests, warmup, timings)
            rates = {n: throughput(url, n, requests, warmup) for n in args.clients}
        finally:
            process.terminate()
            process.wait(timeout=60)
    rtt = [t for t, _ in timings]
    overhead = [t - infer for t, infer in timings]
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}",
        "torch_threads": args.threads or torch.get_num_threads(),
        "server_workers": args.workers,
        "request_bytes": len(packb(requests[0])),
        "in_process_act_ms_median": statistics.median(in_process),
        "round_trip_ms_median": statistics.median(rtt),
        "server_act_ms_median": statistics.median(t for _, t in timings),
        "overhead_ms_median": statistics.median(overhead),
        "overhead_ms_p90": float(np.percentile(overhead, 90)),
        "requests_per_s": {str(n): rate for n, rate in rates.items()},
    }
    print(f"sim2real serve over loopback, batch 1, two {args.image_size}x{args.image_size} cameras "
          f"({result['request_bytes']} bytes a request), {result['machine']}")  # fmt: skip
    print(f"  in-process act()        median {result['in_process_act_ms_median']:7.2f} ms")
    print(f"  round trip              median {result['round_trip_ms_median']:7.2f} ms "
          f"(server act() {result['server_act_ms_median']:.2f} ms)")  # fmt: skip
    print(f"  overhead over act()     median {result['overhead_ms_median']:7.2f} ms, "
          f"p90 {result['overhead_ms_p90']:.2f} ms")  # fmt: skip
    for n, rate in rates.items():
        print(f"  requests/s, {n} client{'s' if n > 1 else ' '}    {rate:7.1f}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
