"""The latency model as a pure function: no clocks, no sleeps."""

from __future__ import annotations

import pytest

from claude_sim._latency import timing
from claude_sim._models import find_model


def test_ttft_grows_with_uncached_input_and_cache_reads_are_cheap() -> None:
    sonnet = find_model("claude-sonnet-4-6")
    short = timing(sonnet, 1_000, 0, 0.5, 0.5, scale=1.0)
    long = timing(sonnet, 50_000, 0, 0.5, 0.5, scale=1.0)
    cached = timing(sonnet, 1_000, 49_000, 0.5, 0.5, scale=1.0)
    assert short.ttft_s < cached.ttft_s < long.ttft_s
    assert long.ttft_s - short.ttft_s > 5 * (cached.ttft_s - short.ttft_s)


def test_models_differ_in_speed_as_published() -> None:
    haiku = timing(find_model("claude-haiku-4-5"), 2_000, 0, 0.5, 0.5, scale=1.0)
    opus = timing(find_model("claude-opus-4-1"), 2_000, 0, 0.5, 0.5, scale=1.0)
    assert haiku.ttft_s < opus.ttft_s
    assert haiku.per_token_s < opus.per_token_s
    assert 1 / opus.per_token_s == pytest.approx(45)  # the row's output_tokens_per_s at the median draw


def test_scale_multiplies_and_zero_disables() -> None:
    model = find_model("claude-sonnet-4-5")
    full = timing(model, 3_000, 0, 0.9, 0.2, scale=1.0)
    fast = timing(model, 3_000, 0, 0.9, 0.2, scale=0.1)
    assert abs(fast.total(500) - full.total(500) * 0.1) < 1e-9
    assert timing(model, 3_000, 0, 0.9, 0.2, scale=0.0).total(500) == 0.0


def test_jitter_spreads_ttft_with_a_right_tail() -> None:
    model = find_model("claude-sonnet-4-6")
    draws = sorted(timing(model, 1_000, 0, (i + 0.5) / 200, 0.5, scale=1.0).ttft_s for i in range(200))
    median = draws[100]
    assert draws[0] < median < draws[-1]
    assert draws[-1] / median > median / draws[0] * 0.99  # lognormal: multiplicatively symmetric
