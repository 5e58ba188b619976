"""Evaluation: closed-loop success, real-robot replay, sim-vs-real gap metrics and the report.

:mod:`sim2real.evaluation.metrics` holds the pure metric functions (numpy/scipy only);
:mod:`sim2real.evaluation.document` the metrics.json document (frozen dataclasses);
:mod:`sim2real.evaluation.report` writes the report folder from it with
:mod:`~sim2real.evaluation.plots` (matplotlib, imported only when it draws),
:mod:`~sim2real.evaluation.markdown` and :mod:`~sim2real.evaluation.media` (videos, contact sheets).
"""

from sim2real.evaluation.metrics import (
    ActionErrors,
    BootstrapInterval,
    FactorBin,
    RankingInputError,
    SuccessRate,
    TrajectoryErrors,
    action_errors,
    action_scale,
    aggregate_trajectory_errors,
    bootstrap_interval,
    categorical_breakdown,
    factor_breakdown,
    frechet_distance,
    frechet_distance_from_features,
    mmrv,
    open_loop_gap,
    pearson_r,
    ranking_agreement,
    token_accuracy,
    trajectory_errors,
    wilson_interval,
)

__all__ = [
    "ActionErrors",
    "BootstrapInterval",
    "FactorBin",
    "RankingInputError",
    "SuccessRate",
    "TrajectoryErrors",
    "action_errors",
    "action_scale",
    "aggregate_trajectory_errors",
    "bootstrap_interval",
    "categorical_breakdown",
    "factor_breakdown",
    "frechet_distance",
    "frechet_distance_from_features",
    "mmrv",
    "open_loop_gap",
    "pearson_r",
    "ranking_agreement",
    "token_accuracy",
    "trajectory_errors",
    "wilson_interval",
]
