"""A synthetic stand-in for the training loader: episodes, windowed samples, batches, statistics.

The task is small but real: three coloured blocks (red, green, blue) lie on a randomly tinted
table seen from above; a white marker is the end effector. The instruction names one block
("reach the blue block"); the expert moves the marker towards it (``dx, dy`` depend on the
image and the instruction), rotates by a colour-specific ``dyaw`` (instruction only), lowers
(``dz < 0``) and closes the gripper once there. ``droll``/``dpitch`` are always 0, i.e.
degenerate dimensions. The ``wrist`` camera is the scene re-centred on the marker.

Batches follow the training loader's contract:
``images[camera]`` uint8 (B, To, H, W, 3), ``state`` float32 (B, To, 14),
``instruction`` list[str] (B), ``actions`` float32 (B, Ta, 7), ``action_mask`` bool (B, Ta),
``obs_mask`` bool (B, To). History before the episode start repeats the first frame with
``obs_mask`` False; a chunk past the episode end repeats the last action with ``action_mask`` False.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from sim2real.policies.vla.config import VLAConfig

COLORS: dict[str, tuple[int, int, int]] = {"red": (220, 40, 40), "green": (40, 200, 60), "blue": (40, 70, 230)}
TEMPLATES = ("reach the {} block", "move to the {} cube", "go to the {} block and grasp it")
_YAW = {"red": 0.1, "green": 0.0, "blue": -0.1}
WORKSPACE = 0.4  # metres spanned by the image
MAX_STEP = 0.05  # metres per step


@dataclass
class SyntheticEpisode:
    """One episode: ``images[camera]`` uint8 (T, H, W, 3), ``state`` float32 (T, 14), ``actions`` float32 (T, 7)."""

    images: dict[str, np.ndarray]
    state: np.ndarray
    actions: np.ndarray
    instruction: str

    def __len__(self) -> int:
        return int(self.actions.shape[0])


def _draw(canvas: np.ndarray, centre: np.ndarray, half: float, color: Sequence[int]) -> None:
    size = canvas.shape[0]
    cy, cx = centre * size
    r = max(half * size, 1.0)
    y0, y1 = int(max(cy - r, 0)), int(min(np.ceil(cy + r), size))
    x0, x1 = int(max(cx - r, 0)), int(min(np.ceil(cx + r), size))
    canvas[y0:y1, x0:x1] = color


def render_scene(
    blocks: dict[str, np.ndarray], ee: np.ndarray, background: np.ndarray, size: int, gripper_open: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Top view and wrist view, uint8 (size, size, 3) each. Positions are (y, x) in [0, 1]."""
    front = np.empty((size, size, 3), dtype=np.uint8)
    front[:] = background
    for color, pos in blocks.items():
        _draw(front, pos, 0.08, COLORS[color])
    _draw(front, ee, 0.035, (255, 255, 255) if gripper_open else (120, 120, 120))
    shift = (np.round((0.5 - ee) * size)).astype(int)
    wrist = np.roll(front, shift=(shift[0], shift[1]), axis=(0, 1))
    return front, wrist


def make_episode(rng: np.random.Generator, image_size: int = 64, max_steps: int = 16) -> SyntheticEpisode:
    """One expert episode of the synthetic reaching task (deterministic given ``rng``)."""
    names = list(COLORS)
    target = names[int(rng.integers(len(names)))]
    instruction = TEMPLATES[int(rng.integers(len(TEMPLATES)))].format(target)
    blocks = {c: rng.uniform(0.15, 0.85, size=2) for c in names}
    ee = rng.uniform(0.1, 0.9, size=2)
    z, yaw, grip = 0.2, 0.0, 1.0
    background = rng.uniform(60, 160, size=3).astype(np.uint8)
    fronts, wrists, states, actions = [], [], [], []
    for _ in range(max_steps):
        front, wrist = render_scene(blocks, ee, background, image_size, grip > 0.5)
        delta = (blocks[target] - ee) * WORKSPACE  # metres, (y, x)
        dist = float(np.linalg.norm(delta))
        step = np.clip(delta, -MAX_STEP, MAX_STEP)
        there = dist < 0.02
        action = np.array(
            [step[1], step[0], -0.02 if there else 0.0, 0.0, 0.0, _YAW[target], 0.0 if there else 1.0],
            dtype=np.float32,
        )
        joints = np.concatenate([np.sin(ee * 3.0), np.cos(ee * 2.0), [z, yaw, grip]]).astype(np.float32)
        states.append(np.r_[ee[1] * WORKSPACE, ee[0] * WORKSPACE, z, 0.0, 0.0, yaw, grip, joints].astype(np.float32))
        fronts.append(front)
        wrists.append(wrist)
        actions.append(action)
        ee = np.clip(ee + step / WORKSPACE, 0.0, 1.0)
        z += float(action[2])
        yaw += float(action[5])
        grip = float(action[6])
        if there and z < 0.1:
            break
    return SyntheticEpisode(
        images={"front": np.stack(fronts), "wrist": np.stack(wrists)},
        state=np.stack(states),
        actions=np.stack(actions),
        instruction=instruction,
    )


def make_episodes(num: int, seed: int = 0, image_size: int = 64, max_steps: int = 16) -> list[SyntheticEpisode]:
    """``num`` episodes; episode ``i`` depends only on ``(seed, i)``."""
    children = np.random.SeedSequence(seed).spawn(num)
    return [make_episode(np.random.default_rng(c), image_size, max_steps) for c in children]


