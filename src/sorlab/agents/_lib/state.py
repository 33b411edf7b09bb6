"""The train state of the FQL-family agents, its one Adam step and soft target updates.

The state holds parameters, target parameters, ONE Adam state over all trained parameters (as
released), an update counter, and the config as a static (hashable) field.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax
from flax import struct


def freeze_config(config: Mapping[str, Any]) -> flax.core.FrozenDict:
    """A hashable copy of `config` (lists become tuples) so it can be a static pytree field."""

    def freeze(value):
        if isinstance(value, list | tuple):
            return tuple(freeze(v) for v in value)
        return value

    return flax.core.FrozenDict({k: freeze(v) for k, v in dict(config).items()})


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


def check_batch(example_batch: Mapping, keys: tuple[str, ...], agent: str) -> None:
    missing = [k for k in keys if k not in example_batch]
    if missing:
        raise ValueError(f"{agent}: the batch lacks key(s) {', '.join(missing)}")


# The transitions every actor-critic agent reads.
TD_BATCH_KEYS = ("observations", "actions", "rewards", "masks", "next_observations")


def actor_critic_grads(state, batch: dict, rng: jax.Array, critic_loss, actor_loss):
    """Gradients of critic_loss + actor_loss (each `(state, params, batch, rng) -> (loss,
    info)`, with the two halves of `rng`) in all parameters, and the merged info."""
    critic_rng, actor_rng = jax.random.split(rng)

    def loss_fn(params):
        c_loss, c_info = critic_loss(state, params, batch, critic_rng)
        a_loss, a_info = actor_loss(state, params, batch, actor_rng)
        return c_loss + a_loss, {**c_info, **a_info}

    return jax.grad(loss_fn, has_aux=True)(state.params)


def actor_critic_update(critic_loss, actor_loss):
    """`update(state, batch, rng) -> (state, info)`: one optimizer step on the gradients of
    `actor_critic_grads`."""

    def update(state, batch: dict, rng: jax.Array) -> tuple:
        grads, info = actor_critic_grads(state, batch, rng, critic_loss, actor_loss)
        return apply_update(state, grads), info

    return update
