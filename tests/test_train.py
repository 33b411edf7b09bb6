"""The scanned trainer: run directory, resume equivalence, NaN stop, --set, several seeds."""

from __future__ import annotations

import csv
import importlib.util
import json

import jax
import numpy as np
import pytest

from sorlab import cli
from sorlab.checkpoints import load_run
from sorlab.errors import DivergenceError, RunDirError, TrainError
from sorlab.training.loop import next_boundary, train, train_seeds
from sorlab.training.settings import RunSettings, SettingsError, get_agent

DATASET = "cube-single-play-v0"  # any OGBench name: default_config reads it
TINY = {
    "bc": ["actor_hidden_dims=[32,32]", "batch_size=64", "lr=1e-3"],
    # M = M_BTT = 4 and (where the agent has the switch) loops instead of unrolled Euler
    # steps: quick to compile.
    "sorl": ["actor_hidden_dims=[32,32]", "value_hidden_dims=[32,32]", "batch_size=32",
             "denoise_timesteps=4", "max_k_backprop=4", "unroll_steps=0"],
}  # fmt: skip
# The resumed run uses another chunk size where that costs little compile time.
RESUME_CHUNK = {"bc": 20, "sorl": 10}
# SORL is written by another engineer; the resume test covers it once it exists.
RESUME_AGENTS = [a for a in TINY if importlib.util.find_spec(f"sorlab.agents.{a}") is not None]


def tiny(agent: str) -> list[str]:
    """TINY[agent] without the keys this agent's config does not have."""
    keys = get_agent(agent).default_config("cube-single-play-singletask-task2-v0")
    return [item for item in TINY[agent] if item.split("=")[0] in keys]


OBS_DIM, ACTION_DIM = 28, 5  # cube-single's widths: a dataset must match its env's


