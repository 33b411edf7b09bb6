"""A run directory read back: its config.json and its orbax checkpoints.

The neutral ground of training/ and evaluation/: `sorlab train` saves and restores checkpoints
through it, `sorlab evaluate` and the value study open a finished run with `load_run`, and
neither needs the other for it. File names come from `sorlab.layout`. JAX and orbax are
imported when a checkpoint is touched, not when this module is.

A checkpoint is a composite of `state` ({"agent": agent state, "train_key", "step"}, orbax
StandardSave) and `meta` (JSON: timings and the rows a resumed run needs to continue its logs).
"""

from __future__ import annotations

import errno
import json
import os
import re
import sys
import threading
from pathlib import Path
from types import ModuleType
from typing import Any

from sorlab import layout
from sorlab.errors import CheckpointWriteError, RunDirError

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


def read_run_config(run_dir: str | os.PathLike) -> dict:
    """config.json of a run directory, checked for the keys readers need; RunDirError naming the
    file and what to do if it is missing, unreadable or incomplete."""
    path = Path(run_dir) / layout.CONFIG
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


def to_tuples(value: Any) -> Any:
    """Lists (from YAML/JSON) become tuples, so agent configs are hashable static fields."""
    if isinstance(value, list | tuple):
        return tuple(to_tuples(v) for v in value)
    if isinstance(value, dict):
        return {k: to_tuples(v) for k, v in value.items()}
    return value


def abstract_state(agent: ModuleType, agent_config: dict, obs_dim: int, action_dim: int):
    """The shapes and dtypes of `agent.init`'s state (nothing is computed)."""
    import jax

    from sorlab.data.transitions import example_batch

    batch = example_batch(obs_dim, action_dim)
    return jax.eval_shape(lambda: agent.init(jax.random.PRNGKey(0), batch, agent_config))


# ----------------------------------------------------------------------------- orbax


def checkpoint_manager(run_dir: Path, keep: int = 2):
    """An orbax CheckpointManager of RUN_DIR/checkpoints keeping the newest `keep` (0: all)."""
    import orbax.checkpoint as ocp

    options = ocp.CheckpointManagerOptions(
        max_to_keep=keep if keep > 0 else None, create=True, enable_async_checkpointing=False
    )
    return ocp.CheckpointManager((Path(run_dir) / layout.CHECKPOINTS).absolute(), options=options)


def save_checkpoint(manager, step: int, state, train_key, meta: dict) -> None:
    """Write checkpoint `step`; CheckpointWriteError in one line if it cannot be written."""
    import logging

    import jax.numpy as jnp
    import orbax.checkpoint as ocp

    tree = {"agent": state, "train_key": train_key, "step": jnp.int32(step)}
    absl_logger = logging.getLogger("absl")
    level = absl_logger.level
    absl_logger.setLevel(logging.CRITICAL)  # orbax logs a failed write's traceback; we name it
    threading.excepthook = _quiet_closed_loop  # a failed write's threads, see below
    sys.unraisablehook = _quiet_closed_loop_unraisable
    try:
        manager.save(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(tree), meta=ocp.args.JsonSave(meta)
            ),
            force=True,
        )
        manager.wait_until_finished()
    except Exception as err:  # orbax/tensorstore wrap OS errors (full disk, quota) in their own
        # The failed write's asyncio tasks are collected later, each logging its traceback;
        # the one-line error below names the failure, and the run is about to stop.
        logging.getLogger("asyncio").setLevel(logging.CRITICAL)
        last = [s for s in manager.all_steps() if s != step]
        resume = f"step {max(last)}" if last else "the start"
        raise CheckpointWriteError(
            f"cannot write checkpoint {step} in {manager.directory}: {error_text(err)}; free "
            f"space there (or use another --out) and rerun: training resumes from {resume}"
        ) from None
    finally:
        absl_logger.setLevel(level)


