"""Held-out wrong answers for Chapter 01 (attention), each written as a learner writes the exercise cell.

The helpers a learner's cell uses from earlier cells (``attention_weights``, ``softmax_backward``, ``attention``,
``dft_matrix``) are the chapter's reference solutions, so each answer holds exactly one mistake.
"""
import math

import torch
import torch.nn as nn
from einops import rearrange

from tests.heldout.report import Registry, solution_namespace

REF = solution_namespace("01_attention", ("def attention(",))
attention_weights = REF["attention_weights"]
softmax_backward = REF["softmax_backward"]
attention = REF["attention"]
dft_matrix = REF["dft_matrix"]
fourier_mixing = REF["fourier_mixing"]

REGISTRY = Registry("01", {
    "1.1": ("check_attention_weights", "attention_weights"),
    "1.2": ("check_softmax_backward", "softmax_backward"),
    "1.3": ("check_attention_function", "AttentionFunction"),
    "1.4": ("check_multi_head_attention", "MultiHeadSelfAttention"),
    "1.5": ("check_tiled_attention", "tiled_attention"),
    "1.6": ("check_fourier_mixing", "dft_matrix"),  # the name of the first object; see arguments below
})
wrong = REGISTRY.wrong

with_reference_mixing = lambda dft: (dft, fourier_mixing)  # noqa: E731 - a wrong dft_matrix, the right mixing
with_reference_dft = lambda mixing: (dft_matrix, mixing)  # noqa: E731 - the right dft_matrix, a wrong mixing


# ----- Exercise 1.1: attention weights ------------------------------------------------------------------------

@wrong("1.1", "scaled the scores by √Tk (the number of keys, k.shape[-2]) instead of √d_k",
       names=[r"number of keys", r"(key|sequence) length", r"shape\[-2\]", r"√\s*T_?k", r"1\s*/\s*√\s*T"])
def weights_scale_by_keys(q, k, mask=None):
    d_k = k.shape[-2]
    scores = q @ k.transpose(-2, -1) / math.sqrt(d_k)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return scores.softmax(dim=-1)


@wrong("1.1", "added the boolean mask to the scores (as if it were an additive float mask) instead of -inf fill",
       names=[r"add(ed|ing)?\b.{0,40}mask", r"mask.{0,40}\badd(ed|ing|itive)?\b", r"additive",
              r"added [−-]?\d+ to the forbidden", r"boolean mask.{0,60}(−|-)\s*(inf|∞)"])
def weights_add_bool_mask(q, k, mask=None):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores + mask  # True -> +1, False -> +0
    return scores.softmax(dim=-1)


@wrong("1.1", "softmax by hand without subtracting the row maximum: exp overflows to inf/NaN for large scores",
       names=[r"(NaN|inf)[^.;]{0,30}(on|for) large scores", r"subtract\w* (each |the )?row'?s? max",
              r"softmax\(s\s*[−-]\s*max", r"numerical\w* (un)?stab"])
def weights_naive_exp(q, k, mask=None):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    e = torch.exp(scores)
    return e / e.sum(dim=-1, keepdim=True)


@wrong("1.1", "softmax over dim=1 (right only for 2-D inputs; the query axis for 3-D, the head axis for 4-D)",
       names=[r"sum to 1 over the keys", r"(normali[sz]\w*|softmax) over the keys,? not",
              r"(wrong|another|other) axis[^.]{0,40}softmax",
              r"softmax[^.]{0,40}(wrong|another|other) axis", r"dim\s*=\s*-1\b"])
def weights_softmax_dim1(q, k, mask=None):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return scores.softmax(dim=1)


@wrong("1.1", "masked by boolean indexing, scores[~mask] = -inf: fails when the mask only broadcasts",
       names=[r"masked_fill", r"(boolean|bool) (mask )?(used )?as an index",
              r"index\w* with (a|the) (boolean )?mask"])
def weights_boolean_index(q, k, mask=None):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores[~mask] = float("-inf")
    return scores.softmax(dim=-1)


@wrong("1.1", "used k.T (reverses every axis) instead of transposing the last two axes",
       names=[r"\.T\b", r"\.mT\b", r"transpose\(-2,\s*-1\)", r"last two ax",
              r"(every|all) ax[ie]s[^.]{0,30}(revers|transpos)", r"batch ax[ie]s[^.]{0,30}transpos"])
