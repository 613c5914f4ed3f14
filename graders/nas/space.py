"""The NAS assignment's search space, owned by the grader: decoding, FLOPs, the torch network, the reward.

An architecture is 9 tokens, three per block for three blocks: an operation (a plain
convolution or a depthwise-separable one), a kernel size (3 or 5) and a width (4, 8
or 16 output channels): 12 choices per block, 12^3 = 1728 architectures. The network
sees Fashion-MNIST images downsampled to 14x14 (2x2 average pooling):

    block 1 (14x14) -> max-pool 2 -> block 2 (7x7) -> block 3 (7x7) -> max-pool 2 (3x3)
    -> flatten -> linear to 10 classes

A block is conv(k x k) + batch norm + ReLU, or depthwise conv(k x k) + pointwise
conv(1 x 1) + batch norm + ReLU (convolutions without bias, padding k // 2).

FLOPs are multiply-adds of the convolutions and the linear layer for one image (batch
norm, ReLU and pooling are not counted), computed here from the architecture;
tests/test_nas.py checks them against torch's own counter on the built network.

The reward is MnasNet's (Tan et al., 2019) with EfficientNet's FLOPs target (Tan & Le,
2019): accuracy * (flops / target) ** w with w = alpha when flops <= target, else beta.
"""

from __future__ import annotations

import numpy as np

BLOCKS = 3
OPS = ("conv", "sep")
KERNELS = (3, 5)
WIDTHS = (4, 8, 16)
DECISION_NAMES = tuple(f"block{b + 1}.{what}" for b in range(BLOCKS) for what in ("op", "kernel", "width"))
CHOICES = (len(OPS), len(KERNELS), len(WIDTHS)) * BLOCKS  # choices of each decision, in emission order
SIZE = int(np.prod(CHOICES))
INPUT_SIDE = 14  # Fashion-MNIST 28x28 averaged over 2x2
BLOCK_SIDES = (14, 7, 7)  # resolution each block works at
HEAD_SIDE = 3  # after the last max-pool
CLASSES = 10


def check_tokens(tokens) -> tuple[int, ...]:
    """The tokens as a tuple of ints, or ValueError when they are not an architecture of the space."""
    tokens = tuple(int(t) for t in tokens)
    if len(tokens) != len(CHOICES) or any(not 0 <= t < k for t, k in zip(tokens, CHOICES)):
        raise ValueError(f"an architecture is {len(CHOICES)} tokens with token d in range(CHOICES[d]) = "
                         f"{CHOICES}; got {tokens}")
    return tokens


def index_of(tokens) -> int:
    """Row-major position of an architecture in the table (the first decision varies slowest)."""
    return int(np.ravel_multi_index(check_tokens(tokens), CHOICES))


def tokens_of(index: int) -> tuple[int, ...]:
    return tuple(int(t) for t in np.unravel_index(int(index), CHOICES))


def all_tokens() -> np.ndarray:
    """Every architecture, (SIZE, 9) int64, in table order."""
    return np.stack(np.unravel_index(np.arange(SIZE), CHOICES), axis=1).astype(np.int64)


def blocks(tokens) -> list[tuple[str, int, int]]:
    """(op, kernel, width) of each block."""
    t = check_tokens(tokens)
    return [(OPS[t[3 * b]], KERNELS[t[3 * b + 1]], WIDTHS[t[3 * b + 2]]) for b in range(BLOCKS)]


def describe(tokens) -> str:
    """E.g. 'conv5x5-16 | sep3x3-32 | conv3x3-32'."""
    return " | ".join(f"{op}{k}x{k}-{w}" for op, k, w in blocks(tokens))


def flops(tokens) -> int:
    """Multiply-adds of one forward pass of one image (convolutions and the linear layer)."""
    total, channels = 0, 1
    for (op, k, width), side in zip(blocks(tokens), BLOCK_SIDES):
        pixels = side * side
        if op == "conv":
            total += pixels * k * k * channels * width
        else:
            total += pixels * (k * k * channels + channels * width)
        channels = width
    return total + HEAD_SIDE * HEAD_SIDE * channels * CLASSES


def all_flops() -> np.ndarray:
    return np.array([flops(t) for t in all_tokens()], dtype=np.int64)


def reward(accuracy, flops, target_flops: float, alpha: float, beta: float) -> np.ndarray:
    """accuracy * (flops / target) ** w, w = alpha if flops <= target else beta (float64)."""
    accuracy, ratio = np.asarray(accuracy, dtype=np.float64), np.asarray(flops, dtype=np.float64) / target_flops
    return accuracy * ratio ** np.where(ratio <= 1.0, alpha, beta)


def build(tokens):
    """The architecture as a torch module taking (B, 1, 14, 14) images to (B, 10) logits."""
    import torch.nn as nn

    layers, channels = [], 1
    for b, (op, k, width) in enumerate(blocks(tokens)):
        if op == "conv":
            layers.append(nn.Conv2d(channels, width, k, padding=k // 2, bias=False))
        else:
            layers += [nn.Conv2d(channels, channels, k, padding=k // 2, groups=channels, bias=False),
                       nn.Conv2d(channels, width, 1, bias=False)]
        layers += [nn.BatchNorm2d(width), nn.ReLU()]
        if b in (0, BLOCKS - 1):
            layers.append(nn.MaxPool2d(2))
        channels = width
    layers += [nn.Flatten(), nn.Linear(HEAD_SIDE * HEAD_SIDE * channels, CLASSES)]
    return nn.Sequential(*layers)
