"""What the reverse steps (Exercises 5.4 and 5.5) share: x̂_0 of eq. (5.12), the models of DDPM's and DDIM's
coefficients, and their inputs."""
from __future__ import annotations

from typing import Callable

import torch

from utils.checks.core import Exercise
from utils.checks.diffusion.formulas import LAST, Bracket, Factor, Formula, Model, Step, StepContext, _f
from utils.checks.diffusion.images import ImageCase
from utils.checks.diffusion.posterior import POSTERIOR_X0, POSTERIOR_XT
from utils.checks.diffusion.readings import reason
from utils.checks.diffusion.schedule import close

X0_NOISE = Formula((_f("ᾱ", one_minus=True, power=0.5),))  # ε's coefficient in x̂_0, eq. (5.12)


X0_SCALE = Formula((_f("ᾱ", power=0.5),))  # what x̂_0 divides by


X0_MODEL = Model("eq. (5.12)", parts={"x_t": Formula((_f("ᾱ", power=-0.5),)),
                                     "eps": Formula((_f("ᾱ", one_minus=True, power=0.5), _f("ᾱ", power=-0.5)), -1.0)},
                 labels={"x_t": "x̂_0's coefficient of x_t", "eps": "x̂_0's coefficient of ε_θ"},
                 brackets=(Bracket(Formula((_f("ᾱ", power=-0.5),)), ("x_t", "eps"),
                                   "x̂_0 = (x_t − √(1 − ᾱ_t)·ε_θ)/√ᾱ_t (eq. 5.12)", "the division by √ᾱ_t",
                                   "(x_t - (1 - alpha_bar_t).sqrt() * eps) / alpha_bar_t.sqrt()"),))


def x0_hat_as_output(then: str, others: tuple[str, ...] = ()):
    """:attr:`Model.intermediates` of a step: x̂_0 of eq. (5.12) returned in place of the new sample (``then`` says
    what the step goes on to compute from it; ``others`` are the step's other inputs, with coefficient 0)."""
    def intermediates(context: StepContext) -> dict[str, dict[str, torch.Tensor]]:
        coefficients = X0_MODEL.evaluate(context)
        name = (f"x̂_0 = (x_t − √(1 − ᾱ_t)·ε_θ)/√ᾱ_t (eq. 5.12), the estimate of the clean image — that is not the "
                f"step's result yet: go on to {then}, and return that")
        return {name: {**coefficients, **{k: torch.zeros_like(coefficients["x_t"]) for k in others}}}
    return intermediates


def implied_x0_reading(equation: str, new_sample: Callable[[StepContext], dict[str, torch.Tensor]]):
    """A :attr:`Model.readings` entry for a step x_new = A·x̂_0 + B·x_t + C·ε_θ (+ σ z): when the learner's
    coefficients are that with the right A, B, C, σ but another x̂_0, recover their x̂_0 = p·x_t + q·ε_θ and read it
    as eq. (5.12) is read (a bracket, a change, two inputs exchanged). ``new_sample(context)`` gives A, B, C (and σ)."""
    def reading(context: StepContext, got: dict[str, torch.Tensor]) -> str | None:
        right = new_sample(context)
        if "z" in got and not close(got["z"], right["sigma"]):
            return None
        # (an input passed where x̂_0 goes is read before, by the step's terms: see terms.substituted)
        x0 = {"x_t": (got["x_t"] - right["B"]) / right["A"], "eps": (got["eps"] - right["C"]) / right["A"]}
        found = reason(X0_MODEL, context, x0, {"x_t": "x_t", "eps": "ε_θ"})
        if found is None:
            return None
        b = int(((x0["x_t"] - X0_MODEL.evaluate(context)["x_t"]).abs() + (x0["eps"] - X0_MODEL.evaluate(context)[
            "eps"]).abs()).argmax())
        return (f"the rest of {equation} is right, but its x̂_0 = {x0['x_t'][b].item():.4g}·x_t + "
                f"{x0['eps'][b].item():.4g}·ε_θ at {context.describe(b)}, where eq. (5.12) gives x̂_0 = "
                f"(x_t − √(1 − ᾱ_t)·ε_θ)/√ᾱ_t: {found}").replace("+ -", "− ")
    return reading


