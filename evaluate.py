"""Evaluate a policy (hydra): closed loop on held-out scene variants, real-robot replay,
sim-to-real gap report. The keys, types and defaults are
:class:`sim2real.evaluation.harness.EvaluationConfig`'s; see configs/evaluate.yaml.

    python evaluate.py policy=vla policy.checkpoint=runs/vla/checkpoints/last \\
        variants=[in_distribution,textures] episodes_per_variant=50 workers=2 output_dir=eval/vla
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from sim2real.entrypoint import runtime_config
from sim2real.evaluation.command import EvaluateSchema


@hydra.main(config_path="configs", config_name="evaluate", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from sim2real.evaluation.harness import run_evaluation

    out = run_evaluation(runtime_config(cfg, EvaluateSchema))
    print(f"report: {out / 'report.md'} (metrics: {out / 'metrics.json'})")


if __name__ == "__main__":
    main()
