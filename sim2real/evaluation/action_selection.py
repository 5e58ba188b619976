"""How closed-loop evaluation turns a VLA's predicted chunks into played actions, by default.

One frozen dataclass, importable without torch: ``EvaluationConfig``, the ``vla`` rollout
policy and ``evaluate.py``'s schema take their defaults from :data:`CLOSED_LOOP_SELECTION`;
``configs/policy/vla.yaml`` repeats them for readers (a test keeps them equal).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ActionSelection:
    """``temporal_ensemble``: ACT's temporal-ensemble weight ``m`` (``None``: play the newest
    chunk's action); ``execute_steps``: actions of each chunk played open loop (1..chunk);
    ``decoding``: ``expectation`` (the mean over bin centres) or ``argmax`` (the most likely bin).
    See :class:`sim2real.policies.inference.VLAPolicy`."""

    temporal_ensemble: float | None = 0.1
    execute_steps: int = 1
    decoding: str = "expectation"


#: the evaluation defaults (closed-loop evaluation found them the more precise)
CLOSED_LOOP_SELECTION = ActionSelection()
