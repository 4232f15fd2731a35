"""Every check of Chapter 06 passes on the reference answers and names each wrong answer in words a learner can act on.

The wrong answers are written the way a learner writes them (functions with the exercise's signature), never built
from the checks' own references. Each test carries its exercise's marker: ``pytest -m ex6_4``.
"""
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from tests.checks_harness import assert_diagnoses, assert_passes, assert_stub_passes_through, exercise
from tests.solution_code import solution_namespace
from utils.checks import switch_transformer as checks

CHAPTER = "06_switch_transformer"
SOLVED = solution_namespace(CHAPTER)
switch_route, switch_load_balancing_loss = SOLVED["switch_route"], SOLVED["switch_load_balancing_loss"]
router_z_loss, switch_ffn, switch_init_ = SOLVED["router_z_loss"], SOLVED["switch_ffn"], SOLVED["switch_init_"]
CHECKS = [(checks.check_switch_route, switch_route),
          (checks.check_switch_load_balancing_loss, switch_load_balancing_loss),
          (checks.check_router_z_loss, router_z_loss), (checks.check_switch_ffn, switch_ffn),
          (checks.check_switch_init, switch_init_)]


def stub(*args, **kwargs):
    raise NotImplementedError("Exercise 6.0: write the body")


@pytest.mark.parametrize("check, answer", CHECKS)
def test_references_pass_and_stubs_pass_through(check, answer):
    assert_passes(check, answer)
    assert_stub_passes_through(check, stub)


# ================================================================================================ Exercise 6.1
def _positions(expert_index, N):
    one_hot = F.one_hot(expert_index, N)
    return (one_hot.cumsum(0) * one_hot).sum(-1) - 1


def route_with(capacity, gate_fn=None, index_fn=None):
    def route(logits, capacity_factor):
        S, N = logits.shape
        probs = torch.softmax(logits, -1)
        gate, index = probs.max(-1)
        if gate_fn:
            gate = gate_fn(logits, probs, index)
        if index_fn:
            index = index_fn(logits, probs)
        C = S if capacity_factor is None else capacity(capacity_factor, S, N)
        return index, gate, _positions(index, N) < C
    return route


route_top2_capacity = route_with(lambda cf, S, N: math.ceil(2 * cf * S / N))  # capacity from k·tokens, k = 2
route_floor = route_with(lambda cf, S, N: math.floor(cf * S / N))
route_no_factor = route_with(lambda cf, S, N: math.ceil(S / N))
route_no_division = route_with(lambda cf, S, N: math.ceil(cf * S))
route_int = route_with(lambda cf, S, N: int(cf * S / N))
route_gate_one = route_with(lambda cf, S, N: math.ceil(cf * S / N),
                            gate_fn=lambda logits, probs, index: torch.softmax(logits.max(-1, keepdim=True).values,
                                                                               -1)[:, 0])
route_gate_logit = route_with(lambda cf, S, N: math.ceil(cf * S / N),
                              gate_fn=lambda logits, probs, index: logits.max(-1).values)
route_gate_detached = route_with(lambda cf, S, N: math.ceil(cf * S / N),
                                 gate_fn=lambda logits, probs, index: probs.max(-1).values.detach())
route_argmin = route_with(lambda cf, S, N: math.ceil(cf * S / N),
                          index_fn=lambda logits, probs: logits.argmin(-1))


def route_off_by_one(logits, capacity_factor):  # slots counted from 1, kept while slot < C
    S, N = logits.shape
    probs = torch.softmax(logits, -1)
    gate, index = probs.max(-1)
    one_hot = F.one_hot(index, N)
    position = (one_hot.cumsum(0) * one_hot).sum(-1)
    C = S if capacity_factor is None else math.ceil(capacity_factor * S / N)
    return index, gate, position < C


def route_keepdim(logits, capacity_factor):
    index, gate, keep = switch_route(logits, capacity_factor)
    return index[:, None], gate[:, None], keep[:, None]


def route_float_keep(logits, capacity_factor):
    index, gate, keep = switch_route(logits, capacity_factor)
    return index, gate, keep.float()


