"""Every check of Chapter 03 passes on the reference answers and names each wrong answer in words a learner can act on.

The wrong answers are written the way a learner writes them (functions with the exercise's signature; for the block,
a subclass of the solution's class that keeps the given ``__init__``), never built from the checks' own references.
Each test carries its exercise's marker: ``pytest -m ex3_4``.
"""
import math

import pytest
import torch
import torch.nn.functional as F

from tests.checks_harness import assert_diagnoses, assert_passes, assert_stub_passes_through, exercise
from tests.solution_code import solution_namespace
from utils.checks import mixture_of_experts as checks

CHAPTER = "03_mixture_of_experts"
SOLVED = solution_namespace(CHAPTER)
top_k_gating, moe_loop = SOLVED["top_k_gating"], SOLVED["moe_loop"]
capacity_positions, dispatch_combine = SOLVED["capacity_positions"], SOLVED["dispatch_combine"]
moe_einsum, load_balancing_loss, MoEBlock = SOLVED["moe_einsum"], SOLVED["load_balancing_loss"], SOLVED["MoEBlock"]


def stub(*args, **kwargs):
    raise NotImplementedError("Exercise 3.0: write the body")


@pytest.mark.parametrize("check, answer", [
    (checks.check_top_k_gating, top_k_gating), (checks.check_moe_loop, moe_loop),
    (checks.check_capacity_positions, capacity_positions), (checks.check_dispatch_combine, dispatch_combine),
    (checks.check_moe_einsum, moe_einsum), (checks.check_load_balancing_loss, load_balancing_loss),
    (checks.check_moe_block, MoEBlock)])
def test_references_pass_and_stubs_pass_through(check, answer):
    assert_passes(check, answer)
    if check is not checks.check_moe_block:
        assert_stub_passes_through(check, stub)


def test_block_stub_passes_through():
    class Stub(MoEBlock):
        def forward(self, x):
            raise NotImplementedError("Exercise 3.7: write forward")
    assert_stub_passes_through(checks.check_moe_block, Stub)


# ================================================================================================ Exercise 3.1
def gate_softmax_after_topk(logits, k):  # the named mistake
    top_logits, indices = logits.topk(k, dim=-1)
    weights = torch.softmax(top_logits, dim=-1)
    probs = torch.zeros_like(logits).scatter(-1, indices, weights)
    return probs, weights, indices


def gate_softmax_after_topk_full_probs(logits, k):  # right probs, but weights from a softmax after top-k
    probs = torch.softmax(logits, dim=-1)
    top_logits, indices = logits.topk(k, dim=-1)
    return probs, torch.softmax(top_logits, dim=-1), indices


def gate_not_renormalised(logits, k):  # "renormalising wrong": none at all
    probs = torch.softmax(logits, dim=-1)
    weights, indices = probs.topk(k, dim=-1)
    return probs, weights, indices


def gate_renormalised_over_all(logits, k):  # "renormalising wrong": over all E
    probs = torch.softmax(logits, dim=-1)
    weights, indices = probs.topk(k, dim=-1)
    return probs, weights / probs.sum(dim=-1, keepdim=True), indices


def gate_always_renormalised(logits, k):  # k = 1 too: weight 1
    probs = torch.softmax(logits, dim=-1)
    weights, indices = probs.topk(k, dim=-1)
    return probs, weights / weights.sum(dim=-1, keepdim=True), indices


def gate_softmax_dim0(logits, k):
    probs = torch.softmax(logits, dim=0)
    weights, indices = probs.topk(k, dim=-1)
    return probs, weights / weights.sum(-1, keepdim=True) if k > 1 else weights, indices


def gate_renormalised_over_tokens(logits, k):
    probs = torch.softmax(logits, dim=-1)
    weights, indices = probs.topk(k, dim=-1)
    return probs, weights / weights.sum(dim=0, keepdim=True) if k > 1 else weights, indices


def gate_unsorted(logits, k):
    probs = torch.softmax(logits, dim=-1)
    weights, indices = probs.topk(k, dim=-1)
    indices, order = indices.sort(dim=-1)
    weights = weights.gather(-1, order)
    return probs, weights / weights.sum(-1, keepdim=True) if k > 1 else weights, indices


