"""The exercises of Chapter 06, their cases (S tokens, N experts, D width, capacity factor) and seeded inputs."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from utils.checks.core import Case, CheckFailure, Exercise, name_value

EX_ROUTE = Exercise("6.1", "switch_route")
EX_LOSS = Exercise("6.2", "switch_load_balancing_loss")
EX_Z = Exercise("6.3", "router_z_loss")
EX_LAYER = Exercise("6.4", "switch_ffn")
EX_INIT = Exercise("6.5", "switch_init_")


@dataclass(frozen=True)
class SwitchCase(Case):
    """S tokens routed top-1 to N experts; D the token width; capacity_factor None means no limit."""

    S: int = 8
    N: int = 4
    D: int = 6
    capacity_factor: float | None = 1.0
    skew: float = 0.0  # added to expert 0's logit: a popular expert, so that capacity drops tokens
    logit_scale: float = 1.5

    @property
    def sizes(self) -> dict[str, int]:
        return {"S": self.S, "N": self.N, "D": self.D}

    @property
    def quantities(self) -> dict[str, tuple[str, tuple[int, ...]]]:
        return {"logits": ("h", (self.S, self.N)), "probs": ("p", (self.S, self.N)),
                "expert_index": ("i", (self.S,)), "gate": ("p_i", (self.S,)), "x": ("x", (self.S, self.D))}


def logits_for(exercise: Exercise, case: SwitchCase) -> torch.Tensor:
    """Seeded (S, N) router logits (distinct values, no ties); expert 0 favoured by ``skew``."""
    logits = exercise.randn(case.S, case.N, key=(case.label, "logits"), dtype=case.dtype) * case.logit_scale
    logits[:, 0] += case.skew
    return logits


def ensure_tensor(exercise: Exercise, got, name: str, case: Case) -> torch.Tensor:
    if not isinstance(got, torch.Tensor):
        raise exercise.fail(f"{name} is a {type(got).__name__}, not a tensor.", case=case)
    return got


def expect_tuple(exercise: Exercise, got, names: tuple[str, ...], case: Case) -> tuple:
    if not isinstance(got, (tuple, list)) or len(got) != len(names):
        what = f"a {type(got).__name__}" if not isinstance(got, (tuple, list)) else f"{len(got)} values"
        raise exercise.fail(f"returned {what}; return the tuple ({', '.join(names)}).", case=case)
    return tuple(got)


def compare_scalar(exercise: Exercise, got: torch.Tensor, expected: torch.Tensor, *, case: Case, name: str,
                   equation: str, mistakes, factors: dict[str, float]) -> None:
    """``Exercise.compare`` for a 0-dim loss, which cannot show a constant factor by itself: a wrong value whose
    ratio to the right one is a named constant of the equation (N, S, 2, …) is said with that name."""
    try:
        exercise.compare(got, expected, case=case, name=name, equation=equation, mistakes=mistakes)
    except CheckFailure as failure:
        if "term by term" not in str(failure) or not torch.isfinite(got).all() or expected.abs() < 1e-12:
            raise
        ratio = (got.detach() / expected).item()
        named = name_value(ratio, factors, rtol=1e-6)
        if named is None:
            raise
        raise exercise.fail(f"your {name} is {ratio:.4g} (= {named}) × the right value: a factor {named} too many "
                            f"— remove it, or apply its inverse ({equation}).", case=case) from None


def scalar(exercise: Exercise, got, case: SwitchCase, equation: str) -> torch.Tensor:
    """The learner's loss as a 0-dim tensor, or a failure that says what shape it has."""
    got = ensure_tensor(exercise, got, "your loss", case)
    if got.dim() != 0 and got.numel() != 1:
        if got.numel() == case.N:
            raise exercise.fail(f"your loss has shape {tuple(got.shape)}, one value per expert: sum over the experts "
                                f"to one number ({equation}).", case=case)
        if got.numel() == case.S:
            raise exercise.fail(f"your loss has shape {tuple(got.shape)}, one value per token: average over the "
                                f"tokens to one number ({equation}).", case=case)
        raise exercise.fail(f"your loss has shape {tuple(got.shape)}: it is one number, a 0-dim tensor ({equation}).",
                            case=case)
    return got.reshape(())
