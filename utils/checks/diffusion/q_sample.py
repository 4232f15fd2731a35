"""Exercise 5.2 — sampling q(x_t | x_0), eq. (5.2)."""
from __future__ import annotations

from utils.checks.core import Exercise, one_thread
from utils.checks.diffusion.elsewhere import LearnerSources
from utils.checks.diffusion.formulas import Formula, Model, StepContext, _f
from utils.checks.diffusion.images import IMAGE_CASES, compare_images, finite_images_probe, linear_probe, run_learner
from utils.checks.diffusion.references import reference_q_sample

EX_Q_SAMPLE = Exercise("5.2", "q_sample")


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
        context = StepContext(schedule, {"t": t}, sources=LearnerSources(q_sample))
        basis, names = {"x0": x0, "noise": noise}, {"x0": "x_0", "noise": "ε"}
        compare_images(EX_Q_SAMPLE, got, reference_q_sample(x0, t, noise, schedule), case=case, context=context,
                       name="x_t", equation="eq. (5.2)",
                       probes=[linear_probe(Q_SAMPLE_MODEL, context, basis, output="x_t", names=names)],
                       rest=finite_images_probe(Q_SAMPLE_MODEL, context, basis, got, output="x_t", names=names),
                       inputs=basis, names=names)
    EX_Q_SAMPLE.passed(f"{len(IMAGE_CASES)} cases (t = 1 and t = T, B = W, batch size 1, float64, two schedules) "
                       "match x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε, one t per image.")