def weights_dot_T(q, k, mask=None):
    scores = q @ k.T / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return scores.softmax(dim=-1)


# ----- Exercise 1.2: softmax backward -------------------------------------------------------------------------

@wrong("1.2", "⟨g, p⟩ summed without keepdim: the (...,) result broadcasts along the last axis",
       names=[r"(sum|mean|⟨g, ?p⟩)[^.?]{0,60}(without|no|missing) keepdim",
              r"(without|no|missing) keepdim[^.?]{0,60}(sum|mean)", r"one number per row"])
def softmax_backward_no_keepdim(p, grad_p):
    return p * (grad_p - (grad_p * p).sum(dim=-1))


@wrong("1.2", "⟨g, p⟩ as a mean over the row instead of a sum (a factor 1/T)",
       names=[r"mean[^.]{0,30}(instead of|not|rather than)[^.]{0,10}sum", r"sum,? not (a |the )?mean",
              r"1\s*/\s*T\b", r"divid\w* by T\b"])
def softmax_backward_mean(p, grad_p):
    return p * (grad_p - (grad_p * p).mean(dim=-1, keepdim=True))


@wrong("1.2", "used the diagonal of the Jacobian only, p(1 − p) ⊙ g, dropping the −p pᵀ cross terms",
       names=[r"diagonal", r"cross[- ]terms", r"off[- ]diagonal", r"p\s*p\s*[ᵀ⊤^T]", r"outer"])
def softmax_backward_diagonal(p, grad_p):
    return p * (1 - p) * grad_p


@wrong("1.2", "the sign of ⟨g, p⟩ inside the bracket: p ⊙ (g + ⟨g, p⟩)",
       names=[r"\bsign\b", r"\bplus\b", r"\+\s*⟨"])
def softmax_backward_plus(p, grad_p):
    return p * (grad_p + (grad_p * p).sum(dim=-1, keepdim=True))


@wrong("1.2", "computed the result in place in p (p *= ...): right once, but overwrites the saved softmax output",
       names=[r"in[- ]place", r"overwr\w*", r"modifi\w*", r"mutat\w*", r"changed (your |its |the )?input"],
       late=True)
def softmax_backward_in_place(p, grad_p):
    p *= grad_p - (grad_p * p).sum(dim=-1, keepdim=True)
    return p


# ----- Exercise 1.3: attention as an autograd.Function --------------------------------------------------------

@wrong("1.3", "dK = c · dS Q without transposing dS (right shape only when Tq = Tk, wrong values even then)",
       names=[r"dS\s*[ᵀ⊤]", r"dS\^T", r"dS\.T", r"transpos\w*[^.?]{0,30}\bdS\b", r"\bdS\b[^.?]{0,30}transpos",
              r"\bdK\b[^.?]{0,40}transpos", r"transpos\w*[^.?]{0,40}\bdK\b"])
class AttentionFunctionNoTransposeDK(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v):
        p = attention_weights(q, k)
        ctx.save_for_backward(q, k, v, p)
        return p @ v

    @staticmethod
    def backward(ctx, grad_out):
        q, k, v, p = ctx.saved_tensors
        scale = 1 / math.sqrt(q.shape[-1])
        grad_v = p.transpose(-2, -1) @ grad_out
        grad_p = grad_out @ v.transpose(-2, -1)
        grad_scores = softmax_backward(p, grad_p)
        return scale * grad_scores @ k, scale * grad_scores @ q, grad_v


@wrong("1.3", "dV = dOᵀ P: the transpose of the right dV, shaped (d_v, Tk)",
       names=[r"\bdV (is|was|has|must|should|needs)", r"grad_v", r"P\s*[ᵀ⊤]\s*dO", r"P\^T\s*dO",
              r"dO\s*[ᵀ⊤]\s*P", r"\(d_?v, ?T_?k\)", r"\bdV\b[^.?]{0,40}transpos",
              r"transpos\w*[^.?]{0,40}\bdV\b", r"gradient at index 2"])
class AttentionFunctionDVTransposed(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v):
        p = attention_weights(q, k)
        ctx.save_for_backward(q, k, v, p)
        return p @ v

    @staticmethod
    def backward(ctx, grad_out):
        q, k, v, p = ctx.saved_tensors
        scale = 1 / math.sqrt(q.shape[-1])
        grad_v = grad_out.transpose(-2, -1) @ p
        grad_scores = softmax_backward(p, grad_out @ v.transpose(-2, -1))
        return scale * grad_scores @ k, scale * grad_scores.transpose(-2, -1) @ q, grad_v


