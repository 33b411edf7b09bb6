"""Seeds in one program: per-seed update throughput for 1, 2, 4 and 8 seeds vmapped, against one
seed, at the paper's sizes (4 x 512 MLPs, batch 256), through `sorlab bench update --seeds K`.

SORL is measured in two modes (`--sorl-modes`): per-seed-k (the default config: each seed draws
its own k, so the seeds of a group run one after another) and shared-k (`shared_k_across_seeds:
true`: one k per update for the group, one switch branch, the seeds side by side).

Appends one row per (agent, mode, seeds) to benchmarks/results/seeds.csv, with the 1-minute load
average (the CPU may be shared); on a GPU machine the same script measures the GPU (the backend
column says which).

    python benchmarks/bench_seeds.py [--updates 20] [--seeds 1 2 4 8] [--no-flops]
        [--sorl-modes per-seed-k shared-k] [AGENT ...]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from results_csv import append_rows

RESULTS = Path(__file__).parent / "results" / "seeds.csv"
FIELDS = (
    "date", "host", "agent", "backend", "seeds", "updates", "updates_per_s",
    "updates_per_s_per_seed", "speedup_vs_one_seed", "matmul_gflops", "mode", "load_1m",
    "group_gflop", "seed_loop", "conditionals",
)  # fmt: skip
SORL_MODES = {"per-seed-k": "false", "shared-k": "true"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("agents", nargs="*", default=["fql", "sorl"])
    parser.add_argument("--updates", type=int, default=20)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument(
        "--sorl-modes", nargs="+", choices=list(SORL_MODES), default=list(SORL_MODES)
    )
    parser.add_argument(
        "--no-flops", action="store_true", help="skip FLOP counts (fewer compilations)"
    )
    args = parser.parse_args()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    failed = False
    runs = [
        (agent, mode)
        for agent in args.agents
        for mode in (args.sorl_modes if agent == "sorl" else ["-"])
    ]
    for agent, mode in runs:
        one_seed = None
        for seeds in args.seeds:
            command = [
                sys.executable, "-m", "sorlab.cli", "bench", "update", "--agent", agent,
                "--updates", str(args.updates), "--seeds", str(seeds),
            ]  # fmt: skip
            if agent == "sorl":
                command += ["--set", f"shared_k_across_seeds={SORL_MODES[mode]}"]
            if args.no_flops:
                command.append("--no-flops")
            load = os.getloadavg()[0]
            proc = subprocess.run(command, capture_output=True, text=True)
            if proc.returncode != 0:
                print(f"{agent} {mode} x{seeds}: failed\n{proc.stderr[-2000:]}", file=sys.stderr)
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
                "mode": mode,
                "load_1m": round((load + os.getloadavg()[0]) / 2, 2),
            }
            append_rows(RESULTS, FIELDS, [row])
            print(json.dumps({k: row.get(k) for k in FIELDS}), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
