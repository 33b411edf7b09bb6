"""Flow-matching pieces: the rectified-flow path, (weighted) flow matching, Euler sampling, and
the flow-policy actor-critic that FAWAC and FBRAC share (CAC shares its networks)."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from sorlab.agents._lib.critics import critic_read, twin_critic
from sorlab.agents._lib.losses import aggregate, td_loss, td_target
from sorlab.agents._lib.state import TrainState, check_batch, create_state
from sorlab.networks import ActorVectorField, Value


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


def flow_targets(x0: jax.Array, x1: jax.Array, t: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Rectified-flow path: x_t = (1 - t) x0 + t x1 and its velocity x1 - x0."""
    return (1.0 - t) * x0 + t * x1, x1 - x0


def weighted_flow_loss(pred: jax.Array, target: jax.Array, weights: jax.Array | None = None):
    """Mean over the batch of weight * per-sample mean squared velocity error."""
    per_sample = jnp.mean(jnp.square(pred - target), axis=-1)
    if weights is None:
        return per_sample.mean()
    return jnp.mean(weights * per_sample)


def euler_sample(velocity: Callable, observations, noises: jax.Array, steps: int) -> jax.Array:
    """Integrate dx/dt = velocity(obs, x, t) from t=0 (noise) to 1 with `steps` Euler steps.

    Differentiable: gradients flow through every step (FBRAC relies on this). The result is
    clipped to the action box [-1, 1].
    """
    x = euler_flow(lambda x, t: velocity(observations, x, t), noises, steps)
    return jnp.clip(x, -1.0, 1.0)


def flow_networks(config) -> tuple[ActorVectorField, Value]:
    """A policy network v(s, x, t) and a critic ensemble Q(s, a) (FAWAC, FBRAC, CAC)."""
    actor = ActorVectorField(
        hidden_dims=config["actor_hidden_dims"],
        action_dim=config["action_dim"],
        layer_norm=config["actor_layer_norm"],
    )
    return actor, twin_critic(config)


def init_actor_critic(rng: jax.Array, example_batch: dict, config: dict, agent: str) -> TrainState:
    """The state of an agent with `flow_networks`: actor, critic and the critic's target."""
    check_batch(example_batch, ("observations", "actions", "rewards", "masks",
                                "next_observations"), agent)  # fmt: skip
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


def sample_flow_policy(config, actor_params, observations: jax.Array, rng: jax.Array) -> jax.Array:
    """Actions of the flow policy with parameters `actor_params` (differentiable in them)."""
    actor, _ = flow_networks(config)
    noises = jax.random.normal(rng, (*observations.shape[:-1], config["action_dim"]))
    return euler_sample(
        lambda o, x, t: actor.apply({"params": actor_params}, o, x, t),
        observations,
        noises,
        config["flow_steps"],
    )


def flow_policy_critic_loss(state: TrainState, params, batch: dict, rng: jax.Array):
    """TD loss; next actions from the current flow policy (no gradient). FAWAC, FBRAC."""
    config = state.config
    _, critic = flow_networks(config)
    actor_params = jax.lax.stop_gradient(params["actor"])
    next_actions = sample_flow_policy(config, actor_params, batch["next_observations"], rng)
    next_qs = critic.apply(
        {"params": state.target_params["critic"]}, batch["next_observations"], next_actions
    )
    target = td_target(batch, config["discount"], aggregate(next_qs, config["q_agg"]))
    qs = critic.apply({"params": params["critic"]}, batch["observations"], batch["actions"])
    return td_loss(qs, target)


# The critic ensemble of `flow_networks` aggregated with the config's `q_agg`, (B,).
critic_q_value = critic_read(lambda config: flow_networks(config)[1])
