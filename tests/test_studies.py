"""The studies' maths (Monte-Carlo returns, Q-vs-return statistics, episode subsampling) and
the study tables and figures on hand-made run directories."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from sorlab.data import episode_bounds, subsample_episodes
from sorlab.errors import ResultsError
from sorlab.results import load_runs
from sorlab.studies import study_outputs
from sorlab.studies.maths import bias_correlation, mc_returns, truncation_ok
from sorlab.studies.workflow import base_agent, check_variants, study_inputs, value_args


def test_episode_bounds_split_at_terminals_and_keep_a_cut_off_tail():
    assert episode_bounds(np.array([0, 0, 1, 0, 1])) == [(0, 3), (3, 5)]
    assert episode_bounds(np.array([0, 1, 0, 0])) == [(0, 2), (2, 4)]
    assert episode_bounds(np.array([1, 1])) == [(0, 1), (1, 2)]


def test_mc_returns_by_hand():
    # Two episodes; in the first the chain ends at row 1 (mask 0: the task was solved there).
    rewards = np.array([-1.0, 0.0, -1.0, -1.0, -1.0])
    masks = np.array([1.0, 0.0, 1.0, 1.0, 1.0])
    terminals = np.array([0, 0, 1, 0, 1])
    g, exact = mc_returns(rewards, masks, terminals, 0.5)
    # Row 2 is an episode's last row: G = r. Row 1: mask 0, G = r. Row 0: -1 + 0.5 * 0.
    # Second episode: G4 = -1, G3 = -1 + 0.5 * -1.
    np.testing.assert_allclose(g, [-1.0, 0.0, -1.0, -1.5, -1.0])
    np.testing.assert_array_equal(exact, [True, True, False, False, False])


def test_mc_returns_match_the_discounted_sum():
    rng = np.random.default_rng(0)
    r = rng.normal(size=50)
    g, _ = mc_returns(r, np.ones(50), np.eye(1, 50, 49)[0], 0.9)
    assert g[0] == pytest.approx(np.sum(r * 0.9 ** np.arange(50)))
    # Returns obey the Bellman equation G_t = r_t + discount * G_{t+1} inside an episode.
    np.testing.assert_allclose(g[:-1], r[:-1] + 0.9 * g[1:])


def test_mc_returns_reject_bad_input():
    with pytest.raises(ValueError, match="differ in length"):
        mc_returns(np.zeros(3), np.ones(2), np.zeros(3), 0.9)
    with pytest.raises(ValueError, match="discount"):
        mc_returns(np.zeros(3), np.ones(3), np.zeros(3), 1.5)


def test_truncation_ok_marks_rows_far_from_the_cut_off():
    terminals = np.eye(1, 10, 9)[0]
    _, exact = mc_returns(np.zeros(10), np.ones(10), terminals, 0.5)
    ok = truncation_ok(terminals, exact, 0.5, tol=0.05)
    # 0.5**k <= 0.05 needs k >= 5 steps left: rows 0..5 (10 - t >= 5).
    np.testing.assert_array_equal(ok, np.arange(10) <= 5)


def test_bias_and_correlations():
    g = np.array([-3.0, -2.0, -1.0, 0.0])
    s = bias_correlation(g + 2.0, g)
    assert s["bias"] == pytest.approx(2.0) and s["rmse"] == pytest.approx(2.0)
    assert s["pearson"] == pytest.approx(1.0) and s["spearman"] == pytest.approx(1.0)
    s = bias_correlation(-(g**3), g)  # monotone decreasing, not linear
    assert s["spearman"] == pytest.approx(-1.0) and -1.0 < s["pearson"] < -0.8
    s = bias_correlation(np.ones(4), g)  # a constant critic has no correlation
    assert math.isnan(s["pearson"]) and s["bias"] == pytest.approx(2.5)
    s = bias_correlation(np.array([np.nan, 1.0, 2.0]), np.array([5.0, 1.0, 2.0]))
    assert s["n"] == 2 and s["bias"] == 0.0


def _dataset(episode_lengths):
    terminals = np.concatenate([np.eye(1, n, n - 1)[0] for n in episode_lengths])
    ids = np.concatenate([np.full(n, i) for i, n in enumerate(episode_lengths)])
    return {"terminals": terminals, "observations": ids[:, None].astype(np.float32), "meta": "x"}


def test_subsample_keeps_whole_episodes_by_seed():
    data = _dataset([3, 4, 5, 6, 7, 8, 9, 10, 11, 12])
    sub = subsample_episodes(data, 0.3, seed=1)
    kept = np.unique(sub["observations"][:, 0]).astype(int)
    assert len(kept) == 3
    for i in kept:  # each kept episode is complete, in order, and ends with its terminal
        rows = sub["observations"][:, 0] == i
        assert rows.sum() == 3 + i and sub["terminals"][rows][-1] == 1
    assert sub["terminals"].sum() == 3 and sub["meta"] == "x"
    again = subsample_episodes(data, 0.3, seed=1)
    np.testing.assert_array_equal(again["observations"], sub["observations"])
    others = {
        tuple(np.unique(subsample_episodes(data, 0.3, seed=s)["observations"])) for s in range(8)
    }
    assert len(others) > 1  # the seed chooses the episodes
    assert len(subsample_episodes(data, 1.0, seed=0)["terminals"]) == len(data["terminals"])
    assert subsample_episodes(data, 0.01, seed=0)["terminals"].sum() == 1  # at least one


def test_subsample_rejects_bad_fractions():
    for bad in (0.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="fraction"):
            subsample_episodes(_dataset([2, 2]), bad, seed=0)
    with pytest.raises(ValueError, match="terminals"):
        subsample_episodes({"observations": np.zeros(3)}, 0.5, seed=0)


SCHEMA = Path(__file__).resolve().parents[1] / "workflow/schemas/config.schema.yaml"


def validated(config: dict) -> dict:
    """The config as the workflow's helpers see it: checked, with the schema's defaults."""
    from snakemake.utils import validate

    validate(config, schema=str(SCHEMA))
    return config


CONFIG = validated({
    "agents": ["sorl", "sorl_mbtt1", "bc"],
    "variants": {"sorl_mbtt1": {"agent": "sorl", "overrides": {"max_k_backprop": 1}}},
    "envs": {"cube-single-play-v0": {"tasks": [2]}},
    "seeds": [1, 2],
    "studies": {"compute": {"agents": ["sorl", "sorl_mbtt1"]}, "value": {"episodes": 3}},
})  # fmt: skip


def test_workflow_helpers_resolve_variants_and_study_inputs():
    assert base_agent(CONFIG, "sorl_mbtt1") == "sorl" and base_agent(CONFIG, "bc") == "bc"
    grid = lambda agent: [(1, 1), (4, 1)] if base_agent(CONFIG, agent) == "sorl" else [(1, 1)]  # noqa: E731
    files = study_inputs(CONFIG, "compute", grid)
    assert "results/runs/sorl_mbtt1/cube-single-play-v0/task2/seed2/eval/4_1.json" in files
    assert not any("/bc/" in f for f in files) and len(files) == 2 * 2 * 3
    value = study_inputs(CONFIG, "value", grid)
    assert "results/runs/bc/cube-single-play-v0/task2/seed1/value/q_mc.json" in value
    assert value_args(CONFIG) == "--episodes 3 --seed 0 --dataset-points 5000"
    with pytest.raises(ValueError, match="variants.x.agent"):
        check_variants({"variants": {"x": {"agent": "nope", "overrides": {}}}}, ["sorl"])
    with pytest.raises(ValueError, match="not in the config's agents"):
        study_inputs({**CONFIG, "studies": {"quirks": {"agents": ["fql"]}}}, "quirks", grid)
    assert study_outputs("value")["figures"] == [
        "paper_figures/study_value.pdf",
        "paper_figures/study_value.png",
    ]


def _run(
    root, variant, seed, agent_config, evals, summary=True, curve=True, value=None, extra=None
):
    run = root / "results/runs" / variant / "cube-single-play-v0/task2" / f"seed{seed}"
    (run / "eval").mkdir(parents=True)
    config = {
        "agent": variant.split("_")[0],
        "seed": seed,
        "agent_config": agent_config,
        **(extra or {}),
    }
    (run / "config.json").write_text(json.dumps(config))
    if summary:
        (run / "summary.json").write_text(
            json.dumps({"steps": 1000, "wall_s": 60.0, "train_s": 30.0})
        )
    for (m, n), (succ, ms) in evals.items():
        (run / "eval" / f"{m}_{n}.json").write_text(
            json.dumps({"success": succ, "ms_per_action": ms})
        )
    if curve:
        (run / "eval_curve.csv").write_text(
            "step,success,return,eval_s,time_s\n500,0.1,-50,1,20\n1000,0.3,-40,1,40\n"
        )
    if value:
        (run / "value").mkdir()
        (run / "value/q_mc.json").write_text(json.dumps(value))
        np.savez(run / "value/q_mc.npz", dataset_q=np.arange(3.0), dataset_return=np.arange(3.0),
                 dataset_trusted=np.ones(3, bool), eval_q=np.arange(2.0), eval_return=np.arange(2.0),
                 eval_trusted=np.ones(2, bool))  # fmt: skip
    return run


def _stats(bias, r):
    s = {
        "n": 10,
        "q_mean": 0.0,
        "return_mean": -bias,
        "bias": bias,
        "rmse": abs(bias),
        "pearson": r,
        "spearman": r,
    }
    return {"all": s, "trusted": s}


def test_study_tables_and_figures_from_run_directories(tmp_path):
    from sorlab.studies.report import STUDIES

    runs = []
    for seed, shift in ((1, 0.0), (2, 0.2)):
        for variant, m_btt, sem in (
            ("sorl", 8, "released"),
            ("sorl_mbtt1", 1, "released"),
            ("sorl_clean", 8, "clean"),
        ):
            cfg = {
                "max_k_backprop": m_btt,
                "denoise_timesteps": 8,
                "update_semantics": sem,
                "discount": 0.99,
            }
            evals = {(1, 1): (0.2 + shift, 0.1), (16, 1): (0.6 + shift, 1.0)}
            value = {"has_critic": True, "m_inf": 8, "discount": 0.99, "success": 0.5,
                     "dataset": _stats(-2.0, 0.9), "evaluation": _stats(5.0, 0.4)}  # fmt: skip
            runs.append(_run(tmp_path, variant, seed, cfg, evals, value=value))
        value = {"has_critic": False, "m_inf": 1, "discount": 0.99, "success": 0.1,
                 "dataset": _stats(math.nan, math.nan), "evaluation": _stats(math.nan, math.nan)}  # fmt: skip
        runs.append(
            _run(tmp_path, "bc", seed, {"discount": 0.99}, {(1, 1): (0.1, 0.05)}, value=value)
        )
        runs.append(_run(tmp_path, "sorl_frac", seed, {"max_k_backprop": 8}, {(1, 1): (0.05, 0.1)},
                         extra={"data_fraction": 0.1, "data_episodes": 10, "num_transitions": 9990}))  # fmt: skip
    records = load_runs(runs)
    tables, figures = tmp_path / "tables", tmp_path / "figures"
    for name, build in STUDIES.items():
        paths = build(records, tables, figures, f"study_{name}")
        assert {p.suffix for p in paths} == {".csv", ".md", ".tex", ".pdf", ".png"}
        assert all(p.stat().st_size > 0 for p in paths)
    import pandas as pd

    compute = pd.read_csv(tables / "study_compute.csv")
    row = compute[(compute["m_btt"] == 1) & (compute["m_inf"] == 16)].iloc[0]
    assert row["success_mean"] == pytest.approx(70.0) and row["n_seeds"] == 2
    assert bool(row["beyond_training_m"]) and row["train_s_per_1k_mean"] == pytest.approx(30.0)
    quirks = pd.read_csv(tables / "study_quirks.csv")
    assert quirks["diff_mean"].fillna(0).abs().max() == pytest.approx(0.0)  # same numbers, paired
    scale = pd.read_csv(tables / "study_data_scale.csv")
    assert set(scale["fraction"]) == {0.1, 1.0}
    assert "no critic" in (tables / "study_value.md").read_text()
    equal = pd.read_csv(tables / "study_equal_compute.csv").set_index("variant")
    assert equal.loc["bc", "ms_mean"] == pytest.approx(0.05) and equal.loc["sorl", "m_inf"] == 16


def test_a_malformed_run_file_is_named(tmp_path):
    run = _run(tmp_path, "sorl", 1, {}, {(1, 1): (0.5, 0.1)})
    (run / "eval" / "1_1.json").write_text("{not json")
    with pytest.raises(ResultsError, match="1_1.json"):
        load_runs([run])


def test_train_data_fraction_flag_subsamples_and_records(tmp_path):
    from sorlab.training import loop as train

    rng = np.random.default_rng(0)
    n, obs_dim, act_dim = 40, 28, 5  # cube-single's widths
    terminals = (np.arange(n) % 10 == 9).astype(np.float32)  # 4 episodes of 10 rows
    arrays = {
        "observations": rng.normal(size=(n, obs_dim)),
        "actions": rng.uniform(-1, 1, size=(n, act_dim)),
        "rewards": -np.ones(n),
        "masks": np.ones(n),
        "next_observations": rng.normal(size=(n, obs_dim)),
        "terminals": terminals,
    }
    path = tmp_path / "cube-single-play-v0.npz"
    np.savez(path, **{k: v.astype(np.float32) for k, v in arrays.items()})
    out = tmp_path / "run"
    settings = train.RunSettings(
        agent="bc", dataset=str(path), task=2, seed=3, steps=2, out=str(out),
        overrides=["batch_size=4", "actor_hidden_dims=[4]"], checkpoint_interval=2,
        log_interval=1, chunk=1, progress=False, data_fraction=0.5, data_seed=7,
    )  # fmt: skip
    train.train(settings)
    config = json.loads((out / "config.json").read_text())
    assert config["num_transitions"] == 20 and config["data_episodes"] == 2
    assert config["data_fraction"] == 0.5 and config["data_seed"] == 7
    assert config["data_episodes_total"] == 4
    bad = train.RunSettings(
        **{**settings.__dict__, "data_fraction": 1.5, "out": str(tmp_path / "b")}
    )
    with pytest.raises(train.TrainError, match="--data-fraction 1.5"):
        train.train(bad)


def test_a_study_reads_only_its_configs_grid(tmp_path):
    run = _run(
        tmp_path, "sorl", 1, {}, {(1, 1): (0.5, 0.1), (32, 1): (0.9, 1.0), (1, 4): (0.7, 0.2)}
    )
    assert set(load_runs([run])[0].evals) == {(1, 1), (32, 1), (1, 4)}
    assert set(load_runs([run], m_inf=[1, 2], n=[1])[0].evals) == {(1, 1)}
