// scripts/gpu_report.py (the summary of scripts/gpu_check.sh) on a real `sinklab bench` log: the GPU check runs
// rarely, so a change to the bench table that the report no longer parses must fail here, on the CPU.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "cli_util.h"

namespace sinklab::test {
namespace {

const std::string kSource = SINKLAB_SOURCE_DIR;

struct BenchRow {
    double tokens_per_s = 0, mfu = 0, vs_first = 0, gib = 0, estimate = 0;
};

// The last row labelled exactly `label` in the bench's main tables of a log ("  3 headnorm +metrics  12345  ...":
// an index, the label, then tokens/s, step ms, MFU, vs first, GiB, estimate and spread), read here independently of
// the script.
BenchRow find_row(const std::string& log, const std::string& label) {
    std::istringstream in(log);
    std::optional<BenchRow> found;
    for (std::string line; std::getline(in, line);) {
        std::istringstream words_in(line);
        std::vector<std::string> w;
        for (std::string x; words_in >> x;) w.push_back(x);
        if (w.size() < 9 || w[0].find_first_not_of("0123456789") != std::string::npos || w.back().back() != '%' ||
            w[w.size() - 4].back() != 'x')
            continue;
        std::string name = w[1];
        for (size_t i = 2; i + 7 < w.size(); i++) name += " " + w[i];
        if (name != label) continue;
        const size_t n = w.size();
        found = BenchRow{std::stod(w[n - 7]), std::stod(w[n - 5]), std::stod(w[n - 4]), std::stod(w[n - 3]),
                         std::stod(w[n - 2])};
    }
    if (!found) ADD_FAILURE() << "no row '" << label << "' in\n" << log;
    return found.value_or(BenchRow{});
}

// gpu_report.py on out/stages.tsv and the logs beside it: report.md's text, or "" (and a failure) when it fails.
std::string report_md(const TempDir& out) {
    const CommandResult report = run_command("/usr/bin/python3 " + kSource + "/scripts/gpu_report.py " + out.path() +
                                             "/stages.tsv " + out.path() + " " + out.path());
    EXPECT_EQ(report.rc, 0) << report.out;
    return report.rc == 0 ? read_file(out.path() + "/report.md") : "";
}

// The bench stage's log as gpu_check.sh makes it (scripts/gpu_bench.sh's three runs), here on the CPU, once per
// test process; 64 x 4 tokens a step, for the report reads the table, not the speed (256 x 8 took 18 s a test).
const CommandResult& cpu_bench() {
    static const CommandResult bench = run_command(
        "cd " + kSource + " && BENCH_STEPS=1 BENCH_WARMUP=0 OMP_WAIT_POLICY=passive bash scripts/gpu_bench.sh " +
        SINKLAB_BINARY + " configs/tiny.yaml 64 4 --set run.threads=1 --set model.n_head=2 2>&1");  // hd 64: wgmma
    return bench;
}

// The CPU bench's log in out as the stage bench-1024's; call under ASSERT_NO_FATAL_FAILURE.
void write_bench_stage(const TempDir& out) {
    ASSERT_EQ(cpu_bench().rc, 0) << cpu_bench().out;
    write_file(out.path() + "/bench-1024.log", cpu_bench().out);
}

// The report's summary takes tokens/s and the implementations' ratios from the bench's last run, the overheads of
// HeadNorm and of the metrics from the second (its own `vs first`), attention's rates from the first.
TEST(GpuReport, SummarizesTheBenchStage) {
    TempDir out("gpu_report");
    ASSERT_NO_FATAL_FAILURE(write_bench_stage(out));
    const CommandResult& bench = cpu_bench();
    write_file(out.path() + "/stages.tsv", "bench-1024\tok\t3\t110\n");

    const std::string md = report_md(out);
    ASSERT_FALSE(md.empty());

    const BenchRow ours = find_row(bench.out, "standard [sinklab]");
    const BenchRow cudnn = find_row(bench.out, "standard [cudnn]");
    const BenchRow wgmma = find_row(bench.out, "standard [sinklab_wgmma]");
    EXPECT_GT(ours.gib, 0.0);
    EXPECT_GT(ours.estimate, 0.0);
    char expect[160];
    std::snprintf(expect, sizeof(expect), "memory %.2f GiB (sinklab info: %.2f)", ours.gib, ours.estimate);
    EXPECT_NE(md.find(expect), std::string::npos) << "'" << expect << "' not in\n" << md;
    std::snprintf(expect, sizeof(expect), "with cuDNN attention %.3fx our tokens/s", cudnn.vs_first / ours.vs_first);
    EXPECT_NE(md.find(expect), std::string::npos) << "'" << expect << "' not in\n" << md;
    std::snprintf(expect, sizeof(expect), "with our wgmma attention %.3fx our tokens/s",
                  wgmma.vs_first / ours.vs_first);
    EXPECT_NE(md.find(expect), std::string::npos) << "'" << expect << "' not in\n" << md;
    // Overheads come from the per-round ratios (`vs first`) of the second run, not from the median tokens/s.
    const BenchRow headnorm = find_row(bench.out, "headnorm"), metrics = find_row(bench.out, "standard +metrics");
    std::snprintf(expect, sizeof(expect), "headnorm %+.1f%%, +metrics %+.1f%%", 100 * (1 / headnorm.vs_first - 1),
                  100 * (1 / metrics.vs_first - 1));
    EXPECT_NE(md.find(expect), std::string::npos) << "'" << expect << "' not in\n" << md;
    EXPECT_NE(bench.out.find("2 rounds: "), std::string::npos) << bench.out;
    EXPECT_NE(md.find("rounds spread up to "), std::string::npos) << md;
    // The goals table below the summary says n/a for the torch stages this test has not.
    EXPECT_EQ(md.substr(0, md.find("## Issue 6 goals")).find("n/a"), std::string::npos)
        << "a bench row the report did not find:\n" << md;
    EXPECT_NE(md.find("| bench-1024 | ok | 3s of 110s | standard "), std::string::npos) << md;
    // Attention's rates from the first run, whose columns are each implementation without and with the metrics:
    // the summary gives those without.
    const std::vector<std::string> fwd = row_after(bench.out, "fwd TFLOP/s");
    const std::vector<std::string> bwd = row_after(bench.out, "bwd TFLOP/s");
    ASSERT_EQ(fwd.size(), 6u) << bench.out;
    ASSERT_EQ(bwd.size(), 6u) << bench.out;
    const std::string rates = "; attention TFLOP/s forward/backward: standard [sinklab] " + fwd[0] + "/" + bwd[0] +
                              ", standard [cudnn] " + fwd[2] + "/" + bwd[2] + ", standard [sinklab_wgmma] " + fwd[4] +
                              "/" + bwd[4] + " |";
    EXPECT_NE(md.find(rates), std::string::npos) << "'" << rates << "' not in\n" << md;
}

// Issue 6's goals, judged per sequence length from the bench and torch stages: MFU >= 40%, tokens/s >= 1.0x
// torch.compile's, HeadNorm and the per-step metrics at most +2% of step time. On the CPU the MFU is 0 (not met) and
// a torch.compile of 1000 tokens/s is beaten (met); the overheads' verdicts follow their noisy signs. The 4096 stage
// of torch with no bench beside it adds no column.
TEST(GpuReport, JudgesTheIssueGoals) {
    TempDir out("gpu_report_goals");
    ASSERT_NO_FATAL_FAILURE(write_bench_stage(out));
    const CommandResult& bench = cpu_bench();
    write_file(out.path() + "/torch-1024.log", "torch tokens/s 1000.0\n");
    write_file(out.path() + "/torch-4096.log", "torch tokens/s 2000.0\n");
    write_file(out.path() + "/stages.tsv", "bench-1024\tok\t3\t110\ntorch-1024\tok\t5\t70\ntorch-4096\tok\t5\t65\n");
    const std::string md = report_md(out);
    ASSERT_NE(md.find("## Issue 6 goals\n\nMFU against the dense bf16 datasheet peak"), std::string::npos) << md;
    ASSERT_NE(md.find("bench runs without per-op timing.\n\n| goal | T=1024 |\n"), std::string::npos) << md;
    auto expect_row = [&](const std::string& row) {
        EXPECT_NE(md.find("\n" + row + "\n"), std::string::npos) << "'" << row << "' not in\n" << md;
    };
    const BenchRow ours = find_row(bench.out, "standard [sinklab]");
    for (const char* impl : {"sinklab", "sinklab_wgmma", "cudnn"}) {
        const BenchRow r = find_row(bench.out, fmt::format("standard [{}]", impl));
        expect_row(fmt::format("| MFU >= 40%, standard [{}] | {:.1f}% ({}) |", impl, r.mfu,
                               r.mfu >= 40 ? "met" : "not met"));
        expect_row(fmt::format("| tokens/s >= 1.0x torch.compile, standard [{}] | {:.3f}x (met) |", impl,
                               r.tokens_per_s / 1000.0));
    }
    const BenchRow headnorm = find_row(bench.out, "headnorm"), metrics = find_row(bench.out, "standard +metrics");
    for (auto [what, r] : {std::pair{"HeadNorm", headnorm}, std::pair{"per-step sink metrics", metrics}}) {
        const double extra = 100 * (1 / r.vs_first - 1);
        expect_row(fmt::format("| {}: step time <= +2% (our attention) | {:+.1f}% ({}) |", what, extra,
                               extra <= 2.0 ? "met" : "not met"));
    }
    EXPECT_GT(ours.tokens_per_s, 1000.0) << "the CPU bench must beat the made-up torch figure for the test to mean it";
}

// A bench stage cut short after its first run (per-op timing on, whose synchronization makes it no measure of speed)
// gives no speed figures and judges no goal; the summary says what finished.
TEST(GpuReport, ABenchCutAfterItsProfiledRunJudgesNoGoal) {
    TempDir out("gpu_report_cut");
    ASSERT_EQ(cpu_bench().rc, 0) << cpu_bench().out;
    const std::string& log = cpu_bench().out;
    const size_t second = log.find("\nbench ", log.find("bench ") + 1);
    ASSERT_NE(second, std::string::npos) << log;
    write_file(out.path() + "/bench-1024.log", log.substr(0, second + 1));
    write_file(out.path() + "/torch-1024.log", "torch tokens/s 1000.0\n");
    write_file(out.path() + "/stages.tsv", "bench-1024\tTIMEOUT\t90\t90\ntorch-1024\tok\t5\t70\n");
    const std::string md = report_md(out);
    EXPECT_NE(md.find("| bench-1024 | TIMEOUT | 90s of 90s | only the run with per-op timing finished (no speed "
                      "figures, no goals): standard "),
              std::string::npos)
        << md;
    EXPECT_EQ(md.find("## Issue 6 goals"), std::string::npos) << md;
}

// A failed test's first messages reach report.md under its name (CudaWgmma's name what the hardware read), the
// passing tests' output does not, and a long block is cut with a pointer to tests.log. The counts are over both runs
// of the stage, the second cut short.
TEST(GpuReport, ListsEachFailedTestWithItsFirstMessages) {
    TempDir out("gpu_report_tests");
    std::string log = "[ RUN      ] CudaOps.Rope\nrope fine\n[       OK ] CudaOps.Rope (3 ms)\n"
                      "[ RUN      ] CudaWgmma.ReadsEachOperandWhereTheLayoutPutsIt\n";
    for (int j = 0; j < 8; j++)
        log += "wgmma_test.cu:63: Failure\nFailed\nB = its row index, A = V = I: S[0][" + std::to_string(j) +
               "] = 9, expected " + std::to_string(j) + "\n";
    log += "[  FAILED  ] CudaWgmma.ReadsEachOperandWhereTheLayoutPutsIt (10 ms)\n[==========] 2 tests ran.\n"
           "[  PASSED  ] 1 test.\n[  FAILED  ] 1 test, listed below:\n"
           "[  FAILED  ] CudaWgmma.ReadsEachOperandWhereTheLayoutPutsIt\n"
           "[ RUN      ] CudaOps.AttentionWgmma\n[       OK ] CudaOps.AttentionWgmma (9 ms)\n"
           "[ RUN      ] CudaOps.SkippedOne\n[  SKIPPED ] CudaOps.SkippedOne (0 ms)\n[ RUN      ] CudaWgmma.Cut\n";
    write_file(out.path() + "/tests.log", log);
    write_file(out.path() + "/stages.tsv", "tests\tFAIL (rc 1)\t20\t55\n");
    const std::string md = report_md(out);
    const std::string listed = "[  FAILED  ] CudaWgmma.ReadsEachOperandWhereTheLayoutPutsIt\n";
    const auto at = md.find(listed);
    ASSERT_NE(at, std::string::npos) << md;
    EXPECT_EQ(md.find(listed, at + 1), std::string::npos) << "listed twice:\n" << md;
    EXPECT_NE(md.find("    B = its row index, A = V = I: S[0][5] = 9, expected 5\n"), std::string::npos) << md;
    EXPECT_EQ(md.find("S[0][6]"), std::string::npos) << "more than 12 lines of one test:\n" << md;
    EXPECT_NE(md.find("    ... 4 more lines in tests.log"), std::string::npos) << md;
    EXPECT_EQ(md.find("rope fine"), std::string::npos) << md;
    EXPECT_EQ(md.find("\nFailed\n"), std::string::npos) << md;
    EXPECT_NE(md.find("| tests | FAIL (rc 1) | 20s of 55s | 2 passed, 1 failed, 1 skipped; "
                      "unfinished: CudaWgmma.Cut |"),
              std::string::npos)
        << md;
}

// The profile stage's summary of ncu's raw CSV page (metric names, then units, then a row per kernel): times in
// the unit the units row gives, L2 and L1 / shared-memory throughput, the three largest stall reasons without
// "selected" (issuing is not a stall).
TEST(GpuReport, SummarizesAnNcuProfile) {
    TempDir out("gpu_report_ncu");
    const std::string stall = "smsp__average_warps_issue_stalled_";
    const std::string ratio = "_per_issue_active.ratio\"";
    write_file(out.path() + "/ncu-raw.csv",
               "\"ID\",\"Kernel Name\",\"gpu__time_duration.sum\",\"launch__registers_per_thread\","
               "\"sm__pipe_tensor_op_hmma_cycles_active.avg.pct_of_peak_sustained_active\","
               "\"dram__throughput.avg.pct_of_peak_sustained_elapsed\","
               "\"lts__throughput.avg.pct_of_peak_sustained_elapsed\","
               "\"l1tex__throughput.avg.pct_of_peak_sustained_active\",\"" + stall + "barrier" +
                   ratio + ",\"" + stall + "long_scoreboard" + ratio + ",\"" + stall + "math_pipe_throttle" + ratio +
                   ",\"" + stall + "selected" + ratio + ",\"" + stall + "wait" + ratio + "\n"
               "\"\",\"\",\"usecond\",\"register/thread\",\"%\",\"%\",\"%\",\"%\",\"ratio\",\"ratio\",\"ratio\","
               "\"ratio\",\"ratio\"\n"
               "\"0\",\"void sinklab::cuda::attn_fwd_kernel<64, false, true>(bf16 *)\",\"512.4\",\"134\",\"41.2\","
               "\"3.1\",\"63.4\",\"71.9\",\"0.5\",\"2.25\",\"1.75\",\"3\",\"0.9\"\n"
               "\"1\",\"void sinklab::cuda::attn_dq_kernel<64, 64, false, false>(bf16 *)\",\"1,500.6\",\"168\",\"30\","
               "\"2\",\"20\",\"85\",\"4\",\"1\",\"0.25\",\"9\",\"2\"\n"
               "\"2\",\"void sinklab::cuda::attn_dq_ds_kernel<64>(bf16 *)\",\"200\",\"96\",\"12\",\"81.6\","
               "\"40\",\"30\",\"0.5\",\"6\",\"0.25\",\"1\",\"0.5\"\n");
    write_file(out.path() + "/stages.tsv", "profile\tok\t40\t70\n");
    // The shape the profile stage ran, as `sinklab info --yaml` writes it: 48 x 1024, 12 heads of 64.
    const CommandResult info = run_sinklab("info " + kSource + "/configs/llama-152m.yaml --set model.seq_len=1024 "
                                           "--set train.micro_batch=48 --yaml");
    ASSERT_EQ(info.rc, 0) << info.out;
    write_file(out.path() + "/profile-config.yaml", info.out);
    const std::string md = report_md(out);
    ASSERT_FALSE(md.empty());
    EXPECT_NE(md.find("| profile | ok | 40s of 70s | 3 kernels profiled"), std::string::npos) << md;
    // The forward runs 2 products of 2 * 64^3 FLOPs on each of 48 * 12 * (16 * 17 / 2) tile pairs: 8.2e10 FLOPs
    // in 512.4 us, 160 TFLOP/s; dQ runs 3 products in 1500.6 us, 82 TFLOP/s; dQ from the kept dS 1 in 200 us.
    const double pairs = 48.0 * 12 * 16 * 17 / 2, product = 2.0 * 64 * 64 * 64;
    auto rate = [&](int products, double us) {
        const double tflops = products * pairs * product / (us * 1e-6) / 1e12;
        return fmt::format("{:.0f} us; {:.0f} TFLOP/s ({:.0f}% of 989)", us, tflops, tflops / 9.89);
    };
    EXPECT_NE(md.find("attn_fwd_kernel<64, false, true>; " + rate(2, 512.4) +
                      "; tensor pipe hmma 41%; DRAM 3%; L2 63%; L1/shared 72%; 134 registers; stalls (cycles per "
                      "issue): long_scoreboard 2.25, math_pipe_throttle 1.75, wait 0.90"),
              std::string::npos)
        << md;
    EXPECT_NE(md.find("attn_dq_kernel<64, 64, false, false>; " + rate(3, 1500.6) +
                      "; tensor pipe hmma 30%; DRAM 2%; L2 20%; L1/shared 85%; 168 registers; stalls (cycles per "
                      "issue): barrier 4.00, wait 2.00, long_scoreboard 1.00"),
              std::string::npos)
        << md;
    EXPECT_NE(md.find("attn_dq_ds_kernel<64>; " + rate(1, 200) +
                      "; tensor pipe hmma 12%; DRAM 82%; L2 40%; L1/shared 30%; 96 registers; stalls (cycles per "
                      "issue): long_scoreboard 6.00, wait 0.50, barrier 0.50"),
              std::string::npos)
        << md;
}

// The profile stage's SASS (cuobjdump -sass, attention kernels only): instructions counted once per address line
// (not the encoding's second line), predicated ones by their opcode, and the template arguments read back.
TEST(GpuReport, CountsSassInstructionsPerKernel) {
    TempDir out("gpu_report_sass");
    const std::string enc = "  /* 0x000fe20000000800 */\n";
    write_file(out.path() + "/attn.sass",
               "\n\tcode for sm_90\n"
               "\t\tFunction : _ZN7sinklab4cuda12_GLOBAL__N_115attn_fwd_kernelILi64ELb0EEEvP13__nv_bfloat16Pf\n"
               "\t.headerflags\t@\"EF_CUDA_SM90 EF_CUDA_VIRTUAL_SM(EF_CUDA_SM90)\"\n"
               "        /*0000*/                   LDC R1, c[0x0][0x28] ;   /* 0x00000a00ff017b82 */\n" + enc +
               "        /*0010*/                   HMMA.16816.F32.BF16 R4, R8, R12, R4 ;   /* 0x0000000c0804723c */\n" +
               enc +
               "        /*0020*/                   HMMA.16816.F32.BF16 R16, R8, R14, R16 ; /* 0x0000000e0810723c */\n" +
               enc +
               "        /*0030*/              @!P0 MUFU.EX2 R5, R5 ;   /* 0x0000000500058308 */\n" + enc +
               "        /*0040*/               @P1 BRA 0x120 ;   /* 0x0000000000001947 */\n" + enc +
               "\t\tFunction : _ZN7sinklab4cuda12_GLOBAL__N_116attn_dkdv_kernelILi64ELi32ELb1EEEvP13__nv_bfloat16\n"
               "        /*0000*/                   LDSM.16.M88.4 R4, [R2] ;   /* 0x000000000204783b */\n" + enc +
               "        /*0010*/                   EXIT ;   /* 0x000000000000794d */\n" + enc +
               "\t\tFunction : _ZN7sinklab4cuda12_GLOBAL__N_115attn_fwd_kernelILi64ELb0ELb1EEEvP13__nv_bfloat16Pf\n"
               "        /*0000*/                   WARPGROUP.ARRIVE ;   /* 0x00000000000079c7 */\n" + enc +
               "        /*0010*/                   HGMMA.64x64x16.F32.BF16 R24, gdesc[UR4], R24 ;   /* 0x08e */\n" +
               enc + "        /*0020*/                   WARPGROUP.DEPBAR.LE gsb0, 0x0 ;   /* 0x00000000000079c7 */\n" +
               enc);
    write_file(out.path() + "/stages.tsv", "profile\tfailed\t5\t70\n");
    const std::string md = report_md(out);
    ASSERT_FALSE(md.empty());
    EXPECT_NE(md.find("| profile | failed | 5s of 70s | no ncu results; SASS of 3 kernels |"), std::string::npos) << md;
    EXPECT_NE(md.find("attn_fwd_kernel<64, false, true>: 3 instructions; HGMMA 1, WARPGROUP 2\n"), std::string::npos)
        << md;
    EXPECT_NE(md.find("attn_fwd_kernel<64, false>: 5 instructions; HMMA 2, MUFU 1, BRA 1\n"), std::string::npos) << md;
    EXPECT_NE(md.find("attn_dkdv_kernel<64, 32, true>: 2 instructions; LDSM 1\n"), std::string::npos) << md;
}

}  // namespace
}  // namespace sinklab::test
