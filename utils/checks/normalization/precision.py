"""Readings that need a case built for them: values with a large mean, where a one-pass variance E[x²] − μ² loses
its digits to cancellation, and the nested variance (the mean of per-row variances) that a two-step reduction gives."""
from __future__ import annotations

from typing import Callable

import torch

from utils.checks.core import Exercise, Mistake
from utils.checks.normalization.cases import _close
from utils.checks.normalization.statistics import NormSpec, _fit_affine


def large_mean_probe(exercise: Exercise, run: Callable, x: torch.Tensor, expected: torch.Tensor, spec: NormSpec,
                     case, offset: float) -> Callable[[torch.Tensor], str | None]:
    """On values with a large mean (``offset`` added to every one), the output must be the same as for x − offset:
    eq. (2.10) subtracts the mean. When your code is right for x − offset but not for x, it loses precision to the
    size of the values — and when your μ is still right, only σ² can have lost it: the one-pass E[x²] − μ²."""
    def probe(got):
        if not offset or not spec.centred:
            return None
        with torch.no_grad():
            centred = exercise.call(run, x - offset, case=case)
        atol, rtol = case.tolerance
        if not isinstance(centred, torch.Tensor) or centred.shape != expected.shape or \
                not torch.allclose(centred.detach().to(expected.dtype), expected, atol=atol, rtol=rtol):
            return None  # wrong whatever the mean: another mistake, read by the other probes
        y, xd = got.detach().double(), x.detach().double()
        right_mu = spec.partition.mean(xd)
        fit = _fit_affine(xd, y, spec.partition)
        mu = -fit.b / fit.a.where(fit.a.abs() > 1e-12, torch.ones_like(fit.a))
        variance = spec.partition.mean((xd - right_mu) ** 2)
        if fit.residual < 1e-3 and _close(mu, right_mu, 1e-4, offset):
            return (f"your σ² is off on these values, which have a large mean ({offset:g}), though your output is "
                    f"right for the same values minus {offset:g} — subtracting a constant changes nothing in "
                    f"{spec.equation}. That is the cancellation of the one-pass formula σ² = E[x²] − μ²: two numbers "
                    f"near {offset ** 2:.3g} subtracted to leave about {variance.mean().item():.2g}, so float32 keeps "
                    f"only its first digits. Subtract the mean first: σ² = mean((x − μ)²) (x.var(..., "
                    f"unbiased=False)).")
        return (f"your output is right for these values minus {offset:g} but not for the values themselves, which "
                f"have a large mean ({offset:g}); subtracting a constant changes nothing in {spec.equation}, so your "
                f"arithmetic loses precision to the size of x: subtract the mean first, then square, scale and "
                f"divide x − μ (a one-pass E[x²] − μ², or x·s − μ·s, cancels).")
    return probe


def exchanged_statistics(x: torch.Tensor, spec: NormSpec) -> list[Mistake]:
    """eq. (2.10) with μ and σ² (or σ) exchanged, in x's own dtype so that the NaN of a negative μ under the root
    sit where the learner's do: ``mean, var = torch.var_mean(…)`` unpacks (var, mean) the wrong way round."""
    if not spec.centred:
        return []
    P, eps = spec.partition, spec.eps
    mu = P.mean(x)
    variance = P.mean((x - mu) ** 2)
    unbiased = variance * P.size / (P.size - 1) if P.size > 1 else None
    found = []
    for sigma2, which in ((variance, ""), (unbiased, " (the unbiased one, torch.var_mean's default)")):
        if sigma2 is None:
            continue
        swapped = (x - sigma2) / torch.sqrt(mu + eps)
        found.append(Mistake(swapped, f"with γ = 1 and β = 0 your output is (x − σ²)/√(μ + ε): the mean μ and the "
                                      f"variance σ²{which} are exchanged — torch.var_mean returns (var, mean), in that "
                                      f"order: write var, mean = torch.var_mean(…) ({spec.equation})."
                                      + (" The NaN come from √ of a negative μ." if swapped.isnan().any() else "")))
        sigma = sigma2.sqrt()
        for output, formula in (((x - sigma) / (mu + eps), "(x − σ)/(μ + ε)"),
                                ((x - sigma) / torch.sqrt(mu * mu + eps), "(x − σ)/√(μ² + ε)")):
            found.append(Mistake(output, f"with γ = 1 and β = 0 your output is {formula}: the mean μ and the standard "
                                         f"deviation σ{which.replace('var_mean', 'std_mean')} are exchanged — "
                                         f"torch.std_mean returns (std, mean), in that order: write std, mean = "
                                         f"torch.std_mean(…) ({spec.equation})."))
    return found
