"""Randomizers: pure samplers from (config, seed) to a SceneSpec. No simulator imports."""

from sim2real.randomizers.config import (
    ConfigError,
    RandomizationConfig,
    config_from_dict,
    load_preset,
    preset_names,
    resolve_randomization,
)
from sim2real.randomizers.sampler import sample_scene
from sim2real.randomizers.splits import HELD_OUT_VARIANTS, SPLITS, VARIANTS

__all__ = [
    "HELD_OUT_VARIANTS",
    "SPLITS",
    "VARIANTS",
    "ConfigError",
    "RandomizationConfig",
    "config_from_dict",
    "load_preset",
    "preset_names",
    "resolve_randomization",
    "sample_scene",
]
