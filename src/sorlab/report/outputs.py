"""The fixed list of files `sorlab report` writes (what the Snakemake rule declares).

Kept free of heavy imports so that the Snakefile can import it cheaply.
"""

from __future__ import annotations

from pathlib import Path

TABLES_SUBDIR = "tables"

# Tables written as CSV + Markdown + LaTeX.
TABLES: tuple[str, ...] = (
    "table1_success",
    "published_comparison",
    "cost_training",
    "cost_inference",
    "aggregates_iqm",
)
# Long-form data behind the figures (CSV only).
DATA_TABLES: tuple[str, ...] = ("runs", "scaling", "learning_curves")
# Figures written as PDF + PNG.
FIGURES: tuple[str, ...] = (
    "fig1_sequential_scaling",
    "fig2_mbtt_grid",
    "fig3_parallel_scaling",
    "learning_curves",
    "performance_profiles",
    "iqm_intervals",
    "fig_published_comparison",
)
TABLE_FORMATS: tuple[str, ...] = ("csv", "md", "tex")
FIGURE_FORMATS: tuple[str, ...] = ("pdf", "png")


def table_paths(results_dir: str | Path = "results") -> list[Path]:
    tables = Path(results_dir) / TABLES_SUBDIR
    paths = [tables / f"{name}.{ext}" for name in TABLES for ext in TABLE_FORMATS]
    paths += [tables / f"{name}.csv" for name in DATA_TABLES]
    return paths


def figure_paths(figures_dir: str | Path = "paper_figures") -> list[Path]:
    return [Path(figures_dir) / f"{name}.{ext}" for name in FIGURES for ext in FIGURE_FORMATS]


def output_paths(
    results_dir: str | Path = "results", figures_dir: str | Path = "paper_figures"
) -> list[Path]:
    """Every file `build_report(results_dir, figures_dir)` writes, in a fixed order."""
    return table_paths(results_dir) + figure_paths(figures_dir)


# Relative to the repository root with the default directories (for the Snakemake rule).
OUTPUTS: list[str] = [str(p) for p in output_paths()]
