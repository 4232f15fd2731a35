"""Exercise 7.3: TPE's density ratio ℓ(x)/g(x), eqs. (7.4), (7.5), for a maximisation."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from utils.checks.architecture_search.reference import EX_TPE
from utils.checks.core import Case, Mistake, one_thread


@dataclass(frozen=True)
class TPECase(Case):
    n: int = 20  # observations
    M: int = 50  # candidates
    gamma: float = 0.25
    bandwidth: float = 0.3

    @property
    def sizes(self) -> dict[str, int]:
        return {"n": self.n, "M": self.M}


CASES = (
    TPECase("n=20, M=50, γ=0.25, σ=0.3", torch.float64),
    TPECase("n=13, M=9, γ=0.3 (γn = 3.9, not whole), σ=0.5", torch.float64, n=13, M=9, gamma=0.3, bandwidth=0.5),
    TPECase("n=30, M=7, γ=0.1, σ=0.2", torch.float64, n=30, M=7, gamma=0.1, bandwidth=0.2),
    TPECase("n=2, M=5, γ=0.25 (one good, one bad)", torch.float64, n=2, M=5, gamma=0.25, bandwidth=0.8),
    TPECase("one candidate, n=11, γ=0.5, σ=0.4", torch.float64, n=11, M=1, gamma=0.5, bandwidth=0.4),
    TPECase("n=4, M=6, a large γ=0.6 (⌈γn⌉ = 3 good, 1 bad)", torch.float64, n=4, M=6, gamma=0.6, bandwidth=0.6),
)


def _kde(points, at, bandwidth, *, total=False):
    z = (at[:, None] - points[None, :]) / bandwidth
    bumps = torch.exp(-0.5 * z ** 2) / (bandwidth * math.sqrt(2 * math.pi))
    return bumps.sum(dim=1) if total else bumps.mean(dim=1)


def ratio(candidates, x, y, gamma, bandwidth, *, n_good=None, descending=True, total=False, good_in_g=False):
    n_good = math.ceil(gamma * len(y)) if n_good is None else n_good
    order = torch.argsort(y, descending=descending)
    good, bad = x[order[:n_good]], x[order[n_good:]]
    if good_in_g:
        bad = x
    return _kde(good, candidates, bandwidth, total=total) / _kde(bad, candidates, bandwidth, total=total)


def _inputs(case: TPECase):
    EX = EX_TPE
    x = EX.randn(case.n, key=(case.label, "x"), dtype=case.dtype)
    y = torch.sin(2 * x) + 0.3 * EX.randn(case.n, key=(case.label, "noise"), dtype=case.dtype)
    candidates = torch.linspace(-2.5, 2.5, case.M, dtype=case.dtype) if case.M > 1 else x[:1].clone() + 0.1
    return candidates, x, y


def _mistakes(case: TPECase, candidates, x, y):
    g, s = case.gamma, case.bandwidth
    right = ratio(candidates, x, y, g, s)
    n_good = math.ceil(g * case.n)
    floor_good = max(1, math.floor(g * case.n))
    found = [
        Mistake(1 / right, "you return g(x)/ℓ(x), the ratio inverted: eq. (7.5) says EI grows with ℓ/g — ℓ, the "
                           "density of the good observations, on top."),
        Mistake(ratio(candidates, x, y, g, s, descending=False),
                "your good observations are the ones with the LOWEST y: that is the top-γ quantile of a "
                "minimisation. Here y is an accuracy to maximise: take the ⌈γn⌉ highest (argsort(descending=True))."),
        Mistake(1 / ratio(candidates, x, y, g, s, descending=False),
                "you return g/ℓ with the good ones taken from the lowest y: both flips together make the ratio of a "
                "minimisation. For an accuracy, ℓ comes from the ⌈γn⌉ highest y, and the ratio is ℓ/g."),
        Mistake(ratio(candidates, x, y, g, s, total=True),
                f"your ratio is off by the constant factor n_g/n_ℓ = {case.n - n_good}/{n_good}: your densities are "
                f"sums of kernels, not means (eq. (7.4) divides by the number of points in each group)."),
        Mistake(ratio(candidates, x, y, g, s * s),
                f"your kernels have standard deviation bandwidth² = {s * s:g}: `bandwidth` is σ, the standard "
                f"deviation; z = (x − x_j)/σ."),
        Mistake(ratio(candidates, x, y, g, s, good_in_g=True),
                "your g is built from ALL observations: in eq. (7.4) g(x) is the density of the observations below "
                "y*, the ones not in ℓ."),
        Mistake(torch.log(right), "you return log(ℓ/g): the exercise asks for the ratio itself."),
    ]
    if floor_good != n_good:
        found.append(Mistake(ratio(candidates, x, y, g, s, n_good=floor_good),
                             f"you keep ⌊γn⌋ = {floor_good} good observations; eq. (7.4)'s split keeps "
                             f"⌈γn⌉ = {n_good} (math.ceil): with γn = {g * case.n:g}, rounding down drops one."))
    if n_good + 1 < case.n:
        found.append(Mistake(ratio(candidates, x, y, g, s, n_good=n_good + 1),
                             f"you keep {n_good + 1} good observations, one more than ⌈γn⌉ = {n_good}."))
    listed = {n_good, floor_good, n_good + 1}
    for k in range(1, case.n):  # any other split: the k highest (or lowest) observations as the good ones
        for descending in (True, False):
            if (k in listed and descending) or (k == n_good and not descending):
                continue
            end = "highest" if descending else "lowest"
            found.append(Mistake(ratio(candidates, x, y, g, s, n_good=k, descending=descending),
                                 f"your ℓ is built from the {k} {end} observations; eq. (7.4) takes the ⌈γn⌉ = "
                                 f"{n_good} highest (γ = {g:g}, n = {case.n}): n_good = math.ceil(gamma * n), "
                                 f"argsort(descending=True)."))
    return right, found


@one_thread
def check_tpe_ratio(tpe_ratio) -> None:
    """Exercise 7.3: ``tpe_ratio(candidates, observed_x, observed_y, gamma, bandwidth)`` returns ℓ/g (eq. (7.5)) at
    each candidate, with ℓ from the ⌈γn⌉ observations of highest y."""
    EX = EX_TPE
    for case in CASES:
        candidates, x, y = _inputs(case)
        right, mistakes = _mistakes(case, candidates, x, y)
        got = EX.call(tpe_ratio, candidates.clone(), x.clone(), y.clone(), case.gamma, case.bandwidth, case=case)
        if isinstance(got, (float, int)) and case.M > 1:
            raise EX.fail(f"returned one number ({got:.4g}); return ℓ/g at every candidate, a tensor of shape "
                          f"({case.M},).", case=case)
        if isinstance(got, torch.Tensor) and got.shape == torch.Size([]) and case.M > 1:
            raise EX.fail(f"returned a single number; return ℓ/g at every candidate, shape ({case.M},). Did you "
                          f"reduce over the candidates (a .mean() or .sum() over the wrong axis)?", case=case)
        EX.compare(got, right, case=case, equation="eqs. (7.4)–(7.5)", name="ratio", mistakes=mistakes,
                   axes=("M",), factors={"n_g/n_ℓ": (case.n - math.ceil(case.gamma * case.n))
                                         / math.ceil(case.gamma * case.n)})
    EX.passed(f"{len(CASES)} cases give ℓ(x)/g(x) with ℓ from the top ⌈γn⌉ observations (eq. (7.5))")
