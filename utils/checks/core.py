"""What every chapter's checks share: the exercise, its cases, calling the learner's code, and diagnosis.

A chapter's check module holds what is specific to it (references, cases, probes, classic mistakes). This module
holds the machinery, so that a check reads as a list of *properties the right answer must have*:

    EX = Exercise("1.1", "attention_weights")
    for case in CASES:                                      # Case objects with explicit fields
        got = EX.call(attention_weights, q, k, mask, case=case)
        EX.compare(got, expected, case=case, equation="eq. (1.1)",
                   probes=[rows_sum_to_one, ...],            # each returns a message or None
                   mistakes=[Mistake(...), ...])            # classic mistakes, optional
    EX.passed("7 cases match softmax(QKᵀ/√d_k) ...")

:meth:`Exercise.compare` goes from the cheapest, surest diagnosis to the vaguest: type, shape (transposed? a
lost ``keepdim``?), dtype, then a match; then the classic mistakes (exact matches), NaN/inf, the chapter's
property probes, float32 precision on float64 input, a constant factor named from the chapter's constants,
where the difference is concentrated, and last the equation to compare with. The tools that probes are built
from — least-squares recovery of a formula's coefficients (:func:`fit_linear`), a softmax's temperature
(:func:`fit_temperature`), naming a number (:func:`name_value`) — are here too.
"""
from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import itertools
import linecache
import math
import re
import textwrap
import traceback
import zlib
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

import torch

from utils import conventions
from utils.checks.conversions import argument_reading, conversion_reading, misnamed_size_reading
from utils.checks.operands import (
    LIBRARY_FILE,
    Operation,
    axis_names,
    failing_operation,
    line_values,
    read_operation,
    show_shape,
    tuple_text,
)
from utils.checks.origins import holds_nonfinite, module_state, origin_reading, trace_nonfinite


class CheckFailure(AssertionError):
    """A check found a mistake in the learner's code; the message says which and what to try."""


class LearnerError(RuntimeError):
    """The learner's code raised an exception inside a check (its traceback is chained above this one)."""


def seeded_randn(*shape, seed: int, dtype=torch.float32) -> torch.Tensor:
    """Standard normal numbers that depend only on ``seed``, not on the global generator the learner's code uses."""
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


# ---------------------------------------------------------------------------------------------- cases
def tolerance(dtype: torch.dtype) -> tuple[float, float]:
    """(atol, rtol) for a comparison in ``dtype``: tight enough that float32 arithmetic fails a float64 case."""
    if dtype == torch.float64:  # a float64 computation is right to ~1e-14; one float32 rounding is off by ~6e-8
        return 1e-11, 1e-10
    if dtype in (torch.float16, torch.bfloat16):
        return 1e-2, 1e-2
    return 1e-5, 1e-4


@dataclass(frozen=True)
class Case:
    """One seeded input configuration. Chapters subclass it with explicit fields (shapes, masks, eps, …)."""

    label: str  # what the learner reads: "cross-attention, Tq=4, Tk=7, d_k=16"
    dtype: torch.dtype = torch.float32

    @property
    def tolerance(self) -> tuple[float, float]:
        return tolerance(self.dtype)

    @property
    def sizes(self) -> dict[str, int]:
        """The case's axis sizes by name (``{"Tq": 5, "Tk": 7, "d_k": 8}``): a shape error in the learner's code
        is then read with the names ("8 (= d_k) entries and the other 6 (= d_v)"). Subclasses override it."""
        return {}

    def explain(self, error: BaseException, line: str) -> str | None:
        """The chapter's own reading of an exception the learner's code raised at ``line`` (their source line),
        said in the exercise's terms ("dP = dO Vᵀ is (Tq, Tk)"); it replaces the generic reading. None: no
        reading of its own. Subclasses override it."""
        return None

    @property
    def none_means(self) -> dict[str, tuple[str, str]]:
        """What each option of the case means when it is None, and the code that handles it ("momentum": ("a
        cumulative average, α = 1/num_batches_tracked", "α = … if self.momentum is None else …")): a learner's
        error that computes with None is read with it. Subclasses override it."""
        return {}

    @property
    def none_options(self) -> list[str]:
        """The case's options (its fields) that are None: momentum=None, eps=None, mask=None."""
        return [f.name for f in dataclasses.fields(self) if f.name not in ("label", "dtype")
                and getattr(self, f.name) is None]

    @property
    def quantities(self) -> dict[str, tuple[str, tuple[int, ...]]]:
        """The exercise's quantities by the names a learner's code gives them, with their symbol and shape
        ("x_hat": ("x̂", (N, C, H, W))): a variable of the failing line whose shape is not its name's is named.
        Subclasses override it."""
        return {}

    @property
    def size_sources(self) -> dict[str, str]:
        """Where the learner's code gets each named size that does not come from the input's shape ("G":
        "self.num_groups"), to say where a hard-coded number should come from. Subclasses override it."""
        return {}

    @property
    def nonfinite_causes(self) -> str | None:
        """What makes NaN or inf in this exercise, said in its terms ("the square root of a negative variance");
        None: the generic causes. Subclasses override it."""
        return None


def one_thread(check: Callable) -> Callable:
    """Run a check with one intra-op thread, restoring the learner's setting afterwards. A check's tensors are tiny,
    and on a loaded machine waking a second thread costs each small op milliseconds: a failing diagnosis that tries
    thousands of candidates goes from 0.2 s to 5 s."""
    @functools.wraps(check)
    def run(*args, **kwargs):
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return check(*args, **kwargs)
        finally:
            torch.set_num_threads(threads)
    return run


# ---------------------------------------------------------------------------------------------- exercises
@dataclass(frozen=True)
class Exercise:
    """One exercise's check: its id, the learner's object's name, seeds, messages and the success line."""

    id: str  # "1.4"
    name: str  # the learner's object, as the prompt names it: "MultiHeadSelfAttention"

    # ---- seeds: derived from the exercise id, so no two exercises share inputs and nobody allocates bands
    def seed(self, *keys) -> int:
        return zlib.crc32(f"{self.id}/{'/'.join(map(str, keys))}".encode())

    def randn(self, *shape, key, dtype=torch.float32) -> torch.Tensor:
        """``seeded_randn`` with a seed derived from this exercise and ``key`` (e.g. ``(case.label, "q")``)."""
        return seeded_randn(*shape, seed=self.seed(*(key if isinstance(key, tuple) else (key,))), dtype=dtype)

    # ---- messages
    def where(self, case: Case | str | None = None, name: str | None = None) -> str:
        label = case.label if isinstance(case, Case) else case
        text = f"Exercise {self.id}" + (f" ({label})" if label else "")
        return text + (f", your {name}" if name else "")

    def fail(self, message: str, *, case: Case | str | None = None, name: str | None = None) -> CheckFailure:
        """The exception to raise: ``raise EX.fail("...", case=case, name="weights")``."""
        return CheckFailure(f"{self.where(case, name)}: {message}")

    def passed(self, summary: str) -> None:
        """The one line a check prints on success."""
        print(conventions.success_line(self.id, summary))

    # ---- running the learner's code
    def call(self, fn: Callable, *args, what: str | None = None, case: Case | str | None = None, **kwargs):
        """``fn(*args, **kwargs)``; an exception it raises is reported as the learner's (see :func:`call`)."""
        return call(fn, *args, exercise=self.id, what=what or self.name, case=case, **kwargs)

    # ---- comparing
    def compare(self, got, expected: torch.Tensor, *, case: Case, equation: str, name: str = "output",
                probes: Iterable[Callable[[torch.Tensor], str | None]] = (),
                mistakes: Iterable[Mistake | None] = (), factors: dict[str, float] | None = None,
                axes: Sequence[str] | None = None, atol: float | None = None, rtol: float | None = None,
                otherwise: str = "") -> None:
        """Raise :class:`CheckFailure` unless ``got`` matches ``expected``; the message says what to change.

        ``probes`` test properties of the right answer, in order, on ``got`` (after type, shape, dtype, the classic
        ``mistakes`` and NaN); the first that returns a message wins. ``factors`` names the constants of the chapter's
        equations (``{"√d_k": 2.83, "d_k": 8.0}``) so a constant factor is named. ``axes`` names the axes of
        ``expected`` (``("B", "H", "Tq", "Tk")``) for saying where the difference sits. ``equation`` is what
        to compare with when nothing narrower could be said.
        """
        default_atol, default_rtol = tolerance(expected.dtype)
        atol, rtol = atol or default_atol, rtol or default_rtol
        where = self.where(case, name)
        if isinstance(got, torch.Tensor) and got.shape == expected.shape and got.dtype == expected.dtype and \
                torch.allclose(got.detach(), expected.detach(), atol=atol, rtol=rtol):
            return
        # exact matches first, the chapter's own (a classic mistake, whatever its shape), then the right numbers in
        # the wrong place: each is named from an exact match, so nothing vaguer wins
        for mistake in filter(None, mistakes):  # a None entry is a mistake that cannot happen for this case
            wrong = mistake.output.detach()
            if isinstance(got, torch.Tensor) and wrong.shape == got.shape and wrong.dtype == got.dtype and \
                    torch.allclose(got.detach(), wrong, atol=atol, rtol=rtol, equal_nan=True):
                raise CheckFailure(f"{where}: {mistake.hint}")
        misplaced = one_of_several(got, expected, name, atol=atol, rtol=rtol) or \
            layout_problem(got, expected, case.sizes, axes, atol=atol, rtol=rtol)
        if misplaced:
            raise CheckFailure(f"{where}: {misplaced}")
        problem = structure_problem(got, expected, case.sizes, case.quantities, name)
        if problem:
            raise CheckFailure(f"{where}: {problem}")
        got, expected = got.detach(), expected.detach()
        if not torch.isfinite(got).all() and torch.isfinite(expected).all():
            origin = nonfinite_origin(self.id, case, "NaN" if torch.isnan(got).any() else "inf")
            raise CheckFailure(f"{where}: {nonfinite_problem(got, axes, origin or case.nonfinite_causes)}")
        untouched = untouched_slice(got, expected, axes, atol=atol, rtol=rtol)  # exact evidence: before the probes
        if untouched:
            raise CheckFailure(f"{where}: {untouched}")
        for probe in probes:
            message = probe(got)
            if message:
                raise CheckFailure(f"{where}: {message}")
        if expected.dtype == torch.float64 and torch.allclose(got, expected, atol=1e-5, rtol=1e-4):
            raise CheckFailure(f"{where}: right only to float32 precision (max difference "
                               f"{(got - expected).abs().max().item():.2g}) on a float64 input: somewhere you "
                               f"compute in float32 (.float(), torch.float32, a float32 constant tensor). Keep "
                               f"every step in the input's dtype.")
        factor = constant_factor(got, expected)
        if factor is not None:
            raise CheckFailure(f"{where}: {factor_message(factor, factors or {})} Compare with {equation}.")
        located = locate_difference(got, expected, axes, atol=atol, rtol=rtol)
        message = f"{where}: {located} " if located else f"{where}: "
        worst = (got - expected).abs().flatten().argmax()
        index = unravel(int(worst), got.shape)
        message += (f"Compare your code with {equation} term by term{': ' + otherwise if otherwise else '.'} "
                    f"(largest difference at index {index}: you have {got.flatten()[worst].item():.6g}, "
                    f"expected {expected.flatten()[worst].item():.6g}.)")
        raise CheckFailure(message)


