"""VLA model: shapes across configurations, causality, masking, encoder features, registry, config."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from sim2real.policies import POLICIES, VLAConfig, VLAModel, build_policy
from sim2real.policies.synthetic import random_batch, tiny_config
from sim2real.policies.tokenizer import ActionTokenizer
from sim2real.registry import UnknownNameError

TOKENIZER = ActionTokenizer([-0.05] * 6 + [0.0], [0.05] * 6 + [1.0])


def _model(seed: int = 0, **overrides: object) -> VLAModel:
    torch.manual_seed(seed)
    model = VLAModel(tiny_config(**overrides)).eval()
    torch.nn.init.normal_(model.head[-1].weight, std=0.5)  # the head starts at zero: make outputs input-dependent
    return model


def _batch(cfg: VLAConfig, batch_size: int = 2, seed: int = 0) -> dict:
    return random_batch(batch_size, cfg.history, cfg.chunk, cfg.cameras, cfg.image_size, seed=seed)


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"vision_encoder": "resnet18"},
        {"vision_encoder": "vit"},
        {"film": False, "language_token": False},
        {"use_proprio": False, "readout_tokens": 2},
        {"share_vision_encoder": True, "cameras": ("front", "wrist", "side")},
        {"history": 3, "chunk": 2, "bins": 32},
    ],
)
def test_forward_shapes(overrides):
    model = _model(**overrides)
    cfg = model.config
    batch = _batch(cfg, batch_size=3)
    logits = model(batch)
    assert logits.shape == (3, cfg.chunk, 7, cfg.bins) and logits.dtype == torch.float32
    assert model(batch, all_timesteps=True).shape == (3, cfg.history, cfg.chunk, 7, cfg.bins)
    assert torch.isfinite(logits).all()
    tok = ActionTokenizer(TOKENIZER.p01, TOKENIZER.p99, bins=cfg.bins)
    loss, metrics = model.loss(batch, tok)
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert set(metrics) >= {"loss", "token_accuracy", "action_l1"}
    assert model.predict_actions(batch, tok).shape == (3, cfg.chunk, 7)


def test_images_of_another_size_are_resized():
    model = _model()
    batch = random_batch(2, 2, 4, ("front", "wrist"), image_size=48)
    assert model(batch).shape == (2, 4, 7, 256)


@pytest.mark.parametrize("sigma", [0.0, 2.0])
def test_initial_loss_is_uniform_over_bins(sigma: float):
    model = VLAModel(tiny_config(target_sigma_bins=sigma))
    batch = _batch(model.config)
    loss, _ = model.loss(batch, TOKENIZER)
    entropy = 0.0  # of the targets: 0 for one-hot bins
    if sigma > 0:
        targets = TOKENIZER.soft_targets(batch["actions"], sigma)
        per_step = -(targets * targets.clamp_min(1e-12).log()).sum(-1).mean(-1)  # (B, Ta)
        entropy = float(per_step[batch["action_mask"]].mean())
    assert abs(float(loss.detach()) - (np.log(256.0) - entropy)) < 1e-3


def test_causal_mask_future_frames_do_not_change_earlier_outputs():
    model = _model(history=3)
    batch = _batch(model.config)
    before = model(batch, all_timesteps=True)
    changed = {**batch, "images": {c: x.clone() for c, x in batch["images"].items()}, "state": batch["state"].clone()}
    changed["images"]["front"][:, 2] = 255 - changed["images"]["front"][:, 2]
    changed["state"][:, 2] += 3.0
    after = model(changed, all_timesteps=True)
    assert torch.allclose(before[:, :2], after[:, :2], atol=1e-5)  # frames 0, 1 unaffected by frame 2
    assert not torch.allclose(before[:, 2], after[:, 2], atol=1e-3)
    changed["images"]["wrist"][:, 0] = 0  # an earlier frame does change later outputs
    assert not torch.allclose(before[:, 2], model(changed, all_timesteps=True)[:, 2], atol=1e-3)


def test_padded_history_frames_are_ignored():
    model = _model(history=3)
    batch = _batch(model.config)
    batch["obs_mask"] = torch.tensor([[False, False, True], [False, True, True]])
    before = model(batch)
    changed = {**batch, "images": {c: x.clone() for c, x in batch["images"].items()}, "state": batch["state"].clone()}
    changed["images"]["front"][0, :2] = 0
    changed["images"]["wrist"][1, 0] = 7
    changed["state"][0, :2] = float("nan")
    assert torch.allclose(before, model(changed), atol=1e-5)
    # a valid frame does matter
    changed["images"]["front"][1, 1] = 0
    assert not torch.allclose(before[1], model(changed)[1], atol=1e-3)


def test_padded_action_steps_do_not_count_in_the_loss():
    model = _model()
    batch = _batch(model.config)
    batch["action_mask"] = torch.tensor([[True, True, False, False], [True, True, True, True]])
    loss, metrics = model.loss(batch, TOKENIZER)
    assert metrics["count"] == (2 + 4) * 7
    changed = {**batch, "actions": batch["actions"].clone()}
    changed["actions"][0, 2:] = 10.0
    loss2, metrics2 = model.loss(changed, TOKENIZER)
    assert torch.equal(loss, loss2) and metrics == metrics2


def test_instruction_and_state_change_the_output():
    model = _model()
    batch = _batch(model.config)
    out = model(batch)
    other = {**batch, "instruction": ["push the green cylinder", "open the drawer"]}
    assert not torch.allclose(out, model(other), atol=1e-3)
    moved = {**batch, "state": batch["state"] + 1.0}
    assert not torch.allclose(out, model(moved), atol=1e-3)
    unknown = {**batch, "state": torch.full_like(batch["state"], float("nan"))}
    assert torch.isfinite(model(unknown)).all()  # NaN (unknown) state entries are zeroed


def test_encode_images_and_attention_maps():
    model = _model()
    images = {c: x[:, -1] for c, x in _batch(model.config, batch_size=3)["images"].items()}
    feats = model.encode_images(images)
    assert set(feats) == {"front", "wrist"} and feats["front"].shape == (3, 4 * model.config.vision_width)
    conditioned = model.encode_images(images, ["reach the red block"] * 3)
    assert conditioned["front"].shape == feats["front"].shape
    seq = model.encode_images({c: x.unsqueeze(1).expand(-1, 2, -1, -1, -1) for c, x in images.items()})
    assert seq["wrist"].shape == (3, 2, 4 * model.config.vision_width)
    maps = model.attention_maps(images, ["reach the red block"] * 3, upsample=False)
    assert maps["front"].shape == (3, model.config.tokens_per_frame, 2, 2)
    assert torch.allclose(maps["front"].sum(dim=(-2, -1)), torch.ones(3, model.config.tokens_per_frame), atol=1e-5)
    assert model.attention_maps(images, ["x"] * 3)["wrist"].shape == (3, model.config.tokens_per_frame, 32, 32)


def test_missing_camera_and_bad_input_are_reported():
    model = _model()
    batch = _batch(model.config)
    with pytest.raises(KeyError, match=r"images lack cameras \['wrist'\]; the policy uses \['front', 'wrist'\]"):
        model({**batch, "images": {"front": batch["images"]["front"]}})
    with pytest.raises(TypeError, match="instructions must be a sequence of strings, not one string"):
        model.embed_instructions("reach")
    with pytest.raises(ValueError, match="3 frames given, the policy's history is 2"):
        tokens = torch.zeros(1, 3, model.num_obs_tokens, 64)
        model.decode(tokens, model.embed_instructions(["a"]))


def test_vision_weights_from_a_local_file(tmp_path):
    donor = VLAModel(tiny_config(film=False))
    path = tmp_path / "encoder.safetensors"
    save_file({f"model.{k}": v.contiguous() for k, v in donor.vision["front"].state_dict().items()}, str(path))
    model = VLAModel(tiny_config(vision_weights=str(path)))
    for cam in ("front", "wrist"):
        for key, value in donor.vision["front"].state_dict().items():
            assert torch.equal(model.vision[cam].state_dict()[key], value)
    wrong = tmp_path / "wrong.safetensors"
    save_file({"convs.0.weight": torch.zeros(1)}, str(wrong))
    with pytest.raises(ValueError, match=r"wrong\.safetensors: missing 11 encoder weights, e\.g\. \['convs\.1"):
        VLAModel(tiny_config(vision_weights=str(wrong)))
    with pytest.raises(FileNotFoundError, match=r"vision weights file not found: .*nowhere\.pt"):
        VLAModel(tiny_config(vision_weights=str(tmp_path / "nowhere.pt")))


def test_registry_and_config():
    assert POLICIES.get("vla") is VLAModel and "vla" in POLICIES.names()
    with pytest.raises(UnknownNameError, match="known policys: bc, vla"):
        POLICIES.get("diffusion")
    assert isinstance(build_policy("vla", tiny_config()), VLAModel)
    cfg = tiny_config(cameras=["front"])
    assert cfg.cameras == ("front",)
    assert VLAConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown VLAConfig keys"):
        VLAConfig.from_dict({**cfg.to_dict(), "colour": 1})
    with pytest.raises(ValueError, match="known: small_cnn, resnet18, vit"):
        tiny_config(vision_encoder="efficientnet")
    with pytest.raises(ValueError, match="embed_dim 30 is not divisible by heads 4"):
        tiny_config(embed_dim=30, heads=4)
    assert VLAConfig().language == "minilm" and VLAConfig().vision_encoder == "small_cnn"
    assert dataclasses.replace(cfg, chunk=2).chunk == 2


def test_config_is_an_omegaconf_structured_config():
    omegaconf = pytest.importorskip("omegaconf")
    node = omegaconf.OmegaConf.structured(VLAConfig)
    assert node.vision_encoder == "small_cnn" and list(node.cameras) == ["front", "wrist"]
    with pytest.raises(omegaconf.errors.ConfigAttributeError):
        node.colour = 1


def test_importing_policies_loads_no_simulator_and_no_optional_package():
    import subprocess
    import sys

    code = (
        "import sys, sim2real.policies, sim2real.policies.training, sim2real.policies.inference; "
        "print(sorted(m for m in ('mujoco', 'isaacsim', 'sentence_transformers', 'transformers', 'peft') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
