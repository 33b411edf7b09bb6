"""Update throughput of SORL, FQL and BC at the paper's sizes (4 x 512 MLPs, batch 256;
SORL with its default M = 8 and M_BTT = 8), through the scanned trainer (`sorlab bench update`).

Appends one row per agent to benchmarks/results/update.csv. Agents whose module does not exist
yet are skipped with a note.

    python benchmarks/bench_update.py [--updates 300] [AGENT ...]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

from results_csv import append_rows

RESULTS = Path(__file__).parent / "results" / "update.csv"
AGENTS = ("sorl", "fql", "bc")
# Observation/action sizes of cube-single-play (the default study's environment).
OBS_DIM, ACTION_DIM, BATCH_SIZE = 28, 5, 256
FIELDS = (
    "date", "host", "agent", "backend", "device", "obs_dim", "action_dim", "batch_size", "updates",
    "updates_per_s", "update_gflop", "update_gflops", "matmul_gflops", "ratio", "compile_s",
)  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("agents", nargs="*", default=list(AGENTS))
    parser.add_argument("--updates", type=int, default=300)
    args = parser.parse_args()

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    failed = []
    for agent in args.agents:
        if importlib.util.find_spec(f"sorlab.agents.{agent}") is None:
            print(f"skip {agent}: sorlab/agents/{agent}.py does not exist yet", flush=True)
            continue
        command = [
            sys.executable, "-m", "sorlab.cli", "bench", "update", "--agent", agent,
            "--obs-dim", str(OBS_DIM), "--action-dim", str(ACTION_DIM),
            "--batch-size", str(BATCH_SIZE), "--updates", str(args.updates),
        ]  # fmt: skip
        proc = subprocess.run(command, capture_output=True, text=True)
        if proc.returncode != 0:
            print(f"{agent}: failed\n{proc.stderr[-2000:]}", file=sys.stderr, flush=True)
            failed.append(agent)
            continue
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        row = {"date": time.strftime("%Y-%m-%dT%H:%M:%S"), "host": platform.node(), **result}
        append_rows(RESULTS, FIELDS, [row])
        print(
            f"{agent}: {result['updates_per_s']:.1f} updates/s, "
            f"{result['update_gflops'] or float('nan'):.1f} GFLOP/s "
            f"({100 * (result['ratio'] or float('nan')):.0f}% of {result['matmul_gflops']:.0f} "
            f"GFLOP/s fp32 matmul) on {result['device']}",
            flush=True,
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