# ---------------------------------------------------------------------------------------------- calling
_NOT_LEARNER = LIBRARY_FILE  # frames from these files are the course's or a library's, not the learner's


def call(fn: Callable, *args, exercise: str, what: str, case=None, **kwargs):
    """Call the learner's ``fn``; an exception it raises is reported as theirs, not the check's.

    The message names the exception, reads it (a broadcast, a matmul, an einops pattern, an index past the end,
    mixed dtypes, in-place autograd errors, …) and quotes the line of *their* code that raised it. A shape error
    is read from the whole shapes of the operation that raised, found by running the call once more on copies
    (:mod:`utils.checks.operands`): only a failing call pays for it.
    ``NotImplementedError`` (an untouched stub) passes through unchanged, so a learner sees the stub's own
    message, "Exercise 1.3: write the body of ...".
    """
    label = case.label if isinstance(case, Case) else case
    where = f"Exercise {exercise}" + (f" ({label})" if label else "")
    before = _snapshot(args, kwargs)
    state = module_state(fn)
    try:
        result = fn(*args, **kwargs)
    except NotImplementedError:
        raise
    except Exception as error:  # noqa: BLE001 - any error in the learner's code is reported as theirs
        text = " ".join(str(error).split()).rstrip(".")
        sizes = case.sizes if isinstance(case, Case) else None
        frame = _learner_frame(error)
        line = (frame.line or linecache.getline(frame.filename, frame.lineno)).strip() if frame else ""
        values = line_values(error, line)  # what the names of that line held when it raised
        operation = failing_operation(fn, args, kwargs, error)  # a shape error's operands: a second run
        hint = exception_hint(error, sizes, operation, line=line, values=values,
                              case=case if isinstance(case, Case) else None)
        conversion = conversion_reading(error, line, values, sizes)  # Python's own: if mask:, math.sqrt(t), C / G
        conversion = conversion or argument_reading(error, line, values, sizes, fn)  # x.sqrt * y, dim=<a size>, …
        if conversion:
            hint = conversion
        elif isinstance(case, Case):
            own = case.explain(error, line)
            hint = f"{value_reading(error, values, case)} {own}" if own else hint
        hint = misnamed_size_reading(error, sizes) + hint  # T = x.shape[0] where x is (B, T, D): said first
        raise LearnerError(f"{where}: your {what} raised {type(error).__name__}: {text}."
                           f"{learner_line(error)}{hint} The traceback above ends at the line "
                           f"in your code.") from error
    changed = [name for name, tensor, copy in before if not _same(tensor, copy)]
    if changed:
        raise CheckFailure(f"{where}: your {what} changed its input {', '.join(changed)} in place (an in-place "
                           f"operation such as *=, +=, [...] = or .add_ on an argument). The caller's tensors must "
                           f"stay as they were: compute into new tensors (y = p * g, not p *= g), or clone first.")
    if holds_nonfinite(result, fn, state):  # then only: a second run finds its first NaN/inf
        _BIRTHS[(exercise, label)] = trace_nonfinite(fn, args, kwargs, state)
    return result


_BIRTHS: dict[tuple[str, str | None], list] = {}  # (exercise, case label) -> the latest NaN/inf-making call's births


def nonfinite_origin(exercise: str, case: Case | str | None, kind: str = "NaN",
                     quantities: dict | None = None, *, generic: bool = True) -> str | None:
    """The first operation of the learner's code that made NaN (``kind``) or inf in the latest call of ``exercise``
    on ``case`` that returned NaN/inf (see :mod:`utils.checks.origins`), said with its operands; None if unknown.
    A chapter's own NaN message should give way to it."""
    label = case.label if isinstance(case, Case) else case
    if quantities is None and isinstance(case, Case):
        quantities = case.quantities
    births = _BIRTHS.get((exercise, label))
    return origin_reading(births, kind, quantities, generic=generic) if births else None


def _snapshot(args, kwargs) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """(name, tensor, copy) for every tensor argument, to find the ones the learner's code changed in place."""
    named = [(f"number {i + 1}", a) for i, a in enumerate(args)] + list(kwargs.items())
    with torch.no_grad():
        return [(f"`{name}`" if not name.startswith("number") else f"argument {name}", value, value.detach().clone())
                for name, value in named if isinstance(value, torch.Tensor)]


def _same(tensor: torch.Tensor, copy: torch.Tensor) -> bool:
    tensor = tensor.detach()
    return tensor.shape == copy.shape and bool(torch.equal(tensor, copy) or
                                               torch.allclose(tensor, copy, equal_nan=True, atol=0, rtol=0))


def _learner_frame(error: BaseException):
    """The innermost frame of the traceback that is not a library's or the course's, or None."""
    frames = [f for f in traceback.extract_tb(error.__traceback__) if not _NOT_LEARNER.search(f.filename)]
    return frames[-1] if frames else None


def learner_line(error: BaseException) -> str:
    """`` At line 7 of your code: `scores = q @ k`.`` for the innermost frame that is not a library's."""
    frame = _learner_frame(error)
    if frame is None:
        return ""
    line = (frame.line or linecache.getline(frame.filename, frame.lineno)).strip()
    return f" At line {frame.lineno} of your code: `{line}`." if line else f" At line {frame.lineno} of your code."


_BROADCAST = re.compile(r"size of tensor a \((\d+)\) must match the size of tensor b \((\d+)\) at non-singleton "
                        r"dimension (-?\d+)")
_MATMUL = ("cannot be multiplied", "mat1 and mat2", "batch2 tensor", "Expected size for first two dimensions",
           "size mismatch")


_MASK_INDEX = re.compile(r"shape of the mask \[([\d, ]*)\] at index \d+ does not match the shape of the indexed "
                         r"tensor \[([\d, ]*)\]")
_INVALID_GRADIENT = re.compile(r"returned an invalid gradient at index (\d+) - got \[([\d, ]*)\] but expected shape "
                               r"compatible with \[([\d, ]*)\]")


def named_size(size: int | str, sizes: dict[str, int] | None) -> str:
    """``8`` → ``"8 (= d_k)"`` when ``sizes`` names it (``"5 (= Tq = T)"`` when several names share it)."""
    names = [name for name, value in (sizes or {}).items() if str(value) == str(size)]
    return f"{size} (= {' = '.join(names)})" if names else f"{size}"


