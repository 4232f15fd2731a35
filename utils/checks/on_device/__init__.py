"""Checks for Chapter 12, On-Device Inference.

Each check reads back what the learner's code did, in the terms of the chapter's equations:

- **12.1, the KV cache's bytes** (eq. (12.4)): the ratio of the learner's count to the right one is named as the
  factor that is missing, extra or wrong (query heads for KV heads, the factor 2, bits for bytes, T ± 1, …), on
  configurations whose factors are all distinct.
- **12.2, GQA's head repeat**: which key/value head each output head is a copy of — tiled (``repeat``) or
  grouped (``repeat_interleave``).
- **12.3, attention with a cache** (eq. (12.7)): layer by layer, the returned cache is read — its shape names the
  axis that was concatenated along, its contents the position at which the new keys were rotated (recovered by
  search), the order of past and new, unrotated keys, rotated values; the output against the classic mistakes
  (queries at position 0, attending to the new tokens only); then token by token through the model.
- **12.4, the preallocated cache**: where the learner's write landed (time index, axis), in-place writes.
- **12.5, RMSNorm**: against ``F.rms_norm`` and its classic mistakes (LayerNorm's centring, ε outside the root, the
  sum for the mean, the first axis).
- **12.6, per-channel quantization** (eq. (12.8)): the scale's axis from its shape, the q_max used recovered from
  the scale, truncation and flooring from the integers.
"""
from utils.checks.core import CheckFailure, LearnerError
from utils.checks.on_device.attention import check_cached_attention, reference_model  # noqa: F401
from utils.checks.on_device.cache_size import check_kv_cache_bytes
from utils.checks.on_device.heads import check_repeat_kv
from utils.checks.on_device.quantize import check_quantize_per_channel
from utils.checks.on_device.rms import check_rms_norm
from utils.checks.on_device.static_cache import check_write_cache

__all__ = ["check_kv_cache_bytes", "check_repeat_kv", "check_cached_attention", "check_write_cache",
           "check_rms_norm", "check_quantize_per_channel", "CheckFailure", "LearnerError"]
