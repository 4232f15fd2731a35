"""Exercise 6.5: Switch's initialisation, a normal truncated at ±2σ with σ = √(scale / fan_in), biases 0 (§2.6)."""
from __future__ import annotations

import math

import torch
import torch.nn as nn

from utils.checks.core import name_value, one_thread
from utils.checks.switch_transformer.cases import EX_INIT as EX

INIT_SCALES = (0.1, 1.0)
TRUNCATED_STD = 0.8796  # the standard deviation of a unit normal truncated at ±2


def _network() -> nn.Module:
    """Linear layers of different fan-in and fan-out, one without bias, one nested, and a LayerNorm to leave alone."""
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(EX.seed("network"))
        return nn.Sequential(nn.Linear(256, 96), nn.ReLU(), nn.LayerNorm(96),
                             nn.Sequential(nn.Linear(96, 400), nn.GELU(), nn.Linear(400, 48, bias=False)))
    finally:
        torch.random.set_rng_state(state)


def _std_reading(ratio: float, layer: nn.Linear, scale: float) -> str:
    """Name the learner's std, given as a ratio to the truncated σ√(scale / fan_in) it should have."""
    fan_in, fan_out = layer.in_features, layer.out_features
    want = math.sqrt(scale / fan_in)
    have = ratio * want * TRUNCATED_STD
    named = {
        "√(scale / fan_out)": math.sqrt(scale / fan_out) * TRUNCATED_STD,
        "scale / fan_in (no square root)": scale / fan_in * TRUNCATED_STD,
        "scale · √(1 / fan_in) (the scale outside the square root)": scale * math.sqrt(1 / fan_in) * TRUNCATED_STD,
        "√(scale / fan_in), not truncated": want,
        "√(1 / fan_in) (the scale left out)": math.sqrt(1 / fan_in) * TRUNCATED_STD,
        "√(0.1 / fan_in) (the scale hard-coded to 0.1)": math.sqrt(0.1 / fan_in) * TRUNCATED_STD,
        "√(scale / (fan_in + fan_out)) (Glorot's)": math.sqrt(scale / (fan_in + fan_out)) * TRUNCATED_STD,
        "√(2 · scale / (fan_in + fan_out)) (Glorot's)": math.sqrt(2 * scale / (fan_in + fan_out)) * TRUNCATED_STD,
        "√(2 · scale / fan_in) (He's factor 2)": math.sqrt(2 * scale / fan_in) * TRUNCATED_STD,
        "√scale": math.sqrt(scale) * TRUNCATED_STD,
        "scale": scale * TRUNCATED_STD,
    }
    for name, value in named.items():
        if abs(have - value) < 0.04 * value and abs(value - want * TRUNCATED_STD) > 0.06 * want:
            return name
    return ""


@one_thread
def check_switch_init(switch_init_) -> None:
    """``switch_init_(module, scale)`` changes every nn.Linear inside ``module`` in place and returns it."""
    for scale in INIT_SCALES:
        case = f"scale={scale}"
        network = _network()
        layers = [m for m in network.modules() if isinstance(m, nn.Linear)]
        before = [layer.weight.detach().clone() for layer in layers]
        norm = network[2]
        with torch.no_grad():
            norm.weight.fill_(1.5)
            for layer in layers:
                if layer.bias is not None:
                    layer.bias.fill_(0.3)
        got = EX.call(switch_init_, network, scale=scale, case=case) if scale != 0.1 else \
            EX.call(switch_init_, network, scale, case=case)
        if got is not network:
            raise EX.fail(f"return the module you were given (return module), not {type(got).__name__}: the "
                          f"function works in place and returns its argument, like nn.init's functions.", case=case)
        for number, (layer, old) in enumerate(zip(layers, before)):
            w = layer.weight.detach()
            where = f"Linear number {number + 1} ({layer.in_features} → {layer.out_features})"
            if torch.equal(w, old):
                nested = ("; it sits in a nested nn.Sequential: loop over module.modules() (all of them, "
                          "recursively), not module.children()") if number > 0 else ""
                raise EX.fail(f"{where} was not initialised{nested}.", case=case)
            if not torch.isfinite(w).all():
                raise EX.fail(f"{where} holds NaN or inf.", case=case)
            want = math.sqrt(scale / layer.in_features)
            std = w.std().item()
            ratio = std / (want * TRUNCATED_STD)
            if abs(w.mean().item()) > 0.1 * want:
                raise EX.fail(f"{where}: your weights have mean {w.mean().item():.3g}, not 0.", case=case)
            own_sigma = std / TRUNCATED_STD  # the σ of the learner's own truncated normal
            if w.abs().max().item() > 2 * want * 1.001 and w.abs().max().item() <= 2 * own_sigma * 1.05:
                pass  # truncated at ±2 of its own σ: the σ itself is wrong, said below
            elif w.abs().max().item() > 2 * want * 1.001:
                if abs(std / want - 1) < 0.05:
                    raise EX.fail(f"{where}: your weights have std {std:.4g} = √(scale / fan_in) but reach "
                                  f"{w.abs().max().item():.3g}, beyond ±2σ = ±{2 * want:.3g}: the normal must be "
                                  f"TRUNCATED at ±2σ (nn.init.trunc_normal_ with a=-2σ, b=2σ; the bounds are "
                                  f"absolute numbers, not multiples of σ).", case=case)
                name = _std_reading(ratio, layer, scale)
                raise EX.fail(f"{where}: your weights reach {w.abs().max().item():.3g}, beyond ±2σ = ±{2 * want:.3g} "
                              f"with σ = √(scale / fan_in) = {want:.4g}" + (f"; your std is {name}" if name else "")
                              + ". nn.init.trunc_normal_'s a and b are absolute bounds: pass a=-2 * std, b=2 * std.",
                              case=case)
            if abs(ratio - 1) > 0.04:
                name = _std_reading(ratio, layer, scale)
                said = f"that is {name}" if name else (
                    f"{ratio:.3g} × the right one" + (f" (= {n})" if (n := name_value(ratio, {"√10": 10 ** 0.5,
                                                                                        "10": 10.0})) else ""))
                raise EX.fail(f"{where}: your weights have std {std:.4g}; a normal with σ = √(scale / fan_in) = "
                              f"√({scale} / {layer.in_features}) = {want:.4g}, truncated at ±2σ, has std "
                              f"{want * TRUNCATED_STD:.4g} — {said}. The fan-in is in_features, weight.shape[1].",
                              case=case)
            if layer.bias is not None and not torch.all(layer.bias == 0):
                raise EX.fail(f"{where}: its bias is not 0 (it was 0.3 before your call): set it with "
                              f"nn.init.zeros_(layer.bias).", case=case)
        if not torch.all(norm.weight == 1.5):
            raise EX.fail("your code changed the LayerNorm's weight: initialise the nn.Linear layers only.", case=case)
    EX.passed(f"scales {INIT_SCALES}: every Linear (nested ones too) drawn with std √(scale / fan_in) truncated at "
              f"±2σ, biases 0, other layers untouched, the module returned.")
