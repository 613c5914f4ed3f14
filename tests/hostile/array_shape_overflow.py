# hostile: a reply with an empty array whose shape numpy cannot index (more elements than an index holds): it was an
# internal grader error (issue 29 item 7); it must be the worker's malformed data, a student-side failure
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


def _reply(shape: list[int]) -> None:
    body = json.dumps({"body": {"op": "result", "value": {"__array__": 0, "dtype": "float64", "shape": shape}},
                       "sizes": [0]}).encode()
    os.write(REPLY_FD, struct.pack("<Q", len(body)) + body + struct.pack("<Q", 0))
    time.sleep(3600)


class EpsilonGreedy:
    def __init__(self, *args, **kwargs):
        _reply([0] + [1 << 28] * 5)


class UCB:
    def __init__(self, *args, **kwargs):
        _reply([1 << 28] * 4 + [0])


class GradientBandit(UCB):
    pass