def route_by_probability(logits, capacity_factor):  # the most confident tokens first, not token order
    S, N = logits.shape
    probs = torch.softmax(logits, -1)
    gate, index = probs.max(-1)
    C = S if capacity_factor is None else math.ceil(capacity_factor * S / N)
    keep = torch.zeros(S, dtype=torch.bool)
    for e in range(N):
        rows = torch.nonzero(index == e)[:, 0]
        keep[rows[gate[rows].argsort(descending=True)[:C]]] = True
    return index, gate, keep


def route_last_first(logits, capacity_factor):
    index, gate, _ = switch_route(logits, capacity_factor)
    S, N = logits.shape
    C = S if capacity_factor is None else math.ceil(capacity_factor * S / N)
    flipped = _positions(index.flip(0), N).flip(0)
    return index, gate, flipped < C


def route_none_crashes(logits, capacity_factor):
    S, N = logits.shape
    probs = torch.softmax(logits, -1)
    gate, index = probs.max(-1)
    return index, gate, _positions(index, N) < math.ceil(capacity_factor * S / N)


def route_softmax_tokens(logits, capacity_factor):
    S, N = logits.shape
    probs = torch.softmax(logits, 0)
    gate, index = probs.max(-1)
    C = S if capacity_factor is None else math.ceil(capacity_factor * S / N)
    return index, gate, _positions(index, N) < C


def route_returns_two(logits, capacity_factor):
    index, gate, keep = switch_route(logits, capacity_factor)
    return index, gate


@exercise("6.1")
@pytest.mark.parametrize("wrong, words", [
    (route_top2_capacity, ["k = 2", "top-1 has no factor k"]),
    (route_floor, ["floor", "math.ceil"]),
    (route_int, ["re:floor|round"]),
    (route_no_factor, ["capacity factor is missing"]),
    (route_no_division, ["without dividing by the number of experts"]),
    (route_off_by_one, ["one less than C", "from 1"]),
    (route_gate_one, ["gate is 1", "no gradient"]),
    (route_gate_logit, ["largest LOGIT"]),
    (route_gate_detached, ["not connected", "gradient"]),
    (route_argmin, ["SMALLEST", "argmax"]),
    (route_keepdim, ["(S,)", "squeeze"]),
    (route_float_keep, ["boolean"]),
    (route_by_probability, ["token order"]),
    (route_last_first, ["LAST C tokens"]),
    (route_none_crashes, ["re:None|NoneType"]),
    (route_softmax_tokens, ["re:dim=0|over the tokens"]),
    (route_returns_two, ["return the tuple (expert_index, gate, keep)"]),
])
def test_route_mistakes_are_named(wrong, words):
    assert_diagnoses(checks.check_switch_route, wrong, *words)


# ================================================================================================ Exercise 6.2
def loss_no_n(probs, expert_index):
    f = F.one_hot(expert_index, probs.shape[1]).to(probs.dtype).mean(0)
    return (f * probs.mean(0)).sum()


def loss_mean_over_experts(probs, expert_index):
    N = probs.shape[1]
    f = F.one_hot(expert_index, N).to(probs.dtype).mean(0)
    return N * (f * probs.mean(0)).mean()


def loss_soft_f(probs, expert_index):  # f from the soft probabilities
    P = probs.mean(0)
    return probs.shape[1] * (P * P).sum()


def loss_hard_p(probs, expert_index):  # f and P both from the dispatch: no gradient
    N = probs.shape[1]
    f = F.one_hot(expert_index, N).to(probs.dtype).mean(0)
    return N * (f * f).sum()


def loss_p_detached(probs, expert_index):  # "f and P swapped": the differentiable factor detached
    N = probs.shape[1]
    f = F.one_hot(expert_index, N).to(probs.dtype).mean(0)
    return N * (f * probs.mean(0).detach()).sum()


def loss_counts(probs, expert_index):
    N = probs.shape[1]
    f = F.one_hot(expert_index, N).to(probs.dtype).sum(0)
    return N * (f * probs.mean(0)).sum()


def loss_per_expert(probs, expert_index):
    N = probs.shape[1]
    f = F.one_hot(expert_index, N).to(probs.dtype).mean(0)
    return N * f * probs.mean(0)


def loss_float32(probs, expert_index):
    N = probs.shape[1]
    f = F.one_hot(expert_index, N).float().mean(0)
    return N * (f * probs.float().mean(0)).sum()


def loss_item(probs, expert_index):
    return torch.tensor(switch_load_balancing_loss(probs, expert_index).item(), dtype=probs.dtype)


