"""The simulator without HTTP: planned calls of one task replayed through the simulator's own parts.

For each planned call, in time order, the caller's request is built as the driver builds it (the conversation so far
included), the policy's choice for it is applied (model, max_tokens, cache breakpoints as the policy engine and a
conversation-caching caller place them), the prompt cache is consulted at the call's scenario time, and the reply is
planned exactly as the simulator plans it. Cache entries are keyed by what identifies a prefix (the shared tools,
the system prompt variant, the session and block position) instead of content digests, which is equivalent for the
requests a scenario sends and much cheaper.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

from claude_sim._cache import PromptCache
from claude_sim._jobs import answer_in
from claude_sim._latency import timing
from claude_sim._markers import mark_conversation, mark_prefix
from claude_sim._models import SimModel, find_model
from claude_sim._plan import PlannedCall
from claude_sim._prefix import Prompt, flatten
from claude_sim._prompts import build_request, echo, next_request
from claude_sim._reply import Reply, SimTag, plan_reply
from claude_sim._rng import unit
from claude_sim._scenario import Scenario
from claude_sim._tokens import block_tokens, text_tokens
from otel_claude.catalog import Usage, cost_usd

__all__ = ["JUDGE_INSTRUCTION_TOKENS", "Outcome", "Served", "replay"]

JUDGE_INSTRUCTION_TOKENS = 200  # the judge's own instructions around the two answers (an assumption)
# Replies are planned from sizes and labels only: the request digest the simulator would use only names tool calls,
# whose length (not text) is all the oracle needs.
_REQUEST_KEY = "oracle"


@dataclass(frozen=True)
class Served:
    """How one call is served: what a policy's choice for it amounts to."""

    model: str
    max_tokens: int
    cache_ttl: str | None = None
    conversation_ttl: str | None = None
    shadow_model: str | None = None  # a paired evaluation call to this model, for `shadow_share` of the calls
    shadow_share: float = 0.0
    judge_model: str | None = None  # then a judge call for `judge_share` of the shadowed calls
    judge_share: float = 0.0


@dataclass(frozen=True)
class Outcome:
    turn: int
    correct: bool | None  # None: not graded
    p_correct: float | None  # the chance it is right: the model's quality, 0 when truncation cut the answer
    truncated: bool
    input_tokens: int  # the whole input: uncached + cache read + cache write
    cache_read: int
    cache_write: int
    output_tokens: int
    uncapped_output_tokens: int  # what the model wanted to say
    cost: float
    evaluation_cost: float
    ttft_s: float  # at latency scale 1
    duration_s: float


def _model(name: str) -> SimModel:
    model = find_model(name)
    if model is None:
        raise ValueError(f"unknown model {name!r}")
    return model


def _keys(prompt: Prompt, body: dict[str, Any], variant: int, session: int) -> list[Hashable]:
    """Prefix identities: the task's tools, then its system prompt variant, then the session's messages."""
    tools = len(body.get("tools") or [])
    system = tools if body.get("system") else -1
    keys: list[Hashable] = []
    for index in range(len(prompt.blocks)):
        if index < tools:
            keys.append(("tools", index))
        elif index == system:
            keys.append(("system", variant))
        else:
            keys.append(("session", session, index))
    return keys


