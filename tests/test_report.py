"""The report: tables and figures from a synthetic results/ tree (the report reads only files)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sorlab.cli import main as sorlab_main
from sorlab.errors import ResultsError
from sorlab.report import OUTPUTS, build_report, output_paths
from sorlab.report.aggregates import (
    bootstrap_samples,
    interval_estimates,
    iqm,
    performance_profiles,
)
from sorlab.results import collect

ENVS = ["cube-single-play-v0", "scene-play-v0"]
TASKS = [1, 2]
SEEDS = [1, 2, 3]
# agent -> (config extras, M_inf grid, N grid)
AGENTS = {
    "sorl": ({"max_k_backprop": 8, "denoise_timesteps": 8}, [1, 2, 4, 8, 16], [1, 4]),
    "sorl_mbtt2": ({"max_k_backprop": 2, "denoise_timesteps": 8}, [1, 2, 4, 8, 16], [1]),
    "fql": ({}, [1], [1]),
}
REPS = 200  # bootstrap reps in the tests (the default is 2000)


def success_of(agent: str, env: str, task: int, seed: int, m_inf: int, n: int) -> float:
    """A deterministic, non-trivial success rate in [0, 1] (multiples of 1/50, like 50 episodes)."""
    base = {"sorl": 20, "sorl_mbtt2": 10, "fql": 15}[agent] + 7 * ENVS.index(env) + 3 * task
    episodes_won = base + 2 * int(np.log2(m_inf)) + n + (seed * 5 + task * 3 + m_inf) % 7
    return min(episodes_won, 50) / 50


def write_tree(root: Path) -> Path:
    results = root / "results"
    for agent, (extras, m_infs, ns) in AGENTS.items():
        for env in ENVS:
            for task in TASKS:
                for seed in SEEDS:
                    run = results / "runs" / agent / env / f"task{task}" / f"seed{seed}"
                    (run / "eval").mkdir(parents=True)
                    # As `sorlab train` writes it: the agent's resolved settings under agent_config.
                    config = {"agent": agent.split("_")[0], "task": task, "seed": seed, "steps": 3000,
                              "agent_config": {"batch_size": 256, **extras}}  # fmt: skip
                    (run / "config.json").write_text(json.dumps(config))
                    summary = {"steps": 3000, "wall_s": 90.0 + seed, "train_s": 60.0 + seed,
                               "updates_per_s": 50.0, "compile_s": 5.0 * seed, "final_eval": {"success": 0.5, "return": -10.0},
                               # fql: the three seeds were trained together in one program.
                               "seeds_in_program": SEEDS if agent == "fql" else [seed]}  # fmt: skip
                    (run / "summary.json").write_text(json.dumps(summary))
                    (run / "metrics.csv").write_text("step,time_s,critic/loss\n1000,1.0,0.5\n")
                    curve = ["step,success,return"]
                    curve += [
                        f"{step},{(step / 1000 + seed) / 10},-5.0" for step in (1000, 2000, 3000)
                    ]
                    (run / "eval_curve.csv").write_text("\n".join(curve) + "\n")
                    for m_inf in m_infs:
                        for n in ns:
                            result = {"success": success_of(agent, env, task, seed, m_inf, n),
                                      "return": -3.0, "ms_per_action": 0.1 * m_inf * n, "episodes": 50}  # fmt: skip
                            (run / "eval" / f"{m_inf}_{n}.json").write_text(json.dumps(result))
                    bench = results / "benchmarks" / "train" / agent / env / f"task{task}"
                    bench.mkdir(parents=True, exist_ok=True)
                    header = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time"
                    (bench / f"seed{seed}.tsv").write_text(f"{header}\n{100 + seed}.5\t0:01:40\t512.3\t-\t-\t-\t-\t-\t-\t-\n")  # fmt: skip
    return results


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    results = write_tree(root)
    paths = build_report(results, root / "paper_figures", bootstrap_reps=REPS, verbose=False)
    return root, results, paths


def hand_mean_std(agent: str, env: str, m_inf: int, n: int) -> tuple[float, float]:
    per_seed = [np.mean([success_of(agent, env, t, s, m_inf, n) for t in TASKS]) for s in SEEDS]
    return 100 * float(np.mean(per_seed)), 100 * float(np.std(per_seed, ddof=1))


def test_every_declared_output_is_written_and_non_empty(built):
    root, results, paths = built
    assert paths == output_paths(results, root / "paper_figures")
    for path in paths:
        assert path.is_file() and path.stat().st_size > 0, path
    # The Snakemake list names the same files relative to the default directories.
    assert len(OUTPUTS) == len(paths) and "results/tables/table1_success.csv" in OUTPUTS
    assert "paper_figures/fig1_sequential_scaling.pdf" in OUTPUTS
    assert (root / "paper_figures" / "fig1_sequential_scaling.png").read_bytes()[:4] == b"\x89PNG"
    assert (root / "paper_figures" / "fig2_mbtt_grid.pdf").read_bytes()[:4] == b"%PDF"


def test_table1_equals_hand_computed_means_over_seeds(built):
    _, results, _ = built
    table = pd.read_csv(results / "tables" / "table1_success.csv")
    assert len(table) == len(ENVS) * len(AGENTS)
    for row in table.itertuples():
        # Default inference: N = 1 and the largest M_inf evaluated (16 for sorl, 1 for fql).
        m_inf = max(AGENTS[row.variant][1])
        mean, std = hand_mean_std(row.variant, row.env, m_inf, 1)
        assert row.success_mean == pytest.approx(mean) and row.success_std == pytest.approx(std)
        assert (row.n_seeds, row.n_tasks, row.m_inf, row.n) == (3, 2, m_inf, 1)
    for env, group in table.groupby("env"):
        assert group.loc[group["best"], "variant"].tolist() == [
            group.loc[group["success_mean"].idxmax(), "variant"]
        ], env


def _md_rows(text: str) -> list[list[str]]:
    rows = [line for line in text.splitlines() if line.startswith("|")]
    return [[c.strip() for c in line.strip("|").split(" | ")] for line in rows]


def test_table1_markdown_and_latex_parse_with_best_in_bold(built):
    _, results, _ = built
    rows = _md_rows((results / "tables" / "table1_success.md").read_text())
    header, body = rows[0], rows[2:]
    assert header == ["environment", "fql", "sorl", "sorl_mbtt2"]
    # Each environment: ours, then the published row and ours minus published.
    assert [r[0] for r in body] == [
        name for env in ENVS for name in (env, f"{env}: published", f"{env}: ours − published")
    ]
    body = [r for r in body if r[0] in ENVS]
    tex = (results / "tables" / "table1_success.tex").read_text()
    assert "\\begin{tabular}{lrrr}" in tex and "\\end{tabular}" in tex
    assert "ours $-$ published" in tex and "\\ddag{}" in tex and "−" not in tex
    tex_rows = [line for line in tex.splitlines() if line.startswith(tuple(e + " &" for e in ENVS))]
    for env, md_row, tex_row in zip(ENVS, body, tex_rows, strict=True):
        means = {}
        for agent, cell in zip(header[1:], md_row[1:], strict=True):
            match = re.fullmatch(r"(\*\*)?(\d+\.\d) ± (\d+\.\d)(\*\*)?", cell)
            assert match, cell
            means[agent] = (float(match[2]), bool(match[1]))
            mean, std = hand_mean_std(agent, env, max(AGENTS[agent][1]), 1)
            assert (match[2], match[3]) == (f"{mean:.1f}", f"{std:.1f}")
        best = max(m for m, _ in means.values())
        assert {a for a, (m, b) in means.items() if b} == {
            a for a, (m, _) in means.items() if m == best
        }
        tex_cells = tex_row.rstrip(" \\").split(" & ")
        assert tex_cells[0] == env.replace("-", "-")
        for agent, cell in zip(header[1:], tex_cells[1:], strict=True):
            assert cell.startswith("\\textbf{") == means[agent][1], cell
            assert "$\\pm$" in cell


def test_published_column_and_comparison_without_judging_another_budget(built):
    _, results, _ = built
    table = pd.read_csv(results / "tables" / "table1_success.csv")
    fql = table[(table["variant"] == "fql") & (table["env"] == ENVS[0])].iloc[0]
    # FQL paper Table 2: cube-single-play 96 ± 1 (mean of 5 tasks); ours ran tasks 1-2.
    assert (fql["published_mean"], fql["published_std"]) == (96, 1)
    assert fql["difference"] == pytest.approx(fql["success_mean"] - 96)
    assert not fql["comparable"] and fql["verdict"].startswith("not judged")
    sorl = table[(table["variant"] == "sorl") & (table["env"] == ENVS[1])].iloc[0]
    assert (sorl["published_mean"], sorl["published_std"]) == (57, 2)  # SORL, secondary
    assert "secondary" in sorl["published_source"]
    assert table.loc[table["variant"] == "sorl_mbtt2", "published_mean"].isna().all()
    comparison = pd.read_csv(results / "tables" / "published_comparison.csv")
    row = comparison[(comparison["variant"] == "fql") & (comparison["env"] == ENVS[0])].iloc[0]
    for part in ("steps 3,000 vs 1,000,000", "3 vs 8 seeds", "tasks 1,2 vs 1-5"):
        assert part in row["budget"], row["budget"]
    assert np.isnan(row["z"]) and row["scope"] == "5-task mean"
    md = (results / "tables" / "published_comparison.md").read_text()
    assert "not judged: budget differs" in md and "‡" in md
    table_md = (results / "tables" / "table1_success.md").read_text()
    assert f"{fql['difference']:+.1f} *" in table_md and "57 ± 2 ‡" in table_md


def _paper_budget_tree(
    root: Path, successes: list[float], curve: list[float] | None = None
) -> Path:
    """FQL on cube-single task 2 with the paper's budget: 8 seeds, 1M steps, default networks."""
    results = root / "results"
    for seed, success in enumerate(successes, start=1):
        run = results / "runs" / "fql" / "cube-single-play-v0" / "task2" / f"seed{seed}"
        (run / "eval").mkdir(parents=True)
        config = {"agent": "fql", "steps": 1_000_000, "num_transitions": 1_001_000,
                  "dataset_name": "cube-single-play-v0", "eval_m_inf": 1,
                  "agent_config": {"actor_hidden_dims": [512] * 4, "value_hidden_dims": [512] * 4}}  # fmt: skip
        (run / "config.json").write_text(json.dumps(config))
        (run / "summary.json").write_text(json.dumps({"steps": 1_000_000, "wall_s": 1.0}))
        (run / "eval" / "1_1.json").write_text(json.dumps({"success": success}))
        rows = [f"{700_000 + 100_000 * i},{(curve or [success] * 4)[i] if seed % 2 else success}"
                for i in range(4)]  # fmt: skip
        (run / "eval_curve.csv").write_text("step,success\n" + "\n".join(rows) + "\n")
    return results


