"""The Switch Transformer (Fedus et al., 2021) at laptop scale, on the shared routing code of ``utils.moe`` (k = 1).

What Chapter 06 adds to Chapter 03's routing: the router z-loss, selective precision (the router in float32 while
the rest may run in bfloat16), the Switch initialisation (truncated normal, std √(scale / fan_in), scale 0.1), a
small causal language model whose feed-forward layers are Switch layers or dense ones (its dense twin, at equal
FLOPs per token), and memory measurement of one training step.

    layer = SwitchFFN(d_model=64, d_hidden=128, num_experts=8, capacity_factor=1.25)
    y, routing, z_loss = layer(x)              # x: (..., D); routing: utils.moe.Routing with k = 1
    model = SwitchLM(LMConfig(vocab_size=V, num_experts=8))
    logits, aux_loss, z_loss = model(tokens)   # tokens: (B, T) -> logits (B, T, V)

Axes: B batch, T positions, D model width, F an expert's hidden width, E experts, S = B·T tokens, V vocabulary.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from utils import moe

__all__ = ["LMConfig", "SwitchFFN", "SwitchLM", "memory_of_training_step", "router_z_loss", "switch_init_"]


def router_z_loss(logits: torch.Tensor) -> torch.Tensor:
    """ST-MoE's router z-loss, (1/S) Σ_s (log Σ_e exp x_se)². ``logits``: (S, E) → a scalar."""
    return torch.logsumexp(logits, dim=-1).square().mean()


def switch_init_(module: nn.Module, scale: float = 0.1) -> nn.Module:
    """Switch's initialisation, in place: every Linear and Embedding weight from a normal truncated at ±2σ with
    σ = √(scale / fan_in) (fan_in: a Linear's input width; for an Embedding its width D); biases 0."""
    for layer in module.modules():
        if isinstance(layer, nn.Linear):
            std = math.sqrt(scale / layer.in_features)
            nn.init.trunc_normal_(layer.weight, std=std, a=-2 * std, b=2 * std)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        elif isinstance(layer, nn.Embedding):
            std = math.sqrt(scale / layer.embedding_dim)
            nn.init.trunc_normal_(layer.weight, std=std, a=-2 * std, b=2 * std)
    return module


class SwitchFFN(nn.Module):
    """A router (D → E, no bias, kept in ``router_dtype``) and E experts; top-1 routing with capacity (eq. 6.1).

    ``forward(x)`` → ``(y, routing, z_loss)``: y has x's shape and dtype (0 for a dropped token: add the residual
    outside); ``routing.aux_loss`` is the load-balancing loss N · Σ f_i P_i; ``z_loss`` the router z-loss.
    ``router_dtype=None`` computes the router in x's dtype (what selective precision avoids)."""

    def __init__(self, d_model: int, d_hidden: int, num_experts: int, capacity_factor: float | None = 1.25,
                 router_dtype: torch.dtype | None = torch.float32):
        super().__init__()
        self.capacity_factor, self.router_dtype = capacity_factor, router_dtype
        self.router = nn.Linear(d_model, num_experts, bias=False)
        self.experts = nn.ModuleList(moe.FeedForward(d_model, d_hidden) for _ in range(num_experts))

    def forward(self, x: torch.Tensor):
        tokens = x.reshape(-1, x.shape[-1])  # (S, D)
        dtype = self.router_dtype or x.dtype
        logits = F.linear(tokens.to(dtype), self.router.weight.to(dtype))  # (S, E) in float32: selective precision
        routing = moe.route(logits, k=1, capacity_factor=self.capacity_factor)
        y = moe.moe_forward_indexed(tokens, routing, self.experts)  # (S, D)
        return y.reshape(x.shape), routing, router_z_loss(logits)


@dataclass
class LMConfig:
    """A small causal character-level transformer; ``num_experts=0`` is the dense twin (FFN of width d_hidden,
    the same FLOPs per token as a Switch layer with experts of that width)."""

    vocab_size: int = 96
    context: int = 64  # T
    d_model: int = 64  # D
    n_heads: int = 4  # H
    n_layers: int = 2
    d_hidden: int = 128  # F: the dense FFN's width, and each expert's
    num_experts: int = 0  # E; 0 = dense
    capacity_factor: float | None = 1.25
    router_dtype: torch.dtype | None = torch.float32
    init_scale: float = 0.1  # Switch's smaller initialisation; 1.0 is the usual fan-in scaling


