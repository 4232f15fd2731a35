"""Which values share statistics (the sets S_i of eq. (2.10)): partitions of a tensor's values into groups."""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import torch

from utils.checks.normalization.cases import STATISTICS


# ============================================================================================== partitions
@dataclass(frozen=True, eq=False)
class Partition:
    """A way of cutting a tensor's values into equal groups that share statistics: the sets S_i of eq. (2.10)."""

    name: str  # "(N, H, W)", "blocks of 2 consecutive channels of each example"
    labels: torch.Tensor  # (x.shape) long: the group of each value
    method: str = ""  # whose set it is: "BatchNorm's"

    @property
    def groups(self) -> int:
        return int(self.labels.max()) + 1

    @property
    def size(self) -> int:
        return self.labels.numel() // self.groups

    def mean(self, t: torch.Tensor) -> torch.Tensor:
        """The mean of ``t`` over each group, given back at every value (shaped like ``t``)."""
        sums = torch.zeros(self.groups, dtype=t.dtype).index_add_(0, self.labels.reshape(-1), t.reshape(-1))
        return (sums / self.size)[self.labels]

    def describe(self) -> str:
        return f"{self.name} ({self.method})" if self.method else self.name

    def same_as(self, other: Partition) -> bool:
        return other is not None and torch.equal(_canonical(self.labels), _canonical(other.labels))


def _canonical(labels: torch.Tensor) -> torch.Tensor:
    """Each value labelled by the first flat index of its group, so that equal partitions compare equal."""
    flat = labels.reshape(-1)
    first = torch.full((int(flat.max()) + 1,), flat.numel(), dtype=torch.long)
    first.scatter_reduce_(0, flat, torch.arange(flat.numel()), "amin")
    return first[flat]


def axes_partition(shape, names, dims, method: str = "") -> Partition:
    """The groups of values that share every index but those along ``dims`` (a reduction over ``dims``)."""
    dims = sorted({d % len(shape) for d in dims})
    kept = [1 if d in dims else size for d, size in enumerate(shape)]
    labels = torch.arange(math.prod(kept)).reshape(kept).expand(*shape)
    return Partition("(" + ", ".join(names[d] for d in dims) + ")", labels, method)


def channel_partition(shape, *, block: int = 0, stride: int = 0, per_example: bool = True, method: str = ""):
    """(N, C, H, W) values grouped by blocks of ``block`` consecutive channels, or by channels c, c + stride, …"""
    N, C, H, W = shape
    c = torch.arange(C).view(1, C, 1, 1)
    group, count = (c // block, C // block) if block else (c % stride, stride)
    labels = group + count * torch.arange(N).view(N, 1, 1, 1) if per_example else group
    what = (f"blocks of {block} consecutive channels" if block else
            f"channels c, c + {stride}, c + {2 * stride}, … (a stride of {stride})")
    where = " of each example" if per_example else ", pooled over the whole batch"
    return Partition(what + where, labels.expand(N, C, H, W), method)


def _unique(partitions) -> list[Partition]:
    kept = []
    for partition in partitions:
        if not any(partition.same_as(other) for other in kept):
            kept.append(partition)
    return kept


def every_axes_partition(shape, names, known: dict[tuple[int, ...], str]) -> list[Partition]:
    """Every reduction over a nonempty set of axes, the ``known`` ones (named after their method) first."""
    ndim = len(shape)
    subsets = [tuple(sorted(d % ndim for d in dims)) for dims in known]
    subsets += [dims for r in range(ndim, 0, -1) for dims in itertools.combinations(range(ndim), r)]
    named = {tuple(sorted(d % ndim for d in dims)): method for dims, method in known.items()}
    return _unique(axes_partition(shape, names, dims, named.get(dims, "")) for dims in dict.fromkeys(subsets))


IMAGE_METHODS = {STATISTICS: "BatchNorm's set: each channel over every example", (1, 2, 3): "LayerNorm's set: "
                 "each example over every channel", (2, 3): "InstanceNorm's set: each example's channel on its own",
                 (0, 1, 2, 3): "every value at once", (0,): "the batch axis only: one μ per (c, h, w)"}


def table_columns(right: Partition, rows_text: str = "") -> Partition | None:
    """When each right group is a contiguous run of the flattened x (a row of x.reshape(groups, n)), the columns of
    that table: the statistics of a reduction over dim=0 where dim=1 belongs. None when the groups are not rows."""
    groups, size = right.groups, right.size
    rows = torch.arange(groups).repeat_interleave(size)
    if groups < 2 or size < 2 or not torch.equal(right.labels.reshape(-1), rows):
        return None
    labels = (torch.arange(right.labels.numel()) % size).reshape(right.labels.shape)
    table = f"x.reshape({rows_text or groups}, -1)"
    return Partition(f"dim=0 of the table {table} (down its columns, across the {groups} groups; each group is a row "
                     f"of it, reduced over dim=1)", labels)
