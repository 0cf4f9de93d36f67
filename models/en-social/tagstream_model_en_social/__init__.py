"""The tagstream model `en-social` as its own distribution (docs/models.md has its card)."""

import pathlib


def path() -> pathlib.Path:
    """The artifact file; tagstream finds it through the `tagstream.models` entry point."""
    return pathlib.Path(__file__).with_name("en-social.pt")
