"""Reading a shape error in the exercise's quantities: which tensor is not what it should be.

A shape error names two sizes; the mistake is in *which tensor* carries them. Each exercise lists its quantities
(P is (…, Tq, Tk), a block of v is (…, block_size, d_v), …) with the names a learner gives them (``p``,
``weights``, ``v_block``), and the products of its equations (dV = Pᵀ dO). When the learner's code raises, the
operation that raised and the learner's variables where it raised (see :mod:`utils.checks.operands`) are read
against them:

- a variable that is not what its name says: transposed (``p`` is (…, Tk, Tq)), in another's place (``p`` has v's
  shape and ``v`` p's: unpacked in the wrong order), or with an axis holding another named size (``v_block`` has
  d_k columns where a block of v has d_v: the width of q and k, so it was sliced from k);
- a product that is not its equation's: the formula for the assigned name (``grad_v = …`` is dV = Pᵀ dO), or the
  one formula the operands resemble, with one factor that differs (P where Pᵀ belongs; K where Q belongs; a
  (D, D) matrix where W_T (T, T) belongs).

Only what the shapes single out is said; where several tensors could be the wrong one, they are all named.
"""
from __future__ import annotations

import re
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Callable

from utils.checks.operands import Operation, axis_names, failing_operation, tuple_text

TRANSPOSE = "ᵀ"


@dataclass(frozen=True)
class Quantity:
    """A tensor of the exercise: its symbol, the layouts its last axes may have (named sizes of the case; "1" is
    a size 1), the names a learner gives it, and whether it is an input of the learner's function."""

    symbol: str  # "P"
    layouts: tuple[tuple[str, ...], ...]  # (("Tq", "Tk"),)
    aliases: tuple[str, ...] = ()  # ("p", "weights", "attn")
    meaning: str = ""  # "the attention weights"
    source: bool = False  # an input: a size it carries can be said to come from it ("the width of q and k")
    hint: str = ""  # how to make it, said after a reading that finds it wrong


@dataclass(frozen=True)
class Product:
    """A matrix product of the exercise's equations: target = left @ right (symbols, ᵀ for a transpose)."""

    target: str  # "dV"
    left: str  # "Pᵀ"
    right: str  # "dO"
    equation: str  # "dV = Pᵀ dO (eq. (1.7))"


@dataclass(frozen=True)
class Roles:
    """The quantities and products of one exercise, and the sizes of one case."""

    quantities: tuple[Quantity, ...]
    products: tuple[Product, ...]
    sizes: dict
    flexible: tuple[str, ...] = ()  # sizes an axis may hold less of (the last block: block_size or fewer keys)

    def by_alias(self, name: str | None) -> Quantity | None:
        if not name:
            return None
        plain = name.removeprefix("self.").removeprefix("ctx.").lower()
        return next((q for q in self.quantities if plain in q.aliases), None)

    def by_symbol(self, symbol: str) -> Quantity | None:
        return next((q for q in self.quantities if q.symbol == symbol.rstrip(TRANSPOSE)), None)

    def layout_sizes(self, layout: tuple[str, ...]) -> tuple[int, ...] | None:
        if any(name != "1" and name not in self.sizes for name in layout):
            return None
        return tuple(1 if name == "1" else self.sizes[name] for name in layout)

    def fits(self, shape: tuple[int, ...], layout: tuple[str, ...]) -> bool:
        want = self.layout_sizes(layout)
        if want is None or len(shape) < len(want):
            return False
        tail = shape[len(shape) - len(want):]
        return all(got == size or (name in self.flexible and 0 < got <= size)
                   for got, size, name in zip(tail, want, layout))

    def symbols_of(self, shape: tuple[int, ...]) -> set[str]:
        """Every symbol (and transposed symbol) whose layout ``shape`` has."""
        found = set()
        for quantity in self.quantities:
            for layout in quantity.layouts:
                if self.fits(shape, layout):
                    found.add(quantity.symbol)
                if len(layout) >= 2 and self.fits(shape, (*layout[:-2], layout[-1], layout[-2])) and \
                        layout[-1] != layout[-2]:
                    found.add(quantity.symbol + TRANSPOSE)
        return found

    def layout_text(self, quantity: Quantity) -> str:
        return " or ".join(tuple_text(layout if layout[0] == "B" else ("…", *layout)) for layout in quantity.layouts)

    def named(self, size: int) -> str:
        if size == 1:
            return "1"
        names = [name for name, value in self.sizes.items() if value == size]
        return f"{' = '.join(names)} = {size}" if names else f"{size}"


