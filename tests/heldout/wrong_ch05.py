"""Held-out wrong answers for Chapter 05 (diffusion), each written as a learner writes the exercise cell.

The helpers a learner's cell uses from earlier cells (``posterior_mean_variance`` in ``ddpm_step``) and the half
of a two-function exercise that is not wrong are the chapter's reference solutions, so each answer holds exactly
one mistake.
"""
import math

import torch
import torch.nn.functional as F

from tests.heldout.report import Registry, solution_namespace

REF = solution_namespace("05_diffusion")
linear_schedule = REF["linear_schedule"]
cosine_schedule = REF["cosine_schedule"]
posterior_mean_variance = REF["posterior_mean_variance"]

REGISTRY = Registry("05", {
    "5.1": ("check_schedules", "linear_schedule"),  # the name of the first object; see arguments below
    "5.2": ("check_q_sample", "q_sample"),
    "5.3": ("check_posterior_mean_variance", "posterior_mean_variance"),
    "5.4": ("check_ddpm_step", "ddpm_step"),
    "5.5": ("check_ddim_step", "ddim_step"),
    "5.6": ("check_sinusoidal_embedding", "sinusoidal_embedding"),
})
wrong = REGISTRY.wrong

with_reference_cosine = lambda linear: (linear, cosine_schedule)  # noqa: E731 - a wrong linear, the right cosine
with_reference_linear = lambda cosine: (linear_schedule, cosine)  # noqa: E731 - the right linear, a wrong cosine


# ----- Exercise 5.1: schedules --------------------------------------------------------------------------------

@wrong("5.1", "linear: scaled only beta_end by 1000/T, not beta_start",
       names=[r"(β_?start|beta_start|β_1)[^.]{0,60}(not scaled|unscaled|scal)",
              r"(only|just) (the )?(end|β_end|beta_end)", r"\bstart\b.{0,40}1000 ?/ ?T"],
       arguments=with_reference_cosine)
def linear_scale_end_only(T, beta_start=1e-4, beta_end=0.02):
    return torch.linspace(beta_start, 1000 / T * beta_end, T, dtype=torch.float64)


@wrong("5.1", "linear: scale = 1000 // T, integer division (3 instead of 3.33 at T = 300; 0 for T > 1000)",
       names=[r"integer", r"floor", r"//"],
       arguments=with_reference_cosine)
def linear_integer_scale(T, beta_start=1e-4, beta_end=0.02):
    scale = 1000 // T
    return torch.linspace(scale * beta_start, scale * beta_end, T, dtype=torch.float64)


@wrong("5.1", "cosine: t not divided by T inside f: cos²((t + s)/(1 + s) · π/2) on the integer steps",
       names=[r"(not|never|forgot\w*)[^.]{0,20}divid\w* (t )?by T", r"divid\w* t by T", r"integer steps",
              r"fraction of the (chain|steps)", r"t\s*/\s*T[^.]{0,20}(not|instead of) t\b"],
       arguments=with_reference_linear, learner_name="cosine_schedule")
def cosine_steps_not_divided(T, s=0.008, max_beta=0.999):
    steps = torch.arange(T + 1, dtype=torch.float64)
    f = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
    alpha_bars = f / f[0]
    return (1 - alpha_bars[1:] / alpha_bars[:-1]).clamp(max=max_beta)


@wrong("5.1", "cosine: clipped at a hard-coded 0.999 instead of max_beta",
       names=[r"max_beta argument", r"hard[- ]?cod", r"clip at (the )?max_beta",
              r"max_beta[^.]{0,30}(ignored|not used)"],
       arguments=with_reference_linear, learner_name="cosine_schedule")
def cosine_hardcoded_clip(T, s=0.008, max_beta=0.999):
    steps = torch.arange(T + 1, dtype=torch.float64) / T
    f = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
    alpha_bars = f / f[0]
    return (1 - alpha_bars[1:] / alpha_bars[:-1]).clamp(max=0.999)


