"""Run every benchmarks/bench_*.py in turn (`make bench`). Each script appends its rows to
benchmarks/results/<name>.csv and prints them; one failing benchmark does not stop the others."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent


def main() -> int:
    only = set(sys.argv[1:])
    failures = []
    for script in sorted(HERE.glob("bench_*.py")):
        if only and script.stem.removeprefix("bench_") not in only:
            continue
        print(f"== {script.stem}", flush=True)
        if subprocess.run([sys.executable, str(script)]).returncode != 0:
            failures.append(script.stem)
    if failures:
        print(f"failed benchmarks: {', '.join(failures)}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
