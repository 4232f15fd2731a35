"""Every check of Chapter 01 passes on a correct answer and names each known-wrong answer.

The wrong answers are written the way a learner writes them, not built from the checker's own references,
so these tests would notice a checker whose diagnosis drifted away from real mistakes.
"""
import math

import pytest
import torch
import torch.nn as nn
from einops import rearrange

from utils.checks import CheckFailure, LearnerError
from utils.checks import attention as checks


# ----- Exercise 1.1 ------------------------------------------------------------------------------------------

def weights_ok(q, k, mask=None):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return scores.softmax(dim=-1)


def weights_no_scale(q, k, mask=None):
    scores = q @ k.transpose(-2, -1)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return scores.softmax(dim=-1)


def weights_divide_by_d(q, k, mask=None):
    scores = q @ k.transpose(-2, -1) / q.shape[-1]
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, -1)


def weights_wrong_axis(q, k, mask=None):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return scores.softmax(dim=-2)


def weights_mask_after_softmax(q, k, mask=None):
    weights = (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).softmax(dim=-1)
    return weights if mask is None else weights.masked_fill(~mask, 0.0)


def weights_inverted_mask(q, k, mask=None):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(mask, float("-inf"))
    return scores.softmax(dim=-1)


def weights_fill_zero(q, k, mask=None):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, 0.0)
    return scores.softmax(dim=-1)


def weights_ignore_mask(q, k, mask=None):
    return (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).softmax(dim=-1)


def weights_keys_on_rows(q, k, mask=None):
    scores = k @ q.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return scores.softmax(dim=-1)


def weights_float32(q, k, mask=None):
    return weights_ok(q.float(), k.float(), mask)


def weights_forgot_return(q, k, mask=None):
    weights_ok(q, k, mask)


def weights_crash(q, k, mask=None):
    return (q @ k).softmax(-1)  # no transpose: a shape error inside the learner's code


def test_attention_weights_reference_passes(capsys):
    checks.check_attention_weights(weights_ok)
    assert capsys.readouterr().out.startswith("✓ Exercise 1.1 passed")


def test_attention_weights_large_negative_fill_also_passes():
    def weights_fill_minus_1e9(q, k, mask=None):
        scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
        return (scores if mask is None else scores.masked_fill(~mask, -1e9)).softmax(-1)
    checks.check_attention_weights(weights_fill_minus_1e9)


@pytest.mark.parametrize("wrong, hint", [
    (weights_no_scale, "forget to divide the scores by √d_k"),
    (weights_divide_by_d, "divided the scores by d_k"),
    (weights_wrong_axis, "softmax over the wrong axis"),
    (weights_mask_after_softmax, "applied the mask after the softmax"),
    (weights_inverted_mask, "mask is inverted"),
    (weights_fill_zero, "filled masked scores with 0"),
    (weights_ignore_mask, "mask was not applied"),
    (weights_keys_on_rows, "K·Qᵀ"),
    (weights_float32, "dtype torch.float32 but expected torch.float64"),
    (weights_forgot_return, "not a torch.Tensor. Did you forget to return it?"),
])
def test_attention_weights_names_the_mistake(wrong, hint):
    with pytest.raises(CheckFailure, match=hint.replace("(", r"\(").replace("?", r"\?").replace(".", r"\.")):
        checks.check_attention_weights(wrong)


def test_learner_exception_is_reported_as_theirs():
    with pytest.raises(LearnerError, match=r"your attention_weights raised RuntimeError.*transpose"):
        checks.check_attention_weights(weights_crash)


def test_untouched_stub_raises_not_implemented_unchanged():
    def stub(q, k, mask=None):
        raise NotImplementedError("Exercise 1.1: write the body of `attention_weights`")
    with pytest.raises(NotImplementedError, match="Exercise 1.1"):
        checks.check_attention_weights(stub)


# ----- Exercise 1.2 ------------------------------------------------------------------------------------------

def softmax_backward_ok(p, grad_p):
    return p * (grad_p - (grad_p * p).sum(-1, keepdim=True))


