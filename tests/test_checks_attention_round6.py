"""Chapter 01's checks on wrong answers written in round 6, of kinds that no held-out set holds: NaN made by the
learner's own operation (a boolean mask times −inf, a ratio of exponentials the other way round, the log of weights
that are 0), arguments that are not what the call takes (a method used without calling it, a size where an axis
belongs, an axis listed twice, a loop one block past the end), and the families of the fourth set in other
spellings (a power written ** 1/2, ⟨g, p⟩ as a running sum or a mean times another axis's length, the scale divided
in backward, the /n outside the exponent, a return inside the loop, an elementwise product of q and k).

``SCRATCH`` were written before this round's readings and are named by them; ``FRESH`` were written after, and are
kept as they were named (or not) then.
"""
import math

import pytest
import torch

from tests.attention_helpers import Heads as _Heads
from tests.attention_helpers import (  # earlier cells, written right
    attention_weights,
    mixing_ok,
    softmax_backward,
)
from tests.checks_harness import assert_diagnoses, exercise
from utils.checks import attention as checks


def _tiled(q, k, v, block_size, stop_extra=0, exp_ratio=False):
    m = torch.full(q.shape[:-1] + (1,), -math.inf, dtype=q.dtype)
    ell = torch.zeros_like(m)
    a = torch.zeros(q.shape[:-1] + v.shape[-1:], dtype=q.dtype)
    for start in range(0, k.shape[-2] + stop_extra, block_size):
        s = q @ k[..., start:start + block_size, :].transpose(-2, -1) / math.sqrt(q.shape[-1])
        m_new = torch.maximum(m, s.amax(dim=-1, keepdim=True))
        correction = torch.exp(m - m_new) if not exp_ratio else torch.exp(m) / torch.exp(m_new)
        e = torch.exp(s - m_new)
        ell = correction * ell + e.sum(dim=-1, keepdim=True)
        a = correction * a + e @ v[..., start:start + block_size, :]
        m = m_new
    return a / ell


# ===== written before this round's readings =======================================================================

def weights_bool_mask_times_inf(q, k, mask=None):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores + (~mask) * float("-inf")  # "an additive mask"
    return scores.softmax(dim=-1)


def weights_softmax_method_not_called(q, k, mask=None):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    return scores.exp / scores.exp().sum(-1, keepdim=True)


def weights_softmax_over_d_k(q, k, mask=None):
    d_k = q.shape[-1]
    scores = q @ k.transpose(-2, -1) / math.sqrt(d_k)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return scores.softmax(dim=d_k)


def weights_scale_times_power(q, k, mask=None):
    d_k = q.shape[-1]
    scores = q @ k.transpose(-2, -1) * d_k ** -1/2  # (d_k ** -1) / 2
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return scores.softmax(dim=-1)


def weights_scale_in_parentheses(q, k, mask=None):
    d_k = q.shape[-1]
    scores = q @ k.transpose(-2, -1) / (d_k ** 1/2)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return scores.softmax(dim=-1)


def weights_einsum_diagonal(q, k, mask=None):
    scores = (q * k).sum(-1, keepdim=True) / math.sqrt(q.shape[-1])  # query i with key i
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return scores.softmax(dim=-1)


def softmax_backward_torch_cumsum(p, grad_p):
    return p * (grad_p - torch.cumsum(grad_p * p, dim=-1))


def softmax_backward_reverse_cumsum(p, grad_p):
    return p * (grad_p - (grad_p * p).flip(-1).cumsum(-1).flip(-1))


def softmax_backward_mean_times_second_axis(p, grad_p):
    return p * (grad_p - (grad_p * p).mean(dim=-1, keepdim=True) * p.shape[-2])


def softmax_backward_axes_twice(p, grad_p):
    return p * (grad_p - (grad_p * p).sum(dim=(-1, p.dim() - 1), keepdim=True))


class FunctionDKDividedByScale(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v):
        p = attention_weights(q, k)
        ctx.save_for_backward(q, k, v, p)
        return p @ v

    @staticmethod
    def backward(ctx, grad_out):
        q, k, v, p = ctx.saved_tensors
        scale = q.shape[-1] ** -0.5
        grad_s = softmax_backward(p, grad_out @ v.mT)
        return scale * grad_s @ k, grad_s.mT @ q / scale, p.mT @ grad_out


