"""Third blind held-out set for Chapter 05 (diffusion): wrong answers written as a learner writes the exercise cell.

Written without reading the checks or seeing any of their messages, and without repeating a mistake of the first
(``wrong_ch05.py``) or the second (``blind_ch05.py``) set. The helpers a learner's cell uses from earlier cells
(``posterior_mean_variance`` in ``ddpm_step``, the notebook's ``Schedule`` and its ``schedules`` of section 2.2) and
the half of a two-function exercise that is not wrong are the chapter's reference solutions, so each answer holds
exactly one mistake.
"""
import math

import torch
import torch.nn.functional as F

from tests.heldout.report import Registry, solution_namespace

REF = solution_namespace("05_diffusion", ("@dataclass\nclass Schedule",))
Schedule = REF["Schedule"]
linear_schedule = REF["linear_schedule"]
cosine_schedule = REF["cosine_schedule"]
posterior_mean_variance = REF["posterior_mean_variance"]

# What the notebook has defined by Exercise 5.2 (section 2.2's plot): a learner's cell can reach these globals.
T = 200
schedules = {"linear": Schedule.from_betas(linear_schedule(T)), "cosine": Schedule.from_betas(cosine_schedule(T))}

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

@wrong("5.1", "linear: torch.linspace without dtype=torch.float64, so the betas come back in float32",
       names=[r"float32", r"dtype\s*=\s*torch\.float64", r"(not|instead of|rather than|expected) (a )?float64",
              r"float64[^.?]{0,20}(expected|required|not|instead)", r"(default|single)[- ]precision",
              r"(default|torch'?s?) (float )?dtype"],
       arguments=with_reference_cosine)
def linear_default_dtype(T, beta_start=1e-4, beta_end=0.02):
    scale = 1000 / T
    return torch.linspace(scale * beta_start, scale * beta_end, T)


@wrong("5.1", "linear: β_t = start + (t − 1)/T · (end − start), dividing by T instead of T − 1: β_T falls short",
       names=[r"β_T\b[^.?]{0,40}(beta_end|end value|short|below|less than|never reach)",
              r"(last|final) (β|beta|value)[^.?]{0,40}(beta_end|short|below|less than|never reach)",
              r"\(t\s*[−-]\s*1\)\s*/\s*\(T\s*[−-]\s*1\)", r"(divid\w*|÷) by T\b[^.?]{0,20}(instead|not|rather)",
              r"\binclusive\b", r"(reach|end)\w*[^.?]{0,20}(exactly )?(at )?beta_end"],
       arguments=with_reference_cosine)
def linear_divides_by_T(T, beta_start=1e-4, beta_end=0.02):
    scale = 1000 / T
    steps = torch.arange(T, dtype=torch.float64)  # t − 1 = 0 .. T − 1
    return scale * (beta_start + steps / T * (beta_end - beta_start))


@wrong("5.1", "cosine: f on the T points t = 1..T (arange(1, T + 1)), so ᾱ_0 is missing and only T − 1 betas come out",
       names=[r"T\s*\+\s*1 (points|values)", r"(from|at|include\w*|start\w* at) t\s*=\s*0", r"\bf\(0\)",
              r"ᾱ_0\b", r"(one|1) (too )?(few|short|fewer|less)", r"\(T,\)"],
       arguments=with_reference_linear, learner_name="cosine_schedule")
def cosine_points_from_one(T, s=0.008, max_beta=0.999):
    steps = torch.arange(1, T + 1, dtype=torch.float64) / T
    f = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
    alpha_bars = f / f[0]
    return (1 - alpha_bars[1:] / alpha_bars[:-1]).clamp(max=max_beta)


@wrong("5.1", "cosine: the offset s left out of the numerator, cos²(t/T / (1 + s) · π/2)",
       names=[r"offset", r"(missing|without|forgot\w*|drop\w*|ignor\w*|left out)[^.?]{0,30}\bs\b",
              r"\bs\b[^.?]{0,20}(missing|ignored|unused|not (used|added)|left out)",
              r"β_1[^.?]{0,40}(too small|tiny|vanish\w*|near(ly)? (0|zero)|zero)", r"add\w* s\b"],
       arguments=with_reference_linear, learner_name="cosine_schedule")
