"""The grader chain for one pair, cheapest first: equality of answers (normalised text, or tool calls by name and
parsed arguments), validity against the request's JSON schema, then the task's user grader. The LLM judge is the
pipeline's business (`_evaluation`), asked only when this chain ends `unsettled`."""

from __future__ import annotations

import json
import logging
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from . import semconv as sc
from ._schema import is_valid
from .grading import Answer, Verdict, registered_grader

__all__ = ["Graded", "grade"]

log = logging.getLogger("otel_claude")
_SPACE = re.compile(r"\s+")
_EDGE = "\"'`*.!?;:,"  # quotes, emphasis and final punctuation around a short answer


@dataclass(frozen=True)
class Graded:
    grader: str  # the grader that settled the pair, or the last one tried when `unsettled`
    label: str
    score: float

    @property
    def settled(self) -> bool:
        return self.label != "unsettled"


def _normalised(text: str) -> str:
    return _SPACE.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip().strip(_EDGE).strip()


def _tool_schemas(request: Mapping[str, Any]) -> dict[str, Any]:
    tools = request.get("tools")
    found: dict[str, Any] = {}
    if isinstance(tools, list):
        for tool in tools:
            if isinstance(tool, Mapping) and isinstance(tool.get("name"), str) and "input_schema" in tool:
                found[tool["name"]] = tool["input_schema"]
    return found


def _output_schema(request: Mapping[str, Any]) -> Any:
    """The JSON schema the request asks the answer to follow: `output_config.format` or the beta `output_format`."""
    config = request.get("output_config")
    formats = [config.get("format") if isinstance(config, Mapping) else None, request.get("output_format")]
    for fmt in formats:
        if isinstance(fmt, Mapping) and fmt.get("type") == "json_schema" and "schema" in fmt:
            return fmt["schema"]
    return None


def _calls_valid(answer: Answer, schemas: dict[str, Any]) -> bool:
    for call in answer.tool_calls:
        schema = schemas.get(call.name)
        if schema is None or call.input is None or not is_valid(call.input, schema):
            return False
    return True


def _json_valid(text: str, schema: Any) -> tuple[bool, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        return False, None
    return is_valid(value, schema), value


def _by_validity(incumbent_ok: bool, candidate_ok: bool) -> Graded | None:
    if incumbent_ok == candidate_ok:
        return None
    better = candidate_ok
    return Graded(sc.GRADER_JSON_SCHEMA, "candidate_better" if better else "candidate_worse", 1.0 if better else -1.0)


def _built_in(request: Mapping[str, Any], incumbent: Answer, candidate: Answer) -> Graded:
    if incumbent.tool_calls or candidate.tool_calls:
        if [(c.name, c.input) for c in incumbent.tool_calls] == [(c.name, c.input) for c in candidate.tool_calls]:
            return Graded(sc.GRADER_TOOL_CALL, "agree", 0.0)
        schemas = _tool_schemas(request)
        if incumbent.tool_calls and candidate.tool_calls and schemas:
            settled = _by_validity(_calls_valid(incumbent, schemas), _calls_valid(candidate, schemas))
            if settled is not None:
                return settled
            return Graded(sc.GRADER_JSON_SCHEMA, "unsettled", 0.0)
        return Graded(sc.GRADER_TOOL_CALL, "unsettled", 0.0)
    if _normalised(incumbent.text) == _normalised(candidate.text):
        return Graded(sc.GRADER_EXACT, "agree", 0.0)
    schema = _output_schema(request)
    if schema is None:
        return Graded(sc.GRADER_EXACT, "unsettled", 0.0)
    incumbent_ok, incumbent_value = _json_valid(incumbent.text, schema)
    candidate_ok, candidate_value = _json_valid(candidate.text, schema)
    if incumbent_ok and candidate_ok and incumbent_value == candidate_value:
        return Graded(sc.GRADER_JSON_SCHEMA, "agree", 0.0)
    return _by_validity(incumbent_ok, candidate_ok) or Graded(sc.GRADER_JSON_SCHEMA, "unsettled", 0.0)


def _user(task: str | None, request: Mapping[str, Any], incumbent: Answer, candidate: Answer) -> Graded | None:
    found = registered_grader(task)
    if found is None:
        return None
    name, grader = found
    try:
        verdict = grader(request, incumbent, candidate)
        if verdict is None:
            return Graded(name, "unsettled", 0.0)
        if not isinstance(verdict, Verdict):
            raise TypeError(f"returned {type(verdict).__name__}, not a Verdict or None")
    except Exception as err:
        # The type only: a message could quote the answers, and logs stay free of content.
        log.warning("otel_claude: grader %r of task %r failed (%s); the pair counts as unsettled",
                    name, task, type(err).__name__)
        return Graded(name, "unsettled", 0.0)
    return Graded(name, verdict.label, float(verdict.score))  # type: ignore[arg-type]


def grade(task: str | None, request: Mapping[str, Any], incumbent: Answer, candidate: Answer) -> Graded:
    """The first conclusion of the chain, or `unsettled` named after the last grader tried."""
    built_in = _built_in(request, incumbent, candidate)
    if built_in.settled:
        return built_in
    return _user(task, request, incumbent, candidate) or built_in
