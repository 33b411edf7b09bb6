"""Regenerated datasets: OGBench's file format, ogbench's own loader and relabelling, seeding."""

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import ogbench
import pytest
from readonly import read_only_dir

from sorlab.cli import main as cli_main
from sorlab.data import env_name, load_training_data
from sorlab.data.generate import generate
from sorlab.data.names import gen_spec

REPO = Path(__file__).resolve().parents[1]
EPISODES, STEPS = 2, 41  # tiny: 2 train episodes + 1 val episode of 41 steps

# Official dimensions: observation, action, qpos, qvel, button_states (None: no buttons).
FAMILIES = {
    "cube-single-play-v0": (28, 5, 21, 20, None),
    "cube-double-play-v0": (37, 5, 28, 26, None),
    "scene-play-v0": (40, 5, 25, 24, 2),
    "puzzle-3x3-play-v0": (55, 5, 23, 23, 9),
    "puzzle-4x4-play-v0": (83, 5, 30, 30, 16),
    "pointmaze-medium-navigate-v0": (2, 2, 2, 2, None),
    "pointmaze-large-navigate-v0": (2, 2, 2, 2, None),
    "pointmaze-giant-navigate-v0": (2, 2, 2, 2, None),
}


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("datasets")
    for name in FAMILIES:
        generate(
            name, out, episodes=EPISODES, seed=0, workers=1, episode_steps=STEPS, progress=False
        )
    return out


@pytest.mark.parametrize("name", FAMILIES)
def test_files_have_official_keys_dtypes_and_dims(tiny_dir, name):
    obs_dim, act_dim, nq, nv, buttons = FAMILIES[name]
    for suffix, episodes in (("", EPISODES), ("-val", 1)):
        n = episodes * STEPS
        with np.load(tiny_dir / f"{name}{suffix}.npz") as f:
            expected = {"observations", "actions", "terminals", "qpos", "qvel"}
            if buttons:
                expected.add("button_states")
                assert f["button_states"].dtype == np.int64 and f["button_states"].shape == (
                    n,
                    buttons,
                )
            assert set(f.files) == expected | {"provenance"}  # + how it was made
            assert f["observations"].dtype == np.float32 and f["observations"].shape == (n, obs_dim)
            assert f["actions"].dtype == np.float32 and f["actions"].shape == (n, act_dim)
            assert f["qpos"].dtype == np.float32 and f["qpos"].shape == (n, nq)
            assert f["qvel"].dtype == np.float32 and f["qvel"].shape == (n, nv)
            assert f["terminals"].dtype == bool
            # One terminal at the end of every episode.
            assert np.flatnonzero(f["terminals"]).tolist() == [
                STEPS * (i + 1) - 1 for i in range(episodes)
            ]
            assert np.abs(f["actions"]).max() <= 1.0


@pytest.mark.parametrize("name", FAMILIES)
def test_relabels_for_every_task_through_ogbench(tiny_dir, name):
    obs_dim, act_dim = FAMILIES[name][:2]
    n = EPISODES * (STEPS - 1)  # ogbench's loader drops each episode's last observation
    path = tiny_dir / f"{name}.npz"
    loaded = {}
    for task in range(1, 6):
        data = loaded[task] = load_training_data(path, task)
        assert set(data) == {
            "observations",
            "actions",
            "rewards",
            "masks",
            "next_observations",
            "terminals",
        }
        assert all(v.dtype == np.float32 for v in data.values())
        assert data["observations"].shape == data["next_observations"].shape == (n, obs_dim)
        assert data["actions"].shape == (n, act_dim)
        assert data["rewards"].shape == data["masks"].shape == data["terminals"].shape == (n,)
        assert (data["rewards"] <= 0).all() and set(np.unique(data["masks"])) <= {0.0, 1.0}
        # Reward 0 exactly when the whole task is solved, which is when the mask is 0.
        np.testing.assert_array_equal(data["rewards"] == 0, data["masks"] == 0)
        # next_observations continue observations inside each episode.
        inside = data["terminals"] == 0
        np.testing.assert_array_equal(
            data["next_observations"][:-1][inside[:-1]], data["observations"][1:][inside[:-1]]
        )
    # ogbench's own end-to-end entry point reads the pair and gives the same rewards.
    _, train, val = ogbench.make_env_and_datasets(env_name(name, 2), dataset_path=str(path))
    ours = loaded[2]
    np.testing.assert_array_equal(train["rewards"], ours["rewards"])
    np.testing.assert_array_equal(train["observations"], ours["observations"])
    assert len(val["observations"]) == STEPS - 1


def test_worker_count_does_not_change_the_data(tmp_path):
    one, two = tmp_path / "w1", tmp_path / "w2"
    for out, workers in ((one, 1), (two, 2)):
        generate(
            "cube-double-play-v0",
            out,
            episodes=3,
            seed=7,
            workers=workers,
            episode_steps=30,
            progress=False,
        )
    for file in ("cube-double-play-v0.npz", "cube-double-play-v0-val.npz"):
        with np.load(one / file) as a, np.load(two / file) as b:
            assert a.files == b.files
            for key in a.files:
                np.testing.assert_array_equal(a[key], b[key], err_msg=f"{file}:{key}")
    # ...and the seed does change it.
    generate(
        "cube-double-play-v0",
        tmp_path / "s8",
        episodes=3,
        seed=8,
        workers=1,
        episode_steps=30,
        progress=False,
    )
    with (
        np.load(one / "cube-double-play-v0.npz") as a,
        np.load(tmp_path / "s8" / "cube-double-play-v0.npz") as b,
    ):
        assert not np.array_equal(a["actions"], b["actions"])


