"""The rule that instrumentation never breaks the host: failures inside it are logged once per site, then swallowed.

The log shows where the failure happened and the exception's type, never its message: a message can quote the
data being read (a response body, a header, a request), and logs must carry no content or credential.
"""

from __future__ import annotations

import logging
import sys
import traceback

__all__ = ["describe_failure", "report_failure"]

log = logging.getLogger("otel_claude")
_reported: set[str] = set()


def describe_failure(err: BaseException | None) -> str:
    """The traceback of `err` (and of the exceptions it was raised from) with each exception's type, no message."""
    if err is None:
        return "(no exception)"
    parts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        stack = traceback.StackSummary.extract(traceback.walk_tb(current.__traceback__), capture_locals=False)
        kind = type(current)
        parts.append("".join(stack.format()) + f"{kind.__module__}.{kind.__qualname__} (message withheld)\n")
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
    return "\n-- raised while handling --\n".join(reversed(parts))


def report_failure(where: str) -> None:
    """Call from an `except Exception:` block. Logs the traceback the first time per site, debug after that."""
    detail = describe_failure(sys.exc_info()[1])
    if where in _reported:
        log.debug("otel_claude: failure while %s\n%s", where, detail)
        return
    _reported.add(where)
    log.warning("otel_claude: internal failure while %s; the API call is unaffected\n%s", where, detail)
