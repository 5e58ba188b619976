"""Closed-loop inference: :class:`ChunkPolicy` acts on gymnasium observations one step at a time,
with any registered policy type (:mod:`sim2real.policies.base`); :func:`load_policy` loads one.

The policy keeps its own history: each ``act`` encodes only the new frame (vision encoder,
FiLM, TokenLearner: the expensive part) and caches its tokens; the small transformer then
runs over the cached tokens of the last ``To`` frames. Frames before the episode start are
left out, exactly as padded history (``obs_mask`` False) is hidden during training.
"""

from __future__ import annotations

import hashlib
import time
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sim2real.policies.base import TrainablePolicy
from sim2real.policies.checkpoint import MODEL_FILE, load_checkpoint
from sim2real.policies.tokenizer import ActionTokenizer
from sim2real.policies.vla.model import VLAModel

#: how the VLA's action tokens become actions: the most likely bin (RT-1, OpenVLA) or the
#: distribution's mean (each policy type lists its own as ``decodings``)
DECODINGS = VLAModel.decodings


def check_action_selection(
    chunk: int,
    execute_steps: int,
    temporal_ensemble: float | None,
    decoding: str,
    prefix: str = "",
    decodings: Sequence[str] = DECODINGS,
) -> None:
    """Raise ``ValueError`` naming (after ``prefix``, e.g. ``policy.``) the first option that does
    not fit a policy predicting ``chunk``-step chunks that decodes as one of ``decodings``."""
    if decoding not in decodings:
        raise ValueError(f"{prefix}decoding={decoding!r}: expected one of {', '.join(decodings)}")
    if not 1 <= execute_steps <= chunk:
        raise ValueError(f"{prefix}execute_steps={execute_steps}: must be in [1, {chunk}] (the policy's chunk)")
    if temporal_ensemble is not None and (temporal_ensemble < 0 or execute_steps != 1):
        raise ValueError(
            f"{prefix}temporal_ensemble={temporal_ensemble}: must be >= 0 and needs {prefix}execute_steps=1 "
            f"(set {prefix}temporal_ensemble=null to play chunks open loop)"
        )


