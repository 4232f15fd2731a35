"""Every check of Chapter 07 passes on the reference answers and names each wrong answer in words a learner can act on.

The wrong answers are written the way a learner writes them: a function, or a class whose method the learner filled
in, never built from the checks' own references. Each test carries its exercise's marker: ``pytest -m ex7_3``.
"""
import math

import optuna
import pytest
import torch
import torch.nn as nn

from tests.checks_harness import assert_diagnoses, assert_passes, assert_stub_passes_through, exercise
from tests.test_chapter07_solutions import chapter_namespace
from utils.checks import architecture_search as checks

CHAPTER = "07_architecture_search"
NS = chapter_namespace()
OPS, WIDTHS, Genotype, make_op = NS["OPS"], NS["WIDTHS"], NS["Genotype"], NS["make_op"]
SolvedCell, SolvedSuperCell = NS["Cell"], NS["SuperCell"]
sample_genotype = NS["sample_genotype"]


def stub(*args, **kwargs):
    raise NotImplementedError("Exercise 7.0: write the body of `x`, then run the check cell below.")


# ================================================================================================ Exercise 7.1
def space_from_zero(trial):
    width = trial.suggest_categorical("width", WIDTHS)
    n = trial.suggest_int("n_nodes", 1, 3)
    ops = [trial.suggest_categorical(f"op_{i}", OPS) for i in range(n)]
    inputs = [trial.suggest_int(f"input_{i}", 0, i) for i in range(n)]
    return Genotype(width, tuple(ops), tuple(inputs), trial.suggest_float("lr", 0.01, 0.3, log=True))


def space_always_three(trial):
    width = trial.suggest_categorical("width", WIDTHS)
    trial.suggest_int("n_nodes", 1, 3)
    ops = [trial.suggest_categorical(f"op_{i}", OPS) for i in range(1, 4)]
    inputs = [trial.suggest_int(f"input_{i}", 0, i - 1) for i in range(1, 4)]
    return Genotype(width, tuple(ops), tuple(inputs), trial.suggest_float("lr", 0.01, 0.3, log=True))


def _space(trial, *, low=0, high=lambda i: i - 1, log=True, names=("op_{i}", "input_{i}"), stop=1,
           lr=(0.01, 0.3), nodes=(1, 3)):
    width = trial.suggest_categorical("width", WIDTHS)
    n = trial.suggest_int("n_nodes", *nodes)
    ops, inputs = [], []
    for i in range(1, n + stop):
        ops.append(trial.suggest_categorical(names[0].format(i=i), OPS))
        inputs.append(trial.suggest_int(names[1].format(i=i), low, high(i)))
    return Genotype(width, tuple(ops), tuple(inputs), trial.suggest_float("lr", *lr, log=log))


def space_input_includes_itself(trial):
    return _space(trial, high=lambda i: i)


def space_input_any_node(trial):
    return _space(trial, high=lambda i: 2)


def space_input_from_one(trial):
    return _space(trial, low=1, high=lambda i: i)


def space_linear_lr(trial):
    return _space(trial, log=False)


def space_one_name(trial):
    return _space(trial, names=("op", "input_{i}"))


def space_misses_last_node(trial):
    return _space(trial, stop=0) if trial.suggest_int("n_nodes", 1, 3) > 1 else _space(trial)


def space_wrong_lr_range(trial):
    return _space(trial, lr=(0.001, 0.1))


def space_nodes_from_zero(trial):
    return _space(trial, nodes=(0, 3))


def space_lists(trial):
    g = _space(trial)
    return Genotype(g.width, list(g.ops), list(g.inputs), g.lr)


def space_no_return(trial):
    _space(trial)


def space_swapped_fields(trial):
    g = _space(trial)
    return Genotype(g.width, g.inputs, g.ops, g.lr)


def space_learning_rate_name(trial):
    width = trial.suggest_categorical("width", WIDTHS)
    n = trial.suggest_int("n_nodes", 1, 3)
    ops = tuple(trial.suggest_categorical(f"op_{i}", OPS) for i in range(1, n + 1))
    inputs = tuple(trial.suggest_int(f"input_{i}", 0, i - 1) for i in range(1, n + 1))
    return Genotype(width, ops, inputs, trial.suggest_float("learning_rate", 0.01, 0.3, log=True))


def space_width_int(trial):
    width = trial.suggest_int("width", 8, 24, step=8)
    g = _space_rest(trial)
    return Genotype(width, g[0], g[1], g[2])


