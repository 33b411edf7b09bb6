"""`sorlab train`: train one (agent, dataset, task, seed) run into a resumable run directory.

The one module that imports both training and evaluation: it wires
`sorlab.evaluation.policy.evaluate_policy` into the loop as its periodic evaluation, and closes
the evaluation's env workers when training ends. Its option defaults are RunSettings'.
"""

from __future__ import annotations

import argparse
from dataclasses import fields
from pathlib import Path
from types import ModuleType
from typing import Any

from sorlab.threads import add_threads_argument, limit_cpu_threads
from sorlab.training import loop
from sorlab.training.settings import RunSettings, defaults, parse_seeds


class PolicyEvaluator:
    """The loop's periodic evaluation: `sorlab.evaluation.policy.evaluate_policy` of the run's
    dataset and task, from the start states of its training seed and task (as `sorlab
    evaluate`'s default), at the run's eval_m_inf (imported when used: it pulls in
    MuJoCo)."""

    def check(self, agent: ModuleType, agent_config: dict, dataset: str, m_inf: int) -> None:
        from sorlab.data.load import env_widths
        from sorlab.evaluation.policy import check_inference

        check_inference(agent, agent_config, *env_widths(dataset), [(m_inf, 1)])

    def __call__(self, agent: ModuleType, state: Any, config: dict, episodes: int) -> dict:
        from sorlab.evaluation.policy import evaluate_policy, start_seed

        return evaluate_policy(
            agent,
            state,
            config["dataset_name"],
            config["task"],
            episodes,
            start_seed(config["seed"], config["task"]),
            m_inf=config["eval_m_inf"],
        )

    def close(self) -> None:
        """Stop the env workers the evaluations started (none if no evaluation ran)."""
        from sorlab.evaluation.envpool import close_pools  # light: MuJoCo loads with an env

        close_pools()


def train_seeds(settings: RunSettings, seeds: list[int]) -> list[dict]:
    """`loop.train_seeds` with periodic evaluation in the real environment."""
    evaluator = PolicyEvaluator()
    try:
        return loop.train_seeds(settings, seeds, evaluator)
    finally:
        evaluator.close()


def train(settings: RunSettings) -> dict:
    """`loop.train` with periodic evaluation in the real environment."""
    return train_seeds(settings, [settings.seed])[0]


# Options that set a RunSettings field of their name, with its default: (flag, type, help).
_OPTIONS = [
    ("--eval-interval", int, "evaluate every I steps and at the end; 0: only at the end "
     "(default: no periodic evaluation)"),
    ("--eval-episodes", int, None),
    ("--eval-m-inf", int, "inference steps of the periodic evaluations (default: the agent's; "
     "SORL: its M)"),
    ("--checkpoint-interval", int, "also at the end; 0: only at the end"),
    ("--log-interval", int, "metrics.csv row every L steps (means)"),
    ("--data-fraction", float, "train on this fraction of the dataset's episodes (whole "
     "episodes, in (0, 1])"),
    ("--data-seed", int, "seed of the episode subsampling"),
    ("--action-clip-eps", float, "clip dataset actions to [-1 + EPS, 1 - EPS] as the released "
     "code does (0: off)"),
    ("--chunk", int, "updates per jitted scan call"),
    ("--keep-checkpoints", int, "newest checkpoints kept (0: all)"),
]  # fmt: skip


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`sorlab train`'s options; every default is RunSettings' (settings.defaults())."""
    d = defaults()
    parser.add_argument("--agent", required=True, help="agent name (sorlab.agents.AGENTS)")
    parser.add_argument("--dataset", required=True, help="dataset file PATH.npz (OGBench format)")
    parser.add_argument("--task", type=int, required=True, help="singletask task id (1-5)")
    seeds = parser.add_mutually_exclusive_group()
    seeds.add_argument("--seed", type=int, default=d["seed"])
    seeds.add_argument(
        "--seeds",
        default=None,
        help="comma-separated seeds trained as one vmapped program, e.g. 1,2,3,4",
    )
    parser.add_argument("--steps", type=int, required=True, help="number of gradient updates")
    parser.add_argument(
        "--out",
        required=True,
        help="run directory, resumed if it holds a checkpoint; '{seed}' is replaced by the seed",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        nargs="+",
        action="extend",
        default=d["overrides"],
        metavar="KEY=VALUE",
        help="override an agent config key (VALUE parsed as YAML); repeatable",
    )
    for flag, kind, help_text in _OPTIONS:
        default = d[flag[2:].replace("-", "_")]
        parser.add_argument(flag, type=kind, default=default, help=help_text)
    parser.add_argument(
        "--restart-if-changed",
        action="store_true",
        help="if OUT holds checkpoints of a different configuration, delete them and start "
        "afresh (default: stop with an error)",
    )
    parser.add_argument(
        "--no-progress", dest="progress", action="store_false", help="no progress bar"
    )
    add_threads_argument(parser)


def main(args: argparse.Namespace) -> int:
    """Train; a SorlabError reaches `sorlab.cli`, which prints it on one line."""
    from sorlab.checkpoints import describe_os_error
    from sorlab.errors import RunDirError

    limit_cpu_threads(args.threads)
    settings = RunSettings(**{f.name: getattr(args, f.name) for f in fields(RunSettings)})
    seeds = parse_seeds(args.seeds) if args.seeds else [settings.seed]
    try:
        summaries = train_seeds(settings, seeds)
    except OSError as err:  # a full disk or a read-only folder while writing logs or results
        raise RunDirError(f"cannot write {describe_os_error(err)}") from None
    for seed, summary in zip(seeds, summaries, strict=True):
        print(f"done: seed {seed}, {_timing(summary)}; "
              f"{Path(settings.out.replace('{seed}', str(seed))) / 'summary.json'}")  # fmt: skip
    return 0


def _timing(summary: dict) -> str:
    """Where the wall time went: the progress bar's rate includes compiling and evaluating,
    the updates/s here only the compiled update chunks (summary.json's updates_per_s)."""
    text = f"{summary['steps']} steps in {summary['wall_s']:.1f} s"
    parts = [f"{summary['compile_s']:.1f} s compiling", f"{summary['eval_s']:.1f} s evaluating"]
    if summary["updates_per_s"]:
        parts.append(f"{summary['updates_per_s']:.0f} updates/s while updating")
    return f"{text} ({', '.join(parts)})"
