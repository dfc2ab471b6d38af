"""The simulator without HTTP: planned calls of one task replayed through the simulator's own parts.

For each planned call, in time order, the caller's request is built as the driver builds it (the conversation so far
included), the policy's choice for it is applied (model, max_tokens, cache breakpoints as the policy engine and a
conversation-caching caller place them), the prompt cache is consulted at the call's scenario time, and the reply is
planned exactly as the simulator plans it. Cache entries are keyed by what identifies a prefix (the shared tools,
the system prompt variant, the session and block position) instead of content digests, which is equivalent for the
requests a scenario sends and much cheaper.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from claude_sim._cache import PromptCache
from claude_sim._jobs import answer_in
from claude_sim._latency import timing
from claude_sim._models import SimModel, find_model
from claude_sim._plan import PlannedCall
from claude_sim._prefix import Block, head_blocks, message_blocks, with_breakpoints
from claude_sim._prompts import build_request, echo, next_request
from claude_sim._reply import JUDGE_REPLY_TOKENS, Reply, SimTag, plan_reply
from claude_sim._rng import unit
from claude_sim._scenario import Scenario
from claude_sim._tokens import block_tokens
from otel_claude.catalog import Usage, cost_usd

__all__ = ["JUDGE_INSTRUCTION_TOKENS", "JUDGE_REPLY_TOKENS", "JUDGE_REQUEST_TOKENS", "Outcome", "Served", "replay"]

# A judge call as the instrumentor makes it: its rubric, tags and instructions, and the request's text (its end);
# the simulator's verdict reply is JUDGE_REPLY_TOKENS.
JUDGE_INSTRUCTION_TOKENS = 100
JUDGE_REQUEST_TOKENS = 6000
_EDGE = "\"'`*.!?;:,"  # quotes, emphasis and final punctuation around a short answer, as graders strip them
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
    shadow_max_tokens: int | None = None  # the candidate's own cap
    judge_model: str | None = None  # then judge calls for each pair the built-in graders leave unsettled


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


@dataclass
class _Request:
    """A caller's request and its blocks (built once per turn: a conversation's earlier blocks are reused)."""

    body: dict[str, Any]
    blocks: list[Block]
    head: int  # blocks of tools + system
    tools: int

    @property
    def tokens(self) -> int:
        return sum(block.tokens for block in self.blocks)


def _first_request(body: dict[str, Any]) -> _Request:
    head = head_blocks(body)
    return _Request(body, head + message_blocks(body["messages"][0], 0), len(head), len(body.get("tools") or []))


def _next_request(previous: _Request, body: dict[str, Any]) -> _Request:
    known = len(previous.body["messages"])
    added = [block for index, message in enumerate(body["messages"][known:], start=known)
             for block in message_blocks(message, index)]
    return _Request(body, previous.blocks + added, previous.head, previous.tools)


def _keys(request: _Request, variant: int, session: int) -> list[Hashable]:
    """Prefix identities: the task's tools, then its system prompt variant, then the session's messages."""
    keys: list[Hashable] = []
    for index in range(len(request.blocks)):
        if index < request.tools:
            keys.append(("tools", index))
        elif index < request.head:
            keys.append(("system", variant, index))
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

    def serve(self, request: _Request, call: PlannedCall, model_name: str, served: Served,
              variant: int) -> tuple[Reply, Usage, float, tuple[float, float]]:
        """One request to one model, with the breakpoints the choice places: (reply, usage, cost, timing)."""
        model = _model(model_name)
        sent = {**request.body, "model": model.id, "max_tokens": min(served.max_tokens, model.max_output_tokens)}
        ttls: dict[int, str] = {}
        if served.cache_ttl:
            ttls.update({index: served.cache_ttl for index in {request.tools - 1, request.head - 1} if index >= 0})
        if served.conversation_ttl:
            ttls[len(request.blocks) - 1] = served.conversation_ttl
        prompt = with_breakpoints(request.blocks, ttls)
        usage = self.cache.apply(model.id, prompt, model.info.cache_min_tokens,
                                 _keys(request, variant, call.session))
        reply = plan_reply(sent, _REQUEST_KEY, scenario=self.scenario, seed=self.seed,
                           tag=SimTag(self.task, call.case, call.turn), model=model.id,
                           input_tokens=prompt.total_tokens)
        split = Usage(usage.input_tokens, reply.output_tokens, usage.cache_read, usage.write_5m, usage.write_1h)
        when = timing(model, usage.input_tokens + usage.cache_creation, usage.cache_read,
                      unit(self.seed, "ttft", model.id, self.task, call.case, call.turn),
                      unit(self.seed, "rate", model.id, self.task, call.case, call.turn), 1.0)
        return reply, split, cost_usd(model.info, split), (when.ttft_s, when.total(reply.output_tokens))


def _shown(reply: Reply) -> tuple[str, list[tuple[Any, Any]]]:
    text = " ".join(str(block.get("text", "")) for block in reply.blocks if block["type"] == "text")
    calls = [(block["name"], block["input"]) for block in reply.blocks if block["type"] == "tool_use"]
    return " ".join(text.split()).casefold().strip(_EDGE).strip(), calls


def _settled(first: Reply, second: Reply) -> bool:
    """Whether the instrumentor's built-in graders settle a pair: the same tool calls, or the same normalised text
    (a user grader would settle more)."""
    (text_a, calls_a), (text_b, calls_b) = _shown(first), _shown(second)
    return calls_a == calls_b if calls_a or calls_b else text_a == text_b


def _judge_cost(model_name: str, request_tokens: int, first: Reply, second: Reply) -> float:
    """An unsettled pair goes to the judge twice, the answers swapped: each call shows the request (its end, up to
    JUDGE_REQUEST_TOKENS) and both answers; the simulated verdict is a line and a short reason."""
    model = _model(model_name)
    answers = sum(block_tokens(block) for reply in (first, second) for block in reply.blocks)
    shown = JUDGE_INSTRUCTION_TOKENS + min(request_tokens, JUDGE_REQUEST_TOKENS) + answers
    return 2 * cost_usd(model.info, Usage(shown, JUDGE_REPLY_TOKENS))


def replay(scenario: Scenario, task: str, calls: Sequence[tuple[int, PlannedCall]], choose: Callable[[int], Served],
           seed: int, streamed: Callable[[int], bool], safety_net: bool) -> list[Outcome]:
    """Outcomes of a task's planned `calls` (one window, numbered within it, from a cold cache).

    `choose(input_tokens)` says how the caller's request of that size is served; `streamed(number)` whether the
    caller streams it. With `safety_net`, a non-streamed call truncated under a cap the policy lowered is sent again
    with the caller's max_tokens, as the policy engine does: both attempts are paid, the second is the answer."""
    state = _Replay(scenario, task, seed)
    open_sessions: dict[int, tuple[_Request, list[dict[str, Any]]]] = {}
    baseline = scenario.baseline
    task_spec = scenario.tasks[task]
    outcomes = []
    for number, call in calls:
        state.now = call.at
        case = scenario.case(task, call.case)
        if call.turn == 1:
            request = _first_request(build_request(scenario, case, baseline.model, baseline.max_tokens))
        else:
            previous = open_sessions.pop(call.session, None)
            if previous is None:
                continue
            body = next_request(scenario, task, previous[0].body, previous[1], call.case, call.turn)
            request = _next_request(previous[0], body)
        size = request.tokens
        served = choose(size)
        reply, usage, cost, (ttft, duration) = state.serve(request, call, served.model, served, case.system_variant)
        if (safety_net and reply.stop_reason == "max_tokens" and served.max_tokens < baseline.max_tokens
                and not streamed(number)):
            retry = replace(served, max_tokens=baseline.max_tokens)
            reply, usage, again, (ttft, duration) = state.serve(request, call, served.model, retry,
                                                                case.system_variant)
            cost += again
        if call.turn < call.turns:
            open_sessions[call.session] = (request, echo(reply.blocks))
        evaluation = 0.0
        if served.shadow_model and unit(seed, "shadow", task, call.case, call.turn) < served.shadow_share:
            candidate = replace(served, max_tokens=served.shadow_max_tokens or served.max_tokens)
            shadow, _, evaluation, _ = state.serve(request, call, served.shadow_model, candidate,
                                                   case.system_variant)
            if served.judge_model and not _settled(reply, shadow):
                evaluation += _judge_cost(served.judge_model, size, reply, shadow)
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
