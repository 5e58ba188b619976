"""Push an object onto one of two targets."""

from __future__ import annotations

import numpy as np

from sim2real.sim import shapes
from sim2real.sim.backend import PrivilegedState
from sim2real.sim.scene_spec import SceneSpec
from sim2real.sim.tasks.base import REACH_DISTANCE, TASKS, ObjectRole, Task


@TASKS.register("push")
class Push(Task):
    """Push the object to the named target ("push the red cylinder to the left target").

    Description:
        An object stands between two flat target discs, one to the robot's left (+y) and
        one to its right (-y); the robot pushes it, without grasping, onto the named one.
    Randomizations:
        Object colour and shape (held-out shapes for the ``objects`` split), target
        colours, which target (left / right), positions; instruction paraphrase.
    Success conditions:
        The object's centre lies within the named target's radius (xy).
    """

    name = "push"
    max_steps = 100
    milestones = ("reached", "moved", "halfway")
    roles = (
        ObjectRole("push", "manipulated", ("cylinder", "cube"), ("red", "orange", "green"),
                   ((0.42, 0.56), (-0.04, 0.04)), heldout_shapes=("hex_prism", "block"), mass=0.1),
        ObjectRole("left", "marker", ("disc",), ("yellow", "cyan"), ((0.40, 0.58), (0.16, 0.22)), static=True),
        ObjectRole("right", "marker", ("disc",), ("purple", "blue"), ((0.40, 0.58), (-0.22, -0.16)), static=True),
    )  # fmt: skip
    templates = (
        "push the {push} to the {side} target",
        "slide the {push} onto the {side} target",
        "push the {push} onto the {side} target",
        "move the {push} to the {side} target by pushing it",
        "shove the {push} over to the {side} target",
        "nudge the {push} onto the {side} target",
        "push the {push} toward the {side} target",
        "slide the {push} to the {side} target",
        "without grasping it, move the {push} to the {side} target",
        "get the {push} onto the {side} target by pushing",
        "the {push} should be pushed to the {side} target",
    )

    def task_params(self, rng_choice: int) -> dict[str, object]:
        return {"side": ("left", "right")[rng_choice % 2]}

    def success(self, state: PrivilegedState, scene: SceneSpec) -> bool:
        pushed = scene.objects[0]
        target = scene.objects[1] if scene.task_params.get("side") == "left" else scene.objects[2]
        obj = state.objects[pushed.name]
        return bool(np.hypot(obj.pos[0] - target.pos[0], obj.pos[1] - target.pos[1]) < target.size[0])

    def milestones_reached(self, state: PrivilegedState, scene: SceneSpec, initial: PrivilegedState) -> int:
        """1 ``reached``: the TCP within ``REACH_DISTANCE`` of the object's side; 2 ``moved``:
        the object 2 cm from its start; 3 ``halfway``: it has covered half its distance to the
        named target."""
        pushed = scene.objects[0]
        target = np.array((scene.objects[1] if scene.task_params.get("side") == "left" else scene.objects[2]).pos[:2])
        start, now = initial.objects[pushed.name].pos[:2], state.objects[pushed.name].pos[:2]
        if np.linalg.norm(now - start) < 0.02:
            side = shapes.footprint_radius(pushed.shape, pushed.size)
            return int(np.linalg.norm(state.ee_pos[:2] - now) < side + REACH_DISTANCE)
        return 3 if np.linalg.norm(target - now) <= 0.5 * np.linalg.norm(target - start) else 2
