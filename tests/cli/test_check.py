"""`otel-claude check POLICY...`: exit 0 for valid policies, 1 with every problem listed, files and URLs alike."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from otel_claude._cli import main

VALID = """schema_version: 1
version: "v7"
rules:
  - task: classify
    model: claude-haiku-4-5
    max_tokens: 256
"""
# Five problems: a misspelt key, a misspelt model, a bad value in a nested block, a bad mode, a bad limit.
BROKEN = """schema_version: 1
version: "v8"
mode: enforced
rules:
  - task: classify
    max_tokns: 256
    model: claude-sonet-4-6
  - task: draft
    cache: {ttl: 10m}
limits:
  - concurrency: 0
"""


def check(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, list[str]]:
    code = main(["check", *args])
    out, err = capsys.readouterr()
    return code, out, err.strip().splitlines()


def test_a_valid_policy_exits_0_and_says_what_it_holds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(VALID)
    code, out, err = check(capsys, str(path))
    assert (code, err) == (0, [])
    assert out.strip() == f"{path}: valid: policy v7, mode enforce, 1 rules, 0 limits"


def test_every_problem_is_listed_with_suggestions(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(BROKEN)
    code, out, err = check(capsys, str(path))
    assert code == 1 and out == ""
    assert err[-1] == f"{path}: invalid (5 problems)"
    problems = err[:-1]
    assert len(problems) == 5 and all(line.startswith(f"{path}: ") for line in problems)
    text = "\n".join(problems)
    assert "field 'mode': must be one of enforce, shadow, off, got 'enforced'; did you mean 'enforce'?" in text
    assert "rules[0] (task 'classify'): field 'max_tokns': unknown key; did you mean 'max_tokens'?" in text
    assert "rules[0] (task 'classify'): field 'model': unknown model 'claude-sonet-4-6' (not in the model " \
           "catalog; did you mean 'claude-sonnet-4-6'?)" in text
    assert "rules[1] (task 'draft'): field 'cache.ttl'" in text
    assert "limits[0]: field 'concurrency': must be an integer >= 1, got 0" in text


def test_several_files_exit_1_if_any_is_invalid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good, bad, missing = tmp_path / "good.yaml", tmp_path / "bad.yaml", tmp_path / "missing.yaml"
    good.write_text(VALID)
    bad.write_text(BROKEN)
    code, out, err = check(capsys, str(good), str(bad), str(missing))
    assert code == 1
    assert out.startswith(f"{good}: valid")
    assert f"{bad}: invalid (5 problems)" in err
    assert f"{missing}: cannot read (No such file or directory)" in err


class _Policies(http.server.BaseHTTPRequestHandler):
    documents: ClassVar[dict[str, str]] = {}

    def do_GET(self) -> None:
        body = self.documents.get(self.path.split("?")[0])
        if body is None:
            self.send_error(404)
            return
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def policy_server() -> Iterator[str]:
    _Policies.documents = {"/good.yaml": VALID, "/bad.yaml": BROKEN}
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Policies)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    thread.join(timeout=10)


def test_urls_are_checked_like_files_and_credentials_never_printed(policy_server: str,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = check(capsys, f"{policy_server}/good.yaml?token=s3cret")
    assert code == 0
    assert out.strip().startswith(f"{policy_server}/good.yaml: valid: policy v7") and "s3cret" not in out
    code, _, err = check(capsys, f"{policy_server.replace('http://', 'http://me:pw9@')}/bad.yaml")
    assert code == 1
    assert err[-1] == f"{policy_server}/bad.yaml: invalid (5 problems)"
    assert "pw9" not in "\n".join(err)
    code, _, err = check(capsys, f"{policy_server}/absent.yaml")
    assert code == 1 and err[0] == f"{policy_server}/absent.yaml: HTTP 404"
