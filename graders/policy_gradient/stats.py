"""Is a Monte-Carlo gradient estimator unbiased? The grader's statistical test.

The student returns one estimate per episode, g_1..g_N in R^{S x A}; the grader knows
the exact gradient. For every coordinate j with positive sample variance,
z_j = (mean_j - exact_j) / (sd_j / sqrt(N)) is close to N(0, 1) under the null
hypothesis (central limit theorem). The test fails when max_j |z_j| exceeds the
two-sided normal quantile at alpha / m (Bonferroni over the m tested coordinates), so
the false-fail rate per test is at most about alpha. A coordinate whose estimates are
all equal (a single-action state, an unreachable state) must equal the exact value.
The reference's actual false-fail rate is measured by bench/policy_gradient_stats.py
and recorded in docs/policy_gradient.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import NormalDist

import numpy as np


@dataclass
class UnbiasednessResult:
    passed: bool
    max_abs_z: float
    z_critical: float
    n_tested: int
    worst: tuple[int, ...]  # index of the coordinate with the largest |z| (or a constant mismatch)
    mean: np.ndarray
    standard_error: np.ndarray
    exact: np.ndarray
    constant_mismatch: bool = False

    def describe(self, what: str = "theta") -> str:
        """One line for the student: the worst coordinate, expected vs got."""
        j = self.worst
        where = f"{what}[{', '.join(str(i) for i in j)}]"
        if self.constant_mismatch:
            return (f"{where}: every episode's estimate is {self.mean[j]:.6g} "
                    f"but the exact gradient is {self.exact[j]:.6g}")
        return (f"{where}: mean of the estimates {self.mean[j]:.6g} +- {self.standard_error[j]:.3g} "
                f"(standard error), exact gradient {self.exact[j]:.6g}; |z| = {self.max_abs_z:.2f}, "
                f"limit {self.z_critical:.2f} over {self.n_tested} coordinates")


def z_critical(alpha: float, n_tested: int) -> float:
    """Two-sided normal quantile with Bonferroni correction over n_tested coordinates."""
    return NormalDist().inv_cdf(1.0 - alpha / (2.0 * max(n_tested, 1)))


def unbiasedness_test(samples: np.ndarray, exact: np.ndarray, alpha: float) -> UnbiasednessResult:
    """Test H0: E[samples] = exact, coordinate-wise with Bonferroni correction."""
    samples = np.asarray(samples, dtype=np.float64)
    exact = np.asarray(exact, dtype=np.float64)
    n = samples.shape[0]
    mean = samples.mean(axis=0)
    sd = samples.std(axis=0, ddof=1)
    se = sd / np.sqrt(n)
    scale = 1.0 + np.abs(exact).max()
    constant = sd <= 1e-12 * scale
    mismatch = constant & (np.abs(mean - exact) > 1e-8 * scale)
    z = np.zeros_like(mean)
    z[~constant] = (mean[~constant] - exact[~constant]) / se[~constant]
    n_tested = int((~constant).sum())
    limit = z_critical(alpha, n_tested)
    if mismatch.any():
        worst = np.unravel_index(int(np.argmax(np.where(mismatch, np.abs(mean - exact), -1.0))), mean.shape)
        return UnbiasednessResult(False, float("inf"), limit, n_tested, tuple(int(i) for i in worst),
                                  mean, se, exact, constant_mismatch=True)
    worst = np.unravel_index(int(np.argmax(np.abs(z))), mean.shape)
    max_abs_z = float(np.abs(z).max()) if z.size else 0.0
    return UnbiasednessResult(max_abs_z <= limit, max_abs_z, limit, n_tested,
                              tuple(int(i) for i in worst), mean, se, exact)


def bonferroni_p_value(result: UnbiasednessResult) -> float:
    """The smallest alpha at which the test would fail (for calibration plots)."""
    if result.constant_mismatch:
        return 0.0
    tail = 2.0 * (1.0 - NormalDist().cdf(result.max_abs_z))
    return min(1.0, tail * max(result.n_tested, 1))


def total_variance(samples: np.ndarray) -> float:
    """Sum over coordinates of the sample variance: the estimator's mean squared spread."""
    return float(np.asarray(samples, dtype=np.float64).var(axis=0, ddof=1).sum())
