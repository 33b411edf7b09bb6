"""`sorlab evaluate`: evaluate a run's checkpoint over an (M_inf, N) grid, one JSON per point.

The run directory is opened with `sorlab.checkpoints.load_checkpoint` (shared with training,
which this package never imports); results go to RUN_DIR/eval/<m_inf>_<n>.json
(`sorlab.layout`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sorlab import layout
from sorlab.errors import ConfigError, RunDirError

# `sorlab evaluate`'s default slots: creating one cube env takes ~0.9 s, so a one-off evaluation
# of 50 episodes is quicker with 16 slots (~18 s in all) than with 50 (~29 s), measured on 2 cores.
CLI_ENVS = 16


def run_settings(config: dict) -> tuple[str, int]:
    """(dataset name, task) from a run's config.json (as `sorlab train` writes it)."""
    if "dataset_name" not in config and "dataset" not in config:
        raise KeyError("run config lacks dataset_name (and dataset)")
    if "task" not in config:
        raise KeyError("run config lacks task")
    dataset = config.get("dataset_name") or Path(str(config["dataset"])).name.removesuffix(".npz")
    return dataset, int(config["task"])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", help="a training run directory (results/runs/...)")
    parser.add_argument("--m-inf", type=int, nargs="+", default=[1], help="inference steps")
    parser.add_argument("--n", type=int, nargs="+", default=[1], help="best-of-N candidates")
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument(
        "--seed",
        type=int,
        default=None,
        help="episode i resets with SEED+i (default: derived from the run's training seed and "
        "task, so seeds see different start states and agents on one seed the same ones)",
    )
    parser.add_argument("--out", default=None, help="output folder (default RUN_DIR/eval)")
    parser.add_argument("--workers", type=int, default=None, help="env processes (0 = inline)")
    parser.add_argument(
        "--num-envs",
        type=int,
        default=CLI_ENVS,
        help=f"env slots stepped side by side (default {CLI_ENVS}; results do not depend on it)",
    )
    parser.add_argument("--step", type=int, default=None, help="checkpoint step (default newest)")
    parser.add_argument("--video", type=int, default=0, help="record this many episodes as MP4")


def main(args: argparse.Namespace) -> int:
    """Evaluate; a SorlabError reaches `sorlab.cli`, which prints it on one line: a bad option
    or grid exits 2, a bad run directory or an unwritable output folder 1."""
    from sorlab.checkpoints import describe_os_error
    from sorlab.evaluation.envpool import close_pools

    try:
        return _evaluate_run(args)
    except KeyError as err:  # a config.json without what run_settings needs
        raise RunDirError(f"{Path(args.run_dir) / layout.CONFIG}: {err.args[0]}") from None
    except OSError as err:  # e.g. a read-only or full output folder
        raise RunDirError(describe_os_error(err)) from None
    finally:
        close_pools()


def _evaluate_run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from sorlab.checkpoints import load_checkpoint
    from sorlab.evaluation.policy import check_inference, evaluate_policy, start_seed
    from sorlab.numerics import platform_record

    for name in ("episodes", "num_envs"):
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    run_dir = Path(args.run_dir)
    agent, state, config, step = load_checkpoint(run_dir, step=args.step)
    dataset, task = run_settings(config)
    grid = [(m, n) for m in args.m_inf for n in args.n]
    try:  # before any episode runs
        check_inference(
            agent, config["agent_config"], config["obs_dim"], config["action_dim"], grid
        )
    except ValueError as err:
        raise ConfigError(str(err)) from None
    if args.seed is None:
        seed, seed_source = start_seed(int(config["seed"]), task), "run (training seed and task)"
    else:
        seed, seed_source = args.seed, "--seed"
    out_dir = Path(args.out) if args.out else run_dir / layout.EVAL_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    for m_inf, n in tqdm(grid, desc=f"evaluate {run_dir}", unit="point"):
        video_dir = out_dir / f"video_{m_inf}_{n}" if args.video else None
        result = evaluate_policy(
            agent,
            state,
            dataset,
            task,
            args.episodes,
            seed,
            workers=args.workers,
            m_inf=m_inf,
            n=n,
            num_envs=min(args.num_envs, args.episodes),
            video_dir=video_dir,
            video_episodes=args.video,
            progress=True,
        )
        result["seed_source"] = seed_source
        result["platform"] = platform_record()
        result["run_dir"] = str(run_dir)
        result["checkpoint_step"] = step
        path = out_dir / layout.eval_name(m_inf, n)
        layout.write_json(path, result, indent=1)
        tqdm.write(
            f"{path}: success {result['success']:.3f}  return {result['return']:.1f}  "
            f"{result['ms_per_action']:.3f} ms/action"
        )
    return 0
