"""Expected cost per call of a task on any model, each model priced with the caching it would actually get.

A route is worth what the task would cost on the other model *with that model's own best caching*: a prefix
cacheable on one model may be below another's minimum cacheable length (1,024 tokens on Sonnet 4.6 against 4,096
on Haiku 4.5), so cached cost is compared with cached cost, never with observed uncached cost. The model is simple
and stated: the task's calls keep their observed input (uncached + cache reads + cache writes: the same request
whatever model answers it), the output is the model's own mean on this task when it has answered some of its calls
(its own traffic, exploration or shadow evaluation), else the current model's; the shared prefix is cached at the
TTL that is cheapest for that model (`_caching`), at that model's read/write prices.
"""

from __future__ import annotations

from dataclasses import dataclass

from otel_claude.catalog import Usage, cost_usd, resolve
from tuner._caching import CacheDecision, decide_cache
from tuner._dataset import ModelStats, PrefixStats

__all__ = ["CostEstimate", "estimate_cost"]

# Output lengths of a model on a task are its own once it has answered this many of its calls.
_OWN_LENGTHS = 20


@dataclass(frozen=True, kw_only=True)
class CostEstimate:
    model: str
    per_call: float  # expected $ per call with `cache.ttl` caching
    uncached_per_call: float  # the same without any caching of the shared prefix
    cache: CacheDecision
    output_tokens: float  # the mean output length used
    own_lengths: bool  # output lengths observed on this model (else borrowed from the current model)


def estimate_cost(
    model: str, stats: list[ModelStats], prefixes: list[PrefixStats], reference: ModelStats
) -> CostEstimate | None:
    """The task's expected cost per call on `model`; None for a model the catalog does not price.

    `stats`: every model observed on the task; `reference`: the traffic whose input mix stands for the task (the
    current model's calls).
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
    return CostEstimate(
        model=info.model,
        per_call=max(uncached - cache.saving_per_call * covered, 0.0),
        uncached_per_call=uncached,
        cache=cache,
        output_tokens=float(output),
        own_lengths=completed,
    )
