"""Scenario files: a user-written YAML description of a product's traffic, read into a `Scenario`.

Format (see scenarios/*.yaml; every key not marked required is optional; unknown keys are errors, reported as
`file: path.to.field: problem`):

    name: my-product                     # default: the file name
    description: ...
    baseline: {model: claude-sonnet-4-6, max_tokens: 4096}   # required: what callers send without a policy
    traffic: {calls_per_hour: 600}       # mean calls per scenario hour over all tasks (default 3600)
    judge: {accuracy: 0.85, position_bias: 0.3, tie_rate: 0.05}   # the simulated LLM judge (these are the defaults)
    tasks:                               # required, at least one
      classify:                          # the otel_claude.task label
        share: 0.4                       # required: share of the calls (normalised over tasks)
        answer: {kind: text, position: start, form: prose}   # text|tool; start (survives truncation) | end;
                                         # prose (the answer line in the model's own words) | line (just the line)
        labels: 12                       # size of the answer space (default 10)
        system: {tokens: 5200, variants: 1}     # shared system prompt; variants = distinct prompts (tenants)
        tools: {count: 0, tokens: 0}     # tool definitions sent with every call (kind tool needs count >= 1)
        input: {median: 180, sigma: 0.6, min: 20, max: 4000}   # required: user message tokens, lognormal
        output:                          # required: output tokens per model, lognormal; `default` for the rest
          default: {median: 10, sigma: 1.3}
          claude-haiku-4-5:              # by the request's input tokens: from 0, from 2000, ...
            0: {median: 12, sigma: 1.4}
            2000: {median: 30, sigma: 1.4}
        quality: {default: 0.9, claude-haiku-4-5: {0: 0.95, 2000: 0.8}}   # required: P(correct) per model
        arrivals: {shape: poisson}       # poisson (default) | daily | bursts:
          # {shape: daily, peak_hour: 14, swing: 0.8}   rate x (1 + swing cos(2 pi (hour - peak_hour) / 24))
          # {shape: bursts, share: 0.6, every_s: 1800, length_s: 60}   `share` of the calls come in bursts
        feedback: {share: 0.03, delay_s: {median: 3600, sigma: 1.5}, kind: binary, noise: 0.1}
          # share of graded calls a user scores (default 1; 0 is valid), delay after the call (default none),
          # binary (1/0) | graded (1-5 rating as (r - 1) / 4), noise = chance a score is the opposite of the truth
        errors: {correlation: 0.6, same_wrong: 0.6}   # between models, see claude_sim._scenario (these defaults)
        session:                         # a multi-turn task: each case is a session of `turns` calls
          turns: {median: 6, sigma: 0.6, max: 40}    # required: number of turns, lognormal rounded up
          think_s: {median: 45, sigma: 1.0, max: 3600}   # required: from one turn's start to the next
          agent: false                   # true: steps call lookup tools and get results back (needs 2+ tools)
          followup: {median: 60, sigma: 0.8}         # tokens of a later user message (default: `input`)
          tool_result: {median: 300, sigma: 0.8}     # tokens of a tool result (agent)

Lengths are `{median, sigma (0..4, default 0), min (default 1), max}` in tokens; durations (`*_s`) are
`{median, sigma, max}` in scenario seconds (a median of 0 means none). A quality or output entry is either one value
or a mapping from input-token thresholds to values (it must start at 0); the input size is the whole request's.
"""

from __future__ import annotations

import math
import os
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from claude_sim._scenario import DEFAULT_CALLS_PER_HOUR, Scenario
from claude_sim._spec import (
    DEFAULT,
    Arrivals,
    Banded,
    Baseline,
    ErrorModel,
    FeedbackSpec,
    JudgeSpec,
    LengthDist,
    Seconds,
    SessionSpec,
    Task,
)

__all__ = ["SHIPPED", "ScenarioError", "load_scenario", "parse_scenario"]

SHIPPED = ("default", "chat", "agent", "internal")  # the scenarios under claude_sim/scenarios/


class ScenarioError(ValueError):
    """A scenario file is malformed; the message names the file and the field."""


