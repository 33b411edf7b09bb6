"""The critic ensemble and state-value networks most agents build, and the Q read-out they act
and report with."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax

from sorlab.agents._lib.losses import aggregate
from sorlab.networks import Value


def twin_critic(config: Mapping[str, Any]) -> Value:
    """Q(s, a) as an ensemble of two MLPs (`value_hidden_dims`, `layer_norm`)."""
    return Value(config["value_hidden_dims"], layer_norm=config["layer_norm"], num_ensembles=2)


def state_value(config: Mapping[str, Any]) -> Value:
    """V(s): one MLP with the critic's sizes."""
    return Value(config["value_hidden_dims"], layer_norm=config["layer_norm"], num_ensembles=1)


def ensemble_q(
    critic: Value, critic_params, observations: jax.Array, actions: jax.Array, how: str
) -> jax.Array:
    """The critic ensemble at (observations, actions) combined by `how` ("min" or "mean"), (B,)."""
    return aggregate(critic.apply({"params": critic_params}, observations, actions), how)


def critic_read(
    critic_of: Callable[[Mapping[str, Any]], Value], how: str | None = None
) -> Callable[[Any, jax.Array, jax.Array], jax.Array]:
    """`read(state, observations, actions) -> (B,)`: the online critic ensemble that
    `critic_of(config)` builds, combined by `how` (None: the config's `q_agg`)."""

    def read(state, observations: jax.Array, actions: jax.Array) -> jax.Array:
        agg = state.config["q_agg"] if how is None else how
        critic = critic_of(state.config)
        return ensemble_q(critic, state.params["critic"], observations, actions, agg)

    return read


def value_critic_summary(value_loss, v, critic_loss, qs) -> dict:
    """The value and critic metrics of IDQL and SRPO (their released names)."""
    return {
        "value/loss": value_loss,
        "value/v_mean": v.mean(),
        "critic/loss": critic_loss,
        "critic/q_mean": qs.mean(),
    }


def value_critic_info(value_loss, v, critic_loss, q_target) -> dict:
    """The value and critic metrics of IQL-style value learning (IQL, IFQL)."""
    return {
        "value/value_loss": value_loss,
        "value/v_mean": v.mean(),
        "value/v_max": v.max(),
        "value/v_min": v.min(),
        "critic/critic_loss": critic_loss,
        "critic/q_mean": q_target.mean(),
        "critic/q_max": q_target.max(),
        "critic/q_min": q_target.min(),
    }
