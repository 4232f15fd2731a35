"""The teaching code of Chapter 09's solutions, with PyTorch as the oracle, on sizes hypothesis chooses.

The checks try a handful of fixed cases; these tests sweep sizes, so a solution that only works on the checks'
cases (or a reference in the checks that drifted) shows up here."""

import jupytext
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.flop_counter import FlopCounterMode

from tests.solution_code import SOLUTIONS, solution_namespace
from tests.strategies import seeds

CHAPTER = "09_minimalist"


@pytest.fixture(scope="module")
def solved():
    """The notebook's setup cell and exercise cells, then the whole cells that define the derivation's shift and
    receptive-field helpers and the network (they run their own small verifications too)."""
    namespace = solution_namespace(CHAPTER)
    for cell in jupytext.read(SOLUTIONS / f"{CHAPTER}.md").cells:
        if cell.cell_type == "code" and cell.source.startswith(("OFFSETS", "def minimalist_net")):
            exec(compile(cell.source, f"<{CHAPTER}: {cell.source[:20]}>", "exec"), namespace)  # noqa: S102
    return namespace


@settings(max_examples=25, deadline=None)
@given(c_out=st.integers(1, 5), c=st.integers(1, 4), k=st.integers(1, 4), h=st.integers(1, 3), w=st.integers(1, 3),
       seed=seeds)
def test_strided_to_pointwise_matches_strided_conv(solved, c_out, c, k, h, w, seed):
    """eq. (9.4): s2d_k + a 1×1 conv with the mapped weight = F.conv2d(stride=k), and back with a reshape."""
    generator = torch.Generator().manual_seed(seed)
    weight = torch.randn(c_out, c, k, k, generator=generator, dtype=torch.float64)
    x = torch.randn(2, c, h * k, w * k, generator=generator, dtype=torch.float64)
    pointwise = solved["strided_to_pointwise"](weight)
    torch.testing.assert_close(F.conv2d(F.pixel_unshuffle(x, k), pointwise), F.conv2d(x, weight, stride=k))
    torch.testing.assert_close(pointwise.reshape(c_out, c, k, k), weight)


@settings(max_examples=25, deadline=None)
@given(c_in=st.integers(1, 12), c_out=st.integers(1, 12), height=st.integers(1, 9), width=st.integers(1, 9),
       bias=st.booleans())
def test_pointwise_cost_matches_numel_and_flop_counter(solved, c_in, c_out, height, width, bias):
    layer = nn.Conv2d(c_in, c_out, 1, bias=bias)
    with FlopCounterMode(display=False) as counter:
        layer(torch.zeros(1, c_in, height, width))
    assert solved["pointwise_cost"](c_in, c_out, height, width, bias) == \
        (sum(p.numel() for p in layer.parameters()), counter.get_total_flops())


@settings(max_examples=20, deadline=None)
@given(layers=st.lists(st.sampled_from([(1, 1), (2, 2), (3, 1), (4, 4), (2, 1), (3, 2)]), min_size=1, max_size=4))
def test_receptive_field_matches_autograd(solved, layers):
    """eq. (9.6) against autograd on a stack of average pools (kernel k, stride s), one channel, float64: the side
    of the input window that reaches the centre output pixel."""
    stack = [lambda x, k=k, s=s: F.avg_pool2d(x, k, stride=s) for k, s in layers]
    side = solved["receptive_field"](layers)
    assert side == solved["receptive_field_by_autograd"](stack, 1, size=4 * side + 8, trials=1)[0]


@settings(max_examples=15, deadline=None)
@given(batch=st.integers(2, 4), c_in=st.integers(1, 3), c_out=st.integers(1, 5), factor=st.integers(1, 3),
       seed=seeds)
def test_block_matches_strided_conv_batchnorm_relu(solved, batch, c_in, c_out, factor, seed):
    """The block is a k×k stride-k conv (eq. 9.4) + BatchNorm + ReLU, outputs and gradients."""
    torch.manual_seed(seed)
    block = solved["PointwiseBlock"](c_in, c_out, factor).double()
    conv = nn.Conv2d(c_in, c_out, factor, stride=factor, bias=False).double()
    norm = nn.BatchNorm2d(c_out).double()
    with torch.no_grad():
        conv.weight.copy_(block.conv.weight.reshape(c_out, c_in, factor, factor))
        block.norm.weight.normal_()
        norm.weight.copy_(block.norm.weight)
    x = torch.randn(batch, c_in, 2 * factor, 3 * factor, dtype=torch.float64)
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    ours, theirs = block(x1), F.relu(norm(conv(x2)))
    torch.testing.assert_close(ours, theirs)
    ours.sum().backward()
    theirs.sum().backward()
    torch.testing.assert_close(x1.grad, x2.grad)
    torch.testing.assert_close(block.norm.running_var, norm.running_var)


@settings(max_examples=15, deadline=None)
@given(batch=st.integers(1, 3), c_in=st.integers(1, 6), n_classes=st.integers(1, 10), h=st.integers(1, 5),
       w=st.integers(1, 5))
def test_head_is_conv_then_adaptive_average_pool(solved, batch, c_in, n_classes, h, w):
    head = solved["PointwiseHead"](c_in, n_classes).double()
    x = torch.randn(batch, c_in, h, w, dtype=torch.float64)
    expected = F.adaptive_avg_pool2d(head.conv(x), 1).flatten(1)
    torch.testing.assert_close(head(x), expected)


@settings(max_examples=10, deadline=None)
@given(widths=st.lists(st.integers(1, 6), min_size=1, max_size=4))
def test_network_counts_match_the_model(solved, widths):
    """cost() (eq. 9.5 through the exercise) against numel() and FlopCounterMode; the rule passes the network."""
    widths = tuple(widths)
    net = solved["minimalist_net"](widths)
    with FlopCounterMode(display=False) as counter:
        net.eval()(torch.zeros(1, 1, 32, 32))
    assert solved["cost"](widths) == (sum(p.numel() for p in net.parameters()), counter.get_total_flops())
    assert solved["rule_violations"](net) == []


def test_rule_names_each_offender(solved):
    model = nn.Sequential(nn.Conv2d(1, 4, 1), nn.Sequential(nn.Conv2d(4, 4, 3), nn.BatchNorm2d(4)), nn.Flatten(),
                          nn.LazyLinear(10))
    messages = solved["rule_violations"](model)
    assert len(messages) == 2 and messages[0].startswith("1.0") and messages[1].startswith("3")


def test_shift_moves_each_group_by_one_pixel(solved):
    x = torch.zeros(1, 5, 5, 5)
    x[:, :, 2, 2] = 1
    moved = solved["shift"](x)
    for channel, (dy, dx) in enumerate(solved["OFFSETS"]):
        assert moved[0, channel, 2 + dy, 2 + dx] == 1 and moved[0, channel].sum() == 1
