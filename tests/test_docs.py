"""The documentation cannot drift: the generated tables match what `make docs` prints now, every
setting and chart value is in them, every link resolves, and every alert has its runbook."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("gen_docs", ROOT / "scripts" / "gen_docs.py")
gen_docs = importlib.util.module_from_spec(_spec)
sys.modules["gen_docs"] = gen_docs
_spec.loader.exec_module(gen_docs)

MARKDOWN = sorted(
    [
        ROOT / "README.md",
        ROOT / "CHANGELOG.md",
        ROOT / "helm" / "tagstream" / "README.md",
        *(ROOT / "docs").glob("*.md"),
    ]
)


# -- the generated tables -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", sorted(gen_docs.TARGETS), ids=lambda p: p.relative_to(ROOT).as_posix()
)
def test_generated_part_is_up_to_date(path: Path):
    committed = path.read_text(encoding="utf-8")
    assert committed == gen_docs.regenerate(path, committed), (
        f"{path.relative_to(ROOT)} is out of date with the code: run `make docs` "
        "(or python scripts/gen_docs.py) and commit the result"
    )


def test_every_setting_is_in_the_table():
    from tagstream.worker.settings import env_names

    rows = {var for var, *_ in gen_docs.settings_rows()}
    assert rows == env_names()


def test_settings_table_reads_defaults_types_and_descriptions():
    rows = {var: rest for var, *rest in gen_docs.settings_rows()}
    typ, default, description = rows["TAGSTREAM_KAFKA__ASSIGNMENT_STRATEGY"]
    assert typ == "`range`, `roundrobin`, `cooperative-sticky`" and default == "`range`"
    assert "Every worker of a group must use the same one." in description
    assert rows["TAGSTREAM_KAFKA__SESSION_TIMEOUT_MS"][:2] == ["integer, ≥ 1000", "`45000`"]
    assert rows["TAGSTREAM_MODEL__THREADS"][:2] == ["integer, 0 to 256", "`1`"]
    assert rows["TAGSTREAM_DRAIN_TIMEOUT_S"][:2] == ["number, > 0", "`30`"]
    assert (
        rows["TAGSTREAM_KAFKA__CLIENT_ID"][1] == "`tagstream-<hostname>`"
    )  # not this machine's name
    assert rows["TAGSTREAM_KAFKA__SASL_PASSWORD"][:2] == ["secret (never logged)", "unset"]


def test_settings_table_follows_a_changed_default(monkeypatch):
    from tagstream.worker.settings import BatchingSettings

    before = gen_docs.settings_table()
    monkeypatch.setattr(BatchingSettings.model_fields["max_wait_ms"], "default", 75)
    after = gen_docs.settings_table()
    assert (
        before != after and "| `TAGSTREAM_BATCHING__MAX_WAIT_MS` | integer, ≥ 0 | `75` |" in after
    )


def test_settings_table_follows_a_changed_description(monkeypatch):
    """The description is the field's Field(description=...), not a comment in the source."""
    from tagstream.worker.settings import BatchingSettings

    info = BatchingSettings.model_fields["max_wait_ms"]
    monkeypatch.setattr(info, "description", "Changed. Here.")
    assert "| `TAGSTREAM_BATCHING__MAX_WAIT_MS` | integer, ≥ 0 | `0` | Changed. Here. |" in (
        gen_docs.settings_table()
    )


def _leaves(value: object, prefix: str = "") -> set[str]:
    if isinstance(value, dict) and value:
        return set().union(*(_leaves(v, f"{prefix}{k}.") for k, v in value.items()))
    return {prefix.rstrip(".")}


def test_every_chart_value_is_in_the_table():
    values = yaml.safe_load(gen_docs.VALUES_YAML.read_text(encoding="utf-8"))
    rows = gen_docs.chart_values()
    assert _leaves(values) == {key for key, _, _, children in rows if not children}
    assert all(description for _, _, description, _ in rows)


VALUES = """\
# A header comment, not a description.

# -- The image.
image:
  # -- Repository; set it.
  # Continued here.
  repository: tagstream
  # -- Pull secrets.
  pullSecrets:
    - name: a
      key: b
# -- A list of maps.
policies:
  - type: Pods
    value: 1
"""


