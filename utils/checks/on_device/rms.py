"""Exercise 12.5: RMSNorm over the last axis, against F.rms_norm."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from utils.checks.core import Case, Mistake, one_thread
from utils.checks.on_device.cases import EX_RMS as EX
from utils.checks.on_device.cases import require_tensor

CASES = [((2, 3, 8), 1e-5), ((5, 16), 1e-6), ((1, 1, 4), 1e-5), ((3, 7), 0.5)]  # (shape, eps); the last: big eps


class RmsCase(Case):
    pass


def _mistakes(x, weight, eps):
    ms = x.pow(2).mean(-1, keepdim=True)
    centred = x - x.mean(-1, keepdim=True)
    D = x.shape[-1]
    yield Mistake(centred / torch.sqrt(centred.pow(2).mean(-1, keepdim=True) + eps) * weight,
                  "you subtracted the mean (that is LayerNorm); RMSNorm divides by the root mean square of x "
                  "itself, no centring.")
    yield Mistake(x / (torch.sqrt(ms) + eps) * weight, "you added ε outside the square root; it belongs inside: "
                  "rsqrt(mean(x²) + ε).")
    yield Mistake(x * torch.rsqrt(ms + eps), "you left out the weight γ: multiply by `weight` at the end.")
    yield Mistake(x / torch.sqrt(x.pow(2).sum(-1, keepdim=True) + eps) * weight,
                  f"you used the sum of squares, not their mean (÷ D = {D}).")
    yield Mistake(x / torch.sqrt(x.var(-1, keepdim=True) + eps) * weight if D > 1 else None,
                  "you divided by the variance's square root (a std, centred and ÷ (D − 1)); RMSNorm uses mean(x²).")
    yield Mistake(x / torch.sqrt(x.pow(2).mean(0, keepdim=True) + eps) * weight if x.shape[0] > 1 else None,
                  "you took the mean over the first axis; RMSNorm averages over the last one (dim=-1).")
    yield Mistake(x * torch.sqrt(ms + eps) * weight, "you multiplied by the root mean square; divide by it "
                  "(rsqrt, or 1 / sqrt).")
    yield Mistake(x / (ms + eps) * weight, "you divided by mean(x²) + ε without the square root.")
    yield Mistake(x * torch.rsqrt(ms + eps ** 2) * weight, "you added ε², not ε, inside the root.")
    yield Mistake(x * torch.rsqrt(ms) * weight, "you left out ε: rsqrt(mean(x²) + ε) keeps an all-zero row finite.")


@one_thread
def check_rms_norm(rms_norm) -> None:
    for shape, eps in CASES:
        label = f"x {shape}, eps={eps:g}"
        case = RmsCase(label)
        x = EX.randn(*shape, key=(label, "x")) * 2 + 0.5
        weight = EX.randn(shape[-1], key=(label, "w"))
        got = require_tensor(EX, EX.call(rms_norm, x, weight, eps, case=case), case, "output")
        expected = F.rms_norm(x, (shape[-1],), weight, eps)
        EX.compare(got, expected, case=case, equation="y = x · rsqrt(mean(x², last axis) + ε) · γ",
                   mistakes=[m for m in _mistakes(x, weight, eps) if m.output is not None],
                   factors={"√D": math.sqrt(shape[-1]), "D": float(shape[-1])}, axes=None)
    EX.passed("4 shapes match F.rms_norm (mean over the last axis, ε inside the root, γ applied)")