def test_same_budget_is_judged_in_standard_errors(tmp_path):
    successes = [0.92, 0.96, 0.98, 0.94, 0.96, 0.92, 1.0, 0.96]
    results = _paper_budget_tree(tmp_path, successes)
    build_report(results, tmp_path / "figs", bootstrap_reps=10, verbose=False)
    row = pd.read_csv(results / "tables" / "published_comparison.csv").iloc[0]
    ours = 100 * np.array(successes)
    se = np.sqrt(ours.std(ddof=1) ** 2 / 8 + 2**2 / 8)  # FQL Table 3, task2: 97 ± 2, 8 seeds
    assert (row["scope"], row["published_mean"], row["comparable"]) == ("task2", 97, True)
    assert row["z"] == pytest.approx(abs(ours.mean() - 97) / se)
    assert row["verdict"].startswith("consistent") and pd.isna(row["budget"])
    # Far below the paper with the same budget: a gap, in standard errors.
    results = _paper_budget_tree(tmp_path / "low", [0.5] * 7 + [0.6])
    build_report(results, tmp_path / "low" / "figs", bootstrap_reps=10, verbose=False)
    row = pd.read_csv(results / "tables" / "published_comparison.csv").iloc[0]
    assert row["verdict"].startswith("gap of") and row["z"] > 2