@wrong("5.1", "cosine: (t/T + s) / (1 − s) instead of / (1 + s)",
       names=[r"1\s*[−-]\s*s\b", r"denominator", r"1 ?\+ ?s[^.]{0,20}(not|instead of)"],
       arguments=with_reference_linear, learner_name="cosine_schedule")
def cosine_one_minus_s(T, s=0.008, max_beta=0.999):
    steps = torch.arange(T + 1, dtype=torch.float64) / T
    f = torch.cos((steps + s) / (1 - s) * math.pi / 2) ** 2
    alpha_bars = f / f[0]
    return (1 - alpha_bars[1:] / alpha_bars[:-1]).clamp(max=max_beta)


@wrong("5.1", "cosine: computed in float32 and converted with .double() at the end (β_1 loses ~3 digits)",
       names=[r"float32", r"precision", r"cancel", r"single[- ]precision"],
       arguments=with_reference_linear, learner_name="cosine_schedule")
def cosine_float32(T, s=0.008, max_beta=0.999):
    steps = torch.arange(T + 1) / T
    f = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
    alpha_bars = f / f[0]
    return (1 - alpha_bars[1:] / alpha_bars[:-1]).clamp(max=max_beta).double()


# ----- Exercise 5.2: q_sample ---------------------------------------------------------------------------------

@wrong("5.2", "ᾱ_t reshaped with view(-1, 1, 1): (B, 1, 1) lines the batch up with the channels",
       names=[r"view\(-1, ?1, ?1\)", r"\(B, ?1, ?1\)", r"three[- ]dim", r"lin\w* up with the (C|channel)",
              r"channel axis"])
def q_sample_three_dim_view(x0, t, noise, schedule):
    alpha_bar_t = schedule.alpha_bars[t - 1].view(-1, 1, 1)
    return alpha_bar_t.sqrt() * x0 + (1 - alpha_bar_t).sqrt() * noise


@wrong("5.2", "used the first image's t for the whole batch (t[0])",
       names=[r"own t\b", r"t\[0\]", r"same t\b", r"first image's t", r"per[- ]image t\b", r"one t for"])
def q_sample_first_t(x0, t, noise, schedule):
    alpha_bar_t = schedule.alpha_bars[t[0] - 1]
    return alpha_bar_t.sqrt() * x0 + (1 - alpha_bar_t).sqrt() * noise


@wrong("5.2", "precedence: 1 − √ᾱ_t instead of √(1 − ᾱ_t) for the noise coefficient",
       names=[r"√\s*\(\s*1\s*[−-]\s*ᾱ_?t?\)?[^.]{0,30}(not|instead of|in place of)[^.]{0,10}1\s*[−-]\s*√",
              r"1\s*[−-]\s*√\s*ᾱ", r"precedence", r"parenthes"])
def q_sample_precedence(x0, t, noise, schedule):
    alpha_bar_t = schedule.alpha_bars[t - 1].view(-1, 1, 1, 1)
    return alpha_bar_t.sqrt() * x0 + (1 - alpha_bar_t.sqrt()) * noise


@wrong("5.2", "√(ᾱ_t · x_0) instead of √ᾱ_t · x_0: NaN wherever x_0 < 0",
       names=[r"√\s*\(\s*ᾱ_?t?\s*·?\s*x", r"sqrt.{0,20}x_?0", r"square root of (the product|ᾱ_t ?·? ?x|x_?0)",
              r"x_?0 (is |can be )?negative"])
def q_sample_sqrt_of_product(x0, t, noise, schedule):
    alpha_bar_t = schedule.alpha_bars[t - 1].view(-1, 1, 1, 1)
    return torch.sqrt(alpha_bar_t * x0) + (1 - alpha_bar_t).sqrt() * noise


@wrong("5.2", "ᾱ_t taken as 1 − Σ β_s (cumsum) instead of the product Π (1 − β_s)",
       names=[r"cumsum", r"cumprod", r"product of (the )?(α|alphas|1 ?[−-] ?β)", r"Σ\s*β", r"sum of (the )?β",
              r"Π_?s?\s*\(?1\s*[−-]\s*β"])