def cosine_no_offset(T, s=0.008, max_beta=0.999):
    steps = torch.arange(T + 1, dtype=torch.float64) / T
    f = torch.cos(steps / (1 + s) * math.pi / 2) ** 2
    alpha_bars = f / f[0]
    return (1 - alpha_bars[1:] / alpha_bars[:-1]).clamp(max=max_beta)


@wrong("5.1", "cosine: clamped the ratio ᾱ_t/ᾱ_{t−1} at max_beta instead of β_t: every β ≥ 1 − max_beta",
       names=[r"clamp\w*[^.?]{0,40}(β|beta)", r"clip\w*[^.?]{0,30}(β|beta)", r"(β|beta)s?\b[^.?]{0,30}(clamp|clip)",
              r"ratio[^.?]{0,30}(clamp|clip)", r"(clamp|clip)\w* the ratio", r"1\s*[−-]\s*max_beta"],
       arguments=with_reference_linear, learner_name="cosine_schedule")
def cosine_clamps_ratio(T, s=0.008, max_beta=0.999):
    steps = torch.arange(T + 1, dtype=torch.float64) / T
    f = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
    alpha_bars = f / f[0]
    return 1 - (alpha_bars[1:] / alpha_bars[:-1]).clamp(max=max_beta)


# ----- Exercise 5.2: q_sample ---------------------------------------------------------------------------------

@wrong("5.2", "ᾱ_t recomputed as torch.cumprod(schedule.betas): the product of the β's, not of α = 1 − β",
       names=[r"1\s*[−-]\s*β", r"product of (the )?(α|alphas|\(1\s*[−-])", r"(cumprod|product)[^.?]{0,30}(β|betas)",
              r"(β|betas)[^.?]{0,30}(instead of|not|rather than)[^.?]{0,10}(α|alphas)",
              r"schedule\.alpha_bars\b[^.?]{0,30}(use|already|given)", r"(use|already)[^.?]{0,30}schedule\.alpha_bars"])
def q_sample_cumprod_betas(x0, t, noise, schedule):
    alpha_bars = torch.cumprod(schedule.betas, dim=0)
    alpha_bar_t = alpha_bars[t - 1].view(-1, 1, 1, 1)
    return alpha_bar_t.sqrt() * x0 + (1 - alpha_bar_t).sqrt() * noise


@wrong("5.2", "returned (x_t, noise), as the tutorial's q_sample does, instead of x_t alone",
       names=[r"tuple", r"(only|just|single) (the )?(x_t|tensor)", r"return\w*[^.?]{0,30}(the noise|two)",
              r"(one|a single) tensor", r"\(x_t, ?noise\)"])
def q_sample_returns_pair(x0, t, noise, schedule):
    alpha_bar_t = schedule.alpha_bars[t - 1].view(-1, 1, 1, 1)
    return alpha_bar_t.sqrt() * x0 + (1 - alpha_bar_t).sqrt() * noise, noise


@wrong("5.2", "read ᾱ_t from the notebook's global schedules['linear'] instead of the schedule argument",
       names=[r"global", r"schedule (argument|parameter|passed|given|you (were|are) given)",
              r"(argument|parameter)[^.?]{0,20}schedule", r"schedules\[", r"(ignor\w*|not us\w*|never us\w*)[^.?]{0,20}(the )?schedule"])
def q_sample_global_schedule(x0, t, noise, schedule):
    alpha_bar_t = schedules["linear"].alpha_bars[t - 1].view(-1, 1, 1, 1).to(x0.dtype)
    return alpha_bar_t.sqrt() * x0 + (1 - alpha_bar_t).sqrt() * noise


@wrong("5.2", "t = t - 1 ('zero-based') and then alpha_bars[t - 1]: ᾱ_{t−1}, and ᾱ_T for t = 1 (index −1 wraps)",
       names=[r"off[- ]by[- ]one", r"ᾱ_\{?t\s*[−-]\s*1\}?\s*(instead of|in place of|not|rather than)",
              r"(twice|two times)[^.?]{0,20}(shift|subtract|[−-]\s*1)", r"(shift\w*|subtract\w*|[−-]\s*1)[^.?]{0,30}twice",
              r"wrap\w*", r"index(ed)? (with )?t\s*[−-]\s*2"])