def test_final_evals_averages_the_last_periodic_evaluations(tmp_path, capsys):
    # Odd seeds' curves read 0.1, 0.2, 0.4, 0.6 at 700k..1M; even seeds' are flat at their success.
    successes = [0.9] * 8
    results = _paper_budget_tree(tmp_path, successes, curve=[0.1, 0.2, 0.4, 0.6])
    figures = tmp_path / "figs"
    args = ["report", "--results", str(results), "--figures", str(figures),
            "--bootstrap-reps", "10", "--final-evals", "3"]  # fmt: skip
    assert sorlab_main(args) == 0
    row = pd.read_csv(results / "tables" / "table1_success.csv").iloc[0]
    per_seed = [100 * (0.2 + 0.4 + 0.6) / 3 if s % 2 else 90.0 for s in range(1, 9)]
    assert row["success_mean"] == pytest.approx(np.mean(per_seed))
    assert row["m_inf"] == 1 and row["n"] == 1
    md = (results / "tables" / "table1_success.md").read_text()
    assert "mean of the last 3 periodic evaluations" in md
    protocol = pd.read_csv(results / "tables" / "published_comparison.csv")["protocol"].iloc[0]
    assert protocol == "mean of the last 3 evaluations"
    # Without it: the final evaluation (eval/1_1.json), and the protocol note says so.
    assert sorlab_main(args[:-2]) == 0
    row = pd.read_csv(results / "tables" / "table1_success.csv").iloc[0]
    assert row["success_mean"] == pytest.approx(90.0)
    protocol = pd.read_csv(results / "tables" / "published_comparison.csv")["protocol"].iloc[0]
    assert protocol.startswith("ours: one final evaluation")
    with pytest.raises(SystemExit):
        sorlab_main([*args[:-1], "-1"])
    assert "--final-evals" in capsys.readouterr().err


