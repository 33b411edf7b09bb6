"""SRPO: score-regularised policy optimisation (Chen et al. 2024), a diffusion baseline in FQL.

Three parts, trained jointly here (the paper trains them one after another, see
docs/baselines.md):
- a behaviour diffusion model eps(a_t, t | s) on the continuous variance-preserving SDE
  (linear beta from 0.1 to 20), trained by noise prediction;
- an IQL critic (expectile V, TD Q), shared code with IDQL;
- a deterministic actor a = tanh(MLP(s)). Its loss per state is
      w(t) * <stop_grad(eps(a_t, t | s) - z), a>  -  beta * <stop_grad(g), a>,
  with a_t = alpha_t a + sigma_t z, w(t) = sigma_t^2, t ~ U[0.02, 0.98], and g = grad_a Q(s, a)
  of the target critics' mean, normalised to unit RMS per state. The first term's gradient is
  the behaviour-model score regulariser (the gradient of the reverse KL to the behaviour policy,
  with the noise baseline); the second is the Q-gradient step.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from sorlab.agents._lib.config import insert_after, shared_config
from sorlab.agents._lib.critics import (
    critic_read,
    state_value,
    twin_critic,
    value_critic_summary,
)
from sorlab.agents._lib.envs import idql_expectile, idql_value_dims, per_env
from sorlab.agents._lib.interface import interface_q_value
from sorlab.agents._lib.losses import iql_critic_loss, iql_forward, iql_value_loss
from sorlab.agents._lib.state import (
    TD_BATCH_KEYS,
    TrainState,
    apply_update,
    check_batch,
    create_state,
)
from sorlab.networks import DiracActor, behavior_network

# Weight of the (unit-RMS) Q-gradient term per OGBench family: the FQL paper's Table 6 (SRPO
# column). Its antsoccer value is not published: by rule, antmaze-giant's (see fawac.ALPHA).
BETA = {
    "antmaze-large-navigate": 0.3,
    "antmaze-giant-navigate": 0.3,
    "humanoidmaze-medium-navigate": 0.3,
    "humanoidmaze-large-navigate": 0.3,
    "antsoccer-arena-navigate": 0.3,  # by rule (not published)
    "cube-single-play": 0.03,
    "cube-double-play": 0.1,
    "scene-play": 0.1,
    "puzzle-3x3-play": 0.1,
    "puzzle-4x4-play": 0.1,
}


def default_config(env_name: str) -> dict:
    # Behaviour model, critic, value and expectile: IDQL's (FQL paper, App. E.2).
    config = shared_config(
        env_name,
        actor_hidden_dims=(512, 512, 512, 512),  # Dirac actor (size chosen: not published)
        value_hidden_dims=idql_value_dims(env_name),
    )
    return insert_after(
        config, "actor_hidden_dims", behavior_hidden_dims=(256, 1024, 256), behavior_blocks=3
    ) | dict(
        q_agg="min",  # q_value reports the min of the critics (IQL's value target)
        expectile=idql_expectile(env_name),
        beta=per_env(env_name, BETA, 0.1, "SRPO beta"),  # weight of the Q-gradient term
        normalize_q_grad=True,  # unit-RMS Q gradient per state (SRPO's regq)
        sde_beta_min=0.1,  # VP-SDE linear schedule of the behaviour model
        sde_beta_max=20.0,
    )


# ----------------------------------------------------------------------------------------------
# Diffusion and regulariser pieces


def vp_marginal(t: jax.Array, beta_min: float, beta_max: float) -> tuple[jax.Array, jax.Array]:
    """alpha_t and sigma_t of the VP SDE with linear beta(t): x_t = alpha_t x_0 + sigma_t z."""
    log_alpha = -0.25 * t**2 * (beta_max - beta_min) - 0.5 * t * beta_min
    alpha = jnp.exp(log_alpha)
    return alpha, jnp.sqrt(1.0 - alpha**2)


def score_regulariser(eps_pred, noise, actions, sigma) -> jax.Array:
    """Per-state surrogate w(t) <stop_grad(eps - z), a> with w(t) = sigma_t^2.

    Its gradient in the actor's parameters is sigma_t^2 (eps - z)^T da/dtheta: the behaviour
    score term of SRPO's KL regulariser (the noise z is the variance-reducing baseline).
    """
    residual = jax.lax.stop_gradient(eps_pred - noise)
    return jnp.sum(residual * actions, axis=-1) * jnp.squeeze(sigma, -1) ** 2


def q_guidance(q_grad: jax.Array, actions: jax.Array, beta: float, normalize: bool) -> jax.Array:
    """Per-state surrogate -beta <stop_grad(g), a>, g = dQ/da (unit RMS when normalize)."""
    g = jax.lax.stop_gradient(q_grad)
    if normalize:
        g = g / (jnp.sqrt(jnp.mean(jnp.square(g), axis=-1, keepdims=True)) + 1e-8)
    return -beta * jnp.sum(g * actions, axis=-1)


# ----------------------------------------------------------------------------------------------
# Agent interface


def _networks(config):
    actor = DiracActor(
        hidden_dims=tuple(config["actor_hidden_dims"]),
        action_dim=config["action_dim"],
        layer_norm=config["actor_layer_norm"],
    )
    behavior = behavior_network(
        config["behavior_hidden_dims"],
        config["behavior_blocks"],
        config["action_dim"],
        config["actor_layer_norm"],
    )
    return actor, behavior, twin_critic(config), state_value(config)


def init(rng: jax.Array, example_batch: dict, config: dict) -> TrainState:
    check_batch(example_batch, TD_BATCH_KEYS, "srpo")
    config = {**config, "action_dim": int(example_batch["actions"].shape[-1])}
    actor, behavior, critic, value = _networks(config)
    obs = jnp.asarray(example_batch["observations"][:1])
    act = jnp.asarray(example_batch["actions"][:1])
    rngs = jax.random.split(rng, 4)
    params = {
        "actor": actor.init(rngs[0], obs)["params"],
        "behavior": behavior.init(rngs[1], obs, act, act[:, :1])["params"],
        "critic": critic.init(rngs[2], obs, act)["params"],
        "value": value.init(rngs[3], obs)["params"],
    }
    return create_state(params, ("critic",), config)


def losses(state: TrainState, params, batch: dict, rng: jax.Array):
    config = state.config
    actor, behavior, critic, value = _networks(config)
    obs, actions = batch["observations"], batch["actions"]
    b_min, b_max = config["sde_beta_min"], config["sde_beta_max"]
    shape1 = (*actions.shape[:-1], 1)

    # IQL value learning.
    target_qs, v, next_v, qs = iql_forward(
        critic, value, params, state.target_params["critic"], batch
    )
    value_loss = iql_value_loss(target_qs, v, config["expectile"])
    critic_loss = iql_critic_loss(qs, batch["rewards"], batch["masks"], next_v, config["discount"])

    # Behaviour diffusion model: noise prediction on the VP SDE, t ~ U[1e-3, 1].
    t_rng, z_rng, at_rng, az_rng = jax.random.split(rng, 4)
    t = jax.random.uniform(t_rng, shape1, minval=1e-3, maxval=1.0)
    z = jax.random.normal(z_rng, actions.shape)
    alpha_t, sigma_t = vp_marginal(t, b_min, b_max)
    eps = behavior.apply({"params": params["behavior"]}, obs, alpha_t * actions + sigma_t * z, t)
    behavior_loss = jnp.square(eps - z).mean()

    # Actor: score regulariser from the (frozen) behaviour model + normalised Q gradient.
    pi = actor.apply({"params": params["actor"]}, obs)
    t = jax.random.uniform(at_rng, shape1, minval=0.02, maxval=0.98)
    z = jax.random.normal(az_rng, pi.shape)
    alpha_t, sigma_t = vp_marginal(t, b_min, b_max)
    pi_t = alpha_t * pi + sigma_t * z
    eps_pi = behavior.apply({"params": jax.lax.stop_gradient(params["behavior"])}, obs, pi_t, t)
    reg = score_regulariser(eps_pi, z, pi, sigma_t)

    def q_of(a):
        return critic.apply({"params": state.target_params["critic"]}, obs, a).mean(axis=0)

    q_pi, q_vjp = jax.vjp(q_of, jax.lax.stop_gradient(pi))
    (q_grad,) = q_vjp(jnp.ones_like(q_pi))
    guide = q_guidance(q_grad, pi, config["beta"], config["normalize_q_grad"])
    actor_loss = jnp.mean(reg + guide)

    info = {
        **value_critic_summary(value_loss, v, critic_loss, qs),
        "actor/loss": actor_loss,
        "actor/score_reg": reg.mean(),
        "actor/q_pi": q_pi.mean(),
        "actor/behavior_loss": behavior_loss,
    }
    return value_loss + critic_loss + behavior_loss + actor_loss, info


def update(state: TrainState, batch: dict, rng: jax.Array) -> tuple[TrainState, dict]:
    grads, info = jax.grad(losses, argnums=1, has_aux=True)(state, state.params, batch, rng)
    return apply_update(state, grads), info


@jax.jit
def _act(state: TrainState, observations: jax.Array) -> jax.Array:
    actor = _networks(state.config)[0]
    return actor.apply({"params": state.params["actor"]}, observations)


def act(state: TrainState, observations, rng: jax.Array, **inference) -> jax.Array:
    """Deterministic actor output (rng unused); `m_inf` and `n` are accepted and ignored."""
    return _act(state, jnp.asarray(observations))


q_value = interface_q_value(
    critic_read(lambda config: _networks(config)[2]),
    "Critic estimate (B,) with the configured aggregation.",
)
