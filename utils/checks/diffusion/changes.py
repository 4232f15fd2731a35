"""The small changes a learner makes to an equation (ᾱ for α, t + 1 for t, a lost square root, a flipped sign, two
terms swapped, one variable read wrongly throughout), each with what it means in words."""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, replace
from typing import Callable, Iterator

from utils.checks.diffusion.formulas import LAST, Factor, Formula, Model, Step, StepContext, Unbracketed
from utils.checks.diffusion.schedule import close


@dataclass(frozen=True)
class Change:
    """One small change to a model's parts, with what it means in words."""

    parts: dict
    what: str  # "the coefficient of ε is √β_t, where eq. (5.2) has √(1 − ᾱ_t) (β_t in place of (1 − ᾱ_t))"
    why: str  # what to do about it
    group: str | None = None
    cancels: bool = False  # the changed formula simplifies (factors cancel): a plainer name may exist


_SYMBOL_SWAPS = {  # (symbol, one_minus) → look-alikes a learner writes instead
    ("ᾱ", False): [("α", False)], ("α", False): [("ᾱ", False)],
    ("ᾱ", True): [("α", True), ("β", False)], ("β", False): [("ᾱ", True), ("β̃", False)],
    ("β̃", False): [("β", False)], ("α", True): [("ᾱ", True)],
}


def _why_symbol(old: tuple[str, bool], new: tuple[str, bool]) -> str:
    pair = {old[0], new[0]}
    if ("α", True) in (old, new):  # 1 − α_t is β_t
        pair = {"β", "ᾱ"}
    if pair == {"ᾱ", "α"}:
        return ("ᾱ vs α: ᾱ_t = α_1⋯α_t (schedule.alpha_bars) is the whole chain up to step t; α_t = 1 − β_t "
                "(schedule.alphas) is one step.")
    if pair == {"β", "β̃"}:
        return ("β̃_t = (1 − ᾱ_{t−1})/(1 − ᾱ_t)·β_t is the posterior's variance (eq. 5.7); β_t is the forward "
                "step's (schedule.betas).")
    return ("β_t is the variance one step adds; 1 − ᾱ_t is the variance of all the noise added up to step t "
            "(eq. 5.2).")


def _why_step(old: Step, new: Step) -> str:
    if new.wrapped and new.base == "t'":
        return ("At t' = 0, ᾱ_0 must be 1 (the clean image), but alpha_bars[t_prev - 1] wrapped around to "
                "alpha_bars[-1] = ᾱ_T. Pad a 1 in front: F.pad(schedule.alpha_bars, (1, 0), value=1.0)[t_prev].")
    if new.wrapped and old.offset == new.offset + 1 == 0:
        return ("Off by one: step t sits at index t − 1 (schedule.alpha_bars[t - 1] is ᾱ_t); index t − 2 is ᾱ_{t−1}, "
                "and at t = 1 it wraps around to alpha_bars[-1] = ᾱ_T.")
    if new.wrapped:
        return ("At t = 1, ᾱ_{t−1} = ᾱ_0 must be 1 (x_0 itself), but alpha_bars[t - 2] wrapped around to "
                "alpha_bars[-1] = ᾱ_T. Pad a 1 in front: F.pad(schedule.alpha_bars, (1, 0), value=1.0), whose "
                "index t is ᾱ_t.")
    if old.base != new.base:
        return ("t vs t': x̂_0 uses ᾱ_t (the step you are at, t), the new sample ᾱ_{t'} (the step you jump to, "
                "t_prev).")
    if {old.offset, new.offset} == {0, -1}:
        return ("Step t vs t − 1: β_t and α_t sit at index t − 1 of betas and alphas; with a 1 padded in front "
                "(F.pad(schedule.alpha_bars, (1, 0), value=1.0)) index t is ᾱ_t and t − 1 is ᾱ_{t−1} (ᾱ_0 = 1).")
    later = (" Every ᾱ one step later is also what a table padded at the end reads, F.pad(alpha_bars, (0, 1), "
             "value=1.0): the 1 (ᾱ_0) belongs in front, (1, 0).") if new.offset == old.offset + 1 else ""
    return ("Off by one: t runs from 1 to T and step t sits at index t − 1 (schedule.alpha_bars[t - 1] is ᾱ_t; "
            "with a 1 padded in front, index t)." + later)


