"""Ground truth for tuners: the expected cost and quality of any per-task policy on a scenario, and the best one.

The simulator answers from the same functions (`Scenario.decide`, `_prompts.build_request`), so these numbers are
what a long run on the simulator converges to. Approximations (documented, deliberate):
- a cached prefix's hit probability is the chance its variant was already seen in this run (`calls` calls, variants
  drawn uniformly); with `duration_s` also the chance the previous call of that variant is within the TTL
  (Poisson arrivals). Cache writes before the first read of a run are counted at that probability too.
- a text answer whose line comes first survives truncation; one at the end, or a tool answer, does not.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from claude_sim._models import find_model
from claude_sim._prefix import TTL_SECONDS, flatten
from claude_sim._prompts import build_request
from claude_sim._scenario import Scenario, Task
from otel_claude.catalog import ModelInfo, Usage, cost_usd

__all__ = [
    "Expected",
    "PolicyScore",
    "TaskChoice",
    "best_policy",
    "choices_from_policy",
    "evaluate",
    "evaluate_task",
    "policy_document",
]

DEFAULT_SAMPLES = 2000
CACHE_OPTIONS: tuple[str | None, ...] = (None, "5m", "1h")


@dataclass(frozen=True)
class TaskChoice:
    """What a policy does to one task's calls."""

    model: str
    max_tokens: int
    cache_ttl: str | None = None  # "5m" | "1h" | None: breakpoints on tools + system


@dataclass(frozen=True)
class Expected:
    cost_per_call: float
    quality: float  # share of calls answered correctly
    truncation_rate: float
    cache_hit_rate: float  # share of cacheable-prefix tokens read from cache


@dataclass(frozen=True)
class PolicyScore:
    per_task: dict[str, Expected]
    choices: dict[str, TaskChoice]
    cost_per_call: float
    quality: float


@lru_cache(maxsize=64)
def _sizes(scenario: Scenario, task: str, samples: int) -> tuple[int, tuple[int, ...]]:
    """(prefix tokens of tools + system, per-sample tokens after the prefix) under the simulator's counting."""
    prefix = 0
    rest = []
    for index in range(samples):
        case = scenario.case(task, index)
        prompt = flatten(build_request(scenario, case, scenario.baseline.model, scenario.baseline.max_tokens))
        prefix_blocks = scenario.tasks[task].tool_count + (1 if scenario.tasks[task].system_tokens else 0)
        prefix = sum(block.tokens for block in prompt.blocks[:prefix_blocks])
        rest.append(prompt.total_tokens - prefix)
    return prefix, tuple(rest)


def hit_probability(task: Task, calls: float, ttl: str, duration_s: float | None) -> float:
    """Chance a call finds its prefix variant cached (see module docstring)."""
    n = max(calls * 1.0, 1.0)
    variants = task.system_variants
    distinct = variants * (1.0 - (1.0 - 1.0 / variants) ** n)
    seen = 1.0 - distinct / n
    if duration_s:
        per_variant_rate = n / (variants * duration_s)
        seen *= 1.0 - math.exp(-per_variant_rate * TTL_SECONDS[ttl])
    return seen


def _info(model: str) -> tuple[ModelInfo, int]:
    sim = find_model(model)
    if sim is None:
        raise ValueError(f"unknown model {model!r}")
    return sim.info, sim.max_output_tokens


def evaluate_task(scenario: Scenario, task: str, choice: TaskChoice, *, calls: int = 1500, seed: int = 0,
                  samples: int = DEFAULT_SAMPLES, duration_s: float | None = None) -> Expected:
    spec = scenario.tasks[task]
    info, _ = _info(choice.model)
    prefix, rest = _sizes(scenario, task, samples)
    cached = choice.cache_ttl is not None and prefix >= info.cache_min_tokens
    p = hit_probability(spec, calls * spec.share, choice.cache_ttl, duration_s) if cached and choice.cache_ttl else 0.0
    write_price = info.cache_write_1h if choice.cache_ttl == "1h" else info.cache_write_5m
    prefix_price = p * info.cache_read + (1 - p) * write_price if cached else info.input
    survives = spec.answer_kind == "text" and spec.answer_position == "start"
    total_cost = correct = truncated = 0.0
    for index in range(samples):
        decision = scenario.decide(seed, task, index, info.model)
        cut = decision.output_tokens > choice.max_tokens
        output = min(decision.output_tokens, choice.max_tokens)
        truncated += cut
        correct += decision.correct and (survives or not cut)
        total_cost += cost_usd(info, Usage(input_tokens=rest[index], output_tokens=output))
        total_cost += prefix * prefix_price * 1e-6
    return Expected(cost_per_call=total_cost / samples, quality=correct / samples,
                    truncation_rate=truncated / samples, cache_hit_rate=p)


