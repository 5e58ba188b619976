"""The msgpack encoding of numpy arrays that openpi's client and server speak.

An array travels as a map ``{b"__ndarray__": True, b"data": raw bytes, b"dtype": dtype.str,
b"shape": shape}`` (keys as msgpack bin, as openpi-client packs and expects them); a numpy scalar
as ``{b"__npgeneric__": True, b"data": value, b"dtype": dtype.str}``.
Object, void and complex arrays are refused: they do not survive the trip.
"""

from __future__ import annotations

from typing import Any

import msgpack
import numpy as np

_ARRAY, _SCALAR = "__ndarray__", "__npgeneric__"


class WireError(ValueError):
    """A message that is not a msgpack dict of the supported types."""


def _encode(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "OVc":
            raise WireError(f"arrays of dtype {value.dtype} cannot be sent")
        return {_ARRAY.encode(): True, b"data": np.ascontiguousarray(value).tobytes(), b"dtype": value.dtype.str,
                b"shape": list(value.shape)}  # fmt: skip
    if isinstance(value, np.generic):
        return {_SCALAR.encode(): True, b"data": value.item(), b"dtype": value.dtype.str}
    return value


def _decode(value: dict[Any, Any]) -> Any:
    if _ARRAY in value or _ARRAY.encode() in value:
        get = _getter(value)
        return np.frombuffer(get("data"), dtype=np.dtype(get("dtype"))).reshape(get("shape"))
    if _SCALAR in value or _SCALAR.encode() in value:
        get = _getter(value)
        return np.dtype(get("dtype")).type(get("data"))
    return value


def _getter(value: dict[Any, Any]) -> Any:
    return lambda key: value[key] if key in value else value[key.encode()]


def packb(message: dict[str, Any]) -> bytes:
    """``message`` (nested dicts, lists, numbers, strings, numpy arrays) as msgpack bytes."""
    return msgpack.packb(message, default=_encode, use_bin_type=True)


def unpackb(data: bytes, max_bytes: int | None = None) -> dict[str, Any]:
    """The dict in ``data``; :class:`WireError` when it is not a msgpack dict or is over ``max_bytes``."""
    if max_bytes is not None and len(data) > max_bytes:
        raise WireError(f"message of {len(data)} bytes is over the limit of {max_bytes}")
    try:
        message = msgpack.unpackb(data, object_hook=_decode, raw=False, strict_map_key=False)
    except (ValueError, TypeError, msgpack.UnpackException) as error:
        raise WireError(f"not a msgpack message ({error})") from None
    if not isinstance(message, dict):
        raise WireError(f"expected a msgpack map, got {type(message).__name__}")
    return message
