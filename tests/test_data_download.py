"""Downloads against a real HTTP server on 127.0.0.1: streaming, checksums, failures."""

import hashlib
import http.server
import io
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import ogbench.utils
import pytest

from sorlab.data import DatasetError, make_env
from sorlab.data.download import DEFAULT_BASE_URL, URL_ENV_VAR, download
from sorlab.data.load import _expected_shapes
from sorlab.data.names import GENERATABLE, official_steps

REPO = Path(__file__).resolve().parents[1]
NAME = "pointmaze-medium-navigate-v0"


def official_like(steps: int, episode_steps: int = GENERATABLE[NAME].episode_steps) -> bytes:
    """An .npz with the published file's keys, dtypes, shapes and number of steps (zeros)."""
    shapes = _expected_shapes(make_env(NAME, 1))
    arrays = {k: np.zeros((steps, *shape), np.float32) for k, shape in shapes.items()}
    arrays["terminals"] = np.arange(1, steps + 1) % episode_steps == 0
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


FILES = {
    f"{NAME}.npz": official_like(official_steps(NAME)),
    f"{NAME}-val.npz": official_like(official_steps(NAME, val=True)),
}


class Handler(http.server.BaseHTTPRequestHandler):
    drop = False  # when set, send half the body and close the connection
    requests: list[str] = []
    files: dict[str, bytes] = FILES  # what the server holds

    def do_GET(self):
        Handler.requests.append(self.path)
        body = Handler.files.get(self.path.rsplit("/", 1)[-1])
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if Handler.drop:
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
        else:
            self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    Handler.drop, Handler.requests, Handler.files = False, [], dict(FILES)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/datasets"
    httpd.shutdown()
    httpd.server_close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_default_url_is_ogbenchs():
    assert DEFAULT_BASE_URL == ogbench.utils.DATASET_URL


def test_download_records_and_checks_sha256(server, tmp_path):
    paths = download([NAME], tmp_path, base_url=server, progress=False)
    assert [p.name for p in paths] == list(FILES)
    for name, body in FILES.items():
        assert (tmp_path / name).read_bytes() == body
        digest = hashlib.sha256(body).hexdigest()
        assert (tmp_path / f"{name}.sha256").read_text() == f"{digest}  {name}\n"
    assert not list(tmp_path.glob("*.part"))
    assert Handler.requests == [f"/datasets/{name}" for name in FILES]
    # Reuse: checked against the record, not fetched again.
    download([NAME], tmp_path, base_url=server, progress=False)
    assert len(Handler.requests) == 2


def test_env_var_sets_the_server(server, tmp_path, monkeypatch):
    monkeypatch.setenv(URL_ENV_VAR, server)
    download([NAME], tmp_path, progress=False)
    assert (tmp_path / f"{NAME}.npz").read_bytes() == FILES[f"{NAME}.npz"]


def test_dropped_connection_leaves_no_file(server, tmp_path):
    Handler.drop = True
    size = len(FILES[f"{NAME}.npz"])
    with pytest.raises(
        DatasetError,
        match=f"connection dropped after {size // 2} of {size} bytes; .*{NAME}.npz not written",
    ):
        download([NAME], tmp_path, base_url=server, progress=False)
    assert os.listdir(tmp_path) == []


def test_checksum_mismatch_names_the_file(server, tmp_path):
    download([NAME], tmp_path, base_url=server, progress=False)
    path = tmp_path / f"{NAME}-val.npz"
    path.write_bytes(path.read_bytes()[:-1] + b"x")
    with pytest.raises(DatasetError, match="checksum mismatch") as info:
        download([NAME], tmp_path, base_url=server, progress=False)
    assert str(path) in str(info.value)


def test_existing_file_without_record_is_not_overwritten(server, tmp_path):
    (tmp_path / f"{NAME}.npz").write_bytes(b"generated here")
    with pytest.raises(DatasetError, match="--force"):
        download([NAME], tmp_path, base_url=server, progress=False)
    assert (tmp_path / f"{NAME}.npz").read_bytes() == b"generated here"
    download([NAME], tmp_path, base_url=server, force=True, progress=False)
    assert (tmp_path / f"{NAME}.npz").read_bytes() == FILES[f"{NAME}.npz"]


def test_missing_on_server_and_unknown_name(server, tmp_path):
    with pytest.raises(DatasetError, match="HTTP 404"):
        download(["cube-single-play-v0"], tmp_path, base_url=server, progress=False)
    with pytest.raises(DatasetError, match="cube-singel-play-v0"):
        download(["cube-singel-play-v0"], tmp_path, base_url=server, progress=False)
    assert not list(tmp_path.iterdir())


def test_unreachable_server_gives_one_clear_line(tmp_path):
    url = f"http://127.0.0.1:{closed_port()}"
    cmd = [
        sys.executable,
        "-m",
        "sorlab.cli",
        "data",
        "download",
        NAME,
        "--out",
        str(tmp_path),
        "--base-url",
        url,
    ]
    result = subprocess.run(
        cmd, capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"}
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "cannot reach" in lines[0] and url in lines[0]
    assert f"sorlab data generate {NAME}" in lines[0]
    assert not list(tmp_path.iterdir())


def test_snakemake_rule_downloads(server, tmp_path):
    snakefile = tmp_path / "Snakefile"
    config = {
        "data": {
            "source": "download",
            "dir": "resources/datasets",
            "episodes": None,
            "seed": 0,
            "workers": 1,
            "base_url": server,
        }
    }
    snakefile.write_text(
        f"config = {config!r}\n"
        f'include: "{REPO / "workflow" / "rules" / "data.smk"}"\n'
        "rule all:\n"
        f'    input: expand("resources/datasets/{NAME}{{s}}.npz", s=["", "-val"])\n'
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
    for name, body in FILES.items():
        assert (tmp_path / "resources/datasets" / name).read_bytes() == body
    assert (tmp_path / f"results/logs/data/{NAME}.log").exists()
    assert (tmp_path / f"results/benchmarks/data/{NAME}.tsv").exists()


@pytest.mark.parametrize(
    ("served", "reason"),
    [
        # Cut short by the server, which sent a Content-Length that matches what it sent.
        (FILES[f"{NAME}.npz"][: len(FILES[f"{NAME}.npz"]) // 2], "not a readable .npz archive"),
        (b"<html>503 Service Unavailable</html>", "not an .npz archive"),
        (official_like(1001 * 10), f"10010 steps, the published file has {official_steps(NAME)}"),
    ],
)
def test_a_complete_transfer_of_a_bad_file_is_not_kept(server, tmp_path, served, reason):
    Handler.files[f"{NAME}.npz"] = served
    with pytest.raises(DatasetError) as info:
        download([NAME], tmp_path, base_url=server, progress=False)
    message = str(info.value)
    assert f"{NAME}.npz as downloaded is not a usable dataset" in message and reason in message
    assert "not written" in message
    assert os.listdir(tmp_path) == []  # no file under the final name, no checksum record
