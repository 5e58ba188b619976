"""Held-out scene variants. Each held-out split replaces some factors with values from a set
disjoint from every training preset's by construction: training ranges are bounded by
``TRAIN_LIMITS`` (checked when a preset is loaded) and held-out values lie outside them.

=============  =====================================================================
split          what changes (held-out values)
=============  =====================================================================
train          nothing (the preset's training distributions)
textures       texture family ``gradient`` (never used in training) or ``noise`` with
               seeds >= 2**20 (training noise seeds are < 2**20); every surface textured
lighting       light intensity outside [0.25, 1.2], colour temperature outside [3000, 8500] K
camera         front-camera position jitter 6-9 cm (training <= 5 cm), field of view
               outside [41, 59] deg, roll 0.12-0.2 rad (training <= 0.1)
distractors    3-4 distractors (training <= 2) of shape ``tri_prism`` (never a training distractor)
objects        each task object's held-out shapes and held-out hues of its named colour
instructions   the task's held-out paraphrase templates
=============  =====================================================================
"""

from __future__ import annotations

from sim2real.randomizers.distributions import Choice, ConfigError, Uniform, UniformUnion

SPLITS = ("train", "textures", "lighting", "camera", "distractors", "objects", "instructions")
#: Scene-variant names used by evaluation: ``in_distribution`` is the training split.
VARIANTS = {"in_distribution": "train", **{s: s for s in SPLITS if s != "train"}}
#: The variants drawn from held-out splits (every variant but ``in_distribution``).
HELD_OUT_VARIANTS = tuple(v for v, split in VARIANTS.items() if split != "train")

TRAIN_TEXTURE_SEEDS = (0, 2**20)
HELDOUT_TEXTURE_SEEDS = (2**20, 2**21)
HELDOUT_TEXTURE_FAMILIES = Choice(("gradient", "noise"))
TRAIN_DISTRACTOR_SHAPES = ("cube", "sphere", "cylinder", "block")
HELDOUT_DISTRACTOR_SHAPES = Choice(("tri_prism",))
HELDOUT_DISTRACTOR_COUNT = Choice((3, 4))

TRAIN_LIMITS: dict[str, tuple[float, float]] = {
    "lighting.intensity": (0.25, 1.2),
    "lighting.color_temperature_k": (3000.0, 8500.0),
    "poses.camera_position_jitter": (0.0, 0.05),
    "poses.camera_fovy": (41.0, 59.0),
    "poses.camera_roll": (-0.1, 0.1),
    "distractors.count": (0.0, 2.0),
}
HELDOUT_LIGHT_INTENSITY = UniformUnion(((0.08, 0.2), (1.3, 1.6)))
HELDOUT_COLOR_TEMPERATURE = UniformUnion(((1800.0, 2800.0), (9000.0, 12000.0)))
HELDOUT_CAMERA_JITTER = Uniform(0.06, 0.09)
HELDOUT_CAMERA_FOVY = UniformUnion(((36.0, 40.0), (60.0, 64.0)))
HELDOUT_CAMERA_ROLL = UniformUnion(((-0.2, -0.12), (0.12, 0.2)))


def check_split(split: str) -> str:
    """Return ``split`` or raise a :class:`ConfigError` (a ValueError) listing the known splits."""
    if split not in SPLITS:
        raise ConfigError(f"split: unknown split {split!r}; known splits: {list(SPLITS)}")
    return split
