"""Exercise 1.3 — attention as a torch.autograd.Function, eqs. (1.7)–(1.9)."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

import torch
from torch.autograd.gradcheck import GradcheckError

from utils.checks.attention.coefficients import (
    coefficient_words,
    exchanged_inputs,
    formula,
    multiplier,
    recovered_coefficients,
)
from utils.checks.attention.common import (
    BATCH_AXES,
    EX_FUNCTION,
    INVALID_GRADIENT,
    ChapterCase,
    broadcast_sizes,
    compare_answer,
    is_close,
    matmul_inner_sizes,
    reference_attention_weights,
    run_learner,
    softmax_backward_reference,
)
from utils.checks.attention.quantities import D_K, D_Q, D_V, FUNCTION, FUNCTION_PRODUCTS
from utils.checks.attention.roles import Roles, variable_reading
from utils.checks.attention.softmax_backward import softmax_probes
from utils.checks.attention.weights import WeightsFacts, recover_weights, weights_facts, weights_problem
from utils.checks.core import (
    Mistake,
    fit_linear,
    name_value,
    named_size,
    one_thread,
)


@dataclass(frozen=True)
class FunctionCase(ChapterCase):
    batch: tuple = ()
    Tq: int = 1
    Tk: int = 1
    d_k: int = 1
    d_v: int = 1

    @property
    def layout(self) -> str:
        return "q (..., Tq, d_k), k (..., Tk, d_k), v (..., Tk, d_v)"

    @property
    def roles(self) -> Roles:
        return Roles(FUNCTION, FUNCTION_PRODUCTS, self.sizes)

    @property
    def sizes(self) -> dict[str, int]:
        return {**dict(zip(BATCH_AXES, self.batch)), "Tq": self.Tq, "Tk": self.Tk, "d_k": self.d_k, "d_v": self.d_v}

    def own_reading(self, error: BaseException, line: str) -> str | None:
        sizes = broadcast_sizes(error)
        if sizes == {self.d_v, self.Tk} and self.d_v != self.Tk:
            return (f"One tensor has {named_size(self.Tk, self.sizes)} entries where the other has "
                    f"{named_size(self.d_v, self.sizes)}: the softmax backward (eq. (1.8)) takes P and dP = dO Vᵀ, "
                    f"both (…, Tq, Tk) — dO itself is (…, Tq, d_v) (eq. (1.7)).")
        if sizes == {self.Tq, self.Tk} and self.Tq != self.Tk:
            return (f"A (…, Tk, Tq) tensor met a (…, Tq, Tk) one ({named_size(self.Tq, self.sizes)}, "
                    f"{named_size(self.Tk, self.sizes)}): P, dP = dO Vᵀ and dS are all (…, Tq, Tk), like the scores "
                    f"(eqs. (1.7), (1.8)) — one of them is transposed (V dOᵀ is dPᵀ).")
        return self._gradient_order(error) or self._product(error)

    def _shapes(self) -> dict[str, tuple]:
        return {"q": (*self.batch, self.Tq, self.d_k), "k": (*self.batch, self.Tk, self.d_k),
                "v": (*self.batch, self.Tk, self.d_v)}

    def _gradient_order(self, error: BaseException) -> str | None:
        """backward returned a gradient with another input's shape: name whose gradient it looks like."""
        match = INVALID_GRADIENT.search(str(error))
        if not match:
            return None
        index, got = int(match.group(1)), tuple(int(n) for n in re.findall(r"\d+", match.group(2)))
        names = list(self._shapes())
        if index >= 3:
            return None
        layout = {"q": ("Tq", "d_k"), "k": ("Tk", "d_k"), "v": ("Tk", "d_v")}
        mine = self._shapes()[names[index]]
        if len(got) >= 2 and got == (*mine[:-2], mine[-1], mine[-2]) and mine[-1] != mine[-2]:
            rows, width = layout[names[index]]
            return (f"backward's gradient number {index}, d{names[index].upper()}, is transposed: ({width}, {rows}) "
                    f"where {names[index]} is ({rows}, {width}). Each gradient has its input's shape: "
                    + {"q": "dQ = c·dS K", "k": "dK = c·dSᵀ Q", "v": "dV = Pᵀ dO"}[names[index]]
                    + " (eqs. (1.7), (1.9)).")
        owners = [name for name, shape in self._shapes().items() if shape == got and name != names[index]]
        if len(owners) != 1:
            gradient = (D_Q, D_K, D_V)[index]
            found = variable_reading(f"backward's gradient number {index}, {gradient.symbol},", got, gradient,
                                     self.roles)
            return f"{found[0].upper()}{found[1:]}: each gradient has its input's shape." if found else None
        axes = ", ".join(("B", "H")[:len(self.batch)] + layout[owners[0]])
        return (f"backward's gradient number {index} has the shape of {owners[0]}, ({axes}): it looks like "
                f"d{owners[0].upper()}, returned where d{names[index].upper()} belongs. backward returns the "
                f"gradients in the order forward took its inputs: return dQ, dK, dV.")

    def _product(self, error: BaseException) -> str | None:
        """A matrix product whose inner sizes do not meet, read in terms of eqs. (1.7)–(1.9)."""
        inner = matmul_inner_sizes(error)
        if inner is None:
            return None
        names = {}
        for name, size in self.sizes.items():
            names.setdefault(size, []).append(name)
        left, right = (names.get(n, []) for n in inner)
        if len(left) != 1 or len(right) != 1:
            return None
        pair = (left[0], right[0])
        pairing = ("P and dS, (…, Tq, Tk), multiply V and K, which have Tk rows (O = P V, dQ = c·dS K); Pᵀ and dSᵀ, "
                   "(…, Tk, Tq), multiply dO and Q, which have Tq rows (dV = Pᵀ dO, dK = c·dSᵀ Q) (eqs. (1.7), (1.9))")
        if pair == ("Tk", "Tq"):
            return (f"A (…, Tq, Tk) matrix, P or dS, multiplies a tensor with Tq rows, dO or Q: a transpose is "
                    f"missing, or the other operand is the wrong one. {pairing}.")
        if pair == ("Tq", "Tk"):
            return (f"A (…, Tk, Tq) matrix, Pᵀ or dSᵀ, multiplies a tensor with Tk rows, V or K: a transpose too "
                    f"many, or the other operand is the wrong one. {pairing}.")
        if set(pair) == {"d_v", "d_k"}:
            return ("A tensor of width d_v (dO or V) meets one of width d_k (Q or K): dP = dO Vᵀ pairs dO with V "
                    "(eq. (1.7)); dQ = c·dS K and dK = c·dSᵀ Q (eq. (1.9)) use K and Q.")
        if pair == ("d_v", "Tk"):
            return "dP = dO Vᵀ (eq. (1.7)): V needs its transpose, (…, d_v, Tk)."
        return None

    def inputs(self):
        shapes = {"q": (self.Tq, self.d_k), "k": (self.Tk, self.d_k), "v": (self.Tk, self.d_v),
                  "dO": (self.Tq, self.d_v)}
        return [EX_FUNCTION.randn(*self.batch, *shape, key=(self.label, name), dtype=self.dtype)
                for name, shape in shapes.items()]


