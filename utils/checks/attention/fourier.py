"""Exercise 1.6 — FNet's Fourier mixing as two DFT matrices, eqs. (1.12), (1.13)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from utils.checks.attention.coefficients import formula, multiplier, recovered_coefficients
from utils.checks.attention.common import EX_DFT, EX_MIXING, MATMUL, ChapterCase, compare_answer, is_close, run_learner
from utils.checks.attention.quantities import FOURIER, FOURIER_PRODUCTS
from utils.checks.attention.roles import Roles
from utils.checks.core import (
    Mistake,
    name_value,
    named_sizes_in,
    one_thread,
    structure_problem,
)


@dataclass(frozen=True)
class DftCase(ChapterCase):
    n: int = 1
    requested: torch.dtype | None = None  # the dtype argument, None for the default (complex64)

    @property
    def sizes(self) -> dict[str, int]:
        return {"n": self.n}


DFT_CASES = [DftCase("dft_matrix(5)", n=5), DftCase("dft_matrix(8)", n=8), DftCase("dft_matrix(1)", n=1),
             DftCase("dft_matrix(2)", n=2),
             DftCase("dft_matrix(6, torch.complex128)", torch.float64, n=6, requested=torch.complex128)]


@dataclass(frozen=True)
class MixingCase(ChapterCase):
    shape: tuple = ()  # (B, T, D)

    @property
    def layout(self) -> str:
        return "x (..., T, D)"

    @property
    def roles(self) -> Roles:
        return Roles(FOURIER, FOURIER_PRODUCTS, self.sizes)

    @property
    def sizes(self) -> dict[str, int]:
        return {"T": self.shape[-2], "D": self.shape[-1]}

    def own_reading(self, error: BaseException, line: str) -> str | None:
        if MATMUL.search(str(error)) and self.shape[-2] != self.shape[-1]:
            return ("x is (…, T, D): W_T (T × T) multiplies it from the left, along the sequence axis, and W_D "
                    "(D × D) from the right, along the hidden axis: W_T @ x @ W_D (eq. (1.13))."
                    + named_sizes_in(str(error), self.sizes))
        return None


MIXING_CASES = [MixingCase("B=3, T=7, D=5", shape=(3, 7, 5)), MixingCase("B=2, T=8, D=16", shape=(2, 8, 16)),
                MixingCase("no batch axis, T=6, D=3", shape=(6, 3)),
                MixingCase("two batch axes, (2, 3, T=5, D=4)", shape=(2, 3, 5, 4)),
                MixingCase("T=1", shape=(1, 1, 4)),
                MixingCase("float64, B=2, T=6, D=4", torch.float64, shape=(2, 6, 4))]


def reference_dft_matrix(n: int, dtype=torch.complex128) -> torch.Tensor:
    """W[j, k] = exp(−2πi jk / n), from torch.fft: the DFTs of the unit vectors are W's columns (eq. (1.12))."""
    return torch.fft.fft(torch.eye(n, dtype=torch.complex128), dim=0).to(dtype)


_ANGLE_ADVICE = {
    "+2π/n": "the exponent's sign is +; the forward DFT uses e^(−2πi jk/n) (eq. (1.12); + is the inverse's).",
    "−2π/(n−1)": "divide the angle by n, not n − 1.",
    "+2π/(n−1)": "the exponent's sign is + and the angle is divided by n − 1: eq. (1.12) has −2π jk/n.",
    "−π/n": "the angle is missing a factor 2: −2π jk/n (eq. (1.12)).",
    "−1/n": "the angle −2π jk/n is in radians: the factor 2π is missing (eq. (1.12)).",
    "−2π/n²": "divide the angle by n, not n² (eq. (1.12)).",
}


