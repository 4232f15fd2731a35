"""Chapter 11's exercises, the references the checks compare with, and small helpers shared by its checks."""
from __future__ import annotations

import math

import torch

from utils.checks.core import Exercise

EX_PARAMS = Exercise("11.1", "quantization_params")
EX_FAKE = Exercise("11.2", "FakeQuantize")
EX_MSE = Exercise("11.3", "mse_range")
EX_LSQ = Exercise("11.4", "LSQQuantizer")
EX_LINEAR = Exercise("11.5", "QuantLinear")
EX_SWAP = Exercise("11.6", "swap_linears")


def signed_bounds(bits: int) -> tuple[int, int]:
    """(−2^(b−1), 2^(b−1) − 1): the signed b-bit integers."""
    return -2 ** (bits - 1), 2 ** (bits - 1) - 1


def reference_params(low, high, bits, symmetric=False):
    """Eq. (11.2) (affine, q ∈ [0, 2^b − 1]) or the narrow-range symmetric rule (z = 0)."""
    if symmetric:
        scale = (torch.maximum(low.abs(), high.abs()) / (2 ** (bits - 1) - 1)).clamp_min(1e-8)
        return scale, torch.zeros_like(scale, dtype=torch.int32)
    q_max = 2 ** bits - 1
    low, high = low.clamp(max=0), high.clamp(min=0)
    scale = ((high - low) / q_max).clamp_min(1e-8)
    return scale, (-torch.round(low / scale)).clamp(0, q_max).to(torch.int32)


def broadcast_along(values: torch.Tensor, dim: int | None, ndim: int) -> torch.Tensor:
    """A per-channel (C,) tensor shaped to broadcast along ``dim`` of an ``ndim``-d tensor; a 0-d one as it is."""
    if dim is None:
        return values
    shape = [1] * ndim
    shape[dim] = -1
    return values.reshape(shape)


def fake_quantize_variant(x, scale, zero_point, q_min, q_max, axis=None, *, rounding=torch.round, z_sign=1,
                          clamp=True, dequantize=True, subtract_zero=True):
    """Eq. (11.1) with one thing changed (a classic mistake): the rounding, the zero point's sign, no clamp, …"""
    s = broadcast_along(scale, axis, x.dim())
    z = broadcast_along(zero_point, axis, x.dim()).to(x.dtype)
    q = rounding(x / s) + z_sign * z
    if clamp:
        q = q.clamp(q_min, q_max)
    if not dequantize:
        return q
    return (q - z_sign * z) * s if subtract_zero else q * s


def library_fake_quantize(x, scale, zero_point, q_min, q_max, axis=None):
    """PyTorch's own op: torch.fake_quantize_per_tensor_affine / torch.fake_quantize_per_channel_affine."""
    if axis is None:
        return torch.fake_quantize_per_tensor_affine(x, float(scale), int(zero_point), q_min, q_max)
    return torch.fake_quantize_per_channel_affine(x, scale.float(), zero_point.to(torch.int32), axis, q_min, q_max)


def reference_mse_range(values, bits, grid=100, *, q_pos=None, strict=True, per_row_max=True, squared=True,
                        clip=True, joint=False):
    """The MSE observer of Exercise 11.3, with optional changes for the classic mistakes."""
    q_pos = 2 ** (bits - 1) - 1 if q_pos is None else q_pos
    max_abs = values.abs().amax(dim=1) if per_row_max else values.abs().max().expand(values.shape[0])
    best_error = torch.full_like(max_abs, float("inf"))
    best_alpha = max_abs.clone()
    for k in range(1, grid + 1):
        alpha = max_abs * k / grid
        scale = (alpha / q_pos).clamp_min(1e-8)[:, None]
        rounded = torch.round(values / scale)
        if clip:
            rounded = rounded.clamp(-q_pos - 1, q_pos)
        difference = rounded * scale - values
        error = (difference ** 2 if squared else difference.abs()).mean(dim=1)
        if joint:
            error = error.mean().expand_as(error)
        better = error < best_error if strict else error <= best_error
        best_error, best_alpha = torch.where(better, error, best_error), torch.where(better, alpha, best_alpha)
    return best_alpha


def lsq_reference(x, step, bits, *, q_neg=None, q_pos=None, g_count=None, ste=True):
    """LSQ's forward and its gradients (eqs. (11.6), (11.7)): returns (x̂, the function to differentiate)."""
    q_neg = 2 ** (bits - 1) if q_neg is None else q_neg
    q_pos_ = 2 ** (bits - 1) - 1 if q_pos is None else q_pos
    count = x.numel() // step.numel() if g_count is None else g_count
    g = 1 / math.sqrt(count * (2 ** (bits - 1) - 1))
    scaled = (step - step * g).detach() + step * g
    u = torch.clamp(x / scaled, -q_neg, q_pos_)
    rounded = (torch.round(u) - u).detach() + u if ste else torch.round(u)
    return rounded * scaled


def close(a: torch.Tensor, b: torch.Tensor, atol=1e-5, rtol=1e-4) -> bool:
    return isinstance(a, torch.Tensor) and a.shape == b.shape and torch.allclose(a.detach().to(b.dtype), b,
                                                                                   atol=atol, rtol=rtol)
