"""First-day checklist of the Isaac backend on an RTX server: one command, PASS or FAIL per item with
the value it measured.

Usage (in the Isaac Sim 6.2 / Python 3.12 environment, with this repository installed; docs/isaac.md)::

    OMNI_KIT_ACCEPT_EULA=YES python benchmarks/validate_isaac.py [--renderer RealTimePathTracing] \\
        [--scenes 20] [--steps 200] [--resets 10] [--option warmup_frames=4 ...] [--out checklist.json] \\
        [--isaac-python /path/to/isaac/venv/bin/python] [--compare-mujoco --mujoco-python /path/to/python]

The items, each judged from a measurement (thresholds are options):

1. ``kit``: Kit starts headless with the chosen renderer (the active ``/rtx/rendermode``);
2. ``franka_dofs``: the Franka loads with the expected DOF names (arm ``panda_joint1..7``, fingers
   ``panda_finger_joint1/2``) under the chosen USD variants;
3. ``first_frame``: the first frame of an episode shows the reset pose: after steps that moved the
   arm, the TCP of the new reset pose projected into the front camera lies on (within
   ``--first-frame-px`` of) the hand's segmentation mask, for each of ``--first-frame-scenes`` scenes;
4. ``no_empty_frames``: no empty, wrongly shaped or all-black image in ``--steps`` control steps
   (the re-captures the backend needed are reported);
5. ``physics_handles``: every physics tensor view (robot, hand, rigid objects) is valid after each of
   ``--resets`` resets, and a step (which reads the Jacobian) runs;
6. ``expert_success``: the scripted expert succeeds on at least ``--min-success`` of ``--scenes``
   scenes, for every task;
7. ``steps_per_second``: control steps per second of one process, with every camera's image read
   each step and resets included (at least ``--min-steps-per-second``);
8. ``failing_run_exit``: a deliberately failing run (Kit started, then an exception) exits non-zero;
9. ``low_dim_repeatable``: what the manifests hash is reproducible: the same scene and expert, run
   twice with another scene between, give bit-identical proprio, actions and object poses.

Kit runs in one worker process (``--worker isaac``), which writes its measurements to a JSON file
after each item, so a crash still leaves the items measured before it; this process judges them and
prints the checklist. ``--compare-mujoco`` also runs the expert on the same scenes on MuJoCo (in
``--mujoco-python``, default this interpreter) and prints both backends' success rates, per-camera
image mean / std (the light calibration of ``stage_ops.DISTANT_INTENSITY_PER_UNIT``) and the TCP
after reset (the joint-convention offsets).

Exit status: 0 when every item passes, 1 otherwise, 2 when Isaac Sim is not installed.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sim2real.contracts.geometry import look_at_matrix
from sim2real.randomizers import load_preset, sample_scene
from sim2real.sim.scene_spec import CameraSpec, SceneSpec

TASKS = ("pick_place", "stack", "push")
ARM_DOFS = tuple(f"panda_joint{i}" for i in range(1, 8))
FINGER_DOFS = ("panda_finger_joint1", "panda_finger_joint2")
MOVE_STEPS = 15  # expert steps between resets in the first-frame check (the arm leaves the reset pose)
WORKER_TIMEOUT_S = 3 * 3600


# ------------------------------------------------------------------ checklist
@dataclass(frozen=True)
class Thresholds:
    """Pass thresholds: ``first_frame_px`` (px, TCP to hand mask), ``min_success`` (fraction per task),
    ``min_steps_per_second`` (control steps/s of one process)."""

    first_frame_px: float = 6.0
    min_success: float = 0.7
    min_steps_per_second: float = 10.0


@dataclass(frozen=True)
class Check:
    """One checklist item: ``passed`` is None when it could not be measured; ``measured`` says what
    was measured (or why not)."""

    name: str
    description: str
    passed: bool | None
    measured: str

    @property
    def status(self) -> str:
        return {True: "PASS", False: "FAIL", None: "FAIL"}[self.passed]


DESCRIPTIONS = {
    "kit": "Kit starts headless with the chosen renderer",
    "franka_dofs": "the Franka loads with the expected DOF names",
    "first_frame": "the first frame of an episode shows the reset pose (hand mask vs projected TCP)",
    "no_empty_frames": "no empty frame in the stepped episodes",
    "physics_handles": "physics handles valid after every reset",
    "expert_success": "expert success per task",
    "steps_per_second": "control steps per second per process (images and resets included)",
    "failing_run_exit": "a deliberately failing run exits non-zero",
    "low_dim_repeatable": "the same scene and actions give bit-identical low-dimensional data",
}


def _missing(name: str, measurements: Mapping[str, Any]) -> Check | None:
    value = measurements.get(name)
    if value is None:
        return Check(name, DESCRIPTIONS[name], None, "not measured (the worker stopped before this item)")
    if isinstance(value, Mapping) and "error" in value:
        return Check(name, DESCRIPTIONS[name], None, f"error: {value['error']}")
    return None


def judge(measurements: Mapping[str, Any], thresholds: Thresholds) -> list[Check]:
    """Every checklist item, judged from the worker's ``measurements`` (see :func:`run_isaac_worker`)."""
    checks = []
    for name, judge_item in JUDGES.items():
        missing = _missing(name, measurements)
        checks.append(missing or judge_item(measurements[name], thresholds))
    return checks


