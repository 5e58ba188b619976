"""Generate scripted-expert datasets (hydra). See configs/generate.yaml for the options.

    python generate.py task=pick_place randomization=default split=train num_episodes=200 seed=0 \
        workers=2 formats=[zarr,rlds,hdf5] output_dir=data/pick_place
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import hydra
from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from sim2real.entrypoint import schema_defaults


@dataclass
class GenerateSchema:
    """The typed schema hydra checks every override against (a wrong key or type fails at once)."""

    defaults: list[Any] = field(default_factory=schema_defaults)
    task: str = "pick_place"
    split: str = "train"
    num_episodes: int = 200
    seed: int = 0
    formats: list[str] = field(default_factory=lambda: ["zarr", "rlds", "hdf5"])
    codecs: dict[str, Any] = field(default_factory=dict)
    output_dir: str = MISSING
    workers: int = 1
    shard_size: int = 50
    backend: str = "mujoco"
    backend_options: dict[str, Any] = field(default_factory=dict)  # +backend_options.<key>=<value>
    shard_range: list[int] | None = None
    max_attempts: int = 3
    expert_noise: float = 0.0
    expert_noise_rate: float = 1.0
    cameras: list[str] = field(default_factory=lambda: ["front", "wrist"])
    image_size: int = 128
    control_hz: float = 10.0
    physics_hz: float = 500.0
    shadows: bool = False
    build_index: bool = True
    progress: bool = True
    index_only: bool = False
    randomization: Any = MISSING


ConfigStore.instance().store(name="generate_schema", node=GenerateSchema)


@hydra.main(config_path="configs", config_name="generate", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from sim2real.generation import GenerationConfig, build_index, generate

    raw = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(raw, dict)
    if raw.pop("index_only"):
        manifest = build_index(raw["output_dir"])
        print(f"indexed {manifest['num_episodes']} episodes in {manifest['num_shards']} shards at {raw['output_dir']}")
        return
    for key in ("formats", "cameras"):
        raw[key] = tuple(raw[key])
    if raw["shard_range"] is not None:
        raw["shard_range"] = tuple(raw["shard_range"])
    manifest = generate(GenerationConfig(**raw))
    shards = manifest["shards"].values()
    episodes = sum(len(s["episodes"]) for s in shards)
    successes = sum(s["successes"] for s in shards)
    attempts = sum(s["attempts"] for s in shards)
    print(
        f"{episodes} episodes ({successes} successful, yield {successes / max(attempts, 1):.1%}) in {raw['output_dir']}"
    )


if __name__ == "__main__":
    main()
