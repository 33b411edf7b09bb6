"""Appending benchmark rows to benchmarks/results/<name>.csv (header written with the first row)."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from pathlib import Path


def append_rows(path: Path, fields: Sequence[str], rows: Iterable[dict]) -> None:
    """Append `rows` (dicts; keys outside `fields` are left out) to the CSV at `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    new_file = not path.exists()
    with path.open("a", newline="") as f:
        writer = csv.DictWriter(f, list(fields), extrasaction="ignore")
        if new_file:
            writer.writeheader()
        writer.writerows(rows)
