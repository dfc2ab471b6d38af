"""Ground truth for tuners: the expected cost, quality, truncation, latency and cache behaviour of any per-task
policy on a scenario, and the best one.

How: the oracle replays the scenario's traffic through the simulator's own parts, without HTTP (`_replay`): windows
of `calls` planned calls (the plans the workload driver sends: arrivals, sessions, think times), each window from a
cold cache, until there are at least `samples` calls of the task. Per call: the caller's request (the conversation
so far included), the policy's choice for it, the prompt cache at the call's scenario time (shared-prefix and
conversation breakpoints, TTL refresh, per-model minimums, the 20-block lookback), the reply the simulator would
plan, and its grade. Figures are means over those calls, with standard errors.

Approximations (deliberate):
- Calls go out at their planned scenario time, each answered before the next starts: a run with one worker on a
  fast-forward clock. With more workers, or a real-time run that falls behind, calls shift by the overlap.
- Standard errors treat calls as independent; calls sharing a cache entry are not quite, so they are a little low.
- Latency is the simulator's latency model at scale 1, with the oracle's own jitter draws (same distribution).
- A size-routed policy picks a call's rule by the simulator's token count of the caller's request; the
  instrumentor estimates from characters, so a size right at a boundary may fall on the other side.
- Exploration (`explore` in a policy) is not modelled: the oracle scores a policy's steady state.
- Paired evaluation calls re-send the served request (breakpoints included, at the candidate's own cap when it has
  one) to the candidate, sharing its cache. A pair the instrumentor's built-in graders leave unsettled (different
  tool calls, or texts that differ once normalised: free text in each model's own words always does) goes to the
  judge twice, answers swapped, each call priced as JUDGE_INSTRUCTION_TOKENS + the request's input (at most
  JUDGE_REQUEST_TOKENS) + both answers in and JUDGE_REPLY_TOKENS out, uncached; user graders are not modelled. A
  budget caps the evaluation spend at its share of the served spend (the instrumentor stops sampling there)
  without modelling which calls it skips. Evaluation spend is reported apart from the served calls' cost.
- A max_tokens above a model's output limit is clamped to the limit (the API would reject the call).
- A conversation breakpoint goes on the last block of the newest message only; the policy engine also marks where
  the previous turn ended when a turn adds 20 blocks or more (parallel tool calls), which no shipped scenario does.
- The policy engine's safety net is modelled (a non-streamed call truncated under a lowered cap is re-sent with
  the caller's max_tokens; both attempts cost), with the driver's rule for which calls stream.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from claude_sim._models import find_model
from claude_sim._plan import PlannedCall, plan_calls
from claude_sim._replay import (
    JUDGE_INSTRUCTION_TOKENS,
    JUDGE_REPLY_TOKENS,
    JUDGE_REQUEST_TOKENS,
    Outcome,
    Served,
    replay,
)
from claude_sim._rng import unit
from claude_sim._scenario import Scenario
from claude_sim._spec import DEFAULT

__all__ = [
    "JUDGE_INSTRUCTION_TOKENS",
    "JUDGE_REPLY_TOKENS",
    "JUDGE_REQUEST_TOKENS",
    "Evaluation",
    "Expected",
    "PolicyScore",
    "SizeRouted",
    "TaskChoice",
    "best_policy",
    "choices_from_policy",
    "describe_choice",
    "evaluate",
    "evaluate_task",
    "policy_document",
]

DEFAULT_SAMPLES = 2000
CACHE_OPTIONS: tuple[str | None, ...] = (None, "5m", "1h")
_MAX_WINDOWS = 400
_PLAN_SEED = 1_000_003  # oracle windows use their own plans, not any run's


@dataclass(frozen=True)
class Evaluation:
    """Paired (shadow) evaluation, as a policy rule's `evaluate` says it: a share of the calls also sent to a
    candidate; pairs the built-in graders leave unsettled go to a judge when there is one; spend held under
    `budget` x the task's."""

    model: str
    share: float
    judge_model: str | None = None
    budget: float | None = None  # evaluation spend at most this share of the served calls' spend
    max_tokens: int | None = None  # the candidate's own cap


