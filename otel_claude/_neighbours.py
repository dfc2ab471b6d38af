"""Other Anthropic instrumentations in the process (OpenLLMetry's, OpenInference's, ...), told once.

They wrap the SDK's resource methods (`Messages.create`, ...) with wrapt, outside otel-claude's hook on the client's
`request`: a call then gets a span from each, and trace views that sum tokens or cost over LLM spans count it
twice. They are found by the wrappers on those methods, in modules already loaded: nothing is imported to look.
"""

from __future__ import annotations

import logging
import sys
import threading

__all__ = ["warn_once_about_others"]

log = logging.getLogger("otel_claude")

# (module, class) whose methods other instrumentations wrap.
_WRAPPED = (
    ("anthropic.resources.messages", "Messages"),
    ("anthropic.resources.messages", "AsyncMessages"),
    ("anthropic.resources.messages.messages", "Messages"),
    ("anthropic.resources.messages.messages", "AsyncMessages"),
)
_METHODS = ("create", "stream", "parse")
_NAMES = {
    "openinference.instrumentation.anthropic": "OpenInference's (openinference-instrumentation-anthropic)",
    "opentelemetry.instrumentation.anthropic": "OpenLLMetry's (opentelemetry-instrumentation-anthropic)",
}

_warned = False
_lock = threading.Lock()


def _wrapper_module(method: object) -> str | None:
    # A wrapt FunctionWrapper keeps the wrapper it calls as `_self_wrapper` (a function or a callable object).
    wrapper = getattr(method, "_self_wrapper", None)
    if wrapper is None:
        return None
    module = getattr(wrapper, "__module__", None) or type(wrapper).__module__
    return module if isinstance(module, str) and not module.startswith("otel_claude") else None


def other_instrumentations() -> list[str]:
    """Names of the other Anthropic instrumentations whose wrappers sit on the SDK now."""
    found: set[str] = set()
    for module_name, class_name in _WRAPPED:
        cls = getattr(sys.modules.get(module_name), class_name, None)
        for method_name in _METHODS:
            module = _wrapper_module(vars(cls).get(method_name)) if isinstance(cls, type) else None
            if module is None:
                continue
            known = next((name for prefix, name in _NAMES.items() if module.startswith(prefix)), None)
            found.add(known or f"one from {module.split('.')[0]} ({module})")
    return sorted(found)


def warn_once_about_others() -> bool:
    """Log one warning, once per process, if another Anthropic instrumentation is active; True once warned."""
    global _warned
    if _warned:
        return True
    others = other_instrumentations()
    if not others:
        return False
    with _lock:
        if _warned:
            return True
        _warned = True
    log.warning(
        "otel_claude: another Anthropic instrumentation is active: %s. Each call gets a span from each, and trace "
        "views that add up tokens or cost over LLM spans count the call twice. Keep one: under "
        "opentelemetry-instrument, OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=anthropic switches the others off "
        "(otel-claude's instrumentor is named otel_claude); in code, uninstrument one of them.",
        ", ".join(others),
    )
    return True
