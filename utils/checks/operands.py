"""Reading a shape error from the shapes of the operation that raised it.

PyTorch's message for a failed broadcast names two sizes and an axis ("The size of tensor a (3) must match the size
of tensor b (5) at non-singleton dimension 3"); the mistake is only visible in the *whole* shapes of the two
operands. So when the learner's code raises such an error, :func:`failing_operation` runs their call once more, on
copies of its inputs, under a :class:`~torch.overrides.TorchFunctionMode` that records the torch operation that
raised, with its tensor operands and the names the learner's own variables give them. :func:`read_operation` then
says what the shapes mean, from the shapes alone, in the case's named sizes:

- a tensor whose axes are a subset of the other's, lined up from the last axis instead of on its own axes
  ("a 1-D tensor lines up with the LAST axis (W), not with C — view it as (1, C, 1, 1)"), and a reduction that
  dropped its axis ("(N, C, H, W) with W reduced away: keepdim=True");
- a size present on two axes where the other tensor has it on one (two layouts of one vector crossed into an
  outer product), a size split over two axes of the other (a grouped view not reshaped back), axes permuted;
- a matrix product whose inner sizes do not meet (which operand lacks a transpose), or whose batch axes were
  reversed by ``.T``.

Only the failure path pays for this: a call that raises runs twice.
"""
from __future__ import annotations

import contextlib
import copy
import inspect
import io
import itertools
import math
import re
import sys
import warnings
from dataclasses import dataclass
from typing import Callable

import torch
import torch._tensor
import torch.autograd
from torch.overrides import TorchFunctionMode

# Frames from these files are the course's or a library's, not the learner's.
LIBRARY_FILE = re.compile(r"[/\\](torch|einops|utils[/\\]checks|nbclient|IPython|ipykernel|site-packages)[/\\]")

# Errors whose reading needs the operands' shapes
_SHAPE_ERRORS = re.compile(r"must match the size of tensor b|cannot be multiplied|batch2 tensor|Expected size for "
                           r"first two dimensions|size mismatch|doesn't match the broadcast shape")


@dataclass(frozen=True)
class Operand:
    """A tensor operand of the operation that raised: its shape and, when one of the learner's variables holds it
    (or a view of it), that variable's name ("scale", "self.running_mean")."""

    shape: tuple[int, ...]
    name: str | None = None
    view: bool = False  # the variable holds the tensor this operand is a view of (k for k.T)
    origin: bool = False  # not the variable itself, but a tensor of its shape (made from it, most likely)


@dataclass(frozen=True)
class Operation:
    """The torch operation that raised ("mul", "matmul", "cat", …) and its tensor operands, in order."""

    op: str
    operands: tuple[Operand, ...]
    variables: tuple[tuple[str, tuple[int, ...]], ...] = ()  # the learner's tensors where it raised: (name, shape)


# ---------------------------------------------------------------------------------------------- recording
class _Recorder(TorchFunctionMode):
    """Records every torch operation that raises (innermost first), with its tensor operands and the learner's
    names for them. Autograd's entry points are run with the mode still on, so a custom backward is seen too."""

    def __init__(self):
        super().__init__()
        self.failures: list[tuple[Operation, BaseException]] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        try:
            if func in _AUTOGRAD_ENTRIES:
                with _autograd_without_redispatch(), self:
                    return func(*args, **kwargs)
            return func(*args, **kwargs)
        except Exception as error:
            self.failures.append((_operation(func, args, kwargs, _learner_locals()), error))
            raise  # the learner's error goes on as it would have


_AUTOGRAD_ENTRIES = {torch.autograd.grad, torch.autograd.backward, torch.Tensor.backward}


@contextlib.contextmanager
def _autograd_without_redispatch():
    """``torch.autograd.grad`` and ``Tensor.backward`` hand themselves to an active mode; with the mode re-entered
    that would recurse forever. Their check is switched off meanwhile, so they run the engine, and the learner's
    backward runs under the mode."""
    saved = torch.autograd.has_torch_function, torch._tensor.has_torch_function_unary
    torch.autograd.has_torch_function = lambda *_: False
    torch._tensor.has_torch_function_unary = lambda *_: False
    try:
        yield
    finally:
        torch.autograd.has_torch_function, torch._tensor.has_torch_function_unary = saved


