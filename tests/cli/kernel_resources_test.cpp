// scripts/kernel_resources.py: the compiler's register and spill figures of every CUDA kernel, and its notes on wgmma
// code, the performance facts a change can be checked for without a GPU. On this build (sm_90a code) every kernel the
// sources declare must be listed, none may spill and none may have a wgmma wait or serialization injected by ptxas;
// on a stand-in nvcc, a spill or such a note must fail the run and name its kernel.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>

#include "cli_util.h"

namespace sinklab::test {
namespace {

std::string script_cmd(const std::string& args) {
    return "python3 " + std::string(SINKLAB_SOURCE_DIR) + "/scripts/kernel_resources.py " + args;
}

#ifdef SINKLAB_WGMMA
// The names of the __global__ functions declared in the build's CUDA sources, read from the sources themselves.
std::set<std::string> declared_kernels() {
    const std::regex global(R"(__global__\s+(?:void\s+)?(?:__launch_bounds__\([^)]*\)\s*)?(?:void\s+)?(\w+)\s*\()");
    std::set<std::string> names;
    for (const char* dir : {"/kernels/cuda", "/src"}) {
        for (const auto& f : std::filesystem::recursive_directory_iterator(std::string(SINKLAB_SOURCE_DIR) + dir)) {
            if (f.path().extension() != ".cu") continue;
            const std::string text = read_file(f.path().string());
            for (std::sregex_iterator m(text.begin(), text.end(), global), end; m != end; ++m)
                names.insert((*m)[1].str());
        }
    }
    return names;
}
#endif

TEST(KernelResources, ListsEveryKernelOfThisBuildAndNoneSpills) {
#ifndef SINKLAB_WGMMA
    GTEST_SKIP() << "this build has no sm_90a code (configured without CUDA, or SINKLAB_CUDA_ARCH without 90a)";
#else
    const std::string build = std::filesystem::path(SINKLAB_BINARY).parent_path().string();
    const CommandResult r =
        run_command(script_cmd("--build " + build + " --arch sm_90a --fail-on-spill --fail-on-wgmma-note"));
    ASSERT_EQ(r.rc, 0) << r.out;
    const std::set<std::string> names = declared_kernels();
    ASSERT_GE(names.size(), 30u);
    for (const std::string& name : names) {
        const std::regex row("\\| `(?:[\\w:]+::)?" + name + "(?:<[^`]*)?` \\| sm_90a \\| (\\d+) \\| 0 \\| 0 \\|");
        std::smatch m;
        ASSERT_TRUE(std::regex_search(r.out, m, row)) << name << " is not listed, or spills:\n" << r.out;
        const int registers = std::stoi(m[1].str());
        EXPECT_GT(registers, 0) << name;
        EXPECT_LE(registers, 255) << name;
    }
#endif
}

// What ptxas prints for two kernels, the second spilling and the first with a warpgroup wait ptxas injected.
const char* const kPtxasFigures =
    "ptxas info    : (C7517) warpgroup.wait is injected in around line 310 by compiler to allow "
    "use of registers defined by GMMA in function '_ZN7sinklab4cuda8fast_oneILi64EEEvPf'\n"
    "ptxas info    : 0 bytes gmem\n"
    "ptxas info    : Compiling entry function '_ZN7sinklab4cuda8fast_oneILi64EEEvPf' for 'sm_90a'\n"
    "ptxas info    : Function properties for _ZN7sinklab4cuda8fast_oneILi64EEEvPf\n"
    "    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads\n"
    "ptxas info    : Used 96 registers, used 1 barriers, 512 bytes smem\n"
    "ptxas info    : Compiling entry function '_ZN7sinklab4cuda9heavy_oneEPfi' for 'sm_90a'\n"
    "ptxas info    : Function properties for _ZN7sinklab4cuda9heavy_oneEPfi\n"
    "    24 bytes stack frame, 20 bytes spill stores, 12 bytes spill loads\n"
    "ptxas info    : Used 255 registers, used 1 barriers\n";

// A stand-in nvcc that prints kPtxasFigures (or fails to compile), into a build folder of its own.
void stand_in_build(const TempDir& dir, bool compiles) {
    const std::string nvcc = dir / "nvcc";
    write_executable(nvcc, std::string("#!/usr/bin/env bash\n") +
                              (compiles ? "" : "echo 'kernels.cu(3): error: expected a \";\"' >&2; exit 1\n") +
                              "cat >&2 <<'EOF'\n" + kPtxasFigures + "EOF\n");
    write_file(dir / "build/compile_commands.json",
               "[{\"directory\": \"" + dir.path() + "\", \"file\": \"" + (dir / "kernels.cu") + "\", \"command\": \"" +
                   nvcc + " -O3 -c " + (dir / "kernels.cu") + " -o build/kernels.cu.o\"}]\n");
}

TEST(KernelResources, ASpillOrAWgmmaNoteFailsItsCheckAndNamesItsKernel) {
    const TempDir dir("kernel_resources");
    stand_in_build(dir, true);
    const std::string build = "--build " + (dir / "build");

    const CommandResult listed = run_command(script_cmd(build));
    ASSERT_EQ(listed.rc, 0) << listed.out;
    EXPECT_NE(listed.out.find("| kernels.cu | `fast_one<64>` | sm_90a | 96 | 0 | 0 | 0 | 512 | C7517 |"),
              std::string::npos)
        << listed.out;
    EXPECT_NE(listed.out.find("| kernels.cu | `heavy_one` | sm_90a | 255 | 20 | 12 | 24 | 0 |  |"), std::string::npos)
        << listed.out;
    EXPECT_NE(listed.out.find("2 kernels, 1 spilling registers to local memory, 1 with ptxas notes"), std::string::npos)
        << listed.out;

    const CommandResult failed = run_command(script_cmd(build + " --fail-on-spill"));
    EXPECT_EQ(failed.rc, 1) << failed.out;
    EXPECT_NE(failed.out.find("kernel_resources: spills in heavy_one (sm_90a, 20 bytes stored)"), std::string::npos)
        << failed.out;
    EXPECT_EQ(failed.out.find("injected waits"), std::string::npos) << failed.out;
    const CommandResult noted = run_command(script_cmd(build + " --fail-on-wgmma-note"));
    EXPECT_EQ(noted.rc, 1) << noted.out;
    EXPECT_NE(noted.out.find("kernel_resources: ptxas injected waits or serialized wgmmas in fast_one<64> (C7517)"),
              std::string::npos)
        << noted.out;

    // Only the kernels asked for: the one that does not spill passes that check, the one without notes this one.
    EXPECT_EQ(run_command(script_cmd(build + " --fail-on-spill --match fast")).rc, 0);
    EXPECT_EQ(run_command(script_cmd(build + " --fail-on-wgmma-note --match heavy")).rc, 0);
    const CommandResult none = run_command(script_cmd(build + " --arch sm_80"));
    EXPECT_EQ(none.rc, 2) << none.out;
    EXPECT_NE(none.out.find("no kernel of"), std::string::npos) << none.out;
}

// The build keeps ptxas's figures beside each object (cmake/ptxas_log.sh); the script reads them rather than compile
// again, unless the object (built some other way since) or the source (edited since) is newer. A build by ninja
// has its headers checked too (ninja's deps log), which ListsEveryKernelOfThisBuildAndNoneSpills relies on.
TEST(KernelResources, TheFiguresTheBuildKeptAreReadUnlessTheObjectOrTheSourceIsNewer) {
    const TempDir dir("kernel_resources");
    stand_in_build(dir, false);
    const std::string source = dir / "kernels.cu", object = dir / "build/kernels.cu.o", kept = object + ".ptxas.log";
    write_file(source, "__global__ void heavy_one(float*, int) {}");
    write_file(object, "object");
    write_file(kept, kPtxasFigures);
    const auto now = std::filesystem::file_time_type::clock::now();
    std::filesystem::last_write_time(source, now - std::chrono::seconds(20));
    std::filesystem::last_write_time(object, now - std::chrono::seconds(10));
    std::filesystem::last_write_time(kept, now - std::chrono::seconds(5));
    const CommandResult read = run_command(script_cmd("--build " + (dir / "build")));
    ASSERT_EQ(read.rc, 0) << read.out;
    EXPECT_NE(read.out.find("| kernels.cu | `heavy_one` | sm_90a | 255 | 20 | 12 | 24 | 0 |  |"), std::string::npos)
        << read.out;

    for (const std::string& newer : {source, object}) {
        std::filesystem::last_write_time(newer, now);
        const CommandResult compiled = run_command(script_cmd("--build " + (dir / "build")));
        EXPECT_EQ(compiled.rc, 2) << newer << ":\n" << compiled.out;
        EXPECT_NE(compiled.out.find("kernels.cu did not compile"), std::string::npos) << newer << ":\n" << compiled.out;
        std::filesystem::last_write_time(newer, now - std::chrono::seconds(20));
    }
}

// The launcher the build compiles CUDA through: the figures go beside the object and no longer into the build's
// output, what else nvcc prints (ptxas's coded notes too) still does, and its exit status is the compiler's.
TEST(KernelResources, TheLauncherKeepsTheFiguresBesideTheObjectAndPassesOnTheRest) {
    const TempDir dir("kernel_resources");
    const std::string nvcc = dir / "nvcc", object = dir / "k.cu.o", kept = object + ".ptxas.log";
    write_executable(nvcc, std::string("#!/usr/bin/env bash\n"
                                      "echo 'k.cu(7): warning #177-D: variable \"x\" unused' >&2\n"
                                      "[[ \" $* \" == *' -DBROKEN '* ]] && { echo 'k.cu(9): error: no' >&2; exit 3; }\n"
                                      "[[ \" $* \" == *' --resource-usage '* ]] && cat >&2 <<'EOF'\n") +
                              kPtxasFigures + "EOF\necho object > \"${@: -1}\"\n");
    const std::string launch = "bash " + std::string(SINKLAB_SOURCE_DIR) + "/cmake/ptxas_log.sh " + nvcc;

    const CommandResult built = run_command(launch + " --resource-usage -c k.cu -o " + object);
    ASSERT_EQ(built.rc, 0) << built.out;
    EXPECT_NE(built.out.find("warning #177-D"), std::string::npos) << built.out;
    EXPECT_NE(built.out.find("(C7517) warpgroup.wait is injected"), std::string::npos) << built.out;
    for (const char* figure : {"Compiling entry", "Function properties", "Used 96 registers", "bytes gmem",
                               "bytes stack frame"})
        EXPECT_EQ(built.out.find(figure), std::string::npos) << figure << " in:\n" << built.out;
    EXPECT_EQ(std::count(built.out.begin(), built.out.end(), '\n'), 2) << built.out;
    EXPECT_EQ(read_file(object), "object\n");
    EXPECT_NE(read_file(kept).find(kPtxasFigures), std::string::npos) << read_file(kept);
    EXPECT_GE(std::filesystem::last_write_time(kept), std::filesystem::last_write_time(object));
    EXPECT_EQ(std::filesystem::status(kept).permissions(), std::filesystem::status(object).permissions());

    // A failed compile keeps no figures of an earlier object; one without --resource-usage passes through untouched.
    const CommandResult broken = run_command(launch + " --resource-usage -DBROKEN -c k.cu -o " + object);
    EXPECT_EQ(broken.rc, 3) << broken.out;
    EXPECT_NE(broken.out.find("k.cu(9): error: no"), std::string::npos) << broken.out;
    EXPECT_FALSE(std::filesystem::exists(kept));
    const CommandResult plain = run_command(launch + " -c k.cu -o " + object);
    EXPECT_EQ(plain.rc, 0) << plain.out;
    EXPECT_NE(plain.out.find("warning #177-D"), std::string::npos) << plain.out;
    EXPECT_FALSE(std::filesystem::exists(kept));
    std::set<std::string> left;
    for (const auto& f : std::filesystem::directory_iterator(dir.path())) left.insert(f.path().filename().string());
    EXPECT_EQ(left, (std::set<std::string>{"k.cu.o", "nvcc"}));
}

TEST(KernelResources, ABuildItCannotReadIsOneErrorLine) {
    const TempDir dir("kernel_resources");
    const CommandResult missing = run_command(script_cmd("--build " + (dir / "nowhere")));
    EXPECT_EQ(missing.rc, 2) << missing.out;
    EXPECT_NE(missing.out.find("nowhere/compile_commands.json does not exist; configure and build first"),
              std::string::npos)
        << missing.out;

    stand_in_build(dir, false);
    const CommandResult broken = run_command(script_cmd("--build " + (dir / "build")));
    EXPECT_EQ(broken.rc, 2) << broken.out;
    EXPECT_NE(broken.out.find("kernels.cu did not compile"), std::string::npos) << broken.out;
    EXPECT_NE(broken.out.find("error: expected a"), std::string::npos) << broken.out;
    EXPECT_EQ(broken.out.find("Traceback"), std::string::npos) << broken.out;
}

}  // namespace
}  // namespace sinklab::test
