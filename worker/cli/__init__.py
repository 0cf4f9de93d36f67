"""The ``tagstream`` command: ``run`` (the worker), ``tag`` (the same labelling without Kafka),
``demo`` (a local end-to-end run for newcomers), ``models``, ``replay`` (dead letters back to
their input topic).

This module is the command line: its options and their types, and `console`, the entry point.
What each command does is the module of its name beside this one (`run`, `tag`, `models`,
`demo`); the exit statuses are `exits`.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from .demo import cmd_demo
from .exits import EXIT_USAGE
from .models import cmd_models
from .replay import cmd_replay, timestamp_ms
from .run import cmd_run, settings_epilog
from .tag import cmd_tag


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    return args.func(args)


def _version() -> str:
    from tagstream import __version__

    return __version__


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tagstream",
        description="Named-entity tagging for Kafka streams. Settings come from TAGSTREAM_* "
        "environment variables (and a .env file); see the README.",
    )
    parser.add_argument("--version", action="version", version=f"tagstream {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser(
        "run",
        help="run the worker: input topic -> labelled spans -> output topic",
        description="Run the worker: input topic -> labelled spans -> output topic.",
        formatter_class=argparse.RawDescriptionHelpFormatter,  # the epilog is a list
        add_help=False,
    )
    run.add_argument(
        "-h",
        "--help",
        action=_HelpWithSettings,
        help="show this help message, with every setting, and exit",
    )
    run.add_argument(
        "--settings-schema",
        action="store_true",
        help="print the settings as a JSON Schema (each one's type, bounds, default and "
        "description) and exit",
    )
    run.set_defaults(func=cmd_run)

    tag = sub.add_parser("tag", help='label JSON lines {"id", "text"} without Kafka')
    tag.add_argument(
        "--model",
        type=_model_ref,
        help="an installed model's name (tagstream models) or an artifact file (default: en-news)",
    )
    tag.add_argument("--input", type=_existing_file, help="input file (default: stdin)")
    tag.add_argument("--output", type=Path, help="output file (default: stdout)")
    tag.add_argument(
        "--input-format",
        choices=("json", "text"),
        default="json",
        help='json: one object per line with a "text" field; text: one text per line',
    )
    tag.add_argument(
        "--batch-size",
        type=_at_least(1),
        default=2048,
        help="texts per model call, and per write of their results (default 2048; larger "
        "batches cost less CPU per text)",
    )
    tag.add_argument(
        "--text-pointer",
        type=_pointer,
        default="/text",
        help="json: where the text is in each object, a JSON Pointer such as /payload/body, as "
        "TAGSTREAM_TEXT_POINTER (default /text)",
    )
    tag.add_argument(
        "--id-pointer",
        type=_pointer,
        default="/id",
        help='json: where the id is ("": none), as TAGSTREAM_ID_POINTER (default /id)',
    )
    tag.add_argument("--echo-text", action="store_true", help="copy each text into its output")
    tag.add_argument("--max-text-chars", type=_at_least(1), default=100_000)
    tag.add_argument(
        "--threads", type=_at_least(0), default=0, help="torch threads (0: one per core)"
    )
    tag.add_argument(
        "--precision",
        choices=("auto", "bfloat16", "float32"),
        default="auto",
        help="the network's numeric path (auto: float32 on every CPU; bfloat16 only when "
        "asked for: it is not faster, and without AMX or AVX512_BF16 it is emulated and much "
        "slower)",
    )
    tag.add_argument(
        "--min-score",
        type=_score,
        default=0.0,
        help="leave out spans scored below this (0 to 1; default 0: every span), as "
        "TAGSTREAM_MODEL__MIN_SCORE does in the worker",
    )
    tag.add_argument(
        "--min-score-label",
        type=_label_score,
        action="append",
        default=[],
        metavar="LABEL=SCORE",
        help="a floor for one label instead of --min-score (repeatable), as "
        "TAGSTREAM_MODEL__MIN_SCORE_BY_LABEL does",
    )
    tag.set_defaults(func=cmd_tag)

    models = sub.add_parser(
        "models", help="list the installed models (names for --model / TAGSTREAM_MODEL__NAME)"
    )
    models.set_defaults(func=cmd_models)

    demo = sub.add_parser(
        "demo", help="local broker + worker + a few hundred sentences, then a summary"
    )
    demo.add_argument(
        "--sentences", type=_existing_file, help="one text per line (default: the embedded set)"
    )
    demo.add_argument(
        "--rate",
        type=_positive_float,
        default=50.0,
        help="messages/s in the streaming phase (default 50)",
    )
    demo.add_argument("--partitions", type=_at_least(1), default=2)
    demo.add_argument(
        "--model",
        type=_model_ref,
        help="an installed model's name (tagstream models) or an artifact file (default: en-news)",
    )
    demo.add_argument(
        "--bootstrap-servers",
        help="use this broker instead of starting the local one "
        "(default: $KAFKA_BOOTSTRAP_SERVERS, else scripts/kafka-local up)",
    )
    demo.add_argument(
        "--keep-broker", action="store_true", help="leave the local broker running afterwards"
    )
    demo.add_argument(
        "--output-mode",
        choices=("spans", "enrich", "redact"),
        default="spans",
        help="the worker's TAGSTREAM_OUTPUT__MODE (default spans)",
    )
    demo.set_defaults(func=cmd_demo)

    replay = sub.add_parser(
        "replay",
        help="re-produce dead letters to the topic they came from, each once "
        "(docs/messages.md#replaying-dead-letters)",
        description="Reads the dead-letter topic (TAGSTREAM_KAFKA__DEAD_LETTER_TOPIC, with the "
        "worker's Kafka settings) up to its end and re-produces each dead letter taken by the "
        "filters: its key, value and own headers, to the input topic it came from. Each dead "
        "letter is replayed once: run the same command again after an interruption and it goes "
        "on where it stopped.",
    )
    replay.add_argument(
        "--reason",
        action="append",
        default=[],
        choices=_reasons(),
        metavar="REASON",
        help="only dead letters of this reason (repeatable; docs/messages.md lists them)",
    )
    replay.add_argument(
        "--partition",
        type=_at_least(0),
        action="append",
        default=[],
        help="only dead letters from this partition of the input topic (repeatable)",
    )
    replay.add_argument(
        "--since",
        type=timestamp_ms,
        help="only dead letters written at or after this time (ISO 8601, UTC unless it says "
        "otherwise, or epoch milliseconds)",
    )
    replay.add_argument("--until", type=timestamp_ms, help="only dead letters written before this")
    replay.add_argument("--to", help="produce to this topic instead of the one each came from")
    replay.add_argument("--from", dest="source_topic", help="read this dead-letter topic instead")
    replay.add_argument(
        "--group",
        help="the replay's consumer group (default: one per dead-letter topic, target and "
        "filters, so the same command goes on where it stopped)",
    )
    replay.add_argument(
        "--dry-run", action="store_true", help="count what would be replayed; produce nothing"
    )
    replay.add_argument(
        "--batch",
        type=_at_least(1),
        default=500,
        help="dead letters per transaction (default 500)",
    )
    replay.add_argument("--json", action="store_true", help="print the summary as JSON")
    replay.set_defaults(func=cmd_replay)
    return parser


class _HelpWithSettings(argparse.Action):
    """``tagstream run --help``: the help, and every setting at its end (`settings_epilog`), read
    from the settings models only when asked for, so that the other commands start without
    them."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, **kwargs):
        kwargs.setdefault("default", argparse.SUPPRESS)
        super().__init__(option_strings, dest, nargs=0, **kwargs)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> NoReturn:
        parser.epilog = settings_epilog()
        parser.print_help()
        parser.exit()


