"""The core readings of round 7 (:func:`utils.checks.conversions.call_reading` and the empty slice), on toy answers
of every chapter's kind, and the paths where they must stay silent or fall back to the general reading."""
import math

import pytest
import torch
import torch.nn as nn

from utils.checks import LearnerError
from utils.checks.conversions import call_reading
from utils.checks.core import Case, Exercise

EX = Exercise("9.9", "answer")
CASE = Case("a toy case")
X = torch.linspace(-2, 3, 24).reshape(4, 6)


def _message(fn, *args) -> str:
    with pytest.raises(LearnerError) as caught:
        EX.call(fn, *args, case=CASE)
    return str(caught.value)


def _error(fn) -> BaseException:
    try:
        fn()
    except Exception as error:  # noqa: BLE001
        return error
    raise AssertionError("no error")


def size_called(x):
    n = x.size(-1)
    return x / n.real()  # an int's .real is an attribute


def eps_saved(x):
    class Scaled(torch.autograd.Function):
        @staticmethod
        def forward(ctx, t):
            ctx.save_for_backward(t, 1e-5)
            return t * 2

        @staticmethod
        def backward(ctx, g):
            return g * 2
    return Scaled.apply(x.requires_grad_())


def two_dtypes(x):
    gram = x.double().T
    return x @ gram


def weight_not_transposed(x):
    layer = nn.Linear(6, 3)
    return x @ layer.weight


def square_weight(x):
    layer = nn.Linear(6, 6)
    return x.T @ layer.weight  # (6, 4) @ (6, 6): not the layer's weight that is wrong


def empty_between(x):
    parts = []
    for start in range(0, 6, 2):
        parts.append(x[:, start:2].amax(-1))
    return torch.stack(parts)


def test_an_attribute_called_is_named():
    assert "`n.real` is a number, not a function" in _message(size_called, X)


def test_a_number_saved_for_backward_is_named_from_the_source():
    message = _message(eps_saved, X.clone())
    assert "`1e-05` is a float" in message or "`1e-5` is a float" in message
    assert "ctx." in message


def test_two_dtypes_in_one_call_name_both():
    message = _message(two_dtypes, X)
    assert "`x` is float32" in message and "`gram` is float64" in message


def test_an_nn_linear_weight_is_said_stored_out_in():
    message = _message(weight_not_transposed, X)
    assert "(out_features, in_features)" in message and "layer(x)" in message


def test_a_square_weight_is_not_read_as_a_linear_weight():
    assert "out_features" not in _message(square_weight, X)


def test_a_slice_end_written_as_a_length_is_named():
    message = _message(empty_between, X)
    assert "`[start:2]` is empty" in message and "not a length" in message


def test_readings_stay_silent_without_evidence():
    assert call_reading(_error(lambda: (1, 2)()), "", {}).startswith(" A tuple is called like a function")
    wrong = _error(lambda: torch.finfo(torch.ones(1)))
    assert "takes a torch.dtype, and a Tensor" in call_reading(wrong, "", {})
    complex_mix = _error(lambda: torch.ones(2, 2, dtype=torch.complex64) @ torch.ones(2, 2))
    assert call_reading(complex_mix, "a @ b", {"a": torch.ones(1, dtype=torch.complex64)}) == ""
    assert call_reading(_error(lambda: torch.ones(2, 3) @ torch.ones(2, 3)), "a.mm(b)", {}) == ""
    assert call_reading(ValueError("nothing of the kind"), "x", {}) == ""
    assert math.isfinite(1.0)
