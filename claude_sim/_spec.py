"""The parts a scenario is made of, as read from its file (see `_scenario_file` for the YAML format)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Generic, TypeVar

from claude_sim._rng import lognormal

__all__ = [
    "DEFAULT",
    "Arrivals",
    "Banded",
    "Baseline",
    "ErrorModel",
    "FeedbackSpec",
    "JudgeSpec",
    "LengthDist",
    "Seconds",
    "SessionSpec",
    "Task",
]

DEFAULT = "default"
_MEAN_GRID = 4000  # quantile points for numerical means: exact to well under a token for the shipped scenarios

T = TypeVar("T")


@dataclass(frozen=True)
class LengthDist:
    """A lognormal length in tokens (heavy right tail for sigma around 1), rounded up and clamped to [min, max]."""

    median: float
    sigma: float
    min: int = 1
    max: int = 1_000_000

    def quantile(self, q: float) -> int:
        return max(self.min, min(self.max, math.ceil(lognormal(q, self.median, self.sigma))))

    @cached_property
    def mean(self) -> float:
        return sum(self.quantile((i + 0.5) / _MEAN_GRID) for i in range(_MEAN_GRID)) / _MEAN_GRID


@dataclass(frozen=True)
class Seconds:
    """A lognormal duration in scenario seconds, capped at `max`; a median of 0 means no wait at all."""

    median: float = 0.0
    sigma: float = 0.0
    max: float = math.inf

    def quantile(self, q: float) -> float:
        return 0.0 if self.median <= 0 else min(self.max, lognormal(q, self.median, self.sigma))


@dataclass(frozen=True)
class Banded(Generic[T]):
    """A value that depends on the request's input size: (from input tokens, value) in ascending order, from 0."""

    bands: tuple[tuple[int, T], ...]

    def at(self, input_tokens: int) -> T:
        value = self.bands[0][1]
        for start, banded in self.bands:
            if input_tokens < start:
                break
            value = banded
        return value


@dataclass(frozen=True)
class Arrivals:
    """When a task's calls (or, for multi-turn tasks, its sessions) start.

    poisson: steady. daily: rate x (1 + swing cos(2 pi (hour - peak_hour) / 24)). bursts: `burst_share` of the
    traffic comes in bursts starting on average every `every_s` seconds, each spread over `length_s` seconds.
    """

    shape: str = "poisson"
    peak_hour: float = 14.0
    swing: float = 0.0
    burst_share: float = 0.0
    every_s: float = 3600.0
    length_s: float = 60.0

    def factor(self, t: float) -> float:
        """The rate at scenario time `t` relative to the mean (the daily cycle; 1 for the other shapes)."""
        if self.shape != "daily":
            return 1.0
        hour = (t / 3600.0) % 24.0
        return 1.0 + self.swing * math.cos(2 * math.pi * (hour - self.peak_hour) / 24.0)


@dataclass(frozen=True)
class FeedbackSpec:
    """Which calls a user scores, when, how, and how reliably."""

    share: float = 1.0  # of the graded calls
    delay: Seconds = Seconds()
    kind: str = "binary"  # binary: 1/0; graded: a 1-5 rating as (rating - 1) / 4
    noise: float = 0.0  # probability that a score says the opposite of the truth


@dataclass(frozen=True)
class ErrorModel:
    """How models' errors on one request relate (see `Scenario.decide`)."""

    correlation: float = 0.6  # of the latent "is this request answered right" scores of two models
    same_wrong: float = 0.6  # chance that two models that both err give the same wrong answer


@dataclass(frozen=True)
class SessionSpec:
    """A multi-turn task: each session is `turns` calls, each carrying the whole conversation so far."""

    turns: LengthDist
    think: Seconds  # between one turn's start and the next (user think time, or tool latency for agents)
    agent: bool = False  # steps call lookup tools and get tool results back; the last step answers
    followup: LengthDist | None = None  # size of a later user message (chat); default: the task's input
    tool_result: LengthDist = LengthDist(300, 0.8, 20, 20_000)  # size of a tool result (agent)


@dataclass(frozen=True)
class JudgeSpec:
    """The simulated LLM judge's behaviour (see `_judge`)."""

    accuracy: float = 0.85  # chance of the right verdict when it does not abstain
    position_bias: float = 0.3  # errs (1 + b) times as often when the better answer is second, (1 - b) when first
    tie_rate: float = 0.05  # chance it answers TIE whatever the answers


@dataclass(frozen=True)
class Baseline:
    """What the caller sends with no policy: the setup a tuner starts from."""

    model: str
    max_tokens: int


@dataclass(frozen=True)
class Task:
    name: str
    share: float
    answer_kind: str  # "text": "ANSWER: x" in the text; "tool": the first tool's input {"answer": x}
    answer_position: str  # "start" survives truncation, "end" does not
    labels: int
    system_tokens: int
    system_variants: int
    tool_count: int
    tool_tokens: int
    input: LengthDist
    output: dict[str, Banded[LengthDist]]
    quality: dict[str, Banded[float]]
    arrivals: Arrivals = Arrivals()
    feedback: FeedbackSpec = FeedbackSpec()
    errors: ErrorModel = ErrorModel()
    session: SessionSpec | None = None
    answer_form: str = "prose"  # "line": the text is just the answer line (equal for two right answers)

    def output_for(self, model: str, input_tokens: int = 0) -> LengthDist:
        return self.output.get(model, self.output[DEFAULT]).at(input_tokens)

    def quality_for(self, model: str, input_tokens: int = 0) -> float:
        return self.quality.get(model, self.quality[DEFAULT]).at(input_tokens)

    @property
    def models(self) -> list[str]:
        """Models this task states a quality for (the candidates an oracle may route to)."""
        return [name for name in self.quality if name != DEFAULT]

    @property
    def mean_turns(self) -> float:
        return 1.0 if self.session is None else self.session.turns.mean