@dataclass(frozen=True)
class TaskChoice:
    """What a policy does to one task's calls."""

    model: str
    max_tokens: int
    cache_ttl: str | None = None  # "5m" | "1h" | None: breakpoints on tools + system
    conversation_ttl: str | None = None  # a breakpoint on the last message block, moved every turn
    evaluation: Evaluation | None = None

    def __post_init__(self) -> None:
        if self.cache_ttl == "5m" and self.conversation_ttl == "1h":
            raise ValueError("a 1h breakpoint cannot follow a 5m one (the API rejects the request)")

    def at(self, input_tokens: int) -> TaskChoice:
        return self

    def served(self) -> Served:
        evaluation = self.evaluation
        return Served(
            model=self.model, max_tokens=self.max_tokens, cache_ttl=self.cache_ttl,
            conversation_ttl=self.conversation_ttl,
            shadow_model=evaluation.model if evaluation else None, shadow_share=evaluation.share if evaluation else 0,
            shadow_max_tokens=evaluation.max_tokens if evaluation else None,
            judge_model=evaluation.judge_model if evaluation else None,
        )


@dataclass(frozen=True)
class SizeRouted:
    """Choices by the request's input tokens: the first rule whose [min, max) holds the size, else `default`."""

    rules: tuple[tuple[int | None, int | None, TaskChoice], ...]
    default: TaskChoice

    def at(self, input_tokens: int) -> TaskChoice:
        for low, high, choice in self.rules:
            if (low is None or input_tokens >= low) and (high is None or input_tokens < high):
                return choice
        return self.default


TaskPolicy = TaskChoice | SizeRouted


@dataclass(frozen=True)
class Expected:
    cost_per_call: float  # of the served calls
    quality: float  # expected share of graded calls answered correctly
    truncation_rate: float
    cache_hit_rate: float  # cache reads / (reads + writes), in tokens (as the workload summary counts it)
    evaluation_cost_per_call: float = 0.0  # paired evaluation and judge calls, per served call
    ttft_s: float = 0.0  # mean, at latency scale 1
    duration_s: float = 0.0
    calls: int = 0
    graded: int = 0
    cost_se: float = 0.0
    quality_se: float = 0.0
    input_tokens: float = 0.0  # means per call
    cache_read_tokens: float = 0.0
    cache_write_tokens: float = 0.0
    output_tokens: float = 0.0
    realized_quality: float = math.nan  # the share the replayed calls actually got right (`quality` is its mean)


@dataclass(frozen=True)
class PolicyScore:
    per_task: dict[str, Expected]
    choices: dict[str, TaskPolicy]
    cost_per_call: float
    quality: float
    evaluation_cost_per_call: float = 0.0


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def _se(values: Sequence[float]) -> float:
    if len(values) < 2:
        return 0.0
    mean = _mean(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1) / len(values))


def summarise(outcomes: Sequence[Outcome]) -> Expected:
    """Expected figures from replayed (or measured) call outcomes."""
    # Quality from each graded call's chance of being right rather than its draw: the same mean, less noise.
    graded = [o.p_correct for o in outcomes if o.p_correct is not None]
    right = [float(o.correct) for o in outcomes if o.correct is not None]
    read = sum(o.cache_read for o in outcomes)
    written = sum(o.cache_write for o in outcomes)
    costs = [o.cost for o in outcomes]
    return Expected(
        cost_per_call=_mean(costs),
        quality=_mean(graded) if graded else math.nan,
        truncation_rate=_mean([float(o.truncated) for o in outcomes]),
        cache_hit_rate=read / (read + written) if read + written else 0.0,
        evaluation_cost_per_call=_mean([o.evaluation_cost for o in outcomes]),
        ttft_s=_mean([o.ttft_s for o in outcomes]),
        duration_s=_mean([o.duration_s for o in outcomes]),
        calls=len(outcomes),
        graded=len(graded),
        cost_se=_se(costs),
        quality_se=_se(graded),
        input_tokens=_mean([float(o.input_tokens) for o in outcomes]),
        cache_read_tokens=read / len(outcomes) if outcomes else 0.0,
        cache_write_tokens=written / len(outcomes) if outcomes else 0.0,
        output_tokens=_mean([float(o.output_tokens) for o in outcomes]),
        realized_quality=_mean(right) if right else math.nan,
    )


@lru_cache(maxsize=256)
def _window(scenario: Scenario, calls: int, plan_seed: int, task: str) -> tuple[tuple[int, PlannedCall], ...]:
    """A task's calls of one run's plan, with their numbers in the run (which decide streaming)."""
    return tuple((number, call) for number, call in enumerate(_plan(scenario, calls, plan_seed)) if call.task == task)


