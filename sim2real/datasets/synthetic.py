"""Synthetic canonical episodes for tests and benchmarks (no simulator needed).

Frames look like rendered scenes rather than noise: a smooth two-colour gradient background,
a moving disc (the "object") and mild sensor noise, so image codecs compress them as they
would compress real renders.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from sim2real.datasets.schema import (
    ACTION_DIM,
    DEFAULT_CAMERAS,
    STATE_DIM,
    Episode,
    EpisodeMetadata,
    EpisodeSteps,
    canonical_json,
)

_INSTRUCTIONS = ("pick up the red cube", "put the block in the bowl", "push the cylinder to the marker")


def synthetic_frames(rng: np.random.Generator, num_steps: int, size: tuple[int, int], noise: float = 4.0) -> np.ndarray:
    """uint8 (T, H, W, 3) frames: gradient background, a disc moving on a straight line, Gaussian noise."""
    height, width = size
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    low, high = rng.uniform(30, 220, size=(2, 3)).astype(np.float32)
    ramp = ((xs / max(width - 1, 1) + ys / max(height - 1, 1)) / 2)[..., None]
    background = low + (high - low) * ramp
    start, end = rng.uniform(0.2, 0.8, size=(2, 2)) * np.array([height, width])
    color = rng.uniform(0, 255, size=3).astype(np.float32)
    radius = 0.12 * min(height, width)
    frames = np.empty((num_steps, height, width, 3), dtype=np.uint8)
    for t in range(num_steps):
        cy, cx = start + (end - start) * t / max(num_steps - 1, 1)
        disc = ((ys - cy) ** 2 + (xs - cx) ** 2 <= radius**2)[..., None]
        frame = np.where(disc, color, background) + rng.normal(0, noise, size=(height, width, 3))
        frames[t] = np.clip(frame, 0, 255).astype(np.uint8)
    return frames


def _flags(num_steps: int, terminal: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    is_first = np.zeros(num_steps, dtype=bool)
    is_first[0] = True
    is_last = np.zeros(num_steps, dtype=bool)
    is_last[-1] = True
    return is_first, is_last, is_last & terminal


def synthetic_episode(
    index: int,
    num_steps: int = 10,
    image_size: tuple[int, int] = (32, 32),
    cameras: Sequence[str] = DEFAULT_CAMERAS,
    seed: int = 0,
    noise: float = 2.0,
) -> Episode:
    """A valid canonical episode drawn from ``(seed, index)``: T = ``num_steps``, frames (H, W) = ``image_size``.

    ``noise`` is the standard deviation of the per-pixel Gaussian noise, in grey levels.
    """
    rng = np.random.default_rng([seed, index])
    success = bool(rng.random() < 0.7)
    is_first, is_last, is_terminal = _flags(num_steps, success)
    reward = np.zeros(num_steps, dtype=np.float32)
    reward[-1] = float(success)
    action = rng.uniform(-0.02, 0.02, size=(num_steps, ACTION_DIM)).astype(np.float32)
    action[:, 6] = (np.arange(num_steps) < num_steps // 2).astype(np.float32)  # open, then closed
    state = np.cumsum(rng.normal(0, 0.01, size=(num_steps, STATE_DIM)), axis=0).astype(np.float32)
    scene = canonical_json({"task": "pick_place", "seed": index, "objects": [{"name": "cube", "size": 0.02}]})
    steps = EpisodeSteps(
        images={camera: synthetic_frames(rng, num_steps, image_size, noise) for camera in cameras},
        state=state,
        action=action,
        reward=reward,
        discount=np.ones(num_steps, dtype=np.float32),
        is_first=is_first,
        is_last=is_last,
        is_terminal=is_terminal,
        language_instruction=_INSTRUCTIONS[index % len(_INSTRUCTIONS)],
    )
    metadata = EpisodeMetadata(
        episode_id=f"synthetic-{seed}-{index:06d}",
        episode_index=index,
        seed=int(rng.integers(0, 2**62)),
        task="pick_place",
        backend="synthetic",
        robot="panda",
        control_hz=10.0,
        split="train" if index % 4 else "held_out_textures",
        success=success,
        scene_spec_json=scene,
        scene_spec_hash=hashlib.sha256(scene.encode()).hexdigest(),
        generator_version="0.1.0",
        extras={"clip_count": int(rng.integers(0, 5)), "attempts": 1, "note": "synthetic", "min_height": 0.25},
    )
    return Episode(steps=steps, metadata=metadata)
