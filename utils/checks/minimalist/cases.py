"""The exercises of Chapter 09, their cases, and small helpers shared by the checks."""
from __future__ import annotations

import numbers
from dataclasses import dataclass

import torch

from utils.checks.core import Case, Exercise

EX_MAPPING = Exercise("9.1", "strided_to_pointwise")
EX_COST = Exercise("9.2", "pointwise_cost")
EX_FIELD = Exercise("9.3", "receptive_field")
EX_BLOCK = Exercise("9.4", "PointwiseBlock")
EX_HEAD = Exercise("9.5", "PointwiseHead")
EX_RULE = Exercise("9.6", "rule_violations")


@dataclass(frozen=True)
class WeightCase(Case):
    """A k×k stride-k convolution's weight V, (C_out, C, k, k)."""

    c_out: int = 4
    c: int = 3
    k: int = 2

    @property
    def sizes(self) -> dict[str, int]:
        return {"C_out": self.c_out, "C": self.c, "k": self.k, "C·k²": self.c * self.k * self.k}


@dataclass(frozen=True)
class BlockCase(Case):
    """An image batch (B, c_in, H, W) through a block or head with c_out outputs; ``factor`` for space-to-depth."""

    batch: int = 4
    c_in: int = 3
    c_out: int = 5
    factor: int = 2
    height: int = 4
    width: int = 4

    @property
    def sizes(self) -> dict[str, int]:
        k = self.factor
        sizes = {"B": self.batch, "c_in": self.c_in, "c_out": self.c_out, "H": self.height, "W": self.width}
        if k > 1:
            sizes.update({"k": k, "c_in·k²": self.c_in * k * k, "H/k": self.height // k, "W/k": self.width // k})
        return sizes


def integer_value(value) -> int | None:
    """``value`` as an int if it is a whole number (int, integral float, one-element tensor), else None."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            return None
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    if isinstance(value, float) and not value.is_integer():
        return None
    return int(value)


def order_name(order: tuple[int, ...], symbols=("c", "i", "j")) -> str:
    return "(" + ", ".join(symbols[a] for a in order) + ")"