@lru_cache(maxsize=32)
def _plan(scenario: Scenario, calls: int, plan_seed: int) -> tuple[PlannedCall, ...]:
    return tuple(plan_calls(scenario, calls, plan_seed))


def _outcomes(scenario: Scenario, task: str, choose: Callable[[int], Served], *, calls: int, seed: int,
              samples: int, windows: Sequence[int] | None, stream_share: float, safety_net: bool) -> list[Outcome]:
    outcomes: list[Outcome] = []
    seeds = windows if windows is not None else range(_PLAN_SEED, _PLAN_SEED + _MAX_WINDOWS)
    for plan_seed in seeds:
        def streamed(number: int, plan_seed: int = plan_seed) -> bool:
            return unit(plan_seed, "stream", number) < stream_share  # as the driver decides it

        outcomes += replay(scenario, task, _window(scenario, calls, plan_seed, task), choose, seed, streamed,
                           safety_net)
        if windows is None and len(outcomes) >= samples:
            break
    return outcomes


def evaluate_task(scenario: Scenario, task: str, choice: TaskPolicy, *, calls: int = 1500, seed: int = 0,
                  samples: int = DEFAULT_SAMPLES, windows: Sequence[int] | None = None, stream_share: float = 0.3,
                  safety_net: bool = True) -> Expected:
    """Expected figures of one task's calls under `choice`, in runs of `calls` calls on a simulator with `seed`.

    `windows`: replay exactly the runs the workload driver makes with these seeds (one worker), instead of the
    oracle's own windows. `stream_share` and `safety_net` are the driver's and the policy engine's settings (the
    safety net re-sends truncated non-streamed calls whose cap the policy lowered).
    """
    expected = summarise(_outcomes(scenario, task, lambda size: choice.at(size).served(), calls=calls, seed=seed,
                                   samples=samples, windows=windows, stream_share=stream_share,
                                   safety_net=safety_net))
    budget = choice.evaluation.budget if isinstance(choice, TaskChoice) and choice.evaluation else None
    if budget is not None and expected.evaluation_cost_per_call > budget * expected.cost_per_call:
        # The instrumentor stops sampling once evaluation spend reaches its budget share.
        return replace(expected, evaluation_cost_per_call=budget * expected.cost_per_call)
    return expected


def _baseline(scenario: Scenario) -> TaskChoice:
    return TaskChoice(scenario.baseline.model, scenario.baseline.max_tokens)


def _call_shares(scenario: Scenario) -> dict[str, float]:
    total = sum(task.share for task in scenario.tasks.values())
    return {name: task.share / total for name, task in scenario.tasks.items()}


def evaluate(scenario: Scenario, choices: Mapping[str, TaskPolicy], *, calls: int = 1500, seed: int = 0,
             samples: int = DEFAULT_SAMPLES, windows: Sequence[int] | None = None, stream_share: float = 0.3,
             safety_net: bool = True) -> PolicyScore:
    """Expected cost per call and quality of a policy over the scenario's traffic mix (missing tasks: baseline).

    Quality weighs each task by its share of graded calls (an agent's intermediate steps are not graded)."""
    full = {name: choices.get(name, _baseline(scenario)) for name in scenario.tasks}
    per_task = {name: evaluate_task(scenario, name, choice, calls=calls, seed=seed, samples=samples,
                                    windows=windows, stream_share=stream_share, safety_net=safety_net)
                for name, choice in full.items()}
    shares = _call_shares(scenario)
    graded = {name: shares[name] * result.graded / result.calls if result.calls else 0.0
              for name, result in per_task.items()}
    total_graded = sum(graded.values())
    return PolicyScore(
        per_task=per_task,
        choices=full,
        cost_per_call=sum(shares[name] * result.cost_per_call for name, result in per_task.items()),
        quality=sum(graded[name] * result.quality for name, result in per_task.items() if graded[name])
        / total_graded if total_graded else math.nan,
        evaluation_cost_per_call=sum(shares[name] * r.evaluation_cost_per_call for name, r in per_task.items()),
    )


def _max_output(model: str) -> int:
    sim = find_model(model)
    if sim is None:
        raise ValueError(f"unknown model {model!r}")
    return sim.max_output_tokens