def named_sizes_in(text: str, sizes: dict[str, int] | None) -> str:
    """`` Here 5 = Tq, 8 = d_k.`` for the named sizes among the numbers of a shape error; "" if none is named."""
    found = []
    for number in dict.fromkeys(re.findall(r"(?<![A-Za-wyz\d._])(\d+)(?![\d.])", text)):
        named = named_size(number, sizes)
        if named != number and named not in found:
            found.append(named)
    return (" Here " + ", ".join(f.replace(" (= ", " = ").rstrip(")") for f in found) + ".") if found else ""


_RESHAPE = re.compile(r"shape '\[([-\d, ]*)\]' is invalid for input of size (\d+)")
_INPLACE = re.compile(r"output with shape \[([\d, ]*)\] doesn't match the broadcast shape \[([\d, ]*)\]")
_LITERAL = re.compile(r"(?<![\w.])(\d+)(?![\w.])")
_FLOOR_DIVISION = re.compile(r"([A-Za-z_][\w.]*|\d+)\s*//\s*([A-Za-z_][\w.]*|\d+)")
_STRING = re.compile(r"(['\"]).*?\1")


def product_name(count: float, sizes: dict[str, int] | None) -> str | None:
    """``20`` → ``"N·H = N·W"``: the products of the fewest named sizes that equal ``count`` (all of them, up to
    three, where sizes coincide); names with "/" (ratios such as C/G) are left out. None when there is none."""
    if not sizes or abs(count - round(count)) > 1e-4 * max(count, 1) or round(count) < 1:
        return None
    names = [name for name in sizes if "/" not in name]
    for r in range(1, len(names) + 1):
        found = ["·".join(subset) for subset in itertools.combinations(names, r)
                 if math.prod(sizes[name] for name in subset) == round(count)]
        if found:
            return " = ".join(found[:3])
    return None


def sizes_text(sizes: dict[str, int]) -> str:
    """"N = 2, C = 6, H = W = 4": the case's named sizes, equal ones together."""
    groups: dict[int, list[str]] = {}
    for name, size in sizes.items():
        groups.setdefault(size, []).append(name)
    return ", ".join(" = ".join(names) + f" = {size}" for size, names in groups.items())


def _names(names: Sequence[str]) -> str:
    quoted = [f"`{name}`" for name in names]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]


def _is_zero(value) -> bool:
    if isinstance(value, torch.Tensor):
        return value.numel() == 1 and not value.is_floating_point() and int(value) == 0
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == 0


def value_reading(error: BaseException, values: dict, case: Case | None = None) -> str:
    """What the failing line's values say about an error that computes with None or divides by zero: which names
    were None (and the case's options that are None, with what None means for them) or 0; "" otherwise."""
    text = str(error)
    if "NoneType" in text or (isinstance(error, TypeError) and re.search(r"\bNone\b", text)):
        return _none_reading(values, case)
    if isinstance(error, ZeroDivisionError):
        zeros = [name for name, value in values.items() if _is_zero(value)]
        if zeros:
            return (f" In this line {_names(zeros)} {'is' if len(zeros) == 1 else 'are'} 0: a count used before it "
                    f"is incremented, or an integer division (//) that rounded down to 0?")
    return ""


def misnamed_reading(values: dict, case: Case | None, sizes: dict[str, int] | None = None) -> str:
    """A variable of the failing line named after one of the exercise's quantities (:attr:`Case.quantities`) that
    has the shape of another of them — another tensor under its name, most often arguments or saved tensors
    unpacked in another order; "" otherwise. Any other shape is not claimed: a reshaped or reduced copy kept under
    the name may be meant."""
    quantities = case.quantities if case is not None else {}
    for name, value in values.items():
        key = name.split(".")[-1]
        if key not in quantities or not isinstance(value, torch.Tensor):
            continue
        symbol, shape = quantities[key]
        others = [other for other_key, (other, other_shape) in quantities.items()
                  if other_key != key and tuple(other_shape) == tuple(value.shape)]
        if not others or tuple(value.shape) == tuple(shape):  # a reshaped or reduced copy may be meant: no claim
            continue
        return (f" Your `{name}` has shape {show_shape(value.shape, sizes)}, but {symbol} is "
                f"{show_shape(shape, sizes)}: that is the shape of {' or '.join(dict.fromkeys(others))} — does "
                f"`{name}` hold another tensor (arguments, or saved tensors, unpacked in another order than they "
                f"were given)?")
    return ""


def _none_reading(values: dict, case: Case | None) -> str:
    nones = [name for name, value in values.items() if value is None]
    said = f" In this line {_names(nones)} {'is' if len(nones) == 1 else 'are'} None." if nones else \
        " A value in this line is None."
    options = case.none_options if case is not None else []
    for option in options:
        meaning, code = (case.none_means.get(option) or ("", ""))
        said += (f" This case passes {option}=None" + (f", which means {meaning}" if meaning else "") +
                 f". None is not a number or a tensor to compute with: handle {option}=None before any arithmetic "
                 f"with it" + (f" — {code}." if code else "."))
    if not options:
        said += (" None is what a function without a return statement gives, or an argument or attribute that was "
                 "never set: find where that value comes from.")
    return said


def _floor_division_to_zero(line: str, values: dict) -> str | None:
    """"C // 32 = 6 // 32": an integer division in ``line`` that gives 0 with the values it held."""
    def value(token):
        if token.isdigit():
            return int(token)
        held = values.get(token)
        if isinstance(held, torch.Tensor) and held.numel() == 1 and not held.is_floating_point():
            return int(held)
        return held if isinstance(held, int) and not isinstance(held, bool) else None
    for a, b in _FLOOR_DIVISION.findall(line):
        va, vb = value(a), value(b)
        if va is not None and vb and va // vb == 0:
            return f"{a} // {b} = {va} // {vb} = 0" if not (a.isdigit() and b.isdigit()) else f"{a} // {b} = 0"
    return None


def reshape_reading(target: list[int], size: int, sizes: dict[str, int] | None, line: str = "",
                    values: dict | None = None, sources: dict[str, str] | None = None) -> str:
    """A reshape or view that cannot be made, read with the case's named sizes: a number written into the line
    that is none of them (hard-coded), a 0 from an integer division, or named sizes that do not multiply to the
    tensor's size."""
    sizes, values = sizes or {}, values or {}
    names = axis_names(target, sizes)
    shown = tuple_text(target) + (f" = {tuple_text(names)}" if names and names != [str(n) for n in target] else "")
    total = product_name(size, sizes)
    said = f" Your reshape asks for {shown} from a tensor of {size}" + (f" = {total}" if total else "") + " values"
    named = set(sizes.values())
    literals = {int(n) for n in _LITERAL.findall(_STRING.sub("''", line))}
    numbers = [n for n in dict.fromkeys(target) if n not in (-1, 0, 1)]
    unnamed = [n for n in numbers if n not in named]
    hard = [n for n in numbers if n in literals]  # a size that is a literal of the line: written into the code
    parts = []
    if hard:
        coincide = [named_size(n, sizes).replace(" (= ", " = ").rstrip(")") for n in hard if n in named]
        parts.append(f"{' and '.join(map(str, hard))} {'is' if len(hard) == 1 else 'are'} hard-coded, written "
                     f"into this line" + (f" (in this case {', '.join(coincide)} only by chance)" if coincide else "")
                     + (f", and none of this case's sizes ({sizes_text(sizes)})" if not coincide else ""))
    elif unnamed and sizes:
        parts.append(f"{' and '.join(map(str, unnamed))} {'is' if len(unnamed) == 1 else 'are'} none of this "
                     f"case's sizes ({sizes_text(sizes)}): hard-coded elsewhere, or computed from the wrong sizes?")
    if 0 in target:
        division = _floor_division_to_zero(line, values)
        parts.append(f"the 0 is {division}, an integer division by a number larger than what it divides"
                     if division else "an axis of size 0: an integer division (//) that rounded down to 0?")
    asked = math.prod(n for n in target if n != -1)
    product = product_name(asked, sizes)
    if -1 in target:
        counted = f"the other sizes multiply to {asked}, which does not divide {size}, so -1 cannot be filled in"
    elif 0 not in target:
        counted = (f"they multiply to {asked}" + (f" = {product}" if product else "") + ", not to the tensor's "
                   f"{size}: an axis too many, or one of the wrong size")
    else:
        counted = ""
    if parts:
        where = "; ".join(f"{key} = {value}" for key, value in (sources or {}).items())
        return (said + ": " + "; ".join(parts + ([counted] if counted else [])) + ". Take every size from the "
                "input's shape or the arguments" + (f" ({where})" if where else "") + ", never a number written "
                "into the code, so that it works for every case.")
    return said + f": {counted}."


