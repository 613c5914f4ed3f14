"""The training check both REINFORCE graders run once per seed (grader side, trusted).

train on environments the grader serves -> record the learning curve -> evaluate the
returned policy in the grader's own environments -> compare with the threshold -> check
that the recorded curve shows the learning (certify.py).
Every number that decides the grade is measured here: the episode returns and counts
by `CartPoleServer`, the evaluation returns by `evaluate`, the student's time by
`StudentClock`.

Time. The option `train_seconds` (per device) is the student's own time: `time_budget_s`
told to `train()` is train_seconds / (1 + TRAIN_MARGIN), and the call is stopped when
the student's own time passes train_seconds. The student's time starts when their
`train()` starts (the adapter's imports before it have their own allowance, SETUP_S)
and counts neither the grader's time serving the environment nor the worker's waits
for a CPU (graders/sandbox/student_clock.py): a slow hand-off or a loaded machine is
not charged to the student. The margin is proportional: a loop that checks its clock
once per update overshoots by up to one update, and on a loaded machine everything,
that update included, takes longer in proportion. The check's `timeout` is its wall
limit: set-up, the time not charged and the evaluation's `evaluation_seconds` must fit
in it next to train_seconds (a limit too small for train_seconds shrinks the budget).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from graders.checks import CheckFlagged, expect
from graders.rl.cartpole import Relabelling
from graders.rl.certify import learning_figures, learning_flags
from graders.rl.evaluation import evaluate
from graders.rl.plots import plot_learning_curve
from graders.rl.server import CartPoleServer
from graders.sandbox.student_clock import SERVING_ALLOWANCE, StudentClock

TRAIN_MARGIN = 0.1  # of the time budget, between the budget told to train() and the moment its call is stopped
SETUP_S = 60.0  # for the adapter's imports and set-up before train() starts (not the student's time)
MIN_BUDGET_S = 5.0  # a smaller budget is a configuration that leaves no time to train
SPARE_KEY = 0x5BA2E  # the spare seed's stream of the grading's seeds


def _certify(ctx, server: CartPoleServer, label: str) -> None:
    """Withhold the points, with a FLAG, unless the grader saw the learning (graders/rl/certify.py)."""
    returns = server.episode_returns
    start_episodes, window = int(ctx.option("start_episodes")), int(ctx.option("learning_window"))
    if len(returns) >= max(start_episodes, window):
        start, best = learning_figures(returns, start_episodes=start_episodes, window=window)
        ctx.note(f"{label}: the first {start_episodes} served episodes averaged {start:.1f}; the best {window} "
                 f"in a row {best:.1f}")
    flags = learning_flags(returns, start_episodes=start_episodes, start_limit=float(ctx.threshold("untrained_start")),
                           window=window, reach=float(ctx.threshold("learning_seen")),
                           shown=(ctx.shown_threshold("untrained_start"), ctx.shown_threshold("learning_seen")))
    if flags:
        raise CheckFlagged(f"{label}: " + "; ".join(flags),
                           f"{label}: the policy passes the evaluation, but the grader did not see it learn: "
                           + "; ".join(flags) + ". Train only on make_envs(), from a fresh policy; your instructor "
                           "reviews flagged rows")


def time_budget(ctx) -> float:
    """The `time_budget_s` told to train(): train_seconds (or the check's time left, less the evaluation's), less
    the margin."""
    evaluation_s = float(ctx.option("evaluation_seconds"))
    own = ctx.option("train_seconds")
    own = float(own.get(ctx.device, own.get("cpu")) if isinstance(own, dict) else own)
    budget_s = round(min(own, ctx.time_left() - evaluation_s) / (1.0 + TRAIN_MARGIN), 1)
    expect(budget_s >= MIN_BUDGET_S, f"the check's time limit leaves {max(budget_s, 0):g} s to train after "
           f"reserving {evaluation_s:g} s for the evaluation; at least {MIN_BUDGET_S:g} s are needed")
    return budget_s


@dataclass(frozen=True)
class Run:
    """One training run of a check: its grading seed (it stays in the grader), how the student sees it named, and
    the key of its derived random streams and files."""

    seed: int
    label: str  # "seed #1", "the spare seed", "spare seed #2"
    key: str  # "0", "1", "spare", "spare2"

    @classmethod
    def of(cls, ctx, index: int) -> Run:
        """The run of the grading's seed number `index`."""
        return cls(int(ctx.seeds[index]), f"seed #{index + 1}", str(index))

    @classmethod
    def spare(cls, ctx, number: int = 0) -> Run:
        """The grading's spare seed number `number` (0, 1, ...), derived one-way from all its seeds
        (reinforce_baseline's decision rule)."""
        key = (SPARE_KEY,) if number == 0 else (SPARE_KEY, number)
        stream = np.random.default_rng(np.random.SeedSequence([int(s) for s in ctx.seeds], spawn_key=key))
        label, name = ("the spare seed", "spare") if number == 0 else (f"spare seed #{number + 1}", f"spare{number + 1}")
        return cls(int(stream.integers(2**62)), label, name)

    @property
    def file(self) -> str:
        """How its feedback files are named: seed1, seed2, spare_seed, spare2_seed."""
        return f"seed{int(self.key) + 1}" if self.key.isdigit() else f"{self.key}_seed"


