"""Exercise 8.1: the fused semi-implicit Euler step of the LTC neuron, eq. (8.3), repeated `unfolds` times."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from utils.checks.core import Case, Exercise, Mistake, fit_linear, one_thread

EX = Exercise("8.1", "ltc_update")
EQUATION = "eq. (8.3), x ← (x + Δ·f(x)·A) / (1 + Δ·(1/τ + f(x))) repeated L = unfolds times with Δ = δt / L"


@dataclass(frozen=True)
class LtcCase(Case):
    batch: int = 3
    neurons: int = 4
    tau: float = 1.5
    A: float = 0.8
    dt: float = 1.2
    unfolds: int = 6
    opening: str = "sigmoid"  # "sigmoid": f depends on x; "constant": f is a constant

    @property
    def sizes(self):
        return {"B": self.batch, "N": self.neurons}


CASES = [LtcCase("B=3, N=4, f depends on x, δt=1.2, L=6"),
         LtcCase("B=2, N=5, f constant, δt=0.9, L=4", batch=2, neurons=5, dt=0.9, unfolds=4, opening="constant"),
         LtcCase("B=1, N=1, one neuron, δt=2.0, L=1", batch=1, neurons=1, dt=2.0, unfolds=1),
         LtcCase("B=4, N=3, float64, τ=0.7, A=−0.5, δt=0.3, L=3", dtype=torch.float64, batch=4, neurons=3, tau=0.7,
                 A=-0.5, dt=0.3, unfolds=3)]


def opening_function(case: LtcCase):
    if case.opening == "constant":
        value = 0.5 + torch.arange(case.neurons, dtype=case.dtype) / case.neurons
        return lambda x: value.expand_as(x)
    return lambda x: 2.0 * torch.sigmoid(3.0 * (x - 0.2))


def reference(x, f, tau, A, dt, unfolds):
    delta = dt / unfolds
    for _ in range(unfolds):
        opening = f(x)
        x = (x + delta * opening * A) / (1 + delta * (1 / tau + opening))
    return x


def _steps(x, f, tau, A, delta, steps, step):
    for _ in range(steps):
        x = step(x, f(x), delta)
    return x


def mistakes(x, f, case: LtcCase) -> list[Mistake]:
    tau, A, dt, L = case.tau, case.A, case.dt, case.unfolds
    delta = dt / L
    fused = lambda x, o, d: (x + d * o * A) / (1 + d * (1 / tau + o))  # noqa: E731
    said = []

    def add(output, hint):
        said.append(Mistake(output, hint))
    add(_steps(x, f, tau, A, delta, L, lambda x, o, d: x + d * (-(1 / tau + o) * x + o * A)),
        "you take explicit Euler steps, x + Δ·(−(1/τ + f)·x + f·A): eq. (8.3) is semi-implicit — the terms in x "
        "(the leak 1/τ and f·x) are taken at the new state, so they go into the denominator 1 + Δ·(1/τ + f).")
    add(_steps(x, f, tau, A, delta, L, lambda x, o, d: (x + d * o * A) / (1 + d * (-1 / tau + o))),
        "the leak has the wrong sign: your denominator is 1 + Δ·(−1/τ + f). In eq. (8.1) the leak −x/τ pulls the "
        "state to rest, so eq. (8.3)'s denominator is 1 + Δ·(1/τ + f).")
    add(_steps(x, f, tau, A, delta, L, lambda x, o, d: (x - d * o * A) / (1 + d * (1 / tau + o))),
        "the f·A term has the wrong sign: the numerator is x + Δ·f·A (the synapse pulls the state towards A).")
    add(_steps(x, f, tau, A, delta, L, lambda x, o, d: (x + d * o) / (1 + d * (1 / tau + o))),
        "A is missing: your numerator is x + Δ·f; eq. (8.3)'s is x + Δ·f·A, the synapse's reversal potential A.")
    add(_steps(x, f, tau, A, delta, L, lambda x, o, d: x / (1 + d * (1 / tau + o))),
        "the f·A term is missing from the numerator: eq. (8.3) is (x + Δ·f·A) / (1 + Δ·(1/τ + f)); without it the "
        "state only decays.")
    add(_steps(x, f, tau, A, delta, L, lambda x, o, d: (x + d * o * A) / (1 + d * (tau + o))),
        "you use τ where 1/τ goes: the leak conductance in eq. (8.3)'s denominator is Δ·(1/τ + f).")
    add(_steps(x, f, tau, A, delta, L, lambda x, o, d: (x + d * o * A) / (1 + d / tau + o)),
        "Δ multiplies only 1/τ in your denominator: eq. (8.3) has 1 + Δ·(1/τ + f), Δ times both conductances.")
    add(_steps(x, f, tau, A, delta, L, lambda x, o, d: (x + d * (o * A - o * x)) / (1 + d / tau)),
        "only the leak is implicit: you keep f·x explicit in the numerator, (x + Δ·(f·A − f·x)) / (1 + Δ/τ). In eq. "
        "(8.3) both terms in x are implicit: (x + Δ·f·A) / (1 + Δ·(1/τ + f)).")
    frozen = f(x)
    add(_steps(x, lambda _: frozen, tau, A, delta, L, fused),
        "you evaluate f once, before the loop: eq. (8.3) calls f on each unfold's current state, f(x_k, I).")
    return said


def _affine_reading(fn, case: LtcCase) -> str | None:
    """With a constant opening c the solver is x ↦ a·x + b. Recover a (and b) at two openings and read the steps n
    and step length Δ' with a = (1 + Δ'(1/τ + c))^(−n); say what differs from L = unfolds steps of δt / L."""
    tau, A, dt, L = case.tau, case.A, case.dt, case.unfolds
    x = EX.randn(64, 1, key=(case.label, "affine"), dtype=torch.float64)
    readings = []
    for c in (0.3, 2.0):
        got = EX.call(fn, x, lambda s, c=c: torch.full_like(s, c), tau, A, dt, L, case=case)
        if not isinstance(got, torch.Tensor) or got.shape != x.shape or not torch.isfinite(got).all():
            return None
        fit = fit_linear(got.double(), {"x": x, "1": torch.ones_like(x)})
        if not fit.exact:
            return ("with a constant f your solver is not an affine map of x (a·x + b), as eq. (8.3) is: check "
                    "that every operation acts on the whole state.")
        readings.append((c, fit.coefficients["x"], fit.coefficients["1"]))
    (c1, a1, b1), (c2, a2, b2) = readings
    want = [(1 + dt / L * (1 / tau + c)) ** -L for c in (c1, c2)]
    if all(0 < a < 1 for a in (a1, a2)) and not all(abs(a - w) < 1e-6 for a, w in zip((a1, a2), want)):
        ratio = math.log(a1) / math.log(a2)
        low, high = 1e-6, 1e3  # log(1 + Δc1) / log(1 + Δc2) falls from c1/c2 towards 1 as Δ grows
        for _ in range(200):
            mid = math.sqrt(low * high)
            value = math.log(1 + mid * (1 / tau + c1)) / math.log(1 + mid * (1 / tau + c2))
            low, high = (mid, high) if value < ratio else (low, mid)
        delta = math.sqrt(low * high)
        steps = -math.log(a1) / math.log(1 + delta * (1 / tau + c1))
        if abs(steps - round(steps)) < 1e-3 and round(steps) >= 1:
            n = round(steps)
            what = []
            if n != L:
                what.append(f"{n} step{'s' if n != 1 else ''} where eq. (8.3) takes L = unfolds = {L}")
            if abs(delta - dt / L) > 1e-6 * dt:
                named = {dt: "δt (not divided by L)", 1.0 / L: "1/L (δt ignored)", 1.0: "1 (δt ignored)",
                         dt / (L + 1): "δt/(L + 1)", dt / max(L - 1, 1): "δt/(L − 1)", dt * L: "δt·L"}
                name = next((text for value, text in named.items() if abs(value - delta) < 1e-6), None)
                what.append(f"a step of Δ = {delta:.4g}" + (f" = {name}" if name else "")
                            + f" where Δ = δt / L = {dt / L:.4g}")
            if what:
                return (f"your solver behaves like {n} semi-implicit step{'s' if n != 1 else ''} of Δ = {delta:.4g}: "
                        + "; ".join(what) + ". Advance by the whole gap δt in L = unfolds steps of Δ = δt / L.")
    if all(abs(a - w) < 1e-6 for a, w in zip((a1, a2), want)):
        for c, a, b in readings:
            target = c * A / (1 / tau + c)  # where x settles: eq. (8.2)'s x* = τ f A / (1 + τ f)
            settles = b / (1 - a)
            if abs(settles - target) > 1e-6 * max(1.0, abs(target)):
                return (f"the decay is right but the state settles at {settles:.4g} instead of x* = f·A / (1/τ + f) "
                        f"= {target:.4g} (f = {c}): look at the numerator's Δ·f·A term.")
    return None


@one_thread
def check_ltc_update(ltc_update) -> None:
    for case in CASES:
        x = EX.randn(case.batch, case.neurons, key=(case.label, "x"), dtype=case.dtype) * 0.5
        f = opening_function(case)
        expected = reference(x, f, case.tau, case.A, case.dt, case.unfolds)
        got = EX.call(ltc_update, x.clone(), f, case.tau, case.A, case.dt, case.unfolds, case=case)
        EX.compare(got, expected, case=case, equation=EQUATION, name="state", mistakes=mistakes(x, f, case),
                   probes=[lambda _, case=case: _affine_reading(ltc_update, case)], axes=("B", "N"))
    case = LtcCase("B=3, N=2, one gap per sequence dt of shape (B, 1)", batch=3, neurons=2)
    x = EX.randn(3, 2, key=(case.label, "x"))
    dt = torch.tensor([[0.2], [1.0], [3.0]])
    got = EX.call(ltc_update, x.clone(), opening_function(case), case.tau, case.A, dt, case.unfolds, case=case)
    EX.compare(got, reference(x, opening_function(case), case.tau, case.A, dt, case.unfolds), case=case,
               equation=EQUATION + ", with δt broadcast over the neurons", name="state", axes=("B", "N"))
    EX.passed(f"{len(CASES) + 1} cases match eq. (8.3) (a state-dependent and a constant f, one unfold, float64, "
              f"a gap per sequence).")
