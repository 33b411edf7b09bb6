"""One table and one figure per study, from the runs the study's config lists.

Every number follows the report's conventions (docs/report.md): success is averaged over the
tasks of an environment within each seed, then mean and sample std (ddof = 1) over seeds; no
smoothing. Tables go through sorlab.report's writer (CSV full precision, Markdown, LaTeX).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import NullFormatter, ScalarFormatter  # noqa: E402

from sorlab import layout  # noqa: E402
from sorlab.report import aggregates  # noqa: E402
from sorlab.report.figures import no_data, save  # noqa: E402
from sorlab.report.tables import Table, fmt, write_table  # noqa: E402
from sorlab.results import Run  # noqa: E402

SEEDS_NOTE = "mean ± std over seeds (tasks averaged within each seed first)"


def over_seeds(frame: pd.DataFrame, keys: list[str], value: str) -> pd.DataFrame:
    """The report's `over_seeds` per (keys, env), its columns named after `value`:
    <value>_mean, <value>_std and n_seeds. A group without any value (e.g. an unfinished run)
    keeps its row: NaN, 0 seeds."""
    by = [*keys, "env"]
    stats = aggregates.over_seeds(frame, by, value).drop(columns="n_tasks")
    groups = frame[by].drop_duplicates().sort_values(by, ignore_index=True)
    if stats.empty:
        stats = groups.assign(mean=np.nan, std=np.nan, n_seeds=0)
    else:
        stats = groups.merge(stats, on=by, how="left")
        stats["n_seeds"] = stats["n_seeds"].fillna(0).astype(int)
    return stats.rename(columns={"mean": f"{value}_mean", "std": f"{value}_std"})


def _panels(n: int, width: float = 4.0, height: float = 3.0, rows: int = 1):
    fig, axes = plt.subplots(rows, n, figsize=(width * n, height * rows), squeeze=False)
    return fig, axes


def _success_axis(ax, title: str | None = None) -> None:
    """The y axis every success panel shares (percent, with room for 0 and 100), and the legend."""
    ax.set_ylabel("success rate (%)")
    if title is not None:
        ax.set_title(title, fontsize=9)
    ax.set_ylim(-2, 105)
    ax.legend(fontsize=7)


def _base(runs: list[Run], **extra: Callable[[Run], object]) -> pd.DataFrame:
    rows = []
    for r in runs:
        row = {"variant": r.variant, "agent": r.agent, "env": r.env, "task": r.task, "seed": r.seed}
        row.update({k: f(r) for k, f in extra.items()})
        rows.append(row)
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- 1. training compute


def compute_study(runs: list[Run], tables: Path, figures: Path, name: str) -> list[Path]:
    """SORL's train-time (M_BTT) against test-time (M_inf) compute, and what training costs."""
    runs = [r for r in runs if not math.isnan(r.settings["m_btt"])]
    rows = []
    for r in runs:
        for (m_inf, n), ev in sorted(r.evals.items()):
            if n != 1:
                continue
            rows.append(
                {
                    "env": r.env, "task": r.task, "seed": r.seed,
                    "m_btt": int(r.settings["m_btt"]),
                    "m_train": int(np.nan_to_num(r.settings["m_train"])),
                    "m_inf": m_inf, "success": 100 * float(ev["success"]),
                    "train_s_per_1k": 1000 * r.train_s / max(r.steps, 1),
                    "wall_s": r.wall_s,
                }
            )  # fmt: skip
    frame = pd.DataFrame(rows)
    if frame.empty:
        table = Table(pd.DataFrame(columns=["env", "m_btt", "m_train", "m_inf"]),
                      pd.DataFrame(columns=["env", "M_BTT"]), "Training compute (no data)")  # fmt: skip
        return write_table(table, tables, name) + no_data(
            figures, name, "no SORL run with evaluations"
        )
    keys = ["m_btt", "m_train", "m_inf"]
    succ = over_seeds(frame, keys, "success")
    cost = over_seeds(
        frame.drop_duplicates(["env", "task", "seed", "m_btt"]), ["m_btt"], "train_s_per_1k"
    )
    wall = over_seeds(frame.drop_duplicates(["env", "task", "seed", "m_btt"]), ["m_btt"], "wall_s")
    data = succ.merge(cost.drop(columns="n_seeds"), on=["m_btt", "env"]).merge(
        wall.drop(columns="n_seeds"), on=["m_btt", "env"]
    )
    data["beyond_training_m"] = data["m_inf"] > data["m_train"]
    m_infs = sorted(data["m_inf"].unique())
    disp = []
    for (env, m_btt, m_train), g in data.groupby(["env", "m_btt", "m_train"]):
        row = {"env": env, "M_BTT": m_btt, "M": m_train, "seeds": int(g["n_seeds"].max()),
               "s / 1k updates": fmt(g["train_s_per_1k_mean"].iloc[0], g["train_s_per_1k_std"].iloc[0], 2),
               "train wall (min)": fmt(g["wall_s_mean"].iloc[0] / 60, g["wall_s_std"].iloc[0] / 60, 2)}  # fmt: skip
        for m in m_infs:
            hit = g[g["m_inf"] == m]
            cell = fmt(hit["success_mean"].iloc[0], hit["success_std"].iloc[0]) if len(hit) else "–"
            row[f"M_inf={m}"] = cell + (" †" if len(hit) and m > m_train else "")
        disp.append(row)
    display = pd.DataFrame(disp)
    table = Table(
        data, display, "Training compute: SORL success (%) by M_BTT and M_inf, and training cost",
        notes=[f"success: {SEEDS_NOTE}, N = 1",
               "s / 1k updates: training seconds (excluding evaluation) per 1,000 updates",
               "†: M_inf greater than the training M (CSV column beyond_training_m)"],
    )  # fmt: skip
    return write_table(table, tables, name) + _compute_figure(data, m_infs, figures, name)


