"""Workflow studies that answer the reviewers' questions (docs/studies.md).

compute        SORL's training compute (M_BTT) against test-time compute (M_inf)
data_scale     success against the fraction of dataset episodes trained on
equal_compute  success against training wall-clock and inference ms per action
value          the critic's Q against discounted Monte-Carlo returns
quirks         SORL with the released code's update semantics against the clean reading

This module imports nothing heavy: the workflow reads the names and output paths from it.
"""

from __future__ import annotations

from pathlib import Path

from sorlab.data.subsample import subsample_episodes

STUDY_NAMES = ("compute", "data_scale", "equal_compute", "value", "quirks")


def study_outputs(
    name: str, tables: str | Path = "results/tables", figures: str | Path = "paper_figures"
) -> dict:
    """{'tables': [csv, md, tex], 'figures': [pdf, png]} of one study."""
    if name not in STUDY_NAMES:
        raise ValueError(f"unknown study {name!r}; known: {', '.join(STUDY_NAMES)}")
    stem = f"study_{name}"
    return {
        "tables": [str(Path(tables) / f"{stem}.{ext}") for ext in ("csv", "md", "tex")],
        "figures": [str(Path(figures) / f"{stem}.{ext}") for ext in ("pdf", "png")],
    }


__all__ = ["STUDY_NAMES", "study_outputs", "subsample_episodes"]
