"""Training recipes: the options of ``python -m tagstream.model.training.train`` for a shipped
model, as a file.

A recipe is a TOML file whose keys are the option names of the training command (with dashes
or underscores); options given on the command line override it::

    python -m tagstream.model.training.train --recipe model/recipes/en-news.toml
    python -m tagstream.model.training.train --recipe model/recipes/en-news.toml --seed 2 \\
        --output /tmp/en-news-seed2.pt

Paths: ``train``, ``transfer`` and ``dev`` are relative to the data directory
(``$TAGSTREAM_DATA_DIR``, default ``../shared/data``); ``pretrained`` and ``init-from`` may start
with ``~``; ``output`` and ``init-from`` are relative to the working directory. The shipped
models' recipes are in ``model/recipes/``; each model card in docs/models.md cites its recipe.
"""

from __future__ import annotations

import os
import tomllib

from .conll import data_dir


def read_recipe(path: str | os.PathLike, known: set[str]) -> dict:
    """The option values of recipe ``path`` (keys as argparse dests), paths resolved; ValueError
    for an unknown key or a file that is not TOML, OSError if it cannot be read."""
    with open(path, "rb") as f:
        try:
            raw = tomllib.load(f)
        except tomllib.TOMLDecodeError as e:
            raise ValueError(f"recipe {path}: not TOML: {e}") from None
    values = {k.replace("-", "_"): v for k, v in raw.items()}
    unknown = sorted(set(values) - known - {"recipe"})
    if unknown:
        raise ValueError(
            f"recipe {path}: unknown options {unknown}; "
            "see python -m tagstream.model.training.train --help"
        )
    root = data_dir()
    for key in ("train", "transfer"):
        if isinstance(values.get(key), str):
            values[key] = [values[key]]
        if key in values:
            values[key] = [str(root / p) for p in values[key]]
    if "dev" in values:
        values["dev"] = str(root / values["dev"])
    for key in ("pretrained", "init_from"):
        if key in values:
            values[key] = os.path.expanduser(values[key])
    return values
