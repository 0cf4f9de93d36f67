"""JSON Pointers (RFC 6901) for the text, the id and the entities."""

from __future__ import annotations

import pytest

from tagstream.worker.pointers import PointerError, assign, parse, resolve

# RFC 6901, section 5: the example document and what each pointer refers to
DOC = {
    "foo": ["bar", "baz"],
    "": 0,
    "a/b": 1,
    "c%d": 2,
    "e^f": 3,
    "g|h": 4,
    "i\\j": 5,
    'k"l': 6,
    " ": 7,
    "m~n": 8,
}


@pytest.mark.parametrize(
    "pointer, expected",
    [
        ("", DOC),
        ("/foo", ["bar", "baz"]),
        ("/foo/0", "bar"),
        ("/", 0),
        ("/a~1b", 1),
        ("/c%d", 2),
        ("/e^f", 3),
        ("/g|h", 4),
        ("/i\\j", 5),
        ('/k"l', 6),
        ("/ ", 7),
        ("/m~0n", 8),
    ],
)
def test_the_rfc_examples(pointer, expected):
    assert resolve(DOC, parse(pointer)) == expected


@pytest.mark.parametrize("pointer", ["/foo/2", "/foo/01", "/foo/-", "/nope", "/foo/0/x", "/-1"])
def test_what_is_not_there_is_the_default(pointer):
    assert resolve(DOC, parse(pointer), None) is None
    with pytest.raises(KeyError):
        resolve(DOC, parse(pointer))


@pytest.mark.parametrize("pointer", ["text", "/a~2b", "/a~"])
def test_bad_syntax_is_refused(pointer):
    with pytest.raises(PointerError):
        parse(pointer)


def test_assign_creates_objects_on_the_way_and_replaces_a_member():
    doc = {"payload": {"body": "x"}}
    assign(doc, parse("/meta/ner/entities"), [1])
    assign(doc, parse("/payload/body"), "y")
    assert doc == {"payload": {"body": "y"}, "meta": {"ner": {"entities": [1]}}}


def test_assign_into_arrays():
    doc = {"items": [{"a": 1}]}
    assign(doc, parse("/items/0/entities"), [])
    assign(doc, parse("/items/-"), "new")
    assert doc == {"items": [{"a": 1, "entities": []}, "new"]}
    with pytest.raises(PointerError, match="without an element"):
        assign(doc, parse("/items/5/x"), 1)


def test_assign_through_a_string_is_refused():
    with pytest.raises(PointerError, match="/payload is a string"):
        assign({"payload": "text"}, parse("/payload/entities"), [])
    with pytest.raises(PointerError, match="whole document"):
        assign({}, parse(""), [])
