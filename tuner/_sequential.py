"""Anytime-valid confidence bounds for the mean of bounded observations, by betting.

A tuner looks at growing data every window and acts the first time a bound clears a margin. A fixed-level interval
recomputed at each look inflates the error rate (optional stopping); a confidence *sequence* holds at every sample
size at once, so looking after every window (or every observation) keeps the stated error rate. This module
implements the one-sided betting sequences of Waudby-Smith and Ramdas ("Estimating means of bounded random
variables by betting", JRSS-B 2024): for each candidate mean m on a grid, a gambler bets that the observations run
above m (lower bound) or below it (upper bound); the capital is a nonnegative martingale when m is the true mean,
so by Ville's inequality it reaches 1/alpha with probability at most alpha, ever. The bound is the last m whose
capital has not reached 1/alpha. Bets use the predictable plug-in size (from the running mean and variance, never
the current observation), truncated to keep capital positive.

Unlike normal intervals, these stay inside [0, 1] and are honest at small n (11 of 11 correct gives a lower bound
far below 1), and they adapt to low variance: paired differences that mostly agree give narrow bounds.

The state (log-capital on the grid and the running sums) is all that later windows need: `state()` / `restore()`
let the tuner carry evidence across windows without keeping the observations.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["BettingBound", "half_width_after"]

_GRID = 2001  # candidate means 0, 0.0005, ..., 1
_TRUNCATE = 0.5  # bet at most half the capital that survives the worst outcome: keeps capital positive
_CHUNK = 512  # observations per vectorised step (chunk x grid floats at once)


@dataclass
class _Sums:
    n: int = 0
    total: float = 0.0
    squares: float = 0.0  # sum of (x_i - running mean before x_i)^2, the plug-in variance's numerator


class BettingBound:
    """A one-sided anytime-valid bound on the mean of observations in [0, 1].

    `side="lower"`: `bound()` is a lower confidence bound holding at every n simultaneously with probability at
    least 1 - alpha; `side="upper"` the mirror image. Feed observations in their arrival order with `update()`.
    """

    def __init__(self, alpha: float, side: str) -> None:
        if not 0 < alpha < 1:
            raise ValueError(f"alpha must be in (0, 1), got {alpha}")
        if side not in ("lower", "upper"):
            raise ValueError(f"side must be 'lower' or 'upper', got {side!r}")
        self.alpha = alpha
        self.side = side
        self._grid = np.linspace(0.0, 1.0, _GRID)
        self._log_capital = np.zeros(_GRID)
        self._sums = _Sums()
        # Running intersection: a sequence may be intersected with its own past, so the bound never loosens.
        self._best = 0.0 if side == "lower" else 1.0

    @property
    def n(self) -> int:
        return self._sums.n

    @property
    def mean(self) -> float | None:
        return self._sums.total / self._sums.n if self._sums.n else None

    def update(self, values: Any) -> None:
        """Take observations in [0, 1] (values outside are clipped: the caller maps its scale onto [0, 1])."""
        x = np.clip(np.asarray(values, dtype=np.float64).ravel(), 0.0, 1.0)
        for start in range(0, len(x), _CHUNK):
            self._step(x[start:start + _CHUNK])
        self._best = max(self._best, self._raw_bound()) if self.side == "lower" else min(self._best, self._raw_bound())

    def _step(self, x: np.ndarray) -> None:
        sums = self._sums
        k = len(x)
        # Predictable plug-in bet sizes: bet i uses the mean and variance of observations before it.
        index = sums.n + np.arange(1, k + 1)  # 1-based position of each observation
        before_total = sums.total + np.concatenate(([0.0], np.cumsum(x)[:-1]))
        mean_before = (0.5 + before_total) / index  # (1/2 + sum of the first i-1) / i
        deviations = (x - mean_before) ** 2
        before_squares = sums.squares + np.concatenate(([0.0], np.cumsum(deviations)[:-1]))
        variance_before = (0.25 + before_squares) / index
        bets = np.sqrt(2 * math.log(1 / self.alpha) / (variance_before * index * np.log1p(index)))
        m = self._grid
        if self.side == "lower":
            # Bet that observations exceed m; the most one may bet keeps 1 + bet * (x - m) > 0 for x = 0.
            cap = _TRUNCATE / np.maximum(m, 1e-12)
            size = np.minimum(bets[:, None], cap[None, :])
            self._log_capital += np.log1p(size * (x[:, None] - m[None, :])).sum(axis=0)
        else:
            cap = _TRUNCATE / np.maximum(1.0 - m, 1e-12)
            size = np.minimum(bets[:, None], cap[None, :])
            self._log_capital += np.log1p(-size * (x[:, None] - m[None, :])).sum(axis=0)
        sums.n += k
        sums.total += float(x.sum())
        sums.squares += float(deviations.sum())

    def _raw_bound(self) -> float:
        rejected = self._log_capital >= math.log(1 / self.alpha)
        if self.side == "lower":
            # Means below the truth see their capital grow: the bound is the smallest mean not yet rejected.
            kept = np.flatnonzero(~rejected)
            return float(self._grid[kept[0]]) if len(kept) else 1.0
        kept = np.flatnonzero(~rejected)
        return float(self._grid[kept[-1]]) if len(kept) else 0.0

    def bound(self) -> float:
        return self._best

    # -- carrying the evidence across tuning windows ----------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """Plain data (JSON-ready) from which `restore` continues exactly where this sequence stands."""
        return {
            "alpha": self.alpha,
            "side": self.side,
            "n": self._sums.n,
            "total": self._sums.total,
            "squares": self._sums.squares,
            "best": self._best,
            # Rounded: 1e-9 in log-capital is far below anything that moves a bound across a grid step.
            "log_capital": [round(float(v), 9) for v in self._log_capital],
        }

    @classmethod
    def restore(cls, data: dict[str, Any]) -> BettingBound:
        bound = cls(float(data["alpha"]), str(data["side"]))
        capital = np.asarray(data["log_capital"], dtype=np.float64)
        if capital.shape != (_GRID,) or not np.all(np.isfinite(capital)):
            raise ValueError(f"a betting state needs {_GRID} finite log-capital values")
        bound._log_capital = capital
        bound._sums = _Sums(int(data["n"]), float(data["total"]), float(data["squares"]))
        bound._best = float(data["best"])
        return bound


def half_width_after(n: int, sd: float, alpha: float) -> float:
    """About how far the bound lies from the running mean after n observations of standard deviation sd (on the
    [0, 1] scale): sd * sqrt(2 ln(1/alpha) / n) + 0.6 ln(1/alpha) / n, a fit of this module's bounds on Bernoulli
    and paired-difference streams (n = 200 to 5,000) that errs on the wide side at small n. For planning how much
    evidence is still missing, never for deciding."""
    if n <= 0:
        return float("inf")
    log_term = math.log(1 / alpha)
    return max(sd, 1e-3) * math.sqrt(2 * log_term / n) + 0.6 * log_term / n
