"""Checks for Chapter 01, The Anatomy of Attention.

Each check runs the learner's code on seeded cases and, when an answer is wrong, tests the properties the right
answer must have before comparing numbers, so that a mistake nobody listed still gets a message that says what
is wrong:

- **attention weights** (1.1, and the weights recovered inside 1.3, 1.4 and 1.5): non-negative; exactly 0 where
  the mask forbids (the fill value of a finite fill is recovered); rows sum to 1 over the keys; a softmax of
  a·QKᵀ whose temperature a is fitted from log-ratios and named (1/√d_k, 1/d_k, 1, 1/√D, …); a constant added to
  every score of a row changes nothing (a case has scores ≈ −2·10⁴);
- **weights recovered from outputs**: an attention output is a weighted average of the rows of V, so where V's
  rows are independent the weights are solved for by least squares (1.3's forward, each head of 1.4) or read off
  by passing V = I (1.5), and then diagnosed as weights;
- **coefficients**: the softmax backward (1.2), dQ and dK (1.3) and the FNet mixing (1.6) are linear in known
  terms; their coefficients are recovered and the wrong one named;
- **invariants**: dL/ds sums to 0 in each row and is 0 where p = 0 (1.2); the dS inside dQ has rows that sum to
  0, the keys' gradients sum to 0 and the rows of dV add up to those of dO (1.3); a block of keys is used once
  and the weights sum to 1 (1.5); items of a batch do not mix (1.6); W has entries of modulus 1, is symmetric, has
  a first row and column of 1 and is made of powers of W[1, 1], whose angle is named (1.6).
- **exceptions** are read in the exercise's terms where a case knows them (``Case.explain``): a mask with axes
  added, dO where dP belongs, an accumulator of q's width.

Cases separate look-alikes: Tq ≠ Tk, d_v ≠ d_k, Dh ≠ √D, large and all-negative scores.

Conventions the checks assume (the chapter states them too):
- a boolean ``mask`` broadcastable to (..., Tq, Tk) with True = "this query may attend to this key", as in
  ``F.scaled_dot_product_attention``;
- ``key_padding_mask`` of shape (B, T) with True = "this key is padding, ignore it", as in
  ``nn.MultiheadAttention`` — the opposite polarity, a classic source of bugs.
"""
from __future__ import annotations

import copy
import itertools
import math
import re
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from einops import rearrange
from torch.autograd.gradcheck import GradcheckError

from utils.bench import peak_memory
from utils.checks.core import (
    Case,
    CheckFailure,
    Exercise,
    LearnerError,
    Mistake,
    fit_linear,
    name_value,
    named_size,
    named_sizes_in,
    one_thread,
    structure_problem,
)

EX_WEIGHTS = Exercise("1.1", "attention_weights")
EX_SOFTMAX_BACKWARD = Exercise("1.2", "softmax_backward")
EX_FUNCTION = Exercise("1.3", "AttentionFunction")
EX_HEADS = Exercise("1.4", "MultiHeadSelfAttention")
EX_TILED = Exercise("1.5", "tiled_attention")
EX_DFT = Exercise("1.6", "dft_matrix")
EX_MIXING = Exercise("1.6", "fourier_mixing")

_BATCH_AXES = ("B", "H")
FLOAT64_TOLERANCE = (1e-11, 1e-10)  # (atol, rtol): every float64 reference here is right to ~1e-14
SHIFT = -2e4  # added to every score of a row in the cases that test invariance to a constant shift


_BROADCAST = re.compile(r"size of tensor a \((\d+)\) must match the size of tensor b \((\d+)\)")
_MATMUL = re.compile(r"cannot be multiplied|Expected size for first two dimensions|size mismatch")


_INVALID_GRADIENT = re.compile(r"returned an invalid gradient at index (\d+) - got \[([\d, ]*)\]")
_BMM_INNER = re.compile(r"batch2 tensor to be: \[\d+, (\d+)\] but got: \[\d+, (\d+)\]")
_MM_INNER = re.compile(r"shapes cannot be multiplied \(\d+x(\d+) and (\d+)x\d+\)")


def _matmul_inner_sizes(error: BaseException) -> tuple[int, int] | None:
    """(the first operand's last size, the second's rows) of a matrix product that failed, or None."""
    match = _BMM_INNER.search(str(error)) or _MM_INNER.search(str(error))
    return (int(match.group(1)), int(match.group(2))) if match else None


def _broadcast_sizes(error: BaseException) -> set[int] | None:
    """The two sizes of a failed broadcast, or None when the error is no broadcast."""
    match = _BROADCAST.search(str(error))
    return {int(match.group(1)), int(match.group(2))} if match else None


_FIXED_AXES = re.compile(r"does not match the length of the desired ordering|number of subscripts in the equation "
                         r"\(\d+\) does not match the number of dimensions|(too many|not enough) values to unpack")


def code_reading(error: BaseException, line: str, layout: str) -> str | None:
    """Readings of exceptions that any exercise of the chapter can raise: a (values, indices) pair used as a
    tensor, code written for a fixed number of axes, a Jacobian built for one row only. ``layout`` is the shape the
    exercise's input may have ("(..., Tq, d_k)")."""
    text = str(error)
    if "torch.return_types." in text:
        return ("max(dim=…) (like min, sort and topk) returns a pair (values, indices), not a tensor: take its "
                ".values, or use amax(dim=-1, keepdim=True), which returns the values only.")
    if _FIXED_AXES.search(text) and ("unpack" not in text or ".shape" in line or ".size(" in line):
        return (f"Your code assumes a fixed number of axes, but the input may have any number of leading (batch) "
                f"axes, {layout}, and this case's has another number: count axes from the end — x.shape[-2:], "
                f"k.transpose(-2, -1), '...' in einsum and rearrange patterns.")
    if "Expected 1-D argument" in text or ("diag" in line and "must be 1D or 2D" in text):
        return ("torch.outer and torch.diag work on a single row (a 1-D vector), but p has leading axes (…, T): "
                "for a batch use p[..., :, None] * p[..., None, :] and torch.diag_embed(p) — or, better, eq. (1.5), "
                "which needs no Jacobian.")
    return None


@dataclass(frozen=True)
class ChapterCase(Case):
    """A case of this chapter: it reads the learner's exceptions in its exercise's terms (``own_reading``), then
    with the chapter's common readings (:func:`code_reading`)."""

    @property
    def layout(self) -> str:
        return "(..., T, d)"

    def own_reading(self, error: BaseException, line: str) -> str | None:
        return None

    def explain(self, error: BaseException, line: str) -> str | None:
        return self.own_reading(error, line) or code_reading(error, line, self.layout)


def causal_mask(t: int) -> torch.Tensor:
    """(T, T) bool, True on and below the diagonal: query i may attend to keys 0..i."""
    return torch.ones(t, t, dtype=torch.bool).tril()


def reference_attention_weights(q, k, mask=None):
    """softmax(Q Kᵀ / √d_k) over the keys, forbidden scores set to −∞ first: PyTorch's own softmax.  (..., Tq, Tk)"""
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (..., Tq, Tk)
    if mask is not None:
        scores = scores.masked_fill(~mask, -math.inf)
    return scores.softmax(dim=-1)


# ---------------------------------------------------------------------------------------------------------------
# Shared: comparing with shapes named, and reading NaN that a case was built to provoke
# ---------------------------------------------------------------------------------------------------------------

def _compare(exercise: Exercise, got, expected: torch.Tensor, case: Case, *, equation: str, name: str = "output",
             axes: Sequence[str] | None = None, nonfinite: str | Callable | None = None, **kwargs) -> None:
    """``exercise.compare`` with two additions: a wrong shape is spelled with the axes' names, and NaN/inf gets a
    reading of its own where the check has one (``nonfinite``: a message, or a function of the answer that returns
    one or None), e.g. in a case built to make e^s overflow."""
    if expected.dtype == torch.float64:  # a single float32 rounding (≈ 6e-8) must not pass a float64 case
        kwargs.setdefault("atol", FLOAT64_TOLERANCE[0])
        kwargs.setdefault("rtol", FLOAT64_TOLERANCE[1])
    if isinstance(got, torch.Tensor) and got.shape != expected.shape and axes and len(axes) == expected.dim():
        named = ", ".join(f"{axis}={size}" for axis, size in zip(axes, expected.shape))
        raise exercise.fail(f"{structure_problem(got, expected)} The expected axes are ({named}).", case=case,
                            name=name)
    if nonfinite and structure_problem(got, expected) is None and not torch.isfinite(got).all() \
            and torch.isfinite(expected).all():
        message = nonfinite(got) if callable(nonfinite) else nonfinite
        if message:
            raise exercise.fail(message, case=case, name=name)
    exercise.compare(got, expected, case=case, equation=equation, name=name, axes=axes, **kwargs)


def _at(index: Sequence[int], batch_names: Sequence[str] = ()) -> str:
    """"query 2, key 4 (b=1)" for an index (..., i, j) of a weights tensor."""
    *batch, i, j = (int(n) for n in index)
    where = f"query {i}, key {j}"
    if batch:
        names = list(batch_names)[-len(batch):] if len(batch_names) >= len(batch) else [f"axis {a}" for a in
                                                                                        range(len(batch))]
        where += " (" + ", ".join(f"{n}={b}" for n, b in zip(names, batch)) + ")"
    return where


def _is_close(a: float, b: float, rtol: float = 2e-3, atol: float = 1e-9) -> bool:
    return abs(a - b) <= rtol * abs(b) + atol


# ---------------------------------------------------------------------------------------------------------------
# Shared: which sizes a learner's scale follows (fitted at several sizes, one changed at a time)
# ---------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Size:
    """A size the scale of the scores might follow: its name, where the code reads it, and two values to try."""

    name: str  # "d_k"
    source: str  # "q.shape[-1]"
    base: int
    other: int
    meaning: str = ""  # "the number of keys"


def scale_law(fit_at: Callable[[dict[str, int]], float | None], sizes: Sequence[Size]):
    """(c, exponents) with the learner's temperature a = c · Π size^α, from ``fit_at`` (the temperature fitted on
    inputs of the given sizes, or None) at the base sizes and with one size changed at a time. None when a fit
    fails or a does not follow a power of the sizes (exponents that are not multiples of 1/2)."""
    base = {s.name: s.base for s in sizes}
    a0 = fit_at(base)
    if a0 is None or a0 <= 0:
        return None
    exponents = {}
    for size in sizes:
        a1 = fit_at({**base, size.name: size.other})
        if a1 is None or a1 <= 0:
            return None
        alpha = math.log(a1 / a0) / math.log(size.other / size.base)
        if abs(2 * alpha - round(2 * alpha)) > 0.02:
            return None
        exponents[size.name] = round(2 * alpha) / 2
    c = a0 / math.prod(base[name] ** alpha for name, alpha in exponents.items())
    return c, exponents


def _where_from(size: Size) -> str:
    """"Tk = k.shape[-2], the number of keys"."""
    return size.name + (f" = {size.source}" if size.source != size.name else "") + \
        (f", {size.meaning}" if size.meaning else "")


def _power(name: str, alpha: float) -> str:
    return {-0.5: f"1/√{name}", -1.0: f"1/{name}", 0.5: f"√{name}", 1.0: name}.get(alpha, f"{name}^{alpha:g}")


def _constant_text(c: float) -> str:
    """0.3536 → "1/√8", 0.125 → "1/8" (a number a learner may have typed), else "0.3536"."""
    forms = [f"1/{n}" for n in range(2, 4097) if _is_close(c, 1 / n, 1e-3)][:1] + \
        [f"1/√{n}" for n in range(2, 4097) if _is_close(c, 1 / math.sqrt(n), 1e-3)][:1]
    return " = ".join(forms) or f"{c:.4g}"


def scale_law_message(law, sizes: Sequence[Size], right: str, *, who: str, equation: str,
                      products: Sequence[tuple[Size, tuple[str, ...]]] = ()) -> str | None:
    """What the fitted law a = c · Π size^α says against the right a = 1/√right, or None when it is right.
    ``products`` names products of sizes (D = Dh · H): sizes that share an exponent are said as their product."""
    if law is None:
        return None
    c, exponents = law
    followed = {name: alpha for name, alpha in exponents.items() if alpha != 0}
    if followed == {right: -0.5} and _is_close(c, 1.0, 1e-3):
        return None
    by_name = {s.name: s for s in sizes}
    for product, members in products:
        powers = {followed.get(name, 0.0) for name in members}
        if len(powers) == 1 and 0.0 not in powers:
            followed = {**{n: a for n, a in followed.items() if n not in members}, product.name: powers.pop()}
            by_name[product.name] = product
    tried = ", ".join(f"{s.name} = {s.base} and {s.other}" for s in sizes)
    parts = ([] if _is_close(c, 1.0, 1e-3) and followed else [_constant_text(c)]) + \
        [_power(name, alpha) for name, alpha in followed.items()]
    formula = " · ".join(parts) if parts else "1"
    head = (f"{who} are softmax(a · QKᵀ) with a = {formula} (fitted on inputs with {tried}), but {equation} has "
            f"a = 1/√{right}, with {right} = {by_name[right].source}: ")
    if not followed:
        if _is_close(c, 1.0, 1e-3):
            return head + f"the scores are not scaled at all: did you forget to divide the scores by √{right}?"
        return head + (f"your scale stays {_constant_text(c)} whatever the sizes are: a number fixed in your code. "
                       f"Compute it from the input: 1/√{right}, {right} = {by_name[right].source}.")
    wrong = [name for name in followed if name != right]
    if wrong:
        sources = ", ".join(_where_from(by_name[name]) for name in wrong)
        return head + (f"your scale follows {' and '.join(wrong)} ({sources}), not {right} alone: the scale comes "
                       f"from the width of q and k, {right} = {by_name[right].source}.")
    alpha = followed[right]
    if not _is_close(c, 1.0, 1e-3):
        return head + (f"besides {_power(right, alpha)}, your scale has a constant factor {_constant_text(c)}: "
                       f"divide the scores by √{right} and nothing else.")
    return head + {-1.0: f"you divided the scores by {right}; divide by √{right}, the standard deviation of q·k "
                         f"(eq. (1.3)).",
                   0.5: f"you multiplied the scores by √{right}; divide by it instead.",
                   1.0: f"you multiplied the scores by {right}; divide by √{right} instead."}.get(
        alpha, f"your scale goes as {_power(right, alpha)}; divide the scores by √{right}.")


# ---------------------------------------------------------------------------------------------------------------
# Shared: the properties of attention weights (used by 1.1, and on weights recovered in 1.3, 1.4 and 1.5)
# ---------------------------------------------------------------------------------------------------------------

@dataclass
class WeightsFacts:
    """What must hold for a tensor of attention weights P = softmax(a · Q Kᵀ) with a mask (eqs. (1.1), (1.2))."""

    raw_scores: torch.Tensor  # Q Kᵀ, not scaled, float64  (..., Tq, Tk)
    expected: torch.Tensor  # the right weights, float64  (..., Tq, Tk)
    scale: float  # the right a
    scale_text: str  # "1/√d_k"
    constants: dict[str, float]  # the chapter's constants a wrong scale may be made of: {"√d_k": 2.83, "d_k": 8}
    advice: dict[str, str]  # what to change when a is fitted to a named value: {"1/d_k": "you divided by d_k …"}
    equation: str = "eq. (1.1)"
    allowed: torch.Tensor | None = None  # bool, broadcastable to the weights: True = may attend
    exact: bool = True  # False for weights recovered by least squares: "zero" then means below 1e-5
    who: str = "your weights"
    batch_names: Sequence[str] = ()  # names of the leading axes, for saying where: ("B", "H")
    why_forbidden: Callable[[Sequence[int]], str] = lambda index: "the mask is False there"
    float64: bool = False  # the learner's weights came in float64: row sums can be checked to 1e-12
    upstream: str = ""  # appended to a message: "does your attention_weights pass the check of Exercise 1.1?"
    mask_reading: Callable[[torch.Tensor], str | None] | None = None  # names the mask a support (w > 0) shows
    score_sources: dict[str, torch.Tensor] | None = None  # other products the scores may have been made of
    law: Callable[[], str | None] | None = None  # says which sizes a wrong scale follows (see scale_law_message)

    @property
    def zero(self) -> float:
        return 0.0 if self.exact else 1e-5

    def allowed_like(self, weights: torch.Tensor) -> torch.Tensor:
        if self.allowed is None:
            return torch.ones_like(weights, dtype=torch.bool)
        return self.allowed.expand_as(weights)


