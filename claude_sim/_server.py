"""The HTTP face of the simulator: an aiohttp app on loopback, run in a background thread with its own loop."""

from __future__ import annotations

import asyncio
import json
import math
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from claude_sim._batches import BatchStore
from claude_sim._clock import ScenarioClock, Sequencer
from claude_sim._engine import SEQ_HEADER, TIME_HEADER, Engine, Outcome, tag_from
from claude_sim._errors import ApiError, invalid
from claude_sim._faults import STATUS_FAULTS, Fault, FaultPlan, parse_faults
from claude_sim._models import find_model, sim_models
from claude_sim._ratelimit import RateLimits
from claude_sim._scenario import Scenario
from claude_sim._scenario_file import load_scenario
from claude_sim._sse import encode, stream_events
from claude_sim._validate import check_headers

ORGANIZATION_ID = "00000000-0000-4000-8000-0000000051a0"
DEFAULT_MAX_REQUEST_BYTES = 32 * 1024 * 1024  # the API's Messages request size limit
_MIN_SLEEP_S = 0.002  # below this, pacing sleeps are batched: asyncio cannot sleep that precisely anyway
_FAULT_MESSAGES = {
    429: "Number of requests has exceeded your rate limit.",
    529: "Overloaded",
    500: "Internal server error",
}


@dataclass(frozen=True)
class SimConfig:
    scenario: Scenario | None
    seed: int
    latency_scale: float
    clock: Callable[[], float]
    rate_limits: RateLimits
    record: bool
    max_request_bytes: int
    batch_seconds: float


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=json.dumps(data).encode(), status=status, headers=headers,
                        content_type="application/json")


