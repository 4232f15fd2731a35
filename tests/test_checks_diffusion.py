"""Every check of Chapter 05 passes on a correct answer and names each known-wrong answer.

The wrong answers are written the way a learner writes them, not built from the checker's own references,
so these tests would notice a checker whose diagnosis drifted away from real mistakes.
"""
import math

import pytest
import torch
import torch.nn.functional as F

from utils.checks import CheckFailure, LearnerError
from utils.checks import diffusion as checks


def column(values):
    return values.view(-1, 1, 1, 1)


# ----- Exercise 5.1 ------------------------------------------------------------------------------------------

def linear_ok(T, beta_start=1e-4, beta_end=0.02):
    scale = 1000 / T
    return torch.linspace(scale * beta_start, scale * beta_end, T, dtype=torch.float64)


def cosine_ok(T, s=0.008, max_beta=0.999, offset=True, clip=True, square=True, what="betas"):
    t = torch.arange(T + 1, dtype=torch.float64)
    shift = s if offset else 0.0
    f = torch.cos((t / T + shift) / (1 + shift) * math.pi / 2)
    f = f ** 2 if square else f
    alpha_bars = f / f[0]
    if what == "alpha_bars":
        return alpha_bars[1:]
    if what == "one_minus":
        betas = 1 - alpha_bars[1:]
    elif what == "inverted":
        betas = 1 - alpha_bars[:-1] / alpha_bars[1:]
    else:
        betas = 1 - alpha_bars[1:] / alpha_bars[:-1]
    return betas.clamp(max=max_beta) if clip else betas


def test_schedules_reference_passes(capsys):
    checks.check_schedules(linear_ok, cosine_ok)
    assert capsys.readouterr().out.startswith("✓ Exercise 5.1 passed")


@pytest.mark.parametrize("linear, cosine, hint", [
    (lambda T: torch.linspace(1e-4, 0.02, T, dtype=torch.float64), cosine_ok, "scale both ends by 1000/T"),
    (lambda T: torch.linspace(1e-4 * 1000 / T, 0.02 * 1000 / T, T + 1, dtype=torch.float64)[1:], cosine_ok,
     "off by one"),
    (lambda T: 1 - linear_ok(T), cosine_ok, "you returned α_t"),
    (lambda T: torch.cumprod(1 - linear_ok(T), 0), cosine_ok, "you returned ᾱ_t"),
    (lambda T: linear_ok(T).float(), cosine_ok, "dtype torch.float32 but expected torch.float64"),
    (linear_ok, lambda T: cosine_ok(T, offset=False), "offset s = 0.008 is missing"),
    (linear_ok, lambda T: cosine_ok(T, clip=False), "clipped at 0.999"),
    (linear_ok, lambda T: cosine_ok(T, square=False), "\\*square\\* of the cosine"),
    (linear_ok, lambda T: cosine_ok(T, what="inverted"), "ratio is upside down"),
    (linear_ok, lambda T: cosine_ok(T, what="one_minus"), "total\\* noise variance"),
    (linear_ok, lambda T: cosine_ok(T, what="alpha_bars"), "you returned ᾱ_t; return the betas, β_t"),
    (linear_ok, lambda T: cosine_ok(T)[:-1], "shape \\(199,\\) but expected \\(200,\\)"),
])
def test_schedules_name_the_mistake(linear, cosine, hint):
    with pytest.raises(CheckFailure, match=hint):
        checks.check_schedules(linear, cosine)


def test_untouched_stub_raises_not_implemented_unchanged():
    def stub(T):
        raise NotImplementedError("Exercise 5.1: write the body of `linear_schedule`")
    with pytest.raises(NotImplementedError, match="Exercise 5.1"):
        checks.check_schedules(stub, cosine_ok)


# ----- Exercise 5.2 ------------------------------------------------------------------------------------------

