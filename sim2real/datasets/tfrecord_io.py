"""TFRecord framing and the ``tf.train.Example`` protobuf, without TensorFlow.

A TFRecord file is a sequence of records, each framed as::

    uint64 length (little endian) | uint32 masked_crc32c(length bytes) | data | uint32 masked_crc32c(data)

The ``Example`` message classes are built at import time in a private protobuf descriptor
pool, so they never clash with TensorFlow's own ``tensorflow.Example`` registered in the
default pool (both can be imported in one process, in either order).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO, Literal

import google_crc32c
import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from sim2real.datasets.schema import CorruptDataError, DatasetError

_MASK_DELTA = 0xA282EAD8
_HEADER = struct.Struct("<QI")
_FOOTER = struct.Struct("<I")

FeatureKind = Literal["bytes", "float", "int64"]
#: One Example feature: its kind and values (list of bytes, float32 array or int64 array).
FeatureValue = tuple[FeatureKind, Any]


def masked_crc32c(data: bytes | memoryview) -> int:
    """The TFRecord checksum: CRC-32C rotated right by 15 bits plus a constant, modulo 2**32."""
    crc = google_crc32c.value(bytes(data))
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def frame_record(data: bytes) -> bytes:
    """``data`` framed as one TFRecord (header, data, footer)."""
    length = struct.pack("<Q", len(data))
    return length + struct.pack("<I", masked_crc32c(length)) + data + _FOOTER.pack(masked_crc32c(data))


class TFRecordWriter:
    """Appends framed records to a new file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: BinaryIO | None = open(path, "wb")  # noqa: SIM115 - closed in close()

    def write(self, data: bytes) -> int:
        """Append one record; return the number of bytes written to the file."""
        if self._file is None:
            raise ValueError(f"{self.path}: writer is closed")
        framed = frame_record(data)
        self._file.write(framed)
        return len(framed)

    def close(self) -> None:
        """Flush and close the file; idempotent."""
        if self._file is not None:
            self._file.close()
            self._file = None


def _label(index: int, first_episode: int | None) -> str:
    """``record 3`` or, when records are episodes numbered from ``first_episode``, ``record 3 (episode 13)``."""
    return f"record {index}" if first_episode is None else f"record {index} (episode {first_episode + index})"


def _read_header(file: BinaryIO, path: Path, label: str, offset: int, size: int) -> int:
    """Read and check one record header at ``offset``; return the data length."""
    header = file.read(_HEADER.size)
    if len(header) < _HEADER.size:
        raise CorruptDataError(f"{path}: {label} is truncated (header at byte {offset} of {size})")
    length, length_crc = _HEADER.unpack(header)
    if masked_crc32c(header[:8]) != length_crc:
        raise CorruptDataError(f"{path}: {label} has a bad length CRC at byte {offset} (corrupted file)")
    if offset + _HEADER.size + length + _FOOTER.size > size:
        raise CorruptDataError(
            f"{path}: {label} is truncated: needs {length} data bytes after byte {offset}, file has {size}"
        )
    return int(length)


def _read_data(file: BinaryIO, path: Path, label: str, offset: int, length: int) -> bytes:
    """Read one record's data and footer (file positioned after the header); check the data CRC."""
    data = file.read(length)
    footer = file.read(_FOOTER.size)
    if len(data) < length or len(footer) < _FOOTER.size:
        raise CorruptDataError(f"{path}: {label} is truncated (data at byte {offset})")
    if masked_crc32c(data) != _FOOTER.unpack(footer)[0]:
        raise CorruptDataError(f"{path}: {label} has a bad data CRC at byte {offset} (corrupted file)")
    return data


def iter_records(path: Path, first_episode: int | None = None) -> Iterator[bytes]:
    """Every record's data in file order, each CRC-checked.

    Errors name the record index and, when ``first_episode`` is given, the episode index
    (``first_episode`` + record index).
    """
    size = os.path.getsize(path)
    with open(path, "rb") as file:
        offset, index = 0, 0
        while offset < size:
            length = _read_header(file, path, _label(index, first_episode), offset, size)
            yield _read_data(file, path, _label(index, first_episode), offset, length)
            offset += _HEADER.size + length + _FOOTER.size
            index += 1


def record_offsets(path: Path, first_episode: int | None = None) -> list[int]:
    """Byte offsets of every record, checking each length CRC but not reading the data."""
    size = os.path.getsize(path)
    offsets: list[int] = []
    with open(path, "rb") as file:
        offset = 0
        while offset < size:
            file.seek(offset)
            length = _read_header(file, path, _label(len(offsets), first_episode), offset, size)
            offsets.append(offset)
            offset += _HEADER.size + length + _FOOTER.size
    return offsets


