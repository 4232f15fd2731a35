"""Ten wrong answers written after Chapter 08's checks were finished. First run, before any change to the checks: all
ten rejected; six named (steps, δt·L, float(ts), (T, B) order, transposed mask, missing T axis), three with a true but
generic message (f·x explicit, h replaced by hx, transformer twice), one misnamed (the two time heads swapped, read as
g and h swapped: with ts = 1 the outputs are identical). Then the checks were changed — a varying-ts case first, b·ts
in the gate reading, two catalogue entries — and the words below are what they say now."""
import pytest
import torch

from tests.checks_harness import assert_diagnoses
from tests.test_checks_hybrid_video import cell, hybrid, per_frame
from utils.checks import hybrid_video as checks

CHAPTER = "08_hybrid_video"


def ltc_f_x_explicit(x, f, tau, A, dt, unfolds=6):  # only the leak implicit, f·x explicit
    delta = dt / unfolds
    for _ in range(unfolds):
        o = f(x)
        x = (x + delta * (o * A - o * x)) / (1 + delta / tau)
    return x


def ltc_range_from_one(x, f, tau, A, dt, unfolds=6):
    delta = dt / unfolds
    for _ in range(1, unfolds):
        o = f(x)
        x = (x + delta * o * A) / (1 + delta * (1 / tau + o))
    return x


def ltc_delta_times_unfolds(x, f, tau, A, dt, unfolds=6):
    delta = dt * unfolds
    for _ in range(unfolds):
        o = f(x)
        x = (x + delta * o * A) / (1 + delta * (1 / tau + o))
    return x


def cfc_time_heads_swapped(self, input, hx, ts):
    z = self.backbone(torch.cat([input, hx], dim=1))
    gate = torch.sigmoid(-self.time_b(z) * ts + self.time_a(z))
    return gate * torch.tanh(self.ff2(z)) + (1 - gate) * torch.tanh(self.ff1(z))


def cfc_previous_state(self, input, hx, ts):
    z = self.backbone(torch.cat([input, hx], dim=1))
    gate = torch.sigmoid(-self.time_a(z) * ts + self.time_b(z))
    return gate * torch.tanh(self.ff2(z)) + (1 - gate) * hx


def cfc_float_ts(self, input, hx, ts):
    z = self.backbone(torch.cat([input, hx], dim=1))
    gate = torch.sigmoid(-self.time_a(z) * float(ts) + self.time_b(z))
    return gate * torch.tanh(self.ff2(z)) + (1 - gate) * torch.tanh(self.ff1(z))


def frames_unflatten_time_first(net, video):
    B, T = video.shape[:2]
    return net(video.flatten(0, 1)).unflatten(0, (T, B)).transpose(0, 1)


def mask_transposed_bool(T):
    return torch.ones(T, T).tril().bool().T


def hybrid_last_frame_only(self, video, gaps=None):
    z = per_frame(self.encoder, video)
    if self.transformer is not None:
        z = self.transformer(z)
    if self.liquid is not None:
        z = self.liquid(z, gaps)
    return self.decoder(z[:, -1])


def hybrid_transformer_twice(self, video, gaps=None):
    z = per_frame(self.encoder, video)
    if self.transformer is not None:
        z = self.transformer(self.transformer(z))
    if self.liquid is not None:
        z = self.liquid(z, gaps)
    return per_frame(self.decoder, z)


@pytest.mark.parametrize("check, wrong, words", [
    (checks.check_ltc_update, ltc_f_x_explicit, ["only the leak is implicit"]),
    (checks.check_ltc_update, ltc_range_from_one, ["5 steps"]),
    (checks.check_ltc_update, ltc_delta_times_unfolds, ["δt·L"]),
    (checks.check_cfc_cell, cell(cfc_time_heads_swapped), ["reading your gate", "b·ts"]),
    (checks.check_cfc_cell, cell(cfc_previous_state), ["re:mix|h"]),
    (checks.check_cfc_cell, cell(cfc_float_ts), ["raised"]),
    (checks.check_per_frame, frames_unflatten_time_first, ["(T, B) order"]),
    (checks.check_causal_mask, mask_transposed_bool, ["transposed"]),
    (checks.check_hybrid, hybrid(hybrid_last_frame_only), ["shape"]),
    (checks.check_hybrid, hybrid(hybrid_transformer_twice), ["runs twice"]),
])
def test_fresh_wrong_answers_are_rejected(check, wrong, words):
    message = assert_diagnoses(check, wrong, *words)
    print(message)
