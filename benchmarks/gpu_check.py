"""One-off GPU check (run through benchmarks/gpu_check.sh): does JAX see a GPU, and how fast do
SORL and FQL train on it at the paper's sizes with 1, 2, 4 and 8 seeds in one program?

Writes ONE CSV (default benchmarks/results/gpu_check.csv): a row per (agent, mode, seeds) with
updates/s through the trainer's own scanned chunk (`sorlab.bench.bench_update`: 4 x 512 MLPs,
batch 256, obs 28, action 5), then a row for one 50-episode evaluation of SORL (cube-single,
task 2, M_inf 8) in the real environment; every row carries the device and the versions.
SORL's grouped rows use `shared_k_across_seeds: true` (one k branch for the whole group); one
more row measures 8 seeds with the default per-seed k (the seeds one after another) to compare.

Without a GPU it says so on stdout and stderr and still writes the CSV, measured on the CPU
with tiny update counts (`--quick`: also tiny networks, 1 and 2 seeds and 1 episode, for the
test suite).
Rows that would start after `--budget-s` seconds are written as skipped, so the whole check
ends within about 8 minutes.
"""

from __future__ import annotations

import argparse
import csv
import importlib.metadata
import os
import platform
import sys
import time
from pathlib import Path

FIELDS = (
    "date", "host", "gpu_found", "backend", "device", "device_count", "kind", "agent", "mode",
    "seeds", "hidden", "batch_size", "updates", "updates_per_s", "updates_per_s_per_seed",
    "speedup_vs_one_seed", "compile_s", "episodes", "eval_s", "success", "status", "python",
    "jax", "jaxlib", "jax_cuda12_plugin", "jax_cuda12_pjrt", "flax", "sorlab",
)  # fmt: skip
DATASET, TASK = "cube-single-play-v0", 2


def versions() -> dict:
    found = {"python": platform.python_version()}
    for name in ("jax", "jaxlib", "jax-cuda12-plugin", "jax-cuda12-pjrt", "flax", "sorlab"):
        try:
            found[name.replace("-", "_")] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name.replace("-", "_")] = "not installed"
    return found


def plan(quick: bool) -> list[tuple[str, str, int]]:
    """(agent, mode, seeds) in the order measured: the one-seed baselines and the evaluation's
    state first, the largest groups next, so a tight budget drops the middle rows."""
    if quick:
        return [("sorl", "grouped", 1), ("fql", "grouped", 1), ("sorl", "grouped", 2)]
    rows = [(agent, "grouped", n) for n in (1, 8, 2, 4) for agent in ("sorl", "fql")]
    return rows + [("sorl", "per-seed-k", 8)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "gpu_check.csv"))
    parser.add_argument("--quick", action="store_true", help="tiny networks and counts (tests)")
    parser.add_argument("--updates", type=int, default=None, help="updates per timed chunk")
    parser.add_argument("--episodes", type=int, default=None, help="evaluation episodes (50)")
    parser.add_argument("--budget-s", type=float, default=420.0, help="no new row after this")
    args = parser.parse_args()
    start = time.perf_counter()

    import jax

    from sorlab.bench import bench_update
    from sorlab.evaluation.envpool import close_pools
    from sorlab.evaluation.policy import evaluate_policy

    backend = jax.default_backend()
    gpu_found = backend in ("gpu", "cuda", "rocm")
    devices = jax.devices()
    if gpu_found:
        print(f"gpu_check: JAX sees {len(devices)} GPU(s): {devices[0].device_kind}", flush=True)
    else:
        message = (
            f"gpu_check: NO GPU FOUND: JAX's backend is {backend!r} ({devices}); check the "
            "NVIDIA driver (nvidia-smi) and that the venv was made with `make venv GPU=1`. "
            "Measuring on the CPU with tiny counts instead: these rows say nothing about a GPU."
        )
        print(message, flush=True)
        print(message, file=sys.stderr, flush=True)
    updates = args.updates or (200 if gpu_found else 2)
    episodes = args.episodes or (1 if args.quick else 50)
    hidden = [16] if args.quick else [512, 512, 512, 512]
    batch_size = 16 if args.quick else 256
    sizes = [f"actor_hidden_dims={hidden}", f"value_hidden_dims={hidden}"]
    common = {
        "host": platform.node(),
        "gpu_found": gpu_found,
        "backend": backend,
        "device": devices[0].device_kind,
        "device_count": len(devices),
        "hidden": "x".join(map(str, hidden)),
        "batch_size": batch_size,
        **versions(),
    }
    rows, one_seed, eval_state = [], {}, None

    def add(row: dict) -> None:
        rows.append({"date": time.strftime("%Y-%m-%dT%H:%M:%S"), **common, **row})
        print(", ".join(f"{k}={v}" for k, v in row.items()), flush=True)

    for agent, mode, seeds in plan(args.quick):
        row = {"kind": "update", "agent": agent, "mode": mode, "seeds": seeds}
        if time.perf_counter() - start > args.budget_s:
            add({**row, "status": f"skipped: past the {args.budget_s:.0f} s budget"})
            continue
        overrides = [*sizes]
        if agent == "sorl":
            overrides.append(f"shared_k_across_seeds={str(mode == 'grouped').lower()}")
            if args.quick:  # the smallest switch: quick to compile
                overrides += ["denoise_timesteps=2", "max_k_backprop=1"]
        result = bench_update(
            agent, updates=updates, batch_size=batch_size, overrides=overrides, seeds=seeds,
            data_size=10_000, flops=False, return_state=eval_state is None and agent == "sorl",
        )  # fmt: skip
        eval_state = result.pop("state", eval_state)
        if mode == "grouped" and seeds == 1:
            one_seed[agent] = result["updates_per_s"]
        base = one_seed.get(agent) if mode == "grouped" else None
        add({**row, "updates": updates, "updates_per_s": result["updates_per_s"],
             "updates_per_s_per_seed": result["updates_per_s_per_seed"],
             "speedup_vs_one_seed": result["updates_per_s"] / base if base else None,
             "compile_s": round(result["compile_s"], 2),
             "status": "ok" if result["finite"] else "non-finite state"})  # fmt: skip

    from sorlab.agents import sorl

    row = {"kind": "evaluate", "agent": "sorl", "mode": "m_inf=8", "seeds": 1}
    if eval_state is None:
        add({**row, "status": "skipped: no SORL state"})
    else:
        t0 = time.perf_counter()
        result = evaluate_policy(sorl, eval_state, DATASET, TASK, episodes, seed=0, m_inf=8)
        close_pools()
        add({**row, "episodes": episodes, "eval_s": round(time.perf_counter() - t0, 2),
             "success": result["success"], "status": "ok"})  # fmt: skip

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as f:
        writer = csv.DictWriter(f, FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    total = time.perf_counter() - start
    where = "GPU" if gpu_found else "CPU (no GPU found)"
    print(f"gpu_check: wrote {out} ({len(rows)} rows, {where}) in {total:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("MUJOCO_GL", "egl")
    sys.exit(main())
