"""Task registry: ``TASKS.get(name)`` or :func:`make_task`; :data:`TASK_NAMES` lists every task."""

from sim2real.sim.tasks import pick_place as _pick_place  # noqa: F401
from sim2real.sim.tasks import push as _push  # noqa: F401
from sim2real.sim.tasks import stack as _stack  # noqa: F401
from sim2real.sim.tasks.base import DEFAULT_SIZES, SHAPE_NOUNS, TASKS, ObjectRole, Task, make_task

#: Every registered task's name, sorted: the one list of tasks configs and evaluations default to.
TASK_NAMES: tuple[str, ...] = tuple(TASKS.names())

__all__ = ["DEFAULT_SIZES", "SHAPE_NOUNS", "TASKS", "TASK_NAMES", "ObjectRole", "Task", "make_task"]