@wrong("1.3", "the backward scale is 1/d_k instead of 1/√d_k (the forward pass is right)",
       names=[r"1/√d_?k twice", r"1\s*/\s*d_?k\b[^.]{0,30}(instead of|not|in place of)[^.]{0,10}1\s*/\s*√",
              r"(instead of|not|in place of) 1\s*/\s*√\s*d_?k", r"square root of d_?k"])
class AttentionFunctionScaleOverD(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v):
        p = attention_weights(q, k)
        ctx.save_for_backward(q, k, v, p)
        return p @ v

    @staticmethod
    def backward(ctx, grad_out):
        q, k, v, p = ctx.saved_tensors
        scale = 1 / q.shape[-1]
        grad_v = p.transpose(-2, -1) @ grad_out
        grad_scores = softmax_backward(p, grad_out @ v.transpose(-2, -1))
        return scale * grad_scores @ k, scale * grad_scores.transpose(-2, -1) @ q, grad_v


@wrong("1.3", "dP = V dOᵀ, the transpose of dO Vᵀ (same shape when Tq = Tk)",
       names=[r"\bdP (is|was|has|must|should|needs)", r"dP\s*=\s*dO", r"dO\s*V\s*[ᵀ⊤]", r"dO\s*V\^T",
              r"\bdP\b[^.?]{0,40}transpos", r"transpos\w*[^.?]{0,40}\bdP\b"])
class AttentionFunctionDPTransposed(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v):
        p = attention_weights(q, k)
        ctx.save_for_backward(q, k, v, p)
        return p @ v

    @staticmethod
    def backward(ctx, grad_out):
        q, k, v, p = ctx.saved_tensors
        scale = 1 / math.sqrt(q.shape[-1])
        grad_v = p.transpose(-2, -1) @ grad_out
        grad_p = v @ grad_out.transpose(-2, -1)
        grad_scores = softmax_backward(p, grad_p)
        return scale * grad_scores @ k, scale * grad_scores.transpose(-2, -1) @ q, grad_v


@wrong("1.3", "returned the gradients as (dV, dK, dQ) instead of in forward's order (dQ, dK, dV)",
       names=[r"(dV|grad_v)[^.?]{0,40}(where|in place of|instead of)[^.?]{0,20}(dQ|grad_q)",
              r"(dQ|grad_q)[^.?]{0,40}(where|in place of|instead of)[^.?]{0,20}(dV|grad_v)",
              r"where dQ belongs", r"order \(?dQ, dK, dV\)?", r"(returned|in) the wrong order",
              r"\b(dQ|dV)\b[^.?]{0,30}swapped", r"swapped[^.?]{0,30}\b(dQ|dV)\b"])
class AttentionFunctionReversedOrder(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v):
        p = attention_weights(q, k)
        ctx.save_for_backward(q, k, v, p)
        return p @ v

    @staticmethod
    def backward(ctx, grad_out):
        q, k, v, p = ctx.saved_tensors
        scale = 1 / math.sqrt(q.shape[-1])
        grad_v = p.transpose(-2, -1) @ grad_out
        grad_scores = softmax_backward(p, grad_out @ v.transpose(-2, -1))
        grad_q = scale * grad_scores @ k
        grad_k = scale * grad_scores.transpose(-2, -1) @ q
        return grad_v, grad_k, grad_q


# ----- Exercise 1.4: multi-head self-attention ----------------------------------------------------------------

class _MultiHeadBase(nn.Module):
    def __init__(self, d_model, n_heads):
        super().__init__()
        assert d_model % n_heads == 0, f"d_model={d_model} must be a multiple of n_heads={n_heads}"
        self.n_heads = n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)


@wrong("1.4", "causal mask built with .triu(): each token attends to the future instead of the past",
       names=[r"tril", r"triu", r"future", r"upper", r"lower[- ]triang", r"above the diagonal"])