def q_sample_shifted_twice(x0, t, noise, schedule):
    t = t - 1  # zero-based
    alpha_bar_t = schedule.alpha_bars[t - 1].view(-1, 1, 1, 1)
    return alpha_bar_t.sqrt() * x0 + (1 - alpha_bar_t).sqrt() * noise


# ----- Exercise 5.3: the posterior ----------------------------------------------------------------------------

def _padded(schedule, t):
    """What a learner's cell computes first: ᾱ_t, ᾱ_{t−1}, β_t, α_t as (B, 1, 1, 1), with ᾱ_0 = 1."""
    alpha_bars = F.pad(schedule.alpha_bars, (1, 0), value=1.0)
    return (alpha_bars[t].view(-1, 1, 1, 1), alpha_bars[t - 1].view(-1, 1, 1, 1),
            schedule.betas[t - 1].view(-1, 1, 1, 1), schedule.alphas[t - 1].view(-1, 1, 1, 1))


@wrong("5.3", "the numerators β_t and (1 − ᾱ_{t−1}) exchanged between the x_0 and the x_t coefficients",
       names=[r"numerators?[^.?]{0,30}(swapped|exchanged|mixed|other way)",
              r"(swapped|exchanged|mixed up)[^.?]{0,40}(β_t|numerators?|1\s*[−-]\s*ᾱ_\{?t\s*[−-]\s*1)",
              r"β_t[^.?]{0,30}(belongs|goes) (to|with) (the )?x_?0", r"(x_?0's coefficient|coefficient of x_?0)[^.?]{0,40}β_t",
              r"(x_t's coefficient|coefficient of x_t)[^.?]{0,40}1\s*[−-]\s*ᾱ"])
def posterior_numerators_swapped(x0, x_t, t, schedule):
    alpha_bar_t, alpha_bar_prev, beta_t, alpha_t = _padded(schedule, t)
    mean = (alpha_bar_prev.sqrt() * (1 - alpha_bar_prev) / (1 - alpha_bar_t) * x0
            + alpha_t.sqrt() * beta_t / (1 - alpha_bar_t) * x_t)
    variance = (1 - alpha_bar_prev) / (1 - alpha_bar_t) * beta_t
    return mean, variance


@wrong("5.3", "returned the standard deviation √β̃_t as the second value instead of the variance β̃_t",
       names=[r"standard deviation", r"\bstd\b", r"(square root|√|sqrt)[^.?]{0,30}(of )?(the )?(variance|β̃)",
              r"variance\b[^.?]{0,15}not (its |the )?(square root|std|standard)", r"(not|no|without) (a |the )?(square root|sqrt)",
              r"σ\s*(instead of|not|rather than)\s*σ²"])
def posterior_returns_std(x0, x_t, t, schedule):
    alpha_bar_t, alpha_bar_prev, beta_t, alpha_t = _padded(schedule, t)
    mean = (alpha_bar_prev.sqrt() * beta_t / (1 - alpha_bar_t) * x0
            + alpha_t.sqrt() * (1 - alpha_bar_prev) / (1 - alpha_bar_t) * x_t)
    std = ((1 - alpha_bar_prev) / (1 - alpha_bar_t) * beta_t).sqrt()
    return mean, std


@wrong("5.3", "variance written 1 - alpha_bar_prev / (1 - alpha_bar_t) * beta_t: the numerator's parentheses missing",
       names=[r"parenthes", r"precedence", r"bracket", r"(whole|entire) numerator",
              r"numerator\b[^.?]{0,30}(bracket|group|parenthes)", r"\(1\s*[−-]\s*ᾱ_\{?t\s*[−-]\s*1\}?\)\s*(as a whole|together)"])
