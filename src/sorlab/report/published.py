"""The published numbers (shipped as package data) and how our runs compare with them.

`data/published_results.csv`: success (%) per agent and OGBench family (task empty: the mean
of its 5 tasks) or per task, mean ± std over seeds, with each number's source; SORL's numbers
are marked secondary. `data/published_coefficients.csv`: the baselines' per-environment
hyperparameters the FQL paper publishes (Table 5, Table 6, App. E.2), read by the tests that
check the agents' defaults, so the report and the agents share one source.

A gap between ours and the paper's is judged (in standard errors) only where our runs had the
paper's budget: its gradient steps, network sizes, number of seeds and dataset size. Otherwise
the comparison says which of these differ instead.
"""

from __future__ import annotations

import math
from functools import cache
from pathlib import Path
from typing import Any

import pandas as pd

from sorlab.report.aggregates import over_seeds

DATA_DIR = Path(__file__).with_name("data")
RESULTS_CSV = DATA_DIR / "published_results.csv"
COEFFICIENTS_CSV = DATA_DIR / "published_coefficients.csv"
FAMILIES = (
    "antmaze-large-navigate", "antmaze-giant-navigate", "humanoidmaze-medium-navigate",
    "humanoidmaze-large-navigate", "antsoccer-arena-navigate", "cube-single-play",
    "cube-double-play", "scene-play", "puzzle-3x3-play", "puzzle-4x4-play",
)  # fmt: skip
# A gap this many standard errors wide or less reads as "consistent" (about 95 %).
Z_CONSISTENT = 2.0
COMPARISON_COLUMNS = [
    "variant", "agent", "env", "family", "tasks", "scope", "ours_mean", "ours_std", "ours_seeds",
    "published_mean", "published_std", "published_seeds", "difference", "comparable", "z",
    "verdict", "budget", "protocol", "secondary", "source",
]  # fmt: skip


@cache
def published_results() -> pd.DataFrame:
    """The shipped published success rates (one row per agent, family and task or mean)."""
    frame = pd.read_csv(RESULTS_CSV, comment="#")
    frame["task"] = pd.to_numeric(frame["task"], errors="coerce")
    return frame


@cache
def published_coefficients() -> pd.DataFrame:
    """The shipped published hyperparameters (agent, env, key, value text, source)."""
    return pd.read_csv(COEFFICIENTS_CSV, comment="#", dtype={"value": str})


def parse_value(text: str) -> Any:
    """'0.3' -> 0.3, 'false' -> False, '256 1024 256' -> (256, 1024, 256)."""
    text = text.strip()
    if text in ("true", "false"):
        return text == "true"
    if " " in text:
        return tuple(int(part) for part in text.split())
    return float(text)


def family(env: str) -> str | None:
    """The OGBench family of a dataset or environment name (cube-single-play-v0 -> ...)."""
    name = env.removeprefix("visual-")
    return next((f for f in FAMILIES if name.startswith(f)), None)


def _paper_dims(agent: str, env: str) -> tuple[str, str] | None:
    """(actor, value) layer sizes of the agent's paper configuration, as text; None if unknown.

    The agents' defaults are the papers' sizes (tests check them against the shipped CSV).
    """
    import importlib

    try:
        module = importlib.import_module(f"sorlab.agents.{agent}")
    except ImportError:
        return None
    config = module.default_config(env)

    def text(key: str) -> str:
        dims = config.get(key)
        return " ".join(str(d) for d in dims) if dims else ""

    return text("actor_hidden_dims"), text("value_hidden_dims")


def _official_transitions(dataset: str) -> float:
    """Transitions in the official (paper's) dataset where sorlab knows it, else NaN."""
    from sorlab.data.names import GENERATABLE

    spec = GENERATABLE.get(dataset)
    return float(spec.episodes * spec.episode_steps) if spec else math.nan


def _shape(dims: str) -> str:
    parts = dims.split()
    if parts and len(set(parts)) == 1:
        return f"{len(parts)}x{parts[0]}"
    return "[" + ", ".join(parts) + "]"


def budget_differences(runs: pd.DataFrame, agent: str, env: str, n_seeds: int,
                       paper: pd.Series) -> list[str]:  # fmt: skip
    """What of our runs' budget differs from the paper's: steps, networks, seeds, data."""
    out = []
    steps = runs["steps"].dropna()
    if steps.empty or steps.min() < paper["steps"]:
        ours = "unknown" if steps.empty else f"{int(steps.min()):,}"
        out.append(f"steps {ours} vs {int(paper['steps']):,}")
    dims = _paper_dims(agent, env)
    if dims is not None:
        for column, want, what in (
            ("actor_dims", dims[0], "actor"),
            ("value_dims", dims[1], "value"),
        ):
            have = sorted(set(runs[column].fillna("")) - {""})
            if want and have and have != [want]:
                out.append(f"{what} {'/'.join(_shape(h) for h in have)} vs {_shape(want)}")
    if n_seeds < paper["n_seeds"]:
        out.append(f"{n_seeds} vs {int(paper['n_seeds'])} seeds")
    official = _official_transitions(str(runs["dataset_name"].iloc[0]))
    transitions = runs["num_transitions"].dropna()
    fraction = runs["data_fraction"].dropna()
    if not transitions.empty and official == official and transitions.min() < 0.95 * official:
        out.append(f"data {int(transitions.min()):,} vs {int(official):,} transitions")
    elif not fraction.empty and fraction.min() < 1:
        out.append(f"data {fraction.min():.0%} of the official dataset")
    return out


