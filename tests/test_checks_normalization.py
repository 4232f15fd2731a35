"""Every check of Chapter 02 passes on the reference answers and names each wrong answer in words a learner can act on.

The wrong answers are written the way a learner writes them: a function, or a class whose method the learner
filled in (subclassing the solution's class keeps the given ``__init__``, as the student notebook does), never
built from the checks' own references. Each test carries its exercise's marker: ``pytest -m ex2_3``.
"""
import math

import pytest
import torch
import torch.nn as nn
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.checks_harness import assert_diagnoses, assert_passes, assert_stub_passes_through, exercise
from tests.solution_code import solution_namespace
from utils.checks import CheckFailure, LearnerError
from utils.checks import normalization as checks
from utils.checks.core import ModuleRun

CHAPTER = "02_normalization"
SOLVED = solution_namespace(CHAPTER)
DIMS = (0, 2, 3)  # BatchNorm2d's axes: every example and pixel of a channel


def per_channel(t):  # (C,) -> (1, C, 1, 1)
    return t[None, :, None, None]


# ================================================================================================ Exercise 2.1
def backward_no_mean_path(grad_out, x_hat, weight, inv_std):
    scale = per_channel(weight * inv_std)
    grad_x = scale * (grad_out - x_hat * (grad_out * x_hat).mean(dim=DIMS, keepdim=True))
    return grad_x, (grad_out * x_hat).sum(dim=DIMS), grad_out.sum(dim=DIMS)


def backward_no_variance_path(grad_out, x_hat, weight, inv_std):
    scale = per_channel(weight * inv_std)
    grad_x = scale * (grad_out - grad_out.mean(dim=DIMS, keepdim=True))
    return grad_x, (grad_out * x_hat).sum(dim=DIMS), grad_out.sum(dim=DIMS)


def backward_direct_only(grad_out, x_hat, weight, inv_std):
    return per_channel(weight * inv_std) * grad_out, (grad_out * x_hat).sum(dim=DIMS), grad_out.sum(dim=DIMS)


def backward_batch_axis_only(grad_out, x_hat, weight, inv_std):
    mean_g, mean_gx = grad_out.mean(0, keepdim=True), (grad_out * x_hat).mean(0, keepdim=True)
    grad_x = per_channel(weight * inv_std) * (grad_out - mean_g - x_hat * mean_gx)
    return grad_x, (grad_out * x_hat).sum(dim=DIMS), grad_out.sum(dim=DIMS)


def backward_instance_axes(grad_out, x_hat, weight, inv_std):
    mean_g, mean_gx = grad_out.mean((2, 3), keepdim=True), (grad_out * x_hat).mean((2, 3), keepdim=True)
    grad_x = per_channel(weight * inv_std) * (grad_out - mean_g - x_hat * mean_gx)
    return grad_x, (grad_out * x_hat).sum(dim=DIMS), grad_out.sum(dim=DIMS)


def backward_divide_by_n(grad_out, x_hat, weight, inv_std):
    N = grad_out.shape[0]
    mean_g = grad_out.sum(DIMS, keepdim=True) / N
    mean_gx = (grad_out * x_hat).sum(DIMS, keepdim=True) / N
    grad_x = per_channel(weight * inv_std) * (grad_out - mean_g - x_hat * mean_gx)
    return grad_x, (grad_out * x_hat).sum(dim=DIMS), grad_out.sum(dim=DIMS)


def backward_sums_not_means(grad_out, x_hat, weight, inv_std):
    sum_g, sum_gx = grad_out.sum(DIMS, keepdim=True), (grad_out * x_hat).sum(DIMS, keepdim=True)
    grad_x = per_channel(weight * inv_std) * (grad_out - sum_g - x_hat * sum_gx)
    return grad_x, (grad_out * x_hat).sum(dim=DIMS), grad_out.sum(dim=DIMS)


def backward_no_gamma(grad_out, x_hat, weight, inv_std):
    mean_g, mean_gx = grad_out.mean(DIMS, keepdim=True), (grad_out * x_hat).mean(DIMS, keepdim=True)
    grad_x = per_channel(inv_std) * (grad_out - mean_g - x_hat * mean_gx)
    return grad_x, (grad_out * x_hat).sum(dim=DIMS), grad_out.sum(dim=DIMS)


def backward_times_std(grad_out, x_hat, weight, inv_std):
    mean_g, mean_gx = grad_out.mean(DIMS, keepdim=True), (grad_out * x_hat).mean(DIMS, keepdim=True)
    grad_x = per_channel(weight / inv_std) * (grad_out - mean_g - x_hat * mean_gx)
    return grad_x, (grad_out * x_hat).sum(dim=DIMS), grad_out.sum(dim=DIMS)


def backward_variance_sign(grad_out, x_hat, weight, inv_std):
    mean_g, mean_gx = grad_out.mean(DIMS, keepdim=True), (grad_out * x_hat).mean(DIMS, keepdim=True)
    grad_x = per_channel(weight * inv_std) * (grad_out - mean_g + x_hat * mean_gx)
    return grad_x, (grad_out * x_hat).sum(dim=DIMS), grad_out.sum(dim=DIMS)


def backward_dgamma_without_x_hat(grad_out, x_hat, weight, inv_std):
    grad_x, _, grad_bias = SOLVED["batch_norm_backward"](grad_out, x_hat, weight, inv_std)
    return grad_x, grad_out.sum(dim=DIMS), grad_bias


def backward_dgamma_with_gamma(grad_out, x_hat, weight, inv_std):
    grad_x, grad_weight, grad_bias = SOLVED["batch_norm_backward"](grad_out, x_hat, weight, inv_std)
    return grad_x, grad_weight * weight, grad_bias


def backward_dbeta_mean(grad_out, x_hat, weight, inv_std):
    grad_x, grad_weight, _ = SOLVED["batch_norm_backward"](grad_out, x_hat, weight, inv_std)
    return grad_x, grad_weight, grad_out.mean(dim=DIMS)


def backward_keepdim_weight(grad_out, x_hat, weight, inv_std):
    grad_x, _, grad_bias = SOLVED["batch_norm_backward"](grad_out, x_hat, weight, inv_std)
    return grad_x, (grad_out * x_hat).sum(dim=DIMS, keepdim=True), grad_bias


def backward_dgamma_summed_over_batch_only(grad_out, x_hat, weight, inv_std):
    grad_x, _, grad_bias = SOLVED["batch_norm_backward"](grad_out, x_hat, weight, inv_std)
    return grad_x, (grad_out * x_hat).sum(dim=0), grad_bias


def backward_swapped(grad_out, x_hat, weight, inv_std):
    grad_x, grad_weight, grad_bias = SOLVED["batch_norm_backward"](grad_out, x_hat, weight, inv_std)
    return grad_x, grad_bias, grad_weight


def backward_two_outputs(grad_out, x_hat, weight, inv_std):
    grad_x, grad_weight, _ = SOLVED["batch_norm_backward"](grad_out, x_hat, weight, inv_std)
    return grad_x, grad_weight


def backward_no_return(grad_out, x_hat, weight, inv_std):
    grad_x, grad_weight, grad_bias = SOLVED["batch_norm_backward"](grad_out, x_hat, weight, inv_std)  # noqa: F841


def backward_in_float32(grad_out, x_hat, weight, inv_std):
    grad_x, grad_weight, grad_bias = SOLVED["batch_norm_backward"](grad_out.float(), x_hat.float(), weight.float(),
                                                                   inv_std.float())
    return grad_x.double(), grad_weight.double(), grad_bias.double()


def backward_gamma_not_viewed(grad_out, x_hat, weight, inv_std):
    mean_g, mean_gx = grad_out.mean(DIMS, keepdim=True), (grad_out * x_hat).mean(DIMS, keepdim=True)
    grad_x = weight * inv_std * (grad_out - mean_g - x_hat * mean_gx)  # (C,) against the last axis, W
    return grad_x, (grad_out * x_hat).sum(dim=DIMS), grad_out.sum(dim=DIMS)


def backward_nan(grad_out, x_hat, weight, inv_std):
    grad_x, grad_weight, grad_bias = SOLVED["batch_norm_backward"](grad_out, x_hat, weight, inv_std)
    return grad_x / (x_hat - x_hat), grad_weight, grad_bias


def backward_variance_path_twice(grad_out, x_hat, weight, inv_std):
    mean_g, mean_gx = grad_out.mean(DIMS, keepdim=True), (grad_out * x_hat).mean(DIMS, keepdim=True)
    grad_x = per_channel(weight * inv_std) * (grad_out - mean_g - 2 * x_hat * mean_gx)  # the 2 from d(σ²)/dx
    return grad_x, (grad_out * x_hat).sum(dim=DIMS), grad_out.sum(dim=DIMS)


def backward_variance_path_from_x_hat_squared(grad_out, x_hat, weight, inv_std):
    mean_g, mean_gxx = grad_out.mean(DIMS, keepdim=True), (grad_out * x_hat * x_hat).mean(DIMS, keepdim=True)
    grad_x = per_channel(weight * inv_std) * (grad_out - mean_g - x_hat * mean_gxx)
    return grad_x, (grad_out * x_hat).sum(dim=DIMS), grad_out.sum(dim=DIMS)


def backward_means_over_every_value(grad_out, x_hat, weight, inv_std):
    grad_x = per_channel(weight * inv_std) * (grad_out - grad_out.mean() - x_hat * (grad_out * x_hat).mean())
    return grad_x, (grad_out * x_hat).sum(dim=DIMS), grad_out.sum(dim=DIMS)


def backward_divide_by_m_minus_1(grad_out, x_hat, weight, inv_std):
    m = grad_out.numel() // grad_out.shape[1]
    sum_g, sum_gx = grad_out.sum(DIMS, keepdim=True), (grad_out * x_hat).sum(DIMS, keepdim=True)
    grad_x = per_channel(weight * inv_std) * (grad_out - sum_g / (m - 1) - x_hat * sum_gx / (m - 1))
    return grad_x, (grad_out * x_hat).sum(dim=DIMS), grad_out.sum(dim=DIMS)


def backward_s_missing_on_the_mean_term(grad_out, x_hat, weight, inv_std):
    mean_g, mean_gx = grad_out.mean(DIMS, keepdim=True), (grad_out * x_hat).mean(DIMS, keepdim=True)
    grad_x = per_channel(weight * inv_std) * (grad_out - x_hat * mean_gx) - per_channel(weight) * mean_g
    return grad_x, (grad_out * x_hat).sum(dim=DIMS), grad_out.sum(dim=DIMS)


def backward_variance_term_a_sum(grad_out, x_hat, weight, inv_std):
    mean_g, sum_gx = grad_out.mean(DIMS, keepdim=True), (grad_out * x_hat).sum(DIMS, keepdim=True)
    grad_x = per_channel(weight * inv_std) * (grad_out - mean_g - x_hat * sum_gx)
    return grad_x, (grad_out * x_hat).sum(dim=DIMS), grad_out.sum(dim=DIMS)


def backward_twice_too_large(grad_out, x_hat, weight, inv_std):
    grad_x, grad_weight, grad_bias = SOLVED["batch_norm_backward"](grad_out, x_hat, weight, inv_std)
    return 2 * grad_x, grad_weight, grad_bias


def backward_variance_term_scaled(grad_out, x_hat, weight, inv_std):
    mean_g, mean_gx = grad_out.mean(DIMS, keepdim=True), (grad_out * x_hat).mean(DIMS, keepdim=True)
    grad_x = per_channel(weight * inv_std) * (grad_out - mean_g - 1.5 * x_hat * mean_gx)
    return grad_x, (grad_out * x_hat).sum(dim=DIMS), grad_out.sum(dim=DIMS)


def backward_gamma_squared(grad_out, x_hat, weight, inv_std):
    mean_g, mean_gx = grad_out.mean(DIMS, keepdim=True), (grad_out * x_hat).mean(DIMS, keepdim=True)
    grad_x = per_channel(weight * weight * inv_std) * (grad_out - mean_g - x_hat * mean_gx)
    return grad_x, (grad_out * x_hat).sum(dim=DIMS), grad_out.sum(dim=DIMS)


def backward_dgamma_over_s(grad_out, x_hat, weight, inv_std):
    grad_x, grad_weight, grad_bias = SOLVED["batch_norm_backward"](grad_out, x_hat, weight, inv_std)
    return grad_x, grad_weight / inv_std, grad_bias


def backward_dgamma_skips_a_row(grad_out, x_hat, weight, inv_std):
    grad_x, _, grad_bias = SOLVED["batch_norm_backward"](grad_out, x_hat, weight, inv_std)
    return grad_x, (grad_out * x_hat)[:, :, 1:].sum(dim=DIMS), grad_bias  # an off-by-one slice


def backward_dgamma_with_a_leftover_constant(grad_out, x_hat, weight, inv_std):
    grad_x, _, grad_bias = SOLVED["batch_norm_backward"](grad_out, x_hat, weight, inv_std)
    return grad_x, (grad_out * (x_hat + 0.1)).sum(dim=DIMS), grad_bias


def backward_wrong_order(grad_out, x_hat, weight, inv_std):
    grad_x, grad_weight, grad_bias = SOLVED["batch_norm_backward"](grad_out, x_hat, weight, inv_std)
    return grad_weight, grad_x, grad_bias


def backward_changes_grad_out_in_place(grad_out, x_hat, weight, inv_std):
    grad_out -= grad_out.mean(DIMS, keepdim=True)
    grad_x = per_channel(weight * inv_std) * (grad_out - x_hat * (grad_out * x_hat).mean(DIMS, keepdim=True))
    return grad_x, (grad_out * x_hat).sum(dim=DIMS), grad_out.sum(dim=DIMS)


def backward_numpy(grad_out, x_hat, weight, inv_std):
    return tuple(t.numpy() for t in SOLVED["batch_norm_backward"](grad_out, x_hat, weight, inv_std))


def backward_from_eq_2_7_with_a_sign_slip(grad_out, x_hat, weight, inv_std):
    m = grad_out.numel() // grad_out.shape[1]
    d_x_hat = per_channel(weight) * grad_out  # eq. (2.4)
    d_var = (d_x_hat * x_hat / per_channel(inv_std)).sum(DIMS, keepdim=True) * -0.5 * per_channel(inv_std) ** 3
    d_mean = (d_x_hat * -per_channel(inv_std)).sum(DIMS, keepdim=True)  # eq. (2.6)
    grad_x = d_x_hat * per_channel(inv_std) - d_var * 2 * (x_hat / per_channel(inv_std)) / m + d_mean / m  # − for +
    return grad_x, (grad_out * x_hat).sum(dim=DIMS), grad_out.sum(dim=DIMS)


def backward_stub(grad_out, x_hat, weight, inv_std):
    raise NotImplementedError("Exercise 2.1: write the body of `batch_norm_backward`, then run the check cell below.")


@exercise("2.1")
def test_backward_reference_passes():
    assert "eq. (2.8)" in assert_passes(checks.check_batch_norm_backward, SOLVED["batch_norm_backward"])


@exercise("2.1")
@pytest.mark.parametrize("wrong, words", [
    (backward_no_mean_path, ["path through μ (eq. (2.6)) is missing", "−γ·s·mean(g)"]),
    (backward_no_variance_path, ["path through σ² (eq. (2.5)) is missing", "γ·s·x̂·mean(g·x̂)"]),
    (backward_direct_only, ["you treated μ and σ² as constants"]),
    (backward_batch_axis_only, ["over (N)", "(0, 2, 3)"]),
    (backward_instance_axes, ["over (H, W) (InstanceNorm's set", "BatchNorm's set"]),
    (backward_divide_by_n, ["each of the two means", "divides by N = 4, the size of axis N (x.shape[0]), instead of "
                                                                   "m = N·H·W = 100"]),
    (backward_sums_not_means, ["each of the two means, mean(g) and mean(g·x̂), is a sum, not a mean"]),
    (backward_no_gamma, ["γ is missing from your dL/dx"]),
    (backward_times_std, ["you multiplied by σ", "inv_std is already 1/√(σ² + ε)"]),
    (backward_variance_sign, ["path through σ² (eq. (2.5)) has the wrong sign"]),
    (backward_dgamma_without_x_hat, ["your dL/dγ is Σ g, which is dL/dβ", "eq. (2.3)"]),
    (backward_dgamma_with_gamma, ["your dL/dγ is γ × Σ g·x̂", "an extra factor γ"]),
    (backward_dbeta_mean, ["your dL/dβ is 1/m × Σ g", "a mean where", ".sum(dim=(0, 2, 3))"]),
    (backward_keepdim_weight, ["keepdim=True kept the reduced axes"]),
    (backward_dgamma_summed_over_batch_only, ["shape (3, 5, 5) but expected (3,)", "sum over the axes (0, 2, 3)"]),
    (backward_swapped, ["your grad_weight (dL/dγ) and grad_bias (dL/dβ) are in each other's places",
                        "Return them in the order (grad_x, grad_weight, grad_bias)"]),
    (backward_two_outputs, ["return three tensors", "a tuple of 2"]),
    (backward_no_return, ["return three tensors", "NoneType"]),
    (backward_in_float32, ["dtype", "float64"]),
    (backward_nan, ["re:NaN|division by zero"]),  # core reads the op that made it (round 6)
    (backward_variance_path_twice, ["path through σ² (eq. (2.5)) is 2", "a factor 2 too many"]),
    (backward_variance_path_from_x_hat_squared, ["x̂·mean(g·x̂²)", "in place of −γ·s·x̂·mean(g·x̂)"]),
    (backward_means_over_every_value, ["over (N, C, H, W) (every value at once)", "(0, 2, 3)"]),
    (backward_divide_by_m_minus_1, ["divides by m − 1 = 99, instead of m = N·H·W = 100", "plain means"]),
    (backward_s_missing_on_the_mean_term, ["path through μ (eq. (2.6)) has the wrong factor in each channel",
                                           "s = 1/√(σ² + ε) is missing"]),
    (backward_variance_term_a_sum, ["path through σ² (eq. (2.5)) is 100 (= m)", "mean(g·x̂), is a sum, not a mean"]),
    (backward_twice_too_large, ["your dL/dx is 2 (= 2) × eq. (2.8) in every term"]),
    (backward_variance_term_scaled, ["path through σ² (eq. (2.5)) is 1.5 × eq. (2.8)'s"]),
    (backward_gamma_squared, ["γ is applied twice in your dL/dx"]),
    (backward_dgamma_over_s, ["your dL/dγ is 1/s × Σ g·x̂", "no s = 1/√(σ² + ε)"]),
    (backward_dgamma_skips_a_row, ["H=W=1", "your values are 0 × the right ones"]),  # the case that names it
    (backward_wrong_order, ["in the order (grad_x, grad_weight, grad_bias)"]),
    (backward_changes_grad_out_in_place, ["changed its input argument number 1 in place"]),
    (backward_numpy, ["got a ndarray, not a torch.Tensor"]),
    (backward_from_eq_2_7_with_a_sign_slip, ["path through σ² (eq. (2.5)) has the wrong sign"]),
])
def test_backward_names_the_mistake(wrong, words):
    assert_diagnoses(checks.check_batch_norm_backward, wrong, *words)


@exercise("2.1")
def test_backward_that_no_case_can_name_gets_the_first_cases_located_difference():
    message = assert_diagnoses(checks.check_batch_norm_backward, backward_dgamma_with_a_leftover_constant,
                               "(N=4, C=3, H=W=5), your grad_weight", "Compare your code with eq. (2.3) term by term")
    assert "largest difference at index" in message


