"""Quality evidence per task, accumulated across tuning windows: how much worse (or better) a candidate model is.

Two sources, each an anytime-valid bound (`_sequential`), so re-tuning every window never inflates false moves:

- **Paired verdicts**: the instrumentor sends a share of a task's calls to a candidate as well and grades the two
  answers in-process; a verdict d in [-1, 1] is the candidate's quality minus the other model's on that request
  (0 when they agree). Paired differences of correlated models have far smaller variance than independent scores.
  A verdict the graders could not settle ("unsettled": the answers differ, nothing judged them) is counted as the
  worst case for the claim being made: -1 for the lower bound, +1 for the upper. That is the label-free bound
  q(candidate) >= q(incumbent) - P(disagree): valid whatever the unsettled pairs hide.
- **User feedback**: scores in [0, 1] on served calls, per model, independent samples. The gap's bounds combine
  each model's own bounds (lower of one minus upper of the other).

Each claim (a lower or an upper bound on the gap) spends alpha once: 80% on the paired sequence (the primary source:
feedback is sparse or absent on most services), 10% on each model's feedback sequence; the claim holds when every
source's bound holds, so taking the tightest is valid at alpha. The split is fixed in advance (a split that followed
the data would not be).

Streams are keyed by the ordered model pair as recorded (d = quality of `candidate` minus `incumbent`); a question
about the reverse pair flips signs and swaps the worst cases.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tuner._sequential import BettingBound, half_width_after

__all__ = ["PAIRED_SHARE", "Gap", "TaskEvidence", "needed_pairs"]

PAIRED_SHARE = 0.8  # of each claim's alpha; the rest is split between the two models' feedback sequences
_FEEDBACK_SHARE = (1 - PAIRED_SHARE) / 2


@dataclass(frozen=True, kw_only=True)
class Gap:
    """Bounds on quality(candidate) - quality(reference), each valid at the stated alpha under repeated looks."""

    low: float
    high: float
    estimate: float | None  # the plain mean difference (paired if there are pairs, else from feedback)
    spread: float | None  # standard deviation of one paired verdict, for planning
    pairs: int
    scores: tuple[int, int]  # feedback scores of (candidate, reference)
    unsettled_share: float = 0.0  # of the pairs, those no grader could settle

    @property
    def known(self) -> bool:
        return self.pairs > 0 or min(self.scores) > 0

    def within(self, margin: float) -> bool:
        return self.low >= -margin

    def worse(self, margin: float) -> bool:
        return self.high < -margin

    def evidence(self) -> dict[str, object]:
        """For the policy's evidence and the report (rounded for people; decisions used the unrounded values)."""
        return {
            "gap_bounds": [round(self.low, 4), round(self.high, 4)],
            "gap_estimate": None if self.estimate is None else round(self.estimate, 4),
            "paired_verdicts": self.pairs,
            "unsettled_share": round(self.unsettled_share, 4),
            "feedback_scores": list(self.scores),
        }


class _Pair:
    """The two one-sided sequences of one (incumbent, candidate) stream of verdicts, on the [0, 1] scale."""

    def __init__(self, alpha: float, state: dict[str, Any] | None = None) -> None:
        if state is None:
            self.low = BettingBound(alpha, "lower")
            self.high = BettingBound(alpha, "upper")
            self.through_ns = 0
            self.squares = 0.0
            self.unsettled = 0
        else:
            self.low = BettingBound.restore(state["low"])
            self.high = BettingBound.restore(state["high"])
            self.through_ns = int(state["through_ns"])
            self.squares = float(state["squares"])
            self.unsettled = int(state.get("unsettled", 0))

    def add(self, times: np.ndarray, values: np.ndarray, settled: np.ndarray) -> None:
        """Verdicts newer than what this stream has absorbed, in time order (a re-read window is not counted twice)."""
        fresh = times > self.through_ns
        if not np.any(fresh):
            return
        # Time order, ties broken by value and settledness: the same evidence whatever order a reader delivers.
        order = np.lexsort((settled[fresh], values[fresh], times[fresh]))
        d = np.clip(values[fresh][order], -1.0, 1.0)
        ok = settled[fresh][order]
        self.low.update((np.where(ok, d, -1.0) + 1) / 2)
        self.high.update((np.where(ok, d, 1.0) + 1) / 2)
        self.squares += float(np.sum(np.where(ok, d, 0.0) ** 2))
        self.unsettled += int(np.count_nonzero(~ok))
        self.through_ns = int(times[fresh].max())

    def state(self) -> dict[str, Any]:
        return {"low": self.low.state(), "high": self.high.state(), "through_ns": self.through_ns,
                "squares": self.squares, "unsettled": self.unsettled}


class _Scores:
    """Feedback scores of one model on one task: two one-sided sequences on [0, 1]."""

    def __init__(self, alpha: float, state: dict[str, Any] | None = None) -> None:
        if state is None:
            self.low = BettingBound(alpha, "lower")
            self.high = BettingBound(alpha, "upper")
            self.through_ns = 0
        else:
            self.low = BettingBound.restore(state["low"])
            self.high = BettingBound.restore(state["high"])
            self.through_ns = int(state["through_ns"])

    def add(self, times: np.ndarray, scores: np.ndarray) -> None:
        fresh = times > self.through_ns
        if not np.any(fresh):
            return
        order = np.lexsort((scores[fresh], times[fresh]))  # ties broken by value: reader order cannot matter
        values = np.clip(scores[fresh][order], 0.0, 1.0)
        self.low.update(values)
        self.high.update(values)
        self.through_ns = int(times[fresh].max())

    def state(self) -> dict[str, Any]:
        return {"low": self.low.state(), "high": self.high.state(), "through_ns": self.through_ns}