def loss_n_squared(probs, expert_index):
    N = probs.shape[1]
    return N * switch_load_balancing_loss(probs, expert_index)


def loss_max_prob(probs, expert_index):  # P from the chosen probabilities only
    N = probs.shape[1]
    one_hot = F.one_hot(expert_index, N).to(probs.dtype)
    return N * (one_hot.mean(0) * (probs * one_hot).mean(0)).sum()


@exercise("6.2")
@pytest.mark.parametrize("wrong, words", [
    (loss_no_n, ["not multiplied by the number of experts N"]),
    (lambda probs, index: loss_no_n(probs, index) / probs.shape[1], ["N²"]),
    (loss_mean_over_experts, ["mean_i", "N times too small"]),
    (loss_soft_f, ["soft probabilities", "DISPATCHED"]),
    (loss_hard_p, ["no gradient at all", "MEAN PROBABILITY"]),
    (loss_p_detached, ["no gradient", "detach P"]),
    (loss_counts, ["S times too large", "count"]),
    (loss_per_expert, ["one value per expert"]),
    (loss_float32, ["float"]),
    (loss_item, ["no gradient"]),
    (loss_n_squared, ["N times too large"]),
    (loss_max_prob, ["re:eq. \\(6.3\\)"]),
])
def test_load_loss_mistakes_are_named(wrong, words):
    assert_diagnoses(checks.check_switch_load_balancing_loss, wrong, *words)


# ================================================================================================ Exercise 6.3
def z_no_square(logits):
    return torch.logsumexp(logits, -1).mean()


def z_naive(logits):  # without logsumexp: overflows
    return (torch.log(logits.exp().sum(-1)) ** 2).mean()


def z_max(logits):
    return (logits.max(-1).values ** 2).mean()


def z_square_of_mean(logits):
    return torch.logsumexp(logits, -1).mean() ** 2


def z_sum(logits):
    return (torch.logsumexp(logits, -1) ** 2).sum()


def z_squared_logits(logits):
    return (logits ** 2).mean()


def z_tokens_axis(logits):
    return (torch.logsumexp(logits, 0) ** 2).mean()


def z_per_token(logits):
    return torch.logsumexp(logits, -1) ** 2


def z_item(logits):
    return torch.tensor((torch.logsumexp(logits, -1) ** 2).mean().item(), dtype=logits.dtype)


def z_half(logits):
    return 0.5 * (torch.logsumexp(logits, -1) ** 2).mean()


def z_log_softmax(logits):  # log of the softmax instead of the partition function
    return (torch.log_softmax(logits, -1).max(-1).values ** 2).mean()


@exercise("6.3")
@pytest.mark.parametrize("wrong, words", [
    (z_no_square, ["no square"]),
    (z_naive, ["overflows", "logsumexp"]),
    (z_max, ["largest logit"]),
    (z_square_of_mean, ["MEAN of z"]),
    (z_sum, ["S times too large"]),
    (z_squared_logits, ["squared logits"]),
    (z_tokens_axis, ["re:dim=0|over the tokens|shape"]),
    (z_per_token, ["one value per token"]),
    (z_item, ["no gradient"]),
    (z_half, ["0.5"]),
    (z_log_softmax, ["re:eq. \\(6.7\\)"]),
])
def test_z_loss_mistakes_are_named(wrong, words):
    assert_diagnoses(checks.check_router_z_loss, wrong, *words)


# ================================================================================================ Exercise 6.4
def ffn_with(*, low_router=False, scaled=True, dropped="zero", capacity=True, cast_back=True, detach_gate=False):
    def layer(x, router, experts, capacity_factor):
        logits = F.linear(x, router.weight.to(x.dtype)).float() if low_router else router(x.float())
        index, gate, keep = switch_route(logits, capacity_factor if capacity else None)
        if detach_gate:
            gate = gate.detach()
        y = torch.zeros(x.shape, dtype=x.dtype if cast_back else torch.float32)
        for e, expert in enumerate(experts):
            rows = torch.nonzero((index == e) & keep)[:, 0]
            if len(rows):
                out = expert(x[rows])
                out = gate[rows, None].to(out.dtype) * out if scaled else out
                y = y.index_add(0, rows, out.to(y.dtype))
        if dropped == "pass":
            y = torch.where(keep[:, None], y, x.to(y.dtype))
        return y
    return layer


