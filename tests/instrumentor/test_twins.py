"""The sync/async twins stay twins: their syntax trees are equal once async and await are removed.

They are kept as two functions on purpose (a shared core costs every stream event a call: measured +132..162 ns
vs +59 ns per event), so nothing but this test stops a fix to one from missing the other.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "otel_claude"

# (module, sync function, async function); methods are named Class.method.
TWINS = [
    ("_streams.py", "watch_sync", "watch_async"),
    ("_stream_hooks.py", "_sync_close", "_async_close"),
    ("_hooks.py", "Hooks._sync_request", "Hooks._async_request"),
    ("_hooks.py", "_sync_process_response", "_async_process_response"),
    ("_evaluation.py", "_Job.__call__", "_Job.run_async"),
]


class _Desugar(ast.NodeTransformer):
    """async def -> def, async for/with -> for/with, await x -> x; annotations dropped (Iterator vs AsyncIterator)."""

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> ast.AST:
        self.generic_visit(node)
        return ast.FunctionDef(node.name, node.args, node.body, node.decorator_list, None, node.type_comment)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:
        self.generic_visit(node)
        node.returns = None
        return node

    def visit_AsyncFor(self, node: ast.AsyncFor) -> ast.AST:
        self.generic_visit(node)
        return ast.For(node.target, node.iter, node.body, node.orelse, node.type_comment)

    def visit_AsyncWith(self, node: ast.AsyncWith) -> ast.AST:
        self.generic_visit(node)
        return ast.With(node.items, node.body, node.type_comment)

    def visit_Await(self, node: ast.Await) -> ast.AST:
        return self.visit(node.value)

    def visit_arg(self, node: ast.arg) -> ast.AST:
        node.annotation = None
        return node

    def visit_Attribute(self, node: ast.Attribute) -> ast.AST:
        # A twin calls its own twin helpers: `admit_sync` in one is `admit_async` in the other.
        self.generic_visit(node)
        node.attr = _untwin(node.attr)
        return node

    def visit_Name(self, node: ast.Name) -> ast.AST:
        node.id = _untwin(node.id)
        return node


def _untwin(name: str) -> str:
    for mark in ("_async", "_sync"):
        if name.endswith(mark):
            return name[: -len(mark)]
    return name


def _find(tree: ast.Module, dotted: str) -> ast.AST:
    scope: list[ast.stmt] = tree.body
    *outer, name = dotted.split(".")
    for part in outer:
        scope = next(n for n in scope if isinstance(n, ast.ClassDef) and n.name == part).body
    return next(n for n in scope if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == name)


def _shape(node: ast.AST) -> str:
    node = _Desugar().visit(node)
    node.name = "twin"  # type: ignore[attr-defined]
    return ast.dump(node, include_attributes=False)


@pytest.mark.parametrize(("module", "sync", "async_"), TWINS)
def test_twins_have_the_same_syntax_tree(module: str, sync: str, async_: str) -> None:
    tree = ast.parse((PACKAGE / module).read_text(encoding="utf-8"))
    assert _shape(_find(tree, sync)) == _shape(_find(tree, async_)), f"{module}: {sync} and {async_} drifted apart"


def test_the_comparison_sees_a_difference() -> None:
    """A drift the test must catch: one twin ends its watch on exhaustion, the other forgets to."""
    same = ast.parse("def f(it, w):\n    for e in it:\n        yield e\n    w.done()\n").body[0]
    drifted = ast.parse("async def g(it, w):\n    async for e in it:\n        yield e\n").body[0]
    assert _shape(same) != _shape(drifted)