class _App:
    """Request handlers; all state lives on the server's loop thread, so no locks."""

    def __init__(self, config: SimConfig, faults: FaultPlan) -> None:
        self.config = config
        self.faults = faults
        self.engine = Engine(scenario=config.scenario, seed=config.seed, latency_scale=config.latency_scale,
                             clock=config.clock, rate_limits=config.rate_limits)
        self.batches = BatchStore(self.engine, config.clock, config.batch_seconds)
        self.received: list[dict[str, Any]] = []
        self.active_streams = 0
        self.errors: Counter[int] = Counter()  # error responses served, by status

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/v1/messages", self.messages),
            web.post("/v1/messages/count_tokens", self.count_tokens),
            web.post("/v1/messages/batches", self.create_batch),
            web.get("/v1/messages/batches", self.list_batches),
            web.get("/v1/messages/batches/{id}", self.get_batch),
            web.post("/v1/messages/batches/{id}/cancel", self.cancel_batch),
            web.get("/v1/messages/batches/{id}/results", self.batch_results),
            web.get("/v1/models", self.list_models),
            web.get("/v1/models/{id}", self.get_model),
        ]

    # --- plumbing -------------------------------------------------------------------------------------------

    def _headers(self, request_id: str, extra: dict[str, str] | None = None) -> dict[str, str]:
        return {"request-id": request_id, "anthropic-organization-id": ORGANIZATION_ID, **(extra or {})}

    def _error(self, err: ApiError, request_id: str) -> web.Response:
        self.errors[err.status] += 1
        headers = self._headers(request_id, err.headers)
        headers["x-should-retry"] = "true" if err.should_retry else "false"
        if err.retry_after is not None:
            headers["retry-after"] = str(max(1, math.ceil(err.retry_after)))
            if err.retry_after != int(err.retry_after):
                headers["retry-after-ms"] = str(int(err.retry_after * 1000))
        return _json(err.body(request_id), err.status, headers)

    async def _read(self, request: web.Request) -> tuple[str, Any]:
        """Record the request, check auth and size, parse JSON; returns (API version, body)."""
        raw = await request.read()
        oversize = len(raw) > self.config.max_request_bytes
        body = None
        if raw and not oversize:
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
        headers = {k.lower(): v for k, v in request.headers.items()}
        if self.config.record:
            self.received.append({"method": request.method, "path": request.path, "headers": headers, "json": body})
        version = check_headers(headers)
        if oversize:
            limit = self.config.max_request_bytes
            raise ApiError(413, f"Request exceeds the maximum allowed number of bytes ({limit}).")
        if raw and body is None:
            raise invalid("There was an error parsing the body of your request: invalid JSON")
        return version, body

    async def _guarded(self, request: web.Request, handler: Callable[[str, Any], Any]) -> web.StreamResponse:
        request_id = self.engine.new_id("req")
        try:
            version, body = await self._read(request)
            return await handler(version, body, request, request_id)
        except ApiError as err:
            return self._error(err, request_id)

    # --- messages -------------------------------------------------------------------------------------------

    async def messages(self, request: web.Request) -> web.StreamResponse:
        return await self._guarded(request, self._messages)

    async def _messages(self, version: str, body: Any, request: web.Request, request_id: str) -> web.StreamResponse:
        stream = isinstance(body, dict) and bool(body.get("stream"))
        fault = self.faults.take("/v1/messages", stream)
        if fault is not None and fault.kind in STATUS_FAULTS:
            status = STATUS_FAULTS[fault.kind]
            raise ApiError(status, _FAULT_MESSAGES[status], retry_after=fault.retry_after)
        if fault is not None and not stream:
            if fault.kind == "drop":
                return self._drop(request)
            await asyncio.sleep(fault.seconds)
        headers = {k.lower(): v for k, v in request.headers.items()}
        ticket = self._ticket(headers)
        try:
            at = await self._stamp(headers, ticket)
            outcome = self.engine.respond(body, version, tag_from(headers, body), at=at)
        finally:
            if ticket is not None:
                ticket[0].done(ticket[1])
        if stream:
            try:
                return await self._stream(request, outcome, request_id, fault)
            finally:
                self.engine.settle(body, outcome)
        try:
            await asyncio.sleep(outcome.timing.total(outcome.reply.output_tokens))
        finally:
            self.engine.settle(body, outcome)
        return _json(outcome.message, headers=self._headers(request_id, outcome.headers))

    def _ticket(self, headers: dict[str, str]) -> tuple[Sequencer, int] | None:
        """The request's place in the plan of a driver sharing this simulator's clock (see `_clock`)."""
        sequence = getattr(self.config.clock, "sequence", None)
        token, _, number = headers.get(SEQ_HEADER, "").partition(":")
        if not isinstance(sequence, Sequencer) or token != sequence.token or not number.isdigit():
            return None
        return sequence, int(number)

    async def _stamp(self, headers: dict[str, str], ticket: tuple[Sequencer, int] | None) -> float | None:
        """The scenario time to serve a request at: on a fast-forward clock, its planned time once every call
        planned before it was served; a repeat (retry), or any call on a real-time clock, at its planned time or the
        clock's, whichever is later. None: the clock's."""
        try:
            planned = float(headers[TIME_HEADER])
        except (KeyError, ValueError):
            return None
        clock = self.config.clock
        first = ticket is not None and not ticket[0].is_done(ticket[1])
        if first and not ticket[0].is_due(ticket[1]):  # type: ignore[index]
            assert ticket is not None
            loop = asyncio.get_running_loop()
            turn = loop.create_future()
            ticket[0].when_due(ticket[1], lambda: loop.call_soon_threadsafe(
                lambda: turn.done() or turn.set_result(None)))
            await turn
        # On a clock that waits in real time a late call is late; on a fast-forward one it is served on time.
        at = planned if first and getattr(clock, "fast_forward", False) else max(planned, clock())
        advance = getattr(clock, "advance_to", None)
        if advance is not None:
            advance(at)  # the clock is never behind a request it served (what retries and later requests see)
        return at

    def _drop(self, request: web.Request) -> web.StreamResponse:
        if request.transport is not None:
            request.transport.abort()
        return web.Response(status=500)  # never reaches the client: the socket is gone

    async def _stream(self, request: web.Request, outcome: Outcome, request_id: str,
                      fault: Fault | None) -> web.StreamResponse:
        response = web.StreamResponse(headers=self._headers(request_id, {
            **outcome.headers, "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache"}))
        self.active_streams += 1
        try:
            await response.prepare(request)
            await self._send_events(request, response, outcome, fault)
        except (ConnectionResetError, asyncio.CancelledError):
            pass  # the client went away: nothing to finish
        finally:
            self.active_streams -= 1
        return response

    async def _send_events(self, request: web.Request, response: web.StreamResponse, outcome: Outcome,
                           fault: Fault | None) -> None:
        message_id = outcome.message["id"]
        pending: list[bytes] = []
        owed = 0.0
        first_delta = True
        for number, (name, data, tokens) in enumerate(stream_events(outcome.message)):
            if fault is not None and number == fault.after_events:
                await response.write(b"".join(pending))
                pending.clear()
                if fault.kind == "drop":
                    self._drop(request)
                    return
                if fault.kind == "stream_error":
                    await response.write(encode("error", ApiError(529, "Overloaded").event(), message_id))
                    return
                await asyncio.sleep(fault.seconds)
            if name == "content_block_delta":
                owed += outcome.timing.ttft_s if first_delta else 0.0
                owed += tokens * outcome.timing.per_token_s
                first_delta = False
            if owed >= _MIN_SLEEP_S:
                await response.write(b"".join(pending))
                pending.clear()
                await asyncio.sleep(owed)
                owed = 0.0
            pending.append(encode(name, data, f"{message_id}:{number}"))
        pending.append(b"")
        await response.write(b"".join(pending))
        await response.write_eof()

    # --- other endpoints ------------------------------------------------------------------------------------

    async def count_tokens(self, request: web.Request) -> web.StreamResponse:
        async def handle(version: str, body: Any, _request: web.Request, request_id: str) -> web.Response:
            return _json({"input_tokens": self.engine.count_tokens(body)}, headers=self._headers(request_id))

        return await self._guarded(request, handle)

    def _base(self, request: web.Request) -> str:
        return f"{request.scheme}://{request.host}"

    async def create_batch(self, request: web.Request) -> web.StreamResponse:
        async def handle(version: str, body: Any, req: web.Request, request_id: str) -> web.Response:
            created = self.batches.create(body, version)
            return _json(self.batches.view(created["id"], self._base(req)), headers=self._headers(request_id))

        return await self._guarded(request, handle)

    async def list_batches(self, request: web.Request) -> web.StreamResponse:
        async def handle(version: str, body: Any, req: web.Request, request_id: str) -> web.Response:
            return _json(self.batches.list(self._base(req)), headers=self._headers(request_id))

        return await self._guarded(request, handle)

    async def get_batch(self, request: web.Request) -> web.StreamResponse:
        async def handle(version: str, body: Any, req: web.Request, request_id: str) -> web.Response:
            return _json(self.batches.view(req.match_info["id"], self._base(req)), headers=self._headers(request_id))

        return await self._guarded(request, handle)

    async def cancel_batch(self, request: web.Request) -> web.StreamResponse:
        async def handle(version: str, body: Any, req: web.Request, request_id: str) -> web.Response:
            return _json(self.batches.cancel(req.match_info["id"], self._base(req)), headers=self._headers(request_id))

        return await self._guarded(request, handle)

    async def batch_results(self, request: web.Request) -> web.StreamResponse:
        async def handle(version: str, body: Any, req: web.Request, request_id: str) -> web.Response:
            lines = [json.dumps(entry) for entry in self.batches.results(req.match_info["id"])]
            return web.Response(body=("\n".join(lines) + "\n").encode(), content_type="application/binary",
                                headers=self._headers(request_id))

        return await self._guarded(request, handle)

    @staticmethod
    def _model_json(model_id: str) -> dict[str, Any]:
        model = sim_models()[model_id]
        return {"type": "model", "id": model.id, "display_name": model.info.display_name,
                "created_at": model.created_at, "max_input_tokens": model.context_window,
                "max_tokens": model.max_output_tokens}

    async def list_models(self, request: web.Request) -> web.StreamResponse:
        async def handle(version: str, body: Any, req: web.Request, request_id: str) -> web.Response:
            ids = sorted(sim_models(), key=lambda name: sim_models()[name].created_at, reverse=True)
            after = req.query.get("after_id")
            if after in ids:
                ids = ids[ids.index(after) + 1 :]
            try:
                limit = int(req.query.get("limit", "20"))
            except ValueError:
                raise invalid("limit: Input should be a valid integer") from None
            page = [self._model_json(name) for name in ids[: max(1, min(limit, 1000))]]
            return _json({"data": page, "has_more": len(ids) > len(page),
                          "first_id": page[0]["id"] if page else None, "last_id": page[-1]["id"] if page else None},
                         headers=self._headers(request_id))

        return await self._guarded(request, handle)

    async def get_model(self, request: web.Request) -> web.StreamResponse:
        async def handle(version: str, body: Any, req: web.Request, request_id: str) -> web.Response:
            model = find_model(req.match_info["id"])
            if model is None:
                raise ApiError(404, f"model: {req.match_info['id']}")
            return _json(self._model_json(model.id), headers=self._headers(request_id))

        return await self._guarded(request, handle)


