"""Chapter 05 checks, round 6: wrong answers of kinds no held-out set has, written before the readings they led to.

Each is a learner's exercise cell with one mistake. The families they stand for: a coefficient added to its tensor
where the equation multiplies (``+ noise`` for ``* noise``); the ᾱ table padded at the wrong end (every ᾱ read one
step off while β and α are right); a neighbouring quantity in place of a factor (β_t taken as 1 − ᾱ_t, the
denominator 1 − ᾱ_{t−1} for 1 − ᾱ_t); a − 1 moved out of a square root; the cosine schedule's argument with a pair
of parentheses missing; sines and cosines stacked on a new axis. ``FRESH`` was written after the readings, to
measure them.
"""
import math

import pytest
import torch
import torch.nn.functional as F

from tests.checks_harness import assert_diagnoses, exercise
from tests.test_checks_diffusion import col, padded
from utils.checks import diffusion as checks
from utils.checks.diffusion import images as checks_images

CHAPTER = "05_diffusion"


def end_padded(schedule):
    return F.pad(schedule.alpha_bars, (0, 1), value=1.0)  # the 1 appended: index t holds ᾱ_{t+1}


def with_cosine(cosine_schedule):
    return (checks.reference_linear_schedule, cosine_schedule)


def x0_hat(eps, x_t, alpha_bar_t, clip):
    estimate = (x_t - (1 - alpha_bar_t).sqrt() * eps) / alpha_bar_t.sqrt()
    return estimate.clamp(-1, 1) if clip else estimate


# ----- Exercise 5.1 -----------------------------------------------------------------------------------------------
def cosine_denominator_unbracketed(T, s=0.008, max_beta=0.999):
    steps = torch.arange(T + 1, dtype=torch.float64) / T
    f = torch.cos((steps + s) / 1 + s * math.pi / 2) ** 2
    alpha_bars = f / f[0]
    return (1 - alpha_bars[1:] / alpha_bars[:-1]).clamp(max=max_beta)


def cosine_bracket_closed_late(T, s=0.008, max_beta=0.999):
    steps = torch.arange(T + 1, dtype=torch.float64) / T
    f = torch.cos((steps + s / (1 + s)) * math.pi / 2) ** 2
    alpha_bars = f / f[0]
    return (1 - alpha_bars[1:] / alpha_bars[:-1]).clamp(max=max_beta)


# ----- Exercise 5.2 -----------------------------------------------------------------------------------------------
def q_sample_signal_added(x0, t, noise, schedule):
    alpha_bar_t = col(schedule.alpha_bars[t - 1])
    return alpha_bar_t.sqrt() + x0 + (1 - alpha_bar_t).sqrt() * noise


def q_sample_both_added(x0, t, noise, schedule):
    alpha_bar_t = col(schedule.alpha_bars[t - 1])
    return alpha_bar_t.sqrt() + x0 + (1 - alpha_bar_t).sqrt() + noise


def q_sample_end_padded(x0, t, noise, schedule):
    alpha_bar_t = col(end_padded(schedule)[t])
    return alpha_bar_t.sqrt() * x0 + (1 - alpha_bar_t).sqrt() * noise


# ----- Exercise 5.3 -----------------------------------------------------------------------------------------------
def posterior_xt_denominator_from_prev(x0, x_t, t, schedule):  # 0/0 at t = 1
    alpha_bars = padded(schedule)
    alpha_bar_t, alpha_bar_prev = col(alpha_bars[t]), col(alpha_bars[t - 1])
    beta_t, alpha_t = col(schedule.betas[t - 1]), col(schedule.alphas[t - 1])
    mean = (alpha_bar_prev.sqrt() * beta_t / (1 - alpha_bar_t) * x0
            + alpha_t.sqrt() * (1 - alpha_bar_prev) / (1 - alpha_bar_prev) * x_t)
    return mean, (1 - alpha_bar_prev) / (1 - alpha_bar_t) * beta_t


