"""Readings of the learner's own source, for mistakes whose only trace in the numbers is a missing gradient: a
return inside ``with torch.no_grad():``, ``x = x.data``, and an in-place operation on a tensor saved for backward."""
from __future__ import annotations

import ast
import inspect
import textwrap

from utils.checks.core import CheckFailure, run_module


def _forward_tree(obj) -> tuple[ast.FunctionDef, str] | None:
    """The parsed ``forward`` of a module (instance or class), an autograd.Function, or a plain function."""
    function = obj if inspect.isfunction(obj) else getattr(obj if inspect.isclass(obj) else type(obj), "forward", None)
    try:
        source = textwrap.dedent(inspect.getsource(function))
        tree = ast.parse(source)
    except (OSError, TypeError, SyntaxError, IndentationError):
        return None
    node = tree.body[0] if tree.body else None
    return (node, source) if isinstance(node, ast.FunctionDef) else None


def _is_no_grad(item: ast.withitem) -> bool:
    call = item.context_expr
    target = call.func if isinstance(call, ast.Call) else call
    return isinstance(target, ast.Attribute) and target.attr in ("no_grad", "inference_mode")


def _input_name(function: ast.FunctionDef) -> str | None:
    names = [a.arg for a in function.args.args if a.arg not in ("self", "ctx")]
    return names[0] if names else None


def _detaches(value: ast.AST, name: str) -> bool:
    """``name.data`` or ``name.detach()``, alone or inside a chain (``x.detach().clone()``)."""
    return any(isinstance(node, ast.Attribute) and node.attr in ("data", "detach") and
               isinstance(node.value, ast.Name) and node.value.id == name for node in ast.walk(value))


def graph_cut_reading(obj) -> str | None:
    """Why your output (or x) has no gradient, read from forward's source: a ``return`` inside a no_grad block, or
    the input detached (``x = x.data``, ``x.detach()``); None when neither is there."""
    found = _forward_tree(obj)
    if found is None:
        return None
    function, source = found
    for node in ast.walk(function):
        if isinstance(node, ast.With) and any(_is_no_grad(item) for item in node.items) and \
                any(isinstance(inner, ast.Return) for statement in node.body for inner in ast.walk(statement)):
            return ("your `return` is inside the `with torch.no_grad():` block, so the output is computed with "
                    "autograd switched off and carries no gradient: dedent the return (and the computation of the "
                    "output) out of the block; keep under no_grad only what must not be differentiated (BatchNorm's "
                    "running-statistic updates).")
    name = _input_name(function)
    for node in ast.walk(function):
        if isinstance(node, ast.Assign) and name and _detaches(node.value, name):
            code = ast.get_source_segment(source, node) or f"{name} = {name}.data"
            return (f"`{code}` takes {name} out of the autograd graph, so no gradient reaches the input "
                    f"({name}.grad stays None): use {name} itself — autograd needs every step from {name} to the "
                    f"output.")
    return None


_INPLACE_KEEP = {"requires_grad_", "retain_grad_"}


def inplace_on_saved_reading(function_class) -> str | None:
    """An in-place operation in forward (``x_hat.mul_(γ)``, ``y *= γ``) after ``ctx.save_for_backward``: the saved
    tensor is the same object, so backward reads it changed. The statement that did it, or None."""
    found = _forward_tree(function_class)
    if found is None:
        return None
    function, source = found
    saved_line = next((node.lineno for node in ast.walk(function) if isinstance(node, ast.Call)
                       and isinstance(node.func, ast.Attribute) and node.func.attr == "save_for_backward"), None)
    if saved_line is None:
        return None
    for node in sorted(ast.walk(function), key=lambda n: getattr(n, "lineno", 0)):
        if getattr(node, "lineno", 0) < saved_line:
            continue
        inplace = isinstance(node, ast.AugAssign) or (
            isinstance(node, ast.Assign) and any(isinstance(t, ast.Subscript) for t in node.targets)) or (
            isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr.endswith("_")
            and not node.func.attr.startswith("_") and node.func.attr not in _INPLACE_KEEP)
        if inplace:
            code = ast.get_source_segment(source, node) or "an in-place operation"
            return (f"`{code}` changes a tensor in place after ctx.save_for_backward saved it — save_for_backward "
                    f"keeps the tensor itself, not a copy — so your backward read x̂ already turned into y = γ·x̂ + β. "
                    f"Compute the output out of place: y = x_hat * γ + β.")
    return None




def run_learner_module(exercise, module, x, grad_out=None, *, case=None):
    """core's run_module, with an output cut from the graph read from your source (a return under no_grad, x
    detached) when the source says why."""
    try:
        return run_module(exercise, module, x, grad_out, case=case)
    except CheckFailure as failure:
        reading = graph_cut_reading(module) if "not connected to the autograd graph" in str(failure) else None
        if reading is None:
            raise
        raise exercise.fail(reading, case=case) from None
