"""sorlab.evaluation on the real cube-single env with a small (untrained) SORL policy."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from sorlab.agents import sorl
from sorlab.evaluation import envpool
from sorlab.evaluation.cli import run_settings
from sorlab.evaluation.policy import evaluate_policy, start_seed

DATASET, TASK = "cube-single-play-v0", 2
EPISODES = 4


@pytest.fixture(scope="module")
def state():
    config = sorl.default_config(envpool.env_name(DATASET, TASK))
    config.update(actor_hidden_dims=(32, 32), value_hidden_dims=(32, 32))
    batch = {
        "observations": np.zeros((1, 28), np.float32),
        "actions": np.zeros((1, 5), np.float32),
        "rewards": np.zeros(1, np.float32),
        "masks": np.ones(1, np.float32),
        "next_observations": np.zeros((1, 28), np.float32),
        "terminals": np.zeros(1, np.float32),
    }
    yield sorl.init(jax.random.key(0), batch, config)
    envpool.close_pools()


def test_vectorised_matches_one_episode_at_a_time(state):
    # Episodes side by side in two worker processes, two alternating groups of slots...
    vectorised = evaluate_policy(
        sorl, state, DATASET, TASK, EPISODES, seed=3, workers=2, m_inf=2, n=2
    )
    # ...against one env in this process running the episodes one after another.
    sequential = evaluate_policy(
        sorl,
        state,
        DATASET,
        TASK,
        EPISODES,
        seed=3,
        workers=0,
        num_envs=1,
        pipeline=False,
        m_inf=2,
        n=2,
    )
    assert vectorised["per_episode"] == sequential["per_episode"]
    assert vectorised["success"] == sequential["success"]
    assert vectorised["return"] == sequential["return"]
    # The episodes are real, different rollouts (different seeds, full-length untrained runs).
    final = vectorised["per_episode"]["final_obs_sum"]
    assert len(set(final)) == EPISODES
    assert vectorised["per_episode"]["length"] == [200] * EPISODES


def test_seed_changes_episodes_and_repeats(state):
    a = evaluate_policy(sorl, state, DATASET, TASK, 3, seed=0, workers=0, m_inf=1)
    b = evaluate_policy(sorl, state, DATASET, TASK, 3, seed=0, workers=0, m_inf=1)
    c = evaluate_policy(sorl, state, DATASET, TASK, 3, seed=1, workers=0, m_inf=1)
    assert a["per_episode"] == b["per_episode"]
    assert a["per_episode"]["final_obs_sum"] != c["per_episode"]["final_obs_sum"]
    # Episode i uses seed + i: seed 1's first episode is seed 0's second one.
    assert c["per_episode"]["final_obs_sum"][:2] == a["per_episode"]["final_obs_sum"][1:]


def test_start_states_differ_across_training_seeds_and_are_shared_within_one():
    """A run's start states come from its training seed and task only: seeds 1 and 2 reset
    their episodes to other states (a mean over seeds averages over start states), while every
    agent trained with seed 1 resets to the same ones (comparisons between agents stay paired)."""
    bases = {(seed, task): start_seed(seed, task) for seed in range(1, 9) for task in range(1, 6)}
    assert len(set(bases.values())) == len(bases)  # every (seed, task) its own starts
    assert all(0 <= b < 2**30 for b in bases.values())  # seed + episode stays an int32
    assert start_seed(1, TASK) == start_seed(1, TASK)  # a function of (seed, task) alone
    env = envpool.make_env(DATASET, TASK)
    try:
        starts = {
            seed: [env.reset(seed=start_seed(seed, TASK) + i)[0] for i in range(3)]
            for seed in (1, 2)
        }
        again = [env.reset(seed=start_seed(1, TASK) + i)[0] for i in range(3)]
    finally:
        env.close()
    for a, b in zip(starts[1], starts[2], strict=True):
        assert not np.array_equal(a, b)
    for a, b in zip(starts[1], again, strict=True):
        np.testing.assert_array_equal(a, b)


def test_result_fields(state):
    result = evaluate_policy(sorl, state, DATASET, TASK, 2, seed=0, workers=1, m_inf=4, n=1)
    for key in ("success", "return", "ms_per_action", "env_ms_per_step", "wall_s", "length"):
        assert isinstance(result[key], float), key
    assert 0.0 <= result["success"] <= 1.0
    assert result["ms_per_action"] > 0
    assert result["episodes"] == 2 and result["m_inf"] == 4 and result["n"] == 1
    assert result["env"] == "cube-single-play-singletask-task2-v0"
    assert len(result["per_episode"]["success"]) == 2
    assert result["per_episode"]["reset_seed"] == [0, 1]  # episode i resets with seed + i
    # Untrained policy on cube-single: the episode runs to the time limit, reward -1 per step.
    assert result["return"] == -200.0


def test_bad_arguments_are_named(state):
    with pytest.raises(ValueError, match="episodes"):
        evaluate_policy(sorl, state, DATASET, TASK, 0, seed=0)
    with pytest.raises(ValueError, match="num_envs"):
        evaluate_policy(sorl, state, DATASET, TASK, 2, seed=0, num_envs=0)


def test_run_settings_reads_trainer_config():
    config = {"agent": "sorl", "dataset": "resources/datasets/cube-single-play-v0.npz", "task": 2}
    assert run_settings(config) == ("cube-single-play-v0", 2)
    assert run_settings({"dataset_name": "scene-play-v0", "task": 3}) == ("scene-play-v0", 3)
    with pytest.raises(KeyError, match="task"):
        run_settings({"dataset": "x.npz"})


def test_cli_names_a_bad_argument_or_run_directory(tmp_path, capsys):
    from sorlab import cli

    assert cli.main(["evaluate", str(tmp_path), "--num-envs", "0"]) == 2
    assert "--num-envs must be >= 1" in capsys.readouterr().err
    assert cli.main(["evaluate", str(tmp_path / "nope")]) == 1  # an input error
    assert "is not a run directory" in capsys.readouterr().err
