"""The exercises of Chapter 10 and small helpers shared by its checks."""
from __future__ import annotations

import numbers

import torch

from utils.checks.core import Exercise

EX_MEMORY = Exercise("10.1", "memory_per_rank")
EX_RING = Exercise("10.2", "ring_all_reduce")
EX_AVERAGE = Exercise("10.3", "average_gradients")
EX_BUCKETS = Exercise("10.4", "average_gradients_bucketed")
EX_GPIPE = Exercise("10.5", "gpipe_step")
EX_FSDP = Exercise("10.6", "all_gather_parameter / reduce_scatter_gradient")


def number_value(value) -> float | None:
    """A plain number from an int, float, numpy scalar or one-element tensor; None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, torch.Tensor):
        return float(value.item()) if value.numel() == 1 and not value.is_complex() else None
    if isinstance(value, numbers.Real):
        return float(value)
    return None


def ratio_name(ratio: float, named: dict[str, float], rtol: float = 1e-6) -> str | None:
    """The name of a constant ratio among ``named`` ({"N": 3, "N/2": 1.5, ...}); None if none fits."""
    for name, value in named.items():
        if abs(ratio - value) <= rtol * max(abs(value), 1e-12):
            return name
    return None