def test_scaling_and_cost_tables(built):
    _, results, _ = built
    scaling = pd.read_csv(results / "tables" / "scaling.csv")
    row = scaling[(scaling["variant"] == "sorl") & (scaling["env"] == ENVS[1])
                  & (scaling["m_inf"] == 4) & (scaling["n"] == 4)].iloc[0]  # fmt: skip
    assert (row["mean"], row["std"]) == pytest.approx(hand_mean_std("sorl", ENVS[1], 4, 4))
    assert scaling.loc[scaling["variant"] == "sorl_mbtt2", "m_btt"].unique().tolist() == [2]
    cost = pd.read_csv(results / "tables" / "cost_training.csv")
    row = cost[(cost["variant"] == "fql") & (cost["env"] == ENVS[0])].iloc[0]
    # train_s = 60 + seed over 3000 steps -> mean over seeds 1..3 of 1000 * (60 + s) / 3000.
    assert row["s_per_1k_updates_mean"] == pytest.approx(1000 * 62 / 3000)
    assert row["s_per_1k_updates_per_seed_mean"] == pytest.approx(1000 * 62 / 3000 / 3)
    assert row["wall_min_mean"] == pytest.approx(92 / 60)
    assert row["compile_s_mean"] == pytest.approx(10.0) and np.isnan(row["eval_s_mean"])
    assert row["train_bench_s_mean"] == pytest.approx(102.5)
    assert row["train_max_rss_mb"] == pytest.approx(512.3)
    inference = pd.read_csv(results / "tables" / "cost_inference.csv")
    row = inference[
        (inference["variant"] == "sorl") & (inference["m_inf"] == 8) & (inference["n"] == 4)
    ]
    assert row["ms_per_action_mean"].tolist() == pytest.approx([3.2, 3.2])
    curves = pd.read_csv(results / "tables" / "learning_curves.csv")
    row = curves[(curves["variant"] == "fql") & (curves["step"] == 2000)].iloc[0]
    assert row["mean"] == pytest.approx(100 * (2 + 2) / 10) and row["n_seeds"] == 3


