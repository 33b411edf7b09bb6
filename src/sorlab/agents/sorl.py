"""SORL: offline RL with a shortcut-model policy (Espinosa-Dice et al., NeurIPS 2025).

The policy is a shortcut model `s(obs, x, t, level)`: a flow velocity that also knows the step
size `d = 2**-level` it will be integrated with, so that one network samples with 1, 2, 4, ...
Euler steps. One batch trains it with three losses: flow matching at the finest level,
self-consistency (one step of size d = two half steps of the target network) and a Q loss
through k sampling steps (back-propagation through time). A two-critic ensemble learns Q by TD.

Defaults reproduce the released code (nico-espinosadice/SORL), which produced the paper's
numbers; each place where it differs from a "clean" reading of the paper is a named config
switch:

- `update_semantics: released` (default): ONE Adam state (with global-norm clipping) over actor
  and critic; a critic step, then an actor step, each a full Adam step on both networks (Adam
  momentum moves the network that got no gradient); the TD target's next actions are sampled
  with the differentiated actor, so the critic loss also trains the actor; the actor step's Q
  loss reads the critic from before the critic step; soft target updates use the parameters
  from before both steps. `clean`: one optimizer per network, next actions under stop_gradient,
  the actor's Q loss reads the updated critic, soft target updates from the updated parameters.
- `critic_k_input: True`: the critic takes the step count k (as a raw float) as one more input:
  the k drawn for the TD target's next actions (also fed with the dataset actions), the k of the
  sampled actions in the Q loss, and `m_inf` at test time.
- `cap_sampling_level: False`: the step level fed to the actor when sampling with k steps is
  log2(k) even beyond the levels seen in training (0 ... log2 M), as in the released code, which
  passes the raw log2(k) (e.g. 4 for 16 steps after training with M = 8). True caps it at
  log2(M): steps finer than 1/M then use the flow-matching (instantaneous velocity) level.
- `shared_k_across_seeds: False`: each update draws its two k (TD target, Q loss) from the
  update's own key, as the released code. True draws them from a stream of the update step
  alone, the same for every seed: seeds trained as one vmapped program (`sorlab train --seeds`)
  then take one `lax.switch` branch together and run side by side, and each seed equals a
  single-seed run with the same setting (all other draws stay the seed's own).

The maths lives in small module-level functions (interpolate, target_velocity, euler_sample,
consistency_levels, self_consistency_target, q_loss, select_best) that the tests check directly.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from functools import partial
from typing import Any

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax

from sorlab.agents._lib.envs import match_env
from sorlab.agents._lib.losses import Q_AGGS, aggregate, q_maximisation_loss
from sorlab.agents._lib.state import freeze_config, soft_update
from sorlab.networks import ShortcutVectorField, Value

# Per-environment hyperparameters of the paper (released README flags), keyed by the OGBench
# dataset/env name prefix. Any name with one of these prefixes gets its row, e.g.
# "cube-single-play-v0" or "cube-single-play-singletask-task2-v0".
ENV_DEFAULTS: dict[str, dict[str, Any]] = {
    "antmaze-large-navigate": {"discount": 0.99, "q_agg": "min", "q_loss_coef": 500.0},
    "antmaze-giant-navigate": {"discount": 0.995, "q_agg": "min", "q_loss_coef": 500.0},
    "humanoidmaze-medium-navigate": {"discount": 0.995, "q_agg": "mean", "q_loss_coef": 100.0},
    "humanoidmaze-large-navigate": {"discount": 0.995, "q_agg": "mean", "q_loss_coef": 500.0},
    "antsoccer-arena-navigate": {"discount": 0.995, "q_agg": "mean", "q_loss_coef": 500.0},
    "cube-single-play": {"discount": 0.99, "q_agg": "mean", "q_loss_coef": 10.0},
    "cube-double-play": {"discount": 0.99, "q_agg": "mean", "q_loss_coef": 50.0},
    "scene-play": {"discount": 0.99, "q_agg": "mean", "q_loss_coef": 100.0},
}
# Any other environment: the released code's own defaults (its get_config()).
GENERIC_ENV_DEFAULTS: dict[str, Any] = {"discount": 0.99, "q_agg": "mean", "q_loss_coef": 100.0}

UPDATE_SEMANTICS = ("released", "clean")


def env_defaults(env_name: str) -> dict[str, Any]:
    """The (discount, q_agg, q_loss_coef) row for `env_name` (longest matching prefix)."""
    key = match_env(env_name, ENV_DEFAULTS, "longest_prefix")
    if key is None:
        if env_name:
            warnings.warn(
                f"sorl: no per-environment defaults for {env_name!r}; using the generic ones "
                f"{GENERIC_ENV_DEFAULTS}",
                stacklevel=2,
            )
        return dict(GENERIC_ENV_DEFAULTS)
    return dict(ENV_DEFAULTS[key])


def default_config(env_name: str = "") -> dict:
    """Every SORL hyperparameter; discount, q_agg and q_loss_coef depend on `env_name`."""
    return {
        "batch_size": 256,
        "lr": 1e-4,
        "adam_b1": 0.9,
        "adam_b2": 0.999,
        "adam_eps": 1e-8,
        "grad_clip_norm": 1.0,  # global-norm clipping before Adam; 0 = off
        "tau": 0.005,  # soft target update rate (critic and actor)
        "actor_hidden_dims": (512, 512, 512, 512),
        "actor_layer_norm": False,
        "value_hidden_dims": (512, 512, 512, 512),
        "value_layer_norm": True,
        "num_critics": 2,
        "flow_coef": 10.0,  # weight of the flow-matching loss
        "alpha": 10.0,  # weight of the self-consistency loss
        "normalize_q_loss": True,  # divide the Q loss by stop_grad(mean |Q|)
        "t_epsilon": 1e-5,
        "denoise_timesteps": 8,  # M: the finest training level is log2(M)
        "max_k_backprop": 8,  # M_BTT: k ~ U{1, 2, 4, ..., M_BTT} for the Q loss and TD target
        "critic_k_input": True,
        "cap_sampling_level": False,
        "update_semantics": "released",
        # True: k drawn from a stream of the step alone, shared by the seeds of a vmapped group.
        "shared_k_across_seeds": False,
        **env_defaults(env_name),
    }


# ----------------------------------------------------------------------------- maths


def interpolate(x0: jnp.ndarray, x1: jnp.ndarray, t: jnp.ndarray, eps: float) -> jnp.ndarray:
    """Point at flow time t between noise x0 (t = 0) and data x1 (t = 1)."""
    return (1 - (1 - eps) * t) * x0 + t * x1


def target_velocity(x0: jnp.ndarray, x1: jnp.ndarray, eps: float) -> jnp.ndarray:
    """d/dt of `interpolate`: the flow-matching regression target."""
    return x1 - (1 - eps) * x0


def step_level(num_steps: int) -> int:
    """level = log2(num_steps) for a power of two (level 0 = one step of size 1)."""
    num_steps = int(num_steps)
    if num_steps < 1 or num_steps & (num_steps - 1):
        raise ValueError(f"number of steps must be a power of two >= 1, got {num_steps}")
    return num_steps.bit_length() - 1


def euler_sample(
    velocity: Callable[[jnp.ndarray, float], jnp.ndarray], x0: jnp.ndarray, num_steps: int
) -> jnp.ndarray:
    """`num_steps` Euler steps of size 1/num_steps from x0 at t = 0; `velocity(x, t)`.

    Unrolled in Python (num_steps is static): reverse-mode AD goes through every step and XLA
    sees the whole chain (a lax loop compiled no faster here and runs slower).
    """
    d = 1.0 / num_steps
    x = x0
    for i in range(num_steps):
        x = x + velocity(x, i * d) * d
    return x


def consistency_levels(batch_size: int, denoise_timesteps: int) -> np.ndarray:
    """Level of each self-consistency row: log2(M) equal parts with levels log2(M)-1 ... 0;
    the remainder of the batch gets level 0 (as the released code)."""
    num_levels = step_level(denoise_timesteps)
    if num_levels < 1:
        raise ValueError(f"denoise_timesteps must be >= 2, got {denoise_timesteps}")
    per_level = batch_size // num_levels
    levels = np.repeat(np.arange(num_levels - 1, -1, -1), per_level)
    return np.concatenate([levels, np.zeros(batch_size - len(levels), dtype=levels.dtype)])


def self_consistency_target(
    velocity: Callable[[jnp.ndarray, jnp.ndarray, jnp.ndarray], jnp.ndarray],
    x_t: jnp.ndarray,
    t: jnp.ndarray,
    level: jnp.ndarray,
) -> jnp.ndarray:
    """Average velocity of two half steps at level+1 (step d/2 each, d = 2**-level).

    `velocity(x, t, level)` is the target actor; t and level have shape (B, 1).
    """
    half = 0.5 * 2.0 ** (-level)
    v1 = velocity(x_t, t, level + 1)
    v2 = velocity(x_t + half * v1, t + half, level + 1)
    return (v1 + v2) / 2


def q_loss(q: jnp.ndarray, normalize: bool) -> jnp.ndarray:
    """-mean(Q), divided by stop_grad(mean |Q|) (no epsilon) when `normalize`."""
    return q_maximisation_loss(q, normalize)


def select_best(candidates: jnp.ndarray, scores: jnp.ndarray) -> jnp.ndarray:
    """candidates (N, B, A), scores (N, B) -> (B, A): per observation the highest-scored one."""
    best = jnp.argmax(scores, axis=0)
    return jnp.take_along_axis(candidates, best[None, :, None], axis=0)[0]


# ----------------------------------------------------------------------------- state


class SORLState(flax.struct.PyTreeNode):
    params: Any  # {"actor": ..., "critic": ...}
    target_params: Any  # same structure
    opt_state: Any  # released: one optax state over params; clean: {"actor": .., "critic": ..}
    step: jnp.ndarray
    action_dim: int = flax.struct.field(pytree_node=False)
    config: Any = flax.struct.field(pytree_node=False)  # a hashable FrozenDict


def check_config(config: dict) -> None:
    """Raise a ValueError naming the first missing, unknown or invalid key."""
    known = default_config()
    for key in known:
        if key not in config:
            raise ValueError(f"sorl config is missing key {key!r}")
    for key in config:
        if key not in known:
            raise ValueError(f"sorl config has unknown key {key!r}; known: {', '.join(known)}")
    if config["update_semantics"] not in UPDATE_SEMANTICS:
        raise ValueError(
            f"update_semantics must be one of {UPDATE_SEMANTICS}, got {config['update_semantics']!r}"
        )
    if config["q_agg"] not in Q_AGGS:
        raise ValueError(f"q_agg must be one of {Q_AGGS}, got {config['q_agg']!r}")
    if not isinstance(config["shared_k_across_seeds"], bool):
        raise ValueError(
            f"shared_k_across_seeds must be true or false, got {config['shared_k_across_seeds']!r}"
        )
    for key in ("denoise_timesteps", "max_k_backprop"):
        try:
            step_level(config[key])
        except (TypeError, ValueError):
            raise ValueError(f"{key} must be a power of two, got {config[key]!r}") from None
    if config["denoise_timesteps"] < 2:
        raise ValueError(f"denoise_timesteps must be >= 2, got {config['denoise_timesteps']}")
    if config["batch_size"] < step_level(config["denoise_timesteps"]):
        raise ValueError(f"batch_size {config['batch_size']} is smaller than log2(M)")


def _actor_def(config, action_dim: int) -> ShortcutVectorField:
    return ShortcutVectorField(
        hidden_dims=tuple(config["actor_hidden_dims"]),
        action_dim=action_dim,
        layer_norm=bool(config["actor_layer_norm"]),
    )


def _critic_def(config) -> Value:
    return Value(
        hidden_dims=tuple(config["value_hidden_dims"]),
        layer_norm=bool(config["value_layer_norm"]),
        num_ensembles=int(config["num_critics"]),
    )


def _optimizer(config) -> optax.GradientTransformation:
    adam = optax.adam(
        config["lr"], b1=config["adam_b1"], b2=config["adam_b2"], eps=config["adam_eps"]
    )
    if config["grad_clip_norm"] > 0:
        return optax.chain(optax.clip_by_global_norm(config["grad_clip_norm"]), adam)
    return adam


def _k_values(config) -> tuple[int, ...]:
    return tuple(2**i for i in range(step_level(config["max_k_backprop"]) + 1))


def init(rng: jax.Array, example_batch: dict, config: dict) -> SORLState:
    check_config(config)
    config = freeze_config(config)
    observations = jnp.asarray(example_batch["observations"])
    actions = jnp.asarray(example_batch["actions"])
    action_dim = int(actions.shape[-1])
    column = jnp.zeros((*actions.shape[:-1], 1))
    actor_rng, critic_rng = jax.random.split(rng)
    actor = _actor_def(config, action_dim).init(actor_rng, observations, actions, column, column)
    critic_inputs = (observations, actions) + ((column,) if config["critic_k_input"] else ())
    critic = _critic_def(config).init(critic_rng, *critic_inputs)
    params = {"actor": actor["params"], "critic": critic["params"]}
    tx = _optimizer(config)
    if config["update_semantics"] == "released":
        # Target networks are left out of the optimizer: in the released code they sit in the
        # same Adam state but always get exactly zero gradient, hence exactly zero updates.
        opt_state = tx.init(params)
    else:
        opt_state = {name: tx.init(p) for name, p in params.items()}
    return SORLState(
        params=params,
        target_params=jax.tree_util.tree_map(jnp.array, params),
        opt_state=opt_state,
        step=jnp.zeros((), jnp.int32),
        action_dim=action_dim,
        config=config,
    )


# ----------------------------------------------------------------------------- networks


def _velocity_fn(config, action_dim: int, actor_params, observations: jnp.ndarray) -> Callable:
    """velocity(x, t, level) of the actor at `observations`; t and level scalars or (B, 1)."""
    net = _actor_def(config, action_dim)

    def velocity(x, t, level):
        column = (*x.shape[:-1], 1)
        t = jnp.broadcast_to(jnp.asarray(t, x.dtype), column)
        level = jnp.broadcast_to(jnp.asarray(level, x.dtype), column)
        return net.apply({"params": actor_params}, observations, x, t, level)

    return velocity


def _sampling_level(config, num_steps: int) -> int:
    # The released code feeds the raw log2(k) for any k, also beyond training's M (levels above
    # log2(M) never appear in the flow or consistency losses; the network extrapolates in its
    # raw scalar input). cap_sampling_level=True uses level log2(M) for those finer steps.
    level = step_level(num_steps)
    if config["cap_sampling_level"]:
        level = min(level, step_level(config["denoise_timesteps"]))
    return level


def sample_actions(
    config, action_dim: int, actor_params, observations: jnp.ndarray, noise: jnp.ndarray, k: int
) -> jnp.ndarray:
    """Actions from noise by k Euler steps of the actor at level log2(k), clipped to [-1, 1]."""
    velocity = _velocity_fn(config, action_dim, actor_params, observations)
    level = _sampling_level(config, k)
    x = euler_sample(lambda x, t: velocity(x, t, level), noise, k)
    return jnp.clip(x, -1.0, 1.0)


def critic_values(config, critic_params, observations, actions, k) -> jnp.ndarray:
    """Q of every ensemble member, shape (E, B); `k` is the step-count input (if any)."""
    extra = ()
    if config["critic_k_input"]:
        extra = (jnp.full((*actions.shape[:-1], 1), k, dtype=actions.dtype),)
    return _critic_def(config).apply({"params": critic_params}, observations, actions, *extra)


# ----------------------------------------------------------------------------- losses


def critic_loss(
    config, action_dim: int, actor_params, critic_params, target_critic_params, batch, noise, k: int
):
    """TD loss of the critic ensemble, the next actions sampled with k steps from `noise`.

    The step-count input (critic_k_input) is k for both the target and the trained critic.
    Clean semantics stop the gradient at the next actions; released ones let it reach the actor.
    """
    next_obs = batch["next_observations"]
    next_actions = sample_actions(config, action_dim, actor_params, next_obs, noise, k)
    if config["update_semantics"] == "clean":
        next_actions = jax.lax.stop_gradient(next_actions)
    next_qs = critic_values(config, target_critic_params, next_obs, next_actions, k)
    next_q = aggregate(next_qs, config["q_agg"])
    target_q = batch["rewards"] + config["discount"] * batch["masks"] * next_q
    q = critic_values(config, critic_params, batch["observations"], batch["actions"], k)
    td = q - target_q
    loss = jnp.mean(td**2)
    return loss, {
        "critic/loss": loss,
        "critic/q_mean": q.mean(),
        "critic/q_max": q.max(),
        "critic/q_min": q.min(),
        "critic/td_error_mean": td.mean(),
        "critic/td_error_std": td.std(),
        "critic/explained_variance": 1.0 - loss / jnp.maximum(jnp.var(target_q), 1e-8),
    }


def actor_draws(config, batch: dict, rng: jax.Array) -> dict:
    """The random inputs of the actor loss (they do not depend on the drawn k)."""
    x1 = batch["actions"]
    batch_size = x1.shape[0]
    m = config["denoise_timesteps"]
    fm_t, fm_x0, sc_t, sc_x0, q_noise = jax.random.split(rng, 5)
    # Flow matching: t on the finest grid {0, 1/M, ..., (M-1)/M}.
    t_fm = jax.random.randint(fm_t, (batch_size, 1), 0, m).astype(jnp.float32) / m
    # Self-consistency: t on the grid of each row's level.
    level_sc = jnp.asarray(consistency_levels(batch_size, m), jnp.float32)[:, None]
    sections = 2.0**level_sc
    t_sc = jax.random.randint(sc_t, (batch_size, 1), 0, sections.astype(jnp.int32))
    return {
        "t_fm": t_fm,
        "x0_fm": jax.random.normal(fm_x0, x1.shape),
        "t_sc": t_sc.astype(jnp.float32) / sections,
        "level_sc": level_sc,
        "x0_sc": jax.random.normal(sc_x0, x1.shape),
        "q_noise": jax.random.normal(q_noise, x1.shape),
    }


def actor_loss(
    config, action_dim: int, actor_params, critic_params, target_actor_params, batch, draws, k: int
):
    """flow_coef * flow matching + alpha * self-consistency + q_loss_coef * Q loss.

    Differentiate w.r.t. `actor_params` only: the consistency target (target actor) and the
    critic are held fixed; the Q loss's gradient reaches the actor through all k Euler steps.
    """
    observations, x1 = batch["observations"], batch["actions"]
    batch_size = x1.shape[0]
    eps = config["t_epsilon"]
    xt_fm = interpolate(draws["x0_fm"], x1, draws["t_fm"], eps)
    v_fm = target_velocity(draws["x0_fm"], x1, eps)
    level_fm = jnp.full((batch_size, 1), step_level(config["denoise_timesteps"]), jnp.float32)

    t_sc, level_sc = draws["t_sc"], draws["level_sc"]
    xt_sc = interpolate(draws["x0_sc"], x1, t_sc, eps)
    target_actor = _velocity_fn(config, action_dim, target_actor_params, observations)
    v_sc = jax.lax.stop_gradient(self_consistency_target(target_actor, xt_sc, t_sc, level_sc))

    # Both regressions in one network call of 2B rows (same numbers, larger matmuls).
    pred = _actor_def(config, action_dim).apply(
        {"params": actor_params},
        jnp.concatenate([observations, observations]),
        jnp.concatenate([xt_fm, xt_sc]),
        jnp.concatenate([draws["t_fm"], t_sc]),
        jnp.concatenate([level_fm, level_sc]),
    )
    flow_loss = jnp.mean((pred[:batch_size] - v_fm) ** 2)
    sc_loss = jnp.mean((pred[batch_size:] - v_sc) ** 2)

    actions = sample_actions(config, action_dim, actor_params, observations, draws["q_noise"], k)
    critic = jax.lax.stop_gradient(critic_params)
    q = critic_values(config, critic, observations, actions, k).mean(axis=0)
    qloss = q_loss(q, config["normalize_q_loss"])
    loss = (
        config["flow_coef"] * flow_loss + config["alpha"] * sc_loss + config["q_loss_coef"] * qloss
    )
    return loss, {
        "actor/loss": loss,
        "actor/flow_loss": flow_loss,
        "actor/consistency_loss": sc_loss,
        "actor/q_loss": qloss,
        "actor/q": q.mean(),
        "actor/mse": jnp.mean((actions - x1) ** 2),
    }


def _switch_k(config, k_index: jnp.ndarray, grad_fn: Callable[[int], Callable], operand):
    """Run `grad_fn(k)(operand)` for k = (1, 2, 4, ..., M_BTT)[k_index] only.

    Each branch is a whole forward + backward pass with k static (its k Euler steps unrolled),
    and lax.switch executes only the drawn branch, so no work is spent on the other k.
    """
    k_values = _k_values(config)
    grads, info = jax.lax.switch(k_index, [grad_fn(k) for k in k_values], operand)
    return grads, info, jnp.asarray(k_values)[k_index]


def update_draws(config, batch: dict, rng: jax.Array) -> dict:
    """Every random input of one update: the critic's k (as an index into 1, 2, 4, ..., M_BTT)
    and TD-target noise, the actor's k and its `actor_draws`. `update` is
    `update_from_draws(state, batch, update_draws(config, batch, rng))`."""
    num_k = len(_k_values(config))
    critic_rng, actor_rng = jax.random.split(rng)
    critic_k_rng, noise_rng = jax.random.split(critic_rng)
    actor_k_rng, draw_rng = jax.random.split(actor_rng)
    return {
        "critic_k_index": jax.random.randint(critic_k_rng, (), 0, num_k),
        "critic_noise": jax.random.normal(noise_rng, batch["actions"].shape),
        "actor_k_index": jax.random.randint(actor_k_rng, (), 0, num_k),
        "actor": actor_draws(config, batch, draw_rng),
    }


def _critic_grads(state: SORLState, batch: dict, draws: dict):
    """Critic-loss gradients: released w.r.t. {actor, critic}; clean w.r.t. {critic} only."""
    config, action_dim = state.config, state.action_dim
    noise = draws["critic_noise"]
    target_critic = state.target_params["critic"]
    released = config["update_semantics"] == "released"

    def grad_fn(k):
        def loss_fn(diff):
            actor = diff["actor"] if released else state.params["actor"]
            return critic_loss(
                config, action_dim, actor, diff["critic"], target_critic, batch, noise, k
            )

        def run(params):
            diff = params if released else {"critic": params["critic"]}
            return jax.grad(loss_fn, has_aux=True)(diff)

        return run

    grads, info, k = _switch_k(config, draws["critic_k_index"], grad_fn, state.params)
    info["critic/k"] = k
    return grads, info


def _actor_grads(state: SORLState, actor_params, critic_params, batch: dict, draws: dict):
    """Actor-loss gradients w.r.t. `actor_params`, the Q loss reading `critic_params`."""
    config, action_dim = state.config, state.action_dim
    target_actor = state.target_params["actor"]

    def grad_fn(k):
        def loss_fn(actor):
            return actor_loss(
                config, action_dim, actor, critic_params, target_actor, batch, draws["actor"], k
            )

        return jax.grad(loss_fn, has_aux=True)

    grads, info, k = _switch_k(config, draws["actor_k_index"], grad_fn, actor_params)
    info["actor/k"] = k
    return grads, info


def update(state: SORLState, batch: dict, rng: jax.Array) -> tuple[SORLState, dict]:
    """One critic step then one actor step on the same batch (pure; jit it).

    Under `jax.vmap` (e.g. several seeds as one program) the seeds run one after another
    (`lax.map`), since a vmapped `lax.switch` would run every k branch for every seed; with
    `shared_k_across_seeds` they share the k draw instead and run side by side (one branch).
    """
    batch = {k: jnp.asarray(v) for k, v in batch.items()}
    return _update_per_seed(state, batch, rng)


# The key of the shared k stream: fixed, so every run with shared_k_across_seeds draws the same
# k schedule (a function of the step alone), alone or in a group.
SHARED_K_SEED = 0


def shared_k_indices(config, step: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
    """(critic, actor) indices into the k values for the update at `step` (state.step before
    the update), drawn from a stream of the step alone: the same for every seed."""
    critic_key, actor_key = jax.random.split(
        jax.random.fold_in(jax.random.PRNGKey(SHARED_K_SEED), step)
    )
    n = len(_k_values(config))
    return jax.random.randint(critic_key, (), 0, n), jax.random.randint(actor_key, (), 0, n)


@jax.custom_batching.custom_vmap
def _update_per_seed(state: SORLState, batch: dict, rng: jax.Array):
    return _update(state, batch, rng, state.step)


@_update_per_seed.def_vmap
def _update_vmap(axis_size: int, in_batched, state, batch, rng):
    in_batched = tuple(in_batched)
    if state.config["shared_k_across_seeds"]:
        # The seeds of a group are at the same step (the trainer steps them together), so the
        # first seed's step gives every seed's k: an unbatched switch index, hence one branch
        # with its work batched over the seeds.
        step = state.step[0] if in_batched[0].step else state.step
        axes = jax.tree_util.tree_map(lambda b: 0 if b else None, in_batched)
        out = jax.vmap(_update, in_axes=(*axes, None))(state, batch, rng, step)
        return out, jax.tree_util.tree_map(lambda _: True, out)

    def batched(x, is_batched):
        return x if is_batched else jnp.broadcast_to(x, (axis_size, *jnp.shape(x)))

    args = jax.tree_util.tree_map(batched, (state, batch, rng), in_batched)
    out = jax.lax.map(lambda a: _update(*a, a[0].step), args)
    return out, jax.tree_util.tree_map(lambda _: True, out)


def _update(
    state: SORLState, batch: dict, rng: jax.Array, k_step: jnp.ndarray
) -> tuple[SORLState, dict]:
    """The update; `k_step` is the step whose shared k stream is used (shared_k_across_seeds)."""
    draws = update_draws(state.config, batch, rng)
    if state.config["shared_k_across_seeds"]:
        draws["critic_k_index"], draws["actor_k_index"] = shared_k_indices(state.config, k_step)
    return update_from_draws(state, batch, draws)


def update_from_draws(state: SORLState, batch: dict, draws: dict) -> tuple[SORLState, dict]:
    """`update` with its random inputs given (see `update_draws`), e.g. to replay another
    code's draws."""
    config = state.config
    tx = _optimizer(config)
    critic_grads, info = _critic_grads(state, batch, draws)
    if config["update_semantics"] == "released":
        grads = critic_grads  # actor part: the TD target's gradient through next actions
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        info["critic/grad_norm"] = optax.global_norm(grads)
        info["critic/actor_grad_norm"] = optax.global_norm(grads["actor"])

        # The actor step differentiates the actor the critic step produced, while its Q loss
        # reads the critic from BEFORE the critic step (the released code reads it through the
        # agent as it was when the update began).
        actor_grads, actor_info = _actor_grads(
            state, params["actor"], state.params["critic"], batch, draws
        )
        zero_critic = jax.tree_util.tree_map(jnp.zeros_like, params["critic"])
        grads = {"actor": actor_grads, "critic": zero_critic}
        updates, opt_state = tx.update(grads, opt_state, params)
        new_params = optax.apply_updates(params, updates)
        # Targets move toward the parameters from before this update (released code).
        target_params = soft_update(state.params, state.target_params, config["tau"])
    else:
        updates, critic_opt = tx.update(
            critic_grads["critic"], state.opt_state["critic"], state.params["critic"]
        )
        params = {
            "actor": state.params["actor"],
            "critic": optax.apply_updates(state.params["critic"], updates),
        }
        info["critic/grad_norm"] = optax.global_norm(critic_grads["critic"])
        info["critic/actor_grad_norm"] = jnp.zeros(())  # next actions under stop_gradient

        actor_grads, actor_info = _actor_grads(
            state, params["actor"], params["critic"], batch, draws
        )
        updates, actor_opt = tx.update(actor_grads, state.opt_state["actor"], params["actor"])
        new_params = {**params, "actor": optax.apply_updates(params["actor"], updates)}
        opt_state = {"actor": actor_opt, "critic": critic_opt}
        target_params = soft_update(new_params, state.target_params, config["tau"])

    info.update(actor_info)
    info["actor/grad_norm"] = optax.global_norm(actor_grads)
    new_state = state.replace(
        params=new_params, target_params=target_params, opt_state=opt_state, step=state.step + 1
    )
    return new_state, info


