"""Policy evaluation on real OGBench environments (`evaluate_policy`), knowing nothing of training.

Many episodes run at once: env slots over worker processes (`envpool`), and one batched,
jitted policy call per step over a group of slots (padded to a fixed batch, so it compiles once
per (M_inf, N)). Two groups alternate, so the policy computes one group's actions while the
workers step the other. Episode `i` resets with seed `seed + i` and draws its policy noise at
step `t` from `fold_in(fold_in(key(0), seed + i), t)`: its result depends on `seed + i` alone,
not on how many episodes run side by side or in which slot. A run repeats exactly, and
vectorised evaluation matches one-episode-at-a-time evaluation.

A run's `seed` is by default `start_seed(training seed, task)`: different training seeds see
different start states (so a mean over seeds also averages over start states), while every agent
trained with the same seed on the same task sees the same ones (comparisons stay paired).

Success is `info['success']` at the episode's last step, as OGBench's own evaluation reads it.
"""

from __future__ import annotations

import functools
import os
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from sorlab.evaluation.envpool import MAX_ENVS, env_name, get_pool, make_env

# Mixed into the start-seed hash so that evaluation starts are not the training seed's own draws.
_START_SALT = 0x50524C  # "SRL"


def start_seed(train_seed: int, task: int) -> int:
    """Reset seed of episode 0 of a run's evaluations (episode i: +i), from its training seed
    and task alone: the agent plays no part, so agents on one seed share their start states.
    Below 2**30, so that seed + i stays an int32 for any realistic episode count."""
    state = np.random.SeedSequence([_START_SALT, int(train_seed), int(task)]).generate_state(1)
    return int(state[0]) >> 2


def check_inference(
    agent: ModuleType,
    agent_config: dict,
    obs_dim: int,
    action_dim: int,
    points: list[tuple[int, int]],
) -> None:
    """ValueError naming the first (m_inf, n) `agent` cannot act with, e.g. SORL with an M_inf
    that is not a power of two. The agent's own `act` is traced on abstract values: nothing is
    computed, so a grid is checked in about a second before any episode runs."""
    import jax

    from sorlab.checkpoints import abstract_state, to_tuples

    state = None
    for m_inf, n in dict.fromkeys(points):
        if m_inf < 1 or n < 1:
            raise ValueError(f"m_inf and n must be >= 1, got m_inf={m_inf}, n={n}")
        if state is None:
            state = abstract_state(agent, to_tuples(dict(agent_config)), obs_dim, action_dim)
        obs = jax.ShapeDtypeStruct((1, obs_dim), np.float32)
        try:
            jax.eval_shape(
                lambda s, o, m=m_inf, k=n: agent.act(s, o, jax.random.PRNGKey(0), m_inf=m, n=k),
                state,
                obs,
            )
        except ValueError as err:
            name = agent.__name__.rsplit(".", 1)[-1]
            raise ValueError(f"agent {name} cannot act with m_inf={m_inf}, n={n}: {err}") from None


@functools.lru_cache(maxsize=64)
def policy_fn(agent: ModuleType, m_inf: int, n: int):
    """A jitted batched policy with one PRNG key per (episode, step), so rows are independent."""
    import jax

    def policy(state, obs, episode, t, root_key):
        def one(o, e, tt):
            key = jax.random.fold_in(jax.random.fold_in(root_key, e), tt)
            return agent.act(state, o[None], key, m_inf=m_inf, n=n)[0]

        return jax.vmap(one)(obs, episode, t)

    return jax.jit(policy)


def evaluate_policy(
    agent: ModuleType,
    state: Any,
    dataset: str,
    task: int,
    episodes: int,
    seed: int,
    workers: int | None = None,
    m_inf: int = 1,
    n: int = 1,
    video_dir: str | os.PathLike | None = None,
    video_episodes: int = 2,
    num_envs: int | None = None,
    pipeline: bool = True,
    progress: bool = False,
) -> dict[str, Any]:
    """Run `episodes` episodes of `agent` on `dataset`'s singletask `task` env.

    Returns success and return (means over episodes), ms_per_action (one batched policy call's
    time divided by its rows), per-episode lists, and timings. `workers` env processes (default:
    one per core, or 0 = in this process below MIN_ENVS_FOR_WORKERS slots); `num_envs` env
    slots (default min(episodes, MAX_ENVS)); `pipeline` splits the slots in two groups that
    alternate between policy and MuJoCo. Results do not depend on workers, num_envs or pipeline.
    """
    import jax

    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    if num_envs is not None and num_envs < 1:
        raise ValueError(f"num_envs must be >= 1, got {num_envs}")
    num_envs = num_envs or min(episodes, MAX_ENVS)
    pool = get_pool(dataset, task, num_envs, workers)
    policy = policy_fn(agent, int(m_inf), int(n))
    root_key = jax.random.key(0)  # episode keys fold in seed + i

    # Two groups of slots (even, odd) take turns: while the workers step one group, JAX
    # computes the other group's actions (dispatch is asynchronous).
    num_groups = 2 if num_envs >= 2 and pipeline else 1
    groups = [np.arange(g, num_envs, num_groups) for g in range(num_groups)]

    batch = len(groups[0])  # every call has this many rows (padded), so one compilation
    compile_s = _compile(policy, state, batch, pool.obs_dim, root_key)

    wall_start = time.perf_counter()
    env_time_start = pool.env_time()
    bar = _progress(episodes, f"eval m_inf={m_inf} n={n}", progress)
    results, calls, obs = _run_episodes(pool, policy, state, groups, episodes, seed, root_key, bar)
    wall = time.perf_counter() - wall_start
    env_time = pool.env_time() - env_time_start
    policy_ms = _time_policy(policy, state, obs[np.resize(groups[0], batch)], root_key)

    results.sort(key=lambda r: r["episode"])
    timings = {"batch": batch, "calls": calls, "policy_ms": policy_ms, "env_time": env_time}
    timings.update(wall=wall, compile_s=compile_s, workers=pool.workers, num_envs=num_envs)
    out = _summary(results, dataset, task, episodes, seed, m_inf, n, timings)
    if video_dir is not None and video_episodes > 0:
        out["videos"] = record_videos(
            agent, state, dataset, task, seed, policy, len(groups[0]), video_dir, video_episodes
        )
    return out


