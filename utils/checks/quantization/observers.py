"""Exercise 11.3: the MSE observer, a grid search of eq. (11.4)'s trade-off on the data."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from utils.checks.core import Case, Mistake, one_thread
from utils.checks.quantization.cases import EX_MSE, reference_mse_range


@dataclass(frozen=True)
class MSECase(Case):
    rows: int = 1
    n: int = 500
    bits: int = 4
    grid: int = 100
    laplace: bool = False
    zero_row: bool = False

    @property
    def sizes(self):
        return {"C": self.rows, "n": self.n}


MSE_CASES = (
    MSECase("one Gaussian row of 2,000, 4 bits", rows=1, n=2000, bits=4),
    MSECase("5 Laplacian rows of different scales, 3 bits", rows=5, n=300, bits=3, laplace=True),
    MSECase("3 rows, 2 bits, grid=20", rows=3, n=64, bits=2, grid=20),
    MSECase("2 rows, 8 bits, grid=50", rows=2, n=400, bits=8, grid=50),
    MSECase("4 rows, one of them all zeros, 4 bits", rows=4, n=100, bits=4, zero_row=True, laplace=True),
)


def _values(case: MSECase) -> torch.Tensor:
    values = EX_MSE.randn(case.rows, case.n, key=(case.label, "v"))
    if case.laplace:  # heavier tails: the sign times an exponential
        uniform = torch.rand(case.rows, case.n, generator=torch.Generator().manual_seed(EX_MSE.seed(case.label)))
        values = values.sign() * -torch.log1p(-uniform.clamp(max=0.999))
    values = values * (0.3 + torch.arange(case.rows, dtype=torch.float32)[:, None])  # a different scale per row
    if case.zero_row:
        values[1] = 0
    return values


@one_thread
def check_mse_range(mse_range) -> None:
    """Exercise 11.3: ``mse_range(values, bits, grid)`` is the per-row α = k/grid·max|x| with the least MSE."""
    EX = EX_MSE
    for case in MSE_CASES:
        values = _values(case)
        got = EX.call(mse_range, values.clone(), case.bits, grid=case.grid, case=case)
        expected = reference_mse_range(values, case.bits, case.grid)
        max_abs = values.abs().amax(dim=1)
        b = case.bits
        mistakes = [
            Mistake(torch.round(expected / max_abs.clamp_min(1e-12) * case.grid),
                    "you return the index k of the best candidate; return the bound itself, α = k/grid · max|x|."),
            Mistake(max_abs, "you return max|x| (the min-max observer): search the candidates α_k = k/grid·max|x| "
                             "for the least quantization MSE."),
            Mistake(reference_mse_range(values, b, case.grid, q_pos=2 ** (b - 1)),
                    "your quantizer's scale is α/2^(b−1); the narrow-range symmetric scale is α/(2^(b−1) − 1) (the "
                    "symmetric off-by-one)."),
            Mistake(reference_mse_range(values, b, case.grid, q_pos=2 ** b - 1),
                    "your scale is α/(2^b − 1), the affine count of steps; the symmetric grid over [−α, α] has "
                    "scale α/(2^(b−1) − 1)."),
            Mistake(reference_mse_range(values, b, case.grid, strict=False),
                    "on a tie you keep the later (larger) α; keep the first that reaches the least error (update on "
                    "a strict <)."),
            Mistake(reference_mse_range(values, b, case.grid, squared=False),
                    "you minimise the mean absolute error; the MSE observer minimises the mean *squared* error."),
            Mistake(reference_mse_range(values, b, case.grid, clip=False),
                    "your quantizer never clips: clamp q into [−2^(b−1), 2^(b−1) − 1] — the clipping error is half "
                    "of eq. (11.4)'s trade-off."),
        ]
        if case.rows > 1:
            mistakes += [
                Mistake(reference_mse_range(values, b, case.grid, per_row_max=False),
                        "your candidates are fractions of the largest |x| of the whole tensor; each row has its own "
                        "max|x| (amax(dim=1))."),
                Mistake(reference_mse_range(values, b, case.grid, joint=True),
                        "you choose one k for all rows (the error averaged over the tensor); search each row "
                        "separately: errors of shape (C,), one best α per row."),
            ]
        EX.compare(got, expected, case=case, name="α", equation="the grid search of eq. (11.4)",
                   mistakes=mistakes, probes=[lambda g: _candidate_probe(g, max_abs, case)], axes=("C",))
    EX.passed(f"{len(MSE_CASES)} cases (Gaussian and Laplacian rows, 2–8 bits, a zero row) pick the MSE-optimal "
              f"α per row")


def _candidate_probe(got, max_abs, case):
    """α must be one of the candidates k/grid·max|x| of its row, k = 1..grid."""
    got = got.detach()
    nonzero = max_abs > 0
    k = got[nonzero] / max_abs[nonzero] * case.grid
    off = (k - torch.round(k)).abs() > 1e-3
    if off.any():
        return (f"your α / max|x| · grid = {k[off][0].item():.4g} is not an integer: the candidates are "
                f"α_k = k/grid · max|x| for k = 1, …, grid (not linspace over grid − 1 intervals).")
    if (torch.round(k) < 1).any() or (torch.round(k) > case.grid).any():
        return "your α is outside the candidates k = 1, …, grid (k = 0 makes the scale 0)."
    return None