class MultiHeadTriu(_MultiHeadBase):
    def forward(self, x, causal=False, key_padding_mask=None):
        B, T, D = x.shape
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        q, k, v = (rearrange(t, "B T (H Dh) -> B H T Dh", H=self.n_heads) for t in (q, k, v))
        may_attend = torch.ones(T, T, dtype=torch.bool, device=x.device)
        if causal:
            may_attend = may_attend.triu()
        if key_padding_mask is not None:
            may_attend = may_attend & ~key_padding_mask[:, None, None, :]
        heads = attention(q, k, v, may_attend)
        return self.out(rearrange(heads, "B H T Dh -> B T (H Dh)"))


@wrong("1.4", "padding mask indexed [:, None, :] (B, 1, T): no head axis, so batch lines up with heads",
       names=[r"head ax", r"\[:, None, None, :\]", r"\(B, 1, 1, T\)",
              r"(batch|\bB\b)[^.]{0,40}(lin\w* up|aligned) with[^.]{0,20}(head|\bH\b)"])
class MultiHeadPaddingNoHeadAxis(_MultiHeadBase):
    def forward(self, x, causal=False, key_padding_mask=None):
        B, T, D = x.shape
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        q, k, v = (rearrange(t, "B T (H Dh) -> B H T Dh", H=self.n_heads) for t in (q, k, v))
        may_attend = torch.ones(T, T, dtype=torch.bool, device=x.device)
        if causal:
            may_attend = may_attend.tril()
        if key_padding_mask is not None:
            may_attend = may_attend & ~key_padding_mask[:, None, :]  # (B, T, T)
        heads = attention(q, k, v, may_attend)
        return self.out(rearrange(heads, "B H T Dh -> B T (H Dh)"))


@wrong("1.4", "split the heads with reshape(B, H, T, Dh) straight from (B, T, D): mixes tokens and features",
       names=[r"split\w*.{0,30}heads?", r"heads?.{0,30}split", r"\(H Dh\)", r"\(B, ?T, ?H, ?Dh\)",
              r"reshape.{0,40}(split|heads)", r"mix\w* (the )?tokens", r"tokens? and features"])
