"""`make docs`: regenerate the three generated parts of the documentation.

* docs/configuration.md: the table of every ``TAGSTREAM_*`` setting, read from the settings
  models in worker/settings/__init__.py (the kafka group in worker/settings/kafka.py): the variable
  name, its type (with the allowed values and bounds), its default, and the field's description
  (``Field(description=...)``, also what ``tagstream run --help`` and ``--settings-schema`` show).
* helm/tagstream/README.md: the table of every chart value, read from helm/tagstream/values.yaml
  in helm-docs style: a ``# --`` comment (continued by further ``#`` lines) directly above a key
  describes it; the default is the value in the file.
* docs/operations.md: the sizing table, read from docs/results.md (what `make bench` recorded,
  one row per CPU and instruction-set cap), so the docs quote no figure it did not measure.

Only the part between the file's BEGIN/END GENERATED markers is rewritten; the text around it
is written by hand. tests/test_docs.py fails when a committed file differs from what this
prints, so the tables cannot drift from the code.

    python scripts/gen_docs.py            # rewrite the generated parts
    python scripts/gen_docs.py --check    # exit 1 (with a diff) if a file is out of date
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
import types
import typing
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for _path in (ROOT, Path(__file__).resolve().parent):  # the package; this script's sibling modules
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from docs_chart_values import ValuesDocError, chart_values, chart_values_table  # noqa: E402
from docs_markdown import cell, code, table  # noqa: E402

__all__ = ["ValuesDocError", "chart_values", "chart_values_table", "settings_rows", "regenerate"]

CONFIGURATION_MD = ROOT / "docs" / "configuration.md"
CHART_README = ROOT / "helm" / "tagstream" / "README.md"
VALUES_YAML = ROOT / "helm" / "tagstream" / "values.yaml"

BEGIN = "<!-- BEGIN GENERATED: {name} (scripts/gen_docs.py, `make docs`); do not edit by hand -->"
END = "<!-- END GENERATED: {name} -->"


# -- the settings (worker/settings/) ------------------------------------------------------------


def _strip_optional(annotation: object) -> tuple[object, bool]:
    """(the annotation without None, whether None was allowed)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        optional = len(args) < len(typing.get_args(annotation))
        if len(args) == 1:
            return args[0], optional
        return typing.Union[tuple(args)], optional  # noqa: UP007
    return annotation, False


