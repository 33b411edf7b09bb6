"""FAWAC: AWAC with a flow-matching policy (the FQL paper's flow baseline, Park et al. 2025).

The policy is a flow velocity field v(s, x_t, t) trained by flow matching, with each data pair
weighted by the AWAC advantage weight exp(alpha * (Q(s, a) - V(s))), clipped at `max_weight`.
AWAC's value is that of the current policy: V(s) = Q(s, a_pi) with a_pi ~ pi(. | s) sampled by
Euler integration of the flow. The critic is a SARSA-style TD critic whose next actions come
from the current flow policy (as in AWAC), a two-member LayerNorm ensemble.

Also the home of the flow-matching helpers that FBRAC reuses.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from sorlab.agents._fql_common import (
    TrainState,
    apply_update,
    check_batch,
    create_state,
    discount_for,
    euler_flow,
    per_env,
)
from sorlab.networks import ActorVectorField, Value

# AWAC inverse temperature per OGBench family: the FQL paper's Table 6 (FAWAC column). Its
# antsoccer value is not published: by rule, antmaze-giant's (same ant, same discount 0.995, and
# FQL's own alpha is 10 on both). Checked against sorlab/report/data/published_coefficients.csv.
ALPHA = {
    "antmaze-large-navigate": 3.0,
    "antmaze-giant-navigate": 3.0,
    "humanoidmaze-medium-navigate": 3.0,
    "humanoidmaze-large-navigate": 3.0,
    "antsoccer-arena-navigate": 3.0,  # by rule (not published)
    "cube-single-play": 1.0,
    "cube-double-play": 0.3,
    "scene-play": 0.3,
    "puzzle-3x3-play": 0.3,
    "puzzle-4x4-play": 0.3,
}
# Critic aggregation as in FQL's flags: min on antmaze, mean elsewhere.
Q_AGG = {family: "mean" for family in ALPHA} | {
    "antmaze-large-navigate": "min",
    "antmaze-giant-navigate": "min",
}
BATCH_KEYS = ("observations", "actions", "rewards", "masks", "next_observations")


def default_config(env_name: str) -> dict:
    return dict(
        lr=3e-4,
        batch_size=256,
        actor_hidden_dims=(512, 512, 512, 512),
        value_hidden_dims=(512, 512, 512, 512),
        layer_norm=True,  # critics
        actor_layer_norm=False,
        discount=discount_for(env_name),
        tau=0.005,
        q_agg=per_env(env_name, Q_AGG, "mean", "FAWAC q_agg"),  # "min" or "mean" of the 2 critics
        alpha=per_env(env_name, ALPHA, 1.0, "FAWAC alpha"),  # AWAC inverse temperature
        max_weight=100.0,  # clip of exp(alpha * advantage), as in IQL/AWR
        flow_steps=10,  # Euler steps for sampling
    )


# ----------------------------------------------------------------------------------------------
# Flow-matching pieces (shared with FBRAC)


def aggregate(qs: jax.Array, how: str) -> jax.Array:
    """Combine ensemble outputs (E, ...) into (...) with "min" or "mean"."""
    if how == "min":
        return qs.min(axis=0)
    if how == "mean":
        return qs.mean(axis=0)
    raise ValueError(f"q_agg must be 'min' or 'mean', got {how!r}")


def flow_targets(x0: jax.Array, x1: jax.Array, t: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Rectified-flow path: x_t = (1 - t) x0 + t x1 and its velocity x1 - x0."""
    return (1.0 - t) * x0 + t * x1, x1 - x0


def weighted_flow_loss(pred: jax.Array, target: jax.Array, weights: jax.Array | None = None):
    """Mean over the batch of weight * per-sample mean squared velocity error."""
    per_sample = jnp.mean(jnp.square(pred - target), axis=-1)
    if weights is None:
        return per_sample.mean()
    return jnp.mean(weights * per_sample)


def awac_weights(q: jax.Array, v: jax.Array, alpha: float, max_weight: float) -> jax.Array:
    """AWAC/AWR weights exp(alpha * (Q - V)), clipped at max_weight (no gradient)."""
    return jax.lax.stop_gradient(jnp.minimum(jnp.exp(alpha * (q - v)), max_weight))


def euler_sample(velocity: Callable, observations, noises: jax.Array, steps: int) -> jax.Array:
    """Integrate dx/dt = velocity(obs, x, t) from t=0 (noise) to 1 with `steps` Euler steps.

    Differentiable: gradients flow through every step (FBRAC relies on this). The result is
    clipped to the action box [-1, 1].
    """
    x = euler_flow(lambda x, t: velocity(observations, x, t), noises, steps)
    return jnp.clip(x, -1.0, 1.0)


def flow_networks(config) -> tuple[ActorVectorField, Value]:
    actor = ActorVectorField(
        hidden_dims=config["actor_hidden_dims"],
        action_dim=config["action_dim"],
        layer_norm=config["actor_layer_norm"],
    )
    critic = Value(hidden_dims=config["value_hidden_dims"], layer_norm=config["layer_norm"])
    return actor, critic


