"""Chapter 01's checks on wrong answers written in round 7, of kinds that no held-out set holds: a call given what it
does not take (:func:`utils.checks.conversions.call_reading`: an attribute called like a method, a tensor where a
dtype belongs, a number given to ctx.save_for_backward, two dtypes met in one call, an nn.Linear weight multiplied as
if stored (in, out)) and a slice whose end is written as a length (``t[start:block]``).

``SCRATCH`` were written before this round's readings and are named by them; ``FRESH`` were written after, and are
kept as they were named (or not) then.
"""
import math

import pytest
import torch
import torch.nn as nn
from einops import rearrange

from tests.attention_helpers import attention_weights, softmax_backward  # earlier cells, written right
from tests.checks_harness import assert_diagnoses, exercise
from utils.checks import attention as checks


def _mixing(dft_matrix):
    def fourier_mixing(x):
        T, D = x.shape[-2:]
        dtype = torch.complex128 if x.dtype == torch.float64 else torch.complex64
        return (dft_matrix(T, dtype) @ x.to(dtype) @ dft_matrix(D, dtype)).real.to(x.dtype)
    return fourier_mixing


class _Function(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v):
        p = attention_weights(q, k)
        ctx.save_for_backward(q, k, v, p)
        return p @ v

    @staticmethod
    def backward(ctx, grad_out):
        q, k, v, p = ctx.saved_tensors
        scale = 1 / math.sqrt(q.shape[-1])
        grad_s = softmax_backward(p, grad_out @ v.transpose(-2, -1))
        return scale * grad_s @ k, scale * grad_s.transpose(-2, -1) @ q, p.transpose(-2, -1) @ grad_out


class _Heads(nn.Module):
    def __init__(self, d_model, n_heads):
        super().__init__()
        self.n_heads = n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)

    def heads(self, q, k, v, causal, key_padding_mask):
        T = q.shape[-2]
        q, k, v = (rearrange(t, "B T (H Dh) -> B H T Dh", H=self.n_heads) for t in (q, k, v))
        mask = None
        if causal:
            mask = torch.ones(T, T, dtype=torch.bool).tril()
        if key_padding_mask is not None:
            padding = key_padding_mask[:, None, None, :]
            mask = padding if mask is None else mask & padding
        return self.out(rearrange(attention_weights(q, k, mask) @ v, "B H T Dh -> B T (H Dh)"))


# ===== written before this round's readings =======================================================================

def weights_finfo_of_a_tensor(q, k, mask=None):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, torch.finfo(scores).min)
    return scores.softmax(dim=-1)


def weights_identity_in_the_default_dtype(q, k, mask=None):
    scores = q @ torch.eye(q.shape[-1]) @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # "a metric, identity here"
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return scores.softmax(dim=-1)


class FunctionNeedsInputGradCalled(_Function):
    @staticmethod
    def backward(ctx, grad_out):
        q, k, v, p = ctx.saved_tensors
        need_q, need_k, need_v = ctx.needs_input_grad()
        return _Function.backward(ctx, grad_out)


class FunctionShapeCalled(_Function):
    @staticmethod
    def backward(ctx, grad_out):
        q, k, v, p = ctx.saved_tensors
        d_k = q.shape()[-1]
        grad_s = softmax_backward(p, grad_out @ v.transpose(-2, -1)) / math.sqrt(d_k)
        return grad_s @ k, grad_s.transpose(-2, -1) @ q, p.transpose(-2, -1) @ grad_out


class FunctionSavesIntDk(_Function):
    @staticmethod
    def forward(ctx, q, k, v):
        p = attention_weights(q, k)
        ctx.save_for_backward(q, k, v, p, q.shape[-1])
        return p @ v


class HeadsMatmulWeight(_Heads):
    def forward(self, x, causal=False, key_padding_mask=None):
        q, k, v = (torch.matmul(x, self.qkv.weight) + self.qkv.bias).chunk(3, dim=-1)
        return self.heads(q, k, v, causal, key_padding_mask)


class HeadsWeightOnTheLeft(_Heads):
    def forward(self, x, causal=False, key_padding_mask=None):
        qkv = x @ self.qkv.weight
        q, k, v = (qkv + self.qkv.bias).chunk(3, dim=-1)
        return self.heads(q, k, v, causal, key_padding_mask)


def tiled_full_with_tensor_dtype(q, k, v, block_size):
    m = torch.full(q.shape[:-1] + (1,), -math.inf, dtype=q)
    ell = torch.zeros_like(m)
    a = torch.zeros(q.shape[:-1] + v.shape[-1:], dtype=q.dtype)
    for start in range(0, k.shape[-2], block_size):
        s = q @ k[..., start:start + block_size, :].transpose(-2, -1) / math.sqrt(q.shape[-1])
        m_new = torch.maximum(m, s.amax(dim=-1, keepdim=True))
        e = torch.exp(s - m_new)
        ell = torch.exp(m - m_new) * ell + e.sum(dim=-1, keepdim=True)
        a = torch.exp(m - m_new) * a + e @ v[..., start:start + block_size, :]
        m = m_new
    return a / ell


