"""Dataset provenance: every file sorlab writes records how it was made, and the workflow checks
an existing file against config["data"] before any job (a 2-episode file is never trained on
silently)."""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import yaml

from sorlab.data import make_env, validate_file
from sorlab.data import provenance as prov
from sorlab.data.download import download
from sorlab.data.generate import generate
from sorlab.data.load import _expected_shapes, load_training_data, npz_keys
from sorlab.data.names import GENERATABLE, official_steps
from sorlab.data.transitions import load_dataset

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
NAME = "cube-single-play-v0"
MADE_AS = {"source": "generate", "dir": "resources/datasets", "episodes": 2, "seed": 0}


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> Path:
    """cube-single-play-v0 as `sorlab data generate --episodes 2 --seed 0` makes it (official
    episode length, as the workflow's dataset rule): the .test/config.yaml settings."""
    out = tmp_path_factory.mktemp("made")
    generate(NAME, out, episodes=2, seed=0, workers=1, progress=False)
    return out


def arrays_of(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def copy_pair(src: Path, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for split in ("", "-val"):
        shutil.copy(src / f"{NAME}{split}.npz", dest / f"{NAME}{split}.npz")
    return dest / f"{NAME}.npz"


# ----------------------------------------------------------------------------- the record
def test_generated_files_record_how_they_were_made(made):
    for split, episodes in (("train", 2), ("val", 1)):
        path = made / f"{NAME}{'-val' if split == 'val' else ''}.npz"
        with np.load(path, allow_pickle=False) as f:  # no pickle needed
            raw = f[prov.KEY]
            assert raw.shape == () and raw.dtype.kind == "U"
            data = {k: f[k] for k in f.files if k != prov.KEY}
        record = json.loads(raw.item())
        assert record == prov.read_record(path)
        assert {k: record[k] for k in ("source", "dataset", "split", "seed")} == {
            "source": "generated",
            "dataset": NAME,
            "split": split,
            "seed": 0,
        }
        assert (record["episodes"], record["train_episodes"], record["episode_steps"]) == (
            episodes,
            2,
            GENERATABLE[NAME].episode_steps,
        )
        assert set(record["versions"]) == {"ogbench", "mujoco", "numpy", "sorlab"}
        assert record["versions"]["numpy"] == np.__version__
        assert record["arrays"]["observations"] == {"dtype": "<f4", "shape": [episodes * 1001, 28]}
        # The checksum covers the data arrays, in memory and streamed from the file alike.
        assert record["data_sha256"] == prov.arrays_sha256(data) == prov.file_arrays_sha256(path)


def test_checksum_definition():
    a = {"b": np.arange(3, dtype=np.int64), "a": np.ones((2, 2), np.float32)}
    digest = hashlib.sha256()
    for name in ("a", "b"):  # sorted names; "<name>\n<dtype.str>\n<shape>\n" then C-order bytes
        shape = ",".join(str(d) for d in a[name].shape)
        digest.update(f"{name}\n{a[name].dtype.str}\n{shape}\n".encode() + a[name].tobytes())
    assert prov.arrays_sha256(a) == digest.hexdigest()
    # The record itself is not covered; the order of keys, dtypes and shapes are.
    assert prov.arrays_sha256({**a, prov.KEY: np.asarray("{}")}) == digest.hexdigest()
    assert prov.arrays_sha256({"a": a["a"].reshape(4)}) != prov.arrays_sha256({"a": a["a"]})
    assert prov.arrays_sha256({"a": a["a"].astype(np.float64)}) != prov.arrays_sha256({"a": a["a"]})
    fortran = np.asfortranarray(np.arange(6.0).reshape(2, 3))
    assert prov.arrays_sha256({"x": fortran}) == prov.arrays_sha256({"x": fortran.copy("C")})


def test_readers_ignore_the_record(made):
    path = made / f"{NAME}.npz"
    assert prov.KEY in npz_keys(path)
    validate_file(path)
    data = load_training_data(path, 2)
    assert len(data["observations"]) == 2 * 1000
    assert set(load_dataset(path, 2)) >= {"observations", "next_actions"}


# ----------------------------------------------------------------------------- the check
def test_files_made_as_the_config_asks_pass(made):
    for split in ("", "-val"):
        path = made / f"{NAME}{split}.npz"
        assert prov.check_dataset(path, MADE_AS) is None
        assert prov.check_dataset(path, {**MADE_AS, "dir": "elsewhere"}) is None
        assert prov.check_dataset(path, MADE_AS, checksum=True) is None


def test_mismatch_is_one_line_with_the_fix(made):
    path, val = made / f"{NAME}.npz", made / f"{NAME}-val.npz"
    line = prov.check_dataset(path, {**MADE_AS, "episodes": 200})
    assert line == (
        f"{path} holds 2 episodes generated with seed 0, but the config (data.source: generate, "
        "data.episodes: 200, data.seed: 0) wants 200 episodes generated with seed 0; stopped "
        "before any job (the file is neither used nor overwritten): "
        f"`rm {path} {val}` then rerun (the workflow remakes them), or "
        f"`sorlab data generate {NAME} --out {made} --seed 0 --episodes 200`"
    )
    # null episodes: the official size; the val file is named on its own.
    line = prov.check_dataset(val, {**MADE_AS, "episodes": None})
    assert line.startswith(f"{val} holds the val split of 2 episodes generated with seed 0, but")
    assert "wants the val split of the official 1000 episodes generated with seed 0;" in line
    assert line.endswith(f"`sorlab data generate {NAME} --out {made} --seed 0`")
    line = prov.check_dataset(path, {**MADE_AS, "seed": 1})
    assert "data.seed: 1) wants 2 episodes generated with seed 1;" in line
    line = prov.check_dataset(path, {"source": "download", "base_url": "http://mirror/x"})
    assert "(data.source: download) wants OGBench's train file, downloaded;" in line
    assert line.endswith(
        f"`sorlab data download {NAME} --out {made} --force --base-url http://mirror/x`"
    )
    assert "\n" not in line


def test_file_without_record_is_named(made, tmp_path):
    path = tmp_path / f"{NAME}.npz"
    np.savez(path, **{k: v for k, v in arrays_of(made / path.name).items() if k != prov.KEY})
    line = prov.check_dataset(path, MADE_AS)
    assert line.startswith(
        f"{path} holds no provenance record (made by hand or copied from elsewhere), but the "
        "config (data.source: generate, data.episodes: 2, data.seed: 0) wants 2 episodes"
    )


def test_record_copied_onto_changed_arrays_is_caught(made, tmp_path):
    path = tmp_path / f"{NAME}.npz"
    arrays = arrays_of(made / path.name)
    # Cut to one episode, the record carried along: the array headers tell (no data read).
    np.savez_compressed(path, **{k: v if k == prov.KEY else v[:1001] for k, v in arrays.items()})
    line = prov.check_dataset(path, MADE_AS, checksum=False)
    assert "holds arrays changed since its record of 2 episodes generated with seed 0" in line
    assert "array 'actions' is {'dtype': '<f4', 'shape': [1001, 5]}" in line
    # Same shapes, other values: only the checksum tells (small files: at parse time too).
    arrays["actions"] = arrays["actions"] * 0.5
    np.savez_compressed(path, **arrays)
    assert prov.check_dataset(path, MADE_AS, checksum=False) is None
    line = prov.check_dataset(path, MADE_AS)
    assert "the arrays' sha256 differs from the recorded data_sha256" in line


def test_renamed_or_unreadable_files_are_named(made, tmp_path):
    val = tmp_path / f"{NAME}-val.npz"
    shutil.copy(made / f"{NAME}.npz", val)
    line = prov.check_dataset(val, MADE_AS)
    assert f"{val} holds the provenance record of {NAME}.npz (renamed or copied" in line
    broken = tmp_path / f"{NAME}.npz"
    broken.write_text("observations,actions\n")
    assert f"{broken} holds an unreadable file or provenance record" in prov.check_dataset(
        broken, MADE_AS
    )


# ----------------------------------------------------------------------------- downloads
class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def served(tmp_path):
    """A local HTTP server holding official-size pointmaze files (zeros) under /datasets/."""
    name = "pointmaze-medium-navigate-v0"
    root = tmp_path / "server" / "datasets"
    root.mkdir(parents=True)
    shapes = _expected_shapes(make_env(name, 1))
    for split, val in (("", False), ("-val", True)):
        steps = official_steps(name, val)
        arrays = {k: np.zeros((steps, *s), np.float32) for k, s in shapes.items()}
        arrays["terminals"] = np.arange(1, steps + 1) % 1001 == 0
        np.savez_compressed(root / f"{name}{split}.npz", **arrays)
    handler = functools.partial(Quiet, directory=root.parent)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield name, root, f"http://127.0.0.1:{httpd.server_address[1]}/datasets"
    httpd.shutdown()
    httpd.server_close()


def test_download_records_provenance_beside_ogbenchs_file(served, tmp_path):
    name, root, url = served
    out = tmp_path / "out"
    download([name], out, base_url=url, progress=False)
    for split in ("train", "val"):
        file = f"{name}{'-val' if split == 'val' else ''}.npz"
        path = out / file
        assert path.read_bytes() == (root / file).read_bytes()  # OGBench's file, untouched
        with np.load(path, allow_pickle=False) as f:
            assert prov.KEY not in f.files
        record = json.loads(prov.sidecar_path(path).read_text())
        assert record == prov.read_record(path)
        assert (record["source"], record["dataset"], record["split"]) == ("downloaded", name, split)
        assert record["url"] == f"{url}/{file}"
        assert record["episodes"] == (1000 if split == "train" else 100)
        assert record["file_sha256"] == (out / f"{file}.sha256").read_text().split()[0]
        assert record["data_sha256"] == prov.arrays_sha256(arrays_of(path))
        assert set(record["versions"]) == {"ogbench", "mujoco", "numpy", "sorlab"}
        assert prov.check_dataset(path, {"source": "download"}) is None
    path = out / f"{name}.npz"
    line = prov.check_dataset(path, {"source": "generate", "episodes": None, "seed": 0})
    assert f"holds OGBench's train file, downloaded from {url}/{name}.npz, but the config" in line
    assert "wants the official 1000 episodes generated with seed 0;" in line
    # Another file put in its place, the sidecar left behind: not taken for the download.
    np.savez(path, **arrays_of(root / f"{name}-val.npz"))
    line = prov.check_dataset(path, {"source": "download"})
    assert "holds arrays changed since its record of OGBench's train file" in line


# ----------------------------------------------------------------------------- the workflow
def dry_run(tmp_path: Path, data: dict, dataset: Path | None) -> subprocess.CompletedProcess:
    """`snakemake -n` on the tiny study (.test/config.yaml with `data` updated) in a copy of the
    workflow, with `dataset`'s pair (if any) in place under data.dir."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    for name in ("Snakefile", "workflow", "config", ".test", "environment.yml"):
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, tmp_path / name)
    config = yaml.safe_load((ROOT / ".test/config.yaml").read_text())
    config["data"].update(data)
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(config))
    if dataset is not None:
        copy_pair(dataset.parent, tmp_path / config["data"]["dir"])
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
    return subprocess.run(
        [str(BIN / "snakemake"), "-n", "--cores", "1", "--configfile", "study.yaml"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip


def stop_line(out: subprocess.CompletedProcess, start: str) -> str:
    """The one line the workflow stopped with (and that no job was planned)."""
    assert out.returncode != 0, out.stdout + out.stderr
    lines = [line for line in (out.stdout + out.stderr).splitlines() if line.startswith(start)]
    assert len(lines) == 1, out.stdout + out.stderr
    assert "rule dataset" not in out.stdout and "Job stats" not in out.stdout
    return lines[0]


@pytest.mark.slow
def test_workflow_stops_on_a_dataset_of_another_size(made, tmp_path):
    out = dry_run(tmp_path, {"episodes": 3}, made / f"{NAME}.npz")
    train, val = f"resources/datasets/{NAME}.npz", f"resources/datasets/{NAME}-val.npz"
    assert stop_line(out, train) == (
        f"{train} holds 2 episodes generated with seed 0, but the config (data.source: generate, "
        "data.episodes: 3, data.seed: 0) wants 3 episodes generated with seed 0; stopped before "
        f"any job (the file is neither used nor overwritten): `rm {train} {val}` then rerun (the "
        f"workflow remakes them), or `sorlab data generate {NAME} --out resources/datasets "
        "--seed 0 --episodes 3`"
    )
    assert (tmp_path / train).read_bytes() == (made / f"{NAME}.npz").read_bytes()
    assert not (tmp_path / "results").exists()


@pytest.mark.slow
def test_workflow_stops_on_a_dataset_without_record(made, tmp_path):
    hand = tmp_path / "hand"
    hand.mkdir()
    for split in ("", "-val"):
        arrays = arrays_of(made / f"{NAME}{split}.npz")
        np.savez(hand / f"{NAME}{split}.npz", **{k: v for k, v in arrays.items() if k != prov.KEY})
    out = dry_run(tmp_path / "wd", {}, hand / f"{NAME}.npz")  # settings as the data: 2, seed 0
    line = stop_line(out, f"resources/datasets/{NAME}.npz")
    assert "holds no provenance record (made by hand or copied from elsewhere)" in line
    assert line.endswith("--out resources/datasets --seed 0 --episodes 2`")


@pytest.mark.slow
def test_workflow_accepts_a_dataset_made_as_configured(made, tmp_path):
    out = dry_run(tmp_path, {}, made / f"{NAME}.npz")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "rule train" in out.stdout and "rule dataset" not in out.stdout
    # No dataset at all: the workflow plans to make it.
    out = dry_run(tmp_path / "fresh", {"episodes": 3}, None)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "rule dataset" in out.stdout
