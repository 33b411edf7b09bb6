"""`sorlab bench update`: an agent's update throughput on synthetic data, as ONE JSON line.

It runs the trainer's own scanned chunk (sorlab.training.runner.ChunkRunner: batches drawn on the device
inside a jitted `lax.scan`), so the number is what training gets. FLOPs per update come from
XLA's cost analysis of the compiled single update; the machine's fp32 matmul rate is measured
in the same process (a jitted loop of square matmuls at JAX's default precision, the one the
update uses), so `ratio` says how close the update gets to this machine's dense-matmul speed.

XLA's cost analysis counts a conditional (`lax.switch`/`cond`) as its costliest branch and a
while/fori loop body once: SORL's update (a switch over the drawn step count k) is counted as a
k = M_BTT update, an upper bound on its average cost; FQL's Euler loop is counted as one step.
With `--seeds K` the vmapped update of K seeds is also compiled on its own (`group_cost`): its
FLOPs per group-update, and whether its HLO runs the seeds one after another (a loop of K trips
around one seed's update) and keeps SORL's switch over k as a conditional (one branch taken).
"""

from __future__ import annotations

import argparse
import json
import re
import time
from collections.abc import Callable

import numpy as np

from sorlab.data.transitions import example_batch
from sorlab.threads import add_threads_argument, limit_cpu_threads
from sorlab.training.runner import ChunkRunner, root_keys
from sorlab.training.settings import get_agent, resolve_agent_config


def synthetic_data(
    size: int, obs_dim: int, action_dim: int, seed: int = 0
) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    data = example_batch(obs_dim, action_dim, size)
    data["observations"] = rng.normal(size=(size, obs_dim)).astype(np.float32)
    data["next_observations"] = rng.normal(size=(size, obs_dim)).astype(np.float32)
    data["actions"] = rng.uniform(-1, 1, (size, action_dim)).astype(np.float32)
    data["next_actions"] = np.roll(data["actions"], -1, axis=0)
    data["rewards"] = (rng.random(size) < 0.1).astype(np.float32) - 1.0
    data["masks"] = np.ones(size, np.float32)
    return data


def _flops(compiled) -> float | None:
    analysis = compiled.cost_analysis()
    if isinstance(analysis, list | tuple):  # older JAX: one dict per program
        analysis = analysis[0] if analysis else {}
    flops = (analysis or {}).get("flops")
    return float(flops) if flops is not None and flops > 0 else None


def hlo_seed_facts(hlo_text: str, seeds: int) -> dict:
    """What a compiled program's HLO says about how `seeds` vmapped seeds run.

    seed_loop: a while loop of `seeds` trips that carries float arrays with the seed axis (the
    seeds one after another; the RNG's own loops carry integers only). conditionals: how many
    `conditional` ops are left (a vmapped switch whose index differs between seeds becomes a
    select over every branch's results, so it leaves none).
    """
    seed_loop, conditionals = False, 0
    for line in hlo_text.splitlines():
        if " while(" in line:
            types = line.partition(" while(")[0]
            trips = re.search(r'known_trip_count":\{"n":"(\d+)"', line)
            if trips and int(trips.group(1)) == seeds and f"f32[{seeds}," in types:
                seed_loop = True
        elif " conditional(" in line:
            conditionals += 1
    return {"seed_loop": seed_loop, "conditionals": conditionals}


# The program of group_cost is never run: its FLOPs and HLO come from XLA's HLO passes, which
# these options leave alone, while they cut the CPU backend's code generation time about 4x.
COST_ONLY_OPTIONS = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


def group_cost(update: Callable, state, batch: dict, keys) -> dict:
    """FLOPs of one group-update (`update` vmapped over the stacked `state` and `keys`, the
    batch shared) from XLA's cost analysis, with `hlo_seed_facts`. XLA counts a loop body once,
    so where the seeds run in a loop the group's work is `seeds` times the reported FLOPs:
    `group_gflop` is that work (a conditional still counts as its costliest branch)."""
    import jax

    seeds = int(keys.shape[0])
    lowered = jax.jit(jax.vmap(update, in_axes=(0, None, 0))).lower(state, batch, keys)
    compiled = lowered.compile(compiler_options=COST_ONLY_OPTIONS)
    facts = hlo_seed_facts(compiled.as_text(), seeds)
    flops = _flops(compiled) or 0.0
    work = flops * (seeds if facts["seed_loop"] and seeds > 1 else 1)
    return {"xla_group_gflop": flops / 1e9, "group_gflop": work / 1e9, **facts}


def matmul_gflops(n: int = 1024, min_seconds: float = 0.5) -> float:
    """Sustained fp32 GFLOP/s of a jitted loop of n x n matmuls on the default device."""
    import jax
    import jax.numpy as jnp

    @jax.jit
    def loop(x, w, reps):
        # Renormalise so values stay finite however many products are taken.
        return jax.lax.fori_loop(0, reps, lambda _, y: jnp.tanh(y @ w), x)

    key_x, key_w = jax.random.split(jax.random.PRNGKey(0))
    x = jax.random.normal(key_x, (n, n), jnp.float32)
    w = jax.random.normal(key_w, (n, n), jnp.float32) / np.sqrt(n)
    jax.block_until_ready(loop(x, w, 1))  # compile and warm up
    reps = 1
    while True:
        start = time.perf_counter()
        jax.block_until_ready(loop(x, w, reps))
        seconds = time.perf_counter() - start
        if seconds >= min_seconds or reps >= 1 << 16:
            return 2 * n**3 * reps / seconds / 1e9
        reps *= 2


