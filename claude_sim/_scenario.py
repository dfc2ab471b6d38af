"""Scenarios: a user-written YAML description of a product's traffic, and the per-case ground truth derived from it.

A *case* is one labelled example of a task, identified by an integer. Everything about it (input size, which
shared system prompt it uses, the right answer) is a function of (task, case); what a model does with it (output
length, whether it answers correctly) is a function of (seed, task, case, model). The simulator and the workload
driver both call these functions, so the driver can grade answers like a labelled eval set.

File format (YAML; see scenarios/default.yaml; unknown keys are errors):

    name: my-product                     # optional, default: the file name
    description: ...                     # optional
    baseline: {model: claude-sonnet-4-6, max_tokens: 4096}   # what callers send without a policy
    tasks:
      classify:                          # the otel_claude.task label
        share: 0.4                       # traffic share (normalised over tasks)
        answer: {kind: text, position: start}   # text|tool; start (survives truncation) | end
        labels: 12                       # size of the answer space
        system: {tokens: 5200, variants: 1}     # shared system prompt; variants = distinct prompts (tenants)
        tools: {count: 0, tokens: 0}     # tool definitions sent with every call (kind tool needs count >= 1)
        input: {median: 180, sigma: 0.6, min: 20, max: 4000}   # user message tokens, lognormal
        output:                          # output tokens per model, lognormal; `default` for unlisted models
          default: {median: 10, sigma: 1.3}
          claude-haiku-4-5: {median: 12, sigma: 1.4}
        quality: {default: 0.9, claude-haiku-4-5: 0.95}   # probability of a correct answer per model
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from claude_sim._rng import choose, lognormal, unit

__all__ = ["Baseline", "Case", "Decision", "LengthDist", "Scenario", "ScenarioError", "Task", "load_scenario"]

DEFAULT = "default"
ANSWER_PREFIX = "ANSWER: "
# "ANSWER: label-NNN" plus its newline, padded to whole tokens: no answer can be shorter than this.
ANSWER_TOKENS = 5


class ScenarioError(ValueError):
    """A scenario file is malformed; the message names the file and the field."""


@dataclass(frozen=True)
class LengthDist:
    """A lognormal length in tokens (heavy right tail for sigma around 1), clamped to [min, max]."""

    median: float
    sigma: float
    min: int = 1
    max: int = 1_000_000

    def quantile(self, q: float) -> int:
        return max(self.min, min(self.max, math.ceil(lognormal(q, self.median, self.sigma))))


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
    output: dict[str, LengthDist]
    quality: dict[str, float]

    def output_for(self, model: str) -> LengthDist:
        return self.output.get(model, self.output[DEFAULT])

    def quality_for(self, model: str) -> float:
        return self.quality.get(model, self.quality[DEFAULT])

    @property
    def models(self) -> list[str]:
        """Models this task states a quality for (the candidates an oracle may route to)."""
        return [name for name in self.quality if name != DEFAULT]


@dataclass(frozen=True)
class Baseline:
    """What the caller sends with no policy: the setup a tuner starts from."""

    model: str
    max_tokens: int


@dataclass(frozen=True)
class Case:
    task: str
    index: int
    input_tokens: int
    system_variant: int
    expected: str


@dataclass(frozen=True)
class Decision:
    """What one model does with one case, before max_tokens is applied."""

    output_tokens: int
    correct: bool
    answer: str


@dataclass(frozen=True, eq=False)  # identity equality: the oracle memoises per scenario object
class Scenario:
    name: str
    description: str
    baseline: Baseline
    tasks: dict[str, Task]
    source: str = "<memory>"

    def task_for_call(self, seed: int, call: int) -> Task:
        """The task of the driver's `call`-th request: drawn by traffic share."""
        tasks = list(self.tasks.values())
        return tasks[choose(unit(seed, "task", call), [task.share for task in tasks])]

    def case(self, task: str, index: int) -> Case:
        spec = self.tasks[task]
        label = int(unit("label", task, index) * spec.labels)
        return Case(
            task=task,
            index=index,
            input_tokens=spec.input.quantile(unit("input", task, index)),
            system_variant=int(unit("variant", task, index) * spec.system_variants),
            expected=label_name(label),
        )

    def decide(self, seed: int, task: str, index: int, model: str) -> Decision:
        """Common random numbers across models: a case one model finds long or hard is long or hard for all."""
        spec = self.tasks[task]
        expected = int(unit("label", task, index) * spec.labels)
        correct = unit(seed, "correct", task, index) < spec.quality_for(model)
        if correct or spec.labels < 2:
            answer = expected
        else:
            answer = (expected + 1 + int(unit(seed, "wrong", task, index) * (spec.labels - 1))) % spec.labels
        length = max(ANSWER_TOKENS, spec.output_for(model).quantile(unit(seed, "length", task, index)))
        return Decision(output_tokens=length, correct=answer == expected, answer=label_name(answer))


