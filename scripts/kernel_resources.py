"""Registers, spills, stack and shared memory of every CUDA kernel of a build, as ptxas reports them.

Reads the figures the build kept beside each object of sinklab_core (OBJECT.ptxas.log, cmake/ptxas_log.sh), or
where there is none or it is older than its object, recompiles that source with the build's own nvcc command (from
BUILD/compile_commands.json, the object going to a temporary folder) plus --resource-usage; prints one row per
kernel and architecture.
No GPU is needed: these are the compiler's figures, the ones to quote for a kernel change made without a GPU.
The last column lists the codes of ptxas's notes on a kernel's wgmma code (sm_90a): a warpgroup wait or arrive it
injected (C7517, C7519: an accumulator or operand used while its wgmma may be in flight), or wgmmas it serialized.
Each costs the overlap the kernel was written for.

Usage: python3 scripts/kernel_resources.py [--build DIR] [--match REGEX] [--arch ARCH] [--fail-on-spill]
                                           [--fail-on-wgmma-note] [SOURCE ...]
  --build DIR           the CMake build folder (default build); it must have been configured with CUDA
  --match REGEX         only kernels whose name (as printed) matches
  --arch ARCH           only this architecture's code (sm_90a, sm_80, as ptxas names them); default: every one built
  --fail-on-spill       exit 1 when any kernel listed spills registers to local memory
  --fail-on-wgmma-note  exit 1 when ptxas noted an injected wait or serialized wgmmas in any kernel listed
  SOURCE                only these .cu files (paths or file names); default: every .cu file outside tests/
"""
import argparse
import concurrent.futures
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile

ENTRY = re.compile(r"Compiling entry function '([^']+)' for '(sm_\w+)'")
PROPERTIES = re.compile(r"Function properties for (\S+)")
FRAME = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
USED = re.compile(r"Used (\d+) registers")
SMEM = re.compile(r"(\d+) bytes smem")
# ptxas info    : (C7517) warpgroup.wait is injected in around line 121214 by compiler to allow use of registers
# defined by GMMA in function '_ZN...' (one line); serializations read "wgmma.mma_async instructions are serialized".
WGMMA_NOTE = re.compile(r"\((C\d+)\)[^']*(?:wgmma|warpgroup|GMMA)[^']*function '([^']+)'")


def fail(msg):
    print(f"kernel_resources: {msg}", file=sys.stderr)
    sys.exit(2)


def parse(log):
    """[{name, arch, registers, stack, spill_stores, spill_loads, smem, notes}] of the entry functions in a ptxas
    log; notes: the codes of ptxas's notes on its wgmma code."""
    kernels = []
    current = None
    properties_of = None
    notes = {}
    for line in log.splitlines():
        m = WGMMA_NOTE.search(line)
        if m:
            notes.setdefault(m.group(2), []).append(m.group(1))
            continue
        m = ENTRY.search(line)
        if m:
            current = {"name": m.group(1), "arch": m.group(2), "stack": 0, "spill_stores": 0, "spill_loads": 0,
                       "smem": 0, "registers": None}
            kernels.append(current)
            continue
        m = PROPERTIES.search(line)
        if m:
            properties_of = m.group(1)
            continue
        m = FRAME.search(line)
        if m and current and properties_of == current["name"]:
            current["stack"], current["spill_stores"], current["spill_loads"] = map(int, m.groups())
            continue
        m = USED.search(line)
        if m and current:
            current["registers"] = int(m.group(1))
            s = SMEM.search(line)
            current["smem"] = int(s.group(1)) if s else 0
    missing = [k["name"] for k in kernels if k["registers"] is None]
    if missing:
        fail(f"no register count in the ptxas output for {missing[0]}; has its format changed?")
    for k in kernels:  # a note names the function, not the architecture: only sm_90a code has wgmma
        k["notes"] = sorted(set(notes.get(k["name"], []))) if k["arch"] == "sm_90a" else []
    return kernels


def short_names(mangled):
    """Demangled names without namespaces and parameter lists: attn_fwd_kernel<64, true, true>."""
    out = subprocess.run(["c++filt"], input="\n".join(mangled), capture_output=True, text=True, check=True).stdout
    names = []
    for name in out.splitlines():
        name = re.sub(r"\(anonymous namespace\)::|sinklab::(?:cuda::)?|^void ", "", name)
        depth = 0
        for i, ch in enumerate(name):
            depth += ch == "<"
            depth -= ch == ">"
            if ch == "(" and depth == 0 and i > 0:
                name = name[:i]
                break
        names.append(name)
    return names


