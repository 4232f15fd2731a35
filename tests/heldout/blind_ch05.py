"""Second blind held-out set for Chapter 05 (diffusion): wrong answers written as a learner writes the exercise cell.

Written without reading the checks, and without repeating a mistake of the first set (``wrong_ch05.py``). The
helpers a learner's cell uses from earlier cells (``posterior_mean_variance`` in ``ddpm_step``) and the half of a
two-function exercise that is not wrong are the chapter's reference solutions, so each answer holds exactly one
mistake.
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

@wrong("5.1", "linear: Ho et al.'s 1e-4 → 0.02 for every T, without the 1000/T scaling of eq. (5.3)",
       names=[r"(not|never|without|missing|forgot\w*)[^.]{0,30}(scal\w*|1000\s*/\s*T)", r"unscaled",
              r"factor (of )?1000\s*/\s*T[^.]{0,20}(missing|not)", r"(same|identical) for every T",
              r"(does not|doesn't) depend on T"],
       arguments=with_reference_cosine)
def linear_unscaled(T, beta_start=1e-4, beta_end=0.02):
    return torch.linspace(beta_start, beta_end, T, dtype=torch.float64)


@wrong("5.1", "linear: T + 1 points from t = 0 with the first dropped, so β_1 is above beta_start",
       names=[r"β_1\s*(=|is|should be|must be)[^.]{0,30}(beta_start|start)",
              r"(first|β_1)[^.]{0,40}(beta_start|start value)",
              r"T\s*\+\s*1 (points|values)", r"off[- ]by[- ]one", r"(start|begin)s? (at|from|with) beta_start",
              r"(first|initial) (β|beta|value)[^.]{0,30}(dropped|skipped|missing)"],
       arguments=with_reference_cosine)
def linear_drops_first_point(T, beta_start=1e-4, beta_end=0.02):
    scale = 1000 / T
    return torch.linspace(scale * beta_start, scale * beta_end, T + 1, dtype=torch.float64)[1:]


@wrong("5.1", "cosine: the ratio upside down, β_t = 1 − ᾱ_{t−1}/ᾱ_t (negative betas)",
       names=[r"ᾱ_\{?t\s*[−-]\s*1\}?\s*/\s*ᾱ_t\b", r"ratio[^.]{0,30}(invert\w*|upside|other way|flipped)",
              r"(invert\w*|upside[- ]down|flipped)[^.]{0,30}ratio", r"negative (β|beta)", r"ᾱ\[:-1\]\s*/\s*ᾱ\[1:\]"],
       arguments=with_reference_linear, learner_name="cosine_schedule")
def cosine_ratio_inverted(T, s=0.008, max_beta=0.999):
    steps = torch.arange(T + 1, dtype=torch.float64) / T
    f = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
    alpha_bars = f / f[0]
    return (1 - alpha_bars[:-1] / alpha_bars[1:]).clamp(max=max_beta)


@wrong("5.1", "cosine: .clamp(max_beta) — the first positional argument of clamp is min, so every β ≥ max_beta",
       names=[r"clamp\(max\s*=", r"\bmin\s*=", r"positional", r"lower bound", r"at least max_beta",
              r"(min|minimum) (instead of|not|rather than) (max|maximum)"],
       arguments=with_reference_linear, learner_name="cosine_schedule")
def cosine_clamp_positional(T, s=0.008, max_beta=0.999):
    steps = torch.arange(T + 1, dtype=torch.float64) / T
    f = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
    alpha_bars = f / f[0]
    return (1 - alpha_bars[1:] / alpha_bars[:-1]).clamp(max_beta)


@wrong("5.1", "cosine: f(t) = cos(...) without the square",
       names=[r"squar\w*[^.]{0,20}cos", r"cos\w*[^.]{0,20}squar",
              r"(missing|forgot\w*|without)[^.]{0,20}(the )?square\b",
              r"\*\*\s*2", r"cos\s*\^\s*2", r"(not|never|without) squared"],
       arguments=with_reference_linear, learner_name="cosine_schedule")
def cosine_not_squared(T, s=0.008, max_beta=0.999):
    steps = torch.arange(T + 1, dtype=torch.float64) / T
    f = torch.cos((steps + s) / (1 + s) * math.pi / 2)
    alpha_bars = f / f[0]
    return (1 - alpha_bars[1:] / alpha_bars[:-1]).clamp(max=max_beta)


# ----- Exercise 5.2: q_sample ---------------------------------------------------------------------------------

@wrong("5.2", "ᾱ_t read at index t: ᾱ_{t+1} for every image, IndexError at t = T",
       names=[r"off[- ]by[- ]one", r"ᾱ_\{?t\s*\+\s*1",
              r"index(ed)? (with |by )?t\b[^.]{0,30}(instead of|not|rather than)",
              r"step t (sits|is|lives) at index", r"one step (too far|later|ahead)"])
def q_sample_index_t(x0, t, noise, schedule):
    alpha_bar_t = schedule.alpha_bars[t].view(-1, 1, 1, 1)
    return alpha_bar_t.sqrt() * x0 + (1 - alpha_bar_t).sqrt() * noise


@wrong("5.2", "used the single-step α_t (schedule.alphas) instead of the cumulative ᾱ_t",
       names=[r"α_t\b[^.]{0,30}(instead of|in place of|not|rather than) ᾱ_t", r"ᾱ_t\b,? not α_t\b",
              r"(single|one)[- ]step α", r"cumulative product", r"cumprod", r"product of (the )?(alphas|α)"])
def q_sample_single_step_alpha(x0, t, noise, schedule):
    alpha_t = schedule.alphas[t - 1].view(-1, 1, 1, 1)
    return alpha_t.sqrt() * x0 + (1 - alpha_t).sqrt() * noise


@wrong("5.2", "the two coefficients swapped: √ᾱ_t ε + √(1 − ᾱ_t) x_0",
       names=[r"(x_?0|signal|image) and (the )?(noise|ε)[^.]{0,30}(swapped|exchanged|mixed up)",
              r"(swapped|exchanged|mixed up)[^.]{0,30}(x_?0|noise|ε|coefficients)",
              r"coefficients?[^.]{0,40}(swapped|exchanged|other way)", r"√ᾱ_t\s*(·|\*)?\s*ε"])
def q_sample_coefficients_swapped(x0, t, noise, schedule):
    alpha_bar_t = schedule.alpha_bars[t - 1].view(-1, 1, 1, 1)
    return alpha_bar_t.sqrt() * noise + (1 - alpha_bar_t).sqrt() * x0


@wrong("5.2", "the variances as coefficients: ᾱ_t x_0 + (1 − ᾱ_t) ε, no square roots",
       names=[r"(missing|forgot\w*|without|no) (the )?(square roots?|√|sqrt)",
              r"√ᾱ_t[^.]{0,20}(not|instead of|rather than) ᾱ_t", r"standard deviation",
              r"variances? (as|instead of) (the )?(coefficients|standard)", r"square roots? (are )?missing"])
def q_sample_no_square_roots(x0, t, noise, schedule):
    alpha_bar_t = schedule.alpha_bars[t - 1].view(-1, 1, 1, 1)
    return alpha_bar_t * x0 + (1 - alpha_bar_t) * noise


@wrong("5.2", "drew fresh noise with torch.randn_like(x0) instead of using the noise argument",
       names=[r"(given|provided|passed)[^.]{0,20}noise", r"noise (argument|you (were|are) given|parameter)",
              r"randn", r"(draw|sampl|generat)\w* (your own|new|fresh) noise", r"ignor\w*[^.]{0,20}noise",
              r"(own|fresh|new) (random )?noise"])
def q_sample_fresh_noise(x0, t, noise, schedule):
    alpha_bar_t = schedule.alpha_bars[t - 1].view(-1, 1, 1, 1)
    noise = torch.randn_like(x0)
    return alpha_bar_t.sqrt() * x0 + (1 - alpha_bar_t).sqrt() * noise


# ----- Exercise 5.3: the posterior ----------------------------------------------------------------------------

def _padded(schedule, t):
    """What a learner's cell computes first: ᾱ_t, ᾱ_{t−1}, β_t, α_t as (B, 1, 1, 1), with ᾱ_0 = 1."""
    alpha_bars = F.pad(schedule.alpha_bars, (1, 0), value=1.0)
    return (alpha_bars[t].view(-1, 1, 1, 1), alpha_bars[t - 1].view(-1, 1, 1, 1),
            schedule.betas[t - 1].view(-1, 1, 1, 1), schedule.alphas[t - 1].view(-1, 1, 1, 1))


