"""Chapter 01's checks on wrong answers written in round 5, of kinds that neither held-out set nor the earlier
catalogues hold: Python's conversions of tensors (``if mask:``, ``and``, ``.item()`` and ``math.*`` on a batch, a
float where a size belongs), sizes read from the wrong axis, rows a loop never wrote, an answer computed on a
transformed input, a result of another quantity's shape.

``ROUND5_BEFORE`` were written before this round's readings (utils/checks/conversions.py, and the core readings of
untouched rows, other quantities' shapes and (real, imaginary) pairs) and are named by them now; ``ROUND5_AFTER``
were written once those readings were in place and are kept as they were named (or not) then.
"""
import math

import pytest
import torch

from tests.attention_helpers import Heads as _Heads
from tests.attention_helpers import (  # earlier cells, written right
    attention,
    attention_weights,
    dft_matrix_ok,
    mixing_ok,
    softmax_backward,
)
from tests.checks_harness import assert_diagnoses, exercise
from utils.checks import attention as checks


def _tiled(q, k, v, block_size, exp=torch.exp, stop=None):
    """Eq. (1.11), right, with the exponential and the loop's end as parameters (the wrong answers change them)."""
    m = torch.full(q.shape[:-1] + (1,), -math.inf, dtype=q.dtype)
    ell = torch.zeros_like(m)
    a = torch.zeros(q.shape[:-1] + v.shape[-1:], dtype=q.dtype)
    for start in range(0, k.shape[-2] if stop is None else stop, block_size):
        s = q @ k[..., start:start + block_size, :].transpose(-2, -1) / math.sqrt(q.shape[-1])
        m_new = torch.maximum(m, s.amax(dim=-1, keepdim=True))
        correction = exp(m - m_new)
        e = torch.exp(s - m_new)
        ell = correction * ell + e.sum(dim=-1, keepdim=True)
        a = correction * a + e @ v[..., start:start + block_size, :]
        m = m_new
    return a / ell


# ===== written before this round's readings =======================================================================

def weights_ternary_on_mask(q, k, mask=None):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    scores = scores.masked_fill(~mask, float("-inf")) if mask else scores
    return scores.softmax(dim=-1)


def weights_sqrt_of_a_shape_slice(q, k, mask=None):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1:])  # [-1:] is a torch.Size, not a number
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return scores.softmax(dim=-1)


def weights_softmax_twice(q, k, mask=None):
    p = attention_weights(q, k, mask)
    return p.softmax(dim=-1)  # "make sure the rows sum to 1"


def softmax_backward_from_row_one(p, grad_p):
    rows_p, rows_g = p.reshape(-1, p.shape[-1]), grad_p.reshape(-1, p.shape[-1])
    grad_s = torch.zeros_like(rows_p)
    for i in range(1, rows_p.shape[0]):  # row 0 "is done by the initial value"
        grad_s[i] = rows_p[i] * (rows_g[i] - (rows_g[i] * rows_p[i]).sum())
    return grad_s.reshape(p.shape)


def softmax_backward_item_per_row(p, grad_p):
    dot = (p * grad_p).sum(dim=-1, keepdim=True).item()
    return p * (grad_p - dot)


class FunctionBatchLoopOneShort(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v):
        p = attention_weights(q, k)
        ctx.save_for_backward(q, k, v, p)
        return p @ v

    @staticmethod
    def backward(ctx, grad_out):
        q, k, v, p = ctx.saved_tensors
        c = 1 / math.sqrt(q.shape[-1])
        grad_q, grad_k, grad_v = torch.zeros_like(q), torch.zeros_like(k), torch.zeros_like(v)
        for b in range(q.shape[0] - 1):
            grad_v[b] = p[b].mT @ grad_out[b]
            grad_s = softmax_backward(p[b], grad_out[b] @ v[b].mT)
            grad_q[b], grad_k[b] = c * grad_s @ k[b], c * grad_s.mT @ q[b]
        return grad_q, grad_k, grad_v


