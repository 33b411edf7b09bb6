"""Read `results/` into tidy DataFrames, checking every file it reads.

Layout (docs/interfaces.md):
    results/runs/{agent}/{env}/task{task}/seed{seed}/config.json      required
    .../summary.json                                                 optional (unfinished run)
    .../eval_curve.csv                                               optional
    .../eval/{m_inf}_{n}.json                                        optional
    results/benchmarks/<rule>/{agent}/{env}/task{task}/seed{seed}[_{m_inf}_{n}].tsv  optional

A malformed file raises `ReportInputError` naming the file and the problem.
"""

from __future__ import annotations

import json
import math
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm import tqdm

RUN_COLUMNS = [
    "agent", "env", "task", "seed", "m_btt", "m_train", "steps", "wall_s", "train_s",
    "updates_per_s", "compile_s", "eval_s", "seeds_per_program", "final_success", "final_return", "has_summary", "run_dir",
    "eval_m_inf", "num_transitions", "data_fraction", "dataset_name", "actor_dims", "value_dims",
]  # fmt: skip
EVAL_COLUMNS = [
    "agent", "env", "task", "seed", "m_inf", "n", "success", "return", "ms_per_action", "episodes",
]  # fmt: skip
CURVE_COLUMNS = ["agent", "env", "task", "seed", "step", "success"]
BENCH_COLUMNS = ["rule", "agent", "env", "task", "seed", "m_inf", "n", "s", "max_rss_mb", "path"]

# Keys under which summary.json may hold the final evaluation (the trainer's choice).
_FINAL_EVAL_KEYS = ("final_eval", "final_evaluation", "evaluation", "eval", "final")
_TASK_RE = re.compile(r"^(?:task)?(\d+)$")
_SEED_RE = re.compile(r"^seed(\d+)$")
_EVAL_RE = re.compile(r"^(\d+)_(\d+)\.json$")
_BENCH_SEED_RE = re.compile(r"^seed(\d+)(?:_(\d+)_(\d+))?\.tsv$")


class ReportInputError(ValueError):
    """A file under results/ is missing where required, or malformed."""


@dataclass
class Results:
    runs: pd.DataFrame  # one row per run (agent, env, task, seed)
    evals: pd.DataFrame  # one row per run and (m_inf, n) grid point
    curves: pd.DataFrame  # one row per run and periodic evaluation step
    benchmarks: pd.DataFrame  # one row per benchmark TSV
    notes: list[str] = field(default_factory=list)  # what was skipped, and why


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ReportInputError(f"{path}: cannot read JSON ({e})") from e
    if not isinstance(data, dict):
        raise ReportInputError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def _find_key(tree: Any, key: str) -> Any:
    """The value of `key` anywhere in nested dicts (breadth first), or None."""
    queue = [tree]
    while queue:
        node = queue.pop(0)
        if isinstance(node, dict):
            if key in node:
                return node[key]
            queue.extend(v for v in node.values() if isinstance(v, dict))
    return None


