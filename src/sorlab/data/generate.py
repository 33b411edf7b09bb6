"""`sorlab data generate NAME`: regenerate an OGBench dataset offline with OGBench's oracles.

Follows OGBench's published protocol (data_gen_scripts/generate_manipspace.py and
generate_locomaze.py): 'play' data from the non-Markovian plan oracles with a new target after
every finished sub-task, 'navigate' data from the maze's oracle subgoal direction plus Gaussian
noise. Each episode gets its own seed from np.random.SeedSequence(seed).spawn, so the files do
not depend on how many worker processes share the work.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from sorlab import layout
from sorlab.data import provenance
from sorlab.data.names import GENERATABLE, VAL_SUFFIX, DatasetError, GenSpec, gen_spec
from sorlab.quiet import quiet_third_party_warnings

DEFAULT_OUT = "resources/datasets"

# Per-process collector, built once by _init_worker (or in-process when workers == 1).
_COLLECTOR = None


def default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


# ----------------------------------------------------------------------------- episode seeding
def _seed_attempt(episode_seed: np.random.SeedSequence, attempt: int) -> tuple[int, int]:
    """(env seed, legacy np.random seed) for one attempt at an episode.

    The oracles draw from the global np.random, the env from its own np_random: both are reseeded
    at the start of every attempt, so an episode depends only on its own seed.
    """
    ss = np.random.SeedSequence(episode_seed.entropy, spawn_key=(*episode_seed.spawn_key, attempt))
    env_seed, np_seed = ss.generate_state(2)
    return int(env_seed), int(np_seed)


# ----------------------------------------------------------------------------- manipulation ('play')
class _PlayCollector:
    def __init__(self, dataset: str, spec: GenSpec, episode_steps: int):
        import gymnasium
        import ogbench.manipspace  # noqa: F401  (registers the environments)
        from ogbench.manipspace.oracles.plan.button_plan import ButtonPlanOracle
        from ogbench.manipspace.oracles.plan.cube_plan import CubePlanOracle
        from ogbench.manipspace.oracles.plan.drawer_plan import DrawerPlanOracle
        from ogbench.manipspace.oracles.plan.window_plan import WindowPlanOracle

        self.dataset = dataset
        self.env = gymnasium.make(
            spec.env_id,
            terminate_at_goal=False,
            mode="data_collection",
            max_episode_steps=episode_steps,
        )
        noise = dict(noise=spec.noise, noise_smoothing=spec.noise_smoothing)
        if dataset.startswith("cube"):
            self.oracles = {"cube": CubePlanOracle(env=self.env, **noise)}
        elif dataset.startswith("scene"):
            self.oracles = {
                "cube": CubePlanOracle(env=self.env, **noise),
                "button": ButtonPlanOracle(env=self.env, **noise),
                "drawer": DrawerPlanOracle(env=self.env, **noise),
                "window": WindowPlanOracle(env=self.env, **noise),
            }
        elif dataset.startswith("puzzle"):
            self.oracles = {
                "button": ButtonPlanOracle(env=self.env, gripper_always_closed=True, **noise)
            }
        else:
            raise DatasetError(f"no play oracle for {dataset!r}")
        self.has_buttons = hasattr(self.env.unwrapped, "_cur_button_states")

    def _p_stack(self) -> float:
        # Per-episode probability of stacking a cube on another one (OGBench's values).
        if "single" in self.dataset:
            return 0.0
        if "double" in self.dataset:
            return np.random.uniform(0.0, 0.25)
        if "triple" in self.dataset:
            return np.random.uniform(0.05, 0.35)
        if "quadruple" in self.dataset:
            return np.random.uniform(0.1, 0.5)
        return 0.5

    def episode(self, episode_seed: np.random.SeedSequence) -> dict[str, np.ndarray]:
        attempt = 0
        while True:
            env_seed, np_seed = _seed_attempt(episode_seed, attempt)
            np.random.seed(np_seed)
            episode = self._rollout(env_seed)
            # OGBench retries scene episodes where the cube leaves the cameras' view.
            if not self.dataset.startswith("scene") or _scene_healthy(episode["qpos"]):
                return episode
            attempt += 1

    def _rollout(self, env_seed: int) -> dict[str, np.ndarray]:
        env = self.env
        ob, info = env.reset(seed=env_seed)
        p_stack = self._p_stack()
        oracle = self.oracles[info["privileged/target_task"]]
        oracle.reset(ob, info)
        steps = _new_steps(*(["button_states"] if self.has_buttons else []))
        done = False
        while not done:
            action = np.clip(np.asarray(oracle.select_action(ob, info)), -1, 1)
            next_ob, _, terminated, truncated, info = env.step(action)
            done = terminated or truncated
            if oracle.done:
                # Sub-task finished: pick a new target and the oracle for it.
                oracle_ob, oracle_info = env.unwrapped.set_new_target(p_stack=p_stack)
                oracle = self.oracles[oracle_info["privileged/target_task"]]
                oracle.reset(oracle_ob, oracle_info)
            _record(steps, ob, action, done, info)
            if self.has_buttons:
                steps["button_states"].append(info["prev_button_states"])
            ob = next_ob
        return _to_arrays(steps)


def _scene_healthy(qpos: np.ndarray) -> bool:
    """OGBench's check: the cube stays visible unless it is inside the drawer."""
    xyz = qpos[:, 14:17]
    too_far_right = (xyz[:, 1] >= 0.29).any()
    too_far_left = ((xyz[:, 1] <= -0.3) & ((xyz[:, 2] < 0.06) | (xyz[:, 2] > 0.08))).any()
    return not (too_far_right or too_far_left)


