"""Closed-loop evaluation's per-episode bookkeeping: the stage an episode ends in and the seed of its scene."""

from __future__ import annotations

import itertools

from sim2real.evaluation.closed_loop import NO_MILESTONE, VARIANT_ORDER, episode_stage, scene_seed
from sim2real.rollout import derived_seed
from sim2real.sim.tasks import TASKS

MILESTONES = ("reach", "grasp", "lift")


def test_episode_stage_is_success_else_the_furthest_milestone_else_none() -> None:
    assert episode_stage(True, MILESTONES, 0) == "success"
    assert episode_stage(True, MILESTONES, 2) == "success"
    assert episode_stage(False, MILESTONES, 0) == NO_MILESTONE == "none"
    assert episode_stage(False, MILESTONES, 1) == "reach"
    assert episode_stage(False, MILESTONES, 2) == "grasp"
    assert episode_stage(False, MILESTONES, 3) == "lift"


def test_scene_seed_is_derived_from_variant_task_and_episode_indices() -> None:
    tasks = TASKS.names()
    assert scene_seed(5, "in_distribution", tasks[0], 0) == derived_seed(5, 0, 0, 0)
    assert scene_seed(5, VARIANT_ORDER[2], tasks[1], 3) == derived_seed(5, 2, 1, 3)
    assert scene_seed(7, VARIANT_ORDER[-1], tasks[-1], 1) == derived_seed(7, len(VARIANT_ORDER) - 1, len(tasks) - 1, 1)
    seeds = {
        scene_seed(0, variant, task, episode)
        for variant, task, episode in itertools.product(VARIANT_ORDER, tasks, range(3))
    }
    assert len(seeds) == len(VARIANT_ORDER) * len(tasks) * 3  # every scene differs
    assert scene_seed(0, "lighting", "push", 1) != scene_seed(1, "lighting", "push", 1)
