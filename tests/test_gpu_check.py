"""benchmarks/gpu_check.sh without a GPU: it says so and still writes its CSV (quick mode)."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "gpu_check.sh"


def test_gpu_check_falls_back_to_the_cpu_and_writes_its_csv(tmp_path):
    out = tmp_path / "gpu_check.csv"
    env = {**os.environ, "PYTHON": sys.executable, "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run(
        [str(SCRIPT), "--quick", "--out", str(out)], env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "NO GPU FOUND" in proc.stdout and "NO GPU FOUND" in proc.stderr
    with out.open(newline="") as f:
        rows = list(csv.DictReader(f))
    updates = [r for r in rows if r["kind"] == "update"]
    assert [(r["agent"], r["seeds"]) for r in updates] == [
        ("sorl", "1"),
        ("fql", "1"),
        ("sorl", "2"),
    ]
    for row in updates:
        assert row["status"] == "ok" and float(row["updates_per_s"]) > 0
        assert row["gpu_found"] == "False" and row["backend"] == "cpu" and row["jax"]
    grouped = updates[2]
    assert float(grouped["updates_per_s_per_seed"]) * 2 == float(grouped["updates_per_s"])
    (evaluation,) = [r for r in rows if r["kind"] == "evaluate"]
    assert evaluation["status"] == "ok" and evaluation["episodes"] == "1"
    assert 0.0 <= float(evaluation["success"]) <= 1.0
    assert f"wrote {out}" in proc.stdout
