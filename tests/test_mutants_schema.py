"""The canonical episode schema (`sim2real/datasets/schema.py`): what validation accepts and refuses
at its edges, the metadata's normalisation, and the content hash that manifests store. Each test
here kills mutants that `test_datasets_formats.py` let live (docs/testing.md)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from sim2real.datasets.schema import (
    INT64_MAX,
    DatasetError,
    Episode,
    EpisodeMetadata,
    EpisodeSteps,
    canonical_json,
    content_hash,
    diff_episodes,
    validate_episode,
)
from sim2real.datasets.synthetic import synthetic_episode


def _steps(num_steps: int = 3) -> EpisodeSteps:
    """A small hand-built episode: every value fixed, no random numbers."""
    t = np.arange(num_steps, dtype=np.float32)
    flags_last = np.arange(num_steps) == num_steps - 1
    return EpisodeSteps(
        images={"front": np.full((num_steps, 2, 2, 3), 7, np.uint8)},
        state=np.tile(t[:, None], (1, 14)),
        action=np.tile(t[:, None] / 10, (1, 7)),
        reward=flags_last.astype(np.float32),
        discount=np.ones(num_steps, np.float32),
        is_first=np.arange(num_steps) == 0,
        is_last=flags_last,
        is_terminal=flags_last,
        language_instruction="pick up the cube",
    )


def _metadata(**changes) -> EpisodeMetadata:
    fields = dict(
        episode_id="ep-0",
        episode_index=0,
        seed=42,
        task="pick_place",
        backend="mujoco",
        robot="franka",
        control_hz=10.0,
        split="train",
        success=True,
        extras={"attempts": 1, "note": "ok"},
    )
    return EpisodeMetadata(**{**fields, **changes})


def _episode(num_steps: int = 3, **metadata) -> Episode:
    return Episode(_steps(num_steps), _metadata(**metadata))


def _error(episode: Episode, **options) -> str:
    with pytest.raises(DatasetError) as info:
        validate_episode(episode, "src", **options)
    return str(info.value)


# ---------------------------------------------------------------------------------------------
# validation at the edges


def test_a_one_step_episode_is_valid():
    assert validate_episode(_episode(num_steps=1), "src") == 1


def test_the_largest_int64_episode_index_and_seeds_at_both_ends_are_valid():
    assert validate_episode(_episode(episode_index=INT64_MAX), "src") == 3
    assert validate_episode(_episode(seed=-(2**63)), "src") == 3
    assert validate_episode(_episode(seed=INT64_MAX), "src") == 3
    assert "'metadata/episode_index'" in _error(_episode(episode_index=INT64_MAX + 1))
    assert "'metadata/seed'" in _error(_episode(seed=INT64_MAX + 1))


@pytest.mark.parametrize("name", ["episode_index", "seed"])
def test_a_bool_is_not_an_integer_field(name):
    message = _error(_episode(**{name: True}))
    assert f"'metadata/{name}' is bool" in message, message


def test_an_integral_control_rate_becomes_a_float_and_validates():
    meta = _metadata(control_hz=np.int64(15))
    assert type(meta.control_hz) is float and meta.control_hz == 15.0
    assert type(_metadata(control_hz=20).control_hz) is float
    assert validate_episode(_episode(control_hz=20), "src") == 3


@pytest.mark.parametrize("value", [True, "10"])
def test_a_control_rate_that_is_not_a_number_is_refused(value):
    message = _error(_episode(control_hz=value))
    assert f"'metadata/control_hz' is {type(value).__name__}" in message, message


def test_numpy_scalars_in_extras_become_python_scalars():
    meta = _metadata(extras={"clips": np.int64(3), "rate": np.float32(0.5), "ok": np.bool_(True)})
    assert meta.extras == {"clips": 3, "rate": 0.5, "ok": True}
    assert [type(v) for v in meta.extras.values()] == [int, float, bool]
    assert meta.to_json().endswith('"extras":{"clips":3,"ok":true,"rate":0.5},"generator_version":"",'
                                   '"robot":"franka","scene_spec_hash":"","scene_spec_json":"","seed":42,'
                                   '"split":"train","success":true,"task":"pick_place"}')  # fmt: skip


def test_an_extras_key_that_is_not_a_string_is_named():
    message = _error(_episode(extras={3: "x"}))
    assert message == "src: key 'metadata/extras' has a non-string key 3"


@pytest.mark.parametrize("camera", ["", 1])
def test_a_camera_name_must_be_a_non_empty_string(camera):
    steps = dataclasses.replace(_steps(), images={camera: _steps().images["front"]})
    message = _error(Episode(steps, _metadata()))
    assert f"camera name {camera!r} is not a non-empty string" in message


def test_wrong_types_are_named_by_their_type():
    steps = _steps()
    assert "key 'images' is list, expected" in _error(Episode(dataclasses.replace(steps, images=[]), _metadata()))
    assert "key 'state' is list, expected float32 (T, 14)" in _error(
        Episode(dataclasses.replace(steps, state=steps.state.tolist()), _metadata())
    )
    assert "types dict/EpisodeMetadata" in _error(Episode({}, _metadata()))
    assert "types EpisodeSteps/dict" in _error(Episode(steps, {}))
    assert _error(None) == "src: expected an Episode, found NoneType"


def test_an_infinite_state_names_its_first_step():
    state = _steps().state.copy()
    state[1, 4] = np.inf
    message = _error(Episode(dataclasses.replace(_steps(), state=state), _metadata()))
    assert message == "src: key 'state' has an infinite value at step 1"
    state[2, 0] = -np.inf
    message = _error(Episode(dataclasses.replace(_steps(), state=state), _metadata()))
    assert message == "src: key 'state' has an infinite value at step 1"
    state[:] = np.nan  # NaN is "unknown", allowed
    assert validate_episode(Episode(dataclasses.replace(_steps(), state=state), _metadata()), "src") == 3


def test_metadata_from_a_dict_names_missing_and_unknown_keys():
    data = _metadata().to_dict()
    assert EpisodeMetadata.from_dict(data) == _metadata()
    del data["seed"]
    data["colour"] = "red"
    with pytest.raises(DatasetError) as info:
        EpisodeMetadata.from_dict(data, "a.zarr (episode 3)")
    assert str(info.value) == (
        "a.zarr (episode 3): episode metadata has missing keys ['seed'] and unknown keys ['colour']"
    )


# ---------------------------------------------------------------------------------------------
# canonical JSON and the content hash (stored in every run's manifest: a resume compares them)


def test_canonical_json_sorts_keys_at_every_level():
    assert canonical_json({"b": 1, "a": {"d": 2, "c": "é"}}) == '{"a":{"c":"é","d":2},"b":1}'
    first = _episode(extras={"a": 1, "b": 2})
    second = _episode(extras={"b": 2, "a": 1})
    assert first.metadata.to_json() == second.metadata.to_json()
    assert content_hash(first) == content_hash(second)


def test_the_content_hash_of_a_fixed_episode_does_not_change():
    # Manifests written by earlier runs hold these digests; a different recipe would make every
    # existing run's resume refuse its own episodes.
    assert content_hash(_episode()) == "6717b50a51d70a5d10ed748302673b8e7f498477fc8354a5287dc65f60d088cb"


def test_diff_episodes_lists_every_difference_in_order():
    a = synthetic_episode(0, num_steps=4, image_size=(4, 4))
    images = {**a.steps.images, "side": a.steps.images["front"]}
    del images["wrist"]
    b = Episode(
        dataclasses.replace(a.steps, images=images, state=a.steps.state[:, :7], language_instruction="other"),
        dataclasses.replace(a.metadata, seed=a.metadata.seed + 1, task="stack"),
    )
    assert diff_episodes(a, a) == []
    assert diff_episodes(a, b) == [
        "images/side: only in b",
        "images/wrist: only in a",
        "state: float32 (4, 14) vs float32 (4, 7)",
        f"language_instruction: {a.steps.language_instruction!r} vs 'other'",
        f"metadata/seed: {a.metadata.seed!r} vs {a.metadata.seed + 1!r}",
        "metadata/task: 'pick_place' vs 'stack'",
    ]