# ----------------------------------------------------------------------------- mazes ('navigate')
class _NavigateCollector:
    def __init__(self, dataset: str, spec: GenSpec, episode_steps: int):
        import gymnasium
        import ogbench.locomaze  # noqa: F401  (registers the environments)

        if not spec.env_id.startswith("pointmaze"):
            raise DatasetError(
                f"{dataset!r} needs a trained expert; only pointmaze is generated here"
            )
        self.noise = spec.noise
        self.env = gymnasium.make(
            spec.env_id, terminate_at_goal=False, max_episode_steps=episode_steps
        )
        self.all_cells, self.vertex_cells = _maze_cells(self.env.unwrapped.maze_map)

    def episode(self, episode_seed: np.random.SeedSequence) -> dict[str, np.ndarray]:
        env_seed, np_seed = _seed_attempt(episode_seed, 0)
        np.random.seed(np_seed)
        env, maze = self.env, self.env.unwrapped
        maze.action_space.seed(env_seed)  # the maze's reset takes a few random settling steps
        init_ij = self.all_cells[np.random.randint(len(self.all_cells))]
        goal_ij = self.vertex_cells[np.random.randint(len(self.vertex_cells))]
        ob, _ = env.reset(
            seed=env_seed, options=dict(task_info=dict(init_ij=init_ij, goal_ij=goal_ij))
        )
        steps = _new_steps()
        done = False
        while not done:
            # The point-mass "expert" is the unit direction to the oracle subgoal.
            xy = maze.get_xy()
            subgoal_xy, _ = maze.get_oracle_subgoal(xy, maze.cur_goal_xy)
            direction = (subgoal_xy - xy) / (np.linalg.norm(subgoal_xy - xy) + 1e-6)
            action = np.clip(direction + np.random.normal(0, self.noise, direction.shape), -1, 1)
            next_ob, _, terminated, truncated, info = env.step(action)
            done = terminated or truncated
            if info["success"]:
                # 'navigate': a new goal every time the current one is reached.
                maze.set_goal(self.vertex_cells[np.random.randint(len(self.vertex_cells))])
            _record(steps, ob, action, done, info)
            ob = next_ob
        return _to_arrays(steps)


