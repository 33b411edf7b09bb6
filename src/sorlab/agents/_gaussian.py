"""Gaussian actor and its log-probabilities, shared by the Gaussian-policy baselines.

The actor follows the released FQL/OGBench code: an MLP trunk with an activated last hidden
layer, a mean head initialised small (`final_fc_init_scale`), and a log-std that is zero
(`const_std`, the IQL/ReBRAC setting), a free parameter vector, or a second head; log-stds are
clipped to [log_std_min, log_std_max]. With `tanh_squash` the action is tanh of the Gaussian
sample (ReBRAC); `log_prob` below then needs the pre-tanh value.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from sorlab.networks import MLP, default_init

LOG_2PI = float(jnp.log(2 * jnp.pi))


class GaussianActor(nn.Module):
    """Returns the mean and log-std of a diagonal Gaussian over (pre-squash) actions."""

    hidden_dims: Sequence[int]
    action_dim: int
    layer_norm: bool = False
    log_std_min: float = -5.0
    log_std_max: float = 2.0
    const_std: bool = True
    state_dependent_std: bool = False
    final_fc_init_scale: float = 1e-2

    @nn.compact
    def __call__(self, observations: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
        x = MLP(self.hidden_dims, activate_final=True, layer_norm=self.layer_norm)(observations)
        means = nn.Dense(self.action_dim, kernel_init=default_init(self.final_fc_init_scale))(x)
        if self.state_dependent_std:
            log_stds = nn.Dense(
                self.action_dim, kernel_init=default_init(self.final_fc_init_scale)
            )(x)
        elif self.const_std:
            log_stds = jnp.zeros_like(means)
        else:
            log_stds = jnp.broadcast_to(
                self.param("log_stds", nn.initializers.zeros, (self.action_dim,)), means.shape
            )
        return means, jnp.clip(log_stds, self.log_std_min, self.log_std_max)


def gaussian_log_prob(x: jnp.ndarray, means: jnp.ndarray, log_stds: jnp.ndarray) -> jnp.ndarray:
    """log N(x; means, diag(exp(log_stds))^2), summed over the last axis."""
    z = (x - means) * jnp.exp(-log_stds)
    return jnp.sum(-0.5 * z**2 - log_stds - 0.5 * LOG_2PI, axis=-1)


def tanh_log_det_jacobian(pre_tanh: jnp.ndarray) -> jnp.ndarray:
    """log |d tanh(u)/du| summed over the last axis, in a numerically stable form."""
    return jnp.sum(2.0 * (jnp.log(2.0) - pre_tanh - jax.nn.softplus(-2.0 * pre_tanh)), axis=-1)


def tanh_gaussian_log_prob(
    pre_tanh: jnp.ndarray, means: jnp.ndarray, log_stds: jnp.ndarray
) -> jnp.ndarray:
    """Log-density of the squashed action tanh(pre_tanh) under a tanh-squashed Gaussian."""
    return gaussian_log_prob(pre_tanh, means, log_stds) - tanh_log_det_jacobian(pre_tanh)


def sample(
    rng: jax.Array, means: jnp.ndarray, log_stds: jnp.ndarray, temperature: float = 1.0
) -> jnp.ndarray:
    """A (pre-squash) sample; the std is scaled by `temperature` (0 gives the mean)."""
    return means + jnp.exp(log_stds) * temperature * jax.random.normal(rng, means.shape)


def mode(means: jnp.ndarray, tanh_squash: bool) -> jnp.ndarray:
    return jnp.tanh(means) if tanh_squash else means
