"""Exercises 9.2 and 9.3: counting (eqs. (9.5), (9.6)).

The learner's counts are numbers, so the checks evaluate them on many sizes and *fit* them: the parameter count as
a combination of C_in·C_out, C_out, C_in, … (with and without bias), the FLOPs as a combination of C_in·C_out·H·W,
C_in·C_out, the bias additions, …; the recovered coefficients say what was counted instead. The receptive field is
compared with the classic wrong forms of eq. (9.6) on stacks chosen so that each form gives a different answer."""
from __future__ import annotations

import torch

from utils.checks.core import CheckFailure, Fit, fit_linear, one_thread
from utils.checks.minimalist.cases import EX_COST, EX_FIELD, integer_value

# (c_in, c_out, height, width, bias): sizes that separate every term (distinct primes, ones, non-square)
COST_CASES = [(3, 5, 7, 11, True), (3, 5, 7, 11, False), (2, 7, 4, 6, True), (1, 10, 1, 1, True),
              (16, 8, 8, 8, False), (13, 2, 28, 28, True), (5, 3, 2, 9, False), (7, 1, 3, 5, True),
              (4, 9, 5, 1, True), (11, 6, 1, 4, False), (6, 4, 10, 3, True), (2, 2, 13, 7, False)]
COST_EQUATION = "eq. (9.5): P = C_in·C_out + C_out·[bias], F = 2·C_in·C_out·H·W"


def _terms(c_in, c_out, height, width, bias):
    b = 1.0 if bias else 0.0
    return {"C_in·C_out": c_in * c_out, "C_out·[bias]": c_out * b, "C_in·[bias]": c_in * b, "[bias]": b,
            "C_out": c_out,
            "C_in": c_in, "1": 1.0, "C_in·C_out·H·W": c_in * c_out * height * width,
            "C_out·H·W·[bias]": c_out * height * width * b, "C_out·H·W": c_out * height * width,
            "C_in·C_out·H": c_in * c_out * height, "C_in·C_out·W": c_in * c_out * width,
            "C_out·H·W·[bias]·2": 2 * c_out * height * width * b,
            "C_in·C_out·(H + W)": c_in * c_out * (height + width)}


def _fit(values: list[int], names: list[str]) -> Fit:
    got = torch.tensor(values, dtype=torch.float64)
    basis = {name: torch.tensor([_terms(*case)[name] for case in COST_CASES], dtype=torch.float64)
             for name in names}
    return fit_linear(got, basis)


def _read(fit: Fit) -> dict[str, float]:
    return {name: round(value, 3) for name, value in fit.coefficients.items() if abs(value) > 1e-6}


PARAMETER_TERMS = ["C_in·C_out", "C_out·[bias]", "C_in·[bias]", "[bias]", "C_out", "C_in", "1", "C_in·C_out·H·W"]
FLOP_TERMS = ["C_in·C_out·H·W", "C_in·C_out", "C_out·H·W·[bias]", "C_out·H·W", "C_in·C_out·H", "C_in·C_out·W", "1"]


