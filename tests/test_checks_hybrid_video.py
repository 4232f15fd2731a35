"""Every check of Chapter 08 passes on the reference answers and names each wrong answer in words a learner can act on.

The wrong answers are written the way a learner writes them — a function, or a class that keeps the given
``__init__`` and fills in ``forward`` — never built from the checks' own references. Each test carries its
exercise's marker: ``pytest -m ex8_2``.
"""
import jupytext
import numpy as np
import pytest
import torch

from tests.checks_harness import assert_diagnoses, assert_passes, assert_stub_passes_through, exercise
from tests.solution_code import SOLUTIONS, solution_namespace
from utils.checks import hybrid_video as checks

CHAPTER = "08_hybrid_video"
SOLVED = solution_namespace(CHAPTER)
for _cell in jupytext.read(SOLUTIONS / f"{CHAPTER}.md").cells:  # the given encoder/decoder and temporal modules
    if _cell.cell_type == "code" and _cell.source.startswith(("class ConvEncoder", "class TemporalTransformer")):
        exec(compile(_cell.source, f"<{CHAPTER}: {_cell.source[:24]}>", "exec"), SOLVED)  # noqa: S102


# ================================================================================================ Exercise 8.1
def ltc_stub(x, f, tau, A, dt, unfolds=6):
    raise NotImplementedError("Exercise 8.1: write the body of `ltc_update`, then run the check cell below.")


def ltc_explicit(x, f, tau, A, dt, unfolds=6):
    delta = dt / unfolds
    for _ in range(unfolds):
        x = x + delta * (-(1 / tau + f(x)) * x + f(x) * A)
    return x


def ltc_leak_sign(x, f, tau, A, dt, unfolds=6):
    delta = dt / unfolds
    for _ in range(unfolds):
        o = f(x)
        x = (x + delta * o * A) / (1 + delta * (o - 1 / tau))
    return x


def ltc_no_A(x, f, tau, A, dt, unfolds=6):
    delta = dt / unfolds
    for _ in range(unfolds):
        o = f(x)
        x = (x + delta * o) / (1 + delta * (1 / tau + o))
    return x


def ltc_no_fA_term(x, f, tau, A, dt, unfolds=6):
    delta = dt / unfolds
    for _ in range(unfolds):
        x = x / (1 + delta * (1 / tau + f(x)))
    return x


def ltc_dt_ignored(x, f, tau, A, dt, unfolds=6):
    delta = 1 / unfolds
    for _ in range(unfolds):
        o = f(x)
        x = (x + delta * o * A) / (1 + delta * (1 / tau + o))
    return x


def ltc_delta_is_dt(x, f, tau, A, dt, unfolds=6):
    for _ in range(unfolds):
        o = f(x)
        x = (x + dt * o * A) / (1 + dt * (1 / tau + o))
    return x


def ltc_one_step(x, f, tau, A, dt, unfolds=6):
    delta = dt / unfolds
    o = f(x)
    return (x + delta * o * A) / (1 + delta * (1 / tau + o))


def ltc_one_unfold_short(x, f, tau, A, dt, unfolds=6):
    delta = dt / unfolds
    for _ in range(unfolds - 1):
        o = f(x)
        x = (x + delta * o * A) / (1 + delta * (1 / tau + o))
    return x


def ltc_f_frozen(x, f, tau, A, dt, unfolds=6):
    delta, o = dt / unfolds, f(x)
    for _ in range(unfolds):
        x = (x + delta * o * A) / (1 + delta * (1 / tau + o))
    return x


def ltc_tau_not_inverted(x, f, tau, A, dt, unfolds=6):
    delta = dt / unfolds
    for _ in range(unfolds):
        o = f(x)
        x = (x + delta * o * A) / (1 + delta * (tau + o))
    return x


def ltc_delta_on_leak_only(x, f, tau, A, dt, unfolds=6):
    delta = dt / unfolds
    for _ in range(unfolds):
        o = f(x)
        x = (x + delta * o * A) / (1 + delta / tau + o)
    return x


