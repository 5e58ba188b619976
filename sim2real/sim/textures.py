"""Procedural textures (pure numpy), rendered identically by every backend."""

from __future__ import annotations

import numpy as np

from sim2real.registry import Registry
from sim2real.sim.scene_spec import TextureSpec

TEXTURE_FAMILIES: Registry = Registry("texture family")


def _blend(spec: TextureSpec, weight: np.ndarray) -> np.ndarray:
    rgb1, rgb2 = np.asarray(spec.rgb1), np.asarray(spec.rgb2)
    return rgb1 * (1.0 - weight[..., None]) + rgb2 * weight[..., None]


@TEXTURE_FAMILIES.register("flat")
def _flat(spec: TextureSpec, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return _blend(spec, np.zeros_like(u))


@TEXTURE_FAMILIES.register("checker")
def _checker(spec: TextureSpec, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    cells = (np.floor(u * spec.scale) + np.floor(v * spec.scale)) % 2
    return _blend(spec, cells)


@TEXTURE_FAMILIES.register("gradient")
def _gradient(spec: TextureSpec, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return _blend(spec, 0.5 - 0.5 * np.cos(2 * np.pi * (u + 0.5 * v)))


@TEXTURE_FAMILIES.register("stripes")
def _stripes(spec: TextureSpec, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return _blend(spec, (np.floor(u * spec.scale * 2) % 2).astype(float))


@TEXTURE_FAMILIES.register("noise")
def _noise(spec: TextureSpec, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    rng = np.random.default_rng(spec.seed)
    cells = max(2, round(spec.scale * 2))
    grid = rng.random((cells + 1, cells + 1))
    x, y = u * cells, v * cells
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    fx, fy = x - x0, y - y0
    fx, fy = fx * fx * (3 - 2 * fx), fy * fy * (3 - 2 * fy)
    top = grid[y0, x0] * (1 - fx) + grid[y0, x0 + 1] * fx
    bottom = grid[y0 + 1, x0] * (1 - fx) + grid[y0 + 1, x0 + 1] * fx
    return _blend(spec, top * (1 - fy) + bottom * fy)


def render_texture(spec: TextureSpec, size: int) -> np.ndarray:
    """Texture pixels, uint8 (size, size, 3)."""
    coords = (np.arange(size) + 0.5) / size
    u, v = np.meshgrid(coords, coords)
    rgb = TEXTURE_FAMILIES.get(spec.family)(spec, u, v)
    return np.clip(np.round(rgb * 255.0), 0, 255).astype(np.uint8)
