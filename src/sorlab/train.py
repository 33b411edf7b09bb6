"""`sorlab train`: train one (agent, dataset, task, seed) run into a resumable run directory.

The whole dataset lives in device memory. Updates run in chunks: one jitted `lax.scan` draws
each batch on the device and applies `agent.update`, so there is no Python work per update.
Chunk boundaries fall on every multiple of the chunk size and of the log, evaluation and
checkpoint intervals, so every logged, evaluated and checkpointed step ends a chunk.

Randomness depends only on (seed, step): update `s` (1-based) uses
`fold_in(train_key, s)`, split into the batch-index key and the update key. A run resumed from
a checkpoint therefore makes exactly the same updates as an uninterrupted run, whatever the
chunk size, and ends with bitwise equal parameters on the same machine.

Run directory (see docs/training.md): config.json, metrics.csv, eval_curve.csv,
checkpoints/<step>/ (orbax), summary.json.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from sorlab.errors import CheckpointWriteError, DivergenceError, TrainError  # noqa: F401
from sorlab.threads import add_threads_argument, limit_cpu_threads

DATA_KEYS = ("observations", "actions", "rewards", "masks", "next_observations", "terminals")
RELABELLED_KEYS = ("observations", "actions", "rewards", "masks", "next_observations")
# The released SORL and FQL code clip dataset actions to [-1 + eps, 1 - eps] before training.
ACTION_CLIP_EPS = 1e-5


# ----------------------------------------------------------------------------- configuration


def _to_tuples(value: Any) -> Any:
    """Lists (from YAML/JSON) become tuples, so agent configs are hashable static fields."""
    if isinstance(value, list | tuple):
        return tuple(_to_tuples(v) for v in value)
    if isinstance(value, dict):
        return {k: _to_tuples(v) for k, v in value.items()}
    return value


def _coerce(key: str, value: Any, default: Any) -> Any:
    """Give an override the type of its default (YAML reads `1e-4` as a string, `1` as an int)."""
    if isinstance(default, bool) or default is None:
        return value
    if isinstance(default, float) and isinstance(value, int | str) and not isinstance(value, bool):
        try:
            return float(value)
        except ValueError:
            raise TrainError(f"--set {key}={value!r}: expected a number") from None
    if isinstance(default, int) and isinstance(value, float) and value.is_integer():
        return int(value)
    return _to_tuples(value)


def parse_overrides(items: list[str], defaults: dict, agent_name: str) -> dict:
    """`KEY=VALUE` strings -> {key: value}; values are YAML, unknown keys are an error."""
    import yaml

    overrides = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise TrainError(f"--set {item!r}: expected KEY=VALUE")
        if key not in defaults:
            known = ", ".join(sorted(defaults))
            raise TrainError(
                f"unknown config key {key!r} for agent {agent_name!r}; its keys: {known}"
            )
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise TrainError(f"--set {item!r}: cannot parse the value as YAML ({err})") from None
        overrides[key] = _coerce(key, value, defaults[key])
    return overrides


def resolve_agent_config(
    agent: ModuleType, agent_name: str, env: str, overrides: list[str]
) -> dict:
    defaults = _to_tuples(dict(agent.default_config(env)))
    return {**defaults, **parse_overrides(overrides, defaults, agent_name)}


def get_agent(name: str) -> ModuleType:
    from sorlab.agents import get_agent as _get_agent

    try:
        return _get_agent(name)
    except ValueError as err:
        raise TrainError(str(err)) from None


def env_name(dataset: str, task: int) -> str:
    from sorlab.data import env_name as _env_name

    try:
        return _env_name(dataset, task)
    except ValueError as err:
        raise TrainError(f"dataset {dataset!r}, task {task}: {err}") from None


# ----------------------------------------------------------------------------- data


def dataset_name(path: str | os.PathLike) -> str:
    """`resources/datasets/cube-single-play-v0.npz` -> `cube-single-play-v0`."""
    return Path(path).name.removesuffix(".npz")


def load_dataset(
    path: str | os.PathLike, task: int, action_clip_eps: float = ACTION_CLIP_EPS
) -> dict[str, np.ndarray]:
    """Training transitions from `path` (float32, keys DATA_KEYS plus `next_actions`).

    An OGBench file (observations, actions, terminals, qpos, ...) goes through
    `sorlab.data.load_training_data`, which validates it and relabels rewards for `task`. A file
    that already holds rewards, masks and next_observations (e.g. a synthetic dataset) is used
    as is, after the same kind of checks (widths of the dataset's env, finite values). Actions
    are clipped to [-1 + action_clip_eps, 1 - action_clip_eps] as in the released code (0: not
    clipped).
    """
    from sorlab.data import DatasetError, load_training_data
    from sorlab.data.load import npz_keys, read_npz, validate_transitions

    path = Path(path)
    name = dataset_name(path)
    try:
        keys = set(npz_keys(path))
        if all(k in keys for k in RELABELLED_KEYS):
            data = read_npz(path, [k for k in DATA_KEYS if k in keys])
            validate_transitions(path, data, name)
        else:
            data = load_training_data(path, task)
    except DatasetError as err:
        raise TrainError(str(err)) from None
    except (OSError, ValueError, KeyError) as err:  # past the checks, in ogbench's own loader
        raise TrainError(f"cannot load dataset {str(path)!r} for task {task}: {err}") from None
    data = {k: np.asarray(v, np.float32) for k, v in data.items()}
    n = len(data["observations"])
    data.setdefault("terminals", np.zeros(n, np.float32))
    for key in DATA_KEYS:
        if key not in data:
            raise TrainError(f"dataset {str(path)!r} lacks {key!r}")
        if len(data[key]) != n:
            raise TrainError(
                f"dataset {str(path)!r}: {key!r} has {len(data[key])} rows, observations {n}"
            )
    if n == 0:
        raise TrainError(f"dataset {str(path)!r} holds no transitions")
    data = {k: data[k] for k in DATA_KEYS}
    if action_clip_eps > 0:
        data["actions"] = np.clip(data["actions"], -1 + action_clip_eps, 1 - action_clip_eps)
    # The next transition's action (ReBRAC's critic uses it), as in the released FQL code.
    data["next_actions"] = data["actions"][np.minimum(np.arange(n) + 1, n - 1)]
    return data


def example_batch(obs_dim: int, action_dim: int, size: int = 1) -> dict[str, np.ndarray]:
    """A zero batch with the trainer's keys and shapes (for `init` and shape inference)."""
    z = lambda *shape: np.zeros((size, *shape), np.float32)  # noqa: E731
    return {
        "observations": z(obs_dim),
        "actions": z(action_dim),
        "rewards": z(),
        "masks": z(),
        "next_observations": z(obs_dim),
        "terminals": z(),
        "next_actions": z(action_dim),
    }


# ----------------------------------------------------------------------------- the scanned update


def root_keys(seed: int):
    """(init_key, train_key) of a run; the update at step s uses fold_in(train_key, s)."""
    import jax

    root = jax.random.PRNGKey(seed)
    return jax.random.fold_in(root, 0), jax.random.fold_in(root, 1)


def make_chunk_fn(agent: ModuleType, batch_size: int, length: int) -> Callable:
    """A pure function (state, data, train_key, start_step) -> (state, metrics, finite).

    It applies updates start_step+1 ... start_step+length; `metrics` holds each update's
    metrics stacked along a leading axis of size `length`; `finite` says whether every float
    leaf of the new state is finite. Jit it (or vmap it over seeds) before use.
    """
    import jax
    import jax.numpy as jnp

    def chunk(state, data, train_key, start_step):
        size = data["observations"].shape[0]

        def body(state, step):
            batch_key, update_key = jax.random.split(jax.random.fold_in(train_key, step))
            idx = jax.random.randint(batch_key, (batch_size,), 0, size)
            batch = {k: jnp.take(v, idx, axis=0) for k, v in data.items()}
            state, metrics = agent.update(state, batch, update_key)
            return state, {k: jnp.asarray(v, jnp.float32) for k, v in metrics.items()}

        steps = start_step + 1 + jnp.arange(length, dtype=jnp.int32)
        state, metrics = jax.lax.scan(body, state, steps)
        return state, metrics, tree_is_finite(state)

    return chunk


def tree_is_finite(tree) -> Any:
    import jax
    import jax.numpy as jnp

    leaves = [
        jnp.all(jnp.isfinite(x))
        for x in jax.tree.leaves(tree)
        if hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jnp.inexact)
    ]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.bool_(True)


