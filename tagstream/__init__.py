"""tagstream: the Kafka worker (``tagstream.worker``) and the NER tagger (``tagstream.model``).

The repository keeps them in its top-level ``worker/`` and ``model/`` folders; pyproject.toml's
``package-dir`` installs them under this package, so nothing named ``model`` or ``worker`` lands
at the top level of an environment.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("tagstream")
except PackageNotFoundError:  # imported from a checkout that was never installed
    __version__ = "0+unknown"
