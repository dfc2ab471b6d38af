"""The model catalog: prices, prompt-cache minimums, limits and name resolution, read from `data/*.csv`.

Prices change more often than code, so they live in data files with their date and source. Every consumer
(cost on spans, the simulator, the tuner's what-if costs) resolves names through `resolve()` so a dated snapshot,
an alias or a Bedrock/Vertex ID costs the same as the plain model ID.
"""

from __future__ import annotations

import csv
import difflib
import io
import os
import re
from dataclasses import dataclass, replace
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import NamedTuple

__all__ = ["ModelInfo", "Usage", "catalog", "closest_model", "cost_usd", "load_catalog", "resolve"]

_PER_MILLION = 1e-6
_DATE_SUFFIX = re.compile(r"-(\d{8})$")
_PROVIDER_PREFIX = re.compile(r"^(?:(?:us|eu|apac|au|jp|global)\.)?anthropic\.")
_BEDROCK_VERSION = re.compile(r"-v\d+(?::\d+)?$")
_LIMITS = ("context_window", "max_output_tokens", "max_nonstreaming_tokens")


@dataclass(frozen=True)
class ModelInfo:
    """One catalog row; prices in USD per million tokens."""

    model: str
    display_name: str
    input: float
    output: float
    cache_write_5m: float
    cache_write_1h: float
    cache_read: float
    cache_min_tokens: int
    snapshot_id: str | None = None
    long_context_threshold: int | None = None
    long_context_multiplier: float = 1.0
    fast_multiplier: float | None = None
    context_window: int | None = None
    max_output_tokens: int | None = None
    max_nonstreaming_tokens: int | None = None  # the SDK refuses a larger non-streamed max_tokens

    def max_tokens_limit(self, streaming: bool) -> int | None:
        """The largest max_tokens a request to this model can carry (None: unknown)."""
        if streaming or self.max_nonstreaming_tokens is None:
            return self.max_output_tokens
        if self.max_output_tokens is None:
            return self.max_nonstreaming_tokens
        return min(self.max_output_tokens, self.max_nonstreaming_tokens)

    @property
    def read_multiplier(self) -> float:
        return self.cache_read / self.input

    @property
    def write_multiplier_5m(self) -> float:
        return self.cache_write_5m / self.input

    @property
    def write_multiplier_1h(self) -> float:
        return self.cache_write_1h / self.input


