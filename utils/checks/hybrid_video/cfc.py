"""Exercise 8.2: the CfC cell, eq. (8.6), x(t) = σ(−f·t + b) ⊙ g + (1 − σ(−f·t + b)) ⊙ h (ncps's CfCCell)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from utils.checks.core import Case, Exercise, Mistake, compare_coefficients, copy_parameters, fit_linear, one_thread

EX = Exercise("8.2", "CfCCell")
EQUATION = ("eq. (8.6), σ(−f·t + b) ⊙ g + (1 − σ(−f·t + b)) ⊙ h with g = tanh(ff2(z)), h = tanh(ff1(z)), "
            "f = time_a(z), b = time_b(z)")


class LeCunTanh(nn.Module):
    def forward(self, x):
        return 1.7159 * torch.tanh(0.666 * x)


class ReferenceCfCCell(nn.Module):
    def __init__(self, input_size, hidden_size, backbone_units=32):
        super().__init__()
        self.hidden_size = hidden_size
        self.backbone = nn.Sequential(nn.Linear(input_size + hidden_size, backbone_units), LeCunTanh())
        self.ff1 = nn.Linear(backbone_units, hidden_size)
        self.ff2 = nn.Linear(backbone_units, hidden_size)
        self.time_a = nn.Linear(backbone_units, hidden_size)
        self.time_b = nn.Linear(backbone_units, hidden_size)

    def parts(self, input, hx, ts):
        z = self.backbone(torch.cat([input, hx], dim=1))
        return z, torch.tanh(self.ff2(z)), torch.tanh(self.ff1(z)), self.time_a(z), self.time_b(z)

    def forward(self, input, hx, ts):
        _, g, h, f, b = self.parts(input, hx, ts)
        gate = torch.sigmoid(-f * ts + b)
        return gate * g + (1 - gate) * h


@dataclass(frozen=True)
class CfCCase(Case):
    batch: int = 4
    inputs: int = 3
    hidden: int = 5
    units: int = 6
    gaps: tuple = (1.0,)  # one number for all, or one per sequence

    @property
    def sizes(self):
        return {"B": self.batch, "D_in": self.inputs, "D": self.hidden}


CASES = [CfCCase("B=3, D_in=2, D=4, ts of shape (B, 1): 0.2, 1.0, 3.0", batch=3, inputs=2, hidden=4, units=5,
                 gaps=(0.2, 1.0, 3.0)),  # first: with ts = 1 a swap of the two time heads looks like swapped g, h
         CfCCase("B=4, D_in=3, D=5, ts=1.0"),
         CfCCase("B=1, D_in=4, D=3, ts=2.5", batch=1, inputs=4, hidden=3, units=7, gaps=(2.5,)),
         CfCCase("B=2, D_in=3, D=3, float64, ts (B, 1)", dtype=torch.float64, batch=2, inputs=3, hidden=3, units=4,
                 gaps=(0.5, 1.7))]


def _mistakes(ref: ReferenceCfCCell, u, hx, ts) -> list[Mistake]:
    z, g, h, f, b = ref.parts(u, hx, ts)
    sig = torch.sigmoid
    z_swapped = ref.backbone(torch.cat([hx, u], dim=1))
    out = [Mistake(sig(f * ts + b) * g + (1 - sig(f * ts + b)) * h,
                   "the gate's sign is flipped: you use σ(+f·t + b); eq. (8.6) has σ(−f·t + b), a gate that decays "
                   "with the elapsed time t (it plays e^{−(1/τ + f)t} of eq. (8.4))."),
           Mistake((1 - sig(-f * ts + b)) * g + sig(-f * ts + b) * h,
                   "the two heads are swapped: the gate σ(−f·t + b) weights g = tanh(ff2(z)) (the state at t = 0) "
                   "and 1 − gate weights h = tanh(ff1(z)) (the state as t → ∞)."),
           Mistake(sig(-f + b) * g + (1 - sig(-f + b)) * h,
                   "ts is ignored: your gate is σ(−f + b), as if every gap were 1. Multiply f by ts: σ(−f·ts + b)."),
           Mistake(sig(-f * ts) * g + (1 - sig(-f * ts)) * h,
                   "the offset b = time_b(z) is missing from the gate: eq. (8.6) uses σ(−f·t + b)."),
           Mistake(sig(-f * ts + b) * ref.ff2(z) + (1 - sig(-f * ts + b)) * ref.ff1(z),
                   "the heads g and h have no tanh: g = tanh(ff2(z)) and h = tanh(ff1(z))."),
           Mistake(g,
                   "both terms use g: the second, weighted by 1 − gate, is h = tanh(ff1(z))."),
           Mistake(sig(-f * ts + b) * g + (1 - sig(-f * ts + b)) * h + hx,
                   "you add the previous state hx to the output: eq. (8.6) is the new state itself (hx enters only "
                   "through the backbone).")]
    if z_swapped is not None:
        g2, h2 = torch.tanh(ref.ff2(z_swapped)), torch.tanh(ref.ff1(z_swapped))
        gate2 = sig(-ref.time_a(z_swapped) * ts + ref.time_b(z_swapped))
        out.append(Mistake(gate2 * g2 + (1 - gate2) * h2, "the backbone reads [hx, input]: concatenate "
                           "torch.cat([input, hx], dim=1), input first, as ncps's CfCCell does."))
    return out


def _gate_reading(got, ref, u, hx, ts) -> str | None:
    """Recover the gate from got = s·g + (1 − s)·h, then fit logit(s) as α·f·t + β·b + γ·f."""
    with torch.no_grad():
        _, g, h, f, b = ref.parts(u, hx, ts)
        got = got.double()
        g, h, f, b = g.double(), h.double(), f.double(), b.double()
        usable = (g - h).abs() > 0.05
        if usable.sum() < 6:
            return None
        s = ((got - h) / (g - h))[usable]
        if (s <= 1e-6).any() or (s >= 1 - 1e-6).any():
            return ("your output is not a mix s·g + (1 − s)·h with a gate s strictly between 0 and 1: eq. (8.6) "
                    "blends g = tanh(ff2(z)) and h = tanh(ff1(z)) with the sigmoid gate σ(−f·t + b).")
        logit = torch.log(s / (1 - s))
        t = torch.as_tensor(ts, dtype=torch.float64).expand_as(f)[usable]
        basis = {"f·t": f[usable] * t, "b": b[usable], "1": torch.ones_like(logit)}
        if not torch.allclose(t, t.flatten()[0].expand_as(t)):
            basis["f"], basis["b·t"] = f[usable], b[usable] * t
        fit = fit_linear(logit, basis)
        expected = {"f·t": -1.0, "b": 1.0, "1": 0.0, "f": 0.0, "b·t": 0.0}
        said = compare_coefficients(fit, {k: expected[k] for k in basis}, rtol=1e-3,
                                    names={"f·t": "f·ts", "b": "b", "1": "a constant", "f": "f (without ts)",
                                           "b·t": "b·ts"})
        if said:
            return f"reading your gate as σ(logit): {said} Eq. (8.6)'s gate is σ(−f·ts + b)."
    return None


@one_thread
def check_cfc_cell(CfCCell) -> None:
    for case in CASES:
        torch.manual_seed(EX.seed(case.label))
        ref = ReferenceCfCCell(case.inputs, case.hidden, case.units).to(case.dtype)
        cell = EX.call(CfCCell, case.inputs, case.hidden, case.units, what="CfCCell(...) (its __init__)", case=case)
        cell = cell.to(case.dtype)
        copy_parameters(ref, cell, EX)
        u = EX.randn(case.batch, case.inputs, key=(case.label, "input"), dtype=case.dtype)
        hx = EX.randn(case.batch, case.hidden, key=(case.label, "hx"), dtype=case.dtype) * 0.5
        ts = case.gaps[0] if len(case.gaps) == 1 else torch.tensor(case.gaps, dtype=case.dtype)[:, None]
        got = EX.call(cell, u, hx, ts, what="CfCCell.forward", case=case)
        with torch.no_grad():
            expected = ref(u, hx, ts)
            wrong = _mistakes(ref, u, hx, ts)
        EX.compare(got, expected, case=case, equation=EQUATION, name="new state", mistakes=wrong,
                   probes=[lambda got, ref=ref, u=u, hx=hx, ts=ts: _gate_reading(got, ref, u, hx, ts)],
                   axes=("B", "D"))
        if not got.requires_grad:
            raise EX.fail("your new state is not connected to the autograd graph: compute it from the layers' "
                          "outputs, without torch.no_grad() or .detach().", case=case)
        got.sum().backward()
        missing = [name for name, p in cell.named_parameters() if p.grad is None]
        if missing:
            raise EX.fail(f"no gradient reaches {', '.join(missing)}: eq. (8.6) uses all four heads and the "
                          f"backbone.", case=case)
    EX.passed(f"{len(CASES)} cases match eq. (8.6) (ts a number and one per sequence, batch of one, float64); "
              f"gradients reach every layer.")