@exercise("2.1")
def test_backward_float32_then_cast_back_is_caught_as_precision():
    def backward(grad_out, x_hat, weight, inv_std):
        grad_x, grad_weight, grad_bias = backward_in_float32(grad_out, x_hat, weight, inv_std)
        return grad_x, grad_weight, grad_bias
    assert_diagnoses(checks.check_batch_norm_backward, backward, "float32 precision", "float64")


@exercise("2.1")
def test_backward_broadcast_error_is_read_with_the_learners_line():
    message = assert_diagnoses(checks.check_batch_norm_backward, backward_gamma_not_viewed, "did not broadcast",
                               "grad_x = weight * inv_std", error=LearnerError)
    assert "3 (= C)" in message and "5 (= H = W)" in message


@exercise("2.1")
def test_backward_stub_passes_through():
    assert_stub_passes_through(checks.check_batch_norm_backward, backward_stub)


# ================================================================================================ Exercise 2.2
Function = SOLVED["BatchNormFunction"]


class FunctionUnbiased(Function):
    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        mean = x.mean(dim=DIMS, keepdim=True)
        inv_std = 1 / torch.sqrt(x.var(dim=DIMS, keepdim=True) + eps)  # torch's default: unbiased
        x_hat = (x - mean) * inv_std
        ctx.save_for_backward(x_hat, weight, inv_std.flatten())
        return x_hat * per_channel(weight) + per_channel(bias)


class FunctionEpsOutside(Function):
    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        mean = x.mean(dim=DIMS, keepdim=True)
        inv_std = 1 / (x.var(dim=DIMS, unbiased=False, keepdim=True).sqrt() + eps)
        x_hat = (x - mean) * inv_std
        ctx.save_for_backward(x_hat, weight, inv_std.flatten())
        return x_hat * per_channel(weight) + per_channel(bias)


def function_over(dims):
    class FunctionOverOtherAxes(Function):
        @staticmethod
        def forward(ctx, x, weight, bias, eps):
            mean = x.mean(dim=dims, keepdim=True)
            inv_std = 1 / torch.sqrt(x.var(dim=dims, unbiased=False, keepdim=True) + eps)
            x_hat = (x - mean) * inv_std
            ctx.save_for_backward(x_hat, weight, inv_std)
            return x_hat * per_channel(weight) + per_channel(bias)
    return FunctionOverOtherAxes


class FunctionGammaOnLastAxis(Function):
    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        mean = x.mean(dim=DIMS, keepdim=True)
        inv_std = 1 / torch.sqrt(x.var(dim=DIMS, unbiased=False, keepdim=True) + eps)
        x_hat = (x - mean) * inv_std
        ctx.save_for_backward(x_hat, weight, inv_std.flatten())
        return x_hat * weight + bias  # a (C,) tensor meets the last axis


class FunctionGammaOnHeight(Function):
    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        mean = x.mean(dim=DIMS, keepdim=True)
        inv_std = 1 / torch.sqrt(x.var(dim=DIMS, unbiased=False, keepdim=True) + eps)
        x_hat = (x - mean) * inv_std
        ctx.save_for_backward(x_hat, weight, inv_std.flatten())
        return x_hat * weight.view(1, 1, -1, 1) + bias


class FunctionNoAffine(Function):
    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        mean = x.mean(dim=DIMS, keepdim=True)
        inv_std = 1 / torch.sqrt(x.var(dim=DIMS, unbiased=False, keepdim=True) + eps)
        x_hat = (x - mean) * inv_std
        ctx.save_for_backward(x_hat, weight, inv_std.flatten())
        return x_hat


class FunctionHardCodedEps(Function):
    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        mean = x.mean(dim=DIMS, keepdim=True)
        inv_std = 1 / torch.sqrt(x.var(dim=DIMS, unbiased=False, keepdim=True) + 1e-5)
        x_hat = (x - mean) * inv_std
        ctx.save_for_backward(x_hat, weight, inv_std.flatten())
        return x_hat * per_channel(weight) + per_channel(bias)


class FunctionNoReturn(Function):
    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        mean = x.mean(dim=DIMS, keepdim=True)
        inv_std = 1 / torch.sqrt(x.var(dim=DIMS, unbiased=False, keepdim=True) + eps)
        ctx.save_for_backward((x - mean) * inv_std, weight, inv_std.flatten())


class FunctionSwappedGradients(Function):
    @staticmethod
    def backward(ctx, grad_out):
        x_hat, weight, inv_std = ctx.saved_tensors
        grad_x, grad_weight, grad_bias = SOLVED["batch_norm_backward"](grad_out, x_hat, weight, inv_std)
        return grad_x, grad_bias, grad_weight, None


class FunctionThreeGradients(Function):
    @staticmethod
    def backward(ctx, grad_out):
        x_hat, weight, inv_std = ctx.saved_tensors
        return SOLVED["batch_norm_backward"](grad_out, x_hat, weight, inv_std)


class FunctionNoneGradient(Function):
    @staticmethod
    def backward(ctx, grad_out):
        x_hat, weight, inv_std = ctx.saved_tensors
        grad_x, grad_weight, _ = SOLVED["batch_norm_backward"](grad_out, x_hat, weight, inv_std)
        return grad_x, grad_weight, None, None


class FunctionWrongBackward(Function):
    @staticmethod
    def backward(ctx, grad_out):
        x_hat, weight, inv_std = ctx.saved_tensors
        grad_x, grad_weight, grad_bias = backward_no_mean_path(grad_out, x_hat, weight, inv_std)
        return grad_x, grad_weight, grad_bias, None


class FunctionSavesX(Function):
    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        mean = x.mean(dim=DIMS, keepdim=True)
        inv_std = 1 / torch.sqrt(x.var(dim=DIMS, unbiased=False, keepdim=True) + eps)
        ctx.save_for_backward(x, weight, inv_std.flatten())  # x where x̂ belongs
        return (x - mean) * inv_std * per_channel(weight) + per_channel(bias)


class FunctionSavesStd(Function):
    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        mean = x.mean(dim=DIMS, keepdim=True)
        std = torch.sqrt(x.var(dim=DIMS, unbiased=False, keepdim=True) + eps)
        x_hat = (x - mean) / std
        ctx.save_for_backward(x_hat, weight, std.flatten())  # σ where 1/σ belongs
        return x_hat * per_channel(weight) + per_channel(bias)


class FunctionSavesKeepdimInvStd(Function):
    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        mean = x.mean(dim=DIMS, keepdim=True)
        inv_std = 1 / torch.sqrt(x.var(dim=DIMS, unbiased=False, keepdim=True) + eps)
        x_hat = (x - mean) * inv_std
        ctx.save_for_backward(x_hat, weight, inv_std)  # (1, C, 1, 1), not (C,)
        return x_hat * per_channel(weight) + per_channel(bias)


class FunctionInFloat32(Function):
    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        x32 = x.float()
        mean = x32.mean(dim=DIMS, keepdim=True)
        inv_std = 1 / torch.sqrt(x32.var(dim=DIMS, unbiased=False, keepdim=True) + eps)
        x_hat = ((x32 - mean) * inv_std).to(x.dtype)
        ctx.save_for_backward(x_hat, weight, inv_std.flatten().to(x.dtype))
        return x_hat * per_channel(weight) + per_channel(bias)


class FunctionMeanOverEveryValue(Function):
    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        inv_std = 1 / torch.sqrt(x.var(dim=DIMS, unbiased=False, keepdim=True) + eps)
        x_hat = (x - x.mean()) * inv_std
        ctx.save_for_backward(x_hat, weight, inv_std.flatten())
        return x_hat * per_channel(weight) + per_channel(bias)


class FunctionStdPlusEps(Function):
    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        inv_std = 1 / (x.std(dim=DIMS, unbiased=False, keepdim=True) + eps)
        x_hat = (x - x.mean(DIMS, keepdim=True)) * inv_std
        ctx.save_for_backward(x_hat, weight, inv_std.flatten())
        return x_hat * per_channel(weight) + per_channel(bias)


class FunctionNoSquareRoot(Function):
    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        inv_std = 1 / (x.var(dim=DIMS, unbiased=False, keepdim=True) + eps)
        x_hat = (x - x.mean(DIMS, keepdim=True)) * inv_std
        ctx.save_for_backward(x_hat, weight, inv_std.flatten())
        return x_hat * per_channel(weight) + per_channel(bias)


class FunctionVarianceOverBatchOnly(Function):
    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        inv_std = 1 / torch.sqrt(x.var(dim=0, unbiased=False, keepdim=True) + eps)
        x_hat = (x - x.mean(DIMS, keepdim=True)) * inv_std
        ctx.save_for_backward(x_hat, weight, inv_std.mean(dim=DIMS))
        return x_hat * per_channel(weight) + per_channel(bias)


class FunctionEpsAfterDivision(Function):
    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        std = x.var(dim=DIMS, unbiased=False, keepdim=True).sqrt()
        x_hat = (x - x.mean(DIMS, keepdim=True)) / std + eps
        ctx.save_for_backward(x_hat, weight, (1 / std).flatten())
        return x_hat * per_channel(weight) + per_channel(bias)


class FunctionSavesXTimesS(Function):
    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        inv_std = 1 / torch.sqrt(x.var(dim=DIMS, unbiased=False, keepdim=True) + eps)
        ctx.save_for_backward(x * inv_std, weight, inv_std.flatten())
        return (x - x.mean(DIMS, keepdim=True)) * inv_std * per_channel(weight) + per_channel(bias)


class FunctionBackwardGammaTwice(Function):
    @staticmethod
    def backward(ctx, grad_out):
        x_hat, weight, inv_std = ctx.saved_tensors
        grad_x, grad_weight, grad_bias = SOLVED["batch_norm_backward"](grad_out * per_channel(weight), x_hat, weight,
                                                                       inv_std)
        return grad_x, grad_weight, grad_bias, None


class FunctionGradientForEps(Function):
    @staticmethod
    def backward(ctx, grad_out):
        x_hat, weight, inv_std = ctx.saved_tensors
        return *SOLVED["batch_norm_backward"](grad_out, x_hat, weight, inv_std), torch.zeros(())


class FunctionStub(Function):
    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        raise NotImplementedError("Exercise 2.2: write the body of `BatchNormFunction.forward`, then run the check "
                                  "cell below.")


@exercise("2.2")
def test_function_reference_passes():
    assert "gradcheck passes" in assert_passes(checks.check_batch_norm_function, Function)


@exercise("2.2")
@pytest.mark.parametrize("wrong, words", [
    (FunctionUnbiased, ["unbiased variance", "unbiased=False"]),
    (FunctionEpsOutside, ["ε is outside the square root"]),
    (function_over((0,)), ["over (N)", "the batch axis only", "dim=(0, 2, 3)"]),
    (function_over((1, 2, 3)), ["LayerNorm's set", "dim=(0, 2, 3)"]),
    (function_over((2, 3)), ["InstanceNorm's set", "dim=(0, 2, 3)"]),
    (FunctionNoAffine, ["γ and β are not applied"]),
    (FunctionHardCodedEps, ["your ε is 1e-05", "should be 0.1"]),
    (FunctionNoReturn, ["got None", "return"]),
    (FunctionSwappedGradients, ["are in each other's places", "(grad_x, grad_weight, grad_bias, None)"]),
    (FunctionNoneGradient, ["backward returned None for dL/dβ"]),
    (FunctionWrongBackward, ["path through μ (eq. (2.6)) is missing"]),
    (FunctionSavesX, ["used x where eq. (2.8) has x̂"]),
    (FunctionSavesStd, ["you multiplied by σ"]),
    (FunctionInFloat32, ["float32 precision"]),
    (FunctionMeanOverEveryValue, ["your mean μ is over (N, C, H, W) (every value at once)", "dim=(0, 2, 3)"]),
    (FunctionStdPlusEps, ["small inputs", "ε is outside the square root"]),
    (FunctionNoSquareRoot, ["the square root is missing"]),
    (FunctionVarianceOverBatchOnly, ["your variance σ² is computed over (N) (the batch axis only"]),
    (FunctionEpsAfterDivision, ["small inputs", "ε is missing under the square root (or far too small)"]),
    (FunctionSavesXTimesS, ["used x·s where eq. (2.8) has x̂ = (x − μ)·s"]),
    (FunctionBackwardGammaTwice, ["γ is applied twice in your dL/dx"]),
])
def test_function_names_the_mistake(wrong, words):
    assert_diagnoses(checks.check_batch_norm_function, wrong, *words)


@exercise("2.2")
@pytest.mark.parametrize("wrong, words", [
    (FunctionThreeGradients, ["incorrect number of gradients", "one gradient per input of forward"]),
    (FunctionGammaOnHeight, ["did not broadcast", "weight.view(1, 1, -1, 1)"]),
    (FunctionGammaOnLastAxis, ["did not broadcast", "3 (= C)", "5 (= H = W)", "x_hat * weight + bias"]),
    (FunctionSavesKeepdimInvStd, ["BatchNormFunction.backward raised", "did not broadcast", "3 (= C)"]),
    (FunctionGradientForEps, ["gradient different than None at position 4", "None in the place of each input"]),
])
def test_function_exceptions_are_read(wrong, words):
    assert_diagnoses(checks.check_batch_norm_function, wrong, *words, error=LearnerError)


@exercise("2.2")
def test_function_with_gamma_on_the_last_axis_where_it_broadcasts(monkeypatch):
    monkeypatch.setattr(checks.backward, "FUNCTION_CASES", checks.FUNCTION_CASES[1:2])  # C = W
    assert_diagnoses(checks.check_batch_norm_function, FunctionGammaOnLastAxis, "lined up with the W axis",
                     "(1, C, 1, 1)")


@exercise("2.2")
def test_function_that_is_not_an_autograd_function_is_told():
    def batch_norm(x, weight, bias, eps):
        return x
    assert_diagnoses(checks.check_batch_norm_function, batch_norm, "subclasses torch.autograd.Function")


@exercise("2.2")
def test_function_with_a_wrong_gradient_under_gradcheck_only_is_caught(monkeypatch):
    monkeypatch.setattr(checks.backward, "FUNCTION_CASES", ())  # only gradcheck is left
    assert_diagnoses(checks.check_batch_norm_function, FunctionWrongBackward, "gradcheck disagrees")


@exercise("2.2")
def test_function_stub_passes_through():
    assert_stub_passes_through(checks.check_batch_norm_function, FunctionStub)


# ================================================================================================ Exercise 2.3
Module = SOLVED["BatchNorm2d"]


class ModuleWithUpdate(Module):
    """The given class with the update written by the learner in `update(x, factor)` (under no_grad)."""

    def factor(self):
        return 1 / self.num_batches_tracked.item() if self.momentum is None else self.momentum

    def update(self, x):
        self.num_batches_tracked += 1
        a = self.factor()
        self.running_mean.mul_(1 - a).add_(a * x.mean(dim=DIMS))
        self.running_var.mul_(1 - a).add_(a * x.var(dim=DIMS, unbiased=True))

    def forward(self, x):
        if not self.training:
            return super().forward(x)
        with torch.no_grad():
            self.update(x)
        return Function.apply(x, self.weight, self.bias, self.eps)


class ModuleBackwards(ModuleWithUpdate):
    def factor(self):
        return 1 - super().factor()


class ModuleMomentumHardCoded(ModuleWithUpdate):
    def factor(self):
        return 0.1


class ModuleMomentumNoneAsDefault(ModuleWithUpdate):
    def factor(self):
        return self.momentum if self.momentum is not None else 0.1


class ModuleCounterAfter(ModuleWithUpdate):
    def update(self, x):
        a = 1 / (self.num_batches_tracked.item() + 1e-12) if self.momentum is None else self.momentum
        a = min(a, 1.0)
        self.running_mean.mul_(1 - a).add_(a * x.mean(dim=DIMS))
        self.running_var.mul_(1 - a).add_(a * x.var(dim=DIMS, unbiased=True))
        self.num_batches_tracked += 1


class ModuleBiasedRunningVar(ModuleWithUpdate):
    def update(self, x):
        self.num_batches_tracked += 1
        a = self.factor()
        self.running_mean.mul_(1 - a).add_(a * x.mean(dim=DIMS))
        self.running_var.mul_(1 - a).add_(a * x.var(dim=DIMS, unbiased=False))


class ModuleRunningStd(ModuleWithUpdate):
    def update(self, x):
        self.num_batches_tracked += 1
        a = self.factor()
        self.running_mean.mul_(1 - a).add_(a * x.mean(dim=DIMS))
        self.running_var.mul_(1 - a).add_(a * x.std(dim=DIMS))


class ModuleReplacesRunning(ModuleWithUpdate):
    def update(self, x):
        self.num_batches_tracked += 1
        self.running_mean.copy_(x.mean(dim=DIMS))
        self.running_var.copy_(x.var(dim=DIMS))


class ModuleFrozen(ModuleWithUpdate):
    def update(self, x):
        self.num_batches_tracked += 1


class ModuleNoCounter(ModuleWithUpdate):
    def update(self, x):
        a = 0.1 if self.momentum is None else self.momentum
        self.running_mean.mul_(1 - a).add_(a * x.mean(dim=DIMS))
        self.running_var.mul_(1 - a).add_(a * x.var(dim=DIMS, unbiased=True))


class ModuleInGraph(ModuleWithUpdate):
    def forward(self, x):
        if self.training:
            self.num_batches_tracked += 1
            a = self.factor()
            self.running_mean = (1 - a) * self.running_mean + a * x.mean(dim=DIMS)  # recorded by autograd
            self.running_var = (1 - a) * self.running_var + a * x.var(dim=DIMS)
            return Function.apply(x, self.weight, self.bias, self.eps)
        return super().forward(x)


class ModuleKeepdimBuffers(ModuleWithUpdate):
    def update(self, x):
        self.num_batches_tracked += 1
        a = self.factor()
        self.running_mean = (1 - a) * self.running_mean + a * x.mean(dim=DIMS, keepdim=True)
        self.running_var = (1 - a) * self.running_var + a * x.var(dim=DIMS, keepdim=True)


class ModuleUpdatesInEval(ModuleWithUpdate):
    def forward(self, x):
        with torch.no_grad():
            self.update(x)
        if self.training:
            return Function.apply(x, self.weight, self.bias, self.eps)
        return super().forward(x)


class ModuleBatchStatsInEval(ModuleWithUpdate):
    def forward(self, x):
        if self.training:
            with torch.no_grad():
                self.update(x)
        return Function.apply(x, self.weight, self.bias, self.eps)


class ModuleEvalEpsOutside(ModuleWithUpdate):
    def forward(self, x):
        if self.training:
            return super().forward(x)
        std = per_channel(self.running_var).sqrt() + self.eps
        return (x - per_channel(self.running_mean)) / std * per_channel(self.weight) + per_channel(self.bias)


class ModuleEvalBatchVariance(ModuleWithUpdate):
    def forward(self, x):
        if self.training:
            return super().forward(x)
        var = x.var(dim=DIMS, unbiased=False, keepdim=True)
        x_hat = (x - per_channel(self.running_mean)) / torch.sqrt(var + self.eps)
        return x_hat * per_channel(self.weight) + per_channel(self.bias)


class ModuleRunningStatsInTraining(ModuleWithUpdate):
    def forward(self, x):
        if self.training:
            with torch.no_grad():
                self.update(x)
        x_hat = (x - per_channel(self.running_mean)) / torch.sqrt(per_channel(self.running_var) + self.eps)
        return x_hat * per_channel(self.weight) + per_channel(self.bias)


