"""The artifact file format: one TorchScript archive holding the network and its metadata.

An artifact is ``torch.jit.save`` of the scripted ``TaggerNet`` with extra files:
``tagstream.json`` (format name and version, model name/version, language, tokenizer, maximum
length, labels and tags, features, network config, training data, dev scores and what they were
measured with, pretrained resource) and the vocabularies ``words.txt`` and ``bigrams.txt`` (one
entry a line, in id order; ids 0 and 1 are padding and unknown) and ``lexicon.txt`` (words, one
a line, for the lexicon feature). Large embedding tables are stored as float16.

``save`` writes one; ``read`` opens one (zip CRCs, TorchScript) and ``check``
(``tagstream.model.artifact_checks``) validates its metadata against the network and the
vocabularies. Loading for tagging is ``tagstream.model.tagger.load``.
"""

from __future__ import annotations

import copy
import json
import os
import pathlib
import zipfile
from collections.abc import Sequence

import torch

from .network import TaggerNet
from .spans import bioes_tags
from .vocab import UNK, Vocab

FORMAT = "tagstream-tagger"
FORMAT_VERSION = 2  # 2: the tokenizer's rules version and settings are stored and checked
META_FILE = "tagstream.json"
WORDS_FILE = "words.txt"
BIGRAMS_FILE = "bigrams.txt"
LEXICON_FILE = "lexicon.txt"
CHAR_TABLE_SIZE = (
    65536  # code points above the Basic Multilingual Plane map to the unknown character
)
_HALF_ROWS = 5000  # embedding tables with more rows than this are stored as float16


class ArtifactError(ValueError):
    """A model file that cannot be used: missing, corrupt, truncated, foreign or incompatible."""

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        super().__init__(f"model file {os.fspath(path)}: {reason}")
        self.path = os.fspath(path)
        self.reason = reason


def char_table(chars: Vocab) -> torch.Tensor:
    """(65536,) int32: code point -> character id (UNK for characters not in ``chars``)."""
    table = torch.full((CHAR_TABLE_SIZE,), UNK, dtype=torch.int32)
    table[0] = 0
    for ch, i in chars.stoi.items():
        if len(ch) == 1 and ord(ch) < CHAR_TABLE_SIZE:
            table[ord(ch)] = i
    return table


def int8_rows(table: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A float table (V, D) as int8 rows and a float32 scale per row (V,): row i is about
    ``rows[i] * scale[i]``, each value within half a step (the row's largest magnitude / 127)."""
    scale = table.abs().amax(dim=1) / 127.0
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))  # an all-zero row (padding)
    rows = torch.round(table / scale.unsqueeze(1)).clamp(-127, 127).to(torch.int8)
    return rows, scale


