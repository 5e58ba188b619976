"""Pick an object and put it in a bowl."""

from __future__ import annotations

import numpy as np

from sim2real.sim import shapes
from sim2real.sim.backend import PrivilegedState
from sim2real.sim.scene_spec import SceneSpec
from sim2real.sim.tasks.base import TASKS, ObjectRole, Task, pick_and_place_milestones


@TASKS.register("pick_place")
class PickPlace(Task):
    """Put the object in the bowl ("put the red cube in the blue bowl").

    Description:
        A graspable object and a static bowl lie on the table; the robot picks up the
        object and releases it inside the bowl.
    Randomizations:
        Object and bowl colours (palette), object shape (held-out shapes for the
        ``objects`` split), positions (x, y) and object yaw by collision-free rejection
        sampling in the workspace; instruction paraphrase.
    Success conditions:
        The object's centre lies within the bowl's inner radius (xy), below the rim,
        the object is nearly still (< 0.1 m/s) and the gripper has let go (open > 50 %).
    """

    name = "pick_place"
    max_steps = 120
    milestones = ("reached", "lifted", "over_bowl")
    roles = (
        ObjectRole("pick", "manipulated", ("cube", "cylinder", "block", "sphere"), ("red", "green", "yellow", "orange"),
                   ((0.40, 0.62), (-0.22, 0.22)), heldout_shapes=("hex_prism", "capsule", "ellipsoid")),
        ObjectRole("place", "receptacle", ("bowl",), ("blue", "purple", "cyan"), ((0.38, 0.62), (-0.22, 0.22)),
                   static=True),
    )  # fmt: skip
    templates = (
        "put the {pick} in the {place}",
        "place the {pick} into the {place}",
        "pick up the {pick} and put it in the {place}",
        "move the {pick} into the {place}",
        "drop the {pick} in the {place}",
        "put the {pick} inside the {place}",
        "transfer the {pick} to the {place}",
        "grab the {pick} and place it in the {place}",
        "the {pick} goes in the {place}",
        "get the {pick} into the {place}",
        "could you put the {pick} in the {place}",
    )

    def success(self, state: PrivilegedState, scene: SceneSpec) -> bool:
        pick = scene.objects[0]
        bowl = scene.objects[1]
        obj = state.objects[pick.name]
        radius, half = bowl.size
        inner = radius - shapes.footprint_radius(pick.shape, pick.size) * 0.5
        horizontal = np.hypot(obj.pos[0] - bowl.pos[0], obj.pos[1] - bowl.pos[1])
        below_rim = obj.pos[2] < bowl.pos[2] + 2 * half + shapes.half_height(pick.shape, pick.size)
        still = np.linalg.norm(obj.linvel) < 0.1
        released = state.gripper_opening > 0.5 * state.gripper_max_opening
        return bool(horizontal < inner and below_rim and still and released)

    def milestones_reached(self, state: PrivilegedState, scene: SceneSpec, initial: PrivilegedState) -> int:
        pick, bowl = scene.objects[0], scene.objects[1]
        return pick_and_place_milestones(state, initial, pick.name, np.array(bowl.pos[:2]), bowl.size[0])
