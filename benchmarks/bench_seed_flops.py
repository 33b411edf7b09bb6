"""FLOPs of one SORL group-update (K seeds vmapped as one program) at the paper's sizes
(4 x 512 MLPs, batch 256, obs 28, action 5, M = M_BTT = 8), from XLA's cost analysis and HLO
of the compiled program (`sorlab.bench.group_cost`); compilation only, nothing is run.

- per-seed-k (the default): each seed draws its own k; the seeds run one after another in a
  loop (XLA counts a loop body once, so group_gflop = K x its figure).
- shared-k (`shared_k_across_seeds: true`): one k per update for the group; one branch of the
  switch, its work batched over the seeds.
- every-branch (reference only): a plain vmap of the per-seed draw, which turns the switch into
  a select over every k's results.

A conditional counts as its costliest branch (k = 8). Appends rows to
benchmarks/results/seed_flops.csv. The counts come from XLA's HLO, not from the machine code,
so `group_cost` compiles with the CPU backend's optimisations off (`COST_ONLY_OPTIONS`): the
same numbers (checked: 29.410179072 GFLOP for one seed either way) in about a quarter of the
compile time.

    python benchmarks/bench_seed_flops.py [--seeds 1 2 4 8] [--modes per-seed-k shared-k every-branch]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

from results_csv import append_rows

RESULTS = Path(__file__).parent / "results" / "seed_flops.csv"
FIELDS = (
    "date", "host", "load_1m", "mode", "seeds", "xla_group_gflop", "group_gflop",
    "gflop_per_seed", "seed_loop", "conditionals", "compile_s",
)  # fmt: skip
MODES = ("per-seed-k", "shared-k", "every-branch")


def measure(mode: str, seeds: int) -> dict:
    import jax
    import jax.numpy as jnp

    from sorlab.agents import sorl
    from sorlab.bench import group_cost, synthetic_data
    from sorlab.training.runner import root_keys

    config = sorl.default_config("cube-single-play-singletask-task2-v0")
    config["shared_k_across_seeds"] = mode == "shared-k"
    data = synthetic_data(1024, 28, 5)
    batch = {k: jnp.asarray(v[: config["batch_size"]]) for k, v in data.items()}
    keys = [root_keys(seed) for seed in range(1, seeds + 1)]
    states = [sorl.init(k[0], batch, config) for k in keys]
    state = jax.tree.map(lambda *xs: jnp.stack(xs), *states)
    train_keys = jnp.stack([k[1] for k in keys])
    update = sorl.update
    if mode == "every-branch":
        update = lambda s, b, r: sorl._update(s, b, r, s.step)  # noqa: E731
    start = time.perf_counter()
    cost = group_cost(update, state, batch, train_keys)
    return {**cost, "gflop_per_seed": cost["group_gflop"] / seeds,
            "compile_s": time.perf_counter() - start}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    args = parser.parse_args()
    for seeds in args.seeds:
        for mode in args.modes:
            row = {
                "date": time.strftime("%Y-%m-%dT%H:%M:%S"),
                "host": platform.node(),
                "load_1m": round(os.getloadavg()[0], 2),
                "mode": mode,
                "seeds": seeds,
                **measure(mode, seeds),
            }
            append_rows(RESULTS, FIELDS, [row])
            print(json.dumps({k: row.get(k) for k in FIELDS}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
