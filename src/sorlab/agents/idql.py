"""IDQL: implicit diffusion Q-learning (Hansen-Estruch et al. 2023), as in the FQL paper's table.

Value learning is IQL's: V by expectile regression on the target critic's min, Q by TD onto V
(no policy in the value update). The policy is a DDPM behaviour-cloning diffusion model
(noise prediction, variance-preserving schedule). Acting samples `num_samples` candidates per
observation and picks one by the critic: `selection="argmax"` takes the highest Q (greedy, as in
FQL's IFQL), `selection="expectile"` resamples with IDQL's importance weights
|tau - 1(Q < V)| / |Q - V|.
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
from sorlab.agents._lib.envs import idql_expectile, idql_value_dims
from sorlab.agents._lib.interface import interface_act, interface_q_value
from sorlab.agents._lib.losses import aggregate, iql_critic_loss, iql_forward, iql_value_loss
from sorlab.agents._lib.state import (
    TD_BATCH_KEYS,
    TrainState,
    apply_update,
    check_batch,
    create_state,
)
from sorlab.networks import behavior_network


def default_config(env_name: str) -> dict:
    # N = 32 on all ten families: the FQL paper's Table 6. Networks and expectile: its
    # appendix E.2 (IDQL's residual MLP; value nets and expectile by domain).
    config = shared_config(
        env_name,
        actor_hidden_dims=(256, 1024, 256),  # one residual block: width 256, expansion 1024
        value_hidden_dims=idql_value_dims(env_name),
    )
    # residual blocks of the diffusion model (0: a plain MLP)
    return insert_after(config, "actor_hidden_dims", actor_blocks=3) | dict(
        q_agg="min",  # candidates are scored by the min of the critics (as IFQL)
        expectile=idql_expectile(env_name),  # IQL expectile
        num_samples=32,  # candidates per observation at acting time (IDQL's N)
        selection="argmax",  # "argmax" (greedy in Q) or "expectile" (IDQL importance resampling)
        diffusion_steps=10,  # DDPM steps T
        beta_min=0.1,  # variance-preserving schedule (IDQL's vp schedule)
        beta_max=10.0,
    )


# ----------------------------------------------------------------------------------------------
# DDPM pieces


def vp_beta_schedule(steps: int, beta_min: float, beta_max: float) -> jax.Array:
    """Discretised variance-preserving SDE schedule (as IDQL uses): betas of shape (T,)."""
    t = jnp.arange(1, steps + 1, dtype=jnp.float32)
    alpha = jnp.exp(-beta_min / steps - 0.5 * (beta_max - beta_min) * (2 * t - 1) / steps**2)
    return 1.0 - alpha


def ddpm_noised(actions, noise, k, alpha_bars):
    """x_k = sqrt(abar_k) a + sqrt(1 - abar_k) eps for integer steps k (shape (B, 1))."""
    abar = alpha_bars[k]
    return jnp.sqrt(abar) * actions + jnp.sqrt(1.0 - abar) * noise


def ddpm_sample(eps_fn, observations, rng, action_dim: int, betas: jax.Array) -> jax.Array:
    """Ancestral DDPM sampling (posterior variance beta_k), clipping to [-1, 1] after each step
    as IDQL does. The steps run as one `fori_loop` body."""
    steps = betas.shape[0]
    alphas = 1.0 - betas
    alpha_bars = jnp.cumprod(alphas)
    shape = (*observations.shape[:-1], action_dim)
    x_rng, z_rng = jax.random.split(rng)
    noises = jax.random.normal(z_rng, (steps, *shape))

    def body(i, x):
        k = steps - 1 - i
        t = jnp.full((*shape[:-1], 1), k / steps, dtype=x.dtype)
        eps = eps_fn(observations, x, t)
        x = (x - betas[k] / jnp.sqrt(1.0 - alpha_bars[k]) * eps) / jnp.sqrt(alphas[k])
        x = x + jnp.where(k > 0, jnp.sqrt(betas[k]), 0.0) * noises[k]
        return jnp.clip(x, -1.0, 1.0)

    return jax.lax.fori_loop(0, steps, body, jax.random.normal(x_rng, shape))


def select_candidates(candidates, q, v, rng, selection: str, expectile: float) -> jax.Array:
    """Pick one of N candidates per observation.

    candidates (B, N, A), q (B, N), v (B,). "argmax": highest Q. "expectile": sample with
    IDQL's weights |expectile - 1(Q < V)| / |Q - V| (the implicit policy of an expectile critic).
    """
    if selection == "argmax":
        idx = jnp.argmax(q, axis=-1)
    elif selection == "expectile":
        adv = q - v[:, None]
        weights = jnp.where(adv < 0, 1.0 - expectile, expectile) / (jnp.abs(adv) + 1e-6)
        idx = jax.random.categorical(rng, jnp.log(weights), axis=-1)
    else:
        raise ValueError(f"selection must be 'argmax' or 'expectile', got {selection!r}")
    return jnp.take_along_axis(candidates, idx[:, None, None], axis=1)[:, 0]


# ----------------------------------------------------------------------------------------------
# Agent interface


def _networks(config):
    actor = behavior_network(
        config["actor_hidden_dims"],
        config["actor_blocks"],
        config["action_dim"],
        config["actor_layer_norm"],
    )
    return actor, twin_critic(config), state_value(config)


def _betas(config) -> jax.Array:
    return vp_beta_schedule(config["diffusion_steps"], config["beta_min"], config["beta_max"])


def init(rng: jax.Array, example_batch: dict, config: dict) -> TrainState:
    check_batch(example_batch, TD_BATCH_KEYS, "idql")
    config = {**config, "action_dim": int(example_batch["actions"].shape[-1])}
    actor, critic, value = _networks(config)
    obs = jnp.asarray(example_batch["observations"][:1])
    act = jnp.asarray(example_batch["actions"][:1])
    actor_rng, critic_rng, value_rng = jax.random.split(rng, 3)
    params = {
        "actor": actor.init(actor_rng, obs, act, act[:, :1])["params"],
        "critic": critic.init(critic_rng, obs, act)["params"],
        "value": value.init(value_rng, obs)["params"],
    }
    return create_state(params, ("critic",), config)


def losses(state: TrainState, params, batch: dict, rng: jax.Array):
    """IQL value + critic losses and the DDPM behaviour-cloning loss (independent parts)."""
    config = state.config
    actor, critic, value = _networks(config)
    obs, actions = batch["observations"], batch["actions"]

    target_qs, v, next_v, qs = iql_forward(
        critic, value, params, state.target_params["critic"], batch
    )
    value_loss = iql_value_loss(target_qs, v, config["expectile"])
    critic_loss = iql_critic_loss(qs, batch["rewards"], batch["masks"], next_v, config["discount"])

    k_rng, z_rng = jax.random.split(rng)
    steps = config["diffusion_steps"]
    alpha_bars = jnp.cumprod(1.0 - _betas(config))
    k = jax.random.randint(k_rng, (*actions.shape[:-1], 1), 0, steps)
    noise = jax.random.normal(z_rng, actions.shape)
    x_k = ddpm_noised(actions, noise, k, alpha_bars)
    pred = actor.apply({"params": params["actor"]}, obs, x_k, k.astype(jnp.float32) / steps)
    actor_loss = jnp.square(pred - noise).mean()

    info = {
        **value_critic_summary(value_loss, v, critic_loss, qs),
        "actor/loss": actor_loss,
    }
    return value_loss + critic_loss + actor_loss, info


def update(state: TrainState, batch: dict, rng: jax.Array) -> tuple[TrainState, dict]:
    grads, info = jax.grad(losses, argnums=1, has_aux=True)(state, state.params, batch, rng)
    return apply_update(state, grads), info


def _act(state: TrainState, observations: jax.Array, rng: jax.Array) -> jax.Array:
    config = state.config
    actor, critic, value = _networks(config)
    n = config["num_samples"]
    sample_rng, select_rng = jax.random.split(rng)
    # Each observation is repeated along its own candidate axis: (B, N, obs_dim).
    obs_n = jnp.repeat(observations[:, None, :], n, axis=1)
    candidates = ddpm_sample(
        lambda o, x, t: actor.apply({"params": state.params["actor"]}, o, x, t),
        obs_n,
        sample_rng,
        config["action_dim"],
        _betas(config),
    )
    q = aggregate(
        critic.apply({"params": state.params["critic"]}, obs_n, candidates), config["q_agg"]
    )
    v = value.apply({"params": state.params["value"]}, observations)
    return select_candidates(candidates, q, v, select_rng, config["selection"], config["expectile"])


act = interface_act(
    _act,
    """Best of `num_samples` DDPM candidates per observation.

    `m_inf` and `n` are accepted and ignored: IDQL's candidate count is its own training-config
    key `num_samples` (so the evaluation grid's default n = 1 does not turn IDQL into BC).
    """,
)


q_value = interface_q_value(
    critic_read(lambda config: _networks(config)[1]),
    "Critic estimate (B,) with the aggregation that scores candidates (min).",
)