# ---------------------------------------------------------------------------------------------- variables
def _axis_differences(shape, layout, roles: Roles) -> list[tuple[int, int, str]]:
    """(axis from the end, the size it holds, the name of the size that belongs there) where they differ."""
    want = roles.layout_sizes(layout)
    tail = shape[len(shape) - len(want):]
    return [(i - len(want), got, name) for i, (got, size, name) in enumerate(zip(tail, want, layout))
            if got != size and not (name in roles.flexible and 0 < got <= size)]


def _carriers(size: int, axis: int, roles: Roles, exclude: Quantity) -> list[str]:
    """The inputs whose layout holds ``size`` on ``axis`` (from the end): where such a size most likely came from."""
    found = []
    for quantity in roles.quantities:
        if quantity.source and quantity is not exclude:
            for layout in quantity.layouts:
                sizes = roles.layout_sizes(layout)
                if sizes and len(sizes) >= -axis and sizes[axis] == size:
                    found.append(quantity.symbol.lower() if len(quantity.symbol) == 1 else quantity.symbol)
                    break
    return found


def variable_reading(who: str, shape, quantity: Quantity, roles: Roles) -> str | None:
    """What is wrong with a tensor (``who``: "your `p`") of ``shape`` that should be ``quantity``; None if nothing."""
    layouts = [layout for layout in quantity.layouts if roles.layout_sizes(layout) is not None]
    if len(shape) < 2 or not layouts or any(roles.fits(shape, layout) for layout in layouts):
        return None
    head = f"{who} has shape {tuple_text(shape)}, but {quantity.symbol}"
    head += f" ({quantity.meaning})" if quantity.meaning else ""
    head += f" is {roles.layout_text(quantity)}"
    made = next((product.equation for product in roles.products if product.target == quantity.symbol), "")
    hint = f". {(quantity.hint or made).rstrip('.')}" if quantity.hint or made else ""
    for layout in quantity.layouts:
        if len(layout) >= 2 and layout[-1] != layout[-2] and roles.fits(shape, (*layout[:-2], layout[-1], layout[-2])):
            return head + f": yours is its transpose, (…, {layout[-1]}, {layout[-2]})" + hint
    others = sorted(roles.symbols_of(tuple(shape)) - {quantity.symbol})
    plain = [s for s in others if not s.endswith(TRANSPOSE)]
    layout = min(layouts, key=lambda lay: (len(_axis_differences(shape, lay, roles)) if
                                                    len(shape) >= len(lay) else 99, len(shape) != len(lay)))
    if len(shape) < len(layout):
        return head + (f": it has the shape of {' or '.join(plain)}" if plain else "")
    said = []
    for axis, got, belongs in _axis_differences(shape, layout, roles):
        carriers = _carriers(got, axis, roles, quantity)
        origin = f" (the size of that axis in {' and '.join(carriers)})" if carriers else ""
        belongs_text = "1" if belongs == "1" else f"{belongs} = {roles.sizes.get(belongs)}"
        said.append(f"its axis {axis} holds {roles.named(got)}{origin} where {belongs_text} belongs")
    found = "; ".join(said)
    if plain and len(plain) <= 3:
        found += " — it has the shape of " + " or ".join(_with_meaning(symbol, roles) for symbol in plain)
    return head + (f": {found}{hint}" if found else "")


def _with_meaning(symbol: str, roles: Roles) -> str:
    quantity = roles.by_symbol(symbol)
    return f"{symbol} ({quantity.meaning})" if quantity and quantity.meaning else symbol


def variables_reading(operation: Operation, roles: Roles) -> str | None:
    """The learner's variables (where the error was raised) that are not what their names say; two that hold
    each other's shapes are said to be in each other's places."""
    wrong = {}
    for name, shape in operation.variables:
        quantity = roles.by_alias(name)
        if quantity is not None:
            reading = variable_reading(f"your `{name}`", tuple(shape), quantity, roles)
            if reading:
                wrong[name] = (tuple(shape), quantity, reading)
    if not wrong:
        return None
    names = list(wrong)
    for a in names:
        for b in names:
            shape_a, quantity_a, _ = wrong[a]
            shape_b, quantity_b, _ = wrong[b]
            if a < b and any(roles.fits(shape_a, lay) for lay in quantity_b.layouts) and \
                    any(roles.fits(shape_b, lay) for lay in quantity_a.layouts):
                return (f"your `{a}` has the shape of {quantity_b.symbol} and your `{b}` the shape of "
                        f"{quantity_a.symbol}: they are in each other's places (two names bound in the wrong order, "
                        f"e.g. unpacking ctx.saved_tensors in another order than save_for_backward took them?).")
    readings = [reading for _, _, reading in wrong.values()]
    more = f"; likewise {', '.join(f'`{name}`' for name in names[2:])}" if len(names) > 2 else ""
    return "; ".join(readings[:2]) + more + "."


