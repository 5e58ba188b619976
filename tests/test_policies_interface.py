"""The policy interface: checkpoints written before it load and act as they did, load_policy and
describe() for any registered type, the bc type's head and loss."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from sim2real.policies import POLICIES, BCConfig, BCModel, build_policy, load_policy, save_checkpoint
from sim2real.policies.checkpoint import CheckpointError, load_checkpoint
from sim2real.policies.synthetic import random_batch
from sim2real.policies.tokenizer import ActionTokenizer

FIXTURES = Path(__file__).parent / "fixtures"
OLD = FIXTURES / "vla_checkpoint_v2"  # written by the VLA-only code, before the policy interface
STATS = {
    "action_p01": np.array([-0.05] * 3 + [-0.3] * 3 + [0.0], np.float32),
    "action_p99": np.array([0.05] * 3 + [0.3] * 3 + [1.0], np.float32),
    "state_mean": np.zeros(14, np.float32),
    "state_std": np.ones(14, np.float32),
}
TINY = {"image_size": 32, "vision_width": 4, "embed_dim": 16, "layers": 1, "heads": 2, "tokens_per_frame": 2,
        "keypoints": 4, "language": "learned", "language_dim": 8, "language_buckets": 16}  # fmt: skip


def _observations() -> list[dict]:
    saved = np.load(FIXTURES / "vla_checkpoint_v2_observations.npz")
    return [{"image": {c: saved[f"{i}_{c}"] for c in ("front", "wrist")}, "state": saved[f"{i}_state"]}
            for i in range(4)]  # fmt: skip


@pytest.mark.parametrize(
    "name, options",
    [
        ("raw", {}),
        ("ensemble", {"temporal_ensemble": 0.1, "decoding": "expectation"}),
        ("open_loop", {"execute_steps": 2}),
    ],
)
def test_a_checkpoint_written_before_the_policy_interface_acts_as_it_did(name: str, options: dict) -> None:
    expected = json.loads((FIXTURES / "vla_checkpoint_v2_actions.json").read_text())[name]
    policy = load_policy(OLD, **options)
    policy.reset()
    actions = [policy.act(o, "put the cube in the bowl") for o in _observations()]
    assert all(a.dtype == np.float32 and a.shape == (7,) for a in actions)
    # Argmax decoding lands on bin centres and repeats bit for bit; the expectation over 256 bins sums
    # floats in an order that the CPU's vector width decides, so it repeats to float32 rounding only.
    np.testing.assert_allclose(np.stack(actions), np.array(expected, np.float32), rtol=1e-5, atol=1e-7)
    if policy.describe()["action_selection"]["decoding"] == "argmax":
        assert [a.tolist() for a in actions] == expected


def test_describe_announces_the_layout_and_a_hash_of_the_weights() -> None:
    info = load_policy(OLD, temporal_ensemble=0.1, decoding="expectation").describe()
    assert info["policy_type"] == "vla" and info["action_dim"] == 7 and info["chunk"] == 2
    assert info["cameras"] == ["front", "wrist"] and info["image_size"] == 32 and info["history"] == 2
    assert info["action_selection"] == {"temporal_ensemble": 0.1, "execute_steps": 1, "decoding": "expectation"}
    assert info["control_hz"] is None and info["step"] == 3
    assert len(info["weights_sha256"]) == 64
    json.dumps(info)


def test_a_checkpoint_of_an_unknown_schema_is_refused_with_how_to_convert_it(tmp_path: Path) -> None:
    future = shutil.copytree(OLD, tmp_path / "future")
    meta = json.loads((future / "config.json").read_text())
    (future / "config.json").write_text(json.dumps({**meta, "schema_version": 9}))
    with pytest.raises(CheckpointError, match=r"to convert it, add a migration from version 9 to .*MIGRATIONS"):
        load_checkpoint(future)


def test_bc_regresses_the_chunk_and_its_loss_falls() -> None:
    assert POLICIES.get("bc") is BCModel
    torch.manual_seed(0)
    model = build_policy("bc", BCConfig(**TINY, chunk=3, dropout=0.0))
    model.set_normalization(STATS)
    tokenizer = ActionTokenizer.from_stats(STATS)
    batch = random_batch(4, 1, 3, ("front", "wrist"), 32, seed=0)
    output = model(batch)
    assert output.shape == (4, 3, 7)
    assert torch.allclose(model.predict_actions(batch, tokenizer), torch.tensor((STATS["action_p01"] +
                                                                                 STATS["action_p99"]) / 2))  # fmt: skip
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(15):
        optimizer.zero_grad()
        loss, metrics = model.compute_loss(model(batch), batch, tokenizer)
        loss.backward()
        optimizer.step()
        losses.append(metrics["loss"])
        assert set(metrics) == {"loss", "token_accuracy", "action_l1", "count"}
    assert losses[-1] < 0.5 * losses[0]
    with pytest.raises(ValueError, match="unknown loss 'huber'"):
        BCConfig(loss="huber")


def test_a_bc_checkpoint_loads_and_acts_through_load_policy(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = BCModel(BCConfig(**TINY, history=2, chunk=2))
    model.set_normalization(STATS)
    with torch.no_grad():
        model.head[-1].bias.normal_(0, 0.3, generator=torch.Generator().manual_seed(0))
    save_checkpoint(tmp_path / "bc", model, ActionTokenizer.from_stats(STATS), STATS)
    policy = load_policy(tmp_path / "bc", temporal_ensemble=0.1)
    assert policy.decoding == "expectation" and policy.describe()["policy_type"] == "bc"
    policy.reset()
    actions = [policy.act(o, "push the cube") for o in _observations()]
    assert all(a.shape == (7,) and a.dtype == np.float32 for a in actions)
    assert all((a >= STATS["action_p01"] - 1e-6).all() and (a <= STATS["action_p99"] + 1e-6).all() for a in actions)
    with pytest.raises(ValueError, match="decoding='argmax': expected one of expectation"):
        load_policy(tmp_path / "bc", decoding="argmax")
