"""FBRAC: Q loss backpropagated through the flow's Euler steps; learns the bandit."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from bandit import make_bandit_dataset, mode_fractions, train_chunks

from sorlab.agents import fbrac

SMALL = dict(actor_hidden_dims=(64, 64), value_hidden_dims=(64, 64))
# One config for all training tests so they share one compilation.
BANDIT = {**fbrac.default_config("bandit"), **SMALL, "alpha": 1.0, "flow_steps": 5}


def test_actor_loss_is_alpha_bc_plus_q_through_the_flow_and_spares_the_critic():
    data = make_bandit_dataset(32, 0)
    config = {**fbrac.default_config("bandit"), **SMALL, "alpha": 3.0, "flow_steps": 4}
    state = fbrac.init(jax.random.PRNGKey(0), data, config)
    batch = {k: jnp.asarray(v) for k, v in data.items()}

    @jax.jit
    def loss_and_grads(state, rng):
        fn = lambda p: fbrac.actor_loss(state, p, batch, rng)  # noqa: E731
        return jax.value_and_grad(fn, has_aux=True)(state.params)

    (loss, info), grads = loss_and_grads(state, jax.random.PRNGKey(1))
    assert float(loss) == pytest.approx(
        3.0 * float(info["actor/bc_loss"]) + float(info["actor/q_loss"]), rel=1e-5
    )
    assert all(float(jnp.abs(g).max()) == 0.0 for g in jax.tree_util.tree_leaves(grads["critic"]))
    # With alpha = 0 only the Q term remains, and it still moves the flow (through its steps).
    state0 = state.replace(config=state.config.copy({"alpha": 0.0}))
    (_, info0), q_grads = loss_and_grads(state0, jax.random.PRNGKey(1))
    assert float(info0["actor/q_loss"]) == pytest.approx(float(info["actor/q_loss"]))
    assert float(sum(jnp.abs(g).sum() for g in jax.tree_util.tree_leaves(q_grads["actor"]))) > 0


def test_default_config_per_environment():
    assert fbrac.default_config("cube-single-play-v0")["alpha"] == 100.0
    assert fbrac.default_config("humanoidmaze-large-navigate-v0")["discount"] == 0.995
    assert fbrac.default_config("anything-else")["flow_steps"] == 10


def test_fbrac_learns_bandit_and_prefers_good_mode():
    state, info, data = train_chunks(fbrac, BANDIT, chunks=20)
    obs = data["observations"][:512]
    good, bad = mode_fractions(
        np.asarray(fbrac.act(state, obs, jax.random.PRNGKey(3), m_inf=4, n=8))
    )
    assert good > 0.4 and bad < good / 3, (good, bad)
    q = np.asarray(fbrac.q_value(state, obs, data["actions"][:512]))
    assert np.abs(q - np.asarray(data["rewards"][:512])).mean() < 0.1
    assert np.isfinite(float(info["actor/grad_norm"]))
