// `sinklab info`'s memory estimate (model_footprint) against what a training step really allocates on the
// backend: a buffer added to the model or the optimizer without the estimate knowing fails here.
#include <gtest/gtest.h>

#include "model/model_fixture.h"
#include "test_util.h"
#include "train/optimizer.h"

namespace sinklab::test {
namespace {

class Footprint : public ::testing::TestWithParam<VariantCase> {};

TEST_P(Footprint, EstimateIsWhatATrainingStepAllocates) {
    Config cfg = tiny_config("standard");
    GetParam().edit(cfg);
    const int B = 3, T = cfg.model.seq_len;
    for (DType compute : {DType::F32, DType::F64}) {
        SCOPED_TRACE(std::string(dtype_name(compute)));
        auto be = make_cpu_backend(compute, 1);
        const size_t before = be->memory_in_use();
        be->reset_peak_memory();
        {
            Model model(*be, cfg, B, T);
            model.init(cfg.run.seed);
            AdamW optim(model, cfg.train, cfg.precision, cfg.run.seed);
            const Batch batch = random_batch(cfg, B, T, 5);
            model.zero_grad();
            model.forward(batch.inputs.data(), batch.targets.data(), 1.f / float(B * T));
            model.backward();
            optim.step(cfg.train.lr, 1.0);
            const size_t estimate = model_footprint(cfg, B, T, compute).total();
            // Held for the whole run: exactly the estimate.
            EXPECT_EQ(be->memory_in_use() - before, estimate);
            // At its peak the run may also hold the HeadNorm init's short-lived buffers (64 tokens of one block).
            const size_t per_token = 2 * cfg.model.d_model + cfg.model.n_head * cfg.model.head_dim() * 4;
            const size_t init_tokens = size_t(kHeadNormInitTokens) * per_token;
            EXPECT_GE(be->peak_memory() - before, estimate);
            EXPECT_LE(be->peak_memory() - before, estimate + init_tokens * dtype_size(compute));
        }
        EXPECT_EQ(be->memory_in_use(), before) << "the model or the optimizer did not release everything";
    }
}

INSTANTIATE_TEST_SUITE_P(Variants, Footprint, ::testing::ValuesIn(variant_cases()),
                         [](const auto& info) { return info.param.name; });

// The CUDA bf16 attention backward's scratch, counted here from its layout. Ours: the row sums D [B, H, T] in f32,
// padded to 256 bytes, then the dS: per pass of sequences, H x n (n + 1) / 2 tiles (n = ceil(T / 64)) of 64 x 64 bf16
// scores per sequence, passes within the budget (1 GiB unless set) sharing the sequences evenly. cuDNN's: its row sums
// (padded alike) and an f32 dQ accumulator [B, T, H, hd].
TEST(AttentionScratchBytes, EstimatesTheScratchOfTheBf16Backward) {
    const size_t tile = 64 * 64 * 2;
    const auto rows = [](size_t B, size_t H, size_t T) { return (B * H * T * 4 + 255) / 256 * 256; };
    EXPECT_EQ(attention_scratch_bytes(attn_spec(5, 130, 4, 2, 64), DType::BF16), rows(5, 4, 130) + 5 * 4 * 6 * tile);
    // llama-152m: 48 x 1024 fits in one pass; at 12 x 4096 a sequence holds 12 x 2080 tiles (195 MiB), 5 fit in
    // 1 GiB, so 3 passes of 4.
    EXPECT_EQ(attention_scratch_bytes(attn_spec(48, 1024, 12, 12, 64), DType::BF16),
              rows(48, 12, 1024) + 48 * 12 * 136 * tile);
    EXPECT_EQ(attention_scratch_bytes(attn_spec(12, 4096, 12, 12, 64), DType::BF16),
              rows(12, 12, 4096) + 4 * 12 * 2080 * tile);
    // The same on wgmma; no dS where the backward recomputes it: head dims above 64, one sequence beyond the budget.
    AttnSpec wgmma = attn_spec(5, 130, 4, 2, 64);
    wgmma.wgmma = true;
    EXPECT_EQ(attention_scratch_bytes(wgmma, DType::BF16), rows(5, 4, 130) + 5 * 4 * 6 * tile);
    EXPECT_EQ(attention_scratch_bytes(attn_spec(5, 130, 4, 2, 128), DType::BF16), rows(5, 4, 130));
    EXPECT_EQ(attention_scratch_bytes(attn_spec(1, 16384, 12, 12, 64), DType::BF16),
              rows(1, 12, 16384));  // 12 x 32896 tiles: 3 GiB
    // cuDNN (5 x 130 x 4 rows of 64 dims), and nothing in other dtypes.
    AttnSpec cudnn = attn_spec(5, 130, 4, 2, 64);
    cudnn.cudnn = true;
    EXPECT_EQ(attention_scratch_bytes(cudnn, DType::BF16), rows(5, 4, 130) + 5 * 130 * 4 * 64 * 4);
    EXPECT_EQ(attention_scratch_bytes(attn_spec(5, 130, 4, 2, 64), DType::F32), 0u);
    // The budget is the spec's: 2 sequences' worth and a little more runs 5 in passes of 2, 2 and 1; 0 keeps none.
    AttnSpec budget = attn_spec(5, 130, 4, 2, 64);
    budget.ds_budget = 2 * 4 * 6 * tile + 1000;
    EXPECT_EQ(attention_scratch_bytes(budget, DType::BF16), rows(5, 4, 130) + 2 * 4 * 6 * tile);
    budget.ds_budget = 0;
    EXPECT_EQ(attention_scratch_bytes(budget, DType::BF16), rows(5, 4, 130));
    // ... and model_footprint counts it in bf16, under attention.ds_scratch_mib: the tiny model's 3 sequences of
    // 9 tokens keep one tile per head (4).
    Config cfg = tiny_config("standard");
    const ModelFootprint bf16 = model_footprint(cfg, 3, cfg.model.seq_len, DType::BF16);
    EXPECT_EQ(bf16.attention_scratch, rows(3, 4, 9) + 3 * 4 * 1 * tile);
    EXPECT_EQ(make_attn_spec(cfg, 3, cfg.model.seq_len).ds_budget, AttnSpec{}.ds_budget);  // one default
    cfg.attention.ds_scratch_mib = 0;
    EXPECT_EQ(model_footprint(cfg, 3, cfg.model.seq_len, DType::BF16).attention_scratch, rows(3, 4, 9));
    cfg.attention.ds_scratch_mib = 3;
    EXPECT_EQ(make_attn_spec(cfg, 3, cfg.model.seq_len).ds_budget, size_t(3) << 20);
    cfg.attention.impl = "cudnn";
    EXPECT_EQ(model_footprint(cfg, 3, cfg.model.seq_len, DType::BF16).attention_scratch,
              rows(3, 4, 9) + 3 * 9 * 4 * cfg.model.head_dim() * 4);
}

// validate_config refuses such sizes first; a config built in code still must not get wrapped counts.
TEST(ParamTableSize, CountsPastInt64AreRefused) {
    Config cfg = tiny_config("standard");
    cfg.model.d_model = 2000000000;  // wqkv: (4 + 2 * 2) heads of 5e8 x 2e9 = 8e18, then wo 4e18: 1.2e19 in all
    std::string msg = error_of([&] { ParamTable table(cfg); });
    for (const char* part : {"layers.0.wo", "2^63", "model.d_model"})
        EXPECT_NE(msg.find(part), std::string::npos) << part << " missing from: " << msg;
    cfg.model.n_head = 2;  // wqkv alone: (2 + 2 * 2) heads of 1e9 x 2e9 = 1.2e19
    msg = error_of([&] { ParamTable table(cfg); });
    EXPECT_NE(msg.find("layers.0.wqkv of shape [6000000000, 2000000000]"), std::string::npos) << msg;
}

TEST(CpuAllocation, FailureSaysWhatToLower) {
    auto be = make_cpu_backend(DType::F32, 1);
    // Past any 64-bit address space, whatever the machine's overcommit policy.
    const std::string msg = error_of([&] { be->alloc(size_t(1) << 62); });
    for (const char* part : {"out of host memory", "4294967296.0 GiB", "sinklab info", "model.", "train.micro_batch"})
        EXPECT_NE(msg.find(part), std::string::npos) << part << " missing from: " << msg;
    EXPECT_EQ(be->memory_in_use(), 0u);
}

// A model whose activations cannot be allocated gives back the weights it got first, so that a caller that goes on
// (bench's next configuration) has the memory again.
TEST(CpuAllocation, AModelThatDoesNotFitReleasesItsWeights) {
    auto be = make_cpu_backend(DType::F32, 1);
    Config cfg = tiny_config("standard");
    cfg.model.vocab_size = 1 << 20;  // logits of 2^30 sequences: 2^58 bytes, past any address space
    const std::string msg = error_of([&] { Model model(*be, cfg, 1 << 30, cfg.model.seq_len); });
    EXPECT_NE(msg.find("out of host memory"), std::string::npos) << msg;
    EXPECT_GT(be->peak_memory(), size_t(cfg.model.vocab_size) * cfg.model.d_model * 4) << "the weights came first";
    EXPECT_EQ(be->memory_in_use(), 0u);
}

}  // namespace
}  // namespace sinklab::test
