"""Exercise 7.6: the DARTS supercell, eq. (7.8): output and gradients against a reference with the same weights."""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn as nn

from utils.checks.architecture_search.reference import EX_SUPER, OPS, make_op, randomise
from utils.checks.core import Case, Mistake, compare_runs, one_thread, run_module


@dataclass(frozen=True)
class SuperCase(Case):
    C: int = 3
    n_nodes: int = 2
    shape: tuple = (2, 3, 5, 5)

    @property
    def sizes(self) -> dict[str, int]:
        B, C, H, W = self.shape
        return {"B": B, "C": C, "H": H, "W": W, "n_edges": self.n_nodes * (self.n_nodes + 1) // 2,
                "n_ops": len(OPS)}


CASES = (
    SuperCase("n_nodes=2 (3 edges), C=3", C=3, n_nodes=2, shape=(2, 3, 5, 5)),
    SuperCase("n_nodes=1 (1 edge), C=2", C=2, n_nodes=1, shape=(3, 2, 4, 4)),
    SuperCase("n_nodes=3 (6 edges), C=2, batch of 2", C=2, n_nodes=3, shape=(2, 2, 3, 3)),
)


class ReferenceSuperCell(nn.Module):
    def __init__(self, C, n_nodes):
        super().__init__()
        self.n_nodes = n_nodes
        n_edges = n_nodes * (n_nodes + 1) // 2
        self.edges = nn.ModuleList(nn.ModuleList(make_op(name, C) for name in OPS) for _ in range(n_edges))
        self.alphas = nn.Parameter(1e-3 * torch.randn(n_edges, len(OPS)))

    def forward(self, x, *, variant="right"):
        if variant == "softmax dim 0":
            weights = torch.softmax(self.alphas, dim=0)
        elif variant == "raw alphas":
            weights = self.alphas
        elif variant == "log_softmax":
            weights = torch.log_softmax(self.alphas, dim=-1)
        elif variant == "sigmoid":
            weights = torch.sigmoid(self.alphas)
        elif variant == "hard argmax":
            weights = torch.nn.functional.one_hot(self.alphas.argmax(-1), len(OPS)).to(self.alphas.dtype)
        elif variant == "softmax over all":
            weights = torch.softmax(self.alphas.flatten(), dim=0).view_as(self.alphas)
        else:
            weights = torch.softmax(self.alphas, dim=-1)
        states, edge = [x], 0
        for i in range(self.n_nodes):
            node = 0
            sources = list(range(len(states)))
            if variant == "reversed sources":
                sources = sources[::-1]
            if variant == "counter reset":
                edge = 0
            for j in sources:
                state = states[-1] if variant == "previous only" else states[j]
                node = node + sum(w * op(state) for w, op in zip(weights[edge], self.edges[edge]))
                edge += 1
            states.append(node)
        if variant == "last":
            return states[-1]
        if variant == "with input":
            return sum(states)
        return sum(states[1:])


def _variant(reference, x, variant):
    with torch.no_grad():
        return copy.deepcopy(reference)(x, variant=variant)


MESSAGES = {
    "softmax dim 0": "your softmax runs over the edges (dim=0 of alphas, shape (n_edges, n_ops)): each OPERATION then "
                     "gets a distribution over edges. Eq. (7.8) normalises the operations of one edge: "
                     "torch.softmax(self.alphas, dim=-1).",
    "raw alphas": "you weight the operations by the raw alphas: eq. (7.8) weights them by softmax(alphas) over the "
                  "operations of each edge (positive, summing to 1 per edge).",
    "log_softmax": "you weight the operations by log_softmax(alphas), the log-probabilities (negative numbers): eq. "
                   "(7.8) weights them by the probabilities themselves, torch.softmax(self.alphas, dim=-1).",
    "sigmoid": "you weight the operations by sigmoid(alphas): eq. (7.8) uses a softmax over the operations of each "
               "edge, so the weights of one edge sum to 1 and compete.",
    "softmax over all": "your softmax runs over all edges and operations at once (a flattened alphas): eq. (7.8) "
                        "normalises each edge's row separately, torch.softmax(self.alphas, dim=-1).",
    "hard argmax": "you keep only the strongest operation of each edge (an argmax, one-hot): eq. (7.8) mixes every "
                   "operation with its softmax weight — an argmax has no gradient, so the search could never move the "
                   "alphas. Discretise only after the search.",
    "previous only": "each of your edges into a node reads the previous state only: the edge from h_j must read "
                     "states[j] (node i has one edge from each of h_0 … h_{i-1}).",
    "reversed sources": "your edges are matched to the wrong sources: self.edges is stored node by node with sources "
                        "in increasing order (node 2: edge 1 from h_0, edge 2 from h_1); keep one running edge "
                        "counter in that order.",
    "counter reset": "your edge index restarts at 0 for every node, so every node reuses the first edges' "
                     "operations and alphas: the edges are stored node after node (node 2's are rows 1 and 2), so keep "
                     "one counter that runs across all nodes.",
    "last": "you return the last node only; the cell's output sums every node, h_1 + … + h_N (eq. (7.1)).",
    "with input": "your output includes the cell's input h_0: sum the nodes h_1 … h_N only.",
}


@one_thread
def check_super_cell(SuperCell) -> None:
    """Exercise 7.6: ``SuperCell(C, n_nodes).forward`` mixes every operation of every edge by softmax(alphas) over
    the operations (eq. (7.8)), with gradients reaching the alphas."""
    EX = EX_SUPER
    for case in CASES:
        cell = EX.call(SuperCell, case.C, case.n_nodes, what="SuperCell(C, n_nodes)", case=case)
        reference = ReferenceSuperCell(case.C, case.n_nodes)
        randomise(reference, EX, case.label)
        with torch.no_grad():
            reference.alphas.copy_(EX.randn(*reference.alphas.shape, key=(case.label, "alphas")) * 1.5)
        mine, yours = dict(reference.named_parameters()), dict(cell.named_parameters())
        if mine.keys() != yours.keys() or any(mine[k].shape != yours[k].shape for k in mine):
            raise EX.fail("your SuperCell's parameters differ from the given __init__'s (self.edges, self.alphas of "
                          "shape (n_edges, n_ops)): keep __init__ as given and write forward only.", case=case)
        with torch.no_grad():
            for key, parameter in mine.items():
                yours[key].copy_(parameter)
        cell.train()
        x = EX.randn(*case.shape, key=(case.label, "x"))
        expected = run_module(EX, copy.deepcopy(reference), x, case=case)
        mistakes = [Mistake(_variant(reference, x, v), message) for v, message in MESSAGES.items()]
        mistakes = [m for m in mistakes if not torch.allclose(m.output, expected.output, atol=1e-5)]
        got = run_module(EX, cell, x, case=case)
        compare_runs(EX, got, expected, case=case, equation="eq. (7.8)", output_mistakes=mistakes,
                     axes=("B", "C", "H", "W"), grad_equation="the backward of eq. (7.8) (autograd computes it "
                                                            "from your forward)")
    EX.passed(f"{len(CASES)} supercells: outputs and gradients (the alphas' included) match eq. (7.8)")
