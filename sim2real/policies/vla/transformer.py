"""A small pre-norm transformer with an explicit boolean attention mask.

Attention uses separate ``q_proj``/``k_proj``/``v_proj``/``out_proj`` linear layers (so LoRA
adapters can target them by name) and ``F.scaled_dot_product_attention``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

#: Names of the attention projections, the default LoRA targets.
ATTENTION_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "out_proj")


class Attention(nn.Module):
    """Multi-head self-attention: ``x (B, L, D)``, ``mask (B or 1, 1, L, L)`` bool (True = may attend)."""

    def __init__(self, dim: int, heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.heads = heads
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)
        self.dropout = dropout

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None = None, queries: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``queries`` (B, Lq, D), default ``x``: attend from those positions only; mask is then (.., Lq, L)."""
        b, length, dim = x.shape
        queries = x if queries is None else queries
        head_dim = dim // self.heads
        q = self.q_proj(queries).view(b, -1, self.heads, head_dim).transpose(1, 2)  # (B, H, Lq, Dh)
        k = self.k_proj(x).view(b, length, self.heads, head_dim).transpose(1, 2)  # (B, H, L, Dh)
        v = self.v_proj(x).view(b, length, self.heads, head_dim).transpose(1, 2)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0)
        return self.out_proj(out.transpose(1, 2).reshape(b, -1, dim))


class Block(nn.Module):
    """Pre-norm block: ``x + Attn(LN(x))``, then ``x + MLP(LN(x))``; ``(B, L, D) -> (B, L, D)``."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads, dropout)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(dropout)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None = None, keep: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``keep`` (Lk,) int64: compute (and return, (B, Lk, D)) only these positions' outputs."""
        h = self.norm1(x)
        if keep is None:
            x = x + self.drop(self.attn(h, mask))
        else:
            x = x[:, keep] + self.drop(self.attn(h, None if mask is None else mask[..., keep, :], queries=h[:, keep]))
        return x + self.drop(self.fc2(F.gelu(self.fc1(self.norm2(x)))))


class Transformer(nn.Module):
    """A stack of :class:`Block` with a final LayerNorm."""

    def __init__(self, dim: int, depth: int, heads: int, mlp_ratio: float = 4.0, dropout: float = 0.0) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(Block(dim, heads, mlp_ratio, dropout) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None = None, keep: torch.Tensor | None = None
    ) -> torch.Tensor:
        """x (B, L, D), mask (B or 1, 1, L, L) bool -> (B, L, D), or (B, Lk, D) for the positions ``keep``
        (the last block then computes only those: all that a readout-only consumer needs)."""
        last = len(self.blocks) - 1
        for i, block in enumerate(self.blocks):
            x = block(x, mask, keep if i == last else None)
        return self.norm(x)