def posterior_variance_beta_from_alpha_bar(x0, x_t, t, schedule):
    alpha_bars = padded(schedule)
    alpha_bar_t, alpha_bar_prev = col(alpha_bars[t]), col(alpha_bars[t - 1])
    beta_t, alpha_t = col(schedule.betas[t - 1]), col(schedule.alphas[t - 1])
    mean = (alpha_bar_prev.sqrt() * beta_t * x0 + alpha_t.sqrt() * (1 - alpha_bar_prev) * x_t) / (1 - alpha_bar_t)
    variance = (1 - alpha_bar_prev) / (1 - alpha_bar_t) * (1 - alpha_bar_t)
    return mean, variance


def posterior_end_padded_both(x0, x_t, t, schedule):
    alpha_bars = end_padded(schedule)
    alpha_bar_t, alpha_bar_prev = col(alpha_bars[t]), col(alpha_bars[t - 1])
    beta_t, alpha_t = col(schedule.betas[t - 1]), col(schedule.alphas[t - 1])
    mean = (alpha_bar_prev.sqrt() * beta_t * x0 + alpha_t.sqrt() * (1 - alpha_bar_prev) * x_t) / (1 - alpha_bar_t)
    variance = (1 - alpha_bar_prev) / (1 - alpha_bar_t) * beta_t
    return mean, variance


def posterior_denominators_from_prev(x0, x_t, t, schedule):  # 0/0 at t = 1
    alpha_bars = padded(schedule)
    alpha_bar_prev = col(alpha_bars[t - 1])
    beta_t, alpha_t = col(schedule.betas[t - 1]), col(schedule.alphas[t - 1])
    denominator = 1 - alpha_bar_prev
    mean = alpha_bar_prev.sqrt() * beta_t / denominator * x0 + alpha_t.sqrt() * (1 - alpha_bar_prev) / denominator * x_t
    variance = (1 - alpha_bar_prev) / (1 - col(alpha_bars[t])) * beta_t
    return mean, variance


# ----- Exercise 5.4 -----------------------------------------------------------------------------------------------
def ddpm_noise_added(eps, x_t, t, schedule, noise, clip=True):
    alpha_bars = padded(schedule)
    alpha_bar_t, alpha_bar_prev = col(alpha_bars[t]), col(alpha_bars[t - 1])
    beta_t, alpha_t = col(schedule.betas[t - 1]), col(schedule.alphas[t - 1])
    estimate = x0_hat(eps, x_t, alpha_bar_t, clip)
    mean = (alpha_bar_prev.sqrt() * beta_t * estimate + alpha_t.sqrt() * (1 - alpha_bar_prev) * x_t) / (1 - alpha_bar_t)
    sigma = beta_t.sqrt() * col((t > 1).to(x_t.dtype))
    return mean + sigma + noise


def ddpm_end_padded(eps, x_t, t, schedule, noise, clip=True):
    alpha_bars = end_padded(schedule)
    alpha_bar_t, alpha_bar_prev = col(alpha_bars[t]), col(alpha_bars[t - 1])
    beta_t, alpha_t = col(schedule.betas[t - 1]), col(schedule.alphas[t - 1])
    estimate = x0_hat(eps, x_t, alpha_bar_t, clip)
    mean = (alpha_bar_prev.sqrt() * beta_t * estimate + alpha_t.sqrt() * (1 - alpha_bar_prev) * x_t) / (1 - alpha_bar_t)
    return mean + beta_t.sqrt() * col((t > 1).to(x_t.dtype)) * noise


# ----- Exercise 5.5 -----------------------------------------------------------------------------------------------
def ddim_noise_added(eps, x_t, t, t_prev, schedule, clip=True):
    alpha_bars = padded(schedule)
    alpha_bar_t, alpha_bar_prev = col(alpha_bars[t]), col(alpha_bars[t_prev])
    return alpha_bar_prev.sqrt() * x0_hat(eps, x_t, alpha_bar_t, clip) + (1 - alpha_bar_prev).sqrt() + eps


