"""Markdown table helpers of scripts/gen_docs.py (GitHub-flavoured: pipes escaped in cells)."""

from __future__ import annotations

import re

__all__ = ["cell", "code", "table"]


def cell(text: str) -> str:
    """Text for a table cell: pipes escaped, and < > outside code spans as entities (GitHub
    would otherwise take "<hostname>" for an HTML tag and drop it)."""
    parts = re.split(r"(`[^`]*`)", text)
    out = []
    for i, part in enumerate(parts):
        if i % 2 == 0:  # outside a code span
            part = part.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        out.append(part.replace("|", r"\|"))
    return "".join(out)


def code(text: str) -> str:
    text = text.replace("|", r"\|")
    fence = "``" if "`" in text else "`"
    pad = " " if "`" in text else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)
