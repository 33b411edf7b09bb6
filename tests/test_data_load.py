"""Loading for training: env names, evaluation-env semantics, and a clear error for each bad file."""

import numpy as np
import pytest

from sorlab.data import DatasetError, env_name, load_training_data, make_env, validate_file
from sorlab.data.generate import generate
from sorlab.data.load import validate_transitions

NAME = "pointmaze-medium-navigate-v0"  # the cheapest env: bad-file checks need no physics


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    out = tmp_path_factory.mktemp("good")
    generate(NAME, out, episodes=2, seed=0, workers=1, episode_steps=21, progress=False)
    with np.load(out / f"{NAME}.npz") as f:
        return out / f"{NAME}.npz", {k: f[k] for k in f.files}


def write(tmp_path, arrays, name=NAME):
    path = tmp_path / f"{name}.npz"
    with open(path, "wb") as f:
        np.savez_compressed(f, **arrays)
    return path


def expect_error(path, *words, task=1):
    with pytest.raises(DatasetError) as info:
        load_training_data(path, task)
    message = str(info.value)
    assert str(path) in message
    for word in words:
        assert word in message, message
    return message


def test_env_name_and_dataset_error_type():
    assert env_name("cube-single-play-v0", 2) == "cube-single-play-singletask-task2-v0"
    assert env_name("antmaze-large-navigate-v0", 1) == "antmaze-large-navigate-singletask-task1-v0"
    assert issubclass(DatasetError, ValueError)
    for bad_task in (0, 6, 2.0):
        with pytest.raises(DatasetError, match="task"):
            env_name("cube-single-play-v0", bad_task)
    with pytest.raises(DatasetError, match="cube-tiny-play-v0"):
        env_name("cube-tiny-play-v0", 1)


def _steps_to_goal(timing: str | None) -> int:
    """Drive pointmaze task 1 to its goal with the oracle direction; the step that ends it."""
    np.random.seed(0)  # the maze's reset draws its start noise from np.random
    env = make_env(NAME, 1) if timing is None else make_env(NAME, 1, success_timing=timing)
    env.reset(seed=0)
    maze = env.unwrapped
    for t in range(1000):
        xy = maze.get_xy()
        subgoal, _ = maze.get_oracle_subgoal(xy, maze.cur_goal_xy)
        _, reward, terminated, _, info = env.step((subgoal - xy) / np.linalg.norm(subgoal - xy))
        if terminated:
            assert reward == 0 and info["success"] == 1
            return t
    raise AssertionError("goal not reached")


def test_make_env_scores_the_state_after_the_action():
    # ogbench 1.1.0 semantics ('post'): success on the step that reaches the goal, one step
    # earlier than ogbench 1.2's default ('pre'), which scores the state before the action.
    assert _steps_to_goal(None) == _steps_to_goal("post") == _steps_to_goal("pre") - 1


def test_good_file_loads(good):
    path, _ = good
    validate_file(path)
    data = load_training_data(path, 3)
    assert data["observations"].shape == (40, 2)


def test_missing_file(tmp_path):
    expect_error(tmp_path / f"{NAME}.npz", "no such dataset file")
    # The message gives the command that makes it, small or full size.
    expect_error(tmp_path / f"{NAME}.npz", f"sorlab data generate {NAME} --out {tmp_path}")
    expect_error(tmp_path / f"{NAME}.npz", "--episodes N")


def test_unknown_dataset_name(tmp_path, good):
    path = write(tmp_path, good[1], name="pointmaze-tiny-navigate-v0")
    expect_error(path, "pointmaze-tiny-navigate-v0")
    path = write(tmp_path, good[1], name="my-data")
    expect_error(path, "my-data", "not a state-based OGBench dataset name")


@pytest.mark.parametrize("key", ["observations", "qpos", "terminals"])
def test_missing_key(tmp_path, good, key):
    arrays = {k: v for k, v in good[1].items() if k != key}
    expect_error(write(tmp_path, arrays), "missing key", key)


def test_wrong_shape(tmp_path, good):
    arrays = dict(good[1], observations=np.zeros((len(good[1]["terminals"]), 3), np.float32))
    expect_error(write(tmp_path, arrays), "'observations'", "shape", "(42, 3)", "(42, 2)")
    arrays = dict(good[1], qvel=good[1]["qvel"][:-1])
    expect_error(write(tmp_path, arrays), "'qvel'", "shape")