def _compute_figure(data: pd.DataFrame, m_infs: list, figures: Path, name: str) -> list[Path]:
    """Bars of success per M_BTT group and M_inf, one panel per environment."""
    envs = sorted(data["env"].unique())
    fig, axes = _panels(len(envs), width=max(4.0, 0.35 * len(m_infs) * data["m_btt"].nunique()))
    colors = plt.cm.viridis(np.linspace(0.1, 0.9, len(m_infs)))
    for ax, env in zip(axes[0], envs, strict=True):
        g = data[data["env"] == env]
        groups = sorted(g["m_btt"].unique())
        width = 0.8 / len(m_infs)
        for j, m in enumerate(m_infs):
            for i, m_btt in enumerate(groups):
                hit = g[(g["m_btt"] == m_btt) & (g["m_inf"] == m)]
                if hit.empty:
                    continue
                h = hit.iloc[0]
                ax.bar(i + (j - (len(m_infs) - 1) / 2) * width, h["success_mean"], width,
                       yerr=0 if math.isnan(h["success_std"]) else h["success_std"],
                       color=colors[j], hatch="//" if h["beyond_training_m"] else None,
                       edgecolor="black", linewidth=0.4, label=f"M_inf={m}" if i == 0 else None)  # fmt: skip
        labels = []
        for m_btt in groups:
            sub = g[g["m_btt"] == m_btt].iloc[0]
            labels.append(
                f"M_BTT={m_btt}\nM={sub['m_train']}\n{sub['train_s_per_1k_mean']:.1f} s/1k"
                f"\n{int(g[g['m_btt'] == m_btt]['n_seeds'].max())} seeds"
            )
        ax.set_xticks(range(len(groups)), labels, fontsize=7)
        ax.set_ylabel("success rate (%)")
        ax.set_title(env, fontsize=9)
        ax.set_ylim(0, 105)
    axes[0][0].legend(fontsize=7, title="hatched: M_inf > M", title_fontsize=7)
    fig.suptitle("Success by train-time (M_BTT) and test-time (M_inf) compute; bars: mean, "
                 "whiskers: ±1 std over seeds", fontsize=9)  # fmt: skip
    return save(fig, figures, name)


# ----------------------------------------------------------------------------- 2. data scale


