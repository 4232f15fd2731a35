"""Exercises 3.2–3.5: dispatch and combine as a loop (eq. (3.3)), capacity and positions (eqs. (3.5)–(3.6)), the
dispatch/combine tensors and the einsum forward (eq. (3.4)). The reference is the brute-force per-token loop
``utils.moe.moe_reference``; a wrong output is read as "which (token, choice) contributions are there"."""
from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F

from utils import moe
from utils.checks.core import Mistake, one_thread
from utils.checks.mixture_of_experts.cases import (
    EX_CAPACITY,
    EX_DISPATCH,
    EX_EINSUM,
    EX_LOOP,
    CountingExpert,
    RoutingCase,
    ensure_tensor,
    expect_tuple,
    experts_for,
    routing_for,
    subset_reading,
)

LOOP_CASES = (
    RoutingCase("S=7, E=4, k=2, float64", S=7, E=4, k=2, D=5, dtype=torch.float64, capacity_factor=None),
    RoutingCase("one token, S=1, E=3, k=2", S=1, E=3, k=2, D=4, capacity_factor=None),
    RoutingCase("top-1, S=6, E=4, k=1, float64", S=6, E=4, k=1, D=5, dtype=torch.float64, capacity_factor=None),
    RoutingCase("top-3, S=9, E=5, k=3", S=9, E=5, k=3, D=4, capacity_factor=None),
    RoutingCase("experts 3–5 get no token, S=8, E=6, k=2, float64", S=8, E=6, k=2, D=4, dtype=torch.float64,
                capacity_factor=None, only=3),
)

CAPACITY_CASES = (
    RoutingCase("S=12, E=3, k=2, capacity factor 1.0, a popular expert", S=12, E=3, k=2, capacity_factor=1.0,
                skew=2.0),
    RoutingCase("S=7, E=4, k=2, capacity factor 1.5 (C = ⌈5.25⌉)", S=7, E=4, k=2, capacity_factor=1.5, skew=1.0),
    RoutingCase("top-1, S=10, E=4, capacity factor 1.25", S=10, E=4, k=1, capacity_factor=1.25, skew=1.5),
    RoutingCase("one token, S=1, E=2, k=2, capacity factor 1.0", S=1, E=2, k=2, capacity_factor=1.0),
    RoutingCase("no limit (capacity_factor=None), S=9, E=3, k=2", S=9, E=3, k=2, capacity_factor=None, skew=2.0),
    RoutingCase("top-3, S=16, E=4, capacity factor 0.5", S=16, E=4, k=3, capacity_factor=0.5, skew=1.0),
)

DISPATCH_CASES = (
    RoutingCase("S=12, E=3, k=2, capacity factor 1.0, drops, float64", S=12, E=3, k=2, capacity_factor=1.0,
                skew=2.0, dtype=torch.float64),
    RoutingCase("top-1, S=10, E=4, capacity factor 1.25, drops", S=10, E=4, k=1, capacity_factor=1.25, skew=1.5),
    RoutingCase("one token, S=1, E=2, k=2", S=1, E=2, k=2, capacity_factor=1.0),
    RoutingCase("no drops, S=6, E=4, k=2, float64", S=6, E=4, k=2, capacity_factor=None, dtype=torch.float64),
)


def _contributions(x, routing_weights, indices, experts) -> torch.Tensor:
    """(S, k, D): g_sj · FFN_{i_sj}(x_s), each (token, choice) alone."""
    S, k = indices.shape
    return torch.stack([torch.stack([routing_weights[s, j] * experts[int(indices[s, j])](x[s:s + 1])[0]
                                     for j in range(k)]) for s in range(S)])


_RESIDUAL = ("your output is x + the MoE's output: the layer returns y alone; the residual x + y is added by the "
             "block around it (exercise 3.7), so don't add it here.")