def _space_rest(trial):
    n = trial.suggest_int("n_nodes", 1, 3)
    ops = tuple(trial.suggest_categorical(f"op_{i}", OPS) for i in range(1, n + 1))
    inputs = tuple(trial.suggest_int(f"input_{i}", 0, i - 1) for i in range(1, n + 1))
    return ops, inputs, trial.suggest_float("lr", 0.01, 0.3, log=True)


@exercise("7.1")
def test_space_reference_passes():
    assert_passes(checks.check_sample_genotype, sample_genotype)


@exercise("7.1")
def test_space_stub_passes_through():
    assert_stub_passes_through(checks.check_sample_genotype, stub)


@exercise("7.1")
@pytest.mark.parametrize("wrong, words", [
    (space_from_zero, ("from 0", "range(1, n_nodes + 1)")),
    (space_always_three, ("define-by-run", "not a fixed 3")),
    (space_input_includes_itself, ("its own output", "0 ≤ s_i < i")),
    (space_input_any_node, ("later node", "cycle")),
    (space_input_from_one, ("shifted by one", "h_0")),
    (space_linear_lr, ("linear scale", "log=True")),
    (space_one_name, ("same name", "f\"op_{i}\"")),
    (space_misses_last_node, ("never asked for", "end of range is excluded")),
    (space_wrong_lr_range, ("\"lr\" should run from 0.01 to 0.3",)),
    (space_nodes_from_zero, ("\"n_nodes\" should be an integer from 1 to 3",)),
    (space_lists, ("list", "tuple", "hashable")),
    (space_no_return, ("Genotype", "forget `return`")),
    (space_swapped_fields, ("ops", "trial's values give")),
    (space_learning_rate_name, ("never asked for \"lr\"", "learning_rate")),
    (space_width_int, ("\"width\" should be one of", "an integer from 8 to 24")),
])
def test_space_mistakes_are_named(wrong, words):
    assert_diagnoses(checks.check_sample_genotype, wrong, *words)


# ================================================================================================ Exercise 7.2
class CellPlainList(SolvedCell):
    def __init__(self, ops, inputs, C):
        nn.Module.__init__(self)
        self.inputs = tuple(inputs)
        self.op_list = [make_op(name, C) for name in ops]

    def forward(self, x):
        states = [x]
        for op, s in zip(self.op_list, self.inputs):
            states.append(op(states[s]))
        return sum(states[1:])


class CellWithInput(SolvedCell):
    def forward(self, x):
        states = [x]
        for op, s in zip(self.ops, self.inputs):
            states.append(op(states[s]))
        return sum(states)


class CellLastNode(SolvedCell):
    def forward(self, x):
        states = [x]
        for op, s in zip(self.ops, self.inputs):
            states.append(op(states[s]))
        return states[-1]


class CellChained(SolvedCell):
    def forward(self, x):
        states = [x]
        for op in self.ops:
            states.append(op(states[-1]))
        return sum(states[1:])


class CellAllFromInput(SolvedCell):
    def forward(self, x):
        return sum(op(x) for op in self.ops)


class CellMean(SolvedCell):
    def forward(self, x):
        states = [x]
        for op, s in zip(self.ops, self.inputs):
            states.append(op(states[s]))
        return sum(states[1:]) / len(self.ops)


class CellReversedOps(SolvedCell):
    def __init__(self, ops, inputs, C):
        nn.Module.__init__(self)
        self.inputs = tuple(inputs)
        self.ops = nn.ModuleList(make_op(name, C) for name in reversed(ops))


class CellSharedOp(SolvedCell):
    def __init__(self, ops, inputs, C):
        nn.Module.__init__(self)
        self.inputs = tuple(inputs)
        first = make_op(ops[0], C)
        self.ops = nn.ModuleList([first] * len(ops))


class CellIndexOffByOne(SolvedCell):
    def forward(self, x):
        states = [x]
        for op, s in zip(self.ops, self.inputs):
            states.append(op(states[s + 1]))
        return sum(states[1:])


class CellReturnsStates(SolvedCell):
    def forward(self, x):
        states = [x]
        for op, s in zip(self.ops, self.inputs):
            states.append(op(states[s]))
        return states[1:]


class CellWithBias(SolvedCell):
    def __init__(self, ops, inputs, C):
        super().__init__(ops, inputs, C)
        self.bias = nn.Parameter(torch.zeros(C))