@wrong("5.3", "x_0's coefficient with √ᾱ_t instead of √ᾱ_{t−1}",
       names=[r"√ᾱ_t\b[^.]{0,30}(instead of|in place of|not|rather than)[^.]{0,10}√ᾱ_\{?t\s*[−-]\s*1",
              r"√ᾱ_\{?t\s*[−-]\s*1\}?,? not √ᾱ_t\b",
              r"(coefficient of x_?0|x_?0's coefficient)[^.]{0,40}(ᾱ_t\b|ᾱ_\{?t\s*[−-]\s*1)"])
def posterior_x0_alpha_bar_t(x0, x_t, t, schedule):
    alpha_bar_t, alpha_bar_prev, beta_t, alpha_t = _padded(schedule, t)
    mean = (alpha_bar_t.sqrt() * beta_t / (1 - alpha_bar_t) * x0
            + alpha_t.sqrt() * (1 - alpha_bar_prev) / (1 - alpha_bar_t) * x_t)
    variance = (1 - alpha_bar_prev) / (1 - alpha_bar_t) * beta_t
    return mean, variance


@wrong("5.3", "x_t's coefficient with √ᾱ_t (alpha_t read from the padded alpha_bars) instead of √α_t",
       names=[r"ᾱ_t\b[^.]{0,30}(instead of|in place of|not|rather than)[^.]{0,10}α_t\b", r"\bα_t,? not ᾱ_t\b",
              r"(single|one)[- ]step α", r"alphas\[t\s*[−-]\s*1\]",
              r"(coefficient of x_t|x_t's coefficient)[^.]{0,40}(α_t|ᾱ_t)"])