# ---------------------------------------------------------------------------------------------- products
_TARGET = re.compile(r"^\s*(?:self\.)?([A-Za-z_]\w*)\s*(?:\[[^\]]*\])?\s*[-+*/@]?=(?!=)")


def _operand_symbols(operand, roles: Roles) -> set[str]:
    quantity = roles.by_alias(operand.name) if operand.name and not (operand.view or operand.origin) else None
    if quantity is not None and any(roles.fits(operand.shape, lay) for lay in quantity.layouts):
        return {quantity.symbol}
    return roles.symbols_of(tuple(operand.shape))


def _said(operand, symbols: set[str], roles: Roles) -> str:
    names = axis_names(operand.shape, roles.sizes)
    shape = tuple_text(operand.shape) + (f" = {tuple_text(names)}" if names else "")
    who = f"`{operand.name}`" if operand.name and not (operand.view or operand.origin) else f"a {shape} tensor"
    shown = " or ".join(sorted(symbols)) if symbols and len(symbols) <= 4 else ""
    return who + (f" ({shown})" if shown and shown != operand.name else "")


def _product_reading(product: Product, left, right, roles: Roles) -> str | None:
    """The one factor of ``product`` that the operands do not match, or None when none or both differ."""
    sides = [(left, product.left, "first"), (right, product.right, "second")]
    wrong = [(operand, want, which, _operand_symbols(operand, roles)) for operand, want, which in sides
             if want not in _operand_symbols(operand, roles)]
    if len(wrong) != 1:
        return None
    operand, want, which, symbols = wrong[0]
    plain = want.rstrip(TRANSPOSE)
    if want.endswith(TRANSPOSE) and plain in symbols:
        fix = f"{operand.name}.transpose(-2, -1)" if operand.name and not operand.view else "its .transpose(-2, -1)"
        return (f"{product.equation}: your {which} factor is {_said(operand, {plain}, roles)}, which needs its "
                f"transpose, {fix}.")
    if want + TRANSPOSE in symbols:
        result = product.equation.split("=")[0].strip()
        elsewhere = [other.equation for other in roles.products if other is not product and
                     want + TRANSPOSE in (other.left, other.right)]
        belongs = f" ({want}{TRANSPOSE} belongs to {elsewhere[0]})" if elsewhere else ""
        return (f"{product.equation}: your {which} factor is {_said(operand, symbols, roles)}, transposed where "
                f"the equation has {want}: a transpose too many in {result}{belongs}. Drop that transpose from "
                f"{result}.")
    if not symbols:
        return None
    got = " or ".join(sorted(symbols)) if len(symbols) <= 3 else "another tensor"
    return (f"{product.equation}: your {which} factor is {_said(operand, symbols, roles)} where the equation has "
            f"{want}: use {want}, not {got}.")


def products_reading(operation: Operation, roles: Roles, line: str) -> str | None:
    """A failing matrix product read against the product of the assigned name (``grad_v = …`` is dV), or else
    against the one product of the exercise that it matches in all but one factor."""
    if operation.op not in ("matmul", "mm", "bmm") or len(operation.operands) != 2:
        return None
    left, right = operation.operands
    match = _TARGET.match(line)
    target = roles.by_alias(match.group(1)) if match else None
    if target is not None:
        for product in roles.products:
            if product.target == target.symbol:
                found = _product_reading(product, left, right, roles)
                if found:
                    return found
    readings = {_product_reading(product, left, right, roles) for product in roles.products
                if target is None or product.target != target.symbol}
    readings.discard(None)
    return readings.pop() if len(readings) == 1 else None


# ---------------------------------------------------------------------------------------------- the call
_CALL: ContextVar = ContextVar("learner_call", default=None)


@contextmanager
def learner_call(fn: Callable, args: tuple, kwargs: dict):
    """Remember the learner's call while it runs, so that a reading of its exception can run it once more."""
    token = _CALL.set((fn, args, kwargs))
    try:
        yield
    finally:
        _CALL.reset(token)


def read_roles(error: BaseException, line: str, roles: Roles) -> str | None:
    """The reading of a shape error in the exercise's quantities, or None (see the module's docstring)."""
    call = _CALL.get()
    if call is None:
        return None
    try:
        operation = failing_operation(*call, error)
        if operation is None:
            return None
        found = variables_reading(operation, roles) or products_reading(operation, roles, line)
    except Exception:  # noqa: BLE001 - a reading that cannot be made says nothing; the generic one stands
        return None
    return found[0].upper() + found[1:] if found and found.startswith("your") else found
