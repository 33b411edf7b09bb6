"""The Snakemake workflow, run for real on the tiny study (.test/config.yaml) in a copy of the
repository's workflow files: data generation, training, evaluation and report, then dry runs."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from sorlab.agents import scales_at_inference
from sorlab.report import output_paths

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
WORKFLOW_FILES = ("Snakefile", "workflow", "config", ".test", "environment.yml")
TEST_CONFIG = ".test/config.yaml"

pytestmark = pytest.mark.slow


def path_without_venv() -> str:
    """PATH without the venv's bin/: as a user who runs `.venv/bin/snakemake` unactivated."""
    return os.pathsep.join(
        entry
        for entry in os.environ["PATH"].split(os.pathsep)
        if not entry or not Path(entry).exists() or not Path(entry).samefile(BIN)
    )


def snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    # The rules call `sorlab`; the Snakefile finds it beside the interpreter running Snakemake.
    env = dict(os.environ, PATH=path_without_venv(), MUJOCO_GL="egl")
    proc = subprocess.run(
        [str(BIN / "snakemake"), *args],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,  # generous: CI machines may be shared
    )
    if check and proc.returncode != 0:
        logs = "\n".join(
            f"== {p}\n{p.read_text()[-3000:]}"
            for p in sorted(workdir.glob("results/logs/**/*.log"))
        )
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.stderr[-5000:]}\n{logs}")
    return proc


def copy_workflow(dest: Path) -> Path:
    for name in WORKFLOW_FILES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name)
        else:
            shutil.copy(src, dest / name)
    return dest


def planned_jobs(output: str) -> list[tuple[str, str]]:
    """(rule, wildcards) of every job a dry run lists."""
    jobs, rule = [], None
    for line in output.splitlines():
        match = re.match(r"^(?:local)?rule (\w+):", line.strip())
        if match:
            rule = match.group(1)
            jobs.append((rule, ""))
        elif line.strip().startswith("wildcards:") and jobs:
            jobs[-1] = (rule, line.strip().removeprefix("wildcards:").strip())
    return jobs


@pytest.fixture(scope="module")
def datasets(tmp_path_factory) -> Path:
    """The tiny study's datasets, made by the workflow's dataset rule (resources/)."""
    workdir = copy_workflow(tmp_path_factory.mktemp("datasets"))
    target = "resources/datasets/cube-single-play-v0.npz"
    snakemake(workdir, target, "--cores", "2", "--configfile", TEST_CONFIG)
    assert (workdir / "results/logs/data/cube-single-play-v0.log").is_file()
    return workdir / "resources"


@pytest.fixture(scope="module")
def study(tmp_path_factory, datasets) -> Path:
    """The tiny study, run to completion once for the tests of this module."""
    workdir = copy_workflow(tmp_path_factory.mktemp("study"))
    shutil.copytree(datasets, workdir / "resources")
    snakemake(workdir, "--cores", "2", "--configfile", TEST_CONFIG)
    return workdir


def test_end_to_end_writes_every_table_and_figure(study):
    for path in output_paths(study / "results", study / "paper_figures"):
        assert path.is_file() and path.stat().st_size > 0, path
        if path.suffix == ".csv":
            pd.read_csv(path)  # parses
    config = yaml.safe_load((study / TEST_CONFIG).read_text())
    runs = study / "results" / "runs"
    for agent in config["agents"]:
        for seed in config["seeds"]:
            run = runs / agent / "cube-single-play-v0" / "task2" / f"seed{seed}"
            summary = json.loads((run / "summary.json").read_text())
            assert summary["steps"] == config["train"]["steps"]
            assert {"step", "success"} <= set(pd.read_csv(run / "eval_curve.csv").columns)
            evals = sorted(p.name for p in (run / "eval").glob("*.json"))
            if scales_at_inference(agent):
                grid = [
                    (m, n) for m in config["evaluate"]["m_inf"] for n in config["evaluate"]["n"]
                ]
            else:
                grid = [(1, 1)]
            assert evals == sorted(f"{m}_{n}.json" for m, n in grid)
            result = json.loads((run / "eval" / evals[-1]).read_text())
            assert result["episodes"] == config["evaluate"]["episodes"]
            assert 0.0 <= result["success"] <= 1.0 and result["ms_per_action"] > 0
            assert len(result["per_episode"]["success"]) == result["episodes"]
    # Every job leaves a log and a benchmark file at the documented paths.
    assert (study / "results/logs/train/sorl/cube-single-play-v0/task2/seed1.log").is_file()
    assert (
        study / "results/benchmarks/evaluate/sorl/cube-single-play-v0/task2/seed1_2_1.tsv"
    ).is_file()


