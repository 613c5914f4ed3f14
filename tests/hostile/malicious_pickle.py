# hostile: return objects whose unpickling runs code, pickled bytes, and a raw pickle on the reply channel
# honest: 1
# keeps: argmax_breaks_ties_at_random
import os
import pickle
import struct
import sys

import numpy as np


def argmax_random_ties(values, rng):  # the honest part: 1 point
    is_max = values == values.max(axis=1, keepdims=True)
    return np.where(is_max, rng.random(values.shape), -1.0).argmax(axis=1)


MARKER = "/tmp/hostile-pickle-ran"


class Payload:
    def __reduce__(self):
        return (os.system, (f"touch {MARKER}",))


class EpsilonGreedy:
    def __init__(self, n_runs, k, *args, **kwargs):
        self.Q = Payload()
        self.N = pickle.dumps(Payload())
        self.n = n_runs

    def act(self):
        return Payload()

    def update(self, actions, rewards):
        pass


class UCB(EpsilonGreedy):
    def act(self):
        data = pickle.dumps({"op": "result", "value": Payload()})
        os.write(int(sys.argv[5]), struct.pack("<Q", len(data)) + data)
        import time

        time.sleep(3600)


class GradientBandit(EpsilonGreedy):
    def policy(self):
        return np.array([Payload()], dtype=object)
