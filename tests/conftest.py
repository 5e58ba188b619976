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
