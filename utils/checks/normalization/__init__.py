"""Checks for Chapter 02, Normalization Wars.

Each check first tests what the right answer must satisfy, one property at a time, and the first that fails is the
message; only then does it fall back to comparing numbers. The properties come from the chapter's equations:

- **Which values share statistics** (eq. (2.10)). Within each group of values that share μ and σ², a normalisation
  is an affine function of x: x̂ = (x − μ)·a. The probe finds the coarsest way of cutting the tensor into groups
  (every set of axes, and for GroupNorm blocks or strides of channels) within which your output is such a
  function, then *recovers* μ and a per value and names them: the mean over which axes, the biased or unbiased
  variance or the mean square, ε inside or outside the square root, or the ε you actually used.
- **Where γ and β act**: your output is fitted as A·x̂ + B per entry of γ; A and B are then named (γ, 1, β, …),
  or the axis along which your γ really varies is named.
- **The three paths of the backward pass** (eq. (2.8)): dL/dx is fitted as a combination of γs·g, γs·mean(g)
  and γs·x̂·mean(g·x̂); a missing path, a wrong sign, a wrong count (m or N), a missing γ, σ where 1/σ
  belongs, or means over the wrong axes are read from the recovered coefficients.
- **The running statistics** (eq. (2.9)): the momentum you used is recovered from how far each buffer moved
  toward the batch's statistic, and whether that statistic was the biased or the unbiased variance.
- **Invariances**: the output does not change when a constant is added to a group's values, nor (for the
  per-example methods) when the other examples change, nor between training and eval mode (2.4–2.7).

Conventions (the chapter states them too): images are batch first, (N, C, H, W); the variance that normalises
is the biased one (÷ n), the one in BatchNorm's running estimate the unbiased one (÷ (n − 1)), as in PyTorch;
running = (1 − momentum)·running + momentum·batch, ``momentum=None`` meaning a cumulative average; RMSNorm with
``eps=None`` uses ``torch.finfo(x.dtype).eps``, as ``nn.RMSNorm`` does.
"""
# The checks live in modules by concern: ``cases`` (exercises, cases, small helpers), ``partitions`` (which values
# share statistics), ``statistics`` (a normalisation read from its output), ``affine`` (γ and β), ``paths`` (the
# backward pass, eq. (2.8)), ``inputs`` (BatchNorm's inputs and reference), ``modules`` (a module against
# PyTorch's), and one module per group of exercises: ``backward`` (2.1, 2.2), ``running`` (2.3), ``trailing``
# (2.4, 2.7), ``images`` (2.5, 2.6). What notebooks and tests reach is re-exported here.
from utils.checks.core import CheckFailure, LearnerError
from utils.checks.normalization.affine import (  # noqa: F401 - re-exported
    affine_problems,
)
from utils.checks.normalization.backward import (  # noqa: F401 - re-exported
    BACKWARD_CASES,
    FUNCTION_CASES,
    check_batch_norm_backward,
    check_batch_norm_function,
)
from utils.checks.normalization.cases import (  # noqa: F401 - re-exported
    EX_BACKWARD,
    EX_FUNCTION,
    EX_LAYER,
    EX_RMS,
    IMAGE_AXES,
    ImageCase,
    ModuleCase,
    TrailingCase,
    _close,
)
from utils.checks.normalization.images import (  # noqa: F401 - re-exported
    check_group_norm,
    check_instance_norm,
)
from utils.checks.normalization.inputs import (  # noqa: F401 - re-exported
    _affine_parameters,
    _batch_norm_spec,
    _image_batch,
    _statistics,
)
from utils.checks.normalization.modules import (  # noqa: F401 - re-exported
    _trailing_input,
    _trailing_spec,
    _train_eval_probe,
    inside_probe,
)
from utils.checks.normalization.partitions import (  # noqa: F401 - re-exported
    axes_partition,
    channel_partition,
)
from utils.checks.normalization.paths import (  # noqa: F401 - re-exported
    Paths,
    _batch_norm_paths,
    _compare_input_gradient,
    paths_problems,
    vector_problems,
)
from utils.checks.normalization.running import (  # noqa: F401 - re-exported
    _buffer,
    check_batch_norm_module,
    eval_problems,
    running_problems,
)
from utils.checks.normalization.statistics import (  # noqa: F401 - re-exported
    _moment,
    count_name,
    group_property_probe,
    independence_probe,
    normalisation_problems,
    shift_probe,
    wrong_count_message,
)
from utils.checks.normalization.trailing import (  # noqa: F401 - re-exported
    LAYER_CASES,
    check_layer_norm,
    check_rms_norm,
)

__all__ = ["check_batch_norm_backward", "check_batch_norm_function", "check_batch_norm_module", "check_layer_norm",
           "check_instance_norm", "check_group_norm", "check_rms_norm", "CheckFailure", "LearnerError"]