class _Reader:
    """Typed field access that reports `file: path.to.field: problem`."""

    def __init__(self, origin: str) -> None:
        self.origin = origin

    def fail(self, where: str, problem: str) -> ScenarioError:
        return ScenarioError(f"{self.origin}: {where}: {problem}")

    def mapping(self, value: Any, where: str) -> dict[Any, Any]:
        if not isinstance(value, dict):
            raise self.fail(where, f"expected a mapping, got {type(value).__name__}")
        return value

    def section(self, data: dict[str, Any], key: str, where: str, keys: set[str]) -> dict[str, Any]:
        """An optional sub-mapping (empty when absent) with only `keys`."""
        value = self.mapping(data.get(key, {}), f"{where}.{key}")
        self.only(value, keys, f"{where}.{key}")
        return value

    def number(self, data: dict[str, Any], key: str, where: str, *, default: float | None = None,
               low: float = 0.0, high: float = math.inf, integer: bool = False) -> float:
        value = data.get(key, default)
        if value is None:
            raise self.fail(f"{where}.{key}", "required")
        if isinstance(value, bool) or not isinstance(value, int | float) or (integer and not isinstance(value, int)):
            raise self.fail(f"{where}.{key}", f"expected {'an integer' if integer else 'a number'}, got {value!r}")
        if not low <= value <= high:
            raise self.fail(f"{where}.{key}", f"{value!r} is outside [{low}, {high}]")
        return value

    def probability(self, data: dict[str, Any], key: str, where: str, default: float) -> float:
        return self.number(data, key, where, default=default, high=1.0)

    def choice(self, data: dict[str, Any], key: str, where: str, options: tuple[str, ...]) -> str:
        value = data.get(key, options[0])
        if value not in options:
            raise self.fail(f"{where}.{key}", f"expected one of {', '.join(options)}, got {value!r}")
        return str(value)

    def flag(self, data: dict[str, Any], key: str, where: str) -> bool:
        value = data.get(key, False)
        if not isinstance(value, bool):
            raise self.fail(f"{where}.{key}", f"expected true or false, got {value!r}")
        return value

    def only(self, data: dict[Any, Any], keys: set[str], where: str) -> None:
        unknown = sorted(map(str, set(data) - keys))
        if unknown:
            raise self.fail(where, f"unknown key(s) {', '.join(unknown)}")

    def length(self, value: Any, where: str) -> LengthDist:
        data = self.mapping(value, where)
        self.only(data, {"median", "sigma", "min", "max"}, where)
        dist = LengthDist(
            median=self.number(data, "median", where, low=1),
            sigma=self.number(data, "sigma", where, default=0.0, high=4),
            min=int(self.number(data, "min", where, default=1, low=1, integer=True)),
            max=int(self.number(data, "max", where, default=1_000_000, low=1, integer=True)),
        )
        if dist.min > dist.max:
            raise self.fail(where, f"min {dist.min} > max {dist.max}")
        return dist

    def seconds(self, value: Any, where: str) -> Seconds:
        data = self.mapping(value, where)
        self.only(data, {"median", "sigma", "max"}, where)
        return Seconds(
            median=self.number(data, "median", where),
            sigma=self.number(data, "sigma", where, default=0.0, high=4),
            max=self.number(data, "max", where, default=math.inf, low=1e-9),
        )

    def banded(self, value: Any, where: str, single: Any, is_single: Any) -> Banded[Any]:
        """One value, or {from_tokens: value} bands starting at 0."""
        if is_single(value):
            return Banded(((0, single(value, where)),))
        data = self.mapping(value, where)
        if not data or not all(isinstance(k, int) and not isinstance(k, bool) and k >= 0 for k in data):
            raise self.fail(where, "expected a value, or a mapping from input-token thresholds (0, 2000, ...) to "
                                   "values")
        if 0 not in data:
            raise self.fail(where, "input-size bands must start at 0")
        return Banded(tuple((start, single(data[start], f"{where}.{start}")) for start in sorted(data)))

    def per_model(self, value: Any, where: str, parse: Any) -> dict[str, Any]:
        data = self.mapping(value, where)
        if DEFAULT not in data:
            raise self.fail(where, "needs a 'default' entry (used for models not listed)")
        return {str(model): parse(entry, f"{where}.{model}") for model, entry in data.items()}

    def quality(self, value: Any, where: str) -> Banded[float]:
        def single(entry: Any, at: str) -> float:
            return self.number({"p": entry}, "p", at, high=1.0)

        return self.banded(value, where, single, lambda v: not isinstance(v, dict))

    def output(self, value: Any, where: str) -> Banded[LengthDist]:
        return self.banded(value, where, self.length,
                           lambda v: isinstance(v, dict) and any(isinstance(k, str) for k in v))


