"""A GPT-2-style decoder in plain PyTorch: Ladder's reference for parity and speed.

Follows GPT-2 (Radford et al. 2019) the way Karpathy's nanoGPT (`model.py`) trains it,
and mirrors Ladder's Rust model (`crates/model`) layer for layer: the same parameter
names (`wte`, `wpe`, `h.{i}.ln_1`, `h.{i}.attn.c_attn`, ..., `ln_f`, `lm_head`), the same
fused q/k/v projection with grouped KV heads (GQA, Ainslie et al. 2023), the same
precision rules (fp32 weights; under bf16 autocast the matmuls run in bf16 while norms,
the naive softmax and the loss stay f32) and the same initialisation *order*: every
random weight is drawn as `torch.randn(shape) * std` in the order the Rust `VarStore`
creates it, so after `torch.manual_seed(s)` the initial weights on CPU are bit-identical
to `tch::manual_seed(s); Gpt::new(..)`.

Only the GPT-2 rung is implemented here: pos_emb = "learned", norm = "layernorm",
mlp = "gelu"; attention = "naive" | "sdpa"; any n_kv_heads dividing n_head.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class GPTConfig:
    """The fields of Ladder's `ModelConfig` (crates/model/src/config.rs)."""

    vocab_size: int
    block_size: int
    n_layer: int
    n_head: int
    n_kv_heads: int
    n_embd: int
    intermediate_size: int
    pos_emb: str = "learned"
    rope_theta: float = 10000.0
    norm: str = "layernorm"
    norm_eps: float = 1e-5
    mlp: str = "gelu"
    attention: str = "sdpa"
    bias: bool = True
    tie_embeddings: bool = True
    dropout: float = 0.0
    dtype: str = "fp32"

    @classmethod
    def from_dict(cls, d: dict) -> "GPTConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown model key(s) {unknown} (expected some of: {sorted(known)})")
        required = {f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING}
        missing = sorted(required - set(d))
        if missing:
            raise ValueError(f"missing model key(s) {missing}")
        cfg = cls(**d)
        cfg.validate()
        return cfg

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    def validate(self) -> None:
        """Same checks and messages as the Rust `ModelConfig::validate`."""
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_kv_heads",
                     "n_embd", "intermediate_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.n_embd % self.n_head != 0:
            raise ValueError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")
        if self.n_head % self.n_kv_heads != 0:
            raise ValueError(f"n_head ({self.n_head}) must be divisible by n_kv_heads "
                             f"({self.n_kv_heads}): each KV head serves a whole group of query heads")
        for key, want in (("pos_emb", "learned"), ("norm", "layernorm"), ("mlp", "gelu")):
            if getattr(self, key) != want:
                raise ValueError(f"the PyTorch reference implements only {key} = \"{want}\" (the GPT-2 "
                                 f"rung), got \"{getattr(self, key)}\"")
        if self.attention not in ("naive", "sdpa"):
            raise ValueError(f"unknown attention '{self.attention}' (expected naive or sdpa)")
        if self.dtype not in ("fp32", "bf16"):
            raise ValueError(f"unknown dtype '{self.dtype}' (expected fp32 or bf16)")
        if not self.norm_eps > 0:
            raise ValueError(f"norm_eps must be positive, got {self.norm_eps}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")


PRESETS = {
    # GPT-2 small (124M): vocab 50257 padded to 50304.
    "gpt2_124m": dict(vocab_size=50304, block_size=1024, n_layer=12, n_head=12, n_kv_heads=12,
                      n_embd=768, intermediate_size=4 * 768, bias=True, tie_embeddings=True),
    # GPT-2-shaped, small enough for a 2-core CPU (Rust: ModelConfig::gpt2_small_cpu).
    "speed_cpu": dict(vocab_size=50304, block_size=256, n_layer=6, n_head=6, n_kv_heads=6,
                      n_embd=384, intermediate_size=4 * 384, bias=True, tie_embeddings=True),
    # Tiny, for tests (Rust: ModelConfig::gpt2_tiny).
    "gpt2_tiny": dict(vocab_size=256, block_size=64, n_layer=2, n_head=4, n_kv_heads=4,
                      n_embd=64, intermediate_size=256, bias=True, tie_embeddings=True),
}
PRESETS["gpt2_small_cpu"] = PRESETS["speed_cpu"]


class Linear(nn.Module):
    """y = x W^T + b with W stored (out, in); parameters start empty (init is the model's)."""

    def __init__(self, d_in: int, d_out: int, bias: bool):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(d_out, d_in))
        self.bias = nn.Parameter(torch.zeros(d_out)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias)


class Embedding(nn.Module):
    def __init__(self, n: int, d: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n, d))

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return F.embedding(idx, self.weight)