def _judge_kit(kit: Mapping[str, Any], _: Thresholds) -> Check:
    ok = kit["render_mode"] == kit["requested"] and bool(kit["headless"])
    text = f"render mode {kit['render_mode']!r} (requested {kit['requested']!r}), headless={kit['headless']}"
    return Check("kit", DESCRIPTIONS["kit"], ok, text)


def _judge_dofs(dofs: Mapping[str, Any], _: Thresholds) -> Check:
    names = list(dofs["names"])
    missing = [n for n in (*ARM_DOFS, *FINGER_DOFS) if n not in names]
    text = f"{len(names)} DOFs {names} (variants {dofs.get('variants')})" + (f"; missing {missing}" if missing else "")
    return Check("franka_dofs", DESCRIPTIONS["franka_dofs"], not missing, text)


def _judge_first_frame(rows: Sequence[Mapping[str, Any]], t: Thresholds) -> Check:
    distances = [r["distance_px"] for r in rows]
    bad = [i for i, d in enumerate(distances) if d is None or d > t.first_frame_px]
    shown = ", ".join("no hand" if d is None else f"{d:.1f}" for d in distances)
    text = f"TCP to hand mask (px) per scene: {shown}; limit {t.first_frame_px:g} px"
    return Check("first_frame", DESCRIPTIONS["first_frame"], bool(rows) and not bad, text)


def _judge_frames(frames: Mapping[str, Any], _: Thresholds) -> Check:
    text = (f"{frames['bad']} bad of {frames['images']} images in {frames['steps']} steps; "
            f"{frames['recaptures']} re-captures")  # fmt: skip
    if frames.get("errors"):
        text += f"; first error: {frames['errors'][0]}"
    return Check("no_empty_frames", DESCRIPTIONS["no_empty_frames"], frames["bad"] == 0 and frames["steps"] > 0, text)


def _judge_handles(resets: Sequence[Mapping[str, Any]], _: Thresholds) -> Check:
    bad = [(i, r["invalid"] or r.get("error")) for i, r in enumerate(resets) if r["invalid"] or r.get("error")]
    text = f"{len(resets) - len(bad)} of {len(resets)} resets with every view valid" + (
        f"; first failure: reset {bad[0][0]}: {bad[0][1]}" if bad else "")  # fmt: skip
    return Check("physics_handles", DESCRIPTIONS["physics_handles"], bool(resets) and not bad, text)


def _judge_expert(expert: Mapping[str, Any], t: Thresholds) -> Check:
    rates = {task: row["successes"] / max(row["episodes"], 1) for task, row in expert.items()}
    low = [task for task, rate in rates.items() if rate < t.min_success]
    text = ", ".join(f"{task} {expert[task]['successes']}/{expert[task]['episodes']}" for task in expert)
    return Check("expert_success", DESCRIPTIONS["expert_success"], bool(expert) and not low,
                 f"{text}; minimum {t.min_success:.0%} per task")  # fmt: skip


def _judge_speed(speed: Mapping[str, Any], t: Thresholds) -> Check:
    rate = speed["steps"] / max(speed["seconds"], 1e-9)
    text = f"{rate:.1f} steps/s ({speed['steps']} steps, {speed['resets']} resets, {speed['seconds']:.1f} s)"
    return Check("steps_per_second", DESCRIPTIONS["steps_per_second"], rate >= t.min_steps_per_second,
                 f"{text}; minimum {t.min_steps_per_second:g}")  # fmt: skip