class Usage(NamedTuple):
    """The token counts a cost depends on, as the API reports them (input excludes cache reads and writes).

    A NamedTuple rather than a frozen dataclass: one is built per traced call, and this is several times cheaper.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_5m_tokens: int = 0
    cache_write_1h_tokens: int = 0
    batch: bool = False
    fast: bool = False


def _rows(text: str) -> list[dict[str, str]]:
    lines = [line for line in io.StringIO(text) if line.strip() and not line.lstrip().startswith("#")]
    return list(csv.DictReader(lines))


def _opt_int(value: str | None) -> int | None:
    return int(value) if value else None


def _parse_models(text: str, origin: str) -> dict[str, ModelInfo]:
    models: dict[str, ModelInfo] = {}
    for number, row in enumerate(_rows(text), start=1):
        try:
            info = ModelInfo(
                model=row["model"].strip(),
                display_name=(row.get("display_name") or row["model"]).strip(),
                input=float(row["input"]),
                output=float(row["output"]),
                cache_write_5m=float(row["cache_write_5m"]),
                cache_write_1h=float(row["cache_write_1h"]),
                cache_read=float(row["cache_read"]),
                cache_min_tokens=int(row.get("cache_min_tokens") or 1024),
                snapshot_id=(row.get("snapshot_id") or None),
                long_context_threshold=_opt_int(row.get("long_context_threshold")),
                long_context_multiplier=float(row.get("long_context_multiplier") or 1.0),
                fast_multiplier=float(row["fast_multiplier"]) if row.get("fast_multiplier") else None,
                context_window=_opt_int(row.get("context_window")),
                max_output_tokens=_opt_int(row.get("max_output_tokens")),
                max_nonstreaming_tokens=_opt_int(row.get("max_nonstreaming_tokens")),
            )
        except (KeyError, ValueError, TypeError) as err:
            raise ValueError(f"{origin}: data row {number}: {err!r}") from None
        if info.input <= 0:
            raise ValueError(f"{origin}: data row {number}: input price must be positive")
        models[info.model] = info
    return models


class Catalog:
    """Models by canonical ID plus the alias table; `resolve` accepts any spelling the API or a cloud uses."""

    def __init__(self, models: dict[str, ModelInfo], aliases: dict[str, str]) -> None:
        self.models = models
        self._aliases = dict(aliases)
        self._resolved: dict[str, ModelInfo | None] = {}
        for info in models.values():
            if info.snapshot_id:
                self._aliases.setdefault(info.snapshot_id, info.model)

    def resolve(self, model_id: str | None) -> ModelInfo | None:
        if not model_id:
            return None
        # Called for every traced call: a dict hit is cheaper than lru_cache's hashing of (self, model_id).
        try:
            return self._resolved[model_id]
        except KeyError:
            pass
        info = self._resolve(model_id)
        if len(self._resolved) < 4096:  # bounded: model ids come from responses
            self._resolved[model_id] = info
        return info

    def _resolve(self, model_id: str) -> ModelInfo | None:
        name = model_id.strip().lower()
        name = _PROVIDER_PREFIX.sub("", name)
        name = _BEDROCK_VERSION.sub("", name)
        name = name.split("@", 1)[0]
        for candidate in (name, _DATE_SUFFIX.sub("", name), name.removesuffix("-latest")):
            target = self._aliases.get(candidate, candidate)
            if target in self.models:
                return self.models[target]
        return None

    def closest(self, model_id: str) -> str | None:
        """The catalog name (model ID or alias) nearest to a name `resolve` does not know: a typo's likely fix."""
        name = _PROVIDER_PREFIX.sub("", model_id.strip().lower())
        names = sorted({*self.models, *self._aliases})
        found = difflib.get_close_matches(name, names, n=1, cutoff=0.75)
        return found[0] if found else None

    def with_overrides(self, path: str | os.PathLike[str]) -> Catalog:
        """A catalog where the rows of a user's CSV (same columns as models.csv) replace or add models."""
        text = Path(path).read_text(encoding="utf-8")
        overrides = _parse_models(text, str(path))
        for name, info in overrides.items():
            base = self.models.get(name)
            if base is not None:  # a price file need not repeat the limits
                overrides[name] = replace(info, **{limit: getattr(base, limit) for limit in _LIMITS
                                                   if getattr(info, limit) is None})
        return Catalog({**self.models, **overrides}, self._aliases)


def _data(name: str) -> str:
    return resources.files("otel_claude").joinpath("data").joinpath(name).read_text(encoding="utf-8")


def load_catalog(overrides: str | os.PathLike[str] | None = None) -> Catalog:
    models = _parse_models(_data("models.csv"), "otel_claude/data/models.csv")
    aliases = {row["alias"].strip(): row["model"].strip() for row in _rows(_data("model_aliases.csv"))}
    base = Catalog(models, aliases)
    return base.with_overrides(overrides) if overrides else base


@lru_cache(maxsize=1)
def catalog() -> Catalog:
    """The process-wide catalog: built-in data, plus the CSV named by `OTEL_CLAUDE_PRICES` if set."""
    return load_catalog(os.environ.get("OTEL_CLAUDE_PRICES") or None)


def resolve(model_id: str | None) -> ModelInfo | None:
    return catalog().resolve(model_id)


def closest_model(model_id: str) -> str | None:
    """For an unknown model name, the known name it was most likely meant to be (None: nothing close)."""
    return catalog().closest(model_id)


def cost_usd(info: ModelInfo, usage: Usage) -> float:
    """The price of one call in USD."""
    total_input = (
        usage.input_tokens + usage.cache_read_tokens + usage.cache_write_5m_tokens + usage.cache_write_1h_tokens
    )
    factor = 1.0
    if info.long_context_threshold is not None and total_input > info.long_context_threshold:
        factor *= info.long_context_multiplier
    if usage.fast and info.fast_multiplier:
        factor *= info.fast_multiplier
    if usage.batch:
        # The batch discount stacks with the cache multipliers (pricing docs), so it scales every term.
        factor *= 0.5
    dollars = (
        usage.input_tokens * info.input * factor
        + usage.output_tokens * info.output * factor
        + usage.cache_read_tokens * info.cache_read * factor
        + usage.cache_write_5m_tokens * info.cache_write_5m * factor
        + usage.cache_write_1h_tokens * info.cache_write_1h * factor
    )
    return dollars * _PER_MILLION
