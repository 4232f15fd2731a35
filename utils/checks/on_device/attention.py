"""Exercise 12.3: one attention layer with a KV cache. Layer by layer first (the learner's function gets the right
cache each step, so one mistake is not compounded), reading what the returned cache holds: which positions the new
keys were rotated at, past and new in which order, along which axis; then token by token through the whole model,
whose logits must equal the full forward pass's."""
from __future__ import annotations

import re

import torch

from utils import tiny_llama as tl
from utils.checks.core import Case, CheckFailure, Mistake, one_thread
from utils.checks.on_device.cases import EX_CACHED as EX
from utils.checks.on_device.cases import same

AXES = ("B", "H_kv", "T", "Dh")


class StepCase(Case):
    def explain(self, error: BaseException, line: str) -> str | None:
        """A concatenation along the wrong axis of (B, H_kv, T, Dh) fails when the other axes differ: name it."""
        found = re.search(r"except in dimension (\d+)", str(error))
        if found and "cat" in line and int(found.group(1)) != 2:
            axis = int(found.group(1))
            name = AXES[axis] if axis < len(AXES) else str(axis)
            return (f"You concatenated along dim {axis} ({name}); past and new keys are joined along time, dim 2 of "
                    f"(B, H_kv, T, Dh): torch.cat([k_past, k_new], dim=2).")
        return None


SCHEDULES = [  # (B, the number of new tokens at each call): the first call is the prompt (prefill)
    (1, (5, 1, 1, 1)),
    (2, (1, 1, 1)),
    (1, (3, 2, 1)),  # a chunk of two tokens after the prompt: the causal mask has an offset
]


def reference_model() -> tl.TinyLlama:
    torch.manual_seed(1234)
    model = tl.TinyLlama(tl.LlamaConfig(dim=32, n_layers=2, n_heads=4, n_kv_heads=2, hidden_dim=48,
                                        max_seq_len=64))
    for p in model.parameters():  # larger weights than the init's, so every mistake moves the logits visibly
        p.data.normal_(0, 0.3)
    return model.eval()


def _raw(attention: tl.Attention, x: torch.Tensor):
    B, T, _ = x.shape
    q = attention.q_proj(x).view(B, T, attention.n_heads, attention.head_dim).transpose(1, 2)
    k = attention.k_proj(x).view(B, T, attention.n_kv_heads, attention.head_dim).transpose(1, 2)
    v = attention.v_proj(x).view(B, T, attention.n_kv_heads, attention.head_dim).transpose(1, 2)
    return q, k, v


def _unpack(got, label):
    if not (isinstance(got, tuple) and len(got) == 2):
        raise EX.fail(f"returned {type(got).__name__}{'' if not isinstance(got, tuple) else f' of {len(got)}'}; "
                      f"return a pair (output, (k, v)).", case=label)
    out, cache = got
    if not (isinstance(cache, (tuple, list)) and len(cache) == 2 and all(isinstance(c, torch.Tensor) for c in cache)):
        raise EX.fail("the second item you return must be the cache (k, v): a pair of tensors, each "
                      "(B, H_kv, start_pos + T, Dh).", case=label)
    if not isinstance(out, torch.Tensor):
        raise EX.fail(f"the first item you return is {type(out).__name__}; it must be the output tensor (B, T, D).",
                      case=label)
    return out, tuple(cache)


def _shape_message(got: torch.Size, B, H_kv, past, T, Dh) -> str:
    want = (B, H_kv, past + T, Dh)
    text = f"your cached keys are {tuple(got)}, expected (B, H_kv, start_pos + T, Dh) = {want}. "
    if tuple(got) == (B, H_kv, T, Dh) and past:
        return text + "You return only the new keys: concatenate the past ones in front, torch.cat([k_past, k], dim=2)."
    if len(got) == 4 and got[1] == H_kv * 2 and got[2] in (T, past) and past == T:
        return text + "You concatenated along the head axis (dim 1); the cache grows along time, dim 2."
    if len(got) == 4 and got[1] != H_kv and got[2] == T and past and got[1] in (H_kv + past, 2 * H_kv):
        return text + "You concatenated along the head axis (dim 1); the cache grows along time, dim 2."
    if len(got) == 4 and got[0] == B + (B * 0 if not past else B) and got[2] == T and past:
        return text + "You concatenated along the batch axis (dim 0); the cache grows along time, dim 2."
    if len(got) == 4 and got[3] == 2 * Dh and past:
        return text + "You concatenated along the head width (dim 3); the cache grows along time, dim 2."
    if len(got) == 4 and got[1] == past + T and got[2] == H_kv:
        return text + "Your cache is (B, T, H_kv, Dh): transpose(1, 2) the keys before caching them."
    return text


