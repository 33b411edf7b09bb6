"""`sorlab data download NAME...`: fetch official OGBench datasets, streamed and checksummed.

Each file is streamed to `<file>.part` and renamed only when complete and valid (it loads, has
the official keys, dtypes and shapes and, where the published size is known, that many steps).
Its sha256 goes into `<file>.sha256` (sha256sum format, so `sha256sum -c` works too); a file that
is already there is checked against that record instead of being fetched again. The record proves
the file has not changed since it was downloaded, not that it is OGBench's: OGBench publishes no
checksums to compare with.

How the file was made (sorlab.data.provenance: source, URL, versions, array checksum) goes into
`<file>.provenance.json` beside it, not into the .npz: the file stays byte for byte OGBench's, so
its sha256 is the server's file's, and no GB archive is rewritten after the transfer.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

from sorlab import layout
from sorlab.data import provenance
from sorlab.data.names import (
    GENERATABLE,
    VAL_SUFFIX,
    DatasetError,
    check_known,
    official_steps,
)

# The server ogbench itself downloads from (ogbench.utils.DATASET_URL).
DEFAULT_BASE_URL = "https://rail.eecs.berkeley.edu/datasets/ogbench"
URL_ENV_VAR = "SORLAB_DATASET_URL"
DEFAULT_OUT = "resources/datasets"
TIMEOUT_S = 30.0
CHUNK = 1 << 20


class ServerUnreachable(DatasetError):
    """The dataset server could not be contacted at all."""


def resolve_base_url(cli_value: str | None = None) -> str:
    """--base-url, else $SORLAB_DATASET_URL, else OGBench's server."""
    return (cli_value or os.environ.get(URL_ENV_VAR) or DEFAULT_BASE_URL).rstrip("/")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def checksum_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def read_checksum(path: Path) -> str:
    text = checksum_path(path).read_text().split()
    return text[0] if text else ""


def verify(path: Path) -> None:
    """Compare `path` with its recorded sha256; DatasetError naming the file on mismatch."""
    recorded, actual = read_checksum(path), sha256_of(path)
    if actual != recorded:
        raise DatasetError(
            f"{path}: checksum mismatch (sha256 {actual}, recorded {recorded or 'nothing'} in "
            f"{checksum_path(path).name}); the file is corrupt or was changed: delete it and download again"
        )


def check_arrived(part: Path, dest: Path) -> None:
    """Validate a downloaded file before it gets its final name: it must load, hold the
    official keys, dtypes and shapes for its env and, where the published size is known, that
    many steps. DatasetError naming the URL's file otherwise."""
    import numpy as np

    from sorlab.data.load import validate_file

    stem = dest.name.removesuffix(".npz")
    val = stem.endswith(VAL_SUFFIX)
    dataset = stem.removesuffix(VAL_SUFFIX)
    try:
        validate_file(part, dataset)
        want = official_steps(dataset, val)
        if want is not None:
            with np.load(part, allow_pickle=False) as archive:
                got = len(archive["terminals"])
            if got != want:
                raise DatasetError(f"{got} steps, the published file has {want}")
    except DatasetError as err:
        reason = str(err).removeprefix(f"{part}: ")
        raise DatasetError(
            f"{dest.name} as downloaded is not a usable dataset ({reason}); {dest} not written: "
            "download it again, or check the server (--base-url)"
        ) from None


def _download_record(part: Path, dest: Path, url: str, sha256: str) -> dict:
    """The provenance record of a complete download (`part`) that will be named `dest`."""
    dataset, split = provenance.split_of(dest)
    return provenance.downloaded_record(dataset, split, part, url, sha256)


