"""The search served by the grader (grader side, trusted): evaluations counted against a budget.

As the REINFORCE graders serve CartPole, this grader serves the search space: the
worker proposes architectures as token sequences (`nas_evaluate`, one callback per
batch), and the grader answers each with the measured validation accuracy and the
FLOPs of the architecture, looked up in its table. It counts every evaluation,
refuses the ones past the budget, and records every proposal with the reward it
computes itself; the feedback's curve and the outcome check use only these records.

Each search has a hidden relabelling of the choices: token t of decision d means
choice `permutations[d][t]` of the space. A learner is indifferent to the labels;
a submission that hard-codes a good architecture read off the shipped table
proposes a random one.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from graders.nas import space
from graders.nas.table import Table, ranks
from graders.sandbox import CallbackRefused
from graders.served import ServedTask

MAX_BATCH = 1024


def draw_permutations(rng: np.random.Generator) -> list[np.ndarray]:
    return [rng.permutation(k) for k in space.CHOICES]


def expected_best(rewards: np.ndarray, budget: int) -> float:
    """E[max reward of `budget` architectures drawn uniformly with replacement]: random search's result."""
    ordered = np.sort(rewards)
    n = len(ordered)
    cdf = (np.arange(1, n + 1) / n) ** budget
    return float(np.sum(ordered * np.diff(cdf, prepend=0.0)))


class SearchServer(ServedTask):
    """One search: the callbacks the worker calls, and what the grader recorded (graders/served.py's contract:
    opened by the search object, evaluations counted against the budget)."""

    unit, counted, budget_name = "architectures", "evaluated", "evaluation budget"
    what = "the search space"

    def __init__(self, table: Table, permutations: list[np.ndarray], budget: int, target_flops: float,
                 alpha: float, beta: float, time_up: Callable[[], bool] | None = None):
        super().__init__(budget, time_up)
        self.table, self.permutations = table, permutations
        self.target_flops, self.alpha, self.beta = float(target_flops), float(alpha), float(beta)
        self.space_rewards = table.rewards(self.target_flops, alpha, beta)
        self.space_ranks = ranks(self.space_rewards)
        self.proposals: list[int] = []  # table row of every evaluated architecture, in order
        self.batches = 0
        self.answer: int | None = None  # table row of the controller's greedy architecture, once asked

    def callbacks(self) -> dict:
        return {"nas_open": self.open, "nas_evaluate": self.evaluate}

    def decode(self, tokens) -> int:
        """Table row of a token sequence of the worker's labelling."""
        return space.index_of([int(p[t]) for p, t in zip(self.permutations, tokens)])

    def describe(self, row: int) -> str:
        return (f"{space.describe(space.tokens_of(row))} (accuracy {self.table.accuracy[row]:.4f}, "
                f"{self.table.flops[row] / 1000:.0f}k FLOPs, reward {self.space_rewards[row]:.4f}, "
                f"rank {self.space_ranks[row]} of {space.SIZE})")

    @property
    def rewards(self) -> np.ndarray:
        return self.space_rewards[np.asarray(self.proposals, dtype=np.int64)]

    # -- callbacks (arguments come from the untrusted worker: validate everything) ---------------
    def open(self) -> dict:
        self._open()
        return {"choices": list(space.CHOICES), "budget": self.budget, "target_flops": self.target_flops,
                "alpha": self.alpha, "beta": self.beta}

    def evaluate(self, tokens) -> dict:
        """The accuracy and FLOPs of each architecture; `remaining` is 0 once the student's own time is up (the
        evaluations that find it up are still answered: the template's loop then stops by itself)."""
        self._require_open("evaluate()")
        d = len(space.CHOICES)
        if (not isinstance(tokens, np.ndarray) or tokens.ndim != 2 or tokens.shape[1] != d
                or tokens.dtype.kind not in "iu" or not 1 <= len(tokens) <= MAX_BATCH):
            raise CallbackRefused(f"evaluate(tokens) needs an integer array of shape (m, {d}), 1 <= m <= {MAX_BATCH}, "
                                  f"one architecture per row; got {type(tokens).__name__} of shape "
                                  f"{getattr(tokens, 'shape', None)} and dtype {getattr(tokens, 'dtype', None)}")
        if np.any(tokens < 0) or np.any(tokens >= np.array(space.CHOICES)):
            raise CallbackRefused(f"token d of an architecture must lie in range(choices[d]) = {space.CHOICES}")
        self._charge(len(tokens), f"a batch of {len(tokens)}",
                     f"Evaluate at most search.remaining = {self._left()} more, then stop.")
        rows = [self.decode(row) for row in tokens]
        self.proposals += rows
        self.batches += 1
        remaining = 0 if self._time_is_up() else self.budget - len(self.proposals)
        return {"accuracy": self.table.accuracy[rows], "flops": self.table.flops[rows], "remaining": remaining}

    def summary(self) -> str:
        n = len(self.proposals)
        if not n:
            return "search as the grader saw it: no architecture evaluated"
        best = self.proposals[int(np.argmax(self.rewards))]
        ended = "; your time ran out: the search ended" if self.out_of_time else ""
        return (f"search as the grader saw it: {n} of {self.budget} evaluations in {self.batches} batches, "
                f"{len(set(self.proposals))} distinct architectures; best evaluated: {self.describe(best)}{ended}")


def plot_search(path, server: SearchServer, random_rewards: np.ndarray, top_reward: float | None, top_label: str,
                late_threshold: float | None, title: str, greedy_row: int | None = None) -> None:
    """Reward of each evaluated architecture in order, with random search of the same budget; a threshold
    is drawn unless it is None (an instructor's override, never shown)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for rewards, label, color in ((random_rewards, "random search", "C7"), (server.rewards, "your controller", "C0")):
        if len(rewards):
            x = np.arange(1, len(rewards) + 1)
            ax.plot(x, rewards, ".", ms=3, alpha=0.35, color=color)
            window = min(20, len(rewards))
            ax.plot(x[window - 1:], np.convolve(rewards, np.ones(window) / window, mode="valid"), lw=2, color=color,
                    label=f"{label}: mean of last {window}")
            ax.plot(x, np.maximum.accumulate(rewards), lw=1, ls=":", color=color, label=f"{label}: best so far")
    if top_reward is not None:
        ax.axhline(top_reward, color="k", ls="--", lw=1, label=f"{top_label} (threshold of the most probable one)")
    if late_threshold is not None:
        ax.axhline(late_threshold, color="k", ls="-.", lw=1, label="threshold of the second half's mean reward")
    if greedy_row is not None:
        ax.plot([server.budget], [server.space_rewards[greedy_row]], "*", ms=14, color="C3",
                label="your controller's most probable architecture")
    low = np.quantile(server.space_rewards, 0.02)
    ax.set(xlabel="evaluation (as counted by the grader)", ylabel="reward", title=title,
           ylim=(low, server.space_rewards.max() + 0.01))
    ax.legend(loc="lower right", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
