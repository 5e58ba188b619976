"""Configuration of the regression-head BC policy (a plain dataclass; hydra/OmegaConf-compatible)."""

from __future__ import annotations

from dataclasses import dataclass

from sim2real.policies.vla.config import EncoderConfig

#: what ``loss`` accepts: mean squared or mean absolute error on actions scaled to [-1, 1]
BC_LOSSES = ("mse", "l1")


@dataclass
class BCConfig(EncoderConfig):
    """:class:`sim2real.policies.bc.model.BCModel`'s settings: the shared encoders'
    (:class:`EncoderConfig`, same defaults as the VLA's) and the regression loss."""

    loss: str = "mse"  # mse: the head estimates the mean action; l1: the median

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first inconsistent field."""
        super().validate()
        if self.loss not in BC_LOSSES:
            raise ValueError(f"unknown loss {self.loss!r}; known: {', '.join(BC_LOSSES)}")
