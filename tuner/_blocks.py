"""The report's building blocks and their two renderings: Markdown and a self-contained HTML page.

Both renderings come from one list of blocks, so the text and the tables cannot disagree; charts are inline SVG in
the HTML page (no script, no network asset) and a one-line mention in Markdown.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Para:
    text: str


@dataclass(frozen=True)
class Table:
    """`align`: one letter per column: `l` text kept on one line (names), `r` a number kept on one line, `w` text
    that may wrap (reasons). Columns without a letter are `l`."""

    headers: tuple[str, ...]
    rows: list[tuple[str, ...]]
    align: str = ""

    def column(self, index: int) -> str:
        return self.align[index] if index < len(self.align) else "l"


@dataclass(frozen=True)
class Chart:
    title: str
    svg: str


Block = Heading | Para | Table | Chart


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|")


def render_markdown(blocks: list[Block]) -> str:
    out = []
    for block in blocks:
        if isinstance(block, Heading):
            out.append(f"{'#' * block.level} {block.text}\n")
        elif isinstance(block, Para):
            out.append(block.text + "\n")
        elif isinstance(block, Table):
            out.append("| " + " | ".join(block.headers) + " |")
            out.append("|" + "".join("---:|" if block.column(i) == "r" else "---|" for i in range(len(block.headers))))
            out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in block.rows]
            out.append("")
        else:
            out.append(f"_Chart: {block.title} (in the HTML report)._\n")
    return "\n".join(out)


_STYLE = """
body{font-family:"DejaVu Sans",system-ui,sans-serif;font-size:14px;line-height:1.45;max-width:1180px;margin:1.5em auto;
padding:0 16px;color:#1f2328}
h1{font-size:24px}h2{font-size:19px;margin-top:1.8em;border-bottom:1px solid #d0d7de;padding-bottom:4px}
h3{font-size:16px;margin-top:1.4em}
table{border-collapse:collapse;margin:0.4em 0 1.2em;font-size:12.5px;max-width:100%}
td,th{border:1px solid #d0d7de;padding:3px 7px;vertical-align:top;text-align:left}
th{background:#f6f8fa;font-weight:600}
td.l,td.r{white-space:nowrap}td.r{text-align:right;font-variant-numeric:tabular-nums}
code{background:#f6f8fa;padding:0 3px;border-radius:3px;font-size:92%}
figure{margin:0.6em 0 1.4em}figure svg{display:block;max-width:100%;height:auto}
figcaption{font-weight:600;font-size:13px;margin-bottom:2px}
"""


def _inline(text: str) -> str:
    parts = escape(text).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def _table(block: Table) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in block.headers)
    rows = "".join(
        "<tr>" + "".join(f'<td class="{block.column(i)}">{_inline(c)}</td>' for i, c in enumerate(row)) + "</tr>"
        for row in block.rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def render_html(blocks: list[Block]) -> str:
    title = next((b.text for b in blocks if isinstance(b, Heading)), "Tuning report")
    out = [
        "<!DOCTYPE html>",
        f'<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>',
        f"<style>{_STYLE}</style></head><body>",
    ]
    for block in blocks:
        if isinstance(block, Heading):
            out.append(f"<h{block.level}>{_inline(block.text)}</h{block.level}>")
        elif isinstance(block, Para):
            out.append(f"<p>{_inline(block.text)}</p>")
        elif isinstance(block, Table):
            out.append(_table(block))
        else:
            out.append(f'<figure class="chart"><figcaption>{escape(block.title)}</figcaption>{block.svg}</figure>')
    out.append("</body></html>")
    return "\n".join(out)
