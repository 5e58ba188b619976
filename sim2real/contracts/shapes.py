"""Object shapes every backend knows, and how each one is built from primitives.

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
hex_prism  (r, hz)               hexagonal prism, circumradius r (convex mesh)
tri_prism  (r, hz)               triangular prism, circumradius r (convex mesh)
bowl       (r, hz)               open container: floor + ring of wall segments
disc       (r, hz)               flat, visual-only goal marker
========== ===================== ==========================================

:func:`primitives` decomposes a shape into :class:`Primitive` pieces in the object's frame
(origin at the object's centre, z up); each backend maps every primitive kind onto its own
geometry, so both backends build the same solids.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

Vec3 = tuple[float, float, float]
Quat = tuple[float, float, float, float]


@dataclass(frozen=True)
class ShapeInfo:
    """Facts about a shape: how many size values it takes, whether a parallel gripper can
    grasp it from above, and its yaw symmetry (rad; 0 = rotationally symmetric)."""

    name: str
    size_len: int
    graspable: bool
    yaw_symmetry: float


#: Every shape, in the order of the table above.
SHAPE_INFOS: tuple[ShapeInfo, ...] = (
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
)

#: Walls of a bowl: this many box segments on a ring.
BOWL_WALL_SEGMENTS = 12
#: Thickness (m) of a bowl's floor and walls.
BOWL_THICKNESS = 0.006
#: Each wall segment is this much longer than its share of the circumference, so that
#: neighbouring segments overlap and the ring has no gaps.
BOWL_WALL_OVERLAP = 1.08

#: Vertical faces of the prism shapes.
PRISM_SIDES: dict[str, int] = {"hex_prism": 6, "tri_prism": 3}


@dataclass(frozen=True)
class Primitive:
    """One convex piece of an object, placed at ``pos`` (m) with orientation ``quat``
    (``[w, x, y, z]``) in the object's frame.

    ``kind`` and ``size`` (m):

    * ``box``: ``(hx, hy, hz)`` half-extents;
    * ``cylinder``: ``(r, hz)``, axis z, ``hz`` half the height;
    * ``sphere``: ``(r,)``;
    * ``capsule``: ``(r, hz)``, axis z, ``hz`` half the shaft length;
    * ``ellipsoid``: ``(ax, ay, az)`` semi-axes;
    * ``prism``: ``(r, hz)``, an upright regular prism of ``sides`` vertical faces with
      circumradius ``r`` (vertices: :func:`prism_vertices`).
    """

    kind: str
    size: tuple[float, ...]
    pos: Vec3 = (0.0, 0.0, 0.0)
    quat: Quat = (1.0, 0.0, 0.0, 0.0)
    sides: int = 0


def shape_info(shape: str) -> ShapeInfo:
    """The :class:`ShapeInfo` of ``shape``; a ``ValueError`` listing the known shapes otherwise."""
    for info in SHAPE_INFOS:
        if info.name == shape:
            return info
    raise ValueError(f"unknown shape {shape!r}; known shapes: {', '.join(sorted(i.name for i in SHAPE_INFOS))}")


def primitives(shape: str, size: tuple[float, ...]) -> tuple[Primitive, ...]:
    """The pieces of ``shape`` with half-extents ``size`` (m), centred on the object's centre."""
    info = shape_info(shape)
    if len(size) != info.size_len:
        raise ValueError(f"shape {shape!r} takes {info.size_len} size values, got {len(size)}: {size}")
    size = tuple(float(s) for s in size)
    match shape:
        case "cube":
            return (Primitive("box", (size[0],) * 3),)
        case "block":
            return (Primitive("box", size),)
        case "cylinder" | "disc":
            return (Primitive("cylinder", size),)
        case "sphere" | "capsule" | "ellipsoid":
            return (Primitive(shape, size),)
        case "hex_prism" | "tri_prism":
            return (Primitive("prism", size, sides=PRISM_SIDES[shape]),)
        case "bowl":
            return _bowl(*size)
    raise ValueError(f"shape {shape!r} has no decomposition")


def _bowl(radius: float, half_height: float) -> tuple[Primitive, ...]:
    """A floor disc at the bottom and a ring of :data:`BOWL_WALL_SEGMENTS` overlapping walls."""
    half_thickness = BOWL_THICKNESS / 2
    parts = [Primitive("cylinder", (radius, half_thickness), pos=(0.0, 0.0, -half_height + half_thickness))]
    segment = math.pi * radius / BOWL_WALL_SEGMENTS * BOWL_WALL_OVERLAP  # half-length
    for k in range(BOWL_WALL_SEGMENTS):
        angle = 2 * math.pi * k / BOWL_WALL_SEGMENTS
        parts.append(
            Primitive(
                "box", (half_thickness, segment, half_height),
                pos=(radius * math.cos(angle), radius * math.sin(angle), 0.0),
                quat=(math.cos(angle / 2), 0.0, 0.0, math.sin(angle / 2)),
            )
        )  # fmt: skip
    return tuple(parts)


def prism_vertices(sides: int, radius: float, half_height: float) -> list[Vec3]:
    """Vertices (m) of an upright regular prism centred at the origin: the bottom ring, then
    the top ring, each counter-clockwise from +x."""
    verts = []
    for z in (-half_height, half_height):
        for k in range(sides):
            angle = 2.0 * math.pi * k / sides
            verts.append((radius * math.cos(angle), radius * math.sin(angle), z))
    return verts