def test_iqm_and_bootstrap_match_hand_computation():
    scores = np.arange(8, dtype=float).reshape(2, 4) / 10  # 8 runs: IQM = mean of the middle 4
    assert iqm(scores) == pytest.approx((0.2 + 0.3 + 0.4 + 0.5) / 4)
    row = interval_estimates({"a": scores}, reps=100).iloc[0]
    assert row["iqm"] == pytest.approx(35.0) and row["mean"] == pytest.approx(35.0)
    constant = np.full((3, 2), 0.4)
    row = interval_estimates({"a": constant}, reps=100).iloc[0]
    assert (row["iqm"], row["iqm_ci_low"], row["iqm_ci_high"]) == pytest.approx((40, 40, 40))
    # Stratified: each task's resampled runs come from that task only.
    matrix = np.array([[0.0, 1.0], [0.1, 0.9], [0.2, 0.8]])
    samples = bootstrap_samples(matrix, reps=50, seed=0)
    assert samples.shape == (50, 3, 2)
    assert set(samples[:, :, 0].ravel()) <= {0.0, 0.1, 0.2} and samples[:, :, 1].min() >= 0.8
    # Seeded: the same call gives the same interval; the interval contains the point.
    noisy = {"b": np.random.default_rng(0).uniform(size=(5, 4))}
    first = interval_estimates(noisy, reps=300)
    assert first.equals(interval_estimates(noisy, reps=300))
    assert first.at[0, "iqm_ci_low"] < first.at[0, "iqm"] < first.at[0, "iqm_ci_high"]
    taus = np.array([0.0, 0.15, 0.5, 0.95])
    profile, ci = performance_profiles({"m": matrix}, taus, reps=50)["m"]
    assert profile.tolist() == pytest.approx([5 / 6, 4 / 6, 3 / 6, 1 / 6])
    assert (
        ci.shape == (2, 4) and np.all(ci[0] <= profile + 1e-12) and np.all(profile <= ci[1] + 1e-12)
    )


def test_aggregates_table_iqm_equals_trimmed_mean_of_runs(built):
    _, results, _ = built
    table = pd.read_csv(results / "tables" / "aggregates_iqm.csv").set_index("variant")
    values = sorted(success_of("fql", e, t, s, 1, 1) for e in ENVS for t in TASKS for s in SEEDS)
    quarter = len(values) // 4  # 12 runs: drop 3 at each end
    assert table.at["fql", "iqm"] == pytest.approx(100 * np.mean(values[quarter:-quarter]))
    assert table.at["fql", "n_runs"] == 12 and table.at["fql", "n_env_tasks"] == 4
    assert table.at["fql", "iqm_ci_low"] <= table.at["fql", "iqm"] <= table.at["fql", "iqm_ci_high"]
    md = (results / "tables" / "aggregates_iqm.md").read_text()
    assert "IQM (95% CI)" in md and "stratified-bootstrap" in md


def test_empty_results_still_write_every_output(tmp_path):
    paths = build_report(tmp_path / "results", tmp_path / "figs", bootstrap_reps=10, verbose=False)
    for path in paths:
        assert path.is_file() and path.stat().st_size > 0, path
    assert pd.read_csv(tmp_path / "results" / "tables" / "table1_success.csv").empty
    assert "(no data)" in (tmp_path / "results" / "tables" / "table1_success.md").read_text()


