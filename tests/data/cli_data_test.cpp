// The `sinklab tokenize` and `sinklab prepare` subcommands, run as a user would.
#include <fmt/format.h>

#include "data_test_util.h"

namespace sinklab {
namespace {

const std::string kBin = SINKLAB_BINARY;

TEST(CliTokenize, BytesIdsAndBack) {
    test::TempDir dir;
    test::write_file(dir / "in.txt", "h\xc3\xa9llo");
    const auto r = test::run_command(kBin + " tokenize --tokenizer bytes '" + (dir / "in.txt") + "'");
    EXPECT_EQ(r.rc, 0) << r.out;
    EXPECT_EQ(r.out, "104 195 169 108 108 111\n");
    const auto back = test::run_command("echo '104 195 169 108 108 111 256' | " + kBin +
                                        " tokenize --tokenizer bytes --decode -");
    EXPECT_EQ(back.rc, 0);
    EXPECT_EQ(back.out, "h\xc3\xa9llo<|endoftext|>");
}

TEST(CliTokenize, Gpt2IdsAndBack) {
    SKIP_WITHOUT_VOCAB();
    const std::string env = "SINKLAB_CACHE='" + test::cache_root() + "' ";
    const auto r = test::run_command("printf 'Hello world! The quick brown fox.' | " + env + kBin + " tokenize -");
    EXPECT_EQ(r.rc, 0) << r.out;
    EXPECT_EQ(r.out, "15496 995 0 383 2068 7586 21831 13\n");
    const auto back = test::run_command("printf 'Hello world!\\n\\n  x' | " + env + kBin + " tokenize - | " + env +
                                        kBin + " tokenize --decode -");
    EXPECT_EQ(back.out, "Hello world!\n\n  x");
}

TEST(CliTokenize, BadInputIsAnErrorNamingIt) {
    test::TempDir dir;
    test::write_file(dir / "latin1.txt", "na\xefve");
    auto r = test::run_command(kBin + " tokenize --tokenizer bytes '" + (dir / "latin1.txt") + "'");
    EXPECT_EQ(r.rc, 1);
    EXPECT_NE(r.out.find(dir / "latin1.txt" + ": invalid UTF-8 at byte 2"), std::string::npos) << r.out;
    r = test::run_command("echo '1 2 x3 4' | " + kBin + " tokenize --tokenizer bytes --decode -");
    EXPECT_EQ(r.rc, 1);
    EXPECT_NE(r.out.find("'x3' (item 3) is not a token id; --decode reads decimal ids"), std::string::npos) << r.out;
    // Binary input: one whole line, its bytes escaped (a NUL cut the message short).
    const char binary[] = "72 \x00\x01\xd8 101";
    test::write_file(dir / "binary.bin", std::string(binary, sizeof(binary) - 1));
    r = test::run_command(kBin + " tokenize --tokenizer bytes --decode '" + (dir / "binary.bin") + "'");
    EXPECT_EQ(r.rc, 1);
    EXPECT_EQ(r.out, fmt::format("sinklab: error: {}: '\\x00\\x01\\xd8' (item 2) is not a token id; --decode reads "
                                 "decimal ids separated by spaces, as tokenize prints them (a .bin shard is binary: "
                                 "read it with numpy, see data/README.md)\n",
                                 dir / "binary.bin"));
    r = test::run_command("echo '1 999' | " + kBin + " tokenize --tokenizer bytes --decode -");
    EXPECT_EQ(r.rc, 1);
    EXPECT_NE(r.out.find("999"), std::string::npos) << r.out;
    r = test::run_command(kBin + " tokenize --tokenizer bytes '" + (dir / "nope.txt") + "'");
    EXPECT_EQ(r.rc, 1);
    EXPECT_NE(r.out.find(dir / "nope.txt"), std::string::npos) << r.out;
    r = test::run_command(kBin + " tokenize --tokenizer bytes '" + dir.path() + "'");
    EXPECT_EQ(r.rc, 1);
    EXPECT_EQ(r.out, "sinklab: error: " + dir.path() + " is a folder; give a text file, or - for standard input\n");
}

TEST(CliPrepare, PreparesThenReuses) {
    test::TempDir dir;
    for (int i = 0; i < 50; ++i) test::write_file(dir / fmt::format("in/{}.txt", i), fmt::format("text {}", i));
    const std::string cmd = kBin + " prepare '" + (dir / "in") + "' --out '" + (dir / "out") +
                            "' --tokenizer bytes --val-fraction 0.2 -q";
    auto r = test::run_command(cmd);
    EXPECT_EQ(r.rc, 0) << r.out;
    EXPECT_NE(r.out.find("prepared"), std::string::npos) << r.out;
    EXPECT_TRUE(std::filesystem::exists(dir / "out/train_000000.bin"));
    EXPECT_TRUE(std::filesystem::exists(dir / "out/val_000000.bin"));
    r = test::run_command(cmd);
    EXPECT_EQ(r.rc, 0) << r.out;
    EXPECT_NE(r.out.find("up to date"), std::string::npos) << r.out;
    r = test::run_command(kBin + " prepare '" + (dir / "in") + "' --tokenizer bytes");
    EXPECT_NE(r.rc, 0) << "no --out must be refused: " << r.out;
}

}  // namespace
}  // namespace sinklab
