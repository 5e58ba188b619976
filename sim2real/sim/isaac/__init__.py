"""The Isaac Sim backend (Isaac Sim 6.2, pip route; RTX GPU servers). See docs/isaac.md.

Importing this package or any module but :mod:`~sim2real.sim.isaac.executor` never imports Isaac Sim;
only :mod:`~sim2real.sim.isaac.executor` does, and the backend imports it after Kit has started.

* ``options``: :class:`~sim2real.sim.isaac.options.IsaacOptions`, the backend's ``backend_options``;
* ``stage_ops``: SceneSpec -> typed stage operations and stage-update plans (pure, tested on any machine);
* ``kinematics``: Franka joint conventions, forward kinematics, Jacobian, IK (pure numpy);
* ``frames``: annotator outputs -> checked images (no empty or stale frame; pure numpy);
* ``app``: headless ``SimulationApp`` bootstrap and :class:`IsaacNotInstalledError`;
* ``executor``: stage operations -> Isaac Sim / USD / Replicator calls;
* ``backend``: :class:`~sim2real.sim.isaac.backend.IsaacBackend`, the Backend protocol.
"""

from sim2real.sim.isaac.app import ISAAC_SIM_VERSION, IsaacNotInstalledError, isaacsim_available

__all__ = ["ISAAC_SIM_VERSION", "IsaacNotInstalledError", "isaacsim_available"]