def q_sample_cumsum(x0, t, noise, schedule):
    alpha_bar_t = (1 - schedule.betas.cumsum(0))[t - 1].view(-1, 1, 1, 1)
    return alpha_bar_t.sqrt() * x0 + (1 - alpha_bar_t).sqrt() * noise


@wrong("5.2", "scaled the noise in place (noise.mul_): right x_t, but the caller's ε — the training target — changed",
       names=[r"in[- ]place", r"overwr\w*", r"modifi\w*", r"mutat\w*"],
       late=True)
def q_sample_in_place_noise(x0, t, noise, schedule):
    alpha_bar_t = schedule.alpha_bars[t - 1].view(-1, 1, 1, 1)
    noise.mul_((1 - alpha_bar_t).sqrt())
    return alpha_bar_t.sqrt() * x0 + noise


# ----- Exercise 5.3: the posterior ----------------------------------------------------------------------------

@wrong("5.3", "ᾱ_{t−1} as alpha_bars[(t − 2).clamp(min=0)]: at t = 1 it is ᾱ_1, not ᾱ_0 = 1",
       names=[r"ᾱ_\{?0\}?", r"alpha_bar_?0", r"\bfirst step"])
def posterior_clamped_index(x0, x_t, t, schedule):
    alpha_bar_t = schedule.alpha_bars[t - 1].view(-1, 1, 1, 1)
    alpha_bar_prev = schedule.alpha_bars[(t - 2).clamp(min=0)].view(-1, 1, 1, 1)
    beta_t = schedule.betas[t - 1].view(-1, 1, 1, 1)
    alpha_t = schedule.alphas[t - 1].view(-1, 1, 1, 1)
    mean = (alpha_bar_prev.sqrt() * beta_t / (1 - alpha_bar_t) * x0
            + alpha_t.sqrt() * (1 - alpha_bar_prev) / (1 - alpha_bar_t) * x_t)
    return mean, (1 - alpha_bar_prev) / (1 - alpha_bar_t) * beta_t


@wrong("5.3", "after padding alpha_bars, indexed betas[t] and alphas[t] too (β_{t+1}, α_{t+1}; IndexError at t = T)",
       names=[r"off[- ]by[- ]one", r"betas\[t\s*[−-]\s*1\]", r"alphas\[t\s*[−-]\s*1\]", r"β_\{?t\s*\+\s*1",
              r"α_\{?t\s*\+\s*1"])
def posterior_betas_indexed_by_t(x0, x_t, t, schedule):
    alpha_bars = F.pad(schedule.alpha_bars, (1, 0), value=1.0)
    alpha_bar_t = alpha_bars[t].view(-1, 1, 1, 1)
    alpha_bar_prev = alpha_bars[t - 1].view(-1, 1, 1, 1)
    beta_t = schedule.betas[t].view(-1, 1, 1, 1)
    alpha_t = schedule.alphas[t].view(-1, 1, 1, 1)
    mean = (alpha_bar_prev.sqrt() * beta_t / (1 - alpha_bar_t) * x0
            + alpha_t.sqrt() * (1 - alpha_bar_prev) / (1 - alpha_bar_t) * x_t)
    return mean, (1 - alpha_bar_prev) / (1 - alpha_bar_t) * beta_t


@wrong("5.3", "x_t's coefficient with (1 − ᾱ_t) in the numerator instead of (1 − ᾱ_{t−1}): it reduces to √α_t",
       names=[
              r"(1\s*[−-]\s*ᾱ_t)\)?[^.]{0,30}(in place of|instead of)[^.]{0,10}\(?1\s*[−-]\s*ᾱ_\{?t\s*[−-]\s*1",
              r"numerator", r"reduces to √α_t",
              r"(coefficient of x_t|x_t's coefficient)( is|:)? √α_t\b"])
