"""The maths of agents/_lib (what several agents share): losses, flow helpers, Gaussian
log-densities, the per-environment lookup and the shared config keys."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.scipy.stats import norm

from sorlab.agents._lib import config as shared
from sorlab.agents._lib import envs, flow, gaussian, losses


def test_aggregation():
    qs = jnp.array([[1.0, 5.0], [3.0, 2.0]])
    np.testing.assert_array_equal(losses.aggregate(qs, "min"), [1.0, 2.0])
    np.testing.assert_array_equal(losses.aggregate(qs, "mean"), [2.0, 3.5])
    with pytest.raises(ValueError, match="median"):
        losses.aggregate(qs, "median")


@pytest.mark.parametrize("eps, reciprocal", [(0.0, False), (1e-6, False), (0.0, True)])
def test_q_maximisation_loss_normalisation(eps, reciprocal):
    q = jnp.array([1.0, 3.0])
    loss = losses.q_maximisation_loss
    assert float(loss(q, False, eps=eps, reciprocal=reciprocal)) == pytest.approx(-2.0)
    assert float(loss(q, True, eps=eps, reciprocal=reciprocal)) == pytest.approx(-1.0, rel=1e-5)
    # The normaliser is a constant: d/dq = -1 / (n * mean|q|).
    grad = jax.grad(lambda q: loss(q, True, eps=eps, reciprocal=reciprocal))(q)
    np.testing.assert_allclose(grad, [-0.25, -0.25], rtol=1e-5)


def test_td_target_and_loss():
    batch = {"rewards": jnp.array([1.0, 0.0]), "masks": jnp.array([1.0, 0.0])}
    target = losses.td_target(batch, 0.5, jnp.array([2.0, 7.0]))
    np.testing.assert_allclose(target, [2.0, 0.0])
    qs = jnp.array([[2.0, 1.0], [0.0, 0.0]])
    loss, info = losses.td_loss(qs, target)
    assert float(loss) == pytest.approx((0 + 1 + 4 + 0) / 4)
    assert set(info) == {"critic/loss", "critic/q_mean", "critic/q_max"}
    # No gradient into the target.
    g = jax.grad(lambda t: losses.td_loss(qs, t)[0])(target)
    np.testing.assert_array_equal(g, 0.0)


@pytest.mark.parametrize("tie_positive, at_zero", [(True, 0.9), (False, 0.1)])
def test_expectile_loss_weights_each_side(tie_positive, at_zero):
    diff = jnp.array([2.0, -2.0, 0.0])
    loss = losses.expectile_loss(diff, 0.9, tie_positive=tie_positive)
    np.testing.assert_allclose(loss, [0.9 * 4, 0.1 * 4, 0.0], rtol=1e-6)
    # The tie rule only decides the weight at exactly zero (adv given apart from diff).
    weight = losses.expectile_loss(jnp.ones(1), 0.9, adv=jnp.zeros(1), tie_positive=tie_positive)
    assert float(weight[0]) == pytest.approx(at_zero)
    # Its minimiser over a constant v is the 0.9-expectile: for data {0, 1} in equal measure
    # that is 0.9 (0.9 * (1 - v) = 0.1 * v).
    grid = jnp.linspace(0, 1, 1001)
    data = jnp.array([0.0, 1.0])
    total = jax.vmap(lambda v: losses.expectile_loss(data - v, 0.9, tie_positive=True).mean())(grid)
    assert float(grid[jnp.argmin(total)]) == pytest.approx(0.9, abs=1e-3)


def test_advantage_weights_exponentiate_and_clip():
    adv = jnp.array([-1.0, 0.0, 0.2, 10.0])
    w = losses.advantage_weights(adv, 3.0)
    np.testing.assert_allclose(w[:3], np.exp(3.0 * np.array([-1.0, 0.0, 0.2])), rtol=1e-6)
    assert float(w[3]) == 100.0
    assert float(losses.advantage_weights(jnp.array(1.0), 2.0, max_weight=5.0)) == 5.0


def test_iql_losses():
    # V is pulled towards the upper expectile of min(Q1, Q2); the targets carry no gradient.
    target_qs = jnp.array([[1.0, 0.0], [3.0, -1.0]])  # min -> [1, -1]
    v = jnp.array([0.0, 0.0])
    assert float(losses.iql_value_loss(target_qs, v, 0.9)) == pytest.approx(0.5)
    g = jax.grad(lambda v: losses.iql_value_loss(target_qs, v, 0.9))(v)
    np.testing.assert_allclose(g, [-0.9, 0.1], rtol=1e-6)
    qs = jnp.array([[1.0], [2.0]])
    loss = losses.iql_critic_loss(qs, jnp.array([1.0]), jnp.array([1.0]), jnp.array([2.0]), 0.5)
    assert float(loss) == pytest.approx(((1 - 2) ** 2 + (2 - 2) ** 2) / 2)
    # The released IQL/IFQL form sums the members' errors.
    batch = {"rewards": jnp.array([1.0]), "masks": jnp.array([1.0])}
    config = {"expectile": 0.9, "discount": 0.5}
    _, critic_loss, q_target = losses.iql_value_critic_losses(
        qs, jnp.zeros(1), qs, jnp.array([2.0]), batch, config
    )
    assert float(q_target[0]) == 2.0 and float(critic_loss) == pytest.approx(1.0)


def test_weighted_flow_loss_matches_hand_computation():
    pred = jnp.array([[1.0, 0.0], [0.0, 0.0]])
    target = jnp.array([[0.0, 0.0], [2.0, 2.0]])
    weights = jnp.array([3.0, 0.5])
    # per-sample MSE: [0.5, 4.0]; weighted mean: (1.5 + 2.0) / 2
    assert float(flow.weighted_flow_loss(pred, target, weights)) == pytest.approx(1.75)
    assert float(flow.weighted_flow_loss(pred, target)) == pytest.approx(2.25)


def test_flow_path_and_euler_integration():
    x0, x1 = jnp.array([[-0.2, 0.4]]), jnp.array([[0.6, -0.6]])
    x_t, vel = flow.flow_targets(x0, x1, jnp.array([[0.25]]))
    np.testing.assert_allclose(x_t, 0.75 * x0 + 0.25 * x1)
    np.testing.assert_allclose(vel, x1 - x0)
    # The straight path's constant velocity is integrated exactly by Euler steps.
    out = flow.euler_sample(lambda o, x, t: vel, None, x0, steps=7)
    np.testing.assert_allclose(out, x1, atol=1e-6)
    # Time runs 0, 1/k, ..., (k-1)/k: dx/dt = t from 0 gives sum_i (i/k)/k = (k-1)/(2k).
    out = flow.euler_sample(
        lambda o, x, t: jnp.broadcast_to(t, x.shape), None, jnp.zeros((1, 1)), 4
    )
    assert float(out[0, 0]) == pytest.approx(3 / 8)
    # Results are clipped to the action box.
    assert (
        float(flow.euler_sample(lambda o, x, t: 5.0 + 0 * x, None, jnp.zeros((1, 1)), 2)[0, 0])
        == 1.0
    )
    # Unclipped Euler: dx/dt = 0.5 over [0, 1] from 1; dx/dt = x with 4 steps: (1 + 1/4)^4.
    x0 = jnp.ones((3, 2))
    np.testing.assert_allclose(
        flow.euler_flow(lambda x, t: jnp.full_like(x, 0.5), x0, 10), 1.5, rtol=1e-6
    )
    np.testing.assert_allclose(flow.euler_flow(lambda x, t: x, x0, 4), 1.25**4, rtol=1e-6)


def test_gradient_flows_through_every_euler_step():
    # dx/dt = theta * x with k Euler steps gives x_k = x0 (1 + theta/k)^k, whose derivative in
    # theta is x0 (1 + theta/k)^(k-1): backpropagation must go through all k steps.
    k, theta, x0 = 10, 0.3, jnp.array([[0.5]])

    def final(theta):
        return flow.euler_sample(lambda o, x, t: theta * x, None, x0, k)[0, 0]

    assert float(final(theta)) == pytest.approx(0.5 * (1 + theta / k) ** k, rel=1e-5)
    assert float(jax.grad(final)(theta)) == pytest.approx(
        0.5 * (1 + theta / k) ** (k - 1), rel=1e-5
    )


@pytest.mark.parametrize("log_2pi", [gaussian.LOG_2PI, math.log(2 * math.pi)])
def test_gaussian_log_prob_matches_scipy(log_2pi):
    rng = np.random.default_rng(0)
    x, mean = rng.normal(size=(2, 7, 3)).astype(np.float32)
    log_std = rng.uniform(-2, 1, size=3).astype(np.float32)
    expected = norm.logpdf(x, mean, np.exp(log_std)).sum(-1)
    got = gaussian.gaussian_log_prob(x, mean, log_std, log_2pi=log_2pi)
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_per_environment_lookup_rules():
    table = {"cube-single-play": 1, "cube-single": 2}
    # "family": the OGBench family, visual- ignored; keys that are not families never match.
    assert envs.per_env("visual-cube-single-play-v0", table, 0, "x") == 1
    with pytest.warns(UserWarning):
        assert envs.per_env("cube-double-play-v0", table, 0, "x") == 0
    # "longest_prefix" (SORL): the longest key the name starts with; no visual- stripping.
    assert envs.match_env("cube-single-play-v0", table, "longest_prefix") == "cube-single-play"
    assert envs.match_env("cube-single-x", table, "longest_prefix") == "cube-single"
    assert envs.match_env("visual-cube-single-play-v0", table, "longest_prefix") is None
    assert envs.discount_for("antmaze-giant-navigate-v0") == 0.995
    assert envs.discount_for("antmaze-large-navigate-v0") == 0.99


def test_shared_config_keys_and_order():
    config = shared.shared_config("cube-single-play-v0", lr=1e-3)
    assert list(config) == ["lr", "batch_size", "actor_hidden_dims", "value_hidden_dims",
                            "layer_norm", "actor_layer_norm", "discount", "tau"]  # fmt: skip
    assert config["lr"] == 1e-3 and config["discount"] == 0.99
    with pytest.raises(KeyError, match="alpha"):
        shared.shared_config("x", alpha=1.0)
    assert list(shared.insert_after({"a": 1, "c": 3}, "a", b=2)) == ["a", "b", "c"]
