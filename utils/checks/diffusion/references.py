"""The chapter's equations as the checks compute them (float64 where it matters): what a learner's output
is compared with."""
from __future__ import annotations

import math

import torch

from utils.checks.diffusion.schedule import column, with_zero


def reference_linear_schedule(T, beta_start=1e-4, beta_end=0.02):
    """Eq. (5.3): β_t linear from beta_start to beta_end, both × 1000/T (Nichol & Dhariwal's rescaling).  (T,)"""
    scale = 1000 / T
    return torch.linspace(scale * beta_start, scale * beta_end, T, dtype=torch.float64)


def reference_cosine_alpha_bars(T, s=0.008):
    """ᾱ_t = f(t) / f(0) with f(t) = cos²((t/T + s) / (1 + s) · π/2), for t = 0..T: a (T + 1,) float64 tensor."""
    steps = torch.arange(T + 1, dtype=torch.float64) / T
    f = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
    return f / f[0]


def reference_cosine_schedule(T, s=0.008, max_beta=0.999):
    """Eq. (5.4): β_t = min(1 − ᾱ_t / ᾱ_{t−1}, max_beta) from the cosine ᾱ_t.  (T,) float64"""
    alpha_bars = reference_cosine_alpha_bars(T, s)  # (T + 1,), ᾱ_0 = 1
    return (1 - alpha_bars[1:] / alpha_bars[:-1]).clamp(max=max_beta)


def reference_q_sample(x0, t, noise, schedule):
    """Eq. (5.2): x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε, one t per image."""
    alpha_bar_t = column(schedule.alpha_bars[t - 1], x0)  # (B, 1, 1, 1)
    return alpha_bar_t.sqrt() * x0 + (1 - alpha_bar_t).sqrt() * noise


def reference_posterior(x0, x_t, t, schedule):
    """Eqs. (5.6), (5.7): mean (B, C, H, W) and variance (B, 1, 1, 1) of q(x_{t−1} | x_t, x_0)."""
    alpha_bars = with_zero(schedule.alpha_bars)  # (T + 1,): index t gives ᾱ_t, ᾱ_0 = 1
    alpha_bar_t, alpha_bar_prev = column(alpha_bars[t], x_t), column(alpha_bars[t - 1], x_t)
    beta_t, alpha_t = column(schedule.betas[t - 1], x_t), column(schedule.alphas[t - 1], x_t)
    mean = (alpha_bar_prev.sqrt() * beta_t / (1 - alpha_bar_t) * x0
            + alpha_t.sqrt() * (1 - alpha_bar_prev) / (1 - alpha_bar_t) * x_t)
    return mean, (1 - alpha_bar_prev) / (1 - alpha_bar_t) * beta_t


def reference_predict_x0(eps, x_t, alpha_bar_t):
    """x̂_0 = (x_t − √(1 − ᾱ_t) ε̂) / √ᾱ_t, eq. (5.12)."""
    return (x_t - (1 - alpha_bar_t).sqrt() * eps) / alpha_bar_t.sqrt()


def reference_ddpm_step(eps, x_t, t, schedule, noise, clip=True):
    """Eq. (5.15): x_{t−1} = μ̃_t(x_t, x̂_0) + √β_t z, with x̂_0 clipped when ``clip``; z = 0 where t = 1."""
    x0_hat = reference_predict_x0(eps, x_t, column(schedule.alpha_bars[t - 1], x_t))
    if clip:
        x0_hat = x0_hat.clamp(-1, 1)
    mean, _ = reference_posterior(x0_hat, x_t, t, schedule)
    sigma = column(schedule.betas[t - 1].sqrt() * (t > 1).to(x_t.dtype), x_t)
    return mean + sigma * noise


def reference_ddim_step(eps, x_t, t, t_prev, schedule, clip=True):
    """Eq. (5.16) with σ = 0: x_{t'} = √ᾱ_{t'} x̂_0 + √(1 − ᾱ_{t'}) ε̂, for any 0 ≤ t' < t (ᾱ_0 = 1)."""
    alpha_bars = with_zero(schedule.alpha_bars)
    alpha_bar_t, alpha_bar_prev = column(alpha_bars[t], x_t), column(alpha_bars[t_prev], x_t)
    x0_hat = reference_predict_x0(eps, x_t, alpha_bar_t)
    if clip:
        x0_hat = x0_hat.clamp(-1, 1)
    return alpha_bar_prev.sqrt() * x0_hat + (1 - alpha_bar_prev).sqrt() * eps


def reference_sinusoidal_embedding(t, dim):
    """Eq. (5.17): [sin(t ω_0), …, sin(t ω_{d/2−1}), cos(t ω_0), …] with ω_i = 10000^(−i/(d/2)).  (B, dim) float32"""
    half = dim // 2
    frequencies = 10_000.0 ** (-torch.arange(half, dtype=torch.float64) / half)  # (dim/2,)
    angles = t.to(torch.float64)[:, None] * frequencies[None, :]  # (B, dim/2)
    return torch.cat([angles.sin(), angles.cos()], dim=-1).float()


def gaussian_kl(mean_1, variance_1, mean_2, variance_2):
    """KL(N(μ₁, σ₁²) ‖ N(μ₂, σ₂²)) per coordinate, eq. (5.9)."""
    return 0.5 * (torch.log(variance_2 / variance_1) + (variance_1 + (mean_1 - mean_2) ** 2) / variance_2 - 1)