def _why_power(old: float, new: float, factor: Factor | None = None, formula: Formula | None = None) -> str:
    """Why a factor's power is wrong, naming the factor (and the factors that do carry a root, where a square root
    over a product, √(a·b), took one off them onto it)."""
    name = factor.base_text() if factor is not None else "this factor"
    if abs(new) > abs(old):
        return f"Variance vs standard deviation: {name} enters as a square root (.sqrt())."
    if abs(new) < abs(old) and abs(old) != 1:
        return f"One square root too many on {name} (.sqrt() applied twice?)."
    if abs(new) < abs(old):
        roots = [f.text() for f in (formula.factors if formula is not None else ()) if abs(f.power) == 0.5
                 and f != factor]
        return f"There is no square root on {name}" + (
            f": only {' and '.join(roots)} {'is one' if len(roots) == 1 else 'are'} — a square root over a product, "
            f"√(a·b), takes the root of every factor inside it." if roots else ".")
    return f"{name} divides where you multiply (or the reverse)."


def _why_root_of_whole(formula: Formula) -> str:
    """Why the square root of a whole coefficient is wrong: name the factors that must stay outside it."""
    roots = [f.text() for f in formula.factors if abs(f.power) == 0.5]
    plain = [f.base_text() for f in formula.factors if abs(f.power) == 1 and f.symbol != LAST]
    if not roots or not plain:
        return "Variance vs standard deviation: no square root on the whole."
    return (f"No square root on the whole: only {' and '.join(roots)} {'is a root' if len(roots) == 1 else 'are roots'}"
            f" — there is no square root on {' or '.join(plain)}; take .sqrt() of that one factor alone.")


