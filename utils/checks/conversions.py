"""Errors that Python, not a tensor operation, raises on a tensor: read from the learner's failing line.

Each chapter meets the same few: a tensor of many values where Python wants one number (``math.sqrt(t)``,
``int(t)``, ``t.item()`` on a batch), the truth value of a tensor (``if mask:``, ``a and b``, Python's ``max``),
a float where a size belongs (``C / G`` in a reshape, a range or a slice), and a variable named after one of the
case's sizes that holds another of them (``T = x.shape[0]`` where x is (B, T, D)). PyTorch's own message says what
failed, not which value of the line did it; these readings name the value, its shape and the code to write instead.
"""
from __future__ import annotations

import inspect
import re

import torch

from utils.checks.operands import LIBRARY_FILE, learner_entry, show_shape

_TRUTH = "Boolean value of Tensor with more than one value is ambiguous"
_ONE_NUMBER = re.compile(r"only one element tensors can be converted to Python scalars|a Tensor with (\d+) elements "
                         r"cannot be converted to Scalar")
_INDEX = "only integer tensors of a single element can be converted to an index"
_FLOAT_SIZE = re.compile(r"(tuple of ints|must be int)[^\n]{0,40}\b(not|but got) float|'float' object cannot be "
                         r"interpreted as an integer|slice indices must be integers|got \(float")
_CONDITION = re.compile(r"^\s*(?:if|elif|while|assert)\s+(not\s+)?([A-Za-z_][\w.]*)\s*(?::|,|$)")
_TERNARY = re.compile(r"\bif\s+(not\s+)?([A-Za-z_][\w.]*)\s+else\b")
_NOT_A_NUMBER = re.compile(r"must be real number, not (torch\.Size|tuple|list)")
_SHAPE_SLICE = re.compile(r"([A-Za-z_][\w.]*)\.(shape\[[^\]]*:[^\]]*\]|shape\b(?!\s*\[)|size\(\s*\))")
_PYTHON_MATH = re.compile(r"(?<![\w.])(math\.\w+|int|float|round|bool|complex|abs)\s*\(")
_BUILTIN_MINMAX = re.compile(r"(?<![\w.])(max|min)\s*\(")
_TRUE_DIVISION = re.compile(r"([A-Za-z_][\w.]*(?:\[-?\d+\])?|\d+)\s*/(?![/=])\s*([A-Za-z_][\w.]*(?:\[-?\d+\])?|\d+)")
_SIZE_ASSIGNMENT = r"^\s*(?:[\w\s,]*,\s*)?{name}\s*(?:,[\w\s,]*)?=(?!=)"


def conversion_reading(error: BaseException, line: str, values: dict, sizes: dict[str, int] | None = None) -> str:
    """What a Python conversion of a tensor that failed at ``line`` means, from the values its names held; ""
    when the error is none of these."""
    text = str(error)
    if _TRUTH in text:
        return _truth_reading(line, values, sizes)
    if _ONE_NUMBER.search(text):
        return _one_number_reading(line, values, sizes, _ONE_NUMBER.search(text).group(1))
    if _INDEX in text:
        tensor = _many_valued(values)
        held = f" `{tensor[0]}` holds {_count(tensor[1], sizes)}" if tensor else " The index holds several values"
        return (f"{held}: a Python list, range or number takes one integer as an index. Make the table a tensor "
                f"(torch.tensor(...)) and index it with the whole tensor at once, or use torch.gather.")
    if isinstance(error, TypeError) and _NOT_A_NUMBER.search(text):
        return _shape_as_number_reading(line)
    if isinstance(error, TypeError) and _FLOAT_SIZE.search(text):
        return _float_size_reading(error, line, values, sizes)
    return ""


def _many_valued(values: dict) -> tuple[str, torch.Tensor] | None:
    """The first tensor of the line holding more than one value, with its name."""
    return next(((name, value) for name, value in values.items()
                 if isinstance(value, torch.Tensor) and value.numel() > 1), None)


def _count(tensor: torch.Tensor, sizes) -> str:
    return f"{tensor.numel()} values, shape {show_shape(tuple(tensor.shape), sizes)}"


