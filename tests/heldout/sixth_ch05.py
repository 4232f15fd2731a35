"""Sixth blind held-out set for Chapter 05 (diffusion): wrong answers written as a learner writes the exercise cell.

Written without reading the checks or seeing any of their messages. It aims at the mistakes learners make most
often, so some are kin to those of earlier sets, but each is written anew, in another form where one exists. The
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

@wrong("5.1", "linear: torch.arange(start, end, (end − start)/T): the end point is excluded, so β_T stops one step "
              "short of the scaled beta_end",
       names=[r"linspace", r"(end ?point|beta_end|β_T|last (β|beta|value))[^.?]{0,40}(exclud\w*|includ\w*|short|reach\w*|missing)",
              r"(exclud\w*|includ\w*|never reach\w*)[^.?]{0,30}(end ?point|beta_end|β_T|last)",
              r"arange[^.?]{0,40}(end|stop|exclus)", r"T\s*[−-]\s*1\b[^.?]{0,20}(steps|intervals|gaps)"],
       arguments=with_reference_cosine)
def linear_arange_excludes_end(T, beta_start=1e-4, beta_end=0.02):
    scale = 1000 / T
    start, end = scale * beta_start, scale * beta_end
    betas = torch.arange(start, end, (end - start) / T, dtype=torch.float64)
    return betas[:T]


@wrong("5.1", "cosine: β_t = 1 − ᾱ_t (the cumulative noise level) instead of 1 − ᾱ_t/ᾱ_{t−1}",
       names=[r"ᾱ_t\s*/\s*ᾱ_\{?t\s*[−-]\s*1", r"alpha_bars?\[1:\]\s*/\s*alpha_bars?\[:-1\]", r"\bratio\b",
              r"(divid\w*|÷)[^.?]{0,30}(by )?ᾱ_\{?t\s*[−-]\s*1", r"(cumulative|ᾱ)[^.?]{0,40}(instead of|not|rather than)[^.?]{0,20}(β|single|per[- ]step)",
              r"1\s*[−-]\s*ᾱ_t\b[^.?]{0,30}(instead|not|rather|is the cumulative)"],
       arguments=with_reference_linear, learner_name="cosine_schedule")
def cosine_one_minus_alpha_bar(T, s=0.008, max_beta=0.999):
    t = torch.arange(T + 1, dtype=torch.float64)
    f = torch.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2
    alpha_bars = f / f[0]
    return (1 - alpha_bars[1:]).clamp(max=max_beta)


@wrong("5.1", "cosine: never clipped at max_beta: the last β is 1 (ᾱ_T = 0), the max_beta argument unused",
       names=[r"max_beta[^.?;]{0,30}(ignored|unused|never|not (used|applied))", r"(clip|clamp)\w*[^.?;]{0,30}(max_beta|missing|never|forgot\w*)", r"(never|not|no|without) (clip|clamp)\w*", r"\bmin\(", r"(cap|bound)\w*[^.?]{0,20}(β|beta)",
              r"(β|beta)_?T?\s*(=|is|of)\s*1\b"],
       arguments=with_reference_linear, learner_name="cosine_schedule")
def cosine_never_clipped(T, s=0.008, max_beta=0.999):
    t = torch.linspace(0, 1, T + 1, dtype=torch.float64)
    alpha_bars = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2
    alpha_bars = alpha_bars / alpha_bars[0]
    return 1 - alpha_bars[1:] / alpha_bars[:-1]


@wrong("5.1", "cosine: t/T from torch.linspace(0, 1, T): T points instead of T + 1, so only T − 1 betas (and wrong "
              "spacing)",
       names=[r"T\s*\+\s*1", r"(one|1) (β|beta|value|point)[^.?]{0,20}(short|missing|too few)",
              r"(length|number of (values|betas|points))[^.?]{0,30}\bT\b", r"\(T,\)", r"T\s*[−-]\s*1 (values|betas|points)",
              r"ᾱ_\{?0\}?[^.?]{0,30}(through|to|…|\.\.\.)\s*ᾱ_T"],
       arguments=with_reference_linear, learner_name="cosine_schedule")
def cosine_linspace_T_points(T, s=0.008, max_beta=0.999):
    steps = torch.linspace(0, 1, T, dtype=torch.float64)
    f = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
    alpha_bars = f / f[0]
    return (1 - alpha_bars[1:] / alpha_bars[:-1]).clamp(max=max_beta)


# ----- Exercise 5.2: forward noising --------------------------------------------------------------------------

@wrong("5.2", "noise coefficient (1 − ᾱ_t) ** 2: squared instead of square-rooted",
       names=[r"(square root|sqrt|√)[^.?]{0,30}(not|instead of|rather than)[^.?]{0,10}squar", r"\*\*\s*0\.5",
              r"squar\w*[^.?]{0,20}(instead of|not|rather than)[^.?]{0,20}(square root|sqrt|√)",
              r"√\s*\(\s*1\s*[−-]\s*ᾱ_?t?\s*\)[^.?]{0,30}(not|instead|rather)", r"\(1\s*[−-]\s*ᾱ_?t?\)\s*(²|\^2|\*\*\s*2)",
              r"(noise|ε)[^.?]{0,30}(coefficient|factor)[^.?]{0,30}(square root|sqrt|√)"])
def q_sample_noise_coefficient_squared(x0, t, noise, schedule):
    a = schedule.alpha_bars[t - 1].view(-1, 1, 1, 1)
    return a.sqrt() * x0 + (1 - a) ** 2 * noise


@wrong("5.2", "noise coefficient 1 - alpha_bar_t ** 0.5: ** binds tighter than −, so 1 − √ᾱ_t, not √(1 − ᾱ_t)",
       names=[r"precedence", r"parenthes", r"bracket", r"√\s*\(\s*1\s*[−-]\s*ᾱ_?t?\s*\)", r"\(1\s*[−-]\s*alpha_bar\w*\)\s*\*\*\s*0\.5",
              r"1\s*[−-]\s*√\s*ᾱ_?t?\b[^.?]{0,30}(instead|not|rather)", r"binds? tighter"])
def q_sample_power_precedence(x0, t, noise, schedule):
    alpha_bar_t = schedule.alpha_bars[t - 1].view(-1, 1, 1, 1)
    return alpha_bar_t ** 0.5 * x0 + (1 - alpha_bar_t ** 0.5) * noise


@wrong("5.2", "ᾱ_t with .unsqueeze(-1), (B, 1): two axes short, the batch lines up with H (fails unless B = H)",
       names=[r"\(B, ?1\)", r"unsqueeze", r"(four|4)[- ]?(D|dimensional|axes)", r"(two|2) (more )?(singleton|trailing) ax",
              r"batch[^.?]{0,30}(line|align)\w*[^.?]{0,20}(H\b|height|image ax)", r"\(B, ?1, ?1, ?1\)[^.?]{0,20}(instead|not)"])
def q_sample_unsqueezed_once(x0, t, noise, schedule):
    alpha_bar_t = schedule.alpha_bars[t - 1].unsqueeze(-1)
    return alpha_bar_t.sqrt() * x0 + (1 - alpha_bar_t).sqrt() * noise


@wrong("5.2", "schedule.alpha_bars[t.item() - 1]: one t for the batch, raises for B > 1 instead of one ᾱ_t per image",
       names=[r"\.item\(\)", r"(each|every|per)[- ]image", r"(own|its) (t|timestep)", r"(one|a single) (t|timestep|number)[^.?]{0,30}(batch|all)",
              r"(batch|vector|tensor) of (timesteps|t\b)", r"index\w*[^.?]{0,30}(with )?(the )?(tensor|whole) t\b"])
def q_sample_item(x0, t, noise, schedule):
    alpha_bar_t = schedule.alpha_bars[t.item() - 1]
    return math.sqrt(alpha_bar_t) * x0 + math.sqrt(1 - alpha_bar_t) * noise


# ----- Exercise 5.3: the posterior q(x_{t−1} | x_t, x_0) --------------------------------------------------------

@wrong("5.3", "variance β_t (the forward step's) instead of the posterior β̃_t = (1 − ᾱ_{t−1})/(1 − ᾱ_t) · β_t",
       names=[r"β̃", r"beta_tilde|posterior variance",
              r"ratio[^.?]{0,40}(missing|forgot\w*|dropped|left out)", r"β_t\b[^.?]{0,30}(instead of|not|rather than|alone|only)",
              r"forward (step'?s? |process'?s? )?(variance|β)"])
def posterior_variance_is_beta(x0, x_t, t, schedule):
    alpha_bars = F.pad(schedule.alpha_bars, (1, 0), value=1.0)
    ab_t = alpha_bars[t].view(-1, 1, 1, 1)
    ab_prev = alpha_bars[t - 1].view(-1, 1, 1, 1)
    beta_t = schedule.betas[t - 1].view(-1, 1, 1, 1)
    alpha_t = schedule.alphas[t - 1].view(-1, 1, 1, 1)
    mean = ab_prev.sqrt() * beta_t / (1 - ab_t) * x0 + alpha_t.sqrt() * (1 - ab_prev) / (1 - ab_t) * x_t
    return mean, beta_t


@wrong("5.3", "ᾱ_{t−1} = schedule.alpha_bars[t − 2] without padding: at t = 1 index −1 wraps to ᾱ_T instead of ᾱ_0 = 1",
       names=[r"ᾱ_\{?0\}?\s*(=|is|should be|must be)\s*1", r"alpha_bar_?0", r"wrap\w*", r"index\s*[−-]1", r"negative index",
              r"\bt\s*=\s*1\b[^.?]{0,40}(ᾱ|alpha_bar|index|wrap|last)", r"\bpad\w*", r"ᾱ_T\b[^.?]{0,30}(instead|not|rather)"])
def posterior_prev_wraps(x0, x_t, t, schedule):
    ab = schedule.alpha_bars
    ab_t = ab[t - 1].view(-1, 1, 1, 1)
    ab_prev = ab[t - 2].view(-1, 1, 1, 1)
    beta_t = schedule.betas[t - 1].view(-1, 1, 1, 1)
    alpha_t = schedule.alphas[t - 1].view(-1, 1, 1, 1)
    mean = ab_prev.sqrt() * beta_t / (1 - ab_t) * x0 + alpha_t.sqrt() * (1 - ab_prev) / (1 - ab_t) * x_t
    variance = (1 - ab_prev) / (1 - ab_t) * beta_t
    return mean, variance


@wrong("5.3", "α_t = schedule.alphas[t]: off by one (α_{t+1}; IndexError at t = T), the other terms right",
       names=[r"off[- ]by[- ]one", r"alphas\[t\s*[−-]\s*1\]", r"α_\{?t\s*\+\s*1", r"(index|step) t\s*[−-]\s*1",
              r"α_t\b[^.?]{0,40}(index|shifted|one step)", r"(zero|0)[- ]based"])
def posterior_alpha_off_by_one(x0, x_t, t, schedule):
    alpha_bars = F.pad(schedule.alpha_bars, (1, 0), value=1.0)
    ab_t = alpha_bars[t].view(-1, 1, 1, 1)
    ab_prev = alpha_bars[t - 1].view(-1, 1, 1, 1)
    beta_t = schedule.betas[t - 1].view(-1, 1, 1, 1)
    alpha_t = schedule.alphas[t].view(-1, 1, 1, 1)
    mean = ab_prev.sqrt() * beta_t / (1 - ab_t) * x0 + alpha_t.sqrt() * (1 - ab_prev) / (1 - ab_t) * x_t
    variance = (1 - ab_prev) / (1 - ab_t) * beta_t
    return mean, variance


@wrong("5.3", "variance (1 - alpha_bar_prev) / 1 - alpha_bar_t * beta_t: the denominator's parentheses missing",
       names=[r"parenthes", r"precedence", r"bracket", r"denominator[^.?]{0,40}(1\s*[−-]\s*ᾱ_t|missing|whole)",
              r"(divid\w*|÷)[^.?]{0,20}(by )?\(1\s*[−-]\s*ᾱ_t\)"])
def posterior_variance_precedence(x0, x_t, t, schedule):
    alpha_bars = F.pad(schedule.alpha_bars, (1, 0), value=1.0)
    alpha_bar_t = alpha_bars[t].view(-1, 1, 1, 1)
    alpha_bar_prev = alpha_bars[t - 1].view(-1, 1, 1, 1)
    beta_t = schedule.betas[t - 1].view(-1, 1, 1, 1)
    alpha_t = schedule.alphas[t - 1].view(-1, 1, 1, 1)
    mean = (alpha_bar_prev.sqrt() * beta_t / (1 - alpha_bar_t) * x0
            + alpha_t.sqrt() * (1 - alpha_bar_prev) / (1 - alpha_bar_t) * x_t)
    variance = (1 - alpha_bar_prev) / 1 - alpha_bar_t * beta_t
    return mean, variance


# ----- Exercise 5.4: one DDPM sampling step -------------------------------------------------------------------

def _x0_hat(eps, x_t, t, schedule, clip):
    alpha_bar_t = schedule.alpha_bars[t - 1].view(-1, 1, 1, 1)
    x0_hat = (x_t - (1 - alpha_bar_t).sqrt() * eps) / alpha_bar_t.sqrt()
    return x0_hat.clamp(-1, 1) if clip else x0_hat


@wrong("5.4", "torch.where(t > 1, mean + σ z, mean) with the (B,) condition not viewed: it lines up with the width W",
       names=[r"(mask|condition|t\s*>\s*1|where)[^.?]{0,60}(\(B, ?1, ?1, ?1\)|view\(|reshape|broadcast)",
              r"(per|each|every)[- ]image[^.?]{0,40}(mask|condition|noise)",
              r"(width|W) ax[ie]s[^.?]{0,30}(instead|not|rather)"])
def ddpm_where_unviewed(eps, x_t, t, schedule, noise, clip=True):
    x0_hat = _x0_hat(eps, x_t, t, schedule, clip)
    mean, _ = posterior_mean_variance(x0_hat, x_t, t, schedule)
    sigma_t = schedule.betas[t - 1].sqrt().view(-1, 1, 1, 1)
    return torch.where(t > 1, mean + sigma_t * noise, mean)


@wrong("5.4", "noise mask (t >= 1): true for every valid step, so noise is added at the final step t = 1 too",
       names=[r"(last|final) step", r"t\s*=\s*1\b[^.?]{0,40}(noise|z\b)", r"(noise|z\b)[^.?]{0,40}t\s*=\s*1\b",
              r"t\s*>\s*1\b[^.?;]{0,20}(not|instead|rather)", r"(not|instead of|rather than) t\s*>=?\s*1", r"(no|without) noise[^.?]{0,30}(t\s*=\s*1|last|final)", r"(always|every step)[^.?]{0,30}noise"])
def ddpm_noise_at_last_step(eps, x_t, t, schedule, noise, clip=True):
    x0_hat = _x0_hat(eps, x_t, t, schedule, clip)
    mean, _ = posterior_mean_variance(x0_hat, x_t, t, schedule)
    sigma_t = schedule.betas[t - 1].sqrt().view(-1, 1, 1, 1)
    not_last = (t >= 1).to(x_t.dtype).view(-1, 1, 1, 1)
    return mean + not_last * sigma_t * noise


@wrong("5.4", "clip=True clamps the posterior mean to [−1, 1] instead of the estimate x̂_0 before the mean",
       names=[r"(clip|clamp)\w*[^.?]{0,30}(x̂_?0|x0_hat|the (predicted|estimated) x_?0)[^.?]{0,30}(not|instead|before|rather)",
              r"(clip|clamp)\w*[^.?]{0,20}(the )?(mean|μ̃|output|result)\b[^.?]{0,30}(instead|not|rather)",
              r"(mean|μ̃)[^.?]{0,20}(should not|must not|shouldn't) be (clip|clamp)", r"(before|prior to)[^.?]{0,30}posterior"])
def ddpm_clip_mean(eps, x_t, t, schedule, noise, clip=True):
    x0_hat = _x0_hat(eps, x_t, t, schedule, clip=False)
    mean, _ = posterior_mean_variance(x0_hat, x_t, t, schedule)
    if clip:
        mean = mean.clamp(-1, 1)
    sigma_t = schedule.betas[t - 1].sqrt().view(-1, 1, 1, 1)
    return mean + (t > 1).to(x_t.dtype).view(-1, 1, 1, 1) * sigma_t * noise


@wrong("5.4", "the clip argument ignored: x̂_0 is never clamped, even with clip=True",
       names=[r"clip\w*[^.?]{0,40}(ignored|no effect|not applied|never applied|missing|skipped|never)",
              r"(never|not|no) (clip|clamp)\w*", r"clip\s*=\s*True[^.?]{0,40}(not|never|no|without)",
              r"(even )?when clip is true", r"clamp\(-?1"])
def ddpm_clip_ignored(eps, x_t, t, schedule, noise, clip=True):
    x0_hat = _x0_hat(eps, x_t, t, schedule, clip=False)
    mean, _ = posterior_mean_variance(x0_hat, x_t, t, schedule)
    sigma_t = schedule.betas[t - 1].sqrt().view(-1, 1, 1, 1)
    return mean + (t > 1).to(x_t.dtype).view(-1, 1, 1, 1) * sigma_t * noise


@wrong("5.4", "x̂_0 = x_t/√ᾱ_t − √(1 − ᾱ_t) ε: the noise term not divided by √ᾱ_t",
       names=[r"precedence", r"parenthes", r"bracket", r"(whole|entire|both terms?)[^.?]{0,30}(divid|÷|√\s*ᾱ)",
              r"(noise|ε)[^.?]{0,10} term[^.?]{0,30}(not |also |too )?(divid\w*|÷)", r"(divid\w*|÷)[^.?]{0,40}(noise|ε) term",
              r"\(\s*x_t\s*[−-]\s*√\s*\(?1\s*[−-]\s*ᾱ_t\)?\s*·?\s*ε\s*\)\s*/\s*√\s*ᾱ_t"])
def ddpm_x0_hat_noise_term_undivided(eps, x_t, t, schedule, noise, clip=True):
    alpha_bar_t = schedule.alpha_bars[t - 1].view(-1, 1, 1, 1)
    x0_hat = x_t / alpha_bar_t.sqrt() - (1 - alpha_bar_t).sqrt() * eps
    if clip:
        x0_hat = x0_hat.clamp(-1, 1)
    mean, _ = posterior_mean_variance(x0_hat, x_t, t, schedule)
    sigma_t = schedule.betas[t - 1].sqrt().view(-1, 1, 1, 1)
    return mean + (t > 1).to(x_t.dtype).view(-1, 1, 1, 1) * sigma_t * noise


# ----- Exercise 5.5: one DDIM step ----------------------------------------------------------------------------

@wrong("5.5", "ᾱ_t read from the unpadded schedule.alpha_bars[t], ᾱ_{t'} from the padded table: ᾱ_t is ᾱ_{t+1}",
       names=[r"off[- ]by[- ]one", r"ᾱ_\{?t\s*\+\s*1", r"(same|one|padded) (table|tensor|indexing)",
              r"(padded|unpadded)[^.?]{0,40}(mix|both|consisten|same)", r"(index|step) t\s*[−-]\s*1"])
def ddim_mixed_tables(eps, x_t, t, t_prev, schedule, clip=True):
    padded = F.pad(schedule.alpha_bars, (1, 0), value=1.0)
    ab_t = schedule.alpha_bars[t].view(-1, 1, 1, 1)
    ab_prev = padded[t_prev].view(-1, 1, 1, 1)
    x0_hat = (x_t - (1 - ab_t).sqrt() * eps) / ab_t.sqrt()
    if clip:
        x0_hat = x0_hat.clamp(-1, 1)
    return ab_prev.sqrt() * x0_hat + (1 - ab_prev).sqrt() * eps


@wrong("5.5", "direction coefficient (1 - alpha_bar_prev.sqrt()): 1 − √ᾱ_{t'} instead of √(1 − ᾱ_{t'})",
       names=[r"precedence", r"parenthes", r"bracket", r"√\s*\(\s*1\s*[−-]\s*ᾱ_\{?t'\}?\s*\)[^.?;]{0,20}(not|instead|rather)", r"1\s*[−-]\s*√\s*ᾱ_\{?t'\}?[^.?]{0,30}(instead|not|rather)",
              r"\(1\s*[−-]\s*alpha_bar\w*\)\.sqrt\(\)"])
def ddim_direction_precedence(eps, x_t, t, t_prev, schedule, clip=True):
    alpha_bars = F.pad(schedule.alpha_bars, (1, 0), value=1.0)
    alpha_bar_t = alpha_bars[t].view(-1, 1, 1, 1)
    alpha_bar_prev = alpha_bars[t_prev].view(-1, 1, 1, 1)
    x0_hat = (x_t - (1 - alpha_bar_t).sqrt() * eps) / alpha_bar_t.sqrt()
    if clip:
        x0_hat = x0_hat.clamp(-1, 1)
    return alpha_bar_prev.sqrt() * x0_hat + (1 - alpha_bar_prev.sqrt()) * eps


@wrong("5.5", "x̂_0 divided by ᾱ_t instead of √ᾱ_t",
       names=[r"(divid\w*|÷)[^.?]{0,30}(by )?√\s*ᾱ_t", r"√\s*ᾱ_t\b[^.?]{0,30}(not|instead|rather)", r"ᾱ_t\b[^.?]{0,30}(instead of|in place of|not|rather than)[^.?]{0,10}√",
              r"(square root|sqrt|√)[^.?]{0,30}(missing|forgot\w*|dropped|of ᾱ_t)", r"(missing|forgot\w*|without)[^.?]{0,20}(square root|sqrt|√)"])
def ddim_x0_hat_without_sqrt(eps, x_t, t, t_prev, schedule, clip=True):
    alpha_bars = F.pad(schedule.alpha_bars, (1, 0), value=1.0)
    alpha_bar_t = alpha_bars[t].view(-1, 1, 1, 1)
    alpha_bar_prev = alpha_bars[t_prev].view(-1, 1, 1, 1)
    x0_hat = (x_t - (1 - alpha_bar_t).sqrt() * eps) / alpha_bar_t
    if clip:
        x0_hat = x0_hat.clamp(-1, 1)
    return alpha_bar_prev.sqrt() * x0_hat + (1 - alpha_bar_prev).sqrt() * eps


@wrong("5.5", "F.pad(alpha_bars, (0, 1), value=1.0): the 1 appended at the end, so index t gives ᾱ_{t+1} and "
              "t' = 0 gives ᾱ_1",
       names=[r"\(1, ?0\)", r"(front|beginning|start|left)", r"prepend\w*", r"append\w*", r"ᾱ_\{?0\}?\s*(=|is|should be|must be)\s*1",
              r"(index|position) 0\b", r"off[- ]by[- ]one", r"ᾱ_\{?t\s*\+\s*1"])
def ddim_pad_at_end(eps, x_t, t, t_prev, schedule, clip=True):
    alpha_bars = F.pad(schedule.alpha_bars, (0, 1), value=1.0)
    alpha_bar_t = alpha_bars[t].view(-1, 1, 1, 1)
    alpha_bar_prev = alpha_bars[t_prev].view(-1, 1, 1, 1)
    x0_hat = (x_t - (1 - alpha_bar_t).sqrt() * eps) / alpha_bar_t.sqrt()
    if clip:
        x0_hat = x0_hat.clamp(-1, 1)
    return alpha_bar_prev.sqrt() * x0_hat + (1 - alpha_bar_prev).sqrt() * eps


# ----- Exercise 5.6: sinusoidal timestep embedding ------------------------------------------------------------

@wrong("5.6", "frequencies over i = 0..dim − 1 (arange(dim)) instead of 0..dim/2 − 1: a (B, 2·dim) embedding",
       names=[r"dim\s*//?\s*2", r"\bhalf\b", r"\(B, ?2\s*[·*]?\s*dim\)", r"arange\((half|dim\s*//\s*2)",
              r"(twice|double) (as (many|wide)|the (width|size|dim))", r"(dim|d)/2 frequencies"])
def embedding_arange_dim(t, dim):
    i = torch.arange(dim, device=t.device)
    frequencies = torch.exp(-math.log(10_000) * i / (dim // 2))
    angles = t.float()[:, None] * frequencies[None, :]
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)


@wrong("5.6", "frequencies torch.logspace(0, -4, dim // 2): both ends included, so the exponent is −4i/(d/2 − 1), "
              "not −4i/(d/2)",
       names=[r"logspace", r"(end ?point|both ends)[^.?]{0,30}(includ|exclud)", r"half\s*[−-]\s*1", r"d\s*/\s*2\s*[−-]\s*1",
              r"dim\s*//?\s*2\s*[−-]\s*1", r"(lowest|smallest|last) frequency[^.?]{0,40}(1\s*/\s*10\s*,?\s*000|10\^\{?[−-]4|1e-4)"])
def embedding_logspace(t, dim):
    frequencies = torch.logspace(0, -4, dim // 2, device=t.device)
    angles = t[:, None].float() * frequencies
    return torch.cat((angles.sin(), angles.cos()), dim=1)


@wrong("5.6", "torch.log(10000) on a Python int: torch.log needs a tensor (TypeError); math.log was meant",
       names=[r"math\.log", r"torch\.log[^.?]{0,40}(tensor|number|int|Python)", r"(Python|plain) (int|number)[^.?]{0,30}torch",
              r"torch\.tensor\(10\s*_?000"])
def embedding_torch_log_of_int(t, dim):
    half = dim // 2
    frequencies = torch.exp(-torch.log(10000) * torch.arange(half) / half)
    angles = t.float()[:, None] * frequencies[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=-1)
