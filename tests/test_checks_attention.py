"""Every check of Chapter 01 passes on the solution and names each wrong answer in words a learner can act on.

The wrong answers are written the way a learner writes them (functions and classes with the exercise's
signature), never built from the checks' own references. Each test carries its exercise's marker:
``pytest -m ex1_4`` runs the tests of Exercise 1.4.
"""
import contextlib
import io
import math

import pytest
import torch
import torch.nn as nn
from einops import rearrange
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.checks_harness import assert_diagnoses, assert_passes, assert_stub_passes_through, exercise
from tests.solution_code import solution_namespace
from utils.checks import CheckFailure, LearnerError, core
from utils.checks import attention as checks

CHAPTER = "01_attention"


@pytest.fixture(scope="module")
def solved():
    """The reference answers: the names defined by the solution notebook's exercise cells."""
    return solution_namespace(CHAPTER, ("def attention(",))


def stub(exercise_id, name):
    def untouched(*args, **kwargs):
        raise NotImplementedError(f"Exercise {exercise_id}: write the body of `{name}`, then run the check cell.")
    return untouched


# ===== Exercise 1.1 — attention weights ========================================================================

def scores_of(q, k, scale=None):
    return q @ k.transpose(-2, -1) / (math.sqrt(q.shape[-1]) if scale is None else scale)


def weights_ok(q, k, mask=None):
    scores = scores_of(q, k)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return scores.softmax(dim=-1)


def weights_own_softmax(q, k, mask=None):  # a correct softmax written out: subtract the max, exp, normalise
    scores = scores_of(q, k)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    e = torch.exp(scores - scores.amax(dim=-1, keepdim=True))
    return e / e.sum(dim=-1, keepdim=True)


def weights_fill_minus_1e9(q, k, mask=None):
    scores = scores_of(q, k)
    return (scores if mask is None else scores.masked_fill(~mask, -1e9)).softmax(-1)


def weights_fill_finfo_min(q, k, mask=None):
    scores = scores_of(q, k)
    return (scores if mask is None else scores.masked_fill(~mask, torch.finfo(q.dtype).min)).softmax(-1)


def weights_with(scale=None, dim=-1, fill=float("-inf"), invert=False, after_softmax=False, use_mask=True):
    """A learner's attention_weights with one thing changed."""
    def attention_weights(q, k, mask=None):
        scores = scores_of(q, k, scale(q, k) if scale else None)
        if mask is not None and use_mask and not after_softmax:
            scores = scores.masked_fill(mask if invert else ~mask, fill)
        weights = scores.softmax(dim=dim)
        if mask is not None and after_softmax:
            weights = weights.masked_fill(~mask, 0.0)
        return weights
    return attention_weights


def weights_keys_on_rows(q, k, mask=None):
    scores = k @ q.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return scores.softmax(dim=-1)


def weights_keys_on_rows_transposed_back(q, k, mask=None):  # K Qᵀ, then transposed to get the shape right
    scores = (k @ q.transpose(-2, -1) / math.sqrt(q.shape[-1])).softmax(dim=-1).transpose(-2, -1)
    return scores if mask is None else scores.masked_fill(~mask, 0.0)


def weights_no_max_subtracted(q, k, mask=None):
    scores = scores_of(q, k)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    e = torch.exp(scores)
    return e / e.sum(dim=-1, keepdim=True)


def weights_sum_without_keepdim(q, k, mask=None):
    scores = scores_of(q, k)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    e = torch.exp(scores - scores.amax(dim=-1, keepdim=True))
    return e / e.sum(dim=-1)


def weights_float32_inside(q, k, mask=None):
    return weights_ok(q.float(), k.float(), mask).to(q.dtype)


def weights_additive_mask(q, k, mask=None):
    scores = scores_of(q, k)
    if mask is not None:
        scores = scores - 10.0 * (~mask)
    return scores.softmax(-1)


def weights_index_assignment(q, k, mask=None):
    scores = scores_of(q, k)
    if mask is not None:
        scores[~mask] = float("-inf")  # works only when the mask has the scores' full shape
    return scores.softmax(-1)


def weights_no_softmax(q, k, mask=None):
    return scores_of(q, k)


def weights_global_normalisation(q, k, mask=None):
    e = weights_ok(q, k, mask) * 0 + torch.exp(scores_of(q, k) if mask is None else
                                               scores_of(q, k).masked_fill(~mask, float("-inf")))
    return e / e.sum()


def weights_epsilon_in_denominator(q, k, mask=None):  # "to avoid dividing by 0"
    scores = scores_of(q, k)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    e = torch.exp(scores - scores.amax(dim=-1, keepdim=True))
    return e / (e.sum(dim=-1, keepdim=True) + 1e-6)


def weights_divided_by_the_max(q, k, mask=None):  # "normalise" by the largest exponential, not the sum
    scores = scores_of(q, k)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    e = torch.exp(scores - scores.amax(dim=-1, keepdim=True))
    return e / e.amax(dim=-1, keepdim=True)


def weights_wrong_mask_axes(q, k, mask=None):
    scores = scores_of(q, k)
    if mask is not None:
        scores = scores.masked_fill(~mask.transpose(-2, -1), float("-inf"))  # "the mask is (Tk, Tq)"
    return scores.softmax(-1)


ATTENTION_WEIGHTS_WRONG = [
    (weights_with(scale=lambda q, k: 1.0), ["forget to divide the scores by √d_k", "a = 1"]),
    (weights_with(scale=lambda q, k: q.shape[-1]), ["divided the scores by d_k", "1/d_k"]),
    (weights_with(scale=lambda q, k: 1 / math.sqrt(q.shape[-1])), ["multiplied the scores by √d_k"]),
    (weights_with(scale=lambda q, k: -math.sqrt(q.shape[-1])), ["sign is flipped"]),
    (weights_with(scale=lambda q, k: math.sqrt(k.shape[-2])), ["number of keys", "1/√d_k"]),
    (weights_with(dim=-2), ["softmax over the wrong axis", "dim=-1"]),
    (weights_with(after_softmax=True), ["zeroed the forbidden weights after the softmax", "renormalise"]),
    (weights_with(invert=True), ["inverted"]),
    (weights_with(fill=0.0), ["filled the forbidden scores with 0", "-inf"]),
    (weights_with(fill=-1e4), ["finite fill value", "float('-inf')"]),
    (weights_with(fill=-100.0), ["take all the weight", "finite fill value", "eq. (1.2)"]),
    (weights_with(fill=-10.0), ["finite fill value of -10", "eq. (1.2)"]),
    (weights_with(use_mask=False), ["mask was not applied"]),
    (weights_additive_mask, ["you added -10 to the forbidden scores"]),
    (weights_keys_on_rows, ["last two axes swapped", "(B=2, H=3, Tk=7, Tq=5)", "K Qᵀ", "softmax over the wrong axis"]),
    (weights_keys_on_rows_transposed_back, ["softmax over the wrong axis"]),
    (weights_no_max_subtracted, ["NaN/inf on large scores", "subtract each row's maximum"]),
    (weights_float32_inside, ["float32 precision"]),
    (lambda q, k, mask=None: weights_ok(q.float(), k.float(), mask), ["dtype torch.float32 but expected "
                                                                      "torch.float64"]),
    (weights_no_softmax, ["the scores themselves", "softmax over the keys"]),
    (weights_wrong_mask_axes, ["give weight", "where the mask is False there", "query 0, key 1"]),
    (lambda q, k, mask=None: weights_ok(q, k, mask).log(), ["logarithms of weights", "log_softmax"]),
    (lambda q, k, mask=None: (scores_of(q, k) if mask is None else scores_of(q, k) + mask).softmax(-1),
     ["you added -1 to the forbidden scores"]),
    (lambda q, k, mask=None: (scores_of(q, k) if mask is None else scores_of(q, k) * mask).softmax(-1),
     ["filled the forbidden scores with 0"]),
    (lambda q, k, mask=None: weights_with(scale=lambda q, k: 1.0)(q, k, mask) / math.sqrt(q.shape[-1]),
     ["sums to 0.3536 (= 1/√d_k)", "after the softmax", "a = 1"]),
    (weights_with(dim=1), ["softmax over the wrong axis", "over the H axis (dim=-3)"]),
    (weights_with(dim=0), ["softmax over the wrong axis", "over the B axis (dim=-4)"]),
    (weights_global_normalisation, ["sum to 1 over every entry at once"]),
    (weights_epsilon_in_denominator, ["slightly off 1", "an ε added"]),
    (weights_divided_by_the_max, ["a factor of its own", "the denominator is not"]),
    (lambda q, k, mask=None: None, ["got None", "forget to return"]),
    (lambda q, k, mask=None: weights_ok(q, k, mask).numpy(), ["got a ndarray, not a torch.Tensor"]),
    (lambda q, k, mask=None: weights_ok(q, k, mask)[..., 0], ["shape (2, 3, 5) but expected (2, 3, 5, 7)",
                                                              "re:missing|removed"]),
]


@exercise("1.1")
def test_attention_weights_solution_passes(solved):
    assert "Exercise 1.1 passed" in assert_passes(checks.check_attention_weights, solved["attention_weights"])


@exercise("1.1")
@pytest.mark.parametrize("right", [weights_ok, weights_own_softmax, weights_fill_minus_1e9, weights_fill_finfo_min])
def test_attention_weights_other_right_answers_pass(right):
    assert_passes(checks.check_attention_weights, right)


@exercise("1.1")
@pytest.mark.parametrize("wrong, words", ATTENTION_WEIGHTS_WRONG)
def test_attention_weights_names_the_mistake(wrong, words):
    assert_diagnoses(checks.check_attention_weights, wrong, *words)


@exercise("1.1")
def test_attention_weights_reads_the_learners_exceptions():
    message = assert_diagnoses(checks.check_attention_weights, lambda q, k, mask=None: (q @ k).softmax(-1),
                               "raised RuntimeError", "k.transpose(-2, -1)", error=LearnerError)
    assert "At line" in message
    assert_diagnoses(checks.check_attention_weights, weights_sum_without_keepdim, "did not broadcast",
                     "7 (= Tk)", "5 (= Tq)", "keepdim=True", error=LearnerError)
    assert_diagnoses(checks.check_attention_weights, weights_index_assignment, "boolean mask used as an index",
                     "masked_fill", error=LearnerError)

    def mask_with_a_head_axis(q, k, mask=None):
        scores = scores_of(q, k)
        return (scores if mask is None else scores.masked_fill(~mask.unsqueeze(1), float("-inf"))).softmax(-1)
    assert_diagnoses(checks.check_attention_weights, mask_with_a_head_axis, "the mask comes broadcastable",
                     "use it as it is", "6 = Tq = Tk", error=LearnerError)


@exercise("1.1")
def test_attention_weights_stub_passes_through():
    assert_stub_passes_through(checks.check_attention_weights, stub("1.1", "attention_weights"))


@exercise("1.1")
def test_attention_weights_nan_rows_are_read_against_the_mask():
    def hides_everything_but_the_future(q, k, mask=None):  # an inverted causal mask leaves the last row empty
        scores = scores_of(q, k)
        return (scores if mask is None else scores.masked_fill(mask, float("-inf"))).softmax(-1)
    assert_diagnoses(checks.check_attention_weights, hides_everything_but_the_future, "NaN exactly in the rows",
                     "inverted")

    def hides_key_zero_too(q, k, mask=None):
        scores = scores_of(q, k)
        if mask is not None:
            mask = mask.clone()
            mask[..., 0] = False
            scores = scores.masked_fill(~mask, float("-inf"))
        return scores.softmax(-1)
    assert_diagnoses(checks.check_attention_weights, hides_key_zero_too, "NaN in", "rows", "at least one key")


@exercise("1.1")
def test_attention_weights_hides_an_allowed_key():
    def always_causal_too(q, k, mask=None):  # "a mask means causal": hides the future whatever the mask says
        scores = scores_of(q, k)
        if mask is not None:
            causal = torch.ones(q.shape[-2], k.shape[-2], dtype=torch.bool).tril()
            scores = scores.masked_fill(~(mask & causal), float("-inf"))
        return scores.softmax(-1)
    assert_diagnoses(checks.check_attention_weights, always_causal_too, "are 0 at", "where attending is allowed",
                     "padding mask", "query 0, key 1")


# ===== Exercise 1.2 — the softmax backward pass =================================================================

def softmax_backward_ok(p, grad_p):
    return p * (grad_p - (grad_p * p).sum(-1, keepdim=True))


