"""The training check both REINFORCE graders run once per seed (grader side, trusted).

train on environments the grader serves -> record the learning curve -> evaluate the
returned policy in the grader's own environments -> compare with the threshold.
Every number that decides the grade is measured here: the episode returns and counts
by `CartPoleServer`, the evaluation returns by `evaluate`.
"""

from __future__ import annotations

import time

import numpy as np

from graders.checks import CheckFailed, expect
from graders.rl.evaluation import evaluate
from graders.rl.plots import plot_learning_curve
from graders.rl.server import CartPoleServer

TRAIN_MARGIN_S = 5.0  # between the time budget told to train() and the moment its call is stopped


def _seed(ctx, index: int) -> int:
    seeds = ctx.seeds
    if len(seeds) <= index:
        raise CheckFailed(f"the grader is configured with {len(seeds)} seed(s); this check needs at least {index + 1}")
    return int(seeds[index])


def _flags(ctx, server: CartPoleServer, report: dict, passed: bool) -> None:
    """Notes for the instructor about environments the submission may have built itself."""
    own = report.get("own_env", {}) if isinstance(report, dict) else {}
    own = {k: v for k, v in own.items() if isinstance(v, int) and v > 0}
    if own:
        ctx.note("FLAG for the instructor: the submission used gymnasium environments of its own during training "
                 f"({', '.join(f'{k}: {v}' for k, v in sorted(own.items()))}); it should train only on make_envs().")
    if passed and server.steps < ctx.option("min_plausible_steps"):
        ctx.note(f"FLAG for the instructor: the policy passed after only {server.steps} environment steps served by "
                 "the grader; learning CartPole takes far more. Did it train on a simulator of its own?")


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
    eval_returns = None
    try:
        start = time.monotonic()
        report = worker.call("train", ctx.worker_seed(f"train {index}"), round(call_s - TRAIN_MARGIN_S, 1), ctx.device,
                             timeout=call_s,
                             callbacks=server.callbacks())
        ctx.note(f"{label}: train() took {time.monotonic() - start:.1f} s")
        eval_returns = evaluate(worker, seed, int(ctx.option("eval_episodes")),
                                timeout=max(ctx.time_left(), 1.0))
        mean, std = float(np.mean(eval_returns)), float(np.std(eval_returns))
        passed = mean >= threshold
        ctx.metric(f"mean return, {label}", mean)  # Gradescope's leaderboard
        _flags(ctx, server, report, passed)
        ctx.note(f"{label}: evaluation mean return {mean:.1f} +- {std:.1f} over {len(eval_returns)} episodes "
                 f"of the grader's (threshold {threshold:g})")
        expect(passed, f"{label}: the trained policy's mean return is {mean:.1f}, below the threshold "
               f"{threshold:g}", hint="look at the learning curve in your feedback; tune the hyperparameters, and "
               "make sure train() stops only when the policy is good (or its time is up)")
    finally:
        ctx.note(server.summary())
        path = ctx.artifact(f"learning_curve_seed{index + 1}.png")
        if path is not None:
            try:
                plot_learning_curve(path, server, threshold, f"{title}, {label}", eval_returns)
            except Exception as exc:  # noqa: BLE001 - feedback must not change the grade
                ctx.note(f"(no learning curve: {exc})")
