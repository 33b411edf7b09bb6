"""Env workers and pools for `sorlab.evaluation.policy`: a fixed number of env slots, split
over worker processes that step MuJoCo.

An env worker is this module run as a script (`python -m sorlab.evaluation.envpool DATASET
TASK NUM_ENVS`): pickled commands on stdin, pickled replies on stdout. Pools are cached per
process (periodic evaluations during training start their workers once); `close_pools` stops
them, and runs at exit. Importing this module loads neither JAX nor MuJoCo.
"""

from __future__ import annotations

import atexit
import os
import pickle
import subprocess
import sys
import time
from collections import deque
from typing import Any

import numpy as np

MAX_ENVS = 64  # env slots at most; more episodes queue behind them
MIN_ENVS_FOR_WORKERS = 8  # fewer env slots are stepped in this process by default
WORKER_MODULE = "sorlab.evaluation.envpool"  # run by each env worker process


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
    """An env worker (`python -m sorlab.evaluation.envpool DATASET TASK NUM_ENVS`): pickled commands on
    stdin, pickled replies on stdout. A subprocess rather than multiprocessing, so callers need
    no `if __name__ == "__main__"` guard and nothing JAX started is forked."""
    import sys

    from sorlab.quiet import quiet_third_party_warnings

    quiet_third_party_warnings()
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
        cmd = [sys.executable, "-m", WORKER_MODULE, dataset, str(task), str(num_envs)]
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


if __name__ == "__main__":
    _worker_main()
