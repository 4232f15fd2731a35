"""Chapter 04's exercises, cases and seeded inputs."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from utils.checks.core import Case, Exercise

EX_LOGITS = Exercise("4.1", "clip_logits")
EX_LOSS = Exercise("4.2", "clip_loss")
EX_GRADIENTS = Exercise("4.3", "clip_loss_gradients")
EX_TEXT = Exercise("4.4", "TextEncoder")
EX_DUAL = Exercise("4.5", "DualEncoder")
EX_CLASSES = Exercise("4.6", "class_embeddings")
EX_RECALL = Exercise("4.7", "recall_at_k")

LOG_100 = math.log(100)
CLIP_THETA = math.log(1 / 0.07)


@dataclass(frozen=True)
class PairCase(Case):
    """B_img images and B_txt texts of width D, and the logit scale's logarithm θ."""

    B_img: int = 4
    B_txt: int = 4
    D: int = 8
    theta: float = CLIP_THETA

    @property
    def sizes(self) -> dict[str, int]:
        return {"B_img": self.B_img, "B_txt": self.B_txt, "D": self.D}

    @property
    def scale(self) -> float:
        """s = min(e^θ, 100) of eq. (4.1)."""
        return min(math.exp(self.theta), 100.0)


def features(EX: Exercise, case: PairCase, which: str, count: int) -> torch.Tensor:
    """Seeded features with norms far from 1 and different per row, so a missing normalisation shows."""
    x = EX.randn(count, case.D, key=(case.label, which), dtype=case.dtype)
    norms = torch.linspace(0.5, 3.0, count, dtype=case.dtype)[:, None] if count > 1 else \
        torch.full((1, 1), 2.5, dtype=case.dtype)
    return x / x.norm(dim=-1, keepdim=True) * norms


def unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True)


def symmetric_loss(logits: torch.Tensor) -> torch.Tensor:
    """Eq. (4.2), the reference."""
    labels = torch.arange(logits.shape[0])
    return (torch.nn.functional.cross_entropy(logits, labels) +
            torch.nn.functional.cross_entropy(logits.T, labels)) / 2


def as_tensor_result(EX: Exercise, got, case: Case, what: str) -> torch.Tensor:
    if got is None:
        raise EX.fail(f"your {what} returned None. Did you forget to `return` it?", case=case)
    if not isinstance(got, torch.Tensor):
        raise EX.fail(f"your {what} returned a {type(got).__name__}, not a tensor.", case=case)
    return got
