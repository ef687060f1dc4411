#!/usr/bin/python3
"""An independent PyTorch (float64) model of sinklab's decoder, used as an oracle by the C++ tests.

Usage: llama_ref.py DIR
DIR holds meta.json (config + parameter names/shapes in buffer order), weights.bin (float64, the
parameters concatenated in that order), inputs.bin / targets.bin (int32 [B, T]) and, for the HeadNorm
first_token_std init check, headnorm_input_<l>.bin (float64 [64, C]). It writes loss.txt, grads.bin
(float64, same order as weights.bin) and headnorm_gain_<l>.bin (the gain the init rule gives).
"""
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F


def rmsnorm(x, g, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * g


def rope(x, theta):
    """x: [B, T, nh, hd]; rotates interleaved pairs (2i, 2i+1) by t * theta^(-2i/hd)."""
    B, T, nh, hd = x.shape
    inv = theta ** (-torch.arange(0, hd, 2, dtype=torch.float64) / hd)  # [hd/2]
    ang = torch.arange(T, dtype=torch.float64)[:, None] * inv[None, :]  # [T, hd/2]
    cos, sin = ang.cos()[None, :, None, :], ang.sin()[None, :, None, :]
    x0, x1 = x[..., 0::2], x[..., 1::2]
    out = torch.empty_like(x)
    out[..., 0::2] = x0 * cos - x1 * sin
    out[..., 1::2] = x0 * sin + x1 * cos
    return out


def attention(q, k, v, cfg, sink, rec=None):
    """q: [B, T, H, hd]; k, v: [B, T, Hkv, hd]. Returns [B, T, H, hd]; rec["p"]: the weights [B, H, T, T]."""
    B, T, H, hd = q.shape
    group = H // k.shape[2]
    k = k.repeat_interleave(group, dim=2)
    v = v.repeat_interleave(group, dim=2)
    # The model's scale is 1/sqrt(hd) in f32 (AttnSpec::scale), in f64 runs too; the exact one would differ from it
    # by 4e-8 relative, which shows where a sink logit makes token 0's output depend on it (the gain init's check).
    scale = float(np.float32(1) / np.sqrt(np.float32(hd)))
    scores = torch.einsum("bihd,bjhd->bhij", q, k) * scale  # [B, H, T, T]
    allowed = torch.ones(T, T, dtype=torch.bool).tril()
    for r in cfg["isolate"]:
        if r < T:
            allowed[r, :] = False
            allowed[r, r] = True
    score = cfg["score"]
    if score == "sigmoid":
        p = torch.sigmoid(scores + cfg["sigmoid_bias"]) * allowed
    else:
        scores = scores.masked_fill(~allowed, float("-inf"))
        if score in ("sink_logit", "off_by_one"):
            s = sink if score == "sink_logit" else torch.zeros(H, dtype=torch.float64)
            extra = s.view(1, H, 1, 1).expand(B, H, T, 1)
            p = torch.softmax(torch.cat([scores, extra], dim=-1), dim=-1)[..., :T]
        else:
            p = torch.softmax(scores, dim=-1)
    if rec is not None:
        rec["p"] = p
    return torch.einsum("bhij,bjhd->bihd", p, v)


def block(x, P, l, cfg, rec=None):
    """One decoder block; rec, when given, receives the attention weights p, the normed input xn, the attention
    output att and the W_O input wo_in [B, T, H hd] (they differ after HeadNorm, the gate, amplification) and the
    SwiGLU output act [B, T, F]."""
    m = cfg["model"]
    H, Hkv, hd, Fd = m["n_head"], m["n_kv_head"], m["head_dim"], m["d_ff"]
    B, T, _ = x.shape
    name = lambda w: f"layers.{l}.{w}"
    xn = rmsnorm(x, P[name("attn_norm")], m["norm_eps"])
    qkv = xn @ P[name("wqkv")].T
    q = qkv[..., : H * hd].reshape(B, T, H, hd)
    k = qkv[..., H * hd : (H + Hkv) * hd].reshape(B, T, Hkv, hd)
    v = qkv[..., (H + Hkv) * hd :].reshape(B, T, Hkv, hd)
    if cfg["qk_norm"]:
        q = rmsnorm(q, P[name("q_norm")], m["norm_eps"])
        k = rmsnorm(k, P[name("k_norm")], m["norm_eps"])
    q, k = rope(q, m["rope_theta"]), rope(k, m["rope_theta"])
    o = attention(q, k, v, cfg, P.get(name("sink")), rec)
    if rec is not None:
        rec["att"] = o.reshape(B, T, H * hd)
    if cfg["headnorm"]:
        o = rmsnorm(o, P[name("headnorm")], cfg["headnorm_eps"])
    if cfg["gate"]:
        logit = xn @ P[name("wgate")].T
        g = torch.sigmoid(logit)
        o = o * (g.view(B, T, H, 1) if cfg["gate"] == "head" else g.view(B, T, H, hd))
    o = o.reshape(B, T, H * hd)
    amp = cfg["amplify"]
    if amp and l in amp["layers"]:
        kpos, lam = amp["position"], amp["lambda"]
        if amp["mode"] in ("centered", "centered_causal"):
            seen = o if amp["mode"] == "centered" else o[:, : kpos + 1]
            mu = seen.mean(dim=1).detach()
            row = mu + lam * (o[:, kpos] - mu)
        else:
            row = lam * o[:, kpos]
        o = torch.cat([o[:, :kpos], row[:, None], o[:, kpos + 1 :]], dim=1)
    x = x + o @ P[name("wo")].T
    ab = rmsnorm(x, P[name("ffn_norm")], m["norm_eps"]) @ P[name("w13")].T
    act = F.silu(ab[..., :Fd]) * ab[..., Fd:]
    if rec is not None:
        rec.update(xn=xn, wo_in=o, act=act)
    return x + act @ P[name("w2")].T


def headnorm_init_gain(P, l, cfg, x):
    """The first_token_std rule: token 0's attention output per head through the fresh projection."""
    m = cfg["model"]
    H, Hkv, hd = m["n_head"], m["n_kv_head"], m["head_dim"]
    qkv = (x @ P[f"layers.{l}.wqkv"].T)[None]
    T = x.shape[0]
    q = qkv[..., : H * hd].reshape(1, T, H, hd)
    k = qkv[..., H * hd : (H + Hkv) * hd].reshape(1, T, Hkv, hd)
    v = qkv[..., (H + Hkv) * hd :].reshape(1, T, Hkv, hd)
    cfg0 = dict(cfg, isolate=[])
    o0 = attention(q, k, v, cfg0, P.get(f"layers.{l}.sink"))[0, 0]  # [H, hd]
    std = o0.std(dim=-1, unbiased=False)  # [H]
    if cfg["headnorm_gain"] == "shared":
        return std.mean().expand(hd).clone()
    return std[:, None].expand(H, hd).clone()


def main(d):
    cfg = json.load(open(os.path.join(d, "meta.json")))
    m = cfg["model"]
    B, T = cfg["B"], cfg["T"]
    flat = torch.from_numpy(np.fromfile(os.path.join(d, "weights.bin"), dtype="<f8"))
    P, off = {}, 0
    for name, shape in cfg["params"]:
        n = 1
        for s in shape:
            n *= s
        P[name] = flat[off : off + n].reshape(shape).clone().requires_grad_(True)
        off += n
    ids = torch.from_numpy(np.fromfile(os.path.join(d, "inputs.bin"), dtype="<i4").astype("int64")).view(B, T)
    tgt = torch.from_numpy(np.fromfile(os.path.join(d, "targets.bin"), dtype="<i4").astype("int64")).view(B, T)

    x = P["wte"][ids]
    for l in range(m["n_layer"]):
        x = block(x, P, l, cfg)
    logits = rmsnorm(x, P["norm_f"], m["norm_eps"]) @ P["wte"].T
    loss = F.cross_entropy(logits.view(B * T, -1), tgt.view(-1), ignore_index=-1)
    loss.backward()
    with open(os.path.join(d, "loss.txt"), "w") as f:
        f.write(repr(loss.item()))
    torch.cat([P[name].grad.reshape(-1) for name, _ in cfg["params"]]).numpy().astype("<f8").tofile(
        os.path.join(d, "grads.bin"))

    for l in range(m["n_layer"]):
        path = os.path.join(d, f"headnorm_input_{l}.bin")
        if os.path.exists(path):
            xin = torch.from_numpy(np.fromfile(path, dtype="<f8")).view(-1, m["d_model"])
            with torch.no_grad():
                g = headnorm_init_gain(P, l, cfg, xin)
            g.numpy().astype("<f8").tofile(os.path.join(d, f"headnorm_gain_{l}.bin"))


if __name__ == "__main__":
    main(sys.argv[1])