@pytest.mark.parametrize("wrong, hint", [
    (lambda p, g: p * g, "only the diagonal of the Jacobian"),
    (lambda p, g: g - (g * p).sum(-1, keepdim=True), "forgot to multiply by p"),
    (lambda p, g: p * ((g * p).sum(-1, keepdim=True) - g), "sign is flipped"),
    (lambda p, g: p * (g - g.sum(-1, keepdim=True)), "weighted by p"),
    (lambda p, g: p * (g - (g * p).sum(0, keepdim=True)), "wrong axis"),
    (lambda p, g: 2 * softmax_backward_ok(p, g), "2 × the expected values everywhere"),
    (lambda p, g: softmax_backward_ok(p, g).float(), "dtype"),
])
def test_softmax_backward_names_the_mistake(wrong, hint):
    with pytest.raises(CheckFailure, match=hint):
        checks.check_softmax_backward(wrong)


def test_softmax_backward_reference_passes(capsys):
    checks.check_softmax_backward(softmax_backward_ok)
    assert "✓ Exercise 1.2 passed" in capsys.readouterr().out


# ----- Exercise 1.3 ------------------------------------------------------------------------------------------

def make_attention_function(dv_transposed=True, scale_dq=True, scale_dk=True, full_softmax=True, swap=False,
                            drop_dk=False):
    """An autograd.Function for attention written as a learner would, with optional bugs."""
    class AttentionFunction(torch.autograd.Function):
        @staticmethod
        def forward(ctx, q, k, v):
            p = weights_ok(q, k)
            ctx.save_for_backward(q, k, v, p)
            return p @ v

        @staticmethod
        def backward(ctx, grad_out):
            q, k, v, p = ctx.saved_tensors
            scale = 1 / math.sqrt(q.shape[-1])
            grad_v = (p.transpose(-2, -1) if dv_transposed else p) @ grad_out
            grad_p = grad_out @ v.transpose(-2, -1)
            grad_s = softmax_backward_ok(p, grad_p) if full_softmax else p * grad_p
            grad_q = grad_s @ k * (scale if scale_dq else 1)
            grad_k = grad_s.transpose(-2, -1) @ q * (scale if scale_dk else 1)
            if swap:
                grad_q, grad_k = grad_k, grad_q
            return grad_q, None if drop_dk else grad_k, grad_v
    return AttentionFunction


def test_attention_function_reference_passes(capsys):
    checks.check_attention_function(make_attention_function())
    assert "gradcheck" in capsys.readouterr().out


@pytest.mark.parametrize("bug, hint", [
    (dict(dv_transposed=False), "need a transpose"),
    (dict(scale_dq=False), "dQ is missing the 1/√d_k"),
    (dict(scale_dk=False), "dK is missing the 1/√d_k"),
    (dict(full_softmax=False), "full softmax backward"),
    (dict(swap=True), "you returned dK where dQ belongs"),
    (dict(drop_dk=True), "backward returned None for dL/dK"),
])
def test_attention_function_names_the_mistake(bug, hint):
    with pytest.raises((CheckFailure, LearnerError), match=hint):
        checks.check_attention_function(make_attention_function(**bug))


# ----- Exercise 1.4 ------------------------------------------------------------------------------------------

