"""Train the VLA policy (hydra). See configs/train.yaml.

python train.py data.path=data/pick_place/zarr output_dir=runs/vla train.max_steps=20000
python train.py -m train.lr=1e-4,3e-4 data.max_episodes=50,200 data.path=data/all/zarr output_dir=runs/sweep
torchrun --nproc_per_node=2 train.py data.path=... output_dir=runs/ddp   # multi-GPU (DDP)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import hydra
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from omegaconf import MISSING, DictConfig, OmegaConf

from sim2real.policies.vla.config import VLAConfig


@dataclass
class DataSchema:
    path: str = MISSING
    cameras: list[str] = field(default_factory=lambda: ["front", "wrist"])
    history: int = 1
    chunk: int = 4
    max_episodes: int | None = None
    val_fraction: float = 0.05
    workers: int = 2
    batch_size: int = 64


@dataclass
class OptimSchema:
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


@dataclass
class FinetuneSchema:
    init_from: str | None = None
    mode: str = "head"


@dataclass
class TrainSchema:
    """The typed schema hydra checks every override against."""

    output_dir: str = "runs/vla"
    data: DataSchema = field(default_factory=DataSchema)
    model: VLAConfig = field(default_factory=VLAConfig)
    train: OptimSchema = field(default_factory=OptimSchema)
    finetune: FinetuneSchema = field(default_factory=FinetuneSchema)
    progress: bool = True


ConfigStore.instance().store(name="train_schema", node=TrainSchema)


@hydra.main(config_path="configs", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from sim2real.training.run import TrainConfig, train

    raw = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(raw, dict)
    output_dir = raw["output_dir"]
    if HydraConfig.get().mode.name == "MULTIRUN":
        output_dir = HydraConfig.get().runtime.output_dir
    data, optim = raw["data"], raw["train"]
    config = TrainConfig(
        data_path=data["path"], output_dir=output_dir, cameras=tuple(data["cameras"]), history=data["history"],
        chunk=data["chunk"], max_episodes=data["max_episodes"], val_fraction=data["val_fraction"],
        loader_workers=data["workers"], batch_size=data["batch_size"],
        model={k: v for k, v in raw["model"].items() if k not in ("cameras", "history", "chunk")},
        finetune_from=raw["finetune"]["init_from"], finetune_mode=raw["finetune"]["mode"], progress=raw["progress"],
        **optim,
    )  # fmt: skip
    summary = train(config)
    if "val" not in summary:  # a non-zero rank under torchrun
        return
    val = summary["val"]
    print(f"checkpoint: {summary['checkpoint']}; validation loss {val.get('loss', float('nan')):.4f}, "
          f"token accuracy {val.get('token_accuracy', float('nan')):.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
