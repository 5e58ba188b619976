"""Generate scripted-expert datasets (hydra). Every option, its type and default: ``GenerationConfig``
(sim2real/generation/config.py); configs/generate.yaml picks the randomization preset.

    python generate.py task=pick_place randomization=default split=train num_episodes=200 seed=0 \
        workers=2 formats=[zarr,rlds,hdf5] output_dir=data/pick_place
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from sim2real.entrypoint import runtime_config
from sim2real.generation.command import GenerateCommand


@hydra.main(config_path="configs", config_name="generate", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from sim2real.generation import build_index, generate

    command = runtime_config(cfg, GenerateCommand)
    if command.index_only:
        manifest = build_index(command.output_dir)
        print(f"indexed {manifest['num_episodes']} episodes in {manifest['num_shards']} shards at {command.output_dir}")
        return
    manifest = generate(command)
    shards = manifest["shards"].values()
    episodes = sum(len(s["episodes"]) for s in shards)
    successes = sum(s["successes"] for s in shards)
    attempts = sum(s["attempts"] for s in shards)
    print(
        f"{episodes} episodes ({successes} successful, yield {successes / max(attempts, 1):.1%}) "
        f"in {command.output_dir}"
    )


if __name__ == "__main__":
    main()