def make_multi_head(split="B T (H Dh) -> B H T Dh", merge="B H T Dh -> B T (H Dh)", scale_by_head=True,
                    project=True, causal_diagonal=0, invert_padding=False, pad_queries=False, use_causal=True,
                    order="qkv"):
    class MultiHeadSelfAttention(nn.Module):
        def __init__(self, d_model, n_heads):
            super().__init__()
            self.n_heads = n_heads
            self.qkv = nn.Linear(d_model, 3 * d_model)
            self.out = nn.Linear(d_model, d_model)

        def forward(self, x, causal=False, key_padding_mask=None):
            B, T, D = x.shape
            parts = dict(zip(order, self.qkv(x).chunk(3, dim=-1)))
            q, k, v = (rearrange(parts[name], split, H=self.n_heads) for name in "qkv")  # (B, H, T, Dh)
            allowed = torch.ones(B, 1, T, T, dtype=torch.bool)
            if causal and use_causal:
                allowed = allowed & torch.ones(T, T, dtype=torch.bool).tril(causal_diagonal)
            if key_padding_mask is not None:
                keep = key_padding_mask if invert_padding else ~key_padding_mask
                allowed = allowed & (keep[:, None, :, None] if pad_queries else keep[:, None, None, :])
            d = {True: q.shape[-1], False: D, None: 1}[scale_by_head]
            scores = (q @ k.transpose(-2, -1) / math.sqrt(d)).masked_fill(~allowed, float("-inf"))
            heads = rearrange(scores.softmax(-1) @ v, merge)  # (B, T, D)
            return self.out(heads) if project else heads
    return MultiHeadSelfAttention


def test_multi_head_reference_passes(capsys):
    checks.check_multi_head_attention(make_multi_head())
    assert "✓ Exercise 1.4 passed" in capsys.readouterr().out


@pytest.mark.parametrize("bug, hint", [
    (dict(split="B T (Dh H) -> B H T Dh"), "heads split in the wrong order"),
    (dict(merge="B H T Dh -> B T (Dh H)"), "heads merged in the wrong order"),
    (dict(scale_by_head=False), "scaled by √D"),
    (dict(project=False), "output projection"),
    (dict(causal_diagonal=-1), "hides the diagonal"),
    (dict(use_causal=False), "causal mask is missing"),
    (dict(invert_padding=True), "key_padding_mask is inverted"),
    (dict(pad_queries=True), "padded \\*queries\\*"),
    (dict(order="kqv"), "q and k are swapped"),
])
def test_multi_head_names_the_mistake(bug, hint):
    with pytest.raises(CheckFailure, match=hint):
        checks.check_multi_head_attention(make_multi_head(**bug))


# ----- Exercise 1.5 ------------------------------------------------------------------------------------------

