"""Evaluate a policy (hydra): closed loop on held-out scene variants, real-robot replay,
sim-to-real gap report. See configs/evaluate.yaml.

    python evaluate.py policy=vla policy.checkpoint=runs/vla/checkpoints/last \
        variants=[in_distribution,textures] episodes_per_variant=50 workers=2 output_dir=eval/vla
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import hydra
from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from sim2real.entrypoint import schema_defaults
from sim2real.evaluation.action_selection import CLOSED_LOOP_SELECTION as _SELECTION
from sim2real.evaluation.replay import FOREIGN_STARTS as _FOREIGN_STARTS


@dataclass
class PolicySchema:
    name: str = "expert"
    checkpoint: str | None = None
    temporal_ensemble: float | None = _SELECTION.temporal_ensemble
    execute_steps: int = _SELECTION.execute_steps
    decoding: str = _SELECTION.decoding
    # policy=python: an importable object with reset() and act(observation, instruction)
    target: str | None = None  # package.module:ClassName
    kwargs: Any = None  # a dict, e.g. policy.kwargs={gain:2} (Any: a typed dict takes no new keys in struct mode)
    # policy=remote: a server speaking the openpi websocket protocol
    host: str = "127.0.0.1"  # a host name or address, or a ws:// URI
    port: int | None = 8000
    api_key: str | None = None  # sent as 'Authorization: Api-Key <key>'
    mapping: str = "sim2real"  # request/reply convention: sim2real | libero (sim2real/remote/mapping.py)
    connect_timeout: float = 10.0  # s, connection and metadata
    reply_timeout: float = 30.0  # s, each reply
    first_reply_timeout: float = 120.0  # s, the check's one reply before the rollouts (a server may compile first)
    replan_steps: int | None = None  # actions played per returned chunk; null: the mapping's


@dataclass
class ReplaySchema:
    path: str | None = None
    mapping: str | None = None
    episodes: int = 25
    foreign_start: str = _FOREIGN_STARTS[0]  # another robot's dynamics replay: workspace_fit | recorded_ee


@dataclass
class RankingSchema:
    real_success_csv: str | None = None


@dataclass
class EvaluateSchema:
    """The typed schema hydra checks every override against."""

    defaults: list[Any] = field(default_factory=schema_defaults)
    policy: PolicySchema = field(default_factory=PolicySchema)
    variants: list[str] = field(default_factory=lambda: ["in_distribution"])
    tasks: list[str] = field(default_factory=lambda: ["pick_place", "push", "stack"])
    episodes_per_variant: int = 20
    workers: int = 1
    seed: int = 1000
    randomization: Any = MISSING
    backend: str = "mujoco"
    backend_options: dict[str, Any] = field(default_factory=dict)  # +backend_options.<key>=<value>
    output_dir: str = MISSING
    reference_rows: bool = True
    videos: int = 4
    progress: bool = True
    replay: ReplaySchema = field(default_factory=ReplaySchema)
    ranking: RankingSchema = field(default_factory=RankingSchema)


ConfigStore.instance().store(name="evaluate_schema", node=EvaluateSchema)


@hydra.main(config_path="configs", config_name="evaluate", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from sim2real.evaluation.harness import EvaluationConfig, run_evaluation
    from sim2real.evaluation.policies import rollout_option_keys

    raw = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(raw, dict)
    config = EvaluationConfig(
        policy=raw["policy"]["name"], checkpoint=raw["policy"]["checkpoint"],
        temporal_ensemble=raw["policy"]["temporal_ensemble"], execute_steps=raw["policy"]["execute_steps"],
        decoding=raw["policy"]["decoding"],
        variants=tuple(raw["variants"]),
        tasks=tuple(raw["tasks"]), episodes_per_variant=raw["episodes_per_variant"], workers=raw["workers"],
        seed=raw["seed"], randomization=raw["randomization"], output_dir=raw["output_dir"],
        reference_rows=raw["reference_rows"], videos=raw["videos"], replay_path=raw["replay"]["path"],
        replay_mapping=raw["replay"]["mapping"], replay_episodes=raw["replay"]["episodes"],
        replay_foreign_start=raw["replay"]["foreign_start"],
        real_success_csv=raw["ranking"]["real_success_csv"], progress=raw["progress"],
        policy_options={key: raw["policy"][key] for key in rollout_option_keys(raw["policy"]["name"])},
        backend=raw["backend"], backend_options=raw["backend_options"],
    )  # fmt: skip
    out = run_evaluation(config)
    print(f"report: {out / 'report.md'} (metrics: {out / 'metrics.json'})")


if __name__ == "__main__":
    main()