def test_chart_table_reads_descriptions_and_defaults(tmp_path: Path):
    path = tmp_path / "values.yaml"
    path.write_text(VALUES)
    assert gen_docs.chart_values(path) == [
        (
            "image",
            {"repository": "tagstream", "pullSecrets": [{"name": "a", "key": "b"}]},
            "The image.",
            True,
        ),
        ("image.repository", "tagstream", "Repository; set it. Continued here.", False),
        ("image.pullSecrets", [{"name": "a", "key": "b"}], "Pull secrets.", False),
        ("policies", [{"type": "Pods", "value": 1}], "A list of maps.", False),
    ]
    table = gen_docs.chart_values_table(path)
    assert '| `image.repository` | `"tagstream"` | Repository; set it. Continued here. |' in table
    path.write_text(
        VALUES.replace("Repository; set it.", "Where the image is.").replace("tagstream", "other")
    )
    changed = gen_docs.chart_values_table(path)
    assert '| `image.repository` | `"other"` | Where the image is. Continued here. |' in changed


def test_chart_table_refuses_an_undocumented_value(tmp_path: Path):
    path = tmp_path / "values.yaml"
    path.write_text(VALUES + "undocumented: 1\n")
    with pytest.raises(gen_docs.ValuesDocError, match="undocumented"):
        gen_docs.chart_values(path)


# -- links ----------------------------------------------------------------------------------------

_FENCE = re.compile(r"^\s*(```|~~~)")
_LINK = re.compile(r"(?<!!)\[(?:[^\]]|\][^(])*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def _prose_lines(text: str) -> list[str]:
    """Lines outside fenced code blocks, with inline code removed."""
    out, fenced = [], False
    for line in text.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            out.append(re.sub(r"`[^`]*`", "", line))
    return out


def anchors(path: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens, -1, -2...
    for repeats."""
    seen: dict[str, int] = {}
    out = set()
    fenced = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if _FENCE.match(line):
            fenced = not fenced
            continue
        match = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if fenced or not match:
            continue
        text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", match[1])  # a link's text only
        slug = re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def test_anchor_slugs_are_githubs(tmp_path: Path):
    doc = tmp_path / "x.md"
    doc.write_text(
        "# The `tagstream` command\n## `en-news` — English news (the default model)\n"
        "## Exit status\n## Exit status\n```sh\n# not a heading\n```\n"
    )
    assert anchors(doc) == {
        "the-tagstream-command",
        "en-news--english-news-the-default-model",
        "exit-status",
        "exit-status-1",
    }


def links(path: Path) -> list[str]:
    """The targets of the inline links of a markdown file (link texts may span lines)."""
    return _LINK.findall("\n".join(_prose_lines(path.read_text(encoding="utf-8"))))


@pytest.mark.parametrize("path", MARKDOWN, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_links_resolve(path: Path):
    assert path.is_file(), f"{path.relative_to(ROOT)} is missing"
    broken = []
    for target in links(path):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto: (not checked offline)
            continue
        file, _, anchor = target.partition("#")
        dest = (path.parent / file).resolve() if file else path
        if not dest.exists():
            broken.append(f"{target}: no such file")
        elif anchor and (dest.suffix != ".md" or anchor not in anchors(dest)):
            broken.append(f"{target}: no heading with this anchor in {dest.relative_to(ROOT)}")
    assert not broken, f"{path.relative_to(ROOT)}: " + "; ".join(broken)


def test_link_finder_sees_every_link(tmp_path: Path):
    doc = tmp_path / "x.md"
    doc.write_text(
        "See [a](a.md), [the\nb page](b.md#x) and ![img](i.png).\n"
        "`[not](code.md)`\n```\n[not](fenced.md)\n```\n[c](https://example.com)\n"
    )
    assert links(doc) == ["a.md", "b.md#x", "https://example.com"]


# -- the README and the runbooks ------------------------------------------------------------------


def test_readme_stays_short():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").count("\n")
    assert lines <= 200, f"README.md has {lines} lines: move details to docs/"


def test_every_alert_has_a_runbook_section():
    """runbook_url is prometheusRule.runbookBaseUrl + "#" + the alert's name in lower case:
    docs/operations.md needs a heading with that anchor for each alert."""
    alerts = re.findall(
        r"- alert: (\w+)", (ROOT / "helm" / "tagstream" / "files" / "alerts.yaml").read_text()
    )
    assert len(alerts) == 6
    missing = [a for a in alerts if a.lower() not in anchors(ROOT / "docs" / "operations.md")]
    assert not missing, f"docs/operations.md has no runbook heading for {missing}"
