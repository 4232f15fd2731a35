"""Fifth blind held-out set for Chapter 05 (diffusion): wrong answers written as a learner writes the exercise cell.

Written without reading the checks or seeing any of their messages, and without repeating a mistake of the first
(``wrong_ch05.py``), second (``blind_ch05.py``), third (``third_ch05.py``) or fourth (``fourth_ch05.py``) set. The
helpers a learner's cell uses from earlier cells (``posterior_mean_variance`` in ``ddpm_step``) and the half of a
two-function exercise that is not wrong are the chapter's reference solutions, so each answer holds exactly one mistake.
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

@wrong("5.1", "linear: scale = T / 1000, the factor of eq. (5.3) upside down (β shrinks for short chains)",
       names=[r"T\s*/\s*1000\b[^.?]{0,30}(instead|not|rather|inverted|upside)",
              r"1000\s*/\s*T\b[^.?]{0,20}(not|instead of|rather than)",
              r"(not|instead of|rather than)\s*T\s*/\s*1000",
              r"(upside[- ]down|reciprocal|inverse) (of )?(the )?(scale|factor|1000)",
              r"(grow|increas|larger|bigger)\w*[^.?]{0,30}(with|as) T\b[^.?]{0,20}(instead|not|rather|should)",
              r"(short|fewer)[^.?]{0,30}(larger|bigger) (betas|β)"],
       arguments=with_reference_cosine)
def linear_scale_inverted(T, beta_start=1e-4, beta_end=0.02):
    scale = T / 1000
    return torch.linspace(scale * beta_start, scale * beta_end, T, dtype=torch.float64)


@wrong("5.1", "linear: Ho et al.'s 1e-4 and 0.02 hard-coded in the linspace, the beta_start and beta_end arguments "
              "ignored",
       names=[r"(beta_start|beta_end|arguments?|parameters?)[^.?]{0,30}(ignored|unused|hard-?coded|(not|never) used)",
              r"hard-?coded",
              r"(ignor\w*|not us\w*|never us\w*)[^.?]{0,30}(beta_start|beta_end|the (given|passed) (values|ends))"],
       arguments=with_reference_cosine)
def linear_hard_coded_ends(T, beta_start=1e-4, beta_end=0.02):
    scale = 1000 / T
    return torch.linspace(scale * 1e-4, scale * 0.02, T, dtype=torch.float64)


@wrong("5.1", "linear: t = 1..T with t/(T − 1) instead of (t − 1)/(T − 1): β_1 above beta_start, β_T beyond beta_end",
       names=[r"\(t\s*[−-]\s*1\)\s*/\s*\(T\s*[−-]\s*1\)", r"\bt\s*[−-]\s*1\b[^.?]{0,30}(not|instead|rather|numerator)",
              r"β_?1\s*(=|should be|must be|is not)[^.?]{0,20}(beta_start|β_start|the start)",
              r"(first|β_?1)[^.?]{0,40}(above|larger|greater|not) (than )?(beta_start|β_start|the start)",
              r"(last|β_T)[^.?]{0,40}(above|beyond|larger|greater|past|overshoot\w*) (than )?(beta_end|β_end|the end)",
              r"off[- ]by[- ]one", r"linspace"],
       arguments=with_reference_cosine)
def linear_offset_by_one_step(T, beta_start=1e-4, beta_end=0.02):
    scale = 1000 / T
    t = torch.arange(1, T + 1, dtype=torch.float64)
    return scale * (beta_start + t / (T - 1) * (beta_end - beta_start))


@wrong("5.1", "cosine: torch.cos(angle ** 2) — the square put on the angle instead of on the cosine",
       names=[r"(square|squar\w*)[^.?]{0,30}(the )?(cosine|cos\b)[^.?]{0,20}(not|instead|rather|itself|outside)",
              r"(cosine|cos\b)[^.?]{0,30}squared[^.?]{0,20}(not|instead|rather)",
              r"(square|squar\w*)[^.?]{0,20}(inside|within) (the )?(cosine|cos\b)",
              r"(angle|argument)[^.?]{0,20}squared", r"cos\(\s*x\s*\)\s*(\*\*|\^)\s*2",
              r"\.cos\(\)\s*\*\*\s*2", r"\)\s*\*\*\s*2[^.?]{0,20}(not|instead|rather)"],
       arguments=with_reference_linear, learner_name="cosine_schedule")
def cosine_square_inside(T, s=0.008, max_beta=0.999):
    steps = torch.arange(T + 1, dtype=torch.float64) / T
    f = torch.cos(((steps + s) / (1 + s) * math.pi / 2) ** 2)
    alpha_bars = f / f[0]
    return (1 - alpha_bars[1:] / alpha_bars[:-1]).clamp(max=max_beta)


@wrong("5.1", "cosine: math.cos on the (T + 1,) tensor of steps: the math module takes one number, not a tensor",
       names=[r"torch\.cos", r"\.cos\(\)", r"math\.cos\b[^.?]{0,40}(scalar|number|float|one value|single)",
              r"(math|python'?s?) (module|function)s?[^.?]{0,40}(scalars?|numbers?|single value|one value)",
              r"element-?wise"],
       arguments=with_reference_linear, learner_name="cosine_schedule")
def cosine_math_cos(T, s=0.008, max_beta=0.999):
    steps = torch.arange(T + 1, dtype=torch.float64) / T
    f = math.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
    alpha_bars = f / f[0]
    return (1 - alpha_bars[1:] / alpha_bars[:-1]).clamp(max=max_beta)


@wrong("5.1", "cosine: (steps + s) / 1 + s * π/2 — the parentheses around 1 + s missing",
       names=[r"parenthes", r"precedence", r"bracket",
              r"(divid\w*|denominator)[^.?]{0,30}\b1\s*\+\s*s\b[^.?]{0,20}(whole|both|not|instead)",
              r"divid\w* by 1\b"],
       arguments=with_reference_linear, learner_name="cosine_schedule")
def cosine_denominator_precedence(T, s=0.008, max_beta=0.999):
    steps = torch.arange(T + 1, dtype=torch.float64) / T
    f = torch.cos((steps + s) / 1 + s * math.pi / 2) ** 2
    alpha_bars = f / f[0]
    return (1 - alpha_bars[1:] / alpha_bars[:-1]).clamp(max=max_beta)


# ----- Exercise 5.2: q_sample ---------------------------------------------------------------------------------

@wrong("5.2", "schedule.alpha_bars[t - 1] used as it is, (B,): no view, so it lines up with the width axis W",
       names=[r"(not|never|without) (being )?(reshap|view|unsqueez)\w*",
              r"(lines?|lined) up with (the )?(last|width|W)\b",
              r"broadcast\w* (along|over|against) (the )?(width|last ax|W\b)",
              r"\[:, ?None, ?None, ?None\]"])
def q_sample_without_view(x0, t, noise, schedule):
    alpha_bar_t = schedule.alpha_bars[t - 1]
    return alpha_bar_t.sqrt() * x0 + (1 - alpha_bar_t).sqrt() * noise


@wrong("5.2", "ᾱ_t as torch.cumprod(schedule.alpha_bars)[t − 1]: alpha_bars is already the cumulative product",
       names=[r"(already|is) (the |a )?(cumulative|cumulative product|product)",
              r"cumprod[^.?]{0,30}(twice|again|of (the )?alpha_bars|of ᾱ)",
              r"(product|cumprod) of (the )?(ᾱ|alpha_bars|cumulative)",
              r"(twice|double\w*)[^.?]{0,20}(cumulative|product|cumprod)",
              r"schedule\.alpha_bars\b[^.?]{0,30}(directly|as it is|itself)"])
def q_sample_cumprod_of_alpha_bars(x0, t, noise, schedule):
    alpha_bar_t = torch.cumprod(schedule.alpha_bars, dim=0)[t - 1].view(-1, 1, 1, 1)
    return alpha_bar_t.sqrt() * x0 + (1 - alpha_bar_t).sqrt() * noise


@wrong("5.2", "x_t = x0 then x_t[i] = ... in a loop: x_t is not a copy, so the caller's x_0 is overwritten",
       names=[r"in[- ]?place", r"alias\w*", r"same (tensor|object|storage)", r"not a copy", r"\.clone\(\)",
              r"(modif|overwr|mutat|chang)\w*[^.?]{0,30}(x_?0|input|argument|caller)",
              r"(x_?0|input|argument)[^.?]{0,30}(was |is |has been )?(modified|overwritten|mutated|changed)"],
       late=True)
def q_sample_aliased_output(x0, t, noise, schedule):
    x_t = x0
    for i in range(len(t)):
        alpha_bar = schedule.alpha_bars[t[i] - 1]
        x_t[i] = alpha_bar.sqrt() * x0[i] + (1 - alpha_bar).sqrt() * noise[i]
    return x_t


@wrong("5.2", "ᾱ_t cast with .float() ('images are float32'): float64 inputs get float32-precision coefficients",
       names=[r"float32", r"single[- ]precision", r"(precision|rounding)[^.?]{0,30}(lost|loss|float32|single)",
              r"(x_?0'?s?|schedule'?s?) dtype"])
def q_sample_float32_coefficients(x0, t, noise, schedule):
    alpha_bar_t = schedule.alpha_bars[t - 1].float().view(-1, 1, 1, 1)
    return alpha_bar_t.sqrt() * x0 + (1 - alpha_bar_t).sqrt() * noise


# ----- Exercise 5.3: the posterior ----------------------------------------------------------------------------

def _padded(schedule, t):
    """What a learner's cell computes first: ᾱ_t, ᾱ_{t−1}, β_t, α_t as (B, 1, 1, 1), with ᾱ_0 = 1."""
    alpha_bars = F.pad(schedule.alpha_bars, (1, 0), value=1.0)
    return (alpha_bars[t].view(-1, 1, 1, 1), alpha_bars[t - 1].view(-1, 1, 1, 1),
            schedule.betas[t - 1].view(-1, 1, 1, 1), schedule.alphas[t - 1].view(-1, 1, 1, 1))