def _number(value: Any, path: Path, key: str, *, required: bool, lo: float | None = None,
            hi: float | None = None) -> float:  # fmt: skip
    if value is None:
        if required:
            raise ReportInputError(f"{path}: missing required key {key!r}")
        return math.nan
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ReportInputError(f"{path}: key {key!r} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value) and required:
        raise ReportInputError(f"{path}: key {key!r} is not finite ({value})")
    if math.isfinite(value) and (
        (lo is not None and value < lo) or (hi is not None and value > hi)
    ):
        raise ReportInputError(f"{path}: key {key!r} = {value} is outside [{lo}, {hi}]")
    return value


def _dims(value: Any) -> str:
    """Layer sizes as text ('128 128 128'); '' when the config has none."""
    if isinstance(value, list | tuple) and all(isinstance(v, int) for v in value):
        return " ".join(str(v) for v in value)
    return ""


def _read_config(path: Path) -> dict[str, Any]:
    """M_BTT and M (NaN for agents without them, the baselines) and what the run's budget was
    (data size, network sizes, the periodic evaluations' M_inf) from a run's config.json."""
    if not path.is_file():
        raise ReportInputError(f"{path}: missing (every run directory needs its config.json)")
    config = _read_json(path)
    m_btt = _number(
        _find_key(config, "max_k_backprop"), path, "max_k_backprop", required=False, lo=1
    )
    m = _number(
        _find_key(config, "denoise_timesteps"), path, "denoise_timesteps", required=False, lo=1
    )
    fraction = config.get("data_fraction")
    name = config.get("dataset_name")
    return {
        "m_btt": m_btt,
        "m_train": m,
        "eval_m_inf": _number(config.get("eval_m_inf"), path, "eval_m_inf", required=False, lo=1),
        "num_transitions": _number(
            config.get("num_transitions"), path, "num_transitions", required=False, lo=0
        ),
        "data_fraction": _number(fraction, path, "data_fraction", required=False, lo=0, hi=1),
        "dataset_name": name if isinstance(name, str) else "",
        "actor_dims": _dims(_find_key(config, "actor_hidden_dims")),
        "value_dims": _dims(_find_key(config, "value_hidden_dims")),
    }


def _read_summary(path: Path) -> dict[str, float]:
    summary = _read_json(path)
    out = {
        "steps": _number(summary.get("steps"), path, "steps", required=True, lo=0),
        "wall_s": _number(summary.get("wall_s"), path, "wall_s", required=True, lo=0),
        "train_s": _number(summary.get("train_s"), path, "train_s", required=False, lo=0),
        "updates_per_s": _number(
            summary.get("updates_per_s"), path, "updates_per_s", required=False, lo=0
        ),
        "compile_s": _number(summary.get("compile_s"), path, "compile_s", required=False, lo=0),
        "eval_s": _number(summary.get("eval_s"), path, "eval_s", required=False, lo=0),
    }
    # `sorlab train` may train several seeds in one vmapped program; its times cover them all.
    seeds = summary.get("seeds_in_program")
    out["seeds_per_program"] = float(len(seeds)) if isinstance(seeds, list) and seeds else 1.0
    final = next(
        (summary[k] for k in _FINAL_EVAL_KEYS if isinstance(summary.get(k), dict)), summary
    )
    out["final_success"] = _number(
        final.get("success"), path, "success", required=False, lo=0, hi=1
    )
    out["final_return"] = _number(final.get("return"), path, "return", required=False)
    return out


def _read_eval(path: Path, m_inf: int, n: int) -> dict[str, float]:
    data = _read_json(path)
    for key, expected in (("m_inf", m_inf), ("n", n)):
        if key in data and data[key] != expected:
            raise ReportInputError(
                f"{path}: key {key!r} = {data[key]!r} disagrees with the file name ({expected})"
            )
    return {
        "m_inf": m_inf,
        "n": n,
        "success": _number(data.get("success"), path, "success", required=True, lo=0, hi=1),
        "return": _number(data.get("return"), path, "return", required=False),
        "ms_per_action": _number(
            data.get("ms_per_action"), path, "ms_per_action", required=False, lo=0
        ),
        "episodes": _number(data.get("episodes"), path, "episodes", required=False, lo=0),
    }


def _read_csv(path: Path, required: list[str], sep: str = ",") -> pd.DataFrame:
    try:
        frame = pd.read_csv(path, sep=sep, na_values=["-", "NA", "nan", ""])
    except pd.errors.EmptyDataError:
        return pd.DataFrame(columns=required)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError) as e:
        raise ReportInputError(f"{path}: cannot parse ({e})") from e
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise ReportInputError(f"{path}: missing column(s) {missing}; found {list(frame.columns)}")
    for column in required:
        values = pd.to_numeric(frame[column], errors="coerce")
        bad = values.isna() & frame[column].notna()
        if bad.any():
            row = int(bad.to_numpy().nonzero()[0][0])
            raise ReportInputError(
                f"{path}: column {column!r} has a non-numeric value {frame[column].iloc[row]!r} "
                f"(data row {row + 1})"
            )
        frame[column] = values
    return frame


def _read_curve(path: Path) -> pd.DataFrame:
    frame = _read_csv(path, ["step", "success"])
    frame = frame.dropna(subset=["step", "success"])
    out_of_range = (frame["success"] < 0) | (frame["success"] > 1)
    if out_of_range.any():
        raise ReportInputError(
            f"{path}: column 'success' must be a rate in [0, 1], got "
            f"{frame['success'][out_of_range].iloc[0]!r}"
        )
    return frame[["step", "success"]]


def _read_benchmark(path: Path) -> tuple[float, float]:
    """(mean seconds, max resident memory in MB) of a Snakemake benchmark TSV."""
    frame = _read_csv(path, ["s"], sep="\t")
    if frame.empty:
        raise ReportInputError(f"{path}: benchmark file has no rows")
    rss = pd.to_numeric(frame["max_rss"], errors="coerce") if "max_rss" in frame else None
    max_rss = float(rss.max()) if rss is not None and rss.notna().any() else math.nan
    return float(frame["s"].mean()), max_rss


