"""Message batches: create, retrieve, list, cancel, results (JSONL), answered by the same engine at batch prices."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from claude_sim._engine import Engine, tag_from
from claude_sim._errors import ApiError, invalid

_EXPIRY = timedelta(hours=24)


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class Batch:
    id: str
    created: datetime
    ready_at: float  # engine clock time when processing ends
    results: list[dict[str, Any]]
    canceled: bool = False
    ended_at: datetime | None = None
    counts: dict[str, int] = field(default_factory=dict)


class BatchStore:
    def __init__(self, engine: Engine, clock: Callable[[], float], processing_seconds: float) -> None:
        self._engine = engine
        self._clock = clock
        self._seconds = processing_seconds
        self._batches: dict[str, Batch] = {}

    def create(self, body: Any, version: str) -> dict[str, Any]:
        requests = body.get("requests") if isinstance(body, dict) else None
        if not isinstance(requests, list) or not requests:
            raise invalid("requests: Field required (a non-empty list)")
        seen: set[str] = set()
        results = []
        for index, item in enumerate(requests):
            if not isinstance(item, dict) or not isinstance(item.get("custom_id"), str) or "params" not in item:
                raise invalid(f"requests.{index}: needs custom_id (string) and params")
            if item["custom_id"] in seen:
                raise invalid(f"requests.{index}.custom_id: duplicate custom_id {item['custom_id']!r}")
            seen.add(item["custom_id"])
            results.append({"custom_id": item["custom_id"], "result": self._run(item["params"], version)})
        batch = Batch(id=self._engine.new_id("msgbatch"), created=datetime.now(timezone.utc),
                      ready_at=self._clock() + self._seconds, results=results)
        self._batches[batch.id] = batch
        return self.view(batch.id, "")

    def _run(self, params: Any, version: str) -> dict[str, Any]:
        try:
            tag = tag_from({}, params) if isinstance(params, dict) else None
            outcome = self._engine.respond(params, version, tag, service_tier="batch")
        except ApiError as err:
            return {"type": "errored", "error": err.body(self._engine.new_id("req"))}
        return {"type": "succeeded", "message": outcome.message}

    def _get(self, batch_id: str) -> Batch:
        batch = self._batches.get(batch_id)
        if batch is None:
            raise ApiError(404, f"message_batch_id: no batch {batch_id!r}")
        if batch.ended_at is None and (batch.canceled or self._clock() >= batch.ready_at):
            batch.ended_at = datetime.now(timezone.utc)
            if batch.canceled:
                for entry in batch.results:
                    entry["result"] = {"type": "canceled"}
            for entry in batch.results:
                kind = entry["result"]["type"]
                batch.counts[kind] = batch.counts.get(kind, 0) + 1
        return batch

    def view(self, batch_id: str, base_url: str) -> dict[str, Any]:
        batch = self._get(batch_id)
        ended = batch.ended_at is not None
        counts = {kind: batch.counts.get(kind, 0) for kind in ("succeeded", "errored", "canceled", "expired")}
        counts["processing"] = 0 if ended else len(batch.results)
        status = "ended" if ended else ("canceling" if batch.canceled else "in_progress")
        return {
            "id": batch.id,
            "type": "message_batch",
            "processing_status": status,
            "request_counts": counts,
            "created_at": _iso(batch.created),
            "expires_at": _iso(batch.created + _EXPIRY),
            "ended_at": _iso(batch.ended_at) if batch.ended_at else None,
            "archived_at": None,
            "cancel_initiated_at": _iso(batch.created) if batch.canceled else None,
            "results_url": f"{base_url}/v1/messages/batches/{batch.id}/results" if ended else None,
        }

    def cancel(self, batch_id: str, base_url: str) -> dict[str, Any]:
        batch = self._get(batch_id)
        if batch.ended_at is None:
            batch.canceled = True
        return self.view(batch_id, base_url)

    def list(self, base_url: str) -> dict[str, Any]:
        data = [self.view(batch_id, base_url) for batch_id in reversed(self._batches)]
        return {"data": data, "has_more": False, "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None}

    def results(self, batch_id: str) -> list[dict[str, Any]]:
        batch = self._get(batch_id)
        if batch.ended_at is None:
            raise ApiError(404, f"message_batch_id: batch {batch_id!r} has not ended (results not ready)")
        return batch.results


