"""Statistics: seed-level means, the default inference point, rliable IQM and profiles.

Convention everywhere: success rates are averaged over the tasks of an environment within
each seed first; the mean and the sample standard deviation (ddof=1) are then taken over seeds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd
import scipy.stats

from sorlab.results import Results

DEFAULT_BOOTSTRAP_REPS = 2000
DEFAULT_BOOTSTRAP_SEED = 0


def over_seeds(frame: pd.DataFrame, by: list[str], value: str = "success") -> pd.DataFrame:
    """Mean over tasks within each seed, then mean, std (ddof=1), count over seeds.

    Returns one row per `by` group with columns mean, std, n_seeds, n_tasks (the most tasks
    any seed of the group has).
    """
    columns = [*by, "mean", "std", "n_seeds", "n_tasks"]
    frame = frame.dropna(subset=[value])
    if frame.empty:
        return pd.DataFrame(columns=columns)
    per_seed = frame.groupby([*by, "seed"], dropna=False).agg(
        value=(value, "mean"), n_tasks=("task", "nunique")
    )
    stats = per_seed.groupby(level=list(range(len(by))), dropna=False).agg(
        mean=("value", "mean"),
        std=("value", lambda x: float(np.std(x, ddof=1)) if len(x) > 1 else math.nan),
        n_seeds=("value", "size"),
        n_tasks=("n_tasks", "max"),
    )
    return stats.reset_index()[columns]


def default_inference(
    results: Results, overrides: Mapping[str, tuple[int, int]] | None = None
) -> dict[str, tuple[int, int] | None]:
    """Each variant's (M_inf, N) for Table 1 and the aggregates.

    Default: N = 1 and the largest M_inf that every evaluated run of the variant has at N = 1
    (agents without test-time scaling ignore M_inf, so any grid point is the same policy).
    `overrides` maps an agent or variant name to (M_inf, N). None: the variant has no
    `eval/` files, and its final training evaluation (summary.json) is used instead.
    """
    overrides = dict(overrides or {})
    choice: dict[str, tuple[int, int] | None] = {}
    evals = results.evals
    for variant in sorted(results.runs["variant"].unique()):
        agent = results.runs.loc[results.runs["variant"] == variant, "agent"].iloc[0]
        if variant in overrides or agent in overrides:
            choice[variant] = tuple(overrides.get(variant, overrides.get(agent)))  # type: ignore[assignment]
            continue
        mine = evals[evals["variant"] == variant]
        if mine.empty:
            choice[variant] = None
            continue
        n1 = mine[mine["n"] == 1]
        pool = n1 if not n1.empty else mine[mine["n"] == mine["n"].min()]
        per_run = pool.groupby(["env", "task", "seed"])["m_inf"].apply(set)
        common = set.intersection(*per_run) if len(per_run) else set()
        m_inf = max(common) if common else int(pool["m_inf"].max())
        choice[variant] = (int(m_inf), int(pool["n"].iloc[0]))
    return choice


def default_scores(results: Results, choice: Mapping[str, tuple[int, int] | None]) -> pd.DataFrame:
    """One success per run at its variant's default inference point.

    Columns: variant, agent, m_btt, env, task, seed, success, m_inf, n, source.
    """
    columns = [
        "variant",
        "agent",
        "m_btt",
        "env",
        "task",
        "seed",
        "success",
        "m_inf",
        "n",
        "source",
    ]
    parts = []
    for variant, point in choice.items():
        if point is None:
            runs = results.runs[results.runs["variant"] == variant]
            part = runs.assign(success=runs["final_success"], m_inf=np.nan, n=np.nan)
            part = part.assign(source="summary.json final evaluation")
        else:
            evals = results.evals
            part = evals[
                (evals["variant"] == variant)
                & (evals["m_inf"] == point[0])
                & (evals["n"] == point[1])
            ]
            part = part.assign(source=f"eval/{point[0]}_{point[1]}.json")
            agent = results.runs.loc[results.runs["variant"] == variant, "agent"].iloc[0]
            part = part.assign(agent=agent)
        parts.append(part[columns])
    if not parts:
        return pd.DataFrame(columns=columns)
    return pd.concat(parts, ignore_index=True).dropna(subset=["success"])


def final_evals_scores(results: Results, final_evals: int) -> tuple[pd.DataFrame, list[str]]:
    """One success per run: the mean of its last `final_evals` periodic evaluations
    (eval_curve.csv, the training's own inference), the published papers' protocol.

    Same columns as `default_scores`; m_inf is the periodic evaluations' (config.json
    `eval_m_inf`), n = 1. Runs with fewer evaluations use what they have (noted).
    """
    columns = ["variant", "agent", "m_btt", "env", "task", "seed", "success", "m_inf", "n",
               "source"]  # fmt: skip
    notes: list[str] = []
    curves = results.curves.dropna(subset=["success"])
    if curves.empty:
        return pd.DataFrame(columns=columns), notes
    keys = ["agent", "env", "task", "seed"]
    last = curves.sort_values("step").groupby(keys, group_keys=False).tail(final_evals)
    per_run = last.groupby(keys).agg(success=("success", "mean"), n_evals=("step", "size"))
    per_run = per_run.reset_index().merge(
        results.runs[[*keys, "variant", "m_btt", "eval_m_inf"]], on=keys, how="left"
    )
    short = per_run[per_run["n_evals"] < final_evals]
    for variant, group in short.groupby("variant"):
        notes.append(f"{variant}: {len(group)} run(s) have fewer than {final_evals} periodic "
                     f"evaluations (mean over {int(group['n_evals'].min())})")  # fmt: skip
    source = f"eval_curve.csv, mean of the last {final_evals}"
    scores = per_run.assign(m_inf=per_run["eval_m_inf"], n=1.0, source=source)
    return scores[columns], notes


def score_matrices(scores: pd.DataFrame) -> tuple[dict[str, np.ndarray], list[str]]:
    """rliable's input: per variant a (num_seeds, num_env_tasks) array of success rates.

    rliable needs the same env-tasks for every variant and the same seeds for every env-task,
    so this keeps the env-tasks that every variant has (or, when none is shared, each
    variant's own) and, per variant, the seeds present on all of them. Returns the matrices
    and notes saying what was left out.
    """
    notes: list[str] = []
    if scores.empty:
        return {}, ["no scores: no aggregates"]
    scores = scores.assign(
        env_task=scores["env"] + "/task" + scores["task"].astype(int).astype(str)
    )
    by_variant = {v: g for v, g in scores.groupby("variant")}
    shared = set.intersection(*(set(g["env_task"]) for g in by_variant.values()))
    if not shared:
        notes.append("no env-task is shared by all agents: each agent is aggregated over its own")
    matrices = {}
    for variant, group in by_variant.items():
        tasks = sorted(shared) if shared else sorted(set(group["env_task"]))
        dropped = sorted(set(group["env_task"]) - set(tasks))
        if dropped:
            notes.append(f"{variant}: left out env-tasks not shared by all agents: {dropped}")
        group = group[group["env_task"].isin(tasks)]
        seeds = set.intersection(*(set(g["seed"]) for _, g in group.groupby("env_task")))
        left_out = sorted(set(group["seed"]) - seeds)
        if left_out:
            notes.append(f"{variant}: left out seeds missing on some env-task: {left_out}")
        if not seeds:
            notes.append(f"{variant}: no seed is present on every env-task: not aggregated")
            continue
        table = group.pivot_table(
            index="seed", columns="env_task", values="success", aggfunc="mean"
        )
        matrices[variant] = table.loc[sorted(seeds), tasks].to_numpy(dtype=float)
    return matrices, notes


# rliable 1.2.0's `library` (its bootstrap) cannot be imported here: it needs arch < 8, and
# arch 7.x uses a pandas API that pandas 3 removed. So the metrics come from `rliable.metrics`
# and the stratified bootstrap is written out below, following rliable's StratifiedBootstrap
# (resample runs with replacement independently within each task; percentile intervals).
def _aggregates(samples: np.ndarray) -> np.ndarray:
    """IQM, mean, median of each (runs, tasks) array in a (reps, runs, tasks) stack."""
    flat = samples.reshape(samples.shape[0], -1)
    return np.stack(
        [
            scipy.stats.trim_mean(flat, proportiontocut=0.25, axis=1),
            flat.mean(axis=1),
            np.median(flat, axis=1),
        ],
        axis=1,
    )


def bootstrap_samples(matrix: np.ndarray, reps: int, seed: int) -> np.ndarray:
    """`reps` stratified resamples of a (runs, tasks) matrix: (reps, runs, tasks).

    Each task's runs are resampled with replacement on their own (tasks are strata).
    """
    runs, tasks = matrix.shape
    rows = np.random.default_rng(seed).integers(0, runs, size=(reps, runs, tasks))
    return matrix[rows, np.arange(tasks)]


def _percentile_interval(stats: np.ndarray, size: float = 0.95) -> np.ndarray:
    tail = 100 * (1 - size) / 2
    return np.percentile(stats, [tail, 100 - tail], axis=0)


def iqm(scores: np.ndarray) -> float:
    """Interquartile mean over all runs and tasks (rliable's definition)."""
    from rliable import metrics

    return float(metrics.aggregate_iqm(scores))


def interval_estimates(
    matrices: Mapping[str, np.ndarray],
    reps: int = DEFAULT_BOOTSTRAP_REPS,
    seed: int = DEFAULT_BOOTSTRAP_SEED,
) -> pd.DataFrame:
    """IQM, mean and median with 95% stratified-bootstrap intervals per variant (in %)."""
    from rliable import metrics

    names = ("iqm", "mean", "median")
    columns = ["variant", "n_seeds", "n_env_tasks", "n_runs"]
    for name in names:
        columns += [name, f"{name}_ci_low", f"{name}_ci_high"]
    rows = []
    for variant, matrix in matrices.items():
        point = [metrics.aggregate_iqm(matrix), metrics.aggregate_mean(matrix),
                 metrics.aggregate_median(matrix)]  # fmt: skip
        interval = _percentile_interval(_aggregates(bootstrap_samples(matrix, reps, seed)))
        row = {
            "variant": variant,
            "n_seeds": matrix.shape[0],
            "n_env_tasks": matrix.shape[1],
            "n_runs": matrix.size,
        }
        for i, name in enumerate(names):
            row[name] = 100 * float(point[i])
            row[f"{name}_ci_low"] = 100 * float(interval[0, i])
            row[f"{name}_ci_high"] = 100 * float(interval[1, i])
        rows.append(row)
    return pd.DataFrame(rows, columns=columns)


def performance_profiles(
    matrices: Mapping[str, np.ndarray],
    taus: np.ndarray,
    reps: int = DEFAULT_BOOTSTRAP_REPS,
    seed: int = DEFAULT_BOOTSTRAP_SEED,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Fraction of runs with success > tau (rliable's score distribution), with its 95%
    stratified-bootstrap interval (2, len(taus)), per variant."""
    out = {}
    for variant, matrix in matrices.items():
        profile = (matrix.reshape(-1, 1) > taus).mean(axis=0)
        samples = bootstrap_samples(matrix, reps, seed).reshape(reps, -1, 1)
        out[variant] = (profile, _percentile_interval((samples > taus).mean(axis=1)))
    return out
