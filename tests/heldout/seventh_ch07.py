"""Seventh blind held-out set for Chapter 07 (architecture search): wrong answers written as a learner writes the
exercise cell.

Written without reading the checks or seeing any of their messages: only the student notebook (its prompts, stubs
and check calls) and the reference solution were read. It aims at the mistakes learners most often make in this
chapter: Optuna's API misread (inclusive ``suggest_int`` bounds, ``log=True`` forgotten, names numbered from 0),
the sum of eq. (7.1) taken over the wrong states, the good/bad split and the normalisation of TPE's densities
(eqs. (7.4), (7.5)), integer arithmetic and the stopping rule of successive halving (eq. (7.6)), what and when an
objective reports to a pruner, and the axis and the edge bookkeeping of DARTS' softmax (eq. (7.8)). The helpers a
learner's cell uses from earlier cells (``OPS``, ``WIDTHS``, ``make_op``, ``Genotype``, and ``sample_genotype`` in
``objective``) are the chapter's own, so each answer holds exactly one mistake.
"""
import math

import jupytext
import optuna
import torch
import torch.nn as nn

from tests.heldout.report import THIS_CHECKOUT, Registry, solution_namespace

REF = solution_namespace("07_architecture_search")
# The cell that defines OPS, WIDTHS, make_op and Genotype is not an exercise cell: run it whole into REF, so that the
# reference solutions (and the answers below) see the same definitions as in the notebook.
_CELLS = [cell.source for cell in jupytext.read(THIS_CHECKOUT / "solutions" / "07_architecture_search.md").cells
          if cell.cell_type == "code"]
exec(next(source for source in _CELLS if source.startswith("OPS = ")), REF)  # noqa: S102 - the course's notebook
OPS, WIDTHS, make_op, Genotype = REF["OPS"], REF["WIDTHS"], REF["make_op"], REF["Genotype"]
sample_genotype = REF["sample_genotype"]

REGISTRY = Registry("07", {
    "7.1": ("check_sample_genotype", "sample_genotype"),
    "7.2": ("check_cell", "Cell"),
    "7.3": ("check_tpe_ratio", "tpe_ratio"),
    "7.4": ("check_successive_halving", "successive_halving"),
    "7.5": ("check_objective", "objective"),  # the check also takes sample_genotype; see arguments below
    "7.6": ("check_super_cell", "SuperCell"),
})
wrong = REGISTRY.wrong

with_reference_sampler = lambda objective: (objective, sample_genotype)  # noqa: E731 - a wrong objective, the right sampler


# ----- Exercise 7.1: a define-by-run search space -----------------------------------------------------------------

@wrong("7.1", "input_i = suggest_int(0, i): suggest_int includes its upper end, so node i may read itself (s_i = i), "
              "not only h_0 … h_{i−1}",
       names=[r"(upper|high)[^.?]{0,30}(end|bound|limit)?[^.?]{0,20}(inclusive|included)", r"\bi\s*[−-]\s*1\b",
              r"(reads?|input|depend\w*)[^.?]{0,30}(itself|its own (output|state)|a later)", r"(acyclic|cycle|cyclic)",
              r"s_i\s*(<|≤|<=)\s*i\b", r"s_i\s*=\s*i\b"])
def sample_input_includes_self(trial):
    width = trial.suggest_categorical("width", WIDTHS)
    n_nodes = trial.suggest_int("n_nodes", 1, 3)
    ops, inputs = [], []
    for i in range(1, n_nodes + 1):
        ops.append(trial.suggest_categorical(f"op_{i}", OPS))
        inputs.append(trial.suggest_int(f"input_{i}", 0, i))
    lr = trial.suggest_float("lr", 0.01, 0.3, log=True)
    return Genotype(width, tuple(ops), tuple(inputs), lr)


@wrong("7.1", "lr = suggest_float(\"lr\", 0.01, 0.3) without log=True: sampled uniformly, not on a log scale",
       names=[r"log\s*=\s*True", r"log[- ]?(scale|uniform|arithmic)", r"logarithm\w*",
              r"(uniform|linear)\w*[^.?]{0,30}(instead|not|rather)", r"order of magnitude"])