_REDUCTION = re.compile(r"(?:\.|torch\.)(sum|mean|amax|amin|max|min|var|std|logsumexp|norm|prod)\(([^()]*)\)")
_REDUCED = {"sum": "sum", "mean": "mean", "amax": "maximum", "max": "maximum", "amin": "minimum", "min": "minimum",
            "var": "variance", "std": "standard deviation", "logsumexp": "logsumexp", "norm": "norm",
            "prod": "product"}


def reduction_without_keepdim(line: str) -> str:
    """The reduction of the failing line that dropped its axis, named (``.sum(dim=-1)``: "each row's own sum"), for a
    broadcast error read as a reduction without keepdim=True; "" when the line has no such reduction."""
    for match in _REDUCTION.finditer(line):
        if "keepdim" in match.group(2) or not match.group(2).strip():
            continue
        what = _REDUCED[match.group(1)]
        return (f" In this line that is the {what} `{match.group(0).lstrip('.')}`: it was taken without keepdim=True, "
                f"so each row's own {what} no longer sits beside its row — write "
                f"{match.group(1)}({match.group(2)}, keepdim=True).")
    return ""


def inplace_reading(target_text: str, broadcast_text: str, operation: Operation | None,
                    sizes: dict[str, int] | None) -> str:
    """An in-place operation whose operands broadcast to more than the tensor it writes into."""
    target = tuple(int(n) for n in target_text.split(",") if n.strip())
    broadcast = tuple(int(n) for n in broadcast_text.split(",") if n.strip())
    others = [o for o in (operation.operands if operation else ()) if o.shape != target]
    said = (f" An in-place operation (add_, mul_, copy_, +=, …) writes its result into a tensor of shape "
            f"{show_shape(target, sizes)}, but its operands broadcast to {show_shape(broadcast, sizes)}, which does "
            f"not fit there")
    if not others:
        return said + (": the other operand has more axes or larger sizes — give it the shape of the tensor written "
                       "into (a reduction with keepdim=True?).")
    other = others[0]
    called = f"your `{other.name}`" if other.name and not (other.view or other.origin) else "the other operand"
    said += f": {called} has shape {show_shape(other.shape, sizes)}"
    if [s for s in other.shape if s != 1] == [s for s in target if s != 1]:
        return said + (f", the same entries with extra axes of size 1 (a keepdim=True, or a view made for "
                       f"broadcasting). Give it the shape {tuple_text(target)}: reduce without keepdim=True, or "
                       f".reshape{tuple_text(target)}.")
    return said + f". Give it the shape {tuple_text(target)}, or one that broadcasts to it."


def exception_hint(error: BaseException, sizes: dict[str, int] | None = None,
                   operation: Operation | None = None, *, line: str = "", values: dict | None = None,
                   case: Case | None = None) -> str:
    """What a PyTorch / einops / Python error message means for the learner's code, as one or two sentences.

    ``sizes`` (a case's :attr:`Case.sizes`) names the sizes in a shape error: "8 (= d_k)". ``operation`` (see
    :func:`~utils.checks.operands.failing_operation`) is the operation that raised, with its operands' shapes:
    a shape error is then read from the whole shapes ("a 1-D tensor lines up with the LAST axis"). ``line`` is
    the learner's line that raised and ``values`` what its names held (:func:`~utils.checks.operands.line_values`):
    a None, a 0 or a number written into the code is then named, with the ``case``'s options.
    """
    values = values or {}
    reading = read_operation(operation, sizes)  # what the operands' shapes say, when they say something
    text = str(error)
    held = value_reading(error, values, case) or misnamed_reading(values, case, sizes)
    if held:
        return held
    match = _RESHAPE.search(text)
    if match:
        return reshape_reading([int(n) for n in match.group(1).split(",") if n.strip()], int(match.group(2)),
                               sizes, line, values, case.size_sources if case else {})
    match = _INPLACE.search(text)
    if match:
        return inplace_reading(match.group(1), match.group(2), operation, sizes)
    match = _BROADCAST.search(text)
    if match:
        a, b, dim = match.groups()
        return (f" Two tensors did not broadcast: one has {named_size(a, sizes)} entries and the other "
                f"{named_size(b, sizes)} along dimension {dim}." + (reading or
                " Is a reduction missing keepdim=True, a tensor built with the wrong size, or a per-channel/per-item "
                "tensor lined up with the wrong axis (view it so its entries sit on the axis they belong to)?")
                + (reduction_without_keepdim(line) if reading and "keepdim" in reading else ""))
    if any(message in text for message in _MATMUL):
        if reading:
            return " The shapes don't fit a matrix product (…, n, k) @ (…, k, m)." + reading
        return (" The shapes don't fit a matrix product (…, n, k) @ (…, k, m): is a transpose missing, or on the "
                "wrong axes?" + named_sizes_in(text, sizes))
    match = _MASK_INDEX.search(text)
    if match:
        return (f" A boolean mask used as an index (x[mask] = …) must have exactly the tensor's shape "
                f"[{match.group(2)}]; it does not broadcast. Use x.masked_fill(mask, value), which broadcasts a "
                f"mask of shape [{match.group(1)}]." + named_sizes_in(text, sizes))
    match = _INVALID_GRADIENT.search(text)
    if match:
        index, got, expected = match.groups()
        return (f" backward's gradient number {index} (counting from 0, in the order forward took its inputs) has "
                f"shape [{got}] but its input has shape [{expected}]: each gradient has its input's shape — are "
                f"two gradients swapped, or one transposed?" + named_sizes_in(f"[{got}] [{expected}]", sizes))
    if re.search(r"batch1 must be a 3D tensor|self must be a matrix|Expected 3-dimensional tensor", text):
        shapes = ", ".join(show_shape(o.shape, sizes) for o in operation.operands) if operation else ""
        return (" torch.bmm takes exactly 3-D tensors, (b, n, k) @ (b, k, m), and torch.mm exactly 2-D ones; "
                "yours have another number of axes" + (f" ({shapes})" if shapes else "") +
                ". Use @ (torch.matmul), which takes any number of batch axes in front of the last two.")
    if "einops" in type(error).__module__:
        return " Check the einops pattern's axis names and sizes against the tensor's shape."
    if "to have non-zero size" in text or "on tensors with no elements" in text:
        return (" A reduction (max, amax, sum, …) ran over an empty tensor: a slice came out empty — check its "
                "bounds, x[..., start:start + size, :], not x[..., start:size, :].")
    if "Dimension out of range" in text:
        return (" A dim= argument names an axis the tensor does not have: count axes from the end (dim=-1 is the "
                "last), so the code works for any number of batch axes.")
    if "out of bounds" in text or "out of range" in text:
        return (" An index is past the end: check the offsets (the chapter's indices start at 1 where the "
                "tensors' start at 0?).")
    if re.search(r"(expected|found).*(Double|Float|Half|Long|dtype)", text, re.IGNORECASE):
        if text.lower().count("complex") >= 2:
            return (" complex64 met complex128: build every complex tensor in the same precision (complex128 for a "
                    "float64 input, complex64 for float32).")
        if "complex" in text.lower():
            return (" A real tensor met a complex one in a matrix product: convert the real one first, "
                    "x.to(torch.complex64) (torch.complex128 for a float64 x).")
        return (" Two tensors have different dtypes: avoid hard-coded dtypes (torch.float32, .float()); build new "
                "tensors with the input's dtype (torch.zeros_like, dtype=x.dtype).")
    if "incorrect number of gradients" in text:
        return " backward must return one gradient per input of forward, in the same order (None for non-tensors)."
    if "returned a gradient different than None" in text:
        return (" backward must return None in the place of each input of forward that is not a tensor (a float such "
                "as eps, an int, a flag): it has no gradient.")
    if "inplace operation" in text or "in-place operation" in text:
        return (" An in-place operation (+=, [...] =, .add_) changed a tensor autograd still needs: write "
                "x = x + … instead, or clone first.")
    if "does not require grad" in text or "element 0 of tensors does not require grad" in text:
        return (" Nothing you returned is connected to the inputs in the autograd graph: don't detach, use .data, "
                "or compute under torch.no_grad().")
    if "size of" in text and "view" in text or "view size is not compatible" in text:
        return " .view needs contiguous memory: use .reshape, or call .contiguous() after a transpose."
    return ""