def _judge_failing_run(run: Mapping[str, Any], _: Thresholds) -> Check:
    code = run["returncode"]
    return Check("failing_run_exit", DESCRIPTIONS["failing_run_exit"], code != 0, f"exit status {code}")


def _judge_repeatable(run: Mapping[str, Any], _: Thresholds) -> Check:
    text = f"max difference {run['max_abs_diff']:.3g} over {run['steps']} steps of {run['values']} values per step"
    return Check("low_dim_repeatable", DESCRIPTIONS["low_dim_repeatable"],
                 run["max_abs_diff"] == 0.0 and run["steps"] > 0, text)  # fmt: skip


JUDGES: dict[str, Callable[[Any, Thresholds], Check]] = {
    "kit": _judge_kit, "franka_dofs": _judge_dofs, "first_frame": _judge_first_frame,
    "no_empty_frames": _judge_frames, "physics_handles": _judge_handles, "expert_success": _judge_expert,
    "steps_per_second": _judge_speed, "failing_run_exit": _judge_failing_run,
    "low_dim_repeatable": _judge_repeatable,
}  # fmt: skip


def format_checklist(checks: Sequence[Check]) -> str:
    """One line per item: ``PASS``/``FAIL``, the item, the measured value."""
    lines = [f"{c.status}  {i + 1}. {c.description}: {c.measured}" for i, c in enumerate(checks)]
    passed = sum(c.passed is True for c in checks)
    return "\n".join([*lines, f"{passed}/{len(checks)} items pass"])


# ---------------------------------------------------------------- measuring
def project_to_pixel(camera: CameraSpec, point: np.ndarray) -> tuple[float, float] | None:
    """Pixel (column u, row v; row 0 at the top) of world ``point`` (3,) m in a world-mounted
    ``camera`` (pinhole, vertical field of view ``fovy``, square pixels), or None behind it."""
    if camera.mount != "world":
        raise ValueError(f"camera {camera.name!r}: only world-mounted cameras are projected")
    rot = look_at_matrix(np.asarray(camera.pos, float), np.asarray(camera.lookat, float), camera.roll,
                         np.array([0.0, 0.0, 1.0]))  # fmt: skip
    x, y, z = rot.T @ (np.asarray(point, float) - np.asarray(camera.pos, float))
    if z >= -1e-6:
        return None
    focal = (camera.height / 2.0) / math.tan(math.radians(camera.fovy) / 2.0)
    return camera.width / 2.0 + focal * x / -z, camera.height / 2.0 - focal * y / -z


def mask_distance(mask: np.ndarray, pixel: tuple[float, float] | None) -> float | None:
    """Distance (px) from ``pixel`` (u, v) to the nearest pixel centre of the bool (H, W) ``mask``;
    0 when the pixel lies on the mask, None when the mask is empty or the point is not in view."""
    rows, cols = np.nonzero(mask)
    if pixel is None or rows.size == 0:
        return None
    u, v = pixel
    inside = 0 <= int(v) < mask.shape[0] and 0 <= int(u) < mask.shape[1] and mask[int(v), int(u)]
    if inside:
        return 0.0
    return float(np.min(np.hypot(cols + 0.5 - u, rows + 0.5 - v)))


def front_camera(scene: SceneSpec) -> CameraSpec:
    """The first world-mounted camera of ``scene``."""
    return next(c for c in scene.cameras if c.mount == "world")


def _expert_steps(backend: Any, scene: SceneSpec, steps: int, seed: int) -> None:
    from sim2real.sim.experts import make_expert

    expert = make_expert(scene, np.random.default_rng(seed))
    for _ in range(steps):
        backend.step(expert.act(backend.privileged_state()))


