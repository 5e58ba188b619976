"""Run tests against mutmut's mutants, one mutant at a time (docs/testing.md, "How to rerun").

    python runmutants.py MUTANTS_DIR PREFIX LOG [--sample N --seed S] [--keys FILE] [--subprocess] TEST...

Runs ``pytest -x`` on TEST... for every mutant whose key starts with PREFIX (or a random sample
of N of them, ``random.Random(S).sample`` over the keys in mutmut's order, or the keys listed
in FILE), and appends one line per mutant to LOG: ``KEY killed|survived EXIT_CODE``. A rerun
skips the keys already in LOG. By default the mutants run in this process (``pytest.main``
again and again, no interpreter start per mutant); ``--subprocess`` runs each in a fresh
interpreter (for tests that keep global state between runs). Either way the tests import
``sim2real`` from MUTANTS_DIR, and mutmut's trampolines pick the mutant from
``MUTANT_UNDER_TEST``, also in processes the tests start.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
from pathlib import Path

PYTEST_ARGS = [
    "-x",
    "-q",
    "-p",
    "no:cacheprovider",
    "--tb=no",
    "-W",
    "ignore",
    "--timeout=60",
]
MARKS = "not slow and not interop and not gpu and not isaac"


def mutant_keys(mutants: Path, prefix: str) -> list[str]:
    module = prefix.rsplit(".x_", 1)[0] if ".x_" in prefix else prefix
    meta = mutants / (module.replace(".", "/") + ".py.meta")
    return [k for k in json.loads(meta.read_text())["exit_code_by_key"] if k.startswith(prefix)]


def run_one(key: str, tests: list[str], in_subprocess: bool, timeout: float, marks: str = MARKS) -> int:
    os.environ["MUTANT_UNDER_TEST"] = key
    args = [*PYTEST_ARGS, "-m", marks, *tests]
    if not in_subprocess:
        import pytest

        return int(pytest.main(args))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")]))
    try:
        done = subprocess.run(
            [sys.executable, "-m", "pytest", *args],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return 124
    return done.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("mutants", type=Path)
    parser.add_argument("prefix")
    parser.add_argument("log", type=Path)
    parser.add_argument("--sample", type=int, default=0, help="a random sample of this many mutants (0: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keys", type=Path, help="a file listing the keys to run, one a line")
    parser.add_argument("--subprocess", action="store_true", help="one fresh interpreter per mutant")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per mutant with --subprocess")
    parser.add_argument("--marks", default=MARKS, help=f"pytest -m expression (default {MARKS!r})")
    parser.add_argument("tests", nargs="+")
    args = parser.parse_args()

    mutants, log = args.mutants.resolve(), args.log.resolve()
    keys = mutant_keys(mutants, args.prefix)
    if args.sample:
        keys = random.Random(args.seed).sample(keys, min(args.sample, len(keys)))
    if args.keys:
        wanted = set(args.keys.read_text().split())
        keys = [k for k in keys if k in wanted]
    done = {line.split()[0] for line in log.read_text().splitlines()} if log.exists() else set()
    os.chdir(mutants)
    sys.path.insert(0, str(mutants))  # the mutated package, ahead of the editable install
    if run_one("", args.tests, args.subprocess, args.timeout, args.marks) != 0:
        sys.exit("the tests fail without a mutant")
    with log.open("a") as out:
        for key in (k for k in keys if k not in done):
            code = run_one(key, args.tests, args.subprocess, args.timeout, args.marks)
            out.write(f"{key} {'survived' if code == 0 else 'killed'} {code}\n")
            out.flush()


if __name__ == "__main__":
    main()
