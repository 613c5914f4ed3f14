# hostile: exception messages of 20 MB in every call, raised and written by hand (bypassing the worker's cut)
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


def _send_error(message: str) -> None:
    header = json.dumps({"body": {"op": "error", "type": "ValueError", "message": message}, "sizes": []}).encode()
    os.write(REPLY_FD, struct.pack("<Q", len(header)))
    view = memoryview(header)
    while view:
        view = view[os.write(REPLY_FD, view):]
    time.sleep(3600)


class EpsilonGreedy:
    def __init__(self, *args, **kwargs):
        raise ValueError("E" * (20 << 20))


class UCB:
    def __init__(self, *args, **kwargs):  # just under the JSON cap, by hand: the grader must cut it
        _send_error("U" * ((1 << 20) - 200))


class GradientBandit:
    def __init__(self, *args, **kwargs):  # 20 MB by hand: over the JSON cap
        _send_error("G" * (20 << 20))
