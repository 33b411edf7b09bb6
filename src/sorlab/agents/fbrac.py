"""FBRAC: behaviour-regularised actor-critic with a flow policy (FQL paper's flow baseline).

The flow policy itself is the actor: its loss is `alpha * flow_matching_BC - Q(s, a_pi)`, where
a_pi is sampled with `flow_steps` Euler steps from the CURRENT flow and the Q gradient is
backpropagated through every Euler step (backpropagation through time). This is the costly,
potentially unstable recipe that FQL's one-step distillation avoids; it is the baseline for it.
The critic is a TD critic (two-member LayerNorm ensemble) with next actions from the flow.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from sorlab.agents._fql_common import (
    TrainState,
    apply_update,
    check_batch,
    create_state,
    discount_for,
    per_env,
)
from sorlab.agents.fawac import (
    Q_AGG,
    aggregate,
    flow_networks,
    flow_targets,
    sample_policy,
    weighted_flow_loss,
)

# BC coefficient per OGBench family: the FQL paper's Table 6 (FBRAC column). Its antsoccer value
# is not published: by rule, antmaze-giant's (see fawac.ALPHA and docs/baselines.md).
ALPHA = {
    "antmaze-large-navigate": 3.0,
    "antmaze-giant-navigate": 10.0,
    "humanoidmaze-medium-navigate": 30.0,
    "humanoidmaze-large-navigate": 30.0,
    "antsoccer-arena-navigate": 10.0,  # by rule (not published)
    "cube-single-play": 100.0,
    "cube-double-play": 100.0,
    "scene-play": 100.0,
    "puzzle-3x3-play": 100.0,
    "puzzle-4x4-play": 300.0,
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
        q_agg=per_env(env_name, Q_AGG, "mean", "FBRAC q_agg"),
        alpha=per_env(env_name, ALPHA, 10.0, "FBRAC alpha"),  # BC (flow matching) coefficient
        normalize_q_loss=False,  # divide the Q loss by stop_grad(mean |Q|)
        flow_steps=10,  # Euler steps, for sampling and for backpropagation
    )


def q_maximisation_loss(q: jax.Array, normalize: bool) -> jax.Array:
    """-mean(Q), optionally divided by stop_grad(mean |Q|) to make alpha scale-free."""
    loss = -q.mean()
    if normalize:
        loss = loss / jax.lax.stop_gradient(jnp.abs(q).mean() + 1e-6)
    return loss


def init(rng: jax.Array, example_batch: dict, config: dict) -> TrainState:
    check_batch(example_batch, BATCH_KEYS, "fbrac")
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
    """alpha * BC flow matching + Q loss through the Euler steps (critic not differentiated)."""
    config = state.config
    actor, critic = flow_networks(config)
    x_rng, t_rng, pi_rng = jax.random.split(rng, 3)
    obs, actions = batch["observations"], batch["actions"]

    x0 = jax.random.normal(x_rng, actions.shape)
    t = jax.random.uniform(t_rng, (*actions.shape[:-1], 1))
    x_t, velocity = flow_targets(x0, actions, t)
    bc_loss = weighted_flow_loss(actor.apply({"params": params["actor"]}, obs, x_t, t), velocity)

    pi_actions = sample_policy(config, params["actor"], obs, pi_rng)  # gradient through all steps
    qs = critic.apply({"params": jax.lax.stop_gradient(params["critic"])}, obs, pi_actions)
    q = qs.mean(axis=0)
    q_loss = q_maximisation_loss(q, config["normalize_q_loss"])
    loss = config["alpha"] * bc_loss + q_loss
    return loss, {
        "actor/loss": loss,
        "actor/bc_loss": bc_loss,
        "actor/q_loss": q_loss,
        "actor/q": q.mean(),
    }


def update(state: TrainState, batch: dict, rng: jax.Array) -> tuple[TrainState, dict]:
    critic_rng, actor_rng = jax.random.split(rng)

    def loss_fn(params):
        c_loss, c_info = critic_loss(state, params, batch, critic_rng)
        a_loss, a_info = actor_loss(state, params, batch, actor_rng)
        return c_loss + a_loss, {**c_info, **a_info}

    grads, info = jax.grad(loss_fn, has_aux=True)(state.params)
    info["actor/grad_norm"] = optax.global_norm(grads["actor"])
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
