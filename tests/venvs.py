"""Fresh virtualenvs for the install tests, with dependencies lent from the project's one.

Downloading torch again (PyPI's build carries several GB of CUDA libraries) would take minutes, so
``lend`` puts the running environment's copies of some distributions (and everything they
require) on a fresh virtualenv's path through a .pth file, the way a wheel cache would: pip then
finds them installed. Only those distributions are lent, never the project itself, so the fresh
virtualenv sees nothing of the repository.
"""

from __future__ import annotations

import re
import subprocess
from importlib import metadata
from pathlib import Path


def _key(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def closure(requirements: list[str]) -> list[metadata.Distribution]:
    """The installed distributions of ``requirements`` (PEP 508 strings; markers evaluated for
    no extra) and of everything they require, following the extras they ask for."""
    from packaging.requirements import Requirement

    seen: dict[str, metadata.Distribution] = {}
    asked: set[tuple[str, str]] = set()  # (distribution, extra) already expanded
    todo = [Requirement(r) for r in requirements]
    todo = [r for r in todo if r.marker is None or r.marker.evaluate({"extra": ""})]
    while todo:
        req = todo.pop()
        key = _key(req.name)
        dist = seen.get(key) or metadata.distribution(req.name)
        seen[key] = dist
        for extra in {"", *req.extras}:
            if (key, extra) in asked:
                continue
            asked.add((key, extra))
            for spec in dist.requires or []:
                sub = Requirement(spec)
                if sub.marker is None or sub.marker.evaluate({"extra": extra}):
                    todo.append(sub)
    return list(seen.values())


def lend(venv: Path, overlay: Path, requirements: list[str]) -> list[metadata.Distribution]:
    """Put the running environment's copies of ``requirements`` (and their requirements) on the
    path of the virtualenv ``venv``: symlinks in ``overlay``, named by a .pth file."""
    dists = closure(requirements)
    overlay.mkdir()
    for dist in dists:
        site = Path(dist.locate_file(""))
        for file in dist.files or []:
            top = file.parts[0]
            if top in ("..", "__pycache__") or (overlay / top).is_symlink():
                continue
            (overlay / top).symlink_to(site / top)
    purelib = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import sysconfig; print(sysconfig.get_paths()['purelib'])",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    Path(purelib, "tagstream-test-lent.pth").write_text(str(overlay) + "\n")
    return dists
