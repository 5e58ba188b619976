"""Randomizers: distributions, config validation, determinism, held-out disjointness, in-place application."""

from __future__ import annotations

import colorsys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace

import numpy as np
import pytest

from sim2real.randomizers import SPLITS, ConfigError, config_from_dict, load_preset, preset_names, sample_scene
from sim2real.randomizers import splits as heldout
from sim2real.randomizers.distributions import Choice, LogUniform, TruncatedNormal, Uniform, UniformUnion
from sim2real.randomizers.sampler import FRONT_CAMERA
from sim2real.randomizers.sensor_noise import SensorNoise
from sim2real.sim.palette import COLORS
from sim2real.sim.scene_spec import SceneSpec
from sim2real.sim.tasks import SHAPE_NOUNS, TASKS, make_task

TASK_NAMES = TASKS.names()
PRESETS = ("none", "light", "default", "heavy")
N = 40


def test_presets_exist_and_load() -> None:
    assert set(PRESETS) <= set(preset_names())
    for name in PRESETS:
        assert load_preset(name).name == name


def test_distributions_sample_in_range_and_print() -> None:
    rng = np.random.default_rng(0)
    assert all(2 <= Uniform(2, 3).sample(rng) <= 3 for _ in range(100))
    assert all(0.5 <= LogUniform(0.5, 2).sample(rng) <= 2 for _ in range(100))
    assert all(-1 <= TruncatedNormal(0, 5, -1, 1).sample(rng) <= 1 for _ in range(100))
    union = UniformUnion(((0.0, 1.0), (5.0, 6.0)))
    assert all(v <= 1 or v >= 5 for v in (union.sample(rng) for _ in range(100)))
    assert repr(Uniform(0.1, 0.2)) == "Uniform(low=0.1, high=0.2)"
    assert Choice(("a", "b")).sample(rng) in ("a", "b")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"lighting": {"intensity": {"uniform": [0.9, 0.4]}}}, r"lighting.intensity: low \(0.9\) > high \(0.4\)"),
        ({"lighting": {"ambient": {"uniform": [-0.2, 0.3]}}}, r"lighting.ambient: values must be >= 0"),
        ({"lighting": {"shadow_probability": 1.5}}, r"lighting.shadow_probability: a probability must be in \[0, 1\]"),
        ({"sensor_noise": {"jpeg_probability": -0.1}}, r"sensor_noise.jpeg_probability: a probability"),
        ({"weather": {"rain": 1}}, r"weather: unknown randomization factor; known factors: \['distractors'"),
        ({"lighting": {"brightness": 1}}, r"lighting.brightness: unknown setting; known:"),
        ({"lighting": {"intensity": {"gaussian": [0, 1]}}}, r"lighting.intensity: unknown distribution 'gaussian'"),
        ({"materials": {"specular": {"uniform": [0.5, 1.5]}}}, r"materials.specular: values must be in \[0.0, 1.0\]"),
        ({"lighting": {"intensity": {"uniform": [0.1, 0.9]}}}, r"lighting.intensity: training values must stay in"),
        ({"textures": {"families": {"choice": ["gradient"]}}}, r"'gradient' is not a training texture family"),
        ({"distractors": {"shapes": {"choice": ["tri_prism"]}}}, r"'tri_prism' is not a training distractor shape"),
    ],
)
def test_bad_config_fails_at_validation_naming_the_key(raw: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        config_from_dict(raw)


def test_unknown_preset_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown randomization preset 'wild'; known presets: \['default'"):
        load_preset("wild")


def test_same_seed_gives_the_same_hash_whatever_the_order_or_process() -> None:
    config = load_preset("heavy")
    seeds = list(range(12))
    forward = [sample_scene("stack", s, config).content_hash() for s in seeds]
    backward = [sample_scene("stack", s, config).content_hash() for s in reversed(seeds)][::-1]
    with ProcessPoolExecutor(2) as pool:
        parallel = list(pool.map(_hash_of, [("stack", s, "heavy") for s in seeds]))
    assert forward == backward == parallel
    assert len(set(forward)) == len(seeds)


def _hash_of(args: tuple[str, int, str]) -> str:
    task, seed, preset = args
    return sample_scene(task, seed, load_preset(preset)).content_hash()


def _scenes(split: str, preset: str) -> list[SceneSpec]:
    config = load_preset(preset)
    return [sample_scene(task, seed, config, split) for task in TASK_NAMES for seed in range(N)]


def _intervals_overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def _light_intensity(scene: SceneSpec) -> list[float]:
    # diffuse = kelvin_rgb * intensity / sqrt(n), and kelvin_rgb has max component 1
    n = len(scene.lights)
    return [max(light.diffuse) * np.sqrt(n) for light in scene.lights]


def test_heldout_lighting_and_camera_ranges_are_disjoint_from_training_by_construction() -> None:
    limits = heldout.TRAIN_LIMITS
    for low, high in heldout.HELDOUT_LIGHT_INTENSITY.intervals:
        assert not _intervals_overlap((low, high), limits["lighting.intensity"])
    for low, high in heldout.HELDOUT_COLOR_TEMPERATURE.intervals:
        assert not _intervals_overlap((low, high), limits["lighting.color_temperature_k"])
    for low, high in heldout.HELDOUT_CAMERA_FOVY.intervals:
        assert not _intervals_overlap((low, high), limits["poses.camera_fovy"])
    for low, high in heldout.HELDOUT_CAMERA_ROLL.intervals:
        assert not _intervals_overlap((low, high), limits["poses.camera_roll"])
    assert not _intervals_overlap(heldout.HELDOUT_CAMERA_JITTER.bounds(), limits["poses.camera_position_jitter"])
    assert min(heldout.HELDOUT_DISTRACTOR_COUNT.options) > limits["distractors.count"][1]
    assert set(heldout.HELDOUT_DISTRACTOR_SHAPES.options).isdisjoint(heldout.TRAIN_DISTRACTOR_SHAPES)


@pytest.mark.parametrize("preset", PRESETS)
def test_sampled_training_values_never_reach_heldout_values(preset: str) -> None:
    heldout_lighting = [v for s in _scenes("lighting", "none") for v in _light_intensity(s)]
    for scene in _scenes("train", preset):
        for value in _light_intensity(scene):
            assert (
                heldout.TRAIN_LIMITS["lighting.intensity"][0] - 1e-9
                <= value
                <= heldout.TRAIN_LIMITS["lighting.intensity"][1] + 1e-9
            )
        front = scene.camera("front")
        assert np.linalg.norm(np.subtract(front.pos, FRONT_CAMERA.pos)) <= 0.05 + 1e-9
        assert 41 <= front.fovy <= 59 and abs(front.roll) <= 0.1
        for material in (scene.surfaces.table, scene.surfaces.floor, scene.surfaces.backdrop):
            if material.texture is not None:
                assert material.texture.family != "gradient" and material.texture.seed < 2**20
        distractors = [o for o in scene.objects if o.role == "distractor"]
        assert len(distractors) <= 2 and all(o.shape in heldout.TRAIN_DISTRACTOR_SHAPES for o in distractors)
    assert all(v < 0.25 or v > 1.2 for v in heldout_lighting)


def test_heldout_splits_draw_only_heldout_values() -> None:
    for scene in _scenes("camera", "none"):
        front = scene.camera("front")
        assert 0.06 - 1e-9 <= np.linalg.norm(np.subtract(front.pos, FRONT_CAMERA.pos)) <= 0.09 + 1e-9
        assert not 41 <= front.fovy <= 59 and abs(front.roll) >= 0.12
    for scene in _scenes("textures", "none"):
        for material in (scene.surfaces.table, scene.surfaces.floor, scene.surfaces.backdrop):
            assert material.texture is not None
            assert material.texture.family == "gradient" or material.texture.seed >= 2**20
    for scene in _scenes("distractors", "none"):
        distractors = [o for o in scene.objects if o.role == "distractor"]
        assert len(distractors) >= 3 and {o.shape for o in distractors} == {"tri_prism"}


def _hue_offset(rgba: tuple[float, ...], center: float) -> float:
    hue = colorsys.rgb_to_hsv(*rgba[:3])[0] * 360
    return abs((hue - center + 180) % 360 - 180)


def _hue_intervals_meet(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """Whether the closed hue intervals ``a`` and ``b`` (deg, absolute) share a hue on the colour circle."""
    return any(a[0] <= b[1] + turn and b[0] + turn <= a[1] for turn in (-360.0, 0.0, 360.0))


def test_every_heldout_hue_interval_is_disjoint_from_every_training_hue_interval() -> None:
    colors = [COLORS.get(name) for name in COLORS.names()]
    assert len(colors) >= 8
    for color in colors:
        assert color.train_hues[0] < color.train_hues[1] and color.heldout_hues[0] < color.heldout_hues[1]
    overlaps = [
        (heldout.name, train.name)
        for heldout in colors
        for train in colors
        if _hue_intervals_meet(
            (heldout.hue + heldout.heldout_hues[0], heldout.hue + heldout.heldout_hues[1]),
            (train.hue + train.train_hues[0], train.hue + train.train_hues[1]),
        )
    ]
    assert overlaps == []


def test_objects_split_uses_heldout_shapes_and_hues() -> None:
    train = _scenes("train", "heavy")
    heldout = _scenes("objects", "none")
    for task in TASK_NAMES:
        for role in make_task(task).roles:
            assert set(role.shapes).isdisjoint(role.heldout_shapes)
    for scene in heldout:
        roles = {r.key: r for r in make_task(scene.task).roles}
        for obj in scene.objects:
            if obj.role == "distractor":
                continue
            role = roles[obj.name]
            if role.heldout_shapes:
                assert obj.shape in role.heldout_shapes
            color = COLORS.get(obj.color)
            assert (
                color.heldout_hues[0] - 0.5 <= _hue_offset(obj.material.rgba, color.hue) <= color.heldout_hues[1] + 0.5
            )
    for scene in train:
        roles = {r.key: r for r in make_task(scene.task).roles}
        for obj in scene.objects:
            if obj.role != "distractor":
                assert obj.shape in roles[obj.name].shapes
                color = COLORS.get(obj.color)
                assert _hue_offset(obj.material.rgba, color.hue) <= max(abs(h) for h in color.train_hues) + 0.5


def _instruction_fields(scene: SceneSpec) -> dict[str, str]:
    fields = {o.name: f"{o.color} {SHAPE_NOUNS[o.shape]}" for o in scene.objects if o.role != "distractor"}
    fields.update({k: str(v) for k, v in scene.task_params.items()})
    return fields


def test_instruction_split_uses_only_heldout_paraphrases() -> None:
    for split, expect_heldout in (("instructions", True), ("train", False)):
        for scene in _scenes(split, "default"):
            task = make_task(scene.task)
            fields = _instruction_fields(scene)
            heldout = {t.format(**fields) for t in task.heldout_templates()}
            train = {t.format(**fields) for t in task.train_templates()}
            assert heldout.isdisjoint(train)
            assert scene.instruction in (heldout if expect_heldout else train)


def test_every_split_is_known_and_unknown_split_errors() -> None:
    assert set(SPLITS) == {"train", "textures", "lighting", "camera", "distractors", "objects", "instructions"}
    with pytest.raises(ConfigError, match=r"split: unknown split 'weather'; known splits: \['train'"):
        sample_scene("push", 0, split="weather")


def test_reapplying_a_recorded_scene_reproduces_the_first_frame(backend) -> None:
    config = load_preset("heavy")
    scene = sample_scene("pick_place", 11, config, "textures")
    backend.reset(scene)
    first = backend.images()
    backend.reset(sample_scene("stack", 4, config))
    backend.reset(SceneSpec.from_json(scene.to_json()))
    again = backend.images()
    for camera in first:
        assert np.array_equal(first[camera], again[camera])


def test_lights_materials_textures_poses_and_dynamics_change_without_a_rebuild(backend) -> None:
    config = replace(load_preset("heavy"), distractors=replace(load_preset("heavy").distractors, count=Choice((0,))))
    config = replace(config, objects=replace(config.objects, randomize_shapes=False))
    scenes = [sample_scene("pick_place", seed, config) for seed in range(6)]
    backend.reset(scenes[0])
    rebuilds = backend.rebuilds
    frames, damping, light_pos = [], [], []
    for scene in scenes[1:]:
        backend.reset(scene)
        frames.append(backend.images()["front"])
        damping.append(float(backend.model.dof_damping[0]))
        light_pos.append(backend.model.light_pos[0].copy())
    assert backend.rebuilds == rebuilds
    assert all(not np.array_equal(frames[0], f) for f in frames[1:])  # the edits are visible
    assert len(set(damping)) == len(damping)  # dynamics written in place
    assert not np.allclose(light_pos[0], light_pos[1])
    backend.reset(sample_scene("pick_place", 0, load_preset("default")))  # distractors: rebuild is allowed


def test_sensor_noise_is_seeded_and_changes_images() -> None:
    scene = sample_scene("push", 2, load_preset("heavy"))
    spec = replace(scene.sensor_noise, image_noise_std=5.0, blur_sigma=0.8, jpeg_quality=50, state_noise_std=0.01)
    image = np.full((32, 32, 3), 128, np.uint8)
    a, b = SensorNoise(spec), SensorNoise(spec)
    noisy_a, noisy_b = a.image(image), b.image(image)
    assert np.array_equal(noisy_a, noisy_b) and not np.array_equal(noisy_a, image)
    state = np.zeros(14, np.float32)
    assert np.array_equal(a.state(state), b.state(state)) and a.state(state).std() > 0


@pytest.mark.parametrize("std", [1.5, 4.0, 12.0])
def test_image_noise_has_the_requested_std_and_no_bias(std: float) -> None:
    spec = replace(sample_scene("push", 2, load_preset("none")).sensor_noise, image_noise_std=std)
    noise = SensorNoise(spec)
    image = np.full((128, 128, 3), 100, np.uint8)
    residual = np.stack([noise.image(image) for _ in range(8)]).astype(np.float64) - 100.0
    assert abs(residual.mean()) < 0.05 * std
    assert residual.std() == pytest.approx(np.sqrt(std**2 + 1 / 12), rel=0.05)  # + integer rounding
    assert not np.array_equal(residual[0], residual[1])  # a fresh draw per frame


def test_gallery_writes_a_contact_sheet(tmp_path) -> None:
    from sim2real.gallery import main

    out = tmp_path / "sheet.png"
    main(["--preset", "default", "-n", "2", "--columns", "2", "-o", str(out)])
    from PIL import Image

    assert Image.open(out).size[0] == 2 * 2 * 128 * 2
