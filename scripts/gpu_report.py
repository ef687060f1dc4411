"""Writes OUT/report.md for scripts/gpu_check.sh from its stage table and logs, and prints the summary table last.

Usage: python3 scripts/gpu_report.py STAGES.tsv LOGS OUT     (standard library only: it runs under any python3)
STAGES.tsv: one line per stage, tab-separated: name, status (ok | TIMEOUT | FAIL (rc N) | SKIPPED (...)), seconds,
limit.
LOGS: the folder of the stages' NAME.log files (and the profile stage's ncu-raw.csv).
"""
import csv
import os
import re
import sys

# sinklab bench's main table: #, variant, tokens/s, step ms, MFU %, vs first, measured and estimated GiB, spread %.
BENCH_ROW = re.compile(
    r"^\s*(\d+)\s+(.+?)\s+(\d+)\s+([\d.]+)\s+([\d.]+)%\s+([\d.]+)x\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)%\s*$")


def read(logs, name):
    path = os.path.join(logs, name + ".log")
    return open(path, encoding="utf-8", errors="replace").read().splitlines() if os.path.exists(path) else []


def bench_rows(lines, profiled=False):
    """{label: (tokens/s, step ms, MFU %, GiB, estimated GiB, vs first, spread %)} from sinklab bench's main tables
    of the runs without per-op timing, the last row of each label; with profiled, of the runs with it (their header
    says so), whose synchronization makes them no measure of speed."""
    rows, timing = {}, False
    for line in lines:
        if line.startswith("bench "):
            timing = "per-op timing on" in line
            continue
        m = BENCH_ROW.match(line)
        if m and timing == profiled:
            rows[m.group(2).strip()] = tuple(float(m.group(i)) for i in (3, 4, 5, 7, 8, 6, 9))
    return rows


def attention_rates(lines):
    """{label: (forward, backward TFLOP/s, as printed)} from the first table of a bench log that has its attention
    rows: their columns follow the main table's rows above them."""
    labels = []
    rates = {}
    for line in lines:
        m = BENCH_ROW.match(line)
        if m:
            labels.append(m.group(2).strip())
            continue
        m = re.match(r"^(fwd|bwd) TFLOP/s\s+(.*)$", line)
        if m and labels:
            rates[m.group(1)] = m.group(2).split()
            if len(rates) == 2:
                return {label: (f, b) for label, f, b in zip(labels, rates["fwd"], rates["bwd"])}
    return {}


# Ratios come from the `vs first` column: with rounds, the median of per-round ratios, steadier than a ratio of
# medians. Every run's first row is standard on ours, so rows of different runs compare through it. The overheads
# come from the run that times them alone (gpu_bench.sh's second, whose labels name no implementation), else from
# one that compares implementations.
HEADNORM = ("headnorm", "headnorm [sinklab]")
METRICS = ("standard +metrics", "standard [sinklab] +metrics")


def overhead(rows, labels):
    """The step time of the first of `labels` in rows against standard on ours, in per cent; None without either."""
    std = rows.get("standard [sinklab]")
    r = next((rows[label] for label in labels if label in rows), None)
    return 100 * (std[5] / r[5] - 1) if std and r else None


def bench_summary(rows, rates=None):
    std = rows.get("standard [sinklab]")
    if not std:
        return "no results"

    def rel(labels):
        o = overhead(rows, labels)
        return f"{o:+.1f}%" if o is not None else "n/a"

    def vs_ours(label):
        r = rows.get(label)
        return f"{r[5] / std[5]:.3f}x our tokens/s" if r else "n/a"

    return (f"standard {std[0] / 1e3:,.0f}k tok/s, MFU {std[2]:.1f}%; time vs standard: "
            f"headnorm {rel(HEADNORM)}, "
            f"+metrics {rel(METRICS)}; "
            f"with our wgmma attention {vs_ours('standard [sinklab_wgmma]')}, "
            f"with cuDNN attention {vs_ours('standard [cudnn]')}; "
            f"memory {std[3]:.2f} GiB (sinklab info: {std[4]:.2f}); rounds spread up to "
            f"{max(r[6] for r in rows.values()):.1f}%" + (
                "; attention TFLOP/s forward/backward: " +
                ", ".join(f"{label} {f}/{b}" for label, (f, b) in rates.items() if not label.endswith("+metrics"))
                if rates else ""))


