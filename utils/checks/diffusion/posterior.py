"""Exercise 5.3 — the posterior q(x_{t−1} | x_t, x_0), eqs. (5.6), (5.7)."""
from __future__ import annotations

import torch

from utils.checks.core import Exercise, one_thread
from utils.checks.diffusion.elsewhere import LearnerSources
from utils.checks.diffusion.formulas import Bracket, Formula, Model, StepContext, _f
from utils.checks.diffusion.images import IMAGE_CASES, compare_images, finite_images_probe, linear_probe, run_learner
from utils.checks.diffusion.readings import explain_coefficients
from utils.checks.diffusion.references import reference_posterior
from utils.checks.diffusion.values import transform, transform_text

EX_POSTERIOR = Exercise("5.3", "posterior_mean_variance")


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
                             swaps=(("x0", "x_t"),), alternatives=(POSTERIOR_NOISE_FORM,),
                             brackets=(Bracket(Formula((_f("ᾱ", one_minus=True, power=-1.0),)), ("x0", "x_t"),
                                               "μ̃_t = (√ᾱ_{t−1}·β_t·x_0 + √α_t·(1 − ᾱ_{t−1})·x_t)/(1 − ᾱ_t) (eq. 5.6)",
                                               "the division by 1 − ᾱ_t",
                                               "(alpha_bar_prev.sqrt() * beta_t * x0 + alpha_t.sqrt() * "
                                               "(1 - alpha_bar_prev) * x_t) / (1 - alpha_bar_t)"),))


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
        found = transform(values["variance"], model.evaluate(context)["variance"])
        if found in ("log", "exp", "1 −"):  # not a change to eq. (5.7)'s factors: a function of the whole variance
            return (f"your variance is {transform_text(found, 'β̃_t')} at every image, not β̃_t itself: return the "
                    f"variance of eq. (5.7), (1 − ᾱ_{{t−1}})/(1 − ᾱ_t)·β_t" + (
                        " (a log-variance, as some code keeps, is for a later step: the check wants the variance)"
                        if found == "log" else "") + ".")
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
        context = StepContext(schedule, {"t": t}, sources=LearnerSources(posterior_mean_variance))
        basis, names = {"x0": x0, "x_t": x_t}, {"x0": "x_0", "x_t": "x_t"}
        compare_images(EX_POSTERIOR, mean, expected_mean, case=case, context=context, name="mean",
                       equation="eq. (5.6)",
                       probes=[linear_probe(POSTERIOR_MEAN_MODEL, context, basis, output="mean", names=names)],
                       rest=finite_images_probe(POSTERIOR_MEAN_MODEL, context, basis, mean, output="mean", names=names),
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
            sub = context.subset(mask)
            return _variance_probe(sub, POSTERIOR_VARIANCE_MODEL)(variance.detach()[mask])
        compare_images(EX_POSTERIOR, variance, expected_variance, case=case, context=context, name="variance",
                       equation="eq. (5.7)", probes=[_variance_probe(context, POSTERIOR_VARIANCE_MODEL)],
                       rest=variance_rest)
    EX_POSTERIOR.passed(f"{len(IMAGE_CASES)} cases (t = 1 and t = T, batch size 1, float64, two schedules) match the "
                        "posterior's mean (eq. 5.6) and variance β̃_t (eq. 5.7).")
