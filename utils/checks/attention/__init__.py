"""Checks for Chapter 01, The Anatomy of Attention.

Each check runs the learner's code on seeded cases and, when an answer is wrong, tests the properties the right
answer must have before comparing numbers, so that a mistake nobody listed still gets a message that says what
is wrong:

- **attention weights** (1.1, and the weights recovered inside 1.3, 1.4 and 1.5): non-negative; exactly 0 where
  the mask forbids (the fill value of a finite fill is recovered); rows sum to 1 over the keys; a softmax of
  a·QKᵀ whose temperature a is fitted from log-ratios and named (1/√d_k, 1/d_k, 1, 1/√D, …); a constant added to
  every score of a row changes nothing (a case has scores ≈ −2·10⁴);
- **weights recovered from outputs**: an attention output is a weighted average of the rows of V, so where V's
  rows are independent the weights are solved for by least squares (1.3's forward, each head of 1.4) or read off
  by passing V = I (1.5), and then diagnosed as weights;
- **coefficients**: the softmax backward (1.2), dQ and dK (1.3) and the FNet mixing (1.6) are linear in known
  terms; their coefficients are recovered and the wrong one named;
- **invariants**: dL/ds sums to 0 in each row and is 0 where p = 0 (1.2); the dS inside dQ has rows that sum to
  0, the keys' gradients sum to 0 and the rows of dV add up to those of dO (1.3); a block of keys is used once
  and the weights sum to 1 (1.5); items of a batch do not mix (1.6); W has entries of modulus 1, is symmetric, has
  a first row and column of 1 and is made of powers of W[1, 1], whose angle is named (1.6).
- **exceptions** are read in the exercise's terms where a case knows them (``Case.explain``): a mask with axes
  added, dO where dP belongs, an accumulator of q's width.

Cases separate look-alikes: Tq ≠ Tk, d_v ≠ d_k, Dh ≠ √D, large and all-negative scores.

Conventions the checks assume (the chapter states them too):
- a boolean ``mask`` broadcastable to (..., Tq, Tk) with True = "this query may attend to this key", as in
  ``F.scaled_dot_product_attention``;
- ``key_padding_mask`` of shape (B, T) with True = "this key is padding, ignore it", as in
  ``nn.MultiheadAttention`` — the opposite polarity, a classic source of bugs.
"""
from utils.checks.attention.attention_function import check_attention_function
from utils.checks.attention.attention_weights import check_attention_weights
from utils.checks.attention.coefficients import independent_terms
from utils.checks.attention.common import causal_mask, reference_attention_weights
from utils.checks.attention.fourier import check_fourier_mixing
from utils.checks.attention.heads import HEADS_CASES, allowed_mask, copy_to_library
from utils.checks.attention.masks import dependence_message, heads_nonfinite, mask_candidates, mask_parts_message
from utils.checks.attention.multi_head import check_multi_head_attention
from utils.checks.attention.softmax_backward import check_softmax_backward
from utils.checks.attention.tiled import TILED_CASES, check_tiled_attention, tiled_nonfinite_reading
from utils.checks.attention.weights import recover_weights, softmax_temperature, weights_facts, weights_problem
from utils.checks.core import CheckFailure, LearnerError

__all__ = ["check_attention_weights", "check_softmax_backward", "check_attention_function",
           "check_multi_head_attention", "check_tiled_attention", "check_fourier_mixing", "causal_mask",
           "CheckFailure", "LearnerError",
           # the diagnosis machinery, for the tests of the checks
           "HEADS_CASES", "TILED_CASES", "allowed_mask", "copy_to_library", "dependence_message", "heads_nonfinite",
           "independent_terms", "mask_candidates", "mask_parts_message", "recover_weights",
           "reference_attention_weights", "softmax_temperature", "tiled_nonfinite_reading", "weights_facts",
           "weights_problem"]
