"""Every check of Chapter 12 passes on the reference answers and names each wrong answer in words a learner can act on.

The wrong answers are written the way a learner writes them, never built from the checks' own references. Each test
carries its exercise's marker: ``pytest -m ex12_3``.
"""
import functools

import pytest
import torch
import torch.nn.functional as F

from tests.checks_harness import assert_diagnoses, assert_passes, assert_stub_passes_through, exercise
from tests.solution_code import solution_namespace
from utils import tiny_llama as tl
from utils.checks import on_device as checks

CHAPTER = "12_on_device_inference"


@functools.cache
def solved() -> dict:
    return solution_namespace(CHAPTER)


def stub(*args, **kwargs):
    raise NotImplementedError("Exercise 12.0: write the body, then run the check cell below.")


# ================================================================================================ Exercise 12.1
def bytes_query_heads(config, T, bytes_per_value=2, batch_size=1):
    return 2 * config.n_layers * config.n_heads * config.head_dim * T * bytes_per_value * batch_size


def bytes_no_two(config, T, bytes_per_value=2, batch_size=1):
    return config.n_layers * config.n_kv_heads * config.head_dim * T * bytes_per_value * batch_size


def bytes_no_layers(config, T, bytes_per_value=2, batch_size=1):
    return 2 * config.n_kv_heads * config.head_dim * T * bytes_per_value * batch_size


def bytes_no_batch(config, T, bytes_per_value=2, batch_size=1):
    return 2 * config.n_layers * config.n_kv_heads * config.head_dim * T * bytes_per_value


def bytes_bits(config, T, bytes_per_value=2, batch_size=1):
    return 2 * config.n_layers * config.n_kv_heads * config.head_dim * T * bytes_per_value * 8 * batch_size


def bytes_values_only(config, T, bytes_per_value=2, batch_size=1):
    return 2 * config.n_layers * config.n_kv_heads * config.head_dim * T * batch_size


def bytes_model_width(config, T, bytes_per_value=2, batch_size=1):
    return 2 * config.n_layers * config.dim * T * bytes_per_value * batch_size


def bytes_t_plus_one(config, T, bytes_per_value=2, batch_size=1):
    return 2 * config.n_layers * config.n_kv_heads * config.head_dim * (T + 1) * bytes_per_value * batch_size


def bytes_float(config, T, bytes_per_value=2, batch_size=1):
    return 2.0 * config.n_layers * config.n_kv_heads * config.head_dim * T * bytes_per_value * batch_size


def bytes_in_mib(config, T, bytes_per_value=2, batch_size=1):
    return 2 * config.n_layers * config.n_kv_heads * config.head_dim * T * bytes_per_value * batch_size / 2**20


@exercise("12.1")
def test_cache_bytes_reference_passes():
    assert_passes(checks.check_kv_cache_bytes, solved()["kv_cache_bytes"])


@exercise("12.1")
@pytest.mark.parametrize("wrong, words", [
    (bytes_query_heads, ("query heads", "n_kv_heads")),
    (bytes_no_two, ("factor 2",)),
    (bytes_no_layers, ("layers",)),
    (bytes_no_batch, ("batch_size",)),
    (bytes_bits, ("bits",)),
    (bytes_values_only, ("bytes_per_value",)),
    (bytes_model_width, ("width D", "n_kv_heads")),
    (bytes_t_plus_one, ("T + 1",)),
    (bytes_float, ("int",)),
    (bytes_in_mib, ("MiB",)),
])
def test_cache_bytes_mistakes_named(wrong, words):
    assert_diagnoses(checks.check_kv_cache_bytes, wrong, *words)


@exercise("12.1")
def test_cache_bytes_none_and_stub():
    assert_diagnoses(checks.check_kv_cache_bytes, lambda c, T, b=2, n=1: None, "forget `return`")
    assert_stub_passes_through(checks.check_kv_cache_bytes, stub)


