"""``tagstream models``: the installed models, with their cards' figures."""

from __future__ import annotations

import argparse

from .exits import EXIT_OK


def cmd_models(args: argparse.Namespace) -> int:
    from ..models import installed_models

    rows = [("name", "version", "language", "dev F1", "held-out F1", "size", "labels", "file")]
    for card in installed_models():
        f1, held = (f"{v:.2f}" if v is not None else "-" for v in (card.dev_f1, card.holdout_f1))
        rows.append(
            (
                card.name,
                card.version,
                card.language,
                f1,
                held,
                f"{card.size_mb:.1f} MB",
                " ".join(card.labels),
                str(card.path),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[-1])
    print(
        "\nUse one with `tagstream tag --model NAME` or TAGSTREAM_MODEL__NAME=NAME; "
        "docs/models.md has their cards."
    )
    return EXIT_OK
