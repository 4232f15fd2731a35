"""Exercise 11.1: (scale, zero_point) from a range, eq. (11.2) and the narrow-range symmetric rule."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from utils.checks.core import Case, name_value, one_thread
from utils.checks.quantization.cases import EX_PARAMS, reference_params


@dataclass(frozen=True)
class RangeCase(Case):
    low: tuple = (-1.0,)
    high: tuple = (1.0,)
    bits: int = 8
    symmetric: bool = False
    per_channel: bool = False

    def tensors(self):
        low, high = torch.tensor(self.low), torch.tensor(self.high)
        return (low, high) if self.per_channel else (low.reshape(()), high.reshape(()))


PARAMS_CASES = (
    RangeCase("affine, 8 bits, range [−1.3, 2.9]", low=(-1.3,), high=(2.9,), bits=8),
    RangeCase("affine, 4 bits, range [−0.37, 0.81]", low=(-0.37,), high=(0.81,), bits=4),
    RangeCase("affine, 3 bits, all-positive range [0.5, 2.0]", low=(0.5,), high=(2.0,), bits=3),
    RangeCase("affine, 2 bits, all-negative range [−3.1, −0.4]", low=(-3.1,), high=(-0.4,), bits=2),
    RangeCase("affine, 4 bits, per channel (C=4)", low=(-1.0, 0.3, -2.5, -0.01), high=(1.7, 0.9, -0.5, 0.02),
              bits=4, per_channel=True),
    RangeCase("symmetric, 8 bits, range [−1.3, 2.9]", low=(-1.3,), high=(2.9,), bits=8, symmetric=True),
    RangeCase("symmetric, 4 bits, range [−3.2, 0.7] (the low end is the larger)", low=(-3.2,), high=(0.7,),
              bits=4, symmetric=True),
    RangeCase("symmetric, 2 bits, per channel (C=3)", low=(-0.5, -2.0, 0.1), high=(0.4, 1.0, 0.3), bits=2,
              symmetric=True, per_channel=True),
    RangeCase("affine, 8 bits, an all-zero range", low=(0.0,), high=(0.0,), bits=8),
    RangeCase("symmetric, 4 bits, an all-zero range", low=(0.0,), high=(0.0,), bits=4, symmetric=True),
)


def _library_params(low, high, bits):
    """PyTorch's MinMaxObserver for q ∈ [0, 2^b − 1] (affine), where it applies (a nonzero range)."""
    observer = torch.ao.quantization.MinMaxObserver(quant_min=0, quant_max=2 ** bits - 1, dtype=torch.quint8)
    if low.dim() == 0:
        return observer._calculate_qparams(low.reshape(1), high.reshape(1))
    scales, zeros = zip(*(observer._calculate_qparams(lo.reshape(1), hi.reshape(1)) for lo, hi in zip(low, high)))
    return torch.cat(scales), torch.cat(zeros)


def _steps_reading(count: float, case: RangeCase) -> str | None:
    """Name the number of steps a scale implies: (β' − α')/s, or max|·|/s for the symmetric quantizer."""
    b = case.bits
    named = {"2^b": 2.0 ** b, "2^b − 1": 2.0 ** b - 1, "2^(b−1)": 2.0 ** (b - 1), "2^(b−1) − 1": 2.0 ** (b - 1) - 1,
             "(2^b − 1)/2": (2.0 ** b - 1) / 2, "2^b − 2": 2.0 ** b - 2, "b": float(b)}
    name = name_value(count, named, rtol=1e-4)
    if name is None or name.startswith(("1/", "−")):
        return None
    if case.symmetric:
        want = "2^(b−1) − 1"
        if name == want:
            return None
        extra = {"2^(b−1)": " — the off-by-one of the symmetric range: the largest magnitude must land on the "
                            "top level 2^(b−1) − 1, since +2^(b−1) is not a signed b-bit integer",
                 "(2^b − 1)/2": " — PyTorch's qint8 convention (127.5 at 8 bits); this chapter's narrow range puts "
                                "max|x| on 2^(b−1) − 1 exactly",
                 "2^b − 1": " — the affine count of steps over [α, β]; the symmetric scale spreads only the "
                            "positive half, max(|α|, |β|), over 2^(b−1) − 1 steps"}.get(name, "")
        return (f"your scale puts {count:.6g} (= {name}) steps between 0 and max(|α|, |β|); the narrow-range symmetric "
                f"quantizer has {2 ** (b - 1) - 1} (= {want}, for b = {b}){extra}.")
    if name == "2^b − 1":
        return None
    extra = {"2^b": ": q runs from 0 to 2^b − 1, so there are 2^b levels but only 2^b − 1 steps between them "
                    "(the clamp to [0, 2^b] instead of 2^b − 1 mistake)"}.get(name, "")
    return (f"your scale puts {count:.6g} (= {name}) steps over the range; eq. (11.2) divides by q_max − q_min = "
            f"2^b − 1 = {2 ** b - 1}{extra}.")