def parameter_reading(values: list[int]) -> str:
    right = [c_in * c_out + (c_out if bias else 0) for c_in, c_out, _, _, bias in COST_CASES]
    if all(v == r * height * width for v, r, (_, _, height, width, _) in zip(values, right, COST_CASES)):
        return (f"your count is the right one times H·W, so it grows with the image: the weights and the bias are "
                f"shared by every pixel (eq. (9.1)), so the parameters do not depend on H or W ({COST_EQUATION}).")
    fit = _fit(values, PARAMETER_TERMS)
    said = []
    if fit.exact:
        found = _read(fit)
        weights = found.pop("C_in·C_out", 0.0)
        if found.pop("C_in·C_out·H·W", 0.0):
            said.append("your count grows with the image (a C_in·C_out·H·W term): the weights are shared by every "
                        "pixel (eq. (9.1)), so the parameters do not depend on H or W")
        if weights == 2:
            said.append("you count the weight matrix twice (2·C_in·C_out)")
        elif weights == 0.5:
            said.append("you count half the weight matrix")
        elif weights != 1 and not said:
            said.append(f"your weight term is {weights:g}·C_in·C_out; a 1×1 convolution has C_in·C_out weights")
        bias_in, bias_out, always = found.pop("C_in·[bias]", 0.0), found.pop("C_out·[bias]", 0.0), \
            found.pop("C_out", 0.0)
        if bias_in == 1 and bias_out == 0 and always == 0:
            said.append("your bias has C_in entries; it has one per OUTPUT channel, C_out")
        elif always == 1 and bias_out == -1 and bias_in == 0:
            said.append("you count the bias when bias=False and leave it out when bias=True: the condition is "
                        "inverted")
        elif always == 1 and bias_out == 0:
            said.append("you count the bias even when bias=False")
        elif always == 0 and bias_out == 0 and bias_in == 0 and weights == 1 and not found.get("[bias]"):
            said.append("you leave out the bias: with bias=True it adds C_out parameters, one per output channel")
        elif bias_out not in (0, 1) or always not in (0, 1):
            said.append(f"your bias term is {bias_out + always:g}·C_out; the bias has C_out entries")
        if found.get("[bias]") == 1 and bias_out == 0:
            said.append("you count the bias as 1 parameter; it has one entry per output channel, C_out")
        elif found.get("[bias]"):
            said.append(f"you add {found['[bias]']:g} when bias=True; the bias has C_out entries")
        if found.get("C_in"):
            said.append(f"you add {found['C_in']:g}·C_in, which no parameter of a 1×1 convolution has")
        if found.get("1"):
            said.append(f"you add a constant {found['1']:g}")
        if said:
            return "; ".join(said) + f" ({COST_EQUATION})."
    return ""


def flop_reading(values: list[int]) -> str:
    fit = _fit(values, FLOP_TERMS)
    if not fit.exact:
        return ""
    found = _read(fit)
    said = []
    main = found.pop("C_in·C_out·H·W", 0.0)
    if main == 1:
        said.append("you count multiply-accumulates (MACs), C_in·C_out·H·W; each MAC is 2 FLOPs, a multiply and "
                    "an add, as torch's FlopCounterMode counts them")
    elif main == 4:
        said.append("you count 4 FLOPs per multiply-accumulate (2·MACs, doubled again)")
    elif main not in (0, 2):
        said.append(f"your count is {main:g}·C_in·C_out·H·W; it should be 2·C_in·C_out·H·W")
    for term, what in (("C_in·C_out", "without the spatial size: every one of the H·W pixels does the work"),
                       ("C_in·C_out·H", "with only the height H: every one of the H·W pixels does the work"),
                       ("C_in·C_out·W", "with only the width W: every one of the H·W pixels does the work")):
        coefficient = found.pop(term, 0.0)
        if coefficient:
            said.append(f"you count {coefficient:g}·{term}, {what}"
                        + ("" if coefficient == 2 else " (and 2 FLOPs per multiply-accumulate)"))
    with_bias, always = found.pop("C_out·H·W·[bias]", 0.0), found.pop("C_out·H·W", 0.0)
    bias_adds = with_bias + always
    if always == -1 and with_bias == 1:
        said.append("you count 2·C_in − 1 FLOPs per output without a bias and 2·C_in with one (an exact count of "
                    "the additions); the convention, FlopCounterMode's, is 2 FLOPs per multiply-accumulate, bias or "
                    "not")
    elif bias_adds == 2:
        said.append("you count 2·C_out·H·W more with a bias: the bias taken as one more input channel, "
                    "2·(C_in + 1)·C_out·H·W; our convention, FlopCounterMode's, counts only the 2 FLOPs of each "
                    "multiply-accumulate of the weights, bias or not")
    elif bias_adds == 1:
        said.append("you count the bias additions (C_out·H·W): our convention, FlopCounterMode's, counts only the "
                    "2 FLOPs of each multiply-accumulate")
    elif bias_adds == -1:
        said.append("you subtract C_out·H·W (an exact count of the additions without a bias); the convention is "
                    "2 FLOPs per multiply-accumulate, bias or not")
    if found.get("1"):
        said.append(f"you add a constant {found['1']:g}")
    return "; ".join(said) + f" ({COST_EQUATION})." if said else ""


