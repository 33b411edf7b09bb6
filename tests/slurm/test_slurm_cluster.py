"""The tiny study (.test/config.yaml) through a real one-node SLURM cluster.

scripts/slurm/setup.sh starts munged, MariaDB, slurmdbd, slurmctld and slurmd on 127.0.0.1
(one fake GPU, so training's `--gpus=1` is scheduled); the workflow then runs with the real
profile workflow/profiles/slurm and snakemake-executor-plugin-slurm, next to a plain local
run of the same config. Checks: every rule ran as an sbatch job that sacct lists with its
rule in the comment, training jobs asked for one GPU, and results/tables/*.csv match the
local run's (apart from measured times and memory). Run with `make test-slurm` (root).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / ".test" / "config.yaml"
PROFILE = REPO / "workflow" / "profiles" / "slurm"
SETUP = REPO / "scripts" / "slurm" / "setup.sh"
TEARDOWN = REPO / "scripts" / "slurm" / "teardown.sh"
# Columns that hold measurements of this machine (seconds, memory), not results.
MEASURED = re.compile(r"wall|time|rss|_mb|(^|_)s(_|$)|per_s|s_per|ms_per|bench")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    # The jobs inherit this environment (sbatch --export=ALL): `sorlab` and `snakemake` on PATH.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("MUJOCO_GL", "egl")
    return env


def _snakemake(workdir: Path, *args: str) -> list[str]:
    return [
        str(Path(sys.executable).parent / "snakemake"),
        "--snakefile", str(REPO / "Snakefile"),
        "--directory", str(workdir),
        "--configfile", str(CONFIG),
        "--workflow-profile", "none",
        *args,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def cluster():
    if os.geteuid() != 0:
        pytest.fail("make test-slurm must run as root: it installs slurm-wlm and starts daemons")
    start = time.monotonic()
    subprocess.run(["bash", str(SETUP)], check=True)
    print(f"\n[test-slurm] cluster up in {time.monotonic() - start:.0f}s", flush=True)
    try:
        yield
    finally:
        subprocess.run(["bash", str(TEARDOWN)], check=False)


def _sacct(run_uuid: str) -> pd.DataFrame:
    out = subprocess.run(
        ["sacct", "-a", "-X", "-n", "-P", "--name", run_uuid,
         "--format=JobID,JobName,Comment,State,ReqTRES"],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    rows = [line.split("|") for line in out.splitlines() if line.strip()]
    jobs = pd.DataFrame(rows, columns=["jobid", "name", "comment", "state", "tres"])
    jobs["rule"] = jobs["comment"].str.extract(r"^rule_([a-z_]+?)(?:_wildcards_.*)?$")[0]
    return jobs


def _results(evaluation: dict) -> dict:
    """An evaluation JSON without its measured times."""
    return {k: v for k, v in evaluation.items() if not MEASURED.search(k)}


def _tables(workdir: Path) -> dict[str, pd.DataFrame]:
    return {p.name: pd.read_csv(p) for p in sorted((workdir / "results" / "tables").glob("*.csv"))}


def test_tiny_study_through_slurm_matches_local_run(cluster, tmp_path):
    config = yaml.safe_load(CONFIG.read_text())
    n_runs = (
        len(config["agents"])
        * len(config["seeds"])
        * sum(len(e["tasks"]) for e in config["envs"].values())
    )
    local_dir, slurm_dir = tmp_path / "local", tmp_path / "slurm"
    local_dir.mkdir()
    slurm_dir.mkdir()

    start = time.monotonic()
    # The local reference run shares the machine with the cluster's jobs: start it first.
    with open(local_dir / "snakemake.log", "w") as local_log:
        local = subprocess.Popen(
            _snakemake(local_dir, "--cores", "2"),
            env=_env(), stdout=local_log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        slurm = subprocess.run(
            _snakemake(
                slurm_dir,
                "--profile", str(PROFILE),
                # Poll sacct soon after submitting: these jobs take seconds, not hours.
                "--slurm-init-seconds-before-status-checks", "2",
                "--slurm-keep-successful-logs",
            ),
            env=_env(), capture_output=True, text=True,
        )  # fmt: skip
        slurm_s = time.monotonic() - start
        local_rc = local.wait()
    print(f"[test-slurm] slurm run {slurm_s:.0f}s, both runs {time.monotonic() - start:.0f}s")
    (slurm_dir / "snakemake.log").write_text(slurm.stdout + slurm.stderr)
    assert slurm.returncode == 0, f"slurm run failed:\n{slurm.stderr[-6000:]}"
    assert local_rc == 0, f"local run failed:\n{(local_dir / 'snakemake.log').read_text()[-6000:]}"

    # Every job went through sbatch: sacct knows it by the run's job name, rule in the comment.
    run_uuid = re.search(r"SLURM run ID: (\S+)", slurm.stderr).group(1)
    jobs = _sacct(run_uuid)
    print(jobs.to_string(index=False))
    assert (jobs["state"] == "COMPLETED").all(), jobs
    counts = jobs["rule"].value_counts()
    assert counts.get("train") == n_runs, counts
    n_evals = len(list(slurm_dir.glob("results/runs/*/*/*/*/eval/*.json")))
    assert n_evals > 0 and counts.get("evaluate") == n_evals, (counts, n_evals)
    assert counts.get("report") == 1, counts
    # The profile's `gpu: 1` reached SLURM for training only.
    train = jobs[jobs["rule"] == "train"]
    assert train["tres"].str.contains("gres/gpu=1").all(), train
    assert not jobs[jobs["rule"] != "train"]["tres"].str.contains("gpu").any(), jobs

    # Same numbers as the local run; only this machine's measured times and memory may differ.
    local_tables, slurm_tables = _tables(local_dir), _tables(slurm_dir)
    assert "table1_success.csv" in local_tables
    assert sorted(slurm_tables) == sorted(local_tables)
    for name, expected in local_tables.items():
        keep = [c for c in expected.columns if not MEASURED.search(c)]
        assert keep, name
        pd.testing.assert_frame_equal(slurm_tables[name][keep], expected[keep], obj=name)
    # The success rates themselves are compared (not mistaken for a measurement).
    assert "success_mean" in local_tables["table1_success.csv"] and not MEASURED.search("success")

    # The tiny study's policies all fail, so the tables alone say little: the training losses
    # and every episode's final observation must be the same numbers too.
    local_runs = sorted(p.relative_to(local_dir) for p in local_dir.glob("results/runs/*/*/*/*"))
    assert len(local_runs) == n_runs
    for run in local_runs:
        expected, got = (pd.read_csv(d / run / "metrics.csv") for d in (local_dir, slurm_dir))
        keep = [c for c in expected.columns if not MEASURED.search(c)]
        assert len(keep) > 2, keep
        pd.testing.assert_frame_equal(got[keep], expected[keep], obj=f"{run}/metrics.csv")
        for path in sorted((local_dir / run / "eval").glob("*.json")):
            expected, got = (json.loads((d / run / "eval" / path.name).read_text())
                             for d in (local_dir, slurm_dir))  # fmt: skip
            where = f"{run}/eval/{path.name}"
            obs_sum, expected_obs_sum = (
                e["per_episode"].pop("final_obs_sum") for e in (got, expected)
            )
            assert _results(got) == _results(expected), where
            # MuJoCo rollouts amplify float32 rounding (seen: 3e-8 apart after 200 steps);
            # a wrong checkpoint, seed or policy is off by O(1).
            np.testing.assert_allclose(
                obs_sum, expected_obs_sum, rtol=1e-3, atol=1e-3, err_msg=where
            )
