// read_whole_file: every byte of a file (binary, larger than one read), a FIFO read to its writer's end, and one
// error line with the system's reason for a folder, a missing file and a failed read.
#include "core/read_file.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <thread>

#include "core/check.h"
#include "fs_util.h"

namespace sinklab::test {
namespace {

std::string error_of(const std::string& path) {
    try {
        read_whole_file(path, "do this");
    } catch (const Error& e) {
        return e.what();
    }
    return "(no error)";
}

TEST(ReadWholeFile, EveryByteOfAFileAndOfAFifo) {
    const TempDir dir("read_file");
    std::string bytes(200'000, '\0');
    for (size_t i = 0; i < bytes.size(); i++) bytes[i] = char(i * 7919 % 251);
    write_file(dir / "big.bin", bytes);
    EXPECT_EQ(read_whole_file(dir / "big.bin", "do this"), bytes);
    write_file(dir / "empty", "");
    EXPECT_EQ(read_whole_file(dir / "empty", "do this"), "");

    const std::string fifo = dir / "fifo";
    ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
    std::thread writer([&] { write_file(fifo, bytes); });
    const std::string got = read_whole_file(fifo, "do this");
    writer.join();
    EXPECT_EQ(got, bytes);
}

TEST(ReadWholeFile, FailuresNameTheFileAndTheReason) {
    const TempDir dir("read_file_errors");
    EXPECT_EQ(error_of(dir.path()), dir.path() + " is a folder; do this");
    EXPECT_EQ(error_of(dir / "missing"), "cannot read " + (dir / "missing") + ": No such file or directory; do this");
    // A read(2) that fails after the open: /proc/self/mem at address 0, which no process maps.
    EXPECT_EQ(error_of("/proc/self/mem"), "cannot read /proc/self/mem: Input/output error; do this");
}

}  // namespace
}  // namespace sinklab::test
