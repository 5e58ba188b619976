"""Behaviour cloning with a continuous regression head (registered as ``"bc"``): the VLA's
encoders and transformer, the action chunk regressed directly (no tokens)."""

from sim2real.policies.bc.config import BCConfig
from sim2real.policies.bc.model import BCModel, regression_loss

__all__ = ["BCConfig", "BCModel", "regression_loss"]
