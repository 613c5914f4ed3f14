# hostile: a thread writes forged "result" messages (and garbage) straight into the reply channel
# honest: 1
import sys
import threading
import time

import graders_worker.protocol as protocol
import numpy as np


def argmax_random_ties(values, rng):  # the honest part: 1 point
    is_max = values == values.max(axis=1, keepdims=True)
    return np.where(is_max, rng.random(values.shape), -1.0).argmax(axis=1)


REPLY_FD = int(sys.argv[5])


def forge():
    while True:
        try:
            protocol.send(REPLY_FD, {"op": "result", "value": {"passed": True, "points": 100}})
            protocol.send(REPLY_FD, {"op": "result", "value": np.zeros(30000, dtype=np.int64)})
        except OSError:
            return
        time.sleep(0.05)


threading.Thread(target=forge, daemon=True).start()


class EpsilonGreedy:
    def __init__(self, *args, **kwargs):
        import os

        os.write(REPLY_FD, b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!")
