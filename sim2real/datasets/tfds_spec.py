"""The JSON files of a TensorFlow Datasets directory: ``features.json`` and ``dataset_info.json``.

``features.json`` nests TFDS feature classes (FeaturesDict, Dataset, Image, Tensor, Scalar,
Text). In the serialized ``tf.train.Example`` the nesting is flattened with ``/``: the
``steps`` Dataset becomes keys ``steps/<path>`` whose value lists hold all T steps back to
back (T * prod(shape) numbers, or T encoded images / strings), and ``episode_metadata``
becomes keys ``episode_metadata/<name>`` with one value each. Booleans and integers are
``int64_list``, floats ``float_list``, text and encoded images ``bytes_list``.

This module builds those JSON trees for writing and flattens them into
:class:`FeatureSpec` records for reading.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sim2real.datasets.schema import DatasetError
from sim2real.datasets.tfrecord_io import FeatureValue

_TFDS = "tensorflow_datasets.core.features"
CLASS_NAMES = {
    "features_dict": f"{_TFDS}.features_dict.FeaturesDict",
    "dataset": f"{_TFDS}.dataset_feature.Dataset",
    "sequence": f"{_TFDS}.sequence_feature.Sequence",
    "image": f"{_TFDS}.image_feature.Image",
    "tensor": f"{_TFDS}.tensor_feature.Tensor",
    "scalar": f"{_TFDS}.scalar.Scalar",
    "text": f"{_TFDS}.text_feature.Text",
}
_KIND_BY_CLASS = {name: kind for kind, name in CLASS_NAMES.items()}
FILEPATH_TEMPLATE = "{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}"
STEPS = "steps"

JSONDict = dict[str, Any]


# ---------------------------------------------------------------------------------------------
# building features.json


def _described(node: JSONDict, doc: str) -> JSONDict:
    if doc:
        node["description"] = doc
    return node


def _shape(shape: tuple[int, ...]) -> JSONDict:
    return {"dimensions": [str(d) for d in shape]} if shape else {}


def image_feature(shape: tuple[int, ...], encoding: str, doc: str = "") -> JSONDict:
    """A TFDS ``Image``: uint8 (H, W, C) stored as PNG or JPEG bytes."""
    body = {"shape": _shape(shape), "dtype": "uint8", "encodingFormat": encoding}
    return _described({"pythonClassName": CLASS_NAMES["image"], "image": body}, doc)


def tensor_feature(shape: tuple[int, ...], dtype: str, doc: str = "") -> JSONDict:
    """A TFDS ``Tensor`` (or ``Scalar`` when ``shape`` is empty) stored as plain number lists."""
    kind = "tensor" if shape else "scalar"
    body = {"shape": _shape(shape), "dtype": dtype, "encoding": "none"}
    return _described({"pythonClassName": CLASS_NAMES[kind], "tensor": body}, doc)


def text_feature(doc: str = "") -> JSONDict:
    """A TFDS ``Text``: UTF-8 bytes."""
    return _described({"pythonClassName": CLASS_NAMES["text"], "text": {}}, doc)


def features_dict(children: Mapping[str, JSONDict], doc: str = "") -> JSONDict:
    """A TFDS ``FeaturesDict``."""
    node = {"pythonClassName": CLASS_NAMES["features_dict"], "featuresDict": {"features": dict(children)}}
    return _described(node, doc)


def dataset_feature(step: JSONDict, doc: str = "") -> JSONDict:
    """A TFDS ``Dataset`` of variable length (the RLDS ``steps``)."""
    node = {"pythonClassName": CLASS_NAMES["dataset"], "sequence": {"feature": step, "length": "-1"}}
    return _described(node, doc)


# ---------------------------------------------------------------------------------------------
# reading features.json


@dataclass(frozen=True)
class FeatureSpec:
    """One flattened leaf feature.

    ``key`` is the flat Example key (``steps/observation/image``); ``shape`` is per element
    (per step for step features), ``None`` for an unknown dimension; ``kind`` is ``image``,
    ``tensor`` (includes Scalar), ``text`` or ``unsupported``; ``encoding`` is ``png``/``jpeg``
    for images, ``none``/``bytes``/``zlib`` for tensors; ``in_steps`` marks step features.
    """

    key: str
    kind: str
    dtype: str
    shape: tuple[int | None, ...]
    encoding: str
    in_steps: bool
    description: str = ""


def _parse_shape(node: Mapping[str, Any]) -> tuple[int | None, ...]:
    dims = node.get("shape", {}).get("dimensions", [])
    return tuple(None if int(d) < 0 else int(d) for d in dims)


def _leaf(key: str, kind: str, node: Mapping[str, Any], in_steps: bool) -> FeatureSpec:
    doc = str(node.get("description", ""))
    if kind == "image":
        body = node["image"]
        encoding = body.get("encodingFormat") or "png"
        return FeatureSpec(key, "image", body.get("dtype", "uint8"), _parse_shape(body), encoding, in_steps, doc)
    if kind in ("tensor", "scalar"):
        body = node["tensor"]
        encoding = body.get("encoding", "none")
        return FeatureSpec(key, "tensor", body["dtype"], _parse_shape(body), encoding, in_steps, doc)
    if kind == "text":
        return FeatureSpec(key, "text", "string", (), "none", in_steps, doc)
    return FeatureSpec(key, "unsupported", "", (), node.get("pythonClassName", "?"), in_steps, doc)


def _flatten(node: Mapping[str, Any], prefix: str, in_steps: bool, out: dict[str, FeatureSpec]) -> None:
    kind = _KIND_BY_CLASS.get(node.get("pythonClassName", ""), "unsupported")
    if kind == "features_dict":
        for name, child in node["featuresDict"]["features"].items():
            _flatten(child, f"{prefix}/{name}" if prefix else name, in_steps, out)
    elif kind in ("dataset", "sequence") and not in_steps:
        _flatten(node["sequence"]["feature"], prefix, True, out)
    else:
        out[prefix] = _leaf(prefix, kind, node, in_steps)


def parse_features(tree: Mapping[str, Any], source: Path) -> dict[str, FeatureSpec]:
    """Flat key -> FeatureSpec of a parsed ``features.json``."""
    out: dict[str, FeatureSpec] = {}
    try:
        _flatten(tree, "", False, out)
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise DatasetError(f"{source}: malformed features.json ({type(error).__name__}: {error})") from error
    return out


def read_json(path: Path) -> JSONDict:
    """A JSON object file; DatasetError when missing or malformed."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise DatasetError(f"{path}: missing (not a TFDS/RLDS dataset directory)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DatasetError(f"{path}: not valid JSON ({error})") from error
    if not isinstance(data, dict):
        raise DatasetError(f"{path}: expected a JSON object")
    return data