def _quiet_closed_loop(args) -> None:
    """After a failed checkpoint write, orbax's worker threads may call into the asyncio loop
    it has already closed; their 'Event loop is closed' tracebacks would bury the one-line
    error that names the failure. Any other thread exception is printed as usual."""
    if isinstance(args.exc_value, RuntimeError) and "Event loop is closed" in str(args.exc_value):
        return
    threading.__excepthook__(args)


def _quiet_closed_loop_unraisable(args) -> None:
    """`_quiet_closed_loop` for exceptions raised in callbacks from tensorstore's threads."""
    if isinstance(args.exc_value, RuntimeError) and "Event loop is closed" in str(args.exc_value):
        return
    sys.__unraisablehook__(args)


def error_text(err: BaseException, limit: int = 200) -> str:
    """An exception's message on one line; the OS error alone where a library wraps one."""
    text = " ".join(str(err).split())
    code = re.search(r"os_error_code='?(\d+)", text)
    if code:
        return f"{os.strerror(int(code[1]))} (errno {code[1]})"
    text = text.split(" See full TensorStore details")[0] or type(err).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def restore_checkpoint(manager, step: int, abstract) -> tuple[Any, Any, dict]:
    """(agent state, train key, meta) of checkpoint `step`; `abstract` is `abstract_state`'s."""
    import jax
    import jax.numpy as jnp
    import orbax.checkpoint as ocp

    tree = {"agent": abstract, "train_key": jax.random.PRNGKey(0), "step": jnp.int32(0)}
    tree = jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)
    restored = manager.restore(
        step,
        args=ocp.args.Composite(state=ocp.args.StandardRestore(tree), meta=ocp.args.JsonRestore()),
    )
    tree = restored.state
    if int(tree["step"]) != step:
        raise RunDirError(f"checkpoint {step} holds step {int(tree['step'])}")
    return tree["agent"], tree["train_key"], dict(restored.meta)


# ----------------------------------------------------------------------------- a finished run


def load_run(run_dir: str | os.PathLike, step: int | None = None) -> tuple[ModuleType, Any, dict]:
    """(agent module, agent state, config.json contents) of a run's checkpoint (default newest)."""
    agent, state, config, _ = load_checkpoint(run_dir, step)
    return agent, state, config


def load_checkpoint(
    run_dir: str | os.PathLike, step: int | None = None
) -> tuple[ModuleType, Any, dict, int]:
    """`load_run` and the step of the checkpoint restored.

    A missing or unreadable checkpoint is a RunDirError that names it and the older readable
    one."""
    from sorlab.agents import get_agent

    run_dir = Path(run_dir)
    config = read_run_config(run_dir)
    try:
        agent = get_agent(config["agent"])
    except ValueError as err:
        raise RunDirError(f"{run_dir / layout.CONFIG}: {err}") from None
    agent_config = to_tuples(config["agent_config"])
    manager = checkpoint_manager(run_dir, keep=0)
    try:
        steps = sorted(manager.all_steps())
        if not steps:
            raise RunDirError(f"run {str(run_dir)!r} holds no checkpoint")
        if step is None:
            step = steps[-1]
        elif step not in steps:
            raise RunDirError(
                f"run {str(run_dir)!r} has no checkpoint at step {step}; it has {steps}"
            )
        abstract = abstract_state(agent, agent_config, config["obs_dim"], config["action_dim"])
        try:
            state, _, _ = restore_checkpoint(manager, step, abstract)
        except Exception as err:
            raise RunDirError(_unreadable(run_dir, step, steps, err)) from None
    finally:
        manager.close()
    return agent, state, config, step


def _unreadable(run_dir: Path, step: int, steps: list[int], err: Exception) -> str:
    older = [s for s in steps if s < step]
    hint = (
        f"use the older one with --step {older[-1]}, or retrain from it (`sorlab train` "
        f"on this run directory resumes from step {older[-1]}; in the workflow, delete "
        f"{run_dir / layout.SUMMARY} and rerun)"
        if older
        else "retrain the run"
    )
    return f"checkpoint {step} of run {str(run_dir)!r} is unreadable ({error_text(err)}); {hint}"
