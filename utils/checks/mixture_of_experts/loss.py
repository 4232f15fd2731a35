"""Exercise 3.6: the load-balancing loss E · Σ_e m_e c_e (eq. (3.7)), its value and its gradient (eq. (3.8))."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from utils import moe
from utils.checks.core import Mistake, one_thread
from utils.checks.mixture_of_experts.cases import EX_LOSS as EX
from utils.checks.mixture_of_experts.cases import RoutingCase, ensure_tensor, logits_for

LOSS_CASES = (
    RoutingCase("S=12, E=4, k=2, float64", S=12, E=4, k=2, dtype=torch.float64, skew=1.0),
    RoutingCase("top-1 (Switch), S=10, E=8, float64", S=10, E=8, k=1, dtype=torch.float64, skew=0.5),
    RoutingCase("one token, S=1, E=3, k=2", S=1, E=3, k=2),
    RoutingCase("S=9, E=5, k=3, float64", S=9, E=5, k=3, dtype=torch.float64, skew=2.0),
)


def _variants(probs: torch.Tensor, indices: torch.Tensor) -> list[tuple[torch.Tensor, str]]:
    S, E = probs.shape
    k = indices.shape[1]
    m = probs.mean(dim=0)
    c = F.one_hot(indices[:, 0], E).to(probs.dtype).mean(dim=0)
    c_all = F.one_hot(indices, E).to(probs.dtype).sum(dim=1).mean(dim=0)  # sums to k
    c_last = F.one_hot(indices[:, -1], E).to(probs.dtype).mean(dim=0)
    return [
        ((m * c).sum(), "your loss is not scaled by the number of experts: ℓ_aux = E · Σ_e m_e c_e (eq. (3.7)); "
                        "without E it is 1/E at perfect balance, so one weight cannot fit every E."),
        ((m * c).mean(), "your loss is mean_e(m_e c_e), E² times too small: GShard's mean form is E² · mean_e(m_e c_e) "
                         "= E · Σ_e m_e c_e (eq. (3.7))."),
        (E * E * (m * c).sum(),
         "your loss is E² · Σ_e m_e c_e, E times too large: E · Σ_e (or E² · mean_e), eq. (3.7)."),
        (E * (m * c_all).sum() if k > 1 else None,
         "your c_e counts all k choices of each token: eq. (3.7) counts the FIRST choice only, indices[:, 0]."),
        (E * (m * c_all).sum() / k if k > 1 else None,
         "your c_e counts all k choices (divided by k): eq. (3.7) counts the FIRST choice only, indices[:, 0]."),
        (E * (m * c_last).sum() if k > 1 else None,
         "your c_e counts the LAST choice, indices[:, -1]: eq. (3.7) counts the first, indices[:, 0]."),
        (E * (m * m).sum(), "your loss is E · Σ m_e²: c_e is the fraction of tokens whose first choice is e (a "
                            "count of indices[:, 0]), not the mean probability (eq. (3.7))."),
        (E * (m * c * S).sum(), "your loss is S times too large: c_e (or m_e) is a sum over the tokens, not a mean "
                                "— a count, not a fraction: divide by the number of tokens S, eq. (3.7)."),
        (E * (m * S * c).sum() / S / S if S > 1 else None,
         "your m_e is divided by S twice: m_e is the mean of probs over the tokens, eq. (3.7)."),
        (E * (probs.max(dim=0).values * c).sum() if S > 1 else None,
         "your m_e is the largest probability of expert e over the tokens: m_e is their MEAN, eq. (3.7)."),
    ]


@one_thread
def check_load_balancing_loss(load_balancing_loss) -> None:
    """``load_balancing_loss(probs, indices)`` → scalar ℓ_aux (eq. (3.7)), with its gradient (eq. (3.8))."""
    for case in LOSS_CASES:
        logits = logits_for(EX, case)
        probs, _, indices = moe.top_k_gating(logits, case.k)
        probs = probs.detach().requires_grad_()
        got = ensure_tensor(EX, EX.call(load_balancing_loss, probs, indices.clone(), case=case), "the loss", case)
        expected = moe.load_balancing_loss(probs, indices)
        if got.dim() != 0:
            if got.numel() == case.E:
                raise EX.fail(f"your loss has shape {tuple(got.shape)}, one value per expert: sum over the experts "
                              f"to a scalar, E · Σ_e m_e c_e (eq. (3.7)).", case=case)
            raise EX.fail(f"your loss has shape {tuple(got.shape)}: it is one number (a 0-dim tensor), eq. (3.7).",
                          case=case)
        mistakes = [Mistake(v.detach().reshape(()), hint) for v, hint in _variants(probs.detach(), indices)
                    if v is not None and not torch.allclose(v.detach(), expected.detach())]
        E, S = case.E, case.S
        EX.compare(got.reshape(()) if got.numel() == 1 else got, expected.detach(), case=case, name="loss",
                   equation="eq. (3.7), E · Σ_e m_e c_e", mistakes=mistakes,
                   factors={"E": E, "E²": E * E, "S": S, "k": case.k, "1/E": 1 / E})
        if not got.requires_grad:
            raise EX.fail("your loss has no gradient (it is not connected to probs): the loss must be differentiable "
                          "through m_e = mean of probs — don't .detach(), .item() or build it from the indices alone "
                          "(eq. (3.8)).", case=case)
        got_grad, = torch.autograd.grad(got, probs, allow_unused=True)
        expected_grad, = torch.autograd.grad(expected, probs)
        if got_grad is None:
            got_grad = torch.zeros_like(expected_grad)
        EX.compare(got_grad, expected_grad, case=case, name="dℓ/dprobs", axes=("S", "E"),
                   equation="eq. (3.8): only m_e carries a gradient, dℓ/dp_se = E c_e / S")
    EX.passed(f"{len(LOSS_CASES)} cases: ℓ_aux = E · Σ_e m_e c_e with c_e from the first choices, and its gradient "
              f"through the mean gate probabilities.")