def gate_smallest(logits, k):
    probs = torch.softmax(logits, dim=-1)
    weights, indices = probs.topk(k, dim=-1, largest=False)
    return probs, weights / weights.sum(-1, keepdim=True) if k > 1 else weights, indices


def gate_detached(logits, k):
    probs = torch.softmax(logits, dim=-1).detach()
    weights, indices = probs.topk(k, dim=-1)
    return probs, weights / weights.sum(-1, keepdim=True) if k > 1 else weights, indices


def gate_swapped_returns(logits, k):
    probs, weights, indices = top_k_gating(logits, k)
    return probs, indices, weights


def gate_two_values(logits, k):
    probs, weights, indices = top_k_gating(logits, k)
    return weights, indices


def gate_logit_weights(logits, k):
    probs = torch.softmax(logits, dim=-1)
    weights, indices = logits.topk(k, dim=-1)
    return probs, weights, indices


def gate_divide_by_first(logits, k):
    probs = torch.softmax(logits, dim=-1)
    weights, indices = probs.topk(k, dim=-1)
    return probs, weights / weights[:, :1] if k > 1 else weights, indices


def gate_double_softmax(logits, k):
    probs = torch.softmax(logits, dim=-1)
    weights, indices = probs.topk(k, dim=-1)
    return probs, torch.softmax(weights, dim=-1) if k > 1 else weights, indices


def gate_hardcoded_top2(logits, k):
    probs = torch.softmax(logits, dim=-1)
    weights, indices = probs.topk(2, dim=-1)
    return probs, weights / weights.sum(-1, keepdim=True), indices


def gate_int32_indices(logits, k):
    probs, weights, indices = top_k_gating(logits, k)
    return probs, weights, indices.int()


@exercise("3.1")
@pytest.mark.parametrize("wrong, words", [
    (gate_softmax_after_topk, ["softmax over the k chosen", "ALL E experts first"]),
    (gate_softmax_after_topk_full_probs, ["top-1 weights are all 1", "no gradient"]),
    (gate_not_renormalised, ["not renormalised", "sum of the k chosen"]),
    (gate_renormalised_over_all, ["not renormalised", "all E"]),
    (gate_always_renormalised, ["top-1 weights are all 1", "probability itself"]),
    (gate_softmax_dim0, ["over the tokens (dim=0)"]),
    (gate_renormalised_over_tokens, ["over the tokens (dim=0)", "weights"]),
    (gate_unsorted, ["wrong order", "best first"]),
    (gate_smallest, ["LEAST likely"]),
    (gate_detached, ["not connected", "autograd"]),
    (gate_swapped_returns, ["swapped"]),
    (gate_two_values, ["return the tuple (probs, weights, indices)"]),
    (gate_logit_weights, ["chosen logits, not probabilities"]),
    (gate_divide_by_first, ["first (largest) probability"]),
    (gate_double_softmax, ["softmax applied twice"]),
    (gate_hardcoded_top2, ["re:shape|k"]),
    (gate_int32_indices, ["int64"]),
])
def test_gate_mistakes_are_named(wrong, words):
    assert_diagnoses(checks.check_top_k_gating, wrong, *words)


# ================================================================================================ Exercise 3.2
def loop_unweighted(x, weights, indices, experts):
    y = torch.zeros_like(x)
    for e, expert in enumerate(experts):
        token, choice = torch.nonzero(indices == e, as_tuple=True)
        if len(token):
            y = y.index_add(0, token, expert(x[token]))
    return y


def loop_assigns(x, weights, indices, experts):
    y = torch.zeros_like(x)
    for e, expert in enumerate(experts):
        token, choice = torch.nonzero(indices == e, as_tuple=True)
        if len(token):
            y[token] = weights[token, choice].unsqueeze(-1) * expert(x[token])
    return y