def data_scale_study(runs: list[Run], tables: Path, figures: Path, name: str) -> list[Path]:
    """Success against the fraction of the dataset's episodes trained on."""
    frame = _base(
        runs,
        fraction=lambda r: r.data_fraction,
        transitions=lambda r: r.settings["num_transitions"],
        episodes_kept=lambda r: r.settings["data_episodes"],
        success=lambda r: 100 * r.success(),
    )
    if frame.empty:
        table = Table(
            pd.DataFrame(columns=["agent", "fraction"]), pd.DataFrame(), "Data scale (no data)"
        )
        return write_table(table, tables, name) + no_data(figures, name, "no runs")
    data = over_seeds(frame, ["agent", "fraction"], "success")
    size = frame.groupby(["agent", "fraction", "env"])[["transitions", "episodes_kept"]].mean()
    data = data.merge(size.reset_index(), on=["agent", "fraction", "env"])
    display = pd.DataFrame(
        {
            "env": data["env"], "agent": data["agent"],
            "data fraction": [f"{100 * f:g} %" for f in data["fraction"]],
            "episodes": ["all" if math.isnan(e) else f"{e:g}" for e in data["episodes_kept"]],
            "transitions": [f"{t:g}" for t in data["transitions"]],
            "success (%)": [fmt(m, s) for m, s in zip(data["success_mean"], data["success_std"], strict=True)],
            "seeds": data["n_seeds"],
        }
    )  # fmt: skip
    table = Table(data, display, "Data scale: success (%) against the fraction of episodes kept",
                  notes=[f"success: {SEEDS_NOTE}, at each run's default inference point",
                         "episodes are subsampled whole, with the run's seed (sorlab.data.subsample_episodes)"])  # fmt: skip
    envs = sorted(data["env"].unique())
    fig, axes = _panels(len(envs))
    for ax, env in zip(axes[0], envs, strict=True):
        g = data[data["env"] == env]
        for agent, a in g.groupby("agent"):
            a = a.sort_values("fraction")
            std = a["success_std"].fillna(0)
            ax.errorbar(100 * a["fraction"], a["success_mean"], yerr=std, marker="o", capsize=3,
                        label=f"{agent} ({int(a['n_seeds'].max())} seeds)")  # fmt: skip
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("dataset episodes used (%)")
        _success_axis(ax, env)
    fig.suptitle("Success vs data scale: mean ± 1 std over seeds", fontsize=9)
    return write_table(table, tables, name) + save(fig, figures, name)


# ----------------------------------------------------------------------------- 3. equal compute


