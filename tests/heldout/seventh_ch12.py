"""Seventh blind held-out set for Chapter 12 (on-device inference): wrong answers written as a learner writes the
exercise cell.

Written without reading the checks or seeing any of their messages: only the student notebook's prompts, stubs and
check calls, the reference solutions and ``utils/tiny_llama.py`` were read. It aims at the mistakes learners make
most often in this chapter: a factor of eq. (12.4) left out or the query heads counted instead of the key/value
heads, heads tiled instead of repeated next to themselves, RoPE at the wrong positions or the cache grown along the
wrong axis, a cache written in place, a mean without keepdim or over the wrong axis, a per-tensor or per-column
scale and the int8 range overflowed. No learner cell of this chapter uses a helper from another cell; the trained
model that check 12.3 plugs ``cached_attention`` into is trained here as the notebook's Section 3.1 trains it
(same configuration, fewer steps), once, when an answer to 12.3 is first run.
"""
import functools

import torch

from tests.heldout.report import Registry, solution_namespace

REF = solution_namespace("12_on_device_inference", definitions=("@dataclass\nclass TrainConfig",))
tl = REF["tl"]  # utils.tiny_llama, as the notebook's setup cell imports it

REGISTRY = Registry("12", {
    "12.1": ("check_kv_cache_bytes", "kv_cache_bytes"),
    "12.2": ("check_repeat_kv", "repeat_kv"),
    "12.3": ("check_cached_attention", "cached_attention"),
    "12.4": ("check_write_cache", "write_cache"),
    "12.5": ("check_rms_norm", "rms_norm"),
    "12.6": ("check_quantize_per_channel", "quantize_per_channel"),
})
wrong = REGISTRY.wrong


@functools.lru_cache(maxsize=1)
def trained_model():
    """The notebook's `model`: Section 3.1's configuration trained on Python's documentation (fewer steps)."""
    train_config = REF["TrainConfig"]()
    REF["utils"].seed_everything(0)
    config = tl.LlamaConfig(dim=train_config.dim, n_layers=train_config.n_layers, n_heads=train_config.n_heads,
                            n_kv_heads=train_config.n_kv_heads, hidden_dim=train_config.hidden_dim)
    model = tl.TinyLlama(config)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        tl.train(model, tl.corpus(), seconds=20.0, max_steps=60, batch_size=train_config.batch_size,
                 seq_len=train_config.seq_len)
    finally:
        torch.set_num_threads(threads)
    return model.eval()


with_model = lambda cached_attention: (cached_attention, trained_model())  # noqa: E731 - the check's 2nd argument


# ----- Exercise 12.1: the size of the KV cache (eq. 12.4) ---------------------------------------------------------

@wrong("12.1", "counts the query heads n_heads instead of the key/value heads n_kv_heads: the multi-head cache, "
               "H/H_kv times too large under GQA",
       names=[r"(n_heads|query heads|\bH\b)[^.?]{0,40}(instead of|not|rather than)[^.?]{0,20}(n_kv_heads|H_kv|key/value)",
              r"(n_kv_heads|H_kv|key/value heads)[^.?]{0,30}(instead|not|rather)", r"(query heads|n_heads)[^.?]{0,40}(instead|rather)",
              r"grouped[- ]query[^.?]{0,60}(ignor|forgot|missing|not)", r"H\s*/\s*H_kv", r"multi-head (attention'?s? )?cache"])
def kv_cache_query_heads(config, T, bytes_per_value=2, batch_size=1):
    return 2 * config.n_layers * config.n_heads * config.head_dim * T * bytes_per_value * batch_size


@wrong("12.1", "the factor 2 forgotten: counts only the keys (or only the values), half of eq. (12.4)",
       names=[r"factor (of )?(2|two)[^.?]{0,30}(missing|forgot\w*|dropped|left out|off)", r"(missing|forgot\w*|dropped|without)[^.?]{0,30}(factor (of )?(2|two)|the 2\b)",
              r"\bhalf\b", r"(only|just) (the )?(keys|values)|(keys|values) only", r"(both|two) (tensors|caches)[^.?]{0,30}(count|missing|forgot)"])
