"""The rule that instrumentation never breaks the host: failures inside it are logged once per site, then swallowed."""

from __future__ import annotations

import logging

__all__ = ["report_failure"]

log = logging.getLogger("otel_claude")
_reported: set[str] = set()


def report_failure(where: str) -> None:
    """Call from an `except Exception:` block. Logs the traceback the first time per site, debug after that."""
    if where in _reported:
        log.debug("otel_claude: failure while %s", where, exc_info=True)
        return
    _reported.add(where)
    log.warning("otel_claude: internal failure while %s; the API call is unaffected", where, exc_info=True)
