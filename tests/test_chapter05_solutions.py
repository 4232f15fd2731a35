"""The teaching code of Chapter 05's solutions, against closed forms and torch.distributions, on inputs hypothesis
chooses.

The checks try a handful of fixed cases; these tests sweep schedules, timesteps and shapes, and test properties
(exact identities of the math) rather than a second copy of the same formula, so a solution that only works on the
check's cases, or a reference in the checks that drifted, shows up here.
"""
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tests import strategies
from tests.solution_code import solution_namespace
from utils.checks import diffusion as checks

CHAPTER = "05_diffusion"


@pytest.fixture(scope="module")
def solved():
    """The names defined by the notebook's setup cell, its exercise cells and the definitions named here."""
    return solution_namespace("05_diffusion", ("@dataclass\nclass Schedule",))


def make_schedule(solved, kind, T):
    builder = solved["linear_schedule"] if kind == "linear" else solved["cosine_schedule"]
    return solved["Schedule"].from_betas(builder(T))


schedules = st.tuples(st.sampled_from(["linear", "cosine"]), st.integers(25, 400))
images = strategies.image_shapes.map(lambda s: (s["N"], s["C"], s["H"], s["W"]))  # B, C, H, W


@settings(max_examples=30, deadline=None)
@given(T=st.integers(1, 2000))
def test_cosine_schedule_reproduces_its_alpha_bars(solved, T):
    betas = solved["cosine_schedule"](T)
    assert betas.shape == (T,) and betas.dtype == torch.float64
    assert (betas > 0).all() and (betas <= 0.999).all()
    steps = torch.arange(1, T + 1, dtype=torch.float64) / T
    f = torch.cos((steps + 0.008) / 1.008 * math.pi / 2) ** 2 / math.cos(0.008 / 1.008 * math.pi / 2) ** 2
    unclipped = betas < 0.999  # ∏(1 − β) reproduces f(t)/f(0) up to the first clipped step
    first_clipped = int(unclipped.logical_not().nonzero()[0]) if not unclipped.all() else T
    torch.testing.assert_close(torch.cumprod(1 - betas, 0)[:first_clipped], f[:first_clipped])


@settings(max_examples=30, deadline=None)
@given(T=st.integers(21, 2000))
def test_linear_schedule_endpoints_and_spacing(solved, T):
    betas = solved["linear_schedule"](T)
    torch.testing.assert_close(betas[[0, -1]], torch.tensor([0.1 / T, 20 / T], dtype=torch.float64))
    torch.testing.assert_close(betas.diff(), torch.full((T - 1,), (20 - 0.1) / T / (T - 1), dtype=torch.float64))


@settings(max_examples=40, deadline=None)
@given(schedule=schedules, shape=images, seed=strategies.seeds)
def test_q_sample_is_a_draw_from_the_closed_form(solved, schedule, shape, seed):
    """(x_t − √ᾱ_t x_0) / √(1 − ᾱ_t) gives back exactly the noise, and its log-density matches Normal's."""
    schedule = make_schedule(solved, *schedule)
    generator = torch.Generator().manual_seed(seed)
    x0, noise = (torch.randn(*shape, generator=generator, dtype=torch.float64) for _ in range(2))
    t = torch.randint(1, schedule.T + 1, (shape[0],), generator=generator)
    x_t = solved["q_sample"](x0, t, noise, schedule)
    alpha_bar_t = schedule.alpha_bars[t - 1].view(-1, 1, 1, 1)
    marginal = torch.distributions.Normal(alpha_bar_t.sqrt() * x0, (1 - alpha_bar_t).sqrt())
    torch.testing.assert_close(marginal.log_prob(x_t), torch.distributions.Normal(0.0, 1.0).log_prob(noise)
                               - (1 - alpha_bar_t).sqrt().log().expand_as(x0))


@settings(max_examples=40, deadline=None)
@given(schedule=schedules, shape=images, seed=strategies.seeds)
def test_posterior_is_the_product_of_gaussians(solved, schedule, shape, seed):
    """Precision = α_t/β_t + 1/(1 − ᾱ_{t−1}); mean = variance × (√α_t x_t / β_t + √ᾱ_{t−1} x_0 / (1 − ᾱ_{t−1}))."""
    schedule = make_schedule(solved, *schedule)
    generator = torch.Generator().manual_seed(seed)
    x0, x_t = (torch.randn(*shape, generator=generator, dtype=torch.float64) for _ in range(2))
    t = torch.randint(2, schedule.T + 1, (shape[0],), generator=generator)
    mean, variance = solved["posterior_mean_variance"](x0, x_t, t, schedule)
    alpha_t, beta_t = (v[t - 1].view(-1, 1, 1, 1) for v in (schedule.alphas, schedule.betas))
    alpha_bar_prev = schedule.alpha_bars[t - 2].view(-1, 1, 1, 1)
    precision = alpha_t / beta_t + 1 / (1 - alpha_bar_prev)
    torch.testing.assert_close(variance.expand_as(x0), (1 / precision).expand_as(x0))
    torch.testing.assert_close(mean, (alpha_t.sqrt() * x_t / beta_t + alpha_bar_prev.sqrt() * x0
                                      / (1 - alpha_bar_prev)) / precision)