def test_optional_parts_may_be_missing(tmp_path):
    results = write_tree(tmp_path)
    run = results / "runs" / "fql" / ENVS[0] / "task1" / "seed1"
    (run / "eval_curve.csv").unlink()
    (run / "summary.json").unlink()
    for path in (results / "runs" / "sorl").rglob("eval_curve.csv"):
        path.write_text("step,success,return\n")  # header only: no periodic evaluations yet
    collected = collect(results)
    assert any("summary.json: missing" in note for note in collected.notes)
    assert set(collected.curves["agent"]) == {"fql", "sorl_mbtt2"}
    assert not collected.runs.loc[collected.runs["run_dir"] == str(run), "has_summary"].item()


MALFORMED = [
    ("summary.json", "{not json", "cannot read JSON"),
    ("summary.json", json.dumps({"wall_s": 3.0}), "missing required key 'steps'"),
    ("config.json", json.dumps([1, 2]), "expected a JSON object"),
    ("eval/16_1.json", json.dumps({"return": 1.0}), "missing required key 'success'"),
    ("eval/16_1.json", json.dumps({"success": 40}), "'success' = 40.0 is outside [0, 1]"),
    ("eval/16_1.json", json.dumps({"success": "high"}), "'success' must be a number"),
    (
        "eval_curve.csv",
        "step,success\n1000,abc\n",
        "column 'success' has a non-numeric value 'abc'",
    ),
    ("eval_curve.csv", "step,return\n1000,2.0\n", "missing column(s) ['success']"),
]


@pytest.mark.parametrize(("name", "content", "message"), MALFORMED)
def test_malformed_file_raises_error_naming_it(tmp_path, name, content, message):
    results = write_tree(tmp_path)
    path = results / "runs" / "sorl" / ENVS[1] / "task2" / "seed3" / name
    path.write_text(content)
    with pytest.raises(ResultsError) as info:
        collect(results)
    assert str(path) in str(info.value) and message in str(info.value)


def test_missing_config_and_bad_benchmark_are_errors(tmp_path):
    results = write_tree(tmp_path)
    bench = results / "benchmarks" / "train" / "fql" / ENVS[0] / "task1" / "seed2.tsv"
    bench.write_text("seconds\n1.0\n")
    with pytest.raises(ResultsError, match=re.escape(f"{bench}: missing column(s) ['s']")):
        collect(results)
    bench.unlink()
    config = results / "runs" / "fql" / ENVS[0] / "task1" / "seed2" / "config.json"
    config.unlink()
    with pytest.raises(ResultsError, match=re.escape(f"{config}: missing")):
        collect(results)


def test_cli_with_chosen_default_inference_and_bad_file(tmp_path, capsys):
    results = write_tree(tmp_path)
    figures = tmp_path / "figs"
    args = ["report", "--results", str(results), "--figures", str(figures),
            "--bootstrap-reps", "20", "--default-inference", "sorl=4:4"]  # fmt: skip
    assert sorlab_main(args) == 0
    table = pd.read_csv(results / "tables" / "table1_success.csv")
    row = table[(table["variant"] == "sorl") & (table["env"] == ENVS[0])].iloc[0]
    assert (row["m_inf"], row["n"]) == (4, 4)
    assert row["success_mean"] == pytest.approx(hand_mean_std("sorl", ENVS[0], 4, 4)[0])
    assert "sorl: M\\_inf=4, N=4" in (results / "tables" / "table1_success.tex").read_text()
    assert all(path.is_file() for path in output_paths(results, figures))
    bad = results / "runs" / "fql" / ENVS[0] / "task1" / "seed1" / "eval" / "1_1.json"
    bad.write_text("")
    assert sorlab_main(args) == 1
    assert str(bad) in capsys.readouterr().err
    with pytest.raises(SystemExit):
        sorlab_main(["report", "--default-inference", "sorl=4"])


