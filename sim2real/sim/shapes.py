"""Object shapes known to every backend, with the geometry facts tasks and experts need.

``size`` tuples are half-extents in metres:

========== ===================== ==========================================
shape      size                  notes
========== ===================== ==========================================
cube       (h,)                  box h x h x h
block      (hx, hy, hz)          rectangular box
cylinder   (r, hz)               upright
sphere     (r,)
capsule    (r, hz)               upright; hz is the half-length of the shaft
ellipsoid  (ax, ay, az)
hex_prism  (r, hz)               hexagonal prism, circumradius r (mesh)
tri_prism  (r, hz)               triangular prism, circumradius r (mesh)
bowl       (r, hz)               open container: floor + ring of wall segments
disc       (r, hz)               flat, visual-only goal marker
========== ===================== ==========================================
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sim2real.registry import Registry


@dataclass(frozen=True)
class ShapeInfo:
    """Facts about a shape: how many size values it takes, whether a parallel gripper can
    grasp it from above, and its yaw symmetry (rad; 0 = rotationally symmetric)."""

    name: str
    size_len: int
    graspable: bool
    yaw_symmetry: float


SHAPES: Registry[ShapeInfo] = Registry("shape")

for _info in (
    ShapeInfo("cube", 1, True, math.pi / 2),
    ShapeInfo("block", 3, True, math.pi),
    ShapeInfo("cylinder", 2, True, 0.0),
    ShapeInfo("sphere", 1, True, 0.0),
    ShapeInfo("capsule", 2, True, 0.0),
    ShapeInfo("ellipsoid", 3, True, math.pi),
    ShapeInfo("hex_prism", 2, True, math.pi / 3),
    ShapeInfo("tri_prism", 2, True, 2 * math.pi / 3),
    ShapeInfo("bowl", 2, False, 0.0),
    ShapeInfo("disc", 2, False, 0.0),
):
    SHAPES.register(_info.name)(_info)


def half_height(shape: str, size: tuple[float, ...]) -> float:
    """Half of the object's vertical extent (m) when resting upright."""
    SHAPES.get(shape)
    if shape in ("cube", "sphere"):
        return size[0]
    if shape == "capsule":
        return size[0] + size[1]
    if shape in ("block", "ellipsoid"):
        return size[2]
    return size[1]


def footprint_radius(shape: str, size: tuple[float, ...]) -> float:
    """Radius (m) of a circle that contains the object's footprint, for placement."""
    SHAPES.get(shape)
    if shape == "cube":
        return size[0] * math.sqrt(2.0)
    if shape in ("block", "ellipsoid"):
        return math.hypot(size[0], size[1])
    return size[0]


def grasp_half_width(shape: str, size: tuple[float, ...]) -> float:
    """Half the width (m) across the fingers for a top-down grasp along the object's x axis."""
    SHAPES.get(shape)
    if shape == "hex_prism":
        return size[0] * math.sqrt(3.0) / 2.0
    if shape == "tri_prism":
        return size[0] * 0.75
    return size[0]


def prism_vertices(sides: int, radius: float, half_height: float) -> list[tuple[float, float, float]]:
    """Vertices (m) of an upright regular prism centred at the origin (for convex meshes)."""
    verts = []
    for z in (-half_height, half_height):
        for k in range(sides):
            angle = 2.0 * math.pi * k / sides
            verts.append((radius * math.cos(angle), radius * math.sin(angle), z))
    return verts
