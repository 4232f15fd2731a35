"""Recovering the coefficients of a formula that is linear in known terms, and saying them."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

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


def exchanged_inputs(got: torch.Tensor, formula: Callable[..., torch.Tensor], inputs: dict[str, torch.Tensor],
                     tolerance: float = 1e-6) -> tuple[str, str] | None:
    """The two inputs of ``formula`` (same shape) that, exchanged, reproduce ``got``: a formula written with two
    of its inputs in each other's roles (g ⊙ (p − ⟨g, p⟩) for p ⊙ (g − ⟨g, p⟩)); None when no exchange does."""
    names = list(inputs)
    got = got.detach().double()
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            if inputs[a].shape != inputs[b].shape:
                continue
            swapped = {**inputs, a: inputs[b], b: inputs[a]}
            want = formula(**{name: value.detach().double() for name, value in swapped.items()})
            if want.shape == got.shape and torch.allclose(got, want, atol=tolerance, rtol=tolerance):
                return a, b
    return None


@dataclass(frozen=True)
class RowFit:
    """``got`` fitted row by row on ``terms``: one coefficient per term and row, each said as a number or as a
    statistic of the row."""

    coefficients: dict[str, torch.Tensor]  # term → (rows,)
    said: dict[str, str]  # term → "−⟨p,p⟩·Σ_j g_j", "1", "−2.5"


def row_statistic_name(values: torch.Tensor, statistics: dict[str, torch.Tensor],
                       tolerance: float = 1e-6) -> str | None:
    """``values`` (one per row) as a number (the same in every row), or ± a statistic of the row, or ± a product
    of two; None when none of these."""
    size = values.abs().max().item()
    if size < tolerance:
        return "0"
    if (values - values.mean()).abs().max() < tolerance * (1 + size):
        return f"{values.mean().item():.4g}"
    names = list(statistics)
    candidates = dict(statistics)
    for i, a in enumerate(names):
        for b in names[i:]:
            candidates[f"{a}·{b}"] = statistics[a] * statistics[b]
    for name, statistic in candidates.items():
        for sign, shown in ((1.0, name), (-1.0, f"−{name}")):
            if torch.allclose(values, sign * statistic, atol=tolerance * (1 + size), rtol=1e-6):
                return shown
    return None


def fit_rows(got: torch.Tensor, terms: dict[str, torch.Tensor], statistics: dict[str, torch.Tensor]) -> RowFit | None:
    """Least squares of each row of ``got`` (…, T) on ``terms`` (each (…, T)), exact to rounding, with every
    coefficient named (:func:`row_statistic_name`); None when the rows are no such combination or a coefficient
    has no name."""
    got = got.detach().double().reshape(-1, got.shape[-1])  # (rows, T)
    columns = torch.stack([term.detach().double().reshape(-1, got.shape[-1]) for term in terms.values()], -1)
    if columns.shape[-1] >= got.shape[-1]:
        return None  # as many unknowns as entries: any row fits
    solution = torch.linalg.lstsq(columns, got[..., None]).solution[..., 0]  # (rows, n_terms)
    residual = (columns @ solution[..., None])[..., 0] - got
    if residual.norm() > 1e-8 * (1 + got.norm()):
        return None
    stats = {name: value.detach().double().reshape(-1) for name, value in statistics.items()}
    coefficients = {name: solution[:, i] for i, name in enumerate(terms)}
    said = {name: row_statistic_name(values, stats) for name, values in coefficients.items()}
    if any(value is None for value in said.values()):
        return None
    return RowFit(coefficients, said)
