"""The settings of one training run, importable without torch.

:class:`TrainConfig` is ``train.py``'s schema: its groups and keys are the command line's
(``data.workers=4`` is ``config.data.workers``), and hydra hands the run this object itself.
``configs/train.yaml`` holds no defaults of its own. :func:`saved_settings` reads a
``train_config.json`` of either layout (this nested one, or the flat one of older runs).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, is_dataclass
from typing import Any

from omegaconf import MISSING

#: the policy type of a model given without ``type`` (``model=<type>`` in train.py)
DEFAULT_POLICY = "vla"
#: model settings that come from ``data.*`` (one value for the data and the model)
MODEL_FROM_DATA = ("cameras", "history", "chunk")
#: ``data.balance`` values: draw training samples uniformly over frames, or over tasks (then frames)
BALANCE_MODES = ("frame", "task")


@dataclass
class DataConfig:
    """``data.*``: what is read, and how."""

    path: str = MISSING  # zarr/ (sharded), a Zarr store, an RLDS version folder, hdf5/
    cameras: list[str] = field(default_factory=lambda: ["front", "wrist"])
    history: int = 1  # observation frames per sample
    chunk: int = 4  # future actions predicted per step
    max_episodes: int | None = None  # use the first N episodes; None: every episode
    val_fraction: float = 0.05  # held-out episodes for validation
    successful_only: bool = False  # train and validate on the episodes marked successful only
    seed: int | None = None  # the validation split and the batch order; None: train.seed
    workers: int | None = None  # loader processes; None: 0 when training on the CPU, else min(8, CPUs // 2)
    batch_size: int = 64
    cache_dir: str | None = None  # a root for training caches (one per dataset); None: beside the dataset
    balance: str = "frame"  # what a sample is drawn uniformly over: frame (every frame alike) | task (every task alike)


@dataclass
class OptimConfig:
    """``train.*``: optimisation, validation, checkpoints and logs."""

    max_steps: int = 2000
    lr: float = 3e-4
    weight_decay: float = 0.05
    warmup_steps: int = 100
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    augment_shift: int = 4  # px, random-shift augmentation
    augment_color: float = 0.0  # brightness, contrast and colour-gain jitter strength in [0, 1); 0: none
    val_every: int = 250
    val_batches: int = 20
    checkpoint_every: int = 500
    log_every: int = 10
    seed: int = 0  # initialisation, dropout and augmentation; also the data's when data.seed is None
    device: str = "auto"  # auto | cpu | cuda | cuda:<index>
    mixed_precision: bool = True  # bf16 autocast on CUDA only


@dataclass
class FinetuneConfig:
    """``finetune.*``: start from a checkpoint and freeze as ``mode`` says."""

    init_from: str | None = None  # a checkpoint folder
    mode: str = "head"  # head (freeze vision + language) | lora (peft adapters on attention)


@dataclass
class TrainConfig:
    """``model``: the policy type (``type``, default :data:`DEFAULT_POLICY`) and fields of its
    config class (:class:`VLAConfig`, :class:`BCConfig`) but :data:`MODEL_FROM_DATA`, which
    ``data.*`` sets; a mapping, or the dataclass hydra builds for ``model=<type>``."""

    data: DataConfig = field(default_factory=DataConfig)
    model: Any = field(default_factory=dict)
    train: OptimConfig = field(default_factory=OptimConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    output_dir: str = "runs/vla"
    progress: bool = True

    def __post_init__(self) -> None:
        settings = asdict(self.model) if is_dataclass(self.model) else dict(self.model)
        self.model = {"type": DEFAULT_POLICY, **settings}
        self.data.cameras = list(self.data.cameras)

    @property
    def data_seed(self) -> int:
        """The seed of the validation split and the batch order: ``data.seed``, else ``train.seed``."""
        return self.train.seed if self.data.seed is None else self.data.seed

    @property
    def policy(self) -> str:
        """The registered policy type trained (``model=<type>``)."""
        return str(self.model["type"])

    def settings(self) -> dict[str, Any]:
        """Every setting by its command-line key (``data.workers``, ``model.embed_dim``), JSON values."""
        return flat_settings(asdict(self))


def flat_settings(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"data": {"path": p}}`` -> ``{"data.path": p}``; tuples become lists, as JSON saves them."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            flat.update(flat_settings(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = list(value) if isinstance(value, tuple) else value
    return flat


#: a flat ``train_config.json`` (runs saved before the settings were grouped): field -> key
_FLAT_LAYOUT_KEYS = {
    "data_path": "data.path", "cameras": "data.cameras", "history": "data.history", "chunk": "data.chunk",
    "max_episodes": "data.max_episodes", "val_fraction": "data.val_fraction",
    "successful_only": "data.successful_only", "loader_workers": "data.workers", "batch_size": "data.batch_size",
    "cache_dir": "data.cache_dir", "policy": "model.type", "finetune_from": "finetune.init_from",
    "finetune_mode": "finetune.mode", "output_dir": "output_dir", "progress": "progress",
}  # fmt: skip


def saved_settings(saved: Mapping[str, Any]) -> dict[str, Any]:
    """The settings of a saved ``train_config.json`` by command-line key (see :meth:`TrainConfig.settings`);
    a flat file of an older run (``data_path``, ``loader_workers``, ``finetune_from``, ...) is read too."""
    if "data_path" not in saved:
        return flat_settings(saved)
    settings: dict[str, Any] = {}
    for name, value in saved.items():
        if name == "model":
            settings.update(flat_settings(value, "model."))
        else:
            settings[_FLAT_LAYOUT_KEYS.get(name, f"train.{name}")] = list(value) if isinstance(value, tuple) else value
    return settings