# Issue 6's speed goals for llama-152m on one H200, each judged in the same call: MFU, tokens/s against
# torch.compile's, and the step time that HeadNorm and the per-step sink metrics add.
MFU_GOAL, TORCH_GOAL, OVERHEAD_GOAL = 40.0, 1.0, 2.0
IMPLS = ("sinklab", "sinklab_wgmma", "cudnn")


def goals_table(bench, torch):
    """Markdown rows: each goal, then per sequence length its value and whether it is met ("n/a" where the check
    gave no value); [] without bench results. bench: {T: bench rows}; torch: {T: torch.compile's tokens/s or None}."""
    lengths = sorted(bench, key=int)
    if not lengths:
        return []

    def row(goal, value, fmt, met):
        cells = []
        for T in lengths:
            v = value(T)
            cells.append("n/a" if v is None else f"{fmt.format(v)} ({'met' if met(v) else 'not met'})")
        return f"| {goal} | " + " | ".join(cells) + " |"

    def mfu(impl):
        def value(T):
            r = bench[T].get(f"standard [{impl}]")
            return r[2] if r else None
        return value

    def vs_torch(impl):
        def value(T):
            r, t = bench[T].get(f"standard [{impl}]"), torch.get(T)
            return r[0] / t if r and t else None
        return value

    out = ["| goal | " + " | ".join(f"T={T}" for T in lengths) + " |", "| --- " * (len(lengths) + 1) + "|"]
    out += [row(f"MFU >= {MFU_GOAL:.0f}%, standard [{i}]", mfu(i), "{:.1f}%", lambda v: v >= MFU_GOAL)
            for i in IMPLS]
    out += [row(f"tokens/s >= {TORCH_GOAL:.1f}x torch.compile, standard [{i}]", vs_torch(i), "{:.3f}x",
                lambda v: v >= TORCH_GOAL) for i in IMPLS]
    for what, labels in (("HeadNorm", HEADNORM), ("per-step sink metrics", METRICS)):
        out.append(row(f"{what}: step time <= +{OVERHEAD_GOAL:.0f}% (our attention)",
                       lambda T, labels=labels: overhead(bench[T], labels), "{:+.1f}%", lambda v: v <= OVERHEAD_GOAL))
    return out


def torch_tokens(lines):
    for line in lines:
        m = re.match(r"^torch tokens/s ([\d.]+)", line)
        if m:
            return float(m.group(1))
    return None


# GoogleTest's line for a test that ended: its outcome and name.
TEST_END = re.compile(r"^\[\s+(OK|FAILED|SKIPPED)\s+\] (\S+) \(")


def test_counts(lines):
    """Tests passed, failed and skipped, from GoogleTest's line for each test that ended: over every run in the log
    (the tests stage runs two), and for a run cut short as far as it got."""
    counts = {}
    for line in lines:
        m = TEST_END.match(line)
        if m:
            k = "PASSED" if m.group(1) == "OK" else m.group(1)
            counts[k] = counts.get(k, 0) + 1
    return {k: counts[k] for k in ("PASSED", "FAILED", "SKIPPED") if k in counts}


def unfinished_test(lines):
    started = [line.split()[-1] for line in lines if line.startswith("[ RUN      ]")]
    done = {m.group(2) for m in map(TEST_END.match, lines) if m}
    left = [t for t in started if t not in done]
    return left[-1] if left else None


def failure_messages(lines, per_test=12):
    """Each failed test's name, then the first lines it printed between its RUN and FAILED lines: the values that
    show what went wrong (CudaWgmma's name the operand elements the hardware read)."""
    out, block = [], []
    for line in lines:
        if line.startswith("[ RUN      ]"):
            block = []
            continue
        m = TEST_END.match(line)
        if m and m.group(1) == "FAILED":
            out += [f"[  FAILED  ] {m.group(2)}"] + ["    " + l for l in block[:per_test]]
            if len(block) > per_test:
                out.append(f"    ... {len(block) - per_test} more lines in tests.log")
            block = []
        elif not line.startswith("[") and line != "Failed":  # GoogleTest's "Failed" follows each file:line
            block.append(line)
    return out