# ============================================================================================== 3.2
@one_thread
def check_moe_loop(moe_loop) -> None:
    """``moe_loop(x, weights, indices, experts)`` → (S, D), eq. (3.3), one call per expert."""
    EX = EX_LOOP
    for case in LOOP_CASES:
        routing = routing_for(EX, case)
        x = EX.randn(case.S, case.D, key=(case.label, "x"), dtype=case.dtype)
        experts = experts_for(EX, case)
        counting = [CountingExpert(copy.deepcopy(e)) for e in experts]  # the learner may change theirs (.float())
        with torch.no_grad():
            expected = moe.moe_reference(x, routing.weights, routing.indices, experts)
            contributions = _contributions(x, routing.weights, routing.indices, experts)
            unweighted = _contributions(x, torch.ones_like(routing.weights), routing.indices, experts)
            got = EX.call(moe_loop, x, routing.weights, routing.indices, counting, case=case)
        mistakes = [Mistake(unweighted.sum(dim=1), "your output adds the experts' outputs without their gate "
                                                   "weights: multiply each by g_sj, eq. (3.3)."),
                    Mistake((contributions * routing.weights.unsqueeze(-1)).sum(dim=1), "your gate weights are "
                            "applied twice (g² · FFN): multiply each expert's output by g_sj once, eq. (3.3)."),
                    Mistake(unweighted.sum(dim=1) * routing.weights[:, :1], "every choice of a token is weighted "
                            "by its FIRST weight: use weights[token, choice], the weight of the choice that picked "
                            "this expert (eq. (3.3)).")]
        if case.k > 1:
            last = contributions[:, -1]
            mistakes.append(Mistake(last, "only one choice per token survives (the last one written): y[token] = … "
                                          "assigns, so a token's second expert overwrites its first. Add with "
                                          "index_add (or +=): y_s sums over the k choices, eq. (3.3)."))
        mistakes.append(Mistake(x + expected, _RESIDUAL))
        probe = lambda g: subset_reading(g, contributions, routing.indices, None, "eq. (3.3)")  # noqa: E731
        EX.compare(got, expected, case=case, equation="eq. (3.3), y_s = Σ_j g_sj FFN_i_sj(x_s)", mistakes=mistakes,
                   probes=[probe], axes=("S", "D"))
        calls = [e.calls for e in counting]
        if any(calls[e] > case.k for e in range(case.E)):  # once per expert (or per choice column) is batched
            worst = max(range(case.E), key=lambda e: calls[e])
            raise EX.fail(f"you called expert {worst} {calls[worst]} times for k = {case.k} choices: loop over "
                          f"the experts and call each once on all its gathered tokens (x[token]), not once per "
                          f"token — the point of the gather/scatter form is one batched matrix product per expert.",
                          case=case)
    EX.passed(f"{len(LOOP_CASES)} cases match the per-token sum of eq. (3.3), one batched call per expert, including "
              f"k = 1, k = 3, a single token and experts that get no token.")


# ============================================================================================== 3.3
def _token_major_positions(indices, E):
    mask = F.one_hot(indices.reshape(-1), E)
    return ((mask.cumsum(0) - 1) * mask).sum(-1).reshape(indices.shape)


def _per_choice_positions(indices, E):
    return torch.stack([((F.one_hot(indices[:, j], E).cumsum(0) - 1) * F.one_hot(indices[:, j], E)).sum(-1)
                        for j in range(indices.shape[1])], dim=1)