def _learner_locals() -> dict:
    """The local variables of the innermost frame of the learner's code on the stack (the one that called the
    operation), with ``self``'s tensors as "self.name"; {} when there is none."""
    frame = sys._getframe(1)
    while frame is not None and LIBRARY_FILE.search(frame.f_code.co_filename):
        frame = frame.f_back
    if frame is None:
        return {}
    names = dict(frame.f_locals)
    owner = names.get("self")
    if isinstance(owner, torch.nn.Module):
        for name, tensor in itertools.chain(owner.named_parameters(recurse=False), owner.named_buffers(recurse=False)):
            names[f"self.{name}"] = tensor
    if owner is not None and hasattr(owner, "__dict__"):
        names.update({f"self.{name}": value for name, value in vars(owner).items() if isinstance(value, torch.Tensor)})
    return {name: value for name, value in names.items() if isinstance(value, torch.Tensor)}


def _tensors(args, kwargs) -> list[torch.Tensor]:
    found = []
    for value in [*args, *kwargs.values()]:
        if isinstance(value, torch.Tensor):
            found.append(value)
        elif isinstance(value, (list, tuple)):
            found += [item for item in value if isinstance(item, torch.Tensor)]
    return found


def _operation(func, args, kwargs, names: dict) -> Operation:
    op = getattr(func, "__name__", str(func)).strip("_")
    tensors = _tensors(args, kwargs)
    if op.startswith("r") and op[1:] in ("matmul", "sub", "truediv", "div", "pow"):  # b.__rmatmul__(a) is a @ b
        op, tensors = op[1:], tensors[::-1]
    return Operation(op, tuple(_operand(tensor, names) for tensor in tensors),
                     tuple((name, tuple(value.shape)) for name, value in names.items()))


def _operand(tensor: torch.Tensor, names: dict) -> Operand:
    shape = tuple(tensor.shape)
    for name, value in names.items():
        if value is tensor:
            return Operand(shape, name)
    storage = _storage(tensor)
    sharing = [name for name, value in names.items() if storage is not None and _storage(value) == storage]
    if sharing:  # a view of one of their variables (k.T, w[None, :, None, None])
        return Operand(shape, sharing[0], view=True)
    return Operand(shape)


def _storage(tensor: torch.Tensor) -> int | None:
    """Where the tensor's memory starts (views share it); None for an empty tensor or one without plain storage."""
    try:
        return tensor.untyped_storage().data_ptr() if tensor.numel() else None
    except (RuntimeError, NotImplementedError):  # sparse, nested, …
        return None


# ---------------------------------------------------------------------------------------------- re-running
def failing_operation(fn: Callable, args: tuple, kwargs: dict, error: BaseException) -> Operation | None:
    """The torch operation whose failure raised ``error`` in ``fn(*args, **kwargs)``, found by running the call
    again on copies of its inputs (and of a module it belongs to) under a recorder; None when the error is not
    about shapes, the copies cannot be made, or the second run does not raise the same error."""
    if not _SHAPE_ERRORS.search(str(error)):
        return None
    try:
        fn, args, kwargs = _copy_callable(fn), _copy_inputs(args), _copy_inputs(kwargs)
    except Exception:  # noqa: BLE001 - a module that cannot be copied: no second run
        return None
    recorder = _Recorder()
    rng = torch.get_rng_state()
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with recorder:
                fn(*args, **kwargs)
    except Exception as again:  # noqa: BLE001 - the learner's error, raised a second time
        return _matching(recorder.failures, again, error)
    finally:
        torch.set_rng_state(rng)
    return None


def _matching(failures, again: BaseException, error: BaseException) -> Operation | None:
    if type(again) is not type(error) or str(again) != str(error):
        return None  # the second run went differently (randomness, state): its shapes would not be the first's
    for operation, raised in failures:
        if raised is again or (type(raised) is type(again) and str(raised) == str(again)):
            return operation
    return None


