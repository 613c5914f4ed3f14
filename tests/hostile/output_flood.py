# hostile: flood stdout and stderr at import and in calls
# honest: 1
# keeps: argmax_breaks_ties_at_random
import os
import sys

import numpy as np


def argmax_random_ties(values, rng):  # the honest part: 1 point
    is_max = values == values.max(axis=1, keepdims=True)
    return np.where(is_max, rng.random(values.shape), -1.0).argmax(axis=1)


LINE = "spam " * 200 + "\n"
for _ in range(20_000):
    sys.stdout.write(LINE)
    sys.stderr.write(LINE)


class GradientBandit:  # the attack runs in one check only: gradient_bandit_policy
    def __init__(self, *args, **kwargs):
        pass

    def policy(self):
        while True:
            os.write(1, LINE.encode() * 100)

