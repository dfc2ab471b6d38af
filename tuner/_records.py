"""The call table: every call span reduced to a compact row, stored column-wise.

Readers of every format hand over a span as (name, start, end, attributes with plain values); this module decides
what a span means (call, feedback, paired verdict, neither) so that meaning lives in one place. Columns are `array`
buffers and strings are interned to small ints, so a million calls cost tens of megabytes instead of a million dicts.

`COLUMNS` is the whole layout: a column's name, its storage type and how a row value is read from a span. The
buffers, the append and the numpy view all follow from it, so adding a column is one line there.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Mapping
from dataclasses import dataclass, make_dataclass
from typing import Any

import numpy as np

from otel_claude import semconv as sc

# Outcome codes per call; TRUNCATED rows are right-censored output lengths. CANCELLED calls were abandoned by the
# caller: neither an error of the model nor a completed answer, so they count in no rate and give no length.
OK, TRUNCATED, REFUSAL, ERROR, CONTEXT_EXCEEDED, INCOMPLETE, CANCELLED = range(7)
_FINISH = {
    "end_turn": OK,
    "tool_use": OK,
    "stop_sequence": OK,
    "pause_turn": OK,
    "max_tokens": TRUNCATED,
    "refusal": REFUSAL,
    "model_context_window_exceeded": CONTEXT_EXCEEDED,
}
# Before `otel_claude.cancelled` existed, the instrumentor recorded a cancellation as error.type = the exception.
CANCELLATION_ERRORS = ("CancelledError", "GeneratorExit", "KeyboardInterrupt")
# Cache writes under today's name or the newer one (only the newer with gen_ai_latest_experimental); same value.
CACHE_WRITE_ATTRIBUTES = (sc.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS, sc.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS)
# Columns are int64 arrays: a larger value would raise OverflowError halfway through appending a row.
_INT64_MAX = 2**63 - 1
FLAG_EXPLORATION = 1
# Who made a call: the application, or the instrumentor itself for paired evaluation (a candidate's shadow copy of
# an application call, or an LLM judge's comparison). Only application calls are the task's traffic.
APPLICATION, SHADOW, JUDGE = range(3)
_ROLES = {sc.ROLE_SHADOW: SHADOW, sc.ROLE_JUDGE: JUDGE}
UNLABELLED = "(unlabelled)"
# Calls whose task label arrived after MAX_TASKS distinct labels had been seen: counted, never tuned.
UNTRACKED = "(labels past the limit)"
MAX_TASKS = 20_000


class BadSpan(ValueError):
    """A span that claims to be a call or feedback but cannot be read; the reader adds file and line."""


class Interner:
    """Strings to dense ints, so columns hold small numbers and each distinct string is stored once.

    With a `limit`, strings past it share the id of `overflow`: memory stays bounded however many distinct values
    the input holds (task labels are free text; a service may put user ids in them).
    """

    def __init__(self, limit: int | None = None, overflow: str = "") -> None:
        self.ids: dict[str, int] = {}
        self.names: list[str] = []
        self.limit = limit
        self.overflow = overflow
        self.folded = 0  # values mapped to `overflow`

    def __call__(self, name: str) -> int:
        found = self.ids.get(name)
        if found is None:
            if self.limit is not None and len(self.names) >= self.limit and name != self.overflow:
                self.folded += 1
                return self(self.overflow)
            found = self.ids[name] = len(self.names)
            self.names.append(name)
        return found


def _int(attrs: Mapping[str, Any], key: str, missing: int | None) -> int | None:
    value = attrs.get(key)
    if value is None:
        return missing
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise BadSpan(f"attribute {key!r} must be an integer, got {value!r}")
    try:
        number = int(value)
    except (ValueError, OverflowError):  # int(float("inf")) overflows
        raise BadSpan(f"attribute {key!r} must be an integer, got {value!r}") from None
    if not 0 <= number <= _INT64_MAX:
        raise BadSpan(f"attribute {key!r} must be an integer in [0, 2**63), got {number}")
    return number


def _float(attrs: Mapping[str, Any], key: str) -> float:
    value = attrs.get(key)
    if value is None:
        return float("nan")
    if isinstance(value, bool):
        raise BadSpan(f"attribute {key!r} must be a number, got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise BadSpan(f"attribute {key!r} must be a number, got {value!r}") from None


def is_cancelled(attrs: Mapping[str, Any]) -> bool:
    return attrs.get(sc.CANCELLED) is True or attrs.get(sc.ERROR_TYPE) in CANCELLATION_ERRORS


def key_of(fingerprint: Any) -> int:
    """A 16-hex-digit conversation key as an int64 (0: none); keys are compared, never shown, so no interning."""
    if not isinstance(fingerprint, str) or not fingerprint:
        return 0
    try:
        value = int(fingerprint, 16)
    except ValueError:
        raise BadSpan(f"conversation key {fingerprint!r} is not hexadecimal") from None
    if not 0 <= value < 2**64:
        raise BadSpan(f"conversation key {fingerprint!r} is longer than 16 hex digits")
    return value - 2**64 if value > _INT64_MAX else value


def _outcome(attrs: Mapping[str, Any]) -> int:
    if is_cancelled(attrs):
        return CANCELLED
    if attrs.get(sc.ERROR_TYPE) is not None:
        return ERROR
    reasons = attrs.get(sc.GEN_AI_RESPONSE_FINISH_REASONS)
    reason = (reasons[0] if reasons else None) if isinstance(reasons, (list, tuple)) else reasons
    if reason is None:
        return INCOMPLETE
    code = _FINISH.get(str(reason), OK)
    if code == OK and attrs.get(sc.STREAM_COMPLETE) is False:
        return INCOMPLETE
    return code


# --- readers: a row value from (attributes, start ns, end ns); None means "absent, use the fallback column" ------

Reader = Callable[[Mapping[str, Any], int, int], Any]


def _ints(*keys: str, missing: int | None) -> Reader:
    """The first of `keys` present, as an integer count."""

    def read(attrs: Mapping[str, Any], _start: int, _end: int) -> int | None:
        for key in keys:
            if attrs.get(key) is not None:
                return _int(attrs, key, missing)
        return missing

    return read


def _number(key: str) -> Reader:
    return lambda attrs, _start, _end: _float(attrs, key)


def _text(key: str, missing: str | None) -> Reader:
    def read(attrs: Mapping[str, Any], _start: int, _end: int) -> str | None:
        value = attrs.get(key)
        return value if isinstance(value, str) and value else missing

    return read


def _exploration(attrs: Mapping[str, Any], _start: int, _end: int) -> int:
    return FLAG_EXPLORATION if attrs.get(sc.POLICY_EXPLORATION) is True else 0


def _turn(attrs: Mapping[str, Any], _start: int, _end: int) -> int:
    """The conversation turn, -1 for a call without conversation keys."""
    if sc.CONVERSATION_FINGERPRINT not in attrs:
        return -1
    return _int(attrs, sc.CONVERSATION_TURN, -1)  # type: ignore[return-value]


def _role(attrs: Mapping[str, Any], _start: int, _end: int) -> int:
    return _ROLES.get(attrs.get(sc.EVALUATION_ROLE), APPLICATION)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Column:
    """One column of the call table.

    `typecode` is the `array` typecode, which numpy reads as the same C type. `names` interns the value through the
    table's interner of that name (the column holds the id). `fallback` names an earlier column whose value is used
    when this one reads None (a policy records the caller's own value only when it changed it).
    """

    name: str
    typecode: str
    read: Reader
    keys: tuple[str, ...] = ()
    names: str | None = None
    fallback: str | None = None


COLUMNS: tuple[Column, ...] = (
    Column("start_ns", "q", lambda _attrs, start, _end: start),
    Column("duration", "d", lambda _attrs, start, end: (end - start) / 1e9),
    Column("model", "i", _text(sc.GEN_AI_REQUEST_MODEL, None), (sc.GEN_AI_REQUEST_MODEL,), names="models"),
    Column("task", "i", _text(sc.TASK, UNLABELLED), (sc.TASK,), names="tasks"),
    Column("prefix", "i", _text(sc.PREFIX_FINGERPRINT, None), (sc.PREFIX_FINGERPRINT,), names="prefixes"),
    Column("outcome", "b", lambda attrs, _start, _end: _outcome(attrs),
           (sc.CANCELLED, sc.ERROR_TYPE, sc.GEN_AI_RESPONSE_FINISH_REASONS, sc.STREAM_COMPLETE)),
    Column("flags", "b", _exploration, (sc.POLICY_EXPLORATION,)),
    Column("role", "b", _role, (sc.EVALUATION_ROLE,)),
    Column("conversation", "q", lambda attrs, _start, _end: key_of(attrs.get(sc.CONVERSATION_FINGERPRINT)),
           (sc.CONVERSATION_FINGERPRINT,)),
    Column("parent", "q", lambda attrs, _start, _end: key_of(attrs.get(sc.CONVERSATION_PARENT)),
           (sc.CONVERSATION_PARENT,)),
    Column("turn", "q", _turn, (sc.CONVERSATION_FINGERPRINT, sc.CONVERSATION_TURN)),
    Column("history_estimate", "q", _ints(sc.CONVERSATION_HISTORY_TOKENS, missing=0),
           (sc.CONVERSATION_HISTORY_TOKENS,)),
    Column("input_tokens", "q", _ints(sc.GEN_AI_USAGE_INPUT_TOKENS, missing=0), (sc.GEN_AI_USAGE_INPUT_TOKENS,)),
    Column("output_tokens", "q", _ints(sc.GEN_AI_USAGE_OUTPUT_TOKENS, missing=-1), (sc.GEN_AI_USAGE_OUTPUT_TOKENS,)),
    Column("cache_read", "q", _ints(sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS, missing=0),
           (sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,)),
    Column("cache_write", "q", _ints(*CACHE_WRITE_ATTRIBUTES, missing=0), CACHE_WRITE_ATTRIBUTES),
    Column("max_tokens", "q", _ints(sc.GEN_AI_REQUEST_MAX_TOKENS, missing=0), (sc.GEN_AI_REQUEST_MAX_TOKENS,)),
    Column("requested_max_tokens", "q", _ints(sc.POLICY_REQUESTED_MAX_TOKENS, missing=None),
           (sc.POLICY_REQUESTED_MAX_TOKENS,), fallback="max_tokens"),
    Column("requested_model", "i", _text(sc.POLICY_REQUESTED_MODEL, None), (sc.POLICY_REQUESTED_MODEL,),
           names="models", fallback="model"),
    Column("input_estimate", "q", _ints(sc.INPUT_TOKENS_ESTIMATE, missing=None), (sc.INPUT_TOKENS_ESTIMATE,),
           fallback="input_tokens"),
    Column("prefix_tokens", "q", _ints(sc.PREFIX_TOKENS_ESTIMATE, missing=0), (sc.PREFIX_TOKENS_ESTIMATE,)),
    Column("cost", "d", _number(sc.COST_USD), (sc.COST_USD,)),
    Column("ttft", "d", _number(sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK), (sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK,)),
    Column("stream", "b", lambda attrs, _start, _end: 1 if attrs.get(sc.GEN_AI_REQUEST_STREAM) is True else 0,
           (sc.GEN_AI_REQUEST_STREAM,)),
)
_POSITION = {column.name: number for number, column in enumerate(COLUMNS)}
_FALLBACKS = tuple((_POSITION[c.name], _POSITION[c.fallback]) for c in COLUMNS if c.fallback is not None)
_MODEL = _POSITION["model"]

# Attribute names read from spans (docs/telemetry.md); readers keep only these, which is what keeps ingest cheap.
_VERDICT_KEYS = (
    sc.TASK, sc.EVALUATION_INCUMBENT_MODEL, sc.EVALUATION_CANDIDATE_MODEL, sc.GEN_AI_EVALUATION_SCORE_LABEL,
)
WANTED = frozenset(
    {key for column in COLUMNS for key in column.keys}
    | {sc.GEN_AI_OPERATION_NAME, sc.GEN_AI_RESPONSE_ID, sc.GEN_AI_EVALUATION_SCORE_VALUE, *_VERDICT_KEYS}
)
UNSETTLED = "unsettled"


@dataclass(frozen=True)
class Verdict:
    """One paired verdict: d = quality(candidate) - quality(incumbent) on one request, as a grader judged it."""

    task: str
    incumbent: str
    candidate: str
    start_ns: int
    value: float
    settled: bool

# The frozen table: the interned names, one numpy array per column, and the joined feedback score per row.
Columns = make_dataclass(
    "Columns",
    [("tasks", list[str]), ("models", list[str]), ("prefixes", list[str])]
    + [(column.name, np.ndarray) for column in COLUMNS]
    + [("score", np.ndarray)],
    frozen=True,
    namespace={"__len__": lambda self: len(self.start_ns), "__module__": __name__},
)


class CallTable:
    """Accumulates call rows and feedback scores from any reader."""

    def __init__(self, since_ns: int | None = None, until_ns: int | None = None) -> None:
        self.tasks = Interner(limit=MAX_TASKS, overflow=UNTRACKED)
        self.models = Interner()
        self.prefixes = Interner()
        self._since = since_ns if since_ns is not None else -1
        self._until = until_ns if until_ns is not None else _INT64_MAX + 1
        self._columns = [array(column.typecode) for column in COLUMNS]
        self._interners = [getattr(self, c.names) if c.names else None for c in COLUMNS]
        self._row_of_response: dict[str, int] = {}
        self._scores: dict[str, list[float]] = {}
        self.verdicts: list[Verdict] = []
        self.spans = 0
        self.outside = 0  # spans whose start falls outside the data window

    def add_span(self, name: str, start_ns: int, end_ns: int, attrs: Mapping[str, Any]) -> None:
        """One span of any kind; raises BadSpan for a call or feedback span that cannot be read."""
        if not self._since <= start_ns < self._until:
            self.outside += 1
            return
        self.spans += 1
        if attrs.get(sc.GEN_AI_OPERATION_NAME) == sc.CHAT_OPERATION:
            self._add_call(start_ns, end_ns, attrs)
        elif name == sc.VERDICT_SPAN:  # before feedback: a verdict carries a score too, of a difference
            self._add_verdict(start_ns, attrs)
        elif name == sc.FEEDBACK_SPAN or sc.GEN_AI_EVALUATION_SCORE_VALUE in attrs:
            self._add_feedback(attrs)

    def _add_call(self, start_ns: int, end_ns: int, attrs: Mapping[str, Any]) -> None:
        if end_ns < start_ns or start_ns <= 0 or end_ns > _INT64_MAX:
            raise BadSpan(f"bad span times: start {start_ns}, end {end_ns}")
        # Read every column before appending anything, so a bad span never leaves a half-written row.
        row = [column.read(attrs, start_ns, end_ns) for column in COLUMNS]
        if row[_MODEL] is None:
            raise BadSpan(f"call span without {sc.GEN_AI_REQUEST_MODEL!r}")
        for position, fallback in _FALLBACKS:
            if row[position] is None:
                row[position] = row[fallback]
        response_id = attrs.get(sc.GEN_AI_RESPONSE_ID)
        if isinstance(response_id, str) and response_id:
            self._row_of_response[response_id] = len(self._columns[0])
        for buffer, interner, value in zip(self._columns, self._interners, row, strict=True):
            if interner is not None:
                value = interner(value) if value is not None else -1
            buffer.append(value)

    def _add_feedback(self, attrs: Mapping[str, Any]) -> None:
        response_id = attrs.get(sc.GEN_AI_RESPONSE_ID)
        if not isinstance(response_id, str) or not response_id:
            raise BadSpan(f"feedback span without {sc.GEN_AI_RESPONSE_ID!r}")
        score = _float(attrs, sc.GEN_AI_EVALUATION_SCORE_VALUE)
        if score != score:
            raise BadSpan(f"feedback span without a numeric {sc.GEN_AI_EVALUATION_SCORE_VALUE!r}")
        self._scores.setdefault(response_id, []).append(score)

    def _add_verdict(self, start_ns: int, attrs: Mapping[str, Any]) -> None:
        task, incumbent, candidate, label = (attrs.get(key) for key in _VERDICT_KEYS)
        if not all(isinstance(v, str) and v for v in (incumbent, candidate)):
            raise BadSpan(
                f"verdict span without {sc.EVALUATION_INCUMBENT_MODEL!r} and {sc.EVALUATION_CANDIDATE_MODEL!r}"
            )
        value = _float(attrs, sc.GEN_AI_EVALUATION_SCORE_VALUE)
        if not -1.0 <= value <= 1.0:  # NaN fails too
            raise BadSpan(f"verdict span whose {sc.GEN_AI_EVALUATION_SCORE_VALUE!r} is not in [-1, 1]: {value!r}")
        task = self.tasks.names[self.tasks(task)] if isinstance(task, str) and task else UNLABELLED
        self.verdicts.append(Verdict(task, incumbent, candidate, start_ns, value, label != UNSETTLED))  # type: ignore[arg-type]

    @property
    def calls(self) -> int:
        return len(self._columns[0])

    @property
    def feedback(self) -> int:
        return sum(len(scores) for scores in self._scores.values())

    def columns(self) -> tuple[Any, int]:
        """The table as numpy columns (a `Columns`), with feedback joined by response id; and unmatched feedback."""
        score = np.full(self.calls, np.nan)
        unmatched = 0
        for response_id, scores in self._scores.items():
            row = self._row_of_response.get(response_id)
            if row is None:
                unmatched += len(scores)
            else:
                score[row] = sum(scores) / len(scores)
        arrays = {
            column.name: np.frombuffer(buffer, dtype=np.dtype(column.typecode))
            for column, buffer in zip(COLUMNS, self._columns, strict=True)
        }
        columns = Columns(
            tasks=list(self.tasks.names),
            models=list(self.models.names),
            prefixes=list(self.prefixes.names),
            score=score,
            **arrays,
        )
        return columns, unmatched