# ----------------------------------------------------------------------------- inference


def best_of_n(
    state: SORLState, observations: jnp.ndarray, noise: jnp.ndarray, m_inf: int
) -> jnp.ndarray:
    """observations (B, D), noise (N, B, A) -> (B, A): candidate j of observation i starts from
    noise[j, i]; each is sampled with m_inf steps and scored by the critic (training q_agg,
    step input m_inf); the argmax per observation is returned.

    Candidates are flattened candidate-major and the observations tiled in the same order, so
    that every candidate is scored with its own observation. (The released code repeats the
    observations row by row instead, which pairs them wrongly for more than one observation.)
    """
    n, b, a = noise.shape
    obs = jnp.tile(observations, (n, 1))
    actions = sample_actions(
        state.config, state.action_dim, state.params["actor"], obs, noise.reshape(n * b, a), m_inf
    )
    if n == 1:
        return actions
    qs = critic_values(state.config, state.params["critic"], obs, actions, m_inf)
    scores = aggregate(qs, state.config["q_agg"]).reshape(n, b)
    return select_best(actions.reshape(n, b, a), scores)


def default_eval_m_inf(config: dict) -> int:
    """Inference steps of the trainer's periodic evaluations: the training discretisation M
    (the released code evaluates every k up to M; M is the point Table 1 reports)."""
    return int(config["denoise_timesteps"])


