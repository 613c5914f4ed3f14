# hostile: a thread scribbles over the shared-memory fast path (random bytes, forged headers, rings, a resize) while the grader serves
# honest: 1
# keeps: argmax_breaks_ties_at_random
import os
import threading

import numpy as np
from graders_worker import fastpath


def argmax_random_ties(values, rng):  # the honest part: 1 point
    is_max = values == values.max(axis=1, keepdims=True)
    return np.where(is_max, rng.random(values.shape), -1.0).argmax(axis=1)


def scribble():
    channel = fastpath.channel()
    if channel is None:
        return
    memfd, request_fd, _ = (int(x) for x in os.environ[fastpath.ENV].split(","))
    for size in (0, 1 << 30):
        try:
            os.ftruncate(memfd, size)  # sealed: refused; a shrunk file would crash a reader with SIGBUS
        except OSError:
            pass
    rng = np.random.default_rng(0)
    seq = 1 << 40
    while True:
        at = int(rng.integers(0, fastpath.SIZE - 64))
        channel._mm[at:at + 64] = rng.bytes(64)
        seq += 1
        fastpath.REQUEST.pack_into(channel._mm, fastpath.REQUEST_AT, seq, b"pull", int(rng.integers(0, 20)),
                                   int(rng.integers(0, 6)), int(rng.integers(0, 1 << 31)),
                                   *rng.integers(0, 1 << 31, 4).tolist())
        os.eventfd_write(request_fd, 1)


threading.Thread(target=scribble, daemon=True).start()


class EpsilonGreedy:
    def __init__(self, n_runs, k, *args, **kwargs):
        self.n = n_runs

    def act(self):
        return np.zeros(self.n, dtype=np.int64)

    def update(self, actions, rewards):
        pass


UCB = GradientBandit = EpsilonGreedy