def posterior_xt_numerator(x0, x_t, t, schedule):
    alpha_bars = F.pad(schedule.alpha_bars, (1, 0), value=1.0)
    alpha_bar_t = alpha_bars[t].view(-1, 1, 1, 1)
    alpha_bar_prev = alpha_bars[t - 1].view(-1, 1, 1, 1)
    beta_t = schedule.betas[t - 1].view(-1, 1, 1, 1)
    alpha_t = schedule.alphas[t - 1].view(-1, 1, 1, 1)
    mean = (alpha_bar_prev.sqrt() * beta_t / (1 - alpha_bar_t) * x0
            + alpha_t.sqrt() * (1 - alpha_bar_t) / (1 - alpha_bar_t) * x_t)
    return mean, (1 - alpha_bar_prev) / (1 - alpha_bar_t) * beta_t


@wrong("5.3", "x_0's coefficient uses ᾱ_{t−1} without the square root",
       names=[r"ᾱ_\{?t\s*[−-]\s*1\}?[^.]{0,30}in place of √ᾱ_\{?t\s*[−-]\s*1",
              r"(missing|forgot\w*|without) (the )?(square root|√|sqrt)",
              r"√ᾱ_\{?t\s*[−-]\s*1\}?,? not ᾱ_\{?t\s*[−-]\s*1", r"square root of ᾱ"])
def posterior_x0_no_sqrt(x0, x_t, t, schedule):
    alpha_bars = F.pad(schedule.alpha_bars, (1, 0), value=1.0)
    alpha_bar_t = alpha_bars[t].view(-1, 1, 1, 1)
    alpha_bar_prev = alpha_bars[t - 1].view(-1, 1, 1, 1)
    beta_t = schedule.betas[t - 1].view(-1, 1, 1, 1)
    alpha_t = schedule.alphas[t - 1].view(-1, 1, 1, 1)
    mean = (alpha_bar_prev * beta_t / (1 - alpha_bar_t) * x0
            + alpha_t.sqrt() * (1 - alpha_bar_prev) / (1 - alpha_bar_t) * x_t)
    return mean, (1 - alpha_bar_prev) / (1 - alpha_bar_t) * beta_t


@wrong("5.3", "the variance multiplies by α_t instead of β_t",
       names=[r"α_t in place of β_t", r"α_t[^.]{0,30}(instead of|not|rather than) β_t",
              r"variance[^.]{0,60}α_t\b", r"β_t[^.]{0,30}not α_t"])
def posterior_variance_alpha(x0, x_t, t, schedule):
    alpha_bars = F.pad(schedule.alpha_bars, (1, 0), value=1.0)
    alpha_bar_t = alpha_bars[t].view(-1, 1, 1, 1)
    alpha_bar_prev = alpha_bars[t - 1].view(-1, 1, 1, 1)
    beta_t = schedule.betas[t - 1].view(-1, 1, 1, 1)
    alpha_t = schedule.alphas[t - 1].view(-1, 1, 1, 1)
    mean = (alpha_bar_prev.sqrt() * beta_t / (1 - alpha_bar_t) * x0
            + alpha_t.sqrt() * (1 - alpha_bar_prev) / (1 - alpha_bar_t) * x_t)
    return mean, (1 - alpha_bar_prev) / (1 - alpha_bar_t) * alpha_t


@wrong("5.3", "prepended ᾱ_0 = 1 to schedule.alpha_bars itself: right on the first call, shifted on every later one",
       names=[r"schedule.{0,40}(modif|chang|mutat|overwr)", r"(modif|chang|mutat|overwr)\w*.{0,40}schedule",
              r"in[- ]place", r"second call", r"called (it )?(again|twice)"],
       late=True)
def posterior_pads_the_schedule(x0, x_t, t, schedule):
    schedule.alpha_bars = F.pad(schedule.alpha_bars, (1, 0), value=1.0)  # now index t gives ᾱ_t
    alpha_bar_t = schedule.alpha_bars[t].view(-1, 1, 1, 1)
    alpha_bar_prev = schedule.alpha_bars[t - 1].view(-1, 1, 1, 1)
    beta_t = schedule.betas[t - 1].view(-1, 1, 1, 1)
    alpha_t = schedule.alphas[t - 1].view(-1, 1, 1, 1)
    mean = (alpha_bar_prev.sqrt() * beta_t / (1 - alpha_bar_t) * x0
            + alpha_t.sqrt() * (1 - alpha_bar_prev) / (1 - alpha_bar_t) * x_t)
    return mean, (1 - alpha_bar_prev) / (1 - alpha_bar_t) * beta_t


