"""Exercise 7.1: a define-by-run search space, read from the distributions the trial was asked for."""
from __future__ import annotations

import math

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from utils.checks.architecture_search.reference import EX_SPACE, LR_RANGE, MAX_NODES, OPS, WIDTHS
from utils.checks.core import one_thread

N_TRIALS = 30  # random trials: every number of nodes is drawn several times


def _kind(distribution) -> str:
    if isinstance(distribution, CategoricalDistribution):
        return f"a categorical over {distribution.choices}"
    if isinstance(distribution, IntDistribution):
        return f"an integer from {distribution.low} to {distribution.high}" + (" (log)" if distribution.log else "")
    if isinstance(distribution, FloatDistribution):
        return f"a float from {distribution.low:g} to {distribution.high:g}" + (", log scale" if distribution.log
                                                                              else ", linear scale")
    return type(distribution).__name__


def _names_problem(names: set[str], n_nodes: int | None) -> str | None:
    """What is wrong with the set of parameter names asked for, or None."""
    if "n_nodes" not in names:
        return ("your trial was never asked for \"n_nodes\": ask trial.suggest_int(\"n_nodes\", 1, 3) and let it "
                "decide how many nodes the cell has (define-by-run).")
    for fixed in ("width", "lr"):
        if fixed not in names:
            near = sorted(n for n in names if fixed in n.lower() or n.lower() in ("learning_rate", "c", "channels"))
            return (f"your trial was never asked for \"{fixed}\"" + (f" (you used {near[0]!r})" if near else "")
                    + ": the prompt names the parameters \"width\", \"n_nodes\", \"op_i\", \"input_i\" and \"lr\".")
    expected = {f"{kind}_{i}" for kind in ("op", "input") for i in range(1, n_nodes + 1)}
    node_names = {n for n in names if n not in ("width", "n_nodes", "lr")}
    if node_names == expected:
        return None
    if node_names & {"op", "input", "op_i", "input_i"}:
        return ("you ask every node for the same name (\"op\" or \"input\"): Optuna returns one value per name, so "
                "every node would get the same operation. Name them by node: f\"op_{i}\", f\"input_{i}\".")
    if {"op_0", "input_0"} & node_names:
        return (f"you number the nodes from 0 (you asked for {sorted(node_names)}); eq. (7.1) numbers them 1 … N, "
                f"with 0 the cell's input h_0: loop `for i in range(1, n_nodes + 1)` and ask for f\"op_{{i}}\", "
                f"f\"input_{{i}}\".")
    extra = sorted(node_names - expected)
    missing = sorted(expected - node_names)
    if extra and not missing:
        return (f"with n_nodes = {n_nodes} you also asked for {extra}: node i's parameters must exist only when the "
                f"trial sampled at least i nodes (define-by-run): loop over range(1, n_nodes + 1), where n_nodes "
                f"is the value suggest_int returned, not a fixed {MAX_NODES}.")
    if missing and not extra:
        return (f"with n_nodes = {n_nodes} you never asked for {missing}: loop over every node i = 1 … n_nodes "
                f"(range(1, n_nodes + 1): the end of range is excluded).")
    return (f"with n_nodes = {n_nodes} you asked for {sorted(node_names)}; expected {sorted(expected)} (node i's "
            f"operation \"op_i\" and input \"input_i\", i = 1 … n_nodes).")


