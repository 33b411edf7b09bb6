"""Helpers for the rules: config validation, the run list, input functions, final targets.

Rule files hold rules only; everything computed lives here.
"""

import json
import os
import shlex
import shutil
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from sorlab import configcheck, layout

from sorlab.agents import AGENT_NAMES, get_agent, scales_at_inference
from sorlab.training.settings import eval_m_inf
from sorlab.report.outputs import FIGURES, TABLES, figure_paths, table_paths
import sorlab.studies.workflow as studies_workflow


# The rules call `sorlab`. Run as `.venv/bin/snakemake` without an activated venv, it sits beside
# the interpreter: put that bin/ on PATH (a conda env, with --use-conda, still comes first).
_interpreter_bin = Path(sys.executable).parent
if shutil.which("sorlab") is None and (_interpreter_bin / "sorlab").exists():
    os.environ["PATH"] = f"{_interpreter_bin}{os.pathsep}{os.environ.get('PATH', '')}"


# Validate first: the schema names a bad key or value and fills in every default. Snakemake's
# message prints the whole schema; ours is one line naming the key.
# A config mistake stops the workflow with one line (SystemExit prints just its message).
try:
    validate(config, schema="../schemas/config.schema.yaml")
except WorkflowError:
    _schema = Path(workflow.basedir) / "workflow" / "schemas" / "config.schema.yaml"
    raise SystemExit(configcheck.schema_message(config, _schema)) from None


def _check_agents():
    # Agent variants (config `variants`, docs/studies.md): a name for a base agent with settings.
    studies_workflow.check_variants(config, AGENT_NAMES)
    known = list(AGENT_NAMES) + list(config["variants"])
    named = {"agents": config["agents"], "train.overrides": list(config["train"]["overrides"])}
    for where, agents in named.items():
        for agent in agents:
            if agent not in known:
                raise ValueError(
                    f"config {where}: unknown agent {agent!r}; known agents: {', '.join(known)}"
                )


try:
    _check_agents()
except ValueError as err:
    raise SystemExit(str(err)) from None

# The run-directory contract (sorlab.layout): the paths every rule reads and writes.
RUN_DIR = layout.RUN_DIR
RUN_ID = layout.RUN_ID
LOGS = layout.LOGS_ROOT
BENCHMARKS = layout.BENCHMARKS_ROOT
SUMMARY = f"{RUN_DIR}/{layout.SUMMARY}"
METRICS = f"{RUN_DIR}/{layout.METRICS}"
EVAL_CURVE = f"{RUN_DIR}/{layout.EVAL_CURVE}"
EVAL_FILE = str(layout.eval_path(RUN_DIR, "{m_inf}", "{n}"))


wildcard_constraints:
    agent="[a-z][a-z0-9_]*",
    env="[a-z0-9]+(-[a-z0-9]+)*-v[0-9]+",
    task="[1-5]",
    seed="[0-9]+",
    m_inf="[0-9]+",
    n="[0-9]+",


def runs():
    """Every (agent, env, task, seed) the config asks for, as wildcard dicts."""
    return [
        dict(agent=agent, env=env, task=task, seed=seed)
        for agent in config["agents"]
        for env, env_config in config["envs"].items()
        for task in env_config["tasks"]
        for seed in config["seeds"]
    ]


def eval_grid(agent):
    """The (m_inf, n) points an agent is evaluated at: the whole grid for agents that scale at
    inference (sorlab.agents.scales_at_inference; a variant as its base agent), else (1, 1)."""
    evaluate = config["evaluate"]
    if scales_at_inference(studies_workflow.base_agent(config, agent)):
        return [(m_inf, n) for m_inf in evaluate["m_inf"] for n in evaluate["n"]]
    return [(1, 1)]


def dataset_path(env, split=""):
    return f"{config['data']['dir']}/{env}{split}.npz"


def get_dataset(wildcards):
    return {"train": dataset_path(wildcards.env), "val": dataset_path(wildcards.env, "-val")}


def get_train_settings(wildcards):
    """The run's resolved settings. They go through params:, so --rerun-triggers params reruns
    exactly the runs whose settings changed (e.g. one seed's entry in train.run_overrides)."""
    return run_settings(wildcards.agent, wildcards.env, wildcards.task, wildcards.seed)