def make_tiled(rescale_output=True, rescale_sum=True, per_block=False, drop_last=False, subtract_max=True,
               materialise=False):
    def tiled_attention(q, k, v, block_size=128):
        if materialise:  # computes the full T×T scores "to get the max", then tiles anyway
            _ = (q @ k.transpose(-2, -1)).amax(-1)
        scale = 1 / math.sqrt(q.shape[-1])
        T = k.shape[-2]
        m = torch.full(q.shape[:-1] + (1,), float("-inf"), dtype=q.dtype)
        l = torch.zeros_like(m)
        acc = torch.zeros(q.shape[:-1] + v.shape[-1:], dtype=q.dtype)
        end = (T // block_size) * block_size if drop_last and T > block_size else T
        for start in range(0, end, block_size):
            s = q @ k[..., start:start + block_size, :].transpose(-2, -1) * scale
            m_new = torch.maximum(m, s.amax(-1, keepdim=True)) if subtract_max else torch.zeros_like(m)
            e = torch.exp(s - m_new)
            c = torch.exp(m - m_new) if subtract_max else 1.0
            if per_block:
                acc = acc + e @ v[..., start:start + block_size, :] / e.sum(-1, keepdim=True)
            else:
                l = (l * c if rescale_sum else l) + e.sum(-1, keepdim=True)
                acc = (acc * c if rescale_output else acc) + e @ v[..., start:start + block_size, :]
            m = m_new
        return acc if per_block else acc / l
    return tiled_attention


def test_tiled_reference_passes(capsys):
    checks.check_tiled_attention(make_tiled())
    assert "linear" in capsys.readouterr().out


@pytest.mark.parametrize("bug, hint", [
    (dict(rescale_output=False), "output accumulated so far must be multiplied"),
    (dict(rescale_sum=False), "running sum ℓ must be multiplied"),
    (dict(per_block=True), "normalised each block by its own sum"),
    (dict(drop_last=True), "last, shorter block"),
    (dict(subtract_max=False), "exp\\(\\) overflowed"),
    (dict(materialise=True), "peak memory grew"),
])
def test_tiled_names_the_mistake(bug, hint):
    with pytest.raises(CheckFailure, match=hint):
        checks.check_tiled_attention(make_tiled(**bug))


def test_naive_attention_fails_the_memory_check():
    with pytest.raises(CheckFailure, match="materialised"):
        checks.check_tiled_attention(lambda q, k, v, block_size: weights_ok(q, k) @ v)


# ----- Exercise 1.6 ------------------------------------------------------------------------------------------

def dft_ok(n, sign=-1, denominator=None, dtype=torch.complex64):
    j = torch.arange(n, dtype=torch.float64)
    return torch.exp(sign * 2j * math.pi * torch.outer(j, j) / (denominator or n)).to(dtype)


def mixing_ok(x):
    T, D = x.shape[-2:]
    W_T, W_D = dft_ok(T, dtype=torch.complex128), dft_ok(D, dtype=torch.complex128)
    return (W_T @ x.to(torch.complex128) @ W_D).real.to(x.dtype)


def test_fourier_reference_passes(capsys):
    checks.check_fourier_mixing(dft_ok, mixing_ok)
    assert "✓ Exercise 1.6 passed" in capsys.readouterr().out


@pytest.mark.parametrize("dft, mixing, hint", [
    (lambda n: dft_ok(n, sign=+1), mixing_ok, "sign is \\+"),
    (lambda n: dft_ok(n, denominator=max(n - 1, 1)), mixing_ok, "not n − 1"),
    (lambda n: dft_ok(n).real, mixing_ok, "must return a complex tensor"),
    (dft_ok, lambda x: torch.fft.fft(x, dim=-2).real, "only along the sequence axis"),
    (dft_ok, lambda x: torch.fft.fft(x, dim=-1).real, "only along the hidden axis"),
    (dft_ok, lambda x: torch.fft.fft2(x).abs(), "magnitude"),
    (dft_ok, lambda x: torch.fft.fft2(x).imag, "imaginary part"),
    (dft_ok, lambda x: torch.fft.fftn(x).real, "batch axis too"),
    (dft_ok, lambda x: torch.fft.fft2(x, norm="ortho").real, "constant factor"),
    (dft_ok, lambda x: (dft_ok(x.shape[-2]) @ x.to(torch.complex64) @ dft_ok(x.shape[-1])).real.to(x.dtype),
     "float32 precision only"),
])
def test_fourier_names_the_mistake(dft, mixing, hint):
    with pytest.raises(CheckFailure, match=hint):
        checks.check_fourier_mixing(dft, mixing)


def test_later_checks_point_back_to_a_wrong_exercise_1_1():
    """An unscaled attention_weights also breaks 1.3 and 1.4; their checks say where to look."""
    class Unscaled(make_attention_function()):
        @staticmethod
        def forward(ctx, q, k, v):
            p = weights_no_scale(q, k)
            ctx.save_for_backward(q, k, v, p)
            return p @ v
    with pytest.raises(CheckFailure, match="check of Exercise 1.1"):
        checks.check_attention_function(Unscaled)
    with pytest.raises(CheckFailure, match="passes Exercise 1.1"):
        checks.check_multi_head_attention(make_multi_head(scale_by_head=None))


def test_attention_function_points_back_to_a_wrong_softmax_backward():
    class WithWrongSoftmaxBackward(make_attention_function()):
        @staticmethod
        def backward(ctx, grad_out):
            q, k, v, p = ctx.saved_tensors
            scale = 1 / math.sqrt(q.shape[-1])
            grad_p = grad_out @ v.transpose(-2, -1)
            grad_s = p * (grad_p - grad_p.sum(-1, keepdim=True))  # the unweighted sum of Exercise 1.2
            return grad_s @ k * scale, grad_s.transpose(-2, -1) @ q * scale, p.transpose(-2, -1) @ grad_out
    with pytest.raises(CheckFailure, match="does it pass the check of Exercise 1.2"):
        checks.check_attention_function(WithWrongSoftmaxBackward)
