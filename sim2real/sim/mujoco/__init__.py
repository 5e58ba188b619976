"""The embedded MuJoCo backend. The only package (with ``sim/isaac``) that imports a simulator.

Offscreen rendering defaults to EGL (NVIDIA EGL on GPU servers, Mesa elsewhere); set
``MUJOCO_GL`` before importing to choose another platform (``osmesa``).
"""

import os

os.environ.setdefault("MUJOCO_GL", "egl")