def train_summary(lines):
    train = [(int(m.group(1)), float(m.group(2))) for m in
             (re.match(r"^step\s+(\d+)/\d+ \| loss ([\d.]+)", line) for line in lines) if m]
    val = [(int(m.group(1)), float(m.group(2))) for m in
           (re.match(r"^step\s+(\d+) \| val loss ([\d.]+)", line) for line in lines) if m]
    if not train:
        return "no steps logged"
    s = f"loss {train[0][1]:.3f} (step {train[0][0]}) -> {train[-1][1]:.3f} (step {train[-1][0]})"
    if val:
        s += f"; val {val[0][1]:.3f} (step {val[0][0]}) -> {val[-1][1]:.3f} (step {val[-1][0]})"
    return s


TENSOR_PIPE = re.compile(r"^sm__pipe_tensor_op_(\w+?)_cycles_active\.avg\.pct_of_peak_sustained_active$")
STALL = re.compile(r"^smsp__average_warps_issue_stalled_(\w+)_per_issue_active\.ratio$")
# The throughput of L2 and of L1 / shared memory against their peaks, from the speed-of-light section: whether the
# attention kernels' tile loads (L2) or their operand reads (shared memory) bound them.
MEMORY_SOL = ((re.compile(r"^dram__throughput\.avg\.pct_of_peak_sustained_\w+$"), "DRAM"),
              (re.compile(r"^lts__throughput\.avg\.pct_of_peak_sustained_\w+$"), "L2"),
              (re.compile(r"^l1tex__throughput\.avg\.pct_of_peak_sustained_\w+$"), "L1/shared"))
TO_US = {"nsecond": 1e-3, "usecond": 1.0, "msecond": 1e3, "second": 1e6}


# The products each attention kernel runs per pair of 64 x 64 tiles (query tile, key tile at or below it): the
# forward S and P V; dK/dV S^T, dP^T, dV and dK; dQ S, dP and dQ; dQ from the kept dS (dq_ds) dQ alone.
ATTN_PRODUCTS = {"fwd": 2, "dkdv": 4, "dq": 3, "dq_ds": 1}
PEAK_TFLOPS = 989.0  # H100 / H200 dense bf16


def attention_shape(path):
    """(B, T, H, padded head dim) of the profiled model from `sinklab info --yaml`, or None."""
    if not os.path.exists(path):
        return None
    keys = {}
    for line in open(path, encoding="utf-8", errors="replace"):
        m = re.match(r"^\s+(micro_batch|seq_len|n_head|d_model):\s+(\d+)", line)
        if m:
            keys.setdefault(m.group(1), int(m.group(2)))
    if len(keys) < 4:
        return None
    hd = keys["d_model"] // keys["n_head"]
    return keys["micro_batch"], keys["seq_len"], keys["n_head"], next(p for p in (32, 64, 128) if hd <= p)


def tensor_tflops(kernel, seconds, shape):
    """The tensor-core rate of an attention kernel: the FLOPs of the products it runs on 64 x 64 tiles up to the
    diagonal (the masked diagonal tiles whole), over its time."""
    B, T, H, hdp = shape
    n = (T + 63) // 64
    flops = B * H * n * (n + 1) // 2 * ATTN_PRODUCTS[kernel] * 2 * 64 * 64 * hdp
    return flops / seconds / 1e12