def _rotated_at(attention, raw_k: torch.Tensor, got_new: torch.Tensor, cos, sin, limit: int) -> int | None:
    """The position p at which the learner rotated the new keys (got_new = RoPE(raw_k, p…)), or None."""
    for p in range(limit):
        if same(tl.apply_rope(raw_k, cos, sin, p), got_new):
            return p
    return None


def _check_cache(attention, x, cos, sin, start, got_k, got_v, want_k, want_v, past_k, past_v, label):
    B, _, T, Dh = want_k.shape
    H_kv = attention.n_kv_heads
    if got_k.shape != want_k.shape or got_v.shape != want_v.shape:
        bad = got_k if got_k.shape != want_k.shape else got_v
        raise EX.fail(_shape_message(bad.shape, B, H_kv, start, T - start, Dh), case=label)
    if same(got_k, want_k) and same(got_v, want_v):
        return
    _, raw_k, raw_v = _raw(attention, x)
    n_new = raw_k.shape[2]
    if start and same(got_k[:, :, :n_new], want_k[:, :, start:]) and same(got_k[:, :, n_new:], past_k):
        raise EX.fail("your cache holds the new keys first and the past after them; the cache is in position order: "
                      "torch.cat([k_past, k_new], dim=2).", case=label)
    new_k = got_k[:, :, start:]
    B_, T_, _ = x.shape
    unmoved = tl.apply_rope(attention.k_proj(x).view(B_, attention.n_kv_heads, T_, attention.head_dim), cos, sin, start)
    if T_ > 1 and same(new_k, unmoved):
        raise EX.fail("your keys come from k_proj(x).view(B, H_kv, T, Dh), which mixes tokens and heads: the "
                      "projection's output is (B, T, H_kv·Dh), so view(B, T, H_kv, Dh).transpose(1, 2).", case=label)
    if same(new_k, raw_k):
        raise EX.fail(f"the new keys in your cache are not rotated (or rotated at position 0, which is the same): "
                      f"keys are cached after RoPE (eq. (12.7)), rotated once at their own positions "
                      f"{start}…{start + n_new - 1}: tl.apply_rope(k, cos, sin, start_pos).", case=label)
    if not same(new_k, want_k[:, :, start:]):
        p = _rotated_at(attention, raw_k, new_k, cos, sin, cos.shape[0] - n_new)
        if p is not None:
            raise EX.fail(f"you rotated the new keys at position {p}, but they sit at position {start} (start_pos): "
                          f"tl.apply_rope(k, cos, sin, start_pos). A cached key keeps the rotation of its own "
                          f"position, eq. (12.7).", case=label)
    if start and not same(got_k[:, :, :start], past_k):
        raise EX.fail("the first start_pos keys of your cache are not the past keys you were given: keep "
                      "cache[0] unchanged in front (do not rotate it again).", case=label)
    if not same(got_v[:, :, start:], raw_v):
        if same(got_v[:, :, start:], tl.apply_rope(raw_v, cos, sin, start)):
            raise EX.fail("you rotated the values; RoPE applies to queries and keys only.", case=label)
    EX.compare(got_k, want_k, case=StepCase(label), name="cached keys",
               equation="RoPE(k, start_pos…) after the past keys", axes=("B", "H_kv", "T", "Dh"))
    EX.compare(got_v, want_v, case=StepCase(label), name="cached values",
               equation="the past values, then v_proj(x)", axes=("B", "H_kv", "T", "Dh"))


