"""The scripted experts of the registered tasks."""

from __future__ import annotations

import numpy as np

from sim2real.contracts.geometry import matrix_to_rpy
from sim2real.sim import shapes
from sim2real.sim.backend import PrivilegedState
from sim2real.sim.experts.base import CLOSED, EXPERTS, OPEN, Expert, Phase, Waypoint, grasp_yaw
from sim2real.sim.scene_spec import ObjectSpec, SceneSpec

HOVER = 0.12  # m above the grasp point
IN_HAND = 0.04  # m: a grasped object's centre stays this close to the TCP
LIFT_Z = 0.20  # m, transport height of the TCP
MIN_GRASP_Z = 0.024  # m: the finger pads reach 16.4 mm below the TCP; keep 5 mm off the table


def _grasp_z(obj: ObjectSpec, state: PrivilegedState) -> float:
    centre = state.objects[obj.name].pos[2]
    return max(float(centre), MIN_GRASP_Z) if obj.shape != "sphere" else max(float(centre) - 0.004, MIN_GRASP_Z)


class _PickAndRelease(Expert):
    """Approach, pre-grasp, descend, grasp, lift, transport, place, release, retreat. After the
    lift the object must be in the hand (its centre within ``IN_HAND`` of the TCP); if the grasp
    caught nothing the expert opens and starts again from the approach, so demonstrations show
    recoveries from missed grasps."""

    def pick_object(self, scene: SceneSpec) -> ObjectSpec:
        return scene.objects[0]

    def place_point(self, scene: SceneSpec, state: PrivilegedState) -> np.ndarray:
        """Where the TCP releases the object (3,) m."""
        raise NotImplementedError

    def plan(self, scene: SceneSpec) -> list[Phase]:
        obj = self.pick_object(scene)
        self._yaw: float | None = None

        def yaw(state: PrivilegedState) -> float:
            if self._yaw is None:
                current = float(matrix_to_rpy(state.ee_mat)[2])
                self._yaw = grasp_yaw(obj, state.objects[obj.name].quat, current)
            return self._yaw

        def above(state: PrivilegedState, height: float) -> np.ndarray:
            pos = state.objects[obj.name].pos
            return np.array([pos[0], pos[1], _grasp_z(obj, state) + height])

        def hold_point(state: PrivilegedState) -> np.ndarray:
            return self._hold if self._hold is not None else state.ee_pos

        def remember(state: PrivilegedState) -> Waypoint:
            self._hold = np.array([*state.ee_pos[:2], state.ee_pos[2]])
            return Waypoint(self._hold, yaw(state), CLOSED)

        def in_hand(state: PrivilegedState) -> bool:
            return bool(np.linalg.norm(state.objects[obj.name].pos - state.ee_pos) < IN_HAND)

        self._hold: np.ndarray | None = None
        place = lambda s: self.place_point(scene, s)  # noqa: E731
        return [
            Phase("approach", lambda s: Waypoint(above(s, HOVER), yaw(s), OPEN), tolerance=0.02, max_steps=25),
            Phase("pre_grasp", lambda s: Waypoint(above(s, 0.04), yaw(s), OPEN), tolerance=0.008, max_steps=15),
            Phase("descend", lambda s: Waypoint(above(s, 0.0), yaw(s), OPEN), tolerance=0.005, max_steps=15,
                  max_position_step=0.015),
            Phase("grasp", remember, tolerance=1.0, min_steps=4, max_steps=4),
            Phase("lift", lambda s: Waypoint(np.r_[hold_point(s)[:2], LIFT_Z], yaw(s), CLOSED), tolerance=0.02,
                  max_steps=15, verify=in_hand, retry_from="approach"),
            Phase("transport", lambda s: Waypoint(np.r_[place(s)[:2], LIFT_Z], yaw(s), CLOSED), tolerance=0.01,
                  max_steps=25),
            Phase("place", lambda s: Waypoint(place(s), yaw(s), CLOSED), tolerance=0.006, max_steps=15,
                  max_position_step=0.025),
            Phase("release", lambda s: Waypoint(place(s), yaw(s), OPEN), tolerance=1.0, min_steps=3, max_steps=3),
            Phase("retreat", lambda s: Waypoint(np.r_[place(s)[:2], LIFT_Z], yaw(s), OPEN), tolerance=0.02,
                  max_steps=10),
        ]  # fmt: skip

    def on_retry(self) -> None:
        self._yaw, self._hold = None, None  # the object may have moved or turned


