"""Randomization configs: one typed section per factor, loaded from YAML presets and validated
before any episode runs. Each field is a distribution (see :mod:`.distributions`) or a
probability.

Isaac Sim Replicator equivalents of each factor (the Isaac backend applies the same
SceneSpec values through these):

============== =================================================================================
factor         Replicator / USD equivalent
============== =================================================================================
lighting       ``rep.create.light(light_type="distant"|"sphere", intensity=..., temperature=...,
               position=..., rotation=...)`` with ``rep.distribution.uniform``; spot = sphere
               light + ``UsdLux.ShapingAPI`` cone angle; shadows via ``shadow:enable``
textures       ``rep.create.material_omnipbr(diffuse_texture=...)`` bound with
               ``rep.modify.material``; procedural textures are written to PNG files first
materials      OmniPBR ``reflection_roughness_constant`` (1 - shininess), ``specular_level``,
               ``metallic_constant`` (reflectance)
poses          ``rep.modify.pose(position=..., rotation=...)`` on object prims;
               robot joints via ``Articulation.set_joint_positions``
camera         ``rep.modify.pose(position=..., look_at=...)`` on the camera; roll as a rotation
               about the optical axis; ``focal_length`` from the field of view
distractors    ``rep.create.from_usd`` / ``rep.create.cube|sphere|cylinder`` with
               ``rep.modify.pose`` and semantics ``("class", "distractor")``
dynamics       ``UsdPhysics.MaterialAPI`` static/dynamic friction, ``UsdPhysics.MassAPI``
               mass, ``UsdPhysics.DriveAPI`` stiffness/damping; latency in the controller
sensor noise   post-process of the ``rgb`` annotator output (the same numpy code as MuJoCo)
============== =================================================================================
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sim2real.randomizers.distributions import (
    Choice,
    ConfigError,
    Constant,
    Distribution,
    Normal,
    Uniform,
    parse_distribution,
)

PRESETS_DIR = Path(__file__).resolve().parents[2] / "configs" / "randomization"
TEXTURE_FAMILIES_TRAIN = ("flat", "checker", "stripes", "noise")


@dataclass(frozen=True)
class LightingConfig:
    """Lights on a hemisphere around the workspace. Intensities are MuJoCo light RGB scalars."""

    num_lights: Distribution = Constant(2)
    light_type: Distribution = Choice(("directional",))
    intensity: Distribution = Constant(0.7)
    specular: Distribution = Constant(0.2)
    ambient: Distribution = Constant(0.2)
    color_temperature_k: Distribution = Constant(6500.0)
    elevation_deg: Distribution = Constant(60.0)
    distance: Distribution = Constant(2.0)
    spot_cutoff_deg: Distribution = Constant(45.0)
    shadow_probability: float = 0.0


@dataclass(frozen=True)
class TexturesConfig:
    """Procedural textures for the table, floor, backdrop and objects."""

    families: Distribution = Choice(("flat",))
    surface_probability: float = 0.0
    object_probability: float = 0.0
    scale: Distribution = Constant(4.0)


@dataclass(frozen=True)
class MaterialsConfig:
    """Surface colours (HSV) and material properties in [0, 1]."""

    surface_hue_deg: Distribution = Constant(-1.0)  # -1: keep the nominal colours
    surface_saturation: Distribution = Constant(0.3)
    surface_value: Distribution = Constant(0.6)
    specular: Distribution = Constant(0.3)
    shininess: Distribution = Constant(0.3)
    reflectance: Distribution = Constant(0.0)


@dataclass(frozen=True)
class ObjectsConfig:
    """Which task objects appear: shapes and colours from the task's roles."""

    randomize_shapes: bool = False
    randomize_colors: bool = False
    yaw: Distribution = Constant(0.0)


@dataclass(frozen=True)
class PosesConfig:
    """Robot joint noise (rad) and camera pose jitter: position and look-at offsets (m), roll (rad),
    vertical field of view (deg)."""

    robot_joint_noise_std: float = 0.0
    camera_position_jitter: Distribution = Constant(0.0)
    camera_lookat_jitter: Distribution = Constant(0.0)
    camera_roll: Distribution = Constant(0.0)
    camera_fovy: Distribution = Constant(50.0)