class HeadsBoolPaddingTimesInf(_Heads):
    def forward(self, x, causal=False, key_padding_mask=None):
        q, k, v = self.split(x)
        T = x.shape[1]
        allowed = torch.ones(T, T, dtype=torch.bool)
        if causal:
            allowed = allowed.tril()
        scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
        scores = scores.masked_fill(~allowed, float("-inf"))
        if key_padding_mask is not None:
            scores = scores + key_padding_mask[:, None, None, :] * float("-inf")
        return self.finish(scores.softmax(-1) @ v)


def tiled_one_block_past(q, k, v, block_size=256):
    return _tiled(q, k, v, block_size, stop_extra=block_size)


def tiled_inverted_ratio(q, k, v, block_size=256):
    m = torch.full(q.shape[:-1] + (1,), -math.inf, dtype=q.dtype)
    ell = torch.zeros_like(m)
    a = torch.zeros(q.shape[:-1] + v.shape[-1:], dtype=q.dtype)
    for start in range(0, k.shape[-2], block_size):
        s = q @ k[..., start:start + block_size, :].transpose(-2, -1) / math.sqrt(q.shape[-1])
        m_new = torch.maximum(m, s.amax(dim=-1, keepdim=True))
        correction = torch.exp(m_new) / torch.exp(m) if start else torch.zeros_like(m)
        e = torch.exp(s - m_new)
        ell = correction * ell + e.sum(dim=-1, keepdim=True)
        a = correction * a + e @ v[..., start:start + block_size, :]
        m = m_new
    return a / ell


def tiled_return_in_while(q, k, v, block_size=256):
    m = torch.full(q.shape[:-1] + (1,), -math.inf, dtype=q.dtype)
    ell = torch.zeros_like(m)
    a = torch.zeros(q.shape[:-1] + v.shape[-1:], dtype=q.dtype)
    start = 0
    while start < k.shape[-2]:
        s = q @ k[..., start:start + block_size, :].transpose(-2, -1) / math.sqrt(q.shape[-1])
        m_new = torch.maximum(m, s.amax(dim=-1, keepdim=True))
        correction = torch.exp(m - m_new)
        e = torch.exp(s - m_new)
        ell = correction * ell + e.sum(dim=-1, keepdim=True)
        a = correction * a + e @ v[..., start:start + block_size, :]
        m = m_new
        start += block_size
        return a / ell


def dft_divided_by_root_outside(n, dtype=torch.complex64):
    j = torch.arange(n, dtype=torch.float64)
    return (torch.exp(-2j * math.pi * torch.outer(j, j)) / math.sqrt(n)).to(dtype)


SCRATCH = {
    "1.1 a boolean mask times -inf": (checks.check_attention_weights, weights_bool_mask_times_inf,
                                      ["0 · (−∞)", "masked_fill"]),
    "1.1 .exp without its call": (checks.check_attention_weights, weights_softmax_method_not_called,
                                  ["`.exp` is written without", "`.exp()`"]),
    "1.1 softmax over dim=d_k": (checks.check_attention_weights, weights_softmax_over_d_k,
                                 ["the size d_k", "takes an axis"]),
    "1.1 * d_k ** -1/2": (checks.check_attention_weights, weights_scale_times_power, ["precedence", "** 0.5"]),
    "1.1 / (d_k ** 1/2)": (checks.check_attention_weights, weights_scale_in_parentheses, ["precedence", "2/d_k"]),
    "1.1 (q * k).sum(-1, keepdim=True)": (checks.check_attention_weights, weights_einsum_diagonal,
                                          ["elementwise product", "every pair", "q @ k.transpose(-2, -1)"]),
    "1.2 torch.cumsum": (checks.check_softmax_backward, softmax_backward_torch_cumsum, ["cumulative sum"]),
    "1.2 a cumsum from the end": (checks.check_softmax_backward, softmax_backward_reverse_cumsum,
                                  ["partial sum", "whole row"]),
    "1.2 mean times p.shape[-2]": (checks.check_softmax_backward, softmax_backward_mean_times_second_axis,
                                   ["mean times p.shape[", "row length"]),
    "1.2 the last axis listed twice": (checks.check_softmax_backward, softmax_backward_axes_twice, ["listed twice"]),
    "1.3 dK divided by the scale": (checks.check_attention_function, FunctionDKDividedByScale,
                                    ["divided by the scale", "d_k times too large"]),
    "1.4 a boolean padding mask times -inf": (checks.check_multi_head_attention, HeadsBoolPaddingTimesInf,
                                              ["0 · (−∞)"]),
    "1.5 one block past the end": (checks.check_tiled_attention, tiled_one_block_past,
                                   ["one step past the end", "range(0, k.shape[-2], block_size)"]),
    "1.5 e^m' / e^m": (checks.check_tiled_attention, tiled_inverted_ratio, ["e^(m − m')"]),
    "1.5 a return inside a while loop": (checks.check_tiled_attention, tiled_return_in_while,
                                         ["indented inside the loop", "after the loop"]),
    "1.6 / √n outside the exponent": (checks.check_fourier_mixing, (dft_divided_by_root_outside, mixing_ok),
                                      ["outside the exponent", "inside the exponent"]),
}