def posterior_xt_alpha_bar(x0, x_t, t, schedule):
    alpha_bars = F.pad(schedule.alpha_bars, (1, 0), value=1.0)
    alpha_bar_t = alpha_bars[t].view(-1, 1, 1, 1)
    alpha_bar_prev = alpha_bars[t - 1].view(-1, 1, 1, 1)
    beta_t = schedule.betas[t - 1].view(-1, 1, 1, 1)
    alpha_t = alpha_bars[t].view(-1, 1, 1, 1)
    mean = (alpha_bar_prev.sqrt() * beta_t / (1 - alpha_bar_t) * x0
            + alpha_t.sqrt() * (1 - alpha_bar_prev) / (1 - alpha_bar_t) * x_t)
    variance = (1 - alpha_bar_prev) / (1 - alpha_bar_t) * beta_t
    return mean, variance


@wrong("5.3", "variance ratio upside down: (1 − ᾱ_t)/(1 − ᾱ_{t−1}) · β_t (infinite at t = 1)",
       names=[r"(invert\w*|upside|flip\w*)[^.]{0,30}(ratio|fraction)",
              r"(ratio|fraction)[^.]{0,30}(invert\w*|upside|other way|flipped)",
              r"\(1\s*[−-]\s*ᾱ_t\)\s*/\s*\(1\s*[−-]\s*ᾱ_\{?t\s*[−-]\s*1", r"β̃_1\s*=\s*0",
              r"(numerator|denominator)[^.]{0,30}(swapped|exchanged)"])
def posterior_variance_ratio_inverted(x0, x_t, t, schedule):
    alpha_bar_t, alpha_bar_prev, beta_t, alpha_t = _padded(schedule, t)
    mean = (alpha_bar_prev.sqrt() * beta_t / (1 - alpha_bar_t) * x0
            + alpha_t.sqrt() * (1 - alpha_bar_prev) / (1 - alpha_bar_t) * x_t)
    variance = (1 - alpha_bar_t) / (1 - alpha_bar_prev) * beta_t
    return mean, variance


@wrong("5.3", "variance computed from the (B,) tensors before the views: returned with shape (B,)",
       names=[r"variance[^.?]{0,40}(shape|\(B,\)|four|4-?D)", r"(shape|\(B,\))[^.?]{0,40}variance",
              r"β̃_?t?[^.?]{0,40}(shape|\(B,\))"])
