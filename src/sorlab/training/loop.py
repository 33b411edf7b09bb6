"""The training loop: train (or resume) one run per seed, as a sequence of named steps.

The whole dataset lives in device memory. Updates run in chunks (`runner.ChunkRunner`: one
jitted `lax.scan`, no Python work per update). Chunk boundaries fall on every multiple of the
chunk size and of the log, evaluation and checkpoint intervals, so every logged, evaluated and
checkpointed step ends a chunk. Several seeds run as one vmapped program, each seed
initialised on its own and written to its own run directory.

Periodic evaluation is an `Evaluator` passed in by the caller (training/cli.py wires
`sorlab.evaluation` in): this module never imports the evaluator.

Run directory (sorlab.layout, docs/training.md): config.json, metrics.csv, eval_curve.csv,
checkpoints/<step>/ (orbax), summary.json.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Protocol

import numpy as np

from sorlab import layout
from sorlab.checkpoints import (
    abstract_state,
    checkpoint_manager,
    restore_checkpoint,
    save_checkpoint,
)
from sorlab.data.transitions import dataset_name, load_dataset
from sorlab.errors import DivergenceError, TrainError
from sorlab.training import rundir
from sorlab.training.rundir import CsvLog, Run
from sorlab.training.runner import ChunkRunner, root_keys
from sorlab.training.settings import (
    RunSettings,
    SettingsError,
    check_settings,
    env_name,
    eval_m_inf,
    get_agent,
    resolve_agent_config,
)


class Evaluator(Protocol):
    """Periodic evaluation, given to `train_seeds` by its caller."""

    def check(self, agent: ModuleType, agent_config: dict, dataset: str, m_inf: int) -> None:
        """ValueError if `agent` cannot act with `m_inf` on `dataset` (before any training)."""

    def __call__(self, agent: ModuleType, state: Any, config: dict, episodes: int) -> dict:
        """{"success", "return", ...} of `episodes` episodes; `config` is the run's config.json."""


def train(settings: RunSettings, evaluator: Evaluator | None = None) -> dict:
    """Train (or resume) one run; returns the summary written to RUN_DIR/summary.json."""
    return train_seeds(settings, [settings.seed], evaluator)[0]


def train_seeds(
    settings: RunSettings, seeds: list[int], evaluator: Evaluator | None = None
) -> list[dict]:
    """Train (or resume) one run per seed; several seeds run as one vmapped program.

    Each seed gets its own run directory (`{seed}` in settings.out), with the same layout and,
    up to float rounding, the same numbers as a separate run. A seed whose metrics or
    parameters turn non-finite stops being logged and checkpointed (its last good checkpoint
    stays); the others go on, and a DivergenceError naming it is raised at the end. Settings
    that ask for periodic evaluation need an `evaluator`.
    """
    wall_start = time.perf_counter()
    s = settings
    check_settings(s)
    if not seeds:
        raise SettingsError("no seed given")
    dirs = rundir.run_dirs(s.out, seeds)
    agent = get_agent(s.agent)
    name = dataset_name(s.dataset)
    env = env_name(name, s.task)
    agent_config = resolve_agent_config(agent, s.agent, env, s.overrides)
    if "batch_size" not in agent_config:
        raise SettingsError(f"agent {s.agent!r}'s config has no batch_size")
    if not 0 <= s.action_clip_eps < 1:
        raise SettingsError(f"--action-clip-eps must be in [0, 1), got {s.action_clip_eps}")
    m_inf = eval_m_inf(agent, agent_config, s.eval_m_inf)
    if s.eval_period or s.eval_m_inf is not None:
        _check_evaluation(s, evaluator, agent, agent_config, name, m_inf)
    # One writer per run directory; taking the lock also shows that --out is writable.
    locks = rundir.lock_run_dirs(dirs)
    try:
        data_np, data_info = load_training_data(s)
        config = base_config(s, name, env, m_inf, agent_config, data_np, data_info)
        runs = open_runs(s, seeds, dirs, agent, config)
        try:
            return train_runs(s, agent, runs, data_np, wall_start, evaluator)
        finally:
            for run in runs:
                run.manager.close()
    finally:
        for lock in locks:
            lock.close()