def _dft_probes(n: int):
    """Properties of W_n (eq. (1.12)) on a (n, n, 2) real view of the learner's complex matrix."""
    j = torch.arange(n, dtype=torch.float64)
    products = torch.outer(j, j)  # (n, n): jk

    def as_complex(got):
        return torch.view_as_complex(got.double().contiguous())

    def modulus(got):
        size = as_complex(got).abs()
        if ((size - 1).abs() < 1e-4).all():
            return None
        if (size.max() - size.min()) < 1e-4 * size.max():
            r = size.mean().item()
            name = name_value(r, {"√n": math.sqrt(n), "n": n})
            angles = as_complex(got).angle()
            if name in ("1/n", "1/√n") and n > 1 and (angles.abs() < 1e-4).all():  # every phase e^(−2πi·jk) = 1
                return (f"every entry of yours is {r:.4g} = {name}, a real number: the exponent lost its /n, "
                        f"e^(−2πi·jk) = 1 for every integer jk, and the {name[2:]} divides outside the exponent. "
                        f"Eq. (1.12) is W_jk = e^(−2πi·jk/n): the division by n belongs inside the exponent, and "
                        f"nothing divides the exponential.")
            return (f"every entry of W has modulus 1 (|e^(iθ)| = 1), yours {r:.4g}" + (f" = {name}" if name else "")
                    + ": eq. (1.12) has no normalisation (that would be the unitary DFT, torch.fft's norm='ortho').")
        return (f"every entry of W has modulus 1 (e^(−2πi jk/n) lies on the unit circle); yours range from "
                f"{size.min():.3g} to {size.max():.3g}: build the entries from their angle, torch.polar(ones, angle) "
                f"or torch.exp(1j * angle).")

    def first_row_and_column(got):
        w = as_complex(got)
        if n > 1 and ((w[0] - 1).abs().max() > 1e-4 or (w[:, 0] - 1).abs().max() > 1e-4):
            return ("W[0, k] = W[j, 0] = e^0 = 1 (jk = 0), but yours are not all 1: j and k run over 0, …, n − 1 "
                    "(torch.arange(n)), and the angle is −2π jk/n (eq. (1.12)).")
        return None

    def index_form(got):
        """The right angle −2π·(…)/n of another expression of the indices than jk: said which."""
        w = as_complex(got)
        one_based = j + 1
        forms = {"j + k": (j[:, None] + j[None, :], "the sum j + k where eq. (1.12) has the product jk: "
                                                   "torch.outer(j, j), or j[:, None] * j[None, :]"),
                 "(j+1)(k+1)": (torch.outer(one_based, one_based),
                                "indices counted from 1: j and k run over 0, …, n − 1, torch.arange(n)")}
        for name, (exponent, advice) in forms.items():
            for sign, said in ((-1, "−"), (1, "+")):
                pattern = torch.polar(torch.ones_like(exponent), sign * 2 * math.pi * exponent / n)
                if n > 1 and (w - pattern).abs().max() < 1e-4:
                    shown = name if name.startswith("(") else f"({name})"
                    return f"your W[j, k] = e^({said}2πi·{shown}/n): {advice}" + \
                        ("" if sign < 0 else "; and the angle is negative, −2π jk/n") + " (eq. (1.12))."
        return None

    def symmetric(got):
        w = as_complex(got)
        if (w - w.T).abs().max() > 1e-4:
            return ("W[j, k] depends on the product jk only, so W is symmetric, but yours isn't: the exponent is "
                    "−2πi·j·k/n with j the row and k the column (torch.outer(j, j)) (eq. (1.12)).")
        return None

    def powers(got):
        w = as_complex(got)
        if n < 2:
            return None
        omega = w[1, 1]
        angle = omega.angle().item()  # (−π, π]
        pattern = torch.polar(torch.ones_like(products), angle * products)
        if (w - pattern).abs().max() > 1e-4:
            return ("W[j, k] must be ω^(jk) with ω = W[1, 1] = e^(−2πi/n): your entries are not powers of W[1, 1] "
                    "with exponent jk (eq. (1.12)).")
        candidates = {"−2π/n": -2 * math.pi / n, "+2π/n": 2 * math.pi / n, "−π/n": -math.pi / n, "−1/n": -1 / n,
                      "−2π/n²": -2 * math.pi / n ** 2}
        if n > 2:
            candidates.update({"−2π/(n−1)": -2 * math.pi / (n - 1), "+2π/(n−1)": 2 * math.pi / (n - 1)})
        for name, value in candidates.items():
            wrapped = math.remainder(value - angle, 2 * math.pi)  # the same angle on the circle?
            if abs(wrapped) < 1e-4:
                return None if name == "−2π/n" else f"your W[1, 1] = e^(i·{angle:.4g}), an angle step of {name}: " \
                                                    f"{_ANGLE_ADVICE[name]}"
        return (f"your W[1, 1] = e^(i·{angle:.4g}); eq. (1.12) has e^(−2πi/n) = e^(i·{-2 * math.pi / n:.4g}): the "
                f"angle is −2π jk/n.")

    return [modulus, index_form, symmetric, first_row_and_column, powers]