def _pointer(text: str) -> str:
    from ..pointers import PointerError, parse

    try:
        parse(text)
    except PointerError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _reasons() -> tuple[str, ...]:
    from ..messages import REASONS

    return REASONS


# Argument types: argparse turns their errors into "argument --x: ..." and exit status 2.


def _model_ref(value: str) -> str | Path:
    """A model name (checked when loading) or the path of an existing file."""
    path = Path(value)
    if "/" in value or path.suffix or path.exists():
        return _existing_file(value)
    if not value.strip():
        raise argparse.ArgumentTypeError("empty model name")
    return value


def _existing_file(value: str) -> Path:
    path = Path(value)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"{value}: no such file")
    return path


def _at_least(least: int) -> Callable[[str], int]:
    def parse(value: str) -> int:
        try:
            n = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{value!r} is not an integer") from None
        if n < least:
            raise argparse.ArgumentTypeError(f"must be >= {least}, got {n}")
        return n

    return parse


def _score(value: str) -> float:
    try:
        x = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
    if not 0 <= x <= 1:
        raise argparse.ArgumentTypeError(f"a score is between 0 and 1, got {value}")
    return x


def _label_score(value: str) -> tuple[str, float]:
    label, sep, score = value.partition("=")
    if not sep or not label.strip():
        raise argparse.ArgumentTypeError(f"{value!r}: expected LABEL=SCORE, e.g. MISC=0.8")
    return label.strip(), _score(score)


def _positive_float(value: str) -> float:
    try:
        x = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
    if not x > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return x


def console() -> NoReturn:
    """The `tagstream` command: `main`, then exit without the interpreter's teardown, which
    takes about a second once torch is loaded and has nothing left to do (the clients are
    closed, the files written; stdout, stderr and the logs are flushed here)."""
    status = main()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can be said
            pass
    os._exit(status)
