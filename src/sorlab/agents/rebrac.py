"""ReBRAC (Tarasov et al., 2023): TD3+BC with layer-normed critics and separate BC penalties.

Faithful to the released FQL code's `agents/rebrac.py`:
- deterministic actor tanh(mean) of a Gaussian head (final layer init scale 0.01);
- critic target: min of the two TARGET critics at the TARGET actor's action plus clipped
  Gaussian noise (0.2, clip 0.5), minus `alpha_critic` * ||a' - a'_data||^2, where a'_data is
  the dataset's next action (batch key `next_actions`, see `with_next_actions`);
- actor loss: -Q / stop_grad(mean |Q|) (Q = min of the critics) + `alpha_actor` * ||a - a_data||^2;
- the actor and both targets are updated every `actor_freq` (2) updates, on the even-numbered
  updates counting from 1; the other updates take an Adam step on the critic loss alone. That
  step still moves the actor through Adam's momentum, as in the released code;
- targets from the parameters BEFORE the update (as released); one Adam over all networks.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from sorlab.agents._lib import gaussian
from sorlab.agents._lib.config import shared_config
from sorlab.agents._lib.critics import critic_read, twin_critic
from sorlab.agents._lib.envs import per_env
from sorlab.agents._lib.interface import interface_q_value
from sorlab.agents._lib.state import (
    TD_BATCH_KEYS,
    TrainState,
    apply_gradients,
    check_batch,
    create_state,
    soft_update,
)
from sorlab.networks import GaussianActor

# (alpha_actor, alpha_critic) per OGBench family: the FQL paper's Table 6 (antsoccer: a later
# paper's reprint of it, secondary); humanoidmaze-medium and visual cube-single also match the
# FQL README's example flags. See docs/baselines.md, "Per-environment hyperparameters".
ALPHAS = {
    "antmaze-large-navigate": (0.003, 0.01),
    "antmaze-giant-navigate": (0.003, 0.01),
    "humanoidmaze-medium-navigate": (0.01, 0.01),
    "humanoidmaze-large-navigate": (0.01, 0.01),
    "antsoccer-arena-navigate": (0.01, 0.01),
    "cube-single-play": (1.0, 0.0),
    "cube-double-play": (0.1, 0.0),
    "scene-play": (0.1, 0.01),
    "puzzle-3x3-play": (0.3, 0.01),
    "puzzle-4x4-play": (0.3, 0.01),
}

ACTOR_METRICS = ("actor/total_loss", "actor/actor_loss", "actor/bc_loss", "actor/std", "actor/mse")


class ReBRACState(TrainState):
    """TrainState plus the metrics of the latest actor step (repeated on critic-only updates)."""

    actor_info: dict = None


BATCH_KEYS = (*TD_BATCH_KEYS, "next_actions")


def default_config(env_name: str) -> dict:
    alpha_actor, alpha_critic = per_env(
        env_name, ALPHAS, (0.0, 0.0), "ReBRAC (alpha_actor, alpha_critic)"
    )
    return shared_config(env_name) | dict(
        tanh_squash=True,
        actor_fc_scale=0.01,
        alpha_actor=alpha_actor,
        alpha_critic=alpha_critic,
        actor_freq=2,
        actor_noise=0.2,
        actor_noise_clip=0.5,
    )


def with_next_actions(dataset: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Add `next_actions` = actions[i + 1] (the last row keeps its own action), as the released
    sampler does. As there, it is wrong at the last transition of each episode, where it holds
    the next episode's first action."""
    actions = dataset["actions"]
    next_idx = np.minimum(np.arange(len(actions)) + 1, len(actions) - 1)
    return dict(dataset, next_actions=actions[next_idx])


# ---------------------------------------------------------------- pure loss pieces


def target_policy_noise(rng: jax.Array, shape, noise: float, noise_clip: float) -> jnp.ndarray:
    return jnp.clip(jax.random.normal(rng, shape) * noise, -noise_clip, noise_clip)