class HeadsWidthAsTrueDivision(_Heads):
    def forward(self, x, causal=False, key_padding_mask=None):
        B, T, D = x.shape
        Dh = D / self.n_heads
        q, k, v = (t.view(B, T, self.n_heads, Dh).transpose(1, 2) for t in self.qkv(x).chunk(3, dim=-1))
        allowed = torch.ones(T, T, dtype=torch.bool).tril() if causal else torch.ones(T, T, dtype=torch.bool)
        if key_padding_mask is not None:
            allowed = allowed & ~key_padding_mask[:, None, None, :]
        return self.finish(attention(q, k, v, allowed))


class HeadsIfPaddingMask(_Heads):
    def forward(self, x, causal=False, key_padding_mask=None):
        T = x.shape[1]
        allowed = torch.ones(T, T, dtype=torch.bool).tril() if causal else torch.ones(T, T, dtype=torch.bool)
        if key_padding_mask:
            allowed = allowed & ~key_padding_mask[:, None, None, :]
        return self.finish(attention(*self.split(x), allowed))


class HeadsSequenceFirstUnpack(_Heads):
    def forward(self, x, causal=False, key_padding_mask=None):
        T, B, D = x.shape  # nn.MultiheadAttention's default layout
        allowed = torch.ones(T, T, dtype=torch.bool)
        if causal:
            allowed = allowed.tril()
        if key_padding_mask is not None:
            allowed = allowed & ~key_padding_mask[:, None, None, :]
        return self.finish(attention(*self.split(x), allowed))


class HeadsMasksJoinedWithAnd(_Heads):
    def forward(self, x, causal=False, key_padding_mask=None):
        T = x.shape[1]
        causal_mask = torch.ones(T, T, dtype=torch.bool).tril() if causal else None
        keep = ~key_padding_mask[:, None, None, :] if key_padding_mask is not None else None
        allowed = causal_mask and keep if causal_mask is not None and keep is not None else \
            (causal_mask if causal_mask is not None else keep)
        return self.finish(attention(*self.split(x), allowed))


def tiled_block_count_as_float(q, k, v, block_size=256):
    n_blocks = (k.shape[-2] + block_size - 1) / block_size  # the number of blocks, rounded up
    return _tiled_blocks(q, k, v, block_size, n_blocks)


def _tiled_blocks(q, k, v, block_size, n_blocks):
    m = torch.full(q.shape[:-1] + (1,), -math.inf, dtype=q.dtype)
    ell, a = torch.zeros_like(m), torch.zeros(q.shape[:-1] + v.shape[-1:], dtype=q.dtype)
    for b in range(n_blocks):
        s = q @ k[..., b * block_size:(b + 1) * block_size, :].mT / math.sqrt(q.shape[-1])
        m_new = torch.maximum(m, s.amax(dim=-1, keepdim=True))
        e = torch.exp(s - m_new)
        ell = torch.exp(m - m_new) * ell + e.sum(dim=-1, keepdim=True)
        a = torch.exp(m - m_new) * a + e @ v[..., b * block_size:(b + 1) * block_size, :]
        m = m_new
    return a / ell


def tiled_math_exp_correction(q, k, v, block_size=256):
    return _tiled(q, k, v, block_size, exp=lambda t: torch.tensor(math.exp(t)))


def tiled_last_block_skipped(q, k, v, block_size=256):
    return _tiled(q, k, v, block_size, stop=k.shape[-2] - block_size)


def mixing_returns_pairs(x):
    T, D = x.shape[-2:]
    mixed = dft_matrix_ok(T) @ x.to(torch.complex64) @ dft_matrix_ok(D)
    return torch.view_as_real(mixed)[..., 0:2].to(x.dtype)


def dft_with_math_cos(n, dtype=torch.complex64):
    j = torch.arange(n, dtype=torch.float64)
    angle = -2 * math.pi * torch.outer(j, j) / n
    return torch.complex(math.cos(angle), math.sin(angle)).to(dtype)


