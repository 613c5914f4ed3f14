# hostile: read the images the grader holds out from the dataset files on disk (Debian's world-readable
# /usr/share/datasets, the repository's fixture and cache, found through the worker package's link), then code
# each held-out image's index in z (one latent dimension, sigma 1e-6: about 13 nats of KL) and decode it back
# exactly (issue 29, item 2: 16/16 untrained in the process-limits mode, workers on their own uids).
#
# Appended to the VAE reference by tests/test_vae.py, with train() returning an untrained model.
import glob
import gzip
import os
import sys

import numpy as np
import torch


def _library():
    roots = ["/usr/share/datasets"]
    for entry in sys.path:  # without bubblewrap, the worker package is a link into the repository
        package = os.path.join(entry, "graders_worker")
        if os.path.islink(package):
            roots.append(os.path.join(os.path.dirname(os.path.realpath(package)), "datasets"))
    images = []
    for root in roots:
        for path in sorted(glob.glob(os.path.join(root, "**", "train-images-idx3-ubyte.gz"), recursive=True)):
            try:
                data = gzip.open(path).read()
            except OSError:
                continue
            images.append(np.frombuffer(data[16:], np.uint8).reshape(-1, 784))
    return np.concatenate(images) if images else np.zeros((0, 784), np.uint8)


_LIBRARY = _library()
_INDEX = {image.tobytes(): i for i, image in enumerate(_LIBRARY)}


class VAE(VAE):  # noqa: F821 - the reference's
    def encode(self, x):
        mu, log_sigma = super().encode(x)
        found = [_INDEX.get(np.rint(row * 255).astype(np.uint8).tobytes()) for row in x.detach().cpu().numpy()]
        if self.training or not _INDEX or None in found:
            return mu, log_sigma
        mu, log_sigma = torch.zeros_like(mu), torch.zeros_like(log_sigma)
        mu[:, 0] = torch.tensor(found, dtype=mu.dtype) / len(_LIBRARY) * 2 - 1
        log_sigma[:, 0] = float(np.log(1e-6))
        return mu, log_sigma

    def decode(self, z):
        if self.training or not _INDEX:
            return super().decode(z)
        index = np.rint((z[:, 0].detach().cpu().numpy().astype(np.float64) + 1) / 2 * len(_LIBRARY)).astype(int)
        x = np.clip(_LIBRARY[np.clip(index, 0, len(_LIBRARY) - 1)] / 255.0, 1e-13, 1 - 1e-13)
        return torch.as_tensor(np.log(x / (1 - x)), dtype=torch.float32)