def _truth_reading(line: str, values: dict, sizes) -> str:
    condition = _CONDITION.match(line) or _TERNARY.search(line)
    if condition and isinstance(values.get(condition.group(2)), torch.Tensor):
        name = condition.group(2)
        keyword = line.split()[0] if condition.re is _CONDITION else "if"
        return (f" `{keyword} {'not ' if condition.group(1) else ''}{name}` asks Python for one truth value of the "
                f"whole tensor `{name}` ({_count(values[name], sizes)}), which has none. To test whether the argument "
                f"was given, write `{keyword} {name} is {'' if condition.group(1) else 'not '}None:`; to test its "
                f"entries, `{name}.any()` or `{name}.all()`.")
    if re.search(r"\b(and|or|not)\b", line):
        return (" `and`, `or` and `not` ask Python for one truth value of each tensor, which a tensor of several "
                "values does not have: combine boolean tensors entry by entry with &, | and ~ (mask_a & mask_b), "
                "and test for a missing argument with `is None`.")
    if _BUILTIN_MINMAX.search(line):
        return (" Python's max and min compare with one truth value, which a tensor of several values does not "
                "have: use torch.maximum(a, b) / torch.minimum(a, b) (or .clamp) entry by entry, or .amax(dim=...) "
                "over an axis.")
    if re.match(r"^\s*(if|elif|while|assert)\b", line) or re.search(r"\bif\b.*\belse\b", line):
        return (" A Python `if`/`while` needs one truth value, but its condition is a tensor with one value per "
                "entry: choose entry by entry with torch.where(condition, a, b), or reduce it with .any() / .all() "
                "if one answer for the whole tensor is meant.")
    return (" Python asked a tensor of several values for one truth value (an `if`, `and`, `or`, `not`, or a "
            "comparison of whole tensors): use `is None` to test for a missing argument, & | ~ to combine masks, "
            ".any() / .all() to reduce, torch.where to choose entry by entry.")


def _one_number_reading(line: str, values: dict, sizes, count: str | None = None) -> str:
    call = _PYTHON_MATH.search(line)
    inside = _argument_text(line, call.end()) if call else line
    tensor = _many_valued({name: value for name, value in values.items()
                           if re.search(rf"(?<![\w.]){re.escape(name)}(?![\w])", inside)}) or _many_valued(values)
    held = f"`{tensor[0]}` holds {_count(tensor[1], sizes)}" if tensor else "the tensor holds several values"
    batch = tensor is not None and tensor[1].dim() == 1 and "B" in (sizes or {}) and \
        tensor[1].numel() == sizes["B"]
    per = " — one per item of the batch" if batch else ""
    if ".item()" in line:
        if count:  # the tensor .item() was called on is most often a temporary: PyTorch's message counts it
            batch = "B" in (sizes or {}) and int(count) == sizes["B"]
            held, per = f"the tensor it was called on holds {count} values", " — one per item of the batch" * batch
        return (f" `.item()` reads the one value of a one-element tensor, but {held}{per}. Keep it a tensor and let "
                f"it broadcast (view it with size-1 axes, e.g. t.view(-1, 1, 1, 1)), rather than one Python number.")
    if call and call.group(1).startswith("math."):
        function = call.group(1).removeprefix("math.")
        return (f" `{call.group(1)}` takes one Python number, but {held}{per}. Use the tensor function, "
                f"torch.{function}(...), which works entry by entry; or, if you meant a size, read it from a shape "
                f"(x.shape[-1]), not from the tensor itself.")
    if call:
        return (f" `{call.group(1)}(...)` makes one Python number, but {held}{per}. Keep it a tensor "
                f"(.to(dtype) or .long() convert every entry) and let it broadcast; if you meant a size, read it from "
                f"a shape (x.shape[-1]).")
    return (f" Python wanted one number, but {held}{per}: a tensor went where a Python number belongs (math.*, "
            f"int(), float(), a Python comparison). Use torch's own functions, which work entry by entry.")


