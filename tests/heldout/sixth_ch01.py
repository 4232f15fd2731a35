"""Sixth blind held-out set for Chapter 01 (attention): wrong answers written as a learner writes the exercise cell.

Written without reading the checks or seeing any of their messages. It aims at the mistakes learners make most
often, so some are kin to those of earlier sets, but each is written anew, in another form where one exists. The
helpers a learner's cell uses from earlier cells (``attention_weights``, ``softmax_backward``, ``attention``,
``dft_matrix``, ``fourier_mixing``) are the chapter's reference solutions, so each answer holds exactly one mistake.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F
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

@wrong("1.1", "softmax(dim=-2): normalised over the queries (each column sums to 1) instead of over the keys",
       names=[r"dim\s*=\s*-1", r"dim\s*=\s*-2", r"over the (keys|last ax[ie]s)[^.?;]{0,30}(not|instead|rather)", r"(not|instead of|rather than) over the (keys|last)", r"(rows?|each row)[^.?]{0,30}sum to (1|one)",
              r"columns?[^.?]{0,30}sum to (1|one)", r"over the quer(y|ies)", r"(quer(y|ies)|Tq) ax[ie]s[^.?]{0,30}(instead|not|rather)",
              r"wrong ax[ie]s[^.?]{0,30}softmax|softmax[^.?]{0,30}wrong ax[ie]s"])
def weights_softmax_over_queries(q, k, mask=None):
    d_k = q.shape[-1]
    scores = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(d_k)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, dim=-2)


@wrong("1.1", "d_k = q.size(-2): the number of queries Tq, not the feature width, so the scale is 1/√Tq",
       names=[r"size\(-1\)|shape\[-1\]", r"(number of|count of) quer(y|ies)", r"\bTq\b[^.?]{0,30}(instead of|not|in place of|rather than)",
              r"(feature|last|head) (width|ax[ie]s|dim\w*)[^.?]{0,30}d_?k|d_?k[^.?]{0,30}(feature|last|head) (width|ax[ie]s|dim\w*)",
              r"√\s*T_?q|sqrt\(T_?q\)", r"(query|sequence) length"])
def weights_dk_from_query_count(q, k, mask=None):
    d_k = q.size(-2)
    scores = q @ k.transpose(-2, -1) / d_k ** 0.5
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return scores.softmax(dim=-1)


@wrong("1.1", "torch.where(mask, -inf, scores): -inf put where the mask is True (allowed), the forbidden pairs kept",
       names=[r"polarity", r"(invert\w*|negat\w*|flip\w*|revers\w*)[^.?]{0,20}(the )?mask", r"~\s*mask",
              r"True (means|=|marks|is)[^.?]{0,20}(allowed|may attend|attend)",
              r"(allowed|permitted) (pairs|positions|keys|scores)[^.?]{0,30}(hidden|masked|-inf|−∞|blocked)",
              r"(forbidden|masked)[^.?]{0,30}(kept|visible|attended|not masked)",
              r"torch\.where\([^)]{0,20}(order|swapped|branches)"])
def weights_where_mask_inverted(q, k, mask=None):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = torch.where(mask, torch.full_like(scores, float("-inf")), scores)
    return scores.softmax(dim=-1)


@wrong("1.1", "F.softmax(scores) without dim: the implicit dim is 0 for 3-D inputs (the batch), 1 for 2-D and 4-D",
       names=[r"implicit dim", r"(without|no|missing|pass|give|explicit)[^.?]{0,20}\bdim\b", r"dim\s*=\s*-1",
              r"over the (keys|last ax[ie]s)[^.?;]{0,30}(not|instead|rather)", r"(not|instead of|rather than) over the (keys|last)", r"(rows?|each row)[^.?]{0,30}sum to (1|one)",
              r"(legacy|deprecated|default) (dim|axis)", r"over the batch ax[ie]s"])
def weights_softmax_implicit_dim(q, k, mask=None):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return F.softmax(scores)


# ----- Exercise 1.2: softmax backward -------------------------------------------------------------------------

@wrong("1.2", "p ⊙ g − p² ⊙ g: only the diagonal entries p_i(1 − p_i) of the Jacobian, the −p_i p_j (i ≠ j) dropped",
       names=[r"diagonal", r"cross[- ]terms?", r"off[- ]diagonal", r"i\s*(≠|!=)\s*j", r"p_?i\s*p_?j",
              r"⟨\s*g\s*,\s*p\s*⟩[^.?]{0,40}(missing|instead|not|rather)", r"(sum|Σ)[^.?]{0,30}over (the )?(row|j\b)",
              r"p\s*(²|\*\*\s*2|\^2)\s*(⊙|\*|·)?\s*g[^.?]{0,30}(instead|not|rather)"])
def softmax_backward_diagonal_only(p, grad_p):
    return p * grad_p - p.pow(2) * grad_p


@wrong("1.2", "⟨g, p⟩ summed over dim=-2 with keepdim: down each column (across rows), not along each row",
       names=[r"dim\s*=\s*-1", r"dim\s*=\s*-2", r"(along|over|within) (each|the|every) row", r"(across|down) (the )?(rows|columns?)",
              r"row[- ]?wise", r"one (number|value|dot product) per row", r"last ax[ie]s[^.?]{0,30}(sum|⟨)",
              r"(sum|⟨g, ?p⟩)[^.?]{0,30}(wrong|second[- ]to[- ]last) ax"])
def softmax_backward_column_sum(p, grad_p):
    inner = torch.sum(grad_p * p, dim=-2, keepdim=True)
    return p * (grad_p - inner)


@wrong("1.2", "p ⊙ (⟨g, p⟩ − g): the bracket written the other way round, the whole gradient negated",
       names=[r"\bsign\b", r"negat(ed|ive of)[^.?]{0,20}(gradient|result|sign|whole|answer)", r"\bminus\b", r"(opposite|reversed|flipped) (sign|order)", r"g\s*[−-]\s*⟨\s*g\s*,\s*p\s*⟩",
              r"−\s*1\s*×|times\s*−\s*1|-1\s*(×|times)"])
def softmax_backward_negated(p, grad_p):
    dot = (p * grad_p).sum(-1, keepdim=True)
    return p * (dot - grad_p)


# ----- Exercise 1.3: autograd Function ------------------------------------------------------------------------

@wrong("1.3", "dK = dSᵀ Q without the factor c = 1/√d_k (dQ has it)",
       names=[r"\b(dK|grad_k|dL/dK)\b[^.?]{0,60}(1\s*/\s*√\s*d_?k|scale|factor|√\s*d_?k|sqrt)",
              r"(scale|factor|1\s*/\s*√\s*d_?k)[^.?]{0,60}\b(dK|grad_k|dL/dK|keys?)\b",
              r"√\s*d_?k\s*(times|×)\s*too (large|big)"])
class AttentionFunctionKeysUnscaled(torch.autograd.Function):
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
        grad_s = softmax_backward(p, grad_p)
        grad_q = scale * grad_s @ k
        grad_k = grad_s.transpose(-2, -1) @ q
        return grad_q, grad_k, grad_v


@wrong("1.3", "backward multiplies dQ and dK by √d_k instead of 1/√d_k (scale = math.sqrt(d_k))",
       names=[r"1\s*/\s*√\s*d_?k[^.?;]{0,30}(not|instead|rather)", r"(not|instead of|rather than)[^.?;]{0,10}√\s*d_?k", r"1\s*/\s*sqrt", r"(multipl\w*|times)[^.?]{0,20}(by )?√\s*d_?k", r"invert\w*[^.?]{0,20}(scale|factor)",
              r"d_?k\s*(times|×)\s*too (large|big)",
              r"divid\w*[^.?]{0,20}(by )?√\s*d_?k[^.?]{0,30}(not|instead|rather)"])
class AttentionFunctionScaleMultiplied(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v):
        p = attention_weights(q, k)
        ctx.save_for_backward(q, k, v, p)
        return p @ v

    @staticmethod
    def backward(ctx, grad_out):
        q, k, v, p = ctx.saved_tensors
        scale = math.sqrt(q.shape[-1])
        grad_v = p.transpose(-2, -1) @ grad_out
        grad_s = softmax_backward(p, grad_out @ v.transpose(-2, -1))
        grad_q = grad_s @ k * scale
        grad_k = grad_s.transpose(-2, -1) @ q * scale
        return grad_q, grad_k, grad_v


@wrong("1.3", "dK and dV with .T (grad_s.T, p.T): on a batched (B, T, T) tensor .T reverses every axis, not the last two",
       names=[r"\.mT\b", r"transpose\(-2,\s*-1\)", r"last two ax[ie]s", r"(revers\w*|permut\w*) (every|all) (the )?ax",
              r"\.T\b[^.?]{0,40}(batch|ax[ie]s|revers|more than two)", r"(batch|leading) ax[ie]s[^.?]{0,30}transpos"])
class AttentionFunctionDotT(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v):
        p = attention_weights(q, k)
        ctx.save_for_backward(q, k, v, p)
        return p @ v

    @staticmethod
    def backward(ctx, grad_out):
        q, k, v, p = ctx.saved_tensors
        scale = 1 / math.sqrt(q.shape[-1])
        grad_v = p.T @ grad_out
        grad_s = softmax_backward(p, grad_out @ v.transpose(-2, -1))
        grad_q = scale * grad_s @ k
        grad_k = scale * grad_s.T @ q
        return grad_q, grad_k, grad_v


@wrong("1.3", "dK = c · Pᵀ Q: the weights P where the score gradient dS of eq. (1.8) belongs",
       names=[r"\bdS\b[^.?]{0,40}(instead of|not|in place of|rather than)[^.?]{0,10}\bP\b",
              r"\bP\b[^.?]{0,40}(instead of|in place of|where)[^.?]{0,20}\bdS\b", r"dS\s*[ᵀ⊤]\s*Q", r"dS\^T\s*Q",
              r"\b(dK|grad_k|dL/dK)\b[^.?]{0,50}(dS|softmax_backward|score gradient|grad_s)",
              r"(weights|probabilities) (P )?(used )?(instead of|in place of|where)[^.?]{0,30}(gradient|dS)"])
class AttentionFunctionKeysFromWeights(torch.autograd.Function):
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
        grad_s = softmax_backward(p, grad_out @ v.transpose(-2, -1))
        grad_q = scale * grad_s @ k
        grad_k = scale * p.transpose(-2, -1) @ q
        return grad_q, grad_k, grad_v


# ----- Exercise 1.4: multi-head self-attention ----------------------------------------------------------------

class _MultiHeadBase(nn.Module):
    def __init__(self, d_model, n_heads):
        super().__init__()
        assert d_model % n_heads == 0, f"d_model={d_model} must be a multiple of n_heads={n_heads}"
        self.n_heads = n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)


@wrong("1.4", "heads split with .reshape(B, H, T, Dh) straight from (B, T, D): tokens and features scrambled, no transpose",
       names=[r"transpos\w*[^.?]{0,30}(heads?|H and T|T and H|ax[ie]s 1 and 2|before (the )?(view|reshape)|\(1, ?2\))", r"B T \(H Dh\) -> B H T Dh", r"\(B, ?T, ?H, ?Dh\)", r"(split|separat)\w*[^.?]{0,30}heads?",
              r"heads?[^.?]{0,30}(split|separat|scrambl|mix)\w*", r"(view|reshape)[^.?]{0,40}(order|layout|scrambl|memory)",
              r"(view|reshape)\w*[^.?]{0,30}(directly|straight)"])
class MultiHeadViewWithoutTranspose(_MultiHeadBase):
    def forward(self, x, causal=False, key_padding_mask=None):
        B, T, D = x.shape
        H, Dh = self.n_heads, D // self.n_heads
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        q, k, v = q.reshape(B, H, T, Dh), k.reshape(B, H, T, Dh), v.reshape(B, H, T, Dh)
        may_attend = torch.ones(T, T, dtype=torch.bool, device=x.device)
        if causal:
            may_attend = may_attend.tril()
        if key_padding_mask is not None:
            may_attend = may_attend & ~key_padding_mask[:, None, None, :]
        heads = attention(q, k, v, may_attend)
        return self.out(heads.transpose(1, 2).reshape(B, T, D))


@wrong("1.4", "q, v, k = self.qkv(x).chunk(3): the packed projection unpacked in the wrong order (K and V exchanged)",
       names=[r"\bq, ?k, ?v\b", r"(order|packing)[^.?]{0,40}(W_?Q|q\b|quer)", r"W_?Q\s*,\s*W_?K\s*,\s*W_?V",
              r"(keys?|k)\b[^.?]{0,20}(and|&) (values?|v)\b[^.?]{0,30}(swapped|exchanged|mixed|wrong order)",
              r"(swapped|exchanged|mixed up)[^.?]{0,30}(keys?|K)\b[^.?]{0,10}(and|&) (values?|V)\b",
              r"(chunk|unpack)\w*[^.?]{0,40}order"])
class MultiHeadChunkOrder(_MultiHeadBase):
    def forward(self, x, causal=False, key_padding_mask=None):
        B, T, D = x.shape
        q, v, k = self.qkv(x).chunk(3, dim=-1)
        q, k, v = (rearrange(t, "B T (H Dh) -> B H T Dh", H=self.n_heads) for t in (q, k, v))
        may_attend = torch.ones(T, T, dtype=torch.bool, device=x.device)
        if causal:
            may_attend = may_attend.tril()
        if key_padding_mask is not None:
            may_attend = may_attend & ~key_padding_mask[:, None, None, :]
        heads = attention(q, k, v, may_attend)
        return self.out(rearrange(heads, "B H T Dh -> B T (H Dh)"))


@wrong("1.4", "key_padding_mask[None, None, :, :] (1, 1, B, T): the batch axis lined up with the queries",
       names=[r"\[:, ?None, ?None, ?:\]", r"\(B, ?1, ?1, ?T\)", r"batch ax[ie]s[^.?]{0,40}(quer|rows?|T\b|first|front)",
              r"(quer(y|ies)|rows?)[^.?]{0,30}batch", r"(each|every|per) (example|sequence|batch (item|element))[^.?]{0,30}(own|mask)",
              r"(padding|key_padding_mask)[^.?]{0,40}(batch|first) ax"])
class MultiHeadPaddingBatchAsQueries(_MultiHeadBase):
    def forward(self, x, causal=False, key_padding_mask=None):
        B, T, D = x.shape
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        q, k, v = (rearrange(t, "B T (H Dh) -> B H T Dh", H=self.n_heads) for t in (q, k, v))
        may_attend = torch.ones(T, T, dtype=torch.bool, device=x.device)
        if causal:
            may_attend = may_attend.tril()
        if key_padding_mask is not None:
            may_attend = may_attend & ~key_padding_mask[None, None, :, :]
        heads = attention(q, k, v, may_attend)
        return self.out(rearrange(heads, "B H T Dh -> B T (H Dh)"))


@wrong("1.4", "causal mask torch.triu(ones, diagonal=1), nn.Transformer's 'forbidden' mask, used as may_attend: each "
              "token attends only to the future, row T−1 to nothing",
       names=[r"tril", r"triu", r"future", r"upper[- ]triang", r"lower[- ]triang", r"(itself|past|earlier|preceding)",
              r"True (means|=|marks|is)[^.?]{0,20}(allowed|forbidden|masked|may attend)",
              r"(forbidden|allowed)[^.?]{0,30}(inverted|swapped|opposite|instead)"])
class MultiHeadCausalTriuAsAllowed(_MultiHeadBase):
    def forward(self, x, causal=False, key_padding_mask=None):
        B, T, D = x.shape
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        q, k, v = (rearrange(t, "B T (H Dh) -> B H T Dh", H=self.n_heads) for t in (q, k, v))
        may_attend = torch.ones(T, T, dtype=torch.bool, device=x.device)
        if causal:
            may_attend = torch.triu(may_attend, diagonal=1)
        if key_padding_mask is not None:
            may_attend = may_attend & ~key_padding_mask[:, None, None, :]
        heads = attention(q, k, v, may_attend)
        return self.out(rearrange(heads, "B H T Dh -> B T (H Dh)"))


@wrong("1.4", "causal=True and a padding mask given: the padding branch rebuilds may_attend from the padding mask "
              "alone, so the causal mask is thrown away",
       names=[r"both (masks|the causal)", r"both[^.?]{0,20}(causal|padding)", r"(combin\w*|and)[^.?]{0,30}(causal|both|two) mask",
              r"causal[^.?]{0,50}(lost|dropped|ignored|overwritten|discarded|replaced|thrown away)",
              r"(overwr\w*|replac\w*|discard\w*)[^.?]{0,30}causal", r"&\s*~?\s*key_padding|may_attend\s*&"])
class MultiHeadPaddingOverwritesCausal(_MultiHeadBase):
    def forward(self, x, causal=False, key_padding_mask=None):
        B, T, D = x.shape
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        q, k, v = (rearrange(t, "B T (H Dh) -> B H T Dh", H=self.n_heads) for t in (q, k, v))
        may_attend = torch.ones(T, T, dtype=torch.bool, device=x.device)
        if causal:
            may_attend = may_attend.tril()
        if key_padding_mask is not None:
            may_attend = (~key_padding_mask)[:, None, None, :].expand(B, 1, T, T)
        heads = attention(q, k, v, may_attend)
        return self.out(rearrange(heads, "B H T Dh -> B T (H Dh)"))


# ----- Exercise 1.5: tiled attention --------------------------------------------------------------------------

@wrong("1.5", "block scores q @ k_blockᵀ without the scale 1/√d: the softmax of QKᵀ, not of QKᵀ/√d",
       names=[r"(without|missing|forgot\w*|no)\b[^.?]{0,30}(scal\w*|1\s*/\s*√|√\s*d)", r"1\s*/\s*√\s*d_?k?\b[^.?]{0,30}(missing|forgot|not applied)", r"not (scaled|divided)"])
def tiled_without_scale(q, k, v, block_size=256):
    m = torch.full((*q.shape[:-1], 1), float("-inf"), dtype=q.dtype, device=q.device)
    l = torch.zeros_like(m)
    acc = q.new_zeros(*q.shape[:-1], v.shape[-1])
    for start in range(0, k.shape[-2], block_size):
        kb, vb = k[..., start:start + block_size, :], v[..., start:start + block_size, :]
        s = q @ kb.transpose(-2, -1)
        m_new = torch.maximum(m, s.amax(-1, keepdim=True))
        c = torch.exp(m - m_new)
        e = torch.exp(s - m_new)
        l = c * l + e.sum(-1, keepdim=True)
        acc = c * acc + e @ vb
        m = m_new
    return acc / l


@wrong("1.5", "running_max = new_max assigned before the correction e^{m − m'} is computed: the correction is always 1",
       names=[r"(before|after)[^.?]{0,40}(correction|rescal\w*|e\^)", r"(old|previous) (running )?max\w*",
              r"(correction|factor|e\^\{?m\s*[−-]\s*m'?\}?)[^.?]{0,30}(always|is|equals|becomes) (1|one)\b",
              r"(order|sequence) of (the )?(statements|updates|assignments|lines)",
              r"(never|not) rescal\w*", r"m\s*=\s*m'[^.?]{0,30}(too early|before|after)"])
def tiled_max_updated_too_early(q, k, v, block_size=256):
    scale = 1 / math.sqrt(q.shape[-1])
    running_max = torch.full(q.shape[:-1] + (1,), -math.inf, dtype=q.dtype, device=q.device)
    running_sum = torch.zeros_like(running_max)
    output = torch.zeros(q.shape[:-1] + v.shape[-1:], dtype=q.dtype, device=q.device)
    for start in range(0, k.shape[-2], block_size):
        scores = q @ k[..., start:start + block_size, :].transpose(-2, -1) * scale
        new_max = torch.maximum(running_max, scores.amax(dim=-1, keepdim=True))
        running_max = new_max
        correction = torch.exp(running_max - new_max)
        exp_scores = torch.exp(scores - new_max)
        running_sum = correction * running_sum + exp_scores.sum(dim=-1, keepdim=True)
        output = correction * output + exp_scores @ v[..., start:start + block_size, :]
    return output / running_sum


@wrong("1.5", "range(0, Tk - block_size, block_size): stops one block early, the last block of keys never visited",
       names=[r"(last|final|remaining) (block|keys|chunk)", r"range\(0, ?(Tk|k\.shape\[-2\]|T)\s*,", r"(every|all) (the )?keys",
              r"(stop\w*|end\w*) (one block )?(too )?early", r"off[- ]by[- ]one", r"(loop|range)[^.?]{0,30}(bound|end|stop|short)"])
def tiled_stops_one_block_early(q, k, v, block_size=256):
    scale = 1 / math.sqrt(q.shape[-1])
    Tk = k.shape[-2]
    running_max = torch.full(q.shape[:-1] + (1,), -math.inf, dtype=q.dtype, device=q.device)
    running_sum = torch.zeros_like(running_max)
    output = torch.zeros(q.shape[:-1] + v.shape[-1:], dtype=q.dtype, device=q.device)
    for start in range(0, max(Tk - block_size, 1), block_size):
        scores = q @ k[..., start:start + block_size, :].transpose(-2, -1) * scale
        new_max = torch.maximum(running_max, scores.amax(dim=-1, keepdim=True))
        correction = torch.exp(running_max - new_max)
        exp_scores = torch.exp(scores - new_max)
        running_sum = correction * running_sum + exp_scores.sum(dim=-1, keepdim=True)
        output = correction * output + exp_scores @ v[..., start:start + block_size, :]
        running_max = new_max
    return output / running_sum


@wrong("1.5", "blocks over range(0, k.shape[-1], block_size): the feature width d, not the number of keys Tk (-2)",
       names=[r"k\.shape\[-2\]", r"(number of|count of) keys", r"\bTk\b[^.?]{0,30}(not|instead|rather)", r"(feature|head) (width|dim\w*)[^.?]{0,30}(instead|not|rather)",
              r"(last|remaining|later) (blocks|keys)[^.?]{0,30}(never|skipped|missing|not visited)", r"(every|all) (the )?keys",
              r"(loop|range)[^.?]{0,30}(bound|end|stop|short|keys)"])
def tiled_loop_over_feature_width(q, k, v, block_size=256):
    scale = 1 / math.sqrt(q.shape[-1])
    running_max = torch.full(q.shape[:-1] + (1,), -math.inf, dtype=q.dtype, device=q.device)
    running_sum = torch.zeros_like(running_max)
    output = torch.zeros(q.shape[:-1] + v.shape[-1:], dtype=q.dtype, device=q.device)
    for start in range(0, k.shape[-1], block_size):
        scores = q @ k[..., start:start + block_size, :].transpose(-2, -1) * scale
        new_max = torch.maximum(running_max, scores.amax(dim=-1, keepdim=True))
        correction = torch.exp(running_max - new_max)
        exp_scores = torch.exp(scores - new_max)
        running_sum = correction * running_sum + exp_scores.sum(dim=-1, keepdim=True)
        output = correction * output + exp_scores @ v[..., start:start + block_size, :]
        running_max = new_max
    return output / running_sum


# ----- Exercise 1.6: FNet's Fourier mixing --------------------------------------------------------------------

@wrong("1.6", "dft_matrix: angle already −2π jk/n, then cos(angle) − i sin(angle): the minus sign applied twice, "
              "e^{+2πi jk/n}",
       names=[r"\bsign\b", r"conjugat\w*", r"invers\w* (DFT|transform)", r"e\^\{?\s*\+\s*2\s*π", r"(twice|double)[^.?]{0,30}(minus|sign|negat)",
              r"(minus|negat\w*)[^.?]{0,30}(twice|double)", r"cos\w*[^.?]{0,20}\+\s*i\s*sin"],
       arguments=with_reference_mixing)
def dft_minus_sign_twice(n, dtype=torch.complex64):
    j = torch.arange(n, dtype=torch.float64)
    angle = -2 * math.pi * torch.outer(j, j) / n
    return torch.complex(torch.cos(angle), -torch.sin(angle)).to(dtype)


@wrong("1.6", "fourier_mixing: torch.fft.fft2(x, norm='ortho').real: the unitary DFT scaled by 1/√(T·D), which "
              "eq. (1.13) does not have",
       names=[r"ortho", r"norm\s*=", r"(unitary|normali[sz]\w*)[^.?]{0,30}(DFT|transform|fft|scal)",
              r"1\s*/\s*√\s*\(?T\s*[·*×]?\s*D", r"√\s*\(?T\s*[·*×]?\s*D\)?\s*(times )?too (small|large)",
              r"(no|without) (normali[sz]ation|scaling)"],
       arguments=with_reference_dft, learner_name="fourier_mixing")
def mixing_fft2_ortho(x):
    return torch.fft.fft2(x, norm="ortho").real.to(x.dtype)


@wrong("1.6", "fourier_mixing: D, T = x.shape[-2:] (the sizes read in the wrong order): W_T is D×D and W_D is T×T",
       names=[r"T\s*,\s*D\s*=", r"(T|D)\b[^.?]{0,30}(and|,)\s*(D|T)\b[^.?]{0,30}(swapped|exchanged|reversed|wrong order)",
              r"(swapped|exchanged|reversed)[^.?]{0,30}\b(T and D|D and T|sizes)\b",
              r"W_?T\b[^.?]{0,40}(T\s*[×x]\s*T|size T|\(T, ?T\)|sequence length)",
              r"W_?D\b[^.?]{0,40}(D\s*[×x]\s*D|size D|\(D, ?D\)|hidden|width)",
              r"shape\[-2\][^.?]{0,30}\bT\b|\bT\b[^.?]{0,30}shape\[-2\]"],
       arguments=with_reference_dft, learner_name="fourier_mixing")
def mixing_sizes_swapped(x):
    D, T = x.shape[-2:]
    cd = torch.complex128 if x.dtype == torch.float64 else torch.complex64
    W_T, W_D = dft_matrix(T, cd), dft_matrix(D, cd)
    return (W_T @ x.to(cd) @ W_D).real.to(x.dtype)
