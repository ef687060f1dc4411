// scripts/gpu_variants.sh run, on a variants pack of stand-in binaries: shell scripts that print what GoogleTest and
// `sinklab bench` print, and log the arguments they were given. The script only runs on the rare device sessions, so
// this is where its bookkeeping is checked: test counts summed over its two test processes, a ref whose wgmma tests
// fail benched without sinklab_wgmma, the table of mean tokens/s and ratios to the first ref, and the op families'
// time per step from the bench's per-op table.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "cli_util.h"

namespace sinklab::test {
namespace {

// A stand-in sinklab_tests: 17 tests pass in the first process; in the second (--gtest_filter=Cuda*Wgmma*) 3 pass,
// or 1 passes and 2 fail when wgmma_fails.
std::string fake_tests(bool wgmma_fails) {
    return std::string("#!/usr/bin/env bash\n"
                       "if [[ $2 == '--gtest_filter=Cuda*Wgmma*' ]]; then\n") +
           (wgmma_fails ? "    echo '[  PASSED  ] 1 test.'\n"
                          "    echo '[  FAILED  ] 2 tests, listed below:'\n"
                          "    exit 1\n"
                        : "    echo '[  PASSED  ] 3 tests.'\n"
                          "    exit 0\n") +
           "fi\n"
           "echo '[  PASSED  ] 17 tests.'\n";
}

// A stand-in sinklab: logs its arguments, then prints a bench row per --impls value with the tokens/s given (step
// 50 ms), labelled as sinklab bench labels them (the implementation in brackets only when there are several), and
// the per-op table after them: rope's share of op time rope_share, attention_fwd's 6% and 7% by column, matmul's
// the rest (not a family the table reports), headnorm's 0.
std::string fake_sinklab(int sinklab_tokens, int wgmma_tokens, const std::string& rope_share) {
    return "#!/usr/bin/env bash\n"
           "echo \"$*\" >>args.log\n"
           "impls=() in=0\n"
           "for a in \"$@\"; do\n"
           "    [[ $a == --* ]] && in=0\n"
           "    ((in)) && impls+=(\"$a\")\n"
           "    [[ $a == --impls ]] && in=1\n"
           "done\n"
           "i=1\n"
           "for impl in \"${impls[@]}\"; do\n"
           "    tok=" + std::to_string(sinklab_tokens) + "\n"
           "    [[ $impl == sinklab_wgmma ]] && tok=" + std::to_string(wgmma_tokens) + "\n"
           "    label=standard\n"
           "    ((${#impls[@]} > 1)) && label=\"standard [$impl]\"\n"
           "    echo \"  $i $label     $tok    50.00    40.0%    1.000x\"\n"
           "    i=$((i + 1))\n"
           "done\n"
           "echo\n"
           "echo 'share of op time per family (%), columns by # above'\n"
           "echo 'op                  #1      #2'\n"
           "echo 'matmul             80.0    80.0'\n"
           "echo 'rope               " + rope_share + "     " + rope_share + "'\n"
           "echo 'attention_fwd       6.0     7.0'\n"
           "echo 'headnorm            0.0     0.0'\n"
           "echo\n"
           "echo 'attention per step: ms, and TFLOP/s of its products (forward 2, backward 5) on the causal scores'\n"
           "echo 'rope ms             9.9     9.9'\n";
}

void add_variant(const std::string& root, const std::string& name, bool wgmma_fails, int sinklab_tokens,
                 int wgmma_tokens, const std::string& rope_share) {
    const std::string dir = root + "/" + name;
    write_executable(dir + "/sinklab_tests", fake_tests(wgmma_fails));
    write_executable(dir + "/sinklab", fake_sinklab(sinklab_tokens, wgmma_tokens, rope_share));
    write_file(dir + "/configs/llama-152m.yaml", "inherit: base.yaml\n");
}

// Packs folder `src` as `dest` (.tar.xz) with Python's tarfile, which needs no xz binary.
void pack(const std::string& src, const std::string& dest) {
    const CommandResult r = run_command("python3 -c 'import sys, tarfile; t = tarfile.open(sys.argv[1], \"w:xz\"); "
                                        "t.add(sys.argv[2], arcname=\".\"); t.close()' " +
                                        dest + " " + src);
    ASSERT_EQ(r.rc, 0) << r.out;
}

// The base ref 1-aaa-base (its wgmma tests pass; 1000 and 2000 tokens/s; rope 4%) and, with `second`, 2-bbb-wgfail
// (its wgmma tests fail; 1100 tokens/s; rope 1%) packed into dir/carry, and `gpu_variants.sh run` on them with `env`.
CommandResult run_variants(const TempDir& dir, bool second, const std::string& env) {
    const std::string carry = dir / "carry", stage = dir / "stage";
    std::filesystem::create_directories(carry);
    write_file(stage + "/pack/lib/README", "the carried libraries\n");
    pack(stage + "/pack", carry + "/sinklab-gpu.tar.xz");
    add_variant(stage + "/variants", "1-aaa-base", false, 1000, 2000, "4.0");
    if (second) add_variant(stage + "/variants", "2-bbb-wgfail", true, 1100, 9999, "1.0");
    pack(stage + "/variants", carry + "/variants.tar.xz");
    write_file(carry + "/VARIANTS",
               std::string("1-aaa-base base aaaaaaaaaaaa\n") + (second ? "2-bbb-wgfail wgfail bbbbbbbbbbbb\n" : ""));
    return run_command("cd " + std::string(SINKLAB_SOURCE_DIR) + " && CARRY=" + carry + " TMPDIR=" + dir.path() +
                       " OUT=" + (dir / "out") + " " + env + " bash scripts/gpu_variants.sh run");
}

TEST(GpuVariants, ARefWhoseWgmmaTestsFailIsBenchedWithoutThem) {
    const TempDir dir("gpu_variants");
    const CommandResult r = run_variants(dir, true, "ROUNDS=1");
    ASSERT_EQ(r.rc, 0) << r.out;
    const std::string md = read_file(dir / "out/variants.md");
    EXPECT_NE(md.find("| 1-aaa-base | base | aaaaaaaaaaaa | rc 0: 20 passed, 0 failed |"), std::string::npos) << md;
    EXPECT_NE(md.find("| 2-bbb-wgfail | wgfail | bbbbbbbbbbbb | rc 1: 18 passed, 2 failed; wgmma tests failed: "
                      "benched without sinklab_wgmma |"),
              std::string::npos)
        << md;
    // Means with their min-max over the rounds, and the ratio to the first ref; no wgmma figure for the second.
    EXPECT_NE(md.find("Mean tokens/s over the 1 round(s) run"), std::string::npos) << md;
    for (const char* T : {"1024", "4096"}) {
        EXPECT_NE(md.find(std::string("| ") + T + " | standard [sinklab] | 1.0k (1.0-1.0) 1.000x | 1.1k (1.1-1.1) "
                                                  "1.100x |"),
                  std::string::npos)
            << md;
        EXPECT_NE(md.find(std::string("| ") + T + " | standard [sinklab_wgmma] | 2.0k (2.0-2.0) 1.000x | n/a |"),
                  std::string::npos)
            << md;
        // Share x step time per configuration column; families the table does not report, and zero shares, left out.
        EXPECT_NE(md.find(std::string("| ") + T + " | standard [sinklab] | rope | 2.00 (2.00-2.00) 1.000x | 0.50 "
                                                  "(0.50-0.50) 0.250x |"),
                  std::string::npos)
            << md;
        EXPECT_NE(md.find(std::string("| ") + T + " | standard [sinklab_wgmma] | attention_fwd | 3.50 (3.50-3.50) "
                                                  "1.000x | n/a |"),
                  std::string::npos)
            << md;
    }
    EXPECT_EQ(md.find("matmul"), std::string::npos) << md;
    EXPECT_EQ(md.find("headnorm"), std::string::npos) << md;
    const std::string work = dir / "sinklab-gpu-variants/variants";
    const std::string base_args = read_file(work + "/1-aaa-base/args.log"),
                      failed_args = read_file(work + "/2-bbb-wgfail/args.log");
    EXPECT_NE(base_args.find("--impls sinklab sinklab_wgmma --variants standard"), std::string::npos) << base_args;
    EXPECT_NE(failed_args.find("--impls sinklab --variants standard"), std::string::npos) << failed_args;
    EXPECT_EQ(failed_args.find("sinklab_wgmma"), std::string::npos) << failed_args;
}

// Nothing starts that could not end before SINKLAB_GPU_DEADLINE, and the report still comes out.
TEST(GpuVariants, NothingStartsPastTheCallsDeadline) {
    const TempDir dir("gpu_variants_deadline");
    const CommandResult r = run_variants(dir, false, "SINKLAB_GPU_DEADLINE=$(date +%s)");
    ASSERT_EQ(r.rc, 0) << r.out;
    EXPECT_NE(r.out.find("tests 1-aaa-base: skipped, the call's time is spent"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("not started, the call's time is spent"), std::string::npos) << r.out;
    const std::string md = read_file(dir / "out/variants.md");
    EXPECT_NE(md.find("| 1-aaa-base | base | aaaaaaaaaaaa | not run: the call's time was spent |"), std::string::npos)
        << md;
    EXPECT_FALSE(std::filesystem::exists(dir / "sinklab-gpu-variants/variants/1-aaa-base/args.log"))
        << "a bench ran past the deadline";
}

}  // namespace
}  // namespace sinklab::test
