"""The one module of the worker that imports the model package (`tagstream.model`): loading a
tagger by name or file, and the installed models' cards. The rest of the worker holds a tagger
only through the `tagstream.worker.ports.Tagger` Protocol."""

from __future__ import annotations

import warnings
from pathlib import Path

from ..model import load
from ..model.registry import Card, cards
from .ports import Tagger


def load_tagger(ref: str | Path | None, threads: int = 0, precision: str = "auto") -> Tagger:
    """Load a model: an installed model's name (None: the default, en-news) or an artifact
    file, on the numeric path ``precision`` ("auto": float32, see
    `tagstream.model.precision`).

    Raises a ValueError (`model.ArtifactError` for a missing, corrupt or incompatible file,
    `model.UnknownModel` for a name that is not installed).
    """
    with warnings.catch_warnings():  # torch marks TorchScript deprecated; it is what we ship
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"torch\.jit")
        return load(ref, threads=threads or None, precision=precision)


def installed_models() -> list[Card]:
    """The models this installation has, by name, with what `tagstream models` shows."""
    return cards()