def softmax_temperature(weights: torch.Tensor, raw_scores: torch.Tensor, allowed: torch.Tensor | None = None, *,
                        floor: float = 1e-30, tolerance: float = 1e-3) -> float | None:
    """The a with ``weights ≈ softmax(a · raw_scores)`` over the allowed entries of each row, fitted from
    log-ratios (log w_j − mean log w = a · (s_j − mean s)); None when the weights are no such softmax."""
    w = weights.detach().double()
    s = raw_scores.detach().double().expand_as(w)
    allowed = torch.ones_like(w, dtype=torch.bool) if allowed is None else allowed.expand_as(w)
    usable = allowed & (w > floor) & torch.isfinite(s)
    rows = (usable == allowed).all(-1) & (usable.sum(-1) >= 2)  # rows where every allowed weight can be logged
    if not rows.any():
        return None
    count = usable.sum(-1, keepdim=True).clamp_min(1)
    log_w = torch.where(usable, w.clamp_min(1e-300).log(), 0.0)
    s = torch.where(usable, s, 0.0)
    centred_log = torch.where(usable, log_w - log_w.sum(-1, keepdim=True) / count, 0.0)[rows]
    centred_s = torch.where(usable, s - s.sum(-1, keepdim=True) / count, 0.0)[rows]
    denominator = (centred_s * centred_s).sum()
    if denominator < 1e-12 or centred_log.norm() < 1e-12:
        return None
    a = ((centred_log * centred_s).sum() / denominator).item()
    residual = (centred_log - a * centred_s).norm() / centred_log.norm()
    return a if residual < tolerance else None


def _scale_message(a: float, facts: WeightsFacts) -> str | None:
    """What a fitted temperature a says, or None when it is the right one."""
    if _is_close(a, facts.scale):
        return None
    said = facts.law() if facts.law else None
    if said:
        return said
    name = name_value(a, {"1": 1.0, **facts.constants})
    shown = f"a = {a:.4g}" + (f" = {name}" if name and name != f"{a:.4g}" else "")
    advice = facts.advice.get(name or "", f"scale the scores by exactly {facts.scale_text}.")
    return (f"{facts.who} are softmax(a · QKᵀ) with {shown}, but {facts.equation} has a = {facts.scale_text} = "
            f"{facts.scale:.4g}: {advice}")


def _ratio_pattern(weights: torch.Tensor, expected: torch.Tensor, tolerance: float = 1e-3) -> str | None:
    """How wrong row sums are made, from got / expected: "row" (one factor per query), "key" (a factor that
    depends on the key: a denominator lined up with the wrong axis), or None."""
    usable = expected > 1e-12
    if not usable.all() or weights.shape[-1] < 2:
        return None
    log_ratio = (weights.clamp_min(1e-300) / expected).log()  # (..., Tq, Tk)
    if (log_ratio.amax(-1) - log_ratio.amin(-1)).abs().max() < tolerance:
        return "row"
    # log ratio = α_i + β_j (a separable factor) with β varying: each key (column) is scaled by its own factor
    separable = log_ratio - log_ratio.mean(-1, keepdim=True) - log_ratio.mean(-2, keepdim=True) \
        + log_ratio.mean((-2, -1), keepdim=True)
    if weights.shape[-2] >= 2 and separable.abs().max() < tolerance:
        return "key"
    return None


NOT_APPLIED = "the mask was not applied"


def _fill_message(weights: torch.Tensor, facts: WeightsFacts, leaked: torch.Tensor) -> str | None:
    """From weights that leak onto forbidden entries, what the learner put in those scores: larger scores than
    the real ones (the forbidden entries take everything), or, from exact weights, the unmasked score (the mask
    not applied), a constant fill value, or a constant added to the scores."""
    scores = facts.scale * facts.raw_scores.expand_as(weights)  # the right scaled scores S
    allowed = facts.allowed_like(weights)
    positive_allowed = allowed & (weights > facts.zero)
    rows = leaked.any(-1)
    if not (positive_allowed.any(-1) | ~rows).all():
        return (f"the forbidden entries take all the weight of their rows and the allowed ones none: your masked "
                f"scores are larger than the real ones, which are about {scores[allowed].mean().item():.3g} in this "
                f"case. A finite fill value (−1e4, −1e9, …) is not −∞: fill the forbidden scores with "
                f"float('-inf') (eq. (1.2)), so that their weight is exactly 0 whatever the scores are.")
    # implied score of a leaked entry: S_ik + log(w_ij / w_ik), against the row's largest allowed weight w_ik
    reference = torch.where(positive_allowed, weights, -1.0).argmax(-1, keepdim=True)  # (..., Tq, 1)
    log_ratio = weights.clamp_min(1e-300).log() - weights.gather(-1, reference).log()
    implied = (scores.gather(-1, reference) + log_ratio)[leaked]
    true = scores[leaked]
    size = (1e-3 if facts.exact else 1e-2) * (1 + true.abs().max().item())
    if not facts.exact and weights[leaked].min() < 1e-4:  # recovered weights: too small to take a logarithm of
        return None
    if (implied - true).abs().max() < size:
        return (NOT_APPLIED + ": the forbidden entries are weighted as if they were allowed. Set the "
                "forbidden scores to −∞ before the softmax (eq. (1.2)): scores.masked_fill(~mask, float('-inf')).")
    if implied.max() - implied.min() < size:
        fill = implied.mean().item()
        if abs(fill) < size:
            return ("you filled the forbidden scores with 0, but a score of 0 still gets weight e^0 > 0. Fill them "
                    "with float('-inf') (eq. (1.2)): e^{−∞} = 0.")
        return (f"your forbidden scores act like a finite fill value of {fill:.4g}: e^{{{fill:.3g} − max}} is not 0 "
                f"where the real scores come near it (here they are about {scores[allowed].mean().item():.3g}). "
                f"Fill with float('-inf') (eq. (1.2)), so that their weight is exactly 0.")
    offset = (implied - true).mean().item()
    if ((implied - true) - offset).abs().max() < size:
        return (f"you added {offset:.4g} to the forbidden scores: their weight shrinks but is not 0. Set them to "
                f"−∞ instead (eq. (1.2)), with scores.masked_fill(~mask, float('-inf')).")
    return None


def _mask_message(weights: torch.Tensor, facts: WeightsFacts) -> str | None:
    """Forbidden weights must be exactly 0 (eq. (1.2)); allowed ones must not be."""
    allowed = facts.allowed_like(weights)
    leaked = ~allowed & (weights > facts.zero)
    lost = allowed & (weights <= facts.zero) & (facts.expected > (1e-8 if facts.exact else 1e-3))
    # the weights of the opposite mask: a softmax over the forbidden entries (rows with none are 0/0, left out)
    inverted = (facts.scale * facts.raw_scores.expand_as(weights)).masked_fill(allowed, -math.inf).softmax(-1)
    rows = torch.isfinite(inverted).all(-1) & (~allowed).any(-1)
    if leaked.any() and rows.any() and torch.allclose(weights[rows], inverted[rows], atol=1e-3 if facts.exact
                                                      else 1e-2):
        return (f"{facts.who} are nonzero where the mask forbids attending and zero where it allows it: the mask "
                f"is inverted. True means 'may attend' (as in F.scaled_dot_product_attention), so fill the scores "
                f"where the mask is False: scores.masked_fill(~mask, float('-inf')) (eq. (1.2)).")
    if leaked.any():
        first = [int(i) for i in leaked.nonzero()[0]]
        head = (f"{facts.who} give weight (up to {weights[leaked].max().item():.3g}) to {int(leaked.sum())} "
                f"entries that must be exactly 0, the first at {_at(first, facts.batch_names)}, where "
                f"{facts.why_forbidden(first)}: ")
        found = _fill_message(weights, facts, leaked)
        typical = weights[allowed & (weights > facts.zero)]
        comparable = typical.numel() > 0 and weights[leaked].min() >= 1e-3 * typical.median()  # not a faint leak
        if (found is None or found.startswith(NOT_APPLIED)) and facts.mask_reading and comparable:
            found = facts.mask_reading(weights > facts.zero) or found
        if (found is None or found.startswith(NOT_APPLIED)) and lost.any():
            hidden = [int(i) for i in lost.nonzero()[0]]
            found = (f"and {int(lost.sum())} allowed entries get none, the first at "
                     f"{_at(hidden, facts.batch_names)}: your mask hides the wrong entries. Is it lined up with the "
                     f"right axes (batch, query, key)? Each mask must broadcast to the scores with its own axes "
                     f"({facts.equation}).")
        return head + (found or "set the forbidden scores to −∞ before the softmax (eq. (1.2)), so that e^{−∞} = 0.")
    if lost.any():
        first = [int(i) for i in lost.nonzero()[0]]
        structure = facts.mask_reading(weights > facts.zero) if facts.mask_reading else None
        if structure:
            return f"{facts.who} are 0 at {int(lost.sum())} entries where attending is allowed: {structure}"
        return (f"{facts.who} are 0 at {int(lost.sum())} entries where attending is allowed, the first at "
                f"{_at(first, facts.batch_names)} (the right weight there is {facts.expected[tuple(first)]:.3g}): "
                f"mask only what {facts.equation} forbids — which entries does your mask hide?")
    return None


def _row_sum_message(weights: torch.Tensor, facts: WeightsFacts) -> str | None:
    """Each query's weights sum to 1 over the keys (eq. (1.1))."""
    tolerance = 1e-5 if facts.exact else 1e-3
    sums = weights.sum(-1)  # (..., Tq)
    if facts.exact and facts.float64 and ((sums - 1).abs() > 1e-12).any() and _ratio_pattern(
            weights, facts.expected, tolerance=1e-12) == "row":
        return (f"each row of {facts.who} is the right row times a factor of its own, slightly off 1 (the rows sum "
                f"to {sums.min().item():.12g}…{sums.max().item():.12g}): the denominator is a little too large or "
                f"small — an ε added to Σ_j' e^(S_ij')? A softmax needs none: after subtracting the row's maximum "
                f"the sum is at least 1 ({facts.equation}).")
    if ((sums - 1).abs() <= tolerance).all():
        return None
    names = (*facts.batch_names, "Tq", "Tk")
    names = names[-weights.dim():] if len(names) >= weights.dim() else [f"axis {a}" for a in range(weights.dim())]
    for axis in range(weights.dim() - 1):  # normalised over another axis?
        if weights.shape[axis] > 1 and ((weights.sum(axis) - 1).abs() <= tolerance).all():
            which = "down each column (over the queries, " if axis == weights.dim() - 2 else \
                f"over the {names[axis]} axis ("
            return (f"softmax over the wrong axis: {facts.who} sum to 1 {which}dim={axis - weights.dim()}), but "
                    f"each query's row must sum to 1 over the keys: softmax(dim=-1) ({facts.equation}).")
    if abs(weights.sum().item() - 1) <= tolerance:
        return (f"{facts.who} sum to 1 over every entry at once (a sum without dim=): each query's row must sum to 1 "
                f"over the keys, e / e.sum(dim=-1, keepdim=True) ({facts.equation}).")
    allowed = facts.allowed_like(weights)
    first = int((sums - 1).abs().flatten().argmax())
    shown = f"(one sums to {sums.flatten()[first].item():.4g})"
    if (sums.max() - sums.min()) <= tolerance * sums.abs().max():  # one factor c after a softmax
        c = sums.mean().item()
        name = name_value(c, {"1": 1.0, **facts.constants})
        a = softmax_temperature(weights / c, facts.raw_scores, allowed, floor=1e-30 if facts.exact else 1e-3,
                                tolerance=1e-3 if facts.exact else 2e-2)
        inside = f" (and the softmax inside has a = {a:.4g} where {facts.scale_text} belongs)" \
            if a is not None and not _is_close(a, facts.scale) else ""
        return (f"every row of {facts.who} sums to {c:.4g}{f' (= {name})' if name else ''}, not 1: a factor is "
                f"applied after the softmax{inside}. A softmax's rows sum to 1 ({facts.equation}): apply every factor "
                f"to the scores, before the softmax, and none after it.")
    if facts.allowed is not None and not (~allowed & (weights > facts.zero)).any() and (sums <= 1 + tolerance).all() \
            and (~allowed).any():
        return (f"each row of {facts.who} must sum to 1 {shown}: you zeroed the forbidden weights after the "
                f"softmax, so the allowed ones no longer fill the row. Set the forbidden scores to −∞ *before* the "
                f"softmax (eq. (1.2)), so the remaining weights renormalise.")
    pattern = _ratio_pattern(weights, facts.expected)
    if pattern == "row":
        return (f"each row of {facts.who} is the right row times a factor of its own, so the rows do not sum to 1 "
                f"{shown}: the numerators e^(S_ij) are right and the denominator is not. Divide each row by its "
                f"own sum over the keys, Σ_j' e^(S_ij') ({facts.equation}).")
    if pattern == "key":
        return (f"the rows of {facts.who} do not sum to 1 {shown}, and how far off an entry is depends on its key "
                f"(column): the denominators are lined up with the keys axis. Is a sum missing keepdim=True, so "
                f"that row i's sum broadcast along the last axis? Divide by e.sum(dim=-1, keepdim=True) "
                f"({facts.equation}).")
    return (f"each row of {facts.who} must sum to 1 over the keys {shown}: P_ij = e^(S_ij) / Σ_j' e^(S_ij') "
            f"({facts.equation}).")


def weights_problem(weights: torch.Tensor, facts: WeightsFacts) -> str | None:
    """The first property of attention weights that ``weights`` breaks, said in terms of the chapter's equations,
    or None: non-negative, masked entries zero, rows summing to 1, a softmax of QKᵀ at the right temperature."""
    weights = weights.detach().double()
    if (weights < -1e-6 - facts.zero).any():
        fit = fit_linear(weights, {"QKᵀ": facts.raw_scores.expand_as(weights)})
        if fit.exact:
            a = fit.coefficients["QKᵀ"]
            return (f"{facts.who} are {a:.4g} · QKᵀ, the scores themselves, with negative entries: apply the "
                    f"softmax over the keys (dim=-1) to the scores ({facts.equation}).")
        if ((weights.exp().sum(-1) - 1).abs() < 1e-4).all():
            return (f"{facts.who} are the logarithms of weights (their exponentials sum to 1 in each row): a "
                    f"log_softmax, or a log too many. Return softmax(S) itself ({facts.equation}).")
        return (f"{facts.who} have negative entries (down to {weights.min().item():.3g}); weights are "
                f"e^(S_ij) / Σ_j' e^(S_ij') ≥ 0: a softmax over the keys ({facts.equation}).")
    for message in (_mask_message(weights, facts), _row_sum_message(weights, facts)):
        if message:
            return message + (f" {facts.upstream}" if facts.upstream else "")
    floor, tolerance = (1e-30, 1e-3) if facts.exact else (1e-3, 2e-2)
    allowed = facts.allowed_like(weights)
    a = softmax_temperature(weights, facts.raw_scores, allowed, floor=floor, tolerance=tolerance)
    if a is not None:
        message = _scale_message(a, facts)
        return message + (f" {facts.upstream}" if facts.upstream else "") if message else None
    for name, raw in (facts.score_sources or {}).items():  # the scores made of other tensors than Q and K
        other = softmax_temperature(weights, raw, allowed, floor=floor, tolerance=tolerance)
        if other is not None:
            return (f"{facts.who} are softmax(a · {name}) with a = {other:.4g}: the scores of {facts.equation} are "
                    f"the queries against the keys, QKᵀ scaled by {facts.scale_text}.")
    twice = softmax_temperature(weights, facts.expected, allowed, floor=floor, tolerance=tolerance)
    if twice is not None and _is_close(twice, 1.0, 1e-2):  # log w = P + a constant per row: w = softmax(P)
        return (f"{facts.who} are softmax(P), a softmax of the right weights P = softmax(S): the softmax is applied "
                f"twice. Apply it once, to the scores ({facts.equation})." +
                (f" {facts.upstream}" if facts.upstream else ""))
    return None