class Block(nn.Module):
    """Pre-norm: x + attention(LN(x)), then x + FFN(LN(x)); the FFN is dense or Switch."""

    def __init__(self, cfg: LMConfig):
        super().__init__()
        self.n_heads = cfg.n_heads
        self.norm1, self.norm2 = nn.LayerNorm(cfg.d_model), nn.LayerNorm(cfg.d_model)
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model)
        self.ffn = (SwitchFFN(cfg.d_model, cfg.d_hidden, cfg.num_experts, cfg.capacity_factor, cfg.router_dtype)
                    if cfg.num_experts else moe.FeedForward(cfg.d_model, cfg.d_hidden))

    def forward(self, x):  # (B, T, D) -> (B, T, D), routing or None, z-loss
        B, T, D = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(B, T, 3, self.n_heads, D // self.n_heads).unbind(2)  # (B, T, H, Dh)
        attention = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                                   is_causal=True)  # (B, H, T, Dh)
        x = x + self.proj(attention.transpose(1, 2).reshape(B, T, D))
        out = self.ffn(self.norm2(x))
        if isinstance(out, tuple):
            y, routing, z_loss = out
            return x + y, routing, z_loss
        return x + out, None, x.new_zeros(())


class SwitchLM(nn.Module):
    """Token and position embeddings, ``n_layers`` blocks, a final LayerNorm and a linear read-out.

    ``forward(tokens)`` → ``(logits, aux_loss, z_loss)``, the two losses summed over the Switch layers (0 for the
    dense twin); ``self.routings`` holds the last forward's routing decision per Switch layer."""

    def __init__(self, cfg: LMConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.position = nn.Embedding(cfg.context, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.norm = nn.LayerNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size)
        switch_init_(self, cfg.init_scale)
        self.routings: list[moe.Routing] = []

    def forward(self, tokens: torch.Tensor):
        B, T = tokens.shape
        x = self.embed(tokens) + self.position(torch.arange(T, device=tokens.device))  # (B, T, D)
        aux_loss = z_loss = x.new_zeros(())
        self.routings = []
        for block in self.blocks:
            x, routing, z = block(x)
            if routing is not None:
                self.routings.append(routing)
                aux_loss, z_loss = aux_loss + routing.aux_loss, z_loss + z
        return self.head(self.norm(x)), aux_loss, z_loss


def flops_per_token(cfg: LMConfig) -> int:
    """Forward multiply-adds × 2 per token of the matrix products (biases, norms and softmax left out): attention
    projections 4D², attention scores and values 2·T·D (causal: half, T/2 on average), FFN 2·D·F (one expert),
    router D·E, read-out D·V."""
    D, F_, T, E = cfg.d_model, cfg.d_hidden, cfg.context, cfg.num_experts
    per_layer = 4 * D * D + 2 * (T // 2) * D + 2 * D * F_ + D * E
    return 2 * (cfg.n_layers * per_layer + D * cfg.vocab_size)


def memory_of_training_step(model: nn.Module, optimizer: torch.optim.Optimizer, loss_fn, *batch) -> dict:
    """Measure one training step's memory, in bytes: ``parameters`` (every parameter's storage), ``optimizer``
    (the optimizer's state tensors after the step), ``activations`` (the tensors autograd saved for the backward
    pass, each storage counted once, through ``torch.autograd.graph.saved_tensors_hooks``) and ``peak`` (the most
    bytes alive at once during forward, backward and the optimizer step, on top of what existed before — counted
    from every tensor allocation on a CPU, ``torch.cuda.max_memory_allocated`` on a GPU — plus parameters and
    optimizer state). ``loss_fn(model, *batch)`` → scalar loss."""
    from utils.bench import _LiveTensorBytes

    parameters = sum(p.numel() * p.element_size() for p in model.parameters())
    saved: dict[int, int] = {}
    weights = {p.untyped_storage().data_ptr() for p in model.parameters()}

    def pack(tensor):  # every tensor autograd keeps for the backward pass; the parameters are not activations
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in weights:
            saved.setdefault(storage.data_ptr(), storage.nbytes())
        return tensor

    optimizer.zero_grad(set_to_none=True)
    cuda = next(model.parameters()).device.type == "cuda"
    before_state = sum(t.numel() * t.element_size() for s in optimizer.state.values() for t in s.values()
                       if isinstance(t, torch.Tensor))
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        start = torch.cuda.memory_allocated()
    tracker = _LiveTensorBytes()
    with tracker if not cuda else _Nothing():
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            loss = loss_fn(model, *batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        del loss
    if cuda:
        torch.cuda.synchronize()
        extra = torch.cuda.max_memory_allocated() - start
    else:
        extra = tracker.peak
    state = sum(t.numel() * t.element_size() for s in optimizer.state.values() for t in s.values()
                if isinstance(t, torch.Tensor))
    return {"parameters": parameters, "optimizer": state, "activations": sum(saved.values()),
            "peak": parameters + before_state + extra}


class _Nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