def equal_compute_study(runs: list[Run], tables: Path, figures: Path, name: str) -> list[Path]:
    """Success against training wall-clock (periodic evaluations) and inference ms per action."""
    curve_rows = [
        {"variant": r.variant, "env": r.env, "task": r.task, "seed": r.seed, "step": c["step"],
         "time_s": c.get("time_s", math.nan), "success": 100 * c["success"]}
        for r in runs if r.curve is not None for c in r.curve.to_dict("records")
    ]  # fmt: skip
    eval_rows = [
        {"variant": r.variant, "env": r.env, "task": r.task, "seed": r.seed, "m_inf": m, "n": n,
         "ms_per_action": ev["ms_per_action"], "success": 100 * ev["success"]}
        for r in runs for (m, n), ev in r.evals.items()
    ]  # fmt: skip
    curves, evals = pd.DataFrame(curve_rows), pd.DataFrame(eval_rows)
    if evals.empty and curves.empty:
        table = Table(pd.DataFrame(columns=["variant"]), pd.DataFrame(), "Equal compute (no data)")
        return write_table(table, tables, name) + no_data(figures, name, "no evaluations")
    final = _base(runs, train_min=lambda r: r.train_s / 60, wall_min=lambda r: r.wall_s / 60,
                  success=lambda r: 100 * r.success(),
                  m_inf=lambda r: (r.default_point() or (1, 1))[0],
                  ms=lambda r: float(r.evals.get(r.default_point(), {}).get("ms_per_action", math.nan)))  # fmt: skip
    data = over_seeds(final, ["variant"], "success")
    for col in ("train_min", "wall_min", "ms"):
        data = data.merge(
            over_seeds(final, ["variant"], col).drop(columns="n_seeds"), on=["variant", "env"]
        )
    data["m_inf"] = [int(final[final["variant"] == v]["m_inf"].max()) for v in data["variant"]]
    display = pd.DataFrame(
        {
            "env": data["env"], "variant": data["variant"],
            "success (%)": [fmt(m, s) for m, s in zip(data["success_mean"], data["success_std"], strict=True)],
            "train (min)": [fmt(m, s, 2) for m, s in zip(data["train_min_mean"], data["train_min_std"], strict=True)],
            "wall incl. eval (min)": [fmt(m, s, 2) for m, s in zip(data["wall_min_mean"], data["wall_min_std"], strict=True)],
            "ms / action": [fmt(m, s, 3) for m, s in zip(data["ms_mean"], data["ms_std"], strict=True)],
            "M_inf": data["m_inf"], "seeds": data["n_seeds"],
        }
    )  # fmt: skip
    table = Table(data, display, "Equal compute: final success, training and inference cost",
                  notes=[f"{SEEDS_NOTE}; success and ms / action at each variant's default inference (N = 1, largest M_inf)",
                         "train: training seconds without evaluations; wall: the trainer's whole run"])  # fmt: skip
    envs = sorted(
        set(curves.get("env", pd.Series(dtype=str))) | set(evals.get("env", pd.Series(dtype=str)))
    )
    fig, axes = _panels(len(envs), rows=2)
    colors = dict(zip(sorted({r.variant for r in runs}), plt.cm.tab10.colors * 3, strict=False))
    for col, env in enumerate(envs):
        ax = axes[0][col]
        if not curves.empty:
            g = curves[curves["env"] == env]
            for variant, v in g.groupby("variant"):
                per_seed = v.groupby(["seed", "step"])[["time_s", "success"]].mean().reset_index()
                m = per_seed.groupby("step")[["time_s", "success"]].agg(["mean", "std"])
                x, y = m[("time_s", "mean")], m[("success", "mean")]
                s = m[("success", "std")].fillna(0)
                ax.plot(x, y, marker="o", ms=3, color=colors[variant],
                        label=f"{variant} ({per_seed['seed'].nunique()} seeds)")  # fmt: skip
                ax.fill_between(x, y - s, y + s, color=colors[variant], alpha=0.15)
        ax.set_xlabel("training wall-clock (s, incl. evaluations)")
        _success_axis(ax, f"{env}: periodic evaluations")
        ax = axes[1][col]
        if not evals.empty:
            g = evals[(evals["env"] == env) & (evals["n"] == 1)]
            for variant, v in g.groupby("variant"):
                m = over_seeds(v.assign(env=env), ["m_inf"], "success")
                ms = over_seeds(v.assign(env=env), ["m_inf"], "ms_per_action")
                m = m.merge(ms.drop(columns="n_seeds"), on=["m_inf", "env"]).sort_values("m_inf")
                ax.errorbar(m["ms_per_action_mean"], m["success_mean"], yerr=m["success_std"].fillna(0),
                            marker="o", capsize=3, color=colors[variant], label=variant)  # fmt: skip
                for _, row in m.iterrows():
                    if len(m) > 1:
                        ax.annotate(f"{int(row['m_inf'])}", (row["ms_per_action_mean"], row["success_mean"]),
                                    fontsize=6, xytext=(3, 3), textcoords="offset points")  # fmt: skip
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("inference ms per action (labels: M_inf), N = 1")
        _success_axis(ax)
    fig.suptitle("Equal compute: success vs training wall-clock (top) and vs inference time "
                 "(bottom); mean ± 1 std over seeds", fontsize=9)  # fmt: skip
    fig.tight_layout()
    return write_table(table, tables, name) + save(fig, figures, name)


# ----------------------------------------------------------------------------- 4. value learning