FUNCTION_CASES = [
    FunctionCase("cross-attention, B=2, Tq=5, Tk=3, d_k=4, d_v=6", torch.float64, batch=(2,), Tq=5, Tk=3, d_k=4,
                 d_v=6),
    FunctionCase("self-attention, B=2, H=2, T=5, d_k=d_v=4", torch.float64, batch=(2, 2), Tq=5, Tk=5, d_k=4, d_v=4),
    FunctionCase("T=1", torch.float64, batch=(1, 1), Tq=1, Tk=1, d_k=3, d_v=3),
    FunctionCase("float32, B=2, T=8, d_k=16, d_v=12", batch=(2, 1), Tq=8, Tk=8, d_k=16, d_v=12),
]


def _attention_gradients(q, k, v, grad_out):
    """The output of softmax(Q Kᵀ/√d_k) V and dL/dQ, dL/dK, dL/dV, by autograd."""
    q, k, v = (t.detach().requires_grad_() for t in (q, k, v))
    out = reference_attention_weights(q, k) @ v
    return out.detach(), torch.autograd.grad(out, (q, k, v), grad_out)


def _gradient_terms(q, k, v, grad_out):
    """The terms dQ and dK are made of (eqs. (1.7)–(1.9)), as (terms of dQ, terms of dK), float64."""
    q, k, v, grad_out = (t.detach().double() for t in (q, k, v, grad_out))
    p = reference_attention_weights(q, k)  # (..., Tq, Tk)
    grad_p = grad_out @ v.transpose(-2, -1)  # dP, eq. (1.7)
    pieces = {"P⊙dP": p * grad_p, "P⊙⟨dP,P⟩": p * (grad_p * p).sum(-1, keepdim=True),
              "P⊙ΣdP": p * grad_p.sum(-1, keepdim=True), "dP": grad_p}
    dq_terms = {name: piece @ k for name, piece in pieces.items()}
    dk_terms = {name: piece.transpose(-2, -1) @ q for name, piece in pieces.items()}
    if q.shape == k.shape:  # a transpose too many or too few, or the other operand: shapes fit only if Tq = Tk
        dq_terms.update({f"{name}ᵀ": pieces[name].transpose(-2, -1) @ k for name in ("P⊙dP", "P⊙⟨dP,P⟩")})
        dk_terms.update({f"{name}ᵀ": pieces[name] @ q for name in ("P⊙dP", "P⊙⟨dP,P⟩")})
        dq_terms.update({f"{name}·other": pieces[name] @ q for name in ("P⊙dP", "P⊙⟨dP,P⟩")})
        dk_terms.update({f"{name}·other": pieces[name].transpose(-2, -1) @ k for name in ("P⊙dP", "P⊙⟨dP,P⟩")})
    return dq_terms, dk_terms