@exercise("7.2")
def test_cell_reference_passes():
    assert_passes(checks.check_cell, SolvedCell)


@exercise("7.2")
def test_cell_stub_passes_through():
    assert_stub_passes_through(checks.check_cell, stub)


@exercise("7.2")
@pytest.mark.parametrize("wrong, words", [
    (CellPlainList, ("no parameters", "plain Python list", "nn.ModuleList")),
    (CellWithInput, ("includes the cell's input", "states[1:]")),
    (CellLastNode, ("last node only",)),
    (CellChained, ("node before it", "ignoring `inputs`")),
    (CellAllFromInput, ("every node reads the cell's input",)),
    (CellMean, ("average",)),
    (CellReversedOps, ("node 1", "in node order")),
    (CellSharedOp, ("node 2", "conv3x3")),
    (CellIndexOffByOne, ("IndexError",)),
    (CellReturnsStates, ("list", "sum")),
    (CellWithBias, ("parameters", "nothing else")),
])
def test_cell_mistakes_are_named(wrong, words):
    assert_diagnoses(checks.check_cell, wrong, *words)


# ================================================================================================ Exercise 7.3
def _kde(points, at, s):
    z = (at[:, None] - points[None, :]) / s
    return torch.exp(-0.5 * z ** 2).mean(dim=1) / (s * math.sqrt(2 * math.pi))


def _split(x, y, gamma, *, descending=True, rounding=math.ceil):
    n_good = rounding(gamma * len(y))
    order = torch.argsort(y, descending=descending)
    return x[order[:n_good]], x[order[n_good:]]


def tpe_inverted(candidates, x, y, gamma, bandwidth):
    good, bad = _split(x, y, gamma)
    return _kde(bad, candidates, bandwidth) / _kde(good, candidates, bandwidth)


def tpe_minimises(candidates, x, y, gamma, bandwidth):
    good, bad = _split(x, y, gamma, descending=False)
    return _kde(good, candidates, bandwidth) / _kde(bad, candidates, bandwidth)


def tpe_floor(candidates, x, y, gamma, bandwidth):
    good, bad = _split(x, y, gamma, rounding=lambda v: max(1, int(v)))
    return _kde(good, candidates, bandwidth) / _kde(bad, candidates, bandwidth)


def tpe_sums(candidates, x, y, gamma, bandwidth):
    good, bad = _split(x, y, gamma)

    def total(points):
        z = (candidates[:, None] - points[None, :]) / bandwidth
        return torch.exp(-0.5 * z ** 2).sum(dim=1) / (bandwidth * math.sqrt(2 * math.pi))
    return total(good) / total(bad)


def tpe_variance(candidates, x, y, gamma, bandwidth):
    good, bad = _split(x, y, gamma)
    return _kde(good, candidates, bandwidth ** 2) / _kde(bad, candidates, bandwidth ** 2)


def tpe_g_from_all(candidates, x, y, gamma, bandwidth):
    good, _ = _split(x, y, gamma)
    return _kde(good, candidates, bandwidth) / _kde(x, candidates, bandwidth)


def tpe_log(candidates, x, y, gamma, bandwidth):
    good, bad = _split(x, y, gamma)
    return torch.log(_kde(good, candidates, bandwidth)) - torch.log(_kde(bad, candidates, bandwidth))


def tpe_both_flipped(candidates, x, y, gamma, bandwidth):
    good, bad = _split(x, y, gamma, descending=False)
    return _kde(bad, candidates, bandwidth) / _kde(good, candidates, bandwidth)


def tpe_scalar(candidates, x, y, gamma, bandwidth):
    good, bad = _split(x, y, gamma)
    return (_kde(good, candidates, bandwidth) / _kde(bad, candidates, bandwidth)).mean()


def tpe_float32(candidates, x, y, gamma, bandwidth):
    good, bad = _split(x.float(), y.float(), gamma)
    return (_kde(good, candidates.float(), bandwidth) / _kde(bad, candidates.float(), bandwidth)).double()


def tpe_sorts_in_place(candidates, x, y, gamma, bandwidth):
    n_good = math.ceil(gamma * len(y))
    order = torch.argsort(y, descending=True)
    x[:] = x[order]
    return _kde(x[:n_good], candidates, bandwidth) / _kde(x[n_good:], candidates, bandwidth)


