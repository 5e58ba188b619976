"""``benchmarks/validate_isaac.py``, the RTX server's first-day checklist: its judging, projection and
measuring logic on this machine (MuJoCo standing in for Isaac Sim where a simulator is needed)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from sim2real.randomizers import sample_scene
from sim2real.sim.backend import BackendConfig

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("validate_isaac", REPO / "benchmarks" / "validate_isaac.py")
assert _spec is not None and _spec.loader is not None
vi = importlib.util.module_from_spec(_spec)
sys.modules["validate_isaac"] = vi
_spec.loader.exec_module(vi)

T = vi.Thresholds()


def passing() -> dict[str, Any]:
    """Measurements of a healthy server."""
    return {
        "kit": {"requested": "RealTimePathTracing", "render_mode": "RealTimePathTracing", "headless": True},
        "franka_dofs": {"names": [*vi.ARM_DOFS, *vi.FINGER_DOFS], "variants": [["Gripper", "alternatefinger"]]},
        "first_frame": [{"distance_px": 0.0}, {"distance_px": 2.5}],
        "no_empty_frames": {"steps": 200, "images": 402, "bad": 0, "recaptures": 0, "errors": []},
        "physics_handles": [{"invalid": []}] * 10,
        "expert_success": {"pick_place": {"successes": 18, "episodes": 20}, "push": {"successes": 20, "episodes": 20}},
        "steps_per_second": {"steps": 1000, "seconds": 20.0, "resets": 40},
        "failing_run_exit": {"returncode": 1},
        "low_dim_repeatable": {"steps": 40, "values": 35, "max_abs_diff": 0.0},
    }


def test_a_healthy_server_passes_every_item_with_its_measured_value() -> None:
    checks = vi.judge(passing(), T)
    assert [c.name for c in checks] == list(vi.JUDGES) and all(c.passed for c in checks)
    text = vi.format_checklist(checks)
    assert text.splitlines()[-1] == "9/9 items pass"
    assert "PASS  1. Kit starts headless with the chosen renderer: render mode 'RealTimePathTracing'" in text
    assert "PASS  7. control steps per second per process (images and resets included): 50.0 steps/s" in text
    assert "PASS  8. a deliberately failing run exits non-zero: exit status 1" in text


@pytest.mark.parametrize(
    ("item", "value", "shown"),
    [
        ("kit", {"requested": "RealTimePathTracing", "render_mode": "RaytracedLighting", "headless": True},
         "render mode 'RaytracedLighting'"),
        ("franka_dofs", {"names": [*vi.ARM_DOFS, "finger_joint1", "finger_joint2"]}, "missing ['panda_finger_joint1'"),
        ("first_frame", [{"distance_px": 0.0}, {"distance_px": 41.0}], "0.0, 41.0; limit 6 px"),
        ("first_frame", [{"distance_px": None}], "no hand"),
        ("no_empty_frames", {"steps": 200, "images": 400, "bad": 1, "recaptures": 3,
                             "errors": ["front: shape (128, 128, 0) uint8"]}, "1 bad of 400 images"),
        ("physics_handles", [{"invalid": []}, {"invalid": ["robot"]}], "reset 1: ['robot']"),
        ("expert_success", {"stack": {"successes": 3, "episodes": 20}}, "stack 3/20"),
        ("steps_per_second", {"steps": 50, "seconds": 10.0, "resets": 2}, "5.0 steps/s"),
        ("failing_run_exit", {"returncode": 0}, "exit status 0"),
        ("low_dim_repeatable", {"steps": 40, "values": 35, "max_abs_diff": 1e-7}, "max difference 1e-07"),
        ("kit", {"error": "IsaacNotInstalledError: missing"}, "error: IsaacNotInstalledError"),
    ],
)  # fmt: skip
def test_each_item_fails_with_what_was_measured(item: str, value: Any, shown: str) -> None:
    measurements = {**passing(), item: value}
    checks = {c.name: c for c in vi.judge(measurements, T)}
    assert checks[item].passed is not True and checks[item].status == "FAIL"
    assert shown in checks[item].measured
    assert all(c.passed for name, c in checks.items() if name != item)


def test_items_a_crashed_worker_did_not_reach_fail_as_not_measured() -> None:
    measurements = {k: v for k, v in passing().items() if k in ("kit", "franka_dofs")}
    checks = vi.judge(measurements, T)
    assert [c.passed for c in checks[:2]] == [True, True]
    assert all(c.passed is None and "not measured" in c.measured for c in checks[2:])


def test_recorder_keeps_every_item_measured_before_a_failure(tmp_path: Path) -> None:
    record = vi.Recorder(tmp_path / "m.json")
    record.measure("kit", lambda: {"ok": 1})
    record.measure("first_frame", lambda: 1 / 0)
    assert json.loads((tmp_path / "m.json").read_text()) == {
        "kit": {"ok": 1},
        "first_frame": {"error": "ZeroDivisionError: division by zero"},
    }


def test_mask_distance() -> None:
    mask = np.zeros((10, 10), bool)
    mask[2:4, 2:4] = True
    assert vi.mask_distance(mask, (2.5, 3.5)) == 0.0
    assert vi.mask_distance(mask, (8.5, 3.5)) == pytest.approx(5.0)
    assert vi.mask_distance(np.zeros((10, 10), bool), (1.0, 1.0)) is None
    assert vi.mask_distance(mask, None) is None


def test_projection_matches_the_rendered_segmentation(backend: Any) -> None:
    """The TCP projection of the first-frame check, held to MuJoCo's segmentation of the objects."""
    hits = 0
    for task, seed in (("pick_place", 0), ("push", 1), ("stack", 2)):
        scene = sample_scene(task, seed)
        backend.reset(scene)
        camera = vi.front_camera(scene)
        segmentation, names = backend.segmentation(camera.name)
        state = backend.privileged_state()
        for index, name in enumerate(names):
            if (segmentation == index).sum() < 20:
                continue
            u, v = vi.project_to_pixel(camera, state.objects[name].pos)
            assert segmentation[int(v), int(u)] == index, (task, name, (u, v))
            hits += 1
    assert hits >= 3
    behind = vi.project_to_pixel(vi.front_camera(scene), np.asarray(vi.front_camera(scene).pos) * 2.0)
    assert behind is None


