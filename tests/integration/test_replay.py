"""`tagstream replay` on the real broker: dead letters from a worker with the wrong text pointer
go back to the input topic after the fix and are labelled once each, though the first replay
dies inside a transaction and the same command is run again."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.integration.kit import produce, read_all
from tests.integration.replay_crash import MARKER


def replay(topics, bootstrap, *args, module="tagstream.worker.cli"):
    env = {
        **os.environ,
        "TAGSTREAM_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
        "TAGSTREAM_KAFKA__INPUT_TOPIC": topics.input,
        "TAGSTREAM_KAFKA__OUTPUT_TOPIC": topics.output,
        "TAGSTREAM_KAFKA__DEAD_LETTER_TOPIC": topics.dead_letters,
        "TAGSTREAM_KAFKA__GROUP_ID": topics.group,
    }
    return subprocess.run(
        [sys.executable, "-m", module, "replay", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_an_interrupted_replay_run_again_replays_each_dead_letter_once(
    cluster, topics, start_worker, bootstrap
):
    docs = [{"id": f"doc-{i}", "payload": {"body": f"Text number {i} ."}} for i in range(45)]
    records = [
        (f"k{i % 5}".encode(), json.dumps(d).encode(), [("trace", b"t")])
        for i, d in enumerate(docs)
    ]
    records.append((None, b"not json", []))
    produce(bootstrap, topics.input, records)

    # the wrong pointer: every document is a dead letter (missing_text), one more (invalid_json)
    worker = start_worker(topics).wait_ready()
    dead = read_all(bootstrap, topics.dead_letters, lambda rs: len(rs) >= 46, settle_s=0.5)
    assert len(dead) == 46
    assert worker.terminate() == 0
    # the fix: the same group, the right pointer
    start_worker(topics, text_pointer="/payload/body").wait_ready()

    # a dry run counts and changes nothing
    dry = replay(topics, bootstrap, "--reason", "missing_text", "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["replayed"] == {topics.input: 45}

    # first replay: one transaction committed, then it dies inside the second
    crashed = replay(
        topics,
        bootstrap,
        "--reason",
        "missing_text",
        "--batch",
        "10",
        module="tests.integration.replay_crash",
    )
    assert crashed.returncode == 9 and MARKER in crashed.stderr, crashed.stderr
    # its first transaction (up to 10: a poll may return fewer) is on the input topic
    visible = read_all(bootstrap, topics.input, lambda rs: len(rs) >= 46, settle_s=1.5)
    first = len(visible) - 46
    assert 0 <= first <= 10
    # the same command again goes on where the last committed transaction stopped
    again = replay(topics, bootstrap, "--reason", "missing_text", "--batch", "10", "--json")
    assert again.returncode == 0, again.stderr
    summary = json.loads(again.stdout)
    assert summary["replayed"] == {topics.input: 45 - first}
    # the invalid_json dead letter is filtered out once, by whichever run's committed batch
    # held it
    assert summary["filtered_out"] in (0, 1) and summary["not_replayable"] == 0

    outputs = read_all(bootstrap, topics.output, lambda rs: len(rs) >= 45, settle_s=3.0)
    ids = sorted(json.loads(r.value)["id"] for r in outputs)
    assert ids == sorted(d["id"] for d in docs)  # each labelled once, none twice
    for record in outputs:
        headers = dict(record.headers)
        assert headers["trace"] == b"t"  # the input's own headers came back
        assert not any(name.startswith("tagstream.error") for name in headers)
    # the input topic holds the 46 first records and 45 replayed ones (read_committed: the
    # crashed transaction's records were aborted)
    inputs = read_all(bootstrap, topics.input, lambda rs: len(rs) >= 91, settle_s=1.0)
    assert len(inputs) == 91
    # ... while the crashed transaction's batch (up to 10) is there, aborted, for a reader that
    # looks
    raw = read_all(
        bootstrap,
        topics.input,
        lambda rs: len(rs) >= 92,
        isolation_level="read_uncommitted",
        timeout_s=20,
        settle_s=1.0,
    )
    assert 92 <= len(raw) <= 101
    # and a third run finds nothing left to do
    third = replay(topics, bootstrap, "--reason", "missing_text", "--batch", "10", "--json")
    assert json.loads(third.stdout)["replayed"] == {}
