# hostile: look for other students' submissions and worker directories; read them and overwrite them
# honest: 1
# keeps: argmax_breaks_ties_at_random
# needs: bubblewrap
import glob
import os
import sys

import numpy as np


def argmax_random_ties(values, rng):  # the honest part: 1 point
    is_max = values == values.max(axis=1, keepdims=True)
    return np.where(is_max, rng.random(values.shape), -1.0).argmax(axis=1)


seen = []
patterns = ["/tmp/grader-worker-*/submission.py", "/tmp/*/submission.py", os.path.join(sys.argv[1], "tests", "*", "*.py"),
            os.path.join(sys.argv[1], "tests", "submissions", "*", "*.py"), "/tmp/pytest-of-*/**/*.py"]
for pattern in patterns:
    for path in glob.glob(pattern, recursive=True)[:50]:
        if os.path.realpath(path) == os.path.realpath(sys.argv[3]):
            continue
        try:
            open(path).read()
            seen.append(path)
        except OSError:
            pass
if seen:
    print("LEAK" "ED: could read", len(seen), "files of others, e.g.", seen[0])
