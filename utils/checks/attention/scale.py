"""Which sizes a learner's scale of the scores follows: the temperature fitted at several sizes, one changed at a
time, and said as a power law (a = 1/√d_k, not 1/√D or a number fixed in the code)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

from utils.checks.attention.common import is_close


@dataclass(frozen=True)
class Size:
    """A size the scale of the scores might follow: its name, where the code reads it, and two values to try."""

    name: str  # "d_k"
    source: str  # "q.shape[-1]"
    base: int
    other: int
    meaning: str = ""  # "the number of keys"


def scale_law(fit_at: Callable[[dict[str, int]], float | None], sizes: Sequence[Size]):
    """(c, exponents) with the learner's temperature a = c · Π size^α, from ``fit_at`` (the temperature fitted on
    inputs of the given sizes, or None) at the base sizes and with one size changed at a time. None when a fit
    fails or a does not follow a power of the sizes (exponents that are not multiples of 1/2)."""
    base = {s.name: s.base for s in sizes}
    a0 = fit_at(base)
    if a0 is None or a0 <= 0:
        return None
    exponents = {}
    for size in sizes:
        a1 = fit_at({**base, size.name: size.other})
        if a1 is None or a1 <= 0:
            return None
        alpha = math.log(a1 / a0) / math.log(size.other / size.base)
        if abs(2 * alpha - round(2 * alpha)) > 0.02:
            return None
        exponents[size.name] = round(2 * alpha) / 2
    c = a0 / math.prod(base[name] ** alpha for name, alpha in exponents.items())
    return c, exponents


def _where_from(size: Size) -> str:
    """"Tk = k.shape[-2], the number of keys"."""
    return size.name + (f" = {size.source}" if size.source != size.name else "") + \
        (f", {size.meaning}" if size.meaning else "")


def _power(name: str, alpha: float) -> str:
    return {-0.5: f"1/√{name}", -1.0: f"1/{name}", 0.5: f"√{name}", 1.0: name}.get(alpha, f"{name}^{alpha:g}")


def _constant_text(c: float) -> str:
    """0.3536 → "1/√8", 0.125 → "1/8" (a number a learner may have typed), else "0.3536"."""
    forms = [f"1/{n}" for n in range(2, 4097) if is_close(c, 1 / n, 1e-3)][:1] + \
        [f"1/√{n}" for n in range(2, 4097) if is_close(c, 1 / math.sqrt(n), 1e-3)][:1]
    return " = ".join(forms) or f"{c:.4g}"


def scale_law_message(law, sizes: Sequence[Size], right: str, *, who: str, equation: str,
                      products: Sequence[tuple[Size, tuple[str, ...]]] = ()) -> str | None:
    """What the fitted law a = c · Π size^α says against the right a = 1/√right, or None when it is right.
    ``products`` names products of sizes (D = Dh · H): sizes that share an exponent are said as their product."""
    if law is None:
        return None
    c, exponents = law
    followed = {name: alpha for name, alpha in exponents.items() if alpha != 0}
    if followed == {right: -0.5} and is_close(c, 1.0, 1e-3):
        return None
    by_name = {s.name: s for s in sizes}
    for product, members in products:
        powers = {followed.get(name, 0.0) for name in members}
        if len(powers) == 1 and 0.0 not in powers:
            followed = {**{n: a for n, a in followed.items() if n not in members}, product.name: powers.pop()}
            by_name[product.name] = product
    tried = ", ".join(f"{s.name} = {s.base} and {s.other}" for s in sizes)
    parts = ([] if is_close(c, 1.0, 1e-3) and followed else [_constant_text(c)]) + \
        [_power(name, alpha) for name, alpha in followed.items()]
    formula = " · ".join(parts) if parts else "1"
    head = (f"{who} are softmax(a · QKᵀ) with a = {formula} (fitted on inputs with {tried}), but {equation} has "
            f"a = 1/√{right}, with {right} = {by_name[right].source}: ")
    if not followed:
        if is_close(c, 1.0, 1e-3):
            return head + f"the scores are not scaled at all: did you forget to divide the scores by √{right}?"
        return head + (f"your scale stays {_constant_text(c)} whatever the sizes are: a number fixed in your code. "
                       f"Compute it from the input: 1/√{right}, {right} = {by_name[right].source}.")
    wrong = [name for name in followed if name != right]
    if wrong:
        sources = ", ".join(_where_from(by_name[name]) for name in wrong)
        return head + (f"your scale follows {' and '.join(wrong)} ({sources}), not {right} alone: the scale comes "
                       f"from the width of q and k, {right} = {by_name[right].source}.")
    alpha = followed[right]
    precedence = _precedence_reading(c, alpha, right)
    if precedence and alpha == 1.0:
        return head + precedence
    if not is_close(c, 1.0, 1e-3):
        return head + (f"besides {_power(right, alpha)}, your scale has a constant factor {_constant_text(c)}: "
                       f"divide the scores by √{right} and nothing else." + (f" If you wrote the root as a power: "
                                                                           f"{precedence}" if precedence else ""))
    return head + {-1.0: f"you divided the scores by {right} instead of √{right}: divide by √{right}, the standard "
                         f"deviation of q·k (eq. (1.3)).",
                   0.5: f"you multiplied the scores by √{right}; divide by it instead.",
                   1.0: f"you multiplied the scores by {right}; divide by √{right} instead."}.get(
        alpha, f"your scale goes as {_power(right, alpha)}; divide the scores by √{right}.")


def _precedence_reading(c: float, alpha: float, right: str) -> str | None:
    """A fitted a = 2/d_k, d_k/2 or 1/(2·d_k): a power written ``** 1/2``, which Python reads as (d_k ** 1) / 2 since
    ** binds tighter than /."""
    fix = f"write {right} ** 0.5 (or math.sqrt({right})), or put the exponent in parentheses, ** (1/2)"
    if alpha == -1.0 and is_close(c, 2.0, 1e-3):
        return (f"a = 2/{right}: the scores are divided by {right}/2, which is what `/ ({right} ** 1/2)` computes, "
                f"since ** binds tighter than / (operator precedence: ({right} ** 1) / 2): {fix}.")
    if alpha == 1.0 and is_close(c, 0.5, 1e-3):
        return (f"a = {right}/2: `* {right} ** 1/2` computes ({right} ** 1) / 2, since ** binds tighter than / "
                f"(operator precedence), and multiplies where eq. (1.1) divides: divide by √{right}; {fix}.")
    if alpha == -1.0 and is_close(c, 0.5, 1e-3):
        return (f"a = 1/(2·{right}): `scores / {right} ** 1/2` computes scores / {right} / 2, since ** binds tighter "
                f"than / (operator precedence: {right} ** 1 first, then two divisions): {fix}.")
    return None