# Compiled chunks, shared by every ChunkRunner in this process (tests and --seeds reruns).
_COMPILED: dict[tuple, Any] = {}


class ChunkRunner:
    """Compiles the chunk function ahead of time once per chunk length and input types, and runs it.

    Compiled programs are cached per process, keyed by the agent, batch size, chunk length and
    the inputs' tree structure (which holds the agent's static config), shapes and dtypes.
    """

    def __init__(self, agent: ModuleType, batch_size: int, vmapped: bool = False):
        self.agent, self.batch_size, self.vmapped = agent, batch_size, vmapped
        self.compile_s = 0.0

    def get(self, length: int, state, data, train_key, start_step):
        import jax

        args = (state, data, train_key, start_step)
        leaves, treedef = jax.tree.flatten(args)
        avals = tuple((tuple(x.shape), str(x.dtype)) for x in leaves)
        key = (self.agent.__name__, self.batch_size, length, self.vmapped, treedef, avals)
        if key not in _COMPILED:
            start = time.perf_counter()
            fn = make_chunk_fn(self.agent, self.batch_size, length)
            if self.vmapped:
                fn = jax.vmap(fn, in_axes=(0, None, 0, None))
            _COMPILED[key] = jax.jit(fn).lower(*args).compile()
            self.compile_s += time.perf_counter() - start
        return _COMPILED[key]

    def __call__(self, length: int, state, data, train_key, start_step: int):
        import jax.numpy as jnp

        start_step = jnp.int32(start_step)
        return self.get(length, state, data, train_key, start_step)(
            state, data, train_key, start_step
        )


