"""Mixture-of-Experts routing, the reference the chapters build against (03: GShard's top-2; 06: Switch's top-1).

One group of S tokens is routed at a time (GShard's "group"; flatten (B, T) into S first). Axes: S tokens,
D model width, E experts, k choices per token, C the capacity of each expert (slots per expert).

    logits = router(x)                                   # (S, E)
    routing = route(logits, k=2, capacity_factor=1.25)   # gate, capacity, dispatch/combine, auxiliary loss
    y = moe_forward(x, routing, experts)                 # (S, D); a dropped token gets 0 (the residual carries it)

The steps, each a function of its own so a chapter can check a learner's version of one against it:

- :func:`top_k_gating` — softmax over the experts *first*, then the k largest; for k > 1 the k weights are
  renormalised to sum to 1 (GShard: g1 / (g1 + g2)); for k = 1 the weight is the probability itself (Switch),
  so the router still gets a gradient through it.
- :func:`expert_capacity` — C = ceil(capacity_factor · k · S / E); ``capacity_factor=None`` means no limit (C = S).
- :func:`expert_positions` — each (token, choice)'s slot in its expert: a cumulative sum over tokens, all first
  choices before any second choice (GShard), so a token's first choice is never pushed out by another's second.
- :func:`dispatch_and_combine` — the (S, E, C) one-hot dispatch tensor and the combine weights; a choice whose
  position is ≥ C is dropped (no slot, weight 0; the remaining weights are *not* renormalised, as in GShard).
- :func:`load_balancing_loss` — E · Σ_e m_e · c_e, m_e the mean gate probability of expert e, c_e the fraction
  of tokens whose first choice is e (before capacity). 1 when perfectly balanced. Switch's loss is the k = 1 case;
  it is differentiable only through m_e.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["FeedForward", "MoELayer", "Routing", "dispatch_and_combine", "expert_capacity", "expert_positions",
           "load_balancing_loss", "moe_forward", "moe_forward_indexed",
           "moe_reference", "route", "top_k_gating"]


def top_k_gating(logits: torch.Tensor, k: int, renormalize: bool | None = None):
    """Gate probabilities and each token's k experts. ``logits``: (S, E).

    Returns ``(probs, weights, indices)``: probs (S, E) = softmax over experts; weights, indices (S, k), the k
    largest probabilities in decreasing order and their experts. ``renormalize`` (default: k > 1) divides the k
    weights by their sum."""
    if not 1 <= k <= logits.shape[-1]:
        raise ValueError(f"k={k} must be between 1 and the number of experts E={logits.shape[-1]}")
    probs = torch.softmax(logits, dim=-1)  # (S, E): softmax BEFORE choosing, over all E experts
    weights, indices = probs.topk(k, dim=-1)  # (S, k), (S, k), largest first
    if k > 1 if renormalize is None else renormalize:
        weights = weights / weights.sum(dim=-1, keepdim=True)  # GShard: g_i / (g_1 + … + g_k)
    return probs, weights, indices


def expert_capacity(num_tokens: int, num_experts: int, k: int, capacity_factor: float | None) -> int:
    """C = ceil(capacity_factor · k · S / E), at least 1; ``None``: no limit, C = S (an expert gets a token once)."""
    if capacity_factor is None:
        return num_tokens
    return max(1, math.ceil(capacity_factor * k * num_tokens / num_experts))


def expert_positions(indices: torch.Tensor, num_experts: int) -> torch.Tensor:
    """The slot of each (token, choice) in its expert's buffer, counting from 0. ``indices``: (S, k) → (S, k).

    Choice-major: first choices take slots in token order, then second choices after all the first choices of
    that expert, and so on (GShard's ``cumsum(mask_2) + count(mask_1)``)."""
    S, k = indices.shape
    mask = F.one_hot(indices.t().reshape(-1), num_experts)  # (k·S, E): row j·S + s is choice j of token s
    positions = (mask.cumsum(dim=0) - 1) * mask  # (k·S, E): how many earlier rows chose the same expert
    return positions.sum(dim=-1).reshape(k, S).t()  # (S, k)


def dispatch_and_combine(weights: torch.Tensor, indices: torch.Tensor, num_experts: int, capacity: int):
    """The einsum form of routing. ``weights``, ``indices``: (S, k). Returns ``(dispatch, combine, keep)``:
    dispatch (S, E, C) bool, 1 where token s sits in slot c of expert e; combine (S, E, C), the gate weight there;
    keep (S, k) bool, False for a choice dropped because its expert was full."""
    positions = expert_positions(indices, num_experts)  # (S, k)
    keep = positions < capacity  # (S, k): overflow choices are dropped
    expert_hot = F.one_hot(indices, num_experts).to(weights.dtype)  # (S, k, E)
    slot_hot = F.one_hot(positions.clamp(max=capacity - 1), capacity).to(weights.dtype)  # (S, k, C)
    kept_weights = weights * keep  # (S, k): a dropped choice gets weight 0 (not renormalised away)
    combine = torch.einsum("Sk,SkE,SkC->SEC", kept_weights, expert_hot, slot_hot)  # (S, E, C)
    dispatch = torch.einsum("Sk,SkE,SkC->SEC", keep.to(weights.dtype), expert_hot, slot_hot) > 0  # (S, E, C)
    return dispatch, combine, keep


def load_balancing_loss(probs: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """GShard's auxiliary loss E · Σ_e m_e · c_e (a scalar). ``probs``: (S, E); ``indices``: (S, k).

    m_e = mean over tokens of probs[:, e] (differentiable); c_e = fraction of tokens whose FIRST choice is e,
    counted before capacity (a constant for the gradient). Uniform routing gives 1; all tokens on one expert
    with probability 1 gives E. With k = 1 it is Switch's α-free loss N · Σ f_i · P_i."""
    S, E = probs.shape
    mean_gate = probs.mean(dim=0)  # (E,): m_e
    fraction = F.one_hot(indices[:, 0], E).to(probs.dtype).mean(dim=0)  # (E,): c_e, sums to 1
    return E * (mean_gate * fraction).sum()


@dataclass
class Routing:
    """Everything one routing decision produced; tensors over S tokens, E experts, k choices, C slots. The (S, E, C)
    dispatch and combine tensors are built on first use (they grow like S², and the gather form never needs them)."""

    probs: torch.Tensor  # (S, E) softmax of the router's logits
    weights: torch.Tensor  # (S, k) gate weights of the chosen experts (renormalised for k > 1)
    indices: torch.Tensor  # (S, k) chosen experts, best first
    positions: torch.Tensor  # (S, k) slot of each choice in its expert
    keep: torch.Tensor  # (S, k) bool, False where the choice overflowed its expert's capacity
    capacity: int  # C
    aux_loss: torch.Tensor  # scalar, eq. E · Σ m_e c_e

    @property
    def num_experts(self) -> int:
        return self.probs.shape[-1]

    @functools.cached_property
    def _tensors(self):
        return dispatch_and_combine(self.weights, self.indices, self.num_experts, self.capacity)

    @property
    def dispatch(self) -> torch.Tensor:
        """(S, E, C) bool: token s sits in slot c of expert e."""
        return self._tensors[0]

    @property
    def combine(self) -> torch.Tensor:
        """(S, E, C): the gate weight in dispatch's slot."""
        return self._tensors[1]

    @property
    def load(self) -> torch.Tensor:
        """(E,) tokens each expert processes (after capacity)."""
        return F.one_hot(self.indices[self.keep], self.num_experts).sum(dim=0)

    @property
    def demand(self) -> torch.Tensor:
        """(E,) (token, choice) pairs routed to each expert before capacity."""
        return F.one_hot(self.indices.reshape(-1), self.num_experts).sum(dim=0)

    @property
    def dropped_fraction(self) -> float:
        """Fraction of (token, choice) pairs dropped by the capacity limit."""
        return 1.0 - self.keep.float().mean().item()

    @property
    def unprocessed_fraction(self) -> float:
        """Fraction of tokens that no expert processed (every choice dropped): only the residual carries them."""
        return (~self.keep.any(dim=-1)).float().mean().item()


def route(logits: torch.Tensor, k: int = 2, capacity_factor: float | None = 1.25,
          renormalize: bool | None = None) -> Routing:
    """Gate, capacity, positions and auxiliary loss for ``logits`` (S, E); dispatch/combine on demand."""
    S, E = logits.shape
    probs, weights, indices = top_k_gating(logits, k, renormalize)
    capacity = expert_capacity(S, E, k, capacity_factor)
    positions = expert_positions(indices, E)
    return Routing(probs, weights, indices, positions, positions < capacity, capacity,
                   load_balancing_loss(probs, indices))


def moe_forward(x: torch.Tensor, routing: Routing, experts) -> torch.Tensor:
    """y = Σ_e combine · expert_e(dispatched x), in einsum form. ``x``: (S, D) → (S, D)."""
    expert_inputs = torch.einsum("SEC,SD->ECD", routing.dispatch.to(x.dtype), x)  # (E, C, D): each expert's buffer
    expert_outputs = torch.stack([expert(expert_inputs[e]) for e, expert in enumerate(experts)])  # (E, C, D)
    return torch.einsum("SEC,ECD->SD", routing.combine.to(x.dtype), expert_outputs)  # (S, D)


def moe_forward_indexed(x: torch.Tensor, routing: Routing, experts) -> torch.Tensor:
    """The same y as :func:`moe_forward`, by gather and scatter: each expert runs on the tokens it kept, and its
    weighted outputs are added back at their rows. Linear in S (the einsum form costs S·E·C·D). (S, D) → (S, D)."""
    y = torch.zeros_like(x)  # (S, D): a token no expert kept stays 0
    for e, expert in enumerate(experts):
        token, choice = torch.nonzero((routing.indices == e) & routing.keep, as_tuple=True)  # (n_e,), (n_e,)
        if len(token):
            weight = routing.weights[token, choice].unsqueeze(-1).to(x.dtype)  # (n_e, 1)
            y = y.index_add(0, token, weight * expert(x[token]))  # (S, D)
    return y


def moe_reference(x: torch.Tensor, weights: torch.Tensor, indices: torch.Tensor, experts,
                  keep: torch.Tensor | None = None) -> torch.Tensor:
    """Brute force, one token and one choice at a time: y_s = Σ_j keep_sj · w_sj · expert_{i_sj}(x_s). Slow; for
    checking. ``x``: (S, D); ``weights``, ``indices``, ``keep``: (S, k)."""
    rows = []
    for s in range(x.shape[0]):
        y_s = torch.zeros_like(x[s])
        for j in range(indices.shape[1]):
            if keep is None or keep[s, j]:
                y_s = y_s + weights[s, j] * experts[int(indices[s, j])](x[s:s + 1])[0]
        rows.append(y_s)
    return torch.stack(rows)


class FeedForward(nn.Module):
    """The transformer's position-wise FFN, D → F → D with a GELU: one expert, or the dense baseline."""

    def __init__(self, d_model: int, d_hidden: int):
        super().__init__()
        self.up, self.down = nn.Linear(d_model, d_hidden), nn.Linear(d_hidden, d_model)

    def forward(self, x):  # (..., D) -> (..., D)
        return self.down(F.gelu(self.up(x)))


class MoELayer(nn.Module):
    """A router (D → E, no bias) and E FeedForward experts; top-k routing with capacity. Input (..., D).
    ``einsum=True`` runs the experts through the dispatch/combine tensors, else by gather/scatter (same numbers).

    ``forward`` returns ``(y, routing)``: y has the input's shape, 0 for a token every choice of which was dropped
    (add the residual outside); ``routing.aux_loss`` is the load-balancing loss to add, times a small weight."""

    def __init__(self, d_model: int, d_hidden: int, num_experts: int, k: int = 2,
                 capacity_factor: float | None = 1.25, renormalize: bool | None = None, einsum: bool = False):
        super().__init__()
        self.k, self.capacity_factor, self.renormalize, self.einsum = k, capacity_factor, renormalize, einsum
        self.router = nn.Linear(d_model, num_experts, bias=False)
        self.experts = nn.ModuleList(FeedForward(d_model, d_hidden) for _ in range(num_experts))

    def forward(self, x: torch.Tensor):
        tokens = x.reshape(-1, x.shape[-1])  # (S, D), S = every leading axis, e.g. B·T
        routing = route(self.router(tokens), self.k, self.capacity_factor, self.renormalize)
        forward = moe_forward if self.einsum else moe_forward_indexed  # same numbers; the gather is faster on a CPU
        return forward(tokens, routing, self.experts).reshape(x.shape), routing