def synthetic_dataset(size: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Transitions already in training form (rewards, masks, next_observations)."""
    rng = np.random.default_rng(seed)
    return {
        "observations": rng.normal(size=(size, OBS_DIM)).astype(np.float32),
        "actions": rng.uniform(-1, 1, size=(size, ACTION_DIM)).astype(np.float32),
        "rewards": (rng.random(size) < 0.5).astype(np.float32),
        "masks": np.zeros(size, np.float32),
        "terminals": np.ones(size, np.float32),
        "next_observations": rng.normal(size=(size, OBS_DIM)).astype(np.float32),
    }


@pytest.fixture
def dataset(tmp_path):
    path = tmp_path / "data" / f"{DATASET}.npz"
    path.parent.mkdir()
    np.savez(path, **synthetic_dataset(1024))
    return path


def settings(dataset, out, agent="bc", **kw) -> RunSettings:
    kw = {"seed": 1, "steps": 40, "chunk": 10, "log_interval": 10, "checkpoint_interval": 20, **kw}
    return RunSettings(
        agent=agent, dataset=str(dataset), task=2, out=str(out), progress=False,
        overrides=kw.pop("overrides", tiny(agent)), **kw,
    )  # fmt: skip


def read_csv(path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def leaves_equal(a, b) -> bool:
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    return len(la) == len(lb) and all(np.array_equal(x, y) for x, y in zip(la, lb, strict=True))


def test_run_directory_layout(dataset, tmp_path):
    out = tmp_path / "run"
    summary = train(settings(dataset, out, steps=40, log_interval=20))
    assert sorted(p.name for p in out.iterdir()) == [
        ".lock", "checkpoints", "config.json", "eval_curve.csv", "metrics.csv", "summary.json",
    ]  # fmt: skip
    assert sorted(int(p.name) for p in (out / "checkpoints").iterdir()) == [20, 40]
    rows = read_csv(out / "metrics.csv")
    assert [int(r["step"]) for r in rows] == [20, 40]
    assert list(rows[0])[:2] == ["step", "time_s"] and "actor/loss" in rows[0]
    assert all(np.isfinite(float(r["actor/loss"])) for r in rows)
    config = json.loads((out / "config.json").read_text())
    assert config["agent_config"]["actor_hidden_dims"] == [32, 32]
    assert config["agent_config"]["lr"] == 1e-3 and isinstance(config["agent_config"]["lr"], float)
    assert (config["dataset_name"], config["task"], config["seed"]) == (DATASET, 2, 1)
    assert json.loads((out / "summary.json").read_text()) == json.loads(json.dumps(summary))
    assert summary["steps"] == 40 and summary["updates_per_s"] > 0 and summary["final_eval"] is None

    agent, state, loaded = load_run(out)
    assert agent.__name__ == "sorlab.agents.bc" and loaded == config
    actions = agent.act(state, np.zeros((3, OBS_DIM), np.float32), jax.random.PRNGKey(0))
    assert actions.shape == (3, ACTION_DIM)
    _, older, _ = load_run(out, step=20)
    assert not leaves_equal(state.params, older.params)
    with pytest.raises(RunDirError, match=r"no checkpoint at step 30; it has \[20, 40\]"):
        load_run(out, step=30)


@pytest.mark.parametrize("agent", RESUME_AGENTS)
def test_resume_is_bitwise_equal_to_an_uninterrupted_run(dataset, tmp_path, agent):
    full, part = tmp_path / "full", tmp_path / "part"
    train(settings(dataset, full, agent, steps=40))
    train(settings(dataset, part, agent, steps=20))  # "interrupted" after 2 chunks
    train(settings(dataset, part, agent, steps=40, chunk=RESUME_CHUNK[agent]))  # resumes at 20
    _, a, _ = load_run(full)
    _, b, _ = load_run(part)
    assert leaves_equal(a, b)
    drop_time = lambda rows: [{k: v for k, v in r.items() if k != "time_s"} for r in rows]  # noqa: E731
    assert drop_time(read_csv(full / "metrics.csv")) == drop_time(read_csv(part / "metrics.csv"))
    assert json.loads((part / "summary.json").read_text())["resumed_from"] == 20


def test_resume_drops_rows_logged_after_the_checkpoint(dataset, tmp_path):
    out = tmp_path / "run"
    train(settings(dataset, out, steps=30, checkpoint_interval=20, keep_checkpoints=0))
    # Simulate a crash after step 30's log row but before its checkpoint.
    import shutil

    shutil.rmtree(out / "checkpoints" / "30")
    train(settings(dataset, out, steps=40, checkpoint_interval=20))
    assert [int(r["step"]) for r in read_csv(out / "metrics.csv")] == [10, 20, 30, 40]


def test_resume_refuses_a_different_run(dataset, tmp_path):
    out = tmp_path / "run"
    train(settings(dataset, out, steps=20))
    with pytest.raises(TrainError, match="differs in agent_config.lr"):
        train(settings(dataset, out, steps=40, overrides=[*TINY["bc"], "lr=0.5"]))
    with pytest.raises(TrainError, match="beyond --steps 10"):
        train(settings(dataset, out, steps=10))
    changed = settings(
        dataset, out, steps=20, overrides=[*TINY["bc"], "lr=0.5"], restart_if_changed=True
    )
    assert train(changed)["resumed_from"] == 0
    assert json.loads((out / "config.json").read_text())["agent_config"]["lr"] == 0.5


def test_nan_loss_stops_with_a_clear_error(dataset, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "--agent", "bc", "--dataset", str(dataset), "--task", "2", "--steps", "40",
            "--out", str(out), "--chunk", "10", "--no-progress", "--set", *TINY["bc"], "lr=1e30"]  # fmt: skip
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert "training diverged: non-finite actor/" in err and "at step 2;" in err
    assert "no checkpoint was written" in err
    assert not (out / "summary.json").exists() and not any((out / "checkpoints").iterdir())


def test_nan_keeps_the_last_good_checkpoint(dataset, tmp_path):
    out = tmp_path / "run"
    # Actions unclipped, so that the poisoned ones below reach the losses.
    train(settings(dataset, out, steps=20, action_clip_eps=0.0))
    # Poison the data: finite actions too large for float32 losses, so update 21 overflows.
    poisoned = synthetic_dataset(1024)
    poisoned["actions"][:] = 1e30
    np.savez(dataset, **poisoned)
    with pytest.raises(
        DivergenceError, match=r"non-finite actor/loss \((nan|inf)\) at step 21;.*step 20"
    ):
        train(settings(dataset, out, steps=40, action_clip_eps=0.0))
    assert sorted(int(p.name) for p in (out / "checkpoints").iterdir()) == [20]
    _, state, _ = load_run(out)
    assert all(np.isfinite(x).all() for x in jax.tree.leaves(state))


def test_set_unknown_key_names_it_and_lists_the_keys(dataset, tmp_path, capsys):
    argv = ["train", "--agent", "bc", "--dataset", str(dataset), "--task", "2", "--steps", "10",
            "--out", str(tmp_path / "run"), "--set", "lr=1e-3", "actr_lr=1"]  # fmt: skip
    assert cli.main(argv) == 2  # a usage error
    err = capsys.readouterr().err
    assert "unknown config key 'actr_lr' for agent 'bc'" in err
    assert "actor_hidden_dims" in err and "batch_size" in err
    assert not (tmp_path / "run").exists()


def test_unknown_agent_and_missing_dataset_are_errors(dataset, tmp_path):
    with pytest.raises(SettingsError, match="unknown agent 'nope'"):
        train(RunSettings(agent="nope", dataset=str(dataset), task=2, seed=1, steps=10, out="a"))
    missing = tmp_path / f"{DATASET}-missing" / f"{DATASET}.npz"
    with pytest.raises(TrainError, match=f"{DATASET}.npz: no such dataset file"):
        train(settings(missing, tmp_path / "b"))


def test_chunk_boundaries_fall_on_every_interval():
    assert next_boundary(0, 100, [30, 0, 25]) == 25
    assert next_boundary(25, 100, [30, 0, 25]) == 30
    assert next_boundary(90, 95, [30, 25]) == 95
    assert next_boundary(0, 100, [1000]) == 100


def test_several_seeds_match_separate_runs(dataset, tmp_path):
    summaries = train_seeds(settings(dataset, tmp_path / "v" / "seed{seed}", steps=20), [1, 2])
    assert [s["seed"] for s in summaries] == [1, 2]
    train(settings(dataset, tmp_path / "alone", seed=2, steps=20))
    _, together, config = load_run(tmp_path / "v" / "seed2")
    _, alone, _ = load_run(tmp_path / "alone")
    assert config["seed"] == 2
    for x, y in zip(jax.tree.leaves(together), jax.tree.leaves(alone), strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-6)
    _, seed1, _ = load_run(tmp_path / "v" / "seed1")
    assert not leaves_equal(seed1.params, alone.params)
    assert sorted(p.name for p in (tmp_path / "v" / "seed1").iterdir()) == sorted(
        p.name for p in (tmp_path / "alone").iterdir()
    )
    with pytest.raises(TrainError, match="must contain '\\{seed\\}'"):
        train_seeds(settings(dataset, tmp_path / "x", steps=20), [1, 2])


def test_ogbench_file_and_periodic_evaluation_in_the_real_environment(tmp_path):
    """A tiny regenerated OGBench file (relabelled by sorlab.data for task 2), BC trained on it
    and evaluated twice in the real cube-single env."""
    argv = ["data", "generate", DATASET, "--episodes", "2", "--episode-steps", "51",
            "--workers", "1", "--out", str(tmp_path), "--quiet"]  # fmt: skip
    assert cli.main(argv) == 0
    out = tmp_path / "run"
    path = tmp_path / f"{DATASET}.npz"
    from sorlab.training.cli import train as train_and_evaluate

    summary = train_and_evaluate(settings(path, out, steps=20, eval_interval=10, eval_episodes=2))
    config = json.loads((out / "config.json").read_text())
    assert (config["obs_dim"], config["action_dim"], config["num_transitions"]) == (28, 5, 100)
    rows = read_csv(out / "eval_curve.csv")
    assert [int(r["step"]) for r in rows] == [10, 20]
    assert list(rows[0]) == ["step", "success", "return", "eval_s", "time_s"]
    assert all(0.0 <= float(r["success"]) <= 1.0 and float(r["return"]) <= 0 for r in rows)
    assert summary["final_eval"]["episodes"] == 2
    assert summary["final_eval"]["success"] == float(rows[-1]["success"])


def test_periodic_evaluation_uses_the_agents_inference_steps():
    from sorlab.training.settings import eval_m_inf

    sorl, bc = get_agent("sorl"), get_agent("bc")
    config = sorl.default_config(DATASET)
    assert eval_m_inf(sorl, config, None) == config["denoise_timesteps"] == 8
    assert eval_m_inf(sorl, {**config, "denoise_timesteps": 16}, None) == 16
    assert eval_m_inf(bc, bc.default_config(DATASET), None) == 1
    assert eval_m_inf(sorl, config, 2) == 2
    with pytest.raises(TrainError, match="--eval-m-inf"):
        eval_m_inf(sorl, config, 0)


def test_seeds_at_different_steps_are_aligned_before_resuming_together(dataset, tmp_path):
    out = tmp_path / "v" / "seed{seed}"
    # Seed 1 alone reaches step 40 (checkpoints 20, 40); seed 2 alone stops at 20.
    train(settings(dataset, tmp_path / "v" / "seed1", seed=1, steps=40))
    train(settings(dataset, tmp_path / "v" / "seed2", seed=2, steps=20))
    with pytest.raises(TrainError, match="common to all seeds"):
        train_seeds(settings(dataset, out, steps=40), [1, 2])
    summaries = train_seeds(settings(dataset, out, steps=40, restart_if_changed=True), [1, 2])
    assert [s["resumed_from"] for s in summaries] == [20, 20]
    train_seeds(settings(dataset, tmp_path / "w" / "seed{seed}", steps=40), [1, 2])
    for seed in (1, 2):
        _, resumed, _ = load_run(tmp_path / "v" / f"seed{seed}")
        _, fresh, _ = load_run(tmp_path / "w" / f"seed{seed}")
        for x, y in zip(jax.tree.leaves(resumed), jax.tree.leaves(fresh), strict=True):
            np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-6)
        steps = [int(r["step"]) for r in read_csv(tmp_path / "v" / f"seed{seed}" / "metrics.csv")]
        assert steps == [10, 20, 30, 40]
    # A seed added to the group shares no checkpoint with the others: all start afresh.
    summaries = train_seeds(settings(dataset, out, steps=40, restart_if_changed=True), [1, 2, 3])
    assert [s["resumed_from"] for s in summaries] == [0, 0, 0]


class RecordingEvaluator:
    """A stand-in for the real evaluator: records the steps it is called at."""

    def __init__(self):
        self.calls = 0

    def check(self, agent, agent_config, dataset, m_inf):
        pass

    def __call__(self, agent, state, config, episodes):
        self.calls += 1
        return {"success": 0.5, "return": -1.0}


@pytest.mark.parametrize(("interval", "steps"), [(None, []), (0, [40]), (20, [20, 40])])
def test_eval_interval_zero_evaluates_only_at_the_end(dataset, tmp_path, interval, steps):
    """The CLI's `--eval-interval 0` means what the workflow's `train.eval_interval: 0` means;
    without the flag there is no periodic evaluation."""
    out = tmp_path / "run"
    evaluator = RecordingEvaluator()
    summary = train(settings(dataset, out, steps=40, eval_interval=interval), evaluator)
    assert [int(r["step"]) for r in read_csv(out / "eval_curve.csv")] == steps
    assert evaluator.calls == len(steps)
    assert (summary["final_eval"] is None) == (not steps)


def test_periodic_evaluation_needs_an_evaluator(dataset, tmp_path):
    with pytest.raises(SettingsError, match="no evaluator"):
        train(settings(dataset, tmp_path / "run", eval_interval=0))
    assert not (tmp_path / "run").exists()


def test_cli_defaults_are_the_run_settings_defaults():
    import argparse
    from dataclasses import fields

    from sorlab.training.cli import add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    required = ["--agent", "bc", "--dataset", "d.npz", "--task", "2", "--steps", "9", "--out", "o"]
    args = parser.parse_args(required)
    parsed = RunSettings(**{f.name: getattr(args, f.name) for f in fields(RunSettings)})
    assert parsed == RunSettings(agent="bc", dataset="d.npz", task=2, steps=9, out="o")
