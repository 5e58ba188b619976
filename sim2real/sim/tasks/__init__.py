"""Task registry: ``TASKS.get(name)`` or :func:`make_task`."""

from sim2real.sim.tasks import pick_place as _pick_place  # noqa: F401
from sim2real.sim.tasks import push as _push  # noqa: F401
from sim2real.sim.tasks import stack as _stack  # noqa: F401
from sim2real.sim.tasks.base import DEFAULT_SIZES, SHAPE_NOUNS, TASKS, ObjectRole, Task, make_task

__all__ = ["DEFAULT_SIZES", "SHAPE_NOUNS", "TASKS", "ObjectRole", "Task", "make_task"]