def tiled_block_index_slice(q, k, v, block_size):
    m = torch.full(q.shape[:-1] + (1,), -math.inf, dtype=q.dtype)
    ell = torch.zeros_like(m)
    a = torch.zeros(q.shape[:-1] + v.shape[-1:], dtype=q.dtype)
    for i in range(math.ceil(k.shape[-2] / block_size)):
        k_block = k[..., i * block_size:block_size, :]
        v_block = v[..., i * block_size:block_size, :]
        s = q @ k_block.transpose(-2, -1) / math.sqrt(q.shape[-1])
        m_new = torch.maximum(m, s.amax(dim=-1, keepdim=True))
        e = torch.exp(s - m_new)
        ell = torch.exp(m - m_new) * ell + e.sum(dim=-1, keepdim=True)
        a = torch.exp(m - m_new) * a + e @ v_block
        m = m_new
    return a / ell


def dft_complex_with_float32_zeros(n, dtype=torch.complex64):
    j = torch.arange(n, dtype=torch.float64)
    angle = -2 * math.pi * torch.outer(j, j) / n
    return torch.complex(torch.cos(angle), torch.zeros(n, n) + torch.sin(angle).float()).to(dtype)


def dft_ones_dtype_tensor(n, dtype=torch.complex64):
    j = torch.arange(n, dtype=torch.float64)
    angle = -2 * math.pi * torch.outer(j, j) / n
    return torch.polar(torch.ones(n, n, dtype=angle), angle).to(dtype)


SCRATCH = {
    "1.1 torch.finfo(scores)": (checks.check_attention_weights, weights_finfo_of_a_tensor,
                                ["torch.dtype", "`scores`, a Tensor", "`scores.dtype`"]),
    "1.1 torch.eye in the default dtype": (checks.check_attention_weights, weights_identity_in_the_default_dtype,
                                           ["`torch.eye(q.shape[-1])`", "float32", "dtype=q.dtype"]),
    "1.3 ctx.needs_input_grad()": (checks.check_attention_function, FunctionNeedsInputGradCalled,
                                   ["`ctx.needs_input_grad` is a tuple", "Drop the parentheses"]),
    "1.3 q.shape()": (checks.check_attention_function, FunctionShapeCalled,
                      ["`q.shape` is a torch.Size", "Drop the parentheses"]),
    "1.3 save_for_backward(…, q.shape[-1])": (checks.check_attention_function, FunctionSavesIntDk,
                                               ["only tensors", "`q.shape[-1]` is an int", "ctx."]),
    "1.4 torch.matmul(x, self.qkv.weight)": (checks.check_multi_head_attention, HeadsMatmulWeight,
                                             ["(out_features, in_features)", "self.qkv(x)", ".T"]),
    "1.4 qkv = x @ self.qkv.weight": (checks.check_multi_head_attention, HeadsWeightOnTheLeft,
                                      ["(out_features, in_features)", "self.qkv(x)"]),
    "1.5 torch.full(…, dtype=q)": (checks.check_tiled_attention, tiled_full_with_tensor_dtype,
                                   ["takes a torch.dtype", "`q`, a Tensor", "`q.dtype`"]),
    "1.5 k[i * block_size:block_size]": (checks.check_tiled_attention, tiled_block_index_slice,
                                         ["`[i * block_size:block_size]` is empty", "not a length"]),
    "1.6 torch.complex(cos, float32 zeros)": ((lambda d: checks.check_fourier_mixing(d, _mixing(d))),
                                              dft_complex_with_float32_zeros, ["two dtypes", "float64", "float32"]),
    "1.6 torch.ones(n, n, dtype=angle)": ((lambda d: checks.check_fourier_mixing(d, _mixing(d))),
                                          dft_ones_dtype_tensor, ["torch.dtype", "`angle.dtype`"]),
}


@pytest.mark.parametrize("key", [pytest.param(key, marks=exercise(key.split()[0])) for key in SCRATCH])
def test_round7_scratch(key):
    check, answer, words = SCRATCH[key]
    assert_diagnoses(check, answer, *words)


class FunctionDVFromRecomputedOutput(_Function):
    @staticmethod
    def backward(ctx, grad_out):
        q, k, v, p = ctx.saved_tensors
        grad_q, grad_k, _ = _Function.backward(ctx, grad_out)
        return grad_q, grad_k, p.transpose(-2, -1) @ (p @ v)  # Pᵀ O: the output, not its gradient