def test_posterior_at_t_1_is_x0_itself(solved):
    schedule = make_schedule(solved, "cosine", 100)
    x0, x_t = torch.randn(3, 1, 2, 2, dtype=torch.float64), torch.randn(3, 1, 2, 2, dtype=torch.float64)
    mean, variance = solved["posterior_mean_variance"](x0, x_t, torch.ones(3, dtype=torch.long), schedule)
    torch.testing.assert_close(mean, x0)
    assert (variance == 0).all()


@settings(max_examples=40, deadline=None)
@given(schedule=schedules, shape=images, seed=strategies.seeds, clip=st.booleans())
def test_ddim_with_the_true_noise_lands_on_the_marginal(solved, schedule, shape, seed, clip):
    """Given the exact ε of x_t (and x_0 in [−1, 1], so clipping is a no-op), one DDIM jump to any t' gives
    q_sample(x_0, t', ε): DDIM moves along the marginals of eq. (5.2)."""
    schedule = make_schedule(solved, *schedule)
    generator = torch.Generator().manual_seed(seed)
    x0 = torch.rand(*shape, generator=generator, dtype=torch.float64) * 2 - 1
    noise = torch.randn(*shape, generator=generator, dtype=torch.float64)
    t = torch.randint(1, schedule.T + 1, (shape[0],), generator=generator)
    t_prev = (torch.rand(shape[0], generator=generator, dtype=torch.float64) * t).long()  # 0 ≤ t' < t
    x_t = solved["q_sample"](x0, t, noise, schedule)
    got = solved["ddim_step"](noise, x_t, t, t_prev, schedule, clip=clip)
    expected = torch.where((t_prev == 0).view(-1, 1, 1, 1), x0,
                           solved["q_sample"](x0, t_prev.clamp(min=1), noise, schedule))
    torch.testing.assert_close(got, expected)


@settings(max_examples=40, deadline=None)
@given(schedule=schedules, shape=images, seed=strategies.seeds)
def test_ddpm_step_without_clipping_is_algorithm_2(solved, schedule, shape, seed):
    """x_{t−1} = (x_t − β_t / √(1 − ᾱ_t) ε) / √α_t + √β_t z, with z = 0 at t = 1 (Ho et al., Algorithm 2)."""
    schedule = make_schedule(solved, *schedule)
    generator = torch.Generator().manual_seed(seed)
    eps, x_t, noise = (torch.randn(*shape, generator=generator, dtype=torch.float64) for _ in range(3))
    t = torch.randint(1, schedule.T + 1, (shape[0],), generator=generator)
    got = solved["ddpm_step"](eps, x_t, t, schedule, noise, clip=False)
    alpha_t, beta_t, alpha_bar_t = (v[t - 1].view(-1, 1, 1, 1) for v in
                                    (schedule.alphas, schedule.betas, schedule.alpha_bars))
    z = noise * (t > 1).view(-1, 1, 1, 1)
    torch.testing.assert_close(got, (x_t - beta_t / (1 - alpha_bar_t).sqrt() * eps) / alpha_t.sqrt()
                               + beta_t.sqrt() * z)


@settings(max_examples=30, deadline=None)
@given(dim=st.sampled_from([4, 8, 16, 64, 128]), seed=strategies.seeds)
def test_embedding_dot_products_depend_only_on_the_distance(solved, dim, seed):
    """sin a sin b + cos a cos b = cos(a − b): ⟨emb(t), emb(t')⟩ = Σ_i cos((t − t') ω_i), a function of t − t'."""
    t = torch.randint(1, 1000, (6,), generator=torch.Generator().manual_seed(seed))
    embedding = solved["sinusoidal_embedding"](t, dim).double()
    assert embedding.shape == (6, dim)
    frequencies = 10_000 ** (-torch.arange(dim // 2, dtype=torch.float64) / (dim // 2))
    distance = (t[:, None] - t[None, :]).double()  # (6, 6)
    expected = torch.cos(distance[..., None] * frequencies).sum(-1)
    torch.testing.assert_close(embedding @ embedding.T, expected, atol=2e-3, rtol=1e-3)


@settings(max_examples=40, deadline=None)
@given(seed=strategies.seeds, n=st.integers(1, 8))
def test_gaussian_kl_matches_torch_distributions(seed, n):
    generator = torch.Generator().manual_seed(seed)
    mean_1, mean_2 = (torch.randn(n, generator=generator, dtype=torch.float64) for _ in range(2))
    variance_1, variance_2 = (torch.rand(n, generator=generator, dtype=torch.float64) + 1e-3 for _ in range(2))
    expected = torch.distributions.kl_divergence(torch.distributions.Normal(mean_1, variance_1.sqrt()),
                                                 torch.distributions.Normal(mean_2, variance_2.sqrt()))
    torch.testing.assert_close(checks.gaussian_kl(mean_1, variance_1, mean_2, variance_2), expected)


def test_solutions_pass_their_checks(solved):
    checks.check_schedules(solved["linear_schedule"], solved["cosine_schedule"])
    checks.check_q_sample(solved["q_sample"])
    checks.check_posterior_mean_variance(solved["posterior_mean_variance"])
    checks.check_ddpm_step(solved["ddpm_step"])
    checks.check_ddim_step(solved["ddim_step"])
    checks.check_sinusoidal_embedding(solved["sinusoidal_embedding"])
