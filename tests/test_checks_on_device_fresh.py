"""Ten fresh wrong answers for Chapter 12, written after its checks were finished and run against them untuned.

Each test asserts only that the check rejects the answer; ``NAMED`` records which of them the message names in words
a learner can act on (read by hand when they were written), so the count in the report can be re-checked.
"""
import pytest
import torch

from tests.checks_harness import exercise
from utils import tiny_llama as tl
from utils.checks import CheckFailure, LearnerError
from utils.checks import on_device as checks

CHAPTER = "12_on_device_inference"


def rejected(check, answer) -> str:
    try:
        check(answer)
    except (CheckFailure, LearnerError) as error:
        return str(error)
    raise AssertionError("the check passed a wrong answer")


def bytes_uses_dim_over_heads(config, T, bytes_per_value=2, batch_size=1):
    return 2 * config.n_layers * (config.dim // config.n_kv_heads) * T * bytes_per_value * batch_size


def bytes_gqa_divided(config, T, bytes_per_value=2, batch_size=1):
    return 2 * config.n_layers * config.n_heads * config.head_dim * T * bytes_per_value * batch_size \
        // (config.n_heads // config.n_kv_heads) * 2


def repeat_view_interleaved(x, n_rep):
    B, H_kv, T, Dh = x.shape
    return x.unsqueeze(2).expand(B, H_kv, n_rep, T, Dh).reshape(B, H_kv * n_rep, T, Dh).flip(1)


def cached_scaled_twice(attention, x, cos, sin, start_pos, cache):
    B, T, _ = x.shape
    q = attention.q_proj(x).view(B, T, attention.n_heads, attention.head_dim).transpose(1, 2)
    k = attention.k_proj(x).view(B, T, attention.n_kv_heads, attention.head_dim).transpose(1, 2)
    v = attention.v_proj(x).view(B, T, attention.n_kv_heads, attention.head_dim).transpose(1, 2)
    q = tl.apply_rope(q, cos, sin, start_pos) / attention.head_dim ** 0.5  # attend scales already
    k = tl.apply_rope(k, cos, sin, start_pos)
    if cache is not None:
        k, v = torch.cat([cache[0], k], 2), torch.cat([cache[1], v], 2)
    return attention.attend(q, k, v), (k, v)


def cached_position_uses_cache_length_minus_one(attention, x, cos, sin, start_pos, cache):
    B, T, _ = x.shape
    past = 0 if cache is None else cache[0].shape[2] - 1
    past = max(past, 0)
    q = attention.q_proj(x).view(B, T, attention.n_heads, attention.head_dim).transpose(1, 2)
    k = attention.k_proj(x).view(B, T, attention.n_kv_heads, attention.head_dim).transpose(1, 2)
    v = attention.v_proj(x).view(B, T, attention.n_kv_heads, attention.head_dim).transpose(1, 2)
    q, k = tl.apply_rope(q, cos, sin, past), tl.apply_rope(k, cos, sin, past)
    if cache is not None:
        k, v = torch.cat([cache[0], k], 2), torch.cat([cache[1], v], 2)
    return attention.attend(q, k, v), (k, v)


def write_scatter_add(cache, new, position):
    return cache.index_add(2, position, new)  # adds to the old value instead of replacing it


def write_last_slot(cache, new, position):
    return torch.cat([cache[:, :, 1:], new], dim=2)  # a ring that always writes at the end


def rms_eps_squared(x, weight, eps):
    return x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + eps ** 2) * weight


def quant_zero_point(weight, bits=8):
    q_max = 2 ** (bits - 1) - 1
    low, high = weight.amin(1, keepdim=True), weight.amax(1, keepdim=True)
    scale = (high - low) / (2 * q_max)
    return torch.round((weight - low) / scale - q_max).to(torch.int8), scale


FRESH = [
    ("12.1", checks.check_kv_cache_bytes, bytes_uses_dim_over_heads),
    ("12.1", checks.check_kv_cache_bytes, bytes_gqa_divided),
    ("12.2", checks.check_repeat_kv, repeat_view_interleaved),
    ("12.3", checks.check_cached_attention, cached_scaled_twice),
    ("12.3", checks.check_cached_attention, cached_position_uses_cache_length_minus_one),
    ("12.4", checks.check_write_cache, write_scatter_add),
    ("12.4", checks.check_write_cache, write_last_slot),
    ("12.5", checks.check_rms_norm, rms_eps_squared),
    ("12.6", checks.check_quantize_per_channel, quant_zero_point),
    ("12.6", checks.check_quantize_per_channel, lambda w, bits=8: (torch.zeros_like(w, dtype=torch.int8),
                                                                   torch.ones(w.shape[0], 1))),
]
# Read by hand once, untuned: 10 of 10 rejected, 5 named in words that say what to change. Not named: D/H_kv for
# H_kv·Dh (a ×2 that no single factor explains on all four configurations: "multiply exactly these factors"),
# queries scaled by 1/√Dh twice (located, not named), index_add for a write (located at the right time index,
# the addition not named), ε² for ε (vague), a min–max zero point (said as "not max|W_row| / q_max").
NAMED = {"bytes_gqa_divided": True, "repeat_view_interleaved": True, "cached_position_uses_cache_length_minus_one":
         True, "write_last_slot": True, "<lambda>": True, "bytes_uses_dim_over_heads": False,
         "cached_scaled_twice": False, "write_scatter_add": False, "rms_eps_squared": False,
         "quant_zero_point": False}


@pytest.mark.parametrize("exercise_id, check, answer", FRESH, ids=[f"{e}-{a.__name__}" for e, _, a in FRESH])
def test_fresh_wrong_answer_rejected(exercise_id, check, answer):
    message = rejected(check, answer)
    assert message.startswith(f"Exercise {exercise_id}"), message
    exercise(exercise_id)  # the marker exists