def profile_lines(path, shape=None):
    """One line per kernel of ncu's raw CSV (a row of metric names, a row of units, a row per kernel): its template
    arguments (the last says wgmma), time, the tensor-core rate its products reach when the profiled shape is
    known, tensor-pipe and issue activity, achieved occupancy, DRAM, L2 and L1 / shared-memory throughput,
    registers, and the three largest stall reasons in cycles per issued instruction."""
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8", errors="replace") as f:
        rows = [r for r in csv.reader(f) if r]
    start = next((i for i, r in enumerate(rows) if "Kernel Name" in r), None)
    if start is None or start + 1 >= len(rows):
        return []
    names, units = rows[start], rows[start + 1]

    def number(row, metric):
        if metric not in names:
            return None
        try:
            return float(row[names.index(metric)].replace(",", ""))
        except (ValueError, IndexError):
            return None

    # The metrics shown as percentages, the same for every row: every tensor pipe ncu names (hmma for mma.sync;
    # Hopper's wgmma may count under another), issue activity, occupancy, then DRAM, L2 and L1 / shared-memory
    # throughput.
    tensor = [(n, f"tensor pipe {m.group(1)}") for n in names for m in [TENSOR_PIPE.match(n)] if m]
    memory = [next(((n, label) for n in names if pattern.match(n)), (None, label)) for pattern, label in MEMORY_SOL]
    percents = tensor + [("smsp__issue_active.avg.pct_of_peak_sustained_active", "issue active"),
                         ("sm__warps_active.avg.pct_of_peak_sustained_active", "occupancy")] + memory
    lines = []
    for row in rows[start + 2:]:
        if len(row) != len(names):
            continue
        kernel = re.search(r"attn_(\w+?)_kernel(<[^>]*>)?", row[names.index("Kernel Name")])
        parts = [kernel.group(0) if kernel else row[names.index("Kernel Name")][:40]]
        t = number(row, "gpu__time_duration.sum")
        if t is not None:
            us = t * TO_US.get(units[names.index("gpu__time_duration.sum")], 1.0)
            parts.append(f"{us:.0f} us")
            if shape and kernel and kernel.group(1) in ATTN_PRODUCTS and us > 0:
                rate = tensor_tflops(kernel.group(1), us * 1e-6, shape)
                parts.append(f"{rate:.0f} TFLOP/s ({100 * rate / PEAK_TFLOPS:.0f}% of {PEAK_TFLOPS:.0f})")
        for metric, label in percents:
            v = number(row, metric)
            if v is not None:
                parts.append(f"{label} {v:.0f}%")
        regs = number(row, "launch__registers_per_thread")
        if regs is not None:
            parts.append(f"{regs:.0f} registers")
        stalls = sorted(((number(row, n), m.group(1)) for n in names for m in [STALL.match(n)]
                         if m and m.group(1) != "selected" and number(row, n) is not None), reverse=True)[:3]
        if stalls:
            parts.append("stalls (cycles per issue): " + ", ".join(f"{k} {v:.2f}" for v, k in stalls))
        lines.append("; ".join(parts))
    return lines


SASS_OP = re.compile(r"/\*[0-9a-f]{4,}\*/\s+(?:@!?U?P[T0-9]+\s+)?([A-Z][A-Z0-9_]*)")
SASS_KINDS = ("HMMA", "HGMMA", "WARPGROUP", "LDSM", "LDGSTS", "MUFU", "FFMA", "FMUL", "FADD", "FMNMX", "F2FP", "LDS",
              "STS", "BAR", "SHFL", "IMAD", "IADD3", "LEA", "ISETP", "BRA")


def sass_lines(path):
    """One line per kernel of cuobjdump -sass: its instruction count and the counts of the kinds that matter to the
    attention kernels (tensor-core, shared-memory and special-function instructions, and the integer and branch
    overhead around them), whole kernel, each instruction once."""
    if not os.path.exists(path):
        return []
    kernels = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            m = re.search(r"Function : (\S+)", line)
            if m:
                kernels.append((m.group(1), {}))
                continue
            m = SASS_OP.search(line)
            if m and kernels:
                ops = kernels[-1][1]
                ops[m.group(1)] = ops.get(m.group(1), 0) + 1
    lines = []
    for mangled, ops in kernels:
        k = re.search(r"(attn_\w+?_kernel)I(\w+?)EEv", mangled)
        args = re.findall(r"L([ib])(\d+)E", k.group(2)) if k else []
        label = (f"{k.group(1)}<" + ", ".join(v if t == "i" else ("false", "true")[int(v)] for t, v in args) + ">"
                 if k else mangled[:60])
        kinds = ", ".join(f"{kind} {ops[kind]}" for kind in SASS_KINDS if kind in ops)
        lines.append(f"{label}: {sum(ops.values())} instructions; {kinds}")
    return lines


