"""Agent registry. Every agent is a module `sorlab.agents.<name>` with the same interface:

- `default_config(env_name: str) -> dict`: hyperparameters (per-environment defaults of its paper)
- `init(rng, example_batch, config) -> state`: a pytree (params, optimizer state, targets, ...)
- `update(state, batch, rng) -> (state, metrics)`: pure and jit-able (the trainer scans it)
- `act(state, observations, rng, **inference) -> actions`: batched over observations

Adding an agent = one module here and its name in AGENT_NAMES; the workflow needs no change.
"""

from __future__ import annotations

import importlib
from types import ModuleType

AGENT_NAMES = (
    "sorl",
    "bc",
    "iql",
    "rebrac",
    "ifql",
    "fql",
    "idql",
    "srpo",
    "cac",
    "fawac",
    "fbrac",
)


def get_agent(name: str) -> ModuleType:
    """Return the agent module called `name`, or raise a ValueError naming the known agents."""
    if name not in AGENT_NAMES:
        raise ValueError(f"unknown agent {name!r}; known agents: {', '.join(AGENT_NAMES)}")
    try:
        return importlib.import_module(f"sorlab.agents.{name}")
    except ModuleNotFoundError as err:
        if err.name == f"sorlab.agents.{name}":
            raise ValueError(f"agent {name!r} is listed but not implemented yet") from err
        raise
