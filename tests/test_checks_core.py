"""The check toolkit itself: every diagnosis path of ``Exercise.compare`` and ``call``, and the numeric tools
(coefficient recovery, temperature fit, named factors, difference location, module runs)."""
import math

import pytest
import torch
import torch.nn as nn
from einops import rearrange

from tests.checks_harness import assert_passes
from utils import conventions
from utils.checks import CheckFailure, LearnerError, core

EX = core.Exercise("9.1", "toy")
CASE = core.Case("a toy case")
CASE64 = core.Case("a float64 case", torch.float64)


def expected(dtype=torch.float32):
    return torch.arange(1.0, 13.0, dtype=dtype).reshape(3, 4)


def diagnosis(got, reference=None, **options) -> str:
    reference = expected() if reference is None else reference
    case = CASE64 if reference.dtype == torch.float64 else CASE
    options.setdefault("equation", "eq. (9.1)")
    with pytest.raises(CheckFailure) as caught:
        EX.compare(got, reference, case=case, **options)
    message = str(caught.value)
    assert message.startswith("Exercise 9.1 (a "), message
    return message


# ----- compare: the order of diagnoses ------------------------------------------------------------------------
def test_a_match_passes_silently():
    EX.compare(expected() + 1e-7, expected(), case=CASE, equation="eq. (9.1)")


@pytest.mark.parametrize("got, words", [
    (None, "got None. Did you forget to return it?"),
    ([1, 2], "got a list, not a torch.Tensor"),
    (expected().T, "last two axes swapped"),
    (expected()[None], "extra axis of size 1 at position 0"),
    (expected().sum(-1), "Axis 1 (size 4) is missing"),
    (expected().reshape(2, 6), "a reshape or rearrange"),
    (expected().double(), "dtype torch.float64 but expected torch.float32"),
])
def test_structure_is_checked_first(got, words):
    assert words in diagnosis(got)


def test_a_missing_keepdim_and_an_unreduced_axis():
    assert "missing: a reduction without keepdim=True" in core.shape_hint(torch.Size([3]), torch.Size([3, 1]))
    assert "should have size 1" in core.shape_hint(torch.Size([3, 4]), torch.Size([3, 1]))
    assert "extra leading axes" in core.shape_hint(torch.Size([2, 5, 3, 4]), torch.Size([3, 4]))
    assert "another order" in core.shape_hint(torch.Size([4, 2, 3]), torch.Size([2, 3, 4]))
    assert core.shape_hint(torch.Size([5]), torch.Size([7, 8])) == ""


def test_a_catalogued_mistake_is_named_nan_included():
    wrong = expected().clone()
    wrong[0, 0] = math.nan
    assert "the classic" in diagnosis(wrong, mistakes=[None, core.Mistake(wrong.clone(), "the classic")])


def test_nan_and_inf_are_located():
    wrong = expected().clone()
    wrong[1, 2] = math.inf
    message = diagnosis(wrong, axes=("rows", "cols"))
    assert "inf in 8% of the entries (first at rows=1, cols=2)" in message
    wrong[1, 2] = math.nan
    assert "NaN" in diagnosis(wrong)


def test_probes_run_in_order_and_the_first_message_wins():
    calls = []

    def silent(got):
        calls.append("silent")

    def loud(got):
        calls.append("loud")
        return "rows must sum to 1 (eq. 9.2)"

    assert "rows must sum to 1 (eq. 9.2)" in diagnosis(expected() + 1, probes=[silent, loud, loud])
    assert calls == ["silent", "loud"]


def test_float32_arithmetic_on_float64_input_is_named():
    reference = expected(torch.float64) / 7
    got = (reference.float() * 1.0000001).double()
    assert "right only to float32 precision" in diagnosis(got, reference)


def test_a_constant_factor_is_named_from_the_chapter_constants():
    assert "2.828 (= √d_k)" in diagnosis(expected() * math.sqrt(8), factors={"√d_k": math.sqrt(8)})
    assert "(= 1/√d_k)" in diagnosis(expected() / math.sqrt(8), factors={"√d_k": math.sqrt(8)})
    assert "a sign is flipped" in diagnosis(-1.5 * expected())
    assert "a constant factor is off" in diagnosis(1.7 * expected())