class MultiHeadReshapeSplit(_MultiHeadBase):
    def forward(self, x, causal=False, key_padding_mask=None):
        B, T, D = x.shape
        H = self.n_heads
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        q, k, v = (t.reshape(B, H, T, D // H) for t in (q, k, v))
        may_attend = torch.ones(T, T, dtype=torch.bool, device=x.device)
        if causal:
            may_attend = may_attend.tril()
        if key_padding_mask is not None:
            may_attend = may_attend & ~key_padding_mask[:, None, None, :]
        heads = attention(q, k, v, may_attend)
        return self.out(rearrange(heads, "B H T Dh -> B T (H Dh)"))


@wrong("1.4", "causal mask built as a float tensor, torch.ones(T, T).tril(): ~mask fails on floats",
       names=[r"bool(ean)? mask", r"torch\.bool", r"float mask", r"mask[^.]{0,30}(float|dtype)"])
class MultiHeadFloatMask(_MultiHeadBase):
    def forward(self, x, causal=False, key_padding_mask=None):
        B, T, D = x.shape
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        q, k, v = (rearrange(t, "B T (H Dh) -> B H T Dh", H=self.n_heads) for t in (q, k, v))
        may_attend = None
        if causal:
            may_attend = torch.ones(T, T).tril()
        if key_padding_mask is not None:
            keep = ~key_padding_mask[:, None, None, :]
            may_attend = keep if may_attend is None else may_attend * keep
        heads = attention(q, k, v, may_attend)
        return self.out(rearrange(heads, "B H T Dh -> B T (H Dh)"))


@wrong("1.4", "if causal: ... elif key_padding_mask: ... — the padding mask is dropped when both are given",
       names=[r"both (masks|the causal)", r"both[^.]{0,20}(causal|padding)", r"combin", r"together",
              r"padding.{0,40}(ignored|dropped|missing|not applied)",
              r"causal.{0,20}and.{0,20}padding", r"key_padding_mask was not applied"])
class MultiHeadCausalOrPadding(_MultiHeadBase):
    def forward(self, x, causal=False, key_padding_mask=None):
        B, T, D = x.shape
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        q, k, v = (rearrange(t, "B T (H Dh) -> B H T Dh", H=self.n_heads) for t in (q, k, v))
        if causal:
            may_attend = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()
        elif key_padding_mask is not None:
            may_attend = ~key_padding_mask[:, None, None, :]
        else:
            may_attend = None
        heads = attention(q, k, v, may_attend)
        return self.out(rearrange(heads, "B H T Dh -> B T (H Dh)"))


@wrong("1.4", "merged the heads with heads.reshape(B, T, D) without moving H next to Dh first",
       names=[r"merg", r"concat", r"B H T Dh -> B T", r"reshape[^.]{0,40}(merg|heads back)"])
class MultiHeadReshapeMerge(_MultiHeadBase):
    def forward(self, x, causal=False, key_padding_mask=None):
        B, T, D = x.shape
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        q, k, v = (rearrange(t, "B T (H Dh) -> B H T Dh", H=self.n_heads) for t in (q, k, v))
        may_attend = torch.ones(T, T, dtype=torch.bool, device=x.device)
        if causal:
            may_attend = may_attend.tril()
        if key_padding_mask is not None:
            may_attend = may_attend & ~key_padding_mask[:, None, None, :]
        heads = attention(q, k, v, may_attend)  # (B, H, T, Dh)
        return self.out(heads.reshape(B, T, D))


# ----- Exercise 1.5: tiled attention --------------------------------------------------------------------------

@wrong("1.5", "updated running_max before computing the correction, so e^{m − m'} is always 1",
       names=[r"e\^\{?\s*\(?m\s*[−-]\s*m", r"correction", r"rescal", r"multipl\w* by e\^",
              r"before (you )?updat"])
def tiled_correction_after_update(q, k, v, block_size=256):
    scale = 1 / math.sqrt(q.shape[-1])
    running_max = torch.full(q.shape[:-1] + (1,), -math.inf, dtype=q.dtype)
    running_sum = torch.zeros_like(running_max)
    output = torch.zeros(q.shape[:-1] + v.shape[-1:], dtype=q.dtype)
    for start in range(0, k.shape[-2], block_size):
        scores = q @ k[..., start:start + block_size, :].transpose(-2, -1) * scale
        new_max = torch.maximum(running_max, scores.amax(dim=-1, keepdim=True))
        running_max = new_max
        correction = torch.exp(running_max - new_max)
        exp_scores = torch.exp(scores - new_max)
        running_sum = correction * running_sum + exp_scores.sum(dim=-1, keepdim=True)
        output = correction * output + exp_scores @ v[..., start:start + block_size, :]
    return output / running_sum


@wrong("1.5", "sliced each block as start:start + block_size - 1, skipping one key per block",
       names=[r"skip", r"off[- ]by[- ]one", r"every key", r"keys? [\d, ]+[^.]{0,30}(no weight|never visit)",
              r"keys? (were|was|is|are) (skipped|left out|missing)", r"block.{0,30}(miss|drop)"])
def tiled_skip_one_key(q, k, v, block_size=256):
    scale = 1 / math.sqrt(q.shape[-1])
    running_max = torch.full(q.shape[:-1] + (1,), -math.inf, dtype=q.dtype)
    running_sum = torch.zeros_like(running_max)
    output = torch.zeros(q.shape[:-1] + v.shape[-1:], dtype=q.dtype)
    for start in range(0, k.shape[-2], block_size):
        end = min(start + block_size - 1, k.shape[-2])
        scores = q @ k[..., start:end, :].transpose(-2, -1) * scale
        new_max = torch.maximum(running_max, scores.amax(dim=-1, keepdim=True))
        correction = torch.exp(running_max - new_max)
        exp_scores = torch.exp(scores - new_max)
        running_sum = correction * running_sum + exp_scores.sum(dim=-1, keepdim=True)
        output = correction * output + exp_scores @ v[..., start:end, :]
        running_max = new_max
    return output / running_sum


@wrong("1.5", "block sums without keepdim: running_sum becomes (..., Tq, Tq) by broadcasting",
       names=[r"(sum|running_sum|ℓ)[^.?]{0,60}(without|no|missing) keepdim",
              r"(without|no|missing) keepdim[^.?]{0,60}(sum|running_sum|ℓ)", r"\(\.\.\., ?Tq, ?1\)"])
def tiled_sum_no_keepdim(q, k, v, block_size=256):
    scale = 1 / math.sqrt(q.shape[-1])
    running_max = torch.full(q.shape[:-1] + (1,), -math.inf, dtype=q.dtype)
    running_sum = torch.zeros_like(running_max)
    output = torch.zeros(q.shape[:-1] + v.shape[-1:], dtype=q.dtype)
    for start in range(0, k.shape[-2], block_size):
        scores = q @ k[..., start:start + block_size, :].transpose(-2, -1) * scale
        new_max = torch.maximum(running_max, scores.amax(dim=-1, keepdim=True))
        correction = torch.exp(running_max - new_max)
        exp_scores = torch.exp(scores - new_max)
        running_sum = correction * running_sum + exp_scores.sum(dim=-1)
        output = correction * output + exp_scores @ v[..., start:start + block_size, :]
        running_max = new_max
    return output / running_sum


@wrong("1.5", "hard-coded the head width: scale = 1/√64, right only for d = 64",
       names=[r"hard[- ]?cod", r"1\s*/\s*√\s*64", r"√\s*64",
              r"(hard[- ]?cod\w*|fixed|constant)[^.]{0,20}\b64\b", r"head width", r"q\.shape\[-1\]"])
def tiled_hardcoded_scale(q, k, v, block_size=256):
    scale = 1 / math.sqrt(64)
    running_max = torch.full(q.shape[:-1] + (1,), -math.inf, dtype=q.dtype)
    running_sum = torch.zeros_like(running_max)
    output = torch.zeros(q.shape[:-1] + v.shape[-1:], dtype=q.dtype)
    for start in range(0, k.shape[-2], block_size):
        scores = q @ k[..., start:start + block_size, :].transpose(-2, -1) * scale
        new_max = torch.maximum(running_max, scores.amax(dim=-1, keepdim=True))
        correction = torch.exp(running_max - new_max)
        exp_scores = torch.exp(scores - new_max)
        running_sum = correction * running_sum + exp_scores.sum(dim=-1, keepdim=True)
        output = correction * output + exp_scores @ v[..., start:start + block_size, :]
        running_max = new_max
    return output / running_sum


@wrong("1.5", "block maximum taken over the queries (amax(dim=-2)) instead of over the block's keys",
       names=[r"max\w*[^.]{0,30}over the (queries|query axis)", r"per[- ]query (max|maximum)",
              r"running_max[^.]{0,40}(per query|\(\.\.\., ?Tq, ?1\))", r"amax", r"dim\s*=\s*-1\b",
              r"\(\.\.\., ?Tq, ?1\)"])
def tiled_max_over_queries(q, k, v, block_size=256):
    scale = 1 / math.sqrt(q.shape[-1])
    running_max = torch.full(q.shape[:-1] + (1,), -math.inf, dtype=q.dtype)
    running_sum = torch.zeros_like(running_max)
    output = torch.zeros(q.shape[:-1] + v.shape[-1:], dtype=q.dtype)
    for start in range(0, k.shape[-2], block_size):
        scores = q @ k[..., start:start + block_size, :].transpose(-2, -1) * scale
        new_max = torch.maximum(running_max, scores.amax(dim=-2, keepdim=True))
        correction = torch.exp(running_max - new_max)
        exp_scores = torch.exp(scores - new_max)
        running_sum = correction * running_sum + exp_scores.sum(dim=-1, keepdim=True)
        output = correction * output + exp_scores @ v[..., start:start + block_size, :]
        running_max = new_max
    return output / running_sum


@wrong("1.5", "kept every block's exp-scores in a list and normalised at the end: right values, O(T²) memory",
       names=[r"memory", r"quadratic", r"materiali", r"T\s*[×x]\s*T\b", r"T²", r"Tq\s*[×x]\s*Tk", r"\(Tq, ?Tk\)"])
def tiled_keeps_all_blocks(q, k, v, block_size=256):
    scale = 1 / math.sqrt(q.shape[-1])
    running_max = torch.full(q.shape[:-1] + (1,), -math.inf, dtype=q.dtype)
    blocks = []
    for start in range(0, k.shape[-2], block_size):
        scores = q @ k[..., start:start + block_size, :].transpose(-2, -1) * scale
        running_max = torch.maximum(running_max, scores.amax(dim=-1, keepdim=True))
        blocks.append(scores)
    running_sum = torch.zeros_like(running_max)
    output = torch.zeros(q.shape[:-1] + v.shape[-1:], dtype=q.dtype)
    for index, scores in enumerate(blocks):
        exp_scores = torch.exp(scores - running_max)
        start = index * block_size
        running_sum = running_sum + exp_scores.sum(dim=-1, keepdim=True)
        output = output + exp_scores @ v[..., start:start + block_size, :]
    return output / running_sum


# ----- Exercise 1.6: FNet's Fourier mixing --------------------------------------------------------------------

@wrong("1.6", "dft_matrix: the angle computed in float32 (integer jk, float32 arithmetic): inaccurate for large n",
       names=[r"float32", r"precision", r"large n"],
       arguments=with_reference_mixing)
def dft_float32_angle(n, dtype=torch.complex64):
    j = torch.arange(n)
    angle = -2 * math.pi * torch.outer(j, j) / n  # float32
    return torch.polar(torch.ones_like(angle), angle).to(dtype)


@wrong("1.6", "dft_matrix: e^{−πi jk/n}, the factor 2 of 2π missing",
       names=[r"factor (of )?2\b", r"2\s*π[^.]{0,20}(not|instead of)\s*π", r"[−-]?π\s*/\s*n\b",
              r"missing[^.]{0,20}\b2\b"],
       arguments=with_reference_mixing)
def dft_missing_two(n, dtype=torch.complex64):
    j = torch.arange(n, dtype=torch.float64)
    return torch.exp(-1j * math.pi * torch.outer(j, j) / n).to(dtype)


@wrong("1.6", "dft_matrix normalised by 1/√n (the unitary DFT), which eq. (1.12) does not have",
       names=[r"√\s*n", r"sqrt\(n\)", r"no normali[sz]ation", r"normali[sz]ed by", r"1\s*/\s*√\s*n",
              r"unitary", r"ortho"],
       arguments=with_reference_mixing)
def dft_unitary(n, dtype=torch.complex64):
    j = torch.arange(n, dtype=torch.float64)
    return (torch.exp(-2j * math.pi * torch.outer(j, j) / n) / math.sqrt(n)).to(dtype)


@wrong("1.6", "fourier_mixing: took the real part after the sequence transform and again after the hidden one",
       names=[r"real part.{0,60}(once|end|both|last|between|intermediate|early)", r"only at the end",
              r"\bRe\(.{0,30}Re\(", r"between the (two )?transforms", r"\.real once"],
       arguments=with_reference_dft, learner_name="fourier_mixing")
def mixing_real_twice(x):
    T, D = x.shape[-2:]
    complex_dtype = torch.complex128 if x.dtype == torch.float64 else torch.complex64
    W_T, W_D = dft_matrix(T, complex_dtype), dft_matrix(D, complex_dtype)
    mixed_tokens = (W_T @ x.to(complex_dtype)).real
    return (mixed_tokens.to(complex_dtype) @ W_D).real.to(x.dtype)


@wrong("1.6", "fourier_mixing: T, D = x.shape — works only for a single (T, D) sequence, not (..., T, D)",
       names=[r"leading ax", r"\(\.\.\., ?T, ?D\)", r"shape\[-2:\]", r"batch(ed)? (input|ax[ie]s)",
              r"more than two", r"3-?D"],
       arguments=with_reference_dft, learner_name="fourier_mixing")
def mixing_two_dimensional_only(x):
    T, D = x.shape
    complex_dtype = torch.complex128 if x.dtype == torch.float64 else torch.complex64
    W_T, W_D = dft_matrix(T, complex_dtype), dft_matrix(D, complex_dtype)
    return (W_T @ x.to(complex_dtype) @ W_D).real.to(x.dtype)


@wrong("1.6", "fourier_mixing: W_D @ x @ W_T, the matrices on the wrong sides (fails when T ≠ D)",
       names=[r"wrong sides?", r"W_T\s*(·|@)?\s*(x|X)\b", r"W_D.{0,20}W_T", r"(x|X)\s*(·|@)?\s*W_D",
              r"sequence axis.{0,40}hidden|hidden axis.{0,40}sequence"],
       arguments=with_reference_dft, learner_name="fourier_mixing")
def mixing_wrong_sides(x):
    T, D = x.shape[-2:]
    complex_dtype = torch.complex128 if x.dtype == torch.float64 else torch.complex64
    W_T, W_D = dft_matrix(T, complex_dtype), dft_matrix(D, complex_dtype)
    return (W_D @ x.to(complex_dtype) @ W_T).real.to(x.dtype)