def loop_skips_last_expert(x, weights, indices, experts):
    y = torch.zeros_like(x)
    for e in range(len(experts) - 1):
        token, choice = torch.nonzero(indices == e, as_tuple=True)
        if len(token):
            y = y.index_add(0, token, weights[token, choice].unsqueeze(-1) * experts[e](x[token]))
    return y


def loop_first_choice_only(x, weights, indices, experts):
    y = torch.zeros_like(x)
    for e, expert in enumerate(experts):
        token = torch.nonzero(indices[:, 0] == e, as_tuple=True)[0]
        if len(token):
            y = y.index_add(0, token, weights[token, 0].unsqueeze(-1) * expert(x[token]))
    return y


def loop_first_weight(x, weights, indices, experts):
    y = torch.zeros_like(x)
    for e, expert in enumerate(experts):
        token, choice = torch.nonzero(indices == e, as_tuple=True)
        if len(token):
            y = y.index_add(0, token, weights[token, 0].unsqueeze(-1) * expert(x[token]))
    return y


def loop_per_token(x, weights, indices, experts):
    rows = []
    for s in range(x.shape[0]):
        rows.append(sum(weights[s, j] * experts[int(indices[s, j])](x[s:s + 1])[0] for j in range(indices.shape[1])))
    return torch.stack(rows)


def loop_runs_idle_experts(x, weights, indices, experts):  # right: an expert on an empty batch adds nothing
    y = torch.zeros_like(x)
    for e, expert in enumerate(experts):
        token, choice = torch.nonzero(indices == e, as_tuple=True)
        y = y.index_add(0, token, weights[token, choice].unsqueeze(-1) * expert(x[token]))
    return y


def loop_per_choice_column(x, weights, indices, experts):  # right: batched per expert and per choice
    y = torch.zeros_like(x)
    for j in range(indices.shape[1]):
        for e, expert in enumerate(experts):
            token = torch.nonzero(indices[:, j] == e, as_tuple=True)[0]
            if len(token):
                y = y.index_add(0, token, weights[token, j].unsqueeze(-1) * expert(x[token]))
    return y


def loop_in_place_on_x(x, weights, indices, experts):
    y = moe_loop(x, weights, indices, experts)
    x.mul_(1.0)
    x += 0
    x[0] = 0
    return y


def loop_weight_without_axis(x, weights, indices, experts):
    y = torch.zeros_like(x)
    for e, expert in enumerate(experts):
        token, choice = torch.nonzero(indices == e, as_tuple=True)
        if len(token):
            y = y.index_add(0, token, weights[token, choice] * expert(x[token]))
    return y


@exercise("3.2")
@pytest.mark.parametrize("wrong, words", [
    (loop_unweighted, ["without their gate weights"]),
    (loop_assigns, ["re:overwrite|add \\(index_add\\)|assign"]),
    (loop_skips_last_expert, ["expert", "skip"]),
    (loop_first_choice_only, ["choice 2", "missing"]),
    (loop_first_weight, ["FIRST weight"]),
    (loop_per_token, ["call each once", "times"]),
    (loop_in_place_on_x, ["in place"]),
    (loop_weight_without_axis, ["re:broadcast|shape|size"]),
])
def test_loop_mistakes_are_named(wrong, words):
    assert_diagnoses(checks.check_moe_loop, wrong, *words)


# ================================================================================================ Exercise 3.3
def _positions(indices, E):
    S, k = indices.shape
    mask = F.one_hot(indices.t().reshape(-1), E)
    return ((mask.cumsum(0) - 1) * mask).sum(-1).reshape(k, S).t()


def capacity_floor(indices, num_experts, capacity_factor):
    S, k = indices.shape
    C = S if capacity_factor is None else max(1, int(capacity_factor * k * S / num_experts))
    p = _positions(indices, num_experts)
    return p, p < C, C


def capacity_without_k(indices, num_experts, capacity_factor):
    S, k = indices.shape
    C = S if capacity_factor is None else max(1, math.ceil(capacity_factor * S / num_experts))
    p = _positions(indices, num_experts)
    return p, p < C, C


