"""The trainer's transitions: a dataset file loaded as the batches `agent.update` sees.

`load_dataset` reads an OGBench file (relabelled for the task by `sorlab.data.load`) or a file
already in training form, checks it, clips its actions as the released code does and adds
`next_actions`; `example_batch` is a zero batch with the same keys and shapes, for `agent.init`
and shape inference. JAX-free (numpy only), so the trainer, the evaluator's inference checks,
the checkpoint reader, the benchmark and the value study all share it without importing each
other.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from sorlab.errors import TrainError

DATA_KEYS = ("observations", "actions", "rewards", "masks", "next_observations", "terminals")
RELABELLED_KEYS = ("observations", "actions", "rewards", "masks", "next_observations")
# The released SORL and FQL code clip dataset actions to [-1 + eps, 1 - eps] before training.
ACTION_CLIP_EPS = 1e-5


def dataset_name(path: str | os.PathLike) -> str:
    """`resources/datasets/cube-single-play-v0.npz` -> `cube-single-play-v0`."""
    return Path(path).name.removesuffix(".npz")


def _read(path: Path, task: int) -> dict[str, np.ndarray]:
    """The file's arrays: as they are if already relabelled, else through load_training_data."""
    from sorlab.data import DatasetError, load_training_data
    from sorlab.data.load import npz_keys, read_npz, validate_transitions

    try:
        keys = set(npz_keys(path))
        if all(k in keys for k in RELABELLED_KEYS):
            data = read_npz(path, [k for k in DATA_KEYS if k in keys])
            validate_transitions(path, data, dataset_name(path))
            return data
        return load_training_data(path, task)
    except DatasetError as err:
        raise TrainError(str(err)) from None
    except (OSError, ValueError, KeyError) as err:  # past the checks, in ogbench's own loader
        raise TrainError(f"cannot load dataset {str(path)!r} for task {task}: {err}") from None


def load_dataset(
    path: str | os.PathLike, task: int, action_clip_eps: float = ACTION_CLIP_EPS
) -> dict[str, np.ndarray]:
    """Training transitions from `path` (float32, keys DATA_KEYS plus `next_actions`).

    An OGBench file (observations, actions, terminals, qpos, ...) goes through
    `sorlab.data.load_training_data`, which validates it and relabels rewards for `task`. A file
    that already holds rewards, masks and next_observations (e.g. a synthetic dataset) is used
    as is, after the same kind of checks (widths of the dataset's env, finite values). Actions
    are clipped to [-1 + action_clip_eps, 1 - action_clip_eps] as in the released code (0: not
    clipped).
    """
    path = Path(path)
    data = {k: np.asarray(v, np.float32) for k, v in _read(path, task).items()}
    n = len(data["observations"])
    data.setdefault("terminals", np.zeros(n, np.float32))
    for key in DATA_KEYS:
        if key not in data:
            raise TrainError(f"dataset {str(path)!r} lacks {key!r}")
        if len(data[key]) != n:
            raise TrainError(
                f"dataset {str(path)!r}: {key!r} has {len(data[key])} rows, observations {n}"
            )
    if n == 0:
        raise TrainError(f"dataset {str(path)!r} holds no transitions")
    data = {k: data[k] for k in DATA_KEYS}
    if action_clip_eps > 0:
        data["actions"] = np.clip(data["actions"], -1 + action_clip_eps, 1 - action_clip_eps)
    # The next transition's action (ReBRAC's critic uses it), as in the released FQL code.
    data["next_actions"] = data["actions"][np.minimum(np.arange(n) + 1, n - 1)]
    return data


def example_batch(obs_dim: int, action_dim: int, size: int = 1) -> dict[str, np.ndarray]:
    """A zero batch with the trainer's keys and shapes (for `init` and shape inference)."""
    z = lambda *shape: np.zeros((size, *shape), np.float32)  # noqa: E731
    return {
        "observations": z(obs_dim),
        "actions": z(action_dim),
        "rewards": z(),
        "masks": z(),
        "next_observations": z(obs_dim),
        "terminals": z(),
        "next_actions": z(action_dim),
    }
