"""The core readings of round 6, on wrong answers of every chapter's kind: where the learner's code made its first
NaN/inf (:mod:`utils.checks.origins`: a division by a 0, 0 · (−∞), the log of 0 or of a negative number, a root of a
negative number, e^x that overflows, inf/inf, ∞ − ∞), and arguments that are not what a call takes
(:func:`utils.checks.conversions.argument_reading`: a method used without calling it, a size where an axis belongs, an
axis listed twice, a loop one block past the end)."""
import math
from dataclasses import dataclass

import pytest
import torch
import torch.nn as nn

from utils.checks import CheckFailure, LearnerError
from utils.checks.core import Case, Exercise
from utils.checks.origins import decisive, origin_reading, trace_nonfinite

EX = Exercise("9.9", "answer")


@dataclass(frozen=True)
class _Case(Case):
    @property
    def sizes(self):
        return {"N": 4, "D": 6}

    @property
    def quantities(self):
        return {"var": ("σ²", (4, 1)), "count": ("the number of batches seen", ())}


CASE = _Case("N=4, D=6")
X = torch.linspace(-2, 3, 24).reshape(4, 6)


def _reference(x):
    return (x - x.mean(-1, keepdim=True)) / torch.sqrt(x.var(-1, unbiased=False, keepdim=True) + 1e-5)


def _diagnosis(fn, x=X, expected=None) -> str:
    """The message of calling ``fn(x)`` through the check machinery and comparing it with a finite answer."""
    with pytest.raises((CheckFailure, LearnerError)) as caught:
        got = EX.call(fn, x.clone(), case=CASE)
        EX.compare(got, _reference(x) if expected is None else expected, case=CASE, equation="eq. (9.9)")
    return str(caught.value)


# ----- where the first NaN/inf was made ---------------------------------------------------------------------------

