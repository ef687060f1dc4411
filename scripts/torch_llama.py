#!/usr/bin/python3
"""The PyTorch peer for sinklab's benchmarks: the same Llama-style model (pre-norm RMSNorm, fused QKV with
interleaved RoPE, standard or HeadNorm attention, SwiGLU, tied embeddings) trained on random (Zipf) tokens with
AdamW, printing tokens/s. On a GPU it uses bf16 autocast, the fastest scaled_dot_product_attention and
torch.compile; on a CPU plain fp32.

Usage: torch_llama.py --config RESOLVED.yaml [--variant standard|headnorm] [--steps N] [--warmup N]
                      [--threads K] [--device cpu|cuda] [--no-compile]
Prints one line: `torch tokens/s <value>` (parsed by scripts/bench_cpu_vs_torch.sh and gpu_check.sh).
"""
import argparse
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
import yaml


def rmsnorm(x, g, eps):
    return x * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + eps).to(x.dtype) * g


class Block(nn.Module):
    def __init__(self, m, headnorm):
        super().__init__()
        C, H, Hkv, F_ = m["d_model"], m["n_head"], m["n_kv_head"] or m["n_head"], m["d_ff"]
        hd = C // H
        self.H, self.Hkv, self.hd, self.F, self.eps = H, Hkv, hd, F_, m["norm_eps"]
        self.attn_norm = nn.Parameter(torch.ones(C))
        self.wqkv = nn.Linear(C, (H + 2 * Hkv) * hd, bias=False)
        self.wo = nn.Linear(H * hd, C, bias=False)
        self.ffn_norm = nn.Parameter(torch.ones(C))
        self.w13 = nn.Linear(C, 2 * F_, bias=False)
        self.w2 = nn.Linear(F_, C, bias=False)
        self.headnorm = nn.Parameter(torch.ones(H, hd)) if headnorm else None

    def forward(self, x, cos, sin):
        B, T, _ = x.shape
        H, Hkv, hd = self.H, self.Hkv, self.hd
        qkv = self.wqkv(rmsnorm(x, self.attn_norm, self.eps))
        q, k, v = qkv.split([H * hd, Hkv * hd, Hkv * hd], dim=-1)
        q = rope(q.view(B, T, H, hd), cos, sin).transpose(1, 2)
        k = rope(k.view(B, T, Hkv, hd), cos, sin).transpose(1, 2)
        v = v.view(B, T, Hkv, hd).transpose(1, 2)
        if Hkv != H:
            k, v = k.repeat_interleave(H // Hkv, 1), v.repeat_interleave(H // Hkv, 1)
        o = attention(q, k, v).transpose(1, 2)  # [B, T, H, hd]
        if self.headnorm is not None:
            o = rmsnorm(o, self.headnorm, 1e-6)
        x = x + self.wo(o.reshape(B, T, H * hd))
        a, b = self.w13(rmsnorm(x, self.ffn_norm, self.eps)).split(self.F, dim=-1)
        return x + self.w2(F.silu(a) * b)


def rope(x, cos, sin):
    x0, x1 = x[..., 0::2], x[..., 1::2]
    return torch.stack([x0 * cos - x1 * sin, x0 * sin + x1 * cos], dim=-1).flatten(-2)


def attention(q, k, v):
    if hasattr(F, "scaled_dot_product_attention"):
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)
    T = q.shape[2]
    s = (q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
    s = s.masked_fill(torch.ones(T, T, dtype=torch.bool, device=q.device).triu(1), float("-inf"))
    return torch.softmax(s, dim=-1) @ v


class Llama(nn.Module):
    def __init__(self, m, headnorm):
        super().__init__()
        self.wte = nn.Embedding(m["vocab_size"], m["d_model"])
        self.blocks = nn.ModuleList([Block(m, headnorm) for _ in range(m["n_layer"])])
        self.norm_f = nn.Parameter(torch.ones(m["d_model"]))
        self.eps = m["norm_eps"]
        hd = m["d_model"] // m["n_head"]
        inv = m["rope_theta"] ** (-torch.arange(0, hd, 2, dtype=torch.float64) / hd)
        ang = torch.arange(m["seq_len"], dtype=torch.float64)[:, None] * inv[None, :]
        self.register_buffer("cos", ang.cos().float()[None, :, None, :], persistent=False)
        self.register_buffer("sin", ang.sin().float()[None, :, None, :], persistent=False)

    def forward(self, ids, targets):
        T = ids.shape[1]
        x = self.wte(ids)
        cos, sin = self.cos[:, :T].to(x.dtype), self.sin[:, :T].to(x.dtype)
        for b in self.blocks:
            x = b(x, cos, sin)
        logits = F.linear(rmsnorm(x, self.norm_f, self.eps), self.wte.weight)
        return F.cross_entropy(logits.float().view(-1, logits.shape[-1]), targets.view(-1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True)
    ap.add_argument("--variant", default=None)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--no-compile", action="store_true")
    args = ap.parse_args()
    cfg = yaml.safe_load(open(args.config))
    m, t = cfg["model"], cfg["train"]
    # PyYAML follows YAML 1.1, where a float needs a dot: sinklab's "1e-06" arrives as a string.
    for d, keys in ((m, ("norm_eps", "rope_theta", "init_std")), (t, ("lr", "beta1", "beta2", "weight_decay"))):
        for k in keys:
            d[k] = float(d[k])
    variant = args.variant or cfg["attention"]["variant"]
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    torch.manual_seed(0)
    model = Llama(m, variant == "headnorm").to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=t["lr"], betas=(t["beta1"], t["beta2"]),
                            weight_decay=t["weight_decay"], **({"fused": True} if dev.type == "cuda" else {}))
    B, T, V = t["micro_batch"], m["seq_len"], m["vocab_size"]
    # Zipf-distributed ids, as sinklab bench draws them: P(k) proportional to 1 / (k + 1), like text's tokens.
    zipf = 1.0 / torch.arange(1, V + 1, dtype=torch.float64)
    ids = torch.multinomial(zipf, B * T, replacement=True).view(B, T).to(dev)
    tgt = torch.multinomial(zipf, B * T, replacement=True).view(B, T).to(dev)
    fwd = model
    if dev.type == "cuda" and not args.no_compile:
        fwd = torch.compile(model)

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
            loss = fwd(ids, tgt)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    for _ in range(args.warmup):
        step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    dt = (time.perf_counter() - t0) / args.steps
    print(f"torch tokens/s {B * T / dt:.1f}  (step {1e3 * dt:.2f} ms, {torch.get_num_threads()} threads, {dev})")


if __name__ == "__main__":
    main()
