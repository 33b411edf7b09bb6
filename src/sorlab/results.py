"""The one reader of results/: run directories (sorlab.layout) and the workflow's benchmark files.

The report (`sorlab.report`) and the studies (`sorlab.studies`) read results/ only through here:

    results/runs/<agent>/<env>/task<k>/seed<s>/    (the agent part may name a config variant)
        config.json           required: the resolved run config `sorlab train` writes first
        summary.json          optional: written last by `sorlab train` (absent: unfinished run)
        eval/<m_inf>_<n>.json optional: `sorlab evaluate`
        eval_curve.csv        optional: the periodic evaluations during training
        value/q_mc.json       optional: the value study
    results/benchmarks/<rule>/<agent>/<env>/task<k>/seed<s>[_<m_inf>_<n>].tsv   optional

`run_settings` is the one place that names what a run was trained with (the config.json keys
the tables show). Every file read is checked: a required file that is missing, or a malformed
one, raises ResultsError whose message starts with the file's path.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from sorlab import layout
from sorlab.errors import ResultsError

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
RUN_KEYS = ["agent", "env", "task", "seed"]


# ----------------------------------------------------------------------------- checked values


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ResultsError(f"{path}: cannot read JSON ({e})") from e
    if not isinstance(data, dict):
        raise ResultsError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def _number(value: Any, path: Path, key: str, *, required: bool, lo: float | None = None,
            hi: float | None = None) -> float:  # fmt: skip
    """`value` as a float (NaN when absent and not required), checked against [lo, hi]."""
    if value is None:
        if required:
            raise ResultsError(f"{path}: missing required key {key!r}")
        return math.nan
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ResultsError(f"{path}: key {key!r} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value) and required:
        raise ResultsError(f"{path}: key {key!r} is not finite ({value})")
    if math.isfinite(value) and (
        (lo is not None and value < lo) or (hi is not None and value > hi)
    ):
        raise ResultsError(f"{path}: key {key!r} = {value} is outside [{lo}, {hi}]")
    return value


def _numbers(data: dict, path: Path, spec: dict[str, tuple]) -> dict[str, float]:
    """{key: _number(data[key], ...)} for `spec` = {key: (required, lo, hi)}."""
    return {
        key: _number(data.get(key), path, key, required=required, lo=lo, hi=hi)
        for key, (required, lo, hi) in spec.items()
    }


def _dims(value: Any) -> str:
    """Layer sizes as text ('128 128 128'); '' when the config has none."""
    if isinstance(value, list | tuple) and all(isinstance(v, int) for v in value):
        return " ".join(str(v) for v in value)
    return ""


def read_csv(path: Path, required: list[str], sep: str = ",") -> pd.DataFrame:
    """A CSV/TSV whose `required` columns must exist and be numeric ('-', 'NA', '' are NaN)."""
    try:
        frame = pd.read_csv(path, sep=sep, na_values=["-", "NA", "nan", ""])
    except pd.errors.EmptyDataError:
        return pd.DataFrame(columns=required)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError) as e:
        raise ResultsError(f"{path}: cannot parse ({e})") from e
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise ResultsError(f"{path}: missing column(s) {missing}; found {list(frame.columns)}")
    for column in required:
        values = pd.to_numeric(frame[column], errors="coerce")
        bad = values.isna() & frame[column].notna()
        if bad.any():
            row = int(bad.to_numpy().nonzero()[0][0])
            raise ResultsError(
                f"{path}: column {column!r} has a non-numeric value {frame[column].iloc[row]!r} "
                f"(data row {row + 1})"
            )
        frame[column] = values
    return frame


# ----------------------------------------------------------------------------- one file each


def run_settings(config: dict, path: Path) -> dict[str, Any]:
    """What a run was trained with, from its config.json (`sorlab train`): the only place that
    names the trainer's keys. NaN (or '') where the run's agent has no such setting.

    m_btt / m_train: SORL's training compute (agent_config max_k_backprop / denoise_timesteps);
    update_semantics: SORL's released/clean update; actor_dims / value_dims: layer sizes;
    eval_m_inf: the periodic evaluations' M_inf; data_fraction (NaN: all data), data_episodes,
    num_transitions and dataset_name: what it trained on.
    """
    agent_config = config.get("agent_config") or {}
    name = config.get("dataset_name")
    return {
        "m_btt": _number(
            agent_config.get("max_k_backprop"), path, "max_k_backprop", required=False, lo=1
        ),
        "m_train": _number(
            agent_config.get("denoise_timesteps"), path, "denoise_timesteps", required=False, lo=1
        ),
        "update_semantics": agent_config.get("update_semantics"),
        **_numbers(
            config,
            path,
            {
                "eval_m_inf": (False, 1, None),
                "num_transitions": (False, 0, None),
                "data_fraction": (False, 0, 1),
                "data_episodes": (False, 0, None),
            },
        ),  # fmt: skip
        "dataset_name": name if isinstance(name, str) else "",
        "actor_dims": _dims(agent_config.get("actor_hidden_dims")),
        "value_dims": _dims(agent_config.get("value_hidden_dims")),
    }


def read_config(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ResultsError(f"{path}: missing (every run directory needs its config.json)")
    return read_json(path)


def read_summary(path: Path) -> dict[str, float]:
    """summary.json's numbers: steps and wall_s required, the final training evaluation
    (`final_eval`, null when there was none) as final_success / final_return."""
    summary = read_json(path)
    out = _numbers(summary, path, {
        "steps": (True, 0, None),
        "wall_s": (True, 0, None),
        "train_s": (False, 0, None),
        "updates_per_s": (False, 0, None),
        "compile_s": (False, 0, None),
        "eval_s": (False, 0, None),
    })  # fmt: skip
    # `sorlab train` may train several seeds in one vmapped program; its times cover them all.
    seeds = summary.get("seeds_in_program")
    out["seeds_per_program"] = float(len(seeds)) if isinstance(seeds, list) and seeds else 1.0
    final = summary.get("final_eval")
    final = final if isinstance(final, dict) else {}
    out["final_success"] = _number(
        final.get("success"), path, "success", required=False, lo=0, hi=1
    )
    out["final_return"] = _number(final.get("return"), path, "return", required=False)
    return out


def read_eval(path: Path, m_inf: int, n: int) -> dict[str, float]:
    data = read_json(path)
    for key, expected in (("m_inf", m_inf), ("n", n)):
        if key in data and data[key] != expected:
            raise ResultsError(
                f"{path}: key {key!r} = {data[key]!r} disagrees with the file name ({expected})"
            )
    return {
        "m_inf": m_inf,
        "n": n,
        **_numbers(data, path, {
            "success": (True, 0, 1),
            "return": (False, None, None),
            "ms_per_action": (False, 0, None),
            "episodes": (False, 0, None),
        }),
    }  # fmt: skip


def read_curve(path: Path) -> pd.DataFrame:
    """eval_curve.csv's rows with a step and a success rate in [0, 1] (every column kept)."""
    frame = read_csv(path, ["step", "success"])
    frame = frame.dropna(subset=["step", "success"])
    out_of_range = (frame["success"] < 0) | (frame["success"] > 1)
    if out_of_range.any():
        raise ResultsError(
            f"{path}: column 'success' must be a rate in [0, 1], got "
            f"{frame['success'][out_of_range].iloc[0]!r}"
        )
    return frame


