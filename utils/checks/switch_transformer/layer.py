"""Exercise 6.4: the Switch layer y_s = p_i · FFN_i(x_s) (eq. (6.1)), the router in float32 (selective precision)."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from utils import moe
from utils.checks.core import Mistake, one_thread
from utils.checks.switch_transformer.cases import EX_LAYER as EX
from utils.checks.switch_transformer.cases import SwitchCase, ensure_tensor

LAYER_CASES = (
    SwitchCase("S=12, N=4, D=6, capacity factor 1.0, a popular expert", S=12, N=4, D=6, skew=1.5),
    SwitchCase("S=8, N=3, D=5, no capacity limit, float64", S=8, N=3, D=5, capacity_factor=None, skew=0.5,
               dtype=torch.float64),
    SwitchCase("bfloat16 activations, large router logits, S=96, N=4, D=16", S=96, N=4, D=16, capacity_factor=2.0,
               dtype=torch.bfloat16, logit_scale=60.0),
    SwitchCase("one token, S=1, N=2, D=4", S=1, N=2, D=4),
)
EQUATION = "eq. (6.1), y_s = p_i · FFN_i(x_s) for a kept token, 0 for a dropped one"


def inputs_for(case: SwitchCase):
    """x (S, D) in the case's dtype (column 0 is 1, so the router can favour expert 0), a float32 router, experts."""
    x = EX.randn(case.S, case.D, key=(case.label, "x")).to(case.dtype)
    x[:, 0] = 1
    router = nn.Linear(case.D, case.N, bias=False)
    with torch.no_grad():
        router.weight.copy_(EX.randn(case.N, case.D, key=(case.label, "router")) * case.logit_scale / case.D ** 0.5)
        router.weight[0, 0] += case.skew
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(EX.seed(case.label, "experts"))
        experts = [moe.FeedForward(case.D, 8).to(case.dtype) for _ in range(case.N)]
    finally:
        torch.random.set_rng_state(state)
    return x, router, experts


def reference(x, router, experts, capacity_factor, *, router_dtype=torch.float32, scaled=True, dropped="zero",
              gate_power=1):
    """The layer, and its classic wrong versions (router in x's dtype, no gate, dropped tokens passed through)."""
    logits = F.linear(x.to(router_dtype or x.dtype), router.weight.to(router_dtype or x.dtype)).float()
    routing = moe.route(logits, k=1, capacity_factor=capacity_factor)
    if not scaled:
        routing.weights = torch.ones_like(routing.weights)
    routing.weights = routing.weights ** gate_power
    y = moe.moe_forward_indexed(x, routing, experts)
    if dropped == "pass":
        y = torch.where(routing.keep, y, x)
    return y


@one_thread
def check_switch_ffn(switch_ffn) -> None:
    """``switch_ffn(x, router, experts, capacity_factor)`` → y (S, D) in x's dtype."""
    for case in LAYER_CASES:
        x, router, experts = inputs_for(case)
        router_weight = router.weight.detach().clone()
        got = ensure_tensor(EX, EX.call(switch_ffn, x, router, experts, case.capacity_factor, case=case), "your y",
                            case)
        if router.weight.dtype != torch.float32 or not torch.equal(router.weight.detach(), router_weight):
            raise EX.fail(f"your code changed the router itself (its weight is now {router.weight.dtype}): "
                          f"router.to(...), .half() or .bfloat16() convert a module IN PLACE. Compute in float32 "
                          f"without converting it: router(x.float()).", case=case)
        with torch.no_grad():
            expected = reference(x, router, experts, case.capacity_factor)
            mistakes = [
                Mistake(reference(x, router, experts, case.capacity_factor, scaled=False),
                        "your expert outputs are not scaled by the gate: y_s = p_i · FFN_i(x_s) (eq. (6.1)). Without "
                        "p_i the router receives no gradient (eq. (6.2))."),
                Mistake(reference(x, router, experts, case.capacity_factor, gate_power=2),
                        "your expert outputs are scaled by the gate TWICE (p_i²): multiply by p_i once (eq. (6.1)) — "
                        "is the gate applied both inside a helper and again outside?"),
                Mistake(reference(x, router, experts, case.capacity_factor, router_dtype=None),
                        "your router runs in the activations' low precision (bfloat16): its logits are rounded, "
                        "some tokens go to another expert and the gates are off. Selective precision: compute the "
                        "router in float32, router(x.float()) (§2.5).") if case.dtype == torch.bfloat16 else None,
                Mistake(reference(x, router, experts, case.capacity_factor, dropped="pass"),
                        "your dropped tokens come out as x: the layer outputs 0 for a token its expert had no room "
                        "for; the residual connection OUTSIDE the layer carries x on (eq. (6.6)).")
                if case.capacity_factor is not None else None,
                Mistake(reference(x, router, experts, None),
                        "you drop no token: each expert takes at most C = ceil(capacity_factor · S / N) tokens, in "
                        "token order; the rest get 0 (eq. (6.6)).") if case.capacity_factor is not None else None,
            ]
            mistakes = [m for m in mistakes if m is not None and not torch.allclose(
                m.output.float(), expected.float(), atol=1e-2 if case.dtype == torch.bfloat16 else 1e-6)]
        if got.dtype != x.dtype and got.shape == expected.shape:
            raise EX.fail(f"your y is {got.dtype} but x is {x.dtype}: the router works in float32, but the layer's "
                          f"output goes back to x's dtype (cast the gate, or the result, with .to(x.dtype)).",
                          case=case)
        loose = {"atol": 1e-6, "rtol": 1e-5} if case.dtype == torch.float64 else {}  # a float64 router is fine too
        EX.compare(got, expected, case=case, name="y", equation=EQUATION, mistakes=mistakes, axes=("S", "D"), **loose)
        if got.requires_grad or any(p.requires_grad for p in router.parameters()):
            g = EX.randn(*got.shape, key=(case.label, "g")).to(got.dtype)
            router.zero_grad(set_to_none=True)
            (got.float() * g.float()).sum().backward()
            if router.weight.grad is None or not router.weight.grad.abs().sum() > 0:
                raise EX.fail("the router receives no gradient from your y: the gate p_i must stay in the autograd "
                              "graph (no .detach(), .item() or torch.no_grad() around the router), eq. (6.2).",
                              case=case)
    EX.passed(f"{len(LAYER_CASES)} cases: y = p_i · FFN_i(x) for kept tokens and 0 for dropped ones, the router in "
              f"float32 under bfloat16 activations, and the router gets its gradient.")
