"""CAC: consistency actor-critic (Ding & Jin 2024, "Consistency Models as a Rich and Efficient
Policy Class for RL"), a diffusion-family baseline in the FQL paper (its appendix E.2:
gradient clipping 5, no Q normalisation, max-Q backup).

The policy is a consistency model f(x, sigma | s) = c_skip(sigma) x + c_out(sigma) F(c_in x,
c_noise(sigma), s) (EDM/consistency-model parametrisation, sigma in [0.002, 80], Karras grid
with rho = 7). Its loss is consistency training on dataset actions plus eta times a Q loss on
actions sampled with `sample_steps` consistency steps (gradients through the steps):
    L = L_CT + eta * (-Q(s, a_pi))   (divided by stop_grad(mean |Q|) if normalize_q_loss).
The critic is a TD critic (two-member LayerNorm ensemble) whose target takes the best of
`backup_samples` next actions from the policy (max-Q backup).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from sorlab.agents._lib.config import shared_config
from sorlab.agents._lib.envs import FQL_Q_AGG, per_env
from sorlab.agents._lib.flow import critic_q_value, flow_networks, init_actor_critic
from sorlab.agents._lib.interface import interface_act, interface_q_value
from sorlab.agents._lib.losses import aggregate, q_maximisation_loss, td_loss, td_target
from sorlab.agents._lib.state import TrainState, actor_critic_update

# Weight of the Q loss per OGBench family: the FQL paper's Table 6 (CAC column). Its antsoccer
# value is not published: by rule, antmaze-giant's (see fawac.ALPHA and docs/baselines.md).
ETA = {
    "antmaze-large-navigate": 1.0,
    "antmaze-giant-navigate": 1.0,
    "humanoidmaze-medium-navigate": 0.03,
    "humanoidmaze-large-navigate": 1.0,
    "antsoccer-arena-navigate": 1.0,  # by rule (not published)
    "cube-single-play": 0.003,
    "cube-double-play": 0.3,
    "scene-play": 0.3,
    "puzzle-3x3-play": 0.01,
    "puzzle-4x4-play": 0.01,
}
SIGMA_DATA = 0.5


def default_config(env_name: str) -> dict:
    return shared_config(env_name) | dict(
        q_agg=per_env(env_name, FQL_Q_AGG, "mean", "CAC q_agg"),
        eta=per_env(env_name, ETA, 1.0, "CAC eta"),  # weight of the Q loss
        # FQL paper, App. E.2: gradient clipping 5, no Q normalisation, max-Q backup.
        grad_clip=5.0,  # global-norm clipping of the one Adam step
        normalize_q_loss=False,  # True: divide the Q loss by stop_grad(mean |Q|)
        backup_samples=10,  # max-Q backup over this many next actions (1: plain TD; 10 chosen)
        sigma_min=0.002,
        sigma_max=80.0,
        rho=7.0,
        num_scales=40,  # Karras grid size N for consistency training
        sample_steps=2,  # consistency sampling steps (acting, TD targets, Q loss)
    )


# ----------------------------------------------------------------------------------------------
# Consistency-model pieces


def karras_sigmas(n: int, sigma_min: float, sigma_max: float, rho: float) -> jax.Array:
    """Increasing noise levels sigma_0 = sigma_min < ... < sigma_{n-1} = sigma_max."""
    ramp = jnp.linspace(0.0, 1.0, n)
    lo, hi = sigma_min ** (1.0 / rho), sigma_max ** (1.0 / rho)
    return (lo + ramp * (hi - lo)) ** rho


def consistency_scalings(sigma, sigma_min: float):
    """c_skip, c_out, c_in of the consistency-model parametrisation (f = x at sigma_min)."""
    c_skip = SIGMA_DATA**2 / ((sigma - sigma_min) ** 2 + SIGMA_DATA**2)
    c_out = SIGMA_DATA * (sigma - sigma_min) / jnp.sqrt(sigma**2 + SIGMA_DATA**2)
    c_in = 1.0 / jnp.sqrt(sigma**2 + SIGMA_DATA**2)
    return c_skip, c_out, c_in


def consistency_fn(net_fn, observations, x, sigma, sigma_min: float):
    """f(x, sigma | s) with the boundary condition f(x, sigma_min) = x; sigma shape (..., 1)."""
    c_skip, c_out, c_in = consistency_scalings(sigma, sigma_min)
    return c_skip * x + c_out * net_fn(observations, c_in * x, 0.25 * jnp.log(sigma))


def consistency_training_loss(net_fn, observations, actions, n_idx, noise, sigmas, sigma_min):
    """Consistency training (no teacher): match f(a + sigma_{n+1} z, sigma_{n+1}) to the
    stop-gradient f(a + sigma_n z, sigma_n) for a shared z (improved CT: target = current
    parameters without gradient, uniform weighting, squared L2 per action dimension)."""
    s_hi, s_lo = sigmas[n_idx + 1], sigmas[n_idx]
    pred = consistency_fn(net_fn, observations, actions + s_hi * noise, s_hi, sigma_min)
    target = consistency_fn(net_fn, observations, actions + s_lo * noise, s_lo, sigma_min)
    return jnp.mean(jnp.square(pred - jax.lax.stop_gradient(target)))


def sample_sigmas(steps: int, sigma_min: float, sigma_max: float, rho: float) -> jax.Array:
    """Decreasing noise levels for multistep consistency sampling, starting at sigma_max."""
    return karras_sigmas(steps + 1, sigma_min, sigma_max, rho)[1:][::-1]


def consistency_sample(net_fn, observations, rng, action_dim: int, sigmas, sigma_min: float):
    """Multistep consistency sampling: denoise from sigma_max in one jump, then re-noise to
    each next sigma and jump again. Differentiable through all steps; clipped to [-1, 1]."""
    shape = (*observations.shape[:-1], action_dim)
    rng, z_rng = jax.random.split(rng)
    x = sigmas[0] * jax.random.normal(z_rng, shape)
    a = consistency_fn(net_fn, observations, x, jnp.full((*shape[:-1], 1), sigmas[0]), sigma_min)
    for i in range(1, sigmas.shape[0]):
        rng, z_rng = jax.random.split(rng)
        scale = jnp.sqrt(sigmas[i] ** 2 - sigma_min**2)
        x = jnp.clip(a, -1.0, 1.0) + scale * jax.random.normal(z_rng, shape)
        a = consistency_fn(
            net_fn, observations, x, jnp.full((*shape[:-1], 1), sigmas[i]), sigma_min
        )
    return jnp.clip(a, -1.0, 1.0)


# ----------------------------------------------------------------------------------------------
# Agent interface


def sample_policy(config, actor_params, observations: jax.Array, rng: jax.Array) -> jax.Array:
    actor, _ = flow_networks(config)
    sigmas = sample_sigmas(
        config["sample_steps"], config["sigma_min"], config["sigma_max"], config["rho"]
    )
    return consistency_sample(
        lambda o, x, c: actor.apply({"params": actor_params}, o, x, c),
        observations,
        rng,
        config["action_dim"],
        sigmas,
        config["sigma_min"],
    )


def init(rng: jax.Array, example_batch: dict, config: dict) -> TrainState:
    return init_actor_critic(rng, example_batch, config, "cac")


def critic_loss(state: TrainState, params, batch: dict, rng: jax.Array):
    config = state.config
    _, critic = flow_networks(config)
    actor_params = jax.lax.stop_gradient(params["actor"])
    # Max-Q backup: K next actions per next state, each scored with the critics aggregated as
    # in training, the best one taken (K = 1: the plain TD target).
    k = config["backup_samples"]
    next_obs = jnp.repeat(batch["next_observations"][None], k, axis=0)  # (K, B, obs)
    next_actions = sample_policy(config, actor_params, next_obs, rng)
    next_qs = critic.apply({"params": state.target_params["critic"]}, next_obs, next_actions)
    next_q = aggregate(next_qs, config["q_agg"]).max(axis=0)  # (E, K, B) -> (K, B) -> (B,)
    target = td_target(batch, config["discount"], next_q)
    qs = critic.apply({"params": params["critic"]}, batch["observations"], batch["actions"])
    return td_loss(qs, target)


def actor_loss(state: TrainState, params, batch: dict, rng: jax.Array):
    config = state.config
    actor, critic = flow_networks(config)
    n_rng, z_rng, pi_rng = jax.random.split(rng, 3)
    obs, actions = batch["observations"], batch["actions"]
    sigmas = karras_sigmas(
        config["num_scales"], config["sigma_min"], config["sigma_max"], config["rho"]
    )
    n_idx = jax.random.randint(n_rng, (*actions.shape[:-1], 1), 0, config["num_scales"] - 1)
    noise = jax.random.normal(z_rng, actions.shape)
    ct_loss = consistency_training_loss(
        lambda o, x, c: actor.apply({"params": params["actor"]}, o, x, c),
        obs,
        actions,
        n_idx,
        noise,
        sigmas,
        config["sigma_min"],
    )
    pi_actions = sample_policy(config, params["actor"], obs, pi_rng)
    q = critic.apply({"params": jax.lax.stop_gradient(params["critic"])}, obs, pi_actions).mean(
        axis=0
    )
    q_loss = q_maximisation_loss(q, config["normalize_q_loss"], eps=1e-6)
    loss = ct_loss + config["eta"] * q_loss
    return loss, {
        "actor/loss": loss,
        "actor/ct_loss": ct_loss,
        "actor/q_loss": q_loss,
        "actor/q": q.mean(),
    }


update = actor_critic_update(critic_loss, actor_loss)


def _act(state: TrainState, observations: jax.Array, rng: jax.Array) -> jax.Array:
    return sample_policy(state.config, state.params["actor"], observations, rng)


act = interface_act(
    _act, "Sample with `sample_steps` consistency steps; `m_inf` and `n` are accepted and ignored."
)


q_value = interface_q_value(critic_q_value, "Critic estimate (B,) with the training aggregation.")
