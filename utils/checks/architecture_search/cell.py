"""Exercise 7.2: the cell of eq. (7.1), checked by its parameter count (eq. (7.2)) and its output."""
from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass

import torch
import torch.nn as nn

from utils.checks.architecture_search.reference import EX_CELL, copy_into, count, make_op, op_parameters, randomise
from utils.checks.core import Case, Mistake, one_thread


@dataclass(frozen=True)
class CellCase(Case):
    ops: tuple = ("conv3x3",)
    inputs: tuple = (0,)
    C: int = 4
    shape: tuple = (3, 4, 6, 6)  # (B, C, H, W)

    @property
    def sizes(self) -> dict[str, int]:
        B, C, H, W = self.shape
        return {"B": B, "C": C, "H": H, "W": W}


CASES = (
    CellCase("one node: conv3x3 on h_0, C=4", ops=("conv3x3",), inputs=(0,), C=4, shape=(3, 4, 6, 6)),
    CellCase("two nodes chained: max_pool3x3 → conv3x3, C=3", ops=("max_pool3x3", "conv3x3"), inputs=(0, 1), C=3,
             shape=(2, 3, 5, 5)),
    CellCase("three nodes: sep_conv3x3(h_0), conv5x5(h_0), skip(h_2), C=6", ops=("sep_conv3x3", "conv5x5", "skip"),
             inputs=(0, 0, 2), C=6, shape=(2, 6, 7, 7)),
    CellCase("three nodes: conv3x3(h_0), conv5x5(h_1), sep_conv3x3(h_0), C=5",
             ops=("conv3x3", "conv5x5", "sep_conv3x3"), inputs=(0, 1, 0), C=5, shape=(1, 5, 4, 4)),
    CellCase("the same op twice: conv3x3(h_0), conv3x3(h_1), C=3", ops=("conv3x3", "conv3x3"), inputs=(0, 1), C=3,
             shape=(2, 3, 4, 4)),
    CellCase("parameter-free: skip(h_0), max_pool3x3(h_1), C=2", ops=("skip", "max_pool3x3"), inputs=(0, 1), C=2,
             shape=(2, 2, 3, 3)),
)


class ReferenceCell(nn.Module):
    def __init__(self, ops, inputs, C):
        super().__init__()
        self.inputs = tuple(inputs)
        self.ops = nn.ModuleList(make_op(name, C) for name in ops)

    def forward(self, x, *, wiring="right", inputs=None):
        states = [x]
        for i, (op, source) in enumerate(zip(self.ops, inputs or self.inputs), start=1):
            if wiring == "chain":
                source = i - 1
            elif wiring == "input":
                source = 0
            states.append(op(states[source]))
        if wiring == "with input":
            return sum(states)
        if wiring == "last":
            return states[-1]
        if wiring == "mean":
            return sum(states[1:]) / len(self.ops)
        return sum(states[1:])


def _signature(module: nn.Module) -> list:
    return [(type(m).__name__, tuple(tuple(p.shape) for p in m.parameters(recurse=False))) for m in module.modules()]


def _describe(module: nn.Module) -> str:
    return " → ".join(type(m).__name__ for m in module.modules() if not list(m.children())) or type(module).__name__


def _node_problem(cell: nn.Module, case: CellCase) -> str | None:
    """Node i's module, read from self.ops, is not make_op(ops[i-1], C)."""
    ops = getattr(cell, "ops", None)
    if not isinstance(ops, nn.ModuleList) or len(ops) != len(case.ops):
        return None
    for i, (name, module) in enumerate(zip(case.ops, ops), start=1):
        if _signature(module) != _signature(make_op(name, case.C)):
            matches = [other for other in dict.fromkeys(case.ops)
                       if _signature(module) == _signature(make_op(other, case.C))]
            said = f"a {matches[0]}" if matches else _describe(module)
            return (f"node {i}'s operation should be {name} (make_op({name!r}, C)); yours is {said}. Build "
                    f"self.ops in node order, one make_op(name, C) per entry of `ops`.")
    if len({id(module) for module in ops}) < len(ops):
        return ("some of your nodes share one module object: build a new make_op(name, C) for every node, so each "
                "has its own weights.")
    return None


