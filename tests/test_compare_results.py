"""scripts/compare_results.py: the before/after comparison of two workflow output trees."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import orbax.checkpoint as ocp
import pytest

SCRIPT = Path(__file__).parents[1] / "scripts" / "compare_results.py"


@pytest.fixture(scope="module")
def compare():
    spec = importlib.util.spec_from_file_location("compare_results", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


RUN = "results/runs/sorl/env/task2/seed1"


def write_tree(root: Path, *, wall_s: float, success: float, loss: float, weight: float) -> None:
    run = root / RUN
    run.mkdir(parents=True)
    summary = {"steps": 10, "wall_s": wall_s, "final_eval": {"success": success, "wall_s": wall_s}}
    (run / "summary.json").write_text(json.dumps(summary))
    (run / "metrics.csv").write_text(f"step,time_s,actor/loss\n10,{wall_s},{loss}\n")
    bench = root / "results/benchmarks/train.tsv"
    bench.parent.mkdir(parents=True)
    bench.write_text(f"s\th:m:s\n{wall_s}\t0:00:01\n")
    table = root / "results/tables/table1_success.md"
    table.parent.mkdir(parents=True)
    table.write_text(f"| agent | success |\n|---|---|\n| sorl | {success} |\n")
    tree = {"agent": {"w": np.full((2, 3), weight, np.float32)}, "step": np.int32(10)}
    ocp.PyTreeCheckpointer().save((run / "checkpoints/10/state").absolute(), tree)


def test_timings_alone_are_equal(compare, tmp_path):
    write_tree(tmp_path / "a", wall_s=1.0, success=0.5, loss=0.25, weight=1.0)
    write_tree(tmp_path / "b", wall_s=2.0, success=0.5, loss=0.25, weight=1.0)
    verdicts = compare.compare_trees(tmp_path / "a", tmp_path / "b")
    assert [n for n, _ in verdicts["equal but timings"]] == [
        f"{RUN}/metrics.csv",
        f"{RUN}/summary.json",
    ]
    assert [n for n, _ in verdicts["timing only"]] == ["results/benchmarks/train.tsv"]
    assert verdicts["equal arrays"] == [(f"{RUN}/checkpoints/10", None)]
    assert "different" not in verdicts
    assert compare.main([str(tmp_path / "a"), str(tmp_path / "b")]) == 0


def test_a_changed_number_is_found(compare, tmp_path):
    write_tree(tmp_path / "a", wall_s=1.0, success=0.5, loss=0.25, weight=1.0)
    write_tree(tmp_path / "b", wall_s=1.0, success=0.52, loss=0.25000001, weight=1.0000001)
    different = dict(compare.compare_trees(tmp_path / "a", tmp_path / "b")["different"])
    assert different[f"{RUN}/summary.json"] == "/final_eval/success: 0.5 vs 0.52"
    assert "actor/loss" in different[f"{RUN}/metrics.csv"]
    assert different["results/tables/table1_success.md"].startswith("line 3")
    assert different[f"{RUN}/checkpoints/10"] == "array /agent/w differs"
    assert compare.main([str(tmp_path / "a"), str(tmp_path / "b")]) == 1


def test_a_missing_file_is_named(compare, tmp_path):
    write_tree(tmp_path / "a", wall_s=1.0, success=0.5, loss=0.25, weight=1.0)
    write_tree(tmp_path / "b", wall_s=1.0, success=0.5, loss=0.25, weight=1.0)
    (tmp_path / "b" / RUN / "metrics.csv").unlink()
    verdicts = compare.compare_trees(tmp_path / "a", tmp_path / "b")
    assert verdicts["only in one tree"] == [(f"{RUN}/metrics.csv", "before")]


def test_a_tree_without_results_is_refused(compare, tmp_path):
    write_tree(tmp_path / "a", wall_s=1.0, success=0.5, loss=0.25, weight=1.0)
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit, match="empty has no results/"):
        compare.main([str(tmp_path / "a"), str(tmp_path / "empty")])


def test_datasets_by_their_arrays_and_an_ignored_key(compare, tmp_path):
    """A dataset whose provenance record differs but whose arrays do not is 'equal arrays';
    `--ignore-key platform` leaves the platform record out of every JSON."""
    for name, record, value, isa in (("a", "v1", 1.0, "AVX2"), ("b", "v2", 1.0, "native")):
        write_tree(tmp_path / name, wall_s=1.0, success=0.5, loss=0.25, weight=1.0)
        data = tmp_path / name / "resources/datasets"
        data.mkdir(parents=True)
        np.savez(data / "d.npz", actions=np.full(3, value), provenance=np.array(record))
        config = {"seed": 1, "versions": {"platform": {"xla_cpu_max_isa": isa}}}
        (tmp_path / name / RUN / "config.json").write_text(json.dumps(config))
    verdicts = compare.compare_trees(tmp_path / "a", tmp_path / "b")
    assert ("resources/datasets/d.npz", None) in verdicts["equal arrays"]
    assert dict(verdicts["different"]) == {
        f"{RUN}/config.json": "/versions/platform/xla_cpu_max_isa: 'AVX2' vs 'native'"
    }
    args = [str(tmp_path / "a"), str(tmp_path / "b"), "--ignore-key", "platform"]
    assert compare.main(args) == 0
    np.savez(tmp_path / "b/resources/datasets/d.npz", actions=np.full(3, 2.0))
    different = dict(compare.compare_trees(tmp_path / "a", tmp_path / "b")["different"])
    assert different["resources/datasets/d.npz"] == "array actions differs"
