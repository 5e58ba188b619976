"""The robot cell every backend builds around the robot: table, floor, backdrop and workspace.

Frame: the robot base frame, metres, z up; the robot base sits on the table top at the origin
and the table top is at z = 0.
"""

from __future__ import annotations

from dataclasses import dataclass

Vec3 = tuple[float, float, float]


@dataclass(frozen=True)
class Box:
    """An axis-aligned box: ``center`` (m) and ``half_extents`` (m)."""

    center: Vec3
    half_extents: Vec3


#: The table; its top is at z = 0.
TABLE = Box(center=(0.40, 0.0, -0.375), half_extents=(0.65, 0.70, 0.375))
#: The floor: a plane at this height (m) ...
FLOOR_Z = -0.75
#: ... drawn this far (m) from the origin along x and y.
FLOOR_HALF_SIZE = 4.0
#: A thin wall behind the robot (visual only: nothing collides with it).
BACKDROP = Box(center=(-0.65, 0.0, 0.4), half_extents=(0.01, 2.0, 1.2))

#: The textured surfaces of the cell (the fields of a SceneSpec's ``surfaces``).
SURFACES: tuple[str, ...] = ("table", "floor", "backdrop")
#: Texture resolution (px, square) of each surface and of each object.
SURFACE_TEXTURE_SIZE = 128
OBJECT_TEXTURE_SIZE = 32
#: Texture repetitions per metre of each surface and of objects (world-space texture coordinates).
TEXTURE_REPEAT: dict[str, float] = {"table": 2.0, "floor": 4.0, "backdrop": 3.0, "object": 8.0}

#: Bounds (m) of the commanded TCP position. The floor, 2 cm above the table top, keeps the
#: finger pads ~4 mm clear of it, as a real cell's virtual floor does.
WORKSPACE_LOW: Vec3 = (0.2, -0.45, 0.02)
WORKSPACE_HIGH: Vec3 = (0.85, 0.45, 0.5)
#: The middle of the table area the tasks use (m): lights are placed around it.
WORKSPACE_CENTER: Vec3 = (0.45, 0.0, 0.0)