@wrong("5.3", "x_t's coefficient with α_t instead of √α_t (the square root forgotten)",
       names=[r"(square root|sqrt)[^.?]{0,20}(of )?α_t\b", r"alpha_t\.sqrt\(\)", r"sqrt\(\s*alpha_t\b",
              r"(missing|forgot\w*|without|no) (the )?(square root|sqrt)[^.?]{0,30}(α_t|x_t)",
              r"α_t\b[^.?]{0,20}(instead of|not|rather than)\s*√\s*α_t"])
def posterior_alpha_t_without_sqrt(x0, x_t, t, schedule):
    alpha_bar_t, alpha_bar_prev, beta_t, alpha_t = _padded(schedule, t)
    mean = (alpha_bar_prev.sqrt() * beta_t / (1 - alpha_bar_t) * x0
            + alpha_t * (1 - alpha_bar_prev) / (1 - alpha_bar_t) * x_t)
    variance = (1 - alpha_bar_prev) / (1 - alpha_bar_t) * beta_t
    return mean, variance


@wrong("5.3", "ᾱ_{t−1} as ᾱ_t · α_t (one step further) instead of ᾱ_t / α_t",
       names=[r"ᾱ_\{?t\s*[−-]\s*1\}?\s*=\s*ᾱ_t\s*/\s*α_t", r"divid\w*[^.?]{0,30}(by )?α_t\b",
              r"(multipl\w*|times)[^.?]{0,30}(instead of|rather than|not) divid", r"ᾱ_\{?t\s*\+\s*1",
              r"(one step|a step) (further|ahead|forward|too far)", r"F\.pad"])
