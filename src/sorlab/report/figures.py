"""Figures (matplotlib, Agg backend), each saved as PDF and PNG.

Every figure is always written: without data for it, it is a blank figure saying so.
Lines are means over seeds (tasks averaged within each seed first) with a ±1 std band;
nothing is smoothed.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import EngFormatter, FixedLocator, NullLocator  # noqa: E402

from sorlab.layout import atomic_path  # noqa: E402

SUCCESS_LABEL = "success rate (%)"
# The study that trains SORL at several M_BTT (Figure 2's train-time axis).
FIG2_COMMAND = "snakemake --cores all --configfile config/studies/compute.yaml"
BAND_NOTE = "lines: mean over seeds (tasks averaged per seed), bands: ±1 std over seeds; unsmoothed"


def save(fig: plt.Figure, figures_dir: Path, name: str) -> list[Path]:
    figures_dir.mkdir(parents=True, exist_ok=True)
    paths = [figures_dir / f"{name}.pdf", figures_dir / f"{name}.png"]
    # Written under temporary names and renamed: a figure is whole or as it was before.
    with atomic_path(paths[0]) as tmp:
        # No creation date in the PDF, so that reruns on the same data give the same file.
        fig.savefig(tmp, format="pdf", bbox_inches="tight", metadata={"CreationDate": None})
    with atomic_path(paths[1]) as tmp:
        fig.savefig(tmp, format="png", bbox_inches="tight", dpi=150)
    plt.close(fig)
    return paths


def no_data(figures_dir: Path, name: str, message: str) -> list[Path]:
    fig, ax = plt.subplots(figsize=(6, 2.5))
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True, fontsize=11)
    return save(fig, figures_dir, name)


def _panels(n: int, width: float = 3.4, height: float = 2.8):
    ncols = min(4, max(n, 1))
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(width * ncols, height * nrows + 0.8), squeeze=False
    )
    for ax in axes.flat[n:]:
        ax.axis("off")
    return fig, list(axes.flat[:n])


def _suptitle(fig: plt.Figure, axes: list[plt.Axes], text: str) -> None:
    """The figure's title, wrapped to the width of its panels."""
    width = 55 * min(4, max(len(axes), 1)) + 15
    lines = [textwrap.fill(line, width) for line in text.split("\n")]
    fig.suptitle("\n".join(lines), fontsize=9)


def _success_panel(ax: plt.Axes, env: str, xlabel: str) -> None:
    """A success-rate panel of one environment."""
    ax.set_title(env, fontsize=9)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(SUCCESS_LABEL)
    ax.set_ylim(-2, 102)


def _finish(fig: plt.Figure, axes: list[plt.Axes], title: str, figures_dir: Path, name: str):
    """Title, shared legend, layout; saved as PDF and PNG."""
    _suptitle(fig, axes, title)
    _legend(fig, axes)
    fig.tight_layout()
    return save(fig, figures_dir, name)


def _log2_axis(ax: plt.Axes, values) -> None:
    values = sorted({int(v) for v in values})
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_locator(FixedLocator(values))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticklabels([str(v) for v in values])


def _legend(fig: plt.Figure, axes: list[plt.Axes], extra: list | None = None) -> None:
    handles: dict[str, object] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, handle)
    for handle in extra or []:
        handles.setdefault(handle.get_label(), handle)
    if handles:
        fig.legend(list(handles.values()), list(handles.keys()), loc="lower center",
                   ncol=min(4, len(handles)), bbox_to_anchor=(0.5, -0.02 - 0.04 * math.ceil(len(handles) / 4)),
                   frameon=False)  # fmt: skip


def _line(ax: plt.Axes, x, mean, std, label: str, **style) -> None:
    x, mean, std = np.asarray(x, float), np.asarray(mean, float), np.asarray(std, float)
    (line,) = ax.plot(x, mean, marker="o", ms=3, label=label, **style)
    ok = ~np.isnan(std)
    if ok.any():
        ax.fill_between(
            x[ok], (mean - std)[ok], (mean + std)[ok], color=line.get_color(), alpha=0.2, lw=0
        )