def test_the_fallback_locates_the_difference_and_points_at_the_equation():
    wrong = expected().clone()
    wrong[:, 3] += 1
    message = diagnosis(wrong, axes=("T", "D"), otherwise="the last term")
    assert "25% of the entries are wrong, all of them at D = 3 (1 of 4)" in message
    assert "Compare your code with eq. (9.1) term by term: the last term" in message
    assert "largest difference at index" in message
    spread = expected() + torch.randn(3, 4, generator=torch.Generator().manual_seed(0))
    assert "spread over every axis" in diagnosis(spread)


def test_old_diagnose_api_still_works():
    with pytest.raises(CheckFailure, match=r"Exercise 9\.2 \(old\), your thing: .*eq\. \(9\.3\)"):
        core.diagnose(expected() + torch.rand(3, 4), expected(), exercise="9.2", case="old", name="thing",
                      equation="eq. (9.3)")


# ----- numbers ------------------------------------------------------------------------------------------------
def test_fit_linear_recovers_coefficients_per_item():
    generator = torch.Generator().manual_seed(1)
    x0, noise = torch.randn(2, 3, 4, generator=generator), torch.randn(2, 3, 4, generator=generator)
    a, b = torch.tensor([0.9, 0.5])[:, None, None], torch.tensor([0.3, 0.8])[:, None, None]
    fits = core.fit_linear(a * x0 + b * noise, {"x0": x0, "eps": noise}, per=0)
    assert [round(f.coefficients["x0"], 6) for f in fits] == [0.9, 0.5]
    assert [round(f.coefficients["eps"], 6) for f in fits] == [0.3, 0.8]
    assert all(f.exact for f in fits)
    assert fits[0].formula({"x0": "x₀", "eps": "ε"}) == "0.9·x₀ + 0.3·ε"
    assert not core.fit_linear(x0 * x0, {"x0": x0}).exact


def test_compare_coefficients_names_the_wrong_one():
    fit = core.Fit({"x0": 0.95, "eps": 0.25}, residual=0.0)
    message = core.compare_coefficients(fit, {"x0": 0.95, "eps": 0.31}, names={"eps": "ε"},
                                        named={"√β_t": 0.25, "√(1 − ᾱ_t)": 0.31})
    assert message == ("yours is 0.95·x0 + 0.25·ε: the coefficient of ε is 0.25 (= √β_t) but should be 0.31 "
                       "(= √(1 − ᾱ_t)).")
    assert core.compare_coefficients(fit, {"x0": 0.95, "eps": 0.25}) is None
    assert core.compare_coefficients(core.Fit({"x0": 1.0}, residual=0.5), {"x0": 2.0}) is None  # not linear


def test_fit_temperature():
    scores = torch.randn(4, 6, generator=torch.Generator().manual_seed(2))
    assert core.fit_temperature((scores / 3).softmax(-1), scores) == pytest.approx(1 / 3)
    assert core.fit_temperature(scores.abs().softmax(-1), scores) is None  # not a softmax of a·scores
    assert core.fit_temperature(torch.zeros(2, 3), scores[:2, :3]) is None
    constant = torch.ones(2, 3)
    assert core.fit_temperature(constant.softmax(-1), constant) is None


def test_name_value():
    named = {"d_k": 8.0, "√d_k": math.sqrt(8)}
    assert core.name_value(0.125, named) == "1/d_k"
    assert core.name_value(-8.0, named) == "−d_k"
    assert core.name_value(3.0, named) is None
    assert core.name_value(0.0, {"zero": 0.0}) == "zero"


def test_constant_factor_needs_a_consistent_ratio():
    assert core.constant_factor(2 * expected(), expected()) == pytest.approx(2)
    assert core.constant_factor(expected(), expected()) is None
    assert core.constant_factor(expected() ** 2, expected()) is None
    assert core.constant_factor(torch.zeros(3), torch.tensor([0.0, 0.0, 1.0])) is None  # one usable entry


