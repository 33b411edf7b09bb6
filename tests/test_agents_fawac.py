"""FAWAC: advantage weights, weighted flow matching, Euler sampling; learns the bandit."""

import jax
import numpy as np
from bandit import mode_fractions, train_chunks

from sorlab.agents import fawac

SMALL = dict(actor_hidden_dims=(64, 64), value_hidden_dims=(64, 64))
# One config for all training tests so they share one compilation.
BANDIT = {**fawac.default_config("bandit"), **SMALL, "alpha": 5.0, "flow_steps": 5}


def test_default_config_per_environment():
    assert fawac.default_config("antmaze-giant-navigate-v0")["discount"] == 0.995
    assert fawac.default_config("antmaze-large-navigate-singletask-task1-v0")["q_agg"] == "min"
    cfg = fawac.default_config("cube-double-play-v0")
    assert (cfg["alpha"], cfg["batch_size"], cfg["lr"]) == (0.3, 256, 3e-4)
    assert cfg["actor_hidden_dims"] == (512,) * 4 and cfg["layer_norm"] is True


def test_fawac_learns_bandit_and_prefers_good_mode():
    state, info, data = train_chunks(fawac, BANDIT, chunks=24)
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
