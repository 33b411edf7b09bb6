"""IDQL: IQL losses, DDPM schedule and sampling, candidate selection; learns the bandit."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from bandit import mode_fractions, train_chunks

from sorlab.agents import idql
from sorlab.networks import ResidualVectorField

SMALL = dict(actor_hidden_dims=(64, 64, 64), value_hidden_dims=(64, 64))
BANDIT = {**idql.default_config("bandit"), **SMALL, "diffusion_steps": 5}


def test_default_config_follows_the_fql_appendix():
    cube = idql.default_config("cube-single-play-v0")
    assert (cube["expectile"], cube["value_hidden_dims"], cube["num_samples"]) == (
        0.9,
        (256, 256),
        32,
    )
    maze = idql.default_config("humanoidmaze-medium-navigate-v0")
    assert (maze["expectile"], maze["value_hidden_dims"]) == (0.7, (512, 512))
    assert (maze["actor_hidden_dims"], maze["actor_blocks"]) == ((256, 1024, 256), 3)


def test_residual_network_is_three_blocks_of_256_1024_256():
    net = ResidualVectorField((256, 1024, 256), action_dim=5, num_blocks=3)
    params = net.init(
        jax.random.PRNGKey(0), jnp.zeros((2, 28)), jnp.zeros((2, 5)), jnp.zeros((2, 1))
    )
    shapes = sorted(tuple(p.shape) for p in jax.tree.leaves(params))
    # Input projection (34 -> 256), per block LayerNorm + 256 -> 1024 -> 256, head 256 -> 5.
    assert shapes.count((256, 1024)) == 3 and shapes.count((1024, 256)) == 3
    assert (34, 256) in shapes and (256, 5) in shapes
    out = net.apply(params, jnp.ones((2, 28)), jnp.ones((2, 5)), jnp.ones((2, 1)))
    assert out.shape == (2, 5)
    with pytest.raises(ValueError, match="same width"):
        ResidualVectorField((256, 1024), 5).init(
            jax.random.PRNGKey(0), jnp.zeros((1, 3)), jnp.zeros((1, 5)), jnp.zeros((1, 1))
        )


def test_vp_schedule_reaches_noise():
    betas = idql.vp_beta_schedule(10, 0.1, 10.0)
    assert bool(jnp.all((betas > 0) & (betas < 1))) and bool(jnp.all(jnp.diff(betas) > 0))
    assert float(jnp.prod(1 - betas)) < 0.01


def test_ddpm_sampling_with_the_exact_noise_predictor_recovers_a_point_mass():
    # For data that is always a*, the optimal noise prediction is (x - sqrt(abar) a*)/sqrt(1-abar);
    # ancestral sampling with it must land exactly on a* whatever the noise.
    steps, a_star = 5, jnp.array([0.3, -0.7])
    betas = idql.vp_beta_schedule(steps, 0.1, 10.0)
    abar = jnp.cumprod(1 - betas)

    def eps_fn(obs, x, t):
        k = jnp.round(t * steps).astype(jnp.int32)
        return (x - jnp.sqrt(abar[k]) * a_star) / jnp.sqrt(1 - abar[k])

    out = idql.ddpm_sample(eps_fn, jnp.zeros((6, 1)), jax.random.PRNGKey(0), 2, betas)
    np.testing.assert_allclose(out, jnp.broadcast_to(a_star, (6, 2)), atol=1e-4)
    # ddpm_noised is the forward process the predictor inverts.
    x = idql.ddpm_noised(a_star[None], jnp.ones((1, 2)), jnp.array([[2]]), abar)
    np.testing.assert_allclose(eps_fn(None, x, jnp.array([[2 / steps]])), 1.0, rtol=1e-5)


def test_candidate_selection_pairs_each_observation_with_its_own_candidates():
    candidates = jnp.arange(2 * 3 * 1, dtype=jnp.float32).reshape(2, 3, 1)  # (B=2, N=3, A=1)
    q = jnp.array([[0.1, 0.9, 0.2], [0.7, 0.0, 0.3]])
    chosen = idql.select_candidates(
        candidates, q, jnp.zeros(2), jax.random.PRNGKey(0), "argmax", 0.9
    )
    np.testing.assert_array_equal(chosen[:, 0], [1.0, 3.0])
    # Batched selection equals one-observation-at-a-time selection.
    for b in range(2):
        one = idql.select_candidates(
            candidates[b : b + 1], q[b : b + 1], jnp.zeros(1), None, "argmax", 0.9
        )
        np.testing.assert_array_equal(one, chosen[b : b + 1])
    with pytest.raises(ValueError, match="selection"):
        idql.select_candidates(candidates, q, jnp.zeros(2), None, "softmax", 0.9)


def test_expectile_selection_follows_importance_weights():
    # Q - V = [+1, -0.5, +2]; weights |0.9 - 1(adv<0)| / |adv| = [0.9, 0.2, 0.45] -> p = [.6, .133, .3]
    candidates = jnp.arange(3, dtype=jnp.float32).reshape(1, 3, 1)
    candidates = jnp.broadcast_to(candidates, (20000, 3, 1))
    q = jnp.broadcast_to(jnp.array([1.0, -0.5, 2.0]), (20000, 3))
    chosen = idql.select_candidates(
        candidates, q, jnp.zeros(20000), jax.random.PRNGKey(1), "expectile", 0.9
    )
    freq = np.bincount(np.asarray(chosen[:, 0]).astype(int), minlength=3) / 20000
    np.testing.assert_allclose(freq, np.array([0.9, 0.2, 0.45]) / 1.55, atol=0.015)


def test_idql_learns_bandit_and_picks_the_good_mode():
    state, info, data = train_chunks(idql, BANDIT, chunks=16)
    obs = data["observations"][:256]
    actions = np.asarray(idql.act(state, obs, jax.random.PRNGKey(3), m_inf=4, n=1))
    good, bad = mode_fractions(actions)
    assert good > 0.6 and bad < 0.05, (good, bad)
    q = np.asarray(idql.q_value(state, obs, data["actions"][:256]))
    assert np.abs(q - np.asarray(data["rewards"][:256])).mean() < 0.1
    # With one candidate there is no choice: the behaviour policy samples both modes.
    one = np.asarray(
        idql.act(
            state.replace(config=state.config.copy({"num_samples": 1})), obs, jax.random.PRNGKey(3)
        )
    )
    good1, bad1 = mode_fractions(one)
    assert bad1 > 0.05 and good > good1 + 0.3, (good1, bad1)
