"""``sim2real convert SRC DST --to lerobot|rlds|zarr|hdf5``: any readable dataset into any writable format.

Episodes stream one at a time from the reader to the writer, so memory holds one episode whatever
the dataset's size. ``--mapping`` picks the reader's declarative mapping (RLDS, LeRobot);
``--option key=value`` passes writer options (``vcodec=lossless``, ``crf=23``, ``cameras_as=image``,
``image_format=jpeg``, ``cname=zstd``, ...; values are read as YAML scalars).

>>> convert("data/pick_place/zarr", "exports/pick_place_lerobot", "lerobot")   # doctest: +SKIP
200
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import yaml

from sim2real.datasets.registry import DATASET_WRITERS, load_builtin_formats, open_dataset
from sim2real.errors import UsageError

#: Formats ``convert`` writes.
TARGETS = ("lerobot", "rlds", "zarr", "hdf5")


class ConvertError(UsageError, ValueError):
    """A conversion that cannot start: an unknown target, a bad writer option, an existing target."""


def parse_options(pairs: list[str]) -> dict[str, Any]:
    """``["crf=23", "vcodec=libx264"]`` -> ``{"crf": 23, "vcodec": "libx264"}`` (values as YAML scalars)."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConvertError(f"--option {pair!r}: expected key=value")
        options[key.strip()] = yaml.safe_load(value) if value.strip() else None
    return options


def convert(
    source: str | Path,
    target: str | Path,
    to: str,
    *,
    mapping: str | None = None,
    options: dict[str, Any] | None = None,
    progress: bool = False,
) -> int:
    """Write every episode of the dataset at ``source`` to a new ``to`` dataset at ``target``; return how many.

    Raises :class:`~sim2real.datasets.schema.DatasetError` naming the file and episode when an
    episode cannot be read or cannot be written in the target format (e.g. a foreign set whose
    actions are not 7-D end-effector deltas), :class:`ConvertError` for bad arguments."""
    from tqdm import tqdm

    if to not in TARGETS:
        raise ConvertError(f"--to {to!r}: expected one of {', '.join(TARGETS)}")
    source, target = Path(source), Path(target)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ConvertError(f"{target}: already exists and is not an empty folder; choose a new target")
    try:
        reader = open_dataset(source, **({"mapping": mapping} if mapping else {}))
    except TypeError:
        raise ConvertError(f"--mapping {mapping!r}: {source} is not an RLDS or LeRobot dataset") from None
    load_builtin_formats()
    try:
        try:
            writer = DATASET_WRITERS.get(to)(target, **(options or {}))
        except TypeError as error:
            raise ConvertError(f"--option: {error} (writer {to!r})") from None
        except ValueError as error:
            if isinstance(error, UsageError):
                raise
            raise ConvertError(f"--option: {error} (writer {to!r})") from None
        count = 0
        total = len(reader)  # type: ignore[arg-type]
        with writer, tqdm(total=total, unit="ep", desc=f"convert to {to}", disable=not progress) as bar:
            for index in range(total):
                writer.write(reader.episode(index))
                count += 1
                bar.update(1)
        return count
    finally:
        reader.close()


def main(argv: list[str] | None = None) -> None:
    """``sim2real convert SRC DST --to FORMAT``: convert a dataset (streaming, one episode in memory)."""
    parser = argparse.ArgumentParser(prog="sim2real convert", description=main.__doc__)
    parser.add_argument("source", type=Path, help="a dataset of any readable format (Zarr, HDF5, RLDS, LeRobot)")
    parser.add_argument("target", type=Path, help="the new dataset's path (must not exist, or be an empty folder)")
    parser.add_argument("--to", required=True, choices=TARGETS, help="the target format")
    parser.add_argument("--mapping", default=None, help="the reader's mapping (RLDS: sim2real, bridge; LeRobot: "
                        "sim2real, lerobot)")  # fmt: skip
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="a writer option, e.g. vcodec=lossless (repeatable)")  # fmt: skip
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    count = convert(args.source, args.target, args.to, mapping=args.mapping, options=parse_options(args.option),
                    progress=not args.no_progress)  # fmt: skip
    print(f"{count} episodes written to {args.target} ({args.to})")
