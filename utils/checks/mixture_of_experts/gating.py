"""Exercise 3.1: the gate. Softmax over the experts first (eq. (3.1)), then the top k, renormalised for k ≥ 2
(eq. (3.2)). Each of probs, indices and weights is checked on its own, then the weights' gradient."""
from __future__ import annotations

import torch

from utils import moe
from utils.checks.core import Mistake, fit_temperature, name_value, one_thread
from utils.checks.mixture_of_experts.cases import EX_GATE as EX
from utils.checks.mixture_of_experts.cases import RoutingCase, ensure_tensor, expect_tuple, logits_for

GATE_CASES = (
    RoutingCase("S=6, E=4, k=2, float64", S=6, E=4, k=2, dtype=torch.float64),
    RoutingCase("one token, S=1, E=3, k=2", S=1, E=3, k=2),
    RoutingCase("top-1 (Switch), S=5, E=4, k=1, float64", S=5, E=4, k=1, dtype=torch.float64),
    RoutingCase("one expert, S=4, E=1, k=1", S=4, E=1, k=1),
    RoutingCase("top-3, S=7, E=8, k=3, float64", S=7, E=8, k=3, dtype=torch.float64),
)


def _probs_mistakes(logits: torch.Tensor, k: int) -> list[Mistake]:
    top_logits, top = logits.topk(k, dim=-1)
    after = torch.zeros_like(logits).scatter(-1, top, torch.softmax(top_logits, dim=-1))
    wrong = [Mistake(after, "your probs are a softmax over the k chosen logits only (zeros elsewhere): take the "
                            "softmax over ALL E experts first, then choose the top k (eq. (3.1) before (3.2)). The "
                            "load-balancing loss needs every expert's probability."),
             Mistake(logits, "your probs are the raw logits: apply the softmax over the experts, eq. (3.1).")]
    if logits.shape[0] > 1:
        wrong.append(Mistake(torch.softmax(logits, dim=0), "your softmax runs over the tokens (dim=0): each token's "
                                                           "probabilities run over the E experts, dim=-1 (eq. (3.1))."))
    return wrong


def _weights_mistakes(logits: torch.Tensor, probs: torch.Tensor, k: int) -> list[Mistake]:
    top_p, top = probs.topk(k, dim=-1)
    E = probs.shape[-1]
    wrong = [Mistake(logits.gather(-1, top), "your weights are the chosen logits, not probabilities: take them from "
                                             "the softmax, eq. (3.2).")]
    if k == 1 and E > 1:
        wrong.append(Mistake(torch.ones_like(top_p), "your top-1 weights are all 1: at k = 1 the weight is the "
                                                     "probability itself, g = p_i (eq. (3.2)). Renormalising one "
                                                     "weight — or a softmax taken after the top-1 — makes it 1, and "
                                                     "the router then gets no gradient from the task."))
    if k > 1:
        wrong.append(Mistake(top_p, "your top-k weights are not renormalised (dividing by the sum over all E "
                                    "experts changes nothing: it is 1). Eq. (3.2) divides by the sum of the k chosen "
                                    "probabilities only: g_j = p_j / (p_1 + … + p_k)."))
        wrong.append(Mistake(top_p / top_p[:, :1], "your weights are divided by the first (largest) probability: "
                                                   "divide by the sum of the k chosen, eq. (3.2)."))
        wrong.append(Mistake(torch.softmax(top_p, dim=-1), "your weights are a softmax of the chosen probabilities "
                                                           "(a softmax applied twice): renormalise by dividing by "
                                                           "their sum, eq. (3.2)."))
        wrong.append(Mistake(top_p / top_p.sum(dim=0, keepdim=True),
                             "your weights are renormalised over the tokens (dim=0): divide each token's k weights by "
                             "their own sum (dim=-1, keepdim=True), eq. (3.2)."))
    return wrong


@one_thread
def check_top_k_gating(top_k_gating) -> None:
    """``top_k_gating(logits, k)`` → (probs (S, E), weights (S, k), indices (S, k)), eqs. (3.1)–(3.2)."""
    for case in GATE_CASES:
        logits = logits_for(EX, case).requires_grad_()
        got = expect_tuple(EX, EX.call(top_k_gating, logits, case.k, case=case), ("probs", "weights", "indices"),
                           case)
        probs, weights, indices = moe.top_k_gating(logits.detach(), case.k)
        got_probs, got_weights, got_indices = (ensure_tensor(EX, t, name, case)
                                               for t, name in zip(got, ("probs", "weights", "indices")))
        if got_weights.dtype in (torch.int64, torch.int32) and got_indices.is_floating_point():
            raise EX.fail("weights and indices are swapped: return (probs, weights, indices).", case=case)
        EX.compare(got_probs, probs, case=case, name="probs", equation="eq. (3.1), p = softmax(h) over the experts",
                   mistakes=_probs_mistakes(logits.detach(), case.k), axes=("S", "E"),
                   probes=[lambda g: _probs_reading(g, logits.detach())])
        _check_indices(got_indices, indices, probs, case)
        EX.compare(got_weights, weights, case=case, name="weights", equation="eq. (3.2)",
                   mistakes=_weights_mistakes(logits.detach(), probs, case.k), axes=("S", "k"))
        _check_gradient(logits, got_weights, case)
    EX.passed(f"{len(GATE_CASES)} cases: softmax over the E experts, the top k best first, weights renormalised "
              f"over the chosen k (k ≥ 2) or the probability itself (k = 1), with the router's gradient.")


