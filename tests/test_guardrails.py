"""The safety stops of closed-loop evaluation, at their limits."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from sim2real.evaluation.closed_loop import EvalJob, guardrail_stop

LIMITS = EvalJob(policy="expert", policy_options={}, randomization="none", seed=0, episodes=())


def _state(table: float = 0.0, contact: float = 0.0) -> SimpleNamespace:
    return SimpleNamespace(robot_table_force=table, robot_contact_force=contact)


def test_the_limits_are_a_real_cells_10_and_60_newtons() -> None:
    assert (LIMITS.max_table_force, LIMITS.max_contact_force) == (10.0, 60.0)


@pytest.mark.parametrize(
    ("table", "contact", "reason"),
    [(9.9, 59.9, None), (10.0, 60.0, None), (10.1, 0.0, "table_collision"), (0.0, 60.1, "excess_contact_force"),
     (11.0, 70.0, "table_collision")],
)  # fmt: skip
def test_a_force_over_its_limit_stops_the_episode(table: float, contact: float, reason: str | None) -> None:
    assert guardrail_stop(_state(table, contact), LIMITS.max_table_force, LIMITS.max_contact_force) == reason
