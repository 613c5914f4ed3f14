# hostile: a 255 MB bool array where the grader expects a few actions (8x that as float64), and a forged shape
# honest: 1
# keeps: argmax_breaks_ties_at_random
import json
import os
import struct
import sys
import time

import numpy as np


def argmax_random_ties(values, rng):  # the honest part: 1 point
    is_max = values == values.max(axis=1, keepdims=True)
    return np.where(is_max, rng.random(values.shape), -1.0).argmax(axis=1)


REPLY_FD = int(sys.argv[5])


class EpsilonGreedy:
    def __init__(self, *args, **kwargs):
        pass

    def act(self):
        return np.ones(255 << 20, dtype=bool)

    def update(self, actions, rewards):
        pass


class UCB(EpsilonGreedy):
    def act(self):  # a shape that claims 2**40 float64 values on 8 bytes, by hand
        header = json.dumps({"body": {"op": "result", "value": {"__array__": 0, "dtype": "float64",
                                                               "shape": [1 << 20, 1 << 20]}}, "sizes": [8]}).encode()
        os.write(REPLY_FD, struct.pack("<Q", len(header)) + header + struct.pack("<Q", 8) + b"\0" * 8)
        time.sleep(3600)


class GradientBandit(EpsilonGreedy):
    def policy(self):
        return np.ones((255 << 20) // 10, dtype=bool).reshape(-1, 10)  # 10 arms, far too many runs