def sample_policy(config, actor_params, observations: jax.Array, rng: jax.Array) -> jax.Array:
    """Actions of the flow policy with parameters `actor_params` (differentiable in them)."""
    actor, _ = flow_networks(config)
    noises = jax.random.normal(rng, (*observations.shape[:-1], config["action_dim"]))
    return euler_sample(
        lambda o, x, t: actor.apply({"params": actor_params}, o, x, t),
        observations,
        noises,
        config["flow_steps"],
    )


# ----------------------------------------------------------------------------------------------
# Agent interface


def init(rng: jax.Array, example_batch: dict, config: dict) -> TrainState:
    check_batch(example_batch, BATCH_KEYS, "fawac")
    config = {**config, "action_dim": int(example_batch["actions"].shape[-1])}
    actor, critic = flow_networks(config)
    obs = jnp.asarray(example_batch["observations"][:1])
    act = jnp.asarray(example_batch["actions"][:1])
    actor_rng, critic_rng = jax.random.split(rng)
    params = {
        "actor": actor.init(actor_rng, obs, act, act[:, :1])["params"],
        "critic": critic.init(critic_rng, obs, act)["params"],
    }
    return create_state(params, ("critic",), config)


def critic_loss(state: TrainState, params, batch: dict, rng: jax.Array):
    """TD loss; next actions from the current flow policy (no gradient)."""
    config = state.config
    _, critic = flow_networks(config)
    actor_params = jax.lax.stop_gradient(params["actor"])
    next_actions = sample_policy(config, actor_params, batch["next_observations"], rng)
    next_qs = critic.apply(
        {"params": state.target_params["critic"]}, batch["next_observations"], next_actions
    )
    target = batch["rewards"] + config["discount"] * batch["masks"] * aggregate(
        next_qs, config["q_agg"]
    )
    qs = critic.apply({"params": params["critic"]}, batch["observations"], batch["actions"])
    loss = jnp.square(qs - jax.lax.stop_gradient(target)).mean()
    return loss, {"critic/loss": loss, "critic/q_mean": qs.mean(), "critic/q_max": qs.max()}


def actor_loss(state: TrainState, params, batch: dict, rng: jax.Array):
    """Advantage-weighted flow matching; the critic only supplies (stopped) weights.

    AWAC's V(s) is the value of the current policy, Q(s, a_pi) for one a_pi ~ pi(. | s).
    """
    config = state.config
    actor, critic = flow_networks(config)
    pi_rng, x_rng, t_rng = jax.random.split(rng, 3)
    obs, actions = batch["observations"], batch["actions"]
    critic_params = jax.lax.stop_gradient(params["critic"])
    q = aggregate(critic.apply({"params": critic_params}, obs, actions), config["q_agg"])
    pi_actions = sample_policy(config, jax.lax.stop_gradient(params["actor"]), obs, pi_rng)
    v = aggregate(critic.apply({"params": critic_params}, obs, pi_actions), config["q_agg"])
    weights = awac_weights(q, v, config["alpha"], config["max_weight"])

    x0 = jax.random.normal(x_rng, actions.shape)
    t = jax.random.uniform(t_rng, (*actions.shape[:-1], 1))
    x_t, velocity = flow_targets(x0, actions, t)
    pred = actor.apply({"params": params["actor"]}, obs, x_t, t)
    loss = weighted_flow_loss(pred, velocity, weights)
    return loss, {
        "actor/loss": loss,
        "actor/adv_mean": (q - v).mean(),
        "actor/weight_mean": weights.mean(),
        "actor/weight_max": weights.max(),
    }


def update(state: TrainState, batch: dict, rng: jax.Array) -> tuple[TrainState, dict]:
    critic_rng, actor_rng = jax.random.split(rng)

    def loss_fn(params):
        c_loss, c_info = critic_loss(state, params, batch, critic_rng)
        a_loss, a_info = actor_loss(state, params, batch, actor_rng)
        return c_loss + a_loss, {**c_info, **a_info}

    grads, info = jax.grad(loss_fn, has_aux=True)(state.params)
    return apply_update(state, grads), info


@jax.jit
def _act(state: TrainState, observations: jax.Array, rng: jax.Array) -> jax.Array:
    return sample_policy(state.config, state.params["actor"], observations, rng)


def act(state: TrainState, observations, rng: jax.Array, **inference) -> jax.Array:
    """Sample with `flow_steps` Euler steps; `m_inf` and `n` are accepted and ignored."""
    return _act(state, jnp.asarray(observations), rng)


@jax.jit
def _q_value(state: TrainState, observations: jax.Array, actions: jax.Array) -> jax.Array:
    _, critic = flow_networks(state.config)
    qs = critic.apply({"params": state.params["critic"]}, observations, actions)
    return aggregate(qs, state.config["q_agg"])


def q_value(state: TrainState, observations, actions, **inference) -> jax.Array:
    """Critic estimate (B,) with the training aggregation."""
    return _q_value(state, jnp.asarray(observations), jnp.asarray(actions))
