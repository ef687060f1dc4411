#!/usr/bin/python3
"""PyTorch CPU timings of the ops that tests/kernels/cpu_kernels_bench.cpp times, same shapes (configs/tiny.yaml).

Usage: scripts/bench_torch_ops.py [--threads N] [--clock wall|cpu]. Prints milliseconds per call (forward +
backward where the C++ benchmark times both), the median of several repeats. On a shared machine compare
single-thread CPU time (--threads 1 --clock cpu) with the CPU column of the C++ benchmark: wall time there
measures the other tenants as much as the kernels. Attention is the causal softmax(QK^T)V a PyTorch
model without a fused kernel runs (torch 1.13 has none on CPU).
"""
import argparse
import time

import torch
import torch.nn.functional as F

B, T, C, H, HD, FF, V = 8, 256, 128, 4, 32, 384, 264
N = B * T


def timed(fn, clock, repeats=7, min_time=0.5):
    fn()
    times = []
    for _ in range(repeats):
        n, t0 = 0, clock()
        while True:
            fn()
            n += 1
            if clock() - t0 > min_time / repeats:
                break
        times.append((clock() - t0) / n)
    times.sort()
    return times[len(times) // 2] * 1e3


def attention(seq_len, backward):
    q, k, v = (torch.randn(B, H, seq_len, HD, requires_grad=backward) for _ in range(3))
    mask = torch.ones(seq_len, seq_len, dtype=torch.bool).tril()
    dout = torch.randn(B, H, seq_len, HD)

    def fwd():
        a = (q @ k.transpose(-1, -2)) * HD**-0.5
        return a.masked_fill(~mask, float("-inf")).softmax(-1) @ v

    if not backward:
        return lambda: fwd()
    return lambda: fwd().backward(dout)


def layer_matmuls():
    shapes = [(C, 3 * C), (C, C), (C, 2 * FF), (FF, C)]
    xs = [torch.randn(N, i, requires_grad=True) for i, _ in shapes]
    ws = [torch.randn(o, i, requires_grad=True) for i, o in shapes]
    douts = [torch.randn(N, o) for _, o in shapes]

    def step():
        for x, w, d in zip(xs, ws, douts):
            F.linear(x, w).backward(d)

    return step


def rmsnorm():
    x = torch.randn(N, C, requires_grad=True)
    g = torch.randn(C, requires_grad=True)
    d = torch.randn(N, C)
    return lambda: (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * g).backward(d)


def rope():
    x = torch.randn(B, T, 3 * H, HD // 2, 2, requires_grad=True)
    ang = torch.arange(T)[:, None] * 10000.0 ** (-torch.arange(0, HD, 2) / HD)
    cos, sin = ang.cos()[None, :, None, :], ang.sin()[None, :, None, :]
    d = torch.randn(B, T, 2 * H, HD // 2, 2)

    def step():
        qk = x[:, :, : 2 * H]
        x0, x1 = qk[..., 0], qk[..., 1]
        torch.stack([x0 * cos - x1 * sin, x0 * sin + x1 * cos], -1).backward(d)

    return step


def swiglu():
    ab = torch.randn(N, 2 * FF, requires_grad=True)
    d = torch.randn(N, FF)

    def step():
        a, b = ab.chunk(2, -1)
        (F.silu(a) * b).backward(d)

    return step


def cross_entropy(vocab):
    logits = torch.randn(N, vocab, requires_grad=True)
    targets = torch.randint(0, vocab, (N,))
    return lambda: F.cross_entropy(logits, targets).backward()


def adamw():
    p = torch.nn.Parameter(torch.randn(1 << 20))
    p.grad = torch.randn(1 << 20)
    opt = torch.optim.AdamW([p], lr=1e-3, weight_decay=0.1, betas=(0.9, 0.95))

    def step():
        torch.nn.utils.clip_grad_norm_([p], 1e9)
        opt.step()

    return step


class Block(torch.nn.Module):
    """A pre-norm Llama block (RMSNorm, fused qkv, interleaved RoPE, causal attention, SwiGLU)."""

    def __init__(self):
        super().__init__()
        self.g1, self.g2 = torch.nn.Parameter(torch.ones(C)), torch.nn.Parameter(torch.ones(C))
        self.wqkv = torch.nn.Linear(C, 3 * C, bias=False)
        self.wo = torch.nn.Linear(C, C, bias=False)
        self.w13 = torch.nn.Linear(C, 2 * FF, bias=False)
        self.w2 = torch.nn.Linear(FF, C, bias=False)
        ang = torch.arange(T)[:, None] * 10000.0 ** (-torch.arange(0, HD, 2) / HD)
        self.cos, self.sin = ang.cos()[None, :, None, :], ang.sin()[None, :, None, :]
        self.register_buffer("mask", torch.ones(T, T, dtype=torch.bool).tril())

    @staticmethod
    def norm(x, g):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * g

    def rope(self, x):  # x [B, T, H, HD]
        x0, x1 = x.unflatten(-1, (HD // 2, 2)).unbind(-1)
        return torch.stack([x0 * self.cos - x1 * self.sin, x0 * self.sin + x1 * self.cos], -1).flatten(-2)

    def forward(self, x):
        q, k, v = self.wqkv(self.norm(x, self.g1)).view(B, T, 3, H, HD).unbind(2)
        q, k, v = self.rope(q).transpose(1, 2), self.rope(k).transpose(1, 2), v.transpose(1, 2)
        a = (q @ k.transpose(-1, -2)) * HD**-0.5
        o = (a.masked_fill(~self.mask, float("-inf")).softmax(-1) @ v).transpose(1, 2).reshape(B, T, C)
        h = x + self.wo(o)
        a, b = self.w13(self.norm(h, self.g2)).chunk(2, -1)
        return h + self.w2(F.silu(a) * b)


def layer():
    block = Block()
    x = torch.randn(B, T, C, requires_grad=True)
    dy = torch.randn(B, T, C)
    return lambda: block(x).backward(dy)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--clock", choices=["wall", "cpu"], default="wall")
    args = ap.parse_args()
    clock = time.perf_counter if args.clock == "wall" else time.process_time
    torch.set_num_threads(args.threads)
    rows = [
        ("attention_fwd/256", attention(256, False)),
        ("attention_fwd/1024", attention(1024, False)),
        ("attention_fwd+bwd/256", attention(256, True)),
        ("attention_fwd+bwd/1024", attention(1024, True)),
        ("layer_matmuls (fwd+bwd)", layer_matmuls()),
        ("rmsnorm_fwd_bwd", rmsnorm()),
        ("rope_fwd_bwd", rope()),
        ("swiglu_fwd_bwd", swiglu()),
        (f"cross_entropy/{V}", cross_entropy(V)),
        ("cross_entropy/50304", cross_entropy(50304)),
        ("adamw_and_norm (1M)", adamw()),
        ("layer_fwd_bwd", layer()),
    ]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.clock} time")
    for name, fn in rows:
        print(f"{name:28s} {timed(fn, clock):9.3f} ms")


if __name__ == "__main__":
    main()