def plain_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A network's state dict in float32 with an int8 word table turned back into floats (and
    an empty ``word_scale``), as a network built from its config expects it."""
    state = {k: v.float() for k, v in state.items()}
    scale = state.pop("word_scale", torch.zeros(0))
    if scale.numel() > 0:
        state["word_table"] = state["word_table"] * scale.unsqueeze(1)
    state["word_scale"] = torch.zeros(0)
    return state


def save(
    net: TaggerNet,
    meta: dict,
    words: Vocab,
    bigrams: Vocab | None,
    path: str | os.PathLike,
    lexicon: Sequence[str] | None = None,
) -> tuple[torch.jit.ScriptModule, dict[str, str]]:
    """Script ``net`` (a copy, in eval mode, big tables in float16; a big word table that
    training kept frozen in int8 with a scale per row, half the bytes again: its values are the
    pretrained vectors as they came) and save it with ``meta`` to ``path``.

    Returns the scripted module and the extra files written, for a caller that saves it again
    with other metadata (``save_again``).
    """
    path = pathlib.Path(path)
    net = copy.deepcopy(net).eval()
    net.sparse = False
    with torch.no_grad():
        if net.word_table.size(0) > _HALF_ROWS:
            table = net.word_table.detach()
            if meta["network"].get("tune_words", True):
                table = table.half()
            else:  # frozen: the pretrained vectors, stored in int8
                table, net.word_scale = int8_rows(table.float())
            net.word_table = torch.nn.Parameter(table, requires_grad=False)
        for emb in net.extras:
            if emb.weight.size(0) > _HALF_ROWS:
                emb.weight = torch.nn.Parameter(emb.weight.detach().half(), requires_grad=False)
    for p in net.parameters():
        p.requires_grad_(False)
    if net.word_table.size(0) != len(words):
        raise ValueError(
            f"word table has {net.word_table.size(0)} rows but the vocabulary {len(words)} entries"
        )
    meta = dict(meta, format=FORMAT, format_version=FORMAT_VERSION, tags=bioes_tags(meta["labels"]))
    files = {META_FILE: json.dumps(meta, ensure_ascii=False, indent=1), WORDS_FILE: words.dumps()}
    if bigrams is not None:
        files[BIGRAMS_FILE] = bigrams.dumps()
    if lexicon is not None:
        files[LEXICON_FILE] = "\n".join(lexicon)
    scripted = torch.jit.script(net)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.jit.save(scripted, str(path), _extra_files=files)
    return scripted, files


def save_again(
    scripted: torch.jit.ScriptModule, files: dict[str, str], meta: dict, path: pathlib.Path
) -> None:
    """Save ``scripted`` again to ``path`` with new metadata; RuntimeError if anything but the
    metadata changed (the network scored before must be the one kept)."""
    before = payload_crcs(path)
    files = dict(files, **{META_FILE: json.dumps(meta, ensure_ascii=False, indent=1)})
    torch.jit.save(scripted, str(path), _extra_files=files)
    if payload_crcs(path) != before:
        raise RuntimeError(f"{path}: the network changed between scoring and saving")


def payload_crcs(path: pathlib.Path) -> dict[str, int]:
    """CRC of every zip member but the metadata and torch's random serialization id."""
    with zipfile.ZipFile(path) as z:
        return {
            i.filename.split("/", 1)[1]: i.CRC
            for i in z.infolist()
            if not i.filename.endswith(("/" + META_FILE, "/.data/serialization_id"))
        }


def read_meta(path: str | os.PathLike) -> dict:
    """An artifact's ``tagstream.json``, read straight from the zip (no checks; use ``load`` for
    those)."""
    with zipfile.ZipFile(path) as z:
        name = next(n for n in z.namelist() if n.endswith("/extra/" + META_FILE))
        return json.loads(z.read(name))


def read(path: pathlib.Path) -> tuple[torch.jit.ScriptModule, dict[str, str]]:
    if not path.is_file():
        raise ArtifactError(path, "does not exist" if not path.exists() else "is not a file")
    with open(path, "rb") as f:
        head = f.read(4)
    if head != b"PK\x03\x04":
        raise ArtifactError(
            path, "is not a TorchScript archive (no zip header): a foreign or corrupt file"
        )
    # torch.jit.load does not verify the members' CRCs: a flipped byte in a weight would load
    try:
        with zipfile.ZipFile(path) as z:
            damaged = z.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        raise ArtifactError(
            path, f"is not a readable zip archive (truncated or corrupt?): {e}"
        ) from e
    if damaged is not None:
        raise ArtifactError(path, f"is corrupt: zip member {damaged!r} fails its CRC check")
    files = {META_FILE: "", WORDS_FILE: "", BIGRAMS_FILE: "", LEXICON_FILE: ""}
    try:
        module = torch.jit.load(str(path), map_location="cpu", _extra_files=files)
    except Exception as e:  # torch raises RuntimeError / ValueError with long C++ traces
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ArtifactError(
            path, f"cannot be read as TorchScript (truncated or corrupt?): {first}"
        ) from e
    return module, {k: (v.decode("utf-8") if isinstance(v, bytes) else v) for k, v in files.items()}
