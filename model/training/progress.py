"""Training progress on stderr: a tqdm bar when tqdm (the ``train`` extra) is installed, else a
plain line every 30 seconds (``PlainProgress``). ``tagstream.model.training.train`` passes
``progress`` to the training loop, which makes one bar per epoch."""

from __future__ import annotations

import sys
import time


class PlainProgress:
    """What train needs of a tqdm bar, as a plain line on ``file`` (stderr) every ``interval``
    seconds: ``epoch 3: 41% (845,312/2,061,001 tokens), loss 0.019, 7,203 tokens/s``."""

    def __init__(self, total: int, desc: str, interval: float = 30.0, file=None) -> None:
        self.total, self.desc, self.interval = total, desc, interval
        self.file = file if file is not None else sys.stderr
        self.n = 0
        self.loss = ""
        self._start = self._last = time.perf_counter()

    def update(self, n: int) -> None:
        self.n += n
        now = time.perf_counter()
        if now - self._last >= self.interval:
            self._last = now
            self.write(now)

    def set_postfix(self, refresh: bool = False, **values: str) -> None:
        self.loss = str(values.get("loss", ""))

    def write(self, now: float) -> None:
        pct = 100.0 * self.n / self.total if self.total else 0.0
        rate = self.n / max(now - self._start, 1e-9)
        loss = f", loss {self.loss}" if self.loss else ""
        print(
            f"{self.desc}: {pct:.0f}% ({self.n:,}/{self.total:,} tokens){loss}, "
            f"{rate:,.0f} tokens/s",
            file=self.file,
            flush=True,
        )

    def close(self) -> None:
        pass


def progress(total: int, desc: str):
    """A tqdm bar on stderr, or without tqdm (the train extra) a PlainProgress line every 30 s."""
    try:
        from tqdm import tqdm
    except ImportError:
        return PlainProgress(total, desc)
    return tqdm(
        total=total,
        desc=desc,
        unit="tok",
        unit_scale=True,
        file=sys.stderr,
        mininterval=2.0,
        leave=False,
    )