def kv_cache_no_two(config, T, bytes_per_value=2, batch_size=1):
    return config.n_layers * config.n_kv_heads * config.head_dim * T * bytes_per_value * batch_size


@wrong("12.1", "batch_size ignored: the bytes of one sequence whatever batch_size is",
       names=[r"batch_size[^.?]{0,40}(ignor|unused|missing|forgot|not (used|multipl|counted))",
              r"(ignor|forgot|missing|not multipl)\w*[^.?]{0,30}batch", r"(per|each|every|one) sequence",
              r"(scale|grow|multipl)\w*[^.?]{0,20}(with|by) (the )?batch", r"batch size\b[^.?]{0,30}(factor|ignor|missing)"])
def kv_cache_no_batch(config, T, bytes_per_value=2, batch_size=1):
    return 2 * config.n_layers * config.n_kv_heads * config.head_dim * T * bytes_per_value


# ----- Exercise 12.2: repeating key/value heads ------------------------------------------------------------------

@wrong("12.2", "x.repeat(1, n_rep, 1, 1): tiles the heads (0, 1, 0, 1) instead of repeating each next to itself "
               "(0, 0, 1, 1), so query head h reads head h mod H_kv, not h // n_rep",
       names=[r"\btil(e|es|ed|ing)\b", r"\(?0, ?1, ?0, ?1\)?", r"h\s*(%|mod)\s*H_kv", r"round[- ]robin",
              r"repeat_interleave[^.?]{0,30}(not|instead|rather)|(not|instead of|rather than)[^.?]{0,20}\.?repeat\b",
              r"(cycl|alternat)\w*[^.?]{0,30}heads"])
def repeat_kv_tiled(x, n_rep):
    return x.repeat(1, n_rep, 1, 1)


@wrong("12.2", "repeat_interleave along dim=2, the time axis: (B, H_kv, T·n_rep, Dh), the heads not repeated",
       names=[r"(time|token|sequence) ax[ie]s[^.?]{0,40}(instead|not|rather|wrong)", r"\bdim\s*=?\s*2\b[^.?]{0,30}(instead|not|rather)",
              r"(instead of|not|rather than) (along )?(the )?(head ax[ie]s|axis of (the )?heads|dim\s*=?\s*1)",
              r"T\s*[·×*]\s*n_rep", r"(repeat|copie)\w*[^.?]{0,30}(tokens|time steps|positions)"])
def repeat_kv_time_axis(x, n_rep):
    return torch.repeat_interleave(x, n_rep, dim=2)


@wrong("12.2", "torch.repeat_interleave(x, n_rep) without dim: flattens x to 1-D before repeating",
       names=[r"flatten\w*", r"\bdim\b[^.?]{0,30}(missing|not given|omitted|without|forgot|default)",
              r"without (a |the )?dim", r"1-?D\b", r"one[- ]dimensional", r"(four|4)[- ]?(D|dimensional|axes)"])
def repeat_kv_no_dim(x, n_rep):
    return torch.repeat_interleave(x, n_rep)


@wrong("12.2", "expand on a new last axis then reshape: the copies land inside the head width Dh, which the reshape "
               "scrambles, instead of on a new axis after H_kv",
       names=[r"(new|extra) ax[ie]s[^.?]{0,40}(after|next to|beside) (the )?(H_kv|head|dim 1|axis 1)",
              r"x\[:,\s*:,\s*None\]", r"unsqueeze\(2\)", r"(head width|Dh|last axis)[^.?]{0,40}(mix|scrambl|interleav|copies|repeat)",
              r"(mix|scrambl|interleav)\w*[^.?]{0,40}(Dh|head width|coordinates|features)"])
def repeat_kv_expand_last(x, n_rep):
    B, H_kv, T, Dh = x.shape
    return x.unsqueeze(-1).expand(B, H_kv, T, Dh, n_rep).reshape(B, H_kv * n_rep, T, Dh)


# ----- Exercise 12.3: one attention step with a KV cache ---------------------------------------------------------

