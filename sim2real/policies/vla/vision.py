"""Vision encoders with FiLM conditioning, and TokenLearner.

Every encoder maps float images ``(N, 3, H, W)`` (already normalised) and an optional
conditioning vector ``(N, L)`` to a feature grid ``(N, C, h, w)``:

* ``small_cnn``: 4 stride-2 3x3 convolutions with GroupNorm + SiLU, 128x128 -> 8x8 (fast on CPU).
* ``resnet18``: the ResNet-18 layout (BatchNorm; parameter names match torchvision's, so a
  local torchvision state dict can initialise it), 128x128 -> 4x4.
* ``vit``: a small ViT (16x16 patches), 128x128 -> 8x8 patch grid.

FiLM (Perez et al., 2018), as in RT-1: after each stage ``x <- (1 + gamma(c)) * x + beta(c)``
with ``gamma, beta`` linear in the instruction embedding and zero-initialised (identity at start).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn


class FiLM(nn.Module):
    """Feature-wise affine modulation of ``(N, C, ...)`` features by a condition ``(N, L)``."""

    def __init__(self, cond_dim: int, channels: int) -> None:
        super().__init__()
        self.proj = nn.Linear(cond_dim, 2 * channels)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None, channel_dim: int = 1) -> torch.Tensor:
        if cond is None:
            return x
        gamma, beta = self.proj(cond).chunk(2, dim=-1)  # (N, C) each
        shape = [x.shape[0]] + [1] * (x.dim() - 1)
        shape[channel_dim] = x.shape[channel_dim]
        return torch.addcmul(beta.reshape(shape), x, 1.0 + gamma.reshape(shape))


def _group_norm(channels: int) -> nn.GroupNorm:
    groups = math.gcd(8, channels)
    return nn.GroupNorm(groups, channels)


class VisionEncoder(nn.Module):
    """Base class: ``forward(images (N, 3, H, W), cond (N, L) | None) -> features (N, C, h, w)``."""

    out_channels: int
    #: per-channel image normalisation applied by the policy before the encoder (after /255)
    image_mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    image_std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    #: prefixes of parameters that pretrained weights are not expected to provide
    own_prefixes: tuple[str, ...] = ("film",)

    def forward(self, images: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError


class SmallCNN(VisionEncoder):
    """Four conv stages, each followed by GroupNorm -> SiLU -> FiLM; channels w, 2w, 4w, 4w.

    With ``stem_stride=4`` (inputs of 96 px and more) the first stage is a 4x4 stride-4
    patchify conv and the others Conv3x3 with strides 2, 2, 1: the first layer, the costliest
    on a CPU, runs at a quarter of the resolution (2.4x fewer operations). With
    ``stem_stride=2`` every stage is a Conv3x3 stride 2. Either way
    ``(N, 3, H, W) -> (N, 4w, H/16, W/16)``; 128x128 -> 8x8.
    """

    def __init__(self, width: int = 32, cond_dim: int | None = None, stem_stride: int = 4) -> None:
        super().__init__()
        channels = [width, 2 * width, 4 * width, 4 * width]
        self.convs = nn.ModuleList()
        self.norms = nn.ModuleList()
        c_in = 3
        if stem_stride not in (2, 4):
            raise ValueError(f"stem_stride must be 2 or 4, got {stem_stride}")
        for index, c_out in enumerate(channels):
            if index == 0 and stem_stride == 4:
                self.convs.append(nn.Conv2d(c_in, c_out, 4, stride=4, padding=0, bias=False))
            else:
                stride = 1 if (stem_stride == 4 and index == 3) else 2
                self.convs.append(nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False))
            self.norms.append(_group_norm(c_out))
            c_in = c_out
        self.film = nn.ModuleList(FiLM(cond_dim, c) for c in channels) if cond_dim is not None else None
        self.out_channels = channels[-1]

    def forward(self, images: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        x = images
        for i, (conv, norm) in enumerate(zip(self.convs, self.norms, strict=True)):
            x = F.silu(norm(conv(x)))
            if self.film is not None:
                x = self.film[i](x, cond)
        return x


class BasicBlock(nn.Module):
    """ResNet basic block (torchvision parameter names)."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.downsample: nn.Module | None = None
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + identity)