def next_boundary(step: int, total: int, intervals: list[int]) -> int:
    """The first step after `step` that is a multiple of an interval (or the last step)."""
    return min([total] + [(step // i + 1) * i for i in intervals if i > 0])


def first_bad_metric(
    metrics: dict[str, np.ndarray], start_step: int
) -> tuple[str, int, float] | None:
    """(name, step, value) of the earliest non-finite metric in a chunk, losses first."""
    bad = None  # (row, name, value)
    for name in sorted(metrics, key=lambda k: ("loss" not in k, k)):
        values = np.asarray(metrics[name]).reshape(len(metrics[name]), -1)
        rows = np.nonzero(~np.all(np.isfinite(values), axis=1))[0]
        if len(rows) and (bad is None or rows[0] < bad[0]):
            row = int(rows[0])
            bad = (row, name, float(values[row][~np.isfinite(values[row])][0]))
    return None if bad is None else (bad[1], start_step + 1 + bad[0], bad[2])


# ----------------------------------------------------------------------------- run directory


@dataclass
class RunSettings:
    agent: str
    dataset: str
    task: int
    seed: int
    steps: int
    out: str
    overrides: list[str] = field(default_factory=list)
    eval_interval: int = 0
    eval_episodes: int = 50
    eval_m_inf: int | None = None  # None: the agent's default_eval_m_inf(config), else 1
    checkpoint_interval: int = 100_000
    log_interval: int = 5_000
    chunk: int = 1_000
    keep_checkpoints: int = 2
    restart_if_changed: bool = False
    progress: bool = True
    data_fraction: float = 1.0
    data_seed: int = 0
    action_clip_eps: float = ACTION_CLIP_EPS


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=_json_default) + "\n")
    os.replace(tmp, path)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic | np.ndarray):
        return obj.tolist()
    raise TypeError(f"cannot write {type(obj).__name__} to JSON")


class CsvLog:
    """Append-only CSV with a fixed header, whose rows are also kept in memory so that every
    checkpoint can store them: a resumed run rewrites the file from its checkpoint's rows, so
    a file deleted or truncated meanwhile (e.g. by Snakemake, as an incomplete job's output)
    loses nothing. Without rows (a checkpoint from an older version) the file's rows up to
    `keep_until` are kept."""

    def __init__(self, path: Path, keep_until: int, rows: list[dict] | None = None):
        self.path = path
        if rows is None:
            rows = []
            if path.exists() and keep_until > 0:
                with path.open(newline="") as f:
                    rows = [r for r in csv.DictReader(f) if int(float(r["step"])) <= keep_until]
        self.rows = [dict(r) for r in rows]
        self.fields: list[str] | None = list(self.rows[0]) if self.rows else None
        tmp = path.with_name(path.name + ".tmp")
        with tmp.open("w", newline="") as f:
            if self.fields:
                writer = csv.DictWriter(f, self.fields, extrasaction="ignore")
                writer.writeheader()
                writer.writerows(self.rows)
        os.replace(tmp, path)

    def write(self, row: dict) -> None:
        self.rows.append(dict(row))
        with self.path.open("a", newline="") as f:
            if self.fields is None:
                self.fields = list(row)
                csv.DictWriter(f, self.fields).writeheader()
            csv.DictWriter(f, self.fields, extrasaction="ignore").writerow(row)


def _checkpoint_manager(run_dir: Path, keep: int = 2):
    import orbax.checkpoint as ocp

    options = ocp.CheckpointManagerOptions(
        max_to_keep=keep if keep > 0 else None, create=True, enable_async_checkpointing=False
    )
    return ocp.CheckpointManager((run_dir / "checkpoints").absolute(), options=options)


def _save(manager, step: int, state, train_key, meta: dict) -> None:
    import logging

    import jax.numpy as jnp
    import orbax.checkpoint as ocp

    tree = {"agent": state, "train_key": train_key, "step": jnp.int32(step)}
    absl_logger = logging.getLogger("absl")
    level = absl_logger.level
    absl_logger.setLevel(logging.CRITICAL)  # orbax logs a failed write's traceback; we name it
    threading.excepthook = _quiet_closed_loop  # a failed write's threads, see below
    sys.unraisablehook = _quiet_closed_loop_unraisable
    try:
        manager.save(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(tree), meta=ocp.args.JsonSave(meta)
            ),
            force=True,
        )
        manager.wait_until_finished()
    except Exception as err:  # orbax/tensorstore wrap OS errors (full disk, quota) in their own
        last = [s for s in manager.all_steps() if s != step]
        resume = f"step {max(last)}" if last else "the start"
        raise CheckpointWriteError(
            f"cannot write checkpoint {step} in {manager.directory}: {_error_text(err)}; free "
            f"space there (or use another --out) and rerun: training resumes from {resume}"
        ) from None
    finally:
        absl_logger.setLevel(level)


def _quiet_closed_loop(args) -> None:
    """After a failed checkpoint write, orbax's worker threads may call into the asyncio loop
    it has already closed; their 'Event loop is closed' tracebacks would bury the one-line
    error that names the failure. Any other thread exception is printed as usual."""
    if isinstance(args.exc_value, RuntimeError) and "Event loop is closed" in str(args.exc_value):
        return
    threading.__excepthook__(args)


def _quiet_closed_loop_unraisable(args) -> None:
    """`_quiet_closed_loop` for exceptions raised in callbacks from tensorstore's threads."""
    if isinstance(args.exc_value, RuntimeError) and "Event loop is closed" in str(args.exc_value):
        return
    sys.__unraisablehook__(args)


def _error_text(err: BaseException, limit: int = 200) -> str:
    """An exception's message on one line; the OS error alone where a library wraps one."""
    text = " ".join(str(err).split())
    code = re.search(r"os_error_code='?(\d+)", text)
    if code:
        return f"{os.strerror(int(code[1]))} (errno {code[1]})"
    text = text.split(" See full TensorStore details")[0] or type(err).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _restore(manager, step: int, abstract_state, train_key) -> tuple[Any, Any, dict]:
    import jax
    import jax.numpy as jnp
    import orbax.checkpoint as ocp

    abstract = {"agent": abstract_state, "train_key": train_key, "step": jnp.int32(0)}
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, abstract)
    restored = manager.restore(
        step,
        args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()
        ),
    )
    tree = restored.state
    if int(tree["step"]) != step:
        raise TrainError(f"checkpoint {step} holds step {int(tree['step'])}")
    return tree["agent"], tree["train_key"], dict(restored.meta)


