"""Gaussian BC: log-likelihood maths, imitation of the bandit data, determinism."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from bandit import ACTION_DIM, OBS_DIM, make_bandit_dataset, mode_fractions
from jax.scipy.stats import norm

from sorlab.agents import bc
from sorlab.data.transitions import load_dataset
from sorlab.training.runner import ChunkRunner, root_keys

TINY = {"actor_hidden_dims": (64, 64), "lr": 3e-3, "batch_size": 256}


def _config(**overrides) -> dict:
    return {**bc.default_config("cube-single-play-singletask-task2-v0"), **TINY, **overrides}


def _train(dataset: dict, steps: int, seed: int = 0, **overrides):
    """Train through the trainer's scanned chunk (the code path of `sorlab train`)."""
    data = {k: jnp.asarray(v) for k, v in dataset.items()}
    data["next_actions"] = data["actions"]
    config = _config(**overrides)
    init_key, train_key = root_keys(seed)
    state = bc.init(init_key, {k: v[:1] for k, v in data.items()}, config)
    state, metrics, finite = ChunkRunner(bc, config["batch_size"])(steps, state, data, train_key, 0)
    assert bool(finite)
    return state, jax.device_get(metrics)


def test_default_config_matches_the_papers_bc():
    config = bc.default_config("cube-single-play-singletask-task2-v0")
    assert config["actor_hidden_dims"] == (512, 512, 512, 512)
    assert config["lr"] == 3e-4 and config["batch_size"] == 256
    assert config["const_std"] is False  # learned state-independent log-std


def test_loss_is_the_negative_log_likelihood_of_the_batch():
    data = make_bandit_dataset(64, seed=1)
    config = _config(actor_hidden_dims=(16,))
    state = bc.init(jax.random.PRNGKey(0), data, config)
    # A non-zero log-std so that the std term is exercised.
    state = state.replace(params={**state.params, "log_stds": jnp.array([0.3, -0.7])})
    mean, log_std = bc.distribution(state, data["observations"])
    np.testing.assert_allclose(log_std[0], [0.3, -0.7])
    expected = -norm.logpdf(data["actions"], mean, jnp.exp(log_std)).sum(-1).mean()
    _, metrics = bc.update(state, data, jax.random.PRNGKey(1))
    np.testing.assert_allclose(metrics["actor/loss"], expected, rtol=1e-5)
    np.testing.assert_allclose(metrics["actor/std"], np.exp([0.3, -0.7]).mean(), rtol=1e-5)


def test_log_std_is_clipped():
    config = _config(actor_hidden_dims=(8,), log_std_min=-1.0, log_std_max=0.5)
    data = make_bandit_dataset(8)
    state = bc.init(jax.random.PRNGKey(0), data, config)
    state = state.replace(params={**state.params, "log_stds": jnp.array([-9.0, 9.0])})
    _, log_std = bc.distribution(state, data["observations"])
    np.testing.assert_allclose(log_std[0], [-1.0, 0.5])


def test_imitates_the_bimodal_bandit_data():
    """A Gaussian fit of the two equal modes: mean near 0, std near the data's (~0.6), and
    samples that reach both modes equally; the mode (what `act` returns) lies between them."""
    data = make_bandit_dataset(4096, seed=0)
    state, metrics = _train(data, 1500)
    assert metrics["actor/loss"][-100:].mean() < metrics["actor/loss"][:100].mean()
    obs = make_bandit_dataset(2000, seed=5)["observations"]
    mean, log_std = bc.distribution(state, obs)
    data_std = data["actions"].std(0)
    np.testing.assert_allclose(np.exp(log_std[0]), data_std, atol=0.08)
    assert np.abs(np.asarray(mean).mean(0)).max() < 0.1
    samples = bc.sample_actions(state, obs, jax.random.PRNGKey(3))
    good, bad = mode_fractions(samples)
    # Exact Gaussian N(0, 0.6^2) per dim puts ~5.8% of samples near each mode.
    assert good > 0.03 and bad > 0.03 and abs(good - bad) < 0.03
    actions = bc.act(state, obs, jax.random.PRNGKey(4), m_inf=4, n=8)
    assert actions.shape == (2000, ACTION_DIM)
    assert max(mode_fractions(actions)) < 0.02


def test_recovers_a_state_dependent_action():
    rng = np.random.default_rng(0)
    data = make_bandit_dataset(4096, seed=2)
    weights = rng.normal(size=(OBS_DIM, ACTION_DIM)) / 2
    data["actions"] = np.tanh(data["observations"] @ weights).astype(np.float32)
    state, _ = _train(data, 1500)
    test = make_bandit_dataset(500, seed=9)["observations"]
    actions = np.asarray(bc.act(state, test, jax.random.PRNGKey(0)))
    assert np.abs(actions).max() <= 1.0
    assert np.mean((actions - np.tanh(test @ weights)) ** 2) < 0.01


def test_trainer_loads_a_relabelled_npz(tmp_path):
    path = tmp_path / "cube-single-play-v0.npz"
    rng = np.random.default_rng(0)
    arrays = {  # cube-single's widths (a dataset must match its env's)
        "observations": rng.normal(size=(16, 28)),
        "actions": rng.uniform(-1, 1, size=(16, 5)),
        "rewards": np.zeros(16),
        "masks": np.ones(16),
        "next_observations": rng.normal(size=(16, 28)),
    }
    np.savez(path, **{k: v.astype(np.float32) for k, v in arrays.items()})
    data = load_dataset(path, task=2)
    assert set(data) >= {
        "observations",
        "actions",
        "rewards",
        "masks",
        "next_observations",
        "next_actions",
    }
    np.testing.assert_array_equal(data["next_actions"][:-1], data["actions"][1:])
    with pytest.raises(Exception, match="no such dataset file"):
        load_dataset(tmp_path / "missing.npz", task=2)


def test_trainer_clips_dataset_actions_like_the_released_code(tmp_path):
    path = tmp_path / "cube-single-play-v0.npz"
    rng = np.random.default_rng(0)
    arrays = {  # cube-single's widths
        "observations": rng.normal(size=(16, 28)),
        "actions": rng.uniform(-1, 1, size=(16, 5)),
        "rewards": np.zeros(16),
        "masks": np.ones(16),
        "next_observations": rng.normal(size=(16, 28)),
    }
    arrays["actions"][:4] = 1.0
    arrays["actions"][4:8] = -1.0
    arrays = {k: v.astype(np.float32) for k, v in arrays.items()}
    np.savez(path, **arrays)
    clipped = load_dataset(path, task=2)
    assert clipped["actions"].max() == np.float32(1 - 1e-5)
    assert clipped["actions"].min() == np.float32(-1 + 1e-5)
    np.testing.assert_array_equal(
        clipped["actions"][8:], arrays["actions"][8:].clip(-1 + 1e-5, 1 - 1e-5)
    )
    raw = load_dataset(path, task=2, action_clip_eps=0)
    np.testing.assert_array_equal(raw["actions"], arrays["actions"])
