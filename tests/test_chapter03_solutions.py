"""The teaching code of Chapter 03 and ``utils/moe.py``, against oracles on shapes hypothesis chooses: the brute-force
per-token loop of eq. (3.3), a literal reading of eqs. (3.5)–(3.7), and fairscale's ``top2gating`` (GShard's gate)."""
import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.solution_code import solution_namespace
from tests.strategies import routing_shapes, seeds
from utils import moe

CHAPTER = "03_mixture_of_experts"
capacity_factors = st.sampled_from([None, 0.5, 1.0, 1.25, 2.0])


@pytest.fixture(scope="module")
def solved():
    return solution_namespace(CHAPTER)


def literal_positions(indices, E):
    """Eq. (3.6) read literally: the earlier (token, choice) pairs, in choice-major order, with the same expert."""
    S, k = indices.shape
    order = [(s, j) for j in range(k) for s in range(S)]
    positions = torch.zeros(S, k, dtype=torch.long)
    seen = [0] * E
    for s, j in order:
        positions[s, j] = seen[int(indices[s, j])]
        seen[int(indices[s, j])] += 1
    return positions


def inputs(shape, seed, D=4):
    generator = torch.Generator().manual_seed(seed)
    S, E, k = shape["S"], shape["E"], shape["k"]
    logits = torch.randn(S, E, generator=generator, dtype=torch.float64) * 2
    x = torch.randn(S, D, generator=generator, dtype=torch.float64)
    torch.manual_seed(seed)
    experts = [moe.FeedForward(D, 5).double() for _ in range(E)]
    return logits, x, experts, k


@settings(max_examples=25, deadline=None)
@given(shape=routing_shapes, capacity_factor=capacity_factors, seed=seeds)
def test_solutions_match_the_per_token_loop_and_utils_moe(solved, shape, capacity_factor, seed):
    logits, x, experts, k = inputs(shape, seed)
    S, E = logits.shape
    probs, weights, indices = solved["top_k_gating"](logits, k)
    reference = moe.route(logits, k, capacity_factor)
    torch.testing.assert_close(probs, torch.softmax(logits, dim=-1))
    torch.testing.assert_close(weights, reference.weights)
    assert torch.equal(indices, reference.indices)
    positions, keep, capacity = solved["capacity_positions"](indices, E, capacity_factor)
    assert capacity == (S if capacity_factor is None else max(1, math.ceil(capacity_factor * k * S / E)))
    assert torch.equal(positions, literal_positions(indices, E))
    assert torch.equal(keep, positions < capacity)
    dispatch, combine = solved["dispatch_combine"](weights, indices, positions, keep, E, capacity)
    assert torch.equal(dispatch.bool(), reference.dispatch)
    torch.testing.assert_close(combine, reference.combine)
    with torch.no_grad():
        brute = moe.moe_reference(x, weights, indices, experts, keep)
        torch.testing.assert_close(solved["moe_einsum"](x, dispatch, combine, experts), brute)
        torch.testing.assert_close(moe.moe_forward(x, reference, experts), brute)
        torch.testing.assert_close(moe.moe_forward_indexed(x, reference, experts), brute)
        if capacity_factor is None:
            torch.testing.assert_close(solved["moe_loop"](x, weights, indices, experts), brute)
    m, c = probs.mean(0), F.one_hot(indices[:, 0], E).double().mean(0)
    torch.testing.assert_close(solved["load_balancing_loss"](probs, indices), E * (m * c).sum())
    torch.testing.assert_close(reference.aux_loss, E * (m * c).sum())