@one_thread
def check_capacity_positions(capacity_positions) -> None:
    """``capacity_positions(indices, num_experts, capacity_factor)`` → (positions, keep, capacity)."""
    EX = EX_CAPACITY
    for case in CAPACITY_CASES:
        routing = routing_for(EX, case)
        indices = routing.indices
        got = expect_tuple(EX, EX.call(capacity_positions, indices.clone(), case.E, case.capacity_factor, case=case),
                           ("positions", "keep", "capacity"), case)
        got_positions, got_keep, got_capacity = got
        capacity = moe.expert_capacity(case.S, case.E, case.k, case.capacity_factor)
        _check_capacity(got_capacity, capacity, case)
        positions = moe.expert_positions(indices, case.E)
        got_positions = ensure_tensor(EX, got_positions, "positions", case)
        mistakes = [Mistake(_token_major_positions(indices, case.E),
                            "you count in token order (token 0's choices, then token 1's, …): GShard counts ALL first "
                            "choices before any second choice (eq. (3.6)), so a token's best expert is never taken by "
                            "another token's second choice. Order the choices as indices.t().reshape(-1)."),
                    Mistake(positions + 1, "your positions count from 1: the first token of an expert takes slot 0 "
                                           "(subtract 1 from the cumulative sum), eq. (3.6)."),
                    Mistake(_per_choice_positions(indices, case.E) if case.k > 1 else None,
                            "each choice counts from 0 on its own: second choices must take the slots AFTER all the "
                            "first choices of their expert (GShard: cumsum(mask_2) + count(mask_1)), eq. (3.6).")]
        mistakes = [m for m in mistakes if m.output is not None and not torch.equal(m.output, positions)]
        if got_positions.shape == positions.shape and not got_positions.is_floating_point() and \
                (got_positions == 0).all() and (positions != 0).any():
            raise EX.fail("all your positions are 0: the count must run over the TOKENS (and then the choices) — a "
                          "cumsum down the (k·S, E) one-hot of indices.t().reshape(-1), dim=0 — not over a token's "
                          "own k choices, which never share an expert (eq. (3.6)).", case=case)
        if got_positions.is_floating_point() and got_positions.shape == positions.shape:
            raise EX.fail(f"positions have dtype {got_positions.dtype}: slots are integers (int64).", case=case)
        EX.compare(got_positions.double() if not got_positions.is_floating_point() else got_positions,
                   positions.double(), case=case, name="positions", equation="eq. (3.6)", axes=("S", "k"),
                   mistakes=[Mistake(m.output.double(), m.hint) for m in mistakes])
        got_keep = ensure_tensor(EX, got_keep, "keep", case)
        keep = positions < capacity
        if got_keep.shape == keep.shape and torch.equal(got_keep.bool(), positions <= capacity) and \
                not torch.equal(keep, positions <= capacity):
            raise EX.fail("keep holds position ≤ C: slots run 0 … C − 1, so keep = positions < C (eq. (3.6)); "
                          "your version lets one token too many into a full expert.", case=case)
        if got_keep.shape == keep.shape and torch.equal(got_keep.bool(), torch.ones_like(keep)) and not keep.all():
            raise EX.fail("keep is True everywhere: choices at positions ≥ C must be dropped (eq. (3.6)).", case=case)
        if got_keep.dtype != torch.bool and got_keep.shape == keep.shape:
            raise EX.fail(f"keep has dtype {got_keep.dtype}: return a bool tensor (positions < capacity).", case=case)
        EX.compare(got_keep.double(), keep.double(), case=case, name="keep", equation="eq. (3.6), positions < C",
                   axes=("S", "k"))
    EX.passed(f"{len(CAPACITY_CASES)} cases: C = ⌈capacity_factor · k · S / E⌉ (None: S), positions counted from 0 "
              f"with all first choices before second choices, and keep = positions < C.")


