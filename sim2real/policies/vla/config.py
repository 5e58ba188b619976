"""Configuration of the RT-1-style VLA policy (a plain dataclass; hydra/OmegaConf-compatible).

:class:`EncoderConfig` holds what every policy built on the shared encoders has (observation
layout, vision, language, transformer); :class:`VLAConfig` adds the 256-bin action head's
settings. Other policy types extend :class:`EncoderConfig` the same way (``policies/bc``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Self

VISION_ENCODERS = ("small_cnn", "resnet18", "vit")
LANGUAGE_ENCODERS = ("minilm", "learned")


@dataclass
class EncoderConfig:
    """The observation layout, encoders and transformer of :class:`sim2real.policies.vla.model.EncoderPolicy`.

    Shapes: ``To = history``, ``Ta = chunk``, ``S = tokens_per_frame``, ``D = embed_dim``.
    The defaults are the CPU-first configuration (two 128x128 cameras, To=1, Ta=4; batch 64 in train.py).
    """

    # --- observation / action layout
    cameras: tuple[str, ...] = ("front", "wrist")
    image_size: int = 128
    history: int = 1
    chunk: int = 4
    action_dim: int = 7
    state_dim: int = 14

    # --- vision
    vision_encoder: str = "small_cnn"
    vision_width: int = 16  # small_cnn: channels of the first conv; doubled per stage up to 4x
    vision_weights: str | None = None  # local file (.safetensors / .pt) to initialise the encoder; never downloaded
    share_vision_encoder: bool = False  # one encoder for all cameras instead of one per camera
    film: bool = True  # FiLM-condition every vision stage on the instruction embedding
    tokens_per_frame: int = 4  # TokenLearner output tokens per camera per frame
    token_coordinates: bool = True  # append each token's soft-argmax (x, y) on the grid (+ Fourier features)
    keypoints: int = 32  # spatial-softmax keypoints per camera, fed as one more token per camera (0: off)

    # --- language
    language: str = "minilm"
    language_dim: int = 128  # learned embedding width (MiniLM is always 384)
    language_buckets: int = 4096  # hashing buckets of the learned embedding
    language_vocab: tuple[str, ...] | None = None  # word vocabulary instead of hashing (learned only)
    language_token: bool = True  # also feed the instruction embedding to the transformer as one token

    # --- transformer + head
    embed_dim: int = 128
    layers: int = 2
    heads: int = 4
    mlp_ratio: float = 4.0
    dropout: float = 0.1
    use_proprio: bool = True
    readout_tokens: int = 1

    extra: dict[str, Any] = field(default_factory=dict)  # free-form notes carried into checkpoints

    def __post_init__(self) -> None:
        self.cameras = tuple(self.cameras)
        if self.language_vocab is not None:
            self.language_vocab = tuple(self.language_vocab)
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first inconsistent field."""
        if self.vision_encoder not in VISION_ENCODERS:
            raise ValueError(f"unknown vision_encoder {self.vision_encoder!r}; known: {', '.join(VISION_ENCODERS)}")
        if self.language not in LANGUAGE_ENCODERS:
            raise ValueError(f"unknown language {self.language!r}; known: {', '.join(LANGUAGE_ENCODERS)}")
        if not self.cameras:
            raise ValueError("cameras must name at least one camera")
        if len(set(self.cameras)) != len(self.cameras):
            raise ValueError(f"duplicate camera names in {self.cameras}")
        if self.embed_dim % self.heads:
            raise ValueError(f"embed_dim {self.embed_dim} is not divisible by heads {self.heads}")
        for name in ("image_size", "history", "chunk", "action_dim", "tokens_per_frame", "layers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.readout_tokens < 1:
            raise ValueError("readout_tokens must be >= 1")
        if self.image_size % 16 and self.vision_encoder in ("small_cnn", "vit"):
            raise ValueError(f"image_size must be a multiple of 16 for {self.vision_encoder}, got {self.image_size}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (tuples become lists)."""
        out = dataclasses.asdict(self)
        out["cameras"] = list(self.cameras)
        out["language_vocab"] = list(self.language_vocab) if self.language_vocab is not None else None
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """Inverse of :meth:`to_dict`; unknown keys are an error naming them."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown {cls.__name__} keys {unknown}; known keys: {sorted(known)}")
        return cls(**data)

    def replace(self, **changes: Any) -> Self:
        """A copy with ``changes`` applied (validated)."""
        return dataclasses.replace(self, **changes)


@dataclass
class VLAConfig(EncoderConfig):
    """Every architectural choice of :class:`sim2real.policies.vla.model.VLAModel`: the encoders'
    (:class:`EncoderConfig`) and the action head's, ``Ta x A`` tokens of ``bins`` bins each."""

    bins: int = 256
    target_sigma_bins: float = 2.0  # training targets: Gaussian of this std (bins) around the action; 0 = one-hot

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first inconsistent field."""
        super().validate()
        if self.bins < 1:
            raise ValueError(f"bins must be >= 1, got {self.bins}")
        if self.target_sigma_bins < 0:
            raise ValueError(f"target_sigma_bins must be >= 0, got {self.target_sigma_bins}")