class ModuleCountsEval(ModuleWithUpdate):
    def forward(self, x):
        if not self.training:
            self.num_batches_tracked += 1
        return super().forward(x)


class ModuleMomentumSquared(ModuleWithUpdate):
    def factor(self):
        return super().factor() ** 2


class ModuleRunningVarAboutRunningMean(ModuleWithUpdate):
    def update(self, x):
        self.num_batches_tracked += 1
        a = self.factor()
        self.running_mean.mul_(1 - a).add_(a * x.mean(dim=DIMS))
        m = x.numel() // x.shape[1]
        deviation = x - per_channel(self.running_mean)  # about the running mean, not the batch's
        self.running_var.mul_(1 - a).add_(a * (deviation * deviation).sum(dim=DIMS) / (m - 1))


class ModuleScalarRunningMean(ModuleWithUpdate):
    def update(self, x):
        self.num_batches_tracked += 1
        a = self.factor()
        self.running_mean.mul_(1 - a).add_(a * x.mean())
        self.running_var.mul_(1 - a).add_(a * x.var(dim=DIMS))


class ModuleCountsTwice(ModuleWithUpdate):
    def forward(self, x):
        if self.training:
            self.num_batches_tracked += 1
        return super().forward(x)


class ModuleEvalNoBeta(ModuleWithUpdate):
    def forward(self, x):
        if self.training:
            return super().forward(x)
        return (x - per_channel(self.running_mean)) / torch.sqrt(per_channel(self.running_var) + self.eps) * \
            per_channel(self.weight)


class ModuleEvalNoGamma(ModuleWithUpdate):
    def forward(self, x):
        if self.training:
            return super().forward(x)
        return (x - per_channel(self.running_mean)) / torch.sqrt(per_channel(self.running_var) + self.eps) + \
            per_channel(self.bias)


class ModuleEvalUnbiasedToBiased(ModuleWithUpdate):
    def forward(self, x):
        if self.training:
            return super().forward(x)
        m = 4 * 5 * 5  # the training batches' N·H·W, hard-coded
        var = per_channel(self.running_var) * (m - 1) / m
        return (x - per_channel(self.running_mean)) / torch.sqrt(var + self.eps) * per_channel(self.weight) + \
            per_channel(self.bias)


class ModuleEvalEpsMissing(ModuleWithUpdate):
    def forward(self, x):
        if self.training:
            return super().forward(x)
        return (x - per_channel(self.running_mean)) / per_channel(self.running_var).sqrt() * \
            per_channel(self.weight) + per_channel(self.bias)


class ModuleStub(Module):
    def forward(self, x):
        raise NotImplementedError("Exercise 2.3: write the body of `BatchNorm2d.forward`, then run the check cell "
                                  "below.")


@exercise("2.3")
def test_module_reference_passes():
    assert "num_batches_tracked" in assert_passes(checks.check_batch_norm_module, Module)


@exercise("2.3")
def test_module_reference_with_the_update_written_out_passes():
    assert_passes(checks.check_batch_norm_module, ModuleWithUpdate)


@exercise("2.3")
@pytest.mark.parametrize("wrong, words", [
    (ModuleBackwards, ["momentum is applied backwards", "moved 0.9 of the way"]),
    (ModuleMomentumHardCoded, ["momentum = 0.3", "moved 0.1 of the way", "not a hard-coded 0.1"]),
    (ModuleMomentumNoneAsDefault, ["momentum=None, a cumulative average", "moved 0.1"]),
    (ModuleCounterAfter, ["momentum=None", "increment"]),
    (ModuleBiasedRunningVar, ["averages the biased batch variance", "unbiased=True"]),
    (ModuleRunningStd, ["averages the batch standard deviation"]),
    (ModuleReplacesRunning, ["moved 1 of the way", "you replaced the running statistic by the batch's"]),
    (ModuleFrozen, ["running_mean did not change at training step 1"]),
    (ModuleNoCounter, ["num_batches_tracked is 0 but should be 1"]),
    (ModuleInGraph, ["part of the autograd graph", "torch.no_grad()"]),
    (ModuleKeepdimBuffers, ["has shape (1, 3, 1, 3) but should keep its shape (3,)", "without keepdim=True"]),
    (ModuleUpdatesInEval, ["this eval batch had already updated", "only when self.training"]),
    (ModuleBatchStatsInEval, ["this batch's mean and variance", "eval mode uses running_mean and running_var"]),
    (ModuleEvalEpsOutside, ["ε is outside the square root", "√(running_var + ε)"]),
    (ModuleEvalBatchVariance, ["your variance is this batch's mean and variance"]),
    (ModuleRunningStatsInTraining, ["running mean", "in training mode"]),
    (ModuleCountsEval, ["num_batches_tracked is 4 but should be 3", "not in eval mode"]),
    (ModuleMomentumSquared, ["moved 0.01 of the way", "with momentum = 0.1 moves it by α = 0.1"]),
    (ModuleRunningVarAboutRunningMean, ["if your α is 0.1", "the batch statistic your running_var averages in",
                                        "x.var(dim=(0, 2, 3), unbiased=True)"]),
    (ModuleScalarRunningMean, ["averages in the mean of every value of the batch", "one number for every channel"]),
    (ModuleCountsTwice, ["num_batches_tracked is 2 but should be 1"]),
    (ModuleEvalNoBeta, ["eval mode", "β is not added"]),
    (ModuleEvalNoGamma, ["eval mode", "γ is not applied"]),
    (ModuleEvalUnbiasedToBiased, ["your variance is 0.99 (= (m − 1)/m) × running_var"]),
    (ModuleEvalEpsMissing, ["eps=0.5", "ε is missing", "running_var"]),
])
def test_module_names_the_mistake(wrong, words):
    assert_diagnoses(checks.check_batch_norm_module, wrong, *words)


@exercise("2.3")
def test_module_with_a_wrong_function_points_to_it():
    class ModuleWithFunctionOverBatchOnly(ModuleWithUpdate):
        def forward(self, x):
            if self.training:
                with torch.no_grad():
                    self.update(x)
                return function_over((0,)).apply(x, self.weight, self.bias, self.eps)
            return super().forward(x)
    assert_diagnoses(checks.check_batch_norm_module, ModuleWithFunctionOverBatchOnly, "training step 1",
                     "the batch axis only")


@exercise("2.3")
def test_module_whose_buffer_was_deleted_is_told():
    class ModuleWithoutRunningVar(ModuleWithUpdate):
        def update(self, x):
            self.num_batches_tracked += 1
            a = self.factor()
            self.running_mean.mul_(1 - a).add_(a * x.mean(dim=DIMS))
            self.running_var = None
    assert_diagnoses(checks.check_batch_norm_module, ModuleWithoutRunningVar, "self.running_var is gone")


@exercise("2.3")
def test_module_whose_counter_was_deleted_is_told():
    class ModuleWithoutCounter(ModuleWithUpdate):
        def update(self, x):
            del self.num_batches_tracked
            self.num_batches_tracked = None
            a = 0.1 if self.momentum is None else self.momentum
            self.running_mean.mul_(1 - a).add_(a * x.mean(dim=DIMS))
            self.running_var.mul_(1 - a).add_(a * x.var(dim=DIMS))
    assert_diagnoses(checks.check_batch_norm_module, ModuleWithoutCounter, "self.num_batches_tracked is gone")


@exercise("2.3")
def test_module_with_buffers_of_the_wrong_shape_from_init_is_told():
    class ModuleKeepdimInit(ModuleWithUpdate):
        def __init__(self, num_features, eps=1e-5, momentum=0.1):
            super().__init__(num_features, eps, momentum)
            self.running_mean = torch.zeros(1, num_features, 1, 1)
    assert_diagnoses(checks.check_batch_norm_module, ModuleKeepdimInit, "doesn't match the broadcast shape",
                     "self.running_mean.mul_(1 - a)", error=LearnerError)


@exercise("2.3")
def test_module_that_is_not_a_module_is_told():
    def batch_norm(num_features, eps=1e-5, momentum=0.1):
        return lambda x: x
    assert_diagnoses(checks.check_batch_norm_module, batch_norm, "not an nn.Module")


@exercise("2.3")
def test_module_stub_passes_through():
    assert_stub_passes_through(checks.check_batch_norm_module, ModuleStub)


# ================================================================================================ Exercise 2.4
LayerNorm = SOLVED["LayerNorm"]


def layer_norm_forward(x, dims, eps, weight, bias, *, unbiased=False, eps_outside=False):
    mean = x.mean(dim=dims, keepdim=True)
    var = x.var(dim=dims, unbiased=unbiased, keepdim=True)
    std = var.sqrt() + eps if eps_outside else torch.sqrt(var + eps)
    return (x - mean) / std * weight + bias


class LayerNormUnbiased(LayerNorm):
    def forward(self, x):
        dims = tuple(range(-len(self.normalized_shape), 0))
        return layer_norm_forward(x, dims, self.eps, self.weight, self.bias, unbiased=True)


class LayerNormEpsOutside(LayerNorm):
    def forward(self, x):
        dims = tuple(range(-len(self.normalized_shape), 0))
        return layer_norm_forward(x, dims, self.eps, self.weight, self.bias, eps_outside=True)


class LayerNormLastAxisOnly(LayerNorm):
    def forward(self, x):
        return layer_norm_forward(x, -1, self.eps, self.weight, self.bias)


class LayerNormBatchAxis(LayerNorm):
    def forward(self, x):
        return layer_norm_forward(x, 0, self.eps, self.weight, self.bias)


class LayerNormNoAffine(LayerNorm):
    def forward(self, x):
        dims = tuple(range(-len(self.normalized_shape), 0))
        return (x - x.mean(dims, keepdim=True)) / torch.sqrt(x.var(dims, unbiased=False, keepdim=True) + self.eps)


class LayerNormSwappedAffine(LayerNorm):
    def forward(self, x):
        dims = tuple(range(-len(self.normalized_shape), 0))
        return layer_norm_forward(x, dims, self.eps, self.bias, self.weight)


class LayerNormHardCodedEps(LayerNorm):
    def forward(self, x):
        dims = tuple(range(-len(self.normalized_shape), 0))
        return layer_norm_forward(x, dims, 1e-5, self.weight, self.bias)


class LayerNormDetachedStatistics(LayerNorm):
    def forward(self, x):
        dims = tuple(range(-len(self.normalized_shape), 0))
        mean = x.mean(dims, keepdim=True).detach()
        var = x.var(dims, unbiased=False, keepdim=True).detach()
        return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias


class LayerNormDetachedMean(LayerNorm):
    def forward(self, x):
        dims = tuple(range(-len(self.normalized_shape), 0))
        mean = x.mean(dims, keepdim=True).detach()
        var = x.var(dims, unbiased=False, keepdim=True)
        return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias


class LayerNormInFloat32(LayerNorm):
    def forward(self, x):
        dims = tuple(range(-len(self.normalized_shape), 0))
        y = layer_norm_forward(x.float(), dims, self.eps, self.weight.float(), self.bias.float())
        return y.to(x.dtype)


class LayerNormWeightLastAxis(LayerNorm):
    def __init__(self, normalized_shape, eps=1e-5):
        super().__init__(normalized_shape, eps)
        self.weight = nn.Parameter(torch.ones(self.normalized_shape[-1:]))
        self.bias = nn.Parameter(torch.zeros(self.normalized_shape[-1:]))


class LayerNormWeightInit(LayerNorm):
    def __init__(self, normalized_shape, eps=1e-5):
        super().__init__(normalized_shape, eps)
        self.weight = nn.Parameter(torch.randn(self.normalized_shape))


class LayerNormPlainTensors(LayerNorm):
    def __init__(self, normalized_shape, eps=1e-5):
        super().__init__(normalized_shape, eps)
        del self.weight, self.bias
        self.weight, self.bias = torch.ones(self.normalized_shape), torch.zeros(self.normalized_shape)


class LayerNormLeadingAxes(LayerNorm):
    def forward(self, x):
        dims = tuple(range(len(self.normalized_shape)))  # the first axes, not the last
        return layer_norm_forward(x, dims, self.eps, self.weight, self.bias)


class LayerNormVarianceAboutZero(LayerNorm):
    def forward(self, x):
        dims = tuple(range(-len(self.normalized_shape), 0))
        mean_square = (x * x).mean(dims, keepdim=True)
        return (x - x.mean(dims, keepdim=True)) / torch.sqrt(mean_square + self.eps) * self.weight + self.bias


class LayerNormVarianceOverEverything(LayerNorm):
    def forward(self, x):
        dims = tuple(range(-len(self.normalized_shape), 0))
        return (x - x.mean(dims, keepdim=True)) / torch.sqrt(torch.var(x) + self.eps) * self.weight + self.bias


class LayerNormNotCentred(LayerNorm):
    def forward(self, x):
        dims = tuple(range(-len(self.normalized_shape), 0))
        return x / torch.sqrt(x.var(dims, unbiased=False, keepdim=True) + self.eps) * self.weight + self.bias


class LayerNormMedian(LayerNorm):
    def forward(self, x):
        dims = tuple(range(-len(self.normalized_shape), 0))
        flat = x.flatten(-len(dims))
        median = flat.median(-1, keepdim=True).values.reshape(*x.shape[:-len(dims)], *([1] * len(dims)))
        return (x - median) / torch.sqrt(x.var(dims, unbiased=False, keepdim=True) + self.eps) * self.weight + self.bias


class LayerNormGammaInside(LayerNorm):
    def forward(self, x):
        dims = tuple(range(-len(self.normalized_shape), 0))
        x = x * self.weight
        return (x - x.mean(dims, keepdim=True)) / torch.sqrt(x.var(dims, unbiased=False, keepdim=True) + self.eps) + \
            self.bias


class LayerNormBetaTwice(LayerNorm):
    def forward(self, x):
        return super().forward(x) + self.bias


class LayerNormWithoutKeepdim(LayerNorm):
    def forward(self, x):
        mean, var = x.mean(-1), x.var(-1, unbiased=False)
        return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias


class LayerNormFunctionalWithoutAffine(LayerNorm):
    def forward(self, x):
        return torch.nn.functional.layer_norm(x, self.normalized_shape, eps=self.eps)


class LayerNormRsqrtWithoutEps(LayerNorm):
    def forward(self, x):
        dims = tuple(range(-len(self.normalized_shape), 0))
        var = x.var(dims, unbiased=False, keepdim=True)
        return (x - x.mean(dims, keepdim=True)) * torch.rsqrt(var) * self.weight + self.bias


class LayerNormNaN(LayerNorm):
    def forward(self, x):
        return super().forward(x) * float("nan")


class LayerNormStub(LayerNorm):
    def __init__(self, normalized_shape, eps=1e-5):
        raise NotImplementedError("Exercise 2.4: write the body of `LayerNorm.__init__`, then run the check cell "
                                  "below.")


class LayerNormNoEpsArgument(nn.Module):
    def __init__(self, normalized_shape):
        super().__init__()


@exercise("2.4")
def test_layer_norm_reference_passes():
    assert_passes(checks.check_layer_norm, LayerNorm)


@exercise("2.4")
@pytest.mark.parametrize("wrong, words", [
    (LayerNormUnbiased, ["the unbiased variance", "unbiased=False"]),
    (LayerNormEpsOutside, ["ε is outside the square root"]),
    (LayerNormLastAxisOnly, ["the last axis only", "the last len(normalized_shape) axes"]),
    (LayerNormBatchAxis, ["the batch axis", "LayerNorm's set"]),
    (LayerNormNoAffine, ["γ and β are not applied"]),
    (LayerNormSwappedAffine, ["γ and β are swapped"]),
    (LayerNormHardCodedEps, ["ε is missing under the square root (or far too small)", "ε = 0.1"]),
    (LayerNormDetachedStatistics, ["you treated μ and σ² as constants", ".detach()"]),
    (LayerNormDetachedMean, ["path through μ (eq. (2.6)) is missing", ".detach()"]),
    (LayerNormInFloat32, ["float32 precision"]),
    (LayerNormWeightLastAxis, ["has shape (4,) but should have (3, 4, 4)", "per element of normalized_shape"]),
    (LayerNormWeightInit, ["should start at ones"]),
    (LayerNormPlainTensors, ["a plain tensor, not an nn.Parameter"]),
    (LayerNormNaN, ["NaN"]),
    (LayerNormLeadingAxes, ["your mean μ and variance σ² are computed over (B) (the batch axis)", "LayerNorm's set"]),
    (LayerNormVarianceAboutZero, ["the mean square mean(x²), about 0 rather than about μ"]),
    (LayerNormVarianceOverEverything, ["your variance σ² is computed over (B, T, D)", "the unbiased variance"]),
    (LayerNormNotCentred, ["nothing is subtracted from x"]),
    (LayerNormMedian, ["the value you subtract from x is not its mean over (D)"]),
    (LayerNormGammaInside, ["you apply γ to x before normalising"]),
    (LayerNormBetaTwice, ["your β acts as 2 × β: β is applied twice"]),
    (LayerNormFunctionalWithoutAffine, ["γ and β are not applied"]),
    (LayerNormRsqrtWithoutEps, ["small inputs", "ε is missing under the square root (or far too small)"]),
])
def test_layer_norm_names_the_mistake(wrong, words):
    assert_diagnoses(checks.check_layer_norm, wrong, *words)


@exercise("2.4")
def test_layer_norm_broadcast_error_is_read_with_names():
    message = assert_diagnoses(checks.check_layer_norm, LayerNormWithoutKeepdim, "did not broadcast", "8 (= D)",
                               "5 (= T)", error=LearnerError)
    assert "return (x - mean) / torch.sqrt(var + self.eps)" in message


@exercise("2.4")
def test_layer_norm_without_the_eps_argument_is_read():
    assert_diagnoses(checks.check_layer_norm, LayerNormNoEpsArgument, "unexpected keyword argument 'eps'",
                     error=LearnerError)


@exercise("2.4")
def test_layer_norm_stub_passes_through():
    assert_stub_passes_through(checks.check_layer_norm, LayerNormStub)


# ================================================================================================ Exercise 2.5
InstanceNorm = SOLVED["InstanceNorm2d"]


def instance_forward(module, x, dims=(2, 3), unbiased=False, eps_outside=False):
    mean = x.mean(dims, keepdim=True)
    var = x.var(dims, unbiased=unbiased, keepdim=True)
    x_hat = (x - mean) / (var.sqrt() + module.eps if eps_outside else torch.sqrt(var + module.eps))
    return x_hat * per_channel(module.weight) + per_channel(module.bias)


class InstanceBatchAxes(InstanceNorm):
    def forward(self, x):
        return instance_forward(self, x, dims=DIMS)


class InstanceLayerAxes(InstanceNorm):
    def forward(self, x):
        return instance_forward(self, x, dims=(1, 2, 3))


class InstanceHeightOnly(InstanceNorm):
    def forward(self, x):
        return instance_forward(self, x, dims=2)


class InstanceUnbiased(InstanceNorm):
    def forward(self, x):
        return instance_forward(self, x, unbiased=True)


class InstanceEpsOutside(InstanceNorm):
    def forward(self, x):
        return instance_forward(self, x, eps_outside=True)


class InstanceNoAffine(InstanceNorm):
    def forward(self, x):
        return (x - x.mean((2, 3), keepdim=True)) / torch.sqrt(x.var((2, 3), unbiased=False, keepdim=True) + self.eps)


class InstanceNoBeta(InstanceNorm):
    def forward(self, x):
        return instance_forward(self, x) - per_channel(self.bias)