def _number(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def _bounds(info: object) -> str:
    """ "≥ 1000", "1 to 65535", "> 0", "length ≥ 1" from a field's constraints."""
    low: str | None = None
    high: str | None = None
    low_value = high_value = None
    for constraint in getattr(info, "metadata", []):
        for attr, sign in (("ge", "≥"), ("gt", ">")):
            if getattr(constraint, attr, None) is not None:
                low, low_value = sign, getattr(constraint, attr)
        for attr, sign in (("le", "≤"), ("lt", "<")):
            if getattr(constraint, attr, None) is not None:
                high, high_value = sign, getattr(constraint, attr)
        if getattr(constraint, "min_length", None):
            low, low_value = "length ≥", constraint.min_length
    if low == "≥" and high == "≤":
        return f"{_number(low_value)} to {_number(high_value)}"
    parts = [f"{sign} {_number(v)}" for sign, v in ((low, low_value), (high, high_value)) if sign]
    return ", ".join(parts)


def _type(annotation: object, info: object) -> str:
    from pydantic import SecretStr

    inner, _ = _strip_optional(annotation)  # None shows as the default "unset"
    if typing.get_origin(inner) is typing.Literal:
        text = ", ".join(code(str(choice)) for choice in typing.get_args(inner))
    elif inner is bool:
        text = "`true` or `false`"
    elif inner is int:
        text = "integer"
    elif inner is float:
        text = "number"
    elif inner is SecretStr:
        text = "secret (never logged)"
    elif inner is Path:
        text = "file path"
    elif inner is str:
        text = "string"
    else:
        text = cell(getattr(inner, "__name__", str(inner)))
    bounds = _bounds(info)
    if bounds:
        text += f", {bounds}"
    return text


def _default(info: object) -> str:
    from tagstream.worker.settings import REQUIRED, UNSET, default_text

    text = default_text(info)  # type: ignore[arg-type]
    return text if text in (UNSET, REQUIRED) else code(text)


def settings_rows() -> list[tuple[str, str, str, str]]:
    """(variable, type, default, description) for every setting, in definition order: the
    top-level settings first, then each group; the description is the field's
    ``Field(description=...)``."""
    from tagstream.worker.settings import settings_fields
    from tagstream.worker.settings.rules import env_name

    return [
        (env_name(path), _type(info.annotation, info), _default(info), info.description or "")
        for path, info in settings_fields()
    ]


def settings_table() -> str:
    rows = [
        [code(var), typ, default, cell(description)]
        for var, typ, default, description in settings_rows()
    ]
    return table(["variable", "type", "default", "description"], rows)


# -- the sizing table (docs/results.md) ------------------------------------------------------------

RESULTS_MD = ROOT / "docs" / "results.md"
OPERATIONS_MD = ROOT / "docs" / "operations.md"


def _cpu_label(heading: str) -> str:
    """ "Intel(R) Xeon(R) Processor (amx_bf16, ..., avx2, ...), ONEDNN_MAX_CPU_ISA=AVX2, ..."
    -> "Intel Xeon Processor (AVX-512, AMX), AVX2 path forced"."""
    name, _, rest = heading.partition(" (")
    flags, _, caps = rest.partition(")")
    flags_set = {f.strip() for f in flags.split(",")}
    isa = [
        label
        for flag, label in (
            ("avx512f", "AVX-512"),
            ("avx512_bf16", "AVX512_BF16"),
            ("amx_tile", "AMX"),
        )
        if flag in flags_set
    ] or (["AVX2"] if "avx2" in flags_set else [])
    label = f"{name.replace('(R)', '').replace('(TM)', '')} ({', '.join(isa)})"
    if "ONEDNN_MAX_CPU_ISA=" in caps:
        label += ", AVX2 path forced"
    return label


def sizing_rows() -> list[list[str]]:
    """One row per section of docs/results.md: the CPU, tagging against spaCy, words/s, the
    demo's burst and its messages per CPU-second."""
    if not RESULTS_MD.exists():
        return []
    rows = []
    for section in RESULTS_MD.read_text(encoding="utf-8").split("\n## ")[1:]:
        heading, _, body = section.partition("\n")

        def find(pattern: str) -> str:
            match = re.search(pattern, body)
            return match.group(1) if match else "not measured"

        rows.append(
            [
                _cpu_label(heading.strip()),
                find(r"ratio tagstream float32 / spaCy: ([0-9.]+x)").replace("x", "×"),
                find(r"tagstream float32: ([0-9,]+) words/s"),
                find(r"end to end, burst: .*?: ([0-9,]+) messages/s"),
                find(r"end to end, cpu: .*?: ([0-9,]+) messages per CPU-second"),
            ]
        )
    return rows


def sizing_table() -> str:
    return table(
        [
            "CPU (2 cores)",
            "tagging, 1 thread, against spaCy's NER",
            "words/s",
            "burst, messages/s",
            "messages per CPU-second",
        ],
        sizing_rows(),
    )


# -- the files -------------------------------------------------------------------------------------

TARGETS: dict[Path, tuple[str, Callable[[], str]]] = {
    CONFIGURATION_MD: ("settings", settings_table),
    CHART_README: ("values", chart_values_table),
    OPERATIONS_MD: ("sizing", sizing_table),
}


def regenerate(path: Path, current: str | None = None) -> str:
    """The file's text with its generated part replaced by what the generator prints now."""
    name, generate = TARGETS[path]
    text = path.read_text(encoding="utf-8") if current is None else current
    begin, end = BEGIN.format(name=name), END.format(name=name)
    if text.count(begin) != 1 or text.count(end) != 1 or text.index(begin) > text.index(end):
        raise ValueError(
            f"{path.relative_to(ROOT)}: needs exactly one pair of markers:\n{begin}\n{end}"
        )
    head, rest = text.split(begin)
    _, tail = rest.split(end)
    return f"{head}{begin}\n\n{generate()}\n\n{end}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/gen_docs.py", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="change nothing; exit 1 with a diff if a file is out of date",
    )
    args = parser.parse_args(argv)
    stale = 0
    for path in TARGETS:
        current = path.read_text(encoding="utf-8")
        expected = regenerate(path, current)
        rel = path.relative_to(ROOT).as_posix()
        if current == expected:
            print(f"{rel}: up to date", file=sys.stderr)
        elif args.check:
            stale += 1
            sys.stdout.writelines(
                difflib.unified_diff(
                    current.splitlines(keepends=True),
                    expected.splitlines(keepends=True),
                    f"{rel} (committed)",
                    f"{rel} (generated)",
                )
            )
        else:
            path.write_text(expected, encoding="utf-8")
            print(f"{rel}: regenerated", file=sys.stderr)
    if stale:
        print(f"{stale} file(s) out of date: run `make docs`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