@settings(max_examples=15, deadline=None)
@given(S_per_expert=st.integers(1, 6), E=st.integers(2, 8), seed=seeds)
def test_utils_moe_matches_fairscale_top2gating(S_per_expert, E, seed):
    gate = pytest.importorskip("fairscale.nn.moe.top2gate")
    S = S_per_expert * E  # fairscale asserts S divisible by E
    logits = torch.randn(S, E, generator=torch.Generator().manual_seed(seed)) * 2
    noise, gate.gumbel_rsample = gate.gumbel_rsample, lambda shape, device: torch.zeros(shape, device=device)
    try:
        their_aux, their_combine, their_dispatch = gate.top2gating(logits)
    finally:
        gate.gumbel_rsample = noise
    ours = moe.route(logits, k=2, capacity_factor=1.0)
    assert torch.equal(their_dispatch, ours.dispatch)
    both = ours.keep.all(dim=-1)
    torch.testing.assert_close(their_combine[both], ours.combine[both])
    torch.testing.assert_close(their_aux * E * E, ours.aux_loss)


@settings(max_examples=10, deadline=None)
@given(B=st.integers(1, 3), T=st.integers(1, 5), k=st.integers(1, 2), seed=seeds,
       capacity_factor=st.sampled_from([None, 1.0, 2.0]))
def test_moe_block_matches_the_checks_reference(solved, B, T, k, capacity_factor, seed):
    from utils.checks.mixture_of_experts import ReferenceBlock
    torch.manual_seed(seed)
    reference = ReferenceBlock(8, 2, 6, 4, k, capacity_factor).double()
    block = solved["MoEBlock"](8, 2, 6, 4, k, capacity_factor).double()
    block.load_state_dict(reference.state_dict())
    x = torch.randn(B, T, 8, dtype=torch.float64)
    (y, aux), (y_ref, aux_ref) = block(x), reference(x)
    torch.testing.assert_close(y, y_ref)
    torch.testing.assert_close(aux, aux_ref)


def test_dense_ffn_is_the_one_expert_case():
    layer = moe.MoELayer(6, 10, num_experts=1, k=1, capacity_factor=1.0).double()
    x = torch.randn(4, 3, 6, dtype=torch.float64)
    y, routing = layer(x)
    torch.testing.assert_close(y, layer.experts[0](x))
    assert routing.aux_loss.item() == 1.0 and routing.dropped_fraction == 0.0


def test_top1_keeps_the_probability_and_the_router_gradient():
    logits = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)
    probs, weights, _ = moe.top_k_gating(logits, 1)
    torch.testing.assert_close(weights[:, 0], probs.max(dim=-1).values)
    weights.sum().backward()
    assert logits.grad.abs().max() > 0
    with pytest.raises(ValueError, match="k=5"):
        moe.top_k_gating(logits, 5)


def test_switch_loss_is_the_top1_case_and_renormalize_can_be_forced():
    logits = torch.randn(10, 4, dtype=torch.float64)
    routing = moe.route(logits, k=1, capacity_factor=1.0)
    f = F.one_hot(logits.argmax(-1), 4).double().mean(0)  # Switch: fraction dispatched to each expert
    P = torch.softmax(logits, -1).mean(0)  # Switch: mean router probability
    torch.testing.assert_close(routing.aux_loss, 4 * (f * P).sum())
    _, raw, _ = moe.top_k_gating(logits, 2, renormalize=False)
    torch.testing.assert_close(raw, torch.softmax(logits, -1).topk(2).values)
    assert routing.load.sum() == int(routing.keep.sum()) and routing.demand.sum() == 10


def test_einsum_and_gather_layers_agree_with_gradients():
    torch.manual_seed(0)
    gather = moe.MoELayer(6, 8, 4, k=2, capacity_factor=1.0).double()
    einsum = moe.MoELayer(6, 8, 4, k=2, capacity_factor=1.0, einsum=True).double()
    einsum.load_state_dict(gather.state_dict())
    x = torch.randn(2, 9, 6, dtype=torch.float64)
    outputs = []
    for layer in (gather, einsum):
        y, routing = layer(x)
        (y.square().sum() + routing.aux_loss).backward()
        outputs.append((y, [p.grad for p in layer.parameters()]))
    torch.testing.assert_close(outputs[0][0], outputs[1][0])
    for a, b in zip(outputs[0][1], outputs[1][1]):
        torch.testing.assert_close(a, b)
