"""Builders shared by the tuner's decision tests."""

from __future__ import annotations

import numpy as np

from tuner._dataset import ModelStats, Quality


def model_stats(
    model: str = "claude-sonnet-4-6",
    *,
    lengths: np.ndarray | list[int] = (),
    censored: np.ndarray | list[bool] | None = None,
    sizes: np.ndarray | list[int] | None = None,
    calls: int | None = None,
    cost: float = 0.01,
    scores: np.ndarray | None = None,
    max_tokens: int | None = 1024,
    requested: int | None = None,
    caps: np.ndarray | None = None,
    sample_scores: np.ndarray | None = None,
    ttft_p95: float | None = None,
    explore_calls: int = 0,
) -> ModelStats:
    lengths = np.asarray(lengths, dtype=np.int64)
    n = calls if calls is not None else max(len(lengths), len(scores) if scores is not None else 0)
    quality = None
    if scores is None and sample_scores is not None:
        scores = np.asarray(sample_scores, float)
    if scores is not None and len(scores):
        quality = Quality(len(scores), float(np.mean(scores)), float(np.std(scores, ddof=1)))
    censored = np.zeros(len(lengths), bool) if censored is None else np.asarray(censored, bool)
    return ModelStats(
        task="t",
        model=model,
        calls=n,
        explore_calls=explore_calls,
        errors=0,
        truncated=int(censored.sum()),
        refusals=0,
        cancelled=0,
        cost_total=cost * n,
        mean_input=1000,
        mean_output=200,
        mean_cache_read=0,
        mean_cache_write=0,
        ttft_p95=ttft_p95,
        duration_p95=None,
        max_tokens=max_tokens,
        requested_max_tokens=requested or max_tokens,
        requested_model=model,
        quality=quality,
        lengths=lengths,
        sizes=np.full(len(lengths), 1000) if sizes is None else np.asarray(sizes, np.int64),
        censored=censored,
        caps=np.full(len(lengths), max_tokens or 0) if caps is None else np.asarray(caps, np.int64),
        scores=np.full(len(lengths), np.nan) if sample_scores is None else np.asarray(sample_scores, float),
        times=np.arange(len(lengths), dtype=np.int64) + 1,
    )