def _seeds(frame: pd.DataFrame) -> str:
    lo, hi = int(frame["n_seeds"].min()), int(frame["n_seeds"].max())
    if lo == hi:
        return "1 seed" if hi == 1 else f"{hi} seeds"
    return f"{lo}-{hi} seeds"


def fig1_sequential(scaling: pd.DataFrame, defaults: pd.DataFrame, m_train: Mapping[str, float],
                    figures_dir: Path, name: str = "fig1_sequential_scaling") -> list[Path]:  # fmt: skip
    """Success vs M_inf at N = 1 per environment; agents with one M_inf as dashed references."""
    n1 = scaling[scaling["n"] == 1]
    counts = n1.groupby(["variant", "env"])["m_inf"].nunique()
    scaled = counts[counts >= 2]
    if scaled.empty:
        return no_data(figures_dir, name, "No data for Figure 1 (sequential scaling):\n"
                       "no agent was evaluated at two or more M_inf with N = 1.")  # fmt: skip
    envs = sorted(scaled.index.get_level_values("env").unique())
    fig, axes = _panels(len(envs))
    colors = _colors(sorted(set(n1["variant"]) | set(defaults["variant"])))
    for ax, env in zip(axes, envs, strict=True):
        here = n1[n1["env"] == env]
        xs = sorted(here["m_inf"].unique())
        for variant, d in here.groupby("variant"):
            d = d.sort_values("m_inf")
            if d["m_inf"].nunique() >= 2:
                _line(
                    ax,
                    d["m_inf"],
                    d["mean"],
                    d["std"],
                    f"{variant} ({_seeds(d)})",
                    color=colors[variant],
                )
                m = m_train.get(variant, math.nan)
                if not math.isnan(m) and m < max(xs):
                    ax.axvline(m, color="gray", ls=":", lw=1)
                    ax.axvspan(m, max(xs) * 1.2, color="gray", alpha=0.08, lw=0)
                    ax.text(m, 0.98, f" > training M={int(m)}", transform=ax.get_xaxis_transform(),
                            fontsize=7, va="top", color="gray")  # fmt: skip
        for row in defaults[defaults["env"] == env].itertuples():
            if (row.variant, env) in scaled.index:
                continue
            ax.axhline(row.mean, color=colors[row.variant], ls="--", lw=1,
                       label=f"{row.variant}, one inference setting ({_seeds(pd.DataFrame([row]))})")  # fmt: skip
        _log2_axis(ax, xs)
        ax.set_xlim(min(xs) / 1.2, max(xs) * 1.2)
        _success_panel(ax, env, "M_inf (Euler steps per action)")
    return _finish(
        fig, axes, f"Sequential test-time scaling (N = 1). {BAND_NOTE}", figures_dir, name
    )


def _colors(names) -> dict[str, tuple]:
    cmap = plt.get_cmap("tab10")
    return {name: cmap(i % 10) for i, name in enumerate(names)}