def critic_bc_penalty(
    next_q: jnp.ndarray,
    next_actions: jnp.ndarray,
    data_next_actions: jnp.ndarray,
    alpha_critic: float,
) -> jnp.ndarray:
    """ReBRAC's critic penalty: the bootstrapped value minus alpha_critic * ||a' - a'_data||^2."""
    return next_q - alpha_critic * jnp.sum(jnp.square(next_actions - data_next_actions), axis=-1)


def actor_objective(
    q: jnp.ndarray, actions: jnp.ndarray, data_actions: jnp.ndarray, alpha_actor: float
) -> tuple[jnp.ndarray, jnp.ndarray]:
    """(Q term, BC term) of ReBRAC's actor loss: -mean(Q) / stop_grad(mean |Q|) and
    alpha_actor * mean ||a - a_data||^2."""
    lam = jax.lax.stop_gradient(1 / jnp.abs(q).mean())
    q_loss = -(lam * q).mean()
    bc_loss = (alpha_actor * jnp.sum(jnp.square(actions - data_actions), axis=-1)).mean()
    return q_loss, bc_loss


# ---------------------------------------------------------------- networks


def networks(config) -> dict:
    return dict(
        critic=twin_critic(config),
        actor=GaussianActor(
            config["actor_hidden_dims"],
            config["action_dim"],
            layer_norm=config["actor_layer_norm"],
            const_std=True,
            final_fc_init_scale=config["actor_fc_scale"],
        ),
    )


def init(rng: jax.Array, example_batch: dict, config: dict) -> ReBRACState:
    check_batch(
        example_batch, BATCH_KEYS, "rebrac (add next_actions with rebrac.with_next_actions)"
    )
    obs = jnp.asarray(example_batch["observations"][:1])
    actions = jnp.asarray(example_batch["actions"][:1])
    config = dict(config, action_dim=int(actions.shape[-1]))
    nets = networks(config)
    critic_rng, actor_rng = jax.random.split(rng)
    params = dict(
        critic=nets["critic"].init(critic_rng, obs, actions)["params"],
        actor=nets["actor"].init(actor_rng, obs)["params"],
    )
    state = create_state(params, ("critic", "actor"), config)
    zeros = {k: jnp.zeros((), jnp.float32) for k in ACTOR_METRICS}
    return ReBRACState(
        **{f.name: getattr(state, f.name) for f in dataclasses.fields(state)}, actor_info=zeros
    )


def _policy(nets, config, actor_params, observations) -> jnp.ndarray:
    means, _ = nets["actor"].apply({"params": actor_params}, observations)
    return gaussian.mode(means, config["tanh_squash"])


# ---------------------------------------------------------------- update


def _critic_loss(params, state: TrainState, batch, rng) -> tuple[jnp.ndarray, dict]:
    config, nets = state.config, networks(state.config)
    targets = state.target_params
    next_obs = batch["next_observations"]
    next_actions = _policy(nets, config, targets["actor"], next_obs)
    _, noise_rng = jax.random.split(rng)  # the released code's split of its critic rng
    noise = target_policy_noise(
        noise_rng, next_actions.shape, config["actor_noise"], config["actor_noise_clip"]
    )
    next_actions = jnp.clip(next_actions + noise, -1, 1)
    next_q = jnp.min(
        nets["critic"].apply({"params": targets["critic"]}, next_obs, next_actions), axis=0
    )
    next_q = critic_bc_penalty(next_q, next_actions, batch["next_actions"], config["alpha_critic"])
    target_q = batch["rewards"] + config["discount"] * batch["masks"] * next_q

    q = nets["critic"].apply({"params": params["critic"]}, batch["observations"], batch["actions"])
    critic_loss = jnp.square(q - target_q).mean()
    info = {
        "critic/critic_loss": critic_loss,
        "critic/q_mean": q.mean(),
        "critic/q_max": q.max(),
        "critic/q_min": q.min(),
    }
    return critic_loss, info


