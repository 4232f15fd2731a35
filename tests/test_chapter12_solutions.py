"""The teaching code of Chapter 12 (its exercise solutions and ``utils.tiny_llama``) against independent oracles, on
shapes hypothesis chooses: ``F.rms_norm``, ``F.scaled_dot_product_attention(enable_gqa=True)``,
``torch.quantize_per_channel``, the nbytes of the caches the model really builds, Meta's complex-number RoPE for
the GGUF permutation, and gguf's own reader."""

import functools

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.solution_code import solution_namespace
from tests.strategies import seeds
from utils import tiny_llama as tl

CHAPTER = "12_on_device_inference"


@functools.cache
def solved() -> dict:
    return solution_namespace(CHAPTER)


def small_config(H_kv=2, n_rep=2, Dh=8, L=2):
    return tl.LlamaConfig(dim=H_kv * n_rep * Dh, n_layers=L, n_heads=H_kv * n_rep, n_kv_heads=H_kv, hidden_dim=24,
                          max_seq_len=64)


@settings(max_examples=25, deadline=None)
@given(L=st.integers(1, 3), H_kv=st.integers(1, 3), n_rep=st.integers(1, 3), T=st.integers(1, 9),
       B=st.integers(1, 2), seed=seeds)
def test_kv_cache_bytes_equals_the_caches_the_model_builds(L, H_kv, n_rep, T, B, seed):
    config = small_config(H_kv, n_rep, Dh=4, L=L)
    torch.manual_seed(seed)
    model = tl.TinyLlama(config).eval()
    with torch.no_grad():
        _, caches = model(torch.randint(0, 256, (B, T)))
    built = sum(k.nbytes + v.nbytes for k, v in caches)
    assert solved()["kv_cache_bytes"](config, T, 4, B) == built


@settings(max_examples=25, deadline=None)
@given(B=st.integers(1, 2), H_kv=st.integers(1, 3), n_rep=st.integers(1, 4), T=st.integers(1, 6), seed=seeds)
def test_repeat_kv_agrees_with_sdpa_enable_gqa(B, H_kv, n_rep, T, seed):
    generator = torch.Generator().manual_seed(seed)
    q = torch.randn(B, H_kv * n_rep, T, 8, generator=generator, dtype=torch.float64)
    k, v = (torch.randn(B, H_kv, T, 8, generator=generator, dtype=torch.float64) for _ in range(2))
    repeat_kv = solved()["repeat_kv"]
    ours = F.scaled_dot_product_attention(q, repeat_kv(k, n_rep), repeat_kv(v, n_rep), is_causal=True)
    library = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
    assert torch.allclose(ours, library, atol=1e-12)


@settings(max_examples=30, deadline=None)
@given(shape=st.lists(st.integers(1, 6), min_size=1, max_size=3), D=st.integers(1, 16),
       eps=st.sampled_from([1e-6, 1e-5, 0.1]), seed=seeds)
def test_rms_norm_matches_f_rms_norm(shape, D, eps, seed):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(*shape, D, generator=generator, dtype=torch.float64)
    weight = torch.randn(D, generator=generator, dtype=torch.float64)
    assert torch.allclose(solved()["rms_norm"](x, weight, eps), F.rms_norm(x, (D,), weight, eps), atol=1e-12)
    assert torch.allclose(tl.rms_norm(x, weight, eps), F.rms_norm(x, (D,), weight, eps), atol=1e-6)


@pytest.mark.filterwarnings("ignore:torch.quantize_per_tensor")
@settings(max_examples=30, deadline=None)
@given(out=st.integers(1, 8), n_in=st.integers(1, 12), seed=seeds)
def test_int8_quantization_matches_torch_quantize_per_channel(out, n_in, seed):
    weight = torch.randn(out, n_in, generator=torch.Generator().manual_seed(seed))
    q, scale = solved()["quantize_per_channel"](weight, 8)
    library = torch.quantize_per_channel(weight, scale.reshape(-1).double(), torch.zeros(out, dtype=torch.long),
                                         axis=0, dtype=torch.qint8)
    assert torch.equal(q, library.int_repr())
    assert (weight - q * scale).abs().max() <= scale.max() / 2 + 1e-6


@settings(max_examples=15, deadline=None)
@given(B=st.integers(1, 2), H_kv=st.integers(1, 2), n_rep=st.integers(1, 2), prompt=st.integers(1, 5),
       steps=st.integers(1, 4), seed=seeds)
