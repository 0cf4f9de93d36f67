"""The tagger: tokenisation, the BiLSTM + self-attention + CRF network, artifacts, training.

The worker uses only this API::

    from tagstream.model import load
    tagger = load()                       # the shipped en-news model
    spans = tagger.tag(["Barack Obama visited Paris ."])
"""

import warnings

# torch built without NumPy warns on import that it cannot use it; the tagger never does
warnings.filterwarnings("ignore", message="Failed to initialize NumPy", category=UserWarning)

from tagstream.model.export import export_random  # noqa: E402
from tagstream.model.registry import UnknownModel  # noqa: E402
from tagstream.model.tagger import ArtifactError, Prepared, Span, Tagger, default_model_path, load  # noqa: E402

__all__ = [
    "ArtifactError",
    "Prepared",
    "Span",
    "Tagger",
    "UnknownModel",
    "default_model_path",
    "export_random",
    "load",
]