def recover_weights(output: torch.Tensor, values: torch.Tensor) -> torch.Tensor | None:
    """The W with ``output = W @ values`` (least squares, per batch item) when the rows of ``values`` are
    independent (Tk ≤ d_v) and the fit is exact; None otherwise (the output is then no weighted sum of V's rows).

    output (..., Tq, d_v), values (..., Tk, d_v) → W (..., Tq, Tk), float64.
    """
    o, v = output.detach().double(), values.detach().double()
    if v.shape[-2] > v.shape[-1] or o.norm() == 0:
        return None
    singular = torch.linalg.svdvals(v)
    if (singular.amin(-1) < 1e-6 * singular.amax(-1).clamp_min(1e-300)).any():
        return None
    w = torch.linalg.lstsq(v.mT, o.mT).solution.mT  # solves Wᵀ from Vᵀ Wᵀ = Oᵀ
    residual = (w @ v - o).norm() / o.norm()
    return w if residual < 1e-4 else None


# ---------------------------------------------------------------------------------------------------------------
# Shared: recovering the coefficients of a formula that is linear in known terms
# ---------------------------------------------------------------------------------------------------------------

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


def _formula(coefficients: dict[str, float], display: dict[str, str]) -> str:
    """"p⊙g − 1·p⊙Σg", leaving out the terms with coefficient 0."""
    size = max([abs(c) for c in coefficients.values()] + [1e-300])
    terms = []
    for name, value in coefficients.items():
        if abs(value) < 1e-6 * size:
            continue
        shown = display.get(name, name)
        number = "" if _is_close(abs(value), 1.0, 1e-4) else f"{abs(value):.4g}·"
        terms.append(("− " if value < 0 else "+ ") + number + shown)
    text = " ".join(terms) if terms else "0"
    return text[2:] if text.startswith("+ ") else "−" + text[2:] if text.startswith("− ") else text


def _multiplier(coefficients: dict[str, float], expected: dict[str, float]) -> float | None:
    """The m with coefficients = m · expected (the other terms 0), when there is one."""
    size = max(abs(c) for c in coefficients.values())
    first = next(iter(expected))
    m = coefficients[first] / expected[first]
    for name, value in coefficients.items():
        want = m * expected.get(name, 0.0)
        if abs(value - want) > 1e-4 * size + 1e-12:
            return None
    return m


# ---------------------------------------------------------------------------------------------------------------
# Exercise 1.1 — attention weights, eqs. (1.1), (1.2)
# ---------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class WeightsCase(ChapterCase):
    q_shape: tuple = ()  # (..., Tq, d_k)
    k_shape: tuple = ()  # (..., Tk, d_k)
    mask: str | None = None  # None, "causal" (T, T), "padding" (B, 1, 1, Tk) or "random" (B, 1, Tq, Tk)
    input_scale: float = 1.0  # q and k × this: scores large enough that e^S overflows without the row max
    score_shift: float = 0.0  # added to every score (through a shared first feature): the softmax must ignore it

    @property
    def layout(self) -> str:
        return "q (..., Tq, d_k), k (..., Tk, d_k)"

    @property
    def sizes(self) -> dict[str, int]:
        batch = dict(zip(_BATCH_AXES, self.q_shape[:-2]))
        return {**batch, "Tq": self.q_shape[-2], "Tk": self.k_shape[-2], "d_k": self.q_shape[-1]}

    def own_reading(self, error: BaseException, line: str) -> str | None:
        if _broadcast_sizes(error) and "mask" in line:
            return ("The mask comes broadcastable to the scores (..., Tq, Tk), True where attending is allowed: use "
                    "it as it is, scores.masked_fill(~mask, float('-inf')) (eq. (1.2)), without adding or moving "
                    "its axes." + named_sizes_in(str(error), self.sizes))
        return None

    def inputs(self, exercise: Exercise = EX_WEIGHTS):
        q = exercise.randn(*self.q_shape, key=(self.label, "q"), dtype=self.dtype) * self.input_scale
        k = exercise.randn(*self.k_shape, key=(self.label, "k"), dtype=self.dtype) * self.input_scale
        if self.score_shift:
            q, k = _shift_scores(q, k, self.score_shift)
        return q, k, self.build_mask(exercise)

    def build_mask(self, exercise: Exercise) -> torch.Tensor | None:
        Tq, Tk = self.q_shape[-2], self.k_shape[-2]
        if self.mask == "causal":
            return causal_mask(Tq)
        if self.mask == "padding":
            padding = torch.ones(self.q_shape[0], 1, 1, Tk, dtype=torch.bool)
            padding[1, ..., Tk - 2:] = False  # the second sequence has 2 padded keys
            return padding
        if self.mask == "random":
            random = exercise.randn(self.q_shape[0], 1, Tq, Tk, key=(self.label, "mask")) > -0.3
            random[..., 0] = True  # every query keeps at least one key
            return random
        return None


def _shift_scores(q: torch.Tensor, k: torch.Tensor, shift: float):
    """q, k with their first feature replaced so that every score q·k/√d_k gains ``shift`` (the same for every key
    of a row, so the right weights are unchanged)."""
    d_k = q.shape[-1]
    size = math.sqrt(abs(shift) * math.sqrt(d_k))
    q, k = q.clone(), k.clone()
    q[..., 0] = size
    k[..., 0] = math.copysign(size, shift)
    return q, k


WEIGHTS_CASES = [
    WeightsCase("cross-attention, B=2, H=3, Tq=5, Tk=7, d_k=8", q_shape=(2, 3, 5, 8), k_shape=(2, 3, 7, 8)),
    WeightsCase("self-attention, B=2, H=3, T=6, d_k=8", q_shape=(2, 3, 6, 8), k_shape=(2, 3, 6, 8)),
    WeightsCase("causal mask (T, T), T=6", q_shape=(2, 2, 6, 8), k_shape=(2, 2, 6, 8), mask="causal"),
    WeightsCase("padding mask (B, 1, 1, Tk), 2 padded keys", q_shape=(2, 1, 5, 8), k_shape=(2, 1, 5, 8),
                mask="padding"),
    WeightsCase("random mask (B, 1, Tq, Tk), Tq=4, Tk=6", q_shape=(2, 3, 4, 8), k_shape=(2, 3, 6, 8),
                mask="random"),
    WeightsCase("T=1 (a single token)", q_shape=(1, 1, 1, 4), k_shape=(1, 1, 1, 4)),
    WeightsCase("large scores (q and k × 10)", q_shape=(2, 2, 5, 8), k_shape=(2, 2, 6, 8), input_scale=10.0),
    WeightsCase("large scores and a causal mask (q and k × 10)", q_shape=(2, 2, 6, 8), k_shape=(2, 2, 6, 8),
                mask="causal", input_scale=10.0),
    WeightsCase("float64, no batch axes, Tq=3, Tk=5, d_k=6", torch.float64, q_shape=(3, 6), k_shape=(5, 6)),
    WeightsCase("float64, causal mask, every score ≈ −2·10⁴", torch.float64, q_shape=(2, 6, 4), k_shape=(2, 6, 4),
                mask="causal", score_shift=SHIFT),
]


def _weights_advice(d: str, width: str) -> dict[str, str]:
    """What to change when the temperature is a named wrong value; ``d`` is the width in the equation."""
    return {
        "1": f"did you forget to divide the scores by √{d} (eq. (1.1))?",
        f"1/{d}": f"you divided the scores by {d}; divide by √{d}, the standard deviation of q·k (eq. (1.3)).",
        f"√{d}": f"you multiplied the scores by √{d}; divide by it instead.",
        f"{d}": f"you multiplied the scores by {d}; divide by √{d} instead.",
        f"−1/√{d}": "a sign is flipped: the scores are +q·k/√d (a softmax of −S puts the weight on the least similar "
                    "keys).",
        "1/√Tk": f"you scaled by the square root of the number of keys; the scale is 1/√{d}, from the {width}.",
        "1/√Tq": f"you scaled by the square root of the number of queries; the scale is 1/√{d}, from the {width}.",
        "1/Tk": f"you divided by the number of keys; the scale is 1/√{d}, from the {width}.",
        "1/Tq": f"you divided by the number of queries; the scale is 1/√{d}, from the {width}.",
    }


def _weights_facts(q, k, mask, **overrides) -> WeightsFacts:
    """The facts of eqs. (1.1), (1.2) for attention of q over k (any batch axes)."""
    Tq, Tk, d_k = q.shape[-2], k.shape[-2], q.shape[-1]
    q64, k64 = q.detach().double(), k.detach().double()
    raw = q64 @ k64.transpose(-2, -1)  # (..., Tq, Tk)
    facts = WeightsFacts(
        raw_scores=raw, expected=reference_attention_weights(q64, k64, mask), scale=1 / math.sqrt(d_k),
        scale_text="1/√d_k", constants={"√d_k": math.sqrt(d_k), "d_k": d_k, "√Tk": math.sqrt(Tk),
                                        "√Tq": math.sqrt(Tq), "Tk": Tk, "Tq": Tq},
        advice=_weights_advice("d_k", "width of q and k (eq. (1.3))"), equation="eq. (1.1)", allowed=mask,
        float64=q.dtype == torch.float64,
        batch_names=("B", "H")[:q.dim() - 2])
    for name, value in overrides.items():
        setattr(facts, name, value)
    return facts


def _overflow_text(case, subject: str) -> str | None:
    """The reading of NaN/inf in a case built so that e^s overflows or underflows."""
    if getattr(case, "score_shift", 0.0):
        return (f"NaN/inf where every score of a row is about {case.score_shift:.0e}. The right {subject} are "
                f"the same as without that shift: adding one number to every score of a row changes no softmax "
                f"(J·1 = 0 under eq. (1.4)). But e^(−2·10⁴) underflows to 0 for every key, and 0/0 = NaN: subtract "
                f"each row's maximum from its scores before exponentiating (or use torch.softmax, which does).")
    if getattr(case, "input_scale", 1.0) > 1:
        return ("NaN/inf on large scores (e^s overflows above s ≈ 88 in float32, and underflows to 0 for every key "
                "of a row far below it, giving 0/0). Subtract each row's maximum from its scores before "
                "exponentiating: softmax(s) = softmax(s − max_j s_j) (J·1 = 0 under eq. (1.4)).")
    return None


def _nan_rows_text(mask: torch.Tensor | None, case: WeightsCase):
    """NaN rows of weights are rows whose scores were all −∞: compare them with the rows the mask leaves open."""
    def reading(got):
        bad_rows = ~torch.isfinite(got).all(-1)  # (..., Tq)
        if mask is None or not bad_rows.any():
            return None
        full_rows = mask.expand(got.shape).all(-1)  # rows where every key is allowed
        if torch.equal(bad_rows, full_rows):
            return ("NaN exactly in the rows where the mask allows every key: there your code hid every key, so "
                    "the softmax of a row of −∞ is 0/0. The mask is inverted: True means 'may attend' (as in "
                    "F.scaled_dot_product_attention), so fill the scores where the mask is False, "
                    "scores.masked_fill(~mask, float('-inf')) (eq. (1.2)).")
        first = [int(i) for i in bad_rows.nonzero()[0]]
        return (f"NaN in {int(bad_rows.sum())} rows (the first is query {first[-1]}): a row whose scores are all −∞ "
                f"gives 0/0 after the softmax, yet the mask leaves every query at least one key. Fill only where the "
                f"mask is False (eq. (1.2)).")
    return reading


_WEIGHTS_SIZES = (Size("d_k", "q.shape[-1]", 6, 10, "the width of q and k"),
                  Size("Tk", "k.shape[-2]", 7, 11, "the number of keys"),
                  Size("Tq", "q.shape[-2]", 5, 9, "the number of queries"),
                  Size("B", "q.shape[0]", 2, 3, "the batch size"), Size("H", "q.shape[1]", 3, 4, "the number of heads"))


def _once(compute: Callable[[], str | None]) -> Callable[[], str | None]:
    """``compute`` run at most once (probes that run the learner's code again are asked from several places)."""
    cache = []

    def cached():
        if not cache:
            cache.append(compute())
        return cache[0]
    return cached


def _weights_law(attention_weights, who: str = "your weights"):
    """Which sizes the scale inside ``attention_weights`` follows: its temperature fitted on unmasked inputs of
    other sizes (one changed at a time)."""
    def fit_at(sizes):
        q = EX_WEIGHTS.randn(sizes["B"], sizes["H"], sizes["Tq"], sizes["d_k"], key=("law", "q", *sizes.values()))
        k = EX_WEIGHTS.randn(sizes["B"], sizes["H"], sizes["Tk"], sizes["d_k"], key=("law", "k", *sizes.values()))
        try:
            w = attention_weights(q, k, None)
        except Exception:  # noqa: BLE001 - a probe that cannot run says nothing
            return None
        if not isinstance(w, torch.Tensor) or w.shape != (*q.shape[:-1], k.shape[-2]):
            return None
        return softmax_temperature(w, q @ k.transpose(-2, -1))

    return _once(lambda: scale_law_message(scale_law(fit_at, _WEIGHTS_SIZES), _WEIGHTS_SIZES, "d_k", who=who,
                                           equation="eq. (1.1)"))


@one_thread
def check_attention_weights(attention_weights) -> None:
    """Exercise 1.1: ``attention_weights(q, k, mask=None)`` returns softmax(Q Kᵀ / √d_k) with the mask applied."""
    for case in WEIGHTS_CASES:
        q, k, mask = case.inputs()
        got = EX_WEIGHTS.call(attention_weights, q.clone(), k.clone(), None if mask is None else mask.clone(),
                              case=case)
        expected = reference_attention_weights(q, k, mask)
        facts = _weights_facts(q, k, mask, law=_weights_law(attention_weights))
        axes = ("B", "H", "Tq", "Tk")[-q.dim():]
        _compare(EX_WEIGHTS, got, expected, case, name="weights", equation="eqs. (1.1) and (1.2)", axes=axes,
                 nonfinite=_overflow_text(case, "weights") or _nan_rows_text(mask, case),
                 probes=[lambda w: weights_problem(w, facts)], factors={"√d_k": math.sqrt(q.shape[-1])})
    EX_WEIGHTS.passed(f"{len(WEIGHTS_CASES)} cases (cross-attention, causal, padding and random masks, T=1, large "
                      f"scores with and without a mask, shifted scores, float64 to 1e-9) match softmax(QKᵀ/√d_k) "
                      f"with -inf at masked scores.")


# ---------------------------------------------------------------------------------------------------------------
# Exercise 1.2 — the softmax backward pass, eq. (1.5)
# ---------------------------------------------------------------------------------------------------------------

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


