"""IQL: the expectile and AWR pieces, per-environment flags, learning the bandit, determinism."""

import jax
import numpy as np
import pytest
from bandit import make_bandit_dataset, mode_fractions, train_on_bandit

from sorlab.agents import iql

SMALL = dict(actor_hidden_dims=(64, 64), value_hidden_dims=(64, 64))
STEPS = 1000


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


def test_missing_batch_key_is_named():
    batch = {k: v[:2] for k, v in make_bandit_dataset(8).items() if k != "masks"}
    with pytest.raises(ValueError, match="masks"):
        iql.init(jax.random.PRNGKey(0), batch, iql.default_config("cube-single-play-v0") | SMALL)