@wrong("12.3", "RoPE applied at positions 0… (apply_rope without start_pos): every new token is rotated as if it "
               "were the first",
       names=[r"start_pos[^.?]{0,40}(ignor|missing|not (passed|used|given)|forgot|omitted)", r"(without|not passing|forgot\w*|missing) (the )?start_pos",
              r"(position|positions) 0\b", r"as if (it|they) (were|was) (at )?(the )?first",
              r"(rotat|RoPE)\w*[^.?]{0,50}(wrong|own) position", r"(rotat|RoPE)\w*[^.?]{0,40}(at|from) (position )?0\b",
              r"\boffset\b"],
       arguments=with_model)
def cached_attention_rope_at_zero(attention, x, cos, sin, start_pos, cache):
    B, T, _ = x.shape
    q = attention.q_proj(x).view(B, T, attention.n_heads, attention.head_dim).transpose(1, 2)
    k = attention.k_proj(x).view(B, T, attention.n_kv_heads, attention.head_dim).transpose(1, 2)
    v = attention.v_proj(x).view(B, T, attention.n_kv_heads, attention.head_dim).transpose(1, 2)
    q, k = tl.apply_rope(q, cos, sin), tl.apply_rope(k, cos, sin)
    if cache is not None:
        k, v = torch.cat([cache[0], k], dim=2), torch.cat([cache[1], v], dim=2)
    return attention.attend(q, k, v), (k, v)


@wrong("12.3", "torch.cat([k_new, k_past]): the new keys and values before the cached ones, so the causal mask "
               "and the time order no longer match",
       names=[r"past (first|before)", r"(order|ordered)[^.?]{0,40}(past|new|cache|concat)", r"(new|current)[^.?]{0,30}(first|before|in front)",
              r"(revers|swap)\w*[^.?]{0,40}(order|concat|cat|past|new)", r"append\w*[^.?]{0,30}(after|to) (the )?(past|cache)",
              r"(past|cached|old) (keys|values|entries)[^.?]{0,30}(come |go |must be |should be )?(first|before|at the (start|front))"],
       arguments=with_model)
def cached_attention_new_first(attention, x, cos, sin, start_pos, cache):
    B, T, _ = x.shape
    q = attention.q_proj(x).view(B, T, attention.n_heads, attention.head_dim).transpose(1, 2)
    k = attention.k_proj(x).view(B, T, attention.n_kv_heads, attention.head_dim).transpose(1, 2)
    v = attention.v_proj(x).view(B, T, attention.n_kv_heads, attention.head_dim).transpose(1, 2)
    q, k = tl.apply_rope(q, cos, sin, start_pos), tl.apply_rope(k, cos, sin, start_pos)
    if cache is not None:
        k, v = torch.cat([k, cache[0]], dim=2), torch.cat([v, cache[1]], dim=2)
    return attention.attend(q, k, v), (k, v)


@wrong("12.3", "concatenates the cache along dim=1, the key/value-head axis, instead of dim 2, the time axis",
       names=[r"(instead of|not|rather than) (along )?(the )?(time|token|sequence) ax", r"dim\s*=?\s*1\b[^.?]{0,40}(instead|not|rather)",
              r"(not|instead of|rather than)[^.?]{0,20}dim\s*=?\s*2",
              r"(head|H_kv) ax[ie]s[^.?]{0,40}(instead|not|rather)", r"along (the )?(heads|H_kv)",
              r"(cache|k|keys)[^.?]{0,40}(grow|grew|concat\w*)[^.?]{0,30}(wrong|heads)"],
       arguments=with_model)
def cached_attention_cat_heads(attention, x, cos, sin, start_pos, cache):
    B, T, _ = x.shape
    q = attention.q_proj(x).view(B, T, attention.n_heads, attention.head_dim).transpose(1, 2)
    k = attention.k_proj(x).view(B, T, attention.n_kv_heads, attention.head_dim).transpose(1, 2)
    v = attention.v_proj(x).view(B, T, attention.n_kv_heads, attention.head_dim).transpose(1, 2)
    q, k = tl.apply_rope(q, cos, sin, start_pos), tl.apply_rope(k, cos, sin, start_pos)
    if cache is not None:
        k, v = torch.cat([cache[0], k], dim=1), torch.cat([cache[1], v], dim=1)
    return attention.attend(q, k, v), (k, v)


