"""Load an OGBench dataset file for training, with singletask rewards, and make the matching env.

Rewards come from ogbench's own loader and relabelling. Evaluation envs use
`success_timing='post'`: ogbench >= 1.2.0 scores a singletask step by the state before the action,
ogbench 1.1.0 (which the SORL and FQL papers used) by the state after it. The relabelling of the
data is the same in both versions (rewards from each transition's current state).
Actions are returned as stored; the trainer clips them (`sorlab train --action-clip-eps`).
"""

from __future__ import annotations

import functools
import zipfile
import zlib
from pathlib import Path

import numpy as np

from sorlab.data.names import VAL_SUFFIX, DatasetError, check_known, split_name

NUM_TASKS = 5
SUCCESS_TIMING = "post"  # ogbench 1.1.0 behaviour, used for the papers' numbers
TRAINING_KEYS = ("observations", "actions", "rewards", "masks", "next_observations", "terminals")
# dtypes of the official files.
_FLOAT_KEYS = ("observations", "actions", "qpos", "qvel")


def _singletask_ids(dataset: str, task: int) -> tuple[str, str]:
    """(name with dataset type, gymnasium id) of the singletask env for (dataset, task)."""
    env, dtype, ver = split_name(dataset)
    if (
        isinstance(task, bool)
        or not isinstance(task, int | np.integer)
        or not 1 <= task <= NUM_TASKS
    ):
        raise DatasetError(f"task must be an integer in 1..{NUM_TASKS}, got {task!r}")
    return f"{env}-{dtype}-singletask-task{task}-{ver}", f"{env}-singletask-task{task}-{ver}"


def env_name(dataset: str, task: int) -> str:
    """'cube-single-play-v0', 2 -> 'cube-single-play-singletask-task2-v0'."""
    import gymnasium

    name, gym_id = _singletask_ids(dataset, task)
    check_known(dataset)
    if gym_id not in gymnasium.registry:
        raise DatasetError(f"ogbench has no singletask environment for {dataset!r} ({gym_id!r})")
    return name


def make_env(dataset: str, task: int, **env_kwargs):
    """ogbench's singletask evaluation env for (dataset, task), with success_timing='post'."""
    import ogbench

    env_kwargs.setdefault("success_timing", SUCCESS_TIMING)
    return ogbench.make_env_and_datasets(env_name(dataset, task), env_only=True, **env_kwargs)


def dataset_name_of(path: str | Path) -> str:
    """resources/datasets/cube-single-play-v0-val.npz -> 'cube-single-play-v0'."""
    stem = Path(path).name.removesuffix(".npz")
    return stem.removesuffix(VAL_SUFFIX)


def _expected_shapes(env) -> dict[str, tuple[int, ...]]:
    unwrapped = env.unwrapped
    shapes = {
        "observations": env.observation_space.shape,
        "actions": env.action_space.shape,
        "qpos": (unwrapped.model.nq,),
        "qvel": (unwrapped.model.nv,),
    }
    if hasattr(unwrapped, "_cur_button_states"):
        shapes["button_states"] = (unwrapped._num_buttons,)
    return shapes


_ZIP_MAGIC = b"PK\x03\x04"
_GET_IT = "get it again with `sorlab data generate` or `sorlab data download`"


def npz_keys(path: str | Path) -> list[str]:
    """The array names in an .npz file; DatasetError naming the file if it cannot be one."""
    path = Path(path)
    if path.is_dir():
        raise DatasetError(f"{path}: is a directory, not a dataset file")
    if not path.is_file():
        name = path.name.removesuffix(".npz").removesuffix("-val")
        raise DatasetError(
            f"{path}: no such dataset file; make it with `sorlab data generate {name} --out "
            f"{path.parent}` (official size; add --episodes N for a small one, e.g. 20 in about "
            f"20 s) or get the official file with `sorlab data download {name} --out {path.parent}`"
        )
    with open(path, "rb") as f:
        head = f.read(4)
    if not head:
        raise DatasetError(f"{path}: empty file (0 bytes; an interrupted copy?); {_GET_IT}")
    if head != _ZIP_MAGIC:
        raise DatasetError(
            f"{path}: not an .npz archive (it starts with {head!r}, not a zip header); {_GET_IT}"
        )
    try:
        with np.load(path, allow_pickle=False) as archive:
            return list(archive.files)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as err:
        raise DatasetError(
            f"{path}: not a readable .npz archive (truncated or corrupt?): {err}"
        ) from None


def read_npz(path: str | Path, keys: list[str]) -> dict[str, np.ndarray]:
    """`keys` of an .npz file; DatasetError naming the file if it or a key is unreadable."""
    path = Path(path)
    files = npz_keys(path)
    missing = [k for k in keys if k not in files]
    if missing:
        raise DatasetError(f"{path}: missing key(s) {', '.join(missing)} (has {', '.join(files)})")
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {k: archive[k] for k in keys}
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as err:
        raise DatasetError(
            f"{path}: not a readable .npz archive (truncated or corrupt?): {err}"
        ) from None


