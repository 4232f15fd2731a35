"""Chapter 01's earlier cells written right, shared by the test files whose wrong answers call them (each wrong
answer holds one mistake; what it calls from an earlier cell is this reference)."""
import math

import torch
import torch.nn as nn
from einops import rearrange


def attention_weights(q, k, mask=None):  # exercise 1.1
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return scores.softmax(dim=-1)


def softmax_backward(p, grad_p):  # exercise 1.2, eq. (1.5)
    return p * (grad_p - (grad_p * p).sum(dim=-1, keepdim=True))


def attention(q, k, v, mask=None):
    return attention_weights(q, k, mask) @ v


def dft_matrix_ok(n, dtype=torch.complex64):  # exercise 1.6, eq. (1.12)
    j = torch.arange(n, dtype=torch.float64)
    angle = -2 * math.pi * torch.outer(j, j) / n
    return torch.polar(torch.ones_like(angle), angle).to(dtype)


def mixing_ok(x):  # (..., T, D) -> (..., T, D): the real part of W_T x W_D
    T, D = x.shape[-2:]
    dtype = torch.complex128 if x.dtype == torch.float64 else torch.complex64
    return (dft_matrix_ok(T, dtype) @ x.to(dtype) @ dft_matrix_ok(D, dtype)).real.to(x.dtype)


class Heads(nn.Module):
    """Exercise 1.4's projections and head split/merge, right, for answers whose mistake is elsewhere."""

    def __init__(self, d_model, n_heads):
        super().__init__()
        self.n_heads = n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)

    def split(self, x):  # (B, T, D) -> three (B, H, T, Dh)
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        return (rearrange(t, "B T (H Dh) -> B H T Dh", H=self.n_heads) for t in (q, k, v))

    def finish(self, heads):  # (B, H, T, Dh) -> (B, T, D)
        return self.out(rearrange(heads, "B H T Dh -> B T (H Dh)"))
