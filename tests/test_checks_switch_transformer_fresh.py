"""Ten wrong answers written after Chapter 06's checks were done, run against them untuned: 9 were wrong (f3, a
bincount without minlength sliced to match, is a correct alternative and passes), all 9 were rejected and 5 named
(f1, f2, f5, f7, f10). From them the checks learned to name a gate applied twice, logsumexp of the probabilities and
He's √2 in the init (f8, f6, f9); f4 (P from log-probabilities) keeps the generic message."""

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from tests.checks_harness import assert_diagnoses, assert_passes
from tests.test_checks_switch_transformer import switch_route
from utils.checks import switch_transformer as checks

CHAPTER = "06_switch_transformer"


def f1(logits, capacity_factor):  # topk(1) but gate from logits softmax after topk renorm
    probs = logits.softmax(-1)
    w, i = probs.topk(1, -1)
    w = w / w.sum(-1, keepdim=True)
    S, N = logits.shape
    C = S if capacity_factor is None else math.ceil(capacity_factor * S / N)
    oh = F.one_hot(i[:, 0], N)
    pos = (oh.cumsum(0) * oh).sum(-1) - 1
    return i[:, 0], w[:, 0], pos < C


def f2(logits, capacity_factor):  # capacity uses S // N * cf
    S, N = logits.shape
    probs = logits.softmax(-1)
    g, i = probs.max(-1)
    C = S if capacity_factor is None else int(capacity_factor * (S // N))
    oh = F.one_hot(i, N)
    pos = (oh.cumsum(0) * oh).sum(-1) - 1
    return i, g, pos < C


def f3(probs, expert_index):  # f over N-th of tokens using bincount without minlength
    N = probs.shape[1]
    f = torch.bincount(expert_index).to(probs.dtype) / probs.shape[0]
    return N * (f * probs.mean(0)[: len(f)]).sum()


def f4(probs, expert_index):  # P from log probs
    N = probs.shape[1]
    f = F.one_hot(expert_index, N).to(probs.dtype).mean(0)
    return N * (f * probs.log().mean(0)).sum()


def f5(logits):  # z from logsumexp with keepdim then mean of squares but with dim=1 fine + extra 1/N
    return (torch.logsumexp(logits, 1) ** 2).mean() / logits.shape[1]


def f6(logits):  # z-loss on softmax probs
    return (torch.logsumexp(logits.softmax(-1), -1) ** 2).mean()


def f7(x, router, experts, capacity_factor):  # uses gate of all tokens but forgets keep
    logits = router(x.float())
    index, gate, keep = switch_route(logits, capacity_factor)
    y = torch.zeros_like(x)
    for e, ex in enumerate(experts):
        rows = (index == e).nonzero()[:, 0]
        if len(rows):
            y[rows] = (gate[rows, None] * ex(x[rows]).float()).to(x.dtype)
    return y


def f8(x, router, experts, capacity_factor):  # gate squared (scaled twice)
    logits = router(x.float())
    index, gate, keep = switch_route(logits, capacity_factor)
    y = torch.zeros_like(x)
    for e, ex in enumerate(experts):
        rows = ((index == e) & keep).nonzero()[:, 0]
        if len(rows):
            y = y.index_add(0, rows, (gate[rows, None] ** 2).to(x.dtype) * ex(x[rows]))
    return y


def f9(module, scale=0.1):  # kaiming-like sqrt(2*scale/fan_in)
    for layer in module.modules():
        if isinstance(layer, nn.Linear):
            std = math.sqrt(2 * scale / layer.in_features)
            nn.init.trunc_normal_(layer.weight, std=std, a=-2 * std, b=2 * std)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
    return module


def f10(module, scale=0.1):  # truncation at ±3σ
    for layer in module.modules():
        if isinstance(layer, nn.Linear):
            std = math.sqrt(scale / layer.in_features)
            nn.init.trunc_normal_(layer.weight, std=std, a=-3 * std, b=3 * std)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
    return module


def test_a_sliced_bincount_is_a_right_answer():
    assert_passes(checks.check_switch_load_balancing_loss, f3)


@pytest.mark.parametrize(
    "check, wrong, words",
    [
        (checks.check_switch_route, f1, ["gate is 1"]),
        (checks.check_switch_route, f2, ["floor"]),
        (checks.check_switch_load_balancing_loss, f4, ["eq. (6.3)"]),
        (checks.check_router_z_loss, f5, ["1/N"]),
        (checks.check_router_z_loss, f6, ["PROBABILITIES"]),
        (checks.check_switch_ffn, f7, ["drop no token"]),
        (checks.check_switch_ffn, f8, ["TWICE"]),
        (checks.check_switch_init, f9, ["He's factor 2"]),
        (checks.check_switch_init, f10, ["TRUNCATED"]),
    ],
)
def test_fresh_wrong_answers(check, wrong, words):
    assert_diagnoses(check, wrong, *words)