def sample_lr_not_log(trial):
    width = trial.suggest_categorical("width", WIDTHS)
    n_nodes = trial.suggest_int("n_nodes", 1, 3)
    ops, inputs = [], []
    for i in range(1, n_nodes + 1):
        ops.append(trial.suggest_categorical(f"op_{i}", OPS))
        inputs.append(trial.suggest_int(f"input_{i}", 0, i - 1))
    lr = trial.suggest_float("lr", 0.01, 0.3)
    return Genotype(width, tuple(ops), tuple(inputs), lr)


@wrong("7.1", "nodes numbered from 0: for i in range(n_nodes) asks for op_0/input_0 …, not op_1 … op_N (the "
              "inputs shifted to stay valid)",
       names=[r"op_0", r"input_0", r"op_1\b[^.?]{0,40}(missing|never|not (asked|suggested|found))",
              r"(number\w*|nam\w*|index\w*|count\w*)[^.?]{0,40}(from|at) 1\b", r"(1|one)[- ]based", r"zero[- ]based",
              r"(start\w*|begin\w*)[^.?]{0,20}(at|from) (0|zero)\b"])
def sample_nodes_from_zero(trial):
    width = trial.suggest_categorical("width", WIDTHS)
    n_nodes = trial.suggest_int("n_nodes", 1, 3)
    ops, inputs = [], []
    for i in range(n_nodes):
        ops.append(trial.suggest_categorical(f"op_{i}", OPS))
        inputs.append(trial.suggest_int(f"input_{i}", 0, i))
    lr = trial.suggest_float("lr", 0.01, 0.3, log=True)
    return Genotype(width, tuple(ops), tuple(inputs), lr)


@wrong("7.1", "Genotype(width, ops, inputs, lr) with the lists as built: ops and inputs are lists, not tuples, so "
              "the genotype is not hashable",
       names=[r"tuples?\b", r"hashab\w*", r"unhashable", r"\blists?\b[^.?]{0,30}(instead|not|rather)"])
def sample_returns_lists(trial):
    width = trial.suggest_categorical("width", WIDTHS)
    n_nodes = trial.suggest_int("n_nodes", 1, 3)
    ops, inputs = [], []
    for i in range(1, n_nodes + 1):
        ops.append(trial.suggest_categorical(f"op_{i}", OPS))
        inputs.append(trial.suggest_int(f"input_{i}", 0, i - 1))
    lr = trial.suggest_float("lr", 0.01, 0.3, log=True)
    return Genotype(width, ops, inputs, lr)


# ----- Exercise 7.2: a cell from its genotype ---------------------------------------------------------------------

@wrong("7.2", "self.ops a plain Python list: the operations' parameters are not registered (count 0, not eq. (7.2))",
       names=[r"ModuleList", r"(plain|python|ordinary) list", r"regist\w*",
              r"parameters?[^.?]{0,40}(hidden|invisible|not (registered|seen|visible|found)|missing)",
              r"(parameters?|optimi[sz]er)[^.?]{0,30}(cannot|can't|does not|doesn't) see"])
class CellPlainList(nn.Module):
    def __init__(self, ops, inputs, C):
        super().__init__()
        self.inputs = tuple(inputs)
        self.ops = [make_op(name, C) for name in ops]

    def forward(self, x):
        states = [x]
        for op, source in zip(self.ops, self.inputs):
            states.append(op(states[source]))
        return sum(states[1:])


@wrong("7.2", "returns sum(states): the cell's input h_0 is added to the sum of the nodes (an extra skip connection)",
       names=[r"h_?0\b[^.?]{0,40}(includ\w*|added|summed|counted|in the sum)", r"states\[1:\]",
              r"(input|x)\b[^.?]{0,30}(is not a node|itself|also (added|summed))",
              r"(sum|add)\w*[^.?]{0,30}(the )?(cell's )?input\b", r"h_1\s*\+\s*(…|\.\.\.|⋯)\s*\+\s*h_N"])
class CellSumsInput(nn.Module):
    def __init__(self, ops, inputs, C):
        super().__init__()
        self.inputs = tuple(inputs)
        self.ops = nn.ModuleList(make_op(name, C) for name in ops)

    def forward(self, x):
        states = [x]
        for op, source in zip(self.ops, self.inputs):
            states.append(op(states[source]))
        return sum(states)


@wrong("7.2", "each node applied to the previous state (a chain, states[-1]): the genotype's inputs s_i are ignored",
       names=[r"inputs?\b[^.?]{0,40}(ignored|unused|never used|not used)", r"(previous|last|preceding|latest) (state|node)",
              r"\bs_i\b", r"h_\{?s_i", r"\bchain\w*", r"states\[source\]"])