def label_name(index: int) -> str:
    return f"label-{index:03d}"


def answer_line(answer: str) -> str:
    return f"{ANSWER_PREFIX}{answer}"


# --- loading -----------------------------------------------------------------------------------------------------


class _Reader:
    """Typed field access that reports `file: path.to.field: problem`."""

    def __init__(self, origin: str) -> None:
        self.origin = origin

    def fail(self, where: str, problem: str) -> ScenarioError:
        return ScenarioError(f"{self.origin}: {where}: {problem}")

    def mapping(self, value: Any, where: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(where, f"expected a mapping, got {type(value).__name__}")
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

    def choice(self, data: dict[str, Any], key: str, where: str, options: tuple[str, ...]) -> str:
        value = data.get(key, options[0])
        if value not in options:
            raise self.fail(f"{where}.{key}", f"expected one of {', '.join(options)}, got {value!r}")
        return str(value)

    def only(self, data: dict[str, Any], keys: set[str], where: str) -> None:
        unknown = sorted(set(data) - keys)
        if unknown:
            raise self.fail(where, f"unknown key(s) {', '.join(map(str, unknown))}")

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

    def per_model(self, value: Any, where: str, parse: Any) -> dict[str, Any]:
        data = self.mapping(value, where)
        if DEFAULT not in data:
            raise self.fail(where, "needs a 'default' entry (used for models not listed)")
        return {str(model): parse(entry, f"{where}.{model}") for model, entry in data.items()}

    def probability(self, value: Any, where: str) -> float:
        return self.number({"p": value}, "p", where, high=1.0)


_TASK_KEYS = {"share", "answer", "labels", "system", "tools", "input", "output", "quality"}


def _task(reader: _Reader, name: str, value: Any) -> Task:
    where = f"tasks.{name}"
    data = reader.mapping(value, where)
    reader.only(data, _TASK_KEYS, where)
    answer = reader.mapping(data.get("answer", {}), f"{where}.answer")
    reader.only(answer, {"kind", "position"}, f"{where}.answer")
    system = reader.mapping(data.get("system", {}), f"{where}.system")
    reader.only(system, {"tokens", "variants"}, f"{where}.system")
    tools = reader.mapping(data.get("tools", {}), f"{where}.tools")
    reader.only(tools, {"count", "tokens"}, f"{where}.tools")
    task = Task(
        name=name,
        share=reader.number(data, "share", where, low=0.0, high=1.0),
        answer_kind=reader.choice(answer, "kind", f"{where}.answer", ("text", "tool")),
        answer_position=reader.choice(answer, "position", f"{where}.answer", ("end", "start")),
        labels=int(reader.number(data, "labels", where, default=10, low=1, integer=True)),
        system_tokens=int(reader.number(system, "tokens", f"{where}.system", default=0, integer=True)),
        system_variants=int(reader.number(system, "variants", f"{where}.system", default=1, low=1, integer=True)),
        tool_count=int(reader.number(tools, "count", f"{where}.tools", default=0, integer=True)),
        tool_tokens=int(reader.number(tools, "tokens", f"{where}.tools", default=0, integer=True)),
        input=reader.length(data.get("input"), f"{where}.input"),
        output=reader.per_model(data.get("output"), f"{where}.output", reader.length),
        quality=reader.per_model(data.get("quality"), f"{where}.quality", reader.probability),
    )
    if task.answer_kind == "tool" and task.tool_count < 1:
        raise reader.fail(f"{where}.tools.count", "answer kind 'tool' needs at least one tool")
    return task


def parse_scenario(text: str, origin: str) -> Scenario:
    reader = _Reader(origin)
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ScenarioError(f"{origin}: not valid YAML: {err}") from None
    data = reader.mapping(raw, "top level")
    reader.only(data, {"name", "description", "baseline", "tasks"}, "top level")
    baseline = reader.mapping(data.get("baseline"), "baseline")
    reader.only(baseline, {"model", "max_tokens"}, "baseline")
    if not isinstance(baseline.get("model"), str):
        raise reader.fail("baseline.model", "required string")
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
        source=origin,
    )


def load_scenario(source: str | os.PathLike[str] | Scenario | None = None) -> Scenario:
    """A scenario from a YAML path, a built-in name ("default"), or an existing Scenario (returned as is)."""
    if isinstance(source, Scenario):
        return source
    if source is None or str(source) == DEFAULT:
        text = resources.files("claude_sim").joinpath("scenarios", "default.yaml").read_text(encoding="utf-8")
        return parse_scenario(text, "claude_sim/scenarios/default.yaml")
    path = Path(source)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ScenarioError(f"{path}: cannot read scenario: {err.strerror}") from None
    return parse_scenario(text, str(path))
