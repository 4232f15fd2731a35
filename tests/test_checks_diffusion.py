"""Every check of Chapter 05 passes on the solution notebook's answers and names each wrong answer.

Wrong answers are written the way a learner writes them — a function with the exercise's signature — never built
from the checker's references, so a diagnosis that drifted away from real mistakes shows up here. Each test carries
its exercise's marker (``pytest -m ex5_2``). The words a diagnosis must contain are the mistake's name in the
chapter's terms (which coefficient, which symbol, which equation), not the check's exact sentence.
"""
import functools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.checks_harness import assert_diagnoses, assert_passes, assert_stub_passes_through, exercise
from tests.solution_code import solution_namespace
from utils.checks import CheckFailure, LearnerError
from utils.checks import diffusion as checks
from utils.checks.diffusion import changes, ddim, embedding, formulas, naming, readings, recovery, schedules, terms
from utils.checks.diffusion import images as checks_images

CHAPTER = "05_diffusion"


@functools.cache
def solved() -> dict:
    """The solution notebook's answers (its setup and exercise cells)."""
    return solution_namespace(CHAPTER)


def col(values):
    return values.view(-1, 1, 1, 1)


def padded(schedule):
    return F.pad(schedule.alpha_bars, (1, 0), value=1.0)  # index t gives ᾱ_t, ᾱ_0 = 1


def stub(name):
    def untouched(*args, **kwargs):
        raise NotImplementedError(f"Exercise {name}: write the body of `it`, then run the check cell below.")
    return untouched


# =============================================================================================================
# Exercise 5.1 — schedules
# =============================================================================================================
def linear():
    return solved()["linear_schedule"]


def cosine():
    return solved()["cosine_schedule"]


def cosine_variant(T, s=0.008, max_beta=0.999, *, argument=None, square=2, clip=True, ratio="right", ends=None):
    """A learner's cosine_schedule with one thing changed (``argument`` maps the steps t/T to cos's argument)."""
    steps = torch.arange(T + 1, dtype=torch.float64) / T
    angle = argument(steps, s) if argument else (steps + s) / (1 + s) * math.pi / 2
    f = torch.cos(angle) ** square
    alpha_bars = f / f[0]
    betas = {"right": 1 - alpha_bars[1:] / alpha_bars[:-1], "inverted": 1 - alpha_bars[:-1] / alpha_bars[1:],
             "total": 1 - alpha_bars[1:], "alpha_bars": alpha_bars[1:]}[ratio]
    return betas.clamp(max=max_beta) if clip else betas


@exercise("5.1")
def test_schedules_pass_on_the_solution():
    line = assert_passes(checks.check_schedules, (linear(), cosine()))
    assert "T = 1, 50, 100, 200, 1000" in line


@exercise("5.1")
def test_schedules_written_otherwise_also_pass():
    def linear_by_arange(T, beta_start=1e-4, beta_end=0.02):
        t = torch.arange(1, T + 1, dtype=torch.float64)
        return 1000 / T * (beta_start + (t - 1) / (T - 1) * (beta_end - beta_start))

    def cosine_by_steps(T, s=0.008, max_beta=0.999):
        def f(t):
            return math.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2
        betas = [min(1 - f(t) / f(t - 1), max_beta) for t in range(1, T + 1)]
        return torch.tensor(betas, dtype=torch.float64)
    assert_passes(checks.check_schedules, (linear_by_arange, cosine_by_steps))


def linear_unscaled(T, beta_start=1e-4, beta_end=0.02):
    return torch.linspace(beta_start, beta_end, T, dtype=torch.float64)


def linear_extra_point(T, beta_start=1e-4, beta_end=0.02):
    scale = 1000 / T
    return torch.linspace(scale * beta_start, scale * beta_end, T + 1, dtype=torch.float64)[1:]


def linear_alphas(T, beta_start=1e-4, beta_end=0.02):
    return 1 - linear()(T, beta_start, beta_end)


def linear_alpha_bars(T, beta_start=1e-4, beta_end=0.02):
    return torch.cumprod(1 - linear()(T, beta_start, beta_end), 0)


def linear_float32(T, beta_start=1e-4, beta_end=0.02):
    return torch.linspace(1000 / T * beta_start, 1000 / T * beta_end, T)


def linear_step_over_T(T, beta_start=1e-4, beta_end=0.02):
    scale = 1000 / T
    return scale * (beta_start + torch.arange(T, dtype=torch.float64) * (beta_end - beta_start) / T)


def linear_scale_only_end(T, beta_start=1e-4, beta_end=0.02):
    return torch.linspace(beta_start, 1000 / T * beta_end, T, dtype=torch.float64)


def linear_defaults_hard_coded(T, beta_start=1e-4, beta_end=0.02):
    return torch.linspace(1000 / T * 1e-4, 1000 / T * 0.02, T, dtype=torch.float64)


def linear_geometric(T, beta_start=1e-4, beta_end=0.02):
    scale = 1000 / T
    return torch.logspace(math.log10(scale * beta_start), math.log10(scale * beta_end), T, dtype=torch.float64)


def linear_reversed(T, beta_start=1e-4, beta_end=0.02):
    return linear()(T, beta_start, beta_end).flip(0)


def linear_quadratic(T, beta_start=1e-4, beta_end=0.02):  # the "scaled linear" of latent diffusion
    scale = 1000 / T
    return torch.linspace((scale * beta_start) ** 0.5, (scale * beta_end) ** 0.5, T, dtype=torch.float64) ** 2


def linear_scale_inverted(T, beta_start=1e-4, beta_end=0.02):
    return torch.linspace(T / 1000 * beta_start, T / 1000 * beta_end, T, dtype=torch.float64)