def posterior_variance_flat(x0, x_t, t, schedule):
    alpha_bars = F.pad(schedule.alpha_bars, (1, 0), value=1.0)
    variance = (1 - alpha_bars[t - 1]) / (1 - alpha_bars[t]) * schedule.betas[t - 1]  # β̃_t
    alpha_bar_t = alpha_bars[t].view(-1, 1, 1, 1)
    alpha_bar_prev = alpha_bars[t - 1].view(-1, 1, 1, 1)
    beta_t = schedule.betas[t - 1].view(-1, 1, 1, 1)
    alpha_t = schedule.alphas[t - 1].view(-1, 1, 1, 1)
    mean = (alpha_bar_prev.sqrt() * beta_t / (1 - alpha_bar_t) * x0
            + alpha_t.sqrt() * (1 - alpha_bar_prev) / (1 - alpha_bar_t) * x_t)
    return mean, variance


@wrong("5.3", "returned (variance, mean) instead of (mean, variance)",
       names=[r"\(mean, ?variance\)", r"(mean|variance)[^.?]{0,30}(swapped|exchanged)",
              r"(swapped|exchanged)[^.?]{0,30}(mean|variance)", r"variance (first|before)",
              r"mean (first|before)"])
def posterior_returns_variance_first(x0, x_t, t, schedule):
    alpha_bar_t, alpha_bar_prev, beta_t, alpha_t = _padded(schedule, t)
    mean = (alpha_bar_prev.sqrt() * beta_t / (1 - alpha_bar_t) * x0
            + alpha_t.sqrt() * (1 - alpha_bar_prev) / (1 - alpha_bar_t) * x_t)
    variance = (1 - alpha_bar_prev) / (1 - alpha_bar_t) * beta_t
    return variance, mean


# ----- Exercise 5.4: a DDPM step ------------------------------------------------------------------------------

@wrong("5.4", "σ_t = β_t: the variance used as the standard deviation of the added noise",
       names=[r"square root of β", r"σ_t\s*=\s*√", r"β_t[^.]{0,30}(instead of|in place of|not|rather than) √\s*β_t",
              r"(standard deviation|std)[^.]{0,30}(not|instead of)[^.]{0,10}(variance|β_t)",
              r"variance[^.]{0,30}(instead of|not|in place of|as)[^.]{0,10}(the )?(standard deviation|std|σ)"])
def ddpm_sigma_is_beta(eps, x_t, t, schedule, noise, clip=True):
    alpha_bar_t = schedule.alpha_bars[t - 1].view(-1, 1, 1, 1)
    x0_hat = (x_t - (1 - alpha_bar_t).sqrt() * eps) / alpha_bar_t.sqrt()
    if clip:
        x0_hat = x0_hat.clamp(-1, 1)
    mean, _ = posterior_mean_variance(x0_hat, x_t, t, schedule)
    sigma_t = schedule.betas[t - 1].view(-1, 1, 1, 1)
    return mean + (t > 1).to(x_t.dtype).view(-1, 1, 1, 1) * sigma_t * noise


@wrong("5.4", "σ_t = √β̃_t, the posterior variance returned by posterior_mean_variance, instead of √β_t",
       names=[r"β̃_?t?[^.]{0,30}(instead of|not|rather than|in place of)",
              r"(instead of|not|rather than|in place of)[^.]{0,10}β̃",
              r"posterior (variance|σ)", r"σ_t\s*=\s*√\s*β_t\b", r"√\s*β_t\b,? not",
              r"(σ_t|sigma)[^.]{0,30}β_t\b[^.]{0,20}(not|instead)"])
def ddpm_sigma_posterior_variance(eps, x_t, t, schedule, noise, clip=True):
    alpha_bar_t = schedule.alpha_bars[t - 1].view(-1, 1, 1, 1)
    x0_hat = (x_t - (1 - alpha_bar_t).sqrt() * eps) / alpha_bar_t.sqrt()
    if clip:
        x0_hat = x0_hat.clamp(-1, 1)
    mean, variance = posterior_mean_variance(x0_hat, x_t, t, schedule)
    return mean + (t > 1).to(x_t.dtype).view(-1, 1, 1, 1) * variance.sqrt() * noise


@wrong("5.4", "x̂_0 = x_t − √(1 − ᾱ_t) ε / √ᾱ_t: the division applies to the noise term only (parentheses)",
       names=[r"precedence", r"parenthes", r"(whole|entire) (numerator|difference)",
              r"divid\w*[^.]{0,30}(whole|both|all of|x_t\b)", r"(only|just) the (noise|ε) term"])
