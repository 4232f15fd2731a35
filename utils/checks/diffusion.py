"""Checks for Chapter 05, Diffusion from Scratch.

Every check diagnoses from what the right answer must satisfy, before it compares numbers:

- **Recovered coefficients.** ``q_sample``, the posterior, and the DDPM and DDIM steps are linear in their image
  inputs, one set of coefficients per image (each image has its own t). The check solves for those coefficients by
  least squares (``x_t ≈ a·x_0 + b·ε`` per image) and explains a wrong one in the chapter's symbols: it tries the
  small changes a learner makes to the equation — ᾱ for α, t + 1 for t, a missing square root, a wrapped-around
  index, a flipped sign, two terms swapped — and names the one that reproduces the learner's coefficients at every
  t of the batch (:class:`Formula`, :func:`explain_coefficients`). When no such change fits, the one quantity the
  learner's code read wrongly is solved for image by image (:func:`recover_variable`): ᾱ_{t−1} at t = 1 read as
  ᾱ_1 or 0 or alpha_bars[-1], ᾱ_{t'} at t' = 0, a ᾱ_t built as 1 − Σβ or α_t^t, and named among the schedule's
  entries at any step. A step's coefficients are also read through the x̂_0 they imply (eq. 5.12), and the
  posterior's through eq. (5.11), the same mean written with the noise.
- **Recovered constants.** The cosine schedule's argument is read in closed form from the learner's β's (the
  recurrence of a sinusoid) and named as a small edit of (t/T + s)/(1 + s)·π/2; the linear schedule's scale; the
  embedding's frequencies (folded ones included) and the step t' each row embeds; the clip range of x̂_0 per image
  and which tensor was clipped; NaNs read by the sign of the inputs (√(ᾱ_t·x_0), the square root of the whole sum).
- **Properties.** Coefficients are one number per image (not per pixel column); the output does not change from
  call to call, and the inputs are not modified; the schedules are increasing / linear / clipped where they must
  be, and ∏(1 − β) gives back the cosine's ᾱ; the time embedding's columns are sines and cosines whose recovered
  frequencies fall geometrically from 1 to about 1/10000.
- **Cases that separate look-alikes:** t = 1 and t = T, B = W (a (B,) tensor then broadcasts silently along the
  width), B ≠ W, batch size 1, float64, clipping on and off, DDIM jumps of several steps and to t' = 0,
  non-default schedule arguments.

Conventions the checks assume (the chapter states them too):
- timesteps t are integers in 1..T as in the papers' math; a schedule tensor holds the value for step t at index
  t − 1 (``betas[t - 1]`` is β_t), and ᾱ_0 = 1 (no noise at all);
- ``t`` is a (B,) int64 tensor: one timestep per example, so per-example coefficients have shape (B,) and must be
  reshaped to (B, 1, 1, 1) to broadcast over images (B, C, H, W);
- images are scaled to [−1, 1]; x̂_0 is clipped to that range when ``clip=True``.
"""
from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field, replace
from typing import Callable, Iterator

import torch
import torch.nn.functional as F

from utils.checks.core import Case, CheckFailure, Exercise, LearnerError, Mistake, fit_linear, name_value, one_thread

IMAGE_AXES = ("B", "C", "H", "W")


@dataclass
class Schedule:
    """β_t, α_t = 1 − β_t and ᾱ_t = ∏_{s≤t} α_s, each a (T,) tensor holding step t at index t − 1."""

    betas: torch.Tensor
    alphas: torch.Tensor
    alpha_bars: torch.Tensor

    @classmethod
    def from_betas(cls, betas: torch.Tensor) -> "Schedule":
        alphas = 1 - betas
        return cls(betas, alphas, torch.cumprod(alphas, dim=0))

    @property
    def T(self) -> int:
        return len(self.betas)

    def to(self, *args) -> "Schedule":  # a dtype and/or a device, as for a tensor
        return Schedule(self.betas.to(*args), self.alphas.to(*args), self.alpha_bars.to(*args))