# ---------------------------------------------------------------------------------------------
# dataset_info.json


@dataclass(frozen=True)
class SplitInfo:
    """One split of ``dataset_info.json``: shard file names and episodes per shard."""

    name: str
    shard_lengths: tuple[int, ...]
    num_bytes: int
    filepath_template: str = FILEPATH_TEMPLATE

    def shard_filenames(self, dataset_name: str, file_format: str = "tfrecord") -> list[str]:
        """File names of the shards, in order (``name-split.tfrecord-00000-of-00004``...)."""
        count = len(self.shard_lengths)
        return [
            self.filepath_template.replace("{DATASET}", dataset_name)
            .replace("{SPLIT}", self.name)
            .replace("{FILEFORMAT}", file_format)
            .replace("{SHARD_INDEX}", f"{i:05d}")
            .replace("{NUM_SHARDS}", f"{count:05d}")
            .replace("{SHARD_X_OF_Y}", f"{i:05d}-of-{count:05d}")
            for i in range(count)
        ]

    def to_json(self) -> JSONDict:
        """The entry TFDS writes under ``splits`` (integers as strings, as protobuf JSON does)."""
        return {
            "filepathTemplate": self.filepath_template,
            "name": self.name,
            "numBytes": str(self.num_bytes),
            "shardLengths": [str(n) for n in self.shard_lengths],
        }


def parse_splits(info: Mapping[str, Any], source: Path) -> dict[str, SplitInfo]:
    """Split name -> SplitInfo of a parsed ``dataset_info.json``."""
    out: dict[str, SplitInfo] = {}
    try:
        for entry in info.get("splits", []):
            lengths = tuple(int(n) for n in entry.get("shardLengths", []))
            template = entry.get("filepathTemplate") or FILEPATH_TEMPLATE
            out[entry["name"]] = SplitInfo(entry["name"], lengths, int(entry.get("numBytes", 0)), template)
    except (KeyError, TypeError, ValueError) as error:
        raise DatasetError(f"{source}: malformed splits in dataset_info.json ({error})") from error
    return out