def test_official_sizes_are_the_defaults():
    cube = gen_spec("cube-single-play-v0")
    assert (cube.episodes, cube.episode_steps, cube.noise, cube.noise_smoothing) == (
        1000,
        1001,
        0.1,
        0.5,
    )
    giant = gen_spec("pointmaze-giant-navigate-v0")
    assert (giant.episodes, giant.episode_steps, giant.noise) == (500, 2001, 0.5)
    assert gen_spec("pointmaze-medium-navigate-v0").episodes == 1000


def test_cli_writes_both_files_and_no_temporaries(tmp_path, capsys):
    argv = [
        "data",
        "generate",
        "pointmaze-medium-navigate-v0",
        "--episodes",
        "10",
        "--out",
        str(tmp_path),
    ]
    assert cli_main([*argv, "--workers", "1", "--episode-steps", "20", "--quiet"]) == 0
    assert sorted(os.listdir(tmp_path)) == [
        "pointmaze-medium-navigate-v0-val.npz",
        "pointmaze-medium-navigate-v0.npz",
    ]
    with np.load(tmp_path / "pointmaze-medium-navigate-v0-val.npz") as f:
        assert len(f["terminals"]) == 1 * 20  # val = episodes // 10
    assert "wrote" in capsys.readouterr().out


def test_cli_unknown_name_lists_supported_ones(capsys):
    assert cli_main(["data", "generate", "cube-sngle-play-v0"]) == 2
    err = capsys.readouterr().err
    assert (
        "cube-sngle-play-v0" in err
        and "cube-single-play-v0" in err
        and "pointmaze-giant-navigate-v0" in err
    )
    assert cli_main(["data", "generate", "antmaze-large-navigate-v0"]) == 2
    assert "sorlab data download antmaze-large-navigate-v0" in capsys.readouterr().err


def test_snakemake_rule_generates_with_log_and_benchmark(tmp_path):
    snakefile = tmp_path / "Snakefile"
    config = {
        "data": {
            "source": "generate",
            "dir": "resources/datasets",
            "episodes": 2,
            "seed": 3,
            "workers": 1,
            "base_url": None,
        }
    }
    snakefile.write_text(
        f"config = {config!r}\n"
        f'include: "{REPO / "workflow" / "rules" / "data.smk"}"\n'
        "rule all:\n"
        '    input: expand("resources/datasets/pointmaze-medium-navigate-v0{s}.npz", s=["", "-val"])\n'
    )
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "--cores",
        "1",
        "-s",
        str(snakefile),
        "-d",
        str(tmp_path),
    ]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    with np.load(tmp_path / "resources/datasets/pointmaze-medium-navigate-v0.npz") as f:
        assert (
            len(f["terminals"]) == 2 * 1001
        )  # official episode length, 2 episodes from the config
    assert (
        "generated pointmaze-medium-navigate-v0 (seed 3)"
        in (tmp_path / "results/logs/data/pointmaze-medium-navigate-v0.log").read_text()
    )
    assert (
        (tmp_path / "results/benchmarks/data/pointmaze-medium-navigate-v0.tsv")
        .read_text()
        .startswith("s\t")
    )


def test_scene_health_check_matches_ogbench_rule():
    from sorlab.data.generate import _scene_healthy

    qpos = np.zeros((3, 25), np.float32)
    qpos[:, 14:17] = [0.4, 0.0, 0.02]
    assert _scene_healthy(qpos)
    for xyz, healthy in (
        ([0.4, 0.29, 0.02], False),
        ([0.4, -0.3, 0.07], True),
        ([0.4, -0.31, 0.02], False),
    ):
        bad = qpos.copy()
        bad[1, 14:17] = xyz
        assert _scene_healthy(bad) == healthy, xyz


def test_interrupted_overwrite_never_leaves_a_new_val_file_beside_the_old_train_file(
    tmp_path, monkeypatch
):
    name = "pointmaze-medium-navigate-v0"
    train, val = tmp_path / f"{name}.npz", tmp_path / f"{name}-val.npz"
    generate(name, tmp_path, episodes=2, seed=0, workers=1, episode_steps=21, progress=False)
    old_val = val.read_bytes()
    writes = []
    savez = np.savez_compressed

    def interrupted_second_write(*args, **kwargs):  # Ctrl-C while the second file is written
        writes.append(1)
        if len(writes) == 2:
            raise KeyboardInterrupt
        savez(*args, **kwargs)

    monkeypatch.setattr(np, "savez_compressed", interrupted_second_write)
    with pytest.raises(KeyboardInterrupt):
        generate(name, tmp_path, episodes=2, seed=1, workers=1, episode_steps=21, progress=False)
    assert len(writes) == 2
    # Either the old pair or no train file (the workflow then regenerates): never a mix.
    assert not train.exists() or val.read_bytes() == old_val
    assert {p.name for p in tmp_path.iterdir()} in ({val.name}, {train.name, val.name})


def test_read_only_output_is_named_before_any_episode_runs(tmp_path):
    with read_only_dir(tmp_path / "ro") as out:
        start = time.perf_counter()
        # The official size: 1000 episodes would take minutes if they ran first.
        result = subprocess.run(
            [sys.executable, "-m", "sorlab.cli", "data", "generate", "pointmaze-medium-navigate-v0",
             "--out", str(out / "datasets"), "--workers", "1", "--quiet"],
            capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"},
        )  # fmt: skip
        elapsed = time.perf_counter() - start
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"cannot write to {out / 'datasets'}" in lines[0], result.stderr
    assert "choose a writable --out" in lines[0]
    assert elapsed < 60