def posterior_prev_as_product(x0, x_t, t, schedule):
    alpha_bar_t = schedule.alpha_bars[t - 1].view(-1, 1, 1, 1)
    beta_t = schedule.betas[t - 1].view(-1, 1, 1, 1)
    alpha_t = schedule.alphas[t - 1].view(-1, 1, 1, 1)
    alpha_bar_prev = alpha_bar_t * alpha_t
    mean = (alpha_bar_prev.sqrt() * beta_t / (1 - alpha_bar_t) * x0
            + alpha_t.sqrt() * (1 - alpha_bar_prev) / (1 - alpha_bar_t) * x_t)
    variance = (1 - alpha_bar_prev) / (1 - alpha_bar_t) * beta_t
    return mean, variance


@wrong("5.3", "x_0's coefficient written beta_t / 1 - alpha_bar_t: the denominator's parentheses missing",
       names=[r"parenthes", r"precedence", r"bracket", r"denominator[^.?]{0,30}(x_?0|first|coefficient)",
              r"divid\w* by 1\b"])
def posterior_denominator_precedence(x0, x_t, t, schedule):
    alpha_bar_t, alpha_bar_prev, beta_t, alpha_t = _padded(schedule, t)
    coefficient_x0 = alpha_bar_prev.sqrt() * beta_t / 1 - alpha_bar_t
    coefficient_x_t = alpha_t.sqrt() * (1 - alpha_bar_prev) / (1 - alpha_bar_t)
    mean = coefficient_x0 * x0 + coefficient_x_t * x_t
    variance = (1 - alpha_bar_prev) / (1 - alpha_bar_t) * beta_t
    return mean, variance