class CellChain(nn.Module):
    def __init__(self, ops, inputs, C):
        super().__init__()
        self.inputs = tuple(inputs)
        self.ops = nn.ModuleList(make_op(name, C) for name in ops)

    def forward(self, x):
        states = [x]
        for op in self.ops:
            states.append(op(states[-1]))
        return sum(states[1:])


@wrong("7.2", "returns only the last node, states[-1], not the sum of h_1 … h_N",
       names=[r"(only|just) (the )?last (node|state)", r"(sum|Σ)[^.?]{0,30}(of )?(all|every) (the )?nodes",
              r"h_1[^.?]{0,20}(…|\.\.\.|⋯|through|to)[^.?]{0,10}h_N", r"other nodes[^.?]{0,30}(dropped|ignored|missing|lost)",
              r"(dropped|ignored|missing|lost)[^.?]{0,30}(earlier|other) nodes"])
class CellLastNode(nn.Module):
    def __init__(self, ops, inputs, C):
        super().__init__()
        self.inputs = tuple(inputs)
        self.ops = nn.ModuleList(make_op(name, C) for name in ops)

    def forward(self, x):
        states = [x]
        for op, source in zip(self.ops, self.inputs):
            states.append(op(states[source]))
        return states[-1]


# ----- Exercise 7.3: TPE's acquisition ----------------------------------------------------------------------------

@wrong("7.3", "argsort ascending: ℓ is built from the lowest y (a minimisation), the good ones are the highest",
       names=[r"(highest|largest)\s+(y|scores?|values?|accurac\w*)[^.?]{0,30}(not|instead|rather)", r"descending",
              r"ascending", r"(lowest|smallest|worst)[^.?]{0,40}(y|scores?|values?|accurac\w*)", r"minimi[sz]\w*",
              r"ℓ\s*(and|/)\s*g[^.?]{0,20}swapped|(good|bad) and (bad|good)[^.?]{0,20}swapped"])
def tpe_ratio_ascending(candidates, observed_x, observed_y, gamma, bandwidth):
    n_good = math.ceil(gamma * len(observed_y))
    order = torch.argsort(observed_y)
    good, bad = observed_x[order[:n_good]], observed_x[order[n_good:]]

    def kde(points):
        z = (candidates[:, None] - points[None, :]) / bandwidth
        return torch.exp(-0.5 * z ** 2).mean(dim=1) / (bandwidth * math.sqrt(2 * math.pi))

    return kde(good) / kde(bad)


@wrong("7.3", "kernel density with .sum(dim=1) instead of .mean: each density is n times too large, the ratio off "
              "by n_g/n_ℓ",
       names=[r"\bmean\b[^.?]{0,30}(not|instead|rather)", r"\bsum\b[^.?]{0,30}(instead|not|rather)",
              r"(not |un)normali[sz]ed", r"normali[sz]\w*[^.?]{0,30}(1\s*/\s*n|number of|count|points)",
              r"n_g\s*/\s*n_(ℓ|l)|n_(ℓ|l)\s*/\s*n_g", r"1\s*/\s*n_?(ℓ|l|g)?\b", r"(divid\w*)[^.?]{0,20}by (the )?(number|count)"])
def tpe_ratio_kde_sum(candidates, observed_x, observed_y, gamma, bandwidth):
    n_good = math.ceil(gamma * len(observed_y))
    order = torch.argsort(observed_y, descending=True)
    good, bad = observed_x[order[:n_good]], observed_x[order[n_good:]]

    def kde(points):
        z = (candidates[:, None] - points[None, :]) / bandwidth
        return torch.exp(-0.5 * z ** 2).sum(dim=1) / (bandwidth * math.sqrt(2 * math.pi))

    return kde(good) / kde(bad)


@wrong("7.3", "n_ℓ = int(γ n): rounded down, not ⌈γ n⌉, so one good observation too few when γn is not an integer",
       names=[r"ceil\w*", r"⌈", r"round\w* (up|down)", r"\bfloor\w*", r"⌊", r"(one|1) (good )?(observation|point)s? too few",
              r"(too few|fewer) good"])
def tpe_ratio_floor(candidates, observed_x, observed_y, gamma, bandwidth):
    n_good = int(gamma * len(observed_y))
    order = torch.argsort(observed_y, descending=True)
    good, bad = observed_x[order[:n_good]], observed_x[order[n_good:]]

    def kde(points):
        z = (candidates[:, None] - points[None, :]) / bandwidth
        return torch.exp(-0.5 * z ** 2).mean(dim=1) / (bandwidth * math.sqrt(2 * math.pi))

    return kde(good) / kde(bad)