def q_sample_ok(x0, t, noise, schedule):
    alpha_bar_t = column(schedule.alpha_bars[t - 1])  # (B, 1, 1, 1)
    return alpha_bar_t.sqrt() * x0 + (1 - alpha_bar_t).sqrt() * noise


def q_sample_alphas(x0, t, noise, schedule):
    alpha_t = column(schedule.alphas[t - 1])
    return alpha_t.sqrt() * x0 + (1 - alpha_t).sqrt() * noise


def q_sample_index_t(x0, t, noise, schedule):
    alpha_bar_t = column(schedule.alpha_bars[t])
    return alpha_bar_t.sqrt() * x0 + (1 - alpha_bar_t).sqrt() * noise


def q_sample_no_sqrt(x0, t, noise, schedule):
    alpha_bar_t = column(schedule.alpha_bars[t - 1])
    return alpha_bar_t * x0 + (1 - alpha_bar_t) * noise


def q_sample_variance_noise(x0, t, noise, schedule):
    alpha_bar_t = column(schedule.alpha_bars[t - 1])
    return alpha_bar_t.sqrt() * x0 + (1 - alpha_bar_t) * noise


def q_sample_minus(x0, t, noise, schedule):
    alpha_bar_t = column(schedule.alpha_bars[t - 1])
    return alpha_bar_t.sqrt() * x0 - (1 - alpha_bar_t).sqrt() * noise


def q_sample_swapped(x0, t, noise, schedule):
    alpha_bar_t = column(schedule.alpha_bars[t - 1])
    return (1 - alpha_bar_t).sqrt() * x0 + alpha_bar_t.sqrt() * noise


def q_sample_no_view(x0, t, noise, schedule):
    alpha_bar_t = schedule.alpha_bars[t - 1]  # (B,): broadcasts along the last axis
    return alpha_bar_t.sqrt() * x0 + (1 - alpha_bar_t).sqrt() * noise


def test_q_sample_reference_passes(capsys):
    checks.check_q_sample(q_sample_ok)
    assert capsys.readouterr().out.startswith("✓ Exercise 5.2 passed")


@pytest.mark.parametrize("wrong, hint", [
    (q_sample_alphas, "you used α_t = 1 − β_t"),
    (q_sample_index_t, "off by one: you used ᾱ_{t\\+1}"),
    (q_sample_no_sqrt, "variance vs standard deviation"),
    (q_sample_variance_noise, "scale it by the standard deviation"),
    (q_sample_minus, "sign of ε is flipped"),
    (q_sample_swapped, "coefficients are swapped"),
    (q_sample_no_view, "broadcast along the \\*width\\* axis"),
    (lambda x0, t, noise, schedule: q_sample_ok(x0, t, noise, schedule).float(), "dtype torch.float32"),
])
def test_q_sample_names_the_mistake(wrong, hint):
    with pytest.raises(CheckFailure, match=hint):
        checks.check_q_sample(wrong)


def test_q_sample_broadcast_error_gets_the_reshape_hint():
    def no_view_then_crash(x0, t, noise, schedule):
        alpha_bar_t = schedule.alpha_bars[t - 1]
        return alpha_bar_t.sqrt() * x0[..., :3] + (1 - alpha_bar_t).sqrt() * noise[..., :3]
    with pytest.raises(LearnerError, match="reshape it to \\(B, 1, 1, 1\\)"):
        checks.check_q_sample(no_view_then_crash)


def test_q_sample_index_error_at_T_gets_the_off_by_one_hint():
    def index_t_only_at_the_end(x0, t, noise, schedule):  # right for t < T-1, crashes at t = T
        return q_sample_ok(x0, t, noise, schedule) if t.max() < schedule.T else q_sample_index_t(x0, t, noise, schedule)
    with pytest.raises(LearnerError, match="off by one"):
        checks.check_q_sample(index_t_only_at_the_end)


# ----- Exercise 5.3 ------------------------------------------------------------------------------------------