@wrong("5.3", "F.pad(schedule.alpha_bars, (1, 0)) without value=1.0: pads with the default 0, so ᾱ_0 = 0",
       names=[r"value\s*=\s*1", r"ᾱ_0\s*(=|is|should be|must be)\s*1\b", r"ᾱ_0\s*(=|is)\s*0\b",
              r"alpha_bar_0\s*(=|is|should be)\s*1\b", r"pad\w*[^.?]{0,30}(with )?(zero|0\b|default)",
              r"(default|zero)[^.?]{0,30}pad"])
def posterior_pad_default_zero(x0, x_t, t, schedule):
    alpha_bars = F.pad(schedule.alpha_bars, (1, 0))
    alpha_bar_t = alpha_bars[t].view(-1, 1, 1, 1)
    alpha_bar_prev = alpha_bars[t - 1].view(-1, 1, 1, 1)
    beta_t = schedule.betas[t - 1].view(-1, 1, 1, 1)
    alpha_t = schedule.alphas[t - 1].view(-1, 1, 1, 1)
    mean = (alpha_bar_prev.sqrt() * beta_t / (1 - alpha_bar_t) * x0
            + alpha_t.sqrt() * (1 - alpha_bar_prev) / (1 - alpha_bar_t) * x_t)
    variance = (1 - alpha_bar_prev) / (1 - alpha_bar_t) * beta_t
    return mean, variance


# ----- Exercise 5.4: one DDPM step ----------------------------------------------------------------------------

@wrong("5.4", "clip=True clamps the network's ε to [−1, 1] instead of the estimate x̂_0",
       names=[r"(clip|clamp)\w*[^.?]{0,20}(x̂_?0|x0_hat|the (predicted|estimated) x_?0)\b[^.?]{0,30}(not|instead)",
              r"(clip|clamp)\w*[^.?]{0,40}(ε|eps\b|noise prediction|predicted noise|network'?s? (output|prediction))",
              r"(ε|eps\b|noise prediction|predicted noise)[^.?]{0,30}(clipped|clamped)[^.?]{0,20}(instead|not|rather)",
              r"x0_hat\.clamp"])
def ddpm_clips_eps(eps, x_t, t, schedule, noise, clip=True):
    if clip:
        eps = eps.clamp(-1, 1)
    alpha_bar_t = schedule.alpha_bars[t - 1].view(-1, 1, 1, 1)
    x0_hat = (x_t - (1 - alpha_bar_t).sqrt() * eps) / alpha_bar_t.sqrt()
    mean, _ = posterior_mean_variance(x0_hat, x_t, t, schedule)
    sigma_t = schedule.betas[t - 1].sqrt().view(-1, 1, 1, 1)
    not_last = (t > 1).to(x_t.dtype).view(-1, 1, 1, 1)
    return mean + not_last * sigma_t * noise