def run_settings(agent, env, task, seed):
    train = config["train"]
    base = studies_workflow.base_agent(config, agent)
    overrides = dict(train["overrides"].get(base) or {})
    if base != agent:  # a variant: its overrides, then train.overrides of its name
        overrides.update(studies_workflow.variant_overrides(config, agent))
        overrides.update(train["overrides"].get(agent) or {})
    run_id = RUN_ID.format(agent=agent, env=env, task=task, seed=seed)
    overrides.update(train["run_overrides"].get(run_id) or {})
    # Sorted, so that the order keys are written in the config does not count as a change.
    overrides = dict(sorted(overrides.items()))
    settings = {
        "steps": train["steps"],
        "eval_interval": train["eval_interval"] or train["steps"],
        "eval_episodes": train["eval_episodes"],
        "checkpoint_interval": train["checkpoint_interval"],
        "log_interval": train["log_interval"],
        "overrides": overrides,
    }
    if base != agent:  # only variants get these keys: other runs' params stay as they were
        settings["agent"] = base
        settings["data_fraction"] = studies_workflow.data_fraction(config, agent)
        settings["data_seed"] = int(seed)  # episodes subsampled with the run's seed
    return settings


def seed_group_settings(agent, env, task):
    """Settings of one grouped training job (train.group_seeds): every seed of (agent, env,
    task) in one vmapped program, so the seeds must share their settings."""
    seeds = config["seeds"]
    per_seed = {seed: run_settings(agent, env, task, seed) for seed in seeds}
    args = {seed: train_args(settings) for seed, settings in per_seed.items()}
    if len(set(args.values())) > 1:
        flags = {seed: a.split(" --") for seed, a in args.items()}  # one entry per flag
        shared = set.intersection(*(set(f) for f in flags.values()))
        own = {seed: [f"--{x.lstrip('-')}" for x in f if x not in shared] for seed, f in flags.items()}
        differing = "; ".join(f"seed {seed}: {' '.join(o) or 'defaults'}" for seed, o in own.items())
        raise ValueError(
            f"config train.group_seeds: the seeds of {agent}/{env}/task{task} have different "
            f"settings ({differing}); one program trains them all, so give them the same "
            "settings (no per-seed train.run_overrides, no data_fraction below 1) or set "
            "train.group_seeds: false"
        )
    settings = dict(per_seed[seeds[0]])
    settings.pop("data_seed", None)
    return {"seeds": list(seeds), **settings}


def seed_groups():
    """(agent, env, task) of every grouped training job."""
    return sorted({(run["agent"], run["env"], run["task"]) for run in runs()}, key=str)


def get_seed_group_settings(wildcards):
    return seed_group_settings(wildcards.agent, wildcards.env, wildcards.task)


def get_seed_group_args(wildcards):
    return train_args(get_seed_group_settings(wildcards))


def get_seed_group_out(wildcards):
    """--out of a grouped job: the run directory with {seed} left for sorlab train to fill."""
    return RUN_DIR.format(agent=wildcards.agent, env=wildcards.env, task=wildcards.task, seed="{seed}")


def train_args(settings):
    """`sorlab train` flags from resolved settings; --set values as JSON (a subset of YAML)."""
    args = [
        f"--steps {settings['steps']}",
        f"--eval-interval {settings['eval_interval']}",
        f"--eval-episodes {settings['eval_episodes']}",
        f"--checkpoint-interval {settings['checkpoint_interval']}",
        f"--log-interval {settings['log_interval']}",
    ]
    if settings.get("data_fraction", 1.0) != 1.0:
        args.append(f"--data-fraction {settings['data_fraction']} --data-seed {settings['data_seed']}")
    for key, value in settings["overrides"].items():
        args.append(f"--set {shlex.quote(f'{key}={json.dumps(value)}')}")
    return " ".join(args)


def get_train_args(wildcards):
    return train_args(get_train_settings(wildcards))


def get_base_agent(wildcards):
    return studies_workflow.base_agent(config, wildcards.agent)


def get_run_dir(wildcards):
    return RUN_DIR.format(**wildcards)


def get_eval_settings(wildcards):
    evaluate = config["evaluate"]
    return {"episodes": evaluate["episodes"], "seed": evaluate["seed"], "video": evaluate["video"]}


def get_eval_args(wildcards):
    s = get_eval_settings(wildcards)
    # A few episodes are stepped faster in the evaluating process than by new workers.
    workers = config["evaluate"]["threads"] if s["episodes"] >= 8 else 0
    # No --seed: each run's start states derive from its training seed and task.
    seed = "" if s["seed"] is None else f" --seed {s['seed']}"
    return f"--episodes {s['episodes']}{seed} --video {s['video']} --workers {workers}"


def summary_files():
    return [SUMMARY.format(**run) for run in runs()]


def eval_files():
    return [
        EVAL_FILE.format(**run, m_inf=m_inf, n=n)
        for run in runs()
        for m_inf, n in eval_grid(run["agent"])
    ]


# The runs the report reads, and at which points: exactly this config's (a run on disk that the
# config does not name never enters a table).
REPORT_RUNS = "results/report_runs.json"