def test_wrong_dtype(tmp_path, good):
    arrays = dict(good[1], actions=good[1]["actions"].astype(np.float64))
    expect_error(write(tmp_path, arrays), "'actions'", "float64", "float32")
    arrays = dict(good[1], terminals=good[1]["terminals"].astype(np.float32))
    expect_error(write(tmp_path, arrays), "'terminals'", "bool")


@pytest.mark.parametrize(
    "key,value", [("observations", np.nan), ("qvel", np.inf), ("actions", -np.inf)]
)
def test_nan_or_inf(tmp_path, good, key, value):
    array = good[1][key].copy()
    array[5, 1] = value
    expect_error(write(tmp_path, dict(good[1], **{key: array})), f"'{key}'", "NaN or inf", "(5, 1)")


def test_truncated_archive(tmp_path, good):
    path = tmp_path / f"{NAME}.npz"
    data = good[0].read_bytes()
    path.write_bytes(data[: len(data) // 2])
    expect_error(path, "not a readable .npz archive")


def test_corrupt_archive(tmp_path, good):
    path = tmp_path / f"{NAME}.npz"
    data = bytearray(good[0].read_bytes())
    data[200:260] = bytes(60)  # zero a stretch of compressed payload: CRC or zlib failure
    path.write_bytes(bytes(data))
    expect_error(path, "not a readable .npz archive")
    path.write_bytes(b"this is not a zip file")
    expect_error(path, "not an .npz archive", "b'this'")


def test_empty_file_and_directory(tmp_path):
    path = tmp_path / f"{NAME}.npz"
    path.write_bytes(b"")
    expect_error(path, "empty file (0 bytes")
    path.unlink()
    path.mkdir()
    expect_error(path, "is a directory, not a dataset file")


def test_cut_off_last_episode(tmp_path, good):
    arrays = {k: v[:-3] for k, v in good[1].items() if k != "provenance"}
    expect_error(write(tmp_path, arrays), "last step is not terminal")


def test_rewards_follow_the_task_goal(tmp_path, good):
    # Put the agent exactly on task 3's goal at step 5: only that transition is a success.
    env = make_env(NAME, 3)
    env.reset(seed=0)
    qpos = good[1]["qpos"].copy()
    qpos[5, :2] = env.unwrapped.cur_goal_xy
    path = write(tmp_path, dict(good[1], qpos=qpos))
    data = load_training_data(path, 3)
    assert np.flatnonzero(data["rewards"] == 0).tolist() == [5]
    assert np.flatnonzero(data["masks"] == 0).tolist() == [5]
    assert (data["terminals"][5] == 0) and (data["rewards"][data["rewards"] != 0] == -1).all()
    assert (load_training_data(path, 1)["rewards"][5]) == -1  # another task, another goal


def relabelled(n: int = 6, obs_dim: int = 2, action_dim: int = 2) -> dict[str, np.ndarray]:
    """Transitions already in training form for pointmaze (2-wide observations and actions)."""
    rng = np.random.default_rng(0)
    return {
        "observations": rng.normal(size=(n, obs_dim)).astype(np.float32),
        "actions": rng.uniform(-1, 1, size=(n, action_dim)).astype(np.float32),
        "rewards": np.zeros(n, np.float32),
        "masks": np.ones(n, np.float32),
        "next_observations": rng.normal(size=(n, obs_dim)).astype(np.float32),
    }


def test_relabelled_transitions_are_checked_against_the_env(tmp_path):
    path = tmp_path / f"{NAME}.npz"
    validate_transitions(path, relabelled(), NAME)
    with pytest.raises(DatasetError, match=r"'actions' has shape \(6, 3\), expected \(6, 2\)"):
        validate_transitions(path, relabelled(action_dim=3), NAME)
    with pytest.raises(DatasetError, match=r"'observations' has shape \(6, 5\)"):
        validate_transitions(path, relabelled(obs_dim=5), NAME)
    data = relabelled()
    data["rewards"][3] = np.nan
    with pytest.raises(DatasetError, match=r"'rewards' holds NaN or inf \(first at index \(3,\)\)"):
        validate_transitions(path, data, NAME)