def ddim_recip_minus_one_unrooted(eps, x_t, t, t_prev, schedule, clip=True):
    alpha_bars = padded(schedule)
    alpha_bar_t, alpha_bar_prev = col(alpha_bars[t]), col(alpha_bars[t_prev])
    estimate = (1 / alpha_bar_t).sqrt() * x_t - (1 / alpha_bar_t.sqrt() - 1) * eps
    if clip:
        estimate = estimate.clamp(-1, 1)
    return alpha_bar_prev.sqrt() * estimate + (1 - alpha_bar_prev).sqrt() * eps


def ddim_end_padded(eps, x_t, t, t_prev, schedule, clip=True):
    alpha_bars = end_padded(schedule)
    alpha_bar_t, alpha_bar_prev = col(alpha_bars[t]), col(alpha_bars[t_prev])
    return alpha_bar_prev.sqrt() * x0_hat(eps, x_t, alpha_bar_t, clip) + (1 - alpha_bar_prev).sqrt() * eps


# ----- Exercise 5.6 -----------------------------------------------------------------------------------------------
def embedding_stacked_last(t, dim):
    half = dim // 2
    frequencies = torch.exp(-math.log(10_000) * torch.arange(half) / half)
    angles = t.float()[:, None] * frequencies[None, :]
    return torch.stack([angles.sin(), angles.cos()], dim=-1)


def embedding_dim_frequencies_cos_first_half(t, dim):
    frequencies = torch.exp(-math.log(10_000) * torch.arange(dim) / dim)
    angles = t.float()[:, None] * frequencies[None, :]
    return torch.cat([angles[:, ::2].sin(), angles[:, 1::2].cos()], dim=-1)


CHECKS = {"5.1": checks.check_schedules, "5.2": checks.check_q_sample, "5.3": checks.check_posterior_mean_variance,
          "5.4": checks.check_ddpm_step, "5.5": checks.check_ddim_step, "5.6": checks.check_sinusoidal_embedding}

SCRATCH = [
    ("5.1", with_cosine(cosine_denominator_unbracketed), ["parentheses around 1 + s are missing"]),
    ("5.1", with_cosine(cosine_bracket_closed_late), ["parentheses around t/T + s are missing"]),
    ("5.2", q_sample_signal_added, ["√ᾱ_t + x_0 in place of √ᾱ_t·x_0"]),
    ("5.2", q_sample_both_added, ["√ᾱ_t + x_0 in place of", "√(1 − ᾱ_t) + ε in place of"]),
    ("5.2", q_sample_end_padded, ["re:ᾱ_\\{t\\+1\\} in place of ᾱ_t|padded at the end"]),
    ("5.3", posterior_xt_denominator_from_prev, ["1 − ᾱ_{t−1}", "ᾱ_0"]),
    ("5.5", ddim_end_padded, ["re:one step later|padded at the end"]),
    ("5.3", posterior_variance_beta_from_alpha_bar, ["(1 − ᾱ_t) in place of β_t"]),
    ("5.3", posterior_end_padded_both, ["re:padded at the end|one step later"]),
    ("5.3", posterior_denominators_from_prev, ["denominator 1 − ᾱ_{t−1} in place of 1 − ᾱ_t", "ᾱ_0"]),
    ("5.4", ddpm_noise_added, ["re:\\+ z in place of"]),
    ("5.4", ddpm_end_padded, ["re:one step later|padded"]),
    ("5.5", ddim_noise_added, ["re:\\+ ε_θ in place of|added"]),
    ("5.5", ddim_recip_minus_one_unrooted, ["√(1/ᾱ_t − 1)"]),
    ("5.6", embedding_stacked_last, ["torch.stack([sin, cos], dim=-1)", "torch.cat"]),
    ("5.6", embedding_dim_frequencies_cos_first_half, ["re:same (ω|frequenc)"]),
]