def report_selection():
    """{"runs": [{"dir": <run dir>, "points": [[m_inf, n], ...]}]}: the config's runs and the
    evaluation points it asks of each (sorlab.results.read_selection)."""
    return {
        "runs": [
            {"dir": RUN_DIR.format(**run), "points": [list(p) for p in eval_grid(run["agent"])]}
            for run in runs()
        ]
    }


def write_report_runs(path, log, selection):
    layout.write_json(path, selection, indent=1)
    Path(log).write_text(f"{len(selection['runs'])} runs -> {path}\n")


def report_tables():
    return [str(p) for p in table_paths("results")]


def report_figures():
    return [str(p) for p in figure_paths("paper_figures")]


def caption(name):
    """A figure's or table's caption page under workflow/report/ (relative to rule files)."""
    return f"../report/{name}.rst"


def final_targets():
    targets = summary_files() + eval_files() + report_tables() + report_figures()
    return targets + studies_workflow.study_targets(config)


if config["train"]["group_seeds"]:
    for _group in seed_groups():  # a bad group is named before any job runs
        seed_group_settings(*_group)


def check_runs():
    """What the schema cannot check, before any job runs (each run would fail late, some after
    hours of training): dataset names and their source, agent names, every override key and
    value, and every M_inf / N each agent is evaluated at (during training and after)."""
    known = list(AGENT_NAMES) + list(config["variants"])
    evaluate = config["evaluate"]
    configcheck.check_envs(config["envs"], config["data"]["source"])
    first = {env: spec["tasks"][0] for env, spec in config["envs"].items()}
    base = lambda agent: studies_workflow.base_agent(config, agent)  # noqa: E731
    train = config["train"]
    for name, overrides in train["overrides"].items():
        for env, task in first.items():
            configcheck.resolve(f"train.overrides.{name}", base(name), env, task, overrides)
    for name, variant in config["variants"].items():
        for env, task in first.items():
            where = f"variants.{name}.overrides"
            configcheck.resolve(where, variant["agent"], env, task, variant["overrides"])
    for run_id, overrides in train["run_overrides"].items():
        agent, env, task, _ = run_id.split("/")
        configcheck.check_agent_names(f"train.run_overrides.{run_id}", [agent], known)
        where = f"train.run_overrides.{run_id}"
        configcheck.resolve(where, base(agent), env, int(task.removeprefix("task")), overrides)
    resolved, traced = set(), set()
    for run in runs():
        agent = run["agent"]
        settings = run_settings(agent, run["env"], run["task"], run["seed"])
        key = (agent, run["env"], json.dumps(settings["overrides"], sort_keys=True))
        if key in resolved:
            continue
        resolved.add(key)
        where = f"train.overrides.{agent}"
        agent_config = configcheck.resolve(
            where, base(agent), run["env"], run["task"], settings["overrides"]
        )
        # Tracing `act` takes a while: once per agent and structure (per-environment float
        # coefficients do not change whether an agent can act with an M_inf).
        structure = {k: v for k, v in agent_config.items() if not isinstance(v, float)}
        key = (agent, json.dumps(structure, sort_keys=True, default=str))
        if key in traced:
            continue
        traced.add(key)
        # Evaluations during training use the agent's default M_inf (SORL: its training M).
        m_train = eval_m_inf(get_agent(base(agent)), agent_config, None)
        what = f"{where} (evaluations during training use M_inf = {m_train})"
        configcheck.check_inference(what, base(agent), agent_config, [(m_train, 1)])
        where = f"evaluate.m_inf / evaluate.n for agent {agent}"
        configcheck.check_inference(where, base(agent), agent_config, eval_grid(agent))


# Only the main process: cluster jobs re-read the Snakefile and need not repeat the checks.
if workflow.is_main_process:
    try:
        check_runs()
    except configcheck.ConfigError as err:
        raise SystemExit(str(err)) from None


# ----------------------------------------------------------------------------- dataset provenance
# Snakemake trusts any dataset file that exists: a 2-episode file left by a quick
# `sorlab data generate --episodes 2`, or a hand-made copy, would be trained on silently. Every
# file the config needs that is already there must carry a record (sorlab.data.provenance) of
# being made as config["data"] asks (source, episodes, seed); else one line names the file, what
# it holds, what the config wants and how to remake it, before any job. Files the dataset rule
# made with these settings pass. Only the record is read (plus the checksum for small files).
def check_datasets():
    from sorlab.data.provenance import check_dataset

    for env in config["envs"]:
        for split in ("", "-val"):
            path = Path(dataset_path(env, split))
            problem = check_dataset(path, config["data"]) if path.exists() else None
            if problem:
                return problem
    return None


if workflow.is_main_process:
    _dataset_problem = check_datasets()
    if _dataset_problem:
        raise SystemExit(_dataset_problem)
# ----------------------------------------------------------------------------- end of provenance
