"""Exercises 2.5 (InstanceNorm2d) and 2.6 (GroupNorm): per-example normalisations of (N, C, H, W) images."""
from __future__ import annotations

import torch
import torch.nn as nn

from utils.checks.core import one_thread
from utils.checks.normalization.cases import EX_GROUP, EX_INSTANCE, IMAGE_AXES, ImageCase, _NamedFirst
from utils.checks.normalization.inputs import _image_batch
from utils.checks.normalization.modules import _check_normalisation_module
from utils.checks.normalization.partitions import (
    IMAGE_METHODS,
    Partition,
    _unique,
    axes_partition,
    channel_partition,
    every_axes_partition,
    table_columns,
)
from utils.checks.normalization.statistics import NormSpec

# ---------------------------------------------------------------------------------------------- Exercise 2.5
INSTANCE_CASES = (
    ImageCase("C = W = 4", shape=(3, 4, 2, 4), scale=2.0),
    ImageCase("N=2, C=3, H=W=5", shape=(2, 3, 5, 5), scale=2.0),
    ImageCase("batch of 1", shape=(1, 2, 3, 3), scale=2.0),
    ImageCase("small inputs (×0.01), eps=1e-3", shape=(2, 2, 4, 4), scale=0.01, eps=1e-3),
    ImageCase("float64, N=2, C=3, H=4, W=5", torch.float64, shape=(2, 3, 4, 5)),
    ImageCase("a large mean: values 100 ± 4", shape=(2, 3, 4, 4), scale=2.0, offset=100.0),
)


def _image_spec(x, method, equation, right: Partition, code: str, case: ImageCase, extra=()) -> NormSpec:
    candidates = _unique(every_axes_partition(tuple(x.shape), IMAGE_AXES, IMAGE_METHODS) + list(extra))
    right = next(p for p in candidates if p.same_as(right))
    rows = "N·G" if method == "GroupNorm" else "N·C" if method == "InstanceNorm" else ""
    columns = table_columns(right, rows)  # a flattened table reduced along the wrong dim
    candidates = _unique(candidates + [columns]) if columns is not None else candidates
    return NormSpec(method, equation, right, code, tuple(candidates), case.eps, "the eps argument", sizes=case.sizes,
                    axes=IMAGE_AXES)


@one_thread
def check_instance_norm(InstanceNorm2d) -> None:
    """Exercise 2.5: ``InstanceNorm2d(C, eps)`` (affine, no running statistics) against
    ``nn.InstanceNorm2d(C, eps, affine=True)`` with copied γ, β, in training and eval mode."""
    EX = EX_INSTANCE
    cases = _NamedFirst()
    for case in INSTANCE_CASES:
        with cases.case():
            N, C, H, W = case.shape
            x = _image_batch(EX, case)
            spec = _image_spec(x, "InstanceNorm", "eq. (2.10)", axes_partition(x.shape, IMAGE_AXES, (2, 3)),
                               "dim=(2, 3)", case)
            _check_normalisation_module(EX, case, lambda: InstanceNorm2d(C, eps=case.eps),
                                        nn.InstanceNorm2d(C, eps=case.eps, affine=True), x, spec, (1,), IMAGE_AXES,
                                        "InstanceNorm2d has one γ and one β per channel: torch.ones(num_features).")
    cases.finish()
    EX.passed(f"{len(INSTANCE_CASES)} cases (C = W, batch of 1, small inputs, float64, a large mean) "
              f"match nn.InstanceNorm2d(affine=True) in training and eval mode: outputs and gradients.")


# ---------------------------------------------------------------------------------------------- Exercise 2.6
GROUP_CASES = (
    ImageCase("N=2, C=6, G=3", shape=(2, 6, 4, 4), groups=3, scale=2.0),
    ImageCase("N=3, C=8, G=2, H≠W", shape=(3, 8, 3, 5), groups=2, scale=2.0),
    ImageCase("G=1 (LayerNorm over C, H, W)", shape=(2, 4, 3, 3), groups=1, scale=2.0),
    ImageCase("G=C (InstanceNorm)", shape=(2, 4, 3, 3), groups=4, scale=2.0),
    ImageCase("batch of 1, C=8, G=4, eps=0.1", shape=(1, 8, 2, 2), groups=4, eps=0.1, scale=2.0),
    ImageCase("small inputs (×0.01), C=6, G=2", shape=(2, 6, 3, 3), groups=2, scale=0.01),
    ImageCase("float64, N=2, C=6, G=2", torch.float64, shape=(2, 6, 2, 3), groups=2),
    ImageCase("a large mean: values 100 ± 4, C=4, G=2", shape=(2, 4, 3, 3), groups=2, scale=2.0, offset=100.0),
)


def _channel_partitions(shape, groups: int) -> list[Partition]:
    """Groups of channels a GroupNorm might form: blocks and strides of every size, per example or not."""
    C = shape[1]
    found = []
    for size in (d for d in range(1, C + 1) if C % d == 0):
        right = size == C // groups
        method = "GroupNorm's set: a block of C/G consecutive channels of one example" if right else \
            f"GroupNorm's set for num_groups = {C // size}"
        found.append(channel_partition(shape, block=size, method=method))
        found.append(channel_partition(shape, block=size, per_example=False))
        if 1 < size < C:
            found.append(channel_partition(shape, stride=C // size, method="groups formed by "
                                           "reshaping to (N, C/G, G, H, W)" if C // size == groups else ""))
            found.append(channel_partition(shape, stride=C // size, per_example=False))
    return found


@one_thread
def check_group_norm(GroupNorm) -> None:
    """Exercise 2.6: ``GroupNorm(num_groups, num_channels, eps)`` against ``nn.GroupNorm`` with copied γ, β."""
    EX = EX_GROUP
    cases = _NamedFirst()
    for case in GROUP_CASES:
        with cases.case():
            N, C, H, W = case.shape
            G = case.groups
            x = _image_batch(EX, case)
            right = channel_partition(x.shape, block=C // G)
            code = f"reshape to (N, G, C/G, H, W) = (N, {G}, {C // G}, H, W) and reduce over dim=(2, 3, 4)"
            spec = _image_spec(x, "GroupNorm", "eq. (2.11)", right, code, case, _channel_partitions(x.shape, G))
            _check_normalisation_module(
                EX, case, lambda: GroupNorm(G, C, eps=case.eps), nn.GroupNorm(G, C, eps=case.eps), x, spec, (1,),
                IMAGE_AXES, "GroupNorm's γ and β are per channel (num_channels,), not per group: the groups share "
                            "statistics, not parameters.")
    cases.finish()
    EX.passed(f"{len(GROUP_CASES)} cases (G=1, G=C, batch of 1, H≠W, small inputs, float64, a large mean) match "
              f"nn.GroupNorm: outputs and gradients.")
