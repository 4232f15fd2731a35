"""Naming a per-image vector — a coefficient, a ratio of coefficients, a recovered quantity — as one formula of
schedule quantities that gives it at *every* image of the batch (√β_t·[t > 1], ᾱ_t·α_t), or as a constant.

A value is only named when the whole vector matches across images with different steps: one image alone matches
many formulas by coincidence ((1 − ᾱ_t) ≈ 1 at t = T), and a name that fits by coincidence is a wrong diagnosis.
"""
from __future__ import annotations

import itertools

import torch

from utils.checks.diffusion.changes import single_quantities
from utils.checks.diffusion.formulas import Factor, Formula, Step, StepContext
from utils.checks.diffusion.schedule import close

# The quantities a product of two is built from: every table at t and t − 1 (and t'), whole or square-rooted
_PAIR_SYMBOLS = (("ᾱ", False), ("α", False), ("β", False), ("ᾱ", True))


def _distinct_steps(context: StepContext) -> bool:
    """Whether the batch has at least three different steps, t and t' each: fewer, and too many formulas fit by
    coincidence (at t' = 0 for every image, 1 − ᾱ_{t'} is 0 like many others)."""
    return all(len(set(steps.tolist())) >= 3 for steps in context.steps.values())


def pair_products(context: StepContext) -> dict[str, Formula]:
    """Products of two schedule quantities with powers ±1 and ±½ (ᾱ_t·α_t, √ᾱ_t/β_t, ...) that do not simplify
    to a single one."""
    bases = [("t", 0), ("t", -1)] + ([("t'", 0)] if "t'" in context.steps else [])
    factors = [Factor(symbol, Step(base, offset), one_minus, power)
               for base, offset in bases for symbol, one_minus in _PAIR_SYMBOLS for power in (1.0, -1.0, 0.5, -0.5)]
    found = {}
    for first, second in itertools.combinations(factors, 2):
        if (first.symbol, first.step, first.one_minus) == (second.symbol, second.step, second.one_minus):
            continue  # powers of one quantity: a single quantity, named by single_quantities
        formula = Formula((first, second))
        found.setdefault(str(formula), formula)
    return found


def name_vector(values: torch.Tensor, context: StepContext, extra: dict[str, torch.Tensor] | None = None, *,
                pairs: bool = False) -> str | None:
    """The name of ``values`` ((B,), one per image): "0", "1", one of ``extra`` (named vectors such as the model's
    parts), a single schedule quantity, or (``pairs``) a product of two; None when nothing fits every image."""
    if not torch.isfinite(values).all():
        return None
    for constant in (0.0, 1.0, -1.0):
        if close(values, torch.full_like(values, constant), atol=1e-7):
            return f"{constant:g}"
    if not _distinct_steps(context):
        return None
    for name, vector in (extra or {}).items():
        if close(values, torch.as_tensor(vector, dtype=torch.float64).expand_as(values)):
            return name
    candidates = single_quantities(context)
    if pairs:
        candidates = {**candidates, **pair_products(context)}
    return next((text for text, formula in candidates.items() if close(values, formula.value(context))), None)
