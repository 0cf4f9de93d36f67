"""The tagger: tokenisation, the BiLSTM + self-attention + CRF network, artifacts, training.

The inference API (the worker uses only this; training is `tagstream.model.training`, which
inference never imports)::

    from tagstream.model import load
    tagger = load()                       # the shipped en-news model
    spans = tagger.tag(["Barack Obama visited Paris ."])
"""

import warnings

# torch built without NumPy warns on import that it cannot use it; the tagger never does
warnings.filterwarnings("ignore", message="Failed to initialize NumPy", category=UserWarning)

from .registry import UnknownModel  # noqa: E402
from .tagger import ArtifactError, Tagger, default_model_path, load  # noqa: E402
from .texts import Prepared, Span  # noqa: E402

__all__ = [
    "ArtifactError",
    "Prepared",
    "Span",
    "Tagger",
    "UnknownModel",
    "default_model_path",
    "load",
]
