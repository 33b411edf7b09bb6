"""CAC: consistency parametrisation, consistency training loss, sampling; learns the bandit."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from bandit import mode_fractions, train_chunks

from sorlab.agents import cac

SMALL = dict(actor_hidden_dims=(64, 64), value_hidden_dims=(64, 64))
BANDIT = {**cac.default_config("bandit"), **SMALL}
SIGMA_MIN = 0.002


def _point_mass_net(a_star):
    """The exact consistency function for data that is always a_star: f(x, sigma) = a_star."""

    def net_fn(obs, x_in, c_noise):
        sigma = jnp.exp(4.0 * c_noise)
        c_skip, c_out, c_in = cac.consistency_scalings(sigma, SIGMA_MIN)
        x = x_in / c_in
        return (a_star - c_skip * x) / c_out

    return net_fn


def test_karras_grid_and_boundary_condition():
    sigmas = cac.karras_sigmas(40, SIGMA_MIN, 80.0, 7.0)
    assert float(sigmas[0]) == pytest.approx(SIGMA_MIN) and float(sigmas[-1]) == pytest.approx(80.0)
    assert bool(jnp.all(jnp.diff(sigmas) > 0))
    c_skip, c_out, _ = cac.consistency_scalings(jnp.array(SIGMA_MIN), SIGMA_MIN)
    assert (float(c_skip), float(c_out)) == (1.0, 0.0)
    # f(x, sigma_min) = x whatever the network says.
    x = jnp.array([[0.3, -0.8]])
    f = cac.consistency_fn(
        lambda o, x, c: 123.0 + x, None, x, jnp.full((1, 1), SIGMA_MIN), SIGMA_MIN
    )
    np.testing.assert_allclose(f, x, rtol=1e-6)
    sample = cac.sample_sigmas(2, SIGMA_MIN, 80.0, 7.0)
    assert (
        sample.shape == (2,)
        and float(sample[0]) == pytest.approx(80.0)
        and 0.1 < float(sample[1]) < 80
    )


def test_exact_consistency_function_has_zero_loss_and_samples_the_data():
    a_star = jnp.array([0.4, -0.6])
    net = _point_mass_net(a_star)
    sigmas = cac.karras_sigmas(40, SIGMA_MIN, 80.0, 7.0)
    actions = jnp.broadcast_to(a_star, (64, 2))
    n_idx = jax.random.randint(jax.random.PRNGKey(0), (64, 1), 0, 39)
    noise = jax.random.normal(jax.random.PRNGKey(1), (64, 2))
    assert (
        float(cac.consistency_training_loss(net, None, actions, n_idx, noise, sigmas, SIGMA_MIN))
        < 1e-6
    )
    sample_sigmas = cac.sample_sigmas(3, SIGMA_MIN, 80.0, 7.0)
    out = cac.consistency_sample(
        net, jnp.zeros((64, 1)), jax.random.PRNGKey(2), 2, sample_sigmas, SIGMA_MIN
    )
    np.testing.assert_allclose(out, actions, atol=1e-4)


def test_consistency_loss_differentiates_only_the_noisier_branch():
    # net(x_in) = theta * x_in; the target at sigma_n is a constant (stop-gradient).
    sigmas = cac.karras_sigmas(10, SIGMA_MIN, 80.0, 7.0)
    actions = jnp.array([[0.5, -0.5], [0.2, 0.1]])
    noise = jnp.array([[1.0, -1.0], [0.5, 2.0]])
    n_idx = jnp.array([[2], [5]])

    def loss(theta):
        net = lambda o, x, c: theta * x  # noqa: E731
        return cac.consistency_training_loss(net, None, actions, n_idx, noise, sigmas, SIGMA_MIN)

    theta = 0.7
    s_hi, s_lo = sigmas[n_idx + 1], sigmas[n_idx]
    x_hi, x_lo = actions + s_hi * noise, actions + s_lo * noise
    skip_hi, out_hi, in_hi = cac.consistency_scalings(s_hi, SIGMA_MIN)
    skip_lo, out_lo, in_lo = cac.consistency_scalings(s_lo, SIGMA_MIN)
    pred = skip_hi * x_hi + out_hi * theta * in_hi * x_hi
    target = skip_lo * x_lo + out_lo * theta * in_lo * x_lo
    assert float(loss(theta)) == pytest.approx(float(jnp.mean((pred - target) ** 2)), rel=1e-5)
    expected_grad = jnp.mean(2 * (pred - target) * out_hi * in_hi * x_hi)
    assert float(jax.grad(loss)(theta)) == pytest.approx(float(expected_grad), rel=1e-4)


def test_default_config_per_environment():
    scene = cac.default_config("scene-play-v0")
    assert (scene["eta"], scene["grad_clip"], scene["normalize_q_loss"]) == (0.3, 5.0, False)
    assert scene["backup_samples"] == 10
    assert cac.default_config("antmaze-giant-navigate-v0")["q_agg"] == "min"
    assert cac.default_config("cube-double-play-v0")["sample_steps"] == 2


def test_cac_learns_bandit_and_prefers_good_mode():
    state, info, data = train_chunks(cac, BANDIT, chunks=20)
    obs = data["observations"][:512]
    actions = np.asarray(cac.act(state, obs, jax.random.PRNGKey(3), m_inf=8, n=2))
    good, bad = mode_fractions(actions)
    assert good > 0.2 and bad < 0.05, (good, bad)
    # Actions stay near the data's upper-right quadrant rather than anywhere in the box.
    assert (actions > 0).all(axis=-1).mean() > 0.8
    q = np.asarray(cac.q_value(state, obs, data["actions"][:512]))
    assert np.abs(q - np.asarray(data["rewards"][:512])).mean() < 0.1
    assert float(info["actor/q"]) > 0.8
