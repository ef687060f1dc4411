// scripts/gpu_report.py (the summary of scripts/gpu_check.sh) on a real `sinklab bench` log: the GPU check runs
// rarely, so a change to the bench table that the report no longer parses must fail here, on the CPU.
#include <gtest/gtest.h>

#include <cstdio>
#include <sstream>

#include "cli_util.h"

namespace sinklab::test {
namespace {

const std::string kSource = SINKLAB_SOURCE_DIR;

struct BenchRow {
    double tokens_per_s = 0, gib = 0, estimate = 0;
};

// The row of `label` in the bench's main table, read here independently of the script.
BenchRow find_row(const std::string& log, const std::string& label) {
    std::istringstream in(log);
    for (std::string line; std::getline(in, line);) {
        const auto at = line.find(" " + label + " ");
        if (at == std::string::npos || line.find('%') == std::string::npos) continue;
        std::istringstream rest(line.substr(at + label.size() + 2));
        BenchRow r;
        std::string step_ms, mfu, vs_first;
        rest >> r.tokens_per_s >> step_ms >> mfu >> vs_first >> r.gib >> r.estimate;
        if (rest) return r;
    }
    ADD_FAILURE() << "no row '" << label << "' in\n" << log;
    return {};
}

TEST(GpuReport, SummarizesABenchLog) {
    TempDir out("gpu_report");
    const CommandResult bench = run_sinklab(
        "bench " + kSource +
            "/configs/tiny.yaml --variants standard headnorm --impls sinklab cudnn --metrics --steps 1 --warmup 0 "
            "--no-profile --set run.threads=1",
        "OMP_WAIT_POLICY=passive");
    ASSERT_EQ(bench.rc, 0) << bench.out;
    write_file(out.path() + "/bench-1024.log", bench.out);
    write_file(out.path() + "/stages.tsv", "bench-1024\tok\t3\t110\n");

    const CommandResult report = run_command("/usr/bin/python3 " + kSource + "/scripts/gpu_report.py " + out.path() +
                                             "/stages.tsv " + out.path());
    ASSERT_EQ(report.rc, 0) << report.out;
    const std::string md = read_file(out.path() + "/report.md");

    const BenchRow ours = find_row(bench.out, "standard [sinklab]");
    const BenchRow cudnn = find_row(bench.out, "standard [cudnn]");
    EXPECT_GT(ours.gib, 0.0);
    EXPECT_GT(ours.estimate, 0.0);
    char expect[160];
    std::snprintf(expect, sizeof(expect), "memory %.2f GiB (sinklab info: %.2f)", ours.gib, ours.estimate);
    EXPECT_NE(md.find(expect), std::string::npos) << "'" << expect << "' not in\n" << md;
    std::snprintf(expect, sizeof(expect), "with cuDNN attention %.3fx our tokens/s",
                  cudnn.tokens_per_s / ours.tokens_per_s);
    EXPECT_NE(md.find(expect), std::string::npos) << "'" << expect << "' not in\n" << md;
    EXPECT_EQ(md.find("n/a"), std::string::npos) << "a bench row the report did not find:\n" << md;
    EXPECT_NE(md.find("| bench-1024 | ok | 3s of 110s | standard "), std::string::npos) << md;
}

}  // namespace
}  // namespace sinklab::test