# ================================================================================================ Exercise 12.2
def repeat_tiled(x, n_rep):
    return x.repeat(1, n_rep, 1, 1)


def repeat_expand_wrong_axis(x, n_rep):
    B, H_kv, T, Dh = x.shape
    return x[:, None].expand(B, n_rep, H_kv, T, Dh).reshape(B, n_rep * H_kv, T, Dh)


def repeat_along_time(x, n_rep):
    return x.repeat_interleave(n_rep, dim=2)


def repeat_forgets_n_rep_one(x, n_rep):
    return torch.cat([x, x], dim=1)[:, : x.shape[1] * n_rep] if n_rep > 1 else torch.cat([x, x], dim=1)


def repeat_only_first_head(x, n_rep):
    return x[:, :1].expand(-1, x.shape[1] * n_rep, -1, -1)


@exercise("12.2")
def test_repeat_reference_passes():
    assert_passes(checks.check_repeat_kv, solved()["repeat_kv"])


@exercise("12.2")
@pytest.mark.parametrize("wrong, words", [
    (repeat_tiled, ("repeat_interleave", "tiled")),
    (repeat_expand_wrong_axis, ("tiled",)),
    (repeat_along_time, ("along time",)),
    (repeat_forgets_n_rep_one, ("re:shape|head",)),
    (repeat_only_first_head, ("h // n_rep",)),
])
def test_repeat_mistakes_named(wrong, words):
    assert_diagnoses(checks.check_repeat_kv, wrong, *words)


@exercise("12.2")
def test_repeat_stub_passes_through():
    assert_stub_passes_through(checks.check_repeat_kv, stub)


# ================================================================================================ Exercise 12.3
def _qkv(attention, x):
    B, T, _ = x.shape
    q = attention.q_proj(x).view(B, T, attention.n_heads, attention.head_dim).transpose(1, 2)
    k = attention.k_proj(x).view(B, T, attention.n_kv_heads, attention.head_dim).transpose(1, 2)
    v = attention.v_proj(x).view(B, T, attention.n_kv_heads, attention.head_dim).transpose(1, 2)
    return q, k, v


def cached_rope_at_zero(attention, x, cos, sin, start_pos, cache):
    q, k, v = _qkv(attention, x)
    q, k = tl.apply_rope(q, cos, sin), tl.apply_rope(k, cos, sin)  # position 0 every call
    if cache is not None:
        k, v = torch.cat([cache[0], k], 2), torch.cat([cache[1], v], 2)
    return attention.attend(q, k, v), (k, v)


def cached_rope_off_by_one(attention, x, cos, sin, start_pos, cache):
    q, k, v = _qkv(attention, x)
    q, k = tl.apply_rope(q, cos, sin, start_pos + 1), tl.apply_rope(k, cos, sin, start_pos + 1)
    if cache is not None:
        k, v = torch.cat([cache[0], k], 2), torch.cat([cache[1], v], 2)
    return attention.attend(q, k, v), (k, v)


def cached_head_axis(attention, x, cos, sin, start_pos, cache):
    q, k, v = _qkv(attention, x)
    q, k = tl.apply_rope(q, cos, sin, start_pos), tl.apply_rope(k, cos, sin, start_pos)
    if cache is not None:
        k, v = torch.cat([cache[0], k], 1), torch.cat([cache[1], v], 1)
    return attention.attend(q, k, v), (k, v)


def cached_new_first(attention, x, cos, sin, start_pos, cache):
    q, k, v = _qkv(attention, x)
    q, k = tl.apply_rope(q, cos, sin, start_pos), tl.apply_rope(k, cos, sin, start_pos)
    if cache is not None:
        k, v = torch.cat([k, cache[0]], 2), torch.cat([v, cache[1]], 2)
    return attention.attend(q, k, v), (k, v)


def cached_keys_unrotated(attention, x, cos, sin, start_pos, cache):
    q, k, v = _qkv(attention, x)
    if cache is not None:
        k, v = torch.cat([cache[0], k], 2), torch.cat([cache[1], v], 2)
    return attention.attend(tl.apply_rope(q, cos, sin, start_pos), tl.apply_rope(k, cos, sin), v), (k, v)


