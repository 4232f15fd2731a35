"""Exercise 1.2 — the softmax backward pass, eq. (1.5)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from utils.checks.attention.coefficients import (
    coefficient_words,
    exchanged_inputs,
    fit_rows,
    formula,
    multiplier,
    recovered_coefficients,
)
from utils.checks.attention.common import (
    EX_SOFTMAX_BACKWARD,
    ChapterCase,
    compare_answer,
    is_close,
    run_learner,
    softmax_backward_reference,
)
from utils.checks.core import (
    Mistake,
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
    if has == {"g", "p⊙Σg"} and is_close(coefficients["g"], 1.0, 1e-4) and is_close(coefficients["p⊙Σg"], -1.0, 1e-4):
        return yours + ("that is the backward of log_softmax, g − p·Σ_j g_j (the gradient through log p), not of "
                        "softmax. The softmax's Jacobian is diag(p) − p pᵀ: dL/ds = p ⊙ (g − ⟨g, p⟩), the sum "
                        "weighted by p and every term multiplied by p.")
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


def softmax_probes(p, g, rows: Callable | None = None):
    """Probes for dL/ds: recovered coefficients, the bracket's number per row, zero where p = 0, rows that sum to 0.
    ``rows`` (:func:`rows_probe`) goes after the bracket's named readings and before its plain one."""
    def coefficients(got):
        found = recovered_coefficients(got, _softmax_terms(p, g), {"p⊙g": 1.0, "p⊙⟨g,p⟩": -1.0})
        return _softmax_coefficient_message(found, p.shape[-1], (g * p).sum().item()) if found else None

    def bracket(got, fallback: bool = True):
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
        if not fallback:
            return None
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

    replaced = replaced_total_probe(p, g)
    if rows is None:
        return [replaced, coefficients, bracket, zero_where_p_is_zero, rows_sum_to_zero]
    return [replaced, coefficients, lambda got: bracket(got, fallback=False), rows, bracket, zero_where_p_is_zero,
            rows_sum_to_zero]


def _replaced_totals(p: torch.Tensor, g: torch.Tensor) -> dict[str, torch.Tensor]:
    """⟨g, p⟩ = Σ_j p_j g_j per row, written as its neighbours: a running (cumulative) sum, a mean scaled by another
    axis's length, a sum over another axis, a row total laid out along the wrong axis. Name → what is subtracted."""
    pg = (p * g).double()
    last = p.shape[-1]
    found = {"a cumulative sum along the row, (p * g).cumsum(-1): entry j gets the partial sum Σ_{i≤j} p_i g_i, not "
             "the whole row's total": pg.cumsum(-1),
             "a cumulative sum from the end of the row, a partial sum instead of the whole row's total":
             pg.flip(-1).cumsum(-1).flip(-1)}
    for axis in range(p.dim() - 1):
        size = p.shape[axis]
        if size != last:
            found[f"the row's mean times p.shape[{axis}] = {size}, the length of axis {axis}, where the row length is "
                  f"T = p.shape[-1] = {last}"] = pg.mean(-1, keepdim=True) * size
    return found


def replaced_total_probe(p: torch.Tensor, g: torch.Tensor):
    """Eq. (1.5) with ⟨g, p⟩ replaced by one of its neighbours (:func:`_replaced_totals`): named exactly."""
    def probe(got):
        if not isinstance(got, torch.Tensor) or got.shape != p.shape:
            return None
        for name, total in _replaced_totals(p, g).items():
            wrong = p.double() * (g.double() - total)
            if wrong.shape == got.shape and torch.allclose(got.double(), wrong, atol=1e-6, rtol=1e-5):
                return (f"yours is p ⊙ (g − c) with c = {name}. Eq. (1.5) subtracts ⟨g, p⟩ = Σ_j p_j g_j, the "
                        f"total of each whole row: (grad_p * p).sum(dim=-1, keepdim=True).")
        return None
    return probe


