"""How long the quick `qid` commands take to answer, start to exit (a benchmark, not a timed test).

    .venv/bin/python benchmarks/bench_cli.py                 # this checkout, 5 runs per command
    .venv/bin/python benchmarks/bench_cli.py --repo ../other --runs 3   # another checkout, for a before/after

Each command runs as `python -m qid ...` in a fresh process with the repository on PYTHONPATH. Printed per
command: the median wall time and the median CPU time (user + system of the child) over the runs, with the
machine and its load average, because wall time on a shared machine says as much about the other jobs as
about `qid`. The goal is under 1 s for laws, predict, tokens-for-qid and fit --help.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

COMMANDS = {
    "laws": ["laws"],
    "predict": ["predict", "--law", "ouyang_unified", "--params", "published", "--N", "7e10", "--D", "1e14", "--P", "4"],
    "tokens-for-qid": ["tokens-for-qid", "--law", "ouyang_unified", "--params", "published", "--N", "1e9", "--P", "2",
                       "--qid", "0.2"],
    "fit --help": ["fit", "--help"],
    "--help": ["--help"],
}


def time_command(arguments: list[str], repo: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the child) for one run of `python -m qid ARGUMENTS`."""
    environment = {**os.environ, "PYTHONPATH": str(repo), "HF_HUB_OFFLINE": "1"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "qid", *arguments], cwd=repo, env=environment,
                            capture_output=True, text=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise SystemExit(f"qid {' '.join(arguments)} failed ({result.returncode}): {result.stderr[-500:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", default=str(Path(__file__).resolve().parents[1]), help="checkout to measure")
    parser.add_argument("--runs", type=int, default=5, help="runs per command (the median is printed)")
    args = parser.parse_args()
    repo = Path(args.repo).resolve()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
          f"load average before: {os.getloadavg()[0]:.1f}; checkout: {repo.name}")
    print(f"{'command':<16} {'wall s (median)':>16} {'CPU s (median)':>15}")
    for name, arguments in COMMANDS.items():
        runs = [time_command(arguments, repo) for _ in range(args.runs)]
        print(f"{name:<16} {statistics.median(r[0] for r in runs):>16.2f} {statistics.median(r[1] for r in runs):>15.2f}")
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
