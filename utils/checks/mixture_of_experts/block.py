"""Exercise 3.7: an MoE transformer block, x + Attn(LN₁ x), then + MoE(LN₂ x) over all B·T tokens, and ℓ_aux."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from utils import moe
from utils.checks.core import Case, Mistake, copy_parameters, one_thread
from utils.checks.mixture_of_experts.cases import EX_BLOCK as EX


@dataclass(frozen=True)
class BlockCase(Case):
    B: int = 2
    T: int = 5
    D: int = 8
    H: int = 2
    E: int = 4
    k: int = 2
    capacity_factor: float | None = 1.0

    @property
    def sizes(self) -> dict[str, int]:
        return {"B": self.B, "T": self.T, "D": self.D, "E": self.E}


BLOCK_CASES = (
    BlockCase("B=2, T=5, D=8, E=4, k=2, capacity factor 1.0", dtype=torch.float64),
    BlockCase("top-1, B=2, T=4, E=3, capacity factor 1.25", B=2, T=4, E=3, k=1, capacity_factor=1.25,
              dtype=torch.float64),
    BlockCase("one token, B=1, T=1", B=1, T=1, dtype=torch.float64),
    BlockCase("no capacity limit, B=3, T=3, E=4, k=2", B=3, T=3, capacity_factor=None, dtype=torch.float64),
)


class ReferenceBlock(nn.Module):
    """The reference block; its flags make the classic wrong versions for the diagnosis."""

    def __init__(self, d_model, n_heads, d_hidden, num_experts, k=2, capacity_factor=1.25):
        super().__init__()
        self.k, self.capacity_factor = k, capacity_factor
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.attention = nn.MultiheadAttention(d_model, n_heads, batch_first=True)
        self.router = nn.Linear(d_model, num_experts, bias=False)
        self.experts = nn.ModuleList(moe.FeedForward(d_model, d_hidden) for _ in range(num_experts))

    def forward(self, x, causal=True, moe_residual=True, norm2=True, per_sequence=False, residual_of_norm=False,
                norm1_twice=False):
        B, T, D = x.shape
        h = self.norm1(x)
        mask = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1) if causal else None
        x = x + self.attention(h, h, h, attn_mask=mask, need_weights=False)[0]
        normed = (self.norm1(x) if norm1_twice else self.norm2(x)) if norm2 else x
        groups = normed.reshape(B, T, D) if per_sequence else normed.reshape(1, B * T, D)
        ys, losses = [], []
        for tokens in groups:
            routing = moe.route(self.router(tokens), self.k, self.capacity_factor)
            ys.append(moe.moe_forward(tokens, routing, self.experts))
            losses.append(routing.aux_loss)
        y = torch.cat(ys).reshape(B, T, D)
        base = normed if residual_of_norm else x
        return (base + y if moe_residual else y), torch.stack(losses).mean()


@one_thread
def check_moe_block(MoEBlock) -> None:
    """``MoEBlock(d_model, n_heads, d_hidden, num_experts, k, capacity_factor)``: forward(x) → (y, ℓ_aux)."""
    for case in BLOCK_CASES:
        torch.manual_seed(EX.seed(case.label))
        reference = ReferenceBlock(case.D, case.H, 6, case.E, case.k, case.capacity_factor).to(case.dtype)
        with torch.no_grad():  # a router that is not near-uniform, so routing decisions are clear-cut
            reference.router.weight.mul_(4)
            generator = torch.Generator().manual_seed(EX.seed(case.label, "norms"))
            for norm in (reference.norm1, reference.norm2):  # distinct LN₁ and LN₂, so swapping them shows
                norm.weight.copy_(1 + 0.3 * torch.randn(case.D, generator=generator, dtype=case.dtype))
                norm.bias.copy_(0.3 * torch.randn(case.D, generator=generator, dtype=case.dtype))
        block = EX.call(MoEBlock, case.D, case.H, 6, case.E, case.k, case.capacity_factor, what="MoEBlock(...)",
                        case=case).to(case.dtype)
        copy_parameters(reference, block, EX)
        x = EX.randn(case.B, case.T, case.D, key=(case.label, "x"), dtype=case.dtype)
        x_mine, x_ref = x.clone().requires_grad_(), x.clone().requires_grad_()
        out = EX.call(block, x_mine, what="MoEBlock.forward", case=case)
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            raise EX.fail("forward must return the pair (output, aux_loss).", case=case)
        got, got_aux = out
        expected, expected_aux = reference(x_ref)
        with torch.no_grad():
            variants = {
                "the MoE's output is not added to the residual stream: return x + y (dropped tokens then keep x).":
                    dict(moe_residual=False),
                "the router and the experts see x, not LN₂(x): normalise before the MoE layer (pre-norm).":
                    dict(norm2=False),
                "you route each sequence as its own group: route all B·T tokens as one group (reshape(B * T, D)), "
                "so the capacity C counts all of them.": dict(per_sequence=True),
                "your attention is not causal: pass the (T, T) mask triu(ones, diagonal=1) as attn_mask.":
                    dict(causal=False),
                "you add y to LN₂(x) instead of to x: the residual stream is the un-normalised x.":
                    dict(residual_of_norm=True),
                "the MoE layer's input goes through norm1 again: it takes LN₂(x), self.norm2 (each sub-layer has "
                "its own LayerNorm).": dict(norm1_twice=True),
            }
            mistakes = []
            for hint, flags in variants.items():
                wrong = reference(x, **flags)[0]
                if not torch.allclose(wrong, expected.detach(), atol=1e-9):
                    mistakes.append(Mistake(wrong, hint))
        if not isinstance(got, torch.Tensor):
            raise EX.fail(f"the output is a {type(got).__name__}, not a tensor.", case=case)
        EX.compare(got, expected.detach(), case=case, equation="the block: x + Attn(LN₁ x), then + MoE(LN₂ x)",
                   mistakes=mistakes, axes=("B", "T", "D"),
                   otherwise="your exercises 3.1 and 3.3–3.5 passed their checks, so look at how the block calls them")
        if not isinstance(got_aux, torch.Tensor) or got_aux.numel() != 1:
            raise EX.fail("the second value returned must be the scalar load-balancing loss of exercise 3.6.",
                          case=case)
        EX.compare(got_aux.reshape(()), expected_aux.detach(), case=case, name="aux_loss",
                   equation="eq. (3.7) over the B·T tokens, from the router's probabilities of LN₂(x)")
        g = EX.randn(*expected.shape, key=(case.label, "g"), dtype=case.dtype)
        if not got.requires_grad:
            raise EX.fail("the output is not connected to the autograd graph.", case=case)
        (got * g).sum().add(got_aux).backward()
        (expected * g).sum().add(expected_aux).backward()
        router_grad = block.router.weight.grad
        if router_grad is None or router_grad.abs().max() == 0:
            raise EX.fail("the router received no gradient: the gate weights must stay connected to it.", case=case)
        EX.compare(x_mine.grad, x_ref.grad, case=case, name="dL/dx", axes=("B", "T", "D"),
                   equation="the backward of the block (autograd computes it from your forward)",
                   atol=1e-9, rtol=1e-8)
        EX.compare(router_grad, reference.router.weight.grad, case=case, name="router gradient",
                   equation="the backward of eqs. (3.2) and (3.7)", atol=1e-9, rtol=1e-8)
    EX.passed(f"{len(BLOCK_CASES)} cases: output, ℓ_aux, dL/dx and the router's gradient match the reference block "
              f"(causal attention, pre-norm, all B·T tokens routed as one group, residual around the MoE).")