def _abstract_state(agent: ModuleType, agent_config: dict, obs_dim: int, action_dim: int):
    import jax

    batch = example_batch(obs_dim, action_dim)
    return jax.eval_shape(lambda: agent.init(jax.random.PRNGKey(0), batch, agent_config))


def run_config(run_dir: str | os.PathLike) -> dict:
    """A run directory's config.json, checked (TrainError naming the file if damaged)."""
    from sorlab.rundir import RunDirError, read_run_config

    try:
        return read_run_config(Path(run_dir))
    except RunDirError as err:
        raise TrainError(str(err)) from None


def load_run(run_dir: str | os.PathLike, step: int | None = None) -> tuple[ModuleType, Any, dict]:
    """(agent module, agent state, config.json contents) of a run's checkpoint (default newest).

    An unreadable checkpoint is a TrainError that names it and the older readable one."""
    run_dir = Path(run_dir)
    config = run_config(run_dir)
    agent = get_agent(config["agent"])
    agent_config = _to_tuples(config["agent_config"])
    manager = _checkpoint_manager(run_dir, keep=0)
    try:
        steps = sorted(manager.all_steps())
        if not steps:
            raise TrainError(f"run {str(run_dir)!r} holds no checkpoint")
        if step is None:
            step = steps[-1]
        elif step not in steps:
            raise TrainError(
                f"run {str(run_dir)!r} has no checkpoint at step {step}; it has {steps}"
            )
        abstract = _abstract_state(agent, agent_config, config["obs_dim"], config["action_dim"])
        _, train_key = root_keys(config["seed"])
        try:
            state, _, _ = _restore(manager, step, abstract, train_key)
        except Exception as err:
            older = [s for s in steps if s < step]
            hint = (
                f"use the older one with --step {older[-1]}, or retrain from it (`sorlab train` "
                f"on this run directory resumes from step {older[-1]}; in the workflow, delete "
                f"{run_dir / 'summary.json'} and rerun)"
                if older
                else "retrain the run"
            )
            raise TrainError(
                f"checkpoint {step} of run {str(run_dir)!r} is unreadable ({_error_text(err)}); {hint}"
            ) from None
    finally:
        manager.close()
    return agent, state, config


def latest_checkpoint(run_dir: str | os.PathLike) -> int | None:
    if not (Path(run_dir) / "checkpoints").is_dir():
        return None
    manager = _checkpoint_manager(Path(run_dir), keep=0)
    step = manager.latest_step()
    manager.close()
    return step


# ----------------------------------------------------------------------------- training


# Settings that must match for a run directory's checkpoint to be resumed.
_RESUME_KEYS = (
    "agent", "dataset_name", "task", "seed", "obs_dim", "action_dim", "num_transitions",
    "data_fraction", "data_seed", "action_clip_eps",
)  # fmt: skip


def _check_resumable(run_dir: Path, config: dict) -> None:
    path = run_dir / "config.json"
    if not path.is_file():
        raise TrainError(f"{str(run_dir)!r} holds checkpoints but no config.json; cannot resume")
    old = run_config(run_dir)
    diffs = [k for k in _RESUME_KEYS if old.get(k) != config.get(k)]
    old_agent = _to_tuples(old.get("agent_config", {}))
    diffs += [
        f"agent_config.{k}"
        for k in sorted(set(old_agent) | set(config["agent_config"]))
        if old_agent.get(k) != config["agent_config"].get(k)
    ]
    if diffs:
        raise TrainError(
            f"run directory {str(run_dir)!r} holds a checkpoint of a different run "
            f"(differs in {', '.join(diffs)}); use another --out or delete it"
        )


def _drop_unreadable_checkpoints(run: _Run, abstract, keep: int) -> None:
    """Restore the run's newest checkpoint; while it is unreadable (damaged by a crash or a
    full disk), move it aside to checkpoints.unreadable/ with a warning and try the older one,
    which is kept for this reason. The readable newest one is kept on the run for resuming."""
    while True:
        steps = sorted(run.manager.all_steps())
        if not steps:
            return
        _, train_key = root_keys(run.seed)
        try:
            run.restored = (steps[-1], _restore(run.manager, steps[-1], abstract, train_key))
            return
        except Exception as err:
            aside = run.dir / "checkpoints.unreadable"
            aside.mkdir(exist_ok=True)
            shutil.rmtree(aside / str(steps[-1]), ignore_errors=True)  # an older unreadable copy
            run.manager.close()
            os.replace(run.dir / "checkpoints" / str(steps[-1]), aside / str(steps[-1]))
            run.manager = _checkpoint_manager(run.dir, keep)
            older = f"resuming from step {steps[-2]}" if len(steps) > 1 else "starting afresh"
            print(
                f"warning: checkpoint {steps[-1]} in {run.dir / 'checkpoints'} is unreadable "
                f"({_error_text(err)}); moved to {aside}, {older}",
                file=sys.stderr,
            )


def eval_m_inf(agent, agent_config: dict, requested: int | None) -> int:
    """Inference steps of the periodic evaluations: as requested, else the agent's default
    (SORL: its training discretisation M, the point Table 1 reports), else 1."""
    if requested is not None:
        if requested < 1:
            raise TrainError(f"--eval-m-inf must be >= 1, got {requested}")
        return int(requested)
    default = getattr(agent, "default_eval_m_inf", None)
    return int(default(agent_config)) if default else 1


