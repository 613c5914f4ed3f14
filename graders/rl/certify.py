"""Learning the grader saw: what a training check certifies beyond the evaluation's mean return.

The evaluation says that the returned policy plays well; it cannot say that the policy was
learned: train() may return a hand-written controller or weights trained elsewhere. The
grader's own record of the served episodes can. Training points are withheld, with a FLAG
for the instructor, unless

1. the learning curve starts where an untrained policy starts: the mean return of the first
   `start_episodes` episodes to finish is at most `start_limit` (an untrained policy of the
   template's shapes starts near 20; the measured curves are in docs/reinforce.md);
2. the grader saw the policy play near the threshold: the best mean over `window`
   consecutive served episodes reaches `reach` (set from the reference's own curves, so a
   policy that evaluates far above anything the grader saw it play is not credited).

What this cannot see (docs/security.md): a submission that plays badly on purpose for its
first episodes and then plays a controller it did not learn. The curve the grader recorded
is in the feedback, and the instructor sees the flags.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def learning_figures(returns: Sequence[float], *, start_episodes: int, window: int) -> tuple[float, float]:
    """The mean of the first `start_episodes` returns and the best mean of `window` consecutive ones."""
    returns = np.asarray(returns, dtype=np.float64)
    return (float(returns[:start_episodes].mean()),
            float(np.convolve(returns, np.ones(window) / window, mode="valid").max()))


def learning_flags(returns: Sequence[float], *, start_episodes: int, start_limit: float, window: int,
                   reach: float, shown: tuple[str, str] | None = None) -> list[str]:
    """Why the served episodes do not show learning (empty when they do).

    `shown`: the two limits as a message may show them (an instructor's override is not shown).
    """
    shown_start, shown_reach = shown or (f"{start_limit:g}", f"{reach:g}")
    if len(returns) < max(start_episodes, window):
        return [f"the grader served only {len(returns)} finished episodes: too few to see any learning"]
    start, best = learning_figures(returns, start_episodes=start_episodes, window=window)
    flags = []
    if start > start_limit:
        flags.append(f"the first {start_episodes} episodes the grader served averaged {start:.0f}, where an untrained "
                     f"policy averages at most {shown_start}: the policy was good before it trained")
    if best < reach:
        flags.append(f"the best {window} consecutive episodes the grader served averaged {best:.0f} (below {shown_reach}): "
                     "the evaluated policy plays far better than anything the grader saw it learn")
    return flags