def posterior_ok(x0, x_t, t, schedule, *, bug=None):
    alpha_bars = F.pad(schedule.alpha_bars, (1, 0), value=1.0)  # ᾱ_0 = 1 in front
    alpha_bar_t = column(alpha_bars[t])
    alpha_bar_prev = column(schedule.alpha_bars[t - 2] if bug == "wrap" else alpha_bars[t - 1])
    beta_t, alpha_t = column(schedule.betas[t - 1]), column(schedule.alphas[t - 1])
    if bug == "index_t":
        alpha_bar_t, alpha_bar_prev = column(alpha_bars[t + 1]), column(alpha_bars[t])
        beta_t, alpha_t = column(schedule.betas[t]), column(schedule.alphas[t])
    x0_coefficient = (alpha_bar_t if bug == "bar_t_on_x0" else alpha_bar_prev).sqrt() * beta_t / (1 - alpha_bar_t)
    xt_coefficient = (alpha_bar_t if bug == "bar_on_xt" else alpha_t).sqrt() * (1 - alpha_bar_prev) / (1 - alpha_bar_t)
    if bug == "swap":
        x0_coefficient, xt_coefficient = xt_coefficient, x0_coefficient
    mean = x0_coefficient * x0 + xt_coefficient * x_t
    variance = (1 - alpha_bar_prev) / (1 - alpha_bar_t) * beta_t
    if bug == "std":
        variance = variance.sqrt()
    if bug == "beta":
        variance = beta_t
    if bug == "inverted":
        variance = (1 - alpha_bar_t) / (1 - alpha_bar_prev) * beta_t
    if bug == "flat_variance":
        variance = variance.flatten()
    return mean, variance


def test_posterior_reference_passes(capsys):
    checks.check_posterior_mean_variance(posterior_ok)
    assert capsys.readouterr().out.startswith("✓ Exercise 5.3 passed")


def test_posterior_variance_shaped_like_x_t_also_passes():
    def full_variance(x0, x_t, t, schedule):
        mean, variance = posterior_ok(x0, x_t, t, schedule)
        return mean, variance.expand_as(x_t)
    checks.check_posterior_mean_variance(full_variance)


@pytest.mark.parametrize("bug, hint", [
    ("swap", "two coefficients of the mean are swapped"),
    ("bar_on_xt", "ᾱ vs α: x_t's coefficient has √α_t"),
    ("bar_t_on_x0", "x_0's coefficient has √ᾱ_{t−1}"),
    ("index_t", "off by one"),
    ("wrap", "wrapped around to alpha_bars\\[-1\\]"),
    ("std", "variance vs standard deviation"),
    ("beta", "you returned β_t, the forward step's variance"),
    ("inverted", "ratio is upside down"),
    ("flat_variance", "variance: shape \\(8,\\) but expected \\(8, 1, 1, 1\\)"),
])
def test_posterior_names_the_mistake(bug, hint):
    with pytest.raises(CheckFailure, match=hint):
        checks.check_posterior_mean_variance(lambda *args: posterior_ok(*args, bug=bug))


def test_posterior_must_return_a_pair():
    with pytest.raises(CheckFailure, match="return a pair"):
        checks.check_posterior_mean_variance(lambda *args: posterior_ok(*args)[0])


# ----- Exercise 5.4 ------------------------------------------------------------------------------------------

def ddpm_step_ok(eps, x_t, t, schedule, noise, clip=True, *, bug=None):
    index = t if bug == "index_t" else t - 1
    alpha_bar_t = column((schedule.alphas if bug == "alphas" else schedule.alpha_bars)[index])
    noise_scale = 1 - alpha_bar_t if bug == "variance_in_x0" else (1 - alpha_bar_t).sqrt()
    x0_hat = (x_t + noise_scale * eps) / alpha_bar_t.sqrt() if bug == "plus" else \
        (x_t - noise_scale * eps) / alpha_bar_t.sqrt()
    if clip and bug not in ("no_clip", "clip_output") or bug == "clip_always":
        x0_hat = x0_hat.clamp(-1, 1)
    mean, posterior_variance = posterior_ok(x0_hat, x_t, index + 1, schedule)
    beta_t = column(schedule.betas[index])
    sigma = {"beta": beta_t, "posterior": posterior_variance.sqrt()}.get(bug, beta_t.sqrt())
    z = noise if bug == "noise_at_1" else noise * column((t > 1).to(x_t.dtype))
    x_prev = mean + sigma * z
    return x_prev.clamp(-1, 1) if bug == "clip_output" else x_prev


