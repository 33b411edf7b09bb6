"""SORL seeds grouped as one program with shared_k_across_seeds: side by side, one k branch per
update, and each seed equal to its own single-seed run (small networks)."""

from __future__ import annotations

import csv

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_sorl import random_batch, small_config
from test_train import dataset, leaves_equal, settings, tiny  # noqa: F401 (dataset: fixture)

from sorlab.agents import sorl
from sorlab.bench import group_cost
from sorlab.checkpoints import load_run
from sorlab.training.loop import train, train_seeds

SEEDS = 3  # not the size of any other axis (2 critics, batch 64, ...)


def stacked_states(config: dict, batch: dict, seeds: int = SEEDS):
    states = [sorl.init(jax.random.PRNGKey(seed), batch, config) for seed in range(seeds)]
    return states, jax.tree.map(lambda *x: jnp.stack(x), *states)


def test_shared_k_group_update_equals_single_seed_updates():
    config = small_config(shared_k_across_seeds=True, max_k_backprop=4)
    batch = {k: jnp.asarray(v) for k, v in random_batch(64).items()}
    singles, group = stacked_states(config, batch)
    group_update = jax.jit(jax.vmap(sorl.update, in_axes=(0, None, 0)))
    single_update = jax.jit(sorl.update)
    ks = set()
    for step in range(4):
        keys = jax.random.split(jax.random.PRNGKey(100 + step), SEEDS)
        group, info = group_update(group, batch, keys)
        critic_k, actor_k = (2 ** int(i) for i in sorl.shared_k_indices(config, step))
        np.testing.assert_array_equal(info["critic/k"], [critic_k] * SEEDS)
        np.testing.assert_array_equal(info["actor/k"], [actor_k] * SEEDS)
        ks.add((critic_k, actor_k))
        for i in range(SEEDS):
            singles[i], alone = single_update(singles[i], batch, keys[i])
            assert (int(alone["critic/k"]), int(alone["actor/k"])) == (critic_k, actor_k)
    assert len(ks) > 1  # the schedule moves with the step
    for i in range(SEEDS):
        for a, b in zip(jax.tree.leaves(group), jax.tree.leaves(singles[i]), strict=True):
            np.testing.assert_allclose(a[i], b, rtol=1e-5, atol=1e-6)
    # Only k is shared: the seeds' own draws still differ.
    assert not np.allclose(info["actor/mse"][0], info["actor/mse"][1])


def test_group_program_runs_one_branch_for_all_seeds_side_by_side():
    """XLA's cost analysis and HLO of the compiled group-update: with shared k, no loop over the
    seeds, the switch kept, and the work of one seed's update times the seeds; the default runs
    the seeds in a loop; a plain vmap of the per-seed draw would run every branch."""
    batch = {k: jnp.asarray(v) for k, v in random_batch(64).items()}
    keys = jax.random.split(jax.random.PRNGKey(9), SEEDS)
    shared_config = small_config(shared_k_across_seeds=True, max_k_backprop=4)
    states, group = stacked_states(shared_config, batch)
    single = group_cost(sorl.update, *stacked_states(shared_config, batch, 1)[1:], batch, keys[:1])
    shared = group_cost(sorl.update, group, batch, keys)
    assert not shared["seed_loop"] and shared["conditionals"] == 2  # critic k, actor k
    assert shared["group_gflop"] == pytest.approx(SEEDS * single["group_gflop"], rel=0.02)

    _, default_group = stacked_states(small_config(max_k_backprop=4), batch)
    default = group_cost(sorl.update, default_group, batch, keys)
    assert default["seed_loop"] and default["xla_group_gflop"] < 1.1 * single["group_gflop"]
    assert default["group_gflop"] == pytest.approx(shared["group_gflop"], rel=0.02)

    every_branch = group_cost(
        lambda s, b, r: sorl._update(s, b, r, s.step), default_group, batch, keys
    )
    assert every_branch["conditionals"] == 0 and not every_branch["seed_loop"]
    assert every_branch["group_gflop"] > 1.5 * shared["group_gflop"]


def k_column(run_dir, name: str) -> list[str]:
    with open(run_dir / "metrics.csv", newline="") as f:
        return [row[name] for row in csv.DictReader(f)]


def test_grouped_training_equals_single_seed_runs(dataset, tmp_path):  # noqa: F811
    """`sorlab train --seeds 1,2 --set shared_k_across_seeds=true`: each seed's checkpoint and
    k schedule equal those of the same seed trained alone with the same setting."""
    overrides = [*tiny("sorl"), "shared_k_across_seeds=true"]
    run = dict(agent="sorl", steps=20, overrides=overrides)
    train_seeds(settings(dataset, tmp_path / "g" / "seed{seed}", **run), [1, 2])
    train(settings(dataset, tmp_path / "alone", seed=2, **run))
    _, together, config = load_run(tmp_path / "g" / "seed2")
    _, alone, _ = load_run(tmp_path / "alone")
    assert config["agent_config"]["shared_k_across_seeds"] is True
    for x, y in zip(jax.tree.leaves(together), jax.tree.leaves(alone), strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-6)
    for name in ("critic/k", "actor/k"):
        assert k_column(tmp_path / "g" / "seed1", name) == k_column(tmp_path / "alone", name)
    _, seed1, _ = load_run(tmp_path / "g" / "seed1")
    assert not leaves_equal(seed1.params, alone.params)


def test_shared_k_setting_must_be_a_bool():
    with pytest.raises(ValueError, match="shared_k_across_seeds must be true or false"):
        sorl.check_config(small_config(shared_k_across_seeds="yes"))