def changes(model: Model) -> Iterator[Change]:
    """The small changes to ``model`` a learner makes, in order from the most specific to the broadest."""
    parts, eq = model.parts, model.equation
    bases = tuple(dict.fromkeys(f.step.base for formula in parts.values() for f in formula.factors))

    def changed(name: str, formula: Formula, detail: str, why: str) -> Change:
        simple = formula.simplified()
        return Change({**parts, name: formula}, f"{model.labels[name]} is {simple} instead of {parts[name]}{detail}",
                      why, model.group_of(name), cancels=len(simple.factors) < len(formula.factors))

    for name, formula in parts.items():  # one factor of one part
        for i, factor in enumerate(formula.factors):
            def swap_in(new_factor: Factor) -> Formula:
                return replace(formula, factors=formula.factors[:i] + (new_factor,) + formula.factors[i + 1:])

            def detail(new_factor: Factor) -> str:
                return f" ({new_factor.text()} in place of {factor.text()})"
            if factor.symbol == LAST:
                yield changed(name, replace(formula, factors=formula.factors[:i] + formula.factors[i + 1:]),
                              f" (the factor {LAST} is missing)",
                              "No noise at the last step: z = 0 for the images whose t is 1 (Algorithm 2: "
                              "x_0 = μ̃_1).")
                yield changed(name, swap_in(replace(factor, one_minus=not factor.one_minus)),
                              " (the mask is the wrong way round: noise only where t = 1)",
                              "Noise goes to every image except those at their last step: multiply z by "
                              "(t > 1), not (t == 1).")
                continue
            for symbol, one_minus in _SYMBOL_SWAPS.get((factor.symbol, factor.one_minus), []):
                new = replace(factor, symbol=symbol, one_minus=one_minus)
                yield changed(name, swap_in(new), detail(new), _why_symbol((factor.symbol, factor.one_minus),
                                                                          (symbol, one_minus)))
            new = replace(factor, one_minus=not factor.one_minus)
            yield changed(name, swap_in(new), detail(new), "α_t = 1 − β_t vs β_t: α_t keeps the signal, β_t is the "
                          "step's noise variance." if factor.symbol in ("α", "β") else
                          "1 − ᾱ vs ᾱ: the signal keeps √ᾱ, the noise has variance 1 − ᾱ.")
            if factor.one_minus and abs(factor.power) == 0.5:
                new = replace(factor, inner=0.5, power=math.copysign(1.0, factor.power))
                code = "1 - alpha_bar_t" if factor.symbol == "ᾱ" else "1 - x"
                yield changed(name, swap_in(new), detail(new), f"√(1 − x) is not 1 − √x: take the square root of "
                              f"1 − {factor.symbol}, ({code}).sqrt().{_divided_form(model, name, factor)}")
            for step in _step_look_alikes(factor.step, bases):
                new = replace(factor, step=step)
                yield changed(name, swap_in(new), detail(new), _why_step(factor.step, step))
            for power in (factor.power * 2, factor.power / 2, -factor.power):
                new = replace(factor, power=power)
                yield changed(name, swap_in(new), detail(new), _why_power(factor.power, power, factor, formula))
            dropped = replace(formula, factors=formula.factors[:i] + formula.factors[i + 1:])
            yield changed(name, dropped, f" (the factor {factor.text()} is missing)", "A factor is missing.")
    for name, formula in parts.items():  # a ratio of two factors, upside down
        for i, upper in enumerate(formula.factors):
            for j, lower in enumerate(formula.factors):
                if upper.power > 0 and lower.power == -upper.power and upper.symbol != LAST:
                    flipped = list(formula.factors)
                    flipped[i], flipped[j] = replace(upper, power=-upper.power), replace(lower, power=upper.power)
                    yield changed(name, replace(formula, factors=tuple(flipped)),
                                  f" (the ratio {upper.text()}/{lower.text()} is upside down)",
                                  "Turn the ratio the right way up.")
    for name, formula in parts.items():  # a whole part
        yield changed(name, replace(formula, sign=-formula.sign), " (the sign is flipped)", "Flip the sign back.")
        yield changed(name, replace(formula, outer=0.5), " (the square root of it)", _why_root_of_whole(formula))
        rooted = [f for f in formula.factors if abs(f.power) == 0.5]
        plain = [f for f in formula.factors if abs(f.power) == 1 and f.symbol != LAST]
        if rooted and plain:  # √(ᾱ_{t−1}·β_t/(1 − ᾱ_t)): every factor of a product under one root
            yield changed(name, replace(formula, factors=tuple(replace(f, power=math.copysign(0.5, f.power))
                                                               if f in plain else f for f in formula.factors)),
                          " (one square root over all of it)", _why_root_of_whole(formula))
        yield changed(name, replace(formula, outer=2.0), " (its square)",
                      "Variance vs standard deviation: this is already the square root.")
        yield Change({**parts, name: replace(formula, zero=True)},
                     f"{model.labels[name]} is 0: the term with {formula} is missing", "Add the missing term.",
                     model.group_of(name))
    yield from _unbracketed_changes(model)
    yield from _power_precedence_changes(model)
    yield from _inside_bracket_changes(model)
    yield from _moved_root_changes(model)
    yield from _exchanged_factor_changes(model)
    for a, b in model.swaps:
        yield Change({**parts, a: parts[b], b: parts[a]},
                     f"{model.labels[a]} and {model.labels[b]} are swapped: {eq} has {parts[a]} and {parts[b]}",
                     "Swap them back.")
    for group, members in {**model.groups, "everywhere": tuple(parts)}.items():  # one variable, across a group
        yield from _group_changes(model, group, members)


@dataclass(frozen=True)
class InsideBracket:
    """``rest·(1 − q·f)^power``: the factor f of ``rest·(1 − q)^power·f`` written inside the bracket, as
    ``a / (1 - q * b)`` for ``a / (1 - q) * b`` (the parenthesis closed one factor too late)."""

    rest: Formula
    bracket: Factor  # the 1 − q
    pulled: Factor  # f

    def value(self, context: StepContext):
        inner = Factor(self.bracket.symbol, self.bracket.step).value(context) * self.pulled.value(context)
        return self.rest.value(context) * (1 - inner) ** self.bracket.power

    def __str__(self) -> str:
        inside = f"(1 − {Factor(self.bracket.symbol, self.bracket.step).base_text()}·{self.pulled.text()})"
        shown = str(self.rest) if self.rest.factors else ""
        return f"{shown}/{inside}" if self.bracket.power < 0 else f"{shown}·{inside}"