@wrong("5.4", "x̂_0 with ᾱ_{t−1} (alpha_bars[t − 2]) instead of ᾱ_t; at t = 1 the index −1 wraps to ᾱ_T",
       names=[r"ᾱ_t\b[^.?]{0,30}(not|instead of|rather than)[^.?]{0,10}ᾱ_\{?t\s*[−-]\s*1",
              r"ᾱ_\{?t\s*[−-]\s*1\}?[^.?]{0,30}(instead of|in place of|not|rather than)[^.?]{0,10}ᾱ_t\b",
              r"wrap\w*", r"off[- ]by[- ]one", r"index(ed)? (with )?t\s*[−-]\s*2", r"index -1\b",
              r"(current|this) step'?s? ᾱ"])
def ddpm_x0_hat_previous_alpha_bar(eps, x_t, t, schedule, noise, clip=True):
    alpha_bar = schedule.alpha_bars[t - 2].view(-1, 1, 1, 1)
    x0_hat = (x_t - (1 - alpha_bar).sqrt() * eps) / alpha_bar.sqrt()
    if clip:
        x0_hat = x0_hat.clamp(-1, 1)
    mean, _ = posterior_mean_variance(x0_hat, x_t, t, schedule)
    sigma_t = schedule.betas[t - 1].sqrt().view(-1, 1, 1, 1)
    not_last = (t > 1).to(x_t.dtype).view(-1, 1, 1, 1)
    return mean + not_last * sigma_t * noise


@wrong("5.4", "posterior_mean_variance(x0_hat, x_t, t - 1, ...) 'because we step to t − 1': the posterior of step t "
              "takes t itself",
       names=[r"(pass|call|give)\w*[^.?]{0,40}\bt\b[^.?]{0,20}(itself|not t\s*[−-]\s*1|unchanged)",
              r"t\s*[−-]\s*1\b[^.?]{0,30}(instead of|not|rather than)\s*t\b",
              r"(posterior|μ̃_?t)[^.?]{0,40}(at|for|with|of) (step )?t\b[^.?]{0,20}(not|instead|itself)",
              r"off[- ]by[- ]one", r"(one step|a step) (too early|earlier|behind|off)"])
def ddpm_posterior_at_t_minus_one(eps, x_t, t, schedule, noise, clip=True):
    alpha_bar_t = schedule.alpha_bars[t - 1].view(-1, 1, 1, 1)
    x0_hat = (x_t - (1 - alpha_bar_t).sqrt() * eps) / alpha_bar_t.sqrt()
    if clip:
        x0_hat = x0_hat.clamp(-1, 1)
    mean, _ = posterior_mean_variance(x0_hat, x_t, t - 1, schedule)
    sigma_t = schedule.betas[t - 1].sqrt().view(-1, 1, 1, 1)
    not_last = (t > 1).to(x_t.dtype).view(-1, 1, 1, 1)
    return mean + not_last * sigma_t * noise


@wrong("5.4", "returned (x_{t−1}, x̂_0) like a library scheduler, instead of x_{t−1} alone",
       names=[r"(single|one) (tensor|value|output)\b", r"return\w*[^.?]{0,30}(only|just) x_\{?t\s*[−-]\s*1",
              r"(tuple|pair)[^.?]{0,30}(instead of|not|rather than)", r"(extra|second) (return(ed)? )?value",
              r"x̂_?0[^.?]{0,30}(as well|too|also|extra)"])
def ddpm_returns_pair(eps, x_t, t, schedule, noise, clip=True):
    alpha_bar_t = schedule.alpha_bars[t - 1].view(-1, 1, 1, 1)
    x0_hat = (x_t - (1 - alpha_bar_t).sqrt() * eps) / alpha_bar_t.sqrt()
    if clip:
        x0_hat = x0_hat.clamp(-1, 1)
    mean, _ = posterior_mean_variance(x0_hat, x_t, t, schedule)
    sigma_t = schedule.betas[t - 1].sqrt().view(-1, 1, 1, 1)
    not_last = (t > 1).to(x_t.dtype).view(-1, 1, 1, 1)
    return mean + not_last * sigma_t * noise, x0_hat


# ----- Exercise 5.5: a DDIM step ------------------------------------------------------------------------------

