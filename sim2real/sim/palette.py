"""Named colours. Each colour is a hue interval (degrees) so that "the red cube" is always
red; the interval is split into a training part and a disjoint held-out part."""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import numpy as np

from sim2real.registry import Registry


@dataclass(frozen=True)
class NamedColor:
    """``hue``: centre (deg); ``train_hues`` / ``heldout_hues``: disjoint (low, high) offsets
    from the centre (deg); ``saturation`` and ``value`` ranges in [0, 1]."""

    name: str
    hue: float
    train_hues: tuple[float, float] = (-6.0, 6.0)
    heldout_hues: tuple[float, float] = (7.0, 12.0)
    saturation: tuple[float, float] = (0.75, 0.95)
    value: tuple[float, float] = (0.7, 0.95)

    def canonical_rgba(self) -> tuple[float, float, float, float]:
        r, g, b = colorsys.hsv_to_rgb((self.hue % 360) / 360.0, 0.85, 0.85)
        return (r, g, b, 1.0)

    def sample_rgba(self, rng: np.random.Generator, heldout: bool) -> tuple[float, float, float, float]:
        low, high = self.heldout_hues if heldout else self.train_hues
        offset = rng.uniform(low, high)
        hue = (self.hue + offset) % 360
        r, g, b = colorsys.hsv_to_rgb(hue / 360.0, rng.uniform(*self.saturation), rng.uniform(*self.value))
        return (float(r), float(g), float(b), 1.0)


COLORS: Registry[NamedColor] = Registry("colour")
for _color in (
    NamedColor("red", 0.0),
    NamedColor("orange", 28.0, (-4.0, 4.0), (5.0, 8.0)),
    NamedColor("yellow", 55.0, (-4.0, 4.0), (5.0, 8.0)),
    NamedColor("green", 120.0, (-15.0, 15.0), (16.0, 25.0)),
    NamedColor("cyan", 180.0, (-8.0, 8.0), (9.0, 14.0)),
    NamedColor("blue", 225.0, (-10.0, 10.0), (11.0, 16.0)),
    NamedColor("purple", 275.0, (-8.0, 8.0), (9.0, 14.0)),
    NamedColor("pink", 320.0, (-6.0, 6.0), (7.0, 12.0)),
):
    COLORS.register(_color.name)(_color)
