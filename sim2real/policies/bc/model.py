"""Behaviour cloning with a continuous regression head: the baseline that 256-bin tokens must beat.

The VLA's encoders and transformer (:class:`sim2real.policies.vla.model.EncoderPolicy`) with a
head that regresses the whole action chunk ``(Ta, A)`` in the tokenizer's normalised units:
each dimension scaled so that its 1st/99th training percentiles map to -1/+1 (the range the
VLA's bins cover). The loss is the masked MSE (or L1) in those units; the prediction, scaled
back, is the action. The checkpoint's ``tokenizer.json`` holds the scaling.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from sim2real.policies.bc.config import BCConfig
from sim2real.policies.registry import POLICIES
from sim2real.policies.tokenizer import ActionTokenizer
from sim2real.policies.vla.model import EncoderPolicy

Batch = Mapping[str, Any]


@POLICIES.register("bc")
class BCModel(EncoderPolicy):
    """The BC policy network; ``forward(batch) -> actions (B, Ta, A)`` in normalised units ([-1, 1]
    over the training actions' 1st-99th percentiles)."""

    config_class = BCConfig
    config: BCConfig
    #: the regression output is the point estimate itself (with the MSE loss, of the mean action,
    #: which is what the VLA's ``expectation`` decoding reads from its bins)
    decodings = ("expectation",)

    def __init__(self, config: BCConfig | None = None, load_pretrained: bool = True) -> None:
        super().__init__(config, load_pretrained)

    def _build_head(self, width: int) -> nn.Module:
        cfg, dim = self.config, self.config.embed_dim
        head = nn.Sequential(nn.Linear(width, dim), nn.GELU(), nn.Linear(dim, cfg.chunk * cfg.action_dim))
        nn.init.zeros_(head[-1].weight)  # every action at the middle of its range at start
        nn.init.zeros_(head[-1].bias)
        return head

    def _head_output(self, readouts: torch.Tensor) -> torch.Tensor:
        out = self.head(readouts)
        return out.view(*out.shape[:-1], self.config.chunk, self.config.action_dim)

    def compute_loss(
        self, output: torch.Tensor, batch: Batch, tokenizer: ActionTokenizer
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Masked regression loss of normalised actions (B, Ta, A), and metrics; see :func:`regression_loss`."""
        return regression_loss(output.float(), batch, tokenizer, self.config.loss)

    def output_to_actions(self, output: torch.Tensor, tokenizer: ActionTokenizer, decoding: str) -> torch.Tensor:
        """Normalised actions (B, Ta, A) -> actions (B, Ta, A) in original units."""
        if decoding not in self.decodings:
            raise ValueError(f"decoding={decoding!r}: expected one of {', '.join(self.decodings)}")
        return denormalize(output, tokenizer)


def denormalize(normalized: torch.Tensor, tokenizer: ActionTokenizer) -> torch.Tensor:
    """Inverse of :meth:`ActionTokenizer.normalize` inside the range: (..., A) in [-1, 1] ->
    float32 (..., A) in original units (a dimension without spread stays at its 1st percentile)."""
    low = torch.as_tensor(tokenizer.p01, dtype=torch.float32, device=normalized.device)
    span = torch.as_tensor(np.where(tokenizer.degenerate, 0.0, tokenizer.span), dtype=torch.float32,
                           device=normalized.device)  # fmt: skip
    return low + (normalized.float() + 1.0) * 0.5 * span


def regression_loss(
    output: torch.Tensor, batch: Batch, tokenizer: ActionTokenizer, loss: str = "mse"
) -> tuple[torch.Tensor, dict[str, float]]:
    """MSE (or L1) of normalised predictions (B, Ta, A) against ``batch["actions"]`` (B, Ta, A)
    normalised the same way (:meth:`ActionTokenizer.normalize`).

    Steps where ``batch["action_mask"]`` (B, Ta) is False count in neither loss nor metrics.
    Metrics (floats), the VLA's: ``loss``, ``token_accuracy`` (the prediction falls in the true
    action's bin of the tokenizer, for comparison with the VLA), ``action_l1`` (mean |prediction -
    true action|, original units), ``count`` (valid elements).
    """
    actions = batch["actions"].to(output.device)
    if actions.shape != output.shape:
        raise ValueError(f"actions of shape {tuple(actions.shape)} for predictions of shape {tuple(output.shape)}")
    mask = batch.get("action_mask")
    if mask is None:
        weight = torch.ones_like(actions, dtype=torch.float32)
    else:
        weight = mask.to(output.device, torch.float32).unsqueeze(-1).expand_as(actions)
    count = weight.sum().clamp_min(1.0)
    target = tokenizer.normalize(actions).float()
    if loss == "mse":
        error = F.mse_loss(output, target, reduction="none")
    elif loss == "l1":
        error = F.l1_loss(output, target, reduction="none")
    else:
        raise ValueError(f"unknown loss {loss!r}")
    value = (error * weight).sum() / count
    with torch.no_grad():
        predicted = denormalize(output, tokenizer)
        accuracy = ((tokenizer.encode(predicted) == tokenizer.encode(actions)).float() * weight).sum() / count
        l1 = ((predicted - actions.float()).abs().nan_to_num(0.0) * weight).sum() / count
    metrics = {
        "loss": float(value.detach()),
        "token_accuracy": float(accuracy),
        "action_l1": float(l1),
        "count": float(weight.sum()),
    }
    return value, metrics