def coefficient_words(have: float, want: float, sizes: dict[str, int]) -> str:
    """How a recovered coefficient relates to the right one: "has the opposite sign", "is missing", "is 1/T (= 1/4)
    of what it should be: a mean where the sum belongs", "is 2 ×: counted twice", or the ratio."""
    if abs(have) < 1e-9:
        return "is missing"
    ratio = have / want
    if _is_close(ratio, -1.0, 1e-4):
        return f"has the opposite sign ({have:+.4g} where the equation has {want:+.4g})"
    for name, size in sizes.items():
        if size > 1 and _is_close(ratio, 1 / size, 1e-4):
            return (f"is {have:+.4g}, 1/{name} (= 1/{size}) of the right {want:+.4g}: a mean over the {size} entries "
                    f"where the sum belongs")
        if size > 1 and _is_close(ratio, float(size), 1e-4):
            return f"is {have:+.4g}, {name} (= {size}) times the right {want:+.4g}"
    if _is_close(ratio, 2.0, 1e-4):
        return f"is {have:+.4g}, twice the right {want:+.4g}: the term is counted twice"
    if _is_close(ratio, 0.5, 1e-4):
        return f"is {have:+.4g}, half the right {want:+.4g}"
    return f"is {have:+.4g} where the equation has {want:+.4g}"


def _softmax_coefficient_message(coefficients: dict[str, float], T: int = 0, total: float = math.nan) -> str | None:
    expected = {"p⊙g": 1.0, "p⊙⟨g,p⟩": -1.0}
    display = {**_SOFTMAX_DISPLAY, **{n: f"p⊙Σ_axis{n[3:]}(p⊙g)" for n in coefficients if n[3:].isdigit()}}
    if all(_is_close(coefficients.get(n, 0.0), expected.get(n, 0.0), 1e-4, 1e-6) for n in coefficients):
        return None
    m = _multiplier(coefficients, expected)
    if m is not None:
        if _is_close(m, -1.0, 1e-4):
            return "the sign is flipped: dL/ds = p ⊙ (g − ⟨g, p⟩) (eq. (1.5))."
        return None  # a constant factor: Exercise.compare names it
    yours = f"yours is {_formula(coefficients, display)}; eq. (1.5) is p⊙g − p⊙⟨g,p⟩ (⟨g,p⟩ = Σ_j p_j g_j per row): "
    has = {n for n, c in coefficients.items() if abs(c) > 1e-6}
    if has == {"p⊙g", "p⊙⟨g,p⟩", "p⊙p⊙g", "p⊙p⊙⟨g,p⟩"} and _is_close(coefficients["p⊙g"], 1.0, 1e-4) and \
            _is_close(coefficients["p⊙⟨g,p⟩"], -1.0, 1e-4) and \
            _is_close(coefficients["p⊙p⊙⟨g,p⟩"], -coefficients["p⊙p⊙g"], 1e-4):
        b = coefficients["p⊙p⊙g"]
        factor = f"1 {'−' if b < 0 else '+'} {'' if _is_close(abs(b), 1.0, 1e-4) else f'{abs(b):.4g}·'}p"
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
        if _is_close(constant, total, 1e-4) and "p⊙⟨g,p⟩" not in has:
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
                for n, want in expected.items() if not _is_close(coefficients.get(n, 0.0), want, 1e-4, 1e-6)]
        return yours + "; ".join(said) + ". Eq. (1.5) subtracts ⟨g,p⟩ = Σ_j p_j g_j once, inside p ⊙ (g − ⟨g,p⟩)."
    return yours + "compare each term with eq. (1.5)."


def _softmax_probes(p, g):
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
        got = EX_SOFTMAX_BACKWARD.call(softmax_backward, p.clone(), grad_p.clone(), case=case)
        _compare(EX_SOFTMAX_BACKWARD, got, expected, case, name="dL/ds", equation="eq. (1.5)",
                 probes=_softmax_probes(p, grad_p))
    EX_SOFTMAX_BACKWARD.passed(f"{len(SOFTMAX_CASES)} cases (batched, square, masked zeros, a vector, a single "
                               f"entry) match PyTorch's softmax backward (torch.autograd.grad).")


# ---------------------------------------------------------------------------------------------------------------
# Exercise 1.3 — attention as a torch.autograd.Function, eqs. (1.7)–(1.9)
# ---------------------------------------------------------------------------------------------------------------

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
    def sizes(self) -> dict[str, int]:
        return {**dict(zip(_BATCH_AXES, self.batch)), "Tq": self.Tq, "Tk": self.Tk, "d_k": self.d_k, "d_v": self.d_v}

    def own_reading(self, error: BaseException, line: str) -> str | None:
        sizes = _broadcast_sizes(error)
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
        match = _INVALID_GRADIENT.search(str(error))
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
            return None
        axes = ", ".join(("B", "H")[:len(self.batch)] + layout[owners[0]])
        return (f"backward's gradient number {index} has the shape of {owners[0]}, ({axes}): it looks like "
                f"d{owners[0].upper()}, returned where d{names[index].upper()} belongs. backward returns the "
                f"gradients in the order forward took its inputs: return dQ, dK, dV.")

    def _product(self, error: BaseException) -> str | None:
        """A matrix product whose inner sizes do not meet, read in terms of eqs. (1.7)–(1.9)."""
        inner = _matmul_inner_sizes(error)
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
        if all(_is_close(found.get(n, 0.0), expected.get(n, 0.0), 1e-4, 1e-9) for n in found):
            return None
        yours = f"yours is {_formula(found, display)}; eq. (1.9) with dS of eq. (1.8) is c·{display['P⊙dP']} − " \
                f"c·{display['P⊙⟨dP,P⟩']}, c = 1/√d_k = {c:.4g}: "
        m = _multiplier(found, expected)
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
        if has <= {"P⊙dP", "P⊙⟨dP,P⟩"} and _is_close(found.get("P⊙dP", 0.0), c, 1e-4):
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
        if fit.residual < 1e-6 and _is_close(fit.coefficients["dP"], 1.0, 1e-4):
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
    found = _dp_message(ds, p, candidates)
    if found:
        return found
    for softmax_probe in _softmax_probes(p, grad_p)[:2]:  # recovered coefficients, then the bracket
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
    return _weights_facts(q, k, None, who="the weights inside your output", upstream=upstream)


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
        out = EX_FUNCTION.call(apply, *leaves, what="AttentionFunction.forward", case=case)
        upstream = "Your forward uses your attention_weights: does it pass the check of Exercise 1.1?"
        _compare(EX_FUNCTION, out, expected_out, case, name="forward output", equation="eq. (1.1), O = PV",
                 axes=(*_BATCH_AXES[:len(case.batch)], "Tq", "d_v"),
                 probes=[_weighted_average_probe(q, k, v, _output_facts(q, k, upstream), "your forward output")])
        EX_FUNCTION.call(out.backward, grad_out, what="AttentionFunction.backward", case=case)
        dq_terms, dk_terms = _gradient_terms(q, k, v, grad_out)
        square = q.shape == k.shape == v.shape  # some mix-ups only keep the shapes right when Tq = Tk
        gradients = [
            ("dL/dV", leaves[2], dv, "eq. (1.7), dV = Pᵀ dO",
             [_dv_weights_probe(q, k, v, grad_out, dv), _dv_rows_probe(grad_out, dv)],
             [Mistake(reference_attention_weights(q, k) @ grad_out, "dV = Pᵀ · dO (eq. (1.7)): the attention "
                                                                    "weights need a transpose.") if square else None]),
            ("dL/dQ", leaves[0], dq, "eq. (1.9), dQ = c·dS·K",
             [_gradient_probe("dQ", dq_terms, case), _ds_probe("dQ", apply, q, k, v, grad_out, case),
              _dq_scores_probe(k, case)],
             [Mistake(dk, "you returned dK where dQ belongs: backward returns gradients in the order forward took "
                          "its inputs, (q, k, v).") if square else None]),
            ("dL/dK", leaves[1], dk, "eq. (1.9), dK = c·dSᵀ·Q",
             [_gradient_probe("dK", dk_terms, case), _ds_probe("dK", apply, q, k, v, grad_out, case),
              _dk_sum_probe()],
             [Mistake(dq, "you returned dQ where dK belongs: backward returns gradients in the order forward took "
                          "its inputs, (q, k, v).") if square else None]),
        ]
        for name, leaf, expected, equation, probes, mistakes in gradients:
            if leaf.grad is None:
                raise EX_FUNCTION.fail(f"backward returned None for {name}; return a gradient for each input of "
                                       f"forward, in order (q, k, v).", case=case)
            _compare(EX_FUNCTION, leaf.grad, expected, case, name=name, equation=equation, probes=probes,
                     mistakes=mistakes, factors={"√d_k": math.sqrt(case.d_k)},
                     axes=(*_BATCH_AXES[:len(case.batch)], "T", "d"))
    _gradcheck(apply)
    EX_FUNCTION.passed(f"forward and dL/dQ, dL/dK, dL/dV match autograd on {len(FUNCTION_CASES)} cases (Tq ≠ Tk, "
                       f"d_v ≠ d_k, T=1, float32), and torch.autograd.gradcheck confirms your backward in float64.")


