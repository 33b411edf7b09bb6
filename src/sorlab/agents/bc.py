"""Gaussian behaviour cloning (the BC baseline of the FQL and SORL papers).

The policy is a diagonal Gaussian: an MLP (4 x 512, GELU) gives the mean, a learned
state-independent log-std vector gives the spread (clipped to [log_std_min, log_std_max]),
as in the released FQL/OGBench Gaussian actor (no tanh squashing, small-scale last layer).
The loss is the negative log-likelihood of the dataset actions; `act` returns the mode (the
mean) clipped to [-1, 1].
"""

from __future__ import annotations

import math
from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax

from sorlab.agents._lib.gaussian import gaussian_log_prob
from sorlab.agents._lib.state import freeze_config
from sorlab.networks import GaussianActor


def default_config(env_name: str = "") -> dict:
    """BC has no per-environment hyperparameters."""
    return {
        "batch_size": 256,
        "lr": 3e-4,
        "actor_hidden_dims": (512, 512, 512, 512),
        "actor_layer_norm": False,
        "const_std": False,  # True: fixed std 1 (log-std 0), as IQL/ReBRAC's actors
        "log_std_min": -5.0,
        "log_std_max": 2.0,
        "final_init_scale": 1e-2,  # scale of the mean layer's initialisation
    }


class BCState(flax.struct.PyTreeNode):
    params: Any
    opt_state: Any
    action_dim: int = flax.struct.field(pytree_node=False)
    config: Any = flax.struct.field(pytree_node=False)  # a hashable FrozenDict


def _actor(config, action_dim: int) -> GaussianActor:
    return GaussianActor(
        hidden_dims=tuple(config["actor_hidden_dims"]),
        action_dim=action_dim,
        layer_norm=bool(config["actor_layer_norm"]),
        const_std=bool(config["const_std"]),
        log_std_min=float(config["log_std_min"]),
        log_std_max=float(config["log_std_max"]),
        final_fc_init_scale=float(config["final_init_scale"]),
    )


def _optimizer(config) -> optax.GradientTransformation:
    return optax.adam(config["lr"])


def init(rng: jax.Array, example_batch: dict, config: dict) -> BCState:
    config = freeze_config(config)
    action_dim = int(example_batch["actions"].shape[-1])
    params = _actor(config, action_dim).init(rng, example_batch["observations"])["params"]
    opt_state = _optimizer(config).init(params)
    return BCState(params=params, opt_state=opt_state, action_dim=action_dim, config=config)


def distribution(state: BCState, observations: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
    """(mean, log_std) of the policy at `observations`."""
    return _actor(state.config, state.action_dim).apply({"params": state.params}, observations)


def update(state: BCState, batch: dict, rng: jax.Array) -> tuple[BCState, dict]:
    del rng  # the BC loss is deterministic given the batch

    def loss_fn(params):
        mean, log_std = _actor(state.config, state.action_dim).apply(
            {"params": params}, batch["observations"]
        )
        log_prob = gaussian_log_prob(batch["actions"], mean, log_std, log_2pi=math.log(2 * math.pi))
        loss = -log_prob.mean()
        info = {
            "actor/loss": loss,
            "actor/log_prob": log_prob.mean(),
            "actor/mse": jnp.mean((mean - batch["actions"]) ** 2),
            "actor/std": jnp.mean(jnp.exp(log_std)),
        }
        return loss, info

    grads, info = jax.grad(loss_fn, has_aux=True)(state.params)
    updates, opt_state = _optimizer(state.config).update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    info["actor/grad_norm"] = optax.global_norm(grads)
    return state.replace(params=params, opt_state=opt_state), info


def act(state: BCState, observations: jnp.ndarray, rng: jax.Array, **inference) -> jnp.ndarray:
    """The policy's mode, clipped to [-1, 1]. `inference` (m_inf, n, ...) is accepted and ignored."""
    del rng, inference
    mean, _ = distribution(state, observations)
    return jnp.clip(mean, -1.0, 1.0)


def sample_actions(state: BCState, observations: jnp.ndarray, rng: jax.Array) -> jnp.ndarray:
    """Samples from the Gaussian policy, clipped to [-1, 1]."""
    mean, log_std = distribution(state, observations)
    noise = jax.random.normal(rng, mean.shape)
    return jnp.clip(mean + jnp.exp(log_std) * noise, -1.0, 1.0)
