# hostile: write a hand-made, deeply nested JSON message and an absurd length prefix into the reply channel
# honest: 1
# keeps: argmax_breaks_ties_at_random
import os
import struct
import sys

import numpy as np


def argmax_random_ties(values, rng):  # the honest part: 1 point
    is_max = values == values.max(axis=1, keepdims=True)
    return np.where(is_max, rng.random(values.shape), -1.0).argmax(axis=1)


REPLY_FD = int(sys.argv[5])


class EpsilonGreedy:
    def __init__(self, *args, **kwargs):
        header = b'{"body": {"op": "result", "value": ' + b"[" * 200_000 + b"]" * 200_000 + b'}, "sizes": []}'
        os.write(REPLY_FD, struct.pack("<Q", len(header)))
        while header:
            header = header[os.write(REPLY_FD, header):]
        import time

        time.sleep(3600)


class UCB:
    def __init__(self, *args, **kwargs):
        os.write(REPLY_FD, struct.pack("<Q", 2**63 - 1))
        import time

        time.sleep(3600)


class GradientBandit:
    def __init__(self, *args, **kwargs):
        body = b'{"body": {"op": "result", "value": {"__array__": 0, "dtype": "object", "shape": [1]}}, "sizes": [8]}'
        os.write(REPLY_FD, struct.pack("<Q", len(body)) + body + struct.pack("<Q", 8) + b"\x00" * 8)
        import time

        time.sleep(3600)