def ltc_fA_sign(x, f, tau, A, dt, unfolds=6):
    delta = dt / unfolds
    for _ in range(unfolds):
        o = f(x)
        x = (x - delta * o * A) / (1 + delta * (1 / tau + o))
    return x


def ltc_in_place(x, f, tau, A, dt, unfolds=6):
    delta = dt / unfolds
    for _ in range(unfolds):
        o = f(x)
        x.add_(delta * o * A).div_(1 + delta * (1 / tau + o))
    return x


def ltc_float32(x, f, tau, A, dt, unfolds=6):
    x = x.float()
    delta = dt / unfolds
    for _ in range(unfolds):
        o = f(x).float()
        x = (x + delta * o * A) / (1 + delta * (1 / tau + o))
    return x


def ltc_extra_unfold(x, f, tau, A, dt, unfolds=6):
    delta = dt / (unfolds + 1)
    for _ in range(unfolds + 1):
        o = f(x)
        x = (x + delta * o * A) / (1 + delta * (1 / tau + o))
    return x


def ltc_returns_nothing(x, f, tau, A, dt, unfolds=6):
    delta = dt / unfolds
    for _ in range(unfolds):
        o = f(x)
        x = (x + delta * o * A) / (1 + delta * (1 / tau + o))


def ltc_no_update(x, f, tau, A, dt, unfolds=6):
    return x * 1.0


def ltc_mean_over_neurons(x, f, tau, A, dt, unfolds=6):
    delta = dt / unfolds
    for _ in range(unfolds):
        o = f(x).mean(-1, keepdim=True)
        x = (x + delta * o * A) / (1 + delta * (1 / tau + o))
    return x


def ltc_A_times_tau(x, f, tau, A, dt, unfolds=6):  # decays at the right rate, settles at the wrong place
    delta = dt / unfolds
    for _ in range(unfolds):
        o = f(x)
        x = (x + delta * o * A * tau) / (1 + delta * (1 / tau + o))
    return x


def ltc_squared_state(x, f, tau, A, dt, unfolds=6):  # not affine in x even for a constant f
    delta = dt / unfolds
    for _ in range(unfolds):
        o = f(x)
        x = (x + delta * o * A) / (1 + delta * (1 / tau + o * x * x))
    return x


@exercise("8.1")
def test_ltc_reference_passes():
    assert_passes(checks.check_ltc_update, SOLVED["ltc_update"])


@exercise("8.1")
def test_ltc_stub_passes_through():
    assert_stub_passes_through(checks.check_ltc_update, ltc_stub)


@exercise("8.1")
@pytest.mark.parametrize("wrong, words", [
    (ltc_explicit, ["explicit Euler", "semi-implicit"]),
    (ltc_leak_sign, ["leak", "wrong sign"]),
    (ltc_no_A, ["A is missing"]),
    (ltc_no_fA_term, ["f·A term is missing"]),
    (ltc_dt_ignored, ["δt ignored"]),
    (ltc_delta_is_dt, ["not divided by L"]),
    (ltc_one_step, ["1 step", "L = unfolds"]),
    (ltc_one_unfold_short, ["5 steps", "L = unfolds = 6"]),
    (ltc_f_frozen, ["once, before the loop"]),
    (ltc_tau_not_inverted, ["τ where 1/τ goes"]),
    (ltc_delta_on_leak_only, ["Δ multiplies only 1/τ"]),
    (ltc_fA_sign, ["f·A term has the wrong sign"]),
    (ltc_in_place, ["in place"]),
    (ltc_float32, ["float32"]),
    (ltc_extra_unfold, ["7 steps", "δt/(L + 1)"]),
    (ltc_returns_nothing, ["forget to return"]),
    (ltc_no_update, ["eq. (8.3)"]),
    (ltc_mean_over_neurons, ["eq. (8.3)"]),
    (ltc_A_times_tau, ["settles at", "numerator"]),
    (ltc_squared_state, ["not an affine map"]),
])
def test_ltc_wrong_answers_are_named(wrong, words):
    assert_diagnoses(checks.check_ltc_update, wrong, *words)


