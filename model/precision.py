"""Which numeric path the network runs on, chosen from what the CPU at hand really computes.

The BiLSTM has two inference paths:

- ``bfloat16``: each direction as one dense oneDNN call in bfloat16. Fast only where the CPU
  has bfloat16 instructions (AMX, AVX512_BF16); elsewhere oneDNN emulates them and it is about
  four times *slower* than float32 (measured on an AMD EPYC with AVX2: 3,061 against 13,694
  tokens/s, see docs or ``make bench``).
- ``float32``: the float32 LSTM with each distinct token's input projection computed once
  (`tagstream.model.tagger`), fast on every x86-64 CPU.

``choose_precision("auto")`` picks float32, the reference path, on every CPU: bfloat16 was not
faster on any CPU it was measured on, native (AVX512_BF16, AMX) or emulated
([threads and precision](docs/configuration.md), ``make bench``). ``bfloat16`` can be forced;
it is native where the CPU has AMX or AVX512_BF16 and oneDNN is not capped below them
(``ONEDNN_MAX_CPU_ISA``, `isa_allows_bfloat16`), emulated elsewhere.

>>> choose_precision("float32", CpuInfo("any", frozenset())).path
'float32'
>>> choose_precision("auto", CpuInfo("old", frozenset({"avx2"}))).path
'float32'
>>> choose_precision("auto", CpuInfo("new", frozenset({"avx2", "amx_bf16"}))).path
'float32'
>>> choose_precision("auto", CpuInfo("zen5", frozenset({"avx512f", "avx512_bf16"}))).path
'float32'
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from functools import lru_cache

PRECISIONS = ("auto", "bfloat16", "float32")
# CPU flags (as Linux names them) of native bfloat16 arithmetic that oneDNN uses for the LSTM
BF16_FLAGS = ("amx_bf16", "avx512_bf16")
# ONEDNN_MAX_CPU_ISA values that still allow those instructions (oneDNN's names, upper case)
_BF16_ISAS = (
    "ALL",
    "DEFAULT",
    "AVX512_CORE_BF16",
    "AVX512_CORE_FP16",
    "AVX512_CORE_AMX",
    "AVX512_CORE_AMX_FP16",
    "AVX10_1_512",
    "AVX10_1_512_AMX",
    "AVX10_1_512_AMX_FP16",
    "AVX10_2_512",
    "AVX10_2_512_AMX_2",
)


@dataclass(frozen=True, slots=True)
class CpuInfo:
    """The CPU's model name and feature flags (lower case, as in ``/proc/cpuinfo``)."""

    model: str
    flags: frozenset[str]

    def summary(self) -> str:
        """The model and the flags that matter for inference speed, e.g.
        ``AMD EPYC (avx2, fma)``."""
        keep = sorted(f for f in self.flags if f.startswith(("avx", "amx", "fma")))
        return f"{self.model} ({', '.join(keep) or 'no AVX'})"


@lru_cache(maxsize=1)
def cpu_info() -> CpuInfo:
    """This machine's CPU, read from ``/proc/cpuinfo`` (Linux); elsewhere only its name."""
    model, flags = platform.processor() or platform.machine(), frozenset()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and model in ("", platform.machine(), platform.processor()):
                    model = value.strip()
                elif key == "flags" and not flags:
                    flags = frozenset(value.split())
                if flags and key == "model name":
                    break
    except OSError:
        pass
    return CpuInfo(model or "unknown", flags)


@dataclass(frozen=True, slots=True)
class Precision:
    """The chosen path and why, for the log, ``Tagger.precision_choice`` and the info metric."""

    path: str  # "bfloat16" or "float32"
    reason: str
    cpu: str  # CpuInfo.summary()


def isa_allows_bfloat16(isa_cap: str | None = None) -> bool:
    """Whether ``ONEDNN_MAX_CPU_ISA`` (``isa_cap``; default: read from the environment) leaves
    oneDNN its bfloat16 instructions.

    >>> isa_allows_bfloat16(""), isa_allows_bfloat16("avx2"), isa_allows_bfloat16("AVX512_CORE_AMX")
    (True, False, True)
    """
    if isa_cap is None:
        isa_cap = os.environ.get("ONEDNN_MAX_CPU_ISA", "")
    cap = isa_cap.strip().upper()
    return not cap or cap in _BF16_ISAS


def choose_precision(requested: str = "auto", cpu: CpuInfo | None = None) -> Precision:
    """The inference path for ``requested`` ("auto", "bfloat16" or "float32") on ``cpu``:
    float32 for "auto", with the reason bfloat16 is not taken on this CPU."""
    if requested not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {requested!r}")
    cpu = cpu or cpu_info()
    if requested != "auto":
        return Precision(requested, "forced by the precision setting", cpu.summary())
    native = [f for f in BF16_FLAGS if f in cpu.flags]
    if native:
        reason = (
            f"{', '.join(native)}: bfloat16 is native but not faster than the float32 path, "
            "which is the reference"
        )
    else:
        reason = (
            "no native bfloat16 on this CPU (no amx_bf16, no avx512_bf16): "
            "emulated bfloat16 is several times slower than float32"
        )
    return Precision("float32", reason, cpu.summary())