# Running in-process simulators by base URL, so a workload driver pointed at one shares its scenario clock.
_RUNNING: dict[str, SimServer] = {}
_RUNNING_LOCK = threading.Lock()


def running_clock(base_url: str | None) -> Callable[[], float] | None:
    """The clock of the in-process simulator serving `base_url`, if there is one."""
    with _RUNNING_LOCK:
        server = _RUNNING.get((base_url or "").rstrip("/"))
    return server.clock if server is not None else None


class SimServer:
    """The simulator on 127.0.0.1, on a free port by default, served from a background thread.

    Use as a context manager, or `start()` / `stop()`. See the package docstring for the request protocol.
    `clock` is the scenario clock (default: a `ScenarioClock` at real speed that jumps when a driver sharing it
    skips idle time); cache TTLs, rate-limit buckets and batch processing read it.
    """

    def __init__(self, scenario: Scenario | str | None = None, seed: int = 0, latency_scale: float = 0.0,
                 clock: Callable[[], float] | None = None, faults: list[Fault | dict[str, Any]] | None = None, *,
                 host: str = "127.0.0.1", port: int = 0, rate_limits: RateLimits | None = None, record: bool = True,
                 max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES, batch_seconds: float = 0.0) -> None:
        config = SimConfig(
            scenario=load_scenario(scenario) if scenario is not None else None,
            seed=seed,
            latency_scale=latency_scale,
            clock=clock or ScenarioClock(),
            rate_limits=rate_limits or RateLimits(),
            record=record,
            max_request_bytes=max_request_bytes,
            batch_seconds=batch_seconds,
        )
        self._faults = FaultPlan(seed, parse_faults(faults or [], "SimServer(faults=...)"))
        self._app = _App(config, self._faults)
        self._host = host
        self._port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    @property
    def scenario(self) -> Scenario | None:
        return self._app.config.scenario

    @property
    def clock(self) -> Callable[[], float]:
        return self._app.config.clock

    @property
    def base_url(self) -> str:
        return f"http://{self._host}:{self._port}"

    @property
    def port(self) -> int:
        return self._port

    @property
    def received(self) -> list[dict[str, Any]]:
        return self._app.received

    @property
    def active_streams(self) -> int:
        return self._app.active_streams

    @property
    def errors_served(self) -> dict[int, int]:
        """Error responses served so far, by HTTP status (429s of the rate-limit model included)."""
        return dict(self._app.errors)

    def clear_received(self) -> None:
        self._app.received.clear()

    def set_faults(self, faults: list[Fault | dict[str, Any]]) -> None:
        """Replace the fault rules; each hits its next `count` matching requests."""
        parsed = parse_faults(faults, "set_faults")
        if self._loop is not None:
            self._call(self._set_faults(parsed))
        else:
            self._faults.set(parsed)

    async def _set_faults(self, faults: list[Fault]) -> None:
        self._faults.set(faults)

    def _call(self, coroutine: Any) -> Any:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def start(self) -> SimServer:
        if self._thread is not None:
            return self
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"claude-sim:{self._port}", daemon=True)
        self._thread.start()
        self._call(self._serve())
        with _RUNNING_LOCK:
            _RUNNING[self.base_url] = self
        return self

    async def _serve(self) -> None:
        app = web.Application(client_max_size=self._app.config.max_request_bytes + 1024 * 1024)
        app.add_routes(self._app.routes())
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port, backlog=1024)
        await site.start()
        self._port = self._runner.addresses[0][1]

    def stop(self) -> None:
        if self._thread is None or self._loop is None:
            return
        with _RUNNING_LOCK:
            _RUNNING.pop(self.base_url, None)
        if self._runner is not None:
            self._call(self._runner.cleanup())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()
        self._thread = None
        self._loop = None
        self._runner = None

    def __enter__(self) -> SimServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
