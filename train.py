"""Train a policy (hydra). The keys, types and defaults are :class:`sim2real.training.config.TrainConfig`'s
(``data.*``, ``train.*``, ``finetune.*``, ``output_dir``, ``progress``); ``model=<type>`` chooses the
registered policy type (``vla``, the default; ``bc``), ``model.<field>=...`` its config class's fields.

python train.py data.path=data/pick_place/zarr output_dir=runs/vla train.max_steps=20000
python train.py model=bc data.path=data/pick_place/zarr output_dir=runs/bc
python train.py -m train.lr=1e-4,3e-4 data.max_episodes=50,200 data.path=data/all/zarr output_dir=runs/sweep
torchrun --nproc_per_node=2 train.py data.path=... output_dir=runs/ddp   # multi-GPU (DDP)
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any

import hydra
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from sim2real.entrypoint import runtime_config, schema_defaults
from sim2real.policies import POLICIES
from sim2real.training.config import MODEL_FROM_DATA, TrainConfig


@dataclass
class TrainSchema(TrainConfig):
    """:class:`TrainConfig` with the defaults list that turns the entry-point guard on; ``model``
    is the ``model`` group's choice."""

    defaults: list[Any] = field(default_factory=schema_defaults)
    model: Any = None


def model_schema(name: str) -> type:
    """The ``model=<name>`` group entry: ``type: <name>`` and the fields of the type's config class,
    with their defaults; the fields ``data.*`` sets (:data:`MODEL_FROM_DATA`) are ``None`` (set
    otherwise, the run refuses them). A plain dataclass: the run validates the values."""
    config_class = POLICIES.get(name).config_class
    types = typing.get_type_hints(config_class)
    fields: list[tuple[str, Any, Any]] = [("type", str, field(default=name))]
    for item in dataclasses.fields(config_class):
        if item.name in MODEL_FROM_DATA:
            fields.append((item.name, Any, field(default=None)))
        else:
            fields.append(
                (item.name, types[item.name], field(default=item.default, default_factory=item.default_factory))
            )
    return dataclasses.make_dataclass(f"{name}_model", fields)


ConfigStore.instance().store(name="train_schema", node=TrainSchema)
for _name in POLICIES.names():
    ConfigStore.instance().store(group="model", name=_name, node=model_schema(_name))


@hydra.main(config_path="configs", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from sim2real.training.run import train

    config = runtime_config(cfg, TrainConfig)
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