def measure_first_frame(backend: Any, scenes: Sequence[SceneSpec]) -> list[dict[str, Any]]:
    """Per scene: move the arm away with expert steps, reset, and measure the distance (px) between
    the reset pose's TCP projected into the front camera and the hand's mask in the first frame."""
    rows = []
    for index, scene in enumerate(scenes):
        if index:
            _expert_steps(backend, scenes[index - 1], MOVE_STEPS, index)
        backend.reset(scene)
        camera = front_camera(scene)
        tcp = backend.privileged_state().ee_pos
        pixel = project_to_pixel(camera, tcp)
        mask = np.asarray(backend.hand_mask(camera.name), bool)
        rows.append({"seed": scene.seed, "task": scene.task, "tcp_px": None if pixel is None else list(pixel),
                     "hand_pixels": int(mask.sum()), "distance_px": mask_distance(mask, pixel)})  # fmt: skip
    return rows


def _image_problem(name: str, image: Any, camera: CameraSpec) -> str | None:
    array = np.asarray(image)
    if array.shape != (camera.height, camera.width, 3) or array.dtype != np.uint8:
        return f"{name}: shape {array.shape} {array.dtype}"
    if not array.any():
        return f"{name}: every pixel is 0"
    return None


def measure_frames(backend: Any, scenes: Sequence[SceneSpec], steps: int) -> dict[str, Any]:
    """Step the expert for ``steps`` control steps over ``scenes`` (a new scene when an episode ends
    or after 60 steps) and check every image of every camera after each reset and step."""
    from sim2real.sim.experts import make_expert
    from sim2real.sim.tasks import make_task

    counts: dict[str, Any] = {"steps": 0, "images": 0, "bad": 0, "errors": []}
    before = int(getattr(backend, "recaptures", 0))
    index = 0
    while counts["steps"] < steps:
        scene = scenes[index % len(scenes)]
        index += 1
        backend.reset(scene)
        _check_images(backend, scene, counts)
        expert, task = make_expert(scene, np.random.default_rng(index)), make_task(scene.task)
        for _ in range(min(60, steps - counts["steps"])):
            state = backend.privileged_state()
            backend.step(expert.act(state))
            counts["steps"] += 1
            _check_images(backend, scene, counts)
            if task.success(backend.privileged_state(), scene):
                break
    counts["recaptures"] = int(getattr(backend, "recaptures", 0)) - before
    counts["errors"] = counts["errors"][:5]
    return counts


def _check_images(backend: Any, scene: SceneSpec, counts: dict[str, Any]) -> None:
    cameras = {c.name: c for c in scene.cameras}
    try:
        images = backend.images()
    except Exception as error:  # an image that cannot be produced is a bad frame, not a crash of the check
        counts["images"] += len(cameras)
        counts["bad"] += len(cameras)
        counts["errors"].append(f"{type(error).__name__}: {error}")
        return
    for name, camera in cameras.items():
        counts["images"] += 1
        problem = _image_problem(name, images.get(name), camera) if name in images else f"{name}: missing"
        if problem:
            counts["bad"] += 1
            counts["errors"].append(problem)


def _low_dim_run(backend: Any, scene: SceneSpec, steps: int) -> np.ndarray:
    from sim2real.sim.experts import make_expert

    backend.reset(scene)
    expert = make_expert(scene, np.random.default_rng(scene.seed))
    rows = []
    for _ in range(steps):
        state = backend.privileged_state()
        action = np.asarray(expert.act(state), np.float64)
        poses = [np.r_[o.pos, o.quat] for _, o in sorted(state.objects.items())]
        rows.append(np.concatenate([np.asarray(backend.proprio(), np.float64), action, *poses]))
        backend.step(action.astype(np.float32))
    return np.asarray(rows)


def measure_repeatability(backend: Any, scene: SceneSpec, other: SceneSpec, steps: int = 40) -> dict[str, Any]:
    """Run ``scene`` with its expert for ``steps`` steps, then ``other``, then ``scene`` again: the
    largest difference of proprio, actions and object poses between the two runs of ``scene``."""
    first = _low_dim_run(backend, scene, steps)
    _low_dim_run(backend, other, 5)
    second = _low_dim_run(backend, scene, steps)
    return {"steps": len(first), "values": int(first.shape[1]) if first.ndim == 2 else 0,
            "max_abs_diff": float(np.abs(first - second).max()) if first.size else 0.0}  # fmt: skip


