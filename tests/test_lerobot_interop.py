"""The LeRobot format against the real ``lerobot`` library (0.4.4), both ways.

* Our export, opened by lerobot: a generated run (``formats=[zarr,lerobot]``, two shards merged, LeRobot's default
  AV1 video) and the same episodes converted with ``sim2real convert --to lerobot --option vcodec=lossless``.
  lerobot's ``LeRobotDataset`` must index every frame, put the episode boundaries and tasks where ours are, give
  actions and state bit-equal to our Zarr copy, and decoded frames within the codec's tolerance (AV1) or
  bit-equal (lossless).
* A dataset lerobot writes with its own API (``create``, ``add_frame``, ``save_episode``, ``finalize``; its
  default AV1 video), read back through our reader: actions and state exact, frames within tolerance, task
  strings and episode lengths; one in our layout, one of another robot (joint positions, one camera).

lerobot pins torch<2.11 and the project pins torch 2.13, so lerobot lives in a venv of its own under pytest's cache
folder (made once, a few minutes): torch 2.14.1 + torchvision 0.29.1 (local wheels here), torchcodec 0.17 (stable
ABI, torch >= 2.11) and lerobot's dataset dependencies, then lerobot itself without its pins (``--no-deps``).
lerobot decodes video with ``video_backend="torchcodec"``, which loads the system's FFmpeg libraries
(``tools/setup_system.sh`` installs them; its ``pyav`` backend needs ``torchvision.io.VideoReader``, gone from
torchvision 0.29). The lerobot side runs as scripts in ``tests/lerobot_scripts/``. Skipped only where no venv can be
made, or, outside CI (``CI`` unset), where the install or the FFmpeg libraries are missing.
"""

from __future__ import annotations

import ctypes.util
import json
import os
import subprocess
import sys
import venv
from pathlib import Path

import numpy as np
import pytest

from sim2real.datasets import open_dataset
from sim2real.datasets.schema import ACTION_NAMES, STATE_NAMES
from sim2real.generation import GenerationConfig, generate

pytestmark = [pytest.mark.interop, pytest.mark.timeout(1200)]

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = Path(__file__).resolve().parent / "lerobot_scripts"
LEROBOT = "lerobot==0.4.4"
#: lerobot's dataset dependencies, within its own pins, and a torch stack it runs on (its pins say torch<2.11,
#: torchcodec<0.11: none of those is on this machine's disk; torchcodec >= 0.12 is built on torch's stable ABI).
VENV_REQUIREMENTS = (
    "torch==2.14.1", "torchvision==0.29.1", "torchcodec==0.17.0", "datasets>=4.0.0,<5.0.0",
    "huggingface-hub>=0.34.2,<0.36.0", "accelerate>=1.10.0,<2.0.0", "av>=15.0.0,<16.0.0", "jsonlines>=4.0.0,<5.0.0",
    "draccus==0.10.0", "einops>=0.8.0,<0.9.0", "deepdiff>=7.0.1,<9.0.0", "termcolor>=2.4.0,<4.0.0",
    "packaging>=24.2,<26.0", "pandas", "pyarrow",
)  # fmt: skip
FFMPEG_LIBS = ("avutil", "avcodec", "avformat", "avdevice", "avfilter", "swscale", "swresample")
#: LeRobot's default video (AV1, yuv420p, CRF 30) on our 128 px renders and on the smooth synthetic frames below.
MAX_MEAN_ABS_ERROR = 4.0
MIN_PSNR_DB = 28.0