ROUND5_BEFORE = {
    "1.1 a ternary on the mask": (checks.check_attention_weights, weights_ternary_on_mask),
    "1.1 math.sqrt(q.shape[-1:])": (checks.check_attention_weights, weights_sqrt_of_a_shape_slice),
    "1.1 softmax applied twice": (checks.check_attention_weights, weights_softmax_twice),
    "1.2 the loop starts at row 1": (checks.check_softmax_backward, softmax_backward_from_row_one),
    "1.2 .item() of the row sums": (checks.check_softmax_backward, softmax_backward_item_per_row),
    "1.3 a loop over the batch one short": (checks.check_attention_function, FunctionBatchLoopOneShort),
    "1.4 Dh = D / H": (checks.check_multi_head_attention, HeadsWidthAsTrueDivision),
    "1.4 if key_padding_mask:": (checks.check_multi_head_attention, HeadsIfPaddingMask),
    "1.4 T, B, D = x.shape": (checks.check_multi_head_attention, HeadsSequenceFirstUnpack),
    "1.4 masks joined with and": (checks.check_multi_head_attention, HeadsMasksJoinedWithAnd),
    "1.5 the block count a float": (checks.check_tiled_attention, tiled_block_count_as_float),
    "1.5 math.exp for e^(m − m')": (checks.check_tiled_attention, tiled_math_exp_correction),
    "1.5 the last block skipped": (checks.check_tiled_attention, tiled_last_block_skipped),
    "1.6 view_as_real returned": (checks.check_fourier_mixing, (dft_matrix_ok, mixing_returns_pairs)),
    "1.6 math.cos of the angles": (checks.check_fourier_mixing, (dft_with_math_cos, mixing_ok)),
}

WORDS_BEFORE = {
    "1.1 a ternary on the mask": ["one truth value", "is not None"],
    "1.1 math.sqrt(q.shape[-1:])": ["torch.Size", "q.shape[-1]"],
    "1.1 softmax applied twice": ["softmax", "twice"],
    "1.2 the loop starts at row 1": ["the first row", "exactly 0", "range(1, n)"],
    "1.2 .item() of the row sums": ["`.item()`", "keep it a tensor"],
    "1.3 a loop over the batch one short": ["the last slice", "exactly 0", "range(n - 1)"],
    "1.4 Dh = D / H": ["D / self.n_heads", "//"],
    "1.4 if key_padding_mask:": ["`if key_padding_mask is not None:`"],
    "1.4 T, B, D = x.shape": ["Your `T` is 2, which is B", "T is x.shape[1]"],
    "1.4 masks joined with and": ["`and`", "&"],
    "1.5 the block count a float": ["float", "//"],
    "1.5 math.exp for e^(m − m')": ["`math.exp`", "torch.exp"],
    "1.5 the last block skipped": ["last block"],
    "1.6 view_as_real returned": ["torch.view_as_real", ".real"],
    "1.6 math.cos of the angles": ["`math.cos`", "torch.cos"],
}


@pytest.mark.parametrize("key", [pytest.param(key, marks=exercise(key.split()[0])) for key in ROUND5_BEFORE])
def test_round5_before(key):
    check, answer = ROUND5_BEFORE[key]
    assert_diagnoses(check, answer, *WORDS_BEFORE[key])


# ===== written after this round's readings: kept as they were named (or not) then ================================

def weights_finite_fill(q, k, mask=None):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, -1e4)  # "large enough"
    return scores.softmax(dim=-1)


def weights_scale_from_key_count(q, k, mask=None):
    scores = q @ k.transpose(-2, -1) / math.sqrt(k.shape[-2])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return scores.softmax(dim=-1)


def softmax_backward_mean_for_the_dot(p, grad_p):
    return p * (grad_p - (grad_p * p).mean(dim=-1, keepdim=True))


def softmax_backward_einsum_dot(p, grad_p):
    dot = torch.einsum("...i,...i->...", grad_p, p)  # one per row, (...,)
    return p * (grad_p - dot)


class FunctionDvScaledToo(torch.autograd.Function):
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
        return c * grad_s @ k, c * grad_s.mT @ q, c * p.mT @ grad_out