def read_benchmark(path: Path) -> tuple[float, float]:
    """(mean seconds, max resident memory in MB) of a Snakemake benchmark TSV."""
    frame = read_csv(path, ["s"], sep="\t")
    if frame.empty:
        raise ResultsError(f"{path}: benchmark file has no rows")
    rss = pd.to_numeric(frame["max_rss"], errors="coerce") if "max_rss" in frame else None
    max_rss = float(rss.max()) if rss is not None and rss.notna().any() else math.nan
    return float(frame["s"].mean()), max_rss


# ----------------------------------------------------------------------------- one run


@dataclass
class Run:
    """One run directory, read and checked."""

    dir: Path
    variant: str  # the directory's agent part: an agent, or a config `variants` name
    env: str
    task: int
    seed: int
    config: dict  # config.json as written
    settings: dict  # run_settings(config)
    summary: dict | None  # read_summary; None: an unfinished run
    evals: dict[tuple[int, int], dict] = field(default_factory=dict)  # (m_inf, n) -> read_eval
    curve: pd.DataFrame | None = None  # read_curve; None: no eval_curve.csv
    value: dict | None = None  # value/q_mc.json
    notes: list[str] = field(default_factory=list)  # files passed over, and why

    @property
    def agent(self) -> str:
        """The agent trained (a variant's base agent)."""
        return self.config.get("agent", self.variant)

    @property
    def data_fraction(self) -> float:
        fraction = self.settings["data_fraction"]
        return 1.0 if not fraction or math.isnan(fraction) else fraction

    @property
    def train_s(self) -> float:
        """Training seconds without evaluations (wall_s when the trainer did not say)."""
        if not self.summary:
            return math.nan
        train_s = self.summary["train_s"]
        return self.summary["wall_s"] if math.isnan(train_s) else train_s

    @property
    def wall_s(self) -> float:
        return self.summary["wall_s"] if self.summary else math.nan

    @property
    def steps(self) -> int:
        return int(self.summary["steps"]) if self.summary else 0

    def default_point(self) -> tuple[int, int] | None:
        """N = 1 and the largest evaluated M_inf (what Table 1 uses), or None without evals."""
        points = [p for p in self.evals if p[1] == 1] or list(self.evals)
        return max(points) if points else None

    def success(self, point: tuple[int, int] | None = None) -> float:
        """Success at an (M_inf, N) point (default: default_point), else the final training
        evaluation of summary.json, else NaN."""
        point = point or self.default_point()
        if point is not None and point in self.evals:
            return self.evals[point]["success"]
        return self.summary["final_success"] if self.summary else math.nan


