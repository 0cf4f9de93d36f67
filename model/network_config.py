"""The sizes of the tagger network (``model.network.TaggerNet``), as stored in an artifact's
metadata (``network``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import List


@dataclass
class NetworkConfig:
    """Sizes of the network. The defaults are those of the shipped English model."""

    num_words: int = 2  # rows of the word table (pad, unk, words...)
    word_dim: int = 100
    tune_words: bool = True  # fine-tune the word table (training only)
    num_chars: int = 2  # character vocabulary size (pad, unk, chars...)
    char_dim: int = 30  # 0 turns the character CNN off (e.g. Chinese: the token is the character)
    char_filters: int = 50
    char_kernel: int = 3
    max_word_chars: int = 20  # longer tokens are cut to this many characters for the CNN
    extra_sizes: List[int] = field(default_factory=list)  # vocab size of each extra id feature
    extra_dims: List[int] = field(
        default_factory=list
    )  # embedding size of each (casing, bigrams...)
    hidden: int = 200  # LSTM size per direction
    lstm_layers: int = 1
    heads: int = 4  # self-attention heads; 0 turns attention off
    dropout: float = 0.5
    crf: bool = True  # False: independent softmax per token
    num_tags: int = 3

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "NetworkConfig":
        known = cls.__dataclass_fields__
        unknown = set(d) - set(known)
        if unknown:
            raise ValueError(f"unknown network config keys: {sorted(unknown)}")
        return cls(**d)