def _inside_bracket_changes(model: Model) -> Iterator[Change]:
    """A factor written inside a bracket 1 − q that it follows: (1 − ᾱ_t·β_t) for (1 − ᾱ_t)·β_t."""
    for name, formula in model.parts.items():
        for k, bracket in enumerate(formula.factors):
            if not bracket.one_minus or abs(bracket.power) != 1 or bracket.symbol in ("α", "β", LAST):
                continue
            for j, pulled in enumerate(formula.factors):
                if j == k or pulled.symbol == LAST or pulled.power < 0:
                    continue
                rest = replace(formula, factors=tuple(f for i, f in enumerate(formula.factors) if i not in (j, k)))
                wrong = InsideBracket(rest, bracket, pulled)
                yield Change({**model.parts, name: wrong},
                             f"{model.labels[name]} is {wrong} instead of {formula}: the parenthesis around "
                             f"{bracket.base_text()} closes after {pulled.text()}, so {pulled.text()} is inside it",
                             f"Operator precedence / brackets: close the parenthesis right after "
                             f"{bracket.base_text().strip('()')}, then multiply by {pulled.text()}.",
                             model.group_of(name))


def _power_precedence_readings(factor: Factor) -> list[tuple[float, str]]:
    """How ``q ** 1/2`` reads where √q belongs, as (scale of the coefficient, the code in words): ** binds tighter
    than /, so ``q ** 1/2`` is q/2 and ``q ** -1/2`` is q⁻¹/2 (both halve), while ``x / q ** 1/2`` in a part the
    equation divides by (x̂_0's √ᾱ_t) divides by q and then by 2 — that part doubles."""
    q = factor.base_text()
    if factor.power < 0:
        return [(0.5, f"`{q} ** -1/2` (or `/ {q} ** 1/2`) is {q}⁻¹/2")]
    return [(0.5, f"`{q} ** 1/2` is {q}/2"), (2.0, f"`/ {q} ** 1/2` divides by {q} and then by 2")]


def _power_precedence_changes(model: Model) -> Iterator[Change]:
    """A square root written ``q ** 1/2`` (see :func:`_power_precedence_readings`): the factor without its root,
    and the coefficient halved (or, as a divisor, doubled)."""
    for name, formula in model.parts.items():
        for i, factor in enumerate(formula.factors):
            if abs(factor.power) != 0.5 or factor.symbol == LAST or factor.inner != 1:
                continue
            unrooted = replace(factor, power=2 * factor.power)
            for scale, code in _power_precedence_readings(factor):
                wrong = replace(formula, factors=formula.factors[:i] + (unrooted,) + formula.factors[i + 1:],
                                sign=formula.sign * scale)
                yield Change({**model.parts, name: wrong},
                             f"{model.labels[name]} is {scale:g} × {replace(wrong, sign=formula.sign)} instead of "
                             f"{formula}: {code}, not {factor.text()}",
                             "Operator precedence: ** binds tighter than /, so `q ** 1/2` is (q ** 1)/2. Write "
                             "q ** 0.5, or .sqrt().", model.group_of(name))


def _every_root_written_as_power_half(model: Model, members: tuple[str, ...]) -> Iterator[tuple[dict, str]]:
    """Every square root of ``members`` written ``q ** 1/2``, each read either way it can be (at most three roots:
    2³ readings): (the rewritten parts, what the code computes)."""
    rooted = [(name, f) for name in members for f in model.parts[name].factors if abs(f.power) == 0.5
              and f.symbol != LAST and f.inner == 1]
    if len({name for name, _ in rooted}) < 2 or len(rooted) > 3:
        return
    for readings in itertools.product(*(_power_precedence_readings(f) for _, f in rooted)):
        parts = {}
        for name in members:
            formula = model.parts[name]
            chosen = [(f, scale) for (n, f), (scale, _) in zip(rooted, readings) if n == name]
            parts[name] = replace(formula, factors=tuple(replace(f, power=2 * f.power) if any(f == c for c, _ in chosen)
                                                         else f for f in formula.factors),
                                  sign=formula.sign * math.prod(scale for _, scale in chosen))
        yield parts, ", ".join(dict.fromkeys(code for _, code in readings))