_TASK_KEYS = {"share", "answer", "labels", "system", "tools", "input", "output", "quality", "arrivals", "feedback",
              "errors", "session"}
_ARRIVAL_KEYS = {"poisson": {"shape"}, "daily": {"shape", "peak_hour", "swing"},
                 "bursts": {"shape", "share", "every_s", "length_s"}}


def _arrivals(reader: _Reader, data: dict[str, Any], where: str) -> Arrivals:
    where = f"{where}.arrivals"
    raw = reader.mapping(data.get("arrivals", {}), where)
    shape = reader.choice(raw, "shape", where, tuple(_ARRIVAL_KEYS))
    reader.only(raw, _ARRIVAL_KEYS[shape], where)
    return Arrivals(
        shape=shape,
        peak_hour=reader.number(raw, "peak_hour", where, default=14.0, high=24.0),
        swing=reader.probability(raw, "swing", where, 0.5 if shape == "daily" else 0.0),
        burst_share=reader.probability(raw, "share", where, 0.5 if shape == "bursts" else 0.0),
        every_s=reader.number(raw, "every_s", where, default=3600.0, low=1.0),
        length_s=reader.number(raw, "length_s", where, default=60.0),
    )


def _feedback(reader: _Reader, data: dict[str, Any], where: str) -> FeedbackSpec:
    raw = reader.section(data, "feedback", where, {"share", "delay_s", "kind", "noise"})
    where = f"{where}.feedback"
    return FeedbackSpec(
        share=reader.probability(raw, "share", where, 1.0),
        delay=reader.seconds(raw["delay_s"], f"{where}.delay_s") if "delay_s" in raw else Seconds(),
        kind=reader.choice(raw, "kind", where, ("binary", "graded")),
        noise=reader.probability(raw, "noise", where, 0.0),
    )


def _session(reader: _Reader, data: dict[str, Any], where: str, tool_count: int) -> SessionSpec | None:
    if "session" not in data:
        return None
    raw = reader.section(data, "session", where, {"turns", "think_s", "agent", "followup", "tool_result"})
    where = f"{where}.session"
    for key in ("turns", "think_s"):
        if key not in raw:
            raise reader.fail(f"{where}.{key}", "required")
    session = SessionSpec(
        turns=reader.length(raw["turns"], f"{where}.turns"),
        think=reader.seconds(raw["think_s"], f"{where}.think_s"),
        agent=reader.flag(raw, "agent", where),
        followup=reader.length(raw["followup"], f"{where}.followup") if "followup" in raw else None,
        tool_result=(reader.length(raw["tool_result"], f"{where}.tool_result") if "tool_result" in raw
                     else SessionSpec.tool_result),
    )
    if session.agent and tool_count < 2:
        raise reader.fail(f"{where}.agent", "an agent needs tools.count >= 2 (the answer tool and a lookup tool)")
    return session


