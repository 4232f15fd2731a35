"""Seventh blind held-out set, Chapter 03 (mixture of experts): wrong answers written as a learner writes the cell.

Written without reading the checks or seeing any of their messages, from the student notebook's prompts, stubs and
check calls, the reference solutions and ``utils/moe.py`` only. It aims at the mistakes learners make most often in
this chapter: the order of softmax and top-k and the renormalisation of eq. (3.2), the choice axis in the
gather/scatter loop of eq. (3.3), GShard's choice-major order, the factor k and the count from 0 in eqs. (3.5)-(3.6),
the keep mask and the slot one-hot of the dispatch/combine tensors, which tensor goes in which einsum of eq. (3.4),
the first-choice fraction and the factor E of eq. (3.7), and the block's mask, residual and routing group. The
helpers the block uses (exercises 3.1, 3.3-3.6) are the chapter's reference solutions, so each answer holds exactly
one mistake.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from tests.heldout.report import Registry, solution_namespace
from utils import moe

REF = solution_namespace("03_mixture_of_experts")
top_k_gating = REF["top_k_gating"]
capacity_positions = REF["capacity_positions"]
dispatch_combine = REF["dispatch_combine"]
moe_einsum = REF["moe_einsum"]
load_balancing_loss = REF["load_balancing_loss"]

REGISTRY = Registry("03", {
    "3.1": ("check_top_k_gating", "top_k_gating"),
    "3.2": ("check_moe_loop", "moe_loop"),
    "3.3": ("check_capacity_positions", "capacity_positions"),
    "3.4": ("check_dispatch_combine", "dispatch_combine"),
    "3.5": ("check_moe_einsum", "moe_einsum"),
    "3.6": ("check_load_balancing_loss", "load_balancing_loss"),
    "3.7": ("check_moe_block", "MoEBlock"),
})
wrong = REGISTRY.wrong


# ----- Exercise 3.1: the top-k gate (eqs. (3.1), (3.2)) ---------------------------------------------------------

@wrong("3.1", "softmax taken after top-k, over the k chosen logits: the same at k = 2, but at k = 1 every weight is 1 "
              "(a constant; the router gets no gradient)",
       names=[r"softmax[^.?;]{0,40}(after|over the (k )?chosen|over the selected|of the top)",
              r"(weight|gate|g)\w*[^.?;]{0,40}(always|constant|all|every\w*)[^.?;]{0,15}(equal to |=\s*|is |are )?1\b",
              r"k\s*=\s*1[^.?;]{0,60}(plain probabilit|not (be )?renormali|constant|weights? (of|=|is|are) 1\b)",
              r"(no|zero) gradient[^.?;]{0,40}router|router[^.?;]{0,40}(no|zero) gradient",
              r"softmax[^.?;]{0,30}(before|first)[^.?;]{0,20}(top|choos)"])
def top_k_softmax_after(logits, k):
    probs = torch.softmax(logits, dim=-1)
    top_logits, indices = logits.topk(k, dim=-1)
    weights = torch.softmax(top_logits, dim=-1)  # over the chosen experts
    return probs, weights, indices


@wrong("3.1", "never renormalised: the top-k probabilities returned as they are for k = 2 (Switch's rule at every k)",
       names=[r"(not|never|no|without|forgot\w*|missing)[^.?;]{0,25}(re-?normali[sz]\w*)",
              r"re-?normali[sz]\w*[^.?;]{0,40}(missing|forgot\w*|not done|skipped|never)",
              r"p_?1\s*/\s*\(\s*p_?1\s*\+\s*p_?2\s*\)|g_\{?s,?1\}?\s*\+\s*g_\{?s,?2\}?\s*=\s*1",
              r"(weights?|g)[^.?;]{0,30}(do not|don't|must|should|should not)?\s*sum to 1",
              r"divid\w*[^.?;]{0,30}(by )?(their|the) sum[^.?;]{0,30}(chosen|k\b|top)"])
def top_k_not_renormalised(logits, k):
    probs = torch.softmax(logits, dim=-1)
    weights, indices = probs.topk(k, dim=-1)
    return probs, weights, indices


@wrong("3.1", "softmax over dim=0, the tokens, instead of over the experts (dim=-1)",
       names=[r"(softmax|normali[sz]\w*)[^.?;]{0,40}(over|along|across) (the )?(tokens|dim\s*=?\s*0|axis 0|first axis|S\b)",
              r"(wrong|which) softmax (axis|dim)|softmax[^.?]{0,30}(wrong|other) (axis|dim)",
              r"(rows?|each token'?s? probabilit\w*)[^.?;]{0,30}(do not|don't|must|should) sum to 1",
              r"dim\s*=\s*-1[^.?;]{0,30}(not|instead|rather)|(not|instead of|rather than) (dim\s*=\s*0|over the tokens)",
              r"over the experts[^.?;]{0,30}(not|instead|rather)"])
def top_k_softmax_over_tokens(logits, k):
    probs = torch.softmax(logits, dim=0)
    weights, indices = probs.topk(k, dim=-1)
    if k > 1:
        weights = weights / weights.sum(dim=-1, keepdim=True)
    return probs, weights, indices


@wrong("3.1", "argsort(...)[:, -k:]: the right k experts but in ascending order, the best one last",
       names=[r"best[- ]first|largest first|descending|decreasing",
              r"(order|sorted)[^.?;]{0,40}(revers\w*|ascending|increasing|swapped|wrong)",
              r"(revers\w*|ascending|increasing|swapped)[^.?;]{0,30}order",
              r"(first|second) (choice|column)[^.?;]{0,40}(second|first|best|largest|worst|smallest)",
              r"i_\{?s,?1\}?[^.?;]{0,30}(best|largest|worst)"])
def top_k_ascending(logits, k):
    probs = torch.softmax(logits, dim=-1)
    indices = probs.argsort(dim=-1)[:, -k:]  # the k largest
    weights = probs.gather(-1, indices)
    if k > 1:
        weights = weights / weights.sum(dim=-1, keepdim=True)
    return probs, weights, indices


# ----- Exercise 3.2: the gather/scatter loop (eq. (3.3)) --------------------------------------------------------

@wrong("3.2", "gathers only the tokens whose FIRST choice is e (indices[:, 0] == e): every second choice is lost",
       names=[r"(second|other|later|all k|every|each of the k|both) choices?[^.?;]{0,40}(missing|lost|ignored|dropped|skipped|never|not)",
              r"(only|just) (the )?first (choice|column|expert)",
              r"indices\[:, ?0\][^.?;]{0,30}(only|instead|not)",
              r"(any|all|each) of (their|the|its) k choices", r"j\s*=\s*2[^.?;]{0,30}(missing|term|lost)"])
def moe_loop_first_choice_only(x, weights, indices, experts):
    y = torch.zeros_like(x)
    for e, expert in enumerate(experts):
        token = torch.nonzero(indices[:, 0] == e, as_tuple=True)[0]
        if len(token) == 0:
            continue
        y = y.index_add(0, token, weights[token, 0].unsqueeze(-1) * expert(x[token]))
    return y


@wrong("3.2", "y[token] = weighted output: assignment instead of accumulation, the later expert overwrites the "
              "earlier one's contribution to the same token",
       names=[r"overwr\w*", r"(assign\w*|=)[^.?;]{0,30}(instead of|not|rather than)[^.?;]{0,15}(add|accumulat|\+=|sum)",
              r"(add|accumulat|sum)\w*[^.?;]{0,30}(instead of|not|rather than)[^.?;]{0,15}(assign|replac|overwr)",
              r"(only one|a single|the last) (expert|choice)[^.?;]{0,30}(survives|kept|counted|contribut)",
              r"accumulat\w*"])
def moe_loop_overwrites(x, weights, indices, experts):
    y = torch.zeros_like(x)
    for e, expert in enumerate(experts):
        token, choice = torch.nonzero(indices == e, as_tuple=True)
        if len(token) == 0:
            continue
        y[token] = weights[token, choice].unsqueeze(-1) * expert(x[token])
    return y


@wrong("3.2", "the experts' outputs added without their gate weights g_sj",
       names=[r"(gate )?weights?[^.?;]{0,30}(missing|not applied|never applied|forgot\w*|ignored|unused|left out)",
              r"(without|no|forgot\w*|missing)[^.?;]{0,20}(the )?(gate|g_\{?s|weight)",
              r"(unweighted|not weighted|plain sum)", r"g_\{?s,?j\}?[^.?;]{0,30}(missing|times|multipl|scal)",
              r"(multipl\w*|scal\w*)[^.?;]{0,30}(by )?(the |their )?(gate )?weights?"])
def moe_loop_unweighted(x, weights, indices, experts):
    y = torch.zeros_like(x)
    for e, expert in enumerate(experts):
        token, choice = torch.nonzero(indices == e, as_tuple=True)
        if len(token) == 0:
            continue
        y = y.index_add(0, token, expert(x[token]))
    return y


# ----- Exercise 3.3: capacity and positions (eqs. (3.5), (3.6)) -------------------------------------------------

@wrong("3.3", "token-major order: one_hot(indices.reshape(-1)) counts (s, j) pairs token by token, so a second "
              "choice can take a slot before a later token's first choice",
       names=[r"(all )?first choices? (before|ahead of|precede)", r"choice[- ]major", r"token[- ]major",
              r"indices\.t\(\)|transpos\w*[^.?;]{0,30}(before|first)[^.?;]{0,20}(flatten|reshape)",
              r"GShard'?s? order", r"second choices?[^.?;]{0,50}(before|ahead of|took|takes|pushed|displace|precede)",
              r"interleav\w*"])
def capacity_positions_token_major(indices, num_experts, capacity_factor):
    S, k = indices.shape
    capacity = S if capacity_factor is None else max(1, math.ceil(capacity_factor * k * S / num_experts))
    mask = F.one_hot(indices.reshape(-1), num_experts)  # (S·k, E)
    positions = ((mask.cumsum(dim=0) - 1) * mask).sum(dim=-1).reshape(S, k)
    return positions, positions < capacity, capacity


@wrong("3.3", "choice-major counting right, but reshaped back with reshape(S, k) instead of reshape(k, S).t(): the "
              "positions land on the wrong (token, choice) entries",
       names=[r"reshape\(\s*k\s*,\s*S\s*\)", r"\.t\(\)|transpos\w*[^.?;]{0,30}(back|after)[^.?;]{0,30}(reshap|\(S, ?k\)|positions)",
              r"(scrambl\w*|shuffl\w*|permut\w*|misplac\w*|wrong (token|entr|row))[^.?;]{0,40}(position|token|choice)",
              r"(\(k, ?S\)|k\s*[×x]\s*S)[^.?;]{0,40}(not|instead|rather|then transpos)",
              r"(position|slot)s?[^.?;]{0,40}(wrong|other) (tokens?|rows?|entr\w*)"])
def capacity_positions_reshape_no_transpose(indices, num_experts, capacity_factor):
    S, k = indices.shape
    capacity = S if capacity_factor is None else max(1, math.ceil(capacity_factor * k * S / num_experts))
    mask = F.one_hot(indices.t().reshape(-1), num_experts)  # (k·S, E), first choices first
    positions = ((mask.cumsum(dim=0) - 1) * mask).sum(dim=-1)
    positions = positions.reshape(S, k)
    return positions, positions < capacity, capacity


@wrong("3.3", "capacity ceil(capacity_factor · S / E): the factor k of eq. (3.5) left out",
       names=[r"(factor|times|multipl\w*)[^.?;]{0,20}\bk\b", r"\bk\b[^.?;]{0,30}(missing|forgot\w*|left out|dropped)[^.?;]{0,30}(capacity|\bC\b)",
              r"(missing|forgot\w*|without)[^.?;]{0,20}(the )?(factor )?\bk\b",
              r"k\s*[·*]?\s*S\s*/\s*E[^.?;]{0,30}(not|instead|rather)|(not|instead of|rather than)\s*S\s*/\s*E",
              r"(C|capacity)[^.?;]{0,40}\bk\b\s*(times|×)?\s*(too small|smaller)"])
def capacity_positions_no_k(indices, num_experts, capacity_factor):
    S, k = indices.shape
    capacity = S if capacity_factor is None else max(1, math.ceil(capacity_factor * S / num_experts))
    mask = F.one_hot(indices.t().reshape(-1), num_experts)
    positions = ((mask.cumsum(dim=0) - 1) * mask).sum(dim=-1).reshape(k, S).t()
    return positions, positions < capacity, capacity


@wrong("3.3", "positions from the cumsum without the − 1: slots counted from 1, so each expert keeps one token "
              "fewer than its capacity",
       names=[r"(count\w*|start\w*|number\w*) from (1|one)\b", r"(from|at) (0|zero)\b[^.?;]{0,30}(not|instead|rather)",
              r"off[- ]by[- ]one", r"(minus|[−-]\s*)1\b[^.?;]{0,30}(missing|forgot\w*|cumsum)",
              r"cumsum[^.?;]{0,30}(minus|[−-]\s*1|includ\w* (itself|the row|its own))",
              r"(one|1) (too high|too large|more|higher)"])
def capacity_positions_from_one(indices, num_experts, capacity_factor):
    S, k = indices.shape
    capacity = S if capacity_factor is None else max(1, math.ceil(capacity_factor * k * S / num_experts))
    mask = F.one_hot(indices.t().reshape(-1), num_experts)
    positions = (mask.cumsum(dim=0) * mask).sum(dim=-1).reshape(k, S).t()
    return positions, positions < capacity, capacity


# ----- Exercise 3.4: the dispatch and combine tensors (eq. (3.4)) -----------------------------------------------

@wrong("3.4", "combine built from weights alone, not keep * weights: a dropped choice leaves its gate weight in the "
              "clamped last slot C − 1",
       names=[r"(dropped|overflow\w*)[^.?;]{0,40}(weight|combine)[^.?;]{0,30}(still|remain|non-?zero|left|appears?)",
              r"combine[^.?;]{0,60}(dropped choice|keep\b|not masked)", r"keep\s*\*\s*weights",
              r"(not|never|without)[^.?;]{0,20}(masked|multipl\w* by keep|zeroed)",
              r"(last|clamp\w*) slot[^.?;]{0,40}(weight|dropped|extra)"])
def dispatch_combine_combine_unmasked(weights, indices, positions, keep, num_experts, capacity):
    kept = keep.to(weights.dtype)
    expert_hot = F.one_hot(indices, num_experts).to(weights.dtype)
    slot_hot = F.one_hot(positions.clamp(max=capacity - 1), capacity).to(weights.dtype)
    dispatch = torch.einsum("Sk,SkE,SkC->SEC", kept, expert_hot, slot_hot)
    combine = torch.einsum("Sk,SkE,SkC->SEC", weights, expert_hot, slot_hot)
    return dispatch, combine


@wrong("3.4", "F.one_hot(positions.clamp(max=capacity - 1)) without num_classes: the slot axis is max(position) + 1 "
              "wide, not C",
       names=[r"num_classes", r"(slot|last) ax[ie]s[^.?;]{0,40}(\bC\b|capacity|too (short|narrow|small)|wide)",
              r"(C|capacity) (slots|wide|columns)[^.?;]{0,30}(not|instead|rather)",
              r"one_hot[^.?;]{0,40}(capacity|\bC\b|width|classes)",
              r"\(S, ?E, ?C\)[^.?;]{0,40}(expected|instead|not|rather)"])
def dispatch_combine_one_hot_width(weights, indices, positions, keep, num_experts, capacity):
    kept = keep.to(weights.dtype)
    expert_hot = F.one_hot(indices, num_experts).to(weights.dtype)
    slot_hot = F.one_hot(positions.clamp(max=capacity - 1)).to(weights.dtype)  # (S, k, C)
    dispatch = torch.einsum("Sk,SkE,SkC->SEC", kept, expert_hot, slot_hot)
    combine = torch.einsum("Sk,SkE,SkC->SEC", kept * weights, expert_hot, slot_hot)
    return dispatch, combine


@wrong("3.4", "dispatch returned as a bool tensor (einsum(...) > 0, as utils/moe.py does) instead of in weights' dtype",
       names=[r"\bbool\w*[^.?;]{0,40}(instead|not|rather|dtype|float)", r"dtype[^.?;]{0,40}(weights|float|bool)",
              r"(weights'|the weights'?) dtype", r"float(64|32)?[^.?;]{0,30}(not|instead of|rather than) bool",
              r"\.to\(weights\.dtype\)"])
def dispatch_combine_bool_dispatch(weights, indices, positions, keep, num_experts, capacity):
    expert_hot = F.one_hot(indices, num_experts).to(weights.dtype)
    slot_hot = F.one_hot(positions.clamp(max=capacity - 1), capacity).to(weights.dtype)
    kept_weights = weights * keep
    combine = torch.einsum("Sk,SkE,SkC->SEC", kept_weights, expert_hot, slot_hot)
    dispatch = torch.einsum("Sk,SkE,SkC->SEC", keep.to(weights.dtype), expert_hot, slot_hot) > 0
    return dispatch, combine


# ----- Exercise 3.5: the einsum MoE forward (eq. (3.4)) ---------------------------------------------------------

@wrong("3.5", "the second einsum with the dispatch tensor instead of combine: the outputs come home unweighted",
       names=[r"dispatch[^.?;]{0,40}(instead of|not|rather than)[^.?;]{0,10}combine",
              r"combine[^.?;]{0,40}(instead of|not|rather than|missing|never used|unused)",
              r"(gate )?weights?[^.?;]{0,30}(missing|not applied|never applied|ignored|unused|left out)",
              r"(unweighted|without (the |their )?(gate )?weights?)", r"\bW_\{?s,?e,?c\}?"])
def moe_einsum_dispatch_twice(x, dispatch, combine, experts):
    expert_inputs = torch.einsum("SEC,SD->ECD", dispatch, x)
    expert_outputs = torch.stack([expert(expert_inputs[e]) for e, expert in enumerate(experts)])
    return torch.einsum("SEC,ECD->SD", dispatch, expert_outputs)


@wrong("3.5", "the first einsum with combine instead of dispatch: the gate weight scales the expert's INPUT (inside "
              "the nonlinear FFN) and again its output",
       names=[r"combine[^.?;]{0,40}(instead of|not|rather than)[^.?;]{0,10}dispatch",
              r"(input|buffer|pack\w*|first einsum)[^.?;]{0,40}(dispatch|combine|weighted|scaled)",
              r"weights? (applied|counted|used) twice|twice[^.?;]{0,20}weight|squared (gate )?weight",
              r"(inside|before) the (expert|FFN|nonlinear)", r"\bD_\{?s,?e,?c\}?"])
def moe_einsum_combine_twice(x, dispatch, combine, experts):
    expert_inputs = torch.einsum("SEC,SD->ECD", combine, x)
    expert_outputs = torch.stack([expert(expert_inputs[e]) for e, expert in enumerate(experts)])
    return torch.einsum("SEC,ECD->SD", combine, expert_outputs)


@wrong("3.5", "returns x + y: the residual added inside the MoE forward (it belongs to the block, exercise 3.7)",
       names=[r"residual", r"(input|\bx\b)[^.?;]{0,20}(added|included|plus)", r"x\s*\+\s*y",
              r"(dropped|unprocessed)[^.?;]{0,40}(token|row)s?[^.?;]{0,30}(should be |must be |get |are )?(0|zero)",
              r"off by (exactly )?(the input|x\b)"])
def moe_einsum_adds_residual(x, dispatch, combine, experts):
    expert_inputs = torch.einsum("SEC,SD->ECD", dispatch, x)
    expert_outputs = torch.stack([expert(expert_inputs[e]) for e, expert in enumerate(experts)])
    return x + torch.einsum("SEC,ECD->SD", combine, expert_outputs)


# ----- Exercise 3.6: the load-balancing loss (eq. (3.7)) --------------------------------------------------------

@wrong("3.6", "c_e counts all k choices (one_hot(indices).mean over tokens and choices), not only the first choice",
       names=[r"(only|just) (the )?first choices?", r"first choices? only",
              r"indices\[:, ?0\][^.?;]{0,30}(only|instead|not)",
              r"(all|every|both|second|k) choices?[^.?;]{0,40}(counted|included|c_e|not only)",
              r"c_e[^.?;]{0,50}(first|second|all k|every choice)"])
def lb_loss_all_choices(probs, indices):
    S, E = probs.shape
    mean_gate = probs.mean(dim=0)
    fraction = F.one_hot(indices, E).to(probs.dtype).mean(dim=(0, 1))  # share of all choices per expert
    return E * (mean_gate * fraction).sum()


@wrong("3.6", "Σ_e m_e c_e without the factor E: 1/E at perfect balance instead of 1",
       names=[r"(factor|times|multipl\w*)[^.?;]{0,15}\bE\b", r"\bE\b[^.?;]{0,30}(missing|forgot\w*|left out|dropped)",
              r"(missing|forgot\w*|without)[^.?;]{0,20}(the )?(factor )?\bE\b",
              r"1\s*/\s*E\b[^.?;]{0,40}(balance|instead|not 1)",
              r"(number of experts)[^.?;]{0,30}(too small|missing|factor|times)"])
def lb_loss_no_E(probs, indices):
    S, E = probs.shape
    mean_gate = probs.mean(dim=0)
    fraction = F.one_hot(indices[:, 0], E).to(probs.dtype).mean(dim=0)
    return (mean_gate * fraction).sum()


@wrong("3.6", "E² · Σ_e m_e c_e: GShard's E² used with a sum instead of a mean over experts (E times too large)",
       names=[r"E\s*(²|\^\s*2|\*\*\s*2|\s*\*\s*E|\s*[·×]\s*E)", r"(E|number of experts) times too (large|big|high)",
              r"(factor|times)[^.?;]{0,20}\bE\b[^.?;]{0,30}(twice|once|extra|too many|two times)",
              r"(once|twice)[^.?;]{0,30}\bE\b|\bE\b[^.?;]{0,30}(once|twice)",
              r"(mean|average)[^.?;]{0,30}(not|instead of|rather than)[^.?;]{0,10}sum|sum[^.?;]{0,30}(not|instead of|rather than)[^.?;]{0,10}mean"])
def lb_loss_E_squared(probs, indices):
    S, E = probs.shape
    mean_gate = probs.mean(dim=0)
    fraction = F.one_hot(indices[:, 0], E).to(probs.dtype).mean(dim=0)
    return E * E * (mean_gate * fraction).sum()


@wrong("3.6", "m_e = probs.sum(dim=0): the gate probabilities summed over the tokens, not averaged (S times too large)",
       names=[r"\bS\b times too (large|big)|(factor|times)[^.?;]{0,15}\bS\b",
              r"(sum|summed)[^.?;]{0,30}(not|instead of|rather than)[^.?;]{0,10}(mean|averag)",
              r"(mean|averag\w*)[^.?;]{0,40}(over|across) (the )?tokens", r"1\s*/\s*S\b|divid\w*[^.?;]{0,20}\bS\b",
              r"m_e[^.?;]{0,40}(summed|sum instead|not averaged|S times)"])
def lb_loss_sum_gate(probs, indices):
    S, E = probs.shape
    mean_gate = probs.sum(dim=0)
    fraction = F.one_hot(indices[:, 0], E).to(probs.dtype).mean(dim=0)
    return E * (mean_gate * fraction).sum()


# ----- Exercise 3.7: an MoE transformer block ------------------------------------------------------------------

@wrong("3.7", "no causal mask on the attention: each token attends to later tokens",
       names=[r"causal (mask|attention)[^.?]{0,30}(missing|forgot|absent|not|without)|(missing|forgot\w*|without|no) (the )?causal", r"(future|later|next) (tokens?|positions?)", r"attn_mask|mask\w*[^.?;]{0,30}(missing|forgot\w*|no\b|without)",
              r"(missing|forgot\w*|no|without)[^.?;]{0,20}mask", r"\btriu\b|upper[- ]triangular",
              r"(leak\w*|depends? on|changes? with)[^.?;]{0,40}(future|later)"])
class MoEBlockNoMask(nn.Module):
    def __init__(self, d_model, n_heads, d_hidden, num_experts, k=2, capacity_factor=1.25):
        super().__init__()
        self.k, self.capacity_factor = k, capacity_factor
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.attention = nn.MultiheadAttention(d_model, n_heads, batch_first=True)
        self.router = nn.Linear(d_model, num_experts, bias=False)  # W_g of eq. (3.1)
        self.experts = nn.ModuleList(moe.FeedForward(d_model, d_hidden) for _ in range(num_experts))

    def forward(self, x):
        B, T, D = x.shape
        h = self.norm1(x)
        x = x + self.attention(h, h, h, need_weights=False)[0]
        tokens = self.norm2(x).reshape(B * T, D)
        probs, weights, indices = top_k_gating(self.router(tokens), self.k)
        positions, keep, capacity = capacity_positions(indices, len(self.experts), self.capacity_factor)
        dispatch, combine = dispatch_combine(weights, indices, positions, keep, len(self.experts), capacity)
        y = moe_einsum(tokens, dispatch, combine, self.experts)
        return x + y.reshape(B, T, D), load_balancing_loss(probs, indices)


@wrong("3.7", "causal mask passed as a float 0/1 matrix: nn.MultiheadAttention ADDS a float mask, so future scores "
              "get +1 instead of −∞",
       names=[r"float[^.?;]{0,40}(mask|added|additive)|(mask|additive)[^.?;]{0,40}float",
              r"additive", r"\bbool\w*[^.?;]{0,30}mask|mask[^.?;]{0,30}\bbool",
              r"(−|-)\s*(∞|inf)[^.?]{0,40}(instead|not|rather|blocked|masked)|(float|0/1)[^.?]{0,30}mask[^.?]{0,30}(add|−\s*∞|-inf)", r"(future|later) (tokens?|positions?)[^.?;]{0,40}(not masked|attend|visible|leak|weight)",
              r"causal[^.?;]{0,40}(not|isn't|is not|fails|broken|leak)"])
class MoEBlockFloatMask(nn.Module):
    def __init__(self, d_model, n_heads, d_hidden, num_experts, k=2, capacity_factor=1.25):
        super().__init__()
        self.k, self.capacity_factor = k, capacity_factor
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.attention = nn.MultiheadAttention(d_model, n_heads, batch_first=True)
        self.router = nn.Linear(d_model, num_experts, bias=False)  # W_g of eq. (3.1)
        self.experts = nn.ModuleList(moe.FeedForward(d_model, d_hidden) for _ in range(num_experts))

    def forward(self, x):
        B, T, D = x.shape
        h = self.norm1(x)
        causal = torch.triu(torch.ones(T, T, dtype=x.dtype, device=x.device), diagonal=1)  # 1 above the diagonal
        x = x + self.attention(h, h, h, attn_mask=causal, need_weights=False)[0]
        tokens = self.norm2(x).reshape(B * T, D)
        probs, weights, indices = top_k_gating(self.router(tokens), self.k)
        positions, keep, capacity = capacity_positions(indices, len(self.experts), self.capacity_factor)
        dispatch, combine = dispatch_combine(weights, indices, positions, keep, len(self.experts), capacity)
        y = moe_einsum(tokens, dispatch, combine, self.experts)
        return x + y.reshape(B, T, D), load_balancing_loss(probs, indices)


@wrong("3.7", "returns LN2(x) + y: the MoE output added to the normalised x instead of the post-attention x",
       names=[r"(normali[sz]ed|LN_?2|norm2)[^.?;]{0,40}(instead of|not|rather than)",
              r"(post-?attention|un-?normali[sz]ed|the residual stream)\s*x?",
              r"(add|residual)\w*[^.?;]{0,40}(normali[sz]ed|LN_?2|norm2)",
              r"(residual|skip)[^.?;]{0,30}(wrong (x|input|tensor)|from the normali[sz]ed)",
              r"(dropped|unprocessed) tokens?[^.?;]{0,40}(keep|unchanged|x\b|normali[sz]ed)"])
class MoEBlockNormResidual(nn.Module):
    def __init__(self, d_model, n_heads, d_hidden, num_experts, k=2, capacity_factor=1.25):
        super().__init__()
        self.k, self.capacity_factor = k, capacity_factor
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.attention = nn.MultiheadAttention(d_model, n_heads, batch_first=True)
        self.router = nn.Linear(d_model, num_experts, bias=False)  # W_g of eq. (3.1)
        self.experts = nn.ModuleList(moe.FeedForward(d_model, d_hidden) for _ in range(num_experts))

    def forward(self, x):
        B, T, D = x.shape
        h = self.norm1(x)
        causal = torch.triu(torch.ones(T, T, dtype=torch.bool, device=x.device), diagonal=1)
        x = x + self.attention(h, h, h, attn_mask=causal, need_weights=False)[0]
        h2 = self.norm2(x)
        tokens = h2.reshape(B * T, D)
        probs, weights, indices = top_k_gating(self.router(tokens), self.k)
        positions, keep, capacity = capacity_positions(indices, len(self.experts), self.capacity_factor)
        dispatch, combine = dispatch_combine(weights, indices, positions, keep, len(self.experts), capacity)
        y = moe_einsum(tokens, dispatch, combine, self.experts)
        return h2 + y.reshape(B, T, D), load_balancing_loss(probs, indices)


@wrong("3.7", "routes each sequence as its own group (capacity from T tokens, ℓ_aux averaged over the batch) instead "
              "of all B·T tokens as one group",
       names=[r"(one|a single|the same) (routing )?group", r"\bB\s*[·*×]?\s*T\b[^.?;]{0,40}(tokens|together|group|at once)",
              r"(each|every|per)[- ](sequence|batch element|example|row of the batch)[^.?]{0,40}(rout|group|own)",
              r"capacity[^.?;]{0,40}(\bT\b tokens|per sequence|all (the )?tokens|whole batch|B\s*[·*]?\s*T)",
              r"(flatten|reshape)\w*[^.?;]{0,40}(B\s*[·*]\s*T|batch)"])
class MoEBlockPerSequence(nn.Module):
    def __init__(self, d_model, n_heads, d_hidden, num_experts, k=2, capacity_factor=1.25):
        super().__init__()
        self.k, self.capacity_factor = k, capacity_factor
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.attention = nn.MultiheadAttention(d_model, n_heads, batch_first=True)
        self.router = nn.Linear(d_model, num_experts, bias=False)  # W_g of eq. (3.1)
        self.experts = nn.ModuleList(moe.FeedForward(d_model, d_hidden) for _ in range(num_experts))

    def forward(self, x):
        B, T, D = x.shape
        h = self.norm1(x)
        causal = torch.triu(torch.ones(T, T, dtype=torch.bool, device=x.device), diagonal=1)
        x = x + self.attention(h, h, h, attn_mask=causal, need_weights=False)[0]
        h2 = self.norm2(x)
        outputs, losses = [], []
        for b in range(B):  # one routing group per sequence
            tokens = h2[b]  # (T, D)
            probs, weights, indices = top_k_gating(self.router(tokens), self.k)
            positions, keep, capacity = capacity_positions(indices, len(self.experts), self.capacity_factor)
            dispatch, combine = dispatch_combine(weights, indices, positions, keep, len(self.experts), capacity)
            y = moe_einsum(tokens, dispatch, combine, self.experts)
            outputs.append(y)
            losses.append(load_balancing_loss(probs, indices))
        return x + torch.stack(outputs), torch.stack(losses).mean()
