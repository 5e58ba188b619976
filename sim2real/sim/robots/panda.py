"""Franka Emika Panda: 7 revolute joints and a parallel gripper.

Joint limits and velocity limits are Franka's published values
(frankaemika.github.io/docs/control_parameters.html). Joints are expressed in the frames of
the mesh set shipped by gymnasium-robotics: joint 6's zero is offset from Franka's by
-pi/2 (Franka's -0.0175 .. 3.7525 becomes -1.5883 .. 2.1817 here); joint 7's by pi/4
(its symmetric limits are kept as published, a conservative choice).
The home pose holds the TCP at (0.45, 0, 0.30) m, pointing down, yaw 0.
"""

from __future__ import annotations

from sim2real.sim.robots.base import ROBOTS, RobotDescription

PANDA = ROBOTS.register("panda")(
    RobotDescription(
        name="panda",
        joint_names=tuple(f"joint{i}" for i in range(1, 8)),
        joint_limits=(
            (-2.8973, 2.8973),
            (-1.7628, 1.7628),
            (-2.8973, 2.8973),
            (-3.0718, -0.0698),
            (-2.8973, 2.8973),
            (-1.5883, 2.1817),
            (-2.8973, 2.8973),
        ),
        velocity_limits=(2.175, 2.175, 2.175, 2.175, 2.61, 2.61, 2.61),
        home=(0.0, -0.2589, 0.0, -2.4321, 0.0, 0.6032, 0.0),
        gripper_max_opening=0.08,
    )
)
