"""Checks for Chapter 05, Diffusion from Scratch.

Conventions the checks assume (the chapter states them too):
- timesteps t are integers in 1..T as in the papers' math; a schedule tensor holds the value for step t at index
  t − 1 (``betas[t - 1]`` is β_t), and ᾱ_0 = 1 (no noise at all);
- ``t`` is a (B,) int64 tensor: one timestep per example, so per-example coefficients have shape (B,) and must be
  reshaped to (B, 1, 1, 1) to broadcast over images (B, C, H, W);
- images are scaled to [−1, 1]; x̂_0 is clipped to that range when ``clip=True``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from utils.checks.core import CheckFailure, LearnerError, Mistake, call, diagnose, passed, seeded_randn


@dataclass
class Schedule:
    """β_t, α_t = 1 − β_t and ᾱ_t = ∏_{s≤t} α_s, each a (T,) tensor holding step t at index t − 1."""

    betas: torch.Tensor
    alphas: torch.Tensor
    alpha_bars: torch.Tensor

    @classmethod
    def from_betas(cls, betas: torch.Tensor) -> "Schedule":
        alphas = 1 - betas
        return cls(betas, alphas, torch.cumprod(alphas, dim=0))

    @property
    def T(self) -> int:
        return len(self.betas)

    def to(self, dtype) -> "Schedule":
        return Schedule(self.betas.to(dtype), self.alphas.to(dtype), self.alpha_bars.to(dtype))


def _call(fn, *args, exercise: str, what: str, **kwargs):
    """``core.call`` with two diffusion-specific diagnoses of the learner's exception."""
    try:
        return call(fn, *args, exercise=exercise, what=what, **kwargs)
    except LearnerError as error:
        cause = error.__cause__
        text = str(cause)
        hint = ""
        if isinstance(cause, RuntimeError) and "must match the size of tensor" in text:
            hint = (" A per-example coefficient such as alpha_bars[t - 1] has shape (B,): reshape it to "
                    "(B, 1, 1, 1) with .view(-1, 1, 1, 1) so it broadcasts over the image axes (B, C, H, W).")
        elif isinstance(cause, IndexError) and "out of bounds" in text:
            hint = (" Is t off by one? t runs from 1 to T and step t's value sits at index t − 1 "
                    "(alpha_bars[t - 1]); index T does not exist.")
        if not hint:
            raise
        raise LearnerError(f"Exercise {exercise}: your {what} raised {type(cause).__name__}: "
                           f"{text.rstrip('.')}.{hint}") from cause