class MujocoAsIsaac:
    """The MuJoCo backend with the IsaacBackend hooks the checklist reads (a stand-in for Kit):
    ``hand_mask`` is a disc around the projected TCP, or around the previous episode's TCP when
    ``stale_first_frame`` (the bug the first-frame item catches)."""

    stale_first_frame = False

    def __init__(self, config: BackendConfig) -> None:
        from sim2real.sim.backend import make_backend
        from sim2real.sim.isaac.options import IsaacOptions

        self._backend = make_backend("mujoco")
        self.options = IsaacOptions(renderer=config.options["renderer"])
        self.render_mode, self.app = config.options["renderer"], SimpleNamespace(config={"headless": True})
        self.dof_names, self.recaptures = [*vi.ARM_DOFS, *vi.FINGER_DOFS], 0
        self._last_tcp: np.ndarray | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)

    def reset(self, scene: Any) -> None:
        if self._backend.scene is not None:
            self._last_tcp = self._backend.privileged_state().ee_pos.copy()
        self._backend.reset(scene)

    def hand_mask(self, camera: str) -> np.ndarray:
        scene = self._backend.scene
        spec = next(c for c in scene.cameras if c.name == camera)
        tcp = (
            self._last_tcp if self.stale_first_frame and self._last_tcp is not None else self.privileged_state().ee_pos
        )
        u, v = vi.project_to_pixel(spec, tcp)
        rows, cols = np.mgrid[: spec.height, : spec.width]
        return np.hypot(cols + 0.5 - u, rows + 0.5 - v) < 4.0

    def physics_valid(self) -> dict[str, bool]:
        return {"robot": True, "hand": True}


@pytest.fixture
def fake_isaac_backend(monkeypatch: pytest.MonkeyPatch) -> type[MujocoAsIsaac]:
    from sim2real.sim.isaac import backend as isaac_backend

    monkeypatch.setattr(isaac_backend, "IsaacBackend", MujocoAsIsaac)
    MujocoAsIsaac.stale_first_frame = False
    return MujocoAsIsaac


def _worker_args(tmp_path: Path) -> Any:
    argv = ["--worker", "isaac", "--result", str(tmp_path / "m.json"), "--scenes", "1", "--steps", "12",
            "--resets", "2", "--first-frame-scenes", "2", "--preset", "none"]  # fmt: skip
    return vi.build_parser().parse_args(argv)


def test_the_isaac_worker_measures_every_item(fake_isaac_backend: type, tmp_path: Path) -> None:
    args = _worker_args(tmp_path)
    vi.run_isaac_worker(args, {})
    measurements = json.loads(args.result.read_text())
    measurements["failing_run_exit"] = {"returncode": 1}
    checks = {c.name: c for c in vi.judge(measurements, vi.Thresholds(min_success=0.0, min_steps_per_second=0.1))}
    assert all(c.passed for c in checks.values()), vi.format_checklist(list(checks.values()))
    assert measurements["no_empty_frames"]["steps"] == 12 and measurements["no_empty_frames"]["images"] >= 24
    assert len(measurements["physics_handles"]) == 2 and len(measurements["first_frame"]) == 2
    assert measurements["low_dim_repeatable"]["max_abs_diff"] == 0.0  # MuJoCo: bit-exact
    assert set(measurements["expert_success"]) == set(vi.TASKS)


def test_the_first_frame_item_catches_a_stale_first_frame(fake_isaac_backend: type, tmp_path: Path) -> None:
    fake_isaac_backend.stale_first_frame = True
    scenes = [sample_scene("pick_place", 0), sample_scene("push", 1), sample_scene("stack", 2)]
    backend = fake_isaac_backend(BackendConfig(options={"renderer": "RealTimePathTracing"}))
    try:
        rows = vi.measure_first_frame(backend, scenes)
    finally:
        backend.close()
    check = vi.judge({**passing(), "first_frame": rows}, T)[2]
    assert check.name == "first_frame" and check.passed is False
    assert max(r["distance_px"] for r in rows[1:]) > T.first_frame_px


def test_the_checklist_is_importable_and_stops_without_isaac_sim(capsys: pytest.CaptureFixture) -> None:
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "validate_isaac.py"), "--help"],
                            capture_output=True, text=True, timeout=60, check=True)  # fmt: skip
    assert "First-day checklist" in result.stdout and "--min-steps-per-second" in result.stdout
    assert vi.main([]) == 2
    assert "Isaac Sim is not installed" in capsys.readouterr().err
    with pytest.raises(Exception, match=r"backend_options\.warmup: unknown option"):
        vi.parse_options(["warmup=3"])
    assert vi.parse_options(["warmup_frames=8", "renderer=PathTracing"]) == {"warmup_frames": 8,
                                                                           "renderer": "PathTracing"}  # fmt: skip
