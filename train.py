"""Train a policy (hydra). The keys, types and defaults are :class:`sim2real.training.config.TrainConfig`'s
(``data.*``, ``train.*``, ``finetune.*``, ``output_dir``, ``progress``); ``model=<type>`` chooses the
registered policy type (``vla``, the default; ``bc``), ``model.<field>=...`` its config class's fields.

python train.py data.path=data/pick_place/zarr output_dir=runs/vla train.max_steps=20000
python train.py model=bc data.path=data/pick_place/zarr output_dir=runs/bc
python train.py -m train.lr=1e-4,3e-4 data.max_episodes=50,200 data.path=data/all/zarr output_dir=runs/sweep
torchrun --nproc_per_node=2 train.py data.path=... output_dir=runs/ddp   # multi-GPU (DDP)
"""

from __future__ import annotations

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from sim2real.entrypoint import runtime_config
from sim2real.training.command import TrainSchema


@hydra.main(config_path="configs", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from sim2real.training.run import train

    config = runtime_config(cfg, TrainSchema)
    if HydraConfig.get().mode.name == "MULTIRUN":  # each run of a sweep writes into its job folder
        config.output_dir = HydraConfig.get().runtime.output_dir
    summary = train(config)
    if "val" not in summary:  # a non-zero rank under torchrun
        return
    val = summary["val"]
    print(f"checkpoint: {summary['checkpoint']}; validation loss {val.get('loss', float('nan')):.4f}, "
          f"token accuracy {val.get('token_accuracy', float('nan')):.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
