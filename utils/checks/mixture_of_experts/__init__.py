"""Checks for Chapter 03, Mixture of Experts.

The reference is ``utils.moe`` (what Chapter 06 reuses) and the brute-force per-token loop
``utils.moe.moe_reference``. Properties the right answer must have, read one at a time:

- **The gate** (eqs. (3.1)–(3.2)): probs are a softmax over the E experts (rows sum to 1, no zeros); indices best
  first; the weights renormalised over the chosen k for k ≥ 2, the probability itself for k = 1 — and the router's
  gradient through the weights matches (a softmax after top-1 gives weights of 1 and no gradient).
- **Which (token, choice) contributions reach the output** (eqs. (3.3)–(3.4)): a wrong output whose every row is a
  sum of a subset of its choices' contributions is read as "expert e skipped", "choice j missing", "assigned
  instead of added", or "dropped choices counted".
- **Capacity and positions** (eqs. (3.5)–(3.6)): C recovered against ceil/floor/round and the missing k or factor;
  positions against token-major order, counting from 1 and per-choice counting.
- **The loss** (eq. (3.7)): a constant factor named from E, E², S, k; c_e from all choices or the last one; its
  gradient through m_e (eq. (3.8)).
- **The block**: the classic wiring mistakes (no residual, no LN₂, per-sequence groups, no causal mask).
"""
from utils.checks.core import CheckFailure, LearnerError  # noqa: F401 - re-exported
from utils.checks.mixture_of_experts.block import BLOCK_CASES, ReferenceBlock, check_moe_block  # noqa: F401
from utils.checks.mixture_of_experts.dispatch import (  # noqa: F401 - re-exported
    CAPACITY_CASES,
    DISPATCH_CASES,
    LOOP_CASES,
    check_capacity_positions,
    check_dispatch_combine,
    check_moe_einsum,
    check_moe_loop,
)
from utils.checks.mixture_of_experts.gating import GATE_CASES, check_top_k_gating  # noqa: F401
from utils.checks.mixture_of_experts.loss import LOSS_CASES, check_load_balancing_loss  # noqa: F401
