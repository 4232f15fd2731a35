"""Checks for Chapter 11, Quantization-Aware Training.

Each check compares the learner's object with a reference — PyTorch's own op where there is one
(``torch.fake_quantize_per_tensor_affine`` / ``per_channel_affine``, ``MinMaxObserver``) — and, before falling back
to "compare with eq. (11.k)", reads the mistake from the output:

- **Scale and zero point** (eq. (11.2)): the number of steps a scale implies, (β' − α')/s or max|·|/s, is named
  (2^b, 2^b − 1, 2^(b−1), 2^(b−1) − 1, (2^b − 1)/2), so the off-by-ones say which count was used; a zero point
  with the wrong sign, truncated instead of rounded, or from the unwidened range is named.
- **Fake quantization** (eqs. (11.1), (11.5)): floor/trunc/ceil for round, the zero point's sign, the clamp's top
  level, returning q, no clamp, per-channel scales on another axis; a grid probe says when values are off the
  grid s·(q − z) or outside [q_min, q_max]; the gradient: passed everywhere, nowhere, strict or inverted masks, a mask
  on x instead of q.
- **Observers, LSQ, QuantLinear**: classic mistakes recomputed on the check's inputs (min-max for MSE, a global max,
  one k for all rows, the symmetric off-by-one; LSQ's clamp bounds, its initial step, the missing −u term and the
  gradient scale g named as a factor; per-tensor vs per-channel, a quantized bias, the input quantizer skipped).
"""
from utils.checks.core import CheckFailure, LearnerError
from utils.checks.quantization.fake import FAKE_CASES, check_fake_quantize  # noqa: F401 - re-exported
from utils.checks.quantization.layers import (  # noqa: F401 - re-exported
    LINEAR_CASES,
    check_quant_linear,
    check_swap_linears,
)
from utils.checks.quantization.lsq import LSQ_CASES, check_lsq_quantizer  # noqa: F401 - re-exported
from utils.checks.quantization.observers import MSE_CASES, check_mse_range  # noqa: F401 - re-exported
from utils.checks.quantization.params import PARAMS_CASES, check_quantization_params  # noqa: F401 - re-exported

__all__ = ["check_quantization_params", "check_fake_quantize", "check_mse_range", "check_lsq_quantizer",
           "check_quant_linear", "check_swap_linears", "CheckFailure", "LearnerError"]
