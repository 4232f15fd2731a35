"""Second blind held-out set for Chapter 01 (attention): wrong answers written as a learner writes the exercise cell.

Written without reading the checks, and without repeating a mistake of the first set (``wrong_ch01.py``). The
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

@wrong("1.1", "no scale at all: softmax(Q Kᵀ) without dividing the scores by √d_k",
       names=[r"(not|never|without|missing|forgot\w*|no)\b[^.]{0,30}(scal\w*|divid\w*)[^.]{0,20}√\s*d_?k",
              r"unscaled", r"scores? (are |were )?not (scaled|divided)",
              r"(scale|factor) (of )?1\s*/\s*√\s*d_?k (is )?missing",
              r"(missing|forgot\w*)[^.]{0,20}(the )?(scale|scaling)\b"])
def weights_unscaled(q, k, mask=None):
    scores = q @ k.transpose(-2, -1)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return scores.softmax(dim=-1)


@wrong("1.1", "multiplied the scores by √d_k instead of dividing by it",
       names=[r"multipl\w*[^.]{0,30}(by )?√\s*d_?k", r"(instead of|rather than|not) divid\w*",
              r"times √\s*d_?k", r"√\s*d_?k[^.]{0,30}(numerator|instead of 1\s*/)",
              r"d_?k\s*(×|times) too (large|big)"])
def weights_times_sqrt(q, k, mask=None):
    d_k = q.shape[-1]
    scores = q @ k.transpose(-2, -1) * math.sqrt(d_k)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return scores.softmax(dim=-1)


@wrong("1.1", "mask polarity: masked_fill(mask, -inf) hides the allowed pairs instead of the forbidden ones",
       names=[r"polarity", r"(invert\w*|negat\w*|flip\w*)[^.]{0,20}(the )?mask",
              r"mask[^.]{0,40}(inverted|negated|flipped|opposite|backwards)",
              r"True (=|means|is|for)[^.]{0,20}(may|allowed|attend)", r"masked (out )?the allowed",
              r"allowed (entries|pairs|positions|keys)[^.]{0,40}(masked|-inf|−∞|forbidden|zero)"])
def weights_mask_polarity(q, k, mask=None):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(mask, float("-inf"))
    return scores.softmax(dim=-1)


@wrong("1.1", "filled the forbidden scores with 0 instead of -inf: they keep a weight e^0 / Σ",
       names=[r"(fill\w*|set\w*)[^.]{0,40}\b(0|zero)\b[^.]{0,30}(instead of|not|rather than)",
              r"(instead of|not|rather than) [−-]\s*(inf|∞)", r"score of (0|zero)", r"e\^0",
              r"(forbidden|masked)[^.]{0,40}(still )?(get|gets|receive|have|has|keep)[^.]{0,20}weight",
              r"(nonzero|non-zero) weight[^.]{0,40}(forbidden|masked)"])
def weights_fill_zero(q, k, mask=None):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, 0.0)
    return scores.softmax(dim=-1)


@wrong("1.1", "softmax(dim=-1, dtype=torch.float32) 'for stability': float64 inputs come back in float32",
       names=[r"float32", r"single[- ]precision", r"dtype\s*=\s*torch\.float32"])
def weights_float32_softmax(q, k, mask=None):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return scores.softmax(dim=-1, dtype=torch.float32)


@wrong("1.1", "scores as K Qᵀ (k @ qᵀ): the (Tk, Tq) transpose, normalised over the queries",
       names=[r"\(\.\.\., ?Tk, ?Tq\)", r"transpos\w*[^.]{0,30}(scores|weights|\bS\b|\bP\b)", r"K\s*Q\s*[ᵀ⊤]",
              r"(rows?|first axis) (are|is|index\w*) (the )?keys",
              r"(normali[sz]\w*|softmax|sum\w* to 1) over (the )?quer",
              r"(q|Q) and (k|K)[^.]{0,30}(swapped|exchanged|order)"])
def weights_keys_by_queries(q, k, mask=None):
    scores = k @ q.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return scores.softmax(dim=-1)


# ----- Exercise 1.2: softmax backward -------------------------------------------------------------------------

@wrong("1.2", "⟨g, p⟩ summed over dim=0 (down the columns) instead of along each row",
       names=[r"dim\s*=\s*-1", r"dim\s*=\s*0",
              r"(sum|⟨g, ?p⟩|dot product)\w*[^.]{0,40}(over|along) (the )?(first|batch|column|query|axis 0|dim 0)",
              r"(over|along) (each|every|the) row\b", r"over (the )?columns", r"axis 0"])
def softmax_backward_sum_dim0(p, grad_p):
    return p * (grad_p - (grad_p * p).sum(dim=0, keepdim=True))


@wrong("1.2", "forgot the outer factor p: returned g − ⟨g, p⟩ instead of p ⊙ (g − ⟨g, p⟩)",
       names=[r"factor (of )?p\b", r"(multipl\w*|weight\w*) by p\b",
              r"(missing|forgot\w*|without|drop\w*|lack\w*)[^.]{0,30}\bp\s*(⊙|\*|·|×)",
              r"(missing|forgot\w*|without|drop\w*)[^.]{0,20}(the )?(outer|leading) (factor )?p\b"])
def softmax_backward_no_outer_p(p, grad_p):
    return grad_p - (grad_p * p).sum(dim=-1, keepdim=True)


@wrong("1.2", "p and g swapped in the formula: g ⊙ (p − ⟨g, p⟩)",
       names=[r"\b(p|probabilit\w*|softmax output)\b[^.]{0,10} and (g|grad_p|(the )?(upstream )?gradient)\b"
              r"[^.]{0,30}(swapped|exchanged|mixed up|confused|reversed)",
              r"(swapped|exchanged|mixed up|confused)[^.]{0,20}\b(p|grad_p)\b and \b(g|p|grad_p)\b",
              r"roles? of (p|grad_p) and", r"g\s*(⊙|\*|·)\s*\(p\s*[−-]"])
def softmax_backward_swapped(p, grad_p):
    return grad_p * (p - (grad_p * p).sum(dim=-1, keepdim=True))


@wrong("1.2", "used the log-softmax backward, g − p · Σ g, instead of the softmax one",
       names=[r"log[- ]?softmax", r"(sum|Σ)( of)? (g|grad_p)\b[^.]{0,40}(instead of|not|in place of)",
              r"(unweighted|plain) sum", r"weighted by p\b"])
def softmax_backward_log_softmax(p, grad_p):
    return grad_p - p * grad_p.sum(dim=-1, keepdim=True)


@wrong("1.2", "⟨g, p⟩ as a matrix product grad_p @ pᵀ (..., T, T) instead of a row-wise dot product",
       names=[r"row[- ]?(wise|by[- ]row)", r"one number per row",
              r"(matrix product|matmul|@)[^.]{0,40}(instead of|not|rather than)",
              r"(instead of|not|rather than)[^.]{0,20}(elementwise|element-wise|per[- ]row)",
              r"\(\.\.\., ?T, ?T\)", r"outer product"])
def softmax_backward_matmul(p, grad_p):
    dot = grad_p @ p.transpose(-2, -1)
    return p * (grad_p - dot)


# ----- Exercise 1.3: attention as an autograd.Function --------------------------------------------------------

@wrong("1.3", "dQ = dS K without the factor 1/√d_k (dK has it)",
       names=[r"\b(dQ|grad_q|dL/dQ)\b[^.?]{0,60}(1\s*/\s*√\s*d_?k|scale|factor c\b|√\s*d_?k)",
              r"(1\s*/\s*√\s*d_?k|scale|factor c\b)[^.?]{0,40}\b(dQ|grad_q|dL/dQ)\b",
              r"√\s*d_?k (times|×) too (large|big)"])
class AttentionFunctionUnscaledDQ(torch.autograd.Function):
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
        grad_q = grad_scores @ k
        grad_k = scale * grad_scores.transpose(-2, -1) @ q
        return grad_q, grad_k, grad_v


@wrong("1.3", "dV = P dO, the transpose of P missing (shape fits only when Tq = Tk)",
       names=[r"(missing|forgot\w*|without)[^.?]{0,30}(P\s*[ᵀ⊤]|transpos)", r"transpos\w*[^.?]{0,40}\b(P|dV|grad_v)\b",
              r"\b(dV|grad_v|dL/dV)\b[^.?]{0,40}transpos", r"\bP\s*dO\b[^.?]{0,30}(instead of|not|rather than)",
              r"(instead of|not|rather than) P\s*[ᵀ⊤]\s*dO"])
class AttentionFunctionDVNoTranspose(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v):
        p = attention_weights(q, k)
        ctx.save_for_backward(q, k, v, p)
        return p @ v

    @staticmethod
    def backward(ctx, grad_out):
        q, k, v, p = ctx.saved_tensors
        scale = 1 / math.sqrt(q.shape[-1])
        grad_v = p @ grad_out
        grad_scores = softmax_backward(p, grad_out @ v.transpose(-2, -1))
        return scale * grad_scores @ k, scale * grad_scores.transpose(-2, -1) @ q, grad_v


@wrong("1.3", "backward's scale taken from v.shape[-1] (d_v) instead of d_k: right only when d_v = d_k",
       names=[r"d_?v\b[^.]{0,40}(instead of|not|in place of|rather than)[^.]{0,15}d_?k",
              r"d_?k\b,? not d_?v\b", r"v\.shape\[-1\]", r"(width|size|dim\w*) of (the )?(values|v)\b",
              r"q\.shape\[-1\]", r"(depends on|uses?) d_?v\b"])
class AttentionFunctionScaleFromDv(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v):
        p = attention_weights(q, k)
        ctx.save_for_backward(q, k, v, p)
        return p @ v

    @staticmethod
    def backward(ctx, grad_out):
        q, k, v, p = ctx.saved_tensors
        scale = 1 / math.sqrt(v.shape[-1])
        grad_v = p.transpose(-2, -1) @ grad_out
        grad_scores = softmax_backward(p, grad_out @ v.transpose(-2, -1))
        return scale * grad_scores @ k, scale * grad_scores.transpose(-2, -1) @ q, grad_v


@wrong("1.3", "dK = c · dSᵀ K: multiplied by K instead of Q",
       names=[r"\b(K|k)\b (in place of|instead of) \b(Q|q)\b", r"\b(Q|q)\b,? not \b(K|k)\b", r"dS\s*[ᵀ⊤]\s*K\b",
              r"\b(dK|grad_k|dL/dK)\b[^.?=]{0,40}(multipl\w*|times|uses?)[^.?]{0,20}\b(K|k)\b",
              r"(multipl\w*|times) (by )?\b(K|k)\b[^.?]{0,30}(instead of|not|rather than)[^.?]{0,10}\b(Q|q)\b"])
class AttentionFunctionDKTimesK(torch.autograd.Function):
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
        grad_k = scale * grad_scores.transpose(-2, -1) @ k
        return grad_q, grad_k, grad_v


# ----- Exercise 1.4: multi-head self-attention ----------------------------------------------------------------

class _MultiHeadBase(nn.Module):
    def __init__(self, d_model, n_heads):
        super().__init__()
        assert d_model % n_heads == 0, f"d_model={d_model} must be a multiple of n_heads={n_heads}"
        self.n_heads = n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)


@wrong("1.4", "key_padding_mask used without ~: only the padded keys may be attended to",
       names=[r"True (=|means|is|for|marks)[^.]{0,20}(padd\w*|ignore)",
              r"(invert|negat)\w*[^.]{0,20}(the )?(key_)?padding", r"~\s*key_padding_mask",
              r"(key_)?padding[^.]{0,40}(opposite|convention|polarity|inverted|negated)",
              r"(attend\w*|attention) (only )?to (the )?padd\w*",
              r"(only|just) (the )?padd\w* (keys|tokens)[^.]{0,30}(visible|attended|allowed)"])
class MultiHeadPaddingPolarity(_MultiHeadBase):
    def forward(self, x, causal=False, key_padding_mask=None):
        B, T, D = x.shape
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        q, k, v = (rearrange(t, "B T (H Dh) -> B H T Dh", H=self.n_heads) for t in (q, k, v))
        may_attend = torch.ones(T, T, dtype=torch.bool, device=x.device)
        if causal:
            may_attend = may_attend.tril()
        if key_padding_mask is not None:
            may_attend = may_attend & key_padding_mask[:, None, None, :]
        heads = attention(q, k, v, may_attend)
        return self.out(rearrange(heads, "B H T Dh -> B T (H Dh)"))


@wrong("1.4", "padding mask indexed [:, None, :, None]: it hides the padded queries (rows), not the keys",
       names=[r"padd\w*[^.]{0,60}(quer(y|ies)|rows?)[^.]{0,30}(instead of|not|rather than)[^.]{0,10}keys?",
              r"(hides?|mask\w*) (the )?(padded )?quer(y|ies)", r"key axis", r"last axis[^.]{0,30}keys?",
              r"keys?,? not (the )?quer", r"\[:, ?None, ?None, ?:\]"])
class MultiHeadPaddingOnQueries(_MultiHeadBase):
    def forward(self, x, causal=False, key_padding_mask=None):
        B, T, D = x.shape
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        q, k, v = (rearrange(t, "B T (H Dh) -> B H T Dh", H=self.n_heads) for t in (q, k, v))
        may_attend = torch.ones(T, T, dtype=torch.bool, device=x.device)
        if causal:
            may_attend = may_attend.tril()
        if key_padding_mask is not None:
            may_attend = may_attend & ~key_padding_mask[:, None, :, None]  # (B, 1, T, 1)
        heads = attention(q, k, v, may_attend)
        return self.out(rearrange(heads, "B H T Dh -> B T (H Dh)"))


@wrong("1.4", "unpacked the projection as k, q, v = chunk(3): Q and K swapped against the packed [W_Q; W_K; W_V]",
       names=[r"\b(q|Q), ?(k|K), ?(v|V)\b[^.]{0,20}order", r"order[^.]{0,20}\b(q|Q), ?(k|K), ?(v|V)\b",
              r"\[W_?Q; ?W_?K; ?W_?V\]", r"\b(q|Q) and (k|K)\b[^.]{0,30}(swapped|exchanged|mixed|reversed)",
              r"(swapped|exchanged|mixed up)[^.]{0,20}\b(q|Q) and (k|K)\b", r"chunk"])
class MultiHeadKQVOrder(_MultiHeadBase):
    def forward(self, x, causal=False, key_padding_mask=None):
        B, T, D = x.shape
        k, q, v = self.qkv(x).chunk(3, dim=-1)
        q, k, v = (rearrange(t, "B T (H Dh) -> B H T Dh", H=self.n_heads) for t in (q, k, v))
        may_attend = torch.ones(T, T, dtype=torch.bool, device=x.device)
        if causal:
            may_attend = may_attend.tril()
        if key_padding_mask is not None:
            may_attend = may_attend & ~key_padding_mask[:, None, None, :]
        heads = attention(q, k, v, may_attend)
        return self.out(rearrange(heads, "B H T Dh -> B T (H Dh)"))


@wrong("1.4", "attention written inline with the scores scaled by √D (the model width) instead of √Dh",
       names=[r"√\s*D_?h\b[^.]{0,30}(instead of|not|rather than)[^.]{0,10}√\s*D\b",
              r"√\s*D\b[^.]{0,30}(instead of|not|rather than)[^.]{0,10}√\s*D_?h", r"head (width|dim\w*|size)",
              r"d_model", r"width of (a|one|each) head", r"(model|full) width"])
class MultiHeadScaleByModelWidth(_MultiHeadBase):
    def forward(self, x, causal=False, key_padding_mask=None):
        B, T, D = x.shape
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        q, k, v = (rearrange(t, "B T (H Dh) -> B H T Dh", H=self.n_heads) for t in (q, k, v))
        may_attend = torch.ones(T, T, dtype=torch.bool, device=x.device)
        if causal:
            may_attend = may_attend.tril()
        if key_padding_mask is not None:
            may_attend = may_attend & ~key_padding_mask[:, None, None, :]
        scores = q @ k.transpose(-2, -1) / math.sqrt(D)
        scores = scores.masked_fill(~may_attend, float("-inf"))
        heads = scores.softmax(dim=-1) @ v
        return self.out(rearrange(heads, "B H T Dh -> B T (H Dh)"))


@wrong("1.4", "causal mask .tril(diagonal=-1): a token may not attend to itself (row 0 is all -inf → NaN)",
       names=[r"diagonal", r"itself", r"own (position|token)",
              r"(token|query|row) 0[^.]{0,40}(nothing|no key|NaN|empty|all)", r"tril\(\)"])
class MultiHeadStrictlyCausal(_MultiHeadBase):
    def forward(self, x, causal=False, key_padding_mask=None):
        B, T, D = x.shape
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        q, k, v = (rearrange(t, "B T (H Dh) -> B H T Dh", H=self.n_heads) for t in (q, k, v))
        may_attend = torch.ones(T, T, dtype=torch.bool, device=x.device)
        if causal:
            may_attend = may_attend.tril(diagonal=-1)  # only the past
        if key_padding_mask is not None:
            may_attend = may_attend & ~key_padding_mask[:, None, None, :]
        heads = attention(q, k, v, may_attend)
        return self.out(rearrange(heads, "B H T Dh -> B T (H Dh)"))


# ----- Exercise 1.5: tiled attention --------------------------------------------------------------------------

@wrong("1.5", "rescaled the running sum by e^{m − m'} but not the output accumulator",
       names=[r"(output|accumulator|\ba\b)[^.?]{0,40}(not|never|without|missing|forgot\w*)[^.?]{0,30}(correct\w*|e\^|rescal\w*)",
              r"(not|never|without|missing|forgot\w*)[^.?]{0,30}(correct\w*|rescal\w*)[^.?]{0,40}(output|accumulator|\ba\b)",
              r"(correction|rescal\w*)[^.?]{0,30}(only|just) (to |on )?(ℓ|the (running )?sum|running_sum)",
              r"(ℓ|running_sum|the sum) but not (the )?(output|accumulator|\ba\b)"])
def tiled_output_not_rescaled(q, k, v, block_size=256):
    scale = 1 / math.sqrt(q.shape[-1])
    running_max = torch.full(q.shape[:-1] + (1,), -math.inf, dtype=q.dtype)
    running_sum = torch.zeros_like(running_max)
    output = torch.zeros(q.shape[:-1] + v.shape[-1:], dtype=q.dtype)
    for start in range(0, k.shape[-2], block_size):
        scores = q @ k[..., start:start + block_size, :].transpose(-2, -1) * scale
        new_max = torch.maximum(running_max, scores.amax(dim=-1, keepdim=True))
        correction = torch.exp(running_max - new_max)
        exp_scores = torch.exp(scores - new_max)
        running_sum = correction * running_sum + exp_scores.sum(dim=-1, keepdim=True)
        output = output + exp_scores @ v[..., start:start + block_size, :]
        running_max = new_max
    return output / running_sum


@wrong("1.5", "returned the accumulator a without dividing by ℓ at the end",
       names=[r"divid\w*[^.]{0,30}(by )?(ℓ|running_sum|the (running )?sum|denominator)",
              r"normali[sz]\w*[^.]{0,30}(at the end|by ℓ|running_sum|denominator)",
              r"unnormali[sz]ed", r"(forgot|missing)[^.]{0,30}(ℓ|denominator|normali[sz])"])
def tiled_no_final_division(q, k, v, block_size=256):
    scale = 1 / math.sqrt(q.shape[-1])
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
    return output


@wrong("1.5", "looped over Tk // block_size full blocks: the shorter last block is never visited",
       names=[r"(last|final|shorter|partial|remaining|trailing) (block|keys)", r"ragged", r"remainder",
              r"not a multiple", r"(keys|tail)[^.]{0,40}(skipped|missing|ignored|never)", r"Tk\s*//\s*block"])
def tiled_drops_last_block(q, k, v, block_size=256):
    scale = 1 / math.sqrt(q.shape[-1])
    running_max = torch.full(q.shape[:-1] + (1,), -math.inf, dtype=q.dtype)
    running_sum = torch.zeros_like(running_max)
    output = torch.zeros(q.shape[:-1] + v.shape[-1:], dtype=q.dtype)
    for index in range(k.shape[-2] // block_size):
        start = index * block_size
        scores = q @ k[..., start:start + block_size, :].transpose(-2, -1) * scale
        new_max = torch.maximum(running_max, scores.amax(dim=-1, keepdim=True))
        correction = torch.exp(running_max - new_max)
        exp_scores = torch.exp(scores - new_max)
        running_sum = correction * running_sum + exp_scores.sum(dim=-1, keepdim=True)
        output = correction * output + exp_scores @ v[..., start:start + block_size, :]
        running_max = new_max
    return output / running_sum


@wrong("1.5", "v_block sliced from k (copy-paste of the k_block line): averages the keys, not the values",
       names=[r"(block|slice|rows?) of k\b[^.]{0,40}(instead of|not|in place of|as)",
              r"keys? (as|in place of|instead of) (the )?values", r"(from|of) k\b,? not (from )?v\b", r"v_block",
              r"values?[^.]{0,20}(sliced|taken|read) from (the )?k(eys)?\b"])
def tiled_values_from_keys(q, k, v, block_size=256):
    scale = 1 / math.sqrt(q.shape[-1])
    running_max = torch.full(q.shape[:-1] + (1,), -math.inf, dtype=q.dtype)
    running_sum = torch.zeros_like(running_max)
    output = torch.zeros(q.shape[:-1] + v.shape[-1:], dtype=q.dtype)
    for start in range(0, k.shape[-2], block_size):
        k_block = k[..., start:start + block_size, :]
        v_block = k[..., start:start + block_size, :]
        scores = q @ k_block.transpose(-2, -1) * scale
        new_max = torch.maximum(running_max, scores.amax(dim=-1, keepdim=True))
        correction = torch.exp(running_max - new_max)
        exp_scores = torch.exp(scores - new_max)
        running_sum = correction * running_sum + exp_scores.sum(dim=-1, keepdim=True)
        output = correction * output + exp_scores @ v_block
        running_max = new_max
    return output / running_sum


@wrong("1.5", "correction e^{m' − m} (sign flipped): ≥ 1, and inf · 0 = NaN on the first block",
       names=[r"e\^\{?\s*\(?m'\s*[−-]\s*m\b", r"\bsign\b", r"m'\s*[−-]\s*m\b",
              r"(new|old) max\w*[^.]{0,40}(minus|subtract)",
              r"(correction|e\^)[^.]{0,40}(≥|greater than|at least|above) 1",
              r"exponent[^.]{0,30}(negat|flip|sign)"])
def tiled_correction_sign(q, k, v, block_size=256):
    scale = 1 / math.sqrt(q.shape[-1])
    running_max = torch.full(q.shape[:-1] + (1,), -math.inf, dtype=q.dtype)
    running_sum = torch.zeros_like(running_max)
    output = torch.zeros(q.shape[:-1] + v.shape[-1:], dtype=q.dtype)
    for start in range(0, k.shape[-2], block_size):
        scores = q @ k[..., start:start + block_size, :].transpose(-2, -1) * scale
        new_max = torch.maximum(running_max, scores.amax(dim=-1, keepdim=True))
        correction = torch.exp(new_max - running_max)
        exp_scores = torch.exp(scores - new_max)
        running_sum = correction * running_sum + exp_scores.sum(dim=-1, keepdim=True)
        output = correction * output + exp_scores @ v[..., start:start + block_size, :]
        running_max = new_max
    return output / running_sum


# ----- Exercise 1.6: FNet's Fourier mixing --------------------------------------------------------------------

@wrong("1.6", "dft_matrix: e^{+2πi jk/n}, the inverse DFT's sign (the conjugate of eq. (1.12))",
       names=[r"\bsign\b", r"inverse (DFT|transform|Fourier)", r"conjugat", r"\+\s*2\s*π\s*i",
              r"positive (exponent|angle|sign)", r"e\^\{?\s*\+"],
       arguments=with_reference_mixing)
def dft_positive_exponent(n, dtype=torch.complex64):
    j = torch.arange(n, dtype=torch.float64)
    angle = 2 * math.pi * torch.outer(j, j) / n
    return torch.polar(torch.ones_like(angle), angle).to(dtype)


@wrong("1.6", "dft_matrix: indices j, k = 1..n instead of 0..n−1",
       names=[r"0\s*(,|\.\.|…|to)\s*(…\s*,?\s*)?n\s*[−-]\s*1", r"start\w* (at|from) (0|zero)", r"1-based",
              r"off[- ]by[- ]one", r"arange\(n\)", r"ind(ex|ices)[^.]{0,20}from (1|one)"],
       arguments=with_reference_mixing)
def dft_one_based(n, dtype=torch.complex64):
    j = torch.arange(1, n + 1, dtype=torch.float64)
    angle = -2 * math.pi * torch.outer(j, j) / n
    return torch.polar(torch.ones_like(angle), angle).to(dtype)


@wrong("1.6", "dft_matrix: j * j / n elementwise, a vector of n entries, not the (n, n) grid of products jk",
       names=[r"outer", r"\(n, ?n\)", r"grid", r"vector,? not (a )?matrix", r"1-?D",
              r"(one|single) (index|axis)"],
       arguments=with_reference_mixing)
def dft_vector(n, dtype=torch.complex64):
    j = torch.arange(n, dtype=torch.float64)
    angle = -2 * math.pi * j * j / n
    return torch.polar(torch.ones_like(angle), angle).to(dtype)


@wrong("1.6", "fourier_mixing: kept the magnitude .abs() of W_T X W_D instead of its real part",
       names=[r"\.real", r"real part", r"magnitude", r"\.abs\(\)", r"modulus", r"absolute value"],
       arguments=with_reference_dft, learner_name="fourier_mixing")
def mixing_magnitude(x):
    T, D = x.shape[-2:]
    complex_dtype = torch.complex128 if x.dtype == torch.float64 else torch.complex64
    W_T, W_D = dft_matrix(T, complex_dtype), dft_matrix(D, complex_dtype)
    return (W_T @ x.to(complex_dtype) @ W_D).abs().to(x.dtype)


@wrong("1.6", "fourier_mixing: always complex64 matrices, so float64 inputs get float32 precision",
       names=[r"complex128", r"complex64", r"precision", r"single[- ]precision"],
       arguments=with_reference_dft, learner_name="fourier_mixing")
def mixing_always_complex64(x):
    T, D = x.shape[-2:]
    W_T, W_D = dft_matrix(T), dft_matrix(D)
    return (W_T @ x.to(torch.complex64) @ W_D).real.to(x.dtype)


@wrong("1.6", "fourier_mixing: only the sequence transform W_T X, the hidden-axis W_D left out",
       names=[r"hidden (axis|dimension|features?)", r"(missing|forgot\w*|without|no)[^.]{0,20}W_?D\b",
              r"W_?D\b[^.]{0,20}(missing|left out|not applied|never applied)", r"both (axes|transforms|dimensions)",
              r"(missing|forgot\w*|only)[^.]{0,30}(one|second|sequence) (transform|axis)",
              r"(only|just) (along|over) the sequence"],
       arguments=with_reference_dft, learner_name="fourier_mixing")
def mixing_sequence_only(x):
    T = x.shape[-2]
    complex_dtype = torch.complex128 if x.dtype == torch.float64 else torch.complex64
    W_T = dft_matrix(T, complex_dtype)
    return (W_T @ x.to(complex_dtype)).real.to(x.dtype)
