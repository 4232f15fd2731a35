"""The exercises of Chapter 03, their cases (S tokens, E experts, k choices, D width, capacity factor), inputs."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from utils import moe
from utils.checks.core import Case, CheckFailure, Exercise

EX_GATE = Exercise("3.1", "top_k_gating")
EX_LOOP = Exercise("3.2", "moe_loop")
EX_CAPACITY = Exercise("3.3", "capacity_positions")
EX_DISPATCH = Exercise("3.4", "dispatch_combine")
EX_EINSUM = Exercise("3.5", "moe_einsum")
EX_LOSS = Exercise("3.6", "load_balancing_loss")
EX_BLOCK = Exercise("3.7", "MoEBlock")


@dataclass(frozen=True)
class RoutingCase(Case):
    """S tokens routed to k of E experts; D the width of a token; capacity_factor None means no limit."""

    S: int = 8
    E: int = 4
    k: int = 2
    D: int = 5
    capacity_factor: float | None = 1.0
    skew: float = 0.0  # added to expert 0's logit: a popular expert, so that capacity drops choices
    only: int | None = None  # route to the first `only` experts alone: the others get no token

    @property
    def sizes(self) -> dict[str, int]:
        return {"S": self.S, "E": self.E, "k": self.k, "D": self.D}

    @property
    def quantities(self) -> dict[str, tuple[str, tuple[int, ...]]]:
        return {"logits": ("h", (self.S, self.E)), "probs": ("p", (self.S, self.E)),
                "weights": ("g", (self.S, self.k)), "indices": ("i", (self.S, self.k)),
                "x": ("x", (self.S, self.D))}


def logits_for(exercise: Exercise, case: RoutingCase) -> torch.Tensor:
    """Seeded (S, E) router logits with distinct values (no ties in the top k); expert 0 favoured by ``skew``."""
    logits = exercise.randn(case.S, case.E, key=(case.label, "logits"), dtype=case.dtype) * 1.5
    logits[:, 0] += case.skew
    if case.only is not None:
        logits[:, case.only:] -= 100.0  # never chosen
    return logits


def routing_for(exercise: Exercise, case: RoutingCase) -> moe.Routing:
    return moe.route(logits_for(exercise, case), case.k, case.capacity_factor)


def experts_for(exercise: Exercise, case: RoutingCase, hidden: int = 6) -> list[torch.nn.Module]:
    """E small seeded experts in the case's dtype."""
    generator_state = torch.random.get_rng_state()
    try:
        torch.manual_seed(exercise.seed(case.label, "experts"))
        return [moe.FeedForward(case.D, hidden).to(case.dtype) for _ in range(case.E)]
    finally:
        torch.random.set_rng_state(generator_state)


class CountingExpert(torch.nn.Module):
    """An expert that counts how often it is called (the loop exercise asks for one call per expert)."""

    def __init__(self, expert: torch.nn.Module):
        super().__init__()
        self.expert, self.calls = expert, 0

    def forward(self, x):
        self.calls += 1
        return self.expert(x)


def expect_tuple(exercise: Exercise, got, names: tuple[str, ...], case: Case) -> tuple:
    """The learner's result as a tuple of ``len(names)`` things, or a clear failure."""
    if not isinstance(got, (tuple, list)) or len(got) != len(names):
        what = f"a {type(got).__name__}" if not isinstance(got, (tuple, list)) else f"{len(got)} values"
        raise exercise.fail(f"returned {what}; return the tuple ({', '.join(names)}).", case=case)
    return tuple(got)


def subset_reading(got: torch.Tensor, contributions: torch.Tensor, indices: torch.Tensor, keep: torch.Tensor | None,
                   equation: str) -> str | None:
    """Is each row of ``got`` (S, D) the sum of a subset of its choices' contributions (S, k, D)? Then say which
    choices are missing (or extra: dropped ones): always the same choice j, or always the same expert e."""
    S, k, _ = contributions.shape
    scale = contributions.abs().max().item() + 1e-12
    missing, extra = [], []
    for s in range(S):
        found = None
        for mask in range(1 << k):
            chosen = [j for j in range(k) if mask >> j & 1]
            total = contributions[s, chosen].sum(dim=0) if chosen else torch.zeros_like(got[s])
            if torch.allclose(got[s], total, atol=1e-6 * scale, rtol=1e-5):
                found = chosen
                break
        if found is None:
            return None
        should = [j for j in range(k) if keep is None or bool(keep[s, j])]
        missing += [(s, j) for j in should if j not in found]
        extra += [(s, j) for j in found if j not in should]
    if extra and not missing:
        return (f"{len(extra)} choice(s) that the capacity dropped (keep = False) still reach the output: a dropped "
                f"choice gets no slot and weight 0 — don't count dropped tokens ({equation}).")
    if not missing or extra:
        return None
    choices = {j for _, j in missing}
    experts = {int(indices[s, j]) for s, j in missing}
    if len(experts) == 1:
        e = experts.pop()
        return (f"the outputs of expert {e} are missing from every token routed to it: does your loop over the experts "
                f"skip expert {e} (range(E − 1), or starting at 1)? ({equation}).")
    if len(choices) == 1 and len(missing) >= S * 0.8:
        j = choices.pop()
        return (f"choice {j + 1} of the k = {k} is missing from every token: each token adds the outputs of all its "
                f"k experts, y_s = Σ_j g_sj FFN_i_sj(x_s) ({equation}).")
    return (f"{len(missing)} of the S·k = {S * k} (token, choice) contributions are missing from your output, e.g. "
            f"token {missing[0][0]}'s choice {missing[0][1] + 1} (expert {int(indices[missing[0]])}); when a token's "
            f"two choices are added to the same row, add (index_add), don't assign ({equation}).")


def ensure_tensor(exercise: Exercise, got, name: str, case: Case) -> torch.Tensor:
    if not isinstance(got, torch.Tensor):
        raise exercise.fail(f"{name} is a {type(got).__name__}, not a tensor.", case=case)
    return got


__all__ = ["CheckFailure"]