def _evaluate(agent, state, config: dict, episodes: int) -> dict:
    from sorlab.evaluate import evaluate_policy  # imported lazily: it pulls in MuJoCo

    return evaluate_policy(
        agent,
        state,
        config["dataset_name"],
        config["task"],
        episodes,
        config["seed"],
        m_inf=config["eval_m_inf"],
    )


def _close_eval_pools() -> None:
    if "sorlab.evaluate" in sys.modules:
        close = getattr(sys.modules["sorlab.evaluate"], "close_pools", None)
        if close is not None:
            close()


def _progress_bar(settings: RunSettings, seeds: list[int], initial: int):
    from tqdm import tqdm

    interactive = sys.stderr.isatty()
    return tqdm(
        total=settings.steps,
        initial=initial,
        desc=f"train {settings.agent} seed{'s' if len(seeds) > 1 else ''} {','.join(map(str, seeds))}",
        unit="upd",
        dynamic_ncols=True,
        smoothing=0.1,
        mininterval=0.5 if interactive else 30.0,
        disable=not settings.progress,
    )


def run_dirs(out: str, seeds: list[int]) -> list[Path]:
    """One run directory per seed: `{seed}` in `out` is replaced by the seed."""
    if len(seeds) > 1 and "{seed}" not in out:
        raise TrainError(f"with several seeds --out must contain '{{seed}}', got {out!r}")
    dirs = [Path(out.replace("{seed}", str(seed))) for seed in seeds]
    if len(set(dirs)) != len(dirs):
        raise TrainError(f"--seeds {seeds} repeats a seed")
    return dirs


@dataclass
class _Run:
    """Host-side bookkeeping of one seed's run directory."""

    seed: int
    dir: Path
    config: dict
    manager: Any
    metrics_log: CsvLog | None = None
    eval_log: CsvLog | None = None
    prior: dict = field(default_factory=lambda: {"wall_s": 0.0, "train_s": 0.0, "eval_s": 0.0})
    sums: dict = field(default_factory=dict)
    count: int = 0
    eval_s: float = 0.0
    final_eval: dict | None = None
    error: str | None = None
    restored: tuple | None = None  # (step, (state, train_key, meta)) of the newest checkpoint


def _pick(tree, i: int | None):
    import jax

    return tree if i is None else jax.tree.map(lambda x: x[i], tree)


def train(settings: RunSettings) -> dict:
    """Train (or resume) one run; returns the summary written to RUN_DIR/summary.json."""
    return train_seeds(settings, [settings.seed])[0]


def train_seeds(settings: RunSettings, seeds: list[int]) -> list[dict]:
    """Train (or resume) one run per seed; several seeds run as one vmapped program.

    Each seed gets its own run directory (`{seed}` in settings.out), with the same layout and,
    up to float rounding, the same numbers as a separate run. A seed whose metrics or
    parameters turn non-finite stops being logged and checkpointed (its last good checkpoint
    stays); the others go on, and a DivergenceError naming it is raised at the end.
    """
    wall_start = time.perf_counter()
    s = settings
    if s.steps < 1:
        raise TrainError(f"--steps must be >= 1, got {s.steps}")
    for name in ("eval_interval", "checkpoint_interval", "log_interval"):
        if getattr(s, name) < 0:
            raise TrainError(f"--{name.replace('_', '-')} must be >= 0")
    if s.chunk < 1:
        raise TrainError(f"--chunk must be >= 1, got {s.chunk}")
    if not seeds:
        raise TrainError("no seed given")
    dirs = run_dirs(s.out, seeds)
    agent = get_agent(s.agent)
    name = dataset_name(s.dataset)
    env = env_name(name, s.task)
    agent_config = resolve_agent_config(agent, s.agent, env, s.overrides)
    if "batch_size" not in agent_config:
        raise TrainError(f"agent {s.agent!r}'s config has no batch_size")
    if not 0 <= s.action_clip_eps < 1:
        raise TrainError(f"--action-clip-eps must be in [0, 1), got {s.action_clip_eps}")
    m_inf = eval_m_inf(agent, agent_config, s.eval_m_inf)
    if s.eval_interval or s.eval_m_inf is not None:
        _check_eval_m_inf(agent, agent_config, name, m_inf)
    # One writer per run directory; taking the lock also shows that --out is writable.
    locks = _lock_run_dirs(dirs)
    try:
        return _train_locked(s, seeds, dirs, agent, name, env, agent_config, m_inf, wall_start)
    finally:
        for lock in locks:
            lock.close()


def _lock_run_dirs(dirs: list[Path]) -> list:
    from sorlab.rundir import RunDirError, lock_run_dir

    locks = []
    try:
        for run_dir in dirs:
            locks.append(lock_run_dir(run_dir))
    except RunDirError as err:
        for lock in locks:
            lock.close()
        raise TrainError(str(err)) from None
    return locks


def _check_eval_m_inf(agent, agent_config: dict, dataset: str, m_inf: int) -> None:
    """The periodic evaluations' inference steps, checked before training rather than at the
    first evaluation."""
    from sorlab.data.load import env_widths
    from sorlab.evaluate import check_inference

    try:
        check_inference(agent, agent_config, *env_widths(dataset), [(m_inf, 1)])
    except ValueError as err:
        raise TrainError(f"--eval-m-inf {m_inf}: {err}") from None