def _check_dft_matrix(dft_matrix) -> None:
    """The first half of Exercise 1.6: W_n of eq. (1.12), in the dtype asked for."""
    for case in DFT_CASES:
        args = (case.n,) if case.requested is None else (case.n, case.requested)
        got = run_learner(EX_DFT, dft_matrix, *args, case=case)
        want_dtype = case.requested or torch.complex64
        if not isinstance(got, torch.Tensor):
            raise EX_DFT.fail(structure_problem(got, torch.zeros(1)), case=case, name="matrix")
        if not got.is_complex():
            hint = ""
            if got.shape == (case.n, case.n) and torch.allclose(got.double(), reference_dft_matrix(case.n).real,
                                                                 atol=1e-4):
                hint = " Yours is W's real part, cos(2π jk/n): e^(iθ) = cos θ + i sin θ (torch.polar(ones, θ))."
            raise EX_DFT.fail(f"dft_matrix must return a complex tensor ({want_dtype}), got {got.dtype}.{hint}",
                              case=case)
        if got.dtype != want_dtype:
            raise EX_DFT.fail(f"returned {got.dtype}, but {case.label} asks for {want_dtype}"
                              + (" (the default)" if case.requested is None else "")
                              + ": build the matrix in the dtype you are given, .to(dtype) at the end.", case=case)
        expected = reference_dft_matrix(case.n, want_dtype)
        if got.shape != expected.shape:
            raise EX_DFT.fail(f"shape {tuple(got.shape)} but W_n is (n, n) = ({case.n}, {case.n}).", case=case)
        got, expected = torch.view_as_real(got.resolve_conj()), torch.view_as_real(expected)  # (n, n, 2) real
        precision = _precision_probe(expected, "dft_matrix(n, torch.complex128)", "compute the angle 2π jk/n in "
                                     "float64 (torch.arange(n, dtype=torch.float64)) before building the complex128 "
                                     "matrix")
        compare_answer(EX_DFT, got, expected, case, name="matrix (as real, imaginary)", equation="eq. (1.12)",
                       probes=[precision, *_dft_probes(case.n)], factors={"√n": math.sqrt(case.n), "n": case.n},
                       **({"atol": 1e-12, "rtol": 1e-12} if case.requested == torch.complex128 else {}))


def _precision_probe(expected: torch.Tensor, what: str, advice: str):
    """A float64 answer that is right only to float32 precision: float32 arithmetic somewhere (said before the
    other probes, which cannot tell such small differences apart)."""
    def probe(got):
        if got.dtype != torch.float64:
            return None
        difference = (got - expected).abs().max().item()
        if difference < 1e-4:  # (a probe only sees answers that failed the float64 tolerance)
            return (f"right to float32 precision only (max difference {difference:.2g}): {what} must be as precise "
                    f"as float64; {advice}.")
        return None
    return probe


def _mixing_terms(x: torch.Tensor) -> dict[str, torch.Tensor]:
    """The pieces Re(W_T X W_D) is made of, and what a partial or misplaced transform gives, float64."""
    T, D = x.shape[-2:]
    W_T, W_D = reference_dft_matrix(T), reference_dft_matrix(D)
    along_t = W_T @ x.to(torch.complex128)  # (..., T, D)
    return {"Re(W_T X)·Re(W_D)": along_t.real @ W_D.real, "Im(W_T X)·Im(W_D)": along_t.imag @ W_D.imag,
            "Re(W_T X)·Im(W_D)": along_t.real @ W_D.imag, "Im(W_T X)·Re(W_D)": along_t.imag @ W_D.real,
            "Re(W_T X)": along_t.real, "Re(X W_D)": (x.to(torch.complex128) @ W_D).real, "X": x.double()}


def _mixing_coefficient_probe(x: torch.Tensor):
    expected = {"Re(W_T X)·Re(W_D)": 1.0, "Im(W_T X)·Im(W_D)": -1.0}
    terms = _mixing_terms(x)

    def probe(got):
        found = recovered_coefficients(got, terms, expected)
        if found is None:
            return None
        if all(is_close(found.get(n, 0.0), expected.get(n, 0.0), 1e-4, 1e-9) for n in found):
            return None
        m = multiplier(found, expected)
        if m is not None:
            return "the sign is flipped: FNet(X) = Re(W_T X W_D) (eq. (1.13))." if is_close(m, -1.0, 1e-4) else None
        yours = f"yours is {formula(found, {})}, where Re(W_T X W_D) = Re(W_T X)·Re(W_D) − Im(W_T X)·Im(W_D): "
        has = {n for n, value in found.items() if abs(value) > 1e-6}
        if has == {"Re(W_T X)"}:
            return yours + ("you transformed only along the sequence axis (W_T X); FNet applies the DFT along the "
                            "hidden axis too: Re(W_T X W_D), a 2-D DFT (eq. (1.13)).")
        if has == {"Re(X W_D)"}:
            return yours + ("you transformed only along the hidden axis (X W_D); FNet mixes tokens, so the DFT must "
                            "run along the sequence axis too: Re(W_T X W_D) (eq. (1.13)).")
        if has == {"Re(W_T X)·Re(W_D)"}:
            return yours + ("you took the real part too early, after the first product: keep W_T X complex, "
                            "multiply by W_D, and take .real once at the end.")
        if has == {"Re(W_T X)·Im(W_D)", "Im(W_T X)·Re(W_D)"}:
            return yours + "you kept the imaginary part; FNet keeps the real part (eq. (1.13))."
        if "X" in has and {"Re(W_T X)·Re(W_D)", "Im(W_T X)·Im(W_D)"} <= has and len(has) == 3:
            return yours + ("you added x itself: the residual connection x + mixing(x) belongs to the encoder block; "
                            "fourier_mixing returns Re(W_T X W_D) alone (eq. (1.13)).")
        if has == {"Re(W_T X)·Re(W_D)", "Im(W_T X)·Im(W_D)"} and found["Im(W_T X)·Im(W_D)"] > 0:
            return yours + ("one of your two DFT matrices has the + sign (conjugated: the inverse DFT's): both W_T "
                            "and W_D are e^(−2πi jk/n) (eq. (1.12)).")
        return yours + "compare with eq. (1.13), Re(W_T X W_D)."

    return probe


