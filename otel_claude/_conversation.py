"""Reading message content once: sizes, cache breakpoints, and the keys that link a conversation's turns.

A chat or agent loop resends its whole transcript every turn. Turn k+1 is `turn k's messages + turn k's answer +
the new user message (a question or tool results)`, so the part of turn k+1 that turn k already sent ends just
before the newest assistant message. Two hashes make that visible without the content: the fingerprint, of
everything up to the newest user message, and the parent, of everything up to the previous turn's last user
message. A call continues another exactly when its parent equals the other's fingerprint: that prefix is what a
prompt cache written by the earlier call can serve to the later one.

What is hashed, so that equal prefixes give equal keys however the caller resends them:
- a block's meaning, not its wire form: a string content is the same as one text block, `cache_control` is left
  out (a policy or the caller moves it every turn), and an answer resent as the SDK's own objects (anthropic 2.x
  passes them through to the request) hashes like the same answer as dicts (0.x dumps them first);
- the link never hashes the newest answer, only what precedes it, so how an answer is resent cannot break it;
- tool calls by their id and name (ids are unique per call; their inputs add nothing and cost a serialisation).
Text of 1,024 characters and more enters the hash as its own digest, memoized by string: an agent's transcript
keeps the same string objects turn after turn, so each long text is hashed once rather than once per turn.
The hash is SHA-256 cut to 64 bits: with the CPU's SHA extensions it runs at about twice blake2b's speed, and a
20-turn transcript is tens of kilobytes.
"""

from __future__ import annotations

import hashlib
import weakref
from dataclasses import dataclass
from typing import Any

__all__ = ["Messages", "Turns", "content_size", "field_of", "find_turns", "read_messages"]

_LONG_TEXT = 1024
# Memo of long texts' digests, by text. It holds the strings (a str cannot be weakly referenced), so it is bounded
# by their total length and emptied when full.
_DIGESTS: dict[str, str] = {}
_MAX_MEMO_CHARS = 4_000_000
_memo_chars = 0
_EMPTY: dict[str, Any] = {}
# Canonical form and size of the SDK's own block objects (an answer resent as returned), by object: the same
# objects come back every turn, and reading one costs several field lookups. An entry holds a weak reference that
# must still point at the object (ids are reused once an object is freed); bounded by entries, emptied when full.
_MODELS: dict[int, tuple[Any, int, str]] = {}
_MAX_MODELS = 20_000


@dataclass(frozen=True, slots=True)
class Turns:
    """Where a request's newest turn sits in its messages."""

    last_user: int  # index of the newest user message (an assistant prefill may follow it)
    previous_end: int | None  # index of the last message the previous turn sent; None on a first turn
    turn: int  # answers before the newest user message: 0 on a first turn


@dataclass(frozen=True, slots=True)
class Messages:
    """What one read of a messages list found."""

    chars: int = 0
    breakpoints: int = 0
    history_chars: int = 0  # characters of the messages the previous turn sent
    turns: Turns | None = None
    fingerprint: str | None = None
    parent: str | None = None


_NO_MESSAGES = Messages()


def _fields(item: Any) -> Any:
    # Pydantic models keep their fields in __dict__: reading a field a model lacks with getattr costs an exception
    # inside pydantic's __getattr__ (about 2 us, several times per block).
    if isinstance(item, dict):
        return item
    fields = getattr(item, "__dict__", None)
    if not isinstance(fields, dict):
        return _EMPTY
    # Attributes set on a model that it does not declare (`block.cache_control = ...`) are sent too.
    extra = getattr(item, "__pydantic_extra__", None)
    return {**fields, **extra} if extra else fields


def field_of(item: Any, name: str) -> Any:
    """A field of a dict, or of one of the SDK's model objects."""
    return _fields(item).get(name)


def find_turns(messages: list[Any]) -> Turns | None:
    """The turn structure of a messages list; None when it has no user message."""
    return _turns([_fields(message).get("role") for message in messages])


def _turns(roles: list[Any]) -> Turns | None:
    index = len(roles) - 1
    while index >= 0 and roles[index] == "assistant":  # a prefill is not part of any turn's history
        index -= 1
    if index < 0 or roles[index] != "user":
        return None
    answers = roles[:index].count("assistant")
    answer = index - 1 - roles[index - 1 :: -1].index("assistant") if answers else -1
    return Turns(index, answer - 1 if answer >= 1 else None, answers)


def _long(text: str) -> str:
    global _memo_chars
    digest = _DIGESTS.get(text)
    if digest is None:
        digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
        if _memo_chars + len(text) > _MAX_MEMO_CHARS:
            _DIGESTS.clear()
            _memo_chars = 0
        _DIGESTS[text] = digest
        _memo_chars += len(text)
    return digest


def _s(value: Any) -> str:
    """A field as it enters the hash: short text as itself, long text as its digest."""
    if not isinstance(value, str):
        value = "" if value is None else str(value)
    return value if len(value) < _LONG_TEXT else _long(value)


