"""The agent interface's `act` and `q_value` built from an agent's pure functions: jitted once,
inputs made arrays, and the evaluation grid's keywords (`m_inf`, `n`) accepted and ignored, for
the agents whose sampling does not depend on them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

Sample = Callable[[Any, jax.Array, jax.Array], jax.Array]  # (state, observations, rng) -> (B, A)
Read = Callable[[Any, jax.Array, jax.Array], jax.Array]  # (state, observations, actions) -> (B,)


def interface_act(sample: Sample, doc: str) -> Callable[..., jax.Array]:
    """`act(state, observations, rng, **inference)` around a pure `sample`."""
    jitted = jax.jit(sample)

    def act(state, observations, rng: jax.Array, **inference: Any) -> jax.Array:
        return jitted(state, jnp.asarray(observations), rng)

    act.__doc__ = doc
    return act


def interface_q_value(read: Read, doc: str) -> Callable[..., jax.Array]:
    """`q_value(state, observations, actions, **inference)` around a pure `read`."""
    jitted = jax.jit(read)

    def q_value(state, observations, actions, **inference: Any) -> jax.Array:
        return jitted(state, jnp.asarray(observations), jnp.asarray(actions))

    q_value.__doc__ = doc
    return q_value
