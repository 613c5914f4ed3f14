# hostile: a 64 MB JSON header of empty dicts (about 48x its size to parse), by hand and as a plain return value
# honest: 1
# keeps: argmax_breaks_ties_at_random
import os
import struct
import sys
import time

import numpy as np


def argmax_random_ties(values, rng):  # the honest part: 1 point
    is_max = values == values.max(axis=1, keepdims=True)
    return np.where(is_max, rng.random(values.shape), -1.0).argmax(axis=1)


REPLY_FD = int(sys.argv[5])


def _write_header(header: bytes) -> None:
    os.write(REPLY_FD, struct.pack("<Q", len(header)))
    view = memoryview(header)
    while view:
        view = view[os.write(REPLY_FD, view):]


class EpsilonGreedy:
    def __init__(self, *args, **kwargs):  # by hand, straight into the reply channel
        _write_header(b'{"body": {"op": "result", "value": [' + b"{}," * ((64 << 20) // 3) + b'{}]}, "sizes": []}')
        time.sleep(3600)


class UCB:
    def __init__(self, *args, **kwargs):  # just under the default cap: the most the grader parses
        _write_header(b'{"body": {"op": "result", "value": [' + b"{}," * ((1 << 20) // 3 - 20) + b'{}]}, "sizes": []}')
        time.sleep(3600)

    def act(self):
        return [{}] * (8 << 20)  # through the worker's own encoder: refused there


class GradientBandit(UCB):
    def __init__(self, *args, **kwargs):
        pass