def value_study(runs: list[Run], tables: Path, figures: Path, name: str) -> list[Path]:
    """The critic's Q against Monte-Carlo returns, on the dataset and on evaluation episodes."""
    rows = []
    for r in runs:
        v = r.value
        if v is None:
            continue
        row = {"variant": r.variant, "env": r.env, "task": r.task, "seed": r.seed,
               "has_critic": v["has_critic"], "m_inf": v["m_inf"], "discount": v["discount"],
               "success": 100 * v["success"]}  # fmt: skip
        for where in ("dataset", "evaluation"):
            for subset in ("all", "trusted"):
                for stat in ("bias", "rmse", "pearson", "spearman", "n", "q_mean", "return_mean"):
                    row[f"{where}_{subset}_{stat}"] = v[where][subset][stat]
        rows.append(row)
    frame = pd.DataFrame(rows)
    if frame.empty:
        table = Table(pd.DataFrame(columns=["variant"]), pd.DataFrame(), "Value learning (no data)")
        return write_table(table, tables, name) + no_data(figures, name, "no value/q_mc.json")
    stats = [c for c in frame.columns if c.startswith(("dataset_", "evaluation_"))] + ["success"]
    data = frame.groupby(["variant", "env"])[stats].agg(["mean", "std"])
    data.columns = [f"{a}_{b}" for a, b in data.columns]
    data = data.reset_index().merge(
        frame.groupby(["variant", "env"]).agg(n_runs=("seed", "size"), has_critic=("has_critic", "all")).reset_index(),
        on=["variant", "env"],
    )  # fmt: skip

    def cell(row, col, digits=2):
        if not row["has_critic"]:
            return "no critic"
        return fmt(row[f"{col}_mean"], row[f"{col}_std"], digits)

    display = pd.DataFrame(
        [
            {"env": row["env"], "variant": row["variant"], "runs": row["n_runs"],
             "success (%)": fmt(row["success_mean"], row["success_std"]),
             "data: bias": cell(row, "dataset_trusted_bias"),
             "data: r": cell(row, "dataset_trusted_pearson"),
             "eval: bias": cell(row, "evaluation_all_bias"),
             "eval: r": cell(row, "evaluation_all_pearson"),
             "eval: trusted steps": (
                    f"{row['evaluation_trusted_n_mean']:.0f} / {row['evaluation_all_n_mean']:.0f}"
                    if row["has_critic"]
                    else "no critic"
                ),
             "eval: r (trusted)": cell(row, "evaluation_trusted_pearson")}
            for _, row in data.iterrows()
        ]
    )  # fmt: skip
    table = Table(
        data, display,
        "Value learning: the critic's Q against discounted Monte-Carlo returns",
        notes=["bias: mean(Q - G); r: Pearson correlation of Q and G; mean ± std over runs (env x task x seed)",
               "data: dataset state-actions, G of the behaviour policy from the dataset's rewards and masks; "
               "eval: the trained policy's own evaluation episodes (its acting M_inf)",
               "data columns and 'eval: r (trusted)' use trusted steps only: G does not depend on where the "
               "episode was cut off (the task was solved later in it, or discount^(steps left) <= 0.05); "
               "'eval: bias' and 'eval: r' use every step with the return obtained before the time limit, "
               "which is less negative than an untruncated return near the limit",
               "Q tracking G on eval episodes while success stays low points at policy extraction; "
               "Q not tracking G points at value learning"],
    )  # fmt: skip
    return write_table(table, tables, name) + _value_figure(runs, frame, figures, name)


def _value_figure(runs: list[Run], frame: pd.DataFrame, figures: Path, name: str) -> list[Path]:
    """Q against the return G per run (value/q_mc.npz): dataset rows and evaluation episodes."""
    fig, axes = _panels(2, width=4.2, height=3.6)
    variants = sorted(frame["variant"].unique())
    colors = dict(zip(variants, plt.cm.tab10.colors * 3, strict=False))
    for ax, where in zip(axes[0], ("dataset", "eval"), strict=True):
        lo, hi = np.inf, -np.inf
        for r in runs:
            npz = r.dir / layout.VALUE_POINTS
            if r.value is None or not r.value["has_critic"] or not npz.is_file():
                continue
            with np.load(npz) as f:
                q, g, ok = f[f"{where}_q"], f[f"{where}_return"], f[f"{where}_trusted"].astype(bool)
            if where == "dataset" and len(q) > 1500:  # keep the plot light
                keep = np.random.default_rng(0).choice(len(q), 1500, replace=False)
                q, g, ok = q[keep], g[keep], ok[keep]
            first = r is next(x for x in runs if x.variant == r.variant and x.value)
            ax.scatter(g[ok], q[ok], s=3, alpha=0.4, color=colors[r.variant],
                       label=r.variant if first else None)  # fmt: skip
            ax.scatter(g[~ok], q[~ok], s=3, alpha=0.15, color=colors[r.variant], marker="x")
            if len(q):
                lo, hi = min(lo, g.min(), q.min()), max(hi, g.max(), q.max())
        if np.isfinite(lo):
            ax.plot([lo, hi], [lo, hi], "k--", lw=0.8, label="Q = G")
        ax.set_xlabel("discounted Monte-Carlo return G")
        ax.set_ylabel("critic Q(s, a)")
        ax.set_title(
            "dataset state-actions" if where == "dataset" else "evaluation episodes", fontsize=9
        )
        ax.legend(fontsize=7, markerscale=3)
    fig.suptitle("Value learning: Q vs return (dots: trusted steps, x: steps near an episode cut-off)",
                 fontsize=9)  # fmt: skip
    fig.tight_layout()
    return save(fig, figures, name)


# ----------------------------------------------------------------------------- 5. released-code quirks


