"""Fifth blind held-out set for Chapter 01 (attention): wrong answers written as a learner writes the exercise cell.

Written without reading the checks or seeing any of their messages, and without repeating a mistake of the first
(``wrong_ch01.py``), second (``blind_ch01.py``), third (``third_ch01.py``) or fourth (``fourth_ch01.py``) set. The
helpers a learner's cell uses from earlier cells (``attention_weights``, ``softmax_backward``, ``attention``,
``dft_matrix``, ``fourier_mixing``) are the chapter's reference solutions, so each answer holds exactly one mistake.
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

@wrong("1.1", "softmax taken first, then divided by √d_k: each row of weights sums to 1/√d_k instead of 1",
       names=[r"(scal\w*|divid\w*|√\s*d_?k|sqrt\(d_?k\))[^.?]{0,40}(before|ahead of) (taking |applying )?(the )?soft",
              r"(scal\w*|divid\w*|√\s*d_?k)[^.?]{0,30}\bafter (the )?softmax",
              r"(inside|within|into) the softmax",
              r"rows?[^.?]{0,30}(do not|don't|no longer|does not|doesn't) sum to (1|one)\b",
              r"sums? to 1\s*/\s*(√\s*d_?k|sqrt)",
              r"(order|ordering) of (the )?(scal\w*|softmax|operations)"])
def weights_scale_after_softmax(q, k, mask=None):
    d_k = q.shape[-1]
    scores = q @ k.transpose(-2, -1)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return scores.softmax(dim=-1) / math.sqrt(d_k)


@wrong("1.1", "forbidden scores filled with float('inf'), the minus sign forgotten: +∞ − ∞ = NaN in the softmax",
       names=[r"(\+|positive|plus)\s*(inf\b|∞|infinity)", r"minus sign", r"sign of (the )?(fill|infinity|inf\b|∞)",
              r"float\(\s*[\"']-inf[\"']\s*\)", r"negative infinity",
              r"[−-]\s*(inf\b|∞)[^.?]{0,30}(not|instead of|rather than)\s*\+?\s*(inf\b|∞)",
              r"(not|instead of|rather than)\s*(\+\s*)?(inf\b|∞)[^.?]{0,10}(but|use)?\s*[−-]\s*(inf\b|∞)"])
def weights_positive_infinity(q, k, mask=None):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("inf"))
    return scores.softmax(dim=-1)


@wrong("1.1", "scores with torch.einsum('bqd,bkd->bqk'): exactly one batch axis, fails for 2-D or (B, H, T, d) inputs",
       names=[r"(any number of|arbitrary|several|extra|more) (leading |batch )+ax[ie]s", r"leading (batch )?ax[ie]s",
              r"ellipsis", r"einsum[^.?]{0,40}(\.\.\.|…|ellipsis|batch ax|leading)",
              r"(exactly|only) (one|a single) batch ax", r"hard-?coded[^.?]{0,30}(ax[ie]s|batch|dimensions|three)",
              r"(assum\w*|only works?)[^.?]{0,30}(3-?D|three[- ]dimensional|one batch)"])
def weights_einsum_one_batch_axis(q, k, mask=None):
    scores = torch.einsum("bqd,bkd->bqk", q, k) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return scores.softmax(dim=-1)


@wrong("1.1", "scale written d_k ** (1 // 2): floor division makes the exponent 0, so the scores are not scaled",
       names=[r"floor division", r"integer division", r"\*\*\s*0\.5", r"math\.sqrt",
              r"\b(no|not|never|without)\b[^.?]{0,20}\bscal(ed|ing)\b",
              r"√\s*d_?k[^.?]{0,30}(missing|not applied|never applied|left out)",
              r"(exponent|power)[^.?]{0,20}(is |equals |of )?(0|zero)\b",
              r"(scale|divisor)[^.?]{0,20}(is|equals|of) 1\b"])
def weights_floor_division_exponent(q, k, mask=None):
    d_k = q.shape[-1]
    scores = q @ k.transpose(-2, -1) / d_k ** (1 // 2)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return scores.softmax(dim=-1)


# ----- Exercise 1.2: softmax backward -------------------------------------------------------------------------

@wrong("1.2", "built the Jacobian diag(p) − p pᵀ of eq. (1.4) with torch.diag / torch.outer: works for one 1-D row "
              "only",
       names=[r"jacobian", r"(without|never|not) (building|forming|materiali[sz]ing)",
              r"batch\w*", r"(any number of|leading) (batch )?ax[ie]s",
              r"(only|just) (works? )?for (a single|one|1-?D)",
              r"diag_embed", r"torch\.(diag|outer)\b[^.?]{0,40}(1-?D|vectors?|batch)"])
def softmax_backward_full_jacobian(p, grad_p):
    J = torch.diag(p) - torch.outer(p, p)
    return J @ grad_p


@wrong("1.2", "g − p ⊙ ⟨g, p⟩: the factor p dropped from the first term (the mirror of p ⊙ g − ⟨g, p⟩)",
       names=[r"(first|g) term[^.?]{0,40}(factor|multipl\w*|missing|without|weighted)",
              r"(missing|without|forgot\w*|drop\w*)[^.?]{0,30}\bp\b[^.?]{0,20}(first|on g|g term|in front)",
              r"\bg\b (is )?not (multiplied|weighted|scaled) by p",
              r"multipl\w* (the )?(whole|entire) (bracket|difference|expression) by p",
              r"\bp\b[^.?]{0,20}(multiplies|outside|in front of) (the )?(whole|entire|both)"])
def softmax_backward_first_term_unweighted(p, grad_p):
    return grad_p - p * (grad_p * p).sum(dim=-1, keepdim=True)


@wrong("1.2", "a loop over the first axis with a plain .sum() inside: per row only for 2-D; 1-D or 3-D come out wrong",
       names=[r"(loop\w*|iterat\w*)[^.?]{0,40}(first|leading|outer) ax", r"first ax[ie]s[^.?]{0,30}(rows?|loop)",
              r"(along|over) the last ax[ie]s", r"dim\s*=\s*-1",
              r"sum\w*[^.?]{0,30}(whole|entire|all) (the )?(matrix|block|slice|sub-?tensor)",
              r"(assum\w*|only works?)[^.?]{0,30}(2-?D|two[- ]dimensional)"])
def softmax_backward_loop_over_first_axis(p, grad_p):
    grad_s = torch.empty_like(p)
    for i in range(p.shape[0]):
        grad_s[i] = p[i] * (grad_p[i] - (grad_p[i] * p[i]).sum())
    return grad_s


@wrong("1.2", "⟨g, p⟩ with torch.einsum('ij,ij->i')[:, None]: exactly two axes, fails for a single row or a batch",
       names=[r"(any number of|arbitrary|several|extra) (leading |batch )+ax[ie]s", r"leading (batch )?ax[ie]s",
              r"ellipsis", r"einsum[^.?]{0,40}(\.\.\.|…|ellipsis|batch|leading)",
              r"hard-?coded[^.?]{0,30}(ax[ie]s|dimensions|two)",
              r"(assum\w*|only works?)[^.?]{0,30}(2-?D|two[- ]dimensional)",
              r"\.sum\(dim\s*=\s*-1"])
def softmax_backward_einsum_two_axes(p, grad_p):
    inner = torch.einsum("ij,ij->i", grad_p, p)[:, None]
    return p * (grad_p - inner)


# ----- Exercise 1.3: attention as an autograd.Function --------------------------------------------------------

@wrong("1.3", "ctx.saved_tensors() called like a method: it is an attribute (a tuple), so backward raises TypeError",
       names=[r"saved_tensors\b[^.?]{0,40}(attribute|property|not (a )?(method|function))",
              r"saved_tensors\b[^.?]{0,30}(without|no) (the )?(parenthes|\(\)|call)",
              r"(attribute|property),? not a (method|function)",
              r"(drop|remove|without) the (parenthes\w*|\(\))"])
class AttentionFunctionSavedTensorsCalled(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v):
        p = attention_weights(q, k)
        ctx.save_for_backward(q, k, v, p)
        return p @ v

    @staticmethod
    def backward(ctx, grad_out):
        q, k, v, p = ctx.saved_tensors()
        scale = 1 / math.sqrt(q.shape[-1])
        grad_v = p.transpose(-2, -1) @ grad_out
        grad_scores = softmax_backward(p, grad_out @ v.transpose(-2, -1))
        return scale * grad_scores @ k, scale * grad_scores.transpose(-2, -1) @ q, grad_v


@wrong("1.3", "the float scale 1/√d_k passed to ctx.save_for_backward, which only takes tensors",
       names=[r"(only|just) (tensors|takes tensors|for tensors)", r"tensors only",
              r"ctx\.\w+\s*=", r"(store|keep|save|attach|put)\w*[^.?]{0,30}(as an? )?(attribute|on ctx|in ctx)",
              r"(recompute|compute)\w*[^.?]{0,30}(scale|1\s*/\s*√|d_?k)[^.?]{0,30}(in|inside) backward",
              r"(float|number|scalar|python float)[^.?]{0,40}(not a tensor|attribute|ctx\.)"])
class AttentionFunctionSavesFloat(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v):
        p = attention_weights(q, k)
        ctx.save_for_backward(q, k, v, p, 1 / math.sqrt(q.shape[-1]))
        return p @ v

    @staticmethod
    def backward(ctx, grad_out):
        q, k, v, p, scale = ctx.saved_tensors
        grad_v = p.transpose(-2, -1) @ grad_out
        grad_scores = softmax_backward(p, grad_out @ v.transpose(-2, -1))
        return scale * grad_scores @ k, scale * grad_scores.transpose(-2, -1) @ q, grad_v


@wrong("1.3", "dP = O Vᵀ with the forward output O saved and used where the upstream gradient dO belongs",
       names=[r"\bdO\b[^.?]{0,30}(not|instead of|rather than|in place of)[^.?]{0,10}\bO\b",
              r"\bO\b[^.?]{0,30}(instead of|in place of|not|rather than)[^.?]{0,10}\bdO\b",
              r"grad_out\b[^.?]{0,30}(not|instead|rather)",
              r"(upstream|incoming) gradient[^.?]{0,40}(dP|V\s*[ᵀ⊤]|instead|not)",
              r"output[^.?]{0,20}(instead of|in place of|not|rather than) (the |its )?(upstream |incoming )?gradient"])
class AttentionFunctionOutputForGradient(torch.autograd.Function):
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
        grad_v = p.transpose(-2, -1) @ grad_out
        grad_p = out @ v.transpose(-2, -1)
        grad_scores = softmax_backward(p, grad_p)
        grad_q = scale * grad_scores @ k
        grad_k = scale * grad_scores.transpose(-2, -1) @ q
        return grad_q, grad_k, grad_v


@wrong("1.3", "dK = c · Qᵀ dS: the operands in the wrong order, the transpose of dK, shaped (d_k, Tk)",
       names=[r"dS\s*[ᵀ⊤]\s*Q", r"dS\^T\s*Q", r"\b(dK|grad_k|dL/dK)\b[^.?]{0,50}(transpos|\(T_?k, ?d)",
              r"Q\s*[ᵀ⊤]\s*dS[^.?]{0,30}(transpose|instead|not|rather)",
              r"operands?[^.?]{0,30}(swapped|reversed|order)",
              r"\(d_?k, ?T_?k\)[^.?]{0,30}(instead|not|rather)"])
class AttentionFunctionDKOperandsSwapped(torch.autograd.Function):
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
        grad_k = scale * q.transpose(-2, -1) @ grad_scores
        return grad_q, grad_k, grad_v


@wrong("1.3", "dS = P ⊙ dP written inline instead of calling softmax_backward: the − ⟨dP, P⟩ term of eq. (1.8) dropped",
       names=[r"softmax_backward", r"⟨\s*dP\s*,\s*P\s*⟩\s*(term )?(is )?(missing|dropped|forgotten|left out)",
              r"(missing|dropped|forgot\w*|without|left out)[^.?]{0,30}(⟨\s*dP|the (second|correction) term|row sum)",
              r"(subtract\w*|minus)[^.?]{0,30}(row|weighted) (sum|mean|average)",
              r"(diagonal|cross)[- ]terms?[^.?]{0,30}(jacobian|softmax)",
              r"(jacobian|softmax)[^.?]{0,30}cross[- ]terms?"])
class AttentionFunctionDSWithoutCorrection(torch.autograd.Function):
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
        grad_scores = p * grad_p
        return scale * grad_scores @ k, scale * grad_scores.transpose(-2, -1) @ q, grad_v


# ----- Exercise 1.4: multi-head self-attention ----------------------------------------------------------------

class _MultiHeadBase(nn.Module):
    def __init__(self, d_model, n_heads):
        super().__init__()
        assert d_model % n_heads == 0, f"d_model={d_model} must be a multiple of n_heads={n_heads}"
        self.n_heads = n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)


@wrong("1.4", "heads merged with heads.transpose(1, 2).view(B, T, D): view of a non-contiguous tensor raises",
       names=[r"\.contiguous\(\)", r"non-?contiguous", r"rearrange\(heads", r"memory layout",
              r"strides?[^.?]{0,30}transpos", r"transpos\w*[^.?]{0,30}strides?"])
class MultiHeadViewAfterTranspose(_MultiHeadBase):
    def forward(self, x, causal=False, key_padding_mask=None):
        B, T, D = x.shape
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        q, k, v = (rearrange(t, "B T (H Dh) -> B H T Dh", H=self.n_heads) for t in (q, k, v))
        may_attend = torch.ones(T, T, dtype=torch.bool, device=x.device)
        if causal:
            may_attend = may_attend.tril()
        if key_padding_mask is not None:
            may_attend = may_attend & ~key_padding_mask[:, None, None, :]
        heads = attention(q, k, v, may_attend)
        return self.out(heads.transpose(1, 2).view(B, T, D))


@wrong("1.4", "projected with x @ self.qkv.weight.T only: the bias of the packed projection (b_Q, b_K, b_V) dropped",
       names=[r"\bbias(es)?\b", r"\bb_?[QKV]\b", r"self\.qkv\(x\)", r"F\.linear\([^)]*bias",
              r"(call|use)\w*[^.?]{0,20}(the )?(layer|module|self\.qkv)\b[^.?]{0,20}(itself|directly|as a function)",
              r"affine (map|projection)[^.?]{0,30}(not|instead|rather)"])
class MultiHeadProjectionWithoutBias(_MultiHeadBase):
    def forward(self, x, causal=False, key_padding_mask=None):
        B, T, D = x.shape
        q, k, v = (x @ self.qkv.weight.T).chunk(3, dim=-1)
        q, k, v = (rearrange(t, "B T (H Dh) -> B H T Dh", H=self.n_heads) for t in (q, k, v))
        may_attend = torch.ones(T, T, dtype=torch.bool, device=x.device)
        if causal:
            may_attend = may_attend.tril()
        if key_padding_mask is not None:
            may_attend = may_attend & ~key_padding_mask[:, None, None, :]
        heads = attention(q, k, v, may_attend)
        return self.out(rearrange(heads, "B H T Dh -> B T (H Dh)"))


@wrong("1.4", "self.out applied to each head (B, H, T, Dh) before merging: W_O takes the concatenated width D",
       names=[r"(merg|concat\w*)[^.?]{0,40}(before|first)[^.?]{0,30}(W_?O|self\.out|out\b|output projection)",
              r"(W_?O|self\.out|output projection)[^.?]{0,40}(after|merged|concatenat\w*|width D\b|\(B, ?T, ?D\))",
              r"(per head|each head|every head)[^.?]{0,30}(W_?O|self\.out|output projection)",
              r"concat\(O_1"])
class MultiHeadOutBeforeMerge(_MultiHeadBase):
    def forward(self, x, causal=False, key_padding_mask=None):
        B, T, D = x.shape
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        q, k, v = (rearrange(t, "B T (H Dh) -> B H T Dh", H=self.n_heads) for t in (q, k, v))
        may_attend = torch.ones(T, T, dtype=torch.bool, device=x.device)
        if causal:
            may_attend = may_attend.tril()
        if key_padding_mask is not None:
            may_attend = may_attend & ~key_padding_mask[:, None, None, :]
        heads = attention(q, k, v, may_attend)
        return rearrange(self.out(heads), "B H T Dh -> B T (H Dh)")


@wrong("1.4", "may_attend &= ~key_padding_mask[:, None, None, :]: an in-place & cannot grow (T, T) to (B, 1, T, T)",
       names=[r"in[- ]place", r"&=", r"out[- ]of[- ]place", r"may_attend\s*=\s*may_attend\s*&",
              r"(grow|enlarge|expand)\w*[^.?]{0,40}(in[- ]place|&=|result)",
              r"(new|fresh) tensor[^.?]{0,30}(&|and|combin)"])
class MultiHeadInPlaceMaskCombine(_MultiHeadBase):
    def forward(self, x, causal=False, key_padding_mask=None):
        B, T, D = x.shape
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        q, k, v = (rearrange(t, "B T (H Dh) -> B H T Dh", H=self.n_heads) for t in (q, k, v))
        may_attend = torch.ones(T, T, dtype=torch.bool, device=x.device)
        if causal:
            may_attend = may_attend.tril()
        if key_padding_mask is not None:
            may_attend &= ~key_padding_mask[:, None, None, :]
        heads = attention(q, k, v, may_attend)
        return self.out(rearrange(heads, "B H T Dh -> B T (H Dh)"))


@wrong("1.4", "causal mask .tril(diagonal=1): each token may also attend to the next one, one step into the future",
       names=[r"diagonal\s*=\s*0\b", r"\btril\(\)", r"(next|following|one future) (token|position)",
              r"(future|ahead)[^.?]{0,30}(one|a single) (token|position|step)", r"j\s*(≤|<=)\s*i\b",
              r"(itself and|up to and including) (the )?(past|previous|earlier|itself|its own)",
              r"off[- ]by[- ]one", r"(leak\w*|see\w*|peek\w*)[^.?]{0,30}(future|next)", r"\bi\s*\+\s*1\b"])
class MultiHeadTrilOneAboveDiagonal(_MultiHeadBase):
    def forward(self, x, causal=False, key_padding_mask=None):
        B, T, D = x.shape
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        q, k, v = (rearrange(t, "B T (H Dh) -> B H T Dh", H=self.n_heads) for t in (q, k, v))
        may_attend = torch.ones(T, T, dtype=torch.bool, device=x.device)
        if causal:
            may_attend = may_attend.tril(diagonal=1)
        if key_padding_mask is not None:
            may_attend = may_attend & ~key_padding_mask[:, None, None, :]
        heads = attention(q, k, v, may_attend)
        return self.out(rearrange(heads, "B H T Dh -> B T (H Dh)"))


@wrong("1.4", "x @ self.qkv.weight + self.qkv.bias: nn.Linear stores its weight as (out, in), so it needs .T",
       names=[r"\(out(_features)?, ?in(_features)?\)", r"weight\.T\b", r"weight\.t\(\)", r"\.mT\b",
              r"transpos\w*[^.?]{0,30}(the )?(weight|W\b|W_?QKV)", r"(weight|W_?QKV)[^.?]{0,30}transpos",
              r"self\.qkv\(x\)", r"F\.linear"])
class MultiHeadWeightNotTransposed(_MultiHeadBase):
    def forward(self, x, causal=False, key_padding_mask=None):
        B, T, D = x.shape
        q, k, v = (x @ self.qkv.weight + self.qkv.bias).chunk(3, dim=-1)
        q, k, v = (rearrange(t, "B T (H Dh) -> B H T Dh", H=self.n_heads) for t in (q, k, v))
        may_attend = torch.ones(T, T, dtype=torch.bool, device=x.device)
        if causal:
            may_attend = may_attend.tril()
        if key_padding_mask is not None:
            may_attend = may_attend & ~key_padding_mask[:, None, None, :]
        heads = attention(q, k, v, may_attend)
        return self.out(rearrange(heads, "B H T Dh -> B T (H Dh)"))


# ----- Exercise 1.5: tiled attention --------------------------------------------------------------------------

@wrong("1.5", "ℓ accumulated without the factor e^{m − m'} (the output accumulator a is rescaled, the sum ℓ is not)",
       names=[r"(ℓ|running_sum|running sum|denominator|normali[sz]er|sum of (the )?exp\w*)[^.?]{0,50}"
              r"(rescal\w*|correct\w*|e\^\{?\s*\(?m\s*[−-]\s*m'|not (scaled|multiplied)|never (scaled|multiplied))",
              r"(rescal\w*|correction|e\^\{?\s*\(?m\s*[−-]\s*m')[^.?]{0,50}(ℓ\b|running_sum|running sum|denominator)",
              r"ℓ'\s*=\s*e"])
def tiled_sum_not_rescaled(q, k, v, block_size=256):
    scale = 1 / math.sqrt(q.shape[-1])
    running_max = torch.full(q.shape[:-1] + (1,), -math.inf, dtype=q.dtype, device=q.device)
    running_sum = torch.zeros_like(running_max)
    output = torch.zeros(q.shape[:-1] + v.shape[-1:], dtype=q.dtype, device=q.device)
    for start in range(0, k.shape[-2], block_size):
        k_block = k[..., start:start + block_size, :]
        v_block = v[..., start:start + block_size, :]
        scores = q @ k_block.transpose(-2, -1) * scale
        new_max = torch.maximum(running_max, scores.amax(dim=-1, keepdim=True))
        correction = torch.exp(running_max - new_max)
        exp_scores = torch.exp(scores - new_max)
        running_sum = running_sum + exp_scores.sum(dim=-1, keepdim=True)
        output = correction * output + exp_scores @ v_block
        running_max = new_max
    return output / running_sum


@wrong("1.5", "running maximum created as torch.full(q.shape[:-1], -inf): (..., Tq) without the trailing 1, so it "
              "broadcasts against each block's (..., Tq, 1) maximum into a (..., Tq, Tq) table",
       names=[r"\(\.\.\., ?T_?q, ?1\)", r"trailing (axis|dimension|1|singleton)",
              r"(extra|last|final) (axis|dimension) of (size|length) 1", r"\+\s*\(1,\)",
              r"\(\.\.\., ?T_?q, ?T_?q\)", r"running_max[^.?]{0,40}shape"])
def tiled_running_max_without_trailing_axis(q, k, v, block_size=256):
    scale = 1 / math.sqrt(q.shape[-1])
    running_max = torch.full(q.shape[:-1], -math.inf, dtype=q.dtype, device=q.device)
    running_sum = torch.zeros_like(running_max)
    output = torch.zeros(q.shape[:-1] + v.shape[-1:], dtype=q.dtype, device=q.device)
    for start in range(0, k.shape[-2], block_size):
        k_block = k[..., start:start + block_size, :]
        v_block = v[..., start:start + block_size, :]
        scores = q @ k_block.transpose(-2, -1) * scale
        new_max = torch.maximum(running_max, scores.amax(dim=-1, keepdim=True))
        correction = torch.exp(running_max - new_max)
        exp_scores = torch.exp(scores - new_max)
        running_sum = correction * running_sum + exp_scores.sum(dim=-1, keepdim=True)
        output = correction * output + exp_scores @ v_block
        running_max = new_max
    return output / running_sum


@wrong("1.5", "blocks sliced start:block_size instead of start:start + block_size: every block after the first is "
              "empty",
       names=[r"start\s*:\s*start\s*\+\s*block_size", r"start\s*\+\s*block_size",
              r"(slice|slic\w*)[^.?]{0,40}(end|stop|upper bound)[^.?]{0,30}(start|offset)",
              r"(only|just) the first block",
              r"(later|other|remaining|subsequent) blocks?[^.?]{0,30}(empty|ignored|skipped|never|missing)",
              r"empty (block|slice)"])
def tiled_slice_end_without_start(q, k, v, block_size=256):
    scale = 1 / math.sqrt(q.shape[-1])
    running_max = torch.full(q.shape[:-1] + (1,), -math.inf, dtype=q.dtype, device=q.device)
    running_sum = torch.zeros_like(running_max)
    output = torch.zeros(q.shape[:-1] + v.shape[-1:], dtype=q.dtype, device=q.device)
    for start in range(0, k.shape[-2], block_size):
        k_block = k[..., start:block_size, :]
        v_block = v[..., start:block_size, :]
        scores = q @ k_block.transpose(-2, -1) * scale
        new_max = torch.maximum(running_max, scores.amax(dim=-1, keepdim=True))
        correction = torch.exp(running_max - new_max)
        exp_scores = torch.exp(scores - new_max)
        running_sum = correction * running_sum + exp_scores.sum(dim=-1, keepdim=True)
        output = correction * output + exp_scores @ v_block
        running_max = new_max
    return output / running_sum


@wrong("1.5", "blocks from k.split(block_size): split cuts along dim 0 by default (the batch), not the keys' axis -2",
       names=[r"dim\s*=\s*-2", r"(key|sequence|T_?k|second[- ]to[- ]last) ax[ie]s",
              r"split\w*[^.?]{0,40}(first|batch|leading|default) (ax|dim)",
              r"(first|batch|leading) ax[ie]s[^.?]{0,30}split",
              r"(never|not) (really )?(tiled|split into blocks|blocked)", r"(one|a single) block",
              r"quadratic", r"\(T_?q, ?T_?k\)[^.?]{0,30}(formed|built|materiali[sz]ed|allocated)"])
def tiled_split_default_dim(q, k, v, block_size=256):
    scale = 1 / math.sqrt(q.shape[-1])
    running_max = torch.full(q.shape[:-1] + (1,), -math.inf, dtype=q.dtype, device=q.device)
    running_sum = torch.zeros_like(running_max)
    output = torch.zeros(q.shape[:-1] + v.shape[-1:], dtype=q.dtype, device=q.device)
    for k_block, v_block in zip(k.split(block_size), v.split(block_size)):
        scores = q @ k_block.transpose(-2, -1) * scale
        new_max = torch.maximum(running_max, scores.amax(dim=-1, keepdim=True))
        correction = torch.exp(running_max - new_max)
        exp_scores = torch.exp(scores - new_max)
        running_sum = correction * running_sum + exp_scores.sum(dim=-1, keepdim=True)
        output = correction * output + exp_scores @ v_block
        running_max = new_max
    return output / running_sum


@wrong("1.5", "exp_scores @ v: the whole v instead of the block's values v_block (shapes fit only with one block)",
       names=[r"v_block", r"(slice|block)[^.?]{0,20}of (the )?(v\b|V\b|values)",
              r"(values?|\bv\b)[^.?]{0,30}(not|never) (sliced|split|blocked)", r"(whole|full|entire) (v|V|value)",
              r"(matching|same|corresponding) (block|slice|rows) of (the )?(values|v\b)"])
def tiled_whole_v(q, k, v, block_size=256):
    scale = 1 / math.sqrt(q.shape[-1])
    running_max = torch.full(q.shape[:-1] + (1,), -math.inf, dtype=q.dtype, device=q.device)
    running_sum = torch.zeros_like(running_max)
    output = torch.zeros(q.shape[:-1] + v.shape[-1:], dtype=q.dtype, device=q.device)
    for start in range(0, k.shape[-2], block_size):
        k_block = k[..., start:start + block_size, :]
        scores = q @ k_block.transpose(-2, -1) * scale
        new_max = torch.maximum(running_max, scores.amax(dim=-1, keepdim=True))
        correction = torch.exp(running_max - new_max)
        exp_scores = torch.exp(scores - new_max)
        running_sum = correction * running_sum + exp_scores.sum(dim=-1, keepdim=True)
        output = correction * output + exp_scores @ v
        running_max = new_max
    return output / running_sum


# ----- Exercise 1.6: FNet's Fourier mixing --------------------------------------------------------------------

@wrong("1.6", "dft_matrix: torch.exp(−2π jk / n) with the imaginary unit i left out: a real, decaying matrix",
       names=[r"imaginary unit", r"\b1j\b", r"\bi\b[^.?]{0,20}(missing|forgot\w*|dropped|left out)",
              r"(missing|forgot\w*|without|drop\w*|left out)[^.?]{0,20}(the )?(imaginary|\bi\b|1j)",
              r"(real|decay\w*) (exponent|exponential|matrix)",
              r"(modulus|magnitude|absolute value)[^.?]{0,30}(not|isn't|is not|should be) 1",
              r"unit (modulus|magnitude|circle)", r"torch\.polar"],
       arguments=with_reference_mixing)
def dft_without_imaginary_unit(n, dtype=torch.complex64):
    j = torch.arange(n, dtype=torch.float64)
    return torch.exp(-2 * math.pi * torch.outer(j, j) / n).to(dtype)


@wrong("1.6", "fourier_mixing: W_T @ x @ W_D with x still real: a complex matrix times a real one raises",
       names=[r"x\.to\(\s*(torch\.)?complex", r"(convert|cast)\w*[^.?]{0,30}\bx\b[^.?]{0,20}(to )?(a )?complex",
              r"\bx\b[^.?]{0,30}(to|as|into) (a )?complex", r"(real|float) (tensor|input)[^.?]{0,30}complex",
              r"both[^.?]{0,20}complex"],
       arguments=with_reference_dft, learner_name="fourier_mixing")
def mixing_x_left_real(x):
    T, D = x.shape[-2:]
    complex_dtype = torch.complex128 if x.dtype == torch.float64 else torch.complex64
    W_T, W_D = dft_matrix(T, complex_dtype), dft_matrix(D, complex_dtype)
    return (W_T @ x @ W_D).real.to(x.dtype)


@wrong("1.6", "dft_matrix: torch.polar(torch.ones(n, n), angle): float32 ones with a float64 angle, polar raises",
       names=[r"ones_like\(\s*angle",
              r"(abs|modulus|magnitude|ones)[^.?]{0,40}(float64|same dtype as (the )?angle|double)",
              r"(float32|single)[^.?]{0,30}(ones|abs|modulus|magnitude)",
              r"(angle|abs)[^.?]{0,30}(same|matching) dtype[^.?]{0,30}(abs|angle|ones)"],
       arguments=with_reference_mixing)
def dft_polar_float32_ones(n, dtype=torch.complex64):
    j = torch.arange(n, dtype=torch.float64)
    angle = -2 * math.pi * torch.outer(j, j) / n
    return torch.polar(torch.ones(n, n), angle).to(dtype)


@wrong("1.6", "dft_matrix: j = torch.arange(n - 1), 'indices up to n − 1': an (n − 1, n − 1) matrix, one row short",
       names=[r"\(n, ?n\)", r"arange\(n\)", r"\bn (rows|entries|indices|values|frequencies)\b",
              r"0\s*(,|…|\.\.\.)\s*n\s*[−-]\s*1\b[^.?]{0,30}(inclusive|includ|n values|n entries)",
              r"off[- ]by[- ]one", r"(one|a) (row|column|index|entry|frequency) (short|missing|too few)",
              r"(excludes|exclusive|stops before)[^.?]{0,30}(end|n\b|stop)"],
       arguments=with_reference_mixing)
def dft_arange_n_minus_one(n, dtype=torch.complex64):
    j = torch.arange(n - 1, dtype=torch.float64)
    angle = -2 * math.pi * torch.outer(j, j) / n
    return torch.polar(torch.ones_like(angle), angle).to(dtype)


@wrong("1.6", "fourier_mixing: torch.view_as_real(...) for 'the real part': (…, T, D, 2), the imaginary part kept too",
       names=[r"\.real\b", r"real part", r"view_as_real[^.?]{0,40}(pair|last ax|\(re, ?im\)|imaginary|2\b)",
              r"(extra|trailing|last) ax[ie]s of (size|length) 2", r"\(re(al)?, ?im(ag)?\)",
              r"imaginary part[^.?]{0,30}(too|as well|also|kept)"],
       arguments=with_reference_dft, learner_name="fourier_mixing")
def mixing_view_as_real(x):
    T, D = x.shape[-2:]
    complex_dtype = torch.complex128 if x.dtype == torch.float64 else torch.complex64
    W_T, W_D = dft_matrix(T, complex_dtype), dft_matrix(D, complex_dtype)
    return torch.view_as_real(W_T @ x.to(complex_dtype) @ W_D).to(x.dtype)
