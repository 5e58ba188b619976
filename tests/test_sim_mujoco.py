"""The MuJoCo backend: scenes, rendering, control, determinism and bad input."""

from __future__ import annotations

import numpy as np
import pytest

from sim2real.randomizers import sample_scene
from sim2real.registry import UnknownNameError
from sim2real.sim.backend import make_backend
from sim2real.sim.control import ActionError
from sim2real.sim.experts import make_expert
from sim2real.sim.scene_spec import SceneSpec
from sim2real.sim.tasks import TASK_NAMES, TASKS, make_task


def rollout(backend, scene: SceneSpec, steps: int, seed: int = 0) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Reset to ``scene`` and run the scripted expert; return per-step images and states."""
    backend.reset(scene)
    expert = make_expert(scene, np.random.default_rng(seed), noise_scale=0.005)
    images, states = [], []
    for _ in range(steps):
        backend.step(expert.perturb(expert.act(backend.privileged_state())))
        frame = backend.images()
        images.append(np.concatenate([frame["front"], frame["wrist"]]))
        states.append(np.r_[backend.proprio(), backend.data.qpos, backend.data.qvel])
    return images, states


def test_at_least_three_tasks_with_documented_docstrings() -> None:
    assert {"pick_place", "stack", "push"} <= set(TASK_NAMES)
    assert tuple(TASKS.names()) == TASK_NAMES, "TASK_NAMES is every registered task, sorted"
    for name in TASK_NAMES:
        doc = TASKS.get(name).__doc__ or ""
        for section in ("Description:", "Randomizations:", "Success conditions:"):
            assert section in doc, f"{name} docstring lacks {section}"
        task = make_task(name)
        assert len(task.templates) >= 8
        assert set(task.train_templates()).isdisjoint(task.heldout_templates())


@pytest.mark.parametrize("task", TASK_NAMES)
def test_scenes_compile_step_and_both_cameras_see_the_task_objects(backend, task: str) -> None:
    for seed in range(6):
        scene = sample_scene(task, seed)
        backend.reset(scene)
        for _ in range(3):  # raises MujocoWarningError on any MuJoCo warning
            backend.step(np.array([0.01, 0.0, -0.01, 0.0, 0.0, 0.0, 1.0]))
        backend.reset(scene)
        for camera in ("front", "wrist"):
            segmentation, names = backend.segmentation(camera)
            assert segmentation.shape == (128, 128)
            for index, name in enumerate(names):
                assert (segmentation == index).sum() > 0, f"{task} seed {seed}: {camera} does not see {name}"


def test_rgb_images_have_the_configured_shape(backend) -> None:
    backend.reset(sample_scene("pick_place", 0))
    images = backend.images()
    assert set(images) == {"front", "wrist"}
    for image in images.values():
        assert image.shape == (128, 128, 3) and image.dtype == np.uint8
        assert image.std() > 5  # a real render, not a blank frame


def test_same_scene_and_actions_give_bit_identical_images_and_states(backend) -> None:
    scene = sample_scene("stack", 3)
    images_a, states_a = rollout(backend, scene, 12)
    backend.reset(sample_scene("push", 1))  # something else in between
    images_b, states_b = rollout(backend, scene, 12)
    fresh = make_backend("mujoco")
    try:
        images_c, states_c = rollout(fresh, scene, 12)
    finally:
        fresh.close()
    for a, b, c in zip(images_a, images_b, images_c, strict=True):
        assert np.array_equal(a, b) and np.array_equal(a, c)
    for a, b, c in zip(states_a, states_b, states_c, strict=True):
        assert np.array_equal(a, b) and np.array_equal(a, c)


@pytest.mark.parametrize("task", TASK_NAMES)
def test_scripted_expert_succeeds_on_a_sample_of_scenes(backend, task: str) -> None:
    spec = make_task(task)
    successes = 0
    for seed in range(100, 106):
        scene = sample_scene(task, seed)
        backend.reset(scene)
        expert = make_expert(scene, np.random.default_rng(seed))
        for _ in range(spec.max_steps):
            backend.step(expert.act(backend.privileged_state()))
            if spec.success(backend.privileged_state(), scene):
                successes += 1
                break
    assert successes >= 5, f"{task}: expert succeeded in {successes}/6 scenes"


def test_success_is_false_at_the_start(backend) -> None:
    for task in TASK_NAMES:
        scene = sample_scene(task, 7)
        backend.reset(scene)
        assert not make_task(task).success(backend.privileged_state(), scene)


def test_unknown_names_list_the_known_ones(backend) -> None:
    with pytest.raises(UnknownNameError, match=r"known tasks: .*pick_place"):
        make_task("fold_laundry")
    with pytest.raises(UnknownNameError, match=r"known backends: .*mujoco"):
        make_backend("bullet")
    scene = sample_scene("pick_place", 0)
    with pytest.raises(UnknownNameError, match="known robots: panda"):
        from dataclasses import replace

        backend.reset(replace(scene, robot=replace(scene.robot, name="ur5")))
    backend.reset(scene)
    with pytest.raises(KeyError, match=r"known cameras: .*front"):
        backend.segmentation("overhead")


@pytest.mark.parametrize(
    ("action", "message"),
    [
        (np.zeros(6), r"shape \(7,\)"),
        (np.zeros((1, 7)), r"shape \(7,\)"),
        (np.array([0, 0, np.nan, 0, 0, 0, 1.0]), r"non-finite values in \['dz'\]"),
        (np.array([0, 0, 0, 0, np.inf, 0, 1.0]), r"non-finite values in \['dpitch'\]"),
    ],
)
def test_bad_actions_raise_clear_errors(backend, action: np.ndarray, message: str) -> None:
    backend.reset(sample_scene("pick_place", 0))
    with pytest.raises(ActionError, match=message):
        backend.step(action)


def test_out_of_range_actions_are_clipped_and_counted(backend) -> None:
    backend.reset(sample_scene("pick_place", 0))
    start = backend.privileged_state().ee_pos.copy()
    backend.step(np.array([0.5, 0.0, 0.0, 0.0, 0.0, 0.0, 3.0]))
    counts = backend.clip_counts
    assert counts["position_delta"] == 1 and counts["gripper"] == 1
    assert backend.privileged_state().ee_pos[0] - start[0] < 0.06  # clipped to 5 cm
    for _ in range(20):  # push down into the table: the workspace box stops it
        backend.step(np.array([0.0, 0.0, -0.05, 0.0, 0.0, 0.0, 1.0]))
    assert backend.clip_counts["workspace"] > 0
    assert backend.privileged_state().ee_pos[2] > -0.005


def test_changing_colours_does_not_rebuild_the_model(backend) -> None:
    from sim2real.randomizers import load_preset

    scenes = [sample_scene("pick_place", s, load_preset("light")) for s in range(40)]
    same_shapes = [s for s in scenes if s.objects[0].shape == scenes[0].objects[0].shape]
    assert len(same_shapes) >= 2 and len({s.objects[0].color for s in same_shapes}) >= 2
    backend.reset(same_shapes[0])
    before = backend.rebuilds
    for scene in same_shapes[1:]:
        backend.reset(scene)
    assert backend.rebuilds == before


def test_rebuilds_keep_the_render_context_and_render_like_a_fresh_backend(backend) -> None:
    from sim2real.randomizers import load_preset

    scenes = [sample_scene(task, s, load_preset("default")) for s in range(4) for task in TASK_NAMES]
    backend.reset(scenes[0])
    rebuilds, contexts = backend.rebuilds, backend._renderer.contexts_made
    frames = []
    for scene in scenes[1:]:
        backend.reset(scene)
        frames.append(backend.images())
    assert backend.rebuilds - rebuilds >= len(scenes) // 2  # shapes and distractors changed the structure
    assert backend._renderer.contexts_made == contexts  # ... but not the render resources' layout
    for scene, seen in zip(scenes[1:], frames, strict=True):
        fresh = make_backend("mujoco")
        try:
            fresh.reset(scene)
            expected = fresh.images()
        finally:
            fresh.close()
        assert all(np.array_equal(seen[c], expected[c]) for c in expected), scene.seed


def test_scene_spec_json_round_trip_and_stable_hash() -> None:
    scene = sample_scene("push", 5)
    again = SceneSpec.from_json(scene.to_json())
    assert again == scene
    assert again.content_hash() == scene.content_hash() == sample_scene("push", 5).content_hash()
    assert sample_scene("push", 6).content_hash() != scene.content_hash()
    with pytest.raises(KeyError, match="unknown keys"):
        SceneSpec.from_json(scene.to_json().replace('"split"', '"splitt"'))


def test_gymnasium_env_rolls_out_any_policy() -> None:
    from sim2real.envs import Sim2RealEnv

    env = Sim2RealEnv("pick_place")
    try:
        obs, info = env.reset(seed=3)
        assert obs["image"]["front"].shape == (128, 128, 3)
        assert obs["state"].shape == (14,) and obs["state"].dtype == np.float32
        assert info["instruction"].startswith(("put", "place", "pick", "move", "drop", "transfer", "grab"))
        assert env.observation_space.contains(obs)
        expert = make_expert(env.scene, np.random.default_rng(0))
        for _ in range(env.max_steps):
            obs, reward, terminated, truncated, info = env.step(expert.act(env.backend.privileged_state()))
            if terminated or truncated:
                break
        assert terminated and info["success"] and reward == 1.0
        with pytest.raises(UnknownNameError):
            Sim2RealEnv("juggle")
    finally:
        env.close()


@pytest.mark.parametrize("task", ["pick_place", "stack"])
def test_expert_retries_a_grasp_that_caught_nothing(backend, task: str) -> None:
    scene = sample_scene(task, 5)
    spec = make_task(task)
    backend.reset(scene)
    expert = make_expert(scene, np.random.default_rng(0))
    phases = []
    for _ in range(spec.max_steps):
        action = expert.act(backend.privileged_state())
        phases.append(expert.phase)
        if expert.retries == 0 and expert.phase in ("grasp", "lift"):
            action = np.r_[action[:6], 1.0].astype(np.float32)  # the first grasp never closes
        backend.step(action)
        if spec.success(backend.privileged_state(), scene):
            break
    assert expert.retries == 1
    lift = phases.index("lift")
    assert "approach" in phases[lift:]  # it went back to the approach after the empty lift
    assert spec.success(backend.privileged_state(), scene)


@pytest.mark.parametrize("task", ["pick_place", "stack", "push"])
def test_the_expert_passes_every_milestone_in_order(backend, task: str) -> None:
    scene = sample_scene(task, 3)
    spec = make_task(task)
    backend.reset(scene)
    initial = backend.privileged_state()
    expert = make_expert(scene, np.random.default_rng(0))
    first_step: dict[int, int] = {}
    for step in range(spec.max_steps):
        backend.step(expert.act(backend.privileged_state()))
        state = backend.privileged_state()
        first_step.setdefault(spec.milestones_reached(state, scene, initial), step)
        if spec.success(state, scene):
            break
    assert spec.success(backend.privileged_state(), scene)
    assert len(spec.milestones) == 3
    reached = [first_step[k] for k in range(1, len(spec.milestones) + 1)]
    assert reached == sorted(reached)  # reached before lifted before over the target


def test_a_grasp_that_never_closes_stops_at_the_reached_milestone(backend) -> None:
    scene = sample_scene("pick_place", 5)
    spec = make_task("pick_place")
    backend.reset(scene)
    initial = backend.privileged_state()
    expert = make_expert(scene, np.random.default_rng(0))
    furthest = 0
    for _ in range(spec.max_steps):
        action = expert.act(backend.privileged_state())
        if expert.phase in ("grasp", "lift"):
            action = np.r_[action[:6], 1.0].astype(np.float32)  # the gripper never closes
        backend.step(action)
        furthest = max(furthest, spec.milestones_reached(backend.privileged_state(), scene, initial))
    assert spec.milestones[furthest - 1] == "reached"


def test_expert_retries_at_most_max_retries_times(backend) -> None:
    scene = sample_scene("pick_place", 5)
    backend.reset(scene)
    expert = make_expert(scene, np.random.default_rng(0))
    for _ in range(make_task("pick_place").max_steps):
        action = expert.act(backend.privileged_state())
        if expert.phase in ("grasp", "lift"):
            action = np.r_[action[:6], 1.0].astype(np.float32)  # no grasp ever closes
        backend.step(action)
    assert expert.retries == expert.max_retries == 2
    assert not make_task("pick_place").success(backend.privileged_state(), scene)


def test_dart_noise_perturbs_only_the_executed_position_and_the_expert_corrects_it(backend) -> None:
    scene = sample_scene("pick_place", 3)
    clean = make_expert(scene, np.random.default_rng(0))
    backend.reset(scene)
    label = clean.act(backend.privileged_state())
    assert clean.perturb(label) is label  # no noise: the label is what runs, and no draw is made

    noisy = make_expert(scene, np.random.default_rng(0), noise_scale=0.01)
    backend.reset(scene)
    offsets = []
    for _ in range(12):
        label = noisy.act(backend.privileged_state())
        executed = noisy.perturb(label)
        np.testing.assert_array_equal(executed[3:], label[3:])  # rotation and gripper untouched
        offsets.append(executed[:3] - label[:3])
        backend.step(executed)
    assert 0.005 < float(np.std(offsets)) < 0.02
    # the expert still finishes the task from the states the noise leads to
    for _ in range(make_task("pick_place").max_steps):
        if make_task("pick_place").success(backend.privileged_state(), scene):
            break
        backend.step(noisy.perturb(noisy.act(backend.privileged_state())))
    assert make_task("pick_place").success(backend.privileged_state(), scene)


def test_dart_noise_on_a_fraction_of_the_steps(backend) -> None:
    scene = sample_scene("pick_place", 3)
    noisy = make_expert(scene, np.random.default_rng(0), noise_scale=0.03, noise_rate=0.2)
    backend.reset(scene)
    label = noisy.act(backend.privileged_state())
    perturbed = [not np.array_equal(noisy.perturb(label), label) for _ in range(2000)]
    assert 0.17 < np.mean(perturbed) < 0.23
    with pytest.raises(ValueError, match="noise_rate is a probability per step"):
        make_expert(scene, np.random.default_rng(0), noise_scale=0.03, noise_rate=2.0)


def _probe_model(shape: str):
    """A compiled model of a pick-and-place scene whose only object is a ``shape`` named ``probe``."""
    from dataclasses import replace

    from sim2real.sim.mujoco.scene import BuildOptions, build_model
    from sim2real.sim.tasks import DEFAULT_SIZES

    scene = sample_scene("pick_place", 0)
    probe = replace(scene.objects[0], name="probe", shape=shape, size=DEFAULT_SIZES[shape])
    return build_model(replace(scene, objects=(probe,)), BuildOptions())


def test_the_model_has_the_cell_of_the_contract() -> None:
    import mujoco

    from sim2real.contracts import cell

    model = _probe_model("cube")

    def geom(name: str) -> tuple[tuple, tuple]:
        index = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, name)
        return tuple(model.geom_pos[index]), tuple(model.geom_size[index])

    assert geom("table") == (cell.TABLE.center, cell.TABLE.half_extents)
    assert geom("backdrop") == (cell.BACKDROP.center, cell.BACKDROP.half_extents)
    assert geom("floor")[0] == (0.0, 0.0, cell.FLOOR_Z) and geom("floor")[1][:2] == (cell.FLOOR_HALF_SIZE,) * 2
    for surface in cell.SURFACES:
        texture = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_TEXTURE, f"tex_{surface}")
        assert model.tex_width[texture] == model.tex_height[texture] == cell.SURFACE_TEXTURE_SIZE
        material = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_MATERIAL, f"mat_{surface}")
        assert tuple(model.mat_texrepeat[material]) == (cell.TEXTURE_REPEAT[surface],) * 2


@pytest.mark.parametrize("shape", ["cube", "block", "cylinder", "sphere", "capsule", "ellipsoid", "hex_prism", "bowl"])
def test_object_geoms_are_the_primitives_of_the_shape_contract(shape: str) -> None:
    import mujoco

    from sim2real.contracts.shapes import primitives
    from sim2real.sim.tasks import DEFAULT_SIZES

    model = _probe_model(shape)
    body = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, "obj_probe")
    start, count = model.body_geomadr[body], model.body_geomnum[body]
    parts = primitives(shape, DEFAULT_SIZES[shape])
    assert count == len(parts)
    kinds = {"box": "BOX", "cylinder": "CYLINDER", "sphere": "SPHERE", "capsule": "CAPSULE",
             "ellipsoid": "ELLIPSOID", "prism": "MESH"}  # fmt: skip
    for index, part in zip(range(start, start + count), parts, strict=True):
        assert mujoco.mjtGeom(model.geom_type[index]).name == f"mjGEOM_{kinds[part.kind]}"
        if part.kind == "prism":
            assert model.mesh_vertnum[model.geom_dataid[index]] == 2 * part.sides
            continue
        np.testing.assert_allclose(model.geom_size[index][: len(part.size)], part.size)
        np.testing.assert_allclose(model.geom_pos[index], part.pos, atol=1e-12)
        np.testing.assert_allclose(np.abs(model.geom_quat[index] @ np.asarray(part.quat)), 1.0, atol=1e-9)


#: every shape the robot handles in some task, training or held-out
MANIPULATED_SHAPES = sorted(
    {s for task in TASK_NAMES for role in make_task(task).roles if role.role == "manipulated"
     for s in role.shapes + role.heldout_shapes}
)  # fmt: skip


@pytest.mark.parametrize("shape", MANIPULATED_SHAPES)
def test_every_manipulated_shape_rests_where_it_was_placed(backend, shape: str) -> None:
    """A scene starts at rest: with the arm still for 3 s, no object the robot must handle
    (training or held-out shape) topples or rolls away before it is touched."""
    from dataclasses import replace

    from sim2real.sim.tasks import DEFAULT_SIZES

    scene = sample_scene("pick_place", 0)
    obj = replace(scene.objects[0], shape=shape, size=DEFAULT_SIZES[shape])
    scene = replace(scene, objects=(obj, *scene.objects[1:]))
    backend.reset(scene)
    start = backend.privileged_state().objects[obj.name]
    hold = np.array([0, 0, 0, 0, 0, 0, 1], dtype=np.float32)
    for _ in range(30):
        backend.step(hold)
    end = backend.privileged_state().objects[obj.name]
    assert np.linalg.norm(end.pos - start.pos) < 0.002
    assert abs(float(end.quat @ start.quat)) > 0.999


@pytest.mark.parametrize("seed", [3, 4])
def test_the_push_expert_looks_along_its_push_with_the_wrist_camera(backend, seed: int) -> None:
    """While it pushes, the hand's yaw points the wrist camera from the object to the named target
    (within 3 degrees on the median step), so that the policy sees both in one close view."""
    from sim2real.contracts.geometry import matrix_to_rpy

    scene = sample_scene("push", seed)
    target = scene.objects[1] if scene.task_params["side"] == "left" else scene.objects[2]
    expert = make_expert(scene, np.random.default_rng(0))
    backend.reset(scene)
    errors = []
    for _ in range(make_task("push").max_steps):
        state = backend.privileged_state()
        action = expert.act(state)
        if expert.phase == "push":
            line = np.asarray(target.pos[:2]) - state.objects[scene.objects[0].name].pos[:2]
            error = float(matrix_to_rpy(state.ee_mat)[2]) - float(np.arctan2(line[1], line[0]))
            errors.append(abs((error + np.pi) % (2 * np.pi) - np.pi))
        backend.step(action)
        if make_task("push").success(backend.privileged_state(), scene):
            break
    assert make_task("push").success(backend.privileged_state(), scene)
    assert len(errors) >= 3 and np.degrees(np.median(errors)) < 3.0