def _argument_text(line: str, start: int) -> str:
    """The text between the parenthesis opened just before ``start`` and the one that closes it."""
    depth = 1
    for end in range(start, len(line)):
        depth += {"(": 1, ")": -1}.get(line[end], 0)
        if depth == 0:
            return line[start:end]
    return line[start:]


def _shape_as_number_reading(line: str) -> str:
    """A shape, or a slice of one, where Python wants one number: math.sqrt(q.shape[-1:])."""
    found = _SHAPE_SLICE.search(line)
    said = f"`{found.group(0)}` is" if found else "A shape (a torch.Size) is"
    name = found.group(1) if found else "x"
    return (f" {said} a torch.Size, a tuple of sizes, where one number belongs: index it for one size, "
            f"{name}.shape[-1] (a slice such as shape[-1:] is still a tuple).")


def _float_size_reading(error: BaseException, line: str, values: dict, sizes) -> str:
    frame = _frame(error)
    for a, b in _TRUE_DIVISION.findall(line):
        va, vb = _evaluate(a, values, frame), _evaluate(b, values, frame)
        if _is_int(va) and _is_int(vb) and vb:
            return (f" `{a} / {b}` = {va} / {vb} = {va / vb!r} is a float: / always gives a float in Python 3, even "
                    f"when it divides evenly. A size, a count or a slice bound must be an int: write `{a} // {b}` "
                    f"(integer division).")
    floats = [(name, value) for name, value in values.items() if isinstance(value, float)]
    if floats:
        name, value = floats[0]
        made = _assignment(frame, name) if frame is not None else ""
        return (f" `{name}` is {value!r}, a float" + (f" (`{made}`)" if made else "") + ": a size, a count or a "
                "slice bound must be an int. " + ("/ always gives a float in Python 3, even when it divides evenly: "
                                                   "write // (integer division) there." if "/" in made else
                                                   "Compute it with // rather than /, or int(...) it where it is "
                                                   "made."))
    return (" A size, a count or a slice bound came out a float: / always gives a float in Python 3 (use //), and "
            "math.sqrt, math.ceil of a float, or a float literal do too.")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _frame(error: BaseException):
    entry = learner_entry(error)
    return entry.tb_frame if entry is not None else None


def _evaluate(token: str, values: dict, frame):
    """The value of a token of the line: a literal, a name the line held, or a name's shape indexed (x.shape[1])."""
    if token.isdigit():
        return int(token)
    name, _, index = token.partition("[")
    value = values.get(name)
    if value is None and frame is not None:
        value = frame.f_locals.get(name)
    if index:
        try:
            return value[int(index.rstrip("]"))] if isinstance(value, (torch.Size, tuple, list)) else None
        except IndexError:
            return None
    if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.is_floating_point():
        return int(value)
    return value


# ---------------------------------------------------------------------------------------------- misnamed sizes
def misnamed_size_reading(error: BaseException, sizes: dict[str, int] | None) -> str:
    """A variable of the learner's frame named after one of the case's sizes (``T``) that holds another of its
    sizes (B = 2 where T = 5), with the line that set it and where the size really is (x.shape[1]); "" when no
    such variable exists or the sizes coincide."""
    if not sizes:
        return ""
    for frame in _learner_frames(error):
        for name, value in frame.f_locals.items():
            if name not in sizes or not _is_int(value) or value == sizes[name]:
                continue
            others = [other for other, size in sizes.items() if other != name and size == value]
            if not others or list(sizes.values()).count(sizes[name]) > 1:
                continue
            assignment = _assignment(frame, name)
            where = _where_size_is(frame, sizes, name, assignment)
            return (f" Your `{name}` is {value}, which is {' = '.join(others)} here, not {name} = {sizes[name]}"
                    + (f" (`{assignment}`)" if assignment else "") + (f": {where}" if where else "") + ".")
    return ""


def _learner_frames(error: BaseException) -> list:
    """The frames of the traceback in the learner's code, innermost first."""
    frames, entry = [], error.__traceback__
    while entry is not None:
        if not LIBRARY_FILE.search(entry.tb_frame.f_code.co_filename):
            frames.append(entry.tb_frame)
        entry = entry.tb_next
    return frames[::-1]