class InstanceRunningStatsInEval(InstanceNorm):
    def forward(self, x):
        if self.training:
            return instance_forward(self, x)
        x_hat = x / (1 + self.eps) ** 0.5  # running_mean 0, running_var 1, never updated
        return x_hat * per_channel(self.weight) + per_channel(self.bias)


class InstanceGammaOnLastAxis(InstanceNorm):
    def forward(self, x):
        x_hat = (x - x.mean((2, 3), keepdim=True)) / torch.sqrt(x.var((2, 3), unbiased=False, keepdim=True) + self.eps)
        return x_hat * self.weight + self.bias


class InstanceNoBias(InstanceNorm):
    def __init__(self, num_features, eps=1e-5):
        super().__init__(num_features, eps)
        del self.bias

    def forward(self, x):
        return instance_forward(self, x)


class InstanceKeepdimParameters(InstanceNorm):
    def __init__(self, num_features, eps=1e-5):
        super().__init__(num_features, eps)
        self.weight = nn.Parameter(torch.ones(1, num_features, 1, 1))
        self.bias = nn.Parameter(torch.zeros(1, num_features, 1, 1))


class InstanceMeanOverWidthOnly(InstanceNorm):
    def forward(self, x):
        mean, var = x.mean(3, keepdim=True), x.var((2, 3), unbiased=False, keepdim=True)
        return (x - mean) / torch.sqrt(var + self.eps) * per_channel(self.weight) + per_channel(self.bias)


class InstanceFirstExampleStatistics(InstanceNorm):
    def forward(self, x):
        mean, var = x[:1].mean((2, 3), keepdim=True), x[:1].var((2, 3), unbiased=False, keepdim=True)
        return (x - mean) / torch.sqrt(var + self.eps) * per_channel(self.weight) + per_channel(self.bias)


class InstanceDetachedScale(InstanceNorm):
    def forward(self, x):
        mean, var = x.mean((2, 3), keepdim=True), x.var((2, 3), unbiased=False, keepdim=True)
        return (x - mean) * torch.rsqrt(var + self.eps).detach() * per_channel(self.weight) + per_channel(self.bias)


class InstanceEvalWithoutGraph(InstanceNorm):
    def forward(self, x):
        if self.training:
            return super().forward(x)
        with torch.no_grad():
            return super().forward(x)


class InstanceStub(InstanceNorm):
    def forward(self, x):
        raise NotImplementedError("Exercise 2.5: write the body of `InstanceNorm2d.forward`, then run the check cell "
                                  "below.")


@exercise("2.5")
def test_instance_norm_reference_passes():
    assert_passes(checks.check_instance_norm, InstanceNorm)


@exercise("2.5")
@pytest.mark.parametrize("wrong, words", [
    (InstanceBatchAxes, ["BatchNorm's set", "dim=(2, 3)"]),
    (InstanceLayerAxes, ["LayerNorm's set", "dim=(2, 3)"]),
    (InstanceHeightOnly, ["over (H)", "dim=(2, 3)"]),
    (InstanceUnbiased, ["the unbiased variance"]),
    (InstanceEpsOutside, ["ε is outside the square root"]),
    (InstanceNoAffine, ["γ and β are not applied"]),
    (InstanceNoBeta, ["β is not added"]),
    (InstanceRunningStatsInEval, ["eval mode differs from training mode", "each example's own statistics"]),
    (InstanceGammaOnLastAxis, ["lined up with the W axis", "(1, C, 1, 1)"]),
    (InstanceNoBias, ["`self.bias` (β) is missing"]),
    (InstanceKeepdimParameters, ["shape (1, 4, 1, 1) but should have (4,)", "one γ and one β per channel"]),
    (InstanceMeanOverWidthOnly, ["your mean μ is over (W)", "dim=(2, 3)"]),
    (InstanceFirstExampleStatistics, ["your output for example 1 changes when example 0"]),
    (InstanceDetachedScale, ["path through σ² (eq. (2.5)) is missing", ".detach()"]),
    (InstanceEvalWithoutGraph, ["eval mode", "inside the `with torch.no_grad():` block"]),
])
def test_instance_norm_names_the_mistake(wrong, words):
    assert_diagnoses(checks.check_instance_norm, wrong, *words)


@exercise("2.5")
def test_instance_norm_stub_passes_through():
    assert_stub_passes_through(checks.check_instance_norm, InstanceStub)


# ================================================================================================ Exercise 2.6
GroupNorm = SOLVED["GroupNorm"]