def _column(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(B,) → (B, 1, 1, 1) (as many trailing 1s as ``like`` has axes after the batch)."""
    return values.reshape(-1, *([1] * (like.dim() - 1)))


def _with_zero(values: torch.Tensor) -> torch.Tensor:
    """(T,) → (T + 1,) with a 1 in front: index t gives ᾱ_t for t in 0..T, with ᾱ_0 = 1."""
    return F.pad(values, (1, 0), value=1.0)


def _close(got: torch.Tensor, want: torch.Tensor, rtol: float = 1e-4, atol: float = 1e-6) -> bool:
    """Every entry of ``got`` within tolerance of ``want`` (a NaN in ``want`` — a step that does not exist — never
    matches)."""
    return bool(torch.isfinite(want).all() and ((got - want).abs() <= atol + rtol * want.abs()).all())


# =============================================================================================================
# Schedule quantities and the formulas built from them
# =============================================================================================================
# A coefficient of the chapter's equations is a product of powers of schedule quantities read at some step:
# √ᾱ_{t−1}·β_t/(1 − ᾱ_t). Writing each as a Formula lets a check evaluate it for every image of a batch, and
# evaluate the small changes a learner makes to it (ᾱ for α, t + 1 for t, a lost square root, ...) to find the
# one that reproduces the coefficients recovered from the learner's output.

LAST = "[t > 1]"  # the indicator of Algorithm 2: no noise at the final step
FREE = "?"  # a quantity whose value per image is unknown: solved for from the learner's output (recover_variable)


@dataclass(frozen=True)
class Step:
    """The step a schedule quantity is read at: ``t`` or ``t'`` (DDIM's t_prev), plus an offset."""

    base: str = "t"
    offset: int = 0
    wrapped: bool = False  # read as table[k − 1] from the (T,) tensor, so step k = 0 wraps around to step T

    def __str__(self) -> str:
        text = self.base + {0: "", 1: "+1", -1: "−1", -2: "−2"}.get(self.offset, f"{self.offset:+d}")
        return text if text == "t" else "{" + text + "}"

    def indices(self, steps: dict[str, torch.Tensor]) -> torch.Tensor:
        return steps[self.base] + self.offset


@dataclass(frozen=True)
class Factor:
    """One factor of a coefficient: ``(1 − ᾱ_{t−1})^power`` is Factor("ᾱ", Step("t", −1), one_minus=True)."""

    symbol: str  # "α", "ᾱ", "β", "β̃" or LAST
    step: Step = Step()
    one_minus: bool = False
    power: float = 1.0
    inner: float = 1.0  # (1 − q^inner)^power: ½ is the look-alike 1 − √ᾱ_t of √(1 − ᾱ_t)

    def value(self, context: "StepContext") -> torch.Tensor:
        if self.symbol == LAST:  # one_minus: the indicator the wrong way round, [t = 1]
            indicator = (context.steps["t"] > 1).double()
            return 1 - indicator if self.one_minus else indicator
        quantity = context.free if self.symbol == FREE else context.quantity(self.symbol, self.step)
        if self.inner != 1:
            quantity = _power(quantity, self.inner)
        return _power(1 - quantity if self.one_minus else quantity, self.power)

    def base_text(self) -> str:
        """The quantity without its power: "ᾱ_{t−1}", "(1 − ᾱ_t)"; 1 − α_t is written β_t."""
        if self.symbol == LAST:
            return "[t = 1]" if self.one_minus else LAST
        if self.one_minus and self.symbol in ("α", "β"):
            return f"{'β' if self.symbol == 'α' else 'α'}_{self.step}"
        name = f"{self.symbol}_{self.step}"
        if self.inner == 0.5:
            name = "√" + name
        if self.step.wrapped:  # written as the learner's code reads it
            table = {"ᾱ": "alpha_bars", "α": "alphas", "β": "betas", "β̃": "posterior_variances"}[self.symbol]
            index = {"t": "t", "t'": "t_prev"}[self.step.base]
            offset = self.step.offset - 1
            name = f"{table}[{index}{f' - {-offset}' if offset < 0 else f' + {offset}' if offset else ''}]"
        return f"(1 − {name})" if self.one_minus else name

    def text(self) -> str:
        """With the magnitude of its power (the sign of the power decides numerator or denominator)."""
        inner, power = self.base_text(), abs(self.power)
        if power == 1:
            return inner
        if power == 0.5:
            return "√" + inner
        if power == 2:
            return inner + "²"
        return f"{inner}^{power:g}"


def _power(values: torch.Tensor, power: float) -> torch.Tensor:
    """values ** power, with the common powers spelled out (a float pow is several times slower, and the searches
    below evaluate formulas on thousands of candidate values)."""
    if power == 1:
        return values
    if power == 0.5:
        return values.sqrt()
    if power == -1:
        return values.reciprocal()
    if power == -0.5:
        return values.rsqrt()
    if power == 2:
        return values * values
    return values ** power


@dataclass(frozen=True)
class Formula:
    """sign · (∏ factors)^outer, or 0 for a term left out."""

    factors: tuple[Factor, ...]
    sign: float = 1.0
    outer: float = 1.0  # ½: the square root of the whole product (a standard deviation for a variance)
    zero: bool = False

    def simplified(self) -> "Formula":
        """Equal factors merged (their powers added) and cancelled ones dropped: (1 − ᾱ_t)·β_t/(1 − ᾱ_t) → β_t."""
        powers: dict[tuple, float] = {}
        for f in self.factors:
            symbol, one_minus = {("α", True): ("β", False), ("β", True): ("α", False)}.get(
                (f.symbol, f.one_minus), (f.symbol, f.one_minus))
            key = (symbol, f.step, one_minus, f.inner)
            powers[key] = powers.get(key, 0.0) + f.power
        return replace(self, factors=tuple(Factor(symbol, step, one_minus, power, inner) for (symbol, step, one_minus,
                                                                                             inner), power
                                           in powers.items() if abs(power) > 1e-12))

    def value(self, context: "StepContext") -> torch.Tensor:
        product = torch.ones(context.batch, dtype=torch.float64)
        if self.zero:
            return 0 * product
        for factor in self.factors:
            product = product * factor.value(context)
        return self.sign * product ** self.outer

    def __str__(self) -> str:
        if self.zero:
            return "0"
        numerator = [f.text() for f in self.factors if f.power > 0]
        denominator = [f.text() for f in self.factors if f.power < 0]
        text = "·".join(numerator) or "1"
        if denominator:
            text += "/" + (denominator[0] if len(denominator) == 1 else "(" + "·".join(denominator) + ")")
        if self.outer == 0.5:
            text = f"√({text})"
        elif self.outer == 2:
            text = f"({text})²"
        return ("−" if self.sign < 0 else "") + text


def _f(symbol: str, step: str = "t", offset: int = 0, *, one_minus: bool = False, power: float = 1.0) -> Factor:
    return Factor(symbol, Step(step, offset), one_minus, power)


@dataclass
class StepContext:
    """The schedule (float64) and the steps of one batch: ``steps["t"]`` and, for DDIM, ``steps["t'"]``, (B,)."""

    schedule: Schedule
    steps: dict[str, torch.Tensor]
    free: torch.Tensor | None = None  # (B,): the value of a FREE factor at each image

    def __post_init__(self):
        self.schedule = self.schedule.to(torch.float64)
        alpha_bars = _with_zero(self.schedule.alpha_bars)  # (T + 1,), ᾱ_0 = 1
        self.tables = {"α": self.schedule.alphas, "β": self.schedule.betas, "ᾱ": self.schedule.alpha_bars,
                       "β̃": (1 - alpha_bars[:-1]) / (1 - alpha_bars[1:]) * self.schedule.betas}  # (T,) each
        self._read: dict[tuple, torch.Tensor] = {}  # (symbol, step) → values: the change search rereads them

    @property
    def batch(self) -> int:
        return len(self.steps["t"])

    def quantity(self, symbol: str, step: Step) -> torch.Tensor:
        """(B,) float64: the quantity at each image's step; NaN where that step does not exist (the learner's
        code would have raised an IndexError there)."""
        if (symbol, step) in self._read:
            return self._read[symbol, step]
        k = step.indices(self.steps)
        table, T = self.tables[symbol], self.schedule.T
        values = torch.full(k.shape, math.nan, dtype=torch.float64)
        inside = (k >= 1) & (k <= T)
        values[inside] = table[k[inside] - 1]
        if step.wrapped or symbol != "ᾱ":  # table[k - 1] with a negative index counts from the end; only ᾱ has
            wraps = (k <= 0) & (k - 1 >= -T)  # a step 0 (ᾱ_0 = 1), so code reading α_0 or β_0 wraps around
            values[wraps] = table[k[wraps] - 1]
        else:
            values[k == 0] = 1.0
        self._read[symbol, step] = values
        return values

    def describe(self, index: int) -> str:
        """"t = 10" (DDIM: "t = 10, t' = 5") for image ``index``."""
        return ", ".join(f"{name} = {int(value[index])}" for name, value in self.steps.items())


# ---------------------------------------------------------------------------------------------------------------
# Models: how an exercise's output coefficients are built from its formulas
# ---------------------------------------------------------------------------------------------------------------
def _identity(parts: dict) -> dict:
    return parts


@dataclass
class Model:
    """An exercise's coefficients as a function of named formulas (its "parts").

    ``combine`` maps the parts' values (each (B,)) to the coefficient of each input the output is linear in; for
    ``q_sample`` it is the identity, for the DDPM step it composes x̂_0 (eq. 5.12) with the posterior mean (5.6).
    ``groups`` are parts a learner computes with shared variables (x̂_0's two coefficients both read ᾱ_t), so that
    one change to that variable is tried across the group. ``advice`` adds a sentence to a change found in a group.
    """

    equation: str
    parts: dict[str, Formula]
    labels: dict[str, str]  # part → words: "the coefficient of ε"
    combine: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]] = _identity
    groups: dict[str, tuple[str, ...]] = field(default_factory=dict)
    swaps: tuple[tuple[str, str], ...] = ()
    advice: dict[str, str] = field(default_factory=dict)  # group → extra sentence
    shown: dict[str, str] = field(default_factory=dict)  # output → its closed form, when combine composes parts
    alternatives: tuple = ()  # other ways of writing the same equation (Algorithm 2's closed form), tried next
    # readings of the coefficients through an intermediate (the x̂_0 a step implies): (context, got) → message or None
    readings: tuple = ()

    def expected_text(self, output: str) -> str:
        if self.combine is _identity:
            return str(self.parts[output])
        return self.shown[output]

    def output_label(self, output: str, name: str) -> str:
        return self.labels[output] if self.combine is _identity else f"the coefficient of {name}"

    def evaluate(self, context: StepContext, parts: dict[str, Formula] | None = None) -> dict[str, torch.Tensor]:
        return self.combine({name: formula.value(context) for name, formula in (parts or self.parts).items()})

    def group_of(self, part: str) -> str | None:
        return next((group for group, members in self.groups.items() if part in members), None)


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
    return ("Off by one: t runs from 1 to T and step t sits at index t − 1 (schedule.alpha_bars[t - 1] is ᾱ_t; "
            "with a 1 padded in front, index t).")


def _why_power(old: float, new: float) -> str:
    if abs(new) > abs(old):
        return "Variance vs standard deviation: this factor is a square root (.sqrt())."
    if abs(new) < abs(old):
        return ("There is no square root on this factor." if abs(old) == 1 else
                "One square root too many on this factor (.sqrt() applied twice?).")
    return "This factor divides where you multiply (or the reverse)."


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
                              f"1 − {factor.symbol}, ({code}).sqrt().")
            for step in _step_look_alikes(factor.step, bases):
                new = replace(factor, step=step)
                yield changed(name, swap_in(new), detail(new), _why_step(factor.step, step))
            for power in (factor.power * 2, factor.power / 2, -factor.power):
                new = replace(factor, power=power)
                yield changed(name, swap_in(new), detail(new), _why_power(factor.power, power))
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
        yield changed(name, replace(formula, outer=0.5), " (the square root of it)",
                      "Variance vs standard deviation: no square root on the whole.")
        yield changed(name, replace(formula, outer=2.0), " (its square)",
                      "Variance vs standard deviation: this is already the square root.")
        yield Change({**parts, name: replace(formula, zero=True)},
                     f"{model.labels[name]} is 0: the term with {formula} is missing", "Add the missing term.",
                     model.group_of(name))
    for a, b in model.swaps:
        yield Change({**parts, a: parts[b], b: parts[a]},
                     f"{model.labels[a]} and {model.labels[b]} are swapped: {eq} has {parts[a]} and {parts[b]}",
                     "Swap them back.")
    for group, members in {**model.groups, "everywhere": tuple(parts)}.items():  # one variable, across a group
        yield from _group_changes(model, group, members)


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
        for new_step in _step_look_alikes(step, tuple(bases)):
            yield Change(rewrite(lambda f: replace(f, step=new_step) if (f.symbol, f.step) == (symbol, step) else f),
                         f"{where}you used {shown(symbol, new_step)} in place of {shown(symbol, step)}{everywhere}",
                         _why_step(step, new_step), label)
    for symbol, step in variables:  # one variable's square root lost (or doubled) wherever it appears
        for scale, words in ((2.0, "without its square root"), (0.5, "with a square root too many")):
            powered = [f for f in factors if (f.symbol, f.step) == (symbol, step) and not f.one_minus
                       and abs(f.power) == (0.5 if scale == 2.0 else 1.0)]
            if powered:
                yield Change(rewrite(lambda f: replace(f, power=f.power * scale) if f in powered else f),
                             f"{where}you used {shown(symbol, step)} {words}{everywhere} "
                             f"({replace(powered[0], power=powered[0].power * scale).text()} in place of "
                             f"{powered[0].text()})",
                             _why_power(powered[0].power, powered[0].power * scale), label)
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


def _single_quantities(context: StepContext) -> dict[str, Formula]:
    """Every single schedule quantity at the batch's steps, in a few transforms: √β_t, 1/√α_t, 1 − ᾱ_{t−1}, ..."""
    bases = ["t"] + (["t'"] if "t'" in context.steps else [])
    found = {}
    for base in bases:
        for offset in (0, -1, 1):
            for symbol in ("β", "ᾱ", "α", "β̃"):
                for one_minus in (False, True):
                    if one_minus and symbol in ("α", "β", "β̃"):
                        continue  # 1 − α is β, 1 − β is α
                    for power in (1.0, 0.5, -0.5, -1.0):
                        for sign in (1.0, -1.0):
                            formula = Formula((Factor(symbol, Step(base, offset), one_minus, power),), sign)
                            found[str(formula)] = formula
    return found


# ---------------------------------------------------------------------------------------------------------------
# Recovering one quantity the learner's code read wrongly, image by image
# ---------------------------------------------------------------------------------------------------------------
# When every coefficient of an image is right but for one quantity (ᾱ_{t−1} at t = 1, ᾱ_{t'} at t' = 0, a ᾱ_t built
# as a sum instead of a product), solving for that quantity per image recovers the value the learner's code used,
# which is then named among the schedule's entries at any step or the usual wrong constructions of ᾱ.
@dataclass
class Recovered:
    """The value a learner's code used for one quantity of the equation, per image."""

    symbol: str
    step: Step
    part: str | None  # the one part it was read in; None: everywhere it appears
    values: torch.Tensor  # (B,) the learner's value
    right: torch.Tensor  # (B,) the equation's value
    wrong: torch.Tensor  # (B,) bool: images whose coefficients differ from the equation's

    @property
    def text(self) -> str:
        return Factor(self.symbol, self.step).base_text()


def _freed(model: Model, variable: tuple[str, Step], part: str | None) -> dict[str, Formula]:
    """The model's parts with ``variable`` made FREE (everywhere, or in ``part`` only)."""
    def free(formula: Formula) -> Formula:
        return replace(formula, factors=tuple(replace(f, symbol=FREE) if (f.symbol, f.step) == variable else f
                                              for f in formula.factors))
    return {name: free(formula) if part in (None, name) else formula for name, formula in model.parts.items()}


def _solve_free(model: Model, parts: dict[str, Formula], context: StepContext, got: dict[str, torch.Tensor],
                grid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For each image, the value in ``grid`` ((K,) shared, or (K, B) per image) whose coefficients come closest to
    ``got``: (values (B,), relative errors (B,)). One vectorised evaluation over K·B lanes."""
    B = context.batch
    grid = grid[:, None].expand(-1, B) if grid.dim() == 1 else grid  # (K, B)
    K = grid.shape[0]
    wide = StepContext(context.schedule, {name: v.repeat(K) for name, v in context.steps.items()},
                       free=grid.reshape(-1))
    predicted = model.combine({name: formula.value(wide) for name, formula in parts.items()})
    errors = torch.stack([(predicted[k].view(K, B) - got[k][None]).abs() / (got[k].abs()[None] + 1e-3)
                          for k in got]).amax(dim=0)  # (K, B)
    errors = torch.nan_to_num(errors, nan=math.inf)
    best = errors.argmin(dim=0)  # (B,)
    return grid.gather(0, best[None])[0], errors.gather(0, best[None])[0]


def _schedule_values(context: StepContext) -> torch.Tensor:
    """Every entry of the schedule's tables, 0 and 1: the values a learner's index mistake can produce."""
    tables = [context.tables[s] for s in ("ᾱ", "α", "β", "β̃")]
    return torch.cat([torch.tensor([0.0, 1.0], dtype=torch.float64), *tables, *_constructions(context).values()])


def _constructions(context: StepContext) -> dict[str, torch.Tensor]:
    """Ways of building ᾱ_t from the β's that are not ∏(1 − β_s), each a (T,) table indexed like alpha_bars."""
    betas, alphas = context.schedule.betas, context.schedule.alphas
    steps = torch.arange(1, len(betas) + 1, dtype=torch.float64)
    return {"1 − Σ_{s≤t} β_s, a sum (betas.cumsum): the product ∏(1 − β_s) is 1 − Σβ_s only while the β's are tiny":
            1 - betas.cumsum(0),
            "∏_{s≤t} β_s, the product of the betas (cumprod of betas, not of alphas)": betas.cumprod(0),
            "α_t^t, t copies of the same α_t: the α's differ from step to step, so multiply α_1⋯α_t (cumprod)":
            alphas ** steps,
            "exp(−Σ_{s≤t} β_s), the small-β approximation of ∏(1 − β_s)": torch.exp(-betas.cumsum(0)),
            "∏_{s≥t} α_s, the product from the end (a flipped cumprod)": alphas.flip(0).cumprod(0).flip(0)}


def recover_variable(model: Model, context: StepContext, got: dict[str, torch.Tensor]) -> Recovered | None:
    """The one quantity of ``model`` (a symbol at a step, everywhere it appears or in one part) whose value, chosen
    per image, reproduces the learner's coefficients ``got`` at every image; None if there is none.

    The value is searched among the schedule's entries (index mistakes), then on [0, 1] (a wrongly built ᾱ). A value
    that is not a schedule entry is accepted only when each image has more coefficients than the one unknown."""
    expected = model.evaluate(context)
    differs = ~torch.stack([(got[k] - expected[k]).abs() <= 1e-6 + 1e-4 * expected[k].abs() for k in got]).all(0)
    finite = torch.stack([torch.isfinite(v) for v in got.values()]).all(0)
    if not differs.any() or not finite.all():
        return None
    named = _schedule_values(context)
    dense = torch.cat([torch.linspace(0, 1, 2001, dtype=torch.float64),
                       torch.logspace(-30, 0, 1501, dtype=torch.float64)]).unique()  # sorted: tiny ᾱ_T too
    variables = list(dict.fromkeys((f.symbol, f.step) for formula in model.parts.values() for f in formula.factors
                                   if f.symbol != LAST))
    tries = [(v, None) for v in variables] + [(v, part) for v in variables for part, formula in model.parts.items()
                                              if any((f.symbol, f.step) == v for f in formula.factors)
                                              and sum(any((g.symbol, g.step) == v for g in other.factors)
                                                      for other in model.parts.values()) > 1]
    for variable, part in tries:
        parts = _freed(model, variable, part)
        values, errors = _solve_free(model, parts, context, got, named)
        exact = errors < 1e-6
        if not exact.all() and _sensitive_outputs(model, parts, context) > 1:
            # over-determined (the unknown moves two coefficients): a value off the schedule's tables is evidence too
            values, errors = _solve_free(model, parts, context, got, dense)
            position = torch.searchsorted(dense, values)
            low = dense[(position - 1).clamp(min=0)]
            high = dense[(position + 1).clamp(max=len(dense) - 1)]
            fractions = torch.linspace(0, 1, 41, dtype=torch.float64)[:, None]  # (41, 1)
            for _ in range(7):  # bisect-like: each pass narrows each image's bracket 20-fold around its best value
                values, errors = _solve_free(model, parts, context, got, low + (high - low) * fractions)
                step = (high - low) / 40
                low, high = (values - step).clamp(min=0), values + step
        wide = StepContext(context.schedule, context.steps, free=values)
        predicted = model.combine({name: formula.value(wide) for name, formula in parts.items()})
        if all(_close(got[k], predicted[k]) for k in got):
            right = context.quantity(*variable)
            return Recovered(variable[0], variable[1], part, values, right, differs)
    return None


def _sensitive_outputs(model: Model, parts: dict[str, Formula], context: StepContext) -> int:
    """How many of the model's outputs change when the FREE quantity in ``parts`` changes (0.3 → 0.6)."""
    outputs = []
    for value in (0.3, 0.6):
        probe = StepContext(context.schedule, context.steps, free=torch.full((context.batch,), value,
                                                                             dtype=torch.float64))
        outputs.append(model.combine({name: formula.value(probe) for name, formula in parts.items()}))
    return sum(not torch.allclose(torch.as_tensor(outputs[0][k]), torch.as_tensor(outputs[1][k]), equal_nan=True)
               for k in outputs[0])


def _name_value_at(value: float, context: StepContext, symbol: str, step_index: int) -> str | None:
    """"ᾱ_1 (alpha_bars[0])", "0", "1 − Σ_{s≤t} β_s …" for a value a learner's code used, or None."""
    def near(a: float, b: float) -> bool:
        return abs(a - b) <= 1e-8 + 2e-4 * abs(b)
    if near(value, 0.0):
        return "0"
    code = {"ᾱ": "alpha_bars", "α": "alphas", "β": "betas", "β̃": "posterior variances"}
    order = [symbol] + [s for s in ("ᾱ", "α", "β", "β̃") if s != symbol]
    for name in order:
        table = context.tables[name]
        hits = [k for k in range(len(table)) if near(value, table[k].item())]
        if hits:
            k = min(hits, key=lambda k: abs(k + 1 - step_index))
            return f"{name}_{k + 1} ({code[name]}[{k}])"
    return "1" if near(value, 1.0) else None  # (a wrong construction of ᾱ is named once, by describe_recovered)


def describe_recovered(found: Recovered, context: StepContext, equation: str) -> str:
    """What the learner's code used for the recovered quantity, at the images where it matters, and what to do."""
    steps = found.step.indices(context.steps)  # (B,) the step each image's quantity belongs to
    wrong = found.wrong.nonzero().flatten().tolist()
    where = "" if found.part is None else f" in {found.part}"
    only = f", and only at {_steps_text(context, found.wrong)} (your other images are right)" \
        if _at_an_end(context, found.wrong) and not found.wrong.all() else ""
    if found.symbol == "ᾱ":  # one wrong construction of ᾱ at every image: say it once
        for words, table in _constructions(context).items():
            inside = (steps[wrong] >= 1) & (steps[wrong] <= context.schedule.T)
            if inside.all() and _close(found.values[wrong], table[steps[wrong] - 1], rtol=2e-4, atol=1e-7):
                b = max(wrong, key=lambda i: abs(found.values[i] - found.right[i]).item())
                k = int(steps[b])
                negative = (table < 0).nonzero().flatten()
                sign = (f" It is negative from t = {int(negative[0]) + 1} on, where its square root is NaN."
                        if len(negative) else "")
                return (f"everything in {equation} is right except {found.text}{where}{only}: your {found.text} is "
                        f"{words} (at {context.describe(b)}: {found.values[b].item():.4g}, where {found.symbol}_{k} = "
                        f"{found.right[b].item():.4g}).{sign} ᾱ_t = ∏_{{s≤t}}(1 − β_s) is schedule.alpha_bars[t - 1].")
    shown, names, seen = [], [], set()
    for b in wrong:
        k = int(steps[b])
        have, want = found.values[b].item(), found.right[b].item()
        name = _name_value_at(have, context, found.symbol, k)
        if (k, name or f"{have:.4g}") in seen or len(shown) == 3:
            continue  # the same step read the same way in several images: say it once
        seen.add((k, name or f"{have:.4g}"))
        names.append(name)
        right_name = f"{found.symbol}_{k}" if 0 <= k <= context.schedule.T else f"step {k}"
        shown.append(f"at {context.describe(b)} your {found.text} is {have:.4g}"
                     + (f" = {name}" if name and name != f"{have:.4g}" else "")
                     + f" where {equation} needs {right_name} = {want:.4g}")
    message = f"everything in {equation} is right except {found.text}{where}{only}: " + "; ".join(shown) + "."
    ks = {int(steps[b]) for b in wrong}
    if ks == {0} and found.symbol == "ᾱ":
        index = "t_prev" if found.step.base == "t'" else "t - 1"
        last = f"ᾱ_{context.schedule.T} (alpha_bars[{context.schedule.T - 1}])"
        if all(n == last for n in names):
            below = "t_prev - 1" if found.step.base == "t'" else "t - 2"
            message += f" That is alpha_bars[-1]: an index one below 0 ({below} = −1) wraps around to the last entry."
        message += (" ᾱ_0 = 1 (nothing removed from the signal yet) is not in schedule.alpha_bars, whose index 0 is "
                    "ᾱ_1: pad a 1 in front, F.pad(schedule.alpha_bars, (1, 0), value=1.0), and index that with "
                    f"{index}.")
    elif ks == {context.schedule.T}:
        message += (f" At t = T = {context.schedule.T}, step T sits at the table's last index, T − 1: an index that "
                    f"runs past the end and was clamped or wrapped reads another step.")
    elif all(n and "[" in n and n.startswith(found.symbol + "_") for n in names):
        message += " Step k sits at index k − 1 of each table (alpha_bars[k - 1] is ᾱ_k)."
    elif found.symbol == "ᾱ":
        message += " ᾱ_t = ∏_{s≤t}(1 − β_s) is schedule.alpha_bars[t - 1] (and ᾱ_0 = 1)."
    return message


def _at_an_end(context: StepContext, images: torch.Tensor) -> bool:
    """Whether every image in ``images`` (a (B,) mask, not empty) has t = 1, t = T or t' = 0, and not every image of
    the batch is one of them (otherwise a step look-alike explains it as well)."""
    t, T = context.steps["t"], context.schedule.T
    ends = (t == 1) | (t == T)
    if "t'" in context.steps:
        ends = ends | (context.steps["t'"] == 0)
    return bool(images.any() and ends[images].all())


def _steps_text(context: StepContext, mask: torch.Tensor) -> str:
    return " and ".join(f"{name} = {', '.join(map(str, sorted(set(v[mask].tolist()))))}"
                        for name, v in context.steps.items())


def matching_change(model: Model, context: StepContext, got: dict[str, torch.Tensor]) -> Change | None:
    """The first small change to ``model`` (see :func:`changes`) that reproduces ``got`` at every image."""
    for change in changes(model):
        predicted = model.evaluate(context, change.parts)
        if all(_close(got[key], predicted[key]) for key in predicted):
            return change
    return None


def explain_coefficients(model: Model, context: StepContext, got: dict[str, torch.Tensor], *, output: str,
                         names: dict[str, str]) -> str | None:
    """Why the coefficients ``got`` (each (B,), recovered from the learner's output) differ from ``model``'s.

    Returns None when they agree. Otherwise the message shows the learner's combination and the equation's at the
    image where they differ most, then names the first small change to the model (see :func:`changes`) that
    reproduces the learner's coefficients at every image of the batch; failing that, a coefficient equal to a
    single schedule quantity; failing that, which coefficients are off and the named values they have.
    """
    expected = model.evaluate(context)
    if all(_close(got[key], expected[key]) for key in expected):
        return None
    errors = torch.stack([(got[k] - expected[k]).abs() / (expected[k].abs() + 1e-3) for k in expected])  # (K, B)
    worst = int(errors.max(dim=0).values.argmax())

    def combination(values: dict[str, torch.Tensor]) -> str:
        numbers = [values[k][worst].item() for k in expected]
        terms = [f"{0.0 if abs(v) < 1e-8 else v:.4g}" + (f"·{names[k]}" if names[k] else "")
                 for k, v in zip(expected, numbers)]
        return " + ".join(terms).replace("+ -", "− ")
    head = (f"{output} = {combination(got)} at {context.describe(worst)} (image {worst}), where {model.equation} "
            f"gives {combination(expected)}")
    singles = _single_quantities(context)
    wrong = [key for key in expected if not _close(got[key], expected[key])]
    steps = context.steps["t"]
    same = len(steps) > 1 and len(set(steps.tolist())) > 1 and any(got[k].abs().max() > 1e-6 for k in expected) \
        and all(_close(got[k], got[k][:1].expand_as(got[k]), 1e-6) for k in expected)
    whose = [b for b in range(len(steps)) if all(_close(got[k], expected[k][b:b + 1].expand_as(got[k]))
                                                  for k in expected)] if same else []
    if whose:  # one image's coefficients used for the whole batch (not merely equal coefficients: ᾱ_0 = 0 at t' = 0)
        owner = "the first image's" if whose[0] == 0 else f"those of image {whose[0]} ({context.describe(whose[0])})"
        return (f"{head}: your coefficients are the same for every image, though each image has its own t — they "
                f"are {owner}. Use the whole (B,) tensor t: schedule.alpha_bars[t - 1] picks ᾱ_t for every image, "
                "shape (B,); view it as (B, 1, 1, 1).")

    def single_quantity() -> str | None:  # every wrong coefficient is one schedule quantity, at every image
        found = []
        for key in wrong:
            text = next((text for text, f in singles.items() if _close(got[key], f.value(context))), None)
            if text is None:
                return None
            found.append(f"{model.output_label(key, names[key])} is {text} at every image of the batch, instead of "
                         f"{model.expected_text(key)}")
        return f"{head}: " + "; ".join(found) + f". Compare it with {model.equation} factor by factor."

    def first_change(candidate: Model) -> Change | None:
        for change in changes(candidate):
            predicted = candidate.evaluate(context, change.parts)
            if all(_close(got[key], predicted[key]) for key in expected):
                return change
        return None
    differs = ~torch.stack([(got[k] - expected[k]).abs() <= 1e-6 + 1e-4 * expected[k].abs() for k in expected]).all(0)
    at_an_end = _at_an_end(context, differs)
    if at_an_end:  # only images at t = 1, t = T or t' = 0 differ: one quantity read wrongly there, most likely
        found = recover_variable(model, context, got)
        if found:
            return f"{head}: {describe_recovered(found, context, model.equation)}"
    change = first_change(model)
    if change:
        plainer = single_quantity() if change.cancels else None
        if plainer:
            return plainer
        extra = model.advice.get(change.group, "") if change.group else ""
        message = f"{head}: {change.what}. {change.why}{' ' + extra if extra else ''}"
        for other in model.alternatives:  # the same coefficients read as another way of writing the equation
            also = first_change(other)
            if also:
                message += f" (Written as {other.equation} {also.what}.)"
        return message
    for other in model.alternatives:
        also = first_change(other)
        if also:
            return f"{head}: in {other.equation} {also.what}. {also.why}"
    for reading in model.readings:
        message = reading(context, got)
        if message:
            return f"{head}: {message}"
    found = None if at_an_end else recover_variable(model, context, got)
    if found:
        return f"{head}: {describe_recovered(found, context, model.equation)}"
    plain = single_quantity()
    if plain:
        return plain
    scalars = {text: formula.value(context)[worst].item() for text, formula in singles.items()}
    parts = []
    for key in expected:
        have, want = got[key][worst].item(), expected[key][worst].item()
        label = model.output_label(key, names[key])
        if key in wrong:
            named = name_value(have, scalars)
            parts.append(f"{label} is {have:.4g}" + (f" (= {named} there)" if named else "")
                         + f" but should be {model.expected_text(key)} = {want:.4g}")
        else:
            parts.append(f"{label} is right")
    return f"{head}: " + "; ".join(parts) + f". Compare your code with {model.equation} term by term."


# =============================================================================================================
# Shared probes: calling the learner's code, coefficients per image, axes they must not vary along
# =============================================================================================================
@dataclass(frozen=True)
class ImageCase(Case):
    """A batch of images (B, C, H, W) with one t per image: ``steps`` first, then seeded random t in 1..T."""

    shape: tuple = (8, 1, 6, 8)
    T: int = 50
    steps: tuple = ()
    clip: bool = True
    jump: int | None = None  # DDIM: t' = t − jump; None: t' = 0

    @property
    def sizes(self) -> dict[str, int]:
        named = dict(zip(IMAGE_AXES, self.shape), T=self.T)
        return {name: size for name, size in named.items() if size > 1}

    def schedule(self) -> Schedule:
        return Schedule.from_betas(reference_cosine_schedule(self.T)).to(self.dtype)

    def timesteps(self, exercise: Exercise, lowest: int = 1) -> torch.Tensor:
        """(B,) int64: the given steps, then seeded random steps in lowest..T."""
        B = self.shape[0]
        generator = torch.Generator().manual_seed(exercise.seed(self.label, "t"))
        t = torch.randint(lowest, self.T + 1, (B,), generator=generator)
        given = torch.as_tensor(self.steps, dtype=torch.long)[:B]
        t[: len(given)] = given
        return t


def run_learner(exercise: Exercise, fn: Callable, case: Case, arguments: dict, *, random_hint: str, **options):
    """``fn(*arguments.values(), **options)`` on copies of the inputs, twice.

    An input changed in place is reported (core names a tensor argument; the schedule's tables are checked here),
    and so is a second call on the same inputs that disagrees with the first (``random_hint`` says which
    randomness is not wanted).
    """
    def copy(value):
        if isinstance(value, torch.Tensor):
            return value.clone()
        if isinstance(value, Schedule):
            return Schedule(value.betas.clone(), value.alphas.clone(), value.alpha_bars.clone())
        return value
    given = [copy(value) for value in arguments.values()]
    got = _call_by_name(exercise, fn, given, case, options)
    for (name, original), passed in zip(arguments.items(), given):
        if not isinstance(original, Schedule):
            continue
        for table in ("betas", "alphas", "alpha_bars"):
            after = getattr(passed, table)
            if not isinstance(after, torch.Tensor) or not torch.equal(getattr(original, table), after):
                raise exercise.fail(f"your {exercise.name} changed `{name}.{table}` in place (.clamp_(…), […] = …, "
                                    f"…). The schedule is shared by every step of a sampling loop: compute new "
                                    f"tensors from it instead.", case=case)
    again = _call_by_name(exercise, fn, [copy(value) for value in arguments.values()], case, options)
    if not _same(got, again):
        raise exercise.fail(f"two calls with the same inputs gave different outputs: {random_hint}", case=case)
    return got


def _call_by_name(exercise: Exercise, fn: Callable, values: list, case: Case, options: dict):
    """Call ``fn`` with ``values`` bound to its own parameter names, so that core names an input it changed in place
    (`noise`); positionally when they do not bind (the learner's error then says why)."""
    try:
        signature = inspect.signature(fn)
        bound = signature.bind(*values, **options)
    except (TypeError, ValueError):
        return exercise.call(fn, *values, case=case, **options)
    unnamed = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    if any(p.kind in unnamed for p in signature.parameters.values()):
        return exercise.call(fn, *values, case=case, **options)
    return exercise.call(fn, case=case, **bound.arguments)


def _same(a, b) -> bool:
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        return a.shape == b.shape and a.dtype == b.dtype and bool(torch.equal(a.detach(), b.detach()) or (
            a.is_floating_point() and torch.allclose(a.detach(), b.detach(), rtol=0, atol=0, equal_nan=True)))
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return True  # not tensors: the comparison will say what is wrong with them


def fit_per_image(got: torch.Tensor, basis: dict[str, torch.Tensor], *, atol: float = 1e-5) -> dict | None:
    """The coefficients (each (B,)) with got[b] = Σ c[name][b] · basis[name][b] for every image b; None when the
    output is not such a combination (a nonlinearity, or coefficients that vary inside an image)."""
    fits = fit_linear(got, basis, per=0)
    if any(fit.residual > atol for fit in fits):
        return None
    return {name: torch.tensor([fit.coefficients[name] for fit in fits], dtype=torch.float64) for name in basis}


def _rows_are_combinations(target: torch.Tensor, rows: list[torch.Tensor]) -> bool:
    """Whether every row of ``target`` (R, n) is a combination of the same rows of ``rows`` (each (R, n)): one
    batched least-squares solve (the same test as :func:`fit_linear` per row, at once)."""
    design = torch.stack([r.double() for r in rows], dim=-1)  # (R, n, K)
    target = target.double()[..., None]  # (R, n, 1)
    solution = torch.linalg.lstsq(design, target, driver="gelsd").solution  # (R, K, 1)
    residual = (design @ solution - target).norm(dim=(1, 2)) / target.norm(dim=(1, 2)).clamp_min(1e-300)
    return bool((residual < 1e-5).all())


def varying_axis_problem(got: torch.Tensor, basis: dict[str, torch.Tensor], *, what: str) -> str | None:
    """When the output is a per-pixel-column combination (coefficients varying along C, H or W of an image) rather
    than one combination per image: the (B,) → (B, 1, 1, 1) reshape is missing or wrong."""
    B = got.shape[0]
    for axis in range(got.dim() - 1, 0, -1):
        size = got.shape[axis]
        if size < 2:
            continue
        moved = got.movedim(axis, 1).reshape(B * size, -1)  # (B·size, rest): one row per image and index
        if moved.shape[1] <= len(basis) + 1:
            continue  # too few entries per row: any row would fit
        rows = [v.expand_as(got).movedim(axis, 1).reshape(B * size, -1) for v in basis.values()]
        if _rows_are_combinations(moved, rows):
            name = IMAGE_AXES[axis] if got.dim() == 4 else f"axis {axis}"
            same = " — B equals " + name + " here, so it broadcast without an error" if size == B else ""
            return (f"{what} change along the {name} axis inside one image; they should be one number per image, "
                    f"from that image's t. A (B,) tensor such as alpha_bars[t - 1] lined up with the {name} axis"
                    f"{same}. Reshape it to (B, 1, 1, 1): .view(-1, 1, 1, 1), so it broadcasts over (B, C, H, W).")
    return None


def linear_probe(model: Model, context: StepContext, basis: dict[str, torch.Tensor], *, output: str,
                 names: dict[str, str]) -> Callable[[torch.Tensor], str | None]:
    """A probe for :meth:`Exercise.compare`: recover the learner's coefficients per image and explain them."""
    def probe(got: torch.Tensor) -> str | None:
        coefficients = fit_per_image(got, basis)
        if coefficients is None:
            return varying_axis_problem(got, basis, what=f"the coefficients of your {output}")
        return explain_coefficients(model, context, coefficients, output=f"your {output}", names=names)
    return probe


def nonfinite_images_problem(got, expected: torch.Tensor, context: StepContext, *, output: str,
                             rest: Callable[[torch.Tensor], str | None] | None = None,
                             inputs: dict[str, torch.Tensor] | None = None,
                             names: dict[str, str] | None = None) -> str | None:
    """When some images of the learner's output are inf/NaN: which steps they have (t = 1: a division by
    1 − ᾱ_0 = 0), and, through ``rest(mask)``, what the finite images say."""
    if not isinstance(got, torch.Tensor) or got.shape != expected.shape or not got.is_floating_point():
        return None  # compare reports the type, shape or dtype
    bad = ~torch.isfinite(got.detach()).flatten(1).all(dim=1)  # (B,): images with an inf or NaN
    if not bad.any() or not torch.isfinite(expected).all():
        return None
    if inputs:
        by_sign = nonfinite_pixels_problem(got, inputs, names or {}, output=output)
        if by_sign:
            return by_sign
    steps = {name: sorted(set(v[bad].tolist())) for name, v in context.steps.items()}
    where = " and ".join(f"{name} = {', '.join(map(str, values))}" for name, values in steps.items())
    message = f"your {output} is inf or NaN for the images with {where}" + (
        "; the other images are finite" if not bad.all() else "")
    if steps["t"] == [1]:
        message += (". At t = 1, ᾱ_{t−1} = ᾱ_0 = 1, so 1 − ᾱ_{t−1} = 0 and β̃_1 = 0: something divides by one of "
                    "them, or takes the log or 1/√ of it")
    elif steps.get("t'") == [0]:
        message += (". At t' = 0, ᾱ_{t'} = ᾱ_0 = 1, so 1 − ᾱ_{t'} = 0: something divides by it, or takes the log "
                    "or 1/√ of it")
    else:
        message += ": a division by zero, or the square root of a negative number"
    explained = rest(~bad) if rest is not None and not bad.all() else None
    return message + (f". On the finite images, {explained}" if explained else ".")


def nonfinite_pixels_problem(got: torch.Tensor, inputs: dict[str, torch.Tensor], names: dict[str, str], *,
                             output: str) -> str | None:
    """When the NaN entries of the learner's output follow the *sign* of the inputs, pixel by pixel: a square root
    (or log, or fractional power) was taken of something that can be negative — an input itself (√(ᾱ_t·x_0)), or
    the whole combination (√(ᾱ_t x_0 + (1 − ᾱ_t) ε)). Recovered from where the NaNs are and what the finite entries
    are."""
    got = got.detach()
    bad = torch.isnan(got)
    if not bad.any() or bad.all():
        return None
    for key, tensor in inputs.items():
        if torch.equal(bad, tensor < 0):
            return (f"your {output} is NaN exactly where {names[key]} < 0 (and finite elsewhere): a square root, log "
                    f"or fractional power is taken of something that contains {names[key]} itself, such as "
                    f"√(ᾱ_t·{names[key]}). Only the coefficient is a square root: √ᾱ_t·{names[key]}, "
                    f"alpha_bar_t.sqrt() * {key}.")
    squares = []  # the finite entries of each image are the square root of a combination of the inputs?
    for b in range(got.shape[0]):
        keep = ~bad[b]
        if keep.sum() <= len(inputs) + 1:
            return None
        fit = fit_linear(got[b][keep] ** 2, {k: v[b][keep] for k, v in inputs.items()})
        combination = sum(fit.coefficients[k] * v[b].double() for k, v in inputs.items())
        if not fit.exact or not torch.equal(bad[b], combination < 0):
            return None
        squares.append(fit)
    shown = squares[0].formula(names)
    return (f"your {output} is NaN exactly where {shown} is negative, and the square root of it elsewhere (here for "
            f"the first image): you took the square root of the whole sum. Only the coefficients are square roots "
            f"— x = √a·x_0 + √b·ε, not √(a·x_0 + b·ε).")


def _rest(model: Model, context: StepContext, basis: dict[str, torch.Tensor], got, *, output: str,
          names: dict[str, str]) -> Callable[[torch.Tensor], str | None]:
    """``rest`` for :func:`nonfinite_images_problem`: the linear probe on the images that ``mask`` keeps."""
    def rest(mask: torch.Tensor) -> str | None:
        sub = StepContext(context.schedule, {name: v[mask] for name, v in context.steps.items()})
        return linear_probe(model, sub, {k: v[mask] for k, v in basis.items()}, output=output,
                            names=names)(got.detach()[mask])
    return rest


def misplaced_batch_axis(got, expected: torch.Tensor) -> str | None:
    """When the output's shape is the expected one with B entries on an axis of size 1 there: a per-image tensor
    with fewer than four axes, (B, 1, 1), broadcast against (B, C, H, W) and lined up with (C, H, W)."""
    if not isinstance(got, torch.Tensor) or got.dim() != expected.dim() or got.shape == expected.shape:
        return None
    B = expected.shape[0]
    differ = [k for k in range(got.dim()) if got.shape[k] != expected.shape[k]]
    if B > 1 and differ and all(got.shape[k] == B for k in differ) and 0 not in differ:
        axes = ", ".join(IMAGE_AXES[k] if got.dim() == 4 else str(k) for k in differ)
        return (f"shape {tuple(got.shape)} but expected {tuple(expected.shape)}: the batch size B = {B} landed on "
                f"axis {axes}. A per-image tensor with too few axes, such as (B, 1, 1), lines up with the last axes "
                f"(C, H, W) when it meets (B, C, H, W); give it four: .view(-1, 1, 1, 1).")
    return None


def compare_images(exercise: Exercise, got, expected: torch.Tensor, *, case: ImageCase, context: StepContext,
                   name: str, equation: str, probes=(), rest=None, inputs: dict[str, torch.Tensor] | None = None,
                   names: dict[str, str] | None = None, **options) -> None:
    """:meth:`Exercise.compare` for a batch of images, after a per-image axis that landed on C, H or W and the
    steps of any inf/NaN images (``inputs``, the image inputs the output is linear in, with their display
    ``names``, let NaNs that follow an input's sign be read).

    In float32 the absolute tolerance is 1e-4: a right answer written another way (the posterior mean through eq.
    (5.11)) cancels 1 − ᾱ_1 against β_1 at t = 1 and loses about that much; every mistake differs by far more.
    """
    if case.dtype == torch.float32:
        options.setdefault("atol", 1e-4)
    problem = misplaced_batch_axis(got, expected) or nonfinite_images_problem(got, expected, context, output=name,
                                                                              rest=rest, inputs=inputs, names=names)
    if problem:
        raise exercise.fail(problem, case=case, name=name)
    exercise.compare(got, expected, case=case, name=name, equation=equation, probes=probes, axes=IMAGE_AXES,
                     **options)


# =============================================================================================================
# Exercise 5.1 — noise schedules, eqs. (5.3), (5.4)
# =============================================================================================================
EX_SCHEDULES = Exercise("5.1", "schedules")


@dataclass(frozen=True)
class ScheduleCase(Case):
    T: int = 200
    arguments: tuple = ()  # keyword arguments beyond T, as (name, value) pairs

    @property
    def sizes(self) -> dict[str, int]:
        return {"T": self.T, "T + 1": self.T + 1, "T − 1": self.T - 1}


def reference_linear_schedule(T, beta_start=1e-4, beta_end=0.02):
    """Eq. (5.3): β_t linear from beta_start to beta_end, both × 1000/T (Nichol & Dhariwal's rescaling).  (T,)"""
    scale = 1000 / T
    return torch.linspace(scale * beta_start, scale * beta_end, T, dtype=torch.float64)


def reference_cosine_alpha_bars(T, s=0.008):
    """ᾱ_t = f(t) / f(0) with f(t) = cos²((t/T + s) / (1 + s) · π/2), for t = 0..T: a (T + 1,) float64 tensor."""
    steps = torch.arange(T + 1, dtype=torch.float64) / T
    f = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
    return f / f[0]


def reference_cosine_schedule(T, s=0.008, max_beta=0.999):
    """Eq. (5.4): β_t = min(1 − ᾱ_t / ᾱ_{t−1}, max_beta) from the cosine ᾱ_t.  (T,) float64"""
    alpha_bars = reference_cosine_alpha_bars(T, s)  # (T + 1,), ᾱ_0 = 1
    return (1 - alpha_bars[1:] / alpha_bars[:-1]).clamp(max=max_beta)


LINEAR_CASES = [ScheduleCase("linear_schedule(200)", torch.float64, 200),
                ScheduleCase("linear_schedule(50)", torch.float64, 50),
                ScheduleCase("linear_schedule(1000)", torch.float64, 1000),
                ScheduleCase("linear_schedule(300, beta_start=3e-4, beta_end=0.05)", torch.float64, 300,
                             (("beta_start", 3e-4), ("beta_end", 0.05)))]  # 1000 // 300 ≠ 1000 / 300
COSINE_CASES = [ScheduleCase("cosine_schedule(200)", torch.float64, 200),
                ScheduleCase("cosine_schedule(50)", torch.float64, 50),
                ScheduleCase("cosine_schedule(1000)", torch.float64, 1000),
                ScheduleCase("cosine_schedule(1)", torch.float64, 1),
                ScheduleCase("cosine_schedule(100, s=0.02, max_beta=0.5)", torch.float64, 100,
                             (("s", 0.02), ("max_beta", 0.5)))]


def _length_problem(got, T: int, function: str) -> str | None:
    if isinstance(got, torch.Tensor) and got.dim() == 1 and len(got) in (T + 1, T - 1) and T > 1:
        if len(got) == T + 1:
            return (f"{T + 1} values, one too many: {function} returns one β per step t = 1, …, T. (Values at the "
                    f"T + 1 points t = 0, …, T are ᾱ's; β_t compares neighbours, so it has T.)")
        return (f"{T - 1} values, one too few: {function} returns one β per step t = 1, …, T. (The ratio "
                f"ᾱ[1:] / ᾱ[:-1] of T + 1 values t = 0, …, T has T entries: compute ᾱ at t = 0 too, ᾱ_0 = 1.)")
    return None


def _returned_quantity(got: torch.Tensor, betas: torch.Tensor, alpha_bars: torch.Tensor,
                       max_beta: float | None = None) -> str | None:
    """When the learner returned another schedule quantity than β (α_t, ᾱ_t, 1 − ᾱ_t, √β_t, β reversed), clipped
    at ``max_beta`` or not."""
    others = {
        "α_t = 1 − β_t; return the betas": 1 - betas,
        "ᾱ_t; return the betas, β_t = 1 − ᾱ_t / ᾱ_{t−1}": alpha_bars,
        "1 − ᾱ_t, the *total* noise variance up to t; β_t is one step's: 1 − ᾱ_t / ᾱ_{t−1}": 1 - alpha_bars,
        "√β_t, a standard deviation; return the variances β_t": betas.sqrt(),
        "β in reverse order: β_1 is the smallest, at index 0": betas.flip(0),
        "ᾱ_{t−1} − ᾱ_t, a difference; β_t = 1 − ᾱ_t/ᾱ_{t−1} is one minus a ratio (α_t = ᾱ_t/ᾱ_{t−1})":
        torch.cat([torch.ones(1, dtype=alpha_bars.dtype), alpha_bars[:-1]]) - alpha_bars,
    }
    for words, values in others.items():
        for candidate in (values, values.clamp(max=max_beta)) if max_beta else (values,):
            if len(values) > 1 and torch.allclose(got, candidate, rtol=1e-6, atol=1e-12):
                return f"you returned {words}."
    return None


def _common_scale(first: float, last: float, T: int) -> str | None:
    """When both ends of the learner's linear schedule are beta_start and beta_end times one factor c ≠ 1000/T:
    c, named among the scales a learner writes (1000/(T − 1), 1000 // T, T/1000, …)."""
    if not math.isclose(first, last, rel_tol=1e-6) or math.isclose(first, 1000 / T, rel_tol=1e-9):
        return None
    named = {"1000/(T − 1)": 1000 / max(T - 1, 1), "1000/(T + 1)": 1000 / (T + 1), "(1000/T)²": (1000 / T) ** 2,
             "√(1000/T)": math.sqrt(1000 / T), "1/T": 1 / T, "1000": 1000.0, "T": float(T)}  # (1, T/1000 and
    # 1000 // T are named end by end below, with their own advice)
    words = next((name for name, value in named.items() if math.isclose(first, value, rel_tol=1e-6)), None)
    if words is None:
        return None  # the per-end reading below says what each end is
    return (f"both ends are scaled by {first:.6g} = {words}: β_1 = {first:.6g}·beta_start and β_T = {first:.6g}·"
            f"beta_end. Eq. (5.3) scales both by 1000/T = {1000 / T:.6g}, so that the chain adds about as much noise "
            f"for any T.")


def _linear_probes(case: ScheduleCase, T: int, beta_start: float, beta_end: float):
    expected = reference_linear_schedule(T, beta_start, beta_end)
    scale = 1000 / T

    def returned(got):
        return _returned_quantity(got, expected, torch.cumprod(1 - expected, 0))

    def linear_in_t(got):
        steps = got.diff()  # (T − 1,)
        if torch.allclose(steps, steps.mean().expand_as(steps), rtol=1e-6, atol=1e-15):
            return None
        ratios = got[1:] / got[:-1]
        if (got > 0).all() and torch.allclose(ratios, ratios.mean().expand_as(ratios), rtol=1e-6):
            return (f"your β_t grow geometrically (each {ratios.mean().item():.4g} × the one before: torch.logspace "
                    f"or a power?); eq. (5.3) is linear in t: equal steps, torch.linspace(start, end, T).")
        return (f"your β_t are not linear in t: the step between neighbours goes from {steps[0].item():.3g} to "
                f"{steps[-1].item():.3g}; eq. (5.3) has equal steps (torch.linspace(start, end, T)).")

    def endpoints(got):
        step = (beta_end - beta_start) * scale / max(T - 1, 1)
        unscaled = "for T ≠ 1000 scale both ends by 1000/T, so the whole chain adds about as much noise"
        first = {f"beta_start, not scaled: {unscaled}": beta_start,
                 "(T/1000)·beta_start: the scale is 1000/T, not T/1000": beta_start / scale,
                 "(1000/T)·1e-4, from the default: use the beta_start argument": scale * 1e-4,
                 "(1000 // T)·beta_start: // is integer division, 1000/T is not an integer for every T":
                 (1000 // T) * beta_start,
                 "the second of T + 1 points — off by one: T points in all, the first is β_1 = (1000/T)·beta_start "
                 "exactly (torch.linspace(start, end, T))": scale * beta_start + (beta_end - beta_start) * scale / T,
                 "β_2 of eq. (5.3) — off by one: the first value is β_1 = (1000/T)·beta_start": scale * beta_start
                 + step}
        last = {f"beta_end, not scaled: {unscaled}": beta_end,
                "(T/1000)·beta_end: the scale is 1000/T, not T/1000": beta_end / scale,
                "(1000/T)·0.02, from the default: use the beta_end argument": scale * 0.02,
                "(1000 // T)·beta_end: // is integer division, 1000/T is not an integer for every T":
                (1000 // T) * beta_end,
                "β_{T−1} of eq. (5.3) — off by one: the last value is β_T = (1000/T)·beta_end (linspace includes "
                "both ends)": scale * beta_end - step}
        b1, bT = got[0].item(), got[-1].item()
        want_1, want_T = scale * beta_start, scale * beta_end
        if math.isclose(b1, want_1, rel_tol=1e-9) and math.isclose(bT, want_T, rel_tol=1e-9):
            return None
        common = _common_scale(b1 / beta_start, bT / beta_end, T)
        if common:
            return common

        def named(value, table):
            return next((words for words, v in table.items() if math.isclose(value, v, rel_tol=1e-6)), None)
        parts = []
        mine_step = (bT - b1) / max(T - 1, 1)
        if math.isclose(b1, want_1, rel_tol=1e-9) and T > 2 and not math.isclose(mine_step, step, rel_tol=1e-6):
            for words, value in (("(β_end − β_start)/T: T points have T − 1 gaps — (t − 1)/(T − 1) in eq. (5.3)",
                                  (beta_end - beta_start) * scale / T),
                                 ("(β_end − β_start)/(T + 1)", (beta_end - beta_start) * scale / (T + 1)),
                                 ("(beta_end − beta_start)/(T − 1) without the factor 1000/T",
                                  (beta_end - beta_start) / (T - 1))):
                if math.isclose(mine_step, value, rel_tol=1e-6):
                    return (f"β_1 = {b1:.4g} is right but your step between neighbours is {words}; eq. (5.3)'s is "
                            f"(1000/T)·(beta_end − beta_start)/(T − 1) = {step:.4g}, so that β_T = (1000/T)·beta_end: "
                            f"torch.linspace(start, end, T).")
        for symbol, value, want, table in (("β_1", b1, want_1, first), (f"β_T = β_{T}", bT, want_T, last)):
            if math.isclose(value, want, rel_tol=1e-9):
                parts.append(f"{symbol} = {value:.4g} is right")
            else:
                words = named(value, table)
                parts.append(f"{symbol} is {value:.4g}" + (f" = {words}" if words else "") +
                             f"; eq. (5.3) has {want:.4g}")
        return ("; ".join(parts) + ". Eq. (5.3) runs from β_1 = (1000/T)·beta_start to β_T = (1000/T)·beta_end in "
                "T equal steps: torch.linspace(start, end, T, dtype=torch.float64).")
    return [returned, linear_in_t, endpoints]


def _cosine_probes(case: ScheduleCase, T: int, s: float, max_beta: float):
    alpha_bars_0 = reference_cosine_alpha_bars(T, s)  # (T + 1,), ᾱ_0 = 1
    alpha_bars = alpha_bars_0[1:]
    unclipped = 1 - alpha_bars / alpha_bars_0[:-1]  # (T,)
    expected = unclipped.clamp(max=max_beta)

    def returned(got):
        return _returned_quantity(got, expected, alpha_bars, max_beta)

    def clipped(got):
        top = got.max().item()
        if (got >= max_beta * (1 - 1e-12)).all() and not torch.allclose(expected, got):
            return (f"every β_t is {max_beta} or more: clamp(min=…) raises every value to it; eq. (5.4) caps from "
                    f"above, β_t = min(…, max_beta): .clamp(max=max_beta).")
        if top > max_beta * (1 + 1e-9):
            if math.isclose(top, 0.999, rel_tol=1e-9):
                return (f"your largest β_t is 0.999 but this case's max_beta is {max_beta}: clip at the max_beta "
                        f"argument, not at a hard-coded 0.999.")
            biggest = int(got.argmax()) + 1
            return (f"β_{biggest} = {top:.6g} exceeds max_beta = {max_beta}: β_t must be clipped at max_beta "
                    f"(eq. 5.4). Near t = T, ᾱ_t → 0 and 1 − ᾱ_t/ᾱ_{{t−1}} reaches 1, a step that destroys "
                    f"everything: .clamp(max=max_beta).")
        free = expected < max_beta
        if (expected >= max_beta).any() and top < max_beta * (1 - 1e-9) and (unclipped > top).any() and \
                torch.allclose(got[free], expected[free], rtol=1e-7):
            return (f"your largest β_t is {top:.6g}, but eq. (5.4) clips at max_beta = {max_beta} and "
                    f"1 − ᾱ_t/ᾱ_{{t−1}} reaches it at t = {int((expected >= max_beta).nonzero()[0]) + 1}: clip β_t "
                    f"itself, with .clamp(max=max_beta), not ᾱ_t or f(t).")
        return None

    def positive(got):
        if (got > 0).all():
            return None
        first = int((got <= 0).nonzero()[0]) + 1
        inverted = 1 - alpha_bars_0[:-1] / alpha_bars_0[1:]
        head = (f"β_{first} = {got[first - 1].item():.4g} is not positive: ᾱ_t must decrease, so "
                f"β_t = 1 − ᾱ_t / ᾱ_{{t−1}} (eq. 5.4) lies in (0, 1)")
        if torch.allclose(got, inverted.clamp(max=max_beta), rtol=1e-6):
            return f"{head}. Yours is 1 − ᾱ_{{t−1}}/ᾱ_t: the ratio is upside down."
        read = _read_cosine_argument(got, T, s, max_beta)
        if read:
            return f"{head}, and yours are not. {read[0].upper()}{read[1:]}"
        if (got[: first - 1] > 0).all() and first > 1:
            below = int((got[: first - 1] < max_beta).cumprod(0).sum())  # the steps before any clipping
            argument = _read_cosine_argument(got[:below], T, s, max_beta, named_only=False)
            return (f"{head}; yours are positive up to t = {first - 1}, then your ᾱ_t = ∏(1 − β_s) rises again. "
                    f"cos² is periodic: its argument must run from s/(1 + s)·π/2 at t = 0 to exactly π/2 at t = T, "
                    f"where f(T) = 0 — (t/T + s)/(1 + s)·π/2." + (f" {argument}" if argument else ""))
        return f"{head}: β_t = 1 − ᾱ_t/ᾱ_{{t−1}} with ᾱ_t = f(t)/f(0) decreasing."

    def recovered_alpha_bars(got):
        """∏(1 − β_s) of the learner's β should give back f(t)/f(0) up to the first clipped step."""
        free = int((expected < max_beta).sum()) if (expected >= max_beta).any() else T
        free = min(free, int((got < max_beta).sum()) if (got >= max_beta).any() else T)
        mine = torch.cumprod(1 - got, 0)[:free]  # (free,): the learner's ᾱ_1..ᾱ_free
        want = alpha_bars[:free]
        if torch.allclose(mine, want, rtol=1e-7, atol=1e-12):
            return None
        if free > 1 and torch.allclose(got[1:free], expected[1:free], rtol=1e-7) and \
                not math.isclose(got[0].item(), expected[0].item(), rel_tol=1e-7):
            return (f"β_1 = {got[0].item():.6g} is wrong while β_2 … are right: β_1 = 1 − ᾱ_1/ᾱ_0 = "
                    f"{expected[0].item():.6g}, with ᾱ_0 = f(0)/f(0) = 1 (divide f by f(0), and start the ratio at "
                    f"t = 0).")
        inside = (want < 0.99) & (want > 1e-6) & (mine > 0)
        if inside.sum() >= 2:
            powers = mine[inside].log() / want[inside].log()
            power = powers.mean().item()
            if torch.allclose(powers, torch.full_like(powers, power), rtol=1e-5):
                if abs(power - 0.5) < 1e-4:
                    return ("your ᾱ_t = ∏(1 − β_s) is the square root of eq. (5.4)'s: f(t) is the *square* of the "
                            "cosine, cos²(…), and you used cos(…).")
                return (f"your ᾱ_t = ∏(1 − β_s) is eq. (5.4)'s raised to the power {power:.4g}: f(t) = "
                        f"cos²((t/T + s)/(1 + s)·π/2), squared once.")
        read = _read_cosine_argument(got, T, s, max_beta)
        if read:
            return read
        fitted = _fit_offset(mine, T, free)
        if fitted is not None and not math.isclose(fitted, s, rel_tol=1e-3, abs_tol=1e-6):
            if math.isclose(fitted, 0.008, rel_tol=1e-3):
                words = f"you used s = 0.008, not the s argument ({s}): use the function's parameter."
            else:
                words = f"yours is the cosine with s = {fitted:.4g}; eq. (5.4) uses the s argument, {s}."
            return f"your ᾱ_t = ∏(1 − β_s) match f(t)/f(0) with another offset: {words}"
        argument = _read_cosine_argument(got, T, s, max_beta, named_only=False)
        if argument:
            return f"your ᾱ_t = ∏(1 − β_s) depart from f(t)/f(0) of eq. (5.4). {argument}"
        departs = int((~torch.isclose(mine, want, rtol=1e-7, atol=1e-12)).nonzero()[0])
        return (f"your ᾱ_t = ∏(1 − β_s) departs from eq. (5.4)'s f(t)/f(0) from t = {departs + 1} on (yours "
                f"{mine[departs].item():.6g}, expected {want[departs].item():.6g}): compute f at t = 0, 1, …, T "
                f"(torch.arange(T + 1) / T), ᾱ = f / f[0], then β = 1 − ᾱ[1:] / ᾱ[:-1].")
    return [returned, positive, clipped, recovered_alpha_bars]


def _recover_cosine_argument(got: torch.Tensor, max_beta: float) -> tuple[float, float] | None:
    """(p, q) with the learner's ᾱ_t ∝ cos²(p·t + q), read in closed form from their β's; None if they are not so.

    On a run of unclipped steps, 1 − β_t = f(t)/f(t − 1), so u_t = ∏(1 − β) is f up to a constant factor C. With
    f = cos²(p t + q) = ½(1 + cos(2p t + 2q)), u is a constant plus a sinusoid in t, which obeys the linear recurrence
    u_{t+1} + u_{t−1} = 2cos(2p)·u_t + m: least squares gives cos(2p), then C, then the phase 2q. Works whatever
    the argument's scale (t not divided by T, π for π/2), since cos² is read as periodic. p is returned in [0, π/2]
    and q in [0, π): cos² cannot tell p from p + π or from −p (with −q)."""
    usable = torch.isfinite(got) & (got < max_beta * (1 - 1e-9))  # (T,) steps whose β is the plain ratio
    best, start = (0, 0), None
    for i, ok in enumerate(usable.tolist() + [False]):  # the longest run of usable steps
        if ok and start is None:
            start = i
        elif not ok and start is not None:
            best, start = max(best, (i - start, start)), None
    length, first = best
    if length < 5:
        return None
    ratios = (1 - got[first:first + length]).double()  # f(t)/f(t − 1) for the run's steps
    u = torch.cat([torch.ones(1, dtype=torch.float64), ratios.cumprod(0)])  # f(t)/f(first − 1), length + 1 points
    if not torch.isfinite(u).all() or u.abs().max() > 1e12:
        return None
    t = torch.arange(first, first + length + 1, dtype=torch.float64)  # u[j] = f(first + j)/f(first)
    design = torch.stack([u[1:-1], torch.ones_like(u[1:-1])], dim=1)  # (n − 2, 2)
    k, m = torch.linalg.lstsq(design, (u[2:] + u[:-2])[:, None], driver="gelsd").solution[:, 0].tolist()
    if not -2 < k < 2:
        return None
    p = math.acos(k / 2) / 2
    scale = m / (2 - k)  # C/2
    y = u / scale - 1  # cos(2p t + 2q)
    basis = torch.stack([torch.cos(2 * p * t), -torch.sin(2 * p * t)], dim=1)
    c, d = torch.linalg.lstsq(basis, y[:, None], driver="gelsd").solution[:, 0].tolist()
    q = (math.atan2(d, c) / 2) % math.pi
    rebuilt = scale * (1 + torch.cos(2 * p * t + 2 * q))
    if not ((rebuilt - u).abs() / u.abs().clamp_min(1e-12)).max() <= 1e-6:  # NaN (a zero scale) fails too
        return None
    return p, q


def _same_argument(p: float, q: float, pc: float, qc: float) -> bool:
    """Whether cos²(p t + q) and cos²(pc t + qc) agree at every integer t (p mod π, q mod π, and the sign)."""
    def near_multiple(x: float, tolerance: float) -> bool:
        r = x % math.pi
        return min(r, math.pi - r) <= tolerance
    return any(near_multiple(p - sign * pc, 1e-4 * abs(pc) + 1e-10) and near_multiple(q - sign * qc, 1e-5)
               for sign in (1, -1))


def _read_cosine_argument(got: torch.Tensor, T: int, s: float, max_beta: float, *,
                          named_only: bool = True) -> str | None:
    """The argument of the learner's cos², recovered in closed form and named as the chapter's
    (t/T + s)/(1 + s)·π/2 with one or two things changed; None when it is the right one or cannot be read (or,
    with ``named_only``, when it is no such small change)."""
    recovered = _recover_cosine_argument(got, max_beta)
    if recovered is None:
        return None
    p, q = recovered
    p_want, q_want = math.pi / (2 * T * (1 + s)), s / (1 + s) * math.pi / 2
    if _same_argument(p, q, p_want, q_want):
        return None
    shift = ("off by one in the time grid: f is evaluated at t/T for t = 0, 1, …, T, and β_t compares f(t) with "
             "f(t − 1)")
    numerators = [("t/T + s", 1 / T, s, None), ("t/T", 1 / T, 0.0, "the offset s is missing"),
                  ("t + s", 1.0, s, "t is not divided by T (t/T runs from 0 to 1)"),
                  ("(t + s)/T", 1 / T, s / T, "the offset s is divided by T too"),
                  ("t/T − s", 1 / T, -s, "−s in place of +s"),
                  ("(t + 1)/T + s", 1 / T, 1 / T + s, f"t + 1 in place of t ({shift})"),
                  ("(t − 1)/T + s", 1 / T, s - 1 / T, f"t − 1 in place of t ({shift})"),
                  ("t/(T + 1) + s", 1 / (T + 1), s, "t/(T + 1) in place of t/T"),
                  ("t/(T − 1) + s", 1 / max(T - 1, 1), s, "t/(T − 1) in place of t/T")]
    denominators = [("1 + s", 1 + s, None), ("1 − s", 1 - s, "divided by 1 − s instead of 1 + s"),
                    ("1", 1.0, "no division by (1 + s)"), ("T + s", T + s, "divided by T + s instead of 1 + s")]
    factors = [("π/2", math.pi / 2, None), ("π", math.pi, "π in place of π/2"), ("π/4", math.pi / 4,
                                                                                  "π/4 in place of π/2")]
    candidates = [(f"({n})/({d})·{f}", a * fv / dv, b * fv / dv, [e for e in (ne, de, fe) if e])
                  for n, a, b, ne in numerators for d, dv, de in denominators for f, fv, fe in factors]
    candidates += [(f"({n})/(1 + s·π/2)", a / (1 + s * math.pi / 2), b / (1 + s * math.pi / 2),
                    [e for e in (ne,) if e] + ["·π/2 went into the denominator, (…)/(1 + s·π/2): operator "
                                               "precedence — write ((t/T + s)/(1 + s))·π/2"])
                   for n, a, b, ne in numerators]
    candidates.sort(key=lambda c: len(c[3]))
    want = f"(t/T + s)/(1 + s)·π/2 = {p_want:.4g}·t + {q_want:.4g}"
    for form, pc, qc, edits in candidates:
        if edits and len(edits) <= 2 and _same_argument(p, q, pc, qc):
            return (f"your ᾱ_t = f(t)/f(0) with f(t) = cos²(g(t)), and your argument is g(t) = {form} — "
                    f"{'; '.join(edits)}. Eq. (5.4) has g(t) = {want}.")
    if named_only:
        return None
    ratio = p / p_want
    words = [f"it rises {ratio:.4g} × as fast as eq. (5.4)'s"] if not math.isclose(ratio, 1, rel_tol=1e-4) else []
    if words and math.isclose(q, q_want * ratio, rel_tol=1e-3):
        words.append(f"the whole argument is scaled, as if π were {ratio * math.pi:.5g} — use math.pi")
    elif not math.isclose(q, q_want, abs_tol=1e-5):
        words.append(f"at t = 0 it is {q:.4g} instead of s/(1 + s)·π/2 = {q_want:.4g} (is the offset s placed right: "
                     f"(t/T + s)/(1 + s)?)")
    return (f"your ᾱ_t = f(t)/f(0) with f(t) = cos²(g(t)) for an argument g(t) = {p:.4g}·t + {q:.4g} (read from your "
            f"β's, up to multiples of π): " + "; ".join(words) + f". Eq. (5.4) has g(t) = {want}, rising from "
            f"s/(1 + s)·π/2 at t = 0 to π/2 at t = T.")


def _fit_offset(mine: torch.Tensor, T: int, free: int) -> float | None:
    """The offset s' with ∏(1 − β) = f_{s'}(t)/f_{s'}(0) on the first ``free`` steps, searched on [0, 0.5] (a grid,
    then finer grids around the best point); None if no offset fits."""
    steps = torch.arange(free + 1, dtype=torch.float64) / T  # t/T for t = 0..free

    def errors(offsets: torch.Tensor) -> torch.Tensor:  # (S,): max |ᾱ_{s'} − mine| for each offset s'
        f = torch.cos((steps[None, :] + offsets[:, None]) / (1 + offsets[:, None]) * math.pi / 2) ** 2
        return ((f[:, 1:] / f[:, :1]) - mine[None, :]).abs().max(dim=1).values

    offsets = torch.linspace(0, 0.5, 2001, dtype=torch.float64)  # spacing 2.5e-4
    best = offsets[errors(offsets).argmin()].item()
    for width in (2.5e-5, 2.5e-6, 2.5e-7, 2.5e-8):  # each pass spans ± the previous spacing
        candidates = (best + width * torch.arange(-10, 11, dtype=torch.float64)).clamp(min=0)
        best = candidates[errors(candidates).argmin()].item()
    return best if errors(torch.tensor([best], dtype=torch.float64)).item() < 1e-7 else None


def _unless_float32_close(probe: Callable, expected: torch.Tensor) -> Callable:
    """A probe that stays silent when the answer is right to float32 precision, so compare can say just that."""
    def guarded(got):
        return None if torch.allclose(got, expected, rtol=1e-4, atol=1e-7) else probe(got)
    return guarded


@one_thread
def check_schedules(linear_schedule, cosine_schedule) -> None:
    """Exercise 5.1: ``linear_schedule(T)`` and ``cosine_schedule(T)`` return the (T,) float64 tensor of β_1..β_T."""
    for function, fn, cases, equation in (("linear_schedule", linear_schedule, LINEAR_CASES, "eq. (5.3)"),
                                          ("cosine_schedule", cosine_schedule, COSINE_CASES, "eq. (5.4)")):
        exercise = Exercise("5.1", function)
        for case in cases:
            arguments = dict(case.arguments)
            got = run_learner(exercise, fn, case, {"T": case.T}, random_hint="the schedule is a fixed function "
                              "of T (no random numbers).", **arguments)
            problem = _length_problem(got, case.T, function)
            if problem:
                raise exercise.fail(problem, case=case, name="betas")
            if function == "linear_schedule":
                start, end = arguments.get("beta_start", 1e-4), arguments.get("beta_end", 0.02)
                expected = reference_linear_schedule(case.T, start, end)
                probes = _linear_probes(case, case.T, start, end)
            else:
                s, max_beta = arguments.get("s", 0.008), arguments.get("max_beta", 0.999)
                expected = reference_cosine_schedule(case.T, s, max_beta)
                probes = _cosine_probes(case, case.T, s, max_beta)
            exercise.compare(got, expected, case=case, name="betas", equation=equation,
                             probes=[_unless_float32_close(probe, expected) for probe in probes], axes=("t − 1",))
    EX_SCHEDULES.passed("linear_schedule matches β linear in [beta_start, beta_end]·1000/T for T = 50, 200, 300, "
                        "1000 and cosine_schedule matches Nichol & Dhariwal's (∏(1 − β) = f(t)/f(0), clipped at "
                        "max_beta) for T = 1, 50, 100, 200, 1000, with default and given arguments.")


# =============================================================================================================
# Exercise 5.2 — sampling q(x_t | x_0), eq. (5.2)
# =============================================================================================================
EX_Q_SAMPLE = Exercise("5.2", "q_sample")

# The first case avoids t = T, so that an off-by-one is named before index T overflows, and has B = W, so that a
# (B,) coefficient broadcasts silently along the width; t = 1 is in it, where ᾱ_{t−1} = ᾱ_0 = 1.
IMAGE_CASES = [
    ImageCase("B=8, 1×6×8, T=50, t from 1 to 49", shape=(8, 1, 6, 8), T=50, steps=(2, 10, 25, 49, 1, 17, 33, 40)),
    ImageCase("B=3, 3×4×6, T=200", shape=(3, 3, 4, 6), T=200, steps=(2, 100, 199)),
    ImageCase("t = 1 and t = T in one batch", shape=(4, 1, 5, 7), T=50, steps=(1, 50, 1, 50)),
    ImageCase("batch size 1, t = T", shape=(1, 2, 4, 4), T=20, steps=(20,)),
    ImageCase("float64, t = 1 and 7", torch.float64, shape=(2, 1, 3, 5), T=30, steps=(1, 7)),
]


def reference_q_sample(x0, t, noise, schedule):
    """Eq. (5.2): x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε, one t per image."""
    alpha_bar_t = _column(schedule.alpha_bars[t - 1], x0)  # (B, 1, 1, 1)
    return alpha_bar_t.sqrt() * x0 + (1 - alpha_bar_t).sqrt() * noise


Q_SAMPLE_MODEL = Model("eq. (5.2)", parts={"x0": Formula((_f("ᾱ", power=0.5),)),
                                           "noise": Formula((_f("ᾱ", one_minus=True, power=0.5),))},
                       labels={"x0": "the coefficient of x_0", "noise": "the coefficient of ε"},
                       swaps=(("x0", "noise"),))


@one_thread
def check_q_sample(q_sample) -> None:
    """Exercise 5.2: ``q_sample(x0, t, noise, schedule)`` returns √ᾱ_t x_0 + √(1 − ᾱ_t) ε."""
    for case in IMAGE_CASES:
        schedule = case.schedule()
        x0 = EX_Q_SAMPLE.randn(*case.shape, key=(case.label, "x0"), dtype=case.dtype).clamp(-1, 1)
        noise = EX_Q_SAMPLE.randn(*case.shape, key=(case.label, "noise"), dtype=case.dtype)
        t = case.timesteps(EX_Q_SAMPLE)
        got = run_learner(EX_Q_SAMPLE, q_sample, case, {"x0": x0, "t": t, "noise": noise, "schedule": schedule},
                          random_hint="use the `noise` argument as ε; don't draw your own (torch.randn_like).")
        context = StepContext(schedule, {"t": t})
        basis, names = {"x0": x0, "noise": noise}, {"x0": "x_0", "noise": "ε"}
        compare_images(EX_Q_SAMPLE, got, reference_q_sample(x0, t, noise, schedule), case=case, context=context,
                       name="x_t", equation="eq. (5.2)",
                       probes=[linear_probe(Q_SAMPLE_MODEL, context, basis, output="x_t", names=names)],
                       rest=_rest(Q_SAMPLE_MODEL, context, basis, got, output="x_t", names=names), inputs=basis,
                       names=names)
    EX_Q_SAMPLE.passed(f"{len(IMAGE_CASES)} cases (t = 1 and t = T, B = W, batch size 1, float64) match "
                       "x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε, one t per image.")


# =============================================================================================================
# Exercise 5.3 — the posterior q(x_{t−1} | x_t, x_0), eqs. (5.6), (5.7)
# =============================================================================================================
EX_POSTERIOR = Exercise("5.3", "posterior_mean_variance")


def reference_posterior(x0, x_t, t, schedule):
    """Eqs. (5.6), (5.7): mean (B, C, H, W) and variance (B, 1, 1, 1) of q(x_{t−1} | x_t, x_0)."""
    alpha_bars = _with_zero(schedule.alpha_bars)  # (T + 1,): index t gives ᾱ_t, ᾱ_0 = 1
    alpha_bar_t, alpha_bar_prev = _column(alpha_bars[t], x_t), _column(alpha_bars[t - 1], x_t)
    beta_t, alpha_t = _column(schedule.betas[t - 1], x_t), _column(schedule.alphas[t - 1], x_t)
    mean = (alpha_bar_prev.sqrt() * beta_t / (1 - alpha_bar_t) * x0
            + alpha_t.sqrt() * (1 - alpha_bar_prev) / (1 - alpha_bar_t) * x_t)
    return mean, (1 - alpha_bar_prev) / (1 - alpha_bar_t) * beta_t


POSTERIOR_X0 = Formula((_f("ᾱ", "t", -1, power=0.5), _f("β"), _f("ᾱ", one_minus=True, power=-1.0)))
POSTERIOR_XT = Formula((_f("α", power=0.5), _f("ᾱ", "t", -1, one_minus=True), _f("ᾱ", one_minus=True, power=-1.0)))
POSTERIOR_NOISE_FORM = Model(  # the same mean written through the noise, eq. (5.11): a learner who writes it so
    "eq. (5.11), μ̃ = (x_t − β_t/√(1 − ᾱ_t)·ε)/√α_t with ε = (x_t − √ᾱ_t·x_0)/√(1 − ᾱ_t),",
    parts={"P": Formula((_f("α", power=-0.5),)), "Q": Formula((_f("β"), _f("ᾱ", one_minus=True, power=-0.5))),
           "E": Formula((_f("ᾱ", one_minus=True, power=-0.5),)), "S": Formula((_f("ᾱ", power=0.5),))},
    labels={"P": "the factor 1/√α_t", "Q": "ε's coefficient inside the bracket, β_t/√(1 − ᾱ_t)",
            "E": "the 1/√(1 − ᾱ_t) that ε is divided by", "S": "x_0's factor √ᾱ_t inside ε"},
    combine=lambda p: {"x0": p["P"] * p["Q"] * p["E"] * p["S"], "x_t": p["P"] * (1 - p["Q"] * p["E"])},
    groups={"ε (eq. 5.2 solved for it)": ("E", "S")})
POSTERIOR_MEAN_MODEL = Model("eq. (5.6)", parts={"x0": POSTERIOR_X0, "x_t": POSTERIOR_XT},
                             labels={"x0": "the coefficient of x_0", "x_t": "the coefficient of x_t"},
                             swaps=(("x0", "x_t"),), alternatives=(POSTERIOR_NOISE_FORM,))
POSTERIOR_VARIANCE_MODEL = Model("eq. (5.7)", parts={"variance": Formula((
    _f("ᾱ", "t", -1, one_minus=True), _f("ᾱ", one_minus=True, power=-1.0), _f("β")))},
    labels={"variance": "the variance"})


def _variance_probe(context: StepContext, model: Model):
    def probe(got: torch.Tensor) -> str | None:
        flat = got.flatten(1)  # (B, entries)
        if not torch.allclose(flat, flat[:, :1].expand_as(flat), rtol=1e-6, atol=1e-12):
            return ("the variance changes inside one image; β̃_t is one number per image (from its t), shape "
                    "(B, 1, 1, 1): a (B,) tensor lined up with the wrong axis? Use .view(-1, 1, 1, 1).")
        values = {"variance": flat[:, 0].double()}
        return explain_coefficients(model, context, values, output="your variance", names={"variance": ""})
    return probe


@one_thread
def check_posterior_mean_variance(posterior_mean_variance) -> None:
    """Exercise 5.3: ``posterior_mean_variance(x0, x_t, t, schedule)`` returns (mean, variance) of q(x_{t−1}|x_t, x_0),
    the mean shaped like x_t and the variance (B, 1, 1, 1) (or shaped like x_t)."""
    for case in IMAGE_CASES:
        schedule = case.schedule()
        x0 = EX_POSTERIOR.randn(*case.shape, key=(case.label, "x0"), dtype=case.dtype).clamp(-1, 1)
        x_t = EX_POSTERIOR.randn(*case.shape, key=(case.label, "x_t"), dtype=case.dtype)
        t = case.timesteps(EX_POSTERIOR)
        got = run_learner(EX_POSTERIOR, posterior_mean_variance, case,
                          {"x0": x0, "x_t": x_t, "t": t, "schedule": schedule},
                          random_hint="the posterior's mean and variance are fixed functions of the inputs.")
        if not isinstance(got, (tuple, list)) or len(got) != 2:
            what = f"a {type(got).__name__}" + (f" of {len(got)}" if isinstance(got, (tuple, list)) else "")
            raise EX_POSTERIOR.fail(f"return a pair (mean, variance); you returned {what}.", case=case)
        mean, variance = got
        expected_mean, expected_variance = reference_posterior(x0, x_t, t, schedule)
        if isinstance(mean, torch.Tensor) and isinstance(variance, torch.Tensor) and \
                mean.shape == expected_variance.shape and variance.shape == x_t.shape and x_t.shape != mean.shape:
            raise EX_POSTERIOR.fail("you returned (variance, mean); return (mean, variance), in that order.",
                                    case=case)
        context = StepContext(schedule, {"t": t})
        basis, names = {"x0": x0, "x_t": x_t}, {"x0": "x_0", "x_t": "x_t"}
        compare_images(EX_POSTERIOR, mean, expected_mean, case=case, context=context, name="mean",
                       equation="eq. (5.6)",
                       probes=[linear_probe(POSTERIOR_MEAN_MODEL, context, basis, output="mean", names=names)],
                       rest=_rest(POSTERIOR_MEAN_MODEL, context, basis, mean, output="mean", names=names),
                       inputs=basis, names=names)
        if isinstance(variance, torch.Tensor) and variance.shape == x_t.shape:
            expected_variance = expected_variance.expand_as(x_t)
        B = x_t.shape[0]
        if isinstance(variance, torch.Tensor) and variance.numel() == B and variance.shape != expected_variance.shape \
                and B > 1:
            raise EX_POSTERIOR.fail(f"shape {tuple(variance.shape)}: one β̃_t per image, as it should be, but it "
                                    f"must broadcast against images (B, C, H, W): return it as (B, 1, 1, 1) = "
                                    f"{tuple(expected_variance.shape)}, e.g. with .view(-1, 1, 1, 1) on the (B,) "
                                    f"tensors you read from the schedule.", case=case, name="variance")

        def variance_rest(mask, variance=variance, context=context):
            sub = StepContext(context.schedule, {k: v[mask] for k, v in context.steps.items()})
            return _variance_probe(sub, POSTERIOR_VARIANCE_MODEL)(variance.detach()[mask])
        compare_images(EX_POSTERIOR, variance, expected_variance, case=case, context=context, name="variance",
                       equation="eq. (5.7)", probes=[_variance_probe(context, POSTERIOR_VARIANCE_MODEL)],
                       rest=variance_rest)
    EX_POSTERIOR.passed(f"{len(IMAGE_CASES)} cases (t = 1 and t = T, batch size 1, float64) match the posterior's "
                        "mean (eq. 5.6) and variance β̃_t (eq. 5.7).")


# =============================================================================================================
# Exercises 5.4 and 5.5 — one reverse step: DDPM's ancestral step and DDIM's deterministic step
# =============================================================================================================
EX_DDPM = Exercise("5.4", "ddpm_step")
EX_DDIM = Exercise("5.5", "ddim_step")

X0_NOISE = Formula((_f("ᾱ", one_minus=True, power=0.5),))  # ε's coefficient in x̂_0, eq. (5.12)
X0_SCALE = Formula((_f("ᾱ", power=0.5),))  # what x̂_0 divides by


X0_MODEL = Model("eq. (5.12)", parts={"x_t": Formula((_f("ᾱ", power=-0.5),)),
                                     "eps": Formula((_f("ᾱ", one_minus=True, power=0.5), _f("ᾱ", power=-0.5)), -1.0)},
                 labels={"x_t": "x̂_0's coefficient of x_t", "eps": "x̂_0's coefficient of ε_θ"})


def implied_x0_reading(equation: str, new_sample: Callable[[StepContext], dict[str, torch.Tensor]]):
    """A :attr:`Model.readings` entry for a step x_new = A·x̂_0 + B·x_t + C·ε_θ (+ σ z): when the learner's
    coefficients are that with the right A, B, C, σ but another x̂_0, recover their x̂_0 = p·x_t + q·ε_θ and name it
    (an input passed in its place, or a small change to eq. (5.12)). ``new_sample(context)`` gives A, B, C (and σ)."""
    def reading(context: StepContext, got: dict[str, torch.Tensor]) -> str | None:
        right = new_sample(context)
        if "z" in got and not _close(got["z"], right["sigma"]):
            return None
        x0 = {"x_t": (got["x_t"] - right["B"]) / right["A"], "eps": (got["eps"] - right["C"]) / right["A"]}
        zero, one = torch.zeros_like(x0["x_t"]), torch.ones_like(x0["x_t"])
        for name, code, (p, q) in (("ε_θ", "eps", (zero, one)), ("x_t", "x_t", (one, zero))):
            if _close(x0["x_t"], p, atol=1e-5) and _close(x0["eps"], q, atol=1e-5):
                return (f"the rest of {equation} is right, but the x̂_0 it uses is {name} itself: you passed `{code}` "
                        f"where x̂_0 goes. Compute x̂_0 = (x_t − √(1 − ᾱ_t)·ε_θ)/√ᾱ_t first (eq. 5.12) and use that.")
        change = matching_change(X0_MODEL, context, x0)
        if change is None:
            return None
        b = int(((x0["x_t"] - X0_MODEL.evaluate(context)["x_t"]).abs() + (x0["eps"] - X0_MODEL.evaluate(context)[
            "eps"]).abs()).argmax())
        return (f"the rest of {equation} is right, but its x̂_0 = {x0['x_t'][b].item():.4g}·x_t + "
                f"{x0['eps'][b].item():.4g}·ε_θ at {context.describe(b)}, where eq. (5.12) gives x̂_0 = "
                f"(x_t − √(1 − ᾱ_t)·ε_θ)/√ᾱ_t: {change.what}. {change.why}").replace("+ -", "− ")
    return reading


def _ddpm_combine(parts):
    """x_{t−1} = A·x̂_0 + B·x_t + σ z with x̂_0 = (x_t − c·ε)/d: coefficients of x_t, ε and z."""
    return {"x_t": parts["A"] / parts["d"] + parts["B"], "eps": -parts["A"] * parts["c"] / parts["d"],
            "z": parts["sigma"]}


# The same step written as Algorithm 2: a learner who writes it so gets the change read in its terms.
DDPM_ALGORITHM_2 = Model(  # the same step written as Algorithm 2: (x_t − β_t/√(1 − ᾱ_t) ε)/√α_t + σ_t z
    "Algorithm 2's x_{t−1} = (x_t − β_t/√(1 − ᾱ_t)·ε_θ)/√α_t + σ_t z,",
    parts={"P": Formula((_f("α", power=-0.5),)), "Q": Formula((_f("β"), _f("ᾱ", one_minus=True, power=-0.5))),
           "sigma": Formula((_f("β", power=0.5), Factor(LAST)))},
    labels={"P": "the factor 1/√α_t", "Q": "ε_θ's coefficient inside the bracket", "sigma": "σ_t"},
    combine=lambda p: {"x_t": p["P"], "eps": -p["P"] * p["Q"], "z": p["sigma"]})
DDPM_MODEL = Model(
    "eq. (5.15)", parts={"A": POSTERIOR_X0, "B": POSTERIOR_XT, "c": X0_NOISE, "d": X0_SCALE,
                         "sigma": Formula((_f("β", power=0.5), Factor(LAST)))},
    labels={"A": "μ̃'s coefficient of x̂_0 (eq. 5.6)", "B": "μ̃'s coefficient of x_t (eq. 5.6)",
            "c": "ε_θ's coefficient in x̂_0 (eq. 5.12)", "d": "what x̂_0 divides by (eq. 5.12)",
            "sigma": "the coefficient σ_t of z"},
    combine=_ddpm_combine, groups={"x̂_0 (eq. 5.12)": ("c", "d"), "μ̃ (eq. 5.6)": ("A", "B")},
    shown={"x_t": "1/√α_t", "eps": "−β_t/(√α_t·√(1 − ᾱ_t))", "z": "√β_t·[t > 1]"},
    swaps=(("A", "B"), ("c", "d")),
    advice={"μ̃ (eq. 5.6)": "If you call your posterior_mean_variance, does it pass the check of Exercise 5.3?"},
    alternatives=(DDPM_ALGORITHM_2,),
    readings=(implied_x0_reading("eq. (5.15)", lambda c: {"A": POSTERIOR_X0.value(c), "B": POSTERIOR_XT.value(c),
                                                          "C": 0.0, "sigma": Formula((_f("β", power=0.5),
                                                                                      Factor(LAST))).value(c)}),))


def _ddim_combine(parts):
    """x_{t'} = a·x̂_0 + b·ε with x̂_0 = (x_t − c·ε)/d: coefficients of x_t and ε."""
    return {"x_t": parts["a"] / parts["d"], "eps": parts["b"] - parts["a"] * parts["c"] / parts["d"]}


DDIM_MODEL = Model(
    "eq. (5.16)", parts={"c": X0_NOISE, "d": X0_SCALE, "a": Formula((_f("ᾱ", "t'", power=0.5),)),
                         "b": Formula((_f("ᾱ", "t'", one_minus=True, power=0.5),))},
    labels={"c": "ε_θ's coefficient in x̂_0 (eq. 5.12)", "d": "what x̂_0 divides by (eq. 5.12)",
            "a": "x̂_0's coefficient in the new sample", "b": "ε_θ's coefficient in the new sample (the direction)"},
    combine=_ddim_combine, groups={"x̂_0 (eq. 5.12)": ("c", "d"), "the new sample": ("a", "b")},
    shown={"x_t": "√ᾱ_{t'}/√ᾱ_t", "eps": "√(1 − ᾱ_{t'}) − √ᾱ_{t'}·√(1 − ᾱ_t)/√ᾱ_t"},
    swaps=(("a", "b"), ("c", "d")),
    readings=(implied_x0_reading("eq. (5.16)", lambda c: {"A": Formula((_f("ᾱ", "t'", power=0.5),)).value(c),
                                                          "B": 0.0, "C": Formula((_f("ᾱ", "t'", one_minus=True,
                                                                                     power=0.5),)).value(c)}),))


def reference_predict_x0(eps, x_t, alpha_bar_t):
    """x̂_0 = (x_t − √(1 − ᾱ_t) ε̂) / √ᾱ_t, eq. (5.12)."""
    return (x_t - (1 - alpha_bar_t).sqrt() * eps) / alpha_bar_t.sqrt()


def reference_ddpm_step(eps, x_t, t, schedule, noise, clip=True):
    """Eq. (5.15): x_{t−1} = μ̃_t(x_t, x̂_0) + √β_t z, with x̂_0 clipped when ``clip``; z = 0 where t = 1."""
    x0_hat = reference_predict_x0(eps, x_t, _column(schedule.alpha_bars[t - 1], x_t))
    if clip:
        x0_hat = x0_hat.clamp(-1, 1)
    mean, _ = reference_posterior(x0_hat, x_t, t, schedule)
    sigma = _column(schedule.betas[t - 1].sqrt() * (t > 1).to(x_t.dtype), x_t)
    return mean + sigma * noise


def reference_ddim_step(eps, x_t, t, t_prev, schedule, clip=True):
    """Eq. (5.16) with σ = 0: x_{t'} = √ᾱ_{t'} x̂_0 + √(1 − ᾱ_{t'}) ε̂, for any 0 ≤ t' < t (ᾱ_0 = 1)."""
    alpha_bars = _with_zero(schedule.alpha_bars)
    alpha_bar_t, alpha_bar_prev = _column(alpha_bars[t], x_t), _column(alpha_bars[t_prev], x_t)
    x0_hat = reference_predict_x0(eps, x_t, alpha_bar_t)
    if clip:
        x0_hat = x0_hat.clamp(-1, 1)
    return alpha_bar_prev.sqrt() * x0_hat + (1 - alpha_bar_prev).sqrt() * eps


def _clip_probes(got_from_x0: Callable, x0_hat: torch.Tensor, clip: bool, expected: torch.Tensor,
                 other_setting: torch.Tensor, *, output: str, noise_part: torch.Tensor | None = None,
                 rerun: Callable | None = None, inputs: dict[str, torch.Tensor] | None = None,
                 alpha_bar_t: torch.Tensor | None = None):
    """Probes for the clipping of x̂_0: the learner's x̂_0 is recovered from their output by inverting the (already
    checked) linear part, ``got_from_x0(got) → x̂_0``, and compared with x̂_0 clipped or not.

    ``rerun(inputs, clip)`` is the reference step on other inputs: the step with one input clipped in place of x̂_0
    (or as well) says which tensor the learner clipped. ``alpha_bar_t`` ((B, 1, 1, 1)) names a clip range that
    changes with t (±1/√ᾱ_t: the numerator of eq. (5.12) clipped before the division)."""
    def which_tensor(got):
        if not clip or rerun is None:
            return None
        for key, tensor in (inputs or {}).items():
            name = {"eps": "ε_θ", "x_t": "x_t"}.get(key, key)
            for both in (False, True):
                changed = {**inputs, key: tensor.clamp(-1, 1)}
                if torch.allclose(got, rerun(changed, both), rtol=1e-4, atol=1e-5):
                    what = "as well as x̂_0" if both else "instead of x̂_0"
                    return (f"you clipped {name} to [−1, 1] {what}. Only x̂_0 = (x_t − √(1 − ᾱ_t)·ε_θ)/√ᾱ_t (eq. "
                            f"5.12), the estimate of the clean image, is known to lie in [−1, 1]; {name} is noise "
                            f"or a noisy image and leaves that range by design: use it unclipped, and clip x̂_0 itself.")
        return None

    def wrong_setting(got):
        if torch.allclose(got, other_setting, rtol=1e-4, atol=1e-5):
            return ("you clipped x̂_0 although clip=False: clamp only when clip is true." if not clip else
                    "x̂_0 was not clipped: with clip=True, clamp x̂_0 to [−1, 1] (the data's range) before using it.")
        return None

    def output_clipped(got):
        if got.abs().max() <= 1 + 1e-6 and expected.abs().max() > 1.01:
            return (f"your {output} lies within [−1, 1]: you clipped the new sample {output}. Clip only x̂_0 (the "
                    f"prediction of the clean image){' and only when clip=True' if not clip else ''}; {output} is "
                    f"noisy and leaves [−1, 1] by design.")
        if noise_part is not None and (got - noise_part).abs().max() <= 1 + 1e-6 and \
                (expected - noise_part).abs().max() > 1.01:
            return (f"your {output} minus σ_t z lies within [−1, 1]: you clipped the posterior mean μ̃. Clip x̂_0 "
                    f"(eq. 5.12) before computing μ̃ from it{' and only when clip=True' if not clip else ''}.")
        return None

    def recovered_x0(got):
        if not clip:
            return None
        mine = got_from_x0(got)  # the x̂_0 the learner's output implies
        low, high = mine.min().item(), mine.max().item()
        data_range = math.isclose(low, -1, abs_tol=1e-4) and math.isclose(high, 1, abs_tol=1e-4)
        if torch.allclose(mine, x0_hat.clamp(low, high), rtol=1e-3, atol=1e-4) and not data_range:
            shown = [f"{round(v, 3) + 0.0:g}" for v in (low, high)]  # + 0.0: no "-0"
            return (f"you clipped x̂_0 to [{shown[0]}, {shown[1]}]; eq. (5.15) clips it to [−1, 1], the data's "
                    f"range: x0_hat.clamp(-1, 1).")
        ranged = _range_per_image(mine, x0_hat, alpha_bar_t)
        if ranged:
            return ranged
        inside = x0_hat.abs() <= 1
        if not torch.allclose(mine[inside], x0_hat[inside], rtol=1e-3, atol=1e-4):
            return (f"your {output} differs even where x̂_0 lies inside [−1, 1], so clipping changes nothing: with "
                    f"clip=True your code computes something else than with clip=False (whose cases passed). "
                    f"Compute x̂_0 once, clamp it when clip is true, and use the same formula afterwards.")
        wrong = ~torch.isclose(mine, x0_hat.clamp(-1, 1), rtol=1e-3, atol=1e-4)
        if not wrong.any():  # right up to rounding: compare says the rest (float32 precision, ...)
            return None
        index = tuple(int(i) for i in wrong.nonzero()[0])
        return (f"the x̂_0 your {output} implies (solving eq. (5.6) for it) is {mine[index].item():.4g} at "
                f"{list(index)}, where x̂_0 = {x0_hat[index].item():.4g} clipped to [−1, 1] is "
                f"{x0_hat.clamp(-1, 1)[index].item():.4g}: clip x̂_0 itself, with .clamp(-1, 1), right after eq. "
                f"(5.12).")
    return [wrong_setting, output_clipped, which_tensor, recovered_x0]


def _range_per_image(mine: torch.Tensor, x0_hat: torch.Tensor, alpha_bar_t: torch.Tensor | None) -> str | None:
    """When the learner's x̂_0 is x̂_0 clipped to a range of its own in each image: the range, named when it is
    ±1/√ᾱ_t (the clamp came before the division by √ᾱ_t) or ±√ᾱ_t."""
    flat_mine, flat_x0 = mine.flatten(1), x0_hat.flatten(1)  # (B, pixels)
    low, high = flat_mine.min(dim=1).values, flat_mine.max(dim=1).values  # (B,)
    if not torch.allclose(flat_mine, flat_x0.clamp(low[:, None], high[:, None]), rtol=1e-3, atol=1e-4):
        return None
    binds = (flat_x0.max(dim=1).values > high + 1e-3) & (flat_x0.min(dim=1).values < low - 1e-3)  # (B,)
    if not binds.any() or not torch.allclose(low[binds], -high[binds], rtol=1e-3, atol=1e-5) or \
            torch.allclose(high[binds], torch.ones_like(high[binds]), atol=1e-3):
        return None  # not a symmetric range, or [−1, 1] up to rounding (compare says float32 precision)
    b = int(binds.nonzero()[0])
    bounds = {}
    if alpha_bar_t is not None:
        root = alpha_bar_t.flatten().double().sqrt()  # (B,)
        bounds = {"1/√ᾱ_t: you clipped x_t − √(1 − ᾱ_t)·ε_θ to [−1, 1] before dividing it by √ᾱ_t": 1 / root,
                  "√ᾱ_t: you clipped after multiplying x̂_0 by √ᾱ_t": root}
    for words, bound in bounds.items():
        if torch.allclose(high[binds].double(), bound[binds].to(high.dtype).double(), rtol=1e-3):
            return (f"your x̂_0 is clipped to ±{high[b].item():.4g} in image {b}, a bound that changes with t: it is "
                    f"{words}. Clip x̂_0 itself, after the division of eq. (5.12): x0_hat.clamp(-1, 1).")
    return (f"your x̂_0 is clipped to ±{high[b].item():.4g} in image {b} and to other bounds in other images; eq. "
            f"(5.15) clips x̂_0 itself to [−1, 1], the same for every image: x0_hat.clamp(-1, 1).")


# The clip=False cases come first: there the step is linear in (x_t, ε_θ, z), and its coefficients are recovered;
# the clip=True cases then only have the clipping left to get wrong.
DDPM_CASES = [
    ImageCase("clip=False, B=8, 1×6×8, T=50, t from 1 to 49", shape=(8, 1, 6, 8), T=50,
              steps=(2, 10, 25, 49, 1, 17, 33, 40), clip=False),
    ImageCase("clip=False, t = 1 and t = T", shape=(3, 1, 4, 5), T=50, steps=(1, 50, 20), clip=False),
    ImageCase("clip=True, B=8, 1×6×8, T=50", shape=(8, 1, 6, 8), T=50, steps=(2, 10, 25, 49, 1, 17, 33, 40)),
    ImageCase("clip=True, B=3, 3×4×6, T=200", shape=(3, 3, 4, 6), T=200, steps=(2, 100, 199)),
    ImageCase("clip=True, t = 1 and t = T in one batch", shape=(4, 1, 5, 7), T=50, steps=(1, 50, 1, 50)),
    ImageCase("clip=True, batch size 1, t = T", shape=(1, 2, 4, 4), T=20, steps=(20,)),
    ImageCase("clip=True, float64", torch.float64, shape=(2, 1, 3, 5), T=30, steps=(1, 7)),
]


def _step_inputs(exercise: Exercise, case: ImageCase):
    """Seeded x_t, ε̂ and z; ε̂ is large enough that x̂_0 leaves [−1, 1] for part of every image."""
    x_t = exercise.randn(*case.shape, key=(case.label, "x_t"), dtype=case.dtype)
    eps = 1.5 * exercise.randn(*case.shape, key=(case.label, "eps"), dtype=case.dtype)
    noise = exercise.randn(*case.shape, key=(case.label, "z"), dtype=case.dtype)
    return x_t, eps, noise


@one_thread
def check_ddpm_step(ddpm_step) -> None:
    """Exercise 5.4: ``ddpm_step(eps, x_t, t, schedule, noise, clip=True)`` returns x_{t−1} of Algorithm 2, with x̂_0
    clipped to [−1, 1] when ``clip`` and no noise at t = 1."""
    for case in DDPM_CASES:
        schedule = case.schedule()
        x_t, eps, noise = _step_inputs(EX_DDPM, case)
        t = case.timesteps(EX_DDPM)
        got = run_learner(EX_DDPM, ddpm_step, case, {"eps": eps, "x_t": x_t, "t": t, "schedule": schedule,
                                                     "noise": noise}, clip=case.clip,
                          random_hint="use the `noise` argument as z; don't draw your own (torch.randn_like).")
        expected = reference_ddpm_step(eps, x_t, t, schedule, noise, case.clip)
        context = StepContext(schedule, {"t": t})
        coefficients = {k: _column(v.to(case.dtype), x_t) for k, v in DDPM_MODEL.evaluate(context).items()}
        x0_hat = reference_predict_x0(eps, x_t, _column(schedule.alpha_bars[t - 1], x_t))
        mean_x0 = _column(POSTERIOR_X0.value(context).to(case.dtype), x_t)
        mean_xt = _column(POSTERIOR_XT.value(context).to(case.dtype), x_t)

        def implied_x0(got):  # x_{t−1} = A x̂_0 + B x_t + σ z, solved for x̂_0 (A > 0 at every t)
            return (got - mean_xt * x_t - coefficients["z"] * noise) / mean_x0
        probes = _clip_probes(implied_x0, x0_hat, case.clip, expected,
                              reference_ddpm_step(eps, x_t, t, schedule, noise, not case.clip), output="x_{t−1}",
                              noise_part=coefficients["z"] * noise, inputs={"eps": eps, "x_t": x_t},
                              rerun=lambda given, clip: reference_ddpm_step(given["eps"], given["x_t"], t, schedule,
                                                                            noise, clip),
                              alpha_bar_t=_column(schedule.alpha_bars[t - 1], x_t))
        basis, names = {"x_t": x_t, "eps": eps, "z": noise}, {"x_t": "x_t", "eps": "ε_θ", "z": "z"}
        if not case.clip:
            probes = [probes[0], linear_probe(DDPM_MODEL, context, basis, output="x_{t−1}", names=names),
                      *probes[1:]]
        compare_images(EX_DDPM, got, expected, case=case, context=context, name="x_{t−1}", equation="eq. (5.15)",
                       probes=probes, rest=None if case.clip else _rest(DDPM_MODEL, context, basis, got,
                                                                        output="x_{t−1}", names=names),
                       inputs=basis, names=names,
                       otherwise="if you call your posterior_mean_variance, does it pass the check of Exercise 5.3?")
    EX_DDPM.passed(f"{len(DDPM_CASES)} cases (t = 1 and t = T mixed in a batch, clip on and off, batch size 1, "
                   "float64) match eq. (5.15): x̂_0 from eq. (5.12), clipped, in μ̃ of eq. (5.6), plus √β_t z for t > 1.")


DDIM_CASES = [
    ImageCase("clip=False, B=8, jumps of 5, t from 6 to 45", shape=(8, 1, 6, 8), T=50,
              steps=(6, 10, 25, 45, 7, 17, 33, 40), clip=False, jump=5),
    ImageCase("clip=False, last step t' = 0", shape=(4, 1, 5, 7), T=50, steps=(1, 5, 3, 10), clip=False),
    ImageCase("clip=False, first step t = T", shape=(3, 2, 4, 5), T=50, steps=(50, 50, 30), clip=False, jump=10),
    ImageCase("clip=True, B=8, jumps of 5", shape=(8, 1, 6, 8), T=50, steps=(6, 10, 25, 45, 7, 17, 33, 40), jump=5),
    ImageCase("clip=True, B=3, 3×4×6, jumps of 20, T=200", shape=(3, 3, 4, 6), T=200, steps=(21, 100, 199), jump=20),
    ImageCase("clip=True, last step t' = 0", shape=(4, 1, 5, 7), T=50, steps=(1, 5, 3, 10)),
    ImageCase("clip=True, batch size 1, t = T", shape=(1, 2, 4, 4), T=20, steps=(20,), jump=4),
    ImageCase("clip=True, float64, single steps t' = t − 1", torch.float64, shape=(2, 1, 3, 5), T=30, steps=(2, 7),
              jump=1),
]


@one_thread
def check_ddim_step(ddim_step) -> None:
    """Exercise 5.5: ``ddim_step(eps, x_t, t, t_prev, schedule, clip=True)`` returns DDIM's deterministic x_{t_prev},
    eq. (5.16) with σ = 0, for any earlier step 0 ≤ t_prev < t (ᾱ_0 = 1)."""
    for case in DDIM_CASES:
        schedule = case.schedule()
        x_t, eps, _ = _step_inputs(EX_DDIM, case)
        lowest = 1 if case.jump is None else case.jump + 1  # random steps must allow the jump
        t = case.timesteps(EX_DDIM, lowest)
        t_prev = torch.zeros_like(t) if case.jump is None else t - case.jump
        got = run_learner(EX_DDIM, ddim_step, case, {"eps": eps, "x_t": x_t, "t": t, "t_prev": t_prev,
                                                     "schedule": schedule}, clip=case.clip,
                          random_hint="DDIM with σ = 0 is deterministic: add no random noise (no torch.randn).")
        expected = reference_ddim_step(eps, x_t, t, t_prev, schedule, case.clip)
        context = StepContext(schedule, {"t": t, "t'": t_prev})
        parts = {k: _column(f.value(context).to(case.dtype), x_t) for k, f in DDIM_MODEL.parts.items()}
        x0_hat = reference_predict_x0(eps, x_t, _column(_with_zero(schedule.alpha_bars)[t], x_t))

        def implied_x0(got):  # x_{t'} = a x̂_0 + b ε, solved for x̂_0 (a = √ᾱ_{t'} > 0)
            return (got - parts["b"] * eps) / parts["a"]
        probes = _clip_probes(implied_x0, x0_hat, case.clip, expected,
                              reference_ddim_step(eps, x_t, t, t_prev, schedule, not case.clip), output="x_{t'}",
                              inputs={"eps": eps, "x_t": x_t},
                              rerun=lambda given, clip: reference_ddim_step(given["eps"], given["x_t"], t, t_prev,
                                                                            schedule, clip),
                              alpha_bar_t=_column(_with_zero(schedule.alpha_bars)[t], x_t))
        basis, names = {"x_t": x_t, "eps": eps}, {"x_t": "x_t", "eps": "ε_θ"}
        if not case.clip:
            probes.insert(1, linear_probe(DDIM_MODEL, context, basis, output="x_{t'}", names=names))
        alpha_bar_t = _column(_with_zero(schedule.alpha_bars)[t], x_t)
        clipped = x0_hat.clamp(-1, 1)
        recomputed = parts["a"] * clipped + parts["b"] * (x_t - alpha_bar_t.sqrt() * clipped) / (1 - alpha_bar_t).sqrt()
        mistakes = [Mistake(recomputed, "you recomputed ε from the clipped x̂_0, ε = (x_t − √ᾱ_t x̂_0)/√(1 − ᾱ_t) (as "
                                        "diffusers' DDIM does); this exercise uses the network's ε_θ itself as the "
                                        "direction in eq. (5.16): √(1 − ᾱ_{t'})·eps.")] if case.clip else []
        compare_images(EX_DDIM, got, expected, case=case, context=context, name="x_{t'}",
                       equation="eq. (5.16) with σ = 0", probes=probes, mistakes=mistakes,
                       rest=None if case.clip else _rest(DDIM_MODEL, context, basis, got, output="x_{t'}",
                                                         names=names), inputs=basis, names=names)
    EX_DDIM.passed(f"{len(DDIM_CASES)} cases (jumps of 1 to 20 steps, t = T, t' = 0, clip on and off, float64) match "
                   "DDIM's deterministic update, eq. (5.16) with σ = 0.")


# =============================================================================================================
# Exercise 5.6 — sinusoidal time embedding, eq. (5.17)
# =============================================================================================================
EX_EMBEDDING = Exercise("5.6", "sinusoidal_embedding")


@dataclass(frozen=True)
class EmbeddingCase(Case):
    steps: tuple = (1,)
    dim: int = 16

    @property
    def sizes(self) -> dict[str, int]:
        named = {"B": len(self.steps), "dim": self.dim, "dim/2": self.dim // 2}
        return {name: size for name, size in named.items() if size > 1}


def reference_sinusoidal_embedding(t, dim):
    """Eq. (5.17): [sin(t ω_0), …, sin(t ω_{d/2−1}), cos(t ω_0), …] with ω_i = 10000^(−i/(d/2)).  (B, dim) float32"""
    half = dim // 2
    frequencies = 10_000.0 ** (-torch.arange(half, dtype=torch.float64) / half)  # (dim/2,)
    angles = t.to(torch.float64)[:, None] * frequencies[None, :]  # (B, dim/2)
    return torch.cat([angles.sin(), angles.cos()], dim=-1).float()


EMBEDDING_CASES = [
    EmbeddingCase("t = 1, 2, 3, 5, 8, 13, 100, 250, 999, 1000; dim 16", steps=(1, 2, 3, 5, 8, 13, 100, 250, 999, 1000),
                  dim=16),
    EmbeddingCase("batch size 1, t = 1, dim 8", steps=(1,), dim=8),
    EmbeddingCase("t in 1..200, dim 64", steps=(1, 2, 3, 4, 7, 19, 60, 123, 171, 200), dim=64),
    EmbeddingCase("t = 1000 and 500, dim 4", steps=(1000, 500), dim=4),
]


def identify_sinusoid(values: torch.Tensor, t: torch.Tensor) -> tuple[str, float] | None:
    """("sin" | "cos", ω) with values ≈ sin(ω t) or cos(ω t), 0 ≤ ω ≤ π, or None.

    ω is unwrapped from the smallest t upward: each larger t refines it, choosing the branch of arcsin/arccos
    nearest the angle the current estimate predicts (t sorted, the first one small).
    """
    order = torch.argsort(t)
    t, values = t[order].double(), values[order].double().clamp(-1, 1)
    best = None
    for kind in ("sin", "cos"):
        function = torch.sin if kind == "sin" else torch.cos
        first = values[0].item()
        base = math.asin(first) if kind == "sin" else math.acos(first)
        starts = [base, math.pi - base] if kind == "sin" else [base]
        for start in starts:
            omega = start / t[0].item()
            for step, value in zip(t[1:].tolist(), values[1:].tolist()):
                principal = math.asin(value) if kind == "sin" else math.acos(value)
                branches = [principal, math.pi - principal] if kind == "sin" else [principal, -principal]
                predicted = omega * step
                angle = min((b + 2 * math.pi * round((predicted - b) / (2 * math.pi)) for b in branches),
                            key=lambda a: abs(a - predicted))
                omega = angle / step
            if not -1e-9 <= omega <= math.pi + 1e-6:
                continue
            error = (function(omega * t) - values).abs().max().item()
            if best is None or error < best[2]:
                best = (kind, max(omega, 0.0), error)
    return (best[0], best[1]) if best and best[2] < 2e-3 else None


def _embedding_probes(t: torch.Tensor, dim: int):
    half = dim // 2
    frequencies = 10_000.0 ** (-torch.arange(half, dtype=torch.float64) / half)  # (dim/2,)

    def bounded(got):
        top = got.abs().max().item()
        if top <= 1 + 1e-4:
            return None
        angles = t.double()[:, None] * frequencies[None, :]
        if torch.allclose(got.double(), torch.cat([angles, angles], -1), rtol=1e-4):
            return "you returned the angles t·ω_i themselves: apply sin to the first half and cos to the second."
        return (f"your embedding reaches {top:.4g}; sines and cosines lie in [−1, 1] (eq. 5.17): apply sin and "
                f"cos to the angles t·ω_i.")

    def uses_t(got):
        if len(t) > 1 and torch.allclose(got, got[:1].expand_as(got)):
            return "every t gets the same embedding: the angles are t·ω_i, one row per image's t."
        return None

    def embedded_steps(got):
        """The step t' each row embeds, read from its sin/cos pairs with eq. (5.17)'s frequencies: t + 1, t/1000."""
        mine = recover_embedded_steps(got, frequencies)
        if mine is None or torch.allclose(mine, t.double(), atol=1e-2):
            return None
        shown = ", ".join(f"{a:.4g}" for a in mine[:4].tolist())
        head = (f"your rows are eq. (5.17)'s embedding of other steps: t' = {shown}, … for t = "
                f"{', '.join(map(str, t[:4].tolist()))}, …")
        shift = (mine - t.double()).mean().item()
        if torch.allclose(mine - t.double(), torch.full_like(mine, round(shift)), atol=1e-2):
            return (f"{head}: you embedded t {'+' if shift > 0 else '−'} {abs(round(shift))} instead of t (off by "
                    f"{abs(round(shift))}). The angles are t·ω_i with the step t itself (1..T), as the network sees "
                    f"it in sampling.")
        if len(t) > 2 and (t != t[0]).any():  # t' = a·t + b with b ≠ 0 (a scale alone is read as frequencies)
            fit = fit_linear(mine, {"t": t.double(), "1": torch.ones_like(mine)})
            a, b = fit.coefficients["t"], fit.coefficients["1"]
            if fit.exact and abs(b) > 1e-2:
                return (f"{head}: you embedded {a:.4g}·t {'+' if b > 0 else '−'} {abs(b):.4g}, not t: the angles are "
                        f"t·ω_i with the integer step t itself.")
        return None

    def columns(got):
        if len(t) < 4:
            return None
        found = [identify_sinusoid(got[:, j], t) for j in range(dim)]  # per column: (kind, ω) or None
        unknown = [j for j, f in enumerate(found) if f is None]
        flipped = [j for j in unknown if identify_sinusoid(-got[:, j], t) is not None]
        if flipped and len(flipped) == len(unknown):
            shown = ", ".join(map(str, flipped[:6])) + (", …" if len(flipped) > 6 else "")
            several = len(flipped) > 1
            return (f"column{'s' if several else ''} {shown} of your embedding {'are' if several else 'is'} "
                    f"−sin(t·ω) or −cos(t·ω): a sign is flipped; eq. (5.17) has +sin(t ω_i) and +cos(t ω_i).")
        if len(unknown) == dim:
            return ("none of your columns is sin(t·ω) or cos(t·ω) of its row's t: is each row computed from its own "
                    "t? A cat or reshape along the wrong axis mixes the images' rows — the angles are a (B, d/2) "
                    "table, t[:, None]·ω[None, :], and sines and cosines are joined along the last axis, dim=-1.")
        if unknown:
            shown = ", ".join(map(str, unknown[:6])) + (", …" if len(unknown) > 6 else "")
            several = len(unknown) > 1
            return (f"column{'s' if several else ''} {shown} of your embedding {'are' if several else 'is'} "
                    f"not sin(t·ω) or cos(t·ω) for any frequency ω up to π. Eq. (5.17)'s frequencies fall from "
                    f"ω_0 = 1 toward 1/10000: do yours grow (the exponent of ω_i = 10000^(−i/(d/2)) is negative), "
                    f"or is the angle not t·ω_i?")
        kinds = [kind for kind, _ in found]
        expected_kinds = ["sin"] * half + ["cos"] * half
        if kinds != expected_kinds:
            if kinds == ["cos"] * half + ["sin"] * half:
                return ("cosines first: the convention here (DDPM's code) is the sines in the first half, then the "
                        "cosines: torch.cat([sin, cos], dim=-1).")
            if kinds == ["sin", "cos"] * half:
                return ("you interleaved sin and cos (sin, cos, sin, cos, …, as in the Transformer paper's table); "
                        "here they are concatenated: all sines, then all cosines.")
            wrong = [j for j, (k, e) in enumerate(zip(kinds, expected_kinds)) if k != e]
            plural = {"sin": "sines", "cos": "cosines"}
            return (f"columns {', '.join(map(str, wrong[:6]))} hold {plural[kinds[wrong[0]]]} where eq. (5.17) has "
                    f"{plural[expected_kinds[wrong[0]]]}: the first d/2 columns are sin(t ω_i), the last d/2 "
                    f"cos(t ω_i).")
        omega_sin = torch.tensor([w for _, w in found[:half]], dtype=torch.float64)
        omega_cos = torch.tensor([w for _, w in found[half:]], dtype=torch.float64)
        if not torch.allclose(omega_sin, omega_cos, rtol=1e-2, atol=1e-5):
            return ("the sines and the cosines use different frequencies: column i and column d/2 + i share ω_i "
                    "(eq. 5.17).")
        return _frequency_problem(omega_sin, frequencies, half)
    return [bounded, uses_t, embedded_steps, columns]


def recover_embedded_steps(got: torch.Tensor, frequencies: torch.Tensor) -> torch.Tensor | None:
    """(B,) the step t' with row b = [sin(t' ω_i), cos(t' ω_i)] for eq. (5.17)'s ω, or None when the rows are not
    such embeddings. t' comes from the slowest frequency's angle (unique while t'·ω < 2π), then is refined with
    each faster one, choosing the turn nearest the estimate."""
    half = len(frequencies)
    rows = got.detach().double()
    if rows.dim() != 2 or rows.shape[1] != 2 * half or not torch.isfinite(rows).all():
        return None
    sin, cos = rows[:, :half], rows[:, half:]  # (B, d/2)
    if not torch.allclose(sin ** 2 + cos ** 2, torch.ones_like(sin), atol=1e-3):
        return None
    angles = torch.atan2(sin, cos) % (2 * math.pi)  # (B, d/2): t'·ω_i modulo 2π
    estimate = angles[:, -1] / frequencies[-1]  # the slowest frequency
    for i in range(half - 2, -1, -1):
        turns = torch.round((estimate * frequencies[i] - angles[:, i]) / (2 * math.pi))
        estimate = (angles[:, i] + 2 * math.pi * turns) / frequencies[i]
    rebuilt = estimate[:, None] * frequencies[None, :]
    if not (torch.allclose(rebuilt.sin(), sin, atol=2e-3) and torch.allclose(rebuilt.cos(), cos, atol=2e-3)):
        return None
    return estimate


def _frequency_problem(mine: torch.Tensor, want: torch.Tensor, half: int) -> str | None:
    """Name what is off in recovered frequencies ω_0..ω_{d/2−1} (each ± 1%): order, first value, ratio."""
    if torch.allclose(mine, want, rtol=1e-2, atol=1e-6):
        return None
    shown = ", ".join(f"{w:.3g}" for w in mine[:4].tolist())
    expected = ", ".join(f"{w:.3g}" for w in want[:4].tolist())
    head = f"your frequencies are ω = {shown}, … where eq. (5.17) has {expected}, …"
    if torch.allclose(mine, want.flip(0), rtol=1e-2, atol=1e-6):
        return f"{head}: the frequencies are in reverse order; ω_0 = 1 comes first, falling to ≈ 1/10000."
    factor = (mine / want).mean().item()
    if half > 1 and torch.allclose(mine, factor * want, rtol=1e-2, atol=1e-7) and \
            math.isclose(factor, want[1].item(), rel_tol=1e-2):
        return (f"{head}: each of your frequencies is the next one of eq. (5.17), ω_{{i+1}}: does i start at 1? "
                f"ω_0 = 10000^0 = 1 (i runs from 0 to d/2 − 1, torch.arange(d/2)).")
    if torch.allclose(mine, factor * want, rtol=1e-2, atol=1e-7) and math.isclose(factor, math.pi / 180, rel_tol=1e-2):
        return (f"{head}: every frequency is π/180 × eq. (5.17)'s: the angles were taken as degrees; torch.sin and "
                f"torch.cos take radians, so use t·ω_i as it is.")
    if torch.allclose(mine, factor * want, rtol=1e-2, atol=1e-7):
        return (f"{head}: every frequency is {factor:.4g} × eq. (5.17)'s, so the angle is scaled: is t divided by "
                f"something (t/T?) or multiplied by a constant? The angle is t·ω_i with the integer t itself.")
    aliased = _aliased_factor(mine, want)
    if aliased is not None:
        named = next((f" = {name}" for name, value in (("2π", 2 * math.pi), ("π", math.pi), ("10", 10.0),
                                                        ("100", 100.0)) if math.isclose(aliased, value, rel_tol=1e-3)),
                     "")
        return (f"{head}: every frequency is {aliased:.4g}{named} × eq. (5.17)'s (the fast ones beyond π show up "
                f"folded back, as sampled sines do), so the angle is scaled: eq. (5.17)'s angle is t·ω_i, with no "
                f"extra factor (not the 2π·t·ω of Fourier features).")
    positive = mine > 1e-7
    if positive.sum() >= 2:
        logs = mine[positive].log()
        i = torch.arange(half, dtype=torch.float64)[positive]
        slope = ((logs[1:] - logs[:1]) / (i[1:] - i[:1])).mean().item()
        geometric = torch.allclose(logs, logs[0] + slope * (i - i[0]), atol=2e-2)
        if geometric and slope > 0:
            return f"{head}: your frequencies grow; ω_i = 10000^(−i/(d/2)) has a *negative* exponent."
        if geometric and not math.isclose(mine[0].item(), 1.0, rel_tol=1e-2):
            first = mine[0].item()
            named = " = ω_1 of eq. (5.17): does i start at 1" if math.isclose(first, want[1].item(), rel_tol=1e-2) \
                else ""
            return (f"{head}: your first frequency is {first:.4g}{named}; ω_0 = 10000^0 = 1 (i runs from 0 to "
                    f"d/2 − 1).")
        if geometric and abs(slope) < 1e-9:  # every frequency the same, e.g. an integer division i // (d/2) = 0
            return (f"{head}: all your frequencies are {mine[0].item():.4g}: the exponent −i/(d/2) must vary with i "
                    f"(is it an integer division, i // (d/2), which is 0 for every i?).")
        if geometric:
            denominator = math.log(10_000) / -slope
            for words, value in ((f"d/2 − 1 = {half - 1} (a variant in DDPM's code)", half - 1),
                                 (f"d = {2 * half}", 2 * half), ("1", 1),
                                 (f"d/4 = {half / 2:g}: the exponent is 2i/(d/2), as when i runs over 0, 2, 4, … "
                                  f"(torch.arange(0, d, 2)) but is still divided by d/2 — divide by d then", half / 2),
                                  (f"d/2 + 1 = {half + 1}", half + 1)):
                if math.isclose(denominator, value, rel_tol=2e-2) and value != half:
                    return (f"{head}: the exponent is −i/(d/2); you divided i by {words}, so the frequencies fall "
                            f"{'too fast' if denominator < half else 'too slowly'} (ω_{{d/2−1}} should be "
                            f"{want[-1].item():.3g}).")
            rounded = round(denominator)
            if rounded in (8, 16, 32, 64, 128, 256, 512) and math.isclose(denominator, rounded, rel_tol=2e-2):
                return (f"{head}: the exponent is −i/{rounded}, a fixed number, where eq. (5.17) has −i/(d/2) = "
                        f"−i/{half} here: is d/2 hard-coded ({rounded} = d/2 for d = {2 * rounded})? Use the dim "
                        f"argument, half = dim // 2.")
            base = math.exp(-slope * half)
            return (f"{head}: your frequencies fall geometrically as base^(−i/(d/2)) with base {base:.4g}; eq. "
                    f"(5.17)'s base is 10000, not {base:.4g}.")
    steps = mine.diff()
    if half > 2 and torch.allclose(steps, steps.mean().expand_as(steps), rtol=1e-2, atol=1e-6):
        return (f"{head}: your frequencies fall in equal steps of {-steps.mean().item():.3g} (linearly, as "
                f"torch.linspace) from {mine[0].item():.3g} to {mine[-1].item():.3g}; eq. (5.17)'s fall "
                f"geometrically, by equal ratios: ω_i = 10000^(−i/(d/2)), i.e. "
                f"torch.exp(-math.log(10000) * torch.arange(d/2) / (d/2)).")
    return f"{head}: ω_i = 10000^(−i/(d/2)), i = 0 … d/2 − 1, falls geometrically from 1 toward 1/10000."


def _embedding_shape_problem(sinusoidal_embedding, got, t: torch.Tensor, case: EmbeddingCase) -> str | None:
    """A (B, dim) embedding of another shape, read: one half missing, sines and cosines stacked along the batch axis,
    or a size that does not follow ``dim`` (the function is called again with another dim to tell)."""
    if not isinstance(got, torch.Tensor) or got.dim() != 2:
        return None
    B, dim = len(t), case.dim
    rows, width = got.shape
    if (rows, width) == (B, dim):
        return None
    if (rows, width) == (2 * B, dim // 2):
        return (f"shape {tuple(got.shape)} = (2B, d/2): the sines and cosines were joined along the batch axis, "
                f"dim=0; join them along the last axis, torch.cat([sin, cos], dim=-1), for (B, d) = ({B}, {dim}).")
    if (rows, width) in ((dim // 2, 2 * B), (dim, B)) and B != dim // 2:
        return (f"shape {tuple(got.shape)}: your angle table has the frequencies on the rows and the steps on the "
                f"columns, (d/2, B) — t[None, :]·ω[:, None]. Make it (B, d/2) with t[:, None] * ω[None, :], then "
                f"join sines and cosines along the last axis for (B, d) = ({B}, {dim}).")
    if rows == B and width == dim // 2:
        return (f"shape {tuple(got.shape)} = (B, d/2): only one half; eq. (5.17) has d/2 sines and then d/2 "
                f"cosines, torch.cat([sin, cos], dim=-1), for (B, d) = ({B}, {dim}).")
    if rows == B and width == 2 * dim:
        return (f"shape {tuple(got.shape)} = (B, 2d): d frequencies, each with a sine and a cosine; eq. (5.17) has "
                f"d/2 frequencies (i = 0 … d/2 − 1), so that sines and cosines together fill d columns.")
    if rows == B:
        other = EX_EMBEDDING.call(sinusoidal_embedding, t, dim + 4, case=case)
        if isinstance(other, torch.Tensor) and other.dim() == 2 and other.shape[1] == width:
            return (f"shape {tuple(got.shape)}: {width} columns for dim = {dim}, and {width} again for dim = "
                    f"{dim + 4}: a size is hard-coded ({width}). Use the dim argument: half = dim // 2 frequencies, "
                    f"(B, dim) in all.")
    return None


@one_thread
def _aliased_factor(mine: torch.Tensor, want: torch.Tensor) -> float | None:
    """The c > 1 with mine ≈ c·want once frequencies above π are folded back into [0, π] (the recovered ω of a sine
    sampled at integer t is only known up to 2π and its sign), read from the slowest frequencies, which are not
    folded; None if there is no such c."""
    if len(want) < 4:
        return None
    slow = len(want) // 2  # the slowest half of the frequencies: folded only if c·ω goes past π
    c = (mine[-slow:] / want[-slow:]).median().item()
    if c <= 1.01:
        return None
    scaled = c * want
    folded = (scaled - 2 * math.pi * torch.round(scaled / (2 * math.pi))).abs()  # into [0, π]
    return c if torch.allclose(mine, folded, rtol=1e-2, atol=1e-4) else None


@one_thread
def check_sinusoidal_embedding(sinusoidal_embedding) -> None:
    """Exercise 5.6: ``sinusoidal_embedding(t, dim)`` returns a (B, dim) float32 tensor, sines then cosines."""
    for case in EMBEDDING_CASES:
        t = torch.tensor(case.steps)
        got = run_learner(EX_EMBEDDING, sinusoidal_embedding, case, {"t": t, "dim": case.dim},
                          random_hint="the embedding is a fixed function of t (no random numbers).")
        problem = _embedding_shape_problem(sinusoidal_embedding, got, t, case)
        if problem:
            raise EX_EMBEDDING.fail(problem, case=case, name="embedding")
        EX_EMBEDDING.compare(got, reference_sinusoidal_embedding(t, case.dim), case=case, name="embedding",
                             equation="eq. (5.17)", probes=_embedding_probes(t, case.dim), atol=3e-4, rtol=1e-4,
                             axes=("B", "column"))
    EX_EMBEDDING.passed(f"{len(EMBEDDING_CASES)} cases (t from 1 to 1000, batch size 1, dim 4 to 64) match "
                        "[sin(t ω_i), cos(t ω_i)] with ω_i = 10000^(−i/(d/2)).")


# =============================================================================================================
# Helpers the chapter uses as references (before the learner's versions are checked)
# =============================================================================================================
def gaussian_kl(mean_1, variance_1, mean_2, variance_2):
    """KL(N(μ₁, σ₁²) ‖ N(μ₂, σ₂²)) per coordinate, eq. (5.9)."""
    return 0.5 * (torch.log(variance_2 / variance_1) + (variance_1 + (mean_1 - mean_2) ** 2) / variance_2 - 1)


__all__ = ["Schedule", "check_schedules", "check_q_sample", "check_posterior_mean_variance", "check_ddpm_step",
           "check_ddim_step", "check_sinusoidal_embedding", "reference_linear_schedule", "reference_cosine_schedule",
           "reference_q_sample", "reference_posterior", "reference_ddpm_step", "reference_ddim_step",
           "reference_sinusoidal_embedding", "gaussian_kl", "CheckFailure", "LearnerError"]
