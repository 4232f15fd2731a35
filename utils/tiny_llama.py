"""A tiny LLaMA-architecture language model (Chapter 12): RMSNorm, rotary position embeddings (RoPE), SwiGLU and
grouped-query attention (GQA), with a key/value cache for incremental decoding.

The parameter names are Hugging Face's ``LlamaForCausalLM`` names without the ``model.`` prefix, so
:func:`from_pretrained` loads real TinyLlama weights (when the hub is reachable) into the same code that the chapter
trains offline on Python's own documentation, byte by byte::

    config = LlamaConfig(dim=128, n_layers=2, n_heads=4, n_kv_heads=2)
    model = TinyLlama(config)
    logits, caches = model(tokens)                         # prefill: (B, T, V), one (k, v) per layer
    logits, caches = model(next_token, start_pos=T, caches=caches)   # one decoding step

Axes: B batch, T tokens, D model width, H query heads, H_kv key/value heads, Dh head width, F the SwiGLU width,
V the vocabulary, L layers. Keys in the cache are stored *after* RoPE, as llama.cpp and Hugging Face do.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, fields

import torch
import torch.nn as nn
import torch.nn.functional as F

Cache = tuple[torch.Tensor, torch.Tensor]  # (k, v), each (B, H_kv, T_past, Dh)


@dataclass
class LlamaConfig:
    vocab_size: int = 256  # V: one token per byte
    dim: int = 128  # D
    n_layers: int = 2  # L
    n_heads: int = 4  # H: query heads
    n_kv_heads: int = 2  # H_kv: key/value heads (H_kv = H is multi-head attention, 1 is multi-query)
    hidden_dim: int = 352  # F: SwiGLU width (LLaMA: about 8/3·D, rounded up)
    max_seq_len: int = 512
    rope_theta: float = 10_000.0
    norm_eps: float = 1e-5

    @property
    def head_dim(self) -> int:  # Dh
        return self.dim // self.n_heads

    def n_params(self) -> int:
        D, F_, V, L, Dh = self.dim, self.hidden_dim, self.vocab_size, self.n_layers, self.head_dim
        attention = D * (self.n_heads * Dh) * 2 + D * (self.n_kv_heads * Dh) * 2
        return 2 * V * D + D + L * (attention + 3 * D * F_ + 2 * D)


# ---------------------------------------------------------------------------------------------- the pieces
def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """x / sqrt(mean(x², last axis) + eps) · weight, computed in float32 (eq. 12.9)."""
    x32 = x.float()
    return (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype) * weight


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        return rms_norm(x, self.weight, self.eps)


def rope_tables(head_dim: int, max_seq_len: int, theta: float = 10_000.0) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of position·frequency, each (max_seq_len, Dh), in the rotate-half layout of Hugging Face."""
    frequencies = theta ** (-torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)  # (Dh/2,)
    angles = torch.arange(max_seq_len, dtype=torch.float64)[:, None] * frequencies[None]  # (T_max, Dh/2)
    angles = torch.cat([angles, angles], dim=-1)  # (T_max, Dh)
    return angles.cos().float(), angles.sin().float()


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat([-x[..., half:], x[..., :half]], dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, start_pos: int = 0) -> torch.Tensor:
    """Rotate (B, H, T, Dh) queries or keys by the angles of positions start_pos … start_pos + T − 1."""
    T = x.shape[-2]
    cos, sin = cos[start_pos:start_pos + T].to(x.dtype), sin[start_pos:start_pos + T].to(x.dtype)  # (T, Dh)
    return x * cos + rotate_half(x) * sin


def repeat_kv(x: torch.Tensor, n_rep: int) -> torch.Tensor:
    """(B, H_kv, T, Dh) → (B, H_kv·n_rep, T, Dh): query head h reads key/value head h // n_rep (eq. 12.7)."""
    return x if n_rep == 1 else x.repeat_interleave(n_rep, dim=1)


