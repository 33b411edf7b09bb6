"""Flow Q-learning (FQL; Park, Li & Levine, 2025).

Faithful to the released FQL code's `agents/fql.py`:
- a BC flow policy v(s, x_t, t) trained by flow matching (x_t = (1 - t) x0 + t a, target a - x0);
- a one-step policy mu(s, z) trained to maximise Q while distilling the BC flow: its action for
  noise z is pulled towards the flow's `flow_steps`-step (10) Euler solution from the same z;
  actor loss = flow matching + alpha * distillation - mean Q (mean of the two critics);
- critics: TD onto r + discount * mask * agg(target Q(s', mu(s', z'))), agg = mean or min;
- one gradient of (critic + actor) loss over all networks, one Adam; target critic from the
  parameters BEFORE the update (as released). Acting uses the one-step policy only.
The Euler steps run as a `fori_loop` (same numbers as the released unrolled loop).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from sorlab.agents._lib.config import shared_config
from sorlab.agents._lib.critics import critic_read, twin_critic
from sorlab.agents._lib.envs import FQL_Q_AGG, per_env
from sorlab.agents._lib.flow import euler_flow
from sorlab.agents._lib.interface import interface_act, interface_q_value
from sorlab.agents._lib.losses import aggregate, q_maximisation_loss
from sorlab.agents._lib.state import (
    TD_BATCH_KEYS,
    TrainState,
    apply_update,
    check_batch,
    create_state,
)
from sorlab.networks import ActorVectorField

# Exact flags of the FQL README ("Reproducing the main results", state-based OGBench).
ALPHA = {
    "antmaze-large-navigate": 10.0,
    "antmaze-giant-navigate": 10.0,
    "humanoidmaze-medium-navigate": 30.0,
    "humanoidmaze-large-navigate": 30.0,
    "antsoccer-arena-navigate": 10.0,
    "cube-single-play": 300.0,
    "cube-double-play": 300.0,
    "scene-play": 300.0,
    "puzzle-3x3-play": 1000.0,
    "puzzle-4x4-play": 1000.0,
}


def default_config(env_name: str) -> dict:
    return shared_config(env_name) | dict(
        q_agg=per_env(env_name, FQL_Q_AGG, "mean", "FQL q_agg"),
        alpha=per_env(env_name, ALPHA, 10.0, "FQL alpha"),  # distillation (BC) coefficient
        flow_steps=10,
        normalize_q_loss=False,  # off in the paper's runs (README)
    )


# ---------------------------------------------------------------- pure loss pieces


def flow_matching_loss(pred_velocity, x0, x1) -> jnp.ndarray:
    """Mean squared error to the straight-path velocity x1 - x0."""
    return jnp.mean((pred_velocity - (x1 - x0)) ** 2)


def distillation_loss(onestep_actions, flow_actions) -> jnp.ndarray:
    """Mean squared distance of the one-step actions to the (fixed) BC-flow actions."""
    return jnp.mean((onestep_actions - jax.lax.stop_gradient(flow_actions)) ** 2)


def q_loss(q: jnp.ndarray, normalize: bool) -> jnp.ndarray:
    """-mean(Q), optionally times stop_grad(1 / mean |Q|) (FQL's form)."""
    return q_maximisation_loss(q, normalize, reciprocal=True)


# ---------------------------------------------------------------- networks


def networks(config) -> dict:
    dims, action_dim = config["actor_hidden_dims"], config["action_dim"]
    return dict(
        critic=twin_critic(config),
        actor_bc_flow=ActorVectorField(dims, action_dim, layer_norm=config["actor_layer_norm"]),
        actor_onestep_flow=ActorVectorField(
            dims, action_dim, layer_norm=config["actor_layer_norm"]
        ),
    )


def init(rng: jax.Array, example_batch: dict, config: dict) -> TrainState:
    check_batch(example_batch, TD_BATCH_KEYS, "fql")
    obs = jnp.asarray(example_batch["observations"][:1])
    actions = jnp.asarray(example_batch["actions"][:1])
    config = dict(config, action_dim=int(actions.shape[-1]))
    nets = networks(config)
    keys = jax.random.split(rng, 3)
    params = dict(
        critic=nets["critic"].init(keys[0], obs, actions)["params"],
        actor_bc_flow=nets["actor_bc_flow"].init(keys[1], obs, actions, actions[:, :1])["params"],
        actor_onestep_flow=nets["actor_onestep_flow"].init(keys[2], obs, actions)["params"],
    )
    return create_state(params, ("critic",), config)


def flow_actions(config, bc_flow_params, observations, noises) -> jnp.ndarray:
    """The BC flow's actions: Euler from `noises` with `flow_steps` steps, clipped to [-1, 1]."""
    net = networks(config)["actor_bc_flow"]
    actions = euler_flow(
        lambda x, t: net.apply({"params": bc_flow_params}, observations, x, t),
        noises,
        config["flow_steps"],
    )
    return jnp.clip(actions, -1, 1)


def onestep_actions(config, onestep_params, observations, noises) -> jnp.ndarray:
    """The one-step policy's actions (clipped), i.e. what FQL acts with."""
    net = networks(config)["actor_onestep_flow"]
    return jnp.clip(net.apply({"params": onestep_params}, observations, noises), -1, 1)


# ---------------------------------------------------------------- update


def _loss(params, state: TrainState, batch, rng) -> tuple[jnp.ndarray, dict]:
    config, nets = state.config, networks(state.config)
    obs, data_actions = batch["observations"], batch["actions"]
    batch_size, action_dim = data_actions.shape
    # The same rng splits as the released code, so a given key draws the same noises.
    rng, actor_rng, critic_rng = jax.random.split(rng, 3)

    # Critic. Next actions from the current one-step policy, held fixed.
    _, sample_rng = jax.random.split(critic_rng)
    next_noises = jax.random.normal(jax.random.split(sample_rng)[0], (batch_size, action_dim))
    fixed = jax.lax.stop_gradient(params)
    next_actions = onestep_actions(
        config, fixed["actor_onestep_flow"], batch["next_observations"], next_noises
    )
    next_qs = nets["critic"].apply(
        {"params": state.target_params["critic"]}, batch["next_observations"], next_actions
    )
    target_q = batch["rewards"] + config["discount"] * batch["masks"] * aggregate(
        next_qs, config["q_agg"]
    )
    q = nets["critic"].apply({"params": params["critic"]}, obs, data_actions)
    critic_loss = jnp.square(q - target_q).mean()

    # Actor: BC flow matching.
    rng, x_rng, t_rng = jax.random.split(actor_rng, 3)
    x0 = jax.random.normal(x_rng, (batch_size, action_dim))
    t = jax.random.uniform(t_rng, (batch_size, 1))
    x_t = (1 - t) * x0 + t * data_actions
    pred = nets["actor_bc_flow"].apply({"params": params["actor_bc_flow"]}, obs, x_t, t)
    bc_flow_loss = flow_matching_loss(pred, x0, data_actions)

    # Actor: distil the (fixed) BC flow into the one-step policy, from the same noises.
    rng, noise_rng = jax.random.split(rng)
    noises = jax.random.normal(noise_rng, (batch_size, action_dim))
    target_flow_actions = flow_actions(config, fixed["actor_bc_flow"], obs, noises)
    actor_actions = nets["actor_onestep_flow"].apply(
        {"params": params["actor_onestep_flow"]}, obs, noises
    )
    distill_loss = distillation_loss(actor_actions, target_flow_actions)

    # Actor: maximise Q (critic fixed; gradient through the actions only).
    actor_actions = jnp.clip(actor_actions, -1, 1)
    q_actor = nets["critic"].apply({"params": fixed["critic"]}, obs, actor_actions).mean(axis=0)
    actor_q_loss = q_loss(q_actor, config["normalize_q_loss"])
    actor_loss = bc_flow_loss + config["alpha"] * distill_loss + actor_q_loss

    info = {
        "critic/critic_loss": critic_loss,
        "critic/q_mean": q.mean(),
        "critic/q_max": q.max(),
        "critic/q_min": q.min(),
        "actor/actor_loss": actor_loss,
        "actor/bc_flow_loss": bc_flow_loss,
        "actor/distill_loss": distill_loss,
        "actor/q_loss": actor_q_loss,
        "actor/q": q_actor.mean(),
        # Released: a second one-step forward on fresh noise; same distribution, no extra pass.
        "actor/mse": jnp.mean((actor_actions - data_actions) ** 2),
    }
    return critic_loss + actor_loss, info


@jax.jit
def update(state: TrainState, batch: dict, rng: jax.Array) -> tuple[TrainState, dict]:
    grads, info = jax.grad(_loss, has_aux=True)(state.params, state, batch, rng)
    return apply_update(state, grads), info


# ---------------------------------------------------------------- acting


def _act(state: TrainState, observations, rng):
    action_rng, _ = jax.random.split(rng)
    noises = jax.random.normal(action_rng, (*observations.shape[:-1], state.config["action_dim"]))
    return onestep_actions(state.config, state.params["actor_onestep_flow"], observations, noises)


act = interface_act(_act, "One-step policy actions; `m_inf` and `n` are accepted and ignored.")


q_value = interface_q_value(
    critic_read(lambda config: networks(config)["critic"]),
    "The critics aggregated with `q_agg` (as in the TD target), shape (B,).",
)