def grouped_forward(module, x, *, groups=None, layout="blocks", dims=(2, 3, 4), unbiased=False, eps_outside=False):
    N, C, H, W = x.shape
    G = groups or module.num_groups
    grouped = x.reshape(N, G, C // G, H, W) if layout == "blocks" else x.reshape(N, C // G, G, H, W)
    mean = grouped.mean(dims, keepdim=True)
    var = grouped.var(dims, unbiased=unbiased, keepdim=True)
    std = var.sqrt() + module.eps if eps_outside else torch.sqrt(var + module.eps)
    x_hat = ((grouped - mean) / std).reshape(N, C, H, W)
    return x_hat * per_channel(module.weight) + per_channel(module.bias)


class GroupInterleaved(GroupNorm):
    def forward(self, x):
        return grouped_forward(self, x, layout="strided", dims=(1, 3, 4))


class GroupSwappedCounts(GroupNorm):
    def forward(self, x):
        return grouped_forward(self, x, groups=x.shape[1] // self.num_groups)


class GroupUnbiased(GroupNorm):
    def forward(self, x):
        return grouped_forward(self, x, unbiased=True)


class GroupEpsOutside(GroupNorm):
    def forward(self, x):
        return grouped_forward(self, x, eps_outside=True)


class GroupMixesBatch(GroupNorm):
    def forward(self, x):
        return grouped_forward(self, x, dims=(0, 2, 3, 4))


class GroupIgnoresGroups(GroupNorm):
    def forward(self, x):
        return grouped_forward(self, x, groups=1)


class GroupPerChannel(GroupNorm):
    def forward(self, x):
        return grouped_forward(self, x, groups=x.shape[1])


class GroupPixelsOnly(GroupNorm):
    def forward(self, x):
        return grouped_forward(self, x, dims=(3, 4))


class GroupNoAffine(GroupNorm):
    def forward(self, x):
        N, C, H, W = x.shape
        grouped = x.reshape(N, self.num_groups, -1)
        x_hat = (grouped - grouped.mean(-1, keepdim=True)) / torch.sqrt(grouped.var(-1, unbiased=False,
                                                                                    keepdim=True) + self.eps)
        return x_hat.reshape(N, C, H, W)


class GroupPerGroupParameters(GroupNorm):
    def __init__(self, num_groups, num_channels, eps=1e-5):
        super().__init__(num_groups, num_channels, eps)
        self.weight = nn.Parameter(torch.ones(num_groups))
        self.bias = nn.Parameter(torch.zeros(num_groups))


class GroupDetachedVariance(GroupNorm):
    def forward(self, x):
        N, C, H, W = x.shape
        grouped = x.reshape(N, self.num_groups, C // self.num_groups, H, W)
        mean = grouped.mean((2, 3, 4), keepdim=True)
        var = grouped.var((2, 3, 4), unbiased=False, keepdim=True).detach()
        x_hat = ((grouped - mean) / torch.sqrt(var + self.eps)).reshape(N, C, H, W)
        return x_hat * per_channel(self.weight) + per_channel(self.bias)


class GroupAcrossGroups(GroupNorm):
    def forward(self, x):
        N, C, H, W = x.shape
        grouped = x.view(N, self.num_groups, -1)
        mean, var = grouped.mean(1, keepdim=True), grouped.var(1, unbiased=False, keepdim=True)  # the wrong axis
        x_hat = ((grouped - mean) / torch.sqrt(var + self.eps)).view(N, C, H, W)
        return x_hat * per_channel(self.weight) + per_channel(self.bias)


class GroupHardCodedEps(GroupNorm):
    def forward(self, x):
        N, C, H, W = x.shape
        grouped = x.reshape(N, self.num_groups, -1)
        x_hat = (grouped - grouped.mean(-1, keepdim=True)) / torch.sqrt(grouped.var(-1, unbiased=False, keepdim=True)
                                                                          + 1e-5)
        return x_hat.reshape(N, C, H, W) * per_channel(self.weight) + per_channel(self.bias)


class GroupGammaInGroupedLayout(GroupNorm):
    def forward(self, x):
        N, C, H, W = x.shape
        G = self.num_groups
        grouped = x.reshape(N, G, C // G, H, W)
        x_hat = (grouped - grouped.mean((2, 3, 4), keepdim=True)) / torch.sqrt(
            grouped.var((2, 3, 4), unbiased=False, keepdim=True) + self.eps)
        weight = self.weight.view(1, C // G, G, 1, 1).transpose(1, 2)  # does not line up with the channels
        bias = self.bias.view(1, C // G, G, 1, 1).transpose(1, 2)
        return (x_hat * weight + bias).reshape(N, C, H, W)


class GroupUnbiasedStdPlusEps(GroupNorm):
    def forward(self, x):
        N, C, H, W = x.shape
        grouped = x.reshape(N, self.num_groups, -1)
        x_hat = (grouped - grouped.mean(-1, keepdim=True)) / (grouped.std(-1, keepdim=True) + self.eps)
        return x_hat.reshape(N, C, H, W) * per_channel(self.weight) + per_channel(self.bias)


class GroupNotReshapedBack(GroupNorm):
    def forward(self, x):
        N, C, H, W = x.shape
        grouped = x.reshape(N, self.num_groups, C // self.num_groups, H, W)
        return (grouped - grouped.mean((2, 3, 4), keepdim=True)) / torch.sqrt(
            grouped.var((2, 3, 4), unbiased=False, keepdim=True) + self.eps)


class GroupWrongDim(GroupNorm):
    def forward(self, x):
        N, C, H, W = x.shape
        grouped = x.reshape(N, self.num_groups, C // self.num_groups, H, W)
        mean = grouped.mean((2, 3, 4, 5), keepdim=True)
        return mean


@exercise("2.6")
def test_group_norm_reference_passes():
    assert_passes(checks.check_group_norm, GroupNorm)


@exercise("2.6")
@pytest.mark.parametrize("wrong, words", [
    (GroupInterleaved, ["a stride of", "reshaping to (N, C/G, G, H, W)", "(N, G, C/G, H, W)"]),
    (GroupSwappedCounts, ["GroupNorm's set for num_groups = 2", "(N, 3, 2, H, W)"]),
    (GroupUnbiased, ["the unbiased variance"]),
    (GroupEpsOutside, ["ε is outside the square root"]),
    (GroupMixesBatch, ["pooled over the whole batch"]),
    (GroupIgnoresGroups, ["LayerNorm's set", "(N, G, C/G, H, W)"]),
    (GroupPerChannel, ["InstanceNorm's set"]),
    (GroupPixelsOnly, ["over (H, W) (InstanceNorm's set"]),
    (GroupNoAffine, ["γ and β are not applied"]),
    (GroupPerGroupParameters, ["per channel (num_channels,), not per group"]),
    (GroupDetachedVariance, ["path through σ² (eq. (2.5)) is missing", ".detach()"]),
    (GroupAcrossGroups, ["adding a constant to all the values of one group", "(N, G, C/G, H, W)"]),
    (GroupHardCodedEps, ["eps=0.1", "ε is missing under the square root (or far too small)", "ε = 0.1"]),
    (GroupGammaInGroupedLayout, ["your γ and β reach the wrong Cs", "weight[None, :, None, None]"]),
    (GroupUnbiasedStdPlusEps, ["the unbiased variance", "ε is outside the square root"]),
    (GroupNotReshapedBack, ["your numbers are right, but in shape (2, 3, 2, 4, 4) = (N, G, C/G, H, W)",
                             "reshape back to (N, C, H, W)"]),
])
def test_group_norm_names_the_mistake(wrong, words):
    assert_diagnoses(checks.check_group_norm, wrong, *words)


@exercise("2.6")
def test_group_norm_index_error_is_read():
    assert_diagnoses(checks.check_group_norm, GroupWrongDim, "IndexError",
                     "re:names an axis (that )?(the|a \\d-D) tensor does not have",
                     "grouped.mean((2, 3, 4, 5)", error=LearnerError)


@exercise("2.6")
def test_group_norm_stub_in_init_passes_through():
    class Stub(nn.Module):
        def __init__(self, *args, **kwargs):
            raise NotImplementedError("Exercise 2.6: write the body of `GroupNorm.__init__`, then run the check cell "
                                      "below.")
    assert_stub_passes_through(checks.check_group_norm, Stub)


# ================================================================================================ Exercise 2.7
RMSNorm = SOLVED["RMSNorm"]


def rms_forward(module, x, *, dims=None, eps=None, centred=False, l2=False, eps_outside=False):
    dims = dims or tuple(range(-len(module.normalized_shape), 0))
    eps = eps if eps is not None else (torch.finfo(x.dtype).eps if module.eps is None else module.eps)
    if centred:
        x = x - x.mean(dims, keepdim=True)
    square = (x * x).sum(dims, keepdim=True) if l2 else (x * x).mean(dims, keepdim=True)
    y = x / (square.sqrt() + eps) if eps_outside else x / torch.sqrt(square + eps)
    return y * module.weight


class RMSCentred(RMSNorm):
    def forward(self, x):
        return rms_forward(self, x, centred=True)


class RMSEpsOutside(RMSNorm):
    def forward(self, x):
        return rms_forward(self, x, eps_outside=True)


class RMSL2Norm(RMSNorm):
    def forward(self, x):
        return rms_forward(self, x, l2=True)


class RMSNoGamma(RMSNorm):
    def forward(self, x):
        return rms_forward(self, x) / self.weight


def rms_with_default_eps(value):
    class RMSDefaultEps(RMSNorm):
        def forward(self, x):
            return rms_forward(self, x, eps=value if self.eps is None else self.eps)
    return RMSDefaultEps


class RMSLastAxisOnly(RMSNorm):
    def forward(self, x):
        return rms_forward(self, x, dims=(-1,))


class RMSGammaNamedDifferently(RMSNorm):
    def __init__(self, normalized_shape, eps=None):
        super().__init__(normalized_shape, eps)
        del self.weight
        self.gamma = nn.Parameter(torch.ones(self.normalized_shape))

    def forward(self, x):
        return x


class RMSWithBias(RMSNorm):
    def __init__(self, normalized_shape, eps=None):
        super().__init__(normalized_shape, eps)
        self.bias = nn.Parameter(torch.zeros(self.normalized_shape))


class RMSInFloat32(RMSNorm):
    def forward(self, x):
        x32 = x.float()
        eps = torch.finfo(x.dtype).eps if self.eps is None else self.eps
        y = x32 / torch.sqrt((x32 * x32).mean(tuple(range(-len(self.normalized_shape), 0)), keepdim=True) + eps)
        return (y * self.weight.float()).to(x.dtype)


class RMSWithBeta(RMSNorm):
    def forward(self, x):
        return rms_forward(self, x) + 0.1


class RMSDividesByTheLastAxis(RMSNorm):
    def forward(self, x):
        dims = tuple(range(-len(self.normalized_shape), 0))
        eps = torch.finfo(x.dtype).eps if self.eps is None else self.eps
        return x / torch.sqrt((x * x).sum(dims, keepdim=True) / x.shape[-1] + eps) * self.weight


class RMSEpsAfter(RMSNorm):
    def forward(self, x):
        dims = tuple(range(-len(self.normalized_shape), 0))
        eps = torch.finfo(x.dtype).eps if self.eps is None else self.eps
        return x * torch.rsqrt((x * x).mean(dims, keepdim=True)) * self.weight + eps


class RMSDetached(RMSNorm):
    def forward(self, x):
        dims = tuple(range(-len(self.normalized_shape), 0))
        eps = torch.finfo(x.dtype).eps if self.eps is None else self.eps
        return x / torch.sqrt((x * x).mean(dims, keepdim=True) + eps).detach() * self.weight


class RMSGammaInside(RMSNorm):
    def forward(self, x):
        return rms_forward(self, x * self.weight) / self.weight


class RMSNormTimesRootN(RMSNorm):
    def forward(self, x):
        return x / x.norm(dim=-1, keepdim=True) * x.shape[-1] ** 0.5 * self.weight


class RMSOverTheBatchToo(RMSNorm):
    def forward(self, x):
        return rms_forward(self, x, dims=(0,) + tuple(range(-len(self.normalized_shape), 0)))


@exercise("2.7")
def test_rms_norm_reference_passes():
    assert_passes(checks.check_rms_norm, RMSNorm)


@exercise("2.7")
@pytest.mark.parametrize("wrong, words", [
    (RMSCentred, ["you subtract the mean", "does not centre"]),
    (RMSEpsOutside, ["ε is outside the square root"]),
    (RMSL2Norm, ["the sum of squares Σx² (the squared L2 norm)", "the mean square"]),
    (RMSNoGamma, ["γ is not applied"]),
    (rms_with_default_eps(1e-6), ["your ε is 1e-06", "torch.finfo(x.dtype).eps"]),
    (rms_with_default_eps(0.0), ["ε is missing"]),
    (rms_with_default_eps(torch.finfo(torch.float32).eps), ["torch.finfo(torch.float32).eps", "torch.float64"]),
    (rms_with_default_eps(1e-5), ["your ε is 1e-05", "eps=None"]),
    (RMSLastAxisOnly, ["the last axis only", "dim=(-2, -1)"]),
    (RMSGammaNamedDifferently, ["`self.weight` (γ) is missing"]),
    (RMSWithBias, ["parameters ['bias'] that RMSNorm does not have"]),
    (RMSInFloat32, ["float32 precision"]),
    (RMSWithBeta, ["shifted by 0.1", "RMSNorm has no β"]),
    (rms_with_default_eps(1e-8), ["your ε is 1e-08", "should be 1.19e-07"]),
    (rms_with_default_eps(torch.finfo(torch.float32).eps ** 2), ["ε is missing under the square root"]),
    (RMSDividesByTheLastAxis, ["divides by D = 6, the size of the last axis (x.shape[-1]), instead of n = T·D = 24"]),
    (RMSEpsAfter, ["ε is missing under the square root (or far too small)", "√(mean(x²) + ε)"]),
    (RMSDetached, ["path through σ² (eq. (2.5)) is missing", ".detach()"]),
    (RMSGammaInside, ["you apply γ to x before normalising"]),
    (RMSNormTimesRootN, ["over (D) (the last axis only)", "ε is missing"]),
    (RMSOverTheBatchToo, ["your mean square mean(x²) is computed over (B, D)"]),
])
def test_rms_norm_names_the_mistake(wrong, words):
    assert_diagnoses(checks.check_rms_norm, wrong, *words)


# ================================================================================================ the probes
@exercise("2.6")
def test_partition_means_and_identity():
    shape = (2, 3, 2, 2)
    per_channel_groups = checks.axes_partition(shape, checks.IMAGE_AXES, (0, 2, 3))
    x = torch.arange(24.0).reshape(shape)
    assert torch.equal(per_channel_groups.mean(x)[0, :, 0, 0], x.mean((0, 2, 3)))
    blocks = checks.channel_partition((2, 4, 1, 1), block=2)
    assert blocks.groups == 4 and blocks.size == 2
    assert checks.channel_partition((2, 4, 1, 1), block=4).same_as(checks.axes_partition((2, 4, 1, 1), "NCHW",
                                                                                         (1, 2, 3)))
    assert not blocks.same_as(checks.channel_partition((2, 4, 1, 1), stride=2))


@exercise("2.2")
def test_normalisation_probe_reads_every_piece_of_a_wrong_normalisation_at_once():
    x = torch.randn(4, 3, 5, 5, dtype=torch.float64) * 2 + torch.arange(3.0, dtype=torch.float64).view(1, 3, 1, 1)
    case = checks.ImageCase("test", torch.float64, shape=(4, 3, 5, 5), eps=0.1)
    spec = checks._batch_norm_spec(x, case)
    dims = (1, 2, 3)
    wrong = (x - x.mean(dims, keepdim=True)) / (x.var(dims, keepdim=True).sqrt() + 0.1)  # LN axes, unbiased, outside
    message = checks.normalisation_problems(x, wrong, spec)
    for words in ("LayerNorm's set", "the unbiased variance", "ε is outside the square root"):
        assert words in message, message
    right = (x - x.mean(DIMS, keepdim=True)) / torch.sqrt(x.var(DIMS, unbiased=False, keepdim=True) + 0.1)
    assert checks.normalisation_problems(x, right, spec) is None
    assert checks.normalisation_problems(x, torch.zeros_like(x), spec) is None  # nothing to recover: no message
    assert checks.normalisation_problems(x, x.sin(), spec) is None


@exercise("2.2")
def test_group_property_and_shift_probes_speak_when_no_structure_is_found():
    x = torch.randn(4, 3, 5, 5, dtype=torch.float64) + 1
    case = checks.ImageCase("test", torch.float64, shape=(4, 3, 5, 5))
    spec = checks._batch_norm_spec(x, case)
    assert "mean 0 over every group" in checks.group_property_probe(x, spec)(torch.tanh(x))
    centred = x - x.mean(DIMS, keepdim=True)
    assert "variance over each group" in checks.group_property_probe(x, spec)(torch.tanh(centred) -
                                                                             torch.tanh(centred).mean(DIMS, True))
    shift = checks.shift_probe(checks.EX_FUNCTION, lambda t: torch.tanh(t), x, spec, case)
    assert "adding a constant" in shift(torch.tanh(x))
    unshifted = checks.shift_probe(checks.EX_FUNCTION, lambda t: t - t.mean(DIMS, True), x, spec, case)
    assert unshifted(centred) is None


@exercise("2.4")
def test_independence_probe_names_a_batch_dependence():
    x = torch.randn(3, 4, 5)
    spec = checks._trailing_spec(checks.TrailingCase("test", shape=(3, 4, 5)), "LayerNorm", "eq. (2.10)", 1e-5,
                                 "eps", True)
    probe = checks.independence_probe(checks.EX_LAYER, lambda t: t - t.mean(0, keepdim=True) ** 2, x, spec, "test")
    assert "changes when the other examples" in probe(x - x.mean(0, keepdim=True) ** 2)
    assert checks.independence_probe(checks.EX_LAYER, torch.tanh, x[:1], spec, "test")(x[:1]) is None


@exercise("2.1")
def test_paths_probe_falls_back_on_the_zero_sum_property():
    case = checks.ImageCase("test", torch.float64, shape=(4, 3, 5, 5))
    x = torch.randn(case.shape, dtype=torch.float64)
    x_hat, inv_std = checks._statistics(x, case.eps)
    weight, g = torch.tensor([1.2, 0.8, 1.5], dtype=torch.float64), torch.randn(case.shape, dtype=torch.float64)
    paths = checks._batch_norm_paths(x_hat, weight, inv_std, g, case, spec=checks._batch_norm_spec(x, case))
    assert "does not sum to 0" in checks.paths_problems(torch.tanh(g), paths)
    right = per_channel(weight * inv_std) * (g - g.mean(DIMS, True) - x_hat * (g * x_hat).mean(DIMS, True))
    assert checks.paths_problems(right, paths) is None


@exercise("2.3")
def test_running_probe_in_eval_and_for_an_unrecognised_update():
    case = checks.ModuleCase("test", shape=(4, 3, 2, 2), momentum=0.1)
    x = torch.randn(case.shape) * 3 + 2
    old = torch.zeros(3)
    moved = 0.1 * x.mean(DIMS)
    assert "changed in eval mode" in checks.running_problems(old, moved, x, "running_mean", case, None)
    odd = torch.tensor([0.3, -2.0, 5.0])
    assert "the batch statistic your running_mean averages in is [3, -20, 50]" in \
        checks.running_problems(old, odd, x, "running_mean", case, 1)
    assert checks.running_problems(old, odd, x, "running_mean", case, None) is None  # eval: no share fits all


@exercise("2.3")
def test_eval_probe_is_silent_without_a_per_channel_affine_structure():
    x = torch.randn(4, 3, 2, 2)
    sources = {"the running statistics": (torch.zeros(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64))}
    assert checks.eval_problems(x, torch.tanh(x), torch.ones(3), torch.zeros(3), sources, 1e-5) is None
    assert "not the running mean" in checks.eval_problems(x, x - 5, torch.ones(3), torch.zeros(3), sources, 1e-5)


@exercise("2.2")
def test_affine_probe_describes_an_unnamed_scale_and_offset():
    x_hat = torch.randn(4, 3, 2, 2)
    weight, bias = torch.tensor([1.2, 0.7, 1.9]), torch.tensor([0.1, -0.3, 0.5])
    message = checks.affine_problems(x_hat, 3 * x_hat + 2, weight, bias, (1,), checks.IMAGE_AXES, "BatchNorm",
                                     "eq. (2.1)")
    assert "your output is A·x̂ + B per C with A = [3" in message
    assert checks.affine_problems(x_hat, torch.tanh(x_hat), weight, bias, (1,), checks.IMAGE_AXES, "BatchNorm",
                                  "eq. (2.1)") is None


def test_every_check_is_fast_on_the_reference():
    import time
    for check, name in ((checks.check_batch_norm_backward, "batch_norm_backward"),
                        (checks.check_batch_norm_module, "BatchNorm2d"), (checks.check_group_norm, "GroupNorm")):
        start = time.perf_counter()
        assert_passes(check, SOLVED[name])
        assert time.perf_counter() - start < 5, f"{check.__name__} is slow"


@exercise("2.4")
def test_a_constant_output_is_read_without_crashing():
    class Constant(LayerNorm):
        def forward(self, x):
            return torch.zeros_like(x) * self.weight + self.bias
    assert_diagnoses(checks.check_layer_norm, Constant, "output with γ = 1, β = 0", "variance over each group")


@exercise("2.4")
def test_a_module_check_given_a_function_is_told():
    assert_diagnoses(checks.check_layer_norm, lambda normalized_shape, eps=1e-5: (lambda x: x), "not an nn.Module")


def rms_spec(shape=(3, 8)):
    case = checks.TrailingCase("test", shape=shape, normalized_shape=shape[-1], axes=("N", "D"), eps=None)
    return checks._trailing_spec(case, "RMSNorm", "eq. (2.12)", 1e-6, "eps", centred=False)


def test_numbers_that_are_not_finite_are_never_close():
    assert not checks._close(torch.tensor([1.0, math.nan]), torch.tensor([1.0, 1.0]), 1e-3)
    assert not checks._close(torch.tensor([1.0, 1.0]), torch.tensor([1.0, math.inf]), 1e-3)


@exercise("2.2")
def test_normalisation_probe_skips_groups_of_one_value():
    x = torch.randn(6, 4, 2, 1, dtype=torch.float64) * 2 + 1  # W = 1: some candidate groups hold one value
    spec = checks._batch_norm_spec(x, checks.ImageCase("test", torch.float64, shape=(6, 4, 2, 1)))
    wrong = (x - x.mean((0, 1), keepdim=True)) / x.std((0, 1), keepdim=True)  # over (N, C), unbiased
    message = checks.normalisation_problems(x, wrong, spec)
    assert "your mean μ and variance σ² are computed over (N, C, W)" in message  # W = 1
    assert "the unbiased variance" in message
    centred = x - x.mean(DIMS, keepdim=True)  # a factor no moment explains: every grouping is tried, none fits
    unexplained = per_channel(torch.tensor([0.3, 2.1, 0.7, 1.3], dtype=torch.float64))
    assert "is not 1/√(σ² + ε) over any set" in checks.normalisation_problems(x, centred * unexplained, spec)


@exercise("2.7")
def test_probes_that_do_not_apply_stay_silent():
    x = torch.randn(3, 8, dtype=torch.float64) + 1
    assert checks.shift_probe(checks.EX_RMS, torch.tanh, x, rms_spec(), "test")(torch.tanh(x)) is None  # no μ
    same = torch.randn(3, 8)
    assert checks._train_eval_probe(same, "LayerNorm")(same.clone()) is None
    assert "eval mode differs" in checks._train_eval_probe(same, "LayerNorm")(same + 1)


@exercise("2.7")
def test_rms_probes_name_what_is_subtracted_and_what_is_divided():
    x = torch.randn(3, 8, dtype=torch.float64) + 1
    spec = rms_spec()
    rms = torch.sqrt((x * x).mean(-1, keepdim=True) + 1e-6)
    message = checks.normalisation_problems(x, (x - 0.3) / rms, spec)
    assert "you subtract something from x" in message
    assert checks.group_property_probe(x, spec)(x / rms) is None
    assert "mean square over each group" in checks.group_property_probe(x, spec)(torch.tanh(x / rms))


@exercise("2.7")
def test_affine_probe_without_beta():
    x_hat, weight = torch.randn(4, 5, 6), 1 + torch.rand(6)
    read = lambda y: checks.affine_problems(x_hat, y, weight, None, (2,), ("B", "T", "D"), "RMSNorm", "eq. (2.12)")  # noqa: E731
    assert read(x_hat * weight) is None
    assert "you add" in read(x_hat * weight + (weight - 1)) and "has no β" in read(x_hat * weight + (weight - 1))
    assert "your γ acts as 2 × γ: γ is applied twice" in read(2 * x_hat * weight)


@exercise("2.7")
def test_paths_probe_on_rms_norm_names_a_mean_path_it_should_not_have():
    x = torch.randn(3, 8, dtype=torch.float64) + 1
    spec = rms_spec()
    s = 1 / torch.sqrt((x * x).mean(-1, keepdim=True) + 1e-6).expand_as(x)
    g, gamma = torch.randn(3, 8, dtype=torch.float64), torch.ones(3, 8, dtype=torch.float64)
    paths = checks.Paths(g, gamma, x * s, s, spec, "eq. (2.8)'s form",
                         {"direct": "s·γg", "mean": "s·mean(γg)", "var": "s·x̂·mean(γg·x̂)", "mean_of": "γg"},
                         gamma_inside=True)
    basis = paths.basis()
    assert checks.paths_problems(basis["direct"] - basis["var"], paths) is None
    assert "subtracts no mean" in checks.paths_problems(basis["direct"] - basis["var"] - basis["mean"], paths)


@exercise("2.1")
def test_vector_probe_is_silent_when_there_is_nothing_to_compare():
    assert checks.vector_problems(torch.ones(3), torch.zeros(3), {}, {}, "dL/dγ", "Σ g·x̂") is None


@exercise("2.3")
def test_running_probe_edge_cases():
    case = checks.ModuleCase("test", shape=(4, 3, 2, 2), momentum=0.1)
    x = torch.randn(case.shape) * 3 + 2
    at_the_mean = x.mean(DIMS)  # the buffer already sits at the batch's statistic: no share can be read
    assert "if your α is 0.1" in checks.running_problems(at_the_mean, at_the_mean + 1, x, "running_mean", case, 2)
    nan = torch.full((3,), math.nan)
    assert checks.running_problems(nan, torch.zeros(3), x, "running_mean", case, 1) is None


@exercise("2.3")
def test_eval_probe_edge_cases():
    x = torch.randn(4, 3, 2, 2, dtype=torch.float64) * 2
    weight, bias = torch.tensor([1.2, 0.8, 1.5]), torch.tensor([0.1, -0.2, 0.3])
    mean, var = torch.tensor([0.5, -0.5, 1.0], dtype=torch.float64), torch.tensor([2.0, 3.0, 4.0], dtype=torch.float64)
    sources = {"the running statistics": (mean, var)}
    right = (x - per_channel(mean)) / torch.sqrt(per_channel(var) + 1e-5) * per_channel(weight) + per_channel(bias)
    assert checks.eval_problems(x, right, weight, bias, sources, 1e-5) is None
    odd = torch.tensor([1.7, 0.3, 2.9], dtype=torch.float64)
    wrong = (x - per_channel(mean)) / torch.sqrt(per_channel(var * odd) + 1e-5) * per_channel(weight) + \
        per_channel(bias)
    assert "not 1/√(running_var + ε)" in checks.eval_problems(x, wrong, weight, bias, sources, 1e-5)


@exercise("2.3")
def test_a_buffer_that_is_gone_reads_as_nan():
    assert torch.isnan(checks._buffer(nn.Module(), "running_mean", 3)).all()


@exercise("2.4")
def test_an_output_that_does_not_depend_on_x_is_told():
    run = ModuleRun(torch.zeros(2), None)
    with pytest.raises(checks.CheckFailure, match="does not depend on x"):
        checks._compare_input_gradient(checks.EX_LAYER, run, run, checks.LAYER_CASES[0], None, 1e-5, 1e-4)


@exercise("2.4")
def test_inside_probe_is_silent_for_another_mistake():
    module = LayerNorm(6)
    x = torch.randn(4, 6)
    spec = rms_spec((4, 6))
    probe = checks.inside_probe(checks.EX_LAYER, module, x, torch.rand(6) + 1, torch.zeros(6), (1,), "test", spec)
    assert probe(torch.tanh(x)) is None


# ================================================================================================ no crash, ever
CORRUPTIONS = ["scale", "noise", "nan", "inf", "zero", "transpose", "flatten", "unsqueeze", "slice", "float16",
               "list", "none", "constant", "negate", "per-channel"]


def corrupt(t, how, amount):
    """A reference output made wrong in one of many ways, as a broken answer might be."""
    if how == "scale":
        return t * amount
    if how == "noise":
        return t + amount * torch.sin(torch.arange(t.numel(), dtype=t.dtype)).reshape(t.shape)
    if how in ("nan", "inf"):
        wrong = t.clone()
        wrong.view(-1)[int(abs(amount) * 7) % t.numel()] = math.nan if how == "nan" else math.inf
        return wrong
    if how == "zero":
        return torch.zeros_like(t)
    if how == "transpose":
        return t.transpose(-1, -2)
    if how == "flatten":
        return t.flatten()
    if how == "unsqueeze":
        return t.unsqueeze(0)
    if how == "slice":
        return t[..., :-1] if t.shape[-1] > 1 else t[:0]
    if how == "float16":
        return t.half()
    if how == "list":
        return t.tolist()
    if how == "none":
        return None
    if how == "constant":
        return torch.full_like(t, amount)
    if how == "negate":
        return -t
    return t * (1 + amount * torch.arange(t.shape[1], dtype=t.dtype).view(1, -1, *([1] * (t.dim() - 2)))) \
        if t.dim() > 1 else t * amount  # per-channel


@exercise("2.1")
@settings(max_examples=25, deadline=None)
@given(which=st.integers(0, 2), how=st.sampled_from(CORRUPTIONS), amount=st.floats(-3, 3).filter(lambda a: a != 0))
def test_backward_never_crashes_on_a_corrupted_answer(which, how, amount):
    def corrupted(grad_out, x_hat, weight, inv_std):
        grads = list(SOLVED["batch_norm_backward"](grad_out, x_hat, weight, inv_std))
        grads[which] = corrupt(grads[which], how, amount)
        return tuple(grads)
    try:
        checks.check_batch_norm_backward(corrupted)
    except (CheckFailure, LearnerError) as failure:
        assert str(failure).startswith("Exercise 2.1")


@exercise("2.6")
@settings(max_examples=25, deadline=None)
@given(how=st.sampled_from(CORRUPTIONS), amount=st.floats(-3, 3).filter(lambda a: a != 0),
       after_init=st.booleans())
def test_module_checks_never_crash_on_a_corrupted_output(how, amount, after_init):
    class Corrupted(GroupNorm):
        def forward(self, x):
            y = super().forward(x)
            if after_init and torch.equal(self.weight.detach(), torch.ones_like(self.weight)):
                return y  # the normalisation right: the corruption shows only with γ, β copied in
            return corrupt(y, how, amount)
    try:
        checks.check_group_norm(Corrupted)
    except (CheckFailure, LearnerError) as failure:
        assert str(failure).startswith("Exercise 2.6")


@exercise("2.2")
@settings(max_examples=20, deadline=None)
@given(how=st.sampled_from(CORRUPTIONS), amount=st.floats(-3, 3).filter(lambda a: a != 0), in_backward=st.booleans())
def test_function_never_crashes_on_a_corrupted_answer(how, amount, in_backward):
    class Corrupted(Function):
        @staticmethod
        def forward(ctx, x, weight, bias, eps):
            y = Function.forward(ctx, x, weight, bias, eps)
            return y if in_backward or how in ("list", "none", "float16") else corrupt(y, how, amount)

        @staticmethod
        def backward(ctx, grad_out):
            grad_x, grad_weight, grad_bias, _ = Function.backward(ctx, grad_out)
            wrong = corrupt(grad_weight, how, amount) if in_backward and how not in ("list", "none") else grad_weight
            return grad_x, wrong, grad_bias, None
    try:
        checks.check_batch_norm_function(Corrupted)
    except (CheckFailure, LearnerError) as failure:
        assert str(failure).startswith("Exercise 2.2")


@exercise("2.3")
@settings(max_examples=20, deadline=None)
@given(how=st.sampled_from(["scale", "noise", "nan", "zero", "constant", "negate", "per-channel"]),
       amount=st.floats(-3, 3).filter(lambda a: a != 0), buffer=st.sampled_from(["running_mean", "running_var"]))
def test_module_never_crashes_on_corrupted_buffers(how, amount, buffer):
    class Corrupted(ModuleWithUpdate):
        def update(self, x):
            super().update(x)
            getattr(self, buffer).copy_(corrupt(getattr(self, buffer)[None, :, None, None], how, amount).flatten())
    try:
        checks.check_batch_norm_module(Corrupted)
    except (CheckFailure, LearnerError) as failure:
        assert str(failure).startswith("Exercise 2.3")


# ================================================================================================ unseen mistakes
# Round 3: realistic wrong answers written before the checks were improved for them (the kinds the previous round
# left vague: axes, a variance over other values than the mean, counts, eval mode, the output saved for x̂, …).


def unseen_bw_count_forgets_width(grad_out, x_hat, weight, inv_std):
    N, C, H, W = grad_out.shape
    m = N * H  # forgot W
    mean_g = grad_out.sum(DIMS, keepdim=True) / m
    mean_gx = (grad_out * x_hat).sum(DIMS, keepdim=True) / m
    grad_x = per_channel(weight * inv_std) * (grad_out - mean_g - x_hat * mean_gx)
    return grad_x, (grad_out * x_hat).sum(DIMS), grad_out.sum(DIMS)


def unseen_bw_variance_term_outside_scale(grad_out, x_hat, weight, inv_std):
    mean_g = grad_out.mean(DIMS, keepdim=True)
    mean_gx = (grad_out * x_hat).mean(DIMS, keepdim=True)
    grad_x = per_channel(weight * inv_std) * (grad_out - mean_g) - x_hat * mean_gx  # parenthesis closed too early
    return grad_x, (grad_out * x_hat).sum(DIMS), grad_out.sum(DIMS)


def unseen_bw_mean_without_keepdim(grad_out, x_hat, weight, inv_std):
    mean_g = grad_out.mean(DIMS)  # (C,)
    mean_gx = (grad_out * x_hat).mean(DIMS, keepdim=True)
    grad_x = per_channel(weight * inv_std) * (grad_out - mean_g - x_hat * mean_gx)
    return grad_x, (grad_out * x_hat).sum(DIMS), grad_out.sum(DIMS)


def unseen_bw_mean_path_sign(grad_out, x_hat, weight, inv_std):
    mean_g = grad_out.mean(DIMS, keepdim=True)
    mean_gx = (grad_out * x_hat).mean(DIMS, keepdim=True)
    grad_x = per_channel(weight * inv_std) * (grad_out + mean_g - x_hat * mean_gx)
    return grad_x, (grad_out * x_hat).sum(DIMS), grad_out.sum(DIMS)


def unseen_bw_eq_2_7_without_half(grad_out, x_hat, weight, inv_std):
    N, C, H, W = grad_out.shape
    m = N * H * W
    s = per_channel(inv_std)
    d_x_hat = grad_out * per_channel(weight)
    x_mu = x_hat / s
    d_var = (d_x_hat * x_mu).sum(DIMS, keepdim=True) * s ** 3  # forgot the −1/2
    d_mean = -s * d_x_hat.sum(DIMS, keepdim=True)
    grad_x = d_x_hat * s + d_var * 2 * x_mu / m + d_mean / m
    return grad_x, (grad_out * x_hat).sum(DIMS), grad_out.sum(DIMS)


def unseen_bw_bias_over_two_axes(grad_out, x_hat, weight, inv_std):
    grad_x, grad_weight, _ = SOLVED["batch_norm_backward"](grad_out, x_hat, weight, inv_std)
    return grad_x, grad_weight, grad_out.sum(dim=(0, 2))


def unseen_bw_product_of_means(grad_out, x_hat, weight, inv_std):
    mean_g = grad_out.mean(DIMS, keepdim=True)
    mean_gx = grad_out.mean(DIMS, keepdim=True) * x_hat.mean(DIMS, keepdim=True)  # mean(g)·mean(x̂), not mean(g·x̂)
    grad_x = per_channel(weight * inv_std) * (grad_out - mean_g - x_hat * mean_gx)
    return grad_x, (grad_out * x_hat).sum(DIMS), grad_out.sum(DIMS)


def unseen_bw_variance_term_without_x_hat(grad_out, x_hat, weight, inv_std):
    mean_g = grad_out.mean(DIMS, keepdim=True)
    mean_gx = (grad_out * x_hat).mean(DIMS, keepdim=True)
    grad_x = per_channel(weight * inv_std) * (grad_out - mean_g - mean_gx)  # the x̂ in front of mean(g·x̂) left out
    return grad_x, (grad_out * x_hat).sum(DIMS), grad_out.sum(DIMS)


# ----- 2.2
class UnseenFnVarOverOtherAxes(Function):
    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        mean = x.mean(dim=DIMS, keepdim=True)
        var = x.var(dim=(2, 3), unbiased=False, keepdim=True)  # per example: not the mean's axes
        inv_std = 1 / torch.sqrt(var + eps)
        x_hat = (x - mean) * inv_std
        ctx.save_for_backward(x_hat, weight, inv_std.mean(0).flatten())
        return x_hat * per_channel(weight) + per_channel(bias)



class UnseenFnVarAboutZero(Function):
    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        mean = x.mean(dim=DIMS, keepdim=True)
        var = (x ** 2).mean(dim=DIMS, keepdim=True)  # forgot to subtract the mean inside
        inv_std = 1 / torch.sqrt(var + eps)
        x_hat = (x - mean) * inv_std
        ctx.save_for_backward(x_hat, weight, inv_std.flatten())
        return x_hat * per_channel(weight) + per_channel(bias)



class UnseenFnMeanNoKeepdim(Function):
    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        mean = x.mean(dim=DIMS)  # (C,)
        var = x.var(dim=DIMS, unbiased=False, keepdim=True)
        inv_std = 1 / torch.sqrt(var + eps)
        x_hat = (x - mean) * inv_std
        ctx.save_for_backward(x_hat, weight, inv_std.flatten())
        return x_hat * per_channel(weight) + per_channel(bias)



class UnseenFnUnbiasedByHand(Function):
    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        N, C, H, W = x.shape
        mean = x.mean(dim=DIMS, keepdim=True)
        var = ((x - mean) ** 2).sum(dim=DIMS, keepdim=True) / (N * H * W - 1)
        inv_std = 1 / torch.sqrt(var + eps)
        x_hat = (x - mean) * inv_std
        ctx.save_for_backward(x_hat, weight, inv_std.flatten())
        return x_hat * per_channel(weight) + per_channel(bias)



class UnseenFnSavesOutput(Function):
    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        mean = x.mean(dim=DIMS, keepdim=True)
        inv_std = 1 / torch.sqrt(x.var(dim=DIMS, unbiased=False, keepdim=True) + eps)
        y = (x - mean) * inv_std * per_channel(weight) + per_channel(bias)
        ctx.save_for_backward(y, weight, inv_std.flatten())  # saved y, not x̂
        return y



class UnseenFnBackwardGammaGradFromGradX(Function):
    @staticmethod
    def backward(ctx, grad_out):
        x_hat, weight, inv_std = ctx.saved_tensors
        grad_x, grad_weight, grad_bias = SOLVED["batch_norm_backward"](grad_out, x_hat, weight, inv_std)
        return grad_x, grad_bias, grad_weight, None  # γ and β swapped



class UnseenFnEpsSquared(Function):
    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        mean = x.mean(dim=DIMS, keepdim=True)
        std = x.std(dim=DIMS, unbiased=False, keepdim=True)
        inv_std = 1 / torch.sqrt(std ** 2 + eps ** 2)  # eps squared with the std
        x_hat = (x - mean) * inv_std
        ctx.save_for_backward(x_hat, weight, inv_std.flatten())
        return x_hat * per_channel(weight) + per_channel(bias)



# ----- 2.3
class UnseenModStatsOfOutput(ModuleWithUpdate):
    def forward(self, x):
        if not self.training:
            return super().forward(x)
        y = Function.apply(x, self.weight, self.bias, self.eps)
        with torch.no_grad():
            self.update(y)  # statistics of the output, not of the input
        return y



class UnseenModCumulativeDividesByZero(ModuleWithUpdate):
    def update(self, x):
        a = 1 / self.num_batches_tracked.item() if self.momentum is None and self.num_batches_tracked > 0 \
            else (self.momentum or 0.0)  # first batch: a = 0, the buffers stay put
        self.running_mean.mul_(1 - a).add_(a * x.mean(dim=DIMS))
        self.running_var.mul_(1 - a).add_(a * x.var(dim=DIMS, unbiased=True))
        self.num_batches_tracked += 1



class UnseenModMeanOverTwoAxes(ModuleWithUpdate):
    def update(self, x):
        self.num_batches_tracked += 1
        a = self.factor()
        self.running_mean.mul_(1 - a).add_(a * x.mean(dim=(0, 2)).mean(-1))  # same numbers: passes
        self.running_var.mul_(1 - a).add_(a * x.var(dim=(2, 3), unbiased=True).mean(0))  # mean of per-example vars



class UnseenModEvalNoCentring(ModuleWithUpdate):
    def forward(self, x):
        if self.training:
            return super().forward(x)
        scale = per_channel(self.weight / torch.sqrt(self.running_var + self.eps))
        return x * scale + per_channel(self.bias)  # forgot − running_mean



class UnseenModEvalNoSqrt(ModuleWithUpdate):
    def forward(self, x):
        if self.training:
            return super().forward(x)
        x_hat = (x - per_channel(self.running_mean)) / per_channel(self.running_var + self.eps)
        return x_hat * per_channel(self.weight) + per_channel(self.bias)



class UnseenModMomentumOnBatch(ModuleWithUpdate):
    def update(self, x):
        self.num_batches_tracked += 1
        a = self.factor()
        self.running_mean.copy_(a * self.running_mean + (1 - a) * x.mean(dim=DIMS))
        self.running_var.copy_(a * self.running_var + (1 - a) * x.var(dim=DIMS, unbiased=True))



class UnseenModEvalUsesTrainingBranch(ModuleWithUpdate):
    def forward(self, x):
        if not self.training:
            with torch.no_grad():
                pass
            return Function.apply(x, self.weight, self.bias, self.eps)  # batch statistics in eval mode
        return super().forward(x)



# ----- 2.4
class UnseenLNVarLastAxisOnly(LayerNorm):
    def forward(self, x):
        dims = tuple(range(-len(self.normalized_shape), 0))
        mean = x.mean(dim=dims, keepdim=True)
        var = x.var(dim=-1, unbiased=False, keepdim=True)  # the mean's axes, but the variance over the last one
        return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias



class UnseenLNAnnotatedTransformer(LayerNorm):
    def forward(self, x):
        dims = tuple(range(-len(self.normalized_shape), 0))
        mean = x.mean(dim=dims, keepdim=True)
        std = x.std(dim=dims, keepdim=True)  # unbiased, and ε outside
        return self.weight * (x - mean) / (std + self.eps) + self.bias



class UnseenLNMeanCountLastAxis(LayerNorm):
    def forward(self, x):
        dims = tuple(range(-len(self.normalized_shape), 0))
        mean = x.sum(dim=dims, keepdim=True) / x.shape[-1]  # divides by the last axis only
        var = ((x - mean) ** 2).mean(dim=dims, keepdim=True)
        return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias



class UnseenLNNormalizesOverFirstAxes(LayerNorm):
    def forward(self, x):
        mean = x.mean(dim=0, keepdim=True)
        var = x.var(dim=0, unbiased=False, keepdim=True)
        return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias



class UnseenLNRsqrtEps(LayerNorm):
    def forward(self, x):
        dims = tuple(range(-len(self.normalized_shape), 0))
        mean = x.mean(dim=dims, keepdim=True)
        var = x.var(dim=dims, unbiased=False, keepdim=True)
        return (x - mean) * (torch.rsqrt(var) + self.eps) * self.weight + self.bias



# ----- 2.5
class UnseenINVarPerExample(InstanceNorm):
    def forward(self, x):
        mean = x.mean(dim=(2, 3), keepdim=True)
        var = x.var(dim=(1, 2, 3), unbiased=False, keepdim=True)  # over the whole example
        x_hat = (x - mean) / torch.sqrt(var + self.eps)
        return x_hat * per_channel(self.weight) + per_channel(self.bias)



class UnseenINLibraryDefaultEps(InstanceNorm):
    def forward(self, x):
        return nn.functional.instance_norm(x) * per_channel(self.weight) + per_channel(self.bias)  # its eps



class UnseenINOverChannels(InstanceNorm):
    def forward(self, x):
        mean = x.mean(dim=1, keepdim=True)
        var = x.var(dim=1, unbiased=False, keepdim=True)
        x_hat = (x - mean) / torch.sqrt(var + self.eps)
        return x_hat * per_channel(self.weight) + per_channel(self.bias)



class UnseenINEvalIdentity(InstanceNorm):
    def forward(self, x):
        if not self.training:
            return x * per_channel(self.weight) + per_channel(self.bias)  # "no running statistics to use"
        return super().forward(x)



# ----- 2.6
class UnseenGNOverChannelsOnly(GroupNorm):
    def forward(self, x):
        N, C, H, W = x.shape
        grouped = x.reshape(N, self.num_groups, C // self.num_groups, H, W)
        mean = grouped.mean(dim=2, keepdim=True)  # over the group's channels only, per pixel
        var = grouped.var(dim=2, unbiased=False, keepdim=True)
        x_hat = ((grouped - mean) / torch.sqrt(var + self.eps)).reshape(N, C, H, W)
        return x_hat * per_channel(self.weight) + per_channel(self.bias)



class UnseenGNPooledOverBatch(GroupNorm):
    def forward(self, x):
        N, C, H, W = x.shape
        grouped = x.reshape(N, self.num_groups, C // self.num_groups, H, W)
        mean = grouped.mean(dim=(0, 2, 3, 4), keepdim=True)
        var = grouped.var(dim=(0, 2, 3, 4), unbiased=False, keepdim=True)
        x_hat = ((grouped - mean) / torch.sqrt(var + self.eps)).reshape(N, C, H, W)
        return x_hat * per_channel(self.weight) + per_channel(self.bias)



class UnseenGNViewForgetsBatch(GroupNorm):
    def forward(self, x):
        N, C, H, W = x.shape
        grouped = x.reshape(self.num_groups, -1)  # forgot N: a group's rows cut across examples
        mean = grouped.mean(dim=1, keepdim=True)
        var = grouped.var(dim=1, unbiased=False, keepdim=True)
        x_hat = ((grouped - mean) / torch.sqrt(var + self.eps)).reshape(N, C, H, W)
        return x_hat * per_channel(self.weight) + per_channel(self.bias)



class UnseenGNUnbiased(GroupNorm):
    def forward(self, x):
        N, C, H, W = x.shape
        grouped = x.reshape(N, self.num_groups, -1)
        mean, var = grouped.mean(-1, keepdim=True), grouped.var(-1, keepdim=True)
        x_hat = ((grouped - mean) / torch.sqrt(var + self.eps)).reshape(N, C, H, W)
        return x_hat * per_channel(self.weight) + per_channel(self.bias)



class UnseenGNAffinePerGroup(GroupNorm):
    def forward(self, x):
        N, C, H, W = x.shape
        G = self.num_groups
        grouped = x.reshape(N, G, C // G, H, W)
        mean = grouped.mean(dim=(2, 3, 4), keepdim=True)
        var = grouped.var(dim=(2, 3, 4), unbiased=False, keepdim=True)
        x_hat = (grouped - mean) / torch.sqrt(var + self.eps)
        y = x_hat * self.weight.view(1, C // G, G, 1, 1) + self.bias.view(1, C // G, G, 1, 1)  # wrong split of γ
        return y.reshape(N, C, H, W)



# ----- 2.7
class UnseenRMSL2Norm(RMSNorm):
    def forward(self, x):
        dims = tuple(range(-len(self.normalized_shape), 0))
        eps = torch.finfo(x.dtype).eps if self.eps is None else self.eps
        return self.weight * x / torch.sqrt((x * x).sum(dim=dims, keepdim=True) + eps)



class UnseenRMSVariance(RMSNorm):
    def forward(self, x):
        dims = tuple(range(-len(self.normalized_shape), 0))
        eps = torch.finfo(x.dtype).eps if self.eps is None else self.eps
        return self.weight * x / torch.sqrt(x.var(dim=dims, unbiased=False, keepdim=True) + eps)



class UnseenRMSFloat32Eps(RMSNorm):
    def forward(self, x):
        dims = tuple(range(-len(self.normalized_shape), 0))
        eps = torch.finfo(torch.float32).eps if self.eps is None else self.eps
        return self.weight * x / torch.sqrt((x * x).mean(dim=dims, keepdim=True) + eps)



class UnseenRMSEpsNone(RMSNorm):
    def forward(self, x):
        dims = tuple(range(-len(self.normalized_shape), 0))
        return self.weight * x / torch.sqrt((x * x).mean(dim=dims, keepdim=True) + self.eps)



class UnseenRMSGammaInside(RMSNorm):
    def forward(self, x):
        dims = tuple(range(-len(self.normalized_shape), 0))
        eps = torch.finfo(x.dtype).eps if self.eps is None else self.eps
        y = self.weight * x
        return y / torch.sqrt((y * y).mean(dim=dims, keepdim=True) + eps)



class UnseenRMSLastAxis(RMSNorm):
    def forward(self, x):
        eps = torch.finfo(x.dtype).eps if self.eps is None else self.eps
        return self.weight * x / torch.sqrt((x * x).mean(dim=-1, keepdim=True) + eps)


class UnseenRMSMeanAbs(RMSNorm):
    def forward(self, x):
        dims = tuple(range(-len(self.normalized_shape), 0))
        eps = torch.finfo(x.dtype).eps if self.eps is None else self.eps
        return self.weight * x / (x.abs().mean(dim=dims, keepdim=True) + eps)


class UnseenModBesselTwice(ModuleWithUpdate):
    def update(self, x):
        self.num_batches_tracked += 1
        a, m = self.factor(), x.numel() // x.shape[1]
        self.running_mean.mul_(1 - a).add_(a * x.mean(dim=DIMS))
        self.running_var.mul_(1 - a).add_(a * x.var(dim=DIMS) * m / (m - 1))  # x.var is unbiased already


class UnseenModVarianceCountForgetsWidth(ModuleWithUpdate):
    def update(self, x):
        self.num_batches_tracked += 1
        a, (N, _, H, _) = self.factor(), x.shape
        mean = x.mean(dim=DIMS, keepdim=True)
        self.running_mean.mul_(1 - a).add_(a * mean.flatten())
        self.running_var.mul_(1 - a).add_(a * ((x - mean) ** 2).sum(dim=DIMS) / (N * H))


UNSEEN = [  # (exercise, wrong answer, words of the diagnosis)
    ("2.1", unseen_bw_count_forgets_width, ["divides by N·H = N·W = 20, instead of m = N·H·W = 100"]),
    ("2.1", unseen_bw_variance_term_outside_scale, ["the path through σ²", "the factor γ·s is missing"]),
    ("2.1", unseen_bw_mean_without_keepdim, ["`mean_g` of shape (3,) = (C,) lines up with the LAST axis (W)",
                                             "keepdim=True"]),
    ("2.1", unseen_bw_mean_path_sign, ["the path through μ (eq. (2.6)) has the wrong sign"]),
    ("2.1", unseen_bw_eq_2_7_without_half, ["the path through σ² (eq. (2.5)) is -2"]),
    ("2.1", unseen_bw_bias_over_two_axes, ["sum over the axes (0, 2, 3)"]),
    ("2.1", unseen_bw_product_of_means, ["the path through σ² (eq. (2.5)) is missing"]),
    ("2.1", unseen_bw_variance_term_without_x_hat, ["a term -1·γ·s·mean(g·x̂) that eq. (2.8) does not have",
                                                    "in place of −γ·s·x̂·mean(g·x̂)"]),
    ("2.2", UnseenFnVarOverOtherAxes, ["your variance σ² is computed over (H, W)", "dim=(0, 2, 3)"]),
    ("2.2", UnseenFnVarAboutZero, ["the mean square mean(x²)", "the biased variance"]),
    ("2.2", UnseenFnMeanNoKeepdim, ["`mean` of shape (3,) = (C,) lines up with the LAST axis (W)"]),
    ("2.2", UnseenFnUnbiasedByHand, ["you divide by the unbiased variance"]),
    ("2.2", UnseenFnSavesOutput, ["used the output y = γ·x̂ + β where eq. (2.8) has x̂"]),
    ("2.2", UnseenFnBackwardGammaGradFromGradX, ["are in each other's places", "in the order"]),
    ("2.2", UnseenFnEpsSquared, ["ε is missing under the square root (or far too small)"]),
    ("2.3", UnseenModStatsOfOutput, ["averages in the mean of your output y", "from the input x"]),
    ("2.3", UnseenModCumulativeDividesByZero, ["as if α were 0", "increment num_batches_tracked before"]),
    ("2.3", UnseenModMeanOverTwoAxes, ["the unbiased variance of each example's channel over (H, W), averaged over "
                                       "the N examples"]),
    ("2.3", UnseenModEvalNoCentring, ["you subtract nothing: subtract running_mean"]),
    ("2.3", UnseenModEvalNoSqrt, ["the square root is missing"]),
    ("2.3", UnseenModMomentumOnBatch, ["momentum is applied backwards"]),
    ("2.3", UnseenModEvalUsesTrainingBranch, ["you normalise with this batch's mean and variance"]),
    ("2.3", UnseenModBesselTwice, ["(= m/(m − 1), m = N·H·W = 100) × the unbiased batch variance",
                                   "Bessel's correction is applied twice"]),
    ("2.3", UnseenModVarianceCountForgetsWidth, ["divided by 20 (= N·H = N·W) instead of m − 1 = 99"]),
    ("2.4", UnseenLNVarLastAxisOnly, ["your variance σ² is computed over (W) (the last axis only)"]),
    ("2.4", UnseenLNAnnotatedTransformer, ["the unbiased variance", "ε is outside the square root"]),
    ("2.4", UnseenLNMeanCountLastAxis, ["your μ divides by H = W = 4, the size of the last axis (x.shape[-1]), "
                                        "instead of n = C·H·W = 48"]),
    ("2.4", UnseenLNNormalizesOverFirstAxes, ["your mean μ and variance σ² are computed over (B) (the batch axis)"]),
    ("2.4", UnseenLNRsqrtEps, ["ε is added after the reciprocal square root"]),
    ("2.5", UnseenINVarPerExample, ["your variance σ² is computed over (C, H, W)", "dim=(2, 3)"]),
    ("2.5", UnseenINLibraryDefaultEps, ["your ε is 1e-05", "should be 0.001"]),
    ("2.5", UnseenINOverChannels, ["computed over (C)", "dim=(2, 3)"]),
    ("2.5", UnseenINEvalIdentity, ["your output in eval mode differs from training mode"]),
    ("2.6", UnseenGNOverChannelsOnly, ["computed over (C)", "dim=(2, 3, 4)"]),
    ("2.6", UnseenGNPooledOverBatch, ["pooled over the whole batch"]),
    ("2.6", UnseenGNViewForgetsBatch, ["example 0 changes when the other examples"]),
    ("2.6", UnseenGNUnbiased, ["the unbiased variance"]),
    ("2.6", UnseenGNAffinePerGroup, ["its (C/G, G) met (G, C/G)", "(1, G, C/G, 1, 1)"]),
    ("2.7", UnseenRMSL2Norm, ["the sum of squares Σx²"]),
    ("2.7", UnseenRMSVariance, ["you divide by the biased variance",
                                     "which centres x first", "the mean square (x * x).mean"]),
    ("2.7", UnseenRMSFloat32Eps, ["your ε is 1.19e-07 (= torch.finfo(torch.float32).eps)"]),
    ("2.7", UnseenRMSEpsNone, ["`self.eps` is None", "This case passes eps=None, which means ε = "
                                                                      "torch.finfo(x.dtype).eps"]),
    ("2.7", UnseenRMSGammaInside, ["you apply γ to x before normalising"]),
    ("2.7", UnseenRMSLastAxis, ["computed over (D) (the last axis only)"]),
    ("2.7", UnseenRMSMeanAbs, ["the mean absolute value mean(|x|)"]),
]
UNSEEN_CHECKS = {"2.1": checks.check_batch_norm_backward, "2.2": checks.check_batch_norm_function,
                 "2.3": checks.check_batch_norm_module, "2.4": checks.check_layer_norm,
                 "2.5": checks.check_instance_norm, "2.6": checks.check_group_norm, "2.7": checks.check_rms_norm}


@pytest.mark.parametrize("exercise_id, wrong, words", [
    pytest.param(exercise_id, wrong, words, marks=exercise(exercise_id), id=wrong.__name__)
    for exercise_id, wrong, words in UNSEEN])
def test_unseen_mistakes_are_named(exercise_id, wrong, words):
    assert_diagnoses(UNSEEN_CHECKS[exercise_id], wrong, *words)


def test_counts_are_named_from_the_cases_sizes_or_not_at_all():
    sizes = {"N": 4, "C": 3, "H": 5, "W": 5}
    assert checks.count_name(20, sizes) == "N·H = N·W"
    assert checks.count_name(7, sizes) is None and checks.count_name(2.5, sizes) is None
    case = checks.ImageCase("counts", shape=(4, 3, 5, 5))
    spec = checks._batch_norm_spec(torch.zeros(4, 3, 5, 5), case)
    assert checks.wrong_count_message(7, spec, "your μ") is None
    assert checks.wrong_count_message(300, spec, "your μ").startswith("your μ divides by N·C·H·W = 300, instead of "
                                                                      "m = N·H·W = 100")


def test_a_module_gradient_outside_eq_2_8_and_its_look_alikes_is_left_to_the_properties():
    case = checks.LAYER_CASES[0]
    x = checks._trailing_input(checks.EX_LAYER, case).double()
    spec = checks._trailing_spec(case, "LayerNorm", "eq. (2.10)", case.eps, "the eps argument", centred=True)
    P = spec.partition
    s = 1 / torch.sqrt(checks._moment(x, P, "variance") + spec.eps)
    x_hat = (x - P.mean(x)) * s
    g = torch.randn(x.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    paths = checks.Paths(g, torch.ones_like(x), x_hat, s, spec, "eq. (2.8)'s form",
                         {"direct": "s·γg", "mean": "s·mean(γg)", "var": "s·x̂·mean(γg·x̂)", "mean_of": "γg"},
                         gamma_inside=True)
    right = s * (g - P.mean(g) - x_hat * P.mean(g * x_hat))
    assert checks.paths_problems(right, paths) is None
    assert "a term 2·s·x̂·mean(γg) that eq. (2.8)'s form does not have" in \
        checks.paths_problems(right + 2 * s * x_hat * P.mean(g), paths)
    assert checks.paths_problems(right + x * g, paths) is not None  # no look-alike: a property says it


# ----- ten more, written after the changes above: eight were named as first written; momentum passed as eps was
# misread (an unbiased variance without ε: within float32 rounding) until another ε over the right values was tried
# before other moments; var_mean unpacked the wrong way round is only read as NaN from a negative square root.


def fresh_variance_mean_over_batch_size(grad_out, x_hat, weight, inv_std):
    mean_g = grad_out.mean(DIMS, keepdim=True)
    mean_gx = (grad_out * x_hat).sum(DIMS, keepdim=True) / grad_out.shape[0]  # ÷ N in this term only
    grad_x = per_channel(weight * inv_std) * (grad_out - mean_g - x_hat * mean_gx)
    return grad_x, (grad_out * x_hat).sum(DIMS), grad_out.sum(DIMS)


class FreshVarMeanUnpackedBackwards(Function):
    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        mean, var = torch.var_mean(x, dim=DIMS, unbiased=False, keepdim=True)  # it returns (var, mean)
        inv_std = 1 / torch.sqrt(var + eps)
        x_hat = (x - mean) * inv_std
        ctx.save_for_backward(x_hat, weight, inv_std.flatten())
        return x_hat * per_channel(weight) + per_channel(bias)


class FreshBiasNotViewed(Function):
    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        mean = x.mean(dim=DIMS, keepdim=True)
        inv_std = 1 / torch.sqrt(x.var(dim=DIMS, unbiased=False, keepdim=True) + eps)
        x_hat = (x - mean) * inv_std
        ctx.save_for_backward(x_hat, weight, inv_std.flatten())
        return x_hat * per_channel(weight) + bias


class FreshMomentumPassedAsEps(Module):
    def forward(self, x):
        if not self.training:
            return super().forward(x)
        with torch.no_grad():
            self.num_batches_tracked += 1
            a = 1 / self.num_batches_tracked.item() if self.momentum is None else self.momentum
            self.running_mean.mul_(1 - a).add_(a * x.mean(dim=DIMS))
            self.running_var.mul_(1 - a).add_(a * x.var(dim=DIMS, unbiased=True))
        return Function.apply(x, self.weight, self.bias, self.momentum or self.eps)  # momentum where eps belongs


class FreshCountsExamples(Module):
    def forward(self, x):
        if not self.training:
            return super().forward(x)
        with torch.no_grad():
            self.num_batches_tracked += x.shape[0]  # counts examples, not batches
            a = 1 / self.num_batches_tracked.item() if self.momentum is None else self.momentum
            self.running_mean.mul_(1 - a).add_(a * x.mean(dim=DIMS))
            self.running_var.mul_(1 - a).add_(a * x.var(dim=DIMS, unbiased=True))
        return Function.apply(x, self.weight, self.bias, self.eps)


class FreshLayerNormFlattensAllButBatch(LayerNorm):
    def forward(self, x):
        flat = x.reshape(x.shape[0], -1)
        mean = flat.mean(-1, keepdim=True)
        var = flat.var(-1, unbiased=False, keepdim=True)
        return ((flat - mean) / torch.sqrt(var + self.eps)).reshape(x.shape) * self.weight + self.bias


class FreshInstanceStdPlusEps(InstanceNorm):
    def forward(self, x):
        mean, std = x.mean(dim=(2, 3), keepdim=True), x.std(dim=(2, 3), keepdim=True)
        return (x - mean) / (std + self.eps) * per_channel(self.weight) + per_channel(self.bias)


class FreshGroupsOfGChannels(GroupNorm):
    def forward(self, x):
        N, C, H, W = x.shape
        grouped = x.reshape(N, C // self.num_groups, self.num_groups, H, W)  # G channels per group
        mean = grouped.mean(dim=(2, 3, 4), keepdim=True)
        var = grouped.var(dim=(2, 3, 4), unbiased=False, keepdim=True)
        x_hat = ((grouped - mean) / torch.sqrt(var + self.eps)).reshape(N, C, H, W)
        return x_hat * per_channel(self.weight) + per_channel(self.bias)


class FreshRMSOverAllButBatch(RMSNorm):
    def forward(self, x):
        eps = torch.finfo(x.dtype).eps if self.eps is None else self.eps
        rms = torch.sqrt(x.pow(2).mean(dim=tuple(range(1, x.dim())), keepdim=True) + eps)
        return self.weight * x / rms


class FreshRMSGammaColumn(RMSNorm):
    def forward(self, x):
        dims = tuple(range(-len(self.normalized_shape), 0))
        eps = torch.finfo(x.dtype).eps if self.eps is None else self.eps
        return self.weight[..., None] * x / torch.sqrt(x.pow(2).mean(dim=dims, keepdim=True) + eps)


FRESH = [  # (exercise, wrong answer, words of the diagnosis)
    ("2.1", fresh_variance_mean_over_batch_size, ["the path through σ² (eq. (2.5)) is 25 (= m/N)",
                                                  "its mean, mean(g·x̂), divides by N = 4"]),
    ("2.2", FreshVarMeanUnpackedBackwards, ["the mean μ and the variance σ² are exchanged",
                                             "The NaN come from √ of a negative μ"]),
    ("2.2", FreshBiasNotViewed, ["Your `bias` of shape (3,) = (C,) lines up with the LAST axis (W)"]),
    ("2.3", FreshMomentumPassedAsEps, ["your ε is 0.1 but should be 1e-05"]),
    ("2.3", FreshCountsExamples, ["num_batches_tracked is 4 but should be 1"]),
    ("2.4", FreshLayerNormFlattensAllButBatch, ["your mean μ and variance σ² are computed over (T, D)"]),
    ("2.5", FreshInstanceStdPlusEps, ["the unbiased variance", "ε is outside the square root"]),
    ("2.6", FreshGroupsOfGChannels, ["blocks of 3 consecutive channels of each example (GroupNorm's set for "
                                     "num_groups = 2)"]),
    ("2.7", FreshRMSOverAllButBatch, ["your mean square mean(x²) is computed over (T, D)"]),
    ("2.7", FreshRMSGammaColumn, ["`self.weight` of shape (8, 1) = (D, 1)", "view it as (1, 1, 8) = (1, 1, D)"]),
]


@pytest.mark.parametrize("exercise_id, wrong, words", [
    pytest.param(exercise_id, wrong, words, marks=exercise(exercise_id), id=wrong.__name__)
    for exercise_id, wrong, words in FRESH])
def test_fresh_mistakes_are_named(exercise_id, wrong, words):
    assert_diagnoses(UNSEEN_CHECKS[exercise_id], wrong, *words)


@exercise("2.4")
def test_another_eps_in_a_single_group_is_still_recovered_when_nothing_else_fits():
    case = checks.LAYER_CASES[4]  # float64, one example of 7 values: a single group, so no spread to compare
    x = checks._trailing_input(checks.EX_LAYER, case)
    spec = checks._trailing_spec(case, "LayerNorm", "eq. (2.10)", case.eps, "the eps argument", centred=True)
    wrong = (x - x.mean(-1, keepdim=True)) / torch.sqrt(x.var(-1, unbiased=False, keepdim=True) + 0.1)
    assert "your ε is 0.1 but should be 1e-05" in checks.normalisation_problems(x, wrong, spec)


# ================================================================================================ round 4
# 29 wrong answers written before this round's general readings, of kinds in neither held-out set: right numbers
# in the wrong place (axes moved then reshaped, left merged, channels-last, a tuple, γ/β gradients exchanged), the
# two means of eq. (2.8) exchanged, a keepdim statistic added in place into a (C,) buffer, α computed before
# counting, momentum=None used as a number, … 18 were named as first written; the other 11 now are, by readings
# that are not specific to them (core: layout, misplaced results, the failing line's values; eq. (2.8)'s look-alikes
# all at once).
def round4_bw_channels_first_never_moved_back(grad_out, x_hat, weight, inv_std):
    N, C, H, W = grad_out.shape
    g = grad_out.transpose(0, 1).reshape(C, -1)   # (C, m)
    xh = x_hat.transpose(0, 1).reshape(C, -1)
    grad_bias, grad_weight = g.sum(1), (g * xh).sum(1)
    grad_x = (weight * inv_std)[:, None] * (g - g.mean(1, keepdim=True) - xh * (g * xh).mean(1, keepdim=True))
    return grad_x.reshape(N, C, H, W), grad_weight, grad_bias   # reshaped without moving C back

def round4_bw_returns_channel_rows(grad_out, x_hat, weight, inv_std):
    N, C, H, W = grad_out.shape
    g = grad_out.transpose(0, 1).reshape(C, -1)
    xh = x_hat.transpose(0, 1).reshape(C, -1)
    grad_x = (weight * inv_std)[:, None] * (g - g.mean(1, keepdim=True) - xh * (g * xh).mean(1, keepdim=True))
    return grad_x, (g * xh).sum(1), g.sum(1)   # (C, m) returned as it is

def round4_bw_inv_std_squared(grad_out, x_hat, weight, inv_std):
    mean_g = grad_out.mean(DIMS, keepdim=True)
    mean_gx = (grad_out * x_hat).mean(DIMS, keepdim=True)
    grad_x = per_channel(weight * inv_std ** 2) * (grad_out - mean_g - x_hat * mean_gx)
    return grad_x, (grad_out * x_hat).sum(DIMS), grad_out.sum(DIMS)

def round4_bw_means_over_every_value(grad_out, x_hat, weight, inv_std):
    grad_x = per_channel(weight * inv_std) * (grad_out - grad_out.mean() - x_hat * (grad_out * x_hat).mean())
    return grad_x, (grad_out * x_hat).sum(DIMS), grad_out.sum(DIMS)

def round4_bw_weight_grad_times_gamma(grad_out, x_hat, weight, inv_std):
    grad_x, _, grad_bias = SOLVED["batch_norm_backward"](grad_out, x_hat, weight, inv_std)
    return grad_x, (grad_out * x_hat).sum(DIMS) * weight, grad_bias

def round4_bw_mean_terms_swapped_factors(grad_out, x_hat, weight, inv_std):
    mean_g = grad_out.mean(DIMS, keepdim=True)
    mean_gx = (grad_out * x_hat).mean(DIMS, keepdim=True)
    grad_x = per_channel(weight * inv_std) * (grad_out - mean_gx - x_hat * mean_g)   # the two means exchanged
    return grad_x, (grad_out * x_hat).sum(DIMS), grad_out.sum(DIMS)

# ----- 2.2
class Round4FnReturnsTuple(Function):
    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        mean = x.mean(dim=DIMS, keepdim=True)
        inv_std = 1 / torch.sqrt(x.var(dim=DIMS, unbiased=False, keepdim=True) + eps)
        x_hat = (x - mean) * inv_std
        ctx.save_for_backward(x_hat, weight, inv_std.flatten())
        return x_hat * per_channel(weight) + per_channel(bias), x_hat

class Round4FnBackwardSwapsParams(Function):
    @staticmethod
    def backward(ctx, grad_out):
        x_hat, weight, inv_std = ctx.saved_tensors
        grad_x, grad_weight, grad_bias = SOLVED["batch_norm_backward"](grad_out, x_hat, weight, inv_std)
        return grad_x, grad_bias, grad_weight, None

class Round4FnSavesStd(Function):
    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        mean = x.mean(dim=DIMS, keepdim=True)
        std = torch.sqrt(x.var(dim=DIMS, unbiased=False, keepdim=True) + eps)
        x_hat = (x - mean) / std
        ctx.save_for_backward(x_hat, weight, std.flatten())   # σ, where backward wants s = 1/σ
        return x_hat * per_channel(weight) + per_channel(bias)

class Round4FnHardCodedEps(Function):
    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        mean = x.mean(dim=DIMS, keepdim=True)
        inv_std = 1 / torch.sqrt(x.var(dim=DIMS, unbiased=False, keepdim=True) + 1e-5)
        x_hat = (x - mean) * inv_std
        ctx.save_for_backward(x_hat, weight, inv_std.flatten())
        return x_hat * per_channel(weight) + per_channel(bias)

# ----- 2.3
class Round4ModKeepdimStatistic(Module):
    def forward(self, x):
        if not self.training:
            return super().forward(x)
        with torch.no_grad():
            self.num_batches_tracked += 1
            a = 1 / self.num_batches_tracked.item() if self.momentum is None else self.momentum
            self.running_mean.mul_(1 - a).add_(a * x.mean(dim=DIMS, keepdim=True))
            self.running_var.mul_(1 - a).add_(a * x.var(dim=DIMS, keepdim=True))
        return Function.apply(x, self.weight, self.bias, self.eps)

class Round4ModAlphaBeforeIncrement(Module):
    def forward(self, x):
        if not self.training:
            return super().forward(x)
        with torch.no_grad():
            a = self.momentum if self.momentum is not None else 1 / self.num_batches_tracked.item()
            self.num_batches_tracked += 1
            self.running_mean.mul_(1 - a).add_(a * x.mean(dim=DIMS))
            self.running_var.mul_(1 - a).add_(a * x.var(dim=DIMS))
        return Function.apply(x, self.weight, self.bias, self.eps)

class Round4ModEvalBatchVariance(Module):
    def forward(self, x):
        if not self.training:
            var = x.var(dim=DIMS, unbiased=False)
            scale = per_channel(self.weight / torch.sqrt(var + self.eps))
            return (x - per_channel(self.running_mean)) * scale + per_channel(self.bias)
        return super().forward(x)

class Round4ModEvalStdPlusEps(Module):
    def forward(self, x):
        if not self.training:
            scale = per_channel(self.weight / (self.running_var.sqrt() + self.eps))
            return (x - per_channel(self.running_mean)) * scale + per_channel(self.bias)
        return super().forward(x)

class Round4ModMomentumNoneInline(Module):
    def forward(self, x):
        if not self.training:
            return super().forward(x)
        with torch.no_grad():
            self.num_batches_tracked += 1
            self.running_mean.copy_((1 - self.momentum) * self.running_mean + self.momentum * x.mean(dim=DIMS))
            self.running_var.copy_((1 - self.momentum) * self.running_var + self.momentum * x.var(dim=DIMS))
        return Function.apply(x, self.weight, self.bias, self.eps)

class Round4ModUpdatesInEvalToo(Module):
    def forward(self, x):
        with torch.no_grad():
            self.num_batches_tracked += 1
            a = 1 / self.num_batches_tracked.item() if self.momentum is None else self.momentum
            self.running_mean.mul_(1 - a).add_(a * x.mean(dim=DIMS))
            self.running_var.mul_(1 - a).add_(a * x.var(dim=DIMS))
        if not self.training:
            scale = per_channel(self.weight / torch.sqrt(self.running_var + self.eps))
            return (x - per_channel(self.running_mean)) * scale + per_channel(self.bias)
        return Function.apply(x, self.weight, self.bias, self.eps)

# ----- 2.4
class Round4LnParametersFlattened(LayerNorm):
    def forward(self, x):
        dims = tuple(range(-len(self.normalized_shape), 0))
        mean, var = x.mean(dims, keepdim=True), x.var(dims, unbiased=False, keepdim=True)
        return (x - mean) / torch.sqrt(var + self.eps) * self.weight.flatten() + self.bias.flatten()

class Round4LnStdUnbiasedSquared(LayerNorm):
    def forward(self, x):
        dims = tuple(range(-len(self.normalized_shape), 0))
        mean, std = x.mean(dims, keepdim=True), x.std(dims, keepdim=True)
        return (x - mean) / torch.sqrt(std ** 2 + self.eps) * self.weight + self.bias

class Round4LnFlattenedTrailing(LayerNorm):
    def forward(self, x):
        k = len(self.normalized_shape)
        flat = x.flatten(-k)   # (..., n)
        x_hat = (flat - flat.mean(-1, keepdim=True)) / torch.sqrt(flat.var(-1, unbiased=False, keepdim=True) + self.eps)
        return x_hat * self.weight.flatten() + self.bias.flatten()   # never viewed back

# ----- 2.5
class Round4InWidthMajorFlatten(InstanceNorm):
    def forward(self, x):
        N, C, H, W = x.shape
        flat = x.permute(0, 1, 3, 2).reshape(N, C, -1)
        x_hat = (flat - flat.mean(-1, keepdim=True)) / torch.sqrt(flat.var(-1, unbiased=False, keepdim=True) + self.eps)
        return x_hat.reshape(N, C, H, W) * per_channel(self.weight) + per_channel(self.bias)

class Round4InParametersSwapped(InstanceNorm):
    def forward(self, x):
        mean, var = x.mean((2, 3), keepdim=True), x.var((2, 3), unbiased=False, keepdim=True)
        return (x - mean) / torch.sqrt(var + self.eps) * per_channel(self.bias) + per_channel(self.weight)

class Round4InChannelsLast(InstanceNorm):
    def forward(self, x):
        h = x.permute(0, 2, 3, 1)   # (N, H, W, C)
        mean, var = h.mean((1, 2), keepdim=True), h.var((1, 2), unbiased=False, keepdim=True)
        return (h - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias   # left channels-last

# ----- 2.6
class Round4GnStatisticsWithoutKeepdim(GroupNorm):
    def forward(self, x):
        N, C, H, W = x.shape
        grouped = x.reshape(N, self.num_groups, -1)
        mean, var = grouped.mean(-1), grouped.var(-1, unbiased=False)
        x_hat = ((grouped - mean) / torch.sqrt(var + self.eps)).reshape(N, C, H, W)
        return x_hat * per_channel(self.weight) + per_channel(self.bias)

class Round4GnGroupsAcrossBatch(GroupNorm):
    def forward(self, x):
        N, C, H, W = x.shape
        grouped = x.reshape(self.num_groups, -1)   # forgot N: groups straddle examples
        mean, var = grouped.mean(-1, keepdim=True), grouped.var(-1, unbiased=False, keepdim=True)
        x_hat = ((grouped - mean) / torch.sqrt(var + self.eps)).reshape(N, C, H, W)
        return x_hat * per_channel(self.weight) + per_channel(self.bias)

class Round4GnGroupSizeTwo(GroupNorm):
    def forward(self, x):
        N, C, H, W = x.shape
        grouped = x.reshape(N, -1, 2, H, W)   # two channels per group, whatever num_groups says
        mean, var = grouped.mean((2, 3, 4), keepdim=True), grouped.var((2, 3, 4), unbiased=False, keepdim=True)
        x_hat = ((grouped - mean) / torch.sqrt(var + self.eps)).reshape(N, C, H, W)
        return x_hat * per_channel(self.weight) + per_channel(self.bias)

# ----- 2.7
class Round4RmsEpsNoneAdded(RMSNorm):
    def forward(self, x):
        dims = tuple(range(-len(self.normalized_shape), 0))
        return x * torch.rsqrt(x.pow(2).mean(dims, keepdim=True) + self.eps) * self.weight

class Round4RmsDividesByTheNorm(RMSNorm):
    def forward(self, x):
        dims = tuple(range(-len(self.normalized_shape), 0))
        eps = torch.finfo(x.dtype).eps if self.eps is None else self.eps
        return x / (x.norm(dim=dims, keepdim=True) + eps) * self.weight

class Round4RmsFinfoFloat64(RMSNorm):
    def forward(self, x):
        dims = tuple(range(-len(self.normalized_shape), 0))
        eps = torch.finfo(torch.float64).eps if self.eps is None else self.eps
        return x / torch.sqrt(x.pow(2).mean(dims, keepdim=True) + eps) * self.weight

class Round4RmsFlattenedOutput(RMSNorm):
    def forward(self, x):
        k = len(self.normalized_shape)
        eps = torch.finfo(x.dtype).eps if self.eps is None else self.eps
        flat = x.flatten(-k)
        return flat / torch.sqrt(flat.pow(2).mean(-1, keepdim=True) + eps) * self.weight.flatten()

ROUND4 = [  # (exercise, wrong answer, words of the diagnosis)
    ("2.1", round4_bw_channels_first_never_moved_back, ["your numbers are right, but laid out as (C, N, H, W) and "
                                                        "then reshaped to (N, C, H, W)", ".permute(1, 0, 2, 3)"]),
    ("2.1", round4_bw_returns_channel_rows, ["reshaped to (C, N·H·W)", "then reshape to (N, C, H, W)"]),
    ("2.1", round4_bw_inv_std_squared, ["s = 1/√(σ² + ε) is applied twice"]),
    ("2.1", round4_bw_means_over_every_value, ["are over (N, C, H, W) (every value at once)"]),
    ("2.1", round4_bw_weight_grad_times_gamma, ["an extra factor γ — dL/dγ = Σ g·x̂ takes g = dL/dy itself"]),
    ("2.1", round4_bw_mean_terms_swapped_factors, ["you used γ·s·mean(g·x̂) where γ·s·mean(g) goes",
                                                   "you used γ·s·x̂·mean(g) where γ·s·x̂·mean(g·x̂) goes"]),
    ("2.2", Round4FnReturnsTuple, ["you returned a tuple of 2, not a tensor; its item 0 is the right output"]),
    ("2.2", Round4FnBackwardSwapsParams, ["are in each other's places", "(grad_x, grad_weight, grad_bias, None)"]),
    ("2.2", Round4FnSavesStd, ["you multiplied by σ = √(σ² + ε) where eq. (2.8) has s = 1/√(σ² + ε)"]),
    ("2.2", Round4FnHardCodedEps, ["your ε is 1e-05 (= 1e-5) but should be 0.1 (the eps argument)"]),
    ("2.3", Round4ModKeepdimStatistic, ["writes its result into a tensor of shape (3,) = (C,)",
                                        "(1, 3, 1, 1) = (1, C, 1, 1), the same entries with extra axes of size 1",
                                        "reduce without keepdim=True"]),
    ("2.3", Round4ModAlphaBeforeIncrement, ["In this line `self.num_batches_tracked` is 0",
                                            "add 1 to num_batches_tracked first, then compute α"]),
    ("2.3", Round4ModEvalBatchVariance, ["your variance is this batch's mean and variance"]),
    ("2.3", Round4ModEvalStdPlusEps, ["ε is outside the square root: divide by √(running_var + ε)"]),
    ("2.3", Round4ModMomentumNoneInline, ["In this line `self.momentum` is None",
                                          "This case passes momentum=None, which means a cumulative average",
                                          "handle momentum=None before any arithmetic with it"]),
    ("2.3", Round4ModUpdatesInEvalToo, ["running statistics that this eval batch had already updated"]),
    ("2.4", Round4LnParametersFlattened, ["view `self.weight` as (1, 3, 4, 4) = (1, C, H, W)"]),
    ("2.4", Round4LnStdUnbiasedSquared, ["you divide by the unbiased variance"]),
    ("2.4", Round4LnFlattenedTrailing, ["your numbers are right, but in shape (2, 48) = (N, C·H·W)",
                                        "reshape back to (N, C, H, W)"]),
    ("2.5", Round4InWidthMajorFlatten, ["laid out as (N, C, W, H) and then reshaped to (N, C, H, W)",
                                        ".permute(0, 1, 3, 2)"]),
    ("2.5", Round4InParametersSwapped, ["γ and β are swapped"]),
    ("2.5", Round4InChannelsLast, ["your axes are in the order (N, H, W, C)", ".permute(0, 3, 1, 2)"]),
    ("2.6", Round4GnStatisticsWithoutKeepdim, ["`mean` was reduced without keepdim=True"]),
    ("2.6", Round4GnGroupsAcrossBatch, ["never across the batch axis"]),
    ("2.6", Round4GnGroupSizeTwo, ["blocks of 2 consecutive channels of each example (GroupNorm's set for "
                                   "num_groups = 4)", ": reshape to (N, G, C/G, H, W)"]),
    ("2.7", Round4RmsEpsNoneAdded, ["This case passes eps=None", "eps = torch.finfo(x.dtype).eps if self.eps is "
                                                                 "None else self.eps"]),
    ("2.7", Round4RmsDividesByTheNorm, ["the sum of squares Σx²"]),
    ("2.7", Round4RmsFinfoFloat64, ["ε is missing under the square root (or far too small)", "1.19e-07"]),
    ("2.7", Round4RmsFlattenedOutput, ["your numbers are right, but in shape (3, 24) = (B, T·D)",
                                       "reshape back to (B, T, D)"]),
]


@pytest.mark.parametrize("exercise_id, wrong, words", [
    pytest.param(exercise_id, wrong, words, marks=exercise(exercise_id), id=wrong.__name__)
    for exercise_id, wrong, words in ROUND4])
def test_round4_mistakes_are_named(exercise_id, wrong, words):
    assert_diagnoses(UNSEEN_CHECKS[exercise_id], wrong, *words)


class GroupSizeHardCoded(GroupNorm):
    def forward(self, x):
        N, C, H, W = x.shape
        grouped = x.reshape(N, C // 4, 4, H, W)  # four channels per group, whatever num_groups says
        mean = grouped.mean(dim=(2, 3, 4), keepdim=True)
        var = grouped.var(dim=(2, 3, 4), unbiased=False, keepdim=True)
        return ((grouped - mean) / torch.sqrt(var + self.eps)).reshape(N, C, H, W) * per_channel(self.weight) \
            + per_channel(self.bias)


@exercise("2.6")
def test_a_size_written_into_a_reshape_is_named_even_where_it_equals_one_of_the_cases():
    assert_diagnoses(checks.check_group_norm, GroupSizeHardCoded, "4 is hard-coded, written into this line (in this "
                     "case 4 = H = W only by chance)", "(N, C, H, W = x.shape; G = self.num_groups)",
                     "they multiply to 128", error=LearnerError)


@exercise("2.1")
def test_exchanged_terms_are_said_only_when_they_explain_every_coefficient():
    case = checks.BACKWARD_CASES[0]
    x = checks._image_batch(checks.EX_BACKWARD, case)
    weight, _ = checks._affine_parameters(checks.EX_BACKWARD, (case.shape[1],), case)
    grad_out = checks.EX_BACKWARD.randn(*case.shape, key=(case.label, "grad_out"), dtype=case.dtype)
    x_hat, inv_std = checks._statistics(x, case.eps)
    paths = checks._batch_norm_paths(x_hat, weight, inv_std, grad_out, case, spec=checks._batch_norm_spec(x, case))
    basis, lookalikes = paths.basis(), paths.lookalikes()
    swapped = basis["direct"] - lookalikes["x̂·mean(g)"][0] - lookalikes["mean(g·x̂)"][0]
    assert "you used γ·s·mean(g·x̂) where γ·s·mean(g) goes" in checks.paths_problems(swapped, paths)
    assert checks.paths.exchanged_terms(swapped + basis["direct"], paths, 0.05, torch.float64) is None  # 2·direct
    assert checks.paths.exchanged_terms(swapped + x_hat * x_hat, paths, 0.05, torch.float64) is None  # not exact


# ----- ten fresh ones, written after round 4's readings and run before any change: 7 were named as first written
# (the γ gradient over the batch axis, the running variance's weights swapped, a column mean in eval mode, LayerNorm
# over the leading axes, InstanceNorm with running statistics, GroupNorm chunked over the batch, γ added). The other
# three led to general readings: a variable named after one quantity holding another's shape (core,
# Case.quantities), the s your backward uses read per channel as another formula of eq. (2.1), (mean x)² among the
# moments.
def fresh4_einsum_over_the_batch(grad_out, x_hat, weight, inv_std):
    grad_x, _, _ = SOLVED["batch_norm_backward"](grad_out, x_hat, weight, inv_std)
    grad_weight = torch.einsum("nchw,nchw->n", grad_out, x_hat)   # kept n, not c
    grad_bias = torch.einsum("nchw->c", grad_out)
    return grad_x, grad_weight, grad_bias

class Fresh4UnpackedOutOfOrder(Function):
    @staticmethod
    def backward(ctx, grad_out):
        weight, x_hat, inv_std = ctx.saved_tensors   # saved as (x_hat, weight, inv_std)
        grad_x, grad_weight, grad_bias = SOLVED["batch_norm_backward"](grad_out, x_hat, weight, inv_std)
        return grad_x, grad_weight, grad_bias, None

class Fresh4SavedStdPlusEps(Function):
    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        mean = x.mean(dim=DIMS, keepdim=True)
        var = x.var(dim=DIMS, unbiased=False, keepdim=True)
        x_hat = (x - mean) / torch.sqrt(var + eps)
        ctx.save_for_backward(x_hat, weight, (1 / (var.sqrt() + eps)).flatten())   # a second formula for s
        return x_hat * per_channel(weight) + per_channel(bias)

class Fresh4VarianceWeightsSwapped(Module):
    def forward(self, x):
        if not self.training:
            return super().forward(x)
        with torch.no_grad():
            self.num_batches_tracked += 1
            a = 1 / self.num_batches_tracked.item() if self.momentum is None else self.momentum
            self.running_mean.mul_(1 - a).add_(a * x.mean(dim=DIMS))
            self.running_var.copy_(a * self.running_var + (1 - a) * x.var(dim=DIMS))   # weights swapped here only
        return Function.apply(x, self.weight, self.bias, self.eps)

class Fresh4EvalMeanAsColumn(Module):
    def forward(self, x):
        if not self.training:
            scale = per_channel(self.weight / torch.sqrt(self.running_var + self.eps))
            return (x - self.running_mean.view(-1, 1)) * scale + per_channel(self.bias)
        return super().forward(x)

class Fresh4LeadingAxes(LayerNorm):
    def forward(self, x):
        dims = tuple(range(len(self.normalized_shape)))   # the first axes, not the last
        mean, var = x.mean(dims, keepdim=True), x.var(dims, unbiased=False, keepdim=True)
        return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias

class Fresh4InstanceRunningStats(InstanceNorm):
    def forward(self, x):
        mean, var = x.mean((2, 3), keepdim=True), x.var((2, 3), unbiased=False, keepdim=True)
        if self.training:
            self.saved = (mean.mean(0, keepdim=True).detach(), var.mean(0, keepdim=True).detach())
        else:
            mean, var = self.saved
        return (x - mean) / torch.sqrt(var + self.eps) * per_channel(self.weight) + per_channel(self.bias)

class Fresh4ChunksOverTheBatch(GroupNorm):
    def forward(self, x):
        parts = []
        for part in torch.chunk(x, self.num_groups, dim=0):   # dim=0: the examples, not the channels
            mean, var = part.mean((1, 2, 3), keepdim=True), part.var((1, 2, 3), unbiased=False, keepdim=True)
            parts.append((part - mean) / torch.sqrt(var + self.eps))
        return torch.cat(parts, dim=0) * per_channel(self.weight) + per_channel(self.bias)

class Fresh4SquaredMean(RMSNorm):
    def forward(self, x):
        dims = tuple(range(-len(self.normalized_shape), 0))
        eps = torch.finfo(x.dtype).eps if self.eps is None else self.eps
        return x / torch.sqrt(x.mean(dims, keepdim=True) ** 2 + eps) * self.weight   # (mean x)², not mean(x²)

class Fresh4GainAdded(RMSNorm):
    def forward(self, x):
        dims = tuple(range(-len(self.normalized_shape), 0))
        eps = torch.finfo(x.dtype).eps if self.eps is None else self.eps
        return x / torch.sqrt(x.pow(2).mean(dims, keepdim=True) + eps) + self.weight   # + γ, not × γ


FRESH4 = [  # (exercise, wrong answer, words of the diagnosis)
    ("2.1", fresh4_einsum_over_the_batch, ["shape (4,) but expected (3,)", "one entry per channel"]),
    ("2.2", Fresh4UnpackedOutOfOrder, ["Your `x_hat` has shape (3,) = (C,), but x̂ is (4, 3, 5, 5) = (N, C, H, W)",
                                       "that is the shape of γ or β or s", "unpacked in another order"]),
    ("2.2", Fresh4SavedStdPlusEps, ["the s = 1/√(σ² + ε) your dL/dx uses is another formula",
                                    "ε is outside the square root"]),
    ("2.3", Fresh4VarianceWeightsSwapped, ["momentum is applied backwards"]),
    ("2.3", Fresh4EvalMeanAsColumn, ["view it as (1, 3, 1, 1) = (1, C, 1, 1)"]),
    ("2.4", Fresh4LeadingAxes, ["computed over (B) (the batch axis)", "reduce over dim=-1"]),
    ("2.5", Fresh4InstanceRunningStats, ["your output in eval mode differs from training mode"]),
    ("2.6", Fresh4ChunksOverTheBatch, ["computed over (C, H, W) (LayerNorm's set"]),
    ("2.7", Fresh4SquaredMean, ["the square of the mean, (mean x)²"]),
    ("2.7", Fresh4GainAdded, ["your output is shifted by 1 everywhere", "RMSNorm has no β"]),
]


@pytest.mark.parametrize("exercise_id, wrong, words", [
    pytest.param(exercise_id, wrong, words, marks=exercise(exercise_id), id=wrong.__name__)
    for exercise_id, wrong, words in FRESH4])
def test_fresh_round4_mistakes_are_named(exercise_id, wrong, words):
    assert_diagnoses(UNSEEN_CHECKS[exercise_id], wrong, *words)
