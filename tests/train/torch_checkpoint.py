#!/usr/bin/python3
"""Independent PyTorch checks of sinklab's checkpoint and export files (used by torch_checkpoint_test.cpp).

  torch_checkpoint.py val-loss CKPT_DIR
      Reads CKPT_DIR/model.safetensors with the minimal reader below (no sinklab code), takes the config from its
      __metadata__, and prints the validation loss of those weights on the run's validation shards, computed
      like the trainer's (val_batches micro-batches of micro_batch windows of seq_len + 1 tokens, in order) by
      the float64 model of tests/oracle/llama_ref.py.
  torch_checkpoint.py train-steps RUN_DIR FIRST LAST
      Continues the run's training from its checkpoint at step FIRST to step LAST with torch.optim.AdamW on the
      float64 model: the same batches (the loader's documented order, drawn again here from run.seed), gradient
      accumulation over micro-batches, the learning-rate schedule of base.yaml's comments, global-norm clipping and
      weight decay on >= 2-D tensors (the HeadNorm gain as attention.headnorm.weight_decay says). Prints JSON: each
      step's loss, gradient norm, learning rate and clip factor; for each tensor the largest difference from the
      run's checkpoint at step LAST and the largest magnitude there; and the same for each /sink and /heavy column
      of the rows of those steps, from each step's last micro-batch by the metrics' definitions.
  torch_checkpoint.py eval-metrics CKPT_DIR EVAL_H5
      Computes every column of an eval.h5 of that checkpoint by its definition (README, "Sink metrics") on the
      float64 model, from the file's own config (the eval's --set included), batches and tracked positions, over the
      validation windows in order. Prints JSON: for each column the largest difference from the file's value and the
      largest magnitude there; "uncovered" lists columns it does not know.
  torch_checkpoint.py hf-logits HF_DIR IDS OUT
      Builds a Llama written with Hugging Face's conventions (q_proj/k_proj/v_proj, rotate_half RoPE, repeat_kv,
      gate/up/down MLP, tied lm_head) from HF_DIR/config.json and HF_DIR/model.safetensors, runs it on the int32
      ids in IDS ([B, T], B and T on the first line of IDS.shape) and writes float64 logits [B, T, V] to OUT, and
      to OUT.wrong_rope the logits of the same model with interleaved-pair RoPE (a negative control: an export
      that forgot to permute q and k would match that one instead).
"""
import glob
import json
import math
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "oracle"))
import llama_ref  # noqa: E402 (the oracle's folder first)

DTYPES = {"F32": np.float32, "F64": np.float64, "BF16": None}


def read_safetensors(path):
    """Returns ({name: float64 tensor}, metadata) from a safetensors file, by the format's definition."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n].decode("utf-8"))
    meta = header.pop("__metadata__", {})
    data = raw[8 + n :]
    tensors = {}
    for name, e in header.items():
        begin, end = e["data_offsets"]
        arr = np.frombuffer(data[begin:end], dtype=DTYPES[e["dtype"]]).reshape(e["shape"])
        tensors[name] = torch.from_numpy(arr.astype(np.float64))
    return tensors, meta


def text_attr(f, name):
    """A string attribute of an HDF5 file, as h5py returns str or bytes."""
    v = f.attrs[name]
    return v.decode() if isinstance(v, bytes) else str(v)


def val_batch(tokens, i, B, T):
    """Validation batch i: windows i B .. i B + B - 1 of T + 1 tokens, in order (ids, targets) [B, T]."""
    w = np.stack([tokens[k * T : k * T + T + 1] for k in range(i * B, i * B + B)])
    return torch.tensor(w[:, :-1]), torch.tensor(w[:, 1:])


def loss_of(x, P, ocfg, targets):
    """Mean cross-entropy of the last block's output x [B, T, C] through the final norm and the tied embedding."""
    logits = llama_ref.rmsnorm(x, P["norm_f"], ocfg["model"]["norm_eps"]) @ P["wte"].T
    return F.cross_entropy(logits.reshape(targets.numel(), -1), targets.reshape(-1))


