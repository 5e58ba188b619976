"""Scripted experts, one per task, keyed by task name: ``EXPERTS.get(task)(scene, rng)``."""

from sim2real.sim.experts import scripted as _scripted  # noqa: F401
from sim2real.sim.experts.base import EXPERTS, TRAINING_DART, DartNoise, Expert, make_expert

__all__ = ["EXPERTS", "TRAINING_DART", "DartNoise", "Expert", "make_expert"]
