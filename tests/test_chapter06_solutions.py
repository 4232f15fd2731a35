"""The teaching code of Chapter 06 and ``utils/switch.py``, against oracles on shapes hypothesis chooses: a literal
per-token reading of eqs. (6.1) and (6.6), ``utils.moe`` with k = 1 (Chapter 03's reference, itself tested against
fairscale), ``torch.logsumexp`` and autograd for the z-loss, and the Switch model's pieces (FLOPs, memory)."""
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.solution_code import solution_namespace
from tests.strategies import seeds
from utils import moe, switch

CHAPTER = "06_switch_transformer"
capacity_factors = st.sampled_from([None, 0.25, 0.5, 1.0, 1.25, 2.0])
sizes = st.fixed_dictionaries({"S": st.integers(1, 24), "N": st.integers(1, 8), "D": st.integers(1, 6)})


@pytest.fixture(scope="module")
def solved():
    return solution_namespace(CHAPTER)


def logits_for(shape, seed, dtype=torch.float64):
    return torch.randn(shape["S"], shape["N"], generator=torch.Generator().manual_seed(seed), dtype=dtype) * 2


def literal_route(logits, capacity_factor):
    """Eqs. (6.1) and (6.6) token by token: the argmax expert, its probability, and a first-come slot count."""
    S, N = logits.shape
    C = S if capacity_factor is None else math.ceil(capacity_factor * S / N)
    seen, index, gate, keep = [0] * N, [], [], []
    for s in range(S):
        p = torch.softmax(logits[s], 0)
        i = int(p.argmax())
        index.append(i)
        gate.append(p[i])
        keep.append(seen[i] < C)
        seen[i] += 1
    return torch.tensor(index), torch.stack(gate), torch.tensor(keep)


@settings(max_examples=25, deadline=None)
@given(shape=sizes, capacity_factor=capacity_factors, seed=seeds)
def test_switch_route_matches_the_literal_reading_and_utils_moe(solved, shape, capacity_factor, seed):
    logits = logits_for(shape, seed)
    index, gate, keep = solved["switch_route"](logits, capacity_factor)
    literal = literal_route(logits, capacity_factor)
    assert torch.equal(index, literal[0]) and torch.equal(keep, literal[2])
    assert torch.allclose(gate, literal[1], atol=1e-12)
    routing = moe.route(logits, k=1, capacity_factor=capacity_factor)
    assert torch.equal(index, routing.indices[:, 0]) and torch.equal(keep, routing.keep[:, 0])


@settings(max_examples=25, deadline=None)
@given(shape=sizes, seed=seeds)
def test_load_balancing_loss_is_utils_moe_with_k1_and_its_gradient_is_eq_6_5(solved, shape, seed):
    probs = torch.softmax(logits_for(shape, seed), -1).requires_grad_()
    index = probs.detach().argmax(-1)
    loss = solved["switch_load_balancing_loss"](probs, index)
    assert torch.allclose(loss, moe.load_balancing_loss(probs, index[:, None]), atol=1e-12)
    grad, = torch.autograd.grad(loss, probs)
    f = F.one_hot(index, shape["N"]).double().mean(0)
    assert torch.allclose(grad, (shape["N"] * f / shape["S"]).expand_as(grad), atol=1e-12)


@settings(max_examples=25, deadline=None)
@given(shape=sizes, seed=seeds, scale=st.sampled_from([0.01, 1.0, 30.0]))
def test_z_loss_matches_its_formula_and_gradient(solved, shape, seed, scale):
    logits = (logits_for(shape, seed) * scale).requires_grad_()
    loss = solved["router_z_loss"](logits)
    z = torch.log(torch.exp(logits.detach()).sum(-1))  # literal eq. (6.7); float64 does not overflow here
    assert torch.allclose(loss, (z ** 2).mean(), rtol=1e-10)
    assert torch.allclose(loss, switch.router_z_loss(logits), rtol=1e-12)
    grad, = torch.autograd.grad(loss, logits)
    expected = 2 / shape["S"] * z[:, None] * torch.softmax(logits.detach(), -1)  # eq. (6.8)
    assert torch.allclose(grad, expected, rtol=1e-9, atol=1e-12)


