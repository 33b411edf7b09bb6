"""Read what the studies need from run directories (results/runs/<variant>/<env>/task<k>/seed<s>/).

The variant is the run directory's agent part (an agent or a config `variants` name); the base
agent and its settings come from config.json.
"""

from __future__ import annotations

import csv
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class StudyInputError(ValueError):
    """A run's file is missing or malformed; the message starts with its path."""


def _json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise StudyInputError(f"{path}: cannot read JSON ({err})") from None


@dataclass
class Run:
    dir: Path
    variant: str
    env: str
    task: int
    seed: int
    config: dict
    summary: dict | None
    evals: dict[tuple[int, int], dict] = field(default_factory=dict)  # (m_inf, n) -> eval json
    curve: list[dict[str, float]] = field(default_factory=list)  # eval_curve.csv rows
    value: dict | None = None  # value/q_mc.json

    @property
    def agent(self) -> str:
        return self.config.get("agent", self.variant)

    def agent_setting(self, key: str, default: Any = None) -> Any:
        return self.config.get("agent_config", {}).get(key, default)

    @property
    def data_fraction(self) -> float:
        return float(self.config.get("data_fraction") or 1.0)

    @property
    def train_s(self) -> float:
        if not self.summary:
            return math.nan
        return float(self.summary.get("train_s") or self.summary.get("wall_s") or math.nan)

    @property
    def wall_s(self) -> float:
        return float(self.summary.get("wall_s", math.nan)) if self.summary else math.nan

    @property
    def steps(self) -> int:
        return int(self.summary.get("steps", self.config.get("steps", 0))) if self.summary else 0

    def default_point(self) -> tuple[int, int] | None:
        """N = 1 and the largest evaluated M_inf (what Table 1 uses), or None without evals."""
        points = [p for p in self.evals if p[1] == 1] or list(self.evals)
        return max(points) if points else None

    def success(self, point: tuple[int, int] | None = None) -> float:
        """Success at an (M_inf, N) point (default: default_point), else the final training
        evaluation of summary.json, else NaN."""
        point = point or self.default_point()
        if point is not None and point in self.evals:
            return float(self.evals[point]["success"])
        final = (self.summary or {}).get("final_eval") or {}
        return float(final.get("success", math.nan))


def parse_run_dir(run_dir: str | Path) -> tuple[str, str, int, int]:
    """results/runs/<variant>/<env>/task<k>/seed<s> -> (variant, env, k, s)."""
    p = Path(run_dir)
    task, seed = re.fullmatch(r"task(\d+)", p.parent.name), re.fullmatch(r"seed(\d+)", p.name)
    if not task or not seed:
        raise StudyInputError(f"{p}: not a run directory <variant>/<env>/task<k>/seed<s>")
    return p.parent.parent.parent.name, p.parent.parent.name, int(task[1]), int(seed[1])


def load_run_record(
    run_dir: str | Path, m_inf: list[int] | None = None, n: list[int] | None = None
) -> Run:
    """A run's files; only evaluations at M_inf in `m_inf` and N in `n` (None: all), so a study
    reads its own config's grid even where another study evaluated the same run elsewhere."""
    run_dir = Path(run_dir)
    variant, env, task, seed = parse_run_dir(run_dir)
    config_path = run_dir / "config.json"
    if not config_path.is_file():
        raise StudyInputError(f"{config_path}: missing (the run was never trained)")
    summary_path = run_dir / "summary.json"
    run = Run(
        run_dir,
        variant,
        env,
        task,
        seed,
        _json(config_path),
        _json(summary_path) if summary_path.is_file() else None,
    )
    for path in sorted((run_dir / "eval").glob("*_*.json")):
        match = re.fullmatch(r"(\d+)_(\d+)", path.stem)
        if (
            match
            and (m_inf is None or int(match[1]) in m_inf)
            and (n is None or int(match[2]) in n)
        ):
            data = _json(path)
            if "success" not in data:
                raise StudyInputError(f"{path}: no 'success' key")
            run.evals[(int(match[1]), int(match[2]))] = data
    curve = run_dir / "eval_curve.csv"
    if curve.is_file():
        with curve.open(newline="") as f:
            for row in csv.DictReader(f):
                try:
                    run.curve.append({k: float(v) for k, v in row.items() if v not in ("", None)})
                except ValueError as err:
                    raise StudyInputError(f"{curve}: non-numeric value ({err})") from None
    value = run_dir / "value" / "q_mc.json"
    if value.is_file():
        run.value = _json(value)
    return run


def load_runs(
    run_dirs: list[str | Path], m_inf: list[int] | None = None, n: list[int] | None = None
) -> list[Run]:
    return [load_run_record(d, m_inf, n) for d in run_dirs]