@pytest.mark.parametrize("exercise_id, wrong, words", [
    pytest.param(exercise_id, wrong, words, marks=exercise(exercise_id), id=getattr(wrong, "__name__", None) or
                 wrong[1].__name__) for exercise_id, wrong, words in SCRATCH])
def test_round_6_wrong_answers_are_named(exercise_id, wrong, words):
    assert_diagnoses(CHECKS[exercise_id], wrong, *words)


# ----- Written after the readings, to measure them ----------------------------------------------------------------
def fresh_cosine_numerator_s_unbracketed(T, s=0.008, max_beta=0.999):
    steps = torch.arange(T + 1, dtype=torch.float64) / T
    f = torch.cos((steps + s / 1 + s) * math.pi / 2) ** 2
    alpha_bars = f / f[0]
    return (1 - alpha_bars[1:] / alpha_bars[:-1]).clamp(max=max_beta)


def fresh_q_sample_power_half(x0, t, noise, schedule):
    alpha_bar_t = col(schedule.alpha_bars[t - 1])
    return alpha_bar_t ** 1/2 * x0 + (1 - alpha_bar_t) ** 1/2 * noise


def fresh_posterior_root_on_beta(x0, x_t, t, schedule):
    alpha_bars = padded(schedule)
    alpha_bar_t, alpha_bar_prev = col(alpha_bars[t]), col(alpha_bars[t - 1])
    beta_t, alpha_t = col(schedule.betas[t - 1]), col(schedule.alphas[t - 1])
    mean = (alpha_bar_prev * beta_t.sqrt() * x0 + alpha_t.sqrt() * (1 - alpha_bar_prev) * x_t) / (1 - alpha_bar_t)
    return mean, (1 - alpha_bar_prev) / (1 - alpha_bar_t) * beta_t


def fresh_posterior_beta_as_one_minus_prev(x0, x_t, t, schedule):
    alpha_bars = padded(schedule)
    alpha_bar_t, alpha_bar_prev = col(alpha_bars[t]), col(alpha_bars[t - 1])
    beta_t, alpha_t = 1 - alpha_bar_prev, col(schedule.alphas[t - 1])
    mean = (alpha_bar_prev.sqrt() * beta_t * x0 + alpha_t.sqrt() * (1 - alpha_bar_prev) * x_t) / (1 - alpha_bar_t)
    return mean, (1 - alpha_bar_prev) / (1 - alpha_bar_t) * beta_t


def fresh_posterior_variance_bracket_late(x0, x_t, t, schedule):
    alpha_bars = padded(schedule)
    alpha_bar_t, alpha_bar_prev = col(alpha_bars[t]), col(alpha_bars[t - 1])
    beta_t, alpha_t = col(schedule.betas[t - 1]), col(schedule.alphas[t - 1])
    mean = (alpha_bar_prev.sqrt() * beta_t * x0 + alpha_t.sqrt() * (1 - alpha_bar_prev) * x_t) / (1 - alpha_bar_t)
    return mean, (1 - alpha_bar_prev) / (1 - alpha_bar_t * beta_t)


def fresh_ddpm_sigma_power_half(eps, x_t, t, schedule, noise, clip=True):
    alpha_bars = padded(schedule)
    alpha_bar_t, alpha_bar_prev = col(alpha_bars[t]), col(alpha_bars[t - 1])
    beta_t, alpha_t = col(schedule.betas[t - 1]), col(schedule.alphas[t - 1])
    estimate = x0_hat(eps, x_t, alpha_bar_t, clip)
    mean = (alpha_bar_prev.sqrt() * beta_t * estimate + alpha_t.sqrt() * (1 - alpha_bar_prev) * x_t) / (1 - alpha_bar_t)
    return mean + beta_t ** 1/2 * col((t > 1).to(x_t.dtype)) * noise


