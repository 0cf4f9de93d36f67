import pathlib

import pytest

from tagstream.model.training.conll import data_dir


@pytest.fixture(scope="session")
def data_root() -> pathlib.Path:
    """The corpora directory, or skip naming TAGSTREAM_DATA_DIR."""
    root = data_dir()
    if not (root / "conll2003" / "valid.txt").is_file():
        pytest.skip(
            f"corpora not found at {root}: set TAGSTREAM_DATA_DIR to the shared data directory"
        )
    return root