class _CountedMean(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("count", torch.tensor(0))
        self.register_buffer("running", torch.zeros(6))

    def forward(self, x):
        factor = 1 / self.count  # before the increment: 1/0 on the first batch
        self.count += 1
        self.running = (1 - factor) * self.running + factor * x.mean(0)
        return x + self.running


def _zero_divisor(x):
    var = (x - x).pow(2).mean(-1, keepdim=True)  # the variance of x − x: always 0
    return (x - x.mean(-1, keepdim=True)) / var


def _float_mask_times_inf(x):
    mask = torch.zeros_like(x)
    mask[:, -1] = 1
    return torch.softmax(x + mask * float("-inf"), dim=-1)


def _log_of_zero(x):
    p = torch.softmax(x * 1000, dim=-1)
    return torch.log(p)


def _log_of_negative(x):
    p = torch.sigmoid(x)
    return torch.log(p - 0.5)


def _root_of_negative(x):
    var = x.mean(-1, keepdim=True) ** 2 - (x ** 2).mean(-1, keepdim=True)  # E[x]² − E[x²]: the sign swapped
    return (x - x.mean(-1, keepdim=True)) / var.sqrt()


def _exp_overflow(x):
    e = torch.exp(x * 100)
    return e


def _ratio_of_exps(x):
    m = x.amax(-1, keepdim=True) * 100
    return torch.exp(m) / torch.exp(m + 1) * x


def _inf_minus_inf(x):
    big = torch.exp(x.abs() * 100)
    return big - big


def _rsqrt_of_zero(x):
    var = torch.zeros(x.shape[0], 1)
    return (x - x.mean(-1, keepdim=True)) * var.rsqrt()


NONFINITE = {
    "division by a buffer before its increment": (lambda: _CountedMean(), ["division by zero", "`self.count`", "is 0"]),
    "division by a zero variance": (lambda: _zero_divisor, ["division by zero", "`var` (= σ²)"]),
    "float mask times -inf": (lambda: _float_mask_times_inf, ["0 · (−∞)", "masked_fill"]),
    "log of 0": (lambda: _log_of_zero, ["log of 0"]),
    "log of a negative number": (lambda: _log_of_negative, ["log of a negative number"]),
    "root of a negative variance": (lambda: _root_of_negative, ["root", "negative", "`var` (= σ²)"]),
    "exp overflow": (lambda: _exp_overflow, ["overflowing", "88.7"]),
    "ratio of exponentials": (lambda: _ratio_of_exps, ["inf / inf", "e^(a − b)"]),
    "inf minus inf": (lambda: _inf_minus_inf, ["∞ − ∞"]),
    "rsqrt of 0": (lambda: _rsqrt_of_zero, ["1/√0"]),
}


@pytest.mark.parametrize("key", list(NONFINITE))
def test_the_first_nonfinite_operation_is_named(key):
    make, words = NONFINITE[key]
    fn = make()
    expected = _reference(X) if not isinstance(fn, nn.Module) else X + X.mean(0)
    message = _diagnosis(fn, expected=expected)
    for word in words:
        assert word.lower() in message.lower(), f"{word!r} not in: {message}"
    assert "line" in message  # the learner's line that made it


def test_a_right_answer_with_inf_inside_is_not_traced():
    """-inf written into the code (masked_fill) and e^−∞ = 0 make nothing non-finite: a passing answer pays nothing."""
    def masked(x):
        scores = x.masked_fill(x > 2.5, float("-inf"))
        return torch.softmax(scores, dim=-1)
    got = EX.call(masked, X.clone(), case=CASE)
    assert torch.isfinite(got).all()
    assert trace_nonfinite(masked, (X.clone(),), {}) == []


def test_a_trace_that_cannot_copy_or_raises_reads_nothing():
    def raises(x):
        1 / (x - x)  # noqa: B018 - made, then the call raises
        raise ValueError("after the NaN")
    births = trace_nonfinite(raises, (X.clone(),), {})
    assert births and births[0].op in ("truediv", "div")
    assert origin_reading([], "NaN") is None
    assert not decisive(None)


def test_a_chain_names_the_overflow_before_the_nan():
    def chained(x):
        e = torch.exp(x * 200)
        return e * 0 + e - e
    births = trace_nonfinite(chained, (X.clone(),), {})
    reading = origin_reading(births, "NaN")
    assert "overflowing" in reading and "Then:" in reading


# ----- arguments that are not what the call takes -----------------------------------------------------------------

def _method_not_called(x):
    return (x - x.mean(-1, keepdim=True)) / (x.var(-1, keepdim=True) + 1e-5).sqrt * 1.0


def _method_not_called_in_torch_call(x):
    return torch.sqrt(x.var) * x


def _size_as_axis(x):
    D = x.shape[-1]
    return x - x.mean(dim=D, keepdim=True)


def _axis_listed_twice(x):
    return x - x.mean(dim=(1, -1), keepdim=True)


def _loop_one_past(x):
    block, out = 2, []
    for start in range(0, x.shape[0] + 1, block):
        out.append(x[start:start + block].amax(0))
    return torch.stack(out)


ARGUMENTS = {
    "method used without calling it": (_method_not_called, ["`.sqrt` is written without", "`.sqrt()`"]),
    "method passed to a torch function": (_method_not_called_in_torch_call, ["`.var` is written without"]),
    "a size where an axis belongs": (_size_as_axis, ["passes 6, the size D", "takes an axis"]),
    "an axis listed twice": (_axis_listed_twice, ["listed twice", "1 and -1 are the same axis"]),
    "a loop one block past the end": (_loop_one_past, ["one step past the end", "range(0, x.shape[0], block)",
                                                       "`start` = 4 (= N)"]),
}


@pytest.mark.parametrize("key", list(ARGUMENTS))
def test_an_argument_that_is_not_what_the_call_takes_is_read(key):
    fn, words = ARGUMENTS[key]
    with pytest.raises(LearnerError) as caught:
        EX.call(fn, X.clone(), case=CASE)
    message = str(caught.value)
    for word in words:
        assert word.lower() in message.lower(), f"{word!r} not in: {message}"


def test_a_dim_out_of_range_that_is_no_size_keeps_the_generic_reading():
    with pytest.raises(LearnerError, match="does not have"):
        EX.call(lambda x: x.sum(dim=5), X.clone(), case=CASE)


def test_an_empty_slice_outside_a_loop_keeps_the_generic_reading():
    with pytest.raises(LearnerError, match="empty tensor"):
        EX.call(lambda x: x[5:].amax(0), X.clone(), case=CASE)


def test_overflow_reading_names_the_limit_of_the_dtype():
    births = trace_nonfinite(lambda x: torch.exp(x * 400), (X.double(),), {})
    assert "709.8" in origin_reading(births, "inf")
    assert math.isfinite(float(X.max()))


class _RootBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.abs().sqrt()

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * 0.5 / x.abs().sqrt() * x.sign()  # 1/√|x| at x = 0: inf, then 0 · inf


class _Root(nn.Module):
    def forward(self, x):
        return _RootBackward.apply(x)


def test_a_nan_made_in_the_backward_pass_is_read_at_its_origin():
    from utils.checks.core import nonfinite_origin, run_module
    case = Case("a zero input")
    run = run_module(EX, _Root(), torch.tensor([[0.0, 1.0, 4.0]]), case=case)
    assert torch.isnan(run.input_grad).any()
    reading = nonfinite_origin(EX.id, case)
    assert "division by zero" in reading and "0 · ∞" in reading and "x.abs().sqrt()" in reading


def test_a_buffer_that_held_inf_before_the_call_is_no_news():
    from utils.checks.origins import holds_nonfinite, module_state

    class WithMask(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("mask", torch.full((2, 2), float("-inf")).triu(1))

        def forward(self, x):
            return (x + self.mask).softmax(-1)
    module = WithMask()
    state = module_state(module)
    result = module(torch.zeros(2, 2))
    assert not holds_nonfinite(result, module, state)
    assert holds_nonfinite(result, module, {"mask": torch.zeros(2, 2)})


def test_an_axis_renumbered_by_an_earlier_reduction_is_not_read_as_a_size():
    """`.sum(0).sum(2).sum(3)`: 3 is an axis of the 4-D input (and, by chance, the size C), gone by the third sum."""
    from tests.checks_harness import assert_diagnoses
    from utils.checks import normalization as checks

    def chained(grad_out, x_hat, weight, inv_std):
        grad_bias = grad_out.sum(0).sum(2).sum(3)
        return grad_out, (grad_out * x_hat).sum(dim=(0, 2, 3)), grad_bias

    assert_diagnoses(checks.check_batch_norm_backward, chained, "renumbered", "keepdim")


def test_a_parameter_cut_out_of_the_graph_is_named():
    """`self.weight.data` in forward: the right output, but γ gets no gradient — nothing was 'not returned'."""
    from tests.checks_harness import assert_diagnoses
    from tests.solution_code import solution_namespace
    from utils.checks import normalization as checks

    RMSNorm = solution_namespace("02_normalization")["RMSNorm"]

    class RMSNormWeightData(RMSNorm):
        def forward(self, x):
            eps = torch.finfo(x.dtype).eps if self.eps is None else self.eps
            dims = tuple(range(-len(self.normalized_shape), 0))
            return x * torch.rsqrt((x * x).mean(dim=dims, keepdim=True) + eps) * self.weight.data

    assert_diagnoses(checks.check_rms_norm, RMSNormWeightData, "received no gradient", ".data")
