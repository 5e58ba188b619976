"""The settings of one training run: a plain frozen dataclass, importable without torch.

These are the training defaults; ``train.py``'s hydra schema takes its defaults from here and
``configs/train.yaml`` repeats them for readers (a test keeps the two equal).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class TrainConfig:
    """``data``: dataset folder (zarr/, zarr store, RLDS version folder, hdf5/); ``model``:
    :class:`VLAConfig` fields; ``finetune_from`` + ``finetune_mode`` (head | lora) initialise
    from a checkpoint and freeze as the field does."""

    data_path: str
    output_dir: str = "runs/vla"
    cameras: tuple[str, ...] = ("front", "wrist")
    history: int = 1
    chunk: int = 4
    max_episodes: int | None = None
    val_fraction: float = 0.05
    successful_only: bool = False  # train and validate on the episodes marked successful only
    loader_workers: int | None = None  # None: 0 when training on the CPU, else min(8, CPUs // 2)
    batch_size: int = 64
    model: dict[str, Any] = field(default_factory=dict)
    max_steps: int = 2000
    lr: float = 3e-4
    weight_decay: float = 0.05
    warmup_steps: int = 100
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    augment_shift: int = 4
    val_every: int = 250
    val_batches: int = 20
    checkpoint_every: int = 500
    log_every: int = 10
    seed: int = 0
    device: str = "auto"
    mixed_precision: bool = True
    finetune_from: str | None = None
    finetune_mode: str = "head"
    progress: bool = True
