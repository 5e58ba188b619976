"""Policies: the RT-1-style VLA model and everything around it.

=====================  ==============================================================
``tokenizer``          per-dimension 256-bin action tokenizer (1st/99th percentiles)
``language``           frozen MiniLM sentence encoder with a cache, or a learned embedding
``vla/``               ``config.py`` (:class:`VLAConfig`), ``model.py`` (:class:`VLAModel`),
                       ``vision.py`` (encoders, FiLM, TokenLearner), ``transformer.py``
``checkpoint``         folder checkpoints (safetensors + JSON, versioned, no pickle)
``training``           optimiser, schedule, EMA, ``train_step``, ``evaluate``, fine-tuning
``inference``          :class:`VLAPolicy`: ``reset()`` / ``act(observation, instruction)`` / ``describe()``;
                       :func:`load_policy` (a checkpoint folder -> a policy ready to act)
``synthetic``          a synthetic stand-in for the training loader (tests, benchmarks)
=====================  ==============================================================

``POLICIES.get(name)`` is a policy model class (``vla`` is registered in
:mod:`sim2real.policies.vla.model`); ``build_policy(name, config)`` instantiates one.
Nothing here imports a simulator; MiniLM and peft are imported only when used.
"""

from __future__ import annotations

from typing import Any

from sim2real.policies.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from sim2real.policies.inference import VLAPolicy, load_policy
from sim2real.policies.registry import POLICIES
from sim2real.policies.tokenizer import ACTION_NAMES, ActionTokenizer
from sim2real.policies.vla import VLAConfig, VLAModel


def build_policy(name: str, config: Any = None, **kwargs: Any) -> Any:
    """Instantiate the policy registered as ``name`` (its default config when ``config`` is None)."""
    cls = POLICIES.get(name)
    return cls(config if config is not None else cls.config_class(), **kwargs)


__all__ = [
    "ACTION_NAMES",
    "POLICIES",
    "ActionTokenizer",
    "CheckpointError",
    "VLAConfig",
    "VLAModel",
    "VLAPolicy",
    "build_policy",
    "load_checkpoint",
    "load_policy",
    "save_checkpoint",
]