def test_second_run_has_nothing_to_do(study):
    out = snakemake(study, "-n", "--cores", "2", "--configfile", TEST_CONFIG)
    assert "Nothing to be done" in out.stdout + out.stderr
    assert planned_jobs(out.stdout) == []


def test_evaluation_start_states_follow_the_training_seed(study):
    """Each run's episodes reset from its training seed and task: seeds 1 and 2 see different
    start states, SORL and BC on one seed the same ones; each eval JSON says so and records
    the platform its numbers were computed on."""
    runs = study / "results/runs"

    def evaluation(agent, seed):
        path = runs / agent / f"cube-single-play-v0/task2/seed{seed}/eval/1_1.json"
        return json.loads(path.read_text())

    resets = {
        (a, s): evaluation(a, s)["per_episode"]["reset_seed"]
        for a in ("sorl", "bc")
        for s in (1, 2)
    }
    assert resets[("sorl", 1)] == resets[("bc", 1)] and resets[("sorl", 2)] == resets[("bc", 2)]
    assert not set(resets[("sorl", 1)]) & set(resets[("sorl", 2)])
    result = evaluation("bc", 1)
    assert result["seed_source"].startswith("run")
    assert {"cpu_isa_compiled", "xla_cpu_max_isa", "jax", "jaxlib", "device_kind"} <= set(
        result["platform"]
    )
    config = json.loads((runs / "bc/cube-single-play-v0/task2/seed1/config.json").read_text())
    assert (
        config["versions"]["platform"]["cpu_isa_compiled"] == result["platform"]["cpu_isa_compiled"]
    )


def test_tables_count_only_the_configs_runs(study, tmp_path):
    """Two configs on one results/ (seeds [1], then [2], then [1] again) and a leftover run of an
    older study on disk: each config's tables hold its own seeds and nothing else, whichever
    ran last."""
    workdir = tmp_path / "shared"
    shutil.copytree(study, workdir, symlinks=True)
    runs = workdir / "results/runs/bc/cube-single-play-v0/task2"
    shutil.copytree(runs / "seed1", runs / "seed9")  # left by an older study
    config = yaml.safe_load((ROOT / TEST_CONFIG).read_text())
    for seeds in ([1], [2], [1]):
        config["seeds"] = seeds
        (workdir / "seeds.yaml").write_text(yaml.safe_dump(config))
        out = snakemake(workdir, "--cores", "2", "--configfile", "seeds.yaml")
        assert "report_runs" in out.stdout + out.stderr  # the run list changed: the report reran
        tables = workdir / "results/tables"
        assert set(pd.read_csv(tables / "runs.csv")["seed"]) == set(seeds)
        assert set(pd.read_csv(tables / "cost_inference.csv")["n_seeds"]) == {1}
        listed = json.loads((workdir / "results/report_runs.json").read_text())["runs"]
        assert {Path(run["dir"]).name for run in listed} == {f"seed{s}" for s in seeds}


