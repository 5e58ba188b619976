"""Randomizers: pure samplers from (config, seed) to a SceneSpec. No simulator imports."""

from sim2real.randomizers.sampler import sample_scene

__all__ = ["sample_scene"]
