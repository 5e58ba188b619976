"""Policy speed on this machine (``--policy vla`` or ``bc``, any registered type): training
samples/s and closed-loop act() latency.

Defaults are the CPU configuration: batch 64, cameras front + wrist at 128x128, history 1,
chunk 4, small CNN, MiniLM language (falls back to the learned embedding when the MiniLM
package is missing). Prints one table; writes nothing but a temporary checkpoint.

    python benchmarks/bench_policy.py [--policy vla] [--steps 10] [--acts 200] [--threads N] [--device cpu] [--fp32]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time

import numpy as np
import torch

from sim2real.policies.checkpoint import save_checkpoint
from sim2real.policies.inference import load_policy
from sim2real.policies.language import LanguageEncoderUnavailableError, minilm_model_path
from sim2real.policies.registry import POLICIES
from sim2real.policies.synthetic import random_batch
from sim2real.policies.tokenizer import ActionTokenizer
from sim2real.policies.training import EMA, build_optimizer, build_scheduler, move_batch, train_step
from sim2real.policies.vla import EncoderConfig

#: the target for the median act() latency at batch 1 on the CPU (ms)
ACT_TARGET_MS = 5.0

STATS = {
    "action_p01": np.array([-0.05] * 3 + [-0.3] * 3 + [0.0], np.float32),
    "action_p99": np.array([0.05] * 3 + [0.3] * 3 + [1.0], np.float32),
    "state_mean": np.zeros(14, np.float32),
    "state_std": np.ones(14, np.float32),
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--policy", choices=POLICIES.names(), default="vla", help="the policy type")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10, help="timed training steps (after 2 warm-up steps)")
    parser.add_argument("--acts", type=int, default=200, help="timed act() calls (after 10 warm-up calls)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's own)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--language", choices=("minilm", "learned"), default="minilm")
    parser.add_argument("--vision", choices=("small_cnn", "resnet18", "vit"), default="small_cnn")
    parser.add_argument("--config", default="{}", help='policy config overrides as JSON, e.g. {"image_size": 96}')
    parser.add_argument("--only", choices=("train", "act"), default=None, help="run one of the two parts")
    parser.add_argument("--fp32", action="store_true", help="train in float32 (default: bf16 autocast on CUDA)")
    return parser.parse_args()


def language_choice(requested: str) -> str:
    if requested != "minilm":
        return requested
    try:
        minilm_model_path()
    except LanguageEncoderUnavailableError as error:
        print(f"note: {error}; benchmarking the learned embedding instead")
        return "learned"
    return "minilm"


def bench_training(cfg: EncoderConfig, args: argparse.Namespace, tok: ActionTokenizer) -> dict[str, float]:
    torch.manual_seed(0)
    model = POLICIES.get(args.policy)(cfg).to(args.device)
    model.set_normalization(STATS)
    optimizer = build_optimizer(model, lr=3e-4)
    scheduler = build_scheduler(optimizer, 10, 1000)
    ema = EMA(model)
    batches = [
        move_batch(random_batch(args.batch, cfg.history, cfg.chunk, cfg.cameras, cfg.image_size, seed=i), args.device)
        for i in range(4)
    ]
    model.embed_instructions(sorted({s for b in batches for s in b["instruction"]}))  # load/cache the encoder
    times = []
    for step in range(args.steps + 2):
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        train_step(
            model,
            batches[step % len(batches)],
            tok,
            optimizer,
            step=step,
            scheduler=scheduler,
            ema=ema,
            amp=not args.fp32,
        )
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        if step >= 2:
            times.append(time.perf_counter() - start)
    step_s = statistics.median(times)
    return {"params": model.num_parameters(), "step_s": step_s, "samples_per_s": args.batch / step_s}


def bench_act(cfg: EncoderConfig, args: argparse.Namespace, tok: ActionTokenizer) -> dict[str, float]:
    torch.manual_seed(0)
    model = POLICIES.get(args.policy)(cfg)
    model.set_normalization(STATS)
    instruction = "pick up the red cube and put it in the bowl"
    model.embed_instructions([instruction])
    with tempfile.TemporaryDirectory() as tmp:
        path = save_checkpoint(os.path.join(tmp, "ckpt"), model, tok, STATS)
        start = time.perf_counter()
        policy = load_policy(path, device=args.device, num_threads=args.threads)
        load_s = time.perf_counter() - start
    rng = np.random.default_rng(0)
    size = cfg.image_size
    frames = [
        {
            "image": {c: rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for c in cfg.cameras},
            "state": rng.normal(size=14).astype(np.float32),
        }
        for _ in range(8)
    ]
    policy.reset()
    for i in range(10):
        policy.act(frames[i % len(frames)], instruction)
    latencies = []
    for i in range(args.acts):
        if i % 50 == 0:
            policy.reset()
        start = time.perf_counter()
        action = policy.act(frames[i % len(frames)], instruction)
        latencies.append((time.perf_counter() - start) * 1e3)
    assert action.shape == (7,) and action.dtype == np.float32
    lat = np.array(latencies)
    return {
        "load_s": load_s,
        "median_ms": float(np.median(lat)),
        "p90_ms": float(np.percentile(lat, 90)),
        "mean_ms": float(lat.mean()),
        "min_ms": float(lat.min()),
    }


def main() -> None:
    args = parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    config_class = POLICIES.get(args.policy).config_class
    cfg = config_class(language=language_choice(args.language), vision_encoder=args.vision, **json.loads(args.config))
    tok = ActionTokenizer.from_stats(STATS, bins=getattr(cfg, "bins", 256))
    print(
        f"torch {torch.__version__}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"torch threads {torch.get_num_threads()}, device {args.device}"
    )
    print(
        f"config: policy={args.policy}, vision={cfg.vision_encoder}, language={cfg.language}, "
        f"cameras={list(cfg.cameras)} "
        f"{cfg.image_size}x{cfg.image_size}, history={cfg.history}, chunk={cfg.chunk}, D={cfg.embed_dim}, "
        f"layers={cfg.layers}, tokens/frame/camera={cfg.tokens_per_frame}"
    )
    if args.only != "act":
        train = bench_training(cfg, args, tok)
        print(f"parameters: {train['params'] / 1e6:.2f} M (trainable; MiniLM excluded)")
        print(
            f"training ({'float32' if args.fp32 or args.device == 'cpu' else 'bf16 autocast'}): batch {args.batch}: "
            f"{train['step_s'] * 1e3:.1f} ms/step (median of {args.steps}), "
            f"{train['samples_per_s']:.1f} samples/s"
        )
    if args.only == "train":
        return
    act = bench_act(cfg, args, tok)
    print(
        f"act() at batch 1: median {act['median_ms']:.2f} ms, p90 {act['p90_ms']:.2f} ms, "
        f"mean {act['mean_ms']:.2f} ms, min {act['min_ms']:.2f} ms over {args.acts} calls "
        f"(checkpoint load {act['load_s']:.2f} s); target <= {ACT_TARGET_MS:g} ms: "
        f"{'met' if act['median_ms'] <= ACT_TARGET_MS else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
