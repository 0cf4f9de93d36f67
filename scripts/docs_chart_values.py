"""The chart's values table of scripts/gen_docs.py: every key of helm/tagstream/values.yaml
with its default and its helm-docs style ``# --`` description."""

from __future__ import annotations

import json
import re
from pathlib import Path

from docs_markdown import cell, code, table

VALUES_YAML = Path(__file__).resolve().parents[1] / "helm" / "tagstream" / "values.yaml"


_KEY = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z0-9_.-]+|\"[^\"]+\"|'[^']+'):(?:\s|$)")


class ValuesDocError(ValueError):
    """values.yaml breaks the `# --` convention (an undocumented or unparsable key)."""


def chart_values(path: Path = VALUES_YAML) -> list[tuple[str, object, str, bool]]:
    """(key path, default, description, has children) for every key of values.yaml, in file
    order. Raises `ValuesDocError` for a key without a ``# --`` description."""
    import yaml

    text = path.read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    out: list[tuple[str, object, str, bool]] = []
    stack: list[tuple[int, str]] = []  # (indent, key) of the enclosing maps
    skip_deeper_than: int | None = None  # inside a list or a multi-line scalar
    pending: list[str] | None = None  # the "# --" description being read
    missing: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        indent = len(line) - len(line.lstrip(" "))
        if skip_deeper_than is not None:
            if (
                not stripped
                or indent > skip_deeper_than
                or (stripped.startswith("- ") and indent == skip_deeper_than)
                or stripped == "-"
            ):
                continue
            skip_deeper_than = None
        if not stripped:
            pending = None  # a description must sit directly above its key
            continue
        if stripped.startswith("#"):
            body = stripped[1:].strip()
            if body.startswith("--"):
                pending = [body[2:].strip()]
            elif pending is not None:
                pending.append(body)
            continue
        match = _KEY.match(line)
        if match is None:
            raise ValuesDocError(f"{path.name}:{number}: cannot read this line: {line!r}")
        key = match["key"].strip("\"'")
        while stack and stack[-1][0] >= indent:
            stack.pop()
        keys = [k for _, k in stack] + [key]
        dotted = ".".join(keys)
        value: object = data
        for k in keys:
            value = value[k]  # type: ignore[index]
        has_children = isinstance(value, dict) and bool(value)
        description = " ".join(p for p in (pending or []) if p)
        if not description:
            missing.append(f"{dotted} (line {number})")
        out.append((dotted, value, description, has_children))
        pending = None
        if has_children:
            stack.append((indent, key))
        else:  # a list or a (possibly multi-line) scalar: nothing below it is a key
            skip_deeper_than = indent
    if missing:
        raise ValuesDocError(
            f"{path.name}: these values have no '# --' description: " + ", ".join(missing)
        )
    return out


def chart_values_table(path: Path = VALUES_YAML) -> str:
    rows = []
    for dotted, value, description, has_children in chart_values(path):
        default = (
            ""
            if has_children
            else code(json.dumps(value, separators=(",", ":"), ensure_ascii=False))
        )
        rows.append([code(dotted), default, cell(description)])
    return table(["key", "default", "description"], rows)