def test_runs_of_one_agent_with_several_mbtt_are_separate_variants(tmp_path):
    results = write_tree(tmp_path)
    for config in (results / "runs" / "sorl" / ENVS[1]).rglob("config.json"):
        data = json.loads(config.read_text())
        data["agent_config"]["max_k_backprop"] = 4
        config.write_text(json.dumps(data))
    collected = collect(results)
    sorl = collected.runs[collected.runs["agent"] == "sorl"]
    assert set(zip(sorl["env"], sorl["variant"], strict=True)) == {
        (ENVS[0], "sorl (M_BTT=8)"),
        (ENVS[1], "sorl (M_BTT=4)"),
    }
    assert set(collected.evals.loc[collected.evals["agent"] == "fql", "variant"]) == {"fql"}


def test_selection_reads_only_the_named_runs_and_points(tmp_path, capsys):
    """The workflow's run list: a run on disk that it does not name, or an evaluation point it
    does not ask for, never enters a table; without a list the report says it read them all."""
    results = write_tree(tmp_path)
    named = [results / "runs" / "sorl" / ENVS[0] / "task1" / f"seed{s}" for s in (1, 2)]
    selection = {"runs": [{"dir": str(d), "points": [[1, 1], [4, 1]]} for d in named]}
    (tmp_path / "runs.json").write_text(json.dumps(selection))
    code = sorlab_main(["report", "--results", str(results), "--figures", str(tmp_path / "f"),
                        "--runs", str(tmp_path / "runs.json"), "--bootstrap-reps", "10"])  # fmt: skip
    assert code == 0
    out = capsys.readouterr()
    assert f"the runs of {tmp_path / 'runs.json'}" in out.out
    assert "read 2 runs (the runs named)" in out.err
    runs = pd.read_csv(results / "tables" / "runs.csv")
    assert set(runs["run_dir"]) == {str(d) for d in named}
    assert set(zip(runs["m_inf"], runs["n"], strict=True)) == {(1, 1), (4, 1)}
    cost = pd.read_csv(results / "tables" / "cost_training.csv")
    assert cost["n_runs"].tolist() == [2]  # benchmarks too: only the named runs' jobs
    assert cost["train_bench_s_mean"].tolist() == [pytest.approx(102.0)]  # (101.5 + 102.5) / 2

    assert sorlab_main(["report", "--results", str(results), "--figures", str(tmp_path / "f"),
                        "--bootstrap-reps", "10"]) == 0  # fmt: skip
    assert f"every run under {results}/runs" in capsys.readouterr().out
    assert len(pd.read_csv(results / "tables" / "runs.csv")["run_dir"].unique()) == 3 * 2 * 2 * 3


def test_selection_naming_a_missing_run_is_an_error(tmp_path, capsys):
    results = write_tree(tmp_path)
    gone = results / "runs" / "sorl" / ENVS[0] / "task1" / "seed9"
    (tmp_path / "runs.json").write_text(
        json.dumps({"runs": [{"dir": str(gone), "points": [[1, 1]]}]})
    )
    code = sorlab_main(["report", "--results", str(results), "--runs", str(tmp_path / "runs.json")])
    assert code == 1
    assert f"e.g. {gone}" in capsys.readouterr().err


def test_a_failed_write_leaves_the_previous_table_whole(tmp_path, monkeypatch):
    """A table is written under a temporary name and renamed: a write that fails midway (a
    full disk) leaves the previous file as it was and no temporary file behind."""
    from sorlab.report import tables

    table = tables.Table(pd.DataFrame({"a": [1, 2]}), pd.DataFrame({"a": ["1", "2"]}), "c")
    paths = tables.write_table(table, tmp_path, "t")
    before = {p: p.read_bytes() for p in paths}

    def full_disk(self, path, *args, **kwargs):
        Path(path).write_text("a\n1")  # half written, then the disk is full
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(pd.DataFrame, "to_csv", full_disk)
    bigger = tables.Table(pd.DataFrame({"a": range(100)}), pd.DataFrame({"a": ["x"] * 100}), "c")
    with pytest.raises(OSError):
        tables.write_table(bigger, tmp_path, "t")
    assert {p: p.read_bytes() for p in paths} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths)
