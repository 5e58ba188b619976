"""The optimisation core: small functions that a training script composes.

``build_optimizer`` (AdamW, no weight decay on norms/biases/embeddings), ``build_scheduler``
(linear warm-up + cosine), :class:`EMA` of the weights, ``train_step`` (autocast on CUDA only,
non-finite loss detection, gradient clipping), ``evaluate``, and fine-tuning helpers
(``freeze_for_finetune`` with ``"head"`` or ``"lora"``). Every function accepts the model
wrapped in ``DistributedDataParallel``; the forward pass always goes through the wrapper so
gradients are synchronised.
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from sim2real.policies.tokenizer import ActionTokenizer
from sim2real.policies.vla.transformer import ATTENTION_PROJECTIONS

Batch = Mapping[str, Any]


class NonFiniteLossError(FloatingPointError):
    """The loss (or the gradient norm) became NaN/Inf at ``step``; keep the last good checkpoint."""

    def __init__(self, step: int, what: str = "loss", value: float = math.nan) -> None:
        super().__init__(f"non-finite {what} ({value}) at step {step}; the last good checkpoint is the one to keep")
        self.step = step
        self.what = what
        self.value = value


def unwrap(model: nn.Module) -> nn.Module:
    """The bare model inside ``DistributedDataParallel``/``DataParallel`` wrappers."""
    while isinstance(model, nn.parallel.DistributedDataParallel | nn.DataParallel):
        model = model.module
    return model


# ---------------------------------------------------------------------------------- optimiser
def _no_decay(name: str, param: torch.Tensor, norm_params: set[int]) -> bool:
    return param.ndim < 2 or id(param) in norm_params or name.endswith(("_embed", "readout")) or ".bag." in name


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Two AdamW groups: decayed weights, and undecayed norms/biases/embeddings/readouts (trainable only)."""
    norms = (nn.LayerNorm, nn.GroupNorm, nn.BatchNorm2d, nn.BatchNorm1d)
    norm_params = {id(p) for m in model.modules() if isinstance(m, norms) for p in m.parameters(recurse=False)}
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (no_decay if _no_decay(name, param, norm_params) else decay).append(param)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def build_optimizer(
    model: nn.Module,
    lr: float = 3e-4,
    weight_decay: float = 0.05,
    betas: tuple[float, float] = (0.9, 0.95),
    eps: float = 1e-8,
) -> torch.optim.AdamW:
    """AdamW over the trainable parameters; see :func:`parameter_groups`.

    The fused implementation (one kernel over all parameters) where every parameter lives on a
    device that has one (CPU, CUDA): 4x faster than the per-parameter loop on a 2-core CPU.
    """
    groups = [g for g in parameter_groups(model, weight_decay) if g["params"]]
    if not groups:
        raise ValueError("the model has no trainable parameters")
    devices = {p.device.type for g in groups for p in g["params"]}
    fused = devices <= {"cpu", "cuda"} and len(devices) == 1
    return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps, fused=fused or None)


