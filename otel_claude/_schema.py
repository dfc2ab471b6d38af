"""Validation of a JSON value against the JSON Schema subset that tool input schemas and structured outputs use.

Written here rather than taken from `jsonschema` because the instrumentor's dependencies stay minimal (that package
brings four more, one of them compiled). Covered: type, enum, const, properties, required, additionalProperties,
items, prefixItems, min/maxItems, min/maxLength, minimum/maximum (and exclusive), anyOf, oneOf, allOf, not, and local
`$ref`s (`#/$defs/...`, `#/definitions/...`). Other keywords (formats, patterns) are not checked: this grader may
call an answer valid that a full validator rejects, never the reverse.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["is_valid"]

_MAX_DEPTH = 64


def _type_ok(value: Any, kind: str) -> bool:
    if kind == "object":
        return isinstance(value, dict)
    if kind == "array":
        return isinstance(value, list)
    if kind == "string":
        return isinstance(value, str)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "null":
        return value is None
    if isinstance(value, bool):
        return False
    if kind == "integer":
        return isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if kind == "number":
        return isinstance(value, (int, float))
    return True  # an unknown type name constrains nothing we can check


def _resolve(root: Mapping[str, Any], ref: str) -> Any:
    if not ref.startswith("#/"):
        return None
    node: Any = root
    for part in ref[2:].split("/"):
        if not isinstance(node, Mapping):
            return None
        node = node.get(part.replace("~1", "/").replace("~0", "~"))
    return node


def _valid(value: Any, schema: Any, root: Mapping[str, Any], depth: int) -> bool:
    if depth > _MAX_DEPTH:
        return True  # a schema this deep (or a $ref cycle): stop checking rather than recurse without bound
    if schema is True or schema is None:
        return True
    if schema is False:
        return False
    if not isinstance(schema, Mapping):
        return True
    ref = schema.get("$ref")
    if isinstance(ref, str):
        target = _resolve(root, ref)
        if target is not None and not _valid(value, target, root, depth + 1):
            return False
    kind = schema.get("type")
    if isinstance(kind, str) and not _type_ok(value, kind):
        return False
    if isinstance(kind, list) and not any(_type_ok(value, k) for k in kind if isinstance(k, str)):
        return False
    if "enum" in schema and isinstance(schema["enum"], list) and value not in schema["enum"]:
        return False
    if "const" in schema and value != schema["const"]:
        return False
    if isinstance(value, dict) and not _object_ok(value, schema, root, depth):
        return False
    if isinstance(value, list) and not _array_ok(value, schema, root, depth):
        return False
    if isinstance(value, str) and not _bounded(len(value), schema.get("minLength"), schema.get("maxLength")):
        return False
    if isinstance(value, (int, float)) and not isinstance(value, bool) and not _number_ok(value, schema):
        return False
    return _combinators_ok(value, schema, root, depth)


def _object_ok(value: dict[str, Any], schema: Mapping[str, Any], root: Mapping[str, Any], depth: int) -> bool:
    required = schema.get("required")
    if isinstance(required, list) and any(isinstance(k, str) and k not in value for k in required):
        return False
    properties = schema.get("properties")
    properties = properties if isinstance(properties, Mapping) else {}
    extra = schema.get("additionalProperties", True)
    for key, item in value.items():
        if key in properties:
            if not _valid(item, properties[key], root, depth + 1):
                return False
        elif not _valid(item, extra, root, depth + 1):
            return False
    return True


def _array_ok(value: list[Any], schema: Mapping[str, Any], root: Mapping[str, Any], depth: int) -> bool:
    if not _bounded(len(value), schema.get("minItems"), schema.get("maxItems")):
        return False
    prefix = schema.get("prefixItems")
    prefix = prefix if isinstance(prefix, list) else []
    for item, item_schema in zip(value, prefix, strict=False):
        if not _valid(item, item_schema, root, depth + 1):
            return False
    items = schema.get("items")
    if isinstance(items, (Mapping, bool)):
        return all(_valid(item, items, root, depth + 1) for item in value[len(prefix):])
    return True


def _bounded(size: int, low: Any, high: Any) -> bool:
    if isinstance(low, int) and size < low:
        return False
    return not (isinstance(high, int) and size > high)


def _number_ok(value: float, schema: Mapping[str, Any]) -> bool:
    checks = (("minimum", lambda b: value >= b), ("maximum", lambda b: value <= b),
              ("exclusiveMinimum", lambda b: value > b), ("exclusiveMaximum", lambda b: value < b))
    for key, test in checks:
        bound = schema.get(key)
        if isinstance(bound, (int, float)) and not isinstance(bound, bool) and not test(bound):
            return False
    return True


def _combinators_ok(value: Any, schema: Mapping[str, Any], root: Mapping[str, Any], depth: int) -> bool:
    all_of, any_of, one_of = schema.get("allOf"), schema.get("anyOf"), schema.get("oneOf")
    if isinstance(all_of, list) and not all(_valid(value, s, root, depth + 1) for s in all_of):
        return False
    if isinstance(any_of, list) and not any(_valid(value, s, root, depth + 1) for s in any_of):
        return False
    if isinstance(one_of, list) and sum(_valid(value, s, root, depth + 1) for s in one_of) != 1:
        return False
    negated = schema.get("not")
    return not (isinstance(negated, (Mapping, bool)) and _valid(value, negated, root, depth + 1))


def is_valid(value: Any, schema: Any) -> bool:
    """Whether `value` satisfies `schema` (as far as the covered keywords tell)."""
    root = schema if isinstance(schema, Mapping) else {}
    return _valid(value, schema, root, 0)
