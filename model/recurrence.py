"""The BiLSTM recurrences of one-layer networks at inference, as TorchScript-compatible functions.

``TaggerNet`` (``model.network``) calls them from its scripted methods; ``torch.jit.script``
compiles them along with it. Two paths:

- ``dense_bilstm``: bfloat16, each direction as one dense ``torch.lstm`` call (oneDNN kernels),
  the backward direction reading every sequence reversed within its length;
- ``lstm_steps``: float32, both directions in one loop over time from precomputed input gates
  (``TaggerNet.token_gates``), with the cell candidate g arriving doubled (``cell_scale``);
  ``lstm_from_table`` reads those gates from a table of distinct tokens, step by step.

Shapes: B sequences, T steps, D inputs, H the LSTM size per direction.
"""

from __future__ import annotations

from typing import List

import torch
from torch import Tensor


def dense_bilstm(x: Tensor, lengths: Tensor, fw: List[Tensor], bw: List[Tensor]) -> Tensor:
    """(B, T, D) -> (B, T, 2H) in float32, computed in bfloat16: each direction as one dense call;
    the backward direction reads every sequence reversed within its first ``lengths`` steps.

    fw, bw: each direction's ``nn.LSTM`` weights [w_ih, w_hh, b_ih, b_hh] (any float dtype).
    """
    B, T, _ = x.shape
    H = fw[1].size(1)
    steps = torch.arange(T, device=x.device).unsqueeze(0)  # (1, T)
    rev = torch.where(
        steps < lengths.unsqueeze(1), lengths.unsqueeze(1) - 1 - steps, steps
    )  # (B, T)
    xb = x.to(torch.bfloat16)
    h0 = torch.zeros(1, B, H, dtype=torch.bfloat16, device=x.device)
    fw = [w.to(torch.bfloat16) for w in fw]
    bw = [w.to(torch.bfloat16) for w in bw]
    out_f = torch.lstm(xb, [h0, h0], fw, True, 1, 0.0, False, False, True)[0]  # (B, T, H)
    x_rev = xb.gather(
        1, rev.unsqueeze(2).expand(B, T, xb.size(2))
    )  # (B, T, D) each sequence reversed
    out_b = torch.lstm(x_rev, [h0, h0], bw, True, 1, 0.0, False, False, True)[0]  # (B, T, H)
    out_b = out_b.gather(1, rev.unsqueeze(2).expand(B, T, H))  # back to text order
    return torch.cat([out_f, out_b], dim=2).float()  # (B, T, 2H)


def cell_scale(hidden: int, device: torch.device) -> Tensor:
    """(4H,) 1 for the i, f, o gates and 2 for the cell candidate g: the input gates and the
    recurrent weights are scaled by it so that g arrives doubled (see ``lstm_steps``)."""
    scale = torch.ones(4 * hidden, device=device)
    scale[2 * hidden : 3 * hidden] = 2.0
    return scale


def lstm_steps(table: Tensor, src: Tensor, w_hh: Tensor, running: List[int]) -> Tensor:
    """Both directions of a BiLSTM over T steps from the input gates of distinct tokens: table
    (R, 2, 4H) holds each token's forward then backward gates (g doubled, ``cell_scale``), src
    (T, 2, B) the table row each direction reads at each step, ``running[t]`` how many sequences
    (the first ones: lengths sorted longest first) still run at step t -> states (T, 2, B, H).

    Each step gathers its own rows (2 x k of them, read while they are in cache; a gather of
    every step's rows up front writes and reads back a buffer tens of megabytes long).

    w_hh (2, 4H, H): the recurrent weights of the forward and the backward direction, as in
    ``nn.LSTM`` (unscaled). The arithmetic of ``nn.LSTM`` (gate order i, f, g, o) with
    tanh(x) = 2 sigmoid(2x) - 1: on CPUs sigmoid is several times faster than tanh, and the gates
    take one sigmoid (g arrives doubled).
    """
    T, _, B = src.shape
    G = table.size(2)
    H = G // 4
    w = w_hh.transpose(1, 2)  # (2, H, 4H)
    w = w * cell_scale(H, w_hh.device)
    rows = table.reshape(-1, G)  # (2R, 4H): row 2r forward, 2r + 1 backward
    out = torch.empty(T, 2, B, H, dtype=table.dtype, device=table.device)  # real steps are read
    h = torch.zeros(2, B, H, dtype=table.dtype, device=table.device)
    c = torch.zeros(2, B, H, dtype=table.dtype, device=table.device)
    for t in range(T):
        k = running[t]
        if k < h.size(1):
            h, c = h[:, :k], c[:, :k]
        x = rows.index_select(0, src[t, :, :k].reshape(-1)).reshape(2, k, G)  # (2, k, 4H)
        i, f, g, o = torch.baddbmm(x, h, w).sigmoid_().chunk(4, dim=2)  # (2, k, H) each
        c = torch.addcmul(f * c, i, g * 2 - 1)  # c = f c + i tanh(g)
        h = o * (torch.sigmoid(c * 2) * 2 - 1)  # h = o tanh(c)
        out[t, :, :k] = h
    return out


def lstm_from_table(table: Tensor, rows: Tensor, lengths: Tensor, w_hh: Tensor) -> Tensor:
    """Both directions' states (B*T, 2H) on the (B, T) grid of B sequences, from the input gates
    of distinct tokens ``table`` (R, 8H: forward i f g o, then backward) and the row of each real
    token ``rows`` (N,), sequence after sequence. Fastest with the sequences sorted longest
    first: then only the sequences still running take each step.

    The forward direction reads sequence b's token t at step t, the backward one at step
    length - 1 - t. Padding positions of the grid repeat their sequence's last token's states:
    finite values that the attention masks out and that no caller reads.
    """
    B = lengths.size(0)
    T = int(lengths.max())
    G = table.size(1) // 2  # 4H
    steps = torch.arange(T, device=table.device).unsqueeze(0)  # (1, T)
    last = lengths.unsqueeze(1) - 1  # (B, 1)
    idx = (steps <= last).reshape(B * T).nonzero().squeeze(1)  # (N,) the real positions
    b, t = idx // T, idx % T
    src = torch.full([T * 2 * B], int(rows[0]) * 2, dtype=torch.long, device=table.device)
    src.index_copy_(0, (t * 2) * B + b, rows * 2)  # forward: token t at step t
    src.index_copy_(0, ((lengths[b] - 1 - t) * 2 + 1) * B + b, rows * 2 + 1)  # backward
    running: List[int] = [B] * T  # finished sequences run on (never read) unless sorted
    if bool((lengths[:-1] >= lengths[1:]).all()):
        counts: List[int] = (lengths.unsqueeze(0) > steps.t()).sum(dim=1).tolist()
        running = counts
    states = lstm_steps(table.reshape(-1, 2, G), src.reshape(T, 2, B), w_hh, running)
    flat = states.reshape(T * 2 * B, -1)  # (T*2*B, H)
    grid_b = torch.arange(B, device=table.device).unsqueeze(1)  # (B, 1)
    grid_t = torch.minimum(steps, last)  # (B, T): padding reads the last real token
    fw = ((grid_t * 2) * B + grid_b).reshape(-1)  # (B*T,) each position's forward state
    bw = (((last - grid_t) * 2 + 1) * B + grid_b).reshape(-1)  # and its backward one
    return torch.cat([flat.index_select(0, fw), flat.index_select(0, bw)], dim=1)  # (B*T, 2H)
