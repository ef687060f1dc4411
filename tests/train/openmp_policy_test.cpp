// OpenMP's waiting threads sleep unless the user chose how they wait: a sinklab started without OMP_WAIT_POLICY (or
// GOMP_SPINCOUNT) sets it to passive and starts itself again, before libgomp has read it; a chosen policy stays.
// Read from the environment of the running process (/proc/PID/environ), stopped at step 1 (stop@1); its name too.
#include <gtest/gtest.h>

#include <string>

#include "train/train_util.h"

namespace sinklab::test {
namespace {

// The value of `name` in the environment the process `pid` was started (or last exec'd) with; "(unset)" when none.
std::string environment_value(pid_t pid, const std::string& name) {
    const std::string env = read_file(fmt::format("/proc/{}/environ", pid));
    const std::string key = name + "=";
    for (size_t at = 0; at < env.size();) {
        const size_t end = env.find('\0', at);
        const std::string entry = env.substr(at, end - at);
        if (entry.starts_with(key)) return entry.substr(key.size());
        if (end == std::string::npos) break;
        at = end + 1;
    }
    return "(unset)";
}

TEST(OpenMpPolicy, PassiveUnlessTheUserChose) {
    const TempDir dir("openmp_policy");
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"-u OMP_WAIT_POLICY -u GOMP_SPINCOUNT", "passive"},
        {"OMP_WAIT_POLICY=active", "active"},
        {"-u OMP_WAIT_POLICY GOMP_SPINCOUNT=1000", "(unset)"},
    };
    for (size_t i = 0; i < cases.size(); i++) {
        const auto& [env, want] = cases[i];
        Background run(fmt::format("env {} SINKLAB_FAULT_INJECT=stop@1 {} {}", env, SINKLAB_BINARY,
                                   small_run(dir, fmt::format("r{}", i), 2)),
                       dir / "run.log");
        ASSERT_TRUE(run.wait_stopped(120)) << env << ": " << read_file(dir / "run.log");
        EXPECT_EQ(environment_value(run.pid(), "OMP_WAIT_POLICY"), want) << env;
        // Started again through /proc/self/exe or not, ps, top and pgrep know it by its own name, not "exe".
        EXPECT_EQ(read_file(fmt::format("/proc/{}/comm", run.pid())), "sinklab\n") << env;
    }
}

}  // namespace
}  // namespace sinklab::test