def measure_resets(backend: Any, scenes: Sequence[SceneSpec]) -> list[dict[str, Any]]:
    """Per reset: the names of the physics views that are not valid, and whether a step runs."""
    rows = []
    for index, scene in enumerate(scenes):
        row: dict[str, Any] = {"seed": scene.seed, "invalid": []}
        try:
            backend.reset(scene)
            row["invalid"] = sorted(name for name, ok in backend.physics_valid().items() if not ok)
            backend.step(np.zeros(7, np.float32))  # reads the PhysX Jacobian
        except Exception as error:
            row["error"] = f"{type(error).__name__}: {error}"
        rows.append(row)
        if index % 2:
            _expert_steps(backend, scene, 5, index)
    return rows


def measure_expert(backend: Any, scenes: Mapping[str, Sequence[SceneSpec]], *, images: bool = True,
                   max_steps: int | None = None) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:  # fmt: skip
    """Run the expert closed loop on every scene (images of every camera read each step when
    ``images``). Returns (per task ``{"successes", "episodes", "rows"}``, speed ``{"steps",
    "seconds", "resets"}``, per-camera image mean / std samples)."""
    from sim2real.sim.experts import make_expert
    from sim2real.sim.tasks import make_task

    expert_rows: dict[str, Any] = {}
    speed = {"steps": 0, "seconds": 0.0, "resets": 0}
    image_stats: dict[str, list[list[float]]] = {}
    for task_name, task_scenes in scenes.items():
        task = make_task(task_name)
        result = {"successes": 0, "episodes": 0, "rows": []}
        for scene in task_scenes:
            start = time.perf_counter()
            backend.reset(scene)
            speed["resets"] += 1
            state = backend.privileged_state()
            initial_tcp = [float(v) for v in state.ee_pos]
            expert = make_expert(scene, np.random.default_rng(scene.seed))
            success, length = False, 0
            for length in range(1, (max_steps or task.max_steps) + 1):
                backend.step(expert.act(state))
                if images:
                    for camera, image in backend.images().items():
                        if length % 5 == 1:
                            image_stats.setdefault(camera, []).append([float(image.mean()), float(image.std())])
                state = backend.privileged_state()
                if task.success(state, scene):
                    success = True
                    break
            speed["seconds"] += time.perf_counter() - start
            speed["steps"] += length
            result["successes"] += int(success)
            result["episodes"] += 1
            result["rows"].append({"seed": scene.seed, "success": success, "length": length,
                                   "initial_tcp": initial_tcp})  # fmt: skip
        expert_rows[task_name] = result
    return expert_rows, speed, image_stats


def checklist_scenes(count: int, preset: str, seed: int) -> dict[str, list[SceneSpec]]:
    """``count`` scenes per task, seeds ``seed..seed+count-1``."""
    config = load_preset(preset)
    return {task: [sample_scene(task, seed + i, config) for i in range(count)] for task in TASKS}


# ------------------------------------------------------------------- workers
class Recorder:
    """Measurements written to ``path`` (JSON) after every item."""

    def __init__(self, path: Path) -> None:
        self.path, self.data = path, {}

    def __setitem__(self, key: str, value: Any) -> None:
        self.data[key] = value
        self.path.write_text(json.dumps(self.data, default=float))

    def measure(self, key: str, function: Callable[[], Any]) -> Any:
        """``self[key] = function()``, or ``{"error": ...}`` when it raises (the next items still run)."""
        try:
            value = function()
        except Exception as error:
            traceback.print_exc()
            self[key] = {"error": f"{type(error).__name__}: {error}"}
            return None
        self[key] = value
        return value