SIZE_SOURCES = {"d_v": "v.shape[-1], the width of the values", "Tk": "k.shape[-2], the number of keys",
                "Tq": "q.shape[-2], the number of queries"}


def _gradient_probe(name: str, terms: dict[str, torch.Tensor], case: FunctionCase):
    """dQ = c·(P⊙dP − P⊙⟨dP,P⟩)·K (and dK likewise), c = 1/√d_k: which coefficient is off (eqs. (1.8), (1.9))."""
    d_k = case.d_k
    c = 1 / math.sqrt(d_k)
    expected = {"P⊙dP": c, "P⊙⟨dP,P⟩": -c}
    product = "K" if name == "dQ" else "Q"
    display = {"P⊙dP": f"(P⊙dP){'' if name == 'dQ' else 'ᵀ'}{product}",
               "P⊙⟨dP,P⟩": f"(P⊙⟨dP,P⟩){'' if name == 'dQ' else 'ᵀ'}{product}",
               "P⊙ΣdP": f"(P⊙Σ_j dP_j){'' if name == 'dQ' else 'ᵀ'}{product}",
               "dP": f"dP{'' if name == 'dQ' else 'ᵀ'}{product}",
               "P⊙dPᵀ": f"(P⊙dP){'ᵀ' if name == 'dQ' else ''}{product}",
               "P⊙⟨dP,P⟩ᵀ": f"(P⊙⟨dP,P⟩){'ᵀ' if name == 'dQ' else ''}{product}",
               "P⊙dP·other": f"(P⊙dP){'' if name == 'dQ' else 'ᵀ'}{'Q' if name == 'dQ' else 'K'}",
               "P⊙⟨dP,P⟩·other": f"(P⊙⟨dP,P⟩){'' if name == 'dQ' else 'ᵀ'}{'Q' if name == 'dQ' else 'K'}"}
    upstream = f"{name} goes through your softmax_backward: does it pass the check of Exercise 1.2?"

    def probe(got):
        found = recovered_coefficients(got, terms, expected)
        if found is None:
            return None
        if all(is_close(found.get(n, 0.0), expected.get(n, 0.0), 1e-4, 1e-9) for n in found):
            return None
        yours = f"yours is {formula(found, display)}; eq. (1.9) with dS of eq. (1.8) is c·{display['P⊙dP']} − " \
                f"c·{display['P⊙⟨dP,P⟩']}, c = 1/√d_k = {c:.4g}: "
        m = multiplier(found, expected)
        if m is not None:
            factor = m * c  # the learner's c
            named = name_value(factor, {"1": 1.0, "√d_k": math.sqrt(d_k), "d_k": d_k, "√Tk": math.sqrt(case.Tk),
                                        "√Tq": math.sqrt(case.Tq), "√d_v": math.sqrt(case.d_v)})
            if named == "1":
                return yours + (f"{name} is missing the 1/√d_k that the forward pass applied to the scores "
                                f"(eq. (1.9)).")
            if named == "1/d_k":
                return yours + f"{name} has the factor 1/√d_k twice (1/d_k): apply it once (eq. (1.9))."
            if named and named.startswith("−"):
                return yours + f"the sign of {name} is flipped (eq. (1.9))."
            if named == "√d_k":  # c⁻¹ where c belongs: the scale divided by instead of multiplied by
                return yours + (f"{name}'s factor is {factor:.4g} (= √d_k): {name} is divided by the scale c = "
                                f"1/√d_k instead of multiplied by it, so it is d_k times too large: multiply by c "
                                f"(eq. (1.9)).")
            size = next((s for s in SIZE_SOURCES if named and named.endswith(s) and s != "d_k"), None)
            if size:  # the scale of another size of the case: say where the code read it
                return yours + (f"{name}'s factor is {factor:.4g} = {named}, from {size} = {SIZE_SOURCES[size]}; "
                                f"eq. (1.9) has c = 1/√d_k, d_k = q.shape[-1] (the width of q and k, the scale the "
                                f"forward applied to the scores): use d_k, not {size}.")
            return yours + f"{name}'s factor is {factor:.4g}" + (f" (= {named})" if named else "") + \
                "; eq. (1.9) has 1/√d_k, from the scale of the scores (d_k is the width of q and k)."
        has = {n for n, value in found.items() if abs(value) > 1e-6}
        if has & {"P⊙dP·other", "P⊙⟨dP,P⟩·other"}:
            right, wrong = ("K", "Q") if name == "dQ" else ("Q", "K")
            transpose = "" if name == "dQ" else "ᵀ"
            return yours + (f"{name} multiplies dS by {wrong}; it is {right}: {name} = c·dS{transpose}·{right} "
                            f"(eq. (1.9)) — the gradient of q_i · k_j with respect to one is the other.")
        if has & {"P⊙dPᵀ", "P⊙⟨dP,P⟩ᵀ"}:
            right = "dQ = c·dS·K" if name == "dQ" else "dK = c·dSᵀ·Q"
            return yours + (f"dS is {'transposed' if name == 'dQ' else 'not transposed'} where it should "
                            f"{'not ' if name == 'dQ' else ''}be: {right} (eq. (1.9), from the lemma (1.6) "
                            f"applied to S = c·QKᵀ).")
        if "P⊙⟨dP,P⟩" not in has and has <= {"P⊙dP"}:
            return yours + ("dS must go through the full softmax backward of eq. (1.8) (your softmax_backward of "
                            "Exercise 1.2), not just P ⊙ dP: it subtracts P ⊙ ⟨dP, P⟩.")
        if has <= {"P⊙dP", "P⊙⟨dP,P⟩"} and is_close(found.get("P⊙dP", 0.0), c, 1e-4):
            sizes = {"Tk": case.Tk, "Tq": case.Tq, "d_k": d_k, "d_v": case.d_v}
            return yours + (f"the coefficient of {display['P⊙⟨dP,P⟩']} "
                            f"{coefficient_words(found.get('P⊙⟨dP,P⟩', 0.0), -c, sizes)}. {upstream}")
        return yours + upstream

    return probe


