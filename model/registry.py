"""Models by name: the artifacts shipped in this package, those of installed model packages,
and any artifact file by its path.

A model package (spaCy's model packages are the convention) declares its artifacts under the
entry point group ``tagstream.models``: the name maps to a callable that returns the file's
path, e.g. in its pyproject.toml::

    [project.entry-points."tagstream.models"]
    en-social = "tagstream_model_en_social:path"

>>> resolve("en-news").name
'en-news.pt'
"""

from __future__ import annotations

import os
import pathlib
from dataclasses import dataclass
from importlib.metadata import entry_points

from .artifact import read_meta

ENTRY_POINTS = "tagstream.models"
DEFAULT = "en-news"
_SHIPPED = pathlib.Path(__file__).resolve().parent / "artifacts"


class UnknownModel(ValueError):
    """A model reference that is neither an installed model's name nor an existing file."""


def installed() -> dict[str, pathlib.Path]:
    """Name -> artifact file of every model this installation has (shipped ones first; an
    installed package cannot shadow a shipped name)."""
    out = {p.stem: p for p in sorted(_SHIPPED.glob("*.pt"))}
    for ep in sorted(entry_points(group=ENTRY_POINTS), key=lambda ep: ep.name):
        if ep.name not in out:
            try:
                out[ep.name] = pathlib.Path(ep.load()())
            except Exception:  # a broken package: leave it out; `tagstream models` says so
                continue
    return out


def resolve(ref: str | os.PathLike | None) -> pathlib.Path:
    """The artifact file of ``ref``: None (the default model), an installed model's name, or
    a path (anything with a directory or a suffix, or an existing file: returned as it is, for
    the loader to check). UnknownModel names what is installed."""
    if ref is None:  # the shipped default, named by its path even when missing (a broken install)
        return _SHIPPED / f"{DEFAULT}.pt"
    text = os.fspath(ref)
    path = pathlib.Path(text)
    if isinstance(ref, os.PathLike) or os.sep in text or path.suffix or path.exists():
        return path
    models = installed()
    if text in models:
        return models[text]
    raise UnknownModel(
        f"no model named {text!r}; installed: {', '.join(models) or 'none'} "
        "(or give the path of an artifact file)"
    )


@dataclass(frozen=True)
class Card:
    """What ``tagstream models`` shows of one model (read from its metadata, not loaded)."""

    name: str
    version: str
    language: str
    labels: tuple[str, ...]
    dev_f1: float | None
    size_mb: float
    path: pathlib.Path
    holdout_f1: float | None = None  # on the held-out slice of the latest training sentences


def cards() -> list[Card]:
    out = []
    for name, path in installed().items():
        meta = read_meta(path)
        f1 = ((meta.get("dev_scores") or {}).get("micro") or {}).get("f1")
        held = ((meta.get("holdout_scores") or {}).get("micro") or {}).get("f1")
        out.append(
            Card(
                name,
                meta.get("version", "?"),
                meta.get("language", "?"),
                tuple(meta.get("labels", ())),
                f1,
                path.stat().st_size / 1e6,
                path,
                held,
            )
        )
    return out
