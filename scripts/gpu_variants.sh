#!/usr/bin/env bash
# Compares builds of several git refs on the GPU machine in one device call: each ref's CUDA tests and its
# llama-152m throughput, in alternating rounds, so that a kernel change is judged against its base in the same call
# (machines lent at different times differ by a few per cent).
#
# Here, after bash scripts/gpu_pack.sh (whose build folder and carried libraries this reuses):
#   bash scripts/gpu_variants.sh pack REF [REF...]   e.g. main norm-fused
# It checks out each ref in turn (the working tree must be clean; the original checkout is restored), builds
# sinklab and sinklab_tests incrementally in the gpu_pack.sh build folder, runs the ref's CUDA tests on the CPU
# emulator (sinklab_emu_tests, where the ref has it: a ref that fails there is not worth device time), and packs
# the binaries with each ref's configs/ into .carry/variants.tar.xz (index in .carry/VARIANTS). Then the device
# call, carry [".carry"]:
#   bash scripts/gpu_variants.sh run
# For each variant: its CUDA tests as gpu_check.sh runs them (the wgmma tests in a second process), then ROUNDS
# (default 2) rounds of `sinklab bench` over every variant at T=1024 x 48 and T=4096 x 12 (standard attention with
# our mma.sync and our wgmma kernels, with per-op timing; VARIANT_BENCH_ARGS replaces those arguments, and every ref
# must know the attention.impl values they name; a ref whose wgmma tests fail is benched without sinklab_wgmma): by
# gpu_check.sh's bench stages, about 25 s per variant and round on an H200, plus 10 s of tests. $OUT/variants.md
# gets the tables (printed last): tests; per configuration each variant's mean tokens/s and its ratio to the first
# variant; and the time per step of the op families kernel changes touch (a change of a few per cent of the step
# shows there long before it clears the tokens/s noise); $OUT/variants-logs.tar.gz the logs. Both are rewritten
# after the tests and after every bench, so that the run can follow gpu_check.sh in the same device call and, cut
# short by its limit, still return what it finished. It stops before SINKLAB_GPU_DEADLINE (seconds since the epoch;
# export the same one for gpu_check.sh before it; default 570 s from now): no test or bench starts that could not
# end before it. Without a GPU it is a dry run: the tests skip and the bench fails fast.
# env: BUILD_DIR (default build-gpu), JOBS (default 2), ROUNDS, VARIANT_BENCH_ARGS, OUT, CARRY (the folder of the packs,
# default .carry), SINKLAB_GPU_DEADLINE.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
carry=${CARRY:-.carry}

die() { echo "gpu_variants: $*" >&2; exit 1; }
sum_lines() { awk '{n += $1} END {print n + 0}'; }
# Seconds left before the deadline, less 20 for a killed process's grace and the report.
time_left() { echo $((deadline - $(date +%s) - 20)); }

