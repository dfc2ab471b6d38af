"""The task label: which job of the service a call belongs to. The tuner decides per task."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from contextvars import ContextVar, Token
from typing import Any, TypeVar

__all__ = ["current_task", "task"]

_F = TypeVar("_F", bound=Callable[..., Any])

# A ContextVar follows asyncio tasks and contextvars.copy_context() into threads, so a label set around a call
# reaches the call wherever the SDK runs it.
_TASK: ContextVar[str | None] = ContextVar("otel_claude_task", default=None)


def current_task() -> str | None:
    return _TASK.get()


class task:
    """Label every Anthropic call made inside it with a task name.

    Works as a context manager (sync and async) and as a decorator of sync and async functions::

        with otel_claude.task("classify"):
            client.messages.create(...)

        @otel_claude.task("summarize")
        async def summarize(doc): ...
    """

    __slots__ = ("_name", "_tokens")

    def __init__(self, name: str) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError("otel_claude.task() needs a non-empty string name")
        self._name = name
        # A stack, so one task object can be re-entered (nested or reused) and still restore correctly.
        self._tokens: list[Token[str | None]] = []

    @property
    def name(self) -> str:
        return self._name

    def __enter__(self) -> task:
        self._tokens.append(_TASK.set(self._name))
        return self

    def __exit__(self, *exc: object) -> None:
        _TASK.reset(self._tokens.pop())

    async def __aenter__(self) -> task:
        return self.__enter__()

    async def __aexit__(self, *exc: object) -> None:
        self.__exit__()

    def __call__(self, func: _F) -> _F:
        name = self._name
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                token = _TASK.set(name)
                try:
                    return await func(*args, **kwargs)
                finally:
                    _TASK.reset(token)

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            token = _TASK.set(name)
            try:
                return func(*args, **kwargs)
            finally:
                _TASK.reset(token)

        return wrapper  # type: ignore[return-value]
