"""Hot reload of a policy file being written: only a complete, settled file is put in force, a file without
`rules` is an error, every change of content is logged (same version or not), and every rejection names the file.

The tests drive `refresh()` themselves (the poller waits an hour) and date files explicitly: a file dated in the
future is one still being written; one dated in the past was complete before anyone looked.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from reliability_support import LogCatcher

from otel_claude import _policy_source
from otel_claude._policy_source import FileSource

RULES = ["  - {task: classify, max_tokens: 200}\n", "  - {task: summarize, max_tokens: 900}\n",
         "  - {task: extract, max_tokens: 400}\n"]


def document(version: str, rules: list[str]) -> str:
    return f"schema_version: 1\nversion: {version}\nrules:\n" + "".join(rules)


def write(path: Path, text: str | bytes, *, settled: bool) -> None:
    """Write the file and date it: settled (long ago) or still being written (a minute from now)."""
    if isinstance(text, str):
        path.write_text(text)
    else:
        path.write_bytes(text)
    date(path, settled=settled)


def date(path: Path, *, settled: bool) -> None:
    # Distinct stamps for successive writes: the nanoseconds of now.
    stamp = 1_000_000_000 * 10**9 + time.time_ns() % 10**9 if settled else time.time_ns() + 60 * 10**9
    os.utime(path, ns=(stamp, stamp))


def source_at(path: Path) -> FileSource:
    return FileSource(str(path), reload_interval=3600)


def errors(catcher: LogCatcher) -> list[str]:
    return [r.getMessage() for r in catcher.records if r.levelno >= logging.ERROR]


def test_a_file_still_being_written_is_not_put_in_force(tmp_path: Path, log_catcher: LogCatcher) -> None:
    path = tmp_path / "policy.yaml"
    write(path, document("v1", RULES), settled=True)
    source = source_at(path)
    assert source.current().version == "v1" and len(source.current().rules) == 3
    complete = document("v2", RULES)
    # A deploy tool has written the header and the first rule: a valid policy, with 1 rule of 3.
    write(path, complete[: complete.index(RULES[1])], settled=False)
    source.refresh()
    assert source.current().version == "v1", "a partial file replaced the policy in force"
    write(path, complete, settled=False)
    source.refresh()
    assert source.current().version == "v1", "read while it was still changing"
    source.refresh()  # unchanged since the last check: complete
    assert source.current().version == "v2" and len(source.current().rules) == 3
    assert any("policy v2 from" in message and "in force (3 rules" in message for message in log_catcher.messages())
    assert errors(log_catcher) == []


def test_a_file_without_rules_is_rejected(tmp_path: Path, log_catcher: LogCatcher) -> None:
    path = tmp_path / "policy.yaml"
    write(path, document("v1", RULES), settled=True)
    source = source_at(path)
    write(path, "schema_version: 1\nversion: v2\n", settled=True)  # the header, cut short
    source.refresh()
    assert source.current().version == "v1"
    assert source.last_error is not None and "field 'rules': is required" in source.last_error
    assert any(str(path) in message for message in errors(log_catcher))


def test_a_content_change_under_the_same_version_is_logged(tmp_path: Path, log_catcher: LogCatcher) -> None:
    path = tmp_path / "policy.yaml"
    write(path, document("v1", RULES[:1]), settled=True)
    source = source_at(path)
    write(path, document("v1", RULES), settled=True)
    source.refresh()
    assert len(source.current().rules) == 3
    changed = [r for r in log_catcher.records if "changed content but not its version" in r.getMessage()]
    assert len(changed) == 1 and str(path) in changed[0].getMessage()
    write(path, document("v1", RULES) + "# a comment only\n", settled=True)
    source.refresh()  # same policy: nothing to say
    assert len([r for r in log_catcher.records if "changed content" in r.getMessage()]) == 1


def _unexpected(*args: object, **kwargs: object) -> None:
    raise RuntimeError("a bug while loading")


BAD_FILES: dict[str, Callable[[Path, pytest.MonkeyPatch], None]] = {
    "not UTF-8": lambda path, _: write(path, b"schema_version: 1\nversion: \xfb\xfc\n", settled=True),
    "binary junk": lambda path, _: write(path, b"\x00\x01\x02" * 100, settled=True),
    "invalid policy": lambda path, _: write(path, "schema_version: 1\nversion: v\nrules: [{task: a, model: x}]\n",
                                            settled=True),
    "missing": lambda path, _: path.unlink(),
    "a directory": lambda path, _: (path.unlink(), path.mkdir(), date(path, settled=True)),
    "over the size limit": lambda path, _: write(path, "#" * (_policy_source._MAX_BYTES + 1), settled=True),
    "a bug while loading": lambda path, monkeypatch: (
        monkeypatch.setattr(_policy_source, "load_policy_text", _unexpected),
        write(path, document("v2", RULES), settled=True)),
}


@pytest.mark.parametrize("bad", list(BAD_FILES))
def test_every_rejection_names_the_file(tmp_path: Path, log_catcher: LogCatcher, monkeypatch: pytest.MonkeyPatch,
                                        bad: str) -> None:
    path = tmp_path / "policy.yaml"
    write(path, document("v1", RULES), settled=True)
    source = source_at(path)
    BAD_FILES[bad](path, monkeypatch)
    source._check()  # the poller's entry point: it also catches what refresh() did not expect
    assert source.current().version == "v1"
    logged = errors(log_catcher)
    assert len(logged) == 1, logged
    assert logged[0].startswith(f"otel_claude: policy rejected: {path}: "), logged[0]
    assert source.last_error is not None and source.last_error.startswith(f"{path}: ")