def _unavailable(reason: str) -> None:
    """Skip on a developer's machine; fail on CI, where the install must work."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI must run the lerobot interop tests)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def lerobot_python(request: pytest.FixtureRequest) -> Path:
    """The python of a venv holding lerobot (made once, kept in pytest's cache folder)."""
    missing = [lib for lib in FFMPEG_LIBS if ctypes.util.find_library(lib) is None]
    if missing:
        _unavailable(f"FFmpeg libraries {missing} are not installed (bash tools/setup_system.sh)")
    spec = "\n".join((LEROBOT, *VENV_REQUIREMENTS))
    root = Path(request.config.cache.mkdir("lerobot_venv")) / LEROBOT.replace("==", "-")
    python = root / "bin" / "python"
    done = root / ".installed"
    if not done.is_file() or done.read_text() != spec:
        try:
            venv.EnvBuilder(clear=True, with_pip=True).create(root)
        except (OSError, subprocess.CalledProcessError) as error:  # no ensurepip (e.g. Debian without python3-venv)
            pytest.skip(f"cannot make a venv for {LEROBOT}: {error}")
        pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        for install in ([*pip, *VENV_REQUIREMENTS], [*pip, "--no-deps", LEROBOT]):
            result = subprocess.run(install, capture_output=True, text=True, timeout=1200)
            if result.returncode != 0:
                _unavailable(f"cannot install {LEROBOT}: {result.stderr.strip().splitlines()[-3:]}")
        done.write_text(spec)
    return python


def _run_lerobot(python: Path, script: str, *args: str | Path, home: Path) -> dict:
    """Run ``tests/lerobot_scripts/<script>`` in the lerobot venv, offline, and return its last JSON line."""
    env = os.environ | {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_HOME": str(home / "hf"),
                        "HF_LEROBOT_HOME": str(home / "lerobot"), "CUDA_VISIBLE_DEVICES": ""}  # fmt: skip
    result = subprocess.run([str(python), str(SCRIPTS / script), *map(str, args)], capture_output=True, text=True,
                            timeout=900, env=env, cwd=home)  # fmt: skip
    assert result.returncode == 0, f"{script} failed:\n{result.stderr[-6000:]}"
    return json.loads(result.stdout.strip().splitlines()[-1])


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def _assert_within_codec_tolerance(got: np.ndarray, want: np.ndarray, what: str) -> None:
    assert got.shape == want.shape and got.dtype == want.dtype == np.uint8, (what, got.shape, want.shape)
    error = np.abs(got.astype(np.int16) - want.astype(np.int16))
    assert error.mean() <= MAX_MEAN_ABS_ERROR, (what, float(error.mean()))
    assert _psnr(got, want) >= MIN_PSNR_DB, (what, _psnr(got, want))


# -------------------------------------------------------------------------------- our export, read by lerobot


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four episodes of every task in two shards, as Zarr and as LeRobot (merged into one ``lerobot/`` dataset)."""
    config = GenerationConfig(
        task="all", num_episodes=4, shard_size=2, seed=11, formats=("zarr", "lerobot"), progress=False,
        output_dir=str(tmp_path_factory.mktemp("interop") / "gen"), randomization={"name": "light"},
    )  # fmt: skip
    generate(config)
    return Path(config.output_dir)


def _zarr_copy(root: Path) -> dict:
    """Our Zarr copy of the run, flattened frame by frame in episode order."""
    reader = open_dataset(root / "zarr")
    episodes = [reader.episode(i) for i in range(len(reader))]
    steps = [episode.steps for episode in episodes]
    lengths = [len(s.action) for s in steps]
    return {
        "lengths": lengths,
        "instructions": [s.language_instruction for s in steps],
        "action": np.concatenate([s.action for s in steps]),
        "state": np.concatenate([s.state for s in steps]),
        "images": {camera: np.concatenate([s.images[camera] for s in steps]) for camera in steps[0].images},
        "control_hz": episodes[0].metadata.control_hz,
    }


def _check_lerobot_view(report: dict, frames: dict, zarr: dict) -> None:
    """What lerobot says about our export against our Zarr copy (everything but the pixels)."""
    lengths = zarr["lengths"]
    total = sum(lengths)
    bounds = np.cumsum([0, *lengths])
    assert report["codebase_version"] == "v3.0" and report["fps"] == round(zarr["control_hz"])
    assert report["len"] == report["num_frames"] == report["total_frames"] == total
    assert report["num_episodes"] == report["total_episodes"] == len(lengths)
    assert report["episode_index"] == list(range(len(lengths)))
    assert report["dataset_from_index"] == bounds[:-1].tolist() and report["dataset_to_index"] == bounds[1:].tolist()
    assert report["length"] == lengths
    assert report["episode_tasks"] == [[instruction] for instruction in zarr["instructions"]]
    assert report["tasks"] == list(dict.fromkeys(zarr["instructions"]))  # first-seen order, no duplicates
    assert report["task_indices"] == list(range(len(report["tasks"])))
    assert report["names"] == {"action": list(ACTION_NAMES), "observation.state": list(STATE_NAMES)}
    assert report["camera_keys"] == report["video_keys"] == [f"observation.images.{c}" for c in sorted(zarr["images"])]
    # every frame, in order: lerobot's per-frame columns and task strings
    episode_of_frame = np.repeat(np.arange(len(lengths)), lengths)
    frame_in_episode = np.concatenate([np.arange(n) for n in lengths])
    np.testing.assert_array_equal(frames["index"], np.arange(total))
    np.testing.assert_array_equal(frames["episode_index"], episode_of_frame)
    np.testing.assert_array_equal(frames["frame_index"], frame_in_episode)
    np.testing.assert_allclose(frames["timestamp"], frame_in_episode / report["fps"], atol=1e-6)
    assert frames["task"].tolist() == [zarr["instructions"][e] for e in episode_of_frame]
    # actions and state bit for bit
    for key in ("action", "state"):
        assert frames[key].dtype == zarr[key].dtype == np.float32, key
        assert frames[key].tobytes() == zarr[key].tobytes(), key


def _read_with_lerobot(python: Path, datasets: list[Path], tmp_path: Path) -> list[tuple[dict, dict]]:
    """What lerobot's ``LeRobotDataset`` says about each dataset, and every frame it gives (one process for all)."""
    outs = [tmp_path / f"lerobot_frames_{i}.npz" for i in range(len(datasets))]
    args = [str(path) for pair in zip(datasets, outs, strict=True) for path in pair]
    result = _run_lerobot(python, "read_with_lerobot.py", *args, home=tmp_path)
    assert result["versions"]["lerobot"] == "0.4.4", result["versions"]
    views = []
    for report, out in zip(result["datasets"], outs, strict=True):
        with np.load(out) as data:
            views.append((report, {key: data[key] for key in data.files}))
    return views


def _assert_decoded_alike(ours: np.ndarray, lerobots: np.ndarray, what: str) -> None:
    """Our reader's frames against lerobot's (PyAV's FFmpeg against torchcodec's system FFmpeg): the same decode,
    up to rounding in the colour conversion (equal where measured)."""
    assert ours.shape == lerobots.shape and ours.dtype == lerobots.dtype == np.uint8, (what, ours.shape)
    assert int(np.abs(ours.astype(np.int16) - lerobots.astype(np.int16)).max()) <= 1, what


def test_lerobot_opens_our_exports(lerobot_python: Path, generated: Path, tmp_path: Path) -> None:
    """Three exports of the same episodes: the merged ``lerobot/`` of a two-shard run (generation's video settings),
    and ``sim2real convert`` of its Zarr with the writer's defaults (LeRobot's AV1) and with ``vcodec=lossless``.
    lerobot indexes every frame, gets the episodes and tasks right, gives actions and state bit-equal to the Zarr
    copy and frames within the lossy codecs' tolerance, bit-equal when lossless; our reader decodes lerobot's
    pixels."""
    exports = {"generated": generated / "lerobot", "av1": tmp_path / "av1", "lossless": tmp_path / "lossless"}
    for name, options in (("av1", []), ("lossless", ["--option", "vcodec=lossless"])):
        subprocess.run([sys.executable, "-m", "sim2real.cli", "convert", str(generated / "zarr"), str(exports[name]),
                        "--to", "lerobot", *options], check=True, cwd=ROOT, capture_output=True)  # fmt: skip
    codecs = {}
    for name, path in exports.items():
        info = json.loads((path / "meta" / "info.json").read_text())
        codecs[name] = {ft["info"]["video.codec"] for ft in info["features"].values() if ft["dtype"] == "video"}
    assert codecs["av1"] == {"av1"} and codecs["lossless"] == {"h264"}, codecs
    zarr = _zarr_copy(generated)
    views = dict(zip(exports, _read_with_lerobot(lerobot_python, list(exports.values()), tmp_path), strict=True))
    for report, frames in views.values():
        _check_lerobot_view(report, frames, zarr)
    for name in ("generated", "av1"):
        ours = open_dataset(exports[name])
        frames = views[name][1]
        for camera, want in zarr["images"].items():
            got = frames[f"image.{camera}"]
            _assert_within_codec_tolerance(got, want, f"{name}/{camera}")
            assert not np.array_equal(got, want), f"{name}/{camera}"  # really a lossy codec, not a stand-in
            decoded = np.concatenate([ours.episode(i).steps.images[camera] for i in range(len(ours))])
            _assert_decoded_alike(decoded, got, f"{name}/{camera}")
    for camera, want in zarr["images"].items():
        exact = views["lossless"][1][f"image.{camera}"]
        assert exact.shape == want.shape and exact.tobytes() == want.tobytes(), camera


# ------------------------------------------------------------------------ lerobot's own dataset, read by ours


def _smooth_frames(count: int, height: int, width: int, seed: int) -> np.ndarray:
    """Camera-like frames (gradients and a moving square) that a lossy codec keeps close, unlike noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    phase = rng.uniform(0, 2 * np.pi, 3)
    frames = np.empty((count, height, width, 3), np.uint8)
    for t in range(count):
        for c in range(3):
            wave = np.sin(xx / width * 2 * np.pi + phase[c] + 0.3 * t) * np.cos(yy / height * np.pi + 0.2 * c)
            frames[t, :, :, c] = np.clip(128 + 70 * wave, 0, 255).astype(np.uint8)
        top, left = 8 + (3 * t) % (height - 24), 8 + (5 * t) % (width - 24)
        frames[t, top : top + 16, left : left + 16] = (200, 110, 90)
    return frames


def _video_feature(height: int, width: int) -> dict:
    return {"dtype": "video", "shape": [height, width, 3], "names": ["height", "width", "channels"]}


def _vector_feature(names: list[str]) -> dict:
    return {"dtype": "float32", "shape": [len(names)], "names": names}


#: (dataset, fps, robot_type, features, episodes as (task, length))
OURS = ("ours", 10, "panda", {
    "observation.images.front": _video_feature(64, 96), "observation.images.wrist": _video_feature(64, 64),
    "observation.state": _vector_feature(list(STATE_NAMES)), "action": _vector_feature(list(ACTION_NAMES)),
}, [("stack the green block on the red block", 12), ("open the drawer", 7),
    ("stack the green block on the red block", 15)])  # fmt: skip
JOINTS = ["shoulder_pan.pos", "shoulder_lift.pos", "elbow_flex.pos", "wrist_flex.pos", "wrist_roll.pos", "gripper.pos"]
SO100 = ("so100", 30, "so100_follower", {
    "observation.images.laptop": _video_feature(64, 80), "observation.state": _vector_feature(JOINTS),
    "action": _vector_feature(JOINTS),
}, [("pick up the cube", 20), ("pick up the cube", 9)])  # fmt: skip


def _episode_arrays(features: dict, length: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    arrays: dict[str, np.ndarray] = {}
    for index, (key, feature) in enumerate(sorted(features.items())):
        if feature["dtype"] == "video":
            arrays[key] = _smooth_frames(length, *feature["shape"][:2], seed=seed * 10 + index)
        else:  # full float32 precision: any rounding on the way would show
            arrays[key] = rng.normal(0, 1, (length, feature["shape"][0])).astype(np.float32)
    if features["action"]["names"] == list(ACTION_NAMES):
        arrays["action"][:, 6] = rng.uniform(0, 1, length).astype(np.float32)  # our gripper: [0, 1], 1 = open
    return arrays


@pytest.fixture(scope="module")
def written_by_lerobot(lerobot_python: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, dict]:
    """Two datasets lerobot writes with its own API; what was written into them, per dataset and episode; and the
    frames lerobot's own reader decodes from them, per dataset."""
    tmp = tmp_path_factory.mktemp("lerobot_written")
    datasets, written = [], {}
    for seed, (name, fps, robot_type, features, episodes) in enumerate((OURS, SO100)):
        spec_episodes, arrays = [], []
        for e, (task, length) in enumerate(episodes):
            arrays.append(_episode_arrays(features, length, seed=100 * seed + e))
            np.savez(tmp / f"{name}-{e}.npz", **arrays[-1])
            spec_episodes.append({"task": task, "npz": str(tmp / f"{name}-{e}.npz")})
        datasets.append({"root": str(tmp / name), "fps": fps, "robot_type": robot_type, "features": features,
                         "episodes": spec_episodes})  # fmt: skip
        written[name] = arrays
    (tmp / "spec.json").write_text(json.dumps({"datasets": datasets}))
    report = _run_lerobot(lerobot_python, "write_with_lerobot.py", tmp / "spec.json", home=tmp)
    assert report["lerobot"] == "0.4.4"
    for made, (_, _, _, _, episodes) in zip(report["datasets"], (OURS, SO100), strict=True):
        assert made["codebase_version"] == "v3.0" and made["total_episodes"] == len(episodes)
        assert made["total_frames"] == sum(length for _, length in episodes)
        assert {info["video.codec"] for info in made["video_info"].values()} == {"av1"}  # lerobot's default
    views = _read_with_lerobot(lerobot_python, [tmp / "ours", tmp / "so100"], tmp)
    return tmp, written, {name: frames for name, (_, frames) in zip(("ours", "so100"), views, strict=True)}


def test_a_dataset_lerobot_wrote_in_our_layout_reads_back_through_ours(written_by_lerobot: tuple) -> None:
    """Our 14-D state and 7-D end-effector actions by their names, two cameras, a task used twice."""
    tmp, written, decoded = written_by_lerobot
    reader = open_dataset(tmp / "ours")
    _, fps, robot_type, _, episodes = OURS
    assert len(reader) == len(episodes)
    for index, ((task, length), arrays) in enumerate(zip(episodes, written["ours"], strict=True)):
        episode = reader.episode(index)
        steps = episode.steps
        assert reader.language_instruction(index) == steps.language_instruction == task
        assert len(steps.action) == length and steps.is_first[0] and steps.is_last[-1]
        assert steps.action.dtype == steps.state.dtype == np.float32
        assert steps.action.tobytes() == arrays["action"].tobytes()
        assert steps.state.tobytes() == arrays["observation.state"].tobytes()
        assert sorted(steps.images) == ["front", "wrist"]
        first = int(sum(n for _, n in episodes[:index]))
        for camera, frames in steps.images.items():
            _assert_within_codec_tolerance(frames, arrays[f"observation.images.{camera}"], f"{index}/{camera}")
            _assert_decoded_alike(frames, decoded["ours"][f"image.{camera}"][first : first + length], camera)
        assert episode.metadata.control_hz == fps and episode.metadata.robot == robot_type
        assert episode.metadata.extras["action_space"] == "ee_delta"


def test_a_dataset_lerobot_wrote_for_another_robot_reads_back_through_ours(
    written_by_lerobot: tuple,
) -> None:
    """Joint-position actions of a 6-motor arm, one camera: actions as recorded, the state unknown (not ours)."""
    tmp, written, decoded = written_by_lerobot
    reader = open_dataset(tmp / "so100")
    _, fps, robot_type, _, episodes = SO100
    assert len(reader) == len(episodes)
    for index, ((task, length), arrays) in enumerate(zip(episodes, written["so100"], strict=True)):
        episode = reader.episode(index)
        steps = episode.steps
        assert steps.language_instruction == task and len(steps.action) == length
        assert steps.action.dtype == np.float32 and steps.action.tobytes() == arrays["action"].tobytes()
        assert np.isnan(steps.state).all()
        assert list(steps.images) == ["laptop"]
        _assert_within_codec_tolerance(steps.images["laptop"], arrays["observation.images.laptop"], f"{index}/laptop")
        first = int(sum(n for _, n in episodes[:index]))
        _assert_decoded_alike(
            steps.images["laptop"], decoded["so100"]["image.laptop"][first : first + length], "laptop"
        )
        assert episode.metadata.extras["action_space"] == "joint_position"
        assert episode.metadata.control_hz == fps and episode.metadata.robot == robot_type
