"""ReBRAC: the BC-regularised actor and critic, the delayed actor update, learning the bandit."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from bandit import make_bandit_dataset, mode_fractions, train_on_bandit

from sorlab.agents import rebrac

SMALL = dict(actor_hidden_dims=(64, 64), value_hidden_dims=(64, 64))
STEPS = 1000


def test_critic_penalty_subtracts_scaled_squared_distance():
    next_q = jnp.array([1.0, 2.0])
    policy = jnp.array([[0.5, 0.5], [0.0, 0.0]])
    data = jnp.array([[0.5, -0.5], [0.0, 0.0]])
    out = rebrac.critic_bc_penalty(next_q, policy, data, alpha_critic=0.1)
    np.testing.assert_allclose(out, [1.0 - 0.1 * 1.0, 2.0], rtol=1e-6)


def test_actor_objective_normalises_q_and_adds_bc():
    actions = jnp.array([[0.2, 0.0], [0.0, -0.4]])
    data = jnp.zeros((2, 2))
    q = jnp.array([2.0, 4.0])
    q_loss, bc_loss = rebrac.actor_objective(q, actions, data, alpha_actor=0.5)
    assert float(q_loss) == pytest.approx(-1.0)  # -mean(q) / mean|q|
    assert float(bc_loss) == pytest.approx(0.5 * (0.04 + 0.16) / 2)
    # The normaliser is a constant: dq_loss/dq = -1 / (B * mean|q|).
    grad = jax.grad(lambda q: rebrac.actor_objective(q, actions, data, 0.5)[0])(q)
    np.testing.assert_allclose(grad, [-1 / (2 * 3.0)] * 2, rtol=1e-6)


def test_target_policy_noise_is_clipped():
    noise = rebrac.target_policy_noise(jax.random.PRNGKey(0), (10_000, 2), 0.2, 0.5)
    assert float(jnp.abs(noise).max()) <= 0.5
    assert float(noise.std()) == pytest.approx(0.2, rel=0.1)


def test_with_next_actions_and_missing_key():
    data = make_bandit_dataset(8)
    out = rebrac.with_next_actions(data)
    np.testing.assert_array_equal(out["next_actions"][:-1], data["actions"][1:])
    np.testing.assert_array_equal(out["next_actions"][-1], data["actions"][-1])
    with pytest.raises(ValueError, match="next_actions"):
        rebrac.init(jax.random.PRNGKey(0), data, rebrac.default_config("scene-play-v0") | SMALL)


def test_default_config_follows_the_papers_flags():
    hm = rebrac.default_config("humanoidmaze-medium-navigate-singletask-v0")
    assert (hm["alpha_actor"], hm["alpha_critic"], hm["discount"]) == (0.01, 0.01, 0.995)
    cube = rebrac.default_config("cube-single-play-singletask-task2-v0")
    assert (cube["alpha_actor"], cube["alpha_critic"], cube["discount"]) == (1.0, 0.0, 0.99)
    assert (cube["actor_noise"], cube["actor_noise_clip"], cube["actor_freq"]) == (0.2, 0.5, 2)
    # Antmaze: the FQL paper's Table 6 (see docs/baselines.md).
    giant = rebrac.default_config("antmaze-giant-navigate-singletask-task1-v0")
    assert (giant["alpha_actor"], giant["alpha_critic"], giant["discount"]) == (0.003, 0.01, 0.995)


def test_actor_and_targets_move_every_second_update_momentum_still_moves_actor():
    data = rebrac.with_next_actions(make_bandit_dataset(256))
    state = rebrac.init(jax.random.PRNGKey(0), data, rebrac.default_config("scene-play-v0") | SMALL)
    key = jax.random.PRNGKey(1)
    s1, m1 = rebrac.update(state, data, key)  # update 1: critic only
    s2, m2 = rebrac.update(s1, data, key)  # update 2: full
    s3, m3 = rebrac.update(s2, data, key)  # update 3: critic only
    kernel = lambda p: np.asarray(p["actor"]["Dense_0"]["kernel"])  # noqa: E731
    assert (float(m1["actor/updated"]), float(m2["actor/updated"]), float(m3["actor/updated"])) == (
        0,
        1,
        0,
    )
    assert np.array_equal(
        kernel(s1.params), kernel(state.params)
    )  # no actor gradient, no momentum yet
    assert np.array_equal(kernel(s1.target_params), kernel(state.target_params))
    assert not np.array_equal(kernel(s2.params), kernel(s1.params))
    assert not np.array_equal(kernel(s2.target_params), kernel(s1.target_params))
    # Critic-only updates repeat the latest actor step's metrics.
    assert float(m1["actor/actor_loss"]) == 0.0
    assert float(m3["actor/actor_loss"]) == float(m2["actor/actor_loss"]) != 0.0
    assert float(m3["critic/critic_loss"]) != float(m2["critic/critic_loss"])
    # Released behaviour: the critic-only Adam step still moves the actor by momentum.
    assert not np.array_equal(kernel(s3.params), kernel(s2.params))
    assert np.array_equal(kernel(s3.target_params), kernel(s2.target_params))
    # The target moves from the pre-update parameters: tau * online_1 + (1 - tau) * target_1.
    expected = 0.005 * kernel(s1.params) + 0.995 * kernel(s1.target_params)
    np.testing.assert_allclose(kernel(s2.target_params), expected, rtol=1e-6, atol=1e-8)


@pytest.fixture(scope="module")
def trained():
    config = rebrac.default_config("puzzle-3x3-play-v0") | SMALL | dict(lr=1e-3)  # alpha_actor 0.3
    return train_on_bandit(rebrac, config, STEPS, seed=0)


def test_learns_the_better_mode(trained):
    state, metrics, data = trained
    actions = rebrac.act(state, data["observations"][:1000], jax.random.PRNGKey(0), m_inf=2, n=4)
    good, bad = mode_fractions(actions)
    # A deterministic actor under a BC penalty towards both modes settles on the good side,
    # between the data mean (0, 0) and the good mode (0.6, 0.6).
    assert good > 0.5 and bad < 0.02, (good, bad)
    assert np.all(np.asarray(actions).mean(axis=0) > 0.3)
    q = rebrac.q_value(state, data["observations"][:512], data["actions"][:512])
    np.testing.assert_allclose(q, data["rewards"][:512], atol=0.25)
