"""Checks for Chapter 09, The Minimalist Model.

Each check reads what the learner's code computes in the terms of the chapter's equations:

- **The weight mapping** (eq. (9.4)): the entries of V are distinct, so every entry of the returned weight is traced
  back to the (o, c, i, j) it holds and the channel index is read as a formula — a permuted (c, i, j) order, a
  transposed or flipped kernel, a transposed weight or a lost 1×1 is said as such.
- **Counting** (eqs. (9.5), (9.6)): the counts are evaluated on many sizes and fitted as a combination of the terms a
  count could have (C_in·C_out, the bias per output or per input, H·W or only H, the bias additions…), and the
  receptive field is compared with the classic wrong forms of eq. (9.6) on stacks that tell them apart.
- **The block and the head**: run with the reference's parameters, forward and backward in training mode, and
  compared with the reference and with the classic wrong orders built from the same parameters.
- **The rule**: the learner's rule runs on models with known offenders; the layers it names, misses or wrongly
  rejects are each said with the reason.
"""
from utils.checks.core import CheckFailure, LearnerError
from utils.checks.minimalist.cost import check_pointwise_cost, check_receptive_field  # noqa: F401
from utils.checks.minimalist.mapping import check_strided_to_pointwise  # noqa: F401
from utils.checks.minimalist.modules import check_pointwise_block, check_pointwise_head  # noqa: F401
from utils.checks.minimalist.rule import check_rule_violations, rule_models  # noqa: F401

__all__ = ["check_strided_to_pointwise", "check_pointwise_cost", "check_receptive_field", "check_pointwise_block",
           "check_pointwise_head", "check_rule_violations", "CheckFailure", "LearnerError"]
