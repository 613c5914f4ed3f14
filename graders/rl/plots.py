"""The learning curve the grader recorded, for the student's feedback."""

from __future__ import annotations

import numpy as np

from graders.plotting import figure, save_png
from graders.rl.server import CartPoleServer


def plot_learning_curve(path, server: CartPoleServer, threshold: float, shown: str, title: str,
                        eval_returns=None) -> None:
    """The training episode returns the grader recorded, with a 20-episode moving mean."""
    returns = np.asarray(server.episode_returns)
    fig = figure(7, 4)
    ax = fig.subplots()
    if len(returns):
        episodes = np.arange(1, len(returns) + 1)
        ax.plot(episodes, returns, ".", ms=2, alpha=0.4, label="training episode return")
        window = min(20, len(returns))
        moving = np.convolve(returns, np.ones(window) / window, mode="valid")
        ax.plot(episodes[window - 1:], moving, lw=2, label=f"mean of last {window}")
    ax.axhline(threshold, color="k", ls="--", lw=1, label=f"threshold {shown}")
    if eval_returns is not None and len(returns):
        ax.errorbar([len(returns)], [np.mean(eval_returns)], yerr=[np.std(eval_returns)], fmt="o", color="C3",
                    label="grader's evaluation (mean +- std)")
    ax.set(xlabel="training episode (as counted by the grader)", ylabel="return", ylim=(0, 520), title=title)
    ax.legend(loc="lower right", fontsize=8)
    save_png(fig, path)

