"""MNIST-like image datasets (MNIST, Fashion-MNIST, a tiny fixture), verified by sha256.

Every file named in ``datasets/manifest.json`` is looked for, in this order:

1. the local cache: ``$GRADERS_DATA_DIR/<dataset>/<file>`` (default
   ``datasets/cache/<dataset>/<file>`` in the repository);
2. system folders listed by the manifest, e.g. the files of Debian's
   ``dataset-fashion-mnist`` package in ``/usr/share/datasets/fashion-mnist``;
3. the fixture folder shipped in ``datasets/fixtures/`` (fixture datasets only);
4. the dataset's download addresses, only when the caller allows downloading
   (``download=True``, or ``GRADERS_DATA_DOWNLOAD=1``). Graders and tests never do.

A file is accepted when the sha256 of its bytes is one of the manifest's known
archives for it (upstream's gzip, Debian's gzip, ...) or when the sha256 of its
decompressed content is the manifest's ``content_sha256``: re-compressing the same
IDX data gives different gzip bytes, and that is fine. A file that is present but
fails both checks is an error, never silently used.

Command line: ``python -m graders.datasets {list,where,verify,fetch} [NAME]``.
"""

from __future__ import annotations

import argparse
import functools
import gzip
import hashlib
import json
import logging
import os
import struct
import sys
import tempfile
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from graders.paths import DATASETS_DIR

log = logging.getLogger(__name__)

MANIFEST_PATH = DATASETS_DIR / "manifest.json"
CACHE_ENV = "GRADERS_DATA_DIR"
DOWNLOAD_ENV = "GRADERS_DATA_DOWNLOAD"
_CHUNK = 1 << 20
_MAX_DOWNLOAD_BYTES = 200 * (1 << 20)


class DatasetNotFound(FileNotFoundError):
    """No source holds a verified copy of a dataset file; the message says how to get it."""


class ChecksumMismatch(ValueError):
    """A dataset file exists but is not the file the manifest describes."""


@dataclass(frozen=True)
class Split:
    """One split of an image dataset: ``images`` uint8 (N, 28, 28), ``labels`` uint8 (N,)."""

    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def flat_float(self) -> np.ndarray:
        """Images as float32 (N, 784) grey levels in [0, 1], the VAE's input."""
        return to_unit_interval(self.images)


def to_unit_interval(images: np.ndarray) -> np.ndarray:
    """uint8 images of any shape (N, ...) -> float32 (N, prod(...)) in [0, 1]."""
    images = np.asarray(images)
    return (images.reshape(len(images), -1).astype(np.float32)) / np.float32(255.0)


# --------------------------------------------------------------------------- manifest


@functools.lru_cache(maxsize=4)
def _read_manifest(path: str) -> dict:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def manifest(path: Path | None = None) -> dict:
    """The parsed manifest (``datasets/manifest.json`` unless told otherwise)."""
    return _read_manifest(str(path or MANIFEST_PATH))


def names() -> list[str]:
    return sorted(manifest()["datasets"])


def spec(name: str) -> dict:
    datasets = manifest()["datasets"]
    if name not in datasets:
        raise KeyError(f"unknown dataset {name!r}; known: {', '.join(sorted(datasets))}")
    return datasets[name]


# --------------------------------------------------------------------------- locations


def cache_dir() -> Path:
    """The local cache: ``$GRADERS_DATA_DIR`` if set, else ``datasets/cache``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else DATASETS_DIR / "cache"


def candidate_dirs(name: str) -> list[Path]:
    """Folders searched for ``name``'s files, in order (download not included)."""
    s = spec(name)
    dirs = [cache_dir() / name]
    dirs += [Path(d) for d in s.get("system_dirs", [])]
    if "fixture_dir" in s:
        dirs.append(DATASETS_DIR / s["fixture_dir"])
    return dirs


def copies(name: str, split: str) -> list[Path]:
    """Every file on this machine that may hold ``split``'s images of ``name`` (cache, system folders, fixture),
    verified or not: where a grader that holds these images out of a worker's reach must check it cannot read."""
    filename = spec(name)["splits"][split]["images"]
    return [d / filename for d in candidate_dirs(name) if (d / filename).is_file()]


def _download_allowed(download: bool | None) -> bool:
    if download is not None:
        return download
    return os.environ.get(DOWNLOAD_ENV, "").strip().lower() in {"1", "true", "yes"}