class FunctionBothFromSavedOutput(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v):
        p = attention_weights(q, k)
        out = p @ v
        ctx.save_for_backward(q, k, v, p, out)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        q, k, v, p, out = ctx.saved_tensors
        scale = 1 / math.sqrt(q.shape[-1])
        grad_s = softmax_backward(p, out @ v.transpose(-2, -1))
        return scale * grad_s @ k, scale * grad_s.transpose(-2, -1) @ q, p.transpose(-2, -1) @ grad_out


OUTPUT_FOR_GRADIENT = {
    "1.3 dV = Pᵀ (P V)": (FunctionDVFromRecomputedOutput, "dV = Pᵀ dO"),
    "1.3 dP = out Vᵀ with out saved": (FunctionBothFromSavedOutput, "dP = dO Vᵀ"),
}


@pytest.mark.parametrize("key", [pytest.param(key, marks=exercise("1.3")) for key in OUTPUT_FOR_GRADIENT])
def test_round7_forward_output_where_its_gradient_belongs(key):
    answer, where = OUTPUT_FOR_GRADIENT[key]
    assert_diagnoses(checks.check_attention_function, answer, "forward output O instead of the upstream gradient dO",
                     where)


# ===== written after this round's readings ========================================================================

def weights_softmax_dtype_tensor(q, k, mask=None):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, -torch.inf)
    return scores.softmax(dim=-1, dtype=q)


def softmax_backward_shape_called(p, grad_p):
    inner = (grad_p * p).sum(dim=len(p.shape()) - 1, keepdim=True)
    return p * (grad_p - inner)


class HeadsFunctionalLinearTransposed(_Heads):
    def forward(self, x, causal=False, key_padding_mask=None):
        q, k, v = nn.functional.linear(x, self.qkv.weight.T, self.qkv.bias).chunk(3, dim=-1)
        return self.heads(q, k, v, causal, key_padding_mask)


def tiled_end_clamped_without_start(q, k, v, block_size):
    T = k.shape[-2]
    m = torch.full(q.shape[:-1] + (1,), -math.inf, dtype=q.dtype)
    ell = torch.zeros_like(m)
    a = torch.zeros(q.shape[:-1] + v.shape[-1:], dtype=q.dtype)
    for start in range(0, T, block_size):
        end = min(block_size, T)
        s = q @ k[..., start:end, :].transpose(-2, -1) / math.sqrt(q.shape[-1])
        m_new = torch.maximum(m, s.amax(dim=-1, keepdim=True))
        e = torch.exp(s - m_new)
        ell = torch.exp(m - m_new) * ell + e.sum(dim=-1, keepdim=True)
        a = torch.exp(m - m_new) * a + e @ v[..., start:end, :]
        m = m_new
    return a / ell


def tiled_zeros_dtype_shape(q, k, v, block_size):
    m = torch.full(q.shape[:-1] + (1,), -math.inf, dtype=q.dtype)
    ell = torch.zeros(m.shape, dtype=m)
    a = torch.zeros(q.shape[:-1] + v.shape[-1:], dtype=q.dtype)
    for start in range(0, k.shape[-2], block_size):
        s = q @ k[..., start:start + block_size, :].transpose(-2, -1) / math.sqrt(q.shape[-1])
        m_new = torch.maximum(m, s.amax(dim=-1, keepdim=True))
        e = torch.exp(s - m_new)
        ell = torch.exp(m - m_new) * ell + e.sum(dim=-1, keepdim=True)
        a = torch.exp(m - m_new) * a + e @ v[..., start:start + block_size, :]
        m = m_new
    return a / ell


FRESH = {
    "1.1 softmax(dim=-1, dtype=q)": (checks.check_attention_weights, weights_softmax_dtype_tensor),
    "1.2 len(p.shape()) - 1": (checks.check_softmax_backward, softmax_backward_shape_called),
    "1.4 F.linear(x, self.qkv.weight.T)": (checks.check_multi_head_attention, HeadsFunctionalLinearTransposed),
    "1.5 end = min(block_size, T)": (checks.check_tiled_attention, tiled_end_clamped_without_start),
    "1.5 torch.zeros(m.shape, dtype=m)": (checks.check_tiled_attention, tiled_zeros_dtype_shape),
}

FRESH_WORDS = {  # None: not named when written (rejected, with a message that does not name the mistake)
    "1.1 softmax(dim=-1, dtype=q)": ["takes a torch.dtype", "`q.dtype`"],
    "1.2 len(p.shape()) - 1": ["`p.shape` is a torch.Size", "Drop the parentheses"],
    "1.4 F.linear(x, self.qkv.weight.T)": None,
    "1.5 end = min(block_size, T)": ["`[start:end]` is empty", "not a length"],
    "1.5 torch.zeros(m.shape, dtype=m)": ["takes a torch.dtype", "`m.dtype`"],
}


@pytest.mark.parametrize("key", [pytest.param(key, marks=exercise(key.split()[0])) for key in FRESH])
def test_round7_fresh(key):
    check, answer = FRESH[key]
    assert_diagnoses(check, answer, *(FRESH_WORDS[key] or ["re:."]))