@dataclass
class WarmupCosine:
    """LR multiplier: linear 0 -> 1 over ``warmup_steps``, then cosine down to ``min_ratio`` at ``total_steps``."""

    warmup_steps: int
    total_steps: int
    min_ratio: float = 0.1

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        span = max(self.total_steps - self.warmup_steps, 1)
        progress = min((step - self.warmup_steps) / span, 1.0)
        return self.min_ratio + (1.0 - self.min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_scheduler(
    optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int, min_ratio: float = 0.1
) -> torch.optim.lr_scheduler.LambdaLR:
    """Warm-up + cosine schedule, stepped once per optimiser step; its ``state_dict`` is JSON-able."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, WarmupCosine(warmup_steps, total_steps, min_ratio))


# ---------------------------------------------------------------------------------- EMA
class EMA:
    """Exponential moving average of a model's floating-point state (parameters and buffers).

    ``decay`` ramps up as ``min(decay, (1 + n) / (10 + n))`` over the first updates. Use
    :meth:`average_parameters` to evaluate with the averaged weights, :meth:`state_dict` to save them.
    """

    def __init__(self, model: nn.Module, decay: float = 0.999) -> None:
        self.decay = decay
        self.updates = 0
        self.shadow = {k: v.detach().clone() for k, v in unwrap(model).state_dict().items()}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Blend the model's current state into the average."""
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        averaged, current = [], []
        for key, value in unwrap(model).state_dict().items():
            shadow = self.shadow[key]
            if shadow.is_floating_point():
                averaged.append(shadow)
                current.append(value.detach())
            else:
                shadow.copy_(value)
        if averaged:
            torch._foreach_lerp_(averaged, current, 1.0 - decay)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The averaged state (a model ``state_dict``)."""
        return self.shadow

    def load_state_dict(self, state: Mapping[str, torch.Tensor], updates: int | None = None) -> None:
        """Restore the average (and the update count, which sets the decay warm-up)."""
        missing = set(self.shadow) - set(state)
        if missing:
            raise KeyError(f"EMA state lacks {sorted(missing)[:5]}")
        for key, shadow in self.shadow.items():
            shadow.copy_(state[key])
        if updates is not None:
            self.updates = updates

    @contextlib.contextmanager
    def average_parameters(self, model: nn.Module) -> Iterator[nn.Module]:
        """Temporarily load the averaged weights into ``model`` (restored on exit)."""
        bare = unwrap(model)
        backup = {k: v.detach().clone() for k, v in bare.state_dict().items()}
        bare.load_state_dict(self.shadow)
        try:
            yield model
        finally:
            bare.load_state_dict(backup)


# ---------------------------------------------------------------------------------- steps
def move_batch(batch: Batch, device: torch.device | str) -> dict[str, Any]:
    """Tensors (also inside the ``images`` dict) moved to ``device``; other values kept."""

    def move(value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            return value.to(device, non_blocking=True)
        if isinstance(value, Mapping):
            return {k: move(v) for k, v in value.items()}
        return value

    return {k: move(v) for k, v in batch.items()}


def autocast_context(device: torch.device | str, enabled: bool = True) -> contextlib.AbstractContextManager[Any]:
    """bfloat16 autocast on CUDA (when ``enabled``); a no-op elsewhere (CPU runs in float32)."""
    device = torch.device(device)
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def random_shift(images: torch.Tensor, pad: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """DrQ-style augmentation: replicate-pad by ``pad`` pixels and crop back at a random offset.

    uint8 (B, T, H, W, 3) -> same shape; one offset per sample (shared over its T frames).
    Done as slice copies plus edge replication, without materialising the padded batch.
    """
    if pad <= 0:
        return images
    offsets = torch.randint(0, 2 * pad + 1, (images.shape[0], 2), generator=generator).tolist()
    out = torch.empty_like(images)
    for sample, (dy, dx) in enumerate(offsets):
        _shift_into(out[sample], images[sample], dy - pad, dx - pad)
    return out


def random_color(
    images: dict[str, torch.Tensor], strength: float, generator: torch.Generator | None = None
) -> dict[str, torch.Tensor]:
    """Photometric augmentation: per sample, one brightness gain in ``[1 - s, 1 + s]``, one
    contrast factor in ``[1 - s / 2, 1 + s / 2]`` (around the frame's mean) and one gain per
    colour channel in ``[1 - s / 2, 1 + s / 2]`` (a colour temperature shift), ``s = strength``;
    the same draw for every camera and frame of a sample, as one light would change them all.

    ``{camera: uint8 (B, T, H, W, 3)}`` -> the same shapes and dtype.
    """
    if strength <= 0:
        return images
    first = next(iter(images.values()))
    batch = first.shape[0]
    draws = (torch.rand(batch, 5, generator=generator) * 2 - 1).to(first.device)  # brightness, contrast, 3 channels
    gain = (1 + strength * draws[:, :1]) * (1 + 0.5 * strength * draws[:, 2:])  # (B, 3)
    contrast = (1 + 0.5 * strength * draws[:, 1]).view(batch, 1, 1, 1, 1)
    out = {}
    for camera, frames in images.items():
        x = frames.float() * gain.view(batch, 1, 1, 1, 3)
        mean = x.mean(dim=(2, 3, 4), keepdim=True)
        out[camera] = ((x - mean) * contrast + mean).clamp_(0, 255).round_().to(torch.uint8)
    return out


def _shift_into(out: torch.Tensor, src: torch.Tensor, dy: int, dx: int) -> None:
    """``out[:, y, x] = src[:, clamp(y + dy), clamp(x + dx)]`` for frames (T, H, W, C)."""
    h, w = src.shape[1:3]
    out[:, max(-dy, 0) : h - max(dy, 0), max(-dx, 0) : w - max(dx, 0)] = src[
        :, max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)
    ]
    if dy > 0:
        out[:, h - dy :] = out[:, h - dy - 1 : h - dy]
    elif dy < 0:
        out[:, :-dy] = out[:, -dy : -dy + 1]
    if dx > 0:
        out[:, :, w - dx :] = out[:, :, w - dx - 1 : w - dx]
    elif dx < 0:
        out[:, :, :-dx] = out[:, :, -dx : -dx + 1]


def train_step(
    model: nn.Module,
    batch: Batch,
    tokenizer: ActionTokenizer,
    optimizer: torch.optim.Optimizer,
    *,
    step: int,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    ema: EMA | None = None,
    max_grad_norm: float | None = 1.0,
    amp: bool = True,
    augment_shift: int = 0,
    augment_color: float = 0.0,
    generator: torch.Generator | None = None,
) -> dict[str, float]:
    """One optimisation step on ``batch`` (already on the model's device); returns metrics.

    The loss is the policy type's own (``compute_loss``, see :mod:`sim2real.policies.base`).
    Raises :class:`NonFiniteLossError` (before touching the weights) when the loss or the
    gradient norm is NaN/Inf. Metrics: ``loss``, ``token_accuracy``, ``action_l1``, ``count``,
    ``grad_norm``, ``lr``.
    """
    model.train()
    device = next(unwrap(model).parameters()).device
    if augment_shift > 0:
        batch = {**batch, "images": {c: random_shift(x, augment_shift, generator) for c, x in batch["images"].items()}}
    if augment_color > 0:
        batch = {**batch, "images": random_color(batch["images"], augment_color, generator)}
    optimizer.zero_grad(set_to_none=True)
    with autocast_context(device, amp):
        output = model(batch)  # through the (DDP) wrapper, so gradients get synchronised
    loss, metrics = unwrap(model).compute_loss(output.float(), batch, tokenizer)
    if not torch.isfinite(loss):
        raise NonFiniteLossError(step, "loss", float(loss.detach()))
    loss.backward()
    params = [p for p in model.parameters() if p.grad is not None]
    if max_grad_norm is not None and max_grad_norm > 0:
        grad_norm = torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
    else:
        grad_norm = torch.linalg.vector_norm(torch.stack([p.grad.detach().norm() for p in params]))
    if not torch.isfinite(grad_norm):
        optimizer.zero_grad(set_to_none=True)
        raise NonFiniteLossError(step, "gradient norm", float(grad_norm))
    optimizer.step()
    if scheduler is not None:
        scheduler.step()
    if ema is not None:
        ema.update(model)
    metrics["grad_norm"] = float(grad_norm)
    metrics["lr"] = float(optimizer.param_groups[0]["lr"])
    return metrics


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: Iterable[Batch],
    tokenizer: ActionTokenizer,
    device: torch.device | str | None = None,
    max_batches: int | None = None,
) -> dict[str, float]:
    """``{loss, token_accuracy, action_l1}`` averaged over all valid action elements of ``loader``."""
    bare = unwrap(model)
    device = device if device is not None else next(bare.parameters()).device
    was_training = bare.training
    bare.eval()
    totals = {"loss": 0.0, "token_accuracy": 0.0, "action_l1": 0.0}
    count = 0.0
    try:
        for i, batch in enumerate(loader):
            if max_batches is not None and i >= max_batches:
                break
            batch = move_batch(batch, device)
            with autocast_context(device):
                output = bare(batch)
            _, metrics = bare.compute_loss(output.float(), batch, tokenizer)
            for key in totals:
                totals[key] += metrics[key] * metrics["count"]
            count += metrics["count"]
    finally:
        bare.train(was_training)
    return {k: v / max(count, 1.0) for k, v in totals.items()}


# ---------------------------------------------------------------------------------- fine-tuning
#: what ``freeze_for_finetune`` (and ``finetune.mode``) accepts
FINETUNE_MODES = ("head", "lora")


def freeze_for_finetune(
    model: nn.Module,
    mode: str = "head",
    trainable_layers: int = 1,
    lora_rank: int = 8,
    lora_alpha: float = 16.0,
    lora_dropout: float = 0.0,
    lora_targets: Sequence[str] = ATTENTION_PROJECTIONS,
) -> dict[str, int]:
    """Prepare a trained policy built on the shared encoders (any registered type) for fine-tuning,
    in place; returns parameter counts.

    ``"head"``: freeze everything (vision, language, tokenisation, transformer) except the
    action head, the readout tokens, the final norm and the last ``trainable_layers``
    transformer blocks. ``"lora"``: freeze everything and inject LoRA adapters (``peft``) into
    the attention projections ``lora_targets``; the head stays trainable. Build the optimiser
    after this call.
    """
    bare = unwrap(model)
    for param in bare.parameters():
        param.requires_grad_(False)
    if mode == "head":
        blocks = bare.transformer.blocks
        keep: list[nn.Module | nn.Parameter] = [bare.head, bare.transformer.norm, bare.readout]
        keep += list(blocks[max(len(blocks) - trainable_layers, 0) :])
    elif mode == "lora":
        try:
            from peft import LoraConfig, inject_adapter_in_model
        except ImportError as error:
            raise ImportError(
                "freeze_for_finetune(mode='lora') needs the peft package: "
                "pip install 'sim2real[train]' (or pip install peft)"
            ) from error
        config = LoraConfig(
            r=lora_rank, lora_alpha=lora_alpha, lora_dropout=lora_dropout, target_modules=list(lora_targets)
        )
        inject_adapter_in_model(config, bare.transformer)
        keep = [bare.head, bare.readout]
        keep += [p for n, p in bare.transformer.named_parameters() if "lora_" in n]
    else:
        raise ValueError(f"unknown fine-tuning mode {mode!r}; known: {', '.join(FINETUNE_MODES)}")
    for item in keep:
        for param in item.parameters() if isinstance(item, nn.Module) else [item]:
            param.requires_grad_(True)
    trainable = sum(p.numel() for p in bare.parameters() if p.requires_grad)
    return {"trainable": trainable, "total": sum(p.numel() for p in bare.parameters())}


def merge_lora(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with every LoRA adapter merged into its base layer and removed,
    i.e. with the plain architecture (and ``state_dict`` keys) of the original model."""
    from peft.tuners.lora import LoraLayer

    merged = copy.deepcopy(unwrap(model))
    targets = [(name, module) for name, module in merged.named_modules() if isinstance(module, LoraLayer)]
    for name, module in targets:
        module.merge()
        parent_name, _, child = name.rpartition(".")
        parent = merged.get_submodule(parent_name) if parent_name else merged
        setattr(parent, child, module.get_base_layer())
    return merged


def has_lora(model: nn.Module) -> bool:
    """Whether ``model`` carries LoRA adapters."""
    return any("lora_" in name for name, _ in unwrap(model).named_parameters())