def _check_capacity(got, capacity: int, case: RoutingCase) -> None:
    EX = EX_CAPACITY
    if isinstance(got, torch.Tensor) and got.numel() == 1:
        got = got.item()
    if isinstance(got, float) and got.is_integer():
        raise EX.fail(f"capacity is the float {got}: return an int (math.ceil returns one; int() a float's ceil).",
                      case=case)
    if not isinstance(got, int):
        raise EX.fail(f"capacity is a {type(got).__name__} ({got!r}), not an int: C = ⌈capacity_factor · k · S / E⌉ "
                      f"(eq. (3.5)).", case=case)
    if got == capacity:
        return
    S, E, k, cf = case.S, case.E, case.k, case.capacity_factor
    if cf is None:
        raise EX.fail(f"capacity is {got} with capacity_factor=None, which means no limit: C = S = {S} (an expert "
                      f"can receive each token at most once).", case=case)
    rounding = "eq. (3.5) rounds UP, math.ceil"
    readings = [(math.floor(cf * k * S / E), f"rounds down (int() or //): {rounding}"),
                (round(cf * k * S / E), f"rounds to the nearest integer: {rounding}"),
                (math.ceil(cf * S / E), "leaves out k: each token makes k choices, C = ⌈capacity_factor · k · S / E⌉"),
                (math.ceil(k * S / E), "leaves out the capacity factor"),
                (math.ceil(cf * k * E / S), "has S and E swapped: C = ⌈capacity_factor · k · S / E⌉"),
                (math.ceil(cf * S / (k * E)), "divides by k: each token makes k choices, so multiply by k"),
                (math.ceil(cf * S / E) * k, "multiplies by k after rounding: ⌈capacity_factor · k · S / E⌉ rounds "
                                            "the whole product once")]
    said = [text for value, text in readings if got == value and value != capacity]
    if said:
        raise EX.fail(f"capacity is {got}, expected {capacity}: your formula " + " — or ".join(said) + " (eq. (3.5)).",
                      case=case)
    raise EX.fail(f"capacity is {got}, expected C = ⌈{cf} · {k} · {S} / {E}⌉ = {capacity} (eq. (3.5)).", case=case)


# ============================================================================================== 3.4
@one_thread
def check_dispatch_combine(dispatch_combine) -> None:
    """``dispatch_combine(weights, indices, positions, keep, num_experts, capacity)`` → (dispatch, combine)."""
    EX = EX_DISPATCH
    for case in DISPATCH_CASES:
        r = routing_for(EX, case)
        positions = moe.expert_positions(r.indices, case.E)
        args = (r.weights.clone(), r.indices.clone(), positions.clone(), r.keep.clone(), case.E, r.capacity)
        got = expect_tuple(EX, EX.call(dispatch_combine, *args, case=case), ("dispatch", "combine"), case)
        got_dispatch, got_combine = (ensure_tensor(EX, t, n, case) for t, n in zip(got, ("dispatch", "combine")))
        if got_dispatch.dtype == torch.bool:  # right slots perhaps, but the einsums of eq. (3.5) need one float dtype
            raise EX.fail(f"your dispatch is a bool tensor; return it in weights' dtype ({case.dtype}), 0.0/1.0: the "
                          "einsums of eq. (3.5) multiply it with the float tokens x, and torch.einsum does not mix "
                          "bool with float (`.to(weights.dtype)`, or build it from one_hot(...).to(weights.dtype)).",
                          case=case)
        dispatch, combine = r.dispatch.to(case.dtype), r.combine
        clamped = positions.clamp(max=r.capacity - 1)
        expert_hot = F.one_hot(r.indices, case.E).to(case.dtype)
        slot_hot = F.one_hot(clamped, r.capacity).to(case.dtype)
        no_drop_dispatch = torch.einsum("SkE,SkC->SEC", expert_hot, slot_hot)
        no_drop_combine = torch.einsum("Sk,SkE,SkC->SEC", r.weights, expert_hot, slot_hot)
        dropped = not bool(r.keep.all())
        counting = ("dropped choices are still in your tensors (keep ignored): a choice at position ≥ C has no slot "
                    "— clamped into slot C − 1 it would overwrite that slot's token. Multiply by keep: don't count "
                    "dropped tokens (eq. (3.6)).")
        EX.compare(got_dispatch, dispatch, case=case, name="dispatch", equation="eq. (3.4): 1 where choice j of "
                   "token s sits in slot positions[s, j] of expert indices[s, j]", axes=("S", "E", "C"),
                   probes=[lambda g: _slot_reading(g, dispatch)],
                   mistakes=[Mistake(no_drop_dispatch, counting) if dropped else None,
                             Mistake(combine, "your dispatch tensor holds the gate weights: dispatch is 0/1 (it "
                                              "only moves tokens); the weights go into combine (eq. (3.4)).")])
        EX.compare(got_combine, combine, case=case, name="combine", equation="eq. (3.4): the gate weight g_sj in "
                   "dispatch's slot", axes=("S", "E", "C"),
                   mistakes=[Mistake(no_drop_combine, counting) if dropped else None,
                             Mistake(dispatch, "your combine tensor holds 1s: it carries the gate weights g_sj "
                                               "(eq. (3.4)).")])
    EX.passed(f"{len(DISPATCH_CASES)} cases: dispatch and combine (S, E, C) put every kept choice in its slot with "
              f"its weight, and dropped choices nowhere.")


