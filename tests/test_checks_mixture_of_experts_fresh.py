"""Ten wrong answers written after Chapter 03's checks were finished. At the first run, before any tuning, 2 of the 10
were named (the missing keepdim, dropped choices in combine), 7 were rejected with a true but general message
("compare with eq. (3.x)", one with a misleading "0 × the right ones"), and 1 passed (LN₁ used where LN₂ belongs: the
check's LayerNorms were both at their initial γ = 1, β = 0). The checks were then extended (temperature and
log-probability probes, g², x + y, all-zero positions, k outside the ceil, max for mean, distinct LN parameters);
the words asserted here are the diagnoses after that: all 10 named."""
import math

import pytest
import torch
import torch.nn.functional as F

from tests.checks_harness import assert_diagnoses
from tests.solution_code import solution_namespace
from utils.checks import mixture_of_experts as checks

CHAPTER = "03_mixture_of_experts"
SOLVED = solution_namespace(CHAPTER)
MoEBlock = SOLVED["MoEBlock"]


def gate_sum_without_keepdim(logits, k):
    probs = torch.softmax(logits, dim=-1)
    weights, indices = probs.topk(k, dim=-1)
    return probs, weights / weights.sum(dim=-1) if k > 1 else weights, indices


def gate_log_softmax(logits, k):
    probs = torch.log_softmax(logits, dim=-1)
    weights, indices = probs.exp().topk(k, dim=-1)
    return probs, weights / weights.sum(-1, keepdim=True) if k > 1 else weights, indices


def gate_temperature(logits, k):
    probs = torch.softmax(logits / 2, dim=-1)
    weights, indices = probs.topk(k, dim=-1)
    return probs, weights / weights.sum(-1, keepdim=True) if k > 1 else weights, indices


def loop_weight_squared(x, weights, indices, experts):
    y = torch.zeros_like(x)
    for e, expert in enumerate(experts):
        token, choice = torch.nonzero(indices == e, as_tuple=True)
        if len(token):
            w = weights[token, choice].unsqueeze(-1)
            y = y.index_add(0, token, w * w * expert(x[token]))
    return y


def positions_cumsum_over_choices(indices, num_experts, capacity_factor):
    S, k = indices.shape
    C = S if capacity_factor is None else max(1, math.ceil(capacity_factor * k * S / num_experts))
    mask = F.one_hot(indices, num_experts)  # (S, k, E)
    p = ((mask.cumsum(dim=1) - 1) * mask).sum(-1)
    return p, p < C, C


def capacity_k_outside_ceil(indices, num_experts, capacity_factor):
    S, k = indices.shape
    C = S if capacity_factor is None else max(1, math.ceil(capacity_factor * S / num_experts) * k)
    mask = F.one_hot(indices.t().reshape(-1), num_experts)
    p = ((mask.cumsum(0) - 1) * mask).sum(-1).reshape(k, S).t()
    return p, p < C, C


def combine_ignores_keep(weights, indices, positions, keep, num_experts, capacity):
    expert_hot = F.one_hot(indices, num_experts).to(weights.dtype)
    slot_hot = F.one_hot(positions.clamp(max=capacity - 1), capacity).to(weights.dtype)
    return (torch.einsum("Sk,SkE,SkC->SEC", keep.to(weights.dtype), expert_hot, slot_hot),
            torch.einsum("Sk,SkE,SkC->SEC", weights, expert_hot, slot_hot))


def einsum_adds_residual(x, dispatch, combine, experts):
    inputs = torch.einsum("SEC,SD->ECD", dispatch, x)
    outputs = torch.stack([expert(inputs[e]) for e, expert in enumerate(experts)])
    return x + torch.einsum("SEC,ECD->SD", combine, outputs)


def loss_max_gate(probs, indices):
    S, E = probs.shape
    m = probs.max(dim=0).values
    c = F.one_hot(indices[:, 0], E).to(probs.dtype).mean(0)
    return E * (m * c).sum()


class BlockNorm1Twice(MoEBlock):
    def forward(self, x):
        B, T, D = x.shape
        h = self.norm1(x)
        mask = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
        x = x + self.attention(h, h, h, attn_mask=mask, need_weights=False)[0]
        tokens = self.norm1(x).reshape(B * T, D)
        probs, weights, indices = SOLVED["top_k_gating"](self.router(tokens), self.k)
        positions, keep, C = SOLVED["capacity_positions"](indices, len(self.experts), self.capacity_factor)
        dispatch, combine = SOLVED["dispatch_combine"](weights, indices, positions, keep, len(self.experts), C)
        y = SOLVED["moe_einsum"](tokens, dispatch, combine, self.experts)
        return x + y.reshape(B, T, D), SOLVED["load_balancing_loss"](probs, indices)


@pytest.mark.parametrize("check, wrong, words", [
    (checks.check_top_k_gating, gate_sum_without_keepdim, ["keepdim"]),
    (checks.check_top_k_gating, gate_log_softmax, ["log_softmax"]),
    (checks.check_top_k_gating, gate_temperature, ["τ = 2", "no temperature"]),
    (checks.check_moe_loop, loop_weight_squared, ["applied twice"]),
    (checks.check_capacity_positions, positions_cumsum_over_choices, ["all your positions are 0", "TOKENS"]),
    (checks.check_capacity_positions, capacity_k_outside_ceil, ["multiplies by k after rounding"]),
    (checks.check_dispatch_combine, combine_ignores_keep, ["dropped", "keep"]),
    (checks.check_moe_einsum, einsum_adds_residual, ["x + the MoE's output"]),
    (checks.check_load_balancing_loss, loss_max_gate, ["largest probability", "MEAN"]),
    (checks.check_moe_block, BlockNorm1Twice, ["norm1 again", "LN₂"]),
])
def test_fresh_wrong_answers_are_rejected(check, wrong, words):
    assert_diagnoses(check, wrong, *words)