def cached_returns_new_only(attention, x, cos, sin, start_pos, cache):
    q, k, v = _qkv(attention, x)
    q, k = tl.apply_rope(q, cos, sin, start_pos), tl.apply_rope(k, cos, sin, start_pos)
    k_all, v_all = (torch.cat([cache[0], k], 2), torch.cat([cache[1], v], 2)) if cache is not None else (k, v)
    return attention.attend(q, k_all, v_all), (k, v)


def cached_query_at_zero(attention, x, cos, sin, start_pos, cache):
    q, k, v = _qkv(attention, x)
    q, k = tl.apply_rope(q, cos, sin, 0), tl.apply_rope(k, cos, sin, start_pos)
    if cache is not None:
        k, v = torch.cat([cache[0], k], 2), torch.cat([cache[1], v], 2)
    return attention.attend(q, k, v), (k, v)


def cached_attends_new_only(attention, x, cos, sin, start_pos, cache):
    q, k, v = _qkv(attention, x)
    q, k = tl.apply_rope(q, cos, sin, start_pos), tl.apply_rope(k, cos, sin, start_pos)
    out = attention.attend(q, k, v)
    if cache is not None:
        k, v = torch.cat([cache[0], k], 2), torch.cat([cache[1], v], 2)
    return out, (k, v)


def cached_rotates_values(attention, x, cos, sin, start_pos, cache):
    q, k, v = _qkv(attention, x)
    q, k, v = (tl.apply_rope(t, cos, sin, start_pos) for t in (q, k, v))
    if cache is not None:
        k, v = torch.cat([cache[0], k], 2), torch.cat([cache[1], v], 2)
    return attention.attend(q, k, v), (k, v)


def cached_rerotates_past(attention, x, cos, sin, start_pos, cache):
    q, k, v = _qkv(attention, x)
    if cache is not None:
        k, v = torch.cat([cache[0], k], 2), torch.cat([cache[1], v], 2)
    q, k = tl.apply_rope(q, cos, sin, start_pos), tl.apply_rope(k, cos, sin, 0)  # rotates the past keys again
    return attention.attend(q, k, v), (k, v)


def cached_returns_tuple_swapped(attention, x, cos, sin, start_pos, cache):
    out, kv = solved()["cached_attention"](attention, x, cos, sin, start_pos, cache)
    return kv, out


def cached_time_major(attention, x, cos, sin, start_pos, cache):
    out, (k, v) = solved()["cached_attention"](attention, x, cos, sin, start_pos, cache)
    return out, (k.transpose(1, 2), v.transpose(1, 2))


def cached_view_without_transpose(attention, x, cos, sin, start_pos, cache):
    B, T, _ = x.shape
    q = attention.q_proj(x).view(B, attention.n_heads, T, attention.head_dim)  # heads and time mixed up
    k = attention.k_proj(x).view(B, attention.n_kv_heads, T, attention.head_dim)
    v = attention.v_proj(x).view(B, attention.n_kv_heads, T, attention.head_dim)
    q, k = tl.apply_rope(q, cos, sin, start_pos), tl.apply_rope(k, cos, sin, start_pos)
    if cache is not None:
        k, v = torch.cat([cache[0], k], 2), torch.cat([cache[1], v], 2)
    return attention.attend(q, k, v), (k, v)


def cached_crashes(attention, x, cos, sin, start_pos, cache):
    q, k, v = _qkv(attention, x)
    k = torch.cat([cache[0], k], 2)  # fails on the prompt, where cache is None
    return attention.attend(q, k, v), (k, v)


@exercise("12.3")
def test_cached_reference_passes():
    assert_passes(checks.check_cached_attention, solved()["cached_attention"])


