"""The policy registry: ``POLICIES.get("vla")`` is the model class, filled where each policy is defined."""

from __future__ import annotations

from sim2real.registry import Registry

#: name -> policy model class: an ``nn.Module`` with a ``config_class`` attribute (a dataclass with
#: ``to_dict``/``from_dict``), a ``config`` attribute and ``__init__(config, load_pretrained=True)``.
POLICIES: Registry[type] = Registry[type]("policy")