def _batch_probe(fourier_mixing, x: torch.Tensor):
    """Items of a batch do not mix: changing item 0 leaves the others' outputs as they were."""
    def probe(got):
        if x.dim() < 3 or x.shape[0] < 2:
            return None
        changed = x.clone()
        changed[0] = changed[0] + 1.0
        try:
            again = fourier_mixing(changed)
        except Exception:  # noqa: BLE001 - a probe that cannot run says nothing
            return None
        if isinstance(again, torch.Tensor) and again.shape == got.shape and \
                not torch.allclose(again[1:].double(), got[1:].double(), atol=1e-4, rtol=1e-4):
            return ("your output for one item of the batch changes when another item changes: you transformed over "
                    "the batch axis too. FNet mixes only the last two axes of each sequence, the sequence (T) and "
                    "hidden (D) axes: Re(W_T X W_D) (eq. (1.13)).")
        return None
    return probe


@one_thread
def check_fourier_mixing(dft_matrix, fourier_mixing) -> None:
    """Exercise 1.6: ``dft_matrix(n, dtype=torch.complex64)`` (W[j, k] = exp(-2πi jk/n)) and ``fourier_mixing(x)``
    = Re(W_T · x · W_D), checked against ``torch.fft``; float64 inputs must keep float64 precision."""
    _check_dft_matrix(dft_matrix)
    for case in MIXING_CASES:
        x = EX_MIXING.randn(*case.shape, key=(case.label, "x"), dtype=case.dtype)
        got = run_learner(EX_MIXING, fourier_mixing, x.clone(), case=case)
        expected = torch.fft.fft2(x, dim=(-2, -1)).real.to(case.dtype)
        if isinstance(got, torch.Tensor) and got.is_complex():
            raise EX_MIXING.fail(f"your output is complex ({got.dtype}); FNet keeps the real part (eq. (1.13)): "
                                 f"return (W_T @ x @ W_D).real, in x's dtype.", case=case)
        T, D = case.shape[-2:]
        precision = _precision_probe(expected, "the output of a float64 input", "build complex128 DFT matrices "
                                     "for it (dft_matrix(n, torch.complex128)) and convert x with "
                                     "x.to(torch.complex128)")
        mistakes = (Mistake(torch.fft.fft2(x).abs(), "you took the magnitude |·|; FNet keeps the real part."),
                    Mistake(torch.fft.fftn(x).real, "you transformed over every axis, the batch axis too; only the "
                                                    "sequence and hidden axes are mixed."))
        axes = (*("B", "B2")[:x.dim() - 2], "T", "D")
        compare_answer(EX_MIXING, got, expected, case, equation="eq. (1.13), Re(W_T X W_D)", axes=axes,
                       mistakes=mistakes,
                       probes=[precision, _batch_probe(fourier_mixing, x), _mixing_coefficient_probe(x)],
                       factors={"√(T·D)": math.sqrt(T * D), "T·D": T * D, "√T": math.sqrt(T), "√D": math.sqrt(D),
                                "T": T, "D": D})
    EX_MIXING.passed(f"dft_matrix matches torch.fft on n = 1, 2, 5, 8 (and n = 6 in complex128), and fourier_mixing "
                     f"matches torch.fft.fft2(x).real on {len(MIXING_CASES)} cases (odd sizes, 0 to 2 batch axes, T=1, "
                     f"float64).")
