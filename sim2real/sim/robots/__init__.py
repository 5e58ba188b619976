"""Robot descriptions as pure data (names, limits, home pose); backends build them."""

from sim2real.sim.robots import panda as _panda  # noqa: F401  (registers "panda")
from sim2real.sim.robots.base import ROBOTS, RobotDescription

__all__ = ["ROBOTS", "RobotDescription"]
