"""Tables: built as DataFrames, written as CSV (full precision), Markdown and LaTeX (rounded)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from sorlab.layout import atomic_path, write_text
from sorlab.report.aggregates import over_seeds
from sorlab.results import Results


@dataclass
class Table:
    """A table to write: `data` goes to CSV as is; `display` (strings) to Markdown and LaTeX.

    `bold` holds the (row, column) positions of `display` to set in bold.
    """

    data: pd.DataFrame
    display: pd.DataFrame
    caption: str
    bold: set[tuple[int, int]] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)


def fmt(mean: float, std: float = math.nan, digits: int = 1) -> str:
    """'45.0 ± 3.1'; '45.0' when std is undefined (one seed); '–' when there is no value."""
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "–"
    if std is None or (isinstance(std, float) and math.isnan(std)):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def _md_escape(text: str) -> str:
    return str(text).replace("|", "\\|")


def to_markdown(table: Table) -> str:
    display = table.display
    header = [_md_escape(c) for c in display.columns]
    lines = [f"**{_md_escape(table.caption)}**", ""]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join("---" for _ in header) + "|")
    for i, row in enumerate(display.itertuples(index=False)):
        cells = []
        for j, cell in enumerate(row):
            text = _md_escape(cell)
            cells.append(f"**{text}**" if (i, j) in table.bold else text)
        lines.append("| " + " | ".join(cells) + " |")
    if display.empty:
        lines.append("")
        lines.append("(no data)")
    if table.notes:
        lines.append("")
        lines.extend(f"- {_md_escape(note)}" for note in table.notes)
    return "\n".join(lines) + "\n"


_TEX_ESCAPES = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
}  # fmt: skip


def tex_escape(text: str) -> str:
    out = "".join(_TEX_ESCAPES.get(ch, ch) for ch in str(text))
    out = out.replace("±", r"$\pm$").replace("–", "--").replace("−", "$-$")
    return out.replace("‡", r"\ddag{}")


def to_latex(table: Table) -> str:
    """A booktabs table (needs \\usepackage{booktabs})."""
    display = table.display
    ncols = max(len(display.columns), 1)
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        r"\caption{" + tex_escape(table.caption) + "}",
        r"\begin{tabular}{l" + "r" * (ncols - 1) + "}",
        r"\toprule",
        " & ".join(tex_escape(c) for c in display.columns) + r" \\",
        r"\midrule",
    ]
    for i, row in enumerate(display.itertuples(index=False)):
        cells = []
        for j, cell in enumerate(row):
            text = tex_escape(cell)
            cells.append(r"\textbf{" + text + "}" if (i, j) in table.bold else text)
        lines.append(" & ".join(cells) + r" \\")
    if display.empty:
        lines.append(r"\multicolumn{" + str(ncols) + r"}{c}{(no data)} \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    if table.notes:
        notes = "; ".join(tex_escape(n) for n in table.notes)
        lines.append(r"\par\smallskip{\footnotesize " + notes + "}")
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


def write_table(table: Table, directory: Path, name: str) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = [directory / f"{name}.{ext}" for ext in ("csv", "md", "tex")]
    # Each file whole or not at all (a full disk leaves the previous one, never half a table).
    with atomic_path(paths[0]) as tmp:
        table.data.to_csv(tmp, index=False)
    write_text(paths[1], to_markdown(table))
    write_text(paths[2], to_latex(table))
    return paths


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def inference_label(point: tuple[int, int] | None) -> str:
    if point is None:
        return "final training evaluation (summary.json)"
    return f"M_inf={point[0]}, N={point[1]}"


def _signed(value: float) -> str:
    return "–" if value is None or math.isnan(value) else f"{value:+.1f}"


def table1(scores: pd.DataFrame, labels: dict[str, str],
           comparison: pd.DataFrame | None = None) -> Table:  # fmt: skip
    """Success (%) per environment and variant; best in bold. Where a published number exists,
    each environment gets two more rows: the published value and ours minus it.

    labels: variant -> how its scores were made (inference point or evaluation protocol).
    """
    stats = over_seeds(scores.assign(success=100 * scores["success"]), ["env", "variant"])
    points = scores.groupby("variant")[["m_inf", "n"]].first()
    stats["m_inf"] = [
        points.at[v, "m_inf"] if v in points.index else math.nan for v in stats["variant"]
    ]
    stats["n"] = [points.at[v, "n"] if v in points.index else math.nan for v in stats["variant"]]
    # Best = highest mean as shown (one decimal), so that ties on the page are all bold.
    shown = stats["mean"].round(1)
    stats["best"] = shown == shown.groupby(stats["env"]).transform("max")
    stats = stats.sort_values(["env", "variant"], ignore_index=True)
    comparison = comparison if comparison is not None else pd.DataFrame()
    published_cols = ["published_mean", "published_std", "published_scope", "published_source",
                      "published_secondary", "difference", "comparable", "verdict"]  # fmt: skip
    if not comparison.empty:
        extra = comparison.rename(columns={"scope": "published_scope", "source": "published_source",
                                           "secondary": "published_secondary"})  # fmt: skip
        stats = stats.merge(extra[["env", "variant", *published_cols]], on=["env", "variant"],
                            how="left")  # fmt: skip
    else:
        stats = stats.assign(**{c: math.nan for c in published_cols})
    variants = sorted(labels)
    envs = sorted(stats["env"].unique())
    display_rows, bold = [], set()
    any_budget = False
    for env in envs:
        cells = stats[stats["env"] == env].set_index("variant")
        ours, paper, diff = {"environment": env}, {"environment": f"{env}: published"}, {
            "environment": f"{env}: ours − published"}  # fmt: skip
        for j, variant in enumerate(variants, start=1):
            if variant not in cells.index:
                ours[variant] = paper[variant] = diff[variant] = "–"
                continue
            c = cells.loc[variant]
            ours[variant] = fmt(c["mean"], c["std"])
            if c["best"]:
                bold.add((len(display_rows), j))
            if pd.isna(c["published_mean"]):
                paper[variant] = diff[variant] = "–"
                continue
            scope = "" if c["published_scope"] == "5-task mean" else f" ({c['published_scope']})"
            secondary = " ‡" if c["published_secondary"] else ""
            paper[variant] = fmt(c["published_mean"], c["published_std"], 0) + scope + secondary
            budget = not bool(c["comparable"])
            any_budget |= budget
            diff[variant] = _signed(c["difference"]) + (" *" if budget else "")
        display_rows.append(ours)
        if (stats.loc[stats["env"] == env, "published_mean"].notna()).any():
            display_rows += [paper, diff]
    data = stats.rename(columns={"mean": "success_mean", "std": "success_std"})
    data = data[["env", "variant", "success_mean", "success_std", "n_seeds", "n_tasks", "m_inf",
                 "n", "best", *published_cols]]  # fmt: skip
    display = pd.DataFrame(display_rows, columns=["environment", *variants])
    seeds = scores.groupby("variant")["seed"].nunique()
    notes = [f"{v}: {labels[v]}, {_count(int(seeds.get(v, 0)), 'seed')}" for v in variants]
    if data["published_mean"].notna().any():
        notes.append("published: FQL paper Table 2 (mean of the 5 tasks) or Table 3 (one task, "
                     "where our runs have one), mean ± std over 8 seeds; ‡: SORL paper via a "
                     "secondary source")  # fmt: skip
    if any_budget:
        notes.append("*: our runs' budget differs from the paper's (steps, networks, seeds or "
                     "data; see published_comparison): the difference is not a verdict")  # fmt: skip
    caption = (
        "Success rate (%) of the final checkpoint: mean ± std (ddof=1) over seeds, "
        "tasks averaged within each seed first. Bold: highest mean per environment."
    )
    return Table(data, display, caption, bold, notes)


def published_comparison(comparison: pd.DataFrame) -> Table:
    """Ours vs published per (agent, environment): the numbers, the difference, a verdict."""
    display = pd.DataFrame({
        "agent": comparison["variant"], "environment": comparison["env"],
        "compared on": comparison["scope"],
        "ours (%)": [fmt(m, s) + f" ({n} seeds)" for m, s, n in zip(comparison["ours_mean"], comparison["ours_std"], comparison["ours_seeds"], strict=True)],
        "published (%)": [fmt(m, s, 0) + (" ‡" if sec else "") for m, s, sec in zip(comparison["published_mean"], comparison["published_std"], comparison["secondary"], strict=True)],
        "difference": [_signed(d) for d in comparison["difference"]],
        "verdict": comparison["verdict"],
    }, columns=["agent", "environment", "compared on", "ours (%)", "published (%)", "difference", "verdict"])  # fmt: skip
    notes = sorted({f"evaluation protocol: {p}" for p in comparison["protocol"]})
    notes.append("published: FQL paper Table 2 (5-task mean) / Table 3 (per task), 8 seeds, 1M "
                 "steps (IDQL, SRPO: 3M); ‡: SORL paper via a secondary source")  # fmt: skip
    caption = (
        "Ours vs published success (%): mean ± std over seeds. Judged (|difference| in standard "
        f"errors, consistent when <= {2.0:g}) only where our runs had the paper's budget; "
        "otherwise the verdict lists what differs."
    )
    return Table(comparison, display, caption, notes=notes)


def cost_training(results: Results) -> Table:
    """Training wall-clock per variant and environment, from summary.json and benchmark TSVs."""
    runs = results.runs[results.runs["has_summary"].astype(bool)].copy()
    # train_s excludes evaluation and checkpointing when the trainer reports it.
    runs["train_time_s"] = runs["train_s"].fillna(runs["wall_s"])
    runs["s_per_1k_updates"] = 1000 * runs["train_time_s"] / runs["steps"].replace(0, np.nan)
    # Several seeds trained in one vmapped program share its time: also report it per seed.
    runs["s_per_1k_updates_per_seed"] = runs["s_per_1k_updates"] / runs["seeds_per_program"]
    runs["wall_min"] = runs["wall_s"] / 60
    group = ["variant", "env"]
    columns = [*group, "n_runs", "steps", "s_per_1k_updates_mean", "s_per_1k_updates_std",
               "s_per_1k_updates_per_seed_mean", "seeds_per_program_max", "wall_min_mean",
               "wall_min_std", "updates_per_s_mean", "compile_s_mean", "eval_s_mean"]  # fmt: skip
    rows = []
    for (variant, env), g in runs.groupby(group):
        rows.append({
            "variant": variant, "env": env, "n_runs": len(g), "steps": g["steps"].mean(),
            "s_per_1k_updates_mean": g["s_per_1k_updates"].mean(),
            "s_per_1k_updates_std": g["s_per_1k_updates"].std(ddof=1),
            "s_per_1k_updates_per_seed_mean": g["s_per_1k_updates_per_seed"].mean(),
            "seeds_per_program_max": g["seeds_per_program"].max(),
            "wall_min_mean": g["wall_min"].mean(), "wall_min_std": g["wall_min"].std(ddof=1),
            "updates_per_s_mean": g["updates_per_s"].mean(),
            "compile_s_mean": g["compile_s"].mean(), "eval_s_mean": g["eval_s"].mean(),
        })  # fmt: skip
    data = pd.DataFrame(rows, columns=columns)
    # Per-run Snakemake benchmarks (no grid suffix): one column pair per rule.
    bench = results.benchmarks
    bench = bench[bench["variant"].notna() & bench["m_inf"].isna()]
    rules = sorted(bench["rule"].unique())
    for rule in rules:
        per = (
            bench[bench["rule"] == rule]
            .groupby(group)
            .agg(s=("s", "mean"), rss=("max_rss_mb", "max"))
        )
        per = per.rename(columns={"s": f"{rule}_bench_s_mean", "rss": f"{rule}_max_rss_mb"})
        data = data.merge(per.reset_index(), on=group, how="outer")
    data = data.sort_values(group, ignore_index=True)
    display = pd.DataFrame({
        "agent": data["variant"], "environment": data["env"],
        "runs": data["n_runs"].map(lambda x: "–" if pd.isna(x) else str(int(x))),
        "steps": data["steps"].map(lambda x: "–" if pd.isna(x) else f"{int(x):,}"),
        "s / 1k updates": [fmt(m, s, 2) for m, s in zip(data["s_per_1k_updates_mean"], data["s_per_1k_updates_std"], strict=True)],
        "total wall (min)": [fmt(m, s, 1) for m, s in zip(data["wall_min_mean"], data["wall_min_std"], strict=True)],
        "updates/s": [fmt(m, digits=1) for m in data["updates_per_s_mean"]],
        "compile (s)": [fmt(m, digits=1) for m in data["compile_s_mean"]],
        "periodic eval (s)": [fmt(m, digits=1) for m in data["eval_s_mean"]],
    })  # fmt: skip
    if (data["seeds_per_program_max"] > 1).any():
        display.insert(5, "s / 1k updates / seed",
                       [fmt(x, digits=2) for x in data["s_per_1k_updates_per_seed_mean"]])  # fmt: skip
    for rule in rules:
        display[f"{rule} bench (s)"] = [fmt(x, digits=1) for x in data[f"{rule}_bench_s_mean"]]
        display[f"{rule} max RSS (MB)"] = [fmt(x, digits=0) for x in data[f"{rule}_max_rss_mb"]]
    caption = (
        "Training cost per run, over runs (tasks x seeds): seconds per 1,000 updates "
        "(summary.json train_s, or wall_s when absent; mean ± std) and total wall-clock "
        "(wall_s; mean ± std); the trainer's JIT compile and periodic-evaluation seconds (mean). "
        "Seeds trained together in one vmapped program share its time ('/ seed' divides by "
        "their number). Snakemake benchmark seconds (mean) and peak memory (max) per rule."
    )
    return Table(data, display, caption)


def cost_inference(results: Results) -> Table:
    """Milliseconds per action per (variant, env, M_inf, N), next to success there."""
    evals = results.evals
    group = ["variant", "env", "m_inf", "n"]
    caption = (
        "Inference cost: milliseconds per action (per environment step, batched over the "
        "evaluation episodes) mean ± std over runs, and success (%) mean ± std over seeds, per "
        "(M_inf Euler steps, N best-of-N candidates)."
    )
    shown = ["agent", "environment", "M_inf", "N", "ms / action", "success (%)", "seeds"]
    if evals.empty:
        data = pd.DataFrame(columns=[*group, "ms_per_action_mean", "ms_per_action_std", "n_runs",
                                     "success_mean", "success_std", "n_seeds"])  # fmt: skip
        return Table(data, pd.DataFrame(columns=shown), caption)
    ms = (
        evals.dropna(subset=["ms_per_action"])
        .groupby(group)
        .agg(
            ms_per_action_mean=("ms_per_action", "mean"),
            ms_per_action_std=("ms_per_action", lambda x: x.std(ddof=1)),
            n_runs=("ms_per_action", "size"),
        )
    )
    success = over_seeds(evals.assign(success=100 * evals["success"]), group)
    success = success.rename(columns={"mean": "success_mean", "std": "success_std"})
    data = ms.reset_index().merge(success[[*group, "success_mean", "success_std", "n_seeds"]],
                                  on=group, how="outer")  # fmt: skip
    bench = results.benchmarks
    bench = bench[bench["variant"].notna() & bench["m_inf"].notna()]
    for rule in sorted(bench["rule"].unique()):
        per = bench[bench["rule"] == rule].groupby(group)["s"].mean().rename(f"{rule}_bench_s_mean")
        data = data.merge(per.reset_index(), on=group, how="left")
    data = data.sort_values(group, ignore_index=True)
    display = pd.DataFrame({
        "agent": data["variant"], "environment": data["env"],
        "M_inf": data["m_inf"].map(lambda x: str(int(x))), "N": data["n"].map(lambda x: str(int(x))),
        "ms / action": [fmt(m, s, 2) for m, s in zip(data["ms_per_action_mean"], data["ms_per_action_std"], strict=True)],
        "success (%)": [fmt(m, s, 1) for m, s in zip(data["success_mean"], data["success_std"], strict=True)],
        "seeds": data["n_seeds"].map(lambda x: "–" if pd.isna(x) else str(int(x))),
    })  # fmt: skip
    return Table(data, display, caption)


def aggregates_table(estimates: pd.DataFrame, notes: list[str], reps: int, seed: int) -> Table:
    display = pd.DataFrame({
        "agent": estimates["variant"],
        "runs (seeds x env-tasks)": [f"{r} ({s} x {t})" for r, s, t in zip(estimates["n_runs"], estimates["n_seeds"], estimates["n_env_tasks"], strict=True)],
        **{f"{name} (95% CI)": [f"{p:.1f} [{lo:.1f}, {hi:.1f}]" for p, lo, hi in zip(estimates[name], estimates[f"{name}_ci_low"], estimates[f"{name}_ci_high"], strict=True)]
           for name in ("iqm", "mean", "median")},
    })  # fmt: skip
    display.columns = [
        "agent",
        "runs (seeds x env-tasks)",
        "IQM (95% CI)",
        "mean (95% CI)",
        "median (95% CI)",
    ]
    caption = (
        "Aggregate success (%) over runs (env-task-seed) at each agent's default inference: "
        "interquartile mean, mean and median (rliable.metrics) with 95% stratified-bootstrap "
        f"intervals (runs resampled within each env-task; {reps} reps, seed {seed}; percentile)."
    )
    return Table(estimates, display, caption, notes=list(notes))