# ---------------------------------------------------------------------------------------------- structure
def structure_problem(got, expected: torch.Tensor, sizes: dict[str, int] | None = None,
                      quantities: dict[str, tuple[str, tuple[int, ...]]] | None = None,
                      name: str = "output") -> str | None:
    """What is wrong with ``got``'s type, shape or dtype, said so the learner knows what to change; else None.
    ``sizes`` (the case's) names the axes of both shapes: "yours is (N, G, C/G, H, W), the expected (N, C, H, W)";
    ``quantities`` (the case's, :attr:`Case.quantities`) name a wrong shape that is another quantity's ("that is
    the shape of P: did you return P instead of the output?")."""
    if not isinstance(got, torch.Tensor):
        if got is None:
            return "got None. Did you forget to return it?"
        return f"got a {type(got).__name__}, not a torch.Tensor."
    if got.shape != expected.shape:
        mine, theirs = axis_names(got.shape, sizes), axis_names(expected.shape, sizes)
        named = (f" Yours is ({', '.join(mine)}), the expected ({', '.join(theirs)})."
                 if mine and theirs and mine != theirs else "")
        another = quantity_shape_reading(got.shape, expected.shape, quantities, name) or \
            _pairs_reading(got, expected)
        return (f"shape {tuple(got.shape)} but expected {tuple(expected.shape)}.{named}"
                f"{another or shape_hint(got.shape, expected.shape)}")
    if got.dtype != expected.dtype:
        return (f"dtype {got.dtype} but expected {expected.dtype} (the inputs' dtype). Avoid hard-coded dtypes "
                f"such as torch.float32 or .float().")
    return None


def _pairs_reading(got: torch.Tensor, expected: torch.Tensor) -> str:
    """An extra last axis of size 2 on a real result: (real, imaginary) pairs, as torch.view_as_real makes them."""
    if tuple(got.shape) != (*expected.shape, 2) or got.is_complex():
        return ""
    return (" An extra last axis of size 2: two numbers per entry — the (real, imaginary) pairs that "
            "torch.view_as_real makes of a complex tensor, or two results stacked? Where the real part is meant, "
            "take .real of the complex tensor (it has the complex tensor's shape).")


def quantity_shape_reading(got_shape, expected_shape, quantities: dict[str, tuple[str, tuple[int, ...]]] | None,
                           name: str = "output") -> str:
    """A result whose shape is another of the exercise's quantities' (and not the expected one's): most often that
    quantity returned instead of the result ("P instead of P V"); "" when no quantity has that shape."""
    shapes = dict.fromkeys((symbol, tuple(shape)) for symbol, shape in (quantities or {}).values())
    wanted = [symbol for symbol, shape in shapes if shape == tuple(expected_shape)]
    others = [symbol for symbol, shape in shapes if shape == tuple(got_shape) and symbol not in wanted]
    if not others or tuple(got_shape) == tuple(expected_shape):
        return ""
    others = others[:2]  # the exercise lists its quantities in the order they are computed: the first are likeliest
    bare = [symbol.split(" (")[0] for symbol in others]
    instead = wanted[0].split(" (")[0] if len(wanted) == 1 else f"your {name}"
    return (f" That is the shape of {' or '.join(others)}: did you return {' or '.join(bare)} instead of {instead}, "
            f"or compute it from {'that tensor' if len(others) == 1 else 'one of them'}?")


def shape_hint(got: torch.Size, expected: torch.Size) -> str:
    """Why a shape might be off: transposed, a lost or extra singleton axis, reshaped, or broadcast too far."""
    got, expected = tuple(got), tuple(expected)
    if len(got) >= 2 and got[:-2] + got[-2:][::-1] == expected:
        return " That is the expected shape with its last two axes swapped: is it transposed?"
    if sorted(got) == sorted(expected):
        return " The same sizes in another order: are two axes swapped (a transpose or a wrong rearrange)?"
    if len(got) == len(expected) + 1 and 1 in got:
        for i, size in enumerate(got):
            if size == 1 and got[:i] + got[i + 1:] == expected:
                return f" An extra axis of size 1 at position {i}: a keepdim=True too many, or a missing squeeze?"
    if len(got) + 1 == len(expected):
        for i, size in enumerate(expected):
            if size == 1 and expected[:i] + expected[i + 1:] == got:
                return f" The axis of size 1 at position {i} is missing: a reduction without keepdim=True?"
            if expected[:i] + expected[i + 1:] == got:
                return f" Axis {i} (size {size}) is missing: did a sum, mean or indexing remove it?"
    for i in range(len(expected) - 1 if len(got) + 1 == len(expected) else 0):  # two axes of yours merged
        if expected[:i] + (expected[i] * expected[i + 1],) + expected[i + 2:] == got:
            return (f" Your axis {i} holds the expected axes {i} and {i + 1} merged ({expected[i]} × "
                    f"{expected[i + 1]} = {got[i]}): a reshape to the expected shape is missing.")
    for i in range(len(got) - 1 if len(got) == len(expected) + 1 else 0):  # one axis of yours split in two
        if got[:i] + (got[i] * got[i + 1],) + got[i + 2:] == expected:
            return (f" The expected axis {i} ({expected[i]} entries) is split into your axes {i} and {i + 1} "
                    f"({got[i]} × {got[i + 1]}): reshape back to {expected} (a grouped view not undone?).")
    if math.prod(got) == math.prod(expected):
        return " Same number of entries, other shape: a reshape or rearrange with the wrong axes?"
    if len(got) == len(expected) and all(g == e or e == 1 for g, e in zip(got, expected)):
        axes = [i for i, (g, e) in enumerate(zip(got, expected)) if g != e]
        return f" Axes {axes} should have size 1: a reduction over them is missing (or broadcast too early)."
    if len(got) > len(expected) and got[-len(expected):] == expected:
        return f" Your result has extra leading axes {got[:-len(expected)]}: something broadcast against a batch."
    return ""


# ------------------------------------------------------------------------------------- right numbers, wrong place
def _matches(got, expected: torch.Tensor, atol: float, rtol: float) -> bool:
    return isinstance(got, torch.Tensor) and got.shape == expected.shape and got.dtype == expected.dtype and \
        bool(torch.allclose(got.detach(), expected.detach(), atol=atol, rtol=rtol))


def one_of_several(got, expected: torch.Tensor, name: str = "output", *, atol: float, rtol: float) -> str | None:
    """A tuple or list returned where one tensor belongs, one of whose items is the right answer: say which."""
    if not isinstance(got, (tuple, list)) or isinstance(got, torch.Size):
        return None
    for index, item in enumerate(got):
        if _matches(item, expected, atol, rtol):
            return (f"you returned a {type(got).__name__} of {len(got)}, not a tensor; its item {index} is the right "
                    f"{name}: return that tensor alone (`return {name if name.isidentifier() else 'y'}`, not a "
                    f"{type(got).__name__}).")
    return None


def misplaced_results(got: Sequence, expected: Sequence[torch.Tensor], names: Sequence[str], *, order: str = "",
                      tolerances: Sequence[tuple[float, float]] | None = None) -> str | None:
    """Several results returned in each other's places: each wrong one is compared with every expected one, and
    results that are each other's right values are named ("your grad_weight and grad_bias are in each other's
    places"); None when the wrong results are not a reordering of right ones. A wrong result equal to a result
    that is also returned rightly is left to the chapter: the same formula written twice is likelier than the same
    tensor returned twice. ``names`` say each result as the learner knows it; ``order`` is the order to return
    them in, as code ("grad_x, grad_weight, grad_bias"; by default the names)."""
    tolerances = tolerances or [tolerance(e.dtype) for e in expected]
    wrong = [i for i, e in enumerate(expected) if i < len(got) and not _matches(got[i], e, *tolerances[i])]
    moved = {i: next((j for j in wrong if j != i and _matches(got[i], expected[j], *tolerances[j])), None)
             for i in wrong}
    moved = {i: j for i, j in moved.items() if j is not None}
    if not moved or sorted(moved.values()) != sorted(moved):  # not a reordering among the wrong ones
        return None
    said, done = [], set()
    for i, j in moved.items():
        if i in done:
            continue
        if moved.get(j) == i:  # a pair in each other's places
            said.append(f"your {names[i]} and {names[j]} are in each other's places: you returned {names[j]} where "
                        f"{names[i]} goes, and {names[i]} where {names[j]} goes")
            done |= {i, j}
        else:
            said.append(f"you returned {names[j]} where {names[i]} goes")
    order = order or ", ".join(name.split(" (")[0] for name in names)
    return "; ".join(said) + f". Return them in the order ({order})."


def layout_problem(got, expected: torch.Tensor, sizes: dict[str, int] | None = None,
                   axes: Sequence[str] | None = None, *, atol: float, rtol: float) -> str | None:
    """The right numbers in the wrong layout: ``got`` is ``expected`` with its axes in another order, or merged or
    split by a reshape, or both (axes moved, then reshaped without moving them back); said as how to put them back.
    None when no such layout gives ``got`` (tried for up to 5 axes: 120 orders, only on a failing answer)."""
    if not isinstance(got, torch.Tensor) or got.dtype != expected.dtype or got.numel() != expected.numel() or \
            got.numel() < 2 or not 0 < expected.dim() <= 5 or expected.is_complex():
        return None
    got, expected = got.detach(), expected.detach()
    names = list(axes) if axes and len(axes) == expected.dim() else \
        axis_names(expected.shape, sizes) or [str(size) for size in expected.shape]
    orders = sorted(itertools.permutations(range(expected.dim())),
                    key=lambda order: sum(a != b for a, b in enumerate(order)))  # the fewest axes moved first
    for order in orders:
        moved = expected.permute(order)
        identity = list(order) == sorted(order)
        if moved.shape == got.shape:
            if identity or not torch.allclose(got, moved, atol=atol, rtol=rtol):
                continue
        elif not torch.allclose(got, moved.reshape(got.shape), atol=atol, rtol=rtol):
            continue
        return _layout_message(got.shape, expected.shape, moved.shape, order, names, sizes)
    return None