def _moved_root_changes(model: Model) -> Iterator[Change]:
    """A square root on the wrong factor of a product: √ᾱ_{t−1}·β_t written ᾱ_{t−1}·√β_t (the .sqrt() put on the
    neighbouring factor)."""
    for name, formula in model.parts.items():
        for i, rooted in enumerate(formula.factors):
            for j, plain in enumerate(formula.factors):
                if i == j or abs(rooted.power) != 0.5 or abs(plain.power) != 1 or LAST in (rooted.symbol,
                                                                                          plain.symbol):
                    continue
                factors = list(formula.factors)
                factors[i] = replace(rooted, power=2 * rooted.power)
                factors[j] = replace(plain, power=plain.power / 2)
                wrong = replace(formula, factors=tuple(factors))
                yield Change({**model.parts, name: wrong},
                             f"{model.labels[name]} is {wrong} instead of {formula}: the square root is on "
                             f"{plain.base_text()} where it belongs on {rooted.base_text()}",
                             f"Move the .sqrt() to {rooted.base_text()}: {formula}.", model.group_of(name))


def _divided_form(model: Model, name: str, factor: Factor) -> str:
    """x̂_0 divides ε's coefficient by √ᾱ_t, so 1 − √ᾱ_t there is the code (1/ᾱ_t).sqrt() − 1: say it in that form
    too, the − 1 outside the root of √(1/ᾱ_t − 1)."""
    if factor.symbol != "ᾱ" or "x̂_0" not in model.labels.get(name, ""):
        return ""
    q = Factor("ᾱ", factor.step).base_text()
    return (f" Divided by √{q} as x̂_0 is, that is √(1/{q}) − 1 where eq. (5.12) has √(1 − {q})/√{q} = "
            f"√(1/{q} − 1): the − 1 goes inside the square root, ((1 / alpha_bar_t) - 1).sqrt().")


def _unbracketed_changes(model: Model) -> Iterator[Change]:
    """Each factor 1 − q of a part written without its parentheses (``a * 1 - q * b``: a − q·b), for every way of
    splitting the other factors into those written before it and those after (operator precedence)."""
    for name, formula in model.parts.items():
        for k, factor in enumerate(formula.factors):
            if not factor.one_minus or abs(factor.power) != 1 or factor.symbol == LAST or factor.inner != 1:
                continue
            others = formula.factors[:k] + formula.factors[k + 1:]
            inner = Factor(factor.symbol, factor.step)  # q itself, written after the 1 −
            if factor.symbol in ("α", "β"):  # 1 − α_t is written β_t: keep the code's 1 - alpha_t
                continue
            for size in range(len(others) + 1):
                for before in itertools.combinations(others, size):
                    after = tuple(f for f in others if f not in before)
                    if factor.power < 0 and not before:
                        continue  # a divisor needs something written before it
                    wrong = Unbracketed(Formula(before), Formula((inner, *after)), factor)
                    yield Change({**model.parts, name: wrong},
                                 f"{model.labels[name]} is {wrong} instead of {formula}: the parentheses around "
                                 f"{factor.base_text()} are missing",
                                 f"Operator precedence: `a * 1 - q * b` is a − (q·b), not a·(1 − q)·b. Keep "
                                 f"{factor.base_text()} in its parentheses in your code.", model.group_of(name))


def _exchanged_factor_changes(model: Model) -> Iterator[Change]:
    """A factor of one part and a factor of another in each other's places (the numerators of eq. 5.6's two
    coefficients exchanged): both parts wrong, each holding the other's factor."""
    names = list(model.parts)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            first, second = model.parts[a], model.parts[b]
            for fa in first.factors:
                for fb in second.factors:
                    if LAST in (fa.symbol, fb.symbol) or fa in second.factors or fb in first.factors \
                            or (fa.power > 0) != (fb.power > 0):
                        continue
                    new_a = replace(first, factors=tuple(fb if f == fa else f for f in first.factors))
                    new_b = replace(second, factors=tuple(fa if f == fb else f for f in second.factors))
                    yield Change({**model.parts, a: new_a, b: new_b},
                                 f"{fa.text()} and {fb.text()} are exchanged between {model.labels[a]} and "
                                 f"{model.labels[b]}: yours are {new_a} and {new_b}, where {model.equation} has "
                                 f"{first} and {second}",
                                 f"Each factor belongs to its own coefficient: {fa.text()} goes with {model.labels[a]}"
                                 f", {fb.text()} with {model.labels[b]}. Swap them back.")


