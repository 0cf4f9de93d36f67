"""What `tagstream run` says about its settings instead of running: the JSON Schema of
``--settings-schema`` and the list of every variable at the end of ``--help``, both made from
the settings models' fields, as docs/configuration.md's table is."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tagstream.worker.cli import main
from tagstream.worker.cli.run import first_sentence
from tagstream.worker.settings import default_text, env_names, settings_fields
from tagstream.worker.settings.rules import env_name

ROOT = Path(__file__).resolve().parents[3]


def _one_line(text: str) -> str:
    return " ".join(text.split())


def test_settings_schema_parses_and_describes_every_setting(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "tagstream.worker.cli", "run", "--settings-schema"],
        # a bad setting does not matter: the schema is printed, nothing is read or run
        env={"PATH": "/usr/bin:/bin", "TAGSTREAM_BATCHING__MAX_WAIT_MS": "soon"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    schema = json.loads(proc.stdout)
    for path, info in settings_fields():
        node = schema
        for part in path[:-1]:  # a group: its field's description, then its model's definition
            assert node["properties"][part]["description"]
            ref = node["properties"][part]["$ref"]
            node = schema["$defs"][ref.removeprefix("#/$defs/")]
        prop = node["properties"][path[-1]]
        assert prop["description"] == info.description, env_name(path)


def run_help(capsys) -> str:
    with pytest.raises(SystemExit) as done:
        main(["run", "--help"])
    assert done.value.code == 0
    return capsys.readouterr().out


def test_run_help_lists_every_variable_of_the_docs_table(capsys):
    table = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `(TAGSTREAM_\w+)` \|", table, re.MULTILINE))
    assert documented == env_names()
    listed = set(re.findall(r"^  (TAGSTREAM_\w+) \(default: ", run_help(capsys), re.MULTILINE))
    assert listed == documented


def test_run_help_shows_each_default_and_first_sentence(capsys):
    out = run_help(capsys)
    assert out.startswith("usage: tagstream run [-h] [--settings-schema]")
    flat = _one_line(out)
    for path, info in settings_fields():
        entry = f"{env_name(path)} (default: {default_text(info)}) "
        entry += _one_line(first_sentence(info.description))
        assert entry in flat
    assert "TAGSTREAM_KAFKA__SESSION_TIMEOUT_MS (default: 45000)" in out
    assert "TAGSTREAM_KAFKA__CLIENT_ID (default: tagstream-<hostname>)" in out
    assert "TAGSTREAM_KAFKA__SASL_PASSWORD (default: unset)" in out


def test_run_help_lines_fit_the_width():
    from tagstream.worker.cli.run import settings_epilog

    assert max(len(line) for line in settings_epilog(width=78).splitlines()) <= 78


@pytest.mark.parametrize(
    ("text", "first"),
    [
        ("One. Two.", "One."),
        ("A pointer, e.g. /payload/body. More.", "A pointer, e.g. /payload/body."),
        ("Version 1.5 only (i.e. new ones). More.", "Version 1.5 only (i.e. new ones)."),
        ("No full stop", "No full stop"),
    ],
)
def test_first_sentence(text, first):
    assert first_sentence(text) == first