def bench_update(
    agent_name: str,
    obs_dim: int = 28,
    action_dim: int = 5,
    updates: int = 300,
    batch_size: int = 256,
    overrides: list[str] | None = None,
    env: str = "cube-single-play-singletask-task2-v0",
    data_size: int = 100_000,
    seed: int = 0,
    seeds: int = 1,
    flops: bool = True,
    return_state: bool = False,
) -> dict:
    """Time the trainer's chunked update; with `seeds` > 1, that many seeds vmapped in one program
    (updates_per_s then counts updates of every seed: per-seed throughput is updates_per_s_per_seed).
    `flops=False` skips the FLOP counts and the matmul rate (two compilations fewer);
    `return_state` adds the first seed's trained state under "state" (not JSON)."""
    import jax

    agent = get_agent(agent_name)
    config = resolve_agent_config(
        agent, agent_name, env, [f"batch_size={batch_size}", *(overrides or [])]
    )
    data_np = synthetic_data(data_size, obs_dim, action_dim, seed)
    data = jax.device_put(data_np)
    init_key, train_key = root_keys(seed)
    state = agent.init(init_key, {k: v[:1] for k, v in data_np.items()}, config)
    runner = ChunkRunner(agent, batch_size, vmapped=seeds > 1)
    if seeds > 1:
        keys = [root_keys(seed + i) for i in range(seeds)]
        example = {k: v[:1] for k, v in data_np.items()}
        states = [agent.init(k[0], example, config) for k in keys]
        run_state = jax.tree.map(lambda *xs: jax.numpy.stack(xs), *states)
        run_key = jax.numpy.stack([k[1] for k in keys])
    else:
        run_state, run_key = state, train_key

    # FLOPs of one update (and of one group-update), from XLA's cost analysis.
    batch = {k: v[:batch_size] for k, v in data_np.items()}
    update_flops, cost = None, {}
    if flops:
        update_flops = _flops(jax.jit(agent.update).lower(state, batch, train_key).compile())
        if seeds > 1:
            cost = group_cost(agent.update, run_state, batch, run_key)

    runner.get(updates, run_state, data, run_key, jax.numpy.int32(0))
    run_state, _, _ = jax.block_until_ready(runner(updates, run_state, data, run_key, 0))  # warm-up
    start = time.perf_counter()
    run_state, _, finite = jax.block_until_ready(runner(updates, run_state, data, run_key, updates))
    seconds = time.perf_counter() - start
    updates_per_s = updates * seeds / seconds

    peak = matmul_gflops() if flops else None
    gflops = update_flops * updates_per_s / 1e9 if update_flops else None
    result = {
        "agent": agent_name,
        "backend": jax.default_backend(),
        "device": jax.devices()[0].device_kind,
        "obs_dim": obs_dim,
        "action_dim": action_dim,
        "batch_size": batch_size,
        "updates": updates,
        "seeds": seeds,
        "updates_per_s_per_seed": updates_per_s / seeds,
        "overrides": list(overrides or []),
        "updates_per_s": updates_per_s,
        "update_gflop": update_flops / 1e9 if update_flops else None,
        "update_gflops": gflops,
        "matmul_gflops": peak,
        "ratio": gflops / peak if gflops and peak else None,
        **cost,
        "compile_s": runner.compile_s,
        "finite": bool(jax.numpy.all(finite)),
        "flops_note": "XLA cost analysis: a conditional counts as its costliest branch, a loop body once",
    }
    if return_state:
        result["state"] = run_state if seeds == 1 else jax.tree.map(lambda x: x[0], run_state)
    return result


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--agent", required=True)
    parser.add_argument("--obs-dim", type=int, default=28)
    parser.add_argument("--action-dim", type=int, default=5)
    parser.add_argument("--updates", type=int, default=300, help="updates per timed chunk")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument(
        "--seeds", type=int, default=1, help="seeds vmapped in one program (throughput per seed)"
    )
    parser.add_argument(
        "--env", default="cube-single-play-singletask-task2-v0", help="env for default_config"
    )
    parser.add_argument(
        "--set", dest="overrides", nargs="+", action="extend", default=[], metavar="KEY=VALUE"
    )
    parser.add_argument(
        "--no-flops",
        dest="flops",
        action="store_false",
        help="skip the FLOP counts and the matmul rate (fewer compilations)",
    )
    add_threads_argument(parser)


def main(args: argparse.Namespace) -> int:
    """Benchmark; a bad agent or --set reaches `sorlab.cli` as a SorlabError (exit status 2)."""
    limit_cpu_threads(args.threads)
    result = bench_update(
        args.agent,
        obs_dim=args.obs_dim,
        action_dim=args.action_dim,
        updates=args.updates,
        batch_size=args.batch_size,
        overrides=args.overrides,
        env=args.env,
        seeds=args.seeds,
        flops=args.flops,
    )
    result["threads"] = args.threads
    print(json.dumps(result))
    return 0