SOFTMAX_BACKWARD_WRONG = [
    (lambda p, g: p * g, ["only the diagonal of the Jacobian"]),
    (lambda p, g: p * (1 - p) * g, ["only the diagonal of the Jacobian", "p_j (1 − p_j)"]),
    (lambda p, g: g - (g * p).sum(-1, keepdim=True), ["forgot to multiply by p"]),
    (lambda p, g: p * ((g * p).sum(-1, keepdim=True) - g), ["sign is flipped"]),
    (lambda p, g: p * (g - g.sum(-1, keepdim=True)), ["weighted by p"]),
    (lambda p, g: p * (g - (g * p).sum(0, keepdim=True)), ["summed p⊙g over axis 0", "dim=-1"]),
    (lambda p, g: p * (g - (g * p).sum()), ["every entry", "one number per row"]),
    (lambda p, g: p * (g - (g * p).sum(-1)), ["lined up along the last axis", "keepdim=True"]),
    (lambda p, g: p * (g - (g * p).mean(-1, keepdim=True)), ["0.25·p⊙⟨g,p⟩", "eq. (1.5)"]),
    (lambda p, g: 2 * softmax_backward_ok(p, g), ["2 × the right ones everywhere"]),
    (lambda p, g: torch.zeros_like(p), ["0 × the right ones"]),
    (lambda p, g: softmax_backward_ok(p, g).float(), ["dtype torch.float32 but expected torch.float64"]),
    (lambda p, g: p.clamp_min(1e-3) * (g - (g * p).sum(-1, keepdim=True)), ["where p = 0", "exactly 0"]),
    (lambda p, g: p * (g - (g * p).sum(-1, keepdim=True)) + 0.1 * p * g * g, ["each row of dL/ds must sum to 0",
                                                                             "eq. (1.4)"]),
    (lambda p, g: softmax_backward_ok(p, g)[..., :-1], ["shape", "but expected"]),
    (lambda p, g: p * g - p * (g * p).sum(-1, keepdim=True) * p, ["a factor p too many in the second term"]),
    (lambda p, g: softmax_backward_ok(p, g) * (1 - p), ["eq. (1.5) times (1 − p)", "drop that factor"]),
    (lambda p, g: p * (g - g.mean(-1, keepdim=True)), ["weighted by p"]),
    (lambda p, g: p * (g - torch.einsum("...i,...i->...", p, g)), ["lined up along the last axis"]),
]


@exercise("1.2")
def test_softmax_backward_solution_passes(solved):
    assert_passes(checks.check_softmax_backward, solved["softmax_backward"])


@exercise("1.2")
@pytest.mark.parametrize("wrong, words", SOFTMAX_BACKWARD_WRONG)
def test_softmax_backward_names_the_mistake(wrong, words):
    assert_diagnoses(checks.check_softmax_backward, wrong, *words)


@exercise("1.2")
def test_softmax_backward_reads_a_broadcast_error_as_a_broadcast():
    """A sum without keepdim=True that cannot broadcast is reported as a broadcast, not as a matmul problem."""
    def sum_without_keepdim_on_a_batch(p, g):
        if p.dim() == 2 and p.shape[0] == p.shape[1]:
            return softmax_backward_ok(p, g)
        return p * (g - (g * p).sum(dim=-1))
    message = assert_diagnoses(checks.check_softmax_backward, sum_without_keepdim_on_a_batch, "did not broadcast",
                               "keepdim=True", "5 (= T)", error=LearnerError)
    assert "transpose" not in message


@exercise("1.2")
def test_softmax_backward_stub_passes_through():
    assert_stub_passes_through(checks.check_softmax_backward, stub("1.2", "softmax_backward"))


# ===== Exercise 1.3 — attention as an autograd.Function ========================================================

def make_attention_function(dv_transposed=True, scale_dq=True, scale_dk=True, full_softmax=True, swap=False,
                            drop_dk=False, forward_scale=True, dq_transposed=False, dv_from_scores=False,
                            softmax_backward=softmax_backward_ok, backward_scale=None, dv_scaled=False,
                            softmax_backward_of_dO=False, recompute_unscaled=False):
    """An autograd.Function for attention written as a learner would, with optional bugs."""
    class AttentionFunction(torch.autograd.Function):
        @staticmethod
        def forward(ctx, q, k, v):
            p = weights_ok(q, k) if forward_scale else (q @ k.transpose(-2, -1)).softmax(-1)
            ctx.save_for_backward(q, k, v, p)
            return p @ v

        @staticmethod
        def backward(ctx, grad_out):
            q, k, v, p = ctx.saved_tensors
            if recompute_unscaled:  # "recompute P instead of saving it", without the scale
                p = (q @ k.transpose(-2, -1)).softmax(-1)
            scale = backward_scale(q, k) if backward_scale else 1 / math.sqrt(q.shape[-1])
            grad_p = grad_out if softmax_backward_of_dO else grad_out @ v.transpose(-2, -1)
            grad_s = softmax_backward(p, grad_p) if full_softmax else p * grad_p
            grad_v = (p.transpose(-2, -1) if dv_transposed else p) @ grad_out * (scale if dv_scaled else 1)
            if dv_from_scores:
                grad_v = grad_s.transpose(-2, -1) @ grad_out
            grad_q = (grad_s.transpose(-2, -1) if dq_transposed else grad_s) @ k * (scale if scale_dq else 1)
            grad_k = grad_s.transpose(-2, -1) @ q * (scale if scale_dk else 1)
            if swap:
                grad_q, grad_k = grad_k, grad_q
            return grad_q, None if drop_dk else grad_k, grad_v
    return AttentionFunction


ATTENTION_FUNCTION_WRONG = [
    (dict(dv_transposed=False), ["raised RuntimeError", "transpose", "Tq"]),
    (dict(scale_dq=False), ["dQ is missing the 1/√d_k"]),
    (dict(scale_dk=False), ["dK is missing the 1/√d_k"]),
    (dict(full_softmax=False), ["full softmax backward", "P ⊙ ⟨dP, P⟩"]),
    (dict(swap=True), ["gradient number 0", "shape of k", "returned where dQ belongs"]),
    (dict(drop_dk=True), ["backward returned None for dL/dK"]),
    (dict(forward_scale=False), ["a = 1", "check of Exercise 1.1"]),
    (dict(dq_transposed=True), ["raised RuntimeError", "Pᵀ or dSᵀ", "a transpose too many", "dQ = c·dS K"]),
    (dict(dv_from_scores=True), ["dSᵀ, the gradient of the scores", "eq. (1.7)"]),
    (dict(softmax_backward=lambda p, g: p * (g - g.sum(-1, keepdim=True))), ["check of Exercise 1.2"]),
    (dict(backward_scale=lambda q, k: 1 / math.sqrt(k.shape[-2])), ["dQ's factor is 0.5774 = 1/√Tk", "k.shape[-2]"]),
    (dict(backward_scale=lambda q, k: math.sqrt(q.shape[-1])), ["dQ's factor is 2 (= √d_k)"]),
    (dict(backward_scale=lambda q, k: 1 / q.shape[-1]), ["1/√d_k twice"]),
    (dict(backward_scale=lambda q, k: -1 / math.sqrt(q.shape[-1])), ["the sign of dQ is flipped"]),
    (dict(softmax_backward=lambda p, g: p * (g - g.amax(-1, keepdim=True))), ["the dS inside your dQ",
                                                                             "c = max_j g_j"]),
    (dict(dv_scaled=True), ["0.5 (= 1/√d_k) × the right ones"]),
    (dict(softmax_backward_of_dO=True), ["dP = dO Vᵀ", "Tk = 3", "d_v = 6"]),
    (dict(recompute_unscaled=True), ["the weights inside your dV", "a = 1", "saved in ctx"]),
]


@exercise("1.3")
def test_attention_function_solution_passes(solved):
    assert "gradcheck" in assert_passes(checks.check_attention_function, solved["AttentionFunction"])


@exercise("1.3")
@pytest.mark.parametrize("bug, words", ATTENTION_FUNCTION_WRONG)
def test_attention_function_names_the_mistake(bug, words):
    assert_diagnoses(checks.check_attention_function, make_attention_function(**bug), *words)


@exercise("1.3")
def test_attention_function_square_case_mistakes():
    """Mistakes that keep the shapes right only when Tq = Tk (the second case) are named there."""
    class SwapsOnlyWhenSquare(make_attention_function()):
        @staticmethod
        def backward(ctx, grad_out):
            grad_q, grad_k, grad_v = make_attention_function().backward(ctx, grad_out)
            q, k, _, _ = ctx.saved_tensors
            return (grad_k, grad_q, grad_v) if q.shape == k.shape else (grad_q, grad_k, grad_v)
    assert_diagnoses(checks.check_attention_function, SwapsOnlyWhenSquare, "you returned dK where dQ belongs")

    class DkWithoutTransposeWhenSquare(make_attention_function()):
        @staticmethod
        def backward(ctx, grad_out):
            grad_q, grad_k, grad_v = make_attention_function().backward(ctx, grad_out)
            q, k, v, p = ctx.saved_tensors
            if q.shape == k.shape:
                grad_s = softmax_backward_ok(p, grad_out @ v.transpose(-2, -1))
                grad_k = grad_s @ q / math.sqrt(q.shape[-1])
            return grad_q, grad_k, grad_v
    assert_diagnoses(checks.check_attention_function, DkWithoutTransposeWhenSquare, "dS is not transposed",
                     "dK = c·dSᵀ·Q")

    class DqTransposedWhenSquare(make_attention_function()):
        @staticmethod
        def backward(ctx, grad_out):
            grad_q, grad_k, grad_v = make_attention_function().backward(ctx, grad_out)
            q, k, v, p = ctx.saved_tensors
            if q.shape == k.shape:
                grad_s = softmax_backward_ok(p, grad_out @ v.transpose(-2, -1))
                grad_q = grad_s.transpose(-2, -1) @ k / math.sqrt(q.shape[-1])
            return grad_q, grad_k, grad_v
    assert_diagnoses(checks.check_attention_function, DqTransposedWhenSquare, "dS is transposed", "dQ = c·dS·K")

    class DkFromTheKeys(make_attention_function()):
        @staticmethod
        def backward(ctx, grad_out):
            grad_q, grad_k, grad_v = make_attention_function().backward(ctx, grad_out)
            q, k, v, p = ctx.saved_tensors
            if q.shape == k.shape:
                grad_s = softmax_backward_ok(p, grad_out @ v.transpose(-2, -1))
                grad_k = grad_s.transpose(-2, -1) @ k / math.sqrt(q.shape[-1])
            return grad_q, grad_k, grad_v
    assert_diagnoses(checks.check_attention_function, DkFromTheKeys, "dK multiplies dS by K; it is Q")


@exercise("1.3")
def test_attention_function_keys_gradients_must_sum_to_zero():
    class InlinesAWrongSoftmaxBackwardForDk(make_attention_function()):
        @staticmethod
        def backward(ctx, grad_out):
            grad_q, grad_k, grad_v = make_attention_function().backward(ctx, grad_out)
            q, k, v, p = ctx.saved_tensors
            grad_p = grad_out @ v.transpose(-2, -1)
            grad_s = p * (grad_p - grad_p.amax(-1, keepdim=True))  # written again for dK, wrongly
            return grad_q, grad_s.transpose(-2, -1) @ q / math.sqrt(q.shape[-1]), grad_v
    assert_diagnoses(checks.check_attention_function, InlinesAWrongSoftmaxBackwardForDk, "the dS inside your dK",
                     "c = max_j g_j")

    class AddsWeightDecayToDk(make_attention_function()):  # dK leaves the span of Q's rows: dS cannot be recovered
        @staticmethod
        def backward(ctx, grad_out):
            grad_q, grad_k, grad_v = make_attention_function().backward(ctx, grad_out)
            return grad_q, grad_k + 1e-2 * ctx.saved_tensors[1], grad_v
    assert_diagnoses(checks.check_attention_function, AddsWeightDecayToDk, "gradients of the keys must sum to 0",
                     "eq. (1.8)")


@exercise("1.3")
def test_attention_function_dv_outside_the_span_of_do():
    class AddsWeightDecayToDv(make_attention_function()):
        @staticmethod
        def backward(ctx, grad_out):
            grad_q, grad_k, grad_v = make_attention_function().backward(ctx, grad_out)
            return grad_q, grad_k, grad_v + 1e-2 * ctx.saved_tensors[2]
    assert_diagnoses(checks.check_attention_function, AddsWeightDecayToDv, "rows of your dV do not add up",
                     "eq. (1.7)")