def _assignment(frame, name: str) -> str:
    """The line of the learner's function that assigns ``name`` (its first), stripped; "" if not found."""
    try:
        lines, _ = inspect.getsourcelines(frame.f_code)
    except (OSError, TypeError):
        return ""
    pattern = re.compile(_SIZE_ASSIGNMENT.format(name=re.escape(name)))
    return next((line.strip() for line in lines if pattern.match(line)), "")


def _where_size_is(frame, sizes: dict[str, int], name: str, assignment: str) -> str:
    """"x is (B, T, D) = (2, 5, 24): T is x.shape[1]" for a tensor of the frame (one the assignment reads first)
    that holds the size ``name`` on exactly one axis."""
    tensors = [(n, v) for n, v in frame.f_locals.items() if isinstance(v, torch.Tensor) and v.dim() >= 2]
    tensors.sort(key=lambda item: item[0] not in assignment)
    for tensor_name, tensor in tensors:
        axes = [i for i, size in enumerate(tensor.shape) if size == sizes[name]]
        if len(axes) == 1:
            return (f"`{tensor_name}` is {show_shape(tuple(tensor.shape), sizes)}, so {name} is "
                    f"{tensor_name}.shape[{axes[0]}]")
    return ""


# ---------------------------------------------------------------------------------------------- arguments misread
_UNCALLED = re.compile(r"\bbuiltin_function_or_method\b|'method'|not method\b")
_ATTRIBUTE = re.compile(r"(\)|\]|[A-Za-z_]\w*)\s*\.\s*([A-Za-z_]\w*)\b(?!\s*\()")
_DIM_RANGE = re.compile(r"Dimension out of range \(expected to be in range of \[(-?\d+), (-?\d+)\], but got (-?\d+)\)")
_REPEATED = re.compile(r"dim (-?\d+) appears multiple times in the list of dims")
_EMPTY = re.compile(r"to have non-zero size|on tensors with no elements|numel\(\) == 0|empty sequence")
_NOT_METHODS = {"T", "mT", "H", "mH", "shape", "data", "grad", "real", "imag", "dtype", "device", "ndim"}


def argument_reading(error: BaseException, line: str, values: dict, sizes: dict[str, int] | None = None,
                     fn=None) -> str:
    """What an argument of the failing line that is not what the call takes means: a method used without calling it
    (``x.sqrt * y``), a size where an axis belongs (``dim=self.normalized_shape``), an axis listed twice, and a
    slice left empty by a loop that runs one step past the end; "" when the error is none of these."""
    text = str(error)
    if isinstance(error, TypeError) and _UNCALLED.search(text):
        return _uncalled_reading(line)
    called = call_reading(error, line, values, sizes, fn)
    if called:
        return called
    match = _DIM_RANGE.search(text)
    if match:
        return _size_as_axis_reading(int(match.group(2)) + 1, int(match.group(3)), line, values, sizes)
    match = _REPEATED.search(text)
    if match:
        return _repeated_axis_reading(int(match.group(1)), line, values)
    if _EMPTY.search(text):
        return _loop_past_end_reading(error, sizes)
    return ""


def _uncalled_reading(line: str) -> str:
    for match in _ATTRIBUTE.finditer(line):
        name = match.group(2)
        if name in _NOT_METHODS or not callable(getattr(torch.Tensor, name, None)) or match.group(1) in (
                "torch", "F", "nn", "math", "np", "functional"):
            continue
        return (f" `.{name}` is written without its call parentheses: `….{name}` is the method itself (a Python "
                f"function object), not its result, so the arithmetic around it fails. Write `.{name}()`.")
    return (" A method or function is used without calling it (a Python function object, not a tensor): add its "
            "call parentheses, `()`.")