def _train_locked(
    s: RunSettings, seeds, dirs, agent, name: str, env: str, agent_config: dict, m_inf: int,
    wall_start: float,
) -> list[dict]:  # fmt: skip
    vmapped = len(seeds) > 1
    data_np = load_dataset(s.dataset, s.task, s.action_clip_eps)
    data_info = {}
    if s.data_fraction != 1.0:  # the data-scale study: whole episodes, chosen by data_seed
        from sorlab.data import subsample_episodes

        total = int(data_np["terminals"].sum())
        try:
            data_np = subsample_episodes(data_np, s.data_fraction, s.data_seed)
        except ValueError as err:
            raise TrainError(f"--data-fraction {s.data_fraction}: {err}") from None
        data_info = {
            "data_fraction": s.data_fraction,
            "data_seed": s.data_seed,
            "data_episodes": int(data_np["terminals"].sum()),
            "data_episodes_total": total,
        }
    obs_dim, action_dim = data_np["observations"].shape[-1], data_np["actions"].shape[-1]
    base_config = {
        "agent": s.agent,
        "dataset": str(s.dataset),
        "dataset_name": name,
        "env": env,
        "task": s.task,
        "seed": None,
        "steps": s.steps,
        "eval_interval": s.eval_interval,
        "eval_episodes": s.eval_episodes,
        "eval_m_inf": m_inf,
        "checkpoint_interval": s.checkpoint_interval,
        "log_interval": s.log_interval,
        "chunk": s.chunk,
        "obs_dim": int(obs_dim),
        "action_dim": int(action_dim),
        "num_transitions": int(len(data_np["observations"])),
        "action_clip_eps": s.action_clip_eps,
        **data_info,
        "overrides": list(s.overrides),
        "agent_config": agent_config,
        "versions": _versions(),
    }

    runs = []
    abstract = None
    for seed, run_dir in zip(seeds, dirs, strict=True):
        config = {**base_config, "seed": seed}
        if _has_checkpoints(run_dir):
            try:
                _check_resumable(run_dir, config)
            except TrainError as err:
                if not s.restart_if_changed:
                    raise
                print(f"{err}\n--restart-if-changed: deleting its checkpoints", file=sys.stderr)
                shutil.rmtree(run_dir / "checkpoints")
        run = _Run(seed, run_dir, config, _checkpoint_manager(run_dir, s.keep_checkpoints))
        runs.append(run)
        if run.manager.all_steps():
            if abstract is None:
                abstract = _abstract_state(agent, agent_config, obs_dim, action_dim)
            _drop_unreadable_checkpoints(run, abstract, s.keep_checkpoints)
    if s.restart_if_changed and len(runs) > 1:
        _align_checkpoints(runs, s.keep_checkpoints)
    try:
        return _train_runs(s, agent, runs, data_np, vmapped, wall_start)
    finally:
        for run in runs:
            run.manager.close()
        _close_eval_pools()


def _has_checkpoints(run_dir: Path) -> bool:
    folder = run_dir / "checkpoints"
    return folder.is_dir() and any(p.name.isdigit() for p in folder.iterdir())


def _align_checkpoints(runs: list[_Run], keep: int) -> None:
    """Bring several seeds' checkpoints to one step so they resume as one program (a job killed
    while saving, or a seed added to a grouped workflow job): drop the steps past the newest
    step they all hold; with no common step, start them all afresh."""
    held = [set(run.manager.all_steps()) for run in runs]
    if len({max(h, default=0) for h in held}) == 1:
        return
    common = max(set.intersection(*held), default=0)
    print(f"--restart-if-changed: the seeds' checkpoints differ; resuming all from step {common}"
          if common else "--restart-if-changed: the seeds share no checkpoint; starting afresh",
          file=sys.stderr)  # fmt: skip
    for run, have in zip(runs, held, strict=True):
        if common:
            for step in sorted(step for step in have if step > common):
                run.manager.delete(step)
        elif have:
            run.manager.close()
            shutil.rmtree(run.dir / "checkpoints")
            run.manager = _checkpoint_manager(run.dir, keep)


def _start_step(runs: list[_Run], steps: int) -> int:
    """The newest checkpoint step every run directory holds (0: start fresh)."""
    held = [set(run.manager.all_steps()) for run in runs]
    common = set.intersection(*held)
    start = max(common, default=0)
    for run, have in zip(runs, held, strict=True):
        if max(have, default=0) > start:
            raise TrainError(
                f"run directory {str(run.dir)!r} holds checkpoints {sorted(have)}, but the newest "
                f"step common to all seeds' directories is {start}; resume the seeds separately"
            )
    if start > steps:
        raise TrainError(
            f"run directory {str(runs[0].dir)!r} holds a checkpoint at step {start}, beyond --steps {steps}"
        )
    return start