def tpe_one_extra(candidates, x, y, gamma, bandwidth):
    good, bad = _split(x, y, gamma, rounding=lambda v: math.ceil(v) + 1)
    return _kde(good, candidates, bandwidth) / _kde(bad, candidates, bandwidth)


@exercise("7.3")
def test_tpe_reference_passes():
    assert_passes(checks.check_tpe_ratio, NS["tpe_ratio"])


@exercise("7.3")
def test_tpe_stub_passes_through():
    assert_stub_passes_through(checks.check_tpe_ratio, stub)


@exercise("7.3")
@pytest.mark.parametrize("wrong, words", [
    (tpe_inverted, ("g(x)/ℓ(x)", "inverted")),
    (tpe_minimises, ("LOWEST y", "minimisation", "descending=True")),
    (tpe_floor, ("⌊γn⌋", "math.ceil")),
    (tpe_sums, ("constant factor", "sums of kernels")),
    (tpe_variance, ("bandwidth²", "standard deviation")),
    (tpe_g_from_all, ("ALL observations",)),
    (tpe_log, ("log(ℓ/g)",)),
    (tpe_both_flipped, ("both flips",)),
    (tpe_scalar, ("single number", "shape")),
    (tpe_float32, ("float32",)),
    (tpe_sorts_in_place, ("in place",)),
    (tpe_one_extra, ("one more than",)),
])
def test_tpe_mistakes_are_named(wrong, words):
    assert_diagnoses(checks.check_tpe_ratio, wrong, *words)


# ================================================================================================ Exercise 7.4
def halving_ceil(n, r, eta):
    rungs, i = [], 0
    while True:
        n_i = math.ceil(n / eta ** i)
        rungs.append((n_i, r * eta ** i))
        if n_i <= 1:
            return rungs
        i += 1


def halving_stops_early(n, r, eta):
    rungs, n_i, r_i = [], n, r
    while n_i > 1:
        rungs.append((n_i, r_i))
        n_i, r_i = n_i // eta, r_i * eta
    return rungs