def fig2_mbtt_grid(scaling: pd.DataFrame, m_train: Mapping[str, float], figures_dir: Path,
                   name: str = "fig2_mbtt_grid") -> list[Path]:  # fmt: skip
    """Bars of success grouped by training M_BTT, one bar per test-time M_inf (N = 1)."""
    data = scaling[(scaling["n"] == 1) & scaling["m_btt"].notna()]
    if data.empty:
        return no_data(figures_dir, name, "No data for Figure 2 (M_BTT x M_inf):\n"
                       "no evaluated run has max_k_backprop in its config.json.\n"
                       f"Fill it with: {FIG2_COMMAND}")  # fmt: skip
    envs = sorted(data["env"].unique())
    m_infs = sorted(int(m) for m in data["m_inf"].unique())
    cmap = plt.get_cmap("viridis")
    color = {m: cmap(i / max(len(m_infs) - 1, 1)) for i, m in enumerate(m_infs)}
    several_agents = data["agent"].nunique() > 1 if "agent" in data else False
    fig, axes = _panels(
        len(envs), width=max(3.4, 0.35 * len(m_infs) * data["m_btt"].nunique() + 1.2)
    )
    width = 0.8 / len(m_infs)
    any_beyond = False
    for ax, env in zip(axes, envs, strict=True):
        here = data[data["env"] == env]
        groups = sorted(here.groupby(["m_btt", "variant"]).groups, key=lambda k: (k[0], k[1]))
        for g, (m_btt, variant) in enumerate(groups):
            d = here[(here["m_btt"] == m_btt) & (here["variant"] == variant)].set_index("m_inf")
            m = m_train.get(variant, math.nan)
            for k, m_inf in enumerate(m_infs):
                if m_inf not in d.index:
                    continue
                beyond = not math.isnan(m) and m_inf > m
                any_beyond |= beyond
                ax.bar(g + (k - (len(m_infs) - 1) / 2) * width, d.at[m_inf, "mean"], width,
                       yerr=None if pd.isna(d.at[m_inf, "std"]) else d.at[m_inf, "std"],
                       color=color[m_inf], hatch="///" if beyond else None, edgecolor="black",
                       lw=0.4, error_kw={"lw": 0.8})  # fmt: skip
        labels = []
        for m_btt, variant in groups:
            n_seeds = int(
                here[(here["m_btt"] == m_btt) & (here["variant"] == variant)]["n_seeds"].max()
            )
            agent = variant.split(" (")[0]
            labels.append(
                (f"{agent}\n" if several_agents else "") + f"M_BTT={int(m_btt)}\n{n_seeds} seeds"
            )
        ax.set_xticks(range(len(groups)))
        ax.set_xticklabels(labels, fontsize=8)
        ax.set_title(env, fontsize=9)
        ax.set_xlabel("M_BTT (training compute)")
        ax.set_ylabel(SUCCESS_LABEL)
        ax.set_ylim(0, 102)
    extra = [
        Patch(facecolor=color[m], edgecolor="black", lw=0.4, label=f"M_inf={m}") for m in m_infs
    ]
    if any_beyond:
        extra.append(
            Patch(facecolor="white", edgecolor="black", hatch="///", label="M_inf > training M")
        )
    title = (
        "Train-time compute (M_BTT: Euler steps backpropagated through in training) vs test-time "
        "compute (M_inf: Euler steps per action), N = 1.\nBars: mean over seeds (tasks averaged "
        "per seed); whiskers: ±1 std over seeds"
    )
    if data["m_btt"].nunique() == 1:
        title += (f"; only one M_BTT value in results ({int(data['m_btt'].iloc[0])}): no "
                  f"train-time comparison. The M_BTT grid: {FIG2_COMMAND}")  # fmt: skip
    _suptitle(fig, axes, title)
    _legend(fig, axes, extra)
    fig.tight_layout()
    return save(fig, figures_dir, name)


