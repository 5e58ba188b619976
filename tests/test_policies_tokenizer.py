"""Action tokenizer: round-trip error, clipping, degenerate dimensions, serialisation."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from sim2real.policies.tokenizer import ACTION_NAMES, ActionTokenizer

P01 = np.array([-0.05, -0.05, -0.02, -0.3, -0.3, -0.3, 0.0], dtype=np.float32)
P99 = np.array([0.05, 0.05, 0.03, 0.3, 0.3, 0.3, 1.0], dtype=np.float32)


def test_round_trip_error_is_at_most_half_a_bin():
    tok = ActionTokenizer(P01, P99)
    rng = np.random.default_rng(0)
    actions = rng.uniform(P01, P99, size=(5000, 7)).astype(np.float32)
    actions[:7] = P01  # the edges too
    actions[7:14] = P99
    tokens = tok.encode(actions)
    assert tokens.dtype == np.int64 and tokens.shape == actions.shape
    assert tokens.min() >= 0 and tokens.max() <= 255
    decoded = tok.decode(tokens)
    assert decoded.dtype == np.float32
    half_bin = (P99 - P01) / 256 / 2
    err = np.abs(decoded - actions)
    assert (err <= half_bin * (1 + 1e-4) + 1e-7).all(), (err.max(0), half_bin)
    report = tok.quantization_error(actions)
    assert (report.max_abs <= half_bin * (1 + 1e-4) + 1e-7).all()
    assert (report.mean_abs < report.max_abs + 1e-12).all()
    assert np.allclose(report.bin_width, (P99 - P01) / 256)
    assert (report.clipped_fraction == 0).all()
    assert set(report.to_dict()) == set(ACTION_NAMES)


def test_out_of_range_actions_are_clipped_to_the_edge_bins():
    tok = ActionTokenizer(P01, P99)
    actions = np.stack([P01 - 1.0, P99 + 1.0])
    tokens = tok.encode(actions)
    assert (tokens[0] == 0).all() and (tokens[1] == 255).all()
    report = tok.quantization_error(actions)
    assert (report.clipped_fraction == 1.0).all()


def test_degenerate_dimensions_give_no_nan():
    low = P01.copy()
    high = P99.copy()
    high[3] = low[3] = 0.0  # never used
    high[4] = low[4] = 0.7  # constant, non-zero
    tok = ActionTokenizer(low, high)
    assert tok.degenerate.tolist() == [False, False, False, True, True, False, False]
    actions = np.tile(low, (4, 1))
    actions[:, 3] = [0.0, 1.0, -1.0, np.nan]
    tokens = tok.encode(actions)
    assert (tokens[:, 3] == 128).all() and (tokens[:, 4] == 128).all()
    decoded = tok.decode(tokens)
    assert np.isfinite(decoded).all()
    assert (decoded[:, 3] == 0.0).all() and np.allclose(decoded[:, 4], 0.7)
    report = tok.quantization_error(np.tile(low, (3, 1)))
    assert report.max_abs[3] == 0 and report.max_abs[4] < 1e-6 and report.bin_width[3] == 0
    assert np.isfinite(tok.normalize(actions)).all()


def test_numpy_and_torch_agree():
    tok = ActionTokenizer(P01, P99)
    actions = np.random.default_rng(1).uniform(P01, P99, size=(3, 4, 7)).astype(np.float32)
    t_tokens = tok.encode(torch.from_numpy(actions))
    assert isinstance(t_tokens, torch.Tensor) and t_tokens.dtype == torch.int64
    assert np.array_equal(t_tokens.numpy(), tok.encode(actions))
    t_dec = tok.decode(t_tokens)
    assert t_dec.dtype == torch.float32 and t_dec.shape == (3, 4, 7)
    assert np.allclose(t_dec.numpy(), tok.decode(tok.encode(actions)))


def test_spec_round_trip_through_json():
    tok = ActionTokenizer(P01, P99, bins=64)
    again = ActionTokenizer.from_dict(json.loads(json.dumps(tok.to_dict())))
    assert again.bins == 64 and np.array_equal(again.p01, tok.p01) and np.array_equal(again.p99, tok.p99)
    actions = np.random.default_rng(2).uniform(P01, P99, size=(100, 7))
    assert np.array_equal(again.encode(actions), tok.encode(actions))
    stats = {"action_p01": P01, "action_p99": P99}
    assert ActionTokenizer.from_stats(stats).to_dict()["p99"] == tok.to_dict()["p99"]


def test_invalid_specs_are_refused():
    with pytest.raises(ValueError, match="p99 < p01"):
        ActionTokenizer(P99, P01)
    with pytest.raises(ValueError, match=r"p01 has shape \(7,\) but p99 has shape \(3,\)"):
        ActionTokenizer(P01, P99[:3])
    with pytest.raises(ValueError, match="p01 and p99 must be finite"):
        ActionTokenizer(np.full(7, np.nan), P99)
    with pytest.raises(ValueError, match=r"expected actions with last dim 7, got shape \(2, 6\)"):
        ActionTokenizer(P01, P99).encode(np.zeros((2, 6)))
    with pytest.raises(ValueError, match="unknown action tokenizer type"):
        ActionTokenizer.from_dict({"type": "fast", "bins": 2, "p01": [0], "p99": [1]})


def test_expected_decoding_is_the_mean_over_bin_centres() -> None:
    tok = ActionTokenizer(np.full(2, -1.0), np.full(2, 1.0), bins=4)  # centres -0.75, -0.25, 0.25, 0.75
    logits = torch.full((1, 2, 4), -1e9)
    logits[0, 0, 1] = logits[0, 0, 2] = 0.0  # dim 0: half -0.25, half 0.25 -> 0
    logits[0, 1, 3] = 0.0  # dim 1: all on the last bin -> 0.75
    assert torch.allclose(tok.decode_expected(logits), torch.tensor([[0.0, 0.75]]), atol=1e-6)
    with pytest.raises(ValueError, match=r"expected logits \(\.\.\., 2, 4\)"):
        tok.decode_expected(torch.zeros(1, 2, 5))


def test_soft_targets_are_gaussians_over_bins_that_sum_to_one() -> None:
    tok = ActionTokenizer(np.full(2, -1.0), np.full(2, 1.0), bins=64)
    actions = torch.tensor([[0.0, 0.99]])
    soft = tok.soft_targets(actions, sigma_bins=2.0)
    assert soft.shape == (1, 2, 64) and torch.allclose(soft.sum(-1), torch.ones(1, 2))
    centres = (torch.arange(64) + 0.5) / 64 * 2 - 1
    assert abs(float((soft[0, 0] * centres).sum())) < 1e-6  # centred on the action
    assert int(soft[0, 1].argmax()) == int(tok.encode(actions)[0, 1])  # peak at the target bin (near an edge)
    assert float(soft[0, 0].max()) < 0.25  # spread over neighbouring bins
    with pytest.raises(ValueError, match="sigma_bins must be > 0"):
        tok.soft_targets(actions, 0.0)