@exercise("1.3")
def test_attention_function_dq_outside_the_span_of_the_keys():
    class AddsWeightDecayToDq(make_attention_function()):
        @staticmethod
        def backward(ctx, grad_out):
            grad_q, grad_k, grad_v = make_attention_function().backward(ctx, grad_out)
            q = ctx.saved_tensors[0]
            return grad_q + 1e-3 * q, grad_k, grad_v
    assert_diagnoses(checks.check_attention_function, AddsWeightDecayToDq, "not a combination of the keys' rows")


@exercise("1.3")
def test_attention_function_gradcheck_failure_is_a_diagnosis_not_a_crash():
    """gradcheck's own verdict becomes the message (this line of the check used to raise AttributeError)."""
    class WrongOnlyForThreeQueries(make_attention_function()):
        @staticmethod
        def backward(ctx, grad_out):
            grad_q, grad_k, grad_v = make_attention_function().backward(ctx, grad_out)
            return grad_q, grad_k, grad_v * (1.01 if grad_out.shape[-2] == 3 else 1.0)
    assert_diagnoses(checks.check_attention_function, WrongOnlyForThreeQueries, "gradcheck disagrees",
                     "for dL/dV", "eqs. (1.7)–(1.9)", error=CheckFailure)


@exercise("1.3")
def test_attention_function_structure_and_exceptions():
    class NotAFunction:
        @staticmethod
        def forward(ctx, q, k, v):
            return q
    assert_diagnoses(checks.check_attention_function, NotAFunction, "subclass of torch.autograd.Function")

    class ReturnsNothing(make_attention_function()):
        @staticmethod
        def forward(ctx, q, k, v):
            ctx.save_for_backward(q, k, v)
    assert_diagnoses(checks.check_attention_function, ReturnsNothing, "forward output: got None")

    class ForgetsToSave(make_attention_function()):
        @staticmethod
        def forward(ctx, q, k, v):
            return weights_ok(q, k) @ v
    assert_diagnoses(checks.check_attention_function, ForgetsToSave, "AttentionFunction.backward raised",
                     error=LearnerError)

    class ReturnsTwoGradients(make_attention_function()):
        @staticmethod
        def backward(ctx, grad_out):
            return make_attention_function().backward(ctx, grad_out)[:2]
    assert_diagnoses(checks.check_attention_function, ReturnsTwoGradients, "one gradient per input",
                     error=LearnerError)

    class ForwardUsesTheKeysAsValues(make_attention_function()):
        @staticmethod
        def forward(ctx, q, k, v):
            p = weights_ok(q, k)
            ctx.save_for_backward(q, k, v, p)
            return p @ k
    assert_diagnoses(checks.check_attention_function, ForwardUsesTheKeysAsValues, "shape", "d_v=6")


@exercise("1.3")
def test_attention_function_forward_outside_the_span_of_v():
    class AddsTheQueries(make_attention_function()):
        @staticmethod
        def forward(ctx, q, k, v):
            p = weights_ok(q, k)
            ctx.save_for_backward(q, k, v, p)
            return p @ v + 0.1 * q.sum(-1, keepdim=True)
    assert_diagnoses(checks.check_attention_function, AddsTheQueries, "not a weighted sum of the rows of V")


@exercise("1.3")
def test_attention_function_stub_passes_through():
    class Stub(torch.autograd.Function):
        @staticmethod
        def forward(ctx, q, k, v):
            raise NotImplementedError("Exercise 1.3: write the body of `AttentionFunction`, then run the check.")

        @staticmethod
        def backward(ctx, grad_out):
            raise NotImplementedError("Exercise 1.3: write the body of `AttentionFunction`, then run the check.")
    assert_stub_passes_through(checks.check_attention_function, Stub)


# ===== Exercise 1.4 — multi-head self-attention =================================================================

def make_multi_head(split="B T (H Dh) -> B H T Dh", merge="B H T Dh -> B T (H Dh)", scale="head",
                    project=True, causal_diagonal=0, invert_padding=False, pad_queries=False, use_causal=True,
                    use_padding=True, order="qkv", softmax_dim=-1, project_twice=False, fill=float("-inf"),
                    own_softmax=False, padding_axes="B 1 1 T"):
    class MultiHeadSelfAttention(nn.Module):
        def __init__(self, d_model, n_heads):
            super().__init__()
            self.n_heads = n_heads
            self.qkv = nn.Linear(d_model, 3 * d_model)
            self.out = nn.Linear(d_model, d_model)

        def forward(self, x, causal=False, key_padding_mask=None):
            B, T, D = x.shape
            parts = dict(zip(order, self.qkv(x).chunk(3, dim=-1)))
            q, k, v = (rearrange(parts[name], split, H=self.n_heads) for name in "qkv")  # (B, H, T, Dh)
            allowed = torch.ones(B, 1, T, T, dtype=torch.bool, device=x.device)
            if causal and use_causal:
                allowed = allowed & torch.ones(T, T, dtype=torch.bool).tril(causal_diagonal)
            if key_padding_mask is not None and use_padding:
                keep = key_padding_mask if invert_padding else ~key_padding_mask
                if padding_axes == "B 1 T":  # one None too few: (B, 1, T) lines B up with the heads
                    allowed = allowed & keep[:, None, :]
                else:
                    allowed = allowed & (keep[:, None, :, None] if pad_queries else keep[:, None, None, :])
            d = {"head": q.shape[-1], "model": D, "none": 1, "head, not squared": q.shape[-1] ** 2,
                 "√D/H": D / self.n_heads ** 2}[scale]
            scores = (q @ k.transpose(-2, -1) / math.sqrt(d)).masked_fill(~allowed, fill)
            if own_softmax:  # exp, then normalise, without subtracting the row's maximum
                weights = scores.exp() / scores.exp().sum(-1, keepdim=True)
            else:
                weights = scores.softmax(softmax_dim)
            heads = (weights @ v).reshape(B, T, D) if merge == "reshape" else rearrange(weights @ v, merge)  # (B, T, D)
            if project_twice:
                return self.out(self.out(heads))
            if project == "weight only":  # the weight, untransposed, and no bias
                return heads @ self.out.weight
            return self.out(heads) if project else heads
    return MultiHeadSelfAttention


MULTI_HEAD_WRONG = [
    (dict(split="B T (Dh H) -> B H T Dh"), ["heads split in the wrong order"]),
    (dict(merge="B H T Dh -> B T (Dh H)"), ["heads merged in the wrong order"]),
    (dict(scale="model"), ["a = 1/√D", "your scale follows D", "the model width", "√Dh"]),
    (dict(scale="head, not squared"), ["a = 1/Dh", "divided the scores by Dh", "√Dh"]),
    (dict(scale="none"), ["passes Exercise 1.1"]),
    (dict(project=False), ["output projection"]),
    (dict(project_twice=True), ["apply self.out once"]),
    (dict(causal_diagonal=-1), ["hides the diagonal"]),
    (dict(use_causal=False), ["causal mask is missing"]),
    (dict(use_padding=False), ["key_padding_mask was not applied"]),
    (dict(invert_padding=True), ["key_padding_mask is inverted"]),
    (dict(pad_queries=True), ["padded *queries*"]),
    (dict(order="kqv"), ["q and k are swapped"]),
    (dict(order="qvk"), ["k and v are swapped"]),
    (dict(softmax_dim=-2), ["the weights of your heads", "softmax over the wrong axis", "dim=-2"]),
    (dict(softmax_dim=1), ["softmax over the wrong axis", "over the H axis"]),
    (dict(fill=-1e4), ["every score ≈ −2·10⁴", "take all the weight", "finite fill"]),
    (dict(own_softmax=True), ["every score of a row is about -2e+04", "subtract each row's maximum"]),
    (dict(merge="reshape"), ["right numbers in the wrong places", "'B H T Dh -> B T (H Dh)'"]),
    (dict(scale="√D/H"), ["a = 1/√Dh · √H", "your scale follows H"]),
    (dict(project="weight only"), ["not self.out applied to your merged heads"]),
    (dict(padding_axes="B 1 T"), ["key_padding_mask[:, None, None, :]", "2 = B, 3 = H"]),
]


@exercise("1.4")
def test_multi_head_solution_passes(solved):
    assert_passes(checks.check_multi_head_attention, solved["MultiHeadSelfAttention"])


@exercise("1.4")
@pytest.mark.parametrize("bug, words", MULTI_HEAD_WRONG)
def test_multi_head_names_the_mistake(bug, words):
    assert_diagnoses(checks.check_multi_head_attention, make_multi_head(**bug), *words)


@exercise("1.4")
def test_multi_head_dividing_by_dh_is_not_called_root_d():
    """Dh ≠ √D in the first case, so dividing by Dh is named as such (it used to be called "scaled by √D")."""
    message = assert_diagnoses(checks.check_multi_head_attention, make_multi_head(scale="head, not squared"),
                               "a = 1/Dh", "divided the scores by Dh")
    assert "scaled by √D" not in message


@exercise("1.4")
def test_multi_head_mask_probes_name_the_forbidden_entry():
    class AttendsToTheNextTokenToo(make_multi_head()):
        def forward(self, x, causal=False, key_padding_mask=None):
            B, T, D = x.shape
            q, k, v = (rearrange(t, "B T (H Dh) -> B H T Dh", H=self.n_heads) for t in self.qkv(x).chunk(3, -1))
            allowed = torch.ones(T, T, dtype=torch.bool).tril(1) if causal else torch.ones(T, T, dtype=torch.bool)
            if key_padding_mask is not None:
                allowed = allowed & ~key_padding_mask[:, None, None, :]
            scores = (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).masked_fill(~allowed, float("-inf"))
            return self.out(rearrange(scores.softmax(-1) @ v, "B H T Dh -> B T (H Dh)"))
    assert_diagnoses(checks.check_multi_head_attention, AttendsToTheNextTokenToo, "the weights of your heads",
                     "key 1 comes after query 0 (causal)", "exactly 0")


@exercise("1.4")
def test_multi_head_padded_keys_that_keep_some_weight():
    class PadsWithZero(make_multi_head()):
        def forward(self, x, causal=False, key_padding_mask=None):
            B, T, D = x.shape
            q, k, v = (rearrange(t, "B T (H Dh) -> B H T Dh", H=self.n_heads) for t in self.qkv(x).chunk(3, -1))
            scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
            if causal:
                scores = scores.masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(), float("-inf"))
            if key_padding_mask is not None:
                scores = scores.masked_fill(key_padding_mask[:, None, None, :], 0.0)
            return self.out(rearrange(scores.softmax(-1) @ v, "B H T Dh -> B T (H Dh)"))
    assert_diagnoses(checks.check_multi_head_attention, PadsWithZero, "key 3 of sequence 1 is padding",
                     "exactly 0")


@exercise("1.4")
def test_multi_head_heads_that_are_not_averages_of_their_values():
    class UsesTheQueriesAsValues(make_multi_head()):
        def forward(self, x, causal=False, key_padding_mask=None):
            q, k, v = (rearrange(t, "B T (H Dh) -> B H T Dh", H=self.n_heads) for t in self.qkv(x).chunk(3, -1))
            weights = (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).softmax(-1)
            return self.out(rearrange(weights @ q, "B H T Dh -> B T (H Dh)"))
    assert_diagnoses(checks.check_multi_head_attention, UsesTheQueriesAsValues,
                     "head 0's output", "is a weighted average of the rows of q's head-0 features")


@exercise("1.4")
def test_multi_head_structure_and_exceptions():
    class RenamedLayers(nn.Module):
        def __init__(self, d_model, n_heads):
            super().__init__()
            self.in_proj = nn.Linear(d_model, 3 * d_model)

        def forward(self, x, causal=False, key_padding_mask=None):
            return x
    assert_diagnoses(checks.check_multi_head_attention, RenamedLayers, "keep the given __init__", "self.qkv")

    class NarrowQkv(make_multi_head()):
        def __init__(self, d_model, n_heads):
            super().__init__(d_model, n_heads)
            self.qkv = nn.Linear(d_model, d_model)
    assert_diagnoses(checks.check_multi_head_attention, NarrowQkv, "self.qkv must map D → 3D")

    class WrongHeadCount(make_multi_head()):
        def forward(self, x, causal=False, key_padding_mask=None):
            return rearrange(x, "B T (H Dh) -> B H T Dh", H=5)
    assert_diagnoses(checks.check_multi_head_attention, WrongHeadCount, "einops", error=LearnerError)

    class ReturnsWeightsToo(make_multi_head()):
        def forward(self, x, causal=False, key_padding_mask=None):
            return super().forward(x, causal, key_padding_mask), None
    assert_diagnoses(checks.check_multi_head_attention, ReturnsWeightsToo, "re:(got|returned) a tuple")

    def crashes_in_init(d_model, n_heads):
        raise ValueError("no")
    assert_diagnoses(checks.check_multi_head_attention, crashes_in_init, "raised ValueError", error=LearnerError)


