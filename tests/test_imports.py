"""Importing configs, SceneSpecs, readers, policies and the evaluation never imports a simulator;
the layers import only downwards (contracts <- sim <- randomizers <- envs)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "sim2real"

MODULES = [
    "sim2real", "sim2real.randomizers", "sim2real.sim.scene_spec", "sim2real.sim.tasks", "sim2real.sim.experts",
    "sim2real.sim.backend", "sim2real.envs", "sim2real.datasets", "sim2real.generation", "sim2real.policies",
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


def _imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside a function (absolute names)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _importers(folder: Path, forbidden: str) -> dict[str, list[str]]:
    found = {}
    for path in sorted(folder.rglob("*.py")):
        bad = sorted(m for m in _imported_modules(path) if m == forbidden or m.startswith(f"{forbidden}."))
        if bad:
            found[str(path.relative_to(PACKAGE.parent))] = bad
    return found


def test_nothing_under_sim_imports_the_randomizers() -> None:
    assert _importers(PACKAGE / "sim", "sim2real.randomizers") == {}
    assert _importers(PACKAGE / "sim", "sim2real.envs") == {}


def test_contracts_import_no_other_sim2real_package_nor_a_simulator_or_torch() -> None:
    files = sorted((PACKAGE / "contracts").glob("*.py"))
    assert len(files) > 1
    for path in files:
        modules = _imported_modules(path)
        outside = sorted(m for m in modules if m.startswith("sim2real") and not m.startswith("sim2real.contracts"))
        assert outside == [], f"{path.name} imports {outside}"
        heavy = sorted(m for m in modules if m.split(".")[0] in ("mujoco", "isaacsim", "omni", "pxr", "torch"))
        assert heavy == [], f"{path.name} imports {heavy}"
    code = (
        "import sys\n"
        + "".join(f"import sim2real.contracts.{path.stem}\n" for path in files if path.stem != "__init__")
        + "print(','.join(sorted(m for m in sys.modules if m.startswith(('sim2real.', 'torch', 'mujoco'))"
        + " and not m.startswith('sim2real.contracts'))))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "", f"imported: {result.stdout.strip()}"
