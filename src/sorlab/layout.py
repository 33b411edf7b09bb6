"""The run-directory contract: where every file of a run lives, and how files are written.

    results/runs/<agent>/<env>/task<task>/seed<seed>/
        config.json        the resolved run config (`sorlab train`)
        summary.json       written last by `sorlab train`: the run is complete
        metrics.csv        training metrics, one row per log interval
        eval_curve.csv     periodic evaluations during training
        checkpoints/<step> orbax checkpoints
        eval/<m_inf>_<n>.json   `sorlab evaluate` at M_inf steps, best of N
        value/q_mc.json    the value study (Q against Monte-Carlo returns; its points in q_mc.npz)
    results/logs/<rule>/<agent>/<env>/task<task>/seed<seed>[_<m_inf>_<n>].log
    results/benchmarks/<rule>/<agent>/<env>/task<task>/seed<seed>[_<m_inf>_<n>].tsv

stdlib only: the Snakefile, the studies' workflow helpers and the report all import it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

RESULTS = "results"
RUNS_ROOT = f"{RESULTS}/runs"
LOGS_ROOT = f"{RESULTS}/logs"
BENCHMARKS_ROOT = f"{RESULTS}/benchmarks"
RUN_ID = "{agent}/{env}/task{task}/seed{seed}"
RUN_DIR = f"{RUNS_ROOT}/{RUN_ID}"

CONFIG = "config.json"
SUMMARY = "summary.json"
METRICS = "metrics.csv"
EVAL_CURVE = "eval_curve.csv"
CHECKPOINTS = "checkpoints"
EVAL_DIR = "eval"
VALUE_FILE = "value/q_mc.json"
VALUE_POINTS = "value/q_mc.npz"
LOCK = ".lock"

_SEED_RE = re.compile(r"^seed(\d+)$")
_TASK_RE = re.compile(r"^task(\d+)$")
_EVAL_RE = re.compile(r"^(\d+)_(\d+)\.json$")
_JOB_SEED_RE = re.compile(r"^seed(\d+)(?:_(\d+)_(\d+))?\.\w+$")


def run_dir(agent: str, env: str, task: int, seed: int, root: str | Path = ".") -> Path:
    """root/results/runs/<agent>/<env>/task<task>/seed<seed>."""
    return Path(root) / RUN_DIR.format(agent=agent, env=env, task=task, seed=seed)


def eval_name(m_inf: int, n: int) -> str:
    """'8_4.json': the evaluation at M_inf 8, best of 4."""
    return f"{m_inf}_{n}.json"


def eval_path(run: str | Path, m_inf: int, n: int) -> Path:
    return Path(run) / EVAL_DIR / eval_name(m_inf, n)


def parse_eval_name(name: str) -> tuple[int, int] | None:
    """'8_4.json' -> (8, 4); None for any other name."""
    match = _EVAL_RE.match(name)
    return (int(match.group(1)), int(match.group(2))) if match else None


def parse_run_dir(path: str | Path) -> tuple[str, str, int, int] | None:
    """.../<agent>/<env>/task<k>/seed<s> -> (agent, env, k, s); None if the path is not one."""
    parts = Path(path).parts
    if len(parts) < 4:
        return None
    seed, task = _SEED_RE.match(parts[-1]), _TASK_RE.match(parts[-2])
    if not (seed and task):
        return None
    return parts[-4], parts[-3], int(task.group(1)), int(seed.group(1))


def parse_job_name(
    parts: tuple[str, ...],
) -> tuple[tuple[str, str, int, int], tuple[int, int] | None] | None:
    """A job's log or benchmark path below <root>/<rule>/: (agent, env, task<k>,
    seed<s>[_<m_inf>_<n>].<ext>) -> ((agent, env, k, s), (m_inf, n) or None); None for any
    other path (e.g. a dataset's or the report's)."""
    if len(parts) != 4:
        return None
    seed, task = _JOB_SEED_RE.match(parts[3]), _TASK_RE.match(parts[2])
    if not (seed and task):
        return None
    run = (parts[0], parts[1], int(task.group(1)), int(seed.group(1)))
    point = (int(seed.group(2)), int(seed.group(3))) if seed.group(2) is not None else None
    return run, point


def tmp_path(path: str | Path) -> Path:
    """The temporary name a file is written under before it is renamed over `path` (same
    directory, hidden, per process)."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp{os.getpid()}")


def write_json(path: str | Path, obj: Any, indent: int = 2, default=None) -> None:
    """Write JSON atomically (a temporary file renamed over `path`): readers never see half."""
    write_text(path, json.dumps(obj, indent=indent, default=default) + "\n")


def write_text(path: str | Path, text: str) -> None:
    """Write text atomically (see `write_json`)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary name to write `path` under; renamed over `path` when the block ends, removed
    if it raises (e.g. a full disk): `path` is whole or as it was before, never cut short."""
    tmp = tmp_path(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
