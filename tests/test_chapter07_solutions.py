"""The teaching code of Chapter 07's solutions, with PyTorch and Optuna as oracles, on inputs hypothesis chooses.

The checks try a handful of fixed cases; these tests sweep genotypes, widths, observation sets and budgets, so a
solution that only works on the check's cases (or a reference in the checks that drifted) shows up here.
"""
import linecache
import math

import jupytext
import optuna
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.strategies import seeds
from utils import conventions
from utils.checks.architecture_search import cell as cell_checks
from utils.checks.architecture_search import darts as darts_checks
from utils.checks.architecture_search import halving as halving_checks
from utils.checks.architecture_search.reference import OPS, op_parameters

CHAPTER = "07_architecture_search"
DEFINITIONS = ("OPS = ", "def op_parameters", "class Network", "class Trainer", "class SuperNet")


def chapter_namespace() -> dict:
    """The notebook's setup cell, its exercise cells, and the whole of each cell that defines the chapter's model code
    (the operations, the skeleton, the trainer, the supernet): what the exercises' code needs to run."""
    path = conventions.ROOT / "solutions" / f"{CHAPTER}.md"
    code = [c for c in jupytext.read(path).cells if c.cell_type == "code"]
    wanted = [code[0].source] + [c.source for c in code[1:] if c.source.startswith(DEFINITIONS)
                                 or conventions.cell_exercise(c, conventions.EXERCISE)]
    namespace: dict = {}
    for number, source in enumerate(wanted):
        filename = f"<{path.name}, cell {number}>"
        linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
        exec(compile(source, filename, "exec"), namespace)  # noqa: S102 - our own notebook
    return namespace


@pytest.fixture(scope="module")
def solved():
    return chapter_namespace()


genotypes = st.builds(
    lambda width, ops, sources: (width, tuple(ops), tuple(min(s, i) for i, s in enumerate(sources[:len(ops)]))),
    st.sampled_from((2, 3, 5)), st.lists(st.sampled_from(OPS), min_size=1, max_size=3),
    st.lists(st.integers(0, 2), min_size=3, max_size=3))


@settings(max_examples=15, deadline=None)
@given(genotype=genotypes, seed=seeds)
def test_cell_matches_the_checks_reference_and_eq_7_2(solved, genotype, seed):
    C, ops, inputs = genotype
    cell = solved["Cell"](ops, inputs, C)
    reference = cell_checks.ReferenceCell(ops, inputs, C)
    assert sum(p.numel() for p in cell.parameters()) == sum(op_parameters(name, C) for name in ops)
    torch.manual_seed(seed)
    reference.load_state_dict(cell.state_dict())
    x = torch.randn(2, C, 5, 5, generator=torch.Generator().manual_seed(seed))
    assert torch.allclose(cell(x), reference(x), atol=1e-6)


@settings(max_examples=10, deadline=None)
@given(genotype=genotypes, in_channels=st.integers(1, 3), n_classes=st.integers(2, 10))
def test_network_parameter_count_and_shape(solved, genotype, in_channels, n_classes):
    C, ops, inputs = genotype
    g = solved["Genotype"](C, ops, inputs, 0.1)
    net = solved["Network"](g, in_channels, n_classes)
    assert solved["count_parameters"](net) == solved["network_parameters"](g, in_channels, n_classes)
    assert net(torch.rand(3, in_channels, 14, 14)).shape == (3, n_classes)


def test_sample_genotype_covers_the_space_and_agrees_with_fixed_trials(solved):
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    seen = set()
    for _ in range(60):
        trial = study.ask()
        genotype = solved["sample_genotype"](trial)
        again = solved["sample_genotype"](optuna.trial.FixedTrial(trial.params))
        assert again == genotype
        assert all(0 <= s < i for i, s in enumerate(genotype.inputs, start=1))
        seen.add(len(genotype.ops))
        study.tell(trial, 0.0)
    assert seen == {1, 2, 3}


@settings(max_examples=20, deadline=None)
@given(n=st.integers(2, 25), M=st.integers(1, 12), gamma=st.sampled_from((0.1, 0.25, 0.3, 0.5)),
       bandwidth=st.floats(0.1, 1.0), seed=seeds)
def test_tpe_ratio_against_scipy_kde(solved, n, M, gamma, bandwidth, seed):
    from scipy.stats import norm

    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, generator=generator, dtype=torch.float64)
    y = torch.randn(n, generator=generator, dtype=torch.float64)
    candidates = torch.linspace(-2, 2, M, dtype=torch.float64)
    got = solved["tpe_ratio"](candidates, x, y, gamma, bandwidth)
    n_good = math.ceil(gamma * n)
    order = y.argsort(descending=True)
    good, bad = x[order[:n_good]].numpy(), x[order[n_good:]].numpy()
    c = candidates.numpy()[:, None]
    expected = norm.pdf(c, good[None, :], bandwidth).mean(1) / norm.pdf(c, bad[None, :], bandwidth).mean(1)
    assert got.shape == (M,)
    assert torch.allclose(got, torch.from_numpy(expected), rtol=1e-8, atol=1e-12)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 300), r=st.integers(1, 20), eta=st.integers(2, 5))
