"""The check toolkit itself: every diagnosis path of ``Exercise.compare`` and ``call``, and the numeric tools
(coefficient recovery, temperature fit, named factors, difference location, module runs)."""
import math
import re
from dataclasses import dataclass

import pytest
import torch
import torch.nn as nn
from einops import rearrange

from tests.checks_harness import assert_passes
from utils import conventions
from utils.checks import CheckFailure, LearnerError, core
from utils.checks import operands as operands_module

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
    (2 * expected().T, "last two axes swapped"),  # wrong numbers too: the right ones in another shape are named
    (2 * expected()[None], "extra axis of size 1 at position 0"),
    (expected().sum(-1), "Axis 1 (size 4) is missing"),
    (2 * expected().reshape(2, 6), "a reshape or rearrange"),
    (expected().double(), "dtype torch.float64 but expected torch.float32"),
])
def test_structure_is_checked_first(got, words):
    assert words in diagnosis(got)


def test_an_axis_split_or_merged_and_shapes_named_with_the_cases_sizes():
    assert "expected axis 1 (6 entries) is split into your axes 1 and 2 (3 × 2)" in \
        core.shape_hint(torch.Size([2, 3, 2, 4]), torch.Size([2, 6, 4]))
    assert "Your axis 1 holds the expected axes 1 and 2 merged (3 × 2 = 6)" in \
        core.shape_hint(torch.Size([2, 6, 4]), torch.Size([2, 3, 2, 4]))
    sizes = {"N": 2, "C": 6, "H": 4, "G": 3, "C/G": 2}
    message = core.structure_problem(torch.ones(2, 3, 2, 4), torch.ones(2, 6, 4), sizes)
    assert "shape (2, 3, 2, 4) but expected (2, 6, 4). Yours is (N, G, C/G, H), the expected (N, C, H)." in message
    assert "Yours is" not in core.structure_problem(torch.ones(5), torch.ones(7), sizes)  # no size named


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

    @dataclass(frozen=True)
    class RootCase(core.Case):
        @property
        def nonfinite_causes(self):
            return "a square root of a negative number."

    with pytest.raises(CheckFailure, match=r"where the answer is finite\. a square root of a negative number\.$"):
        EX.compare(wrong, expected(), case=RootCase("roots"), equation="eq. (9.1)")


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
    assert core.tolerance(torch.float32) == (1e-5, 1e-4)
    assert core.tolerance(torch.bfloat16) == (1e-2, 1e-2)
    assert CASE64.tolerance == core.tolerance(torch.float64)
    # one rounding to float32 inside a float64 computation fails; float64 arithmetic in another order passes
    atol, rtol = core.tolerance(torch.float64)
    x = torch.randn(1000, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert not torch.allclose(x.float().double(), x, atol=atol, rtol=rtol)
    softmax = x.softmax(0)
    by_hand = (x - x.max()).exp() / (x - x.max()).exp().sum()
    assert torch.allclose(by_hand, softmax, atol=atol, rtol=rtol)


def test_one_thread_runs_a_check_on_one_thread_and_restores_the_setting():
    seen = []
    check = core.one_thread(lambda: seen.append(torch.get_num_threads()) or "done")
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert check() == "done" and seen == [1] and torch.get_num_threads() == 2
        failing = core.one_thread(lambda: 1 / 0)
        with pytest.raises(ZeroDivisionError):
            failing()
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


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


# ----- shape errors read from the operands of the operation that raised ---------------------------------------
IMAGE = {"N": 4, "C": 3, "H": 5, "W": 5}


def op(*shapes, name="mul", names=(), variables=()):
    """An Operation with operands of ``shapes``, the i-th named ``names[i]`` (a name ending in "~" is a view)."""
    operands = []
    for i, shape in enumerate(shapes):
        given = names[i] if i < len(names) else None
        operands.append(operands_module.Operand(tuple(shape), given and given.rstrip("~"), bool(given) and
                                                given.endswith("~")))
    return operands_module.Operation(name, tuple(operands), tuple(variables))


def read(*shapes, sizes=IMAGE, **options) -> str:
    return operands_module.read_operation(op(*shapes, **options), sizes)


def per_channel_scale_on_the_last_axis(x, weight):
    scale = weight * 2  # (C,): lines up with W
    return x * scale


def test_a_broadcast_error_names_both_shapes_and_the_learners_variable():
    case = ImageCase("images")
    with pytest.raises(LearnerError) as caught:
        EX.call(per_channel_scale_on_the_last_axis, torch.ones(4, 3, 5, 5), torch.ones(3), case=case)
    message = str(caught.value)
    assert "Two tensors did not broadcast" in message  # the first sentence stays, for every reading
    assert "Your `scale` of shape (3,) = (C,) lines up with the LAST axis (W) of your `x` of shape (4, 3, 5, 5) = " \
           "(N, C, H, W), not with C" in message
    assert "view `scale` as (1, 3, 1, 1) = (1, C, 1, 1)" in message
    assert "Is a reduction missing" not in message  # no menu once the shapes say what happened


@dataclass(frozen=True)
class ImageCase(core.Case):
    @property
    def sizes(self):
        return dict(IMAGE)


def test_a_1d_tensor_from_a_reduction_and_a_1d_tensor_among_equal_sizes():
    message = read((4, 3, 5, 5), (3,), names=("x", "var"))
    assert "Your `var` of shape (3,) = (C,)" in message and "[None, :, None, None]" in message
    assert "a mean or sum over (N, H, W) with keepdim=True gives that shape directly" in message
    ambiguous = read((4, 4, 5, 5), (4,), sizes={"N": 4, "C": 4, "H": 5, "W": 5})  # N = C: two places it may go
    assert "(4, 1, 1, 1) = (N, 1, 1, 1) or (1, 4, 1, 1)" in ambiguous and "keepdim" not in ambiguous
    assert "not with N or C" in ambiguous


def test_a_reduction_without_keepdim_is_read_from_the_axis_that_disappeared():
    message = read((2, 5, 8), (2, 5), sizes={"B": 2, "T": 5, "D": 8})
    assert "it was reduced without keepdim=True: it is (B, T, D) with D reduced away" in message
    assert "its (B, T) met (T, D)" in message and "(2, 5, 1) = (B, T, 1)" in message
    both = read((4, 3, 5, 5), (4, 3, 5))  # H = W: either could have gone
    assert "with W or H reduced away" in both or "with H or W reduced away" in both


def test_a_tensor_that_lacks_size_one_axes_and_one_on_the_wrong_axes():
    lacking = read((1, 2, 12, 1), (1, 2, 12), sizes={"H": 2, "Tq": 12})
    assert "it lacks the other's axes of size 1 (a mean or sum without keepdim=True" in lacking
    assert "view it as (1, 2, 12, 1) = (1, H, Tq, 1)" in lacking
    misplaced = read((4, 3, 5, 6), (1, 3, 1, 1, 1), sizes=None)  # (3, 1, 1, 1) lined up from the left
    assert "its (axis 1) met (axis 0): view it as (1, 3, 1, 1)" in misplaced


def test_a_temporary_is_described_by_the_variable_whose_shape_it_has():
    message = read((2, 5, 8), (2, 5), sizes={"B": 2, "T": 5, "D": 8}, variables=(("var", (2, 5)), ("x", (2, 5, 8))))
    assert "A tensor of shape (2, 5) = (B, T), the shape of your `var`, was broadcast against" in message
    assert "view it as (2, 5, 1)" in message
    two = read((2, 5, 8), (2, 5), sizes=None, variables=(("var", (2, 5)), ("mean", (2, 5))))
    assert "the shape of your" not in two  # two candidates: none is named


def test_two_layouts_of_one_vector_crossed_into_an_outer_product():
    named = read((4, 3, 5, 5), (1, 1, 3, 1, 3), names=("x_hat", "scale"),
                 variables=(("weight", (3,)), ("inv_std", (1, 3, 1, 1)), ("x_hat", (4, 3, 5, 5))))
    assert "Your `scale` of shape (1, 1, 3, 1, 3) = (1, 1, C, 1, C) has C = 3 on 2 axes" in named
    assert "(your `weight` is (3,) = (C,) and your `inv_std` is (1, 3, 1, 1) = (1, C, 1, 1))" in named
    assert "Give every per-C tensor the same shape, (1, 3, 1, 1) = (1, C, 1, 1)" in named
    unnamed = read((4, 3, 5, 5), (1, 3, 1, 3))
    assert "(say (3,) and (1, 3, 1, 1) = (1, C, 1, 1))" in unnamed
    scores = read((2, 3, 5, 8), (2, 3, 5, 5), sizes={"B": 2, "H": 3, "T": 5, "D": 8})  # (T, T) is no crossing
    assert "on 2 axes" not in scores
    assert "on 2 axes" not in read((5, 3, 4), (3, 1, 3), sizes=None)  # one 3 alone would not broadcast either


def test_a_size_split_over_two_axes_of_a_grouped_view():
    message = read((2, 3, 2, 4, 4), (1, 6, 1, 1), names=(None, "self.weight~"),
                   sizes={"N": 2, "C": 6, "H": 4, "W": 4, "G": 3, "C/G": 2})
    assert "A view of your `self.weight` of shape (1, 6, 1, 1) = (1, C, 1, 1)" in message
    assert "holds its C = 6 entries split over the axes (G, C/G)" in message  # not (N, G), also 6 entries
    assert "view `self.weight` as (1, 3, 2, 1, 1) = (1, G, C/G, 1, 1)" in message
    assert "view the smaller one as" in read((2, 3, 2, 4), (6, 1, 1), sizes=None)


def test_axes_out_of_order_where_they_meet():
    message = read((2, 3, 2, 4, 4), (1, 2, 3, 1, 1), names=(None, "self.weight~"),
                   sizes={"N": 2, "C": 6, "H": 4, "W": 4, "G": 3, "C/G": 2})
    assert "its (C/G, G) met (G, C/G) — the same sizes in another order" in message
    assert "make it (1, 3, 2, 1, 1) = (1, G, C/G, 1, 1)" in message
    named = read((4, 3, 5), (5, 3), names=(None, "b"), sizes=None)
    assert "its (5, 3) met (3, 5)" in named and "make `b` (1, 3, 5)" in named


def test_permuted_axes_and_a_plain_clash():
    swapped = read((2, 5, 3), (2, 3, 5), names=("p", "grad_p"), sizes={"B": 2, "Tq": 5, "Tk": 3})
    assert "have the same sizes in another order: their last two axes are swapped" in swapped
    assert "(B, Tk, Tq)" in swapped
    permuted = read((4, 3, 5, 6), (4, 5, 6, 3), sizes=None)
    assert "one of them has its axes permuted" in permuted
    clash = read((1, 2, 12, 16), (1, 2, 12, 6), names=("correction", "output"),
                 sizes={"H": 2, "Tq": 12, "block_size": 16, "d_v": 6})
    assert "their axis -1 holds block_size = 16 in one and d_v = 6 in the other" in clash


def test_operations_that_are_not_read():
    assert operands_module.read_operation(None) is None
    assert read((3, 4)) is None  # one operand
    assert read((3, 4), (5,), name="setitem") is None  # a write: the target is a region, not the operand
    assert read((3, 4), (5, 4), name="cat") is None
    assert read((3, 4), (4,)) is None  # they broadcast: nothing to read
    assert operands_module.axis_names((3, 4), None) is None
    assert operands_module.axis_names((3, 4), {"D": 8}) is None
    assert operands_module.show_shape((7,), {}) == "(7,)"


def test_axis_names_prefer_the_cases_order_and_stay_cheap():
    assert operands_module.axis_names((4, 3, 5, 5), IMAGE) == ["N", "C", "H", "W"]
    assert operands_module.axis_names((5, 1, 9), IMAGE) == ["H", "1", "9"]
    many = {f"a{i}": 2 for i in range(5)}  # 5 names for every axis of 6: 15,625 choices, so only the first
    assert operands_module.axis_names((2,) * 6, many) == ["a0"] * 6


@pytest.mark.parametrize("a, b, words", [
    ((2, 3, 5, 8), (8, 7, 3, 2), "the second operand has all its axes in reverse order"),
    ((5, 8, 3, 2), (2, 3, 8, 7), "the first operand has all its axes in reverse order"),
    ((5, 3), (5, 3), "one of the operands needs a transpose (A @ Bᵀ and Aᵀ @ B would both fit)"),
    ((2, 5, 8), (2, 7, 8), "a transpose is missing on the second operand (`k`): k.transpose(-2, -1)"),
    ((2, 5, 3), (2, 5, 4), "a transpose is missing on the first operand (`dS`): dS.transpose(-2, -1)"),
    ((5, 3), (4, 5), "the operands are in the wrong order"),
    ((5, 3), (4, 6), "they must be equal"),
    ((2, 5, 3), (4, 3, 6), "the batch axes (2,) and (4,) do not broadcast"),
])
def test_matrix_products_are_read(a, b, words):
    message = read(a, b, name="matmul", names=("dS", "k"), sizes=None)
    assert words in message
    assert message.startswith(" Yours is `dS` ")


def test_matrix_products_that_fit_or_are_not_matrices_are_not_read():
    assert read((2, 5, 3), (2, 3, 4), name="matmul") is None
    assert read((3,), (3, 4), name="matmul") is None
    a, b = torch.ones(5, 8), torch.ones(2, 7, 8)
    swapped = operands_module._operation(torch.Tensor.__rmatmul__, (b, a), {}, {"k": b})  # b.__rmatmul__(a) = a @ b
    assert operands_module.read_operation(swapped).endswith("missing on the second operand (`k`): k.transpose(-2, -1).")


def test_a_matrix_product_error_quotes_the_view_it_came_from():
    def scores(q, k):
        return q @ k.T  # reverses every axis of a 4-D k

    with pytest.raises(LearnerError) as caught:
        EX.call(scores, torch.ones(2, 3, 5, 8), torch.ones(2, 3, 7, 8), case=CASE)
    message = str(caught.value)
    assert "Two tensors did not broadcast" in message  # PyTorch's error is about the batch axes
    assert "Yours is `q` (2, 3, 5, 8) @ a view of `k` (8, 7, 3, 2)" in message
    assert "has all its axes in reverse order" in message


class BadModule(nn.Module):
    """A learner's module with a per-channel buffer lined up with the wrong axis, and a counter it updates."""

    def __init__(self):
        super().__init__()
        self.register_buffer("centre", torch.zeros(3))
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return x - self.centre


def test_a_module_is_copied_for_the_second_run():
    module = BadModule()
    for fn in (module, module.forward):
        with pytest.raises(LearnerError, match=r"Your `self.centre` of shape \(3,\)"):
            EX.call(fn, torch.ones(2, 3, 4, 4), case=CASE)
    assert module.calls == 2  # once per call: the second runs were on copies


def test_a_custom_backward_is_read_too():
    class Scale(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, weight):
            ctx.save_for_backward(weight)
            return x * weight[None, :, None, None]

        @staticmethod
        def backward(ctx, grad_out):
            (weight,) = ctx.saved_tensors
            return grad_out * weight, None  # (C,) on the last axis

    x, weight = torch.ones(2, 3, 4, 4, requires_grad=True), torch.ones(3)
    out = Scale.apply(x, weight)
    for run in (lambda: EX.call(torch.autograd.grad, out, x, torch.ones_like(out), case=CASE),
                lambda: EX.call(out.backward, torch.ones_like(out), retain_graph=True, case=CASE)):
        with pytest.raises(LearnerError, match=r"Your `weight` of shape \(3,\) lines up with the LAST axis \(axis 3\) "
                                               r"of your `grad_out`"):
            run()
    assert torch.autograd.has_torch_function is torch.overrides.has_torch_function  # switched back


def test_no_reading_when_the_second_run_differs_or_cannot_be_made():
    calls = []

    def flaky(x):
        calls.append(1)
        if len(calls) == 1:
            return x * torch.ones(5)  # raises the first time only
        return x

    with pytest.raises(LearnerError, match=r"Is a reduction missing keepdim=True"):
        EX.call(flaky, torch.ones(3), case=CASE)  # the first run raises, the second does not: the generic reading

    def other_error(x):
        calls.append(1)
        raise (RuntimeError("The size of tensor a (1) must match the size of tensor b (2) at non-singleton "
                            "dimension 0") if len(calls) % 2 else ValueError("something else"))

    calls.clear()
    with pytest.raises(LearnerError, match=r"Is a reduction missing"):
        EX.call(other_error, torch.ones(3), case=CASE)

    class Uncopyable(nn.Module):
        def __deepcopy__(self, memo):
            raise RuntimeError("no copies")

        def forward(self, x):
            return x * torch.ones(5)

    with pytest.raises(LearnerError, match=r"Is a reduction missing"):
        EX.call(Uncopyable(), torch.ones(3), case=CASE)
    assert operands_module.failing_operation(len, (), {}, ValueError("not about shapes")) is None


def test_an_error_no_torch_operation_raised_has_no_operation():
    def raises_itself(x):
        raise RuntimeError("The size of tensor a (1) must match the size of tensor b (2) at non-singleton dimension 0")

    with pytest.raises(LearnerError, match=r"Is a reduction missing"):
        EX.call(raises_itself, torch.ones(3), case=CASE)


def test_inputs_are_copied_except_those_in_a_graph():
    leaf, plain = torch.ones(2, requires_grad=True), torch.ones(2)
    copied = operands_module._copy_inputs({"a": [leaf, plain], "b": (plain, 3)})
    assert copied["a"][0] is leaf and copied["a"][1] is not plain and torch.equal(copied["a"][1], plain)
    assert copied["b"][1] == 3 and isinstance(copied["b"], tuple)


def test_operands_are_named_by_identity_then_by_storage():
    x = torch.ones(3, 4)
    names = {"x": x, "empty": torch.ones(0)}
    assert operands_module._operand(x, names) == operands_module.Operand((3, 4), "x")
    assert operands_module._operand(x.T, names) == operands_module.Operand((4, 3), "x", view=True)
    assert operands_module._operand(torch.ones(2), names) == operands_module.Operand((2,))
    assert operands_module._storage(torch.ones(2, 2).to_sparse()) is None


def test_the_learners_frame_is_found_or_there_is_none(monkeypatch):
    weight = torch.ones(3)  # noqa: F841 - read from this frame's locals
    assert "weight" in operands_module._learner_locals()
    monkeypatch.setattr(operands_module, "LIBRARY_FILE", re.compile("."))  # every frame a library's
    assert operands_module._learner_locals() == {}


# ----- the right numbers in the wrong place ---------------------------------------------------------------------
# Round 4, written before the readings below: learner-style answers whose numbers are right but misplaced, and
# exceptions whose reading needs the values of the failing line (a None, a 0, a number written into the code).
SIZES = {"N": 2, "C": 3, "H": 4, "W": 5}


def image(dtype=torch.float32):
    return torch.arange(1.0, 121.0, dtype=dtype).reshape(2, 3, 4, 5)


def image_diagnosis(got, **options) -> str:
    case = ImageSizesCase("an image case")
    with pytest.raises(CheckFailure) as caught:
        EX.compare(got, image(), case=case, equation="eq. (9.2)", **options)
    return str(caught.value)


@dataclass(frozen=True)
class ImageSizesCase(core.Case):
    @property
    def sizes(self):
        return SIZES


@pytest.mark.parametrize("got, words", [
    (image().reshape(2, 3, 20), ["your numbers are right, but in shape (2, 3, 20) = (N, C, H·W)",
                                 "reshape back to (N, C, H, W)", ".reshape(2, 3, 4, 5)"]),
    (image().permute(0, 2, 3, 1), ["your axes are in the order (N, H, W, C)", ".permute(0, 3, 1, 2)"]),
    (image().transpose(0, 1).reshape(2, 3, 4, 5), ["laid out as (C, N, H, W) and then reshaped to (N, C, H, W)",
                                                   ".permute(1, 0, 2, 3)"]),
    (image().transpose(0, 1).reshape(3, 40), ["laid out as (C, N, H, W)", "reshaped to (C, N·H·W)"]),
    (image().reshape(2, 3, 2, 2, 5), ["in shape (2, 3, 2, 2, 5) = (N, C, 2 of H, 2 of H, W)"]),  # H split
    ((image(), image()[0]), ["you returned a tuple of 2, not a tensor; its item 0 is the right output",
                             "`return output`"]),
])
def test_the_right_numbers_in_the_wrong_place_are_named(got, words):
    message = image_diagnosis(got)
    for word in words:
        assert word in message, message


def test_a_square_tensor_whose_axes_coincide_and_what_is_not_a_layout():
    square = torch.arange(16.0).reshape(4, 4)
    message = core.layout_problem(square.T.contiguous(), square, atol=1e-6, rtol=1e-5)
    assert "(the sizes coincide, so the shape alone looked right)" in message and ".permute(1, 0)" in message
    assert core.layout_problem(square + 1, square, atol=1e-6, rtol=1e-5) is None  # other numbers
    assert core.layout_problem(square.double(), square, atol=1e-6, rtol=1e-5) is None  # another dtype
    assert core.layout_problem(torch.zeros(6, 1, 1, 1, 1, 1), torch.zeros(6, 1, 1, 1, 1, 1) + 1, atol=0,
                               rtol=0) is None  # more than 5 axes: not tried
    assert core.layout_problem([1, 2], square, atol=0, rtol=0) is None
    assert core.one_of_several((square + 1, 3), square, atol=0, rtol=0) is None  # no item is the answer
    assert core.one_of_several(torch.Size([4, 4]), square, atol=0, rtol=0) is None
    named = core.one_of_several([square], square, "output with γ = 1", atol=0, rtol=0)
    assert "you returned a list of 1" in named and "`return y`" in named  # a name that is no identifier


def test_merged_names_follow_the_reshape_or_give_up():
    assert core._merged_names((2, 60), (2, 3, 4, 5), list("NCHW")) == ["N", "C·H·W"]
    assert core._merged_names((2, 3, 20), (2, 3, 1, 4, 5), ["N", "C", "1", "H", "W"]) == ["N", "C", "H·W"]
    assert core._merged_names((6, 20), (2, 3, 4, 5), list("NCHW")) == ["N·C", "H·W"]
    assert core._merged_names((2, 3, 2, 2, 5), (2, 3, 4, 5), list("NCHW")) == ["N", "C", "2 of H", "2 of H", "W"]
    assert core._merged_names((3, 40), (2, 3, 4, 5), list("NCHW")) is None  # sizes that straddle two axes
    grouped = {"N": 2, "C": 6, "G": 3, "C/G": 2, "H": 4}
    parts = core._merged_names((2, 3, 2, 4), (2, 6, 4), list("NCH"))
    assert core._case_names_of_parts(parts, (2, 3, 2, 4), grouped) == ["N", "G", "C/G", "H"]
    assert core._case_names_of_parts(None, (2, 3), grouped) is None
    assert core._case_names_of_parts(["N", "2 of H", "2 of H"], (2, 2, 2), {"N": 2}) == ["N", "2 of H", "2 of H"]
    assert core._merged_names((2, 3), (2, 3, 4), list("NCH")) is None  # sizes left over


GAMMA, BETA = torch.tensor([1.0, 2.0]), torch.tensor([3.0, 4.0])


@pytest.mark.parametrize("got, words", [
    ((image(), BETA, GAMMA), ["your weight (γ) and bias (β) are in each other's places",
                              "you returned bias (β) where weight (γ) goes, and weight (γ) where bias (β) goes",
                              "Return them in the order (x, weight, bias)"]),
    ((GAMMA, BETA, image()), ["you returned weight (γ) where x goes; you returned bias (β) where weight (γ) goes; "
                              "you returned x where bias (β) goes"]),  # moved round
    ((image(), GAMMA, GAMMA), None),  # γ twice: the same formula twice is likelier, left to the chapter
    ((image(), GAMMA, BETA), None),  # all right
])
def test_results_in_each_others_places(got, words):
    message = core.misplaced_results(got, (image(), GAMMA, BETA), ("x", "weight (γ)", "bias (β)"))
    if words is None:
        assert message is None
    else:
        for word in words:
            assert word in message, message


def test_three_results_moved_round_in_a_cycle():
    a, b, c = torch.ones(2), 2 * torch.ones(2), 3 * torch.ones(2)
    message = core.misplaced_results((c, a, b), (a, b, c), ("a", "b", "c"), order="a, b, c, None")
    assert message == ("you returned c where a goes; you returned a where b goes; you returned b where c goes. "
                       "Return them in the order (a, b, c, None).")


# ----- exceptions read from the failing line's values ---------------------------------------------------------
@dataclass(frozen=True)
class OptionCase(core.Case):
    momentum: float | None = None
    groups: int = 3

    @property
    def sizes(self):
        return {"N": 2, "C": 6, "G": self.groups, "H": 4, "W": 4}

    @property
    def none_means(self):
        return {"momentum": ("a cumulative average", "a = 1 / n if momentum is None else momentum")}

    @property
    def size_sources(self):
        return {"G": "self.num_groups"}


def learner_error(fn, *args, case=None) -> str:
    with pytest.raises(LearnerError) as caught:
        EX.call(fn, *args, case=case or OptionCase("an option case"))
    return str(caught.value)


def moving_average(running, batch, momentum=None):
    factor = momentum
    return running * (1 - factor) + factor * batch


def never_returns(x):
    x.mean()


def uses_nothing(x):
    nothing = never_returns(x)
    return nothing * 2


def alpha_before_counting(x, count=0):
    alpha = 1 / count
    return x * alpha


def hard_coded_groups(x):
    N, C, H, W = x.shape
    return x.reshape(N, 32, C // 32, H, W)


def groups_from_a_variable(x):
    N, C, H, W = x.shape
    groups = 5
    return x.reshape(N, groups, -1)


def one_axis_too_many(x):
    N, C, H, W = x.shape
    return x.reshape(N, 3, C, H, W)


def running_mean_update(running, x):
    running.mul_(0.9).add_(0.1 * x.mean(dim=(0, 2, 3), keepdim=True))
    return running


def grown_in_place(running, x):
    running.add_(x.mean(dim=(0, 3)))  # (C, H) into (W,)
    return running


@pytest.mark.parametrize("fn, args, words", [
    (moving_average, (torch.zeros(3), torch.ones(3)),
     ["In this line `factor` is None", "This case passes momentum=None, which means a cumulative average",
      "handle momentum=None before any arithmetic with it — a = 1 / n if momentum is None else momentum."]),
    (alpha_before_counting, (torch.ones(3),), ["In this line `count` is 0: a count used before it is incremented"]),
    (hard_coded_groups, (torch.ones(2, 6, 4, 4),),
     ["Your reshape asks for (2, 32, 0, 4, 4) = (N, 32, 0, H, W) from a tensor of 192 = N·C·H·W values",
      "32 is hard-coded, written into this line, and none of this case's sizes (N = 2, C = 6, G = 3, H = W = 4)",
      "the 0 is C // 32 = 6 // 32 = 0", "(G = self.num_groups)"]),
    (groups_from_a_variable, (torch.ones(2, 6, 4, 4),),
     ["-1) = (N, 5, -1)", "5 is none of this case's sizes", "computed from the wrong sizes?"]),
    (one_axis_too_many, (torch.ones(2, 6, 4, 4),),
     ["(N, G, C, H, W)", "3 is hard-coded, written into this line (in this case 3 = G only by chance)",
      "they multiply to 576 = N·C·G·H·W, not to the tensor's 192: an axis too many"]),
    (running_mean_update, (torch.zeros(6), torch.ones(2, 6, 4, 4)),
     ["writes its result into a tensor of shape (6,) = (C,)", "broadcast to (1, 6, 1, 6) = (1, C, 1, C)",
      "has shape (1, 6, 1, 1) = (1, C, 1, 1), the same entries with extra axes of size 1", ".reshape(6,)"]),
    (grown_in_place, (torch.zeros(4), torch.ones(2, 6, 4, 4)),
     ["has shape (6, 4) = (C, H)", "Give it the shape (4,), or one that broadcasts to it."]),
])
def test_exceptions_are_read_from_the_values_of_the_failing_line(fn, args, words):
    message = learner_error(fn, *args)
    for word in words:
        assert word in message, message


def test_a_none_without_a_none_option_and_a_zero_that_is_not_in_the_line():
    message = learner_error(uses_nothing, torch.ones(2), case=core.Case("plain"))
    assert "In this line `nothing` is None" in message and "a function without a return statement" in message

    def divide(count):
        return 1 / (count - 2)
    message = learner_error(divide, 2, case=core.Case("plain"))
    assert "ZeroDivisionError" in message and "is 0" not in message
    assert core.value_reading(TypeError("object of type 'NoneType' has no len()"), {}) == (
        " A value in this line is None. None is what a function without a return statement gives, or an argument "
        "or attribute that was never set: find where that value comes from.")


def test_reshape_and_in_place_readings_without_a_case_or_an_operation():
    assert core.reshape_reading([-1, 5], 12, {"D": 5}) == (
        " Your reshape asks for (-1, 5) = (-1, D) from a tensor of 12 values: the other sizes multiply to 5, which "
        "does not divide 12, so -1 cannot be filled in.")
    assert "an axis of size 0: an integer division (//) that rounded down to 0?" in \
        core.reshape_reading([0, 4], 8, {"H": 4}, line="x.view(a, 4)")
    assert "the 0 is 2 // 3 = 0" in core.reshape_reading([0], 8, {}, line="x.view(2 // 3)")
    assert core.inplace_reading("3", "2, 3", None, None).endswith("(a reduction with keepdim=True?).")


def test_line_values_resolve_names_without_calling_anything():
    class Holder:
        momentum = None

        @property
        def broken(self):
            raise RuntimeError("no")

    def fails(holder, size):
        total = 0
        raise ValueError(f"{holder.momentum} {holder.broken if False else ''} {size} {total} {math}")
    try:
        fails(Holder(), torch.Size([2]))
    except ValueError as error:
        line = 'x = holder.momentum + holder.broken + size.numel() + total + math.pi + missing + True + "a.b"'
        values = operands_module.line_values(error, line)
    assert values == {"holder.momentum": None, "size": torch.Size([2]), "total": 0}
    assert operands_module.line_values(ValueError("no traceback"), "x") == {}


def test_case_options_that_are_none_and_their_defaults():
    assert OptionCase("c").none_options == ["momentum"] and OptionCase("c", momentum=0.1).none_options == []
    base = core.Case("c")
    assert base.none_means == {} and base.size_sources == {} and base.none_options == []


def test_product_names_and_sizes_text():
    assert core.product_name(20, {"N": 4, "H": 5, "W": 5, "C/G": 2}) == "N·H = N·W"
    assert core.product_name(2.5, {"N": 4}) is None and core.product_name(7, {"N": 4}) is None
    assert core.product_name(4, None) is None
    assert core.sizes_text({"N": 2, "C/G": 2, "H": 4}) == "N = C/G = 2, H = 4"


# ----- coefficients in each other's places ----------------------------------------------------------------------
@pytest.mark.parametrize("have, want, words", [
    ({"x": 1.031, "e": 0.1576, "z": 0.0}, {"x": 1.031, "e": -0.08602, "z": 0.2436},
     "you used ε where z goes: there is no z term, and ε's coefficient is -0.08602 + 0.2436 = 0.1576"),
    ({"a": 2.0, "b": 1.0}, {"a": 1.0, "b": 2.0}, "you used a where b goes and b where a goes: their coefficients "
                                                 "are exchanged (a has 2, b has 1)"),
    ({"a": 0.0, "b": 3.0, "c": 5.0}, {"a": 3.0, "b": 0.0, "c": 1.0},
     "you used b where a goes (b has the coefficient a should have, 3, and a is missing); the coefficient of c is 5 "
     "but should be 1."),
])
def test_compare_coefficients_says_which_term_took_anothers_place(have, want, words):
    message = core.compare_coefficients(core.Fit(have, 0.0), want, names={"e": "ε"})
    assert words in message, message


def test_an_ambiguous_move_is_not_claimed_unless_the_term_it_stands_for_is_known():
    have, want = {"a": 0.0, "b": 3.0, "c": 3.0}, {"a": 3.0, "b": 0.0, "c": 0.0}
    assert core.coefficient_moves(have, want) is None  # b or c took a's place?
    said, explained = core.coefficient_moves(have, want, stands_for={"c": "a"})
    assert said.startswith("you used c where a goes") and explained == {"a", "c"}
    assert core.coefficient_moves({"a": 1.0}, {"a": 1.0}) is None


def test_counts_held_in_tensors_are_read_too():
    def alpha(count):
        return 1 / count.item()
    assert "In this line `count` is 0" in learner_error(alpha, torch.tensor(0), case=core.Case("plain"))
    assert "the 0 is a // b = 2 // 3 = 0" in core.reshape_reading([0], 8, {}, line="x.view(a // b)",
                                                                  values={"a": torch.tensor(2), "b": 3})


@dataclass(frozen=True)
class QuantityCase(core.Case):
    @property
    def sizes(self):
        return {"N": 2, "C": 3, "H": 4}

    @property
    def quantities(self):
        return {"x_hat": ("x̂", (2, 3, 4)), "weight": ("γ", (3,))}


def backward_unpacked_in_another_order(saved):
    weight, x_hat = saved  # saved as (x_hat, weight)
    return (x_hat * weight).sum()


def reshaped_under_its_name(x_hat, weight):
    x_hat = x_hat.reshape(2, 12)
    return x_hat * weight


def test_a_variable_holding_another_quantity_is_named_and_nothing_else_is_claimed():
    saved = (torch.ones(2, 3, 4), torch.ones(3))
    message = learner_error(backward_unpacked_in_another_order, saved, case=QuantityCase("q"))
    assert "Your `x_hat` has shape (3,) = (C,), but x̂ is (2, 3, 4) = (N, C, H): that is the shape of γ" in message
    message = learner_error(reshaped_under_its_name, torch.ones(2, 3, 4), torch.ones(3), case=QuantityCase("q"))
    assert "Your `x_hat` has shape" not in message  # a reshaped copy under the name may be meant
    assert core.misnamed_reading({"x_hat": torch.ones(3)}, None) == ""


def test_a_catalogued_mistake_of_another_shape_is_named_before_the_shape():
    lost_axis = expected().sum(-1)  # the chapter knows this one: a sum where a mean over the rows belongs
    assert "the sum, not the mean" in diagnosis(lost_axis.clone(), mistakes=[core.Mistake(lost_axis,
                                                                                          "the sum, not the mean")])
    assert "dtype torch.float64" in diagnosis(expected().double(), mistakes=[core.Mistake(expected(), "never")])


# ----- round 5: Python's conversions of tensors, sizes under another size's name, rows never written -------------
@dataclass(frozen=True)
class BatchCase(core.Case):
    @property
    def sizes(self):
        return {"B": 2, "T": 5, "D": 3}

    @property
    def quantities(self):
        return {"x": ("x (the input)", (2, 5, 3)), "p": ("P (the weights)", (2, 5, 5)),
                "out": ("O (the output)", (2, 5, 3))}


BATCH = BatchCase("a batch")


def truth_of_a_mask(x, mask=None):
    if mask:
        x = x * mask
    return x


def truth_in_a_ternary(x, mask=None):
    return x * mask if mask else x


def truth_of_two_masks(x, a, b):
    return x * (a and b)


def truth_in_builtin_max(x):
    return max(x, torch.zeros_like(x))


def truth_of_a_comparison(x):
    if x > 0:
        return x
    return -x


def truth_in_an_assert(x):
    assert x, "empty"
    return x


def one_number_from_math(x):
    scale = x.sum(-1)  # one per row
    return x / math.sqrt(scale)


def one_number_from_item(x):
    total = x.sum(dim=(1, 2)).item()
    return x / total


def one_number_from_int(x):
    return x * int(x.sum(dim=(1, 2)))


def one_number_elsewhere(x):
    return x * torch.tensor([1.0, 2.0]).__float__()


def index_with_a_batch(x):
    table = [1.0, 2.0, 3.0]
    return x * table[torch.tensor([0, 1])]


def size_from_true_division(x):
    B, T, D = x.shape
    return x.reshape(B, T * D / 3, 3)


def size_from_a_float_variable(x):
    half = x.shape[1] / 2
    return x[:, :half]


def size_float_from_math(x):
    return torch.zeros(math.sqrt(x.shape[1]))


def shape_slice_as_a_number(x):
    return x / math.sqrt(x.shape[-1:])


def shape_as_a_number(x):
    return x / math.sqrt(tuple(x.shape))


def sequence_first_unpack(x):
    T, B, D = x.shape  # seq-first habit
    mask = torch.ones(T, T)
    return x * mask[..., None]


def bmm_on_four_axes(x):
    return torch.bmm(x[None], x[None].transpose(-2, -1))


@pytest.mark.parametrize("fn, args, words", [
    (truth_of_a_mask, (torch.ones(2, 5, 3), torch.ones(2, 5, 3)), ["`if mask` asks Python for one truth value",
                                                                   "`if mask is not None:`", "(2, 5, 3) = (B, T, D)"]),
    (truth_in_a_ternary, (torch.ones(2, 5, 3), torch.ones(2, 5, 3)), ["`if mask is not None:`"]),
    (truth_of_two_masks, (torch.ones(2, 5, 3), torch.ones(3) > 0, torch.ones(3) > 0), ["`and`, `or` and `not`", "&"]),
    (truth_in_builtin_max, (torch.ones(2, 5, 3),), ["torch.maximum"]),
    (truth_of_a_comparison, (torch.ones(2, 5, 3),), ["torch.where", ".any()"]),
    (truth_in_an_assert, (torch.ones(2, 5, 3),), ["`assert x` asks Python for one truth value"]),
    (one_number_from_math, (torch.ones(2, 5, 3),), ["`math.sqrt` takes one Python number", "`scale` holds 10 values",
                                                    "torch.sqrt(...)"]),
    (one_number_from_item, (torch.ones(2, 5, 3),), ["`.item()` reads the one value", "one per item of the batch"]),
    (one_number_from_int, (torch.ones(2, 5, 3),), ["`int(...)` makes one Python number"]),
    (one_number_elsewhere, (torch.ones(2, 5, 3),), ["Python wanted one number"]),
    (index_with_a_batch, (torch.ones(2, 5, 3),), ["a Python list, range or number takes one integer"]),
    (size_from_true_division, (torch.ones(2, 5, 3),), ["/ always gives a float", "//"]),
    (size_from_a_float_variable, (torch.ones(2, 5, 3),), ["`half` is 2.5, a float", "`half = x.shape[1] / 2`",
                                                          "write // (integer division)"]),
    (size_float_from_math, (torch.ones(2, 4, 3),), ["came out a float"]),
    (shape_slice_as_a_number, (torch.ones(2, 5, 3),), ["`x.shape[-1:]` is a torch.Size", "x.shape[-1]"]),
    (shape_as_a_number, (torch.ones(2, 5, 3),), ["`x.shape` is a torch.Size", "x.shape[-1]"]),
    (sequence_first_unpack, (torch.ones(2, 5, 3),), ["Your `T` is 2, which is B here, not T = 5",
                                                     "`T, B, D = x.shape  # seq-first habit`", "T is x.shape[1]"]),
    (bmm_on_four_axes, (torch.ones(2, 5, 3),), ["torch.bmm takes exactly 3-D tensors", "Use @ (torch.matmul)"]),
])
def test_pythons_conversions_of_tensors_are_read_from_the_line(fn, args, words):
    with pytest.raises(LearnerError) as caught:
        EX.call(fn, *args, case=BATCH)
    for word in words:
        assert word in str(caught.value), str(caught.value)


def test_conversion_readings_without_the_lines_values():
    assert core.conversion_reading(ValueError("something else"), "", {}) == ""
    truth = RuntimeError("Boolean value of Tensor with more than one value is ambiguous")
    assert "Python asked a tensor of several values" in core.conversion_reading(truth, "y = f(x)", {})
    assert "the tensor holds several values" in core.conversion_reading(
        ValueError("only one element tensors can be converted to Python scalars"), "y = g(x)", {})
    index = TypeError("only integer tensors of a single element can be converted to an index")
    assert "The index holds several values" in core.conversion_reading(index, "y = t[i]", {})
    assert "came out a float" in core.conversion_reading(TypeError("'float' object cannot be interpreted as an "
                                                                   "integer"), "range(n / 2)", {})


def test_a_size_under_another_sizes_name_is_said_only_when_it_singles_one_out():
    assert core.misnamed_size_reading(RuntimeError("no traceback"), BATCH.sizes) == ""
    assert core.misnamed_size_reading(RuntimeError("no traceback"), {}) == ""
    try:
        sequence_first_unpack(torch.ones(2, 5, 3))
    except RuntimeError as error:
        raised = error
    assert "Your `T` is 2" in core.misnamed_size_reading(raised, {"B": 2, "T": 5, "D": 3})
    assert core.misnamed_size_reading(raised, {"B": 2, "T": 2, "D": 3}) == ""  # T = B: right by its own name
    assert core.misnamed_size_reading(raised, {"B": 7, "T": 9, "D": 3}) == ""  # 2 and 5 are no sizes of the case


def test_a_result_of_another_quantitys_shape_is_named():
    message = diagnosis(torch.ones(2, 5, 5), torch.ones(2, 5, 3))
    assert "That is the shape" not in message  # the toy case has no quantities
    with pytest.raises(CheckFailure) as caught:
        EX.compare(torch.ones(2, 5, 5), torch.ones(2, 5, 3), case=BATCH, equation="eq. (9.1)", name="output")
    assert "That is the shape of P (the weights): did you return P instead of your output, or compute it from " \
        "that tensor?" in str(caught.value)  # x and O share the expected shape: the output is said by its name
    assert core.quantity_shape_reading((2, 5, 3), (2, 5, 3), BATCH.quantities) == ""
    assert core.quantity_shape_reading((7,), (2, 5, 3), BATCH.quantities) == ""
    several = {"p": ("P", (2, 5, 5)), "s": ("S", (2, 5, 5)), "o": ("O", (2, 5, 3))}
    assert "did you return P or S instead of O, or compute it from one of them" in \
        core.quantity_shape_reading((2, 5, 5), (2, 5, 3), several)


def test_real_and_imaginary_pairs_are_named():
    message = diagnosis(torch.ones(3, 4, 2))
    assert "torch.view_as_real" in message and ".real" in message
    assert "view_as_real" not in diagnosis(torch.ones(3, 4, 3))


@pytest.mark.parametrize("zeroed, words", [
    ((slice(2, 3),), ["the last row (of the 3 along axis 0) is exactly 0", "range(n - 1)"]),
    ((slice(0, 1),), ["the first row (of the 3 along axis 0)", "range(1, n)"]),
])
def test_rows_never_written_are_named_with_the_loop_bound(zeroed, words):
    got = expected().clone()
    got[zeroed] = 0
    message = diagnosis(got)
    for word in words:
        assert word in message, message


def test_rows_never_written_need_whole_rows_of_exact_zeros():
    got = expected().clone()
    got[2, 1:] = 0  # one entry of the row is right: it was written
    assert "never written" not in diagnosis(got.clone())
    got = expected().clone()
    got[2] = 0.5
    assert "never written" not in diagnosis(got)
    batch = torch.arange(1.0, 25.0).reshape(2, 3, 4)
    got = batch.clone()
    got[1, 2] = 0  # the last of the 6 rows of the (2, 3) leading axes
    assert "the last row (of the 6 along (axis 0, axis 1) flattened)" in diagnosis(got, batch)
    got = batch.clone()
    got[1] = 0
    assert "the last slice (of the 2 along axis 0)" in diagnosis(got, batch)
    assert core.untouched_slice(torch.zeros(3), torch.ones(3), atol=1e-5, rtol=1e-4) is None  # single entries
    assert core.untouched_slice(batch, batch, atol=1e-5, rtol=1e-4) is None
    assert core.untouched_slice(torch.zeros(2, 2, dtype=torch.complex64), torch.ones(2, 2, dtype=torch.complex64),
                                atol=1e-5, rtol=1e-4) is None


def test_a_reduction_that_lost_its_axis_is_named_in_the_line():
    assert "the sum `sum(dim=-1)`" in core.reduction_without_keepdim("return e / e.sum(dim=-1)")
    assert "the maximum `torch.amax(s, -1)`" in core.reduction_without_keepdim("m = s - torch.amax(s, -1)")
    assert core.reduction_without_keepdim("return e / e.sum(dim=-1, keepdim=True)") == ""
    assert core.reduction_without_keepdim("return e / e.sum()") == ""
    message = learner_message(normalised_without_keepdim, torch.ones(3, 4))
    assert "each row's own sum no longer sits beside its row" in message and "sum(-1, keepdim=True)" in message


def normalised_without_keepdim(x):
    return x / x.sum(-1)


def scaled_in_the_loop(q, k, n=3):
    total = 0
    for _ in range(n):
        q = q * 2
        k += 1
        total = total + q  # not an argument
    while n > 0:
        n -= 1
        k = q  # from another name: not compounding
    return total


def test_an_argument_reassigned_from_itself_in_a_loop_is_found():
    assert core.reassigned_in_loop(scaled_in_the_loop) == [("q", "q = q * 2"), ("k", "k += 1"), ("n", "n -= 1")]
    assert core.reassigned_in_loop(expected) == []
    assert core.reassigned_in_loop(len) == []  # no source
    assert core.reassigned_in_loop(lambda q: [q * 2 for _ in range(3)]) == []  # no function definition