def _actor_loss(params, state: TrainState, batch) -> tuple[jnp.ndarray, dict]:
    config, nets = state.config, networks(state.config)
    obs = batch["observations"]
    actions = _policy(nets, config, params["actor"], obs)
    # The critic is held fixed here; the gradient reaches the actor through its actions only.
    critic_params = jax.lax.stop_gradient(params["critic"])
    q = jnp.min(nets["critic"].apply({"params": critic_params}, obs, actions), axis=0)
    q_loss, bc_loss = actor_objective(q, actions, batch["actions"], config["alpha_actor"])
    total = q_loss + bc_loss
    info = {
        "actor/total_loss": total,
        "actor/actor_loss": q_loss,
        "actor/bc_loss": bc_loss,
        "actor/std": jnp.ones(()),  # constant std exp(0), as released
        "actor/mse": jnp.sum(jnp.square(actions - batch["actions"]), axis=-1).mean(),
    }
    return total, info


def _full_loss(params, state, batch, rng):
    critic_loss, critic_info = _critic_loss(params, state, batch, rng)
    actor_loss, actor_info = _actor_loss(params, state, batch)
    return critic_loss + actor_loss, (critic_info, actor_info)


def _critic_only_loss(params, state, batch, rng):
    critic_loss, critic_info = _critic_loss(params, state, batch, rng)
    # No actor loss: report the last actor step's metrics again (one structure for the scan,
    # and means over a logging window stay means over actor steps).
    return critic_loss, (critic_info, state.actor_info)


@jax.jit
def update(state: ReBRACState, batch: dict, rng: jax.Array) -> tuple[ReBRACState, dict]:
    """One update; the actor and the targets move on every `actor_freq`-th update only."""
    config = state.config
    # Released loop: update i = 1, 2, ... is full when i % actor_freq == 0.
    full = (state.step + 1) % config["actor_freq"] == 0
    # The released code splits its rng into (rng, actor_rng, critic_rng); only critic_rng is used.
    critic_rng = jax.random.split(rng, 3)[2]
    grads, (critic_info, actor_info) = jax.lax.cond(
        full,
        lambda: jax.grad(_full_loss, has_aux=True)(state.params, state, batch, critic_rng),
        lambda: jax.grad(_critic_only_loss, has_aux=True)(state.params, state, batch, critic_rng),
    )
    params, opt_state = apply_gradients(state, grads)
    tau = config["tau"]
    new_targets = {
        name: soft_update(state.params[name], state.target_params[name], tau)
        for name in ("critic", "actor")
    }
    targets = jax.tree_util.tree_map(
        lambda new, old: jnp.where(full, new, old), new_targets, state.target_params
    )
    info = {**critic_info, **actor_info, "actor/updated": full.astype(jnp.float32)}
    new_state = state.replace(
        params=params,
        target_params=targets,
        opt_state=opt_state,
        step=state.step + 1,
        actor_info=actor_info,
    )
    return new_state, info


# ---------------------------------------------------------------- acting


@jax.jit
def _act(state: TrainState, observations, rng, temperature):
    config, nets = state.config, networks(state.config)
    actions = _policy(nets, config, state.params["actor"], observations)
    noise = target_policy_noise(
        rng, actions.shape, config["actor_noise"] * temperature, config["actor_noise_clip"]
    )
    return jnp.clip(actions + noise, -1, 1)


def act(
    state: TrainState, observations: jnp.ndarray, rng: jax.Array, **inference: Any
) -> jnp.ndarray:
    """tanh(mean) plus exploration noise scaled by `temperature` (default 0, as the released
    evaluation: deterministic). `m_inf` and `n` are accepted and ignored."""
    return _act(state, jnp.asarray(observations), rng, float(inference.get("temperature", 0.0)))


q_value = interface_q_value(
    critic_read(lambda config: networks(config)["critic"], "min"),
    "Minimum of the two critics (ReBRAC's aggregation), shape (B,).",
)