# ================================================================================================ Exercise 8.2
Reference = SOLVED["CfCCell"]


def cell(forward):
    """A learner's CfCCell: the given __init__, their forward."""
    return type("CfCCell", (Reference,), {"forward": forward})


def cfc_stub(self, input, hx, ts):
    raise NotImplementedError("Exercise 8.2: write the body of `forward`, then run the check cell below.")


def _parts(self, input, hx):
    z = self.backbone(torch.cat([input, hx], dim=1))
    return z, torch.tanh(self.ff2(z)), torch.tanh(self.ff1(z)), self.time_a(z), self.time_b(z)


def cfc_gate_sign(self, input, hx, ts):
    z, g, h, f, b = _parts(self, input, hx)
    gate = torch.sigmoid(f * ts + b)
    return gate * g + (1 - gate) * h


def cfc_heads_swapped(self, input, hx, ts):
    z, g, h, f, b = _parts(self, input, hx)
    gate = torch.sigmoid(-f * ts + b)
    return gate * h + (1 - gate) * g


def cfc_ts_ignored(self, input, hx, ts):
    z, g, h, f, b = _parts(self, input, hx)
    gate = torch.sigmoid(-f + b)
    return gate * g + (1 - gate) * h


def cfc_no_offset(self, input, hx, ts):
    z, g, h, f, b = _parts(self, input, hx)
    gate = torch.sigmoid(-f * ts)
    return gate * g + (1 - gate) * h


def cfc_no_tanh(self, input, hx, ts):
    z = self.backbone(torch.cat([input, hx], dim=1))
    gate = torch.sigmoid(-self.time_a(z) * ts + self.time_b(z))
    return gate * self.ff2(z) + (1 - gate) * self.ff1(z)


def cfc_cat_order(self, input, hx, ts):
    z = self.backbone(torch.cat([hx, input], dim=1))
    gate = torch.sigmoid(-self.time_a(z) * ts + self.time_b(z))
    return gate * torch.tanh(self.ff2(z)) + (1 - gate) * torch.tanh(self.ff1(z))


def cfc_adds_state(self, input, hx, ts):
    z, g, h, f, b = _parts(self, input, hx)
    gate = torch.sigmoid(-f * ts + b)
    return hx + gate * g + (1 - gate) * h


def cfc_ts_on_offset_too(self, input, hx, ts):
    z, g, h, f, b = _parts(self, input, hx)
    gate = torch.sigmoid(-(f + b) * ts)
    return gate * g + (1 - gate) * h


def cfc_tuple(self, input, hx, ts):
    z, g, h, f, b = _parts(self, input, hx)
    gate = torch.sigmoid(-f * ts + b)
    new = gate * g + (1 - gate) * h
    return new, new


def cfc_detached(self, input, hx, ts):
    with torch.no_grad():
        z, g, h, f, b = _parts(self, input, hx)
        gate = torch.sigmoid(-f * ts + b)
        return gate * g + (1 - gate) * h


def cfc_sigmoid_heads(self, input, hx, ts):
    z = self.backbone(torch.cat([input, hx], dim=1))
    gate = torch.sigmoid(-self.time_a(z) * ts + self.time_b(z))
    return gate * torch.sigmoid(self.ff2(z)) + (1 - gate) * torch.sigmoid(self.ff1(z))


def cfc_only_g(self, input, hx, ts):
    z, g, h, f, b = _parts(self, input, hx)
    gate = torch.sigmoid(-f * ts + b)
    return gate * g + (1 - gate) * g


