"""Offscreen rendering: one GL context per process (EGL on servers), a new MjrContext only
when the model is rebuilt, RGB and segmentation reads."""

from __future__ import annotations

import mujoco
import numpy as np


class OffscreenRenderer:
    """Renders named cameras of the current model to uint8 arrays."""

    def __init__(self, max_width: int, max_height: int, shadows: bool, reflections: bool) -> None:
        self._gl = mujoco.GLContext(max_width, max_height)
        self._gl.make_current()
        self._max = (max_width, max_height)
        self._context: mujoco.MjrContext | None = None
        self._model: mujoco.MjModel | None = None
        self._scene: mujoco.MjvScene | None = None
        self._option = mujoco.MjvOption()
        self._camera = mujoco.MjvCamera()
        self._camera.type = mujoco.mjtCamera.mjCAMERA_FIXED
        self.shadows = shadows
        self.reflections = reflections

    def set_model(self, model: mujoco.MjModel) -> None:
        """Bind a (re)built model: uploads its meshes and textures to the GL context."""
        self._gl.make_current()
        if self._context is not None:
            self._context.free()
        self._model = model
        self._context = mujoco.MjrContext(model, mujoco.mjtFontScale.mjFONTSCALE_100)
        mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN, self._context)
        self._scene = mujoco.MjvScene(model, maxgeom=2000)

    def upload_texture(self, texture_id: int) -> None:
        """Push a texture edited in ``model.tex_data`` to the GPU."""
        assert self._model is not None and self._context is not None
        mujoco.mjr_uploadTexture(self._model, self._context, texture_id)

    def _draw(self, data: mujoco.MjData, camera_id: int, width: int, height: int, segmentation: bool) -> np.ndarray:
        assert self._model is not None and self._scene is not None and self._context is not None
        if width > self._max[0] or height > self._max[1]:
            raise ValueError(f"render size {width}x{height} exceeds the context's {self._max[0]}x{self._max[1]}")
        self._camera.fixedcamid = camera_id
        mujoco.mjv_updateScene(
            self._model, data, self._option, None, self._camera, mujoco.mjtCatBit.mjCAT_ALL, self._scene
        )
        flags = self._scene.flags
        flags[mujoco.mjtRndFlag.mjRND_SHADOW] = self.shadows and not segmentation
        flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = self.reflections and not segmentation
        flags[mujoco.mjtRndFlag.mjRND_SEGMENT] = segmentation
        flags[mujoco.mjtRndFlag.mjRND_IDCOLOR] = segmentation
        rect = mujoco.MjrRect(0, 0, width, height)
        mujoco.mjr_render(rect, self._scene, self._context)
        pixels = np.empty((height, width, 3), dtype=np.uint8)
        mujoco.mjr_readPixels(pixels, None, rect, self._context)
        return np.flipud(pixels)

    def rgb(self, data: mujoco.MjData, camera_id: int, width: int, height: int) -> np.ndarray:
        """uint8 (height, width, 3)."""
        return np.ascontiguousarray(self._draw(data, camera_id, width, height, segmentation=False))

    def geom_ids(self, data: mujoco.MjData, camera_id: int, width: int, height: int) -> np.ndarray:
        """int32 (height, width): the model geom id seen at each pixel, -1 for background."""
        pixels = self._draw(data, camera_id, width, height, segmentation=True).astype(np.int32)
        seg = pixels[..., 0] + pixels[..., 1] * 256 + pixels[..., 2] * 65536 - 1
        assert self._scene is not None
        lookup = np.full(self._scene.ngeom + 1, -1, dtype=np.int32)
        for i in range(self._scene.ngeom):
            geom = self._scene.geoms[i]
            if geom.objtype == mujoco.mjtObj.mjOBJ_GEOM:
                lookup[i] = geom.objid
        seg = np.where((seg >= 0) & (seg < self._scene.ngeom), seg, self._scene.ngeom)
        return lookup[seg]

    def close(self) -> None:
        if self._context is not None:
            self._context.free()
            self._context = None
        self._gl.free()
