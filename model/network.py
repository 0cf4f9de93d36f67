"""The tagger network: token representation -> BiLSTM -> masked self-attention -> CRF.

Read top to bottom: ``TaggerNet``; its sizes are ``NetworkConfig`` (``model.network_config``),
its leaf modules (the character CNN, the CRF) are in ``model.layers``, and the inference
recurrences of its BiLSTM (dense bfloat16, float32 from input gates) in ``model.recurrence``.
Shapes: B sentences (chunks) in a batch, T tokens in the longest, W characters per token
(truncated), D the token representation size, H the LSTM size per direction, C the number of tags.

Everything here compiles with ``torch.jit.script`` and is deterministic in eval mode.
"""

from __future__ import annotations

from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from .layers import CRF, CharCNN, add_recall_margin
from .network_config import NetworkConfig
from .recurrence import cell_scale, dense_bilstm, lstm_from_table

__all__ = ["NetworkConfig", "TaggerNet"]


class TaggerNet(nn.Module):
    """Token ids in, tags and per-token confidences out.

    ``forward(words, extras, chars, lengths)``:
      words (B, T) word ids; extras (B, T, E) ids of the extra features (casing, bigrams);
      chars (B, T, W) Unicode code points of each token's characters (0 = padding);
      lengths (B,) tokens per sentence, each >= 1.
    returns tags (B, T) tag ids and conf (B, T): the CRF marginal probability of the chosen tag
    (softmax probability without a CRF).
    """

    def __init__(
        self,
        cfg: NetworkConfig,
        char_table: Tensor,
        allowed: Tensor,
        allowed_start: Tensor,
        allowed_end: Tensor,
    ) -> None:
        super().__init__()
        self.word_table = nn.Parameter(torch.randn(cfg.num_words, cfg.word_dim) * 0.1)  # (V, Dw)
        # (V,) when the word table is stored as int8 (a frozen table, see artifact.save): a word's
        # vector is its row times its scale. Empty otherwise.
        self.register_buffer("word_scale", torch.zeros(0))
        self.fast_lstm = True  # bfloat16 dense LSTM at inference (see bilstm)
        self.sparse = (
            False  # sparse gradients for the big tables (training sets it; see sparse_parameters)
        )
        self.register_buffer(
            "char_table", char_table.to(torch.int32)
        )  # (65536,) code point -> char id
        self.chars: Optional[CharCNN] = (
            CharCNN(cfg.num_chars, cfg.char_dim, cfg.char_filters, cfg.char_kernel)
            if cfg.char_dim > 0
            else None
        )
        self.extras = nn.ModuleList(
            [nn.Embedding(n, d, padding_idx=0) for n, d in zip(cfg.extra_sizes, cfg.extra_dims)]
        )
        rep = cfg.word_dim + (cfg.char_filters if cfg.char_dim > 0 else 0) + sum(cfg.extra_dims)
        self.drop = nn.Dropout(cfg.dropout)
        self.lstm = nn.LSTM(
            rep,
            cfg.hidden,
            num_layers=cfg.lstm_layers,
            batch_first=True,
            bidirectional=True,
            dropout=cfg.dropout if cfg.lstm_layers > 1 else 0.0,
        )
        self.attn: Optional[nn.MultiheadAttention] = (
            nn.MultiheadAttention(2 * cfg.hidden, cfg.heads, dropout=0.1, batch_first=True)
            if cfg.heads > 0
            else None
        )
        self.norm = nn.LayerNorm(2 * cfg.hidden)
        self.out = nn.Linear(2 * cfg.hidden, cfg.num_tags)
        self.crf: Optional[CRF] = (
            CRF(cfg.num_tags, allowed, allowed_start, allowed_end) if cfg.crf else None
        )

    def char_ids(self, chars: Tensor) -> Tensor:
        """Code points (any shape) -> character ids; outside the table -> 1 (unknown)."""
        inside = chars < self.char_table.size(0)
        ids = self.char_table[chars.clamp(0, self.char_table.size(0) - 1)].long()
        return torch.where(inside, ids, torch.ones_like(ids)).masked_fill(chars == 0, 0)

    def bilstm(self, x: Tensor, lengths: Tensor) -> Tensor:
        """(B, T, D) -> (B, T, 2H): the BiLSTM over each sequence's first ``lengths`` steps.

        Training (and multi-layer models): a packed sequence in float32. Inference with one layer:
        each direction as one dense call in bfloat16 (oneDNN kernels, about twice as fast on CPUs
        with AVX-512/AMX); the backward direction reads every sequence reversed within its length.
        """
        T = x.size(1)
        if self.training or self.lstm.num_layers != 1 or not self.fast_lstm:
            packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
            return pad_packed_sequence(self.lstm(packed)[0], batch_first=True, total_length=T)[0]
        lstm = self.lstm
        fw = [lstm.weight_ih_l0, lstm.weight_hh_l0, lstm.bias_ih_l0, lstm.bias_hh_l0]
        bw = [
            lstm.weight_ih_l0_reverse,
            lstm.weight_hh_l0_reverse,
            lstm.bias_ih_l0_reverse,
            lstm.bias_hh_l0_reverse,
        ]
        return dense_bilstm(x, lengths, fw, bw)  # (B, T, 2H)

    @torch.jit.export
    def char_features(self, chars: Tensor) -> Tensor:
        """(U, W) code points of U tokens (0 = padding) -> (U, F) their character-CNN features;
        (U, 0) for a network without the CNN. A token's features depend on its characters only:
        a caller may compute them once per distinct token and cache them (``Tagger`` does)."""
        if self.chars is None:
            return torch.zeros(chars.size(0), 0)
        return self.chars(self.char_ids(chars))

    def word_vectors(self, words: Tensor) -> Tensor:
        """Word ids (any shape) -> their float32 vectors (..., Dw). The table may be float32,
        float16, or int8 with a scale per row (``word_scale``)."""
        vectors = F.embedding(words, self.word_table, sparse=self.sparse).float()
        if self.word_scale.numel() > 0:
            vectors = vectors * F.embedding(words, self.word_scale.unsqueeze(1))
        return vectors

    @torch.jit.export
    def emissions(self, words: Tensor, extras: Tensor, chars: Tensor, lengths: Tensor) -> Tensor:
        """Tag scores (B, T, C) for each token (0 at padding); chars (B, T, W) code points."""
        B, T = words.shape
        real = (torch.arange(T, device=words.device).unsqueeze(0) < lengths.unsqueeze(1)).reshape(
            B * T
        )  # (B*T,)
        idx = real.nonzero().squeeze(1)  # (N,) flat positions of the real tokens
        c = self.char_features(chars.reshape(B * T, chars.size(2)).index_select(0, idx))  # (N, F)
        return self.emissions_from(words, extras, c, lengths)

    @torch.jit.export
    def emissions_from(
        self, words: Tensor, extras: Tensor, char_feats: Tensor, lengths: Tensor
    ) -> Tensor:
        """``emissions`` with the real tokens' character features given: char_feats (N, F), the
        N real tokens in row order (sentence by sentence), from ``char_features``."""
        B, T = words.shape
        real = (torch.arange(T, device=words.device).unsqueeze(0) < lengths.unsqueeze(1)).reshape(
            B * T
        )  # (B*T,)
        idx = real.nonzero().squeeze(1)  # (N,) flat positions of the real tokens
        parts = [self.word_vectors(words)]  # (B, T, Dw)
        if self.chars is not None:
            c = char_feats.float()
            full = torch.zeros(B * T, c.size(1), dtype=c.dtype, device=c.device).index_copy(
                0, idx, c
            )  # (B*T, F)
            parts.append(full.reshape(B, T, -1))  # (B, T, F)
        for i, emb in enumerate(self.extras):
            parts.append(
                F.embedding(extras[:, :, i], emb.weight, 0, sparse=self.sparse).float()
            )  # (B, T, De)
        x = self.drop(torch.cat(parts, dim=2))  # (B, T, D)
        h = self.bilstm(x, lengths)  # (B, T, 2H)
        return self._head(h.reshape(B * T, -1), real, idx, B, T)

    @torch.jit.export
    def token_gates(self, words: Tensor, extras: Tensor, char_feats: Tensor) -> Tensor:
        """The BiLSTM's input projection of N tokens, biases included: words (N,) word ids,
        extras (N, E) extra feature ids, char_feats (N, F) from ``char_features`` -> (N, 8H), the
        forward direction's gates (i, f, g, o) then the backward one's, with g doubled (the
        recurrence computes tanh(g) as 2 sigmoid(2g) - 1: one sigmoid for all four gates).

        A token's gates depend only on its own features: a caller may compute them once per
        distinct token and cache them (``Tagger`` does), then run ``emissions_from_gates``. This
        projection is the largest matrix product of the network (D inputs to 8H per token).
        """
        parts = [self.word_vectors(words)]  # (N, Dw)
        if self.chars is not None:
            parts.append(char_feats.float())  # (N, F)
        for i, emb in enumerate(self.extras):
            parts.append(F.embedding(extras[:, i], emb.weight, 0).float())  # (N, De)
        lstm = self.lstm
        weight = torch.cat([lstm.weight_ih_l0, lstm.weight_ih_l0_reverse])  # (8H, D)
        bias = torch.cat(
            [lstm.bias_ih_l0 + lstm.bias_hh_l0, lstm.bias_ih_l0_reverse + lstm.bias_hh_l0_reverse]
        )
        scale = cell_scale(lstm.hidden_size, lstm.weight_hh_l0.device).repeat(2)  # (8H,)
        return F.linear(
            torch.cat(parts, dim=1), weight * scale.unsqueeze(1), bias * scale
        )  # (N, 8H)

    @torch.jit.export
    def emissions_from_gates(self, gates: Tensor, lengths: Tensor) -> Tensor:
        """``emissions`` from the real tokens' input gates (N, 8H) (``token_gates``), the N real
        tokens in row order, lengths (B,) of one-layer networks in float32."""
        return self.emissions_from_table(gates, torch.arange(gates.size(0)), lengths)

    @torch.jit.export
    def emissions_from_table(self, table: Tensor, rows: Tensor, lengths: Tensor) -> Tensor:
        """``emissions_from_gates`` with the gates of distinct tokens (R, 8H) and the row of each
        real token (N,): a cache of ``token_gates`` is read in place (``lstm_from_table``)."""
        w_hh = torch.stack([self.lstm.weight_hh_l0, self.lstm.weight_hh_l0_reverse])  # (2, 4H, H)
        B, T = lengths.size(0), int(lengths.max())
        h = lstm_from_table(table, rows, lengths, w_hh)  # (B*T, 2H)
        real = (torch.arange(T).unsqueeze(0) < lengths.unsqueeze(1)).reshape(B * T)  # (B*T,)
        return self._head(h, real, real.nonzero().squeeze(1), B, T)

    def _head(self, h: Tensor, real: Tensor, idx: Tensor, B: int, T: int) -> Tensor:
        """BiLSTM states on the (B, T) grid (B*T, 2H), finite at padding -> tag scores (B, T, C)
        (0 at padding): self-attention over the real tokens, layer norm, output layer. real
        (B*T,) marks the real tokens, idx (N,) their flat positions.

        The attention's input projection runs on the grid (padding is a small share of a
        length-sorted batch; scattering the projected rows into a grid cost more), everything
        after the attention on the N real tokens only.
        """
        D = h.size(1)
        hr = h.index_select(0, idx)  # (N, 2H)
        attn = self.attn
        if attn is not None:
            nh = attn.num_heads
            qkv = F.linear(h, attn.in_proj_weight, attn.in_proj_bias)  # (B*T, 3*2H): q | k | v
            qkv = qkv.reshape(B, T, 3, nh, D // nh).permute(
                2, 0, 3, 1, 4
            )  # (3, B, heads, T, 2H/heads)
            keys = real.reshape(B, 1, 1, T)  # attend to real tokens only
            a = F.scaled_dot_product_attention(
                qkv[0],
                qkv[1],
                qkv[2],
                attn_mask=keys,
                dropout_p=attn.dropout if self.training else 0.0,
            )  # (B, heads, T, 2H/heads)
            a = a.transpose(1, 2).reshape(B * T, D).index_select(0, idx)  # (N, 2H)
            a = F.linear(a, attn.out_proj.weight, attn.out_proj.bias)  # (N, 2H)
            hr = self.norm(hr + self.drop(a))
        em = self.out(self.drop(hr))  # (N, C)
        C = em.size(1)
        return (
            torch.zeros(B * T, C, dtype=em.dtype, device=em.device)
            .index_copy(0, idx, em)
            .reshape(B, T, C)
        )  # (B, T, C)

    def forward(
        self, words: Tensor, extras: Tensor, chars: Tensor, lengths: Tensor
    ) -> Tuple[Tensor, Tensor]:
        return self.decode(self.emissions(words, extras, chars, lengths), lengths)

    @torch.jit.export
    def decode(self, em: Tensor, lengths: Tensor) -> Tuple[Tensor, Tensor]:
        """Tags (B, T) and confidences (B, T) from emission scores (B, T, C).

        Separate from ``emissions`` so that a caller can compute emissions in length-sorted
        sub-batches and decode them all in one pass (one loop over time instead of several).
        """
        mask = torch.arange(em.size(1), device=em.device).unsqueeze(0) < lengths.unsqueeze(
            1
        )  # (B, T)
        if self.crf is not None:
            tags = self.crf.viterbi(em, mask)  # (B, T)
            probs = self.crf.marginals(em, mask)  # (B, T, C)
        else:
            probs = torch.softmax(em, dim=2)
            tags = probs.argmax(dim=2)
        conf = probs.gather(2, tags.unsqueeze(2)).squeeze(2)  # (B, T)
        return tags, conf

    @torch.jit.unused
    def sparse_parameters(self) -> List[nn.Parameter]:
        """The embedding tables whose gradients are sparse when ``self.sparse`` is set."""
        return [self.word_table] + [emb.weight for emb in self.extras]

    @torch.jit.unused
    def loss(self, words, extras, chars, lengths, tags, recall_margin=0.0, o_tag=-1) -> Tensor:
        """Training loss summed over the batch (CRF NLL, or token cross-entropy); with
        ``recall_margin``, softmax-margin (`tagstream.model.layers.add_recall_margin`)."""
        em = self.emissions(words, extras, chars, lengths)
        mask = torch.arange(em.size(1)).unsqueeze(0) < lengths.unsqueeze(1)
        if recall_margin > 0:
            em = add_recall_margin(em, tags, mask, recall_margin, o_tag)
        if self.crf is not None:
            return self.crf.nll(em, tags, mask)
        return F.cross_entropy(em[mask], tags[mask], reduction="sum")