def _dp_message(ds: torch.Tensor, p: torch.Tensor, candidates: dict[str, torch.Tensor]) -> str | None:
    """dS = P ⊙ (dP − one number per row) (eq. (1.8)), so dS/P, centred in each row, is dP centred: name the
    product the learner used for dP when it is another one."""
    if (p <= 1e-8).any() or p.shape[-1] < 2:
        return None
    x = ds / p
    centred = x - x.mean(-1, keepdim=True)
    for name, candidate in candidates.items():
        if candidate.shape != x.shape:
            continue
        want = candidate - candidate.mean(-1, keepdim=True)
        fit = fit_linear(centred, {"dP": want})
        if fit.residual < 1e-6 and is_close(fit.coefficients["dP"], 1.0, 1e-4):
            return None if name == "dO Vᵀ" else (
                f"the dP it differentiates is {name}; eq. (1.7) has dP = dO Vᵀ, (…, Tq, Tk) like P: "
                f"grad_out @ v.transpose(-2, -1).")
    return None


def _read_ds(name: str, got, q, k, v, grad_out) -> str | None:
    """Recover the dS inside the learner's dQ = c·dS·K (or dK = c·dSᵀ·Q) when K's (Q's) rows are independent, and
    read it: which dP it differentiates (eq. (1.7)), then as the softmax backward of eq. (1.8) with p = P and
    g = dP (the probes of Exercise 1.2). None when it cannot be recovered or looks right."""
    q, k, v, grad_out, got = (t.detach().double() for t in (q, k, v, grad_out, got))
    p = reference_attention_weights(q, k)  # (..., Tq, Tk)
    grad_p = grad_out @ v.mT  # dP = dO Vᵀ  (..., Tq, Tk)
    d_k = q.shape[-1]
    candidates = {"dO Vᵀ": grad_p, "V dOᵀ, transposed": v @ grad_out.mT, "dO itself, without Vᵀ": grad_out}
    operand = k if name == "dQ" else q
    if operand.shape[-2] > d_k or operand.shape[-2] < 2:
        return None
    recovered = recover_weights(got, operand)  # c·dS (dQ) or c·dSᵀ (dK)
    if recovered is None:
        return None
    ds = (recovered if name == "dQ" else recovered.mT) * math.sqrt(d_k)  # (..., Tq, Tk)
    if exchanged_inputs(ds, softmax_backward_reference, {"p": p, "grad_p": grad_p}, tolerance=1e-5):
        return ("it is eq. (1.8) with P and dP in each other's places, dP ⊙ (P − ⟨dP, P⟩): softmax_backward takes the "
                "weights first, softmax_backward(p, grad_p), with grad_p = dO Vᵀ.")
    found = _dp_message(ds, p, candidates)
    if found:
        return found
    for softmax_probe in softmax_probes(p, grad_p)[:3]:  # ⟨g,p⟩ replaced, recovered coefficients, bracket
        found = softmax_probe(ds)
        if found:
            return (f"read as the softmax backward of eq. (1.8) with p = P and g = dP = dO Vᵀ, {found}"
                    .replace("axis 1;", "the queries axis (axis 1);" if p.dim() == 3 else "axis 1;"))
    return None