@functools.lru_cache(maxsize=32)
def env_widths(dataset: str) -> tuple[int, int]:
    """(observation width, action width) of the dataset's environment."""
    env = make_env(dataset, 1)
    widths = int(np.prod(env.observation_space.shape)), int(np.prod(env.action_space.shape))
    env.close()
    return widths


def validate_transitions(path: str | Path, data: dict[str, np.ndarray], dataset: str) -> None:
    """Check transitions already in training form (observations, actions, rewards, masks,
    next_observations, optional terminals): shapes, widths of the dataset's env, finite values."""
    obs_dim, action_dim = env_widths(dataset)
    n = len(data["observations"])
    want = {
        "observations": (n, obs_dim),
        "next_observations": (n, obs_dim),
        "actions": (n, action_dim),
        "rewards": (n,),
        "masks": (n,),
        "terminals": (n,),
    }
    for key, array in data.items():
        if key not in want:
            continue
        if array.shape != want[key]:
            raise DatasetError(
                f"{path}: key {key!r} has shape {array.shape}, expected {want[key]} "
                f"({dataset}: observations {obs_dim} wide, actions {action_dim} wide)"
            )
        if not np.issubdtype(array.dtype, np.number) and array.dtype != np.bool_:
            raise DatasetError(f"{path}: key {key!r} has dtype {array.dtype}, expected numbers")
        if not np.isfinite(np.asarray(array, np.float64)).all():
            bad = np.argwhere(~np.isfinite(np.asarray(array, np.float64)))[0]
            raise DatasetError(
                f"{path}: key {key!r} holds NaN or inf (first at index {tuple(bad.tolist())})"
            )
    if n == 0:
        raise DatasetError(f"{path}: holds no transitions")


def validate_file(path: str | Path, dataset: str | None = None, env=None) -> None:
    """Check an OGBench .npz file; DatasetError naming the file and the problem if it is unusable.

    Checks: readable archive, every key relabelling needs, official dtypes, shapes that match the
    environment, finite values, and a last step that ends an episode.
    """
    path = Path(path)
    dataset = dataset or dataset_name_of(path)
    try:
        check_known(dataset)
    except DatasetError as err:
        raise DatasetError(f"{path}: {err}") from None
    npz_keys(path)  # a missing, empty or non-archive file is named before building the env
    env = env or make_env(dataset, 1)
    expected = _expected_shapes(env)
    arrays = read_npz(path, ["terminals", *expected])

    n = len(arrays["terminals"])
    for key, array in arrays.items():
        if key == "terminals":
            want_dtype_ok, want = array.dtype == np.bool_, "bool"
            shape = (n,)
        elif key == "button_states":
            want_dtype_ok, want = np.issubdtype(array.dtype, np.integer), "an integer dtype"
            shape = (n, *expected[key])
        else:
            want_dtype_ok, want = array.dtype == np.float32, "float32"
            shape = (n, *expected[key])
        if not want_dtype_ok:
            raise DatasetError(f"{path}: key {key!r} has dtype {array.dtype}, expected {want}")
        if array.shape != shape:
            raise DatasetError(
                f"{path}: key {key!r} has shape {array.shape}, expected {shape} for {dataset}"
            )
        if key in _FLOAT_KEYS and not np.isfinite(array).all():
            bad = np.argwhere(~np.isfinite(array))[0]
            raise DatasetError(
                f"{path}: key {key!r} holds NaN or inf (first at index {tuple(bad.tolist())})"
            )
    if n < 2:
        raise DatasetError(f"{path}: only {n} step(s); need at least one transition")
    if not arrays["terminals"][-1]:
        raise DatasetError(f"{path}: the last step is not terminal, so the last episode is cut off")


def load_training_data(
    path: str | Path, task: int, dataset: str | None = None
) -> dict[str, np.ndarray]:
    """Transitions of an OGBench file with the singletask rewards of `task`, all float32.

    Keys: observations, actions, rewards, masks, next_observations, terminals. The dataset name is
    taken from the file name (`<dataset>.npz` or `<dataset>-val.npz`) unless given.
    """
    from ogbench.relabel_utils import relabel_dataset
    from ogbench.utils import load_dataset

    dataset = dataset or dataset_name_of(path)
    try:
        _, gym_id = _singletask_ids(dataset, task)
        env = make_env(dataset, task)
    except DatasetError as err:
        raise DatasetError(f"{path}: {err}") from None
    validate_file(path, dataset, env)
    data = load_dataset(str(path), compact_dataset=False, add_info=True)
    relabel_dataset(gym_id, env, data)
    env.close()
    return {k: np.asarray(data[k], dtype=np.float32) for k in TRAINING_KEYS}
