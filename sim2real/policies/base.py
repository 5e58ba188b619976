"""The interface every trainable policy type implements; training, checkpoints, closed-loop
evaluation and replay metrics use a policy through it only.

A policy type is a folder (``policies/vla``, ``policies/bc``) holding a config dataclass and an
``nn.Module`` registered in :data:`sim2real.policies.registry.POLICIES`, plus a
``configs/policy/<name>.yaml`` for evaluation. Types built on the shared encoders extend
:class:`sim2real.policies.vla.model.EncoderPolicy` and add a head, a loss and a decoding.

Batch layout (see :mod:`sim2real.policies.synthetic`): ``images[camera]`` uint8
(B, To, H, W, 3), ``state`` float32 (B, To, 14), ``instruction`` list[str] (B), ``obs_mask``
bool (B, To); for the loss also ``actions`` float32 (B, Ta, 7) and ``action_mask`` bool (B, Ta).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, Self

import torch

from sim2real.policies.tokenizer import ActionTokenizer


class PolicyConfig(Protocol):
    """A policy type's config: a dataclass with the observation/action layout and ``to_dict``/``from_dict``."""

    cameras: tuple[str, ...]
    image_size: int  # px, square
    history: int  # observation frames To
    chunk: int  # actions per prediction Ta
    action_dim: int
    state_dim: int

    def to_dict(self) -> dict[str, Any]: ...

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self: ...


class TrainablePolicy(Protocol):
    """What a registered policy model provides (an ``nn.Module``; ``config_class(...)`` builds its config).

    Training: ``output = model(batch)`` (through any DDP wrapper), then
    ``compute_loss(output, batch, tokenizer) -> (loss, metrics)``; the metrics are floats
    ``loss``, ``token_accuracy``, ``action_l1`` (original units) and ``count``.
    Acting (one frame at a time, with a history of encoded frames): ``embed_instructions``,
    ``encode_frames``, ``decode`` and ``output_to_actions``. The ``tokenizer`` is the action
    space's spec (1st/99th percentiles and bins) that every checkpoint keeps.
    """

    config_class: type[PolicyConfig]
    config: PolicyConfig
    #: accepted ``decoding`` values, the first being the type's own default
    decodings: tuple[str, ...]

    def __init__(self, config: Any = None, load_pretrained: bool = True) -> None: ...

    def set_normalization(self, stats: Mapping[str, Any]) -> None:
        """Take the dataset statistics (``state_mean``/``state_std`` ...) into the model's buffers."""

    def __call__(self, batch: Mapping[str, Any]) -> torch.Tensor: ...

    def compute_loss(
        self, output: torch.Tensor, batch: Mapping[str, Any], tokenizer: ActionTokenizer
    ) -> tuple[torch.Tensor, dict[str, float]]: ...

    def output_to_actions(self, output: torch.Tensor, tokenizer: ActionTokenizer, decoding: str) -> torch.Tensor:
        """The head's prediction for B samples -> actions float32 (B, Ta, A) in original units."""

    def predict_actions(self, batch: Mapping[str, Any], tokenizer: ActionTokenizer) -> torch.Tensor:
        """The point prediction of a batch: float32 (B, Ta, A) in original units."""

    def embed_instructions(self, instructions: Sequence[str]) -> torch.Tensor:
        """B strings -> float32 (B, L)."""

    def encode_frames(
        self, images: Mapping[str, torch.Tensor], state: torch.Tensor | None, lang: torch.Tensor
    ) -> torch.Tensor:
        """images[camera] uint8 (B, T, H, W, 3), state (B, T, 14), lang (B, L) -> per-frame tokens (B, T, ...)."""

    def decode(
        self, obs_tokens: torch.Tensor, lang: torch.Tensor, obs_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Tokens of the last ``T <= To`` frames -> the head's prediction for the last frame."""

    def save_files(self, folder: Path) -> None:
        """Write the files the type keeps beside its weights (e.g. a language cache)."""

    def load_files(self, folder: Path) -> None:
        """Read back what :meth:`save_files` wrote."""


class VisualPolicy(Protocol):
    """Optional: policies with per-camera encoder features (visual gap, feature plots) and
    attention maps (the evaluation report's attention figure)."""

    def encode_images(
        self, images: Mapping[str, torch.Tensor], instruction: Sequence[str] | None = None
    ) -> dict[str, torch.Tensor]: ...

    def attention_maps(
        self, images: Mapping[str, torch.Tensor], instruction: Sequence[str], upsample: bool = True
    ) -> dict[str, torch.Tensor]: ...
