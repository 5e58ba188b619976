"""RT-1-style Vision-Language-Action model (Brohan et al., 2022), sized for CPU training.

Per frame and camera: uint8 image -> vision encoder FiLM-conditioned on the instruction ->
feature grid (C, h, w) -> TokenLearner -> ``S`` tokens -> linear to ``D``. Per frame, the
camera tokens, an optional proprio-state token and ``R`` readout tokens form one block; the
blocks of the ``To`` history frames (preceded by an optional instruction token) go through a
block-causal transformer: a token of frame ``t`` attends to the tokens of frames ``<= t``
(never to padded frames, never to readout tokens other than itself). The readout tokens of
the last frame predict ``Ta x A x bins`` logits: a chunk of ``Ta`` future actions, each of
the ``A`` dimensions as one of ``bins`` uniform bins (see :mod:`sim2real.policies.tokenizer`).
Everything before the head is :class:`EncoderPolicy`, which other policy types extend with
their own head (``policies/bc``: a continuous regression head).

Batch layout (see :mod:`sim2real.policies.synthetic`):
``images[camera]`` uint8 (B, To, H, W, 3), ``state`` float32 (B, To, 14),
``instruction`` list[str] (B), ``obs_mask`` bool (B, To); for the loss also
``actions`` float32 (B, Ta, 7) and ``action_mask`` bool (B, Ta).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from sim2real.policies.language import LearnedTextEmbedding, MiniLMTextEncoder, build_text_encoder
from sim2real.policies.registry import POLICIES
from sim2real.policies.tokenizer import ActionTokenizer
from sim2real.policies.vla.config import EncoderConfig, VLAConfig
from sim2real.policies.vla.transformer import Transformer
from sim2real.policies.vla.vision import (
    SpatialKeypoints,
    TokenCoordinates,
    TokenLearner,
    VisionEncoder,
    build_vision_encoder,
    load_vision_weights,
)

Batch = Mapping[str, Any]


#: the file beside the weights that holds cached MiniLM instruction embeddings
LANGUAGE_CACHE_FILE = "language_cache.npz"


class EncoderPolicy(nn.Module):
    """The encoders and transformer every policy type built on them shares; a subclass adds
    its action head (:meth:`_build_head`, :meth:`_head_output`), its loss and its decoding
    (see :class:`sim2real.policies.base.TrainablePolicy` for the whole interface).

    ``forward(batch) -> output``: the head's raw prediction for the last frame (shape per type).
    ``load_pretrained=False`` skips ``config.vision_weights`` (used when a checkpoint provides
    every weight anyway).
    """

    config_class: type[EncoderConfig] = EncoderConfig
    #: how predictions become actions (``decoding=``); the first is the type's own default
    decodings: tuple[str, ...] = ()

    def __init__(self, config: EncoderConfig | None = None, load_pretrained: bool = True) -> None:
        super().__init__()
        cfg = config if config is not None else self.config_class()
        self.config = cfg
        dim = cfg.embed_dim

        self.text: MiniLMTextEncoder | LearnedTextEmbedding = build_text_encoder(
            cfg.language, dim=cfg.language_dim, num_buckets=cfg.language_buckets, vocab=cfg.language_vocab
        )
        lang_dim = self.text.dim
        cond_dim = lang_dim if cfg.film else None

        encoder_names = ("shared",) if cfg.share_vision_encoder else cfg.cameras
        self.vision = nn.ModuleDict(
            {
                name: build_vision_encoder(
                    cfg.vision_encoder, image_size=cfg.image_size, width=cfg.vision_width, cond_dim=cond_dim
                )
                for name in encoder_names
            }
        )
        if cfg.vision_weights and load_pretrained:
            for encoder in self.vision.values():
                load_vision_weights(encoder, cfg.vision_weights)  # type: ignore[arg-type]
        self.vision.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        first: VisionEncoder = next(iter(self.vision.values()))  # type: ignore[assignment]
        mean = torch.tensor(first.image_mean)
        std = torch.tensor(first.image_std)
        self.register_buffer("image_scale", 1.0 / (255.0 * std), persistent=False)
        self.register_buffer("image_shift", -mean / std, persistent=False)
        uniform = bool((mean == mean[0]).all() and (std == std[0]).all())
        # (scale, shift) as Python floats when all channels share them: scalar ops vectorise on
        # channels-last images, a 3-wide broadcast does not (5x slower on CPU)
        self._scalar_normalization = (float(1.0 / (255.0 * std[0])), float(-mean[0] / std[0])) if uniform else None

        self.token_learner = nn.ModuleDict(
            {cam: TokenLearner(first.out_channels, cfg.tokens_per_frame) for cam in cfg.cameras}
        )
        self.token_coordinates = TokenCoordinates() if cfg.token_coordinates else None
        coordinate_dim = self.token_coordinates.dim if self.token_coordinates is not None else 0
        self.token_proj = nn.Linear(first.out_channels + coordinate_dim, dim)
        self.keypoints = nn.ModuleDict(
            {cam: SpatialKeypoints(first.out_channels, cfg.keypoints) for cam in cfg.cameras} if cfg.keypoints else {}
        )
        self.keypoint_proj = nn.Linear(2 * cfg.keypoints, dim) if cfg.keypoints else None

        self.register_buffer("state_mean", torch.zeros(cfg.state_dim))
        self.register_buffer("state_std", torch.ones(cfg.state_dim))
        self.proprio_proj = nn.Linear(cfg.state_dim, dim) if cfg.use_proprio else None
        self.lang_proj = nn.Linear(lang_dim, dim) if cfg.language_token else None

        self.tokens_per_camera = cfg.tokens_per_frame + int(cfg.keypoints > 0)
        self.num_obs_tokens = len(cfg.cameras) * self.tokens_per_camera + int(cfg.use_proprio)
        self.readout = nn.Parameter(torch.randn(cfg.readout_tokens, dim) * 0.02)
        self.frame_embed = nn.Parameter(torch.randn(self.num_obs_tokens + cfg.readout_tokens, dim) * 0.02)
        self.time_embed = nn.Parameter(torch.randn(cfg.history, dim) * 0.02)
        self.lang_embed = nn.Parameter(torch.randn(dim) * 0.02) if cfg.language_token else None
        self.transformer = Transformer(dim, cfg.layers, cfg.heads, cfg.mlp_ratio, cfg.dropout)
        self.head = self._build_head(cfg.readout_tokens * dim)
        self._mask_cache: dict[tuple[int, str], tuple[torch.Tensor, torch.Tensor]] = {}
        self._readout_cache: dict[tuple[int, int, bool, str], torch.Tensor] = {}

    # ------------------------------------------------------------------ the type's own parts
    def _build_head(self, width: int) -> nn.Module:
        """The action head: readout features (..., ``width``) -> the type's raw prediction."""
        raise NotImplementedError

    def _head_output(self, readouts: torch.Tensor) -> torch.Tensor:
        """Readout features (..., R * D) -> the head's prediction (shape per policy type)."""
        raise NotImplementedError

    def compute_loss(
        self, output: torch.Tensor, batch: Batch, tokenizer: ActionTokenizer
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """The training loss of ``output = self(batch)`` against ``batch["actions"]`` (B, Ta, A),
        masked by ``batch["action_mask"]``, and float metrics: ``loss``, ``token_accuracy``,
        ``action_l1`` (original units), ``count`` (valid action elements)."""
        raise NotImplementedError

    def output_to_actions(self, output: torch.Tensor, tokenizer: ActionTokenizer, decoding: str) -> torch.Tensor:
        """The head's prediction -> action chunk float32 (B, Ta, A) in original units."""
        raise NotImplementedError

    @torch.no_grad()
    def predict_actions(self, batch: Batch, tokenizer: ActionTokenizer) -> torch.Tensor:
        """The point prediction of the action chunk, float32 (B, Ta, A) in original units
        (the first of :attr:`decodings`, except where a type says otherwise)."""
        return self.output_to_actions(self(batch), tokenizer, self.decodings[0])

    def save_files(self, folder: Path) -> None:
        """Write the files this policy keeps beside its weights: cached MiniLM instruction embeddings."""
        if isinstance(self.text, MiniLMTextEncoder) and self.text.cache:
            self.text.save_cache(folder / LANGUAGE_CACHE_FILE)

    def load_files(self, folder: Path) -> None:
        """Read back what :meth:`save_files` wrote (a file that is absent is skipped)."""
        if isinstance(self.text, MiniLMTextEncoder) and (folder / LANGUAGE_CACHE_FILE).is_file():
            self.text.load_cache(folder / LANGUAGE_CACHE_FILE)

    # ------------------------------------------------------------------ inputs
    @property
    def device(self) -> torch.device:
        return self.token_proj.weight.device

    def set_normalization(self, stats: Mapping[str, Any]) -> None:
        """Copy ``state_mean``/``state_std`` (D_s,) from a dataset statistics dict into the model."""
        mean = torch.as_tensor(np.asarray(stats["state_mean"], dtype=np.float32))
        std = torch.as_tensor(np.asarray(stats["state_std"], dtype=np.float32))
        if mean.shape != self.state_mean.shape or std.shape != self.state_std.shape:
            raise ValueError(f"state stats of shape {tuple(mean.shape)}, model state_dim is {self.config.state_dim}")
        std = torch.where(torch.isfinite(std) & (std > 1e-6), std, torch.ones_like(std))
        self.state_mean.copy_(torch.nan_to_num(mean))
        self.state_std.copy_(std)

    def preprocess_images(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (..., H, W, 3) -> normalised float (N, 3, S, S) with ``S = config.image_size``."""
        if images.shape[-1] != 3:
            raise ValueError(f"expected channels-last RGB images (..., H, W, 3), got shape {tuple(images.shape)}")
        x = images.reshape(-1, *images.shape[-3:]).to(torch.float32, copy=True)  # (N, H, W, 3), ours to modify
        size = self.config.image_size
        if x.shape[1:3] != (size, size):
            x = F.interpolate(x.permute(0, 3, 1, 2), size=(size, size), mode="bilinear", antialias=True)
            x = x.permute(0, 2, 3, 1).contiguous()
        if self._scalar_normalization is not None:
            scale, shift = self._scalar_normalization
            x = x.mul_(scale).add_(shift)
        else:
            x = torch.addcmul(self.image_shift, x, self.image_scale)
        return x.permute(0, 3, 1, 2)  # (N, 3, S, S) in channels-last memory: the encoders' layout

    def embed_instructions(self, instructions: Sequence[str]) -> torch.Tensor:
        """list of B strings -> float32 (B, L) (L = 384 for MiniLM, ``language_dim`` if learned)."""
        if isinstance(instructions, str):
            raise TypeError("instructions must be a sequence of strings, not one string")
        return self.text.encode(list(instructions), self.device)

    def normalize_state(self, state: torch.Tensor) -> torch.Tensor:
        """float (..., D_s) -> standardised, NaN (unknown) -> 0."""
        return torch.nan_to_num((state.float() - self.state_mean) / self.state_std, nan=0.0, posinf=0.0, neginf=0.0)

    def _camera_images(self, images: Mapping[str, torch.Tensor]) -> list[torch.Tensor]:
        missing = [c for c in self.config.cameras if c not in images]
        if missing:
            raise KeyError(f"images lack cameras {missing}; the policy uses {list(self.config.cameras)}")
        return [images[c] for c in self.config.cameras]

    # ------------------------------------------------------------------ vision
    def _feature_maps(self, images: Mapping[str, torch.Tensor], cond: torch.Tensor | None) -> list[torch.Tensor]:
        """Per camera: uint8 (N, H, W, 3) (any leading dims flattened) -> features (N, C, h, w)."""
        per_camera = [self.preprocess_images(x) for x in self._camera_images(images)]
        if "shared" in self.vision:
            n = per_camera[0].shape[0]
            c = None if cond is None else cond.repeat(len(per_camera), 1)
            feats = self.vision["shared"](torch.cat(per_camera), c)
            return list(feats.split(n))
        return [self.vision[cam](x, cond) for cam, x in zip(self.config.cameras, per_camera, strict=True)]

    def encode_frames(
        self, images: Mapping[str, torch.Tensor], state: torch.Tensor | None, lang: torch.Tensor
    ) -> torch.Tensor:
        """Observation tokens of each frame, before time embedding and attention.

        images[camera]: uint8 (B, T, H, W, 3); state: float (B, T, D_s); lang: (B, L)
        -> tokens (B, T, N_obs, D) with ``N_obs = cameras * S (+ 1 proprio)``.
        """
        first = self._camera_images(images)[0]
        b, t = first.shape[:2]
        cond = lang.repeat_interleave(t, dim=0) if self.config.film else None  # (B*T, L)
        tokens = []
        for cam, features in zip(self.config.cameras, self._feature_maps(images, cond), strict=True):
            pooled, attention = self.token_learner[cam](features)  # (B*T, S, C), (B*T, S, h, w)
            if self.token_coordinates is not None:
                pooled = torch.cat([pooled, self.token_coordinates(attention)], dim=-1)
            camera_tokens = self.token_proj(pooled)  # (B*T, S, D)
            if self.keypoint_proj is not None:
                keypoint_token = self.keypoint_proj(self.keypoints[cam](features)).unsqueeze(1)  # (B*T, 1, D)
                camera_tokens = torch.cat([camera_tokens, keypoint_token], dim=1)
            tokens.append(camera_tokens)
        obs = torch.cat(tokens, dim=1)  # (B*T, cams * (S + keypoint token), D)
        if self.proprio_proj is not None:
            if state is None:
                raise ValueError("this policy uses proprio state (use_proprio=True) but no state was given")
            s = self.proprio_proj(self.normalize_state(state.reshape(b * t, -1)))  # (B*T, D)
            obs = torch.cat([obs, s.unsqueeze(1)], dim=1)
        return obs.view(b, t, self.num_obs_tokens, -1)

    # ------------------------------------------------------------------ sequence model
    def _static_mask(self, t: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """(L, L) bool attention mask for ``t`` all-valid frames, and the (L, L) identity."""
        key = (t, str(device))
        if key not in self._mask_cache:
            n_frame = self.num_obs_tokens + self.config.readout_tokens
            frame = torch.arange(t).repeat_interleave(n_frame)
            readout = torch.tensor([False] * self.num_obs_tokens + [True] * self.config.readout_tokens).repeat(t)
            if self.lang_proj is not None:
                frame = torch.cat([torch.tensor([-1]), frame])
                readout = torch.cat([torch.tensor([False]), readout])
            eye = torch.eye(len(frame), dtype=torch.bool)
            mask = (frame[None, :] <= frame[:, None]) & (~readout[None, :] | eye)  # [query, key]
            self._mask_cache[key] = (mask.to(device), eye.to(device))
        return self._mask_cache[key]

    def _readout_positions(self, t: int, offset: int, all_frames: bool, device: torch.device) -> torch.Tensor:
        """int64 sequence positions of the readout tokens of every frame, or of the last frame only."""
        key = (t, offset, all_frames, str(device))
        if key not in self._readout_cache:
            n_frame = self.num_obs_tokens + self.config.readout_tokens
            frames = torch.arange(t) if all_frames else torch.tensor([t - 1])
            pos = offset + frames[:, None] * n_frame + self.num_obs_tokens + torch.arange(self.config.readout_tokens)
            self._readout_cache[key] = pos.flatten().to(device)
        return self._readout_cache[key]

    def attention_mask(self, t: int, obs_mask: torch.Tensor | None, device: torch.device) -> torch.Tensor:
        """bool (B or 1, 1, L, L), True where query may attend key: block-causal over frames,
        padded frames (``obs_mask`` False) and other readout tokens hidden; every token sees itself."""
        static, eye = self._static_mask(t, device)
        if obs_mask is None or bool(obs_mask.all()):
            return static[None, None]
        n_frame = self.num_obs_tokens + self.config.readout_tokens
        valid = obs_mask.to(device=device, dtype=torch.bool).repeat_interleave(n_frame, dim=1)  # (B, T*n_frame)
        if self.lang_proj is not None:
            valid = torch.cat([valid.new_ones(valid.shape[0], 1), valid], dim=1)
        return (static[None] & (valid[:, None, :] | eye[None]))[:, None]

    def decode(
        self,
        obs_tokens: torch.Tensor,
        lang: torch.Tensor,
        obs_mask: torch.Tensor | None = None,
        all_timesteps: bool = False,
    ) -> torch.Tensor:
        """obs_tokens (B, T, N_obs, D), lang (B, L), obs_mask bool (B, T) -> logits.

        Returns (B, Ta, A, bins) from the last frame's readouts, or (B, T, Ta, A, bins) for every
        frame with ``all_timesteps`` (frame ``t``'s logits depend only on frames ``<= t``).
        ``T <= To``; frames are aligned to the end of the history window.
        """
        cfg = self.config
        b, t, n, d = obs_tokens.shape
        if t > cfg.history:
            raise ValueError(f"{t} frames given, the policy's history is {cfg.history}")
        time = self.time_embed[cfg.history - t :].view(1, t, 1, d)
        obs = obs_tokens + self.frame_embed[:n] + time
        readout = (self.readout + self.frame_embed[n:]).view(1, 1, -1, d) + time
        seq = torch.cat([obs, readout.expand(b, t, -1, d)], dim=2).reshape(b, -1, d)
        offset = 0
        if self.lang_proj is not None and self.lang_embed is not None:
            seq = torch.cat([(self.lang_proj(lang) + self.lang_embed).unsqueeze(1), seq], dim=1)
            offset = 1
        keep = self._readout_positions(t, offset, all_timesteps, seq.device)
        hidden = self.transformer(seq, self.attention_mask(t, obs_mask, seq.device), keep)  # (B, T' * R, D)
        readouts = hidden.view(b, -1, cfg.readout_tokens * d)  # (B, T', R * D), T' = T or 1
        if not all_timesteps:
            readouts = readouts[:, 0]
        return self._head_output(readouts)

    # ------------------------------------------------------------------ public API
    def forward(self, batch: Batch, all_timesteps: bool = False) -> torch.Tensor:
        """batch (see module doc) -> the head's prediction for the last frame, or for every
        frame (an extra ``To`` axis after ``B``) with ``all_timesteps``."""
        lang = self.embed_instructions(batch["instruction"])
        tokens = self.encode_frames(batch["images"], batch.get("state"), lang)
        return self.decode(tokens, lang, batch.get("obs_mask"), all_timesteps=all_timesteps)

    def loss(self, batch: Batch, tokenizer: ActionTokenizer) -> tuple[torch.Tensor, dict[str, float]]:
        """The training loss of ``batch`` and its metrics; see :meth:`compute_loss`."""
        return self.compute_loss(self(batch), batch, tokenizer)

    @torch.no_grad()
    def encode_images(
        self, images: Mapping[str, torch.Tensor], instruction: Sequence[str] | None = None
    ) -> dict[str, torch.Tensor]:
        """Per camera, the vision encoder's globally average-pooled features.

        images[camera]: uint8 (B, H, W, 3) or (B, T, H, W, 3) -> (B, C) or (B, T, C).
        ``instruction=None`` switches FiLM off (features independent of language, what a
        Fréchet distance between real and simulated frames should compare); a list of B
        strings conditions them as the policy does.
        """
        first = self._camera_images(images)[0]
        lead = first.shape[:-3]
        cond = None
        if instruction is not None and self.config.film:
            lang = self.embed_instructions(instruction)
            reps = int(np.prod(lead[1:])) if len(lead) > 1 else 1
            cond = lang.repeat_interleave(reps, dim=0)
        feats = self._feature_maps(images, cond)
        return {cam: f.mean(dim=(-2, -1)).view(*lead, -1) for cam, f in zip(self.config.cameras, feats, strict=True)}

    @torch.no_grad()
    def attention_maps(
        self, images: Mapping[str, torch.Tensor], instruction: Sequence[str], upsample: bool = True
    ) -> dict[str, torch.Tensor]:
        """TokenLearner attention over the feature grid, a saliency map per learned token.

        images[camera]: uint8 (B, H, W, 3); instruction: B strings -> per camera float
        (B, S, H, W) (bilinearly upsampled to the image size) or (B, S, h, w) with ``upsample=False``.
        Each map sums to 1 over the feature grid.
        """
        lang = self.embed_instructions(instruction)
        cond = lang if self.config.film else None
        feats = self._feature_maps(images, cond)
        out = {}
        for cam, f in zip(self.config.cameras, feats, strict=True):
            _, attn = self.token_learner[cam](f)
            if upsample:
                height, width = images[cam].shape[-3:-1]
                attn = F.interpolate(attn, size=(height, width), mode="bilinear", align_corners=False)
            out[cam] = attn
        return out

    def num_parameters(self, trainable_only: bool = False) -> int:
        """Number of parameter elements."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)


@POLICIES.register("vla")
class VLAModel(EncoderPolicy):
    """The VLA policy network; ``forward(batch) -> logits (B, Ta, A, bins)``: each action
    dimension of the chunk as one of ``bins`` tokens (see :mod:`sim2real.policies.tokenizer`)."""

    config_class = VLAConfig
    config: VLAConfig
    #: ``argmax``: the most likely bin (RT-1, OpenVLA); ``expectation``: the mean over bin centres
    decodings = ("argmax", "expectation")

    def __init__(self, config: VLAConfig | None = None, load_pretrained: bool = True) -> None:
        super().__init__(config, load_pretrained)

    def _build_head(self, width: int) -> nn.Module:
        cfg, dim = self.config, self.config.embed_dim
        out = cfg.chunk * cfg.action_dim * cfg.bins
        head = nn.Sequential(nn.Linear(width, dim), nn.GELU(), nn.Linear(dim, out))
        nn.init.zeros_(head[-1].weight)  # uniform logits at start: loss = ln(bins)
        nn.init.zeros_(head[-1].bias)
        return head

    def _head_output(self, readouts: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        logits = self.head(readouts)
        return logits.view(*logits.shape[:-1], cfg.chunk, cfg.action_dim, cfg.bins)

    def compute_loss(
        self, output: torch.Tensor, batch: Batch, tokenizer: ActionTokenizer
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Masked cross-entropy over bins of logits (B, Ta, A, bins), and metrics; see :func:`action_loss`."""
        return action_loss(output.float(), batch, tokenizer, self.config.target_sigma_bins)

    def output_to_actions(self, output: torch.Tensor, tokenizer: ActionTokenizer, decoding: str) -> torch.Tensor:
        """Logits (B, Ta, A, bins) -> actions (B, Ta, A): the arg-max bin's centre, or the expected value."""
        if decoding == "expectation":
            return tokenizer.decode_expected(output)
        if decoding == "argmax":
            return tokenizer.decode(output.argmax(dim=-1))
        raise ValueError(f"decoding={decoding!r}: expected one of {', '.join(self.decodings)}")


def action_loss(
    logits: torch.Tensor, batch: Batch, tokenizer: ActionTokenizer, target_sigma_bins: float = 0.0
) -> tuple[torch.Tensor, dict[str, float]]:
    """Cross-entropy of logits (B, Ta, A, bins) against the tokenised ``batch["actions"]`` (B, Ta, A):
    against the one-hot target bin, or with ``target_sigma_bins > 0`` against a Gaussian of that
    many bin widths around the action (:meth:`ActionTokenizer.soft_targets`), reported as the
    KL divergence (0 for a perfect fit either way).

    Steps where ``batch["action_mask"]`` (B, Ta) is False count in neither loss nor metrics.
    Metrics (floats): ``loss``, ``token_accuracy`` (arg-max bin == target bin),
    ``action_l1`` (mean |decoded arg-max - true action|, original units), ``count`` (valid elements).
    """
    actions = batch["actions"].to(logits.device)
    if actions.shape != logits.shape[:-1]:
        raise ValueError(f"actions of shape {tuple(actions.shape)} for logits of shape {tuple(logits.shape)}")
    if logits.shape[-1] != tokenizer.bins:
        raise ValueError(f"logits over {logits.shape[-1]} bins, tokenizer has {tokenizer.bins}")
    targets = tokenizer.encode(actions)
    mask = batch.get("action_mask")
    if mask is None:
        weight = torch.ones_like(actions)
    else:
        weight = mask.to(logits.device, torch.float32).unsqueeze(-1).expand_as(actions)
    count = weight.sum().clamp_min(1.0)
    if target_sigma_bins > 0:
        soft = tokenizer.soft_targets(actions, target_sigma_bins)  # (B, Ta, A, bins)
        # KL(target || prediction): the cross-entropy less the target's own entropy, so that a
        # perfect fit scores 0 as the one-hot loss does (same gradients as the cross-entropy)
        ce = F.kl_div(F.log_softmax(logits.float(), dim=-1), soft, reduction="none").sum(dim=-1)
    else:
        ce = F.cross_entropy(logits.flatten(0, -2).float(), targets.flatten(), reduction="none").view_as(actions)
    loss = (ce * weight).sum() / count
    with torch.no_grad():
        pred = logits.argmax(dim=-1)
        accuracy = ((pred == targets).float() * weight).sum() / count
        l1 = ((tokenizer.decode(pred) - actions.float()).abs().nan_to_num(0.0) * weight).sum() / count
    metrics = {
        "loss": float(loss.detach()),
        "token_accuracy": float(accuracy),
        "action_l1": float(l1),
        "count": float(weight.sum()),
    }
    return loss, metrics
