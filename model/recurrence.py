"""The BiLSTM recurrences of one-layer networks at inference, as TorchScript-compatible functions.

``TaggerNet`` (``model.network``) calls them from its scripted methods; ``torch.jit.script``
compiles them along with it. Two paths:

- ``dense_bilstm``: bfloat16, each direction as one dense ``torch.lstm`` call (oneDNN kernels),
  the backward direction reading every sequence reversed within its length;
- ``lstm_steps``: float32, both directions in one loop over time from precomputed input gates
  (``TaggerNet.token_gates``), with the cell candidate g arriving doubled (``cell_scale``);
  ``lstm_from_table`` lays those gates out for it, read from a table of distinct tokens.

Shapes: B sequences, T steps, D inputs, H the LSTM size per direction.
"""

from __future__ import annotations

from typing import List, Tuple

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


def lstm_steps(gates: Tensor, w_hh: Tensor, lengths: Tensor, ordered: bool) -> Tensor:
    """gates (T, 2, B, 4H): each direction's input gates in step order, g doubled
    (``cell_scale``) -> states (T, 2, B, H).

    w_hh (2, 4H, H): the recurrent weights of the forward and the backward direction, as in
    ``nn.LSTM`` (unscaled). The arithmetic of ``nn.LSTM`` (gate order i, f, g, o) with
    tanh(x) = 2 sigmoid(2x) - 1: on CPUs sigmoid is several times faster than tanh, and the gates
    take one sigmoid (g arrives doubled). ``ordered``: lengths are sorted longest first, so the
    sequences running at step t are the first k.
    """
    T, _, B, G = gates.shape
    H = G // 4
    w = w_hh.transpose(1, 2)  # (2, H, 4H)
    w = w * cell_scale(H, w_hh.device)
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
            torch.baddbmm(gates[t, :, :k], h, w).sigmoid_().chunk(4, dim=2)
        )  # (2, k, H) each
        c = torch.addcmul(f * c, i, g * 2 - 1)  # c = f c + i tanh(g)
        h = o * (torch.sigmoid(c * 2) * 2 - 1)  # h = o tanh(c)
        out[t, :, :k] = h
    return out


def lstm_from_table(
    table: Tensor, rows: Tensor, lengths: Tensor, w_hh: Tensor
) -> Tuple[Tensor, Tensor, Tensor]:
    """Both directions' states (N, 2H) of the N real tokens of B sequences, from the input gates
    of distinct tokens ``table`` (R, 8H: forward i f g o, then backward) and the row of each real
    token ``rows`` (N,), sequence after sequence; also ``real`` (B*T,) marking the real positions
    of the (B, T) grid and ``idx`` (N,) their flat positions.

    One gather puts every token's gates where ``lstm_steps`` reads them, the step-major layout
    (T, 2, B): the forward direction reads sequence b's token t at step t, the backward one at
    step length - 1 - t. Padding reads some real row, which only finished sequences see.
    """
    B = lengths.size(0)
    T = int(lengths.max())
    G = table.size(1) // 2  # 4H
    steps = torch.arange(T, device=table.device).unsqueeze(0)  # (1, T)
    real = (steps < lengths.unsqueeze(1)).reshape(B * T)  # (B*T,)
    idx = real.nonzero().squeeze(1)  # (N,)
    b = idx // T
    t = idx % T
    fw = (t * 2) * B + b  # (N,) each token's place for the forward direction
    bw = ((lengths[b] - 1 - t) * 2 + 1) * B + b  # (N,) and for the backward one
    src = torch.full([T * 2 * B], int(rows[0]) * 2, dtype=torch.long, device=table.device)
    src.index_copy_(0, fw, rows * 2).index_copy_(0, bw, rows * 2 + 1)
    x = table.reshape(-1, G).index_select(0, src)  # (T*2*B, 4H)
    ordered = bool((lengths[:-1] >= lengths[1:]).all())
    states = lstm_steps(x.reshape(T, 2, B, G), w_hh, lengths, ordered).reshape(T * 2 * B, -1)
    hr = torch.cat([states.index_select(0, fw), states.index_select(0, bw)], dim=1)  # (N, 2H)
    return hr, real, idx
