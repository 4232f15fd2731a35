"""Recovering the coefficients of a formula that is linear in known terms, and saying them."""
from __future__ import annotations

import torch

from utils.checks.attention.common import is_close
from utils.checks.core import (
    fit_linear,
)


def independent_terms(terms: dict[str, torch.Tensor], like: torch.Tensor) -> dict[str, torch.Tensor]:
    """The terms, in order, without those that are (numerically) combinations of earlier ones: their coefficients
    could not be told apart (e.g. p ⊙ Σ_j g_j and p ⊙ ⟨g, p⟩ in a single row)."""
    kept: dict[str, torch.Tensor] = {}
    columns: list[torch.Tensor] = []
    for name, term in terms.items():
        column = term.detach().double().expand_as(like).reshape(-1)
        if column.norm() < 1e-12:
            continue
        trial = torch.stack(columns + [column / column.norm()], dim=1)
        singular = torch.linalg.svdvals(trial)
        if singular.min() > 1e-6 * singular.max():
            kept[name] = term
            columns.append(column / column.norm())
    return kept


def recovered_coefficients(got: torch.Tensor, terms: dict[str, torch.Tensor], expected: dict[str, float]):
    """Least-squares coefficients of ``got`` on the independent ``terms``, or None when they cannot say anything:
    an expected term is not independent of the others, or ``got`` is no combination of the terms."""
    terms = independent_terms(terms, got)
    if not all(name in terms for name in expected):
        return None
    fit = fit_linear(got, terms)
    # exact to rounding (float32 leaves ~1e-7): a looser fit would find spurious small terms in a nonlinear answer
    return fit.coefficients if fit.residual < 1e-5 else None


def formula(coefficients: dict[str, float], display: dict[str, str]) -> str:
    """"p⊙g − 1·p⊙Σg", leaving out the terms with coefficient 0."""
    size = max([abs(c) for c in coefficients.values()] + [1e-300])
    terms = []
    for name, value in coefficients.items():
        if abs(value) < 1e-6 * size:
            continue
        shown = display.get(name, name)
        number = "" if is_close(abs(value), 1.0, 1e-4) else f"{abs(value):.4g}·"
        terms.append(("− " if value < 0 else "+ ") + number + shown)
    text = " ".join(terms) if terms else "0"
    return text[2:] if text.startswith("+ ") else "−" + text[2:] if text.startswith("− ") else text


def multiplier(coefficients: dict[str, float], expected: dict[str, float]) -> float | None:
    """The m with coefficients = m · expected (the other terms 0), when there is one."""
    size = max(abs(c) for c in coefficients.values())
    first = next(iter(expected))
    m = coefficients[first] / expected[first]
    for name, value in coefficients.items():
        want = m * expected.get(name, 0.0)
        if abs(value - want) > 1e-4 * size + 1e-12:
            return None
    return m


def coefficient_words(have: float, want: float, sizes: dict[str, int]) -> str:
    """How a recovered coefficient relates to the right one: "has the opposite sign", "is missing", "is 1/T (= 1/4)
    of what it should be: a mean where the sum belongs", "is 2 ×: counted twice", or the ratio."""
    if abs(have) < 1e-9:
        return "is missing"
    ratio = have / want
    if is_close(ratio, -1.0, 1e-4):
        return f"has the opposite sign ({have:+.4g} where the equation has {want:+.4g})"
    for name, size in sizes.items():
        if size > 1 and is_close(ratio, 1 / size, 1e-4):
            return (f"is {have:+.4g}, 1/{name} (= 1/{size}) of the right {want:+.4g}: a mean over the {size} entries "
                    f"where the sum belongs")
        if size > 1 and is_close(ratio, float(size), 1e-4):
            return f"is {have:+.4g}, {name} (= {size}) times the right {want:+.4g}"
    if is_close(ratio, 2.0, 1e-4):
        return f"is {have:+.4g}, twice the right {want:+.4g}: the term is counted twice"
    if is_close(ratio, 0.5, 1e-4):
        return f"is {have:+.4g}, half the right {want:+.4g}"
    return f"is {have:+.4g} where the equation has {want:+.4g}"
