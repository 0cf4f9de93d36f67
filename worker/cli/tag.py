"""``tagstream tag``: the worker's labelling without Kafka, from JSON lines or plain text lines
to JSON lines, one output line per input line."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from typing import IO

from .exits import EXIT_FAILED, EXIT_OK, EXIT_USAGE


def cmd_tag(args: argparse.Namespace) -> int:
    from .. import logs
    from ..messages import InvalidMessage, dumps, output_doc, read_input
    from ..models import load_tagger
    from ..pointers import parse
    from ..tagging import ScoreFloor

    logs.configure("WARNING")
    try:
        tagger = load_tagger(args.model, args.threads, args.precision)
    except ValueError as exc:
        print(f"tagstream tag: cannot load the model: {exc}", file=sys.stderr)
        return EXIT_USAGE
    floor = ScoreFloor(args.min_score, dict(args.min_score_label))
    unknown = floor.unknown_labels(tagger.labels)
    if unknown:
        print(
            f"tagstream tag: --min-score-label: {tagger.name} has no label "
            f"{', '.join(unknown)} (its labels: {', '.join(tagger.labels)})",
            file=sys.stderr,
        )
        return EXIT_USAGE
    model_ref = f"{tagger.name}@{tagger.version}"
    name = str(args.input) if args.input else "-"
    text_at, id_at = parse(args.text_pointer), parse(args.id_pointer)
    errors = 0
    with contextlib.ExitStack() as files:
        try:
            inp = files.enter_context(open(args.input, "rb")) if args.input else sys.stdin.buffer
            out = files.enter_context(open(args.output, "wb")) if args.output else sys.stdout.buffer
        except OSError as exc:
            print(f"tagstream tag: cannot open {exc.filename}: {exc.strerror}", file=sys.stderr)
            return EXIT_USAGE
        total = os.fstat(inp.fileno()).st_size if args.input else None
        progress = Progress(sys.stderr, total)
        for chunk in _chunks(_lines(inp, args.input_format), args.batch_size):
            docs, prepared = [], []
            for number, raw in chunk:
                source = {"file": name, "line": number}
                try:
                    found = read_input(raw, args.input_format, args.max_text_chars, text_at, id_at)
                    doc_id, text = found.id, found.text
                except InvalidMessage as exc:
                    docs.append(
                        {
                            "id": None,
                            "error": {"class": exc.reason, "message": exc.message},
                            "source": source,
                        }
                    )
                    errors += 1
                    continue
                docs.append((doc_id, text, source))
                prepared.append(tagger.prepare(text))
            results = iter(tagger.tag_prepared(prepared))
            for doc in docs:
                if isinstance(doc, tuple):
                    doc_id, text, source = doc
                    doc = output_doc(
                        doc_id,
                        floor.keep(next(results)),
                        model_ref,
                        source,
                        text if args.echo_text else None,
                    )
                out.write(dumps(doc) + b"\n")
            out.flush()
            progress.update(len(chunk), inp.tell() if total is not None else None)
        progress.close()
    if errors:
        print(
            f'tagstream tag: {errors} line(s) could not be labelled (see their "error")',
            file=sys.stderr,
        )
        return EXIT_FAILED
    return EXIT_OK


class Progress:
    """Records done, rate and (for a file) share and ETA, on one line of stderr, rewritten at
    most twice a second; only when stderr is a terminal and not under CI (``CI`` set), so that
    a pipe or a log gets nothing."""

    def __init__(
        self,
        stream: IO[str],
        total_bytes: int | None,
        clock: Callable[[], float] = time.monotonic,
        environ: Mapping[str, str] = os.environ,
    ):
        self._stream = stream
        self._total = total_bytes
        self._clock = clock
        self.enabled = stream.isatty() and not environ.get("CI")
        self._start = self._shown = clock()
        self._records = 0
        self._wrote = False

    def update(self, records: int, done_bytes: int | None) -> None:
        self._records += records
        now = self._clock()
        if not self.enabled or now - self._shown < 0.5:
            return
        self._shown = now
        elapsed = max(now - self._start, 1e-9)
        line = f"{self._records:,} records, {self._records / elapsed:,.0f}/s"
        if self._total and done_bytes is not None:
            share = min(1.0, done_bytes / self._total)
            left = elapsed * (1 - share) / share if share else 0.0
            line += f", {100 * share:.0f}%, {int(left) // 60}:{int(left) % 60:02d} left"
        self._stream.write(f"\r{line}\x1b[K")
        self._stream.flush()
        self._wrote = True

    def close(self) -> None:
        if self._wrote:
            self._stream.write("\n")
            self._stream.flush()


def _lines(inp: IO[bytes], input_format: str) -> Iterator[tuple[int, bytes]]:
    """Numbered lines. JSON lines: blank lines are skipped. Text: every line is a text (a blank
    one gets no spans), so output line N answers input line N."""
    for number, raw in enumerate(inp, start=1):
        raw = raw.rstrip(b"\r\n")
        if input_format == "text" or raw.strip():
            yield number, raw


def _chunks(items: Iterator[tuple[int, bytes]], size: int) -> Iterator[list[tuple[int, bytes]]]:
    chunk: list[tuple[int, bytes]] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
