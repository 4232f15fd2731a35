"""The chapter's search space and operations, as the checks' reference (the notebook defines the same)."""
from __future__ import annotations

import torch
import torch.nn as nn

from utils.checks.core import Exercise

EX_SPACE = Exercise("7.1", "sample_genotype")
EX_CELL = Exercise("7.2", "Cell")
EX_TPE = Exercise("7.3", "tpe_ratio")
EX_HALVING = Exercise("7.4", "successive_halving")
EX_OBJECTIVE = Exercise("7.5", "objective")
EX_SUPER = Exercise("7.6", "SuperCell")

OPS = ("conv3x3", "conv5x5", "sep_conv3x3", "max_pool3x3", "skip")
WIDTHS = (8, 16, 24)
LR_RANGE = (0.01, 0.3)
MAX_NODES = 3


def norm(C: int) -> nn.Module:
    return nn.BatchNorm2d(C, track_running_stats=False)


def make_op(name: str, C: int) -> nn.Module:
    if name in ("conv3x3", "conv5x5"):
        k = int(name[-1])
        return nn.Sequential(nn.ReLU(), nn.Conv2d(C, C, k, padding=k // 2, bias=False), norm(C))
    if name == "sep_conv3x3":
        return nn.Sequential(nn.ReLU(), nn.Conv2d(C, C, 3, padding=1, groups=C, bias=False),
                             nn.Conv2d(C, C, 1, bias=False), norm(C))
    if name == "max_pool3x3":
        return nn.MaxPool2d(3, stride=1, padding=1)
    if name == "skip":
        return nn.Identity()
    raise ValueError(name)


def op_parameters(name: str, C: int) -> int:
    """Eq. (7.2)."""
    return {"conv3x3": 9 * C * C + 2 * C, "conv5x5": 25 * C * C + 2 * C, "sep_conv3x3": 9 * C + C * C + 2 * C,
            "max_pool3x3": 0, "skip": 0}[name]


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def randomise(module: nn.Module, exercise: Exercise, key: str) -> None:
    """Seeded values in every parameter (BatchNorm's γ, β included), so that no two wirings agree by accident."""
    with torch.no_grad():
        for index, (name, parameter) in enumerate(module.named_parameters()):
            values = exercise.randn(*parameter.shape, key=(key, name, index), dtype=parameter.dtype)
            parameter.copy_(values * (0.5 if parameter.dim() > 1 else 1.0) + (1.0 if name.endswith("weight")
                                                                              and parameter.dim() == 1 else 0.0))


def copy_into(source: nn.Module, target: nn.Module, exercise: Exercise, case) -> None:
    """Copy ``source``'s parameters into ``target``'s: by name when the names agree, else in order by shape."""
    mine, theirs = dict(source.named_parameters()), dict(target.named_parameters())
    with torch.no_grad():
        if mine.keys() == theirs.keys() and all(mine[k].shape == theirs[k].shape for k in mine):
            for key, parameter in mine.items():
                theirs[key].copy_(parameter)
            return
        ours, yours = list(mine.values()), list(theirs.values())
        if [p.shape for p in ours] != [p.shape for p in yours]:
            raise exercise.fail(f"your module's parameters ({[tuple(p.shape) for p in yours]}) are not the "
                                f"operations' ({[tuple(p.shape) for p in ours]}) in node order: build one "
                                f"make_op(name, C) per node, in the order of `ops`.", case=case)
        for parameter, other in zip(ours, yours):
            other.copy_(parameter)