@exercise("12.3")
@pytest.mark.parametrize("wrong, words", [
    (cached_rope_at_zero, ("position 0", "start_pos")),
    (cached_rope_off_by_one, ("re:position \\d+", "start_pos")),
    (cached_head_axis, ("dim 1", "H_kv", "dim 2")),
    (cached_new_first, ("new keys first",)),
    (cached_keys_unrotated, ("not rotated",)),
    (cached_returns_new_only, ("only the new keys",)),
    (cached_query_at_zero, ("queries at position 0",)),
    (cached_attends_new_only, ("only to the new tokens",)),
    (cached_rotates_values, ("rotated the values",)),
    (cached_rerotates_past, ("re:past keys|position",)),
    (cached_returns_tuple_swapped, ("re:output|cache",)),
    (cached_time_major, ("transpose",)),
    (cached_crashes, ("TypeError",)),
])
def test_cached_mistakes_named(wrong, words):
    assert_diagnoses(checks.check_cached_attention, wrong, *words)


@exercise("12.3")
def test_cached_view_without_transpose_rejected():
    assert_diagnoses(checks.check_cached_attention, cached_view_without_transpose, "view(B, T, H_kv, Dh)")


@exercise("12.3")
def test_cached_with_a_trained_model_and_stub():
    model = tl.TinyLlama(tl.LlamaConfig(dim=32, n_layers=1, n_heads=2, n_kv_heads=1, hidden_dim=40)).eval()
    assert_passes(lambda fn: checks.check_cached_attention(fn, model), solved()["cached_attention"])
    assert_stub_passes_through(checks.check_cached_attention, stub)


# ================================================================================================ Exercise 12.4
def write_in_place(cache, new, position):
    cache[:, :, position] = new
    return cache


def write_off_by_one(cache, new, position):
    shifted = position + 1 if position + 1 < cache.shape[2] else position - 1
    return cache.index_copy(2, shifted, new)


def write_first_sequence_only(cache, new, position):
    out = cache.clone()
    out[:1, :, position] = new[:1]
    return out


def write_to_end(cache, new, position):
    out = cache.clone()
    out[:, :, position:] = new
    return out


def write_concatenates(cache, new, position):
    return torch.cat([cache, new], dim=2)


def write_forgets_to_assign(cache, new, position):
    out = cache.clone()
    out.index_copy(2, position, new)  # result thrown away
    return out


def write_zeros_rest(cache, new, position):
    out = torch.zeros_like(cache)
    return out.index_copy(2, position, new)


@exercise("12.4")
def test_write_reference_passes():
    assert_passes(checks.check_write_cache, solved()["write_cache"])
    assert_passes(checks.check_write_cache, lambda c, n, p: torch.where(
        (torch.arange(c.shape[2]) == p)[:, None], n, c))


@exercise("12.4")
@pytest.mark.parametrize("wrong, words", [
    (write_in_place, ("in place",)),
    (write_off_by_one, ("off by",)),
    (write_first_sequence_only, ("B = 1",)),
    (write_to_end, ("one time index only",)),
    (write_concatenates, ("concatenation",)),
    (write_forgets_to_assign, ("nothing changed",)),
    (write_zeros_rest, ("torch.zeros",)),
])
def test_write_mistakes_named(wrong, words):
    assert_diagnoses(checks.check_write_cache, wrong, *words)


@exercise("12.4")
def test_write_stub_passes_through():
    assert_stub_passes_through(checks.check_write_cache, stub)


# ================================================================================================ Exercise 12.5
def rms_layer_norm(x, weight, eps):
    centred = x - x.mean(-1, keepdim=True)
    return centred / torch.sqrt(centred.pow(2).mean(-1, keepdim=True) + eps) * weight


def rms_eps_outside(x, weight, eps):
    return x / (x.pow(2).mean(-1, keepdim=True).sqrt() + eps) * weight


def rms_no_weight(x, weight, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)


def rms_sum(x, weight, eps):
    return x * torch.rsqrt(x.pow(2).sum(-1, keepdim=True) + eps) * weight


