"""Tables and figures from `results/` (see docs/report.md).

`OUTPUTS` / `output_paths()` are importable without matplotlib or rliable, so that the
Snakefile can declare the report rule's outputs cheaply; `build_report` imports them lazily.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sorlab.report.outputs import OUTPUTS, figure_paths, output_paths, table_paths

__all__ = ["OUTPUTS", "build_report", "figure_paths", "output_paths", "table_paths"]


def build_report(
    results_dir: str | Path = "results", figures_dir: str | Path = "paper_figures", **options: Any
) -> list[Path]:
    """Read `results_dir`, write every table and figure, return the written paths.

    `options` go to `sorlab.report.build.build_report` (default inference, bootstrap reps, seed).
    """
    from sorlab.report.build import build_report as _build

    return _build(results_dir, figures_dir, **options)
