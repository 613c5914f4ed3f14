"""The training check both REINFORCE graders run once per seed (grader side, trusted).

train on environments the grader serves -> record the learning curve -> evaluate the
returned policy in the grader's own environments -> compare with the threshold -> check
that the recorded curve shows the learning (certify.py). Every number that decides the
grade is measured here: the episode returns and counts by `CartPoleServer`, the
evaluation returns by `evaluate`.
"""

from __future__ import annotations

import time

import numpy as np

from graders.checks import CheckFailed, CheckFlagged, expect
from graders.rl.certify import learning_figures, learning_flags
from graders.rl.evaluation import evaluate
from graders.rl.plots import plot_learning_curve
from graders.rl.server import CartPoleServer

TRAIN_MARGIN_S = 5.0  # between the time budget told to train() and the moment its call is stopped


def _seed(ctx, index: int) -> int:
    seeds = ctx.seeds
    if len(seeds) <= index:
        raise CheckFailed(f"the grader is configured with {len(seeds)} seed(s); this check needs at least {index + 1}")
    return int(seeds[index])


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


def train_and_evaluate(worker, ctx, index: int, *, threshold_name: str, title: str,
                       episode_budget: int | None = None) -> None:
    seed = _seed(ctx, index)  # stays in the grader: the worker and the feedback see only "seed #N"
    label = f"seed #{index + 1}"
    server = CartPoleServer(seed, episode_budget=episode_budget,
                            on_episode=lambda n, ret: ctx.progress(f"{label}: episode {n}, return {ret:g}"))
    evaluation_s = float(ctx.option("evaluation_seconds"))
    call_s = ctx.time_left() - evaluation_s
    expect(call_s > TRAIN_MARGIN_S, f"the check's time limit leaves no time to train after reserving "
           f"{evaluation_s:g} s for the evaluation")
    threshold = float(ctx.threshold(threshold_name))
    shown = ctx.shown_threshold(threshold_name)
    eval_returns = None
    try:
        start = time.monotonic()
        worker.call("train", ctx.worker_seed(f"train {index}"), round(call_s - TRAIN_MARGIN_S, 1), ctx.device,
                             timeout=call_s,
                             callbacks=server.callbacks())
        ctx.note(f"{label}: train() took {time.monotonic() - start:.1f} s")
        eval_returns = evaluate(worker, seed, int(ctx.option("eval_episodes")),
                                timeout=max(ctx.time_left(), 1.0))
        mean, std = float(np.mean(eval_returns)), float(np.std(eval_returns))
        passed = mean >= threshold
        ctx.metric(f"mean return, {label}", mean)  # Gradescope's leaderboard
        ctx.note(f"{label}: evaluation mean return {mean:.1f} +- {std:.1f} over {len(eval_returns)} episodes "
                 f"of the grader's (threshold {shown})")
        expect(passed, f"{label}: the trained policy's mean return is {mean:.1f}, below the threshold "
               f"{shown}", hint="look at the learning curve in your feedback; tune the hyperparameters, and "
               "make sure train() stops only when the policy is good (or its time is up)")
        _certify(ctx, server, label)
    finally:
        ctx.note(server.summary())
        path = ctx.artifact(f"learning_curve_seed{index + 1}.png")
        if path is not None:
            try:
                plot_learning_curve(path, server, threshold, shown, f"{title}, {label}", eval_returns)
            except Exception as exc:  # noqa: BLE001 - feedback must not change the grade
                ctx.note(f"(no learning curve: {exc})")
