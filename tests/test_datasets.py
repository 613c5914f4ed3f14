"""graders.datasets: manifest, IDX parsing, sources in order, sha256 checks, downloads (loopback only)."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import json
import threading
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from graders import datasets

FIXTURE = "mnist-tiny"
FILES = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
         "t10k-labels-idx1-ubyte.gz"]


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    """Every test gets an empty cache folder, no download permission and fresh in-process caches."""
    monkeypatch.setenv(datasets.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.delenv(datasets.DOWNLOAD_ENV, raising=False)
    datasets._load_cached.cache_clear()
    datasets._read_manifest.cache_clear()
    yield
    datasets._load_cached.cache_clear()
    datasets._read_manifest.cache_clear()


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a test tried to download")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)


def fixture_dir() -> Path:
    return datasets.DATASETS_DIR / datasets.spec(FIXTURE)["fixture_dir"]


# ----------------------------------------------------------------------------- manifest and format


def test_manifest_describes_every_file_with_licence_and_checksums():
    for name in datasets.names():
        s = datasets.spec(name)
        assert s["licence"] and s["description"] and s["homepage"]
        assert set(s["splits"]) == {"train", "test"}
        for split in s["splits"].values():
            assert split["images"] in s["files"] and split["labels"] in s["files"]
        for f in s["files"].values():
            assert f["content_size"] > 0 and f["archives"]
            for archive in f["archives"]:
                assert len(archive["sha256"]) == 64 and archive["size"] > 0


def test_fixture_files_match_the_manifest_byte_for_byte():
    for filename, f in datasets.spec(FIXTURE)["files"].items():
        raw = (fixture_dir() / filename).read_bytes()
        assert len(raw) == f["archives"][0]["size"]
        assert hashlib.sha256(raw).hexdigest() == f["archives"][0]["sha256"]
        content = gzip.decompress(raw)
        assert len(content) == f["content_size"]
        assert hashlib.sha256(content).hexdigest() == f["content_sha256"]


def test_idx_round_trip_and_malformed_files():
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    np.testing.assert_array_equal(datasets.parse_idx(datasets.write_idx(array)), array)
    with pytest.raises(ValueError, match="size mismatch"):
        datasets.parse_idx(datasets.write_idx(array)[:-1])
    with pytest.raises(ValueError, match="not an IDX"):
        datasets.parse_idx(b"\x00\x00\x0d\x01" + bytes(8))


def test_to_unit_interval():
    out = datasets.to_unit_interval(np.array([[[0, 255], [51, 102]]], dtype=np.uint8))
    assert out.dtype == np.float32 and out.shape == (1, 4)
    np.testing.assert_allclose(out, [[0.0, 1.0, 0.2, 0.4]])


# ----------------------------------------------------------------------------- loading


def test_fixture_loads_as_balanced_read_only_uint8(no_network):
    train, test = datasets.load(FIXTURE, "train"), datasets.load(FIXTURE, "test")
    assert train.images.shape == (800, 28, 28) and test.images.shape == (200, 28, 28)
    assert train.images.dtype == np.uint8 and train.labels.dtype == np.uint8
    assert np.bincount(train.labels).tolist() == [80] * 10 and np.bincount(test.labels).tolist() == [20] * 10
    assert not train.images.flags.writeable
    assert 0.0 <= train.flat_float().min() and train.flat_float().max() == 1.0
    # real digits: not blank, and train and test are different images
    assert train.images.mean() > 20
    train_rows = {row.tobytes() for row in train.images.reshape(800, -1)}
    assert not any(row.tobytes() in train_rows for row in test.images.reshape(200, -1))


@pytest.mark.skipif(not Path("/usr/share/datasets/fashion-mnist").is_dir(),
                    reason="Debian's dataset-fashion-mnist is not installed")
def test_debian_fashion_mnist_is_found_and_verified(no_network):
    train, test = datasets.load("fashion-mnist", "train"), datasets.load("fashion-mnist", "test")
    assert train.images.shape == (60000, 28, 28) and test.images.shape == (10000, 28, 28)
    assert train.labels[:10].tolist() == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]
    assert np.bincount(test.labels).tolist() == [1000] * 10
    path, _ = datasets.locate("fashion-mnist", "t10k-labels-idx1-ubyte.gz")
    assert path.parent == Path("/usr/share/datasets/fashion-mnist")


def _copy_fixture_to(folder: Path, recompress: bool = False) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for filename in FILES:
        raw = (fixture_dir() / filename).read_bytes()
        if recompress:  # same content, other gzip bytes (as Debian's files are)
            raw = gzip.compress(gzip.decompress(raw), compresslevel=1, mtime=12345)
        (folder / filename).write_bytes(raw)


def test_cache_folder_comes_first_and_recompressed_files_pass_by_content(tmp_path, no_network):
    _copy_fixture_to(tmp_path / "cache" / FIXTURE, recompress=True)
    path, content = datasets.locate(FIXTURE, "t10k-images-idx3-ubyte.gz")
    assert path == tmp_path / "cache" / FIXTURE / "t10k-images-idx3-ubyte.gz"
    want = datasets.spec(FIXTURE)["files"]["t10k-images-idx3-ubyte.gz"]["content_sha256"]
    assert hashlib.sha256(content).hexdigest() == want
    assert datasets.load(FIXTURE, "test").images.shape == (200, 28, 28)


def test_a_corrupt_copy_is_an_error_not_skipped(tmp_path, no_network):
    folder = tmp_path / "cache" / FIXTURE
    _copy_fixture_to(folder)
    content = bytearray(gzip.decompress((folder / "t10k-labels-idx1-ubyte.gz").read_bytes()))
    content[-1] ^= 1
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(bytes(content)))
    with pytest.raises(datasets.ChecksumMismatch, match="fetch it again"):
        datasets.load(FIXTURE, "test")


def test_missing_data_says_how_to_get_it_and_does_not_download(no_network):
    if datasets.available("mnist"):
        pytest.skip("full MNIST is present on this machine")
    with pytest.raises(datasets.DatasetNotFound) as info:
        datasets.load("mnist", "train")
    message = str(info.value)
    assert "python -m graders.datasets fetch mnist" in message and datasets.CACHE_ENV in message
    assert "train-images-idx3-ubyte.gz" in message
    assert "apt-get install dataset-fashion-mnist" in datasets.how_to_get("fashion-mnist")


# ----------------------------------------------------------------------------- downloads (loopback only)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def mirror(tmp_path):
    """A loopback HTTP server: /good/ holds the fixture's files, /bad/ holds wrong bytes, /empty/ nothing."""
    root = tmp_path / "www"
    _copy_fixture_to(root / "good")
    (root / "bad").mkdir()
    (root / "empty").mkdir()
    for filename in FILES:
        (root / "bad" / filename).write_bytes(gzip.compress(b"not the data"))

    def handler(*args, **kwargs):
        return _QuietHandler(*args, directory=str(root), **kwargs)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def remote_only_manifest(tmp_path, monkeypatch):
    """A manifest whose dataset 'remote-tiny' (the fixture's files) exists only on mirrors."""
    data = json.loads(datasets.MANIFEST_PATH.read_text())
    spec = dict(data["datasets"][FIXTURE])
    del spec["fixture_dir"]
    spec["mirrors"] = []
    data["datasets"] = {"remote-tiny": spec}
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(data))
    monkeypatch.setattr(datasets, "MANIFEST_PATH", path)
    return "remote-tiny"