def _x0_and_inputs(context: StepContext, inputs: tuple[str, ...]) -> dict[str, dict[str, torch.Tensor]]:
    """The tensors a step's term can hold, as the inputs' coefficients: x̂_0 (eq. 5.12) and each input alone."""
    x0 = X0_MODEL.evaluate(context)
    one = torch.ones_like(x0["x_t"])
    symbols = {"x_t": "x_t", "eps": "ε_θ", "z": "z"}
    return {"x̂_0": x0, **{symbols[k]: {k: one} for k in inputs}}


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
    brackets=(Bracket(Formula((_f("α", power=-0.5),)), ("x_t", "eps"),
                      "Algorithm 2's x_{t−1} = (x_t − β_t/√(1 − ᾱ_t)·ε_θ)/√α_t + σ_t z", "the division by √α_t",
                      "(x_t - beta_t / (1 - alpha_bar_t).sqrt() * eps) / alpha_t.sqrt()"),),
    intermediates=x0_hat_as_output("x_{t−1} = μ̃_t(x_t, x̂_0) + σ_t·z (eq. 5.15)", ("z",)),
    terms=lambda c: [(str(POSTERIOR_X0), POSTERIOR_X0.value(c), "x̂_0"),
                     (str(POSTERIOR_XT), POSTERIOR_XT.value(c), "x_t"),
                     ("√β_t·[t > 1]", Formula((_f("β", power=0.5), Factor(LAST))).value(c), "z")],
    tensors=lambda c: _x0_and_inputs(c, ("x_t", "eps", "z")),
    readings=(implied_x0_reading("eq. (5.15)", lambda c: {"A": POSTERIOR_X0.value(c), "B": POSTERIOR_XT.value(c),
                                                          "C": 0.0, "sigma": Formula((_f("β", power=0.5),
                                                                                      Factor(LAST))).value(c)}),))


def _ddim_combine(parts):
    """x_{t'} = a·x̂_0 + b·ε with x̂_0 = (x_t − c·ε)/d: coefficients of x_t and ε."""
    return {"x_t": parts["a"] / parts["d"], "eps": parts["b"] - parts["a"] * parts["c"] / parts["d"]}


def _ddim_known(context: StepContext) -> dict[str, torch.Tensor]:
    """Values a DDIM part takes in known variants of the step: the stochastic sampler's direction, with σ_t for
    η = 1 (eq. 5.16's σ_t² = (1 − ᾱ_{t'})/(1 − ᾱ_t)·(1 − ᾱ_t/ᾱ_{t'}))."""
    alpha_bar_t, alpha_bar_prev = context.quantity("ᾱ", Step("t")), context.quantity("ᾱ", Step("t'"))
    sigma_squared = (1 - alpha_bar_prev) / (1 - alpha_bar_t) * (1 - alpha_bar_t / alpha_bar_prev)
    return {"√(1 − ᾱ_{t'} − σ_t²) with DDIM's σ_t for η = 1 — the stochastic sampler's direction, although its noise "
            "σ_t·z is not added; this exercise is the deterministic step, σ = 0, whose direction is √(1 − ᾱ_{t'})":
            (1 - alpha_bar_prev - sigma_squared).sqrt()}


DDIM_MODEL = Model(
    "eq. (5.16)", parts={"c": X0_NOISE, "d": X0_SCALE, "a": Formula((_f("ᾱ", "t'", power=0.5),)),
                         "b": Formula((_f("ᾱ", "t'", one_minus=True, power=0.5),))},
    labels={"c": "ε_θ's coefficient in x̂_0 (eq. 5.12)", "d": "what x̂_0 divides by (eq. 5.12)",
            "a": "x̂_0's coefficient in the new sample", "b": "ε_θ's coefficient in the new sample (the direction)"},
    combine=_ddim_combine, groups={"x̂_0 (eq. 5.12)": ("c", "d"), "the new sample": ("a", "b")},
    shown={"x_t": "√ᾱ_{t'}/√ᾱ_t", "eps": "√(1 − ᾱ_{t'}) − √ᾱ_{t'}·√(1 − ᾱ_t)/√ᾱ_t"},
    swaps=(("a", "b"), ("c", "d")),
    intermediates=x0_hat_as_output("x_{t'} = √ᾱ_{t'}·x̂_0 + √(1 − ᾱ_{t'})·ε_θ (eq. 5.16)"),
    terms=lambda c: [("√ᾱ_{t'}", Formula((_f("ᾱ", "t'", power=0.5),)).value(c), "x̂_0"),
                     ("√(1 − ᾱ_{t'})", Formula((_f("ᾱ", "t'", one_minus=True, power=0.5),)).value(c), "ε_θ")],
    tensors=lambda c: _x0_and_inputs(c, ("x_t", "eps")),
    known=_ddim_known,
    readings=(implied_x0_reading("eq. (5.16)", lambda c: {"A": Formula((_f("ᾱ", "t'", power=0.5),)).value(c),
                                                          "B": 0.0, "C": Formula((_f("ᾱ", "t'", one_minus=True,
                                                                                     power=0.5),)).value(c)}),))


def step_inputs(exercise: Exercise, case: ImageCase):
    """Seeded x_t, ε̂ and z; ε̂ is large enough that x̂_0 leaves [−1, 1] for part of every image."""
    x_t = exercise.randn(*case.shape, key=(case.label, "x_t"), dtype=case.dtype)
    eps = 1.5 * exercise.randn(*case.shape, key=(case.label, "eps"), dtype=case.dtype)
    noise = exercise.randn(*case.shape, key=(case.label, "z"), dtype=case.dtype)
    return x_t, eps, noise