def _compile(policy, state, batch: int, obs_dim: int, root_key) -> float:
    """Seconds to compile (and run once) the policy at the evaluation's padded batch."""
    import jax

    start = time.perf_counter()
    ids = np.zeros(batch, np.int32)
    zeros = np.zeros((batch, obs_dim), np.float32)
    jax.block_until_ready(policy(state, zeros, ids, ids, root_key))
    return time.perf_counter() - start


def _summary(results, dataset, task, episodes, seed, m_inf, n, timings: dict) -> dict:
    """evaluate_policy's result: means over the (sorted) episodes, per-episode lists, timings."""
    batch, policy_ms = timings["batch"], timings["policy_ms"]
    return {
        "success": float(np.mean([r["success"] for r in results])),
        "return": float(np.mean([r["return"] for r in results])),
        "ms_per_action": policy_ms / batch,
        "episodes": episodes,
        "seed": seed,  # episode i resets with seed + i
        "m_inf": int(m_inf),
        "n": int(n),
        "dataset": dataset,
        "task": int(task),
        "env": env_name(dataset, task),
        "length": float(np.mean([r["length"] for r in results])),
        "num_envs": timings["num_envs"],
        "workers": timings["workers"],
        "policy_calls": timings["calls"],
        "policy_ms_per_call": policy_ms,
        "policy_batch": batch,
        "env_ms_per_step": 1e3 * timings["env_time"] / sum(r["length"] for r in results),
        "wall_s": timings["wall"],
        "compile_s": timings["compile_s"],
        "per_episode": {
            "reset_seed": [seed + r["episode"] for r in results],
            **{
                key: [r[key] for r in results]
                for key in ("success", "return", "length", "final_obs_sum")
            },
        },
    }


def _run_episodes(pool, policy, state, groups, episodes, seed, root_key, bar):
    """Episodes 0..episodes-1 over the pool's slots, the groups of slots taking turns: the
    finished episodes' results, the number of policy calls and the slots' last observations."""
    batch = len(groups[0])
    obs, episode, t = pool.begin(episodes, seed)
    results: list[dict] = []
    calls = 0

    def launch(slots):
        rows = np.resize(slots, batch)  # pad by repeating slots; their extra actions are dropped
        return policy(state, obs[rows], seed + np.maximum(episode[rows], 0), t[rows], root_key)

    pending = [launch(slots) for slots in groups]
    while (episode >= 0).any():
        for g, slots in enumerate(groups):
            actions = np.asarray(pending[g])[: len(slots)]
            calls += 1
            pool.step_send(slots, actions)
            done_slots, obs[done_slots], episode[done_slots], t[done_slots], finished = (
                pool.step_recv()
            )
            pending[g] = launch(slots)
            results.extend(finished)
            if bar is not None and finished:
                bar.update(len(finished))
    if bar is not None:
        bar.close()
    return results, calls, obs


def _time_policy(policy, state, obs, root_key, repeats: int = 5) -> float:
    """Median milliseconds of one synchronous batched policy call at the evaluation's shape."""
    import jax

    ids = np.zeros(len(obs), np.int32)
    times = []
    for i in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(policy(state, obs, ids + i, ids, root_key))
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))


def _progress(total: int, desc: str, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="ep", leave=False)


def _save_video(stem: Path, frames: list[np.ndarray]) -> Path:
    """MP4 through imageio's ffmpeg plugin (pip install imageio-ffmpeg); a GIF without it."""
    import imageio.v2 as imageio

    try:
        import imageio_ffmpeg  # noqa: F401
    except ImportError:
        path = stem.with_suffix(".gif")
        imageio.mimsave(path, frames, duration=1000 / 30, loop=0)
        return path
    path = stem.with_suffix(".mp4")
    imageio.mimsave(path, frames, fps=30)
    return path


def record_videos(
    agent, state, dataset, task, seed, policy, batch, video_dir, count, size=200
) -> list[str]:
    """Replay episodes 0..count-1 (same seeds and keys as the evaluation) and write MP4s."""
    import jax

    os.environ.setdefault("MUJOCO_GL", "egl")
    video_dir = Path(video_dir)
    video_dir.mkdir(parents=True, exist_ok=True)
    env = make_env(dataset, task, render_mode="rgb_array", width=size, height=size)
    root_key = jax.random.key(0)  # episode keys fold in seed + i
    paths = []
    for episode in range(count):
        obs, _ = env.reset(seed=seed + episode)
        frames = [env.render()]
        rows = np.zeros((batch, obs.shape[-1]), np.float32)
        done, t, info = False, 0, {}
        while not done:
            # Same padded shape as the evaluation, so the same compiled call and numerics.
            rows[0] = obs
            ids = np.full(batch, seed + episode, np.int32)
            action = np.asarray(policy(state, rows, ids, np.full(batch, t, np.int32), root_key))
            obs, _, terminated, truncated, info = env.step(action[0])
            frames.append(env.render())
            done, t = terminated or truncated, t + 1
        paths.append(
            str(_save_video(video_dir / f"episode{episode}_success{int(info['success'])}", frames))
        )
    env.close()
    return paths