def _ds_probe(name: str, apply, q, k, v, grad_out, case: FunctionCase):
    """dQ = c·dS·K and dK = c·dSᵀ·Q (eq. (1.9)): the learner's dS, recovered from their gradient (:func:`_read_ds`)
    on this case's inputs, or — when its widths are too small to recover it — on inputs with the same batch, Tq and
    Tk but wider q, k and v."""
    formula = "c·dS·K" if name == "dQ" else "c·dSᵀ·Q"
    rows = case.Tk if name == "dQ" else case.Tq

    def probe(got):
        if rows <= case.d_k:
            found = _read_ds(name, got, q, k, v, grad_out)
            return f"the dS inside your {name} = {formula} (recovered from it): {found}" if found else None
        d_k = max(case.Tq, case.Tk) + 1
        shapes = {"q": (case.Tq, d_k), "k": (case.Tk, d_k), "v": (case.Tk, d_k + 1), "dO": (case.Tq, d_k + 1)}
        wide = [EX_FUNCTION.randn(*case.batch, *shape, key=("wide", case.label, n), dtype=torch.float64)
                for n, shape in shapes.items()]
        leaves = [t.clone().requires_grad_() for t in wide[:3]]
        try:
            apply(*leaves).backward(wide[3])
        except Exception:  # noqa: BLE001 - a probe that cannot run says nothing
            return None
        gradient = leaves[0 if name == "dQ" else 1].grad
        if gradient is None or gradient.shape != leaves[0 if name == "dQ" else 1].shape:
            return None
        found = _read_ds(name, gradient, *wide)
        return (f"the dS inside your {name} = {formula} (recovered from it, on an input with d_k = {d_k} and d_v = "
                f"{d_k + 1}, wide enough for that): {found}") if found else None
    return probe