def load_run(
    run_dir: str | Path, m_inf: list[int] | None = None, n: list[int] | None = None
) -> Run:
    """A run directory's files; only evaluations at M_inf in `m_inf` and N in `n` (None: all),
    so that a study reads its own config's grid where another evaluated the same run further."""
    run_dir = Path(run_dir)
    parsed = layout.parse_run_dir(run_dir)
    if parsed is None:
        raise ResultsError(f"{run_dir}: not a run directory {layout.RUN_ID}")
    variant, env, task, seed = parsed
    config_path, summary_path = run_dir / layout.CONFIG, run_dir / layout.SUMMARY
    config = read_config(config_path)
    summary = read_summary(summary_path) if summary_path.is_file() else None
    run = Run(run_dir, variant, env, task, seed, config, run_settings(config, config_path), summary)
    for path in sorted((run_dir / layout.EVAL_DIR).glob("*.json")):
        point = layout.parse_eval_name(path.name)
        if point is None:
            run.notes.append(f"{path}: name is not <m_inf>_<n>.json: ignored")
        elif (m_inf is None or point[0] in m_inf) and (n is None or point[1] in n):
            run.evals[point] = read_eval(path, *point)
    if (run_dir / layout.EVAL_CURVE).is_file():
        run.curve = read_curve(run_dir / layout.EVAL_CURVE)
    if (run_dir / layout.VALUE_FILE).is_file():
        run.value = read_json(run_dir / layout.VALUE_FILE)
    return run


def load_runs(
    run_dirs: list[str | Path], m_inf: list[int] | None = None, n: list[int] | None = None
) -> list[Run]:
    return [load_run(d, m_inf, n) for d in run_dirs]


def find_runs(runs_root: Path) -> list[Path]:
    """Every run directory under `runs_root` (<agent>/<env>/task<k>/seed<s>), sorted."""
    return [
        path
        for path in sorted(runs_root.glob("*/*/*/seed*"))
        if path.is_dir() and layout.parse_run_dir(path) is not None
    ]


# ----------------------------------------------------------------------------- all of results/


@dataclass
class Results:
    """results/ as tidy tables (the report's input); every table has a `variant` column."""

    runs: pd.DataFrame  # one row per run (agent, env, task, seed): RUN_COLUMNS
    evals: pd.DataFrame  # one row per run and (m_inf, n) grid point: EVAL_COLUMNS
    curves: pd.DataFrame  # one row per run and periodic evaluation step: CURVE_COLUMNS
    benchmarks: pd.DataFrame  # one row per benchmark TSV: BENCH_COLUMNS
    notes: list[str] = field(default_factory=list)  # what was skipped, and why


def _run_rows(run: Run) -> tuple[dict, list[dict], list[dict]]:
    """(runs row, evals rows, curves rows) of one run; the agent column is the directory's."""
    key = {"agent": run.variant, "env": run.env, "task": run.task, "seed": run.seed}
    row = {**key, **run.settings, "run_dir": str(run.dir)}
    row.update(run.summary or {}, has_summary=run.summary is not None)
    evals = [{**key, **result} for result in run.evals.values()]
    curves = []
    if run.curve is not None:
        for step, success in run.curve[["step", "success"]].itertuples(index=False):
            curves.append({**key, "step": int(step), "success": float(success)})
    return row, evals, curves


def _benchmark_rows(bench_root: Path) -> list[dict]:
    rows = []
    for path in sorted(bench_root.rglob("*.tsv")):
        parts = path.relative_to(bench_root).parts
        seconds, rss = read_benchmark(path)
        row = {"rule": parts[0], "s": seconds, "max_rss_mb": rss, "path": str(path)}
        job = layout.parse_job_name(parts[1:])
        if job is not None:
            row.update(zip(("agent", "env", "task", "seed"), job[0], strict=True))
            if job[1] is not None:
                row.update(m_inf=job[1][0], n=job[1][1])
        rows.append(row)
    return rows


