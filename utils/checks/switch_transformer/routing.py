"""Exercise 6.1: top-1 routing (eq. (6.1)) with capacity C = ceil(capacity_factor · S / N) (eq. (6.6))."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from utils import moe
from utils.checks.core import Mistake, one_thread
from utils.checks.switch_transformer.cases import EX_ROUTE as EX
from utils.checks.switch_transformer.cases import SwitchCase, ensure_tensor, expect_tuple, logits_for

ROUTE_CASES = (
    SwitchCase("S=12, N=4, capacity factor 1.0, a popular expert", S=12, N=4, capacity_factor=1.0, skew=1.5),
    SwitchCase("S=20, N=8, capacity factor 0.5, float64", S=20, N=8, capacity_factor=0.5, skew=1.0,
               dtype=torch.float64),
    SwitchCase("S=16, N=4, no capacity limit", S=16, N=4, capacity_factor=None, skew=2.0),
    SwitchCase("S=9, N=2, capacity factor 1.25", S=9, N=2, capacity_factor=1.25, skew=0.7),
    SwitchCase("one token, S=1, N=3, capacity factor 1.0", S=1, N=3, capacity_factor=1.0),
    SwitchCase("one expert, S=5, N=1, capacity factor 1.0", S=5, N=1, capacity_factor=1.0),
    SwitchCase("S=30, N=4, capacity factor 1.1", S=30, N=4, capacity_factor=1.1, skew=1.2),
)
EQUATION = "eq. (6.1): p = softmax(h) over the N experts, i = argmax p, gate p_i"


def _capacity_names(case: SwitchCase) -> dict[int, str]:
    """Capacities a learner may compute instead of eq. (6.6), by what they forgot or changed; where two readings
    give the same number, both are said."""
    S, N, cf = case.S, case.N, case.capacity_factor
    if cf is None:
        return {}
    names = [
        (math.ceil(2 * cf * S / N), "k · capacity_factor · S / N with k = 2 (GShard's top-2 capacity): top-1 has no "
                                   "factor k, C = ceil(capacity_factor · S / N)"),
        (math.floor(cf * S / N), "floor(capacity_factor · S / N): eq. (6.6) rounds up (math.ceil), so that a "
                                "factor of 1 fits a perfectly balanced batch"),
        (round(cf * S / N), "round(capacity_factor · S / N): eq. (6.6) rounds up (math.ceil)"),
        (math.ceil(cf * S / N) - 1, "one less than C: a token is kept when its slot (counting from 0) is < C — you "
                                   "counted slots from 1, or compared with ≤ C − 1"),
        (math.ceil(cf * S / N) + 1, "one more than C: a token is kept when its slot, counting from 0, is < C "
                                   "(not ≤ C)"),
        (math.ceil(S / N), "ceil(S / N): the capacity factor is missing from eq. (6.6)"),
        (math.ceil(cf * S), "ceil(capacity_factor · S): divide by the number of experts N, eq. (6.6)"),
        (math.ceil(cf * N), "ceil(capacity_factor · N): C is capacity_factor · S / N (tokens per expert), eq. (6.6)"),
    ]
    right = math.ceil(cf * S / N)
    found: dict[int, list[str]] = {}
    for c, text in names:
        if c != right and c >= 0 and text not in found.get(c, []):
            found.setdefault(c, []).append(text)
    return {c: " — or ".join(texts) for c, texts in found.items()}


def _keep_reading(got_keep: torch.Tensor, indices: torch.Tensor, case: SwitchCase) -> str | None:
    """Read the learner's keep mask as 'the first c tokens of each expert, in token order' and name c."""
    S, N = case.S, case.N
    one_hot = F.one_hot(indices, N)
    position = (one_hot.cumsum(0) * one_hot).sum(-1) - 1  # (S,)
    capacity = moe.expert_capacity(S, N, 1, case.capacity_factor)
    if got_keep.all() and case.capacity_factor is not None:
        return (f"you keep every token, but the capacity is C = ceil({case.capacity_factor} · {S} / {N}) = {capacity}: "
                f"drop the tokens whose slot in their expert is ≥ C — no capacity applied, or a C far too large, e.g. "
                f"ceil(capacity_factor · S) without dividing by the number of experts N (eq. (6.6)).")
    named = _capacity_names(case)
    for c in [*sorted(named), *range(0, S + 2)]:
        if torch.equal(got_keep, position < c):
            if case.capacity_factor is None:
                return (f"with capacity_factor=None nothing is dropped (C = S = {S}), but you keep only the first {c} "
                        f"of each expert.")
            name = named.get(c)
            return (f"you keep the first {c} tokens of each expert, but C = ceil({case.capacity_factor} · {S} / {N}) "
                    f"= {capacity}" + (f": you computed {name}." if name else " (eq. (6.6))."))
    if case.capacity_factor is not None:
        reverse = torch.flip(torch.flip(one_hot, [0]).cumsum(0), [0])
        from_end = (reverse * one_hot).sum(-1) - 1
        if torch.equal(got_keep, from_end < capacity) and not torch.equal(from_end < capacity, position < capacity):
            return ("you keep the LAST C tokens of each expert: tokens take the slots in token order, first come "
                    "first served (a cumulative sum from the start).")
        return ("your keep mask is not 'the first C tokens of each expert in token order': give each token the slot "
                "= (number of earlier tokens with the same expert), counting from 0, and keep it when slot < C "
                f"= {capacity}. If you ordered tokens by their probability, eq. (6.6) uses token order.")
    return None