def _output_facts(q, k, upstream: str) -> WeightsFacts:
    return weights_facts(q, k, None, who="the weights inside your output", upstream=upstream)


def _weighted_average_probe(q, k, v, facts: WeightsFacts, what: str):
    """An attention output is a weighted average of the rows of V (O = PV): recover the weights (Tk ≤ d_v) and
    diagnose them; or say that the output is not a combination of V's rows at all."""
    def probe(got):
        if v.shape[-2] > v.shape[-1]:
            return None
        weights = recover_weights(got, v)
        if weights is None:
            return (f"{what} is not a weighted sum of the rows of V (its rows leave the span of V's rows): "
                    f"O = P V (eq. (1.1)), the weights times the values — not times K, nor Vᵀ.")
        return weights_problem(weights, facts)
    return probe


@one_thread
def check_attention_function(AttentionFunction) -> None:
    """Exercise 1.3: forward and backward of attention as a ``torch.autograd.Function``, then ``gradcheck``."""
    apply = getattr(AttentionFunction, "apply", None)
    if not callable(apply) or not isinstance(AttentionFunction, type) or \
            not issubclass(AttentionFunction, torch.autograd.Function):
        raise EX_FUNCTION.fail("AttentionFunction must be a subclass of torch.autograd.Function (keep `class "
                               "AttentionFunction(torch.autograd.Function)` and its two @staticmethods), so that "
                               "AttentionFunction.apply(q, k, v) runs your forward and your backward.")
    for case in FUNCTION_CASES:
        q, k, v, grad_out = case.inputs()
        expected_out, (dq, dk, dv) = _attention_gradients(q, k, v, grad_out)
        leaves = [t.clone().requires_grad_() for t in (q, k, v)]
        out = run_learner(EX_FUNCTION, apply, *leaves, what="AttentionFunction.forward", case=case)
        upstream = "Your forward uses your attention_weights: does it pass the check of Exercise 1.1?"
        compare_answer(EX_FUNCTION, out, expected_out, case, name="forward output", equation="eq. (1.1), O = PV",
                       axes=(*BATCH_AXES[:len(case.batch)], "Tq", "d_v"),
                       probes=[_weighted_average_probe(q, k, v, _output_facts(q, k, upstream),
                                                       "your forward output")])
        run_learner(EX_FUNCTION, out.backward, grad_out, what="AttentionFunction.backward", case=case)
        dq_terms, dk_terms = _gradient_terms(q, k, v, grad_out)
        _, (dq_o, dk_o, dv_o) = _attention_gradients(q, k, v, expected_out.detach())  # dO replaced by O
        output = ("backward used the forward output O instead of the upstream gradient dO: it matches eq. "
                  "(1.9) computed with dO = O. The gradient arriving in backward(ctx, grad_out) is grad_out = dO "
                  "= ∂L/∂O; use it in {} (O itself need not be saved).")
        square = q.shape == k.shape == v.shape  # some mix-ups only keep the shapes right when Tq = Tk
        gradients = [
            ("dL/dV", leaves[2], dv, "eq. (1.7), dV = Pᵀ dO",
             [_dv_weights_probe(q, k, v, grad_out, dv), _dv_rows_probe(grad_out, dv)],
             [Mistake(reference_attention_weights(q, k) @ grad_out, "dV = Pᵀ · dO (eq. (1.7)): the attention "
                                                                    "weights need a transpose.") if square else None,
              Mistake(dv_o, output.format("dV = Pᵀ dO"))]),
            ("dL/dQ", leaves[0], dq, "eq. (1.9), dQ = c·dS·K",
             [_gradient_probe("dQ", dq_terms, case), _ds_probe("dQ", apply, q, k, v, grad_out, case),
              _dq_scores_probe(k, case)],
             [Mistake(dk, "you returned dK where dQ belongs: backward returns gradients in the order forward took "
                          "its inputs, (q, k, v).") if square else None,
              Mistake(dq_o, output.format("dP = dO Vᵀ"))]),
            ("dL/dK", leaves[1], dk, "eq. (1.9), dK = c·dSᵀ·Q",
             [_gradient_probe("dK", dk_terms, case), _ds_probe("dK", apply, q, k, v, grad_out, case),
              _dk_sum_probe()],
             [Mistake(dq, "you returned dQ where dK belongs: backward returns gradients in the order forward took "
                          "its inputs, (q, k, v).") if square else None,
              Mistake(dk_o, output.format("dP = dO Vᵀ"))]),
        ]
        for name, leaf, expected, equation, probes, mistakes in gradients:
            if leaf.grad is None:
                raise EX_FUNCTION.fail(f"backward returned None for {name}; return a gradient for each input of "
                                       f"forward, in order (q, k, v).", case=case)
            compare_answer(EX_FUNCTION, leaf.grad, expected, case, name=name, equation=equation, probes=probes,
                           mistakes=mistakes, factors={"√d_k": math.sqrt(case.d_k)},
                           axes=(*BATCH_AXES[:len(case.batch)], "T", "d"))
    _gradcheck(apply)
    EX_FUNCTION.passed(f"forward and dL/dQ, dL/dK, dL/dV match autograd on {len(FUNCTION_CASES)} cases (Tq ≠ Tk, "
                       f"d_v ≠ d_k, T=1, float32), and torch.autograd.gradcheck confirms your backward in float64.")