def linear_integer_scale(T, beta_start=1e-4, beta_end=0.02):
    return torch.linspace(beta_start, beta_end, T, dtype=torch.float64) * (1000 // T)


def linear_end_dropped(T, beta_start=1e-4, beta_end=0.02):  # T + 1 points, the last one dropped
    scale = 1000 / T
    return torch.linspace(scale * beta_start, scale * beta_end, T + 1, dtype=torch.float64)[:-1]


@exercise("5.1")
@pytest.mark.parametrize("wrong, words", [
    (linear_unscaled, ["β_1", "beta_start, not scaled", "scale both ends by 1000/T"]),
    (linear_extra_point, ["off by one", "T + 1 points"]),
    (linear_alphas, ["you returned α_t"]),
    (linear_alpha_bars, ["you returned ᾱ_t"]),
    (linear_float32, ["dtype torch.float32 but expected torch.float64"]),
    (linear_step_over_T, ["step between neighbours", "(β_end − β_start)/T", "T − 1 gaps"]),
    (linear_scale_only_end, ["β_1 is 0.0001", "not scaled", "β_T = β_200 = 0.1 is right"]),
    (linear_defaults_hard_coded, ["linear_schedule(300, beta_start=3e-4", "use the beta_start argument",
                                  "use the beta_end argument"]),
    (linear_geometric, ["geometrically", "linspace"]),
    (linear_reversed, ["reverse order"]),
    (linear_quadratic, ["not linear in t", "equal steps"]),
    (linear_scale_inverted, ["the scale is 1000/T, not T/1000"]),
    (linear_integer_scale, ["linear_schedule(300", "(1000 // T)·beta_start", "integer division"]),
    (linear_end_dropped, ["β_1 = 0.0005 is right", "step between neighbours is (β_end − β_start)/T"]),
])
def test_linear_schedule_names_the_mistake(wrong, words):
    assert_diagnoses(checks.check_schedules, (wrong, cosine()), *words)


def cosine_no_offset(T, s=0.008, max_beta=0.999):
    return cosine_variant(T, 0.0, max_beta)


def cosine_no_clip(T, s=0.008, max_beta=0.999):
    return cosine_variant(T, s, max_beta, clip=False)


def cosine_not_squared(T, s=0.008, max_beta=0.999):
    return cosine_variant(T, s, max_beta, square=1)


def cosine_fourth_power(T, s=0.008, max_beta=0.999):
    return cosine_variant(T, s, max_beta, square=4)


def cosine_inverted(T, s=0.008, max_beta=0.999):
    return cosine_variant(T, s, max_beta, ratio="inverted")


def cosine_total(T, s=0.008, max_beta=0.999):
    return cosine_variant(T, s, max_beta, ratio="total")


def cosine_alpha_bars(T, s=0.008, max_beta=0.999):
    return cosine_variant(T, s, max_beta, ratio="alpha_bars")


def cosine_pi(T, s=0.008, max_beta=0.999):
    return cosine_variant(T, s, max_beta, argument=lambda u, s: (u + s) / (1 + s) * math.pi)


def cosine_offset_outside(T, s=0.008, max_beta=0.999):
    return cosine_variant(T, s, max_beta, argument=lambda u, s: u / (1 + s) * math.pi / 2 + s)


def cosine_grid_shifted(T, s=0.008, max_beta=0.999):  # f at (t + 1)/T, the first value dropped
    return cosine_variant(T, s, max_beta, argument=lambda u, s: (u + 1 / T + s) / (1 + s) * math.pi / 2)


def cosine_no_division(T, s=0.008, max_beta=0.999):
    return cosine_variant(T, s, max_beta, argument=lambda u, s: (u + s) * math.pi / 2)


def cosine_s_hard_coded(T, s=0.008, max_beta=0.999):
    return cosine_variant(T, 0.008, max_beta)


def cosine_other_offset(T, s=0.008, max_beta=0.999):
    return cosine_variant(T, 0.08, max_beta)


def cosine_max_beta_hard_coded(T, s=0.008, max_beta=0.999):
    return cosine_variant(T, s, 0.999)


def cosine_clamp_min(T, s=0.008, max_beta=0.999):
    return cosine_variant(T, s, max_beta, clip=False).clamp(min=max_beta)


def cosine_first_beta_unnormalised(T, s=0.008, max_beta=0.999):
    betas = cosine()(T, s, max_beta).clone()
    betas[0] = 1 - math.cos((1 / T + s) / (1 + s) * math.pi / 2) ** 2  # 1 − f(1), forgetting ᾱ_0 = f(0)/f(0)
    return betas


def cosine_clip_too_low(T, s=0.008, max_beta=0.999):
    return cosine_variant(T, s, max_beta, clip=False).clamp(max=0.9 * max_beta)


def cosine_offset_over_T(T, s=0.008, max_beta=0.999):  # (t + s)/(T(1 + s)): the offset divided by T too
    return cosine_variant(T, s, max_beta, argument=lambda u, s: (u + s / T) / (1 + s) * math.pi / 2)


def cosine_list(T, s=0.008, max_beta=0.999):
    return cosine()(T, s, max_beta).tolist()


def cosine_one_extra(T, s=0.008, max_beta=0.999):
    return torch.cat([torch.zeros(1, dtype=torch.float64), cosine()(T, s, max_beta)])


def cosine_one_short(T, s=0.008, max_beta=0.999):
    return cosine()(T, s, max_beta)[:-1]


def cosine_random(T, s=0.008, max_beta=0.999):
    return cosine()(T, s, max_beta) * (1 + 1e-3 * torch.rand(T, dtype=torch.float64))


def cosine_noise_midway(T, s=0.008, max_beta=0.999):  # right for 10 steps, then something else
    betas = cosine()(T, s, max_beta).clone()
    betas[10:T // 2] = betas[10:T // 2] * 1.01
    return betas


@exercise("5.1")
@pytest.mark.parametrize("wrong, words", [
    (cosine_no_offset, ["offset s is missing", "(t/T + s)/(1 + s)"]),
    (cosine_no_clip, ["exceeds max_beta", "clipped at max_beta", ".clamp(max=max_beta)"]),
    (cosine_not_squared, ["*square* of the cosine"]),
    (cosine_fourth_power, ["raised to the power 2", "squared once"]),
    (cosine_inverted, ["not positive", "the ratio is upside down"]),
    (cosine_total, ["you returned 1 − ᾱ_t", "*total* noise variance"]),
    (cosine_alpha_bars, ["you returned ᾱ_t; return the betas"]),
    (cosine_pi, ["not positive", "π instead of π/2"]),
    (cosine_offset_outside, ["argument", "is the offset s placed right"]),
    (cosine_grid_shifted, ["t + 1 in place of t", "off by one in the time grid"]),
    (cosine_no_division, ["no division by (1 + s)"]),
    (cosine_s_hard_coded, ["cosine_schedule(100, s=0.02", "you used s = 0.008, not the s argument"]),
    (cosine_other_offset, ["the cosine with s = 0.08"]),
    (cosine_max_beta_hard_coded, ["max_beta is 0.5", "not at a hard-coded 0.999"]),
    (cosine_clamp_min, ["every β_t is 0.999 or more", "clamp(min=…)"]),
    (cosine_first_beta_unnormalised, ["β_1", "while β_2 … are right", "ᾱ_0 = f(0)/f(0) = 1"]),
    (cosine_clip_too_low, ["your largest β_t is", "clip β_t itself"]),
    (cosine_offset_over_T, ["((t + s)/T)/(1 + s)·π/2", "the offset s is divided by T too"]),
    (cosine_list, ["got a list, not a torch.Tensor"]),
    (cosine_one_extra, ["201 values, one too many"]),
    (cosine_one_short, ["199 values, one too few", "ᾱ_0 = 1"]),
    (cosine_random, ["two calls with the same inputs gave different outputs"]),
    (cosine_noise_midway, ["departs from eq. (5.4)'s f(t)/f(0) from t = 11"]),
])
def test_cosine_schedule_names_the_mistake(wrong, words):
    assert_diagnoses(checks.check_schedules, (linear(), wrong), *words)


def cosine_first_beta_zero(T, s=0.008, max_beta=0.999):
    betas = cosine()(T, s, max_beta).clone()
    betas[0] = 0.0
    return betas


def cosine_in_float32(T, s=0.008, max_beta=0.999):
    steps = torch.arange(T + 1) / T  # float32
    f = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
    return (1 - f[1:] / f[:-1]).clamp(max=max_beta).double()


@exercise("5.1")
@pytest.mark.parametrize("wrong, words", [
    # core reads an entry left at 0 before the chapter's probes (a loop that starts late); either names it
    (cosine_first_beta_zero, ["re:β_1 = 0 is not positive|the first entry .{0,30} is exactly 0"]),
    (cosine_in_float32, ["right only to float32 precision"]),
])
def test_cosine_schedule_more_properties(wrong, words):
    assert_diagnoses(checks.check_schedules, (linear(), wrong), *words)


@exercise("5.1")
def test_schedules_stub_and_exception_reach_the_learner():
    assert_stub_passes_through(lambda answer: checks.check_schedules(answer, cosine()), stub("5.1"))

    def crashes(T, beta_start=1e-4, beta_end=0.02):
        return torch.linspace(beta_start, beta_end)  # steps missing
    message = assert_diagnoses(checks.check_schedules, (crashes, cosine()), "your linear_schedule raised TypeError",
                               "torch.linspace(beta_start, beta_end)", error=LearnerError)
    assert message.startswith("Exercise 5.1 (linear_schedule(200))")


# =============================================================================================================
# Exercise 5.2 — q_sample
# =============================================================================================================
def q_sample_ok(x0, t, noise, schedule):
    return solved()["q_sample"](x0, t, noise, schedule)


def q_sample_alphas(x0, t, noise, schedule):
    alpha_t = col(schedule.alphas[t - 1])
    return alpha_t.sqrt() * x0 + (1 - alpha_t).sqrt() * noise


def q_sample_index_t(x0, t, noise, schedule):
    alpha_bar_t = col(schedule.alpha_bars[t])
    return alpha_bar_t.sqrt() * x0 + (1 - alpha_bar_t).sqrt() * noise


def q_sample_no_sqrt(x0, t, noise, schedule):
    alpha_bar_t = col(schedule.alpha_bars[t - 1])
    return alpha_bar_t * x0 + (1 - alpha_bar_t) * noise


def q_sample_variance_noise(x0, t, noise, schedule):
    alpha_bar_t = col(schedule.alpha_bars[t - 1])
    return alpha_bar_t.sqrt() * x0 + (1 - alpha_bar_t) * noise


def q_sample_minus(x0, t, noise, schedule):
    alpha_bar_t = col(schedule.alpha_bars[t - 1])
    return alpha_bar_t.sqrt() * x0 - (1 - alpha_bar_t).sqrt() * noise


def q_sample_swapped(x0, t, noise, schedule):
    alpha_bar_t = col(schedule.alpha_bars[t - 1])
    return (1 - alpha_bar_t).sqrt() * x0 + alpha_bar_t.sqrt() * noise


def q_sample_no_view(x0, t, noise, schedule):
    alpha_bar_t = schedule.alpha_bars[t - 1]  # (B,): broadcasts along the last axis, W
    return alpha_bar_t.sqrt() * x0 + (1 - alpha_bar_t).sqrt() * noise


def q_sample_float32(x0, t, noise, schedule):
    return q_sample_ok(x0, t, noise, schedule).float()


def q_sample_beta_noise(x0, t, noise, schedule):
    alpha_bar_t = col(schedule.alpha_bars[t - 1])
    return alpha_bar_t.sqrt() * x0 + col(schedule.betas[t - 1]).sqrt() * noise


def q_sample_one_minus_sqrt(x0, t, noise, schedule):
    alpha_bar_t = col(schedule.alpha_bars[t - 1])
    return alpha_bar_t.sqrt() * x0 + (1 - alpha_bar_t.sqrt()) * noise


def q_sample_first_t(x0, t, noise, schedule):
    alpha_bar_t = schedule.alpha_bars[t[0] - 1]
    return alpha_bar_t.sqrt() * x0 + (1 - alpha_bar_t).sqrt() * noise


def q_sample_in_place(x0, t, noise, schedule):
    alpha_bar_t = col(schedule.alpha_bars[t - 1])
    noise *= (1 - alpha_bar_t).sqrt()
    return alpha_bar_t.sqrt() * x0 + noise


def q_sample_t_in_place(x0, t, noise, schedule):
    t -= 1
    alpha_bar_t = col(schedule.alpha_bars[t])
    return alpha_bar_t.sqrt() * x0 + (1 - alpha_bar_t).sqrt() * noise


def q_sample_own_noise(x0, t, noise, schedule):
    alpha_bar_t = col(schedule.alpha_bars[t - 1])
    return alpha_bar_t.sqrt() * x0 + (1 - alpha_bar_t).sqrt() * torch.randn_like(x0)


def q_sample_three_axes(x0, t, noise, schedule):
    alpha_bar_t = schedule.alpha_bars[t - 1][:, None, None]  # (B, 1, 1) lines up with (C, H, W)
    return alpha_bar_t.sqrt() * x0 + (1 - alpha_bar_t).sqrt() * noise


def q_sample_sum_of_betas(x0, t, noise, schedule):  # ᾱ_t ≈ 1 − Σ β_s, true only for small β
    alpha_bar_t = col(1 - schedule.betas.cumsum(0)[t - 1])
    return alpha_bar_t.sqrt() * x0 + (1 - alpha_bar_t).sqrt() * noise


def q_sample_index_t_minus_2(x0, t, noise, schedule):
    alpha_bar_t = col(schedule.alpha_bars[t - 2])
    return alpha_bar_t.sqrt() * x0 + (1 - alpha_bar_t).sqrt() * noise


def q_sample_signal_from_alphas(x0, t, noise, schedule):
    return col(schedule.alphas[t - 1]).sqrt() * x0 + (1 - col(schedule.alpha_bars[t - 1])).sqrt() * noise


def q_sample_none(x0, t, noise, schedule):
    alpha_bar_t = col(schedule.alpha_bars[t - 1])
    alpha_bar_t.sqrt() * x0 + (1 - alpha_bar_t).sqrt() * noise  # noqa: B018 - the forgotten return


def q_sample_nan(x0, t, noise, schedule):
    alpha_bar_t = col(schedule.alpha_bars[t - 1])
    return alpha_bar_t.sqrt() * x0 + (1 - alpha_bar_t).sqrt() * noise / (1 - alpha_bar_t).sqrt() * 0 / 0


def q_sample_two_mistakes(x0, t, noise, schedule):
    alpha_bar_t = col(schedule.alpha_bars[t - 1])
    return alpha_bar_t * x0 + col(schedule.betas[t - 1]).sqrt() * noise


def q_sample_scaled_noise(x0, t, noise, schedule):
    alpha_bar_t = col(schedule.alpha_bars[t - 1])
    return alpha_bar_t.sqrt() * x0 + 1.1 * (1 - alpha_bar_t).sqrt() * noise


def q_sample_cropped(x0, t, noise, schedule):
    return q_sample_ok(x0, t, noise, schedule)[..., :-1]


def q_sample_squared_noise(x0, t, noise, schedule):
    alpha_bar_t = col(schedule.alpha_bars[t - 1])
    return alpha_bar_t.sqrt() * x0 + (1 - alpha_bar_t).sqrt() * noise ** 2


def q_sample_changes_schedule(x0, t, noise, schedule):
    schedule.alpha_bars.clamp_(min=1e-3)
    return q_sample_ok(x0, t, noise, schedule)


@exercise("5.2")
def test_q_sample_passes_on_the_solution():
    assert "t = 1 and t = T" in assert_passes(checks.check_q_sample, q_sample_ok)


@exercise("5.2")
@pytest.mark.parametrize("wrong, words", [
    (q_sample_alphas, ["α_t in place of ᾱ_t everywhere", "ᾱ vs α"]),
    (q_sample_index_t, ["ᾱ_{t+1} in place of ᾱ_t", "off by one"]),
    (q_sample_no_sqrt, ["square roots are missing", "variance vs standard deviation"]),
    (q_sample_variance_noise, ["coefficient of ε is (1 − ᾱ_t) instead of √(1 − ᾱ_t)", "square root"]),
    (q_sample_minus, ["coefficient of ε is −√(1 − ᾱ_t)", "sign is flipped"]),
    (q_sample_swapped, ["hold each other's tensors", "Swap x_0 and ε back"]),
    (q_sample_no_view, ["along the W axis", "B equals W", ".view(-1, 1, 1, 1)"]),
    (q_sample_float32, ["float64", "dtype torch.float32"]),
    (q_sample_beta_noise, ["your x_t = ", "coefficient of ε is √β_t instead of √(1 − ᾱ_t)",
                           "variance of all the noise"]),
    (q_sample_one_minus_sqrt, ["(1 − √ᾱ_t) in place of √(1 − ᾱ_t)", "√(1 − x) is not 1 − √x"]),
    (q_sample_first_t, ["same for every image", "first image's", "(B,) tensor t"]),
    (q_sample_in_place, ["changed its input `noise` in place"]),
    (q_sample_t_in_place, ["changed its input `t` in place"]),
    (q_sample_own_noise, ["different outputs", "use the `noise` argument"]),
    (q_sample_three_axes, ["B = 8 landed on axis C", "(B, 1, 1)", ".view(-1, 1, 1, 1)"]),
    (q_sample_sum_of_betas, ["inf or NaN for the images with t = 33, 40, 49", "On the finite images",
                             "1 − Σ_{s≤t} β_s, a sum", "negative from t = 30", "eq. (5.2)"]),
    (q_sample_index_t_minus_2, ["alpha_bars[t - 2] in place of ᾱ_t", "off by one", "wraps around"]),
    (q_sample_signal_from_alphas, ["coefficient of x_0 is √α_t instead of √ᾱ_t", "ᾱ vs α"]),
    (q_sample_none, ["got None. Did you forget to return it?"]),
    (q_sample_nan, ["inf or NaN for the images with t = ", "division by zero"]),
    (q_sample_two_mistakes, ["the coefficient of x_0 is ᾱ_t at every image", "the coefficient of ε is √β_t"]),
    (q_sample_scaled_noise, ["the coefficient of x_0 is right", "the coefficient of ε is", "but should be √(1 − ᾱ_t)"]),
    (q_sample_cropped, ["shape (8, 1, 6, 7) but expected (8, 1, 6, 8)"]),
    (q_sample_squared_noise, ["Compare your code with eq. (5.2) term by term"]),
    (q_sample_changes_schedule, ["changed `schedule.alpha_bars` in place"]),
])
def test_q_sample_names_the_mistake(wrong, words):
    assert_diagnoses(checks.check_q_sample, wrong, *words)


@exercise("5.2")
def test_q_sample_the_issues_example_names_sqrt_beta_at_the_worst_image():
    message = assert_diagnoses(checks.check_q_sample, q_sample_beta_noise, "re:your x_t = [\\d.]+·x_0 \\+ [\\d.]+·ε "
                               "at t = \\d+ \\(image \\d\\), where eq. \\(5.2\\) gives [\\d.]+·x_0 \\+ [\\d.]+·ε")
    assert "(√β_t in place of √(1 − ᾱ_t))" in message


@exercise("5.2")
def test_q_sample_errors_in_the_learners_code_are_read():
    def crashes_on_broadcast(x0, t, noise, schedule):
        alpha_bar_t = schedule.alpha_bars[t - 1]
        return alpha_bar_t.sqrt() * x0[..., :3] + (1 - alpha_bar_t).sqrt() * noise[..., :3]
    assert_diagnoses(checks.check_q_sample, crashes_on_broadcast, "did not broadcast",
                     "alpha_bar_t.sqrt() * x0[..., :3]", error=LearnerError)

    def index_t_only_at_the_end(x0, t, noise, schedule):  # right for t < T, IndexError at t = T
        return q_sample_ok(x0, t, noise, schedule) if t.max() < schedule.T else q_sample_index_t(x0, t, noise, schedule)
    assert_diagnoses(checks.check_q_sample, index_t_only_at_the_end, "IndexError", "index is past the end",
                     "t = 1 and t = T in one batch", error=LearnerError)
    assert_stub_passes_through(checks.check_q_sample, stub("5.2"))


# =============================================================================================================
# Exercise 5.3 — the posterior
# =============================================================================================================
def posterior_ok(x0, x_t, t, schedule):
    return solved()["posterior_mean_variance"](x0, x_t, t, schedule)


def posterior_parts(schedule, t):
    alpha_bars = padded(schedule)
    return (col(alpha_bars[t]), col(alpha_bars[t - 1]), col(schedule.betas[t - 1]), col(schedule.alphas[t - 1]))


def posterior_swapped(x0, x_t, t, schedule):
    alpha_bar_t, alpha_bar_prev, beta_t, alpha_t = posterior_parts(schedule, t)
    mean = (alpha_t.sqrt() * (1 - alpha_bar_prev) / (1 - alpha_bar_t) * x0
            + alpha_bar_prev.sqrt() * beta_t / (1 - alpha_bar_t) * x_t)
    return mean, (1 - alpha_bar_prev) / (1 - alpha_bar_t) * beta_t


def posterior_bar_on_xt(x0, x_t, t, schedule):
    alpha_bar_t, alpha_bar_prev, beta_t, alpha_t = posterior_parts(schedule, t)
    mean = (alpha_bar_prev.sqrt() * beta_t / (1 - alpha_bar_t) * x0
            + alpha_bar_t.sqrt() * (1 - alpha_bar_prev) / (1 - alpha_bar_t) * x_t)
    return mean, (1 - alpha_bar_prev) / (1 - alpha_bar_t) * beta_t


def posterior_bar_t_on_x0(x0, x_t, t, schedule):
    alpha_bar_t, alpha_bar_prev, beta_t, alpha_t = posterior_parts(schedule, t)
    mean = (alpha_bar_t.sqrt() * beta_t / (1 - alpha_bar_t) * x0
            + alpha_t.sqrt() * (1 - alpha_bar_prev) / (1 - alpha_bar_t) * x_t)
    return mean, (1 - alpha_bar_prev) / (1 - alpha_bar_t) * beta_t


def posterior_index_t(x0, x_t, t, schedule):  # every table read one step late
    alpha_bars = padded(schedule)
    alpha_bar_t, alpha_bar_prev = col(alpha_bars[t + 1]), col(alpha_bars[t])
    beta_t, alpha_t = col(schedule.betas[t]), col(schedule.alphas[t])
    mean = (alpha_bar_prev.sqrt() * beta_t / (1 - alpha_bar_t) * x0
            + alpha_t.sqrt() * (1 - alpha_bar_prev) / (1 - alpha_bar_t) * x_t)
    return mean, (1 - alpha_bar_prev) / (1 - alpha_bar_t) * beta_t


def posterior_wrapped(x0, x_t, t, schedule):
    alpha_bar_t, alpha_bar_prev = col(schedule.alpha_bars[t - 1]), col(schedule.alpha_bars[t - 2])
    beta_t, alpha_t = col(schedule.betas[t - 1]), col(schedule.alphas[t - 1])
    mean = (alpha_bar_prev.sqrt() * beta_t / (1 - alpha_bar_t) * x0
            + alpha_t.sqrt() * (1 - alpha_bar_prev) / (1 - alpha_bar_t) * x_t)
    return mean, (1 - alpha_bar_prev) / (1 - alpha_bar_t) * beta_t


def posterior_std(x0, x_t, t, schedule):
    mean, variance = posterior_ok(x0, x_t, t, schedule)
    return mean, variance.sqrt()


def posterior_beta(x0, x_t, t, schedule):
    mean, _ = posterior_ok(x0, x_t, t, schedule)
    return mean, col(schedule.betas[t - 1])


def posterior_inverted_variance(x0, x_t, t, schedule):
    alpha_bar_t, alpha_bar_prev, beta_t, _ = posterior_parts(schedule, t)
    mean, _ = posterior_ok(x0, x_t, t, schedule)
    return mean, (1 - alpha_bar_t) / (1 - alpha_bar_prev) * beta_t


def posterior_flat_variance(x0, x_t, t, schedule):
    mean, variance = posterior_ok(x0, x_t, t, schedule)
    return mean, variance.flatten()


def posterior_sqrt_denominator(x0, x_t, t, schedule):
    alpha_bar_t, alpha_bar_prev, beta_t, alpha_t = posterior_parts(schedule, t)
    mean = (alpha_bar_prev.sqrt() * beta_t / (1 - alpha_bar_t).sqrt() * x0
            + alpha_t.sqrt() * (1 - alpha_bar_prev) / (1 - alpha_bar_t) * x_t)
    return mean, (1 - alpha_bar_prev) / (1 - alpha_bar_t) * beta_t


def posterior_xt_ratio_inverted(x0, x_t, t, schedule):
    alpha_bar_t, alpha_bar_prev, beta_t, alpha_t = posterior_parts(schedule, t)
    mean = (alpha_bar_prev.sqrt() * beta_t / (1 - alpha_bar_t) * x0
            + alpha_t.sqrt() * (1 - alpha_bar_t) / (1 - alpha_bar_prev) * x_t)
    return mean, (1 - alpha_bar_prev) / (1 - alpha_bar_t) * beta_t


def posterior_variance_with_alpha(x0, x_t, t, schedule):
    alpha_bar_t, alpha_bar_prev, _, alpha_t = posterior_parts(schedule, t)
    mean, _ = posterior_ok(x0, x_t, t, schedule)
    return mean, (1 - alpha_bar_prev) / (1 - alpha_bar_t) * alpha_t


def posterior_beta_previous_step(x0, x_t, t, schedule):
    alpha_bar_t, alpha_bar_prev, beta_t, alpha_t = posterior_parts(schedule, t)
    mean = (alpha_bar_prev.sqrt() * col(schedule.betas[t - 2]) / (1 - alpha_bar_t) * x0
            + alpha_t.sqrt() * (1 - alpha_bar_prev) / (1 - alpha_bar_t) * x_t)
    return mean, (1 - alpha_bar_prev) / (1 - alpha_bar_t) * beta_t


def posterior_reversed_pair(x0, x_t, t, schedule):
    mean, variance = posterior_ok(x0, x_t, t, schedule)
    return variance, mean


def posterior_mean_only(x0, x_t, t, schedule):
    return posterior_ok(x0, x_t, t, schedule)[0]


def posterior_three(x0, x_t, t, schedule):
    mean, variance = posterior_ok(x0, x_t, t, schedule)
    return mean, variance, variance.log()


def posterior_variance_per_pixel(x0, x_t, t, schedule):
    mean, variance = posterior_ok(x0, x_t, t, schedule)
    return mean, variance * (1 + x_t.abs())


def posterior_mean_clamped(x0, x_t, t, schedule):
    mean, variance = posterior_ok(x0, x_t, t, schedule)
    return mean.clamp(-1, 1), variance


def posterior_variance_float32(x0, x_t, t, schedule):
    mean, variance = posterior_ok(x0, x_t, t, schedule)
    return mean, variance.float()


@exercise("5.3")
def test_posterior_passes_on_the_solution():
    assert_passes(checks.check_posterior_mean_variance, posterior_ok)


@exercise("5.3")
def test_posterior_through_the_noise_form_also_passes():
    """Eq. (5.11) with ε recovered from x_0 and x_t is the same mean; in float32 it cancels 1 − ᾱ_1 against β_1."""
    def through_noise(x0, x_t, t, schedule):
        alpha_bar_t, alpha_bar_prev, beta_t, alpha_t = posterior_parts(schedule, t)
        eps = (x_t - alpha_bar_t.sqrt() * x0) / (1 - alpha_bar_t).sqrt()
        return (x_t - beta_t / (1 - alpha_bar_t).sqrt() * eps) / alpha_t.sqrt(), \
            (1 - alpha_bar_prev) / (1 - alpha_bar_t) * beta_t
    assert_passes(checks.check_posterior_mean_variance, through_noise)


@exercise("5.3")
def test_posterior_variance_shaped_like_x_t_also_passes():
    def full_variance(x0, x_t, t, schedule):
        mean, variance = posterior_ok(x0, x_t, t, schedule)
        return mean, variance.expand_as(x_t)
    assert_passes(checks.check_posterior_mean_variance, full_variance)


@exercise("5.3")
@pytest.mark.parametrize("wrong, words", [
    (posterior_swapped, ["hold each other's tensors", "Swap x_0 and x_t back"]),
    (posterior_bar_on_xt, ["coefficient of x_t", "√ᾱ_t in place of √α_t", "ᾱ vs α"]),
    (posterior_bar_t_on_x0, ["coefficient of x_0", "√ᾱ_t in place of √ᾱ_{t−1}"]),
    (posterior_index_t, ["one step later", "off by one"]),
    (posterior_wrapped, ["only at t = 1", "alpha_bars[-1]", "t - 2 = −1", "pad a 1 in front"]),
    (posterior_std, ["your variance", "the square root of it", "variance vs standard deviation"]),
    (posterior_beta, ["the variance is β_t", "(1 − ᾱ_{t−1})·β_t/(1 − ᾱ_t)", "eq. (5.7)"]),
    (posterior_inverted_variance, ["inf or NaN for the images with t = 1", "1 − ᾱ_{t−1} = 0",
                                   "the ratio (1 − ᾱ_{t−1})/(1 − ᾱ_t) is upside down"]),
    (posterior_flat_variance, ["variance: shape (8,)", "as (B, 1, 1, 1) = (8, 1, 1, 1)"]),
    (posterior_sqrt_denominator, ["coefficient of x_0", "√(1 − ᾱ_t) in place of (1 − ᾱ_t)"]),
    (posterior_xt_ratio_inverted, ["inf or NaN for the images with t = 1", "coefficient of x_t", "upside down"]),
    (posterior_variance_with_alpha, ["α_t in place of β_t"]),
    (posterior_beta_previous_step, ["coefficient of x_0", "β_{t−1} in place of β_t"]),
    (posterior_reversed_pair, ["you returned (variance, mean)"]),
    (posterior_mean_only, ["return a pair (mean, variance); you returned a Tensor"]),
    (posterior_three, ["return a pair (mean, variance); you returned a tuple of 3"]),
    (posterior_variance_per_pixel, ["the variance changes inside one image", "(B, 1, 1, 1)"]),
    (posterior_mean_clamped, ["your mean", "eq. (5.6)"]),
    (posterior_variance_float32, ["variance: dtype torch.float32 but expected torch.float64"]),
])
def test_posterior_names_the_mistake(wrong, words):
    assert_diagnoses(checks.check_posterior_mean_variance, wrong, *words)


@exercise("5.3")
def test_posterior_stub_passes_through():
    assert_stub_passes_through(checks.check_posterior_mean_variance, stub("5.3"))


# =============================================================================================================
# Exercise 5.4 — the DDPM step
# =============================================================================================================
def ddpm_step_ok(eps, x_t, t, schedule, noise, clip=True):
    return solved()["ddpm_step"](eps, x_t, t, schedule, noise, clip)


def predicted_x0(eps, x_t, alpha_bar_t):
    return (x_t - (1 - alpha_bar_t).sqrt() * eps) / alpha_bar_t.sqrt()


def ddpm_from(x0_hat, x_t, t, schedule, noise, sigma=None, posterior=None, last_noise=True):
    """A learner's step after x̂_0: μ̃ from the (right or given) posterior, plus σ z except at t = 1."""
    mean, _ = (posterior or posterior_ok)(x0_hat, x_t, t, schedule)
    sigma = col(schedule.betas[t - 1]).sqrt() if sigma is None else sigma
    keep = torch.ones_like(sigma) if not last_noise else col((t > 1).to(x_t.dtype))
    return mean + keep * sigma * noise


def ddpm_no_clip(eps, x_t, t, schedule, noise, clip=True):
    return ddpm_from(predicted_x0(eps, x_t, col(schedule.alpha_bars[t - 1])), x_t, t, schedule, noise)


def ddpm_clip_output(eps, x_t, t, schedule, noise, clip=True):
    return ddpm_no_clip(eps, x_t, t, schedule, noise).clamp(-1, 1)


def ddpm_clip_always(eps, x_t, t, schedule, noise, clip=True):
    return ddpm_step_ok(eps, x_t, t, schedule, noise, clip=True)


def ddpm_plus(eps, x_t, t, schedule, noise, clip=True):
    alpha_bar_t = col(schedule.alpha_bars[t - 1])
    x0_hat = (x_t + (1 - alpha_bar_t).sqrt() * eps) / alpha_bar_t.sqrt()
    return ddpm_from(x0_hat.clamp(-1, 1) if clip else x0_hat, x_t, t, schedule, noise)


def ddpm_variance_in_x0(eps, x_t, t, schedule, noise, clip=True):
    alpha_bar_t = col(schedule.alpha_bars[t - 1])
    x0_hat = (x_t - (1 - alpha_bar_t) * eps) / alpha_bar_t.sqrt()
    return ddpm_from(x0_hat.clamp(-1, 1) if clip else x0_hat, x_t, t, schedule, noise)


def ddpm_alphas(eps, x_t, t, schedule, noise, clip=True):
    x0_hat = predicted_x0(eps, x_t, col(schedule.alphas[t - 1]))
    return ddpm_from(x0_hat.clamp(-1, 1) if clip else x0_hat, x_t, t, schedule, noise)


def ddpm_noise_at_1(eps, x_t, t, schedule, noise, clip=True):
    x0_hat = predicted_x0(eps, x_t, col(schedule.alpha_bars[t - 1]))
    return ddpm_from(x0_hat.clamp(-1, 1) if clip else x0_hat, x_t, t, schedule, noise, last_noise=False)


def ddpm_beta_sigma(eps, x_t, t, schedule, noise, clip=True):
    x0_hat = predicted_x0(eps, x_t, col(schedule.alpha_bars[t - 1]))
    return ddpm_from(x0_hat.clamp(-1, 1) if clip else x0_hat, x_t, t, schedule, noise,
                     sigma=col(schedule.betas[t - 1]))


def ddpm_posterior_sigma(eps, x_t, t, schedule, noise, clip=True):
    x0_hat = predicted_x0(eps, x_t, col(schedule.alpha_bars[t - 1]))
    x0_hat = x0_hat.clamp(-1, 1) if clip else x0_hat
    _, variance = posterior_ok(x0_hat, x_t, t, schedule)
    return ddpm_from(x0_hat, x_t, t, schedule, noise, sigma=variance.sqrt())


def ddpm_index_t(eps, x_t, t, schedule, noise, clip=True):  # every table read at t, not t − 1
    x0_hat = predicted_x0(eps, x_t, col(schedule.alpha_bars[t]))
    x0_hat = x0_hat.clamp(-1, 1) if clip else x0_hat
    return ddpm_from(x0_hat, x_t, t, schedule, noise, sigma=col(schedule.betas[t]).sqrt(), posterior=posterior_index_t)


def ddpm_wrong_posterior(eps, x_t, t, schedule, noise, clip=True):
    x0_hat = predicted_x0(eps, x_t, col(schedule.alpha_bars[t - 1])).clamp(-1, 1)
    return ddpm_from(x0_hat if clip else predicted_x0(eps, x_t, col(schedule.alpha_bars[t - 1])), x_t, t, schedule,
                     noise, posterior=posterior_bar_t_on_x0)


def ddpm_posterior_at_t_minus_1(eps, x_t, t, schedule, noise, clip=True):
    x0_hat = predicted_x0(eps, x_t, col(schedule.alpha_bars[t - 1]))
    x0_hat = x0_hat.clamp(-1, 1) if clip else x0_hat
    mean, _ = posterior_ok(x0_hat, x_t, t - 1, schedule)
    return mean + col((t > 1).to(x_t.dtype)) * col(schedule.betas[t - 1]).sqrt() * noise


def ddpm_sigma_off_by_one(eps, x_t, t, schedule, noise, clip=True):
    x0_hat = predicted_x0(eps, x_t, col(schedule.alpha_bars[t - 1]))
    sigma = col(schedule.betas[t.clamp(max=schedule.T - 1)]).sqrt()
    return ddpm_from(x0_hat.clamp(-1, 1) if clip else x0_hat, x_t, t, schedule, noise, sigma=sigma)


def ddpm_no_sqrt_in_divisor(eps, x_t, t, schedule, noise, clip=True):
    alpha_bar_t = col(schedule.alpha_bars[t - 1])
    x0_hat = (x_t - (1 - alpha_bar_t).sqrt() * eps) / alpha_bar_t
    return ddpm_from(x0_hat.clamp(-1, 1) if clip else x0_hat, x_t, t, schedule, noise)


def ddpm_sigma_not_viewed(eps, x_t, t, schedule, noise, clip=True):
    x0_hat = predicted_x0(eps, x_t, col(schedule.alpha_bars[t - 1]))
    mean, _ = posterior_ok(x0_hat.clamp(-1, 1) if clip else x0_hat, x_t, t, schedule)
    return mean + (t > 1).to(x_t.dtype) * schedule.betas[t - 1].sqrt() * noise  # (B,) lines up with W


def ddpm_clip_0_1(eps, x_t, t, schedule, noise, clip=True):
    x0_hat = predicted_x0(eps, x_t, col(schedule.alpha_bars[t - 1]))
    return ddpm_from(x0_hat.clamp(0, 1) if clip else x0_hat, x_t, t, schedule, noise)


def ddpm_forgot_noise(eps, x_t, t, schedule, noise, clip=True):
    x0_hat = predicted_x0(eps, x_t, col(schedule.alpha_bars[t - 1]))
    mean, _ = posterior_ok(x0_hat.clamp(-1, 1) if clip else x0_hat, x_t, t, schedule)
    return mean


def ddpm_own_noise(eps, x_t, t, schedule, noise, clip=True):
    return ddpm_step_ok(eps, x_t, t, schedule, torch.randn_like(x_t), clip)


def ddpm_in_place(eps, x_t, t, schedule, noise, clip=True):
    x0_hat = predicted_x0(eps, x_t, col(schedule.alpha_bars[t - 1]))
    mean, _ = posterior_ok(x0_hat.clamp(-1, 1) if clip else x0_hat, x_t, t, schedule)
    noise.mul_(col((t > 1).to(x_t.dtype)) * col(schedule.betas[t - 1]).sqrt())
    return mean + noise


def ddpm_algorithm_2_variance(eps, x_t, t, schedule, noise, clip=True):  # Algorithm 2 with 1 − ᾱ_t unrooted
    if clip:
        return ddpm_step_ok(eps, x_t, t, schedule, noise, clip)
    alpha_t, beta_t, alpha_bar_t = (col(v[t - 1]) for v in (schedule.alphas, schedule.betas, schedule.alpha_bars))
    z = col((t > 1).to(x_t.dtype)) * noise
    return (x_t - beta_t / (1 - alpha_bar_t) * eps) / alpha_t.sqrt() + beta_t.sqrt() * z


def ddpm_other_formula_when_clipping(eps, x_t, t, schedule, noise, clip=True):
    if not clip:
        return ddpm_step_ok(eps, x_t, t, schedule, noise, clip)
    return ddpm_alphas(eps, x_t, t, schedule, noise, clip)


def ddpm_algorithm_2_no_root(eps, x_t, t, schedule, noise, clip=True):  # Algorithm 2 dividing by α_t
    if clip:
        return ddpm_step_ok(eps, x_t, t, schedule, noise, clip)
    alpha_t, beta_t, alpha_bar_t = (col(v[t - 1]) for v in (schedule.alphas, schedule.betas, schedule.alpha_bars))
    z = col((t > 1).to(x_t.dtype)) * noise
    return (x_t - beta_t / (1 - alpha_bar_t).sqrt() * eps) / alpha_t + beta_t.sqrt() * z


def ddpm_soft_clip(eps, x_t, t, schedule, noise, clip=True):
    x0_hat = predicted_x0(eps, x_t, col(schedule.alpha_bars[t - 1])).tanh()
    return ddpm_from(x0_hat, x_t, t, schedule, noise)


def ddpm_outliers_zeroed(eps, x_t, t, schedule, noise, clip=True):
    x0_hat = predicted_x0(eps, x_t, col(schedule.alpha_bars[t - 1]))
    if clip:
        x0_hat = torch.where(x0_hat.abs() > 1, torch.zeros_like(x0_hat), x0_hat)
    return ddpm_from(x0_hat, x_t, t, schedule, noise)


def ddpm_clamp_mean(eps, x_t, t, schedule, noise, clip=True):
    x0_hat = predicted_x0(eps, x_t, col(schedule.alpha_bars[t - 1]))
    mean, _ = posterior_ok(x0_hat, x_t, t, schedule)
    mean = mean.clamp(-1, 1) if clip else mean
    return mean + col((t > 1).to(x_t.dtype)) * col(schedule.betas[t - 1]).sqrt() * noise


def ddpm_sigma_is_variance(eps, x_t, t, schedule, noise, clip=True):
    x0_hat = predicted_x0(eps, x_t, col(schedule.alpha_bars[t - 1]))
    mean, variance = posterior_ok(x0_hat.clamp(-1, 1) if clip else x0_hat, x_t, t, schedule)
    return mean + variance * noise


def ddpm_in_float32(eps, x_t, t, schedule, noise, clip=True):
    return ddpm_step_ok(eps.float(), x_t.float(), t, schedule.to(torch.float32), noise.float(), clip).to(x_t.dtype)


@exercise("5.4")
def test_ddpm_step_passes_on_the_solution():
    assert "clip on and off" in assert_passes(checks.check_ddpm_step, ddpm_step_ok)


@exercise("5.4")
@pytest.mark.parametrize("wrong, words", [
    (ddpm_no_clip, ["ignores the clip argument", "never clips x̂_0, even when clip=True", "x̂_0 was not clipped"]),
    (ddpm_clip_output, ["clamped to [-1, 1]", "you clipped the output x_{t−1} instead of x̂_0", "clip x̂_0 instead"]),
    (ddpm_clip_always, ["ignores the clip argument", "always clips x̂_0, even when clip=False"]),
    (ddpm_plus, ["ε_θ's coefficient in x̂_0 (eq. 5.12)", "sign is flipped"]),
    (ddpm_variance_in_x0, ["ε_θ's coefficient in x̂_0", "(1 − ᾱ_t) instead of √(1 − ᾱ_t)", "square root"]),
    (ddpm_alphas, ["in x̂_0 (eq. 5.12), you used α_t in place of ᾱ_t", "ᾱ vs α"]),
    (ddpm_noise_at_1, ["the factor [t > 1] is missing", "No noise at the last step"]),
    (ddpm_beta_sigma, ["σ_t of z is β_t·[t > 1] instead of √β_t·[t > 1]", "square root"]),
    (ddpm_posterior_sigma, ["√β̃_t in place of √β_t", "posterior's variance"]),
    (ddpm_index_t, ["one step later", "off by one"]),
    (ddpm_wrong_posterior, ["μ̃'s coefficient of x̂_0 (eq. 5.6)", "√ᾱ_t in place of √ᾱ_{t−1}",
                            "check of Exercise 5.3"]),
    (ddpm_posterior_at_t_minus_1, ["inf or NaN for the images with t = 1", "in μ̃ (eq. 5.6)", "one step earlier"]),
    (ddpm_sigma_off_by_one, ["σ_t of z", "√β_{t+1} in place of √β_t", "off by one"]),
    (ddpm_no_sqrt_in_divisor, ["what x̂_0 divides by (eq. 5.12) is ᾱ_t instead of √ᾱ_t"]),
    (ddpm_sigma_not_viewed, ["along the W axis", ".view(-1, 1, 1, 1)"]),
    (ddpm_clip_0_1, ["you clipped x̂_0 to [0, 1]", "[−1, 1]"]),
    (ddpm_forgot_noise, ["the coefficient σ_t of z is 0", "missing"]),
    (ddpm_own_noise, ["different outputs", "use the `noise` argument as z"]),
    (ddpm_in_place, ["changed its input `noise` in place"]),
    (ddpm_algorithm_2_variance, ["Written as Algorithm 2's", "ε_θ's coefficient inside the bracket is β_t/(1 − ᾱ_t)"]),
    (ddpm_other_formula_when_clipping, ["differs even where x̂_0 lies inside [−1, 1]", "clip=False"]),
    (ddpm_algorithm_2_no_root, ["in Algorithm 2's", "the factor 1/√α_t is 1/α_t", "square root"]),
    (ddpm_soft_clip, ["clip=False", "Compare your code with eq. (5.15) term by term", "Exercise 5.3"]),
    (ddpm_outliers_zeroed, ["the x̂_0 your x_{t−1} implies", "clip x̂_0 itself, with .clamp(-1, 1)"]),
    (ddpm_clamp_mean, ["you clipped the posterior mean μ̃", "Clip x̂_0"]),
    (ddpm_sigma_is_variance, ["the coefficient of z is β̃_t at every image", "√β_t·[t > 1]"]),
    (ddpm_in_float32, ["float64", "right only to float32 precision"]),
])
def test_ddpm_step_names_the_mistake(wrong, words):
    assert_diagnoses(checks.check_ddpm_step, wrong, *words)


@exercise("5.4")
def test_ddpm_step_stub_and_exception_reach_the_learner():
    assert_stub_passes_through(checks.check_ddpm_step, stub("5.4"))

    def crashes(eps, x_t, t, schedule, noise, clip=True):
        return ddpm_step_ok(eps, x_t, t, schedule, noise[:, :, :2], clip)
    assert_diagnoses(checks.check_ddpm_step, crashes, "raised RuntimeError", "did not broadcast", error=LearnerError)


# =============================================================================================================
# Exercise 5.5 — the DDIM step
# =============================================================================================================
def ddim_step_ok(eps, x_t, t, t_prev, schedule, clip=True):
    return solved()["ddim_step"](eps, x_t, t, t_prev, schedule, clip)


def ddim_with(alpha_bar_t, alpha_bar_prev, eps, x_t, clip, *, sign=-1, direction=None, clip_output=False):
    """A learner's DDIM step from the two ᾱ's they picked (σ = 0)."""
    x0_hat = (x_t + sign * (1 - alpha_bar_t).sqrt() * eps) / alpha_bar_t.sqrt()
    if clip:
        x0_hat = x0_hat.clamp(-1, 1)
    x_prev = alpha_bar_prev.sqrt() * x0_hat + ((1 - alpha_bar_prev).sqrt() if direction is None else direction) * eps
    return x_prev.clamp(-1, 1) if clip_output else x_prev


def ddim_swapped(eps, x_t, t, t_prev, schedule, clip=True):
    alpha_bars = padded(schedule)
    return ddim_with(col(alpha_bars[t_prev]), col(alpha_bars[t]), eps, x_t, clip)


def ddim_plus(eps, x_t, t, t_prev, schedule, clip=True):
    alpha_bars = padded(schedule)
    return ddim_with(col(alpha_bars[t]), col(alpha_bars[t_prev]), eps, x_t, clip, sign=+1)


def ddim_alphas(eps, x_t, t, t_prev, schedule, clip=True):
    alphas = F.pad(schedule.alphas, (1, 0), value=1.0)
    return ddim_with(col(alphas[t]), col(alphas[t_prev]), eps, x_t, clip)


def ddim_index_t(eps, x_t, t, t_prev, schedule, clip=True):
    alpha_bars = padded(schedule)
    return ddim_with(col(alpha_bars[t + 1]), col(alpha_bars[t_prev + 1]), eps, x_t, clip)


def ddim_wrapped(eps, x_t, t, t_prev, schedule, clip=True):
    return ddim_with(col(schedule.alpha_bars[t - 1]), col(schedule.alpha_bars[t_prev - 1]), eps, x_t, clip)


def ddim_no_clip(eps, x_t, t, t_prev, schedule, clip=True):
    return ddim_step_ok(eps, x_t, t, t_prev, schedule, clip=False)


def ddim_clip_output(eps, x_t, t, t_prev, schedule, clip=True):
    return ddim_step_ok(eps, x_t, t, t_prev, schedule, clip=False).clamp(-1, 1)


def ddim_clip_always(eps, x_t, t, t_prev, schedule, clip=True):
    return ddim_step_ok(eps, x_t, t, t_prev, schedule, clip=True)


def ddim_variance_direction(eps, x_t, t, t_prev, schedule, clip=True):
    alpha_bars = padded(schedule)
    alpha_bar_prev = col(alpha_bars[t_prev])
    return ddim_with(col(alpha_bars[t]), alpha_bar_prev, eps, x_t, clip, direction=1 - alpha_bar_prev)


def ddim_with_ddpm_noise(eps, x_t, t, t_prev, schedule, clip=True):
    return ddim_step_ok(eps, x_t, t, t_prev, schedule, clip) + 0.1 * torch.randn_like(x_t)


def ddim_recomputed_eps(eps, x_t, t, t_prev, schedule, clip=True):
    alpha_bars = padded(schedule)
    alpha_bar_t, alpha_bar_prev = col(alpha_bars[t]), col(alpha_bars[t_prev])
    x0_hat = predicted_x0(eps, x_t, alpha_bar_t)
    if clip:
        x0_hat = x0_hat.clamp(-1, 1)
    eps = (x_t - alpha_bar_t.sqrt() * x0_hat) / (1 - alpha_bar_t).sqrt()
    return alpha_bar_prev.sqrt() * x0_hat + (1 - alpha_bar_prev).sqrt() * eps


def ddim_t_prev_unpadded(eps, x_t, t, t_prev, schedule, clip=True):
    return ddim_with(col(padded(schedule)[t]), col(schedule.alpha_bars[t_prev]), eps, x_t, clip)


def ddim_ignores_t_prev(eps, x_t, t, t_prev, schedule, clip=True):
    alpha_bars = padded(schedule)
    return ddim_with(col(alpha_bars[t]), col(alpha_bars[t - 1]), eps, x_t, clip)


def ddim_direction_at_t(eps, x_t, t, t_prev, schedule, clip=True):
    alpha_bars = padded(schedule)
    alpha_bar_t = col(alpha_bars[t])
    return ddim_with(alpha_bar_t, col(alpha_bars[t_prev]), eps, x_t, clip, direction=(1 - alpha_bar_t).sqrt())


def ddim_prev_not_viewed(eps, x_t, t, t_prev, schedule, clip=True):
    alpha_bars = padded(schedule)
    alpha_bar_t, alpha_bar_prev = col(alpha_bars[t]), alpha_bars[t_prev]  # (B,): lines up with W
    return ddim_with(alpha_bar_t, alpha_bar_prev, eps, x_t, clip)


def ddim_in_place(eps, x_t, t, t_prev, schedule, clip=True):
    alpha_bars = padded(schedule)
    alpha_bar_t, alpha_bar_prev = col(alpha_bars[t]), col(alpha_bars[t_prev])
    x_t -= (1 - alpha_bar_t).sqrt() * eps
    x0_hat = x_t / alpha_bar_t.sqrt()
    x0_hat = x0_hat.clamp(-1, 1) if clip else x0_hat
    return alpha_bar_prev.sqrt() * x0_hat + (1 - alpha_bar_prev).sqrt() * eps


def ddim_x0_divides_by_prev(eps, x_t, t, t_prev, schedule, clip=True):
    alpha_bars = padded(schedule)
    alpha_bar_t, alpha_bar_prev = col(alpha_bars[t]), col(alpha_bars[t_prev])
    x0_hat = (x_t - (1 - alpha_bar_t).sqrt() * eps) / alpha_bar_prev.sqrt()
    x0_hat = x0_hat.clamp(-1, 1) if clip else x0_hat
    return alpha_bar_prev.sqrt() * x0_hat + (1 - alpha_bar_prev).sqrt() * eps


def ddim_eta_1(eps, x_t, t, t_prev, schedule, clip=True):  # the stochastic sampler, noise drawn inside
    alpha_bars = padded(schedule)
    alpha_bar_t, alpha_bar_prev = col(alpha_bars[t]), col(alpha_bars[t_prev])
    sigma = ((1 - alpha_bar_prev) / (1 - alpha_bar_t) * (1 - alpha_bar_t / alpha_bar_prev)).sqrt()
    x0_hat = predicted_x0(eps, x_t, alpha_bar_t)
    x0_hat = x0_hat.clamp(-1, 1) if clip else x0_hat
    return (alpha_bar_prev.sqrt() * x0_hat + (1 - alpha_bar_prev - sigma ** 2).sqrt() * eps
            + sigma * torch.randn_like(x_t))


def ddim_clip_0_1(eps, x_t, t, t_prev, schedule, clip=True):
    alpha_bars = padded(schedule)
    alpha_bar_t, alpha_bar_prev = col(alpha_bars[t]), col(alpha_bars[t_prev])
    x0_hat = predicted_x0(eps, x_t, alpha_bar_t)
    x0_hat = x0_hat.clamp(0, 1) if clip else x0_hat
    return alpha_bar_prev.sqrt() * x0_hat + (1 - alpha_bar_prev).sqrt() * eps


def ddim_direction_as_ratio(eps, x_t, t, t_prev, schedule, clip=True):  # √x written as x/√x: 0/0 at t' = 0
    alpha_bars = padded(schedule)
    alpha_bar_prev = col(alpha_bars[t_prev])
    return ddim_with(col(alpha_bars[t]), alpha_bar_prev, eps, x_t, clip,
                     direction=(1 - alpha_bar_prev) / (1 - alpha_bar_prev).sqrt())


@exercise("5.5")
def test_ddim_step_passes_on_the_solution():
    assert "t' = 0" in assert_passes(checks.check_ddim_step, ddim_step_ok)


@exercise("5.5")
@pytest.mark.parametrize("wrong, words", [
    (ddim_swapped, ["t and t' are swapped", "t vs t'"]),
    (ddim_plus, ["ε_θ's coefficient in x̂_0", "sign is flipped"]),
    (ddim_alphas, ["you used α in place of ᾱ", "ᾱ vs α"]),
    (ddim_index_t, ["one step later", "t+1 in place of t and t'+1 in place of t'", "off by one"]),
    (ddim_wrapped, ["ᾱ_0 = 1", "alpha_bars[-1]", "t_prev - 1 = −1"]),
    (ddim_no_clip, ["x̂_0 was not clipped"]),
    (ddim_clip_output, ["you clipped the output x_{t'} instead of x̂_0", "clip x̂_0 instead"]),
    (ddim_clip_always, ["ignores the clip argument", "always clips x̂_0, even when clip=False"]),
    (ddim_variance_direction, ["(the direction) is (1 − ᾱ_{t'}) instead of √(1 − ᾱ_{t'})", "square root"]),
    (ddim_with_ddpm_noise, ["different outputs", "add no random noise"]),
    (ddim_recomputed_eps, ["you recomputed ε from the clipped x̂_0", "ε_θ itself"]),
    (ddim_t_prev_unpadded, ["ᾱ_{t'+1} in place of ᾱ_{t'}", "off by one"]),
    (ddim_ignores_t_prev, ["ᾱ_{t−1} in place of ᾱ_{t'}", "t vs t'"]),
    (ddim_direction_at_t, ["the direction", "√(1 − ᾱ_t) in place of √(1 − ᾱ_{t'})"]),
    (ddim_prev_not_viewed, ["along the W axis", ".view(-1, 1, 1, 1)"]),
    (ddim_in_place, ["changed its input `x_t` in place"]),
    (ddim_x0_divides_by_prev, ["what x̂_0 divides by (eq. 5.12) is √ᾱ_{t'} instead of √ᾱ_t", "t vs t'"]),
    (ddim_eta_1, ["different outputs", "deterministic"]),
    (ddim_clip_0_1, ["you clipped x̂_0 to [0, 1]"]),
    (ddim_direction_as_ratio, ["inf or NaN for the images with t = 1, 3, 5, 10 and t' = 0", "1 − ᾱ_{t'} = 0"]),
])
def test_ddim_step_names_the_mistake(wrong, words):
    assert_diagnoses(checks.check_ddim_step, wrong, *words)


@exercise("5.5")
def test_ddim_step_stub_passes_through():
    assert_stub_passes_through(checks.check_ddim_step, stub("5.5"))


# =============================================================================================================
# Exercise 5.6 — the time embedding
# =============================================================================================================
def embedding_ok(t, dim):
    return solved()["sinusoidal_embedding"](t, dim)


def embedding_from(t, dim, frequencies, layout="sin, cos"):
    angles = t.float()[:, None] * frequencies[None, :].float()  # (B, dim/2)
    sin, cos = angles.sin(), angles.cos()
    if layout == "interleaved":
        return torch.stack([sin, cos], dim=-1).reshape(len(t), dim)
    return torch.cat({"sin, cos": [sin, cos], "cos, sin": [cos, sin], "sin, sin": [sin, sin]}[layout], dim=-1)


def standard_frequencies(dim, *, base=10_000.0, denominator=None, start=0, sign=-1):
    half = dim // 2
    return base ** (sign * torch.arange(start, start + half, dtype=torch.float32) / (denominator or half))


def embedding_cos_first(t, dim):
    return embedding_from(t, dim, standard_frequencies(dim), "cos, sin")


def embedding_interleaved(t, dim):
    return embedding_from(t, dim, standard_frequencies(dim), "interleaved")


def embedding_half_minus_1(t, dim):
    return embedding_from(t, dim, standard_frequencies(dim, denominator=max(dim // 2 - 1, 1)))


def embedding_over_dim(t, dim):
    return embedding_from(t, dim, standard_frequencies(dim, denominator=dim))


def embedding_exponent_i(t, dim):
    return embedding_from(t, dim, standard_frequencies(dim, denominator=1))


def embedding_increasing(t, dim):
    return embedding_from(t, dim, standard_frequencies(dim, sign=+1))


def embedding_base_1000(t, dim):
    return embedding_from(t, dim, standard_frequencies(dim, base=1000.0))


def embedding_half_width(t, dim):
    return embedding_ok(t, dim)[:, : dim // 2]


def embedding_float64(t, dim):
    return embedding_ok(t, dim).double()


def embedding_i_from_1(t, dim):
    return embedding_from(t, dim, standard_frequencies(dim, start=1))


def embedding_divided(t, dim):
    return embedding_from(t, dim, 1 / standard_frequencies(dim))


def embedding_t_over_T(t, dim):
    return embedding_from(t.float() / 1000, dim, standard_frequencies(dim))


def embedding_base_e(t, dim):
    return embedding_from(t, dim, standard_frequencies(dim, base=math.e))


def embedding_sines_twice(t, dim):
    return embedding_from(t, dim, standard_frequencies(dim), "sin, sin")


def embedding_angles(t, dim):
    angles = t.float()[:, None] * standard_frequencies(dim)[None, :]
    return torch.cat([angles, angles], dim=-1)


def embedding_first_row(t, dim):
    return embedding_ok(t[:1], dim).expand(len(t), dim)


def embedding_reversed(t, dim):
    return embedding_from(t, dim, standard_frequencies(dim).flip(0))


def embedding_other_cosines(t, dim):
    half = dim // 2
    angles = t.float()[:, None] * standard_frequencies(dim)[None, :]
    return torch.cat([angles.sin(), (2 * angles).cos()], dim=-1)[:, : 2 * half]


def embedding_squared(t, dim):
    return embedding_ok(t, dim) ** 2


def embedding_rows_mixed(t, dim):
    angles = t.float()[:, None] * standard_frequencies(dim)[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=0).reshape(len(t), dim)


def embedding_degrees(t, dim):
    return embedding_from(t, dim, torch.deg2rad(standard_frequencies(dim)))


def embedding_doubled(t, dim):
    return 2 * embedding_ok(t, dim)


def embedding_minus_sin(t, dim):
    half = dim // 2
    embedding = embedding_ok(t, dim).clone()
    embedding[:, :half] *= -1
    return embedding


def embedding_offset_exponent(t, dim):  # ω_i = 10000^(−(i + 1)/d)
    half = dim // 2
    return embedding_from(t, dim, 10_000.0 ** (-(torch.arange(half, dtype=torch.float32) + 1) / dim))


def embedding_growing_slowly(t, dim):  # from 1/1000 up to 1
    half = dim // 2
    return embedding_from(t, dim, 1000.0 ** (torch.arange(half, dtype=torch.float32) / half - 1))


def embedding_harmonic(t, dim):
    half = dim // 2
    return embedding_from(t, dim, 1 / (torch.arange(half, dtype=torch.float32) + 1))


@exercise("5.6")
def test_embedding_passes_on_the_solution():
    assert_passes(checks.check_sinusoidal_embedding, embedding_ok)


@exercise("5.6")
def test_embedding_with_a_power_also_passes():
    def via_power(t, dim):
        return embedding_from(t, dim, standard_frequencies(dim))
    assert_passes(checks.check_sinusoidal_embedding, via_power)


@exercise("5.6")
@pytest.mark.parametrize("wrong, words", [
    (embedding_cos_first, ["cosines first", "torch.cat([sin, cos], dim=-1)"]),
    (embedding_interleaved, ["you interleaved sin and cos"]),
    (embedding_half_minus_1, ["your exponent is −i/(d/2 − 1)", "Divide i by d/2 = 8"]),
    (embedding_over_dim, ["your exponent is −i/d = −i/16", "Divide i by d/2 = 8, not by d"]),
    (embedding_exponent_i, ["your exponent is −i/1,", "Divide i by d/2"]),
    (embedding_increasing, ["not sin(t·ω) or cos(t·ω)", "do yours grow"]),
    (embedding_base_1000, ["base 1000", "10000"]),
    (embedding_half_width, ["shape (10, 8) = (B, d/2)", "only one half"]),
    (embedding_float64, ["dtype torch.float64 but expected torch.float32"]),
    (embedding_i_from_1, ["does i start at 1"]),
    (embedding_divided, ["do yours grow"]),
    (embedding_t_over_T, ["every frequency is 0.001 × eq. (5.17)'s", "t/T"]),
    (embedding_base_e, ["base 2.718"]),
    (embedding_sines_twice, ["both halves of your embedding are the sines", "copy-paste", "must be cos(t ω_i)"]),
    (embedding_angles, ["you returned the angles t·ω_i themselves"]),
    (embedding_first_row, ["every t gets the same embedding"]),
    (embedding_reversed, ["reverse order"]),
    (embedding_other_cosines, ["do not share the same frequencies", "must use the same ω_i"]),
    (embedding_squared, ["eq. (5.17)"]),
    (embedding_rows_mixed, ["none of your columns", "mixes the images' rows", "dim=-1"]),
    (embedding_degrees, ["π/180", "degrees", "radians"]),
    (embedding_doubled, ["your embedding reaches 2", "[−1, 1]"]),
    (embedding_minus_sin, ["−sin(t·ω) or −cos(t·ω)", "a sign is flipped"]),
    (embedding_offset_exponent, ["your first frequency is 0.5623", "ω_0 = 10000^0 = 1"]),
    (embedding_growing_slowly, ["your frequencies grow", "negative"]),
    (embedding_harmonic, ["falls geometrically from 1 toward 1/10000"]),
])
def test_embedding_names_the_mistake(wrong, words):
    assert_diagnoses(checks.check_sinusoidal_embedding, wrong, *words)


@exercise("5.6")
def test_embedding_stub_and_exception_reach_the_learner():
    assert_stub_passes_through(checks.check_sinusoidal_embedding, stub("5.6"))

    def crashes(t, dim):
        return embedding_ok(t, dim) @ torch.ones(3, 3)
    assert_diagnoses(checks.check_sinusoidal_embedding, crashes, "raised RuntimeError", "matrix product",
                     error=LearnerError)


# =============================================================================================================
# The tools the checks are built from
# =============================================================================================================
@exercise("5.2")
def test_formulas_read_as_the_chapter_writes_them():
    posterior_x0 = checks.POSTERIOR_X0
    assert str(posterior_x0) == "√ᾱ_{t−1}·β_t/(1 − ᾱ_t)"
    assert str(checks.DDPM_ALGORITHM_2.parts["Q"]) == "β_t/√(1 − ᾱ_t)"
    cancelled = checks.Formula(posterior_x0.factors + (checks.Factor("β", power=-1.0),))
    assert str(cancelled.simplified()) == "√ᾱ_{t−1}/(1 − ᾱ_t)"
    wrapped = checks.Factor("ᾱ", checks.Step("t", -1, wrapped=True))
    assert wrapped.base_text() == "alpha_bars[t - 2]"
    assert checks.Factor("α", one_minus=True).base_text() == "β_t"
    assert str(checks.Formula((), zero=True)) == "0"


@exercise("5.3")
def test_step_context_reads_the_tables_at_each_images_step():
    schedule = checks.Schedule.from_betas(checks.reference_cosine_schedule(10))
    context = checks.StepContext(schedule, {"t": torch.tensor([1, 5, 10])})
    previous = context.quantity("ᾱ", checks.Step("t", -1))
    torch.testing.assert_close(previous, torch.stack([torch.tensor(1.0, dtype=torch.float64),
                                                      schedule.alpha_bars[3], schedule.alpha_bars[8]]))
    wrapped = context.quantity("ᾱ", checks.Step("t", -1, wrapped=True))
    assert wrapped[0] == schedule.alpha_bars[-1]  # alpha_bars[t - 2] at t = 1
    assert torch.isnan(context.quantity("β", checks.Step("t", +1)))[2]  # step T + 1 does not exist
    torch.testing.assert_close(context.quantity("β̃", checks.Step()), checks.POSTERIOR_VARIANCE_MODEL.parts[
        "variance"].value(context))


@exercise("5.6")
@settings(max_examples=40, deadline=None)
@given(omega=st.floats(1e-4, 3.0), kind=st.sampled_from(["sin", "cos"]))
def test_identify_sinusoid_recovers_kind_and_frequency(omega, kind):
    t = torch.tensor([1, 2, 3, 5, 8, 13, 100, 250, 999, 1000])
    values = (torch.sin if kind == "sin" else torch.cos)(omega * t.double()).float()
    found = checks.identify_sinusoid(values, t)
    assert found is not None and found[0] == kind
    assert math.isclose(found[1], omega, rel_tol=1e-3, abs_tol=2e-5)


@exercise("5.6")
def test_identify_sinusoid_rejects_what_is_not_one():
    t = torch.tensor([1, 2, 3, 5, 8, 13, 100, 250, 999, 1000])
    assert checks.identify_sinusoid(torch.sin(3.5 * t.double()), t) is None  # a frequency above π
    assert checks.identify_sinusoid(t.double() / 1000, t) is None


@exercise("5.2")
@settings(max_examples=25, deadline=None)
@given(B=st.integers(2, 6), seed=st.integers(0, 10_000))
def test_recovered_coefficients_are_the_schedules_own(B, seed):
    """fit_per_image gives back √ᾱ_t and √(1 − ᾱ_t) from a right q_sample, for any batch."""
    generator = torch.Generator().manual_seed(seed)
    schedule = checks.Schedule.from_betas(checks.reference_cosine_schedule(50))
    x0, noise = torch.randn(B, 2, 3, 4, generator=generator), torch.randn(B, 2, 3, 4, generator=generator)
    t = torch.randint(1, 51, (B,), generator=generator)
    found = checks.fit_per_image(q_sample_ok(x0, t, noise, schedule), {"x0": x0, "noise": noise})
    torch.testing.assert_close(found["x0"], schedule.alpha_bars[t - 1].double().sqrt(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(found["noise"], (1 - schedule.alpha_bars[t - 1].double()).sqrt(), rtol=1e-5,
                               atol=1e-6)


def test_gaussian_kl_matches_torch_distributions():
    m1, m2 = torch.randn(5, dtype=torch.float64), torch.randn(5, dtype=torch.float64)
    v1, v2 = torch.rand(5, dtype=torch.float64) + 0.1, torch.rand(5, dtype=torch.float64) + 0.1
    expected = torch.distributions.kl_divergence(torch.distributions.Normal(m1, v1.sqrt()),
                                                 torch.distributions.Normal(m2, v2.sqrt()))
    torch.testing.assert_close(checks.gaussian_kl(m1, v1, m2, v2), expected)


def test_every_check_failure_is_a_check_failure_or_the_learners_error():
    """The two exception types a learner sees are the toolkit's (the notebook's check cells rely on them)."""
    assert issubclass(CheckFailure, AssertionError) and issubclass(LearnerError, RuntimeError)


# =============================================================================================================
# No answer makes a check crash: whatever a learner returns ends in CheckFailure or LearnerError
# =============================================================================================================
def corrupt(value, how: str, seed: int):
    """One way a learner's output can be off: values, NaN/inf, shape, dtype, type."""
    if not isinstance(value, torch.Tensor):
        return value
    generator = torch.Generator().manual_seed(seed)
    if how == "noise":
        return value + 1e-2 * torch.randn(value.shape, generator=generator, dtype=value.dtype)
    if how == "random":
        return torch.randn(value.shape, generator=generator, dtype=value.dtype)
    if how == "zeros":
        return torch.zeros_like(value)
    if how == "nan":
        flat = value.clone().flatten()
        flat[int(torch.randint(len(flat), (1,), generator=generator))] = math.nan
        return flat.view_as(value)
    if how == "inf":
        return value / torch.zeros_like(value)
    if how == "huge":
        return value * 1e30
    if how == "transposed":
        return value.transpose(-1, -2) if value.dim() >= 2 else value.flip(0)
    if how == "squeezed":
        return value.flatten() if value.dim() > 1 else value[1:]
    if how == "extra axis":
        return value[None]
    if how == "float16":
        return value.half()
    if how == "int64":
        return value.long()
    if how == "complex":
        return value.to(torch.complex64)
    if how == "list":
        return value.tolist()
    if how == "none":
        return None
    if how == "number":
        return 0.5
    if how == "grad":  # off, and attached to a graph
        return (value + 1e-2).detach().requires_grad_()
    raise ValueError(f"learner's own error ({how})")


HOW = st.sampled_from(["noise", "random", "zeros", "nan", "inf", "huge", "transposed", "squeezed", "extra axis",
                       "float16", "int64", "complex", "list", "none", "number", "grad", "raise"])


def corrupted(answer, how, seed, part=None):
    def changed(value):
        wrong = corrupt(value, how, seed)
        same = isinstance(wrong, torch.Tensor) and wrong.shape == value.shape and torch.equal(wrong, value)
        return 2 * wrong if same else wrong  # a transpose of (B, 1, 1, 1) changes nothing: make it wrong anyway

    def learner(*args, **kwargs):
        value = answer(*args, **kwargs)
        if isinstance(value, tuple) and part is not None:
            return tuple(changed(v) if i == part else v for i, v in enumerate(value))
        return changed(value)
    return learner


def assert_rejected_cleanly(check, answer):
    with pytest.raises((CheckFailure, LearnerError)) as caught:
        assert_passes(check, answer)
    assert str(caught.value).startswith("Exercise 5.")


@exercise("5.1")
@settings(max_examples=30, deadline=None)
@given(how=HOW, seed=st.integers(0, 1000), which=st.sampled_from(["linear", "cosine"]))
def test_no_schedule_answer_crashes_the_check(how, seed, which):
    if which == "linear":
        assert_rejected_cleanly(checks.check_schedules, (corrupted(linear(), how, seed), cosine()))
    else:
        assert_rejected_cleanly(checks.check_schedules, (linear(), corrupted(cosine(), how, seed)))


@exercise("5.2")
@settings(max_examples=30, deadline=None)
@given(how=HOW, seed=st.integers(0, 1000))
def test_no_q_sample_answer_crashes_the_check(how, seed):
    assert_rejected_cleanly(checks.check_q_sample, corrupted(q_sample_ok, how, seed))


@exercise("5.3")
@settings(max_examples=30, deadline=None)
@given(how=HOW, seed=st.integers(0, 1000), part=st.sampled_from([0, 1]))
def test_no_posterior_answer_crashes_the_check(how, seed, part):
    assert_rejected_cleanly(checks.check_posterior_mean_variance, corrupted(posterior_ok, how, seed, part))


@exercise("5.4")
@settings(max_examples=30, deadline=None)
@given(how=HOW, seed=st.integers(0, 1000))
def test_no_ddpm_step_answer_crashes_the_check(how, seed):
    assert_rejected_cleanly(checks.check_ddpm_step, corrupted(ddpm_step_ok, how, seed))


@exercise("5.5")
@settings(max_examples=30, deadline=None)
@given(how=HOW, seed=st.integers(0, 1000))
def test_no_ddim_step_answer_crashes_the_check(how, seed):
    assert_rejected_cleanly(checks.check_ddim_step, corrupted(ddim_step_ok, how, seed))


@exercise("5.6")
@settings(max_examples=30, deadline=None)
@given(how=HOW, seed=st.integers(0, 1000))
def test_no_embedding_answer_crashes_the_check(how, seed):
    assert_rejected_cleanly(checks.check_sinusoidal_embedding, corrupted(embedding_ok, how, seed))


@exercise("5.2")
def test_a_right_answer_attached_to_a_graph_passes():
    def with_grad(x0, t, noise, schedule):
        return q_sample_ok(x0.requires_grad_(), t, noise, schedule)
    assert_passes(checks.check_q_sample, with_grad)


@settings(max_examples=30, deadline=None)
@given(shape=st.lists(st.integers(1, 5), min_size=1, max_size=4), data=st.data())
def test_core_unravel_matches_numpy(shape, data):
    """core.unravel (added for this chapter: torch.unravel_index's first call imports sympy, ~2 s) agrees with numpy."""
    import numpy as np

    from utils.checks import core
    flat = data.draw(st.integers(0, math.prod(shape) - 1))
    assert core.unravel(flat, shape) == [int(i) for i in np.unravel_index(flat, shape)]


# =============================================================================================================
# Round 3: realistic mistakes written before the probes that name them (issue 8), one test per exercise group.
# The words are what a learner needs to hear: the quantity, the step or index, the equation's form.
# =============================================================================================================
def linear_scale_over_T_minus_1(T, beta_start=1e-4, beta_end=0.02):
    scale = 1000 / (T - 1)
    return torch.linspace(scale * beta_start, scale * beta_end, T, dtype=torch.float64)


def linear_subsampled_1000(T, beta_start=1e-4, beta_end=0.02):  # the T = 1000 schedule, every (1000 // T)-th step
    return torch.linspace(beta_start, beta_end, 1000, dtype=torch.float64)[:: 1000 // T][:T]


def linear_arange_from_1(T, beta_start=1e-4, beta_end=0.02):
    t = torch.arange(1, T + 1, dtype=torch.float64)
    return 1000 / T * (beta_start + t / T * (beta_end - beta_start))


def linear_numpy(T, beta_start=1e-4, beta_end=0.02):
    import numpy as np
    return np.linspace(1000 / T * beta_start, 1000 / T * beta_end, T)


def cosine_precedence(T, s=0.008, max_beta=0.999):
    t = torch.arange(T + 1, dtype=torch.float64)
    f = torch.cos((t / T + s) / (1 + s * math.pi / 2)) ** 2
    alpha_bars = f / f[0]
    return (1 - alpha_bars[1:] / alpha_bars[:-1]).clamp(max=max_beta)


def cosine_offset_in_T(T, s=0.008, max_beta=0.999):
    t = torch.arange(T + 1, dtype=torch.float64)
    f = torch.cos((t + s) / (T + s) * math.pi / 2) ** 2
    alpha_bars = f / f[0]
    return (1 - alpha_bars[1:] / alpha_bars[:-1]).clamp(max=max_beta)


def cosine_sin_squared(T, s=0.008, max_beta=0.999):
    t = torch.arange(T + 1, dtype=torch.float64)
    f = torch.sin((t / T + s) / (1 + s) * math.pi / 2) ** 2
    alpha_bars = f / f[0]
    return (1 - alpha_bars[1:] / alpha_bars[:-1]).clamp(max=max_beta)


def cosine_difference(T, s=0.008, max_beta=0.999):
    t = torch.arange(T + 1, dtype=torch.float64)
    f = torch.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2
    alpha_bars = f / f[0]
    return (alpha_bars[:-1] - alpha_bars[1:]).clamp(max=max_beta)


def cosine_ratio_clamped(T, s=0.008, max_beta=0.999):  # right: the ratio kept at least 1 − max_beta
    t = torch.arange(T + 1, dtype=torch.float64)
    f = torch.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2
    ratio = (f[1:] / f[:-1]).clamp(min=1 - max_beta)
    return 1 - ratio


@exercise("5.1")
def test_schedules_written_a_third_way_pass():
    assert_passes(checks.check_schedules, (linear(), cosine_ratio_clamped))


@exercise("5.1")
@pytest.mark.parametrize("wrong, words", [
    (linear_scale_over_T_minus_1, ["1000/(T − 1)"]),
    (linear_subsampled_1000, ["re:not scaled|1000/T"]),
    (linear_arange_from_1, ["off by one"]),
    (linear_numpy, ["ndarray", "torch"]),
])
def test_linear_schedule_round_3(wrong, words):
    assert_diagnoses(checks.check_schedules, (wrong, cosine()), *words)


@exercise("5.1")
@pytest.mark.parametrize("wrong, words", [
    (cosine_precedence, ["argument", "re:1 \\+ s·π/2|precedence|π/2 inside"]),
    (cosine_offset_in_T, ["argument", "(t + s)/(T + s)"]),
    (cosine_sin_squared, ["sin"]),
    (cosine_difference, ["ᾱ_{t−1} − ᾱ_t", "ratio"]),
])
def test_cosine_schedule_round_3(wrong, words):
    assert_diagnoses(checks.check_schedules, (linear(), wrong), *words)


def q_sample_alpha_to_the_t(x0, t, noise, schedule):  # ᾱ_t as if every α were α_t
    alpha_bar_t = col(schedule.alphas[t - 1] ** t)
    return alpha_bar_t.sqrt() * x0 + (1 - alpha_bar_t).sqrt() * noise


def q_sample_product_of_betas(x0, t, noise, schedule):
    alpha_bar_t = col(torch.cumprod(schedule.betas, 0)[t - 1])
    return alpha_bar_t.sqrt() * x0 + (1 - alpha_bar_t).sqrt() * noise


def q_sample_index_clamped(x0, t, noise, schedule):  # alpha_bars[t] kept inside the table
    alpha_bar_t = col(schedule.alpha_bars[t.clamp(max=schedule.T - 1)])
    return alpha_bar_t.sqrt() * x0 + (1 - alpha_bar_t).sqrt() * noise


def q_sample_index_modulo(x0, t, noise, schedule):
    alpha_bar_t = col(schedule.alpha_bars[t % schedule.T])
    return alpha_bar_t.sqrt() * x0 + (1 - alpha_bar_t).sqrt() * noise


def q_sample_sqrt_of_everything(x0, t, noise, schedule):
    alpha_bar_t = col(schedule.alpha_bars[t - 1])
    return (alpha_bar_t * x0 + (1 - alpha_bar_t) * noise).sqrt()


def q_sample_signal_unrooted(x0, t, noise, schedule):
    alpha_bar_t = col(schedule.alpha_bars[t - 1])
    return alpha_bar_t * x0 + (1 - alpha_bar_t).sqrt() * noise


@exercise("5.2")
@pytest.mark.parametrize("wrong, words", [
    (q_sample_alpha_to_the_t, ["ᾱ", "re:α_t\\^t|α_t to the power"]),
    (q_sample_product_of_betas, ["ᾱ", "product of the betas"]),
    (q_sample_index_clamped, ["re:ᾱ_\\{t\\+1\\}|alpha_bars\\[t\\]"]),
    (q_sample_index_modulo, ["re:ᾱ_\\{t\\+1\\}|alpha_bars\\[0\\]"]),
    (q_sample_sqrt_of_everything, ["re:negative|square root", "re:whole|entire|outside"]),
    (q_sample_signal_unrooted, ["coefficient of x_0", "√"]),
])
def test_q_sample_round_3(wrong, words):
    assert_diagnoses(checks.check_q_sample, wrong, *words)


def posterior_prev_zero_at_start(x0, x_t, t, schedule):  # ᾱ_0 taken as 0 ("nothing left")
    alpha_bar_prev = col(torch.where(t > 1, schedule.alpha_bars[t - 2], torch.zeros((), dtype=x_t.dtype)))
    return posterior_parts_from(x0, x_t, t, schedule, alpha_bar_prev=alpha_bar_prev)


def posterior_parts_from(x0, x_t, t, schedule, *, alpha_bar_prev=None, alpha_bar_t=None, beta_t=None, alpha_t=None):
    alpha_bar_prev = col(padded(schedule)[t - 1]) if alpha_bar_prev is None else alpha_bar_prev
    alpha_bar_t = col(schedule.alpha_bars[t - 1]) if alpha_bar_t is None else alpha_bar_t
    beta_t = col(schedule.betas[t - 1]) if beta_t is None else beta_t
    alpha_t = col(schedule.alphas[t - 1]) if alpha_t is None else alpha_t
    mean = (alpha_bar_prev.sqrt() * beta_t / (1 - alpha_bar_t) * x0
            + alpha_t.sqrt() * (1 - alpha_bar_prev) / (1 - alpha_bar_t) * x_t)
    return mean, (1 - alpha_bar_prev) / (1 - alpha_bar_t) * beta_t


def posterior_padded_read_unpadded(x0, x_t, t, schedule):  # padded, then indexed as if it were not
    alpha_bars = padded(schedule)
    return posterior_parts_from(x0, x_t, t, schedule, alpha_bar_prev=col(alpha_bars[t - 2]),
                                alpha_bar_t=col(alpha_bars[t - 1]))


def posterior_beta_from_alpha_bars(x0, x_t, t, schedule):  # β_t taken as 1 − ᾱ_t
    return posterior_parts_from(x0, x_t, t, schedule, beta_t=1 - col(schedule.alpha_bars[t - 1]))


def posterior_prev_by_division(x0, x_t, t, schedule):  # right: ᾱ_{t−1} = ᾱ_t / α_t
    alpha_bar_prev = col(schedule.alpha_bars[t - 1] / schedule.alphas[t - 1])
    return posterior_parts_from(x0, x_t, t, schedule, alpha_bar_prev=alpha_bar_prev)


def posterior_clamp_t_prev_one(x0, x_t, t, schedule):  # t − 1 kept ≥ 1: ᾱ_{t−1} at t = 1 is ᾱ_1
    alpha_bar_prev = col(schedule.alpha_bars[(t - 1).clamp(min=1) - 1])
    return posterior_parts_from(x0, x_t, t, schedule, alpha_bar_prev=alpha_bar_prev)


@exercise("5.3")
def test_posterior_written_through_alpha_bar_over_alpha_passes():
    assert_passes(checks.check_posterior_mean_variance, posterior_prev_by_division)


@exercise("5.3")
@pytest.mark.parametrize("wrong, words", [
    (posterior_prev_zero_at_start, ["t = 1", "ᾱ_0", "re:is 0|= 0\\b|0 instead"]),
    (posterior_padded_read_unpadded, ["re:one step earlier|t − 1|ᾱ_\\{t−1\\}"]),
    (posterior_beta_from_alpha_bars, ["β_t", "1 − ᾱ_t"]),
    (posterior_clamp_t_prev_one, ["t = 1", "ᾱ_0", "ᾱ_1"]),
])
def test_posterior_round_3(wrong, words):
    assert_diagnoses(checks.check_posterior_mean_variance, wrong, *words)


def ddpm_clip_before_dividing(eps, x_t, t, schedule, noise, clip=True):
    alpha_bar_t = col(schedule.alpha_bars[t - 1])
    numerator = x_t - (1 - alpha_bar_t).sqrt() * eps
    if clip:
        numerator = numerator.clamp(-1, 1)
    return ddpm_from(numerator / alpha_bar_t.sqrt(), x_t, t, schedule, noise)


def ddpm_clip_eps(eps, x_t, t, schedule, noise, clip=True):
    if clip:
        eps = eps.clamp(-1, 1)
    return ddpm_no_clip(eps, x_t, t, schedule, noise)


def ddpm_clamp_not_assigned(eps, x_t, t, schedule, noise, clip=True):
    x0_hat = predicted_x0(eps, x_t, col(schedule.alpha_bars[t - 1]))
    if clip:
        x0_hat.clamp(-1, 1)
    return ddpm_from(x0_hat, x_t, t, schedule, noise)


def ddpm_posterior_given_eps(eps, x_t, t, schedule, noise, clip=True):  # ε_θ passed where x̂_0 goes
    return ddpm_from(eps, x_t, t, schedule, noise)


def ddpm_algorithm_2_alpha_bar(eps, x_t, t, schedule, noise, clip=True):  # 1/√ᾱ_t in front, not 1/√α_t
    alpha_bar_t, beta_t = col(schedule.alpha_bars[t - 1]), col(schedule.betas[t - 1])
    mean = (x_t - beta_t / (1 - alpha_bar_t).sqrt() * eps) / alpha_bar_t.sqrt()
    return mean + col((t > 1).to(x_t.dtype)) * beta_t.sqrt() * noise


def ddpm_sigma_total_noise(eps, x_t, t, schedule, noise, clip=True):
    x0_hat = predicted_x0(eps, x_t, col(schedule.alpha_bars[t - 1]))
    return ddpm_from(x0_hat.clamp(-1, 1) if clip else x0_hat, x_t, t, schedule, noise,
                     sigma=(1 - col(schedule.alpha_bars[t - 1])).sqrt())


@exercise("5.4")
@pytest.mark.parametrize("wrong, words", [
    (ddpm_clip_before_dividing, ["re:before (the )?divi|1/√ᾱ_t"]),
    (ddpm_clip_eps, ["ε_θ", "re:clip(ped)? x̂_0|x̂_0 itself"]),
    (ddpm_clamp_not_assigned, ["not clipped"]),
    (ddpm_posterior_given_eps, ["x̂_0", "ε_θ"]),
    (ddpm_algorithm_2_alpha_bar, ["ᾱ", "α_t"]),
    (ddpm_sigma_total_noise, ["σ", "√(1 − ᾱ_t)"]),
])
def test_ddpm_step_round_3(wrong, words):
    assert_diagnoses(checks.check_ddpm_step, wrong, *words)


def ddim_clip_eps(eps, x_t, t, t_prev, schedule, clip=True):
    alpha_bars = padded(schedule)
    return ddim_with(col(alpha_bars[t]), col(alpha_bars[t_prev]), eps.clamp(-1, 1) if clip else eps, x_t, False)


def ddim_clip_before_dividing(eps, x_t, t, t_prev, schedule, clip=True):
    alpha_bars = padded(schedule)
    alpha_bar_t, alpha_bar_prev = col(alpha_bars[t]), col(alpha_bars[t_prev])
    numerator = x_t - (1 - alpha_bar_t).sqrt() * eps
    if clip:
        numerator = numerator.clamp(-1, 1)
    return alpha_bar_prev.sqrt() * numerator / alpha_bar_t.sqrt() + (1 - alpha_bar_prev).sqrt() * eps


def ddim_prev_index_clamped(eps, x_t, t, t_prev, schedule, clip=True):  # t' = 0 read as ᾱ_1
    alpha_bar_prev = col(schedule.alpha_bars[(t_prev - 1).clamp(min=0)])
    return ddim_with(col(schedule.alpha_bars[t - 1]), alpha_bar_prev, eps, x_t, clip)


def ddim_clamp_not_assigned(eps, x_t, t, t_prev, schedule, clip=True):
    alpha_bars = padded(schedule)
    alpha_bar_t, alpha_bar_prev = col(alpha_bars[t]), col(alpha_bars[t_prev])
    x0_hat = (x_t - (1 - alpha_bar_t).sqrt() * eps) / alpha_bar_t.sqrt()
    if clip:
        x0_hat.clamp(-1, 1)
    return alpha_bar_prev.sqrt() * x0_hat + (1 - alpha_bar_prev).sqrt() * eps


def ddim_x0_divided_by_alpha_bar(eps, x_t, t, t_prev, schedule, clip=True):
    alpha_bars = padded(schedule)
    alpha_bar_t, alpha_bar_prev = col(alpha_bars[t]), col(alpha_bars[t_prev])
    x0_hat = (x_t - (1 - alpha_bar_t).sqrt() * eps) / alpha_bar_t
    if clip:
        x0_hat = x0_hat.clamp(-1, 1)
    return alpha_bar_prev.sqrt() * x0_hat + (1 - alpha_bar_prev).sqrt() * eps


def ddim_prev_read_at_t_prev_plus_1(eps, x_t, t, t_prev, schedule, clip=True):  # unpadded table indexed by t'
    alpha_bar_prev = col(schedule.alpha_bars[t_prev])
    return ddim_with(col(schedule.alpha_bars[t - 1]), alpha_bar_prev, eps, x_t, clip)


@exercise("5.5")
@pytest.mark.parametrize("wrong, words", [
    (ddim_clip_eps, ["ε_θ", "x̂_0"]),
    (ddim_clip_before_dividing, ["re:before (the )?divi|1/√ᾱ_t"]),
    (ddim_prev_index_clamped, ["t' = 0", "ᾱ_0", "re:ᾱ_1|alpha_bars\\[0\\]"]),
    (ddim_clamp_not_assigned, ["not clipped"]),
    (ddim_x0_divided_by_alpha_bar, ["x̂_0", "√"]),
    (ddim_prev_read_at_t_prev_plus_1, ["re:ᾱ_\\{t'\\+1\\}|alpha_bars\\[t_prev\\]"]),
])
def test_ddim_step_round_3(wrong, words):
    assert_diagnoses(checks.check_ddim_step, wrong, *words)


def embedding_t_plus_1(t, dim):
    return embedding_ok(t + 1, dim)


def embedding_hard_coded_64(t, dim):
    return embedding_ok(t, 64)


def embedding_arange_step_2_over_half(t, dim):  # exponent 2i/(d/2): the frequencies fall twice as fast
    half = dim // 2
    frequencies = 10_000 ** (-torch.arange(0, dim, 2, dtype=torch.float32) / half)
    angles = t.float()[:, None] * frequencies[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


def embedding_linear_frequencies(t, dim):
    frequencies = torch.linspace(1, 1e-4, dim // 2)
    angles = t.float()[:, None] * frequencies[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


def embedding_over_1000(t, dim):  # t normalised to [0, 1] first
    return embedding_ok(t / 1000, dim)


def embedding_stack_rows(t, dim):  # sines and cosines stacked, then reshaped across images
    half = dim // 2
    frequencies = torch.exp(-math.log(10_000) * torch.arange(half) / half)
    angles = t.float()[:, None] * frequencies[None, :]
    return torch.stack([angles.sin(), angles.cos()]).reshape(len(t), dim)


def embedding_standard_form(t, dim):  # right: 1/10000^(2j/d) over j = 0, 2, ...
    frequencies = 1.0 / (10_000 ** (torch.arange(0, dim, 2).float() / dim))
    angles = t.float()[:, None] * frequencies[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


@exercise("5.6")
def test_embedding_in_its_standard_form_passes():
    assert_passes(checks.check_sinusoidal_embedding, embedding_standard_form)


@exercise("5.6")
@pytest.mark.parametrize("wrong, words", [
    (embedding_t_plus_1, ["t + 1"]),
    (embedding_hard_coded_64, ["64", "re:hard-coded|dim argument"]),
    (embedding_arange_step_2_over_half, ["re:2i|d/4|twice"]),
    (embedding_linear_frequencies, ["re:linear|equal steps"]),
    (embedding_over_1000, ["re:t/1000|0\\.001"]),
    (embedding_stack_rows, ["rows"]),
])
def test_embedding_round_3(wrong, words):
    assert_diagnoses(checks.check_sinusoidal_embedding, wrong, *words)


# =============================================================================================================
# Ten fresh mistakes, written after the round-3 probes were in place and not tuned for (see the closing report)
# =============================================================================================================
def fresh_linear_scaled_difference(T, beta_start=1e-4, beta_end=0.02):  # only the rise is scaled by 1000/T
    steps = torch.arange(T, dtype=torch.float64) / (T - 1)
    return beta_start + 1000 / T * steps * (beta_end - beta_start)


def fresh_cosine_pi_approx(T, s=0.008, max_beta=0.999):
    t = torch.arange(T + 1, dtype=torch.float64)
    f = torch.cos((t / T + s) / (1 + s) * 3.14 / 2) ** 2
    alpha_bars = f / f[0]
    return (1 - alpha_bars[1:] / alpha_bars[:-1]).clamp(max=max_beta)


def fresh_cosine_sqrt_ratio(T, s=0.008, max_beta=0.999):
    t = torch.arange(T + 1, dtype=torch.float64)
    f = torch.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2
    alpha_bars = f / f[0]
    return (1 - (alpha_bars[1:] / alpha_bars[:-1]).sqrt()).clamp(max=max_beta)


def fresh_q_sample_fourth_root(x0, t, noise, schedule):
    alpha_bar = col(schedule.alpha_bars[t - 1])
    return alpha_bar.sqrt().sqrt() * x0 + (1 - alpha_bar).sqrt() * noise


def fresh_posterior_noise_form_unrooted(x0, x_t, t, schedule):  # eq. (5.11) with ε recovered without its √
    alpha_bar_t, beta_t = col(schedule.alpha_bars[t - 1]), col(schedule.betas[t - 1])
    alpha_t = col(schedule.alphas[t - 1])
    eps = (x_t - alpha_bar_t.sqrt() * x0) / (1 - alpha_bar_t)
    mean = (x_t - beta_t / (1 - alpha_bar_t).sqrt() * eps) / alpha_t.sqrt()
    _, variance = posterior_ok(x0, x_t, t, schedule)
    return mean, variance


def fresh_posterior_variance_unpadded(x0, x_t, t, schedule):  # the mean padded, the variance not
    mean, _ = posterior_ok(x0, x_t, t, schedule)
    alpha_bar_prev = col(schedule.alpha_bars[t - 2])
    variance = (1 - alpha_bar_prev) / (1 - col(schedule.alpha_bars[t - 1])) * col(schedule.betas[t - 1])
    return mean, variance


def fresh_ddpm_sigma_previous_beta(eps, x_t, t, schedule, noise, clip=True):
    x0_hat = predicted_x0(eps, x_t, col(schedule.alpha_bars[t - 1]))
    return ddpm_from(x0_hat.clamp(-1, 1) if clip else x0_hat, x_t, t, schedule, noise,
                     sigma=col(schedule.betas[t - 2]).sqrt())


def fresh_ddpm_posterior_variance_as_sigma(eps, x_t, t, schedule, noise, clip=True):
    x0_hat = predicted_x0(eps, x_t, col(schedule.alpha_bars[t - 1]))
    mean, variance = posterior_ok(x0_hat.clamp(-1, 1) if clip else x0_hat, x_t, t, schedule)
    return mean + variance * noise


def fresh_ddim_alpha_t_unpadded(eps, x_t, t, t_prev, schedule, clip=True):  # ᾱ_t from the unpadded table at t
    return ddim_with(col(schedule.alpha_bars[t.clamp(max=schedule.T - 1)]), col(padded(schedule)[t_prev]), eps,
                     x_t, clip)


def fresh_embedding_two_pi(t, dim):
    half = dim // 2
    frequencies = torch.exp(-math.log(10_000) * torch.arange(half) / half)
    angles = 2 * math.pi * t.float()[:, None] * frequencies[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


FRESH = [
    (checks.check_schedules, (fresh_linear_scaled_difference, None), ["β_1", "not scaled"]),
    (checks.check_schedules, (None, fresh_cosine_pi_approx), ["re:3\\.14|π"]),
    (checks.check_schedules, (None, fresh_cosine_sqrt_ratio), ["re:square root|√"]),
    (checks.check_q_sample, fresh_q_sample_fourth_root, ["coefficient of x_0", "re:√√|\\^0\\.25|ᾱ_t\\^"]),
    (checks.check_posterior_mean_variance, fresh_posterior_noise_form_unrooted, ["re:√\\(1 − ᾱ_t\\)|square root"]),
    (checks.check_posterior_mean_variance, fresh_posterior_variance_unpadded, ["t = 1", "ᾱ_0"]),
    (checks.check_ddpm_step, fresh_ddpm_sigma_previous_beta, ["β_{t−1}"]),
    (checks.check_ddpm_step, fresh_ddpm_posterior_variance_as_sigma, ["β̃"]),
    (checks.check_ddim_step, fresh_ddim_alpha_t_unpadded, ["ᾱ_{t+1}"]),
    (checks.check_sinusoidal_embedding, fresh_embedding_two_pi, ["re:6\\.28|2π"]),
]


@pytest.mark.parametrize("check, wrong, words", FRESH, ids=[
    (w if callable(w) else next(x for x in w if x)).__name__ for _, w, _ in FRESH])
def test_fresh_mistakes_are_named(check, wrong, words):
    if isinstance(wrong, tuple):
        wrong = (wrong[0] or linear(), wrong[1] or cosine())
    assert_diagnoses(check, wrong, *words)


# =============================================================================================================
# Every reading path of the round-3 probes, with a wrong answer of its own (or the helper itself where no learner's
# answer can reach a defensive branch)
# =============================================================================================================
def q_sample_last_index_avoided(x0, t, noise, schedule):  # ᾱ_T read as ᾱ_{T−1}, "to stay inside the table"
    alpha_bar_t = col(schedule.alpha_bars[(t - 1).clamp(max=schedule.T - 2)])
    return alpha_bar_t.sqrt() * x0 + (1 - alpha_bar_t).sqrt() * noise


def q_sample_root_of_noise_term(x0, t, noise, schedule):
    alpha_bar_t = col(schedule.alpha_bars[t - 1])
    return alpha_bar_t.sqrt() * x0 + ((1 - alpha_bar_t) * noise).sqrt()


def q_sample_three_arguments(x0, t, noise):
    return x0


def q_sample_of_another_image(x0, t, noise, schedule):  # every image with the last image's t
    alpha_bar_t = schedule.alpha_bars[t[-1] - 1]
    return alpha_bar_t.sqrt() * x0 + (1 - alpha_bar_t).sqrt() * noise


def q_sample_chain_backwards(x0, t, noise, schedule):  # the index counted from the end
    alpha_bar_t = col(schedule.alpha_bars[schedule.T - t])
    return alpha_bar_t.sqrt() * x0 + (1 - alpha_bar_t).sqrt() * noise


def q_sample_linear_alpha_bar(x0, t, noise, schedule):  # ᾱ_t falling linearly to 0
    alpha_bar_t = col(1 - t.to(x0.dtype) / schedule.T)
    return alpha_bar_t.sqrt() * x0 + (1 - alpha_bar_t).sqrt() * noise


@exercise("5.2")
@pytest.mark.parametrize("wrong, words", [
    (q_sample_chain_backwards, ["except ᾱ_t", "= ᾱ_41 (alpha_bars[40])", "index k − 1"]),
    (q_sample_linear_alpha_bar, ["except ᾱ_t", "is 0.96 where eq. (5.2) needs ᾱ_2", "schedule.alpha_bars[t - 1]"]),
    (q_sample_last_index_avoided, ["only at t = 50", "ᾱ_49", "At t = T = 50", "last index"]),
    (q_sample_root_of_noise_term, ["NaN exactly where ε < 0", "√(ᾱ_t·ε)"]),
    (q_sample_three_arguments, ["raised TypeError"]),
    (q_sample_of_another_image, ["the same for every image", "those of image 7 (t = 40)"]),
])
def test_q_sample_reading_paths(wrong, words):
    assert_diagnoses(checks.check_q_sample, wrong, *words)


def ddpm_clip_eps_too(eps, x_t, t, schedule, noise, clip=True):
    return ddpm_step_ok(eps.clamp(-1, 1) if clip else eps, x_t, t, schedule, noise, clip)


def ddpm_clip_to_alpha_bar(eps, x_t, t, schedule, noise, clip=True):  # a range that changes with t, unnamed
    alpha_bar_t = col(schedule.alpha_bars[t - 1])
    x0_hat = predicted_x0(eps, x_t, alpha_bar_t)
    return ddpm_from(torch.maximum(torch.minimum(x0_hat, alpha_bar_t), -alpha_bar_t) if clip else x0_hat, x_t, t,
                     schedule, noise)


def ddpm_clip_after_scaling(eps, x_t, t, schedule, noise, clip=True):  # √ᾱ_t·x̂_0 clipped, then divided again
    alpha_bar_t = col(schedule.alpha_bars[t - 1])
    scaled = x_t - (1 - alpha_bar_t).sqrt() * eps
    x0_hat = (scaled / alpha_bar_t).clamp(-1, 1) * alpha_bar_t.sqrt() if clip else scaled / alpha_bar_t.sqrt()
    return ddpm_from(x0_hat, x_t, t, schedule, noise)


def ddpm_x_t_as_x0(eps, x_t, t, schedule, noise, clip=True):
    return ddpm_from(x_t, x_t, t, schedule, noise)


def ddpm_noise_mask_inverted(eps, x_t, t, schedule, noise, clip=True):
    x0_hat = predicted_x0(eps, x_t, col(schedule.alpha_bars[t - 1]))
    mean, _ = posterior_ok(x0_hat.clamp(-1, 1) if clip else x0_hat, x_t, t, schedule)
    return mean + col((t == 1).to(x_t.dtype)) * col(schedule.betas[t - 1]).sqrt() * noise


def ddpm_step_tables_read_late(eps, x_t, t, schedule, noise, clip=True):  # betas[t], alphas[t] inside μ̃
    def posterior(x0, x_t, t, schedule):
        return posterior_parts_from(x0, x_t, t, schedule, beta_t=col(schedule.betas[t.clamp(max=schedule.T - 1)]),
                                    alpha_t=col(schedule.alphas[t.clamp(max=schedule.T - 1)]))
    x0_hat = predicted_x0(eps, x_t, col(schedule.alpha_bars[t - 1]))
    return ddpm_from(x0_hat.clamp(-1, 1) if clip else x0_hat, x_t, t, schedule, noise, posterior=posterior)


@exercise("5.4")
@pytest.mark.parametrize("wrong, words", [
    (ddpm_clip_eps_too, ["you clipped ε_θ to [−1, 1] as well as x̂_0"]),
    (ddpm_clip_to_alpha_bar, ["and to other bounds in other images", "the same for every image"]),
    (ddpm_clip_after_scaling, ["re:clipped to ±[\\d.]+ in image", "re:√ᾱ_t|other bounds"]),
    (ddpm_x_t_as_x0, ["in the term √ᾱ_{t−1}·β_t/(1 − ᾱ_t)·x̂_0", "you used x_t in place of x̂_0"]),
    (ddpm_noise_mask_inverted, ["[t = 1] instead of √β_t·[t > 1]", "(t > 1), not (t == 1)"]),
    (ddpm_step_tables_read_late, ["β_{t+1} and α_{t+1}", "betas[t - 1] is β_t"]),
])
def test_ddpm_step_reading_paths(wrong, words):
    assert_diagnoses(checks.check_ddpm_step, wrong, *words)


def embedding_cat_batch_axis(t, dim):
    half = dim // 2
    angles = t.float()[:, None] * torch.exp(-math.log(10_000) * torch.arange(half) / half)[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=0)


def embedding_dim_frequencies(t, dim):  # dim frequencies, each with a sine and a cosine
    angles = t.float()[:, None] * torch.exp(-math.log(10_000) * torch.arange(dim) / dim)[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


def embedding_with_t_column(t, dim):
    return torch.cat([t.float()[:, None], embedding_ok(t, dim)], dim=-1)


def embedding_angle_table_transposed(t, dim):
    half = dim // 2
    angles = t.float()[None, :] * torch.exp(-math.log(10_000) * torch.arange(half) / half)[:, None]  # (d/2, B)
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


def embedding_half_step_late(t, dim):
    return embedding_ok(t + 0.5, dim)


def embedding_exponent_over_128(t, dim):
    frequencies = 10_000 ** (-torch.arange(dim // 2) / 128)
    angles = t.float()[:, None] * frequencies[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


def embedding_exponent_over_half_plus_1(t, dim):
    half = dim // 2
    frequencies = 10_000 ** (-torch.arange(half) / (half + 1))
    angles = t.float()[:, None] * frequencies[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


def embedding_floor_exponent(t, dim):
    half = dim // 2
    frequencies = 10_000.0 ** (-(torch.arange(half) // half))
    angles = t.float()[:, None] * frequencies[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


@exercise("5.6")
@pytest.mark.parametrize("wrong, words", [
    (embedding_cat_batch_axis, ["(2B, d/2)", "dim=-1"]),
    (embedding_dim_frequencies, ["(B, 2d)", "d/2 frequencies"]),
    (embedding_with_t_column, ["shape (10, 17)"]),
    (embedding_angle_table_transposed, ["(d/2, B)", "t[:, None] * ω[None, :]"]),
    (embedding_half_step_late, ["you embedded 1·t + 0.5"]),
    (embedding_exponent_over_128, ["−i/128, a fixed number", "hard-coded"]),
    (embedding_exponent_over_half_plus_1, ["(d/2 + 1) = −i/9"]),
    (embedding_floor_exponent, ["all your frequencies are 1"]),
])
def test_embedding_reading_paths(wrong, words):
    assert_diagnoses(checks.check_sinusoidal_embedding, wrong, *words)


@exercise("5.1")
def test_cosine_reading_paths():
    def cosine_squared_time(T, s=0.008, max_beta=0.999):  # not a line in t: no argument can be read
        return cosine_variant(T, s, max_beta, argument=lambda u, s: (u ** 2 * 2 + s) / (1 + s) * math.pi / 2)

    def cosine_pi_squared(T, s=0.008, max_beta=0.999):  # an argument that is no small change of eq. (5.4)'s
        return cosine_variant(T, s, max_beta, argument=lambda u, s: (u + s) / (1 + s) * math.pi ** 2 / 2)
    assert_diagnoses(checks.check_schedules, (linear(), cosine_squared_time), "not positive", "rises again")
    assert_diagnoses(checks.check_schedules, (linear(), cosine_pi_squared), "rises 3.142 × as fast",
                     "as if π were 9.8696")


def test_reading_helpers_refuse_what_they_cannot_read():
    """The defensive branches: inputs no learner's answer reaches through a check, read by the helpers directly."""
    betas = checks.reference_cosine_schedule(50)
    assert schedules._recover_cosine_argument(betas[:4], 0.999) is None  # too few steps
    assert schedules._recover_cosine_argument(torch.full((20,), 1e-3, dtype=torch.float64), 0.999) is None  # flat
    assert schedules._recover_cosine_argument(torch.full((20,), -1e12, dtype=torch.float64), 0.999) is None  # huge
    assert schedules._read_cosine_argument(betas, 50, 0.008, 0.999) is None  # the right argument
    assert all(probe(betas) is None for probe in schedules._cosine_probes(None, 50, 0.008, 0.999))
    linear_betas = checks.reference_linear_schedule(50)
    assert all(probe(linear_betas) is None for probe in schedules._linear_probes(None, 50, 1e-4, 0.02))
    assert checks.recover_embedded_steps(torch.zeros(3, 5), torch.ones(2)) is None
    assert embedding._aliased_factor(torch.ones(2, dtype=torch.float64), torch.ones(2, dtype=torch.float64)) is None
    frequencies = 10_000.0 ** (-torch.arange(4, dtype=torch.float64) / 4)
    assert embedding._frequency_problem(frequencies, frequencies, 4) is None
    assert embedding._embedding_probes(torch.tensor([1, 2]), 4)[3](torch.zeros(2, 4)) is None  # too few rows
    context = checks.StepContext(checks.ImageCase("x").schedule(), {"t": torch.tensor([1, 2])})
    assert recovery._name_value_at(1.0, context, "ᾱ", 0) == "1"
    assert checks.nonfinite_pixels_problem(torch.tensor([[math.nan, 1.0]]), {"x0": torch.ones(1, 2)}, {"x0": "x_0"},
                                           output="x_t") is None  # too few finite entries to fit
    assert checks.varying_axis_problem(torch.ones(2, 1, 1, 2), {"x0": torch.ones(2, 1, 1, 2)}, what="x") is None
    got = checks.Q_SAMPLE_MODEL.evaluate(context)
    assert checks.recover_variable(checks.Q_SAMPLE_MODEL, context, got) is None  # nothing to recover
    assert checks.recover_variable(checks.Q_SAMPLE_MODEL, context, {k: v * math.nan for k, v in got.items()}) is None


def test_the_x0_a_step_implies_is_read_through_a_change_of_eq_5_12():
    """x̂_0 = (x_t − √(1 − ᾱ_t)·ε)/ᾱ_t inside an otherwise right DDIM step (its own change search finds it first in a
    check; the reading names it too)."""
    context = checks.StepContext(checks.ImageCase("x").schedule(), {"t": torch.tensor([3, 9]),
                                                                    "t'": torch.tensor([1, 4])})
    parts = dict(checks.DDIM_MODEL.parts)
    parts["d"] = checks.Formula((formulas._f("ᾱ"),))
    got = checks.DDIM_MODEL.evaluate(context, parts)
    message = checks.DDIM_MODEL.readings[0](context, got)
    assert "its x̂_0 =" in message and "ᾱ_t without its square root everywhere (ᾱ_t in place of √ᾱ_t)" in message


# =============================================================================================================
# Round 2 of wrong answers (24, written before the readings they led to: terms.py, values.py, the option runs)
# =============================================================================================================
def linear_returns_all_three(T, beta_start=1e-4, beta_end=0.02):
    betas = linear()(T, beta_start, beta_end)
    alphas = 1 - betas
    return betas, alphas, torch.cumprod(alphas, 0)


def cosine_min_beta(T, s=0.008, max_beta=0.999):  # a floor "to keep the first steps from vanishing"
    return cosine()(T, s, max_beta).clamp(min=1e-4)


def cosine_alpha_bars_clamped(T, s=0.008, max_beta=0.999):
    steps = torch.arange(T + 1, dtype=torch.float64) / T
    f = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
    alpha_bars = (f / f[0]).clamp(min=1e-5)
    return (1 - alpha_bars[1:] / alpha_bars[:-1]).clamp(max=max_beta)


def q_sample_x0_twice(x0, t, noise, schedule):
    alpha_bar_t = col(schedule.alpha_bars[t - 1])
    return alpha_bar_t.sqrt() * x0 + (1 - alpha_bar_t).sqrt() * x0


def q_sample_returns_pair(x0, t, noise, schedule):
    return q_sample_ok(x0, t, noise, schedule), noise


def q_sample_signal_unscaled(x0, t, noise, schedule):
    return x0 + (1 - col(schedule.alpha_bars[t - 1])).sqrt() * noise


def posterior_mean_precedence(x0, x_t, t, schedule):
    alpha_bar_t, alpha_bar_prev, beta_t, alpha_t = posterior_parts(schedule, t)
    mean = alpha_bar_prev.sqrt() * beta_t * x0 + alpha_t.sqrt() * (1 - alpha_bar_prev) * x_t / (1 - alpha_bar_t)
    return mean, (1 - alpha_bar_prev) / (1 - alpha_bar_t) * beta_t


def posterior_prev_times_alpha(x0, x_t, t, schedule):
    alpha_bar_t, alpha_t, beta_t = (col(v[t - 1]) for v in (schedule.alpha_bars, schedule.alphas, schedule.betas))
    alpha_bar_prev = alpha_bar_t * alpha_t  # ᾱ_{t−1} = ᾱ_t/α_t
    mean = (alpha_bar_prev.sqrt() * beta_t / (1 - alpha_bar_t) * x0
            + alpha_t.sqrt() * (1 - alpha_bar_prev) / (1 - alpha_bar_t) * x_t)
    return mean, (1 - alpha_bar_prev) / (1 - alpha_bar_t) * beta_t


def posterior_log_variance(x0, x_t, t, schedule):
    mean, variance = posterior_ok(x0, x_t, t, schedule)
    return mean, torch.log(variance.clamp(min=1e-20))


def ddpm_algorithm_2_precedence(eps, x_t, t, schedule, noise, clip=True):
    if clip:
        return ddpm_step_ok(eps, x_t, t, schedule, noise, clip)
    alpha_t, beta_t, alpha_bar_t = (col(v[t - 1]) for v in (schedule.alphas, schedule.betas, schedule.alpha_bars))
    z = col((t > 1).to(x_t.dtype)) * noise
    return x_t - beta_t / (1 - alpha_bar_t).sqrt() * eps / alpha_t.sqrt() + beta_t.sqrt() * z


def ddpm_x0_inputs_swapped(eps, x_t, t, schedule, noise, clip=True):
    x0_hat = predicted_x0(x_t, eps, col(schedule.alpha_bars[t - 1]))  # (eps, x_t) in the wrong order
    return ddpm_from(x0_hat.clamp(-1, 1) if clip else x0_hat, x_t, t, schedule, noise)


def ddpm_returns_x0(eps, x_t, t, schedule, noise, clip=True):
    x0_hat = predicted_x0(eps, x_t, col(schedule.alpha_bars[t - 1]))
    return x0_hat.clamp(-1, 1) if clip else x0_hat


def ddpm_clipped_copy_unused(eps, x_t, t, schedule, noise, clip=True):
    x0_hat = predicted_x0(eps, x_t, col(schedule.alpha_bars[t - 1]))
    if clip:
        x0_clipped = x0_hat.clamp(-1, 1)  # noqa: F841 - computed, then x0_hat used below
    return ddpm_from(x0_hat, x_t, t, schedule, noise)


def ddpm_mask_on_everything(eps, x_t, t, schedule, noise, clip=True):
    x0_hat = predicted_x0(eps, x_t, col(schedule.alpha_bars[t - 1]))
    mean, _ = posterior_ok(x0_hat.clamp(-1, 1) if clip else x0_hat, x_t, t, schedule)
    return col((t > 1).to(x_t.dtype)) * (mean + col(schedule.betas[t - 1]).sqrt() * noise)


def ddpm_sigma_forward_std(eps, x_t, t, schedule, noise, clip=True):
    alpha_bar_t = col(schedule.alpha_bars[t - 1])
    x0_hat = predicted_x0(eps, x_t, alpha_bar_t)
    return ddpm_from(x0_hat.clamp(-1, 1) if clip else x0_hat, x_t, t, schedule, noise, sigma=(1 - alpha_bar_t).sqrt())


def ddim_x_t_as_direction(eps, x_t, t, t_prev, schedule, clip=True):
    alpha_bars = padded(schedule)
    alpha_bar_t, alpha_bar_prev = col(alpha_bars[t]), col(alpha_bars[t_prev])
    x0_hat = predicted_x0(eps, x_t, alpha_bar_t)
    x0_hat = x0_hat.clamp(-1, 1) if clip else x0_hat
    return alpha_bar_prev.sqrt() * x0_hat + (1 - alpha_bar_prev).sqrt() * x_t


def ddim_ratio_without_root(eps, x_t, t, t_prev, schedule, clip=True):  # the closed form, √ of the ratio lost
    if clip:
        return ddim_step_ok(eps, x_t, t, t_prev, schedule, clip)
    alpha_bars = padded(schedule)
    alpha_bar_t, alpha_bar_prev = col(alpha_bars[t]), col(alpha_bars[t_prev])
    return (alpha_bar_prev / alpha_bar_t) * x_t + ((1 - alpha_bar_prev).sqrt()
                                                   - (alpha_bar_prev * (1 - alpha_bar_t) / alpha_bar_t).sqrt()) * eps


def ddim_clip_only_min(eps, x_t, t, t_prev, schedule, clip=True):
    alpha_bars = padded(schedule)
    alpha_bar_t, alpha_bar_prev = col(alpha_bars[t]), col(alpha_bars[t_prev])
    x0_hat = predicted_x0(eps, x_t, alpha_bar_t)
    x0_hat = torch.clip(x0_hat, -1) if clip else x0_hat
    return alpha_bar_prev.sqrt() * x0_hat + (1 - alpha_bar_prev).sqrt() * eps


def ddim_returns_pair(eps, x_t, t, t_prev, schedule, clip=True):
    alpha_bar_t = col(padded(schedule)[t])
    x0_hat = predicted_x0(eps, x_t, alpha_bar_t)
    return ddim_step_ok(eps, x_t, t, t_prev, schedule, clip), x0_hat


def ddim_x0_numerator_at_prev(eps, x_t, t, t_prev, schedule, clip=True):
    alpha_bars = padded(schedule)
    alpha_bar_t, alpha_bar_prev = col(alpha_bars[t]), col(alpha_bars[t_prev])
    x0_hat = (x_t - (1 - alpha_bar_prev).sqrt() * eps) / alpha_bar_t.sqrt()
    x0_hat = x0_hat.clamp(-1, 1) if clip else x0_hat
    return alpha_bar_prev.sqrt() * x0_hat + (1 - alpha_bar_prev).sqrt() * eps


def embedding_log_base_mixup(t, dim):
    half = dim // 2
    return embedding_from(t, dim, 10 ** (-math.log(10_000) * torch.arange(half) / half))


def embedding_t_times_1000(t, dim):  # as for a continuous t in [0, 1]
    return embedding_from(t * 1000, dim, standard_frequencies(dim))


def embedding_even_i_over_half(t, dim):
    half = dim // 2
    return embedding_from(t, dim, 10_000.0 ** (-torch.arange(0, dim, 2) / half))


def embedding_numpy(t, dim):
    half = dim // 2
    frequencies = np.exp(-math.log(10_000) * np.arange(half) / half)
    angles = t.numpy()[:, None] * frequencies[None, :]
    return np.concatenate([np.sin(angles), np.cos(angles)], axis=-1).astype(np.float32)


ROUND_2 = [
    ("5.1", (linear_returns_all_three, cosine), ["tuple of 3", "item 0 is the right betas"]),
    ("5.1", (linear, cosine_min_beta), ["clamped from below at 0.0001", "from above only", ".clamp(max=max_beta)"]),
    ("5.1", (linear, cosine_alpha_bars_clamped), ["clip β_t itself", "not ᾱ_t or f(t)"]),
    ("5.2", q_sample_x0_twice, ["in the term √(1 − ᾱ_t)·ε of eq. (5.2)", "you used x_0 in place of ε"]),
    ("5.2", q_sample_returns_pair, ["tuple of 2", "item 0 is the right x_t"]),
    ("5.2", q_sample_signal_unscaled, ["coefficient of x_0 is 1 instead of √ᾱ_t"]),
    ("5.3", posterior_mean_precedence, ["the coefficient of x_0 lacks the division by 1 − ᾱ_t", "operator precedence",
                                        "(alpha_bar_prev.sqrt() * beta_t * x0 +"]),
    ("5.3", posterior_prev_times_alpha, ["your ᾱ_{t−1} is ᾱ_t·α_t at every image", "ᾱ_{t−1} = ᾱ_t/α_t"]),
    ("5.3", posterior_log_variance, ["your variance is log(β̃_t)", "not β̃_t itself"]),
    ("5.4", ddpm_algorithm_2_precedence, ["the coefficient of x_t lacks the division by √α_t", "operator precedence"]),
    ("5.4", ddpm_x0_inputs_swapped, ["its x̂_0 =", "hold each other's tensors", "Swap x_t and ε_θ back"]),
    ("5.4", ddpm_returns_x0, ["your output is x̂_0", "not the step's result yet"]),
    ("5.4", ddpm_clipped_copy_unused, ["ignores the clip argument", "never clips x̂_0"]),
    ("5.4", ddpm_mask_on_everything, ["your output is 0 at the images with t = 1", "the mask [t > 1]",
                                      "noise term only"]),
    ("5.4", ddpm_sigma_forward_std, ["√(1 − ᾱ_t) in place of √β_t"]),
    ("5.5", ddim_x_t_as_direction, ["in the term √(1 − ᾱ_{t'})·ε_θ", "you used x_t in place of ε_θ"]),
    ("5.5", ddim_ratio_without_root, ["the coefficient of x_t is the square of", "a square root is missing"]),
    ("5.5", ddim_clip_only_min, ["you clipped x̂_0 to [-1,", "the upper one is missing"]),
    ("5.5", ddim_returns_pair, ["tuple of 2", "item 0 is the right x_{t'}"]),
    ("5.5", ddim_x0_numerator_at_prev, ["√(1 − ᾱ_{t'}) in place of √(1 − ᾱ_t)", "t vs t'"]),
    ("5.6", embedding_log_base_mixup, ["10000^2.303", "a natural log (math.log) raised as a power of 10"]),
    ("5.6", embedding_t_times_1000, ["every frequency is 1000 ×", "Remove the factor 1000"]),
    ("5.6", embedding_even_i_over_half, ["your exponent is −i/(d/4)", "torch.arange(0, d, 2)"]),
    ("5.6", embedding_numpy, ["ndarray, not a torch.Tensor"]),
]
# Ten more, written after those readings and run untouched (3 named then, by the words written with them; the
# readings they led to: a shifted sequence, a clamped output, a quantity recovered as a power, two variables
# exchanged, a term holding another tensor, one part of a composed step, a Python `if` on a (B,) tensor, t times the
# frequencies without a table)
def cosine_prepended_zero(T, s=0.008, max_beta=0.999):
    return torch.cat([torch.zeros(1, dtype=torch.float64), cosine()(T, s, max_beta)])[:-1]  # "betas[t] is β_t"


def q_sample_clamped(x0, t, noise, schedule):
    return q_sample_ok(x0, t, noise, schedule).clamp(-1, 1)


def q_sample_one_minus_square(x0, t, noise, schedule):
    a = col(schedule.alpha_bars[t - 1])
    return a.sqrt() * x0 + (1 - a ** 2).sqrt() * noise


def posterior_t_and_prev_swapped(x0, x_t, t, schedule):
    alpha_bars = padded(schedule)
    alpha_bar_prev, alpha_bar_t = col(alpha_bars[t]), col(alpha_bars[t - 1])
    beta_t, alpha_t = col(schedule.betas[t - 1]), col(schedule.alphas[t - 1])
    mean = (alpha_bar_prev.sqrt() * beta_t / (1 - alpha_bar_t) * x0
            + alpha_t.sqrt() * (1 - alpha_bar_prev) / (1 - alpha_bar_t) * x_t)
    return mean, (1 - alpha_bar_prev) / (1 - alpha_bar_t) * beta_t


def ddpm_noise_as_x0(eps, x_t, t, schedule, noise, clip=True):
    return ddpm_from(noise, x_t, t, schedule, noise)


def ddpm_x0_hat_as_x_t(eps, x_t, t, schedule, noise, clip=True):
    x0_hat = predicted_x0(eps, x_t, col(schedule.alpha_bars[t - 1]))
    x0_hat = x0_hat.clamp(-1, 1) if clip else x0_hat
    mean, _ = posterior_ok(x0_hat, x0_hat, t, schedule)
    return mean + col((t > 1).to(x_t.dtype)) * col(schedule.betas[t - 1]).sqrt() * noise


def ddim_eta_one_without_noise(eps, x_t, t, t_prev, schedule, clip=True):
    alpha_bars = padded(schedule)
    alpha_bar_t, alpha_bar_prev = col(alpha_bars[t]), col(alpha_bars[t_prev])
    sigma = ((1 - alpha_bar_prev) / (1 - alpha_bar_t) * (1 - alpha_bar_t / alpha_bar_prev)).sqrt()
    return ddim_with(alpha_bar_t, alpha_bar_prev, eps, x_t, clip, direction=(1 - alpha_bar_prev - sigma ** 2).sqrt())


def ddim_python_if(eps, x_t, t, t_prev, schedule, clip=True):
    alpha_bar_t = col(schedule.alpha_bars[t - 1])
    alpha_bar_prev = col(schedule.alpha_bars[t_prev - 1]) if t_prev > 0 else torch.ones_like(alpha_bar_t)
    return ddim_with(alpha_bar_t, alpha_bar_prev, eps, x_t, clip)


def embedding_logspace(t, dim):
    return embedding_from(t, dim, torch.logspace(0, -4, dim // 2))


def embedding_no_table(t, dim):
    angles = t.float() * standard_frequencies(dim)  # (B,) times (d/2,)
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


ROUND_2 += [
    ("5.1", (linear, cosine_prepended_zero), ["every value is 1 step late", "β_0 = 0 prepended"]),
    ("5.2", q_sample_clamped, ["your x_t is clamped to [-1, 1], and otherwise right", "remove it"]),
    ("5.2", q_sample_one_minus_square, ["your ᾱ_t is ᾱ_t² at every image", "use ᾱ_t itself"]),
    ("5.3", posterior_t_and_prev_swapped, ["ᾱ_{t−1} and ᾱ_t are swapped everywhere"]),
    ("5.4", ddpm_noise_as_x0, ["you used z in place of x̂_0"]),
    ("5.4", ddpm_x0_hat_as_x_t, ["in the term √α_t·(1 − ᾱ_{t−1})/(1 − ᾱ_t)·x_t", "you used x̂_0 in place of x_t"]),
    ("5.5", ddim_eta_one_without_noise, ["ε_θ's coefficient in the new sample (the direction)", "σ_t for η = 1"]),
    ("5.5", ddim_python_if, ["Python `if`", "torch.where"]),
    ("5.6", embedding_logspace, ["your exponent is −i/(d/2 − 1)"]),
    ("5.6", embedding_no_table, ["t[:, None] * frequencies[None, :]"]),
]


CHECKS = {"5.1": checks.check_schedules, "5.2": checks.check_q_sample, "5.3": checks.check_posterior_mean_variance,
          "5.4": checks.check_ddpm_step, "5.5": checks.check_ddim_step, "5.6": checks.check_sinusoidal_embedding}


@pytest.mark.parametrize("exercise_id, wrong, words", [
    pytest.param(exercise_id, wrong, words, marks=exercise(exercise_id),
                 id=getattr(wrong, "__name__", None) or "-".join(getattr(w, "__name__", "ref") for w in wrong))
    for exercise_id, wrong, words in ROUND_2])
def test_round_2_wrong_answers_are_named(exercise_id, wrong, words):
    if isinstance(wrong, tuple):  # 5.1 takes (linear_schedule, cosine_schedule); `linear`/`cosine` give the solution
        wrong = tuple(w() if w in (linear, cosine) else w for w in wrong)
    assert_diagnoses(CHECKS[exercise_id], wrong, *words)


def ddpm_clip_inverted(eps, x_t, t, schedule, noise, clip=True):
    return ddpm_step_ok(eps, x_t, t, schedule, noise, not clip)


def ddim_fails_without_clip(eps, x_t, t, t_prev, schedule, clip=True):
    if not clip:
        raise ValueError("only the clipped step is written")
    return ddim_step_ok(eps, x_t, t, t_prev, schedule, clip=False)


@exercise("5.4")
def test_the_clip_option_is_read_from_the_learners_two_runs():
    assert_diagnoses(checks.check_ddpm_step, ddpm_clip_inverted, "clips x̂_0 when clip=False and not when clip=True",
                     "`if not clip`?")


@exercise("5.5")
def test_a_run_with_the_other_clip_setting_that_fails_is_left_out():
    """The learner's code raises with clip=False: only the clip=True run is read (x̂_0 not clipped)."""
    assert_diagnoses(checks.check_ddim_step, ddim_fails_without_clip, "raised ValueError", error=LearnerError)
    rerun = checks_images.rerun_with(ddim.EX_DDIM, ddim_fails_without_clip, checks.ImageCase("x"), {}, clip=False)
    assert rerun() is None


def _terms(model, context, change):
    """Terms for ``model`` whose learner's coefficients are the model's with ``change(expected)`` applied."""
    expected = model.evaluate(context)
    names = {"x0": "x_0", "noise": "ε", "x_t": "x_t", "eps": "ε_θ", "z": "z"}
    return terms.Terms(model, context, change(dict(expected)), expected, {k: names[k] for k in expected})


def test_term_readings_on_coefficients_built_by_hand():
    """Readings that the checks' own order leaves to later (another reading comes first for every answer tried):
    each on coefficients built to show it, and each refusing what it must not read."""
    schedule = checks.ImageCase("x").schedule().to(torch.float64)
    context = checks.StepContext(schedule, {"t": torch.tensor([2, 9, 17, 30])})
    root_beta = schedule.betas[context.steps["t"] - 1].sqrt()

    def part_moved(c):  # √β_t of ε's coefficient on x_0 instead
        return {"x0": c["x0"] + root_beta, "noise": c["noise"] - root_beta}
    message = terms.moved(_terms(checks.Q_SAMPLE_MODEL, context, part_moved))
    assert "part of ε's coefficient, √β_t, is on x_0 instead" in message
    ddpm = _terms(checks.DDPM_MODEL, context, lambda c: {"x_t": c["eps"], "eps": c["x_t"], "z": c["z"]})
    assert "x_t and ε_θ are in each other's places (swapped)" in terms.exchanged(ddpm)
    scaled = _terms(checks.Q_SAMPLE_MODEL, context, lambda c: {"x0": c["x0"], "noise": c["noise"] * root_beta})
    assert "the coefficient of ε is √β_t × the right one" in terms.ratio(scaled)
    assert terms.zero_images(_terms(checks.Q_SAMPLE_MODEL, context,
                                    lambda c: {"x0": c["x0"] * 0, "noise": c["noise"] * 2})) is None
    direction = _terms(checks.DDIM_MODEL, checks.StepContext(schedule, {"t": torch.tensor([6, 12, 30, 41]),
                                                                        "t'": torch.tensor([1, 7, 25, 36])}),
                       lambda c: {"x_t": c["x_t"], "eps": c["eps"] + torch.tensor([0.1, 0.2, 0.05, 0.3])})
    assert "which the numbers cannot single out" in terms.recovered_part(direction)
    noisy = _terms(checks.DDPM_MODEL, context, lambda c: {**c, "z": c["z"] * torch.tensor([1.5, 1.1, 1.3, 1.7])})
    assert "except the coefficient σ_t of z: yours is" in terms.recovered_part(noisy)
    assert readings.reason(checks.Q_SAMPLE_MODEL, context, checks.Q_SAMPLE_MODEL.evaluate(context),
                           {"x0": "x_0", "noise": "ε"}) is None


def test_whole_value_readings_refuse_what_they_cannot_read():
    values_module = __import__("utils.checks.diffusion.values", fromlist=["values"])
    expected = torch.linspace(0.1, 0.9, 8, dtype=torch.float64)
    assert values_module.clamped([1.0], expected) is None
    assert values_module.clamped(torch.full((8,), math.nan, dtype=torch.float64), expected) is None
    assert values_module.clamped(expected.clamp(max=0.5), expected) == "clamped from above at 0.5"
    assert values_module.transform([1.0], expected) is None
    assert values_module.transform(expected, -expected) is None  # log, √ defined nowhere; no other fits
    assert values_module.shifted(expected[None], expected[None]) is None
    assert values_module.transform_text("square", "β̃_t") == "(β̃_t)²"
    schedule = checks.ImageCase("x").schedule().to(torch.float64)
    context = checks.StepContext(schedule, {"t": torch.tensor([2, 9, 17, 30])})
    assert naming.name_vector(torch.tensor([0.3, 0.1, 0.7, 0.2], dtype=torch.float64), context,
                              {"named": torch.tensor([0.3, 0.1, 0.7, 0.2], dtype=torch.float64)}) == "named"
    assert embedding._frequency_problem(2 * 10_000.0 ** (-torch.arange(8, dtype=torch.float64) / 8),
                                        10_000.0 ** (-torch.arange(8, dtype=torch.float64) / 8), 8) is not None


def ddim_new_sample_at_t(eps, x_t, t, t_prev, schedule, clip=True):  # returns x_t: the two ᾱ's are the same one
    alpha_bar_t = col(padded(schedule)[t])
    return ddim_with(alpha_bar_t, alpha_bar_t, eps, x_t, clip)


@exercise("5.5")
def test_an_output_that_is_its_input_lists_the_changes_that_give_it():
    assert_diagnoses(checks.check_ddim_step, ddim_new_sample_at_t, "your output is x_t itself",
                     "your step changed nothing", "Each of these changes", "in x̂_0 (eq. 5.12), you used ᾱ_{t'}",
                     "in the new sample, you used ᾱ_t in place of ᾱ_{t'}")


def test_more_term_readings_on_coefficients_built_by_hand():
    schedule = checks.ImageCase("x").schedule().to(torch.float64)
    context = checks.StepContext(schedule, {"t": torch.tensor([2, 9, 17, 30])})
    first_zero = torch.tensor([0.0, 1.0, 1.0, 1.0], dtype=torch.float64)
    zero_then_wrong = _terms(checks.Q_SAMPLE_MODEL, context,  # image 0 is 0, the others wrong too
                             lambda c: {"x0": c["x0"] * first_zero * 2, "noise": c["noise"] * first_zero})
    assert terms.zero_images(zero_then_wrong) is None
    whole = _terms(checks.Q_SAMPLE_MODEL, context, lambda c: {"x0": c["x0"] + c["noise"], "noise": 0 * c["noise"]})
    assert "the term √(1 − ᾱ_t)·ε is missing" in terms.moved(whole)
    three = _terms(checks.DDPM_MODEL, context, lambda c: {"x_t": c["x_t"] + c["z"], "eps": c["eps"] - c["z"],
                                                          "z": c["z"] * 2})
    assert terms.moved(three) is None  # a third coefficient is wrong as well
    change = next(iter(changes.changes(checks.Q_SAMPLE_MODEL)))
    assert readings._candidates([change]).startswith(" The change to the equation that gives it: ")
    assert readings._candidates([]) == ""
