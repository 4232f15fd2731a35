"""Checks for Chapter 06, the Switch Transformer.

The references are ``utils.moe`` (Chapter 03's routing, k = 1) and ``utils.switch``. Properties read one at a time:

- **Top-1 routing** (eqs. (6.1), (6.6)): the expert is the argmax of the softmax over experts; the gate is that
  probability, differentiable (not 1, not a logit); which tokens are kept is read as "the first C of each expert in
  token order" and C is recovered and named (k = 2, floor, off by one, no capacity factor, no division by N).
- **The load-balancing loss** (eqs. (6.3), (6.5)): a constant factor named from N, S; f from the soft
  probabilities; no gradient (P detached or from the argmax).
- **The z-loss** (eq. (6.7)): no square, the square outside the mean, a sum over tokens, the max instead of
  logsumexp, an overflowing log(sum(exp)).
- **The layer** (eq. (6.1), §2.5): output not scaled by the gate, router in bfloat16, dropped tokens passed
  through, capacity ignored, the wrong dtype, no gradient to the router.
- **The initialisation** (§2.6): the standard deviation recovered per layer and named (fan-out, no square root,
  the scale outside the root, not truncated, the bounds taken as absolute), biases, nested layers.
"""
from utils.checks.core import CheckFailure, LearnerError  # noqa: F401 - re-exported
from utils.checks.switch_transformer.init import INIT_SCALES, check_switch_init  # noqa: F401
from utils.checks.switch_transformer.layer import LAYER_CASES, check_switch_ffn  # noqa: F401
from utils.checks.switch_transformer.losses import (  # noqa: F401 - re-exported
    LOSS_CASES,
    Z_CASES,
    check_router_z_loss,
    check_switch_load_balancing_loss,
)
from utils.checks.switch_transformer.routing import ROUTE_CASES, check_switch_route  # noqa: F401
