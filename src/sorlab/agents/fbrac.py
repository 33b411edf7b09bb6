"""FBRAC: behaviour-regularised actor-critic with a flow policy (FQL paper's flow baseline).

The flow policy itself is the actor: its loss is `alpha * flow_matching_BC - Q(s, a_pi)`, where
a_pi is sampled with `flow_steps` Euler steps from the CURRENT flow and the Q gradient is
backpropagated through every Euler step (backpropagation through time). This is the costly,
potentially unstable recipe that FQL's one-step distillation avoids; it is the baseline for it.
The critic is a TD critic (two-member LayerNorm ensemble) with next actions from the flow.
"""

from __future__ import annotations

import jax
import optax

from sorlab.agents._lib.config import shared_config
from sorlab.agents._lib.envs import FQL_Q_AGG, per_env
from sorlab.agents._lib.flow import (
    critic_q_value,
    flow_networks,
    flow_policy_critic_loss,
    flow_targets,
    init_actor_critic,
    sample_flow_policy,
    weighted_flow_loss,
)
from sorlab.agents._lib.interface import interface_act, interface_q_value
from sorlab.agents._lib.losses import q_maximisation_loss
from sorlab.agents._lib.state import TrainState, actor_critic_grads, apply_update

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


def default_config(env_name: str) -> dict:
    return shared_config(env_name) | dict(
        q_agg=per_env(env_name, FQL_Q_AGG, "mean", "FBRAC q_agg"),
        alpha=per_env(env_name, ALPHA, 10.0, "FBRAC alpha"),  # BC (flow matching) coefficient
        normalize_q_loss=False,  # divide the Q loss by stop_grad(mean |Q| + 1e-6)
        flow_steps=10,  # Euler steps, for sampling and for backpropagation
    )


def init(rng: jax.Array, example_batch: dict, config: dict) -> TrainState:
    return init_actor_critic(rng, example_batch, config, "fbrac")


critic_loss = flow_policy_critic_loss


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

    pi_actions = sample_flow_policy(
        config, params["actor"], obs, pi_rng
    )  # gradient through all steps
    qs = critic.apply({"params": jax.lax.stop_gradient(params["critic"])}, obs, pi_actions)
    q = qs.mean(axis=0)
    q_loss = q_maximisation_loss(q, config["normalize_q_loss"], eps=1e-6)
    loss = config["alpha"] * bc_loss + q_loss
    return loss, {
        "actor/loss": loss,
        "actor/bc_loss": bc_loss,
        "actor/q_loss": q_loss,
        "actor/q": q.mean(),
    }


def update(state: TrainState, batch: dict, rng: jax.Array) -> tuple[TrainState, dict]:
    grads, info = actor_critic_grads(state, batch, rng, critic_loss, actor_loss)
    info["actor/grad_norm"] = optax.global_norm(grads["actor"])
    return apply_update(state, grads), info


def _act(state: TrainState, observations: jax.Array, rng: jax.Array) -> jax.Array:
    return sample_flow_policy(state.config, state.params["actor"], observations, rng)


act = interface_act(
    _act, "Sample with `flow_steps` Euler steps; `m_inf` and `n` are accepted and ignored."
)


q_value = interface_q_value(critic_q_value, "Critic estimate (B,) with the training aggregation.")
