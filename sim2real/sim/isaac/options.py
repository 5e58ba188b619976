"""``backend_options`` of the Isaac backend: the one definition of each key, its type, default and range.

Importing this module imports no simulator, so ``generate.py`` and ``evaluate.py`` check the options
on any machine before any work starts (:func:`sim2real.sim.backend.parse_backend_options`); a wrong
key or value is one :class:`~sim2real.sim.backend.BackendOptionsError` line naming
``backend_options.<key>`` (exit 2).
"""

from __future__ import annotations

from dataclasses import dataclass

from sim2real.sim.backend import BackendOptionsError
from sim2real.sim.isaac.app import DEFAULT_RENDERER, LEGACY_RENDERERS, RENDERERS

#: Franka USD variant selections used by default (variant set, selection): the ones Isaac Sim 6.2's
#: own ``Articulation`` doctests load, whose DOF names (``panda_joint1..7``,
#: ``panda_finger_joint1/2``) and links (``panda_link0..7``, ``panda_hand``, ``panda_leftfinger``,
#: ``panda_rightfinger``) those doctests print; ``Physics=physx`` is the asset's default, made explicit.
FRANKA_VARIANTS: tuple[tuple[str, str], ...] = (("Gripper", "alternatefinger"), ("Mesh", "performance"),
                                                ("Physics", "physx"))  # fmt: skip
PHYSICS_DEVICES = ("cpu", "cuda")
JACOBIANS = ("physx", "model")


@dataclass(frozen=True)
class IsaacOptions:
    """Settings of the Isaac backend (``BackendConfig.options``).

    * ``renderer``: RTX mode, one of :data:`~sim2real.sim.isaac.app.RENDERERS`:
      ``RealTimePathTracing`` (RTX Real-Time 2.0, Isaac Sim's default and the default here),
      ``PathTracing``, ``MinimalRendering``, or the legacy ``RaytracedLighting`` (RTX Real-Time
      legacy mode; the backend then enables it explicitly with ``--/persistent/rtx/modes/rt/enabled=true``);
    * ``assets_root``: Isaac assets root (URL or folder; default: Isaac Sim's configured root,
      ``/persistent/isaac/asset_root/default``);
    * ``robot_usd``: the Franka USD (absolute, or relative to the assets root; default
      :data:`~sim2real.sim.isaac.stage_ops.FRANKA_USD`);
    * ``robot_variants``: the USD variant selections authored on the robot, ``[[set, selection], ...]``
      (default :data:`FRANKA_VARIANTS`); the DOF and link names are checked at load;
    * ``warmup_frames``: frames rendered and discarded after every reset, at the reset pose, so
      that the renderer's temporal history holds nothing of the previous episode (>= 0);
    * ``rt_subframes``: RTX subframes rendered per captured observation
      (``rep.orchestrator.step(rt_subframes=...)``; raise it for less noise and motion ghosting) (>= 1);
    * ``texture_dir``: where texture PNGs are written (default: a temporary folder);
    * ``physics_device``: ``cpu`` (deterministic; the default) or ``cuda`` / ``cuda:<i>``;
    * ``active_gpu``: the physical GPU index Kit renders on (default: Kit's choice);
    * ``experience``: a ``.kit`` file to launch instead of Isaac Sim's default Python experience;
    * ``jacobian``: ``physx`` (measured, moved from the hand's centre of mass to the TCP; the
      default) or ``model`` (analytic) for the first IK iteration.
    """

    renderer: str = DEFAULT_RENDERER
    assets_root: str | None = None
    robot_usd: str | None = None
    robot_variants: tuple[tuple[str, str], ...] = FRANKA_VARIANTS
    warmup_frames: int = 4
    rt_subframes: int = 1
    texture_dir: str | None = None
    physics_device: str = "cpu"
    active_gpu: int | None = None
    experience: str = ""
    jacobian: str = "physx"

    def check(self) -> None:
        """Value ranges and names; a bad one is a :class:`BackendOptionsError` naming its key."""
        if self.renderer not in RENDERERS:
            known = [f"{r} (legacy)" if r in LEGACY_RENDERERS else r for r in RENDERERS]
            raise BackendOptionsError(
                f"backend_options.renderer: {self.renderer!r} is not an RTX mode; known: {', '.join(known)}"
            )
        if self.warmup_frames < 0:
            raise BackendOptionsError(f"backend_options.warmup_frames: {self.warmup_frames}; expected an integer >= 0")
        if self.rt_subframes < 1:
            raise BackendOptionsError(f"backend_options.rt_subframes: {self.rt_subframes}; expected an integer >= 1")
        device = self.physics_device.split(":")
        if device[0] not in PHYSICS_DEVICES or (len(device) == 2 and not device[1].isdigit()) or len(device) > 2:
            raise BackendOptionsError(
                f"backend_options.physics_device: {self.physics_device!r}; expected cpu, cuda or cuda:<index>"
            )
        if self.jacobian not in JACOBIANS:
            raise BackendOptionsError(f"backend_options.jacobian: {self.jacobian!r}; expected physx or model")
        if self.active_gpu is not None and self.active_gpu < 0:
            raise BackendOptionsError(f"backend_options.active_gpu: {self.active_gpu}; expected an index >= 0 or null")
        sets = [name for name, _ in self.robot_variants]
        if len(set(sets)) != len(sets):
            raise BackendOptionsError(f"backend_options.robot_variants: variant set named twice in {sets}")
        for name, selection in self.robot_variants:
            if not name or not selection:
                raise BackendOptionsError(
                    f"backend_options.robot_variants: [{name!r}, {selection!r}]; expected [variant set, selection]"
                )
