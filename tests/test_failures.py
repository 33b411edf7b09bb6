"""What a user sees when something goes wrong, through the `sorlab` command: a correct result,
or one line naming the file, key or value and what to do, with a non-zero exit; and nothing
already computed is lost. (docs/failures.md; the workflow's cases are in test_workflow.py.)"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from readonly import read_only_dir
from test_train import synthetic_dataset

from sorlab import cli
from sorlab.training import loop

DATASET = "cube-single-play-v0"
TINY = ["actor_hidden_dims=[32,32]", "batch_size=64"]


@pytest.fixture
def dataset(tmp_path) -> Path:
    path = tmp_path / "data" / f"{DATASET}.npz"
    path.parent.mkdir()
    np.savez(path, **synthetic_dataset(512))
    return path


def train_argv(dataset, out, steps=40, *extra) -> list[str]:
    return ["train", "--agent", "bc", "--dataset", str(dataset), "--task", "2", "--steps",
            str(steps), "--out", str(out), "--chunk", "10", "--log-interval", "10",
            "--checkpoint-interval", "20", "--no-progress", *extra, "--set", *TINY]  # fmt: skip


def error_line(capsys, code: int, argv: list[str]) -> str:
    """Run `sorlab ARGV`, expect exit status `code` and exactly one line on stderr."""
    assert cli.main(argv) == code
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def sorlab(*args: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "sorlab.cli", *args],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs,
    )  # fmt: skip


def steps_of(path: Path) -> list[int]:
    with open(path, newline="") as f:
        return [int(row["step"]) for row in csv.DictReader(f)]


# ----------------------------------------------------------------------------- bad data files


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]), "truncated or corrupt"),
        (lambda p: p.write_bytes(b""), "empty file (0 bytes"),
        (lambda p: p.write_text("observations,actions\n1,2\n"), "not an .npz archive"),
        (lambda p: (p.unlink(), p.mkdir()), "is a directory, not a dataset file"),
    ],
)
def test_unreadable_dataset_file_is_one_line(dataset, tmp_path, capsys, damage, reason):
    damage(dataset)
    line = error_line(capsys, 1, train_argv(dataset, tmp_path / "run"))
    assert line.startswith(f"sorlab train: error: {dataset}: ") and reason in line


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda d: d.update(actions=d["actions"][:, :4]), ["'actions' has shape (512, 4)", "(512, 5)"]),
        (lambda d: d["observations"].__setitem__((7, 3), np.nan), ["'observations' holds NaN", "(7, 3)"]),
    ],
)  # fmt: skip
def test_relabelled_dataset_is_checked_before_training(tmp_path, capsys, change, words):
    data = synthetic_dataset(512)
    change(data)
    path = tmp_path / f"{DATASET}.npz"
    np.savez(path, **data)
    line = error_line(capsys, 1, train_argv(path, tmp_path / "run"))
    assert str(path) in line and all(word in line for word in words), line
    assert not (tmp_path / "run" / "checkpoints").exists()


# ----------------------------------------------------------------------------- one writer


def test_second_writer_is_refused_and_a_killed_writer_leaves_no_stale_lock(
    dataset, tmp_path, capsys
):
    out = tmp_path / "run"
    first = sorlab(*train_argv(dataset, out, 200))
    deadline = time.monotonic() + 300
    while not (out / "config.json").exists():  # the lock is held from before config.json
        assert first.poll() is None and time.monotonic() < deadline, first.communicate()
        time.sleep(0.05)
    first.send_signal(signal.SIGSTOP)  # frozen mid-run, lock held
    try:
        line = error_line(capsys, 1, train_argv(dataset, out, 200))
        assert (
            f"run directory '{out}' is in use by another `sorlab train` (pid {first.pid})" in line
        )
    finally:
        first.kill()  # kill -9: the kernel releases its lock
        first.wait()
    assert cli.main(train_argv(dataset, out, 200)) == 0
    assert steps_of(out / "metrics.csv") == list(range(10, 201, 10))  # one writer, no duplicates


# ----------------------------------------------------------------------------- damaged runs


def corrupt_checkpoint(run: Path, step: int) -> None:
    files = [p for p in (run / "checkpoints" / str(step) / "state").rglob("*") if p.is_file()]
    data = [p for p in files if p.parent.name == "d"]
    assert data, files
    for path in data:
        path.write_bytes(path.read_bytes()[:10])


def test_unreadable_newest_checkpoint_falls_back_to_the_older_one(dataset, tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(train_argv(dataset, out, 40)) == 0
    corrupt_checkpoint(out, 40)
    capsys.readouterr()
    line = error_line(capsys, 1, ["evaluate", str(out), "--episodes", "1"])
    assert "checkpoint 40 of run" in line and "unreadable" in line and "--step 20" in line

    assert cli.main(train_argv(dataset, out, 60)) == 0
    err = capsys.readouterr().err.strip().splitlines()
    warning = [line for line in err if line.startswith("warning:")]
    assert len(warning) == 1 and "checkpoint 40" in warning[0]
    assert "resuming from step 20" in warning[0]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["resumed_from"] == 20 and summary["steps"] == 60
    assert steps_of(out / "metrics.csv") == list(range(10, 61, 10))
    assert (out / "checkpoints.unreadable" / "40").is_dir()


def test_damaged_config_json_is_named(dataset, tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(train_argv(dataset, out, 20)) == 0
    config = out / "config.json"
    text = config.read_text()
    config.write_text(text[: len(text) // 2])
    capsys.readouterr()
    line = error_line(capsys, 1, train_argv(dataset, out, 40))
    assert f"{config}: unreadable" in line and "new --out" in line
    line = error_line(capsys, 1, ["evaluate", str(out)])
    assert f"{config}: unreadable" in line

    broken = json.loads(text)
    del broken["agent"]
    config.write_text(json.dumps(broken))
    line = error_line(capsys, 1, ["evaluate", str(out)])
    assert f"{config}: lacks 'agent'" in line
    # As the workflow runs it: a run whose config.json is damaged starts afresh.
    assert cli.main([*train_argv(dataset, out, 20), "--restart-if-changed"]) == 0
    assert json.loads((out / "summary.json").read_text())["resumed_from"] == 0


# ----------------------------------------------------------------------------- writes that fail


def test_full_disk_during_a_checkpoint_is_one_line_and_resumable(dataset, tmp_path):
    out = tmp_path / "run"

    # Writes past 64 KiB fail (EFBIG), as they would with ENOSPC on a full disk.
    small_disk = (
        "import os, resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
        "resource.setrlimit(resource.RLIMIT_FSIZE, (65536, 65536)); "
        "os.execv(sys.executable, [sys.executable, '-m', 'sorlab.cli', *sys.argv[1:]])"
    )
    big = ["--set", "actor_hidden_dims=[256,256]"]  # checkpoint files beyond 64 KiB
    proc = subprocess.Popen(
        [sys.executable, "-c", small_disk, *train_argv(dataset, out, 40), *big],
        env={**os.environ, "PYTHONWARNINGS": "ignore", "PYTHONDONTWRITEBYTECODE": "1"},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"sorlab train: error: cannot write checkpoint 20 in {out}")
    assert "File too large" in lines[0] and "training resumes from the start" in lines[0]
    assert cli.main([*train_argv(dataset, out, 40), *big]) == 0  # space back: it completes


def test_read_only_output_is_one_line(dataset, tmp_path, capsys):
    with read_only_dir(tmp_path / "ro") as ro:
        line = error_line(capsys, 1, train_argv(dataset, ro / "run", 20))
    assert f"cannot write run directory '{ro / 'run'}'" in line
    assert "choose a writable location" in line


def test_eval_m_inf_is_checked_before_training(dataset, tmp_path, capsys):
    sorl = ["actor_hidden_dims=[16]", "value_hidden_dims=[16]", "batch_size=8"]
    argv = ["train", "--agent", "sorl", "--dataset", str(dataset), "--task", "2", "--steps",
            "20", "--out", str(tmp_path / "run"), "--eval-interval", "10", "--eval-m-inf", "3",
            "--no-progress", "--set", *sorl]  # fmt: skip
    line = error_line(capsys, 2, argv)  # a usage error: nothing ran
    assert "--eval-m-inf 3: agent sorl cannot act with m_inf=3" in line
    assert "power of two" in line
    assert not (tmp_path / "run").exists()


# ----------------------------------------------------------------------------- logs on resume


def test_metrics_row_straddling_a_resume_averages_every_update(dataset, tmp_path, monkeypatch):
    argv = lambda out: train_argv(dataset, out, 40, "--checkpoint-interval", "25")  # noqa: E731
    assert cli.main(argv(tmp_path / "alone")) == 0

    save = loop.save_checkpoint
    saved = []

    def interrupted_second_save(manager, step, *args):  # Ctrl-C while checkpoint 40 is written
        if saved:
            raise KeyboardInterrupt
        saved.append(step)
        save(manager, step, *args)

    monkeypatch.setattr(loop, "save_checkpoint", interrupted_second_save)
    out = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        cli.main(argv(out))
    monkeypatch.setattr(loop, "save_checkpoint", save)
    (out / "metrics.csv").unlink()  # as Snakemake deletes an incomplete job's outputs
    assert cli.main(argv(out)) == 0
    assert json.loads((out / "summary.json").read_text())["resumed_from"] == 25

    def rows(path):
        with open(path, newline="") as f:
            return [{k: v for k, v in r.items() if k != "time_s"} for r in csv.DictReader(f)]

    # Row 30 averages updates 21-30, of which 21-25 ran before the interruption.
    assert rows(out / "metrics.csv") == rows(tmp_path / "alone" / "metrics.csv")