@one_thread
def check_pointwise_cost(pointwise_cost) -> None:
    """Exercise 9.2: (parameters, FLOPs) on twelve sizes, with and without bias; wrong counts read by a fit."""
    got_parameters, got_flops = [], []
    for c_in, c_out, height, width, bias in COST_CASES:
        label = f"c_in={c_in}, c_out={c_out}, {height}×{width}, bias={bias}"
        result = EX_COST.call(pointwise_cost, c_in, c_out, height, width, bias=bias, case=label)
        if not isinstance(result, (tuple, list)) or len(result) != 2:
            shown = type(result).__name__ + (f" of length {len(result)}" if isinstance(result, (tuple, list)) else "")
            raise EX_COST.fail(f"returned a {shown}: return the pair (parameters, flops), e.g. "
                               f"`return parameters, flops`.", case=label)
        numbers = [integer_value(value) for value in result]
        for name, value, number in zip(("parameters", "flops"), result, numbers):
            if number is None:
                raise EX_COST.fail(f"your {name} is {value!r} ({type(value).__name__}), not a whole number: counts are "
                                   f"integers (use int arithmetic: 2 * c_in * c_out * height * width).", case=label)
        got_parameters.append(numbers[0])
        got_flops.append(numbers[1])
    want_parameters = [c_in * c_out + (c_out if bias else 0) for c_in, c_out, _, _, bias in COST_CASES]
    want_flops = [2 * c_in * c_out * height * width for c_in, c_out, height, width, _ in COST_CASES]
    if got_parameters == want_flops and got_flops == want_parameters:
        raise EX_COST.fail("your pair is (flops, parameters): return (parameters, flops), in that order.")
    for name, got, want, read in (("parameters", got_parameters, want_parameters, parameter_reading),
                                  ("flops", got_flops, want_flops, flop_reading)):
        if got != want:
            first = next(n for n, (g, w) in enumerate(zip(got, want)) if g != w)
            c_in, c_out, height, width, bias = COST_CASES[first]
            label = f"c_in={c_in}, c_out={c_out}, {height}×{width}, bias={bias}"
            reading = read(got)
            raise CheckFailure(f"Exercise 9.2 ({label}), your {name}: you return {got[first]:,}, expected "
                               f"{want[first]:,}. " + (reading or f"Compare your count with {COST_EQUATION}, "
                                                                   f"term by term."))
    EX_COST.passed(f"{len(COST_CASES)} sizes, with and without bias: P = C_in·C_out + C_out·[bias] and "
                   f"F = 2·C_in·C_out·H·W, eq. (9.5).")


# ============================================================================================== 9.3
FIELD_CASES = [[], [(1, 1)], [(3, 1)], [(2, 2)], [(3, 2)], [(2, 2), (2, 2)], [(3, 1), (3, 1)],
               [(4, 4), (2, 2), (2, 2), (2, 2)], [(3, 1), (1, 1), (2, 2), (3, 1)], [(3, 2), (3, 2), (3, 1)],
               [(1, 2), (3, 1)], [(5, 1), (2, 2), (1, 1)], [(2, 2), (3, 1), (3, 3), (1, 1)]]
FIELD_EQUATION = "eq. (9.6): r = 1 + Σ_l (k_l − 1) Π_{m<l} s_m"


def _field(layers, *, include_own=False, use_stride=True, plus_one=True, minus_one=True, swap=False,
           jump_by_kernel=False) -> int:
    side, jump = 1 if plus_one else 0, 1
    for kernel, stride in layers:
        if swap:
            kernel, stride = stride, kernel
        if include_own:
            jump *= stride if not jump_by_kernel else kernel
        side += (kernel - (1 if minus_one else 0)) * (jump if use_stride else 1)
        if not include_own:
            jump *= stride if not jump_by_kernel else kernel
    return side


