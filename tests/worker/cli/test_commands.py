"""`tagstream tag`: the labelling without Kafka, and the CLI's exit statuses."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest

from tagstream.worker.cli import main
from tests.worker.settings.test_settings import run_worker


def run_tag(tmp_path, lines: list[bytes], *args: str) -> tuple[int, list[dict]]:
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    inp.write_bytes(b"\n".join(lines) + b"\n")
    status = main(["tag", "--input", str(inp), "--output", str(out), *args])
    return status, [json.loads(line) for line in out.read_bytes().splitlines()]


def test_tag_json_lines_in_order(tmp_path, tiny_model):
    texts = ["Angela Merkel visited Paris .", "", "Zoë 🎉 e\u0301 北京", "word " * 500]
    lines = [json.dumps({"id": f"t{i}", "text": t}).encode() for i, t in enumerate(texts)]
    status, docs = run_tag(tmp_path, lines, "--model", str(tiny_model), "--batch-size", "3")
    assert status == 0
    assert [d["id"] for d in docs] == ["t0", "t1", "t2", "t3"]
    for doc, text in zip(docs, texts):
        assert doc["model"] == "tiny-random@0.0.0"
        assert doc["source"]["file"].endswith("in.jsonl")
        for span in doc["spans"]:
            assert text[span["start"] : span["end"]] == span["text"]
    assert docs[1]["spans"] == []
    assert [d["source"]["line"] for d in docs] == [1, 2, 3, 4]


def test_tag_bad_lines_get_an_error_in_place_and_exit_1(tmp_path, tiny_model):
    lines = [
        b'{"id": "a", "text": "Rome"}',
        b"{oops",
        b'{"id": "c"}',
        b'{"id": "d", "text": "Oslo"}',
    ]
    status, docs = run_tag(tmp_path, lines, "--model", str(tiny_model))
    assert status == 1
    assert [d["id"] for d in docs] == ["a", None, None, "d"]
    assert docs[1]["error"]["class"] == "invalid_json" and docs[1]["source"]["line"] == 2
    assert docs[2]["error"]["class"] == "missing_text"


def test_tag_text_format_with_echo(tmp_path, tiny_model):
    status, docs = run_tag(
        tmp_path,
        [b"plain text, no JSON", b"   ", b"", b"fourth line"],
        "--model",
        str(tiny_model),
        "--input-format",
        "text",
        "--echo-text",
    )
    assert status == 0  # every line is a text, blank ones too: output line N answers input line N
    assert [d["text"] for d in docs] == ["plain text, no JSON", "   ", "", "fourth line"]
    assert [d["source"]["line"] for d in docs] == [1, 2, 3, 4]
    assert docs[1]["spans"] == [] and docs[2]["spans"] == []


def test_tag_json_lines_skips_blank_lines(tmp_path, tiny_model):
    lines = [b'{"id": "a", "text": "Rome"}', b"  ", b'{"id": "b", "text": "Oslo"}']
    status, docs = run_tag(tmp_path, lines, "--model", str(tiny_model))
    assert status == 0
    assert [(d["id"], d["source"]["line"]) for d in docs] == [("a", 1), ("b", 3)]


NEWS = [
    "Angela Merkel met Emmanuel Macron in Paris on Tuesday .",
    "Shares of Siemens AG rose 3 percent in Frankfurt after the Bundesbank report .",
    "The Yankees beat the Red Sox 5-3 at Fenway Park ; Jeter hit a home run .",
]


def test_tag_min_score_leaves_out_the_spans_under_it(tmp_path):
    """On the shipped model: the floors keep exactly the spans scored at or above them."""
    lines = [json.dumps({"id": str(i), "text": t}).encode() for i, t in enumerate(NEWS)]
    status, docs = run_tag(tmp_path, lines)
    assert status == 0
    every = [(s["label"], s["text"], s["score"]) for d in docs for s in d["spans"]]
    # floors half-way between two scores (the output rounds them to 4 decimals)
    scores = sorted({score for _, _, score in every})
    assert len(scores) >= 4, every
    gaps = [(b - a, (a + b) / 2) for a, b in zip(scores, scores[1:]) if b - a > 1e-3]
    floor = gaps[len(gaps) // 2][1]
    status, docs = run_tag(tmp_path, lines, "--min-score", str(floor))
    kept = [(s["label"], s["text"], s["score"]) for d in docs for s in d["spans"]]
    assert kept == [s for s in every if s[2] > floor] != every
    label = every[0][0]  # that label kept whatever its score, the others under a higher floor
    higher = gaps[-1][1]
    status, docs = run_tag(
        tmp_path, lines, "--min-score", str(higher), "--min-score-label", f"{label}=0"
    )
    kept = [(s["label"], s["text"], s["score"]) for d in docs for s in d["spans"]]
    assert kept == [s for s in every if s[0] == label or s[2] > higher]


@pytest.mark.parametrize(
    "args, says",
    [
        (["--min-score", "1.5"], "a score is between 0 and 1"),
        (["--min-score-label", "MISC"], "expected LABEL=SCORE"),
        (["--min-score-label", "PERSON=0.5"], "has no label PERSON (its labels: LOC, MISC"),
    ],
)
def test_tag_refuses_a_bad_floor_with_status_2(tmp_path, capsys, args, says):
    inp = tmp_path / "in.jsonl"
    inp.write_text('{"text": "Rome"}\n')
    try:
        status = main(["tag", "--input", str(inp), *args])
    except SystemExit as exit:  # argparse's own refusal
        status = exit.code
    assert status == 2
    assert says in capsys.readouterr().err


def test_tag_rejects_a_foreign_model_file_with_status_2(tmp_path):
    bogus = tmp_path / "model.pt"
    bogus.write_bytes(b"not a model at all")
    inp = tmp_path / "in.jsonl"
    inp.write_text('{"text": "x"}\n')
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tagstream.worker.cli",
            "tag",
            "--model",
            str(bogus),
            "--input",
            str(inp),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "cannot load the model" in proc.stderr and str(bogus) in proc.stderr


def test_run_with_a_missing_model_file_exits_2(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "TAGSTREAM_MODEL__PATH": str(tmp_path / "nope.pt")}
    proc = run_worker(env, tmp_path)
    assert proc.returncode == 2
    assert "TAGSTREAM_MODEL__PATH" in proc.stderr and "no such file" in proc.stderr


def test_no_command_prints_help_and_exits_2(capsys):
    assert main([]) == 2
    assert "tagstream" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["tag", "--input", "/nonexistent/in.jsonl"],
            "--input: /nonexistent/in.jsonl: no such file",
        ),
        (["tag", "--threads", "-1"], "--threads: must be >= 0, got -1"),
        (["tag", "--max-text-chars", "0"], "--max-text-chars: must be >= 1, got 0"),
        (["tag", "--batch-size", "x"], "--batch-size: 'x' is not an integer"),
        (["tag", "--model", "/nonexistent/m.pt"], "--model: /nonexistent/m.pt: no such file"),
        (["demo", "--rate", "0"], "--rate: must be > 0, got 0"),
        (["demo", "--partitions", "0"], "--partitions: must be >= 1, got 0"),
        (
            ["demo", "--sentences", "/nonexistent/s.txt"],
            "--sentences: /nonexistent/s.txt: no such file",
        ),
    ],
)
def test_bad_arguments_exit_2_saying_why(args, message, capsys):
    with pytest.raises(SystemExit) as info:
        main(args)
    assert info.value.code == 2
    assert f"argument {message}" in capsys.readouterr().err


def test_tag_to_an_unwritable_output_exits_2(tmp_path, tiny_model, capsys):
    inp = tmp_path / "in.jsonl"
    inp.write_text('{"text": "Rome"}\n')
    status = main(
        [
            "tag",
            "--model",
            str(tiny_model),
            "--input",
            str(inp),
            "--output",
            str(tmp_path / "missing-dir" / "out.jsonl"),
        ]
    )
    assert status == 2
    assert "cannot open" in capsys.readouterr().err


def test_models_lists_the_installed_models_and_tag_takes_a_name(tmp_path, capsys):
    assert main(["models"]) == 0
    listing = capsys.readouterr().out
    for name in ("en-news", "en-social", "zh-news"):
        assert f"\n{name} " in "\n" + listing
    status, docs = run_tag(
        tmp_path,
        [json.dumps({"id": "z", "text": "江泽民主席在北京会见了美国总统克林顿。"}).encode()],
        "--model",
        "zh-news",
    )
    assert status == 0 and docs[0]["model"] == "zh-news@1.3.1"
    assert ("北京", "LOC") in {(s["text"], s["label"]) for s in docs[0]["spans"]}


def test_an_unknown_model_name_is_exit_2_naming_the_installed_ones(tmp_path, capsys):
    inp = tmp_path / "in.jsonl"
    inp.write_text('{"id": "1", "text": "Oslo"}\n')
    assert main(["tag", "--input", str(inp), "--model", "fr-news"]) == 2
    assert "no model named 'fr-news'; installed: en-news" in capsys.readouterr().err


def test_a_stop_requested_during_a_long_start_up_step_is_acted_on_at_once():
    import threading
    import time

    from tagstream.worker.cli.run import _unless_stopped

    stop = threading.Event()
    threading.Timer(0.2, stop.set).start()
    started = time.monotonic()
    assert _unless_stopped(lambda: time.sleep(30), stop) is None
    assert time.monotonic() - started < 2
    assert _unless_stopped(lambda: 42, threading.Event()) == 42
    with pytest.raises(ValueError, match="bad model"):
        _unless_stopped(lambda: (_ for _ in ()).throw(ValueError("bad model")), threading.Event())


def test_sigterm_while_the_model_loads_stops_the_worker_before_it_joins_the_group(tmp_path):
    import signal
    import time

    log = tmp_path / "worker.log"
    env = {
        "PATH": "/usr/bin:/bin",
        "TAGSTREAM_HTTP__HOST": "127.0.0.1",
        "TAGSTREAM_HTTP__PORT": "0",
        "TAGSTREAM_LOG__FORMAT": "json",
        "TAGSTREAM_MODEL__NAME": "zh-news",  # the largest: its load takes longest
    }
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tagstream.worker.cli", "run"],
            env=env,
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while "serving /metrics" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.02)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
    text = log.read_text()
    assert "stopped during start-up, before joining the group" in text, text
    assert "partitions assigned" not in text


def test_version(capsys):
    from importlib.metadata import version

    import tagstream

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out == f"tagstream {version('tagstream')}\n"
    assert tagstream.__version__ == version("tagstream")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_tag_progress_shows_on_a_terminal_only():
    from tagstream.worker.cli.tag import Progress

    now = [0.0]
    screen = Terminal()
    progress = Progress(screen, total_bytes=1000, clock=lambda: now[0], environ={})
    progress.update(100, 100)  # too soon after the start: nothing yet
    now[0] = 2.0
    progress.update(100, 250)
    progress.close()
    assert screen.getvalue() == "\r200 records, 100/s, 25%, 0:06 left\x1b[K\n"
    for stream, environ in ((io.StringIO(), {}), (Terminal(), {"CI": "true"})):
        quiet = Progress(stream, total_bytes=None, clock=lambda: now[0], environ=environ)
        now[0] += 5
        quiet.update(10, None)
        quiet.close()
        assert stream.getvalue() == ""


def test_tag_finds_the_text_and_id_by_pointer(tmp_path, tiny_model):
    lines = [
        json.dumps({"meta": {"ref": "m-1"}, "payload": {"body": "Angela Merkel ."}}).encode(),
        json.dumps({"payload": {}}).encode(),
    ]
    status, docs = run_tag(
        tmp_path,
        lines,
        "--model",
        str(tiny_model),
        "--text-pointer",
        "/payload/body",
        "--id-pointer",
        "/meta/ref",
    )
    assert status == 1  # the second line has no text there
    assert docs[0]["id"] == "m-1" and "spans" in docs[0]
    assert docs[1]["error"]["class"] == "missing_text"
    assert "/payload/body" in docs[1]["error"]["message"]