@pytest.mark.parametrize("key", [pytest.param(key, marks=exercise(key.split()[0])) for key in SCRATCH])
def test_round6_scratch(key):
    check, answer, words = SCRATCH[key]
    assert_diagnoses(check, answer, *words)


# ===== written after this round's readings: kept as they were named (or not) then ================================

def weights_mask_after_softmax(q, k, mask=None):
    p = (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).softmax(dim=-1)
    return p * mask if mask is not None else p  # hidden keys zeroed, the rest not renormalised


def weights_sqrt_not_called(q, k, mask=None):
    d_k = torch.tensor(float(q.shape[-1]))
    scores = q @ k.transpose(-2, -1) / d_k.sqrt
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return scores.softmax(dim=-1)


def weights_max_over_both_last(q, k, mask=None):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    e = torch.exp(scores - scores.amax(dim=(-1, 3), keepdim=True))
    return e / e.sum(-1, keepdim=True)


def softmax_backward_sum_times_rows_over_T(p, grad_p):
    total = (grad_p * p).sum(-1, keepdim=True) * p.shape[0] / p.shape[-1]
    return p * (grad_p - total)


def softmax_backward_cummax(p, grad_p):
    return p * (grad_p - (grad_p * p).cumsum(dim=-1).amax(-1, keepdim=True))


class FunctionDQScaleDivided(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v):
        p = attention_weights(q, k)
        ctx.save_for_backward(q, k, v, p)
        return p @ v

    @staticmethod
    def backward(ctx, grad_out):
        q, k, v, p = ctx.saved_tensors
        c = 1 / math.sqrt(q.shape[-1])
        grad_s = softmax_backward(p, grad_out @ v.mT)
        return grad_s @ k / c, grad_s.mT @ q / c, p.mT @ grad_out


class HeadsSoftmaxOverHeads(_Heads):
    def forward(self, x, causal=False, key_padding_mask=None):
        q, k, v = self.split(x)
        T = x.shape[1]
        allowed = torch.ones(T, T, dtype=torch.bool)
        if causal:
            allowed = allowed.tril()
        if key_padding_mask is not None:
            allowed = allowed & ~key_padding_mask[:, None, None, :]
        scores = (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).masked_fill(~allowed, float("-inf"))
        return self.finish(scores.softmax(dim=self.n_heads) @ v)


def tiled_range_plus_one_block(q, k, v, block_size=256):
    n_blocks = math.ceil(k.shape[-2] / block_size)
    m = torch.full(q.shape[:-1] + (1,), -math.inf, dtype=q.dtype)
    ell = torch.zeros_like(m)
    a = torch.zeros(q.shape[:-1] + v.shape[-1:], dtype=q.dtype)
    for b in range(n_blocks + 1):
        start = b * block_size
        s = q @ k[..., start:start + block_size, :].transpose(-2, -1) / math.sqrt(q.shape[-1])
        m_new = torch.maximum(m, s.amax(dim=-1, keepdim=True))
        correction = torch.exp(m - m_new)
        e = torch.exp(s - m_new)
        ell = correction * ell + e.sum(dim=-1, keepdim=True)
        a = correction * a + e @ v[..., start:start + block_size, :]
        m = m_new
    return a / ell