def _check_evaluation(s: RunSettings, evaluator, agent, agent_config, name, m_inf) -> None:
    """The periodic evaluations' inference steps, checked before training rather than at the
    first evaluation."""
    if evaluator is None:
        if s.eval_period:
            raise SettingsError("periodic evaluation was asked for, but no evaluator was given")
        return
    try:
        evaluator.check(agent, agent_config, name, m_inf)
    except ValueError as err:
        raise SettingsError(f"--eval-m-inf {m_inf}: {err}") from None


# ----------------------------------------------------------------------------- before the loop


def load_training_data(s: RunSettings) -> tuple[dict[str, np.ndarray], dict]:
    """The dataset (action-clipped), subsampled to whole episodes for --data-fraction < 1."""
    data_np = load_dataset(s.dataset, s.task, s.action_clip_eps)
    if s.data_fraction == 1.0:
        return data_np, {}
    from sorlab.data import subsample_episodes  # the data-scale study

    total = int(data_np["terminals"].sum())
    try:
        data_np = subsample_episodes(data_np, s.data_fraction, s.data_seed)
    except ValueError as err:
        raise SettingsError(f"--data-fraction {s.data_fraction}: {err}") from None
    data_info = {
        "data_fraction": s.data_fraction,
        "data_seed": s.data_seed,
        "data_episodes": int(data_np["terminals"].sum()),
        "data_episodes_total": total,
    }
    return data_np, data_info


