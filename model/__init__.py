"""The tagger: tokenisation, the BiLSTM + self-attention + CRF network, artifacts, training.

The worker uses only this API::

    from model import load
    tagger = load()                       # the shipped en-news model
    spans = tagger.tag(["Barack Obama visited Paris ."])
"""
from model.export import export_random
from model.tagger import ArtifactError, Prepared, Span, Tagger, default_model_path, load

__all__ = ["ArtifactError", "Prepared", "Span", "Tagger", "default_model_path", "export_random", "load"]