def _copy_callable(fn: Callable) -> Callable:
    """A module (or a module's bound method) is deep-copied, so a second forward leaves its buffers alone."""
    if isinstance(fn, torch.nn.Module):
        return copy.deepcopy(fn)
    if inspect.ismethod(fn) and isinstance(fn.__self__, torch.nn.Module):
        return getattr(copy.deepcopy(fn.__self__), fn.__name__)
    return fn


def _copy_inputs(value):
    """Fresh copies of tensor inputs; a tensor that requires grad is passed as it is, since the call may need its
    graph (``out.backward(g)``, ``torch.autograd.grad(out, leaves, g)``), and autograd forbids changing it in place."""
    if isinstance(value, torch.Tensor):
        return value if value.requires_grad else value.detach().clone()
    if isinstance(value, dict):
        return {key: _copy_inputs(item) for key, item in value.items()}
    if type(value) in (list, tuple):
        return type(value)(_copy_inputs(item) for item in value)
    return value


# ---------------------------------------------------------------------------------------------- the line's values
def learner_entry(error: BaseException):
    """The innermost traceback entry (frame and line number) in the learner's code, or None."""
    entry, found = error.__traceback__, None
    while entry is not None:
        if not LIBRARY_FILE.search(entry.tb_frame.f_code.co_filename):
            found = entry
        entry = entry.tb_next
    return found


_DOTTED = re.compile(r"(?<![\w.])([A-Za-z_]\w*(?:\s*\.\s*[A-Za-z_]\w*)*)(\s*\()?")
_STRING = re.compile(r"(['\"]).*?\1")
_MISSING = object()


def line_values(error: BaseException, line: str) -> dict[str, object]:
    """What the names in ``line`` (``factor``, ``self.momentum``, ``self.num_batches_tracked``) held in the learner's
    frame when it raised: numbers, None, tensors and shapes, by the name as written. A name that is called
    (``x.mean(``) stands for the object it is called on (``x``)."""
    entry = learner_entry(error)
    if entry is None or not line:
        return {}
    frame = entry.tb_frame
    found = {}
    for match in _DOTTED.finditer(_STRING.sub("''", line)):
        parts = [part.strip() for part in match.group(1).split(".")]
        if match.group(2):  # a call: its object, not the method
            parts = parts[:-1]
        value = _resolve(parts, frame)
        if parts and value is not _MISSING and _readable(value):
            found[".".join(parts)] = value
    return found


def _resolve(parts, frame):
    if not parts or parts[0] in ("True", "False", "None"):
        return _MISSING
    value = frame.f_locals.get(parts[0], frame.f_globals.get(parts[0], _MISSING))
    for part in parts[1:]:
        if value is _MISSING or inspect.ismodule(value):
            return _MISSING
        try:
            value = getattr(value, part)
        except Exception:  # noqa: BLE001 - a property that raises: the name says nothing
            return _MISSING
    return value


def _readable(value) -> bool:
    return value is None or isinstance(value, (bool, int, float, torch.Tensor, torch.Size))


# ---------------------------------------------------------------------------------------------- naming shapes
def axis_names(shape, sizes: dict[str, int] | None) -> list[str] | None:
    """A name for each axis of ``shape`` from the case's named sizes, in the order the case lists them where sizes
    repeat ((4, 3, 5, 5) with N=4, C=3, H=W=5 → N, C, H, W); None when no size is named."""
    if not sizes:
        return None
    order = {name: i for i, name in enumerate(sizes)}
    options = [[name for name, value in sizes.items() if value == size] if size != 1 else [] for size in shape]
    if not any(options):
        return None
    choices = [names or [None] for names in options]
    if math.prod(len(c) for c in choices) > 4096:
        choices = [c[:1] for c in choices]

    def score(names):
        named = [order[n] for n in names if n is not None]
        return len(set(named)), sum(a < b for a, b in zip(named, named[1:]))
    best = max(itertools.product(*choices), key=score)
    return [name if name is not None else str(size) for name, size in zip(best, shape)]