# ----- Exercise 5.4: a DDPM step ------------------------------------------------------------------------------

@wrong("5.4", "noise mask polarity: (t == 1) adds noise only at the last step and none before",
       names=[r"no noise at the last", r"noise (only )?at the last step", r"last step", r"polarity",
              r"(mask|\[t\s*>\s*1\])[^.]{0,30}inverted", r"inverted[^.]{0,30}(mask|\[t)"])
def ddpm_noise_only_at_last_step(eps, x_t, t, schedule, noise, clip=True):
    alpha_bar_t = schedule.alpha_bars[t - 1].view(-1, 1, 1, 1)
    x0_hat = (x_t - (1 - alpha_bar_t).sqrt() * eps) / alpha_bar_t.sqrt()
    if clip:
        x0_hat = x0_hat.clamp(-1, 1)
    mean, _ = posterior_mean_variance(x0_hat, x_t, t, schedule)
    sigma_t = schedule.betas[t - 1].sqrt().view(-1, 1, 1, 1)
    last = (t == 1).to(x_t.dtype).view(-1, 1, 1, 1)
    return mean + last * sigma_t * noise


@wrong("5.4", "the clip flag inverted (if not clip): clips when told not to, and not when told to",
       names=[r"although clip", r"clip flag", r"when clip is (true|false)",
              r"(inverted|reversed|opposite)[^.]{0,20}clip",
              r"clip[^.]{0,20}(inverted|reversed|opposite)"])
def ddpm_clip_flag_inverted(eps, x_t, t, schedule, noise, clip=True):
    alpha_bar_t = schedule.alpha_bars[t - 1].view(-1, 1, 1, 1)
    x0_hat = (x_t - (1 - alpha_bar_t).sqrt() * eps) / alpha_bar_t.sqrt()
    if not clip:
        x0_hat = x0_hat.clamp(-1, 1)
    mean, _ = posterior_mean_variance(x0_hat, x_t, t, schedule)
    sigma_t = schedule.betas[t - 1].sqrt().view(-1, 1, 1, 1)
    return mean + (t > 1).to(x_t.dtype).view(-1, 1, 1, 1) * sigma_t * noise


@wrong("5.4", "clipped x̂_0 to [0, 1] (image range) instead of the data range [−1, 1]",
       names=[r"\[0, ?1\]", r"lower (bound|limit)", r"clamp\w*\(0", r"at 0\b.{0,20}(instead|not)"])
def ddpm_clip_zero_one(eps, x_t, t, schedule, noise, clip=True):
    alpha_bar_t = schedule.alpha_bars[t - 1].view(-1, 1, 1, 1)
    x0_hat = (x_t - (1 - alpha_bar_t).sqrt() * eps) / alpha_bar_t.sqrt()
    if clip:
        x0_hat = x0_hat.clamp(0, 1)
    mean, _ = posterior_mean_variance(x0_hat, x_t, t, schedule)
    sigma_t = schedule.betas[t - 1].sqrt().view(-1, 1, 1, 1)
    return mean + (t > 1).to(x_t.dtype).view(-1, 1, 1, 1) * sigma_t * noise


@wrong("5.4", "noise mask (t > 1) left as (B,): it broadcasts along the width axis",
       names=[r"(mask|\(t\s*>\s*1\)|noise)[^.?]{0,60}(view\(-1, ?1, ?1, ?1\)|\(B, ?1, ?1, ?1\))",
              r"(mask|\(t\s*>\s*1\)|noise)[^.?]{0,60}(width|\bW axis|last axis)",
              r"(width|\bW axis|last axis)[^.?]{0,60}(mask|noise|\bz\b)",
              r"(change|vary|varies|changes) along the (W|width|last) axis"])