# ---------------------------------------------------------------------------------------------- val-loss
def oracle_config(cfg):
    """The config dict tests/oracle/llama_ref.py expects, from sinklab's resolved YAML config. (PyYAML reads
    YAML 1.1, where 1e-6 without a dot is a string: numbers go through float().)"""
    m, a = cfg["model"], cfg["attention"]
    parts = a["variant"].split("+")
    score = next((p for p in parts if p in ("sink_logit", "off_by_one", "sigmoid")), "softmax")
    amp = cfg["intervention"]["amplify"]
    return {
        "model": {
            "d_model": m["d_model"], "n_layer": m["n_layer"], "n_head": m["n_head"],
            "n_kv_head": m["n_kv_head"] or m["n_head"], "head_dim": m["d_model"] // m["n_head"], "d_ff": m["d_ff"],
            "norm_eps": float(m["norm_eps"]), "rope_theta": float(m["rope_theta"]),
        },
        "score": score, "sigmoid_bias": float(a["sigmoid_bias"]), "qk_norm": a["qk_norm"],
        "headnorm": "headnorm" in parts, "headnorm_eps": float(a["headnorm"]["eps"]),
        "headnorm_gain": a["headnorm"]["gain"],
        "gate": a["gate"] if "gated" in parts else "", "isolate": cfg["intervention"]["isolate"],
        "amplify": dict(amp, **{"lambda": float(amp["lambda"])}) if amp["position"] >= 0 else None,
    }


def read_tokens(pattern):
    """The token stream of llm.c shards: a header of 256 int32 (magic, version, count), then the tokens."""
    out = []
    for path in sorted(glob.glob(pattern)):
        header = np.fromfile(path, dtype="<i4", count=256)
        width = {20240520: "<u2", 20240801: "<u4"}[int(header[0])]
        out.append(np.fromfile(path, dtype=width, offset=1024, count=int(header[2])).astype(np.int64))
    return np.concatenate(out)


def val_loss(ckpt_dir):
    import yaml  # Debian python3-yaml

    P, meta = read_safetensors(os.path.join(ckpt_dir, "model.safetensors"))
    cfg = yaml.safe_load(meta["config_yaml"])
    ocfg = oracle_config(cfg)
    B, T = cfg["train"]["micro_batch"], cfg["model"]["seq_len"]
    tokens = read_tokens(cfg["data"]["val"])
    losses = []
    with torch.no_grad():
        for i in range(cfg["metrics"]["val_batches"]):
            ids, tgt = val_batch(tokens, i, B, T)
            x = P["wte"][ids]
            for l in range(cfg["model"]["n_layer"]):
                x = llama_ref.block(x, P, l, ocfg)
            losses.append(loss_of(x, P, ocfg, tgt).item())
    print(repr(sum(losses) / len(losses)))


# ------------------------------------------------------------------------------------------- train-steps
M64 = (1 << 64) - 1


def mix64(z):
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