def test_changing_one_seeds_settings_reruns_only_that_seed(study):
    config = yaml.safe_load((study / TEST_CONFIG).read_text())
    config["train"]["run_overrides"] = {"sorl/cube-single-play-v0/task2/seed2": {"lr": 1e-3}}
    changed = study / "changed.yaml"
    changed.write_text(yaml.safe_dump(config))
    out = snakemake(study, "-n", "--cores", "2", "--configfile", str(changed))
    jobs = planned_jobs(out.stdout)
    trains = [w for rule, w in jobs if rule == "train"]
    evals = [w for rule, w in jobs if rule == "evaluate"]
    assert len(trains) == 1 and "agent=sorl" in trains[0] and "seed=2" in trains[0]
    assert len(evals) == 4 and all("agent=sorl" in w and "seed=2" in w for w in evals)
    assert {rule for rule, _ in jobs} == {"train", "evaluate", "report", "all"}

    # For real: the stale checkpoints are discarded and the seed trains with its new settings.
    snakemake(study, "--cores", "2", "--configfile", str(changed))
    run = study / "results/runs/sorl/cube-single-play-v0/task2"
    assert json.loads((run / "seed2/config.json").read_text())["agent_config"]["lr"] == 1e-3
    assert json.loads((run / "seed1/config.json").read_text())["agent_config"]["lr"] != 1e-3


def test_grouped_seeds_train_in_one_job_with_the_same_outputs(study, tmp_path):
    workdir = copy_workflow(tmp_path)
    config = yaml.safe_load((workdir / TEST_CONFIG).read_text())
    config["agents"] = ["bc"]
    config["train"]["group_seeds"] = True
    (workdir / "grouped.yaml").write_text(yaml.safe_dump(config))
    planned = planned_jobs(snakemake(workdir, "-n", "--configfile", "grouped.yaml").stdout)
    assert [w for rule, w in planned if rule.startswith("train")] == [
        "agent=bc, env=cube-single-play-v0, task=2"
    ]
    assert {rule for rule, _ in planned} >= {"train_seeds", "evaluate", "report"}
    snakemake(workdir, "--cores", "2", "--configfile", "grouped.yaml")
    for seed in (1, 2):
        run = f"results/runs/bc/cube-single-play-v0/task2/seed{seed}"
        grouped = pd.read_csv(workdir / run / "metrics.csv")
        alone = pd.read_csv(study / run / "metrics.csv")
        assert list(grouped.columns) == list(alone.columns)
        losses = [c for c in alone.columns if "loss" in c]
        assert losses
        np.testing.assert_allclose(grouped[losses], alone[losses], rtol=1e-4, atol=1e-6)
        summary = json.loads((workdir / run / "summary.json").read_text())
        assert summary["seeds_in_program"] == [1, 2]
    out = snakemake(workdir, "-n", "--configfile", "grouped.yaml")
    assert planned_jobs(out.stdout) == []

    config["train"]["run_overrides"] = {"bc/cube-single-play-v0/task2/seed2": {"lr": 1e-3}}
    (workdir / "bad.yaml").write_text(yaml.safe_dump(config))
    out = snakemake(workdir, "-n", "--configfile", "bad.yaml", check=False)
    assert out.returncode != 0
    message = out.stdout + out.stderr
    assert "group_seeds" in message and "bc/cube-single-play-v0/task2" in message


