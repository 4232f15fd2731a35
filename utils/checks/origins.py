"""Where a NaN or an inf was born in the learner's code.

A NaN in an answer says nothing of its cause; the cause is one operation of the learner's code whose inputs held no
NaN (or no inf) and whose output does: a division by a tensor that is 0 (``1 / num_batches_tracked`` before the
increment), 0 · (−∞) (a float mask times −inf), the log of 0, e^x that overflows, the root of a negative number,
inf/inf, inf − inf. :func:`trace_nonfinite` runs the learner's call once more, on copies of its inputs, under a
:class:`~torch.overrides.TorchFunctionMode` that watches every torch operation for such a birth, and
:func:`origin_reading` says the first one — the operation, the learner's line and the operand that was 0, infinite
or negative — with the names the learner's variables give the operands (and the chapter's symbols for them, from
the case's quantities).

Only an answer that holds NaN/inf pays for this: the call runs twice.
"""
from __future__ import annotations

import contextlib
import io
import linecache
import math
import re
import sys
import warnings
from dataclasses import dataclass
from typing import Callable

import torch
from torch.overrides import TorchFunctionMode

from utils.checks.operands import (
    _AUTOGRAD_ENTRIES,
    LIBRARY_FILE,
    _autograd_without_redispatch,
    _copy_callable,
    _copy_inputs,
    _storage,
)

_MAX_OPS = 20_000  # a learner's loop that never ends is not traced for ever


@dataclass
class Birth:
    """One operation that made NaN (or inf) from inputs that held none."""

    op: str
    kind: str  # "NaN" or "inf"
    operands: list  # tensors (cloned) and numbers, in the operation's order (b.__rtruediv__(a) as a / b)
    names: list  # the learner's name for each operand, or None
    line_number: int | None = None
    line: str = ""
    output: torch.Tensor | None = None


class _Watch(TorchFunctionMode):
    """Records every operation that makes NaN or inf from inputs without them, with the learner's names."""

    def __init__(self):
        super().__init__()
        self.births: list[Birth] = []
        self.count = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        self.count += 1
        if func in _AUTOGRAD_ENTRIES:
            with _autograd_without_redispatch(), self:
                return func(*args, **kwargs)
        if self.count > _MAX_OPS or len(self.births) > 8:
            return func(*args, **kwargs)
        values = _values(args, kwargs)
        nan_in, inf_in = _has(values, torch.isnan), _has(values, torch.isinf)
        kept = [v.detach().clone() if isinstance(v, torch.Tensor) else v for v in values]
        result = func(*args, **kwargs)
        try:
            outputs = _values((result,), {})
            nan_out, inf_out = _has(outputs, torch.isnan), _has(outputs, torch.isinf)
            kind = "NaN" if nan_out and not nan_in else "inf" if inf_out and not (inf_in or nan_in) else None
            if kind:
                self.births.append(_birth(func, kind, values, kept, outputs))
        except Exception:  # noqa: BLE001 - watching must never change what the learner's code does
            pass
        return result


def _values(args, kwargs) -> list:
    found = []
    for value in [*args, *kwargs.values()]:
        if isinstance(value, (torch.Tensor, float, int)) and not isinstance(value, bool):
            found.append(value)
        elif isinstance(value, (list, tuple)):
            found += [item for item in value if isinstance(item, torch.Tensor)]
    return found


def _has(values, test) -> bool:
    for value in values:
        if isinstance(value, torch.Tensor):
            if value.is_floating_point() or value.is_complex():
                with contextlib.suppress(RuntimeError, NotImplementedError):
                    if bool(test(value.detach()).any()):
                        return True
        elif isinstance(value, float) and bool(test(torch.tensor(value))):
            return True
    return False


def _birth(func, kind, values, kept, outputs) -> Birth:
    op = getattr(func, "__name__", str(func)).strip("_")
    names = _learner_names()
    labels = [_name_of(value, names) if isinstance(value, torch.Tensor) else None for value in values]
    if op.startswith("r") and op[1:] in ("sub", "truediv", "div", "pow", "mul", "floordiv"):  # b.__rtruediv__(a)
        op, kept, labels = op[1:], kept[::-1], labels[::-1]
    number, line = _learner_line()
    output = next((o for o in outputs if isinstance(o, torch.Tensor)), None)
    return Birth(op, kind, kept, labels, number, line, output.detach().clone() if output is not None else None)


def _learner_frame():
    frame = sys._getframe(2)
    while frame is not None and LIBRARY_FILE.search(frame.f_code.co_filename):
        frame = frame.f_back
    return frame