def causal_mask(T_new: int, T_total: int, device=None) -> torch.Tensor:
    """(T_new, T_total) booleans, True where query i (at position T_total − T_new + i) may see key j."""
    offset = T_total - T_new
    return torch.arange(T_total, device=device)[None] <= (torch.arange(T_new, device=device)[:, None] + offset)


class Attention(nn.Module):
    def __init__(self, config: LlamaConfig):
        super().__init__()
        self.n_heads, self.n_kv_heads, self.head_dim = config.n_heads, config.n_kv_heads, config.head_dim
        D, Dh = config.dim, config.head_dim
        self.q_proj = nn.Linear(D, config.n_heads * Dh, bias=False)
        self.k_proj = nn.Linear(D, config.n_kv_heads * Dh, bias=False)
        self.v_proj = nn.Linear(D, config.n_kv_heads * Dh, bias=False)
        self.o_proj = nn.Linear(config.n_heads * Dh, D, bias=False)

    def project(self, x: torch.Tensor, cos, sin, start_pos: int):
        """q (B, H, T, Dh) and the new k, v (B, H_kv, T, Dh), with RoPE applied at positions start_pos …"""
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, self.n_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(B, T, self.n_kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(B, T, self.n_kv_heads, self.head_dim).transpose(1, 2)
        return apply_rope(q, cos, sin, start_pos), apply_rope(k, cos, sin, start_pos), v

    def attend(self, q, k, v, mask=None):
        """softmax(q kᵀ/√Dh + causal) v with GQA; q (B, H, T, Dh), k and v (B, H_kv, T_total, Dh) → (B, T, H·Dh)."""
        B, H, T, Dh = q.shape
        n_rep = H // k.shape[1]
        k, v = repeat_kv(k, n_rep), repeat_kv(v, n_rep)
        if mask is None:
            mask = causal_mask(T, k.shape[2], q.device)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (B, H, T, Dh)
        return self.o_proj(out.transpose(1, 2).reshape(B, T, H * Dh))

    def forward(self, x, cos, sin, start_pos: int = 0, cache: Cache | None = None):
        q, k, v = self.project(x, cos, sin, start_pos)
        if cache is not None:
            k, v = torch.cat([cache[0], k], dim=2), torch.cat([cache[1], v], dim=2)  # along T
        return self.attend(q, k, v), (k, v)


class FeedForward(nn.Module):
    def __init__(self, config: LlamaConfig):
        super().__init__()
        self.gate_proj = nn.Linear(config.dim, config.hidden_dim, bias=False)
        self.up_proj = nn.Linear(config.dim, config.hidden_dim, bias=False)
        self.down_proj = nn.Linear(config.hidden_dim, config.dim, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))  # SwiGLU


class Block(nn.Module):
    def __init__(self, config: LlamaConfig):
        super().__init__()
        self.input_layernorm = RMSNorm(config.dim, config.norm_eps)
        self.self_attn = Attention(config)
        self.post_attention_layernorm = RMSNorm(config.dim, config.norm_eps)
        self.mlp = FeedForward(config)

    def forward(self, x, cos, sin, start_pos=0, cache=None):
        attended, cache = self.self_attn(self.input_layernorm(x), cos, sin, start_pos, cache)
        x = x + attended
        return x + self.mlp(self.post_attention_layernorm(x)), cache


class TinyLlama(nn.Module):
    """The LLaMA architecture. ``forward(tokens, start_pos, caches)`` → (logits (B, T, V), new caches)."""

    def __init__(self, config: LlamaConfig):
        super().__init__()
        self.config = config
        self.embed_tokens = nn.Embedding(config.vocab_size, config.dim)
        self.layers = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.norm = RMSNorm(config.dim, config.norm_eps)
        self.lm_head = nn.Linear(config.dim, config.vocab_size, bias=False)
        cos, sin = rope_tables(config.head_dim, config.max_seq_len, config.rope_theta)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        self.apply(self._init)

    @staticmethod
    def _init(module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)

    def forward(self, tokens: torch.Tensor, start_pos: int = 0, caches: list[Cache] | None = None):
        x = self.embed_tokens(tokens)  # (B, T, D)
        new_caches = []
        for i, layer in enumerate(self.layers):
            x, cache = layer(x, self.rope_cos, self.rope_sin, start_pos, None if caches is None else caches[i])
            new_caches.append(cache)
        return self.lm_head(self.norm(x)), new_caches


