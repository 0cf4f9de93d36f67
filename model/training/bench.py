"""Measure end-to-end tagging speed: ``Tagger.tag`` on batches of sentences (tokenisation,
tensor building, network, Viterbi + marginals and span decoding all included).

    python -m tagstream.model.training.bench --model model/artifacts/en-news.pt \\
        --batch-size 64 --runs 5 --threads 2

Texts are the sentences of a CoNLL file (default: conll2003/valid.txt under the data dir), each
joined with spaces (no spaces for the char tokenizer), in file order. One warm-up pass, then
``--runs`` timed passes; prints tokens/s of each and the median.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch

from ..tagger import load
from ..tokenize import token_separator
from .conll import data_dir, read_conll


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m tagstream.model.training.bench", description=__doc__.split("\n\n")[0]
    )
    ap.add_argument("--model", default=None, help="artifact (default: the shipped en-news)")
    ap.add_argument("--data", default=None, help="CoNLL file (default: conll2003/valid.txt)")
    ap.add_argument("--batch-size", type=int, default=64, help="texts per Tagger.tag call")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--limit", type=int, default=0, help="use only the first N sentences")
    args = ap.parse_args(argv)
    tagger = load(args.model, threads=args.threads)
    data = args.data or str(data_dir() / "conll2003" / "valid.txt")
    sep = token_separator(tagger.tokenizer)
    texts = [sep.join(tokens) for tokens, _ in read_conll(data)]
    if args.limit:
        texts = texts[: args.limit]
    n_tokens = sum(tagger.prepare(t).num_tokens for t in texts)
    batches = [texts[i : i + args.batch_size] for i in range(0, len(texts), args.batch_size)]
    rates = []
    for run in range(args.runs + 1):
        t0 = time.perf_counter()
        for batch in batches:
            tagger.tag(batch)
        took = time.perf_counter() - t0
        if run:  # run 0 warms up
            rates.append(n_tokens / took)
            print(
                f"run {run}: {n_tokens} tokens in {took:.2f} s = {n_tokens / took:,.0f} tokens/s",
                flush=True,
            )
    print(
        f"{tagger.name}@{tagger.version}: {len(texts)} texts, batch {args.batch_size}, "
        f"torch threads {torch.get_num_threads()}: median {statistics.median(rates):,.0f} tokens/s "
        f"(runs: {', '.join(f'{r:,.0f}' for r in rates)})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
