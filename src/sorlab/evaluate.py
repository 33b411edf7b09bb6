"""Vectorised policy evaluation on real OGBench environments (`sorlab evaluate`).

Many episodes run at once: a fixed number of env slots, split over worker processes that step
MuJoCo, and one batched, jitted policy call per step over a group of slots (padded to a fixed
batch, so it compiles once per (M_inf, N)). Two groups alternate, so the policy computes one
group's actions while the workers step the other. Episode `i` resets with seed `seed + i` and
draws its policy noise at step `t` from `fold_in(fold_in(key(0), seed + i), t)`: its result
depends on `seed + i` alone, not on how many episodes run side by side or in which slot. A run
repeats exactly, and vectorised evaluation matches one-episode-at-a-time evaluation.

Success is `info['success']` at the episode's last step, as OGBench's own evaluation reads it.
"""

from __future__ import annotations

import argparse
import atexit
import functools
import json
import os
import pickle
import subprocess
import sys
import time
from collections import deque
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

MAX_ENVS = 64  # env slots at most; more episodes queue behind them
# `sorlab evaluate`'s default slots: creating one cube env takes ~0.9 s, so a one-off evaluation
# of 50 episodes is quicker with 16 slots (~18 s in all) than with 50 (~29 s), measured on 2 cores.
CLI_ENVS = 16
MIN_ENVS_FOR_WORKERS = 8  # fewer env slots are stepped in this process by default


def env_name(dataset: str, task: int) -> str:
    """`cube-single-play-v0`, 2 -> `cube-single-play-singletask-task2-v0`."""
    from sorlab.data import env_name as data_env_name

    return data_env_name(dataset, task)


def make_env(dataset: str, task: int, **env_kwargs: Any):
    """The evaluation env (sorlab.data.make_env: ogbench's own, success_timing='post')."""
    from sorlab.data import make_env as data_make_env

    return data_make_env(dataset, task, **env_kwargs)


# ----------------------------------------------------------------------------- env slots


class EnvSlots:
    """A fixed set of envs that run queued episodes; an env that finishes starts the next."""

    def __init__(self, dataset: str, task: int, num_envs: int):
        self.envs = [make_env(dataset, task) for _ in range(num_envs)]
        self.obs_dim = int(np.prod(self.envs[0].observation_space.shape))
        self.act_dim = int(np.prod(self.envs[0].action_space.shape))
        self.env_time = 0.0  # seconds inside env.step, over the slots' lifetime

    def begin(self, episodes: list[int], seed: int) -> tuple:
        self.queue = deque(episodes)
        self.seed = seed
        n = len(self.envs)
        self.obs = np.zeros((n, self.obs_dim), np.float32)
        self.episode = np.full(n, -1, np.int32)
        self.t = np.zeros(n, np.int32)
        self.ret = np.zeros(n, np.float64)
        for slot in range(n):
            self._start(slot)
        return self.obs.copy(), self.episode.copy(), self.t.copy(), []

    def _start(self, slot: int) -> None:
        if not self.queue:
            self.episode[slot] = -1
            return
        episode = self.queue.popleft()
        obs, _ = self.envs[slot].reset(seed=self.seed + episode)
        self.obs[slot] = obs
        self.episode[slot] = episode
        self.t[slot] = 0
        self.ret[slot] = 0.0

    def step(self, slots: np.ndarray, actions: np.ndarray) -> tuple:
        """Step the live envs among `slots` with `actions` (one row per slot); return those
        slots' (obs, episode ids, t) and the finished episodes' results."""
        start = time.perf_counter()
        finished = []
        for slot, action in zip(slots, actions, strict=True):
            if self.episode[slot] < 0:
                continue
            env = self.envs[slot]
            obs, reward, terminated, truncated, info = env.step(action)
            self.obs[slot] = obs
            self.ret[slot] += reward
            self.t[slot] += 1
            if terminated or truncated:
                finished.append(
                    {
                        "episode": int(self.episode[slot]),
                        "success": float(info["success"]),
                        "return": float(self.ret[slot]),
                        "length": int(self.t[slot]),
                        # A fingerprint of the final state, to compare runs exactly.
                        "final_obs_sum": float(np.sum(obs, dtype=np.float64)),
                    }
                )
                self._start(slot)
        self.env_time += time.perf_counter() - start
        return self.obs[slots], self.episode[slots], self.t[slots], finished