@EXPERTS.register("pick_place")
class PickPlaceExpert(_PickAndRelease):
    """Grasps the object from above and releases it just above the bowl's floor."""

    def place_point(self, scene: SceneSpec, state: PrivilegedState) -> np.ndarray:
        obj, bowl = scene.objects[0], scene.objects[1]
        release_z = bowl.pos[2] + 2 * bowl.size[1] + shapes.half_height(obj.shape, obj.size) - 0.01
        return np.array([bowl.pos[0], bowl.pos[1], release_z])


@EXPERTS.register("stack")
class StackExpert(_PickAndRelease):
    """Grasps the top object and sets it down centred on the base object."""

    def place_point(self, scene: SceneSpec, state: PrivilegedState) -> np.ndarray:
        top, base = scene.objects[0], scene.objects[1]
        base_pos = state.objects[base.name].pos
        z = base_pos[2] + shapes.half_height(base.shape, base.size) + shapes.half_height(top.shape, top.size) + 0.01
        return np.array([base_pos[0], base_pos[1], z])


@EXPERTS.register("push")
class PushExpert(Expert):
    """Closes the gripper, turns the hand so that the wrist camera looks along the push (the
    object and the target both in its view), drops behind the object on the far side from the
    target, and pushes it along the line to the target's centre."""

    push_height = 0.04

    def plan(self, scene: SceneSpec) -> list[Phase]:
        obj = scene.objects[0]
        target = scene.objects[1] if scene.task_params.get("side") == "left" else scene.objects[2]
        goal = np.array(target.pos[:2])
        standoff = shapes.footprint_radius(obj.shape, obj.size) + 0.03

        def direction(state: PrivilegedState) -> np.ndarray:
            vec = goal - state.objects[obj.name].pos[:2]
            return vec / max(np.linalg.norm(vec), 1e-6)

        def heading(state: PrivilegedState) -> float:
            """The TCP yaw (rad) that points the wrist camera along the push."""
            d = direction(state)
            return float(np.arctan2(d[1], d[0]))

        def behind(state: PrivilegedState, height: float) -> np.ndarray:
            xy = state.objects[obj.name].pos[:2] - direction(state) * standoff
            return np.r_[xy, height]

        contact = shapes.footprint_radius(obj.shape, obj.size) + 0.012

        def push_point(state: PrivilegedState) -> Waypoint:
            """Closed-loop pushing: stay on the object-goal line, behind the object, and advance."""
            obj_xy = state.objects[obj.name].pos[:2]
            to_goal = goal - obj_xy
            distance = np.linalg.norm(to_goal)
            if distance < target.size[0] * 0.3:
                return Waypoint(state.ee_pos, heading(state), CLOSED)
            d = to_goal / max(distance, 1e-6)
            behind_xy = obj_xy - d * contact
            offset = state.ee_pos[:2] - behind_xy
            lateral = offset - d * np.dot(offset, d)
            if np.linalg.norm(lateral) > 0.012:  # off the line: back off and realign
                return Waypoint(np.r_[obj_xy - d * (contact + 0.02), self.push_height], heading(state), CLOSED)
            return Waypoint(np.r_[behind_xy + d * min(0.03, distance), self.push_height], heading(state), CLOSED)

        return [
            Phase("approach", lambda s: Waypoint(behind(s, 0.12), heading(s), CLOSED), tolerance=0.02, max_steps=25),
            Phase("descend", lambda s: Waypoint(behind(s, self.push_height), heading(s), CLOSED), tolerance=0.01,
                  max_steps=15),
            Phase("push", push_point, tolerance=0.002, max_steps=45, max_position_step=0.025),
            Phase("retreat", lambda s: Waypoint(np.r_[s.ee_pos[:2] - direction(s) * 0.02, 0.15], heading(s), CLOSED),
                  tolerance=0.02, max_steps=10, max_position_step=0.02),
        ]  # fmt: skip