def _maze_cells(maze_map: np.ndarray) -> tuple[list, list]:
    """All free cells (start states) and the free cells that are not straight corridors (goals)."""
    all_cells, vertex_cells = [], []
    for i in range(maze_map.shape[0]):
        for j in range(maze_map.shape[1]):
            if maze_map[i, j] != 0:
                continue
            all_cells.append((i, j))
            vertical = maze_map[i - 1, j] == 0 and maze_map[i + 1, j] == 0
            horizontal = maze_map[i, j - 1] == 0 and maze_map[i, j + 1] == 0
            walls_lr = maze_map[i, j - 1] == 1 and maze_map[i, j + 1] == 1
            walls_ud = maze_map[i - 1, j] == 1 and maze_map[i + 1, j] == 1
            if (vertical and walls_lr) or (horizontal and walls_ud):
                continue
            vertex_cells.append((i, j))
    return all_cells, vertex_cells


# ----------------------------------------------------------------------------- files
# dtypes of the official files (generate_manipspace.py / generate_locomaze.py).
_DTYPES = {"terminals": bool, "button_states": np.int64}


def _new_steps(*extra: str) -> dict[str, list]:
    """Empty per-step lists of one episode: the keys every OGBench dataset file has, then `extra`."""
    return {key: [] for key in ("observations", "actions", "terminals", "qpos", "qvel", *extra)}


def _record(steps: dict[str, list], ob, action, done: bool, info: dict) -> None:
    """Append one step: the observation before `action`, and the simulator state it came from."""
    steps["observations"].append(ob)
    steps["actions"].append(action)
    steps["terminals"].append(done)
    steps["qpos"].append(info["prev_qpos"])
    steps["qvel"].append(info["prev_qvel"])


def _to_arrays(steps: dict[str, list]) -> dict[str, np.ndarray]:
    return {k: np.asarray(v, dtype=_DTYPES.get(k, np.float32)) for k, v in steps.items()}