class FunctionDvWithoutTranspose(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v):
        p = attention_weights(q, k)
        ctx.save_for_backward(q, k, v, p)
        return p @ v

    @staticmethod
    def backward(ctx, grad_out):
        q, k, v, p = ctx.saved_tensors
        c = 1 / math.sqrt(q.shape[-1])
        grad_v = p @ grad_out
        grad_s = softmax_backward(p, grad_out @ v.mT)
        return c * grad_s @ k, c * grad_s.mT @ q, grad_v


class HeadsViewWithoutTranspose(_Heads):
    def forward(self, x, causal=False, key_padding_mask=None):
        B, T, D = x.shape
        Dh = D // self.n_heads
        q, k, v = (t.reshape(B, self.n_heads, T, Dh) for t in self.qkv(x).chunk(3, dim=-1))
        allowed = torch.ones(T, T, dtype=torch.bool)
        if causal:
            allowed = allowed.tril()
        if key_padding_mask is not None:
            allowed = allowed & ~key_padding_mask[:, None, None, :]
        return self.out(attention(q, k, v, allowed).transpose(1, 2).reshape(B, T, D))


class HeadsCausalOneAhead(_Heads):
    def forward(self, x, causal=False, key_padding_mask=None):
        T = x.shape[1]
        allowed = torch.ones(T, T, dtype=torch.bool)
        if causal:
            allowed = allowed.tril(diagonal=1)  # "the current token and the next"
        if key_padding_mask is not None:
            allowed = allowed & ~key_padding_mask[:, None, None, :]
        return self.finish(attention(*self.split(x), allowed))


def tiled_scales_q_in_the_loop(q, k, v, block_size=256):
    scale = 1 / math.sqrt(q.shape[-1])
    m = torch.full(q.shape[:-1] + (1,), -math.inf, dtype=q.dtype)
    ell, a = torch.zeros_like(m), torch.zeros(q.shape[:-1] + v.shape[-1:], dtype=q.dtype)
    for start in range(0, k.shape[-2], block_size):
        q = q * scale  # scale once ... in the loop
        s = q @ k[..., start:start + block_size, :].mT
        m_new = torch.maximum(m, s.amax(dim=-1, keepdim=True))
        e = torch.exp(s - m_new)
        ell = torch.exp(m - m_new) * ell + e.sum(dim=-1, keepdim=True)
        a = torch.exp(m - m_new) * a + e @ v[..., start:start + block_size, :]
        m = m_new
    return a / ell


def dft_divided_by_n(n, dtype=torch.complex64):
    return dft_matrix_ok(n, dtype) / n  # "the DFT averages"


ROUND5_AFTER = {
    "1.1 a finite fill of −10⁴": (checks.check_attention_weights, weights_finite_fill),
    "1.1 scale from the key count": (checks.check_attention_weights, weights_scale_from_key_count),
    "1.2 a mean for ⟨g, p⟩": (checks.check_softmax_backward, softmax_backward_mean_for_the_dot),
    "1.2 einsum's dot without its axis": (checks.check_softmax_backward, softmax_backward_einsum_dot),
    "1.3 dV scaled by c too": (checks.check_attention_function, FunctionDvScaledToo),
    "1.3 dV = P dO": (checks.check_attention_function, FunctionDvWithoutTranspose),
    "1.4 reshape to (B, H, T, Dh)": (checks.check_multi_head_attention, HeadsViewWithoutTranspose),
    "1.4 tril(diagonal=1)": (checks.check_multi_head_attention, HeadsCausalOneAhead),
    "1.5 q scaled in the loop": (checks.check_tiled_attention, tiled_scales_q_in_the_loop),
    "1.6 W divided by n": (checks.check_fourier_mixing, (dft_divided_by_n, mixing_ok)),
}

