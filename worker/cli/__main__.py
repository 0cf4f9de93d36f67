"""``python -m tagstream.worker.cli``: the ``tagstream`` command."""

from . import console

console()
