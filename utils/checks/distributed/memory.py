"""Exercise 10.1: memory per rank (eq. (10.2)) — the learner's formula, read back as bytes per parameter.

For each ZeRO stage and precision the answer is evaluated on many (Ψ, N, activation bytes) and fitted as
``a·Ψ + b·Ψ/N + c·A + d·A/N + e``: ``a`` is what stays replicated, ``b`` what is sharded. The parts (parameters,
gradients, optimizer state: 2, 2, 12 or 4, 4, 8 bytes) that make up ``b`` say which ones the learner shards."""
from __future__ import annotations

import itertools

import torch

from utils.checks.core import CheckFailure, fit_linear, one_thread
from utils.checks.distributed.cases import EX_MEMORY, number_value

POINTS = [(psi, n, act) for psi in (1_000, 7_001, 1_300_000) for n in (1, 2, 3, 8, 64) for act in (0, 123_457)]
STAGE_PARTS = {0: (), 1: ("optimizer",), 2: ("grads", "optimizer"), 3: ("params", "grads", "optimizer")}
EQUATION = "eq. (10.2): M_s = (replicated bytes)·Ψ + (sharded bytes)·Ψ/N, plus the activations"


def _bytes(mixed: bool) -> dict[str, int]:
    return {"params": 2, "grads": 2, "optimizer": 12} if mixed else {"params": 4, "grads": 4, "optimizer": 8}


def _expected(psi, n, stage, act, mixed):
    parts = _bytes(mixed)
    return sum(b * psi / (n if part in STAGE_PARTS[stage] else 1) for part, b in parts.items()) + act


def _parts_for(total: float, mixed: bool) -> list[tuple[str, ...]]:
    parts = _bytes(mixed)
    return [combo for k in range(4) for combo in itertools.combinations(parts, k)
            if abs(sum(parts[p] for p in combo) - total) < 1e-6]


def _said(combo: tuple[str, ...]) -> str:
    names = {"params": "parameters", "grads": "gradients", "optimizer": "optimizer state"}
    return " and ".join(names[p] for p in combo) if combo else "nothing"


@one_thread
def check_memory_per_rank(memory_per_rank) -> None:
    """Exercise 10.1: eq. (10.2) plus activations, for stages 0–3, both precisions, 30 sizes each."""
    for mixed in (True, False):
        for stage in range(4):
            got = []
            for psi, n, act in POINTS:
                label = f"Ψ={psi:,}, N={n}, stage {stage}, activations {act:,} B, mixed_precision={mixed}"
                value = EX_MEMORY.call(memory_per_rank, psi, n, stage, act, mixed_precision=mixed, case=label)
                number = number_value(value)
                if number is None:
                    shown = type(value).__name__
                    raise EX_MEMORY.fail(f"returned a {shown} ({value!r:.80}), not a number: return the total bytes "
                                         f"per rank, parameters + gradients + optimizer state + activations.",
                                         case=label)
                if number != number or abs(number) == float("inf"):
                    raise EX_MEMORY.fail(f"returned {number}: a division by zero or by an undefined size?",
                                         case=label)
                got.append(number)
            want = [_expected(psi, n, stage, act, mixed) for psi, n, act in POINTS]
            if all(abs(g - w) <= 1e-6 * max(abs(w), 1.0) for g, w in zip(got, want)):
                continue
            _diagnose(got, want, stage, mixed)
    EX_MEMORY.passed("eq. (10.2) plus activations for ZeRO stages 0–3, mixed precision (2, 2, 12 bytes) and fp32 "
                     "(4, 4, 8), 30 sizes each; stage 3 at N = 64 is 16Ψ/64 + activations")