def posterior_variance_precedence(x0, x_t, t, schedule):
    alpha_bar_t, alpha_bar_prev, beta_t, alpha_t = _padded(schedule, t)
    mean = (alpha_bar_prev.sqrt() * beta_t / (1 - alpha_bar_t) * x0
            + alpha_t.sqrt() * (1 - alpha_bar_prev) / (1 - alpha_bar_t) * x_t)
    variance = 1 - alpha_bar_prev / (1 - alpha_bar_t) * beta_t
    return mean, variance


@wrong("5.3", "x_0's coefficient as √(ᾱ_{t−1} β_t)/(1 − ᾱ_t): β_t put under the square root",
       names=[r"√\s*\(?ᾱ_\{?t\s*[−-]\s*1\}?\s*·?\s*β_t\)", r"β_t[^.?]{0,30}(outside|not under|out of) (the )?(square root|√|sqrt)",
              r"(square root|√|sqrt)[^.?]{0,40}(only|just) (on |of |over |to |applies to )?(the )?(ᾱ|alpha_bar)",
              r"(no|not a|without a) (square root|√|sqrt) (on|of|over) β_t", r"(inside|under) (the )?(square root|√|sqrt)"])
def posterior_sqrt_over_beta(x0, x_t, t, schedule):
    alpha_bar_t, alpha_bar_prev, beta_t, alpha_t = _padded(schedule, t)
    mean = ((alpha_bar_prev * beta_t).sqrt() / (1 - alpha_bar_t) * x0
            + alpha_t.sqrt() * (1 - alpha_bar_prev) / (1 - alpha_bar_t) * x_t)
    variance = (1 - alpha_bar_prev) / (1 - alpha_bar_t) * beta_t
    return mean, variance


@wrong("5.3", "t = int(t) to index the schedule: fine for one image, raises for a batch of timesteps",
       names=[r"\.item\(\)", r"\bint\(t\)", r"(each|every) image[^.?]{0,30}(own|its|different) (t|timestep|step)\b",
              r"(batch|vector|tensor) of (t|timesteps|steps)\b", r"(one|a single|same) (t|timestep|step) for (the )?(whole|all|every|each)",
              r"(per|one)[- ](image|example) (t|timestep|step)"])
def posterior_scalar_t(x0, x_t, t, schedule):
    t = int(t)  # the step, as a number to index with
    alpha_bars = F.pad(schedule.alpha_bars, (1, 0), value=1.0)
    alpha_bar_t, alpha_bar_prev = alpha_bars[t], alpha_bars[t - 1]
    beta_t, alpha_t = schedule.betas[t - 1], schedule.alphas[t - 1]
    mean = (alpha_bar_prev.sqrt() * beta_t / (1 - alpha_bar_t) * x0
            + alpha_t.sqrt() * (1 - alpha_bar_prev) / (1 - alpha_bar_t) * x_t)
    variance = ((1 - alpha_bar_prev) / (1 - alpha_bar_t) * beta_t).view(-1, 1, 1, 1)
    return mean, variance


# ----- Exercise 5.4: a DDPM step ------------------------------------------------------------------------------

@wrong("5.4", "noise switched on for the whole batch with (t > 1).any(): an image at t = 1 gets noise if another is not",
       names=[r"(each|every|per)[- ]image", r"(per|for each|every) (example|sample|item)", r"\.any\(\)",
              r"(whole|entire) batch", r"images? (whose|with|where) t\s*(=|==|is)\s*1", r"mixed (batch|t\b|timesteps)"])
def ddpm_noise_if_any(eps, x_t, t, schedule, noise, clip=True):
    alpha_bar_t = schedule.alpha_bars[t - 1].view(-1, 1, 1, 1)
    x0_hat = (x_t - (1 - alpha_bar_t).sqrt() * eps) / alpha_bar_t.sqrt()
    if clip:
        x0_hat = x0_hat.clamp(-1, 1)
    mean, _ = posterior_mean_variance(x0_hat, x_t, t, schedule)
    sigma_t = schedule.betas[t - 1].sqrt().view(-1, 1, 1, 1)
    if (t > 1).any():
        return mean + sigma_t * noise
    return mean


