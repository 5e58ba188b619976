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

import contextlib
import importlib.util
import sys
from collections.abc import Iterator
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


#: RTX modes Isaac Sim 6.x lists (``SimulationApp`` ``renderer``): RTX Real-Time 2.0 (Isaac Sim's default),
#: Interactive path tracing and Minimal; then the legacy RTX Real-Time mode, which current docs no
#: longer list and which Kit enables only when asked (:data:`LEGACY_RENDERERS`).
DEFAULT_RENDERER = "RealTimePathTracing"
RENDERERS = ("RealTimePathTracing", "PathTracing", "MinimalRendering", "RaytracedLighting")
#: legacy modes and the Kit arguments that enable them explicitly
LEGACY_RENDERERS: dict[str, tuple[str, ...]] = {"RaytracedLighting": ("--/persistent/rtx/modes/rt/enabled=true",)}
#: the carb setting that holds the active RTX mode once Kit runs
RENDER_MODE_SETTING = "/rtx/rendermode"
#: Synchronous, zero-delay rendering: an annotator read right after a capture returns that frame
#: (the settings of Isaac Sim's ``isaacsim.exp.base.zero_delay`` experience plus no async rendering).
SYNC_RENDERING_ARGS = (
    "--/app/asyncRendering=0",
    "--/app/asyncRenderingLowLatency=0",
    "--/omni/replicator/asyncRendering=0",
    "--/app/hydraEngine/waitIdle=true",
    "--/app/updateOrder/checkForHydraRenderComplete=1000",
)


@dataclass(frozen=True)
class AppSettings:
    """Kit launch settings.

    ``renderer``: one of :data:`RENDERERS` (default :data:`DEFAULT_RENDERER`); ``width`` / ``height``:
    the app's viewport resolution in px (cameras render through their own render products at
    their own resolution); ``anti_aliasing`` 0 = off, so pixels do not depend on previous
    frames; ``active_gpu``: the physical GPU index to render on (None = Kit's choice);
    ``experience``: a ``.kit`` file to launch instead of Isaac Sim's default python experience.
    """

    headless: bool = True
    renderer: str = DEFAULT_RENDERER
    width: int = 128
    height: int = 128
    anti_aliasing: int = 0
    active_gpu: int | None = None
    experience: str = ""


def launch_config(settings: AppSettings) -> dict[str, Any]:
    """The ``SimulationApp`` launch configuration for ``settings`` (keys of
    ``SimulationApp.DEFAULT_LAUNCHER_CONFIG``; ``tools/check_isaac_api.py`` verifies them).

    ``fast_shutdown`` is off: with it, Kit's exit handler ends the process through
    ``quickReleaseFrameworkAndTerminate`` with status 0 whatever Python's own status was, so a
    failed run (an exception, ``sys.exit(2)``) would look successful. Without it, Kit tears its
    extensions down and returns, and the interpreter exits with its own status."""
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
        "fast_shutdown": False,  # keep the process's exit status (see above)
        "extra_args": [*SYNC_RENDERING_ARGS, *LEGACY_RENDERERS.get(settings.renderer, ())],
    }
    if settings.active_gpu is not None:
        config["active_gpu"] = settings.active_gpu
    return config


def renderer_problem(expected: str, active: object) -> str | None:
    """Why the running Kit's RTX mode ``active`` (the :data:`RENDER_MODE_SETTING` value) is not the
    requested ``expected`` mode, or None when it is."""
    if active == expected:
        return None
    hint = " (a legacy mode: was it enabled?)" if expected in LEGACY_RENDERERS else ""
    return f"Kit renders with {active!r}, not the requested {expected!r}{hint}"


@contextlib.contextmanager
def kit_argv() -> Iterator[None]:
    """Hide this process's command-line arguments from Kit while it starts: ``SimulationApp`` passes
    every argument it does not know (``pytest -m isaac``'s ``-m isaac``, hydra's ``key=value``
    overrides) on to the Kit kernel as Kit arguments."""
    saved = sys.argv
    sys.argv = saved[:1] or ["sim2real"]
    try:
        yield
    finally:
        sys.argv = saved


_APP: Any = None
_SETTINGS: AppSettings | None = None


def _simulation_app_class() -> Any:
    try:
        from isaacsim import SimulationApp  # bootstraps the Kit kernel
    except SystemExit as exc:  # the kernel bootstrap exits (e.g. EULA not accepted) instead of raising
        raise RuntimeError(f"Isaac Sim could not start its Kit kernel: {exc}") from None
    return SimulationApp


def launch(settings: AppSettings) -> Any:
    """Start Kit headless (once per process) and return the ``SimulationApp``.

    A second call returns the running app; it raises ``RuntimeError`` when its settings differ
    from the first call's (Kit cannot restart in the same process).
    """
    global _APP, _SETTINGS
    require_isaacsim()
    if _APP is not None:
        if settings != _SETTINGS:
            raise RuntimeError(f"Kit already runs in this process with {_SETTINGS}; cannot switch to {settings}")
        return _APP
    if sys.version_info[:2] != ISAAC_PYTHON:
        raise IsaacNotInstalledError(
            f"Isaac Sim {ISAAC_SIM_VERSION} runs on Python {ISAAC_PYTHON[0]}.{ISAAC_PYTHON[1]} only; this is "
            f"{sys.version_info[0]}.{sys.version_info[1]}.\n\n{INSTALL_HELP}"
        )
    config = launch_config(settings)
    simulation_app = _simulation_app_class()
    with kit_argv():
        _APP = simulation_app(config, experience=settings.experience)
    _SETTINGS = settings
    return _APP


def running_app() -> Any:
    """The running ``SimulationApp`` or ``None``."""
    return _APP


def shutdown(exit_code: int = 0) -> None:
    """Close the process's ``SimulationApp`` (Kit cannot be restarted in the same process), passing
    ``exit_code`` on, so that a fast Kit shutdown (which ends the process) keeps a failure's status."""
    global _APP, _SETTINGS
    if _APP is not None:
        app, _APP, _SETTINGS = _APP, None, None
        app.close(exit_code=exit_code)
