"""Fourth blind held-out set for Chapter 01 (attention): wrong answers written as a learner writes the exercise cell.

Written without reading the checks or seeing any of their messages, and without repeating a mistake of the first
(``wrong_ch01.py``), second (``blind_ch01.py``) or third (``third_ch01.py``) set. The helpers a learner's cell uses
from earlier cells (``attention_weights``, ``softmax_backward``, ``attention``, ``dft_matrix``, ``fourier_mixing``)
are the chapter's reference solutions, so each answer holds exactly one mistake.
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

@wrong("1.1", "scale written d_k ** 1/2: ** binds tighter than /, so the scores are divided by d_k / 2, not √d_k",
       names=[r"precedence", r"\*\*\s*\(?\s*1\s*/\s*2\s*\)", r"\*\*\s*0\.5",
              r"d_?k\s*/\s*2\b", r"half of d_?k", r"2\s*/\s*d_?k",
              r"parenthes[ie]s[^.?]{0,40}(exponent|power|1\s*/\s*2|½)",
              r"(exponent|power)[^.?]{0,40}parenthes"])
def weights_power_precedence(q, k, mask=None):
    d_k = q.shape[-1]
    scores = q @ k.transpose(-2, -1) / d_k ** 1/2
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return scores.softmax(dim=-1)


@wrong("1.1", "softmax by hand, stabilised with the global maximum scores.max() instead of each row's: rows far "
              "below the global maximum underflow to 0/0",
       names=[r"(each|every|per)[- ]row'?s? (own )?max", r"row[- ]?wise max", r"global max",
              r"max\w*[^.?]{0,30}(of|over) (the )?(whole|entire) (tensor|matrix|batch)",
              r"amax\(\s*dim\s*=\s*-1", r"max\w*[^.?]{0,30}(per|each|every) row",
              r"(one|a single) max\w*[^.?]{0,30}(all|every|whole)"])
def weights_global_max(q, k, mask=None):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    exp_scores = torch.exp(scores - scores.max())
    return exp_scores / exp_scores.sum(dim=-1, keepdim=True)


@wrong("1.1", "scores.masked_fill(~mask, -inf) on a line of its own: masked_fill returns a new tensor, the result "
              "is thrown away and the mask has no effect",
       names=[r"masked_fill_", r"masked_fill\b[^.?]{0,60}(returns|new tensor|not in[- ]place|assign)",
              r"(not|never) (in[- ]place|assigned)", r"(result|return value)[^.?]{0,30}(discarded|thrown away|unused|ignored|not assigned)",
              r"mask[^.?]{0,30}(had|has) no effect", r"mask[^.?]{0,30}(was |is )?(ignored|not applied|never applied)",
              r"(forbidden|masked)[^.?]{0,40}(still|nonzero|non-zero)[^.?]{0,20}weight"])
def weights_masked_fill_discarded(q, k, mask=None):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores.masked_fill(~mask, float("-inf"))
    return scores.softmax(dim=-1)


@wrong("1.1", "returned scores.log_softmax(dim=-1): log-probabilities, not the weights P",
       names=[r"log[- _]?softmax", r"log[- ]?(probabilit|weight)", r"logarithm", r"\blogs?\b of (the )?(weights|probabilit)"])
def weights_log_softmax(q, k, mask=None):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return scores.log_softmax(dim=-1)


@wrong("1.1", "scores as (q * k).sum(-1): query i dotted with key i only, not the (Tq, Tk) table of every pair",
       names=[r"(every|all|each) (query[- ]key )?pairs?", r"matrix product[^.?]{0,30}(instead|not|rather)",
              r"(instead of|not|rather than)[^.?]{0,20}(a |the )?matrix product", r"matmul",
              r"(element-?wise|pointwise) (product|multiplication)",
              r"(only|just) (its own|the matching|the same|one) key", r"diagonal",
              r"\(\.\.\., ?T_?q, ?T_?k\)"])
def weights_elementwise_product(q, k, mask=None):
    scores = (q * k).sum(dim=-1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return scores.softmax(dim=-1)


# ----- Exercise 1.2: softmax backward -------------------------------------------------------------------------

@wrong("1.2", "⟨g, p⟩ as the plain mean of g over the row: p ⊙ (g − ḡ), the weighting by p dropped",
       names=[r"weighted by p\b", r"weight\w*[^.?]{0,20}\bp\b", r"(plain|unweighted|simple) (mean|average)",
              r"(mean|average) of g\b[^.?]{0,30}(instead|not|rather)",
              r"(expectation|expected value) (of g )?under p", r"\bg\s*[·*⊙]\s*p\b[^.?]{0,20}(sum|summed)"])
def softmax_backward_unweighted_mean(p, grad_p):
    return p * (grad_p - grad_p.mean(dim=-1, keepdim=True))


@wrong("1.2", "⟨g, p⟩ as a cumulative sum (cumsum) along the row instead of the row's total",
       names=[r"cumsum", r"cumulative sum", r"running (sum|total)", r"partial sums?",
              r"(whole|entire|full) row'?s? (sum|total)", r"(total|sum) (of|over) the (whole|entire) row"])
def softmax_backward_cumsum(p, grad_p):
    return p * (grad_p - (grad_p * p).cumsum(dim=-1))


@wrong("1.2", "⟨g, p⟩ as mean · p.shape[0]: the row length taken from the first axis, right only for 1-D or square",
       names=[r"shape\[0\]", r"shape\[-1\]", r"(row length|length of (a|each|the) row)",
              r"(first|leading|batch) ax[ie]s[^.?]{0,30}(length|size|instead)",
              r"(number of rows|rows?) (instead of|rather than|not) (the )?(number of )?(columns|entries)",
              r"sum,? not (a |the )?mean", r"\.sum\(dim\s*=\s*-1"])
def softmax_backward_mean_times_rows(p, grad_p):
    return p * (grad_p - (grad_p * p).mean(dim=-1, keepdim=True) * p.shape[0])


@wrong("1.2", "⟨g, p⟩ accumulated with sum(..., dtype=torch.float32): float32 rounding in float64 gradients",
       names=[r"float32", r"single[- ]precision", r"(precision|rounding)[^.?]{0,40}(lost|loss|float32|single)",
              r"dtype\s*=\s*torch\.float32"])
def softmax_backward_float32_sum(p, grad_p):
    return p * (grad_p - (grad_p * p).sum(dim=-1, keepdim=True, dtype=torch.float32))


# ----- Exercise 1.3: attention as an autograd.Function --------------------------------------------------------

@wrong("1.3", "dV = dSᵀ dO: the softmax-backward result dS used where eq. (1.7) has the weights P",
       names=[r"\bdV\b[^.?]{0,40}\b(P|weights|probabilities)\b", r"P\s*[ᵀ⊤]\s*dO", r"P\^T\s*dO",
              r"\bdS\b[^.?]{0,30}(instead of|in place of|rather than|where)[^.?]{0,15}\b(P|weights)\b",
              r"\b(P|weights)\b[^.?]{0,20}(not|instead of|rather than) \bdS\b",
              r"(grad_scores|grad_v)[^.?]{0,40}(p\b|weights)"])
class AttentionFunctionDVFromDS(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v):
        p = attention_weights(q, k)
        ctx.save_for_backward(q, k, v, p)
        return p @ v

    @staticmethod
    def backward(ctx, grad_out):
        q, k, v, p = ctx.saved_tensors
        scale = 1 / math.sqrt(q.shape[-1])
        grad_scores = softmax_backward(p, grad_out @ v.transpose(-2, -1))
        grad_v = grad_scores.transpose(-2, -1) @ grad_out
        grad_q = scale * grad_scores @ k
        grad_k = scale * grad_scores.transpose(-2, -1) @ q
        return grad_q, grad_k, grad_v


@wrong("1.3", "dQ = c · dSᵀ K: the transpose belongs to dK's formula, not dQ's (right shape only when Tq = Tk)",
       names=[r"\b(dQ|grad_q|dL/dQ)\b[^.?]{0,50}transpos", r"transpos\w*[^.?]{0,50}\b(dQ|grad_q|dL/dQ)\b",
              r"dS\s*K\b[^.?]{0,20}(not|instead|rather)", r"(not|instead of|rather than) dS\s*[ᵀ⊤]\s*K",
              r"(no|without|drop\w*|remove\w*|extra|spurious) (the )?transpos\w*[^.?]{0,30}\b(dS|dQ)\b"])
class AttentionFunctionDQTransposed(torch.autograd.Function):
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
        grad_q = scale * grad_scores.transpose(-2, -1) @ k
        grad_k = scale * grad_scores.transpose(-2, -1) @ q
        return grad_q, grad_k, grad_v


@wrong("1.3", "scale = 1/√d_k, then dQ and dK divided by it: they come out d_k times too large",
       names=[r"\bd_?k\b\s*(times|×)\s*too (large|big)",
              r"(divid\w*|÷)[^.?]{0,30}(by )?(the )?(scale|\bc\b|1\s*/\s*√\s*d_?k)[^.?]{0,30}(instead|rather|not)",
              r"multipl\w*[^.?]{0,30}(instead of|rather than|not) divid",
              r"(instead of|rather than|not) multipl\w*[^.?]{0,30}(by )?(the )?(scale|\bc\b|1\s*/\s*√)",
              r"√\s*d_?k\b[^.?]{0,30}(instead of|in place of|rather than) 1\s*/\s*√\s*d_?k",
              r"(inverted|inverse of) the scale", r"scale[^.?]{0,20}inverted"])
class AttentionFunctionDividesByScale(torch.autograd.Function):
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
        grad_q = grad_scores @ k / scale
        grad_k = grad_scores.transpose(-2, -1) @ q / scale
        return grad_q, grad_k, grad_v


@wrong("1.3", "dP = dO V, Vᵀ forgotten (shapes fit only when d_v = Tk)",
       names=[r"V\s*[ᵀ⊤]", r"V\^T", r"v\.transpose", r"v\.mT",
              r"\bdP\b[^.?]{0,40}transpos", r"transpos\w*[^.?]{0,40}\b(V|dP)\b",
              r"\bdP\b[^.?]{0,30}(shape|\(T_?q, ?T_?k\))"])
class AttentionFunctionDPWithoutVTranspose(torch.autograd.Function):
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
        grad_p = grad_out @ v
        grad_scores = softmax_backward(p, grad_p)
        return scale * grad_scores @ k, scale * grad_scores.transpose(-2, -1) @ q, grad_v


@wrong("1.3", "forward returns (P V, P) to look at the weights too: two outputs, and backward takes only one gradient",
       names=[r"return\w* (a )?(tuple|pair)", r"(two|2|second|extra) outputs?", r"(single|one) (output|tensor)",
              r"return\w* (only|just) (the )?(output|P\s*V|O\b)",
              r"(also|as well)[^.?]{0,30}(weights|\bP\b)", r"(weights|\bP\b)[^.?]{0,30}(as well|too|also|second)"])
class AttentionFunctionReturnsPair(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v):
        p = attention_weights(q, k)
        ctx.save_for_backward(q, k, v, p)
        return p @ v, p

    @staticmethod
    def backward(ctx, grad_out):
        q, k, v, p = ctx.saved_tensors
        scale = 1 / math.sqrt(q.shape[-1])
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


@wrong("1.4", "chunk(3, dim=1): cut the sequence axis T in three instead of the feature axis",
       names=[r"dim\s*=\s*-1", r"(feature|last|hidden|channel) ax[ie]s", r"(sequence|time|token|T) ax[ie]s",
              r"chunk\w*[^.?]{0,40}(ax[ie]s|dim)", r"(split|cut)\w*[^.?]{0,30}(tokens|sequence|T\b)",
              r"\b3\s*[·*×]?\s*D\b"])
class MultiHeadChunkSequenceAxis(_MultiHeadBase):
    def forward(self, x, causal=False, key_padding_mask=None):
        B, T, D = x.shape
        q, k, v = self.qkv(x).chunk(3, dim=1)
        q, k, v = (rearrange(t, "B T (H Dh) -> B H T Dh", H=self.n_heads) for t in (q, k, v))
        may_attend = torch.ones(T, T, dtype=torch.bool, device=x.device)
        if causal:
            may_attend = may_attend.tril()
        if key_padding_mask is not None:
            may_attend = may_attend & ~key_padding_mask[:, None, None, :]
        heads = attention(q, k, v, may_attend)
        return self.out(rearrange(heads, "B H T Dh -> B T (H Dh)"))


@wrong("1.4", "rearrange(..., Dh=self.n_heads): the head count given as the head width, so D/H heads of width H",
       names=[r"H\s*=\s*(self\.)?n_heads", r"number of heads", r"(head count|n_heads)[^.?]{0,40}(width|Dh|size)",
              r"(width|Dh)[^.?]{0,40}(head count|number of heads|n_heads)",
              r"\bH\b and \bDh\b[^.?]{0,30}(swapped|exchanged|confused|mixed)",
              r"(swapped|exchanged|confused|mixed up)[^.?]{0,30}\bH\b and \bDh\b"])
class MultiHeadDhGivenHeadCount(_MultiHeadBase):
    def forward(self, x, causal=False, key_padding_mask=None):
        B, T, D = x.shape
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        q, k, v = (rearrange(t, "B T (H Dh) -> B H T Dh", Dh=self.n_heads) for t in (q, k, v))
        may_attend = torch.ones(T, T, dtype=torch.bool, device=x.device)
        if causal:
            may_attend = may_attend.tril()
        if key_padding_mask is not None:
            may_attend = may_attend & ~key_padding_mask[:, None, None, :]
        heads = attention(q, k, v, may_attend)
        return self.out(rearrange(heads, "B H T Dh -> B T (H Dh)"))


@wrong("1.4", "padding handled by zeroing the padded tokens' inputs: their keys (the bias b_K) are still attended to",
       names=[r"(zero\w*|blank\w*)[^.?]{0,30}(input|embedding|token|x\b)",
              r"(input|embedding|token)s?[^.?]{0,30}(zeroed|set to zero)",
              r"padd\w* (keys|tokens|positions)[^.?]{0,40}(still|nonzero|non-zero|receive|get|attended)",
              r"(mask|hide)\w*[^.?]{0,20}(the )?(keys|scores|attention)[^.?]{0,30}(not|instead of|rather than)",
              r"\bbias\b[^.?]{0,30}(key|b_K)", r"attention (mask|weights)[^.?]{0,30}padd"])
class MultiHeadZeroPaddedInputs(_MultiHeadBase):
    def forward(self, x, causal=False, key_padding_mask=None):
        B, T, D = x.shape
        if key_padding_mask is not None:
            x = x.masked_fill(key_padding_mask[:, :, None], 0.0)
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        q, k, v = (rearrange(t, "B T (H Dh) -> B H T Dh", H=self.n_heads) for t in (q, k, v))
        may_attend = None
        if causal:
            may_attend = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()
        heads = attention(q, k, v, may_attend)
        return self.out(rearrange(heads, "B H T Dh -> B T (H Dh)"))


@wrong("1.4", "additive padding mask key_padding_mask.float() * -inf: 0 · (−∞) = NaN on every real key",
       names=[r"0\s*[·*×]\s*[−-]?\s*(inf|∞)", r"(zero|0) times (minus )?(inf|infinity)",
              r"[−-]\s*(inf|∞)\s*[·*×]\s*(0|zero)", r"additive",
              r"masked_fill", r"torch\.where", r"(multipl\w*|times)[^.?]{0,30}(-inf|−∞|infinity)"])
class MultiHeadAdditiveInfMask(_MultiHeadBase):
    def forward(self, x, causal=False, key_padding_mask=None):
        B, T, D = x.shape
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        q, k, v = (rearrange(t, "B T (H Dh) -> B H T Dh", H=self.n_heads) for t in (q, k, v))
        scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (B, H, T, T)
        if causal:
            future = torch.ones(T, T, dtype=torch.bool, device=x.device).triu(1)
            scores = scores.masked_fill(future, float("-inf"))
        if key_padding_mask is not None:
            scores = scores + key_padding_mask[:, None, None, :].float() * float("-inf")
        heads = scores.softmax(dim=-1) @ v
        return self.out(rearrange(heads, "B H T Dh -> B T (H Dh)"))


@wrong("1.4", "qkv output reshaped (B, T, H, 3, Dh): per-head interleaved q/k/v, not the packed [W_Q; W_K; W_V] rows",
       names=[r"\[W_?Q; ?W_?K; ?W_?V\]", r"pack\w*", r"\(3 H Dh\)", r"\(B, ?T, ?3, ?H, ?Dh\)",
              r"(layout|order)[^.?]{0,40}(q, ?k, ?v|qkv|projection)", r"interleav",
              r"chunk\(3"])
class MultiHeadInterleavedQKV(_MultiHeadBase):
    def forward(self, x, causal=False, key_padding_mask=None):
        B, T, D = x.shape
        H = self.n_heads
        qkv = self.qkv(x).reshape(B, T, H, 3, D // H).permute(3, 0, 2, 1, 4)  # (3, B, H, T, Dh)
        q, k, v = qkv.unbind(0)
        may_attend = torch.ones(T, T, dtype=torch.bool, device=x.device)
        if causal:
            may_attend = may_attend.tril()
        if key_padding_mask is not None:
            may_attend = may_attend & ~key_padding_mask[:, None, None, :]
        heads = attention(q, k, v, may_attend)
        return self.out(rearrange(heads, "B H T Dh -> B T (H Dh)"))


@wrong("1.4", "`if causal is not None:` — False is not None, so the causal mask is applied even with causal=False",
       names=[r"causal\s*=\s*False", r"(even )?when causal is (false|False)", r"always (causal|masked|applied)",
              r"is not None[^.?]{0,40}(False|bool)", r"(False|a bool)[^.?]{0,30}is not None",
              r"\bif causal\b", r"(truth|boolean) (value|test)"])
class MultiHeadCausalIsNotNone(_MultiHeadBase):
    def forward(self, x, causal=False, key_padding_mask=None):
        B, T, D = x.shape
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        q, k, v = (rearrange(t, "B T (H Dh) -> B H T Dh", H=self.n_heads) for t in (q, k, v))
        may_attend = torch.ones(T, T, dtype=torch.bool, device=x.device)
        if causal is not None:
            may_attend = may_attend.tril()
        if key_padding_mask is not None:
            may_attend = may_attend & ~key_padding_mask[:, None, None, :]
        heads = attention(q, k, v, may_attend)
        return self.out(rearrange(heads, "B H T Dh -> B T (H Dh)"))


# ----- Exercise 1.5: tiled attention --------------------------------------------------------------------------

@wrong("1.5", "exp(scores − m) with the old running maximum instead of the new one m': e^{+∞} on the first block",
       names=[r"new max\w*", r"\bm'\s*(,|instead|not|rather)", r"e\^\{?\s*\(?s_?j?\s*[−-]\s*m'",
              r"(old|previous|stale) (running )?max\w*[^.?]{0,30}(instead|not|rather|exp)",
              r"(subtract\w*|minus)[^.?]{0,30}(updated|new) max", r"new_max"])
def tiled_exp_with_old_max(q, k, v, block_size=256):
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
        exp_scores = torch.exp(scores - running_max)
        running_sum = correction * running_sum + exp_scores.sum(dim=-1, keepdim=True)
        output = correction * output + exp_scores @ v_block
        running_max = new_max
    return output / running_sum


@wrong("1.5", "k[..., start:start + block_size] without the trailing `, :`: slices k's feature axis, not its keys",
       names=[r"(feature|last|width|d\b) ax[ie]s[^.?]{0,40}(instead|not|rather|slic)",
              r"slic\w*[^.?]{0,40}(feature|last) ax", r"(key|sequence|T_?k|second[- ]to[- ]last) ax[ie]s",
              r"\[\.\.\., ?start:start ?\+ ?block_size, ?:\]", r"\[\.\.\., ?[^]]*, ?:\]",
              r"(keys|rows) of k\b"])
def tiled_slices_features(q, k, v, block_size=256):
    scale = 1 / math.sqrt(q.shape[-1])
    running_max = torch.full(q.shape[:-1] + (1,), -math.inf, dtype=q.dtype, device=q.device)
    running_sum = torch.zeros_like(running_max)
    output = torch.zeros(q.shape[:-1] + v.shape[-1:], dtype=q.dtype, device=q.device)
    for start in range(0, k.shape[-2], block_size):
        k_block = k[..., start:start + block_size]
        v_block = v[..., start:start + block_size, :]
        scores = q @ k_block.transpose(-2, -1) * scale
        new_max = torch.maximum(running_max, scores.amax(dim=-1, keepdim=True))
        correction = torch.exp(running_max - new_max)
        exp_scores = torch.exp(scores - new_max)
        running_sum = correction * running_sum + exp_scores.sum(dim=-1, keepdim=True)
        output = correction * output + exp_scores @ v_block
        running_max = new_max
    return output / running_sum


@wrong("1.5", "`return output / running_sum` indented inside the loop: returns after the first block",
       names=[r"(return\w*)[^.?]{0,40}(inside|in|within) the loop", r"(only|just) the first block",
              r"indent\w*", r"(after|outside) the loop",
              r"(stop|exit|return)\w*[^.?]{0,30}(after|at) the first block", r"(later|other|remaining) blocks?[^.?]{0,30}(ignored|never|skipped|missing)"])
def tiled_return_inside_loop(q, k, v, block_size=256):
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
        running_max = new_max
        return output / running_sum


@wrong("1.5", "correction as exp(m) / exp(m'): the same number on paper, inf / inf = NaN once scores are large",
       names=[r"overflow\w*[^.?]{0,40}(separately|each exp|exp\(m\)|exp\(m'\)|ratio|on (its|their) own)",
              r"e\^\{?\s*\(?m\s*[−-]\s*m'", r"exp\(\s*m\s*[−-]\s*m'", r"exp\(running_max - new_max\)",
              r"(difference|subtract\w*)[^.?]{0,30}(inside|in|before|under) (the )?exp",
              r"exp\w* of the difference", r"ratio of (two )?exp", r"(two|separate) exp\w*",
              r"inf\s*/\s*inf", r"∞\s*/\s*∞"])
def tiled_correction_ratio_of_exps(q, k, v, block_size=256):
    scale = 1 / math.sqrt(q.shape[-1])
    running_max = torch.full(q.shape[:-1] + (1,), -math.inf, dtype=q.dtype, device=q.device)
    running_sum = torch.zeros_like(running_max)
    output = torch.zeros(q.shape[:-1] + v.shape[-1:], dtype=q.dtype, device=q.device)
    for start in range(0, k.shape[-2], block_size):
        k_block = k[..., start:start + block_size, :]
        v_block = v[..., start:start + block_size, :]
        scores = q @ k_block.transpose(-2, -1) * scale
        new_max = torch.maximum(running_max, scores.amax(dim=-1, keepdim=True))
        correction = torch.exp(running_max) / torch.exp(new_max)
        exp_scores = torch.exp(scores - new_max)
        running_sum = correction * running_sum + exp_scores.sum(dim=-1, keepdim=True)
        output = correction * output + exp_scores @ v_block
        running_max = new_max
    return output / running_sum


@wrong("1.5", "range(0, Tk + 1, block_size): one extra, empty block when Tk is a multiple of block_size",
       names=[r"empty block", r"range\(0, ?(Tk|T_k|k\.shape\[-2\])\s*,", r"Tk\s*\+\s*1",
              r"(loop|range)[^.?]{0,30}(bound|end|stop|one (block|step|iteration) too (many|far))",
              r"(extra|additional|one more) (block|iteration)", r"off[- ]by[- ]one",
              r"multiple of (the )?block"])
def tiled_range_one_past(q, k, v, block_size=256):
    scale = 1 / math.sqrt(q.shape[-1])
    running_max = torch.full(q.shape[:-1] + (1,), -math.inf, dtype=q.dtype, device=q.device)
    running_sum = torch.zeros_like(running_max)
    output = torch.zeros(q.shape[:-1] + v.shape[-1:], dtype=q.dtype, device=q.device)
    for start in range(0, k.shape[-2] + 1, block_size):
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


@wrong("1.5", "block maximum with scores.max(dim=-1, keepdim=True), which returns (values, indices), not a tensor",
       names=[r"\.values\b", r"\bamax\b", r"\(values, ?indices\)", r"named ?tuple",
              r"max\(dim[^)]*\)[^.?]{0,30}(returns|gives) (a )?(pair|tuple)"])
def tiled_max_namedtuple(q, k, v, block_size=256):
    scale = 1 / math.sqrt(q.shape[-1])
    running_max = torch.full(q.shape[:-1] + (1,), -math.inf, dtype=q.dtype, device=q.device)
    running_sum = torch.zeros_like(running_max)
    output = torch.zeros(q.shape[:-1] + v.shape[-1:], dtype=q.dtype, device=q.device)
    for start in range(0, k.shape[-2], block_size):
        k_block = k[..., start:start + block_size, :]
        v_block = v[..., start:start + block_size, :]
        scores = q @ k_block.transpose(-2, -1) * scale
        new_max = torch.maximum(running_max, scores.max(dim=-1, keepdim=True))
        correction = torch.exp(running_max - new_max)
        exp_scores = torch.exp(scores - new_max)
        running_sum = correction * running_sum + exp_scores.sum(dim=-1, keepdim=True)
        output = correction * output + exp_scores @ v_block
        running_max = new_max
    return output / running_sum


@wrong("1.5", "looped over range(0, q.shape[-2], block_size): the number of queries Tq, not of keys Tk",
       names=[r"k\.shape\[-2\]", r"number of keys", r"\bT_?k\b[^.?]{0,30}(not|instead|rather)",
              r"(queries|T_?q|q\.shape)[^.?]{0,30}(instead of|not|rather than)[^.?]{0,15}(keys|T_?k)",
              r"(keys|T_?k)[^.?]{0,20}(instead of|not|rather than)[^.?]{0,15}(queries|T_?q)",
              r"T_?q\s*(≠|!=)\s*T_?k"])
def tiled_loops_over_queries(q, k, v, block_size=256):
    scale = 1 / math.sqrt(q.shape[-1])
    running_max = torch.full(q.shape[:-1] + (1,), -math.inf, dtype=q.dtype, device=q.device)
    running_sum = torch.zeros_like(running_max)
    output = torch.zeros(q.shape[:-1] + v.shape[-1:], dtype=q.dtype, device=q.device)
    for start in range(0, q.shape[-2], block_size):
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


# ----- Exercise 1.6: FNet's Fourier mixing --------------------------------------------------------------------

@wrong("1.6", "fourier_mixing: kept the imaginary part .imag instead of the real part",
       names=[r"real part", r"\.real\b", r"imaginary", r"\.imag\b", r"\bRe\("],
       arguments=with_reference_dft, learner_name="fourier_mixing")
def mixing_imaginary_part(x):
    T, D = x.shape[-2:]
    complex_dtype = torch.complex128 if x.dtype == torch.float64 else torch.complex64
    W_T, W_D = dft_matrix(T, complex_dtype), dft_matrix(D, complex_dtype)
    return (W_T @ x.to(complex_dtype) @ W_D).imag.to(x.dtype)


@wrong("1.6", "fourier_mixing: result converted with .float(): float64 inputs come back float32",
       names=[r"float32", r"\.float\(\)", r"\.to\(x\.dtype\)",
              r"(returned|came back|output\w*|result)[^.?]{0,20}(in |as )?float32"],
       arguments=with_reference_dft, learner_name="fourier_mixing")
def mixing_returns_float32(x):
    T, D = x.shape[-2:]
    complex_dtype = torch.complex128 if x.dtype == torch.float64 else torch.complex64
    W_T, W_D = dft_matrix(T, complex_dtype), dft_matrix(D, complex_dtype)
    return (W_T @ x.to(complex_dtype) @ W_D).real.float()


@wrong("1.6", "dft_matrix: torch.polar(angle, ones) — polar takes (abs, angle), so the arguments are swapped",
       names=[r"polar\(\s*(abs|magnitude|torch\.ones)", r"(abs|magnitude|modulus)[^.?]{0,20}(first|then)",
              r"(arguments?|abs and angle|order)[^.?]{0,40}(swapped|exchanged|reversed|order)",
              r"(modulus|magnitude|absolute value)[^.?]{0,30}(not|isn't|is not|should be) 1",
              r"\|W\|\s*(=|should be|must be)\s*1", r"unit (modulus|magnitude|circle)"],
       arguments=with_reference_mixing)
def dft_polar_arguments_swapped(n, dtype=torch.complex64):
    j = torch.arange(n, dtype=torch.float64)
    angle = -2 * math.pi * torch.outer(j, j) / n
    return torch.polar(angle, torch.ones_like(angle)).to(dtype)


@wrong("1.6", "dft_matrix: exp(−2πi jk) / n — the division by n outside the exponent, so every entry is 1/n",
       names=[r"(inside|within|in) the (exp\w*|exponent)", r"outside the (exp\w*|exponent)",
              r"parenthes", r"precedence", r"(all|every) (the )?entr(y|ies)[^.?]{0,30}(equal|same|1\s*/\s*n)",
              r"e\^\{?\s*[−-]\s*2\s*π\s*i\s*j\s*k\s*\}?\s*=\s*1"],
       arguments=with_reference_mixing)
def dft_divides_outside_exp(n, dtype=torch.complex64):
    j = torch.arange(n, dtype=torch.float64)
    return (torch.exp(-2j * math.pi * torch.outer(j, j)) / n).to(dtype)


@wrong("1.6", "fourier_mixing: X W_D then (X W_D)ᵀ W_T for the sequence axis, never transposed back: (…, D, T)",
       names=[r"transpos\w*[^.?]{0,30}back", r"\(\.\.\., ?D, ?T\)", r"(D, ?T)[^.?]{0,20}(instead of|not|rather than)",
              r"(axes|T and D)[^.?]{0,30}(swapped|exchanged|transposed)", r"W_?T\s*(·|@)?\s*X\b"],
       arguments=with_reference_dft, learner_name="fourier_mixing")
def mixing_never_transposed_back(x):
    T, D = x.shape[-2:]
    complex_dtype = torch.complex128 if x.dtype == torch.float64 else torch.complex64
    W_T, W_D = dft_matrix(T, complex_dtype), dft_matrix(D, complex_dtype)
    mixed = x.to(complex_dtype) @ W_D  # the hidden axis
    mixed = mixed.transpose(-2, -1) @ W_T  # the sequence axis, as rows
    return mixed.real.to(x.dtype)


@wrong("1.6", "fourier_mixing: X W_Dᴴ (.mH, the conjugate transpose) on the hidden axis: its inverse-sign DFT",
       names=[r"conjugat\w*", r"\.mH\b", r"W_?D\s*[ᴴ*]", r"hermitian",
              r"(inverse|opposite|positive) (sign|DFT|transform|exponent)[^.?]{0,30}(hidden|W_?D)",
              r"(hidden|W_?D)[^.?]{0,40}(inverse|opposite|sign)"],
       arguments=with_reference_dft, learner_name="fourier_mixing")
def mixing_conjugate_transpose(x):
    T, D = x.shape[-2:]
    complex_dtype = torch.complex128 if x.dtype == torch.float64 else torch.complex64
    W_T, W_D = dft_matrix(T, complex_dtype), dft_matrix(D, complex_dtype)
    return (W_T @ x.to(complex_dtype) @ W_D.mH).real.to(x.dtype)
