"""The teaching code of Chapter 02's solutions, with PyTorch as the oracle, on shapes hypothesis chooses.

The checks try a handful of fixed cases; these tests sweep shapes, groups, momenta and eps, so a solution that only
works on the check's cases (or a reference in the checks that drifted) shows up here.
"""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.solution_code import solution_namespace
from tests.strategies import image_shapes, seeds


@pytest.fixture(scope="module")
def solved():
    """The names defined by the notebook's setup cell, its exercise cells and the definitions named here."""
    return solution_namespace("02_normalization")


images = image_shapes  # (N, C, H, W), shared with the other chapters' tests
CHAPTER = "02_normalization"


def copy_affine(module, library, generator):
    with torch.no_grad():
        for name, parameter in library.named_parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator, dtype=parameter.dtype))
            getattr(module, name).copy_(parameter)


def outputs_and_gradients(module, x, grad_out):
    x = x.clone().requires_grad_()
    out = module(x)
    out.backward(grad_out)
    return [out.detach(), x.grad] + [p.grad for _, p in sorted(module.named_parameters())]


@settings(max_examples=40, deadline=None)
@given(shape=images, eps=st.sampled_from([1e-5, 1e-3, 0.5]), seed=seeds)
def test_batch_norm_function_matches_f_batch_norm(solved, shape, eps, seed):
    N, C, H, W = shape.values()
    if N * H * W < 2:
        return  # one value per channel: its variance is 0 and there is nothing to normalise
    generator = torch.Generator().manual_seed(seed)
    x, weight, bias = (torch.randn(*s, generator=generator, dtype=torch.float64) for s in ((N, C, H, W), (C,), (C,)))
    grad_out = torch.randn(N, C, H, W, generator=generator, dtype=torch.float64)
    ours = [t.clone().requires_grad_() for t in (x, weight, bias)]
    theirs = [t.clone().requires_grad_() for t in (x, weight, bias)]
    y = solved["BatchNormFunction"].apply(*ours, eps)
    expected = F.batch_norm(theirs[0], None, None, theirs[1], theirs[2], training=True, eps=eps)
    torch.testing.assert_close(y, expected)
    y.backward(grad_out)
    expected.backward(grad_out)
    for mine, reference in zip(ours, theirs):
        torch.testing.assert_close(mine.grad, reference.grad)


def test_batch_norm_function_passes_gradcheck(solved):
    inputs = [torch.randn(*s, dtype=torch.float64, requires_grad=True) for s in ((3, 2, 4, 2), (2,), (2,))]
    assert torch.autograd.gradcheck(lambda x, w, b: solved["BatchNormFunction"].apply(x, w, b, 1e-5), inputs)


@settings(max_examples=25, deadline=None)
@given(shape=images, momentum=st.sampled_from([0.1, 0.5, 1.0, None]), steps=st.integers(1, 4),
       seed=seeds)
def test_batch_norm_module_matches_torch_over_steps(solved, shape, momentum, steps, seed):
    N, C, H, W = shape.values()
    if N * H * W < 2:
        return  # PyTorch refuses one value per channel in training mode
    generator = torch.Generator().manual_seed(seed)
    module, library = solved["BatchNorm2d"](C, momentum=momentum), nn.BatchNorm2d(C, momentum=momentum)
    copy_affine(module, library, generator)
    for mode in ["train"] * steps + ["eval"]:
        module.train(mode == "train")
        library.train(mode == "train")
        x = torch.randn(N, C, H, W, generator=generator) * 3 + 1
        grad_out = torch.randn(N, C, H, W, generator=generator)
        module.zero_grad()
        library.zero_grad()
        for mine, reference in zip(outputs_and_gradients(module, x, grad_out),
                                   outputs_and_gradients(library, x, grad_out)):
            torch.testing.assert_close(mine, reference, atol=1e-4, rtol=1e-4)
        for name in ("running_mean", "running_var", "num_batches_tracked"):
            torch.testing.assert_close(getattr(module, name), getattr(library, name), atol=1e-5, rtol=1e-4)


@settings(max_examples=30, deadline=None)
@given(shape=images, trailing=st.integers(1, 3), seed=seeds)
def test_layer_norm_and_rms_norm_match_torch(solved, shape, trailing, seed):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(*shape.values(), generator=generator, dtype=torch.float64) + 1
    normalized_shape = tuple(x.shape[-trailing:])
    grad_out = torch.randn(x.shape, generator=generator, dtype=torch.float64)
    for ours, theirs in ((solved["LayerNorm"](normalized_shape), nn.LayerNorm(normalized_shape)),
                         (solved["RMSNorm"](normalized_shape), nn.RMSNorm(normalized_shape))):
        ours, theirs = ours.double(), theirs.double()
        copy_affine(ours, theirs, generator)
        pairs = zip(outputs_and_gradients(ours, x, grad_out), outputs_and_gradients(theirs, x, grad_out))
        for mine, reference in pairs:
            torch.testing.assert_close(mine, reference)


@settings(max_examples=30, deadline=None)
@given(shape=images, groups=st.integers(1, 4), seed=seeds)
def test_group_norm_and_instance_norm_match_torch(solved, shape, groups, seed):
    N, C, H, W = shape.values()
    C = C * groups  # a multiple of the number of groups
    if H * W < 2:
        return  # PyTorch refuses to normalise a single pixel per channel (InstanceNorm) or per group of one
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(N, C, H, W, generator=generator, dtype=torch.float64) * 2
    grad_out = torch.randn(N, C, H, W, generator=generator, dtype=torch.float64)
    pairs = [(solved["GroupNorm"](groups, C), nn.GroupNorm(groups, C)),
             (solved["InstanceNorm2d"](C), nn.InstanceNorm2d(C, affine=True))]
    for ours, theirs in pairs:
        ours, theirs = ours.double(), theirs.double()
        copy_affine(ours, theirs, generator)
        pairs = zip(outputs_and_gradients(ours, x, grad_out), outputs_and_gradients(theirs, x, grad_out))
        for mine, reference in pairs:
            torch.testing.assert_close(mine, reference)


def test_closed_form_backward_equals_autograd_of_the_module(solved):
    module = solved["BatchNorm2d"](3)
    x = torch.randn(5, 3, 4, 4, requires_grad=True)
    module(x).pow(2).sum().backward()
    reference = x.detach().clone().requires_grad_()
    F.batch_norm(reference, None, None, training=True).pow(2).sum().backward()
    torch.testing.assert_close(x.grad, reference.grad, atol=1e-5, rtol=1e-4)