def _step_look_alikes(step: Step, bases: tuple[str, ...] = ("t",)) -> list[Step]:
    """Steps a learner reads in place of ``step``: one later or earlier, wrapped around (alpha_bars[t - 2] at t = 1),
    and, in DDIM, the other of t and t'."""
    if step.base == "t":
        found = [Step("t", step.offset + 1), Step("t", step.offset - 1), Step("t", step.offset - 1, wrapped=True)]
        if step.offset < 0:  # ᾱ_{t−1} read unpadded, alpha_bars[t - 2], wraps at t = 1
            found.insert(2, Step("t", step.offset, wrapped=True))
        return found + ([Step("t'", step.offset)] if "t'" in bases else [])
    return [Step("t'", step.offset + 1), Step("t'", step.offset, wrapped=True), Step("t"), Step("t", -1)]


def _group_changes(model: Model, group: str, members: tuple[str, ...]) -> Iterator[Change]:
    """One change applied throughout ``members``: a variable (a quantity at a step, as a learner's ``alpha_bar_prev``)
    read wrongly wherever it appears, a symbol or a step replaced throughout, every square root dropped."""
    where = "" if group == "everywhere" else f"in {group}, "
    everywhere = " everywhere" if group == "everywhere" else ""
    label = None if group == "everywhere" else group
    factors = [f for name in members for f in model.parts[name].factors if f.symbol != LAST]
    variables = list(dict.fromkeys((f.symbol, f.step) for f in factors))
    bases = list(dict.fromkeys(f.step.base for f in factors))
    model_bases = tuple(dict.fromkeys(f.step.base for formula in model.parts.values() for f in formula.factors))

    def rewrite(change_factor: Callable[[Factor], Factor]) -> dict:
        return {**model.parts, **{name: replace(model.parts[name], factors=tuple(
            f if f.symbol == LAST else change_factor(f) for f in model.parts[name].factors)) for name in members}}

    def shown(symbol: str, step: Step) -> str:
        return Factor(symbol, step).base_text()
    for symbol, step in variables:  # one variable, wherever it appears
        for new_symbol in {"ᾱ": ["α"], "α": ["ᾱ"], "β": ["β̃"], "β̃": ["β"]}.get(symbol, []):
            yield Change(rewrite(lambda f: replace(f, symbol=new_symbol) if (f.symbol, f.step) == (symbol, step)
                                 else f),
                         f"{where}you used {shown(new_symbol, step)} in place of {shown(symbol, step)}{everywhere}",
                         _why_symbol((symbol, False), (new_symbol, False)), label)
        for new_step in _step_look_alikes(step, model_bases):  # x̂_0 read at t' although only t is in it
            yield Change(rewrite(lambda f: replace(f, step=new_step) if (f.symbol, f.step) == (symbol, step) else f),
                         f"{where}you used {shown(symbol, new_step)} in place of {shown(symbol, step)}{everywhere}"
                         f"{_only_as_denominator(factors, symbol, step, new_step)}", _why_step(step, new_step), label)
    for i, (symbol, step) in enumerate(variables):  # two variables of one symbol in each other's places
        for other_symbol, other_step in variables[i + 1:]:
            if other_symbol != symbol or {step.base, other_step.base} == {"t", "t'"}:
                continue  # t and t' swapped is tried below, for every symbol at once

            def exchange(f: Factor, a: Step = step, b: Step = other_step, s: str = symbol) -> Factor:
                return replace(f, step=b) if (f.symbol, f.step) == (s, a) else \
                    replace(f, step=a) if (f.symbol, f.step) == (s, b) else f
            yield Change(rewrite(exchange), f"{where}{shown(symbol, step)} and {shown(symbol, other_step)} are swapped"
                         f"{everywhere}: you used each where the other goes",
                         "Two variables in each other's places: check the order in which you assign them (as in "
                         "alpha_bar_t, alpha_bar_prev = alpha_bars[t], alpha_bars[t - 1]).", label)
    # one variable's square root lost (or doubled) wherever it appears: q itself, or 1 − q (a shared denominator)
    for symbol, step, one_minus in dict.fromkeys((f.symbol, f.step, f.one_minus) for f in factors):
        for scale, words in ((2.0, "without its square root"), (0.5, "with a square root too many")):
            powered = [f for f in factors if (f.symbol, f.step, f.one_minus) == (symbol, step, one_minus)
                       and abs(f.power) == (0.5 if scale == 2.0 else 1.0) and f.inner == 1]
            if powered and (not one_minus or len(powered) > 1):  # one factor alone is a change of its own part
                yield Change(rewrite(lambda f: replace(f, power=f.power * scale) if f in powered else f),
                             f"{where}you used {powered[0].base_text()} {words}{everywhere} "
                             f"({replace(powered[0], power=powered[0].power * scale).text()} in place of "
                             f"{powered[0].text()})",
                             _why_power(powered[0].power, powered[0].power * scale, powered[0]), label)
    for old, new in (("ᾱ", "α"), ("α", "ᾱ")):  # one symbol at every step
        if any(f.symbol == old for f in factors):
            yield Change(rewrite(lambda f: replace(f, symbol=new) if f.symbol == old else f),
                         f"{where}you used {new} in place of {old}{everywhere}",
                         _why_symbol((old, False), (new, False)), label)
    for shifted in [[base] for base in bases] + ([bases] if len(bases) > 1 else []):  # every step one later
        for offset in (1, -1):
            steps = " and ".join(f"{b}{'+1' if offset > 0 else '−1'} in place of {b}" for b in shifted)
            yield Change(rewrite(lambda f: replace(f, step=Step(f.step.base, f.step.offset + offset))
                                 if f.step.base in shifted else f),
                         f"{where}you read every quantity one step {'later' if offset > 0 else 'earlier'} ({steps})",
                         _why_step(Step(shifted[0]), Step(shifted[0], offset)), label)
    if any(f.symbol in ("α", "β") for f in factors):  # betas and alphas indexed alike, apart from alpha_bars
        for offset in (1, -1):
            yield Change(rewrite(lambda f: replace(f, step=Step(f.step.base, f.step.offset + offset))
                                 if f.symbol in ("α", "β") else f),
                         f"{where}you read β and α one step {'later' if offset > 0 else 'earlier'} (β_{{t{offset:+d}}} "
                         f"and α_{{t{offset:+d}}} in place of β_t and α_t){everywhere}",
                         "betas and alphas hold step t at index t − 1 (betas[t - 1] is β_t); only a padded "
                         "alpha_bars, with ᾱ_0 = 1 in front, is indexed by t itself.", label)
    for halved, codes in _every_root_written_as_power_half(model, members):  # every √q written `q ** 1/2`
        yield Change({**model.parts, **halved},
                     f"{where}every square root is written `q ** 1/2`{everywhere}: {codes}, not its square root",
                     "Operator precedence: ** binds tighter than /, so `q ** 1/2` is (q ** 1)/2. Write q ** 0.5, or "
                     ".sqrt().", label)
    if sum(f.symbol == "ᾱ" for f in factors) > 1:  # the ᾱ table alone misaligned: padded at the wrong end
        yield from _shifted_alpha_bars(rewrite, factors, where, everywhere, label)
    yield Change(rewrite(lambda f: replace(f, power=2 * f.power) if abs(f.power) == 0.5 else f),
                 f"{where}the square roots are missing{everywhere}",
                 "Variance vs standard deviation: the coefficients are square roots, √ᾱ_t and √(1 − ᾱ_t) (.sqrt()).",
                 label)
    if "t'" in bases:
        yield Change(rewrite(lambda f: replace(f, step=Step("t'" if f.step.base == "t" else "t", f.step.offset))),
                     f"{where}t and t' are swapped{everywhere}", _why_step(Step("t"), Step("t'")), label)
        yield Change(rewrite(lambda f: replace(f, step=Step("t", f.step.offset - 1)) if f.step.base == "t'" else f),
                     f"{where}you used step t − 1 in place of t' = t_prev{everywhere}",
                     "DDIM jumps from t to any earlier step t' (t_prev), not only to t − 1: read ᾱ_{t'} at t_prev.",
                     label)


