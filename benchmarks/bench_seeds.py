"""Seeds in one program: per-seed update throughput for 1, 2, 4 and 8 seeds vmapped, against one
seed, at the paper's sizes (4 x 512 MLPs, batch 256), through `sorlab bench update --seeds K`.

Appends one row per (agent, seeds) to benchmarks/results/seeds.csv; on a GPU machine the same
script measures the GPU (the backend column says which).

    python benchmarks/bench_seeds.py [--updates 20] [--seeds 1 2 4 8] [AGENT ...]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

from results_csv import append_rows

RESULTS = Path(__file__).parent / "results" / "seeds.csv"
FIELDS = (
    "date", "host", "agent", "backend", "seeds", "updates", "updates_per_s",
    "updates_per_s_per_seed", "speedup_vs_one_seed", "matmul_gflops",
)  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("agents", nargs="*", default=["fql", "sorl"])
    parser.add_argument("--updates", type=int, default=20)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 4, 8])
    args = parser.parse_args()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    failed = False
    for agent in args.agents:
        one_seed = None
        for seeds in args.seeds:
            command = [
                sys.executable, "-m", "sorlab.cli", "bench", "update", "--agent", agent,
                "--updates", str(args.updates), "--seeds", str(seeds),
            ]  # fmt: skip
            proc = subprocess.run(command, capture_output=True, text=True)
            if proc.returncode != 0:
                print(f"{agent} x{seeds}: failed\n{proc.stderr[-2000:]}", file=sys.stderr)
                failed = True
                continue
            result = json.loads(proc.stdout.strip().splitlines()[-1])
            if seeds == 1:
                one_seed = result["updates_per_s"]
            row = {
                "date": time.strftime("%Y-%m-%dT%H:%M:%S"),
                "host": platform.node(),
                **result,
                "speedup_vs_one_seed": result["updates_per_s"] / one_seed if one_seed else None,
            }
            append_rows(RESULTS, FIELDS, [row])
            print(json.dumps({k: row.get(k) for k in FIELDS}), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