def _run_dirs(runs_root: Path) -> list[tuple[str, str, int, int, Path]]:
    found = []
    for seed_dir in sorted(runs_root.glob("*/*/*/seed*")):
        task_match = _TASK_RE.match(seed_dir.parent.name)
        seed_match = _SEED_RE.match(seed_dir.name)
        if not seed_dir.is_dir() or not task_match or not seed_match:
            continue
        agent, env = seed_dir.parent.parent.parent.name, seed_dir.parent.parent.name
        found.append((agent, env, int(task_match[1]), int(seed_match[1]), seed_dir))
    return found


def collect(results_dir: str | Path) -> Results:
    """Everything the report needs from `results_dir`, as DataFrames."""
    results_dir = Path(results_dir)
    notes: list[str] = []
    runs, evals, curves = [], [], []
    run_dirs = _run_dirs(results_dir / "runs")
    for agent, env, task, seed, run_dir in tqdm(
        run_dirs, desc="report: reading runs", leave=False, mininterval=2.0
    ):
        key = {"agent": agent, "env": env, "task": task, "seed": seed}
        row = {**key, **_read_config(run_dir / "config.json"), "run_dir": str(run_dir)}
        summary_path = run_dir / "summary.json"
        if summary_path.is_file():
            row.update(_read_summary(summary_path), has_summary=True)
        else:
            notes.append(f"{summary_path}: missing (unfinished run): no training cost for it")
            row["has_summary"] = False
        runs.append(row)
        for path in sorted((run_dir / "eval").glob("*.json")):
            match = _EVAL_RE.match(path.name)
            if not match:
                notes.append(f"{path}: name is not <m_inf>_<n>.json: ignored")
                continue
            evals.append({**key, **_read_eval(path, int(match[1]), int(match[2]))})
        curve_path = run_dir / "eval_curve.csv"
        if curve_path.is_file():
            for step, success in _read_curve(curve_path).itertuples(index=False):
                curves.append({**key, "step": int(step), "success": float(success)})
    benchmarks = []
    bench_root = results_dir / "benchmarks"
    for path in sorted(bench_root.rglob("*.tsv")):
        parts = path.relative_to(bench_root).parts
        seconds, rss = _read_benchmark(path)
        row = {"rule": parts[0], "s": seconds, "max_rss_mb": rss, "path": str(path)}
        match = _BENCH_SEED_RE.match(parts[-1])
        task_match = _TASK_RE.match(parts[3]) if len(parts) == 5 else None
        if match and task_match:
            row.update(agent=parts[1], env=parts[2], task=int(task_match[1]), seed=int(match[1]))
            if match[2] is not None:
                row.update(m_inf=int(match[2]), n=int(match[3]))
        benchmarks.append(row)

    def frame(rows: list[dict], columns: list[str]) -> pd.DataFrame:
        return pd.DataFrame(rows, columns=columns)

    if not run_dirs:
        notes.append(f"{results_dir / 'runs'}: no run directories found")
    results = Results(
        runs=frame(runs, RUN_COLUMNS),
        evals=frame(evals, EVAL_COLUMNS),
        curves=frame(curves, CURVE_COLUMNS),
        benchmarks=frame(benchmarks, BENCH_COLUMNS),
        notes=notes,
    )
    add_variants(results)
    return results


def add_variants(results: Results) -> None:
    """Name each run's variant: the agent, plus its M_BTT when one agent has several.

    Runs of one agent trained with different `max_k_backprop` are different training-compute
    settings, so they must not be averaged together.
    """
    runs = results.runs
    n_mbtt = runs.groupby("agent")["m_btt"].nunique(dropna=True)
    several = set(n_mbtt[n_mbtt > 1].index)

    def name(agent: str, m_btt: float) -> str:
        if agent in several and not math.isnan(m_btt):
            return f"{agent} (M_BTT={int(m_btt)})"
        return agent

    runs["variant"] = [name(a, m) for a, m in zip(runs["agent"], runs["m_btt"], strict=True)]
    if runs["m_btt"].isna().any():
        mixed = runs[runs["agent"].isin(several) & runs["m_btt"].isna()]
        if not mixed.empty:
            warnings.warn(
                f"agent {mixed['agent'].iloc[0]!r} has runs with and without max_k_backprop",
                stacklevel=2,
            )
    keys = ["agent", "env", "task", "seed"]
    lookup = runs[keys + ["variant", "m_btt", "m_train"]]
    for name_ in ("evals", "curves", "benchmarks"):
        table = getattr(results, name_)
        if name_ == "benchmarks":
            table = table.astype({"task": "float", "seed": "float"})
            lookup_b = lookup.astype({"task": "float", "seed": "float"})
            merged = table.merge(lookup_b, on=keys, how="left")
        else:
            merged = table.merge(lookup, on=keys, how="left")
        setattr(results, name_, merged)
