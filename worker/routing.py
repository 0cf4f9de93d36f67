"""Several models in one worker, chosen per record: by a header (``model.select_header``), else
by a field of the input document (``model.select_pointer``), else the default model. A name no
loaded model has makes the record a dead letter (`UNKNOWN_MODEL`).

A micro-batch may hold records of several models; `tag_batch` tags each model's records with one
call of that model, so every model is batched on its own while records stay in consumption
order (offsets commit in order).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .messages import UNKNOWN_MODEL as UNKNOWN_MODEL
from .pointers import resolve
from .ports import Tagger


class UnknownModel(Exception):
    pass


@dataclass(frozen=True)
class Models:
    """The loaded models by name (the default first), and how a record chooses one."""

    default: Tagger
    extra: Mapping[str, Tagger] = field(default_factory=dict)
    header: str | None = None
    pointer: tuple[str, ...] | None = None

    @classmethod
    def of(
        cls,
        taggers: Sequence[Tagger],
        header: str | None = None,
        pointer: tuple[str, ...] | None = None,
    ) -> Models:
        default, *rest = taggers
        return cls(default, {t.name: t for t in rest}, header, pointer)

    def __post_init__(self) -> None:
        if self.default.name in self.extra:
            raise ValueError(f"model {self.default.name} is loaded twice")

    @property
    def all(self) -> list[Tagger]:
        return [self.default, *self.extra.values()]

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.all]

    def labels(self) -> set[str]:
        return {label for t in self.all for label in t.labels}

    def named(self, name: str) -> Tagger:
        if name == self.default.name:
            return self.default
        found = self.extra.get(name)
        if found is None:
            raise UnknownModel(
                f"no model {name!r} is loaded here (loaded: {', '.join(self.names)})"
            )
        return found

    def choose(self, headers: Iterable[tuple[str, bytes | None]], document: Any) -> Tagger:
        """The model a record asks for; `UnknownModel` for a name not loaded."""
        if self.header is not None:
            for name, value in headers:
                if name == self.header:
                    return self.named((value or b"").decode("utf-8", "replace").strip())
        if self.pointer is not None and isinstance(document, dict):
            chosen = resolve(document, self.pointer, None)
            if chosen is not None:
                if not isinstance(chosen, str):
                    raise UnknownModel(
                        f"the model field is {type(chosen).__name__}, not a model's name"
                    )
                return self.named(chosen.strip())
        return self.default