def fig3_parallel(scaling: pd.DataFrame, figures_dir: Path,
                  name: str = "fig3_parallel_scaling") -> list[Path]:  # fmt: skip
    """Success vs N (best-of-N with the critic as verifier), one line per (agent, M_inf)."""
    counts = scaling.groupby(["variant", "env", "m_inf"])["n"].nunique()
    keep = counts[counts >= 2]
    if keep.empty:
        return no_data(figures_dir, name, "No data for Figure 3 (parallel scaling):\n"
                       "no agent was evaluated at two or more N for one M_inf.\n"
                       "Fill it with evaluate: {n: [1, 4]} in the config (as config/config.yaml).")  # fmt: skip
    envs = sorted(keep.index.get_level_values("env").unique())
    # Colour by M_inf (as in Figure 2), line style by agent variant.
    m_infs = sorted(int(m) for m in keep.index.get_level_values("m_inf").unique())
    cmap = plt.get_cmap("viridis")
    color = {m: cmap(0.9 * i / max(len(m_infs) - 1, 1)) for i, m in enumerate(m_infs)}
    variants = sorted(keep.index.get_level_values("variant").unique())
    style = {v: ("-", "--", ":", "-.")[i % 4] for i, v in enumerate(variants)}
    fig, axes = _panels(len(envs))
    for ax, env in zip(axes, envs, strict=True):
        xs = set()
        for variant, e, m_inf in keep.index:
            if e != env:
                continue
            d = scaling[
                (scaling["variant"] == variant)
                & (scaling["env"] == env)
                & (scaling["m_inf"] == m_inf)
            ]
            d = d.sort_values("n")
            xs |= set(d["n"])
            label = f"{variant}, M_inf={int(m_inf)} ({_seeds(d)})"
            _line(
                ax, d["n"], d["mean"], d["std"], label, color=color[int(m_inf)], ls=style[variant]
            )
        _log2_axis(ax, xs)
        _success_panel(ax, env, "N (candidates; critic picks the best)")
    return _finish(
        fig, axes, f"Parallel test-time scaling (best-of-N). {BAND_NOTE}", figures_dir, name
    )


def learning_curves(
    curves: pd.DataFrame, figures_dir: Path, name: str = "learning_curves"
) -> list[Path]:
    """Success of the periodic training evaluations vs gradient step."""
    if curves.empty:
        return no_data(
            figures_dir, name, "No data for the learning curves:\nno eval_curve.csv with rows."
        )
    envs = sorted(curves["env"].unique())
    fig, axes = _panels(len(envs))
    colors = _colors(sorted(curves["variant"].unique()))
    for ax, env in zip(axes, envs, strict=True):
        for variant, d in curves[curves["env"] == env].groupby("variant"):
            d = d.sort_values("step")
            _line(
                ax,
                d["step"],
                d["mean"],
                d["std"],
                f"{variant} ({_seeds(d)})",
                color=colors[variant],
            )
        _success_panel(ax, env, "training step (gradient updates)")
        ax.xaxis.set_major_formatter(EngFormatter(sep=""))  # 500k, 1M: no offset text
    return _finish(
        fig,
        axes,
        f"Learning curves (training-time evaluations, training's own inference). {BAND_NOTE}",
        figures_dir,
        name,
    )


def performance_profiles(profiles: Mapping[str, tuple[np.ndarray, np.ndarray]], taus: np.ndarray,
                         sizes: Mapping[str, tuple[int, int]], reps: int, figures_dir: Path,
                         name: str = "performance_profiles") -> list[Path]:  # fmt: skip
    if not profiles:
        return no_data(
            figures_dir, name, "No data for the performance profiles:\nno final success scores."
        )
    fig, ax = plt.subplots(figsize=(5, 3.6))
    for variant, (profile, ci) in profiles.items():
        seeds, tasks = sizes[variant]
        (line,) = ax.plot(
            100 * taus, profile, label=f"{variant} ({seeds} seeds x {tasks} env-tasks)"
        )
        ax.fill_between(100 * taus, ci[0], ci[1], color=line.get_color(), alpha=0.2, lw=0)
    ax.set_xlabel("success-rate threshold τ (%)")
    ax.set_ylabel("fraction of runs with success > τ")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(f"Performance profiles, 95% stratified-bootstrap bands ({reps} reps)", fontsize=9)
    ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    return save(fig, figures_dir, name)


