"""Policies: the RT-1-style VLA model, a regression-head BC baseline, and everything around them.

=====================  ==============================================================
``tokenizer``          per-dimension 256-bin action tokenizer (1st/99th percentiles)
``language``           frozen MiniLM sentence encoder with a cache, or a learned embedding
``base``               the interface every trainable policy type implements (:class:`TrainablePolicy`)
``vla/``               ``config.py`` (:class:`VLAConfig`), ``model.py`` (:class:`VLAModel`, and the
                       shared :class:`EncoderPolicy`), ``vision.py`` (encoders, FiLM, TokenLearner),
                       ``transformer.py``
``bc/``                :class:`BCModel`: the same encoders, a continuous regression head (no tokens)
``checkpoint``         folder checkpoints (safetensors + JSON, versioned, no pickle)
``training``           optimiser, schedule, EMA, ``train_step``, ``evaluate``, fine-tuning
``inference``          :class:`ChunkPolicy` (``VLAPolicy``): ``reset()`` / ``act(observation,
                       instruction)`` / ``describe()``; :func:`load_policy` (checkpoint -> policy)
``synthetic``          a synthetic stand-in for the training loader (tests, benchmarks)
=====================  ==============================================================

``POLICIES.get(name)`` is a policy model class (``vla`` is registered in
:mod:`sim2real.policies.vla.model`, ``bc`` in :mod:`sim2real.policies.bc.model`);
``build_policy(name, config)`` instantiates one. A new type is a folder plus one registration.
Nothing here imports a simulator; MiniLM and peft are imported only when used.
"""

from __future__ import annotations

from typing import Any

from sim2real.policies.bc import BCConfig, BCModel
from sim2real.policies.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from sim2real.policies.inference import ChunkPolicy, VLAPolicy, load_policy
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
    "BCConfig",
    "BCModel",
    "CheckpointError",
    "ChunkPolicy",
    "VLAConfig",
    "VLAModel",
    "VLAPolicy",
    "build_policy",
    "load_checkpoint",
    "load_policy",
    "save_checkpoint",
]