def _worker_main() -> None:
    """An env worker (`python -m sorlab.evaluate DATASET TASK NUM_ENVS`): pickled commands on
    stdin, pickled replies on stdout. A subprocess rather than multiprocessing, so callers need
    no `if __name__ == "__main__"` guard and nothing JAX started is forked."""
    import sys

    dataset, task, num_envs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    # Replies go to the original stdout; anything printed (warnings) goes to stderr.
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    inp = sys.stdin.buffer

    def send(obj):
        pickle.dump(obj, out, protocol=pickle.HIGHEST_PROTOCOL)
        out.flush()

    slots = EnvSlots(dataset, task, num_envs)
    send((slots.obs_dim, slots.act_dim))
    while True:
        try:
            cmd, arg = pickle.load(inp)
        except EOFError:
            return
        if cmd == "begin":
            send(slots.begin(*arg))
        elif cmd == "step":
            send(slots.step(*arg))
        elif cmd == "env_time":
            send(slots.env_time)
        elif cmd == "close":
            return


class _Worker:
    """The parent's handle on one env worker process."""

    def __init__(self, dataset: str, task: int, num_envs: int):
        env = dict(os.environ, MUJOCO_GL=os.environ.get("MUJOCO_GL", "egl"))
        cmd = [sys.executable, "-m", "sorlab.evaluate", dataset, str(task), str(num_envs)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)

    def send(self, obj) -> None:
        pickle.dump(obj, self.proc.stdin, protocol=pickle.HIGHEST_PROTOCOL)
        self.proc.stdin.flush()

    def recv(self):
        try:
            return pickle.load(self.proc.stdout)
        except EOFError:
            code = self.proc.wait()
            raise RuntimeError(f"env worker exited with code {code} (its error is above)") from None

    def close(self) -> None:
        try:
            self.send(("close", None))
            self.proc.stdin.close()
        except (BrokenPipeError, OSError, ValueError):
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class EnvPool:
    """`num_envs` env slots spread over `workers` processes (0 = all in this process).

    `step_send(slots, actions)` starts stepping a group of slots and returns at once, so the
    caller can compute the other group's actions meanwhile; `step_recv()` collects the result.
    """

    def __init__(self, dataset: str, task: int, num_envs: int, workers: int | None = None):
        if workers is None:
            # Worker start-up (~2 s each) outweighs stepping a handful of envs in this process.
            workers = 0 if num_envs < MIN_ENVS_FOR_WORKERS else os.cpu_count() or 1
        workers = min(workers, num_envs)
        self.num_envs = num_envs
        self.workers = workers
        if workers == 0:
            self.local = EnvSlots(dataset, task, num_envs)
            self.obs_dim, self.act_dim = self.local.obs_dim, self.local.act_dim
            self.bounds = np.array([0, num_envs])
            return
        self.local = None
        sizes = [len(part) for part in np.array_split(np.arange(num_envs), workers)]
        self.bounds = np.cumsum([0, *sizes])
        self.conns = [_Worker(dataset, task, size) for size in sizes]
        dims = [conn.recv() for conn in self.conns]
        self.obs_dim, self.act_dim = dims[0]

    def begin(self, episodes: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Queue episodes 0..episodes-1 (worker w owns ids w, w + W, ...); (obs, episode, t)."""
        if self.local is not None:
            return self.local.begin(list(range(episodes)), seed)[:3]
        for w, conn in enumerate(self.conns):
            conn.send(("begin", (list(range(w, episodes, self.workers)), seed)))
        replies = [conn.recv() for conn in self.conns]
        return tuple(np.concatenate([r[i] for r in replies]) for i in range(3))

    def step_send(self, slots: np.ndarray, actions: np.ndarray) -> None:
        """Start stepping global `slots` (sorted) with `actions`."""
        self._pending = []
        for w in range(len(self.bounds) - 1):
            lo, hi = self.bounds[w], self.bounds[w + 1]
            mine = (slots >= lo) & (slots < hi)
            if not mine.any():
                continue
            self._pending.append((w, slots[mine]))
            if self.local is None:
                self.conns[w].send(("step", (slots[mine] - lo, actions[mine])))
            else:
                self._local_args = (slots[mine], actions[mine])

    def step_recv(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list]:
        """(slots, obs, episode, t, finished) of the group sent last."""
        replies = []
        for w, _ in self._pending:
            if self.local is None:
                replies.append(self.conns[w].recv())
            else:
                replies.append(self.local.step(*self._local_args))
        slots = np.concatenate([s for _, s in self._pending])
        obs, episode, t = (np.concatenate([r[i] for r in replies]) for i in range(3))
        return slots, obs, episode, t, [f for r in replies for f in r[3]]

    def env_time(self) -> float:
        """Seconds spent in env.step, summed over workers (CPU time, not wall)."""
        if self.local is not None:
            return self.local.env_time
        for conn in self.conns:
            conn.send(("env_time", None))
        return float(sum(conn.recv() for conn in self.conns))

    def close(self) -> None:
        if self.local is not None:
            return
        for conn in self.conns:
            conn.close()
        self.conns = []


_POOLS: dict[tuple, EnvPool] = {}


def get_pool(dataset: str, task: int, num_envs: int, workers: int | None = None) -> EnvPool:
    """A cached pool, so periodic evaluations during training start their workers once."""
    key = (dataset, task, num_envs, workers)
    if key not in _POOLS:
        _POOLS[key] = EnvPool(dataset, task, num_envs, workers)
    return _POOLS[key]


@atexit.register
def close_pools() -> None:
    for pool in _POOLS.values():
        pool.close()
    _POOLS.clear()


# ----------------------------------------------------------------------------- policy


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

    from sorlab.train import _abstract_state, _to_tuples

    state = None
    for m_inf, n in dict.fromkeys(points):
        if m_inf < 1 or n < 1:
            raise ValueError(f"m_inf and n must be >= 1, got m_inf={m_inf}, n={n}")
        if state is None:
            state = _abstract_state(agent, _to_tuples(dict(agent_config)), obs_dim, action_dim)
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
    one per core, or 0 = in this process below MIN_ENVS_FOR_WORKERS slots); `num_envs` env slots (default min(episodes, MAX_ENVS));
    `pipeline` splits the slots in two groups that alternate between policy and MuJoCo.
    Results do not depend on workers, num_envs or pipeline.
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

    start = time.perf_counter()
    batch = len(groups[0])  # every call has this many rows (padded), so one compilation
    ids = np.zeros(batch, np.int32)
    zeros = np.zeros((batch, pool.obs_dim), np.float32)
    jax.block_until_ready(policy(state, zeros, ids, ids, root_key))
    compile_s = time.perf_counter() - start

    wall_start = time.perf_counter()
    env_time_start = pool.env_time()
    obs, episode, t = pool.begin(episodes, seed)
    results: list[dict] = []
    calls = 0
    bar = _progress(episodes, f"eval m_inf={m_inf} n={n}", progress)

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
    wall = time.perf_counter() - wall_start
    env_time = pool.env_time() - env_time_start
    policy_ms = _time_policy(policy, state, obs[np.resize(groups[0], batch)], root_key)

    results.sort(key=lambda r: r["episode"])
    out = {
        "success": float(np.mean([r["success"] for r in results])),
        "return": float(np.mean([r["return"] for r in results])),
        "ms_per_action": policy_ms / batch,
        "episodes": episodes,
        "seed": seed,
        "m_inf": int(m_inf),
        "n": int(n),
        "dataset": dataset,
        "task": int(task),
        "env": env_name(dataset, task),
        "length": float(np.mean([r["length"] for r in results])),
        "num_envs": num_envs,
        "workers": pool.workers,
        "policy_calls": calls,
        "policy_ms_per_call": policy_ms,
        "policy_batch": batch,
        "env_ms_per_step": 1e3 * env_time / sum(r["length"] for r in results),
        "wall_s": wall,
        "compile_s": compile_s,
        "per_episode": {
            key: [r[key] for r in results]
            for key in ("success", "return", "length", "final_obs_sum")
        },
    }
    if video_dir is not None and video_episodes > 0:
        out["videos"] = record_videos(
            agent, state, dataset, task, seed, policy, len(groups[0]), video_dir, video_episodes
        )
    return out


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


# ----------------------------------------------------------------------------- CLI


def run_settings(config: dict) -> tuple[str, int]:
    """(dataset name, task) from a run's config.json (as `sorlab train` writes it)."""
    if "dataset_name" not in config and "dataset" not in config:
        raise KeyError("run config lacks dataset_name (and dataset)")
    if "task" not in config:
        raise KeyError("run config lacks task")
    dataset = config.get("dataset_name") or Path(str(config["dataset"])).name.removesuffix(".npz")
    return dataset, int(config["task"])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", help="a training run directory (results/runs/...)")
    parser.add_argument("--m-inf", type=int, nargs="+", default=[1], help="inference steps")
    parser.add_argument("--n", type=int, nargs="+", default=[1], help="best-of-N candidates")
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0, help="episode i resets with seed+i")
    parser.add_argument("--out", default=None, help="output folder (default RUN_DIR/eval)")
    parser.add_argument("--workers", type=int, default=None, help="env processes (0 = inline)")
    parser.add_argument(
        "--num-envs",
        type=int,
        default=CLI_ENVS,
        help=f"env slots stepped side by side (default {CLI_ENVS}; results do not depend on it)",
    )
    parser.add_argument("--step", type=int, default=None, help="checkpoint step (default newest)")
    parser.add_argument("--video", type=int, default=0, help="record this many episodes as MP4")


