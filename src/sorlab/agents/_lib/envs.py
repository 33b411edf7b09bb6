"""OGBench environment families and the per-environment hyperparameter lookup."""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from typing import Any

# OGBench environment families, matched as prefixes of a dataset or environment name, e.g.
# `cube-single-play-v0` or `cube-single-play-singletask-task2-v0` -> `cube-single-play`.
ENV_FAMILIES = (
    "antmaze-large-navigate",
    "antmaze-giant-navigate",
    "humanoidmaze-medium-navigate",
    "humanoidmaze-large-navigate",
    "antsoccer-arena-navigate",
    "cube-single-play",
    "cube-double-play",
    "scene-play",
    "puzzle-3x3-play",
    "puzzle-4x4-play",
)

# FQL README: `--agent.discount=0.995` for the long-horizon families, 0.99 otherwise (all agents).
LONG_HORIZON_FAMILIES = (
    "antmaze-giant-navigate",
    "humanoidmaze-medium-navigate",
    "humanoidmaze-large-navigate",
    "antsoccer-arena-navigate",
)

# State-based manipulation families: the FQL paper's appendix (E.2) sizes some baselines'
# networks and expectiles differently there than on locomotion (the navigate families).
MANIPULATION_FAMILIES = (
    "cube-single-play",
    "cube-double-play",
    "scene-play",
    "puzzle-3x3-play",
    "puzzle-4x4-play",
)


def env_family(env_name: str) -> str | None:
    """The OGBench family of `env_name` (see ENV_FAMILIES), or None if it is not one of them."""
    name = env_name.removeprefix("visual-")
    for family in ENV_FAMILIES:
        if name.startswith(family):
            return family
    return None


def is_manipulation(env_name: str) -> bool:
    return env_family(env_name) in MANIPULATION_FAMILIES


def discount_for(env_name: str) -> float:
    return 0.995 if env_family(env_name) in LONG_HORIZON_FAMILIES else 0.99


def match_env(env_name: str, keys: Iterable[str], match: str) -> str | None:
    """The key of `keys` that `env_name` falls under, or None.

    match="family": the name's OGBench family (a `visual-` prefix ignored), if it is a key;
    match="longest_prefix": the longest key that the name starts with (SORL's released rule).
    """
    keys = list(keys)
    if match == "family":
        family = env_family(env_name)
        return family if family in keys else None
    if match == "longest_prefix":
        matches = [prefix for prefix in keys if env_name.startswith(prefix)]
        return max(matches, key=len) if matches else None
    raise ValueError(f"match must be 'family' or 'longest_prefix', got {match!r}")


def per_env(
    env_name: str, table: Mapping[str, Any], default: Any, what: str, match: str = "family"
) -> Any:
    """Look `env_name` up in `table` (see `match_env`); unknown environments get `default`."""
    key = match_env(env_name, table, match)
    if key is None:
        warnings.warn(
            f"no per-environment {what} for {env_name!r} (known: {', '.join(table)}); "
            f"using the released default {default!r}",
            stacklevel=3,
        )
        return default
    return table[key]


# Critic aggregation as in FQL's flags (FQL, FAWAC, FBRAC, CAC): min on antmaze, mean elsewhere.
FQL_Q_AGG = {family: "mean" for family in ENV_FAMILIES} | {
    "antmaze-large-navigate": "min",
    "antmaze-giant-navigate": "min",
}


def idql_value_dims(env_name: str) -> tuple[int, ...]:
    """IDQL's critic and value sizes (FQL paper, App. E.2), also SRPO's: [256, 256] on
    manipulation, else [512, 512]."""
    return (256, 256) if is_manipulation(env_name) else (512, 512)


def idql_expectile(env_name: str) -> float:
    """IDQL's expectile (FQL paper, App. E.2), also SRPO's: 0.9 on manipulation, 0.7 on
    locomotion."""
    return 0.9 if is_manipulation(env_name) else 0.7
