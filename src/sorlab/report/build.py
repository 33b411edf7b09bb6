"""`build_report`: read results/, write every table and figure listed in `outputs.py`."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from sorlab.layout import atomic_path
from sorlab.report import aggregates, figures, published, tables
from sorlab.report.outputs import TABLES_SUBDIR, output_paths
from sorlab.results import RUN_KEYS, Results, collect


def build_report(
    results_dir: str | Path = "results",
    figures_dir: str | Path = "paper_figures",
    *,
    default_inference: Mapping[str, tuple[int, int]] | None = None,
    bootstrap_reps: int = aggregates.DEFAULT_BOOTSTRAP_REPS,
    bootstrap_seed: int = aggregates.DEFAULT_BOOTSTRAP_SEED,
    final_evals: int = 0,
    verbose: bool = True,
    selection: dict[str, list[tuple[int, int]]] | None = None,
) -> list[Path]:
    """Write all tables (results_dir/tables) and figures (figures_dir); return their paths.

    default_inference: agent or variant name -> (M_inf, N) for Table 1 and the aggregates;
    by default N = 1 and the largest M_inf evaluated (see `aggregates.default_inference`).
    final_evals: 0 scores each run by its final evaluation at that point (eval/ files); N > 0
    by the mean of its last N periodic evaluations (eval_curve.csv), the papers' protocol (3).
    selection: the runs to read and their evaluation points (`results.read_selection`: what
    the workflow's config names); None reads every run under results_dir/runs.
    """
    if final_evals < 0:
        raise ValueError(f"final_evals must be >= 0, got {final_evals}")
    results_dir, figures_dir = Path(results_dir), Path(figures_dir)
    tables_dir = results_dir / TABLES_SUBDIR
    results = collect(results_dir, selection=selection)
    if verbose:
        _say_what_was_read(results, results_dir, selection is not None)
    written: list[Path] = []

    scores, labels = _scores(results, default_inference, final_evals, verbose)
    comparison = published.compare(scores, results.runs, final_evals)
    table1 = tables.table1(scores, labels, comparison)
    written += tables.write_table(table1, tables_dir, "table1_success")
    written += tables.write_table(
        tables.published_comparison(comparison), tables_dir, "published_comparison"
    )
    written += tables.write_table(tables.cost_training(results), tables_dir, "cost_training")
    written += tables.write_table(tables.cost_inference(results), tables_dir, "cost_inference")
    matrices, notes = aggregates.score_matrices(scores)
    estimates = aggregates.interval_estimates(matrices, bootstrap_reps, bootstrap_seed)
    aggregate_table = tables.aggregates_table(estimates, notes, bootstrap_reps, bootstrap_seed)
    written += tables.write_table(aggregate_table, tables_dir, "aggregates_iqm")

    # Long-form data behind the figures.
    runs = results.runs.merge(results.evals.drop(columns=["variant", "m_btt", "m_train"]),
                              on=RUN_KEYS, how="left")  # fmt: skip
    first = [*RUN_KEYS, "variant", "m_inf", "n", "success"]
    runs = runs[first + [c for c in runs.columns if c not in first]]
    written.append(_csv(runs, tables_dir / "runs.csv"))
    evals = results.evals.assign(success=100 * results.evals["success"])
    scaling = aggregates.over_seeds(evals, ["variant", "agent", "m_btt", "env", "m_inf", "n"])
    written.append(_csv(scaling, tables_dir / "scaling.csv"))
    curves = results.curves.assign(success=100 * results.curves["success"])
    curves = aggregates.over_seeds(curves, ["variant", "env", "step"])
    written.append(_csv(curves, tables_dir / "learning_curves.csv"))

    m_train = results.runs.groupby("variant")["m_train"].max().to_dict()
    defaults = table1.data.rename(columns={"success_mean": "mean", "success_std": "std"})
    written += figures.fig1_sequential(scaling, defaults, m_train, figures_dir)
    written += figures.fig2_mbtt_grid(scaling, m_train, figures_dir)
    written += figures.fig3_parallel(scaling, figures_dir)
    written += figures.learning_curves(curves, figures_dir)
    taus = np.linspace(0.0, 1.0, 101)
    profiles = aggregates.performance_profiles(matrices, taus, bootstrap_reps, bootstrap_seed)
    sizes = {v: m.shape for v, m in matrices.items()}
    written += figures.performance_profiles(profiles, taus, sizes, bootstrap_reps, figures_dir)
    written += figures.iqm_intervals(estimates, bootstrap_reps, figures_dir)
    written += figures.published_vs_ours(comparison, figures_dir)

    expected = output_paths(results_dir, figures_dir)
    assert sorted(written) == sorted(expected), "outputs.py and build.py disagree"
    return expected


def _say_what_was_read(results: Results, results_dir: Path, selected: bool) -> None:
    """The runs read (the log says which runs a table holds) and what was skipped."""
    what = "the runs named" if selected else f"every run under {results_dir / 'runs'}"
    print(f"report: read {len(results.runs)} runs ({what}):", file=sys.stderr)
    for run_dir in results.runs["run_dir"]:
        print(f"report:   {run_dir}", file=sys.stderr)
    for note in results.notes[:20]:
        print(f"report: {note}", file=sys.stderr)
    if len(results.notes) > 20:
        print(f"report: ... and {len(results.notes) - 20} more notes", file=sys.stderr)


def _scores(
    results: Results,
    default_inference: Mapping[str, tuple[int, int]] | None,
    final_evals: int,
    verbose: bool,
) -> tuple[pd.DataFrame, dict[str, str]]:
    """One success per run (Table 1's and the aggregates' input) and, per variant, a label
    saying how it was scored (inference point or evaluation protocol)."""
    choice = aggregates.default_inference(results, default_inference)
    scores = aggregates.default_scores(results, choice)
    labels = {v: tables.inference_label(p) for v, p in choice.items()}
    if final_evals:
        periodic, notes = aggregates.final_evals_scores(results, final_evals)
        # Variants without periodic evaluations keep their final evaluation (labelled so).
        scores = pd.concat([scores[~scores["variant"].isin(periodic["variant"])], periodic],
                           ignore_index=True)  # fmt: skip
        for variant in periodic["variant"].unique():
            m_inf = periodic.loc[periodic["variant"] == variant, "m_inf"].dropna()
            at = f", M_inf={int(m_inf.iloc[0])}" if not m_inf.empty else ""
            labels[variant] = f"mean of the last {final_evals} periodic evaluations{at}"
        for note in notes if verbose else []:
            print(f"report: {note}", file=sys.stderr)
    return scores, labels


def _csv(frame: pd.DataFrame, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)
    return path