def cfc_g_detached(self, input, hx, ts):
    z = self.backbone(torch.cat([input, hx], dim=1))
    gate = torch.sigmoid(-self.time_a(z) * ts + self.time_b(z))
    return gate * torch.tanh(self.ff2(z)).detach() + (1 - gate) * torch.tanh(self.ff1(z))


def cfc_exp_gate(self, input, hx, ts):
    z, g, h, f, b = _parts(self, input, hx)
    gate = torch.exp(-f * ts + b)
    return gate * g + (1 - gate) * h


@exercise("8.2")
def test_cfc_reference_passes():
    assert_passes(checks.check_cfc_cell, Reference)


@exercise("8.2")
def test_cfc_stub_passes_through():
    assert_stub_passes_through(checks.check_cfc_cell, cell(cfc_stub))


@exercise("8.2")
@pytest.mark.parametrize("forward, words", [
    (cfc_gate_sign, ["sign is flipped"]),
    (cfc_heads_swapped, ["heads are swapped"]),
    (cfc_ts_ignored, ["ts is ignored"]),
    (cfc_no_offset, ["offset b"]),
    (cfc_no_tanh, ["no tanh"]),
    (cfc_cat_order, ["[hx, input]"]),
    (cfc_adds_state, ["previous state hx"]),
    (cfc_ts_on_offset_too, ["coefficient of b"]),
    (cfc_tuple, ["tuple"]),
    (cfc_detached, ["autograd"]),
    (cfc_only_g, ["both terms use g"]),
    (cfc_exp_gate, ["re:not a mix|strictly between 0 and 1"]),
    (cfc_sigmoid_heads, ["eq. (8.6)"]),
    (cfc_g_detached, ["no gradient reaches ff2"]),
])
def test_cfc_wrong_answers_are_named(forward, words):
    assert_diagnoses(checks.check_cfc_cell, cell(forward), *words)


# ================================================================================================ Exercise 8.3
def frames_stub(net, video):
    raise NotImplementedError("Exercise 8.3: write the body of `per_frame`, then run the check cell below.")


def frames_time_major(net, video):
    B, T = video.shape[:2]
    out = net(video.transpose(0, 1).reshape(B * T, *video.shape[2:]))
    return out.reshape(B, T, *out.shape[1:])


def frames_unfold_swapped(net, video):
    B, T = video.shape[:2]
    out = net(video.reshape(B * T, *video.shape[2:]))
    return out.reshape(T, B, *out.shape[1:]).transpose(0, 1)


def frames_hard_coded_features(net, video):
    B, T = video.shape[:2]
    return net(video.reshape(B * T, *video.shape[2:])).reshape(B, T, -1)


def frames_time_in_channels(net, video):
    B, T = video.shape[:2]
    return net(video.reshape(B, T * video.shape[2], *video.shape[3:]))


def frames_first_only(net, video):
    return net(video[:, 0])


def frames_stack_time_first(net, video):
    return torch.stack([net(video[:, t]) for t in range(video.shape[1])])


def frames_no_unfold(net, video):
    B, T = video.shape[:2]
    return net(video.reshape(B * T, *video.shape[2:]))


def frames_mixes(net, video):
    B, T = video.shape[:2]
    out = net(video.reshape(B * T, *video.shape[2:]))
    out = out.reshape(B, T, *out.shape[1:])
    return out + out.mean(1, keepdim=True) * 0.1


@exercise("8.3")
def test_frames_reference_passes():
    assert_passes(checks.check_per_frame, SOLVED["per_frame"])


@exercise("8.3")
def test_frames_stub_passes_through():
    assert_stub_passes_through(checks.check_per_frame, frames_stub)


@exercise("8.3")
@pytest.mark.parametrize("wrong, words", [
    (frames_time_major, ["(T, B) order"]),
    (frames_unfold_swapped, ["(T, B) order"]),
    (frames_hard_coded_features, ["shape"]),
    (frames_time_in_channels, ["raised"]),
    (frames_first_only, ["shape"]),
    (frames_stack_time_first, ["re:T|transpos|order"]),
    (frames_no_unfold, ["shape"]),
    (frames_mixes, ["other frames"]),
])
def test_frames_wrong_answers_are_named(wrong, words):
    assert_diagnoses(checks.check_per_frame, wrong, *words)