@wrong("5.4", "x0_hat.clamp(min=-1): only the lower bound, x̂_0 may still exceed +1",
       names=[r"upper (bound|limit|end)", r"max\s*=\s*1\b", r"(above|greater than|over|exceed\w*) \+?1\b",
              r"(only|just) (the )?(lower|min\w*)", r"(both|two) (bounds|sides|limits)"])
def ddpm_clamp_lower_only(eps, x_t, t, schedule, noise, clip=True):
    alpha_bar_t = schedule.alpha_bars[t - 1].view(-1, 1, 1, 1)
    x0_hat = (x_t - (1 - alpha_bar_t).sqrt() * eps) / alpha_bar_t.sqrt()
    if clip:
        x0_hat = x0_hat.clamp(min=-1)
    mean, _ = posterior_mean_variance(x0_hat, x_t, t, schedule)
    sigma_t = schedule.betas[t - 1].sqrt().view(-1, 1, 1, 1)
    return mean + (t > 1).to(x_t.dtype).view(-1, 1, 1, 1) * sigma_t * noise


@wrong("5.4", "σ_t = √(1 − ᾱ_t), the noise level of x_t itself, instead of √β_t",
       names=[r"σ_t\s*(=|should be|must be|is)\s*√\s*β_t\b", r"square root of β_t",
              r"(1\s*[−-]\s*ᾱ_t|marginal)[^.?]{0,30}(instead of|not|rather than|in place of)",
              r"(marginal|total|cumulative) (noise|std|standard deviation|variance)",
              r"(instead of|not|rather than)[^.?]{0,10}√\s*β_t"])
def ddpm_sigma_marginal(eps, x_t, t, schedule, noise, clip=True):
    alpha_bar_t = schedule.alpha_bars[t - 1].view(-1, 1, 1, 1)
    x0_hat = (x_t - (1 - alpha_bar_t).sqrt() * eps) / alpha_bar_t.sqrt()
    if clip:
        x0_hat = x0_hat.clamp(-1, 1)
    mean, _ = posterior_mean_variance(x0_hat, x_t, t, schedule)
    sigma_t = (1 - alpha_bar_t).sqrt()
    return mean + (t > 1).to(x_t.dtype).view(-1, 1, 1, 1) * sigma_t * noise


@wrong("5.4", "x̂_0 with the single-step α_t (schedule.alphas) instead of the cumulative ᾱ_t",
       names=[r"α_t\b[^.?]{0,30}(instead of|in place of|not|rather than)[^.?]{0,10}ᾱ_t", r"ᾱ_t\b,? not α_t\b",
              r"cumulative (ᾱ|product|alpha)", r"(single|one)[- ]step α", r"schedule\.alphas\b[^.?]{0,30}(not|instead|rather)"])
def ddpm_x0_single_step_alpha(eps, x_t, t, schedule, noise, clip=True):
    alpha_t = schedule.alphas[t - 1].view(-1, 1, 1, 1)
    x0_hat = (x_t - (1 - alpha_t).sqrt() * eps) / alpha_t.sqrt()
    if clip:
        x0_hat = x0_hat.clamp(-1, 1)
    mean, _ = posterior_mean_variance(x0_hat, x_t, t, schedule)
    sigma_t = schedule.betas[t - 1].sqrt().view(-1, 1, 1, 1)
    return mean + (t > 1).to(x_t.dtype).view(-1, 1, 1, 1) * sigma_t * noise


@wrong("5.4", "t -= 1 to index from 0: right output, but the caller's t is decremented in place",
       names=[r"in[- ]?place", r"(modif|mutat|chang|overwr|decrement)\w*[^.?]{0,30}\bt\b",
              r"(caller'?s?|your|the given|input) t\b[^.?]{0,30}(changed|modified|mutated|decremented)",
              r"\bt\b[^.?]{0,30}(was |is |has been )(changed|modified|mutated|decremented)"],
       late=True)