def exchanged_probe(p, g):
    """Eq. (1.5) written with p and g in each other's roles: g ⊙ (p − ⟨g, p⟩)."""
    def probe(got):
        if exchanged_inputs(got, lambda p, g: softmax_backward_reference(p, g), {"p": p, "g": g}) is None:
            return None
        return ("yours is g ⊙ (p − ⟨g, p⟩): p and g (grad_p) are in each other's places in eq. (1.5). The softmax "
                "output p multiplies the bracket and the upstream gradient g sits inside it: "
                "p * (grad_p - (grad_p * p).sum(dim=-1, keepdim=True)).")
    return probe


ROW_TERMS = {"p⊙g": "p⊙g", "p": "p", "g": "g", "1": "1"}  # what each row of dL/ds may be made of


def _row_terms(p: torch.Tensor, g: torch.Tensor) -> dict[str, torch.Tensor]:
    return {"p⊙g": p * g, "p": p, "g": g, "1": torch.ones_like(p)}


def _row_statistics(p: torch.Tensor, g: torch.Tensor) -> dict[str, torch.Tensor]:
    """Numbers of a row that a learner's bracket may hold, by the name the message gives them."""
    return {"⟨g,p⟩": (g * p).sum(-1), "Σ_j g_j": g.sum(-1), "⟨p,p⟩": (p * p).sum(-1), "⟨g,g⟩": (g * g).sum(-1),
            "max_j g_j": g.amax(-1)}


def _row_formula(said: dict[str, str]) -> str:
    """"p⊙g − ⟨p,p⟩·Σ_j g_j" from the named coefficients of each term."""
    parts = []
    for term, coefficient in said.items():
        if coefficient == "0":
            continue
        negative = coefficient.startswith("−") or coefficient.startswith("-")
        size = coefficient.lstrip("−-")
        body = term if size == "1" else (size if term == "1" else f"{size}·{term}")
        parts.append(("− " if negative else "+ ") + body)
    text = " ".join(parts) or "0"
    return text[2:] if text.startswith("+ ") else "−" + text[2:]


def _row_reading(said: dict[str, str]) -> str:
    """What a row formula (each term's coefficient named) says against eq. (1.5): p⊙g − ⟨g,p⟩·p."""
    yours = (f"yours is {_row_formula(said)} in every row (read from your answer on a (6, 12) input); eq. (1.5) "
             f"is p⊙g − ⟨g,p⟩·p, with ⟨g,p⟩ = Σ_j p_j g_j one number per row: ")
    if said["g"] == "1" and said["p"] == "−Σ_j g_j" and said["p⊙g"] == "0":
        return yours + ("that is the backward of log_softmax, g − p·Σ_j g_j (the gradient through log p), not of "
                        "softmax. The softmax's Jacobian is diag(p) − p pᵀ: dL/ds = p ⊙ (g − ⟨g, p⟩), the sum "
                        "weighted by p and every term multiplied by p.")
    if said["1"] != "0" and said["p⊙g"] == "1" and said["p"] == "0" and "⟨p,p⟩" in said["1"]:
        return yours + (f"you subtract {said['1'].lstrip('−')} from every entry of a row: ⟨p, p⟩ is what "
                        f"p.unsqueeze(-2) @ p.unsqueeze(-1) gives, an inner product (one number). The Jacobian's "
                        f"−p pᵀ is an outer product, (…, T, T): p.unsqueeze(-1) * p.unsqueeze(-2) — or use eq. (1.5) "
                        f"directly, which needs no Jacobian.")
    if said["p⊙g"] == "1" and said["g"] == "0" and said["1"] == "0" and said["p"] not in ("−⟨g,p⟩", "0"):
        used = said["p"].lstrip("−")
        why = {"⟨p,p⟩": " (p where g belongs in the dot product)", "Σ_j g_j": " (the sum of g, not weighted by p)",
               "⟨g,g⟩": " (g where p belongs in the dot product)"}.get(used, "")
        return yours + (f"you subtract {used}{why} where ⟨g, p⟩ = Σ_j p_j g_j belongs: "
                        f"(grad_p * p).sum(dim=-1, keepdim=True).")
    wrong = [term for term, right in {"p⊙g": "1", "p": "−⟨g,p⟩", "g": "0", "1": "0"}.items() if said[term] != right]
    return yours + "the term" + ("s " if len(wrong) > 1 else " ") + ", ".join(
        f"{term} (coefficient {said[term]})" for term in wrong) + " differ from eq. (1.5)."