@one_thread
def check_quantization_params(quantization_params) -> None:
    """Exercise 11.1: ``quantization_params(low, high, bits, symmetric)`` → (scale, zero_point), eq. (11.2)."""
    EX = EX_PARAMS
    for case in PARAMS_CASES:
        low, high = case.tensors()
        got = EX.call(quantization_params, low.clone(), high.clone(), case.bits, symmetric=case.symmetric,
                      case=case)
        scale, zero_point = reference_params(low, high, case.bits, case.symmetric)
        if not case.symmetric and case.low != (0.0,):
            library_scale, library_zero = _library_params(low, high, case.bits)  # PyTorch agrees with eq. (11.2)
            assert torch.allclose(library_scale.reshape(scale.shape), scale) and \
                torch.equal(library_zero.reshape(zero_point.shape).to(torch.int32), zero_point)
        if not isinstance(got, (tuple, list)) or len(got) != 2:
            raise EX.fail(f"return the pair (scale, zero_point); you returned {type(got).__name__}"
                          + (f" of length {len(got)}" if isinstance(got, (tuple, list)) else "") + ".", case=case)
        got_scale, got_zero = got
        for name, value, want in (("scale", got_scale, scale), ("zero_point", got_zero, zero_point)):
            if not isinstance(value, torch.Tensor):
                raise EX.fail(f"your {name} is a {type(value).__name__}; return a tensor shaped like `low` "
                              f"({tuple(want.shape)}): compute with torch operations, without .item() or float().",
                              case=case)
            if value.shape != want.shape:
                per = "one per channel, shaped like `low`" if case.per_channel else "a 0-d tensor, as `low` is"
                raise EX.fail(f"your {name} has shape {tuple(value.shape)}; it should be {tuple(want.shape)} — "
                              f"{per}. Do not reduce over the channels (no .max() / .min() over all entries).",
                              case=case)
        if not torch.isfinite(got_scale).all() or (got_scale <= 0).any():
            raise EX.fail(f"your scale is {got_scale.tolist()}: it must be finite and positive. With an all-zero "
                          f"range the difference is 0; clamp the scale with .clamp_min(1e-8).", case=case)
        if got_zero.dtype != torch.int32:
            raise EX.fail(f"your zero_point has dtype {got_zero.dtype}; it is an integer, torch.int32 "
                          f"(round it, then .to(torch.int32)).", case=case)
        if got_scale.dtype != scale.dtype:
            raise EX.fail(f"your scale has dtype {got_scale.dtype}; keep the input's {scale.dtype}.", case=case)
        _compare_scale(EX, case, low, high, got_scale, scale)
        _compare_zero(EX, case, low, high, got_scale, got_zero, zero_point)
    EX.passed(f"{len(PARAMS_CASES)} ranges (affine and symmetric, per tensor and per channel, 2–8 bits, an all-zero "
              f"range) give eq. (11.2)'s scale and zero point, as PyTorch's MinMaxObserver does")


