"""Chapter 02's reference solutions and small helpers, shared by the test files of its checks' rounds."""
import torch

from tests.solution_code import solution_namespace
from utils.checks import normalization as checks

SOLVED = solution_namespace("02_normalization")
DIMS = (0, 2, 3)  # BatchNorm2d's m = N·H·W values of each channel
Function, Module = SOLVED["BatchNormFunction"], SOLVED["BatchNorm2d"]
LayerNorm, InstanceNorm = SOLVED["LayerNorm"], SOLVED["InstanceNorm2d"]
GroupNorm, RMSNorm = SOLVED["GroupNorm"], SOLVED["RMSNorm"]
backward = SOLVED["batch_norm_backward"]
CHECKS = {"2.1": checks.check_batch_norm_backward, "2.2": checks.check_batch_norm_function,
          "2.3": checks.check_batch_norm_module, "2.4": checks.check_layer_norm,
          "2.5": checks.check_instance_norm, "2.6": checks.check_group_norm, "2.7": checks.check_rms_norm}


def per_channel(t):  # (C,) -> (1, C, 1, 1)
    return t[None, :, None, None]


def trailing(module):  # the last len(normalized_shape) axes
    return tuple(range(-len(module.normalized_shape), 0))


def rms_eps(module, x):  # RMSNorm's eps=None means the dtype's machine epsilon
    return torch.finfo(x.dtype).eps if module.eps is None else module.eps