def _distribution_problem(name: str, got, n_nodes: int) -> str | None:
    if name == "width":
        if not isinstance(got, CategoricalDistribution) or set(got.choices) != set(WIDTHS):
            return f"\"width\" should be one of {WIDTHS} (suggest_categorical); you asked for {_kind(got)}."
    elif name == "n_nodes":
        if not isinstance(got, IntDistribution) or (got.low, got.high) != (1, MAX_NODES):
            return f"\"n_nodes\" should be an integer from 1 to {MAX_NODES}; you asked for {_kind(got)}."
    elif name.startswith("op_"):
        if not isinstance(got, CategoricalDistribution) or set(got.choices) != set(OPS):
            return f"\"{name}\" should be one of OPS = {OPS}; you asked for {_kind(got)}."
    elif name.startswith("input_"):
        i = int(name.split("_")[1])
        if not isinstance(got, IntDistribution):
            return f"\"{name}\" should be an integer (suggest_int) from 0 to {i - 1}; you asked for {_kind(got)}."
        if got.low == 1 and got.high == i:
            return (f"\"{name}\" runs from 1 to {i}: shifted by one. States are numbered from h_0 (the cell's input): "
                    f"node {i} may read h_0 … h_{i - 1}, so suggest_int(\"{name}\", 0, {i - 1}).")
        if got.low != 0:
            return (f"\"{name}\" starts at {got.low}, so node {i} can never read the cell's input h_0 (state 0): "
                    f"suggest_int(\"{name}\", 0, {i - 1}).")
        if got.high == i:
            return (f"\"{name}\" goes up to {i}: node {i} could read its own output h_{i}, which does not exist yet "
                    f"(eq. (7.1): 0 ≤ s_i < i; suggest_int includes its upper end). Use suggest_int(\"{name}\", 0, "
                    f"{i - 1}).")
        if got.high > i:
            return (f"\"{name}\" goes up to {got.high}: node {i} could read a later node's output, a cycle (eq. "
                    f"(7.1): 0 ≤ s_i < i). The range depends on i: suggest_int(\"{name}\", 0, {i - 1}).")
        if got.high != i - 1:
            return (f"\"{name}\" goes only up to {got.high}: node {i} may read any earlier state, h_0 … h_{i - 1}: "
                    f"suggest_int(\"{name}\", 0, {i - 1}).")
    elif name == "lr":
        if not isinstance(got, FloatDistribution):
            return f"\"lr\" should be a float (suggest_float) from 0.01 to 0.3, log scale; you asked for {_kind(got)}."
        if (got.low, got.high) != LR_RANGE:
            return f"\"lr\" should run from 0.01 to 0.3; you asked for {_kind(got)}."
        if not got.log:
            return ("\"lr\" is sampled on a linear scale: most draws then land between 0.1 and 0.3 and a learning rate "
                    "near 0.01 is almost never tried. Pass log=True: suggest_float(\"lr\", 0.01, 0.3, log=True).")
    return None


def _genotype_problem(got, params: dict) -> str | None:
    fields = ("width", "ops", "inputs", "lr")
    if not all(hasattr(got, f) for f in fields):
        return (f"return a Genotype(width, ops, inputs, lr); you returned a {type(got).__name__}"
                + (" (did you forget `return`?)" if got is None else "") + ".")
    n = params["n_nodes"]
    want = {"width": params["width"], "ops": tuple(params[f"op_{i}"] for i in range(1, n + 1)),
            "inputs": tuple(params[f"input_{i}"] for i in range(1, n + 1)), "lr": params["lr"]}
    for name in ("ops", "inputs"):
        value = getattr(got, name)
        if isinstance(value, list) and tuple(value) == want[name]:
            return (f"your genotype's {name} is a list: make it a tuple (tuple({name})), so that a Genotype is "
                    f"hashable — the experiment uses genotypes as dictionary keys.")
    for name in fields:
        value = getattr(got, name)
        same = math.isclose(value, want[name]) if name == "lr" and isinstance(value, float) else value == want[name]
        if not same:
            return (f"your genotype's {name} is {value!r} but the trial's values give {want[name]!r}: build the "
                    f"Genotype from the values suggest_* returned, in node order.")
    return None


@one_thread
def check_sample_genotype(sample_genotype) -> None:
    """Exercise 7.1: ``sample_genotype(trial)`` asks for width, n_nodes, op_i, input_i (i = 1 … n_nodes) and lr with
    the prompt's distributions and returns the Genotype they describe."""
    EX = EX_SPACE
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=EX.seed("study")))
    seen_nodes = set()
    for number in range(N_TRIALS):
        trial = study.ask()
        case = f"random trial {number}"
        got = EX.call(sample_genotype, trial, case=case)
        names, params = set(trial.distributions), trial.params
        n_nodes = params.get("n_nodes")
        if isinstance(n_nodes, int):
            seen_nodes.add(n_nodes)
        problem = _names_problem(names, n_nodes if isinstance(n_nodes, int) else 0)
        if problem is None:
            problem = next(filter(None, (_distribution_problem(name, trial.distributions[name], n_nodes)
                                         for name in ("width", "n_nodes", *sorted(names - {"width", "n_nodes"})))),
                           None)
        problem = problem or _genotype_problem(got, params)
        if problem:
            raise EX.fail(problem, case=case)
        study.tell(trial, 0.0)
    EX.passed(f"{N_TRIALS} random trials ask for the right names and distributions, with {sorted(seen_nodes)} nodes "
              f"(define-by-run), and return the genotypes they describe")
