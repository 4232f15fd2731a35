"""The teaching code of Chapter 01's solutions, with PyTorch as the oracle, on shapes hypothesis chooses.

The checks try a handful of fixed cases; these tests sweep shapes, masks and block sizes, so a solution that only
works on the check's cases (or a reference in the checks that drifted) shows up here.
"""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.solution_code import solution_namespace
from tests.strategies import attention_shapes, seeds, sizes
from utils.checks import attention as checks

CHAPTER = "01_attention"


@pytest.fixture(scope="module")
def solved():
    """The names defined by the notebook's setup cell, its exercise cells and the definitions named here."""
    return solution_namespace("01_attention", ("def attention(",))


@settings(max_examples=40, deadline=None)
@given(shape=attention_shapes, seed=seeds, masked=st.booleans())
def test_attention_matches_sdpa(solved, shape, seed, masked):
    generator = torch.Generator().manual_seed(seed)
    B, H, Tq, Tk, d = shape.values()
    q, k, v = (torch.randn(B, H, T, d, generator=generator, dtype=torch.float64) for T in (Tq, Tk, Tk))
    mask = None
    if masked:
        mask = torch.rand(B, 1, Tq, Tk, generator=generator) > 0.5
        mask[..., 0] = True  # a query with no key at all has no defined output
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    torch.testing.assert_close(solved["attention"](q, k, v, mask), expected)


@settings(max_examples=40, deadline=None)
@given(shape=attention_shapes, block=sizes(1, 12), seed=seeds)
def test_tiled_attention_matches_sdpa_for_any_block_size(solved, shape, block, seed):
    generator = torch.Generator().manual_seed(seed)
    B, H, Tq, Tk, d = shape.values()
    q, k, v = (torch.randn(B, H, T, d, generator=generator, dtype=torch.float64) for T in (Tq, Tk, Tk))
    torch.testing.assert_close(solved["tiled_attention"](q, k, v, block_size=block),
                               F.scaled_dot_product_attention(q, k, v))


@settings(max_examples=25, deadline=None)
@given(B=sizes(1, 3), T=sizes(1, 8), heads=sizes(1, 4), width=sizes(1, 4), causal=st.booleans(),
       padded=sizes(0, 3), seed=seeds)
def test_multi_head_matches_torch(solved, B, T, heads, width, causal, padded, seed):
    torch.manual_seed(seed)
    D = heads * width
    module = solved["MultiHeadSelfAttention"](D, heads)
    x = torch.randn(B, T, D)
    padding = torch.zeros(B, T, dtype=torch.bool)
    padding[0, T - min(padded, T - 1):] = True if padded else False  # pad the first sequence, keep one token
    with torch.no_grad():
        got = module(x, causal=causal, key_padding_mask=padding)
        library = checks.copy_to_library(module, heads)
        expected, _ = library(x, x, x, key_padding_mask=padding, need_weights=False,
                              attn_mask=~checks.causal_mask(T) if causal else None)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)


@settings(max_examples=25, deadline=None)
@given(batch=sizes(1, 3), T=sizes(1, 12), D=sizes(1, 12), seed=seeds)
def test_fourier_mixing_matches_fft2(solved, batch, T, D, seed):
    x = torch.randn(batch, T, D, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    torch.testing.assert_close(solved["fourier_mixing"](x), torch.fft.fft2(x).real)


def test_attention_function_backward_matches_autograd(solved):
    q, k, v = (torch.randn(2, 3, 5, 4, dtype=torch.float64, requires_grad=True) for _ in range(3))
    assert torch.autograd.gradcheck(solved["AttentionFunction"].apply, (q, k, v))
