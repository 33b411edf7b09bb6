"""FAWAC: advantage weights, weighted flow matching, Euler sampling; learns the bandit."""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from bandit import make_bandit_dataset, mode_fractions

from sorlab.agents import fawac

SMALL = dict(actor_hidden_dims=(64, 64), value_hidden_dims=(64, 64))
# One config for all training tests so they share one compilation.
BANDIT = {**fawac.default_config("bandit"), **SMALL, "alpha": 5.0, "flow_steps": 5}


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
    state = fawac.init(jax.random.PRNGKey(seed), {k: v[:2] for k, v in data.items()}, config)
    rng = jax.random.PRNGKey(seed + 100)
    info = {}
    for _ in range(chunks):
        rng, chunk_rng = jax.random.split(rng)
        state, info = _train_chunk(fawac.update, state, data, chunk_rng)
    return state, info, data


def test_awac_weights_are_clipped_exponentiated_advantages():
    q = jnp.array([1.0, 0.0, 2.0, 0.5])
    v = jnp.array([0.5, 0.5, 0.0, 0.5])
    w = fawac.awac_weights(q, v, alpha=2.0, max_weight=20.0)
    np.testing.assert_allclose(w, [np.e, np.exp(-1.0), 20.0, 1.0], rtol=1e-6)
    # Weights are constants for the actor: no gradient reaches the critic through them.
    grad = jax.grad(lambda q: fawac.awac_weights(q, v, 2.0, 20.0).sum())(q)
    np.testing.assert_array_equal(grad, 0.0)


def test_weighted_flow_loss_matches_hand_computation():
    pred = jnp.array([[1.0, 0.0], [0.0, 0.0]])
    target = jnp.array([[0.0, 0.0], [2.0, 2.0]])
    weights = jnp.array([3.0, 0.5])
    # per-sample MSE: [0.5, 4.0]; weighted mean: (1.5 + 2.0) / 2
    assert float(fawac.weighted_flow_loss(pred, target, weights)) == pytest.approx(1.75)
    assert float(fawac.weighted_flow_loss(pred, target)) == pytest.approx(2.25)


def test_flow_path_and_euler_integration():
    x0, x1 = jnp.array([[-0.2, 0.4]]), jnp.array([[0.6, -0.6]])
    x_t, vel = fawac.flow_targets(x0, x1, jnp.array([[0.25]]))
    np.testing.assert_allclose(x_t, 0.75 * x0 + 0.25 * x1)
    np.testing.assert_allclose(vel, x1 - x0)
    # The straight path's constant velocity is integrated exactly by Euler steps.
    out = fawac.euler_sample(lambda o, x, t: vel, None, x0, steps=7)
    np.testing.assert_allclose(out, x1, atol=1e-6)
    # Time runs 0, 1/k, ..., (k-1)/k: dx/dt = t from 0 gives sum_i (i/k)/k = (k-1)/(2k).
    out = fawac.euler_sample(
        lambda o, x, t: jnp.broadcast_to(t, x.shape), None, jnp.zeros((1, 1)), 4
    )
    assert float(out[0, 0]) == pytest.approx(3 / 8)
    # Results are clipped to the action box.
    assert (
        float(fawac.euler_sample(lambda o, x, t: 5.0 + 0 * x, None, jnp.zeros((1, 1)), 2)[0, 0])
        == 1.0
    )


def test_default_config_per_environment():
    assert fawac.default_config("antmaze-giant-navigate-v0")["discount"] == 0.995
    assert fawac.default_config("antmaze-large-navigate-singletask-task1-v0")["q_agg"] == "min"
    cfg = fawac.default_config("cube-double-play-v0")
    assert (cfg["alpha"], cfg["batch_size"], cfg["lr"]) == (0.3, 256, 3e-4)
    assert cfg["actor_hidden_dims"] == (512,) * 4 and cfg["layer_norm"] is True


def test_fawac_learns_bandit_and_prefers_good_mode():
    state, info, data = _train(BANDIT, chunks=24)
    obs = data["observations"][:512]
    good, bad = mode_fractions(
        np.asarray(fawac.act(state, obs, jax.random.PRNGKey(3), m_inf=4, n=8))
    )
    assert good > 0.5 and bad < 0.05, (good, bad)
    # masks are 0, so Q(s, a) is the reward of a's mode.
    q = np.asarray(fawac.q_value(state, obs, data["actions"][:512]))
    rewards = np.asarray(data["rewards"][:512])
    assert np.abs(q - rewards).mean() < 0.1
    assert float(info["actor/weight_mean"]) > 0


def test_fawac_is_deterministic_under_a_seed():
    a, _, data = _train(BANDIT, chunks=1, seed=3)
    b, _, _ = _train(BANDIT, chunks=1, seed=3)
    c, _, _ = _train(BANDIT, chunks=1, seed=4)
    leaves = lambda s: jax.tree_util.tree_leaves(s.params)  # noqa: E731
    assert all(np.array_equal(x, y) for x, y in zip(leaves(a), leaves(b), strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(leaves(a), leaves(c), strict=True))
    obs = data["observations"][:16]
    np.testing.assert_array_equal(
        fawac.act(a, obs, jax.random.PRNGKey(0)), fawac.act(b, obs, jax.random.PRNGKey(0))
    )