def _layout_message(shape, expected_shape, moved_shape, order, names, sizes) -> str:
    moved_names = [names[axis] for axis in order]
    back = [order.index(axis) for axis in range(len(order))]  # moved.permute(back) is the expected layout
    expected_text = tuple_text(names)
    mine = tuple_text(_case_names_of_parts(_merged_names(shape, moved_shape, moved_names), shape, sizes)
                      or axis_names(shape, sizes) or shape)
    shown = f"shape {tuple(shape)} = " if tuple(shape) != tuple(expected_shape) else ""
    if list(order) == sorted(order):  # a reshape alone
        return (f"your numbers are right, but in {shown}{mine}: reshape back to {expected_text} — "
                f".reshape{tuple(expected_shape)} (x.shape), so each axis is its own again.")
    if tuple(moved_shape) == tuple(shape):
        same = " (the sizes coincide, so the shape alone looked right)" if tuple(shape) == tuple(expected_shape) \
            else ""
        return (f"your numbers are right, but your axes are in the order {mine} where {expected_text} is expected"
                f"{same}: put them back with .permute{tuple(back)} — or never move them.")
    return (f"your numbers are right, but laid out as {tuple_text(moved_names)} and then reshaped to {mine} without "
            f"moving the axes back: move them back before reshaping (.permute{tuple(back)} of the "
            f"{tuple_text(moved_names)} tensor), then reshape to {expected_text}.")


def _case_names_of_parts(found: list[str] | None, shape, sizes) -> list[str] | None:
    """The parts of a split axis ("3 of C", "2 of C") named with the case's own sizes where they name them apart
    from every other axis ((N, G, C/G, H, W)); the parts as they are otherwise."""
    if found is None:
        return None
    case = axis_names(shape, sizes) or []
    parts = [i for i, name in enumerate(found) if " of " in name]
    if parts and len(case) == len(found) and all(
            not case[i].isdigit() and case.count(case[i]) == 1 and case[i] not in found for i in parts):
        return [case[i] if i in parts else name for i, name in enumerate(found)]
    return found


def _merged_names(shape, source_shape, source_names) -> list[str] | None:
    """The names of ``shape``'s axes when each is one axis of ``source_shape``, several adjacent ones merged
    ("H·W"), or part of one split ("2 of H"); None when the reshape does not line up so (sizes that straddle)."""
    found, i, j = [], 0, 0
    names = [str(name) for name in source_names]
    while i < len(shape) and j < len(source_shape):
        if shape[i] == source_shape[j]:
            found.append(names[j])
            i, j = i + 1, j + 1
            continue
        product, k = source_shape[j], j + 1
        while k < len(source_shape) and product < shape[i]:
            product *= source_shape[k]
            k += 1
        if product == shape[i]:  # adjacent axes merged
            found.append("·".join(name for name in names[j:k] if name != "1") or "1")
            i, j = i + 1, k
            continue
        product, stop = shape[i], i + 1
        while stop < len(shape) and product < source_shape[j]:
            product *= shape[stop]
            stop += 1
        if product != source_shape[j]:
            return None
        found += [f"{size} of {names[j]}" for size in shape[i:stop]]  # one axis split
        i, j = stop, j + 1
    return found if i == len(shape) and all(size == 1 for size in source_shape[j:]) else None


def nonfinite_problem(got: torch.Tensor, axes: Sequence[str] | None = None, causes: str | None = None) -> str:
    """Where NaN/inf sit, and ``causes`` (the exercise's own, see :attr:`Case.nonfinite_causes`) or the generic ones."""
    bad = ~torch.isfinite(got)
    first = [int(i) for i in bad.nonzero()[0]]
    kinds = "NaN" if torch.isnan(got).any() else "inf"
    share = bad.float().mean().item()
    causes = causes or ("exp() of a large score overflows unless the maximum is subtracted first; a row whose "
                        "entries are all -inf gives NaN after softmax; 0/0 or a division by a zero variance gives "
                        "NaN/inf.")
    return (f"{kinds} in {share:.0%} of the entries (first at {describe_index(first, axes)}) where the answer is "
            f"finite. {causes}")


def unravel(flat: int, shape: Sequence[int]) -> list[int]:
    """The index of entry ``flat`` of a tensor of ``shape`` (torch.unravel_index's first call imports sympy, ~2 s)."""
    index = []
    for size in reversed(shape):
        flat, position = divmod(flat, size)
        index.append(position)
    return index[::-1]


def describe_index(index: Sequence[int], axes: Sequence[str] | None) -> str:
    if axes and len(axes) == len(index):
        return ", ".join(f"{name}={i}" for name, i in zip(axes, index))
    return f"index {list(index)}"


# ---------------------------------------------------------------------------------------------- numbers
def constant_factor(got: torch.Tensor, expected: torch.Tensor, tolerance: float = 1e-3) -> float | None:
    """The constant c with got ≈ c · expected, if there is one (and it is not 1)."""
    big = expected.abs() > 1e-3 * expected.abs().max().clamp_min(1e-12)
    if big.sum() < 2:
        return None
    ratios = got[big] / expected[big]
    factor = ratios.median().item()
    if abs(factor - 1) < tolerance or not torch.allclose(ratios, torch.full_like(ratios, factor), rtol=tolerance):
        return None
    return factor


def name_value(value: float, named: dict[str, float], rtol: float = 2e-3) -> str | None:
    """The name of ``value`` among ``named`` constants, their reciprocals and negatives: "1/√d_k"; else None."""
    for name, constant in named.items():
        for shown, candidate in ((name, constant), (f"1/{name}", 1 / constant if constant else math.inf),
                                 (f"−{name}", -constant), (f"−1/{name}", -1 / constant if constant else math.inf)):
            if math.isfinite(candidate) and abs(value - candidate) <= rtol * max(abs(candidate), 1e-12):
                return shown
    return None


def factor_message(factor: float, named: dict[str, float]) -> str:
    """"your values are 2.828 (= √d_k) × the right ones everywhere: ..." with the factor named if possible."""
    name = name_value(factor, named)
    label = f"{factor:.4g}" + (f" (= {name})" if name else "")
    if name:
        return (f"your values are {label} × the right ones everywhere: a factor {name} too many — remove it, or "
                f"apply its inverse.")
    if factor < 0:
        return f"your values are {label} × the right ones everywhere: a sign is flipped (and maybe a scale is off)."
    return (f"your values are {label} × the right ones everywhere: a constant factor is off (a scale applied "
            f"twice, missing, or inverted).")


@dataclass
class Fit:
    """``got ≈ Σ coefficients[name] · basis[name]``, with the relative residual of the least-squares fit."""

    coefficients: dict[str, float]
    residual: float  # ‖got − fit‖ / ‖got‖: near 0 when got really is such a combination

    @property
    def exact(self) -> bool:
        return self.residual < 1e-3

    def formula(self, names: dict[str, str] | None = None) -> str:
        """"0.97·x₀ + 0.25·ε" with the basis' display names."""
        names = names or {}
        terms = [f"{value:.4g}·{names.get(key, key)}" for key, value in self.coefficients.items()]
        return " + ".join(terms).replace("+ -", "− ")


def fit_linear(got: torch.Tensor, basis: dict[str, torch.Tensor], *, per: int | None = None) -> Fit | list[Fit]:
    """Least-squares coefficients c with ``got ≈ Σ c[name] · basis[name]``.

    With ``per=k`` one fit per index of axis ``k`` (e.g. one per batch item, when each item has its own t).
    The basis tensors broadcast against ``got``. Solved in float64.
    """
    if per is not None:
        return [fit_linear(got.select(per, i), {k: v.expand_as(got).select(per, i) for k, v in basis.items()})
                for i in range(got.shape[per])]
    target = got.detach().double().reshape(-1)
    columns = torch.stack([b.detach().double().expand_as(got).reshape(-1) for b in basis.values()], dim=1)
    solution = torch.linalg.lstsq(columns, target[:, None], driver="gelsd").solution[:, 0]
    residual = (columns @ solution - target).norm() / target.norm().clamp_min(1e-300)
    return Fit(dict(zip(basis, solution.tolist())), residual.item())