def _probs_reading(got: torch.Tensor, logits: torch.Tensor) -> str | None:
    """Probabilities are positive and sum to 1 over the experts; a softmax of h/τ is named by its τ."""
    got = got.detach().double()
    if (got < 0).any():
        log_softmax = torch.allclose(got, torch.log_softmax(logits.double(), dim=-1), atol=1e-5)
        return ("your probs are log-probabilities (log_softmax): eq. (3.1) is the softmax itself."
                if log_softmax else "your probs have negative entries: a probability is ≥ 0 (eq. (3.1)).")
    sums = got.sum(dim=-1)
    if not torch.allclose(sums, torch.ones_like(sums), atol=1e-5):
        return (f"each token's probs should sum to 1 over the E experts; yours sum to {sums.min().item():.4g}…"
                f"{sums.max().item():.4g} (eq. (3.1)).")
    a = fit_temperature(got, logits) if logits.shape[-1] > 1 else None
    if a is not None and abs(a - 1) > 1e-3:
        tau = 1 / a
        named = name_value(tau, {"2": 2.0, "√E": logits.shape[-1] ** 0.5, "E": float(logits.shape[-1]),
                                 "1/2": 0.5})
        return (f"your probs are softmax(h / τ) with τ = {tau:.4g}" + (f" (= {named})" if named else "") +
                ": the gate is softmax(h) with no temperature, eq. (3.1).")
    return None


def _check_indices(got: torch.Tensor, indices: torch.Tensor, probs: torch.Tensor, case: RoutingCase) -> None:
    if got.shape == indices.shape and got.dtype.is_floating_point is False and torch.equal(got.long(), indices):
        if got.dtype != torch.int64:
            raise EX.fail(f"indices have dtype {got.dtype}; keep topk's int64 (torch.long): they index tensors.",
                          case=case)
        return
    if got.shape == indices.shape and not got.is_floating_point():
        if torch.equal(got.long().sort(dim=-1).values, indices.sort(dim=-1).values):
            raise EX.fail("your indices hold the right experts in the wrong order: best first (topk sorts them, "
                          "largest first), so indices[:, 0] is each token's first choice (eq. (3.2)).", case=case)
        if torch.equal(got.long(), probs.topk(case.k, dim=-1, largest=False).indices):
            raise EX.fail("your indices are the k LEAST likely experts: topk(k, dim=-1) takes the largest.",
                          case=case)
    if got.is_floating_point() and got.shape == indices.shape:
        raise EX.fail(f"indices are floating point ({got.dtype}): return topk's indices (int64), not values.",
                      case=case)
    EX.compare(got, indices, case=case, name="indices", equation="the top k of eq. (3.1)'s probabilities, best first",
               axes=("S", "k"))


def _check_gradient(logits: torch.Tensor, got_weights: torch.Tensor, case: RoutingCase) -> None:
    """dL/dh of L = Σ r·g for seeded r: the router must learn through the weights (not through k = 1's 1s)."""
    r = EX.randn(*got_weights.shape, key=(case.label, "r"), dtype=got_weights.dtype)
    if not got_weights.requires_grad:
        raise EX.fail("your weights are not connected to the logits' autograd graph (no requires_grad): compute them "
                      "from the softmax without .detach(), .item() or torch.no_grad() — the router learns through "
                      "them.", case=case)
    got_grad, = torch.autograd.grad((got_weights * r).sum(), logits, allow_unused=True)
    reference = logits.detach().clone().requires_grad_()
    expected, = torch.autograd.grad((moe.top_k_gating(reference, case.k)[1] * r).sum(), reference)
    if got_grad is None:
        got_grad = torch.zeros_like(expected)
    EX.compare(got_grad, expected, case=case, name="router gradient dL/dh through the weights",
               equation="the backward of eqs. (3.1)–(3.2) (autograd computes it from your forward)",
               atol=tuple(10 * t for t in case.tolerance)[0], rtol=tuple(10 * t for t in case.tolerance)[1])