def ddpm_mask_without_view(eps, x_t, t, schedule, noise, clip=True):
    alpha_bar_t = schedule.alpha_bars[t - 1].view(-1, 1, 1, 1)
    x0_hat = (x_t - (1 - alpha_bar_t).sqrt() * eps) / alpha_bar_t.sqrt()
    if clip:
        x0_hat = x0_hat.clamp(-1, 1)
    mean, _ = posterior_mean_variance(x0_hat, x_t, t, schedule)
    sigma_t = schedule.betas[t - 1].sqrt().view(-1, 1, 1, 1)
    return mean + (t > 1).to(x_t.dtype) * sigma_t * noise


@wrong("5.4", "σ_t from schedule.betas[t] (β_{t+1}; IndexError at t = T)",
       names=[r"off[- ]by[- ]one", r"β_\{?t\s*\+\s*1", r"betas\[t\s*[−-]\s*1\]", r"betas\[t\]"])
def ddpm_sigma_index_t(eps, x_t, t, schedule, noise, clip=True):
    alpha_bar_t = schedule.alpha_bars[t - 1].view(-1, 1, 1, 1)
    x0_hat = (x_t - (1 - alpha_bar_t).sqrt() * eps) / alpha_bar_t.sqrt()
    if clip:
        x0_hat = x0_hat.clamp(-1, 1)
    mean, _ = posterior_mean_variance(x0_hat, x_t, t, schedule)
    sigma_t = schedule.betas[t].sqrt().view(-1, 1, 1, 1)
    return mean + (t > 1).to(x_t.dtype).view(-1, 1, 1, 1) * sigma_t * noise


@wrong("5.4", "called posterior_mean_variance(x_t, x0_hat, ...): x_0 and x_t swapped",
       names=[r"x_t and x̂_0", r"x̂_0 and x_t", r"x_0 and x_t", r"(arguments?|coefficients?)[^;]{0,60}swapped",
              r"swapped[^.]{0,40}(arguments?|x_t|x̂_0)", r"posterior_mean_variance\(x_t"])
def ddpm_posterior_arguments_swapped(eps, x_t, t, schedule, noise, clip=True):
    alpha_bar_t = schedule.alpha_bars[t - 1].view(-1, 1, 1, 1)
    x0_hat = (x_t - (1 - alpha_bar_t).sqrt() * eps) / alpha_bar_t.sqrt()
    if clip:
        x0_hat = x0_hat.clamp(-1, 1)
    mean, _ = posterior_mean_variance(x_t, x0_hat, t, schedule)
    sigma_t = schedule.betas[t - 1].sqrt().view(-1, 1, 1, 1)
    return mean + (t > 1).to(x_t.dtype).view(-1, 1, 1, 1) * sigma_t * noise


# ----- Exercise 5.5: a DDIM step ------------------------------------------------------------------------------

@wrong("5.5", "recomputed the direction from the clipped x̂_0 instead of using the network's eps itself",
       names=[r"eps itself", r"recomput\w*", r"network's (eps|ε)",
              r"(use|keep) (the )?(network's )?(eps|ε_θ) (itself|as (is|the direction))"])
def ddim_recomputed_eps(eps, x_t, t, t_prev, schedule, clip=True):
    alpha_bars = F.pad(schedule.alpha_bars, (1, 0), value=1.0)
    alpha_bar_t = alpha_bars[t].view(-1, 1, 1, 1)
    alpha_bar_prev = alpha_bars[t_prev].view(-1, 1, 1, 1)
    x0_hat = (x_t - (1 - alpha_bar_t).sqrt() * eps) / alpha_bar_t.sqrt()
    if clip:
        x0_hat = x0_hat.clamp(-1, 1)
    eps_hat = (x_t - alpha_bar_t.sqrt() * x0_hat) / (1 - alpha_bar_t).sqrt()
    return alpha_bar_prev.sqrt() * x0_hat + (1 - alpha_bar_prev).sqrt() * eps_hat