def test_tolerance_is_tight_in_float64():
    assert core.tolerance(torch.float64) == (1e-9, 1e-7)
    assert core.tolerance(torch.float32) == (1e-5, 1e-4)
    assert core.tolerance(torch.bfloat16) == (1e-2, 1e-2)
    assert CASE64.tolerance == (1e-9, 1e-7)


def test_seeds_differ_per_exercise_and_key_and_are_stable():
    assert EX.seed("a", 1) == EX.seed("a", 1) != EX.seed("a", 2)
    assert core.Exercise("9.2", "toy").seed("a", 1) != EX.seed("a", 1)
    assert torch.equal(EX.randn(3, key=("x", 1)), EX.randn(3, key=("x", 1)))
    assert EX.randn(2, key="y", dtype=torch.float64).dtype == torch.float64


# ----- calling the learner's code -----------------------------------------------------------------------------
def learner_message(fn, *args) -> str:
    with pytest.raises(LearnerError) as caught:
        EX.call(fn, *args, case=CASE)
    return str(caught.value)


def broadcast(x):
    total = x.sum(-1)  # the learner forgot keepdim=True
    return x / total


def matmul(x):
    return x @ x


def einops_pattern(x):
    return rearrange(x, "B (H D) -> B H D", H=5)


def index_past_end(x):
    return x[x.shape[0]]


def mixed_dtypes(x):
    return x.double() @ torch.ones(4, 2)


def inplace(x):
    x = x.clone().requires_grad_()
    y = x.sigmoid()
    y += 1
    y.sum().backward()


def test_a_broadcast_error_is_read_as_one_and_quotes_the_learners_line():
    message = learner_message(broadcast, torch.ones(3, 4))
    assert message.startswith("Exercise 9.1 (a toy case): your toy raised RuntimeError: The size of tensor a (4)")
    assert "Two tensors did not broadcast" in message and "keepdim=True" in message
    assert "matrix product" not in message
    assert "of your code: `return x / total`" in message


@pytest.mark.parametrize("fn, x, words", [
    (matmul, torch.ones(3, 4), "don't fit a matrix product"),
    (einops_pattern, torch.ones(2, 6), "einops pattern"),
    (index_past_end, torch.ones(3), "An index is past the end"),
    (mixed_dtypes, torch.ones(3, 4), "different dtypes"),
    (inplace, torch.ones(3), "An in-place operation"),
])
def test_exceptions_are_read(fn, x, words):
    assert words in learner_message(fn, x)


def test_other_exception_hints():
    assert "one gradient per input" in core.exception_hint(RuntimeError("function XBackward returned an incorrect "
                                                                       "number of gradients (expected 3, got 2)"))
    assert "connected to the inputs" in core.exception_hint(
        RuntimeError("element 0 of tensors does not require grad and does not have a grad_fn"))
    assert ".reshape" in core.exception_hint(RuntimeError("view size is not compatible with input tensor's size"))
    assert core.exception_hint(ValueError("something else")) == ""


def test_a_stub_passes_through_unchanged():
    def stub(x):
        raise NotImplementedError(conventions.stub("9.1", "stub").split('("', 1)[1].rstrip('")'))

    with pytest.raises(NotImplementedError, match=r"^Exercise 9\.1: write the body of `stub`"):
        EX.call(stub, 1)


def test_learner_line_is_empty_without_a_learner_frame():
    try:
        torch.ones(2) @ torch.ones(3)
    except RuntimeError as error:
        error.__traceback__ = None
        assert core.learner_line(error) == ""


def test_fail_where_and_passed(capsys):
    assert str(EX.fail("it is wrong", case=CASE, name="weights")) == "Exercise 9.1 (a toy case), your weights: it " \
                                                                     "is wrong"
    assert EX.where("plain label") == "Exercise 9.1 (plain label)"
    line = assert_passes(lambda _: EX.passed("3 cases match"), None)
    assert line == "✓ Exercise 9.1 passed: 3 cases match"
    core.passed("9.3", "old style")
    assert capsys.readouterr().out.strip() == "✓ Exercise 9.3 passed: old style"