def ffn_router_converted(x, router, experts, capacity_factor):  # router.to(x.dtype) converts the module in place
    router.to(x.dtype)
    return ffn_with(low_router=True)(x, router, experts, capacity_factor)


def ffn_skips_last_expert(x, router, experts, capacity_factor):
    return ffn_with()(x, router, experts[:-1] + [lambda t: torch.zeros_like(t)], capacity_factor)


def ffn_returns_tuple(x, router, experts, capacity_factor):
    return ffn_with()(x, router, experts, capacity_factor), None


@exercise("6.4")
@pytest.mark.parametrize("wrong, words", [
    (ffn_with(low_router=True), ["low precision", "float32"]),
    (ffn_with(scaled=False), ["not scaled by the gate"]),
    (ffn_with(dropped="pass"), ["dropped tokens come out as x", "residual"]),
    (ffn_with(capacity=False), ["drop no token"]),
    (ffn_with(cast_back=False), ["float32 but x is", "x's dtype"]),
    (ffn_with(detach_gate=True), ["no gradient"]),
    (ffn_router_converted, ["IN PLACE"]),
    (ffn_skips_last_expert, ["re:expert|row|token"]),
    (ffn_returns_tuple, ["tuple"]),
])
def test_layer_mistakes_are_named(wrong, words):
    assert_diagnoses(checks.check_switch_ffn, wrong, *words)


# ================================================================================================ Exercise 6.5
def init_with(std_fn, truncate=True, absolute_bounds=False, zero_bias=True, recurse=True, ret=True):
    def init(module, scale=0.1):
        layers = module.modules() if recurse else module.children()
        for layer in layers:
            if isinstance(layer, nn.Linear):
                std = std_fn(scale, layer.in_features, layer.out_features)
                if truncate:
                    bounds = (-2, 2) if absolute_bounds else (-2 * std, 2 * std)
                    nn.init.trunc_normal_(layer.weight, std=std, a=bounds[0], b=bounds[1])
                else:
                    nn.init.normal_(layer.weight, std=std)
                if zero_bias and layer.bias is not None:
                    nn.init.zeros_(layer.bias)
        return module if ret else None
    return init


@exercise("6.5")
@pytest.mark.parametrize("wrong, words", [
    (init_with(lambda s, fi, fo: math.sqrt(s / fo)), ["fan_out"]),
    (init_with(lambda s, fi, fo: s / fi), ["no square root"]),
    (init_with(lambda s, fi, fo: s * math.sqrt(1 / fi)), ["scale outside the square root"]),
    (init_with(lambda s, fi, fo: math.sqrt(s / fi), truncate=False), ["TRUNCATED"]),
    (init_with(lambda s, fi, fo: math.sqrt(s / fi), absolute_bounds=True), ["absolute"]),
    (init_with(lambda s, fi, fo: math.sqrt(s / fi), zero_bias=False), ["bias"]),
    (init_with(lambda s, fi, fo: math.sqrt(s / fi), recurse=False), ["nested", "modules()"]),
    (init_with(lambda s, fi, fo: math.sqrt(s / fi), ret=False), ["return the module"]),
    (init_with(lambda s, fi, fo: math.sqrt(0.1 / fi)), ["hard-coded"]),
    (init_with(lambda s, fi, fo: math.sqrt(2 * s / (fi + fo))), ["Glorot"]),
    (init_with(lambda s, fi, fo: math.sqrt(1 / fi)), ["re:scale left out|hard-coded"]),
])
def test_init_mistakes_are_named(wrong, words):
    assert_diagnoses(checks.check_switch_init, wrong, *words)


def test_init_that_touches_layer_norm_is_named():
    def init(module, scale=0.1):
        switch_init_(module, scale)
        for layer in module.modules():
            if isinstance(layer, nn.LayerNorm):
                nn.init.normal_(layer.weight)
        return module
    assert_diagnoses(checks.check_switch_init, init, "LayerNorm")


def test_init_that_raises_is_reported_as_the_learners():
    def init(module, scale=0.1):
        for layer in module:
            layer.weight.data.normal_()
        return module
    assert_diagnoses(checks.check_switch_init, init, "your switch_init_ raised")
