"""The registry of object shapes (:mod:`sim2real.contracts.shapes`: sizes, decomposition) and
the geometry facts tasks, experts and the sampler need. ``size`` tuples are half-extents in metres.
"""

from __future__ import annotations

import math

from sim2real.contracts.shapes import SHAPE_INFOS, ShapeInfo
from sim2real.registry import Registry

SHAPES: Registry[ShapeInfo] = Registry("shape")

for _info in SHAPE_INFOS:
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
