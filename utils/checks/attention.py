"""Checks for Chapter 01, The Anatomy of Attention.

Conventions the checks assume (the chapter states them too):
- a boolean ``mask`` broadcastable to (..., Tq, Tk) with True = "this query may attend to this key", as in
  ``F.scaled_dot_product_attention``;
- ``key_padding_mask`` of shape (B, T) with True = "this key is padding, ignore it", as in
  ``nn.MultiheadAttention`` — the opposite polarity, a classic source of bugs.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange

from utils.bench import peak_memory
from utils.checks.core import CheckFailure, LearnerError, Mistake, call, diagnose, passed, seeded_randn


def causal_mask(t: int) -> torch.Tensor:
    """(T, T) bool, True on and below the diagonal: query i may attend to keys 0..i."""
    return torch.ones(t, t, dtype=torch.bool).tril()


# ---------------------------------------------------------------------------------------------------------------
# Exercise 1.1 — attention weights, eqs. (1.1), (1.2)
# ---------------------------------------------------------------------------------------------------------------

def reference_attention_weights(q, k, mask=None, *, scale=None, softmax_dim=-1, fill=-math.inf,
                                mask_after_softmax=False):
    """softmax(Q Kᵀ / √d_k) with masked scores set to -inf. The keyword arguments build known mistakes."""
    d_k = q.shape[-1]
    scores = q @ k.transpose(-2, -1)  # (..., Tq, Tk)
    scores = scores * (1 / math.sqrt(d_k) if scale is None else scale)
    if mask is not None and not mask_after_softmax:
        scores = scores.masked_fill(~mask, fill)
    weights = scores.softmax(dim=softmax_dim)
    if mask is not None and mask_after_softmax:
        weights = weights * mask
    return weights


def _weights_cases():
    padding = torch.ones(2, 1, 1, 5, dtype=torch.bool)
    padding[1, ..., 3:] = False  # the second sequence has 2 padded keys
    random_mask = torch.rand(2, 3, 6, 6, generator=torch.Generator().manual_seed(7)) > 0.4
    random_mask[..., 0] = True  # every query keeps at least one key
    return [  # (description, q shape, k shape, mask, dtype)
        ("B=2, H=3, T=5, d_k=8, no mask", (2, 3, 5, 8), (2, 3, 5, 8), None, torch.float32),
        ("cross-attention, Tq=4, Tk=7, d_k=16", (2, 2, 4, 16), (2, 2, 7, 16), None, torch.float32),
        ("causal mask, T=6", (2, 2, 6, 8), (2, 2, 6, 8), causal_mask(6), torch.float32),
        ("padding mask (B,1,1,Tk), 2 padded keys", (2, 1, 5, 8), (2, 1, 5, 8), padding, torch.float32),
        ("random mask, T=6", (2, 3, 6, 8), (2, 3, 6, 8), random_mask, torch.float32),
        ("T=1 (a single token)", (1, 1, 1, 4), (1, 1, 1, 4), None, torch.float32),
        ("float64 with no batch axes, Tq=3, Tk=5", (3, 8), (5, 8), None, torch.float64),
    ]


def check_attention_weights(attention_weights) -> None:
    """Exercise 1.1: ``attention_weights(q, k, mask=None)`` returns softmax(Q Kᵀ / √d_k) with the mask applied."""
    for number, (case, q_shape, k_shape, mask, dtype) in enumerate(_weights_cases()):
        q = seeded_randn(*q_shape, seed=number, dtype=dtype)
        k = seeded_randn(*k_shape, seed=100 + number, dtype=dtype)
        got = call(attention_weights, q.clone(), k.clone(), mask, exercise="1.1", what="attention_weights")
        expected = reference_attention_weights(q, k, mask)
        d_k = q.shape[-1]
        mistakes = [
            Mistake(reference_attention_weights(q, k, mask, scale=1.0),
                    "did you forget to divide the scores by √d_k (eq. 1.1)?"),
            Mistake(reference_attention_weights(q, k, mask, scale=1 / d_k),
                    "you divided the scores by d_k; divide by √d_k, the standard deviation of q·k (eq. 1.3)."),
            Mistake(reference_attention_weights(q, k, mask, scale=math.sqrt(d_k)),
                    "you multiplied the scores by √d_k; divide by it instead."),
            Mistake(reference_attention_weights(q, k, mask, softmax_dim=-2),
                    "softmax over the wrong axis: each query's weights (a row, dim=-1) must sum to 1 over the "
                    "keys, but yours sum to 1 down each column (dim=-2)."),
            Mistake(reference_attention_weights(k, q, mask),
                    "your scores look like K·Qᵀ (keys on the rows); scores[i, j] must be q_i · k_j.")
            if q.shape == k.shape else None,
        ]
        if mask is not None:
            mistakes += [
                Mistake(reference_attention_weights(q, k, None),
                        "masked positions got weight: the mask was not applied."),
                Mistake(reference_attention_weights(q, k, ~mask),
                        "your mask is inverted: True means 'may attend' (as in F.scaled_dot_product_attention), "
                        "so fill the scores where the mask is False."),
                Mistake(reference_attention_weights(q, k, mask, mask_after_softmax=True),
                        "you applied the mask after the softmax, so the rows no longer sum to 1; set masked "
                        "scores to -inf *before* the softmax so the remaining weights renormalise."),
                Mistake(reference_attention_weights(q, k, mask, fill=0.0),
                        "you filled masked scores with 0, but a score of 0 still gets weight e^0 > 0; fill them "
                        "with float('-inf')."),
            ]
        diagnose(got, expected, exercise="1.1", case=case, mistakes=tuple(mistakes), atol=1e-6, name="weights")
        library = F.scaled_dot_product_attention(q, k, k, attn_mask=mask)  # values = keys: any V would do
        if not torch.allclose(got @ k, library, atol=1e-5):
            raise CheckFailure(f"Exercise 1.1 ({case}): weights @ V differs from F.scaled_dot_product_attention.")
    passed("1.1", f"{len(_weights_cases())} cases (cross-attention, causal, padding and random masks, T=1, "
                  "float64) match softmax(QKᵀ/√d_k), and weights @ V matches F.scaled_dot_product_attention.")


# ---------------------------------------------------------------------------------------------------------------
# Exercise 1.2 — the softmax backward pass, eq. (1.5)
# ---------------------------------------------------------------------------------------------------------------

def check_softmax_backward(softmax_backward) -> None:
    """Exercise 1.2: ``softmax_backward(p, grad_p)`` returns dL/ds for p = softmax(s, dim=-1)."""
    cases = [("a vector of 6", (6,), torch.float64), ("shape (2, 3, 5)", (2, 3, 5), torch.float32),
             ("a single entry (1, 1)", (1, 1), torch.float32), ("float64 (4, 7)", (4, 7), torch.float64)]
    for number, (case, shape, dtype) in enumerate(cases):
        scores = seeded_randn(*shape, seed=10 + number, dtype=dtype).requires_grad_()
        p = scores.softmax(dim=-1)
        grad_p = seeded_randn(*shape, seed=20 + number, dtype=dtype)
        (expected,) = torch.autograd.grad(p, scores, grad_p)  # PyTorch's own softmax backward
        p = p.detach()
        got = call(softmax_backward, p.clone(), grad_p.clone(), exercise="1.2", what="softmax_backward")
        dot = (grad_p * p).sum(-1, keepdim=True)
        mistakes = (
            Mistake(p * grad_p, "you kept only the diagonal of the Jacobian, p_i·g_i; the off-diagonal terms "
                                "−p_i·p_j subtract p_i·Σ_j p_j·g_j (eq. 1.5)."),
            Mistake(grad_p - dot, "you forgot to multiply by p: dL/ds_i = p_i (g_i − Σ_j p_j g_j)."),
            Mistake(p * (dot - grad_p), "the sign is flipped: dL/ds_i = p_i (g_i − Σ_j p_j g_j)."),
            Mistake(p * (grad_p - grad_p.sum(-1, keepdim=True)),
                    "the sum must be weighted by p: Σ_j p_j g_j, not Σ_j g_j."),
            Mistake(p * (grad_p - (grad_p * p).sum(0, keepdim=True)),
                    "you summed over the wrong axis: the sum Σ_j p_j g_j runs over the softmax axis (dim=-1)."),
        )
        diagnose(got, expected, exercise="1.2", case=case, mistakes=mistakes, atol=1e-6, name="gradient")
    passed("1.2", f"{len(cases)} cases match PyTorch's softmax backward (torch.autograd.grad).")


# ---------------------------------------------------------------------------------------------------------------
# Exercise 1.3 — attention as a torch.autograd.Function, eqs. (1.7)–(1.9)
# ---------------------------------------------------------------------------------------------------------------

def _reference_gradients(q, k, v, grad_out):
    """dL/dQ, dL/dK, dL/dV of softmax(Q Kᵀ/√d) V by autograd, and the pieces known mistakes are built from."""
    q, k, v = (t.detach().requires_grad_() for t in (q, k, v))
    out = reference_attention_weights(q, k) @ v
    return out.detach(), torch.autograd.grad(out, (q, k, v), grad_out)


def _gradient_mistakes(q, k, v, grad_out, leaves, gradients):
    """(name, learner's leaf, expected gradient, known mistakes) for dV, dQ and dK, eqs. (1.7)–(1.9)."""
    dq, dk, dv = gradients
    scale = 1 / math.sqrt(q.shape[-1])
    p = reference_attention_weights(q, k)
    d_scores_diagonal_only = p * (grad_out @ v.transpose(-2, -1))  # the softmax backward without its sum
    square = q.shape == k.shape == v.shape  # some mistakes only keep the shapes right when Tq = Tk
    partial_softmax = "dS must go through the full softmax backward of Exercise 1.2, not just P ⊙ dP."
    order = "backward returns gradients in the order forward took its inputs, (q, k, v)."
    missing_scale = "is missing the 1/√d_k that the forward pass applied to the scores (eq. 1.9)."
    return [
        ("dL/dV", leaves[2], dv, (
            Mistake(p @ grad_out, "dV = Pᵀ · dO (eq. 1.7): the attention weights need a transpose.") if square
            else None,)),
        ("dL/dQ", leaves[0], dq, (
            Mistake(dq / scale, f"dQ {missing_scale}"),
            Mistake(d_scores_diagonal_only @ k * scale, partial_softmax),
            Mistake(dk, f"you returned dK where dQ belongs: {order}") if square else None)),
        ("dL/dK", leaves[1], dk, (
            Mistake(dk / scale, f"dK {missing_scale}"),
            Mistake(d_scores_diagonal_only.transpose(-2, -1) @ q * scale, partial_softmax),
            Mistake(dq, f"you returned dQ where dK belongs: {order}") if square else None)),
    ]


def check_attention_function(AttentionFunction) -> None:
    """Exercise 1.3: forward and backward of attention as a ``torch.autograd.Function``, then ``gradcheck``."""
    cases = [("B=2, H=2, T=5, d=4", (2, 2, 5, 4), (2, 2, 5, 4), torch.float64),
             ("cross-attention Tq=3, Tk=6, d_v=5", (1, 2, 3, 4), (1, 2, 6, 4), torch.float64),
             ("T=1", (1, 1, 1, 3), (1, 1, 1, 3), torch.float64),
             ("float32, T=8, d=16", (2, 1, 8, 16), (2, 1, 8, 16), torch.float32)]
    for number, (case, q_shape, k_shape, dtype) in enumerate(cases):
        q = seeded_randn(*q_shape, seed=30 + number, dtype=dtype)
        k = seeded_randn(*k_shape, seed=40 + number, dtype=dtype)
        v_shape = k_shape[:-1] + ((5,) if "d_v=5" in case else k_shape[-1:])
        v = seeded_randn(*v_shape, seed=50 + number, dtype=dtype)
        grad_out = seeded_randn(*(q_shape[:-1] + v_shape[-1:]), seed=60 + number, dtype=dtype)
        expected_out, (dq, dk, dv) = _reference_gradients(q, k, v, grad_out)
        leaves = [t.clone().requires_grad_() for t in (q, k, v)]
        out = call(AttentionFunction.apply, *leaves, exercise="1.3", what="AttentionFunction.forward")
        unscaled = Mistake(reference_attention_weights(q, k, scale=1.0) @ v,
                           "it equals attention without the 1/√d_k scale: does your attention_weights pass the "
                           "check of Exercise 1.1?")
        diagnose(out, expected_out, exercise="1.3", case=case, name="forward output", atol=1e-5,
                 mistakes=(unscaled,))
        call(out.backward, grad_out, exercise="1.3", what="AttentionFunction.backward")
        for name, leaf, expected, mistakes in _gradient_mistakes(q, k, v, grad_out, leaves, (dq, dk, dv)):
            if leaf.grad is None:
                raise CheckFailure(f"Exercise 1.3 ({case}): backward returned None for {name}; return a gradient "
                                   f"for each input of forward, in order (q, k, v).")
            upstream = "" if name == "dL/dV" else \
                "dQ and dK go through your softmax_backward: does it pass the check of Exercise 1.2?"
            diagnose(leaf.grad, expected, exercise="1.3", case=case, mistakes=mistakes, name=name, atol=1e-5,
                     otherwise=upstream)
    small = tuple(seeded_randn(1, 2, 3, 4, seed=70 + i, dtype=torch.float64).requires_grad_() for i in range(3))
    try:
        torch.autograd.gradcheck(AttentionFunction.apply, small, eps=1e-6, atol=1e-5)
    except torch.autograd.gradcheck.GradcheckError as error:
        raise CheckFailure(f"Exercise 1.3: torch.autograd.gradcheck disagrees with your backward: {error}") from None
    passed("1.3", f"forward and dL/dQ, dL/dK, dL/dV match autograd on {len(cases)} cases, and "
                  "torch.autograd.gradcheck confirms your backward in float64.")


# ---------------------------------------------------------------------------------------------------------------
# Exercise 1.4 — multi-head self-attention with einops
# ---------------------------------------------------------------------------------------------------------------

def reference_multi_head(x, qkv: torch.nn.Linear, out: torch.nn.Linear, n_heads: int, causal=False,
                         key_padding_mask=None, *, split="B T (H Dh) -> B H T Dh",
                         merge="B H T Dh -> B T (H Dh)", scale_by="head", project=True, order=(0, 1, 2),
                         causal_diagonal=0, causal_upper=False, pad_queries=False, invert_padding=False):
    """Multi-head self-attention; the keyword arguments build the known mistakes the check recognises."""
    B, T, D = x.shape
    parts = qkv(x).chunk(3, dim=-1)  # 3 × (B, T, D)
    q, k, v = (rearrange(parts[i], split, H=n_heads) for i in order)  # (B, H, T, Dh)
    d = {"model": D, "head": D // n_heads, "none": 1}[scale_by]
    scores = q @ k.transpose(-2, -1) / math.sqrt(d)  # (B, H, T, T)
    allowed = torch.ones(T, T, dtype=torch.bool, device=x.device)
    if causal:
        allowed = allowed.triu(1 - causal_diagonal) if causal_upper else allowed.tril(causal_diagonal)
    allowed = allowed.expand(B, 1, T, T)
    if key_padding_mask is not None:
        keep = key_padding_mask if invert_padding else ~key_padding_mask  # (B, T): True = a real token
        keep = keep[:, None, :, None] if pad_queries else keep[:, None, None, :]
        allowed = allowed & keep
    weights = scores.masked_fill(~allowed, -math.inf).softmax(dim=-1)
    heads = rearrange(weights @ v, merge)  # (B, T, D)
    return out(heads) if project else heads


def _copy_to_library(module, n_heads: int) -> torch.nn.MultiheadAttention:
    d_model = module.qkv.in_features
    library = torch.nn.MultiheadAttention(d_model, n_heads, batch_first=True)
    with torch.no_grad():
        library.in_proj_weight.copy_(module.qkv.weight)  # rows: [W_q; W_k; W_v]
        library.in_proj_bias.copy_(module.qkv.bias)
        library.out_proj.weight.copy_(module.out.weight)
        library.out_proj.bias.copy_(module.out.bias)
    return library.eval()


def check_multi_head_attention(MultiHeadSelfAttention) -> None:
    """Exercise 1.4: ``MultiHeadSelfAttention(d_model, n_heads)(x, causal, key_padding_mask)`` against
    ``nn.MultiheadAttention`` and ``F.scaled_dot_product_attention`` with copied weights."""
    padding = torch.zeros(2, 5, dtype=torch.bool)
    padding[1, 3:] = True  # True = padding, nn.MultiheadAttention's convention
    cases = [("B=2, T=5, D=16, H=4", 2, 5, 16, 4, False, None),
             ("causal, B=2, T=5, D=16, H=4", 2, 5, 16, 4, True, None),
             ("key padding (2 padded keys), D=16, H=4", 2, 5, 16, 4, False, padding),
             ("causal + key padding", 2, 5, 16, 4, True, padding),
             ("T=1", 1, 1, 8, 2, True, None),
             ("one head, D=8", 1, 4, 8, 1, False, None),
             ("D=12, H=3", 2, 6, 12, 3, True, None)]
    for number, (case, B, T, D, H, causal, pad) in enumerate(cases):
        torch.manual_seed(80 + number)
        module = call(MultiHeadSelfAttention, D, H, exercise="1.4", what="MultiHeadSelfAttention(d_model, n_heads)")
        if not isinstance(getattr(module, "qkv", None), torch.nn.Linear) or \
                not isinstance(getattr(module, "out", None), torch.nn.Linear):
            raise CheckFailure("Exercise 1.4: keep the given __init__: the check copies weights through "
                               "`self.qkv` (Linear D → 3D) and `self.out` (Linear D → D).")
        x = seeded_randn(B, T, D, seed=90 + number)
        with torch.no_grad():
            got = call(module, x, causal=causal, key_padding_mask=pad, exercise="1.4",
                       what="MultiHeadSelfAttention.forward")
            library = _copy_to_library(module, H)
            attn_mask = causal_mask(T).logical_not() if causal else None  # nn.MultiheadAttention: True = blocked
            expected, _ = library(x, x, x, attn_mask=attn_mask, key_padding_mask=pad, need_weights=False)
            same = dict(x=x, qkv=module.qkv, out=module.out, n_heads=H, causal=causal, key_padding_mask=pad)
            mistakes = [
                Mistake(reference_multi_head(**same, split="B T (Dh H) -> B H T Dh"),
                        "heads split in the wrong order: D is laid out as (H Dh), head-major, so split with "
                        "rearrange(x, 'B T (H Dh) -> B H T Dh', H=n_heads)."),
                Mistake(reference_multi_head(**same, merge="B H T Dh -> B T (Dh H)"),
                        "heads merged in the wrong order: undo the split with 'B H T Dh -> B T (H Dh)'."),
                Mistake(reference_multi_head(**same, scale_by="model"),
                        "you scaled by √D (the model width); each head's scores are scaled by √Dh = √(D/H)."),
                Mistake(reference_multi_head(**same, scale_by="none"),
                        "the scores are not scaled at all: divide by √Dh — or, if you call your attention, check "
                        "that it passes Exercise 1.1."),
                Mistake(reference_multi_head(**same, project=False),
                        "the output projection self.out is missing after merging the heads."),
                Mistake(reference_multi_head(**same, order=(1, 0, 2)),
                        "q and k are swapped: qkv(x) splits, in order, into q, k, v (like nn.MultiheadAttention's "
                        "in_proj_weight)."),
                Mistake(reference_multi_head(**same, order=(0, 2, 1)),
                        "k and v are swapped: qkv(x) splits, in order, into q, k, v."),
            ]
            if causal:
                mistakes += [
                    Mistake(reference_multi_head(**{**same, "causal": False}),
                            "with causal=True a token must not see later tokens: the causal mask is missing."),
                    Mistake(reference_multi_head(**same, causal_diagonal=-1),
                            "your causal mask hides the diagonal too: a token may attend to itself "
                            "(torch.tril with diagonal=0)."),
                    Mistake(reference_multi_head(**same, causal_upper=True),
                            "your causal mask is flipped: it lets tokens see the future and hides the past."),
                ]
            if pad is not None:
                mistakes += [
                    Mistake(reference_multi_head(**{**same, "key_padding_mask": None}),
                            "padded keys received attention: key_padding_mask was not applied."),
                    Mistake(reference_multi_head(**same, invert_padding=True),
                            "key_padding_mask is inverted: here True marks a padded key to ignore "
                            "(nn.MultiheadAttention's convention), the opposite of a 'may attend' mask."),
                    Mistake(reference_multi_head(**same, pad_queries=True),
                            "you masked padded *queries* (rows); key_padding_mask hides padded *keys* (columns)."),
                ]
        diagnose(got, expected, exercise="1.4", case=case, mistakes=tuple(mistakes), atol=1e-5)
        assert torch.allclose(reference_multi_head(**same), expected, atol=1e-5), \
            "internal: the check's own reference disagrees with nn.MultiheadAttention"
    passed("1.4", f"{len(cases)} cases (causal, key padding, both, T=1, one head) match nn.MultiheadAttention "
                  "with copied weights.")


# ---------------------------------------------------------------------------------------------------------------
# Exercise 1.5 — tiled attention with an online softmax (FlashAttention's idea)
# ---------------------------------------------------------------------------------------------------------------

def reference_tiled_attention(q, k, v, block_size, *, rescale_output=True, rescale_sum=True,
                              normalise_per_block=False, drop_last_block=False):
    """Attention computed over blocks of keys with a running max and sum; the keywords build known mistakes."""
    T = k.shape[-2]
    scale = 1 / math.sqrt(q.shape[-1])
    running_max = torch.full(q.shape[:-1] + (1,), -math.inf, dtype=q.dtype)  # (..., Tq, 1)
    running_sum = torch.zeros_like(running_max)
    output = torch.zeros(q.shape[:-1] + v.shape[-1:], dtype=q.dtype)  # (..., Tq, Dv)
    stop = T - T % block_size if drop_last_block and T > block_size else T
    for start in range(0, stop, block_size):
        k_block, v_block = k[..., start:start + block_size, :], v[..., start:start + block_size, :]
        scores = q @ k_block.transpose(-2, -1) * scale  # (..., Tq, block)
        new_max = torch.maximum(running_max, scores.amax(-1, keepdim=True))
        correction = torch.exp(running_max - new_max)
        exp_scores = torch.exp(scores - new_max)
        if normalise_per_block:
            output = output + exp_scores @ v_block / exp_scores.sum(-1, keepdim=True)
            continue
        running_sum = running_sum * (correction if rescale_sum else 1) + exp_scores.sum(-1, keepdim=True)
        output = output * (correction if rescale_output else 1) + exp_scores @ v_block
        running_max = new_max
    return output if normalise_per_block else output / running_sum


def check_tiled_attention(tiled_attention) -> None:
    """Exercise 1.5: ``tiled_attention(q, k, v, block_size)`` equals naive attention to 1e-5, with peak memory
    that grows linearly (not quadratically) with the sequence length."""
    cases = [("T=64, block 16", (1, 2, 64, 16), 16, 1.0, torch.float32),
             ("T=50 not a multiple of the block (16)", (2, 1, 50, 8), 16, 1.0, torch.float32),
             ("block larger than T (10 < 32)", (1, 1, 10, 8), 32, 1.0, torch.float32),
             ("T=1", (1, 1, 1, 8), 4, 1.0, torch.float32),
             ("large scores (inputs × 12)", (1, 2, 40, 16), 8, 12.0, torch.float32),
             ("float64, T=33, block 8", (1, 1, 33, 4), 8, 1.0, torch.float64)]
    for number, (case, shape, block, size, dtype) in enumerate(cases):
        q, k, v = (seeded_randn(*shape, seed=110 + 3 * number + i, dtype=dtype) * (size if i < 2 else 1)
                   for i in range(3))
        got = call(tiled_attention, q.clone(), k.clone(), v.clone(), block_size=block, exercise="1.5",
                   what="tiled_attention")
        expected = reference_attention_weights(q, k) @ v

        def mistake(**bug):
            return reference_tiled_attention(q, k, v, block, **bug)
        mistakes = (
            Mistake(mistake(rescale_output=False),
                    "when the running max grows, the output accumulated so far must be multiplied by "
                    "exp(m_old − m_new) too."),
            Mistake(mistake(rescale_sum=False),
                    "when the running max grows, the running sum ℓ must be multiplied by exp(m_old − m_new)."),
            Mistake(mistake(normalise_per_block=True),
                    "you normalised each block by its own sum and added the blocks; keep unnormalised sums and "
                    "divide once by the total ℓ at the end."),
            Mistake(mistake(drop_last_block=True),
                    "the last, shorter block of keys was skipped (T is not a multiple of block_size)."),
        )
        if size > 1 and not torch.isfinite(got).all() and torch.isfinite(expected).all():
            raise CheckFailure(f"Exercise 1.5 ({case}): your output has NaN or inf: exp() overflowed. Subtract the "
                               f"running maximum m from the scores before exponentiating.")
        diagnose(got, expected, exercise="1.5", case=case, mistakes=mistakes, atol=1e-5, rtol=1e-4)
    short, long = 512, 1024
    memory = []
    for t in (short, long):
        q = seeded_randn(1, 1, t, 32, seed=t)
        memory.append(peak_memory(lambda q: tiled_attention(q, q, q, block_size=64), q))
    growth = memory[1] / max(memory[0], 1)
    if growth > 3:
        raise CheckFailure(f"Exercise 1.5: your peak memory grew {growth:.1f}× when T doubled ({short} → {long}): "
                           f"something of size T×T is materialised (the full score matrix?). Compute the scores "
                           f"one block of keys at a time; memory should grow about 2×.")
    passed("1.5", f"{len(cases)} cases match naive attention to 1e-5 (ragged last block, T=1, large scores), and "
                  f"peak memory grew {growth:.2f}× when T doubled ({memory[0] / 2**20:.2f} → "
                  f"{memory[1] / 2**20:.2f} MiB): linear.")


# ---------------------------------------------------------------------------------------------------------------
# Exercise 1.6 — FNet's Fourier mixing as two DFT matrices
# ---------------------------------------------------------------------------------------------------------------

def reference_dft_matrix(n: int, sign: float = -1.0, denominator: int | None = None) -> torch.Tensor:
    j = torch.arange(n, dtype=torch.float64)
    angle = sign * 2 * math.pi * torch.outer(j, j) / (denominator or n)
    return torch.polar(torch.ones_like(angle), angle).to(torch.complex64)  # W[j, k] = exp(-2πi jk / n)


def check_fourier_mixing(dft_matrix, fourier_mixing) -> None:
    """Exercise 1.6: ``dft_matrix(n)`` (complex64 by default, W[j, k] = exp(-2πi jk/n)) and ``fourier_mixing(x)``
    = Re(W_T · x · W_D), checked against ``torch.fft``; float64 inputs must keep float64 precision."""
    for n in (1, 2, 5, 8):
        got = call(dft_matrix, n, exercise="1.6", what="dft_matrix")
        if not isinstance(got, torch.Tensor) or not got.is_complex():
            kind = str(got.dtype) if isinstance(got, torch.Tensor) else type(got).__name__
            raise CheckFailure(f"Exercise 1.6 (n={n}): dft_matrix must return a complex tensor (torch.complex64), "
                               f"got {kind}.")
        expected = torch.fft.fft(torch.eye(n, dtype=torch.complex64), dim=0)  # columns: DFTs of unit vectors
        mistakes = (Mistake(torch.view_as_real(reference_dft_matrix(n, sign=+1.0)),
                            "the exponent's sign is +; the forward DFT uses exp(−2πi jk/n) (+ is the inverse's)."),
                    Mistake(torch.view_as_real(reference_dft_matrix(n, denominator=max(n - 1, 1))),
                            "divide the angle by n, not n − 1."))
        diagnose(torch.view_as_real(got.to(torch.complex64)), torch.view_as_real(expected), exercise="1.6",
                 case=f"dft_matrix({n})", mistakes=mistakes, atol=1e-5, name="matrix (as real, imaginary)")
    cases = [("B=2, T=8, D=16", (2, 8, 16), torch.float32), ("odd sizes T=7, D=5", (3, 7, 5), torch.float32),
             ("T=1", (1, 1, 4), torch.float32), ("float64", (2, 6, 4), torch.float64)]
    for number, (case, shape, dtype) in enumerate(cases):
        x = seeded_randn(*shape, seed=130 + number, dtype=dtype)
        got = call(fourier_mixing, x.clone(), exercise="1.6", what="fourier_mixing")
        spectrum = torch.fft.fft2(x, dim=(-2, -1))
        mistakes = (
            Mistake(torch.fft.fft(x, dim=-2).real, "you transformed only along the sequence axis; FNet applies "
                                                  "the DFT along the hidden axis too (a 2-D DFT)."),
            Mistake(torch.fft.fft(x, dim=-1).real, "you transformed only along the hidden axis; FNet mixes tokens, "
                                                  "so the DFT must run along the sequence axis too."),
            Mistake(spectrum.abs(), "you took the magnitude |·|; FNet keeps the real part."),
            Mistake(spectrum.imag, "you kept the imaginary part; FNet keeps the real part."),
            Mistake(torch.fft.fftn(x).real, "you transformed over every axis, the batch axis too; only the "
                                            "sequence and hidden axes are mixed."),
        )
        expected = spectrum.real.to(dtype)
        if dtype == torch.float64 and isinstance(got, torch.Tensor) and got.shape == expected.shape and \
                torch.allclose(got, expected, atol=1e-4) and not torch.allclose(got, expected, rtol=1e-9, atol=1e-9):
            raise CheckFailure(f"Exercise 1.6 ({case}), your output: right to float32 precision only; for a float64 "
                               f"input build complex128 DFT matrices (dft_matrix(n, torch.complex128)).")
        diagnose(got, expected, exercise="1.6", case=case, mistakes=mistakes, atol=1e-4, rtol=1e-4)
    passed("1.6", "dft_matrix matches torch.fft on n = 1, 2, 5, 8 and fourier_mixing matches "
                  f"torch.fft.fft2(x).real on {len(cases)} cases (odd sizes, T=1, float64).")


__all__ = ["check_attention_weights", "check_softmax_backward", "check_attention_function",
           "check_multi_head_attention", "check_tiled_attention", "check_fourier_mixing", "causal_mask",
           "CheckFailure", "LearnerError"]