def fresh_ddpm_estimate_added(eps, x_t, t, schedule, noise, clip=True):
    alpha_bars = padded(schedule)
    alpha_bar_t, alpha_bar_prev = col(alpha_bars[t]), col(alpha_bars[t - 1])
    beta_t, alpha_t = col(schedule.betas[t - 1]), col(schedule.alphas[t - 1])
    estimate = x0_hat(eps, x_t, alpha_bar_t, clip)
    coefficient = alpha_bar_prev.sqrt() * beta_t / (1 - alpha_bar_t)
    mean = coefficient + estimate + alpha_t.sqrt() * (1 - alpha_bar_prev) / (1 - alpha_bar_t) * x_t
    return mean + beta_t.sqrt() * col((t > 1).to(x_t.dtype)) * noise


def fresh_ddim_estimate_added(eps, x_t, t, t_prev, schedule, clip=True):
    alpha_bars = padded(schedule)
    alpha_bar_t, alpha_bar_prev = col(alpha_bars[t]), col(alpha_bars[t_prev])
    return alpha_bar_prev.sqrt() + x0_hat(eps, x_t, alpha_bar_t, clip) + (1 - alpha_bar_prev).sqrt() * eps


def fresh_ddim_recipm1_unrooted(eps, x_t, t, t_prev, schedule, clip=True):
    alpha_bars = padded(schedule)
    alpha_bar_t, alpha_bar_prev = col(alpha_bars[t]), col(alpha_bars[t_prev])
    estimate = x_t / alpha_bar_t.sqrt() - (1 / alpha_bar_t - 1) * eps
    if clip:
        estimate = estimate.clamp(-1, 1)
    return alpha_bar_prev.sqrt() * estimate + (1 - alpha_bar_prev).sqrt() * eps


def fresh_embedding_stack_flattened(t, dim):
    half = dim // 2
    frequencies = torch.exp(-math.log(10_000) * torch.arange(half) / half)
    angles = t.float()[:, None] * frequencies[None, :]
    return torch.stack([angles.sin(), angles.cos()], dim=-1).flatten(1)


FRESH = [
    ("5.1", with_cosine(fresh_cosine_numerator_s_unbracketed), ["parenthes"]),
    ("5.2", fresh_q_sample_power_half, ["** 1/2"]),
    ("5.3", fresh_posterior_root_on_beta, ["square root is on β_t"]),
    ("5.3", fresh_posterior_beta_as_one_minus_prev, ["1 − ᾱ_{t−1}"]),
    ("5.3", fresh_posterior_variance_bracket_late, ["re:parenthes|bracket"]),
    ("5.4", fresh_ddpm_sigma_power_half, ["** 1/2"]),
    ("5.4", fresh_ddpm_estimate_added, ["re:\\+ x̂_0 in place of"]),
    ("5.5", fresh_ddim_estimate_added, ["re:\\+ x̂_0 in place of"]),
    ("5.5", fresh_ddim_recipm1_unrooted, ["re:square root"]),
    ("5.6", fresh_embedding_stack_flattened, ["interleav"]),
]


@pytest.mark.parametrize("exercise_id, wrong, words", [
    pytest.param(exercise_id, wrong, words, marks=exercise(exercise_id), id=getattr(wrong, "__name__", None) or
                 wrong[1].__name__) for exercise_id, wrong, words in FRESH])
def test_round_6_fresh_wrong_answers_are_named(exercise_id, wrong, words):
    assert_diagnoses(CHECKS[exercise_id], wrong, *words)


# ----- Coverage of the readings' other branches -------------------------------------------------------------------
def posterior_padded_read_as_unpadded(x0, x_t, t, schedule):
    alpha_bars = padded(schedule)
    alpha_bar_t, alpha_bar_prev = col(alpha_bars[t - 1]), col(alpha_bars[(t - 2).clamp(min=0)])
    beta_t, alpha_t = col(schedule.betas[t - 1]), col(schedule.alphas[t - 1])
    mean = (alpha_bar_prev.sqrt() * beta_t * x0 + alpha_t.sqrt() * (1 - alpha_bar_prev) * x_t) / (1 - alpha_bar_t)
    return mean, (1 - alpha_bar_prev) / (1 - alpha_bar_t) * beta_t