def _learner_names() -> dict:
    frame = _learner_frame()
    if frame is None:
        return {}
    names = {name: value for name, value in frame.f_locals.items() if isinstance(value, torch.Tensor)}
    owner = frame.f_locals.get("self")
    if isinstance(owner, torch.nn.Module):
        for name, tensor in [*owner.named_parameters(recurse=False), *owner.named_buffers(recurse=False)]:
            names[f"self.{name}"] = tensor
    return names


def _learner_line() -> tuple[int | None, str]:
    frame = _learner_frame()
    if frame is None:
        return None, ""
    return frame.f_lineno, linecache.getline(frame.f_code.co_filename, frame.f_lineno).strip()


def _name_of(tensor: torch.Tensor, names: dict) -> str | None:
    for name, value in names.items():
        if value is tensor:
            return name
    storage = _storage(tensor)
    for name, value in names.items():
        if storage is not None and _storage(value) == storage and value.shape == tensor.shape:
            return name
    return None


# ---------------------------------------------------------------------------------------------- re-running
def module_state(fn: Callable) -> dict | None:
    """The parameters and buffers of the module ``fn`` is (or is a method of), cloned: a second run starts from
    them (a forward that divides by ``num_batches_tracked`` before incrementing it does so on the first call only)."""
    owner = fn if isinstance(fn, torch.nn.Module) else getattr(fn, "__self__", None)
    if not isinstance(owner, torch.nn.Module):
        return None
    with torch.no_grad():
        return {name: t.detach().clone() for name, t in [*owner.named_parameters(), *owner.named_buffers()]}


def holds_nonfinite(result, fn: Callable, state: dict | None = None) -> bool:
    """Whether the call's result, or a parameter or buffer of its module that was finite before the call (``state``,
    see :func:`module_state`; a mask buffer of −inf is no news), holds NaN/inf."""
    values = _values((result,), {})
    if isinstance(result, (list, tuple)):
        values += [item for item in result if isinstance(item, (list, tuple)) for item in item]
    owner = fn if isinstance(fn, torch.nn.Module) else getattr(fn, "__self__", None)
    if isinstance(owner, torch.nn.Module) and state is not None:
        values += [t for name, t in [*owner.named_parameters(), *owner.named_buffers()]
                   if name in state and not _has([state[name]], lambda t: ~torch.isfinite(t))]
    return _has(values, lambda t: ~torch.isfinite(t))


def trace_nonfinite(fn: Callable, args: tuple, kwargs: dict, state: dict | None = None) -> list[Birth]:
    """Run ``fn(*args, **kwargs)`` again on copies (its module reset to ``state``) and return the operations that
    made NaN or inf from inputs without them, in order; [] when the second run cannot be made."""
    try:
        fn, args, kwargs = _copy_callable(fn), _copy_inputs(args), _copy_inputs(kwargs)
        owner = fn if isinstance(fn, torch.nn.Module) else getattr(fn, "__self__", None)
        if state and isinstance(owner, torch.nn.Module):
            with torch.no_grad():
                for name, tensor in [*owner.named_parameters(), *owner.named_buffers()]:
                    if name in state and state[name].shape == tensor.shape:
                        tensor.copy_(state[name])
    except Exception:  # noqa: BLE001 - a module that cannot be copied: no second run
        return []
    watch = _Watch()
    rng = torch.get_rng_state()
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with watch:
                fn(*args, **kwargs)
    except Exception:  # noqa: BLE001 - a second run that raises still says what it saw before
        pass
    finally:
        torch.set_rng_state(rng)
    return watch.births


# ---------------------------------------------------------------------------------------------- reading
def first_birth(births: list[Birth], kind: str) -> tuple[Birth | None, Birth | None]:
    """The first birth of ``kind`` ("NaN" or "inf") and, for a NaN made from an inf, the inf's own birth before it."""
    found = next((b for b in births if b.kind == kind), None)
    if found is None and kind == "NaN":
        found = next((b for b in births if b.kind == "inf"), None)
    if found is None:
        return None, None
    earlier = None
    if found.kind == "NaN" and _has([v for v in found.operands], torch.isinf):
        earlier = next((b for b in births if b.kind == "inf" and births.index(b) < births.index(found)), None)
    return found, earlier