def serve_training(worker, server: CartPoleServer, clock: StudentClock, worker_seed: int, device: str):
    """The submission's train() on the server's environments, timed by `clock` (bench/ uses it too)."""
    try:
        return worker.call("train", worker_seed, clock.budget_s, device, clock=clock,
                           callbacks={**server.callbacks(), **clock.callbacks()})
    finally:
        clock.stop()


def train(worker, ctx, server, run: Run, served: str = "the environment") -> StudentClock:
    """Train on what `server` serves (its `callbacks()`: CartPole, or the NAS grader's search space) within the
    check's time; a note says where the time went."""
    evaluation_s = float(ctx.option("evaluation_seconds"))
    clock = StudentClock(time_budget(ctx), margin=TRAIN_MARGIN, setup_s=SETUP_S,
                         hard_end=ctx.deadline - evaluation_s)
    server.time_up = lambda: clock.own_s() >= clock.budget_s  # the served task ends itself: no student reads a clock
    try:
        serve_training(worker, server, clock, ctx.worker_seed(f"train {run.key}"), ctx.device)
    finally:
        charged = (f" ({clock.serving_charged:.1f} s more of serving, past {SERVING_ALLOWANCE:g} x your code's own "
                   "computing, were counted: a loop that asks the grader far more than it computes pays for it)"
                   if clock.serving_charged > 0.05 else "")
        ctx.note(f"{run.label}: train() ran {clock.own_s():.1f} s of its own time (budget "
                 f"{clock.budget_s:g} s, limit {clock.limit_s:.1f} s); not counted: "
                 f"{clock.serving - clock.serving_charged:.1f} s of the grader serving {served}, "
                 f"{clock.cpu_wait:.1f} s waiting for a CPU, "
                 f"{(clock.started or clock.stopped) - clock.created:.1f} s of set-up before train(){charged}")
    return clock


def train_and_evaluate(worker, ctx, run: Run, *, threshold_name: str, title: str,
                       episode_budget: int | None = None, record_states: bool = False) -> CartPoleServer:
    """Train, evaluate, compare with the threshold, certify; the server, with what it recorded (`record_states`:
    every training episode's observations too)."""
    seed, label = run.seed, run.label  # the seed stays in the grader: the worker and the feedback see the label
    relabelling = Relabelling(seed)  # the same secret labels for training and evaluation
    server = CartPoleServer(seed, episode_budget=episode_budget, relabelling=relabelling, record_states=record_states,
                            on_episode=lambda n, ret: ctx.progress(f"{label}: episode {n}, return {ret:g}"))
    threshold = float(ctx.threshold(threshold_name))
    shown = ctx.shown_threshold(threshold_name)
    eval_returns = None
    try:
        train(worker, ctx, server, run)
        eval_returns = evaluate(worker, seed, int(ctx.option("eval_episodes")), timeout=max(ctx.time_left(), 1.0),
                                relabelling=relabelling)
        mean, std = float(np.mean(eval_returns)), float(np.std(eval_returns))
        passed = mean >= threshold
        ctx.metric(f"mean return, {label}", mean)  # Gradescope's leaderboard
        ctx.note(f"{label}: evaluation mean return {mean:.1f} +- {std:.1f} over {len(eval_returns)} episodes "
                 f"of the grader's (threshold {shown})")
        expect(passed, f"{label}: the trained policy's mean return is {mean:.1f}, below the threshold "
               f"{shown}", hint="look at the learning curve in your feedback; tune the hyperparameters, and "
               "make sure train() stops only when the policy is good (or its time is up)")
        _certify(ctx, server, label)
        return server
    finally:
        ctx.note(server.summary())
        path = ctx.artifact(f"learning_curve_{run.file}.png")
        if path is not None:
            try:
                plot_learning_curve(path, server, threshold, shown, f"{title}, {label}", eval_returns)
            except Exception as exc:  # noqa: BLE001 - feedback must not change the grade
                ctx.note(f"(no learning curve: {exc})")
