"""How a dataset file was made, recorded with it, and checked against what a config wants.

A generated file holds its record in the .npz itself, under the key `provenance`: a JSON string
stored as a 0-d numpy unicode array, so it loads with allow_pickle=False and np.load reads it
alone (members are read lazily, per key). A downloaded file is OGBench's own file, left as it
came; its record sits beside it in `<file>.provenance.json` (sorlab.data.download).

The record: format, source ("generated" or "downloaded"), dataset, split ("train" or "val"),
episodes (in this file), the generator's seed, train_episodes and episode_steps (generated) or
the URL and the file's sha256 (downloaded), the versions of ogbench, mujoco, numpy and sorlab,
every array's dtype and shape, and `data_sha256`, the checksum of the data arrays (see
`arrays_sha256`).

`check_dataset` compares an existing file with the workflow's `data:` config at parse time.
Stdlib and numpy only (no JAX, no ogbench import): the workflow imports this module when it
parses the Snakefile.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
import zlib
from collections.abc import Iterator, Mapping
from importlib import metadata
from pathlib import Path
from typing import IO, Any

import numpy as np

from sorlab.data.names import GENERATABLE, VAL_SUFFIX

KEY = "provenance"
SIDECAR_SUFFIX = ".provenance.json"
FORMAT = 1
CHUNK = 1 << 20
# At parse time the checksum is recomputed only for files up to this size: it decompresses every
# array (about a second per 100 MB), which the default study's files (a few MB) afford on every
# `snakemake` call and the official GB files do not. Larger files get the cheap checks only:
# the recorded settings, the file size (downloads) and every array's dtype and shape, read from
# the .npy headers.
CHECKSUM_AT_PARSE_MAX_BYTES = 64 << 20
NO_RECORD = "no provenance record (made by hand or copied from elsewhere)"
_READ_ERRORS = (OSError, ValueError, KeyError, zipfile.BadZipFile, zlib.error, EOFError)


# ----------------------------------------------------------------------------- checksum
def _array_header(name: str, dtype: np.dtype, shape: tuple[int, ...]) -> bytes:
    return f"{name}\n{dtype.str}\n{','.join(str(d) for d in shape)}\n".encode()


def arrays_sha256(arrays: Mapping[str, np.ndarray]) -> str:
    """sha256 of the data arrays: for each array by sorted name, except the `provenance` key,
    the bytes of "<name>\\n<dtype.str>\\n<shape, comma-separated>\\n" then its C-order bytes."""
    digest = hashlib.sha256()
    for name in sorted(k for k in arrays if k != KEY):
        array = np.ascontiguousarray(arrays[name])
        digest.update(_array_header(name, array.dtype, array.shape))
        digest.update(array)  # the buffer itself: no copy of a GB array
    return digest.hexdigest()


def _npy_header(f: IO[bytes]) -> tuple[tuple[int, ...], bool, np.dtype] | None:
    """(shape, fortran_order, dtype) of an .npy stream, leaving it at the data; None for a
    header version read here only through np.load."""
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(f)
    if version == (2, 0):
        return np.lib.format.read_array_header_2_0(f)
    return None


def _members(path: Path) -> Iterator[tuple[str, IO[bytes]]]:
    """(array name, open .npy member) of an .npz archive, by sorted name, `provenance` aside."""
    with zipfile.ZipFile(path) as archive:
        names = {m.removesuffix(".npy"): m for m in archive.namelist() if m.endswith(".npy")}
        for name in sorted(names):
            if name != KEY:
                with archive.open(names[name]) as f:
                    yield name, f


def file_arrays_sha256(path: str | Path) -> str:
    """`arrays_sha256` of an .npz file, streamed from the archive (one chunk in memory)."""
    path = Path(path)
    digest = hashlib.sha256()
    for name, f in _members(path):
        header = _npy_header(f)
        if header is None or header[1] or header[2].hasobject:
            # Rare layouts: load the array (C-order bytes, as arrays_sha256 hashes them).
            with np.load(path, allow_pickle=False) as archive:
                array = np.ascontiguousarray(archive[name])
            digest.update(_array_header(name, array.dtype, array.shape))
            digest.update(array)
            continue
        shape, _, dtype = header
        digest.update(_array_header(name, dtype, shape))
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def array_specs(arrays: Mapping[str, np.ndarray]) -> dict[str, dict[str, Any]]:
    """{name: {"dtype": dtype.str, "shape": [...]}} of the data arrays."""
    return {
        name: {"dtype": np.asarray(arrays[name]).dtype.str, "shape": list(np.shape(arrays[name]))}
        for name in sorted(k for k in arrays if k != KEY)
    }


def file_array_specs(path: str | Path) -> dict[str, dict[str, Any]]:
    """`array_specs` of an .npz file from the .npy headers alone (cheap even for GB files)."""
    specs = {}
    for name, f in _members(Path(path)):
        header = _npy_header(f)
        if header is None:
            with np.load(path, allow_pickle=False) as archive:
                array = archive[name]
            shape, dtype = array.shape, array.dtype
        else:
            shape, _, dtype = header
        specs[name] = {"dtype": dtype.str, "shape": list(shape)}
    return specs


# ----------------------------------------------------------------------------- records
def library_versions() -> dict[str, str | None]:
    """Versions of the packages that shape the data (from the installed metadata: no imports)."""
    from sorlab import __version__

    versions: dict[str, str | None] = {}
    for package in ("ogbench", "mujoco", "numpy"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    versions["sorlab"] = __version__
    return versions


def generated_record(
    dataset: str,
    split: str,
    arrays: Mapping[str, np.ndarray],
    train_episodes: int,
    seed: int,
    episode_steps: int,
) -> dict[str, Any]:
    """The record of one file written by `sorlab data generate` (no time stamp and no worker
    count: the same settings give the same file)."""
    return {
        "format": FORMAT,
        "source": "generated",
        "dataset": dataset,
        "split": split,
        "episodes": int(np.count_nonzero(arrays["terminals"])),
        "train_episodes": int(train_episodes),
        "seed": int(seed),
        "episode_steps": int(episode_steps),
        "versions": library_versions(),
        "arrays": array_specs(arrays),
        "data_sha256": arrays_sha256(arrays),
    }


def downloaded_record(
    dataset: str, split: str, path: str | Path, url: str, file_sha256: str
) -> dict[str, Any]:
    """The record of one file fetched by `sorlab data download` (`path`: the complete file)."""
    path = Path(path)
    with np.load(path, allow_pickle=False) as archive:
        episodes = int(np.count_nonzero(archive["terminals"]))
    return {
        "format": FORMAT,
        "source": "downloaded",
        "dataset": dataset,
        "split": split,
        "episodes": episodes,
        "url": url,
        "file_sha256": file_sha256,
        "file_bytes": path.stat().st_size,
        "versions": library_versions(),
        "arrays": file_array_specs(path),
        "data_sha256": file_arrays_sha256(path),
    }


def with_record(arrays: Mapping[str, np.ndarray], record: dict[str, Any]) -> dict[str, np.ndarray]:
    """`arrays` plus the record under `provenance` (a 0-d unicode array: no pickle needed)."""
    return {**arrays, KEY: np.asarray(json.dumps(record, sort_keys=True))}


def sidecar_path(path: str | Path) -> Path:
    path = Path(path)
    return path.with_name(path.name + SIDECAR_SUFFIX)


def read_record(path: str | Path) -> dict[str, Any] | None:
    """The file's record: its `provenance` key, else its sidecar; None if it has neither.
    Reads only that key, not the data. Raises OSError, ValueError (bad JSON) or a zip error."""
    path = Path(path)
    with np.load(path, allow_pickle=False) as archive:
        if KEY in archive.files:
            record = json.loads(archive[KEY].item())
            if not isinstance(record, dict):
                raise ValueError(f"the {KEY!r} key holds no JSON object")
            return record
    sidecar = sidecar_path(path)
    if sidecar.is_file():
        record = json.loads(sidecar.read_text())
        if not isinstance(record, dict):
            raise ValueError(f"{sidecar.name} holds no JSON object")
        return record
    return None


# ----------------------------------------------------------------------------- the check
def split_of(path: str | Path) -> tuple[str, str]:
    """resources/datasets/cube-single-play-v0-val.npz -> ('cube-single-play-v0', 'val')."""
    stem = Path(path).name.removesuffix(".npz")
    if stem.endswith(VAL_SUFFIX):
        return stem.removesuffix(VAL_SUFFIX), "val"
    return stem, "train"


def _wanted_episodes(dataset: str, want: Mapping[str, Any]) -> tuple[int, bool]:
    """(train episodes the config asks for, whether that is the official size); null = official,
    as in sorlab.data.generate.generate."""
    episodes = want.get("episodes")
    if episodes is None:
        return GENERATABLE[dataset].episodes, True
    return int(episodes), False


def _describe_record(record: Mapping[str, Any]) -> str:
    split = "the val split of " if record.get("split") == "val" else ""
    if record.get("source") == "generated":
        episodes = record.get("train_episodes")
        what = f"{split}{episodes} episodes generated with seed {record.get('seed')}"
        spec = GENERATABLE.get(str(record.get("dataset")))
        if spec is None or record.get("episode_steps") != spec.episode_steps:
            what += f", {record.get('episode_steps')} steps each"
        return what
    if record.get("source") == "downloaded":
        return f"OGBench's {record.get('split')} file, downloaded from {record.get('url')}"
    return f"a provenance record of unknown source {record.get('source')!r}"


def _describe_want(dataset: str, split: str, want: Mapping[str, Any]) -> str:
    prefix = "the val split of " if split == "val" else ""
    if want.get("source") == "download":
        return f"OGBench's {split} file, downloaded"
    episodes, official = _wanted_episodes(dataset, want)
    size = f"the official {episodes}" if official else f"{episodes}"
    return f"{prefix}{size} episodes generated with seed {want.get('seed', 0)}"


def _config_words(want: Mapping[str, Any]) -> str:
    """The config keys the check compares, as YAML would show them."""
    if want.get("source") == "download":
        return "data.source: download"
    episodes = want.get("episodes")
    episodes = "null" if episodes is None else episodes
    return f"data.source: generate, data.episodes: {episodes}, data.seed: {want.get('seed', 0)}"


def _matches(record: Mapping[str, Any], dataset: str, want: Mapping[str, Any]) -> bool:
    if want.get("source") == "download":
        return record.get("source") == "downloaded"
    episodes, _ = _wanted_episodes(dataset, want)
    return (
        record.get("source") == "generated"
        and record.get("train_episodes") == episodes
        and record.get("seed") == want.get("seed", 0)
        # The workflow never passes --episode-steps: it wants the official episode length.
        and record.get("episode_steps") == GENERATABLE[dataset].episode_steps
    )


def _integrity_problem(path: Path, record: Mapping[str, Any], checksum: bool) -> str | None:
    """How the file's arrays differ from its record (None if they agree): array dtypes and
    shapes (headers only), the size of a downloaded file and, if `checksum`, data_sha256."""
    if "file_bytes" in record and path.stat().st_size != record["file_bytes"]:
        return f"{path.stat().st_size} bytes, recorded {record['file_bytes']}"
    specs, recorded = file_array_specs(path), record.get("arrays")
    if specs != recorded:
        if not isinstance(recorded, dict):
            return "no array list in the record"
        for name in sorted(set(specs) | set(recorded)):
            if specs.get(name) != recorded.get(name):
                return f"array {name!r} is {specs.get(name)}, recorded {recorded.get(name)}"
    if checksum and file_arrays_sha256(path) != record.get("data_sha256"):
        return "the arrays' sha256 differs from the recorded data_sha256"
    return None


def _held(path: Path, dataset: str, split: str, checksum: bool | None) -> tuple[str, dict | None]:
    """(what the file holds, in words; its record if the record is usable)."""
    try:
        record = read_record(path)
    except _READ_ERRORS as err:
        return f"an unreadable file or provenance record ({type(err).__name__}: {err})", None
    if record is None:
        return NO_RECORD, None
    if record.get("format") != FORMAT:
        return f"a provenance record of unknown format {record.get('format')!r}", None
    if (record.get("dataset"), record.get("split")) != (dataset, split):
        made_as = f"{record.get('dataset')}{VAL_SUFFIX if record.get('split') == 'val' else ''}.npz"
        return f"the provenance record of {made_as} (renamed or copied from another file)", None
    held = _describe_record(record)
    if checksum is None:
        checksum = path.stat().st_size <= CHECKSUM_AT_PARSE_MAX_BYTES
    try:
        problem = _integrity_problem(path, record, checksum)
    except _READ_ERRORS as err:
        problem = f"unreadable arrays ({type(err).__name__}: {err})"
    if problem:
        return f"arrays changed since its record of {held} ({problem})", None
    return held, record


def _fix(path: Path, dataset: str, want: Mapping[str, Any]) -> str:
    """The commands that replace the pair with what the config wants."""
    out = path.parent
    train, val = out / f"{dataset}.npz", out / f"{dataset}{VAL_SUFFIX}.npz"
    if want.get("source") == "download":
        command = f"sorlab data download {dataset} --out {out} --force"
        if want.get("base_url"):
            command += f" --base-url {want['base_url']}"
    else:
        command = f"sorlab data generate {dataset} --out {out} --seed {want.get('seed', 0)}"
        if want.get("episodes") is not None:
            command += f" --episodes {want['episodes']}"
    return f"`rm {train} {val}` then rerun (the workflow remakes them), or `{command}`"


def check_dataset(
    path: str | Path, want: Mapping[str, Any], checksum: bool | None = None
) -> str | None:
    """None if the dataset file at `path` was made as `want` (the workflow's `data:` config:
    source, episodes (null = official size), seed, base_url) asks; else one line naming the
    file, what it holds, what the config wants and the commands that remake it.

    Reads the record, not the data; `checksum`: recompute data_sha256 (None: only for files up
    to CHECKSUM_AT_PARSE_MAX_BYTES)."""
    path = Path(path)
    dataset, split = split_of(path)
    if want.get("source") != "download" and dataset not in GENERATABLE:
        return f"{path}: {dataset} cannot be generated offline; set data.source: download"
    held, record = _held(path, dataset, split, checksum)
    if record is not None and _matches(record, dataset, want):
        return None
    return (
        f"{path} holds {held}, but the config ({_config_words(want)}) wants "
        f"{_describe_want(dataset, split, want)}; stopped before any job (the file is neither "
        f"used nor overwritten): {_fix(path, dataset, want)}"
    )
