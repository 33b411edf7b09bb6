"""Time `sorlab data generate`: by default the full cube-single-play-v0 (1000 + 100 episodes of
1001 steps) with 2 workers. Appends a row to benchmarks/results/datagen.csv and prints it.

cpu_s counts the CPU time of this process and its workers, so cpu_s_per_episode stays meaningful
when other jobs share the machine (wall time does not); load_1m is the load average at the start.

    python benchmarks/bench_datagen.py [--dataset NAME] [--episodes N] [--workers W] [--episode-steps T]
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import platform
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import mujoco
import numpy as np
from results_csv import append_rows

from sorlab.data.generate import generate
from sorlab.data.names import gen_spec

RESULTS = Path(__file__).parent / "results" / "datagen.csv"


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="cube-single-play-v0")
    parser.add_argument("--episodes", type=int, default=None, help="default: official size")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--episode-steps", type=int, default=None, help="default: official length")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    spec = gen_spec(args.dataset)
    episodes = args.episodes or spec.episodes
    episode_steps = args.episode_steps or spec.episode_steps
    total_episodes = episodes + max(1, episodes // 10)
    load_1m = os.getloadavg()[0]
    cpu0, t0 = _cpu_seconds(), time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        train, val = generate(args.dataset, out, episodes, args.seed, args.workers, episode_steps)
        wall = time.perf_counter() - t0
        with np.load(train) as f, np.load(val) as g:
            steps = len(f["terminals"]) + len(g["terminals"])
        size_mib = (train.stat().st_size + val.stat().st_size) / 2**20
    cpu = _cpu_seconds() - cpu0

    row = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": platform.node(),
        "cores": len(os.sched_getaffinity(0)),
        "load_1m": round(load_1m, 2),
        "dataset": args.dataset,
        "episodes": episodes,
        "total_episodes": total_episodes,
        "episode_steps": episode_steps,
        "workers": args.workers,
        "wall_s": round(wall, 1),
        "cpu_s": round(cpu, 1),
        "cpu_s_per_episode": round(cpu / total_episodes, 3),
        "env_steps_per_cpu_s": round(steps / cpu, 1),
        "env_steps_per_wall_s": round(steps / wall, 1),
        "size_mib": round(size_mib, 1),
        "ogbench": importlib.metadata.version("ogbench"),
        "mujoco": mujoco.__version__,
    }
    append_rows(RESULTS, list(row), [row])
    print(",".join(row))
    print(",".join(str(v) for v in row.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