def embedding_stacked_on_axis_1(t, dim):
    half = dim // 2
    frequencies = torch.exp(-math.log(10_000) * torch.arange(half) / half)
    angles = t.float()[:, None] * frequencies[None, :]
    return torch.stack([angles.sin(), angles.cos()], dim=1)


@exercise("5.3")
def test_every_alpha_bar_one_step_earlier_is_a_padded_table_read_as_the_unpadded_one():
    assert_diagnoses(checks.check_posterior_mean_variance, posterior_padded_read_as_unpadded,
                     "you read every ᾱ one step earlier", "padded[t] is ᾱ_t", "the zero operand is one of them")


@exercise("5.6")
def test_sines_and_cosines_stacked_on_axis_1_are_named():
    assert_diagnoses(checks.check_sinusoidal_embedding, embedding_stacked_on_axis_1,
                     "torch.stack([sin, cos], dim=1)", "torch.cat([sin, cos], dim=-1)")


@exercise("5.3")
def test_non_finite_images_at_the_last_step_ask_whether_a_table_is_read_past_its_end():
    schedule = checks.Schedule.from_betas(checks.reference_linear_schedule(10))
    t = torch.tensor([3, 10, 5])
    context = checks.StepContext(schedule, {"t": t})
    got = torch.zeros(3, 1, 2, 2)
    got[1] = math.inf
    message = checks_images.nonfinite_images_problem(got, torch.zeros_like(got), context, output="mean")
    assert "t = 10" in message and "t = T = 10" in message and "padded at the end" in message
    with_origin = checks_images.nonfinite_images_problem(got, torch.zeros_like(got), context, output="mean",
                                                  origin="inf is made at line 3 by a division by zero.")
    assert "inf is made at line 3 by a division by zero" in with_origin and "padded at the end" in with_origin


def q_sample_terms_multiplied(x0, t, noise, schedule):
    alpha_bar_t = col(schedule.alpha_bars[t - 1])
    return alpha_bar_t.sqrt() * x0 * (1 - alpha_bar_t).sqrt() * noise


def posterior_terms_multiplied(x0, x_t, t, schedule):
    alpha_bars = padded(schedule)
    alpha_bar_t, alpha_bar_prev = col(alpha_bars[t]), col(alpha_bars[t - 1])
    beta_t, alpha_t = col(schedule.betas[t - 1]), col(schedule.alphas[t - 1])
    mean = (alpha_bar_prev.sqrt() * beta_t / (1 - alpha_bar_t) * x0
            * alpha_t.sqrt() * (1 - alpha_bar_prev) / (1 - alpha_bar_t) * x_t)
    return mean, (1 - alpha_bar_prev) / (1 - alpha_bar_t) * beta_t


@pytest.mark.parametrize("wrong, check", [
    pytest.param(q_sample_terms_multiplied, checks.check_q_sample, marks=exercise("5.2")),
    pytest.param(posterior_terms_multiplied, checks.check_posterior_mean_variance, marks=exercise("5.3"))])
def test_two_terms_multiplied_where_the_equation_adds_them_are_named(wrong, check):
    assert_diagnoses(check, wrong, "you multiplied two terms", "a * typed for a +")


# ----- A second set written after the readings, to measure them again ---------------------------------------------
def fresh2_q_sample_variance_as_coefficient(x0, t, noise, schedule):
    alpha_bar_t = col(schedule.alpha_bars[t - 1])
    return alpha_bar_t.sqrt() * x0 + (1 - alpha_bar_t) * noise


def fresh2_posterior_variance_is_beta(x0, x_t, t, schedule):
    alpha_bars = padded(schedule)
    alpha_bar_t, alpha_bar_prev = col(alpha_bars[t]), col(alpha_bars[t - 1])
    beta_t, alpha_t = col(schedule.betas[t - 1]), col(schedule.alphas[t - 1])
    mean = (alpha_bar_prev.sqrt() * beta_t * x0 + alpha_t.sqrt() * (1 - alpha_bar_prev) * x_t) / (1 - alpha_bar_t)
    return mean, beta_t