def base_config(
    s: RunSettings, name: str, env: str, m_inf: int, agent_config: dict, data_np, data_info
) -> dict:
    """config.json of the runs (its "seed" filled per run)."""
    obs_dim, action_dim = data_np["observations"].shape[-1], data_np["actions"].shape[-1]
    return {
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


def _versions() -> dict:
    import jax

    import sorlab
    from sorlab.numerics import platform_record

    # "platform": what the numbers depend on beyond the config (sorlab.numerics).
    return {
        "sorlab": sorlab.__version__,
        "jax": jax.__version__,
        "backend": jax.default_backend(),
        "platform": platform_record(),
    }


def open_runs(s: RunSettings, seeds, dirs, agent, base: dict) -> list[Run]:
    """One Run per seed, its checkpoints checked: a different run's are refused (or deleted
    with --restart-if-changed), unreadable ones moved aside, several seeds' aligned."""
    import shutil

    runs = []
    abstract = None
    for seed, run_dir in zip(seeds, dirs, strict=True):
        config = {**base, "seed": seed}
        if rundir.has_checkpoints(run_dir):
            try:
                rundir.check_resumable(run_dir, config)
            except TrainError as err:
                if not s.restart_if_changed:
                    raise
                print(f"{err}\n--restart-if-changed: deleting its checkpoints", file=sys.stderr)
                shutil.rmtree(run_dir / layout.CHECKPOINTS)
        run = Run(seed, run_dir, config, checkpoint_manager(run_dir, s.keep_checkpoints))
        runs.append(run)
        if run.manager.all_steps():
            if abstract is None:
                abstract = abstract_state(
                    agent, base["agent_config"], base["obs_dim"], base["action_dim"]
                )
            rundir.drop_unreadable_checkpoints(run, abstract, s.keep_checkpoints)
    if s.restart_if_changed and len(runs) > 1:
        rundir.align_checkpoints(runs, s.keep_checkpoints)
    return runs


# ----------------------------------------------------------------------------- the loop


@dataclass
class _Session:
    """What the steps of one training session share."""

    s: RunSettings
    agent: ModuleType
    runs: list[Run]
    index: list  # each run's position on the vmapped seed axis ([None]: one seed, no axis)
    runner: ChunkRunner
    wall_start: float
    evaluator: Any
    bar: Any = None
    train_s: float = 0.0  # this session, all seeds together

    def time_s(self, run: Run) -> float:
        return run.prior["wall_s"] + time.perf_counter() - self.wall_start


def train_runs(
    s: RunSettings, agent, runs: list[Run], data_np, wall_start: float, evaluator=None
) -> list[dict]:
    """Resume or initialise every run, run the chunks to s.steps, write the summaries."""
    import jax

    vmapped = len(runs) > 1
    start = rundir.start_step(runs, s.steps)
    for run in runs:
        rundir.write_json(run.dir / layout.CONFIG, run.config)
    data = jax.device_put(data_np)
    state, train_key = initial_state(s, agent, runs, data_np, start, vmapped)
    batch_size = int(runs[0].config["agent_config"]["batch_size"])
    index = list(range(len(runs))) if vmapped else [None]
    runner = ChunkRunner(agent, batch_size, vmapped=vmapped)
    sess = _Session(s, agent, runs, index, runner, wall_start, evaluator)
    intervals = [s.chunk, s.log_interval, s.eval_period, s.checkpoint_interval]
    step = start
    sess.bar = _progress_bar(s, [r.seed for r in runs], start)
    try:
        while step < s.steps and any(run.error is None for run in runs):
            end = next_boundary(step, s.steps, intervals)
            state, metrics, finite = run_chunk(sess, state, data, train_key, step, end)
            live = check_chunk(sess, metrics, finite, step, end)
            step = end
            is_last = end == s.steps
            log_metrics(sess, live, step, is_last)
            if s.eval_period and (step % s.eval_period == 0 or is_last):
                evaluate(sess, live, state, step, is_last)
            if (s.checkpoint_interval and step % s.checkpoint_interval == 0) or is_last:
                save(sess, live, state, train_key, step)
    finally:
        sess.bar.close()
    return write_summaries(sess, start)


def initial_state(s: RunSettings, agent, runs: list[Run], data_np, start: int, vmapped: bool):
    """(state, train_key) of all runs: restored from checkpoint `start`, or initialised; the
    runs' logs reopened up to `start`. Several seeds are stacked along a leading axis."""
    import jax
    import jax.numpy as jnp

    cfg = runs[0].config
    states, keys = [], []
    for run in runs:
        init_key, train_key = root_keys(run.seed)
        meta = {}
        if start:
            if run.restored is not None and run.restored[0] == start:
                state, train_key, meta = run.restored[1]
            else:
                abstract = abstract_state(
                    agent, cfg["agent_config"], cfg["obs_dim"], cfg["action_dim"]
                )
                state, train_key, meta = restore_checkpoint(run.manager, start, abstract)
            run.prior.update({k: meta[k] for k in run.prior if k in meta})
            # The logs up to the checkpoint come from the checkpoint itself (older ones: the files).
            run.sums, run.count = dict(meta.get("sums", {})), int(meta.get("count", 0))
            if start == s.steps:  # stopped after its last checkpoint, before summary.json
                run.final_eval = meta.get("final_eval")
            print(f"resuming {run.dir} from step {start}", file=sys.stderr)
        else:
            state = agent.init(
                init_key, {k: v[:1] for k, v in data_np.items()}, cfg["agent_config"]
            )
        run.restored = None
        states.append(state)
        keys.append(train_key)
        run.metrics_log = CsvLog(run.dir / layout.METRICS, start, meta.get("metrics_rows"))
        run.eval_log = CsvLog(run.dir / layout.EVAL_CURVE, start, meta.get("eval_rows"))
    if not vmapped:
        return states[0], keys[0]
    # Each seed is initialised on its own (bitwise as a separate run), then stacked.
    return jax.tree.map(lambda *xs: jnp.stack(xs), *states), jnp.stack(keys)


def next_boundary(step: int, total: int, intervals: list[int]) -> int:
    """The first step after `step` that is a multiple of an interval (or the last step)."""
    return min([total] + [(step // i + 1) * i for i in intervals if i > 0])


def run_chunk(sess: _Session, state, data, train_key, step: int, end: int):
    """Updates step+1 ... end (compiled first, outside the timing): (state, metrics, finite),
    metrics and finite on the host."""
    import jax
    import jax.numpy as jnp

    sess.runner.get(end - step, state, data, train_key, jnp.int32(step))  # compile
    t0 = time.perf_counter()
    state, metrics, finite = sess.runner(end - step, state, data, train_key, step)
    metrics, finite = jax.device_get((metrics, finite))
    sess.train_s += time.perf_counter() - t0
    sess.bar.update(end - step)
    return state, metrics, finite


def check_chunk(sess: _Session, metrics, finite, step: int, end: int) -> list[tuple[Run, Any]]:
    """The runs still finite after the chunk, their metrics added to the running sums; a run
    that turned non-finite gets its error and is left out from now on."""
    live = []
    for run, i in zip(sess.runs, sess.index, strict=True):
        if run.error is not None:
            continue
        run_metrics = _pick(metrics, i)
        bad = first_bad_metric(run_metrics, step)
        if bad is not None or not bool(_pick(finite, i)):
            last = run.manager.latest_step()
            where = (
                f"last good checkpoint: step {last} in {run.dir / layout.CHECKPOINTS}"
                if last
                else "no checkpoint was written"
            )
            if bad is not None:
                what = f"non-finite {bad[0]} ({bad[2]}) at step {bad[1]}"
            else:
                what = f"non-finite parameters after step {end} (all metrics finite)"
            run.error = f"training diverged: {what}; stopped, {where}"
            sess.bar.write(f"{run.dir}: {run.error}")
            continue
        live.append((run, i))
        for k, v in run_metrics.items():
            run.sums[k] = run.sums.get(k, 0.0) + float(np.sum(v, dtype=np.float64))
        run.count += end - step
    return live


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


def log_metrics(sess: _Session, live, step: int, is_last: bool) -> None:
    """A metrics.csv row (means since the last row) every log interval and at the end."""
    s = sess.s
    for run, _ in live:
        if (s.log_interval and step % s.log_interval == 0) or is_last:
            row = {"step": step, "time_s": round(sess.time_s(run), 3)}
            row.update({k: v / run.count for k, v in run.sums.items()})
            run.metrics_log.write(row)
            run.sums, run.count = {}, 0


def evaluate(sess: _Session, live, state, step: int, is_last: bool) -> None:
    """An eval_curve.csv row per live run from the evaluator passed in."""
    for run, i in live:
        t0 = time.perf_counter()
        result = sess.evaluator(sess.agent, _pick(state, i), run.config, sess.s.eval_episodes)
        seconds = time.perf_counter() - t0
        run.eval_s += seconds
        run.final_eval = result if is_last else None
        run.eval_log.write(
            {
                "step": step,
                "success": result["success"],
                "return": result["return"],
                "eval_s": round(seconds, 3),
                "time_s": round(sess.time_s(run), 3),
            }
        )
        sess.bar.write(f"{run.dir}: step {step}: success {result['success']:.3f}")


def save(sess: _Session, live, state, train_key, step: int) -> None:
    """Checkpoint `step` of every live run, with what a resumed run needs to continue its logs."""
    for run, i in live:
        meta = {
            "wall_s": sess.time_s(run),
            "train_s": run.prior["train_s"] + sess.train_s,
            "eval_s": run.prior["eval_s"] + run.eval_s,
            # What a resumed run needs to continue its logs exactly.
            "metrics_rows": run.metrics_log.rows,
            "eval_rows": run.eval_log.rows,
            "sums": run.sums,
            "count": run.count,
            "final_eval": _strip_eval(run.final_eval),
        }
        save_checkpoint(run.manager, step, _pick(state, i), _pick(train_key, i), meta)


def write_summaries(sess: _Session, start: int) -> list[dict]:
    """summary.json of every run that did not diverge; DivergenceError naming those that did."""
    import jax

    s, runs = sess.s, sess.runs
    summaries = []
    for run in runs:
        if run.error is not None:
            continue
        final_eval = run.final_eval
        total_train_s = run.prior["train_s"] + sess.train_s
        if final_eval is None and s.eval_period and start == s.steps:
            final_eval = rundir.final_eval_from_curve(run.dir, s.steps)
        summary = {
            "agent": s.agent,
            "dataset": run.config["dataset_name"],
            "task": s.task,
            "seed": run.seed,
            "steps": s.steps,
            "resumed_from": start,
            "wall_s": sess.time_s(run),
            "train_s": total_train_s,
            "eval_s": run.prior["eval_s"] + run.eval_s,
            "compile_s": sess.runner.compile_s,
            # Over all sessions: updates per second of compiled update chunks.
            "updates_per_s": s.steps / total_train_s if total_train_s > 0 else None,
            "seeds_in_program": [r.seed for r in runs],
            "final_eval": _strip_eval(final_eval),
            "backend": jax.default_backend(),
        }
        rundir.write_json(run.dir / layout.SUMMARY, summary)
        summaries.append(summary)
    errors = [f"{run.dir}: {run.error}" for run in runs if run.error is not None]
    if errors:
        raise DivergenceError(runs[0].error if len(runs) == 1 else "; ".join(errors))
    return summaries


def _pick(tree, i: int | None):
    import jax

    return tree if i is None else jax.tree.map(lambda x: x[i], tree)


def _strip_eval(result: dict | None) -> dict | None:
    if result is None:
        return None
    return {k: v for k, v in result.items() if k != "per_episode"}


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
