"""Every name otel-claude records or reads: span attributes, span and event names, metrics, and their table.

The instrumentor writes these names, the tuner's file and SQL readers read them, the dashboards and the docs list
them: this module is the one place they are spelled. Names of the OpenTelemetry GenAI semantic conventions come
from `opentelemetry-semantic-conventions` where that package has them; `anthropic.*` mirrors the Anthropic SDK's
own attribute names; `otel_claude.*` are this project's.

The conventions are moving (the GenAI conventions left the main repository for semantic-conventions-genai, whose
unreleased changes rename the inference metrics and `cache_creation` to `cache_write`). As OpenTelemetry does for
such moves, today's names are emitted by default and the newest ones when `OTEL_SEMCONV_STABILITY_OPT_IN` contains
`gen_ai_latest_experimental` (see `Naming`).

`ATTRIBUTES` describes each span attribute (type and when it is set); docs/telemetry.md shows the same tables,
rendered by `markdown_table`, and a test keeps the two equal.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as _gen_ai
from opentelemetry.semconv._incubating.metrics import gen_ai_metrics as _gen_ai_metrics
from opentelemetry.semconv.attributes import error_attributes as _error
from opentelemetry.semconv.attributes import server_attributes as _server

# --- GenAI semantic conventions: request -------------------------------------------------------------------------
GEN_AI_OPERATION_NAME = _gen_ai.GEN_AI_OPERATION_NAME
GEN_AI_PROVIDER_NAME = _gen_ai.GEN_AI_PROVIDER_NAME
GEN_AI_REQUEST_MODEL = _gen_ai.GEN_AI_REQUEST_MODEL
GEN_AI_REQUEST_MAX_TOKENS = _gen_ai.GEN_AI_REQUEST_MAX_TOKENS
GEN_AI_REQUEST_TEMPERATURE = _gen_ai.GEN_AI_REQUEST_TEMPERATURE
GEN_AI_REQUEST_TOP_P = _gen_ai.GEN_AI_REQUEST_TOP_P
GEN_AI_REQUEST_TOP_K = _gen_ai.GEN_AI_REQUEST_TOP_K
GEN_AI_REQUEST_STOP_SEQUENCES = _gen_ai.GEN_AI_REQUEST_STOP_SEQUENCES
GEN_AI_REQUEST_STREAM = _gen_ai.GEN_AI_REQUEST_STREAM
SERVER_ADDRESS = _server.SERVER_ADDRESS
SERVER_PORT = _server.SERVER_PORT
# --- response ----------------------------------------------------------------------------------------------------
GEN_AI_RESPONSE_ID = _gen_ai.GEN_AI_RESPONSE_ID
GEN_AI_RESPONSE_MODEL = _gen_ai.GEN_AI_RESPONSE_MODEL
GEN_AI_RESPONSE_FINISH_REASONS = _gen_ai.GEN_AI_RESPONSE_FINISH_REASONS
GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK = _gen_ai.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK
ERROR_TYPE = _error.ERROR_TYPE
# --- usage -------------------------------------------------------------------------------------------------------
GEN_AI_USAGE_INPUT_TOKENS = _gen_ai.GEN_AI_USAGE_INPUT_TOKENS
GEN_AI_USAGE_OUTPUT_TOKENS = _gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS
GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS = _gen_ai.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS
GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS = _gen_ai.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS
# semantic-conventions-genai #440 renames cache_creation to cache_write; the constants package does not have it yet.
GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS = "gen_ai.usage.cache_write.input_tokens"
GEN_AI_USAGE_REASONING_OUTPUT_TOKENS = _gen_ai.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS
GEN_AI_TOKEN_TYPE = _gen_ai.GEN_AI_TOKEN_TYPE
# --- opt-in content ----------------------------------------------------------------------------------------------
GEN_AI_INPUT_MESSAGES = _gen_ai.GEN_AI_INPUT_MESSAGES
GEN_AI_OUTPUT_MESSAGES = _gen_ai.GEN_AI_OUTPUT_MESSAGES
GEN_AI_SYSTEM_INSTRUCTIONS = _gen_ai.GEN_AI_SYSTEM_INSTRUCTIONS
GEN_AI_TOOL_DEFINITIONS = _gen_ai.GEN_AI_TOOL_DEFINITIONS
# --- evaluation --------------------------------------------------------------------------------------------------
GEN_AI_EVALUATION_NAME = _gen_ai.GEN_AI_EVALUATION_NAME
GEN_AI_EVALUATION_SCORE_VALUE = _gen_ai.GEN_AI_EVALUATION_SCORE_VALUE
GEN_AI_EVALUATION_SCORE_LABEL = _gen_ai.GEN_AI_EVALUATION_SCORE_LABEL

# --- Anthropic (the SDK's own names) -----------------------------------------------------------------------------
ANTHROPIC_REQUEST_ID = "anthropic.request.id"
ANTHROPIC_UNCACHED_INPUT_TOKENS = "anthropic.usage.uncached_input_tokens"
ANTHROPIC_CACHE_WRITE_5M_TOKENS = "anthropic.usage.cache_creation.ephemeral_5m_input_tokens"
ANTHROPIC_CACHE_WRITE_1H_TOKENS = "anthropic.usage.cache_creation.ephemeral_1h_input_tokens"
ANTHROPIC_SERVICE_TIER = "anthropic.response.service_tier"
ANTHROPIC_RATELIMIT_REQUESTS_REMAINING = "anthropic.ratelimit.requests.remaining"
ANTHROPIC_RATELIMIT_TOKENS_REMAINING = "anthropic.ratelimit.tokens.remaining"
ANTHROPIC_RATELIMIT_INPUT_TOKENS_REMAINING = "anthropic.ratelimit.input_tokens.remaining"
ANTHROPIC_RATELIMIT_OUTPUT_TOKENS_REMAINING = "anthropic.ratelimit.output_tokens.remaining"
# The per-minute limits the tuner reads (the combined `tokens` limit and the `-reset` times are not recorded: each
# attribute costs every call, and input + output say what `tokens` says).
ANTHROPIC_RATELIMIT_REQUESTS_LIMIT = "anthropic.ratelimit.requests.limit"
ANTHROPIC_RATELIMIT_INPUT_TOKENS_LIMIT = "anthropic.ratelimit.input_tokens.limit"
ANTHROPIC_RATELIMIT_OUTPUT_TOKENS_LIMIT = "anthropic.ratelimit.output_tokens.limit"
# (limit, remaining) per limiter kind (requests, input tokens, output tokens), in the limiter's order.
RATELIMIT_READINGS = (
    (ANTHROPIC_RATELIMIT_REQUESTS_LIMIT, ANTHROPIC_RATELIMIT_REQUESTS_REMAINING),
    (ANTHROPIC_RATELIMIT_INPUT_TOKENS_LIMIT, ANTHROPIC_RATELIMIT_INPUT_TOKENS_REMAINING),
    (ANTHROPIC_RATELIMIT_OUTPUT_TOKENS_LIMIT, ANTHROPIC_RATELIMIT_OUTPUT_TOKENS_REMAINING),
)

# --- otel-claude: the call -----------------------------------------------------------------------------------------
TASK = "otel_claude.task"
COST_USD = "otel_claude.cost_usd"
RETRIES = "otel_claude.retries"
STREAM_COMPLETE = "otel_claude.stream.complete"
TIME_PER_OUTPUT_TOKEN = "otel_claude.time_per_output_token"
PREFIX_FINGERPRINT = "otel_claude.prefix.fingerprint"
PREFIX_TOKENS_ESTIMATE = "otel_claude.prefix.tokens_estimate"
INPUT_TOKENS_ESTIMATE = "otel_claude.input.tokens_estimate"
CACHE_BREAKPOINTS = "otel_claude.cache.breakpoints"
# Conversation keys (otel_claude/_conversation.py): a call continues another when its parent is the other's fingerprint.
CONVERSATION_FINGERPRINT = "otel_claude.conversation.fingerprint"
CONVERSATION_PARENT = "otel_claude.conversation.parent_fingerprint"
CONVERSATION_TURN = "otel_claude.conversation.turn"
CONVERSATION_HISTORY_TOKENS = "otel_claude.conversation.history_tokens_estimate"
CANCELLED = "otel_claude.cancelled"
USAGE_UNREADABLE = "otel_claude.usage.unreadable"
BATCH_ID = "otel_claude.batch.id"
BATCH_STATUS = "otel_claude.batch.status"
# --- otel-claude: what a policy did --------------------------------------------------------------------------------
POLICY_PREFIX = "otel_claude.policy."
POLICY_VERSION = "otel_claude.policy.version"
POLICY_MODE = "otel_claude.policy.mode"
POLICY_RULE = "otel_claude.policy.rule"
POLICY_ROLLOUT = "otel_claude.policy.rollout"
POLICY_REQUESTED_MODEL = "otel_claude.policy.requested_model"
POLICY_APPLIED_MODEL = "otel_claude.policy.applied_model"
POLICY_REQUESTED_MAX_TOKENS = "otel_claude.policy.requested_max_tokens"
POLICY_APPLIED_MAX_TOKENS = "otel_claude.policy.applied_max_tokens"
POLICY_CACHE_BREAKPOINTS_ADDED = "otel_claude.policy.cache_breakpoints_added"
POLICY_EXPLORATION = "otel_claude.policy.exploration"
POLICY_SAFETY_RETRY = "otel_claude.policy.safety_retry"
POLICY_TRUNCATED = "otel_claude.policy.truncated"

# --- values of error.type ----------------------------------------------------------------------------------------
# The error types the Messages API documents for its error envelope (platform docs, "Errors", Nov 2026). An error
# body's `type` becomes error.type only when it is one of these: a proxy or gateway may answer with any body at
# all (one that echoes the request, say), and error.type is a span attribute and a metric label.
API_ERROR_TYPES = frozenset({
    "invalid_request_error",  # 400
    "authentication_error",  # 401
    "billing_error",  # 402
    "permission_error",  # 403
    "not_found_error",  # 404
    "request_too_large",  # 413
    "rate_limit_error",  # 429
    "api_error",  # 500
    "timeout_error",  # 504
    "overloaded_error",  # 529
})
RATE_LIMIT_ERROR = "rate_limit_error"  # 429: the account's rate limit
OVERLOADED_ERROR = "overloaded_error"  # 529: the API as a whole is overloaded

# --- otel-claude: admission under the policy's limits (docs/policy.md, `limits`) -----------------------------------
ADMISSION_LIMIT = "otel_claude.admission.limit"
ADMISSION_WAIT = "otel_claude.admission.wait"
ADMISSION_TIMED_OUT = "otel_claude.admission.timed_out"
# error.type of a call failed fast after waiting max_wait (on_timeout: fail): nothing was sent.
ADMISSION_TIMEOUT_ERROR = "admission_timeout"

# --- otel-claude: paired evaluation (a candidate model shadows a share of a task's calls) ----------------------------
# On a call span: the role of a call the instrumentor made itself (absent on the application's own calls).
EVALUATION_ROLE = "otel_claude.evaluation.role"  # "shadow" (the candidate's copy of a call) | "judge" (an LLM judge)
# On a verdict span ("evaluation pairwise", a child of the application's call it judges):
EVALUATION_INCUMBENT_MODEL = "otel_claude.evaluation.incumbent_model"
EVALUATION_CANDIDATE_MODEL = "otel_claude.evaluation.candidate_model"
EVALUATION_CANDIDATE_RESPONSE_ID = "otel_claude.evaluation.candidate_response_id"
# gen_ai.evaluation.score.value on a verdict: the candidate's quality minus the incumbent's as the grader judged it,
# in [-1, 1] (0: agree or tie); gen_ai.evaluation.score.label: one of VERDICT_LABELS.
VERDICT_LABELS = ("agree", "candidate_better", "candidate_worse", "tie", "unsettled")
ROLE_SHADOW = "shadow"
ROLE_JUDGE = "judge"
# Grader names (gen_ai.evaluation.name on a verdict); a user grader is named by its registration.
GRADER_EXACT = "exact"
GRADER_TOOL_CALL = "tool_call"
GRADER_JSON_SCHEMA = "json_schema"
GRADER_JUDGE = "judge"
# Why a sampled call produced no verdict (label of otel_claude.evaluation.skipped).
EVALUATION_SKIP_REASON = "otel_claude.evaluation.skip_reason"
SKIP_REASONS = ("budget", "queue_full", "no_loop", "incumbent_failed", "shadow_failed", "shutdown")

# --- span and event names ----------------------------------------------------------------------------------------
FEEDBACK_SPAN = "evaluation feedback"
VERDICT_SPAN = "evaluation pairwise"
EVALUATION_RESULT_EVENT = "gen_ai.evaluation.result"
FEEDBACK_EVALUATION_NAME = "feedback"
CHAT_OPERATION = "chat"

# --- metrics -------------------------------------------------------------------------------------------------------
METRIC_OPERATION_DURATION = _gen_ai_metrics.GEN_AI_CLIENT_OPERATION_DURATION
METRIC_TOKEN_USAGE = _gen_ai_metrics.GEN_AI_CLIENT_TOKEN_USAGE
METRIC_TIME_TO_FIRST_CHUNK = _gen_ai_metrics.GEN_AI_CLIENT_OPERATION_TIME_TO_FIRST_CHUNK
# semantic-conventions-genai #521 / #374 (unreleased): inference calls get their own duration and per-direction
# token histograms; other operations (count_tokens, batches) keep gen_ai.client.operation.duration.
METRIC_INFERENCE_DURATION = "gen_ai.client.inference.duration"
METRIC_INFERENCE_TIME_TO_FIRST_CHUNK = "gen_ai.client.inference.time_to_first_chunk"
METRIC_INFERENCE_INPUT_TOKENS = "gen_ai.client.inference.operation.input_tokens"
METRIC_INFERENCE_OUTPUT_TOKENS = "gen_ai.client.inference.operation.output_tokens"
METRIC_COST = "otel_claude.cost"
METRIC_CALLS = "otel_claude.calls"
METRIC_CACHE_TOKENS = "otel_claude.cache.tokens"
METRIC_EVALUATION_COST = "otel_claude.evaluation.cost"
METRIC_EVALUATION_SKIPPED = "otel_claude.evaluation.skipped"
METRIC_POLICY_TRUNCATIONS = "otel_claude.policy.truncations"
METRIC_LIMITER_IN_FLIGHT = "otel_claude.limiter.in_flight"
METRIC_LIMITER_QUEUED = "otel_claude.limiter.queued"
METRIC_LIMITER_CONCURRENCY = "otel_claude.limiter.concurrency"
METRIC_LIMITER_RATE = "otel_claude.limiter.rate"
METRIC_LIMITER_ADMISSIONS = "otel_claude.limiter.admissions"
METRIC_LIMITER_WAIT = "otel_claude.limiter.wait"
METRIC_LIMITER_CONGESTION = "otel_claude.limiter.congestion"
# Quality, for dashboards: feedback scores (count and sum: their mean per task and model) and paired verdicts.
METRIC_FEEDBACK_SCORES = "otel_claude.feedback.scores"
METRIC_FEEDBACK_SCORE_SUM = "otel_claude.feedback.score_sum"
METRIC_VERDICTS = "otel_claude.evaluation.verdicts"
# The API's rate-limit headers, latest reading per model: headroom = remaining / limit.
METRIC_RATELIMIT_REMAINING = "otel_claude.ratelimit.remaining"
METRIC_RATELIMIT_LIMIT = "otel_claude.ratelimit.limit"
# The policy in force: when its version came into force (unix time), and the cost per call its tuner predicted.
METRIC_POLICY_LOADED = "otel_claude.policy.loaded"
METRIC_POLICY_PREDICTED_COST = "otel_claude.policy.predicted_cost_per_call"
# metric-only labels
FINISH_REASON_LABEL = "gen_ai.response.finish_reason"
CACHE_KIND_LABEL = "otel_claude.cache.kind"
LIMIT_LABEL = "otel_claude.limit"  # a limit entry's id, e.g. `*/claude-sonnet-4-6`
LIMIT_KIND_LABEL = "otel_claude.limit.kind"  # requests | input_tokens | output_tokens
ADMISSION_OUTCOME_LABEL = "otel_claude.admission.outcome"  # immediate | waited | timeout_proceeded | timeout_failed
PREDICTION_LABEL = "otel_claude.policy.prediction"  # before (the callers' settings) | after (the policy's)

STABILITY_ENV = "OTEL_SEMCONV_STABILITY_OPT_IN"
LATEST_EXPERIMENTAL = "gen_ai_latest_experimental"


@dataclass(frozen=True)
class Naming:
    """The names that differ between today's conventions and the newest experimental ones.

    `latest=False` (default): the released conventions (v1.40 names), plus `cache_write` beside `cache_creation`
    so readers of either find the count. `latest=True`: semantic-conventions-genai's newest names only.
    """

    latest: bool = False

    @classmethod
    def from_environment(cls) -> Naming:
        opted = os.environ.get(STABILITY_ENV, "")
        return cls(latest=LATEST_EXPERIMENTAL in {part.strip() for part in opted.split(",")})

    def cache_write_attributes(self) -> tuple[str, ...]:
        if self.latest:
            return (GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS,)
        return (GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS, GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS)

    def duration_metric(self, operation: str) -> str:
        return METRIC_INFERENCE_DURATION if self.latest and operation == CHAT_OPERATION else METRIC_OPERATION_DURATION

    @property
    def time_to_first_chunk_metric(self) -> str:
        return METRIC_INFERENCE_TIME_TO_FIRST_CHUNK if self.latest else METRIC_TIME_TO_FIRST_CHUNK


# --- the table -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Attribute:
    """One span attribute: its name, OTLP type and when it is set (as docs/telemetry.md lists it)."""

    name: str
    type: str
    when: str


CALL = "call"
POLICY = "policy"
ADMISSION = "admission"
CONTENT = "content"
FEEDBACK = "feedback"
EVALUATION = "evaluation"

ATTRIBUTES: dict[str, tuple[Attribute, ...]] = {
    CALL: (
        Attribute(GEN_AI_OPERATION_NAME, "string", "always: `chat`, `count_tokens`, `create_batch`, "
                  "`retrieve_batch`, `list_batches`, `cancel_batch`, `delete_batch`, `batch_results`"),
        Attribute(GEN_AI_PROVIDER_NAME, "string", "always: `anthropic`, `aws.bedrock`, `gcp.vertex_ai`"),
        Attribute(GEN_AI_REQUEST_MODEL, "string", "as sent (after policy routing)"),
        Attribute(GEN_AI_REQUEST_MAX_TOKENS, "int", "as sent (after policy)"),
        Attribute(GEN_AI_REQUEST_TEMPERATURE, "double", "only when the caller sent it"),
        Attribute(GEN_AI_REQUEST_TOP_P, "double", "only when the caller sent it"),
        Attribute(GEN_AI_REQUEST_TOP_K, "double", "only when the caller sent it (a double in the registry)"),
        Attribute(GEN_AI_REQUEST_STOP_SEQUENCES, "string[]", "only when sent"),
        Attribute(GEN_AI_REQUEST_STREAM, "bool", "chat calls"),
        Attribute(SERVER_ADDRESS, "string", "always"),
        Attribute(SERVER_PORT, "int", "always"),
        Attribute(GEN_AI_RESPONSE_ID, "string", "on success"),
        Attribute(GEN_AI_RESPONSE_MODEL, "string", "on success"),
        Attribute(GEN_AI_RESPONSE_FINISH_REASONS, "string[]", "on success: the stop_reason (`end_turn`, `max_tokens`, "
                  "`tool_use`, `stop_sequence`, `refusal`, `pause_turn`, `model_context_window_exceeded`)"),
        Attribute(GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK, "double (s)", "streams: from the start of the logical call "
                  "(retries included) to the first `content_block_delta`"),
        Attribute(GEN_AI_USAGE_INPUT_TOKENS, "int", "input + cache read + cache write"),
        Attribute(GEN_AI_USAGE_OUTPUT_TOKENS, "int", "final (cumulative) output tokens; absent on an incomplete "
                  "stream"),
        Attribute(GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS, "int", "when non-zero (cache counters are omitted when 0: "
                  "read them as 0)"),
        Attribute(GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS, "int", "cache writes (semconv v1.40 name), when "
                  "non-zero; not with `gen_ai_latest_experimental`"),
        Attribute(GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS, "int", "same value, semantic-conventions-genai name"),
        Attribute(GEN_AI_USAGE_REASONING_OUTPUT_TOKENS, "int", "when the API reports thinking tokens"),
        Attribute(ERROR_TYPE, "string", "on failure: the API error type (`overloaded_error`, `rate_limit_error`...; "
                  "only the documented ones), else the HTTP status (`502`), `admission_timeout` (a policy limit "
                  "failed the call fast: nothing sent), `client_timeout_error`, `connection_error`, or the exception "
                  "class name; not on cancellation. The span status description is this and the HTTP status, never "
                  "the error's message (an error body can echo the request)"),
        Attribute(ANTHROPIC_REQUEST_ID, "string", "the `request-id` response header"),
        Attribute(ANTHROPIC_UNCACHED_INPUT_TOKENS, "int", "the API's raw `input_tokens` (after the last breakpoint), "
                  "when the cache was used"),
        Attribute(ANTHROPIC_CACHE_WRITE_5M_TOKENS, "int", "the 5-minute share of cache writes"),
        Attribute(ANTHROPIC_CACHE_WRITE_1H_TOKENS, "int", "the 1-hour share of cache writes"),
        Attribute(ANTHROPIC_SERVICE_TIER, "string", "from usage"),
        Attribute(ANTHROPIC_RATELIMIT_REQUESTS_REMAINING, "int", "from response headers"),
        Attribute(ANTHROPIC_RATELIMIT_TOKENS_REMAINING, "int", "from response headers"),
        Attribute(ANTHROPIC_RATELIMIT_INPUT_TOKENS_REMAINING, "int", "from response headers"),
        Attribute(ANTHROPIC_RATELIMIT_OUTPUT_TOKENS_REMAINING, "int", "from response headers"),
        Attribute(ANTHROPIC_RATELIMIT_REQUESTS_LIMIT, "int", "from response headers: the per-minute limit"),
        Attribute(ANTHROPIC_RATELIMIT_INPUT_TOKENS_LIMIT, "int", "from response headers: the per-minute limit"),
        Attribute(ANTHROPIC_RATELIMIT_OUTPUT_TOKENS_LIMIT, "int", "from response headers: the per-minute limit"),
        Attribute(TASK, "string", "the label set with `otel_claude.task(...)`; absent when unlabelled"),
        Attribute(COST_USD, "double", "cost of this call; absent (and one warning logged) for a model without a "
                  "price"),
        Attribute(USAGE_UNREADABLE, "string[]", "usage fields the API sent as something no count can be (negative, "
                  "fractional, not a number, past int64), e.g. `input_tokens`: those counts are left out, and the call "
                  "gets no cost and adds to no cost, cache or token metric"),
        Attribute(RETRIES, "int", "retries the SDK took inside this call"),
        Attribute(STREAM_COMPLETE, "bool", "streams: `true` when `message_stop` arrived, `false` when the stream "
                  "ended early (break, close, GC, error, cancel)"),
        Attribute(CANCELLED, "bool", "`true` when the application stopped the call (asyncio cancellation, "
                  "`GeneratorExit`, `KeyboardInterrupt`): no `error.type`, status unset"),
        Attribute(TIME_PER_OUTPUT_TOKEN, "double (s)", "streams: (end - first token) / (output tokens - 1)"),
        Attribute(PREFIX_FINGERPRINT, "string", "16 hex chars: a hash of the tools + system prompt (never the "
                  "content)"),
        Attribute(PREFIX_TOKENS_ESTIMATE, "int", "estimated tokens in tools + system"),
        Attribute(INPUT_TOKENS_ESTIMATE, "int", "estimated tokens of the whole request (policy conditions use it "
                  "before the call)"),
        Attribute(CACHE_BREAKPOINTS, "int", "`cache_control` markers in the request as sent"),
        Attribute(CONVERSATION_FINGERPRINT, "string", "16 hex chars: a hash of tools, system and the messages up to "
                  "the newest user message (never the content); when the messages hold a user message"),
        Attribute(CONVERSATION_PARENT, "string", "16 hex chars: the same hash up to the previous turn's last user "
                  "message, i.e. the previous call's fingerprint; from the second turn on"),
        Attribute(CONVERSATION_TURN, "int", "assistant answers before the newest user message (0: a first turn); "
                  "with the fingerprint"),
        Attribute(CONVERSATION_HISTORY_TOKENS, "int", "estimated tokens of what the previous turn already sent "
                  "(tools, system, history): what a conversation cache can serve; with the parent"),
        Attribute(BATCH_ID, "string", "batch operations: the batch id"),
        Attribute(BATCH_STATUS, "string", "batch operations: the batch's processing status"),
        Attribute(EVALUATION_ROLE, "string", "only on calls the instrumentor made itself: `shadow` (a candidate's "
                  "copy of a sampled call) or `judge` (an LLM judge); a child of the application's call"),
    ),
    POLICY: (
        Attribute(POLICY_VERSION, "string", "the policy file's `version`"),
        Attribute(POLICY_MODE, "string", "`enforce`, `shadow` or `off`"),
        Attribute(POLICY_RULE, "string", "id of the rule that matched (e.g. `classify#0`)"),
        Attribute(POLICY_ROLLOUT, "bool", "`false` when the call fell outside `rollout_percent`"),
        Attribute(POLICY_REQUESTED_MODEL, "string", "what the caller asked for, when the policy changed the model"),
        Attribute(POLICY_APPLIED_MODEL, "string", "what was sent (shadow: what would have been sent)"),
        Attribute(POLICY_REQUESTED_MAX_TOKENS, "int", "the caller's max_tokens, when the policy changed it"),
        Attribute(POLICY_APPLIED_MAX_TOKENS, "int", "what was sent (shadow: what would have been sent)"),
        Attribute(POLICY_CACHE_BREAKPOINTS_ADDED, "int", "cache breakpoints the policy added"),
        Attribute(POLICY_EXPLORATION, "bool", "this call was part of an exploration share"),
        Attribute(POLICY_SAFETY_RETRY, "bool", "the call was retried with the caller's max_tokens after a "
                  "truncation"),
        Attribute(POLICY_TRUNCATED, "bool", "the answer stopped at a max_tokens the policy lowered (the caller's "
                  "own value would have let it go on): non-streamed calls are then retried (a second span with "
                  "`safety_retry`); streams and unread raw responses reach the caller cut. Counted in "
                  "`otel_claude.policy.truncations`"),
    ),
    ADMISSION: (
        Attribute(ADMISSION_LIMIT, "string", "the id of the policy limit (`task/model+model`, `*` for any) the call "
                  "waited at; absent when it went at once or no limit applies (each attribute costs every call)"),
        Attribute(ADMISSION_WAIT, "double (s)", "time the call waited for admission, when it waited (absent: "
                  "read as 0); included in the span's duration and time to first chunk"),
        Attribute(ADMISSION_TIMED_OUT, "bool", "`true` when the wait reached the limit's `max_wait` (the call then "
                  "went out anyway, or failed with `error.type` `admission_timeout`)"),
    ),
    CONTENT: (
        Attribute(GEN_AI_INPUT_MESSAGES, "string (JSON)", "opt-in: the request's messages, as sent"),
        Attribute(GEN_AI_OUTPUT_MESSAGES, "string (JSON)", "opt-in: the answer"),
        Attribute(GEN_AI_SYSTEM_INSTRUCTIONS, "string (JSON)", "opt-in: the system prompt"),
        Attribute(GEN_AI_TOOL_DEFINITIONS, "string (JSON)", "opt-in: the tool definitions"),
    ),
    FEEDBACK: (
        Attribute(GEN_AI_RESPONSE_ID, "string", "always: the call the score is for"),
        Attribute(GEN_AI_EVALUATION_NAME, "string", "always: `feedback`"),
        Attribute(GEN_AI_EVALUATION_SCORE_VALUE, "double", "always"),
        Attribute(GEN_AI_EVALUATION_SCORE_LABEL, "string", "when given"),
        Attribute(TASK, "string", "when the call happened in this process and had a task"),
    ),
    EVALUATION: (
        Attribute(GEN_AI_EVALUATION_NAME, "string", "always: the grader that settled the pair (`exact`, "
                  "`tool_call`, `json_schema`, a user grader's name, `judge`), or the last one tried"),
        Attribute(GEN_AI_EVALUATION_SCORE_VALUE, "double", "always: the candidate's quality minus the incumbent's as "
                  "judged, in [-1, 1]; 0 for `agree`, `tie` and `unsettled`"),
        Attribute(GEN_AI_EVALUATION_SCORE_LABEL, "string", "always: `agree`, `candidate_better`, `candidate_worse`, "
                  "`tie`, or `unsettled` (the answers differ and nothing could settle it)"),
        Attribute(GEN_AI_RESPONSE_ID, "string", "always: the incumbent's response id (joins the application's call)"),
        Attribute(EVALUATION_CANDIDATE_RESPONSE_ID, "string", "always: the shadow call's response id"),
        Attribute(EVALUATION_INCUMBENT_MODEL, "string", "always: the model that answered the caller"),
        Attribute(EVALUATION_CANDIDATE_MODEL, "string", "always: the candidate model"),
        Attribute(TASK, "string", "when the call had a task"),
    ),
}


def markdown_table(group: str) -> str:
    """The table of one attribute group as docs/telemetry.md shows it."""
    rows = ["| attribute | type | when |", "|---|---|---|"]
    rows += [f"| `{a.name}` | {a.type} | {a.when} |" for a in ATTRIBUTES[group]]
    return "\n".join(rows)


if __name__ == "__main__":  # python -m otel_claude.semconv: print the tables for docs/telemetry.md
    for name in ATTRIBUTES:
        print(f"<!-- {name} -->\n{markdown_table(name)}\n")
