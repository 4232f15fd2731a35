"""The teaching code of Chapter 08's solutions against library oracles (ncps, PyTorch, the exact ODE solution), on
sizes hypothesis chooses. The checks try a handful of fixed cases; these tests sweep sizes."""
import math

import jupytext
import pytest
import torch
import torch.nn as nn
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.solution_code import SOLUTIONS, solution_namespace
from tests.strategies import seeds

CHAPTER = "08_hybrid_video"
ncps_torch = pytest.importorskip("ncps.torch")


@pytest.fixture(scope="module")
def solved():
    """The setup cell and the exercise cells, then the cells that define the encoders and the temporal modules."""
    namespace = solution_namespace(CHAPTER)
    for cell in jupytext.read(SOLUTIONS / f"{CHAPTER}.md").cells:
        if cell.cell_type == "code" and cell.source.startswith(("class ConvEncoder", "class TemporalTransformer")):
            exec(compile(cell.source, f"<{CHAPTER}: {cell.source[:24]}>", "exec"), namespace)  # noqa: S102
    return namespace


@settings(max_examples=15, deadline=None)
@given(c=st.floats(0.0, 5.0), tau=st.floats(0.2, 4.0), A=st.floats(-1.0, 1.0), dt=st.floats(0.05, 3.0),
       unfolds=st.integers(1, 8), seed=seeds)
def test_ltc_update_constant_opening_is_the_closed_form(solved, c, tau, A, dt, unfolds, seed):
    """With a constant f, eq. (8.3) L times is x* + (x − x*)·(1 + Δ(1/τ + f))^(−L), x* from eq. (8.2)."""
    x = torch.randn(3, 4, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    got = solved["ltc_update"](x, lambda s: torch.full_like(s, c), tau, A, dt, unfolds)
    x_star = tau * c * A / (1 + tau * c)
    torch.testing.assert_close(got, x_star + (x - x_star) * (1 + dt / unfolds * (1 / tau + c)) ** -unfolds)


def test_ltc_update_converges_to_the_exact_solution(solved):
    """Eq. (8.3) with many unfolds approaches eq. (8.4), first order in 1/L."""
    x, c, tau, A, dt = torch.tensor([0.3], dtype=torch.float64), 1.5, 2.0, 1.0, 1.0
    x_star = tau * c * A / (1 + tau * c)
    exact = x_star + (x - x_star) * math.exp(-(1 / tau + c) * dt)
    errors = [(solved["ltc_update"](x, lambda s: torch.full_like(s, c), tau, A, dt, L) - exact).abs().item()
              for L in (100, 200)]
    assert errors[1] < 0.55 * errors[0] and errors[1] < 1e-2


@settings(max_examples=10, deadline=None)
@given(neurons=st.integers(1, 6), inputs=st.integers(1, 4), batch=st.integers(1, 3), dt=st.floats(0.1, 2.0),
       unfolds=st.integers(1, 6), seed=seeds)
def test_ltc_update_matches_ncps_ltccell(solved, neurons, inputs, batch, dt, unfolds, seed):
    """ncps's LTCCell solver with v_leak = 0, c_m = 1 and one reversal potential per neuron is eq. (8.3)."""
    from ncps.wirings import FullyConnected

    torch.manual_seed(seed)
    wiring = FullyConnected(neurons)
    wiring.build(inputs)
    cell = ncps_torch.LTCCell(wiring, input_mapping="linear", ode_unfolds=unfolds).double()
    p = cell._params
    A = torch.linspace(-0.5, 1.0, neurons, dtype=torch.float64)
    with torch.no_grad():
        p["vleak"].zero_(), p["cm"].fill_(1.0)
        p["erev"].copy_(A.expand(neurons, neurons)), p["sensory_erev"].copy_(A.expand(inputs, neurons))
    inp = torch.randn(batch, inputs, dtype=torch.float64)
    state = torch.randn(batch, neurons, dtype=torch.float64) * 0.3
    mapped = cell._map_inputs(inp)

    def opening(v):
        sensory = p["sensory_w"] * torch.sigmoid(p["sensory_sigma"] * (mapped[..., None] - p["sensory_mu"]))
        recurrent = p["w"] * torch.sigmoid(p["sigma"] * (v[..., None] - p["mu"]))
        return (sensory * p["sensory_sparsity_mask"]).sum(1) + (recurrent * p["sparsity_mask"]).sum(1)

    with torch.no_grad():
        theirs = cell._ode_solver(mapped, state, dt)
        ours = solved["ltc_update"](state, opening, 1 / p["gleak"], A, dt, unfolds)
    torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=1e-6)


@settings(max_examples=15, deadline=None)
@given(inputs=st.integers(1, 5), hidden=st.integers(1, 6), units=st.integers(1, 8), batch=st.integers(1, 4),
       seed=seeds)
def test_cfc_cell_matches_ncps(solved, inputs, hidden, units, batch, seed):
    """Eq. (8.6) is ncps's CfCCell with time_a negated (ncps writes the gate σ(t_a·t + t_b))."""
    torch.manual_seed(seed)
    theirs = ncps_torch.CfCCell(inputs, hidden, backbone_units=units).double()
    mine = solved["CfCCell"](inputs, hidden, units).double()
    weights = theirs.state_dict()
    weights["time_a.weight"], weights["time_a.bias"] = -weights["time_a.weight"], -weights["time_a.bias"]
    mine.load_state_dict(weights)
    u, hx = torch.randn(batch, inputs, dtype=torch.float64), torch.randn(batch, hidden, dtype=torch.float64)
    ts = torch.rand(batch, 1, dtype=torch.float64) * 3
    torch.testing.assert_close(mine(u, hx, ts), theirs(u, hx, ts)[0])


@settings(max_examples=15, deadline=None)
@given(B=st.integers(1, 3), T=st.integers(1, 4), seed=seeds)
def test_per_frame_is_a_loop_over_frames(solved, B, T, seed):
    torch.manual_seed(seed)
    net = solved["ConvEncoder"](8, 5)
    video = torch.rand(B, T, 1, 8, 8)
    expected = torch.stack([torch.stack([net(video[b, t][None])[0] for t in range(T)]) for b in range(B)])
    torch.testing.assert_close(solved["per_frame"](net, video), expected)


@settings(max_examples=10, deadline=None)
@given(T=st.integers(1, 12))
def test_causal_mask_is_pytorchs_square_subsequent_mask(solved, T):
    blocked = nn.Transformer.generate_square_subsequent_mask(T) == float("-inf")  # PyTorch: −inf = blocked
    assert torch.equal(solved["causal_mask"](T), ~blocked)


@settings(max_examples=8, deadline=None)
@given(cnn=st.booleans(), transformer=st.booleans(), liquid=st.booleans(), T=st.integers(2, 5), seed=seeds)
def test_hybrid_output_t_reads_frames_up_to_t(solved, cnn, transformer, liquid, T, seed):
    """Eq. (8.8): the gradient of output t reaches input frames 0 … t and no later one."""
    torch.manual_seed(seed)
    model = solved["Hybrid"](8, 8, cnn=cnn, transformer=transformer, liquid=liquid).double()
    video = torch.rand(1, T, 1, 8, 8, dtype=torch.float64, requires_grad=True)
    t = T // 2
    (model(video)[0, t] * torch.randn(1, 8, 8, dtype=torch.float64)).sum().backward()
    reached = video.grad[0].abs().flatten(1).sum(1) > 0
    assert not reached[t + 1:].any()
    assert reached[t]
    if transformer or liquid:
        assert reached[: t + 1].all()