def tiled_sum_started_at_zero_divided_early(q, k, v, block_size=256):
    m = torch.full(q.shape[:-1] + (1,), -math.inf, dtype=q.dtype)
    ell = torch.zeros_like(m)
    a = torch.zeros(q.shape[:-1] + v.shape[-1:], dtype=q.dtype)
    for start in range(0, k.shape[-2], block_size):
        s = q @ k[..., start:start + block_size, :].transpose(-2, -1) / math.sqrt(q.shape[-1])
        m_new = torch.maximum(m, s.amax(dim=-1, keepdim=True))
        correction = torch.exp(m - m_new)
        e = torch.exp(s - m_new)
        a = (correction * a * ell + e @ v[..., start:start + block_size, :]) / ell  # normalised as it goes
        ell = correction * ell + e.sum(dim=-1, keepdim=True)
        m = m_new
    return a


def dft_no_division_at_all(n, dtype=torch.complex64):
    j = torch.arange(n, dtype=torch.float64)
    return torch.exp(-2j * math.pi * torch.outer(j, j)).to(dtype)


FRESH = {
    "1.1 the mask applied after the softmax": (checks.check_attention_weights, weights_mask_after_softmax),
    "1.1 d_k.sqrt without its call": (checks.check_attention_weights, weights_sqrt_not_called),
    "1.1 the max over dim=(-1, 3)": (checks.check_attention_weights, weights_max_over_both_last),
    "1.2 the total times B / T": (checks.check_softmax_backward, softmax_backward_sum_times_rows_over_T),
    "1.2 the largest partial sum": (checks.check_softmax_backward, softmax_backward_cummax),
    "1.3 dQ and dK divided by c": (checks.check_attention_function, FunctionDQScaleDivided),
    "1.4 softmax over dim=n_heads": (checks.check_multi_head_attention, HeadsSoftmaxOverHeads),
    "1.5 range(n_blocks + 1)": (checks.check_tiled_attention, tiled_range_plus_one_block),
    "1.5 divided by ℓ = 0 at the first block": (checks.check_tiled_attention, tiled_sum_started_at_zero_divided_early),
    "1.6 no /n anywhere": (checks.check_fourier_mixing, (dft_no_division_at_all, mixing_ok)),
}

FRESH_WORDS = {  # None: not named when written (rejected, with a message that does not name the mistake)
    "1.1 the mask applied after the softmax": ["after the softmax", "*before* the softmax"],
    "1.1 d_k.sqrt without its call": ["`.sqrt` is written without"],
    "1.1 the max over dim=(-1, 3)": ["listed twice", "3 and -1 are the same axis"],
    "1.2 the total times B / T": ["p.shape[0] = 2", "row length"],
    "1.2 the largest partial sum": None,
    "1.3 dQ and dK divided by c": ["divided by the scale"],
    "1.4 softmax over dim=n_heads": None,
    "1.5 range(n_blocks + 1)": ["one step past the end", "range(0, n_blocks)"],
    "1.5 divided by ℓ = 0 at the first block": ["division by zero", "`ell` (= ℓ"],
    "1.6 no /n anywhere": ["−2π jk/n"],
}


@pytest.mark.parametrize("key", [pytest.param(key, marks=exercise(key.split()[0])) for key in FRESH])
def test_round6_fresh(key):
    check, answer = FRESH[key]
    assert_diagnoses(check, answer, *(FRESH_WORDS[key] or ["re:."]))


@exercise("1.4")
def test_a_softmax_over_an_axis_of_length_one_is_named():
    """Fresh, unnamed when written ("a factor applied after the softmax"); named since: every weight is exactly 1."""
    assert_diagnoses(checks.check_multi_head_attention, HeadsSoftmaxOverHeads, "axis of length 1", "H = 1")