def compute_stats(episodes: Sequence[SyntheticEpisode]) -> dict[str, np.ndarray]:
    """Dataset statistics in the loader's format.

    ``action_p01``/``action_p99`` float32 (7,), ``state_mean``/``state_std`` float32 (14,).
    """
    actions = np.concatenate([e.actions for e in episodes])
    states = np.concatenate([e.state for e in episodes])
    return {
        "action_p01": np.percentile(actions, 1, axis=0).astype(np.float32),
        "action_p99": np.percentile(actions, 99, axis=0).astype(np.float32),
        "state_mean": states.mean(axis=0).astype(np.float32),
        "state_std": states.std(axis=0).astype(np.float32),
    }


class SyntheticVLADataset(torch.utils.data.Dataset):
    """Windows of ``history`` observations and ``chunk`` actions, one sample per (episode, step)."""

    def __init__(
        self,
        episodes: Sequence[SyntheticEpisode],
        history: int = 2,
        chunk: int = 4,
        cameras: Sequence[str] = ("front", "wrist"),
    ) -> None:
        self.episodes = list(episodes)
        self.history = history
        self.chunk = chunk
        self.cameras = tuple(cameras)
        self.index = [(e, t) for e, ep in enumerate(self.episodes) for t in range(len(ep))]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict[str, object]:
        e, t = self.index[i]
        ep = self.episodes[e]
        n = len(ep)
        obs_t = np.arange(t - self.history + 1, t + 1)
        act_t = np.arange(t, t + self.chunk)
        return {
            "images": {c: ep.images[c][np.clip(obs_t, 0, n - 1)] for c in self.cameras},
            "state": ep.state[np.clip(obs_t, 0, n - 1)],
            "instruction": ep.instruction,
            "actions": ep.actions[np.clip(act_t, 0, n - 1)],
            "action_mask": act_t < n,
            "obs_mask": obs_t >= 0,
        }


def collate(samples: Sequence[dict[str, object]]) -> dict[str, object]:
    """Stack samples into a batch of torch tensors (see the module docstring for shapes)."""
    first = samples[0]
    cameras = list(first["images"])  # type: ignore[call-overload]
    return {
        "images": {c: torch.from_numpy(np.stack([s["images"][c] for s in samples])) for c in cameras},  # type: ignore[index]
        "state": torch.from_numpy(np.stack([s["state"] for s in samples])),  # type: ignore[misc]
        "instruction": [str(s["instruction"]) for s in samples],
        "actions": torch.from_numpy(np.stack([s["actions"] for s in samples])),  # type: ignore[misc]
        "action_mask": torch.from_numpy(np.stack([s["action_mask"] for s in samples])),  # type: ignore[misc]
        "obs_mask": torch.from_numpy(np.stack([s["obs_mask"] for s in samples])),  # type: ignore[misc]
    }


def iterate_batches(
    dataset: SyntheticVLADataset, batch_size: int, rng: np.random.Generator | None = None, drop_last: bool = False
) -> Iterator[dict[str, object]]:
    """One epoch of batches; shuffled with ``rng`` when given, in order otherwise."""
    order = rng.permutation(len(dataset)) if rng is not None else np.arange(len(dataset))
    stop = len(order) - (len(order) % batch_size if drop_last else 0)
    for start in range(0, stop, batch_size):
        yield collate([dataset[int(i)] for i in order[start : start + batch_size]])


def random_batch(
    batch_size: int = 2,
    history: int = 2,
    chunk: int = 4,
    cameras: Sequence[str] = ("front", "wrist"),
    image_size: int = 64,
    seed: int = 0,
) -> dict[str, object]:
    """A batch of random values with the contract's shapes and dtypes (for shape tests and benchmarks)."""
    g = torch.Generator().manual_seed(seed)
    actions = torch.rand(batch_size, chunk, 7, generator=g) * 0.1 - 0.05
    actions[..., 6] = (actions[..., 6] > 0).float()
    obs_mask = torch.ones(batch_size, history, dtype=torch.bool)
    obs_mask[0, :-1] = False
    action_mask = torch.ones(batch_size, chunk, dtype=torch.bool)
    action_mask[-1, chunk // 2 :] = False
    return {
        "images": {
            c: torch.randint(0, 256, (batch_size, history, image_size, image_size, 3), dtype=torch.uint8, generator=g)
            for c in cameras
        },
        "state": torch.randn(batch_size, history, 14, generator=g),
        "instruction": [TEMPLATES[i % len(TEMPLATES)].format(list(COLORS)[i % 3]) for i in range(batch_size)],
        "actions": actions,
        "action_mask": action_mask,
        "obs_mask": obs_mask,
    }


def tiny_config(**overrides: object) -> VLAConfig:
    """A VLA config small enough for unit tests on a CPU (32x32 images, D=64, 2 layers, learned language)."""
    base: dict[str, object] = {
        "image_size": 32,
        "history": 2,  # the multi-frame path (the CPU default uses one frame)
        "vision_width": 8,
        "tokens_per_frame": 4,
        "embed_dim": 64,
        "layers": 2,
        "heads": 4,
        "mlp_ratio": 2.0,
        "language": "learned",
        "language_dim": 32,
        "language_buckets": 256,
        "dropout": 0.0,
    }
    base.update(overrides)
    return VLAConfig(**base)  # type: ignore[arg-type]
