"""The teaching code of Chapter 11's solutions, with PyTorch as the oracle, on shapes and ranges hypothesis chooses."""
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.solution_code import solution_namespace

CHAPTER = "11_quantization"


@pytest.fixture(scope="module")
def solved():
    namespace = solution_namespace(CHAPTER)
    namespace.update(scale_gradient=lambda v, f: (v - v * f).detach() + v * f,
                     round_ste=lambda v: (torch.round(v) - v).detach() + v)
    return namespace


shapes = st.lists(st.integers(1, 6), min_size=1, max_size=3).map(tuple)
bits = st.integers(2, 8)


@settings(max_examples=25, deadline=None)
@given(shape=shapes, bits=bits, seed=st.integers(0, 10_000), spread=st.floats(0.1, 5.0))
def test_fake_quantize_per_tensor_matches_torch(solved, shape, bits, seed, spread):
    generator = torch.Generator().manual_seed(seed)
    x = (torch.randn(shape, generator=generator) * spread).requires_grad_()
    low, high = x.detach().min() * 0.7, x.detach().max() * 0.7  # some values clipped
    scale, zero = solved["quantization_params"](low, high, bits)
    got = solved["fake_quantize"](x, scale, zero, 0, 2 ** bits - 1)
    got.sum().backward()
    reference = x.detach().clone().requires_grad_()
    want = torch.fake_quantize_per_tensor_affine(reference, scale.item(), int(zero), 0, 2 ** bits - 1)
    want.sum().backward()
    assert torch.allclose(got, want, atol=1e-6) and torch.equal(x.grad, reference.grad)


@settings(max_examples=25, deadline=None)
@given(shape=st.lists(st.integers(1, 5), min_size=2, max_size=3).map(tuple), bits=bits, seed=st.integers(0, 10_000),
       data=st.data())
def test_fake_quantize_per_channel_matches_torch(solved, shape, bits, seed, data):
    axis = data.draw(st.integers(0, len(shape) - 1))
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=generator).requires_grad_()
    dims = [d for d in range(len(shape)) if d != axis]
    bound = x.detach().abs().amax(dim=dims) * 0.8
    scale, zero = solved["quantization_params"](-bound, bound, bits, symmetric=True)
    q_min, q_max = -2 ** (bits - 1), 2 ** (bits - 1) - 1
    got = solved["fake_quantize"](x, scale, zero, q_min, q_max, axis)
    got.sum().backward()
    reference = x.detach().clone().requires_grad_()
    want = torch.fake_quantize_per_channel_affine(reference, scale, zero, axis, q_min, q_max)
    want.sum().backward()
    assert torch.allclose(got, want, atol=1e-6) and torch.equal(x.grad, reference.grad)


@settings(max_examples=30, deadline=None)
@given(low=st.floats(-10, 10), width=st.floats(0.01, 10), bits=bits)
def test_affine_params_match_min_max_observer(solved, low, width, bits):
    observer = torch.ao.quantization.MinMaxObserver(quant_min=0, quant_max=2 ** bits - 1, dtype=torch.quint8)
    observer(torch.tensor([low, low + width]))
    want_scale, want_zero = observer.calculate_qparams()
    scale, zero = solved["quantization_params"](torch.tensor(low), torch.tensor(low + width), bits)
    assert math.isclose(scale.item(), want_scale.item(), rel_tol=1e-5) and zero.item() == want_zero.item()


@settings(max_examples=15, deadline=None)
@given(rows=st.integers(1, 4), n=st.integers(2, 50), bits=bits, seed=st.integers(0, 10_000))
def test_mse_range_is_the_best_candidate(solved, rows, n, bits, seed):
    values = torch.randn(rows, n, generator=torch.Generator().manual_seed(seed))
    alpha = solved["mse_range"](values, bits, grid=20)
    q_pos = 2 ** (bits - 1) - 1

    def error(a):
        scale = (a / q_pos).clamp_min(1e-8)[:, None]
        return ((torch.round(values / scale).clamp(-q_pos - 1, q_pos) * scale - values) ** 2).mean(1)
    best = error(alpha)
    for k in range(1, 21):
        assert (best <= error(values.abs().amax(1) * k / 20) + 1e-7).all()


@settings(max_examples=15, deadline=None)
@given(bits=bits, rows=st.integers(1, 5), cols=st.integers(1, 20), seed=st.integers(0, 10_000),
       per_channel=st.booleans())
def test_lsq_step_gradient_is_eq_11_6_times_g(solved, bits, rows, cols, seed, per_channel):
    quantizer = solved["LSQQuantizer"](bits, rows if per_channel else None)
    x = torch.randn(rows, cols, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 2
    quantizer.double()
    quantizer(x)  # initialises the step
    quantizer.step.grad = None
    quantizer(x).sum().backward()
    step = quantizer.step.detach()
    u = x / step
    q_neg, q_pos = 2 ** (bits - 1), 2 ** (bits - 1) - 1
    per_value = torch.where(u <= -q_neg, -float(q_neg), torch.where(u >= q_pos, float(q_pos), torch.round(u) - u))
    g = 1 / math.sqrt(x.numel() // step.numel() * q_pos)
    want = g * (per_value.sum(1, keepdim=True) if per_channel else per_value.sum())
    assert torch.allclose(quantizer.step.grad, want, atol=1e-9)


def test_quant_linear_matches_torch_per_channel(solved):
    layer = solved["QuantLinear"](6, 4, weight_bits=3)
    x = torch.randn(5, 6)
    bound = layer.weight.detach().abs().amax(1)
    w_q = torch.fake_quantize_per_channel_affine(layer.weight.detach(), bound / 3, torch.zeros(4, dtype=torch.int32),
                                                 0, -4, 3)
    assert torch.allclose(layer(x), torch.nn.functional.linear(x, w_q, layer.bias), atol=1e-6)
