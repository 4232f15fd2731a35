"""BatchNorm's seeded inputs, its reference statistics and PyTorch's own result, shared by Exercises 2.1–2.3."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from utils.checks.core import Case, Exercise
from utils.checks.normalization.cases import IMAGE_AXES, STATISTICS, ImageCase
from utils.checks.normalization.partitions import IMAGE_METHODS, axes_partition, every_axes_partition
from utils.checks.normalization.statistics import NormSpec


# ============================================================================================== BatchNorm inputs
def _image_batch(exercise: Exercise, case: ImageCase, key: str = "x") -> torch.Tensor:
    """An (N, C, H, W) batch whose channels have different means and spreads, so that pooling them shows and a
    per-channel factor (s, γ) differs from channel to channel."""
    N, C, H, W = case.shape
    offsets = exercise.randn(1, C, 1, 1, key=(case.label, key, "offset"), dtype=case.dtype)
    spreads = 1 + 0.4 * torch.arange(C, dtype=case.dtype).view(1, C, 1, 1)
    x = (exercise.randn(*case.shape, key=(case.label, key), dtype=case.dtype) * spreads + offsets) * case.scale
    return x + case.offset if case.offset else x


def _affine_parameters(exercise: Exercise, shape, case: Case):
    """γ away from 0 and ±1 (so a missing γ shows), β away from 0."""
    gamma = 1.5 + 0.5 * torch.tanh(exercise.randn(*shape, key=(case.label, "gamma"), dtype=case.dtype))
    beta = exercise.randn(*shape, key=(case.label, "beta"), dtype=case.dtype)
    return gamma, beta


def _batch_norm_spec(x: torch.Tensor, case: ImageCase, extra_means=None) -> NormSpec:
    candidates = every_axes_partition(tuple(x.shape), IMAGE_AXES, IMAGE_METHODS)
    right = next(p for p in candidates if p.same_as(axes_partition(x.shape, IMAGE_AXES, STATISTICS)))
    return NormSpec("BatchNorm", "eq. (2.1)", right, "dim=(0, 2, 3)", tuple(candidates), case.eps,
                    "the eps argument", extra_means=extra_means or {}, sizes=case.sizes, axes=IMAGE_AXES,
                    count_symbol="m")


def _statistics(x: torch.Tensor, eps: float):
    """x̂ and s = 1/√(σ² + ε) (C,) of training-mode BatchNorm, eq. (2.1)."""
    mean = x.mean(dim=STATISTICS, keepdim=True)  # (1, C, 1, 1)
    var = x.var(dim=STATISTICS, unbiased=False, keepdim=True)  # (1, C, 1, 1), biased
    inv_std = 1 / torch.sqrt(var + eps)
    return (x - mean) * inv_std, inv_std.flatten()


def _library_batch_norm(x, weight, bias, eps, grad_out):
    """PyTorch's own BatchNorm in training mode, and its autograd gradients (x, γ, β)."""
    x, weight, bias = (t.detach().clone().requires_grad_() for t in (x, weight, bias))
    y = F.batch_norm(x, None, None, weight, bias, training=True, eps=eps)
    return y.detach(), torch.autograd.grad(y, (x, weight, bias), grad_out)


def _per_channel_shape(got, C: int, exercise: Exercise, case: Case, name: str, what: str) -> None:
    """dL/dγ and dL/dβ have γ's shape (C,): say so in the chapter's words before the generic shape message."""
    if isinstance(got, torch.Tensor) and tuple(got.shape) != (C,):
        hint = (" keepdim=True kept the reduced axes: drop it, a per-channel gradient has γ's shape (C,)."
                if got.numel() == C else f" {what} is a sum over the axes (0, 2, 3), one entry per channel: "
                                        f"(…).sum(dim=(0, 2, 3)).")
        raise exercise.fail(f"shape {tuple(got.shape)} but expected ({C},).{hint}", case=case, name=name)