def _size_as_axis_reading(ndim: int, got: int, line: str, values: dict, sizes) -> str:
    names = [name for name, size in (sizes or {}).items() if size == got]
    holder = next((name for name, value in values.items() if (_is_int(value) and value == got) or (
        isinstance(value, (tuple, list, torch.Size)) and any(_is_int(v) and v == got for v in value))), None)
    rank = max((value.dim() for value in values.values() if isinstance(value, torch.Tensor)), default=0)
    if holder is None and ndim <= got < rank:  # a literal axis of the line's own larger tensor: axes renumbered
        return (f" dim={got} is an axis of the {rank}-D tensor on this line, but the tensor it was applied to has "
                f"only {ndim} axes by then: a reduction without keepdim removes its axis, so the axes after it are "
                f"renumbered (in .sum(0).sum(2), the second sum's axis 2 is the original axis 3). Reduce over all the "
                f"axes at once (dim=(0, 2, 3)) or keep them with keepdim=True.")
    if not names and holder is None:
        return (f" dim={got} names an axis that a {ndim}-D tensor does not have (its axes are 0…{ndim - 1}, or "
                f"-{ndim}…-1 from the end).")
    written = re.search(r"\bdim\s*=\s*([\w.\[\]-]+)", line)
    holder = holder or (written.group(1) if written and not re.fullmatch(r"-?\d+", written.group(1)) else None)
    which = f"`dim={holder}` passes {got}" if holder else f"The dim you passed is {got}"
    what = f", the size {' = '.join(names)}" if names else ""
    return (f" {which}{what}, where dim= takes an axis: a {ndim}-D tensor has axes 0…{ndim - 1} (or -{ndim}…-1 "
            f"from the end). Pass the axis that has that size (the last k axes: dim=tuple(range(-k, 0))), not the "
            f"size.")


def _repeated_axis_reading(dim: int, line: str, values: dict) -> str:
    tensors = [value for value in values.values() if isinstance(value, torch.Tensor)]
    ndim = tensors[0].dim() if tensors else None
    same = f" (with {ndim} axes, {dim} and {dim - ndim} are the same axis)" if ndim else ""
    return (f" axis {dim} is listed twice in dim=…{same}: a reduction over several axes lists each axis once. "
            f"Check the tuple of axes against the tensor's shape.")


def _loop_past_end_reading(error: BaseException, sizes) -> str:
    """A reduction over an empty slice inside a ``for … in range(…)`` loop: the loop's bound and where it stops."""
    frame = _frame(error)
    loop = _enclosing_range_loop(frame, learner_entry(error).tb_lineno) if frame is not None else None
    if loop is None:
        return _empty_slice_reading(error, sizes)
    variable, stop_text, step_text = loop
    value = frame.f_locals.get(variable)
    if not _is_int(value):
        return ""
    past = re.search(r"\+\s*1\b|\+\s*(\w+)\s*$", stop_text)
    at = f"`{variable}` = {value}" + (f" (= {' = '.join(n for n, s in (sizes or {}).items() if s == value)})"
                                      if any(s == value for s in (sizes or {}).values()) else "")
    if past:
        stop = re.sub(r"\s*\+\s*[\w.]+\s*$", "", stop_text) + (f", {step_text}" if step_text else "")
        return (f" A reduction ran over an empty tensor, an empty slice: your loop range(…, {stop_text}, …) goes "
                f"one step past the end, and at {at} the block starts after the last entry. Its stop is the length "
                f"itself, range(0, {stop}).")
    return _empty_slice_reading(error, sizes)  # an empty slice for another reason (its bounds)


def _enclosing_range_loop(frame, lineno: int):
    """(variable, stop source, step source) of the innermost ``for name in range(…)`` around ``lineno``."""
    import ast
    import textwrap
    try:
        lines, first = inspect.getsourcelines(frame.f_code)
        tree = ast.parse(textwrap.dedent("".join(lines)))
    except (OSError, TypeError, SyntaxError):
        return None
    offset = max(first, 1) - 1
    found = None
    for node in ast.walk(tree):
        if isinstance(node, ast.For) and isinstance(node.target, ast.Name) and isinstance(node.iter, ast.Call) and \
                getattr(node.iter.func, "id", "") == "range" and node.iter.args and \
                node.lineno + offset <= lineno <= node.end_lineno + offset:
            arguments = node.iter.args
            stop = arguments[0] if len(arguments) == 1 else arguments[1]
            step = ast.unparse(arguments[2]) if len(arguments) > 2 else ""
            if found is None or node.lineno > found[0]:
                found = (node.lineno, node.target.id, ast.unparse(stop), step)
    return found[1:] if found else None