def _quantile(values: Sequence[int], q: float) -> int:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def best_policy(scenario: Scenario, *, margin: float = 0.02, truncation_target: float = 0.01, calls: int = 1500,
                seed: int = 0, samples: int = DEFAULT_SAMPLES, candidates: list[str] | None = None,
                stream_share: float = 0.3, safety_net: bool = True) -> dict[str, TaskPolicy]:
    """Per task: the cheapest policy whose quality is within `margin` of the baseline's.

    Tried: each candidate model with max_tokens at its output-length quantile `1 - truncation_target` over the
    task's calls (or the caller's own where that is larger), each shared-prefix cache TTL and, on multi-turn tasks,
    each conversation TTL; then, where a candidate's quality changes with input size, a split at each such size
    between the best setups of two models (`SizeRouted`). Candidates default to the models the task states a
    quality for.
    """
    options: dict[str, Any] = dict(calls=calls, seed=seed, samples=samples, stream_share=stream_share,
                                   safety_net=safety_net)
    best: dict[str, TaskPolicy] = {}
    for name, task in scenario.tasks.items():
        floor = evaluate_task(scenario, name, _baseline(scenario), **options).quality - margin
        chosen: tuple[float, TaskPolicy] | None = None
        per_model: dict[str, tuple[float, TaskChoice]] = {}  # each model's cheapest setup, within margin or not
        models = candidates or task.models
        conversation = CACHE_OPTIONS if task.session is not None else (None,)
        for model in models:
            limit = _max_output(model)
            uncapped = _outcomes(scenario, name, lambda _size, m=model, cap=limit: Served(m, cap), **options,
                                 windows=None)
            cap = min(limit, _quantile([o.uncapped_output_tokens for o in uncapped], 1.0 - truncation_target))
            # The caller's own cap where it truncates no more: lowering it saves nothing when answers are short,
            # and costs the safety net's retries.
            caps = {cap, scenario.baseline.max_tokens} if cap <= scenario.baseline.max_tokens <= limit else {cap}
            for max_tokens, ttl, conversation_ttl in itertools.product(sorted(caps), CACHE_OPTIONS, conversation):
                if ttl == "5m" and conversation_ttl == "1h":
                    continue
                choice = TaskChoice(model, max_tokens, ttl, conversation_ttl)
                result = evaluate_task(scenario, name, choice, **options)
                if model not in per_model or result.cost_per_call < per_model[model][0]:
                    per_model[model] = (result.cost_per_call, choice)
                if result.quality >= floor and (chosen is None or result.cost_per_call < chosen[0]):
                    chosen = (result.cost_per_call, choice)
        sizes = sorted({start for model in models for start, _ in task.quality.get(model, task.quality[DEFAULT]).bands
                        if start > 0})
        for size, (low, high) in itertools.product(sizes, itertools.permutations(per_model, 2)):
            split = SizeRouted(((0, size, per_model[low][1]),), per_model[high][1])
            result = evaluate_task(scenario, name, split, **options)
            if result.quality >= floor and (chosen is None or result.cost_per_call < chosen[0]):
                chosen = (result.cost_per_call, split)
        best[name] = chosen[1] if chosen else _baseline(scenario)
    return best


def describe_choice(policy: TaskPolicy) -> str:
    """One line for a task's policy, for reports and benchmarks."""
    if isinstance(policy, SizeRouted):
        parts = [f"input [{low or 0}, {high if high is not None else 'inf'}): {describe_choice(choice)}"
                 for low, high, choice in policy.rules]
        return "; ".join([*parts, f"otherwise {describe_choice(policy.default)}"])
    text = f"{policy.model} max_tokens={policy.max_tokens} cache={policy.cache_ttl or 'none'}"
    if policy.conversation_ttl:
        text += f" conversation={policy.conversation_ttl}"
    return text


# --- policy files ---------------------------------------------------------------------------------------------
# Each reader maps one rule field onto a TaskChoice; a new policy field gets a reader here (and a writer below).

def _read_model(rule: Mapping[str, Any], choice: TaskChoice, caller: TaskChoice) -> TaskChoice:
    return replace(choice, model=rule["model"]) if rule.get("model") else choice


def _read_max_tokens(rule: Mapping[str, Any], choice: TaskChoice, caller: TaskChoice) -> TaskChoice:
    if rule.get("max_tokens") is None:
        return choice
    limit = int(rule["max_tokens"])
    return replace(choice, max_tokens=limit if rule.get("max_tokens_mode") == "set" else min(caller.max_tokens, limit))