# --------------------------------------------------------------------------- checksums


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def verify_bytes(raw: bytes, file_spec: dict, where: str) -> bytes:
    """Check ``raw`` (a file's bytes) against the manifest; return the decompressed content."""
    digest = sha256_bytes(raw)
    known = {a["sha256"] for a in file_spec.get("archives", [])}
    content = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
    if digest in known:
        return content
    want = file_spec.get("content_sha256")
    if want and sha256_bytes(content) == want:
        return content
    raise ChecksumMismatch(
        f"{where}: sha256 {digest} is none of the known archives"
        + (f" and its decompressed content is not {want}" if want else "")
        + "; delete the file and fetch it again (python -m graders.datasets fetch NAME)"
    )


# --------------------------------------------------------------------------- IDX format


def parse_idx(content: bytes) -> np.ndarray:
    """Decode one IDX file (the MNIST format) of unsigned bytes into an array."""
    if len(content) < 4:
        raise ValueError("not an IDX file: too short")
    zero, dtype_code, ndim = struct.unpack(">HBB", content[:4])
    if zero != 0 or dtype_code != 0x08:
        raise ValueError("not an IDX file of unsigned bytes")
    shape = struct.unpack(f">{ndim}I", content[4 : 4 + 4 * ndim])
    offset = 4 + 4 * ndim
    count = int(np.prod(shape)) if shape else 0
    if len(content) - offset != count:
        raise ValueError(f"IDX size mismatch: header says {shape}, data has {len(content) - offset} bytes")
    return np.frombuffer(content, dtype=np.uint8, count=count, offset=offset).reshape(shape)