def capacity_none_unhandled(indices, num_experts, capacity_factor):
    S, k = indices.shape
    C = math.ceil((capacity_factor or 0) * k * S / num_experts) or 1
    p = _positions(indices, num_experts)
    return p, p < C, C


def capacity_float(indices, num_experts, capacity_factor):
    S, k = indices.shape
    C = float(S if capacity_factor is None else max(1, math.ceil(capacity_factor * k * S / num_experts)))
    p = _positions(indices, num_experts)
    return p, p < C, C


def positions_token_major(indices, num_experts, capacity_factor):
    S, k = indices.shape
    C = S if capacity_factor is None else max(1, math.ceil(capacity_factor * k * S / num_experts))
    mask = F.one_hot(indices.reshape(-1), num_experts)
    p = ((mask.cumsum(0) - 1) * mask).sum(-1).reshape(S, k)
    return p, p < C, C


def positions_from_one(indices, num_experts, capacity_factor):
    S, k = indices.shape
    C = S if capacity_factor is None else max(1, math.ceil(capacity_factor * k * S / num_experts))
    mask = F.one_hot(indices.t().reshape(-1), num_experts)
    p = (mask.cumsum(0) * mask).sum(-1).reshape(k, S).t()
    return p, p < C, C


def positions_per_choice(indices, num_experts, capacity_factor):
    S, k = indices.shape
    C = S if capacity_factor is None else max(1, math.ceil(capacity_factor * k * S / num_experts))
    p = torch.stack([((F.one_hot(indices[:, j], num_experts).cumsum(0) - 1) * F.one_hot(indices[:, j], num_experts))
                     .sum(-1) for j in range(k)], dim=1)
    return p, p < C, C


def keep_less_equal(indices, num_experts, capacity_factor):
    S, k = indices.shape
    C = S if capacity_factor is None else max(1, math.ceil(capacity_factor * k * S / num_experts))
    p = _positions(indices, num_experts)
    return p, p <= C, C


def keep_everything(indices, num_experts, capacity_factor):
    S, k = indices.shape
    C = S if capacity_factor is None else max(1, math.ceil(capacity_factor * k * S / num_experts))
    p = _positions(indices, num_experts)
    return p, torch.ones_like(p, dtype=torch.bool), C


def keep_as_float(indices, num_experts, capacity_factor):
    p, keep, C = capacity_positions(indices, num_experts, capacity_factor)
    return p, keep.float(), C


def positions_as_float(indices, num_experts, capacity_factor):
    p, keep, C = capacity_positions(indices, num_experts, capacity_factor)
    return p.float(), keep, C


def capacity_swapped_s_e(indices, num_experts, capacity_factor):
    S, k = indices.shape
    C = S if capacity_factor is None else max(1, math.ceil(capacity_factor * k * num_experts / S))
    p = _positions(indices, num_experts)
    return p, p < C, C


@exercise("3.3")
@pytest.mark.parametrize("wrong, words", [
    (capacity_floor, ["rounds down", "math.ceil"]),
    (capacity_without_k, ["leaves out k"]),
    (capacity_none_unhandled, ["capacity_factor=None", "C = S"]),
    (capacity_float, ["float", "int"]),
    (positions_token_major, ["token order", "first choices"]),
    (positions_from_one, ["count from 1", "slot 0"]),
    (positions_per_choice, ["counts from 0 on its own", "AFTER all the first choices"]),
    (keep_less_equal, ["position ≤ C", "positions < C"]),
    (keep_everything, ["True everywhere"]),
    (keep_as_float, ["bool"]),
    (positions_as_float, ["integers"]),
    (capacity_swapped_s_e, ["S and E swapped"]),
])
def test_capacity_mistakes_are_named(wrong, words):
    assert_diagnoses(checks.check_capacity_positions, wrong, *words)


# ================================================================================================ Exercise 3.4
def dispatch_counts_dropped(weights, indices, positions, keep, num_experts, capacity):  # the named mistake
    expert_hot = F.one_hot(indices, num_experts).to(weights.dtype)
    slot_hot = F.one_hot(positions.clamp(max=capacity - 1), capacity).to(weights.dtype)
    return (torch.einsum("SkE,SkC->SEC", expert_hot, slot_hot),
            torch.einsum("Sk,SkE,SkC->SEC", weights, expert_hot, slot_hot))