def iqm_intervals(estimates: pd.DataFrame, reps: int, figures_dir: Path,
                  name: str = "iqm_intervals") -> list[Path]:  # fmt: skip
    if estimates.empty:
        return no_data(
            figures_dir, name, "No data for the IQM intervals:\nno final success scores."
        )
    estimates = estimates.sort_values("iqm")
    fig, ax = plt.subplots(figsize=(5, 0.5 * len(estimates) + 1.4))
    y = np.arange(len(estimates))
    ax.barh(y, estimates["iqm_ci_high"] - estimates["iqm_ci_low"], left=estimates["iqm_ci_low"],
            height=0.5, alpha=0.4, color="tab:blue")  # fmt: skip
    ax.plot(estimates["iqm"], y, "|", color="black", ms=14)
    ax.set_yticks(y)
    ax.set_yticklabels(
        [f"{v} ({r} runs)" for v, r in zip(estimates["variant"], estimates["n_runs"], strict=True)]
    )
    ax.set_xlabel("IQM success rate (%)")
    ax.set_xlim(-2, 102)
    ax.set_title(f"Interquartile mean, 95% stratified-bootstrap CI ({reps} reps)", fontsize=9)
    fig.tight_layout()
    return save(fig, figures_dir, name)


def published_vs_ours(comparison: pd.DataFrame, figures_dir: Path,
                      name: str = "fig_published_comparison") -> list[Path]:  # fmt: skip
    """Reproduced (y) vs published (x) success per (agent, environment), ±1 std on both axes,
    the identity line; hollow markers where our budget differs from the paper's."""
    if comparison.empty:
        return no_data(figures_dir, name, "No data for the published comparison:\n"
                       "no run of an agent and environment the papers report.")  # fmt: skip
    fig, ax = plt.subplots(figsize=(5.6, 5.6))
    ax.plot([0, 100], [0, 100], color="gray", lw=1, ls="--", label="ours = published")
    colors = _colors(sorted(comparison["variant"].unique()))
    placed: list[tuple[float, float]] = []
    for row in comparison.sort_values(["published_mean", "ours_mean"]).itertuples():
        color = colors[row.variant]
        x, y = row.published_mean, row.ours_mean
        ax.errorbar(x, y, xerr=row.published_std, yerr=None if pd.isna(row.ours_std) else row.ours_std,
                    fmt="o", ms=7, color=color, mfc=color if row.comparable else "white",
                    mew=1.5, capsize=3, lw=1)  # fmt: skip
        label = f"{row.variant}, {row.env.removesuffix('-v0')}"
        if row.scope != "5-task mean":
            label += f" {row.scope}"
        if row.secondary:
            label += " ‡"
        # Labels of points close together are stacked instead of printed over each other;
        # labels on the right half go to the left of their point so they stay inside the axes.
        stack = sum(abs(x - px) < 8 and abs(y - py) < 5 for px, py in placed)
        placed.append((x, y))
        right = x > 50
        ax.annotate(label, (x, y), xytext=(-6 if right else 6, 5 + 10 * stack),
                    textcoords="offset points", fontsize=7, color=color,
                    ha="right" if right else "left")  # fmt: skip
    ax.set_xlim(-3, 103)
    ax.set_ylim(-3, 103)
    ax.set_aspect("equal")
    ax.set_xlabel("published success (%), mean ± std over 8 seeds")
    ax.set_ylabel("ours (%), mean ± std over our seeds")
    handles = [
        plt.Line2D([], [], marker="o", ls="", color="black", label="same budget as the paper"),
        plt.Line2D([], [], marker="o", ls="", color="black", mfc="white",
                   label="budget differs: gap not a verdict"),
        plt.Line2D([], [], color="gray", ls="--", label="ours = published"),
    ]  # fmt: skip
    if comparison["secondary"].any():
        handles.append(
            plt.Line2D([], [], ls="", label="‡: published number from a secondary source")
        )
    ax.legend(handles=handles, fontsize=7, loc="upper left", frameon=False)
    # Each kind of budget difference once (e.g. "2 vs 8 seeds"), not once per point.
    budgets = sorted({part for b in comparison["budget"] if b for part in b.split("; ")})
    title = "Reproduced vs published success (published: FQL paper Tables 2-3, SORL paper; "
    title += "each point in results/tables/published_comparison)"
    if budgets:
        title += "\nhollow: our budget differs: " + "; ".join(budgets)
    _suptitle(fig, [ax], title)
    fig.tight_layout()
    return save(fig, figures_dir, name)