def _compare_scale(EX, case, low, high, got_scale, scale):
    if torch.allclose(got_scale, scale, rtol=1e-5, atol=1e-12):
        return
    if case.symmetric:
        if torch.allclose(got_scale, (torch.maximum(low, high) / (2 ** (case.bits - 1) - 1)).clamp_min(1e-8),
                          rtol=1e-5):
            raise EX.fail("your scale uses max(α, β); the symmetric range must cover both ends: max(|α|, |β|) "
                          "(here the low end is the larger in magnitude).", case=case, name="scale")
        span = torch.maximum(low.abs(), high.abs())
    else:
        unwidened = (high - low).clamp_min(1e-8) / (2 ** case.bits - 1)
        if not torch.allclose(unwidened, scale) and torch.allclose(got_scale, unwidened, rtol=1e-5):
            raise EX.fail("your scale spreads the steps over [α, β] as given; eq. (11.2) first widens the range "
                          "to contain 0 (α' = min(α, 0), β' = max(β, 0)), so that 0 is represented exactly.",
                          case=case, name="scale")
        span = high.clamp(min=0) - low.clamp(max=0)
    nonzero = span > 0
    if nonzero.any():
        counts = (span[nonzero] / got_scale[nonzero])
        if torch.allclose(counts, counts.flatten()[0].expand_as(counts), rtol=1e-4):
            reading = _steps_reading(counts.flatten()[0].item(), case)
            if reading:
                raise EX.fail(reading, case=case, name="scale")
    if (span == 0).any() and not torch.allclose(got_scale[span == 0], scale[span == 0]):
        raise EX.fail(f"for an all-zero range the scale should be the floor 1e-8 (clamp_min(1e-8)); yours is "
                      f"{got_scale[span == 0].tolist()}.", case=case, name="scale")
    EX.compare(got_scale, scale, case=case, name="scale", atol=1e-12, rtol=1e-5,
               equation="eq. (11.2)" if not case.symmetric else "s = max(|α|, |β|) / (2^(b−1) − 1)")


def _compare_zero(EX, case, low, high, got_scale, got_zero, zero_point):
    if torch.equal(got_zero, zero_point):
        return
    if case.symmetric:
        raise EX.fail(f"your zero point is {got_zero.tolist()}; the symmetric quantizer has z = 0 by definition.",
                      case=case, name="zero_point")
    ratio = low.clamp(max=0) / scale_or(got_scale)
    if torch.equal(got_zero, torch.round(ratio).to(torch.int32)) or \
            torch.equal(got_zero, torch.round(ratio).clamp(0, 2 ** case.bits - 1).to(torch.int32)):
        raise EX.fail(f"your zero point is {got_zero.tolist()}, the sign flipped: z = q_min − ⌊α'/s⌉ (α' ≤ 0, so z ≥ "
                      f"0 and α' maps to q_min), not ⌊α'/s⌉. Expected {zero_point.tolist()}.",
                      case=case, name="zero_point")
    if torch.equal(got_zero, (-ratio).to(torch.int32)) or torch.equal(got_zero, torch.floor(-ratio).to(torch.int32)) \
            or torch.equal(got_zero, torch.ceil(-ratio).to(torch.int32)):
        raise EX.fail(f"your zero point is {got_zero.tolist()}: truncated (or floored/ceiled), not rounded — "
                      f".to(torch.int32) alone cuts toward zero. Round first: torch.round(...). Expected "
                      f"{zero_point.tolist()}.", case=case, name="zero_point")
    if torch.equal(got_zero, torch.round(-low / scale_or(got_scale)).to(torch.int32)):
        raise EX.fail(f"your zero point is {got_zero.tolist()}: computed from α, not from the widened α' = min(α, 0) "
                      f"(with an all-positive range, 0 must map to q_min: z = 0). Expected {zero_point.tolist()}.",
                      case=case, name="zero_point")
    if torch.equal(got_zero, (torch.round(-low.clamp(max=0)) / scale_or(got_scale)).clamp(0, 2 ** case.bits - 1)
                   .to(torch.int32)):
        raise EX.fail(f"your zero point is {got_zero.tolist()}: you round α' before dividing by s; round the "
                      f"quotient: z = q_min − ⌊α'/s⌉. Expected {zero_point.tolist()}.", case=case, name="zero_point")
    if ((got_zero < 0) | (got_zero > 2 ** case.bits - 1)).any():
        raise EX.fail(f"your zero point {got_zero.tolist()} lies outside [0, 2^b − 1]; clamp it into "
                      f"[q_min, q_max].", case=case, name="zero_point")
    raise EX.fail(f"your zero point is {got_zero.tolist()}; eq. (11.2) gives {zero_point.tolist()} "
                  f"(z = clamp(q_min − ⌊α'/s⌉, q_min, q_max)).", case=case, name="zero_point")


def scale_or(scale: torch.Tensor) -> torch.Tensor:
    return scale.clamp_min(1e-12)