def dispatch_no_weights_in_combine(weights, indices, positions, keep, num_experts, capacity):
    dispatch, _ = dispatch_combine(weights, indices, positions, keep, num_experts, capacity)
    return dispatch, dispatch


def dispatch_holds_weights(weights, indices, positions, keep, num_experts, capacity):
    _, combine = dispatch_combine(weights, indices, positions, keep, num_experts, capacity)
    return combine, combine


def dispatch_transposed(weights, indices, positions, keep, num_experts, capacity):
    dispatch, combine = dispatch_combine(weights, indices, positions, keep, num_experts, capacity)
    return dispatch.permute(1, 2, 0), combine.permute(1, 2, 0)


def dispatch_one_slot_off(weights, indices, positions, keep, num_experts, capacity):
    return dispatch_combine(weights, indices, (positions + 1).clamp(max=capacity - 1), keep, num_experts, capacity)


@exercise("3.4")
@pytest.mark.parametrize("wrong, words", [
    (dispatch_counts_dropped, ["dropped", "keep"]),
    (dispatch_no_weights_in_combine, ["combine tensor holds 1s"]),
    (dispatch_holds_weights, ["dispatch tensor holds the gate weights"]),
    (dispatch_transposed, ["re:order|permute|axes|transpos"]),
    (dispatch_one_slot_off, ["right experts", "wrong slots"]),
])
def test_dispatch_mistakes_are_named(wrong, words):
    assert_diagnoses(checks.check_dispatch_combine, wrong, *words)


def dispatch_returns_bool(weights, indices, positions, keep, num_experts, capacity):
    dispatch, combine = dispatch_combine(weights, indices, positions, keep, num_experts, capacity)
    return dispatch.bool(), combine


@exercise("3.4")
def test_bool_dispatch_is_named():
    """The exercise asks for weights' dtype: eq. (3.5)'s einsums cannot mix a bool dispatch with float tokens."""
    assert_diagnoses(checks.check_dispatch_combine, dispatch_returns_bool, "bool", "dtype")


# ================================================================================================ Exercise 3.5
def einsum_dispatch_to_combine(x, dispatch, combine, experts):
    inputs = torch.einsum("SEC,SD->ECD", dispatch, x)
    outputs = torch.stack([expert(inputs[e]) for e, expert in enumerate(experts)])
    return torch.einsum("SEC,ECD->SD", dispatch, outputs)


def einsum_no_experts(x, dispatch, combine, experts):
    inputs = torch.einsum("SEC,SD->ECD", dispatch, x)
    return torch.einsum("SEC,ECD->SD", combine, inputs)


def einsum_combine_to_pack(x, dispatch, combine, experts):
    inputs = torch.einsum("SEC,SD->ECD", combine, x)
    outputs = torch.stack([expert(inputs[e]) for e, expert in enumerate(experts)])
    return torch.einsum("SEC,ECD->SD", combine, outputs)


def einsum_bad_pattern(x, dispatch, combine, experts):
    inputs = torch.einsum("SEC,SD->CED", dispatch, x)
    outputs = torch.stack([expert(inputs[e]) for e, expert in enumerate(experts)])
    return torch.einsum("SEC,ECD->SD", combine, outputs)


@exercise("3.5")
@pytest.mark.parametrize("wrong, words", [
    (einsum_dispatch_to_combine, ["no gate weights", "combine tensor"]),
    (einsum_no_experts, ["INPUT buffers", "run expert e"]),
    (einsum_combine_to_pack, ["packed the buffers with the combine tensor"]),
    (einsum_bad_pattern, ["raised"]),
])
def test_einsum_mistakes_are_named(wrong, words):
    assert_diagnoses(checks.check_moe_einsum, wrong, *words)


# ================================================================================================ Exercise 3.6
def _m_c(probs, indices):
    S, E = probs.shape
    return probs.mean(0), F.one_hot(indices[:, 0], E).to(probs.dtype).mean(0), E, S


