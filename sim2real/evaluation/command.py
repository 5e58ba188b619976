"""The hydra schema of ``evaluate.py``: :class:`EvaluationConfig` with the entry point's defaults
list; ``randomization`` is the ``randomization`` group's choice.

It lives in an importable module (not the script) so that launchers which pickle the job
(submitit, Ray) refer to the class by name and the job rebuilds the same config type.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from sim2real.entrypoint import schema_defaults
from sim2real.evaluation.harness import EvaluationConfig


@dataclass
class EvaluateSchema(EvaluationConfig):
    """:class:`EvaluationConfig` with the defaults list that turns the entry-point guard on;
    ``randomization`` is the ``randomization`` group's choice."""

    defaults: list[Any] = field(default_factory=schema_defaults)
    randomization: Any = MISSING


ConfigStore.instance().store(name="evaluate_schema", node=EvaluateSchema)
