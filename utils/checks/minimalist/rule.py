"""Exercise 9.6: the rule check. The learner's ``rule_violations(model)`` runs on small models whose offending
layers are known (nested several levels deep, a 1×3 kernel, a dense layer, a custom layer holding an
``nn.Parameter``, a Conv1d with a kernel of 1, allowed normalisation layers and parameter-free operations), and
its list of messages is read: which layers it names (by their dotted names), which it missed, which it rejected
although the rule allows them — each said with the reason that layer breaks or obeys the rule."""
from __future__ import annotations

import re
from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F

from utils.checks.core import one_thread
from utils.checks.minimalist.cases import EX_RULE


class DenseMixer(nn.Module):
    """A custom layer: a dense map over all pixels, hidden behind F.linear (parameters of its own)."""

    def __init__(self, features=16, classes=10):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(classes, features))

    def forward(self, x):
        return F.linear(x.flatten(1), self.weight)


def _seq(**named):
    return nn.Sequential(OrderedDict(named))


def rule_models() -> list[tuple[str, nn.Module, dict[str, str]]]:
    """(label, model, {offending layer's dotted name: why it breaks the rule}) for the check's models."""
    good = _seq(stem=_seq(unshuffle=nn.PixelUnshuffle(4), mix=nn.Conv2d(16, 8, 1, bias=False),
                          norm=nn.BatchNorm2d(8), act=nn.ReLU()),
                blocks=_seq(down=_seq(pool=nn.AvgPool2d(2), mix=nn.Conv2d(8, 8, kernel_size=1, stride=1, groups=2),
                                      norm=nn.GroupNorm(2, 8), act=nn.ReLU())),
                head=_seq(classify=nn.Conv2d(8, 10, 1), pool=nn.AdaptiveAvgPool2d(1), flat=nn.Flatten()))
    cnn = _seq(features=_seq(conv=nn.Conv2d(1, 8, 3, padding=1), norm=nn.BatchNorm2d(8), act=nn.ReLU()),
               head=_seq(classify=nn.Conv2d(8, 10, 1), pool=nn.AdaptiveAvgPool2d(1), flat=nn.Flatten()))
    nested = _seq(stem=_seq(mix=nn.Conv2d(1, 4, 1), norm=nn.BatchNorm2d(4)),
                  body=_seq(stage=_seq(wide=nn.Conv2d(4, 4, kernel_size=(1, 3), padding=(0, 1)),
                                       norm=nn.LayerNorm([4, 7, 7]), act=nn.ReLU())),
                  flat=nn.Flatten(), classifier=nn.Linear(196, 10))
    custom = _seq(unshuffle=nn.PixelUnshuffle(2), mix=nn.Conv2d(4, 4, 1), act=nn.ReLU(),
                  pool=nn.AdaptiveAvgPool2d(2), mixer=DenseMixer(16, 10))
    sequence = _seq(embed=nn.Embedding(10, 4), along=nn.Conv1d(4, 4, kernel_size=1),
                    deep=_seq(inner=_seq(last=nn.Conv2d(4, 4, kernel_size=5, stride=5))))
    return [("a 1×1-only model (space-to-depth, BatchNorm, GroupNorm, pooling, a grouped 1×1 conv)", good, {}),
            ("a 3×3 CNN", cnn, {"features.conv": "Conv2d with a (3, 3) kernel"}),
            ("a nested model with a 1×3 kernel and a dense classifier", nested,
             {"body.stage.wide": "Conv2d with a (1, 3) kernel", "classifier": "a Linear (dense) layer"}),
            ("a model with a custom layer holding an nn.Parameter", custom,
             {"mixer": "a custom module (DenseMixer) with an nn.Parameter of its own"}),
            ("an Embedding, a Conv1d with kernel 1, and a 5×5 conv three levels deep", sequence,
             {"embed": "an Embedding", "along": "a Conv1d, not a 2-D 1×1 convolution",
              "deep.inner.last": "Conv2d with a (5, 5) kernel"})]


def _names_in(message: str, names) -> list[str]:
    return [name for name in names if re.search(r"(?<![\w.])" + re.escape(name) + r"(?![\w.])", message)]


