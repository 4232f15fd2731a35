"""Ten wrong answers written after the checks were finished, run once without tuning the checks (chapter 07).

Each is a mistake a learner plausibly makes that the catalogue in test_checks_architecture_search.py does not
contain. On first contact, untuned: 9 of 10 rejected, 5 named (inputs up to n_nodes, lr as a categorical, a
ModuleDict that merges repeated ops, counts rounded instead of floored, `break` instead of raising TrialPruned); 3
rejected with the vague "compare with eq. (…)" (a miswired node, a median split, an edge counter reset per node); 1
with the values shown but not named (accuracy in percent); and a torch.quantile split passed, being equal to ⌈γn⌉
on every case the check had. Four generalising readings came of them (any other wiring of the cell's nodes; any
other split k of the observations, with a large-γ case where quantile splits differ; accuracy ×100; an edge counter
reset per node): the words asserted below are what the checks say now.
"""
import optuna
import pytest
import torch
import torch.nn as nn

from tests.checks_harness import assert_diagnoses, exercise
from tests.test_checks_architecture_search import NS, OPS, WIDTHS, Genotype, SolvedCell, SolvedSuperCell, make_op
from utils.checks import architecture_search as checks

CHAPTER = "07_architecture_search"
sample_genotype = NS["sample_genotype"]


def fresh_inputs_up_to_n_nodes(trial):
    width = trial.suggest_categorical("width", WIDTHS)
    n = trial.suggest_int("n_nodes", 1, 3)
    ops = tuple(trial.suggest_categorical(f"op_{i}", OPS) for i in range(1, n + 1))
    inputs = tuple(trial.suggest_int(f"input_{i}", 0, n - 1) for i in range(1, n + 1))
    return Genotype(width, ops, inputs, trial.suggest_float("lr", 0.01, 0.3, log=True))


def fresh_lr_categorical(trial):
    width = trial.suggest_categorical("width", WIDTHS)
    n = trial.suggest_int("n_nodes", 1, 3)
    ops = tuple(trial.suggest_categorical(f"op_{i}", OPS) for i in range(1, n + 1))
    inputs = tuple(trial.suggest_int(f"input_{i}", 0, i - 1) for i in range(1, n + 1))
    return Genotype(width, ops, inputs, trial.suggest_categorical("lr", [0.01, 0.03, 0.1, 0.3]))


class FreshCellStatesWithoutInput(SolvedCell):
    def forward(self, x):
        nodes = []
        for op, s in zip(self.ops, self.inputs):
            h = x if s == 0 else nodes[s - 1 - 1 if s > 1 else 0]
            nodes.append(op(h))
        return sum(nodes)


class FreshCellModuleDict(SolvedCell):
    def __init__(self, ops, inputs, C):
        nn.Module.__init__(self)
        self.inputs, self.names = tuple(inputs), tuple(ops)
        self.ops = nn.ModuleDict({name: make_op(name, C) for name in ops})

    def forward(self, x):
        states = [x]
        for name, s in zip(self.names, self.inputs):
            states.append(self.ops[name](states[s]))
        return sum(states[1:])


def fresh_tpe_quantile(candidates, x, y, gamma, bandwidth):
    threshold = torch.quantile(y, 1 - gamma)
    good, bad = x[y >= threshold], x[y < threshold]

    def kde(points):
        return torch.distributions.Normal(points, bandwidth).log_prob(candidates[:, None]).exp().mean(1)
    return kde(good) / kde(bad)


def fresh_tpe_median_split(candidates, x, y, gamma, bandwidth):
    good, bad = x[y > y.median()], x[y <= y.median()]

    def kde(points):
        return torch.distributions.Normal(points, bandwidth).log_prob(candidates[:, None]).exp().mean(1)
    return kde(good) / kde(bad)


def fresh_halving_round(n_configs, min_steps, eta):
    rungs, n_i, r_i = [], n_configs, min_steps
    while n_i > 0:
        rungs.append((n_i, r_i))
        n_i, r_i = round(n_i / eta), r_i * eta
    return rungs


def fresh_objective_percent(trial, trainer, steps, report_every):
    model, optimizer = trainer.build(sample_genotype(trial))
    for done in range(report_every, steps + 1, report_every):
        trainer.train(model, optimizer, report_every)
        accuracy = 100 * trainer.accuracy(model)
        trial.report(accuracy, done)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return accuracy


def fresh_objective_break(trial, trainer, steps, report_every):
    model, optimizer = trainer.build(sample_genotype(trial))
    for done in range(report_every, steps + 1, report_every):
        trainer.train(model, optimizer, report_every)
        accuracy = trainer.accuracy(model)
        trial.report(accuracy, done)
        if trial.should_prune():
            break
    return accuracy


class FreshSuperEdgeCounterReset(SolvedSuperCell):
    def forward(self, x):
        weights = torch.softmax(self.alphas, dim=-1)
        states = [x]
        for _ in range(self.n_nodes):
            node = 0
            for edge, state in enumerate(states):
                node = node + sum(w * op(state) for w, op in zip(weights[edge], self.edges[edge]))
            states.append(node)
        return sum(states[1:])


FRESH = [
    ("7.1", checks.check_sample_genotype, fresh_inputs_up_to_n_nodes, ("input_1", "0 ≤ s_i < i")),
    ("7.1", checks.check_sample_genotype, fresh_lr_categorical, ("lr", "float")),
    ("7.2", checks.check_cell, FreshCellStatesWithoutInput, ("wired differently", "node 3 reads h_1")),
    ("7.2", checks.check_cell, FreshCellModuleDict, ("one make_op(name, C) per node",)),
    ("7.3", checks.check_tpe_ratio, fresh_tpe_quantile, ("2 good observations", "⌈γn⌉ = 3")),
    ("7.3", checks.check_tpe_ratio, fresh_tpe_median_split, ("10 highest", "⌈γn⌉ = 5")),
    ("7.4", checks.check_successive_halving, fresh_halving_round, ("⌊n/η^i⌋",)),
    ("7.5", checks.check_objective, (fresh_objective_percent, sample_genotype), ("percent",)),
    ("7.5", checks.check_objective, (fresh_objective_break, sample_genotype), ("TrialPruned", "COMPLETE")),
    ("7.6", checks.check_super_cell, FreshSuperEdgeCounterReset, ("restarts at 0",)),
]


@pytest.mark.parametrize("exercise_id, check, wrong, words", FRESH,
                         ids=[(w[0] if isinstance(w, tuple) else w).__name__ for _, _, w, _ in FRESH])
def test_fresh_wrong_answers_are_rejected(exercise_id, check, wrong, words):
    exercise(exercise_id)  # the marker exists
    assert_diagnoses(check, wrong, *words)


def test_fresh_set_size():
    assert len(FRESH) == 10