def test_interrupted_run_keeps_its_learning_curve(datasets, tmp_path):
    """Ctrl-C (SIGINT to the process group) during training, then a rerun: the learning curves
    equal an uninterrupted run's, row for row, though Snakemake deletes the interrupted job's
    declared outputs (metrics.csv, eval_curve.csv) before it reruns it."""
    config = yaml.safe_load((ROOT / TEST_CONFIG).read_text())
    config["agents"], config["seeds"] = ["bc"], [1]
    # A checkpoint at 250 falls between metrics rows (every 100): the resumed row at 300 must
    # still average 100 updates. Two evaluations after it leave time to interrupt.
    config["train"].update(steps=1000, checkpoint_interval=250, log_interval=100)
    # Ten-episode evaluations make the stretch after checkpoint 250 last long enough for a
    # slow, shared machine to see the checkpoint and interrupt before the run ends.
    config["train"].update(eval_interval=500, eval_episodes=10)
    run = "results/runs/bc/cube-single-play-v0/task2/seed1"
    dirs = {}
    for name in ("uninterrupted", "interrupted"):
        workdir = tmp_path / name
        workdir.mkdir()
        copy_workflow(workdir)
        shutil.copytree(datasets, workdir / "resources")  # the same data files
        (workdir / "run.yaml").write_text(yaml.safe_dump(config))
        dirs[name] = workdir
    args = [f"{run}/summary.json", "--cores", "1", "--configfile", "run.yaml"]
    snakemake(dirs["uninterrupted"], *args)

    workdir = dirs["interrupted"]
    env = dict(os.environ, PATH=path_without_venv(), MUJOCO_GL="egl")
    log = tmp_path / "interrupted.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(BIN / "snakemake"), *args], cwd=workdir, env=env, start_new_session=True,
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    checkpoint = workdir / run / "checkpoints" / "250" / "commit_success.txt"
    deadline = time.monotonic() + 900
    while not checkpoint.exists():
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-5000:]
        time.sleep(0.02)
    assert proc.poll() is None, "interrupted too late: the run ended before the signal"
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in the terminal does
    assert proc.wait(timeout=300) != 0, log.read_text()[-5000:]
    assert not (workdir / run / "summary.json").exists(), "interrupted too late: run finished"

    out = snakemake(workdir, *args, "-n", check=False)
    assert "incomplete" in out.stdout + out.stderr  # Snakemake wants --rerun-incomplete
    snakemake(workdir, *args, "--rerun-incomplete")
    for name, drop in (("metrics.csv", ["time_s"]), ("eval_curve.csv", ["time_s", "eval_s"])):
        resumed = pd.read_csv(workdir / run / name).drop(columns=drop)
        alone = pd.read_csv(dirs["uninterrupted"] / run / name).drop(columns=drop)
        assert (
            resumed["step"].tolist()
            == alone["step"].tolist()
            == (list(range(100, 1001, 100)) if name == "metrics.csv" else [500, 1000])
        )
        pd.testing.assert_frame_equal(resumed, alone)  # exact: the same updates, bitwise
    summary = json.loads((workdir / run / "summary.json").read_text())
    assert summary["resumed_from"] == 250
    alone = json.loads((dirs["uninterrupted"] / run / "summary.json").read_text())
    assert summary["final_eval"]["success"] == alone["final_eval"]["success"]
    assert planned_jobs(snakemake(workdir, *args, "-n").stdout) == []


def test_lint_is_clean(study):
    out = snakemake(study, "--lint", "--configfile", TEST_CONFIG, check=False)
    assert "Lints for" not in out.stdout + out.stderr, out.stdout + out.stderr
    assert out.returncode == 0


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda c: c["train"].update(stpes=10), ["config train:", "'stpes' was unexpected"]),
        (lambda c: c["evaluate"].update(episodes=0), ["config evaluate.episodes", "0"]),
        (lambda c: c["data"].update(source="ftp"), ["config data.source", "ftp"]),
        (lambda c: c.update(agents=["sorl", "ppo"]), ["ppo"]),
        # Mistakes that used to fail late, after training:
        (lambda c: c["evaluate"].update(m_inf=[1, 3]), ["config evaluate.m_inf", "m_inf=3"]),
        (
            lambda c: c.update(envs={"cube-singel-play-v0": {"tasks": [2]}}),
            ["config envs.cube-singel-play-v0", "unknown OGBench dataset"],
        ),
        (
            lambda c: c["train"]["overrides"]["sorl"].update(actr_lr=1e-3),
            ["config train.overrides.sorl", "unknown config key 'actr_lr'"],
        ),
        (
            lambda c: c.update(envs={"antmaze-large-navigate-v0": {"tasks": [1]}}),
            ["config data.source", "antmaze-large-navigate-v0", "data.source: download"],
        ),
    ],
)
def test_bad_config_is_named_in_one_line_before_any_job(tmp_path, change, named):
    workdir = copy_workflow(tmp_path)
    config = yaml.safe_load((workdir / TEST_CONFIG).read_text())
    change(config)
    (workdir / "bad.yaml").write_text(yaml.safe_dump(config))
    out = snakemake(workdir, "--cores", "1", "--configfile", "bad.yaml", check=False)
    assert out.returncode != 0
    lines = [line for line in (out.stdout + out.stderr).splitlines() if line.strip()]
    errors = [line for line in lines if all(word in line for word in named)]
    assert len(errors) == 1, lines
    assert len(lines) <= 2, lines  # Snakemake's "Config file ... is extended" and ours
    assert not (workdir / "results").exists() and not (workdir / "resources").exists()
