"""`sorlab report`: tables and figures from results/ (see docs/report.md)."""

from __future__ import annotations

import argparse
import sys

from sorlab.report.aggregates import DEFAULT_BOOTSTRAP_REPS, DEFAULT_BOOTSTRAP_SEED


def _inference(text: str) -> tuple[str, tuple[int, int]]:
    """'sorl=8:1' -> ('sorl', (8, 1))."""
    try:
        name, point = text.split("=", 1)
        m_inf, n = point.split(":")
        return name, (int(m_inf), int(n))
    except ValueError as e:
        raise argparse.ArgumentTypeError(
            f"expected AGENT=M_INF:N (e.g. sorl=8:1), got {text!r}"
        ) from e


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from e
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--results",
        default="results",
        help="results directory (read; tables written to RESULTS/tables)",
    )
    parser.add_argument(
        "--figures", default="paper_figures", help="directory for the figures (PDF + PNG)"
    )
    parser.add_argument(
        "--runs",
        default=None,
        metavar="RUN_LIST",
        help="JSON run list (the workflow writes results/report_runs.json from its config): "
        "read exactly these runs at these evaluation points; default: every run under "
        "RESULTS/runs, whichever config made it",
    )
    parser.add_argument("--default-inference", type=_inference, action="append", default=[],
                        metavar="AGENT=M_INF:N",
                        help="inference point for Table 1 and the aggregates (repeatable); "
                        "default: N=1 and the largest M_inf evaluated")  # fmt: skip
    parser.add_argument("--bootstrap-reps", type=_positive, default=DEFAULT_BOOTSTRAP_REPS,
                        help="stratified-bootstrap resamples for the intervals (default %(default)s)")  # fmt: skip
    parser.add_argument("--bootstrap-seed", type=int, default=DEFAULT_BOOTSTRAP_SEED,
                        help="seed of the bootstrap (default %(default)s)")  # fmt: skip
    parser.add_argument("--final-evals", type=_non_negative, default=0, metavar="N",
                        help="score each run by the mean of its last N periodic evaluations "
                        "(eval_curve.csv; the papers use 3); 0 (default): its final evaluation "
                        "at the default inference point (eval/ files)")  # fmt: skip


def main(args: argparse.Namespace) -> int:
    from sorlab.errors import ResultsError
    from sorlab.report.build import build_report
    from sorlab.results import read_selection

    try:
        selection = read_selection(args.runs) if args.runs else None
        paths = build_report(
            args.results,
            args.figures,
            default_inference=dict(args.default_inference),
            bootstrap_reps=args.bootstrap_reps,
            bootstrap_seed=args.bootstrap_seed,
            final_evals=args.final_evals,
            selection=selection,
        )
    except ResultsError as e:
        print(f"sorlab report: {e}", file=sys.stderr)
        return e.exit_code
    except OSError as e:  # e.g. a full disk: every file written is whole or as it was
        where = f"{e.filename}: " if e.filename else ""
        print(
            f"sorlab report: error: {where}{e.strerror or e}; no table or figure was left half "
            "written: free space (or choose writable --results/--figures) and rerun",
            file=sys.stderr,
        )
        return 1
    source = f"the runs of {args.runs}" if args.runs else f"every run under {args.results}/runs"
    print(
        f"sorlab report: wrote {len(paths)} files under {args.results}/tables and "
        f"{args.figures} from {source}"
    )
    return 0