def fresh2_posterior_xt_with_alpha_bar(x0, x_t, t, schedule):
    alpha_bars = padded(schedule)
    alpha_bar_t, alpha_bar_prev = col(alpha_bars[t]), col(alpha_bars[t - 1])
    beta_t = col(schedule.betas[t - 1])
    mean = (alpha_bar_prev.sqrt() * beta_t * x0 + alpha_bar_t.sqrt() * (1 - alpha_bar_prev) * x_t) / (1 - alpha_bar_t)
    return mean, (1 - alpha_bar_prev) / (1 - alpha_bar_t) * beta_t


def fresh2_posterior_variance_unbracketed(x0, x_t, t, schedule):
    alpha_bars = padded(schedule)
    alpha_bar_t, alpha_bar_prev = col(alpha_bars[t]), col(alpha_bars[t - 1])
    beta_t, alpha_t = col(schedule.betas[t - 1]), col(schedule.alphas[t - 1])
    mean = (alpha_bar_prev.sqrt() * beta_t * x0 + alpha_t.sqrt() * (1 - alpha_bar_prev) * x_t) / (1 - alpha_bar_t)
    return mean, (1 - alpha_bar_prev) / 1 - alpha_bar_t * beta_t


def fresh2_posterior_rooted_denominator(x0, x_t, t, schedule):
    alpha_bars = padded(schedule)
    alpha_bar_t, alpha_bar_prev = col(alpha_bars[t]), col(alpha_bars[t - 1])
    beta_t, alpha_t = col(schedule.betas[t - 1]), col(schedule.alphas[t - 1])
    numerator = alpha_bar_prev.sqrt() * beta_t * x0 + alpha_t.sqrt() * (1 - alpha_bar_prev) * x_t
    mean = numerator / (1 - alpha_bar_t).sqrt()
    return mean, (1 - alpha_bar_prev) / (1 - alpha_bar_t) * beta_t


def fresh2_ddpm_sigma_posterior_variance(eps, x_t, t, schedule, noise, clip=True):
    alpha_bars = padded(schedule)
    alpha_bar_t, alpha_bar_prev = col(alpha_bars[t]), col(alpha_bars[t - 1])
    beta_t, alpha_t = col(schedule.betas[t - 1]), col(schedule.alphas[t - 1])
    estimate = x0_hat(eps, x_t, alpha_bar_t, clip)
    mean = (alpha_bar_prev.sqrt() * beta_t * estimate + alpha_t.sqrt() * (1 - alpha_bar_prev) * x_t) / (1 - alpha_bar_t)
    variance = (1 - alpha_bar_prev) / (1 - alpha_bar_t) * beta_t
    return mean + variance * col((t > 1).to(x_t.dtype)) * noise


def fresh2_ddim_estimate_variance_noise(eps, x_t, t, t_prev, schedule, clip=True):
    alpha_bars = padded(schedule)
    alpha_bar_t, alpha_bar_prev = col(alpha_bars[t]), col(alpha_bars[t_prev])
    estimate = (x_t - (1 - alpha_bar_t) * eps) / alpha_bar_t.sqrt()
    if clip:
        estimate = estimate.clamp(-1, 1)
    return alpha_bar_prev.sqrt() * estimate + (1 - alpha_bar_prev).sqrt() * eps