def show_shape(shape, sizes: dict[str, int] | None) -> str:
    """"(4, 3, 5, 5) = (N, C, H, W)", or "(4, 3, 5, 5)" when no size is named."""
    text = tuple_text(shape)
    names = axis_names(shape, sizes)
    return f"{text} = {tuple_text(names)}" if names else text


def tuple_text(items) -> str:
    items = [str(item) for item in items]
    return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"


def _name_of(size: int, sizes: dict[str, int] | None) -> str:
    names = [name for name, value in (sizes or {}).items() if value == size]
    return f"{names[0]} = {size}" if names else f"{size}"


def _describe(operand: Operand, sizes) -> str:
    """"your `scale` of shape (3,) = (C,)", "a view of your `k` of shape …", "a tensor of shape …"."""
    shape = show_shape(operand.shape, sizes)
    if operand.name and operand.origin:
        return f"a tensor of shape {shape}, the shape of your `{operand.name}`,"
    if operand.name:
        return f"{'a view of ' if operand.view else ''}your `{operand.name}` of shape {shape}"
    return f"a tensor of shape {shape}"


def _Describe(operand: Operand, sizes) -> str:  # noqa: N802 - the same, to start a sentence
    text = _describe(operand, sizes)
    return text[0].upper() + text[1:]


def _who(operand: Operand) -> str:
    return f"`{operand.name}`" if operand.name and not (operand.view or operand.origin) else "it"


# ---------------------------------------------------------------------------------------------- reading
_WRITES = ("setitem", "index_put", "index_put_", "copy_", "masked_scatter_")  # a target region, not the operand


def read_operation(operation: Operation | None, sizes: dict[str, int] | None = None) -> str | None:
    """What the operands' shapes say about the mistake, as one or two sentences; None when they say nothing
    unambiguous."""
    if operation is None or len(operation.operands) < 2 or operation.op in _WRITES:
        return None
    if operation.op in ("matmul", "mm", "bmm") and len(operation.operands) == 2:
        return read_matmul(*operation.operands, sizes=sizes)
    if operation.op in ("cat", "concat", "concatenate", "stack", "hstack", "vstack"):
        return None
    pair = _first_clash(operation.operands)
    if pair and operation.op in ("mul", "multiply"):
        table = _pairs_table_reading(*pair, sizes)
        if table:
            return table
    return read_broadcast(*pair, sizes=sizes, variables=operation.variables) if pair else None


def _pairs_table_reading(a: Operand, b: Operand, sizes) -> str | None:
    """``a * b`` of (…, n, d) and (…, m, d), n ≠ m: row i of one times row i of the other, where the table of every
    pair (row i against row j, (…, n, m)) is a matrix product a @ bᵀ."""
    if len(a.shape) != len(b.shape) or len(a.shape) < 2 or a.shape[-1] != b.shape[-1]:
        return None
    differ = [axis for axis, (x, y) in enumerate(zip(a.shape, b.shape)) if x != y]
    if differ != [len(a.shape) - 2]:
        return None
    n, m, d = a.shape[-2], b.shape[-2], a.shape[-1]
    left = a.name if a.name and not a.view else "a"
    right = b.name if b.name and not b.view else "b"
    return (f" An elementwise product pairs row i of {_show(a, sizes)} with row i of {_show(b, sizes)} only, which "
            f"needs as many rows on both sides: it is not the table of every pair (row i against row j). That table, "
            f"({named_text(n, sizes)}, {named_text(m, sizes)}), is a matrix product over the shared axis of "
            f"{named_text(d, sizes)}: {left} @ {right}.transpose(-2, -1), not ({left} * {right}).sum(-1).")


def named_text(size: int, sizes) -> str:
    names = [name for name, value in (sizes or {}).items() if value == size]
    return f"{names[0]} = {size}" if names else f"{size}"


def broadcasts(a, b) -> bool:
    return all(x == y or 1 in (x, y) for x, y in zip(reversed(a), reversed(b)))


def _first_clash(operands) -> tuple[Operand, Operand] | None:
    for a, b in itertools.combinations(operands, 2):
        if not broadcasts(a.shape, b.shape):
            return a, b
    return None