# ----- modules --------------------------------------------------------------------------------------------------
class Scale(nn.Module):
    """A learner's module: y = x · weight (per feature), maybe with a bug."""

    def __init__(self, features, bug=None):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(features))
        self.register_buffer("calls", torch.zeros(()))
        self.bug = bug

    def forward(self, x):
        self.calls += 1
        if self.bug == "detached":
            return (x * self.weight).detach()
        if self.bug == "tuple":
            return (x * self.weight,)
        if self.bug == "double":
            return x * self.weight * 2
        if self.bug == "grad":
            return x * self.weight + (x * x - (x * x).detach())  # right values, wrong gradient
        return x * self.weight


def runs(bug=None, library_bug=None):
    x = EX.randn(2, 3, key="x")
    library, mine = Scale(3), Scale(3, bug)
    with torch.no_grad():
        library.weight.copy_(EX.randn(3, key="w"))
    core.copy_parameters(library, mine, EX)
    return core.run_module(EX, mine, x, case=CASE), core.run_module(EX, library, x, case=CASE)


def test_module_runs_compare_output_gradients_and_buffers():
    got, want = runs()
    core.compare_runs(EX, got, want, case=CASE, equation="eq. (9.4)", buffers=("calls",))
    assert set(got.parameter_grads) == {"weight"} and got.buffers["calls"] == 1


@pytest.mark.parametrize("bug, words", [("detached", "not connected to the autograd graph"),
                                        ("tuple", "forward returned a tuple")])
def test_module_run_failures(bug, words):
    with pytest.raises(CheckFailure, match=words):
        runs(bug)


def test_module_output_and_gradient_differences():
    got, want = runs("double")
    with pytest.raises(CheckFailure, match=r"your output: your values are 2 ×"):
        core.compare_runs(EX, got, want, case=CASE, equation="eq. (9.4)")
    got, want = runs("grad")
    with pytest.raises(CheckFailure, match=r"your dL/dx: .*backward of eq\. \(9\.4\)"):
        core.compare_runs(EX, got, want, case=CASE, equation="eq. (9.4)")
    got, want = runs()
    del got.buffers["calls"]
    with pytest.raises(CheckFailure, match="no buffer `calls`"):
        core.compare_runs(EX, got, want, case=CASE, equation="eq. (9.4)", buffers=("calls",))


def test_copy_parameters_names_missing_and_misshapen_parameters():
    class Other(nn.Module):
        def __init__(self, shape):
            super().__init__()
            self.scale = nn.Parameter(torch.ones(shape))

    with pytest.raises(CheckFailure, match=r"no parameter `weight` \(expected shape \(3,\)\)"):
        core.copy_parameters(Scale(3), Other(3), EX)
    with pytest.raises(CheckFailure, match=r"`scale` has shape \(1, 3\) but should have \(3,\).*extra axis"):
        core.copy_parameters(Scale(3), Other((1, 3)), EX, names={"weight": "scale"})


def test_scalars_and_size_one_axes_still_get_the_equation():
    assert "Compare your code with eq. (9.1)" in diagnosis(torch.tensor(2.5), torch.tensor(1.0))
    wrong = torch.tensor([[1.0, 2.0, 3.0, 9.0]])
    assert "D = 3 (1 of 4)" in diagnosis(wrong, torch.tensor([[1.0, 2.0, 3.0, 4.0]]), axes=("B", "D"))


def test_parameters_without_a_gradient_are_skipped():
    got, want = runs()
    want.parameter_grads["frozen"] = None
    core.compare_runs(EX, got, want, case=CASE, equation="eq. (9.4)")


def test_an_input_changed_in_place_is_named():
    def scale_in_place(p, g):
        p *= g  # right values, but the caller's p is gone
        return p

    with pytest.raises(CheckFailure, match=r"changed its input argument number 1 in place .*p \* g, not p \*= g"):
        EX.call(scale_in_place, torch.ones(3), 2 * torch.ones(3), case=CASE)
    with pytest.raises(CheckFailure, match=r"changed its input `p` in place"):
        EX.call(scale_in_place, p=torch.ones(3), g=2 * torch.ones(3), case=CASE)
    nan = torch.tensor([math.nan, 1.0])
    assert EX.call(lambda x: x + 1, nan, case=CASE)[1] == 2  # NaN inputs left alone are unchanged
