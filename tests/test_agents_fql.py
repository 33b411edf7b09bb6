"""FQL: flow matching, Euler integration, distillation, the one-step policy, the bandit."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from bandit import make_bandit_dataset, mode_fractions, train_on_bandit

from sorlab.agents import fql

SMALL = dict(actor_hidden_dims=(64, 64), value_hidden_dims=(64, 64))
STEPS = 2000


def test_flow_matching_loss_is_zero_for_the_straight_path_velocity():
    x0, x1 = jnp.array([[0.0, 1.0]]), jnp.array([[1.0, -1.0]])
    assert float(fql.flow_matching_loss(x1 - x0, x0, x1)) == 0.0
    assert float(fql.flow_matching_loss(jnp.zeros((1, 2)), x0, x1)) == pytest.approx((1 + 4) / 2)


def test_distillation_loss_pulls_only_the_one_step_actions():
    onestep, flow = jnp.array([[0.5, 0.0]]), jnp.array([[0.0, 0.0]])
    assert float(fql.distillation_loss(onestep, flow)) == pytest.approx(0.125)
    g_onestep, g_flow = jax.grad(fql.distillation_loss, argnums=(0, 1))(onestep, flow)
    np.testing.assert_allclose(g_onestep, [[0.5, 0.0]])
    np.testing.assert_array_equal(g_flow, 0.0)  # the BC flow is a fixed target


def test_q_loss():
    q = jnp.array([1.0, 3.0])
    assert float(fql.q_loss(q, normalize=False)) == -2.0
    assert float(fql.q_loss(q, normalize=True)) == pytest.approx(-1.0)


def test_default_config_is_the_readme_flags():
    large = fql.default_config("antmaze-large-navigate-singletask-task3-v0")
    assert (large["alpha"], large["q_agg"], large["discount"]) == (10.0, "min", 0.99)
    giant = fql.default_config("antmaze-giant-navigate-v0")
    assert (giant["alpha"], giant["q_agg"], giant["discount"]) == (10.0, "min", 0.995)
    hm = fql.default_config("humanoidmaze-large-navigate-v0")
    assert (hm["alpha"], hm["q_agg"], hm["discount"]) == (30.0, "mean", 0.995)
    assert fql.default_config("antsoccer-arena-navigate-v0")["discount"] == 0.995
    for env in ("cube-single-play-v0", "cube-double-play-v0", "scene-play-v0"):
        assert fql.default_config(env)["alpha"] == 300.0
    assert fql.default_config("cube-double-play-v0")["flow_steps"] == 10


@pytest.fixture(scope="module")
def trained():
    config = fql.default_config("cube-single-play-v0") | SMALL | dict(alpha=1.0, lr=1e-3)
    return train_on_bandit(fql, config, STEPS, seed=0)


def test_flow_actions_match_an_unrolled_euler_loop(trained):
    state, _, data = trained
    obs = data["observations"][:64]
    noises = jax.random.normal(jax.random.PRNGKey(3), (64, 2))
    net = fql.networks(state.config)["actor_bc_flow"]
    params = state.params["actor_bc_flow"]
    x = noises
    for i in range(10):  # the released code's loop
        x = x + net.apply({"params": params}, obs, x, jnp.full((64, 1), i / 10)) / 10
    np.testing.assert_allclose(
        fql.flow_actions(state.config, params, obs, noises),
        jnp.clip(x, -1, 1),
        rtol=1e-5,
        atol=1e-6,
    )


def test_one_step_policy_prefers_the_better_mode_the_flow_keeps_both(trained):
    state, metrics, data = trained
    obs = data["observations"][:1000]
    good, bad = mode_fractions(fql.act(state, obs, jax.random.PRNGKey(0), m_inf=8, n=4))
    assert good > 0.4 and bad < 0.05, (good, bad)
    # The BC flow itself still imitates the data: both modes.
    noises = jax.random.normal(jax.random.PRNGKey(1), (1000, 2))
    flow_good, flow_bad = mode_fractions(
        fql.flow_actions(state.config, state.params["actor_bc_flow"], obs, noises)
    )
    assert flow_good > 0.2 and flow_bad > 0.2, (flow_good, flow_bad)
    q = fql.q_value(state, data["observations"][:512], data["actions"][:512])
    np.testing.assert_allclose(q, data["rewards"][:512], atol=0.25)


def test_act_is_the_one_step_policy_on_the_released_noise(trained):
    state, _, data = trained
    obs, key = data["observations"][:16], jax.random.PRNGKey(7)
    noises = jax.random.normal(jax.random.split(key)[0], (16, 2))
    expected = fql.onestep_actions(state.config, state.params["actor_onestep_flow"], obs, noises)
    np.testing.assert_allclose(fql.act(state, obs, key), expected, rtol=1e-6)
    assert float(jnp.abs(fql.act(state, obs, key)).max()) <= 1.0


def test_init_networks_and_target_copy():
    data = make_bandit_dataset(256)
    state = fql.init(jax.random.PRNGKey(0), data, fql.default_config("scene-play-v0") | SMALL)
    assert set(state.params) == {"critic", "actor_bc_flow", "actor_onestep_flow"}
    assert set(state.target_params) == {"critic"}
    np.testing.assert_array_equal(
        jax.tree_util.tree_leaves(state.params["critic"])[0],
        jax.tree_util.tree_leaves(state.target_params["critic"])[0],
    )
