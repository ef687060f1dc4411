// The note for a run whose backend: auto fell back to the CPU on a machine with an NVIDIA driver.
#include <gtest/gtest.h>

#include <filesystem>

#include "fs_util.h"
#include "train/run_backend.h"

namespace sinklab::test {
namespace {

TEST(RunBackend, AutoOnTheCpuBesideADriverIsNoted) {
    const TempDir dir("run_backend_note");
    const std::string node = dir / "nvidiactl";
    EXPECT_EQ(auto_backend_note("auto", "cpu", node), "") << "no driver: the CPU is what auto means";
    write_file(node, "");
    const std::string note = auto_backend_note("auto", "cpu", node);
    EXPECT_NE(note.find(node), std::string::npos) << note;
    EXPECT_NE(note.find(cuda_unavailable_reason()), std::string::npos) << note;
    EXPECT_NE(note.find("backend: cuda"), std::string::npos) << note;
    EXPECT_EQ(auto_backend_note("cpu", "cpu", node), "") << "the CPU was asked for";
    EXPECT_EQ(auto_backend_note("auto", "cuda", node), "");
}

// Without a driver (this machine, CI), a run on backend: auto says nothing about it.
TEST(RunBackend, NoNoteWithoutADriver) {
    if (std::filesystem::exists("/dev/nvidiactl")) GTEST_SKIP() << "this machine has an NVIDIA driver";
    Config cfg = load_config(std::string(SINKLAB_SOURCE_DIR) + "/configs/tiny.yaml");
    cfg.backend = "auto";  // tiny.yaml asks for the CPU
    std::string note = "not cleared";
    auto backend = make_run_backend(cfg, process_communicator(), note);
    EXPECT_EQ(note, "");
}

}  // namespace
}  // namespace sinklab::test
