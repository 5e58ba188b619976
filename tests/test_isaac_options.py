"""``backend_options`` (both backends, checked before work starts), the Kit launch fixes (renderer,
argv, exit status) and what generation promises for backends whose images are not bit-exact.
Nothing here needs Isaac Sim: Kit is faked where it must be."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from sim2real.errors import UsageError
from sim2real.sim.backend import BackendConfig, BackendOptionsError, parse_backend_options
from sim2real.sim.isaac import app as isaac_app
from sim2real.sim.isaac.options import FRANKA_VARIANTS, IsaacOptions

REPO = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------ options
def test_isaac_options_defaults_are_a_listed_renderer_and_explicit_variants() -> None:
    options = parse_backend_options("isaac", {})
    assert options == IsaacOptions()
    assert options.renderer == "RealTimePathTracing" and options.renderer in isaac_app.RENDERERS
    assert options.renderer not in isaac_app.LEGACY_RENDERERS
    assert dict(options.robot_variants) == {"Gripper": "alternatefinger", "Mesh": "performance", "Physics": "physx"}
    assert options.robot_variants == FRANKA_VARIANTS and options.warmup_frames >= 1 and options.rt_subframes >= 1


def test_isaac_options_from_yaml_values() -> None:
    options = parse_backend_options("isaac", {
        "renderer": "RaytracedLighting", "assets_root": "/mnt/isaac", "robot_usd": "/mnt/franka.usd",
        "robot_variants": [["Gripper", "default"], ["Mesh", "quality"]], "warmup_frames": 0, "rt_subframes": 4,
        "physics_device": "cuda:1", "active_gpu": 2, "jacobian": "model",
    })  # fmt: skip
    assert options.robot_variants == (("Gripper", "default"), ("Mesh", "quality"))  # YAML lists -> tuples
    assert (options.warmup_frames, options.rt_subframes, options.physics_device) == (0, 4, "cuda:1")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"render_frames": 2}, r"backend_options\.render_frames: unknown option for backend=isaac; known: renderer, "),
        ({"renderer": "Rasterizer"}, r"backend_options\.renderer: 'Rasterizer' is not an RTX mode; known: "
         r"RealTimePathTracing, PathTracing, MinimalRendering, RaytracedLighting \(legacy\)"),
        ({"warmup_frames": -1}, r"backend_options\.warmup_frames: -1; expected an integer >= 0"),
        ({"warmup_frames": "4"}, r"backend_options\.warmup_frames: '4' is not a valid value; expected int"),
        ({"rt_subframes": 0}, r"backend_options\.rt_subframes: 0; expected an integer >= 1"),
        ({"physics_device": "gpu"}, r"backend_options\.physics_device: 'gpu'; expected cpu, cuda or cuda:<index>"),
        ({"jacobian": "numeric"}, r"backend_options\.jacobian: 'numeric'; expected physx or model"),
        ({"robot_variants": [["Gripper"]]}, r"backend_options\.robot_variants: \[\['Gripper'\]\] is not a valid"),
        ({"robot_variants": [["Mesh", "a"], ["Mesh", "b"]]},
         r"backend_options\.robot_variants: variant set named twice"),
        ({"active_gpu": 1.5}, r"backend_options\.active_gpu: 1\.5 is not a valid value; expected int or null"),
    ],
)  # fmt: skip
def test_bad_isaac_options_name_the_key(options: dict, message: str) -> None:
    with pytest.raises(BackendOptionsError, match=message) as error:
        parse_backend_options("isaac", options)
    assert isinstance(error.value, UsageError) and error.value.exit_code == 2 and "\n" not in str(error.value)


def test_mujoco_backend_accepts_and_rejects_its_options() -> None:
    from sim2real.sim.mujoco.options import MujocoOptions
    from sim2real.sim.mujoco.scene import BuildOptions

    defaults = {k: v for k, v in asdict(BuildOptions()).items() if k != "physics_hz"}
    assert asdict(MujocoOptions()) == defaults  # the options class is what BuildOptions receives
    assert parse_backend_options("mujoco", {"visual_mesh_reduction": 0, "multisamples": 4}).visual_mesh_reduction == 0.0
    with pytest.raises(
        BackendOptionsError,
        match=r"backend_options\.renderer: unknown option for backend=mujoco; "
        r"known: visual_mesh_reduction, max_width, max_height, multisamples",
    ):
        parse_backend_options("mujoco", {"renderer": "PathTracing"})  # fmt: skip
    with pytest.raises(BackendOptionsError, match=r"backend_options\.visual_mesh_reduction: 1\.0 is outside \[0, 1\)"):
        parse_backend_options("mujoco", {"visual_mesh_reduction": 1.0})


def test_the_mujoco_backend_rejects_unknown_options_at_construction() -> None:
    from sim2real.sim.backend import make_backend

    with pytest.raises(BackendOptionsError, match=r"backend_options\.shadows_size: unknown option"):
        make_backend("mujoco", BackendConfig(options={"shadows_size": 1}))


def test_isaac_backend_checks_its_options_before_looking_for_isaac_sim() -> None:
    from sim2real.sim.isaac.backend import IsaacBackend

    with pytest.raises(BackendOptionsError, match=r"backend_options\.renderer"):
        IsaacBackend(BackendConfig(options={"renderer": "Nope"}))


def test_generation_checks_backend_options_before_any_episode(tmp_path: Path) -> None:
    from sim2real.generation import GenerationConfig, generate
    from sim2real.generation.worker import _backend_config

    config = GenerationConfig(num_episodes=1, output_dir=str(tmp_path / "run"), progress=False,
                              backend_options={"multisamples": -1})  # fmt: skip
    with pytest.raises(BackendOptionsError, match=r"backend_options\.multisamples: -1; expected an integer >= 0"):
        generate(config)
    assert not (tmp_path / "run" / "manifest.json").exists() and not (tmp_path / "run" / "run.json").exists()
    isaac = replace(config, backend="isaac", backend_options={"bogus": 1})
    with pytest.raises(BackendOptionsError, match=r"backend_options\.bogus: unknown option for backend=isaac"):
        generate(isaac)  # named before the missing Isaac Sim
    good = replace(config, backend_options={"multisamples": 2})
    assert _backend_config(good).options == {"multisamples": 2}
    assert good.fingerprint()["backend_options"] == {"multisamples": 2}  # a resume must use the same options


def test_evaluation_checks_backend_options_before_any_rollout() -> None:
    from sim2real.evaluation.closed_loop import EvalJob
    from sim2real.evaluation.harness import EvaluationConfig, validate

    with pytest.raises(BackendOptionsError, match=r"backend_options\.bogus: unknown option for backend=mujoco"):
        validate(EvaluationConfig(backend_options={"bogus": 1}))
    with pytest.raises(UsageError, match=r"unknown backend 'bullet'"):
        validate(EvaluationConfig(backend="bullet"))
    job = EvalJob("expert", {}, "default", 0, (), backend="mujoco", backend_options={"multisamples": 0})
    assert job.backend_options == {"multisamples": 0}


@pytest.mark.parametrize("script", ["generate.py", "evaluate.py"])
def test_entry_points_refuse_a_bad_backend_option_in_one_line(script: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, script, "+backend_options.warmup=3", f"output_dir={out}"],
        cwd=REPO, capture_output=True, text=True, env={**os.environ, "MUJOCO_GL": "egl"}, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        "error: backend_options.warmup: unknown option for backend=mujoco; known: visual_mesh_reduction, max_width, "
        "max_height, multisamples"
    ]
    assert not out.exists()


# ---------------------------------------------------------------- hashing
def _episode(images_seed: int, action_offset: float = 0.0) -> Any:
    from sim2real.datasets.synthetic import synthetic_episode

    episode = synthetic_episode(0, num_steps=4, image_size=(8, 8))
    rng = np.random.default_rng(images_seed)
    images = {name: rng.integers(0, 255, image.shape, dtype=np.uint8) for name, image in episode.steps.images.items()}
    steps = replace(episode.steps, images=images, action=episode.steps.action + np.float32(action_offset))
    return replace(episode, steps=steps)


def test_manifest_hash_of_backends_without_bit_exact_images_covers_low_dim_data_only() -> None:
    from sim2real.generation import episode_hash
    from sim2real.sim.isaac.backend import IsaacBackend
    from sim2real.sim.mujoco.backend import MujocoBackend

    assert MujocoBackend.bit_exact_images is True and IsaacBackend.bit_exact_images is False
    a, b = _episode(1), _episode(2)  # the same episode, other pixels
    assert episode_hash(a, images=False) == episode_hash(b, images=False)
    assert episode_hash(a) != episode_hash(b)
    assert episode_hash(a, images=False) != episode_hash(_episode(1, action_offset=0.01), images=False)
    from sim2real.datasets import content_hash

    assert episode_hash(a) == content_hash(a)  # MuJoCo manifests keep their hashes


# -------------------------------------------------------------------- Kit launch
def test_launch_config_keeps_the_exit_status_and_renders_synchronously() -> None:
    config = isaac_app.launch_config(isaac_app.AppSettings())
    assert config["fast_shutdown"] is False and config["renderer"] == "RealTimePathTracing"
    for arg in ("--/app/hydraEngine/waitIdle=true", "--/app/updateOrder/checkForHydraRenderComplete=1000",
                "--/app/asyncRendering=0", "--/omni/replicator/asyncRendering=0"):  # fmt: skip
        assert arg in config["extra_args"]
    assert not any("modes/rt/enabled" in a for a in config["extra_args"])
    legacy = isaac_app.launch_config(isaac_app.AppSettings(renderer="RaytracedLighting"))
    assert "--/persistent/rtx/modes/rt/enabled=true" in legacy["extra_args"]  # the legacy mode, enabled explicitly


def test_renderer_problem_names_requested_and_active_modes() -> None:
    assert isaac_app.renderer_problem("RealTimePathTracing", "RealTimePathTracing") is None
    assert isaac_app.renderer_problem("PathTracing", "RealTimePathTracing") == (
        "Kit renders with 'RealTimePathTracing', not the requested 'PathTracing'"
    )
    assert "legacy mode" in str(isaac_app.renderer_problem("RaytracedLighting", "RealTimePathTracing"))


class _FakeSimulationApp:
    instances: ClassVar[list[_FakeSimulationApp]] = []

    def __init__(self, config: dict, experience: str = "") -> None:
        self.config, self.experience, self.argv = config, experience, list(sys.argv)
        self.closed_with: dict | None = None
        _FakeSimulationApp.instances.append(self)

    def close(self, **kwargs: Any) -> None:
        self.closed_with = kwargs


@pytest.fixture
def fake_kit(monkeypatch: pytest.MonkeyPatch) -> type[_FakeSimulationApp]:
    _FakeSimulationApp.instances = []
    monkeypatch.setattr(isaac_app, "isaacsim_available", lambda: True)
    monkeypatch.setattr(isaac_app, "ISAAC_PYTHON", sys.version_info[:2])
    monkeypatch.setattr(isaac_app, "_simulation_app_class", lambda: _FakeSimulationApp)
    monkeypatch.setattr(isaac_app, "_APP", None)
    monkeypatch.setattr(isaac_app, "_SETTINGS", None)
    return _FakeSimulationApp


def test_kit_never_sees_this_processs_arguments(fake_kit: type[_FakeSimulationApp], monkeypatch) -> None:
    monkeypatch.setattr(sys, "argv", ["pytest", "-m", "isaac", "backend=isaac"])
    app = isaac_app.launch(isaac_app.AppSettings())
    assert app.argv == ["pytest"] and sys.argv == ["pytest", "-m", "isaac", "backend=isaac"]
    assert app.config == isaac_app.launch_config(isaac_app.AppSettings())
    assert isaac_app.launch(isaac_app.AppSettings()) is app  # once per process
    with pytest.raises(RuntimeError, match="Kit already runs in this process"):
        isaac_app.launch(isaac_app.AppSettings(renderer="PathTracing"))
    isaac_app.shutdown(exit_code=3)
    assert app.closed_with == {"exit_code": 3} and isaac_app.running_app() is None


_FAKE_KIT = '''
import atexit, os

class SimulationApp:
    """Mimics Isaac Sim 6.2: at interpreter exit, close(); with fast_shutdown, Kit's shutdown ends
    the process with status 0 (quickReleaseFrameworkAndTerminate)."""

    def __init__(self, config, experience=""):
        self.config = config
        atexit.register(self._atexit_close)

    def _atexit_close(self):
        if self.config.get("fast_shutdown", True):
            os._exit(0)
'''


@pytest.mark.parametrize("failure", ["raise SystemExit(3)", "raise RuntimeError('boom')"])
def test_a_failed_run_exits_non_zero_with_kit_running(failure: str, tmp_path: Path) -> None:
    package = tmp_path / "isaacsim"
    package.mkdir()
    (package / "__init__.py").write_text(_FAKE_KIT)
    script = textwrap.dedent(f"""
        import sys
        from sim2real.sim.isaac import app
        app.ISAAC_PYTHON = sys.version_info[:2]
        settings = app.AppSettings()
        if "--fast" in sys.argv:  # what Kit's default launch config did: the failure is lost
            app.launch_config = lambda s, base=app.launch_config: {{**base(s), "fast_shutdown": True}}
        app.launch(settings)
        {failure}
    """)  # fmt: skip
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO)])}
    fixed = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert fixed.returncode == (3 if "SystemExit" in failure else 1), fixed.stderr
    before = subprocess.run([sys.executable, "-c", script, "--fast"], env=env, capture_output=True, timeout=60)
    assert before.returncode == 0  # the bug the launch config avoids


def test_mujoco_paths_import_nothing_of_the_isaac_backend(tmp_path: Path) -> None:
    """Options checks, generation and a MuJoCo episode never import ``sim2real.sim.isaac`` or Isaac Sim."""
    code = textwrap.dedent(f"""
        import sys
        import numpy as np
        from sim2real.generation import GenerationConfig, validate
        from sim2real.randomizers import sample_scene
        from sim2real.sim.backend import BackendConfig, make_backend, parse_backend_options
        validate(GenerationConfig(output_dir={str(tmp_path)!r}, backend_options={{"multisamples": 0}}))
        parse_backend_options("mujoco", {{"visual_mesh_reduction": 0.5}})
        backend = make_backend("mujoco", BackendConfig(options={{"max_width": 128}}))
        backend.reset(sample_scene("push", 0))
        backend.step(np.zeros(7, np.float32))
        backend.images()
        backend.close()
        roots = ("sim2real.sim.isaac", "isaacsim", "omni", "pxr", "carb")
        print(",".join(sorted(m for m in sys.modules if m.startswith(roots))))
    """)  # fmt: skip
    env = {**os.environ, "MUJOCO_GL": "egl"}
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=120, check=True)  # fmt: skip
    assert result.stdout.strip() == ""