def ddpm_decrements_t_in_place(eps, x_t, t, schedule, noise, clip=True):
    t -= 1  # index from 0
    alpha_bar_t = schedule.alpha_bars[t].view(-1, 1, 1, 1)
    x0_hat = (x_t - (1 - alpha_bar_t).sqrt() * eps) / alpha_bar_t.sqrt()
    if clip:
        x0_hat = x0_hat.clamp(-1, 1)
    mean, _ = posterior_mean_variance(x0_hat, x_t, t + 1, schedule)
    sigma_t = schedule.betas[t].sqrt().view(-1, 1, 1, 1)
    return mean + (t > 0).to(x_t.dtype).view(-1, 1, 1, 1) * sigma_t * noise


# ----- Exercise 5.5: a DDIM step ------------------------------------------------------------------------------

@wrong("5.5", "ᾱ_{t'} as schedule.alpha_bars[t_prev - 1], unpadded: the final jump t' = 0 wraps to ᾱ_T, not ᾱ_0 = 1",
       names=[r"ᾱ_0\s*(=|is|should be|must be)\s*1", r"t_prev\s*(=|==)\s*0", r"t'\s*=\s*0", r"final (jump|step)",
              r"wrap\w*", r"index -1"])
def ddim_unpadded_final_jump(eps, x_t, t, t_prev, schedule, clip=True):
    alpha_bar_t = schedule.alpha_bars[t - 1].view(-1, 1, 1, 1)
    alpha_bar_prev = schedule.alpha_bars[t_prev - 1].view(-1, 1, 1, 1)
    x0_hat = (x_t - (1 - alpha_bar_t).sqrt() * eps) / alpha_bar_t.sqrt()
    if clip:
        x0_hat = x0_hat.clamp(-1, 1)
    return alpha_bar_prev.sqrt() * x0_hat + (1 - alpha_bar_prev).sqrt() * eps


@wrong("5.5", "direction √(1 − ᾱ_{t'} − σ²) ε with σ² of η = 1 (DDPM's), though DDIM has σ = 0 and adds no noise",
       names=[r"σ\s*(=|is|should be|must be)\s*0", r"σ_t\s*(=|is|should be|must be)\s*0", r"σ_t?²", r"β̃",
              r"(no|without|drop\w*) (the )?σ", r"η\s*=\s*[01]"])
def ddim_eta_one_direction(eps, x_t, t, t_prev, schedule, clip=True):
    alpha_bars = F.pad(schedule.alpha_bars, (1, 0), value=1.0)
    alpha_bar_t = alpha_bars[t].view(-1, 1, 1, 1)
    alpha_bar_prev = alpha_bars[t_prev].view(-1, 1, 1, 1)
    x0_hat = (x_t - (1 - alpha_bar_t).sqrt() * eps) / alpha_bar_t.sqrt()
    if clip:
        x0_hat = x0_hat.clamp(-1, 1)
    sigma2 = (1 - alpha_bar_prev) / (1 - alpha_bar_t) * (1 - alpha_bar_t / alpha_bar_prev)
    return alpha_bar_prev.sqrt() * x0_hat + (1 - alpha_bar_prev - sigma2).sqrt() * eps


@wrong("5.5", "x̂_0 = x_t − √(1 − ᾱ_t) ε: the division by √ᾱ_t forgotten",
       names=[r"(divid\w*|÷)[^.?]{0,30}√\s*ᾱ_t", r"(missing|forgot\w*|without)[^.?]{0,30}(division|divid\w*|1\s*/\s*√)",
              r"x̂_?0[^.?]{0,40}(divid\w*|rescal\w*|scal\w* by)", r"/\s*√\s*ᾱ_t"])
def ddim_x0_not_divided(eps, x_t, t, t_prev, schedule, clip=True):
    alpha_bars = F.pad(schedule.alpha_bars, (1, 0), value=1.0)
    alpha_bar_t = alpha_bars[t].view(-1, 1, 1, 1)
    alpha_bar_prev = alpha_bars[t_prev].view(-1, 1, 1, 1)
    x0_hat = x_t - (1 - alpha_bar_t).sqrt() * eps
    if clip:
        x0_hat = x0_hat.clamp(-1, 1)
    return alpha_bar_prev.sqrt() * x0_hat + (1 - alpha_bar_prev).sqrt() * eps


