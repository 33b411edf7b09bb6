"""Compare two workflow output trees file by file, timings aside.

For checking that a change leaves every number identical: run `make reproduce` in a clone
before the change and in one after it, then

    python scripts/compare_results.py BEFORE_CLONE AFTER_CLONE

It walks `results/` and the datasets under `resources/` of both trees and sorts every file into

- identical: the same bytes;
- equal but timings: JSON, CSV, Markdown and LaTeX tables whose values are equal once the
  wall-clock measurements are left out (the keys and columns in TIMING; cost tables drop their
  timing columns);
- equal arrays: an Orbax checkpoint step whose arrays are bit-identical (Orbax names its data
  files at random, so their bytes cannot be compared), or a dataset .npz whose data arrays are
  (its `provenance` record aside: it holds versions, not numbers);
- timing only: Snakemake benchmark files and logs (they hold durations and progress bars);
- different: anything else, with the first differing value;
- only in one tree.

It exits 0 when nothing is "different" or "only in one tree", else 1. `--ignore-key platform`
leaves a JSON key out everywhere, e.g. the platform record when comparing a run capped at AVX2
with one at the machine's own instruction set.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd

# Wall-clock measurements: they differ between any two runs of the same code.
TIMING = re.compile(
    r"(^|_|/)(wall|time|train|eval|compile|bench)_(s|min)(_|$)|ms_per|s_per_1k|updates_per_s|max_rss"
)
TIMING_ONLY_DIRS = ("results/benchmarks/", "results/logs/")
SKIPPED_NAMES = {".lock"}


def is_timing(name: str) -> bool:
    return bool(TIMING.search(str(name)))


def without_timing(value, ignored: frozenset[str] = frozenset()):
    """A JSON value with every timing key (and every `ignored` key) removed, recursively."""
    if isinstance(value, dict):
        return {
            k: without_timing(v, ignored)
            for k, v in value.items()
            if not is_timing(k) and k not in ignored
        }
    if isinstance(value, list):
        return [without_timing(v, ignored) for v in value]
    return value


def first_difference(a, b, where: str = "") -> str | None:
    """Where two JSON values first differ (NaN equals NaN), or None."""
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return f"{where or '/'}: keys {sorted(a.keys() ^ b.keys())}"
        for key in a:
            found = first_difference(a[key], b[key], f"{where}/{key}")
            if found:
                return found
        return None
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return f"{where}: length {len(a)} vs {len(b)}"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            found = first_difference(x, y, f"{where}[{i}]")
            if found:
                return found
        return None
    both_nan = isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)
    return None if a == b or both_nan else f"{where}: {a!r} vs {b!r}"


def compare_csv(a: Path, b: Path) -> str | None:
    left, right = pd.read_csv(a), pd.read_csv(b)
    keep = [c for c in left.columns if not is_timing(c)]
    if [c for c in right.columns if not is_timing(c)] != keep:
        return f"columns {list(left.columns)} vs {list(right.columns)}"
    left, right = left[keep], right[keep]
    if left.shape != right.shape:
        return f"shape {left.shape} vs {right.shape}"
    for column in keep:
        x, y = left[column], right[column]
        same = (x == y) | (x.isna() & y.isna())
        if not same.all():
            row = int(np.flatnonzero(~same.to_numpy())[0])
            return f"column {column!r} row {row}: {x.iloc[row]!r} vs {y.iloc[row]!r}"
    return None


def compare_text_table(a: Path, b: Path) -> str | None:
    """Markdown/LaTeX tables: line by line; the cost tables' lines hold timings throughout, so
    for those only the line count is compared (their values are checked in the CSV)."""
    left, right = a.read_text().splitlines(), b.read_text().splitlines()
    if len(left) != len(right):
        return f"{len(left)} vs {len(right)} lines"
    if a.name.startswith("cost_"):
        return None
    for i, (x, y) in enumerate(zip(left, right, strict=True)):
        if x != y:
            return f"line {i + 1}: {x!r} vs {y!r}"
    return None


def checkpoint_arrays(step_dir: Path) -> dict[str, np.ndarray]:
    import warnings

    import orbax.checkpoint as ocp

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # restoring without a sharding target, on purpose
        restored = ocp.PyTreeCheckpointer().restore((step_dir / "state").absolute())
    leaves = {}
    for path, leaf in _flatten(restored):
        leaves[path] = np.asarray(leaf)
    return leaves


def _flatten(tree, prefix: str = ""):
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from _flatten(value, f"{prefix}/{key}")
    elif isinstance(tree, list | tuple):
        for i, value in enumerate(tree):
            yield from _flatten(value, f"{prefix}[{i}]")
    else:
        yield prefix, tree


def compare_checkpoint(a: Path, b: Path) -> str | None:
    left, right = checkpoint_arrays(a), checkpoint_arrays(b)
    if left.keys() != right.keys():
        return f"array paths {sorted(left.keys() ^ right.keys())[:5]}"
    for path in left:
        if not same_array(left[path], right[path]):
            return f"array {path} differs"
    return None


def same_array(a: np.ndarray, b: np.ndarray) -> bool:
    """Bit-identical numbers (so NaN equals NaN and -0.0 differs from 0.0); other leaves by
    value."""
    if a.dtype.kind in "biufc" and b.dtype.kind in "biufc":
        return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    return a.tolist() == b.tolist()


def tracked_files(root: Path) -> dict[str, Path]:
    if not (root / "results").is_dir():
        # Two trees without results/ would otherwise compare as equal.
        raise SystemExit(f"compare_results: {root} has no results/ directory (run make reproduce)")
    files = {}
    for top in ("results", "resources"):
        for path in (root / top).rglob("*"):
            if path.is_file() and path.name not in SKIPPED_NAMES:
                files[path.relative_to(root).as_posix()] = path
    return files


def checkpoint_step(relative: str) -> str | None:
    """'results/runs/.../checkpoints/30000' for any file inside that checkpoint step."""
    match = re.match(r"(.*/checkpoints/\d+)/", relative)
    return match.group(1) if match else None


def compare_npz(a: Path, b: Path) -> str | None:
    """A dataset's data arrays, bit for bit (its provenance record aside)."""
    with np.load(a, allow_pickle=False) as left, np.load(b, allow_pickle=False) as right:
        names = sorted(set(left.files) - {"provenance"})
        if names != sorted(set(right.files) - {"provenance"}):
            return f"arrays {names} vs {sorted(right.files)}"
        for name in names:
            if not same_array(left[name], right[name]):
                return f"array {name} differs"
    return None