def read_selection(path: str | Path) -> dict[str, list[tuple[int, int]]]:
    """A run list as the workflow writes it (`{"runs": [{"dir": ..., "points": [[m_inf, n],
    ...]}]}`): run directory -> the evaluation points its config asks for."""
    data = read_json(Path(path))
    try:
        return {str(run["dir"]): [tuple(p) for p in run["points"]] for run in data["runs"]}
    except (KeyError, TypeError) as err:
        raise ResultsError(
            f"{path}: not a run list ({{'runs': [{{'dir', 'points'}}]}}): {err}"
        ) from None


def collect(
    results_dir: str | Path,
    progress: bool = True,
    selection: dict[str, list[tuple[int, int]]] | None = None,
) -> Results:
    """Runs and their Snakemake benchmark files as DataFrames: the runs of `selection` (run
    directory -> evaluation points read; `read_selection`) and only those, or every run under
    `results_dir`/runs when `selection` is None."""
    from tqdm import tqdm

    results_dir = Path(results_dir)
    notes: list[str] = []
    runs, evals, curves = [], [], []
    if selection is None:
        run_dirs = find_runs(results_dir / "runs")
    else:
        run_dirs = [Path(d) for d in selection]
        odd = [str(d) for d in run_dirs if layout.parse_run_dir(d) is None]
        if odd:
            raise ResultsError(f"{odd[0]}: not a run directory {layout.RUN_ID}")
        missing = [str(d) for d in run_dirs if not (d / layout.CONFIG).is_file()]
        if missing:
            raise ResultsError(
                f"{len(missing)} of the {len(run_dirs)} runs to report have no "
                f"{layout.CONFIG}, e.g. {missing[0]}"
            )
    for run_dir in tqdm(run_dirs, desc="report: reading runs", leave=False, mininterval=2.0,
                        disable=not progress):  # fmt: skip
        run = load_run(run_dir)
        if selection is not None:  # only the evaluation points the config asks for
            wanted = set(selection[str(run_dir)])
            run.evals = {point: e for point, e in run.evals.items() if point in wanted}
        if run.summary is None:
            summary = run_dir / layout.SUMMARY
            notes.append(f"{summary}: missing (unfinished run): no training cost for it")
        notes += run.notes
        row, run_evals, run_curves = _run_rows(run)
        runs.append(row)
        evals += run_evals
        curves += run_curves
    benchmarks = _benchmark_rows(results_dir / "benchmarks")
    if selection is not None:  # only the jobs of the runs read (and the jobs of no run)
        keys = {str(d): layout.parse_run_dir(d) for d in run_dirs}
        points = {(keys[d], tuple(p)) for d, ps in selection.items() for p in ps}
        benchmarks = [b for b in benchmarks if _job_selected(b, set(keys.values()), points)]
    if not run_dirs:
        notes.append(f"{results_dir / 'runs'}: no run directories found")
    results = Results(
        runs=pd.DataFrame(runs, columns=RUN_COLUMNS),
        evals=pd.DataFrame(evals, columns=EVAL_COLUMNS),
        curves=pd.DataFrame(curves, columns=CURVE_COLUMNS),
        benchmarks=pd.DataFrame(benchmarks, columns=BENCH_COLUMNS),
        notes=notes,
    )
    name_variants(results)
    return results


def _job_selected(row: dict, runs: set, points: set) -> bool:
    """Whether a benchmark row is a job of the runs read: a training job of one of them, an
    evaluation job at one of their points, or a job of no run (a dataset's, the report's)."""
    if "agent" not in row:
        return True
    key = (row["agent"], row["env"], row["task"], row["seed"])
    if "m_inf" in row:
        return (key, (row["m_inf"], row["n"])) in points
    return key in runs


def name_variants(results: Results) -> None:
    """Name each run's variant: its agent, plus its M_BTT when one agent has several, and add
    the `variant`, `m_btt` and `m_train` columns to the evals, curves and benchmarks.

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
    mixed = runs[runs["agent"].isin(several) & runs["m_btt"].isna()]
    if not mixed.empty:
        warnings.warn(
            f"agent {mixed['agent'].iloc[0]!r} has runs with and without max_k_backprop",
            stacklevel=2,
        )
    lookup = runs[RUN_KEYS + ["variant", "m_btt", "m_train"]]
    results.evals = results.evals.merge(lookup, on=RUN_KEYS, how="left")
    results.curves = results.curves.merge(lookup, on=RUN_KEYS, how="left")
    as_float = {"task": "float", "seed": "float"}  # benchmark files of other rules have none
    results.benchmarks = results.benchmarks.astype(as_float).merge(
        lookup.astype(as_float), on=RUN_KEYS, how="left"
    )