# ---------------------------------------------------------------------------------------------- what a call takes
_NOT_CALLABLE = re.compile(r"'(?:\w+\.)*(\w+)' object is not callable")
_WRONG_KIND = re.compile(r"(?:(\w+)\(\): )?argument '(\w+)'(?: \(position (\d+)\))? must be ([\w.]+(?: of \w+)?), "
                         r"not (\w+)")
_SAVE_NON_TENSOR = re.compile(r"save_for_backward can only save variables, but argument (\d+) is of type (\w+)")
_MIXED_IN_CALL = re.compile(r"scalar type (\w+) but got scalar type (\w+)|expected scalar type (\w+) but found (\w+)"
                            r"|must have the same dtype|same dtype", re.IGNORECASE)
_DEFAULT_BUILT = re.compile(r"torch\.(ones|zeros|empty|rand|randn|full|eye|linspace)\s*\(")
_INSTEAD = {("torch.dtype", "Tensor"): "its dtype, `{name}.dtype`", ("tuple of ints", "Tensor"): "its shape, "
            "`{name}.shape`", ("int", "Tensor"): "one number: a size (`{name}.shape[…]`) or `{name}.item()`"}


def call_reading(error: BaseException, line: str, values: dict, sizes: dict[str, int] | None = None, fn=None) -> str:
    """A call given what it does not take, read from the failing line: something that is not a function called
    (``ctx.saved_tensors()``), an argument of the wrong kind (``torch.finfo(x)`` with a tensor x), a number given to
    ``ctx.save_for_backward``, tensors of two dtypes in one call (``torch.polar(torch.ones(n, n), angle)``), and an
    ``nn.Linear`` weight multiplied as if it were stored (in, out); "" when the error is none of these. ``fn``, the
    learner's callable, is read for the line when the error was raised after their code returned (save_for_backward's
    arguments are checked once forward has returned)."""
    text = " ".join(str(error).split())
    match = _NOT_CALLABLE.search(text)
    if isinstance(error, TypeError) and match:
        return _not_callable_reading(match.group(1), line, error)
    match = _SAVE_NON_TENSOR.search(text)
    if match:
        return _saved_number_reading(int(match.group(1)), match.group(2), line if "save_for_backward" in line else
                                     _source_line(fn, "save_for_backward"))
    match = _WRONG_KIND.search(text)
    if isinstance(error, TypeError) and match:
        return _wrong_kind_reading(*match.groups(), line, values, sizes)
    if isinstance(error, RuntimeError) and _MIXED_IN_CALL.search(text):
        return _mixed_dtype_reading(line, values, text)
    if isinstance(error, RuntimeError) and ("cannot be multiplied" in text or "mat1 and mat2" in text):
        return _linear_weight_reading(line, values, sizes)
    return ""


def _not_callable_reading(kind: str, line: str, error: BaseException) -> str:
    frame = _frame(error)
    for found in re.finditer(r"(?<![\w.])([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)\s*\(", line):
        parts = found.group(1).split(".")
        value = frame.f_locals.get(parts[0], frame.f_globals.get(parts[0])) if frame is not None else None
        for part in parts[1:]:
            value = getattr(value, part, None)
        if value is not None and type(value).__name__ == kind and not callable(value):
            what = {"tuple": "a tuple", "Tensor": "a tensor", "Size": "a torch.Size", "int": "a number",
                    "float": "a number", "list": "a list"}.get(kind, f"a {kind}")
            return (f" `{found.group(1)}` is {what}, not a function: it is an attribute, read without calling it. "
                    f"Drop the parentheses: `{found.group(1)}`, not `{found.group(1)}()`.")
    return (f" A {kind} is called like a function: a value read as an attribute (ctx.saved_tensors, x.shape) takes "
            f"no parentheses.")


