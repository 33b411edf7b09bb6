"""`python -m sorlab.studies`: the workflow's study steps.

python -m sorlab.studies value RUN_DIR --out RUN_DIR/value/q_mc.json [--episodes E ...]
python -m sorlab.studies report STUDY --runs RUN_DIR... [--tables DIR --figures DIR]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sorlab.studies import STUDY_NAMES


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sorlab.studies")
    sub = parser.add_subparsers(dest="command", required=True)
    value = sub.add_parser("value", help="Q against Monte-Carlo returns for one run")
    value.add_argument("run_dir")
    value.add_argument("--out", required=True, help="JSON summary; the points go beside it (.npz)")
    value.add_argument("--episodes", type=int, default=10)
    value.add_argument("--seed", type=int, default=0)
    value.add_argument("--m-inf", type=int, default=None, help="default: the run's training M")
    value.add_argument("--n", type=int, default=1)
    value.add_argument("--dataset-points", type=int, default=5000)
    report = sub.add_parser("report", help="one study's table and figure")
    report.add_argument("study", choices=STUDY_NAMES)
    report.add_argument("--runs", nargs="*", default=[], help="run directories of the study")
    report.add_argument("--m-inf", nargs="*", type=int, default=None, help="grid points to read")
    report.add_argument("--n", nargs="*", type=int, default=None, help="grid points to read")
    report.add_argument("--tables", default="results/tables")
    report.add_argument("--figures", default="paper_figures")
    args = parser.parse_args(argv)

    if args.command == "value":
        from sorlab.studies.value import value_study, write_value_study

        if args.episodes < 1:
            parser.error(f"--episodes must be >= 1, got {args.episodes}")
        summary, points = value_study(
            args.run_dir, args.episodes, args.seed, args.m_inf, args.n, args.dataset_points
        )
        write_value_study(args.out, summary, points)
        print(f"wrote {args.out}: success {summary['success']:.2f}, critic {summary['has_critic']}")
        return 0

    from sorlab.errors import ResultsError
    from sorlab.results import load_runs
    from sorlab.studies.report import STUDIES

    try:
        runs = load_runs(args.runs, args.m_inf, args.n)
    except ResultsError as err:
        print(f"sorlab.studies report: error: {err}", file=sys.stderr)
        return err.exit_code
    name = f"study_{args.study}"
    for path in STUDIES[args.study](runs, Path(args.tables), Path(args.figures), name):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
