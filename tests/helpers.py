"""Plain helpers the tests share (fixtures live in conftest.py)."""

from __future__ import annotations

import numpy as np

from graders import assignments
from graders.paths import REPO_ROOT as ROOT

__all__ = ["FAST_BANDITS", "NEEDS_BUBBLEWRAP", "NEEDS_FASHION_MNIST", "OPT_IN_HEAVY_BENCH", "ROOT", "by_name", "edited", "failed",
           "solution_source"]

# Skip reasons: one line each, saying what to install (conftest.py counts the skips per reason).
NEEDS_BUBBLEWRAP = "needs bubblewrap: apt-get install bubblewrap"
# A small testbed and loose thresholds, for tests about something other than the bandits themselves.
FAST_BANDITS = """[bandits]
testbed_runs = 100
testbed_steps = 150
[bandits.thresholds]
epsilon_greedy_reward = 0.2
epsilon_greedy_optimal = 0.2
optimistic_optimal = 0.2
ucb_reward = 0.2
gradient_baseline_optimal = 0.2
gradient_no_baseline_optimal = 0.05
"""
NEEDS_FASHION_MNIST = ("needs Fashion-MNIST: apt-get install dataset-fashion-mnist "
                       "(or python -m graders.datasets fetch fashion-mnist)")
# tests/test_bench.py: bench scripts whose smallest run is whole `graders batch` or `graders grade` commands (fresh
# interpreters, workers, a class report, Ray): half a minute to a minute and a half of CPU each on 2 cores.
OPT_IN_HEAVY_BENCH = "runs whole grading commands (30-90 s of CPU): BENCH_SMOKE_HEAVY=1 runs it"


def by_name(grading) -> dict:
    return {r.name: r for r in grading.results}


def failed(grading) -> dict:
    """{check: message} of the checks that did not pass."""
    return {r.name: r.message for r in grading.results if r.status != "passed"}


def solution_source(assignment: str) -> str:
    return assignments.solution_path(assignment).read_text()


def edited(assignment: str, old: str, new: str) -> str:
    """The reference with one targeted change (the change must apply exactly once)."""
    source = solution_source(assignment)
    assert source.count(old) == 1, f"the change does not apply: {old!r}"
    return source.replace(old, new)


# The attack of a student who writes a controller instead of learning one: train() returns a
# linear policy (logits from a fixed weight vector) that balances CartPole for 500 steps. It may
# first play `warmup` episodes of random actions on the served environments, so that the
# grader's learning curve starts where an untrained policy starts, and then `shown` episodes of
# the controller itself, so that the grader sees it play well. TABLE maps train()'s seed to the
# weights in the served labels and whether the actions are swapped: empty for a controller
# written for gymnasium's labels (which the grader's relabelling defeats), or precomputed for the
# public seeds (`precomputed_relabelling`), which the official grading's hidden seeds defeat.
CONTROLLER_TRAIN = '''
    ### BEGIN SOLUTION
    weights, swap = TABLE.get(seed, ([0.05, 0.2, 1.0, 0.3], 0))

    class Controller(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.tensor(weights))

        def forward(self, obs):
            z = obs @ self.w * (-100.0 if swap else 100.0)
            return torch.stack([-z, z], dim=1)

    controller = Controller()
    envs = make_envs(1)
    obs, _ = envs.reset()
    played, rng = 0, np.random.default_rng(seed)
    while played < WARMUP + SHOWN:
        if played < WARMUP:
            action = rng.integers(0, 2, 1)
        else:
            action = act(controller, obs)
        obs, reward, terminated, truncated, _ = envs.step(action)
        played += int(terminated[0] or truncated[0])
    return RETURNED
    torch.manual_seed(seed)
'''
GYMNASIUM_WEIGHTS = np.array([0.05, 0.2, 1.0, 0.3])


def precomputed_relabelling(seeds=(0, 1)) -> dict:
    """{train()'s seed: (weights, swap)} of the balancing controller under each grading seed's relabelling: what a
    submission can compute beforehand for seeds it knows (the public ones)."""
    from graders.contract import Context
    from graders.rl.cartpole import Relabelling

    ctx = Context("reinforce", "cpu", {"seeds": list(seeds)})
    table = {}
    for index, seed in enumerate(seeds):
        r = Relabelling(seed)
        table[ctx.worker_seed(f"train {index}")] = ((GYMNASIUM_WEIGHTS[r.order] * r.signs).tolist(), r.swap)
    return table


def controller_source(assignment: str, warmup: int = 0, shown: int = 0, precomputed: bool = False) -> str:
    """The reference with a hand-written controller returned by train() (see CONTROLLER_TRAIN)."""
    returned = "controller, nn.Linear(4, 1)" if assignment == "reinforce_baseline" else "controller"  # (policy, value_net)
    body = CONTROLLER_TRAIN.replace("WARMUP", str(warmup)).replace("SHOWN", str(shown)).replace("RETURNED", returned)
    body = body.replace("TABLE", repr(precomputed_relabelling() if precomputed else {}))
    return edited(assignment, "\n    ### BEGIN SOLUTION\n    torch.manual_seed(seed)\n", body)
