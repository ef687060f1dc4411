// scripts/gpu_check.sh without a GPU (a dry run): every stage runs and fails fast where it needs the GPU or the
// carried binaries, and report.md still lists each one, so that a broken stage shows here and not in the rare
// device session. STAGES picks stages, and a stage name it does not know is refused before anything runs.
#include <gtest/gtest.h>

#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "cli_util.h"

namespace sinklab::test {
namespace {

const std::vector<std::string> kStages = {"preflight",  "tests",      "sanitize", "bench-1024", "bench-4096",
                                          "torch-1024", "torch-4096", "train",    "profile"};

CommandResult dry_run(const TempDir& dir, const std::string& stages, const std::string& env = "") {
    return run_command("cd " + std::string(SINKLAB_SOURCE_DIR) + " && TMPDIR=" + dir.path() + " OUT=" + dir.path() +
                       "/out" + (stages.empty() ? "" : " STAGES='" + stages + "'") + " " + env +
                       " bash scripts/gpu_check.sh 2>&1");
}

// The stage names of report.md's summary table, in order.
std::vector<std::string> report_stages(const TempDir& dir) {
    std::vector<std::string> names;
    std::istringstream in(read_file(dir.path() + "/out/report.md"));
    for (std::string line; std::getline(in, line);)
        for (const std::string& s : kStages)
            if (line.rfind("| " + s + " | ", 0) == 0) names.push_back(s);
    return names;
}

TEST(GpuCheck, ADryRunReportsEveryStage) {
    const TempDir dir("gpu_check");
    const CommandResult all = dry_run(dir, "");
    ASSERT_EQ(all.rc, 0) << all.out;
    EXPECT_EQ(report_stages(dir), kStages) << all.out;

    const TempDir some("gpu_check_stages");
    const CommandResult picked = dry_run(some, "profile tests");
    ASSERT_EQ(picked.rc, 0) << picked.out;
    EXPECT_EQ(report_stages(some), (std::vector<std::string>{"preflight", "tests", "profile"})) << picked.out;
}

// Each stage gets at most what is left before SINKLAB_GPU_DEADLINE, less 20 s; with too little left it is skipped,
// and report.md still lists it. How many stages run before the time is up depends on the machine's load: a busy one
// skips the later ones, which then name their usual budget.
TEST(GpuCheck, StagesFitBeforeTheCallsDeadline) {
    const TempDir dir("gpu_check_deadline");
    const CommandResult r = dry_run(dir, "", "SINKLAB_GPU_DEADLINE=$(($(date +%s) + 50))");
    ASSERT_EQ(r.rc, 0) << r.out;
    EXPECT_EQ(report_stages(dir), kStages) << r.out;
    std::istringstream in(read_file(dir.path() + "/out/report.md"));
    int ran = 0;
    for (std::string line; std::getline(in, line);) {
        const size_t of = line.find("s of ");
        const bool skipped = line.find("| SKIPPED (no time left) |") != std::string::npos;
        if (line.rfind("| ", 0) != 0 || of == std::string::npos || skipped) continue;
        EXPECT_LE(std::stoi(line.substr(of + 5)), 30) << line;
        ran++;
    }
    EXPECT_GE(ran, 1) << read_file(dir.path() + "/out/report.md");
    const TempDir late("gpu_check_late");
    const CommandResult none = dry_run(late, "", "SINKLAB_GPU_DEADLINE=$(date +%s)");
    ASSERT_EQ(none.rc, 0) << none.out;
    const std::string md = read_file(late.path() + "/out/report.md");
    for (const std::string& s : kStages)
        EXPECT_NE(md.find("| " + s + " | SKIPPED (no time left) | 0s of "), std::string::npos) << s << "\n" << md;
}

TEST(GpuCheck, AStageNameItDoesNotKnowIsRefused) {
    const TempDir dir("gpu_check_bad");
    const CommandResult r = dry_run(dir, "tests bench");
    EXPECT_EQ(r.rc, 2) << r.out;
    EXPECT_NE(r.out.find("gpu_check.sh: STAGES names 'bench'; the stages: preflight tests sanitize bench-1024"),
              std::string::npos)
        << r.out;
    EXPECT_FALSE(std::filesystem::exists(dir.path() + "/out/report.md")) << r.out;
}

}  // namespace
}  // namespace sinklab::test