def loss_not_scaled(probs, indices):  # the named mistake
    m, c, E, S = _m_c(probs, indices)
    return (m * c).sum()


def loss_mean_form(probs, indices):
    m, c, E, S = _m_c(probs, indices)
    return (m * c).mean()


def loss_e_squared(probs, indices):
    m, c, E, S = _m_c(probs, indices)
    return E * E * (m * c).sum()


def loss_all_choices(probs, indices):
    m, _, E, S = _m_c(probs, indices)
    c = F.one_hot(indices, E).to(probs.dtype).sum(1).mean(0)
    return E * (m * c).sum()


def loss_last_choice(probs, indices):
    m, _, E, S = _m_c(probs, indices)
    return E * (m * F.one_hot(indices[:, -1], E).to(probs.dtype).mean(0)).sum()


def loss_squared_mean(probs, indices):
    m, _, E, S = _m_c(probs, indices)
    return E * (m * m).sum()


def loss_counts(probs, indices):
    m, _, E, S = _m_c(probs, indices)
    return E * (m * F.one_hot(indices[:, 0], E).to(probs.dtype).sum(0)).sum()


def loss_detached(probs, indices):
    m, c, E, S = _m_c(probs.detach(), indices)
    return E * (m * c).sum()


def loss_per_expert(probs, indices):
    m, c, E, S = _m_c(probs, indices)
    return E * m * c


def loss_sum_gate(probs, indices):
    _, c, E, S = _m_c(probs, indices)
    return E * (probs.sum(0) * c).sum()


def loss_item(probs, indices):
    m, c, E, S = _m_c(probs, indices)
    return (E * (m * c).sum()).item()


@exercise("3.6")
@pytest.mark.parametrize("wrong, words", [
    (loss_not_scaled, ["not scaled by the number of experts"]),
    (loss_mean_form, ["E² times too small"]),
    (loss_e_squared, ["E times too large"]),
    (loss_all_choices, ["all k choices", "FIRST"]),
    (loss_last_choice, ["LAST choice"]),
    (loss_squared_mean, ["Σ m_e²"]),
    (loss_counts, ["S times too large", "count, not a fraction"]),
    (loss_detached, ["no gradient"]),
    (loss_per_expert, ["one value per expert"]),
    (loss_sum_gate, ["S times too large", "sum over the tokens, not a mean"]),
    (loss_item, ["not a tensor"]),
])
def test_loss_mistakes_are_named(wrong, words):
    assert_diagnoses(checks.check_load_balancing_loss, wrong, *words)


# ================================================================================================ Exercise 3.7
def _route(self, tokens):
    probs, weights, indices = top_k_gating(self.router(tokens), self.k)
    positions, keep, capacity = capacity_positions(indices, len(self.experts), self.capacity_factor)
    dispatch, combine = dispatch_combine(weights, indices, positions, keep, len(self.experts), capacity)
    return moe_einsum(tokens, dispatch, combine, self.experts), load_balancing_loss(probs, indices)


def _attend(self, x, causal=True):
    T = x.shape[1]
    h = self.norm1(x)
    mask = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1) if causal else None
    return x + self.attention(h, h, h, attn_mask=mask, need_weights=False)[0]


class BlockNoResidual(MoEBlock):
    def forward(self, x):
        B, T, D = x.shape
        x = _attend(self, x)
        y, aux = _route(self, self.norm2(x).reshape(B * T, D))
        return y.reshape(B, T, D), aux


class BlockNoNorm2(MoEBlock):
    def forward(self, x):
        B, T, D = x.shape
        x = _attend(self, x)
        y, aux = _route(self, x.reshape(B * T, D))
        return x + y.reshape(B, T, D), aux


class BlockPerSequence(MoEBlock):
    def forward(self, x):
        B, T, D = x.shape
        x = _attend(self, x)
        outs, losses = zip(*[_route(self, self.norm2(x[b])) for b in range(B)])
        return x + torch.stack(outs), torch.stack(losses).mean()


