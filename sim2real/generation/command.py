"""The hydra schema of ``generate.py``: :class:`GenerationConfig` plus the entry point's own keys.

It lives in an importable module (not the script) so that launchers which pickle the job
(submitit, Ray) refer to the class by name and the job rebuilds the same config type.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore

from sim2real.entrypoint import schema_defaults
from sim2real.generation.config import GenerationConfig


@dataclass
class GenerateCommand(GenerationConfig):
    """The options hydra checks every override against (a wrong key or type fails at once), plus
    ``index_only``: only merge the shard records and write the dataset-wide views."""

    defaults: list[Any] = field(default_factory=schema_defaults)
    index_only: bool = False


ConfigStore.instance().store(name="generate_schema", node=GenerateCommand)
