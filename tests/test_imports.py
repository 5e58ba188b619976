"""Importing configs, SceneSpecs, readers, policies and the evaluation never imports a simulator."""

from __future__ import annotations

import subprocess
import sys

MODULES = [
    "sim2real", "sim2real.randomizers", "sim2real.sim.scene_spec", "sim2real.sim.tasks", "sim2real.sim.experts",
    "sim2real.sim.backend", "sim2real.sim.env", "sim2real.datasets", "sim2real.generation", "sim2real.policies",
    "sim2real.evaluation", "sim2real.evaluation.harness", "sim2real.sim.isaac", "sim2real.training.run",
]  # fmt: skip


def test_no_simulator_is_imported_by_non_backend_modules() -> None:
    code = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in MODULES)
        + "bad = [m for m in ('mujoco', 'isaacsim', 'omni', 'tensorflow') if m in sys.modules]\n"
        + "print(','.join(bad))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "", f"imported: {result.stdout.strip()}"


def test_backend_isaac_without_isaac_sim_fails_at_once_with_install_steps() -> None:
    import pytest

    from sim2real.sim.backend import make_backend
    from sim2real.sim.isaac.app import IsaacNotInstalledError

    with pytest.raises(IsaacNotInstalledError, match=r"(?s)the 'isaacsim' package is missing.*pip install 'isaacsim"):
        make_backend("isaac")