@wrong("12.3", "only the keys rotated: the queries go into attend without RoPE",
       names=[r"(quer\w*|\bq\b)[^.?]{0,40}(not|never|un|without)[- ]?(rotat|RoPE)",
              r"(rotat\w*|RoPE)[^.?]{0,30}(the )?(quer\w*|\bq\b)[^.?]{0,20}(missing|forgot|too|as well|also)",
              r"(forgot|missing|skipped)[^.?]{0,30}(RoPE|rotat\w*)[^.?]{0,20}(quer\w*|\bq\b)", r"unrotated quer"],
       arguments=with_model)
def cached_attention_q_not_rotated(attention, x, cos, sin, start_pos, cache):
    B, T, _ = x.shape
    q = attention.q_proj(x).view(B, T, attention.n_heads, attention.head_dim).transpose(1, 2)
    k = attention.k_proj(x).view(B, T, attention.n_kv_heads, attention.head_dim).transpose(1, 2)
    v = attention.v_proj(x).view(B, T, attention.n_kv_heads, attention.head_dim).transpose(1, 2)
    k = tl.apply_rope(k, cos, sin, start_pos)
    if cache is not None:
        k, v = torch.cat([cache[0], k], dim=2), torch.cat([cache[1], v], dim=2)
    return attention.attend(q, k, v), (k, v)


@wrong("12.3", "RoPE applied to the keys after concatenating: the cached keys, already rotated, are rotated again "
               "(and at the new tokens' positions)",
       names=[r"(rotat\w*|RoPE)[^.?]{0,40}(twice|again|second time)", r"already rotated[^.?]{0,40}(again|twice|re-?rotat)",
              r"(rotat\w*|RoPE)[^.?]{0,40}before[^.?]{0,30}(cache|concat|cat)",
              r"(after|once) (the )?(concat\w*|cat)[^.?]{0,40}(rotat|RoPE)", r"(cached|past) keys[^.?]{0,40}(rotat|RoPE)"],
       arguments=with_model)
def cached_attention_rope_after_cat(attention, x, cos, sin, start_pos, cache):
    B, T, _ = x.shape
    q = attention.q_proj(x).view(B, T, attention.n_heads, attention.head_dim).transpose(1, 2)
    k = attention.k_proj(x).view(B, T, attention.n_kv_heads, attention.head_dim).transpose(1, 2)
    v = attention.v_proj(x).view(B, T, attention.n_kv_heads, attention.head_dim).transpose(1, 2)
    if cache is not None:
        k, v = torch.cat([cache[0], k], dim=2), torch.cat([cache[1], v], dim=2)
    q, k = tl.apply_rope(q, cos, sin, start_pos), tl.apply_rope(k, cos, sin, start_pos)
    return attention.attend(q, k, v), (k, v)


# ----- Exercise 12.4: writing into a preallocated cache ----------------------------------------------------------

@wrong("12.4", "cache[:, :, position] = new: writes into the caller's cache in place (and returns it)",
       names=[r"in[- ]place", r"(modif|mutat|chang|overwr)\w*[^.?]{0,40}(input|argument|given|caller'?s?|original)",
              r"\bclone\b", r"functional", r"(input|given|original) cache[^.?]{0,40}(modif|chang|mutat|overwr)"],
       late=True)
def write_cache_setitem(cache, new, position):
    cache[:, :, position] = new
    return cache


@wrong("12.4", "cache.index_copy_(2, position, new): the in-place index_copy_, modifying the cache it is given",
       names=[r"in[- ]place", r"index_copy_", r"trailing underscore", r"(modif|mutat|chang|overwr)\w*[^.?]{0,40}(input|argument|given|caller'?s?|original)",
              r"\bclone\b", r"(input|given|original) cache[^.?]{0,40}(modif|chang|mutat|overwr)"],
       late=True)
def write_cache_index_copy_inplace(cache, new, position):
    return cache.index_copy_(2, position, new)


@wrong("12.4", "torch.where(arange(T_max) == position, new, cache): the (T_max,) mask broadcasts against the last "
               "axis Dh, not the time axis, so it fails (or writes a column of Dh) unless reshaped to (T_max, 1)",
       names=[r"\(T_max, ?1\)", r"(mask|one-hot)[^.?]{0,50}(last ax|Dh|head width|broadcast)",
              r"(time|token) ax[ie]s[^.?]{0,40}(mask|broadcast)", r"broadcast\w*[^.?]{0,40}(last ax|Dh|head width|wrong ax)"])
