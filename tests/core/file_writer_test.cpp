// replace_file_durably: a write that fails on the way (a full disk; here a file-size limit, which fails the same
// write() with EFBIG) leaves the earlier file whole and no temporary file beside it.
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <algorithm>
#include <csignal>
#include <filesystem>
#include <string>

#include "core/check.h"
#include "core/file_writer.h"
#include "fs_util.h"

namespace sinklab {
namespace {

using test::read_file;
using test::TempDir;
using test::write_file;

std::vector<std::string> entries(const std::string& dir) {
    std::vector<std::string> names;
    for (const auto& e : std::filesystem::directory_iterator(dir)) names.push_back(e.path().filename().string());
    return names;
}

// Runs `body` with writes past `bytes` failing with EFBIG (SIGXFSZ ignored, as sinklab's main catches it).
template <typename F>
void with_file_size_limit(rlim_t bytes, F body) {
    rlimit before{};
    ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &before), 0);
    const rlimit limited{bytes, before.rlim_max};
    auto* const previous = std::signal(SIGXFSZ, SIG_IGN);
    ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &limited), 0);
    body();
    setrlimit(RLIMIT_FSIZE, &before);
    std::signal(SIGXFSZ, previous);
}

TEST(ReplaceFileDurably, AFailedWriteLeavesTheEarlierFileWhole) {
    const TempDir dir("replace");
    const std::string path = dir / "report.md";
    write_file(path, "the earlier report\n");
    std::string message;
    with_file_size_limit(4096, [&] {
        try {
            replace_file_durably(path, std::string(10000, 'x'));
        } catch (const Error& e) {
            message = e.what();
        }
    });
    EXPECT_NE(message.find("File too large"), std::string::npos) << message;
    EXPECT_EQ(read_file(path), "the earlier report\n");
    EXPECT_EQ(entries(dir.path()), std::vector<std::string>{"report.md"}) << "the temporary file stayed";

    replace_file_durably(path, "the new report\n");
    EXPECT_EQ(read_file(path), "the new report\n");
    EXPECT_EQ(entries(dir.path()), std::vector<std::string>{"report.md"});
}

// What a killed writer left (its pid in the name) goes; nothing else does.
TEST(ReplaceFileDurably, StaleTemporaryFilesAreRemoved) {
    const TempDir dir("replace_stale");
    write_file(dir / "config.yaml", "a: 1\n");
    write_file(dir / ".config.yaml.tmp4242", "a: 2\n");
    write_file(dir / ".sweep.yaml.tmp4242", "someone else's\n");
    remove_stale_replacements(dir / "config.yaml");
    std::vector<std::string> left = entries(dir.path());
    std::sort(left.begin(), left.end());
    EXPECT_EQ(left, (std::vector<std::string>{".sweep.yaml.tmp4242", "config.yaml"}));
}

TEST(ReplaceFileDurably, MakesAFileThatWasNotThere) {
    const TempDir dir("replace_new");
    replace_file_durably(dir / "config.yaml", "a: 1\n");
    EXPECT_EQ(read_file(dir / "config.yaml"), "a: 1\n");
    EXPECT_EQ(entries(dir.path()), std::vector<std::string>{"config.yaml"});
}

}  // namespace
}  // namespace sinklab
