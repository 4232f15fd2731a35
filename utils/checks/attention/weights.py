"""The properties of attention weights (eqs. (1.1), (1.2)), used by 1.1 and on the weights recovered inside 1.3, 1.4
and 1.5: non-negative, zero where masked, rows summing to 1, a softmax of a·QKᵀ at the right temperature."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from utils.checks.attention.common import entry_text, is_close, reference_attention_weights
from utils.checks.core import (
    fit_linear,
    name_value,
)


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


def scale_message(a: float, facts: WeightsFacts) -> str | None:
    """What a fitted temperature a says, or None when it is the right one."""
    if is_close(a, facts.scale):
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
                "forbidden scores to −∞ before the softmax (eq. (1.2)): scores = scores.masked_fill(~mask, "
                "float('-inf')) — masked_fill returns a new tensor, so assign it (or use masked_fill_).")
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
                f"entries that must be exactly 0, the first at {entry_text(first, facts.batch_names)}, where "
                f"{facts.why_forbidden(first)}: ")
        found = _fill_message(weights, facts, leaked)
        typical = weights[allowed & (weights > facts.zero)]
        comparable = typical.numel() > 0 and weights[leaked].min() >= 1e-3 * typical.median()  # not a faint leak
        if (found is None or found.startswith(NOT_APPLIED)) and facts.mask_reading and comparable:
            found = facts.mask_reading(weights > facts.zero) or found
        if (found is None or found.startswith(NOT_APPLIED)) and lost.any():
            hidden = [int(i) for i in lost.nonzero()[0]]
            found = (f"and {int(lost.sum())} allowed entries get none, the first at "
                     f"{entry_text(hidden, facts.batch_names)}: your mask hides the wrong entries. Is it lined up "
                     f"with the right axes (batch, query, key)? Each mask must broadcast to the scores with its "
                     f"own axes ({facts.equation}).")
        return head + (found or "set the forbidden scores to −∞ before the softmax (eq. (1.2)), so that e^{−∞} = 0.")
    if lost.any():
        first = [int(i) for i in lost.nonzero()[0]]
        structure = facts.mask_reading(weights > facts.zero) if facts.mask_reading else None
        if structure:
            return f"{facts.who} are 0 at {int(lost.sum())} entries where attending is allowed: {structure}"
        return (f"{facts.who} are 0 at {int(lost.sum())} entries where attending is allowed, the first at "
                f"{entry_text(first, facts.batch_names)} (the right weight there is "
                f"{facts.expected[tuple(first)]:.3g}): "
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
    ones = [axis for axis in range(weights.dim() - 2) if weights.shape[axis] == 1]
    if ones and ((weights - 1).abs() <= tolerance).all():  # softmax over an axis of length 1: e^s / e^s = 1
        which = " or ".join(f"axis {axis} ({names[axis]} = 1)" for axis in ones)
        return (f"every one of {facts.who} is exactly 1: that is a softmax over an axis of length 1 (e^s / e^s), "
                f"here {which}, not over the keys. A dim= given a size or a count (such as "
                f"the number of heads) instead of an axis does this: softmax(dim=-1) ({facts.equation}).")
    allowed = facts.allowed_like(weights)
    first = int((sums - 1).abs().flatten().argmax())
    shown = f"(one sums to {sums.flatten()[first].item():.4g})"
    if (sums.max() - sums.min()) <= tolerance * sums.abs().max():  # one factor c after a softmax
        c = sums.mean().item()
        name = name_value(c, {"1": 1.0, **facts.constants})
        a = softmax_temperature(weights / c, facts.raw_scores, allowed, floor=1e-30 if facts.exact else 1e-3,
                                tolerance=1e-3 if facts.exact else 2e-2)
        inside = f" (and the softmax inside has a = {a:.4g} where {facts.scale_text} belongs)" \
            if a is not None and not is_close(a, facts.scale) else ""
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
        message = scale_message(a, facts)
        return message + (f" {facts.upstream}" if facts.upstream else "") if message else None
    for name, raw in (facts.score_sources or {}).items():  # the scores made of other tensors than Q and K
        other = softmax_temperature(weights, raw, allowed, floor=floor, tolerance=tolerance)
        if other is not None:
            return (f"{facts.who} are softmax(a · {name}) with a = {other:.4g}: the scores of {facts.equation} are "
                    f"the queries against the keys, QKᵀ scaled by {facts.scale_text}.")
    twice = softmax_temperature(weights, facts.expected, allowed, floor=floor, tolerance=tolerance)
    if twice is not None and is_close(twice, 1.0, 1e-2):  # log w = P + a constant per row: w = softmax(P)
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


def weights_advice(d: str, width: str) -> dict[str, str]:
    """What to change when the temperature is a named wrong value; ``d`` is the width in the equation."""
    return {
        "1": f"did you forget to divide the scores by √{d} (eq. (1.1))?",
        f"1/{d}": f"you divided the scores by {d} instead of √{d}: divide by √{d}, the standard deviation of q·k "
                  f"(eq. (1.3)).",
        f"√{d}": f"you multiplied the scores by √{d}; divide by it instead.",
        f"{d}": f"you multiplied the scores by {d}; divide by √{d} instead.",
        f"−1/√{d}": "a sign is flipped: the scores are +q·k/√d (a softmax of −S puts the weight on the least similar "
                    "keys).",
        "1/√Tk": f"you scaled by the square root of the number of keys; the scale is 1/√{d}, from the {width}.",
        "1/√Tq": f"you scaled by the square root of the number of queries; the scale is 1/√{d}, from the {width}.",
        "1/Tk": f"you divided by the number of keys; the scale is 1/√{d}, from the {width}.",
        "1/Tq": f"you divided by the number of queries; the scale is 1/√{d}, from the {width}.",
    }


def weights_facts(q, k, mask, **overrides) -> WeightsFacts:
    """The facts of eqs. (1.1), (1.2) for attention of q over k (any batch axes)."""
    Tq, Tk, d_k = q.shape[-2], k.shape[-2], q.shape[-1]
    q64, k64 = q.detach().double(), k.detach().double()
    raw = q64 @ k64.transpose(-2, -1)  # (..., Tq, Tk)
    facts = WeightsFacts(
        raw_scores=raw, expected=reference_attention_weights(q64, k64, mask), scale=1 / math.sqrt(d_k),
        scale_text="1/√d_k", constants={"√d_k": math.sqrt(d_k), "d_k": d_k, "√Tk": math.sqrt(Tk),
                                        "√Tq": math.sqrt(Tq), "Tk": Tk, "Tq": Tq},
        advice=weights_advice("d_k", "width of q and k (eq. (1.3))"), equation="eq. (1.1)", allowed=mask,
        float64=q.dtype == torch.float64,
        batch_names=("B", "H")[:q.dim() - 2])
    for name, value in overrides.items():
        setattr(facts, name, value)
    return facts