def _diagnose(got, want, stage, mixed) -> None:
    first = next(i for i, (g, w) in enumerate(zip(got, want)) if abs(g - w) > 1e-6 * max(abs(w), 1.0))
    psi, n, act = POINTS[first]
    label = f"stage {stage}, mixed_precision={mixed}"
    head = f"Exercise 10.1 ({label}; Ψ={psi:,}, N={n}, activations {act:,} B): you return {got[first]:,.6g}, " \
           f"expected {want[first]:,.6g}. "
    basis = {name: torch.tensor(values, dtype=torch.float64) for name, values in (
        ("Ψ", [p for p, _, _ in POINTS]), ("Ψ/N", [p / k for p, k, _ in POINTS]), ("A", [a for _, _, a in POINTS]),
        ("A/N", [a / k for _, k, a in POINTS]), ("1", [1.0] * len(POINTS)))}
    fit = fit_linear(torch.tensor(got, dtype=torch.float64), basis)
    if not fit.exact:  # the usual ways out of the form: a second ÷ N, or ÷ (N − 1)
        for extra, reading in (("Ψ/N²", "a Ψ/N² term: something is divided by N twice (a sharded part, or the "
                                        "whole sum divided by N once more)"),
                               ("Ψ/(N−1)", "a Ψ/(N − 1) term: you divide by N − 1; a part sharded over N ranks is "
                                           "divided by N")):
            values = [p / k ** 2 if extra == "Ψ/N²" else p / max(k - 1, 1) for p, k, _ in POINTS]
            wider = fit_linear(torch.tensor(got, dtype=torch.float64),
                               {**basis, extra: torch.tensor(values, dtype=torch.float64),
                                "A/N²": torch.tensor([a / k ** 2 for _, k, a in POINTS], dtype=torch.float64)})
            if wider.exact and abs(wider.coefficients[extra]) > 1e-6:
                raise CheckFailure(head + f"Your answer has {reading}. ({EQUATION}.)")
    ratio = [g / w for g, w in zip(got, want) if w]
    if ratio and all(abs(r - ratio[0]) < 1e-6 * abs(ratio[0]) for r in ratio):
        for name, value in (("GB (10⁹)", 1e-9), ("GiB (2³⁰)", 2 ** -30), ("MB (10⁶)", 1e-6), ("MiB (2²⁰)", 2 ** -20),
                            ("KiB", 2 ** -10), ("bits (× 8)", 8.0)):
            if abs(ratio[0] - value) < 1e-6 * value:
                raise CheckFailure(head + f"Your values are the right ones in {name}: return bytes.")
    if not fit.exact:
        raise CheckFailure(head + f"Your answer is not of the form a·Ψ + b·Ψ/N + activations: it is not linear in "
                                  f"Ψ at fixed N (a square, a product of sizes, an integer division?). Compare with "
                                  f"{EQUATION}.")
    c = {k: round(v, 6) for k, v in fit.coefficients.items()}
    said = []
    parts = _bytes(mixed)
    want_rep = sum(b for p, b in parts.items() if p not in STAGE_PARTS[stage])
    want_shard = 16 - want_rep
    if c["A"] + c["A/N"] == 0:
        said.append("the activations are missing: add activation_bytes once")
    elif c["A/N"] == 1 and c["A"] == 0:
        said.append("you divide the activations by N: each rank keeps the activations of its own batch, which no "
                    "ZeRO stage shards")
    elif c["A"] not in (0, 1) or c["A/N"] not in (0, 1):
        said.append(f"the activations enter {c['A'] + c['A/N']:g} times; add them once")
    if c["1"]:
        said.append(f"there is a constant term of {c['1']:g} bytes that depends on nothing")
    if (c["Ψ"], c["Ψ/N"]) != (want_rep, want_shard):
        other = _bytes(not mixed)
        rep_other = sum(b for p, b in other.items() if p not in STAGE_PARTS[stage])
        if (c["Ψ"], c["Ψ/N"]) == (rep_other, 16 - rep_other) and rep_other != want_rep:
            said.append(f"you use the {'fp32' if mixed else 'mixed-precision'} bytes (params, grads, optimizer = "
                        f"{tuple(other.values())}) where mixed_precision={mixed} needs {tuple(parts.values())}")
        elif c["Ψ"] + c["Ψ/N"] == 16:
            combos = _parts_for(c["Ψ/N"], mixed)  # parameters and gradients have equal sizes: maybe ambiguous
            stages = [s for s, p in STAGE_PARTS.items() if any(set(p) == set(combo) for combo in combos)]
            if len(combos) == 1:
                sharded = _said(combos[0])
            elif combos:
                sharded = " or ".join(_said(combo) for combo in combos) + " (parameters and gradients have the " \
                                                                           "same size: the numbers cannot tell which)"
            else:
                sharded = f"{c['Ψ/N']:g} bytes per parameter"
            text = f"you shard {sharded} (÷ N); stage {stage} shards {_said(STAGE_PARTS[stage])}"
            if stages and stage not in stages:
                text += f" — {'that is' if len(combos) == 1 else 'it may be'} stage {stages[0]}'s rule: stage s " \
                        f"shards the first s of (optimizer state, gradients, parameters)"
            said.append(text)
        else:
            said.append(f"you count {c['Ψ'] + c['Ψ/N']:g} bytes per parameter in all ({c['Ψ']:g} replicated + "
                        f"{c['Ψ/N']:g} sharded); parameters + gradients + optimizer state are "
                        f"{' + '.join(map(str, parts.values()))} = 16 bytes per parameter")
    raise CheckFailure(head + ("; ".join(said) + "." if said else "") + f" ({EQUATION}.)")
