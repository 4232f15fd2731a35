"""Checks for Chapter 04, CLIP-style contrastive learning.

Each check runs the learner's object on seeded inputs of several shapes (the two counts of images and texts differ
where they may, a batch of one, a logit scale past the clamp, float64), compares with a reference, and on failure
first matches the classic mistakes of the chapter's equations — no L2 normalisation, the scale not exponentiated or
dividing instead of multiplying, one direction of the loss only, labels off the diagonal, the sum where a mean
belongs — then tests properties the right answer must have (rows of unit length, invariance of the loss to a constant
added to every logit and to reordering the pairs, symmetry under transposition) and recovers what it can from the
learner's output (the scale their logits used; the coefficients of P, Q and the identity in their gradient), so a
mistake nobody catalogued still gets a sentence that says what to change.

Modules: ``cases`` (exercises, cases, inputs), ``similarity`` (4.1, 4.2), ``gradients`` (4.3), ``encoders``
(4.4, 4.5), ``usage`` (4.6, 4.7).
"""
from utils.checks.clip.encoders import check_dual_encoder, check_text_encoder  # noqa: F401 - re-exported
from utils.checks.clip.gradients import check_clip_loss_gradients  # noqa: F401 - re-exported
from utils.checks.clip.similarity import check_clip_logits, check_clip_loss  # noqa: F401 - re-exported
from utils.checks.clip.usage import check_class_embeddings, check_recall_at_k  # noqa: F401 - re-exported
from utils.checks.core import CheckFailure, LearnerError  # noqa: F401 - re-exported
