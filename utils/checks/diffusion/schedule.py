"""The schedule the checks pass to the learner's code, and the small tensor helpers every module uses."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

IMAGE_AXES = ("B", "C", "H", "W")


@dataclass
class Schedule:
    """β_t, α_t = 1 − β_t and ᾱ_t = ∏_{s≤t} α_s, each a (T,) tensor holding step t at index t − 1."""

    betas: torch.Tensor
    alphas: torch.Tensor
    alpha_bars: torch.Tensor

    @classmethod
    def from_betas(cls, betas: torch.Tensor) -> "Schedule":
        alphas = 1 - betas
        return cls(betas, alphas, torch.cumprod(alphas, dim=0))

    @property
    def T(self) -> int:
        return len(self.betas)

    def to(self, *args) -> "Schedule":  # a dtype and/or a device, as for a tensor
        return Schedule(self.betas.to(*args), self.alphas.to(*args), self.alpha_bars.to(*args))


def column(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(B,) → (B, 1, 1, 1) (as many trailing 1s as ``like`` has axes after the batch)."""
    return values.reshape(-1, *([1] * (like.dim() - 1)))


def with_zero(values: torch.Tensor) -> torch.Tensor:
    """(T,) → (T + 1,) with a 1 in front: index t gives ᾱ_t for t in 0..T, with ᾱ_0 = 1."""
    return F.pad(values, (1, 0), value=1.0)


def close(got: torch.Tensor, want: torch.Tensor, rtol: float = 1e-4, atol: float = 1e-6) -> bool:
    """Every entry of ``got`` within tolerance of ``want`` (a NaN in ``want`` — a step that does not exist — never
    matches)."""
    return bool(torch.isfinite(want).all() and ((got - want).abs() <= atol + rtol * want.abs()).all())