class ChunkPolicy:
    """Stateful policy over any registered policy model: ``reset()`` at each episode start, then
    ``act(observation, instruction)``.

    ``observation = {"image": {camera: uint8 (H, W, 3)}, "state": float32 (14,)}`` (the
    :class:`sim2real.envs.Sim2RealEnv` observation). ``act`` returns float32 (7,): the first
    action of the predicted chunk or, with ``temporal_ensemble=m``, ACT's temporal ensemble:
    the average of every still-valid chunk's prediction for the current step, weighted
    ``exp(-m * i)`` with ``i = 0`` the oldest prediction; or, with ``execute_steps=k``, the
    first ``k`` actions of a chunk played open loop before the next prediction (ACT's chunk
    execution; every frame still enters the history). ``decoding`` is one of the model's
    ``decodings`` (the VLA's ``"expectation"`` reads each dimension as the mean over bin centres
    instead of the ``"argmax"`` bin; ``None``: the type's first). A new instruction resets the
    history. The defaults give the model's raw prediction (for the VLA, RT-1's first action of
    the argmax chunk); the evaluation harness defaults to ``decoding="expectation", temporal_ensemble=0.1``,
    which closed-loop evaluation found the more precise.
    ``num_threads`` sets torch's (process-wide) intra-op thread count.
    """

    def __init__(
        self,
        model: TrainablePolicy,
        tokenizer: ActionTokenizer,
        *,
        device: str | torch.device = "cpu",
        temporal_ensemble: float | None = None,
        execute_steps: int = 1,
        decoding: str | None = None,
        num_threads: int | None = None,
    ) -> None:
        decodings = tuple(model.decodings)
        decoding = decoding if decoding is not None else decodings[0]
        check_action_selection(model.config.chunk, execute_steps, temporal_ensemble, decoding, decodings=decodings)
        if num_threads is not None:
            torch.set_num_threads(num_threads)
        self.device = torch.device(device)
        self.model: Any = model.to(self.device).eval()  # type: ignore[attr-defined]
        self.tokenizer = tokenizer
        self.config = model.config
        self.temporal_ensemble = temporal_ensemble
        self.execute_steps = execute_steps
        self.decoding = decoding
        self._queue: deque[np.ndarray] = deque()
        self.last_latency_ms = float("nan")
        self._tokens: deque[torch.Tensor] = deque(maxlen=self.config.history)
        self._chunks: deque[tuple[int, np.ndarray]] = deque(maxlen=self.config.chunk)
        self._instruction: str | None = None
        self._lang: torch.Tensor | None = None
        self._step = 0
        self.policy_type = _registered_name(model)
        self.checkpoint: Path | None = None
        self.meta: dict[str, Any] = {}

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path,
        device: str | torch.device = "cpu",
        *,
        temporal_ensemble: float | None = None,
        execute_steps: int = 1,
        decoding: str | None = None,
        num_threads: int | None = None,
        expected_cameras: Sequence[str] | None = None,
    ) -> ChunkPolicy:
        """Load a checkpoint folder of any registered type (see :mod:`sim2real.policies.checkpoint`)."""
        ckpt = load_checkpoint(path, device=device, expected_cameras=expected_cameras)
        policy = cls(
            ckpt.model,
            ckpt.tokenizer,
            device=device,
            temporal_ensemble=temporal_ensemble,  # type: ignore[arg-type]
            execute_steps=execute_steps,
            decoding=decoding,
            num_threads=num_threads,
        )
        policy.checkpoint = ckpt.path
        policy.meta = ckpt.meta
        return policy

    def describe(self) -> dict[str, Any]:
        """What a policy server announces: JSON-able metadata of this policy and its checkpoint.

        ``policy_type`` (registered name), ``action_dim``, ``chunk`` (actions per prediction),
        ``cameras``, ``image_size`` (px, square), ``history`` (frames), ``state_dim``,
        ``control_hz`` (None when the checkpoint does not record it), ``action_selection``
        (``temporal_ensemble``, ``execute_steps``, ``decoding``), ``checkpoint`` (folder or
        None), ``step`` and ``weights_sha256`` (of ``model.safetensors``; None without a file).
        """
        weights = self.checkpoint / MODEL_FILE if self.checkpoint is not None else None
        digest = hashlib.sha256(weights.read_bytes()).hexdigest() if weights is not None else None
        return {
            "policy_type": self.policy_type,
            "action_dim": int(self.config.action_dim),
            "chunk": int(self.config.chunk),
            "cameras": list(self.cameras),
            "image_size": int(self.config.image_size),
            "history": int(self.config.history),
            "state_dim": int(self.config.state_dim),
            "control_hz": self.meta.get("control_hz"),
            "action_selection": {
                "temporal_ensemble": self.temporal_ensemble,
                "execute_steps": self.execute_steps,
                "decoding": self.decoding,
            },
            "checkpoint": str(self.checkpoint) if self.checkpoint is not None else None,
            "step": self.meta.get("step"),
            "weights_sha256": digest,
        }

    @property
    def cameras(self) -> tuple[str, ...]:
        return tuple(self.config.cameras)

    def reset(self) -> None:
        """Forget the history (call at every episode start)."""
        self._tokens.clear()
        self._chunks.clear()
        self._queue.clear()
        self._step = 0

    def _inputs(self, observation: Mapping[str, Any]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        images = observation.get("image")
        if not isinstance(images, Mapping):
            raise KeyError("observation must hold 'image': {camera: uint8 (H, W, 3)}")
        out = {}
        for cam in self.cameras:
            if cam not in images:
                raise KeyError(f"observation lacks camera {cam!r}; the policy uses {list(self.cameras)}")
            img = np.asarray(images[cam])
            if img.dtype != np.uint8 or img.ndim != 3 or img.shape[-1] != 3:
                raise ValueError(f"camera {cam!r}: expected uint8 (H, W, 3), got {img.dtype} {img.shape}")
            if not img.flags.writeable or not img.flags.c_contiguous:  # e.g. decoded from a network message
                img = np.array(img, order="C")
            out[cam] = torch.from_numpy(img).to(self.device).view(1, 1, *img.shape)
        if "state" not in observation and getattr(self.config, "use_proprio", True):
            raise KeyError("observation lacks 'state' (float32 (14,)), which this policy uses (use_proprio=True)")
        state = np.asarray(observation.get("state", np.zeros(self.config.state_dim)), dtype=np.float32)
        if state.shape != (self.config.state_dim,):
            raise ValueError(f"expected state of shape ({self.config.state_dim},), got {state.shape}")
        return out, torch.from_numpy(state).to(self.device).view(1, 1, -1)

    def _observe(self, observation: Mapping[str, Any], instruction: str) -> None:
        """Encode the new frame into the history (a new instruction resets it first)."""
        if instruction != self._instruction:
            self.reset()
            self._instruction = instruction
            self._lang = self.model.embed_instructions([instruction])
        assert self._lang is not None
        images, state = self._inputs(observation)
        self._tokens.append(self.model.encode_frames(images, state, self._lang)[:, 0])  # (1, N_obs, D)

    def _decode(self) -> np.ndarray:
        tokens = torch.stack(list(self._tokens), dim=1)  # (1, T, N_obs, D), T <= To
        output = self.model.decode(tokens, self._lang)  # the head's prediction, e.g. (1, Ta, A, bins)
        return self.model.output_to_actions(output, self.tokenizer, self.decoding)[0].cpu().numpy()

    @torch.inference_mode()
    def predict_batch(self, batch: Mapping[str, Any]) -> torch.Tensor:
        """The model's point prediction for a training-layout batch (whole episodes at once, for
        open-loop metrics): float32 (B, Ta, A) in original units; the history is untouched."""
        return self.model.predict_actions(batch, self.tokenizer)

    @torch.inference_mode()
    def image_features(self, images: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor] | None:
        """Per camera, the vision encoder's pooled features of uint8 (B, H, W, 3) frames
        (language-independent): (B, C); ``None`` for a policy type without them."""
        encode = getattr(self.model, "encode_images", None)
        return encode(images) if encode is not None else None

    @torch.inference_mode()
    def attention_maps(self, images: Mapping[str, torch.Tensor], instruction: str) -> dict[str, torch.Tensor] | None:
        """Per camera, where the policy looks for ``instruction``: float (B, S, H, W) maps over uint8
        (B, H, W, 3) frames; ``None`` for a policy type without them."""
        maps = getattr(self.model, "attention_maps", None)
        return maps(images, [instruction] * next(iter(images.values())).shape[0]) if maps is not None else None

    def state_fill(self) -> np.ndarray:
        """float32 (14,): what stands in for unknown (NaN) state entries: the training state mean."""
        mean = getattr(self.model, "state_mean", None)
        if mean is None:
            return np.zeros(self.config.state_dim, np.float32)
        return mean.detach().cpu().numpy().astype(np.float32)

    @torch.inference_mode()
    def predict_chunk(self, observation: Mapping[str, Any], instruction: str) -> np.ndarray:
        """Add ``observation`` to the history and return the predicted chunk, float32 (Ta, 7)."""
        self._observe(observation, instruction)
        return self._decode()

    @torch.inference_mode()
    def act(self, observation: Mapping[str, Any], instruction: str) -> np.ndarray:
        """One control step: float32 (7,) action ``[dx, dy, dz, droll, dpitch, dyaw, gripper]``."""
        start = time.perf_counter()
        self._observe(observation, instruction)
        if self.temporal_ensemble is not None:
            self._chunks.append((self._step, self._decode()))
            preds = [c[self._step - t] for t, c in self._chunks if self._step - t < len(c)]  # oldest first
            weights = np.exp(-self.temporal_ensemble * np.arange(len(preds)))
            action = (np.stack(preds) * weights[:, None]).sum(0) / weights.sum()
        else:
            if not self._queue:
                self._queue.extend(self._decode()[: self.execute_steps])
            action = self._queue.popleft()
        self._step += 1
        self.last_latency_ms = (time.perf_counter() - start) * 1e3
        return np.asarray(action, dtype=np.float32)


#: the name the VLA's runner had before any policy type could use it
VLAPolicy = ChunkPolicy


def _registered_name(model: Any) -> str:
    from sim2real.policies.registry import POLICIES

    return next((name for name in POLICIES.names() if POLICIES.get(name) is type(model)), type(model).__name__)


def load_policy(path: str | Path, **options: Any) -> ChunkPolicy:
    """The policy saved in checkpoint folder ``path`` (any registered type), ready to act:
    ``reset()``, ``act(observation, instruction) -> float32 (7,)``, ``describe() -> dict``.

    ``options`` are :meth:`ChunkPolicy.from_checkpoint`'s (``device``, ``temporal_ensemble``,
    ``execute_steps``, ``decoding``, ``num_threads``, ``expected_cameras``): how predicted chunks
    become actions; ``decoding=None`` is the type's own default (the VLA's ``argmax``).
    """
    return ChunkPolicy.from_checkpoint(path, **options)
