"""Agent registry: `AGENTS` is the only list of agents (importable without JAX).

Every agent is a module with the same interface (docs/interfaces.md):

- `default_config(env_name: str) -> dict`: hyperparameters (per-environment defaults of its paper)
- `init(rng, example_batch, config) -> state`: a pytree (params, optimizer state, targets, ...)
- `update(state, batch, rng) -> (state, metrics)`: pure and jit-able (the trainer scans it)
- `act(state, observations, rng, **inference) -> actions`: batched over observations

Pieces agents share live in `agents/_lib/`, networks in `sorlab.networks`; an agent module
never imports another agent. Adding an agent: README, "Adding an agent".
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType


@dataclass(frozen=True)
class AgentEntry:
    module: str  # import path of the agent module (imported on first use)
    scales_at_inference: bool = False  # act() uses the evaluation grid's m_inf and n


AGENTS: dict[str, AgentEntry] = {
    "sorl": AgentEntry("sorlab.agents.sorl", scales_at_inference=True),
    "bc": AgentEntry("sorlab.agents.bc"),
    "iql": AgentEntry("sorlab.agents.iql"),
    "rebrac": AgentEntry("sorlab.agents.rebrac"),
    "ifql": AgentEntry("sorlab.agents.ifql"),
    "fql": AgentEntry("sorlab.agents.fql"),
    "idql": AgentEntry("sorlab.agents.idql"),
    "srpo": AgentEntry("sorlab.agents.srpo"),
    "cac": AgentEntry("sorlab.agents.cac"),
    "fawac": AgentEntry("sorlab.agents.fawac"),
    "fbrac": AgentEntry("sorlab.agents.fbrac"),
}

AGENT_NAMES = tuple(AGENTS)


def _entry(name: str) -> AgentEntry:
    if name not in AGENTS:
        raise ValueError(f"unknown agent {name!r}; known agents: {', '.join(AGENTS)}")
    return AGENTS[name]


def get_agent(name: str) -> ModuleType:
    """Return the agent module called `name`, or raise a ValueError naming the known agents."""
    return importlib.import_module(_entry(name).module)


def scales_at_inference(name: str) -> bool:
    """Whether agent `name` acts differently per (m_inf, n) of the evaluation grid (SORL); the
    others are evaluated at one grid point."""
    return _entry(name).scales_at_inference