def coefficient_moves(have: dict[str, float], want: dict[str, float], *, names: dict[str, str] | None = None,
                      stands_for: dict[str, str] | None = None, rtol: float = 1e-3) -> tuple[str, set[str]] | None:
    """Terms in each other's places, read from recovered coefficients: two coefficients exchanged; a term whose
    coefficient is 0 while another absorbed it (w_b + w_a) or carries it (w_a, where the other belongs nowhere);
    said as "you used B where A goes". Returns (the sentence, the keys it explains), or None when no move explains
    a wrong coefficient. ``stands_for`` ({term: the term it may replace}) settles which of several candidates took
    a missing term's place; without it an ambiguous move is not claimed."""
    names, stands_for = names or {}, stands_for or {}
    scale = max([abs(v) for v in want.values()] + [1e-12])

    def same(a: float, b: float) -> bool:
        return abs(a - b) <= rtol * max(abs(b), scale) + 1e-12

    def show(key: str) -> str:
        return names.get(key, key)
    wrong = [k for k in want if not same(have.get(k, 0.0), want[k])]
    said, explained = [], set()
    for a, b in itertools.combinations(wrong, 2):
        if {a, b} & explained or same(want[a], want[b]) or same(want[a], 0.0) or same(want[b], 0.0):
            continue  # a term the equation lacks has no place to exchange: that is a move, below
        if same(have.get(a, 0.0), want[b]) and same(have.get(b, 0.0), want[a]):
            said.append(f"you used {show(a)} where {show(b)} goes and {show(b)} where {show(a)} goes: their "
                        f"coefficients are exchanged ({show(a)} has {want[b]:.4g}, {show(b)} has {want[a]:.4g})")
            explained |= {a, b}
    for a in wrong:
        if a in explained or not same(have.get(a, 0.0), 0.0) or same(want[a], 0.0):
            continue  # only a term that is gone can have moved
        takers = {}
        for b in wrong:
            if b == a or b in explained:
                continue
            if not same(want[b], 0.0) and same(have.get(b, 0.0), want[b] + want[a]):
                takers[b] = (f"you used {show(b)} where {show(a)} goes: there is no {show(a)} term, and {show(b)}'s "
                             f"coefficient is {want[b]:.4g} + {want[a]:.4g} = {have.get(b, 0.0):.4g}, its own and "
                             f"{show(a)}'s")
            elif same(want[b], 0.0) and same(have.get(b, 0.0), want[a]):
                takers[b] = (f"you used {show(b)} where {show(a)} goes ({show(b)} has the coefficient {show(a)} "
                             f"should have, {want[a]:.4g}, and {show(a)} is missing)")
        chosen = [b for b in takers if stands_for.get(b) == a] or (list(takers) if len(takers) == 1 else [])
        if len(chosen) == 1:
            said.append(takers[chosen[0]])
            explained |= {a, chosen[0]}
    return ("; ".join(said), explained) if said else None


def compare_coefficients(fit: Fit, expected: dict[str, float], *, names: dict[str, str] | None = None,
                         named: dict[str, float] | None = None, rtol: float = 1e-3,
                         stands_for: dict[str, str] | None = None) -> str | None:
    """Which recovered coefficients differ from the equation's, and what each equals instead; None if all agree.

    Terms in each other's places are said first (:func:`coefficient_moves`: "you used ε_θ where z goes"); ``named``
    are the chapter's constants, so any other wrong coefficient is named ("your coefficient of ε is 0.25 = √β_t;
    expected 0.31 = √(1 − ᾱ_t)"). ``expected`` may hold 0 for a basis term the equation does not have.
    """
    names, named = names or {}, named or {}
    if not fit.exact:
        return None
    moves = coefficient_moves(fit.coefficients, expected, names=names, stands_for=stands_for, rtol=rtol)
    said, explained = moves if moves else ([], set())
    said = [said] if said else []
    for key, want in expected.items():
        have = fit.coefficients.get(key, 0.0)
        if key not in explained and abs(have - want) > rtol * max(abs(want), 1e-6) + 1e-9:
            have_name, want_name = name_value(have, named), name_value(want, named)
            said.append(f"the coefficient of {names.get(key, key)} is {have:.4g}"
                        + (f" (= {have_name})" if have_name else "") + f" but should be {want:.4g}"
                        + (f" (= {want_name})" if want_name else ""))
    if not said:
        return None
    return f"yours is {fit.formula(names)}: " + "; ".join(said) + "."


def fit_temperature(probabilities: torch.Tensor, scores: torch.Tensor, dim: int = -1) -> float | None:
    """The a with ``probabilities ≈ softmax(a · scores, dim)``, from log-ratios; None when it is not such a softmax.

    log p_i − mean_j log p_j = a · (s_i − mean_j s_j) over every row with finite, positive entries.
    """
    p, s = probabilities.detach().double(), scores.detach().double()
    usable = (p > 1e-30) & torch.isfinite(s)
    if not usable.all():
        return None
    log_p = p.log()
    centred_log = log_p - log_p.mean(dim, keepdim=True)
    centred_s = s - s.mean(dim, keepdim=True)
    denominator = (centred_s * centred_s).sum()
    if denominator < 1e-12:
        return None
    a = ((centred_log * centred_s).sum() / denominator).item()
    residual = (centred_log - a * centred_s).norm() / centred_log.norm().clamp_min(1e-300)
    return a if residual < 1e-3 else None


def untouched_slice(got: torch.Tensor, expected: torch.Tensor, axes: Sequence[str] | None = None, *,
                    atol: float, rtol: float) -> str | None:
    """Wrong entries that are exactly 0 and fill the last (or first) rows, with every other entry right: rows never
    written — a loop that stops one short, or starts one late. Rows are taken over the leading axes flattened, the
    way such a loop walks them (``x.reshape(-1, n)``); None when the wrong entries are anything else."""
    if got.dim() == 0 or got.dtype != expected.dtype or got.is_complex():
        return None
    wrong = ~torch.isclose(got, expected, atol=atol, rtol=rtol)
    if not wrong.any():
        return None
    for leading in range(1, got.dim()):  # a row of one entry that is 0 says too little: a formula can give 0 there
        rows = math.prod(got.shape[:leading])
        if rows < 2 or math.prod(got.shape[leading:]) < 2:
            continue
        wrong_rows = wrong.reshape(rows, -1).any(dim=1).nonzero().flatten().tolist()
        count = len(wrong_rows)
        for end, chosen in (("last", list(range(rows - count, rows))), ("first", list(range(count)))):
            if wrong_rows != chosen or count > rows // 2:
                continue
            if not (got.reshape(rows, -1)[chosen] == 0).all():
                continue
            return _untouched_message(got.shape, leading, end, count, rows, axes)
    return None


def _untouched_message(shape, leading: int, end: str, count: int, rows: int, axes) -> str:
    names = list(axes) if axes and len(axes) == len(shape) else [f"axis {i}" for i in range(len(shape))]
    kind = "row" if leading == len(shape) - 1 else "slice"
    plural = {"row": "rows", "slice": "slices"}[kind]
    what = f"the {end} {kind}" if count == 1 else f"the {end} {count} {plural}"
    over = names[0] if leading == 1 else "(" + ", ".join(names[:leading]) + ") flattened"
    loop = ("a loop that stops one short (range(n - 1) where range(n) belongs), or a slice that ends one early"
            if end == "last" else "a loop that starts one late (range(1, n) where range(n) belongs)")
    return (f"{what} (of the {rows} along {over}) {'is' if count == 1 else 'are'} exactly 0, and every other "
            f"entry is right: never written — {loop}? Check the loop's bounds (off by one).")


def locate_difference(got: torch.Tensor, expected: torch.Tensor, axes: Sequence[str] | None = None, *,
                      atol: float, rtol: float) -> str | None:
    """Where the wrong entries sit, when they are confined to part of an axis: "only at Tk = 3, 4 (2 of 5)"."""
    wrong = ~torch.isclose(got, expected, atol=atol, rtol=rtol)
    if not wrong.any() or got.dim() == 0:
        return None
    share = wrong.float().mean().item()
    parts = []
    for axis in range(got.dim()):
        size = got.shape[axis]
        if size < 2:
            continue
        hit = wrong.movedim(axis, 0).reshape(size, -1).any(dim=1)  # (size,): any wrong entry at this index
        if 0 < hit.sum() < size:
            indices = hit.nonzero().flatten().tolist()
            shown = ", ".join(map(str, indices[:6])) + (", …" if len(indices) > 6 else "")
            name = axes[axis] if axes and len(axes) == got.dim() else f"axis {axis}"
            parts.append(f"{name} = {shown} ({len(indices)} of {size})")
    if not parts:
        return f"{share:.0%} of the entries are wrong, spread over every axis."
    return f"{share:.0%} of the entries are wrong, all of them at " + " and ".join(parts) + "."


def return_in_loop(fn: Callable) -> str | None:
    """The ``return`` line of ``fn`` that sits inside one of its loops (indented one level too deep): the function
    returns during the first pass, after the first block or step. None when there is none or the source cannot be
    read. (A return inside an ``if`` of the loop, an early exit, is not counted.)"""
    try:
        source = textwrap.dedent(inspect.getsource(fn))
        tree = ast.parse(source)
    except (OSError, TypeError, SyntaxError, IndentationError):
        return None
    lines = source.splitlines()
    for loop in (node for node in ast.walk(tree) if isinstance(node, (ast.For, ast.While))):
        for statement in loop.body:
            if isinstance(statement, ast.Return):
                return lines[statement.lineno - 1].strip()
    return None