def _check_output(attention, x, cos, sin, start, got, k_all, v_all, label):
    q, raw_k, _ = _raw(attention, x)
    want = attention.attend(tl.apply_rope(q, cos, sin, start), k_all, v_all)
    mistakes = []
    if start:
        mistakes.append(Mistake(attention.attend(tl.apply_rope(q, cos, sin, 0), k_all, v_all),
                                "you rotated the queries at position 0; the new tokens sit at start_pos…: "
                                "tl.apply_rope(q, cos, sin, start_pos)."))
        n_new = x.shape[1]
        mistakes.append(Mistake(attention.attend(tl.apply_rope(q, cos, sin, start), k_all[:, :, start:],
                                                 v_all[:, :, start:]),
                                "your output attends only to the new tokens: pass the whole cache (past and new) "
                                "to attention.attend."))
        del n_new
    mistakes.append(Mistake(attention.attend(q, k_all, v_all), "you did not rotate the queries (eq. (12.7))."))
    rotated = tl.apply_rope(q, cos, sin, start)
    for factor, text in ((attention.head_dim ** -0.5, "1/√Dh"), (attention.head_dim ** 0.5, "√Dh")):
        mistakes.append(Mistake(attention.attend(rotated * factor, k_all, v_all),
                                f"you scaled the queries by {text}: attention.attend already divides the scores by "
                                f"√Dh (scaled_dot_product_attention), so pass the rotated q as it is."))
    EX.compare(got, want, case=StepCase(label), name="output",
               equation="attention.attend(RoPE(q, start_pos…), k, v)", mistakes=mistakes, axes=("B", "T", "D"))


def _layer_checks(cached_attention, model: tl.TinyLlama) -> int:
    attention = model.layers[0].self_attn
    cos, sin = model.rope_cos, model.rope_sin
    D = model.config.dim
    calls = 0
    for B, schedule in SCHEDULES:
        x_all = EX.randn(B, sum(schedule), D, key=("x", B, schedule))
        cache, start = None, 0
        for T in schedule:
            label = f"B={B}, start_pos={start}, T={T} new token(s)" + (" (the prompt)" if start == 0 else "")
            x = x_all[:, start:start + T]
            with torch.no_grad():
                got = EX.call(cached_attention, attention, x, cos, sin, start, cache, case=StepCase(label))
                out, (got_k, got_v) = _unpack(got, label)
                want_out, (want_k, want_v) = attention(x, cos, sin, start, cache)
                _check_cache(attention, x, cos, sin, start, got_k, got_v, want_k, want_v,
                             *(cache if cache else (None, None)), label)
                if out.shape != want_out.shape:
                    raise EX.fail(f"your output is {tuple(out.shape)}, expected (B, T, D) = {tuple(want_out.shape)}.",
                                  case=label)
                _check_output(attention, x, cos, sin, start, out, want_k, want_v, label)
            cache, start, calls = (want_k, want_v), start + T, calls + 1
    return calls


def _decode_checks(cached_attention, model: tl.TinyLlama) -> int:
    """Your function in every layer, with its own cache: logits token by token against the full forward."""
    config = model.config
    tokens = torch.randint(0, config.vocab_size, (2, 9), generator=torch.Generator().manual_seed(EX.seed("tokens")))
    with torch.no_grad():
        full, _ = model(tokens)
        caches = [None] * config.n_layers
        start = 0
        for T in (4, 1, 1, 1, 1, 1):
            x = model.embed_tokens(tokens[:, start:start + T])
            for i, layer in enumerate(model.layers):
                out, caches[i] = _unpack(EX.call(cached_attention, layer.self_attn, layer.input_layernorm(x),
                                                 model.rope_cos, model.rope_sin, start, caches[i]), "decoding")
                x = x + out
                x = x + layer.mlp(layer.post_attention_layernorm(x))
            logits = model.lm_head(model.norm(x))
            if not same(logits, full[:, start:start + T], atol=1e-4):
                raise CheckFailure(f"{EX.where('decoding')}: at positions {start}…{start + T - 1} your decoding's "
                                   f"logits differ from the full forward pass's by "
                                   f"{(logits - full[:, start:start + T]).abs().max():.3g} although each call "
                                   f"passed on its own: the cache you return must be the one you are given next "
                                   f"(past and new, in order).")
            start += T
    return start


@one_thread
def check_cached_attention(cached_attention, model: tl.TinyLlama | None = None) -> None:
    """Layer by layer, then token by token through ``model`` (a small seeded model when None)."""
    models = [reference_model()] + ([model] if model is not None else [])
    for m in models:
        m.eval()
        calls = _layer_checks(cached_attention, m)
        tokens = _decode_checks(cached_attention, m)
    EX.passed(f"{calls} cached calls (prompts, single tokens, a 2-token chunk; B = 1, 2) match the layer's full "
              f"attention and its cache; decoding {tokens} tokens gives the full forward's logits token by token")
