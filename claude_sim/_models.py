"""The simulator's model table (release dates, latency parameters) joined with the shared model catalog (prices,
cache minimums, context and output limits)."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from otel_claude.catalog import ModelInfo, resolve

_ORIGIN = "claude_sim/data/models.csv"


@dataclass(frozen=True)
class SimModel:
    info: ModelInfo  # prices, cache minimum and limits, from the shared catalog
    created_at: str
    ttft_s: float
    prefill_s_per_1k: float
    cached_s_per_1k: float
    output_tokens_per_s: float
    jitter: float

    @property
    def id(self) -> str:
        return self.info.model

    @property
    def context_window(self) -> int:
        return self.info.context_window or 0

    @property
    def max_output_tokens(self) -> int:
        return self.info.max_output_tokens or 0

    def response_model(self, requested: str) -> str:
        """The API echoes a dated snapshot for an alias of an older model, and the requested ID otherwise."""
        if self.info.snapshot_id and requested == self.info.model:
            return self.info.snapshot_id
        return requested


def _parse(text: str) -> dict[str, SimModel]:
    lines = [line for line in io.StringIO(text) if line.strip() and not line.startswith("#")]
    models: dict[str, SimModel] = {}
    for number, row in enumerate(csv.DictReader(lines), start=1):
        info = resolve(row.get("model"))
        if info is None:
            raise ValueError(f"{_ORIGIN}: data row {number}: model {row.get('model')!r} is not in the price catalog")
        if not info.context_window or not info.max_output_tokens:
            raise ValueError(f"{_ORIGIN}: data row {number}: the catalog has no limits for {info.model}")
        try:
            models[info.model] = SimModel(
                info=info,
                created_at=row["created_at"],
                ttft_s=float(row["ttft_s"]),
                prefill_s_per_1k=float(row["prefill_s_per_1k"]),
                cached_s_per_1k=float(row["cached_s_per_1k"]),
                output_tokens_per_s=float(row["output_tokens_per_s"]),
                jitter=float(row["jitter"]),
            )
        except (KeyError, ValueError) as err:
            raise ValueError(f"{_ORIGIN}: data row {number}: {err!r}") from None
    return models


@lru_cache(maxsize=1)
def sim_models() -> dict[str, SimModel]:
    return _parse(resources.files("claude_sim").joinpath("data", "models.csv").read_text(encoding="utf-8"))


def find_model(model_id: str) -> SimModel | None:
    info = resolve(model_id)
    return sim_models().get(info.model) if info else None
