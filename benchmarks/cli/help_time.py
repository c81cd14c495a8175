"""How long ``mtlkit --help`` takes, lazy (today) against eager (every command's module imported
first, as the command line did before its imports were made lazy).

    .venv/bin/python benchmarks/cli/help_time.py [--repeats 5]

Each variant runs in a fresh interpreter ``--repeats`` times, interleaved; the medians and their
ratio are printed.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

from mtlkit.cli.threads import positive_int

LAZY = "import sys; from mtlkit.cli.main import main; sys.argv[0] = 'mtlkit'; main(['--help'])"
EAGER = (
    "import importlib, sys; from mtlkit.cli.main import COMMANDS, main; "
    "[importlib.import_module(h.partition(':')[0]) for h in COMMANDS.values()]; "
    "main(['--help'])"
)


def _seconds(code: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=False, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=positive_int, default=5)
    args = parser.parse_args()
    lazy, eager = [], []
    for _ in range(args.repeats):
        lazy.append(_seconds(LAZY))
        eager.append(_seconds(EAGER))
    lazy_s, eager_s = statistics.median(lazy), statistics.median(eager)
    print(f"mtlkit --help, median of {args.repeats} fresh processes")
    print(f"  lazy  (now):            {lazy_s:.2f} s")
    print(f"  eager (every handler):  {eager_s:.2f} s")
    print(f"  eager / lazy:           {eager_s / lazy_s:.1f}x")


if __name__ == "__main__":
    main()
