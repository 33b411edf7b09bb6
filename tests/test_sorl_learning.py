"""SORL learns on the two-mode offline bandit (tests/bandit.py): with the Q loss off it imitates
both modes, with 1 and with 8 sampling steps; with the Q loss on it prefers the better mode."""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from bandit import OBS_DIM, make_bandit_dataset, mode_fractions

from sorlab.agents import sorl

STEPS = 2500


def bandit_config(**overrides) -> dict:
    config = sorl.default_config("cube-single-play-v0")  # q_loss_coef 10
    config.update(actor_hidden_dims=(64, 64), value_hidden_dims=(64, 64), lr=1e-3, batch_size=256)
    config.update(overrides)
    return config


@partial(jax.jit, static_argnames=("steps",))
def train(state, data, rng, steps: int):
    """`steps` updates on minibatches drawn uniformly from `data`, all in one XLA call."""
    size = data["observations"].shape[0]

    def body(state, rng):
        batch_rng, update_rng = jax.random.split(rng)
        idx = jax.random.randint(batch_rng, (state.config["batch_size"],), 0, size)
        state, info = sorl.update(state, {k: v[idx] for k, v in data.items()}, update_rng)
        return state, info["actor/flow_loss"]

    return jax.lax.scan(body, state, jax.random.split(rng, steps))


def train_on_bandit(config: dict, seed: int = 0):
    data = {k: jnp.asarray(v) for k, v in make_bandit_dataset(4096, seed=0).items()}
    state = sorl.init(jax.random.PRNGKey(seed), {k: v[:2] for k, v in data.items()}, config)
    state, flow_losses = train(state, data, jax.random.PRNGKey(seed + 1), STEPS)
    assert np.all(np.isfinite(np.asarray(flow_losses)))
    return state


@pytest.fixture(scope="module")
def observations():
    rng = np.random.default_rng(123)
    return jnp.asarray(rng.normal(size=(1000, OBS_DIM)).astype(np.float32))


def test_flow_bc_reproduces_both_modes_with_1_and_8_steps(observations):
    # No Q loss (and one k for it, to compile less): flow matching + self-consistency only.
    state = train_on_bandit(bandit_config(q_loss_coef=0.0, max_k_backprop=1))
    for m_inf in (1, 8):
        actions = sorl.act(state, observations, jax.random.PRNGKey(7), m_inf=m_inf)
        good, bad = mode_fractions(actions)
        assert good > 0.3 and bad > 0.3, (m_inf, good, bad)
        assert good + bad > 0.8, (m_inf, good, bad)


def test_sorl_prefers_the_better_mode(observations):
    state = train_on_bandit(bandit_config())  # released semantics, M = M_BTT = 8
    for m_inf in (1, 8):
        actions = sorl.act(state, observations, jax.random.PRNGKey(7), m_inf=m_inf)
        good, bad = mode_fractions(actions)
        assert good > 0.55 and good > 2 * bad, (m_inf, good, bad)
    # Best-of-N with the learned critic moves the 8-step policy further toward the good mode.
    actions = sorl.act(state, observations, jax.random.PRNGKey(7), m_inf=8, n=8)
    good, bad = mode_fractions(actions)
    assert good > 0.8, (good, bad)
