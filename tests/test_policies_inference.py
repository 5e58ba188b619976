"""Inference API: act() shape/dtype, history handling against the batched model, ensembling, checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sim2real.policies.checkpoint import save_checkpoint
from sim2real.policies.inference import VLAPolicy
from sim2real.policies.synthetic import make_episodes, tiny_config
from sim2real.policies.tokenizer import ActionTokenizer
from sim2real.policies.vla import VLAModel

STATS = {
    "action_p01": np.array([-0.05] * 6 + [0.0], np.float32),
    "action_p99": np.array([0.05] * 6 + [1.0], np.float32),
    "state_mean": np.zeros(14, np.float32),
    "state_std": np.ones(14, np.float32),
}
TOK = ActionTokenizer.from_stats(STATS)
INSTRUCTION = "reach the red block"


def _model(history: int = 2) -> VLAModel:
    torch.manual_seed(0)
    model = VLAModel(tiny_config(history=history))
    torch.nn.init.normal_(model.head[-1].weight, std=1.0)
    return model.eval()


def _observations(n: int = 5) -> list[dict]:
    episode = make_episodes(1, seed=1, image_size=32, max_steps=n)[0]
    return [
        {"image": {c: episode.images[c][t] for c in ("front", "wrist")}, "state": episode.state[t]}
        for t in range(len(episode))
    ]


def _batched_chunk(model: VLAModel, frames: list[dict], history: int) -> np.ndarray:
    """The chunk the batched model predicts for the last frame, with the loader's front padding."""
    window = frames[-history:]
    pad = history - len(window)
    window = [window[0]] * pad + window
    batch = {
        "images": {c: torch.from_numpy(np.stack([f["image"][c] for f in window]))[None] for c in ("front", "wrist")},
        "state": torch.from_numpy(np.stack([f["state"] for f in window]))[None],
        "instruction": [INSTRUCTION],
        "obs_mask": torch.tensor([[False] * pad + [True] * len(window[pad:])]),
    }
    return model.predict_actions(batch, TOK)[0].numpy()


def test_act_returns_a_float32_action():
    policy = VLAPolicy(_model(), TOK)
    obs = _observations(1)[0]
    action = policy.act(obs, INSTRUCTION)
    assert action.shape == (7,) and action.dtype == np.float32 and np.isfinite(action).all()
    assert (action >= STATS["action_p01"]).all() and (action <= STATS["action_p99"]).all()
    assert policy.last_latency_ms > 0


@pytest.mark.parametrize("history", [1, 2, 3])
def test_history_matches_the_batched_model_with_padding(history):
    model = _model(history)
    policy = VLAPolicy(model, TOK)
    frames = _observations(5)
    for t in range(len(frames)):
        chunk = policy.predict_chunk(frames[t], INSTRUCTION)
        assert chunk.shape == (4, 7) and chunk.dtype == np.float32
        assert np.allclose(chunk, _batched_chunk(model, frames[: t + 1], history), atol=1e-6), t


def test_reset_and_new_instruction_clear_the_history():
    policy = VLAPolicy(_model(), TOK)
    frames = _observations(3)
    first = policy.predict_chunk(frames[0], INSTRUCTION)
    policy.predict_chunk(frames[1], INSTRUCTION)
    assert len(policy._tokens) == 2
    policy.reset()
    assert len(policy._tokens) == 0
    assert np.array_equal(policy.predict_chunk(frames[0], INSTRUCTION), first)
    policy.predict_chunk(frames[1], "reach the blue block")
    assert len(policy._tokens) == 1  # a new instruction starts a new history


def test_temporal_ensembling_weights_older_chunks_first():
    policy = VLAPolicy(_model(), TOK, temporal_ensemble=0.5)
    chunks = [np.full((4, 7), float(10 * i), np.float32) + np.arange(4, dtype=np.float32)[:, None] for i in range(3)]
    calls = iter(chunks)
    policy._decode = lambda: next(calls)  # type: ignore[method-assign]
    obs = _observations(1)[0]
    assert np.allclose(policy.act(obs, INSTRUCTION), 0.0)  # step 0: chunk 0, element 0
    w = np.exp(-0.5 * np.arange(2))
    assert np.allclose(policy.act(obs, INSTRUCTION), (w * [1.0, 10.0]).sum() / w.sum())
    w = np.exp(-0.5 * np.arange(3))
    assert np.allclose(policy.act(obs, INSTRUCTION), (w * [2.0, 11.0, 20.0]).sum() / w.sum())


def test_chunk_execution_plays_k_actions_per_prediction_and_keeps_every_frame():
    policy = VLAPolicy(_model(), TOK, execute_steps=3)
    decoded: list[int] = []

    def decode() -> np.ndarray:
        decoded.append(len(policy._tokens))
        return np.full((4, 7), float(len(decoded)), np.float32) + np.arange(4, dtype=np.float32)[:, None]

    policy._decode = decode  # type: ignore[method-assign]
    frames = _observations(7)
    actions = [policy.act(frame, INSTRUCTION)[0] for frame in frames]
    assert actions == [1.0, 2.0, 3.0, 2.0, 3.0, 4.0, 3.0]  # chunk n, elements 0..2
    assert len(decoded) == 3 and len(policy._tokens) == 2  # every frame entered the history
    with pytest.raises(ValueError, match=r"execute_steps=5: must be in \[1, 4\]"):
        VLAPolicy(_model(), TOK, execute_steps=5)
    with pytest.raises(ValueError, match=r"temporal_ensemble=0.1: .* needs execute_steps=1 \(set temporal_"):
        VLAPolicy(_model(), TOK, execute_steps=2, temporal_ensemble=0.1)


def test_from_checkpoint_and_bad_observations(tmp_path):
    model = _model()
    path = save_checkpoint(tmp_path / "ckpt", model, TOK, STATS)
    policy = VLAPolicy.from_checkpoint(path, device="cpu")
    obs = _observations(1)[0]
    reference = VLAPolicy(model, TOK)
    assert np.array_equal(policy.act(obs, INSTRUCTION), reference.act(obs, INSTRUCTION))
    with pytest.raises(KeyError, match=r"observation lacks camera 'wrist'; the policy uses \['front', 'wrist'\]"):
        policy.act({"image": {"front": obs["image"]["front"]}, "state": obs["state"]}, INSTRUCTION)
    with pytest.raises(ValueError, match=r"camera 'front': expected uint8 \(H, W, 3\), got float32"):
        policy.act(
            {"image": {c: x.astype(np.float32) for c, x in obs["image"].items()}, "state": obs["state"]}, INSTRUCTION
        )
    with pytest.raises(KeyError, match="lacks 'state'"):
        policy.act({"image": obs["image"]}, INSTRUCTION)
    with pytest.raises(ValueError, match=r"state of shape \(14,\)"):
        policy.act({"image": obs["image"], "state": np.zeros(3)}, INSTRUCTION)