def test_cached_decoding_matches_the_full_forward(B, H_kv, n_rep, prompt, steps, seed):
    torch.manual_seed(seed)
    model = tl.TinyLlama(small_config(H_kv, n_rep)).eval()
    tokens = torch.randint(0, 256, (B, prompt + steps))
    cached_attention = solved()["cached_attention"]
    with torch.no_grad():
        full, _ = model(tokens)
        caches, start, logits = [None] * model.config.n_layers, 0, []
        for T in [prompt] + [1] * steps:
            x = model.embed_tokens(tokens[:, start:start + T])
            for i, layer in enumerate(model.layers):
                out, caches[i] = cached_attention(layer.self_attn, layer.input_layernorm(x), model.rope_cos,
                                                  model.rope_sin, start, caches[i])
                x = x + out
                x = x + layer.mlp(layer.post_attention_layernorm(x))
            logits.append(model.lm_head(model.norm(x)))
            start += T
    assert torch.allclose(torch.cat(logits, 1), full, atol=1e-5)


def test_attention_matches_sdpa_with_gqa():
    torch.manual_seed(0)
    config = small_config(H_kv=2, n_rep=3)
    attention = tl.Attention(config)
    x = torch.randn(2, 7, config.dim)
    cos, sin = tl.rope_tables(config.head_dim, 16)
    ours, _ = attention(x, cos, sin)
    q, k, v = attention.project(x, cos, sin, 0)
    library = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
    assert torch.allclose(ours, attention.o_proj(library.transpose(1, 2).reshape(2, 7, -1)), atol=1e-6)


@settings(max_examples=20, deadline=None)
@given(position=st.integers(0, 7), B=st.integers(1, 2), seed=seeds)
def test_write_cache_matches_index_put(position, B, seed):
    generator = torch.Generator().manual_seed(seed)
    cache, new = torch.randn(B, 2, 8, 4, generator=generator), torch.randn(B, 2, 1, 4, generator=generator)
    expected = cache.clone()
    expected[:, :, position] = new[:, :, 0]
    assert torch.equal(solved()["write_cache"](cache, new, torch.tensor([position])), expected)


def test_static_cache_step_matches_the_forward():
    torch.manual_seed(0)
    model = tl.TinyLlama(small_config()).eval()
    step = tl.StaticCacheStep(model, write=solved()["write_cache"])
    tokens = torch.randint(0, 256, (2, 6))
    with torch.no_grad():
        full, _ = model(tokens)
        k, v = step.empty_cache(2, 16)
        for i in range(6):
            logits, k, v = step(tokens[:, i:i + 1], torch.tensor([i]), k, v)
            assert torch.allclose(logits, full[:, i], atol=1e-5)


def meta_rope(x, position, theta=10_000.0):
    """Meta's LLaMA RoPE: adjacent pairs (x0, x1), (x2, x3), … as complex numbers times e^{i·p·θ_j}."""
    Dh = x.shape[-1]
    frequencies = theta ** (-torch.arange(0, Dh, 2, dtype=torch.float64) / Dh)
    rotation = torch.polar(torch.ones(Dh // 2, dtype=torch.float64), position * frequencies)
    pairs = torch.view_as_complex(x.double().reshape(*x.shape[:-1], Dh // 2, 2).contiguous())
    return torch.view_as_real(pairs * rotation).reshape(x.shape)


@pytest.mark.parametrize("n_heads", [1, 2, 4])
def test_gguf_permutation_turns_rotate_half_into_meta_pairs(n_heads):
    """llama.cpp's RoPE (adjacent pairs) on the permuted rows equals ours (rotate-half) on the original rows."""
    torch.manual_seed(0)
    Dh, D, position = 8, 6, 5
    weight = torch.randn(n_heads * Dh, D, dtype=torch.float64)
    x = torch.randn(D, dtype=torch.float64)
    cos, sin = tl.rope_tables(Dh, 8)
    ours = tl.apply_rope((weight @ x).view(1, n_heads, 1, Dh), cos.double(), sin.double(), position)
    theirs = meta_rope((tl.gguf_permute(weight, n_heads) @ x).view(n_heads, Dh), position)
    # the permutation reorders each head's coordinates; the dot products RoPE preserves do not depend on the order
    ours_perm = (tl.gguf_permute(ours.reshape(n_heads * Dh, 1), n_heads)).view(n_heads, Dh)
    assert torch.allclose(ours_perm, theirs, atol=1e-10)
    assert torch.equal(tl.gguf_unpermute(tl.gguf_permute(weight, n_heads), n_heads), weight)


def test_gguf_file_reads_back(tmp_path):
    torch.manual_seed(0)
    model = tl.TinyLlama(small_config()).eval()
    written = tl.write_gguf(model, tmp_path / "m.gguf")
    metadata, tensors = tl.read_gguf(tmp_path / "m.gguf")
    assert metadata["general.architecture"] == "llama"
    assert metadata["llama.attention.head_count_kv"] == 2 and metadata["llama.block_count"] == 2
    assert set(tensors) == set(written)
    for name, value in written.items():
        assert torch.equal(tensors[name].reshape(value.shape), value), name
