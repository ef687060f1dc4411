// Command-line usage errors, as a user meets them: one `sinklab: error:` line naming the option or command and
// the --help to read, exit status 2; --help and --version print as usual and exit 0.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>

#include "cli_util.h"

namespace sinklab::test {
namespace {

TEST(Usage, ErrorsAreOneLineWithExitStatus2) {
    const TempDir dir("usage");
    const CommandResult unknown = run_sinklab("frobnicate");
    EXPECT_EQ(unknown.rc, 2);
    EXPECT_EQ(unknown.out, "sinklab: error: unknown command 'frobnicate'; the commands are train, info, bench, "
                           "prepare, tokenize, sweep, compare, export, eval; run 'sinklab --help'\n");

    const CommandResult none = run_sinklab("");
    EXPECT_EQ(none.rc, 2);
    EXPECT_TRUE(none.out.starts_with("sinklab: error: no command given; the commands are train,")) << none.out;

    const CommandResult range = run_sinklab(fmt::format("eval {} --batches 0", dir.path()));
    EXPECT_EQ(range.rc, 2);
    EXPECT_EQ(range.out,
              "sinklab: error: --batches: 0 is too small; it must be at least 1; run 'sinklab eval --help'\n");

    const CommandResult huge = run_sinklab(fmt::format("info {} --ranks 99999999999", dir.path()));
    EXPECT_EQ(huge.rc, 2);
    EXPECT_EQ(huge.out, "sinklab: error: --ranks: 99999999999 is too large; it must be at most 2147483647; run "
                        "'sinklab info --help'\n");

    const CommandResult negative = run_sinklab(fmt::format("bench {} --warmup -1", dir.path()));
    EXPECT_EQ(negative.rc, 2);
    EXPECT_EQ(negative.out, "sinklab: error: --warmup: -1 is too small; it must be at least 0; run 'sinklab bench "
                            "--help'\n");

    const CommandResult choice = run_sinklab(fmt::format("export {} --format gguf", dir.path()));
    EXPECT_EQ(choice.rc, 2);
    EXPECT_EQ(choice.out, "sinklab: error: --format: gguf not in {hf}; run 'sinklab export --help'\n");

    // An option misspelt is named with the option it is a typo of.
    const CommandResult typo =
        run_sinklab(fmt::format("train {}/configs/tiny.yaml --sett train.lr=1", SINKLAB_SOURCE_DIR));
    EXPECT_EQ(typo.rc, 2);
    EXPECT_EQ(typo.out, "sinklab: error: The following arguments were not expected: train.lr=1 --sett (--sett is no "
                        "option of sinklab train: did you mean --set?); run 'sinklab train --help'\n");
    const CommandResult far = run_sinklab(fmt::format("eval {} --batchez=2 --frobnicate", dir.path()));
    EXPECT_EQ(far.rc, 2);
    EXPECT_NE(far.out.find("(--batchez is no option of sinklab eval: did you mean --batches?)"), std::string::npos)
        << far.out;
    const CommandResult nothing_close = run_sinklab(fmt::format("eval {} --frobnicate", dir.path()));
    EXPECT_EQ(nothing_close.rc, 2);
    EXPECT_EQ(nothing_close.out.find("did you mean"), std::string::npos) << nothing_close.out;

    const CommandResult missing = run_sinklab(fmt::format("eval {}", dir / "nothere"));
    EXPECT_EQ(missing.rc, 2);
    EXPECT_EQ(std::count(missing.out.begin(), missing.out.end(), '\n'), 1) << missing.out;
    EXPECT_TRUE(missing.out.starts_with("sinklab: error: run: Directory does not exist: ")) << missing.out;
}

// A file-system call that fails where no check foresaw it (here a config that is a loop of links) is one line that
// names the path first, as every sinklab error does, with exit status 1.
TEST(Usage, FileSystemErrorsNameThePath) {
    const TempDir dir("usage_fs");
    std::filesystem::create_symlink(dir / "b.yaml", dir / "a.yaml");
    std::filesystem::create_symlink(dir / "a.yaml", dir / "b.yaml");
    const CommandResult loop = run_sinklab("info " + (dir / "a.yaml"));
    EXPECT_EQ(loop.rc, 1);
    EXPECT_EQ(std::count(loop.out.begin(), loop.out.end(), '\n'), 1) << loop.out;
    EXPECT_TRUE(loop.out.starts_with("sinklab: error: " + (dir / "a.yaml") + ": ")) << loop.out;
    EXPECT_NE(loop.out.find("Too many levels of symbolic links"), std::string::npos) << loop.out;
    EXPECT_EQ(loop.out.find("filesystem error"), std::string::npos) << loop.out;
}

// Output that cannot be written (a full disk: /dev/full here) is an error, not a success with the output cut short;
// a reader that stops reading (`| head`) is no failure, even where the writes fail with EPIPE.
TEST(Usage, UnwritableStandardOutputFails) {
    const TempDir dir("usage_stdout");
    write_file(dir / "text.txt", std::string(200000, 'a'));
    const std::string config = std::string(SINKLAB_SOURCE_DIR) + "/configs/tiny.yaml";
    for (const std::string& args :
         {"info " + config, "tokenize --tokenizer bytes " + (dir / "text.txt"), std::string("--help"),
          std::string("train --help"), std::string("--version")}) {
        const CommandResult full = run_command(fmt::format("{{ {} {} > /dev/full; }}", SINKLAB_BINARY, args));
        EXPECT_EQ(full.rc, 1) << args;
        // --version's one line is flushed by the library that prints it, whose failure leaves no reason behind.
        EXPECT_EQ(full.out, args == "--version"
                                ? "sinklab: error: cannot write the standard output: an earlier write failed; its "
                                  "output is incomplete\n"
                                : "sinklab: error: cannot write the standard output: No space left on device (free "
                                  "space on that file system); its output is incomplete\n")
            << args;
        // SIGPIPE ignored, as a parent may leave it: the writes fail with EPIPE instead of ending the process.
        const CommandResult closed = run_command(fmt::format(
            "bash -c 'trap \"\" PIPE; set -o pipefail; {} {} | head -c 1 > /dev/null'", SINKLAB_BINARY, args));
        EXPECT_EQ(closed.rc, 0) << args << ": " << closed.out;
        EXPECT_EQ(closed.out, "") << args;
    }
}

TEST(Usage, HelpAndVersionExit0) {
    for (const char* args : {"--help", "eval --help", "--version"}) {
        const CommandResult r = run_sinklab(args);
        EXPECT_EQ(r.rc, 0) << args << ": " << r.out;
        EXPECT_EQ(r.out.find("error"), std::string::npos) << args << ": " << r.out;
        EXPECT_FALSE(r.out.empty()) << args;
    }
}

// A CUDA build starts without cuBLASLt (src/backend/cublaslt_lazy.cu), which costs every process 0.26 s: the dynamic
// loader's log of `sinklab --version` names the CUDA runtime it loads and not cuBLASLt.
TEST(Usage, ACudaBuildStartsWithoutCublasLt) {
#ifndef SINKLAB_HAVE_CUDA
    GTEST_SKIP() << "built without CUDA";
#else
    const CommandResult r = run_sinklab("--version", "LD_DEBUG=files");
    EXPECT_EQ(r.rc, 0) << r.out;
    EXPECT_NE(r.out.find("file=libcudart.so"), std::string::npos) << r.out;
    EXPECT_EQ(r.out.find("libcublasLt"), std::string::npos) << r.out;
#endif
}

}  // namespace
}  // namespace sinklab::test
