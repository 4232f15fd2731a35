"""Exercise 5.4 — DDPM's ancestral step, eq. (5.15) and Algorithm 2."""
from __future__ import annotations

import torch

from utils.checks.core import Exercise, one_thread
from utils.checks.diffusion.clipping import clip_probes
from utils.checks.diffusion.elsewhere import LearnerSources
from utils.checks.diffusion.formulas import StepContext
from utils.checks.diffusion.images import (
    ImageCase,
    compare_images,
    finite_images_probe,
    linear_probe,
    rerun_with,
    run_learner,
)
from utils.checks.diffusion.posterior import POSTERIOR_X0, POSTERIOR_XT
from utils.checks.diffusion.references import reference_ddpm_step, reference_predict_x0
from utils.checks.diffusion.reverse_step import DDPM_MODEL, step_inputs
from utils.checks.diffusion.schedule import column

EX_DDPM = Exercise("5.4", "ddpm_step")


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
    ImageCase("clip=False, the linear schedule, T=100", shape=(4, 1, 4, 5), T=100, steps=(1, 30, 70, 100),
              clip=False, builder="linear"),
]


@one_thread
def check_ddpm_step(ddpm_step) -> None:
    """Exercise 5.4: ``ddpm_step(eps, x_t, t, schedule, noise, clip=True)`` returns x_{t−1} of Algorithm 2, with x̂_0
    clipped to [−1, 1] when ``clip`` and no noise at t = 1."""
    for case in DDPM_CASES:
        schedule = case.schedule()
        x_t, eps, noise = step_inputs(EX_DDPM, case)
        t = case.timesteps(EX_DDPM)
        arguments = {"eps": eps, "x_t": x_t, "t": t, "schedule": schedule, "noise": noise}
        got = run_learner(EX_DDPM, ddpm_step, case, arguments, clip=case.clip,
                          random_hint="use the `noise` argument as z; don't draw your own (torch.randn_like).")
        expected = reference_ddpm_step(eps, x_t, t, schedule, noise, case.clip)
        context = StepContext(schedule, {"t": t}, sources=LearnerSources(ddpm_step))
        coefficients = {k: column(v.to(case.dtype), x_t) for k, v in DDPM_MODEL.evaluate(context).items()}
        x0_hat = reference_predict_x0(eps, x_t, column(schedule.alpha_bars[t - 1], x_t))
        mean_x0 = column(POSTERIOR_X0.value(context).to(case.dtype), x_t)
        mean_xt = column(POSTERIOR_XT.value(context).to(case.dtype), x_t)

        def implied_x0(got):  # x_{t−1} = A x̂_0 + B x_t + σ z, solved for x̂_0 (A > 0 at every t)
            return (got - mean_xt * x_t - coefficients["z"] * noise) / mean_x0
        probes = clip_probes(implied_x0, x0_hat, case.clip, expected,
                              reference_ddpm_step(eps, x_t, t, schedule, noise, not case.clip), output="x_{t−1}",
                              noise_part=coefficients["z"] * noise, inputs={"eps": eps, "x_t": x_t},
                              rerun=lambda given, clip: reference_ddpm_step(given["eps"], given["x_t"], t, schedule,
                                                                            noise, clip),
                              learner_other=rerun_with(EX_DDPM, ddpm_step, case, arguments, clip=not case.clip),
                              alpha_bar_t=column(schedule.alpha_bars[t - 1], x_t))
        basis, names = {"x_t": x_t, "eps": eps, "z": noise}, {"x_t": "x_t", "eps": "ε_θ", "z": "z"}
        if not case.clip:
            probes = [*probes[:2], linear_probe(DDPM_MODEL, context, basis, output="x_{t−1}", names=names),
                      *probes[2:]]
        compare_images(EX_DDPM, got, expected, case=case, context=context, name="x_{t−1}", equation="eq. (5.15)",
                       probes=probes, rest=None if case.clip else finite_images_probe(DDPM_MODEL, context, basis, got,
                                                                        output="x_{t−1}", names=names),
                       inputs=basis, names=names,
                       otherwise="if you call your posterior_mean_variance, does it pass the check of Exercise 5.3?")
    EX_DDPM.passed(f"{len(DDPM_CASES)} cases (t = 1 and t = T mixed in a batch, clip on and off, batch size 1, "
                   "float64, two schedules) match eq. (5.15): x̂_0 from eq. (5.12), clipped, in μ̃ of eq. (5.6), "
                   "plus √β_t z for t > 1.")