def fetch_file(url: str, dest: Path, force: bool = False, progress: bool = True) -> Path:
    """Download `url` to `dest` (or check the copy already there). Returns dest."""
    if dest.exists() and not force:
        if not checksum_path(dest).exists():
            raise DatasetError(
                f"{dest}: already exists without a checksum record ({checksum_path(dest).name}), so it was "
                "not downloaded by sorlab; move it away or pass --force to replace it"
            )
        verify(dest)
        print(f"{dest}: present, checksum ok")
        return dest

    part = dest.with_name(dest.name + ".part")
    try:
        request = urllib.request.Request(url, headers={"User-Agent": "sorlab"})
        try:
            response = urllib.request.urlopen(request, timeout=TIMEOUT_S)
        except urllib.error.HTTPError as err:
            raise DatasetError(f"{url}: the server answered HTTP {err.code} {err.reason}") from None
        except (urllib.error.URLError, OSError) as err:
            reason = getattr(err, "reason", err)
            raise ServerUnreachable(
                f"cannot reach the dataset server for {url} ({reason})"
            ) from None
        with response:
            total = response.length
            digest, received = hashlib.sha256(), 0
            bar = tqdm(
                total=total,
                desc=dest.name,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                disable=not progress,
                file=sys.stderr,
            )
            try:
                with bar, open(part, "wb") as f:
                    while chunk := response.read(CHUNK):
                        f.write(chunk)
                        digest.update(chunk)
                        received += len(chunk)
                        bar.update(len(chunk))
            except (http.client.IncompleteRead, OSError) as err:
                raise DatasetError(
                    f"{url}: connection dropped after {received} bytes ({err!r}); {dest} not written"
                ) from None
            if total is not None and received != total:
                raise DatasetError(
                    f"{url}: connection dropped after {received} of {total} bytes; {dest} not written"
                )
        check_arrived(part, dest)  # a complete transfer of a bad file is still a bad file
        # Records first (each written atomically): a crash before the rename leaves no file
        # under the final name. The provenance is a sidecar, not a key added to OGBench's file
        # (see the module docstring).
        record = _download_record(part, dest, url, digest.hexdigest())
        layout.write_text(checksum_path(dest), f"{digest.hexdigest()}  {dest.name}\n")
        layout.write_json(provenance.sidecar_path(dest), record)
        os.replace(part, dest)
    finally:
        part.unlink(missing_ok=True)
    print(f"{dest}: downloaded {received} bytes, sha256 {digest.hexdigest()}")
    return dest


def download(
    names: list[str],
    out_dir: str | Path = DEFAULT_OUT,
    base_url: str | None = None,
    force: bool = False,
    progress: bool = True,
) -> list[Path]:
    """Fetch <name>.npz and <name>-val.npz for every name into out_dir."""
    for name in names:
        check_known(name)  # fail on a typo before downloading anything
    base = resolve_base_url(base_url)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in names:
        for file_name in (f"{name}.npz", f"{name}{VAL_SUFFIX}.npz"):
            paths.append(fetch_file(f"{base}/{file_name}", out_dir / file_name, force, progress))
    return paths


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "names", nargs="+", metavar="NAME", help="OGBench dataset names, e.g. cube-single-play-v0"
    )
    parser.add_argument(
        "--out", default=DEFAULT_OUT, help=f"output directory (default {DEFAULT_OUT})"
    )
    parser.add_argument(
        "--base-url",
        default=None,
        help=f"dataset server (default: ${URL_ENV_VAR} if set, else {DEFAULT_BASE_URL})",
    )
    parser.add_argument(
        "--force", action="store_true", help="replace files that have no checksum record"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _offline_hint(names: list[str]) -> str:
    offline = [n for n in names if n in GENERATABLE]
    hint = "; ".join(f"sorlab data generate {n}" for n in offline)
    if offline:
        hint = f"make the data offline instead: {hint}"
    others = [n for n in names if n not in GENERATABLE]
    if others:
        hint += (
            ("; " if hint else "")
            + f"{', '.join(others)} cannot be generated offline: set {URL_ENV_VAR} to a reachable mirror"
        )
    return hint


def main(args: argparse.Namespace) -> int:
    try:
        download(args.names, args.out, args.base_url, args.force, not args.quiet)
    except ServerUnreachable as err:
        print(f"sorlab data download: {err}; {_offline_hint(args.names)}", file=sys.stderr)
        return 1
    except DatasetError as err:
        print(f"sorlab data download: {err}", file=sys.stderr)
        return 1
    return 0