def _concat(episodes: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {k: np.concatenate([ep[k] for ep in episodes]) for k in episodes[0]}


def _write_tmp(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    """np.savez_compressed to a temporary name in the same directory (renamed by the caller)."""
    tmp = layout.tmp_path(path)
    try:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def _with_provenance(
    arrays: dict[str, np.ndarray], dataset: str, split: str, episodes: int, seed: int, steps: int
) -> dict[str, np.ndarray]:
    """The arrays as collected, plus how they were made (sorlab.data.provenance) under the
    extra key `provenance`: the data arrays themselves are untouched."""
    record = provenance.generated_record(dataset, split, arrays, episodes, seed, steps)
    return provenance.with_record(arrays, record)


def save_pair(train_path: Path, train: dict, val_path: Path, val: dict) -> None:
    """Write a train/val pair so that an interruption never leaves a new file beside an old
    one: both are written to temporary names first, the old train file goes before the val
    file is renamed, and the train file comes last (a train file implies its val file)."""
    tmps = []
    try:
        tmps.append(_write_tmp(val_path, val))
        tmps.append(_write_tmp(train_path, train))
        train_path.unlink(missing_ok=True)
        os.replace(tmps[0], val_path)
        os.replace(tmps[1], train_path)
    finally:
        for tmp in tmps:
            tmp.unlink(missing_ok=True)


def check_writable(out_dir: Path) -> None:
    """Create `out_dir` and write a probe file there, so that a read-only or missing location is
    named before any episode is collected."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / f".write-probe{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise DatasetError(
            f"cannot write to {out_dir}: {err.strerror or err}; choose a writable --out"
        ) from None


# ----------------------------------------------------------------------------- driver
def _make_collector(dataset: str, episode_steps: int):
    spec = gen_spec(dataset)
    cls = _PlayCollector if spec.kind == "play" else _NavigateCollector
    return cls(dataset, spec, episode_steps)


def _init_worker(dataset: str, episode_steps: int) -> None:
    global _COLLECTOR
    quiet_third_party_warnings()  # a spawned worker starts with the default filters
    _COLLECTOR = _make_collector(dataset, episode_steps)


def _run_episode(episode_seed: np.random.SeedSequence) -> dict[str, np.ndarray]:
    return _COLLECTOR.episode(episode_seed)


def collect(
    dataset: str,
    episodes: int,
    seed: int = 0,
    workers: int = 1,
    episode_steps: int | None = None,
    progress: bool = True,
) -> list[dict[str, np.ndarray]]:
    """Roll out `episodes` episodes (in order of their seeds) over `workers` processes."""
    spec = gen_spec(dataset)
    episode_steps = episode_steps or spec.episode_steps
    seeds = np.random.SeedSequence(seed).spawn(episodes)
    workers = max(1, min(workers, episodes))
    bar = tqdm(total=episodes, desc=dataset, unit="ep", disable=not progress, file=sys.stderr)
    out = []
    with bar:
        if workers == 1:
            # In-process: leave the caller's global np.random as it was.
            saved = np.random.get_state()
            try:
                _init_worker(dataset, episode_steps)
                for ss in seeds:
                    out.append(_run_episode(ss))
                    bar.update()
            finally:
                np.random.set_state(saved)
        else:
            # 'spawn': no forked copies of a parent that may hold JAX/MuJoCo threads.
            ctx = mp.get_context("spawn")
            with ctx.Pool(
                workers, initializer=_init_worker, initargs=(dataset, episode_steps)
            ) as pool:
                for episode in pool.imap(_run_episode, seeds):
                    out.append(episode)
                    bar.update()
    return out


def generate(
    dataset: str,
    out_dir: str | Path = DEFAULT_OUT,
    episodes: int | None = None,
    seed: int = 0,
    workers: int | None = None,
    episode_steps: int | None = None,
    progress: bool = True,
) -> tuple[Path, Path]:
    """Write out_dir/<dataset>.npz (`episodes` episodes) and <dataset>-val.npz (episodes // 10, >= 1),
    each with its provenance record (sorlab.data.provenance) under the key `provenance`."""
    spec = gen_spec(dataset)
    episodes = spec.episodes if episodes is None else episodes
    if episodes < 1:
        raise DatasetError(f"--episodes must be at least 1, got {episodes}")
    if episode_steps is not None and episode_steps < 2:
        raise DatasetError(f"--episode-steps must be at least 2, got {episode_steps}")
    val_episodes = max(1, episodes // 10)
    workers = default_workers() if workers is None else workers
    out_dir = Path(out_dir)
    check_writable(out_dir)
    # Train episodes take the first seeds, val episodes the next ones (as OGBench splits one run).
    rollouts = collect(dataset, episodes + val_episodes, seed, workers, episode_steps, progress)
    steps = episode_steps or spec.episode_steps
    train, val = (
        _with_provenance(_concat(part), dataset, split, episodes, seed, steps)
        for part, split in ((rollouts[:episodes], "train"), (rollouts[episodes:], "val"))
    )
    train_path, val_path = out_dir / f"{dataset}.npz", out_dir / f"{dataset}{VAL_SUFFIX}.npz"
    try:
        save_pair(train_path, train, val_path, val)
    except OSError as err:  # e.g. the disk filled up while writing
        raise DatasetError(f"cannot write {train_path} and {val_path}: {err}") from None
    return train_path, val_path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help=f"dataset to generate; one of: {', '.join(GENERATABLE)}")
    parser.add_argument(
        "--episodes",
        type=int,
        default=None,
        help="training episodes (default: official size); the val file gets N/10",
    )
    parser.add_argument("--seed", type=int, default=0, help="master seed (default 0)")
    parser.add_argument(
        "--out", default=DEFAULT_OUT, help=f"output directory (default {DEFAULT_OUT})"
    )
    parser.add_argument(
        "--workers", type=int, default=None, help="worker processes (default: all cores)"
    )
    parser.add_argument(
        "--episode-steps",
        type=int,
        default=None,
        help="steps per episode (default: official, 1001 or 2001)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def main(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    try:
        train_path, val_path = generate(
            args.name,
            args.out,
            args.episodes,
            args.seed,
            args.workers,
            args.episode_steps,
            not args.quiet,
        )
    except DatasetError as err:
        print(f"sorlab data generate: {err}", file=sys.stderr)
        return 2
    wall = time.perf_counter() - start
    for path in (train_path, val_path):
        with np.load(path) as f:
            n = len(f["terminals"])
        print(f"wrote {path} ({n} steps, {path.stat().st_size / 2**20:.1f} MiB)")
    print(f"generated {args.name} (seed {args.seed}) in {wall:.1f} s")
    return 0
