"""Headless Isaac Sim bootstrap: one ``SimulationApp`` per process, created on first use.

Nothing here imports Isaac Sim at module import time. :func:`require_isaacsim` checks that the
``isaacsim`` package can be found (without importing it: importing ``isaacsim`` bootstraps the
Kit kernel) and raises :class:`IsaacNotInstalledError` with install instructions otherwise.
:func:`launch` then starts Kit with the settings of :func:`launch_config`; Isaac Sim's
``isaacsim.*`` / ``omni.*`` extension modules can be imported only after that.

Targeted release: Isaac Sim 6.2 (``isaacsim==6.2.0.0``, CPython 3.12, Linux x86_64 with
glibc >= 2.35, an RTX-capable NVIDIA GPU).
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass
from typing import Any

from sim2real.errors import UsageError

ISAAC_SIM_VERSION = "6.2.0.0"
ISAAC_PYTHON = (3, 12)
INSTALL_COMMAND = (
    f"pip install 'isaacsim[all,extscache]=={ISAAC_SIM_VERSION}' --extra-index-url https://pypi.nvidia.com"
)
_PY = f"{ISAAC_PYTHON[0]}.{ISAAC_PYTHON[1]}"
_HERE = f"{sys.version_info[0]}.{sys.version_info[1]}"
INSTALL_HELP = f"""Isaac Sim is not installed in this Python environment (the 'isaacsim' package is missing).

The Isaac backend targets Isaac Sim {ISAAC_SIM_VERSION} through its pip packages:
  * Python {_PY} exactly (this interpreter is {_HERE}),
    Linux x86_64 with glibc >= 2.35 (Ubuntu 22.04+);
  * an NVIDIA RTX GPU (RT cores) with a recent driver (Isaac Sim 6.2 blocks Linux drivers older than
    550.90.07 and recommends 580.95.05 for pre-Blackwell GPUs). A100 and H100 have no RT cores and are
    unsupported for rendering;
  * then, in a fresh Python {_PY} virtual environment:
        pip install --upgrade pip
        {INSTALL_COMMAND}
        pip install -e /path/to/this/repo
        export OMNI_KIT_ACCEPT_EULA=YES   # after reading and accepting the NVIDIA Omniverse EULA
See docs/isaac.md. Use backend=mujoco on machines without Isaac Sim."""


class IsaacNotInstalledError(UsageError, ImportError):
    """Isaac Sim (the ``isaacsim`` pip package) cannot be imported here; the message says how to
    install it."""


def isaacsim_available() -> bool:
    """Whether the ``isaacsim`` package can be found (checked without importing it)."""
    return importlib.util.find_spec("isaacsim") is not None


def require_isaacsim() -> None:
    """Raise :class:`IsaacNotInstalledError` at once when ``isaacsim`` is not importable."""
    if not isaacsim_available():
        raise IsaacNotInstalledError(INSTALL_HELP)


@dataclass(frozen=True)
class AppSettings:
    """Kit launch settings.

    ``renderer``: ``RaytracedLighting`` (real-time ray-traced lighting, the fastest RTX mode with
    shadows and reflections), ``RealTimePathTracing`` or ``PathTracing``; ``width`` / ``height``:
    the app's viewport resolution in px (cameras render through their own render products at
    their own resolution); ``anti_aliasing`` 0 = off, so pixels do not depend on previous
    frames; ``active_gpu``: the physical GPU index to render on (None = Kit's choice);
    ``experience``: a ``.kit`` file to launch instead of Isaac Sim's default python experience.
    """

    headless: bool = True
    renderer: str = "RaytracedLighting"
    width: int = 128
    height: int = 128
    anti_aliasing: int = 0
    active_gpu: int | None = None
    experience: str = ""


RENDERERS = ("RaytracedLighting", "RealTimePathTracing", "PathTracing")
SYNC_RENDERING_ARGS = (
    "--/app/asyncRendering=0",
    "--/app/asyncRenderingLowLatency=0",
    "--/omni/replicator/asyncRendering=0",
)


def launch_config(settings: AppSettings) -> dict[str, Any]:
    """The ``SimulationApp`` launch configuration for ``settings`` (keys of
    ``SimulationApp.DEFAULT_LAUNCHER_CONFIG``; ``tools/check_isaac_api.py`` verifies them)."""
    if settings.renderer not in RENDERERS:
        raise ValueError(f"unknown renderer {settings.renderer!r}; known renderers: {', '.join(RENDERERS)}")
    if settings.width <= 0 or settings.height <= 0:
        raise ValueError(f"app resolution must be positive, got {settings.width}x{settings.height}")
    config: dict[str, Any] = {
        "headless": settings.headless,
        "renderer": settings.renderer,
        "width": settings.width,
        "height": settings.height,
        "anti_aliasing": settings.anti_aliasing,
        "multi_gpu": False,  # one GPU per process: deterministic, and shards scale by processes
        "sync_loads": True,  # block rendering until assets (the Franka USD, textures) are loaded
        "create_new_stage": True,
        "disable_viewport_updates": True,  # images come from render products, not the viewport
        "denoiser": False,
        # Synchronous rendering: an annotator read right after a render returns that frame.
        "extra_args": list(SYNC_RENDERING_ARGS),
    }
    if settings.active_gpu is not None:
        config["active_gpu"] = settings.active_gpu
    return config


_APP: Any = None


def launch(settings: AppSettings) -> Any:
    """Start Kit headless (once per process) and return the ``SimulationApp``.

    A second call returns the running app; its settings must not conflict with the first.
    """
    global _APP
    require_isaacsim()
    if _APP is not None:
        return _APP
    if sys.version_info[:2] != ISAAC_PYTHON:
        raise IsaacNotInstalledError(
            f"Isaac Sim {ISAAC_SIM_VERSION} runs on Python {ISAAC_PYTHON[0]}.{ISAAC_PYTHON[1]} only; this is "
            f"{sys.version_info[0]}.{sys.version_info[1]}.\n\n{INSTALL_HELP}"
        )
    try:
        from isaacsim import SimulationApp  # bootstraps the Kit kernel
    except SystemExit as exc:  # the kernel bootstrap exits (e.g. EULA not accepted) instead of raising
        raise RuntimeError(f"Isaac Sim could not start its Kit kernel: {exc}") from None
    _APP = SimulationApp(launch_config(settings), experience=settings.experience)
    return _APP


def running_app() -> Any:
    """The running ``SimulationApp`` or ``None``."""
    return _APP


def shutdown() -> None:
    """Close the process's ``SimulationApp`` (Kit cannot be restarted in the same process)."""
    global _APP
    if _APP is not None:
        _APP.close()
        _APP = None