@wrong("5.5", "t and t_prev mixed up: ᾱ read at t_prev for x̂_0 and at t for the jump target",
       names=[r"(t and t_prev|t_prev and t|t and t'|t' and t)[^.?]{0,30}(swapped|exchanged|mixed|reversed|confused)",
              r"(swapped|exchanged|mixed up|confused|reversed)[^.?]{0,30}(t and t_prev|t_prev and t|t and t'|t' and t)",
              r"ᾱ_t\b[^.?]{0,30}(for|in|to form|to compute) x̂_?0", r"(where we are|where we jump|jump to|jumping to)"])
def ddim_t_and_t_prev_swapped(eps, x_t, t, t_prev, schedule, clip=True):
    alpha_bars = F.pad(schedule.alpha_bars, (1, 0), value=1.0)
    alpha_bar_t = alpha_bars[t_prev].view(-1, 1, 1, 1)
    alpha_bar_prev = alpha_bars[t].view(-1, 1, 1, 1)
    x0_hat = (x_t - (1 - alpha_bar_t).sqrt() * eps) / alpha_bar_t.sqrt()
    if clip:
        x0_hat = x0_hat.clamp(-1, 1)
    return alpha_bar_prev.sqrt() * x0_hat + (1 - alpha_bar_prev).sqrt() * eps


@wrong("5.5", "direction term (1 − ᾱ_{t'}) · ε_θ: the square root on the noise coefficient forgotten",
       names=[r"(missing|forgot\w*|without|no) (the )?(square root|sqrt|√)",
              r"(square root|sqrt)\b[^.?]{0,20}(of|on|for|in) (the )?(1\s*[−-]\s*ᾱ|direction|noise (coefficient|term))",
              r"√\s*\(\s*1\s*[−-]\s*ᾱ_\{?t'?\}?\s*\)[^.?]{0,30}(not|instead|rather)",
              r"varian\w*[^.?]{0,30}(instead of|not|rather than)[^.?]{0,20}(standard deviation|std|square root)"])
def ddim_direction_without_sqrt(eps, x_t, t, t_prev, schedule, clip=True):
    alpha_bars = F.pad(schedule.alpha_bars, (1, 0), value=1.0)
    alpha_bar_t = alpha_bars[t].view(-1, 1, 1, 1)
    alpha_bar_prev = alpha_bars[t_prev].view(-1, 1, 1, 1)
    x0_hat = (x_t - (1 - alpha_bar_t).sqrt() * eps) / alpha_bar_t.sqrt()
    if clip:
        x0_hat = x0_hat.clamp(-1, 1)
    return alpha_bar_prev.sqrt() * x0_hat + (1 - alpha_bar_prev) * eps


@wrong("5.5", "the clip argument ignored: x̂_0 is never clipped, even with clip=True",
       names=[r"clip\w*[^.?]{0,40}(ignored|no effect|not applied|never applied|missing|skipped)",
              r"\b(not|never|without|no) (being )?clip\w*", r"unclipped", r"(clamp|clip)\w*\(\s*-1, ?1\)"])
def ddim_never_clips(eps, x_t, t, t_prev, schedule, clip=True):
    alpha_bars = F.pad(schedule.alpha_bars, (1, 0), value=1.0)
    alpha_bar_t = alpha_bars[t].view(-1, 1, 1, 1)
    alpha_bar_prev = alpha_bars[t_prev].view(-1, 1, 1, 1)
    x0_hat = (x_t - (1 - alpha_bar_t).sqrt() * eps) / alpha_bar_t.sqrt()
    return alpha_bar_prev.sqrt() * x0_hat + (1 - alpha_bar_prev).sqrt() * eps


@wrong("5.5", "x̂_0 computed in place, x_t.sub_(...).div_(...): right output, but the caller's x_t is overwritten",
       names=[r"in[- ]?place", r"\.clone\(\)", r"out[- ]of[- ]place",
              r"(modif|overwr|mutat|chang)\w*[^.?]{0,30}(x_t|input|argument|caller)",
              r"(x_t|input|argument)[^.?]{0,30}(was |is |has been )?(modified|overwritten|mutated|changed)"],
       late=True)