def origin_reading(births: list[Birth], kind: str, quantities: dict | None = None, *,
                   generic: bool = True) -> str | None:
    """The first operation that made NaN (``kind`` "NaN") or inf, said with its operands; None if none was seen, or
    (``generic`` False) when the operation is none that this module can read (then only its line is known)."""
    found, earlier = first_birth(births, kind)
    if found is None:
        return None
    text = _say(found, quantities or {})
    if text is None or (not generic and text.endswith(_GENERIC_END)):
        return None
    if earlier is not None and earlier.op in ("exp", "exp2", "pow") and found.op in ("truediv", "div", "divide"):
        operand = _label(earlier, 0, quantities or {}, "its argument")
        return (f"NaN is made{_where(found)} by inf / inf: e^x overflowed to inf on both sides ({earlier.op}() of "
                f"{operand} reaches {_max(earlier.operands[0]):.4g}, and e^x exceeds {_dtype_name(earlier.output)} "
                f"beyond x ≈ {_overflow(earlier.output):.4g}{_where(earlier) if earlier.line != found.line else ''}). "
                f"The ratio is finite on paper: compute e^a / e^b as one exponential, e^(a − b).")
    if earlier is not None:
        before = _say(earlier, quantities or {})
        if before:
            text = f"{before} Then: {text}"
    return text


def _where(birth: Birth) -> str:
    if birth.line_number is None:
        return ""
    return f" at line {birth.line_number} of your code (`{birth.line}`)" if birth.line else \
        f" at line {birth.line_number} of your code"


def _label(birth: Birth, index: int, quantities: dict, fallback: str, describe: bool = True) -> str:
    name = birth.names[index] if index < len(birth.names) else None
    if name is None:
        value = birth.operands[index] if index < len(birth.operands) else None
        if isinstance(value, (int, float)):
            return f"{value:g}"
        if describe and isinstance(value, torch.Tensor) and value.numel() > 1:  # a temporary: say what it holds
            zeros, infinite = int((value == 0).sum()), int(torch.isinf(value).sum()) if value.is_floating_point() else 0
            if zeros:
                return f"{fallback} (0 at {zeros} of its {value.numel()} entries)"
            if infinite:
                return f"{fallback} (±∞ at {infinite} of its {value.numel()} entries)"
        return fallback
    symbol = quantities.get(name.removeprefix("self."), quantities.get(name))
    return f"`{name}` (= {symbol[0]})" if symbol else f"`{name}`"


def _zero_text(value) -> str:
    if isinstance(value, torch.Tensor):
        if value.numel() == 1:
            return f"is {value.item():g}"
        zeros = int((value == 0).sum())
        return f"is 0 at {zeros} of its {value.numel()} entries"
    return f"is {value:g}"


def _is(value, test) -> bool:
    if isinstance(value, torch.Tensor):
        return bool(test(value.detach().double() if not value.is_complex() else value).any())
    return bool(test(torch.tensor(float(value))))