def main(args: argparse.Namespace) -> int:
    from sorlab.train import TrainError

    try:
        return _evaluate_run(args)
    except (TrainError, ValueError, KeyError) as err:  # bad run directory or grid: one line
        print(f"sorlab evaluate: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # e.g. a read-only or full output folder
        from sorlab.rundir import describe_os_error

        print(f"sorlab evaluate: error: {describe_os_error(err)}", file=sys.stderr)
        return 2


def _evaluate_run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from sorlab.train import latest_checkpoint, load_run

    for name in ("episodes", "num_envs"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    run_dir = Path(args.run_dir)
    agent, state, config = load_run(run_dir, step=args.step)
    step = args.step if args.step is not None else latest_checkpoint(run_dir)
    dataset, task = run_settings(config)
    grid = [(m, n) for m in args.m_inf for n in args.n]
    # Before any episode runs.
    check_inference(agent, config["agent_config"], config["obs_dim"], config["action_dim"], grid)
    out_dir = Path(args.out) if args.out else run_dir / "eval"
    out_dir.mkdir(parents=True, exist_ok=True)
    for m_inf, n in tqdm(grid, desc=f"evaluate {run_dir}", unit="point"):
        video_dir = out_dir / f"video_{m_inf}_{n}" if args.video else None
        result = evaluate_policy(
            agent,
            state,
            dataset,
            task,
            args.episodes,
            args.seed,
            workers=args.workers,
            m_inf=m_inf,
            n=n,
            num_envs=min(args.num_envs, args.episodes),
            video_dir=video_dir,
            video_episodes=args.video,
            progress=True,
        )
        result["run_dir"] = str(run_dir)
        result["checkpoint_step"] = step
        path = out_dir / f"{m_inf}_{n}.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(result, indent=1) + "\n")
        tmp.replace(path)
        tqdm.write(
            f"{path}: success {result['success']:.3f}  return {result['return']:.1f}  "
            f"{result['ms_per_action']:.3f} ms/action"
        )
    close_pools()
    return 0


if __name__ == "__main__":
    _worker_main()
