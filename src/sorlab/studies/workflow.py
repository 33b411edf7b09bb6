"""What the Snakemake workflow needs to know about studies and agent variants, as functions of
the config validated by workflow/schemas/config.schema.yaml (which fills in every default), so
that workflow/rules/studies.smk holds rules only.

Config keys:
  variants: {<name>: {agent: <agent>, overrides: {<key>: <value>}, data_fraction: <(0, 1]>}}
  studies:  {<study>: {agents: [..] (default: config agents), <study options>}}
A variant is trained as its base agent with its overrides (after train.overrides of the base
agent, before train.overrides/run_overrides of the variant) on a fraction of the episodes; its
run directory is results/runs/<variant>/..., so the report shows it under its own name.
"""

from __future__ import annotations

from sorlab import layout
from sorlab.studies import STUDY_NAMES, study_outputs  # noqa: F401 (STUDY_NAMES: for the rules)


def base_agent(config: dict, name: str) -> str:
    """The agent a config agent name trains: itself, or a variant's `agent`."""
    variant = config["variants"].get(name)
    return variant["agent"] if variant else name


def variant_overrides(config: dict, name: str) -> dict:
    return dict(config["variants"][name]["overrides"] or {})


def data_fraction(config: dict, name: str) -> float:
    return float(config["variants"][name]["data_fraction"])


def check_variants(config: dict, agent_names) -> None:
    """Every variant names a known base agent and does not shadow one."""
    for name, variant in config["variants"].items():
        if name in agent_names:
            raise ValueError(f"config variants: {name!r} is an agent's name; pick another name")
        if variant["agent"] not in agent_names:
            raise ValueError(
                f"config variants.{name}.agent: unknown agent {variant['agent']!r}; "
                f"known agents: {', '.join(agent_names)}"
            )


def studies(config: dict) -> dict[str, dict]:
    """The config's studies and their options (a study listed without options: {})."""
    return {name: dict(options or {}) for name, options in config["studies"].items()}


def study_runs(config: dict, study: str) -> list[dict]:
    """Wildcards of the runs one study reads: its `agents` (default: all config agents)."""
    options = studies(config)[study]
    agents = options.get("agents") or config["agents"]
    unknown = [a for a in agents if a not in config["agents"]]
    if unknown:
        raise ValueError(
            f"config studies.{study}.agents: {unknown} are not in the config's agents {config['agents']}"
        )
    return [
        dict(agent=agent, env=env, task=task, seed=seed)
        for agent in agents
        for env, env_config in config["envs"].items()
        for task in env_config["tasks"]
        for seed in config["seeds"]
    ]


def study_run_dirs(config: dict, study: str) -> list[str]:
    return [layout.RUN_DIR.format(**run) for run in study_runs(config, study)]


def study_inputs(config: dict, study: str, eval_grid) -> list[str]:
    """Files the study's report reads: summaries, the evaluation grid, value files."""
    files = []
    for run in study_runs(config, study):
        run_dir = layout.RUN_DIR.format(**run)
        files.append(f"{run_dir}/{layout.SUMMARY}")
        files += [str(layout.eval_path(run_dir, m, n)) for m, n in eval_grid(run["agent"])]
        if study == "value":
            files.append(f"{run_dir}/{layout.VALUE_FILE}")
    return files


def value_args(config: dict) -> str:
    """`python -m sorlab.studies value` flags from studies.value's options (schema defaults)."""
    options = config["studies"]["value"]
    args = [
        f"--episodes {int(options['episodes'])}",
        f"--seed {int(options['seed'])}",
        f"--dataset-points {int(options['dataset_points'])}",
    ]
    if options["m_inf"]:
        args.append(f"--m-inf {int(options['m_inf'])}")
    return " ".join(args)


def grid_args(config: dict) -> str:
    """`--m-inf ... --n ...`: the evaluation grid of the config (report filter)."""
    evaluate = config["evaluate"]
    m_inf = " ".join(str(m) for m in sorted(set(evaluate["m_inf"]) | {1}))
    n = " ".join(str(k) for k in sorted(set(evaluate["n"]) | {1}))
    return f"--m-inf {m_inf} --n {n}"


def study_targets(config: dict) -> list[str]:
    out = []
    for name in studies(config):
        paths = study_outputs(name)
        out += paths["tables"] + paths["figures"]
    return out