def rows_probe(softmax_backward):
    """Run the learner's function on a (6, 12) input (more entries per row than terms) and name each term's
    coefficient in every row: a number, or a statistic of the row (⟨p,p⟩, Σ_j g_j, …), or a product of two."""
    def probe(got):
        scores = EX_SOFTMAX_BACKWARD.randn(6, 12, key="rows", dtype=torch.float64) * 1.5
        p, g = scores.softmax(-1), EX_SOFTMAX_BACKWARD.randn(6, 12, key="rows g", dtype=torch.float64)
        try:
            again = softmax_backward(p.clone(), g.clone())
        except Exception:  # noqa: BLE001 - a probe that cannot run says nothing
            return None
        if not isinstance(again, torch.Tensor) or again.shape != p.shape or not torch.isfinite(again).all():
            return None
        fit = fit_rows(again, _row_terms(p, g), _row_statistics(p, g))
        if fit is None or set(fit.said.values()) == {"0"} or \
                fit.said == {"p⊙g": "1", "p": "−⟨g,p⟩", "g": "0", "1": "0"}:
            return None
        return _row_reading(fit.said)
    return probe


def _jacobian_times_a_matrix(got, p: torch.Tensor, g: torch.Tensor) -> str | None:
    """J @ g with J = diag(p) − p pᵀ (…, T, T) and g (…, T): matmul takes g as a matrix, not one vector per row."""
    if not isinstance(got, torch.Tensor) or got.shape == p.shape or p.dim() < 2:
        return None
    jacobian = torch.diag_embed(p.double()) - p.double()[..., :, None] * p.double()[..., None, :]
    try:
        product = jacobian @ g.double()
    except RuntimeError:
        return None
    if product.shape != got.shape or not torch.allclose(got.double(), product, atol=1e-6, rtol=1e-5):
        return None
    return (f"shape {tuple(got.shape)} where p is {tuple(p.shape)}: yours is J @ grad_p with the Jacobian J (…, T, T) "
            f"and grad_p (…, T), which matmul multiplies as a matrix, not as one vector per row. Make each row a "
            f"column, (J @ grad_p.unsqueeze(-1)).squeeze(-1) — or use eq. (1.5), p ⊙ (g − ⟨g, p⟩), which needs no "
            f"Jacobian.")


def _transformed_inputs(p: torch.Tensor, grad_p: torch.Tensor):
    """Eq. (1.5) computed right, on an input the code changed first: an exact match says which (a generator: only
    a wrong answer pays for it)."""
    yield Mistake(softmax_backward_reference(p.softmax(dim=-1), grad_p),
                  "yours is eq. (1.5) computed with softmax(p) in place of p: p is already the softmax's output "
                  "(p = softmax(s)), so do not apply softmax to it again — use p as it is, "
                  "p * (grad_p - (grad_p * p).sum(dim=-1, keepdim=True)).")
    yield Mistake(softmax_backward_reference(p, grad_p.softmax(dim=-1)),
                  "yours is eq. (1.5) computed with softmax(grad_p) in place of grad_p: the upstream gradient g is "
                  "used as it is; only p came out of a softmax.")


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
        matrix = _jacobian_times_a_matrix(got, p, grad_p)
        if matrix:
            raise EX_SOFTMAX_BACKWARD.fail(matrix, case=case, name="dL/ds")
        compare_answer(EX_SOFTMAX_BACKWARD, got, expected, case, name="dL/ds", equation="eq. (1.5)",
                       mistakes=_transformed_inputs(p, grad_p),
                       probes=[exchanged_probe(p, grad_p), *softmax_probes(p, grad_p, rows_probe(softmax_backward))])
    EX_SOFTMAX_BACKWARD.passed(f"{len(SOFTMAX_CASES)} cases (batched, square, masked zeros, a vector, a single "
                               f"entry) match PyTorch's softmax backward (torch.autograd.grad).")
