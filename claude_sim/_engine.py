"""The simulated model behind every endpoint: validate, apply the prompt cache, plan the reply, time it.

HTTP-free, so the server, message batches and tests share one code path.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from claude_sim._cache import CacheUsage, PromptCache
from claude_sim._errors import ApiError, invalid
from claude_sim._latency import Timing, timing
from claude_sim._models import SimModel, find_model
from claude_sim._prefix import PromptError, flatten
from claude_sim._ratelimit import RateLimiter, RateLimits
from claude_sim._reply import Reply, SimTag, plan_reply, request_key
from claude_sim._rng import unit
from claude_sim._scenario import Scenario
from claude_sim._validate import check_message_body, check_messages

TASK_HEADER = "x-sim-task"
CASE_HEADER = "x-sim-case"
TURN_HEADER = "x-sim-turn"
TIME_HEADER = "x-sim-time"  # the call's planned scenario time (see `_clock`)
SEQ_HEADER = "x-sim-seq"  # "<sequencer token>:<ticket>": its place in the driver's plan (see `_clock`)
METADATA_PREFIX = "sim:"


@dataclass
class Outcome:
    message: dict[str, Any]
    reply: Reply
    cache: CacheUsage
    timing: Timing
    headers: dict[str, str]


def tag_from(headers: dict[str, str], body: dict[str, Any]) -> SimTag | None:
    """Headers `x-sim-task` + `x-sim-case` (+ `x-sim-turn`), or `metadata.user_id` = "sim:TASK:CASE[:TURN]" (the
    only way in a batch). Without a turn, the turn is the number of user messages (each turn adds one)."""
    task, case, turn = headers.get(TASK_HEADER), headers.get(CASE_HEADER), headers.get(TURN_HEADER)
    if task is None:
        user = (body.get("metadata") or {}).get("user_id") if isinstance(body.get("metadata"), dict) else None
        if isinstance(user, str) and user.startswith(METADATA_PREFIX):
            task, case, turn = ([*user[len(METADATA_PREFIX):].split(":"), None, None])[:3]
    if not task:
        return None
    if turn is None:
        messages = body.get("messages") if isinstance(body, dict) else None
        turn = str(sum(1 for m in messages if isinstance(m, dict) and m.get("role") == "user")
                   if isinstance(messages, list) else 1)
    try:
        return SimTag(task=task, case=int(case or 0), turn=max(1, int(turn)))
    except ValueError:
        raise invalid(f"{CASE_HEADER}/{TURN_HEADER}: expected integers, got {case!r} / {turn!r}") from None


def usage_json(cache: CacheUsage, output_tokens: int, service_tier: str) -> dict[str, Any]:
    return {
        "input_tokens": cache.input_tokens,
        "cache_creation_input_tokens": cache.cache_creation,
        "cache_read_input_tokens": cache.cache_read,
        "cache_creation": {"ephemeral_5m_input_tokens": cache.write_5m, "ephemeral_1h_input_tokens": cache.write_1h},
        "output_tokens": output_tokens,
        "service_tier": service_tier,
        "inference_geo": "not_available",
    }


class Engine:
    def __init__(self, *, scenario: Scenario | None, seed: int, latency_scale: float, clock: Callable[[], float],
                 rate_limits: RateLimits) -> None:
        self.scenario = scenario
        self.seed = seed
        self.latency_scale = latency_scale
        self.cache = PromptCache(clock)
        # A clock that runs faster than the wall asks clients to wait less: the SDK's retry sleep is real time.
        to_wall = getattr(clock, "wall_seconds", None) or (lambda seconds: seconds)
        self.limiter = RateLimiter(rate_limits, clock, to_wall)
        self._counter = 0

    def new_id(self, prefix: str) -> str:
        self._counter += 1
        digest = hashlib.blake2b(f"{self.seed}:{prefix}:{self._counter}".encode(), digest_size=12).hexdigest()
        return f"{prefix}_01{digest}"

    def model(self, body: dict[str, Any]) -> SimModel:
        model = find_model(body["model"])
        if model is None:
            raise ApiError(404, f"model: {body['model']}")
        return model

    def count_tokens(self, body: Any) -> int:
        if not isinstance(body, dict) or "model" not in body:
            raise invalid("model: Field required")
        check_messages(body)
        self.model(body)
        try:
            return flatten(body).total_tokens
        except PromptError as err:
            raise invalid(str(err)) from None

    def respond(self, body: Any, version: str, tag: SimTag | None, service_tier: str = "standard",
                at: float | None = None) -> Outcome:
        """`at`: the scenario time the request is stamped with (default: the clock's)."""
        check_message_body(body, version)
        model = self.model(body)
        if body["max_tokens"] > model.max_output_tokens:
            raise invalid(f"max_tokens: {body['max_tokens']} > {model.max_output_tokens}, which is the maximum "
                          f"allowed number of output tokens for {model.id}")
        try:
            prompt = flatten(body)
        except PromptError as err:
            raise invalid(str(err)) from None
        if prompt.total_tokens > model.context_window:
            raise invalid(f"prompt is too long: {prompt.total_tokens} tokens > {model.context_window} maximum")
        if tag is not None and self.scenario is not None and tag.task not in self.scenario.tasks:
            raise invalid(f"{TASK_HEADER}: unknown task {tag.task!r} (scenario {self.scenario.name!r} has "
                          f"{', '.join(self.scenario.tasks)})")
        headers = self.limiter.admit(prompt.total_tokens, body["max_tokens"], at)
        cache = self.cache.apply(model.id, prompt, model.info.cache_min_tokens, now=at)
        key = request_key(body)
        message_id = self.new_id("msg")
        reply = plan_reply(body, key, scenario=self.scenario, seed=self.seed, tag=tag, model=model.id,
                           input_tokens=prompt.total_tokens)
        when = timing(model, cache.input_tokens + cache.cache_creation, cache.cache_read,
                      unit(self.seed, key, self._counter, "ttft"), unit(self.seed, key, self._counter, "rate"),
                      self.latency_scale)
        message = {
            "model": model.response_model(body["model"]),
            "id": message_id,
            "type": "message",
            "role": "assistant",
            "content": reply.blocks,
            "stop_reason": reply.stop_reason,
            "stop_sequence": None,
            "usage": usage_json(cache, reply.output_tokens, service_tier),
        }
        return Outcome(message=message, reply=reply, cache=cache, timing=when, headers=headers)

    def settle(self, body: dict[str, Any], outcome: Outcome) -> None:
        """The reply is done: the rate-limit model gives back the output tokens it reserved and did not use."""
        self.limiter.settle(body["max_tokens"], outcome.reply.output_tokens)