@wrong("7.3", "bandwidth taken as the kernel's variance: exp(−d²/(2·bandwidth)), not a standard deviation σ",
       names=[r"varianc\w*", r"standard deviation", r"σ\s*(²|\^2|\*\*\s*2)[^.?]{0,40}(instead|not|rather|where|bandwidth)|bandwidth[^.?]{0,40}σ\s*(²|\^2|\*\*\s*2)", r"bandwidth\s*(²|\^2|\*\*\s*2)",
              r"bandwidth[^.?]{0,40}(squared|not squared|std|σ)", r"(kernel|bump)s? (are |is )?(too )?(wide|narrow)", r"wrong (kernel )?width"])
def tpe_ratio_bandwidth_as_variance(candidates, observed_x, observed_y, gamma, bandwidth):
    n_good = math.ceil(gamma * len(observed_y))
    order = torch.argsort(observed_y, descending=True)
    good, bad = observed_x[order[:n_good]], observed_x[order[n_good:]]

    def kde(points):
        d = candidates[:, None] - points[None, :]
        return torch.exp(-d ** 2 / (2 * bandwidth)).mean(dim=1) / math.sqrt(2 * math.pi * bandwidth)

    return kde(good) / kde(bad)


# ----- Exercise 7.4: the rungs of successive halving ---------------------------------------------------------------

@wrong("7.4", "n_i / eta: true division, the rungs hold floats (33.3 configurations), not ⌊n/ηⁱ⌋",
       names=[r"(integer|floor)[^.?]{0,20}divi\w*", r"//", r"⌊", r"\bfloats?\b", r"fraction\w*", r"\bint(eger)?s?\b[^.?]{0,30}(not|instead)"])
def halving_true_division(n_configs, min_steps, eta):
    rungs, n_i, r_i = [], n_configs, min_steps
    while n_i >= 1:
        rungs.append((n_i, r_i))
        n_i, r_i = n_i / eta, r_i * eta
    return rungs


@wrong("7.4", "while n_i > 1: stops before the last rung, the one with a single configuration",
       names=[r"last rung", r"(single|one|1) config\w*[^.?]{0,40}(missing|dropped|left out|rung)", r"n_i\s*(>=|≥)\s*1",
              r"(one|1) rung (short|too few|missing)", r"(>=|≥)\s*1\b[^.?]{0,20}(not|instead)", r"final rung"])
def halving_stops_early(n_configs, min_steps, eta):
    rungs, n_i, r_i = [], n_configs, min_steps
    while n_i > 1:
        rungs.append((n_i, r_i))
        n_i, r_i = n_i // eta, r_i * eta
    return rungs


@wrong("7.4", "s = int(math.log(n, eta)): the float logarithm of an exact power (243, η = 3 → 4.999…) rounds down, "
              "one rung short",
       names=[r"(floating[- ]point|rounding|precision) (error|issue|problem)", r"math\.log",
              r"log\w*[^.?]{0,40}(float\w*|round\w*|precision|inexact|4\.99)", r"(exact|integer) powers?",
              r"(one|1) rung (short|too few|missing)", r"last rung"])