def classify(
    relative: str, a: Path, b: Path, ignored: frozenset[str] = frozenset()
) -> tuple[str, str | None]:
    if a.read_bytes() == b.read_bytes():
        return "identical", None
    if relative.startswith(TIMING_ONLY_DIRS):
        return "timing only", None
    if a.suffix == ".npz":
        found = compare_npz(a, b)
        return ("different", found) if found else ("equal arrays", None)
    if a.suffix == ".json":
        found = first_difference(
            without_timing(json.loads(a.read_text()), ignored),
            without_timing(json.loads(b.read_text()), ignored),
        )
    elif a.suffix in (".csv", ".tsv"):
        found = compare_csv(a, b)
    elif a.suffix in (".md", ".tex"):
        found = compare_text_table(a, b)
    else:
        return "different", "bytes differ"
    return ("different", found) if found else ("equal but timings", None)


def compare_trees(
    before: Path, after: Path, ignored: frozenset[str] = frozenset()
) -> dict[str, list[tuple[str, str | None]]]:
    left, right = tracked_files(before), tracked_files(after)
    verdicts: dict[str, list[tuple[str, str | None]]] = {}

    def note(kind: str, name: str, detail: str | None = None) -> None:
        verdicts.setdefault(kind, []).append((name, detail))

    # Checkpoints are compared per step directory (their arrays), every other file alone.
    steps = {checkpoint_step(name) for name in left.keys() | right.keys()} - {None}
    for name in sorted(left.keys() ^ right.keys()):
        if not checkpoint_step(name):
            note("only in one tree", name, "before" if name in left else "after")
    for name in sorted(left.keys() & right.keys()):
        if not checkpoint_step(name):
            kind, detail = classify(name, left[name], right[name], ignored)
            note(kind, name, detail)
    for step in sorted(steps):
        if not (before / step).is_dir() or not (after / step).is_dir():
            note("only in one tree", step, "before" if (before / step).is_dir() else "after")
            continue
        found = compare_checkpoint(before / step, after / step)
        note("different" if found else "equal arrays", step, found)
    return verdicts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("before", type=Path, help="a tree holding results/ (and resources/)")
    parser.add_argument("after", type=Path)
    parser.add_argument("--list", action="store_true", help="name every file, not only counts")
    parser.add_argument("--ignore-key", action="append", default=[], metavar="KEY",
                        help="leave this JSON key out everywhere (repeatable), e.g. platform")  # fmt: skip
    args = parser.parse_args(argv)
    verdicts = compare_trees(args.before, args.after, frozenset(args.ignore_key))
    for kind in (
        "identical",
        "equal but timings",
        "equal arrays",
        "timing only",
        "different",
        "only in one tree",
    ):
        entries = verdicts.get(kind, [])
        print(f"{kind}: {len(entries)}")
        if args.list or kind in ("different", "only in one tree"):
            for name, detail in entries:
                print(f"  {name}" + (f"  ({detail})" if detail else ""))
    bad = verdicts.get("different") or verdicts.get("only in one tree")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
