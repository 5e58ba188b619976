"""``sim2real <command>``: small tools around the pipeline."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = {
        "convert": "sim2real.datasets.convert",
        "gallery": "sim2real.gallery",
        "inspect": "sim2real.inspect_dataset",
        "index": "sim2real.generation",
        "pipeline": "sim2real.pipeline",
        "serve": "sim2real.remote.server",
        "verify": "sim2real.datasets.integrity",
    }
    if not argv or argv[0] not in commands:
        print(f"usage: sim2real {{{','.join(sorted(commands))}}} [options]; known commands: {sorted(commands)}")
        raise SystemExit(2)
    import importlib

    from sim2real.entrypoint import refuse, user_error

    try:
        importlib.import_module(commands[argv[0]]).main(argv[1:])
    except Exception as error:  # a user's error is one line; anything else keeps its traceback
        found = user_error(error, argv[1] if len(argv) > 1 else ".")
        if found is None:
            raise
        refuse(found)


if __name__ == "__main__":
    main()