@dataclass
class TaskEvidence:
    """Everything known about quality on one task; `state()` carries it to the next window."""

    alpha: float
    pairs: dict[tuple[str, str], _Pair] = field(default_factory=dict)  # (incumbent, candidate)
    scores: dict[str, _Scores] = field(default_factory=dict)

    @classmethod
    def restore(cls, alpha: float, state: dict[str, Any] | None) -> TaskEvidence:
        evidence = cls(alpha)
        if state:
            if abs(float(state.get("alpha", alpha)) - alpha) > 1e-12:
                # Another confidence level cannot continue these sequences: start again rather than mix them.
                return evidence
            for key, value in state.get("pairs", {}).items():
                incumbent, _, candidate = key.partition("|")
                evidence.pairs[(incumbent, candidate)] = _Pair(alpha * PAIRED_SHARE, value)
            for model, value in state.get("scores", {}).items():
                evidence.scores[model] = _Scores(alpha * _FEEDBACK_SHARE, value)
        return evidence

    def state(self) -> dict[str, Any]:
        return {
            "alpha": self.alpha,
            "pairs": {f"{a}|{b}": pair.state() for (a, b), pair in sorted(self.pairs.items())},
            "scores": {model: scores.state() for model, scores in sorted(self.scores.items())},
        }

    def add_verdicts(self, incumbent: str, candidate: str, times: np.ndarray, values: np.ndarray,
                     settled: np.ndarray) -> None:
        pair = self.pairs.get((incumbent, candidate))
        if pair is None:
            pair = self.pairs[(incumbent, candidate)] = _Pair(self.alpha * PAIRED_SHARE)
        pair.add(times, values, settled)

    def add_scores(self, model: str, times: np.ndarray, scores: np.ndarray) -> None:
        stream = self.scores.get(model)
        if stream is None:
            stream = self.scores[model] = _Scores(self.alpha * _FEEDBACK_SHARE)
        stream.add(times, scores)

    def gap(self, candidate: str, reference: str) -> Gap:
        """Bounds on quality(candidate) - quality(reference) from every source, the tighter of each side."""
        low, high = -1.0, 1.0
        estimate = spread = None
        pairs = unsettled = 0
        direct = self.pairs.get((reference, candidate))
        reverse = self.pairs.get((candidate, reference))
        for pair, sign in ((direct, 1.0), (reverse, -1.0)):
            if pair is None or pair.low.n == 0:
                continue
            n = pair.low.n
            pairs += n
            unsettled += pair.unsettled
            if sign > 0:
                low = max(low, 2 * pair.low.bound() - 1)
                high = min(high, 2 * pair.high.bound() - 1)
            else:  # d measured the other way round: its upper bound (unsettled as +1) bounds our gap from below
                low = max(low, -(2 * pair.high.bound() - 1))
                high = min(high, -(2 * pair.low.bound() - 1))
            settled_mean = (pair.low.mean + pair.high.mean) - 1  # unsettled counted as 0 (mean of -1 and +1)
            estimate = sign * settled_mean
            spread = max(pair.squares / n - settled_mean**2, 0.0) ** 0.5
        mine, theirs = self.scores.get(candidate), self.scores.get(reference)
        counts = (mine.low.n if mine else 0, theirs.low.n if theirs else 0)
        if mine is not None and theirs is not None and min(counts) > 0:
            low = max(low, mine.low.bound() - theirs.high.bound())
            high = min(high, mine.high.bound() - theirs.low.bound())
            if estimate is None:
                estimate = float(mine.low.mean) - float(theirs.low.mean)  # type: ignore[arg-type]
        return Gap(low=low, high=high, estimate=estimate, spread=spread, pairs=pairs, scores=counts,
                   unsettled_share=unsettled / pairs if pairs else 0.0)


def needed_pairs(gap: Gap, margin: float, alpha: float, limit: int = 50_000) -> int | None:
    """About how many more paired verdicts settle the question (within the margin, or worse than it), from the
    current estimate; None when the estimate sits too close to the margin to plan for, or nothing is known yet.

    The width the bound will have is extrapolated from the width it has now (these bounds shrink like 1/sqrt(n)),
    which accounts for the spread actually seen; with few pairs, from the planning formula of `_sequential`.
    """
    if gap.estimate is None or gap.spread is None or gap.pairs == 0:
        return None
    within = gap.estimate > -margin
    distance = gap.estimate + margin if within else -margin - gap.estimate
    if distance < 1e-4:
        return None
    width_now = gap.estimate - gap.low if within else gap.high - gap.estimate
    if gap.pairs >= 30 and width_now > 0:
        # 20% more than the square-root law says: the running bound lags the estimate a little.
        n = math.ceil(1.2 * gap.pairs * (width_now / distance) ** 2)
    else:
        sd = max(gap.spread / 2, 0.02)
        n = next((k for k in (2**i for i in range(1, 17)) if 2 * half_width_after(k, sd, alpha * PAIRED_SHARE)
                  <= distance), limit + 1)
    if n > limit:
        return None
    return max(n - gap.pairs, 0)