@wrong("5.5", "padded alpha_bars (index t is ᾱ_t) but ᾱ_t read at t − 1 out of habit: x̂_0 with ᾱ_{t−1}",
       names=[r"off[- ]by[- ]one", r"ᾱ_\{?t\s*[−-]\s*1\}?\s*(instead of|in place of|not|rather than)",
              r"padded[^.?]{0,40}(index|t\b)", r"index t gives", r"(both|same) (index(ing)?|convention)",
              r"(one|a) step (too early|early|off|behind)"])
def ddim_padded_index_shifted(eps, x_t, t, t_prev, schedule, clip=True):
    alpha_bars = F.pad(schedule.alpha_bars, (1, 0), value=1.0)
    alpha_bar_t = alpha_bars[t - 1].view(-1, 1, 1, 1)
    alpha_bar_prev = alpha_bars[t_prev].view(-1, 1, 1, 1)
    x0_hat = (x_t - (1 - alpha_bar_t).sqrt() * eps) / alpha_bar_t.sqrt()
    if clip:
        x0_hat = x0_hat.clamp(-1, 1)
    return alpha_bar_prev.sqrt() * x0_hat + (1 - alpha_bar_prev).sqrt() * eps


# ----- Exercise 5.6: sinusoidal embedding ---------------------------------------------------------------------

@wrong("5.6", "i from 1 to d/2 (arange(1, half + 1)): the highest frequency is 10000^(−2/d), not 1",
       names=[r"\bi\s*=\s*0", r"(start|begin)\w* (at|from|with) (0|zero|i\s*=\s*0)", r"ω_0\s*(=|is|should be|must be)\s*1",
              r"off[- ]by[- ]one", r"arange\(half\)", r"(first|highest|largest) frequency[^.?]{0,30}\b1\b"])
def embedding_i_from_one(t, dim):
    half = dim // 2
    frequencies = torch.exp(-math.log(10_000) * torch.arange(1, half + 1, device=t.device) / half)
    angles = t.float()[:, None] * frequencies[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


@wrong("5.6", "exponent i/(d/2 − 1) (the tensor2tensor variant): the lowest frequency is exactly 1/10000",
       names=[r"half\s*[−-]\s*1", r"d\s*/\s*2\s*[−-]\s*1", r"dim\s*//?\s*2\s*[−-]\s*1",
              r"(divid\w* by|over|denominator)[^.?]{0,20}\b(half|d/2|dim/2)\b[^.?]{0,20}(not|instead|rather)",
              r"(lowest|last|smallest) frequency[^.?]{0,40}(exactly|1\s*/\s*10\s*,?000)", r"linspace"])
def embedding_half_minus_one(t, dim):
    half = dim // 2
    frequencies = torch.exp(-math.log(10_000) * torch.arange(half, device=t.device) / (half - 1))
    angles = t.float()[:, None] * frequencies[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


@wrong("5.6", "angles = t * frequencies without t[:, None]: elementwise, only works when B = dim/2, and then wrong",
       names=[r"\[:, ?None\]", r"outer( product)?", r"\(B, ?(dim|d)\s*/\s*2\)", r"(table|grid) of (angles|products)",
              r"(every|each) (t|timestep)[^.?]{0,30}(every|each|all) (the )?frequenc", r"unsqueeze"])
def embedding_no_outer_product(t, dim):
    half = dim // 2
    frequencies = torch.exp(-math.log(10_000) * torch.arange(half, device=t.device) / half)
    angles = t.float() * frequencies
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


@wrong("5.6", "copy-paste: torch.cat([angles.sin(), angles.sin()]): no cosines at all",
       names=[r"cos\w*\b[^.?]{0,30}\b(missing|never|absent|instead)\b", r"(second|last) half[^.?]{0,40}cos",
              r"(no|without|missing) cos", r"sin\w* twice", r"(sines?|sin)\b[^.?]{0,20}(instead of|in place of|not) (the )?cos"])
def embedding_sines_twice(t, dim):
    half = dim // 2
    frequencies = torch.exp(-math.log(10_000) * torch.arange(half, device=t.device) / half)
    angles = t.float()[:, None] * frequencies[None, :]
    return torch.cat([angles.sin(), angles.sin()], dim=-1)
