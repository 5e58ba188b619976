"""Shared fixtures: one MuJoCo backend per test session (GL contexts are costly)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture(scope="session")
def backend() -> Iterator[object]:
    from sim2real.sim.backend import make_backend

    instance = make_backend("mujoco")
    yield instance
    instance.close()


@pytest.fixture(scope="session")
def real_replay_dir() -> Path:
    path = SHARED / "real_replay"
    if not path.is_dir():
        pytest.skip("../shared/real_replay is not present")
    return path


def run_tensorflow(script: str, *args: str) -> dict:
    """Run ``script`` (which must ``np.savez(sys.argv[-1], ...)``) in a fresh interpreter and
    return its arrays. TensorFlow always runs in its own process: its native library and
    MuJoCo's EGL context, or zarr's codec threads, crash when they share one."""
    import subprocess
    import sys
    import tempfile

    import numpy as np

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.npz"
        subprocess.run([sys.executable, "-c", script, *args, str(out)], check=True)
        with np.load(out) as data:
            return {key: data[key] for key in data.files}
