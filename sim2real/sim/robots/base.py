"""The robot description contract shared by backends."""

from __future__ import annotations

from dataclasses import dataclass

from sim2real.registry import Registry


@dataclass(frozen=True)
class RobotDescription:
    """Backend-independent facts about an arm with a parallel gripper.

    ``joint_limits``: (n, 2) rad; ``home``: (n,) rad; ``gripper_max_opening``: distance
    between the fingers when fully open (m); ``velocity_limits``: (n,) rad/s.
    """

    name: str
    joint_names: tuple[str, ...]
    joint_limits: tuple[tuple[float, float], ...]
    velocity_limits: tuple[float, ...]
    home: tuple[float, ...]
    gripper_max_opening: float

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)


ROBOTS: Registry[RobotDescription] = Registry("robot")
