"""Expected cost per call of a task on any model, each model priced with the caching it would actually get.

A route is worth what the task would cost on the other model *with that model's own best caching*: a prefix
cacheable on one model may be below another's minimum cacheable length (1,024 tokens on Sonnet 4.6 against 4,096
on Haiku 4.5), so cached cost is compared with cached cost, never with observed uncached cost. The model is simple
and stated: the task's calls keep their observed input (uncached + cache reads + cache writes: the same request
whatever model answers it), the output is the model's own mean on this task when it has answered some of its calls
(its own traffic, exploration or shadow evaluation), else the current model's; the shared prefix is cached at the
TTL that is cheapest for that model (`_caching`), at that model's read/write prices, and the resent history of
conversations at the conversation TTL that is cheapest beside it (`_conversation`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from otel_claude.catalog import Usage, cost_usd, resolve
from tuner._caching import CacheDecision, decide_cache
from tuner._conversation import ConversationDecision, decide_conversation_cache
from tuner._dataset import ConversationStats, ModelStats, PrefixStats

__all__ = ["CostEstimate", "estimate_cost"]

# Output lengths of a model on a task are its own once it has answered this many of its calls.
_OWN_LENGTHS = 20
# Share of resent history the cache already serves above which a task counts as caching its conversations today.
_CACHING_HISTORY = 0.05


@dataclass(frozen=True, kw_only=True)
class CostEstimate:
    model: str
    per_call: float  # expected $ per call with `cache.ttl` caching of the shared prefix and `conversation.ttl`'s
    uncached_per_call: float  # the same without any caching
    cache: CacheDecision
    conversation: ConversationDecision
    output_tokens: float  # the mean output length used
    own_lengths: bool  # output lengths observed on this model (else borrowed from the current model)
    # Of the caching savings in `per_call`, what the observed traffic already gets today (its callers or an earlier
    # policy already cache): the task's observed cost includes it, so a decision must not count it again.
    realized: float = 0.0


def estimate_cost(
    model: str, stats: list[ModelStats], prefixes: list[PrefixStats], reference: ModelStats,
    conversations: ConversationStats | None = None,
) -> CostEstimate | None:
    """The task's expected cost per call on `model`; None for a model the catalog does not price.

    `stats`: every model observed on the task; `reference`: the traffic whose input mix stands for the task (the
    current model's calls); `conversations`: the task's conversation statistics, when its calls carry the keys.
    """
    info = resolve(model)
    if info is None:
        return None
    own = next((s for s in stats if s.model == model), None)
    completed = own is not None and len(own.lengths) >= _OWN_LENGTHS
    output = own.mean_output if completed and own is not None else reference.mean_output
    total_input = reference.mean_input + reference.mean_cache_read + reference.mean_cache_write
    # Means, not rounded to whole tokens: a mean near .5 would round differently under float noise between readers.
    uncached = cost_usd(info, Usage(input_tokens=total_input, output_tokens=output))  # type: ignore[arg-type]
    cache = decide_cache(prefixes, model)
    # The cache's saving is per call that carries a prefix; calls without tools or a system prompt save nothing.
    calls = sum(s.calls for s in stats)
    covered = min(sum(p.calls for p in prefixes) / calls, 1.0) if calls else 0.0
    cache, conversation = _with_conversation(conversations, info.model, cache, calls)
    shared = cache.saving_per_call * covered
    realized = shared if any(s.mean_cache_read > 0 for s in stats) else 0.0
    if conversations is not None and conversations.history_read > _CACHING_HISTORY * conversations.history_tokens:
        realized += conversation.saving_per_call
    return CostEstimate(
        model=info.model,
        per_call=max(uncached - shared - conversation.saving_per_call, 0.0),
        uncached_per_call=uncached,
        cache=cache,
        conversation=conversation,
        output_tokens=float(output),
        own_lengths=completed,
        realized=realized,
    )


def _with_conversation(stats: ConversationStats | None, model: str, cache: CacheDecision,
                       calls: int) -> tuple[CacheDecision, ConversationDecision]:
    """The conversation TTL chosen with the shared prefix's; the shared-prefix decision comes back moved to 1h when a
    1h conversation pays for both (the API wants every 1h breakpoint before any 5m one)."""
    relative = cache.evidence.get("expected_prefix_cost_relative")
    relatives = {str(k): float(v) for k, v in relative.items()} if isinstance(relative, dict) else None
    decision = decide_conversation_cache(stats, model, cache.ttl, relatives, calls)
    if decision.ttl != "none" and stats is not None and stats.history_read > _CACHING_HISTORY * stats.history_tokens:
        decision = replace(
            decision, reason=decision.reason + " (already caching conversations: the observed cost includes it)"
        )
    if decision.ttl != "none" and decision.prefix_ttl not in (None, cache.ttl):
        cache = replace(cache, ttl=decision.prefix_ttl,
                        reason=f"{cache.reason}; {decision.prefix_ttl} beside the conversation's {decision.ttl}")
    return cache, decision