def halving_float_log(n_configs, min_steps, eta):
    s = int(math.log(n_configs, eta))
    return [(n_configs // eta ** i, min_steps * eta ** i) for i in range(s + 1)]


@wrong("7.4", "r_i never multiplied by η: every rung trains min_steps steps (r_i = r, not r·ηⁱ)",
       names=[r"r_i[^.?]{0,30}(not|never|doesn't|does not|should)[^.?]{0,30}(grow|multipl\w*|η|eta)", r"(steps|budget|r_i)[^.?]{0,40}(never|not|doesn't|does not) (grow|multipl\w*|increas\w*)",
              r"(multipl\w*|times)[^.?]{0,20}(by )?(η|eta)\b", r"(constant|same|fixed) (number of )?(steps|budget)"])
def halving_constant_steps(n_configs, min_steps, eta):
    rungs, n_i = [], n_configs
    while n_i >= 1:
        rungs.append((n_i, min_steps))
        n_i = n_i // eta
    return rungs


# ----- Exercise 7.5: an objective that can be pruned ---------------------------------------------------------------

@wrong("7.5", "trial.report(accuracy, k) with k the index of the report (0, 1, 2, …), not the training steps done",
       names=[r"steps? (done|so far|trained|completed)",
              r"(index|count|number) of (the )?(report|round)s?", r"second argument[^.?]{0,40}step",
              r"(report_every|step)[^.?]{0,30}(multiple|multipl\w*|×)"],
       arguments=with_reference_sampler)
def objective_reports_index(trial, trainer, steps, report_every):
    genotype = sample_genotype(trial)
    model, optimizer = trainer.build(genotype)
    accuracy = 0.0
    for k in range(steps // report_every):
        trainer.train(model, optimizer, report_every)
        accuracy = trainer.accuracy(model)
        trial.report(accuracy, k)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return accuracy


@wrong("7.5", "reports (and returns) the training loss that trainer.train returns, not the validation accuracy",
       names=[r"\bloss\b", r"trainer\.train[^.?]{0,30}return", r"validation accuracy[^.?]{0,30}(not|instead)",
              r"(report|return)\w*[^.?]{0,30}(accuracy)[^.?]{0,20}(not|instead)", r"trainer\.accuracy"],
       arguments=with_reference_sampler)
def objective_reports_loss(trial, trainer, steps, report_every):
    genotype = sample_genotype(trial)
    model, optimizer = trainer.build(genotype)
    loss = float("inf")
    for done in range(report_every, steps + 1, report_every):
        loss = trainer.train(model, optimizer, report_every)
        trial.report(loss, done)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return loss


@wrong("7.5", "when should_prune() says so it returns the accuracy instead of raising optuna.TrialPruned: the trial "
              "counts as complete",
       names=[r"\braise\b[^.?]{0,30}(TrialPruned|optuna)", r"TrialPruned", r"(instead of|not|rather than) rais\w*", r"return\w*[^.?]{0,30}(instead of|not|rather than)[^.?]{0,15}rais",
              r"(complete|finished|completed)[^.?]{0,40}(instead of|not|rather than)[^.?]{0,10}pruned",
              r"(marked|counts?|recorded) as (complete|finished)"],
       arguments=with_reference_sampler)
def objective_returns_when_pruned(trial, trainer, steps, report_every):
    genotype = sample_genotype(trial)
    model, optimizer = trainer.build(genotype)
    accuracy = 0.0
    for done in range(report_every, steps + 1, report_every):
        trainer.train(model, optimizer, report_every)
        accuracy = trainer.accuracy(model)
        trial.report(accuracy, done)
        if trial.should_prune():
            return accuracy
    return accuracy


@wrong("7.5", "never asks trial.should_prune(): reports every rung but always trains to the end, so nothing is pruned",
       names=[r"should_prune", r"(never|not|doesn't|does not) (ask|check|consult|call)\w*[^.?]{0,30}(prun\w*|should)",
              r"(pruner|prun\w*)[^.?]{0,30}(never|ignored|not (asked|consulted|checked|obeyed))",
              r"(never|not) (stop|prun)\w*", r"trained to the end"],
       arguments=with_reference_sampler)
def objective_never_asks_pruner(trial, trainer, steps, report_every):
    genotype = sample_genotype(trial)
    model, optimizer = trainer.build(genotype)
    accuracy = 0.0
    for done in range(report_every, steps + 1, report_every):
        trainer.train(model, optimizer, report_every)
        accuracy = trainer.accuracy(model)
        trial.report(accuracy, done)
    return accuracy


@wrong("7.5", "trainer.build(genotype) inside the loop: a fresh model every round, so each report is after only "
              "report_every steps of training, from scratch",
       names=[r"rebuil\w*", r"re-?creat\w*", r"(new|fresh) (model|network|optimi[sz]er)",
              r"build\w*[^.?]{0,40}(once|every (round|report|time)|each (round|report|time)|inside the loop|in the loop)",
              r"(restart\w*|from scratch|re-?initiali[sz]\w*)"],
       arguments=with_reference_sampler)
def objective_builds_every_round(trial, trainer, steps, report_every):
    genotype = sample_genotype(trial)
    accuracy = 0.0
    for done in range(report_every, steps + 1, report_every):
        model, optimizer = trainer.build(genotype)
        trainer.train(model, optimizer, report_every)
        accuracy = trainer.accuracy(model)
        trial.report(accuracy, done)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return accuracy


# ----- Exercise 7.6: the DARTS supercell ---------------------------------------------------------------------------

class _SuperCellBase(nn.Module):
    """The given __init__ of the exercise cell; each answer writes forward."""

    def __init__(self, C, n_nodes):
        super().__init__()
        self.n_nodes = n_nodes
        n_edges = n_nodes * (n_nodes + 1) // 2
        self.edges = nn.ModuleList(nn.ModuleList(make_op(name, C) for name in OPS) for _ in range(n_edges))
        self.alphas = nn.Parameter(1e-3 * torch.randn(n_edges, len(OPS)))  # (n_edges, n_ops)


@wrong("7.6", "softmax(alphas, dim=0): each operation normalised over the edges, not each edge over its operations",
       names=[r"dim\s*=\s*(-1|1)\b", r"dim\s*=\s*0", r"(over|across) (the )?(edges)", r"(over|across) (the )?(operations|ops)\b",
              r"(each|per|one) (distribution )?(per |for each )?edge", r"(rows?|last axis)[^.?]{0,30}(sum|distribution|softmax)[^.?]{0,30}(operation|op|edge|alpha)"])
class SuperCellSoftmaxDim0(_SuperCellBase):
    def forward(self, x):
        weights = torch.softmax(self.alphas, dim=0)
        states, edge = [x], 0
        for _ in range(self.n_nodes):
            node = 0
            for state in list(states):
                node = node + sum(w * op(state) for w, op in zip(weights[edge], self.edges[edge]))
                edge += 1
            states.append(node)
        return sum(states[1:])


@wrong("7.6", "the raw alphas as mixing weights: no softmax, so the weights of an edge do not sum to 1",
       names=[r"(no|without|missing|forg\w*|skipp\w*)[^.?]{0,20}softmax", r"softmax[^.?]{0,30}(missing|never|not (applied|taken|used))",
              r"(raw|unnormali[sz]ed) (alphas?|α|architecture parameters|weights)",
              r"(weights?|mix\w*)[^.?]{0,30}(sum to (1|one)|normali[sz]\w*)", r"exp\s*\(?\s*α"])
class SuperCellNoSoftmax(_SuperCellBase):
    def forward(self, x):
        weights = self.alphas
        states, edge = [x], 0
        for _ in range(self.n_nodes):
            node = 0
            for state in list(states):
                node = node + sum(w * op(state) for w, op in zip(weights[edge], self.edges[edge]))
                edge += 1
            states.append(node)
        return sum(states[1:])


@wrong("7.6", "edge index j restarts at 0 for every node: node i uses edges 0 … i−1, so early edges are reused and "
              "the later ones (and their alphas) never used",
       names=[r"(edge )?(index|counter)[^.?]{0,40}(reset|restart\w*|cumulative|offset|running|keeps? counting)",
              r"edges?\b[^.?]{0,30}(reused|shared|used twice|twice)", r"(unused|never used)[^.?]{0,20}(edges?|rows?|alphas?)",
              r"(edges?|rows?|alphas?)[^.?]{0,30}(unused|never used|no gradient|zero gradient)",
              r"i\s*\(i\s*[−-]\s*1\)\s*/\s*2"])
class SuperCellEdgeIndexPerNode(_SuperCellBase):
    def forward(self, x):
        weights = torch.softmax(self.alphas, dim=-1)
        states = [x]
        for _ in range(self.n_nodes):
            node = 0
            for j, state in enumerate(list(states)):
                node = node + sum(w * op(state) for w, op in zip(weights[j], self.edges[j]))
            states.append(node)
        return sum(states[1:])


@wrong("7.6", "softmax of alphas.detach() (as in derive_genotype): the output is no longer differentiable in alphas",
       names=[r"differentiab\w*", r"detach\w*", r"(gradient|grad)\w*[^.?]{0,40}(alphas?|α|architecture)",
              r"(alphas?|α)[^.?]{0,40}(no|zero|none|without) grad\w*", r"(computation(al)?|autograd) graph"])
class SuperCellDetachedAlphas(_SuperCellBase):
    def forward(self, x):
        weights = torch.softmax(self.alphas.detach(), dim=-1)
        states, edge = [x], 0
        for _ in range(self.n_nodes):
            node = 0
            for state in list(states):
                node = node + sum(w * op(state) for w, op in zip(weights[edge], self.edges[edge]))
                edge += 1
            states.append(node)
        return sum(states[1:])
