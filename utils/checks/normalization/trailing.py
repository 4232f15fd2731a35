"""Exercises 2.4 (LayerNorm) and 2.7 (RMSNorm): normalisations over the last len(normalized_shape) axes."""
from __future__ import annotations

import torch
import torch.nn as nn

from utils.checks.core import one_thread
from utils.checks.normalization.cases import EX_LAYER, EX_RMS, IMAGE_AXES, TrailingCase, _NamedFirst
from utils.checks.normalization.modules import _check_normalisation_module, _trailing_input, _trailing_spec

# ---------------------------------------------------------------------------------------------- Exercise 2.4
LAYER_CASES = (
    TrailingCase("(B, T, D) = (2, 5, 8)", shape=(2, 5, 8), normalized_shape=8),
    TrailingCase("images (N, C, H, W), normalized_shape=(C, H, W)", shape=(2, 3, 4, 4), normalized_shape=(3, 4, 4),
                 axes=IMAGE_AXES),
    TrailingCase("(N, D) = (4, 6), small inputs (×0.01)", shape=(4, 6), normalized_shape=6, axes=("N", "D"),
                 scale=0.01, offset=0.005),
    TrailingCase("(B, T, D) = (3, 4, 5), normalized_shape=(4, 5), eps=0.1", shape=(3, 4, 5), normalized_shape=(4, 5),
                 eps=0.1),
    TrailingCase("float64, one example (1, 7)", torch.float64, shape=(1, 7), normalized_shape=7, axes=("N", "D")),
    TrailingCase("float64, (B, T, D) = (3, 2, 6)", torch.float64, shape=(3, 2, 6), normalized_shape=6),
    TrailingCase("a large mean: values 100 ± 2, (B, T, D) = (2, 3, 16)", shape=(2, 3, 16), normalized_shape=16,
                 offset=100.0),
)


@one_thread
def check_layer_norm(LayerNorm) -> None:
    """Exercise 2.4: ``LayerNorm(normalized_shape, eps)`` against ``nn.LayerNorm`` with copied γ, β."""
    EX = EX_LAYER
    cases = _NamedFirst()
    for case in LAYER_CASES:
        with cases.case():
            x = _trailing_input(EX, case)
            spec = _trailing_spec(case, "LayerNorm", "eq. (2.10)", case.eps, "the eps argument", centred=True)
            ndim = len(case.shape)
            _check_normalisation_module(
                EX, case, lambda: LayerNorm(case.normalized_shape, eps=case.eps),
                nn.LayerNorm(case.normalized_shape, eps=case.eps), x, spec, tuple(d % ndim for d in case.dims),
                case.axes, "LayerNorm has one γ and one β per element of normalized_shape: "
                           "torch.ones(self.normalized_shape).", per_example=True)
    cases.finish()
    EX.passed(f"{len(LAYER_CASES)} cases (images with normalized_shape=(C, H, W), small inputs, large eps, float64, a "
              f"large mean) match nn.LayerNorm: outputs and gradients.")


# ---------------------------------------------------------------------------------------------- Exercise 2.7
RMS_CASES = (
    TrailingCase("(B, T, D) = (2, 5, 8), eps=None", shape=(2, 5, 8), normalized_shape=8, eps=None, scale=1.5,
                 offset=1.0),
    TrailingCase("normalized_shape=(4, 6), eps=1e-6", shape=(3, 4, 6), normalized_shape=(4, 6), eps=1e-6, scale=1.5,
                 offset=1.0),
    TrailingCase("small inputs (×1e-3), eps=None: here eps matters", shape=(2, 16), normalized_shape=16,
                 axes=("N", "D"), eps=None, scale=1e-3, offset=0.0),
    TrailingCase("float64, tiny inputs (×1e-7), eps=None (finfo(float64).eps)", torch.float64, shape=(2, 3, 5),
                 normalized_shape=5, eps=None, scale=1.5e-7, offset=1e-7),
    TrailingCase("float64, (B, T, D) = (2, 4, 6), eps=None", torch.float64, shape=(2, 4, 6), normalized_shape=6,
                 eps=None, scale=1.5, offset=1.0),
    TrailingCase("large eps=0.5, inputs with a mean", shape=(4, 6), normalized_shape=6, axes=("N", "D"), eps=0.5,
                 scale=1.5, offset=1.0),
)


@one_thread
def check_rms_norm(RMSNorm) -> None:
    """Exercise 2.7: ``RMSNorm(normalized_shape, eps=None)`` against ``nn.RMSNorm`` with a copied γ;
    ``eps=None`` means ``torch.finfo(x.dtype).eps``."""
    EX = EX_RMS
    cases = _NamedFirst()
    for case in RMS_CASES:
        with cases.case():
            x = _trailing_input(EX, case)
            eps = torch.finfo(case.dtype).eps if case.eps is None else case.eps
            eps_text = (f"torch.finfo(x.dtype).eps for {case.dtype} input, since eps=None" if case.eps is None
                        else "the eps argument")
            spec = _trailing_spec(case, "RMSNorm", "eq. (2.12)", eps, eps_text, centred=False)
            ndim = len(case.shape)
            _check_normalisation_module(
                EX, case, lambda: RMSNorm(case.normalized_shape, eps=case.eps),
                nn.RMSNorm(case.normalized_shape, eps=case.eps), x, spec, tuple(d % ndim for d in case.dims), case.axes,
                "RMSNorm has one γ per element of normalized_shape, torch.ones(self.normalized_shape), and no β.")
    cases.finish()
    EX.passed(f"{len(RMS_CASES)} cases (two-axis normalized_shape, tiny inputs where eps=None matters, float64) "
              f"match nn.RMSNorm: outputs and gradients.")
