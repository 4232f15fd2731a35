"""Coefficients of the chapter's equations written as formulas of schedule quantities (√ᾱ_{t−1}·β_t/(1 − ᾱ_t)),
evaluated per image of a batch, and the model of an exercise's output coefficients built from them."""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Callable, Iterable

import torch

from utils.checks.diffusion.schedule import Schedule, with_zero

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


@dataclass(frozen=True)
class Unbracketed:
    """``first − q·second``: a coefficient ``first·(1 − q)·second`` written without the bracket around 1 − q, as
    ``a * 1 - q * b`` (or ``1 - q * b``, ``a / 1 - q * b``), which operator precedence reads as a − q·b."""

    first: Formula  # the factors written before 1 − q (none: the 1 itself)
    second: Formula  # q and the factors written after it
    bracketed: Factor  # the (1 − q) the code lost its parentheses around

    def value(self, context: "StepContext") -> torch.Tensor:
        return self.first.value(context) - self.second.value(context)

    def __str__(self) -> str:
        return f"{self.first} − {self.second}"


def _f(symbol: str, step: str = "t", offset: int = 0, *, one_minus: bool = False, power: float = 1.0) -> Factor:
    return Factor(symbol, Step(step, offset), one_minus, power)


@dataclass
class StepContext:
    """The schedule (float64) and the steps of one batch: ``steps["t"]`` and, for DDIM, ``steps["t'"]``, (B,)."""

    schedule: Schedule
    steps: dict[str, torch.Tensor]
    free: torch.Tensor | None = None  # (B,): the value of a FREE factor at each image
    # tables the learner's code can reach besides the argument (elsewhere.learner_sources): the notebook's globals
    sources: Iterable = ()

    def __post_init__(self):
        self.schedule = self.schedule.to(torch.float64)
        alpha_bars = with_zero(self.schedule.alpha_bars)  # (T + 1,), ᾱ_0 = 1
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

    def quantity_at(self, symbol: str, steps: torch.Tensor) -> torch.Tensor | None:
        """(B,) float64: the argument's ``symbol`` at the given steps (ᾱ_0 = 1); None when a step is outside it."""
        table = self.tables[symbol]
        lowest = 0 if symbol == "ᾱ" else 1
        if bool((steps < lowest).any() or (steps > len(table)).any()):
            return None
        return with_zero(table)[steps] if symbol == "ᾱ" else table[steps - 1]

    def subset(self, mask: torch.Tensor) -> "StepContext":
        """The same schedule and sources for the images ``mask`` keeps."""
        return StepContext(self.schedule, {name: v[mask] for name, v in self.steps.items()}, sources=self.sources)

    def describe(self, index: int) -> str:
        """"t = 10" (DDIM: "t = 10, t' = 5") for image ``index``."""
        return ", ".join(f"{name} = {int(value[index])}" for name, value in self.steps.items())


def _identity(parts: dict) -> dict:
    return parts


@dataclass(frozen=True)
class Bracket:
    """A factor the equation applies to a whole sum of terms, as (x_t − √(1 − ᾱ_t)·ε_θ)/√ᾱ_t divides both terms by
    √ᾱ_t: a learner whose code applies it to some of the terms only (operator precedence) gets it said so."""

    factor: Formula  # its value per image: 1/√ᾱ_t
    terms: tuple[str, ...]  # the model's outputs (the inputs' coefficients) it multiplies
    written: str  # the equation as written with the bracket: "x̂_0 = (x_t − √(1 − ᾱ_t)·ε_θ)/√ᾱ_t"
    applies: str  # what the factor does, in words: "the division by √ᾱ_t"
    code: str  # the bracket as code, parenthesised: "(x_t - (1 - alpha_bar_t).sqrt() * eps) / alpha_bar_t.sqrt()"


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
    brackets: tuple[Bracket, ...] = ()  # factors that cover a whole sum of terms (see Bracket)
    # intermediates a learner may return in place of the output, each as the coefficients of the inputs: context →
    # {"x̂_0 (eq. 5.12)": {"x_t": ..., "eps": ...}} (each input alone is always one)
    intermediates: Callable[[StepContext], dict[str, dict[str, torch.Tensor]]] | None = None
    # the output as a sum of terms, coefficient × tensor: context → [("√β_t·[t > 1]", (B,) values, "z"), ...], with
    # the tensors a term may hold as the inputs' coefficients: context → {"x̂_0": {"x_t": ..., "eps": ...}, ...}.
    # None: each part multiplies its own input (q_sample, the posterior mean)
    terms: Callable[[StepContext], list[tuple[str, torch.Tensor, str]]] | None = None
    tensors: Callable[[StepContext], dict[str, dict[str, torch.Tensor]]] | None = None
    # values a part takes in known variants of the equation, by their description: context → {words: (B,) values}
    known: Callable[[StepContext], dict[str, torch.Tensor]] | None = None

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