class SplitMix64:
    """Steele, Lea and Flood's SplitMix64, with rejection sampling for a uniform integer below n."""

    def __init__(self, seed):
        self.state = seed

    def next(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & M64
        return mix64(self.state)

    def below(self, n):
        limit = M64 - M64 % n
        while True:
            x = self.next()
            if x < limit:
                return x % n


class Windows:
    """The training loader of src/data/dataloader.h as its header describes it, for one rank: windows of T + 1
    tokens every T tokens from an offset, in an order that epoch e draws from (seed, e) by Fisher-Yates. How (seed, e)
    seed the generator is the one thing taken from the implementation (dataloader.cpp): the replay needs the run's
    batches, and LoaderTest checks the order itself."""

    def __init__(self, tokens, B, T, seed, epoch, cursor):
        self.tokens, self.B, self.T, self.seed = tokens, B, T, seed
        self.count = len(tokens) // T - 1
        self.epoch, self.cursor = epoch, cursor
        self.start(epoch)

    def start(self, epoch):
        rng = SplitMix64(mix64(self.seed) ^ mix64((epoch + 0x5851F42D4C957F2D) & M64))
        self.offset = rng.below(self.T)
        self.order = list(range(self.count))
        for i in range(self.count - 1, 0, -1):
            j = rng.below(i + 1)
            self.order[i], self.order[j] = self.order[j], self.order[i]

    def next(self):
        if self.cursor + self.B > self.count:
            self.epoch, self.cursor = self.epoch + 1, 0
            self.start(self.epoch)
        rows = [self.offset + self.order[self.cursor + b] * self.T for b in range(self.B)]
        self.cursor += self.B
        w = np.stack([self.tokens[r : r + self.T + 1] for r in rows])
        return torch.tensor(w[:, :-1]), torch.tensor(w[:, 1:])


def lr_at(t, step):
    """base.yaml's schedule: warmup step k (0-based) at lr (k + 1) / warmup_steps, then cosine or linear to min_lr,
    reached at the horizon's last step."""
    peak, floor, warmup = float(t["lr"]), float(t["min_lr"]), t["warmup_steps"]
    if step < warmup:
        return peak * (step + 1) / warmup
    assert t["schedule"] in ("cosine", "linear"), t["schedule"]
    horizon = t["decay_steps"] or t["max_steps"]
    p = min(1.0, max(0.0, (step + 1 - warmup) / max(1, horizon - warmup)))
    if t["schedule"] == "linear":
        return peak + (floor - peak) * p
    return floor + 0.5 * (1 + math.cos(math.pi * p)) * (peak - floor)


def train_steps(run_dir, first, last):
    import h5py
    import yaml

    ckpt = lambda step: os.path.join(run_dir, "checkpoints", f"step_{step:08d}")
    P, meta = read_safetensors(os.path.join(ckpt(first), "model.safetensors"))
    moments, _ = read_safetensors(os.path.join(ckpt(first), "optimizer.safetensors"))
    with open(os.path.join(ckpt(first), "state.json")) as f:
        state = json.load(f)
    cfg = yaml.safe_load(meta["config_yaml"])
    ocfg, t = oracle_config(cfg), cfg["train"]
    B, T = t["micro_batch"], cfg["model"]["seq_len"]
    accum = t["tokens_per_step"] // (B * T) if t["tokens_per_step"] else 1
    assert state["step"] == first, state
    data = Windows(read_tokens(cfg["data"]["train"]), B, T, cfg["run"]["seed"], state["train_data"]["epoch"],
                   state["train_data"]["cursor"])

    for p in P.values():
        p.requires_grad_(True)
    decayed = lambda name: (cfg["attention"]["headnorm"]["weight_decay"] if name.endswith(".headnorm")
                            else P[name].dim() >= 2)
    opt = torch.optim.AdamW(
        [{"params": [P[n] for n in P if decayed(n)], "weight_decay": float(t["weight_decay"])},
         {"params": [P[n] for n in P if not decayed(n)], "weight_decay": 0.0}],
        lr=float(t["lr"]), betas=(float(t["beta1"]), float(t["beta2"])), eps=float(t["eps"]), foreach=False)
    for name, p in P.items():
        opt.state[p] = {"step": torch.tensor(float(state["optimizer_steps"])),
                        "exp_avg": moments[f"exp_avg.{name}"].clone(),
                        "exp_avg_sq": moments[f"exp_avg_sq.{name}"].clone()}

    with h5py.File(os.path.join(run_dir, "metrics.h5"), "r") as f:
        positions = json.loads(text_attr(f, "sink_positions"))
        rows = {g: {c: f[g][c][...] for c in f[g]} for g in ("sink", "heavy")}
    logged = {"sink": {}, "heavy": {}}  # column -> differences over the replayed steps' rows

    def check(group, step, got):  # the values of `got` that are columns of the group
        at = np.nonzero(rows[group]["step"] == step)[0]
        if len(at) == 0:
            return
        got = {name: v for name, v in got.items() if name in rows[group]}
        for name, d in differences({c: v[at[0]] for c, v in rows[group].items()}, got).items():
            worst = logged[group].setdefault(name, {"max_diff": 0.0, "max_abs": 0.0, "rows": 0})
            worst.update(max_diff=max(worst["max_diff"], d["max_diff"]), max_abs=max(worst["max_abs"], d["max_abs"]),
                         rows=worst["rows"] + 1)

    steps = []
    for step in range(first, last):  # 0-based: the update that makes checkpoint step + 1
        opt.zero_grad()
        total = 0.0
        for _ in range(accum):
            ids, tgt = data.next()
            x, metrics, _, channels = forward_with_metrics(P, ocfg, cfg, ids, positions)  # the last one's are logged
            loss = loss_of(x, P, ocfg, tgt) / accum
            loss.backward()
            total += loss.item()
        # The metrics of step + 1 describe its forward pass: the weights before its update, super neurons included.
        metrics.update(super_neurons(P, cfg["model"]["n_layer"], cfg["model"]["d_ff"]),
                       ffn_top_channel=channels.astype(np.float64),
                       sink_rate=sink_rate(metrics["attn_mass"], positions, cfg))
        check("sink", step + 1, metrics)
        check("heavy", step + 1, metrics)
        norm = math.sqrt(sum(float((p.grad ** 2).sum()) for p in P.values()))
        clip = float(t["grad_clip"]) / norm if 0 < float(t["grad_clip"]) < norm else 1.0
        for p in P.values():
            p.grad.mul_(clip)
        lr = lr_at(t, step)
        for g in opt.param_groups:
            g["lr"] = lr
        opt.step()
        steps.append({"step": step + 1, "loss": total, "grad_norm": norm, "lr": lr, "clip": clip})

    want, _ = read_safetensors(os.path.join(ckpt(last), "model.safetensors"))
    weights = {name: {"max_diff": float((P[name].detach() - want[name]).abs().max()),
                      "max_abs": float(want[name].abs().max()), "decayed": bool(decayed(name))} for name in P}
    uncovered = [f"{g}/{c}" for g in rows for c in rows[g] if c != "step" and c not in logged[g]]
    print(json.dumps({"steps": steps, "weights": weights, "metrics": logged, "uncovered": uncovered}))


# ------------------------------------------------------------------------------------------ eval-metrics
def forward_with_metrics(P, ocfg, cfg, ids, positions):
    """The last block's output for ids [B, T] (with gradients where enabled); the sink metrics of this forward pass
    by their definitions (README, "Sink metrics"), each stacked over layers, that are a mean over a run's ranks and
    an eval's batches; each layer's W_O input at the first positions; and each layer's FFN channel of the largest
    |activation| at token 0."""
    m = cfg["model"]
    T, Fd = m["seq_len"], m["d_ff"]
    Tp, Q = min(cfg["metrics"]["wo_std_positions"], T), min(64, T)
    isolated = set(cfg["intervention"]["isolate"])
    # The rows that see key pos: not those isolated after it.
    rows = lambda pos: [r for r in range(pos, T) if r == pos or r not in isolated]
    x = P["wte"][ids]
    layers, wo_rows, channels = [], [], []
    for l in range(m["n_layer"]):
        rec = {}
        x = llama_ref.block(x, P, l, ocfg, rec)
        p, xn, wo, att, act, h = [t.detach() for t in (rec["p"], rec["xn"], rec["wo_in"], rec["att"], rec["act"], x)]
        v = {}
        v["attn_mass"] = np.stack([p[:, :, rows(pos), pos].mean(dim=(0, 2)).numpy() for pos in positions], axis=-1)
        v["wo_input_std"] = wo[:, :Tp].std(dim=-1, unbiased=False).mean(dim=0).numpy()
        v["attn_out_std"] = att[:, :Tp].std(dim=-1, unbiased=False).mean(dim=0).numpy()
        wo_rows.append(wo[:, :Tp])
        x0 = xn[:, 0].abs()
        v["dominance"] = float((x0.max(dim=-1).values / x0.mean(dim=-1)).mean())
        a0 = act[:, 0].abs()
        v["ffn_max_act"] = np.array([float(a0.max()), float(act[:, 1:].abs().max())])
        channels.append(int(a0.flatten().argmax()) % Fd)
        norms = h.norm(dim=-1)  # [B, T]
        v["token0_norm_ratio"] = float(norms[:, 0].mean() / norms[:, 1:].mean())
        h0 = h[0].abs().flatten().sort().values  # sequence 0
        v["massive"] = float(h0[-1] / h0[(len(h0) - 1) // 2])
        sv = torch.linalg.svdvals(h[0])
        share = sv[sv > 0] / sv.sum()
        v["effective_rank"] = float(torch.exp(-(share * share.log()).sum()))
        v["attn_map"] = np.zeros((64, 64))
        v["attn_map"][:Q, :Q] = p[0, :, :Q, :Q].mean(dim=0).numpy()
        layers.append(v)
    return x, {k: np.stack([v[k] for v in layers]) for k in layers[0]}, wo_rows, np.array(channels)


def sink_rate(attn_mass, positions, cfg):
    return (attn_mass[:, :, positions.index(0)] > float(cfg["metrics"]["sink_eps"])).mean(axis=1)


def super_neurons(P, L, Fd):
    """ffn_gate_norm, ffn_up_norm ([L, 2]: the largest and the median row norm) and ffn_top_unit of the weights."""
    out = {}
    for key, half in (("ffn_gate_norm", 0), ("ffn_up_norm", 1)):
        norms = torch.stack([P[f"layers.{l}.w13"][half * Fd : (half + 1) * Fd].detach().norm(dim=1) for l in range(L)])
        middle = norms.sort(dim=1).values[:, (Fd - 1) // 2 : Fd // 2 + 1].mean(dim=1)
        out[key] = torch.stack([norms.max(dim=1).values, middle], dim=1).numpy()
        out.setdefault("ffn_top_unit", []).append(norms.argmax(dim=1).numpy())
    out["ffn_top_unit"] = np.stack(out["ffn_top_unit"], axis=1).astype(np.float64)
    return out


def differences(ours, got):
    """{column: {max_diff, max_abs}} of the columns both have."""
    return {name: {"max_diff": float(np.abs(np.asarray(ours[name]).reshape(np.shape(want)) - want).max()),
                   "max_abs": float(np.abs(want).max())} for name, want in got.items()}


def eval_metrics(ckpt_dir, eval_h5):
    import h5py
    import yaml

    P, _ = read_safetensors(os.path.join(ckpt_dir, "model.safetensors"))
    with h5py.File(eval_h5, "r") as f:
        ours = {name: np.asarray(f["eval"][name][0], dtype=np.float64) for name in f["eval"]}
        cfg = yaml.safe_load(text_attr(f, "config_yaml"))
        positions = json.loads(text_attr(f, "sink_positions"))
        batches = int(f.attrs["batches"])
    ocfg, m = oracle_config(cfg), cfg["model"]
    B, T = cfg["train"]["micro_batch"], m["seq_len"]
    tokens = read_tokens(cfg["data"]["val"])

    got = {"loss": 0.0}
    wo_rows = [[] for _ in range(m["n_layer"])]  # per layer: [B, Tp, H hd] of every batch
    votes = [{} for _ in range(m["n_layer"])]    # per layer: channel -> batches whose token-0 maximum it holds
    with torch.no_grad():
        for i in range(batches):
            ids, tgt = val_batch(tokens, i, B, T)
            x, metrics, wo, channels = forward_with_metrics(P, ocfg, cfg, ids, positions)
            for key, value in metrics.items():
                got[key] = got.get(key, 0) + value / batches
            for l in range(m["n_layer"]):
                wo_rows[l].append(wo[l])
                votes[l][channels[l]] = votes[l].get(channels[l], 0) + 1
            got["loss"] += float(loss_of(x, P, ocfg, tgt)) / batches
    # Over sequences: each (position, channel)'s std, then the mean over channels.
    got["wo_dimwise_std"] = np.stack([torch.cat(r).std(dim=0, unbiased=False).mean(dim=-1).numpy() for r in wo_rows])
    got["sink_rate"] = sink_rate(got["attn_mass"], positions, cfg)
    got["sink_percent"] = 100 * got["sink_rate"].mean()
    # The channel most batches had; ties go to the lowest.
    got["ffn_top_channel"] = np.array([min(v, key=lambda c: (-v[c], c)) for v in votes], dtype=np.float64)
    got.update(super_neurons(P, m["n_layer"], m["d_ff"]))
    print(json.dumps({"columns": differences(ours, got),
                      "uncovered": [n for n in ours if n != "step" and n not in got]}))


# --------------------------------------------------------------------------------------------- hf-logits
def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def rope_hf(x, theta):
    """x: [B, nh, T, hd]; HF's LlamaRotaryEmbedding + apply_rotary_pos_emb: pairs (i, i + hd/2)."""
    T, hd = x.shape[2], x.shape[3]
    inv_freq = 1.0 / (theta ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
    freqs = torch.outer(torch.arange(T, dtype=torch.float64), inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    return x * emb.cos() + rotate_half(x) * emb.sin()


def rope_interleaved(x, theta):
    """The convention HF does not use (pairs (2i, 2i + 1)): the negative control."""
    T, hd = x.shape[2], x.shape[3]
    inv = theta ** (-torch.arange(0, hd, 2, dtype=torch.float64) / hd)
    ang = torch.arange(T, dtype=torch.float64)[:, None] * inv[None, :]
    cos, sin = ang.cos(), ang.sin()
    out = torch.empty_like(x)
    out[..., 0::2] = x[..., 0::2] * cos - x[..., 1::2] * sin
    out[..., 1::2] = x[..., 0::2] * sin + x[..., 1::2] * cos
    return out


def rms_norm(x, w, eps):
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def hf_llama_logits(c, W, ids, rope):
    B, T = ids.shape
    H, Hkv, hd = c["num_attention_heads"], c["num_key_value_heads"], c["head_dim"]
    eps, theta = c["rms_norm_eps"], c["rope_theta"]
    h = W["model.embed_tokens.weight"][ids]
    mask = torch.full((T, T), float("-inf"), dtype=torch.float64).triu(1)
    for l in range(c["num_hidden_layers"]):
        p = lambda n: W[f"model.layers.{l}.{n}.weight"]
        x = rms_norm(h, p("input_layernorm"), eps)
        q = (x @ p("self_attn.q_proj").T).view(B, T, H, hd).transpose(1, 2)
        k = (x @ p("self_attn.k_proj").T).view(B, T, Hkv, hd).transpose(1, 2)
        v = (x @ p("self_attn.v_proj").T).view(B, T, Hkv, hd).transpose(1, 2)
        q, k = rope(q, theta), rope(k, theta)
        k = k.repeat_interleave(H // Hkv, dim=1)  # repeat_kv
        v = v.repeat_interleave(H // Hkv, dim=1)
        att = torch.softmax(q @ k.transpose(-1, -2) / hd ** 0.5 + mask, dim=-1)
        o = (att @ v).transpose(1, 2).reshape(B, T, H * hd)
        h = h + o @ p("self_attn.o_proj").T
        x = rms_norm(h, p("post_attention_layernorm"), eps)
        h = h + (F.silu(x @ p("mlp.gate_proj").T) * (x @ p("mlp.up_proj").T)) @ p("mlp.down_proj").T
    h = rms_norm(h, W["model.norm.weight"], eps)
    assert c["tie_word_embeddings"] and "lm_head.weight" not in W
    return h @ W["model.embed_tokens.weight"].T


def hf_logits(hf_dir, ids_path, out):
    c = json.load(open(os.path.join(hf_dir, "config.json")))
    assert c["architectures"] == ["LlamaForCausalLM"] and c["hidden_act"] == "silu", c
    W, meta = read_safetensors(os.path.join(hf_dir, "model.safetensors"))
    assert meta.get("format") == "pt", meta
    B, T = map(int, open(ids_path + ".shape").read().split())
    ids = torch.from_numpy(np.fromfile(ids_path, dtype="<i4").astype(np.int64)).view(B, T)
    with torch.no_grad():
        hf_llama_logits(c, W, ids, rope_hf).numpy().astype("<f8").tofile(out)
        hf_llama_logits(c, W, ids, rope_interleaved).numpy().astype("<f8").tofile(out + ".wrong_rope")


if __name__ == "__main__":
    if sys.argv[1] == "val-loss":
        val_loss(sys.argv[2])
    elif sys.argv[1] == "train-steps":
        train_steps(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    elif sys.argv[1] == "eval-metrics":
        eval_metrics(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "hf-logits":
        hf_logits(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        sys.exit(f"unknown mode {sys.argv[1]}")
