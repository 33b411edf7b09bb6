"""Implicit Q-learning (IQL; Kostrikov et al., 2022) with AWR policy extraction.

Faithful to the released FQL code's `agents/iql.py` (the version the FQL and SORL papers ran):
- value V(s): expectile regression (expectile 0.9) onto min of the two TARGET critics;
- critics Q(s, a): regression onto r + discount * mask * V(s'), the SUM of both members' errors;
- actor: advantage-weighted regression, weights min(exp(alpha * (min Q - V)), 100), with a
  Gaussian actor of constant std 1; evaluation acts with the mean (temperature 0);
- one Adam over all networks, one gradient of (value + critic + actor) loss per update;
- target critic: Polyak average computed from the parameters BEFORE the update (as released).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from sorlab.agents._lib import gaussian
from sorlab.agents._lib.config import shared_config
from sorlab.agents._lib.critics import (
    critic_read,
    state_value,
    twin_critic,
    value_critic_info,
)
from sorlab.agents._lib.envs import is_manipulation, per_env
from sorlab.agents._lib.interface import interface_q_value
from sorlab.agents._lib.losses import advantage_weights, iql_forward, iql_value_critic_losses
from sorlab.agents._lib.state import (
    TD_BATCH_KEYS,
    TrainState,
    apply_update,
    check_batch,
    create_state,
)
from sorlab.networks import GaussianActor

# AWR inverse temperature `alpha` per OGBench family: the FQL paper's Table 6 (antsoccer: a later
# paper's reprint of it, secondary); humanoidmaze-medium and visual cube-single also match the
# FQL README's example flags. See docs/baselines.md.
ALPHA = {
    "antmaze-large-navigate": 10.0,
    "antmaze-giant-navigate": 10.0,
    "humanoidmaze-medium-navigate": 10.0,
    "humanoidmaze-large-navigate": 10.0,
    "antsoccer-arena-navigate": 1.0,
    "cube-single-play": 1.0,
    "cube-double-play": 0.3,
    "scene-play": 10.0,
    "puzzle-3x3-play": 10.0,
    "puzzle-4x4-play": 3.0,
}


def default_config(env_name: str) -> dict:
    # FQL paper, App. E.2: 4 x 256 on state-based manipulation (4 x 512 elsewhere, Table 5).
    dims = (256,) * 4 if is_manipulation(env_name) else (512,) * 4
    return shared_config(env_name, actor_hidden_dims=dims, value_hidden_dims=dims) | dict(
        expectile=0.9,
        alpha=per_env(env_name, ALPHA, 10.0, "IQL alpha"),  # AWR inverse temperature
        const_std=True,
    )


# ---------------------------------------------------------------- networks


def networks(config, action_dim: int) -> dict:
    return dict(
        value=state_value(config),
        critic=twin_critic(config),
        actor=GaussianActor(
            config["actor_hidden_dims"],
            action_dim,
            layer_norm=config["actor_layer_norm"],
            const_std=config["const_std"],
        ),
    )


def init(rng: jax.Array, example_batch: dict, config: dict) -> TrainState:
    check_batch(example_batch, TD_BATCH_KEYS, "iql")
    obs = jnp.asarray(example_batch["observations"][:1])
    actions = jnp.asarray(example_batch["actions"][:1])
    config = dict(config, action_dim=int(actions.shape[-1]))
    nets = networks(config, config["action_dim"])
    keys = jax.random.split(rng, 3)
    params = dict(
        value=nets["value"].init(keys[0], obs)["params"],
        critic=nets["critic"].init(keys[1], obs, actions)["params"],
        actor=nets["actor"].init(keys[2], obs)["params"],
    )
    return create_state(params, ("critic",), config)


# ---------------------------------------------------------------- update


def _loss(params: dict, state: TrainState, batch: dict) -> tuple[jnp.ndarray, dict]:
    config = state.config
    nets = networks(config, config["action_dim"])
    obs, actions = batch["observations"], batch["actions"]

    # Value: expectile regression onto the target critics' minimum; critic: TD onto V(s') with
    # the value network held fixed.
    target_qs, v, next_v, qs = iql_forward(
        nets["critic"], nets["value"], params, state.target_params["critic"], batch
    )
    value_loss, critic_loss, q_target = iql_value_critic_losses(
        target_qs, v, qs, next_v, batch, config
    )

    # Actor: AWR. The released code recomputes V(s) and Q(s, a) here without gradient; the
    # forward passes above are the same numbers, so we reuse them under stop_gradient.
    adv = jax.lax.stop_gradient(jnp.min(qs, axis=0) - v)
    weights = advantage_weights(adv, config["alpha"])
    means, log_stds = nets["actor"].apply({"params": params["actor"]}, obs)
    log_prob = gaussian.gaussian_log_prob(actions, means, log_stds)
    actor_loss = -(weights * log_prob).mean()

    info = {
        **value_critic_info(value_loss, v, critic_loss, q_target),
        "actor/actor_loss": actor_loss,
        "actor/adv": adv.mean(),
        "actor/bc_log_prob": log_prob.mean(),
        "actor/mse": jnp.mean((means - actions) ** 2),
        "actor/std": jnp.mean(jnp.exp(log_stds)),
    }
    return value_loss + critic_loss + actor_loss, info


@jax.jit
def update(state: TrainState, batch: dict, rng: jax.Array) -> tuple[TrainState, dict]:
    """One gradient step on all networks; `rng` is unused (IQL's update is deterministic)."""
    del rng
    grads, info = jax.grad(_loss, has_aux=True)(state.params, state, batch)
    return apply_update(state, grads), info


# ---------------------------------------------------------------- acting


@jax.jit
def _act(state: TrainState, observations: jnp.ndarray, rng: jax.Array, temperature: float):
    nets = networks(state.config, state.config["action_dim"])
    means, log_stds = nets["actor"].apply({"params": state.params["actor"]}, observations)
    return jnp.clip(gaussian.sample(rng, means, log_stds, temperature), -1, 1)


def act(
    state: TrainState, observations: jnp.ndarray, rng: jax.Array, **inference: Any
) -> jnp.ndarray:
    """Actions for a batch of observations. `temperature` scales the std (default 0: the mean,
    as the released evaluation); `m_inf` and `n` are accepted and ignored."""
    return _act(state, jnp.asarray(observations), rng, float(inference.get("temperature", 0.0)))


q_value = interface_q_value(
    critic_read(lambda config: networks(config, config["action_dim"])["critic"], "min"),
    "Minimum of the two critics (the aggregation IQL trains with), shape (B,).",
)
