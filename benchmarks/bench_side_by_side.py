"""Trainings side by side: update throughput of K `sorlab bench update` processes running at
once (K = the number of cores by default), with XLA's default CPU pool (one compute thread per
core in every process) and with `--threads 1`, at the default study's sizes (3 x 128, batch 256).

Appends one row per (agent, threads) to benchmarks/results/side_by_side.csv: the mean
updates/s per process and the sum over the K processes.

    python benchmarks/bench_side_by_side.py [--updates 300] [--processes K] [AGENT ...]
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

RESULTS = Path(__file__).parent / "results" / "side_by_side.csv"
FIELDS = (
    "date", "host", "agent", "processes", "threads", "updates", "updates_per_s_per_process",
    "updates_per_s_total", "load_1m",
)  # fmt: skip
SMALL = ["actor_hidden_dims=[128,128,128]", "value_hidden_dims=[128,128,128]"]


def run_side_by_side(agent: str, processes: int, threads: int, updates: int) -> list[float]:
    command = [
        sys.executable, "-m", "sorlab.cli", "bench", "update", "--agent", agent,
        "--updates", str(updates), "--threads", str(threads), "--set", *SMALL,
    ]  # fmt: skip
    procs = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(processes)
    ]
    rates = []
    for proc in procs:
        out, err = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"{agent} --threads {threads} failed:\n{err[-2000:]}")
        rates.append(json.loads(out.strip().splitlines()[-1])["updates_per_s"])
    return rates


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("agents", nargs="*", default=["sorl", "fql"])
    parser.add_argument("--updates", type=int, default=300)
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args()
    for agent in args.agents:
        for threads in (0, 1):
            rates = run_side_by_side(agent, args.processes, threads, args.updates)
            row = {
                "date": time.strftime("%Y-%m-%dT%H:%M:%S"),
                "host": platform.node(),
                "agent": agent,
                "processes": args.processes,
                "threads": threads,
                "updates": args.updates,
                "updates_per_s_per_process": sum(rates) / len(rates),
                "updates_per_s_total": sum(rates),
                "load_1m": os.getloadavg()[0],
            }
            append_rows(RESULTS, FIELDS, [row])
            print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