def _dv_weights_probe(q, k, v, grad_out, dv):
    """dV = Pᵀ dO: where dO's rows are independent (Tq ≤ d_v) the P inside the learner's dV is recovered and
    diagnosed as attention weights (a P recomputed without the scale, or over the wrong axis, shows there) — or
    found to be dS, the scores' gradient."""
    facts = weights_facts(q, k, None, who="the weights inside your dV (dV = Pᵀ dO)", equation="eq. (1.7)",
                           upstream="dV uses the P of the forward pass, as saved in ctx.")
    q64, k64, v64, grad_out64 = (t.detach().double() for t in (q, k, v, grad_out))
    p = reference_attention_weights(q64, k64)
    grad_s = softmax_backward_reference(p, grad_out64 @ v64.mT)  # dS without the scale c  (..., Tq, Tk)

    def probe(got):
        if recovered_coefficients(got, {"PᵀdO": dv}, {"PᵀdO": 1.0}) is not None:
            return None  # only a constant factor off: Exercise.compare names it
        transposed = recover_weights(got, grad_out)  # Pᵀ  (..., Tk, Tq)
        if transposed is None:
            return None
        if fit_linear(transposed.mT, {"dS": grad_s}).exact:
            return ("your dV multiplies dO by dSᵀ, the gradient of the scores, where the weights belong: dV = Pᵀ dO "
                    "(eq. (1.7)), with the P of the forward pass.")
        found = weights_problem(transposed.transpose(-2, -1), facts)
        return found and found + (" Your forward's output is right, so this P is not forward's: if your backward "
                                  "recomputes P, it must compute it exactly as forward does (or save forward's P "
                                  "with ctx.save_for_backward and use that).")
    return probe


def _dv_rows_probe(grad_out, dv):
    """1ᵀ dV = 1ᵀ dO: the rows of dV add up to those of dO (said unless dV is only off by a constant factor,
    which Exercise.compare names)."""
    def probe(got):
        if recovered_coefficients(got, {"PᵀdO": dv}, {"PᵀdO": 1.0}) is not None:
            return None
        want = grad_out.double().sum(-2)  # Σ_i dO_i  (..., d_v)
        if not torch.allclose(got.double().sum(-2), want, atol=1e-5, rtol=1e-4):
            return ("the rows of your dV do not add up to those of dO: each row of P sums to 1, so "
                    "1ᵀ dV = 1ᵀ Pᵀ dO = (P 1)ᵀ dO = 1ᵀ dO. dV = Pᵀ dO (eq. (1.7)): the weights, transposed, times dO.")
        return None
    return probe


