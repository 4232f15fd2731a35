"""Exercises 6.2 and 6.3: the load-balancing loss N · Σ f_i P_i (eqs. (6.3), (6.5)) and the router z-loss (eqs.
(6.7), (6.8))."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from utils import switch
from utils.checks.core import Mistake, one_thread
from utils.checks.switch_transformer.cases import EX_LOSS, EX_Z, SwitchCase, compare_scalar, logits_for, scalar

LOSS_CASES = (
    SwitchCase("S=12, N=4, float64, a popular expert", S=12, N=4, skew=1.5, dtype=torch.float64),
    SwitchCase("S=10, N=8, float64", S=10, N=8, skew=0.5, dtype=torch.float64),
    SwitchCase("S=7, N=3", S=7, N=3, skew=2.5),
    SwitchCase("one token, S=1, N=4, float64", S=1, N=4, dtype=torch.float64),
)
Z_CASES = (
    SwitchCase("S=6, N=4, float64", S=6, N=4, dtype=torch.float64, logit_scale=3.0),
    SwitchCase("S=5, N=8, float64, logits near 0", S=5, N=8, dtype=torch.float64, logit_scale=0.05),
    SwitchCase("large logits (~100), S=4, N=3, float32", S=4, N=3, logit_scale=100.0),
    SwitchCase("one token, S=1, N=5, float64", S=1, N=5, dtype=torch.float64),
    SwitchCase("one expert, S=3, N=1, float64", S=3, N=1, dtype=torch.float64),
)
LOSS_EQUATION = "eq. (6.3), N · Σ_i f_i P_i"
Z_EQUATION = "eq. (6.7), (1/S) Σ_s (logsumexp_j h_sj)²"


def _loss_variants(probs: torch.Tensor, index: torch.Tensor) -> list[tuple[torch.Tensor, str]]:
    S, N = probs.shape
    f = F.one_hot(index, N).to(probs.dtype).mean(0)
    P = probs.mean(0)
    return [
        ((f * P).sum(), "your loss is Σ_i f_i P_i, N times too small: either it is not multiplied by the number of "
                        "experts N, or you averaged over the experts (N · mean_i) where eq. (6.3) sums, "
                        "N · Σ_i f_i P_i. Without N it is 1/N at perfect balance, so one weight α cannot fit every N."),
        ((f * P).mean(), "your loss is mean_i(f_i P_i), N² times too small: ℓ = N · Σ_i f_i P_i (eq. (6.3)), a SUM "
                         "over experts times N."),
        (N * N * (f * P).sum(), "your loss is N² · Σ_i f_i P_i, N times too large: multiply by N once (eq. (6.3))."),
        (N * (P * P).sum(), "your f is computed from the soft probabilities (f = P, a loss N · Σ P_i²): f_i is the "
                            "fraction of tokens DISPATCHED to expert i, a count of expert_index (argmax), which has no "
                            "gradient — only P carries one (eqs. (6.3), (6.5))."),
        (N * (f * f).sum(), "your P is computed from the dispatch (a count of expert_index), so the loss is N · Σ f_i² "
                            "and has no gradient at all: P_i is the MEAN PROBABILITY probs[:, i] over the tokens, the "
                            "differentiable factor (eqs. (6.3), (6.5))."),
        (N * (f * P).sum() * S, "your loss is S times too large: f_i (or P_i) is a sum over the tokens, not a mean — "
                                "a count, not a fraction; divide by S (eq. (6.3))."),
        (N * (f * P).sum() * S * S, "your f and P are both sums over the tokens (counts): both are means, eq. (6.3)."),
    ]


@one_thread
def check_switch_load_balancing_loss(switch_load_balancing_loss) -> None:
    """``switch_load_balancing_loss(probs, expert_index)`` → N · Σ f_i P_i (eq. (6.3)) and its gradient (eq. (6.5))."""
    EX = EX_LOSS
    for case in LOSS_CASES:
        probs = torch.softmax(logits_for(EX, case), -1).requires_grad_()
        index = probs.detach().argmax(-1)
        got = scalar(EX, EX.call(switch_load_balancing_loss, probs, index.clone(), case=case), case, LOSS_EQUATION)
        f = F.one_hot(index, case.N).to(probs.dtype).mean(0)
        expected = case.N * (f * probs.mean(0)).sum()
        mistakes = [Mistake(v.detach().reshape(()), hint) for v, hint in _loss_variants(probs.detach(), index)
                    if not torch.allclose(v.detach(), expected.detach())]
        compare_scalar(EX, got, expected.detach(), case=case, name="loss", equation=LOSS_EQUATION,
                       mistakes=mistakes, factors={"N": case.N, "N²": case.N ** 2, "S": case.S, "2": 2.0})
        if not got.requires_grad:
            raise EX.fail("your loss has no gradient: it must be differentiable through P_i = mean of probs[:, i] "
                          "(eq. (6.5)). Did you detach P (or compute it from expert_index), or use .item()? It is f "
                          "that has no gradient, not P.", case=case)
        got_grad, = torch.autograd.grad(got, probs, allow_unused=True)
        expected_grad, = torch.autograd.grad(expected, probs)
        if got_grad is None:
            got_grad = torch.zeros_like(expected_grad)
        soft_f = 2 * case.N * probs.detach().mean(0) / case.S  # the gradient if f were computed from probs
        EX.compare(got_grad, expected_grad, case=case, name="dℓ/dprobs", axes=("S", "N"),
                   equation="eq. (6.5): only P carries a gradient, dℓ/dp_si = N f_i / S",
                   mistakes=[Mistake(soft_f.expand_as(expected_grad),
                                     "your gradient is 2 N P_i / S: f is built from probs and carries a gradient. "
                                     "Count expert_index for f (no gradient), eq. (6.5).")])
    EX.passed(f"{len(LOSS_CASES)} cases: ℓ = N · Σ f_i P_i with f from the dispatch and P from the probabilities, "
              f"and its gradient N f_i / S through P alone.")


def _z_variants(h: torch.Tensor) -> list[tuple[torch.Tensor, str]]:
    S = h.shape[0]
    z = torch.logsumexp(h, -1)
    return [
        (z.mean(), "your loss has no square: ℓ_z = (1/S) Σ_s z_s² with z_s = logsumexp_j h_sj (eq. (6.7)). Without "
                   "the square it is not minimised at z = 0 and its gradient (eq. (6.8)) lacks the factor 2 z_s."),
        (z.abs().mean(), "your loss is the mean of |z_s|: square z_s instead (eq. (6.7))."),
        (z.mean() ** 2, "you square the MEAN of z: eq. (6.7) averages the squares, (1/S) Σ_s z_s²."),
        ((z ** 2).sum(), "your loss is summed over the tokens, S times too large: average over them (eq. (6.7))."),
        ((h.max(-1).values ** 2).mean(), "you use the largest logit max_j h_sj instead of logsumexp_j h_sj: the z-loss "
                                         "penalises the log-partition function log Σ_j exp h_sj (eq. (6.7))."),
        ((h ** 2).mean(), "your loss is the mean of the squared logits: eq. (6.7) squares logsumexp_j h_sj, one "
                          "number per token, not each logit."),
        ((h ** 2).sum(-1).mean(), "your loss is Σ_j h_sj² averaged over tokens: eq. (6.7) squares logsumexp_j h_sj."),
        ((torch.logsumexp(h.softmax(-1), -1) ** 2).mean(),
         "you apply logsumexp to the PROBABILITIES (after a softmax): the z-loss takes the raw router logits h, "
         "logsumexp_j h_sj (eq. (6.7))."),
        ((h.sum(-1) ** 2).mean(), "you square the SUM of the logits: eq. (6.7) squares log Σ_j exp h_sj."),
        ((torch.logsumexp(h, 0) ** 2).mean() if S > 1 else None,
         "your logsumexp runs over the tokens (dim=0): it runs over each token's N experts, dim=-1."),
    ]


@one_thread
def check_router_z_loss(router_z_loss) -> None:
    """``router_z_loss(logits)`` → (1/S) Σ_s (logsumexp h_s)² (eq. (6.7)), finite for large logits, gradient (6.8)."""
    EX = EX_Z
    for case in Z_CASES:
        h = logits_for(EX, case).requires_grad_()
        got = EX.call(router_z_loss, h, case=case)
        if isinstance(got, torch.Tensor) and not torch.isfinite(got).all() and case.logit_scale >= 50:
            raise EX.fail("your z-loss is inf/NaN for logits near 100 in float32: exp(100) overflows float32 (its "
                          "largest number is 3.4e38 ≈ exp(88.7)). Use torch.logsumexp(h, dim=-1), which subtracts the "
                          "maximum before exponentiating (eq. (6.7)).", case=case)
        got = scalar(EX, got, case, Z_EQUATION)
        expected = switch.router_z_loss(h)
        mistakes = [Mistake(v.detach().reshape(()), hint) for v, hint in _z_variants(h.detach())
                    if v is not None and not torch.allclose(v.detach(), expected.detach())]
        compare_scalar(EX, got, expected.detach(), case=case, name="z-loss", equation=Z_EQUATION,
                       mistakes=mistakes, factors={"S": case.S, "N": case.N, "2": 2.0})
        if not got.requires_grad:
            raise EX.fail("your z-loss has no gradient: compute it from the logits with torch operations (no .item(), "
                          ".detach() or numpy), eq. (6.8).", case=case)
        got_grad, = torch.autograd.grad(got, h, allow_unused=True)
        expected_grad, = torch.autograd.grad(expected, h)
        EX.compare(got_grad if got_grad is not None else torch.zeros_like(expected_grad), expected_grad, case=case,
                   name="dℓ_z/dh", axes=("S", "N"), equation="eq. (6.8), dℓ_z/dh_sj = (2/S) z_s p_sj")
    EX.passed(f"{len(Z_CASES)} cases, logits near 100 in float32 included: ℓ_z = mean of logsumexp², and its "
              f"gradient (2/S) z_s p_sj.")
