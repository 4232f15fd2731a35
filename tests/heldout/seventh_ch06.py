"""Seventh blind held-out set, Chapter 06 (Switch Transformer): wrong answers written as a learner writes the cell.

Written without reading the checks or seeing any of their messages, from the student notebook's prompts, stubs and
check calls, the reference solutions and ``utils/moe.py`` only. It aims at the mistakes learners make most often in
this chapter: the softmax axis and the gate of eq. (6.1) (a renormalised gate of 1, no gate, a detached router),
the capacity of eq. (6.6) (floor for ceil, GShard's factor k, slots counted from 1, the cumulative sum over the
wrong axis), f and P and the factor N of eq. (6.3), the stable logsumexp, the axis and the mean of eq. (6.7), the
float32 router and the output dtype of §2.5, and the fan-in, the square root and the truncation bounds of the
initialisation of §2.6. The helper the Switch layer uses (``switch_route``, exercise 6.1) is the chapter's reference
solution, so each answer holds exactly one mistake.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from tests.heldout.report import Registry, solution_namespace

REF = solution_namespace("06_switch_transformer")
switch_route = REF["switch_route"]

REGISTRY = Registry("06", {
    "6.1": ("check_switch_route", "switch_route"),
    "6.2": ("check_switch_load_balancing_loss", "switch_load_balancing_loss"),
    "6.3": ("check_router_z_loss", "router_z_loss"),
    "6.4": ("check_switch_ffn", "switch_ffn"),
    "6.5": ("check_switch_init", "switch_init_"),
})
wrong = REGISTRY.wrong


# ----- Exercise 6.1: top-1 routing with capacity (eqs. (6.1), (6.6)) -------------------------------------------

@wrong("6.1", "softmax over dim=0 (the tokens) instead of over the N experts: each column sums to 1, not each row",
       names=[r"(softmax|normali[sz]\w*)[^.?]{0,40}(over|along|across) (the )?(tokens|dim(ension)?\s*=?\s*0|axis\s*=?\s*0|first ax|wrong ax)",
              r"(over|across|along) (all )?(the )?(N )?experts[^.?]{0,40}(not|instead of|rather than)[^.?]{0,20}tokens",
              r"dim\s*=\s*(-1|1)[^.?]{0,30}(not|instead of|rather than)[^.?]{0,10}dim\s*=\s*0",
              r"(each|every) (token'?s? )?(row|token)[^.?]{0,30}(sum|add)\w* to 1",
              r"(columns?|tokens?) (sum|add)\w* to 1"])
def route_softmax_over_tokens(logits, capacity_factor):
    S, N = logits.shape
    probs = torch.softmax(logits, dim=0)
    gate, expert_index = probs.max(dim=-1)
    one_hot = F.one_hot(expert_index, N)
    position = (one_hot.cumsum(dim=0) * one_hot).sum(dim=-1) - 1
    capacity = S if capacity_factor is None else math.ceil(capacity_factor * S / N)
    return expert_index, gate, position < capacity


@wrong("6.1", "gate renormalised over the one chosen expert (softmax of the top-1 logit): always 1, the router gets "
              "no gradient",
       names=[r"(gate|weight|p_i)[^.?]{0,30}(is |are |always |equals? |=\s*)(exactly |always )?1(\.0+)?(?![\d.e])",
              r"renormali[sz]\w*",
              r"softmax[^.?]{0,40}(over|of) (the )?(one|single|chosen|top-?1|selected)",
              r"(no|zero) gradient[^.?]{0,40}router|router[^.?]{0,40}(no|zero) gradient",
              r"(over|across) all (N )?experts[^.?]{0,30}(before|then)"])
def route_gate_renormalised(logits, capacity_factor):
    S, N = logits.shape
    top_logit, expert_index = logits.topk(1, dim=-1)
    gate = torch.softmax(top_logit, dim=-1)[:, 0]
    expert_index = expert_index[:, 0]
    one_hot = F.one_hot(expert_index, N)
    position = (one_hot.cumsum(dim=0) * one_hot).sum(dim=-1) - 1
    capacity = S if capacity_factor is None else math.ceil(capacity_factor * S / N)
    return expert_index, gate, position < capacity


@wrong("6.1", "capacity int(capacity_factor · S / N): rounded down (floor) instead of up (ceil), one slot short "
              "when S/N·factor is not whole",
       names=[r"ceil\w*[^.?]{0,30}(not|instead|rather)", r"(not|instead of|rather than)[^.?]{0,20}ceil", r"round\w* (down|up)", r"\bfloor\w*", r"\bint\(", r"truncat\w*[^.?]{0,30}(capacity|\bC\b)",
              r"(capacity|\bC\b)[^.?]{0,40}(one|1) (slot )?(too )?(small|short|fewer|less)"])
def route_capacity_floor(logits, capacity_factor):
    S, N = logits.shape
    probs = torch.softmax(logits, dim=-1)
    gate, expert_index = probs.max(dim=-1)
    one_hot = F.one_hot(expert_index, N)
    position = (one_hot.cumsum(dim=0) * one_hot).sum(dim=-1) - 1
    capacity = S if capacity_factor is None else int(capacity_factor * S / N)
    return expert_index, gate, position < capacity


@wrong("6.1", "capacity with GShard's factor k = 2 (C = ceil(factor · 2S / N)): top-1 has no factor k, so too few "
              "tokens are dropped",
       names=[r"(factor|times|×|\*)\s*(of )?(k|2)\b[^.?]{0,40}(top-?1|switch|no k|not|GShard|twice)",
              r"(no|without( a| the)?) (factor )?k\b", r"top-?1[^.?]{0,40}(no|without)[^.?]{0,20}\bk\b",
              r"\b2\s*(·|\*|×)?\s*S\s*/\s*N", r"(twice|double\w*)[^.?]{0,30}(capacity|slots|\bC\b)",
              r"(capacity|\bC\b)[^.?]{0,30}(twice|double\w*|too (large|big|many))"])
def route_capacity_times_k(logits, capacity_factor):
    S, N = logits.shape
    k = 2
    probs = torch.softmax(logits, dim=-1)
    gate, expert_index = probs.max(dim=-1)
    one_hot = F.one_hot(expert_index, N)
    position = (one_hot.cumsum(dim=0) * one_hot).sum(dim=-1) - 1
    capacity = S if capacity_factor is None else math.ceil(capacity_factor * k * S / N)
    return expert_index, gate, position < capacity


@wrong("6.1", "slot = the cumulative count at its expert without the − 1: slots start at 1, so each full expert "
              "keeps only C − 1 tokens",
       names=[r"off[- ]by[- ]one", r"(slots?|positions?)[^.?]{0,30}(start|count)\w*[^.?]{0,20}(at|from) (0|1|zero|one)\b",
              r"[−-]\s*1\b[^.?]{0,30}(missing|forgot\w*|left out|dropped)", r"(missing|forgot\w*)[^.?]{0,30}[−-]\s*1\b",
              r"\bC\s*[−-]\s*1\b", r"one (token )?(too )?(few|fewer|less|early)"])
def route_slots_from_one(logits, capacity_factor):
    S, N = logits.shape
    probs = torch.softmax(logits, dim=-1)
    gate, expert_index = probs.max(dim=-1)
    one_hot = F.one_hot(expert_index, N)
    position = (one_hot.cumsum(dim=0) * one_hot).sum(dim=-1)
    capacity = S if capacity_factor is None else math.ceil(capacity_factor * S / N)
    return expert_index, gate, position < capacity


@wrong("6.1", "one_hot.cumsum(dim=-1) (over the experts) instead of over the tokens: the slot is never more than 0, "
              "nothing is ever dropped",
       names=[r"cumsum[^.?]{0,40}(over|along|across) (the )?(experts|dim\s*=?\s*-?1|last ax|wrong ax)",
              r"(cumsum|cumulative (sum|count))[^.?]{0,40}(over|along|across|down) (the )?tokens",
              r"dim\s*=\s*0[^.?]{0,30}(not|instead of|rather than)[^.?]{0,10}dim\s*=\s*-?1",
              r"(how many|count\w*)[^.?]{0,30}(earlier|previous|before|up to)[^.?]{0,20}tokens?"])
def route_cumsum_over_experts(logits, capacity_factor):
    S, N = logits.shape
    probs = torch.softmax(logits, dim=-1)
    gate, expert_index = probs.max(dim=-1)
    one_hot = F.one_hot(expert_index, N)
    position = (one_hot.cumsum(dim=-1) * one_hot).sum(dim=-1) - 1
    capacity = S if capacity_factor is None else math.ceil(capacity_factor * S / N)
    return expert_index, gate, position < capacity


# ----- Exercise 6.2: the load-balancing loss (eqs. (6.3), (6.5)) -----------------------------------------------

@wrong("6.2", "f computed from the soft probabilities (f = P), a loss N Σ P_i²: balances probability mass, not the "
              "dispatch, gradient 2NP_i/S",
       names=[r"(f|f_i)[^.?]{0,40}(from|of|uses?) (the )?(soft )?(probabilit\w*|probs)[^.?]{0,30}(instead|not|rather)",
              r"\bf\s*=\s*P\b", r"P_?i?\s*(²|\^\s*2|\*\*\s*2)", r"2\s*N\s*P",
              r"(argmax|dispatch\w*|one[- ]hot|expert_index)[^.?]{0,40}(count|fraction|for f\b|not used|ignored|unused)",
              r"expert_index[^.?]{0,30}(ignored|unused|never used|not used)"])
def lb_f_from_probs(probs, expert_index):
    S, N = probs.shape
    f = probs.mean(dim=0)
    P = probs.mean(dim=0)
    return N * (f * P).sum()


@wrong("6.2", "the factor N forgotten: Σ f_i P_i, which is 1/N at perfect balance instead of 1",
       names=[r"(factor|multipl\w*|times|scal\w*)[^.?]{0,20}\bN\b", r"\bN\b[^.?]{0,30}(missing|forgot\w*|left out|dropped)",
              r"(missing|forgot\w*|without)[^.?]{0,30}\bN\b", r"1\s*/\s*N\b[^.?]{0,40}(balance|uniform|instead of 1)",
              r"number of experts[^.?]{0,30}(missing|forgot\w*|factor|multipl\w*)"])
def lb_no_factor_N(probs, expert_index):
    S, N = probs.shape
    f = F.one_hot(expert_index, N).to(probs.dtype).mean(dim=0)
    P = probs.mean(dim=0)
    return (f * P).sum()


@wrong("6.2", "f as counts (one_hot.sum(0)) instead of fractions: the loss is S times too large",
       names=[r"(count|sum)\w*[^.?]{0,30}(instead of|not|rather than)[^.?]{0,20}(fraction|mean|average)",
              r"(fraction|mean|average)[^.?]{0,30}(not|instead of|rather than)[^.?]{0,20}(count|sum)",
              r"(divid\w*|normali[sz]\w*)[^.?]{0,20}(by )?\bS\b", r"1\s*/\s*S\b", r"\bS\b times",
              r"\bf(_i)?\b[^.?]{0,30}(sum|add)\w* to (1|one)\b"])
def lb_f_counts(probs, expert_index):
    S, N = probs.shape
    f = F.one_hot(expert_index, N).to(probs.dtype).sum(dim=0)
    P = probs.mean(dim=0)
    return N * (f * P).sum()


@wrong("6.2", "P = probs.mean(dim=-1): averaged over the experts (shape (S,)) instead of over the tokens (N,)",
       names=[r"(P|P_i|mean)[^.?]{0,40}(over|along|across) (the )?(experts|dim\s*=?\s*-?1|last ax|wrong ax)",
              r"(mean|averag\w*)[^.?]{0,30}(over|along|across) (the )?tokens",
              r"dim\s*=\s*0[^.?]{0,30}(not|instead of|rather than)[^.?]{0,10}dim\s*=\s*-?1",
              r"\(S,?\)[^.?]{0,40}(instead of|not|rather than)[^.?]{0,10}\(N,?\)", r"shape \(N,?\)"])
def lb_P_over_experts(probs, expert_index):
    S, N = probs.shape
    f = F.one_hot(expert_index, N).to(probs.dtype).mean(dim=0)
    P = probs.mean(dim=-1)
    return N * (f * P).sum()


# ----- Exercise 6.3: the router z-loss (eq. (6.7)) -------------------------------------------------------------

@wrong("6.3", "z = log(exp(logits).sum(-1)) written out: exp overflows to inf for logits in the hundreds in float32",
       names=[r"logsumexp", r"exp\w*[^.?]{0,30}overflow\w*[^.?]{0,30}(logit|100|float32)", r"(unstable|instabilit\w*|numerically stabl\w*)", r"(\binf\b|infinit\w*|non-?finite|not finite)[^.?]{0,40}(logits? (near|of|around) 100|large logits)",
              r"(subtract\w*|max\w*)[^.?]{0,30}(the )?max\w*[^.?]{0,20}(first|before)"])
def z_naive_log_sum_exp(logits):
    z = torch.log(torch.exp(logits).sum(dim=-1))
    return (z ** 2).mean()


@wrong("6.3", "logsumexp over dim=0 (the tokens) instead of over each token's N logits",
       names=[r"(logsumexp|log[- ]?partition|z_s|sum)[^.?]{0,40}(over|along|across) (the )?(tokens|dim\s*=?\s*0|first ax|wrong ax)",
              r"(over|along|across) (each token'?s?|the) (N )?(experts|logits)[^.?]{0,30}(not|instead|rather)",
              r"dim\s*=\s*-?1[^.?]{0,30}(not|instead of|rather than)[^.?]{0,10}dim\s*=\s*0",
              r"(per|each|every) token'?s? (own )?(N )?(logits|row)",
              r"\(N,?\)[^.?]{0,30}(instead of|not|rather than)[^.?]{0,10}\(S,?\)"])
def z_logsumexp_over_tokens(logits):
    z = torch.logsumexp(logits, dim=0)
    return (z ** 2).mean()


@wrong("6.3", "(mean of z)²: squares the average instead of averaging the squares",
       names=[r"squar\w*[^.?]{0,30}(before|then|first)[^.?]{0,20}(averag\w*|mean)",
              r"(averag\w*|mean)[^.?]{0,20}of (the )?squares", r"square of (the )?(mean|average)",
              r"(mean|average)[^.?]{0,20}(then|before|first)[^.?]{0,20}squar",
              r"(order|outside|inside)[^.?]{0,30}(square|mean|\*\*\s*2)",
              r"\(\s*1\s*/\s*S\s*Σ[^)]*\)\s*(²|\^2)"])
def z_square_of_mean(logits):
    z = torch.logsumexp(logits, dim=-1)
    return z.mean() ** 2


@wrong("6.3", "sum over the tokens instead of the mean: the 1/S of eq. (6.7) forgotten, the loss grows with S",
       names=[r"1\s*/\s*S\b", r"(sum|summ\w*)[^.?]{0,30}(instead of|not|rather than)[^.?]{0,20}(mean|averag\w*)",
              r"(mean|averag\w*)[^.?]{0,30}(not|instead of|rather than)[^.?]{0,20}(sum|total)",
              r"(divid\w*|normali[sz]\w*)[^.?]{0,20}(by )?(the number of tokens|\bS\b)",
              r"(grows|scales|proportional)[^.?]{0,30}(with )?(\bS\b|the number of tokens|batch)"])
def z_sum_not_mean(logits):
    z = torch.logsumexp(logits, dim=-1)
    return (z ** 2).sum()


# ----- Exercise 6.4: the Switch layer, router in float32 (eq. (6.1), §2.5) -------------------------------------

@wrong("6.4", "router weight cast down to x's dtype (bfloat16) so router(x) runs: the logits are rounded in "
              "bfloat16, not computed in float32",
       names=[r"(router|logits)[^.?]{0,40}(in |as )?(bfloat16|bf16|half|low(er)? precision|rounded|x'?s dtype)",
              r"(not|never)[^.?]{0,30}(in )?float32", r"selective precision", r"x\.float\(\)",
              r"(cast|round)\w*[^.?]{0,30}(down|to bfloat16|to bf16)"])
def ffn_router_in_bfloat16(x, router, experts, capacity_factor):
    logits = F.linear(x, router.weight.to(x.dtype)).float()
    expert_index, gate, keep = switch_route(logits, capacity_factor)
    y = torch.zeros_like(x)
    for e, expert in enumerate(experts):
        rows = torch.nonzero((expert_index == e) & keep, as_tuple=True)[0]
        if len(rows):
            y = y.index_add(0, rows, gate[rows, None].to(x.dtype) * expert(x[rows]))
    return y


@wrong("6.4", "expert output not scaled by the gate: y = FFN_i(x), so the router gets no gradient",
       names=[r"(not|never|un|without)[^.?]{0,20}(scal|multipl|weight)\w*[^.?]{0,20}(gate|p_i|probabilit\w*)",
              r"(gate|p_i)[^.?]{0,30}(missing|forgot\w*|not applied|unused|ignored|left out|never)",
              r"(no|zero|without)[^.?]{0,10}gradient[^.?]{0,40}router|router[^.?]{0,40}(no|zero|without)[^.?]{0,10}gradient",
              r"unscaled", r"(forgot\w*|missing|omit\w*)[^.?]{0,30}(gate|p_i)"])
def ffn_no_gate(x, router, experts, capacity_factor):
    logits = router(x.float())
    expert_index, gate, keep = switch_route(logits, capacity_factor)
    y = torch.zeros_like(x)
    for e, expert in enumerate(experts):
        rows = torch.nonzero((expert_index == e) & keep, as_tuple=True)[0]
        if len(rows):
            y = y.index_add(0, rows, expert(x[rows]))
    return y


@wrong("6.4", "keep ignored: every token routed to its expert is processed, the tokens beyond capacity are not "
              "dropped (should output 0)",
       names=[r"\bkeep\b[^.?]{0,30}(ignored|unused|not used|never|missing)",
              r"(dropped|overflow\w*) tokens?[^.?]{0,30}(processed|non-?zero|not 0|not zero|got an output|were computed)",
              r"(not|never|none|nothing|no tokens?) (are |were |is |was )?dropped",
              r"capacity[^.?]{0,30}(ignored|not applied|not enforced|never applied|no effect)"])
def ffn_ignores_keep(x, router, experts, capacity_factor):
    logits = router(x.float())
    expert_index, gate, keep = switch_route(logits, capacity_factor)
    y = torch.zeros_like(x)
    for e, expert in enumerate(experts):
        rows = torch.nonzero(expert_index == e, as_tuple=True)[0]
        if len(rows):
            y = y.index_add(0, rows, gate[rows, None].to(x.dtype) * expert(x[rows]))
    return y


@wrong("6.4", "output buffer torch.zeros(x.shape) (float32 by default): y comes back in float32, not in x's dtype",
       names=[r"(your )?(output|result|returned|\by\b)[^.?]{0,30}(is|comes back|returned) (in )?float32|float32[^.?]{0,30}(instead of|not) (x\'?s|the input\'?s|float64)",
              r"zeros_like", r"x'?s dtype", r"x\.dtype", r"(cast|convert)\w*[^.?]{0,20}back"])
def ffn_output_float32(x, router, experts, capacity_factor):
    logits = router(x.float())
    expert_index, gate, keep = switch_route(logits, capacity_factor)
    y = torch.zeros(x.shape)
    for e, expert in enumerate(experts):
        rows = torch.nonzero((expert_index == e) & keep, as_tuple=True)[0]
        if len(rows):
            y = y.index_add(0, rows, gate[rows, None] * expert(x[rows]))
    return y


@wrong("6.4", "router run under torch.no_grad() (routing seen as a discrete choice): the gate carries no gradient "
              "back to the router's weight",
       names=[r"no_grad", r"detach\w*", r"(no|zero|without|missing)[^.?]{0,20}gradient[^.?]{0,40}(router|W_r|weight)",
              r"(router|W_r)[^.?]{0,40}(no|zero|without|never)[^.?]{0,20}gradient",
              r"(gate|p_i)[^.?]{0,30}(not differentiable|no gradient|without (a )?gradient|detached)"])
def ffn_router_no_grad(x, router, experts, capacity_factor):
    with torch.no_grad():
        logits = router(x.float())
    expert_index, gate, keep = switch_route(logits, capacity_factor)
    y = torch.zeros_like(x)
    for e, expert in enumerate(experts):
        rows = torch.nonzero((expert_index == e) & keep, as_tuple=True)[0]
        if len(rows):
            y = y.index_add(0, rows, gate[rows, None].to(x.dtype) * expert(x[rows]))
    return y


# ----- Exercise 6.5: the Switch initialisation (§2.6) ----------------------------------------------------------

@wrong("6.5", "std = scale / √fan_in: the scale put outside the square root (std √10 times too small for 0.1)",
       names=[r"(scale|0\.1|\bs)\b[^.?]{0,30}(inside|outside|under|within) (the )?(square root|sqrt|√)",
              r"(square root|sqrt|√)[^.?]{0,30}(of|over|on) (the )?(scale|\bs\b)", r"√\s*10|sqrt\(10\)|3\.16",
              r"(scale|\bs)\s*/\s*(√|sqrt)[^.?]{0,40}(instead|not|rather)",
              r"\bvariance\b[^.?]{0,30}(scale|\bs\b)\s*/"])
def init_scale_outside_sqrt(module, scale=0.1):
    for layer in module.modules():
        if isinstance(layer, nn.Linear):
            std = scale / math.sqrt(layer.in_features)
            nn.init.trunc_normal_(layer.weight, std=std, a=-2 * std, b=2 * std)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
    return module


@wrong("6.5", "fan-in read as weight.shape[0] (out_features): a Linear's weight is (out, in)",
       names=[r"fan[- _]?in[^.?]{0,40}(in_features|input|not|instead|out)", r"in_features", r"out_features",
              r"weight\.shape\[(0|1|-1)\]", r"\(out(_features)?, ?in(_features)?\)", r"fan[- _]?out",
              r"(input|output) (width|size|dimension)[^.?]{0,30}(not|instead|rather)"])
def init_fan_out(module, scale=0.1):
    for layer in module.modules():
        if isinstance(layer, nn.Linear):
            fan_in = layer.weight.shape[0]
            std = math.sqrt(scale / fan_in)
            nn.init.trunc_normal_(layer.weight, std=std, a=-2 * std, b=2 * std)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
    return module


@wrong("6.5", "trunc_normal_(..., a=-2, b=2): the bounds are absolute, not multiples of the std, so nothing is "
              "truncated",
       names=[r"(bounds?|a\b|b\b|cut\w*|truncat\w*)[^.?]{0,40}absolute", r"(multiples?|units?) of (the )?(std|standard deviation|σ)",
              r"2\s*\*\s*std", r"(never|not|no(thing)?) (is |are )?truncat\w*",
              r"a\s*=\s*-2\b[^.?]{0,30}(not|instead)"])
def init_bounds_not_scaled(module, scale=0.1):
    for layer in module.modules():
        if isinstance(layer, nn.Linear):
            std = math.sqrt(scale / layer.in_features)
            nn.init.trunc_normal_(layer.weight, std=std, a=-2, b=2)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
    return module


@wrong("6.5", "bias left at PyTorch's default uniform init instead of set to 0",
       names=[r"bias\w*[^.?]{0,40}(not |never )?(zero|0\b|set to 0)", r"zeros_", r"bias\w*[^.?]{0,30}(untouched|unchanged|default|left|not reset)",
              r"(non-?zero|nonzero)[^.?]{0,20}bias"])
def init_bias_kept(module, scale=0.1):
    for layer in module.modules():
        if isinstance(layer, nn.Linear):
            std = math.sqrt(scale / layer.in_features)
            nn.init.trunc_normal_(layer.weight, std=std, a=-2 * std, b=2 * std)
    return module


@wrong("6.5", "module.children() instead of module.modules(): only the direct children, the Linears nested deeper "
              "keep their default init",
       names=[r"\.?modules\(\)", r"\.?children\(\)", r"nested|recurs\w*|submodules?", r"(every|all) (the )?(nn\.)?Linears?",
              r"(deeper|inner|inside)[^.?]{0,30}(Linear|layer|module)", r"(Linear|layer)s?[^.?]{0,30}(skipped|missed|untouched|not (re)?initiali[sz]ed)"])
def init_children_only(module, scale=0.1):
    for layer in module.children():
        if isinstance(layer, nn.Linear):
            std = math.sqrt(scale / layer.in_features)
            nn.init.trunc_normal_(layer.weight, std=std, a=-2 * std, b=2 * std)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
    return module