def _slot_reading(got: torch.Tensor, expected: torch.Tensor) -> str | None:
    """Right experts (summed over the slots), wrong slots: a position read off by one, or not from ``positions``."""
    if got.shape != expected.shape or not torch.allclose(got.sum(dim=-1), expected.sum(dim=-1)):
        return None
    if got.shape[-1] > 1 and torch.equal(got[..., 1:], expected[..., :-1]):
        return ("every token sits one slot too far right: slot = positions[s, j], counted from 0 (eq. (3.4)).")
    return ("each token is sent to the right experts but into the wrong slots: the slot of choice j of token s is "
            "positions[s, j] (one-hot it with C classes), eq. (3.4).")


# ============================================================================================== 3.5
@one_thread
def check_moe_einsum(moe_einsum) -> None:
    """``moe_einsum(x, dispatch, combine, experts)`` → (S, D), eq. (3.4), against the per-token loop (3.3)."""
    EX = EX_EINSUM
    for case in DISPATCH_CASES:
        r = routing_for(EX, case)
        x = EX.randn(case.S, case.D, key=(case.label, "x"), dtype=case.dtype)
        experts = experts_for(EX, case)
        dispatch = r.dispatch.to(case.dtype)
        with torch.no_grad():
            got = EX.call(moe_einsum, x, dispatch.clone(), r.combine.clone(), copy.deepcopy(experts), case=case)
            expected = moe.moe_reference(x, r.weights, r.indices, experts, r.keep)
            contributions = _contributions(x, r.weights, r.indices, experts)
            unweighted = moe.moe_reference(x, torch.ones_like(r.weights), r.indices, experts, r.keep)
            no_experts = torch.einsum("SEC,ECD->SD", r.combine, torch.einsum("SEC,SD->ECD", dispatch, x))
            weighted_inputs = torch.einsum("SEC,SD->ECD", r.combine, x)
            packed_with_combine = torch.einsum("SEC,ECD->SD", r.combine,
                                               torch.stack([f(weighted_inputs[e]) for e, f in enumerate(experts)]))
        probe = lambda g: subset_reading(g, contributions, r.indices, r.keep, "eq. (3.4)")  # noqa: E731
        EX.compare(got, expected, case=case, equation="eq. (3.4): pack with SEC,SD->ECD, run each expert on its "
                   "(C, D) buffer, combine with SEC,ECD->SD", axes=("S", "D"), probes=[probe],
                   mistakes=[Mistake(unweighted, "your output carries no gate weights: combine with the combine "
                                                 "tensor, not the dispatch tensor (eq. (3.4))."),
                             Mistake(x + expected, _RESIDUAL),
                             Mistake(no_experts, "your output is the combined INPUT buffers: run expert e on its "
                                                 "(C, D) buffer, expert_inputs[e], before combining (eq. (3.4))."),
                             Mistake(packed_with_combine, "you packed the buffers with the combine tensor, so each "
                                     "expert sees g·x instead of x: pack with dispatch (0/1), weight with combine "
                                     "after the experts (eq. (3.4)).")])
    EX.passed(f"{len(DISPATCH_CASES)} cases match the per-token loop of eq. (3.3) with the dropped choices left out.")