def ddpm_x0_precedence(eps, x_t, t, schedule, noise, clip=True):
    alpha_bar_t = schedule.alpha_bars[t - 1].view(-1, 1, 1, 1)
    x0_hat = x_t - (1 - alpha_bar_t).sqrt() * eps / alpha_bar_t.sqrt()
    if clip:
        x0_hat = x0_hat.clamp(-1, 1)
    mean, _ = posterior_mean_variance(x0_hat, x_t, t, schedule)
    sigma_t = schedule.betas[t - 1].sqrt().view(-1, 1, 1, 1)
    return mean + (t > 1).to(x_t.dtype).view(-1, 1, 1, 1) * sigma_t * noise


@wrong("5.4", "x0_hat.clamp(-1, 1) without assigning the result: clamp is not in place, nothing is clipped",
       names=[r"clamp\w*[^.]{0,40}(not in[- ]place|returns a new|assign)", r"clamp_",
              r"clip\w*[^.]{0,40}(no effect|not used|unused|discarded|never applied|ignored|not applied)",
              r"(never|not) clipped", r"unclipped", r"(result|return value)[^.]{0,30}(clamp|clip)"])
def ddpm_clamp_not_assigned(eps, x_t, t, schedule, noise, clip=True):
    alpha_bar_t = schedule.alpha_bars[t - 1].view(-1, 1, 1, 1)
    x0_hat = (x_t - (1 - alpha_bar_t).sqrt() * eps) / alpha_bar_t.sqrt()
    if clip:
        x0_hat.clamp(-1, 1)
    mean, _ = posterior_mean_variance(x0_hat, x_t, t, schedule)
    sigma_t = schedule.betas[t - 1].sqrt().view(-1, 1, 1, 1)
    return mean + (t > 1).to(x_t.dtype).view(-1, 1, 1, 1) * sigma_t * noise


@wrong("5.4", "noise mask (t > 0): always true, so noise is added at the final step t = 1 too",
       names=[r"(last|final) step", r"t\s*=\s*1[^.]{0,40}noise", r"noise[^.]{0,40}t\s*=\s*1",
              r"(no|without) noise (at|for|when|on)", r"t\s*>\s*0"])
def ddpm_noise_at_every_step(eps, x_t, t, schedule, noise, clip=True):
    alpha_bar_t = schedule.alpha_bars[t - 1].view(-1, 1, 1, 1)
    x0_hat = (x_t - (1 - alpha_bar_t).sqrt() * eps) / alpha_bar_t.sqrt()
    if clip:
        x0_hat = x0_hat.clamp(-1, 1)
    mean, _ = posterior_mean_variance(x0_hat, x_t, t, schedule)
    sigma_t = schedule.betas[t - 1].sqrt().view(-1, 1, 1, 1)
    return mean + (t > 0).to(x_t.dtype).view(-1, 1, 1, 1) * sigma_t * noise


@wrong("5.4", "added σ_t · eps (the network's prediction) instead of σ_t · noise (the z to use)",
       names=[r"\bz\b[^.]{0,30}(not|instead of|rather than)[^.]{0,10}(eps|ε)",
              r"(eps|ε_θ?)[^.]{0,30}(instead of|in place of|as) (the )?(noise|z)\b",
              r"noise (argument|you were given|given|parameter)",
              r"(prediction|predicted noise)[^.]{0,30}(added|as the noise)"])
def ddpm_adds_eps(eps, x_t, t, schedule, noise, clip=True):
    alpha_bar_t = schedule.alpha_bars[t - 1].view(-1, 1, 1, 1)
    x0_hat = (x_t - (1 - alpha_bar_t).sqrt() * eps) / alpha_bar_t.sqrt()
    if clip:
        x0_hat = x0_hat.clamp(-1, 1)
    mean, _ = posterior_mean_variance(x0_hat, x_t, t, schedule)
    sigma_t = schedule.betas[t - 1].sqrt().view(-1, 1, 1, 1)
    return mean + (t > 1).to(x_t.dtype).view(-1, 1, 1, 1) * sigma_t * eps


# ----- Exercise 5.5: a DDIM step ------------------------------------------------------------------------------

@wrong("5.5", "x̂_0 formed with ᾱ_{t'} (where we jump to) instead of ᾱ_t (where we are)",
       names=[r"x̂_?0[^.]{0,60}(where (we|you) are|current step)",
              r"ᾱ_\{?t'\}?[^.]{0,30}(instead of|in place of)[^.]{0,10}ᾱ_t\b",
              r"(current|this) step's ᾱ", r"x̂_?0[^.]{0,40}(with|uses?|from) ᾱ_\{?t'", r"ᾱ_t\b,? not ᾱ_\{?t'"])
