"""The tagstream model `zh-news` as its own distribution (docs/models.md has its card)."""

import pathlib


def path() -> pathlib.Path:
    """The artifact file; tagstream finds it through the `tagstream.models` entry point."""
    return pathlib.Path(__file__).with_name("zh-news.pt")