def main():
    stages_path, log_dir, out = sys.argv[1], sys.argv[2], sys.argv[3]
    stages = [line.rstrip("\n").split("\t") for line in open(stages_path, encoding="utf-8") if line.strip()]
    logs = {s[0]: read(log_dir, s[0]) for s in stages}
    bench = {s[0]: bench_rows(logs[s[0]]) for s in stages if s[0].startswith("bench-")}

    key = {}
    pre = logs.get("preflight", [])
    gpu = next((l for l in pre if re.match(r"^NVIDIA |^[A-Z].*, \d+\.\d+", l) and "name" not in l), None)
    torch_line = next((l for l in pre if l.startswith("torch ")), "torch: ?")
    key["preflight"] = f"{gpu or 'no GPU seen'}; {torch_line}"
    counts = test_counts(logs.get("tests", []))
    key["tests"] = ", ".join(f"{v} {k.lower()}" for k, v in counts.items()) or "no summary"
    stuck = unfinished_test(logs.get("tests", []))
    if stuck:
        key["tests"] += f"; unfinished: {stuck}"
    for name, rows in bench.items():
        profiled = {} if rows else bench_rows(logs[name], profiled=True)
        if rows:
            key[name] = bench_summary(rows, attention_rates(logs[name]))
        elif profiled:
            key[name] = ("only the run with per-op timing finished (no speed figures, no goals): " +
                         bench_summary(profiled, attention_rates(logs[name])))
        else:
            key[name] = "no results"
    torch = {}
    for s in stages:
        if s[0].startswith("torch-"):
            length = s[0].split("-", 1)[1]
            t = torch[length] = torch_tokens(logs[s[0]])
            rows = bench.get("bench-" + length, {})
            ours, wgmma, cudnn = (rows.get(f"standard [{i}]") for i in IMPLS)
            key[s[0]] = (f"torch {t / 1e3:,.0f}k tok/s" if t else "no result") + (
                f"; sinklab/torch {ours[0] / t:.3f}x" if t and ours else "") + (
                f", with wgmma attention {wgmma[0] / t:.3f}x" if t and wgmma else "") + (
                f", with cuDNN attention {cudnn[0] / t:.3f}x" if t and cudnn else "")
    key["train"] = train_summary(logs.get("train", []))
    key["sanitize"] = "; ".join(l.strip() for l in logs.get("sanitize", [])
                                if re.search(r"(ERROR|RACECHECK) SUMMARY", l)) or "no summary"
    profile = profile_lines(os.path.join(log_dir, "ncu-raw.csv"),
                            attention_shape(os.path.join(log_dir, "profile-config.yaml")))
    sass = sass_lines(os.path.join(log_dir, "attn.sass"))
    key["profile"] = (f"{len(profile)} kernels profiled (see below)" if profile else "no ncu results") + (
        f"; SASS of {len(sass)} kernels" if sass else "")

    table = ["| stage | status | time | key result |", "| --- | --- | --- | --- |"]
    for name, status, secs, limit in stages:
        table.append(f"| {name} | {status} | {secs}s of {limit}s | {key.get(name, '')} |")

    md = ["# sinklab GPU check", ""]
    commit = next((l for l in pre if l.startswith("commit ")), None)
    if commit:
        md += [f"Build: {commit}.", ""]
    goals = goals_table({name.split("-", 1)[1]: rows for name, rows in bench.items() if rows}, torch)
    md += ["## Summary", ""] + table + [""]
    if goals:
        md += ["## Issue 6 goals", "", "MFU against the dense bf16 datasheet peak sinklab bench uses (H100 / H200: 989 "
               "TFLOP/s); tokens/s and overheads from the bench runs without per-op timing.", ""] + goals + [""]
    failed = failure_messages(logs.get("tests", []))
    precision = [l for l in logs.get("tests", []) if re.search(r"worst (gradient error/bound|relative difference)", l)]
    md += ["## tests", "", "```"] + (failed or ["no failed tests listed"]) + precision + ["```", ""]
    for name in bench:
        lines = logs[name]
        start = next((i for i, l in enumerate(lines) if l.startswith("bench ")), 0)
        md += [f"## {name}", "", "```"] + lines[start:] + ["```", ""]
    if profile:
        md += ["## profile", "", "```"] + profile + ["```", ""]
    if sass:
        md += ["## SASS (cuobjdump, whole kernels)", "", "```"] + sass + ["```", ""]
    for s in stages:
        if s[0].startswith("torch-") or s[0] == "train" or s[0] == "preflight":
            md += [f"## {s[0]}", "", "```"] + logs[s[0]][-40:] + ["```", ""]
    # Written aside and renamed: gpu_check.sh rewrites it after every stage, and a call cut short keeps the last.
    with open(os.path.join(out, "report.md.tmp"), "w", encoding="utf-8") as f:
        f.write("\n".join(md) + "\n")
    os.replace(os.path.join(out, "report.md.tmp"), os.path.join(out, "report.md"))
    print(f"\nreport: {os.path.join(out, 'report.md')}\n")
    if goals:
        print("\n".join(goals) + "\n")
    print("\n".join(table))


if __name__ == "__main__":
    main()