def _call_arguments(line: str, function: str) -> list[str] | None:
    import ast
    try:
        tree = ast.parse(line.strip().removesuffix(":"), mode="exec")
    except SyntaxError:
        return None
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and ast.unparse(node.func).endswith(function):
            return [ast.unparse(argument) for argument in node.args]
    return None


def _source_line(fn, needle: str) -> str:
    """The first line of ``fn``'s autograd Function (its forward), or of ``fn`` itself, that holds ``needle``."""
    owner = getattr(fn, "__self__", None)
    for source in (getattr(owner, "forward", None), getattr(fn, "forward", None), fn):
        try:
            lines = inspect.getsource(source).splitlines() if source is not None else []
        except (OSError, TypeError):
            continue
        found = [text.strip() for text in lines if needle in text]
        if found:
            return found[0]
    return ""


def _argument_source(line: str, function: str | None, argument: str, position) -> str | None:
    """The source text of the argument named ``argument`` (or at 1-based ``position``) of the line's call to
    ``function``."""
    import ast
    if not function:
        return None
    try:
        tree = ast.parse(line.strip().removesuffix(":"), mode="exec")
    except SyntaxError:
        return None
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and re.search(rf"(^|\.){function}$", ast.unparse(node.func)):
            for keyword in node.keywords:
                if keyword.arg == argument:
                    return ast.unparse(keyword.value)
            if position and int(position) <= len(node.args):
                return ast.unparse(node.args[int(position) - 1])
    return None


def _saved_number_reading(index: int, kind: str, line: str) -> str:
    arguments = _call_arguments(line, "save_for_backward") or []
    name = arguments[index] if index < len(arguments) else None
    article = "an" if kind[:1] in "aeiou" else "a"
    said = f"`{name}` is {article} {kind}" if name else f"argument {index} (counting from 0) is {article} {kind}"
    keep = re.sub(r"\W+", "_", name).strip("_") if name else "value"
    keep = keep if keep.isidentifier() else "value"
    return (f" ctx.save_for_backward takes only tensors, and {said}. Keep a number as an attribute "
            f"of ctx instead: `ctx.{keep} = {name or 'value'}` in forward, read back as `ctx.{keep}` in backward.")


def _wrong_kind_reading(function, argument: str, position, wanted: str, got: str, line: str, values: dict,
                        sizes) -> str:
    holders = [name for name, value in values.items() if type(value).__name__ == got]
    given = _argument_source(line, function, argument, position)
    name = given if given in holders else holders[0] if len(holders) == 1 else None
    instead = _INSTEAD.get((wanted, got))
    said = f"`{name}`, a {got}" + (f" of shape {show_shape(tuple(values[name].shape), sizes)}," if isinstance(
        values.get(name), torch.Tensor) else ",") if name else f"a {got}"
    advice = f" Pass {instead.format(name=name)}." if instead and name else ""
    return (f" The call's argument `{argument}` takes a {wanted}, and {said} is given there.{advice}")


def _mixed_dtype_reading(line: str, values: dict, text: str) -> str:
    tensors = {name: value for name, value in values.items() if isinstance(value, torch.Tensor)}
    dtypes = {value.dtype for value in tensors.values()}
    if "complex" in text.lower() or any(dtype.is_complex for dtype in dtypes):
        return ""  # real meets complex: exception_hint's reading says which to convert
    built = [m for m in _DEFAULT_BUILT.finditer(line)]
    if len(dtypes) == 1 and built:
        (name, value), = list(tensors.items())[:1]
        start = built[0].start()
        depth, end = 0, start
        for end in range(line.index("(", start), len(line)):
            depth += {"(": 1, ")": -1}.get(line[end], 0)
            if depth == 0:
                break
        call = line[start:end + 1]
        default = torch.get_default_dtype()
        if "dtype" not in call and value.dtype != default:  # x.double() @ torch.ones(…) with a float32 x: not this
            cast = " (and `.float()` on the line casts to float32 too)" if re.search(
                r"\.float\(\)|float32", line) else ""
            kind = built[0].group(1)
            like = f" (or torch.{kind}_like({name}) where it has {name}'s shape)" if kind in (
                "ones", "zeros", "empty", "rand", "randn") and tuple(value.shape) else ""
            return (f" `{call}` is built in the default dtype ({str(default).removeprefix('torch.')}), and `{name}` is "
                    f"{str(value.dtype).removeprefix('torch.')}: one call met two dtypes{cast}. Build it in the "
                    f"input's dtype, `dtype={name}.dtype` {like}.")
    if len(dtypes) == 2:
        shown = ", ".join(f"`{name}` is {str(value.dtype).removeprefix('torch.')}" for name, value in tensors.items())
        return (f" One call met two dtypes: {shown}. Build every tensor in the input's dtype (dtype=x.dtype, "
                f"torch.zeros_like), never a hard-coded torch.float32 or .float().")
    return ""