# ---------------------------------------------------------------------------------------------- decoding
@torch.no_grad()
def generate(model: TinyLlama, prompt: torch.Tensor, n_new: int, *, use_cache: bool = True,
             temperature: float = 0.0, seed: int = 0, on_token=None) -> torch.Tensor:
    """Greedy (temperature 0) or sampled continuation of ``prompt`` (B, T). Without the cache every step runs the
    whole sequence again. ``on_token(token_id, step)`` is called as each token is made (for streaming)."""
    generator = torch.Generator().manual_seed(seed)
    tokens, caches = prompt, None
    logits, caches = model(prompt)
    for step in range(n_new):
        last = logits[:, -1]
        if temperature > 0:
            nxt = torch.multinomial(F.softmax(last / temperature, -1), 1, generator=generator)
        else:
            nxt = last.argmax(-1, keepdim=True)
        tokens = torch.cat([tokens, nxt], dim=1)
        if on_token is not None:
            on_token(int(nxt[0, 0]), step)
        if step == n_new - 1:
            break
        if use_cache:
            logits, caches = model(nxt, start_pos=tokens.shape[1] - 1, caches=caches)
        else:
            logits, _ = model(tokens)
    return tokens


def encode(text: str) -> torch.Tensor:
    """Bytes as token ids (V = 256), shape (1, T)."""
    return torch.tensor(list(text.encode("utf-8")), dtype=torch.long)[None]


def decode(tokens) -> str:
    return bytes(int(t) for t in tokens).decode("utf-8", errors="replace")


def corpus() -> torch.Tensor:
    """Python's documentation topics (pydoc_data, ~465k characters, in every Python install) as bytes, (N,)."""
    from pydoc_data.topics import topics

    text = "\n\n".join(topics[key] for key in sorted(topics))
    return torch.frombuffer(bytearray(text.encode("utf-8")), dtype=torch.uint8).long()


def train(model: TinyLlama, data: torch.Tensor, *, seconds: float, batch_size: int = 16, seq_len: int = 128,
          lr: float = 3e-3, seed: int = 0, max_steps: int = 10_000) -> list[float]:
    """Next-byte prediction with AdamW for ``seconds`` of wall-clock time (or ``max_steps``); the losses."""
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0, betas=(0.9, 0.95))
    losses, start = [], time.perf_counter()
    model.train()
    while time.perf_counter() - start < seconds and len(losses) < max_steps:
        starts = torch.randint(0, len(data) - seq_len - 1, (batch_size,), generator=generator)
        window = torch.stack([data[s:s + seq_len + 1] for s in starts.tolist()])
        logits, _ = model(window[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), window[:, 1:].reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.item())
    model.eval()
    return losses