class BlockNotCausal(MoEBlock):
    def forward(self, x):
        B, T, D = x.shape
        x = _attend(self, x, causal=False)
        y, aux = _route(self, self.norm2(x).reshape(B * T, D))
        return x + y.reshape(B, T, D), aux


class BlockResidualOfNorm(MoEBlock):
    def forward(self, x):
        B, T, D = x.shape
        x = _attend(self, x)
        h = self.norm2(x)
        y, aux = _route(self, h.reshape(B * T, D))
        return h + y.reshape(B, T, D), aux


class BlockNoAux(MoEBlock):
    def forward(self, x):
        B, T, D = x.shape
        x = _attend(self, x)
        y, aux = _route(self, self.norm2(x).reshape(B * T, D))
        return x + y.reshape(B, T, D)


class BlockRouterOnDetached(MoEBlock):
    def forward(self, x):
        B, T, D = x.shape
        x = _attend(self, x)
        tokens = self.norm2(x).reshape(B * T, D)
        with torch.no_grad():
            probs, weights, indices = top_k_gating(self.router(tokens), self.k)
        positions, keep, capacity = capacity_positions(indices, len(self.experts), self.capacity_factor)
        dispatch, combine = dispatch_combine(weights, indices, positions, keep, len(self.experts), capacity)
        y = moe_einsum(tokens, dispatch, combine, self.experts)
        return x + y.reshape(B, T, D), load_balancing_loss(probs, indices)


@exercise("3.7")
@pytest.mark.parametrize("wrong, words", [
    (BlockNoResidual, ["not added to the residual"]),
    (BlockNoNorm2, ["LN₂"]),
    (BlockPerSequence, ["as one group"]),
    (BlockNotCausal, ["not causal"]),
    (BlockResidualOfNorm, ["un-normalised x"]),
    (BlockNoAux, ["(output, aux_loss)"]),
    (BlockRouterOnDetached, ["re:router|gradient"]),
])
def test_block_mistakes_are_named(wrong, words):
    assert_diagnoses(checks.check_moe_block, wrong, *words)


# ================================================================================================ failure paths
def loop_returns_none(x, weights, indices, experts):
    moe_loop(x, weights, indices, experts)


def loop_nan(x, weights, indices, experts):
    return moe_loop(x, weights, indices, experts) * (weights.sum() / 0 * 0)


def loop_float32(x, weights, indices, experts):
    return moe_loop(x.float(), weights.float(), indices, [e.float() for e in experts]).to(x.dtype)


def loop_keeps_k_axis(x, weights, indices, experts):
    return torch.stack([moe_loop(x, weights, indices, experts)] * indices.shape[1], dim=1)


def gate_float32(logits, k):
    probs, weights, indices = top_k_gating(logits.float(), k)
    return probs.to(logits.dtype), weights.to(logits.dtype), indices


def loss_raises(probs, indices):
    return load_balancing_loss(probs, indices[:, 2])


class BlockReturnsReversed(MoEBlock):
    def forward(self, x):
        y, aux = MoEBlock.forward(self, x)
        return aux, y


@pytest.mark.parametrize("check, wrong, words", [
    (checks.check_moe_loop, loop_returns_none, ["got None", "return"]),
    (checks.check_moe_loop, loop_nan, ["NaN"]),
    (checks.check_moe_loop, loop_float32, ["float32"]),
    (checks.check_moe_loop, loop_keeps_k_axis, ["shape"]),
    (checks.check_top_k_gating, gate_float32, ["float32"]),
    (checks.check_load_balancing_loss, loss_raises, ["raised", "IndexError"]),
    (checks.check_moe_block, BlockReturnsReversed, ["shape ()", "(2, 5, 8)"]),
])
def test_failure_paths_are_said(check, wrong, words):
    assert_diagnoses(check, wrong, *words)


@exercise("3.2")
def test_calling_an_expert_on_no_tokens_or_once_per_choice_is_accepted():
    assert_passes(checks.check_moe_loop, loop_runs_idle_experts)
    assert_passes(checks.check_moe_loop, loop_per_choice_column)