def _train_runs(
    s: RunSettings, agent, runs: list[_Run], data_np, vmapped: bool, wall_start: float
) -> list[dict]:
    import jax
    import jax.numpy as jnp

    cfg = runs[0].config
    agent_config = cfg["agent_config"]
    start_step = _start_step(runs, s.steps)
    for run in runs:
        _write_json(run.dir / "config.json", run.config)

    data = jax.device_put(data_np)
    states, keys = [], []
    for run in runs:
        init_key, train_key = root_keys(run.seed)
        meta = {}
        if start_step:
            if run.restored is not None and run.restored[0] == start_step:
                state, train_key, meta = run.restored[1]
            else:
                abstract = _abstract_state(agent, agent_config, cfg["obs_dim"], cfg["action_dim"])
                state, train_key, meta = _restore(run.manager, start_step, abstract, train_key)
            run.prior.update({k: meta[k] for k in run.prior if k in meta})
            # The logs up to the checkpoint come from the checkpoint itself (older ones: the files).
            run.sums, run.count = dict(meta.get("sums", {})), int(meta.get("count", 0))
            if start_step == s.steps:  # stopped after its last checkpoint, before summary.json
                run.final_eval = meta.get("final_eval")
            print(f"resuming {run.dir} from step {start_step}", file=sys.stderr)
        else:
            state = agent.init(init_key, {k: v[:1] for k, v in data_np.items()}, agent_config)
        run.restored = None
        states.append(state)
        keys.append(train_key)
        run.metrics_log = CsvLog(run.dir / "metrics.csv", start_step, meta.get("metrics_rows"))
        run.eval_log = CsvLog(run.dir / "eval_curve.csv", start_step, meta.get("eval_rows"))
    if vmapped:
        # Each seed is initialised on its own (bitwise as a separate run), then stacked.
        state = jax.tree.map(lambda *xs: jnp.stack(xs), *states)
        train_key = jnp.stack(keys)
    else:
        state, train_key = states[0], keys[0]
    index = list(range(len(runs))) if vmapped else [None]

    runner = ChunkRunner(agent, int(agent_config["batch_size"]), vmapped=vmapped)
    intervals = [s.chunk, s.log_interval, s.eval_interval, s.checkpoint_interval]
    train_s = 0.0  # this session, all seeds together

    def time_s(run: _Run) -> float:
        return run.prior["wall_s"] + time.perf_counter() - wall_start

    step = start_step
    bar = _progress_bar(s, [r.seed for r in runs], start_step)
    try:
        while step < s.steps and any(run.error is None for run in runs):
            end = next_boundary(step, s.steps, intervals)
            runner.get(end - step, state, data, train_key, jnp.int32(step))  # compile
            t0 = time.perf_counter()
            state, metrics, finite = runner(end - step, state, data, train_key, step)
            metrics, finite = jax.device_get((metrics, finite))
            train_s += time.perf_counter() - t0
            bar.update(end - step)
            is_last = end == s.steps
            live = []
            for run, i in zip(runs, index, strict=True):
                if run.error is not None:
                    continue
                run_metrics = _pick(metrics, i)
                bad = first_bad_metric(run_metrics, step)
                if bad is not None or not bool(_pick(finite, i)):
                    last = run.manager.latest_step()
                    where = (
                        f"last good checkpoint: step {last} in {run.dir / 'checkpoints'}"
                        if last
                        else "no checkpoint was written"
                    )
                    if bad is not None:
                        what = f"non-finite {bad[0]} ({bad[2]}) at step {bad[1]}"
                    else:
                        what = f"non-finite parameters after step {end} (all metrics finite)"
                    run.error = f"training diverged: {what}; stopped, {where}"
                    bar.write(f"{run.dir}: {run.error}")
                    continue
                live.append((run, i))
                for k, v in run_metrics.items():
                    run.sums[k] = run.sums.get(k, 0.0) + float(np.sum(v, dtype=np.float64))
                run.count += end - step
            step = end
            for run, _ in live:
                if (s.log_interval and step % s.log_interval == 0) or is_last:
                    row = {"step": step, "time_s": round(time_s(run), 3)}
                    row.update({k: v / run.count for k, v in run.sums.items()})
                    run.metrics_log.write(row)
                    run.sums, run.count = {}, 0
            if s.eval_interval and (step % s.eval_interval == 0 or is_last):
                for run, i in live:
                    t0 = time.perf_counter()
                    result = _evaluate(agent, _pick(state, i), run.config, s.eval_episodes)
                    seconds = time.perf_counter() - t0
                    run.eval_s += seconds
                    run.final_eval = result if is_last else None
                    run.eval_log.write(
                        {
                            "step": step,
                            "success": result["success"],
                            "return": result["return"],
                            "eval_s": round(seconds, 3),
                            "time_s": round(time_s(run), 3),
                        }
                    )
                    bar.write(f"{run.dir}: step {step}: success {result['success']:.3f}")
            if (s.checkpoint_interval and step % s.checkpoint_interval == 0) or is_last:
                for run, i in live:
                    meta = {
                        "wall_s": time_s(run),
                        "train_s": run.prior["train_s"] + train_s,
                        "eval_s": run.prior["eval_s"] + run.eval_s,
                        # What a resumed run needs to continue its logs exactly.
                        "metrics_rows": run.metrics_log.rows,
                        "eval_rows": run.eval_log.rows,
                        "sums": run.sums,
                        "count": run.count,
                        "final_eval": _strip_eval(run.final_eval),
                    }
                    _save(run.manager, step, _pick(state, i), _pick(train_key, i), meta)
    finally:
        bar.close()

    summaries = []
    for run in runs:
        if run.error is not None:
            continue
        final_eval = run.final_eval
        total_train_s = run.prior["train_s"] + train_s
        if final_eval is None and s.eval_interval and start_step == s.steps:
            final_eval = _final_eval_from_curve(run.dir, s.steps)
        summary = {
            "agent": s.agent,
            "dataset": run.config["dataset_name"],
            "task": s.task,
            "seed": run.seed,
            "steps": s.steps,
            "resumed_from": start_step,
            "wall_s": time_s(run),
            "train_s": total_train_s,
            "eval_s": run.prior["eval_s"] + run.eval_s,
            "compile_s": runner.compile_s,
            # Over all sessions: updates per second of compiled update chunks.
            "updates_per_s": s.steps / total_train_s if total_train_s > 0 else None,
            "seeds_in_program": [r.seed for r in runs],
            "final_eval": _strip_eval(final_eval),
            "backend": jax.default_backend(),
        }
        _write_json(run.dir / "summary.json", summary)
        summaries.append(summary)
    errors = [f"{run.dir}: {run.error}" for run in runs if run.error is not None]
    if errors:
        raise DivergenceError(runs[0].error if len(runs) == 1 else "; ".join(errors))
    return summaries