def test_successive_halving_matches_the_simulation(solved, n, r, eta):
    rungs = solved["successive_halving"](n, r, eta)
    assert rungs == halving_checks.rungs(n, r, eta)
    s = math.floor(math.log(n, eta) + 1e-9)
    assert len(rungs) == s + 1 and rungs[-1][0] >= 1
    assert sum(a * b for a, b in rungs) <= (s + 1) * n * r  # eq. (7.7)


def test_optuna_hyperband_prunes_and_the_objective_reports_accuracy(solved):
    """The solution's objective with the chapter's Trainer on a tiny random problem, under Optuna's HyperbandPruner:
    trials are pruned, and intermediate values are accuracies at multiples of report_every."""
    generator = torch.Generator().manual_seed(0)
    images, labels = torch.rand(96, 1, 8, 8, generator=generator), torch.randint(0, 3, (96,), generator=generator)
    trainer = solved["Trainer"](images[:64], labels[:64], images[64:], labels[64:], batch_size=16)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0),
                                pruner=optuna.pruners.HyperbandPruner(min_resource=2, max_resource=8,
                                                                      reduction_factor=2))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study.optimize(lambda trial: solved["objective"](trial, trainer, 8, 2), n_trials=12)
    states = {t.state for t in study.trials}
    assert optuna.trial.TrialState.PRUNED in states and optuna.trial.TrialState.COMPLETE in states
    for trial in study.trials:
        assert set(trial.intermediate_values) <= {2, 4, 6, 8}
        assert all(0 <= v <= 1 for v in trial.intermediate_values.values())
    assert trainer.steps_spent == sum(max(t.intermediate_values) for t in study.trials)


@settings(max_examples=6, deadline=None)
@given(C=st.integers(1, 3), n_nodes=st.integers(1, 3), seed=seeds)
def test_super_cell_matches_the_reference_and_the_library_softmax(solved, C, n_nodes, seed):
    torch.manual_seed(seed)
    cell = solved["SuperCell"](C, n_nodes)
    with torch.no_grad():
        cell.alphas.normal_()
    reference = darts_checks.ReferenceSuperCell(C, n_nodes)
    reference.load_state_dict(cell.state_dict())
    x = torch.randn(2, C, 4, 4)
    out = cell(x)
    assert torch.allclose(out, reference(x), atol=1e-5)
    out.sum().backward()
    assert cell.alphas.grad is not None and torch.isfinite(cell.alphas.grad).all()


def test_super_cell_with_one_hot_alphas_is_the_discrete_cell(solved):
    """With α → one-hot (a large logit per edge) the mixed op of eq. (7.8) becomes the chosen op itself."""
    torch.manual_seed(0)
    C = 3
    cell = solved["SuperCell"](C, 1)
    k = OPS.index("conv3x3")
    with torch.no_grad():
        cell.alphas.fill_(-1e4)
        cell.alphas[0, k] = 1e4
    x = torch.randn(2, C, 5, 5)
    assert torch.allclose(cell(x), cell.edges[0][k](x), atol=1e-6)


def test_derive_genotype_reads_the_strongest_edge(solved):
    alphas = torch.zeros(3, len(OPS))
    alphas[0, OPS.index("conv5x5")] = 5  # node 1 from h_0
    alphas[2, OPS.index("skip")] = 5  # node 2: edge 2 comes from h_1
    genotype = solved["derive_genotype"](alphas, 2, 16, 0.1)
    assert genotype.ops == ("conv5x5", "skip") and genotype.inputs == (0, 1)


def test_tpe_ratio_argmax_is_where_optuna_proposes(solved):
    """Our ℓ/g and Optuna's TPESampler agree on where to look on a 1-D toy (the chapter's comparison)."""
    generator = torch.Generator().manual_seed(5)
    x = torch.rand(40, generator=generator, dtype=torch.float64) * 4 - 2
    y = -(x - 1.0) ** 2 + 0.05 * torch.randn(40, generator=generator, dtype=torch.float64)
    grid = torch.linspace(-2, 2, 201, dtype=torch.float64)
    best = grid[solved["tpe_ratio"](grid, x, y, 0.25, 0.3).argmax()]
    study = optuna.create_study(direction="maximize",
                                sampler=optuna.samplers.TPESampler(n_startup_trials=0, seed=0))
    distribution = optuna.distributions.FloatDistribution(-2.0, 2.0)
    for a, b in zip(x.tolist(), y.tolist()):
        study.add_trial(optuna.trial.create_trial(params={"x": a}, distributions={"x": distribution}, value=b))
    proposals = torch.tensor([study.ask({"x": distribution}).params["x"] for _ in range(30)])
    assert abs(float(best) - 1.0) < 0.3 and abs(float(proposals.median()) - float(best)) < 0.4