def ddim_x0_with_target_alpha(eps, x_t, t, t_prev, schedule, clip=True):
    alpha_bars = F.pad(schedule.alpha_bars, (1, 0), value=1.0)
    alpha_bar_prev = alpha_bars[t_prev].view(-1, 1, 1, 1)
    x0_hat = (x_t - (1 - alpha_bar_prev).sqrt() * eps) / alpha_bar_prev.sqrt()
    if clip:
        x0_hat = x0_hat.clamp(-1, 1)
    return alpha_bar_prev.sqrt() * x0_hat + (1 - alpha_bar_prev).sqrt() * eps


@wrong("5.5", "unpadded alpha_bars: ᾱ_t at t − 1 but ᾱ_{t'} at index t_prev, i.e. ᾱ_{t'+1} (and ᾱ_1 for t' = 0)",
       names=[r"off[- ]by[- ]one", r"ᾱ_\{?t'\s*\+\s*1", r"t_prev\s*[−-]\s*1",
              r"index(ed)? (with |by )?t_prev\b[^.]{0,30}(instead|not)", r"ᾱ_\{?0\}?\s*=\s*1"])
def ddim_mixed_indexing(eps, x_t, t, t_prev, schedule, clip=True):
    alpha_bar_t = schedule.alpha_bars[t - 1].view(-1, 1, 1, 1)
    alpha_bar_prev = schedule.alpha_bars[t_prev].view(-1, 1, 1, 1)
    x0_hat = (x_t - (1 - alpha_bar_t).sqrt() * eps) / alpha_bar_t.sqrt()
    if clip:
        x0_hat = x0_hat.clamp(-1, 1)
    return alpha_bar_prev.sqrt() * x0_hat + (1 - alpha_bar_prev).sqrt() * eps


@wrong("5.5", "the direction term subtracted: √ᾱ_{t'} x̂_0 − √(1 − ᾱ_{t'}) ε_θ",
       names=[r"\bsign\b", r"\bminus\b", r"(subtract\w*|[−-])[^.]{0,20}direction",
              r"direction[^.]{0,30}(subtract\w*|added|add|plus)"])
def ddim_direction_subtracted(eps, x_t, t, t_prev, schedule, clip=True):
    alpha_bars = F.pad(schedule.alpha_bars, (1, 0), value=1.0)
    alpha_bar_t = alpha_bars[t].view(-1, 1, 1, 1)
    alpha_bar_prev = alpha_bars[t_prev].view(-1, 1, 1, 1)
    x0_hat = (x_t - (1 - alpha_bar_t).sqrt() * eps) / alpha_bar_t.sqrt()
    if clip:
        x0_hat = x0_hat.clamp(-1, 1)
    return alpha_bar_prev.sqrt() * x0_hat - (1 - alpha_bar_prev).sqrt() * eps


@wrong("5.5", "clipped the returned x_{t'} to [−1, 1] instead of x̂_0",
       names=[r"clip\w* (the )?(output|x_\{?t'\}?|result|returned|sample)",
              r"(output|x_\{?t'\}?|result)[^.,)]{0,30}(clipped|clamped)",
              r"instead of x̂_0", r"clip x̂_0", r"x̂_0[^.]{0,30}(not|never|unclipped)"])
def ddim_clips_output(eps, x_t, t, t_prev, schedule, clip=True):
    alpha_bars = F.pad(schedule.alpha_bars, (1, 0), value=1.0)
    alpha_bar_t = alpha_bars[t].view(-1, 1, 1, 1)
    alpha_bar_prev = alpha_bars[t_prev].view(-1, 1, 1, 1)
    x0_hat = (x_t - (1 - alpha_bar_t).sqrt() * eps) / alpha_bar_t.sqrt()
    x_prev = alpha_bar_prev.sqrt() * x0_hat + (1 - alpha_bar_prev).sqrt() * eps
    return x_prev.clamp(-1, 1) if clip else x_prev