# What each message said when these answers were first run: 8 of 10 named as first written. The two that were not
# ("1.4 reshape to (B, H, T, Dh)": "not a weighted average of head 0's values"; "1.5 q scaled in the loop": "100% of
# the entries are wrong, spread over every axis") led to the readings they are now named by.
WORDS_AFTER = {
    "1.1 a finite fill of −10⁴": ["A finite fill value (−1e4, −1e9, …) is not −∞"],
    "1.1 scale from the key count": ["your scale follows Tk", "d_k = q.shape[-1]"],
    "1.2 a mean for ⟨g, p⟩": ["a mean over the 4 entries where the sum belongs"],
    "1.2 einsum's dot without its axis": ["row i's sum lands in column i", "keepdim=True"],
    "1.3 dV scaled by c too": ["a factor 1/√d_k too many"],
    "1.3 dV = P dO": ["dV = Pᵀ dO", "needs its transpose"],
    "1.4 reshape to (B, H, T, Dh)": ["split by reshaping (B, T, D) straight to (B, H, T, Dh)",
                                     ".view(B, T, H, Dh).transpose(1, 2)"],
    "1.4 tril(diagonal=1)": ["see the next one too (tril(1))"],
    "1.5 q scaled in the loop": ["with one block (block_size = Tk = 40) your output is right",
                                 "reassigns the argument `q` from itself"],
    "1.6 W divided by n": ["0.2 = 1/n", "no normalisation"],
}


@pytest.mark.parametrize("key", [pytest.param(key, marks=exercise(key.split()[0])) for key in ROUND5_AFTER])
def test_round5_after(key):
    check, answer = ROUND5_AFTER[key]
    assert_diagnoses(check, answer, *WORDS_AFTER[key])


# ----- edge paths of this round's readings ------------------------------------------------------------------------

class HeadsReshapedBothWays(_Heads):
    def forward(self, x, causal=False, key_padding_mask=None):
        B, T, D = x.shape
        q, k, v = (t.reshape(B, self.n_heads, T, D // self.n_heads) for t in self.qkv(x).chunk(3, dim=-1))
        allowed = torch.ones(T, T, dtype=torch.bool).tril() if causal else torch.ones(T, T, dtype=torch.bool)
        if key_padding_mask is not None:
            allowed = allowed & ~key_padding_mask[:, None, None, :]
        return self.out(attention(q, k, v, allowed).reshape(B, T, D))


def tiled_reassigns_v_and_is_wrong_in_one_block(q, k, v, block_size=256):
    for _ in range(1):
        v = v * 2  # wrong whatever the blocks: the reassigned argument is not what the probe names
    return _tiled(q, k, v, block_size)


def test_split_and_merged_by_reshape_is_named():
    assert_diagnoses(checks.check_multi_head_attention, HeadsReshapedBothWays,
                     "split by reshaping", "not a reshape of (B, H, T, Dh) to (B, T, D)")


@exercise("1.5")
def test_an_argument_reassigned_in_a_loop_is_named_only_when_one_block_is_right():
    message = assert_diagnoses(checks.check_tiled_attention, tiled_reassigns_v_and_is_wrong_in_one_block,
                               "sum to 2…2")
    assert "reassigns the argument" not in message


@exercise("1.4")
def test_padding_ignored_without_a_causal_run_says_not_applied():
    class IgnoresPadding(_Heads):
        def forward(self, x, causal=False, key_padding_mask=None):
            T = x.shape[1]
            allowed = torch.ones(T, T, dtype=torch.bool).tril() if causal else torch.ones(T, T, dtype=torch.bool)
            return self.finish(attention(*self.split(x), allowed))

    assert_diagnoses(checks.check_multi_head_attention, IgnoresPadding, "key_padding_mask was not applied")

    class RaisesWhenCausal(_Heads):
        def forward(self, x, causal=False, key_padding_mask=None):
            if causal and key_padding_mask is not None:
                raise ValueError("never with both")
            T = x.shape[1]
            allowed = torch.ones(T, T, dtype=torch.bool).tril() if causal else torch.ones(T, T, dtype=torch.bool)
            return self.finish(attention(*self.split(x), allowed))

    assert_diagnoses(checks.check_multi_head_attention, RaisesWhenCausal, "key_padding_mask was not applied")