def run_isaac_worker(args: argparse.Namespace, options: dict[str, Any]) -> None:
    """Every measurement on one IsaacBackend (one Kit), recorded item by item into ``args.result``."""
    from sim2real.sim.backend import BackendConfig
    from sim2real.sim.isaac.backend import IsaacBackend

    record = Recorder(args.result)
    scenes = checklist_scenes(args.scenes, args.preset, args.seed)
    mixed = [s for group in zip(*scenes.values(), strict=True) for s in group]  # tasks interleaved
    options = {"renderer": args.renderer, **options}  # --option renderer=... wins
    try:
        backend = IsaacBackend(BackendConfig(options=options))
    except Exception as error:
        record["kit"] = {"error": f"{type(error).__name__}: {error}"}
        raise
    try:
        record["kit"] = {"requested": options["renderer"], "render_mode": backend.render_mode,
                         "headless": bool(backend.app.config.get("headless"))}  # fmt: skip

        def dofs() -> dict[str, Any]:
            backend.reset(mixed[0])
            return {"names": backend.dof_names, "variants": [list(v) for v in backend.options.robot_variants]}

        record.measure("franka_dofs", dofs)
        record.measure("first_frame", lambda: measure_first_frame(backend, mixed[: args.first_frame_scenes]))
        record.measure("no_empty_frames", lambda: measure_frames(backend, mixed, args.steps))
        record.measure("physics_handles", lambda: measure_resets(backend, mixed[: args.resets]))
        record.measure("low_dim_repeatable", lambda: measure_repeatability(backend, mixed[0], mixed[1]))
        result = record.measure("expert", lambda: measure_expert(backend, scenes))
        if result is None:  # the expert run failed: both items show its error
            record["expert_success"] = record["steps_per_second"] = record.data["expert"]
        else:
            expert, speed, image_stats = result
            record["expert_success"] = {t: {k: v for k, v in r.items() if k != "rows"} for t, r in expert.items()}
            record["steps_per_second"] = speed
            record["compare"] = {"expert": expert, "images": image_stats}
    finally:
        backend.close()


def run_mujoco_worker(args: argparse.Namespace) -> None:
    """The expert on the same scenes on MuJoCo, for ``--compare-mujoco``."""
    from sim2real.sim.backend import make_backend

    record = Recorder(args.result)
    backend = make_backend("mujoco")
    try:
        expert, speed, image_stats = measure_expert(backend, checklist_scenes(args.scenes, args.preset, args.seed))
        record["compare"] = {"expert": expert, "images": image_stats, "speed": speed}
    finally:
        backend.close()


def deliberate_failure(renderer: str) -> None:
    """Start Kit, then fail: the process must exit non-zero (``failing_run_exit``)."""
    from sim2real.sim.isaac.app import AppSettings, launch

    launch(AppSettings(renderer=renderer))
    raise RuntimeError("deliberate failure with Kit running (validate_isaac.py failing_run_exit)")


# ------------------------------------------------------------------ parent side
def isaac_ready(python: str | None) -> bool:
    """Whether the Isaac worker can start; prints the reason when not."""
    if python:
        probe = subprocess.run([python, "-c", "import importlib.util as u; print(u.find_spec('isaacsim') is not None)"],
                               capture_output=True, text=True)  # fmt: skip
        if probe.stdout.strip() == "True":
            return True
        print(f"{python}: Isaac Sim is not importable there.", file=sys.stderr)
    from sim2real.sim.isaac.app import INSTALL_HELP, isaacsim_available

    if not python and isaacsim_available():
        return True
    print(INSTALL_HELP, file=sys.stderr)
    return False


def parse_options(pairs: Sequence[str]) -> dict[str, Any]:
    """``key=value`` backend options (values parsed as JSON when they parse, else strings), checked
    by the Isaac options class."""
    from sim2real.sim.backend import parse_backend_options

    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--option {pair!r}: expected key=value")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    parse_backend_options("isaac", options)
    return options


def _worker_command(python: str, args: argparse.Namespace, worker: str, result: Path) -> list[str]:
    command = [python, str(Path(__file__).resolve()), "--worker", worker, "--result", str(result),
               "--renderer", args.renderer, "--scenes", str(args.scenes), "--steps", str(args.steps),
               "--resets", str(args.resets), "--first-frame-scenes", str(args.first_frame_scenes),
               "--preset", args.preset, "--seed", str(args.seed)]  # fmt: skip
    for pair in args.option:
        command += ["--option", pair]
    return command