def placements(small, large) -> list[tuple[int, ...]]:
    """Every way (up to 8) of putting the axes of ``small`` that are not 1 on axes of ``large`` of the same size,
    keeping their order: where its entries belong."""
    wanted = [size for size in small if size != 1]

    def place(i, start):
        if i == len(wanted):
            yield ()
            return
        for axis in range(start, len(large)):
            if large[axis] == wanted[i]:
                for rest in place(i + 1, axis + 1):
                    yield (axis, *rest)
    return list(itertools.islice(place(0, 0), 8))


def read_broadcast(a: Operand, b: Operand, sizes: dict[str, int] | None = None, variables=()) -> str:
    """Two operands that do not broadcast: what the smaller one is, and where its axes should go. ``variables``
    are the learner's tensors, (name, shape), where it raised: the ones involved are named."""
    small, large = sorted((a, b), key=lambda o: (math.prod(o.shape), len(o.shape)))
    small = _with_origin(small, large, variables)
    message = _crossed(small, large, sizes, variables)
    for reading in (_reordered, _misplaced, _split, _permuted, _ungrouped, _joined):
        message = message or reading(small, large, sizes)
    return message or _clash(a, b, sizes)


def _with_origin(small: Operand, large: Operand, variables) -> Operand:
    """An unnamed operand (a temporary such as torch.sqrt(var + eps)) described by the one variable of the learner's
    that has its shape, when exactly one has: "a tensor of the shape of your `var`"."""
    if small.name:
        return small
    same = [name for name, shape in variables if shape == small.shape and shape != large.shape]
    return Operand(small.shape, same[0], origin=True) if len(same) == 1 else small


def _target(small, large, axes) -> tuple[int, ...]:
    """``small``'s sizes on ``axes`` of ``large``, 1 elsewhere: the view that lines it up."""
    target = [1] * len(large)
    for axis, size in zip(axes, [s for s in small if s != 1]):
        target[axis] = size
    return tuple(target)


def _reordered(small: Operand, large: Operand, sizes) -> str | None:
    """Lined up from the last axis, the small one's sizes meet the same sizes in another order: its axes are the
    right ones, out of order (a view or a transpose with two sizes swapped)."""
    S, L = small.shape, large.shape
    if len(S) > len(L) or math.prod(S) == math.prod(L):  # two tensors of one size: which is wrong is not known
        return None
    offset = len(L) - len(S)
    pairs = [(size, offset + i) for i, size in enumerate(S) if size != 1]
    mine, theirs = [size for size, _ in pairs], [L[axis] for _, axis in pairs]
    if not pairs or sorted(mine) != sorted(theirs) or mine == theirs:
        return None
    names = axis_names(L, sizes) or [str(size) for size in L]
    free = [(L[axis], names[axis]) for _, axis in pairs]  # its sizes, named after the axes of the same size
    called = []
    for size in mine:
        match = next(item for item in free if item[0] == size)
        free.remove(match)
        called.append(match[1])
    target = show_shape(tuple(L[axis] if any(axis == a for _, a in pairs) else 1 for axis in range(len(L))), sizes)
    return (f" {_Describe(small, sizes)} was broadcast against {_describe(large, sizes)}: lined up from the last "
            f"axis, its ({', '.join(called)}) met ({', '.join(names[axis] for _, axis in pairs)}) — the same sizes "
            f"in another order, so its axes are out of order (a view or transpose with two sizes swapped): make "
            f"{_who(small) if small.name and not small.view else 'it'} {target}.")


