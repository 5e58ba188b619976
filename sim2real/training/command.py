"""The hydra schema of ``train.py``: :class:`TrainConfig` with the entry point's defaults list, and
one ``model=<type>`` group entry per registered policy type.

It lives in an importable module (not the script) so that launchers which pickle the job
(submitit, Ray) refer to the classes by name and the job rebuilds the same config types.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore

from sim2real.entrypoint import schema_defaults
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
