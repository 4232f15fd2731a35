"""Checks for Chapter 05, Diffusion from Scratch.

Every check diagnoses from what the right answer must satisfy, before it compares numbers:

- **Recovered coefficients.** ``q_sample``, the posterior, and the DDPM and DDIM steps are linear in their image
  inputs, one set of coefficients per image (each image has its own t). The check solves for those coefficients by
  least squares (``x_t ≈ a·x_0 + b·ε`` per image) and explains a wrong one in the chapter's symbols: it tries the
  small changes a learner makes to the equation — ᾱ for α, t + 1 for t, a missing square root, a wrapped-around
  index, a flipped sign, two terms swapped — and names the one that reproduces the learner's coefficients at every
  t of the batch (:class:`Formula`, :func:`explain_coefficients`). When no such change fits, the one quantity the
  learner's code read wrongly is solved for image by image (:func:`recover_variable`): ᾱ_{t−1} at t = 1 read as
  ᾱ_1 or 0 or alpha_bars[-1], ᾱ_{t'} at t' = 0, a ᾱ_t built as 1 − Σβ or α_t^t, and named among the schedule's
  entries at any step. A step's coefficients are also read through the x̂_0 they imply (eq. 5.12), and the
  posterior's through eq. (5.11), the same mean written with the noise.
- **Recovered constants.** The cosine schedule's argument is read in closed form from the learner's β's (the
  recurrence of a sinusoid) and named as a small edit of (t/T + s)/(1 + s)·π/2; the linear schedule's scale; the
  embedding's frequencies (folded ones included) and the step t' each row embeds; the clip range of x̂_0 per image
  and which tensor was clipped; NaNs read by the sign of the inputs (√(ᾱ_t·x_0), the square root of the whole sum).
- **Properties.** Coefficients are one number per image (not per pixel column); the output does not change from
  call to call, and the inputs are not modified; the schedules are increasing / linear / clipped where they must
  be, and ∏(1 − β) gives back the cosine's ᾱ; the time embedding's columns are sines and cosines whose recovered
  frequencies fall geometrically from 1 to about 1/10000.
- **Cases that separate look-alikes:** t = 1 and t = T, B = W (a (B,) tensor then broadcasts silently along the
  width), B ≠ W, batch size 1, float64, clipping on and off, DDIM jumps of several steps and to t' = 0,
  non-default schedule arguments.

Conventions the checks assume (the chapter states them too):
- timesteps t are integers in 1..T as in the papers' math; a schedule tensor holds the value for step t at index
  t − 1 (``betas[t - 1]`` is β_t), and ᾱ_0 = 1 (no noise at all);
- ``t`` is a (B,) int64 tensor: one timestep per example, so per-example coefficients have shape (B,) and must be
  reshaped to (B, 1, 1, 1) to broadcast over images (B, C, H, W);
- images are scaled to [−1, 1]; x̂_0 is clipped to that range when ``clip=True``.
"""
from utils.checks.core import CheckFailure, LearnerError
from utils.checks.diffusion.ddim import check_ddim_step
from utils.checks.diffusion.ddpm import check_ddpm_step
from utils.checks.diffusion.embedding import check_sinusoidal_embedding, identify_sinusoid, recover_embedded_steps
from utils.checks.diffusion.formulas import Factor, Formula, Model, Step, StepContext
from utils.checks.diffusion.images import ImageCase, fit_per_image, nonfinite_pixels_problem, varying_axis_problem
from utils.checks.diffusion.posterior import (
                                              POSTERIOR_MEAN_MODEL,
                                              POSTERIOR_VARIANCE_MODEL,
                                              POSTERIOR_X0,
                                              POSTERIOR_XT,
                                              check_posterior_mean_variance,
)
from utils.checks.diffusion.q_sample import Q_SAMPLE_MODEL, check_q_sample
from utils.checks.diffusion.recovery import recover_variable
from utils.checks.diffusion.references import (
                                              gaussian_kl,
                                              reference_cosine_schedule,
                                              reference_ddim_step,
                                              reference_ddpm_step,
                                              reference_linear_schedule,
                                              reference_posterior,
                                              reference_q_sample,
                                              reference_sinusoidal_embedding,
)
from utils.checks.diffusion.reverse_step import DDIM_MODEL, DDPM_ALGORITHM_2, DDPM_MODEL
from utils.checks.diffusion.schedule import Schedule
from utils.checks.diffusion.schedules import check_schedules

__all__ = ["Schedule", "check_schedules", "check_q_sample", "check_posterior_mean_variance", "check_ddpm_step",
           "check_ddim_step", "check_sinusoidal_embedding", "reference_linear_schedule", "reference_cosine_schedule",
           "reference_q_sample", "reference_posterior", "reference_ddpm_step", "reference_ddim_step",
           "reference_sinusoidal_embedding", "gaussian_kl", "CheckFailure", "LearnerError",
           # the diagnosis machinery, for the tests of the checks
           "Factor", "Formula", "Model", "Step", "StepContext", "ImageCase", "fit_per_image", "identify_sinusoid",
           "nonfinite_pixels_problem", "recover_embedded_steps", "recover_variable", "varying_axis_problem",
           "DDIM_MODEL", "DDPM_ALGORITHM_2", "DDPM_MODEL", "POSTERIOR_MEAN_MODEL", "POSTERIOR_VARIANCE_MODEL",
           "POSTERIOR_X0", "POSTERIOR_XT", "Q_SAMPLE_MODEL"]