def _read_cache(rule: Mapping[str, Any], choice: TaskChoice, caller: TaskChoice) -> TaskChoice:
    cache = rule.get("cache") or {}
    ttl, conversation = cache.get("ttl"), (cache.get("conversation") or {}).get("ttl")
    return replace(choice, cache_ttl=None if ttl in (None, "none") else str(ttl),
                   conversation_ttl=None if conversation in (None, "none") else str(conversation))


def _read_evaluate(rule: Mapping[str, Any], choice: TaskChoice, caller: TaskChoice) -> TaskChoice:
    data = rule.get("evaluate")
    if not data:
        return choice
    judge = data.get("judge") or {}
    return replace(choice, evaluation=Evaluation(
        model=data["model"], share=float(data["share"]), judge_model=judge.get("model"),
        budget=data.get("budget"), max_tokens=data.get("max_tokens")))


READERS: list[Callable[[Mapping[str, Any], TaskChoice, TaskChoice], TaskChoice]] = [
    _read_model, _read_max_tokens, _read_cache, _read_evaluate,
]


def _rule_choice(rule: Mapping[str, Any], caller: TaskChoice) -> TaskChoice:
    choice = caller
    for read in READERS:
        choice = read(rule, choice, caller)
    return choice


def choices_from_policy(scenario: Scenario, policy: Mapping[str, Any] | str | os.PathLike[str]
                        ) -> dict[str, TaskPolicy]:
    """What a policy file (docs/policy.md, schema 1) does to each task's baseline call. Rules with
    `when.input_tokens_min/max` make a `SizeRouted` choice; `when.models` is taken as matching the baseline model."""
    data = policy if isinstance(policy, Mapping) else yaml.safe_load(Path(policy).read_text(encoding="utf-8"))
    rules = data.get("rules") or []
    base = _baseline(scenario)
    choices: dict[str, TaskPolicy] = {}
    for name in scenario.tasks:
        matching = [r for r in rules if r.get("task") in (name, "*")]
        if not matching or data.get("mode", "enforce") != "enforce":
            choices[name] = base
            continue
        sized = []
        for rule in matching:
            when = rule.get("when") or {}
            low, high = when.get("input_tokens_min"), when.get("input_tokens_max")
            sized.append((low, high, _rule_choice(rule, base)))
            if low is None and high is None:
                break  # later rules never match
        default = base
        if sized[-1][:2] == (None, None):  # a catch-all rule: what the sizes before it leave
            default = sized.pop()[2]
        choices[name] = SizeRouted(tuple(sized), default) if sized else default
    return choices


def _rule(name: str, choice: TaskChoice, scenario: Scenario) -> dict[str, Any]:
    rule: dict[str, Any] = {"task": name, "max_tokens": choice.max_tokens, "max_tokens_mode": "set"}
    if choice.model != scenario.baseline.model:
        rule["model"] = choice.model
    if choice.cache_ttl:
        rule["cache"] = {"ttl": choice.cache_ttl, "targets": ["tools", "system"]}
    if choice.conversation_ttl:
        rule.setdefault("cache", {"ttl": "none"})["conversation"] = {"ttl": choice.conversation_ttl}
    evaluation = choice.evaluation
    if evaluation is not None:
        rule["evaluate"] = {"model": evaluation.model, "share": evaluation.share}
        rule["evaluate"].update({key: value for key, value in (
            ("budget", evaluation.budget), ("max_tokens", evaluation.max_tokens)) if value is not None})
        if evaluation.judge_model:
            rule["evaluate"]["judge"] = {"model": evaluation.judge_model}
    return rule


def policy_document(scenario: Scenario, choices: Mapping[str, TaskPolicy], version: str = "oracle") -> dict[str, Any]:
    """The choices as a policy file mapping (docs/policy.md, schema 1): e.g. the oracle's policy for a demo."""
    rules = []
    for name, choice in choices.items():
        if isinstance(choice, SizeRouted):
            for low, high, sized in choice.rules:
                rule = _rule(name, sized, scenario)
                when = {key: value for key, value in (("input_tokens_min", low), ("input_tokens_max", high))
                        if value is not None}
                rules.append({**rule, "when": when} if when else rule)
            rules.append(_rule(name, choice.default, scenario))
        else:
            rules.append(_rule(name, choice, scenario))
    return {"schema_version": 1, "version": version, "mode": "enforce", "rules": rules,
            "metadata": {"source": f"claude_sim.oracle.best_policy on scenario {scenario.name}"}}


if __name__ == "__main__":
    import sys

    from claude_sim._oracle_report import main

    sys.exit(main())