def test_download_tries_mirrors_in_order_and_keeps_only_verified_files(tmp_path, mirror, remote_only_manifest):
    name = remote_only_manifest
    with pytest.raises(datasets.DatasetNotFound):
        datasets.load(name, "test")  # downloading is off by default
    mirrors = [f"{mirror}/empty/", f"{mirror}/bad/", f"{mirror}/good/"]
    test = datasets.load(name, "test", download=True, mirrors=mirrors)
    assert test.images.shape == (200, 28, 28)
    cached = tmp_path / "cache" / name
    assert sorted(p.name for p in cached.iterdir()) == ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
    # now present in the cache: no network needed
    datasets._load_cached.cache_clear()
    assert datasets.load(name, "test").labels.shape == (200,)


def test_download_from_bad_mirrors_only_fails_with_every_reason(tmp_path, mirror, remote_only_manifest):
    with pytest.raises(datasets.DatasetNotFound) as info:
        datasets.fetch_file(remote_only_manifest, "t10k-labels-idx1-ubyte.gz",
                            mirrors=[f"{mirror}/empty", f"{mirror}/bad"])
    message = str(info.value)
    assert "404" in message and "none of the known archives" in message
    assert not (tmp_path / "cache" / remote_only_manifest / "t10k-labels-idx1-ubyte.gz").exists()
    assert not any(p.name.startswith(".") for p in (tmp_path / "cache" / remote_only_manifest).iterdir())


def test_fetch_from_file_urls_and_download_env(tmp_path, monkeypatch, mirror, remote_only_manifest):
    source = tmp_path / "www" / "good"
    paths = datasets.fetch(remote_only_manifest, mirrors=[source.as_uri() + "/"])
    assert len(paths) == 4 and all(p.parent == tmp_path / "cache" / remote_only_manifest for p in paths)
    assert datasets.available(remote_only_manifest)
    # GRADERS_DATA_DOWNLOAD=1 allows downloads through the manifest's own mirrors
    monkeypatch.setenv(datasets.CACHE_ENV, str(tmp_path / "other-cache"))
    data = json.loads(datasets.MANIFEST_PATH.read_text())
    data["datasets"][remote_only_manifest]["mirrors"] = [f"{mirror}/good/"]
    datasets.MANIFEST_PATH.write_text(json.dumps(data))
    datasets._read_manifest.cache_clear()
    datasets._load_cached.cache_clear()
    monkeypatch.setenv(datasets.DOWNLOAD_ENV, "1")
    assert datasets.load(remote_only_manifest, "train").images.shape == (800, 28, 28)


# ----------------------------------------------------------------------------- command line


def test_command_line(capsys, no_network):
    assert datasets.main(["list"]) == 0
    assert "mnist-tiny" in capsys.readouterr().out
    assert datasets.main(["verify", FIXTURE]) == 0
    assert "ok" in capsys.readouterr().out
    if not datasets.available("mnist"):
        assert datasets.main(["verify", "mnist"]) == 1
        assert datasets.main(["where", "mnist"]) == 0