def test_ddpm_step_reference_passes(capsys):
    checks.check_ddpm_step(ddpm_step_ok)
    assert capsys.readouterr().out.startswith("✓ Exercise 5.4 passed")


@pytest.mark.parametrize("bug, hint", [
    ("no_clip", "x̂_0 was not clipped"),
    ("clip_output", "you clipped x_{t−1}, the noisy sample"),
    ("clip_always", "although clip=False"),
    ("plus", "sign of ε is flipped"),
    ("variance_in_x0", "standard deviation √\\(1 − ᾱ_t\\), not the variance"),
    ("alphas", "ᾱ vs α"),
    ("noise_at_1", "noise was added at the last step"),
    ("beta", "σ_t = √β_t, not β_t"),
    ("posterior", "σ_t² = β̃_t"),
    ("index_t", "off by one"),
])
def test_ddpm_step_names_the_mistake(bug, hint):
    with pytest.raises(CheckFailure, match=hint):
        checks.check_ddpm_step(lambda *args, **kwargs: ddpm_step_ok(*args, **kwargs, bug=bug))


def test_ddpm_step_points_back_to_a_wrong_posterior():
    def with_wrong_posterior(eps, x_t, t, schedule, noise, clip=True):
        alpha_bar_t = column(schedule.alpha_bars[t - 1])
        x0_hat = ((x_t - (1 - alpha_bar_t).sqrt() * eps) / alpha_bar_t.sqrt()).clamp(-1, 1)
        mean, _ = posterior_ok(x0_hat, x_t, t, schedule, bug="bar_t_on_x0")
        return mean + column(schedule.betas[t - 1]).sqrt() * noise * column((t > 1).to(x_t.dtype))
    with pytest.raises(CheckFailure, match="check of Exercise 5.3"):
        checks.check_ddpm_step(with_wrong_posterior)


# ----- Exercise 5.5 ------------------------------------------------------------------------------------------

def ddim_step_ok(eps, x_t, t, t_prev, schedule, clip=True, *, bug=None):
    table = F.pad(schedule.alphas if bug == "alphas" else schedule.alpha_bars, (1, 0), value=1.0)
    shift = 1 if bug == "index_t" else 0
    alpha_bar_t = column(table[t + shift])
    alpha_bar_prev = column(schedule.alpha_bars[t_prev - 1] if bug == "wrap" else table[t_prev + shift])
    if bug == "swap":
        alpha_bar_t, alpha_bar_prev = alpha_bar_prev, alpha_bar_t
    sign = 1 if bug == "plus" else -1
    x0_hat = (x_t + sign * (1 - alpha_bar_t).sqrt() * eps) / alpha_bar_t.sqrt()
    if clip and bug not in ("no_clip", "clip_output") or bug == "clip_always":
        x0_hat = x0_hat.clamp(-1, 1)
    direction = (1 - alpha_bar_prev) if bug == "variance" else (1 - alpha_bar_prev).sqrt()
    x_prev = alpha_bar_prev.sqrt() * x0_hat + direction * eps
    return x_prev.clamp(-1, 1) if bug == "clip_output" else x_prev


def test_ddim_step_reference_passes(capsys):
    checks.check_ddim_step(ddim_step_ok)
    assert capsys.readouterr().out.startswith("✓ Exercise 5.5 passed")


