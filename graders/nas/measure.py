"""How the accuracy of one architecture of the space is measured (bench/nas_table.py, tests).

The grader never trains a network: it looks accuracies up in the shipped table
(graders/nas/table.py). This is the protocol that made the table, kept next to the
space so that a test can recompute a few rows:

- data: Fashion-MNIST's training split only; a fixed permutation (numpy seed 2017)
  gives 6000 training and 4000 validation images, downsampled to 14x14 by 2x2
  averaging and standardized with the training images' mean and standard deviation;
- training: `torch.manual_seed(seed)`, the network of `space.build`, Adam (lr 3e-3),
  2 epochs of batches of 128 (the order drawn from a torch generator seeded with
  `seed`), one CPU thread;
- the measurement: the fraction of validation images classified correctly.

On one machine a measurement is repeatable to the bit; across CPUs the float
arithmetic of the convolutions may differ slightly and so may the accuracy (see
docs/nas.md for the tolerance the test allows).
"""

from __future__ import annotations

import functools

import numpy as np

from graders.nas import space

DATASET = "fashion-mnist"
SPLIT_SEED = 2017
TRAIN_IMAGES, VALIDATION_IMAGES = 6000, 4000
EPOCHS, BATCH, LEARNING_RATE = 2, 128, 3e-3


@functools.lru_cache(maxsize=1)
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(train images, train labels, validation images, validation labels); images float32 (N, 1, 14, 14)."""
    from graders import datasets

    split = datasets.load(DATASET, "train")
    order = np.random.default_rng(SPLIT_SEED).permutation(len(split))
    chosen = order[:TRAIN_IMAGES + VALIDATION_IMAGES]
    images = split.images[chosen].astype(np.float32).reshape(-1, 14, 2, 14, 2).mean(axis=(2, 4)) / np.float32(255)
    train = images[:TRAIN_IMAGES]
    mean, std = train.mean(), train.std()
    images = ((images - mean) / std).astype(np.float32)[:, None]
    labels = split.labels[chosen].astype(np.int64)
    return images[:TRAIN_IMAGES], labels[:TRAIN_IMAGES], images[TRAIN_IMAGES:], labels[TRAIN_IMAGES:]


def accuracy(tokens, seed: int) -> float:
    """Train the architecture once with `seed` and return its validation accuracy."""
    import torch
    import torch.nn.functional as F

    x_train, y_train, x_val, y_val = (torch.from_numpy(a) for a in data())
    torch.manual_seed(seed)
    net = space.build(tokens)
    optimizer = torch.optim.Adam(net.parameters(), lr=LEARNING_RATE)
    order = torch.Generator().manual_seed(seed)
    net.train()
    for _ in range(EPOCHS):
        permutation = torch.randperm(len(x_train), generator=order)
        for start in range(0, len(x_train), BATCH):
            batch = permutation[start:start + BATCH]
            loss = F.cross_entropy(net(x_train[batch]), y_train[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    net.eval()
    with torch.no_grad():
        correct = (net(x_val).argmax(dim=1) == y_val).sum().item()
    return correct / len(y_val)
