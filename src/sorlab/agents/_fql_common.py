"""Pieces shared by the agents ported from the released FQL code (IQL, ReBRAC, IFQL, FQL).

- the per-environment lookup of hyperparameters (OGBench environment families, discounts),
- the train state: parameters, target parameters, ONE Adam state over all trained parameters
  (as released), an update counter, and the config as a static (hashable) field,
- soft target updates and the Euler integration of a flow vector field.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax
from flax import struct

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


def is_manipulation(env_name: str) -> bool:
    return env_family(env_name) in MANIPULATION_FAMILIES


def env_family(env_name: str) -> str | None:
    """The OGBench family of `env_name` (see ENV_FAMILIES), or None if it is not one of them."""
    name = env_name.removeprefix("visual-")
    for family in ENV_FAMILIES:
        if name.startswith(family):
            return family
    return None


def per_env(env_name: str, table: Mapping[str, Any], default: Any, what: str) -> Any:
    """Look `env_name`'s family up in `table`; unknown environments get the released default."""
    family = env_family(env_name)
    if family is None or family not in table:
        warnings.warn(
            f"no per-environment {what} for {env_name!r} (known: {', '.join(table)}); "
            f"using the released default {default!r}",
            stacklevel=3,
        )
        return default
    return table[family]


def discount_for(env_name: str) -> float:
    return 0.995 if env_family(env_name) in LONG_HORIZON_FAMILIES else 0.99


def freeze_config(config: Mapping[str, Any]) -> flax.core.FrozenDict:
    """A hashable copy of `config` (lists become tuples) so it can be a static pytree field."""

    def freeze(value):
        if isinstance(value, list | tuple):
            return tuple(freeze(v) for v in value)
        return value

    return flax.core.FrozenDict({k: freeze(v) for k, v in config.items()})


class TrainState(struct.PyTreeNode):
    """Everything an update changes, plus the static config."""

    params: dict  # trained networks, one entry per network
    target_params: dict  # slowly-moving copies (only of the networks that have targets)
    opt_state: optax.OptState  # one Adam state over all of `params`, as in the released code
    step: jnp.ndarray  # number of updates done so far
    config: flax.core.FrozenDict = struct.field(pytree_node=False)


def create_state(params: dict, target_names: tuple[str, ...], config: Mapping) -> TrainState:
    config = freeze_config(config)
    opt_state = optimizer(config).init(params)
    # Target networks start as exact copies of their online networks.
    targets = {name: jax.tree_util.tree_map(jnp.array, params[name]) for name in target_names}
    return TrainState(params, targets, opt_state, jnp.zeros((), jnp.int32), config)


def optimizer(config: Mapping) -> optax.GradientTransformation:
    # The released code keeps the targets inside the Adam-optimised tree; their gradient is
    # always zero, so Adam leaves them exactly unchanged there. Leaving them out is identical.
    adam = optax.adam(learning_rate=config["lr"])
    # Optional global-norm clipping (CAC's 5 in the FQL paper's appendix); absent: none.
    clip = config.get("grad_clip")
    return optax.chain(optax.clip_by_global_norm(clip), adam) if clip else adam


def apply_gradients(state: TrainState, grads: dict) -> tuple[dict, optax.OptState]:
    updates, opt_state = optimizer(state.config).update(grads, state.opt_state, state.params)
    return optax.apply_updates(state.params, updates), opt_state


def soft_update(online: Any, target: Any, tau: float) -> Any:
    return jax.tree_util.tree_map(lambda p, tp: p * tau + tp * (1 - tau), online, target)


def apply_update(state: TrainState, grads: dict) -> TrainState:
    """One Adam step on every network, then the critic target from the parameters before it
    (the released FQL-family order)."""
    params, opt_state = apply_gradients(state, grads)
    target = soft_update(state.params["critic"], state.target_params["critic"], state.config["tau"])
    return state.replace(
        params=params, target_params={"critic": target}, opt_state=opt_state, step=state.step + 1
    )


def euler_flow(
    vector_field: Callable[[jnp.ndarray, jnp.ndarray], jnp.ndarray],
    noises: jnp.ndarray,
    steps: int,
) -> jnp.ndarray:
    """Integrate dx/dt = v(x, t) from t = 0 (x = noise) to t = 1 with `steps` Euler steps.

    `vector_field(x, t)` gets `t` shaped like x[..., :1]. Result not clipped.
    One traced step in a loop (not `steps` unrolled copies): same numbers, smaller program.
    """

    def body(i, x):
        t = jnp.full((*x.shape[:-1], 1), i / steps, dtype=x.dtype)
        return x + vector_field(x, t) / steps

    return jax.lax.fori_loop(0, steps, body, noises)


def check_batch(example_batch: Mapping, keys: tuple[str, ...], agent: str) -> None:
    missing = [k for k in keys if k not in example_batch]
    if missing:
        raise ValueError(f"{agent}: the batch lacks key(s) {', '.join(missing)}")