@pytest.mark.parametrize("bug, hint", [
    ("swap", "are swapped"),
    ("plus", "sign of ε is flipped"),
    ("alphas", "ᾱ vs α"),
    ("index_t", "off by one"),
    ("wrap", "wrapped around to alpha_bars\\[-1\\]"),
    ("no_clip", "x̂_0 was not clipped"),
    ("clip_output", "you clipped the new sample"),
    ("clip_always", "although clip=False"),
    ("variance", "not the variance 1 − ᾱ_{t_prev}"),
])
def test_ddim_step_names_the_mistake(bug, hint):
    with pytest.raises(CheckFailure, match=hint):
        checks.check_ddim_step(lambda *args, **kwargs: ddim_step_ok(*args, **kwargs, bug=bug))


def test_ddim_step_with_ddpm_noise_is_rejected():
    def stochastic(eps, x_t, t, t_prev, schedule, clip=True):
        return ddim_step_ok(eps, x_t, t, t_prev, schedule, clip) + 0.1 * torch.randn_like(x_t)
    with pytest.raises(CheckFailure, match="differs from the reference"):
        checks.check_ddim_step(stochastic)


# ----- Exercise 5.6 ------------------------------------------------------------------------------------------

def embedding_ok(t, dim, *, bug=None):
    half = dim // 2
    denominator = {"half-1": half - 1, "dim": dim, "one": 1}.get(bug, half)
    exponent = torch.arange(half) / denominator
    base = 1000.0 if bug == "base" else 10_000.0
    frequencies = base ** (exponent if bug == "increasing" else -exponent)  # (dim/2,)
    angles = t[:, None].float() * frequencies[None]  # (B, dim/2)
    if bug == "interleave":
        return torch.stack([angles.sin(), angles.cos()], -1).reshape(len(t), dim)
    parts = [angles.cos(), angles.sin()] if bug == "cos_first" else [angles.sin(), angles.cos()]
    return torch.cat(parts, dim=-1)


def test_embedding_reference_passes(capsys):
    checks.check_sinusoidal_embedding(embedding_ok)
    assert capsys.readouterr().out.startswith("✓ Exercise 5.6 passed")


def test_embedding_with_exp_log_also_passes():
    def via_exp(t, dim):
        half = dim // 2
        frequencies = torch.exp(-math.log(10_000) * torch.arange(half, dtype=torch.float32) / half)
        angles = t.float()[:, None] * frequencies
        return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)
    checks.check_sinusoidal_embedding(via_exp)


@pytest.mark.parametrize("bug, hint", [
    ("cos_first", "cosines first"),
    ("interleave", "you interleaved sin and cos"),
    ("half-1", "you divided by d/2 − 1"),
    ("dim", "you divided by d"),
    ("one", "not −i"),
    ("increasing", "frequencies grow"),
    ("base", "not 1000"),
])
def test_embedding_names_the_mistake(bug, hint):
    with pytest.raises(CheckFailure, match=hint):
        checks.check_sinusoidal_embedding(lambda t, dim: embedding_ok(t, dim, bug=bug))


def test_embedding_wrong_shape_and_dtype():
    with pytest.raises(CheckFailure, match="shape"):
        checks.check_sinusoidal_embedding(lambda t, dim: embedding_ok(t, dim)[:, : dim // 2])
    with pytest.raises(CheckFailure, match="dtype torch.float64"):
        checks.check_sinusoidal_embedding(lambda t, dim: embedding_ok(t, dim).double())


# ----- the references used by the chapter ----------------------------------------------------------------------

def test_gaussian_kl_matches_torch_distributions():
    m1, m2 = torch.randn(5, dtype=torch.float64), torch.randn(5, dtype=torch.float64)
    v1, v2 = torch.rand(5, dtype=torch.float64) + 0.1, torch.rand(5, dtype=torch.float64) + 0.1
    expected = torch.distributions.kl_divergence(torch.distributions.Normal(m1, v1.sqrt()),
                                                 torch.distributions.Normal(m2, v2.sqrt()))
    torch.testing.assert_close(checks.gaussian_kl(m1, v1, m2, v2), expected)
