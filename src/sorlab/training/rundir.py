"""The run directory while `sorlab train` writes it: one writer at a time, append-only logs,
the checks before resuming, and the upkeep of its checkpoints.

`sorlab train` holds an exclusive `flock` on RUN_DIR/.lock for as long as it runs. The kernel
drops the lock when the process ends, however it ends (kill -9, out of memory, a cluster's time
limit), so a lock is never stale: a resumed run finds the directory free.

File names come from `sorlab.layout`; reading config.json and checkpoints from
`sorlab.checkpoints` (shared with `sorlab evaluate`).
"""

from __future__ import annotations

import csv
import fcntl
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from sorlab import layout
from sorlab.checkpoints import (
    checkpoint_manager,
    describe_os_error,
    error_text,
    read_run_config,
    restore_checkpoint,
    to_tuples,
)
from sorlab.errors import RunDirError, TrainError
from sorlab.training.settings import SettingsError

# Settings that must match for a run directory's checkpoint to be resumed.
RESUME_KEYS = (
    "agent", "dataset_name", "task", "seed", "obs_dim", "action_dim", "num_transitions",
    "data_fraction", "data_seed", "action_clip_eps",
)  # fmt: skip


def run_dirs(out: str, seeds: list[int]) -> list[Path]:
    """One run directory per seed: `{seed}` in `out` is replaced by the seed."""
    if len(seeds) > 1 and "{seed}" not in out:
        raise SettingsError(f"with several seeds --out must contain '{{seed}}', got {out!r}")
    dirs = [Path(out.replace("{seed}", str(seed))) for seed in seeds]
    if len(set(dirs)) != len(dirs):
        raise SettingsError(f"--seeds {seeds} repeats a seed")
    return dirs


