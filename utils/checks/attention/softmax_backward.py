"""Exercise 1.2 — the softmax backward pass, eq. (1.5)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from utils.checks.attention.coefficients import coefficient_words, formula, multiplier, recovered_coefficients
from utils.checks.attention.common import EX_SOFTMAX_BACKWARD, ChapterCase, compare_answer, is_close, run_learner
from utils.checks.core import (
    one_thread,
)


@dataclass(frozen=True)
class SoftmaxCase(ChapterCase):
    shape: tuple = ()  # p and g; the softmax runs over the last axis
    masked: bool = False  # some scores −∞, so p has exact zeros

    @property
    def layout(self) -> str:
        return "(..., T)"

    @property
    def sizes(self) -> dict[str, int]:
        return {"T": self.shape[-1]}

    def inputs(self):
        scores = EX_SOFTMAX_BACKWARD.randn(*self.shape, key=(self.label, "s"), dtype=self.dtype)
        if self.masked:
            hidden = EX_SOFTMAX_BACKWARD.randn(*self.shape, key=(self.label, "mask")) > 0.3
            hidden[..., 0] = False  # every row keeps a score
            scores = scores.masked_fill(hidden, -math.inf)
        grad_p = EX_SOFTMAX_BACKWARD.randn(*self.shape, key=(self.label, "g"), dtype=self.dtype)
        return scores, grad_p


SOFTMAX_CASES = [
    SoftmaxCase("square (4, 4), float64", torch.float64, shape=(4, 4)),
    SoftmaxCase("B=2, 3 rows of T=5", shape=(2, 3, 5)),
    SoftmaxCase("masked scores: p has exact zeros, (3, 6), float64", torch.float64, shape=(3, 6), masked=True),
    SoftmaxCase("a vector of 6, float64", torch.float64, shape=(6,)),
    SoftmaxCase("a single entry (1, 1): p = 1", shape=(1, 1)),
]


_SOFTMAX_DISPLAY = {"p⊙p⊙g": "p⊙p⊙g", "p⊙p⊙⟨g,p⟩": "p⊙p⊙⟨g,p⟩", "p⊙g": "p⊙g", "p⊙⟨g,p⟩": "p⊙⟨g,p⟩",
                    "g": "g", "⟨g,p⟩": "⟨g,p⟩", "p⊙Σg": "p⊙Σ_j g_j", "p": "p",
                    "p⊙⟨g,p⟩ᵀ": "p⊙⟨g,p⟩ᵀ"}


def _softmax_terms(p: torch.Tensor, g: torch.Tensor) -> dict[str, torch.Tensor]:
    """The terms a softmax backward is made of, right ones first; their names say what each one is."""
    dot = (g * p).sum(-1, keepdim=True)  # ⟨g, p⟩ per row  (..., 1)
    terms = {"p⊙g": p * g, "p⊙⟨g,p⟩": p * dot, "g": g, "⟨g,p⟩": dot.expand_as(p), "p⊙Σg": p * g.sum(-1, True),
             "p⊙p⊙g": p * p * g, "p⊙p⊙⟨g,p⟩": p * p * dot}
    for axis in range(p.dim() - 1):
        if p.shape[axis] > 1:
            terms[f"p⊙Σ{axis}"] = p * (g * p).sum(axis, keepdim=True)
    if p.dim() >= 2 and p.shape[-1] == p.shape[-2]:
        terms["p⊙⟨g,p⟩ᵀ"] = p * dot.transpose(-2, -1)  # the row sums lined up along the last axis
    terms["p"] = p  # p ⊙ (a constant): a number subtracted in every row alike, e.g. a sum over every entry
    return terms


def _softmax_coefficient_message(coefficients: dict[str, float], T: int = 0, total: float = math.nan) -> str | None:
    expected = {"p⊙g": 1.0, "p⊙⟨g,p⟩": -1.0}
    display = {**_SOFTMAX_DISPLAY, **{n: f"p⊙Σ_axis{n[3:]}(p⊙g)" for n in coefficients if n[3:].isdigit()}}
    if all(is_close(coefficients.get(n, 0.0), expected.get(n, 0.0), 1e-4, 1e-6) for n in coefficients):
        return None
    m = multiplier(coefficients, expected)
    if m is not None:
        if is_close(m, -1.0, 1e-4):
            return "the sign is flipped: dL/ds = p ⊙ (g − ⟨g, p⟩) (eq. (1.5))."
        return None  # a constant factor: Exercise.compare names it
    yours = f"yours is {formula(coefficients, display)}; eq. (1.5) is p⊙g − p⊙⟨g,p⟩ (⟨g,p⟩ = Σ_j p_j g_j per row): "
    has = {n for n, c in coefficients.items() if abs(c) > 1e-6}
    if has == {"p⊙g", "p⊙⟨g,p⟩", "p⊙p⊙g", "p⊙p⊙⟨g,p⟩"} and is_close(coefficients["p⊙g"], 1.0, 1e-4) and \
            is_close(coefficients["p⊙⟨g,p⟩"], -1.0, 1e-4) and \
            is_close(coefficients["p⊙p⊙⟨g,p⟩"], -coefficients["p⊙p⊙g"], 1e-4):
        b = coefficients["p⊙p⊙g"]
        factor = f"1 {'−' if b < 0 else '+'} {'' if is_close(abs(b), 1.0, 1e-4) else f'{abs(b):.4g}·'}p"
        return yours + (f"that is eq. (1.5) times ({factor}): drop that factor. "
                        f"The p_j (1 − p_j) of the Jacobian's diagonal is already inside p ⊙ (g − ⟨g, p⟩).")
    if has & {"g", "⟨g,p⟩"}:
        return yours + "you forgot to multiply by p: dL/ds_j = p_j (g_j − Σ_i p_i g_i), every term carries p_j."
    if "p⊙Σg" in has:
        return yours + "the sum must be weighted by p: ⟨g, p⟩ = Σ_j p_j g_j, not Σ_j g_j."
    if "p⊙⟨g,p⟩ᵀ" in has:
        return yours + ("the row sums ⟨g, p⟩ are lined up along the last axis, so row i's sum lands in column i: "
                        "a sum without keepdim=True broadcasts that way. Keep the axis: "
                        "(grad_p * p).sum(dim=-1, keepdim=True).")
    if "p" in has:
        constant = -coefficients["p"]
        if is_close(constant, total, 1e-4) and "p⊙⟨g,p⟩" not in has:
            return yours + ("you summed over every entry (.sum() without dim): the same number for every row; "
                            "⟨g, p⟩ is one number per row: (grad_p * p).sum(dim=-1, keepdim=True).")
        return yours + (f"you subtract a constant {constant:.4g} from g in every row besides (or instead of) ⟨g,p⟩: "
                        f"the bracket of eq. (1.5) is g − ⟨g, p⟩ and nothing else.")
    wrong_axes = sorted(n[3:] for n in has if n[3:].isdigit())
    if wrong_axes:
        return yours + (f"you summed p⊙g over axis {', '.join(wrong_axes)}; the sum Σ_j p_j g_j runs over the softmax "
                        f"axis, dim=-1 (with keepdim=True so it broadcasts back).")
    if "p⊙p⊙⟨g,p⟩" in has:
        return yours + ("a factor p too many in the second term: dL/ds_j = p_j (g_j − ⟨g, p⟩), each term carries p_j "
                        "once (eq. (1.5)).")
    if "p⊙p⊙g" in has:
        return yours + ("you used only the diagonal of the Jacobian, J_jj = p_j (1 − p_j); its off-diagonal terms "
                        "J_ij = −p_i p_j matter too, and together they give p ⊙ (g − ⟨g, p⟩) (eqs. (1.4), (1.5)).")
    if "p⊙⟨g,p⟩" not in has and "p⊙g" in has:
        return yours + ("you kept only the diagonal of the Jacobian (eq. (1.4)), p_j g_j; its off-diagonal terms "
                        "−p_i p_j add −p ⊙ ⟨g, p⟩.")
    if has <= {"p⊙g", "p⊙⟨g,p⟩"}:
        said = [f"the coefficient of {display[n]} {coefficient_words(coefficients.get(n, 0.0), want, {'T': T})}"
                for n, want in expected.items() if not is_close(coefficients.get(n, 0.0), want, 1e-4, 1e-6)]
        return yours + "; ".join(said) + ". Eq. (1.5) subtracts ⟨g,p⟩ = Σ_j p_j g_j once, inside p ⊙ (g − ⟨g,p⟩)."
    return yours + "compare each term with eq. (1.5)."


def softmax_probes(p, g):
    """Probes for dL/ds: recovered coefficients, zero where p = 0, rows that sum to 0."""
    def coefficients(got):
        found = recovered_coefficients(got, _softmax_terms(p, g), {"p⊙g": 1.0, "p⊙⟨g,p⟩": -1.0})
        return _softmax_coefficient_message(found, p.shape[-1], (g * p).sum().item()) if found else None

    def bracket(got):
        """got = p ⊙ (g − c) with c = ⟨g,p⟩, one number per row: recover c = g − got/p and name it."""
        usable = p > 1e-8
        if p.shape[-1] < 2 or not usable.any():
            return None
        c = torch.where(usable, g.double() - got.double() / p.double().clamp_min(1e-300), math.nan)  # (..., T)
        right = (g * p).double().sum(-1)  # ⟨g, p⟩  (...)
        size = 1e-6 * (1 + c.nan_to_num().abs().max())
        spread = (c.nan_to_num(-math.inf).amax(-1) - c.nan_to_num(math.inf).amin(-1))  # (...) per row
        rows = usable.sum(-1) >= 2
        if not rows.any():
            return None
        if (spread[rows] > size).any():
            if p.dim() >= 2 and p.shape[-1] == p.shape[-2] and torch.allclose(
                    c.nan_to_num(), (g.double() @ p.double().mT).masked_fill(~usable, 0), atol=1e-6):
                return ("the number you subtract from g is g pᵀ, a (T, T) matrix of every row's g against every row's "
                        "p (a matrix product), so it changes along the row; ⟨g, p⟩ is one number per row: "
                        "(grad_p * p).sum(dim=-1, keepdim=True) (eq. (1.5)).")
            return None  # not p ⊙ (g − something per row): the other probes say more
        per_row = c.nan_to_num(0).sum(-1) / usable.sum(-1).clamp_min(1)  # (...)
        if torch.allclose(per_row[rows], right[rows], atol=1e-6, rtol=1e-6):
            return None
        candidates = {"Σ_j g_j (the sum of g, not weighted by p)": g.double().sum(-1),
                      "⟨g, g⟩ = Σ_j g_j² (g where p belongs)": (g.double() ** 2).sum(-1),
                      "Σ_j p_j = 1": p.double().sum(-1), "max_j g_j": g.double().amax(-1),
                      "the mean of g": g.double().mean(-1), "⟨g, p⟩ / T (a mean of p ⊙ g)": right / p.shape[-1]}
        for name, value in candidates.items():
            if torch.allclose(per_row[rows], value[rows], atol=1e-6, rtol=1e-6):
                return (f"yours is p ⊙ (g − c) with c = {name} in each row; eq. (1.5) subtracts ⟨g, p⟩ = "
                        f"Σ_j p_j g_j: (grad_p * p).sum(dim=-1, keepdim=True).")
        first = int(rows.flatten().nonzero()[0])
        return (f"yours is p ⊙ (g − c) with one number c per row, but c is not ⟨g, p⟩ = Σ_j p_j g_j (eq. (1.5)): "
                f"in row {first} you subtract {per_row.flatten()[first].item():.4g}, and ⟨g, p⟩ = "
                f"{right.flatten()[first].item():.4g}.")

    def zero_where_p_is_zero(got):
        where = (p == 0) & (got != 0)
        if where.any():
            first = [int(i) for i in where.nonzero()[0]]
            return (f"where p = 0 (a score of −∞, index {first}) dL/ds must be exactly 0, since every term of "
                    f"eq. (1.5) carries the factor p_j; yours is {got[tuple(first)].item():.3g} there.")
        return None

    def rows_sum_to_zero(got):
        sums = got.double().sum(-1)
        if (sums.abs() > 1e-5 * (1 + got.double().abs().sum(-1))).any():
            return (f"each row of dL/ds must sum to 0 (yours sum to up to {sums.abs().max().item():.3g}): adding "
                    f"one number to every score of a row changes no softmax, so J·1 = 0 (eq. (1.4)) and "
                    f"Σ_j p_j (g_j − ⟨g,p⟩) = ⟨g,p⟩ − ⟨g,p⟩ = 0. Compare with eq. (1.5).")
        return None

    return [coefficients, bracket, zero_where_p_is_zero, rows_sum_to_zero]


@one_thread
def check_softmax_backward(softmax_backward) -> None:
    """Exercise 1.2: ``softmax_backward(p, grad_p)`` returns dL/ds for p = softmax(s, dim=-1)."""
    for case in SOFTMAX_CASES:
        scores, grad_p = case.inputs()
        scores.requires_grad_()
        p = scores.softmax(dim=-1)
        (expected,) = torch.autograd.grad(p, scores, grad_p)  # PyTorch's own softmax backward
        p = p.detach()
        got = run_learner(EX_SOFTMAX_BACKWARD, softmax_backward, p.clone(), grad_p.clone(), case=case)
        compare_answer(EX_SOFTMAX_BACKWARD, got, expected, case, name="dL/ds", equation="eq. (1.5)",
                       probes=softmax_probes(p, grad_p))
    EX_SOFTMAX_BACKWARD.passed(f"{len(SOFTMAX_CASES)} cases (batched, square, masked zeros, a vector, a single "
                               f"entry) match PyTorch's softmax backward (torch.autograd.grad).")
