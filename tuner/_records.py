"""The call table: every call span reduced to a compact row, stored column-wise.

Readers of every format hand over a span as (name, start, end, attributes with plain values); this module decides
what a span means (call, feedback, neither) so that meaning lives in one place. Columns are `array` buffers and
strings are interned to small ints, so a million calls cost tens of megabytes instead of a million dicts.
"""

from __future__ import annotations

from array import array
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

# Outcome codes per call; TRUNCATED rows are right-censored output lengths.
OK, TRUNCATED, REFUSAL, ERROR, CONTEXT_EXCEEDED, INCOMPLETE = range(6)
_FINISH = {
    "end_turn": OK,
    "tool_use": OK,
    "stop_sequence": OK,
    "pause_turn": OK,
    "max_tokens": TRUNCATED,
    "refusal": REFUSAL,
    "model_context_window_exceeded": CONTEXT_EXCEEDED,
}
# Columns are int64 arrays: a larger value would raise OverflowError halfway through appending a row.
_INT64_MAX = 2**63 - 1
FLAG_EXPLORATION = 1

# Attribute names read from spans (docs/telemetry.md); readers keep only these, which is what keeps ingest cheap.
A_OPERATION = "gen_ai.operation.name"
A_MODEL = "gen_ai.request.model"
A_MAX_TOKENS = "gen_ai.request.max_tokens"
# Under a policy, the caller's own value (gen_ai.request.max_tokens is then what the policy applied).
A_REQUESTED_MAX_TOKENS = "otel_claude.policy.requested_max_tokens"
A_REQUESTED_MODEL = "otel_claude.policy.requested_model"
A_RESPONSE_ID = "gen_ai.response.id"
A_FINISH = "gen_ai.response.finish_reasons"
A_TTFT = "gen_ai.response.time_to_first_chunk"
A_INPUT = "gen_ai.usage.input_tokens"
A_OUTPUT = "gen_ai.usage.output_tokens"
A_CACHE_READ = "gen_ai.usage.cache_read.input_tokens"
A_CACHE_WRITE = "gen_ai.usage.cache_creation.input_tokens"
A_ERROR = "error.type"
A_TASK = "otel_claude.task"
A_COST = "otel_claude.cost_usd"
A_COMPLETE = "otel_claude.stream.complete"
A_PREFIX = "otel_claude.prefix.fingerprint"
A_PREFIX_TOKENS = "otel_claude.prefix.tokens_estimate"
A_INPUT_ESTIMATE = "otel_claude.input.tokens_estimate"
A_EXPLORATION = "otel_claude.policy.exploration"
A_SCORE = "gen_ai.evaluation.score.value"
A_CONVERSATION = "otel_claude.conversation.fingerprint"
A_PARENT = "otel_claude.conversation.parent_fingerprint"
A_TURN = "otel_claude.conversation.turn"
A_HISTORY = "otel_claude.conversation.history_tokens_estimate"
WANTED = frozenset(
    {
        A_OPERATION,
        A_MODEL,
        A_MAX_TOKENS,
        A_REQUESTED_MAX_TOKENS,
        A_REQUESTED_MODEL,
        A_RESPONSE_ID,
        A_FINISH,
        A_TTFT,
        A_INPUT,
        A_OUTPUT,
        A_CACHE_READ,
        A_CACHE_WRITE,
        A_ERROR,
        A_TASK,
        A_COST,
        A_COMPLETE,
        A_PREFIX,
        A_PREFIX_TOKENS,
        A_INPUT_ESTIMATE,
        A_EXPLORATION,
        A_SCORE,
        A_CONVERSATION,
        A_PARENT,
        A_TURN,
        A_HISTORY,
    }
)
FEEDBACK_SPAN = "evaluation feedback"
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


def _int(attrs: Mapping[str, Any], key: str, missing: int) -> int:
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
    if attrs.get(A_ERROR) is not None:
        return ERROR
    reasons = attrs.get(A_FINISH)
    reason = (reasons[0] if reasons else None) if isinstance(reasons, (list, tuple)) else reasons
    if reason is None:
        return INCOMPLETE
    code = _FINISH.get(str(reason), OK)
    if code == OK and attrs.get(A_COMPLETE) is False:
        return INCOMPLETE
    return code