def lock_run_dir(run_dir: Path) -> IO:
    """Create `run_dir` and take its lock; RunDirError if another process holds it or the
    directory cannot be written. Keep the returned file open while writing; close to release."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        handle = open(run_dir / layout.LOCK, "a+")
    except OSError as err:
        raise RunDirError(
            f"cannot write run directory {str(run_dir)!r}: {describe_os_error(err)}"
        ) from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise RunDirError(
            f"run directory {str(run_dir)!r} is in use by another `sorlab train` (pid {holder}); "
            "wait for it to finish, or give this run another --out"
        ) from None
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
    except OSError as err:
        handle.close()
        raise RunDirError(
            f"cannot write run directory {str(run_dir)!r}: {describe_os_error(err)}"
        ) from None
    return handle


def lock_run_dirs(dirs: list[Path]) -> list[IO]:
    """`lock_run_dir` for every directory; none stays locked if one cannot be."""
    locks = []
    try:
        for run_dir in dirs:
            locks.append(lock_run_dir(run_dir))
    except RunDirError:
        for lock in locks:
            lock.close()
        raise
    return locks


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic | np.ndarray):
        return obj.tolist()
    raise TypeError(f"cannot write {type(obj).__name__} to JSON")


def write_json(path: Path, obj: Any) -> None:
    """config.json / summary.json, atomically (numpy scalars and arrays as lists)."""
    layout.write_json(path, obj, indent=2, default=_json_default)


class CsvLog:
    """Append-only CSV with a fixed header, whose rows are also kept in memory so that every
    checkpoint can store them: a resumed run rewrites the file from its checkpoint's rows, so
    a file deleted or truncated meanwhile (e.g. by Snakemake, as an incomplete job's output)
    loses nothing. Without rows (a checkpoint from an older version) the file's rows up to
    `keep_until` are kept."""

    def __init__(self, path: Path, keep_until: int, rows: list[dict] | None = None):
        self.path = path
        if rows is None:
            rows = []
            if path.exists() and keep_until > 0:
                with path.open(newline="") as f:
                    rows = [r for r in csv.DictReader(f) if int(float(r["step"])) <= keep_until]
        self.rows = [dict(r) for r in rows]
        self.fields: list[str] | None = list(self.rows[0]) if self.rows else None
        tmp = path.with_name(path.name + ".tmp")
        with tmp.open("w", newline="") as f:
            if self.fields:
                writer = csv.DictWriter(f, self.fields, extrasaction="ignore")
                writer.writeheader()
                writer.writerows(self.rows)
        os.replace(tmp, path)

    def write(self, row: dict) -> None:
        self.rows.append(dict(row))
        with self.path.open("a", newline="") as f:
            if self.fields is None:
                self.fields = list(row)
                csv.DictWriter(f, self.fields).writeheader()
            csv.DictWriter(f, self.fields, extrasaction="ignore").writerow(row)


@dataclass
class Run:
    """Host-side bookkeeping of one seed's run directory."""

    seed: int
    dir: Path
    config: dict
    manager: Any
    metrics_log: CsvLog | None = None
    eval_log: CsvLog | None = None
    prior: dict = field(default_factory=lambda: {"wall_s": 0.0, "train_s": 0.0, "eval_s": 0.0})
    sums: dict = field(default_factory=dict)
    count: int = 0
    eval_s: float = 0.0
    final_eval: dict | None = None
    error: str | None = None
    restored: tuple | None = None  # (step, (state, train_key, meta)) of the newest checkpoint


# ----------------------------------------------------------------------------- resuming


def has_checkpoints(run_dir: Path) -> bool:
    folder = run_dir / layout.CHECKPOINTS
    return folder.is_dir() and any(p.name.isdigit() for p in folder.iterdir())


def check_resumable(run_dir: Path, config: dict) -> None:
    """TrainError unless the checkpoints in `run_dir` are of the run `config` describes."""
    path = run_dir / layout.CONFIG
    if not path.is_file():
        raise TrainError(f"{str(run_dir)!r} holds checkpoints but no config.json; cannot resume")
    try:
        old = read_run_config(run_dir)
    except RunDirError as err:  # damaged: --restart-if-changed starts afresh, as for a change
        raise TrainError(str(err)) from None
    diffs = [k for k in RESUME_KEYS if old.get(k) != config.get(k)]
    old_agent = to_tuples(old.get("agent_config", {}))
    diffs += [
        f"agent_config.{k}"
        for k in sorted(set(old_agent) | set(config["agent_config"]))
        if old_agent.get(k) != config["agent_config"].get(k)
    ]
    if diffs:
        raise TrainError(
            f"run directory {str(run_dir)!r} holds a checkpoint of a different run "
            f"(differs in {', '.join(diffs)}); use another --out or delete it"
        )


def drop_unreadable_checkpoints(run: Run, abstract, keep: int) -> None:
    """Restore the run's newest checkpoint; while it is unreadable (damaged by a crash or a
    full disk), move it aside to checkpoints.unreadable/ with a warning and try the older one,
    which is kept for this reason. The readable newest one is kept on the run for resuming."""
    while True:
        steps = sorted(run.manager.all_steps())
        if not steps:
            return
        try:
            run.restored = (steps[-1], restore_checkpoint(run.manager, steps[-1], abstract))
            return
        except Exception as err:
            aside = run.dir / "checkpoints.unreadable"
            aside.mkdir(exist_ok=True)
            shutil.rmtree(aside / str(steps[-1]), ignore_errors=True)  # an older unreadable copy
            run.manager.close()
            os.replace(run.dir / layout.CHECKPOINTS / str(steps[-1]), aside / str(steps[-1]))
            run.manager = checkpoint_manager(run.dir, keep)
            older = f"resuming from step {steps[-2]}" if len(steps) > 1 else "starting afresh"
            print(
                f"warning: checkpoint {steps[-1]} in {run.dir / layout.CHECKPOINTS} is unreadable "
                f"({error_text(err)}); moved to {aside}, {older}",
                file=sys.stderr,
            )


def align_checkpoints(runs: list[Run], keep: int) -> None:
    """Bring several seeds' checkpoints to one step so they resume as one program (a job killed
    while saving, or a seed added to a grouped workflow job): drop the steps past the newest
    step they all hold; with no common step, start them all afresh."""
    held = [set(run.manager.all_steps()) for run in runs]
    if len({max(h, default=0) for h in held}) == 1:
        return
    common = max(set.intersection(*held), default=0)
    print(f"--restart-if-changed: the seeds' checkpoints differ; resuming all from step {common}"
          if common else "--restart-if-changed: the seeds share no checkpoint; starting afresh",
          file=sys.stderr)  # fmt: skip
    for run, have in zip(runs, held, strict=True):
        if common:
            for step in sorted(step for step in have if step > common):
                run.manager.delete(step)
        elif have:
            run.manager.close()
            shutil.rmtree(run.dir / layout.CHECKPOINTS)
            run.manager = checkpoint_manager(run.dir, keep)


def start_step(runs: list[Run], steps: int) -> int:
    """The newest checkpoint step every run directory holds (0: start fresh)."""
    held = [set(run.manager.all_steps()) for run in runs]
    common = set.intersection(*held)
    start = max(common, default=0)
    for run, have in zip(runs, held, strict=True):
        if max(have, default=0) > start:
            raise TrainError(
                f"run directory {str(run.dir)!r} holds checkpoints {sorted(have)}, but the newest "
                f"step common to all seeds' directories is {start}; resume the seeds separately"
            )
    if start > steps:
        raise TrainError(
            f"run directory {str(runs[0].dir)!r} holds a checkpoint at step {start}, beyond --steps {steps}"
        )
    return start


def final_eval_from_curve(run_dir: Path, step: int) -> dict | None:
    """The evaluation at `step` read back from eval_curve.csv (a run stopped after its last
    checkpoint, before summary.json)."""
    path = run_dir / layout.EVAL_CURVE
    if not path.exists():
        return None
    with path.open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if int(float(r["step"])) == step]
    if not rows:
        return None
    return {"success": float(rows[-1]["success"]), "return": float(rows[-1]["return"])}