def write_cache_where_unbroadcast(cache, new, position):
    T_max = cache.shape[2]
    mask = torch.arange(T_max) == position
    return torch.where(mask, new, cache)


@wrong("12.4", "torch.cat([cache[:, :, :p], new, cache[:, :, p:]]): inserts the new entry instead of replacing "
               "index p (p: instead of p + 1:), so the cache grows to T_max + 1",
       names=[r"insert\w*", r"T_max\s*\+\s*1", r"p\s*\+\s*1", r"(grow|grew|longer|extra)[^.?]{0,40}(cache|time|T_max|entry|slot)",
              r"(replac|overwrit)\w*[^.?]{0,30}(instead|not|rather)"])
def write_cache_insert(cache, new, position):
    p = int(position)
    return torch.cat([cache[:, :, :p], new, cache[:, :, p:]], dim=2)


# ----- Exercise 12.5: RMSNorm -------------------------------------------------------------------------------------

@wrong("12.5", "mean(dim=-1) without keepdim: the (…,) mean broadcasts against the last axis instead of per row",
       names=[r"keepdim[^.?]{0,30}(missing|forgot|without|not)[^.?]{0,30}(mean|rms|statistic|x²)|(without|missing|forgot\w*|no) keepdim[^.?]{0,30}(mean|rms|statistic|x²)", r"broadcast\w*[^.?]{0,40}(last ax|wrong ax|row|D\b|width)", r"\(\.\.\., ?1\)|\(…, ?1\)",
              r"(per|each|every) (row|token|vector)[^.?]{0,30}(mean|rms|scale)", r"(singleton|trailing) ax"])
def rms_norm_no_keepdim(x, weight, eps):
    return x * torch.rsqrt(x.pow(2).mean(dim=-1) + eps) * weight


@wrong("12.5", "x.var(-1) instead of mean(x²): the mean is subtracted, LayerNorm's variance, not RMSNorm's mean square",
       names=[r"LayerNorm", r"(mean|average) (is )?subtract", r"subtract\w*[^.?]{0,30}mean", r"\bvar(iance)?\b",
              r"\bcent(er|red|ring|re)\w*"])
def rms_norm_variance(x, weight, eps):
    return x * torch.rsqrt(x.var(dim=-1, keepdim=True, unbiased=False) + eps) * weight


@wrong("12.5", "ε added outside the square root: x / (√mean(x²) + ε) instead of x / √(mean(x²) + ε)",
       names=[r"(eps|ε)[^.?]{0,40}(outside|after|inside|under|within)[^.?]{0,20}(root|sqrt|√|rsqrt)",
              r"(eps|ε)[^.?]{0,30}added (to|after) (the )?(root|sqrt|√|rms)",
              r"(ε|eps)[^.?]{0,20}(belongs|goes) (under|inside)"])
def rms_norm_eps_outside(x, weight, eps):
    return x / (x.pow(2).mean(dim=-1, keepdim=True).sqrt() + eps) * weight


@wrong("12.5", "torch.sqrt instead of torch.rsqrt: multiplies by the RMS instead of dividing by it",
       names=[r"rsqrt[^.?]{0,30}(instead|not|rather)|sqrt[^.?]{0,20}(instead of|not|rather than)[^.?]{0,10}rsqrt", r"(multipl|scal)\w*[^.?]{0,30}(by )?(the )?(rms|root mean square|√)[^.?]{0,30}(instead|not|rather)",
              r"(divid|reciprocal|1\s*/)\w*[^.?]{0,30}(rms|root mean square|√\s*\(?mean|sqrt\(mean)", r"inverse (square )?root",
              r"(rms|root mean square)[^.?]{0,30}(multipl|instead of divid)"])
def rms_norm_sqrt(x, weight, eps):
    return x * torch.sqrt(x.pow(2).mean(dim=-1, keepdim=True) + eps) * weight


# ----- Exercise 12.6: per-channel weight quantization (eq. 12.8) --------------------------------------------------

