"""Offscreen rendering: one GL context per process (EGL on servers), RGB and segmentation
reads. A rebuilt model gets a new MjrContext only when its render resources differ in layout
(mesh and texture counts and sizes, buffer sizes); otherwise the context is kept and only the
meshes whose vertices changed are re-uploaded (textures are uploaded by the scene applier)."""

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
        self._layout: tuple | None = None
        self.contexts_made = 0
        self._scene: mujoco.MjvScene | None = None
        self._option = mujoco.MjvOption()
        self._camera = mujoco.MjvCamera()
        self._camera.type = mujoco.mjtCamera.mjCAMERA_FIXED
        self.shadows = shadows
        self.reflections = reflections

    def set_model(self, model: mujoco.MjModel) -> None:
        """Bind a (re)built model: its meshes and textures must be on the GL context."""
        self._gl.make_current()
        layout = _render_layout(model)
        if self._context is not None and layout == self._layout and self._model is not None:
            previous = self._model
            self._model = model
            for mesh in range(model.nmesh):
                if not _same_mesh(previous, model, mesh):
                    mujoco.mjr_uploadMesh(model, self._context, mesh)
        else:
            if self._context is not None:
                self._context.free()
            self._model = model
            self._layout = layout
            self._context = mujoco.MjrContext(model, mujoco.mjtFontScale.mjFONTSCALE_100)
            self.contexts_made += 1
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


def _render_layout(model: mujoco.MjModel) -> tuple:
    """What an MjrContext is sized by: buffers, meshes, textures, height fields, skins."""
    vis = model.vis
    return (
        vis.global_.offwidth, vis.global_.offheight, vis.quality.shadowsize, vis.quality.offsamples,
        float(model.stat.extent), float(vis.map.znear), float(vis.map.zfar), float(vis.map.fogstart),
        float(vis.map.fogend), float(vis.map.shadowclip), float(vis.map.shadowscale),
        model.mesh_vertnum.tobytes(), model.mesh_facenum.tobytes(), model.mesh_normalnum.tobytes(),
        model.mesh_texcoordnum.tobytes(), model.tex_type.tobytes(), model.tex_width.tobytes(),
        model.tex_height.tobytes(), model.tex_nchannel.tobytes(), model.nhfield, model.nskin, model.nflex,
    )  # fmt: skip


def _same_mesh(a: mujoco.MjModel, b: mujoco.MjModel, mesh: int) -> bool:
    """Same vertices, normals and faces for mesh ``mesh`` (layouts already equal)."""
    v0, n = a.mesh_vertadr[mesh], a.mesh_vertnum[mesh]
    w0 = b.mesh_vertadr[mesh]
    f0, f = a.mesh_faceadr[mesh], a.mesh_facenum[mesh]
    g0 = b.mesh_faceadr[mesh]
    n0, nn = a.mesh_normaladr[mesh], a.mesh_normalnum[mesh]
    m0 = b.mesh_normaladr[mesh]
    return (
        np.array_equal(a.mesh_vert[v0 : v0 + n], b.mesh_vert[w0 : w0 + n])
        and np.array_equal(a.mesh_face[f0 : f0 + f], b.mesh_face[g0 : g0 + f])
        and np.array_equal(a.mesh_normal[n0 : n0 + nn], b.mesh_normal[m0 : m0 + nn])
        and np.array_equal(a.mesh_facenormal[f0 : f0 + f], b.mesh_facenormal[g0 : g0 + f])
    )