def fresh2_embedding_exponent_over_dim(t, dim):
    half = dim // 2
    frequencies = 10_000 ** (-torch.arange(half) / dim)
    angles = t.float()[:, None] * frequencies[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


def fresh2_cosine_not_squared(T, s=0.008, max_beta=0.999):
    steps = torch.arange(T + 1, dtype=torch.float64) / T
    f = torch.cos((steps + s) / (1 + s) * math.pi / 2)
    alpha_bars = f / f[0]
    return (1 - alpha_bars[1:] / alpha_bars[:-1]).clamp(max=max_beta)


def fresh2_linear_float32(T, beta_start=1e-4, beta_end=0.02):
    scale = 1000 / T
    return torch.linspace(scale * beta_start, scale * beta_end, T)


FRESH_2 = [
    ("5.2", fresh2_q_sample_variance_as_coefficient, ["re:square root|√"]),
    ("5.3", fresh2_posterior_variance_is_beta, ["β_t"]),
    ("5.3", fresh2_posterior_xt_with_alpha_bar, ["re:ᾱ_t in place of α_t|√ᾱ_t in place of √α_t"]),
    ("5.3", fresh2_posterior_variance_unbracketed, ["parentheses"]),
    ("5.3", fresh2_posterior_rooted_denominator, ["re:square root|√\\(1 − ᾱ_t\\)"]),
    ("5.4", fresh2_ddpm_sigma_posterior_variance, ["re:β̃|variance"]),
    ("5.5", fresh2_ddim_estimate_variance_noise, ["re:square root|√"]),
    ("5.6", fresh2_embedding_exponent_over_dim, ["re:d/2|half|dim"]),
    ("5.1", with_cosine(fresh2_cosine_not_squared), ["re:cos²|squar"]),
    ("5.1", (fresh2_linear_float32, checks.reference_cosine_schedule), ["float64"]),
]


@pytest.mark.parametrize("exercise_id, wrong, words", [
    pytest.param(exercise_id, wrong, words, marks=exercise(exercise_id), id=getattr(wrong, "__name__", None) or
                 wrong[0].__name__) for exercise_id, wrong, words in FRESH_2])
def test_round_6_second_fresh_wrong_answers_are_named(exercise_id, wrong, words):
    assert_diagnoses(CHECKS[exercise_id], wrong, *words)


def embedding_log_left_out(t, dim):  # e^(−10000·i/half): 1, 0, 0, … as integer frequencies would be
    half = dim // 2
    frequencies = torch.exp(-10_000 * torch.arange(half) / half)
    angles = t.float()[:, None] * frequencies[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


@exercise("5.6")
def test_frequencies_that_are_1_0_0_name_both_integer_truncation_and_underflow():
    assert_diagnoses(checks.check_sinusoidal_embedding, embedding_log_left_out, "integer dtype",
                     "the log of 10000 left out", "check which your code has")


def q_sample_noise_multiplies_the_bracket(x0, t, noise, schedule):
    alpha_bar_t = col(schedule.alpha_bars[t - 1])
    return (alpha_bar_t.sqrt() * x0 + (1 - alpha_bar_t).sqrt()) * noise


@exercise("5.2")
def test_an_input_multiplying_the_whole_bracket_is_named():
    assert_diagnoses(checks.check_q_sample, q_sample_noise_multiplies_the_bracket, "a parenthesis is misplaced",
                     "(√ᾱ_t·x_0 + √(1 − ᾱ_t))·ε")


def ddim_estimate_roots_as_power_half(eps, x_t, t, t_prev, schedule, clip=True):
    alpha_bars = padded(schedule)
    alpha_bar_t, alpha_bar_prev = col(alpha_bars[t]), col(alpha_bars[t_prev])
    estimate = (x_t - (1 - alpha_bar_t) ** 1/2 * eps) / alpha_bar_t ** 1/2
    if clip:
        estimate = estimate.clamp(-1, 1)
    return alpha_bar_prev.sqrt() * estimate + (1 - alpha_bar_prev).sqrt() * eps


@exercise("5.5")
def test_a_divisor_written_q_power_half_divides_by_q_and_then_by_2():
    assert_diagnoses(checks.check_ddim_step, ddim_estimate_roots_as_power_half, "every square root is written",
                     "`/ ᾱ_t ** 1/2` divides by ᾱ_t and then by 2", "`(1 − ᾱ_t) ** 1/2` is (1 − ᾱ_t)/2")
