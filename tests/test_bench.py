"""`sorlab bench update` prints one JSON line with throughput and FLOP rates."""

from __future__ import annotations

import json

import pytest

from sorlab import cli
from sorlab.bench import matmul_gflops


def test_bench_update_prints_one_json_line(capsys):
    argv = ["bench", "update", "--agent", "bc", "--obs-dim", "6", "--action-dim", "3",
            "--updates", "20", "--batch-size", "32", "--set", "actor_hidden_dims=[16,16]"]  # fmt: skip
    assert cli.main(argv) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    result = json.loads(lines[0])
    assert result["agent"] == "bc" and result["updates"] == 20 and result["batch_size"] == 32
    assert result["finite"] is True
    assert result["updates_per_s"] > 0 and result["matmul_gflops"] > 0
    # Forward + backward of a 6-16-16-3 MLP on 32 rows: ~3 x 2 x 32 x 400 multiply-adds.
    assert 3e-5 < result["update_gflop"] < 3e-4
    assert result["update_gflops"] == pytest.approx(
        result["update_gflop"] * result["updates_per_s"]
    )
    assert result["ratio"] == pytest.approx(result["update_gflops"] / result["matmul_gflops"])


def test_bench_update_rejects_an_unknown_key(capsys):
    assert cli.main(["bench", "update", "--agent", "bc", "--set", "nope=1"]) == 2
    assert "unknown config key 'nope'" in capsys.readouterr().err


def test_matmul_rate_is_plausible():
    assert 0.1 < matmul_gflops(n=128, min_seconds=0.05) < 1e6


def test_bench_update_vmaps_seeds(capsys):
    argv = ["bench", "update", "--agent", "bc", "--obs-dim", "6", "--action-dim", "3",
            "--updates", "10", "--batch-size", "32", "--seeds", "2",
            "--set", "actor_hidden_dims=[16,16]"]  # fmt: skip
    assert cli.main(argv) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["seeds"] == 2 and result["finite"] is True
    assert result["updates_per_s_per_seed"] == pytest.approx(result["updates_per_s"] / 2)