# ================================================================================================ Exercise 8.4
def mask_stub(T):
    raise NotImplementedError("Exercise 8.4: write the body of `causal_mask`, then run the check cell below.")


@exercise("8.4")
def test_mask_reference_passes():
    assert_passes(checks.check_causal_mask, SOLVED["causal_mask"])


@exercise("8.4")
def test_mask_stub_passes_through():
    assert_stub_passes_through(checks.check_causal_mask, mask_stub)


@exercise("8.4")
@pytest.mark.parametrize("wrong, words", [
    (lambda T: torch.ones(T, T, dtype=torch.bool).tril(-1), ["diagonal is missing", "off by one"]),
    (lambda T: torch.ones(T, T, dtype=torch.bool).tril(1), ["future leaks"]),
    (lambda T: torch.ones(T, T, dtype=torch.bool).triu(), ["transposed"]),
    (lambda T: torch.ones(T, T, dtype=torch.bool).triu(1), ["opposite convention"]),
    (lambda T: torch.ones(T, T, dtype=torch.bool), ["no causal mask"]),
    (lambda T: torch.ones(T, T).tril(), ["dtype", "bool"]),
    (lambda T: torch.ones(T, T, dtype=torch.int64).tril(-1), ["not bool", "diagonal"]),
    (lambda T: torch.ones(T + 1, T + 1, dtype=torch.bool).tril(), ["shape", "(T, T)"]),
    (lambda T: torch.ones(4, 4, dtype=torch.bool).tril(), ["shape"]),
    (lambda T: np.tril(np.ones((T, T), dtype=bool)), ["not a tensor"]),
    (lambda T: torch.arange(T)[:, None] > torch.arange(T)[None, :], ["diagonal is missing"]),
    (lambda T: torch.ones(T, T, dtype=torch.bool).tril(-2) | torch.eye(T, dtype=torch.bool), ["entry [", "should"]),
])
def test_mask_wrong_answers_are_named(wrong, words):
    assert_diagnoses(checks.check_causal_mask, wrong, *words)


# ================================================================================================ Exercise 8.5
HybridReference = SOLVED["Hybrid"]
per_frame = SOLVED["per_frame"]


def hybrid(forward):
    return type("Hybrid", (HybridReference,), {"forward": forward})


def hybrid_stub(self, video, gaps=None):
    raise NotImplementedError("Exercise 8.5: write the body of `forward`, then run the check cell below.")


def hybrid_liquid_first(self, video, gaps=None):
    z = per_frame(self.encoder, video)
    if self.liquid is not None:
        z = self.liquid(z, gaps)
    if self.transformer is not None:
        z = self.transformer(z)
    return per_frame(self.decoder, z)


def hybrid_no_transformer(self, video, gaps=None):
    z = per_frame(self.encoder, video)
    if self.liquid is not None:
        z = self.liquid(z, gaps)
    return per_frame(self.decoder, z)


def hybrid_no_liquid(self, video, gaps=None):
    z = per_frame(self.encoder, video)
    if self.transformer is not None:
        z = self.transformer(z)
    return per_frame(self.decoder, z)


def hybrid_gaps_dropped(self, video, gaps=None):
    z = per_frame(self.encoder, video)
    if self.transformer is not None:
        z = self.transformer(z)
    if self.liquid is not None:
        z = self.liquid(z)
    return per_frame(self.decoder, z)


def hybrid_sigmoid(self, video, gaps=None):
    z = per_frame(self.encoder, video)
    if self.transformer is not None:
        z = self.transformer(z)
    if self.liquid is not None:
        z = self.liquid(z, gaps)
    return torch.sigmoid(per_frame(self.decoder, z))


