"""Log-densities and sampling of the Gaussian actor (`sorlab.networks.GaussianActor`).
With `tanh_squash` (ReBRAC) the action is tanh of the mean.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

# log(2 pi) as the FQL-family ports compute it (in float32); BC passes math.log(2 * math.pi).
LOG_2PI = float(jnp.log(2 * jnp.pi))


def gaussian_log_prob(
    x: jnp.ndarray, means: jnp.ndarray, log_stds: jnp.ndarray, log_2pi: float = LOG_2PI
) -> jnp.ndarray:
    """log N(x; means, diag(exp(log_stds))^2), summed over the last axis."""
    z = (x - means) * jnp.exp(-log_stds)
    return jnp.sum(-0.5 * z**2 - log_stds - 0.5 * log_2pi, axis=-1)


def sample(
    rng: jax.Array, means: jnp.ndarray, log_stds: jnp.ndarray, temperature: float = 1.0
) -> jnp.ndarray:
    """A (pre-squash) sample; the std is scaled by `temperature` (0 gives the mean)."""
    return means + jnp.exp(log_stds) * temperature * jax.random.normal(rng, means.shape)


def mode(means: jnp.ndarray, tanh_squash: bool) -> jnp.ndarray:
    return jnp.tanh(means) if tanh_squash else means
