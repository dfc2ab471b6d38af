"""examples/fastapi_service.py as a real server process: tasks, async, sync, streaming, feedback, a policy, and
a SIGTERM shutdown that must flush spans and metrics that were still batched."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from claude_sim.collector import CollectorStub

SERVICE = Path(__file__).resolve().parents[2] / "examples" / "fastapi_service.py"
POLICY_VERSION = "service-example-1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# Bounds on waits are hang guards, generous enough for a loaded 2-core CI machine: nothing here measures time.
HANG_GUARD_S = 300


def post(url: str, body: dict[str, Any]) -> bytes:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=HANG_GUARD_S) as response:
        assert response.status == 200
        return response.read()


def wait_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    end = time.monotonic() + HANG_GUARD_S
    while True:
        try:
            with urllib.request.urlopen(url, timeout=HANG_GUARD_S) as response:
                if response.status == 200:
                    return
        except OSError:
            if process.poll() is not None:
                stderr = process.stderr.read().decode() if process.stderr else ""
                raise AssertionError(f"service exited: {stderr}") from None
            if time.monotonic() > end:
                raise
            threading.Event().wait(0.1)


def test_service_labels_tasks_records_feedback_and_flushes_on_sigterm(
    example_env: dict[str, str], otlp_sink: CollectorStub, tmp_path: Path
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        f'schema_version: 1\nversion: "{POLICY_VERSION}"\nrules:\n  - task: classify\n    max_tokens: 16\n',
        encoding="utf-8",
    )
    port = free_port()
    env = {
        **example_env,
        "OTEL_SERVICE_NAME": "support-bot",
        # Nothing is exported on a timer during the test: what arrives, arrives because of the shutdown.
        "OTEL_BSP_SCHEDULE_DELAY": "600000",
        "OTEL_METRIC_EXPORT_INTERVAL": "600000",
        # The shutdown's exports must not give up on a slow (loaded) machine: seconds, in the Python exporters.
        "OTEL_EXPORTER_OTLP_TIMEOUT": "120",
        "OTEL_BSP_EXPORT_TIMEOUT": "120000",
        "OTEL_METRIC_EXPORT_TIMEOUT": "120000",
    }
    process = subprocess.Popen(
        [sys.executable, str(SERVICE), "--port", str(port), "--policy", str(policy)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(f"{base}/healthz", process)
        classified = json.loads(post(f"{base}/classify", {"text": "I was charged twice"}))
        summary = json.loads(post(f"{base}/summarize", {"text": "A long complaint about invoices. " * 20}))
        streamed = post(f"{base}/chat/stream", {"message": "Tell me about your refund policy"})
        assert classified["response_id"] and summary["response_id"] and streamed
        post(f"{base}/feedback", {"response_id": classified["response_id"], "score": 1.0, "label": "correct"})
        assert otlp_sink.spans() == [], "spans were exported before shutdown: the flush is not what's tested"
    finally:
        process.send_signal(signal.SIGTERM)
        stderr = process.communicate(timeout=HANG_GUARD_S)[1].decode()
    # uvicorn re-raises the signal once its graceful shutdown is done, so the exit status is SIGTERM's.
    assert process.returncode in (0, -signal.SIGTERM), stderr

    spans = otlp_sink.spans()
    call_spans = [s for s in spans if s["scope"] == "otel_claude" and s["name"] != "evaluation feedback"]
    # The policy's safety net may re-send a truncated classify call: the first span of a task is the policy's.
    calls: dict[str, dict] = {}
    for span in call_spans:
        calls.setdefault(span["attributes"].get("otel_claude.task"), span)
    assert set(calls) == {"classify", "summarize", "chat"}
    assert all(span["resource"]["service.name"] == "support-bot" for span in spans)
    classify_ids = {s["attributes"]["gen_ai.response.id"] for s in call_spans if s["attributes"].get("otel_claude.task")
                    == "classify"}
    assert classified["response_id"] in classify_ids
    chat = calls["chat"]["attributes"]
    assert chat["gen_ai.request.stream"] is True
    assert chat["otel_claude.stream.complete"] is True
    assert chat["gen_ai.response.time_to_first_chunk"] >= 0
    feedback = [span for span in spans if span["name"] == "evaluation feedback"]
    assert len(feedback) == 1
    assert feedback[0]["attributes"]["gen_ai.response.id"] == classified["response_id"]
    assert feedback[0]["attributes"]["gen_ai.evaluation.score.value"] == 1.0
    assert {"gen_ai.client.operation.duration", "otel_claude.calls"} <= otlp_sink.metric_names()
    assert calls["classify"]["attributes"]["otel_claude.policy.version"] == POLICY_VERSION
    assert calls["classify"]["attributes"]["gen_ai.request.max_tokens"] == 16