def _read(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.is_file() and path.stat().st_size else {}


def print_comparison(isaac: Mapping[str, Any], mujoco: Mapping[str, Any]) -> None:
    """Success per task, per-camera image mean / std and TCP after reset, MuJoCo vs Isaac."""
    print(f"\n{'':28}{'mujoco':>24}{'isaac':>24}")
    for task in TASKS:
        rows = [side.get("expert", {}).get(task, {}) for side in (mujoco, isaac)]
        cells = [f"{r.get('successes', 0)}/{r.get('episodes', 0)}" for r in rows]
        print(f"{'success ' + task:28}{cells[0]:>24}{cells[1]:>24}")
        tcp = [np.asarray([row["initial_tcp"] for row in r.get("rows", [])]).reshape(-1, 3) for r in rows]
        n = min(len(tcp[0]), len(tcp[1]))
        if n:
            gap = 1000 * np.linalg.norm(tcp[0][:n] - tcp[1][:n], axis=1).max()
            print(f"{'reset TCP diff ' + task:28}{'':>24}{f'max {gap:.2f} mm':>24}")
    for camera in sorted(set(mujoco.get("images", {})) | set(isaac.get("images", {}))):
        cells = []
        for side in (mujoco, isaac):
            samples = np.asarray(side.get("images", {}).get(camera, [[np.nan, np.nan]]))
            cells.append(f"{samples[:, 0].mean():.1f} / {samples[:, 1].mean():.1f}")
        print(f"{'image mean/std ' + camera:28}{cells[0]:>24}{cells[1]:>24}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--renderer", default="RealTimePathTracing", help="RTX mode to start Kit with")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="an Isaac backend option (backend_options), e.g. warmup_frames=8; repeatable")  # fmt: skip
    parser.add_argument("--scenes", type=int, default=20, help="expert scenes per task")
    parser.add_argument("--steps", type=int, default=200, help="control steps checked for empty frames")
    parser.add_argument("--resets", type=int, default=10, help="resets checked for valid physics handles")
    parser.add_argument("--first-frame-scenes", type=int, default=5, help="scenes checked for the first frame")
    parser.add_argument("--first-frame-px", type=float, default=Thresholds.first_frame_px)
    parser.add_argument("--min-success", type=float, default=Thresholds.min_success)
    parser.add_argument("--min-steps-per-second", type=float, default=Thresholds.min_steps_per_second)
    parser.add_argument("--preset", default="default", help="randomization preset of the scenes")
    parser.add_argument("--seed", type=int, default=1000, help="first scene seed")
    parser.add_argument("--isaac-python", default=None, help="Python of the Isaac Sim environment (default: this one)")
    parser.add_argument("--compare-mujoco", action="store_true", help="also run the expert on MuJoCo and compare")
    parser.add_argument("--mujoco-python", default=None, help="Python with MuJoCo for --compare-mujoco")
    parser.add_argument("--out", type=Path, default=None, help="write the measurements and checklist as JSON")
    parser.add_argument("--worker", choices=("isaac", "mujoco"), help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--deliberate-failure", action="store_true", help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.deliberate_failure:
        deliberate_failure(args.renderer)
    options = parse_options(args.option)
    if args.worker == "isaac":
        run_isaac_worker(args, options)
        return 0
    if args.worker == "mujoco":
        run_mujoco_worker(args)
        return 0
    if not isaac_ready(args.isaac_python):
        return 2
    python = args.isaac_python or sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "isaac.json"
        print("running the Isaac worker (Kit starts once; this takes minutes) ...", flush=True)
        try:
            subprocess.run(_worker_command(python, args, "isaac", result), timeout=WORKER_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            print(f"the Isaac worker ran past {WORKER_TIMEOUT_S} s", file=sys.stderr)
        measurements = _read(result)
        failing = subprocess.run([python, str(Path(__file__).resolve()), "--deliberate-failure", "--renderer",
                                  args.renderer], capture_output=True, text=True, timeout=1800)  # fmt: skip
        measurements["failing_run_exit"] = {"returncode": failing.returncode}
        mujoco: dict[str, Any] = {}
        if args.compare_mujoco:
            mujoco_result = Path(tmp) / "mujoco.json"
            subprocess.run(_worker_command(args.mujoco_python or sys.executable, args, "mujoco", mujoco_result),
                           timeout=WORKER_TIMEOUT_S)  # fmt: skip
            mujoco = _read(mujoco_result).get("compare", {})
    thresholds = Thresholds(args.first_frame_px, args.min_success, args.min_steps_per_second)
    checks = judge(measurements, thresholds)
    print("\n" + format_checklist(checks))
    if args.compare_mujoco:
        print_comparison(measurements.get("compare", {}), mujoco)
    if args.out:
        args.out.write_text(json.dumps({"measurements": measurements, "mujoco": mujoco,
                                        "checks": [c.__dict__ | {"status": c.status} for c in checks]},
                                       indent=1, default=float))  # fmt: skip
    return 0 if all(c.passed for c in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