def _say(birth: Birth, quantities: dict) -> str | None:  # noqa: C901 - one branch per kind of operation
    op, values, where = birth.op, birth.operands, _where(birth)
    first = _label(birth, 0, quantities, "one operand")
    second = _label(birth, 1, quantities, "the other operand")
    zero = lambda t: t == 0  # noqa: E731
    if op in ("truediv", "div", "divide", "floordiv", "floor_divide", "true_divide") and len(values) >= 2:
        a, b = values[0], values[1]
        if _is(a, torch.isinf) and _is(b, torch.isinf):
            return (f"{birth.kind} is made{where} by inf / inf: {first} and {second} both overflowed to inf, "
                    f"so their ratio is NaN though the ratio itself is finite on paper. Compute the ratio without "
                    f"its infinite parts (e^a / e^b as e^(a − b)).")
        if _is(b, zero):
            both = " and so is the numerator (0/0 = NaN)" if _is(a, zero) else ""
            second = _label(birth, 1, quantities, "the divisor", describe=False)
            second = second if second == "the divisor" else f"the divisor {second}"
            return (f"{birth.kind} is made{where} by a division by zero: {second} "
                    f"{_zero_text(b)}{both}. Make sure what you divide by cannot be 0 there (its value at this step, "
                    f"an update made too late, a + ε left out).")
    if op == "reciprocal" and values and _is(values[0], zero):
        return (f"inf is made{where} by 1 / {first}, which {_zero_text(values[0])}. Make sure it cannot be 0 "
                f"there.")
    if op in ("mul", "multiply", "matmul", "bmm", "mm", "einsum", "mv") and len(values) >= 2:
        a, b = values[0], values[1]
        zero_side = (first, second) if _is(a, zero) and _is(b, torch.isinf) else \
            (second, first) if _is(b, zero) and _is(a, torch.isinf) else None
        literal = any(isinstance(v, float) and math.isinf(v) for v in values[:2])
        if zero_side and literal:  # −inf written into the code, times a tensor of 0s and 1s: a mask made additive
            return (f"NaN is made{where} by 0 · (−∞): {zero_side[0]} is 0 where {zero_side[1]} is infinite, and "
                    f"0 × ∞ is NaN, not 0 (a float mask times −inf turns every allowed entry into NaN). To hide "
                    f"entries, use masked_fill(mask, float('-inf')) or torch.where, never a product with −∞.")
        if zero_side:
            return (f"NaN is made{where} by 0 · ∞: {zero_side[0]} is 0 where {zero_side[1]} is infinite, and "
                    f"0 × ∞ is NaN, not 0.")
    if op in ("add", "sub", "subtract") and len(values) >= 2 and birth.kind == "NaN":
        return (f"NaN is made{where} by ∞ − ∞ ({first} and {second} are infinite with opposite signs for this "
                f"operation).")
    if op in ("log", "log2", "log10", "log1p", "xlogy") and values:
        x = values[0]
        shift = 1.0 if op == "log1p" else 0.0
        if birth.kind == "NaN" and _is(x, lambda t: t + shift < 0):
            return (f"NaN is made{where} by the log of a negative number: {first} is below {-shift:g} at "
                    f"{_count(x, lambda t: t + shift < 0)} entries. Check what is inside the log (its parentheses, "
                    f"a sign, a term subtracted that should be added).")
        if _is(x, lambda t: t + shift == 0):
            return (f"−∞ is made{where} by the log of 0: {first} is 0 at {_count(x, lambda t: t + shift == 0)} "
                    f"entries. Check what is inside the log (its parentheses, a factor that can be 0, an ε left "
                    f"out).")
    if op in ("sqrt", "rsqrt", "pow", "float_power") and values:
        x = values[0]
        if birth.kind == "NaN" and _is(x, lambda t: t < 0):
            return (f"NaN is made{where} by the root (or a fractional power) of a negative number: {first} is "
                    f"negative at {_count(x, lambda t: t < 0)} entries (down to {_min(x):.3g}). A variance or a "
                    f"1 − ᾱ under a root cannot be negative: check the expression under it.")
        if op == "rsqrt" and _is(x, zero):
            return f"inf is made{where} by 1/√0: {first} is 0 at {_count(x, zero)} entries."
    if op in ("exp", "exp2", "expm1", "pow", "float_power", "cosh", "sinh") and birth.kind == "inf" and values:
        x = values[0]
        first = _label(birth, 0, quantities, "its argument", describe=False)
        first = first if first == "its argument" else f"its argument {first}"
        return (f"inf is made{where} by {op}() overflowing: {first} reaches {_max(x):.4g}, and e^x is "
                f"above the largest {_dtype_name(birth.output)} beyond x ≈ {_overflow(birth.output):.4g}. Subtract "
                f"the maximum before exponentiating (e^(s − m)), so every exponent is ≤ 0.")
    if op in ("softmax", "log_softmax", "_softmax") and birth.kind == "NaN":
        return (f"NaN is made{where} by a softmax over a row whose scores are all −∞ (e^−∞ sums to 0, then 0/0): "
                f"some row has no key left to attend to.")
    if op in ("pow",) and len(values) >= 2 and birth.kind == "inf":
        return f"inf is made{where} by a power of {first} that overflows."
    kind = "NaN" if birth.kind == "NaN" else "inf"
    return f"{kind} first appears{where}, in {op}() of inputs that hold no {kind}{_GENERIC_END}"


_GENERIC_END = " (an operation whose operands could not be read)."
# readings that name the slip itself, whatever the exercise: a chapter's own NaN message gives way to them
_DECISIVE = re.compile(r" by (0 · \(−∞\): .{0,200}a float mask|∞ − ∞|the log of|the root|1/√0)")


def decisive(reading: str | None) -> bool:
    """Whether an origin reading names the slip (0 · (−∞), inf/inf, the log of 0, a named divisor that is 0, …)
    rather than only where an overflow or a 0/0 happened, which the exercise may explain better."""
    return bool(reading and _DECISIVE.search(reading.split(" Then: ")[0]))


def _count(x, test) -> int:
    if isinstance(x, torch.Tensor):
        return int(test(x.detach().double()).sum())
    return int(bool(test(torch.tensor(float(x)))))


def _min(x) -> float:
    return float(x.detach().double().min()) if isinstance(x, torch.Tensor) else float(x)


def _max(x) -> float:
    return float(x.detach().double().max()) if isinstance(x, torch.Tensor) else float(x)


def _dtype_name(output) -> str:
    return str(output.dtype).removeprefix("torch.") if isinstance(output, torch.Tensor) else "float"


def _overflow(output) -> float:
    dtype = output.dtype if isinstance(output, torch.Tensor) and output.is_floating_point() else torch.float32
    return math.log(torch.finfo(dtype).max)