# ---------------------------------------------------------------------------------------------- weight-only int8
class Int8Linear(nn.Module):
    """y = x Wᵀ with W stored as int8 and one float scale per output channel (row): W ≈ scale · W_int8."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        weight = linear.weight.detach().float()
        scale = weight.abs().amax(dim=1).clamp(min=1e-12) / 127  # (out,)
        self.register_buffer("weight_int8", torch.round(weight / scale[:, None]).clamp(-127, 127).to(torch.int8))
        self.register_buffer("scale", scale)

    def forward(self, x):
        shape = x.shape
        y = torch._weight_int8pack_mm(x.reshape(-1, shape[-1]), self.weight_int8, self.scale)
        return y.reshape(*shape[:-1], -1)


def quantize_int8(model: TinyLlama) -> TinyLlama:
    """The model with every linear layer of its blocks and its head replaced by :class:`Int8Linear` (in place)."""
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, nn.Linear):
                setattr(module, child_name, Int8Linear(child))
    return model


# ---------------------------------------------------------------------------------------------- real weights
def from_pretrained(repo: str = "TinyLlama/TinyLlama-1.1B-Chat-v1.0") -> TinyLlama:
    """Real TinyLlama (1.1B parameters, 22 layers, D = 2048, H = 32, H_kv = 4) from the Hugging Face hub, loaded into
    :class:`TinyLlama`. Needs the network (ask ``utils.data.hub_reachable()`` first) and the ``safetensors`` package;
    the course never calls it offline. Its tokenizer is not byte-level: use ``transformers.AutoTokenizer(repo)``."""
    import json

    from huggingface_hub import hf_hub_download
    from safetensors.torch import load_file

    with open(hf_hub_download(repo, "config.json")) as file:
        hf = json.load(file)
    config = LlamaConfig(vocab_size=hf["vocab_size"], dim=hf["hidden_size"], n_layers=hf["num_hidden_layers"],
                         n_heads=hf["num_attention_heads"], n_kv_heads=hf["num_key_value_heads"],
                         hidden_dim=hf["intermediate_size"], max_seq_len=hf["max_position_embeddings"],
                         rope_theta=hf.get("rope_theta", 10_000.0), norm_eps=hf["rms_norm_eps"])
    state = load_file(hf_hub_download(repo, "model.safetensors"))
    model = TinyLlama(config)
    model.load_state_dict({key.removeprefix("model."): value.float() for key, value in state.items()})
    return model.eval()


# ---------------------------------------------------------------------------------------------- GGUF (llama.cpp)
def gguf_permute(weight: torch.Tensor, n_heads: int) -> torch.Tensor:
    """Hugging Face's rotate-half q/k rows → the interleaved-pairs order that llama.cpp's RoPE expects (the
    permutation of llama.cpp's convert_hf_to_gguf.py)."""
    return weight.reshape(n_heads, 2, weight.shape[0] // n_heads // 2, *weight.shape[1:]).swapaxes(1, 2) \
        .reshape(weight.shape)


def gguf_unpermute(weight: torch.Tensor, n_heads: int) -> torch.Tensor:
    return weight.reshape(n_heads, weight.shape[0] // n_heads // 2, 2, *weight.shape[1:]).swapaxes(1, 2) \
        .reshape(weight.shape)


GGUF_NAMES = {"embed_tokens.weight": "token_embd.weight", "norm.weight": "output_norm.weight",
              "lm_head.weight": "output.weight"}
GGUF_LAYER_NAMES = {"input_layernorm.weight": "attn_norm.weight", "self_attn.q_proj.weight": "attn_q.weight",
                    "self_attn.k_proj.weight": "attn_k.weight", "self_attn.v_proj.weight": "attn_v.weight",
                    "self_attn.o_proj.weight": "attn_output.weight", "post_attention_layernorm.weight":
                    "ffn_norm.weight", "mlp.gate_proj.weight": "ffn_gate.weight", "mlp.up_proj.weight":
                    "ffn_up.weight", "mlp.down_proj.weight": "ffn_down.weight"}


def gguf_name(name: str) -> str:
    """Our parameter name → llama.cpp's tensor name ("layers.0.mlp.up_proj.weight" → "blk.0.ffn_up.weight")."""
    if name in GGUF_NAMES:
        return GGUF_NAMES[name]
    _, index, rest = name.split(".", 2)
    return f"blk.{index}.{GGUF_LAYER_NAMES[rest]}"


def gguf_tensors(model: TinyLlama) -> dict[str, torch.Tensor]:
    """llama.cpp's name → the float32 tensor written for it (q and k rows permuted to llama.cpp's RoPE order)."""
    config, tensors = model.config, {}
    for name, value in model.state_dict().items():
        value = value.detach().float()
        if name.endswith("q_proj.weight"):
            value = gguf_permute(value, config.n_heads)
        elif name.endswith("k_proj.weight"):
            value = gguf_permute(value, config.n_kv_heads)
        tensors[gguf_name(name)] = value
    return tensors


def write_gguf(model: TinyLlama, path) -> dict[str, torch.Tensor]:
    """Write ``model`` as a llama.cpp GGUF file (architecture "llama", float32, a byte-level vocabulary)."""
    import gguf
    import numpy as np

    config = model.config
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("course-tiny-llama")
    writer.add_context_length(config.max_seq_len)
    writer.add_embedding_length(config.dim)
    writer.add_block_count(config.n_layers)
    writer.add_feed_forward_length(config.hidden_dim)
    writer.add_head_count(config.n_heads)
    writer.add_head_count_kv(config.n_kv_heads)
    writer.add_rope_dimension_count(config.head_dim)
    writer.add_rope_freq_base(config.rope_theta)
    writer.add_layer_norm_rms_eps(config.norm_eps)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    # The vocabulary: 256 byte tokens, in llama.cpp's SentencePiece form "<0xNN>" (type BYTE).
    writer.add_tokenizer_model("llama")
    writer.add_token_list([f"<0x{i:02X}>" for i in range(config.vocab_size)])
    writer.add_token_scores([0.0] * config.vocab_size)
    writer.add_token_types([gguf.TokenType.BYTE] * config.vocab_size)
    writer.add_bos_token_id(ord("\n"))
    writer.add_eos_token_id(0)
    tensors = gguf_tensors(model)
    for name, value in tensors.items():
        writer.add_tensor(name, value.numpy().astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return tensors


def read_gguf(path) -> tuple[dict, dict[str, torch.Tensor]]:
    """(metadata fields by name → value, tensors by name, in PyTorch's (out, in) shape) read back with gguf's reader."""
    import gguf

    reader = gguf.GGUFReader(str(path))
    metadata = {}
    for name, field in reader.fields.items():
        if field.types and field.types[0] == gguf.GGUFValueType.ARRAY:
            continue
        value = field.parts[field.data[0]] if field.data else None
        if value is not None and field.types[0] == gguf.GGUFValueType.STRING:
            value = bytes(value).decode("utf-8")
        elif value is not None:
            value = value.tolist()[0] if hasattr(value, "tolist") else value
        metadata[name] = value
    tensors = {}
    for tensor in reader.tensors:
        shape = tuple(int(s) for s in reversed(tensor.shape.tolist()))  # GGUF lists the fastest axis first
        tensors[tensor.name] = torch.from_numpy(tensor.data.copy()).reshape(shape)
    return metadata, tensors


def config_dict(config: LlamaConfig) -> dict:
    return {f.name: getattr(config, f.name) for f in fields(config)}


def bytes_per_token(config: LlamaConfig, bytes_per_weight: float, T: int = 0, bytes_per_value: float = 4) -> float:
    """Bytes read from memory to decode one token at batch 1 (eq. 12.3): every weight once (the embedding table
    only one row), plus the KV cache of T past tokens."""
    D, V = config.dim, config.vocab_size
    weights = config.n_params() - V * D + D  # the embedding table is read one row per token
    cache = 2 * config.n_layers * config.n_kv_heads * config.head_dim * T * bytes_per_value
    return weights * bytes_per_weight + cache


def flops_per_token(config: LlamaConfig, T: int = 0) -> float:
    """Multiply-adds ×2 to decode one token (eq. 12.2): 2 per weight of the matmuls, plus attention over T tokens."""
    matmul_weights = config.n_params() - 2 * config.vocab_size * config.dim + config.vocab_size * config.dim
    attention = 2 * 2 * config.n_layers * config.n_heads * config.head_dim * T
    return 2 * matmul_weights + attention


def memory_bandwidth(n_bytes: int = 256 * 2**20, repeats: int = 5) -> float:
    """Bytes per second of one large tensor copy (reads n_bytes, writes n_bytes): the fastest of ``repeats``, since
    a bound is what the memory can do at best (a copy slowed by another process would understate it)."""
    source = torch.ones(n_bytes // 4)
    target = torch.empty_like(source)
    target.copy_(source)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        target.copy_(source)
        times.append(time.perf_counter() - start)
    return 2 * n_bytes / min(times)




# ---------------------------------------------------------------------------------------------- a static-shape step
def write_cache(cache: torch.Tensor, new: torch.Tensor, position: torch.Tensor) -> torch.Tensor:
    """``cache`` (B, H_kv, T_max, Dh) with ``new`` (B, H_kv, 1, Dh) written at time index ``position`` ((1,) int64),
    functionally (a new tensor; ONNX exports it as ScatterND)."""
    return cache.index_copy(2, position, new)


class StaticCacheStep(nn.Module):
    """One decoding step with shapes that never change, as an on-device runtime wants them:

    (token (B, 1) int64, position (1,) int64, k_cache, v_cache (L, B, H_kv, T_max, Dh)) → (logits (B, V),
    k_cache, v_cache updated at ``position``). Keys at positions > ``position`` are masked out.
    ``write(cache, new, position)`` writes one layer's new key or value into its preallocated cache."""

    def __init__(self, model: TinyLlama, write=write_cache):
        super().__init__()
        self.model, self.write = model, write

    def forward(self, token, position, k_cache, v_cache):
        model = self.model
        T_max = k_cache.shape[3]
        cos, sin = model.rope_cos.index_select(0, position), model.rope_sin.index_select(0, position)  # (1, Dh)
        mask = (torch.arange(T_max) <= position)[None]  # (1, T_max): the positions written so far
        x = model.embed_tokens(token)  # (B, 1, D)
        new_k, new_v = [], []
        for i, layer in enumerate(model.layers):
            attention = layer.self_attn
            h = layer.input_layernorm(x)
            B = h.shape[0]
            q = attention.q_proj(h).view(B, 1, attention.n_heads, attention.head_dim).transpose(1, 2)
            k = attention.k_proj(h).view(B, 1, attention.n_kv_heads, attention.head_dim).transpose(1, 2)
            v = attention.v_proj(h).view(B, 1, attention.n_kv_heads, attention.head_dim).transpose(1, 2)
            q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
            k_all, v_all = self.write(k_cache[i], k, position), self.write(v_cache[i], v, position)
            new_k.append(k_all)
            new_v.append(v_all)
            x = x + attention.attend(q, k_all, v_all, mask)
            x = x + layer.mlp(layer.post_attention_layernorm(x))
        return model.lm_head(model.norm(x))[:, -1], torch.stack(new_k), torch.stack(new_v)

    def empty_cache(self, batch_size: int = 1, T_max: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        c = self.model.config
        shape = (c.n_layers, batch_size, c.n_kv_heads, T_max or c.max_seq_len, c.head_dim)
        return torch.zeros(shape), torch.zeros(shape)


def timed_peak_memory(fn) -> tuple[float, int | None]:
    """(seconds that ``fn()`` took, growth of the process's peak resident memory during it in bytes). The peak
    (Linux's VmHWM) is reset through /proc/self/clear_refs first, so it sees C++ allocations (ONNX Runtime,
    llama.cpp) as well as PyTorch's; None where the system has no such counter."""
    def status(key):
        with open("/proc/self/status") as file:
            return next(int(line.split()[1]) * 1024 for line in file if line.startswith(key))

    try:
        with open("/proc/self/clear_refs", "w") as file:
            file.write("5")
        before = status("VmRSS:")
    except (OSError, StopIteration):
        before = None
    start = time.perf_counter()
    fn()
    seconds = time.perf_counter() - start
    return seconds, (None if before is None else max(0, status("VmHWM:") - before))
