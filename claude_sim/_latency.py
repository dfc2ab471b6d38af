"""How long a reply takes: TTFT grows with uncached input, cache reads are cheap, then tokens at the model's rate.

Jitter is drawn from the request's own random stream so timings are reproducible for a seed. `scale` multiplies
every delay: 0 disables latency (tests, benchmarks), 0.02 runs a demo 50x faster than real time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from claude_sim._models import SimModel, find_model
from claude_sim._rng import lognormal


@dataclass(frozen=True)
class Timing:
    ttft_s: float
    per_token_s: float

    def total(self, output_tokens: int) -> float:
        return self.ttft_s + self.per_token_s * output_tokens


def timing(model: SimModel, uncached_tokens: int, cached_tokens: int, u_ttft: float, u_rate: float,
           scale: float) -> Timing:
    if scale <= 0:
        return Timing(0.0, 0.0)
    base = model.ttft_s + model.prefill_s_per_1k * uncached_tokens / 1000 + model.cached_s_per_1k * cached_tokens / 1000
    # A lognormal with median 1 keeps delays positive and gives the occasional slow outlier seen in production.
    ttft = base * lognormal(u_ttft, 1.0, math.log1p(model.jitter))
    rate = model.output_tokens_per_s * lognormal(u_rate, 1.0, math.log1p(model.jitter) / 2)
    return Timing(ttft_s=ttft * scale, per_token_s=scale / rate)


def modelled_latency(model_id: str, input_tokens: int, cache_read_tokens: int,
                     output_tokens: int) -> tuple[float, float] | None:
    """(time to first token, whole duration) in real-time seconds that the latency model gives a call of this shape
    at its median jitter; None for a model the simulator does not serve. `input_tokens` counts every input token
    (cache reads and writes included). What a run's policy changes (model, cached prefix, output length) moves these;
    the load of the machine running an accelerated simulation does not."""
    model = find_model(model_id)
    if model is None:
        return None
    when = timing(model, max(input_tokens - cache_read_tokens, 0), cache_read_tokens, 0.5, 0.5, 1.0)
    return when.ttft_s, when.total(output_tokens)