@wrong("5.5", "padded alpha_bars with value=0.0: ᾱ_0 = 0, so the final jump (t_prev = 0) returns the noise",
       names=[r"ᾱ_\{?0\}?\s*=\s*1", r"value\s*=\s*1", r"alpha_bar_?0",
              r"final (jump|step)[^.]{0,40}(clean|x̂_0|noise)"])
def ddim_pad_zero(eps, x_t, t, t_prev, schedule, clip=True):
    alpha_bars = F.pad(schedule.alpha_bars, (1, 0))
    alpha_bar_t = alpha_bars[t].view(-1, 1, 1, 1)
    alpha_bar_prev = alpha_bars[t_prev].view(-1, 1, 1, 1)
    x0_hat = (x_t - (1 - alpha_bar_t).sqrt() * eps) / alpha_bar_t.sqrt()
    if clip:
        x0_hat = x0_hat.clamp(-1, 1)
    return alpha_bar_prev.sqrt() * x0_hat + (1 - alpha_bar_prev).sqrt() * eps


@wrong("5.5", "the direction term uses √(1 − ᾱ_t) (where we are) instead of √(1 − ᾱ_{t'}) (where we jump to)",
       names=[r"√\(1\s*[−-]\s*ᾱ_t\)[^.]{0,30}(in place of|instead of)",
              r"direction[^.]{0,60}(ᾱ_\{?t'|t_prev|where (we|you) jump)",
              r"ᾱ_t\b[^.]{0,20}where (we|you) are"])
def ddim_direction_current_alpha(eps, x_t, t, t_prev, schedule, clip=True):
    alpha_bars = F.pad(schedule.alpha_bars, (1, 0), value=1.0)
    alpha_bar_t = alpha_bars[t].view(-1, 1, 1, 1)
    alpha_bar_prev = alpha_bars[t_prev].view(-1, 1, 1, 1)
    x0_hat = (x_t - (1 - alpha_bar_t).sqrt() * eps) / alpha_bar_t.sqrt()
    if clip:
        x0_hat = x0_hat.clamp(-1, 1)
    return alpha_bar_prev.sqrt() * x0_hat + (1 - alpha_bar_t).sqrt() * eps


@wrong("5.5", "jumped to t − 1 (ᾱ_{t−1}) whatever t_prev is: right only for single steps",
       names=[r"ᾱ_\{?t\s*[−-]\s*1\}?[^.]{0,30}in place of ᾱ_\{?t'",
              r"(ignor\w*|never used?|not use)[^.]{0,20}t_prev",
              r"t\s*[−-]\s*1[^.]{0,30}(instead of|rather than|not) t_prev", r"single step"])
def ddim_ignores_t_prev(eps, x_t, t, t_prev, schedule, clip=True):
    alpha_bars = F.pad(schedule.alpha_bars, (1, 0), value=1.0)
    alpha_bar_t = alpha_bars[t].view(-1, 1, 1, 1)
    alpha_bar_prev = alpha_bars[t - 1].view(-1, 1, 1, 1)
    x0_hat = (x_t - (1 - alpha_bar_t).sqrt() * eps) / alpha_bar_t.sqrt()
    if clip:
        x0_hat = x0_hat.clamp(-1, 1)
    return alpha_bar_prev.sqrt() * x0_hat + (1 - alpha_bar_prev).sqrt() * eps


@wrong("5.5", "clipped the input x_t to [−1, 1] instead of x̂_0",
       names=[r"clip\w*[^.]{0,30}\bx_t\b", r"\bx_t\b[^.]{0,30}clip", r"clipped the (input|current)",
              r"instead of x̂_0"])
def ddim_clips_x_t(eps, x_t, t, t_prev, schedule, clip=True):
    alpha_bars = F.pad(schedule.alpha_bars, (1, 0), value=1.0)
    alpha_bar_t = alpha_bars[t].view(-1, 1, 1, 1)
    alpha_bar_prev = alpha_bars[t_prev].view(-1, 1, 1, 1)
    if clip:
        x_t = x_t.clamp(-1, 1)
    x0_hat = (x_t - (1 - alpha_bar_t).sqrt() * eps) / alpha_bar_t.sqrt()
    return alpha_bar_prev.sqrt() * x0_hat + (1 - alpha_bar_prev).sqrt() * eps