@wrong("5.5", "always clips x̂_0, ignoring clip=False",
       names=[r"clip\s*=\s*False[^.]{0,40}(ignored|still|clipped)", r"(even )?when clip is false",
              r"clip flag", r"(ignor\w*|regardless of)[^.]{0,20}clip\b", r"clip (argument|parameter)"])
def ddim_always_clips(eps, x_t, t, t_prev, schedule, clip=True):
    alpha_bars = F.pad(schedule.alpha_bars, (1, 0), value=1.0)
    alpha_bar_t = alpha_bars[t].view(-1, 1, 1, 1)
    alpha_bar_prev = alpha_bars[t_prev].view(-1, 1, 1, 1)
    x0_hat = ((x_t - (1 - alpha_bar_t).sqrt() * eps) / alpha_bar_t.sqrt()).clamp(-1, 1)
    return alpha_bar_prev.sqrt() * x0_hat + (1 - alpha_bar_prev).sqrt() * eps


# ----- Exercise 5.6: the sinusoidal time embedding ------------------------------------------------------------

@wrong("5.6", "interleaved sin/cos pairs (stack then flatten) instead of all the sines, then all the cosines",
       names=[r"interleav", r"(all )?(the )?sines,? (first|then)", r"sin\w*[^.]{0,30}then[^.]{0,20}cos",
              r"(concat|cat)\w*[^.]{0,30}(instead|not|rather than)[^.]{0,10}(stack|interleav)", r"alternat"])
def embedding_interleaved(t, dim):
    half = dim // 2
    frequencies = torch.exp(-math.log(10_000) * torch.arange(half) / half)
    angles = t.float()[:, None] * frequencies[None, :]
    return torch.stack([angles.sin(), angles.cos()], dim=-1).flatten(1)


@wrong("5.6", "cosines first, then sines",
       names=[r"sines? (first|before)", r"cos\w* (first|before)", r"(sin|cos)\w*[^.]{0,30}(order|swapped|reversed)",
              r"(order|swapped|reversed)[^.]{0,30}(sin|cos)"])
def embedding_cos_first(t, dim):
    half = dim // 2
    frequencies = torch.exp(-math.log(10_000) * torch.arange(half) / half)
    angles = t.float()[:, None] * frequencies[None, :]
    return torch.cat([angles.cos(), angles.sin()], dim=-1)


@wrong("5.6", "positive exponent: ω_i = 10000^(+i/(d/2)), frequencies rising from 1 to ~10000",
       names=[r"\bsign\b", r"negative exponent", r"frequenc\w*[^.]{0,30}(fall|decreas|grow|increas|ris)",
              r"1\s*/\s*10\s*,?\s*000", r"(exponent|power)[^.]{0,30}(negative|positive|minus)"])
def embedding_positive_exponent(t, dim):
    half = dim // 2
    frequencies = torch.exp(math.log(10_000) * torch.arange(half) / half)
    angles = t.float()[:, None] * frequencies[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


@wrong("5.6", "exponent i/dim instead of i/(dim/2): the lowest frequency is 1/100, not ~1/10000",
       names=[r"i\s*/\s*(d|dim)\b(?!\s*/)", r"(divid\w* by|over) (d|dim)\b[^.]{0,20}(instead|not|rather)",
              r"(d|dim)\s*/\s*2[^.]{0,20}(instead of|not|rather than) (by )?(d|dim)\b", r"half (the )?(dim|d\b|width)"])
def embedding_exponent_over_dim(t, dim):
    half = dim // 2
    frequencies = torch.exp(-math.log(10_000) * torch.arange(half) / dim)
    angles = t.float()[:, None] * frequencies[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


@wrong("5.6", "built the table in float64 'for precision' and returned it in float64, not float32",
       names=[r"float32", r"\.float\(\)", r"double", r"single[- ]precision"])
def embedding_float64(t, dim):
    half = dim // 2
    frequencies = 10_000 ** (-torch.arange(half, dtype=torch.float64) / half)
    angles = t[:, None] * frequencies[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


@wrong("5.6", "base 1000 instead of 10000 in the frequencies",
       names=[r"base\b", r"\b1000 (instead of|in place of|not|rather than) 10\s*,?\s*000",
              r"10\s*,?\s*000,? not 1000\b", r"log\(1000\)"])
def embedding_base_1000(t, dim):
    half = dim // 2
    frequencies = torch.exp(-math.log(1000) * torch.arange(half) / half)
    angles = t.float()[:, None] * frequencies[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=-1)