def _why_missed(name: str, module: nn.Module, model: nn.Module) -> str:
    depth = name.count(".")
    if isinstance(module, nn.Conv2d) and module.kernel_size[0] == 1:
        return (f"its kernel is {tuple(module.kernel_size)}: compare the whole tuple, "
                f"tuple(module.kernel_size) != (1, 1), not kernel_size[0]")
    if depth >= 1 and not any(child is module for child in model.children()):
        return (f"it sits {depth + 1} levels deep: walk model.named_modules(), which visits every descendant; "
                f"model.children() / named_children() see the first level only")
    if isinstance(module, nn.Conv2d):
        return f"its kernel is {tuple(module.kernel_size)}, not (1, 1)"
    if isinstance(module, nn.Linear):
        return "a Linear layer is the dense layer the rule forbids"
    if isinstance(module, nn.Conv1d):
        return "a Conv1d is not a 2-D convolution: the rule allows nn.Conv2d with a (1, 1) kernel only"
    return (f"a {type(module).__name__} is neither an nn.Conv2d nor an allowed normalisation, and it holds "
            f"parameters of its own ({', '.join(n for n, _ in module.named_parameters(recurse=False))}): any such "
            f"module breaks the rule — test any(True for _ in module.parameters(recurse=False))")


def _why_allowed(name: str, module: nn.Module) -> str:
    kind = type(module).__name__
    if isinstance(module, nn.Conv2d):
        return (f"its kernel is {tuple(module.kernel_size)} (stride {tuple(module.stride)}, groups {module.groups}); "
                f"kernel_size is a tuple, so compare it with (1, 1), not with the integer 1")
    if isinstance(module, (nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm)):
        return f"a {kind} is an allowed normalisation (ALLOWED_NORMS): test it before testing for parameters"
    if any(True for _ in module.parameters(recurse=False)):
        return f"a {kind} is allowed here"
    if any(True for _ in module.parameters()):
        return (f"this {kind} holds no parameters itself, only its children do (and they are judged on their own): "
                f"use module.parameters(recurse=False)")
    return f"a {kind} has no parameters: pooling, activations, space-to-depth and containers are allowed"


@one_thread
def check_rule_violations(rule_violations) -> None:
    """Exercise 9.6: the learner's rule on five models, every offending layer named, no allowed layer rejected."""
    for label, model, offending in rule_models():
        modules = dict(model.named_modules())
        got = EX_RULE.call(rule_violations, model, case=label)
        if got is None or isinstance(got, (str, bool)) or not hasattr(got, "__iter__"):
            raise EX_RULE.fail(f"returned {got!r}: return a list of strings, one per offending layer ([] when the "
                               f"model obeys the rule).", case=label)
        got = list(got)
        not_text = [m for m in got if not isinstance(m, str)]
        if not_text:
            raise EX_RULE.fail(f"your list holds a {type(not_text[0]).__name__} ({not_text[0]!r}); each entry is a "
                               f"message, a str that names the layer: f\"{{name}} ({{type(module).__name__}}) ...\".",
                               case=label)
        names = [n for n in modules if n]
        mentioned = {message: _names_in(message, names) for message in got}
        named = [n for found in mentioned.values() for n in found]
        unnamed = [message for message, found in mentioned.items() if not found]
        wrongly = [n for n in dict.fromkeys(named) if n not in offending]
        if wrongly:
            name = wrongly[0]
            raise EX_RULE.fail(f"your rule rejected `{name}` ({type(modules[name]).__name__}), which obeys it: "
                               f"{_why_allowed(name, modules[name])}.", case=label)
        missed = [n for n in offending if n not in named]
        if missed and unnamed and len(got) >= len(offending):
            raise EX_RULE.fail(f"your message {unnamed[0]!r} does not name the layer: include its dotted name from "
                               f"model.named_modules() (here e.g. `{missed[0]}`), so the reader can find it.",
                               case=label)
        if missed:
            name = missed[0]
            why = _why_missed(name, modules[name], model)
            raise EX_RULE.fail(f"your rule missed `{name}` ({offending[name]}): {why}.", case=label)
        if unnamed:
            raise EX_RULE.fail(f"your message {unnamed[0]!r} names no layer of the model; each message must name one "
                               f"offending layer (its dotted name).", case=label)
        repeated = [n for n in offending if named.count(n) > 1]
        if repeated:
            raise EX_RULE.fail(f"your rule reports `{repeated[0]}` more than once: one message per offending layer "
                               f"(does your walk visit it twice, e.g. through modules() and children()?).",
                               case=label)
    EX_RULE.passed("5 models: every offending layer named (nested, 1×3 and 5×5 kernels, Linear, Conv1d, Embedding, "
                   "a custom nn.Parameter), and BatchNorm, GroupNorm, LayerNorm, pooling and 1×1 convs allowed.")