@exercise("1.4")
def test_multi_head_keeps_the_learners_random_state():
    torch.manual_seed(123)
    before = torch.randn(3)
    torch.manual_seed(123)
    assert_passes(checks.check_multi_head_attention, make_multi_head())
    assert torch.equal(torch.randn(3), before)


@exercise("1.4")
def test_multi_head_stub_passes_through():
    class Stub(make_multi_head()):
        def forward(self, x, causal=False, key_padding_mask=None):
            raise NotImplementedError("Exercise 1.4: write the body of `forward`, then run the check cell below.")
    assert_stub_passes_through(checks.check_multi_head_attention, Stub)


# ===== Exercise 1.5 — tiled attention ===========================================================================

def make_tiled(rescale_output=True, rescale_sum=True, per_block=False, drop_last=False, subtract_max=True,
               materialise=False, loop_over_queries=False, accumulator_like_q=False, max_starts_at_zero=False,
               scale=True, step=None, correction_bug=None, divide=True, slice_end="start + block_size",
               exponent_scale="kept"):
    """A learner's tiled attention (eq. (1.11)) with optional bugs."""
    def tiled_attention(q, k, v, block_size=128):
        if materialise:  # computes the full T×T scores "to get the max", then tiles anyway
            _ = (q @ k.transpose(-2, -1)).amax(-1)
        c = 1 / math.sqrt(q.shape[-1]) if scale else 1.0
        T = (q if loop_over_queries else k).shape[-2]
        m = torch.full(q.shape[:-1] + (1,), 0.0 if max_starts_at_zero else float("-inf"), dtype=q.dtype)
        running_sum = torch.zeros_like(m)
        acc = torch.zeros_like(q) if accumulator_like_q else torch.zeros(q.shape[:-1] + v.shape[-1:], dtype=q.dtype)
        end = (T // block_size) * block_size if drop_last and T > block_size else T
        for start in range(0, end, step or block_size):
            stop = start + block_size if slice_end == "start + block_size" else block_size
            k_block, v_block = k[..., start:stop, :], v[..., start:stop, :]
            s = q @ k_block.transpose(-2, -1) * c
            m_new = torch.maximum(m, s.amax(-1, keepdim=True)) if subtract_max else torch.zeros_like(m)
            e = torch.exp(s - m_new) if exponent_scale == "kept" else torch.exp((s - m_new) / c)
            correction = torch.exp(m - m_new) if subtract_max else 1.0
            if correction_bug == "inverted":
                correction = torch.exp(m_new - m)
            elif correction_bug == "after the update":  # m updated first, so the factor is always 1
                m = m_new
                correction = torch.exp(m - m_new)
            if correction_bug == "on the new terms":
                running_sum = running_sum + correction * e.sum(-1, keepdim=True)
                acc = acc + correction * (e @ v_block)
            elif per_block:
                acc = acc + e @ v_block / e.sum(-1, keepdim=True)
            else:
                running_sum = (running_sum * correction if rescale_sum else running_sum) + e.sum(-1, keepdim=True)
                acc = (acc * correction if rescale_output else acc) + e @ v_block
            m = m_new
        return acc if per_block or not divide else acc / running_sum
    return tiled_attention


TILED_WRONG = [
    (dict(rescale_output=False), ["whole block of keys", "multiply a by e^(m − m')"]),
    (dict(rescale_sum=False), ["ℓ must be multiplied by e^(m − m')"]),
    (dict(per_block=True), ["normalised each block by its own sum", "sum to 3"]),
    (dict(drop_last=True), ["keys 32–39", "the last, shorter block"]),
    (dict(loop_over_queries=True), ["keys 16–39", "Tq = 12", "k.shape[-2]"]),
    (dict(subtract_max=False), ["NaN/inf on large scores", "running maximum"]),
    (dict(max_starts_at_zero=True), ["m must start at −∞", "underflow"]),
    (dict(scale=False), ["a = 1", "forget to divide the scores by √d_k"]),
    (dict(step=12), ["count 2 times", "overlap"]),
    (dict(materialise=True), ["peak memory grew", "Tq × Tk"]),
    (dict(correction_bug="inverted"), ["even with a single block", "e^(m' − m)", "the wrong way round"]),
    (dict(correction_bug="on the new terms"), ["keys 0–15, the first block", "multiplied by 0"]),
    (dict(correction_bug="after the update"), ["within each block your weights are right", "e^(m − m')"]),
    (dict(divide=False), ["your output is a, not a/ℓ"]),
    (dict(slice_end="block_size"), ["ran over an empty tensor", "`[start:stop]` is empty", "not a length"]),
    (dict(exponent_scale="undone"), ["within each block", "a = 1"]),
]


@exercise("1.5")
def test_tiled_solution_passes(solved):
    assert "linear" in assert_passes(checks.check_tiled_attention, solved["tiled_attention"])


@exercise("1.5")
@pytest.mark.parametrize("bug, words", TILED_WRONG)
def test_tiled_names_the_mistake(bug, words):
    assert_diagnoses(checks.check_tiled_attention, make_tiled(**bug), *words)


@exercise("1.5")
def test_tiled_accumulator_of_the_queries_width_is_read_with_the_names():
    """zeros_like(q) as the accumulator: d_v ≠ d_k in the first case, so it fails, naming both widths."""
    assert_diagnoses(checks.check_tiled_attention, make_tiled(accumulator_like_q=True), "your `acc`", "d_k = 8",
                     "d_v = 6", "q.shape[:-1] + v.shape[-1:]", "zeros_like(q)", error=LearnerError)


@exercise("1.5")
def test_tiled_weights_that_do_not_sum_to_one():
    right = make_tiled()

    def adds_a_little_to_every_weight(q, k, v, block_size=128):  # "so that no weight is exactly 0"
        return right(q, k, v, block_size) + 1e-3 * v.sum(-2, keepdim=True)
    assert_diagnoses(checks.check_tiled_attention, adds_a_little_to_every_weight, "must sum to 1", "o = a/ℓ")


@exercise("1.5")
def test_naive_attention_fails_the_memory_check():
    assert_diagnoses(checks.check_tiled_attention, lambda q, k, v, block_size: weights_ok(q, k) @ v, "materialised")


@exercise("1.5")
def test_tiled_other_failures():
    assert_diagnoses(checks.check_tiled_attention, lambda q, k, v, block_size: None, "got None")
    assert_stub_passes_through(checks.check_tiled_attention, stub("1.5", "tiled_attention"))


# ===== Exercise 1.6 — FNet's Fourier mixing =====================================================================

def dft_ok(n, dtype=torch.complex64, sign=-1, denominator=None, start=0):
    j = torch.arange(start, start + n, dtype=torch.float64)
    return torch.exp(sign * 2j * math.pi * torch.outer(j, j) / (denominator or n)).to(dtype)


def mixing_ok(x):
    T, D = x.shape[-2:]
    complex_dtype = torch.complex128 if x.dtype == torch.float64 else torch.complex64
    return (dft_ok(T, complex_dtype) @ x.to(complex_dtype) @ dft_ok(D, complex_dtype)).real.to(x.dtype)


def mixing_single_precision(x):
    T, D = x.shape[-2:]
    return (dft_ok(T) @ x.to(torch.complex64) @ dft_ok(D)).real.to(x.dtype)


def mixing_real_part_too_early(x):
    T, D = x.shape[-2:]
    along_t = (dft_ok(T, torch.complex128) @ x.to(torch.complex128)).real
    return (along_t.to(torch.complex128) @ dft_ok(D, torch.complex128)).real.to(x.dtype)


def dft_squared_exponent(n, dtype=torch.complex64):
    j = torch.arange(n, dtype=torch.float64)
    return torch.polar(torch.ones(n, n, dtype=torch.float64), -2 * math.pi * torch.outer(j, j) ** 2 / n).to(dtype)


def mixing_conjugated_hidden_axis(x):  # the inverse DFT's sign along D
    T, D = x.shape[-2:]
    complex_dtype = torch.complex128 if x.dtype == torch.float64 else torch.complex64
    return (dft_ok(T, complex_dtype) @ x.to(complex_dtype) @ dft_ok(D, complex_dtype).conj()).real.to(x.dtype)


def dft_stretched_imaginary_part(n, dtype=torch.complex64):  # cos θ + 2i sin θ: not on the unit circle
    j = torch.arange(n, dtype=torch.float64)
    angle = -2 * math.pi * torch.outer(j, j) / n
    return torch.complex(torch.cos(angle), 2 * torch.sin(angle)).to(dtype)


def dft_in_degrees(n, dtype=torch.complex64):
    j = torch.arange(n, dtype=torch.float64)
    return torch.polar(torch.ones(n, n, dtype=torch.float64), -360 * torch.outer(j, j) / n).to(dtype)


def mixing_flattened_batch(x):  # "a 2-D matrix product needs 2-D tensors": the batch joins the sequence axis
    B, T, D = x.shape
    flat = x.reshape(B * T, D).to(torch.complex64)
    return (dft_ok(B * T) @ flat @ dft_ok(D)).real.reshape(B, T, D)


DFT_WRONG = [
    (lambda n, dtype=torch.complex64: dft_ok(n, dtype, sign=+1), ["sign is +"]),
    (lambda n, dtype=torch.complex64: dft_ok(n, dtype, denominator=max(n - 1, 1)), ["not n − 1"]),
    (lambda n, dtype=torch.complex64: dft_ok(n, dtype, denominator=n * n), ["not n²"]),
    (lambda n, dtype=torch.complex64: dft_ok(n, dtype).real, ["must return a complex tensor", "real part"]),
    (lambda n, dtype=torch.complex64: dft_ok(n, dtype) / math.sqrt(n), ["modulus 1", "= 1/√n", "norm='ortho'"]),
    (lambda n, dtype=torch.complex64: dft_ok(n, dtype, start=1), ["indices counted from 1", "torch.arange(n)"]),
    (lambda n, dtype=torch.complex64: dft_ok(n), ["complex64", "asks for torch.complex128"]),
    (lambda n, dtype=torch.complex64: dft_ok(n, torch.complex64).to(dtype), ["float32 precision",
                                                                             "compute the angle", "float64"]),
    (lambda n, dtype=torch.complex64: dft_ok(n, torch.complex128), ["complex128", "the default"]),
    (lambda n, dtype=torch.complex64: torch.exp(-2j * math.pi * (torch.arange(n)[:, None] * n + torch.arange(n))
                                                / n ** 2).to(dtype), ["symmetric"]),
    (dft_squared_exponent, ["powers of W[1, 1]"]),
    (lambda n, dtype=torch.complex64: dft_ok(n, dtype).conj(), ["sign is +"]),
    (lambda n, dtype=torch.complex64: [[1]], ["got a list, not a torch.Tensor"]),
    (lambda n, dtype=torch.complex64: dft_ok(n, dtype) / n, ["modulus 1", "= 1/n"]),
    (dft_in_degrees, ["W[1, 1] = e^(i·", "the angle is −2π jk/n"]),
    (dft_stretched_imaginary_part, ["modulus 1", "range from", "torch.polar"]),
    (lambda n, dtype=torch.complex64: torch.arange(n) * torch.arange(n + 1), ["did not broadcast", "5 (= n)"]),
    (lambda n, dtype=torch.complex64: dft_ok(n, dtype)[:, :1], ["shape", "(n, n)"]),
]


MIXING_WRONG = [
    (lambda x: torch.fft.fft(x, dim=-2).real, ["only along the sequence axis"]),
    (lambda x: torch.fft.fft(x, dim=-1).real, ["only along the hidden axis"]),
    (lambda x: torch.fft.fft2(x).abs(), ["magnitude"]),
    (lambda x: torch.fft.fft2(x).imag, ["imaginary part"]),
    (lambda x: torch.fft.fftn(x).real, ["batch axis too"]),
    (lambda x: torch.fft.fft2(x, norm="ortho").real, ["1/√(T·D)"]),
    (lambda x: -torch.fft.fft2(x).real, ["sign is flipped"]),
    (lambda x: torch.fft.fft2(x), ["complex", "real part"]),
    (mixing_single_precision, ["float32 precision only", "complex128"]),
    (mixing_real_part_too_early, ["real part too early"]),
    (mixing_flattened_batch, ["changes when another item changes", "batch axis"]),
    (lambda x: (dft_ok(x.shape[-1]) @ x.to(torch.complex64) @ dft_ok(x.shape[-2])).real, ["raised RuntimeError",
                                                                                           "(5, 5) = (D, D)",
                                                                                           "W_T @ x @ W_D"]),
    (lambda x: (dft_ok(x.shape[-2]) @ x.to(torch.complex128) @ dft_ok(x.shape[-1])).real.to(x.dtype),
     ["complex64 met complex128"]),
    (lambda x: (dft_ok(x.shape[-2]) @ x @ dft_ok(x.shape[-1])).real, ["real tensor met a complex one",
                                                                      "x.to(torch.complex64)"]),
    (lambda x: mixing_ok(x.double()).float(), ["dtype torch.float32 but expected torch.float64"]),
    (mixing_conjugated_hidden_axis, ["+ sign", "conjugated"]),
    (lambda x: mixing_ok(x) + x, ["you added x itself", "residual connection"]),
    (lambda x: mixing_ok(x) + 0.5 * torch.fft.fft(x, dim=-2).real, ["yours is", "compare with eq. (1.13)"]),
]


@exercise("1.6")
def test_fourier_solution_passes(solved):
    assert_passes(checks.check_fourier_mixing, (solved["dft_matrix"], solved["fourier_mixing"]))


@exercise("1.6")
@pytest.mark.parametrize("dft, words", DFT_WRONG)
def test_dft_matrix_names_the_mistake(dft, words):
    assert_diagnoses(checks.check_fourier_mixing, (dft, mixing_ok), *words)


@exercise("1.6")
@pytest.mark.parametrize("mixing, words", MIXING_WRONG)
def test_fourier_mixing_names_the_mistake(mixing, words):
    assert_diagnoses(checks.check_fourier_mixing, (dft_ok, mixing), *words)


@exercise("1.6")
def test_fourier_stubs_pass_through():
    with pytest.raises(NotImplementedError, match="Exercise 1.6"):
        checks.check_fourier_mixing(stub("1.6", "dft_matrix"), mixing_ok)
    with pytest.raises(NotImplementedError, match="Exercise 1.6"):
        checks.check_fourier_mixing(dft_ok, stub("1.6", "fourier_mixing"))


# ===== What this chapter added to utils.checks.core =============================================================

def raised(fn):
    try:
        fn()
    except Exception as error:  # noqa: BLE001
        return error
    raise AssertionError("expected an exception")


def test_core_names_the_sizes_of_a_case_in_a_shape_error():
    class Sized(core.Case):
        @property
        def sizes(self):
            return {"Tq": 5, "Tk": 7, "d_k": 8}
    with pytest.raises(LearnerError, match=r"(d_k|Tk).*(d_k|Tk)"):
        core.Exercise("9.9", "f").call(lambda: torch.randn(5, 8) @ torch.randn(7, 8), case=Sized("a case"))
    assert core.Case("plain").sizes == {}
    assert core.named_size(6, {"T": 6, "D": 6}) == "6 (= T = D)" and core.named_size(3, {}) == "3"
    assert core.named_sizes_in("mat1 and mat2 shapes cannot be multiplied (5x8 and 7x8)", {}) == ""


def test_core_lets_a_case_read_the_learners_exception_in_its_own_terms():
    class Reads(core.Case):
        def explain(self, error, line):
            return f"read: {type(error).__name__} at `{line}`" if "mask" in line else None

    def learner(mask):
        return torch.ones(3) + mask  # a line of the learner's that mentions the mask

    with pytest.raises(LearnerError, match=r"read: RuntimeError at `return torch.ones\(3\) \+ mask"):
        core.Exercise("9.9", "f").call(learner, torch.ones(4), case=Reads("a case"))
    with pytest.raises(LearnerError, match="did not broadcast"):  # no reading of its own: the generic one
        core.Exercise("9.9", "f").call(lambda: torch.ones(3) + torch.ones(4), case=Reads("a case"))
    assert core.Case("plain").explain(ValueError(), "x") is None


def test_core_reads_mask_indexing_invalid_gradients_dimensions_and_complex_products():
    scores, mask = torch.randn(2, 2, 6, 6), torch.ones(6, 6, dtype=torch.bool)

    def index():
        scores[~mask] = 0.0
    assert "masked_fill" in core.exception_hint(raised(index))

    class WrongShapedGradient(torch.autograd.Function):
        @staticmethod
        def forward(ctx, a, b):
            return a * b.sum()

        @staticmethod
        def backward(ctx, grad):
            return grad, grad
    error = raised(lambda: WrongShapedGradient.apply(torch.randn(3, requires_grad=True),
                                                     torch.randn(4, requires_grad=True)).sum().backward())
    assert "gradient number 1" in core.exception_hint(error, {"n": 4})
    assert "4 = n" in core.exception_hint(error, {"n": 4})
    assert "dim=-1" in core.exception_hint(raised(lambda: torch.randn(2, 3).softmax(dim=2)))
    assert "x.to(torch.complex64)" in core.exception_hint(
        raised(lambda: torch.randn(3, dtype=torch.complex64) @ torch.randn(3, 3)))
    assert "complex64 met complex128" in core.exception_hint(
        raised(lambda: torch.randn(3, dtype=torch.complex64) @ torch.randn(3, 3, dtype=torch.complex128)))
    assert "slice came out empty" in core.exception_hint(raised(lambda: torch.randn(2, 0).amax(-1)))


# ===== The shared probes on their own ===========================================================================

def test_softmax_temperature_recovers_the_scale_and_refuses_what_is_not_a_softmax():
    scores = torch.randn(4, 6, dtype=torch.float64)
    assert checks.softmax_temperature((0.3 * scores).softmax(-1), scores) == pytest.approx(0.3)
    assert checks.softmax_temperature(scores.abs() / scores.abs().sum(-1, keepdim=True), scores) is None
    mask = torch.rand(4, 6) > 0.3
    mask[:, 0] = True
    weights = (0.3 * scores).masked_fill(~mask, -math.inf).softmax(-1)
    assert checks.softmax_temperature(weights, scores, mask) == pytest.approx(0.3)


def test_weights_problem_reads_row_sums_by_how_they_are_wrong():
    q, k = torch.randn(2, 4, 3, dtype=torch.float64), torch.randn(2, 4, 3, dtype=torch.float64)
    facts = checks.weights_facts(q, k, None)
    right = checks.reference_attention_weights(q, k)  # (2, 4, 4)
    lined_up = right * torch.tensor([1.0, 2.0, 0.5, 1.5], dtype=torch.float64)  # each key scaled by its own factor
    assert "depends on its key" in checks.weights_problem(lined_up, facts)
    noisy = right + 0.01 * torch.rand_like(right)
    assert "must sum to 1 over the keys" in checks.weights_problem(noisy, facts)
    assert "negative entries" in checks.weights_problem(right - 0.3, facts)
    assert checks.weights_problem(right, facts) is None
    mask = torch.rand(2, 4, 4, generator=torch.Generator().manual_seed(0)) > 0.5
    mask[..., 0], mask[..., 1] = True, False  # every row has an allowed and a forbidden key
    masked = checks.weights_facts(q, k, mask)
    inverted = checks.reference_attention_weights(q, k, ~mask)
    assert "the mask is inverted" in checks.weights_problem(inverted, masked)


def test_recover_weights_needs_independent_values():
    values = torch.randn(3, 6, dtype=torch.float64)
    weights = torch.rand(5, 3, dtype=torch.float64)
    torch.testing.assert_close(checks.recover_weights(weights @ values, values), weights)
    assert checks.recover_weights(torch.randn(5, 6), values) is None  # not in the span of V's rows
    assert checks.recover_weights(torch.randn(5, 2), torch.randn(3, 2)) is None  # Tk > d_v: not identifiable


def test_independent_terms_drop_what_cannot_be_told_apart():
    p = torch.rand(6, dtype=torch.float64)
    terms = checks.independent_terms({"p": p, "2p": 2 * p, "p²": p * p}, p)
    assert list(terms) == ["p", "p²"]


# ===== Round 2: wrong answers written before the probes that name them =========================================
# Each was written as a learner would write it and run against the checks *before* the probes of this round (scale
# laws fitted across sizes, token dependence and mask structure in 1.4, dS recovered from dQ/dK in 1.3, the
# bracket of 1.2, re-runs with one and several blocks in 1.5, readings of fixed-axes code). Before: 21 of 49 named.

def scores_scaled_by(q, k, scale):
    return q @ k.transpose(-2, -1) * scale


def masked(scores, mask):
    return scores if mask is None else scores.masked_fill(~mask, float("-inf"))


def w_scale_from_the_batch_axis(q, k, mask=None):
    return masked(scores_scaled_by(q, k, 1 / math.sqrt(q.size(0))), mask).softmax(-1)


def w_hard_coded_width(q, k, mask=None):
    return masked(scores_scaled_by(q, k, 1 / math.sqrt(8)), mask).softmax(-1)


def w_multiplies_by_the_mask(q, k, mask=None):
    scores = scores_scaled_by(q, k, 1 / math.sqrt(q.shape[-1]))
    return (scores if mask is None else scores * mask).softmax(-1)


def w_max_without_values(q, k, mask=None):
    scores = masked(scores_scaled_by(q, k, 1 / math.sqrt(q.shape[-1])), mask)
    e = torch.exp(scores - scores.max(dim=-1, keepdim=True))
    return e / e.sum(-1, keepdim=True)


def w_permute_for_four_axes(q, k, mask=None):
    return masked(q @ k.permute(0, 1, 3, 2) / math.sqrt(q.shape[-1]), mask).softmax(-1)


def w_einsum_for_four_axes(q, k, mask=None):
    return masked(torch.einsum("bhqd,bhkd->bhqk", q, k) / math.sqrt(q.shape[-1]), mask).softmax(-1)


def w_where_with_branches_swapped(q, k, mask=None):
    scores = scores_scaled_by(q, k, 1 / math.sqrt(q.shape[-1]))
    if mask is not None:
        scores = torch.where(mask, torch.full_like(scores, float("-inf")), scores)
    return scores.softmax(-1)


def w_softmax_twice(q, k, mask=None):
    return masked(scores_scaled_by(q, k, 1 / math.sqrt(q.shape[-1])), mask).softmax(-1).softmax(-1)


def w_global_max(q, k, mask=None):
    scores = masked(scores_scaled_by(q, k, 1 / math.sqrt(q.shape[-1])), mask)
    e = torch.exp(scores - scores.max())
    return e / e.sum(-1, keepdim=True)


def w_scaled_by_tk_and_dk(q, k, mask=None):  # "normalise by the number of pairs"
    return masked(scores_scaled_by(q, k, 1 / math.sqrt(q.shape[-1] * k.shape[-2])), mask).softmax(-1)


def w_multiplied_by_root_dk_times_two(q, k, mask=None):
    return masked(scores_scaled_by(q, k, 2 / math.sqrt(q.shape[-1])), mask).softmax(-1)


ROUND2_WEIGHTS = [
    (w_scale_from_the_batch_axis, ["a = 1/√B", "follows B", "q.shape[0]", "the batch size"]),
    (w_hard_coded_width, ["a = 1/√8", "a number fixed in your code"]),
    (w_multiplies_by_the_mask, ["filled the forbidden scores with 0"]),
    (w_max_without_values, ["(values, indices)", ".values", "amax"]),
    (w_permute_for_four_axes, ["fixed number of axes", "transpose(-2, -1)"]),
    (w_einsum_for_four_axes, ["fixed number of axes", "'...' in einsum"]),
    (w_where_with_branches_swapped, ["the mask is inverted"]),
    (w_softmax_twice, ["softmax(P)", "applied twice"]),
    (w_global_max, ["NaN/inf on large scores", "each row's maximum"]),
    (w_scaled_by_tk_and_dk, ["follows Tk", "the number of keys"]),
    (w_multiplied_by_root_dk_times_two, ["constant factor 2", "1/√d_k"]),
]


@exercise("1.1")
@pytest.mark.parametrize("wrong, words", ROUND2_WEIGHTS, ids=[w.__name__ for w, _ in ROUND2_WEIGHTS])
def test_round2_attention_weights(wrong, words):
    assert_diagnoses(checks.check_attention_weights, wrong, *words)


def sb_matrix_product(p, grad_p):  # ⟨g, p⟩ as g @ pᵀ
    return p * (grad_p - grad_p @ p.transpose(-2, -1))


def sb_jacobian_of_one_row(p, grad_p):
    return (torch.diag(p) - torch.outer(p, p)) @ grad_p


def sb_jacobian_batched(p, grad_p):  # right: J for every row, then J g
    jacobian = torch.diag_embed(p) - p.unsqueeze(-1) * p.unsqueeze(-2)
    return (jacobian @ grad_p.unsqueeze(-1)).squeeze(-1)


def sb_subtracts_twice(p, grad_p):
    return p * (grad_p - 2 * (grad_p * p).sum(-1, keepdim=True))


def sb_g_dot_g(p, grad_p):
    return p * (grad_p - (grad_p * grad_p).sum(-1, keepdim=True))


def sb_p_squared(p, grad_p):
    return p * p * (grad_p - (grad_p * p).sum(-1, keepdim=True))


def sb_half(p, grad_p):
    return p * (grad_p - 0.5 * (grad_p * p).sum(-1, keepdim=True))


def sb_row_max(p, grad_p):
    return p * (grad_p - grad_p.amax(-1, keepdim=True))


def sb_odd_constant(p, grad_p):  # subtracts ⟨g, p⟩ + 1
    return p * (grad_p - (grad_p * p).sum(-1, keepdim=True) - 1)


def sb_times_row_length(p, grad_p):
    return p * (grad_p - p.shape[-1] * (grad_p * p).sum(-1, keepdim=True))


ROUND2_SOFTMAX = [
    (sb_matrix_product, ["g pᵀ", "one number per row"]),
    (sb_jacobian_of_one_row, ["torch.outer", "single row", "diag_embed"]),
    (sb_subtracts_twice, ["the coefficient of p⊙⟨g,p⟩", "twice"]),
    (sb_g_dot_g, ["c = ⟨g, g⟩"]),
    (sb_p_squared, ["p⊙p⊙g − p⊙p⊙⟨g,p⟩", "factor p too many"]),
    (sb_half, ["the coefficient of p⊙⟨g,p⟩", "half"]),
    (sb_row_max, ["c = max_j g_j"]),
    (sb_odd_constant, ["you subtract a constant 1", "g − ⟨g, p⟩ and nothing else"]),
    (sb_times_row_length, ["T (= 4) times the right"]),
]


@exercise("1.2")
@pytest.mark.parametrize("wrong, words", ROUND2_SOFTMAX, ids=[w.__name__ for w, _ in ROUND2_SOFTMAX])
def test_round2_softmax_backward(wrong, words):
    assert_diagnoses(checks.check_softmax_backward, wrong, *words)


@exercise("1.2")
def test_round2_softmax_backward_right_variants_pass():
    assert_passes(checks.check_softmax_backward, sb_jacobian_batched)


def attention_function(backward_body):
    """An autograd.Function whose backward is ``backward_body(q, k, v, p, grad_out)``."""
    class AttentionFunction(torch.autograd.Function):
        @staticmethod
        def forward(ctx, q, k, v):
            p = weights_ok(q, k)
            ctx.save_for_backward(q, k, v, p)
            return p @ v

        @staticmethod
        def backward(ctx, grad_out):
            return backward_body(*ctx.saved_tensors, grad_out)
    return AttentionFunction


def gradients(q, k, v, p, grad_out, *, grad_p=None, grad_s=None, dv=None, dk_operand=None):
    """(dQ, dK, dV) of eqs. (1.7)–(1.9), with any step replaced."""
    c = 1 / math.sqrt(q.shape[-1])
    grad_p = grad_out @ v.transpose(-2, -1) if grad_p is None else grad_p
    grad_s = softmax_backward_ok(p, grad_p) if grad_s is None else grad_s
    dk = c * grad_s.transpose(-2, -1) @ (q if dk_operand is None else dk_operand)
    return c * grad_s @ k, dk, p.transpose(-2, -1) @ grad_out if dv is None else dv


def b_ds_summed_over_queries(q, k, v, p, grad_out):
    grad_p = grad_out @ v.transpose(-2, -1)
    return gradients(q, k, v, p, grad_out, grad_s=p * (grad_p - (grad_p * p).sum(-2, keepdim=True)))


def b_dk_from_the_keys(q, k, v, p, grad_out):
    return gradients(q, k, v, p, grad_out, dk_operand=k)


def b_dv_from_v(q, k, v, p, grad_out):
    return gradients(q, k, v, p, grad_out, dv=p.transpose(-2, -1) @ v)


def b_dp_from_k(q, k, v, p, grad_out):
    return gradients(q, k, v, p, grad_out, grad_p=grad_out @ k.transpose(-2, -1))


def b_returns_dk_first(q, k, v, p, grad_out):
    dq, dk, dv = gradients(q, k, v, p, grad_out)
    return dk, dq, dv


def b_dp_transposed(q, k, v, p, grad_out):  # V dOᵀ: (Tk, Tq)
    return gradients(q, k, v, p, grad_out, grad_p=v @ grad_out.transpose(-2, -1))


def b_dp_transposed_when_square(q, k, v, p, grad_out):
    grad_p = v @ grad_out.transpose(-2, -1) if q.shape == k.shape else None
    return gradients(q, k, v, p, grad_out, grad_p=grad_p)


def b_recomputes_p_unscaled(q, k, v, p, grad_out):
    p = (q @ k.transpose(-2, -1)).softmax(-1)
    return gradients(q, k, v, p, grad_out)


def b_ds_with_mean(q, k, v, p, grad_out):
    grad_p = grad_out @ v.transpose(-2, -1)
    return gradients(q, k, v, p, grad_out, grad_s=p * (grad_p - (grad_p * p).mean(-1, keepdim=True)))


ROUND2_FUNCTION = [
    (b_ds_summed_over_queries, ["the dS inside your dQ", "the queries axis"]),
    (b_dk_from_the_keys, ["use Q, not K", "dK = c·dSᵀ Q"]),
    (b_dv_from_v, ["Pᵀ or dSᵀ", "dV = Pᵀ dO"]),
    (b_dp_from_k, ["width d_v", "width d_k", "dP = dO Vᵀ"]),
    (b_returns_dk_first, ["shape of k", "returned where dQ belongs"]),
    (b_dp_transposed, ["`grad_p`", "its transpose, (…, Tk, Tq)", "dP = dO Vᵀ"]),
    (b_dp_transposed_when_square, ["the dS inside your dQ", "the dP it differentiates is V dOᵀ, transposed"]),
    (b_recomputes_p_unscaled, ["the weights inside your dV", "a = 1"]),
    (b_ds_with_mean, ["the coefficient of (P⊙⟨dP,P⟩)K", "1/Tk (= 1/3)", "a mean"]),
]


@exercise("1.3")
@pytest.mark.parametrize("body, words", ROUND2_FUNCTION, ids=[b.__name__ for b, _ in ROUND2_FUNCTION])
def test_round2_attention_function(body, words):
    assert_diagnoses(checks.check_attention_function, attention_function(body), *words)


def multi_head(forward_body):
    """A MultiHeadSelfAttention whose forward is ``forward_body(self, x, causal, key_padding_mask)``."""
    class MultiHeadSelfAttention(nn.Module):
        def __init__(self, d_model, n_heads):
            super().__init__()
            self.n_heads = n_heads
            self.qkv = nn.Linear(d_model, 3 * d_model)
            self.out = nn.Linear(d_model, d_model)

        def forward(self, x, causal=False, key_padding_mask=None):
            return forward_body(self, x, causal, key_padding_mask)
    return MultiHeadSelfAttention


def heads_of(self, x, pattern="B T (H Dh) -> B H T Dh"):
    return (rearrange(t, pattern, H=self.n_heads) for t in self.qkv(x).chunk(3, dim=-1))


def may_attend(T, causal, key_padding_mask, *, causal_mask=None, combine="&", padding_on="keys"):
    allowed = torch.ones(T, T, dtype=torch.bool)
    if causal:
        allowed = torch.ones(T, T, dtype=torch.bool).tril() if causal_mask is None else causal_mask
    if key_padding_mask is not None:
        keep = ~key_padding_mask[:, None, None, :] if padding_on == "keys" else ~key_padding_mask[:, None, :, None]
        if padding_on == "both":
            keep = ~key_padding_mask[:, None, None, :] & ~key_padding_mask[:, None, :, None]
        allowed = (allowed & keep) if combine == "&" or not causal else (allowed | keep)
    return allowed


def attend(q, k, v, allowed, scale=None):
    scores = q @ k.transpose(-2, -1) * (1 / math.sqrt(q.shape[-1]) if scale is None else scale)
    return scores.masked_fill(~allowed, float("-inf")).softmax(-1) @ v


def mha_attends_over_heads(self, x, causal, key_padding_mask):
    q, k, v = heads_of(self, x, "B T (H Dh) -> B T H Dh")
    heads = q.transpose(-2, -1)[..., :0].sum() + attend(q, k, v, torch.ones(1, dtype=torch.bool))
    return self.out(rearrange(heads, "B T H Dh -> B T (H Dh)"))


def mha_triu(self, x, causal, key_padding_mask):
    T = x.shape[1]
    allowed = may_attend(T, causal, key_padding_mask, causal_mask=torch.ones(T, T, dtype=torch.bool).triu())
    return self.out(rearrange(attend(*heads_of(self, x), allowed), "B H T Dh -> B T (H Dh)"))


def mha_or(self, x, causal, key_padding_mask):
    allowed = may_attend(x.shape[1], causal, key_padding_mask, combine="|")
    return self.out(rearrange(attend(*heads_of(self, x), allowed), "B H T Dh -> B T (H Dh)"))


def mha_hard_coded_scale(self, x, causal, key_padding_mask):
    allowed = may_attend(x.shape[1], causal, key_padding_mask)
    return self.out(rearrange(attend(*heads_of(self, x), allowed, scale=1 / math.sqrt(8)), "B H T Dh -> B T (H Dh)"))


def mha_qkv_interleaved(self, x, causal, key_padding_mask):  # view(B, T, H, 3, Dh): q, k, v per head
    B, T, D = x.shape
    q, k, v = self.qkv(x).view(B, T, self.n_heads, 3, D // self.n_heads).permute(3, 0, 2, 1, 4)
    return self.out(rearrange(attend(q, k, v, may_attend(T, causal, key_padding_mask)), "B H T Dh -> B T (H Dh)"))


def mha_padding_on_both_axes(self, x, causal, key_padding_mask):
    allowed = may_attend(x.shape[1], causal, key_padding_mask, padding_on="both")
    return self.out(rearrange(attend(*heads_of(self, x), allowed), "B H T Dh -> B T (H Dh)"))


def mha_forbidden_mask_as_allowed(self, x, causal, key_padding_mask):  # tril(...) == 0 passed as "may attend"
    T = x.shape[1]
    allowed = may_attend(T, causal, key_padding_mask, causal_mask=torch.tril(torch.ones(T, T)) == 0)
    return self.out(rearrange(attend(*heads_of(self, x), allowed), "B H T Dh -> B T (H Dh)"))


def mha_values_from_x(self, x, causal, key_padding_mask):
    q, k, _ = heads_of(self, x)
    v = rearrange(x, "B T (H Dh) -> B H T Dh", H=self.n_heads)
    return self.out(rearrange(attend(q, k, v, may_attend(x.shape[1], causal, key_padding_mask)),
                              "B H T Dh -> B T (H Dh)"))


def mha_padding_of_the_wrong_sequence(self, x, causal, key_padding_mask):  # flips the batch order of the padding
    pad = None if key_padding_mask is None else key_padding_mask.flip(0)
    allowed = may_attend(x.shape[1], causal, pad)
    return self.out(rearrange(attend(*heads_of(self, x), allowed), "B H T Dh -> B T (H Dh)"))


ROUND2_HEADS = [
    (mha_attends_over_heads, ["depends only on that token's own input", "'B T H Dh'"]),
    (mha_triu, ["upper triangle (triu)", "the future"]),
    (mha_or, ["combined the two masks with |"]),
    (mha_hard_coded_scale, ["a = 1/√8", "a number fixed in your code"]),
    (mha_qkv_interleaved, ["is a weighted average of the rows of q's head-2 features", "chunk(3, dim=-1) first"]),
    (mha_padding_on_both_axes, ["NaN at the outputs of sequence 1: token 3, 4", "padded *queries*"]),
    (mha_forbidden_mask_as_allowed, ["your causal mask is inverted", "triu(1)"]),
    (mha_values_from_x, ["x itself", "not projected"]),
    (mha_padding_of_the_wrong_sequence, ["the wrong entries", "lined up"]),
]


@exercise("1.4")
@pytest.mark.parametrize("body, words", ROUND2_HEADS, ids=[b.__name__ for b, _ in ROUND2_HEADS])
def test_round2_multi_head(body, words):
    assert_diagnoses(checks.check_multi_head_attention, multi_head(body), *words)


def tiled(*, scale=lambda q, block_size: 1 / math.sqrt(q.shape[-1]), update_max=True, exponent_of="new",
          correction_power=1, stop=lambda Tk: Tk, keep_normalised=False):
    """A learner's tiled attention (eq. (1.11)) with one step changed."""
    def tiled_attention(q, k, v, block_size=256):
        c = scale(q, block_size)
        m = torch.full(q.shape[:-1] + (1,), -math.inf, dtype=q.dtype)
        ell = torch.zeros_like(m)
        a = torch.zeros(q.shape[:-1] + v.shape[-1:], dtype=q.dtype)
        for start in range(0, stop(k.shape[-2]), block_size):
            s = q @ k[..., start:start + block_size, :].transpose(-2, -1) * c
            m_new = torch.maximum(m, s.amax(-1, keepdim=True))
            correction = torch.exp(m - m_new)
            e = torch.exp(s - (m_new if exponent_of == "new" else m))
            ell_new = correction * ell + e.sum(-1, keepdim=True)
            if keep_normalised:  # o stays a/ℓ at every step: a right variant
                a = (correction * ell * a + e @ v[..., start:start + block_size, :]) / ell_new
            else:
                a = correction ** correction_power * a + e @ v[..., start:start + block_size, :]
            ell = ell_new
            if update_max:
                m = m_new
        return a if keep_normalised else a / ell
    return tiled_attention


ROUND2_TILED = [
    (dict(scale=lambda q, block_size: 1 / math.sqrt(block_size)), ["a = 1/√block_size", "follows block_size"]),
    (dict(scale=lambda q, block_size: 1 / math.sqrt(64)), ["a = 1/8 = 1/√64", "a number fixed in your code"]),
    (dict(update_max=False), ["only the last block's keys", "m = m'"]),
    (dict(exponent_of="old"), ["even with a single block", "e^(s_j − m)"]),
    (dict(correction_power=2), ["shrinks too much", "not twice"]),
    (dict(stop=lambda Tk: Tk - 1), ["no key entered the running sums", "range(0, Tk, block_size)"]),
]


@exercise("1.5")
@pytest.mark.parametrize("bug, words", ROUND2_TILED, ids=[str(i) for i in range(len(ROUND2_TILED))])
def test_round2_tiled(bug, words):
    assert_diagnoses(checks.check_tiled_attention, tiled(**bug), *words)


@exercise("1.5")
def test_round2_tiled_right_variant_passes():
    assert_passes(checks.check_tiled_attention, tiled(keep_normalised=True))


def mixing_unpacks_three_axes(x):
    B, T, D = x.shape
    complex_dtype = torch.complex128 if x.dtype == torch.float64 else torch.complex64
    return (dft_ok(T, complex_dtype) @ x.to(complex_dtype) @ dft_ok(D, complex_dtype)).real.to(x.dtype)


def mixing_same_matrix_on_both_sides(x):
    T = x.shape[-2]
    complex_dtype = torch.complex128 if x.dtype == torch.float64 else torch.complex64
    W = dft_ok(T, complex_dtype)
    return (W @ x.to(complex_dtype) @ W).real.to(x.dtype)


def dft_indices_from_one(n, dtype=torch.complex64):
    j = torch.arange(1, n + 1, dtype=torch.float64)
    return torch.polar(torch.ones(n, n, dtype=torch.float64), -2 * math.pi * torch.outer(j, j) / n).to(dtype)


def dft_angle_in_complex64(n, dtype=torch.complex64):
    j = torch.arange(n)
    return torch.exp(-2j * math.pi * torch.outer(j, j) / n).to(dtype)


ROUND2_FOURIER = [
    ((dft_ok, mixing_unpacks_three_axes), ["fixed number of axes", "x (..., T, D)"]),
    ((dft_ok, mixing_same_matrix_on_both_sides), ["W_T @ x @ W_D"]),
    ((dft_indices_from_one, mixing_ok), ["indices counted from 1", "torch.arange(n)"]),
    ((dft_angle_in_complex64, mixing_ok), ["float32 precision", "float64"]),
]


@exercise("1.6")
@pytest.mark.parametrize("answer, words", ROUND2_FOURIER, ids=[a[0].__name__ + "+" + a[1].__name__
                                                               for a, _ in ROUND2_FOURIER])
def test_round2_fourier(answer, words):
    assert_diagnoses(checks.check_fourier_mixing, answer, *words)


# ----- round 2: the remaining failure paths of the new probes, each reached once

def sb_plus(p, grad_p):
    return p * (grad_p + (grad_p * p).sum(-1, keepdim=True))


def sb_one_and_a_half(p, grad_p):
    return p * (grad_p - 1.5 * (grad_p * p).sum(-1, keepdim=True))


def sb_dot_squared(p, grad_p):
    return p * (grad_p - (grad_p * p).sum(-1, keepdim=True) ** 2)


def sb_only_the_dot(p, grad_p):
    return -p * (grad_p * p).sum(-1, keepdim=True)


@exercise("1.2")
@pytest.mark.parametrize("wrong, words", [
    (sb_plus, ["has the opposite sign"]),
    (sb_one_and_a_half, ["is -1.5 where the equation has -1"]),
    (sb_dot_squared, ["you subtract ⟨g,p⟩·⟨g,p⟩ where ⟨g, p⟩ = Σ_j p_j g_j belongs"]),
    (sb_only_the_dot, ["the coefficient of p⊙g is missing"]),
], ids=["plus", "one and a half", "dot squared", "only the dot"])
def test_round2_softmax_backward_coefficients_and_brackets(wrong, words):
    assert_diagnoses(checks.check_softmax_backward, wrong, *words)


def b_dp_without_transposing_v(q, k, v, p, grad_out):
    return gradients(q, k, v, p, grad_out, grad_p=grad_out @ v)


def b_ds_squared(q, k, v, p, grad_out):  # not a softmax backward at all: its rows do not sum to 0
    grad_p = grad_out @ v.transpose(-2, -1)
    return gradients(q, k, v, p, grad_out, grad_s=p * grad_p ** 2)


@exercise("1.3")
@pytest.mark.parametrize("body, words", [
    (b_dp_without_transposing_v, ["dP = dO Vᵀ (eq. (1.7)): V needs its transpose"]),
    (b_ds_squared, ["the dS inside your dQ = c·dS·K has rows that do not sum to 0"]),
], ids=["dO V", "dS squared"])
def test_round2_attention_function_products_and_rows(body, words):
    assert_diagnoses(checks.check_attention_function, attention_function(body), *words)


def mha_always_causal(self, x, causal, key_padding_mask):
    allowed = may_attend(x.shape[1], True, key_padding_mask)
    return self.out(rearrange(attend(*heads_of(self, x), allowed), "B H T Dh -> B T (H Dh)"))


@exercise("1.4")
def test_round2_multi_head_mask_nobody_asked_for():
    assert_diagnoses(checks.check_multi_head_attention, multi_head(mha_always_causal), "are 0 at",
                     "you applied a causal mask although causal=False")


def heads_case(label):
    return next(case for case in checks.HEADS_CASES if case.label.startswith(label))


@exercise("1.4")
def test_mask_parts_are_named_one_by_one():
    both = heads_case("causal + key padding")
    said = {parts: checks.mask_parts_message(parts, both) for parts in checks.mask_candidates(
        both, both.key_padding_mask())}
    assert "the causal mask is missing" in said["none", "keys", "&"]
    assert "key_padding_mask was not applied" in said["tril", "none", "&"]
    assert "key_padding_mask is inverted" in said["tril", "inverted", "&"]
    assert "padded *queries*" in said["tril", "queries", "&"]
    assert "with | (or)" in said["tril", "keys", "|"]
    assert "hides the diagonal" in said["tril(-1)", "keys", "&"]
    assert "the next one too" in said["tril(1)", "keys", "&"]
    assert "although causal=False" in checks.mask_parts_message(("tril", "none", "&"), heads_case("B=2, T=5"))


@exercise("1.4")
def test_dependence_is_read_against_the_masks():
    case = heads_case("causal, B=2, T=6")
    B, T = case.B, case.T
    right = checks.allowed_mask(B, T, True, None)[:, 0] | torch.eye(T, dtype=torch.bool)  # (B, T, T)

    def strength(within):  # (B, T, T) → (B, T, B, T): no dependence across sequences
        full = torch.zeros(B, T, B, T, dtype=torch.float64)
        for b in range(B):
            full[b, :, b, :] = within[b].double()
        return full
    assert checks.dependence_message(strength(right), case, None) is None
    mixed = strength(right)
    mixed[0, 0, 1, 0] = 1.0
    assert "sequences of a batch must not mix" in checks.dependence_message(mixed, case, None)
    alone = strength(torch.eye(T, dtype=torch.bool).expand(B, T, T))
    assert "depends only on that token's own input" in checks.dependence_message(alone, case, None)
    upper = strength(torch.ones(B, T, T, dtype=torch.bool).triu())
    assert "upper triangle" in checks.dependence_message(upper, case, None)
    leaky = strength(right.double() + 1e-5 * ~right)
    assert checks.dependence_message(leaky, case, None) is None  # not a known mask: said by the fallback
    assert "depends, weakly" in checks.dependence_message(leaky, case, None, fallback=True)
    odd = right.clone()
    odd[0, 1, 4] = True  # one forbidden pair, strongly
    assert "must not see" in checks.dependence_message(strength(odd), case, None, fallback=True)
    hidden = right.clone()
    hidden[0, 3, 1] = False
    assert "does not depend on token 1" in checks.dependence_message(strength(hidden), case, None, fallback=True)


@exercise("1.4")
def test_nan_outputs_without_a_known_mask_are_said_plainly():
    case = heads_case("causal, B=2, T=6")
    got = torch.zeros(case.B, case.T, case.D)
    got[1, 2] = math.nan  # a token no candidate mask leaves without keys
    assert "your mask hides too much there" in checks.heads_nonfinite(case, None)(got)


def tiled_max_over_queries(q, k, v, block_size=256):
    scale = 1 / math.sqrt(q.shape[-1])
    m = torch.full(q.shape[:-1] + (1,), -math.inf, dtype=q.dtype)
    ell = torch.zeros_like(m)
    a = torch.zeros(q.shape[:-1] + v.shape[-1:], dtype=q.dtype)
    for start in range(0, k.shape[-2], block_size):
        s = q @ k[..., start:start + block_size, :].transpose(-2, -1) * scale
        m_new = torch.maximum(m, s.amax(-2, keepdim=True))  # over the queries: (..., Tq, block)
        correction = torch.exp(m - m_new)
        e = torch.exp(s - m_new)
        ell = correction * ell + e.sum(-1, keepdim=True)
        a = correction * a + e @ v[..., start:start + block_size, :]
        m = m_new
    return a / ell


@exercise("1.5")
def test_round2_tiled_running_quantities_with_a_block_axis():
    assert_diagnoses(checks.check_tiled_attention, tiled_max_over_queries, "block_size", "one number per query",
                     "(…, Tq, 1)", "dim=-1, keepdim=True")


@exercise("1.5")
def test_tiled_nan_readings_from_runs_with_one_and_several_blocks():
    ordinary = checks.TILED_CASES[0]
    right = tiled(keep_normalised=True)

    def nan_with_several_blocks(q, k, v, block_size=256):
        out = right(q, k, v, block_size)
        return out if block_size >= k.shape[-2] else out * math.nan
    assert "only when the keys come in several blocks" in checks.tiled_nonfinite_reading(
        nan_with_several_blocks, ordinary)(torch.full((1, 2, 12, 6), math.nan))

    def nan_for_this_case_only(q, k, v, block_size=256):
        out = right(q, k, v, block_size)
        return out * math.nan if k.shape[-2] == ordinary.Tk else out
    got = torch.zeros(1, 2, 12, 6)
    got[0, 0, 0, 0] = math.nan  # not every entry: no reading of its own
    assert "NaN/inf on ordinary scores" in checks.tiled_nonfinite_reading(nan_for_this_case_only, ordinary)(got)


def w_additive_penalty(q, k, mask=None):  # "−30 is as good as −∞": not where the forbidden scores are large
    scores = scores_scaled_by(q, k, 1 / math.sqrt(q.shape[-1]))
    return (scores if mask is None else scores - 30.0 * (~mask)).softmax(-1)


@exercise("1.1")
def test_round2_additive_penalty_is_caught_where_forbidden_scores_are_large():
    assert_diagnoses(checks.check_attention_weights, w_additive_penalty, "large scores and a causal mask",
                     "you added -30 to the forbidden scores")


# ===== No check crashes on a corrupted answer ====================================================================

CORRUPTIONS = ["scale", "noise", "nan", "inf", "zero", "transpose", "flatten", "unsqueeze", "slice", "float16",
               "none", "constant", "negate", "permute_rows", "square", "detach_list"]


def corrupt(t, how, amount):
    """A right answer made wrong in one of many ways, as a broken answer might be."""
    if not isinstance(t, torch.Tensor):
        return t
    if how == "scale":
        return t * amount
    if how == "noise":
        return t + amount * torch.sin(torch.arange(t.numel(), dtype=torch.float64)).to(t.dtype).reshape(t.shape)
    if how in ("nan", "inf"):
        wrong = t.clone()
        wrong.view(-1)[int(abs(amount) * 7) % t.numel()] = math.nan if how == "nan" else math.inf
        return wrong
    if how == "zero":
        return torch.zeros_like(t)
    if how == "transpose":
        return t.transpose(-1, -2) if t.dim() >= 2 else t
    if how == "flatten":
        return t.flatten()
    if how == "unsqueeze":
        return t.unsqueeze(0)
    if how == "slice":
        return t[..., :-1] if t.shape[-1] > 1 else t[..., :0]
    if how == "float16":
        return t.half() if not t.is_complex() else t
    if how == "none":
        return None
    if how == "constant":
        return torch.full_like(t, amount)
    if how == "negate":
        return -t
    if how == "permute_rows":
        return t.flip(-2) if t.dim() >= 2 else t.flip(-1)
    if how == "square":
        return t * t.abs()
    return t.tolist()


SOLVED_ATTENTION = solution_namespace(CHAPTER, ("def attention(",))
corruption = dict(how=st.sampled_from(CORRUPTIONS), amount=st.floats(-3, 3).filter(lambda a: abs(a) > 1e-3))


def never_crashes(check, answer, exercise_id):
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            check(*answer) if isinstance(answer, tuple) else check(answer)
    except (CheckFailure, LearnerError) as failure:
        assert str(failure).startswith(f"Exercise {exercise_id}")


@exercise("1.1")
@settings(max_examples=30, deadline=None)
@given(**corruption)
def test_attention_weights_never_crash_on_a_corrupted_answer(how, amount):
    never_crashes(checks.check_attention_weights,
                  lambda q, k, mask=None: corrupt(SOLVED_ATTENTION["attention_weights"](q, k, mask), how, amount),
                  "1.1")


@exercise("1.2")
@settings(max_examples=30, deadline=None)
@given(**corruption)
def test_softmax_backward_never_crashes_on_a_corrupted_answer(how, amount):
    never_crashes(checks.check_softmax_backward,
                  lambda p, g: corrupt(SOLVED_ATTENTION["softmax_backward"](p, g), how, amount), "1.2")


@exercise("1.3")
@settings(max_examples=30, deadline=None)
@given(which=st.integers(0, 3), **corruption)
def test_attention_function_never_crashes_on_a_corrupted_answer(which, how, amount):
    class Corrupted(SOLVED_ATTENTION["AttentionFunction"]):
        @staticmethod
        def forward(ctx, q, k, v):
            out = SOLVED_ATTENTION["AttentionFunction"].forward(ctx, q, k, v)
            return corrupt(out, how, amount) if which == 3 and how not in ("none", "detach_list") else out

        @staticmethod
        def backward(ctx, grad_out):
            grads = list(SOLVED_ATTENTION["AttentionFunction"].backward(ctx, grad_out))
            if which < 3:
                grads[which] = corrupt(grads[which], how, amount)
            return tuple(grads)
    never_crashes(checks.check_attention_function, Corrupted, "1.3")


@exercise("1.4")
@settings(max_examples=20, deadline=None)
@given(**corruption)
def test_multi_head_never_crashes_on_a_corrupted_answer(how, amount):
    class Corrupted(SOLVED_ATTENTION["MultiHeadSelfAttention"]):
        def forward(self, x, causal=False, key_padding_mask=None):
            return corrupt(super().forward(x, causal, key_padding_mask), how, amount)
    never_crashes(checks.check_multi_head_attention, Corrupted, "1.4")


@exercise("1.5")
@settings(max_examples=20, deadline=None)
@given(**corruption)
def test_tiled_never_crashes_on_a_corrupted_answer(how, amount):
    never_crashes(checks.check_tiled_attention, lambda q, k, v, block_size=256: corrupt(
        SOLVED_ATTENTION["tiled_attention"](q, k, v, block_size), how, amount), "1.5")


@exercise("1.6")
@settings(max_examples=30, deadline=None)
@given(on_the_matrix=st.booleans(), **corruption)
def test_fourier_never_crashes_on_a_corrupted_answer(on_the_matrix, how, amount):
    dft, mixing = SOLVED_ATTENTION["dft_matrix"], SOLVED_ATTENTION["fourier_mixing"]
    if on_the_matrix:
        answer = (lambda n, dtype=torch.complex64: corrupt(dft(n, dtype), how, amount), mixing)
    else:
        answer = (dft, lambda x: corrupt(mixing(x), how, amount))
    never_crashes(checks.check_fourier_mixing, answer, "1.6")


# ===== Fresh: 10 wrong answers written after the probes of round 2, not tuned on ================================
# Run once against the checks as they were: 5 of 10 named (softmax over dim=1, 1/(2·d_k) from operator precedence,
# the log-softmax backward, a causal tril(1), a DFT "matrix" from an elementwise product). The other five then led
# to general readings, not to patterns of these answers: a gradient with its input's axes swapped, scores made of
# other tensors than Q and K, a block of k sliced on the wrong axis, and the P inside dV read before the row sums.
# One stays vague: dividing a by ℓ inside the loop is named only as "earlier blocks shrink too much".

def fresh_weights_softmax_over_dim_1(q, k, mask=None):
    return masked(scores_scaled_by(q, k, 1 / math.sqrt(q.shape[-1])), mask).softmax(dim=1)


def fresh_weights_operator_precedence(q, k, mask=None):  # q.shape[-1] ** -1 / 2 is 1/(2·d_k)
    return masked(q @ k.transpose(-2, -1) * q.shape[-1] ** -1 / 2, mask).softmax(-1)


def fresh_log_softmax_backward(p, grad_p):  # the backward of log_softmax, not of softmax
    return grad_p - p * grad_p.sum(-1, keepdim=True)


def fresh_dv_not_transposed_back(q, k, v, p, grad_out):
    dq, dk, _ = gradients(q, k, v, p, grad_out)
    return dq, dk, grad_out.transpose(-2, -1) @ p


class FreshSavesTheScores(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v):
        scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
        ctx.save_for_backward(q, k, v, scores)
        return scores.softmax(-1) @ v

    @staticmethod
    def backward(ctx, grad_out):
        q, k, v, p = ctx.saved_tensors  # the scores, taken for P
        return gradients(q, k, v, p, grad_out)


def fresh_mha_tril_plus_one(self, x, causal, key_padding_mask):
    T = x.shape[1]
    allowed = may_attend(T, causal, key_padding_mask, causal_mask=torch.tril(torch.ones(T, T), diagonal=1).bool())
    return self.out(rearrange(attend(*heads_of(self, x), allowed), "B H T Dh -> B T (H Dh)"))


def fresh_mha_q_and_k_from_x(self, x, causal, key_padding_mask):
    _, _, v = heads_of(self, x)
    q = k = rearrange(x, "B T (H Dh) -> B H T Dh", H=self.n_heads)
    return self.out(rearrange(attend(q, k, v, may_attend(x.shape[1], causal, key_padding_mask)),
                              "B H T Dh -> B T (H Dh)"))


def fresh_tiled_slices_the_features(q, k, v, block_size=256):
    scale = 1 / math.sqrt(q.shape[-1])
    m = torch.full(q.shape[:-1] + (1,), -math.inf, dtype=q.dtype)
    ell = torch.zeros_like(m)
    a = torch.zeros(q.shape[:-1] + v.shape[-1:], dtype=q.dtype)
    for start in range(0, k.shape[-2], block_size):
        k_block, v_block = k[..., start:start + block_size], v[..., start:start + block_size, :]
        s = q @ k_block.transpose(-2, -1) * scale
        m_new = torch.maximum(m, s.amax(-1, keepdim=True))
        correction, e = torch.exp(m - m_new), torch.exp(s - m_new)
        ell = correction * ell + e.sum(-1, keepdim=True)
        a = correction * a + e @ v_block
        m = m_new
    return a / ell


def fresh_tiled_divides_in_the_loop(q, k, v, block_size=256):
    scale = 1 / math.sqrt(q.shape[-1])
    m = torch.full(q.shape[:-1] + (1,), -math.inf, dtype=q.dtype)
    ell = torch.zeros_like(m)
    a = torch.zeros(q.shape[:-1] + v.shape[-1:], dtype=q.dtype)
    for start in range(0, k.shape[-2], block_size):
        s = q @ k[..., start:start + block_size, :].transpose(-2, -1) * scale
        m_new = torch.maximum(m, s.amax(-1, keepdim=True))
        correction, e = torch.exp(m - m_new), torch.exp(s - m_new)
        ell = correction * ell + e.sum(-1, keepdim=True)
        a = (correction * a + e @ v[..., start:start + block_size, :]) / ell
        m = m_new
    return a / ell


def fresh_dft_elementwise(n, dtype=torch.complex64):
    j = torch.arange(n, dtype=torch.float64)
    return torch.polar(torch.ones(n, dtype=torch.float64), -2 * math.pi * j * j / n).to(dtype)


checks_order = [checks.check_attention_weights, checks.check_softmax_backward, checks.check_attention_function,
                checks.check_multi_head_attention, checks.check_tiled_attention, checks.check_fourier_mixing]
FRESH = [
    (checks.check_attention_weights, fresh_weights_softmax_over_dim_1, ["softmax over the wrong axis", "dim=-1"]),
    (checks.check_attention_weights, fresh_weights_operator_precedence, ["1/d_k", "a constant factor 1/2"]),
    (checks.check_softmax_backward, fresh_log_softmax_backward, ["backward of log_softmax"]),
    (checks.check_attention_function, attention_function(fresh_dv_not_transposed_back), ["dV, is transposed"]),
    (checks.check_attention_function, FreshSavesTheScores, ["the weights inside your dV", "the scores themselves"]),
    (checks.check_multi_head_attention, multi_head(fresh_mha_tril_plus_one), ["the next one too (tril(1))"]),
    (checks.check_multi_head_attention, multi_head(fresh_mha_q_and_k_from_x), ["x_h x_hᵀ", "not projected"]),
    (checks.check_tiled_attention, fresh_tiled_slices_the_features, ["K_block", "Tk = 40",
                                                                     "k[..., start:start + block_size, :]"]),
    (checks.check_tiled_attention, fresh_tiled_divides_in_the_loop, ["earlier blocks shrinks too much"]),
    (checks.check_fourier_mixing, (fresh_dft_elementwise, mixing_ok), ["shape (5,) but W_n is (n, n)"]),
]


@pytest.mark.parametrize("check, wrong, words", [
    pytest.param(*answer, marks=exercise(f"1.{checks_order.index(answer[0]) + 1}"), id=str(i))
    for i, answer in enumerate(FRESH)])
def test_fresh_wrong_answers(check, wrong, words):
    assert_diagnoses(check, wrong, *words)