def _model_block(block: Any, out: list[str] | None) -> tuple[int, int]:
    """`_block` for one of the SDK's model objects, memoized by object (see `_MODELS`)."""
    entry = _MODELS.get(id(block))
    if entry is None or entry[0]() is not block:
        form: list[str] = []
        chars, _ = _block(block, form, memo=False)
        if len(_MODELS) >= _MAX_MODELS:
            _MODELS.clear()
        try:
            entry = _MODELS[id(block)] = (weakref.ref(block), chars, "".join(form))
        except TypeError:  # an object that cannot be weakly referenced: not memoized
            entry = (None, chars, "".join(form))
    if out is not None:
        out.append(entry[2])
    # Breakpoints are read every time: a caller may set one on an answer it resends (budget safety).
    return entry[1], 1 if _fields(block).get("cache_control") else 0


def _block(block: Any, out: list[str] | None, memo: bool = True) -> tuple[int, int]:
    """(characters, breakpoints) of one block; with `out`, its canonical form appended there.

    Fields are separated by NUL and tagged by kind: text that itself holds such separators could make two prefixes
    encode alike, which would only mislink a turn in the tuner's statistics.
    """
    if isinstance(block, str):
        if out is not None:
            out.append("\0T")
            out.append(_s(block))
        return len(block), 0
    if not isinstance(block, dict) and memo:
        return _model_block(block, out)
    get = (block if isinstance(block, dict) else _fields(block)).get
    marks = 1 if get("cache_control") else 0
    text = get("text")
    if isinstance(text, str):
        if out is not None:
            kind = get("type")
            out.append("\0T" if kind == "text" else f"\0t{kind}")
            out.append(_s(text))
        return len(text), marks
    inner = get("content")
    if isinstance(inner, (str, list)):  # tool_result, search results: their content nests blocks
        if out is not None:
            out.append(f"\0R{'!' if get('is_error') else ''}{get('type')}\0{_s(get('tool_use_id'))}")
        chars, inner_marks = content_size(inner, out)
        return chars, marks + inner_marks
    inp = get("input")
    # Blocks without text, content or input (images, documents) count as nothing: their tokens are not text.
    chars = len(repr(inp)) if inp is not None else 0
    if out is None:
        return chars, marks
    kind = get("type")
    if inp is not None and get("id"):
        out.append(f"\0U{_s(get('id'))}\0{_s(get('name'))}")
    elif kind == "thinking":
        # The signature identifies the thinking it signs; the thinking itself may be long.
        out.append("\0K")
        out.append(_s(get("signature") or get("thinking")))
    elif kind == "redacted_thinking":
        out.append("\0D")
        out.append(_s(get("data")))
    elif get("source") is not None:
        source = _fields(get("source")).get
        out.append(f"\0M{kind}")
        for name in ("type", "media_type", "data", "url", "file_id"):
            out.append("\0")
            out.append(_s(source(name)))
    else:
        # Anything else (blocks of a newer API): its representation without the breakpoint.
        out.append("\0O")
        out.append(_s(repr({k: v for k, v in _fields(block).items() if k != "cache_control"} or block)))
    return chars, marks


def content_size(content: Any, out: list[str] | None = None) -> tuple[int, int]:
    """(characters, breakpoints) of a content (a string or a list of blocks); with `out`, its canonical form."""
    if isinstance(content, list):
        if out is not None:
            out.append(f"\0[{len(content)}")
        chars = marks = 0
        for block in content:
            c, m = _block(block, out)
            chars += c
            marks += m
        return chars, marks
    if out is not None:
        out.append("\0[1")  # a string content is one text block
    return _block(content if content is not None else "", out)


def _short(running: Any) -> str:
    return str(running.hexdigest()[:16])


def read_messages(messages: Any, prefix: str | None) -> Messages:
    """Sizes and breakpoints of a messages list, and its conversation keys.

    `prefix` is the tools + system fingerprint: the keys' hash chain starts from it rather than hashing them again.
    """
    if not isinstance(messages, list) or not messages:
        return _NO_MESSAGES
    fields = [message if type(message) is dict else _fields(message) for message in messages]
    roles = [f.get("role") for f in fields]
    turns = _turns(roles)
    last_user = turns.last_user if turns is not None else -1
    history_end = turns.previous_end if turns is not None and turns.previous_end is not None else -1
    running = hashlib.sha256((prefix or "").encode()) if turns is not None else None
    parent = None
    history_chars = chars = marks = 0
    out: list[str] = []
    for position, message in enumerate(fields):
        content = message.get("content")
        if type(content) is str:  # the commonest content, read inline: this loop runs over every message
            chars += len(content)
            if position <= last_user:
                out.append(f"\n{roles[position]}\0[1\0T")  # as content_size writes a one-text-block content
                out.append(content if len(content) < _LONG_TEXT else _long(content))
        else:
            if position <= last_user:
                out.append(f"\n{roles[position]}")
            c, m = content_size(content, out if position <= last_user else None)
            chars += c
            marks += m
        if position == history_end and running is not None:
            running.update("".join(out).encode("utf-8", "surrogatepass"))
            out.clear()
            parent = _short(running)
            history_chars = chars
    if running is None:
        return Messages(chars, marks)
    running.update("".join(out).encode("utf-8", "surrogatepass"))
    return Messages(chars, marks, history_chars, turns, _short(running), parent)
