"""Third blind held-out set for Chapter 01 (attention): wrong answers written as a learner writes the exercise cell.

Written without reading the checks or seeing any of their messages, and without repeating a mistake of the first
(``wrong_ch01.py``) or the second (``blind_ch01.py``) set. The helpers a learner's cell uses from earlier cells
(``attention_weights``, ``softmax_backward``, ``attention``, ``dft_matrix``, ``fourier_mixing``) are the chapter's
reference solutions, so each answer holds exactly one mistake.
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

@wrong("1.1", "d_k = q.shape[1], counted from the front: right for a 2-D q, the Tq (3-D) or H (4-D) axis otherwise",
       names=[r"shape\[-1\]", r"last (axis|dim\w*)[^.?]{0,40}(d_?k|width|feature)",
              r"d_?k[^.?]{0,40}(last axis|last dim\w*|shape\[-1\])",
              r"(count|index)\w* (the axes )?from the (end|back|right)",
              r"(leading|batch) ax[ie]s[^.?]{0,40}(d_?k|scale|shape\[1\])", r"shape\[1\][^.?]{0,40}(not|isn't|is not)"])
def weights_dk_from_axis_one(q, k, mask=None):
    d_k = q.shape[1]
    scores = q @ k.transpose(-2, -1) / math.sqrt(d_k)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return scores.softmax(dim=-1)


@wrong("1.1", "mask applied after the softmax (weights * mask): the allowed weights no longer sum to 1",
       names=[r"(mask\w*|zero\w*)[^.?]{0,30}after (the )?softmax", r"before (the )?softmax", r"renormali[sz]",
              r"(do not|don't|no longer|not|never) sum to (one|1)\b", r"sums? to less than (one|1)\b",
              r"(zero\w*|mask\w*) (the )?(weights|probabilities)[^.?]{0,30}(instead of|rather than|not) (the )?scores"])
def weights_mask_after_softmax(q, k, mask=None):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    weights = scores.softmax(dim=-1)
    if mask is not None:
        weights = weights * mask
    return weights


@wrong("1.1", "softmax by hand, max subtracted, but the row sum taken without keepdim: it lines up with the keys",
       names=[r"(sum|denominator|normali[sz]\w*)[^.?]{0,50}(without|no|missing|forgot\w*) keepdim",
              r"keepdim\s*=\s*True[^.?]{0,50}(sum|denominator)",
              r"row'?s? (own )?(sum|total|denominator)",
              r"(sum|denominator)[^.?]{0,40}(wrong axis|along the keys|last axis|other rows?|another row)",
              r"divid\w*[^.?]{0,30}(another|other|wrong) row"])
def weights_manual_softmax_no_keepdim(q, k, mask=None):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    exp_scores = torch.exp(scores - scores.amax(dim=-1, keepdim=True))
    return exp_scores / exp_scores.sum(dim=-1)


@wrong("1.1", "divided the scores by d_k instead of √d_k (scaled q and k each by 1/√d_k... once too often)",
       names=[r"d_?k\b[^.?√]{0,30}(instead of|not|rather than|in place of)[^.?]{0,10}√\s*d_?k",
              r"√\s*d_?k[^.?]{0,10}(instead of|not|rather than)[^.?]{0,10}\bd_?k\b",
              r"(square root|sqrt)[^.?]{0,20}(missing|forgot\w*|left out)",
              r"(missing|forgot\w*|without) (the |a |its )?(square root|sqrt)",
              r"(divid\w*|scal\w*) by d_?k\b(?!\s*\))[^.?]{0,20}(instead|not|rather)", r"√\s*d_?k (times|×) too small"])
def weights_divided_by_dk(q, k, mask=None):
    d_k = q.shape[-1]
    scores = q @ k.transpose(-2, -1) / d_k
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return scores.softmax(dim=-1)


@wrong("1.1", "`if mask:` instead of `if mask is not None:` — the truth value of a mask tensor raises",
       names=[r"is not None", r"is None\b", r"(compare|test|check)\w*[^.?]{0,20}(with|to|against|for) None",
              r"\bif mask\b[^.?]{0,40}(tensor|raises|ambigu|error)"])
def weights_if_mask_truthy(q, k, mask=None):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask:
        scores = scores.masked_fill(~mask, float("-inf"))
    return scores.softmax(dim=-1)


# ----- Exercise 1.2: softmax backward -------------------------------------------------------------------------

@wrong("1.2", "⟨g, p⟩ as (grad_p * p).sum() with no dim: one number for the whole tensor, not one per row",
       names=[r"(one|a|single) (number|value|scalar|sum|dot product) (per|for each|for every) row",
              r"(summed|sum\w*|reduc\w*) over (the )?(whole|entire|all)", r"(whole|entire) (tensor|batch|matrix)",
              r"(every|all) (rows|entries|elements|axes) (together|at once)",
              r"(sum|⟨g, ?p⟩)[^.?]{0,30}(no|without|missing) (a )?dim\b", r"dim\s*=\s*-1"])
def softmax_backward_total_sum(p, grad_p):
    return p * (grad_p - (grad_p * p).sum())


@wrong("1.2", "p ⊙ g − ⟨g, p⟩: the factor p dropped from the second term only",
       names=[r"(second|subtracted) term[^.?]{0,50}\bp\b", r"\bp\b[^.?]{0,30}(second|subtracted|both) terms?",
              r"⟨g, ?p⟩[^.?]{0,40}(multipl\w*|times|weighted|scaled) by p\b",
              r"(missing|forgot\w*|without|drop\w*)[^.?]{0,30}\bp\b[^.?]{0,20}(on|in|of|from) (the )?(second|⟨)",
              r"(factor|multiply) p\b[^.?]{0,30}(both|whole|entire|bracket|parenthes)"])
def softmax_backward_p_on_first_term_only(p, grad_p):
    return p * grad_p - (grad_p * p).sum(dim=-1, keepdim=True)


@wrong("1.2", "a Python loop over the rows with range(n_rows - 1): the last row's gradient stays 0",
       names=[r"last row", r"off[- ]by[- ]one", r"(every|each|all) (the )?rows?\b[^.?]{0,30}(computed|filled|covered|visited|loop)",
              r"rows?\b[^.?]{0,30}(left at|still|stay\w*|remain\w*) (zero|0)\b", r"(skipp\w*|miss\w*) (a |the |one )?row"])
def softmax_backward_loop_off_by_one(p, grad_p):
    rows_p = p.reshape(-1, p.shape[-1])
    rows_g = grad_p.reshape(-1, p.shape[-1])
    grad_s = torch.zeros_like(rows_p)
    for i in range(rows_p.shape[0] - 1):
        dot = (rows_g[i] * rows_p[i]).sum()
        grad_s[i] = rows_p[i] * (rows_g[i] - dot)
    return grad_s.reshape(p.shape)


@wrong("1.2", "applied softmax to p again first (treating p as the scores s)",
       names=[r"already (a |the )?(softmax|probabilit)", r"softmax (output|again|twice)",
              r"softmax[^.?]{0,20}(twice|again|a second time)", r"(not|never|don't|do not) (re-?)?apply (the )?softmax",
              r"\bp\b (is|as) (the )?(scores|logits|\bs\b)", r"(scores|logits)[^.?]{0,20}(instead of|not|rather than) (the )?(probabilities|p\b)"])
def softmax_backward_resoftmax(p, grad_p):
    p = p.softmax(dim=-1)
    return p * (grad_p - (grad_p * p).sum(dim=-1, keepdim=True))


# ----- Exercise 1.3: attention as an autograd.Function --------------------------------------------------------

@wrong("1.3", "forward returns the weights P instead of the output P V",
       names=[r"forward[^.?]{0,40}(return\w*|output\w*)[^.?]{0,30}(P\s*V|p\s*@\s*v|weighted (average|sum)|values)",
              r"(weights|\bP\b)[^.?]{0,30}(instead of|not|rather than|in place of)[^.?]{0,20}(output|P\s*V|\bO\b)",
              r"(missing|forgot\w*|without)[^.?]{0,20}(@\s*v|P\s*V|multipl\w* by V|the values)",
              r"(return\w*|output\w*) (the )?(attention )?weights"])
class AttentionFunctionReturnsWeights(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v):
        p = attention_weights(q, k)
        ctx.save_for_backward(q, k, v, p)
        return p

    @staticmethod
    def backward(ctx, grad_out):
        q, k, v, p = ctx.saved_tensors
        scale = 1 / math.sqrt(q.shape[-1])
        grad_v = p.transpose(-2, -1) @ grad_out
        grad_scores = softmax_backward(p, grad_out @ v.transpose(-2, -1))
        return scale * grad_scores @ k, scale * grad_scores.transpose(-2, -1) @ q, grad_v


@wrong("1.3", "softmax_backward(grad_p, p): the two arguments in the wrong order",
       names=[r"argument\w*[^.?]{0,30}(order|swapped|reversed|exchanged)",
              r"(swapped|exchanged|reversed)[^.?]{0,30}(arguments|p and|grad_p and)",
              r"softmax_backward\(p, ?(grad_p|dP)", r"\bp\b (first|then)[^.?]{0,20}(grad_p|dP|gradient)"])
class AttentionFunctionSwappedSoftmaxArgs(torch.autograd.Function):
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
        grad_scores = softmax_backward(grad_p, p)
        return scale * grad_scores @ k, scale * grad_scores.transpose(-2, -1) @ q, grad_v


@wrong("1.3", "dS = softmax_backward(P, dO): skipped dP = dO Vᵀ (shapes fit only when d_v = Tk)",
       names=[r"\bdP\b[^.?]{0,40}(missing|skipped|never|forgot\w*|instead)",
              r"(missing|skipp\w*|forgot\w*|without)[^.?]{0,30}\bdP\b", r"dO\s*V\s*[ᵀ⊤]", r"dO\s*V\^T",
              r"(through|by) V\s*[ᵀ⊤]", r"\bdO\b[^.?]{0,30}(instead of|not|rather than|in place of)[^.?]{0,10}\bdP\b"])
class AttentionFunctionSkipsDP(torch.autograd.Function):
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
        grad_scores = softmax_backward(p, grad_out)
        return scale * grad_scores @ k, scale * grad_scores.transpose(-2, -1) @ q, grad_v


@wrong("1.3", "backward recomputes P from the saved q, k without the 1/√d_k scale (forward's P is right)",
       names=[r"recomput\w*", r"(same|forward'?s?) (scale|P\b|weights)",
              r"(backward|recomputed)[^.?]{0,40}(unscaled|without[^.?]{0,20}scale|1\s*/\s*√)",
              r"\bP\b[^.?]{0,30}(differs|different) (from|than) (the )?forward", r"save\w* (the )?\bP\b"])
class AttentionFunctionRecomputesUnscaled(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v):
        ctx.save_for_backward(q, k, v)
        return attention_weights(q, k) @ v

    @staticmethod
    def backward(ctx, grad_out):
        q, k, v = ctx.saved_tensors
        scale = 1 / math.sqrt(q.shape[-1])
        p = (q @ k.transpose(-2, -1)).softmax(dim=-1)  # P again, to save memory
        grad_v = p.transpose(-2, -1) @ grad_out
        grad_scores = softmax_backward(p, grad_out @ v.transpose(-2, -1))
        return scale * grad_scores @ k, scale * grad_scores.transpose(-2, -1) @ q, grad_v


# ----- Exercise 1.4: multi-head self-attention ----------------------------------------------------------------

class _MultiHeadBase(nn.Module):
    def __init__(self, d_model, n_heads):
        super().__init__()
        assert d_model % n_heads == 0, f"d_model={d_model} must be a multiple of n_heads={n_heads}"
        self.n_heads = n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)


@wrong("1.4", "never applied the output projection self.out: returns the merged heads",
       names=[r"self\.out", r"(output|out) projection", r"\bW_?O\b",
              r"(missing|forgot\w*|without|never|not)[^.?]{0,30}(self\.out|projection|\bW_?O\b)"])
class MultiHeadNoOutputProjection(_MultiHeadBase):
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
        return rearrange(heads, "B H T Dh -> B T (H Dh)")


@wrong("1.4", "heads split and merged as (Dh H): head h gets features h, h + H, … instead of a contiguous block",
       names=[r"\(H Dh\)", r"\(Dh H\)", r"head by head", r"(layout|order) of (the )?(features|heads)",
              r"interleav",
              r"(features|channels) of (a|each|one) head[^.?]{0,30}(contiguous|consecutive|together|adjacent)"])
class MultiHeadDhMajorSplit(_MultiHeadBase):
    def forward(self, x, causal=False, key_padding_mask=None):
        B, T, D = x.shape
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        q, k, v = (rearrange(t, "B T (Dh H) -> B H T Dh", H=self.n_heads) for t in (q, k, v))
        may_attend = torch.ones(T, T, dtype=torch.bool, device=x.device)
        if causal:
            may_attend = may_attend.tril()
        if key_padding_mask is not None:
            may_attend = may_attend & ~key_padding_mask[:, None, None, :]
        heads = attention(q, k, v, may_attend)
        return self.out(rearrange(heads, "B H T Dh -> B T (Dh H)"))


@wrong("1.4", "causal and padding masks combined with | instead of &: a key allowed by either one is attended",
       names=[r"\band\b[^.?]{0,20}(not|instead of|rather than)[^.?]{0,10}(\bor\b|\|)",
              r"\bor\b[^.?]{0,20}(instead of|not|rather than)[^.?]{0,10}(\band\b|&)",
              r"&[^.?]{0,10}(instead of|not|rather than)",
              r"(both|two) masks[^.?]{0,40}(must|need|allow|forbid|combin)",
              r"future (keys|tokens|positions)[^.?]{0,40}(visible|attended|allowed|leak)",
              r"padd\w* (keys|tokens)[^.?]{0,40}(visible|attended|allowed)"])
class MultiHeadMasksOred(_MultiHeadBase):
    def forward(self, x, causal=False, key_padding_mask=None):
        B, T, D = x.shape
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        q, k, v = (rearrange(t, "B T (H Dh) -> B H T Dh", H=self.n_heads) for t in (q, k, v))
        may_attend = torch.ones(T, T, dtype=torch.bool, device=x.device)
        if causal:
            may_attend = may_attend.tril()
        if key_padding_mask is not None:
            may_attend = may_attend | ~key_padding_mask[:, None, None, :]
        heads = attention(q, k, v, may_attend)
        return self.out(rearrange(heads, "B H T Dh -> B T (H Dh)"))


@wrong("1.4", "causal mask sized with x.shape[0] (seq-first habit): (B, B), which is not the (T, T) of the tokens",
       names=[r"x\.shape\[1\]", r"sequence length", r"batch[_ ]first", r"seq(uence)?[- ]first",
              r"batch size[^.?]{0,30}(instead of|not|rather than|as|in place of)", r"\(B, ?B\)"])
class MultiHeadSeqFirstMask(_MultiHeadBase):
    def forward(self, x, causal=False, key_padding_mask=None):
        T = x.shape[0]  # sequence length
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        q, k, v = (rearrange(t, "B T (H Dh) -> B H T Dh", H=self.n_heads) for t in (q, k, v))
        may_attend = torch.ones(T, T, dtype=torch.bool, device=x.device)
        if causal:
            may_attend = may_attend.tril()
        if key_padding_mask is not None:
            may_attend = may_attend & ~key_padding_mask[:, None, None, :]
        heads = attention(q, k, v, may_attend)
        return self.out(rearrange(heads, "B H T Dh -> B T (H Dh)"))


@wrong("1.4", "key_padding_mask.logical_not_() to flip the convention: right output, the caller's mask inverted",
       names=[r"in[- ]place", r"(modif|mutat|overwr|chang|invert)\w*[^.?]{0,30}(key_padding_mask|(the |your |caller'?s? )(padding )?mask|input)",
              r"logical_not_", r"(key_padding_mask|mask)[^.?]{0,30}(was |is |has been )?(modified|changed|mutated|overwritten|inverted)"],
       late=True)
class MultiHeadInvertsMaskInPlace(_MultiHeadBase):
    def forward(self, x, causal=False, key_padding_mask=None):
        B, T, D = x.shape
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        q, k, v = (rearrange(t, "B T (H Dh) -> B H T Dh", H=self.n_heads) for t in (q, k, v))
        may_attend = torch.ones(T, T, dtype=torch.bool, device=x.device)
        if causal:
            may_attend = may_attend.tril()
        if key_padding_mask is not None:
            key_padding_mask.logical_not_()  # True = real token now
            may_attend = may_attend & key_padding_mask[:, None, None, :]
        heads = attention(q, k, v, may_attend)
        return self.out(rearrange(heads, "B H T Dh -> B T (H Dh)"))


# ----- Exercise 1.5: tiled attention --------------------------------------------------------------------------

@wrong("1.5", "running maximum started at 0 instead of -inf: NaN (0/0) when every score of a row is very negative",
       names=[r"(start|initiali[sz]\w*|begin)\w*[^.?]{0,30}(at |to |from |with )?[−-]\s*(inf|∞)",
              r"(running max\w*|\bm\b)[^.?]{0,30}(start\w*|initiali[sz]\w*)[^.?]{0,20}(0|zero)\b",
              r"underflow", r"(very |large(ly)? )negative scores", r"torch\.full\([^)]*inf"])
def tiled_max_starts_at_zero(q, k, v, block_size=256):
    scale = 1 / math.sqrt(q.shape[-1])
    running_max = torch.zeros(q.shape[:-1] + (1,), dtype=q.dtype, device=q.device)
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


@wrong("1.5", "accumulator created with torch.zeros_like(q): (..., Tq, d) instead of (..., Tq, d_v)",
       names=[r"d_?v\s*(≠|!=|differs from|instead of|rather than|is not|isn't)",
              r"(output|accumulator|\ba\b)[^.?]{0,40}(d_?v\b|width of (the )?values)",
              r"(width|size|last dim\w*) of (the )?(values|v)\b", r"zeros_like\(q\)",
              r"(shape|width) of q\b[^.?]{0,20}(instead|not|rather)", r"v\.shape\[-1\]"])
def tiled_output_like_q(q, k, v, block_size=256):
    scale = 1 / math.sqrt(q.shape[-1])
    running_max = torch.full(q.shape[:-1] + (1,), -math.inf, dtype=q.dtype, device=q.device)
    running_sum = torch.zeros_like(running_max)
    output = torch.zeros_like(q)
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


@wrong("1.5", "a softmax within each block, and the block outputs averaged: every block weighs the same",
       names=[r"(per|each|every|within a|inside a) block", r"(average|mean) of (the )?blocks?",
              r"(normali[sz]\w*|softmax)[^.?]{0,30}(within|inside|per|each|every) (a |each )?block",
              r"weigh\w*[^.?]{0,30}blocks? (equally|the same)", r"global (max\w*|softmax|normali[sz]\w*|sum)",
              r"(across|over) (all )?(the )?blocks"])
def tiled_blockwise_softmax_mean(q, k, v, block_size=256):
    scale = 1 / math.sqrt(q.shape[-1])
    output = torch.zeros(q.shape[:-1] + v.shape[-1:], dtype=q.dtype, device=q.device)
    n_blocks = 0
    for start in range(0, k.shape[-2], block_size):
        k_block = k[..., start:start + block_size, :]
        v_block = v[..., start:start + block_size, :]
        scores = q @ k_block.transpose(-2, -1) * scale
        output = output + scores.softmax(dim=-1) @ v_block
        n_blocks += 1
    return output / n_blocks


@wrong("1.5", "never assigned running_max = new_max: m stays -inf, so each block wipes out the ones before",
       names=[r"running_max[^.?]{0,40}(never|not) (updated|assigned|kept|stored)",
              r"(never|not|forgot\w*|missing)[^.?]{0,20}(updat|assign|stor|keep)\w*[^.?]{0,20}(running )?(max\w*|\bm\b)",
              r"(only|just) the last block", r"\bm\s*(←|=|:=)\s*m'",
              r"(earlier|previous|former) blocks?[^.?]{0,40}(lost|discarded|wiped|dropped|forgotten|erased)"])
def tiled_max_never_updated(q, k, v, block_size=256):
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
        running_sum = correction * running_sum + exp_scores.sum(dim=-1, keepdim=True)
        output = correction * output + exp_scores @ v_block
    return output / running_sum


@wrong("1.5", "m' = the block's own maximum, not max(m, block max): e^{m − m'} can overflow (inf, then NaN)",
       names=[r"torch\.maximum", r"max\w* (of|with) (the )?(running|previous|old|earlier)",
              r"m'\s*=\s*max\(\s*m\b", r"e\^\{?\s*\(?m\s*[−-]\s*m'\)?\}?[^.?]{0,40}(overflow|> ?1|greater than 1|large|inf)",
              r"(all|every) (the )?blocks? (so far|seen)"])
def tiled_block_max_only(q, k, v, block_size=256):
    scale = 1 / math.sqrt(q.shape[-1])
    running_max = torch.full(q.shape[:-1] + (1,), -math.inf, dtype=q.dtype, device=q.device)
    running_sum = torch.zeros_like(running_max)
    output = torch.zeros(q.shape[:-1] + v.shape[-1:], dtype=q.dtype, device=q.device)
    for start in range(0, k.shape[-2], block_size):
        k_block = k[..., start:start + block_size, :]
        v_block = v[..., start:start + block_size, :]
        scores = q @ k_block.transpose(-2, -1) * scale
        new_max = scores.amax(dim=-1, keepdim=True)
        correction = torch.exp(running_max - new_max)
        exp_scores = torch.exp(scores - new_max)
        running_sum = correction * running_sum + exp_scores.sum(dim=-1, keepdim=True)
        output = correction * output + exp_scores @ v_block
        running_max = new_max
    return output / running_sum


# ----- Exercise 1.6: FNet's Fourier mixing --------------------------------------------------------------------

@wrong("1.6", "dft_matrix: always complex128, the dtype argument ignored",
       names=[r"dtype (argument|parameter)", r"(requested|given|asked[- ]for|passed) dtype",
              r"ignor\w*[^.?]{0,20}dtype", r"complex128[^.?]{0,30}(instead of|not|rather than|when|although)",
              r"\.to\(dtype\)", r"(return|build)\w*[^.?]{0,20}(the )?dtype (it was|you were|requested)"],
       arguments=with_reference_mixing)
def dft_ignores_dtype(n, dtype=torch.complex64):
    j = torch.arange(n, dtype=torch.float64)
    angle = -2 * math.pi * torch.outer(j, j) / n
    return torch.exp(1j * angle)


@wrong("1.6", "dft_matrix: the angle from j + k (a sum) instead of the product jk",
       names=[r"product (jk|j\s*·?\s*k|of (the )?ind)", r"j\s*\+\s*k", r"outer product", r"torch\.outer",
              r"(sum|add\w*)[^.?]{0,20}(instead of|not|rather than)[^.?]{0,10}(product|multipl)",
              r"(multipl\w*|product)[^.?]{0,20}(instead of|not|rather than)[^.?]{0,10}(sum|add)"],
       arguments=with_reference_mixing)
def dft_sum_of_indices(n, dtype=torch.complex64):
    j = torch.arange(n, dtype=torch.float64)
    angle = -2 * math.pi * (j[:, None] + j[None, :]) / n
    return torch.polar(torch.ones_like(angle), angle).to(dtype)


@wrong("1.6", "dft_matrix: frequencies from torch.linspace(0, 1, n), i.e. jk/(n − 1) instead of jk/n",
       names=[r"(divid\w*|denominator)[^.?]{0,30}n\s*[−-]\s*1", r"n\s*[−-]\s*1[^.?]{0,20}(instead of|not|rather than)[^.?]{0,10}\bn\b",
              r"linspace", r"/\s*\(n\s*[−-]\s*1\)", r"(divid\w*|over) (by )?n\b,? not", r"period\w*"],
       arguments=with_reference_mixing)
def dft_linspace_frequencies(n, dtype=torch.complex64):
    j = torch.arange(n, dtype=torch.float64)
    frequencies = torch.linspace(0, 1, n, dtype=torch.float64)  # k / n: the fraction of a turn per step
    angle = -2 * math.pi * torch.outer(j, frequencies)
    return torch.polar(torch.ones_like(angle), angle).to(dtype)


@wrong("1.6", "fourier_mixing: W_D built with n = T (copy-paste of the W_T line): fails unless T = D",
       names=[r"W_?D\b[^.?]{0,40}\b(D\s*[×x]\s*D|size D|of size|hidden)", r"\(D, ?D\)", r"dft_matrix\(D\b",
              r"(hidden|feature) (size|width|axis|dimension)[^.?]{0,30}\bD\b", r"(size|dimension|order) D\b",
              r"W_?D[^.?]{0,30}(T\s*[×x]\s*T|\(T, ?T\)|size T)"],
       arguments=with_reference_dft, learner_name="fourier_mixing")
def mixing_both_matrices_size_T(x):
    T, D = x.shape[-2:]
    complex_dtype = torch.complex128 if x.dtype == torch.float64 else torch.complex64
    W_T, W_D = dft_matrix(T, complex_dtype), dft_matrix(T, complex_dtype)
    return (W_T @ x.to(complex_dtype) @ W_D).real.to(x.dtype)


@wrong("1.6", "fourier_mixing: returned the complex product, no real part taken",
       names=[r"\.real\b", r"real part", r"\breal\b[- ](valued )?(tensor|output|result|dtype)",
              r"complex (tensor|output|result|dtype|values?)[^.?]{0,30}(instead|not|returned|rather)",
              r"(return\w*|got)[^.?]{0,20}(a )?complex (tensor|output|result)"],
       arguments=with_reference_dft, learner_name="fourier_mixing")
def mixing_complex_output(x):
    T, D = x.shape[-2:]
    complex_dtype = torch.complex128 if x.dtype == torch.float64 else torch.complex64
    W_T, W_D = dft_matrix(T, complex_dtype), dft_matrix(D, complex_dtype)
    return W_T @ x.to(complex_dtype) @ W_D