def quirks_study(runs: list[Run], tables: Path, figures: Path, name: str) -> list[Path]:
    """SORL with the released code's update semantics against the clean reading, same seeds."""
    rows = [
        {"env": r.env, "task": r.task, "seed": r.seed, "semantics": r.settings["update_semantics"],
         "m_inf": m, "success": 100 * float(ev["success"])}
        for r in runs if r.settings["update_semantics"] is not None
        for (m, n), ev in r.evals.items() if n == 1
    ]  # fmt: skip
    frame = pd.DataFrame(rows)
    if frame.empty or frame["semantics"].nunique() < 1:
        table = Table(
            pd.DataFrame(columns=["semantics"]), pd.DataFrame(), "Update semantics (no data)"
        )
        return write_table(table, tables, name) + no_data(
            figures, name, "no SORL run with evaluations"
        )
    data = over_seeds(frame, ["semantics", "m_inf"], "success")
    # Paired by seed: released - clean on the seeds both have.
    per_seed = (
        frame.groupby(["env", "m_inf", "seed", "semantics"])["success"].mean().unstack("semantics")
    )
    diffs = []
    if {"released", "clean"} <= set(per_seed.columns):
        d = (per_seed["released"] - per_seed["clean"]).dropna().reset_index(name="diff")
        diffs = d.groupby(["env", "m_inf"])["diff"].agg(["mean", "std", "count"]).reset_index()
        diffs.columns = ["env", "m_inf", "diff_mean", "diff_std", "paired_seeds"]
        data = data.merge(diffs, on=["env", "m_inf"], how="left")
    disp = []
    for (env, m), g in data.groupby(["env", "m_inf"]):
        row = {"env": env, "M_inf": m}
        for sem in ("released", "clean"):
            hit = g[g["semantics"] == sem]
            row[f"{sem} (%)"] = (
                fmt(hit["success_mean"].iloc[0], hit["success_std"].iloc[0]) if len(hit) else "–"
            )
        if "diff_mean" in g:
            row["released - clean (paired)"] = fmt(g["diff_mean"].iloc[0], g["diff_std"].iloc[0])
            paired = g["paired_seeds"].iloc[0]
            row["seeds"] = "–" if math.isnan(paired) else int(paired)
        disp.append(row)
    table = Table(data, pd.DataFrame(disp), "Released-code update semantics vs the clean reading: SORL success (%)",
                  notes=[f"{SEEDS_NOTE}; N = 1",
                         "released - clean: per-seed difference on seeds both have, mean ± std",
                         "released: one Adam state over actor and critic, actor gradients through the TD target, "
                         "targets from pre-update parameters; clean: separate optimizers, stop_gradient, "
                         "targets from updated parameters (sorlab.agents.sorl)"])  # fmt: skip
    envs = sorted(data["env"].unique())
    fig, axes = _panels(len(envs))
    sems = [s for s in ("released", "clean") if s in set(frame["semantics"])]
    for ax, env in zip(axes[0], envs, strict=True):
        g = data[data["env"] == env]
        m_infs = sorted(g["m_inf"].unique())
        width = 0.8 / len(sems)
        for j, sem in enumerate(sems):
            h = g[g["semantics"] == sem].set_index("m_inf").reindex(m_infs)
            x = np.arange(len(m_infs)) + (j - (len(sems) - 1) / 2) * width
            ax.bar(x, h["success_mean"], width, yerr=h["success_std"].fillna(0), label=sem,
                   edgecolor="black", linewidth=0.4)  # fmt: skip
            pts = frame[(frame["env"] == env) & (frame["semantics"] == sem)]
            pts = pts.groupby(["m_inf", "seed"])["success"].mean().reset_index()
            ax.scatter(
                x[[m_infs.index(m) for m in pts["m_inf"]]],
                pts["success"],
                s=8,
                color="black",
                zorder=3,
            )
        ax.set_xticks(range(len(m_infs)), [f"M_inf={m}" for m in m_infs], fontsize=7)
        _success_axis(ax, env)
    fig.suptitle("Update semantics: bars mean ± 1 std over seeds, dots single seeds", fontsize=9)
    return write_table(table, tables, name) + save(fig, figures, name)


STUDIES: dict[str, Callable[[list[Run], Path, Path, str], list[Path]]] = {
    "compute": compute_study,
    "data_scale": data_scale_study,
    "equal_compute": equal_compute_study,
    "value": value_study,
    "quirks": quirks_study,
}
