"""JSON Pointers (RFC 6901): where in an input document the text and the id are, and where an
enriched output puts the entities.

>>> doc = {"payload": {"body": "Paris", "tags": ["a", "b"]}, "a/b": 1}
>>> resolve(doc, parse("/payload/body"))
'Paris'
>>> resolve(doc, parse("/payload/tags/1")), resolve(doc, parse("/a~1b"))
('b', 1)
"""

from __future__ import annotations

from functools import cache
from typing import Any

_MISSING = object()


class PointerError(ValueError):
    """A pointer that is not RFC 6901 syntax, or that cannot be written into a document."""


@cache
def parse(pointer: str) -> tuple[str, ...]:
    """The reference tokens of ``pointer``: ``""`` is the whole document, ``"/a/b"`` is
    ``("a", "b")``; ``~1`` stands for ``/`` and ``~0`` for ``~``."""
    if pointer == "":
        return ()
    if not pointer.startswith("/"):
        raise PointerError(f"{pointer!r} is not a JSON Pointer: it must be empty or start with /")
    tokens = pointer[1:].split("/")
    for token in tokens:
        rest = token.replace("~0", "").replace("~1", "")
        if "~" in rest:
            raise PointerError(f"{pointer!r}: ~ must be followed by 0 or 1 (RFC 6901)")
    return tuple(t.replace("~1", "/").replace("~0", "~") for t in tokens)


def resolve(doc: Any, tokens: tuple[str, ...], default: Any = _MISSING) -> Any:
    """The value at ``tokens`` in ``doc``; ``default`` (else KeyError) where there is none."""
    node = doc
    for token in tokens:
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list) and _index(token) is not None and _index(token) < len(node):
            node = node[_index(token)]
        else:
            if default is _MISSING:
                raise KeyError(token)
            return default
    return node


def assign(doc: Any, tokens: tuple[str, ...], value: Any) -> None:
    """Write ``value`` at ``tokens`` in ``doc`` in place: missing objects on the way are created,
    an existing member is replaced, an array index must exist (or be ``-``, appending).
    PointerError when the way goes through a value that is neither an object nor an array."""
    if not tokens:
        raise PointerError("the empty pointer is the whole document; it cannot be assigned")
    node = doc
    for depth, token in enumerate(tokens):
        last = depth == len(tokens) - 1
        where = "/" + "/".join(t.replace("~", "~0").replace("/", "~1") for t in tokens[:depth])
        if isinstance(node, dict):
            if last:
                node[token] = value
            else:
                node = node.setdefault(token, {})
        elif isinstance(node, list):
            index = len(node) if token == "-" else _index(token)
            if index is None or index > len(node) or (index == len(node) and not last):
                raise PointerError(f"{where or '/'} is an array without an element {token!r}")
            if last:
                if index == len(node):
                    node.append(value)
                else:
                    node[index] = value
            else:
                node = node[index]
        else:
            raise PointerError(f"{where} is a {_kind(node)}, not an object or an array")


def _index(token: str) -> int | None:
    if token == "0" or (token.isdigit() and token.isascii() and not token.startswith("0")):
        return int(token)
    return None


def _kind(value: Any) -> str:
    return {str: "string", bool: "boolean", type(None): "null"}.get(type(value), "number")