def rms_std(x, weight, eps):
    return x / torch.sqrt(x.var(-1, keepdim=True) + eps) * weight


def rms_first_axis(x, weight, eps):
    return x * torch.rsqrt(x.pow(2).mean(0, keepdim=True) + eps) * weight


def rms_no_keepdim(x, weight, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1) + eps) * weight


def rms_times_root(x, weight, eps):
    return x * torch.sqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


def rms_abs_mean(x, weight, eps):
    return x / (x.abs().mean(-1, keepdim=True) + eps) * weight


def rms_half_precision(x, weight, eps):
    return (x.half() * torch.rsqrt(x.half().pow(2).mean(-1, keepdim=True) + eps) * weight.half())


@exercise("12.5")
def test_rms_reference_passes():
    assert_passes(checks.check_rms_norm, solved()["rms_norm"])


@exercise("12.5")
@pytest.mark.parametrize("wrong, words", [
    (rms_layer_norm, ("LayerNorm",)),
    (rms_eps_outside, ("outside the square root",)),
    (rms_no_weight, ("weight",)),
    (rms_sum, ("sum of squares",)),
    (rms_std, ("variance",)),
    (rms_first_axis, ("first axis",)),
    (rms_no_keepdim, ("re:keepdim|shape",)),
    (rms_times_root, ("multiplied by the root",)),
    (rms_half_precision, ("dtype",)),
])
def test_rms_mistakes_named(wrong, words):
    assert_diagnoses(checks.check_rms_norm, wrong, *words)


def rms_eps_squared(x, weight, eps):
    return x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + eps ** 2) * weight


def rms_no_eps(x, weight, eps):
    return x / x.pow(2).mean(-1, keepdim=True).sqrt() * weight


def write_adds(cache, new, position):
    return cache.index_add(2, position, new)


def cached_scales_queries(attention, x, cos, sin, start_pos, cache):
    out, kv = solved()["cached_attention"](attention, x, cos, sin, start_pos, cache)
    q = attention.q_proj(x).view(x.shape[0], x.shape[1], attention.n_heads, attention.head_dim).transpose(1, 2)
    q = tl.apply_rope(q, cos, sin, start_pos) / attention.head_dim ** 0.5
    return attention.attend(q, *kv), kv


@pytest.mark.parametrize("check, wrong, words", [
    (checks.check_rms_norm, rms_eps_squared, ("ε²",)),
    (checks.check_rms_norm, rms_no_eps, ("left out ε",)),
    (checks.check_write_cache, write_adds, ("old value plus",)),
    (checks.check_cached_attention, cached_scales_queries, ("1/√Dh",)),
])
def test_mistakes_added_after_the_fresh_set(check, wrong, words):
    assert_diagnoses(check, wrong, *words)


@exercise("12.5")
def test_rms_abs_mean_rejected_and_stub():
    assert_diagnoses(checks.check_rms_norm, rms_abs_mean, "mean(|x|)²", "mean of x²")
    assert_stub_passes_through(checks.check_rms_norm, stub)


def rms_centred_variance(x, weight, eps):
    return x * torch.rsqrt(x.var(dim=-1, keepdim=True, unbiased=False) + eps) * weight


def rms_square_of_mean(x, weight, eps):
    return x * torch.rsqrt(x.mean(dim=-1, keepdim=True) ** 2 + eps) * weight


@exercise("12.5")
@pytest.mark.parametrize("wrong, words", [
    (rms_centred_variance, ["m = the variance", "subtracted the mean"]),
    (rms_square_of_mean, ["m = mean(x)²", "square of the mean"]),
])
def test_rms_statistic_read_from_the_output(wrong, words):
    """The statistic m of y = x·γ/√(m + ε) is read back per row and named, whatever code produced it."""
    assert_diagnoses(checks.check_rms_norm, wrong, *words)