class LayerNorm(nn.Module):
    """LayerNorm (Ba et al. 2016) with optional bias; statistics in f32, output in input dtype."""

    def __init__(self, d: int, bias: bool, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.bias = nn.Parameter(torch.zeros(d)) if bias else None
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = None if self.bias is None else self.bias.float()
        y = F.layer_norm(x.float(), (x.shape[-1],), self.weight.float(), b, self.eps)
        return y.to(x.dtype)


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.n_head, self.n_kv, self.hs = cfg.n_head, cfg.n_kv_heads, cfg.head_dim
        self.c_attn = Linear(cfg.n_embd, (self.n_head + 2 * self.n_kv) * self.hs, cfg.bias)
        self.c_proj = Linear(cfg.n_embd, cfg.n_embd, cfg.bias)
        self.kernel = cfg.attention
        self.dropout = cfg.dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        nh, nkv, hs = self.n_head, self.n_kv, self.hs
        q, k, v = self.c_attn(x).split([nh * hs, nkv * hs, nkv * hs], dim=-1)
        q = q.view(B, T, nh, hs).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, nkv, hs).transpose(1, 2)  # (B, nkv, T, hs)
        v = v.view(B, T, nkv, hs).transpose(1, 2)  # (B, nkv, T, hs)
        if nkv != nh:  # each KV head serves `rep` consecutive query heads
            rep = nh // nkv
            k = k.repeat_interleave(rep, dim=1)  # (B, nh, T, hs)
            v = v.repeat_interleave(rep, dim=1)  # (B, nh, T, hs)
        p = self.dropout if self.training else 0.0
        if self.kernel == "sdpa":
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)
        else:
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hs))  # (B, nh, T, T)
            mask = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()
            att = att.float().masked_fill(~mask, float("-inf")).softmax(dim=-1)
            att = F.dropout(att, p, self.training).to(v.dtype)
            y = att @ v  # (B, nh, T, hs)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, T, C)
        return F.dropout(self.c_proj(y), p, self.training)


class MLP(nn.Module):
    """GPT-2 MLP: c_proj(gelu_tanh(c_fc(x)))."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.c_fc = Linear(cfg.n_embd, cfg.intermediate_size, cfg.bias)
        self.c_proj = Linear(cfg.intermediate_size, cfg.n_embd, cfg.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_proj(F.gelu(self.c_fc(x), approximate="tanh"))


class Block(nn.Module):
    """Pre-norm block: x + attn(ln_1(x)), then x + mlp(ln_2(x))."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.ln_1 = LayerNorm(cfg.n_embd, cfg.bias, cfg.norm_eps)
        self.attn = CausalSelfAttention(cfg)
        self.ln_2 = LayerNorm(cfg.n_embd, cfg.bias, cfg.norm_eps)
        self.mlp = MLP(cfg)
        self.dropout = cfg.dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        p = self.dropout if self.training else 0.0
        return x + F.dropout(self.mlp(self.ln_2(x)), p, self.training)


class GPT(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.wte = Embedding(cfg.vocab_size, cfg.n_embd)
        self.wpe = Embedding(cfg.block_size, cfg.n_embd)
        self.h = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = LayerNorm(cfg.n_embd, cfg.bias, cfg.norm_eps)
        self.lm_head = None if cfg.tie_embeddings else Linear(cfg.n_embd, cfg.vocab_size, False)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """GPT-2 init, drawn in the Rust VarStore's creation order (see module docstring):
        N(0, 0.02) for embeddings and Linear weights, N(0, 0.02/sqrt(2·n_layer)) for the two
        residual projections per block; biases 0, norm gains 1 (no random draws)."""
        std, resid_std = 0.02, 0.02 / math.sqrt(2 * self.cfg.n_layer)

        def draw(p: nn.Parameter, s: float) -> None:
            p.copy_(torch.randn(p.shape) * s + 0.0)  # exactly tch's Init::Randn

        draw(self.wte.weight, std)
        draw(self.wpe.weight, std)
        for blk in self.h:
            draw(blk.attn.c_attn.weight, std)
            draw(blk.attn.c_proj.weight, resid_std)
            draw(blk.mlp.c_fc.weight, std)
            draw(blk.mlp.c_proj.weight, resid_std)
        if self.lm_head is not None:
            draw(self.lm_head.weight, std)
        for name, p in self.named_parameters():
            if name.endswith(".bias"):
                p.zero_()
            elif ".ln_" in name or name.startswith("ln_f"):
                p.fill_(1.0)

    def num_params(self) -> int:
        """Every trainable number (a tied head counted once)."""
        return sum(p.numel() for p in self.parameters())

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        """idx (B, T) -> logits (B, T, V) and, with targets, the mean cross-entropy (f32)."""
        B, T = idx.shape
        if T > self.cfg.block_size:
            raise ValueError(f"sequence of {T} tokens is longer than block_size {self.cfg.block_size}")
        pos = torch.arange(T, device=idx.device)
        x = self.wte(idx) + self.wpe(pos)  # (B, T, C); (T, C) broadcast over B
        x = F.dropout(x, self.cfg.dropout if self.training else 0.0, self.training)
        for blk in self.h:
            x = blk(x)
        x = self.ln_f(x)
        head = self.wte.weight if self.lm_head is None else self.lm_head.weight
        logits = F.linear(x, head)  # (B, T, V)
        if targets is None:
            return logits, None
        loss = F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.view(-1))
        return logits, loss


def configure_optimizer(model: GPT, lr: float, weight_decay: float, betas, eps: float):
    """AdamW (Loshchilov & Hutter 2019), single-tensor path (`foreach=False`, as Ladder's Rust
    optimizer). Two groups, sorted by name: dim >= 2 decays, biases and norm gains do not."""
    named = sorted(model.named_parameters(), key=lambda kv: kv[0])
    decay = [p for _, p in named if p.dim() >= 2]
    no_decay = [p for _, p in named if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=tuple(betas), eps=eps, foreach=False, fused=False)
