"""The RT-1-style Vision-Language-Action policy (registered as ``"vla"``), and the encoders
(:class:`EncoderPolicy`, :class:`EncoderConfig`) other policy types share."""

from sim2real.policies.vla.config import EncoderConfig, VLAConfig
from sim2real.policies.vla.model import EncoderPolicy, VLAModel, action_loss

__all__ = ["EncoderConfig", "EncoderPolicy", "VLAConfig", "VLAModel", "action_loss"]