@partial(jax.jit, static_argnames=("m_inf", "n"))
def act(
    state: SORLState, observations: jnp.ndarray, rng: jax.Array, m_inf: int = 8, n: int = 1
) -> jnp.ndarray:
    """Actions for a batch (B, D) -> (B, A) (or one observation (D,) -> (A,)): m_inf Euler steps
    (a power of two, also beyond training's M), best of n candidates by the critic."""
    step_level(m_inf)
    if n < 1:
        raise ValueError(f"n (best-of-N candidates) must be >= 1, got {n}")
    single = observations.ndim == 1
    observations = jnp.atleast_2d(observations)
    noise = jax.random.normal(rng, (n, observations.shape[0], state.action_dim))
    actions = best_of_n(state, observations, noise, m_inf)
    return actions[0] if single else actions


def q_value(
    state: SORLState, observations: jnp.ndarray, actions: jnp.ndarray, m_inf: int = 8, n: int = 1
) -> jnp.ndarray:
    """Q(s, a) with the training aggregation over the ensemble and step input m_inf; (B,).
    `n` (best-of-N) is accepted and ignored, so callers can pass the whole inference grid."""
    del n
    return _q_value(state, observations, actions, int(m_inf))


@partial(jax.jit, static_argnames=("m_inf",))
def _q_value(state: SORLState, observations, actions, m_inf: int) -> jnp.ndarray:
    qs = critic_values(state.config, state.params["critic"], observations, actions, m_inf)
    return aggregate(qs, state.config["q_agg"])


__all__ = [
    "act",
    "aggregate",
    "best_of_n",
    "consistency_levels",
    "default_config",
    "euler_sample",
    "init",
    "interpolate",
    "q_loss",
    "q_value",
    "sample_actions",
    "select_best",
    "self_consistency_target",
    "step_level",
    "target_velocity",
    "update",
    "update_draws",
    "update_from_draws",
]