def _task(reader: _Reader, name: str, value: Any) -> Task:
    where = f"tasks.{name}"
    data = reader.mapping(value, where)
    reader.only(data, _TASK_KEYS, where)
    answer = reader.section(data, "answer", where, {"kind", "position", "form"})
    system = reader.section(data, "system", where, {"tokens", "variants"})
    tools = reader.section(data, "tools", where, {"count", "tokens"})
    errors = reader.section(data, "errors", where, {"correlation", "same_wrong"})
    tool_count = int(reader.number(tools, "count", f"{where}.tools", default=0, integer=True))
    task = Task(
        name=name,
        share=reader.number(data, "share", where, low=0.0, high=1.0),
        answer_kind=reader.choice(answer, "kind", f"{where}.answer", ("text", "tool")),
        answer_position=reader.choice(answer, "position", f"{where}.answer", ("end", "start")),
        labels=int(reader.number(data, "labels", where, default=10, low=1, integer=True)),
        system_tokens=int(reader.number(system, "tokens", f"{where}.system", default=0, integer=True)),
        system_variants=int(reader.number(system, "variants", f"{where}.system", default=1, low=1, integer=True)),
        tool_count=tool_count,
        tool_tokens=int(reader.number(tools, "tokens", f"{where}.tools", default=0, integer=True)),
        input=reader.length(data.get("input"), f"{where}.input"),
        output=reader.per_model(data.get("output"), f"{where}.output", reader.output),
        quality=reader.per_model(data.get("quality"), f"{where}.quality", reader.quality),
        arrivals=_arrivals(reader, data, where),
        feedback=_feedback(reader, data, where),
        errors=ErrorModel(
            correlation=reader.probability(errors, "correlation", f"{where}.errors", ErrorModel.correlation),
            same_wrong=reader.probability(errors, "same_wrong", f"{where}.errors", ErrorModel.same_wrong),
        ),
        session=_session(reader, data, where, tool_count),
        answer_form=reader.choice(answer, "form", f"{where}.answer", ("prose", "line")),
    )
    if task.answer_kind == "tool" and task.tool_count < 1:
        raise reader.fail(f"{where}.tools.count", "answer kind 'tool' needs at least one tool")
    if task.answer_form == "line" and task.answer_kind != "text":
        raise reader.fail(f"{where}.answer.form", "a 'line' answer is a text answer (kind text)")
    return task


def _judge(reader: _Reader, data: dict[str, Any]) -> JudgeSpec:
    raw = reader.section(data, "judge", "top level", {"accuracy", "position_bias", "tie_rate"})
    judge = JudgeSpec(
        accuracy=reader.probability(raw, "accuracy", "judge", JudgeSpec.accuracy),
        position_bias=reader.probability(raw, "position_bias", "judge", JudgeSpec.position_bias),
        tie_rate=reader.probability(raw, "tie_rate", "judge", JudgeSpec.tie_rate),
    )
    if (1 - judge.accuracy) * (1 + judge.position_bias) > 1:
        raise reader.fail("judge", "(1 - accuracy) * (1 + position_bias) must be at most 1")
    return judge


def parse_scenario(text: str, origin: str) -> Scenario:
    reader = _Reader(origin)
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ScenarioError(f"{origin}: not valid YAML: {err}") from None
    data = reader.mapping(raw, "top level")
    reader.only(data, {"name", "description", "baseline", "traffic", "judge", "tasks"}, "top level")
    baseline = reader.mapping(data.get("baseline"), "baseline")
    reader.only(baseline, {"model", "max_tokens"}, "baseline")
    if not isinstance(baseline.get("model"), str):
        raise reader.fail("baseline.model", "required string")
    traffic = reader.section(data, "traffic", "top level", {"calls_per_hour"})
    tasks_raw = reader.mapping(data.get("tasks"), "tasks")
    if not tasks_raw:
        raise reader.fail("tasks", "at least one task is required")
    tasks = {str(name): _task(reader, str(name), value) for name, value in tasks_raw.items()}
    if sum(task.share for task in tasks.values()) <= 0:
        raise reader.fail("tasks", "shares sum to zero")
    return Scenario(
        name=str(data.get("name") or Path(origin).stem),
        description=str(data.get("description") or ""),
        baseline=Baseline(
            model=baseline["model"],
            max_tokens=int(reader.number(baseline, "max_tokens", "baseline", low=1, integer=True)),
        ),
        tasks=tasks,
        calls_per_hour=reader.number(traffic, "calls_per_hour", "traffic", default=DEFAULT_CALLS_PER_HOUR,
                                     low=1e-6),
        judge=_judge(reader, data),
        source=origin,
    )


def load_scenario(source: str | os.PathLike[str] | Scenario | None = None) -> Scenario:
    """A scenario from a YAML path, a shipped name ("default", "chat", ...), or an existing Scenario (as is)."""
    if isinstance(source, Scenario):
        return source
    name = "default" if source is None else str(source)
    if name in SHIPPED:
        text = resources.files("claude_sim").joinpath("scenarios", f"{name}.yaml").read_text(encoding="utf-8")
        return parse_scenario(text, f"claude_sim/scenarios/{name}.yaml")
    path = Path(name)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ScenarioError(f"{path}: cannot read scenario: {err.strerror}") from None
    return parse_scenario(text, str(path))