def _dq_scores_probe(k, case: FunctionCase):
    """dQ = c·dS·K: where the keys' rows are independent (Tk ≤ d_k) the c·dS inside the learner's dQ is recovered;
    each of its rows must sum to 0 (eq. (1.8): adding a constant to a row of scores changes nothing)."""
    def probe(got):
        if case.Tk > case.d_k or case.Tk < 2:
            return None
        scaled = recover_weights(got, k)  # c·dS  (..., Tq, Tk)
        if scaled is None:
            return ("your dQ is not a combination of the keys' rows: dQ = c·dS·K (eq. (1.9)), each row of dQ a "
                    "weighted sum of the keys k_j.")
        sums = scaled.sum(-1)
        if sums.abs().max() > 1e-6 * (1 + scaled.abs().sum(-1).max()):
            return (f"the dS inside your dQ = c·dS·K has rows that do not sum to 0 (up to {sums.abs().max():.3g}): "
                    f"the softmax backward of eq. (1.8) gives rows that sum to 0, since adding a constant to a row of "
                    f"scores changes nothing. dQ goes through your softmax_backward: does it pass the check of "
                    f"Exercise 1.2?")
        return None
    return probe


def _dk_sum_probe():
    def probe(got):
        total = got.double().sum(-2)  # Σ_j dK_j  (..., d_k)
        if total.abs().max() > 1e-5 * (1 + got.double().abs().sum(-2).max()):
            return ("the gradients of the keys must sum to 0 over the keys (yours sum to up to "
                    f"{total.abs().max().item():.3g}): moving every key by the same vector u adds q·u to every "
                    "score of a row and changes no weight. In dK = c·dSᵀQ (eq. (1.9)) that is because each row of dS "
                    "sums to 0 (eq. (1.8)): dS must be the full softmax backward.")
        return None
    return probe


def _gradcheck_problem(apply, inputs) -> str | None:
    """Run gradcheck; its verdict as text (GradcheckError), None when it passes. Other errors are the learner's."""
    try:
        torch.autograd.gradcheck(apply, inputs, eps=1e-6, atol=1e-5)
    except GradcheckError as error:
        return str(error)
    return None


def _gradcheck(apply) -> None:
    # q (1, 2, 3, 4), k (1, 2, 2, 4), v (1, 2, 2, 5): Tq ≠ Tk and d_v ≠ d_k here too
    shapes = {"q": (1, 2, 3, 4), "k": (1, 2, 2, 4), "v": (1, 2, 2, 5)}
    inputs = tuple(EX_FUNCTION.randn(*shape, key=("gradcheck", name), dtype=torch.float64).requires_grad_()
                   for name, shape in shapes.items())
    problem = run_learner(EX_FUNCTION, _gradcheck_problem, apply, inputs, what="AttentionFunction (under gradcheck)",
                               case="gradcheck, Tq=3, Tk=2, d_k=4, d_v=5")
    if problem:
        match = re.search(r"with respect to input (\d+)", problem)
        which = f" for {['dL/dQ', 'dL/dK', 'dL/dV'][int(match.group(1))]}" if match and int(match.group(1)) < 3 \
            else ""
        first = " ".join(problem.strip().splitlines()[0].split())
        raise EX_FUNCTION.fail(f"torch.autograd.gradcheck disagrees with your backward{which} ({first}). Your "
                               f"gradients matched autograd on the cases above, so they go wrong only on this input "
                               f"(q (1, 2, 3, 4), k (1, 2, 2, 4), v (1, 2, 2, 5)): does backward depend on anything "
                               f"but ctx.saved_tensors and grad_out, or assume a shape? Follow eqs. (1.7)–(1.9).",
                               case="gradcheck")
