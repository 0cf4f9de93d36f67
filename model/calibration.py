"""Calibrated span scores: a map from the network's raw confidence in a span to the probability
that the span is right, stored with the artifact.

A span's raw score is the mean over its tokens of the CRF's posterior probability of their tags.
It ranks spans well but overstates how often they are right (each model card's reliability
table shows by how much). Platt scaling fixes that with two numbers per label, fitted on the
spans of the dev split (`tagstream.model.training.calibrate`)::

    score = sigmoid(a * logit(raw) + b)

a monotone map, so it changes no span and no ranking, only what the number means. A label with
too few dev spans to fit its own pair uses the pair fitted on every label. Artifacts without a
calibration keep their raw scores.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

_EDGE = 1e-6  # raw scores are clipped to [EDGE, 1 - EDGE] before the logit


def logit(p: float) -> float:
    p = min(1.0 - _EDGE, max(_EDGE, p))
    return math.log(p / (1.0 - p))


def sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


@dataclass(frozen=True)
class Calibration:
    """Platt scaling per label; ``default`` for labels without a pair of their own. The identity
    (``Calibration()``) leaves scores as they are."""

    default: tuple[float, float] = (1.0, 0.0)
    by_label: Mapping[str, tuple[float, float]] = field(default_factory=dict)

    @property
    def identity(self) -> bool:
        return self.default == (1.0, 0.0) and not self.by_label

    def apply(self, label: str, raw: float) -> float:
        if self.identity:
            return raw
        a, b = self.by_label.get(label, self.default)
        return sigmoid(a * logit(raw) + b)

    def to_meta(self, **about: object) -> dict:
        """The artifact metadata's ``calibration`` (with ``about``: what it was fitted on)."""
        return {
            "method": "platt",
            "default": list(self.default),
            "by_label": {label: list(ab) for label, ab in sorted(self.by_label.items())},
            **about,
        }

    @classmethod
    def from_meta(cls, meta: dict | None, labels: tuple[str, ...] | list[str] = ()) -> Calibration:
        """The calibration of an artifact's metadata (None: the identity); ValueError if it is
        malformed or names a label the model has not."""
        if meta is None:
            return cls()
        if not isinstance(meta, dict) or meta.get("method") != "platt":
            raise ValueError(f"calibration: expected method 'platt', got {meta!r:.80}")

        def pair(value: object, what: str) -> tuple[float, float]:
            if (
                not isinstance(value, list)
                or len(value) != 2
                or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in value)
            ):
                raise ValueError(f"calibration: {what} must be two finite numbers, got {value!r}")
            if value[0] <= 0:
                raise ValueError(f"calibration: {what}: the slope must be positive (monotone)")
            return float(value[0]), float(value[1])

        by_label = meta.get("by_label", {})
        if not isinstance(by_label, dict):
            raise ValueError("calibration: by_label must be an object")
        unknown = sorted(set(by_label) - set(labels)) if labels else []
        if unknown:
            raise ValueError(f"calibration: labels the model has not: {unknown}")
        return cls(
            pair(meta.get("default"), "default"),
            {label: pair(ab, label) for label, ab in by_label.items()},
        )
