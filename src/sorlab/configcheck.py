"""Checks of the workflow config that the schema cannot express, run before any job starts.

Each check raises ConfigError with one line naming the config key and the bad value, so a
mistake costs a second instead of failing a job after hours of training. Dataset and env
names come from `sorlab.data` (the names module and ogbench's registry); agent keys from the
agents' own `default_config`; inference settings are traced through the agents' own `act`.
"""

from __future__ import annotations

import json
from pathlib import Path

from sorlab.errors import ConfigError  # noqa: F401

# Widths of the placeholder batch `act` is traced with: whether an agent can act with an
# (M_inf, N) does not depend on them.
_TRACE_OBS_DIM, _TRACE_ACTION_DIM = 4, 2


def schema_message(config: dict, schema_path: str | Path) -> str:
    """One line for the schema error jsonschema ranks first (instead of the schema itself)."""
    import jsonschema
    import yaml

    schema = yaml.safe_load(Path(schema_path).read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(config))
    if error is None:
        return f"config: does not match {schema_path}"
    where = ".".join(str(p) for p in error.absolute_path) or "(top level)"
    message = " ".join(error.message.split())
    if len(message) > 200:
        message = message[:197] + "..."
    return f"config {where}: {message} (the keys and values allowed: workflow/schemas/config.schema.yaml)"


def check_envs(envs: dict, source: str) -> None:
    """Every dataset name is an OGBench dataset with a singletask env per listed task, and can be
    made by `data.source`."""
    from sorlab.data import DatasetError, env_name
    from sorlab.data.names import gen_spec

    for dataset, spec in envs.items():
        for task in spec["tasks"]:
            try:
                env_name(dataset, task)
            except DatasetError as err:
                raise ConfigError(f"config envs.{dataset} (task {task}): {err}") from None
        if source == "generate":
            try:
                gen_spec(dataset)
            except DatasetError as err:
                raise ConfigError(
                    f"config data.source: generate cannot make envs.{dataset}: {err}; "
                    "or set data.source: download"
                ) from None


def check_agent_names(where: str, names: list[str], known: list[str]) -> None:
    for name in names:
        if name not in known:
            raise ConfigError(
                f"config {where}: unknown agent {name!r}; known agents: {', '.join(known)}"
            )


def set_items(overrides: dict) -> list[str]:
    """`sorlab train --set` items for an overrides mapping (values as JSON, a subset of YAML)."""
    return [f"{key}={json.dumps(value)}" for key, value in (overrides or {}).items()]


def resolve(where: str, agent_name: str, dataset: str, task: int, overrides: dict) -> dict:
    """The agent config `sorlab train` will use, or ConfigError naming `where` and the key."""
    from sorlab.errors import TrainError
    from sorlab.training.settings import env_name, get_agent, resolve_agent_config

    try:
        agent = get_agent(agent_name)
        return resolve_agent_config(
            agent, agent_name, env_name(dataset, task), set_items(overrides)
        )
    except TrainError as err:
        raise ConfigError(f"config {where}: {err}") from None


def check_inference(where: str, agent_name: str, agent_config: dict, points: list) -> None:
    """ConfigError if the agent cannot act with one of the (m_inf, n) points (its `act` is
    traced, not run)."""
    from sorlab.evaluation.policy import check_inference as trace
    from sorlab.training.settings import get_agent

    agent = get_agent(agent_name)
    try:
        trace(agent, agent_config, _TRACE_OBS_DIM, _TRACE_ACTION_DIM, points)
    except ValueError as err:
        raise ConfigError(f"config {where}: {err}") from None
