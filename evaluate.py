"""Evaluate a policy (hydra): closed loop on held-out scene variants, real-robot replay,
sim-to-real gap report. The keys, types and defaults are
:class:`sim2real.evaluation.harness.EvaluationConfig`'s; see configs/evaluate.yaml.

    python evaluate.py policy=vla policy.checkpoint=runs/vla/checkpoints/last \\
        variants=[in_distribution,textures] episodes_per_variant=50 workers=2 output_dir=eval/vla
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import hydra
from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig

from sim2real.entrypoint import runtime_config, schema_defaults
from sim2real.evaluation.harness import EvaluationConfig


@dataclass
class EvaluateSchema(EvaluationConfig):
    """:class:`EvaluationConfig` with the defaults list that turns the entry-point guard on;
    ``randomization`` is the ``randomization`` group's choice."""

    defaults: list[Any] = field(default_factory=schema_defaults)
    randomization: Any = MISSING


ConfigStore.instance().store(name="evaluate_schema", node=EvaluateSchema)


@hydra.main(config_path="configs", config_name="evaluate", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from sim2real.evaluation.harness import run_evaluation

    out = run_evaluation(runtime_config(cfg, EvaluationConfig))
    print(f"report: {out / 'report.md'} (metrics: {out / 'metrics.json'})")


if __name__ == "__main__":
    main()