@dataclass(frozen=True)
class DistractorsConfig:
    """Extra objects the instruction does not mention."""

    count: Distribution = Constant(0)
    shapes: Distribution = Choice(("cube", "sphere", "cylinder"))


@dataclass(frozen=True)
class DynamicsConfig:
    """Object friction and mass scale, robot joint damping and actuator gain scales, action
    latency in control steps."""

    friction: Distribution = Constant(1.0)
    mass_scale: Distribution = Constant(1.0)
    joint_damping_scale: Distribution = Constant(1.0)
    actuator_gain_scale: Distribution = Constant(1.0)
    action_latency_steps: Distribution = Constant(0)


@dataclass(frozen=True)
class SensorNoiseConfig:
    """Image noise std (uint8 units), blur sigma (px), JPEG re-compression (probability and
    quality), proprio state noise std."""

    image_noise_std: Distribution = Constant(0.0)
    blur_sigma: Distribution = Constant(0.0)
    jpeg_probability: float = 0.0
    jpeg_quality: Distribution = Constant(90)
    state_noise_std: Distribution = Constant(0.0)


@dataclass(frozen=True)
class RandomizationConfig:
    """All randomization factors. ``name`` is the preset it came from."""

    name: str = "none"
    lighting: LightingConfig = field(default_factory=LightingConfig)
    textures: TexturesConfig = field(default_factory=TexturesConfig)
    materials: MaterialsConfig = field(default_factory=MaterialsConfig)
    objects: ObjectsConfig = field(default_factory=ObjectsConfig)
    poses: PosesConfig = field(default_factory=PosesConfig)
    distractors: DistractorsConfig = field(default_factory=DistractorsConfig)
    dynamics: DynamicsConfig = field(default_factory=DynamicsConfig)
    sensor_noise: SensorNoiseConfig = field(default_factory=SensorNoiseConfig)


# Fields that must be >= 0 wherever they are sampled (intensities, scales, noise levels).
_NON_NEGATIVE = {
    "lighting": (
        "num_lights",
        "intensity",
        "specular",
        "ambient",
        "color_temperature_k",
        "distance",
        "spot_cutoff_deg",
    ),
    "textures": ("scale",),
    "materials": ("surface_saturation", "surface_value", "specular", "shininess", "reflectance"),
    "poses": ("camera_position_jitter", "camera_lookat_jitter", "camera_fovy"),
    "distractors": ("count",),
    "dynamics": ("friction", "mass_scale", "joint_damping_scale", "actuator_gain_scale", "action_latency_steps"),
    "sensor_noise": ("image_noise_std", "blur_sigma", "jpeg_quality", "state_noise_std"),
}
_UNIT_INTERVAL = {"materials": ("surface_saturation", "surface_value", "specular", "shininess", "reflectance")}


def _check_range(key: str, dist: Distribution, low: float, high: float | None = None) -> None:
    if isinstance(dist, Choice | Constant) and not all(isinstance(v, int | float) for v in _values(dist)):
        return
    lo, hi = dist.bounds()
    if lo < low or (high is not None and hi > high):
        limits = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ConfigError(f"{key}: values must be {limits}; {dist} reaches [{lo}, {hi}]")


def _values(dist: Distribution) -> tuple[Any, ...]:
    return dist.options if isinstance(dist, Choice) else (dist.value,)  # type: ignore[union-attr]


def _options(dist: Distribution) -> tuple[Any, ...]:
    """The values a categorical distribution can take."""
    if hasattr(dist, "options"):
        return tuple(dist.options)  # type: ignore[union-attr]
    if isinstance(dist, Constant):
        return (dist.value,)
    raise ConfigError(f"expected a choice of names, got {dist}")


