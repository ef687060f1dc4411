// Runs the sinklab binary the way a user does, for end-to-end tests.
#pragma once
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

namespace sinklab::test {

struct CliResult {
    int status = -1;     // exit code
    std::string output;  // stdout and stderr together
};

// `args` is appended to the binary's path as is (quote what needs quoting).
inline CliResult run_sinklab(const std::string& args) {
    const std::string cmd = std::string(SINKLAB_BINARY) + " " + args + " 2>&1";
    CliResult r;
    FILE* p = popen(cmd.c_str(), "r");
    if (!p) return r;
    std::array<char, 4096> buf;
    size_t n;
    while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.output.append(buf.data(), n);
    const int st = pclose(p);
    r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    return r;
}

// A fresh folder under the test temp dir.
inline std::filesystem::path fresh_dir(const std::string& name) {
    auto d = std::filesystem::path(::testing::TempDir()) / ("sinklab_" + name);
    std::filesystem::remove_all(d);
    std::filesystem::create_directories(d);
    return d;
}

inline void write_file(const std::filesystem::path& p, const std::string& text) { std::ofstream(p) << text; }

}  // namespace sinklab::test