def reassigned_in_loop(fn: Callable) -> list[tuple[str, str]]:
    """The arguments of ``fn`` that a loop of its body assigns from themselves (``q = q * scale``, ``x += …``), with
    the line: each pass changes them again, so what the first pass meant to do once compounds. [] when there is none
    or the source cannot be read."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    except (OSError, TypeError, SyntaxError, IndentationError):
        return []
    function = next((node for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))),
                    None)
    if function is None:
        return []
    arguments = {a.arg for a in function.args.args + function.args.kwonlyargs} - {"self", "ctx"}
    lines = textwrap.dedent(inspect.getsource(fn)).splitlines()
    found = []
    for loop in (node for node in ast.walk(function) if isinstance(node, (ast.For, ast.While))):
        for node in (n for statement in loop.body for n in ast.walk(statement)):
            if isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name):
                names, reads = [node.target.id], True
            elif isinstance(node, ast.Assign):
                names = [t.id for t in node.targets if isinstance(t, ast.Name)]
                reads = any(isinstance(n, ast.Name) and n.id in names for n in ast.walk(node.value))
            else:
                continue
            for name in names:
                if name in arguments and reads and (name, lines[node.lineno - 1].strip()) not in found:
                    found.append((name, lines[node.lineno - 1].strip()))
    return found


# ---------------------------------------------------------------------------------------------- catalogue
@dataclass
class Mistake:
    """A known wrong answer: what it computes (a tensor) and the hint to give when the learner's matches it."""

    output: torch.Tensor
    hint: str


# ---------------------------------------------------------------------------------------------- modules
@dataclass
class ModuleRun:
    """One forward and backward of a module: output, gradients of the input and of each parameter, buffers."""

    output: torch.Tensor
    input_grad: torch.Tensor | None
    parameter_grads: dict[str, torch.Tensor | None] = field(default_factory=dict)
    buffers: dict[str, torch.Tensor] = field(default_factory=dict)


def run_module(exercise: Exercise, module: torch.nn.Module, x: torch.Tensor, grad_out: torch.Tensor | None = None,
               *, case: Case | None = None, **kwargs) -> ModuleRun:
    """Forward ``x`` (a fresh leaf) through ``module``, backward ``grad_out`` (seeded if None); collect everything."""
    x = x.detach().clone().requires_grad_()
    for parameter in module.parameters():
        parameter.grad = None
    state = module_state(module)  # for reading a NaN/inf of the backward pass at its origin
    out = exercise.call(module, x, what=f"{type(module).__name__}.forward", case=case, **kwargs)
    if not isinstance(out, torch.Tensor):
        raise exercise.fail(f"forward returned a {type(out).__name__}, not a tensor. Did you forget to return it?",
                            case=case)
    if not out.requires_grad:
        raise exercise.fail(f"the output of your {type(module).__name__} is not connected to the autograd graph: "
                            f"compute it from x and the parameters, without torch.no_grad() or .detach().",
                            case=case)
    if grad_out is None:
        grad_out = exercise.randn(*out.shape, key=("grad_out", case.label if case else ""), dtype=out.dtype)
    if out.shape == grad_out.shape:
        exercise.call(out.backward, grad_out, what=f"{type(module).__name__} (its backward pass)", case=case)
        _trace_backward(exercise, module, x, grad_out, out, state, case, kwargs)
    return ModuleRun(out.detach(), x.grad,
                     {name: p.grad for name, p in module.named_parameters()},
                     {name: b.detach().clone() for name, b in module.named_buffers()})


def _trace_backward(exercise: Exercise, module, x, grad_out, out, state, case, kwargs) -> None:
    """A backward pass that made NaN/inf in a gradient from a finite output: run forward and backward once more
    (on a copy of the module, from its state before the forward) under the watch of :mod:`utils.checks.origins`,
    so that the gradient's comparison can say where."""
    grads = [x.grad, *(p.grad for p in module.parameters())]
    if not torch.isfinite(out).all() or all(g is None or torch.isfinite(g).all() for g in grads):
        return
    both = _ForwardBackward(module, grad_out, kwargs)
    again = x.detach().clone().requires_grad_()
    births = trace_nonfinite(both, (again,), {}, {f"module.{name}": t for name, t in (state or {}).items()})
    if births:
        _BIRTHS[(exercise.id, case.label if case else None)] = births


class _ForwardBackward(torch.nn.Module):
    """One forward and backward of ``module`` as one call (a module, so the trace runs it on a copy)."""

    def __init__(self, module: torch.nn.Module, grad_out: torch.Tensor, kwargs: dict):
        super().__init__()
        self.module, self.grad_out, self.kwargs = module, grad_out, kwargs

    def forward(self, x):
        self.module(x, **self.kwargs).backward(self.grad_out)


def copy_parameters(source: torch.nn.Module, target: torch.nn.Module, exercise: Exercise,
                    names: dict[str, str] | None = None) -> None:
    """Copy ``source``'s parameters into ``target``'s (``names`` maps target name → source name where they differ).

    A missing parameter or a wrong shape is the learner's mistake, reported with the shape expected.
    """
    names = names or {}
    theirs = dict(target.named_parameters())
    with torch.no_grad():
        for name, parameter in source.named_parameters():
            mine = names.get(name, name)
            if mine not in theirs:
                raise exercise.fail(f"your module has no parameter `{mine}` (expected shape "
                                    f"{tuple(parameter.shape)}): create it in __init__ with nn.Parameter, or keep "
                                    f"the given __init__.")
            if theirs[mine].shape != parameter.shape:
                raise exercise.fail(f"`{mine}` has shape {tuple(theirs[mine].shape)} but should have "
                                    f"{tuple(parameter.shape)}.{shape_hint(theirs[mine].shape, parameter.shape)}")
            theirs[mine].copy_(parameter)


def compare_runs(exercise: Exercise, got: ModuleRun, expected: ModuleRun, *, case: Case, equation: str,
                 output_probes=(), output_mistakes=(), buffers: Sequence[str] = (), grad_equation: str | None = None,
                 axes: Sequence[str] | None = None, grad_tolerance: tuple[float, float] | None = None) -> None:
    """Compare a learner's module run with a library module's: output, input gradient, parameter gradients and
    the named buffers, in that order (the first difference is the message)."""
    exercise.compare(got.output, expected.output, case=case, equation=equation, probes=output_probes,
                     mistakes=output_mistakes, axes=axes)
    atol, rtol = grad_tolerance or tuple(10 * t for t in case.tolerance)
    where = grad_equation or f"the backward of {equation} (autograd computes it from your forward)"
    if expected.input_grad is not None:
        exercise.compare(got.input_grad, expected.input_grad, case=case, name="dL/dx", equation=where,
                         atol=atol, rtol=rtol, axes=axes)
    for name, expected_grad in expected.parameter_grads.items():
        if expected_grad is None:
            continue
        if name in got.parameter_grads and got.parameter_grads[name] is None:  # a module has nothing to "return"
            raise exercise.fail(f"your parameter `{name}` received no gradient (its .grad is None after backward): "
                                f"your forward uses it outside the autograd graph — through `.data`, `.detach()`, "
                                f"`.item()` or under torch.no_grad() — or not at all. Use `self.{name}` itself.",
                                case=case)
        exercise.compare(got.parameter_grads.get(name), expected_grad, case=case, name=f"dL/d{name}",
                         equation=where, atol=atol, rtol=rtol)
    for name in buffers:
        if name not in got.buffers:
            raise exercise.fail(f"your module has no buffer `{name}`: register it with self.register_buffer (or "
                                f"keep the given __init__).", case=case)
        exercise.compare(got.buffers[name], expected.buffers[name], case=case, name=name, equation=equation)


# ---------------------------------------------------------------------------------------------- compatibility
def diagnose(got, expected: torch.Tensor, *, exercise: str, case: str, mistakes=(), atol: float = 1e-5,
             rtol: float = 1e-4, name: str = "output", otherwise: str = "", equation: str = "the chapter's equation",
             probes=(), factors=None, axes=None) -> None:
    """:meth:`Exercise.compare` for code that has an exercise id and a case label as strings."""
    dtype = expected.dtype if isinstance(expected, torch.Tensor) else torch.float32
    Exercise(exercise, name).compare(got, expected, case=Case(case, dtype), equation=equation, name=name,
                                     probes=probes, mistakes=mistakes, factors=factors, axes=axes, atol=atol,
                                     rtol=rtol, otherwise=otherwise)


def passed(exercise: str, summary: str) -> None:
    """The one line a check prints on success."""
    print(conventions.success_line(exercise, summary))
