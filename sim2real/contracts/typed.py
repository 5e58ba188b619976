"""Frozen dataclass trees to and from plain JSON data, with every key and type checked.

:func:`from_dict` rebuilds a dataclass tree from ``json.loads`` output. It checks, and names by
their dotted path, every problem it meets before raising one :class:`SchemaError`:

- an object's missing keys (fields without a default) and unknown keys, in one line;
- each value against its annotation: ``int`` (never ``bool``), ``float`` (an int or float,
  finite; stored as ``float``), ``str``, ``bool``, ``None``, ``Literal[...]``, unions,
  ``tuple[X, ...]`` and fixed-length tuples, ``list[X]``, ``dict[str, X]`` and ``Any``;
- ``Annotated[X, Check(...)]``: a condition on the value, e.g. :data:`NON_NEGATIVE`;
- a dataclass's ``invariants()`` method, when it has one: conditions across its fields, each
  a ``(key, message)`` pair (``key`` empty for the object itself). It also runs when some
  fields failed, with :data:`ABSENT` in those, so that one pass names every problem.

Two field markers shape the JSON: a field typed ``X | Absent`` with default :data:`ABSENT` may be
left out of the object (and :func:`to_dict` leaves it out again), which is not the same as
``null``; and a field made with :func:`extras_field` keeps the object's unknown keys (so the
object accepts them) and :func:`to_dict` writes them back.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import math
import types
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

__all__ = [
    "ABSENT",
    "NON_NEGATIVE",
    "Absent",
    "Check",
    "SchemaError",
    "at_least",
    "extras_field",
    "from_dict",
    "to_dict",
    "within",
]

T = TypeVar("T")

_EXTRAS = "sim2real.typed.extras"


class Absent(enum.Enum):
    """The type of :data:`ABSENT`: a key left out of its JSON object."""

    ABSENT = "absent"


#: default of an optional key that is left out of the JSON object when not given
ABSENT = Absent.ABSENT


class SchemaError(KeyError, TypeError, ValueError):
    """Data that does not fit the dataclass tree; ``problems`` lists each as ``path: what``.

    A ``KeyError`` (keys), a ``TypeError`` (types) and a ``ValueError`` (values) at once, so
    callers that catch any of the three keep working."""

    def __init__(self, problems: list[str], root: str) -> None:
        self.problems = list(problems)
        if len(problems) == 1:
            message = problems[0]
        else:
            message = f"{root or 'data'}: {len(problems)} problems:\n  " + "\n  ".join(problems)
        super().__init__(message)

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class Check:
    """A condition on a value, for ``Annotated[X, Check(...)]``: ``expected`` says what passes
    (e.g. ``an int >= 0``), ``holds(value)`` tests a value already of type ``X``."""

    expected: str
    holds: Callable[[Any], bool]


def at_least(low: float, what: str = "a number") -> Check:
    """``value >= low``."""
    return Check(f"{what} >= {low:g}", lambda value: value >= low)


def within(low: float, high: float, what: str = "a number", tolerance: float = 0.0) -> Check:
    """``low <= value <= high`` (each end widened by ``tolerance``)."""
    return Check(f"{what} in [{low:g}, {high:g}]", lambda value: low - tolerance <= value <= high + tolerance)


#: an int or number >= 0
NON_NEGATIVE = at_least(0, "a value")


def extras_field() -> Any:
    """A ``dict[str, Any]`` field that keeps the object's unknown keys (see the module doc)."""
    return dataclasses.field(default_factory=dict, kw_only=True, metadata={_EXTRAS: True})


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------


class _Failed(enum.Enum):
    FAILED = "failed"


_FAILED = _Failed.FAILED


def from_dict(cls: type[T], data: Any, root: str | None = None) -> T:
    """Rebuild the dataclass ``cls`` from plain JSON data, checking keys, types and conditions.

    Args:
        cls: a dataclass whose fields are annotated with the types above.
        data: ``json.loads`` output (dicts, lists, str, int, float, bool, None).
        root: the name problems' paths start with; default ``cls.__name__``; ``""`` for paths
            that are the JSON keys alone (``closed_loop.v.t.rate``).

    Raises:
        SchemaError: every problem found, each naming its path, the value and what was expected.
    """
    path = cls.__name__ if root is None else root
    problems: list[str] = []
    value = _convert(cls, data, path, problems)
    if problems or value is _FAILED:
        raise SchemaError(problems, path)
    return typing.cast(T, value)