def _published_row(published: pd.DataFrame, agent: str, fam: str, tasks: list[int]):
    """The published number to compare with: the task's own when we ran one task and the paper
    lists it, else the environment's mean over its 5 tasks. Returns (row, scope) or None."""
    mine = published[(published["agent"] == agent) & (published["env"] == fam)]
    if len(tasks) == 1:
        task = mine[mine["task"] == tasks[0]]
        if not task.empty:
            return task.iloc[0], f"task{tasks[0]}"
    env_mean = mine[mine["task"].isna()]
    if env_mean.empty:
        return None
    return env_mean.iloc[0], "5-task mean"


def compare(scores: pd.DataFrame, runs: pd.DataFrame, final_evals: int) -> pd.DataFrame:
    """One row per (variant, env) with a published number: ours, published, difference, and a
    verdict where the budgets match (else the budget differences).

    scores: one success per run (variant, agent, env, task, seed, success in [0, 1]);
    runs: the collected runs (budget columns).
    """
    published = published_results()
    rows = []
    if scores.empty:
        return pd.DataFrame(columns=COMPARISON_COLUMNS)
    for (variant, env), group in scores.groupby(["variant", "env"]):
        agent, fam = str(group["agent"].iloc[0]), family(str(env))
        tasks = sorted(int(t) for t in group["task"].unique())
        match = _published_row(published, agent, fam, tasks) if fam else None
        if match is None:
            continue
        paper, scope = match
        stats = over_seeds(group.assign(success=100 * group["success"]), ["variant"]).iloc[0]
        mine = runs[(runs["variant"] == variant) & (runs["env"] == env)]
        budget = budget_differences(mine, agent, env, int(stats["n_seeds"]), paper)
        if scope == "5-task mean" and len(tasks) < 5:
            budget.append(f"tasks {','.join(map(str, tasks))} vs 1-5")
        protocol = ("mean of the last 3 evaluations" if final_evals == paper["final_evals"]
                    else f"ours: {_protocol(final_evals)}; paper: mean of the last "
                    f"{int(paper['final_evals'])} evaluations")  # fmt: skip
        difference = stats["mean"] - paper["mean"]
        z = math.nan
        if not budget:
            se = math.sqrt(
                (0.0 if math.isnan(stats["std"]) else stats["std"] ** 2) / stats["n_seeds"]
                + paper["std"] ** 2 / paper["n_seeds"]
            )
            z = abs(difference) / se if se > 0 else (0.0 if difference == 0 else math.inf)
        if budget:
            verdict = "not judged: budget differs (" + "; ".join(budget) + ")"
        elif z <= Z_CONSISTENT:
            verdict = f"consistent (|difference| = {z:.1f} SE)"
        else:
            verdict = f"gap of {z:.1f} SE"
        rows.append({
            "variant": variant, "agent": agent, "env": env, "family": fam,
            "tasks": " ".join(map(str, tasks)), "scope": scope, "ours_mean": stats["mean"],
            "ours_std": stats["std"], "ours_seeds": int(stats["n_seeds"]),
            "published_mean": float(paper["mean"]), "published_std": float(paper["std"]),
            "published_seeds": int(paper["n_seeds"]), "difference": difference,
            "comparable": not budget, "z": z, "verdict": verdict, "budget": "; ".join(budget),
            "protocol": protocol, "secondary": bool(paper["secondary"]), "source": paper["source"],
        })  # fmt: skip
    frame = pd.DataFrame(rows, columns=COMPARISON_COLUMNS)
    return frame.sort_values(["env", "variant"], ignore_index=True)


def _protocol(final_evals: int) -> str:
    if final_evals:
        return f"mean of the last {final_evals} periodic evaluation" + (
            "s" if final_evals > 1 else ""
        )
    return "one final evaluation"


def short_source(source: str, secondary: bool) -> str:
    """'FQL paper ... Table 2' -> 'FQL T2'; SORL's secondary source -> 'SORL (secondary)'."""
    if secondary:
        return "SORL (secondary)"
    table = source.rsplit(" ", 1)[-1]
    return f"FQL T{table}" if table.isdigit() else source


__all__ = [
    "COMPARISON_COLUMNS", "budget_differences", "compare", "family", "parse_value",
    "published_coefficients", "published_results", "short_source",
]  # fmt: skip
