"""SRPO: VP-SDE marginals, score regulariser, Q guidance; learns the bandit."""

import jax
import jax.numpy as jnp
import numpy as np
from bandit import mode_fractions, train_chunks

from sorlab.agents import srpo

SMALL = dict(
    actor_hidden_dims=(64, 64), value_hidden_dims=(64, 64), behavior_hidden_dims=(64, 64, 64)
)
BANDIT = {**srpo.default_config("bandit"), **SMALL}


def test_vp_marginal_is_variance_preserving():
    t = jnp.linspace(0.0, 1.0, 11)
    alpha, sigma = srpo.vp_marginal(t, 0.1, 20.0)
    np.testing.assert_allclose(alpha**2 + sigma**2, 1.0, rtol=1e-6)
    assert float(alpha[0]) == 1.0 and float(alpha[-1]) < 0.01
    assert bool(jnp.all(jnp.diff(alpha) < 0))


def test_score_regulariser_pulls_towards_a_gaussian_behaviour_mean():
    # Behaviour N(mu, s^2): the exact noise predictor at level t is
    # eps(x) = sigma (x - alpha mu) / (alpha^2 s^2 + sigma^2). The expected gradient of the
    # regulariser in the action is sigma^2 * sigma alpha (a - mu) / (alpha^2 s^2 + sigma^2):
    # a descent step moves a towards mu.
    mu, s, a = jnp.array([0.5, -0.2]), 0.3, jnp.array([[-0.4, 0.6]])
    t = jnp.full((4096, 1), 0.4)
    alpha, sigma = srpo.vp_marginal(t, 0.1, 20.0)
    z = jax.random.normal(jax.random.PRNGKey(0), (4096, 2))

    def reg(a):
        a = jnp.broadcast_to(a, z.shape)
        x = alpha * a + sigma * z
        eps = sigma * (x - alpha * mu) / (alpha**2 * s**2 + sigma**2)
        return srpo.score_regulariser(eps, z, a, sigma).mean()

    grad = jax.grad(reg)(a)[0]
    al, sg = float(alpha[0, 0]), float(sigma[0, 0])
    expected = sg**2 * sg * al * (a[0] - mu) / (al**2 * s**2 + sg**2)
    np.testing.assert_allclose(grad, expected, rtol=0.1, atol=2e-3)


def test_score_regulariser_gradient_is_weighted_residual():
    eps, z = jnp.array([[0.5, -1.0]]), jnp.array([[0.25, 0.0]])
    sigma = jnp.array([[0.5]])
    g = jax.grad(lambda a: srpo.score_regulariser(eps, z, a, sigma).sum())(jnp.zeros((1, 2)))
    np.testing.assert_allclose(g, 0.25 * (eps - z), rtol=1e-6)


def test_q_guidance_uses_unit_rms_gradient():
    q_grad = jnp.array([[3.0, 4.0]])  # rms = sqrt(12.5)
    g = jax.grad(lambda a: srpo.q_guidance(q_grad, a, 0.5, True).sum())(jnp.zeros((1, 2)))
    np.testing.assert_allclose(g, -0.5 * q_grad / np.sqrt(12.5), rtol=1e-6)
    g = jax.grad(lambda a: srpo.q_guidance(q_grad, a, 0.5, False).sum())(jnp.zeros((1, 2)))
    np.testing.assert_allclose(g, -0.5 * q_grad, rtol=1e-6)


def test_default_config_per_environment():
    assert srpo.default_config("puzzle-4x4-play-v0")["beta"] == 0.1
    soccer = srpo.default_config("antsoccer-arena-navigate-v0")
    assert (soccer["discount"], soccer["expectile"], soccer["value_hidden_dims"]) == (
        0.995,
        0.7,
        (512, 512),
    )
    cube = srpo.default_config("cube-single-play-v0")
    assert (cube["expectile"], cube["value_hidden_dims"], cube["behavior_blocks"]) == (
        0.9,
        (256, 256),
        3,
    )


def test_srpo_learns_bandit_and_prefers_good_mode():
    state, info, data = train_chunks(srpo, BANDIT, chunks=16)
    obs = data["observations"][:512]
    actions = np.asarray(srpo.act(state, obs, jax.random.PRNGKey(3), m_inf=2, n=4))
    good, bad = mode_fractions(actions)
    assert good > 0.5 and bad < 0.05, (good, bad)
    q = np.asarray(srpo.q_value(state, obs, data["actions"][:512]))
    assert np.abs(q - np.asarray(data["rewards"][:512])).mean() < 0.1
    assert float(info["actor/behavior_loss"]) < 0.5
    # The actor is deterministic: the rng does not matter.
    np.testing.assert_array_equal(actions, srpo.act(state, obs, jax.random.PRNGKey(4)))
