// Small models for the model tests: a config per attention variant, random batches, weight access.
#pragma once
#include <functional>
#include <ostream>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "config/config.h"
#include "core/rng.h"
#include "model/model.h"

namespace sinklab::test {

// A tiny GQA model (4 heads of 6 over 2 kv heads, 2 blocks) with the attention `variant`.
inline Config tiny_config(const std::string& variant) {
    Config c;
    c.source = "test";
    c.model.vocab_size = 23;
    c.model.d_model = 24;
    c.model.n_layer = 2;
    c.model.n_head = 4;
    c.model.n_kv_head = 2;
    c.model.d_ff = 20;
    c.model.seq_len = 9;
    c.attention.variant = variant;
    c.attention.headnorm.init = "first_token_std";
    c.metrics.positions = {0};
    c.metrics.wo_std_positions = 4;
    return c;
}

// Every attention variant and intervention the model tests cover, as edits of tiny_config("standard").
struct VariantCase {
    std::string name;
    std::function<void(Config&)> edit;
};
// gtest prints a failing case's parameter: its name, not its bytes.
inline void PrintTo(const VariantCase& c, std::ostream* os) { *os << c.name; }

inline std::vector<VariantCase> variant_cases() {
    return {
        {"standard", [](Config&) {}},
        {"headnorm", [](Config& c) { c.attention.variant = "headnorm"; }},
        {"headnorm_shared",
         [](Config& c) {
             c.attention.variant = "headnorm";
             c.attention.headnorm.gain = "shared";
         }},
        {"gated_channel", [](Config& c) { c.attention.variant = "gated"; }},
        {"gated_head",
         [](Config& c) {
             c.attention.variant = "gated";
             c.attention.gate = "head";
         }},
        {"headnorm_gated", [](Config& c) { c.attention.variant = "headnorm+gated"; }},
        // At eps 0.5 the D that HeadNorm's backward hands to the attention backward (eps r^3 g.dy.x per head) is
        // far from zero, so the gradients show whether it arrives; the sink logit's gradient is a sum over D.
        {"headnorm_sink_eps",
         [](Config& c) {
             c.attention.variant = "headnorm+sink_logit";
             c.attention.sink_init = 0.7f;
             c.attention.headnorm.eps = 0.5f;
         }},
        {"sink_logit",
         [](Config& c) {
             c.attention.variant = "sink_logit";
             c.attention.sink_init = 0.7f;
         }},
        {"off_by_one", [](Config& c) { c.attention.variant = "off_by_one"; }},
        {"sigmoid",
         [](Config& c) {
             c.attention.variant = "sigmoid";
             c.attention.sigmoid_bias = -1.5f;
         }},
        {"qk_norm", [](Config& c) { c.attention.qk_norm = true; }},
        {"isolate", [](Config& c) { c.intervention.isolate = {3, 6}; }},
        {"amplify_centered", [](Config& c) { c.intervention.amplify = {2, 10.f, {0}, "centered"}; }},
        {"amplify_causal", [](Config& c) { c.intervention.amplify = {5, 6.f, {1}, "centered_causal"}; }},
        {"amplify_scale", [](Config& c) { c.intervention.amplify = {5, 3.f, {0, 1}, "scale"}; }},
    };
}

struct Batch {
    std::vector<int32_t> inputs, targets;
};

inline Batch random_batch(const Config& c, int B, int T, uint64_t seed) {
    Rng rng(seed, 7);
    Batch b;
    for (int i = 0; i < B * T; i++) {
        b.inputs.push_back(int32_t(rng.below(uint64_t(c.model.vocab_size))));
        b.targets.push_back(int32_t(rng.below(uint64_t(c.model.vocab_size))));
    }
    return b;
}

inline std::vector<double> read_all(Backend& be, const Tensor& t) {
    std::vector<double> v(size_t(t.numel()));
    be.read(v.data(), DType::F64, t);
    return v;
}

}  // namespace sinklab::test
