"""``tagstream replay``: re-produce dead letters to the topic they came from (or ``--to``), each
once (`tagstream.worker.kafka.replayer`), with the worker's Kafka settings (the same
``TAGSTREAM_KAFKA__*`` variables: the broker, security, the dead-letter topic). Prints what it
did; a progress line on a terminal."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from datetime import UTC, datetime

from .exits import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from .tag import Progress

log = logging.getLogger("tagstream")

SHOWN_NOT_REPLAYABLE = 20  # listed one by one; the rest are counted


def cmd_replay(args: argparse.Namespace) -> int:
    from kafka.errors import KafkaError

    from .. import logs
    from ..kafka.clients import install_fixes
    from ..kafka.replayer import Replayer
    from ..replay import Filter, group_for
    from ..settings import ConfigError, load_settings

    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"tagstream: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.source_topic:
        kafka = settings.kafka.model_copy(update={"dead_letter_topic": args.source_topic})
        settings = settings.model_copy(update={"kafka": kafka})
    logs.configure("WARNING", "text")
    logs.redact(settings.kafka.secret_values())
    install_fixes()
    chosen = Filter(frozenset(args.reason), frozenset(args.partition), args.since, args.until)
    group = args.group or group_for(settings.kafka.dead_letter_topic, args.to, chosen)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    replayer = None
    progress = Progress(sys.stderr, None)
    try:
        replayer = Replayer(settings, group, chosen, args.to, args.dry_run, args.batch)
        left = replayer.start()
        progress = Progress(sys.stderr, left)
        done = 0

        def advance(n: int) -> None:
            nonlocal done
            done += n
            progress.update(n, done)

        counts = replayer.run(stop, advance)
    except LookupError as exc:
        print(f"tagstream replay: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KafkaError as exc:
        print(
            f"tagstream replay: {exc!r}; what was committed before stays replayed, the rest is "
            "replayed by the same command run again",
            file=sys.stderr,
        )
        return EXIT_FAILED
    finally:
        progress.close()
        if replayer is not None:
            replayer.close()
    summary = {
        "dead_letter_topic": settings.kafka.dead_letter_topic,
        "group": group,
        "dry_run": args.dry_run,
        "read": counts.read,
        "replayed": counts.replayed,
        "filtered_out": counts.filtered_out,
        "not_replayable": len(counts.not_replayable),
        "stopped_early": stop.is_set(),
    }
    if args.json:
        print(json.dumps(summary))
    else:
        verb = "would replay" if args.dry_run else "replayed"
        targets = ", ".join(f"{n} to {t}" for t, n in sorted(counts.replayed.items())) or "none"
        print(
            f"{settings.kafka.dead_letter_topic}: read {counts.read} dead letters (group {group}); "
            f"{verb} {targets}; {counts.filtered_out} filtered out; "
            f"{len(counts.not_replayable)} not replayable"
        )
        for partition, offset, why in counts.not_replayable[:SHOWN_NOT_REPLAYABLE]:
            print(f"  not replayable: partition {partition} offset {offset}: {why}")
        if len(counts.not_replayable) > SHOWN_NOT_REPLAYABLE:
            print(f"  ... and {len(counts.not_replayable) - SHOWN_NOT_REPLAYABLE} more")
        if stop.is_set():
            print("stopped before the end: run the same command again to go on")
    return EXIT_OK


def timestamp_ms(text: str) -> int:
    """Milliseconds since the epoch, or an ISO 8601 time (UTC unless it says otherwise)."""
    if text.isdigit():
        return int(text)
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither epoch milliseconds nor an ISO 8601 time"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)
