"""The Snakemake workflow, run for real on the tiny study (.test/config.yaml) in a copy of the
repository's workflow files: data generation, training, evaluation and report, then dry runs."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

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
def study(tmp_path_factory) -> Path:
    """The tiny study, run to completion once for the tests of this module."""
    workdir = copy_workflow(tmp_path_factory.mktemp("study"))
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
            if agent in config["evaluate"]["scaling_agents"]:
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


def test_lint_is_clean(study):
    out = snakemake(study, "--lint", "--configfile", TEST_CONFIG, check=False)
    assert "Lints for" not in out.stdout + out.stderr, out.stdout + out.stderr
    assert out.returncode == 0


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda c: c["train"].update(stpes=10), "stpes"),
        (lambda c: c["evaluate"].update(episodes=0), "episodes"),
        (lambda c: c["data"].update(source="ftp"), "ftp"),
        (lambda c: c.update(agents=["sorl", "ppo"]), "ppo"),
    ],
)
def test_bad_config_is_named(tmp_path, change, named):
    workdir = copy_workflow(tmp_path)
    config = yaml.safe_load((workdir / TEST_CONFIG).read_text())
    change(config)
    (workdir / "bad.yaml").write_text(yaml.safe_dump(config))
    out = snakemake(workdir, "-n", "--configfile", "bad.yaml", check=False)
    assert out.returncode != 0
    assert named in out.stdout + out.stderr