@dataclass(frozen=True)
class Columns:
    """The frozen table as numpy arrays plus the interned names."""

    tasks: list[str]
    models: list[str]
    prefixes: list[str]
    start_ns: np.ndarray
    task: np.ndarray
    model: np.ndarray
    prefix: np.ndarray
    outcome: np.ndarray
    flags: np.ndarray
    input_tokens: np.ndarray
    output_tokens: np.ndarray
    cache_read: np.ndarray
    cache_write: np.ndarray
    max_tokens: np.ndarray
    requested_max_tokens: np.ndarray
    requested_model: np.ndarray  # the model the caller asked for, before any policy routing
    input_estimate: np.ndarray
    prefix_tokens: np.ndarray
    cost: np.ndarray
    ttft: np.ndarray
    duration: np.ndarray
    score: np.ndarray
    conversation: np.ndarray  # conversation key (key_of), 0 when the call has none
    parent: np.ndarray  # key of the previous turn, 0 on a first turn or without keys
    turn: np.ndarray  # conversation turn, -1 without keys
    history_estimate: np.ndarray  # estimated tokens the previous turn sent, 0 on a first turn

    def __len__(self) -> int:
        return len(self.start_ns)


class CallTable:
    """Accumulates call rows and feedback scores from any reader."""

    def __init__(self) -> None:
        self.tasks = Interner(limit=MAX_TASKS, overflow=UNTRACKED)
        self.models = Interner()
        self.prefixes = Interner()
        self._start = array("q")
        self._task = array("i")
        self._model = array("i")
        self._prefix = array("i")
        self._outcome = array("b")
        self._flags = array("b")
        self._input = array("q")
        self._output = array("q")
        self._cache_read = array("q")
        self._cache_write = array("q")
        self._max_tokens = array("q")
        self._requested = array("q")
        self._requested_model = array("i")
        self._input_estimate = array("q")
        self._prefix_tokens = array("q")
        self._cost = array("d")
        self._ttft = array("d")
        self._duration = array("d")
        self._conversation = array("q")
        self._parent = array("q")
        self._turn = array("q")
        self._history = array("q")
        self._row_of_response: dict[str, int] = {}
        self._scores: dict[str, list[float]] = {}
        self.spans = 0

    def add_span(self, name: str, start_ns: int, end_ns: int, attrs: Mapping[str, Any]) -> None:
        """One span of any kind; raises BadSpan for a call or feedback span that cannot be read."""
        self.spans += 1
        if attrs.get(A_OPERATION) == "chat":
            self._add_call(start_ns, end_ns, attrs)
        elif name == FEEDBACK_SPAN or A_SCORE in attrs:
            self._add_feedback(attrs)

    def _add_call(self, start_ns: int, end_ns: int, attrs: Mapping[str, Any]) -> None:
        model = attrs.get(A_MODEL)
        if not isinstance(model, str) or not model:
            raise BadSpan(f"call span without {A_MODEL!r}")
        if end_ns < start_ns or start_ns <= 0 or end_ns > _INT64_MAX:
            raise BadSpan(f"bad span times: start {start_ns}, end {end_ns}")
        # Parse every field before appending anything, so a bad span never leaves a half-written row.
        row = (
            _int(attrs, A_INPUT, 0),
            _int(attrs, A_OUTPUT, -1),
            _int(attrs, A_CACHE_READ, 0),
            _int(attrs, A_CACHE_WRITE, 0),
            _int(attrs, A_MAX_TOKENS, 0),
            _int(attrs, A_INPUT_ESTIMATE, -1),
            _int(attrs, A_PREFIX_TOKENS, 0),
            _float(attrs, A_COST),
            _float(attrs, A_TTFT),
            _int(attrs, A_REQUESTED_MAX_TOKENS, -1),
            key_of(attrs.get(A_CONVERSATION)),
            key_of(attrs.get(A_PARENT)),
            _int(attrs, A_TURN, -1) if A_CONVERSATION in attrs else -1,
            _int(attrs, A_HISTORY, 0),
        )
        requested_model = attrs.get(A_REQUESTED_MODEL)
        if not isinstance(requested_model, str) or not requested_model:
            requested_model = model  # the policy records it only when it changed the model
        task = attrs.get(A_TASK)
        prefix = attrs.get(A_PREFIX)
        flags = FLAG_EXPLORATION if attrs.get(A_EXPLORATION) is True else 0
        response_id = attrs.get(A_RESPONSE_ID)
        if isinstance(response_id, str) and response_id:
            self._row_of_response[response_id] = len(self._start)
        self._start.append(start_ns)
        self._task.append(self.tasks(task if isinstance(task, str) and task else UNLABELLED))
        self._model.append(self.models(model))
        self._prefix.append(self.prefixes(prefix) if isinstance(prefix, str) and prefix else -1)
        self._outcome.append(_outcome(attrs))
        self._flags.append(flags)
        self._input.append(row[0])
        self._output.append(row[1])
        self._cache_read.append(row[2])
        self._cache_write.append(row[3])
        self._max_tokens.append(row[4])
        self._requested.append(row[9] if row[9] >= 0 else row[4])
        self._requested_model.append(self.models(requested_model))
        self._input_estimate.append(row[5] if row[5] >= 0 else row[0])
        self._prefix_tokens.append(row[6])
        self._cost.append(row[7])
        self._ttft.append(row[8])
        self._duration.append((end_ns - start_ns) / 1e9)
        self._conversation.append(row[10])
        self._parent.append(row[11])
        self._turn.append(row[12])
        self._history.append(row[13])

    def _add_feedback(self, attrs: Mapping[str, Any]) -> None:
        response_id = attrs.get(A_RESPONSE_ID)
        if not isinstance(response_id, str) or not response_id:
            raise BadSpan(f"feedback span without {A_RESPONSE_ID!r}")
        score = _float(attrs, A_SCORE)
        if score != score:
            raise BadSpan(f"feedback span without a numeric {A_SCORE!r}")
        self._scores.setdefault(response_id, []).append(score)

    @property
    def calls(self) -> int:
        return len(self._start)

    @property
    def feedback(self) -> int:
        return sum(len(scores) for scores in self._scores.values())

    def columns(self) -> tuple[Columns, int]:
        """The table as numpy columns, with feedback joined by response id; also the count of unmatched feedback."""
        score = np.full(len(self._start), np.nan)
        unmatched = 0
        for response_id, scores in self._scores.items():
            row = self._row_of_response.get(response_id)
            if row is None:
                unmatched += len(scores)
            else:
                score[row] = sum(scores) / len(scores)
        columns = Columns(
            tasks=list(self.tasks.names),
            models=list(self.models.names),
            prefixes=list(self.prefixes.names),
            start_ns=np.frombuffer(self._start, dtype=np.int64),
            task=np.frombuffer(self._task, dtype=np.int32),
            model=np.frombuffer(self._model, dtype=np.int32),
            prefix=np.frombuffer(self._prefix, dtype=np.int32),
            outcome=np.frombuffer(self._outcome, dtype=np.int8),
            flags=np.frombuffer(self._flags, dtype=np.int8),
            input_tokens=np.frombuffer(self._input, dtype=np.int64),
            output_tokens=np.frombuffer(self._output, dtype=np.int64),
            cache_read=np.frombuffer(self._cache_read, dtype=np.int64),
            cache_write=np.frombuffer(self._cache_write, dtype=np.int64),
            max_tokens=np.frombuffer(self._max_tokens, dtype=np.int64),
            requested_max_tokens=np.frombuffer(self._requested, dtype=np.int64),
            requested_model=np.frombuffer(self._requested_model, dtype=np.int32),
            input_estimate=np.frombuffer(self._input_estimate, dtype=np.int64),
            prefix_tokens=np.frombuffer(self._prefix_tokens, dtype=np.int64),
            cost=np.frombuffer(self._cost, dtype=np.float64),
            ttft=np.frombuffer(self._ttft, dtype=np.float64),
            duration=np.frombuffer(self._duration, dtype=np.float64),
            score=score,
            conversation=np.frombuffer(self._conversation, dtype=np.int64),
            parent=np.frombuffer(self._parent, dtype=np.int64),
            turn=np.frombuffer(self._turn, dtype=np.int64),
            history_estimate=np.frombuffer(self._history, dtype=np.int64),
        )
        return columns, unmatched