def kept_log_is_current(entry, obj_rel, kept):
    """Whether the build's kept ptxas log is newer than its object and every file its compile read: the source and
    its headers from ninja's deps log, which an edit since the build makes newer (the source alone where there is
    no ninja build to ask)."""
    obj = os.path.join(entry["directory"], obj_rel)
    if not (os.path.exists(obj) and os.path.exists(kept)) or os.path.getmtime(kept) < os.path.getmtime(obj):
        return False
    inputs = [entry["file"]]
    if os.path.exists(os.path.join(entry["directory"], "build.ninja")):
        run = subprocess.run(["ninja", "-C", entry["directory"], "-t", "deps", obj_rel], capture_output=True,
                             text=True)
        lines = run.stdout.splitlines()
        if run.returncode != 0 or not lines or "(VALID)" not in lines[0]:
            return False
        inputs = [line.strip() for line in lines[1:] if line.strip()]
    logged = os.path.getmtime(kept)
    return all(os.path.exists(i) and os.path.getmtime(i) <= logged for i in inputs)


def ptxas_log(entry, tmp):
    """The ptxas log of one compile_commands.json entry: the one the build kept if it is newer than everything its
    compile read, else that of a compile with --resource-usage into tmp (so that figures follow an edit made
    since the build)."""
    args = entry["arguments"] if "arguments" in entry else shlex.split(entry["command"])
    if os.path.basename(args[0]) == "ptxas_log.sh":  # a generator that lists the launcher: it would hide the figures
        args = args[1:]
    if "-o" not in args:
        fail(f"no -o in the compile command of {entry['file']}")
    obj_rel = args[args.index("-o") + 1]
    kept = os.path.join(entry["directory"], obj_rel) + ".ptxas.log"
    if kept_log_is_current(entry, obj_rel, kept):
        with open(kept) as f:
            return f.read()
    args = list(args)
    args[args.index("-o") + 1] = os.path.join(tmp, os.path.basename(entry["file"]) + ".o")
    if "--resource-usage" not in args:
        args.append("--resource-usage")
    run = subprocess.run(args, cwd=entry["directory"], capture_output=True, text=True)
    if run.returncode != 0:
        fail(f"{entry['file']} did not compile:\n{run.stderr[-2000:]}")
    return run.stdout + run.stderr


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--match", default="")
    ap.add_argument("--arch", default="")
    ap.add_argument("--fail-on-spill", action="store_true")
    ap.add_argument("--fail-on-wgmma-note", action="store_true")
    ap.add_argument("sources", nargs="*")
    opt = ap.parse_args()

    db = os.path.join(opt.build, "compile_commands.json")
    if not os.path.exists(db):
        fail(f"{db} does not exist; configure and build first (cmake -S . -B {opt.build} -G Ninja)")
    entries = [e for e in json.load(open(db)) if e["file"].endswith(".cu") and "/tests/" not in e["file"]]
    if not entries:
        fail(f"{db} has no CUDA sources; this build was configured without CUDA (SINKLAB_CUDA=OFF or no nvcc)")
    if opt.sources:
        wanted = {os.path.basename(s) for s in opt.sources}
        entries = [e for e in entries if os.path.basename(e["file"]) in wanted]
        found = {os.path.basename(e["file"]) for e in entries}
        if wanted - found:
            fail(f"not a CUDA source of {opt.build}: {', '.join(sorted(wanted - found))}")

    with tempfile.TemporaryDirectory() as tmp, concurrent.futures.ThreadPoolExecutor(os.cpu_count()) as pool:
        logs = list(pool.map(lambda e: ptxas_log(e, tmp), entries))
    rows = []
    for entry, log in zip(entries, logs):
        kernels = parse(log)
        for k, name in zip(kernels, short_names([k["name"] for k in kernels])):
            if re.search(opt.match, name) and opt.arch in ("", k["arch"]):
                rows.append((os.path.basename(entry["file"]), name, k))
    rows.sort(key=lambda r: (r[0], r[1], r[2]["arch"]))
    if not rows:
        fail(f"no kernel of {opt.build} matches --match '{opt.match}' --arch '{opt.arch}'")

    print("| source | kernel | arch | registers | spill stores | spill loads | stack | smem | wgmma notes |")
    print("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | --- |")
    for src, name, k in rows:
        print(f"| {src} | `{name}` | {k['arch']} | {k['registers']} | {k['spill_stores']} | {k['spill_loads']} "
              f"| {k['stack']} | {k['smem']} | {' '.join(k['notes'])} |")
    spilling = [f"{name} ({k['arch']}, {k['spill_stores']} bytes stored)" for _, name, k in rows
                if k["spill_stores"] or k["spill_loads"]]
    noted = [f"{name} ({' '.join(k['notes'])})" for _, name, k in rows if k["notes"]]
    print(f"\n{len(rows)} kernels, {len(spilling)} spilling registers to local memory, {len(noted)} with ptxas notes "
          "on their wgmma code")
    failed = False
    if opt.fail_on_spill and spilling:
        print("kernel_resources: spills in " + "; ".join(spilling), file=sys.stderr)
        failed = True
    if opt.fail_on_wgmma_note and noted:
        print("kernel_resources: ptxas injected waits or serialized wgmmas in " + "; ".join(noted), file=sys.stderr)
        failed = True
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