@wrong("12.6", "one scale for the whole matrix (weight.abs().max()): per-tensor, not per output channel",
       names=[r"per[- ](tensor|matrix)", r"(one|a single) scale[^.?]{0,40}(whole|all|matrix|tensor)",
              r"(not|instead of|rather than)[^.?]{0,20}per[- ](output[- ])?(channel|row)", r"(each|every) (output channel|row)[^.?]{0,30}(own|its|separate)",
              r"scale[^.?]{0,30}(scalar|shape \(\)|0-d)"])
def quantize_per_tensor(weight, bits=8):
    q_max = 2 ** (bits - 1) - 1
    scale = weight.abs().max() / q_max
    q = torch.round(weight / scale).clamp(-q_max, q_max).to(torch.int8)
    return q, scale


@wrong("12.6", "amax over dim=0: one scale per input column (1, in) instead of per output row (out, 1)",
       names=[r"per[- ](input[- ])?(column|input)", r"\bdim\s*=?\s*0\b[^.?]{0,30}(instead|not|rather)", r"\(1, ?in\)", r"(output channel|row)s?[^.?]{0,30}(not|instead of|rather than)[^.?]{0,20}(column|input)",
              r"(column|input)s?[^.?]{0,20}(instead of|not|rather than)[^.?]{0,20}(row|output)"])
def quantize_per_column(weight, bits=8):
    q_max = 2 ** (bits - 1) - 1
    scale = weight.abs().amax(dim=0, keepdim=True).clamp(min=1e-12) / q_max
    q = torch.round(weight / scale).clamp(-q_max, q_max).to(torch.int8)
    return q, scale


@wrong("12.6", "q_max = 2**(bits − 1) = 128: the row's maximum maps to +128, which overflows int8 to −128",
       names=[r"127[^.?]{0,30}(not|instead|rather)", r"\b128\b", r"(off by one|one too (large|big|many))",
              r"overflow\w*[^.?]{0,40}(int8|127|128|q_max)|(int8|127|128|q_max)[^.?]{0,40}overflow", r"wrap\w*[^.?]{0,20}(around|to|−128|-128)", r"q_?max[^.?]{0,30}(off by one|too large|one too)"])
def quantize_q_max_128(weight, bits=8):
    q_max = 2 ** (bits - 1)
    scale = weight.abs().amax(dim=1, keepdim=True).clamp(min=1e-12) / q_max
    q = torch.round(weight / scale).clamp(-q_max, q_max).to(torch.int8)
    return q, scale


@wrong("12.6", "no rounding: (weight / scale).to(torch.int8) truncates toward zero",
       names=[r"truncat\w*", r"(not|never|without|forgot\w*|missing|no) (the )?round", r"round\w*[^.?]{0,30}(missing|instead|before)",
              r"toward(s)? zero", r"\bfloor\w*",
              r"error[^.?]{0,40}(up to|as large as|exceeds?|more than)[^.?]{0,20}(s|scale)\b(?!\s*/\s*2)"])
def quantize_truncated(weight, bits=8):
    q_max = 2 ** (bits - 1) - 1
    scale = weight.abs().amax(dim=1, keepdim=True).clamp(min=1e-12) / q_max
    q = (weight / scale).clamp(-q_max, q_max).to(torch.int8)
    return q, scale


@wrong("12.6", "divides by 2**bits − 1 = 255 (the unsigned range) instead of 2**(bits−1) − 1 = 127: the integers "
               "use only half of the symmetric range [−127, 127]",
       names=[r"\b255\b", r"\b127\b[^.?]{0,30}(instead|not|rather)", r"2\s*(\^|\*\*)\s*b(its)?\s*[−-]\s*1\b[^.?]{0,30}(instead|not|rather)",
              r"(half|only part) (of )?(the )?(range|levels|integer)", r"unsigned", r"(symmetric|signed) range[^.?]{0,30}(half|unused|not)"])
def quantize_unsigned_range(weight, bits=8):
    q_max = 2 ** bits - 1
    scale = weight.abs().amax(dim=1, keepdim=True).clamp(min=1e-12) / q_max
    limit = 2 ** (bits - 1) - 1
    q = torch.round(weight / scale).clamp(-limit, limit).to(torch.int8)
    return q, scale
