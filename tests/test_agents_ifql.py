"""IFQL: selection of flow candidates by value (batched pairing), learning the bandit."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from bandit import mode_fractions, train_on_bandit

from sorlab.agents import ifql

SMALL = dict(actor_hidden_dims=(64, 64), value_hidden_dims=(64, 64))
STEPS = 2000


def test_select_by_value_takes_each_rows_best_candidate():
    candidates = jnp.arange(2 * 3 * 2, dtype=jnp.float32).reshape(2, 3, 2)
    q = jnp.array([[0.1, 0.9, 0.2], [5.0, -1.0, 4.0]])
    np.testing.assert_array_equal(ifql.select_by_value(candidates, q), [[2.0, 3.0], [6.0, 7.0]])
    # Batched selection equals selecting one observation at a time.
    rows = [ifql.select_by_value(candidates[i : i + 1], q[i : i + 1])[0] for i in range(2)]
    np.testing.assert_array_equal(ifql.select_by_value(candidates, q), np.stack(rows))


def test_default_config_per_environment():
    config = ifql.default_config("humanoidmaze-medium-navigate-v0")
    assert (
        config["num_samples"],
        config["expectile"],
        config["flow_steps"],
        config["discount"],
    ) == (32, 0.9, 10, 0.995)
    assert ifql.default_config("cube-single-play-v0")["discount"] == 0.99
    assert ifql.default_config("antsoccer-arena-navigate-singletask-task4-v0")["num_samples"] == 64


@pytest.fixture(scope="module")
def trained():
    config = ifql.default_config("scene-play-v0") | SMALL | dict(lr=1e-3)
    return train_on_bandit(ifql, config, STEPS, seed=0)


def test_acts_with_the_best_candidate_of_its_own_observation(trained):
    state, _, data = trained
    obs, key = data["observations"][:8], jax.random.PRNGKey(4)
    cands = ifql.candidates(state, obs, key)
    assert cands.shape == (8, 32, 2)
    # Score every candidate against its own observation, built row by row.
    obs_rows = np.repeat(np.asarray(obs), 32, axis=0)
    q = ifql.q_value(state, obs_rows, np.asarray(cands).reshape(-1, 2)).reshape(8, 32)
    expected = np.asarray(cands)[np.arange(8), np.argmax(np.asarray(q), axis=1)]
    np.testing.assert_allclose(ifql.act(state, obs, key, m_inf=1, n=1), expected, rtol=1e-6)


def test_rejection_by_value_prefers_the_better_mode(trained):
    state, metrics, data = trained
    obs = data["observations"][:1000]
    good, bad = mode_fractions(ifql.act(state, obs, jax.random.PRNGKey(0)))
    assert good > 0.85 and bad < 0.02, (good, bad)
    # The flow's own samples cover both modes; only the selection prefers the good one.
    flat = ifql.candidates(state, obs[:100], jax.random.PRNGKey(1)).reshape(-1, 2)
    flow_good, flow_bad = mode_fractions(flat)
    assert flow_good > 0.2 and flow_bad > 0.2, (flow_good, flow_bad)
    assert metrics["value/v_mean"] == pytest.approx(0.9, abs=0.1)