def _column(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(B,) → (B, 1, 1, 1) (as many trailing 1s as ``like`` has axes after the batch)."""
    return values.reshape(-1, *([1] * (like.dim() - 1)))


def _with_zero(values: torch.Tensor) -> torch.Tensor:
    """(T,) → (T + 1,) with a 1 in front: index t gives ᾱ_t for t in 0..T, with ᾱ_0 = 1."""
    return F.pad(values, (1, 0), value=1.0)


# ---------------------------------------------------------------------------------------------------------------
# Exercise 5.1 — noise schedules, eqs. (5.3), (5.4)
# ---------------------------------------------------------------------------------------------------------------

def reference_linear_schedule(T, beta_start=1e-4, beta_end=0.02, *, rescale=True, extra_point=False):
    """β_t linear from beta_start to beta_end, both × 1000/T (Nichol & Dhariwal's rescaling for T ≠ 1000)."""
    scale = 1000 / T if rescale else 1.0
    if extra_point:
        return torch.linspace(scale * beta_start, scale * beta_end, T + 1, dtype=torch.float64)[1:]
    return torch.linspace(scale * beta_start, scale * beta_end, T, dtype=torch.float64)


def reference_alpha_bars_cosine(T, s=0.008, *, square=True):
    """ᾱ_t = f(t) / f(0) with f(t) = cos²((t/T + s) / (1 + s) · π/2), for t = 0..T: a (T + 1,) tensor."""
    steps = torch.arange(T + 1, dtype=torch.float64) / T
    f = torch.cos((steps + s) / (1 + s) * math.pi / 2)
    f = f ** 2 if square else f
    return f / f[0]


def reference_cosine_schedule(T, s=0.008, max_beta=0.999, *, clip=True, square=True, inverted=False,
                              no_ratio=False, return_alpha_bars=False):
    """β_t = min(1 − ᾱ_t / ᾱ_{t−1}, max_beta) from the cosine ᾱ_t. The keywords build known mistakes."""
    alpha_bars = reference_alpha_bars_cosine(T, s, square=square)  # (T + 1,), ᾱ_0 = 1
    if return_alpha_bars:
        return alpha_bars[1:]
    if no_ratio:
        betas = 1 - alpha_bars[1:]
    elif inverted:
        betas = 1 - alpha_bars[:-1] / alpha_bars[1:]
    else:
        betas = 1 - alpha_bars[1:] / alpha_bars[:-1]
    return betas.clamp(max=max_beta) if clip else betas


def check_schedules(linear_schedule, cosine_schedule) -> None:
    """Exercise 5.1: ``linear_schedule(T)`` and ``cosine_schedule(T)`` return the (T,) float64 tensor of β_1..β_T."""
    for T in (200, 50, 1000):
        got = _call(linear_schedule, T, exercise="5.1", what="linear_schedule")
        expected = reference_linear_schedule(T)
        mistakes = (
            Mistake(reference_linear_schedule(T, rescale=False),
                    "β runs from 1e-4 to 0.02 as for T = 1000; for another T scale both ends by 1000/T, so the "
                    "whole chain adds about as much noise (eq. 5.3).") if T != 1000 else None,
            Mistake(reference_linear_schedule(T, extra_point=True),
                    "off by one: you made T + 1 points and dropped the first; β_1 = beta_start and β_T = beta_end "
                    "exactly, T points in all (torch.linspace(start, end, T))."),
            Mistake(1 - expected, "you returned α_t = 1 − β_t; return the betas."),
            Mistake(torch.cumprod(1 - expected, 0), "you returned ᾱ_t (the cumulative product); return the betas."),
        )
        diagnose(got, expected, exercise="5.1", case=f"linear_schedule({T})", mistakes=mistakes, atol=1e-9,
                 rtol=1e-7, name="betas")
    for T in (200, 50, 1000, 1):
        got = _call(cosine_schedule, T, exercise="5.1", what="cosine_schedule")
        expected = reference_cosine_schedule(T)

        def mistake(**bug):
            return reference_cosine_schedule(T, **bug)
        mistakes = (
            Mistake(mistake(s=0.0), "the offset s = 0.008 is missing from f(t) = cos²((t/T + s)/(1 + s) · π/2); "
                                    "without it β_1 is tiny and the first steps add almost no noise (eq. 5.4)."),
            Mistake(mistake(clip=False), "β_t must be clipped at 0.999: near t = T, ᾱ_t → 0 and 1 − ᾱ_t/ᾱ_{t−1} "
                                         "reaches 1, a step that destroys everything (eq. 5.4)."),
            Mistake(mistake(square=False), "f(t) is the *square* of the cosine: cos²(·)."),
            Mistake(mistake(inverted=True), "the ratio is upside down: β_t = 1 − ᾱ_t / ᾱ_{t−1} (ᾱ decreases, so "
                                            "the ratio is below 1)."),
            Mistake(mistake(no_ratio=True), "you returned 1 − ᾱ_t, the *total* noise variance up to t; β_t is one "
                                            "step's: 1 − ᾱ_t / ᾱ_{t−1} (eq. 5.4)."),
            Mistake(mistake(return_alpha_bars=True), "you returned ᾱ_t; return the betas, "
                                                     "β_t = 1 − ᾱ_t / ᾱ_{t−1}."),
        )
        diagnose(got, expected, exercise="5.1", case=f"cosine_schedule({T})", mistakes=mistakes, atol=1e-9,
                 rtol=1e-7, name="betas")
    passed("5.1", "linear_schedule matches β linear in [1e-4, 0.02]·1000/T for T = 50, 200, 1000 and "
                  "cosine_schedule matches Nichol & Dhariwal's (s = 0.008, clipped at 0.999) for T = 1, 50, 200, 1000.")


# ---------------------------------------------------------------------------------------------------------------
# Exercise 5.2 — sampling q(x_t | x_0), eq. (5.2)
# ---------------------------------------------------------------------------------------------------------------

def reference_q_sample(x0, t, noise, schedule, *, use_alphas=False, shift=0, sqrt_signal=True, sqrt_noise=True,
                       sign=1.0, swap=False, broadcast_last=False):
    """x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε. The keywords build known mistakes."""
    values = schedule.alphas if use_alphas else schedule.alpha_bars
    picked = values[t - 1 + shift]  # (B,)
    alpha_bar_t = picked if broadcast_last else _column(picked, x0)  # (B,) broadcasts along the last axis
    signal = alpha_bar_t.sqrt() if sqrt_signal else alpha_bar_t
    noise_scale = (1 - alpha_bar_t).sqrt() if sqrt_noise else 1 - alpha_bar_t
    if swap:
        signal, noise_scale = noise_scale, signal
    return signal * x0 + sign * noise_scale * noise


def _schedule(T: int, dtype) -> Schedule:
    return Schedule.from_betas(reference_cosine_schedule(T)).to(dtype)


def _timesteps(values, B: int, T: int, seed: int) -> torch.Tensor:
    """(B,) int64: the given values first, then random steps in 1..T."""
    generator = torch.Generator().manual_seed(seed)
    t = torch.randint(1, T + 1, (B,), generator=generator)
    given = torch.as_tensor(values, dtype=torch.long)[:B]
    t[: len(given)] = given
    return t


# (description, image shape (B, C, H, W), T, timesteps to include, dtype); the first cases avoid t = T so that an
# off-by-one is diagnosed before index T overflows, and case 0 has B == W so a (B,) coefficient broadcasts silently.
_IMAGE_CASES = [
    ("B=8, 1×8×8, T=50, t in 2..49", (8, 1, 8, 8), 50, [2, 10, 25, 49], torch.float32),
    ("B=3, 3×4×6, T=200, t in 2..199", (3, 3, 4, 6), 200, [2, 100, 199], torch.float32),
    ("t = 1 and t = T in one batch", (4, 1, 5, 5), 50, [1, 50, 1, 50], torch.float32),
    ("batch size 1, t = T", (1, 2, 4, 4), 20, [20], torch.float32),
    ("float64, t = 1", (2, 1, 3, 3), 30, [1, 7], torch.float64),
]


def check_q_sample(q_sample) -> None:
    """Exercise 5.2: ``q_sample(x0, t, noise, schedule)`` returns √ᾱ_t x_0 + √(1 − ᾱ_t) ε."""
    for number, (case, shape, T, steps, dtype) in enumerate(_IMAGE_CASES):
        schedule = _schedule(T, dtype)
        x0 = seeded_randn(*shape, seed=number, dtype=dtype).clamp(-1, 1)
        noise = seeded_randn(*shape, seed=50 + number, dtype=dtype)
        t = _timesteps(steps, shape[0], T, seed=number)
        got = _call(q_sample, x0.clone(), t.clone(), noise.clone(), schedule, exercise="5.2", what="q_sample")
        expected = reference_q_sample(x0, t, noise, schedule)

        def mistake(**bug):
            return reference_q_sample(x0, t, noise, schedule, **bug)
        mistakes = (
            Mistake(mistake(use_alphas=True), "you used α_t = 1 − β_t; the closed form needs the product "
                                              "ᾱ_t = α_1 ⋯ α_t (schedule.alpha_bars, eq. 5.2)."),
            Mistake(mistake(shift=1), "off by one: you used ᾱ_{t+1}. t runs from 1 to T and ᾱ_t sits at index "
                                      "t − 1: alpha_bars[t - 1].") if t.max() < T else None,
            Mistake(mistake(sqrt_signal=False, sqrt_noise=False),
                    "variance vs standard deviation: the coefficients are √ᾱ_t and √(1 − ᾱ_t), the square roots "
                    "of the mean's factor and of the variance (eq. 5.2)."),
            Mistake(mistake(sqrt_noise=False), "the noise is scaled by its variance 1 − ᾱ_t; scale it by the "
                                               "standard deviation √(1 − ᾱ_t)."),
            Mistake(mistake(sqrt_signal=False), "the signal is scaled by ᾱ_t; its coefficient is √ᾱ_t."),
            Mistake(mistake(sign=-1.0), "the sign of ε is flipped: x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε."),
            Mistake(mistake(swap=True), "the coefficients are swapped: √ᾱ_t multiplies x_0 and √(1 − ᾱ_t) "
                                        "multiplies the noise."),
            Mistake(mistake(broadcast_last=True),
                    "alpha_bars[t - 1] has shape (B,) and broadcast along the *width* axis (B happens to equal W "
                    "here); reshape it to (B, 1, 1, 1) with .view(-1, 1, 1, 1).") if shape[0] == shape[-1] else None,
        )
        diagnose(got, expected, exercise="5.2", case=case, mistakes=mistakes, atol=1e-6, rtol=1e-5, name="x_t")
    passed("5.2", f"{len(_IMAGE_CASES)} cases (t = 1 and t = T, batch size 1, float64) match "
                  "x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε.")


# ---------------------------------------------------------------------------------------------------------------
# Exercise 5.3 — the posterior q(x_{t−1} | x_t, x_0), eqs. (5.6), (5.7)
# ---------------------------------------------------------------------------------------------------------------

def reference_posterior(x0, x_t, t, schedule, *, swap=False, bar_on_xt=False, bar_t_on_x0=False, shift=0,
                        wrap=False, std=False, beta_variance=False, inverted_variance=False):
    """Mean and variance of q(x_{t−1} | x_t, x_0). The keywords build known mistakes."""
    index = t + shift  # index into the (T + 1,) tables with ᾱ_0 = 1 in front: ᾱ_t at t, ᾱ_{t−1} at t − 1
    alpha_bars = _with_zero(schedule.alpha_bars)
    betas, alphas = _with_zero(schedule.betas), _with_zero(schedule.alphas)
    alpha_bar_t = _column(alpha_bars[index], x_t)
    alpha_bar_prev = _column(schedule.alpha_bars[t - 2] if wrap else alpha_bars[index - 1], x_t)  # t−2 wraps at t=1
    beta_t, alpha_t = _column(betas[index], x_t), _column(alphas[index], x_t)
    x0_coefficient = (alpha_bar_t if bar_t_on_x0 else alpha_bar_prev).sqrt() * beta_t / (1 - alpha_bar_t)
    xt_coefficient = (alpha_bar_t if bar_on_xt else alpha_t).sqrt() * (1 - alpha_bar_prev) / (1 - alpha_bar_t)
    if swap:
        x0_coefficient, xt_coefficient = xt_coefficient, x0_coefficient
    mean = x0_coefficient * x0 + xt_coefficient * x_t
    if beta_variance:
        variance = beta_t
    elif inverted_variance:
        variance = (1 - alpha_bar_t) / (1 - alpha_bar_prev) * beta_t
    else:
        variance = (1 - alpha_bar_prev) / (1 - alpha_bar_t) * beta_t
    return mean, variance.sqrt() if std else variance


def check_posterior_mean_variance(posterior_mean_variance) -> None:
    """Exercise 5.3: ``posterior_mean_variance(x0, x_t, t, schedule)`` returns (mean, variance) of q(x_{t−1}|x_t, x_0),
    the mean shaped like x_t and the variance (B, 1, 1, 1) (or shaped like x_t)."""
    for number, (case, shape, T, steps, dtype) in enumerate(_IMAGE_CASES):
        schedule = _schedule(T, dtype)
        x0 = seeded_randn(*shape, seed=number, dtype=dtype).clamp(-1, 1)
        x_t = seeded_randn(*shape, seed=70 + number, dtype=dtype)
        t = _timesteps(steps, shape[0], T, seed=number)
        got = _call(posterior_mean_variance, x0.clone(), x_t.clone(), t.clone(), schedule, exercise="5.3",
                    what="posterior_mean_variance")
        if not isinstance(got, (tuple, list)) or len(got) != 2:
            raise CheckFailure(f"Exercise 5.3 ({case}): return a pair (mean, variance), got {type(got).__name__}.")
        got_mean, got_variance = got
        expected_mean, expected_variance = reference_posterior(x0, x_t, t, schedule)

        def mistake(**bug):
            return reference_posterior(x0, x_t, t, schedule, **bug)
        shift_ok = t.max() < T
        wraps = bool((t == 1).any())
        mean_mistakes = (
            Mistake(mistake(swap=True)[0], "the two coefficients of the mean are swapped: √ᾱ_{t−1} β_t / (1 − ᾱ_t) "
                                           "multiplies x_0 and √α_t (1 − ᾱ_{t−1}) / (1 − ᾱ_t) multiplies x_t (eq. 5.6)."),
            Mistake(mistake(bar_on_xt=True)[0], "ᾱ vs α: x_t's coefficient has √α_t (one step, 1 − β_t), not √ᾱ_t "
                                                "(eq. 5.6)."),
            Mistake(mistake(bar_t_on_x0=True)[0], "x_0's coefficient has √ᾱ_{t−1} (the mean of x_{t−1} given x_0), "
                                                  "not √ᾱ_t (eq. 5.6)."),
            Mistake(mistake(shift=1)[0], "off by one: you used step t + 1's values. t runs from 1 to T and step t "
                                         "sits at index t − 1.") if shift_ok else None,
            Mistake(mistake(wrap=True)[0], "at t = 1, ᾱ_{t−1} = ᾱ_0 must be 1 (x_0 itself), but alpha_bars[t - 2] "
                                           "wrapped around to alpha_bars[-1] = ᾱ_T. Pad a 1 in front: "
                                           "F.pad(alpha_bars, (1, 0), value=1.0)[t - 1].") if wraps else None,
        )
        diagnose(got_mean, expected_mean, exercise="5.3", case=case, mistakes=mean_mistakes, atol=1e-6, rtol=1e-5,
                 name="mean")
        if isinstance(got_variance, torch.Tensor) and got_variance.shape == x_t.shape:
            expected_variance = expected_variance.expand_as(x_t)
        variance_mistakes = tuple(
            Mistake(wrong.expand_as(expected_variance), hint) for wrong, hint in (
                (mistake(std=True)[1], "variance vs standard deviation: you returned √β̃_t; return the variance "
                                       "β̃_t = (1 − ᾱ_{t−1}) / (1 − ᾱ_t) · β_t (eq. 5.7)."),
                (mistake(beta_variance=True)[1], "you returned β_t, the forward step's variance; the posterior's is "
                                                 "smaller: β̃_t = (1 − ᾱ_{t−1}) / (1 − ᾱ_t) · β_t (eq. 5.7)."),
                (mistake(inverted_variance=True)[1], "the ratio is upside down: β̃_t = (1 − ᾱ_{t−1}) / (1 − ᾱ_t) · β_t."),
                (mistake(wrap=True)[1], "at t = 1 the variance must be 0 (ᾱ_0 = 1), but alpha_bars[t - 2] wrapped "
                                        "around to ᾱ_T. Pad a 1 in front of alpha_bars.") if wraps else (None, ""),
            ) if wrong is not None)
        diagnose(got_variance, expected_variance, exercise="5.3", case=case, mistakes=variance_mistakes, atol=1e-7,
                 rtol=1e-5, name="variance")
    passed("5.3", f"{len(_IMAGE_CASES)} cases (t = 1 and t = T, batch size 1, float64) match the posterior's "
                  "mean (eq. 5.6) and variance β̃_t (eq. 5.7).")


# ---------------------------------------------------------------------------------------------------------------
# Exercises 5.4 and 5.5 — one reverse step: DDPM's ancestral step and DDIM's deterministic step
# ---------------------------------------------------------------------------------------------------------------

def reference_predict_x0(eps, x_t, alpha_bar_t, *, sign=-1.0, sqrt_noise=True):
    """x̂_0 = (x_t − √(1 − ᾱ_t) ε̂) / √ᾱ_t, eq. (5.11) solved for x_0."""
    noise_scale = (1 - alpha_bar_t).sqrt() if sqrt_noise else 1 - alpha_bar_t
    return (x_t + sign * noise_scale * eps) / alpha_bar_t.sqrt()


def reference_ddpm_step(eps, x_t, t, schedule, noise, clip=True, *, no_clip=False, clip_output=False, sign=-1.0,
                        use_alphas=False, noise_at_1=False, beta_not_sqrt=False, posterior_sigma=False, shift=0,
                        sqrt_noise=True):
    """x_{t−1} = μ̃(x̂_0, x_t) + σ_t z with σ_t² = β_t, z = 0 at t = 1 (Algorithm 2, x̂_0 clipped). Bugs by keyword."""
    index = t + shift
    alpha_bars = _with_zero(schedule.alpha_bars)
    betas = _column(_with_zero(schedule.betas)[index], x_t)
    alpha_bar_t = _column((_with_zero(schedule.alphas) if use_alphas else alpha_bars)[index], x_t)
    x0_hat = reference_predict_x0(eps, x_t, alpha_bar_t, sign=sign, sqrt_noise=sqrt_noise)
    if clip and not no_clip:
        x0_hat = x0_hat.clamp(-1, 1)
    mean, posterior_variance = reference_posterior(x0_hat, x_t, index, schedule)
    sigma = posterior_variance.sqrt() if posterior_sigma else (betas if beta_not_sqrt else betas.sqrt())
    noisy = torch.ones_like(alpha_bar_t) if noise_at_1 else _column((t > 1).to(x_t.dtype), x_t)
    x_prev = mean + noisy * sigma * noise
    return x_prev.clamp(-1, 1) if clip_output else x_prev


def _step_inputs(number, case, shape, T, steps, dtype):
    """Seeded (schedule, x_t, ε̂, noise, t) for a reverse-step case; ε̂ is large enough that x̂_0 leaves [−1, 1]."""
    schedule = _schedule(T, dtype)
    x_t = seeded_randn(*shape, seed=90 + number, dtype=dtype)
    eps = 1.5 * seeded_randn(*shape, seed=110 + number, dtype=dtype)
    noise = seeded_randn(*shape, seed=130 + number, dtype=dtype)
    t = _timesteps(steps, shape[0], T, seed=number)
    return schedule, x_t, eps, noise, t


def check_ddpm_step(ddpm_step) -> None:
    """Exercise 5.4: ``ddpm_step(eps, x_t, t, schedule, noise, clip=True)`` returns x_{t−1} of Algorithm 2, with x̂_0
    clipped to [−1, 1] when ``clip`` and no noise at t = 1."""
    cases = _IMAGE_CASES + [("clip=False, t = 1 and T", (3, 1, 4, 4), 50, [1, 50, 20], torch.float32)]
    for number, (case, shape, T, steps, dtype) in enumerate(cases):
        clip = "clip=False" not in case
        schedule, x_t, eps, noise, t = _step_inputs(number, case, shape, T, steps, dtype)
        got = _call(ddpm_step, eps.clone(), x_t.clone(), t.clone(), schedule, noise.clone(), clip=clip,
                    exercise="5.4", what="ddpm_step")
        expected = reference_ddpm_step(eps, x_t, t, schedule, noise, clip)

        def mistake(**bug):
            return reference_ddpm_step(eps, x_t, t, schedule, noise, clip, **bug)
        has_1 = bool((t == 1).any())
        mistakes = (
            Mistake(mistake(no_clip=True), "x̂_0 was not clipped: with clip=True, clamp x̂_0 to [−1, 1] (the data's "
                                           "range) *before* computing the posterior mean.") if clip else None,
            Mistake(reference_ddpm_step(eps, x_t, t, schedule, noise, True),
                    "you clipped x̂_0 although clip=False.") if not clip else None,
            Mistake(mistake(no_clip=True, clip_output=True), "you clipped x_{t−1}, the noisy sample; clip x̂_0, the "
                                                             "prediction of the clean image, and leave x_{t−1} as it "
                                                             "is.") if clip else None,
            Mistake(mistake(clip_output=True), "x_{t−1} must not be clipped (it is noisy, beyond [−1, 1] by "
                                               "design); clip only x̂_0.") if clip else None,
            Mistake(mistake(sign=+1.0), "the sign of ε is flipped in x̂_0: x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε gives "
                                        "x̂_0 = (x_t − √(1 − ᾱ_t) ε̂) / √ᾱ_t (eq. 5.12)."),
            Mistake(mistake(sqrt_noise=False), "x̂_0 = (x_t − √(1 − ᾱ_t) ε̂) / √ᾱ_t: ε̂'s coefficient is the standard "
                                               "deviation √(1 − ᾱ_t), not the variance."),
            Mistake(mistake(use_alphas=True), "ᾱ vs α: x̂_0 divides by √ᾱ_t (alpha_bars), the whole chain's signal, "
                                              "not by √α_t."),
            Mistake(mistake(noise_at_1=True), "noise was added at the last step: at t = 1, x_0 = μ̃ with z = 0 "
                                              "(Algorithm 2: z ~ N(0, I) if t > 1, else z = 0).") if has_1 else None,
            Mistake(mistake(beta_not_sqrt=True), "variance vs standard deviation: the noise is σ_t z with "
                                                 "σ_t = √β_t, not β_t."),
            Mistake(mistake(posterior_sigma=True), "you used σ_t² = β̃_t (the posterior's variance); this exercise "
                                                   "uses σ_t² = β_t, Algorithm 2's choice for CIFAR-10."),
            Mistake(mistake(shift=1), "off by one: you used step t + 1's values; step t sits at index "
                                      "t − 1.") if t.max() < T else None,
        )
        diagnose(got, expected, exercise="5.4", case=case, mistakes=mistakes, atol=1e-5, rtol=1e-5, name="x_{t-1}",
                 otherwise="If you call your posterior_mean_variance, does it pass the check of Exercise 5.3?")
    passed("5.4", f"{len(cases)} cases (t = 1 and t = T mixed in a batch, clip on and off, batch size 1, float64) "
                  "match Algorithm 2 with x̂_0 clipped.")


def reference_ddim_step(eps, x_t, t, t_prev, schedule, clip=True, *, swap=False, sign=-1.0, use_alphas=False,
                        shift=0, wrap=False, no_clip=False, clip_output=False, sqrt_direction=True):
    """Deterministic DDIM (σ = 0): x_{t'} = √ᾱ_{t'} x̂_0 + √(1 − ᾱ_{t'}) ε̂. Bugs by keyword."""
    table = _with_zero(schedule.alphas if use_alphas else schedule.alpha_bars)
    alpha_bar_t = _column(table[t + shift], x_t)
    alpha_bar_prev = _column(schedule.alpha_bars[t_prev - 1] if wrap else table[t_prev + shift], x_t)
    if swap:
        alpha_bar_t, alpha_bar_prev = alpha_bar_prev, alpha_bar_t
    x0_hat = reference_predict_x0(eps, x_t, alpha_bar_t, sign=sign)
    if clip and not no_clip:
        x0_hat = x0_hat.clamp(-1, 1)
    direction = (1 - alpha_bar_prev).sqrt() if sqrt_direction else 1 - alpha_bar_prev
    x_prev = alpha_bar_prev.sqrt() * x0_hat + direction * eps
    return x_prev.clamp(-1, 1) if clip_output else x_prev


def check_ddim_step(ddim_step) -> None:
    """Exercise 5.5: ``ddim_step(eps, x_t, t, t_prev, schedule, clip=True)`` returns DDIM's deterministic x_{t_prev},
    eq. (5.16) with σ = 0, for any earlier step 0 ≤ t_prev < t (ᾱ_0 = 1)."""
    cases = [  # (description, shape, T, t values, jump to t_prev, dtype, clip)
        ("B=8, jumps of 5, t in 6..45", (8, 1, 8, 8), 50, [6, 10, 25, 45], 5, torch.float32, True),
        ("B=3, 3×4×6, jumps of 20, T=200", (3, 3, 4, 6), 200, [21, 100, 199], 20, torch.float32, True),
        ("last step: t_prev = 0", (4, 1, 5, 5), 50, [1, 5, 3, 10], None, torch.float32, True),
        ("first step t = T, batch size 1", (1, 2, 4, 4), 20, [20], 4, torch.float32, True),
        ("float64, single steps t_prev = t − 1", (2, 1, 3, 3), 30, [2, 7], 1, torch.float64, True),
        ("clip=False", (3, 1, 4, 4), 50, [50, 20, 8], 7, torch.float32, False),
    ]
    for number, (case, shape, T, steps, jump, dtype, clip) in enumerate(cases):
        schedule, x_t, eps, _, t = _step_inputs(number, case, shape, T, steps, dtype)
        lowest = 1 if jump is None else jump + 1  # random steps beyond the given ones must allow the jump
        t = torch.where(t < lowest, t + lowest, t).clamp(max=T)
        t[: len(steps)] = torch.as_tensor(steps)
        t_prev = torch.zeros_like(t) if jump is None else t - jump
        got = _call(ddim_step, eps.clone(), x_t.clone(), t.clone(), t_prev.clone(), schedule, clip=clip,
                    exercise="5.5", what="ddim_step")
        expected = reference_ddim_step(eps, x_t, t, t_prev, schedule, clip)

        def mistake(**bug):
            return reference_ddim_step(eps, x_t, t, t_prev, schedule, clip, **bug)
        mistakes = (
            Mistake(mistake(swap=True), "ᾱ_t and ᾱ_{t_prev} are swapped: x̂_0 divides by √ᾱ_t (the current step), "
                                        "and the new sample uses √ᾱ_{t_prev} and √(1 − ᾱ_{t_prev}) (eq. 5.16)."),
            Mistake(mistake(sign=+1.0), "the sign of ε is flipped in x̂_0 = (x_t − √(1 − ᾱ_t) ε̂) / √ᾱ_t."),
            Mistake(mistake(use_alphas=True), "ᾱ vs α: DDIM jumps along the marginals q(x_t | x_0), which use "
                                              "ᾱ (alpha_bars), not α."),
            Mistake(mistake(shift=1), "off by one: you used ᾱ_{t+1}; step t sits at index t − 1, and "
                                      "ᾱ_0 = 1.") if t.max() < T else None,
            Mistake(mistake(wrap=True), "at t_prev = 0, ᾱ_0 must be 1 (the clean image), but alpha_bars[t_prev - 1] "
                                        "wrapped around to alpha_bars[-1] = ᾱ_T. Pad a 1 in front: "
                                        "F.pad(alpha_bars, (1, 0), value=1.0)[t_prev].") if jump is None else None,
            Mistake(mistake(no_clip=True), "x̂_0 was not clipped: with clip=True, clamp x̂_0 to [−1, 1] before "
                                           "using it.") if clip else None,
            Mistake(mistake(clip_output=True), "clip x̂_0, not the new sample x_{t_prev}.") if clip else None,
            Mistake(mistake(no_clip=True, clip_output=True), "you clipped the new sample x_{t_prev}; clip x̂_0 "
                                                             "instead.") if clip else None,
            Mistake(reference_ddim_step(eps, x_t, t, t_prev, schedule, True),
                    "you clipped x̂_0 although clip=False.") if not clip else None,
            Mistake(mistake(sqrt_direction=False), "ε̂'s coefficient is the standard deviation √(1 − ᾱ_{t_prev}), "
                                                   "not the variance 1 − ᾱ_{t_prev}."),
        )
        diagnose(got, expected, exercise="5.5", case=case, mistakes=mistakes, atol=1e-5, rtol=1e-5,
                 name="x_{t_prev}")
    passed("5.5", f"{len(cases)} cases (jumps of 1 to 20 steps, t = T, t_prev = 0, clip on and off, float64) match "
                  "DDIM's deterministic update.")


# ---------------------------------------------------------------------------------------------------------------
# Exercise 5.6 — sinusoidal time embedding, eq. (5.17)
# ---------------------------------------------------------------------------------------------------------------

def reference_sinusoidal_embedding(t, dim, *, base=10_000.0, denominator="half", cos_first=False,
                                   interleave=False, increasing=False):
    """[sin(t ω_0), …, sin(t ω_{d/2−1}), cos(t ω_0), …] with ω_i = base^(−i / (d/2)). Bugs by keyword."""
    half = dim // 2
    scale = {"half": half, "half-1": max(half - 1, 1), "dim": dim, "one": 1}[denominator]
    exponent = torch.arange(half, dtype=torch.float32) / scale
    frequencies = base ** (exponent if increasing else -exponent)  # (dim/2,)
    angles = t.to(torch.float32)[:, None] * frequencies[None, :]  # (B, dim/2)
    sin, cos = angles.sin(), angles.cos()
    if interleave:
        return torch.stack([sin, cos], dim=-1).flatten(-2)  # sin, cos, sin, cos, ...
    return torch.cat([cos, sin] if cos_first else [sin, cos], dim=-1)


def check_sinusoidal_embedding(sinusoidal_embedding) -> None:
    """Exercise 5.6: ``sinusoidal_embedding(t, dim)`` returns a (B, dim) float32 tensor, sines then cosines."""
    cases = [("t = 1, 2, 3, 10, 100, 1000; dim 16", torch.tensor([1, 2, 3, 10, 100, 1000]), 16),
             ("batch size 1, t = 1, dim 8", torch.tensor([1]), 8),
             ("random t in 1..200, dim 64", torch.randint(1, 201, (5,), generator=torch.Generator().manual_seed(3)), 64),
             ("t = T = 1000, dim 4", torch.tensor([1000, 500]), 4)]
    for case, t, dim in cases:
        got = _call(sinusoidal_embedding, t.clone(), dim, exercise="5.6", what="sinusoidal_embedding")
        expected = reference_sinusoidal_embedding(t, dim)

        def mistake(**bug):
            return reference_sinusoidal_embedding(t, dim, **bug)
        mistakes = (
            Mistake(mistake(cos_first=True), "cosines first: the convention here (DDPM's code) is the sines in the "
                                             "first half, then the cosines: torch.cat([sin, cos], dim=-1)."),
            Mistake(mistake(interleave=True), "you interleaved sin and cos (sin, cos, sin, cos, …, as in the "
                                              "Transformer paper's table); here they are concatenated: all sines, "
                                              "then all cosines."),
            Mistake(mistake(denominator="half-1"), "the exponent is −i / (d/2), i = 0 … d/2 − 1; you divided by "
                                                   "d/2 − 1 (a variant in DDPM's code)."),
            Mistake(mistake(denominator="dim"), "the exponent is −i / (d/2) = −2i/d: you divided by d, so the "
                                                "slowest frequency is 10000^(−1/2) instead of ≈ 1/10000."),
            Mistake(mistake(denominator="one"), "the exponent is −i / (d/2), not −i: the frequencies should fall "
                                                "geometrically from 1 to ≈ 1/10000 across the d/2 pairs."),
            Mistake(mistake(increasing=True), "the frequencies grow: ω_i = 10000^(−i/(d/2)), a *negative* exponent, "
                                              "so they fall from 1 to ≈ 1/10000."),
            Mistake(mistake(base=1000.0), "the base of the frequencies is 10000, not 1000."),
        )
        diagnose(got, expected, exercise="5.6", case=case, mistakes=mistakes, atol=1e-4, rtol=1e-4,
                 name="embedding")
    passed("5.6", f"{len(cases)} cases (t from 1 to 1000, batch size 1, dim 4 to 64) match "
                  "[sin(t ω_i), cos(t ω_i)] with ω_i = 10000^(−i/(d/2)).")


# ---------------------------------------------------------------------------------------------------------------
# Helpers the chapter uses as references (before the learner's versions are checked)
# ---------------------------------------------------------------------------------------------------------------

def gaussian_kl(mean_1, variance_1, mean_2, variance_2):
    """KL(N(μ₁, σ₁²) ‖ N(μ₂, σ₂²)) per coordinate, eq. (5.9)."""
    return 0.5 * (torch.log(variance_2 / variance_1) + (variance_1 + (mean_1 - mean_2) ** 2) / variance_2 - 1)


__all__ = ["Schedule", "check_schedules", "check_q_sample", "check_posterior_mean_variance", "check_ddpm_step",
           "check_ddim_step", "check_sinusoidal_embedding", "reference_linear_schedule", "reference_cosine_schedule",
           "reference_q_sample", "reference_posterior", "reference_ddpm_step", "reference_ddim_step",
           "reference_sinusoidal_embedding", "gaussian_kl", "CheckFailure", "LearnerError"]
