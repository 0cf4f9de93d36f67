"""tagstream: named-entity tagging for Kafka streams, and as a Python library.

    import tagstream

    nlp = tagstream.load("en-news")           # a name from `tagstream models`, or a .pt file
    for doc in nlp.pipe(texts, batch_size=256):
        ...                                   # the documents the worker publishes

The repository keeps the code in its top-level ``worker/`` (the worker, installed as
``tagstream.worker``) and ``model/`` (the tagger, ``tagstream.model``) folders; pyproject.toml's
``package-dir`` installs them under this package, so nothing named ``model`` or ``worker`` lands
at the top level of an environment.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from tagstream.worker.labeller import Labeller

try:
    __version__ = version("tagstream")
except PackageNotFoundError:  # imported from a checkout that was never installed
    __version__ = "0+unknown"

__all__ = ["__version__", "load"]


def load(
    name_or_path: str | os.PathLike | None = None,
    *,
    threads: int | None = None,
    precision: Literal["auto", "bfloat16", "float32"] = "auto",
    min_score: float = 0.0,
    min_score_by_label: Mapping[str, float] | None = None,
    echo_text: bool = False,
) -> Labeller:
    """Load a model: an installed model's name (``tagstream models``; None: en-news) or an
    artifact file. ``threads``: torch threads while it tags (None: torch's own setting, which
    this library never changes). ``min_score`` and ``min_score_by_label`` leave out the spans
    below them, as the worker's ``TAGSTREAM_MODEL__MIN_SCORE`` does. Raises ValueError for a
    model that is not installed or a file that is not a usable model."""
    from tagstream.worker.labeller import Labeller  # torch loads with the model, not on import

    return Labeller(
        name_or_path,
        threads=threads,
        precision=precision,
        min_score=min_score,
        min_score_by_label=min_score_by_label,
        echo_text=echo_text,
    )
