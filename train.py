"""Train a policy (hydra). See configs/train.yaml; ``model=<type>`` chooses the registered policy
type (``vla``, the default; ``bc``), ``model.<field>=...`` its settings.

python train.py data.path=data/pick_place/zarr output_dir=runs/vla train.max_steps=20000
python train.py model=bc data.path=data/pick_place/zarr output_dir=runs/bc
python train.py -m train.lr=1e-4,3e-4 data.max_episodes=50,200 data.path=data/all/zarr output_dir=runs/sweep
torchrun --nproc_per_node=2 train.py data.path=... output_dir=runs/ddp   # multi-GPU (DDP)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import hydra
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from omegaconf import MISSING, DictConfig, OmegaConf

from sim2real.entrypoint import schema_defaults
from sim2real.policies import POLICIES
from sim2real.training.config import TrainConfig, from_settings

_D = TrainConfig  # the defaults (class attributes of the dataclass)


@dataclass
class DataSchema:
    path: str = MISSING
    cameras: list[str] = field(default_factory=lambda: list(_D.cameras))
    history: int = _D.history
    chunk: int = _D.chunk
    max_episodes: int | None = _D.max_episodes
    val_fraction: float = _D.val_fraction
    successful_only: bool = _D.successful_only
    workers: int | None = _D.loader_workers
    batch_size: int = _D.batch_size
    cache_dir: str | None = _D.cache_dir


@dataclass
class OptimSchema:
    max_steps: int = _D.max_steps
    lr: float = _D.lr
    weight_decay: float = _D.weight_decay
    warmup_steps: int = _D.warmup_steps
    grad_clip: float = _D.grad_clip
    ema_decay: float = _D.ema_decay
    augment_shift: int = _D.augment_shift
    val_every: int = _D.val_every
    val_batches: int = _D.val_batches
    checkpoint_every: int = _D.checkpoint_every
    log_every: int = _D.log_every
    seed: int = _D.seed
    device: str = _D.device
    mixed_precision: bool = _D.mixed_precision


@dataclass
class FinetuneSchema:
    init_from: str | None = _D.finetune_from
    mode: str = _D.finetune_mode


@dataclass
class TrainSchema:
    """The typed schema hydra checks every override against."""

    defaults: list[Any] = field(default_factory=schema_defaults)
    output_dir: str = _D.output_dir
    data: DataSchema = field(default_factory=DataSchema)
    model: Any = None  # the ``model`` group's choice: one registered policy type's config
    train: OptimSchema = field(default_factory=OptimSchema)
    finetune: FinetuneSchema = field(default_factory=FinetuneSchema)
    progress: bool = _D.progress


def model_schema(name: str) -> type:
    """The ``model=<name>`` group entry: the type's config class, plus ``type: <name>``."""
    return dataclasses.make_dataclass(f"{name}_model", [("type", str, field(default=name))],
                                      bases=(POLICIES.get(name).config_class,))  # fmt: skip


ConfigStore.instance().store(name="train_schema", node=TrainSchema)
for _name in POLICIES.names():
    ConfigStore.instance().store(group="model", name=_name, node=model_schema(_name))


@hydra.main(config_path="configs", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from sim2real.training.run import train

    raw = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(raw, dict)
    sweep = HydraConfig.get().mode.name == "MULTIRUN"
    summary = train(from_settings(raw, output_dir=HydraConfig.get().runtime.output_dir if sweep else None))
    if "val" not in summary:  # a non-zero rank under torchrun
        return
    val = summary["val"]
    print(f"checkpoint: {summary['checkpoint']}; validation loss {val.get('loss', float('nan')):.4f}, "
          f"token accuracy {val.get('token_accuracy', float('nan')):.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