def _only_as_denominator(factors: list[Factor], symbol: str, step: Step, new_step: Step) -> str:
    """", that is the denominator 1 − ᾱ_{t−1} in place of 1 − ᾱ_t" when the variable enters only as the divisor
    (1 − q): the learner's code has that denominator, not a variable of its own."""
    found = [f for f in factors if (f.symbol, f.step) == (symbol, step)]
    if not found or not all(f.one_minus and f.power < 0 for f in found):
        return ""
    old, new = found[0].base_text(), replace(found[0], step=new_step).base_text()
    return (f" — that is, you divided by the denominator {new.strip('()')} in place of {old.strip('()')} "
            f"({len(found)} time{'s' if len(found) > 1 else ''})")


def _shifted_alpha_bars(rewrite: Callable, factors: list[Factor], where: str, everywhere: str,
                        label: str | None) -> Iterator[Change]:
    """Every ᾱ read one step off while β and α are read right: the ᾱ table (padded with ᾱ_0 = 1) is misaligned —
    the 1 appended at the end, so index t holds ᾱ_{t+1}, or the padded table indexed as the unpadded one."""
    read = list(dict.fromkeys(f.step for f in factors if f.symbol == "ᾱ"))
    for offset in (1, -1):
        pairs = ", ".join(f"{Factor('ᾱ', Step(s.base, s.offset + offset)).base_text()} in place of "
                          f"{Factor('ᾱ', s).base_text()}" for s in read)
        if offset > 0:
            why = ("Index t of your ᾱ table holds ᾱ_{t+1}: the 1 was padded at the end, F.pad(alpha_bars, (0, 1), "
                   "value=1.0), where it belongs in front, F.pad(schedule.alpha_bars, (1, 0), value=1.0), so that "
                   "index t is ᾱ_t and index 0 is ᾱ_0 = 1.")
        else:
            why = ("Index t − 1 of your ᾱ table holds ᾱ_{t−1}: a table with ᾱ_0 = 1 padded in front is indexed by t "
                   "itself (padded[t] is ᾱ_t); only the unpadded schedule.alpha_bars is read at t − 1.")
        yield Change(rewrite(lambda f, k=offset: replace(f, step=Step(f.step.base, f.step.offset + k))
                             if f.symbol == "ᾱ" else f),
                     f"{where}you read every ᾱ one step {'later' if offset > 0 else 'earlier'} ({pairs}){everywhere}, "
                     f"while β_t and α_t are read right", why, label)


