"""Exercise 5.1 — noise schedules, eqs. (5.3), (5.4)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from utils.checks.core import Case, Exercise, one_thread
from utils.checks.diffusion.images import run_learner
from utils.checks.diffusion.references import (
    reference_cosine_alpha_bars,
    reference_cosine_schedule,
    reference_linear_schedule,
)
from utils.checks.diffusion.values import clamped, shifted

EX_SCHEDULES = Exercise("5.1", "schedules")


@dataclass(frozen=True)
class ScheduleCase(Case):
    T: int = 200
    arguments: tuple = ()  # keyword arguments beyond T, as (name, value) pairs

    @property
    def sizes(self) -> dict[str, int]:
        return {"T": self.T, "T + 1": self.T + 1, "T − 1": self.T - 1}


LINEAR_CASES = [ScheduleCase("linear_schedule(200)", torch.float64, 200),
                ScheduleCase("linear_schedule(50)", torch.float64, 50),
                ScheduleCase("linear_schedule(1000)", torch.float64, 1000),
                ScheduleCase("linear_schedule(300, beta_start=3e-4, beta_end=0.05)", torch.float64, 300,
                             (("beta_start", 3e-4), ("beta_end", 0.05)))]  # 1000 // 300 ≠ 1000 / 300


COSINE_CASES = [ScheduleCase("cosine_schedule(200)", torch.float64, 200),
                ScheduleCase("cosine_schedule(50)", torch.float64, 50),
                ScheduleCase("cosine_schedule(1000)", torch.float64, 1000),
                ScheduleCase("cosine_schedule(1)", torch.float64, 1),
                ScheduleCase("cosine_schedule(100, s=0.02, max_beta=0.5)", torch.float64, 100,
                             (("s", 0.02), ("max_beta", 0.5)))]


def _length_problem(got, T: int, function: str) -> str | None:
    if isinstance(got, torch.Tensor) and got.dim() == 1 and len(got) in (T + 1, T - 1) and T > 1:
        if len(got) == T + 1:
            return (f"{T + 1} values, one too many: {function} returns one β per step t = 1, …, T. (Values at the "
                    f"T + 1 points t = 0, …, T are ᾱ's; β_t compares neighbours, so it has T.)")
        return (f"{T - 1} values, one too few: {function} returns one β per step t = 1, …, T. (The ratio "
                f"ᾱ[1:] / ᾱ[:-1] of T + 1 values t = 0, …, T has T entries: compute ᾱ at t = 0 too, ᾱ_0 = 1.)")
    return None


def _returned_quantity(got: torch.Tensor, betas: torch.Tensor, alpha_bars: torch.Tensor,
                       max_beta: float | None = None) -> str | None:
    """When the learner returned another schedule quantity than β (α_t, ᾱ_t, 1 − ᾱ_t, √β_t, β reversed), clipped
    at ``max_beta`` or not."""
    others = {
        "α_t = 1 − β_t; return the betas": 1 - betas,
        "ᾱ_t; return the betas, β_t = 1 − ᾱ_t / ᾱ_{t−1}": alpha_bars,
        "1 − ᾱ_t, the *total* noise variance up to t; β_t is one step's: 1 − ᾱ_t / ᾱ_{t−1}": 1 - alpha_bars,
        "√β_t, a standard deviation; return the variances β_t": betas.sqrt(),
        "β in reverse order: β_1 is the smallest, at index 0": betas.flip(0),
        "ᾱ_{t−1} − ᾱ_t, a difference; β_t = 1 − ᾱ_t/ᾱ_{t−1} is one minus a ratio (α_t = ᾱ_t/ᾱ_{t−1})":
        torch.cat([torch.ones(1, dtype=alpha_bars.dtype), alpha_bars[:-1]]) - alpha_bars,
    }
    for words, values in others.items():
        for candidate in (values, values.clamp(max=max_beta)) if max_beta else (values,):
            if len(values) > 1 and torch.allclose(got, candidate, rtol=1e-6, atol=1e-12):
                return f"you returned {words}."
    return None


def _common_scale(first: float, last: float, T: int) -> str | None:
    """When both ends of the learner's linear schedule are beta_start and beta_end times one factor c ≠ 1000/T:
    c, named among the scales a learner writes (1000/(T − 1), 1000 // T, T/1000, …)."""
    if not math.isclose(first, last, rel_tol=1e-6) or math.isclose(first, 1000 / T, rel_tol=1e-9):
        return None
    named = {"1000/(T − 1)": 1000 / max(T - 1, 1), "1000/(T + 1)": 1000 / (T + 1), "(1000/T)²": (1000 / T) ** 2,
             "√(1000/T)": math.sqrt(1000 / T), "1/T": 1 / T, "1000": 1000.0, "T": float(T)}  # (1, T/1000 and
    # 1000 // T are named end by end below, with their own advice)
    words = next((name for name, value in named.items() if math.isclose(first, value, rel_tol=1e-6)), None)
    if words is None:
        return None  # the per-end reading below says what each end is
    return (f"both ends are scaled by {first:.6g} = {words}: β_1 = {first:.6g}·beta_start and β_T = {first:.6g}·"
            f"beta_end. Eq. (5.3) scales both by 1000/T = {1000 / T:.6g}, so that the chain adds about as much noise "
            f"for any T.")


def _linear_probes(case: ScheduleCase, T: int, beta_start: float, beta_end: float):
    expected = reference_linear_schedule(T, beta_start, beta_end)
    scale = 1000 / T

    def returned(got):
        return _returned_quantity(got, expected, torch.cumprod(1 - expected, 0))

    def linear_in_t(got):
        steps = got.diff()  # (T − 1,)
        if torch.allclose(steps, steps.mean().expand_as(steps), rtol=1e-6, atol=1e-15):
            return None
        ratios = got[1:] / got[:-1]
        if (got > 0).all() and torch.allclose(ratios, ratios.mean().expand_as(ratios), rtol=1e-6):
            return (f"your β_t grow geometrically (each {ratios.mean().item():.4g} × the one before: torch.logspace "
                    f"or a power?); eq. (5.3) is linear in t: equal steps, torch.linspace(start, end, T).")
        return (f"your β_t are not linear in t: the step between neighbours goes from {steps[0].item():.3g} to "
                f"{steps[-1].item():.3g}; eq. (5.3) has equal steps (torch.linspace(start, end, T)).")

    def endpoints(got):
        step = (beta_end - beta_start) * scale / max(T - 1, 1)
        unscaled = "for T ≠ 1000 scale both ends by 1000/T, so the whole chain adds about as much noise"
        first = {f"beta_start, not scaled: {unscaled}": beta_start,
                 "(T/1000)·beta_start: the scale is 1000/T, not T/1000": beta_start / scale,
                 "(1000/T)·1e-4, from the default: use the beta_start argument": scale * 1e-4,
                 "(1000 // T)·beta_start: // is integer division, 1000/T is not an integer for every T":
                 (1000 // T) * beta_start,
                 "the second of T + 1 points — off by one: T points in all, the first is β_1 = (1000/T)·beta_start "
                 "exactly (torch.linspace(start, end, T))": scale * beta_start + (beta_end - beta_start) * scale / T,
                 "β_2 of eq. (5.3) — off by one: the first value is β_1 = (1000/T)·beta_start": scale * beta_start
                 + step}
        last = {f"beta_end, not scaled: {unscaled}": beta_end,
                "(T/1000)·beta_end: the scale is 1000/T, not T/1000": beta_end / scale,
                "(1000/T)·0.02, from the default: use the beta_end argument": scale * 0.02,
                "(1000 // T)·beta_end: // is integer division, 1000/T is not an integer for every T":
                (1000 // T) * beta_end,
                "β_{T−1} of eq. (5.3) — off by one: the last value is β_T = (1000/T)·beta_end (linspace includes "
                "both ends)": scale * beta_end - step}
        b1, bT = got[0].item(), got[-1].item()
        want_1, want_T = scale * beta_start, scale * beta_end
        if math.isclose(b1, want_1, rel_tol=1e-9) and math.isclose(bT, want_T, rel_tol=1e-9):
            return None
        common = _common_scale(b1 / beta_start, bT / beta_end, T)
        if common:
            return common

        def named(value, table):
            return next((words for words, v in table.items() if math.isclose(value, v, rel_tol=1e-6)), None)
        parts = []
        mine_step = (bT - b1) / max(T - 1, 1)
        if math.isclose(b1, want_1, rel_tol=1e-9) and T > 2 and not math.isclose(mine_step, step, rel_tol=1e-6):
            for words, value in (("(β_end − β_start)/T: T points have T − 1 gaps — (t − 1)/(T − 1) in eq. (5.3)",
                                  (beta_end - beta_start) * scale / T),
                                 ("(β_end − β_start)/(T + 1)", (beta_end - beta_start) * scale / (T + 1)),
                                 ("(beta_end − beta_start)/(T − 1) without the factor 1000/T",
                                  (beta_end - beta_start) / (T - 1))):
                if math.isclose(mine_step, value, rel_tol=1e-6):
                    return (f"β_1 = {b1:.4g} is right but your step between neighbours is {words}; eq. (5.3)'s is "
                            f"(1000/T)·(beta_end − beta_start)/(T − 1) = {step:.4g}, so that β_T = (1000/T)·beta_end: "
                            f"torch.linspace(start, end, T).")
        for symbol, value, want, table in (("β_1", b1, want_1, first), (f"β_T = β_{T}", bT, want_T, last)):
            if math.isclose(value, want, rel_tol=1e-9):
                parts.append(f"{symbol} = {value:.4g} is right")
            else:
                words = named(value, table)
                parts.append(f"{symbol} is {value:.4g}" + (f" = {words}" if words else "") +
                             f"; eq. (5.3) has {want:.4g}")
        return ("; ".join(parts) + ". Eq. (5.3) runs from β_1 = (1000/T)·beta_start to β_T = (1000/T)·beta_end in "
                "T equal steps: torch.linspace(start, end, T, dtype=torch.float64).")
    def bounded(got):
        bounds = clamped(got, expected)
        return (f"your β_t are eq. (5.3)'s {bounds}: eq. (5.3) is a plain linspace from the scaled beta_start to the "
                f"scaled beta_end, with no clamp; remove it.") if bounds else None
    return [returned, lambda got: _shift_problem(got, expected, "eq. (5.3)"), bounded, linear_in_t, endpoints]


def _shift_problem(got: torch.Tensor, expected: torch.Tensor, equation: str, *, late_only: bool = False) -> str | None:
    """Every β read one step away: a value put in front (β_0 = 0, "so that betas[t] is β_t"), or one dropped
    (``late_only``: only the first, which the readings of the cosine's argument would misread as a β_1 ≤ 0)."""
    k = shifted(got, expected)
    if k is None or (late_only and k < 0):
        return None
    which = (f"{abs(k)} step{'s' if abs(k) > 1 else ''} {'late' if k > 0 else 'early'}: your β_t is {equation}'s "
             f"β_{{t{'−' if k > 0 else '+'}{abs(k)}}}")
    cause = ("a value put in front (a β_0 = 0 prepended so that betas[t] would be β_t?) and the last one dropped"
             if k > 0 else "the first value dropped and another step added at the end")
    return (f"every value is {which} — {cause}. The tensor holds β_1 … β_T, step t at index t − 1 (betas[t - 1] is "
            f"β_t): return exactly those T values; index with t − 1 where you use them.")


def _cosine_probes(case: ScheduleCase, T: int, s: float, max_beta: float):
    alpha_bars_0 = reference_cosine_alpha_bars(T, s)  # (T + 1,), ᾱ_0 = 1
    alpha_bars = alpha_bars_0[1:]
    unclipped = 1 - alpha_bars / alpha_bars_0[:-1]  # (T,)
    expected = unclipped.clamp(max=max_beta)

    def returned(got):
        return _returned_quantity(got, expected, alpha_bars, max_beta)

    def clipped(got):
        top = got.max().item()
        if (got >= max_beta * (1 - 1e-12)).all() and not torch.allclose(expected, got):
            return (f"every β_t is {max_beta} or more: clamp(min=…) raises every value to it; eq. (5.4) caps from "
                    f"above, β_t = min(…, max_beta): .clamp(max=max_beta).")
        if top > max_beta * (1 + 1e-9):
            if math.isclose(top, 0.999, rel_tol=1e-9):
                return (f"your largest β_t is 0.999 but this case's max_beta is {max_beta}: clip at the max_beta "
                        f"argument, not at a hard-coded 0.999.")
            biggest = int(got.argmax()) + 1
            return (f"β_{biggest} = {top:.6g} exceeds max_beta = {max_beta}: β_t must be clipped at max_beta "
                    f"(eq. 5.4). Near t = T, ᾱ_t → 0 and 1 − ᾱ_t/ᾱ_{{t−1}} reaches 1, a step that destroys "
                    f"everything: .clamp(max=max_beta).")
        free = expected < max_beta
        if (expected >= max_beta).any() and top < max_beta * (1 - 1e-9) and (unclipped > top).any() and \
                torch.allclose(got[free], expected[free], rtol=1e-7):
            return (f"your largest β_t is {top:.6g}, but eq. (5.4) clips at max_beta = {max_beta} and "
                    f"1 − ᾱ_t/ᾱ_{{t−1}} reaches it at t = {int((expected >= max_beta).nonzero()[0]) + 1}: clip β_t "
                    f"itself, with .clamp(max=max_beta), not ᾱ_t or f(t).")
        return None

    def positive(got):
        if (got > 0).all():
            return None
        first = int((got <= 0).nonzero()[0]) + 1
        inverted = 1 - alpha_bars_0[:-1] / alpha_bars_0[1:]
        head = (f"β_{first} = {got[first - 1].item():.4g} is not positive: ᾱ_t must decrease, so "
                f"β_t = 1 − ᾱ_t / ᾱ_{{t−1}} (eq. 5.4) lies in (0, 1)")
        if torch.allclose(got, inverted.clamp(max=max_beta), rtol=1e-6):
            return f"{head}. Yours is 1 − ᾱ_{{t−1}}/ᾱ_t: the ratio is upside down."
        read = _read_cosine_argument(got, T, s, max_beta)
        if read:
            return f"{head}, and yours are not. {read[0].upper()}{read[1:]}"
        if (got[: first - 1] > 0).all() and first > 1:
            below = int((got[: first - 1] < max_beta).cumprod(0).sum())  # the steps before any clipping
            argument = _read_cosine_argument(got[:below], T, s, max_beta, named_only=False)
            return (f"{head}; yours are positive up to t = {first - 1}, then your ᾱ_t = ∏(1 − β_s) rises again. "
                    f"cos² is periodic: its argument must run from s/(1 + s)·π/2 at t = 0 to exactly π/2 at t = T, "
                    f"where f(T) = 0 — (t/T + s)/(1 + s)·π/2." + (f" {argument}" if argument else ""))
        return f"{head}: β_t = 1 − ᾱ_t/ᾱ_{{t−1}} with ᾱ_t = f(t)/f(0) decreasing."

    def recovered_alpha_bars(got):
        """∏(1 − β_s) of the learner's β should give back f(t)/f(0) up to the first clipped step."""
        free = int((expected < max_beta).sum()) if (expected >= max_beta).any() else T
        free = min(free, int((got < max_beta).sum()) if (got >= max_beta).any() else T)
        mine = torch.cumprod(1 - got, 0)[:free]  # (free,): the learner's ᾱ_1..ᾱ_free
        want = alpha_bars[:free]
        if torch.allclose(mine, want, rtol=1e-7, atol=1e-12):
            return None
        if free > 1 and torch.allclose(got[1:free], expected[1:free], rtol=1e-7) and \
                not math.isclose(got[0].item(), expected[0].item(), rel_tol=1e-7):
            return (f"β_1 = {got[0].item():.6g} is wrong while β_2 … are right: β_1 = 1 − ᾱ_1/ᾱ_0 = "
                    f"{expected[0].item():.6g}, with ᾱ_0 = f(0)/f(0) = 1 (divide f by f(0), and start the ratio at "
                    f"t = 0).")
        inside = (want < 0.99) & (want > 1e-6) & (mine > 0)
        if inside.sum() >= 2:
            powers = mine[inside].log() / want[inside].log()
            power = powers.mean().item()
            if torch.allclose(powers, torch.full_like(powers, power), rtol=1e-5):
                if abs(power - 0.5) < 1e-4:
                    return ("your ᾱ_t = ∏(1 − β_s) is the square root of eq. (5.4)'s: f(t) is the *square* of the "
                            "cosine, cos²(…), and you used cos(…).")
                return (f"your ᾱ_t = ∏(1 − β_s) is eq. (5.4)'s raised to the power {power:.4g}: f(t) = "
                        f"cos²((t/T + s)/(1 + s)·π/2), squared once.")
        read = _read_cosine_argument(got, T, s, max_beta)
        if read:
            return read
        fitted = _fit_offset(mine, T, free)
        if fitted is not None and not math.isclose(fitted, s, rel_tol=1e-3, abs_tol=1e-6):
            if math.isclose(fitted, 0.008, rel_tol=1e-3):
                words = f"you used s = 0.008, not the s argument ({s}): use the function's parameter."
            else:
                words = f"yours is the cosine with s = {fitted:.4g}; eq. (5.4) uses the s argument, {s}."
            return f"your ᾱ_t = ∏(1 − β_s) match f(t)/f(0) with another offset: {words}"
        argument = _read_cosine_argument(got, T, s, max_beta, named_only=False)
        if argument:
            return f"your ᾱ_t = ∏(1 − β_s) depart from f(t)/f(0) of eq. (5.4). {argument}"
        departs = int((~torch.isclose(mine, want, rtol=1e-7, atol=1e-12)).nonzero()[0])
        return (f"your ᾱ_t = ∏(1 − β_s) departs from eq. (5.4)'s f(t)/f(0) from t = {departs + 1} on (yours "
                f"{mine[departs].item():.6g}, expected {want[departs].item():.6g}): compute f at t = 0, 1, …, T "
                f"(torch.arange(T + 1) / T), ᾱ = f / f[0], then β = 1 − ᾱ[1:] / ᾱ[:-1].")
    def bounded(got):
        bounds = clamped(got, expected)
        if bounds is None:
            return None
        return (f"your β_t are eq. (5.4)'s {bounds}: eq. (5.4) clips β_t from above only, at max_beta = {max_beta} — "
                f"β_t = min(1 − ᾱ_t/ᾱ_{{t−1}}, max_beta) — and has no other bound. Clip with .clamp(max=max_beta) "
                f"alone.")
    return [returned, lambda got: _shift_problem(got, expected, "eq. (5.4)", late_only=True), positive, clipped,
            bounded, recovered_alpha_bars, lambda got: _shift_problem(got, expected, "eq. (5.4)")]


def _recover_cosine_argument(got: torch.Tensor, max_beta: float) -> tuple[float, float] | None:
    """(p, q) with the learner's ᾱ_t ∝ cos²(p·t + q), read in closed form from their β's; None if they are not so.

    On a run of unclipped steps, 1 − β_t = f(t)/f(t − 1), so u_t = ∏(1 − β) is f up to a constant factor C. With
    f = cos²(p t + q) = ½(1 + cos(2p t + 2q)), u is a constant plus a sinusoid in t, which obeys the linear recurrence
    u_{t+1} + u_{t−1} = 2cos(2p)·u_t + m: least squares gives cos(2p), then C, then the phase 2q. Works whatever
    the argument's scale (t not divided by T, π for π/2), since cos² is read as periodic. p is returned in [0, π/2]
    and q in [0, π): cos² cannot tell p from p + π or from −p (with −q)."""
    usable = torch.isfinite(got) & (got < max_beta * (1 - 1e-9))  # (T,) steps whose β is the plain ratio
    best, start = (0, 0), None
    for i, ok in enumerate(usable.tolist() + [False]):  # the longest run of usable steps
        if ok and start is None:
            start = i
        elif not ok and start is not None:
            best, start = max(best, (i - start, start)), None
    length, first = best
    if length < 5:
        return None
    ratios = (1 - got[first:first + length]).double()  # f(t)/f(t − 1) for the run's steps
    u = torch.cat([torch.ones(1, dtype=torch.float64), ratios.cumprod(0)])  # f(t)/f(first − 1), length + 1 points
    if not torch.isfinite(u).all() or u.abs().max() > 1e12:
        return None
    t = torch.arange(first, first + length + 1, dtype=torch.float64)  # u[j] = f(first + j)/f(first)
    design = torch.stack([u[1:-1], torch.ones_like(u[1:-1])], dim=1)  # (n − 2, 2)
    k, m = torch.linalg.lstsq(design, (u[2:] + u[:-2])[:, None], driver="gelsd").solution[:, 0].tolist()
    if not -2 < k < 2:
        return None
    p = math.acos(k / 2) / 2
    scale = m / (2 - k)  # C/2
    y = u / scale - 1  # cos(2p t + 2q)
    basis = torch.stack([torch.cos(2 * p * t), -torch.sin(2 * p * t)], dim=1)
    c, d = torch.linalg.lstsq(basis, y[:, None], driver="gelsd").solution[:, 0].tolist()
    q = (math.atan2(d, c) / 2) % math.pi
    rebuilt = scale * (1 + torch.cos(2 * p * t + 2 * q))
    if not ((rebuilt - u).abs() / u.abs().clamp_min(1e-12)).max() <= 1e-6:  # NaN (a zero scale) fails too
        return None
    return p, q


def _same_argument(p: float, q: float, pc: float, qc: float) -> bool:
    """Whether cos²(p t + q) and cos²(pc t + qc) agree at every integer t (p mod π, q mod π, and the sign)."""
    def near_multiple(x: float, tolerance: float) -> bool:
        r = x % math.pi
        return min(r, math.pi - r) <= tolerance
    return any(near_multiple(p - sign * pc, 1e-4 * abs(pc) + 1e-10) and near_multiple(q - sign * qc, 1e-5)
               for sign in (1, -1))


def _read_cosine_argument(got: torch.Tensor, T: int, s: float, max_beta: float, *,
                          named_only: bool = True) -> str | None:
    """The argument of the learner's cos², recovered in closed form and named as the chapter's
    (t/T + s)/(1 + s)·π/2 with one or two things changed; None when it is the right one or cannot be read (or,
    with ``named_only``, when it is no such small change)."""
    recovered = _recover_cosine_argument(got, max_beta)
    if recovered is None:
        return None
    p, q = recovered
    p_want, q_want = math.pi / (2 * T * (1 + s)), s / (1 + s) * math.pi / 2
    if _same_argument(p, q, p_want, q_want):
        return None
    shift = ("off by one in the time grid: f is evaluated at t/T for t = 0, 1, …, T, and β_t compares f(t) with "
             "f(t − 1)")
    numerators = [("t/T + s", 1 / T, s, None), ("t/T", 1 / T, 0.0, "the offset s is missing"),
                  ("t + s", 1.0, s, "t is not divided by T (t/T runs from 0 to 1)"),
                  ("(t + s)/T", 1 / T, s / T, "the offset s is divided by T too"),
                  ("t/T − s", 1 / T, -s, "−s in place of +s"),
                  ("(t + 1)/T + s", 1 / T, 1 / T + s, f"t + 1 in place of t ({shift})"),
                  ("(t − 1)/T + s", 1 / T, s - 1 / T, f"t − 1 in place of t ({shift})"),
                  ("t/(T + 1) + s", 1 / (T + 1), s, "t/(T + 1) in place of t/T"),
                  ("t/(T − 1) + s", 1 / max(T - 1, 1), s, "t/(T − 1) in place of t/T")]
    denominators = [("1 + s", 1 + s, None), ("1 − s", 1 - s, "divided by 1 − s instead of 1 + s"),
                    ("1", 1.0, "no division by (1 + s)"), ("T + s", T + s, "divided by T + s instead of 1 + s")]
    factors = [("π/2", math.pi / 2, None), ("π", math.pi, "π instead of π/2 (the /2 is missing)"), ("π/4", math.pi / 4,
                                                                                  "π/4 in place of π/2")]
    candidates = [(f"({n})/({d})·{f}", a * fv / dv, b * fv / dv, [e for e in (ne, de, fe) if e])
                  for n, a, b, ne in numerators for d, dv, de in denominators for f, fv, fe in factors]
    candidates += [(f"({n})/(1 + s·π/2)", a / (1 + s * math.pi / 2), b / (1 + s * math.pi / 2),
                    [e for e in (ne,) if e] + ["·π/2 went into the denominator, (…)/(1 + s·π/2): operator "
                                               "precedence — write ((t/T + s)/(1 + s))·π/2"])
                   for n, a, b, ne in numerators]
    candidates += _unbracketed_arguments(T, s)
    candidates.sort(key=lambda c: len(c[3]))
    want = f"(t/T + s)/(1 + s)·π/2 = {p_want:.4g}·t + {q_want:.4g}"
    for form, pc, qc, edits in candidates:
        if edits and len(edits) <= 2 and _same_argument(p, q, pc, qc):
            return (f"your ᾱ_t = f(t)/f(0) with f(t) = cos²(g(t)), and your argument is g(t) = {form} — "
                    f"{'; '.join(edits)}. Eq. (5.4) has g(t) = {want}.")
    if named_only:
        return None
    ratio = p / p_want
    words = [f"it rises {ratio:.4g} × as fast as eq. (5.4)'s"] if not math.isclose(ratio, 1, rel_tol=1e-4) else []
    if words and math.isclose(q, q_want * ratio, rel_tol=1e-3):
        words.append(f"the whole argument is scaled, as if π were {ratio * math.pi:.5g} — use math.pi")
    elif not math.isclose(q, q_want, abs_tol=1e-5):
        words.append(f"at t = 0 it is {q:.4g} instead of s/(1 + s)·π/2 = {q_want:.4g} (is the offset s placed right: "
                     f"(t/T + s)/(1 + s)?)")
    return (f"your ᾱ_t = f(t)/f(0) with f(t) = cos²(g(t)) for an argument g(t) = {p:.4g}·t + {q:.4g} (read from your "
            f"β's, up to multiples of π): " + "; ".join(words) + f". Eq. (5.4) has g(t) = {want}, rising from "
            f"s/(1 + s)·π/2 at t = 0 to π/2 at t = T.")


def _unbracketed_arguments(T: int, s: float) -> list[tuple[str, float, float, list[str]]]:
    """(t/T + s)/(1 + s)·π/2 written with a pair of parentheses missing or closed in the wrong place, each as
    (form, slope, intercept, [what went wrong]): operator precedence then divides or scales only part of it."""
    forms = [  # (form as written, g(t) as the code computes it, what precedence did)
        ("t/T + s/(1 + s)·π/2", lambda t: t / T + s / (1 + s) * math.pi / 2,
         "the parentheses around t/T + s are missing, so only s is divided by (1 + s) and scaled by π/2"),
        ("(t/T + s/(1 + s))·π/2", lambda t: (t / T + s / (1 + s)) * math.pi / 2,
         "the parentheses around t/T + s are missing, so only s is divided by (1 + s)"),
        ("(t/T + s)/1 + s·π/2", lambda t: (t / T + s) / 1 + s * math.pi / 2,
         "the parentheses around 1 + s are missing, so you divide by 1 and add s·π/2"),
        ("t/T + s/1 + s·π/2", lambda t: t / T + s / 1 + s * math.pi / 2,
         "the parentheses around t/T + s and around 1 + s are missing"),
        ("(t/T + s)/(1 + s)·π/2 with π/2 on t/T alone", lambda t: t / T * math.pi / 2 + s / (1 + s),
         "the bracket closes in the wrong place: π/2 scales t/T only, not the offset"),
    ]
    found = []
    for form, g, what in forms:
        intercept = g(0)
        found.append((form, g(1) - intercept, intercept, [f"{what} (operator precedence: write ((t/T + s)/(1 + s))"
                                                          f"·π/2)"]))
    return found + _other_bracketings(T, s)


_ARGUMENT_TOKENS = ("t", "/", "T", "+", "s", "/", "1", "+", "s", "*", "pi", "/", "2")  # eq. (5.4)'s argument, flat


def _other_bracketings(T: int, s: float) -> list[tuple[str, float, float, list[str]]]:
    """Every way of writing eq. (5.4)'s argument t/T + s / 1 + s · π / 2 with at most two pairs of parentheses
    (nested or side by side), each as (form, slope, intercept, [what]) — the precedence variants a learner's
    brackets produce, searched rather than listed. Forms with the same value are kept once (the fewest brackets)."""
    operands = range(0, len(_ARGUMENT_TOKENS), 2)
    # a bracket opening at T, t/(T + s …), is left out: nobody writes it, and as s ≪ T it reads as t/T itself
    whole = (0, len(_ARGUMENT_TOKENS) - 1)
    spans = [(a, b) for a in operands for b in operands if a < b and a != 2 and (a, b) != whole]
    layouts = [()] + [(span,) for span in spans] + [
        (first, second) for i, first in enumerate(spans) for second in spans[i + 1:]
        if first[1] < second[0] or second[1] < first[0] or (first[0] <= second[0] and second[1] <= first[1])
        or (second[0] <= first[0] and first[1] <= second[1])]
    seen, found = set(), []
    right = (math.pi / (2 * T * (1 + s)), s / (1 + s) * math.pi / 2)
    for layout in layouts:
        tokens = list(_ARGUMENT_TOKENS)
        for a, b in layout:
            tokens[a] = "(" * tokens[a].count("(") + "(" + tokens[a].lstrip("(")
            tokens[b] = tokens[b] + ")"
        code = " ".join(tokens)
        values = [eval(code, {}, {"t": step, "T": T, "s": s, "pi": math.pi}) for step in (0, 1, 2)]  # noqa: S307
        slope, intercept = values[1] - values[0], values[0]
        if not math.isclose(values[2] - values[1], slope, rel_tol=1e-9, abs_tol=1e-12):
            continue  # t in a denominator: not a linear argument
        key = (round(slope, 12), round(intercept, 12))
        if key in seen or (math.isclose(slope, right[0], rel_tol=1e-9) and math.isclose(intercept, right[1],
                                                                                           rel_tol=1e-9)):
            seen.add(key)
            continue
        seen.add(key)
        form = code.replace(" * ", "·").replace("pi", "π").replace(" / ", "/").replace("( ", "(")
        found.append((form, slope, intercept, [f"the parentheses are placed so that operator precedence computes "
                                               f"{form}: write ((t/T + s)/(1 + s))·π/2"]))
    return found


def _fit_offset(mine: torch.Tensor, T: int, free: int) -> float | None:
    """The offset s' with ∏(1 − β) = f_{s'}(t)/f_{s'}(0) on the first ``free`` steps, searched on [0, 0.5] (a grid,
    then finer grids around the best point); None if no offset fits."""
    steps = torch.arange(free + 1, dtype=torch.float64) / T  # t/T for t = 0..free

    def errors(offsets: torch.Tensor) -> torch.Tensor:  # (S,): max |ᾱ_{s'} − mine| for each offset s'
        f = torch.cos((steps[None, :] + offsets[:, None]) / (1 + offsets[:, None]) * math.pi / 2) ** 2
        return ((f[:, 1:] / f[:, :1]) - mine[None, :]).abs().max(dim=1).values

    offsets = torch.linspace(0, 0.5, 2001, dtype=torch.float64)  # spacing 2.5e-4
    best = offsets[errors(offsets).argmin()].item()
    for width in (2.5e-5, 2.5e-6, 2.5e-7, 2.5e-8):  # each pass spans ± the previous spacing
        candidates = (best + width * torch.arange(-10, 11, dtype=torch.float64)).clamp(min=0)
        best = candidates[errors(candidates).argmin()].item()
    return best if errors(torch.tensor([best], dtype=torch.float64)).item() < 1e-7 else None


def _unless_float32_close(probe: Callable, expected: torch.Tensor) -> Callable:
    """A probe that stays silent when the answer is right to float32 precision, so compare can say just that."""
    def guarded(got):
        return None if torch.allclose(got, expected, rtol=1e-4, atol=1e-7) else probe(got)
    return guarded


@one_thread
def check_schedules(linear_schedule, cosine_schedule) -> None:
    """Exercise 5.1: ``linear_schedule(T)`` and ``cosine_schedule(T)`` return the (T,) float64 tensor of β_1..β_T."""
    for function, fn, cases, equation in (("linear_schedule", linear_schedule, LINEAR_CASES, "eq. (5.3)"),
                                          ("cosine_schedule", cosine_schedule, COSINE_CASES, "eq. (5.4)")):
        exercise = Exercise("5.1", function)
        for case in cases:
            arguments = dict(case.arguments)
            got = run_learner(exercise, fn, case, {"T": case.T}, random_hint="the schedule is a fixed function "
                              "of T (no random numbers).", **arguments)
            problem = _length_problem(got, case.T, function)
            if problem:
                raise exercise.fail(problem, case=case, name="betas")
            if function == "linear_schedule":
                start, end = arguments.get("beta_start", 1e-4), arguments.get("beta_end", 0.02)
                expected = reference_linear_schedule(case.T, start, end)
                probes = _linear_probes(case, case.T, start, end)
            else:
                s, max_beta = arguments.get("s", 0.008), arguments.get("max_beta", 0.999)
                expected = reference_cosine_schedule(case.T, s, max_beta)
                probes = _cosine_probes(case, case.T, s, max_beta)
            exercise.compare(got, expected, case=case, name="betas", equation=equation,
                             probes=[_unless_float32_close(probe, expected) for probe in probes], axes=("t − 1",))
    EX_SCHEDULES.passed("linear_schedule matches β linear in [beta_start, beta_end]·1000/T for T = 50, 200, 300, "
                        "1000 and cosine_schedule matches Nichol & Dhariwal's (∏(1 − β) = f(t)/f(0), clipped at "
                        "max_beta) for T = 1, 50, 100, 200, 1000, with default and given arguments.")