def dataset_info_json(
    name: str, version: str, splits: Mapping[str, SplitInfo], description: str = "", module: str = ""
) -> JSONDict:
    """The ``dataset_info.json`` TFDS writes, with splits sorted by name."""
    info: JSONDict = {
        "description": description,
        "fileFormat": "tfrecord",
        "moduleName": module,
        "name": name,
        "releaseNotes": {version: "Written by sim2real."},
        "splits": [splits[key].to_json() for key in sorted(splits)],
        "version": version,
    }
    return {key: value for key, value in info.items() if value not in ("", None)}


# ---------------------------------------------------------------------------------------------
# decoding one flattened feature of a parsed Example


_FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")


def expected_kind(spec: FeatureSpec) -> str:
    """The Example list kind (``bytes``/``float``/``int64``) that holds ``spec``'s values."""
    if spec.kind in ("image", "text") or spec.encoding in ("bytes", "zlib") or spec.dtype == "string":
        return "bytes"
    return "float" if spec.dtype in _FLOAT_DTYPES else "int64"


def numpy_dtype(spec: FeatureSpec, where: str) -> np.dtype:
    """numpy dtype of a tensor feature."""
    try:
        return np.dtype("bool" if spec.dtype == "bool" else spec.dtype)
    except TypeError as error:
        raise DatasetError(f"{where}: key {spec.key!r} has unsupported dtype {spec.dtype!r}") from error


def get_values(features: Mapping[str, FeatureValue], spec: FeatureSpec, where: str) -> Any:
    """The raw values of ``spec.key`` after checking presence and list kind."""
    if spec.key not in features:
        raise DatasetError(f"{where}: key {spec.key!r} is missing from the Example")
    kind, values = features[spec.key]
    expected = expected_kind(spec)
    if kind != expected and len(values) > 0:
        raise DatasetError(f"{where}: key {spec.key!r} is a {kind} list, expected a {expected} list for {spec.dtype}")
    return values


def decode_tensor(features: Mapping[str, FeatureValue], spec: FeatureSpec, count: int | None, where: str) -> np.ndarray:
    """A tensor feature as an array of shape ``(count, *shape)`` (steps) or ``shape`` (episode level).

    ``count`` is the number of steps for step features (None: infer from the value count).
    Integer and bool values are range-checked against the declared dtype.
    """
    dtype = numpy_dtype(spec, where)
    values = get_values(features, spec, where)
    if spec.encoding in ("bytes", "zlib"):
        raise DatasetError(f"{where}: key {spec.key!r} uses tensor encoding {spec.encoding!r}, not supported")
    if None in spec.shape:
        raise DatasetError(f"{where}: key {spec.key!r} has a dynamic shape {spec.shape}, not supported")
    element = tuple(int(d) for d in spec.shape if d is not None)
    array = np.asarray(values)
    size = math.prod(element)
    if spec.in_steps:
        count = len(array) // size if count is None and size else count
        target: tuple[int, ...] = (count or 0, *element)
    else:
        target = element
    if array.size != math.prod(target):
        raise DatasetError(
            f"{where}: key {spec.key!r} has {array.size} values, expected {math.prod(target)} for shape {target}"
        )
    return _cast(array, dtype, spec.key, where).reshape(target)


def _cast(array: np.ndarray, dtype: np.dtype, key: str, where: str) -> np.ndarray:
    """Cast Example values to the declared dtype, refusing values the dtype cannot hold."""
    if dtype == np.bool_:
        if array.size and not np.isin(array, (0, 1)).all():
            raise DatasetError(f"{where}: key {key!r} holds values other than 0/1 for a bool feature")
        return array.astype(np.bool_)
    if np.issubdtype(dtype, np.integer) and array.size:
        info = np.iinfo(dtype)
        if array.min() < info.min or array.max() > info.max:
            raise DatasetError(f"{where}: key {key!r} holds values outside the range of {dtype}")
    return array.astype(dtype)


def decode_text(features: Mapping[str, FeatureValue], spec: FeatureSpec, where: str) -> list[str]:
    """A text feature as a list of strings (one per step, or a single one at episode level)."""
    values = get_values(features, spec, where)
    try:
        return [bytes(v).decode("utf-8") for v in values]
    except UnicodeDecodeError as error:
        raise DatasetError(f"{where}: key {spec.key!r} is not valid UTF-8 ({error})") from error
