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


def _statistic_reading(got, x, weight, eps) -> str | None:
    """Read the per-row statistic m the learner divided by, from y = x · γ / √(m + ε): if every row of got / (x · γ)
    is one number c, then m = 1/c² − ε, compared with mean(x²) and with the statistics it is mistaken for."""
    if got.shape != x.shape or not torch.isfinite(got).all() or x.shape[-1] < 2:
        return None
    ratio = got / (x * weight)  # (…, D): the same number along each row when the form is right
    if not torch.allclose(ratio, ratio[..., :1].expand_as(ratio), rtol=1e-4, atol=1e-6) or (ratio[..., 0] <= 0).any():
        return None
    statistic = ratio[..., 0].pow(-2) - eps  # (…,) the m in √(m + ε)
    D = x.shape[-1]
    candidates = {
        "the variance, mean((x − x̄)²): you subtracted the mean (LayerNorm's statistic); RMSNorm's is mean(x²), "
        "no centring": x.var(-1, unbiased=False),
        "the unbiased variance, Σ(x − x̄)²/(D − 1): centred, and ÷ (D − 1); RMSNorm's is mean(x²) = Σx²/D": x.var(-1),
        f"Σx²/(D − 1): ÷ (D − 1) where the mean divides by D = {D}": x.pow(2).sum(-1) / (D - 1),
        "mean(|x|)²: the mean of |x|, squared, instead of the mean of x²": x.abs().mean(-1).pow(2),
        "mean(x)²: the square of the mean instead of the mean of the squares": x.mean(-1).pow(2),
    }
    for reading, candidate in candidates.items():
        if torch.allclose(statistic, candidate, rtol=1e-3, atol=1e-6):
            return f"your output is x · γ / √(m + ε) with m = {reading} (eq. (12.6))."
    return None


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
                   probes=[lambda g, x=x, weight=weight, eps=eps: _statistic_reading(g, x, weight, eps)],
                   factors={"√D": math.sqrt(shape[-1]), "D": float(shape[-1])}, axes=None)
    EX.passed("4 shapes match F.rms_norm (mean over the last axis, ε inside the root, γ applied)")
