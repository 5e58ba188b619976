"""The RT-1-style Vision-Language-Action policy (registered as ``"vla"``)."""

from sim2real.policies.vla.config import VLAConfig
from sim2real.policies.vla.model import VLAModel, action_loss

__all__ = ["VLAConfig", "VLAModel", "action_loss"]
