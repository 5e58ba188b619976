"""``backend_options`` of the MuJoCo backend (imports no simulator, so settings are checked before
any work starts). The one definition of these keys: :class:`sim2real.sim.mujoco.scene.BuildOptions`
receives them as they are."""

from __future__ import annotations

from dataclasses import dataclass

from sim2real.sim.backend import BackendOptionsError


@dataclass(frozen=True)
class MujocoOptions:
    """``visual_mesh_reduction``: fraction of the Panda visual triangles removed at load time, in
    [0, 1) (0 keeps the full meshes, for GPU servers); ``max_width`` / ``max_height``: the smallest
    offscreen buffer, px (grown to fit every camera); ``multisamples``: MSAA samples of the offscreen
    buffer (0 = off; costly in software rendering)."""

    visual_mesh_reduction: float = 0.93
    max_width: int = 128
    max_height: int = 128
    multisamples: int = 0

    def check(self) -> None:
        """Value ranges; a bad one names its key."""
        if not 0.0 <= self.visual_mesh_reduction < 1.0:
            raise BackendOptionsError(
                f"backend_options.visual_mesh_reduction: {self.visual_mesh_reduction} is outside [0, 1)"
            )
        for key in ("max_width", "max_height"):
            if getattr(self, key) < 1:
                raise BackendOptionsError(f"backend_options.{key}: {getattr(self, key)}; expected an integer >= 1 (px)")
        if self.multisamples < 0:
            raise BackendOptionsError(f"backend_options.multisamples: {self.multisamples}; expected an integer >= 0")