def hybrid_residual(self, video, gaps=None):
    z = per_frame(self.encoder, video)
    if self.transformer is not None:
        z = z + self.transformer(z)
    if self.liquid is not None:
        z = self.liquid(z, gaps)
    return per_frame(self.decoder, z)


def hybrid_shifted(self, video, gaps=None):
    z = per_frame(self.encoder, video)
    if self.transformer is not None:
        z = self.transformer(z)
    if self.liquid is not None:
        z = self.liquid(z, gaps)
    out = per_frame(self.decoder, z)
    return torch.cat([out[:, 1:], out[:, -1:]], dim=1)


def hybrid_no_none_check(self, video, gaps=None):
    z = per_frame(self.encoder, video)
    z = self.transformer(z)
    z = self.liquid(z, gaps)
    return per_frame(self.decoder, z)


def hybrid_decoder_not_per_frame(self, video, gaps=None):
    z = per_frame(self.encoder, video)
    if self.transformer is not None:
        z = self.transformer(z)
    if self.liquid is not None:
        z = self.liquid(z, gaps)
    return self.decoder(z)


def hybrid_mean_context(self, video, gaps=None):
    z = per_frame(self.encoder, video)
    z = z + z.mean(1, keepdim=True)
    if self.transformer is not None:
        z = self.transformer(z)
    if self.liquid is not None:
        z = self.liquid(z, gaps)
    return per_frame(self.decoder, z)


@exercise("8.5")
def test_hybrid_reference_passes():
    assert_passes(checks.check_hybrid, HybridReference)


@exercise("8.5")
def test_hybrid_stub_passes_through():
    assert_stub_passes_through(checks.check_hybrid, hybrid(hybrid_stub))


@exercise("8.5")
@pytest.mark.parametrize("forward, words", [
    (hybrid_liquid_first, ["before the transformer"]),
    (hybrid_no_transformer, ["transformer is never used"]),
    (hybrid_no_liquid, ["liquid module is never used"]),
    (hybrid_gaps_dropped, ["gaps never reach"]),
    (hybrid_sigmoid, ["logits"]),
    (hybrid_residual, ["residual"]),
    (hybrid_shifted, ["future leaks"]),
    (hybrid_no_none_check, ["NoneType"]),
    (hybrid_decoder_not_per_frame, ["raised"]),
    (hybrid_mean_context, ["future leaks"]),
])
def test_hybrid_wrong_answers_are_named(forward, words):
    assert_diagnoses(checks.check_hybrid, hybrid(forward), *words)


# ================================================================================================ the data
def test_moving_digits_bounce_and_ssim():
    from utils import moving_digits

    u = torch.linspace(-3, 3, 61, dtype=torch.float64)
    folded = moving_digits.reflect(u)
    assert folded.min() >= 0 and folded.max() <= 1 and torch.allclose(moving_digits.reflect(u + 2), folded)
    images = torch.zeros(3, 1, 4, 4)
    images[:, :, 1:3, 1:3] = 1
    video = moving_digits.videos(images, 2, frames=5, canvas=10, n_digits=2, seed=3)
    assert video.shape == (2, 5, 1, 10, 10) and torch.equal(video, moving_digits.videos(images, 2, frames=5,
                                                                                        canvas=10, n_digits=2, seed=3))
    assert (video.flatten(2).sum(-1) >= 4).all()  # every frame holds at least one whole digit
    x = torch.rand(2, 12, 12)
    assert torch.allclose(moving_digits.ssim(x, x), torch.ones(2))
    a, b = torch.full((1, 9, 9), 0.2), torch.full((1, 9, 9), 0.6)  # constant images: SSIM = luminance term only
    c1 = 0.01 ** 2
    assert torch.allclose(moving_digits.ssim(a, b), torch.tensor([(2 * 0.2 * 0.6 + c1) / (0.04 + 0.36 + c1)]))