def _dv_weights_probe(q, k, v, grad_out, dv):
    """dV = Pᵀ dO: where dO's rows are independent (Tq ≤ d_v) the P inside the learner's dV is recovered and
    diagnosed as attention weights (a P recomputed without the scale, or over the wrong axis, shows there) — or
    found to be dS, the scores' gradient."""
    facts = _weights_facts(q, k, None, who="the weights inside your dV (dV = Pᵀ dO)", equation="eq. (1.7)",
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
        return weights_problem(transposed.transpose(-2, -1), facts)
    return probe


def softmax_backward_reference(p: torch.Tensor, grad_p: torch.Tensor) -> torch.Tensor:
    """Eq. (1.5): p ⊙ (g − ⟨g, p⟩) over the last axis."""
    return p * (grad_p - (grad_p * p).sum(-1, keepdim=True))


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
    problem = EX_FUNCTION.call(_gradcheck_problem, apply, inputs, what="AttentionFunction (under gradcheck)",
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


# ---------------------------------------------------------------------------------------------------------------
# Exercise 1.4 — multi-head self-attention with einops, eq. (1.10)
# ---------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class HeadsCase(ChapterCase):
    B: int = 1
    T: int = 1
    D: int = 8
    H: int = 1
    causal: bool = False
    padded: int = 0  # the last `padded` keys of the second sequence are padding
    score_shift: float = 0.0  # added to every score of every head (through q's and k's first feature of each head)

    @property
    def layout(self) -> str:
        return "x (B, T, D)"

    @property
    def sizes(self) -> dict[str, int]:
        return {"B": self.B, "T": self.T, "D": self.D, "H": self.H, "Dh": self.D // self.H}

    def own_reading(self, error: BaseException, line: str) -> str | None:
        if _broadcast_sizes(error) and "mask" in line:
            return ("The scores are (B, H, T, T). key_padding_mask is (B, T), True for a padded key: to hide keys "
                    "(the last axis) view it as key_padding_mask[:, None, None, :], (B, 1, 1, T); the causal mask "
                    "(T, T) broadcasts as it is." + named_sizes_in(str(error), self.sizes))
        return None

    def key_padding_mask(self) -> torch.Tensor | None:
        if not self.padded:
            return None
        padding = torch.zeros(self.B, self.T, dtype=torch.bool)
        padding[1, self.T - self.padded:] = True  # True = padding, nn.MultiheadAttention's convention
        return padding


HEADS_CASES = [
    HeadsCase("B=2, T=5, D=24, H=3 (Dh=8)", B=2, T=5, D=24, H=3),
    HeadsCase("causal, B=2, T=6, D=24, H=3", B=2, T=6, D=24, H=3, causal=True),
    HeadsCase("key padding (2 padded keys), B=2, T=5, D=24, H=3", B=2, T=5, D=24, H=3, padded=2),
    HeadsCase("causal + key padding, B=2, T=6, D=24, H=3", B=2, T=6, D=24, H=3, causal=True, padded=2),
    HeadsCase("T=1, D=8, H=2", B=1, T=1, D=8, H=2, causal=True),
    HeadsCase("one head, B=1, T=4, D=8", B=1, T=4, D=8, H=1),
    HeadsCase("causal, D=16, H=4 (Dh=4=√D)", B=2, T=4, D=16, H=4, causal=True),
    HeadsCase("causal, D=12, H=3, T=6", B=2, T=6, D=12, H=3, causal=True),
    HeadsCase("float64, causal + key padding, every score ≈ −2·10⁴", torch.float64, B=2, T=5, D=24, H=3,
              causal=True, padded=2, score_shift=SHIFT),
]


def _shift_every_head(module, case: HeadsCase) -> None:
    """Set q's and k's first feature of every head to ±α whatever the token, so that every score of every head
    gains α·(−α)/√Dh = score_shift: the right output does not change (a softmax ignores a shift of its row)."""
    D, Dh = case.D, case.D // case.H
    alpha = math.sqrt(abs(case.score_shift) * math.sqrt(Dh))
    with torch.no_grad():
        for h in range(case.H):
            for row, value in ((h * Dh, alpha), (D + h * Dh, math.copysign(alpha, case.score_shift))):
                module.qkv.weight[row] = 0.0
                module.qkv.bias[row] = value


def reference_multi_head(x, qkv: torch.nn.Linear, out: torch.nn.Linear, n_heads: int, causal=False,
                         key_padding_mask=None, *, split="B T (H Dh) -> B H T Dh",
                         merge="B H T Dh -> B T (H Dh)", scale_by="head", project=True, order=(0, 1, 2),
                         causal_diagonal=0, causal_upper=False, pad_queries=False, invert_padding=False):
    """Multi-head self-attention; the keyword arguments build the classic mistakes the check recognises."""
    B, T, D = x.shape
    parts = qkv(x).chunk(3, dim=-1)  # 3 × (B, T, D)
    q, k, v = (rearrange(parts[i], split, H=n_heads) for i in order)  # (B, H, T, Dh)
    d = {"model": D, "head": D // n_heads, "none": 1}[scale_by]
    scores = q @ k.transpose(-2, -1) / math.sqrt(d)  # (B, H, T, T)
    allowed = _allowed(B, T, causal, key_padding_mask, causal_diagonal=causal_diagonal, causal_upper=causal_upper,
                       pad_queries=pad_queries, invert_padding=invert_padding)
    weights = scores.masked_fill(~allowed, -math.inf).softmax(dim=-1)
    heads = rearrange(weights @ v, merge)  # (B, T, D)
    return out(heads) if project else heads


def _allowed(B, T, causal, key_padding_mask, *, causal_diagonal=0, causal_upper=False, pad_queries=False,
             invert_padding=False) -> torch.Tensor:
    """(B, 1, T, T) bool, True = may attend, from the causal flag and nn.MultiheadAttention's key_padding_mask."""
    allowed = torch.ones(T, T, dtype=torch.bool)
    if causal:
        allowed = allowed.triu(1 - causal_diagonal) if causal_upper else allowed.tril(causal_diagonal)
    allowed = allowed.expand(B, 1, T, T)
    if key_padding_mask is not None:
        keep = key_padding_mask if invert_padding else ~key_padding_mask  # (B, T): True = a real token
        keep = keep[:, None, :, None] if pad_queries else keep[:, None, None, :]
        allowed = allowed & keep
    return allowed


def _copy_to_library(module, n_heads: int) -> torch.nn.MultiheadAttention:
    """nn.MultiheadAttention with the learner's weights: qkv packs [W_Q; W_K; W_V] like in_proj_weight."""
    d_model = module.qkv.in_features
    library = torch.nn.MultiheadAttention(d_model, n_heads, batch_first=True).to(module.qkv.weight.dtype)
    with torch.no_grad():
        library.in_proj_weight.copy_(module.qkv.weight)  # rows: [W_q; W_k; W_v]
        library.in_proj_bias.copy_(module.qkv.bias)
        library.out_proj.weight.copy_(module.out.weight)
        library.out_proj.bias.copy_(module.out.bias)
    return library.eval()


def _structure_of_module(module, case: HeadsCase) -> None:
    """The check copies weights through `qkv` and `out`: they must be the given Linear layers."""
    qkv, out = getattr(module, "qkv", None), getattr(module, "out", None)
    if not isinstance(qkv, torch.nn.Linear) or not isinstance(out, torch.nn.Linear) or qkv.bias is None \
            or out.bias is None:
        raise EX_HEADS.fail("keep the given __init__: the check copies weights through `self.qkv` (nn.Linear D → 3D) "
                            "and `self.out` (nn.Linear D → D).", case=case)
    D = case.D
    if tuple(qkv.weight.shape) != (3 * D, D) or tuple(out.weight.shape) != (D, D):
        raise EX_HEADS.fail(f"self.qkv must map D → 3D and self.out D → D (D = {D}): yours have weights of shape "
                            f"{tuple(qkv.weight.shape)} and {tuple(out.weight.shape)}; keep the given __init__.",
                            case=case)


# ---- which tokens each output depends on: the mask the learner's module really applies

def _token_dependence(module, x, kwargs) -> torch.Tensor | None:
    """(B, T, B, T): how much the output of token t of sequence b moves when token s of sequence b' is nudged,
    relative to the output's size; None when the module cannot be run again."""
    B, T, D = x.shape
    nudge = EX_HEADS.randn(D, key="nudge", dtype=x.dtype)
    try:
        with torch.no_grad():
            base = module(x.clone(), **kwargs)
            if not isinstance(base, torch.Tensor) or base.shape != x.shape or not torch.isfinite(base).all():
                return None
            size = base.abs().max().clamp_min(1e-12)
            strength = torch.zeros(B, T, B, T, dtype=torch.float64)
            for b in range(B):
                for s in range(T):
                    moved = x.clone()
                    moved[b, s] += nudge
                    out = module(moved, **kwargs)
                    if not isinstance(out, torch.Tensor) or out.shape != base.shape:
                        return None
                    strength[:, :, b, s] = ((out - base).abs().amax(-1) / size).double()
    except Exception:  # noqa: BLE001 - a probe that cannot run says nothing
        return None
    return strength


def _mask_candidates(case: HeadsCase, pad) -> dict[tuple[str, str, str], torch.Tensor]:
    """(B, T, T) "may attend" patterns made of the case's masks, right and wrong, keyed by (causal part, padding
    part, how they are combined)."""
    B, T = case.B, case.T
    ones = torch.ones(B, T, T, dtype=torch.bool)
    causal = {"none": ones, "tril": ones.tril(), "triu": ones.triu(), "tril(-1)": ones.tril(-1),
              "triu(1)": ones.triu(1), "tril(1)": ones.tril(1)}
    padding = {"none": ones}
    if pad is not None:
        padding.update({"keys": ~pad[:, None, :].expand(B, T, T), "inverted": pad[:, None, :].expand(B, T, T),
                        "queries": ~pad[:, :, None].expand(B, T, T)})
    found = {}
    for (c_name, c_mask), (p_name, p_mask) in itertools.product(causal.items(), padding.items()):
        found[(c_name, p_name, "&")] = c_mask & p_mask
        if c_name != "none" and p_name != "none":
            found[(c_name, p_name, "|")] = c_mask | p_mask
    return found


def _wrong_parts(parts: tuple[str, str, str], case: HeadsCase) -> int:
    """How many of a candidate's parts differ from the right ones."""
    right = ("tril" if case.causal else "none", "keys" if case.padded else "none", "&")
    unasked = (not case.causal and parts[0] != "none") + (not case.padded and parts[1] != "none")
    return sum(a != b for a, b in zip(parts, right)) + unasked  # a mask nobody asked for is the less likely


def _matching_mask(matches: Callable[[torch.Tensor], bool], case: HeadsCase, pad, *,
                   diagonal: bool = True) -> str | None:
    """The reading of the candidate mask that ``matches`` (fewest wrong parts), or None when none matches, or
    when candidates with as few wrong parts say different things. ``diagonal=False``: leave out the causal masks
    that differ from others only on the diagonal (what token dependence cannot see: a token always depends on
    itself)."""
    found = [(parts, _wrong_parts(parts, case)) for parts, mask in _mask_candidates(case, pad).items()
             if (diagonal or parts[0] not in ("triu(1)", "tril(-1)")) and matches(mask)]
    found = [(parts, n) for parts, n in found if n > 0]
    if not found:
        return None
    fewest = min(n for _, n in found)
    messages = {_mask_parts_message(parts, case) for parts, n in found if n == fewest}
    return messages.pop() if len(messages) == 1 else None


def _mask_parts_message(parts: tuple[str, str, str], case: HeadsCase) -> str:
    """What is wrong with a (causal part, padding part, combination) against the right one."""
    causal_part, padding_part, combination = parts
    said = []
    if case.causal and causal_part == "none":
        said.append("the causal mask is missing: with causal=True token i must not see later tokens (j > i)")
    if not case.causal and causal_part != "none":
        said.append("you applied a causal mask although causal=False: every token may attend to every other")
    if causal_part == "triu":
        said.append("your causal mask is the upper triangle (triu): token i attends to j ≥ i, itself and the "
                    "future, and not to the past. 'May attend' is the lower triangle, "
                    "torch.ones(T, T, dtype=torch.bool).tril() (key j ≤ query i)")
    if causal_part == "triu(1)":
        said.append("your causal mask is inverted: it is True on the future (triu(1), the pairs to forbid), but "
                    "the mask means 'may attend': its complement, torch.ones(T, T, dtype=torch.bool).tril()")
    if causal_part == "tril(-1)":
        said.append("your causal mask hides the diagonal too: a token may attend to itself, torch.tril with "
                    "diagonal=0")
    if causal_part == "tril(1)":
        said.append("your causal mask lets each token see the next one too (tril(1)): a token may attend to "
                    "itself and earlier tokens, tril() with diagonal=0")
    if case.padded and padding_part == "none":
        said.append("padded keys are attended: key_padding_mask was not applied")
    if padding_part == "inverted":
        said.append("key_padding_mask is inverted: it is True for a padded key to ignore (nn.MultiheadAttention's "
                    "convention), so the keys that may be attended are ~key_padding_mask")
    if padding_part == "queries":
        said.append("you masked padded *queries* (rows) instead of padded *keys* (columns): "
                    "~key_padding_mask[:, None, None, :] hides keys, the last axis of the (B, H, T, T) scores")
    if combination == "|":
        said.append("you combined the two masks with | (or): a key may be attended only if both masks allow it, "
                    "causal & ~key_padding_mask")
    return "; ".join(said) + " (eq. (1.2))."


def _dependence_message(strength: torch.Tensor, case: HeadsCase, pad, *, fallback: bool = False) -> str | None:
    """Compare which tokens each output depends on with what the masks allow (a token always depends on itself,
    through its query). First (``fallback=False``) only what the pattern says for sure: sequences that mix,
    tokens that do not mix at all, or a pattern that is exactly a known wrong mask; then (``fallback=True``) the
    first pair that depends where it must not, or does not where it may."""
    B, T = case.B, case.T
    allowed = _allowed(B, T, case.causal, pad)[:, 0]  # (B, T, T)
    eye = torch.eye(T, dtype=torch.bool)
    index = torch.arange(B)
    within = strength[index, :, index, :]  # (B, T, T): sequence b's outputs against its own tokens
    felt = within > 1e-6
    expected = allowed | eye
    others = strength.clone()
    others[index, :, index, :] = 0
    if not fallback and (others > 1e-6).any():
        b, t, b2, s = (int(i) for i in (others > 1e-6).nonzero()[0])
        return (f"the output of token {t} of sequence {b} changes when token {s} of sequence {b2} changes: "
                f"sequences of a batch must not mix. A reshape or rearrange moved the batch axis B into the "
                f"tokens or the heads: split with rearrange(t, 'B T (H Dh) -> B H T Dh') and merge with "
                f"'B H T Dh -> B T (H Dh)' (eq. (1.10)).")
    if torch.equal(felt, expected):
        return None
    reference = within[expected & ~eye]
    strong = within > 1e-3 * reference.median() if reference.numel() else felt
    if not fallback:
        if (felt & ~strong).any():
            return None  # some dependence is weak (a finite fill?): no known mask explains it, the fallback says so
        if torch.equal(felt, eye.expand_as(felt)):
            return ("each token's output depends only on that token's own input: your attention does not mix "
                    "tokens. The scores of each head must be (B, H, T, T), query tokens against key tokens: move the "
                    "heads next to the batch axis, rearrange(t, 'B T (H Dh) -> B H T Dh') (not 'B T H Dh', which "
                    "attends over the heads), and take the softmax over the keys, the last axis (eq. (1.10)).")
        return _matching_mask(lambda mask: torch.equal(felt, mask | eye), case, pad, diagonal=False)
    leaky = felt & ~expected & ~strong
    if leaky.any() and torch.equal(felt & strong | eye, expected):
        b, t, s = (int(i) for i in leaky.nonzero()[0])
        return (f"token {t} of sequence {b} depends, weakly, on token {s}, which it must not see "
                f"({_why_forbidden((b, t, s), case, pad)}): your masked scores keep a small weight. Set them to −∞ "
                f"(eq. (1.2)): a finite fill or an added penalty only shrinks the weight.")
    extra, missing = felt & ~expected, expected & ~felt
    if extra.any():
        b, t, s = (int(i) for i in extra.nonzero()[0])
        return (f"the output of token {t} of sequence {b} depends on token {s}, which it must not see "
                f"({_why_forbidden((b, t, s), case, pad)}): set the forbidden scores to −∞ before the softmax "
                f"(eq. (1.2)); {int(extra.sum())} such pairs in all.")
    b, t, s = (int(i) for i in missing.nonzero()[0])
    return (f"the output of token {t} of sequence {b} does not depend on token {s}, which it may attend to: your "
            f"mask hides {int(missing.sum())} allowed (query, key) pairs. Hide only what the causal mask (key j > "
            f"query i) and key_padding_mask (True = padding) forbid (eq. (1.2)).")


def _value_source_message(head_out: torch.Tensor, h: int, qkv_out: torch.Tensor, x: torch.Tensor,
                          case: HeadsCase, others: str) -> str | None:
    """Head h's output is a weighted average of the rows of some Dh features: find which ones (a slice of q, k or
    v of some head, or of x itself) when they are not V_h's."""
    D, H = case.D, case.H
    Dh = D // H
    candidates = {}
    for c, part in enumerate("qkv"):
        for g in range(H):
            candidates[f"{part}'s head-{g} features, qkv(x)[..., {c * D + g * Dh}:{c * D + (g + 1) * Dh}]"] = \
                qkv_out[..., c * D + g * Dh:c * D + (g + 1) * Dh]
            candidates[f"every H-th feature of {part} from {g}, qkv(x)[..., {c * D + g}:{(c + 1) * D}:{H}] (a "
                       f"(Dh H) split)"] = qkv_out[..., c * D + g:(c + 1) * D:H]
        for g in range(3 * H):
            candidates.setdefault(f"features {g * Dh}–{(g + 1) * Dh - 1} of qkv(x)", qkv_out[..., g * Dh:(g + 1) * Dh])
    for g in range(H):
        candidates[f"x itself (features {g * Dh}–{(g + 1) * Dh - 1} of the input, not projected)"] = \
            x[..., g * Dh:(g + 1) * Dh]
    right = f"v's head-{h} features, qkv(x)[..., {2 * D + h * Dh}:{2 * D + (h + 1) * Dh}]"
    for name, values in candidates.items():
        if name == right:
            continue
        if recover_weights(head_out, values) is not None:
            return (f"head {h}'s output{others} is a weighted average of the rows of {name}; O_h = P_h V_h (eq. "
                    f"(1.10)) averages the values of head {h}: {right}. Split q, k, v = self.qkv(x).chunk(3, dim=-1) "
                    f"first, then each with rearrange(t, 'B T (H Dh) -> B H T Dh', H=n_heads).")
    return None


def _heads_nonfinite(case: HeadsCase, pad):
    """NaN outputs in 1.4: rows of scores that are all −∞ (0/0), read against the masks that leave exactly those
    rows without a key."""
    def reading(got):
        bad = ~torch.isfinite(got).all(-1)  # (B, T): tokens whose output is NaN/inf
        if case.score_shift:
            return _overflow_text(case, "outputs")
        structure = _matching_mask(lambda mask: torch.equal(~mask.any(-1), bad), case, pad)
        where = "; ".join(f"sequence {b}: token {', '.join(str(t) for t in bad[b].nonzero().flatten().tolist())}"
                          for b in range(case.B) if bad[b].any())
        if structure:
            return (f"NaN at the outputs of {where}: every key of those rows was hidden (the softmax of a row of −∞ "
                    f"is 0/0), which is what this mask does: {structure}")
        return (f"NaN at the outputs of {where}: a row of scores that is all −∞ gives 0/0 after the softmax, yet "
                f"the masks of this case leave every token at least one key (itself): your mask hides too much "
                f"there (eq. (1.2)).")
    return reading


_HEADS_SIZES = (Size("Dh", "D // n_heads, q.shape[-1] after the split", 6, 10, "the width of one head"),
                Size("H", "n_heads", 2, 3, "the number of heads"),
                Size("T", "x.shape[1]", 4, 5, "the number of tokens"),
                Size("B", "x.shape[0]", 1, 2, "the batch size"))
_MODEL_WIDTH = (Size("D", "x.shape[-1]", 0, 0, "the model width, D = H · Dh"), ("Dh", "H"))


def _heads_law(MultiHeadSelfAttention, who: str):
    """Which sizes the scale inside the learner's heads follows: head 0's weights, recovered from its output
    (float64, W_O = I, no mask), fitted as softmax(a · q kᵀ) at other sizes, one changed at a time."""
    def fit_at(sizes):
        Dh, H, T, B = sizes["Dh"], sizes["H"], sizes["T"], sizes["B"]
        try:
            with torch.random.fork_rng(devices=[]), torch.no_grad():
                torch.manual_seed(EX_HEADS.seed("law", *sizes.values()))
                module = MultiHeadSelfAttention(H * Dh, H).double()
                module.out.weight.copy_(torch.eye(H * Dh, dtype=torch.float64))
                module.out.bias.zero_()
                x = EX_HEADS.randn(B, T, H * Dh, key=("law", *sizes.values()), dtype=torch.float64)
                heads = module(x)
                q, k, v = (t[..., :Dh] for t in module.qkv(x).chunk(3, dim=-1))  # head 0: (B, T, Dh) each
        except Exception:  # noqa: BLE001 - a probe that cannot run says nothing
            return None
        if not isinstance(heads, torch.Tensor) or heads.shape != x.shape:
            return None
        weights = recover_weights(heads[..., :Dh], v)
        return None if weights is None else softmax_temperature(weights, q @ k.transpose(-2, -1))

    return _once(lambda: scale_law_message(scale_law(fit_at, _HEADS_SIZES), _HEADS_SIZES, "Dh", who=who,
                                           equation="eq. (1.10)", products=[_MODEL_WIDTH]))


def _score_sources(q, k, v, x_heads) -> dict[str, torch.Tensor]:
    """Products of other pairs than (q, k) of one head, (B, H, T, T), that a head's scores may have been made of."""
    q, k, v = (t.double() for t in (q, k, v))
    return {"x_h x_hᵀ (x split into heads, not projected by self.qkv)": x_heads @ x_heads.mT,
            "q_h q_hᵀ (queries against queries)": q @ q.mT, "k_h k_hᵀ (keys against keys)": k @ k.mT,
            "k_h q_hᵀ (keys against queries: the scores transposed)": k @ q.mT,
            "q_h v_hᵀ (the values where the keys belong)": q @ v.mT}


def _support_reading(support: torch.Tensor, case: HeadsCase, pad) -> str | None:
    """The mask that recovered weights (B, H, T, T) show, when every head shows the same one."""
    if not torch.equal(support.all(1), support.any(1)):
        return None
    return _matching_mask(lambda mask: torch.equal(mask, support[:, 0]), case, pad)


def _heads_probes(module, x, case: HeadsCase, got_kwargs: dict):
    """Probes that look inside the learner's module: run it again with W_O = I to read its merged heads, then
    check the projection, the merge, and each head as attention weights recovered from its output."""
    B, T, D, H = case.B, case.T, case.D, case.H
    Dh = D // H
    pad = case.key_padding_mask()
    cache = {}

    def reference():
        """q, k, v (B, H, T, Dh), allowed (B, 1, T, T), weights (B, H, T, T), merged heads (B, T, D)."""
        if "reference" not in cache:
            with torch.no_grad():
                q, k, v = (rearrange(t, "B T (H Dh) -> B H T Dh", H=H) for t in module.qkv(x).chunk(3, dim=-1))
                allowed = _allowed(B, T, case.causal, pad)
                weights = reference_attention_weights(q, k, allowed)
                cache["reference"] = q, k, v, allowed, weights, rearrange(weights @ v, "B H T Dh -> B T (H Dh)")
        return cache["reference"]

    def merged_heads():
        """The learner's merged heads: their module with self.out set to the identity."""
        if "heads" not in cache:
            cache["heads"] = None
            try:
                probe = copy.deepcopy(module)
                with torch.no_grad():
                    probe.out.weight.copy_(torch.eye(D, dtype=x.dtype))
                    probe.out.bias.zero_()
                    heads = probe(x.clone(), **got_kwargs)
                if isinstance(heads, torch.Tensor) and heads.shape == (B, T, D) and torch.isfinite(heads).all():
                    cache["heads"] = heads.detach()
            except Exception:  # noqa: BLE001 - a probe that cannot run says nothing
                pass
        return cache["heads"]

    def projection(got):
        heads = merged_heads()
        if heads is None:
            return None
        with torch.no_grad():
            projected = module.out(heads)
        if torch.allclose(got, heads, atol=1e-5) and not torch.allclose(projected, heads, atol=1e-5):
            return ("the output projection self.out is missing after merging the heads: return "
                    "self.out(concat(O_1, …, O_H)) (eq. (1.10), W_O).")
        if not torch.allclose(got, projected, atol=1e-5, rtol=1e-4):
            return ("your output is not self.out applied to your merged heads: apply self.out once, as the last "
                    "step, to the heads merged back to (B, T, D) (eq. (1.10): concat(O_1, …, O_H) W_O).")
        return None

    def merge(got):
        heads, right_heads = merged_heads(), reference()[-1]
        if heads is None or torch.allclose(heads, right_heads, atol=1e-5):
            return None
        if T > 1 and torch.allclose(heads.flatten(1).sort(-1).values, right_heads.flatten(1).sort(-1).values,
                                    atol=1e-5):
            return ("your merged heads hold the right numbers in the wrong places: each head is right, the merge "
                    "is not. Undo the split with rearrange(heads, 'B H T Dh -> B T (H Dh)') — a reshape to "
                    "(B, T, D) without first moving H next to Dh mixes tokens and heads (eq. (1.10): "
                    "concat(O_1, …, O_H) per token).")
        return None

    def each_head(got):
        heads = merged_heads()
        if heads is None:
            return None
        q, k, v, allowed, weights, right_heads = reference()
        wrong = [h for h in range(H) if not torch.allclose(heads[..., h * Dh:(h + 1) * Dh],
                                                           right_heads[..., h * Dh:(h + 1) * Dh], atol=1e-5)]
        if not wrong or T > Dh:  # with T > Dh the weights cannot be recovered from a head's output
            return None
        others = f" (heads {', '.join(map(str, wrong))} of {H} are wrong)" if len(wrong) > 1 else \
            f" (head {wrong[0]} of {H} is wrong)"
        recovered = []
        for h in range(H):
            head_weights = recover_weights(heads[..., h * Dh:(h + 1) * Dh], v[:, h])  # (B, T, T)
            if head_weights is None:
                with torch.no_grad():
                    qkv_out = module.qkv(x)
                cache["not an average"] = (
                    f"head {h}'s output{others} is not a weighted average of head {h}'s values V_{h} (eq. (1.10): "
                    f"O_h = P_h V_h). Split each of q, k, v = self.qkv(x).chunk(3, dim=-1) with "
                    f"rearrange(t, 'B T (H Dh) -> B H T Dh', H=n_heads), keep q, k, v in that order, and attend "
                    f"within each head.")
                return _value_source_message(heads[..., h * Dh:(h + 1) * Dh], h, qkv_out, x, case, others)
            recovered.append(head_weights)
        facts = WeightsFacts(
            raw_scores=(q @ k.transpose(-2, -1)).double(), expected=weights.double(),
            scale=1 / math.sqrt(Dh), scale_text="1/√Dh", exact=False, allowed=allowed,
            constants={"√Dh": math.sqrt(Dh), "Dh": Dh, "√D": math.sqrt(D), "D": D, "√H": math.sqrt(H), "H": H},
            advice={**_weights_advice("Dh", "width of each head, Dh = D/H"),
                    "1/√D": "you scaled by √D (the model width); each head's scores are scaled by √Dh = √(D/H), "
                            "its own width.",
                    "1/D": "you divided by D, the model width; divide each head's scores by √Dh = √(D/H)."},
            equation="eq. (1.10)", who=f"the weights of your heads{others}", batch_names=("B", "H"),
            why_forbidden=lambda index: _why_forbidden(index, case, pad),
            upstream="If you call your attention here, check that it passes Exercise 1.1.",
            mask_reading=lambda support: _support_reading(support, case, pad),
            score_sources=_score_sources(q, k, v, rearrange(x, "B T (H Dh) -> B H T Dh", H=H).double()),
            law=_heads_law(type(module), f"the weights of your heads{others}"))
        return weights_problem(torch.stack(recovered, dim=1), facts)  # (B, H, T, T)

    def strength():
        if "strength" not in cache:  # not in the shifted case: its scores are built for other tests
            cache["strength"] = None if case.score_shift else _token_dependence(module, x, got_kwargs)
        return cache["strength"]

    def dependence(got):
        return None if strength() is None else _dependence_message(strength(), case, pad)

    def dependence_fallback(got):
        found = None if strength() is None else _dependence_message(strength(), case, pad, fallback=True)
        return found or cache.get("not an average")

    return [projection, merge, each_head, dependence, dependence_fallback]


def _no_grad(generator):
    """Run a generator of Mistakes under torch.no_grad (the references use the learner's modules)."""
    while True:
        with torch.no_grad():
            try:
                item = next(generator)
            except StopIteration:
                return
        yield item


def _why_forbidden(index, case: HeadsCase, pad) -> str:
    b, i, j = int(index[0]), int(index[-2]), int(index[-1])
    reasons = []
    if case.causal and j > i:
        reasons.append(f"key {j} comes after query {i} (causal)")
    if pad is not None and bool(pad[b, j]):
        reasons.append(f"key {j} of sequence {b} is padding (key_padding_mask is True)")
    return " and ".join(reasons) or "the masks forbid it"


def _heads_mistakes(same: dict, case: HeadsCase):
    """The classic mistakes of eq. (1.10), tried before the probes; a generator, so that they are only computed
    for an answer that is wrong."""
    yield Mistake(reference_multi_head(**same, split="B T (Dh H) -> B H T Dh"),
                  "heads split in the wrong order: D is laid out as (H Dh), head-major, so split with "
                  "rearrange(x, 'B T (H Dh) -> B H T Dh', H=n_heads).")
    yield Mistake(reference_multi_head(**same, merge="B H T Dh -> B T (Dh H)"),
                  "heads merged in the wrong order: undo the split with 'B H T Dh -> B T (H Dh)'.")
    yield Mistake(reference_multi_head(**same, order=(1, 0, 2)),
                  "q and k are swapped: qkv(x) splits, in order, into q, k, v (like nn.MultiheadAttention's "
                  "in_proj_weight).")
    yield Mistake(reference_multi_head(**same, order=(0, 2, 1)),
                  "k and v are swapped: qkv(x) splits, in order, into q, k, v.")
    if case.causal:
        yield Mistake(reference_multi_head(**{**same, "causal": False}),
                      "with causal=True a token must not see later tokens: the causal mask is missing.")
        yield Mistake(reference_multi_head(**same, causal_diagonal=-1),
                      "your causal mask hides the diagonal too: a token may attend to itself (torch.tril with "
                      "diagonal=0).")
        yield Mistake(reference_multi_head(**same, causal_upper=True),
                      "your causal mask is flipped: it lets tokens see the future and hides the past.")
    if case.padded:
        yield Mistake(reference_multi_head(**{**same, "key_padding_mask": None}),
                      "padded keys received attention: key_padding_mask was not applied.")
        yield Mistake(reference_multi_head(**same, invert_padding=True),
                      "key_padding_mask is inverted: here True marks a padded key to ignore (nn.MultiheadAttention's "
                      "convention), the opposite of a 'may attend' mask.")
        yield Mistake(reference_multi_head(**same, pad_queries=True),
                      "you masked padded *queries* (rows); key_padding_mask hides padded *keys* (columns): "
                      "~key_padding_mask[:, None, None, :].")


@one_thread
def check_multi_head_attention(MultiHeadSelfAttention) -> None:
    """Exercise 1.4: ``MultiHeadSelfAttention(d_model, n_heads)(x, causal, key_padding_mask)`` against
    ``nn.MultiheadAttention`` with copied weights, and each head against eq. (1.10)."""
    with torch.random.fork_rng(devices=[]):  # initialising modules draws numbers: keep the learner's RNG as it was
        for case in HEADS_CASES:
            _check_heads_case(MultiHeadSelfAttention, case)
    EX_HEADS.passed(f"{len(HEADS_CASES)} cases (causal, key padding, both, T=1, one head, Dh ≠ √D, scores ≈ −2·10⁴ "
                    f"in float64) match "
                    f"nn.MultiheadAttention with copied weights.")


def _check_heads_case(MultiHeadSelfAttention, case: HeadsCase) -> None:
    """One case of 1.4: the learner's module against nn.MultiheadAttention with the same weights."""
    torch.manual_seed(EX_HEADS.seed(case.label, "init"))
    module = EX_HEADS.call(MultiHeadSelfAttention, case.D, case.H, what="MultiHeadSelfAttention(d_model, "
                           "n_heads)", case=case)
    _structure_of_module(module, case)
    if case.dtype != torch.float32:
        module = module.to(case.dtype)
    if case.score_shift:
        _shift_every_head(module, case)
    x = EX_HEADS.randn(case.B, case.T, case.D, key=(case.label, "x"), dtype=case.dtype)
    pad = case.key_padding_mask()
    kwargs = dict(causal=case.causal, key_padding_mask=pad)
    with torch.no_grad():
        got = EX_HEADS.call(module, x.clone(), **kwargs, what="MultiHeadSelfAttention.forward", case=case)
        library = _copy_to_library(module, case.H)
        attn_mask = ~causal_mask(case.T) if case.causal else None  # nn.MultiheadAttention: True = blocked
        expected, _ = library(x, x, x, attn_mask=attn_mask, key_padding_mask=pad, need_weights=False)
        same = dict(x=x, qkv=module.qkv, out=module.out, n_heads=case.H, **kwargs)
        assert torch.allclose(reference_multi_head(**same), expected, atol=1e-5), \
            "internal: the check's own reference disagrees with nn.MultiheadAttention"
    _compare(EX_HEADS, got, expected, case, equation="eq. (1.10)", axes=("B", "T", "D"),
             nonfinite=_heads_nonfinite(case, pad), mistakes=_no_grad(_heads_mistakes(same, case)),
             probes=_heads_probes(module, x, case, kwargs))


# ---------------------------------------------------------------------------------------------------------------
# Exercise 1.5 — tiled attention with an online softmax (FlashAttention's idea), eq. (1.11)
# ---------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TiledCase(ChapterCase):
    batch: tuple = (1,)
    Tq: int = 1
    Tk: int = 1
    d: int = 8
    d_v: int = 8
    block: int = 16
    input_scale: float = 1.0  # q and k × this: e^s overflows unless the running max is subtracted
    score_shift: float = 0.0  # added to every score: with m starting at 0, e^(s − m) underflows for every key

    @property
    def layout(self) -> str:
        return "q (..., Tq, d_k), k (..., Tk, d_k), v (..., Tk, d_v)"

    @property
    def sizes(self) -> dict[str, int]:
        return {**dict(zip(_BATCH_AXES, self.batch)), "Tq": self.Tq, "Tk": self.Tk, "d_k": self.d, "d_v": self.d_v,
                "block_size": self.block}

    def own_reading(self, error: BaseException, line: str) -> str | None:
        if _broadcast_sizes(error) == {self.block, self.d_v} and self.block != self.d_v and \
                self.block not in (self.Tq, self.Tk):
            return (f"One tensor has a {named_size(self.block, self.sizes)} axis where the other has "
                    f"{named_size(self.d_v, self.sizes)}: the running maximum m, the sum ℓ and the factor "
                    f"e^(m − m') are one number per query, (…, Tq, 1) — the maximum and the sum of a block's "
                    f"scores (…, Tq, block_size) run over its keys, dim=-1 with keepdim=True, not over the "
                    f"queries — and a block reaches a only through e^(s − m') @ v_block (eq. (1.11)).")
        if _matmul_inner_sizes(error) == (self.Tk, self.block) and self.Tk != self.block:
            return (f"Scores over all {named_size(self.Tk, self.sizes)} keys met a block of "
                    f"{named_size(self.block, self.sizes)} values: your block of k kept every key. Slice the keys, "
                    f"the second-to-last axis, k[..., start:start + block_size, :] (k[..., start:stop] slices the "
                    f"features), so that a block's scores are (…, Tq, block_size) (eq. (1.11)).")
        if _broadcast_sizes(error) == {self.d, self.d_v}:
            return (f"One tensor has {named_size(self.d, self.sizes)} entries where the other has "
                    f"{named_size(self.d_v, self.sizes)}: the accumulated output a holds one row of the values' width "
                    f"per query, (..., Tq, d_v) = q.shape[:-1] + v.shape[-1:] (eq. (1.11)), not q's width "
                    f"(torch.zeros_like(q) is (..., Tq, d_k)).")
        return None

    def inputs(self):
        q = EX_TILED.randn(*self.batch, self.Tq, self.d, key=(self.label, "q"), dtype=self.dtype) * self.input_scale
        k = EX_TILED.randn(*self.batch, self.Tk, self.d, key=(self.label, "k"), dtype=self.dtype) * self.input_scale
        v = EX_TILED.randn(*self.batch, self.Tk, self.d_v, key=(self.label, "v"), dtype=self.dtype)
        if self.score_shift:
            q, k = _shift_scores(q, k, self.score_shift)
        return q, k, v


TILED_CASES = [
    TiledCase("Tq=12 queries, Tk=40 keys (a shorter last block), d_k=8, d_v=6, block 16", batch=(1, 2), Tq=12,
              Tk=40, d=8, d_v=6, block=16),
    TiledCase("T=64, block 16 (4 full blocks)", batch=(1, 2), Tq=64, Tk=64, d=16, d_v=16, block=16),
    TiledCase("block larger than T (10 < 32)", Tq=10, Tk=10, d=8, d_v=8, block=32),
    TiledCase("T=1", Tq=1, Tk=1, d=8, d_v=8, block=4),
    TiledCase("large scores (q and k × 12)", batch=(1, 2), Tq=40, Tk=40, d=16, d_v=16, block=8, input_scale=12.0),
    TiledCase("float64, T=33, block 8", torch.float64, Tq=33, Tk=33, d=4, d_v=4, block=8),
    TiledCase("float64, every score ≈ −2·10⁴, T=20, block 8", torch.float64, batch=(2,), Tq=20, Tk=20, d=4, d_v=5,
              block=8, score_shift=SHIFT),
]


def _tiled_nonfinite(case: TiledCase) -> str:
    if case.score_shift:
        return (f"NaN/inf where every score of a query is about {case.score_shift:.0e}; adding one number to every "
                f"score changes no softmax, so the right output is finite. Here e^(s − m) underflowed to 0 for every "
                f"key, so ℓ = 0 and a/ℓ = 0/0. m must start at −∞ (eq. (1.11): m = −∞, ℓ = 0, a = 0) and be the "
                f"largest score seen so far: starting it at 0, or at any number above every score, lets every "
                f"e^(s − m) underflow.")
    if case.input_scale > 1:
        return ("NaN/inf on large scores: e^s overflowed (above s ≈ 88 in float32), or underflowed to 0 for every "
                "key of a query (ℓ = 0, then 0/0). Subtract each query's own running maximum: m' = max(m, "
                "max_j s_j) per query, shape (..., Tq, 1), and exponentiate s − m' (eq. (1.11)).")
    return ("NaN/inf on ordinary scores: in eq. (1.11) every factor is e^(something ≤ 0) — e^(m − m') ≤ 1 and "
            "e^(s_j − m') ≤ 1 — so nothing can overflow. An inf × 0 or 0/0 comes from a factor the wrong way round "
            "(e^(m' − m) is e^(+∞) at the start, where m = −∞), from m, ℓ or a starting at other values than −∞, 0 "
            "and 0, or from dividing by ℓ before it is positive.")


def _tiled_nonfinite_reading(tiled_attention, case: TiledCase):
    """NaN/inf on ordinary scores: run the learner's function again on ordinary inputs, with one block of keys and
    with several, to say which step of eq. (1.11) makes it."""
    def effective_weights(Tq, Tk, block):
        q = EX_TILED.randn(2, Tq, 6, key=("nan", "q", Tq, Tk))
        k = EX_TILED.randn(2, Tk, 6, key=("nan", "k", Tq, Tk))
        try:
            w = tiled_attention(q, k, torch.eye(Tk).expand(2, Tk, Tk).contiguous(), block_size=block)
        except Exception:  # noqa: BLE001 - a probe that cannot run says nothing
            return None
        return w if isinstance(w, torch.Tensor) and w.shape == (2, Tq, Tk) else None

    def reading(got):
        if case.score_shift or case.input_scale > 1:
            return _tiled_nonfinite(case)
        one, several = effective_weights(3, 10, 10), effective_weights(3, 10, 4)
        if one is not None and not torch.isfinite(one).all():
            return ("NaN/inf even with a single block of keys (block_size = Tk = 10, ordinary scores): at the first "
                    "block m = −∞, so an exponent that subtracts the old maximum — e^(s_j − m), or e^(m' − m), the "
                    "factor the wrong way round — is e^(+∞). Every exponent of eq. (1.11) subtracts the new maximum "
                    "m' = max(m, max_j s_j): e^(m − m') and e^(s_j − m'), both ≤ 1.")
        if one is not None and several is not None and not torch.isfinite(several).all():
            return ("NaN/inf only when the keys come in several blocks (finite with one block of 10 keys, not with "
                    "blocks of 4): the step from one block to the next is wrong. Keep m, ℓ and a from block to block, "
                    "rescale ℓ and a by e^(m − m') ≤ 1, and set m = m' after each block (eq. (1.11)).")
        if one is not None and several is not None and not torch.isfinite(got).any():
            return (f"NaN/inf in every entry for Tk = {case.Tk} keys in blocks of {case.block}, but finite for 10 "
                    f"keys: with these sizes no key entered the running sums (ℓ = 0, so a/ℓ = 0/0). Does your loop "
                    f"run over every block of keys, range(0, Tk, block_size) — including a first block larger than "
                    f"Tk (eq. (1.11))?")
        return _tiled_nonfinite(case)
    return reading


_TILED_SIZES = (Size("d_k", "q.shape[-1]", 6, 10, "the width of q and k"),
                Size("Tk", "k.shape[-2]", 10, 13, "the number of keys"),
                Size("Tq", "q.shape[-2]", 6, 7, "the number of queries"),
                Size("block_size", "block_size", 4, 5, "the number of keys in a block"),
                Size("B", "q.shape[0]", 2, 3, "the batch size"))


def _tiled_law(tiled_attention, who: str):
    """Which sizes the scale inside ``tiled_attention`` follows: its effective weights (V = I) fitted as a softmax
    of a · QKᵀ at other sizes, one changed at a time."""
    def fit_at(sizes):
        q = EX_TILED.randn(sizes["B"], sizes["Tq"], sizes["d_k"], key=("law", "q", *sizes.values()))
        k = EX_TILED.randn(sizes["B"], sizes["Tk"], sizes["d_k"], key=("law", "k", *sizes.values()))
        identity = torch.eye(sizes["Tk"]).expand(sizes["B"], -1, -1).contiguous()
        try:
            w = tiled_attention(q, k, identity, block_size=sizes["block_size"])
        except Exception:  # noqa: BLE001 - a probe that cannot run says nothing
            return None
        if not isinstance(w, torch.Tensor) or w.shape != (sizes["B"], sizes["Tq"], sizes["Tk"]):
            return None
        return softmax_temperature(w, q @ k.transpose(-2, -1))

    return _once(lambda: scale_law_message(scale_law(fit_at, _TILED_SIZES), _TILED_SIZES, "d_k", who=who,
                                           equation="eq. (1.1)"))


def _tiled_probes(tiled_attention, q, k, v, case: TiledCase):
    """Recover the learner's effective weights by running it with V = I (its output is then W itself) and read
    them: skipped or repeated keys, a wrong ℓ, a missing rescaling of a, per-block normalisation, the scale."""
    Tk, block = case.Tk, case.block
    expected_weights = reference_attention_weights(q.double(), k.double())  # (..., Tq, Tk)
    cache = {}

    def effective_weights():
        if "w" not in cache:
            cache["w"] = None
            identity = torch.eye(Tk, dtype=q.dtype).expand(*case.batch, Tk, Tk).contiguous()  # V = I: O = W
            try:
                w = tiled_attention(q.clone(), k.clone(), identity, block_size=block)
                if isinstance(w, torch.Tensor) and w.shape == expected_weights.shape and torch.isfinite(w).all():
                    cache["w"] = w.detach().double()
            except Exception:  # noqa: BLE001 - a probe that cannot run says nothing
                pass
        return cache["w"]

    def keys(got):
        w = effective_weights()
        if w is None:
            return None
        used = w.abs().flatten(0, -2).amax(0) > 0  # (Tk,): does key j get any weight?
        if used.all():
            return None
        unused = (~used).nonzero().flatten().tolist()
        span = f"{unused[0]}–{unused[-1]}" if unused == list(range(unused[0], unused[-1] + 1)) else \
            ", ".join(map(str, unused[:8]))
        if unused == list(range(min(block, Tk))):
            return (f"keys {span}, the first block, get no weight: their terms are multiplied by 0. With m = −∞ at "
                    f"the start, the first e^(m − m') is 0: it rescales what was accumulated before (a and ℓ), not "
                    f"the new block's terms — ℓ' = e^(m − m') ℓ + Σ_j e^(s_j − m') (eq. (1.11)).")
        last = (Tk - 1) // block * block  # where the last block starts
        if Tk > block and unused == list(range(last)):
            return (f"only the last block's keys ({last}–{Tk - 1}) get weight: what a and ℓ accumulated before is "
                    f"wiped at every block, multiplied by e^(m − m') = 0. Is m updated after each block (m = m')? "
                    f"With m stuck at −∞ that factor is always 0 (eq. (1.11)). Or are a and ℓ set to 0 inside the "
                    f"loop?")
        hint = ""
        if unused[0] == Tk - Tk % block and unused[-1] == Tk - 1 and Tk % block:
            hint = ": the last, shorter block. range(0, Tk, block_size) with slicing includes it."
        elif unused[0] == math.ceil(case.Tq / block) * block and case.Tq != Tk:
            hint = f": your loop stops at Tq = {case.Tq}. Loop over the keys, range(0, k.shape[-2], block_size)."
        return (f"keys {span} (of Tk = {Tk}) get no weight: your loop skips them{hint or '.'} Every key must enter "
                f"the running sums of eq. (1.11) once.")

    def multiplicity(got):
        """How many times each key counts: the weights divided by the right ones, per row, relative to the row's
        median, are the same integers in every row when blocks overlap (or skip)."""
        w = effective_weights()
        if w is None:
            return None
        ratio = w / expected_weights.clamp_min(1e-300)  # (..., Tq, Tk)
        usable = expected_weights > 1e-12
        if not usable.all():
            return None
        per_row = ratio / ratio.median(-1, keepdim=True).values
        counts = per_row.flatten(0, -2).mean(0)  # (Tk,)
        if ((per_row - counts).abs() < 1e-3).all() and ((counts - counts.round()).abs() < 1e-3).all() and \
                (counts.round() > 1).any():
            heavy = (counts.round() > 1).nonzero().flatten().tolist()
            return (f"keys {', '.join(map(str, heavy[:8]))}{', …' if len(heavy) > 8 else ''} count "
                    f"{int(counts.max().round())} times: your blocks overlap. Step the loop by block_size, "
                    f"range(0, Tk, block_size), and slice k[..., start:start + block_size, :] (eq. (1.11) adds each "
                    f"key once).")
        return None

    def normalisation(got):
        w = effective_weights()
        if w is None:
            return None
        sums = w.sum(-1)  # (..., Tq)
        if ((sums - 1).abs() < 1e-4).all():
            return None
        n_blocks = math.ceil(Tk / block)
        scores = q.double() @ k.double().transpose(-2, -1) / math.sqrt(case.d)  # (..., Tq, Tk)
        final_sum = (scores - scores.amax(-1, keepdim=True)).exp().sum(-1)  # ℓ after the last block  (..., Tq)
        if torch.allclose(sums, final_sum, rtol=1e-4, atol=1e-6):
            return ("your output is a, not a/ℓ: the weights of each query sum to ℓ, the running sum. Divide by ℓ "
                    "once, after the last block: o = a/ℓ (eq. (1.11)).")
        if n_blocks > 1 and ((sums - n_blocks).abs() < 1e-3).all():
            return (f"each query's weights sum to {n_blocks}, the number of blocks: you normalised each block by its "
                    f"own sum and added the blocks. Keep the unnormalised sums a and ℓ across blocks and divide once, "
                    f"o = a/ℓ, after the last block (eq. (1.11)).")
        ratio = w / expected_weights.clamp_min(1e-300)  # (..., Tq, Tk): how much too heavy each weight is
        usable = expected_weights > 1e-12
        spread = ratio.masked_fill(~usable, math.nan)
        if ((spread.nan_to_num(1).amax(-1) - spread.nan_to_num(1).amin(-1)) < 1e-4 * spread.nan_to_num(1).amax(-1)
                ).all():
            return (f"each query's weights are right up to one factor of its own (they sum to {sums.min():.4g}"
                    f"…{sums.max():.4g}, not 1): the numerators are right and ℓ is not. When m grows, ℓ must be "
                    f"multiplied by e^(m − m') too (eq. (1.11): ℓ' = e^(m − m') ℓ + Σ_j e^(s_j − m')), and o = a/ℓ "
                    f"once at the end.")
        blocks = ratio[..., :Tk - Tk % block].unflatten(-1, (-1, block)) if Tk >= block else None
        if blocks is not None and blocks.shape[-2] > 1 and \
                ((blocks.amax(-1) - blocks.amin(-1)) < 1e-4 * blocks.amax(-1)).all():
            earlier = blocks[..., 0, 0].mean().item()
            head = (f"the weights of a whole block of keys are off by one factor (block 0: {earlier:.3g}×, the last "
                    f"block right): ")
            if earlier < 1:
                return head + ("what a accumulated in earlier blocks shrinks too much: multiply a by e^(m − m') once "
                               "per block, the same factor as ℓ — not twice, nor by a smaller one (eq. (1.11)).")
            return head + ("what was accumulated in a before the running max grew was not rescaled. When m grows, "
                           "multiply a by e^(m − m') as well as ℓ (eq. (1.11)).")
        return (f"each query's weights must sum to 1 (yours sum to {sums.min():.4g}…{sums.max():.4g}): o = a/ℓ with "
                f"a and ℓ rescaled by e^(m − m') whenever m grows (eq. (1.11)).")

    def scale(got):
        w = effective_weights()
        if w is None:
            return None
        who = "your effective weights (what multiplies each value row)"
        facts = _weights_facts(q, k, None, who=who, law=_tiled_law(tiled_attention, who))
        return weights_problem(w, facts)

    def between_blocks(got):
        """Log-ratios within one block do not see the factors e^(m − m') between blocks: fit the temperature
        there, then say whether the blocks are right inside and wrong against each other."""
        w = effective_weights()
        full = Tk - Tk % block
        if w is None or full < 2 * block or block < 2:
            return None
        by_block = w[..., :full].unflatten(-1, (-1, block))  # (..., Tq, n_blocks, block)
        raw = (q.double() @ k.double().transpose(-2, -1))[..., :full].unflatten(-1, (-1, block))
        a = softmax_temperature(by_block, raw)
        if a is None:
            return None
        facts = _weights_facts(q, k, None, who="within each block, your weights")
        return _scale_message(a, facts) or (
            "within each block your weights are right relative to each other, but the blocks are weighted wrongly "
            "against each other: what was accumulated in a and ℓ must be multiplied by e^(m − m') (the same factor "
            "for both, m the old and m' the new running maximum) whenever m grows (eq. (1.11)).")

    return [keys, multiplicity, normalisation, scale, between_blocks]


@one_thread
def check_tiled_attention(tiled_attention) -> None:
    """Exercise 1.5: ``tiled_attention(q, k, v, block_size)`` equals naive attention to 1e-5, with peak memory
    that grows linearly (not quadratically) with the sequence length."""
    for case in TILED_CASES:
        q, k, v = case.inputs()
        got = EX_TILED.call(tiled_attention, q.clone(), k.clone(), v.clone(), block_size=case.block, case=case)
        expected = reference_attention_weights(q, k) @ v
        _compare(EX_TILED, got, expected, case, equation="eq. (1.11)", axes=(*_BATCH_AXES[:len(case.batch)], "Tq",
                                                                            "d_v"),
                 nonfinite=_tiled_nonfinite_reading(tiled_attention, case),
                 probes=_tiled_probes(tiled_attention, q, k, v, case),
                 factors={"√d_k": math.sqrt(case.d)})
    short, long = 512, 1024
    memory = []
    for t in (short, long):
        q = EX_TILED.randn(1, 1, t, 32, key=("memory", t))
        memory.append(EX_TILED.call(peak_memory, lambda q: tiled_attention(q, q, q, block_size=64), q,
                                    case=f"memory, T={t}, block 64"))
    growth = memory[1] / max(memory[0], 1)
    if growth > 3:
        raise EX_TILED.fail(f"your peak memory grew {growth:.1f}× when T doubled ({short} → {long}): something of size "
                            f"Tq × Tk is materialised (the full score matrix?). Compute the scores one block of keys "
                            f"at a time (eq. (1.11)); memory should grow about 2×.")
    EX_TILED.passed(f"{len(TILED_CASES)} cases match naive attention (Tq ≠ Tk, d_v ≠ d_k, a shorter last block, T=1, "
                    f"large and all-negative scores), and peak memory grew {growth:.2f}× when T doubled "
                    f"({memory[0] / 2**20:.2f} → {memory[1] / 2**20:.2f} MiB): linear.")


# ---------------------------------------------------------------------------------------------------------------
# Exercise 1.6 — FNet's Fourier mixing as two DFT matrices, eqs. (1.12), (1.13)
# ---------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DftCase(ChapterCase):
    n: int = 1
    requested: torch.dtype | None = None  # the dtype argument, None for the default (complex64)

    @property
    def sizes(self) -> dict[str, int]:
        return {"n": self.n}


DFT_CASES = [DftCase("dft_matrix(5)", n=5), DftCase("dft_matrix(8)", n=8), DftCase("dft_matrix(1)", n=1),
             DftCase("dft_matrix(2)", n=2),
             DftCase("dft_matrix(6, torch.complex128)", torch.float64, n=6, requested=torch.complex128)]


@dataclass(frozen=True)
class MixingCase(ChapterCase):
    shape: tuple = ()  # (B, T, D)

    @property
    def layout(self) -> str:
        return "x (..., T, D)"

    @property
    def sizes(self) -> dict[str, int]:
        return {"T": self.shape[-2], "D": self.shape[-1]}

    def own_reading(self, error: BaseException, line: str) -> str | None:
        if _MATMUL.search(str(error)) and self.shape[-2] != self.shape[-1]:
            return ("x is (…, T, D): W_T (T × T) multiplies it from the left, along the sequence axis, and W_D "
                    "(D × D) from the right, along the hidden axis: W_T @ x @ W_D (eq. (1.13))."
                    + named_sizes_in(str(error), self.sizes))
        return None


MIXING_CASES = [MixingCase("B=3, T=7, D=5", shape=(3, 7, 5)), MixingCase("B=2, T=8, D=16", shape=(2, 8, 16)),
                MixingCase("no batch axis, T=6, D=3", shape=(6, 3)),
                MixingCase("two batch axes, (2, 3, T=5, D=4)", shape=(2, 3, 5, 4)),
                MixingCase("T=1", shape=(1, 1, 4)),
                MixingCase("float64, B=2, T=6, D=4", torch.float64, shape=(2, 6, 4))]


def reference_dft_matrix(n: int, dtype=torch.complex128) -> torch.Tensor:
    """W[j, k] = exp(−2πi jk / n), from torch.fft: the DFTs of the unit vectors are W's columns (eq. (1.12))."""
    return torch.fft.fft(torch.eye(n, dtype=torch.complex128), dim=0).to(dtype)


_ANGLE_ADVICE = {
    "+2π/n": "the exponent's sign is +; the forward DFT uses e^(−2πi jk/n) (eq. (1.12); + is the inverse's).",
    "−2π/(n−1)": "divide the angle by n, not n − 1.",
    "+2π/(n−1)": "the exponent's sign is + and the angle is divided by n − 1: eq. (1.12) has −2π jk/n.",
    "−π/n": "the angle is missing a factor 2: −2π jk/n (eq. (1.12)).",
    "−1/n": "the angle −2π jk/n is in radians: the factor 2π is missing (eq. (1.12)).",
    "−2π/n²": "divide the angle by n, not n² (eq. (1.12)).",
}


def _dft_probes(n: int):
    """Properties of W_n (eq. (1.12)) on a (n, n, 2) real view of the learner's complex matrix."""
    j = torch.arange(n, dtype=torch.float64)
    products = torch.outer(j, j)  # (n, n): jk

    def as_complex(got):
        return torch.view_as_complex(got.double().contiguous())

    def modulus(got):
        size = as_complex(got).abs()
        if ((size - 1).abs() < 1e-4).all():
            return None
        if (size.max() - size.min()) < 1e-4 * size.max():
            r = size.mean().item()
            name = name_value(r, {"√n": math.sqrt(n), "n": n})
            return (f"every entry of W has modulus 1 (|e^(iθ)| = 1), yours {r:.4g}" + (f" = {name}" if name else "")
                    + ": eq. (1.12) has no normalisation (that would be the unitary DFT, torch.fft's norm='ortho').")
        return (f"every entry of W has modulus 1 (e^(−2πi jk/n) lies on the unit circle); yours range from "
                f"{size.min():.3g} to {size.max():.3g}: build the entries from their angle, torch.polar(ones, angle) "
                f"or torch.exp(1j * angle).")

    def first_row_and_column(got):
        w = as_complex(got)
        if n > 1 and ((w[0] - 1).abs().max() > 1e-4 or (w[:, 0] - 1).abs().max() > 1e-4):
            return ("W[0, k] = W[j, 0] = e^0 = 1 (jk = 0), but yours are not all 1: j and k run over 0, …, n − 1 "
                    "(torch.arange(n)), and the angle is −2π jk/n (eq. (1.12)).")
        return None

    def symmetric(got):
        w = as_complex(got)
        if (w - w.T).abs().max() > 1e-4:
            return ("W[j, k] depends on the product jk only, so W is symmetric, but yours isn't: the exponent is "
                    "−2πi·j·k/n with j the row and k the column (torch.outer(j, j)) (eq. (1.12)).")
        return None

    def powers(got):
        w = as_complex(got)
        if n < 2:
            return None
        omega = w[1, 1]
        angle = omega.angle().item()  # (−π, π]
        pattern = torch.polar(torch.ones_like(products), angle * products)
        if (w - pattern).abs().max() > 1e-4:
            return ("W[j, k] must be ω^(jk) with ω = W[1, 1] = e^(−2πi/n): your entries are not powers of W[1, 1] "
                    "with exponent jk (eq. (1.12)).")
        candidates = {"−2π/n": -2 * math.pi / n, "+2π/n": 2 * math.pi / n, "−π/n": -math.pi / n, "−1/n": -1 / n,
                      "−2π/n²": -2 * math.pi / n ** 2}
        if n > 2:
            candidates.update({"−2π/(n−1)": -2 * math.pi / (n - 1), "+2π/(n−1)": 2 * math.pi / (n - 1)})
        for name, value in candidates.items():
            wrapped = math.remainder(value - angle, 2 * math.pi)  # the same angle on the circle?
            if abs(wrapped) < 1e-4:
                return None if name == "−2π/n" else f"your W[1, 1] = e^(i·{angle:.4g}), an angle step of {name}: " \
                                                    f"{_ANGLE_ADVICE[name]}"
        return (f"your W[1, 1] = e^(i·{angle:.4g}); eq. (1.12) has e^(−2πi/n) = e^(i·{-2 * math.pi / n:.4g}): the "
                f"angle is −2π jk/n.")

    return [modulus, symmetric, first_row_and_column, powers]


def _check_dft_matrix(dft_matrix) -> None:
    """The first half of Exercise 1.6: W_n of eq. (1.12), in the dtype asked for."""
    for case in DFT_CASES:
        args = (case.n,) if case.requested is None else (case.n, case.requested)
        got = EX_DFT.call(dft_matrix, *args, case=case)
        want_dtype = case.requested or torch.complex64
        if not isinstance(got, torch.Tensor):
            raise EX_DFT.fail(structure_problem(got, torch.zeros(1)), case=case, name="matrix")
        if not got.is_complex():
            hint = ""
            if got.shape == (case.n, case.n) and torch.allclose(got.double(), reference_dft_matrix(case.n).real,
                                                                 atol=1e-4):
                hint = " Yours is W's real part, cos(2π jk/n): e^(iθ) = cos θ + i sin θ (torch.polar(ones, θ))."
            raise EX_DFT.fail(f"dft_matrix must return a complex tensor ({want_dtype}), got {got.dtype}.{hint}",
                              case=case)
        if got.dtype != want_dtype:
            raise EX_DFT.fail(f"returned {got.dtype}, but {case.label} asks for {want_dtype}"
                              + (" (the default)" if case.requested is None else "")
                              + ": build the matrix in the dtype you are given, .to(dtype) at the end.", case=case)
        expected = reference_dft_matrix(case.n, want_dtype)
        if got.shape != expected.shape:
            raise EX_DFT.fail(f"shape {tuple(got.shape)} but W_n is (n, n) = ({case.n}, {case.n}).", case=case)
        got, expected = torch.view_as_real(got.resolve_conj()), torch.view_as_real(expected)  # (n, n, 2) real
        precision = _precision_probe(expected, "dft_matrix(n, torch.complex128)", "compute the angle 2π jk/n in "
                                     "float64 (torch.arange(n, dtype=torch.float64)) before building the complex128 "
                                     "matrix")
        _compare(EX_DFT, got, expected, case, name="matrix (as real, imaginary)", equation="eq. (1.12)",
                 probes=[precision, *_dft_probes(case.n)], factors={"√n": math.sqrt(case.n), "n": case.n},
                 **({"atol": 1e-12, "rtol": 1e-12} if case.requested == torch.complex128 else {}))


def _precision_probe(expected: torch.Tensor, what: str, advice: str):
    """A float64 answer that is right only to float32 precision: float32 arithmetic somewhere (said before the
    other probes, which cannot tell such small differences apart)."""
    def probe(got):
        if got.dtype != torch.float64:
            return None
        difference = (got - expected).abs().max().item()
        if difference < 1e-4:  # (a probe only sees answers that failed the float64 tolerance)
            return (f"right to float32 precision only (max difference {difference:.2g}): {what} must be as precise "
                    f"as float64; {advice}.")
        return None
    return probe


def _mixing_terms(x: torch.Tensor) -> dict[str, torch.Tensor]:
    """The pieces Re(W_T X W_D) is made of, and what a partial or misplaced transform gives, float64."""
    T, D = x.shape[-2:]
    W_T, W_D = reference_dft_matrix(T), reference_dft_matrix(D)
    along_t = W_T @ x.to(torch.complex128)  # (..., T, D)
    return {"Re(W_T X)·Re(W_D)": along_t.real @ W_D.real, "Im(W_T X)·Im(W_D)": along_t.imag @ W_D.imag,
            "Re(W_T X)·Im(W_D)": along_t.real @ W_D.imag, "Im(W_T X)·Re(W_D)": along_t.imag @ W_D.real,
            "Re(W_T X)": along_t.real, "Re(X W_D)": (x.to(torch.complex128) @ W_D).real, "X": x.double()}


def _mixing_coefficient_probe(x: torch.Tensor):
    expected = {"Re(W_T X)·Re(W_D)": 1.0, "Im(W_T X)·Im(W_D)": -1.0}
    terms = _mixing_terms(x)

    def probe(got):
        found = recovered_coefficients(got, terms, expected)
        if found is None:
            return None
        if all(_is_close(found.get(n, 0.0), expected.get(n, 0.0), 1e-4, 1e-9) for n in found):
            return None
        m = _multiplier(found, expected)
        if m is not None:
            return "the sign is flipped: FNet(X) = Re(W_T X W_D) (eq. (1.13))." if _is_close(m, -1.0, 1e-4) else None
        yours = f"yours is {_formula(found, {})}, where Re(W_T X W_D) = Re(W_T X)·Re(W_D) − Im(W_T X)·Im(W_D): "
        has = {n for n, value in found.items() if abs(value) > 1e-6}
        if has == {"Re(W_T X)"}:
            return yours + ("you transformed only along the sequence axis (W_T X); FNet applies the DFT along the "
                            "hidden axis too: Re(W_T X W_D), a 2-D DFT (eq. (1.13)).")
        if has == {"Re(X W_D)"}:
            return yours + ("you transformed only along the hidden axis (X W_D); FNet mixes tokens, so the DFT must "
                            "run along the sequence axis too: Re(W_T X W_D) (eq. (1.13)).")
        if has == {"Re(W_T X)·Re(W_D)"}:
            return yours + ("you took the real part too early, after the first product: keep W_T X complex, "
                            "multiply by W_D, and take .real once at the end.")
        if has == {"Re(W_T X)·Im(W_D)", "Im(W_T X)·Re(W_D)"}:
            return yours + "you kept the imaginary part; FNet keeps the real part (eq. (1.13))."
        if "X" in has and {"Re(W_T X)·Re(W_D)", "Im(W_T X)·Im(W_D)"} <= has and len(has) == 3:
            return yours + ("you added x itself: the residual connection x + mixing(x) belongs to the encoder block; "
                            "fourier_mixing returns Re(W_T X W_D) alone (eq. (1.13)).")
        if has == {"Re(W_T X)·Re(W_D)", "Im(W_T X)·Im(W_D)"} and found["Im(W_T X)·Im(W_D)"] > 0:
            return yours + ("one of your two DFT matrices has the + sign (conjugated: the inverse DFT's): both W_T "
                            "and W_D are e^(−2πi jk/n) (eq. (1.12)).")
        return yours + "compare with eq. (1.13), Re(W_T X W_D)."

    return probe


def _batch_probe(fourier_mixing, x: torch.Tensor):
    """Items of a batch do not mix: changing item 0 leaves the others' outputs as they were."""
    def probe(got):
        if x.dim() < 3 or x.shape[0] < 2:
            return None
        changed = x.clone()
        changed[0] = changed[0] + 1.0
        try:
            again = fourier_mixing(changed)
        except Exception:  # noqa: BLE001 - a probe that cannot run says nothing
            return None
        if isinstance(again, torch.Tensor) and again.shape == got.shape and \
                not torch.allclose(again[1:].double(), got[1:].double(), atol=1e-4, rtol=1e-4):
            return ("your output for one item of the batch changes when another item changes: you transformed over "
                    "the batch axis too. FNet mixes only the last two axes of each sequence, the sequence (T) and "
                    "hidden (D) axes: Re(W_T X W_D) (eq. (1.13)).")
        return None
    return probe


@one_thread
def check_fourier_mixing(dft_matrix, fourier_mixing) -> None:
    """Exercise 1.6: ``dft_matrix(n, dtype=torch.complex64)`` (W[j, k] = exp(-2πi jk/n)) and ``fourier_mixing(x)``
    = Re(W_T · x · W_D), checked against ``torch.fft``; float64 inputs must keep float64 precision."""
    _check_dft_matrix(dft_matrix)
    for case in MIXING_CASES:
        x = EX_MIXING.randn(*case.shape, key=(case.label, "x"), dtype=case.dtype)
        got = EX_MIXING.call(fourier_mixing, x.clone(), case=case)
        expected = torch.fft.fft2(x, dim=(-2, -1)).real.to(case.dtype)
        if isinstance(got, torch.Tensor) and got.is_complex():
            raise EX_MIXING.fail(f"your output is complex ({got.dtype}); FNet keeps the real part (eq. (1.13)): "
                                 f"return (W_T @ x @ W_D).real, in x's dtype.", case=case)
        T, D = case.shape[-2:]
        precision = _precision_probe(expected, "the output of a float64 input", "build complex128 DFT matrices "
                                     "for it (dft_matrix(n, torch.complex128)) and convert x with "
                                     "x.to(torch.complex128)")
        mistakes = (Mistake(torch.fft.fft2(x).abs(), "you took the magnitude |·|; FNet keeps the real part."),
                    Mistake(torch.fft.fftn(x).real, "you transformed over every axis, the batch axis too; only the "
                                                    "sequence and hidden axes are mixed."))
        axes = (*("B", "B2")[:x.dim() - 2], "T", "D")
        _compare(EX_MIXING, got, expected, case, equation="eq. (1.13), Re(W_T X W_D)", axes=axes,
                 mistakes=mistakes, probes=[precision, _batch_probe(fourier_mixing, x), _mixing_coefficient_probe(x)],
                 factors={"√(T·D)": math.sqrt(T * D), "T·D": T * D, "√T": math.sqrt(T), "√D": math.sqrt(D),
                          "T": T, "D": D})
    EX_MIXING.passed(f"dft_matrix matches torch.fft on n = 1, 2, 5, 8 (and n = 6 in complex128), and fourier_mixing "
                     f"matches torch.fft.fft2(x).real on {len(MIXING_CASES)} cases (odd sizes, 0 to 2 batch axes, T=1, "
                     f"float64).")


__all__ = ["check_attention_weights", "check_softmax_backward", "check_attention_function",
           "check_multi_head_attention", "check_tiled_attention", "check_fourier_mixing", "causal_mask",
           "CheckFailure", "LearnerError"]