@one_thread
def check_switch_route(switch_route) -> None:
    """``switch_route(logits, capacity_factor)`` → (expert_index, gate, keep), each (S,)."""
    for case in ROUTE_CASES:
        logits = logits_for(EX, case).requires_grad_()
        got = expect_tuple(EX, EX.call(switch_route, logits, case.capacity_factor, case=case),
                           ("expert_index", "gate", "keep"), case)
        expected = moe.route(logits, k=1, capacity_factor=case.capacity_factor)
        index, gate, keep = (ensure_tensor(EX, g, f"your {n}", case) for g, n in
                             zip(got, ("expert_index", "gate", "keep")))
        for name, tensor in (("expert_index", index), ("gate", gate), ("keep", keep)):
            if tensor.shape == (case.S, 1):
                raise EX.fail(f"your {name} has shape {tuple(tensor.shape)}: return one value per token, shape "
                              f"(S,) = ({case.S},) — take [:, 0] or .squeeze(-1).", case=case)
        exp_index, exp_gate, exp_keep = expected.indices[:, 0], expected.weights[:, 0], expected.keep[:, 0]
        probs = expected.probs.detach()
        if isinstance(index, torch.Tensor) and index.shape == exp_index.shape and index.is_floating_point():
            raise EX.fail(f"your expert_index is {index.dtype}: expert numbers are integers (torch.long), as "
                          f"argmax/topk return them.", case=case)
        index_mistakes = [Mistake(logits.detach().argmin(-1), "you chose the expert with the SMALLEST logit "
                                  "(argmin): the token goes to the most probable expert, argmax.")]
        if case.S > 1:
            index_mistakes.append(Mistake(torch.softmax(logits.detach(), 0).argmax(-1),
                                          "your softmax runs over the tokens (dim=0): it runs over the N experts "
                                          "of each token (dim=-1)."))
        EX.compare(index, exp_index, case=case, name="expert_index", equation=EQUATION, mistakes=index_mistakes)
        gate_mistakes = [
            Mistake(torch.ones_like(exp_gate), "your gate is 1 for every token: a softmax after choosing (over the "
                    "one chosen logit) or a renormalisation over the chosen expert gives 1, and then the router gets "
                    "no gradient (eq. (6.2)). The gate is p_i, the softmax over ALL N experts, taken before choosing."),
            Mistake(logits.detach().max(-1).values, "your gate is the largest LOGIT h_i: it is the probability "
                    "p_i = softmax(h)_i (eq. (6.1))."),
            Mistake(torch.softmax(logits.detach(), 0).max(-1).values if case.S > 1 else None,
                    "your gate comes from a softmax over the tokens (dim=0): softmax over the experts, dim=-1."),
        ]
        EX.compare(gate, exp_gate, case=case, name="gate", equation=EQUATION,
                   mistakes=[m for m in gate_mistakes if m.output is not None and
                             not torch.allclose(m.output, exp_gate.detach())])
        if not gate.requires_grad:
            raise EX.fail("your gate is not connected to the logits (no gradient): the router learns only through "
                          "p_i (eq. (6.2)) — don't .detach(), .item() or index probs under torch.no_grad().",
                          case=case)
        got_grad, = torch.autograd.grad(gate.sum(), logits, allow_unused=True)
        exp_grad, = torch.autograd.grad(exp_gate.sum(), logits)
        EX.compare(got_grad if got_grad is not None else torch.zeros_like(exp_grad), exp_grad, case=case,
                   name="d gate / d logits", equation="eq. (6.2): dp_i/dh_j = p_i (δ_ij − p_j)")
        if keep.dtype != torch.bool:
            if keep.shape == exp_keep.shape and torch.equal(keep.detach().to(torch.float64) != 0, exp_keep):
                raise EX.fail(f"your keep is {keep.dtype}: return a boolean mask (slot < C gives one).", case=case)
        if keep.shape != exp_keep.shape:
            EX.compare(keep, exp_keep, case=case, name="keep", equation="eq. (6.6)")
        if not torch.equal(keep.to(torch.bool), exp_keep):
            reading = _keep_reading(keep.to(torch.bool), exp_index, case)
            raise EX.fail(reading or f"your keep mask differs from eq. (6.6)'s (C = "
                          f"{moe.expert_capacity(case.S, case.N, 1, case.capacity_factor)}).", case=case, name="keep")
        del probs
    EX.passed(f"{len(ROUTE_CASES)} cases: argmax of the softmax over experts, gate p_i with its gradient, and the "
              f"first C = ceil(capacity_factor · S / N) tokens of each expert kept, in token order.")
