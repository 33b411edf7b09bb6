"""FBRAC: Q loss backpropagated through the flow's Euler steps; learns the bandit."""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from bandit import make_bandit_dataset, mode_fractions

from sorlab.agents import fawac, fbrac

SMALL = dict(actor_hidden_dims=(64, 64), value_hidden_dims=(64, 64))
# One config for all training tests so they share one compilation.
BANDIT = {**fbrac.default_config("bandit"), **SMALL, "alpha": 1.0, "flow_steps": 5}


@partial(jax.jit, static_argnums=(0, 4))
def _train_chunk(update, state, data, rng, steps=50):
    def body(state, rng):
        idx_rng, up_rng = jax.random.split(rng)
        idx = jax.random.randint(idx_rng, (256,), 0, data["observations"].shape[0])
        return update(state, {k: v[idx] for k, v in data.items()}, up_rng)

    state, info = jax.lax.scan(body, state, jax.random.split(rng, steps))
    return state, jax.tree_util.tree_map(lambda x: x[-1], info)


def _train(config, chunks, seed=0):
    data = {k: jnp.asarray(v) for k, v in make_bandit_dataset(2048, 0).items()}
    state = fbrac.init(jax.random.PRNGKey(seed), {k: v[:2] for k, v in data.items()}, config)
    rng = jax.random.PRNGKey(seed + 100)
    info = {}
    for _ in range(chunks):
        rng, chunk_rng = jax.random.split(rng)
        state, info = _train_chunk(fbrac.update, state, data, chunk_rng)
    return state, info, data


def test_gradient_flows_through_every_euler_step():
    # dx/dt = theta * x with k Euler steps gives x_k = x0 (1 + theta/k)^k, whose derivative in
    # theta is x0 (1 + theta/k)^(k-1): backpropagation must go through all k steps.
    k, theta, x0 = 10, 0.3, jnp.array([[0.5]])

    def final(theta):
        return fawac.euler_sample(lambda o, x, t: theta * x, None, x0, k)[0, 0]

    assert float(final(theta)) == pytest.approx(0.5 * (1 + theta / k) ** k, rel=1e-5)
    assert float(jax.grad(final)(theta)) == pytest.approx(
        0.5 * (1 + theta / k) ** (k - 1), rel=1e-5
    )


def test_q_loss_normalisation():
    q = jnp.array([1.0, 3.0])
    assert float(fbrac.q_maximisation_loss(q, normalize=False)) == pytest.approx(-2.0)
    assert float(fbrac.q_maximisation_loss(q, normalize=True)) == pytest.approx(-1.0, rel=1e-5)
    # The normaliser is a constant: d/dq = -1 / (n * mean|q|).
    grad = jax.grad(lambda q: fbrac.q_maximisation_loss(q, True))(q)
    np.testing.assert_allclose(grad, [-0.25, -0.25], rtol=1e-5)


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
    state, info, data = _train(BANDIT, chunks=20)
    obs = data["observations"][:512]
    good, bad = mode_fractions(
        np.asarray(fbrac.act(state, obs, jax.random.PRNGKey(3), m_inf=4, n=8))
    )
    assert good > 0.4 and bad < good / 3, (good, bad)
    q = np.asarray(fbrac.q_value(state, obs, data["actions"][:512]))
    assert np.abs(q - np.asarray(data["rewards"][:512])).mean() < 0.1
    assert np.isfinite(float(info["actor/grad_norm"]))


def test_fbrac_is_deterministic_under_a_seed():
    a, _, data = _train(BANDIT, chunks=1, seed=3)
    b, _, _ = _train(BANDIT, chunks=1, seed=3)
    c, _, _ = _train(BANDIT, chunks=1, seed=4)
    leaves = lambda s: jax.tree_util.tree_leaves(s.params)  # noqa: E731
    assert all(np.array_equal(x, y) for x, y in zip(leaves(a), leaves(b), strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(leaves(a), leaves(c), strict=True))
    obs = data["observations"][:16]
    np.testing.assert_array_equal(
        fbrac.act(a, obs, jax.random.PRNGKey(0)), fbrac.act(b, obs, jax.random.PRNGKey(0))
    )