def _strip_eval(result: dict | None) -> dict | None:
    if result is None:
        return None
    return {k: v for k, v in result.items() if k != "per_episode"}


def _final_eval_from_curve(run_dir: Path, step: int) -> dict | None:
    path = run_dir / "eval_curve.csv"
    if not path.exists():
        return None
    with path.open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if int(float(r["step"])) == step]
    if not rows:
        return None
    return {"success": float(rows[-1]["success"]), "return": float(rows[-1]["return"])}


def _versions() -> dict:
    import jax

    import sorlab

    return {"sorlab": sorlab.__version__, "jax": jax.__version__, "backend": jax.default_backend()}


# ----------------------------------------------------------------------------- CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--agent", required=True, help="agent name (sorlab.agents.AGENT_NAMES)")
    parser.add_argument("--dataset", required=True, help="dataset file PATH.npz (OGBench format)")
    parser.add_argument("--task", type=int, required=True, help="singletask task id (1-5)")
    seeds = parser.add_mutually_exclusive_group()
    seeds.add_argument("--seed", type=int, default=1)
    seeds.add_argument(
        "--seeds",
        default=None,
        help="comma-separated seeds trained as one vmapped program, e.g. 1,2,3,4",
    )
    parser.add_argument("--steps", type=int, required=True, help="number of gradient updates")
    parser.add_argument(
        "--out",
        required=True,
        help="run directory, resumed if it holds a checkpoint; '{seed}' is replaced by the seed",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        nargs="+",
        action="extend",
        default=[],
        metavar="KEY=VALUE",
        help="override an agent config key (VALUE parsed as YAML); repeatable",
    )
    parser.add_argument(
        "--eval-interval",
        type=int,
        default=0,
        help="evaluate every I steps and at the end (0: never)",
    )
    parser.add_argument("--eval-episodes", type=int, default=50)
    parser.add_argument(
        "--eval-m-inf",
        type=int,
        default=None,
        help="inference steps of the periodic evaluations (default: the agent's; SORL: its M)",
    )
    parser.add_argument(
        "--checkpoint-interval",
        type=int,
        default=100_000,
        help="also at the end; 0: only at the end",
    )
    parser.add_argument(
        "--log-interval", type=int, default=5_000, help="metrics.csv row every L steps (means)"
    )
    parser.add_argument(
        "--data-fraction",
        type=float,
        default=1.0,
        help="train on this fraction of the dataset's episodes (whole episodes, in (0, 1])",
    )
    parser.add_argument("--data-seed", type=int, default=0, help="seed of the episode subsampling")
    parser.add_argument(
        "--action-clip-eps",
        type=float,
        default=ACTION_CLIP_EPS,
        help="clip dataset actions to [-1 + EPS, 1 - EPS] as the released code does (0: off)",
    )
    parser.add_argument("--chunk", type=int, default=1_000, help="updates per jitted scan call")
    parser.add_argument(
        "--keep-checkpoints", type=int, default=2, help="newest checkpoints kept (0: all)"
    )
    parser.add_argument(
        "--restart-if-changed",
        action="store_true",
        help="if OUT holds checkpoints of a different configuration, delete them and start "
        "afresh (default: stop with an error)",
    )
    parser.add_argument(
        "--no-progress", dest="progress", action="store_false", help="no progress bar"
    )
    add_threads_argument(parser)


def parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise TrainError(
            f"--seeds {text!r}: expected comma-separated integers, e.g. 1,2,3"
        ) from None
    if not seeds:
        raise TrainError(f"--seeds {text!r}: no seed given")
    return seeds


def main(args: argparse.Namespace) -> int:
    limit_cpu_threads(args.threads)
    names = [f.name for f in fields(RunSettings)]
    settings = RunSettings(**{k: getattr(args, k) for k in names})
    try:
        seeds = parse_seeds(args.seeds) if args.seeds else [settings.seed]
        summaries = train_seeds(settings, seeds)
    except TrainError as err:
        print(f"sorlab train: error: {err}", file=sys.stderr)
        return 1
    except OSError as err:  # a full disk or a read-only folder while writing logs or results
        from sorlab.rundir import describe_os_error

        print(f"sorlab train: error: cannot write {describe_os_error(err)}", file=sys.stderr)
        return 1
    for seed, summary in zip(seeds, summaries, strict=True):
        ups = summary["updates_per_s"]
        print(
            f"done: seed {seed}, {summary['steps']} steps in {summary['wall_s']:.1f} s"
            + (f" ({ups:.1f} updates/s)" if ups else "")
            + f"; {Path(settings.out.replace('{seed}', str(seed))) / 'summary.json'}"
        )
    return 0