def single_quantities(context: StepContext) -> dict[str, Formula]:
    """Every single schedule quantity at the batch's steps, in a few transforms: √β_t, 1/√α_t, 1 − ᾱ_{t−1}, ..."""
    bases = ["t"] + (["t'"] if "t'" in context.steps else [])
    found = {}
    for base in bases:
        for offset in (0, -1, 1):
            for symbol in ("β", "ᾱ", "α", "β̃"):
                for one_minus in (False, True):
                    if one_minus and symbol in ("α", "β", "β̃"):
                        continue  # 1 − α is β, 1 − β is α
                    for power in (1.0, 0.5, -0.5, -1.0, 2.0):
                        for sign in (1.0, -1.0):
                            formula = Formula((Factor(symbol, Step(base, offset), one_minus, power),), sign)
                            found[str(formula)] = formula
    return found


def changed_parts(model: Model, change: Change) -> frozenset[str]:
    """The parts of ``model`` that ``change`` rewrites: where in the learner's code the mistake sits."""
    return frozenset(name for name, formula in model.parts.items() if change.parts[name] != formula)


def matching_changes(model: Model, context: StepContext, got: dict, *, limit: int = 3) -> list[Change]:
    """The changes to ``model`` that reproduce ``got`` at every image: the first one, then any that rewrites other
    parts of the equation (a mistake somewhere else that gives the same numbers — x̂_0 formed with ᾱ_{t'}, or the
    new sample with ᾱ_t, both return x_t — so that the message names the candidates, not one at random). Changes to
    the same parts are the same mistake in other words, and are left out."""
    found: list[Change] = []
    for change in changes(model):
        predicted = model.evaluate(context, change.parts)
        if not all(close(got[key], predicted[key]) for key in predicted):
            continue
        where = changed_parts(model, change)
        if all(where.isdisjoint(changed_parts(model, kept)) for kept in found):
            found.append(change)
            if len(found) == limit:
                break
    return found
