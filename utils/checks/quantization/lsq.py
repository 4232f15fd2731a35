"""Exercise 11.4: LSQQuantizer — initial step, forward, the STE gradient of x and the scaled step gradient."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from utils.checks.core import Case, Mistake, name_value, one_thread
from utils.checks.quantization.cases import EX_LSQ, lsq_reference


@dataclass(frozen=True)
class LSQCase(Case):
    shape: tuple = (8, 16)
    bits: int = 4
    per_channel: bool = False

    @property
    def sizes(self):
        return {"rows": self.shape[0], "columns": self.shape[1]}


LSQ_CASES = (
    LSQCase("per tensor, 4 bits, x (8, 16)", shape=(8, 16), bits=4),
    LSQCase("per tensor, 2 bits, x (3, 40)", shape=(3, 40), bits=2),
    LSQCase("per channel, 3 bits, weight (6, 10)", shape=(6, 10), bits=3, per_channel=True),
    LSQCase("per channel, 8 bits, weight (4, 25)", shape=(4, 25), bits=8, per_channel=True),
)


def _init_step(x, case):
    q_pos = 2 ** (case.bits - 1) - 1
    mean_abs = x.abs().mean(dim=1, keepdim=True) if case.per_channel else x.abs().mean()
    return 2 * mean_abs / math.sqrt(q_pos)


@one_thread
def check_lsq_quantizer(LSQQuantizer) -> None:
    """Exercise 11.4: the first call sets s = 2·mean|x|/√Q_P; x̂ = s·⌊clamp(x/s, −Q_N, Q_P)⌉ with the STE; the step's
    gradient is g·Σ eq. (11.6) with g = 1/√(N·Q_P)."""
    EX = EX_LSQ
    for case in LSQ_CASES:
        channels = case.shape[0] if case.per_channel else None
        quantizer = EX.call(LSQQuantizer, case.bits, channels, what="LSQQuantizer(bits, channels)", case=case)
        x = EX.randn(*case.shape, key=(case.label, "x")) * 0.8
        EX.call(quantizer, x.clone(), what="LSQQuantizer.forward (first call)", case=case)
        _compare_initial(EX, case, quantizer, x)
        # a second call, from a step we choose, with values on both sides of the clipping range
        step = (0.3 + 0.1 * torch.arange(channels, dtype=torch.float32)[:, None]) if channels else torch.tensor(0.35)
        with torch.no_grad():
            quantizer.step.copy_(step)
        x = EX.randn(*case.shape, key=(case.label, "x2")) * 1.5
        leaf = x.clone().requires_grad_()
        quantizer.step.grad = None
        got = EX.call(quantizer, leaf, what="LSQQuantizer.forward", case=case)
        reference_step = step.clone().requires_grad_()
        reference_x = x.clone().requires_grad_()
        expected = lsq_reference(reference_x, reference_step, case.bits)
        q_neg, q_pos = 2 ** (case.bits - 1), 2 ** (case.bits - 1) - 1
        mistakes = [Mistake(lsq_reference(x, step, case.bits, q_neg=q_pos),
                            "you clamp to [−Q_P, Q_P]; the signed range is [−Q_N, Q_P] = [−2^(b−1), 2^(b−1) − 1]."),
                    Mistake(lsq_reference(x, step, case.bits, q_pos=q_neg),
                            "you clamp to [−Q_N, Q_N]; the top level is Q_P = 2^(b−1) − 1."),
                    Mistake(lsq_reference(x, step, case.bits, q_neg=0, q_pos=2 ** case.bits - 1),
                            "you clamp to the unsigned [0, 2^b − 1]; LSQ's signed quantizer clamps to [−Q_N, Q_P]."),
                    Mistake(x.clone(), "your output equals the input: nothing was quantized."),
                    Mistake(torch.clamp(x / step, -q_neg, q_pos).round(),
                            "you return the integer levels; multiply back by the step: x̂ = s·⌊clamp(x/s)⌉.")]
        EX.compare(got, expected.detach(), case=case, equation="x̂ = s·⌊clamp(x/s, −Q_N, Q_P)⌉", mistakes=mistakes)
        if not got.requires_grad:
            raise EX.fail("your output is not connected to the autograd graph (no gradient can reach x or the "
                          "step).", case=case)
        grad_out = EX.randn(*case.shape, key=(case.label, "g"))
        EX.call(got.backward, grad_out, what="LSQQuantizer (its backward pass)", case=case)
        expected.backward(grad_out)
        _compare_gradients(EX, case, leaf.grad, reference_x.grad, quantizer.step.grad, reference_step.grad, x, step,
                           grad_out)
    EX.passed(f"{len(LSQ_CASES)} cases (per tensor and per channel, 2–8 bits): LSQ's initial step, the quantized "
              f"values, the STE gradient of x and the step gradient with g = 1/√(N·Q_P) are right")


def _compare_initial(EX, case, quantizer, x):
    want = _init_step(x, case)
    got = quantizer.step.detach()
    if not bool(quantizer.initialized):
        raise EX.fail("after the first call `initialized` is still False: set it (self.initialized.fill_(True)) so the "
                      "step is initialised only once.", case=case)
    if got.shape != want.shape:
        raise EX.fail(f"your step has shape {tuple(got.shape)} after the first call; it should keep its shape "
                      f"{tuple(want.shape)} (copy_ into it, don't replace it).", case=case)
    if torch.allclose(got, want, rtol=1e-5):
        return
    q_pos, q_neg = 2 ** (case.bits - 1) - 1, 2 ** (case.bits - 1)
    readings = {
        "mean|x| without the factor 2": want / 2,
        "√Q_N where √Q_P belongs": 2 * (want * math.sqrt(q_pos) / 2) / math.sqrt(q_neg),
        "Q_P where √Q_P belongs": want / math.sqrt(q_pos),
        "the mean of x, not of |x|": 2 * (x.mean(dim=1, keepdim=True) if case.per_channel else x.mean()) / math.sqrt(
            q_pos),
        "max|x| where mean|x| belongs": 2 * (x.abs().amax(dim=1, keepdim=True) if case.per_channel else
                                             x.abs().max()) / math.sqrt(q_pos),
    }
    if case.per_channel:
        readings["one mean|x| over the whole tensor; per-channel steps take the mean of each row"] = \
            (2 * x.abs().mean() / math.sqrt(q_pos)).expand_as(want)
    for reading, value in readings.items():
        if torch.allclose(got, value.reshape(got.shape), rtol=1e-5):
            raise EX.fail(f"your initial step is {reading}: LSQ starts from s = 2·mean|x|/√Q_P.", case=case,
                          name="initial step")
    raise EX.fail(f"your initial step is {got.flatten()[:3].tolist()}…; LSQ starts from s = 2·mean|x|/√Q_P = "
                  f"{want.flatten()[:3].tolist()}…", case=case, name="initial step")


def _compare_gradients(EX, case, got_x, want_x, got_step, want_step, x, step, grad_out):
    q_neg, q_pos = 2 ** (case.bits - 1), 2 ** (case.bits - 1) - 1
    if got_x is None:
        raise EX.fail("x received no gradient: round with the straight-through estimator, round_ste(...), so the "
                      "gradient passes inside the range (eq. (11.5)).", case=case, name="dL/dx")
    u = x / step
    inside = (u > -q_neg) & (u < q_pos)
    EX.compare(got_x, want_x, case=case, name="dL/dx", equation="eq. (11.5): grad_out inside the clipping range",
               mistakes=[Mistake(grad_out.clone(), "your gradient of x passes outside the clipping range too; "
                                                   "clamp before rounding so clipped values get none."),
                         Mistake(torch.zeros_like(grad_out), "your gradient of x is zero: round with the STE "
                                                              "(round_ste), not torch.round.")])
    if got_step is None:
        raise EX.fail("the step received no gradient (its .grad is None): use self.step inside the graph (through "
                      "scale_gradient), not .data or .item().", case=case, name="dL/ds")
    N = x.numel() // step.numel()
    g = 1 / math.sqrt(N * q_pos)
    step_exact = step.clone().requires_grad_()
    lsq_reference(x, step_exact, case.bits, ste=False).backward(grad_out)
    weighted_u = torch.where(inside, u, torch.zeros_like(u)) * grad_out
    without_u = want_step + g * (weighted_u.sum(dim=1, keepdim=True) if case.per_channel else weighted_u.sum())
    mistakes = [Mistake(step_exact.grad, "your step gradient is g·Σ⌊u⌉ inside the range: the −u term of eq. (11.6) "
                                         "is missing — round with the STE (round_ste) and let s enter x/s too, so "
                                         "that r'(u) = 1 contributes −u."),
                Mistake(without_u, "your step gradient misses the −u·r'(u) term of eq. (11.6): s must enter x/s "
                                   "through the graph (not detached).")]
    if case.per_channel:
        whole = 1 / math.sqrt(x.numel() * q_pos)
        mistakes.append(Mistake(want_step * whole / g, "your g uses N = all values of x; with one step per row, N is "
                                                       "the number of values that share a step: x.numel() // "
                                                       "step.numel()."))
    factors = {"g = 1/√(N·Q_P)": g, "√N": math.sqrt(N), "√Q_P": math.sqrt(q_pos), "√(N/Q_P)": math.sqrt(N / q_pos),
               "N": float(N)}
    if got_step.numel() == 1 and want_step.abs().item() > 1e-9 and torch.isfinite(got_step).all():
        ratio = (got_step / want_step).item()
        name = name_value(ratio, factors, rtol=1e-4)
        if name and name.startswith("1/g"):
            raise EX.fail(f"your step gradient is {ratio:.4g} (= 1/g) × eq. (11.7)'s: the gradient scale g = "
                          f"1/√(N·Q_P) is missing — use step = scale_gradient(self.step, g) wherever s enters.",
                          case=case, name="dL/ds")
        if name and abs(ratio - 1) > 1e-4:
            raise EX.fail(f"your step gradient is {ratio:.4g} (= {name}) × eq. (11.7)'s: g = 1/√(N·Q_P) is off by "
                          f"that factor — check that N counts the values sharing the step and that Q_P sits inside "
                          f"the square root.", case=case, name="dL/ds")
    EX.compare(got_step, want_step, case=case, name="dL/ds", equation="g·Σ eq. (11.6) with g = 1/√(N·Q_P), eq. (11.7)",
               mistakes=mistakes, factors={"g = 1/√(N·Q_P)": g, "√N": math.sqrt(N), "√Q_P": math.sqrt(q_pos),
                                           "√(N/Q_P)": math.sqrt(N / q_pos), "N": float(N)})
