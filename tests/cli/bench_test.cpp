// sinklab bench's attention rows: the time per step of the forward and backward op families and the rate of their
// products, checked against the FLOPs counted here from the resolved config (`sinklab info --yaml`).
#include <gtest/gtest.h>

#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "cli_util.h"

namespace sinklab::test {
namespace {

const std::string kTiny = std::string(SINKLAB_SOURCE_DIR) + "/configs/tiny.yaml";

// The numbers of `label`'s row ("fwd ms   6.47   6.51").
std::vector<double> row_values(const std::string& out, const std::string& label) {
    std::vector<double> v;
    for (const std::string& w : row_after(out, label)) v.push_back(std::stod(w));
    return v;
}

TEST(Bench, ReportsAttentionTimeAndTheRateOfItsProducts) {
    // Short sequences, where the causal count T (T + 1) / 2 differs from T^2 / 2 by 4%.
    const std::string sets =
        " --set run.threads=1 --set model.seq_len=24 --set metrics.wo_std_positions=8 --set train.micro_batch=3";
    const CommandResult info = run_sinklab("info " + kTiny + sets + " --yaml");
    ASSERT_EQ(info.rc, 0) << info.out;
    std::map<std::string, double> cfg;
    const std::regex key(R"(^\s+(micro_batch|seq_len|n_head|d_model|n_layer):\s+(\d+))");
    std::istringstream in(info.out);
    for (std::string line; std::getline(in, line);)
        if (std::smatch m; std::regex_search(line, m, key) && !cfg.count(m[1])) cfg[m[1]] = std::stod(m[2]);
    ASSERT_EQ(cfg.size(), 5u) << info.out;
    const double B = cfg["micro_batch"], T = cfg["seq_len"], H = cfg["n_head"], L = cfg["n_layer"];
    const double hd = cfg["d_model"] / H;
    // Per layer, sequence and head, query t meets keys 0..t: T (T + 1) / 2 scores, 2 hd FLOPs each per product.
    const double product = L * B * H * T * (T + 1) / 2 * 2 * hd;

    const CommandResult bench =
        run_sinklab("bench " + kTiny + sets + " --variants standard headnorm --steps 2 --warmup 0",
                    "OMP_WAIT_POLICY=passive");
    ASSERT_EQ(bench.rc, 0) << bench.out;
    for (const auto& [name, products] : {std::pair{"fwd", 2}, std::pair{"bwd", 5}}) {
        const std::vector<double> ms = row_values(bench.out, std::string(name) + " ms");
        const std::vector<double> rate = row_values(bench.out, std::string(name) + " TFLOP/s");
        ASSERT_EQ(ms.size(), 2u) << bench.out;  // a column per variant
        ASSERT_EQ(rate.size(), 2u) << bench.out;
        for (size_t i = 0; i < 2; i++) {
            ASSERT_GT(ms[i], 0.0) << bench.out;
            // Both printed to 3 significant digits: each within 0.5%.
            EXPECT_NEAR(rate[i], products * product / (ms[i] * 1e-3) / 1e12, 0.011 * rate[i])
                << name << " column " << i + 1 << "\n" << bench.out;
        }
    }
}

// On the CPU every attention.impl runs the CPU backend's attention: the bench says so once per such impl.
TEST(Bench, SaysWhatRunsForACudaAttentionImplOnTheCpu) {
    const CommandResult bench = run_sinklab("bench " + kTiny + " --set backend=cpu --set run.threads=1 --steps 1 "
                                            "--warmup 0 --no-profile --impls sinklab cudnn sinklab_wgmma --set "
                                            "model.n_head=2 --set precision.compute=bf16");
    ASSERT_EQ(bench.rc, 0) << bench.out;
    for (const std::string impl : {"cudnn", "sinklab_wgmma"}) {
        const std::string note = "attention.impl: " + impl + " is a CUDA implementation; the CPU backend computes the "
                                 "same attention with its own kernels\n";
        const auto at = bench.out.find(note);
        EXPECT_NE(at, std::string::npos) << bench.out;
        EXPECT_EQ(bench.out.find(note, at + 1), std::string::npos) << "said twice:\n" << bench.out;
    }
    EXPECT_EQ(bench.out.find("attention.impl: sinklab is"), std::string::npos) << bench.out;
}

// A bad --variants or --impls value is blamed on the flag, not on the config file, and no note comes before it; a
// --set value on --set.
TEST(Bench, BadVariantsAndImplsNameTheFlag) {
    const std::string common = "bench " + kTiny + " --set run.threads=1 --steps 1 --warmup 0 --no-profile ";
    const CommandResult variant = run_sinklab(common + "--variants standard bogus");
    EXPECT_NE(variant.rc, 0);
    EXPECT_NE(variant.out.find("sinklab: error: attention.variant=\"bogus\" (--variants): "), std::string::npos)
        << variant.out;
    const CommandResult impl = run_sinklab(common + "--impls cudnn bogus");
    EXPECT_NE(impl.rc, 0);
    EXPECT_NE(impl.out.find("sinklab: error: --impls: attention.impl: 'bogus' is not allowed"), std::string::npos)
        << impl.out;
    EXPECT_EQ(impl.out.find("is a CUDA implementation"), std::string::npos) << impl.out;
    // A value that --set gave is named as --set's, not as the config file's.
    const CommandResult heads = run_sinklab(common + "--set model.n_head=8 --impls sinklab_wgmma");
    EXPECT_NE(heads.rc, 0);
    EXPECT_NE(heads.out.find("attention.impl=\"sinklab_wgmma\" (--impls)"), std::string::npos) << heads.out;
    EXPECT_NE(heads.out.find("model.n_head=8 (--set)"), std::string::npos) << heads.out;
}

}  // namespace
}  // namespace sinklab::test