class ResNet18(VisionEncoder):
    """ResNet-18 trunk with FiLM after each of the 4 stages; ``(N,3,H,W) -> (N,512,H/32,W/32)``."""

    image_mean = (0.485, 0.456, 0.406)
    image_std = (0.229, 0.224, 0.225)

    def __init__(self, cond_dim: int | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        widths = (64, 128, 256, 512)
        c_in = 64
        for i, width in enumerate(widths):
            stride = 1 if i == 0 else 2
            setattr(self, f"layer{i + 1}", nn.Sequential(BasicBlock(c_in, width, stride), BasicBlock(width, width, 1)))
            c_in = width
        self.film = nn.ModuleList(FiLM(cond_dim, c) for c in widths) if cond_dim is not None else None
        self.out_channels = widths[-1]

    def forward(self, images: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        x = self.maxpool(F.relu(self.bn1(self.conv1(images))))
        for i in range(4):
            x = getattr(self, f"layer{i + 1}")(x)
            if self.film is not None:
                x = self.film[i](x, cond)
        return x


class ViTBlock(nn.Module):
    """Pre-norm transformer block over patch tokens ``(N, P, C)`` (full attention)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


class SmallViT(VisionEncoder):
    """ViT with 16x16 patches, learned positions, FiLM after each block; ``(N,3,H,W) -> (N,dim,H/16,W/16)``."""

    own_prefixes = ("film",)

    def __init__(
        self,
        image_size: int = 128,
        patch: int = 16,
        dim: int = 192,
        depth: int = 4,
        heads: int = 3,
        cond_dim: int | None = None,
    ) -> None:
        super().__init__()
        self.patch = patch
        self.grid = image_size // patch
        self.patch_embed = nn.Conv2d(3, dim, patch, stride=patch)
        self.pos_embed = nn.Parameter(torch.randn(1, self.grid * self.grid, dim) * 0.02)
        self.blocks = nn.ModuleList(ViTBlock(dim, heads) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.film = nn.ModuleList(FiLM(cond_dim, dim) for _ in range(depth)) if cond_dim is not None else None
        self.out_channels = dim

    def forward(self, images: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        x = self.patch_embed(images)  # (N, C, h, w)
        n, c, h, w = x.shape
        x = x.flatten(2).transpose(1, 2)  # (N, h*w, C)
        x = x + (self.pos_embed if h * w == self.pos_embed.shape[1] else _resize_pos(self.pos_embed, h, w))
        for i, block in enumerate(self.blocks):
            x = block(x)
            if self.film is not None:
                x = self.film[i](x, cond, channel_dim=2)
        x = self.norm(x)
        return x.transpose(1, 2).reshape(n, c, h, w)


def _resize_pos(pos: torch.Tensor, h: int, w: int) -> torch.Tensor:
    side = math.isqrt(pos.shape[1])
    grid = pos.reshape(1, side, side, -1).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=(h, w), mode="bilinear", align_corners=False)
    return grid.permute(0, 2, 3, 1).reshape(1, h * w, -1)


class TokenLearner(nn.Module):
    """TokenLearner (Ryoo et al., 2021): ``S`` spatial soft-attention maps over the feature grid.

    ``forward(features (N, C, h, w)) -> tokens (N, S, C), attention (N, S, h, w)``; each map
    sums to 1 over the grid, so it doubles as a saliency map.
    """

    def __init__(self, channels: int, num_tokens: int, hidden: int | None = None) -> None:
        super().__init__()
        hidden = hidden or channels
        self.norm = nn.LayerNorm(channels)
        self.mlp = nn.Sequential(nn.Linear(channels, hidden), nn.GELU(), nn.Linear(hidden, num_tokens))

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n, _, h, w = features.shape
        flat = features.flatten(2).transpose(1, 2)  # (N, hw, C)
        logits = self.mlp(self.norm(flat))  # (N, hw, S)
        attn = logits.transpose(1, 2).softmax(dim=-1)  # (N, S, hw)
        tokens = attn @ flat  # (N, S, C)
        return tokens, attn.reshape(n, -1, h, w)


def soft_argmax(attention: torch.Tensor) -> torch.Tensor:
    """Expected grid position of each map: ``(N, K, h, w)`` maps summing to 1 -> ``(N, K, 2)``
    ``(x, y)`` in [-1, 1] (x along the width, y along the height)."""
    h, w = attention.shape[-2:]
    ys = torch.linspace(-1.0, 1.0, h, device=attention.device, dtype=attention.dtype)
    xs = torch.linspace(-1.0, 1.0, w, device=attention.device, dtype=attention.dtype)
    x = (attention.sum(dim=-2) * xs).sum(dim=-1)
    y = (attention.sum(dim=-1) * ys).sum(dim=-1)
    return torch.stack([x, y], dim=-1)


class TokenCoordinates(nn.Module):
    """Where each TokenLearner token looks: the soft-argmax of its attention map.

    Pooling features with an attention map keeps *what* a token sees but not *where*; the
    expected grid coordinate under the map (a spatial-softmax keypoint, as in Levine et al.,
    2016) restores it with sub-cell precision. ``forward(attention (N, S, h, w)) ->
    (N, S, 2 + 4 * len(frequencies))``: ``(x, y)`` in [-1, 1] and ``sin/cos(pi f x|y)``.
    """

    def __init__(self, frequencies: tuple[float, ...] = (1.0, 2.0, 4.0)) -> None:
        super().__init__()
        self.register_buffer("frequencies", torch.tensor(frequencies) * math.pi, persistent=False)
        self.dim = 2 + 4 * len(frequencies)

    def forward(self, attention: torch.Tensor) -> torch.Tensor:
        xy = soft_argmax(attention)  # (N, S, 2)
        angles = (xy.unsqueeze(-1) * self.frequencies).flatten(-2)  # (N, S, 2F)
        return torch.cat([xy, angles.sin(), angles.cos()], dim=-1)


class SpatialKeypoints(nn.Module):
    """Spatial softmax (Levine et al., 2016; robomimic's image encoder head): a 1x1 conv to
    ``K`` maps, a softmax over the grid per map with a learned temperature, and each map's
    expected ``(x, y)`` in [-1, 1]. ``forward(features (N, C, h, w)) -> (N, 2K)``."""

    def __init__(self, channels: int, num_keypoints: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, num_keypoints, kernel_size=1)
        self.log_temperature = nn.Parameter(torch.zeros(()))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        n, _, h, w = features.shape
        logits = self.conv(features).flatten(2) * torch.exp(-self.log_temperature)  # (N, K, hw)
        return soft_argmax(logits.softmax(dim=-1).view(n, -1, h, w)).flatten(1)


def build_vision_encoder(name: str, *, image_size: int, width: int, cond_dim: int | None) -> VisionEncoder:
    """``name`` in ``small_cnn | resnet18 | vit``."""
    if name == "small_cnn":  # small inputs keep a stride-2 first layer: their grid stays >= 4x4
        return SmallCNN(width=width, cond_dim=cond_dim, stem_stride=4 if image_size >= 96 else 2)
    if name == "resnet18":
        return ResNet18(cond_dim=cond_dim)
    if name == "vit":
        return SmallViT(image_size=image_size, cond_dim=cond_dim)
    raise ValueError(f"unknown vision encoder {name!r}; known: small_cnn, resnet18, vit")


def read_weights_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a local ``.safetensors`` file, or of a ``.pt/.pth/.bin`` state dict (loaded without pickle)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"vision weights file not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    state = torch.load(str(path), map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"{path} does not hold a state dict")
    return state


def load_vision_weights(encoder: VisionEncoder, path: str | Path) -> list[str]:
    """Initialise ``encoder`` from a local weights file; returns the file's keys that were not used.

    Prefixes ``module.``/``model.``/``encoder.`` are stripped. Every encoder parameter except
    the FiLM layers must be present with the right shape, else ``ValueError`` names them.
    """
    state = read_weights_file(path)
    for prefix in ("module.", "model.", "encoder."):
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix) :]: v for k, v in state.items()}
    own = encoder.state_dict()
    expected = [k for k in own if not k.startswith(encoder.own_prefixes)]
    missing = [k for k in expected if k not in state]
    if missing:
        raise ValueError(f"{path}: missing {len(missing)} encoder weights, e.g. {missing[:5]}")
    wrong = [
        f"{k} {tuple(state[k].shape)} != {tuple(own[k].shape)}" for k in expected if state[k].shape != own[k].shape
    ]
    if wrong:
        raise ValueError(f"{path}: shape mismatch for {wrong[:5]}")
    encoder.load_state_dict({k: state[k] for k in expected}, strict=False)
    return sorted(set(state) - set(expected))