def _linear_weight_reading(line: str, values: dict, sizes) -> str:
    if "@" not in line and "matmul" not in line and "mm(" not in line:
        return ""
    for name, weight in values.items():
        if not name.endswith("weight") or not isinstance(weight, torch.Tensor) or weight.dim() != 2:
            continue
        out_features, in_features = weight.shape
        others = [v for n, v in values.items() if n != name and isinstance(v, torch.Tensor) and v.dim() >= 1]
        if out_features != in_features and any(v.shape[-1] == in_features for v in others) and \
                re.search(rf"(@|m(?:at)?m(?:ul)?\([^,]+,)\s*{re.escape(name)}\b(?!\s*\.\s*(T|mT|t\(|transpose))", line):
            layer = name.rsplit(".", 1)[0]
            return (f" nn.Linear stores its weight as (out_features, in_features): `{name}` is "
                    f"{show_shape((out_features, in_features), sizes)}, so `… @ {name}` does not fit an input whose "
                    f"last axis is {in_features}. Call the layer, `{layer}(x)` (weight and bias together), or use "
                    f"`x @ {name}.T`.")
    return ""


_SAFE_NODES = ("Name", "Constant", "BinOp", "UnaryOp", "Add", "Sub", "Mult", "FloorDiv", "USub", "Load", "Attribute",
               "Subscript", "Index", "Expression")


def _empty_slice_reading(error: BaseException, sizes) -> str:
    """A reduction over an empty tensor where a slice of the learner's function, read with the values its names held
    when it raised, ends before it starts: ``t[start:block]`` for ``t[start:start + block]``."""
    import ast
    import textwrap
    frame = _frame(error)
    if frame is None:
        return ""
    try:
        lines, _ = inspect.getsourcelines(frame.f_code)
        tree = ast.parse(textwrap.dedent("".join(lines)))
    except (OSError, TypeError, SyntaxError):
        return ""
    for node in ast.walk(tree):
        if not isinstance(node, ast.Slice) or node.lower is None or node.upper is None:
            continue
        bounds = []
        for bound in (node.lower, node.upper):
            if any(type(n).__name__ not in _SAFE_NODES for n in ast.walk(bound)):
                break
            try:
                value = eval(compile(ast.Expression(bound), "<slice>", "eval"), {}, dict(frame.f_locals))  # noqa: S307
            except Exception:  # noqa: BLE001 - a name not bound yet: this slice says nothing
                break
            if isinstance(value, torch.Tensor) and value.numel() == 1:
                value = int(value)
            if not _is_int(value):
                break
            bounds.append(value)
        if len(bounds) == 2 and 0 < bounds[1] <= bounds[0]:
            lower, upper = ast.unparse(node.lower), ast.unparse(node.upper)
            return (f" A reduction ran over an empty tensor: your slice `[{lower}:{upper}]` is empty here ({lower} = "
                    f"{bounds[0]}, {upper} = {bounds[1]}): a slice's end is an index, not a length, so once the "
                    f"start reaches {bounds[1]} nothing is left. The end is the start plus the length, "
                    f"`[{lower}:{lower} + {upper}]` where `{upper}` is the block's length.")
    return ""