pack() {
    (($# >= 1)) || die "pack needs at least one git ref"
    local build=${BUILD_DIR:-build-gpu} jobs=${JOBS:-2}
    [[ -f $build/build.ninja ]] || die "no build in $build: run scripts/gpu_pack.sh first (it configures the build)"
    [[ -s $carry/sinklab-gpu.tar.xz ]] || die "no $carry/sinklab-gpu.tar.xz: run scripts/gpu_pack.sh first"
    git diff --quiet && git diff --cached --quiet || die "the working tree has changes; commit or stash them first"
    # Resolved before the first checkout moves HEAD, so that a ref like HEAD~1 means what it meant when called. A
    # fresh clone has its branches as origin/NAME only (but the one checked out).
    local ref commits=()
    for ref in "$@"; do
        commits+=("$(git rev-parse --verify -q "$ref^{commit}" || git rev-parse --verify -q "origin/$ref^{commit}")") ||
            die "'$ref' is not a commit (nor is origin/$ref)"
    done
    local orig stage i=0
    orig=$(git symbolic-ref -q --short HEAD || git rev-parse HEAD)
    stage=$build/variants-stage
    rm -rf "$stage" "$carry/variants.tar.xz" "$carry/VARIANTS"
    mkdir -p "$stage"
    trap 'git checkout -q "$orig"' EXIT
    for ref in "$@"; do
        git checkout -q --detach "${commits[$i]}" || die "cannot check out $ref"
        i=$((i + 1))
        local name dir
        name="$i-$(git rev-parse --short=10 HEAD)-$(echo "$ref" | tr -c 'A-Za-z0-9._\n-' '_')"
        dir=$stage/$name
        echo "gpu_variants: building $ref as $name (ninja -j $jobs)"
        ninja -C "$build" -j "$jobs" sinklab sinklab_tests >"$build/gpu_variants.build.log" 2>&1 ||
            die "building $ref failed; see $build/gpu_variants.build.log"
        if ninja -C "$build" -t targets all 2>/dev/null | grep -q '^sinklab_emu_tests:'; then
            echo "gpu_variants: $ref's CUDA tests on the CPU emulator (about a minute)"
            ninja -C "$build" -j "$jobs" sinklab_emu_tests >>"$build/gpu_variants.build.log" 2>&1 ||
                die "building $ref's sinklab_emu_tests failed; see $build/gpu_variants.build.log"
            OMP_NUM_THREADS=$jobs "$build/tests/sinklab_emu_tests" --gtest_brief=1 >"$build/gpu_variants.emu.log" \
                2>&1 || die "$ref fails its CUDA tests on the CPU emulator; see $build/gpu_variants.emu.log"
        fi
        mkdir -p "$dir" &&
            strip --strip-unneeded -o "$dir/sinklab" "$build/sinklab" &&
            strip --strip-unneeded -o "$dir/sinklab_tests" "$build/tests/sinklab_tests" &&
            cp -r configs "$dir/configs" || die "cannot stage $ref in $dir"
        echo "$name $ref $(git rev-parse --short=12 HEAD)" >>"$carry/VARIANTS"
    done
    git checkout -q "$orig"
    trap - EXIT
    tar -C "$stage" -cf - . | xz -9 -T "$jobs" >"$carry/variants.tar.xz" || die "cannot write $carry/variants.tar.xz"
    local total
    total=$(du -sm "$carry" | cut -f1)
    ((total < 60)) || die "$carry is ${total} MiB; the device tool carries at most 64 MiB with the working tree"
    echo "gpu_variants: $carry holds ${total} MiB; $build now holds the last ref's objects (ninja rebuilds on use)"
    cat "$carry/VARIANTS"
}

run() {
    OUT=${OUT:-${TMPDIR:-/tmp}/sinklab-gpu-variants-out}
    deadline=${SINKLAB_GPU_DEADLINE:-$(($(date +%s) + 570))}
    local work=${TMPDIR:-/tmp}/sinklab-gpu-variants rounds=${ROUNDS:-2}
    [[ -s $carry/variants.tar.xz && -s $carry/VARIANTS ]] || die "no $carry/variants.tar.xz: run the pack mode here"
    rm -rf "$work"
    mkdir -p "$OUT" "$work/logs"
    # shellcheck source=scripts/gpu_env.sh
    source scripts/gpu_env.sh
    unpack "$carry/sinklab-gpu.tar.xz" "$work/pack" || die "cannot unpack $carry/sinklab-gpu.tar.xz"
    unpack "$carry/variants.tar.xz" "$work/variants" || die "cannot unpack $carry/variants.tar.xz"
    gpu_env_init "$work/pack/lib"
    local bench_args default_args="--impls sinklab sinklab_wgmma --variants standard --steps 6 --warmup 2"
    read -r -a bench_args <<<"${VARIANT_BENCH_ARGS:-$default_args}"
    local name
    local -A no_wgmma  # the variants whose wgmma tests failed
    : >"$work/tests.tsv"
    while read -r name _; do
        local v=$work/variants/$name log=$work/logs/tests-$name.log rc=0 wg_rc=0 passed failed limit
        limit=$(time_left)
        if ((limit < 20)); then
            echo "tests $name: skipped, the call's time is spent"
            printf '%s\t%s\t0\t0\t1\n' "$name" "skipped" >>"$work/tests.tsv"
            no_wgmma[$name]=1
            continue
        fi
        ((limit > 180)) && limit=180
        # A wgmma fault ends its process's CUDA context, so those tests run after the others, in a process apart.
        timeout -k 10 $((limit / 2)) bash -c 'sl "$0" --gtest_color=no --gtest_filter="$1"' "$v/sinklab_tests" \
            "$CUDA_TEST_FILTER:Cuda*Wgmma*" >"$log" 2>&1 </dev/null || rc=1
        timeout -k 10 $((limit / 2)) bash -c 'sl "$0" --gtest_color=no --gtest_filter="Cuda*Wgmma*"' \
            "$v/sinklab_tests" >>"$log" 2>&1 </dev/null || wg_rc=1
        # Its wgmma numbers would time wrong results, and a fault would end the bench process and the other
        # implementation's numbers with it.
        ((wg_rc == 0)) || no_wgmma[$name]=1
        passed=$(grep -oE '^\[  PASSED  \] [0-9]+' "$log" | grep -oE '[0-9]+$' | sum_lines)
        failed=$(grep -oE '^\[  FAILED  \] [0-9]+ tests?, listed' "$log" | grep -oE '[0-9]+' | sum_lines)
        printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$((rc | wg_rc))" "${passed:-0}" "${failed:-0}" "$wg_rc" \
            >>"$work/tests.tsv"
        echo "tests $name: rc $((rc | wg_rc)), ${passed:-0} passed, ${failed:-0} failed"
    done <"$carry/VARIANTS"
    write_report 0
    local round T mb limit
    for round in $(seq 1 "$rounds"); do
        for T in 1024 4096; do
            mb=$((T == 1024 ? 48 : 12))
            while read -r name _; do
                local v=$work/variants/$name log=$work/logs/bench-$name-T$T-r$round.log arg args=()
                for arg in "${bench_args[@]}"; do
                    [[ $arg == sinklab_wgmma && -n ${no_wgmma[$name]:-} ]] || args+=("$arg")
                done
                printf '%s\n' "${args[@]}" >"$work/args-$name"
                # A bench takes about 25 s on an H200: one with less time left could only be cut.
                limit=$(time_left)
                if ((limit < 40)); then
                    echo "bench $name T=$T round $round: not started, the call's time is spent"
                    break 3
                fi
                ((limit > 120)) && limit=120
                # Each variant with its own configs/, so a ref that changed them is measured as it stands.
                (cd "$v" && timeout -k 10 "$limit" bash -c 'sl ./sinklab bench "$@"' _ configs/llama-152m.yaml \
                    --set backend=cuda --set model.seq_len="$T" --set train.micro_batch="$mb" "${args[@]}") \
                    >"$log" 2>&1 </dev/null
                echo "bench $name T=$T round $round: rc $?"
                write_report "$round"
            done <"$carry/VARIANTS"
        done
    done
    cat "$OUT/variants.md"
}

# $OUT/variants.md and $OUT/variants-logs.tar.gz from what run has done so far in its work folder ($1: the round of
# bench under way, 0 before the first): written after the tests and after every bench, each aside and then renamed,
# so that a call cut short by its time limit still returns what it finished.
write_report() {
    tar -czf "$OUT/variants-logs.tar.gz.tmp" -C "$work" logs && mv "$OUT/variants-logs.tar.gz.tmp" \
        "$OUT/variants-logs.tar.gz"
    python3 - "$work" "$OUT/variants.md" "$carry/VARIANTS" "$1" <<'PY'
import glob, os, re, sys
work, out, index, rounds = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]


def single_impl(name):
    """The attention.impl of a variant's bench rows when its bench was given exactly one (sinklab bench then labels
    its rows without it, e.g. after sinklab_wgmma was dropped): "" otherwise."""
    path = os.path.join(work, "args-" + name)
    args = open(path).read().split("\n") if os.path.exists(path) else []
    impls = []
    if "--impls" in args:
        for a in args[args.index("--impls") + 1:]:
            if a.startswith("--"):
                break
            impls.append(a)
    return impls[0] if len(impls) == 1 else ""


row = re.compile(r"^\s*\d+\s+(.+?)\s+(\d+)\s+([\d.]+)\s+[\d.]+%\s+[\d.]+x")
# The op families the waiting kernel changes touch, from the bench's per-op table (share of op time per
# configuration, in the order of its rows) times the step time: an estimate of each family's time per step.
families = ["attention_fwd", "attention_bwd", "rmsnorm", "rope", "headnorm", "cross_entropy"]
names = [line.split()[0] for line in open(index) if line.strip()]
md = ["# sinklab variants", "", "| variant | ref | commit | tests |", "| --- | --- | --- | --- |"]
tests = {l.split("\t")[0]: l.rstrip("\n").split("\t") for l in open(os.path.join(work, "tests.tsv"))}
for line in open(index):
    name, ref, commit = line.split()
    t = tests.get(name, [name, "?", "0", "0", "0"])
    if t[1] == "skipped":
        md.append(f"| {name} | {ref} | {commit} | not run: the call's time was spent |")
        continue
    wg = "; wgmma tests failed: benched without sinklab_wgmma" if t[4] != "0" else ""
    md.append(f"| {name} | {ref} | {commit} | rc {t[1]}: {t[2]} passed, {t[3]} failed{wg} |")
tok, ops = {}, {}  # (T, label) -> {name: [tokens/s per round]}; (T, label, family) -> {name: [ms per round]}
for path in glob.glob(os.path.join(work, "logs", "bench-*.log")):
    m = re.match(r"bench-(.+)-T(\d+)-r\d+\.log$", os.path.basename(path))
    name, T = m.group(1), int(m.group(2))
    impl = single_impl(name)
    rows, in_shares = [], False
    for line in open(path, errors="replace"):
        r, fields = row.match(line), line.split()
        if r:
            label = r.group(1).strip()
            if impl and "[" not in label:  # "standard +metrics" -> "standard [sinklab] +metrics"
                parts = label.split(" +", 1)
                label = f"{parts[0]} [{impl}]" + (f" +{parts[1]}" if len(parts) > 1 else "")
            rows.append((label, float(r.group(3))))
            tok.setdefault((T, label), {}).setdefault(name, []).append(float(r.group(2)))
        elif line.startswith("share of op time per family"):
            in_shares = True
        elif in_shares and not fields:
            in_shares = False
        elif in_shares and fields[0] in families:
            for (label, step_ms), share in zip(rows, fields[1:]):
                if float(share) > 0:
                    ops.setdefault((T, label, fields[0]), {}).setdefault(name, []).append(float(share) / 100 * step_ms)


def cells(per, scale, digits, unit):
    f = lambda x: f"{x / scale:,.{digits}f}"
    first = per.get(names[0])
    base = sum(first) / len(first) if first else None
    out = []
    for n in names:
        v = per.get(n)
        if not v:
            out.append("n/a")
            continue
        mean = sum(v) / len(v)
        out.append(f"{f(mean)}{unit} ({f(min(v))}-{f(max(v))})" + (f" {mean / base:.3f}x" if base else ""))
    return " | ".join(out)


md += ["", f"Mean tokens/s over the {rounds} round(s) run (min-max; per-op timing on unless VARIANT_BENCH_ARGS has "
       "--no-profile), and the ratio to the first variant's mean.",
       "",
       "| T | configuration | " + " | ".join(names) + " |", "|" + " --- |" * (len(names) + 2)]
for (T, label) in sorted(tok):
    md.append(f"| {T} | {label} | " + cells(tok[(T, label)], 1e3, 1, "k") + " |")
md += ["", "Time per step (ms) of the op families kernel changes touch, their share of op time x the step time "
       "(per-op timing on), mean over the rounds (min-max), and the ratio to the first variant's mean.", "",
       "| T | configuration | op | " + " | ".join(names) + " |", "|" + " --- |" * (len(names) + 3)]
for (T, label, fam) in sorted(ops, key=lambda k: (k[0], k[1], families.index(k[2]))):
    md.append(f"| {T} | {label} | {fam} | " + cells(ops[(T, label, fam)], 1, 2, "") + " |")
open(out + ".tmp", "w").write("\n".join(md) + "\n")
os.replace(out + ".tmp", out)
PY
}

case ${1:-} in
    pack) shift; pack "$@" ;;
    run) shift; run "$@" ;;
    *) die "usage: bash scripts/gpu_variants.sh pack REF [REF...]   |   bash scripts/gpu_variants.sh run" ;;
esac