def read_record(path: Path, offset: int, index: int, first_episode: int | None = None) -> bytes:
    """The CRC-checked data of record ``index`` starting at byte ``offset``."""
    size = os.path.getsize(path)
    with open(path, "rb") as file:
        file.seek(offset)
        length = _read_header(file, path, _label(index, first_episode), offset, size)
        return _read_data(file, path, _label(index, first_episode), offset, length)


# ---------------------------------------------------------------------------------------------
# tf.train.Example in a private descriptor pool

_PACKAGE = "sim2real_tfexample"


def _add_message(fdp: descriptor_pb2.FileDescriptorProto, name: str, fields: list[tuple[str, int, int, str]]) -> Any:
    """Add a message with optional/repeated fields given as (name, number, type, message type or '')."""
    message = fdp.message_type.add(name=name)
    field_type = descriptor_pb2.FieldDescriptorProto
    for field_name, number, kind, type_name in fields:
        label = field_type.LABEL_OPTIONAL if type_name else field_type.LABEL_REPEATED
        entry = message.field.add(name=field_name, number=number, type=kind, label=label)
        if type_name:
            entry.type_name = f".{_PACKAGE}.{type_name}"
        else:
            entry.options.packed = kind != field_type.TYPE_BYTES
    return message


def _build_example_class() -> Any:
    """Message class with the wire format of ``tensorflow/core/example/{feature,example}.proto``."""
    f = descriptor_pb2.FieldDescriptorProto
    fdp = descriptor_pb2.FileDescriptorProto(name=f"{_PACKAGE}/example.proto", package=_PACKAGE, syntax="proto3")
    _add_message(fdp, "BytesList", [("value", 1, f.TYPE_BYTES, "")])
    _add_message(fdp, "FloatList", [("value", 1, f.TYPE_FLOAT, "")])
    _add_message(fdp, "Int64List", [("value", 1, f.TYPE_INT64, "")])
    kinds = [("bytes_list", 1, "BytesList"), ("float_list", 2, "FloatList"), ("int64_list", 3, "Int64List")]
    feature = _add_message(fdp, "Feature", [(name, num, f.TYPE_MESSAGE, tn) for name, num, tn in kinds])
    feature.oneof_decl.add(name="kind")
    for entry in feature.field:
        entry.oneof_index = 0
    features = fdp.message_type.add(name="Features")
    map_entry = features.nested_type.add(name="FeatureEntry")
    map_entry.options.map_entry = True
    map_entry.field.add(name="key", number=1, type=f.TYPE_STRING, label=f.LABEL_OPTIONAL)
    map_entry.field.add(
        name="value", number=2, type=f.TYPE_MESSAGE, label=f.LABEL_OPTIONAL, type_name=f".{_PACKAGE}.Feature"
    )
    features.field.add(
        name="feature", number=1, type=f.TYPE_MESSAGE, label=f.LABEL_REPEATED,
        type_name=f".{_PACKAGE}.Features.FeatureEntry",
    )  # fmt: skip
    _add_message(fdp, "Example", [("features", 1, f.TYPE_MESSAGE, "Features")])
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PACKAGE}.Example"))


Example = _build_example_class()


def serialize_example(features: Mapping[str, FeatureValue]) -> bytes:
    """A serialized ``tf.train.Example`` from ``{key: (kind, values)}``.

    ``bytes`` values are a sequence of bytes; ``float`` values anything numpy turns into
    float32; ``int64`` values anything numpy turns into int64 (bools become 0/1).
    """
    example = Example()
    feature_map = example.features.feature
    for key, (kind, values) in features.items():
        if kind == "bytes":
            feature_map[key].bytes_list.value.extend(values)
        elif kind == "float":
            feature_map[key].float_list.value.extend(np.asarray(values, np.float32).ravel().tolist())
        elif kind == "int64":
            feature_map[key].int64_list.value.extend(np.asarray(values).astype(np.int64).ravel().tolist())
        else:
            raise ValueError(f"unknown feature kind {kind!r} for key {key!r}")
    return example.SerializeToString(deterministic=True)


def parse_example(data: bytes, where: str) -> dict[str, FeatureValue]:
    """``{key: (kind, values)}`` of a serialized Example; values are list[bytes], float32 or int64 arrays.

    A key whose Feature has no kind set (an empty feature) maps to ``("bytes", [])``.
    """
    example = Example()
    try:
        example.ParseFromString(data)
    except Exception as error:  # protobuf's DecodeError and friends
        raise DatasetError(f"{where}: not a tf.train.Example ({error})") from error
    out: dict[str, FeatureValue] = {}
    for key, feature in example.features.feature.items():
        kind = feature.WhichOneof("kind")
        if kind == "float_list":
            out[key] = ("float", np.array(feature.float_list.value, dtype=np.float32))
        elif kind == "int64_list":
            out[key] = ("int64", np.array(feature.int64_list.value, dtype=np.int64))
        else:
            out[key] = ("bytes", list(feature.bytes_list.value) if kind else [])
    return out
