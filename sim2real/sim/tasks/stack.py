"""Stack one block on another."""

from __future__ import annotations

import numpy as np

from sim2real.sim import shapes
from sim2real.sim.backend import PrivilegedState
from sim2real.sim.scene_spec import SceneSpec
from sim2real.sim.tasks.base import TASKS, ObjectRole, Task, pick_and_place_milestones


@TASKS.register("stack")
class Stack(Task):
    """Stack the top block on the base block ("stack the green block on the yellow block").

    Description:
        Two free blocks lie on the table; the robot picks the first and sets it on the second.
    Randomizations:
        Both colours (palette, distinct), shape of the top object (held-out shapes for the
        ``objects`` split), positions and yaws by collision-free rejection sampling;
        instruction paraphrase.
    Success conditions:
        The top object's centre is within 60 % of the base's half-width (xy) of the base's
        centre, resting on it (height difference within 1.5 cm of the sum of half heights),
        nearly still (< 0.1 m/s), and the gripper has let go (open > 50 %).
    """

    name = "stack"
    max_steps = 120
    milestones = ("reached", "lifted", "over_base")
    roles = (
        ObjectRole("top", "manipulated", ("block", "cube"), ("green", "red", "orange"),
                   ((0.40, 0.62), (-0.22, 0.22)), heldout_shapes=("hex_prism", "cylinder")),
        ObjectRole("base", "manipulated", ("block",), ("yellow", "blue", "purple"), ((0.40, 0.62), (-0.22, 0.22)),
                   mass=0.2),
    )  # fmt: skip
    templates = (
        "stack the {top} on the {base}",
        "put the {top} on top of the {base}",
        "place the {top} onto the {base}",
        "set the {top} on the {base}",
        "pick up the {top} and stack it on the {base}",
        "move the {top} onto the {base}",
        "put the {top} on the {base}",
        "stack the {top} onto the {base}",
        "build a tower with the {top} on the {base}",
        "rest the {top} on top of the {base}",
        "the {top} goes on top of the {base}",
    )

    def success(self, state: PrivilegedState, scene: SceneSpec) -> bool:
        top_spec, base_spec = scene.objects[0], scene.objects[1]
        top, base = state.objects[top_spec.name], state.objects[base_spec.name]
        horizontal = np.hypot(*(top.pos[:2] - base.pos[:2]))
        expected_dz = shapes.half_height(top_spec.shape, top_spec.size) + shapes.half_height(
            base_spec.shape, base_spec.size
        )
        resting = abs((top.pos[2] - base.pos[2]) - expected_dz) < 0.015
        centred = horizontal < 0.6 * shapes.grasp_half_width(base_spec.shape, base_spec.size) + 0.01
        still = np.linalg.norm(top.linvel) < 0.1
        released = state.gripper_opening > 0.5 * state.gripper_max_opening
        return bool(resting and centred and still and released)

    def milestones_reached(self, state: PrivilegedState, scene: SceneSpec, initial: PrivilegedState) -> int:
        top, base = scene.objects[0], scene.objects[1]
        radius = shapes.grasp_half_width(base.shape, base.size) + 0.01
        return pick_and_place_milestones(state, initial, top.name, state.objects[base.name].pos[:2], radius)