def ddim_x0_hat_in_place(eps, x_t, t, t_prev, schedule, clip=True):
    alpha_bars = F.pad(schedule.alpha_bars, (1, 0), value=1.0)
    alpha_bar_t = alpha_bars[t].view(-1, 1, 1, 1)
    alpha_bar_prev = alpha_bars[t_prev].view(-1, 1, 1, 1)
    x0_hat = x_t.sub_((1 - alpha_bar_t).sqrt() * eps).div_(alpha_bar_t.sqrt())
    if clip:
        x0_hat = x0_hat.clamp(-1, 1)
    return alpha_bar_prev.sqrt() * x0_hat + (1 - alpha_bar_prev).sqrt() * eps


# ----- Exercise 5.6: sinusoidal time embedding ----------------------------------------------------------------

@wrong("5.6", "i = torch.arange(0, dim, 2) (the Transformer's 2i) divided by dim/2: exponents up to 2, frequencies "
              "down to 10^−8",
       names=[r"arange\(half\)", r"arange\(dim\s*//\s*2\)", r"(2i|2\s*i)\s*/\s*d(im)?\b",
              r"(even|step 2|every other)[^.?]{0,40}(half|d\s*/\s*2|double|twice)",
              r"(exponent|power)s?[^.?]{0,30}(twice|doubled|2\s*[×x]|double|up to 2)",
              r"(lowest|smallest|slowest) frequenc\w*[^.?]{0,40}(10\^?\s*[−-]\s*8|1e-8|too (low|small))",
              r"(divid\w* by|over) dim\b[^.?]{0,20}(not|instead|rather)"])
def embedding_even_indices_over_half(t, dim):
    half = dim // 2
    i = torch.arange(0, dim, 2, device=t.device)
    frequencies = torch.exp(-math.log(10_000) * i / half)
    angles = t.float()[:, None] * frequencies[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


@wrong("5.6", "angles = t[None, :] * frequencies[:, None]: a (dim/2, B) table, so the result is (dim/2, 2B)",
       names=[r"\(B, ?dim\s*/\s*2\)", r"\(B, ?d\s*/\s*2\)", r"t\[:, ?None\]", r"\(dim\s*/\s*2, ?B\)",
              r"(transpos\w*|wrong way round|swapped)[^.?]{0,30}(table|angles)\b",
              r"ax[ie]s (of the )?(table|angles)[^.?]{0,20}(swapped|transposed|wrong way)",
              r"(rows?|first ax[ie]s)[^.?]{0,30}(time ?steps?|\bt\b|batch|images)"])
def embedding_transposed_table(t, dim):
    half = dim // 2
    frequencies = torch.exp(-math.log(10_000) * torch.arange(half, device=t.device) / half)
    angles = t.float()[None, :] * frequencies[:, None]
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


@wrong("5.6", "frequencies torch.linspace(1, 1e-4, dim/2): evenly spaced instead of falling geometrically",
       names=[r"geometric\w*", r"(exponential\w*|log(arithmic\w*)?)[- ]?(spac\w*|decay\w*|scale)",
              r"(linear\w*|evenly)[- ]?(spaced|spacing)", r"exp\(\s*[−-]", r"(powers?) of 10\s*000",
              r"(log|logarithm\w*) of (the )?frequenc"])
def embedding_linear_frequencies(t, dim):
    half = dim // 2
    frequencies = torch.linspace(1, 1e-4, half, device=t.device)
    angles = t.float()[:, None] * frequencies[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


@wrong("5.6", "angles t / ω_i: the frequencies used as periods (t divided by ω_i instead of multiplied)",
       names=[r"t\s*[·*×]\s*ω", r"(multipl\w*)[^.?]{0,30}(instead of|rather than|not) divid",
              r"(instead of|rather than|not) divid\w*", r"(divid\w*)[^.?]{0,30}by (the )?(ω|omega|frequenc)",
              r"(periods?|wavelengths?)\b",
              r"(frequenc\w*)[^.?]{0,30}(not|instead of|rather than) (a |the )?(periods?|wavelengths?)"])
def embedding_divided_by_frequencies(t, dim):
    half = dim // 2
    frequencies = torch.exp(-math.log(10_000) * torch.arange(half, device=t.device) / half)
    angles = t.float()[:, None] / frequencies[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=-1)
