"""The leaf modules of ``TaggerNet``: the character CNN, and the linear-chain CRF output layer
(transition scores, the training NLL, Viterbi decoding and the posterior marginals that are
the confidences of the predicted tags).

Shapes: N tokens of W characters; B sequences, T steps, C tags. Both compile with
``torch.jit.script`` as parts of ``TaggerNet``.
"""

from __future__ import annotations

from typing import List, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

NEG = -10000.0  # score of a forbidden tag transition


class CharCNN(nn.Module):
    """Characters of each token -> one vector per token (convolution + max over positions)."""

    def __init__(self, num_chars: int, dim: int, filters: int, kernel: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(num_chars, dim, padding_idx=0)
        self.conv = nn.Conv1d(dim, filters, kernel, padding=kernel // 2)

    def forward(self, chars: Tensor) -> Tensor:
        # chars: (N, W) character ids, 0 = padding
        N, W = chars.shape
        k = self.conv.kernel_size[0]
        bias = self.conv.bias
        assert bias is not None
        if self.training:  # one matrix product over the unfolded windows (same weights as Conv1d)
            x = F.pad(self.embed(chars), (0, 0, k // 2, k - 1 - k // 2))  # (N, W+k-1, E)
            windows = x.unfold(1, k, 1).reshape(N, W, -1)  # (N, W, E*k)
            weight = self.conv.weight.reshape(self.conv.out_channels, -1)  # (F, E*k)
            y = torch.addmm(bias, windows.reshape(N * W, -1), weight.t()).reshape(N, W, -1)
        else:  # a window is k characters: the sum of k rows of per-character tables (V, F)
            y = self.char_terms(chars, bias)  # (N, W, F)
        pad = (chars == 0).unsqueeze(2)  # (N, W, 1)
        y = y.masked_fill(pad, -10000.0).max(dim=1).values  # (N, F)
        return y.masked_fill(pad.all(dim=1), 0.0)  # tokens without characters -> 0

    def char_terms(self, chars: Tensor, bias: Tensor) -> Tensor:
        """The convolution (N, W, F) as k table lookups: what character v adds at window offset j
        is embed(v) times the kernel's slice j, a (V, F) table per offset. No matrix product per
        token, and the padding character's row is 0 as its embedding is."""
        N, W = chars.shape
        k = self.conv.kernel_size[0]
        E = self.embed.weight.size(1)
        per_offset = self.conv.weight.permute(1, 2, 0).reshape(E, -1)  # (E, k*F)
        tables = (self.embed.weight @ per_offset).reshape(-1, k, self.conv.out_channels)
        padded = F.pad(chars, (k // 2, k - 1 - k // 2))  # (N, W+k-1)
        y = bias.expand(N, W, self.conv.out_channels)
        for j in range(k):
            y = y + F.embedding(padded[:, j : j + W], tables[:, j])  # (N, W, F)
        return y


class CRF(nn.Module):
    """Linear-chain CRF: transition scores, NLL for training, Viterbi and marginals for decoding.

    ``allowed`` (C, C) marks legal transitions i -> j (e.g. no ``O -> I-PER`` in BIOES);
    illegal ones get a fixed score of NEG, as do illegal start and end tags.
    """

    def __init__(
        self, num_tags: int, allowed: Tensor, allowed_start: Tensor, allowed_end: Tensor
    ) -> None:
        super().__init__()
        self.transitions = nn.Parameter(torch.zeros(num_tags, num_tags))  # (C, C) from -> to
        self.start = nn.Parameter(torch.zeros(num_tags))  # (C,)
        self.end = nn.Parameter(torch.zeros(num_tags))  # (C,)
        self.register_buffer("penalty", (~allowed).float() * NEG)
        self.register_buffer("start_penalty", (~allowed_start).float() * NEG)
        self.register_buffer("end_penalty", (~allowed_end).float() * NEG)

    def _scores(self) -> Tuple[Tensor, Tensor, Tensor]:
        return (
            self.transitions + self.penalty,
            self.start + self.start_penalty,
            self.end + self.end_penalty,
        )

    def _alphas(self, em: Tensor, mask: Tensor) -> Tensor:
        # em: (B, T, C) emission scores; mask: (B, T) True for real tokens
        # -> (B, T, C) forward scores
        trans, start, _ = self._scores()
        alpha = start.unsqueeze(0) + em[:, 0]  # (B, C)
        out = [alpha]
        for t in range(1, em.size(1)):
            nxt = (
                torch.logsumexp(alpha.unsqueeze(2) + trans.unsqueeze(0), dim=1) + em[:, t]
            )  # (B, C)
            alpha = torch.where(mask[:, t].unsqueeze(1), nxt, alpha)
            out.append(alpha)
        return torch.stack(out, dim=1)  # (B, T, C)

    def nll(self, em: Tensor, tags: Tensor, mask: Tensor) -> Tensor:
        """Negative log-likelihood of the gold ``tags`` (B, T), summed over the batch."""
        trans, start, end = self._scores()
        B, T, _ = em.shape
        lengths = mask.sum(dim=1)  # (B,)
        maskf = mask.float()
        gold = start[tags[:, 0]] + em.gather(2, tags.unsqueeze(2)).squeeze(2).mul(maskf).sum(
            dim=1
        )  # (B,)
        pair = trans[tags[:, :-1], tags[:, 1:]]  # (B, T-1)
        gold = gold + (pair * maskf[:, 1:]).sum(dim=1)
        last = tags.gather(1, (lengths - 1).unsqueeze(1)).squeeze(1)  # (B,)
        gold = gold + end[last]
        alphas = self._alphas(em, mask)  # (B, T, C)
        final = alphas[torch.arange(B), lengths - 1]  # (B, C)
        log_z = torch.logsumexp(final + end.unsqueeze(0), dim=1)  # (B,)
        return (log_z - gold).sum()

    def viterbi(self, em: Tensor, mask: Tensor) -> Tensor:
        """Best tag sequence (B, T); positions past a sequence's length repeat its last tag."""
        trans, start, end = self._scores()
        B, T, C = em.shape
        score = start.unsqueeze(0) + em[:, 0]  # (B, C)
        keep = (
            torch.arange(C, device=em.device).unsqueeze(0).expand(B, C)
        )  # (B, C) identity back-pointers
        pointers: List[Tensor] = []
        for t in range(1, T):
            best, arg = (score.unsqueeze(2) + trans.unsqueeze(0)).max(dim=1)  # (B, C) each
            m = mask[:, t].unsqueeze(1)  # (B, 1)
            score = torch.where(m, best + em[:, t], score)
            pointers.append(torch.where(m, arg, keep))
        last = (score + end.unsqueeze(0)).argmax(dim=1)  # (B,)
        path = [last]
        for bp in pointers[::-1]:
            last = bp.gather(1, last.unsqueeze(1)).squeeze(1)
            path.append(last)
        path.reverse()
        return torch.stack(path, dim=1)  # (B, T)

    def marginals(self, em: Tensor, mask: Tensor) -> Tensor:
        """Posterior probability of each tag at each position, (B, T, C).

        Scaled forward-backward in probability space (renormalised every step): a small matrix
        product per step instead of a log-sum-exp over (B, C, C).
        """
        trans, start, end = self._scores()
        B, T, C = em.shape
        e = em
        E = torch.exp(e - e.max(dim=2, keepdim=True).values)  # (B, T, C) in (0, 1]
        M = torch.exp(trans - trans.max())  # (C, C)
        a = torch.exp(start - start.max()).unsqueeze(0) * E[:, 0]  # (B, C)
        a = a / a.sum(dim=1, keepdim=True).clamp_min(1e-30)
        alphas = [a]
        for t in range(1, T):
            n = (a @ M) * E[:, t]  # (B, C)
            n = n / n.sum(dim=1, keepdim=True).clamp_min(1e-30)
            a = torch.where(mask[:, t].unsqueeze(1), n, a)
            alphas.append(a)
        stop = torch.exp(end - end.max()).unsqueeze(0).expand(B, C)  # (B, C)
        beta = stop
        betas = [beta]
        Mt = M.t()
        for t in range(T - 2, -1, -1):
            n = (E[:, t + 1] * beta) @ Mt  # (B, C)
            n = n / n.sum(dim=1, keepdim=True).clamp_min(1e-30)
            beta = torch.where(mask[:, t + 1].unsqueeze(1), n, stop)
            betas.append(beta)
        betas.reverse()
        p = torch.stack(alphas, dim=1) * torch.stack(betas, dim=1)  # (B, T, C)
        p = p / p.sum(dim=2, keepdim=True).clamp_min(1e-30)
        return p


def add_recall_margin(em: Tensor, tags: Tensor, mask: Tensor, margin: float, o_tag: int) -> Tensor:
    """Emissions (B, T, C) for a softmax-margin loss (Gimpel & Smith, 2010) that costs missed
    entities: at every token inside a gold entity (``tags`` (B, T) not ``o_tag``, within
    ``mask``), the outside tag gets ``margin`` extra score, so training must beat "no entity"
    there by that margin. Recall goes up, precision down; decoding is unchanged.

    >>> em = torch.zeros(1, 2, 3)
    >>> add_recall_margin(em, torch.tensor([[0, 2]]), torch.tensor([[True, True]]), 2.0, 2)
    tensor([[[0., 0., 2.],
             [0., 0., 0.]]])
    """
    inside = ((tags != o_tag) & mask).unsqueeze(2).to(em.dtype)  # (B, T, 1)
    return em + margin * inside * F.one_hot(torch.tensor(o_tag), em.size(2)).to(em.dtype)