def _where(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _problem(path: str, message: str) -> str:
    return f"{path}: {message}" if path else message


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls, include_extras=True)


def _describe(tp: Any) -> str:
    """How an expected type reads in a message: ``an int``, ``a number or null``, ..."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Annotated:
        checks = [a.expected for a in tp.__metadata__ if isinstance(a, Check)]
        return checks[0] if checks else _describe(args[0])
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in args if a is not Absent)
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
        return f"a list of {len(args)} values"
    names = {int: "an int", float: "a number", str: "a string", bool: "a boolean", type(None): "null",
             tuple: "a list", list: "a list", dict: "an object"}  # fmt: skip
    if dataclasses.is_dataclass(tp):
        return "an object"
    return names.get(origin or tp, getattr(tp, "__name__", str(tp)))


def _mismatch(tp: Any, value: Any, path: str, problems: list[str]) -> _Failed:
    problems.append(_problem(path, f"expected {_describe(tp)}, got {value!r}"))
    return _FAILED


def _convert(tp: Any, value: Any, path: str, problems: list[str]) -> Any:
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):
        return _convert_dataclass(typing.cast(type, tp), value, path, problems)
    if origin is typing.Annotated:
        return _convert_annotated(tp, value, path, problems)
    if origin in (typing.Union, types.UnionType):
        return _convert_union(tp, value, path, problems)
    if origin is typing.Literal:
        return value if value in typing.get_args(tp) else _mismatch(tp, value, path, problems)
    if origin in (tuple, list):
        return _convert_sequence(tp, value, path, problems)
    if origin is dict or tp is dict:
        return _convert_mapping(tp, value, path, problems)
    return _convert_scalar(tp, value, path, problems)


def _convert_scalar(tp: Any, value: Any, path: str, problems: list[str]) -> Any:
    if tp is float:
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        return float(value) if number and math.isfinite(value) else _mismatch(tp, value, path, problems)
    if tp is int:
        return value if isinstance(value, int) and not isinstance(value, bool) else _mismatch(tp, value, path, problems)
    if tp in (str, bool):
        return value if isinstance(value, tp) else _mismatch(tp, value, path, problems)
    if tp is type(None):
        return None if value is None else _mismatch(tp, value, path, problems)
    return value


def _is_mismatch(problems: list[str], path: str) -> bool:
    """Whether ``problems`` is only the value at ``path`` being of the wrong type."""
    return len(problems) == 1 and problems[0].startswith(_problem(path, "expected "))


def _convert_annotated(tp: Any, value: Any, path: str, problems: list[str]) -> Any:
    scratch: list[str] = []
    converted = _convert(typing.get_args(tp)[0], value, path, scratch)
    if _is_mismatch(scratch, path):  # not even of the underlying type: say what the check wants
        return _mismatch(tp, value, path, problems)
    problems.extend(scratch)
    if converted is _FAILED:
        return _FAILED
    for check in (a for a in tp.__metadata__ if isinstance(a, Check)):
        if not check.holds(converted):
            problems.append(_problem(path, f"expected {check.expected}, got {value!r}"))
            return _FAILED
    return converted


def _convert_union(tp: Any, value: Any, path: str, problems: list[str]) -> Any:
    arms = [a for a in typing.get_args(tp) if a is not Absent]
    if value is None and type(None) in arms:
        return None
    arms = [a for a in arms if a is not type(None)]
    for arm in arms:
        scratch: list[str] = []
        converted = _convert(arm, value, path, scratch)
        if not scratch and converted is not _FAILED:
            return converted
        if len(arms) == 1 and not _is_mismatch(scratch, path):
            problems.extend(scratch)  # the one type fits, with problems inside: name those
            return _FAILED
    return _mismatch(tp, value, path, problems)


def _convert_sequence(tp: Any, value: Any, path: str, problems: list[str]) -> Any:
    if not isinstance(value, (list, tuple)):
        return _mismatch(tp, value, path, problems)
    args = typing.get_args(tp)
    if typing.get_origin(tp) is list or (len(args) == 2 and args[1] is Ellipsis):
        item_types = [args[0] if args else Any] * len(value)
    elif len(args) != len(value):
        return _mismatch(tp, value, path, problems)
    else:
        item_types = list(args)
    items = [_convert(t, v, f"{path}[{i}]", problems) for i, (t, v) in enumerate(zip(item_types, value, strict=True))]
    if any(item is _FAILED for item in items):
        return _FAILED
    return items if typing.get_origin(tp) is list else tuple(items)


def _convert_mapping(tp: Any, value: Any, path: str, problems: list[str]) -> Any:
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        return _mismatch(tp, value, path, problems)
    args = typing.get_args(tp)
    value_type = args[1] if len(args) == 2 else Any
    if value_type is Any:
        return dict(value)
    items = {k: _convert(value_type, v, _where(path, k), problems) for k, v in value.items()}
    return _FAILED if any(v is _FAILED for v in items.values()) else items


def _convert_dataclass(cls: type, value: Any, path: str, problems: list[str]) -> Any:
    if not isinstance(value, dict):
        problems.append(_problem(path, f"expected an object for {cls.__name__}, got {type(value).__name__}"))
        return _FAILED
    fields = dataclasses.fields(cls)
    extras_name = next((f.name for f in fields if f.metadata.get(_EXTRAS)), None)
    names = [f.name for f in fields if f.name != extras_name and f.init]
    required = {f.name for f in fields if f.name in names and _is_required(f)}
    missing = sorted(required - set(value))
    unknown = sorted(set(value) - set(names))
    if missing or (unknown and extras_name is None):
        problems.append(_problem(path, _key_message(missing, [] if extras_name else unknown, names)))
    hints = _hints(cls)
    kwargs = {k: _convert(hints[k], v, _where(path, k), problems) for k, v in value.items() if k in names}
    if extras_name is not None:
        kwargs[extras_name] = {k: value[k] for k in unknown}
    failed = bool(missing or (unknown and extras_name is None) or any(v is _FAILED for v in kwargs.values()))
    if failed:
        instance = _partial(cls, kwargs, value)
    else:
        try:
            instance = cls(**kwargs)
        except (TypeError, ValueError) as error:
            problems.append(_problem(path, str(error)))
            return _FAILED
    for key, message in _invariants(instance):
        problems.append(_problem(_where(path, key) if key else path, message))
    return _FAILED if failed else instance


def _partial(cls: type, kwargs: dict[str, Any], raw: dict[str, Any]) -> Any:
    """An instance holding the fields that converted, the raw list or object where a container
    did not, and :data:`ABSENT` in the others, so that ``invariants()`` can still check what is
    there (it must tolerate :data:`ABSENT` and raw containers anywhere)."""
    instance = object.__new__(cls)
    for field in dataclasses.fields(cls):
        value = kwargs.get(field.name, _FAILED)
        if value is _FAILED and isinstance(raw.get(field.name), (list, dict)):
            value = raw[field.name]
        elif value is _FAILED and field.default_factory is not dataclasses.MISSING:
            value = field.default_factory()
        elif value is _FAILED:
            value = ABSENT if field.default is dataclasses.MISSING else field.default
        object.__setattr__(instance, field.name, value)
    return instance


def _is_required(field: dataclasses.Field[Any]) -> bool:
    return field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING


def _key_message(missing: list[str], unknown: list[str], names: list[str]) -> str:
    parts = [f"missing keys {missing}"] if missing else []
    if unknown:
        parts += [f"unknown keys {unknown}", f"expected {sorted(names)}"]
    return "; ".join(parts)


def _invariants(instance: Any) -> Iterator[tuple[str, str]]:
    check = getattr(instance, "invariants", None)
    return iter(check()) if callable(check) else iter(())


# ---------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------


def to_dict(instance: Any) -> dict[str, Any]:
    """Plain JSON data of a dataclass tree: tuples as lists, :data:`ABSENT` fields left out,
    extras written back after the fields; the inverse of :func:`from_dict`."""
    if not dataclasses.is_dataclass(instance) or isinstance(instance, type):
        raise TypeError(f"expected a dataclass instance, got {type(instance).__name__}")
    out: dict[str, Any] = {}
    extras: dict[str, Any] = {}
    for field in dataclasses.fields(instance):
        value = getattr(instance, field.name)
        if field.metadata.get(_EXTRAS):
            extras = value
        elif value is not ABSENT:
            out[field.name] = _plain(value)
    out.update({k: _plain(v) for k, v in extras.items()})
    return out


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_dict(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value