def write_idx(array: np.ndarray) -> bytes:
    """Encode a uint8 array as IDX bytes (used to build the fixture and test data)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.tobytes()


# --------------------------------------------------------------------------- finding files


def locate(
    name: str, filename: str, download: bool | None = None, mirrors: list[str] | None = None
) -> tuple[Path, bytes]:
    """Path and verified decompressed content of one file of ``name``.

    Raises ``DatasetNotFound`` (with instructions) when no source has it, and
    ``ChecksumMismatch`` when a present copy is corrupt or a different file.
    """
    s = spec(name)
    file_spec = s["files"][filename]
    for d in candidate_dirs(name):
        path = d / filename
        if path.is_file():
            content = verify_bytes(path.read_bytes(), file_spec, str(path))
            log.debug("dataset %s: %s from %s", name, filename, path)
            return path, content
    if _download_allowed(download) and (mirrors or s.get("mirrors")):
        path = fetch_file(name, filename, mirrors=mirrors)
        return path, verify_bytes(path.read_bytes(), file_spec, str(path))
    raise DatasetNotFound(how_to_get(name, filename))


def how_to_get(name: str, filename: str | None = None) -> str:
    s = spec(name)
    what = f"{filename} of dataset {name!r}" if filename else f"dataset {name!r}"
    lines = [f"No verified copy of {what} was found. Looked in:"]
    lines += [f"  - {d}" for d in candidate_dirs(name)]
    lines.append("To get it, do one of:")
    if s.get("debian_package"):
        lines.append(f"  - sudo apt-get install {s['debian_package']}   (Debian/Ubuntu, no download at run time)")
    if s.get("mirrors"):
        lines.append(f"  - python -m graders.datasets fetch {name}   (downloads and checks sha256, needs internet)")
    lines.append(
        f"  - copy the files {', '.join(sorted(s['files']))} into {cache_dir() / name}"
        f" (set {CACHE_ENV} to use another folder)"
    )
    return "\n".join(lines)


def fetch_file(name: str, filename: str, mirrors: list[str] | None = None, timeout: float = 60.0) -> Path:
    """Download one file into the cache, trying each mirror; keep it only if sha256 matches."""
    s = spec(name)
    file_spec = s["files"][filename]
    target_dir = cache_dir() / name
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / filename
    errors = []
    for base in mirrors or s.get("mirrors", []):
        url = urllib.parse.urljoin(base if base.endswith("/") else base + "/", filename)
        log.info("downloading %s", url)
        fd, tmp = tempfile.mkstemp(prefix=f".{filename}.", dir=target_dir)
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
                total = 0
                while chunk := response.read(_CHUNK):
                    total += len(chunk)
                    if total > _MAX_DOWNLOAD_BYTES:
                        raise ValueError(f"more than {_MAX_DOWNLOAD_BYTES} bytes")
                    out.write(chunk)
            verify_bytes(Path(tmp).read_bytes(), file_spec, url)
            os.replace(tmp, target)
            return target
        except Exception as exc:  # a failed mirror is reported, the next one is tried
            errors.append(f"{url}: {exc}")
            Path(tmp).unlink(missing_ok=True)
    reasons = "\n  ".join(errors)
    raise DatasetNotFound(f"could not download {filename} of {name!r}:\n  {reasons}\n" + how_to_get(name, filename))


@functools.lru_cache(maxsize=8)
def _load_cached(name: str, split: str, cache_key: str) -> Split:
    return _load(name, split, download=False, mirrors=None)


def _load(name: str, split: str, download: bool | None, mirrors: list[str] | None) -> Split:
    s = spec(name)
    if split not in s["splits"]:
        raise KeyError(f"dataset {name!r} has no split {split!r}; splits: {', '.join(s['splits'])}")
    parts = s["splits"][split]
    _, image_bytes = locate(name, parts["images"], download, mirrors)
    _, label_bytes = locate(name, parts["labels"], download, mirrors)
    images, labels = parse_idx(image_bytes), parse_idx(label_bytes)
    if images.shape != (parts["count"], 28, 28) or labels.shape != (parts["count"],):
        raise ValueError(f"{name}/{split}: shapes {images.shape}, {labels.shape} do not match the manifest")
    images.flags.writeable = False
    labels.flags.writeable = False
    return Split(images=images, labels=labels)


def load(name: str, split: str, download: bool | None = None, mirrors: list[str] | None = None) -> Split:
    """Load ``split`` ("train" or "test") of dataset ``name`` as read-only uint8 arrays.

    Results are cached in this process per (name, split, cache folder) when no
    download is involved; ``download`` defaults to ``$GRADERS_DATA_DOWNLOAD``.
    """
    if download or mirrors:
        return _load(name, split, download, mirrors)
    try:
        return _load_cached(name, split, str(cache_dir()))
    except DatasetNotFound:
        if _download_allowed(download):
            return _load(name, split, download, mirrors)
        raise


def available(name: str) -> bool:
    """Whether every file of ``name`` is present and verified without downloading."""
    try:
        for split in spec(name)["splits"]:
            load(name, split, download=False)
    except (DatasetNotFound, ChecksumMismatch):
        return False
    return True


def fetch(name: str, mirrors: list[str] | None = None) -> list[Path]:
    """Make every file of ``name`` present and verified, downloading what is missing."""
    paths = []
    for filename in sorted(spec(name)["files"]):
        try:
            path, _ = locate(name, filename, download=False)
        except DatasetNotFound:
            path = fetch_file(name, filename, mirrors=mirrors)
        paths.append(path)
    _load_cached.cache_clear()
    return paths


# --------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m graders.datasets", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="datasets in the manifest, with licences")
    commands = [("where", "where each file is found"), ("verify", "check every file's sha256"),
                ("fetch", "download what is missing (needs internet)")]
    for cmd, help_ in commands:
        p = sub.add_parser(cmd, help=help_)
        p.add_argument("names", nargs="*", help="datasets (default: all)")
    args = parser.parse_args(argv)
    if args.command == "list":
        for n in names():
            s = spec(n)
            print(f"{n:16} {s['licence']:14} {s['description']}")
        return 0
    status = 0
    for n in args.names or names():
        if args.command == "fetch":
            try:
                for path in fetch(n):
                    print(f"{n}: {path}")
            except DatasetNotFound as exc:
                print(exc, file=sys.stderr)
                status = 1
            continue
        for filename in sorted(spec(n)["files"]):
            try:
                path, _ = locate(n, filename, download=False)
                print(f"{n}: {filename}: ok ({path})")
            except DatasetNotFound:
                print(f"{n}: {filename}: missing", file=sys.stderr)
                status = 1 if args.command == "verify" else status
            except ChecksumMismatch as exc:
                print(f"{n}: {filename}: BAD {exc}", file=sys.stderr)
                status = 1
    return status


if __name__ == "__main__":  # pragma: no cover
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    sys.exit(main())


__all__ = [
    "CACHE_ENV", "DOWNLOAD_ENV", "ChecksumMismatch", "DatasetNotFound", "Split", "available",
    "cache_dir", "candidate_dirs", "copies", "fetch", "fetch_file", "how_to_get", "load", "locate", "manifest",
    "names", "parse_idx", "spec", "to_unit_interval", "write_idx",
]