class _Replay:
    def __init__(self, scenario: Scenario, task: str, seed: int) -> None:
        self.scenario = scenario
        self.task = task
        self.spec = scenario.tasks[task]
        self.seed = seed
        self.now = 0.0
        self.cache = PromptCache(lambda: self.now)

    def serve(self, body: dict[str, Any], call: PlannedCall, model_name: str, served: Served,
              variant: int) -> tuple[Reply, Usage, float, tuple[float, float], int]:
        """One request to one model: (reply, usage, cost, (ttft, duration), input tokens)."""
        model = _model(model_name)
        sent = {**body, "model": model.id, "max_tokens": min(served.max_tokens, model.max_output_tokens)}
        if served.cache_ttl:
            sent = mark_prefix(sent, served.cache_ttl)
        if served.conversation_ttl:
            sent = mark_conversation(sent, served.conversation_ttl)
        prompt = flatten(sent)
        keys = _keys(prompt, body, variant, call.session)
        usage = self.cache.apply(model.id, prompt, model.info.cache_min_tokens, keys)
        reply = plan_reply(sent, _REQUEST_KEY, scenario=self.scenario, seed=self.seed,
                           tag=SimTag(self.task, call.case, call.turn), model=model.id,
                           input_tokens=prompt.total_tokens)
        split = Usage(usage.input_tokens, reply.output_tokens, usage.cache_read, usage.write_5m, usage.write_1h)
        when = timing(model, usage.input_tokens + usage.cache_creation, usage.cache_read,
                      unit(self.seed, "ttft", model.id, self.task, call.case, call.turn),
                      unit(self.seed, "rate", model.id, self.task, call.case, call.turn), 1.0)
        return reply, split, cost_usd(model.info, split), (when.ttft_s, when.total(reply.output_tokens)), \
            prompt.total_tokens


def _judge_cost(model_name: str, body: dict[str, Any], first: Reply, second: Reply) -> float:
    """A judge call seeing the turn's user message and both answers; its reply is a verdict line and a reason."""
    model = _model(model_name)
    answers = sum(text_tokens(str(block.get("text", ""))) for reply in (first, second) for block in reply.blocks)
    content = body["messages"][-1]["content"]
    question = block_tokens(content) if isinstance(content, str) else sum(block_tokens(b) for b in content)
    return cost_usd(model.info, Usage(JUDGE_INSTRUCTION_TOKENS + question + answers, 30))


def replay(scenario: Scenario, task: str, calls: list[PlannedCall], choose: Callable[[int], Served],
           seed: int) -> list[Outcome]:
    """Outcomes of a task's planned `calls` (one window, from a cold cache); `choose(input_tokens)` says how the
    caller's request of that size is served."""
    state = _Replay(scenario, task, seed)
    open_sessions: dict[int, tuple[dict[str, Any], list[dict[str, Any]]]] = {}
    baseline = scenario.baseline
    task_spec = scenario.tasks[task]
    outcomes = []
    for call in calls:
        state.now = call.at
        case = scenario.case(task, call.case)
        if call.turn == 1:
            body = build_request(scenario, case, baseline.model, baseline.max_tokens)
        else:
            previous = open_sessions.pop(call.session, None)
            if previous is None:
                continue
            body = next_request(scenario, task, previous[0], previous[1], call.case, call.turn)
        served = choose(flatten(body).total_tokens)
        reply, usage, cost, (ttft, duration), size = state.serve(body, call, served.model, served,
                                                                 case.system_variant)
        if call.turn < call.turns:
            open_sessions[call.session] = (body, echo(reply.blocks))
        evaluation = 0.0
        if served.shadow_model and unit(seed, "shadow", task, call.case, call.turn) < served.shadow_share:
            shadow, _, evaluation, _, _ = state.serve(body, call, served.shadow_model, served, case.system_variant)
            if served.judge_model and unit(seed, "judged", task, call.case, call.turn) < served.judge_share:
                evaluation += _judge_cost(served.judge_model, body, reply, shadow)
        graded = scenario.graded(task, case, call.turn)
        expected = scenario.expected(task, call.case, call.turn) if graded else None
        model_id = _model(served.model).id
        assert reply.decision is not None
        outcomes.append(Outcome(
            turn=call.turn,
            correct=None if expected is None else answer_in(reply.blocks) == expected,
            p_correct=None if expected is None else
            (task_spec.quality_for(model_id, size) if answer_in(reply.blocks) is not None else 0.0),
            truncated=reply.stop_reason == "max_tokens",
            input_tokens=usage.input_tokens + usage.cache_read_tokens + usage.cache_write_5m_tokens
            + usage.cache_write_1h_tokens,
            cache_read=usage.cache_read_tokens,
            cache_write=usage.cache_write_5m_tokens + usage.cache_write_1h_tokens,
            output_tokens=reply.output_tokens,
            uncapped_output_tokens=reply.decision.output_tokens,
            cost=cost,
            evaluation_cost=evaluation,
            ttft_s=ttft,
            duration_s=duration,
        ))
    return outcomes