def _count_problem(cell: nn.Module, case: CellCase) -> str | None:
    want = sum(op_parameters(name, case.C) for name in case.ops)
    got = count(cell)
    node = _node_problem(cell, case)  # node by node first: it says which node, whatever the total
    if node or got == want:
        return node
    if got == 0 and want > 0:
        plain = [name for name, value in vars(cell).items() if isinstance(value, (list, tuple)) and value
                 and all(isinstance(v, nn.Module) for v in value)]
        return (f"your cell has no parameters (eq. (7.2) gives {want:,})" +
                (f": self.{plain[0]} is a plain Python list, which hides its modules from PyTorch — use "
                 f"nn.ModuleList(...)" if plain else ": build the operations in __init__ with make_op and keep "
                                                     "them in an nn.ModuleList") + ".")
    ops = getattr(cell, "ops", None)
    if isinstance(ops, nn.ModuleList) and len(ops) == len(case.ops):
        for i, (name, module) in enumerate(zip(case.ops, ops), start=1):
            if count(module) != op_parameters(name, case.C):
                return (f"node {i} ({name}) has {count(module):,} parameters; eq. (7.2) gives "
                        f"{op_parameters(name, case.C):,} for C = {case.C}: build it with make_op({name!r}, C), "
                        f"in node order.")
    if isinstance(ops, nn.ModuleList) and len(ops) != len(case.ops):
        return (f"self.ops holds {len(ops)} modules for a genotype of {len(case.ops)} nodes: one make_op(name, C) "
                f"per entry of `ops`.")
    return (f"your cell has {got:,} parameters; eq. (7.2) gives {want:,} for {case.ops} at C = {case.C} (one "
            f"make_op(name, C) per node, nothing else).")


def _wiring_mistakes(reference: ReferenceCell, x: torch.Tensor, case: CellCase, expected) -> list[Mistake]:
    """Every other acyclic wiring of the same operations (node i reads some h_s, s < i): an output that matches one
    of them says which node reads the wrong state."""
    found = []
    for inputs in itertools.product(*(range(i) for i in range(1, len(case.ops) + 1))):
        if inputs == case.inputs:
            continue
        with torch.no_grad():
            output = copy.deepcopy(reference)(x, inputs=inputs)
        if torch.allclose(output, expected, atol=1e-5):
            continue
        wrong = [f"node {i} reads h_{s} where inputs[{i - 1}] = {t} says h_{t}"
                 for i, (s, t) in enumerate(zip(inputs, case.inputs), start=1) if s != t]
        found.append(Mistake(output, f"your cell computes the right operations wired differently: {'; '.join(wrong)}. "
                                     f"Node i reads states[inputs[i-1]], where states[0] is the input x and "
                                     f"states[j] node j's output (eq. (7.1))."))
    return found


@one_thread
def check_cell(Cell) -> None:
    """Exercise 7.2: ``Cell(ops, inputs, C)`` has eq. (7.2)'s parameters and computes eq. (7.1)."""
    EX = EX_CELL
    for case in CASES:
        cell = EX.call(Cell, case.ops, case.inputs, case.C, what="Cell(ops, inputs, C)", case=case)
        if not isinstance(cell, nn.Module):
            raise EX.fail("Cell must be an nn.Module (keep `class Cell(nn.Module)` and super().__init__()).",
                          case=case)
        problem = _count_problem(cell, case)
        if problem:
            raise EX.fail(problem, case=case)
        reference = ReferenceCell(case.ops, case.inputs, case.C)
        randomise(reference, EX, case.label)
        copy_into(reference, cell, EX, case)
        x = EX.randn(*case.shape, key=(case.label, "x"))
        cell.train()
        got = EX.call(cell, x.clone(), what="Cell.forward", case=case)
        if isinstance(got, (list, tuple)):
            raise EX.fail(f"forward returned a {type(got).__name__} (the list of states?); return their sum over the "
                          f"nodes, one tensor of shape {tuple(case.shape)}.", case=case)
        with torch.no_grad():
            expected = reference(x)
            wrong = {w: copy.deepcopy(reference)(x, wiring=w) for w in ("with input", "last", "chain", "input", "mean")}
        mistakes = [
            Mistake(wrong["with input"], "your output includes the cell's input h_0: eq. (7.1) sums the nodes "
                                         "h_1 … h_N only (sum(states[1:])), the input is not a node."),
            Mistake(wrong["last"], "you return the last node only; eq. (7.1) sums every node, h_1 + … + h_N."),
            Mistake(wrong["chain"], "each of your nodes reads the node before it, ignoring `inputs`: node i reads "
                                    "state inputs[i-1] (states[source], with states[0] = x)."),
            Mistake(wrong["input"], "every node reads the cell's input x, ignoring `inputs`: node i reads "
                                    "states[inputs[i-1]], which may be an earlier node."),
            Mistake(wrong["mean"], "you average the nodes; eq. (7.1) sums them."),
        ]
        mistakes = [m for m in mistakes if not torch.allclose(m.output, expected, atol=1e-5)]
        mistakes += _wiring_mistakes(reference, x, case, expected)
        EX.compare(got, expected.detach(), case=case, equation="eq. (7.1)", mistakes=mistakes,
                   axes=("B", "C", "H", "W"), factors={"N (nodes)": float(len(case.ops))})
    EX.passed(f"{len(CASES)} genotypes: parameter counts match eq. (7.2) and outputs match eq. (7.1)")
