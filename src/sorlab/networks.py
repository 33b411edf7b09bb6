"""Every network of the agents: MLPs, critic ensembles, flow vector fields, policy networks.

Initialisation and layer order follow the field's JAX offline-RL code (FQL/OGBench): Dense
layers with variance-scaling (fan_avg, uniform) kernels, GELU, optional LayerNorm after each
hidden activation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import flax.linen as nn
import jax.numpy as jnp


def default_init(scale: float = 1.0) -> Callable:
    return nn.initializers.variance_scaling(scale, "fan_avg", "uniform")


class MLP(nn.Module):
    hidden_dims: Sequence[int]
    activations: Callable = nn.gelu
    activate_final: bool = False
    layer_norm: bool = False
    kernel_init: Callable = default_init()

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        for i, size in enumerate(self.hidden_dims):
            x = nn.Dense(size, kernel_init=self.kernel_init)(x)
            if i + 1 < len(self.hidden_dims) or self.activate_final:
                x = self.activations(x)
                if self.layer_norm:
                    x = nn.LayerNorm()(x)
        return x


def ensemblize(module_cls: type[nn.Module], num: int) -> type[nn.Module]:
    """Stack `num` independent copies of a module; outputs gain a leading ensemble axis."""
    return nn.vmap(
        module_cls,
        variable_axes={"params": 0},
        split_rngs={"params": True},
        in_axes=None,
        out_axes=0,
        axis_size=num,
    )


class Value(nn.Module):
    """V(s) or Q(s, a) (an ensemble of `num_ensembles` when > 1), output shape (E, B) or (B,).

    `extra_inputs` are concatenated to the input, e.g. a step-count feature.
    """

    hidden_dims: Sequence[int]
    layer_norm: bool = True
    num_ensembles: int = 2

    @nn.compact
    def __call__(self, observations, actions=None, *extra_inputs) -> jnp.ndarray:
        parts = [observations] + ([actions] if actions is not None else []) + list(extra_inputs)
        x = jnp.concatenate(parts, axis=-1)
        dims = (*self.hidden_dims, 1)
        if self.num_ensembles > 1:
            net = ensemblize(MLP, self.num_ensembles)(dims, layer_norm=self.layer_norm)
        else:
            net = MLP(dims, layer_norm=self.layer_norm)
        return net(x).squeeze(-1)


class ActorVectorField(nn.Module):
    """Flow-matching velocity v(s, x_t, t) (FQL's BC flow policy and one-step policy)."""

    hidden_dims: Sequence[int]
    action_dim: int
    layer_norm: bool = False

    @nn.compact
    def __call__(self, observations, actions, times=None) -> jnp.ndarray:
        parts = [observations, actions] + ([times] if times is not None else [])
        x = jnp.concatenate(parts, axis=-1)
        return MLP((*self.hidden_dims, self.action_dim), layer_norm=self.layer_norm)(x)


class ShortcutVectorField(nn.Module):
    """Shortcut model s(obs, x, t, level) (SORL's policy), a plain MLP on the concatenation.

    As in the released SORL code, the flow time `t` and the step level `log2(1/d)` enter as two
    raw scalar features (no embedding), each of shape (..., 1).
    """

    hidden_dims: Sequence[int]
    action_dim: int
    layer_norm: bool = False

    @nn.compact
    def __call__(self, observations, actions, times, levels) -> jnp.ndarray:
        x = jnp.concatenate([observations, actions, times, levels], axis=-1)
        return MLP((*self.hidden_dims, self.action_dim), layer_norm=self.layer_norm)(x)


class ResidualVectorField(nn.Module):
    """IDQL's residual MLP as a noise/velocity predictor v(s, x, t), output `action_dim`.

    Input projection to `hidden_dims[0]`, then `num_blocks` residual blocks x + MLP(LN(x))
    with the block's layer sizes `hidden_dims[1:]` (IDQL: 3 blocks of [256, 1024, 256], i.e.
    width 256, expansion 1024), then GELU and a linear head. IDQL's dropout is left out (the
    trainer passes no dropout rng).
    """

    hidden_dims: Sequence[int]
    action_dim: int
    num_blocks: int = 3

    @nn.compact
    def __call__(self, observations, actions, times=None) -> jnp.ndarray:
        dims = tuple(self.hidden_dims)
        if len(dims) < 2 or dims[0] != dims[-1]:
            raise ValueError(f"residual hidden_dims must start and end with the same width "
                             f"(e.g. [256, 1024, 256]), got {list(dims)}")  # fmt: skip
        parts = [observations, actions] + ([times] if times is not None else [])
        x = nn.Dense(dims[0], kernel_init=default_init())(jnp.concatenate(parts, axis=-1))
        for _ in range(self.num_blocks):
            x = x + MLP(dims[1:])(nn.LayerNorm()(x))
        return nn.Dense(self.action_dim, kernel_init=default_init())(nn.gelu(x))


class GaussianActor(nn.Module):
    """Returns the mean and log-std of a diagonal Gaussian over (pre-squash) actions.

    As in the released FQL/OGBench code: an MLP trunk with an activated last hidden layer, a
    mean head initialised small (`final_fc_init_scale`), and a log-std that is zero
    (`const_std`, the IQL/ReBRAC setting), a free parameter vector (BC), or a second head;
    log-stds are clipped to [log_std_min, log_std_max]. Densities: agents/_lib/gaussian.py.
    """

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
            # Clipped before it is broadcast (as BC always did): the other order rounds the
            # gradient's batch sum differently and changes BC's numbers.
            log_stds = self.param("log_stds", nn.initializers.zeros, (self.action_dim,))
            log_stds = jnp.clip(log_stds, self.log_std_min, self.log_std_max)
            return means, jnp.broadcast_to(log_stds, means.shape)
        return means, jnp.clip(log_stds, self.log_std_min, self.log_std_max)


class DiracActor(nn.Module):
    """Deterministic policy a = tanh(MLP(s)) (SRPO)."""

    hidden_dims: tuple
    action_dim: int
    layer_norm: bool = False

    @nn.compact
    def __call__(self, observations: jnp.ndarray) -> jnp.ndarray:
        out = MLP((*self.hidden_dims, self.action_dim), layer_norm=self.layer_norm)(observations)
        return jnp.tanh(out)


def behavior_network(hidden_dims, blocks: int, action_dim: int, layer_norm: bool) -> nn.Module:
    """IDQL's diffusion model (also SRPO's behaviour model): the residual MLP when `blocks` > 0,
    else a plain MLP vector field."""
    if blocks:
        return ResidualVectorField(tuple(hidden_dims), action_dim, num_blocks=blocks)
    return ActorVectorField(hidden_dims=hidden_dims, action_dim=action_dim, layer_norm=layer_norm)
