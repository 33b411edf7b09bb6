"""Run directories kept safe: one writer at a time, a readable config.json, clear I/O errors.

`sorlab train` holds an exclusive `flock` on RUN_DIR/.lock for as long as it runs. The kernel
drops the lock when the process ends, however it ends (kill -9, out of memory, a cluster's time
limit), so a lock is never stale: a resumed run finds the directory free.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
from pathlib import Path
from typing import IO

from sorlab.errors import RunDirError  # noqa: F401

LOCK_NAME = ".lock"
# Keys `sorlab train` writes to config.json that readers of a run need.
CONFIG_KEYS = ("agent", "agent_config", "dataset_name", "task", "seed", "obs_dim", "action_dim")


def describe_os_error(err: OSError) -> str:
    """'PATH: No space left on device' from an OSError (the path if it names one)."""
    what = err.strerror or str(err)
    name = err.filename if err.filename is not None else None
    hint = ""
    if err.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        hint = "; free space there (or use another --out) and rerun: the run resumes from its last checkpoint"
    elif err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        hint = "; choose a writable location"
    return f"{name}: {what}{hint}" if name is not None else f"{what}{hint}"


def lock_run_dir(run_dir: Path) -> IO:
    """Create `run_dir` and take its lock; RunDirError if another process holds it or the
    directory cannot be written. Keep the returned file open while writing; close to release."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        handle = open(run_dir / LOCK_NAME, "a+")
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


def read_run_config(run_dir: Path) -> dict:
    """config.json of a run directory, checked for the keys readers need; RunDirError naming the
    file and what to do if it is missing, unreadable or incomplete."""
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise RunDirError(f"{str(run_dir)!r} is not a run directory: no config.json")
    try:
        config = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise RunDirError(
            f"{path}: unreadable ({err}); the file is damaged: retrain into a new --out "
            "(or delete the run directory)"
        ) from None
    if not isinstance(config, dict):
        raise RunDirError(f"{path}: expected a JSON object, found {type(config).__name__}")
    missing = [k for k in CONFIG_KEYS if k not in config]
    if missing:
        raise RunDirError(
            f"{path}: lacks {', '.join(map(repr, missing))}, so it is not a config.json written "
            "by `sorlab train`; retrain into a new --out (or delete the run directory)"
        )
    return config
