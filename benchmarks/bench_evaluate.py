"""Evaluation throughput: 50 cube-single episodes with SORL (M_inf 8, N 1), three ways.

- ours: `sorlab.evaluation.policy.evaluate_policy`: env slots over worker processes, one batched jitted
  policy call per step.
- released: the released code's loop: one env, one jitted policy call per step (batch 1),
  episodes one after another.
- mujoco: the same episodes (same seeds, same lengths) stepped with random actions and no
  policy at all, in the same worker processes: the floor set by MuJoCo.

Untrained SORL (episodes run their full 200 steps). Appends rows to
benchmarks/results/evaluate.csv. Usage: python benchmarks/bench_evaluate.py [--episodes 50]
[--hidden 512 512 512 512]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from datetime import UTC, datetime
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

import jax  # noqa: E402
import numpy as np  # noqa: E402
from results_csv import append_rows  # noqa: E402

from sorlab.agents import sorl  # noqa: E402
from sorlab.evaluation import envpool as ev  # noqa: E402
from sorlab.evaluation.policy import evaluate_policy  # noqa: E402

DATASET, TASK = "cube-single-play-v0", 2
RESULTS = Path(__file__).parent / "results" / "evaluate.csv"


def make_state(hidden: tuple[int, ...], obs_dim: int, act_dim: int):
    config = sorl.default_config(ev.env_name(DATASET, TASK))
    config.update(actor_hidden_dims=hidden, value_hidden_dims=hidden)
    batch = {
        "observations": np.zeros((1, obs_dim), np.float32),
        "actions": np.zeros((1, act_dim), np.float32),
        "rewards": np.zeros(1, np.float32),
        "masks": np.ones(1, np.float32),
        "next_observations": np.zeros((1, obs_dim), np.float32),
        "terminals": np.zeros(1, np.float32),
    }
    return sorl.init(jax.random.key(0), batch, config)


def released_way(state, episodes: int, seed: int, m_inf: int) -> dict:
    """One env, one jitted batch-1 policy call per step, episodes in sequence."""
    env = ev.make_env(DATASET, TASK)
    policy = jax.jit(lambda s, o, k: sorl.act(s, o[None], k, m_inf=m_inf, n=1)[0])
    obs, _ = env.reset(seed=seed)
    jax.block_until_ready(policy(state, obs, jax.random.key(0)))  # compile outside the timing
    key = jax.random.key(seed)
    steps, successes = 0, []
    start = time.perf_counter()
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        done = False
        while not done:
            key, sub = jax.random.split(key)
            action = np.asarray(policy(state, obs, sub))
            obs, _, terminated, truncated, info = env.step(action)
            done = terminated or truncated
            steps += 1
        successes.append(info["success"])
    return {"wall_s": time.perf_counter() - start, "steps": steps}


def mujoco_alone(episodes: int, seed: int, workers: int, num_envs: int) -> dict:
    """The same episodes stepped with random actions: the cost of the environments alone."""
    pool = ev.get_pool(DATASET, TASK, num_envs, workers)
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    _, episode, _ = pool.begin(episodes, seed)
    slots = np.arange(num_envs)
    steps = 0
    while (episode >= 0).any():
        steps += int((episode >= 0).sum())
        pool.step_send(slots, rng.uniform(-1, 1, size=(num_envs, pool.act_dim)).astype(np.float32))
        _, _, episode, _, _ = pool.step_recv()
    return {"wall_s": time.perf_counter() - start, "steps": steps}


def async_vector_env(episodes: int, seed: int, num_envs: int = 10, length: int = 200) -> dict:
    """gymnasium's AsyncVectorEnv (one process per env): the same number of 200-step episodes
    with random actions, `num_envs` at a time (one process per env rules out 50 at once)."""
    import gymnasium

    envs = gymnasium.vector.AsyncVectorEnv([lambda: ev.make_env(DATASET, TASK)] * num_envs)
    envs.reset(seed=seed)
    start = time.perf_counter()
    for round_ in range(-(-episodes // num_envs)):
        envs.reset(seed=seed + round_ * num_envs)
        for _ in range(length):
            envs.step(envs.action_space.sample())
    wall = time.perf_counter() - start
    envs.close()
    return {"wall_s": wall, "steps": -(-episodes // num_envs) * num_envs * length}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--m-inf", type=int, default=8)
    parser.add_argument("--hidden", type=int, nargs="+", default=[512, 512, 512, 512])
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args()
    hidden = tuple(args.hidden)
    env = ev.make_env(DATASET, TASK)
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    state = make_state(hidden, obs_dim, act_dim)
    num_envs = min(args.episodes, ev.MAX_ENVS)

    rows = []
    # Warm the pool (worker start-up is not part of any timing).
    evaluate_policy(
        sorl,
        state,
        DATASET,
        TASK,
        2,
        args.seed,
        workers=args.workers,
        m_inf=args.m_inf,
        num_envs=num_envs,
    )
    ours = evaluate_policy(
        sorl, state, DATASET, TASK, args.episodes, args.seed, workers=args.workers, m_inf=args.m_inf
    )
    steps = int(ours["length"] * args.episodes)
    rows.append(("ours", ours["wall_s"], steps, ours["ms_per_action"], ours["workers"]))
    alone = mujoco_alone(args.episodes, args.seed, args.workers, num_envs)
    rows.append(("mujoco_alone", alone["wall_s"], alone["steps"], 0.0, ours["workers"]))
    ev.close_pools()
    serial = evaluate_policy(
        sorl,
        state,
        DATASET,
        TASK,
        args.episodes,
        args.seed,
        workers=args.workers,
        m_inf=args.m_inf,
        pipeline=False,
    )
    rows.append(
        ("ours_no_pipeline", serial["wall_s"], steps, serial["ms_per_action"], serial["workers"])
    )
    ev.close_pools()
    vec = async_vector_env(args.episodes, args.seed)
    rows.append(("mujoco_async_vector_env", vec["wall_s"], vec["steps"], 0.0, 10))
    released = released_way(state, args.episodes, args.seed, args.m_inf)
    rows.append(("released", released["wall_s"], released["steps"], float("nan"), 0))

    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    load = os.getloadavg()[0]
    header = [
        "time",
        "machine",
        "cores",
        "load1",
        "mode",
        "episodes",
        "m_inf",
        "n",
        "hidden",
        "workers",
        "wall_s",
        "env_steps",
        "steps_per_s",
        "ms_per_action",
        "x_released",
        "x_mujoco",
    ]
    released_s, alone_s = released["wall_s"], alone["wall_s"]
    out = []
    for mode, wall, steps, ms, workers in rows:
        out.append(
            [
                stamp,
                platform.node(),
                os.cpu_count(),
                f"{load:.1f}",
                mode,
                args.episodes,
                args.m_inf,
                1,
                "x".join(map(str, hidden)),
                workers,
                f"{wall:.2f}",
                steps,
                f"{steps / wall:.0f}",
                f"{ms:.3f}",
                f"{released_s / wall:.2f}",
                f"{wall / alone_s:.2f}",
            ]
        )
    append_rows(RESULTS, header, [dict(zip(header, row, strict=True)) for row in out])
    print(",".join(header))
    for row in out:
        print(",".join(map(str, row)))
    print(
        f"ours is {released_s / ours['wall_s']:.1f}x the released loop (target >= 5x) and "
        f"{ours['wall_s'] / alone_s:.2f}x MuJoCo alone (target <= 1.5x)"
    )


if __name__ == "__main__":
    main()