def halving_extra_rung(n, r, eta):
    s = int(math.log(n, eta) + 1e-9)
    return [(n // eta ** i, r * eta ** i) for i in range(s + 2)]


def halving_floats(n, r, eta):
    s = int(math.log(n, eta) + 1e-9)
    return [(math.floor(n / eta ** i) * 1.0, r * eta ** i * 1.0) for i in range(s + 1)]


def halving_constant_budget(n, r, eta):
    rungs, n_i = [], n
    while n_i >= 1:
        rungs.append((n_i, r))
        n_i //= eta
    return rungs


def halving_budget_starts_high(n, r, eta):
    rungs, n_i, r_i = [], n, r
    while n_i >= 1:
        r_i *= eta
        rungs.append((n_i, r_i))
        n_i //= eta
    return rungs


def halving_swapped_pairs(n, r, eta):
    rungs, n_i, r_i = [], n, r
    while n_i >= 1:
        rungs.append((r_i, n_i))
        n_i, r_i = n_i // eta, r_i * eta
    return rungs


def halving_linear(n, r, eta):
    rungs, i = [], 0
    while n // (eta * i or 1) >= 1 and i <= n:
        rungs.append((n // (eta * i or 1), r * eta ** i))
        i += 1
        if n // (eta * i) < 1:
            break
    return rungs


def halving_float_log(n, r, eta):
    """The number of rungs from a float logarithm: int(4.999…) = 4 for n = 243, η = 3."""
    return [(n // eta ** i, r * eta ** i) for i in range(int(math.log(n, eta)) + 1)]


@exercise("7.4")
def test_halving_reference_passes():
    assert_passes(checks.check_successive_halving, NS["successive_halving"])


@exercise("7.4")
def test_halving_stub_passes_through():
    assert_stub_passes_through(checks.check_successive_halving, stub)


@exercise("7.4")
@pytest.mark.parametrize("wrong, words", [
    (halving_ceil, ("round the survivors up", "n_i // eta")),
    (halving_stops_early, ("one rung early", "n_i >= 1")),
    (halving_extra_rung, ("0 configurations",)),
    (halving_floats, ("floats", "integer arithmetic")),
    (halving_constant_budget, ("every rung trains", "r·η^i")),
    (halving_budget_starts_high, ("rung 0 trains min_steps",)),
    (halving_swapped_pairs, ("number of configurations first",)),
    (halving_linear, ("η·i", "⌊n/η^i⌋")),
    (halving_float_log, ("exact power", "int() rounds down")),
])
def test_halving_mistakes_are_named(wrong, words):
    assert_diagnoses(checks.check_successive_halving, wrong, *words)


# ================================================================================================ Exercise 7.5
def objective_reports_loss(trial, trainer, steps, report_every):
    model, optimizer = trainer.build(sample_genotype(trial))
    for done in range(report_every, steps + 1, report_every):
        loss = trainer.train(model, optimizer, report_every)
        trial.report(loss, done)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return trainer.accuracy(model)


def objective_swapped_report(trial, trainer, steps, report_every):
    model, optimizer = trainer.build(sample_genotype(trial))
    for done in range(report_every, steps + 1, report_every):
        trainer.train(model, optimizer, report_every)
        accuracy = trainer.accuracy(model)
        trial.report(done, accuracy)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return accuracy


def objective_reports_rung_index(trial, trainer, steps, report_every):
    model, optimizer = trainer.build(sample_genotype(trial))
    for rung in range(steps // report_every):
        trainer.train(model, optimizer, report_every)
        accuracy = trainer.accuracy(model)
        trial.report(accuracy, rung)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return accuracy


def objective_never_asks(trial, trainer, steps, report_every):
    model, optimizer = trainer.build(sample_genotype(trial))
    for done in range(report_every, steps + 1, report_every):
        trainer.train(model, optimizer, report_every)
        accuracy = trainer.accuracy(model)
        trial.report(accuracy, done)
    return accuracy


def objective_returns_when_pruned(trial, trainer, steps, report_every):
    model, optimizer = trainer.build(sample_genotype(trial))
    for done in range(report_every, steps + 1, report_every):
        trainer.train(model, optimizer, report_every)
        accuracy = trainer.accuracy(model)
        trial.report(accuracy, done)
        if trial.should_prune():
            return accuracy
    return accuracy


def objective_prunes_at_the_end(trial, trainer, steps, report_every):
    model, optimizer = trainer.build(sample_genotype(trial))
    pruned = False
    for done in range(report_every, steps + 1, report_every):
        trainer.train(model, optimizer, report_every)
        accuracy = trainer.accuracy(model)
        trial.report(accuracy, done)
        pruned = pruned or trial.should_prune()
    if pruned:
        raise optuna.TrialPruned()
    return accuracy


def objective_one_round(trial, trainer, steps, report_every):
    model, optimizer = trainer.build(sample_genotype(trial))
    trainer.train(model, optimizer, steps)
    accuracy = trainer.accuracy(model)
    trial.report(accuracy, steps)
    if trial.should_prune():
        raise optuna.TrialPruned()
    return accuracy


def objective_returns_best(trial, trainer, steps, report_every):
    model, optimizer = trainer.build(sample_genotype(trial))
    best = 0.0
    for done in range(report_every, steps + 1, report_every):
        trainer.train(model, optimizer, report_every)
        accuracy = trainer.accuracy(model)
        best = max(best, accuracy)
        trial.report(accuracy, done)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return best


def objective_asks_first(trial, trainer, steps, report_every):
    model, optimizer = trainer.build(sample_genotype(trial))
    for done in range(report_every, steps + 1, report_every):
        if trial.should_prune():
            raise optuna.TrialPruned()
        trainer.train(model, optimizer, report_every)
        accuracy = trainer.accuracy(model)
        trial.report(accuracy, done)
    return accuracy


def objective_no_report(trial, trainer, steps, report_every):
    model, optimizer = trainer.build(sample_genotype(trial))
    for _ in range(steps // report_every):
        trainer.train(model, optimizer, report_every)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return trainer.accuracy(model)


def objective_returns_loss(trial, trainer, steps, report_every):
    model, optimizer = trainer.build(sample_genotype(trial))
    for done in range(report_every, steps + 1, report_every):
        loss = trainer.train(model, optimizer, report_every)
        trial.report(trainer.accuracy(model), done)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return loss


def objective_fixed_genotype(trial, trainer, steps, report_every):
    model, optimizer = trainer.build(Genotype(16, ("conv3x3",), (0,), 0.1))
    for done in range(report_every, steps + 1, report_every):
        trainer.train(model, optimizer, report_every)
        accuracy = trainer.accuracy(model)
        trial.report(accuracy, done)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return accuracy


def objective_same_step(trial, trainer, steps, report_every):
    model, optimizer = trainer.build(sample_genotype(trial))
    for _ in range(steps // report_every):
        trainer.train(model, optimizer, report_every)
        accuracy = trainer.accuracy(model)
        trial.report(accuracy, report_every)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return accuracy


def objective_raises_other(trial, trainer, steps, report_every):
    model, optimizer = trainer.build(sample_genotype(trial))
    for done in range(report_every, steps + 1, report_every):
        trainer.train(model, optimizer, report_every)
        accuracy = trainer.accuracy(model)
        trial.report(accuracy, done)
        if trial.should_prune():
            raise optuna.exceptions.OptunaError("pruned")
    return accuracy


@exercise("7.5")
def test_objective_reference_passes():
    assert_passes(checks.check_objective, (NS["objective"], sample_genotype))


@exercise("7.5")
def test_objective_stub_passes_through():
    with pytest.raises(NotImplementedError, match="Exercise"):
        checks.check_objective(stub, sample_genotype)


@exercise("7.5")
@pytest.mark.parametrize("wrong, words", [
    (objective_reports_loss, ("report the training loss", "validation accuracy")),
    (objective_swapped_report, ("swapped",)),
    (objective_reports_rung_index, ("round's index", "steps done")),
    (objective_never_asks, ("never asks trial.should_prune()",)),
    (objective_returns_when_pruned, ("returned", "COMPLETE", "raise optuna.TrialPruned()")),
    (objective_prunes_at_the_end, ("more round(s)", "right after")),
    (objective_one_round, ("in one call", "per round")),
    (objective_returns_best, ("best accuracy", "final one")),
    (objective_asks_first, ("before trial.report",)),
    (objective_no_report, ("never calls trial.report",)),
    (objective_returns_loss, ("returns the training loss",)),
    (objective_fixed_genotype, ("not the trial's genotype",)),
    (objective_same_step, ("every round at step",)),
    (objective_raises_other, ("OptunaError",)),
])
def test_objective_mistakes_are_named(wrong, words):
    assert_diagnoses(checks.check_objective, (wrong, sample_genotype), *words)


# ================================================================================================ Exercise 7.6
def _super_forward(self, x, weights, *, sources=None, read=None, output="sum"):
    states, edge = [x], 0
    for _ in range(self.n_nodes):
        node = 0
        for j in (sources or (lambda n: range(n)))(len(states)):
            state = states[j] if read is None else read(states, j)
            node = node + sum(w * op(state) for w, op in zip(weights[edge], self.edges[edge]))
            edge += 1
        states.append(node)
    return states[-1] if output == "last" else sum(states[1:])


class SuperSoftmaxDim0(SolvedSuperCell):
    def forward(self, x):
        return _super_forward(self, x, torch.softmax(self.alphas, dim=0))


class SuperRawAlphas(SolvedSuperCell):
    def forward(self, x):
        return _super_forward(self, x, self.alphas)


class SuperSigmoid(SolvedSuperCell):
    def forward(self, x):
        return _super_forward(self, x, torch.sigmoid(self.alphas))


class SuperSoftmaxAll(SolvedSuperCell):
    def forward(self, x):
        return _super_forward(self, x, torch.softmax(self.alphas.flatten(), 0).view_as(self.alphas))


class SuperPreviousOnly(SolvedSuperCell):
    def forward(self, x):
        return _super_forward(self, x, torch.softmax(self.alphas, -1), read=lambda states, j: states[-1])


class SuperLastNode(SolvedSuperCell):
    def forward(self, x):
        return _super_forward(self, x, torch.softmax(self.alphas, -1), output="last")


class SuperHardArgmax(SolvedSuperCell):
    def forward(self, x):
        weights = nn.functional.one_hot(self.alphas.argmax(-1), len(OPS)).float()
        return _super_forward(self, x, weights)


class SuperDetached(SolvedSuperCell):
    def forward(self, x):
        return _super_forward(self, x, torch.softmax(self.alphas.detach(), -1))


class SuperReversedSources(SolvedSuperCell):
    def forward(self, x):
        return _super_forward(self, x, torch.softmax(self.alphas, -1), sources=lambda n: reversed(range(n)))


class SuperNoSoftmaxLogSoftmax(SolvedSuperCell):
    def forward(self, x):
        return _super_forward(self, x, torch.log_softmax(self.alphas, -1))


@exercise("7.6")
def test_super_reference_passes():
    assert_passes(checks.check_super_cell, SolvedSuperCell)


@exercise("7.6")
def test_super_stub_passes_through():
    class Stub(SolvedSuperCell):
        def forward(self, x):
            raise NotImplementedError("Exercise 7.6: write the body of `forward`, then run the check cell below.")
    assert_stub_passes_through(checks.check_super_cell, Stub)


@exercise("7.6")
@pytest.mark.parametrize("wrong, words", [
    (SuperSoftmaxDim0, ("over the edges", "dim=0", "dim=-1")),
    (SuperRawAlphas, ("raw alphas",)),
    (SuperSigmoid, ("sigmoid",)),
    (SuperSoftmaxAll, ("all edges and operations at once",)),
    (SuperPreviousOnly, ("previous state only",)),
    (SuperLastNode, ("last node only",)),
    (SuperHardArgmax, ("argmax", "no gradient")),
    (SuperDetached, ("alphas", "no gradient")),
    (SuperReversedSources, ("wrong sources",)),
    (SuperNoSoftmaxLogSoftmax, ("log_softmax", "probabilities")),
])
def test_super_mistakes_are_named(wrong, words):
    assert_diagnoses(checks.check_super_cell, wrong, *words)


# ================================================================================================ other failure paths
class CellSharedSameOp(SolvedCell):
    def __init__(self, ops, inputs, C):
        nn.Module.__init__(self)
        self.inputs = tuple(inputs)
        shared = {name: make_op(name, C) for name in ops}
        self.ops = nn.ModuleList(shared[name] for name in ops)


def cell_function(ops, inputs, C):
    return lambda x: x


class SuperChangedInit(SolvedSuperCell):
    def __init__(self, C, n_nodes):
        super().__init__(C, n_nodes)
        self.alphas = nn.Parameter(torch.zeros(len(OPS), self.alphas.shape[0]))  # (n_ops, n_edges)


def halving_none(n, r, eta):
    rungs = [(n, r)]
    rungs.append((n // eta, r * eta))


def halving_number(n, r, eta):
    return n * r


def halving_triples(n, r, eta):
    return [(n // eta ** i, r * eta ** i, i) for i in range(int(math.log(n, eta) + 1e-9) + 1)]


def tpe_python_float(candidates, x, y, gamma, bandwidth):
    return 1.0


def space_dict(trial):
    g = _space(trial)
    return {"width": g.width, "ops": g.ops, "inputs": g.inputs, "lr": g.lr}


def objective_builds_twice(trial, trainer, steps, report_every):
    genotype = sample_genotype(trial)
    for done in range(report_every, steps + 1, report_every):
        model, optimizer = trainer.build(genotype)
        trainer.train(model, optimizer, report_every)
        accuracy = trainer.accuracy(model)
        trial.report(accuracy, done)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return accuracy


@pytest.mark.parametrize("check, wrong, words", [
    (checks.check_cell, CellSharedSameOp, ("share one module object",)),
    (checks.check_cell, cell_function, ("nn.Module",)),
    (checks.check_super_cell, SuperChangedInit, ("keep __init__ as given",)),
    (checks.check_successive_halving, halving_none, ("returned None",)),
    (checks.check_successive_halving, halving_number, ("list of (n_i, r_i) pairs",)),
    (checks.check_successive_halving, halving_triples, ("pair",)),
    (checks.check_tpe_ratio, tpe_python_float, ("one number", "shape")),
    (checks.check_sample_genotype, space_dict, ("return a Genotype", "dict")),
    (checks.check_objective, (objective_builds_twice, sample_genotype), ("trainer.build 3 times",)),
])
def test_other_failure_paths_are_named(check, wrong, words):
    assert_diagnoses(check, wrong, *words)


def test_a_passing_check_is_fast():
    import time

    start = time.perf_counter()
    for check, answer in ((checks.check_sample_genotype, sample_genotype), (checks.check_cell, SolvedCell),
                          (checks.check_tpe_ratio, NS["tpe_ratio"]),
                          (checks.check_successive_halving, NS["successive_halving"]),
                          (checks.check_objective, (NS["objective"], sample_genotype)),
                          (checks.check_super_cell, SolvedSuperCell)):
        assert_passes(check, answer)
    assert time.perf_counter() - start < 10  # ≪ 1 s each on a quiet machine; generous for a loaded one