@wrong("5.5", "x̂_0 scaled by ᾱ_{t'} instead of √ᾱ_{t'}",
       names=[r"ᾱ_\{?t'\}?[^.]{0,30}in place of √ᾱ",
              r"(missing|forgot\w*|without) (the )?(square root|√|sqrt)",
              r"√ᾱ_\{?t'\}?,? not ᾱ_\{?t'", r"square root of ᾱ"])
def ddim_no_sqrt_on_signal(eps, x_t, t, t_prev, schedule, clip=True):
    alpha_bars = F.pad(schedule.alpha_bars, (1, 0), value=1.0)
    alpha_bar_t = alpha_bars[t].view(-1, 1, 1, 1)
    alpha_bar_prev = alpha_bars[t_prev].view(-1, 1, 1, 1)
    x0_hat = (x_t - (1 - alpha_bar_t).sqrt() * eps) / alpha_bar_t.sqrt()
    if clip:
        x0_hat = x0_hat.clamp(-1, 1)
    return alpha_bar_prev * x0_hat + (1 - alpha_bar_prev).sqrt() * eps


# ----- Exercise 5.6: the sinusoidal time embedding ------------------------------------------------------------

@wrong("5.6", "exponent arange(half) // half: integer division makes every frequency 1",
       names=[r"integer", r"//", r"floor",
              r"(all|every) (the |your )?frequenc\w* (are |is |equal )?(1|one|the same|equal)",
              r"frequenc\w* (are )?all (1|one|equal|the same)"])
def embedding_integer_exponent(t, dim):
    half = dim // 2
    frequencies = 10_000.0 ** (-(torch.arange(half) // half))
    angles = t.float()[:, None] * frequencies[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


@wrong("5.6", "concatenated sines and cosines along dim=0, the batch axis: shape (2B, dim/2)",
       names=[r"concat\w*.{0,40}(axis|dim|batch)", r"dim\s*=\s*-1", r"batch axis", r"along (the )?(axis|dim) 0"])
def embedding_cat_dim0(t, dim):
    half = dim // 2
    frequencies = torch.exp(-math.log(10_000) * torch.arange(half) / half)
    angles = t.float()[:, None] * frequencies[None, :]
    return torch.cat([angles.sin(), angles.cos()])


@wrong("5.6", "hard-coded dim/2 = 32 in the exponent: right only for dim = 64",
       names=[r"hard[- ]?cod", r"\b32\b", r"(instead of|not) (d|dim)\s*/\s*2", r"depends on (d|dim)"])
def embedding_hardcoded_half(t, dim):
    half = dim // 2
    frequencies = torch.exp(-math.log(10_000) * torch.arange(half) / 32)
    angles = t.float()[:, None] * frequencies[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


@wrong("5.6", "embedded t − 1 ('steps start at 1') instead of t",
       names=[r"\bt\s*[−-]\s*1\b[^.]{0,30}(instead of|in place of|not) t\b", r"emb\(t\s*[−-]\s*1\)",
              r"off[- ]by[- ]one", r"shift\w* by one", r"one step (early|late|off)"])
def embedding_t_minus_one(t, dim):
    half = dim // 2
    frequencies = torch.exp(-math.log(10_000) * torch.arange(half) / half)
    angles = (t - 1).float()[:, None] * frequencies[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


@wrong("5.6", "math.log10(10000) in exp(−log(10000) · i/half): the lowest frequency is e^−4, not 1/10000",
       names=[r"log10", r"natural log", r"\bln\b", r"\be\^4\b", r"e⁴", r"54\.6", r"(lowest|smallest) frequency"])
def embedding_log10(t, dim):
    half = dim // 2
    frequencies = torch.exp(-math.log10(10_000) * torch.arange(half) / half)
    angles = t.float()[:, None] * frequencies[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=-1)
