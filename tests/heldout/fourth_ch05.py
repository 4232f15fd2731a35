"""Fourth blind held-out set for Chapter 05 (diffusion): wrong answers written as a learner writes the exercise cell.

Written without reading the checks or seeing any of their messages, and without repeating a mistake of the first
(``wrong_ch05.py``), second (``blind_ch05.py``) or third (``third_ch05.py``) set. The helpers a learner's cell uses
from earlier cells (``posterior_mean_variance`` in ``ddpm_step``) and the half of a two-function exercise that is not
wrong are the chapter's reference solutions, so each answer holds exactly one mistake.
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

@wrong("5.1", "linear: torch.linspace(..., T - 1): one β short, T − 1 values instead of T",
       names=[r"(length|number of (values|betas|entries))\s*(of\s*)?T\b", r"\(T,\)",
              r"\bT\b (values|betas|entries|points)\b", r"T\s*[−-]\s*1 (values|betas|entries|points)",
              r"(one|a) (β|beta|value|entry|point) (short|missing|too few)", r"off[- ]by[- ]one"],
       arguments=with_reference_cosine)
def linear_one_short(T, beta_start=1e-4, beta_end=0.02):
    scale = 1000 / T
    return torch.linspace(scale * beta_start, scale * beta_end, T - 1, dtype=torch.float64)


@wrong("5.1", "linear: torch.linspace(scale * beta_end, scale * beta_start, T): the betas fall instead of rising",
       names=[r"\b(decreas\w*|descend\w*|falling|fall)\b", r"revers\w*",
              r"(increas|ris)\w*[^.?]{0,30}(from|with t|instead|not)",
              r"(swapped|exchanged)[^.?]{0,20}(start|end)", r"(start|end)[^.?]{0,40}(swapped|exchanged)",
              r"β_1\b[^.?]{0,40}(smallest|beta_start)", r"(first|β_1)[^.?]{0,30}(should be|must be|is) (the )?(smallest|beta_start)"],
       arguments=with_reference_cosine)
def linear_reversed(T, beta_start=1e-4, beta_end=0.02):
    scale = 1000 / T
    return torch.linspace(scale * beta_end, scale * beta_start, T, dtype=torch.float64)


@wrong("5.1", "cosine: cos²((t/T + s)/(1 + s) · π), the /2 of π/2 forgotten",
       names=[r"π\s*/\s*2[^.?;]{0,30}(not|instead of|rather than)[^.?;]{0,10}π\b",
              r"\bπ\b[^.?;]{0,20}(instead of|not|rather than)[^.?;]{0,10}π\s*/\s*2", r"half (of )?π",
              r"(missing|forgot\w*|without)[^.?]{0,20}(/\s*2|half|factor)", r"(factor|missing) (of )?(1/2|½)",
              r"quarter (turn|period)", r"(angle|argument)[^.?]{0,30}(twice|2\s*[×x] too|doubled)"],
       arguments=with_reference_linear, learner_name="cosine_schedule")
def cosine_pi_not_halved(T, s=0.008, max_beta=0.999):
    steps = torch.arange(T + 1, dtype=torch.float64) / T
    f = torch.cos((steps + s) / (1 + s) * math.pi) ** 2
    alpha_bars = f / f[0]
    return (1 - alpha_bars[1:] / alpha_bars[:-1]).clamp(max=max_beta)


@wrong("5.1", "cosine: steps + s / (1 + s): the parentheses around t/T + s missing, so only s is divided",
       names=[r"parenthes", r"precedence", r"bracket",
              r"(whole|entire) (numerator|sum)", r"(only|just) s\b[^.?]{0,20}divided"],
       arguments=with_reference_linear, learner_name="cosine_schedule")
def cosine_precedence(T, s=0.008, max_beta=0.999):
    steps = torch.arange(T + 1, dtype=torch.float64) / T
    f = torch.cos(steps + s / (1 + s) * math.pi / 2) ** 2
    alpha_bars = f / f[0]
    return (1 - alpha_bars[1:] / alpha_bars[:-1]).clamp(max=max_beta)


@wrong("5.1", "cosine: Python's min(betas, max_beta) on a tensor instead of an element-wise clamp",
       names=[r"\.clamp\b", r"torch\.(minimum|clamp|clip)", r"(built-?in|python'?s?) min\b",
              r"element-?wise (min|minimum|clip|clamp)", r"\bclamp\(max\s*="],
       arguments=with_reference_linear, learner_name="cosine_schedule")
def cosine_python_min(T, s=0.008, max_beta=0.999):
    steps = torch.arange(T + 1, dtype=torch.float64) / T
    f = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
    alpha_bars = f / f[0]
    return min(1 - alpha_bars[1:] / alpha_bars[:-1], max_beta)


@wrong("5.1", "cosine: β_t = 1 − ᾱ_t (the cumulative noise) instead of 1 − ᾱ_t/ᾱ_{t−1}",
       names=[r"\bratio\b", r"ᾱ_t\s*/\s*ᾱ_\{?t\s*[−-]\s*1", r"consecutive", r"cumulative (noise|product|ᾱ)",
              r"1\s*[−-]\s*ᾱ_t\b[^.?]{0,30}(instead of|not|rather than)",
              r"(divid\w*|÷) by ᾱ_\{?t\s*[−-]\s*1", r"alpha_bars?\[:-1\]"],
       arguments=with_reference_linear, learner_name="cosine_schedule")
def cosine_one_minus_alpha_bar(T, s=0.008, max_beta=0.999):
    steps = torch.arange(T + 1, dtype=torch.float64) / T
    f = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
    alpha_bars = f / f[0]
    return (1 - alpha_bars[1:]).clamp(max=max_beta)


# ----- Exercise 5.2: q_sample ---------------------------------------------------------------------------------

@wrong("5.2", "(1 - alpha_bar_t).sqrt without the call parentheses: a bound method multiplied by the noise",
       names=[r"\.sqrt\(\)", r"(call|parenthes)\w*[^.?]{0,30}sqrt", r"sqrt\b[^.?]{0,30}(call|parenthes|method)",
              r"method[^.?]{0,30}(not|never) called", r"(forgot|missing)[^.?]{0,20}\(\)"])
def q_sample_sqrt_not_called(x0, t, noise, schedule):
    alpha_bar_t = schedule.alpha_bars[t - 1].view(-1, 1, 1, 1)
    return alpha_bar_t.sqrt() * x0 + (1 - alpha_bar_t).sqrt * noise


@wrong("5.2", "ᾱ_t as α_t ** t (as if α were the same at every step) instead of the product α_1 ⋯ α_t",
       names=[r"product of (the |all )?(α|alphas|1\s*[−-]\s*β)", r"(α|alpha)_?1\s*[⋯·.…]+\s*(α|alpha)_?t", r"cumprod",
              r"α_t\s*(\^|\*\*)\s*t", r"(constant|same|fixed) α", r"schedule\.alpha_bars\b(?!\[t - 1\] has)",
              r"(varies|differ\w*|changes?) (from step to step|with t|per step)",
              r"ᾱ_t\b[^.?]{0,30}(not|instead of|rather than) α_t\s*(\^|\*\*)"])
def q_sample_alpha_power(x0, t, noise, schedule):
    alpha_bar_t = (schedule.alphas[t - 1] ** t).view(-1, 1, 1, 1)
    return alpha_bar_t.sqrt() * x0 + (1 - alpha_bar_t).sqrt() * noise


@wrong("5.2", "noise coefficient √β_t (one step of eq. (5.1)) with the signal's √ᾱ_t (eq. (5.2))",
       names=[r"√\s*β_t[^.?]{0,30}(instead of|in place of|not|rather than)",
              r"β_t\b[^.?]{0,30}(instead of|in place of|not|rather than)[^.?]{0,20}1\s*[−-]\s*ᾱ_t",
              r"(1\s*[−-]\s*ᾱ_t)[^.?]{0,30}(instead of|not|rather than)[^.?]{0,10}β",
              r"single[- ]step (noise|variance|β)", r"cumulative (noise|variance)",
              r"(noise|ε)[^.?]{0,30}(coefficient|scale|factor)[^.?]{0,30}β_t", r"schedule\.betas"])
def q_sample_beta_noise(x0, t, noise, schedule):
    alpha_bar_t = schedule.alpha_bars[t - 1].view(-1, 1, 1, 1)
    beta_t = schedule.betas[t - 1].view(-1, 1, 1, 1)
    return alpha_bar_t.sqrt() * x0 + beta_t.sqrt() * noise


@wrong("5.2", "typo: √(1 − ᾱ_t) + noise instead of √(1 − ᾱ_t) · noise",
       names=[r"(added|adds?|plus|\+)[^.?]{0,40}(instead of|rather than|not) (multipl|scal|\*|×|·)",
              r"multipl\w*[^.?]{0,30}(instead of|rather than|not) (add|\+|plus)",
              r"(noise|ε)[^.?]{0,30}(not|never|isn't|is not) (multiplied|scaled)",
              r"(coefficient|√\s*\(?1\s*[−-]\s*ᾱ_t\)?)[^.?]{0,30}(added|plus)", r"typo"])
def q_sample_plus_noise(x0, t, noise, schedule):
    alpha_bar_t = schedule.alpha_bars[t - 1].view(-1, 1, 1, 1)
    return alpha_bar_t.sqrt() * x0 + (1 - alpha_bar_t).sqrt() + noise


# ----- Exercise 5.3: the posterior ----------------------------------------------------------------------------

@wrong("5.3", "F.pad(alpha_bars, (0, 1), value=1.0): the 1 appended at the end instead of prepended",
       names=[r"\(1, ?0\)", r"prepend\w*", r"(in front|at the (front|start|beginning))",
              r"(append\w*|at the end|on the right)[^.?]{0,40}(instead|not|rather)",
              r"F\.pad[^.?]{0,40}(left|right|side|order|front|end)", r"ᾱ_0\s*(=|is|should be|must be)\s*1"])
def posterior_padded_at_end(x0, x_t, t, schedule):
    alpha_bars = F.pad(schedule.alpha_bars, (0, 1), value=1.0)
    alpha_bar_t = alpha_bars[t].view(-1, 1, 1, 1)
    alpha_bar_prev = alpha_bars[t - 1].view(-1, 1, 1, 1)
    beta_t = schedule.betas[t - 1].view(-1, 1, 1, 1)
    alpha_t = schedule.alphas[t - 1].view(-1, 1, 1, 1)
    mean = (alpha_bar_prev.sqrt() * beta_t / (1 - alpha_bar_t) * x0
            + alpha_t.sqrt() * (1 - alpha_bar_prev) / (1 - alpha_bar_t) * x_t)
    variance = (1 - alpha_bar_prev) / (1 - alpha_bar_t) * beta_t
    return mean, variance


@wrong("5.3", "the mean's two coefficients divided by 1 − ᾱ_{t−1} instead of 1 − ᾱ_t (0 at t = 1: inf)",
       names=[r"denominators?", r"1\s*[−-]\s*ᾱ_t\b[^.?]{0,30}(not|instead of|rather than|in place of)",
              r"1\s*[−-]\s*ᾱ_\{?t\s*[−-]\s*1\}?[^.?]{0,30}(instead of|in place of|not|rather than)[^.?]{0,10}1\s*[−-]\s*ᾱ_t",
              r"divid\w* by 1\s*[−-]\s*ᾱ_t\b"])
def posterior_wrong_denominator(x0, x_t, t, schedule):
    alpha_bars = F.pad(schedule.alpha_bars, (1, 0), value=1.0)
    alpha_bar_t = alpha_bars[t].view(-1, 1, 1, 1)
    alpha_bar_prev = alpha_bars[t - 1].view(-1, 1, 1, 1)
    beta_t = schedule.betas[t - 1].view(-1, 1, 1, 1)
    alpha_t = schedule.alphas[t - 1].view(-1, 1, 1, 1)
    mean = (alpha_bar_prev.sqrt() * beta_t / (1 - alpha_bar_prev) * x0
            + alpha_t.sqrt() * (1 - alpha_bar_prev) / (1 - alpha_bar_prev) * x_t)
    variance = (1 - alpha_bar_prev) / (1 - alpha_bar_t) * beta_t
    return mean, variance


@wrong("5.3", "variance (1 − ᾱ_{t−1})/(1 − ᾱ_t) without the factor β_t",
       names=[r"β_t\b[^.?]{0,30}(factor|missing|forgot\w*|dropped|omitted|left out)",
              r"(missing|forgot\w*|without|dropp\w*|omit\w*)[^.?]{0,30}(factor )?(of )?β_t",
              r"(times|multipl\w* by|factor( of)?) β_t", r"β̃_t\s*=[^.?]{0,40}β_t"])
def posterior_variance_without_beta(x0, x_t, t, schedule):
    alpha_bars = F.pad(schedule.alpha_bars, (1, 0), value=1.0)
    alpha_bar_t = alpha_bars[t].view(-1, 1, 1, 1)
    alpha_bar_prev = alpha_bars[t - 1].view(-1, 1, 1, 1)
    beta_t = schedule.betas[t - 1].view(-1, 1, 1, 1)
    alpha_t = schedule.alphas[t - 1].view(-1, 1, 1, 1)
    mean = (alpha_bar_prev.sqrt() * beta_t / (1 - alpha_bar_t) * x0
            + alpha_t.sqrt() * (1 - alpha_bar_prev) / (1 - alpha_bar_t) * x_t)
    variance = (1 - alpha_bar_prev) / (1 - alpha_bar_t)
    return mean, variance


@wrong("5.3", "β_t taken as 1 − ᾱ_t (the cumulative noise) instead of schedule.betas[t − 1]",
       names=[r"β_t\s*(=|is)\s*1\s*[−-]\s*α_t\b", r"1\s*[−-]\s*ᾱ_t\b[^.?]{0,30}(instead of|in place of|not|rather than)[^.?]{0,10}β_t",
              r"β_t\b[^.?]{0,30}(instead of|in place of|not|rather than)[^.?]{0,10}1\s*[−-]\s*ᾱ",
              r"single[- ]step (β|beta|variance|noise)", r"schedule\.betas", r"cumulative[^.?]{0,30}(instead|not|rather)"])
def posterior_beta_from_alpha_bar(x0, x_t, t, schedule):
    alpha_bars = F.pad(schedule.alpha_bars, (1, 0), value=1.0)
    alpha_bar_t = alpha_bars[t].view(-1, 1, 1, 1)
    alpha_bar_prev = alpha_bars[t - 1].view(-1, 1, 1, 1)
    beta_t = 1 - alpha_bar_t
    alpha_t = schedule.alphas[t - 1].view(-1, 1, 1, 1)
    mean = (alpha_bar_prev.sqrt() * beta_t / (1 - alpha_bar_t) * x0
            + alpha_t.sqrt() * (1 - alpha_bar_prev) / (1 - alpha_bar_t) * x_t)
    variance = (1 - alpha_bar_prev) / (1 - alpha_bar_t) * beta_t
    return mean, variance


# ----- Exercise 5.4: one DDPM step ----------------------------------------------------------------------------

@wrong("5.4", "x̂_0 = (x_t − √(1 − ᾱ_t) ε) · √ᾱ_t: multiplied by √ᾱ_t instead of divided",
       names=[r"divid\w*[^.?]{0,30}(by )?√\s*ᾱ", r"(multipl\w*|times)[^.?]{0,30}(instead of|rather than|not) divid",
              r"(instead of|rather than|not) (multipl\w*|times)[^.?]{0,20}√\s*ᾱ", r"1\s*/\s*√\s*ᾱ_?t?",
              r"\bᾱ_t\b (times|×) too (small|large)"])
def ddpm_multiplies_by_sqrt_alpha_bar(eps, x_t, t, schedule, noise, clip=True):
    alpha_bar_t = schedule.alpha_bars[t - 1].view(-1, 1, 1, 1)
    x0_hat = (x_t - (1 - alpha_bar_t).sqrt() * eps) * alpha_bar_t.sqrt()
    if clip:
        x0_hat = x0_hat.clamp(-1, 1)
    mean, _ = posterior_mean_variance(x0_hat, x_t, t, schedule)
    sigma_t = schedule.betas[t - 1].sqrt().view(-1, 1, 1, 1)
    not_last = (t > 1).to(x_t.dtype).view(-1, 1, 1, 1)
    return mean + not_last * sigma_t * noise


@wrong("5.4", "`if t > 1:` on the (B,) tensor t: a Python if, not a per-image mask (fails for B > 1)",
       names=[r"(each|every|per)[- ]image", r"element-?wise",
              r"noise mask", r"\(t\s*>\s*1\)[^.?]{0,30}(mask|float|\.to|multipl|tensor)", r"torch\.where",
              r"python (if|condition)"])
def ddpm_python_if(eps, x_t, t, schedule, noise, clip=True):
    alpha_bar_t = schedule.alpha_bars[t - 1].view(-1, 1, 1, 1)
    x0_hat = (x_t - (1 - alpha_bar_t).sqrt() * eps) / alpha_bar_t.sqrt()
    if clip:
        x0_hat = x0_hat.clamp(-1, 1)
    mean, _ = posterior_mean_variance(x0_hat, x_t, t, schedule)
    sigma_t = schedule.betas[t - 1].sqrt().view(-1, 1, 1, 1)
    if t > 1:
        return mean + sigma_t * noise
    return mean


@wrong("5.4", "used Algorithm 2's closed form (x_t − β_t/√(1 − ᾱ_t) ε)/√α_t: no x̂_0, so clip=True never clips",
       names=[r"clip\w*[^.?]{0,40}(ignored|no effect|not applied|never|missing|skipped)", r"(not|never|without|no) clip\w*",
              r"unclipped", r"not clipped", r"clip\s*=\s*True", r"clip\w*[^.?]{0,20}x̂_?0",
              r"clamp"])
def ddpm_algorithm_two(eps, x_t, t, schedule, noise, clip=True):
    alpha_t = schedule.alphas[t - 1].view(-1, 1, 1, 1)
    alpha_bar_t = schedule.alpha_bars[t - 1].view(-1, 1, 1, 1)
    beta_t = schedule.betas[t - 1].view(-1, 1, 1, 1)
    mean = (x_t - beta_t / (1 - alpha_bar_t).sqrt() * eps) / alpha_t.sqrt()
    not_last = (t > 1).to(x_t.dtype).view(-1, 1, 1, 1)
    return mean + not_last * beta_t.sqrt() * noise


@wrong("5.4", "x̂_0 with (1 − ᾱ_t) ε: the square root on the noise term forgotten",
       names=[r"(missing|forgot\w*|without|no) (the )?(square root|√|sqrt)",
              r"√\s*\(?1\s*[−-]\s*ᾱ_t\)?[^.?]{0,30}(instead of|not|in place of|rather than)",
              r"\(?1\s*[−-]\s*ᾱ_t\)?[^.?]{0,20}(instead of|not|in place of|rather than)[^.?]{0,10}√",
              r"square root of (1\s*[−-]\s*ᾱ_t|the noise (variance|level))",
              r"(variance|σ²)[^.?]{0,30}(instead of|not|rather than|as) (the )?(standard deviation|std|√)"])
def ddpm_x0_hat_no_sqrt(eps, x_t, t, schedule, noise, clip=True):
    alpha_bar_t = schedule.alpha_bars[t - 1].view(-1, 1, 1, 1)
    x0_hat = (x_t - (1 - alpha_bar_t) * eps) / alpha_bar_t.sqrt()
    if clip:
        x0_hat = x0_hat.clamp(-1, 1)
    mean, _ = posterior_mean_variance(x0_hat, x_t, t, schedule)
    sigma_t = schedule.betas[t - 1].sqrt().view(-1, 1, 1, 1)
    not_last = (t > 1).to(x_t.dtype).view(-1, 1, 1, 1)
    return mean + not_last * sigma_t * noise


@wrong("5.4", "not_last * (mean + σ_t z): the mask multiplies the mean too, so images at t = 1 come out all zero",
       names=[r"(only|just) (to |on )?(the )?noise", r"mean[^.?]{0,40}(zero|dropped|lost|missing|multiplied|masked)",
              r"(t\s*=\s*1|last step|final step)[^.?]{0,60}(zero|\b0\b|nothing|mean)", r"parenthes",
              r"(mask|\[t\s*>\s*1\]|\(t\s*>\s*1\))[^.?]{0,40}(whole|entire|both|mean)", r"returns? (all )?zeros?"])
def ddpm_mask_whole_update(eps, x_t, t, schedule, noise, clip=True):
    alpha_bar_t = schedule.alpha_bars[t - 1].view(-1, 1, 1, 1)
    x0_hat = (x_t - (1 - alpha_bar_t).sqrt() * eps) / alpha_bar_t.sqrt()
    if clip:
        x0_hat = x0_hat.clamp(-1, 1)
    mean, _ = posterior_mean_variance(x0_hat, x_t, t, schedule)
    sigma_t = schedule.betas[t - 1].sqrt().view(-1, 1, 1, 1)
    not_last = (t > 1).to(x_t.dtype).view(-1, 1, 1, 1)
    return not_last * (mean + sigma_t * noise)


# ----- Exercise 5.5: one DDIM step ----------------------------------------------------------------------------

@wrong("5.5", "signal term √ᾱ_{t'} · x_t: the current sample where the predicted x̂_0 belongs",
       names=[r"x̂_?0[^.?]{0,30}(instead of|not|in place of|rather than)",
              r"\bx_t\b[^.?]{0,30}(instead of|in place of|rather than|where)[^.?]{0,15}x̂",
              r"(predicted|estimated) (clean|x_?0|image)", r"x0_hat"])
def ddim_signal_from_x_t(eps, x_t, t, t_prev, schedule, clip=True):
    alpha_bars = F.pad(schedule.alpha_bars, (1, 0), value=1.0)
    alpha_bar_t = alpha_bars[t].view(-1, 1, 1, 1)
    alpha_bar_prev = alpha_bars[t_prev].view(-1, 1, 1, 1)
    x0_hat = (x_t - (1 - alpha_bar_t).sqrt() * eps) / alpha_bar_t.sqrt()
    if clip:
        x0_hat = x0_hat.clamp(-1, 1)
    return alpha_bar_prev.sqrt() * x_t + (1 - alpha_bar_prev).sqrt() * eps


@wrong("5.5", "added √β_t · torch.randn_like(x_t) out of DDPM habit: DDIM (σ = 0) is deterministic",
       names=[r"determinis", r"σ\w*\s*(=|is|should be|must be)\s*0\b", r"stochastic",
              r"(no|without|must not add|should not add|adds? no) (random |extra |fresh )?noise",
              r"(random|fresh|extra|added) noise", r"noise[^.?]{0,30}(added|adds|injected)", r"randn"])
def ddim_adds_noise(eps, x_t, t, t_prev, schedule, clip=True):
    alpha_bars = F.pad(schedule.alpha_bars, (1, 0), value=1.0)
    alpha_bar_t = alpha_bars[t].view(-1, 1, 1, 1)
    alpha_bar_prev = alpha_bars[t_prev].view(-1, 1, 1, 1)
    x0_hat = (x_t - (1 - alpha_bar_t).sqrt() * eps) / alpha_bar_t.sqrt()
    if clip:
        x0_hat = x0_hat.clamp(-1, 1)
    sigma_t = schedule.betas[t - 1].sqrt().view(-1, 1, 1, 1)
    return alpha_bar_prev.sqrt() * x0_hat + (1 - alpha_bar_prev).sqrt() * eps + sigma_t * torch.randn_like(x_t)


@wrong("5.5", "x̂_0 = x_t/√ᾱ_t − (√(1/ᾱ_t) − 1) ε: the − 1 outside the square root (should be √(1/ᾱ_t − 1))",
       names=[r"√\s*\(\s*1\s*/\s*ᾱ_t\s*[−-]\s*1\s*\)", r"sqrt\(\s*1\s*/\s*ᾱ_t\s*[−-]\s*1\s*\)",
              r"parenthes", r"precedence", r"sqrt_recipm1",
              r"(−|-)\s*1\b[^.?]{0,30}(inside|under|outside) (the )?(square root|√|sqrt)",
              r"(inside|under) (the )?(square root|√|sqrt)[^.?]{0,30}(−|-)\s*1\b"])
def ddim_recip_sqrt_precedence(eps, x_t, t, t_prev, schedule, clip=True):
    alpha_bars = F.pad(schedule.alpha_bars, (1, 0), value=1.0)
    alpha_bar_t = alpha_bars[t].view(-1, 1, 1, 1)
    alpha_bar_prev = alpha_bars[t_prev].view(-1, 1, 1, 1)
    x0_hat = (1 / alpha_bar_t).sqrt() * x_t - ((1 / alpha_bar_t).sqrt() - 1) * eps
    if clip:
        x0_hat = x0_hat.clamp(-1, 1)
    return alpha_bar_prev.sqrt() * x0_hat + (1 - alpha_bar_prev).sqrt() * eps


@wrong("5.5", "read t_prev as the jump size: ᾱ at t − t_prev instead of at t_prev",
       names=[r"t_prev\b[^.?]{0,40}(timestep|index|the step (to|we|you)|target|where)",
              r"ᾱ_\{?t'\}?\s*(=|is|should be|must be)", r"(step size|stride|jump size|number of steps)",
              r"t\s*[−-]\s*t'", r"t\s*[−-]\s*t_prev", r"(step|timestep) (we|you) jump to",
              r"target (step|timestep)"])
def ddim_t_prev_as_stride(eps, x_t, t, t_prev, schedule, clip=True):
    alpha_bars = F.pad(schedule.alpha_bars, (1, 0), value=1.0)
    alpha_bar_t = alpha_bars[t].view(-1, 1, 1, 1)
    alpha_bar_prev = alpha_bars[t - t_prev].view(-1, 1, 1, 1)
    x0_hat = (x_t - (1 - alpha_bar_t).sqrt() * eps) / alpha_bar_t.sqrt()
    if clip:
        x0_hat = x0_hat.clamp(-1, 1)
    return alpha_bar_prev.sqrt() * x0_hat + (1 - alpha_bar_prev).sqrt() * eps


# ----- Exercise 5.6: the sinusoidal time embedding ------------------------------------------------------------

@wrong("5.6", "angles 2π · t · ω_i (the Fourier-features habit): an extra factor 2π in every angle",
       names=[r"(extra|spurious|additional) (factor )?(of )?2\s*π", r"2\s*π[^.?;]{0,30}(extra|too|not|instead|remove|drop)",
              r"(without|no|drop\w*|remove\w*) (the )?(factor )?2\s*π", r"2\s*\*\s*(math\.)?pi", r"6\.28",
              r"(extra|spurious) factor"])
def embedding_two_pi(t, dim):
    half = dim // 2
    frequencies = torch.exp(-math.log(10_000) * torch.arange(half, device=t.device) / half)
    angles = 2 * math.pi * t.float()[:, None] * frequencies[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


@wrong("5.6", "dim frequencies ω_i = 10000^(−i/dim), sines from the first half, cosines from the second: sin and "
              "cos of a pair no longer share a frequency",
       names=[r"(same|shared) frequenc", r"(sin|cos)\w*[^.?]{0,40}(share|same) (the )?(frequenc|ω|angle)",
              r"(each|every) (frequency|ω_?i?)[^.?]{0,40}(both|sine and cosine|sin and cos)",
              r"(both|sine and cosine|sin and cos)[^.?]{0,40}(same|each) (frequenc|ω|angle)",
              r"\b(d|dim)\s*/\s*2 frequenc", r"(half|d/2)[^.?]{0,20}frequenc"])
def embedding_dim_frequencies(t, dim):
    frequencies = torch.exp(-math.log(10_000) * torch.arange(dim, device=t.device) / dim)
    angles = t.float()[:, None] * frequencies[None, :]
    half = dim // 2
    return torch.cat([angles[:, :half].sin(), angles[:, half:].cos()], dim=-1)


@wrong("5.6", "t divided by 1000 first (continuous-time habit): the embedding of t/1000, not of the integer step t",
       names=[r"(raw|integer|unscaled|unnormali[sz]ed) (t|timestep|step)", r"t\s*/\s*1000",
              r"(divid\w*|scal\w*|normali[sz]\w*) (t|the timestep|the step) (by|to|into)",
              r"(timestep|step)s? (is |was |were )?(scaled|divided|normali[sz]ed)",
              r"(do not|don't|not|never) (scale|divide|normali[sz]e) (t|the timestep|the step)"])
def embedding_scaled_time(t, dim):
    half = dim // 2
    frequencies = torch.exp(-math.log(10_000) * torch.arange(half, device=t.device) / half)
    angles = (t.float() / 1000)[:, None] * frequencies[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


@wrong("5.6", "torch.stack([sin, cos], dim=1) without flattening: (B, 2, dim/2), not (B, dim)",
       names=[r"torch\.cat", r"concat\w*", r"\bstack\w*", r"flatten\w*",
              r"(extra|third|additional) (axis|dimension)", r"3-?D"])
def embedding_stacked(t, dim):
    half = dim // 2
    frequencies = torch.exp(-math.log(10_000) * torch.arange(half, device=t.device) / half)
    angles = t.float()[:, None] * frequencies[None, :]
    return torch.stack([angles.sin(), angles.cos()], dim=1)


@wrong("5.6", "exp(−log(10000 · i / half)): the parentheses close after i/half, so ω_i = half/(10000 i) (inf at i = 0)",
       names=[r"parenthes", r"precedence", r"bracket", r"log\s*\(\s*10\s*,?000\s*\)\s*[·*×]",
              r"(log|exponent)[^.?]{0,40}(only|just) (of )?10\s*,?000", r"inside the log",
              r"ω_0\s*(=|is|should be|must be)\s*1"])
def embedding_log_parentheses(t, dim):
    half = dim // 2
    frequencies = torch.exp(-torch.log(10_000 * torch.arange(half, device=t.device) / half))
    angles = t.float()[:, None] * frequencies[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=-1)
