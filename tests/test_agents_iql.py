"""IQL: the expectile and AWR pieces, per-environment flags, learning the bandit, determinism."""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from bandit import make_bandit_dataset, mode_fractions

from sorlab.agents import iql

SMALL = dict(actor_hidden_dims=(64, 64), value_hidden_dims=(64, 64))
STEPS = 1000


@partial(jax.jit, static_argnames=("agent", "steps", "batch_size"))
def _scan_updates(agent, state, data, key, steps, batch_size):
    """`steps` updates on batches drawn on the device (as the trainer does)."""
    size = data["observations"].shape[0]

    def body(state, key):
        idx_key, update_key = jax.random.split(key)
        idx = jax.random.randint(idx_key, (batch_size,), 0, size)
        return agent.update(state, {k: v[idx] for k, v in data.items()}, update_key)

    return jax.lax.scan(body, state, jax.random.split(key, steps))


def train_on_bandit(agent, config, steps, seed, batch_size=64):
    data = {k: jnp.asarray(v) for k, v in make_bandit_dataset().items()}
    data["next_actions"] = data["actions"]  # unused by the bandit (masks are 0)
    state = agent.init(jax.random.PRNGKey(seed), {k: v[:2] for k, v in data.items()}, config)
    state, metrics = _scan_updates(
        agent, state, data, jax.random.PRNGKey(seed + 1000), steps, batch_size
    )
    return state, {k: float(v[-1]) for k, v in metrics.items()}, data


def test_expectile_loss_weights_each_side():
    diff = jnp.array([2.0, -2.0, 0.0])
    loss = iql.expectile_loss(diff, diff, 0.9)
    np.testing.assert_allclose(loss, [0.9 * 4, 0.1 * 4, 0.0], rtol=1e-6)
    # Its minimiser over a constant v is the 0.9-expectile: for data {0, 1} in equal measure
    # that is 0.9 (0.9 * (1 - v) = 0.1 * v).
    grid = jnp.linspace(0, 1, 1001)
    data = jnp.array([0.0, 1.0])
    total = jax.vmap(lambda v: iql.expectile_loss(data - v, data - v, 0.9).mean())(grid)
    assert float(grid[jnp.argmin(total)]) == pytest.approx(0.9, abs=1e-3)


def test_awr_weights_exponentiate_and_clip():
    adv = jnp.array([-1.0, 0.0, 0.2, 10.0])
    w = iql.awr_weights(adv, 3.0)
    np.testing.assert_allclose(w[:3], np.exp(3.0 * np.array([-1.0, 0.0, 0.2])), rtol=1e-6)
    assert float(w[3]) == 100.0


def test_default_config_follows_the_papers_flags():
    hm = iql.default_config("humanoidmaze-medium-navigate-singletask-task1-v0")
    assert (hm["alpha"], hm["discount"], hm["expectile"]) == (10.0, 0.995, 0.9)
    cube = iql.default_config("cube-single-play-v0")
    assert (cube["alpha"], cube["discount"]) == (1.0, 0.99)
    # FQL paper, App. E.2: 4 x 256 on state-based manipulation, 4 x 512 elsewhere.
    assert cube["actor_hidden_dims"] == (256,) * 4 == cube["value_hidden_dims"]
    assert hm["actor_hidden_dims"] == (512,) * 4 and cube["batch_size"] == 256
    with pytest.warns(UserWarning, match="pointmaze"):
        assert iql.default_config("pointmaze-medium-navigate-v0")["alpha"] == 10.0


@pytest.fixture(scope="module")
def trained():
    config = iql.default_config("antmaze-large-navigate-v0") | SMALL | dict(lr=1e-3)  # alpha 10
    return train_on_bandit(iql, config, STEPS, seed=0)


def test_learns_the_better_mode_and_the_expectile_value(trained):
    state, metrics, data = trained
    actions = iql.act(state, data["observations"][:1000], jax.random.PRNGKey(0), m_inf=4, n=8)
    good, bad = mode_fractions(actions)
    assert good > 0.9 and bad < 0.02, (good, bad)
    # Q(s, a) = r, so V should approach the 0.9-expectile of {0, 1} = 0.9.
    v = iql.networks(state.config, 2)["value"].apply(
        {"params": state.params["value"]}, data["observations"]
    )
    assert float(v.mean()) == pytest.approx(0.9, abs=0.1)
    q = iql.q_value(state, data["observations"][:512], data["actions"][:512])
    np.testing.assert_allclose(q, data["rewards"][:512], atol=0.25)
    assert all(np.isfinite(v) for v in metrics.values())


def test_same_seed_same_params_other_seed_other_params(trained):
    state, _, _ = trained
    config = dict(state.config)
    again, _, _ = train_on_bandit(iql, config, STEPS, seed=0)
    other, _, _ = train_on_bandit(iql, config, STEPS, seed=1)
    same = jax.tree_util.tree_map(np.array_equal, state.params, again.params)
    assert all(jax.tree_util.tree_leaves(same))
    assert not np.array_equal(
        state.params["actor"]["Dense_0"]["kernel"], other.params["actor"]["Dense_0"]["kernel"]
    )


def test_missing_batch_key_is_named():
    batch = {k: v[:2] for k, v in make_bandit_dataset(8).items() if k != "masks"}
    with pytest.raises(ValueError, match="masks"):
        iql.init(jax.random.PRNGKey(0), batch, iql.default_config("cube-single-play-v0") | SMALL)
