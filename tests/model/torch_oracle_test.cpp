// sinklab's model against an independent PyTorch (float64) model of the same architecture
// (tests/oracle/llama_ref.py): same weights and batch -> same loss and parameter gradients, and the same
// HeadNorm first_token_std gain.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "model/model_fixture.h"

namespace fs = std::filesystem;

namespace sinklab::test {
namespace {

bool torch_available() {
    static const bool ok = std::system("/usr/bin/python3 -c 'import torch, numpy' >/dev/null 2>&1") == 0;
    return ok;
}

template <typename T> void write_bin(const fs::path& p, const std::vector<T>& v) {
    std::ofstream f(p, std::ios::binary);
    f.write(reinterpret_cast<const char*>(v.data()), std::streamsize(v.size() * sizeof(T)));
}

std::vector<double> read_f64(const fs::path& p) {
    std::ifstream f(p, std::ios::binary | std::ios::ate);
    std::vector<double> v(size_t(f.tellg()) / sizeof(double));
    f.seekg(0);
    f.read(reinterpret_cast<char*>(v.data()), std::streamsize(v.size() * sizeof(double)));
    return v;
}

double rel_err(const double* a, const double* b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) num += (a[i] - b[i]) * (a[i] - b[i]), den += b[i] * b[i];
    return std::sqrt(num / std::max(den, 1e-300));
}

struct OracleResult {
    double loss;
    std::vector<double> grads;  // packed in table order, no padding
    fs::path dir;
};

// Writes the model's weights and the batch, runs the oracle, reads its loss and gradients.
OracleResult run_oracle(const Config& cfg, Model& model, const Batch& batch, uint64_t seed, const std::string& tag) {
    Backend& be = model.backend();
    fs::path dir = fs::path(::testing::TempDir()) / ("sinklab_oracle_" + tag);
    fs::remove_all(dir);
    fs::create_directories(dir);
    const std::vector<double> flat = read_all(be, model.truth());
    std::vector<double> packed;
    nlohmann::json params = nlohmann::json::array();
    for (const ParamInfo& p : model.table().all()) {
        params.push_back({p.name, p.shape});
        packed.insert(packed.end(), flat.begin() + p.offset, flat.begin() + p.offset + p.numel);
    }
    const ModelConfig& m = cfg.model;
    const AttentionConfig& a = cfg.attention;
    const AmplifyConfig& amp = cfg.intervention.amplify;
    nlohmann::json meta = {
        {"B", model.B()}, {"T", model.T()}, {"params", params},
        {"model", {{"d_model", m.d_model}, {"n_layer", m.n_layer}, {"n_head", m.n_head}, {"n_kv_head", m.kv_heads()},
                   {"head_dim", m.head_dim()}, {"d_ff", m.d_ff}, {"norm_eps", m.norm_eps},
                   {"rope_theta", m.rope_theta}}},
        {"score", a.score()}, {"sigmoid_bias", a.sigmoid_bias}, {"qk_norm", a.qk_norm},
        {"headnorm", a.headnorm_on()}, {"headnorm_eps", a.headnorm.eps}, {"headnorm_gain", a.headnorm.gain},
        {"gate", a.gated_on() ? a.gate : std::string()}, {"isolate", cfg.intervention.isolate},
        {"amplify", amp.position >= 0 ? nlohmann::json{{"position", amp.position}, {"lambda", amp.lambda},
                                                       {"layers", amp.layers}, {"mode", amp.mode}}
                                      : nlohmann::json()}};
    std::ofstream(dir / "meta.json") << meta.dump();
    write_bin(dir / "weights.bin", packed);
    write_bin(dir / "inputs.bin", batch.inputs);
    write_bin(dir / "targets.bin", batch.targets);
    if (a.headnorm_on() && a.headnorm.init == "first_token_std")
        for (int l = 0; l < m.n_layer; l++) {
            const std::vector<float> x = headnorm_init_input(seed, l, m.d_model);
            write_bin(dir / fmt::format("headnorm_input_{}.bin", l), std::vector<double>(x.begin(), x.end()));
        }
    const std::string cmd = "/usr/bin/python3 " SINKLAB_TEST_DIR "/oracle/llama_ref.py " + dir.string();
    EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
    OracleResult r;
    std::ifstream(dir / "loss.txt") >> r.loss;
    r.grads = read_f64(dir / "grads.bin");
    r.dir = dir;
    return r;
}

class TorchOracle : public ::testing::TestWithParam<std::tuple<VariantCase, DType>> {};

TEST_P(TorchOracle, SameLossAndGradients) {
    if (!torch_available()) GTEST_SKIP() << "skipped: /usr/bin/python3 has no torch (apt install python3-torch)";
    const auto& [c, dtype] = GetParam();
    Config cfg = tiny_config("standard");
    c.edit(cfg);
    const int B = 2, T = cfg.model.seq_len;
    const uint64_t seed = 21;
    auto be = make_cpu_backend(dtype, 2);
    Model model(*be, cfg, B, T);
    model.init(seed);
    const Batch batch = random_batch(cfg, B, T, 4);
    model.zero_grad();
    const double loss = model.forward(batch.inputs.data(), batch.targets.data(), 1.f / float(B * T));
    model.backward();
    const std::vector<double> grads = read_all(*be, model.grads());
    const OracleResult ref = run_oracle(cfg, model, batch, seed, c.name + std::string(dtype_name(dtype)));

    // fp64 agrees to the rounding of the f32 gradient scale 1/(B*T) (a uniform 7e-9); fp32 within 1e-4.
    const double tol = dtype == DType::F64 ? 5e-8 : 1e-4;
    EXPECT_LT(std::abs(loss - ref.loss) / ref.loss, tol) << "loss " << loss << " vs torch " << ref.loss;
    size_t off = 0;
    for (const ParamInfo& p : model.table().all()) {
        ASSERT_LE(off + size_t(p.numel), ref.grads.size());
        EXPECT_LT(rel_err(grads.data() + p.offset, ref.grads.data() + off, size_t(p.numel)), tol) << p.name;
        off += size_t(p.numel);
    }
    EXPECT_EQ(off, ref.grads.size());

    // HeadNorm's first_token_std init: our gains equal the rule applied by the oracle.
    const std::vector<double> w = read_all(*be, model.truth());
    for (int l = 0; l < cfg.model.n_layer; l++) {
        const fs::path gp = ref.dir / fmt::format("headnorm_gain_{}.bin", l);
        if (!fs::exists(gp)) continue;
        const ParamInfo& g = model.table().get(layer_param(l, "headnorm"));
        const std::vector<double> want = read_f64(gp);
        ASSERT_EQ(want.size(), size_t(g.numel));
        EXPECT_LT(rel_err(w.data() + g.offset, want.data(), want.size()), dtype == DType::F64 ? 1e-12 : 1e-5)
            << g.name;
        // About init_std * sqrt(d_model) = 0.1: far from the ones the gain is filled with before the rule runs.
        EXPECT_GT(want[0], 0.01);
        EXPECT_LT(want[0], 0.5);
    }
}

INSTANTIATE_TEST_SUITE_P(Variants, TorchOracle,
                         ::testing::Combine(::testing::ValuesIn(variant_cases()),
                                            ::testing::Values(DType::F64, DType::F32)),
                         [](const auto& info) {
                             return std::get<0>(info.param).name + "_" +
                                    std::string(dtype_name(std::get<1>(info.param)));
                         });

}  // namespace
}  // namespace sinklab::test
