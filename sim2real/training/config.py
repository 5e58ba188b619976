"""The settings of one training run: a plain frozen dataclass, importable without torch.

These are the training defaults; ``train.py``'s hydra schema takes its defaults from here and
``configs/train.yaml`` repeats them for readers (a test keeps the two equal).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any


@dataclass(frozen=True)
class TrainConfig:
    """``data``: dataset folder (zarr/, zarr store, RLDS version folder, hdf5/); ``policy``: the
    registered policy type (``vla``, ``bc``; ``model=<type>`` in train.py); ``model``: fields of
    that type's config class (:class:`VLAConfig`, :class:`BCConfig`); ``finetune_from`` +
    ``finetune_mode`` (head | lora) initialise from a checkpoint and freeze as the field does."""

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
    cache_dir: str | None = None  # a root for training caches (one per dataset); None: beside the dataset
    policy: str = "vla"
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


#: where a field sits in ``train.py``'s hydra config when not under ``train.``
SETTING_KEYS = {
    "data_path": "data.path", "cameras": "data.cameras", "history": "data.history", "chunk": "data.chunk",
    "max_episodes": "data.max_episodes", "val_fraction": "data.val_fraction",
    "successful_only": "data.successful_only", "loader_workers": "data.workers", "batch_size": "data.batch_size",
    "cache_dir": "data.cache_dir", "policy": "model.type", "model": "model", "finetune_from": "finetune.init_from",
    "finetune_mode": "finetune.mode", "output_dir": "output_dir", "progress": "progress",
}  # fmt: skip
#: model settings that come from ``data.*`` (one value for the data and the model)
MODEL_FROM_DATA = ("cameras", "history", "chunk")


def setting_key(name: str) -> str:
    """The hydra key of a field: ``max_steps`` -> ``train.max_steps``, ``model.cameras`` -> ``data.cameras``."""
    if name.startswith("model.") and name.removeprefix("model.") in MODEL_FROM_DATA:
        return SETTING_KEYS[name.removeprefix("model.")]
    return SETTING_KEYS.get(name, name if name.startswith("model.") else f"train.{name}")


def from_settings(settings: Mapping[str, Any], output_dir: str | None = None) -> TrainConfig:
    """The :class:`TrainConfig` of ``train.py``'s resolved hydra settings; ``output_dir`` replaces
    the setting (a sweep's job folder)."""
    values: dict[str, Any] = {}
    for item in fields(TrainConfig):
        node: Any = settings
        for part in setting_key(item.name).split("."):
            node = node[part]
        values[item.name] = node
    values["cameras"] = tuple(values["cameras"])
    values["model"] = {k: v for k, v in values["model"].items() if k not in (*MODEL_FROM_DATA, "type")}
    if output_dir is not None:
        values["output_dir"] = output_dir
    return TrainConfig(**values)