@settings(max_examples=15, deadline=None)
@given(shape=sizes, capacity_factor=capacity_factors, seed=seeds)
def test_switch_ffn_matches_the_brute_force_reference_and_the_module(solved, shape, capacity_factor, seed):
    torch.manual_seed(seed)
    S, N, D = shape["S"], shape["N"], shape["D"]
    x = torch.randn(S, D)
    layer = switch.SwitchFFN(D, 5, N, capacity_factor)
    y = solved["switch_ffn"](x, layer.router, list(layer.experts), capacity_factor)
    routing = moe.route(layer.router(x), k=1, capacity_factor=capacity_factor)
    expected = moe.moe_reference(x, routing.weights, routing.indices, layer.experts, routing.keep)
    assert torch.allclose(y, expected, atol=1e-5)
    module_y, _, _ = layer(x)
    assert torch.allclose(module_y, expected, atol=1e-5)


def test_switch_ffn_keeps_the_router_in_float32_under_bfloat16(solved):
    torch.manual_seed(0)
    layer = switch.SwitchFFN(16, 8, 4, 2.0)
    with torch.no_grad():
        layer.router.weight.mul_(100)
    layer.experts.to(torch.bfloat16)
    x = torch.randn(2048, 16).bfloat16()
    y = solved["switch_ffn"](x, layer.router, list(layer.experts), 2.0)
    module_y, routing, _ = layer(x)
    assert y.dtype == module_y.dtype == torch.bfloat16 and layer.router.weight.dtype == torch.float32
    assert torch.allclose(y.float(), module_y.float(), atol=1e-2, rtol=1e-2)
    low = moe.route((x @ layer.router.weight.bfloat16().T).float(), k=1, capacity_factor=2.0)
    assert (low.indices != routing.indices).any(), "the case should make bfloat16 flip some choices"


@pytest.mark.parametrize("scale", [0.1, 1.0])
def test_switch_init_matches_utils_switch_in_distribution(solved, scale):
    layers = [nn.Linear(300, 200), nn.Linear(200, 500)]
    for layer in layers:
        solved["switch_init_"](layer, scale)
        std = math.sqrt(scale / layer.in_features)
        assert abs(layer.weight.std().item() / (0.8796 * std) - 1) < 0.03
        assert layer.weight.abs().max() <= 2 * std + 1e-7 and torch.all(layer.bias == 0)
    reference = switch.switch_init_(nn.Linear(300, 200), scale)
    assert abs(reference.weight.std().item() / layers[0].weight.std().item() - 1) < 0.03


def test_switch_lm_dense_and_switch_have_equal_flops_and_the_right_parameter_counts():
    dense = switch.LMConfig(vocab_size=50, num_experts=0)
    sparse = switch.LMConfig(vocab_size=50, num_experts=8)
    assert switch.flops_per_token(sparse) - switch.flops_per_token(dense) == 2 * dense.n_layers * dense.d_model * 8
    extra = sum(p.numel() for p in switch.SwitchLM(sparse).parameters()) - \
        sum(p.numel() for p in switch.SwitchLM(dense).parameters())
    ffn = sum(p.numel() for p in moe.FeedForward(dense.d_model, dense.d_hidden).parameters())
    assert extra == dense.n_layers * (7 * ffn + dense.d_model * 8)  # 7 more experts and a router per layer


def test_switch_lm_runs_and_reports_its_losses():
    torch.manual_seed(0)
    model = switch.SwitchLM(switch.LMConfig(vocab_size=20, context=8, num_experts=4))
    logits, aux, z = model(torch.randint(0, 20, (2, 8)))
    assert logits.shape == (2, 8, 20) and len(model.routings) == 2
    assert aux.item() >= 0 and z.item() > 0 and aux.requires_grad and z.requires_grad


def test_memory_of_training_step_counts_parameters_optimizer_and_activations():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 8))
    optimizer = torch.optim.AdamW(model.parameters())
    x = torch.randn(16, 32)
    memory = switch.memory_of_training_step(model, optimizer, lambda m, x: m(x).square().mean(), x)
    parameter_bytes = 4 * sum(p.numel() for p in model.parameters())
    assert memory["parameters"] == parameter_bytes
    assert memory["optimizer"] >= 2 * parameter_bytes  # AdamW: two moments per parameter (and a step count)
    assert memory["activations"] >= 4 * 16 * 64  # at least the hidden layer's output, saved for ReLU's backward
    assert memory["peak"] > memory["parameters"] + memory["activations"]


def test_text_corpus_offline_is_real_text(monkeypatch):
    from utils import data
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    data.text_corpus.cache_clear()
    text = data.text_corpus(max_chars=50_000)
    assert len(text) == 50_000 and "the" in text