WRONG_FIELDS = [
    (lambda ls: _field(ls, include_own=True),
     "each layer's growth is multiplied by its OWN stride too: the product runs over the layers before it only, "
     "Π_{m<l} s_m — add (k − 1)·jump first, then jump *= stride"),
    (lambda ls: _field(ls, use_stride=False),
     "you ignore the strides: after a stride-s layer, one step of the next layer spans s input pixels, so its "
     "(k − 1) counts s times (the product Π_{m<l} s_m)"),
    (lambda ls: _field(ls, minus_one=False),
     "each layer adds k_l − 1 steps, not k_l: a 1×1 layer adds nothing"),
    (lambda ls: _field(ls, plus_one=False),
     "the side starts at 1 (one output pixel sees itself), not 0: r = 1 + Σ …"),
    (lambda ls: _field(ls, swap=True),
     "you read each pair as (stride, kernel); the layers are given as (kernel, stride)"),
    (lambda ls: _field(ls, jump_by_kernel=True),
     "your answer is the product of the kernel sizes — what eq. (9.6) gives when the jump multiplies by each "
     "layer's kernel: the jump multiplies by its stride (Π s_m), and each layer widens the window by (k_l − 1) "
     "such steps"),
    (lambda ls: _field(ls, include_own=True, minus_one=False, plus_one=False),
     "you multiply the kernels and strides through (k_l · Π s_m summed); the growth is (k_l − 1)·Π_{m<l} s_m, "
     "starting from 1"),
    (lambda ls: sum(k for k, _ in ls),
     "you add the kernel sizes; each layer adds k_l − 1 steps of Π_{m<l} s_m input pixels, starting from 1"),
]


@one_thread
def check_receptive_field(receptive_field) -> None:
    """Exercise 9.3: the side of eq. (9.6) on 13 stacks (empty, 1×1, shifts, space-to-depth, mixed)."""
    got_all = []
    for layers in FIELD_CASES:
        label = f"layers={layers}"
        got = EX_FIELD.call(receptive_field, [tuple(layer) for layer in layers], case=label)
        number = integer_value(got)
        if number is None:
            raise EX_FIELD.fail(f"returned {got!r} ({type(got).__name__}): return the side as an integer.",
                                case=label)
        if isinstance(got, float) or (isinstance(got, torch.Tensor) and got.is_floating_point()):
            raise EX_FIELD.fail(f"returned {got!r}, a {type(got).__name__}: the side is a count of pixels, so return "
                                "an int (np.prod of an empty list of strides is the float 1.0, and a float jump "
                                "makes the whole side a float: start the product from the int 1, or use math.prod).",
                                case=label)
        got_all.append(number)
    want = [_field(layers) for layers in FIELD_CASES]
    if got_all == want:
        EX_FIELD.passed(f"{len(FIELD_CASES)} stacks (empty, 1×1, shifts, strides, space-to-depth): "
                        f"r = 1 + Σ (k_l − 1) Π_{{m<l}} s_m, eq. (9.6).")
        return
    first = next(n for n, (g, w) in enumerate(zip(got_all, want)) if g != w)
    where = f"layers={FIELD_CASES[first]}"
    message = f"you return {got_all[first]}, expected {want[first]}. "
    for form, reading in WRONG_FIELDS:
        if all(form(layers) == got for layers, got in zip(FIELD_CASES, got_all)):
            raise EX_FIELD.fail(message + reading + f" ({FIELD_EQUATION}).", case=where)
    singles = [n for n, layers in enumerate(FIELD_CASES) if len(layers) <= 1]
    if all(got_all[n] == want[n] for n in singles):
        raise EX_FIELD.fail(message + "Your single layers are right, so the error is in how layers combine: a layer "
                            "after strides s_1…s_{l−1} widens the window by (k_l − 1)·s_1·…·s_{l−1} pixels "
                            f"({FIELD_EQUATION}).", case=where)
    raise EX_FIELD.fail(message + f"Compare your code with {FIELD_EQUATION}; a k×k kernel alone sees k pixels.",
                        case=where)
