"""All five studies end to end through Snakemake at tiny scale (.test/studies.yaml), in a copy of
the workflow files: variants, data subsampling, value rollouts, and each study's table and figure."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from sorlab.studies import STUDY_NAMES, study_outputs

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
WORKFLOW_FILES = ("Snakefile", "workflow", "config", ".test", "environment.yml")
RUN = "results/runs/{}/cube-single-play-v0/task2/seed1"

pytestmark = pytest.mark.slow


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}", MUJOCO_GL="egl")
    proc = subprocess.run(
        [str(BIN / "snakemake"), *args], cwd=workdir, env=env, capture_output=True, text=True,
        timeout=1200,
    )  # fmt: skip
    if proc.returncode != 0:
        logs = "\n".join(
            f"== {p}\n{p.read_text()[-3000:]}"
            for p in sorted(workdir.glob("results/logs/**/*.log"))
        )
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.stderr[-5000:]}\n{logs}")
    return proc


@pytest.fixture(scope="module")
def studies(tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("studies")
    for name in WORKFLOW_FILES:
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, workdir / name)
    snakemake(workdir, "--cores", "2", "--configfile", ".test/studies.yaml")
    return workdir


def test_every_study_writes_its_table_and_figure(studies):
    for name in STUDY_NAMES:
        outputs = study_outputs(name, studies / "results/tables", studies / "paper_figures")
        for path in outputs["tables"] + outputs["figures"]:
            assert Path(path).is_file() and Path(path).stat().st_size > 0, path


def test_variants_train_their_base_agent_with_their_settings(studies):
    config = json.loads((studies / RUN.format("sorl_mbtt1") / "config.json").read_text())
    assert config["agent"] == "sorl" and config["agent_config"]["max_k_backprop"] == 1
    # The base agent's overrides (tiny nets) carry over to the variant.
    assert list(config["agent_config"]["actor_hidden_dims"]) == [16, 16]
    clean = json.loads((studies / RUN.format("sorl_clean") / "config.json").read_text())
    assert clean["agent_config"]["update_semantics"] == "clean"
    compute = pd.read_csv(studies / "results/tables/study_compute.csv")
    assert set(compute["m_btt"]) == {1, 2} and set(compute["m_inf"]) == {1, 4}
    assert compute.loc[compute["m_inf"] == 4, "beyond_training_m"].all()  # M = 2
    quirks = pd.read_csv(studies / "results/tables/study_quirks.csv")
    assert set(quirks["semantics"]) == {"released", "clean"}


def test_data_fraction_keeps_whole_episodes_and_is_recorded(studies):
    full = json.loads((studies / RUN.format("sorl") / "config.json").read_text())
    half = json.loads((studies / RUN.format("sorl_frac") / "config.json").read_text())
    assert half["data_fraction"] == 0.5 and half["data_seed"] == 1
    assert half["data_episodes"] == 1 and half["data_episodes_total"] == 2
    assert half["num_transitions"] * 2 == full["num_transitions"]  # equal-length episodes
    scale = pd.read_csv(studies / "results/tables/study_data_scale.csv")
    assert set(scale["fraction"]) == {0.5, 1.0}


def test_value_study_compares_q_with_returns(studies):
    sorl = json.loads((studies / RUN.format("sorl") / "value/q_mc.json").read_text())
    assert sorl["has_critic"] and sorl["m_inf"] == 2  # the training M
    assert sorl["discount"] == 0.99 and sorl["evaluation"]["all"]["n"] > 0
    assert sorl["dataset"]["all"]["n"] == 200 and sorl["dataset"]["all"]["return_mean"] < 0
    table = (studies / "results/tables/study_value.md").read_text()
    assert "sorl" in table
    equal = pd.read_csv(studies / "results/tables/study_equal_compute.csv")
    assert set(equal["variant"]) == {"sorl", "sorl_mbtt1"} and (equal["ms_mean"] > 0).all()


def test_the_default_report_shows_variants_by_name(studies):
    runs = pd.read_csv(studies / "results/tables/runs.csv")
    assert {"sorl_mbtt1", "sorl_clean", "sorl_frac"} <= set(runs["agent"])