def _parse_section(section_name: str, cls: type, raw: Any) -> Any:
    if raw is None:
        return cls()
    if not isinstance(raw, dict):
        raise ConfigError(f"{section_name}: expected a mapping of factor settings, got {raw!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ConfigError(f"{section_name}.{unknown[0]}: unknown setting; known: {sorted(fields)}")
    values: dict[str, Any] = {}
    for name, value in raw.items():
        key = f"{section_name}.{name}"
        kind = fields[name].type
        if kind in ("float", float) and name.endswith("probability"):
            if not isinstance(value, int | float) or not 0.0 <= float(value) <= 1.0:
                raise ConfigError(f"{key}: a probability must be in [0, 1], got {value!r}")
            values[name] = float(value)
        elif kind in ("float", float):
            if not isinstance(value, int | float) or value < 0:
                raise ConfigError(f"{key}: expected a number >= 0, got {value!r}")
            values[name] = float(value)
        elif kind in ("bool", bool):
            if not isinstance(value, bool):
                raise ConfigError(f"{key}: expected true or false, got {value!r}")
            values[name] = value
        else:
            dist = parse_distribution(key, value)
            if name in _NON_NEGATIVE.get(section_name, ()):
                _check_range(key, dist, 0.0, 1.0 if name in _UNIT_INTERVAL.get(section_name, ()) else None)
            values[name] = dist
    return cls(**values)


def config_from_dict(raw: dict[str, Any], name: str = "custom") -> RandomizationConfig:
    """Validate and build a config from plain data (a preset's YAML or a hydra node)."""
    sections = {f.name: f for f in dataclasses.fields(RandomizationConfig) if f.name != "name"}
    raw = dict(raw)
    name = str(raw.pop("name", name))
    unknown = sorted(set(raw) - set(sections))
    if unknown:
        raise ConfigError(f"{unknown[0]}: unknown randomization factor; known factors: {sorted(sections)}")
    parsed = {key: _parse_section(key, sections[key].default_factory, raw.get(key)) for key in sections}  # type: ignore[misc]
    config = RandomizationConfig(name=name, **parsed)
    _check_train_values_stay_off_heldout(config)
    return config


def _check_train_values_stay_off_heldout(config: RandomizationConfig) -> None:
    """Training ranges may not reach the held-out value sets (see :mod:`.splits`)."""
    from sim2real.randomizers.splits import TRAIN_LIMITS

    for key, (low, high) in TRAIN_LIMITS.items():
        section, name = key.split(".")
        dist = getattr(getattr(config, section), name)
        lo, hi = dist.bounds() if not isinstance(dist, Normal) else (dist.mean, dist.mean)
        if lo < low or hi > high:
            raise ConfigError(
                f"{key}: training values must stay in [{low}, {high}] (outside lies the held-out split); got {dist}"
            )
    families = _options(config.textures.families)
    from sim2real.randomizers.splits import TRAIN_DISTRACTOR_SHAPES

    for shape in _options(config.distractors.shapes):
        if shape not in TRAIN_DISTRACTOR_SHAPES:
            raise ConfigError(f"distractors.shapes: {shape!r} is not a training distractor shape; "
                              f"known: {list(TRAIN_DISTRACTOR_SHAPES)}")  # fmt: skip
    for family in families:
        if family not in TEXTURE_FAMILIES_TRAIN:
            raise ConfigError(f"textures.families: {family!r} is not a training texture family; "
                              f"known: {list(TEXTURE_FAMILIES_TRAIN)}")  # fmt: skip


def resolve_randomization(spec: str | dict[str, Any] | RandomizationConfig) -> RandomizationConfig:
    """A preset name, a preset's plain data (a hydra ``randomization`` node) or a config."""
    if isinstance(spec, RandomizationConfig):
        return spec
    if isinstance(spec, str):
        return load_preset(spec)
    return config_from_dict(dict(spec), name=str(spec.get("name", "custom")))


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))


def load_preset(name: str) -> RandomizationConfig:
    """Load ``configs/randomization/<name>.yaml``; an unknown name lists the known presets."""
    path = PRESETS_DIR / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"unknown randomization preset {name!r}; known presets: {preset_names()}")
    raw = yaml.safe_load(path.read_text()) or {}
    try:
        return config_from_dict(raw, name=name)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None


__all__ = [
    "ConfigError",
    "RandomizationConfig",
    "Uniform",
    "config_from_dict",
    "load_preset",
    "preset_names",
    "resolve_randomization",
]
