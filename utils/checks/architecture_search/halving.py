"""Exercise 7.4: the rungs of successive halving, eq. (7.6)."""
from __future__ import annotations

import math

from utils.checks.architecture_search.reference import EX_HALVING
from utils.checks.core import one_thread

# (n_configs, min_steps, eta); 243 = 3⁵ and 1000 = 10³: exact powers whose float log(n, η) falls just short
CASES = ((81, 1, 3), (27, 10, 3), (100, 5, 3), (64, 4, 2), (1, 5, 3), (2, 7, 3), (10, 3, 4), (30, 2, 3), (243, 1, 3),
         (1000, 2, 10))


def rungs(n: int, r: int, eta: int) -> list[tuple[int, int]]:
    found, n_i, r_i = [], n, r
    while n_i >= 1:
        found.append((n_i, r_i))
        n_i, r_i = n_i // eta, r_i * eta
    return found


def _diagnose(got: list, want: list, n: int, r: int, eta: int) -> str:
    got_n, got_r = [p[0] for p in got], [p[1] for p in got]
    want_n, want_r = [p[0] for p in want], [p[1] for p in want]
    if got_r == want_n[:len(got_r)] and got_n == want_r[:len(got_n)] and got_n != got_r:
        return "each rung is (steps, configurations): return (n_i, r_i), the number of configurations first."
    if got_r and got_r == [r * eta ** (i + 1) for i in range(len(got_r))]:
        return (f"your budgets start at r·η = {r * eta}: rung 0 trains min_steps = {r} step{'s' if r > 1 else ''} "
                f"(r_i = r·η^i, i from 0).")
    linear = [n if i == 0 else n // (eta * i) for i in range(len(got_n))]
    if len(got_n) > 2 and got_n == linear:
        return (f"your configuration counts {got_n[:5]}… divide n by η·i: each rung keeps 1/η of the previous rung, so "
                f"n_i = ⌊n/η^i⌋ (n_i = n_i // eta at every rung).")
    if got and got[0] != (n, r):
        return (f"your first rung is {got[0]}; rung 0 is (n_configs, min_steps) = ({n}, {r}): every configuration "
                f"starts, with the smallest budget.")
    if got_n == want_n + [0] * (len(got) - len(want)) and len(got) > len(want):
        return (f"your last rung{'s hold' if len(got) - len(want) > 1 else ' holds'} 0 configurations: stop when "
                f"none is left (while n_i >= 1).")
    if got[:len(want) - 1] == want[:-1] and len(got) == len(want) - 1 and math.log(n, eta) % 1 > 0.5:
        return (f"you stop one rung early, and only where n = {n} is an exact power of η = {eta}: in floating point "
                f"math.log({n}, {eta}) = {math.log(n, eta)!r}, which int() rounds down. Count the rungs with integers "
                f"(while n_i >= 1: …; n_i //= eta), or round the logarithm.")
    if got[:len(want) - 1] == want[:-1] and len(got) == len(want) - 1:
        return (f"you stop one rung early: the last rung, {want[-1]}, still holds {want[-1][0]} configuration"
                f"{'s' if want[-1][0] > 1 else ''} (the loop condition is n_i >= 1, not n_i > 1 or n_i >= eta).")
    ceil_n = [math.ceil(n / eta ** i) for i in range(len(got))]
    if got_n == ceil_n and got_n != want_n[:len(got_n)]:
        return (f"you round the survivors up ({got_n}); successive halving keeps ⌊n_i/η⌋ (floor: you cannot keep a "
                f"fraction, and keeping more than 1/η of them breaks the cost bound of eq. (7.7)): n_i // eta.")
    if got_r and all(value == r for value in got_r) and len(got_r) > 1:
        return (f"every rung trains {r} step{'s' if r > 1 else ''}: the survivors' budget grows by η each rung, "
                f"r_i = r·η^i.")
    if got_n and got_n == want_n[:len(got_n)] and got_r != want_r[:len(got_r)]:
        return f"your configuration counts are right; your budgets {got_r} should be {want_r} (r_i = r·η^i)."
    if got_r and got_r == want_r[:len(got_r)]:
        return f"your budgets are right; your configuration counts {got_n} should be {want_n} (n_i = ⌊n/η^i⌋)."
    shown = f"{got[:6]}{'…' if len(got) > 6 else ''} ({len(got)} rungs)"
    return f"your rungs {shown} should be {want} (eq. (7.6): n_i = ⌊n/η^i⌋, r_i = r·η^i, while n_i ≥ 1)."


@one_thread
def check_successive_halving(successive_halving) -> None:
    """Exercise 7.4: ``successive_halving(n_configs, min_steps, eta)`` returns [(n_i, r_i)] of eq. (7.6)."""
    EX = EX_HALVING
    for n, r, eta in CASES:
        case = f"n = {n}, r = {r}, η = {eta}"
        got = EX.call(successive_halving, n, r, eta, case=case)
        want = rungs(n, r, eta)
        if got is None:
            raise EX.fail("returned None: did you forget `return rungs`?", case=case)
        try:
            got = list(got)
            pairs = [tuple(p) for p in got]
        except TypeError:
            raise EX.fail(f"return a list of (n_i, r_i) pairs; you returned {type(got).__name__} {got!r:.80}.",
                          case=case) from None
        if any(len(p) != 2 for p in pairs):
            raise EX.fail(f"each rung is a pair (n_i, r_i); you returned {pairs!r:.120}.", case=case)
        if any(isinstance(v, float) for p in pairs for v in p):
            if [tuple(int(v) for v in p) for p in pairs] == want or [(math.floor(a), b) for a, b in pairs] == \
                    [(a, b) for a, b in want]:
                raise EX.fail(f"your rungs hold floats ({pairs[:3]}…): n / eta ** i and eta ** i give floats even "
                              f"when they are whole. Use integer arithmetic: n_i // eta, r_i * eta.", case=case)
        if pairs == want:
            continue
        try:
            pairs = [(int(a), int(b)) for a, b in pairs]
        except (TypeError, ValueError):
            raise EX.fail(f"each rung is a pair of integers (n_i, r_i); you returned {pairs!r:.120}.",
                          case=case) from None
        raise EX.fail(_diagnose(pairs, want, n, r, eta), case=case)
    EX.passed(f"{len(CASES)} cases give the rungs n_i = ⌊n/η^i⌋, r_i = r·η^i of eq. (7.6)")