def _misplaced(small: Operand, large: Operand, sizes) -> str | None:
    """Its axes are some of the other's, but lined up from the last axis they meet the wrong ones."""
    S, L = small.shape, large.shape
    core = S[next((i for i, s in enumerate(S) if s != 1), len(S)):]  # leading 1s change nothing
    found = placements(core, L) if 0 < len(core) <= len(L) else []
    if not found:
        return None
    names = axis_names(L, sizes) or [f"axis {i}" for i in range(len(L))]
    axes = found[0]
    landed = [len(L) - len(core) + i for i, size in enumerate(core) if size != 1]
    options = [", ".join(names[i] for i in option) for option in found[:2]]  # where it may belong
    belong = " or ".join(options) if len(core) == 1 else " or ".join(f"({option})" for option in options)
    met = ", ".join(names[i] for i in landed)
    targets = " or ".join(show_shape(_target(core, L, option), sizes) for option in found[:2])
    start = f" {_Describe(small, sizes)} was broadcast against {_describe(large, sizes)}: "
    # what a reduction without keepdim=True leaves: the other's shape less some of its axes (none of them 1)
    reduced = 1 not in core and len(core) < len(L) and all(
        L[i] != 1 for option in found for i in range(len(L)) if i not in option)
    if len(core) == 1:
        index = "[" + ", ".join(":" if i in axes else "None" for i in range(len(L))) + "]"
        dropped = ", ".join(names[i] for i in range(len(L)) if i != axes[0])
        return (f" {_Describe(small, sizes)} lines up with the LAST axis ({met}) of {_describe(large, sizes)}, "
                f"not with {belong}: broadcasting aligns shapes from their last axis, so a 1-D tensor meets the last "
                f"one — view {_who(small)} as {targets} ({index})" + (
                    f"; a mean or sum over ({dropped}) with keepdim=True gives that shape directly."
                    if reduced and len(found) == 1 else "."))
    if reduced and len(found) <= 2:
        gone = " or ".join(", ".join(names[i] for i in range(len(L)) if i not in option) for option in found)
        reduced_one = f"`{small.name}`" if small.name else "it"  # the variable itself, or the one it was made from
        return (start + f"{reduced_one} was reduced without keepdim=True: it is {tuple_text(names)} with {gone} "
                f"reduced away. "
                f"Broadcasting lines shapes up from the last axis, so its {belong} met ({met}): keep the reduced "
                f"axis (keepdim=True), or view {_who(small)} as {targets}.")
    lacks_ones = len(core) < len(L) and all(L[i] == 1 for i in range(len(L)) if i not in axes)
    why = (" — it lacks the other's axes of size 1 (a mean or sum without keepdim=True, or a missing [..., None]?)"
           if lacks_ones else "")
    return (start + f"broadcasting lines shapes up from the last axis, so its {belong} met ({met}){why}: view "
            f"{_who(small)} as {targets}, so that each size meets its own axis." + _lies_along(small, L, found, landed,
                                                                                        names))


def _lies_along(small: Operand, L, found, landed, names) -> str:
    """A one-axis tensor viewed onto another axis: " Your `self.bias` lies along H, not C: [None, :, None, None]"."""
    if len(landed) != 1 or not small.name or len(found[0]) != 1:
        return ""
    index = "[" + ", ".join(":" if i == found[0][0] else "None" for i in range(len(L))) + "]"
    return (f" Your `{small.name}` lies along {names[landed[0]]} (axis {landed[0]}), not along {names[found[0][0]]}: "
            f"index it as {small.name}{index}.")


def _crossed(small: Operand, large: Operand, sizes, variables=()) -> str | None:
    """Every axis of the small operand that is not 1 has one size, on two or more axes where the other tensor has
    it on one, and they broadcast once all but one are 1: two layouts of one vector were combined, and
    broadcasting paired every entry of one with every entry of the other (an outer product)."""
    S, L = small.shape, large.shape
    for size in dict.fromkeys(s for s in S if s != 1):
        if S.count(size) < 2 or L.count(size) != 1 or any(s not in (1, size) for s in S):
            continue
        kept = [i for i, s in enumerate(S) if s == size]
        if not any(broadcasts(tuple(1 if (s == size and i != keep) else s for i, s in enumerate(S)), L)
                   for keep in kept):
            continue
        named, axis = _name_of(size, sizes), L.index(size)
        target = show_shape(tuple(1 if i != axis else size for i in range(len(L))), sizes)
        symbol = named.split(" = ")[0]
        vectors = {}  # the learner's tensors of `size` entries, by shape: the layouts that were crossed
        for name, shape in variables:
            if math.prod(shape) == size and size in shape:
                vectors.setdefault(shape, name)
        shown = [f"`{name}` is {show_shape(shape, sizes)}" for shape, name in vectors.items()]
        layouts = f" (your {' and your '.join(shown)})" if len(shown) >= 2 else f" (say ({size},) and {target})"
        return (f" {_Describe(small, sizes)} has {named} on {len(kept)} axes, where {_describe(large, sizes)} "
                f"has it on one: two tensors of {size} entries with different shapes{layouts} were combined, and "
                f"broadcasting paired every entry of one with every entry of the other. Give every per-{symbol} "
                f"tensor the same shape, {target}, before combining them.")
    return None


