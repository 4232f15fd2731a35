"""Exercise 5.5 — DDIM's deterministic step, eq. (5.16) with σ = 0."""
from __future__ import annotations

import torch

from utils.checks.core import Exercise, Mistake, one_thread
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
from utils.checks.diffusion.references import reference_ddim_step, reference_predict_x0
from utils.checks.diffusion.reverse_step import DDIM_MODEL, step_inputs
from utils.checks.diffusion.schedule import column, with_zero

EX_DDIM = Exercise("5.5", "ddim_step")


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
    ImageCase("clip=False, the linear schedule, jumps of 25, T=100", shape=(4, 1, 4, 5), T=100,
              steps=(26, 50, 75, 100), clip=False, jump=25, builder="linear"),
]


@one_thread
def check_ddim_step(ddim_step) -> None:
    """Exercise 5.5: ``ddim_step(eps, x_t, t, t_prev, schedule, clip=True)`` returns DDIM's deterministic x_{t_prev},
    eq. (5.16) with σ = 0, for any earlier step 0 ≤ t_prev < t (ᾱ_0 = 1)."""
    for case in DDIM_CASES:
        schedule = case.schedule()
        x_t, eps, _ = step_inputs(EX_DDIM, case)
        lowest = 1 if case.jump is None else case.jump + 1  # random steps must allow the jump
        t = case.timesteps(EX_DDIM, lowest)
        t_prev = torch.zeros_like(t) if case.jump is None else t - case.jump
        arguments = {"eps": eps, "x_t": x_t, "t": t, "t_prev": t_prev, "schedule": schedule}
        got = run_learner(EX_DDIM, ddim_step, case, arguments, clip=case.clip,
                          random_hint="DDIM with σ = 0 is deterministic: add no random noise (no torch.randn).")
        expected = reference_ddim_step(eps, x_t, t, t_prev, schedule, case.clip)
        context = StepContext(schedule, {"t": t, "t'": t_prev}, sources=LearnerSources(ddim_step))
        parts = {k: column(f.value(context).to(case.dtype), x_t) for k, f in DDIM_MODEL.parts.items()}
        x0_hat = reference_predict_x0(eps, x_t, column(with_zero(schedule.alpha_bars)[t], x_t))

        def implied_x0(got):  # x_{t'} = a x̂_0 + b ε, solved for x̂_0 (a = √ᾱ_{t'} > 0)
            return (got - parts["b"] * eps) / parts["a"]
        probes = clip_probes(implied_x0, x0_hat, case.clip, expected,
                              reference_ddim_step(eps, x_t, t, t_prev, schedule, not case.clip), output="x_{t'}",
                              inputs={"eps": eps, "x_t": x_t},
                              rerun=lambda given, clip: reference_ddim_step(given["eps"], given["x_t"], t, t_prev,
                                                                            schedule, clip),
                              learner_other=rerun_with(EX_DDIM, ddim_step, case, arguments, clip=not case.clip),
                              alpha_bar_t=column(with_zero(schedule.alpha_bars)[t], x_t))
        basis, names = {"x_t": x_t, "eps": eps}, {"x_t": "x_t", "eps": "ε_θ"}
        if not case.clip:
            probes.insert(2, linear_probe(DDIM_MODEL, context, basis, output="x_{t'}", names=names))
        alpha_bar_t = column(with_zero(schedule.alpha_bars)[t], x_t)
        clipped = x0_hat.clamp(-1, 1)
        recomputed = parts["a"] * clipped + parts["b"] * (x_t - alpha_bar_t.sqrt() * clipped) / (1 - alpha_bar_t).sqrt()
        mistakes = [Mistake(recomputed, "you recomputed ε from the clipped x̂_0, ε = (x_t − √ᾱ_t x̂_0)/√(1 − ᾱ_t) (as "
                                        "diffusers' DDIM does); this exercise uses the network's ε_θ itself as the "
                                        "direction in eq. (5.16): √(1 − ᾱ_{t'})·eps.")] if case.clip else []
        compare_images(EX_DDIM, got, expected, case=case, context=context, name="x_{t'}",
                       equation="eq. (5.16) with σ = 0", probes=probes, mistakes=mistakes,
                       rest=None if case.clip else finite_images_probe(DDIM_MODEL, context, basis, got, output="x_{t'}",
                                                         names=names), inputs=basis, names=names)
    EX_DDIM.passed(f"{len(DDIM_CASES)} cases (jumps of 1 to 25 steps, t = T, t' = 0, clip on and off, float64, two "
                   "schedules) match DDIM's deterministic update, eq. (5.16) with σ = 0.")
