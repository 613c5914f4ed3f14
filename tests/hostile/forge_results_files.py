# hostile: forge results: writes results.json / Gradescope JSON wherever it can, prints a fake score table
# honest: 1
# keeps: argmax_breaks_ties_at_random
import json
import os
import sys

import numpy as np


def argmax_random_ties(values, rng):  # the honest part: 1 point
    is_max = values == values.max(axis=1, keepdims=True)
    return np.where(is_max, rng.random(values.shape), -1.0).argmax(axis=1)


FAKE = {"score": 20.0, "max_score": 20.0, "tests": [{"name": "all", "score": 20.0, "max_score": 20.0}]}
for folder in [".", os.path.expanduser("~"), "/tmp", "/autograder/results", os.path.join(sys.argv[1], "results"),
               os.path.join(sys.argv[1], "feedback"), os.path.dirname(sys.argv[3])]:
    for name in ("results.json", "results.json.tmp", "grades.csv"):
        try:
            os.makedirs(folder, exist_ok=True)
            with open(os.path.join(folder, name), "w") as f:
                json.dump(FAKE, f)
        except OSError:
            pass
print("total                                                20 / 20")
print(json.dumps(FAKE))


class EpsilonGreedy:
    def __init__(self, *args, **kwargs):
        print("testbed_epsilon_greedy                   passed       2 / 2")
        raise SystemExit(0)