# ================================================================================================ Exercise 12.6
def quant_per_tensor(weight, bits=8):
    q_max = 2 ** (bits - 1) - 1
    scale = weight.abs().max() / q_max
    return torch.round(weight / scale).to(torch.int8), scale


def quant_per_input(weight, bits=8):
    q_max = 2 ** (bits - 1) - 1
    scale = weight.abs().amax(dim=0, keepdim=True) / q_max
    return torch.round(weight / scale).to(torch.int8), scale


def quant_128(weight, bits=8):
    q_max = 2 ** (bits - 1)
    scale = weight.abs().amax(dim=1, keepdim=True) / q_max
    return torch.round(weight / scale).clamp(-q_max, q_max - 1).to(torch.int8), scale


def quant_ignores_bits(weight, bits=8):
    scale = weight.abs().amax(dim=1, keepdim=True) / 127
    return torch.round(weight / scale).to(torch.int8), scale


def quant_truncates(weight, bits=8):
    q_max = 2 ** (bits - 1) - 1
    scale = weight.abs().amax(dim=1, keepdim=True) / q_max
    return (weight / scale).to(torch.int8), scale


def quant_floor(weight, bits=8):
    q_max = 2 ** (bits - 1) - 1
    scale = weight.abs().amax(dim=1, keepdim=True) / q_max
    return torch.floor(weight / scale).clamp(-q_max, q_max).to(torch.int8), scale


def quant_returns_dequantized(weight, bits=8):
    q_max = 2 ** (bits - 1) - 1
    scale = weight.abs().amax(dim=1, keepdim=True) / q_max
    return torch.round(weight / scale) * scale, scale


def quant_scale_flat(weight, bits=8):
    q_max = 2 ** (bits - 1) - 1
    scale = weight.abs().amax(dim=1) / q_max
    return torch.round(weight / scale[:, None]).to(torch.int8), scale


def quant_max_not_abs(weight, bits=8):
    q_max = 2 ** (bits - 1) - 1
    scale = weight.amax(dim=1, keepdim=True) / q_max
    return torch.round(weight / scale).clamp(-q_max, q_max).to(torch.int8), scale


def quant_unsigned(weight, bits=8):
    scale = weight.abs().amax(dim=1, keepdim=True) / (2 ** bits - 1)
    return torch.round(weight / scale).clamp(-127, 127).to(torch.int8), scale


def quant_float_q(weight, bits=8):
    q_max = 2 ** (bits - 1) - 1
    scale = weight.abs().amax(dim=1, keepdim=True) / q_max
    return torch.round(weight / scale), scale


@exercise("12.6")
def test_quant_reference_passes():
    assert_passes(checks.check_quantize_per_channel, solved()["quantize_per_channel"])


@exercise("12.6")
@pytest.mark.parametrize("wrong, words", [
    (quant_per_tensor, ("per-tensor",)),
    (quant_per_input, ("input column",)),
    (quant_128, ("2^(bits−1) = 128",)),
    (quant_ignores_bits, ("127 whatever",)),
    (quant_truncates, ("truncated",)),
    (quant_floor, ("floor",)),
    (quant_returns_dequantized, ("dequantized",)),
    (quant_scale_flat, ("keepdim",)),
    (quant_max_not_abs, ("re:abs|largest magnitude",)),
    (quant_unsigned, ("unsigned",)),
    (quant_float_q, ("torch.int8",)),
])
def test_quant_mistakes_named(wrong, words):
    assert_diagnoses(checks.check_quantize_per_channel, wrong, *words)


@exercise("12.6")
def test_quant_stub_and_not_a_pair():
    assert_diagnoses(checks.check_quantize_per_channel, lambda w, bits=8: w, "pair")
    assert_stub_passes_through(checks.check_quantize_per_channel, stub)


def test_rms_norm_reference_is_f_rms_norm():
    x, w = torch.randn(3, 8), torch.randn(8)
    assert torch.allclose(solved()["rms_norm"](x, w, 1e-5), F.rms_norm(x, (8,), w, 1e-5), atol=1e-6)
