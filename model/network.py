"""The tagger network: token representation -> BiLSTM -> masked self-attention -> CRF.

Read top to bottom: the config, then ``TaggerNet``; its leaf modules (the character CNN, the
CRF) are in ``model.layers``.
Shapes: B sentences (chunks) in a batch, T tokens in the longest, W characters per token
(truncated), D the token representation size, H the LSTM size per direction, C the number of tags.

Everything here compiles with ``torch.jit.script`` and is deterministic in eval mode.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from tagstream.model.layers import CRF, CharCNN


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
        B, T, _ = x.shape
        if self.training or self.lstm.num_layers != 1 or not self.fast_lstm:
            packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
            return pad_packed_sequence(self.lstm(packed)[0], batch_first=True, total_length=T)[0]
        H = self.lstm.hidden_size
        steps = torch.arange(T, device=x.device).unsqueeze(0)  # (1, T)
        rev = torch.where(
            steps < lengths.unsqueeze(1), lengths.unsqueeze(1) - 1 - steps, steps
        )  # (B, T)
        xb = x.to(torch.bfloat16)
        h0 = torch.zeros(1, B, H, dtype=torch.bfloat16, device=x.device)
        fw = [
            self.lstm.weight_ih_l0,
            self.lstm.weight_hh_l0,
            self.lstm.bias_ih_l0,
            self.lstm.bias_hh_l0,
        ]
        bw = [
            self.lstm.weight_ih_l0_reverse,
            self.lstm.weight_hh_l0_reverse,
            self.lstm.bias_ih_l0_reverse,
            self.lstm.bias_hh_l0_reverse,
        ]
        fw = [w.to(torch.bfloat16) for w in fw]
        bw = [w.to(torch.bfloat16) for w in bw]
        out_f = torch.lstm(xb, [h0, h0], fw, True, 1, 0.0, False, False, True)[0]  # (B, T, H)
        x_rev = xb.gather(
            1, rev.unsqueeze(2).expand(B, T, xb.size(2))
        )  # (B, T, D) each sequence reversed
        out_b = torch.lstm(x_rev, [h0, h0], bw, True, 1, 0.0, False, False, True)[0]  # (B, T, H)
        out_b = out_b.gather(1, rev.unsqueeze(2).expand(B, T, H))  # back to text order
        return torch.cat([out_f, out_b], dim=2).float()  # (B, T, 2H)

    @torch.jit.export
    def char_features(self, chars: Tensor) -> Tensor:
        """(U, W) code points of U tokens (0 = padding) -> (U, F) their character-CNN features;
        (U, 0) for a network without the CNN. A token's features depend on its characters only:
        a caller may compute them once per distinct token and cache them (``Tagger`` does)."""
        if self.chars is None:
            return torch.zeros(chars.size(0), 0)
        return self.chars(self.char_ids(chars))

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
        parts = [
            F.embedding(words, self.word_table, sparse=self.sparse).float()
        ]  # (B, T, Dw); the table may be fp16
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
        return self._head(h.reshape(B * T, -1).index_select(0, idx), real, idx, B, T)

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
        parts = [F.embedding(words, self.word_table).float()]  # (N, Dw)
        if self.chars is not None:
            parts.append(char_feats.float())  # (N, F)
        for i, emb in enumerate(self.extras):
            parts.append(F.embedding(extras[:, i], emb.weight, 0).float())  # (N, De)
        lstm = self.lstm
        weight = torch.cat([lstm.weight_ih_l0, lstm.weight_ih_l0_reverse])  # (8H, D)
        bias = torch.cat(
            [lstm.bias_ih_l0 + lstm.bias_hh_l0, lstm.bias_ih_l0_reverse + lstm.bias_hh_l0_reverse]
        )
        scale = self._cell_scale().repeat(2)  # (8H,)
        return F.linear(
            torch.cat(parts, dim=1), weight * scale.unsqueeze(1), bias * scale
        )  # (N, 8H)

    def _cell_scale(self) -> Tensor:
        """(4H,) 1 for the i, f, o gates and 2 for the cell candidate g (see ``token_gates``)."""
        H = self.lstm.hidden_size
        scale = torch.ones(4 * H, device=self.lstm.weight_hh_l0.device)
        scale[2 * H : 3 * H] = 2.0
        return scale

    @torch.jit.export
    def emissions_from_gates(self, gates: Tensor, lengths: Tensor) -> Tensor:
        """``emissions`` from the real tokens' input gates (N, 8H) (``token_gates``), the N real
        tokens in row order, lengths (B,) of one-layer networks in float32.

        Both directions run in one loop over time (one batched matrix product per step); with
        ``lengths`` sorted longest first, each step computes only the sequences still running.
        """
        B = lengths.size(0)
        T = int(lengths.max())
        G = gates.size(1) // 2  # 4H
        steps = torch.arange(T, device=gates.device).unsqueeze(0)  # (1, T)
        inside = steps < lengths.unsqueeze(1)  # (B, T)
        real = inside.reshape(B * T)
        idx = real.nonzero().squeeze(1)  # (N,) flat positions of the real tokens
        # where each real token's gates go in the step-major layout (T, 2, B): the forward
        # direction reads sentence b's token t at step t, the backward one at step length - 1 - t
        b = idx // T
        t = idx % T
        fw = (t * 2) * B + b  # (N,)
        bw = ((lengths[b] - 1 - t) * 2 + 1) * B + b  # (N,)
        ordered = bool((lengths[:-1] >= lengths[1:]).all())
        x = torch.empty(
            T * 2 * B, G, dtype=gates.dtype, device=gates.device
        )  # padding is never read
        if not ordered:  # ... except by finished sequences, whose states are not used either
            x.zero_()
        x.index_copy_(0, fw, gates[:, :G]).index_copy_(0, bw, gates[:, G:])
        states = self._recurrence(x.reshape(T, 2, B, G), lengths, ordered).reshape(
            T * 2 * B, -1
        )  # (T*2*B, H)
        hr = torch.cat([states.index_select(0, fw), states.index_select(0, bw)], dim=1)  # (N, 2H)
        return self._head(hr, real, idx, B, T)

    def _recurrence(self, gates: Tensor, lengths: Tensor, ordered: bool) -> Tensor:
        """gates (T, 2, B, 4H): each direction's input gates in step order -> states (T, 2, B, H).

        The arithmetic of ``nn.LSTM`` (gate order i, f, g, o) with tanh(x) = 2 sigmoid(2x) - 1:
        on CPUs sigmoid is several times faster than tanh, and the gates take one sigmoid (g
        arrives doubled). ``ordered``: lengths are sorted longest first, so the sequences running
        at step t are the first k.
        """
        T, _, B, G = gates.shape
        H = G // 4
        lstm = self.lstm
        w_hh = torch.stack([lstm.weight_hh_l0, lstm.weight_hh_l0_reverse]).transpose(
            1, 2
        )  # (2, H, 4H)
        w_hh = w_hh * self._cell_scale()
        counts = torch.full([T], B)
        if ordered:
            counts = (lengths.unsqueeze(0) > torch.arange(T, device=gates.device).unsqueeze(1)).sum(
                dim=1
            )
        running: List[int] = counts.tolist()
        out = torch.empty(
            T, 2, B, H, dtype=gates.dtype, device=gates.device
        )  # only real steps are read
        h = torch.zeros(2, B, H, dtype=gates.dtype, device=gates.device)
        c = torch.zeros(2, B, H, dtype=gates.dtype, device=gates.device)
        for t in range(T):
            k = running[t]
            if k < h.size(1):
                h, c = h[:, :k], c[:, :k]
            i, f, g, o = (
                torch.baddbmm(gates[t, :, :k], h, w_hh).sigmoid_().chunk(4, dim=2)
            )  # (2, k, H) each
            c = torch.addcmul(f * c, i, g * 2 - 1)  # c = f c + i tanh(g)
            h = o * (torch.sigmoid(c * 2) * 2 - 1)  # h = o tanh(c)
            out[t, :, :k] = h
        return out

    def _head(self, hr: Tensor, real: Tensor, idx: Tensor, B: int, T: int) -> Tensor:
        """BiLSTM states of the N real tokens (N, 2H) -> tag scores (B, T, C) (0 at padding):
        self-attention over the real tokens, layer norm, output layer. real (B*T,) marks the real
        tokens, idx (N,) their flat positions.

        Everything here runs on the N real tokens only, except the (B, heads, T, T) attention
        itself: no work is spent on padding in the projections and the output layer.
        """
        D = hr.size(1)
        attn = self.attn
        if attn is not None:
            nh = attn.num_heads
            qkv = F.linear(hr, attn.in_proj_weight, attn.in_proj_bias)  # (N, 3*2H): q | k | v
            qkv = torch.zeros(B * T, 3 * D, dtype=qkv.dtype, device=qkv.device).index_copy(
                0, idx, qkv
            )  # (B*T, 3*2H)
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
    def loss(
        self, words: Tensor, extras: Tensor, chars: Tensor, lengths: Tensor, tags: Tensor
    ) -> Tensor:
        """Training loss summed over the batch (CRF NLL, or token cross-entropy)."""
        em = self.emissions(words, extras, chars, lengths)
        mask = torch.arange(em.size(1)).unsqueeze(0) < lengths.unsqueeze(1)
        if self.crf is not None:
            return self.crf.nll(em, tags, mask)
        return F.cross_entropy(em[mask], tags[mask], reduction="sum")