def _split(small: Operand, large: Operand, sizes) -> str | None:
    """A size of the small operand is the product of adjacent axes of the large one, which lacks it: the large
    one holds those entries split over several axes (a grouped view, not reshaped back)."""
    S, L = small.shape, large.shape
    names = axis_names(L, sizes) or [str(size) for size in L]
    for position, size in enumerate(S):
        if size == 1 or size in L:
            continue
        spans = [(start, stop) for start, stop in itertools.combinations(range(len(L) + 1), 2)
                 if stop - start >= 2 and math.prod(L[start:stop]) == size and 1 not in L[start:stop]]
        spans.sort(key=lambda span: span[0] != position)  # where the axis sits in the small one's layout, first
        if spans:
            start, stop = spans[0]
            target = show_shape(tuple(L[i] if start <= i < stop else 1 for i in range(len(L))), sizes)
            name = f"`{small.name}`" if small.name else "the smaller one"
            return (f" {_Describe(small, sizes)} met {_describe(large, sizes)}, which holds its "
                    f"{_name_of(size, sizes)} entries split over the axes ({', '.join(names[start:stop])}): "
                    f"reshape that tensor back, so that they lie on one axis, before combining the two (or view "
                    f"{name} as {target}).")
    return None


def _ungrouped(small: Operand, large: Operand, sizes) -> str | None:
    """The small operand has one axis more than the large one and fits the large one with one axis split in two
    (C as G·C/G): statistics of a grouped view (a reshape, then a reduction with keepdim=True) applied to the
    tensor before the reshape."""
    S, L = small.shape, large.shape
    if len(S) != len(L) + 1:
        return None
    for k, size in enumerate(L):
        if S[k] in (1, size) or size % S[k]:
            continue
        grouped = L[:k] + (S[k], size // S[k]) + L[k + 1:]
        if all(s in (1, g) for s, g in zip(S, grouped)):
            name = f"`{large.name}`" if large.name else "the other tensor"
            return (f" {_Describe(small, sizes)} has the grouped layout {show_shape(grouped, sizes)}, one axis more "
                    f"than {_describe(large, sizes)}, whose {_name_of(size, sizes)} is {S[k]} × {size // S[k]} on one "
                    f"axis: apply it to the grouped tensor, not to the ungrouped {name} — combine the two in the "
                    f"grouped shape {tuple_text(grouped)}, then reshape the result back to {tuple_text(L)}.")
    return None


def _joined(small: Operand, large: Operand, sizes) -> str | None:
    """Same number of axes, one clash, where the large one holds a named size times the small one's and has lost
    another axis to 1: pieces cut along one axis were joined along another (torch.chunk/split's default dim=0)."""
    S, L = small.shape, large.shape
    clashes = [k for k, (x, y) in enumerate(zip(S, L)) if x != y and 1 not in (x, y)]
    if len(S) != len(L) or len(clashes) != 1 or 1 not in L:
        return None
    k = clashes[0]
    if L[k] % S[k] or L[k] // S[k] < 2:
        return None
    q = L[k] // S[k]
    named = [name for name, value in (sizes or {}).items() if value == q]
    if not named:
        return None
    return (f" {_Describe(large, sizes)} holds {L[k]} = {named[0]}·{_name_of(S[k], sizes).split(' = ')[0]} on axis "
            f"{k}, where {_describe(small, sizes)} has {_name_of(S[k], sizes)}: {named[0]} = {q} pieces were joined "
            f"along that axis — pieces cut along another axis and concatenated along this one. torch.chunk and "
            f"torch.split cut along dim=0 (the first axis) by default: pass the dim to cut along (dim={k}).")


def _permuted(small: Operand, large: Operand, sizes) -> str | None:
    S, L = small.shape, large.shape
    if len(S) != len(L) or sorted(S) != sorted(L) or S == L:
        return None
    if S[:-2] + S[-2:][::-1] == L:
        how = "their last two axes are swapped: one of them has a transpose too many or lacks one"
    else:
        how = "one of them has its axes permuted (a transpose, .T, .permute or a rearrange in the wrong order)"
    return f" {_Describe(small, sizes)} and {_describe(large, sizes)} have the same sizes in another order: {how}."


def _clash(a: Operand, b: Operand, sizes) -> str:
    """The plain reading: both shapes, named, and the first axis (from the end) where they clash."""
    offset, x, y = next((i, x, y) for i, (x, y) in enumerate(zip(reversed(a.shape), reversed(b.shape)), start=1)
                        if x != y and 1 not in (x, y))
    return (f" {_Describe(a, sizes)} met {_describe(b, sizes)}: lined up from the last axis, their axis {-offset} "
            f"holds {_name_of(x, sizes)} in one and {_name_of(y, sizes)} in the other — check which axes each "
            f"tensor should have there.")


def read_matmul(a: Operand, b: Operand, sizes: dict[str, int] | None = None) -> str | None:
    """A @ B with A (…, n, k) and B (…, k, m) that do not fit: which operand lacks a transpose, whose axes .T
    reversed, or which batch axes differ."""
    A, B = a.shape, b.shape
    if len(A) < 2 or len(B) < 2:
        return None
    n, k, k2, m = A[-2], A[-1], B[-2], B[-1]
    if k == k2 and broadcasts(A[:-2], B[:-2]):
        return None  # they fit: the error came from elsewhere
    yours = f" Yours is {_show(a, sizes)} @ {_show(b, sizes)}"
    for operand, which in ((b, "second"), (a, "first")):
        if len(operand.shape) > 2:
            reverse = operand.shape[::-1]
            meant = reverse[:-2] + (reverse[-1], reverse[-2])  # what .transpose(-2, -1) would have given
            fits = (broadcasts(A[:-2], meant[:-2]) and meant[-2] == k) if which == "second" else \
                (broadcasts(meant[:-2], B[:-2]) and meant[-1] == k2)
            if fits and meant != operand.shape:
                return (yours + f": the {which} operand has all its axes in reverse order — .T reverses every axis "
                        f"of a tensor with more than two; to swap only the last two use .transpose(-2, -1) (or .mT).")
    inner = (yours + f", whose inner sizes are {_name_of(k, sizes)} (the last axis of the first) and "
             f"{_name_of(k2, sizes)} (the second-to-last of the second)")
    if k != k2:
        if k == m and n == k2:
            return inner + ": one of the operands needs a transpose (A @ Bᵀ and Aᵀ @ B would both fit)."
        if k == m:
            return inner + f": a transpose is missing on the second operand{_named(b)}: {_t(b)}."
        if n == k2:
            return inner + f": a transpose is missing on the first operand{_named(a)}: {_t(a)}."
        if n == m:
            return inner + ": the operands are in the wrong order (B @ A fits where A @ B does not)."
        return inner + ": they must be equal — check which axes each operand should have."
    return (yours + f": the batch axes {show_shape(A[:-2], sizes)} and {show_shape(B[:-2], sizes)} do not "
            f"broadcast — both operands should carry the same leading axes.")


def _show(operand: Operand, sizes) -> str:
    shape = show_shape(operand.shape, sizes)
    if operand.name:
        return f"{'a view of ' if operand.view else ''}`{operand.name}` {shape}"
    return shape


def _named(operand: Operand) -> str:
    return f" (`{operand.name}`)" if operand.name else ""


def _t(operand: Operand) -> str:
    return f"{operand.name}.transpose(-2, -1)" if operand.name and not operand.view else ".transpose(-2, -1)"
