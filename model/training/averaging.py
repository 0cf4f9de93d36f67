"""An exponential moving average of a network's weights, for evaluating and exporting.

The weights at the end of an epoch are one noisy point of the optimiser's path; their running
average over the last few hundred steps is a flatter, better-generalising point (Polyak averaging;
the "EMA" of many training recipes). `WeightAverage.update` follows the trainable weights after
each optimiser step; `WeightAverage.swap` exchanges the network's weights with the average, and
a second `swap` puts them back, so one network is both trained and evaluated.

>>> lin = torch.nn.Linear(1, 1, bias=False)
>>> with torch.no_grad():
...     _ = lin.weight.fill_(0.0)
>>> avg = WeightAverage(lin, decay=0.9)  # the average starts at the weights: 0
>>> with torch.no_grad():
...     _ = lin.weight.fill_(1.0)  # an optimiser step
>>> avg.update()  # warm-up: the factor is 2/11, not 0.9, so the average moves most of the way
>>> avg.swap(); round(lin.weight.item(), 3)
0.818
>>> avg.swap(); lin.weight.item()
1.0
"""

from __future__ import annotations

import torch


class WeightAverage:
    """The moving average of ``net``'s trainable parameters with factor ``decay`` per update.

    Early on the factor is ``min(decay, (1 + n) / (10 + n))`` after ``n`` updates, so the average
    is not anchored to the random initial weights."""

    def __init__(self, net: torch.nn.Module, decay: float):
        if not 0 < decay < 1:
            raise ValueError(f"averaging decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.params = [p for p in net.parameters() if p.requires_grad]
        self.shadow = [p.detach().clone() for p in self.params]
        self.updates = 0

    def update(self) -> None:
        """Move the average toward the current weights (after an optimiser step)."""
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        with torch.no_grad():
            torch._foreach_lerp_(self.shadow, [p.detach() for p in self.params], 1.0 - d)

    def swap(self) -> None:
        """Exchange the network's weights and the average (twice is the identity)."""
        with torch.no_grad():
            for p, s in zip(self.params, self.shadow):
                held = p.detach().clone()
                p.copy_(s)
                s.copy_(held)