def _baseline(scenario: Scenario) -> TaskChoice:
    return TaskChoice(scenario.baseline.model, scenario.baseline.max_tokens)


def evaluate(scenario: Scenario, choices: Mapping[str, TaskChoice], *, calls: int = 1500, seed: int = 0,
             samples: int = DEFAULT_SAMPLES, duration_s: float | None = None) -> PolicyScore:
    """Expected cost per call and quality of a policy over the scenario's traffic mix (missing tasks: baseline)."""
    full = {name: choices.get(name, _baseline(scenario)) for name in scenario.tasks}
    per_task = {name: evaluate_task(scenario, name, choice, calls=calls, seed=seed, samples=samples,
                                    duration_s=duration_s) for name, choice in full.items()}
    shares = {name: task.share / sum(t.share for t in scenario.tasks.values()) for name, task in scenario.tasks.items()}
    return PolicyScore(
        per_task=per_task,
        choices=full,
        cost_per_call=sum(shares[name] * result.cost_per_call for name, result in per_task.items()),
        quality=sum(shares[name] * result.quality for name, result in per_task.items()),
    )


def best_policy(scenario: Scenario, *, margin: float = 0.02, truncation_target: float = 0.01, calls: int = 1500,
                seed: int = 0, samples: int = DEFAULT_SAMPLES, duration_s: float | None = None,
                candidates: list[str] | None = None) -> dict[str, TaskChoice]:
    """Per task: the cheapest (model, max_tokens, cache TTL) whose quality is within `margin` of the baseline's.

    max_tokens is the model's output-length quantile at `1 - truncation_target`; candidates default to the models
    the task states a quality for.
    """
    options = dict(calls=calls, seed=seed, samples=samples, duration_s=duration_s)
    best: dict[str, TaskChoice] = {}
    for name, task in scenario.tasks.items():
        floor = evaluate_task(scenario, name, _baseline(scenario), **options).quality - margin
        chosen: tuple[float, TaskChoice] | None = None
        for model in candidates or task.models:
            _, max_output = _info(model)
            cap = min(max_output, task.output_for(model).quantile(1.0 - truncation_target))
            for ttl in CACHE_OPTIONS:
                choice = TaskChoice(model, cap, ttl)
                result = evaluate_task(scenario, name, choice, **options)
                if result.quality >= floor and (chosen is None or result.cost_per_call < chosen[0]):
                    chosen = (result.cost_per_call, choice)
        best[name] = chosen[1] if chosen else _baseline(scenario)
    return best


def choices_from_policy(
    scenario: Scenario, policy: Mapping[str, Any] | str | os.PathLike[str]
) -> dict[str, TaskChoice]:
    """What a policy file (docs/policy.md, schema 1) does to each task's baseline call; `when` conditions ignored."""
    data = policy if isinstance(policy, Mapping) else yaml.safe_load(Path(policy).read_text(encoding="utf-8"))
    rules = data.get("rules") or []
    choices: dict[str, TaskChoice] = {}
    base = _baseline(scenario)
    for name in scenario.tasks:
        rule = next((r for r in rules if r.get("task") in (name, "*")), None)
        if rule is None or data.get("mode", "enforce") != "enforce":
            choices[name] = base
            continue
        max_tokens = base.max_tokens
        if rule.get("max_tokens") is not None:
            limit = int(rule["max_tokens"])
            max_tokens = limit if rule.get("max_tokens_mode") == "set" else min(base.max_tokens, limit)
        ttl = (rule.get("cache") or {}).get("ttl")
        choices[name] = TaskChoice(model=rule.get("model") or base.model, max_tokens=max_tokens,
                                   cache_ttl=None if ttl in (None, "none") else str(ttl))
    return choices


def policy_document(scenario: Scenario, choices: Mapping[str, TaskChoice], version: str = "oracle") -> dict[str, Any]:
    """The choices as a policy file mapping (docs/policy.md, schema 1): e.g. the oracle's policy for a demo."""
    rules = []
    for name, choice in choices.items():
        rule: dict[str, Any] = {"task": name, "max_tokens": choice.max_tokens, "max_tokens_mode": "set"}
        if choice.model != scenario.baseline.model:
            rule["model"] = choice.model
        if choice.cache_ttl:
            rule["cache"] = {"ttl": choice.cache_ttl, "targets": ["tools", "system"]}
        rules.append(rule)
    return {"schema_version": 1, "version": version, "mode": "enforce", "rules": rules,
            "metadata": {"source": f"claude_sim.oracle.best_policy on scenario {scenario.name}"}}
