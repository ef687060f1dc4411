#include "train/hf_export.h"

#include <fmt/ranges.h>

#include <filesystem>
#include <functional>
#include <optional>
#include <nlohmann/json.hpp>

#include "core/check.h"
#include "core/file_writer.h"
#include "core/folder_lock.h"
#include "model/params.h"
#include "train/checkpoint.h"
#include "train/fault_inject.h"
#include "train/safetensors.h"

namespace fs = std::filesystem;

namespace sinklab {

namespace {

// Rows [r0, r0 + n) of a row-major [rows, C] fp32 matrix.
std::vector<float> rows(const StoredTensor& t, int64_t r0, int64_t n) {
    const int64_t C = t.shape[1];
    const auto* p = reinterpret_cast<const float*>(t.data) + r0 * C;
    return std::vector<float>(p, p + n * C);
}

// Rows of `heads` heads of hd rows each, starting at row r0, with each head's rows in HF's RoPE order.
std::vector<float> rope_rows(const StoredTensor& t, int64_t r0, int heads, int hd) {
    const int64_t C = t.shape[1];
    const auto* p = reinterpret_cast<const float*>(t.data);
    std::vector<float> out(size_t(heads) * hd * C);
    for (int h = 0; h < heads; h++)
        for (int r = 0; r < hd; r++) {
            const float* src = p + (r0 + int64_t(h) * hd + hf_rope_source_row(r, hd)) * C;
            std::copy(src, src + C, out.begin() + (int64_t(h) * hd + r) * C);
        }
    return out;
}

std::vector<float> whole(const StoredTensor& t) {
    const auto* p = reinterpret_cast<const float*>(t.data);
    return std::vector<float>(p, p + t.bytes / sizeof(float));
}

// The metadata key of model.safetensors that marks a folder as written by export_hf_llama: such a folder may be
// exported into again; any other config.json or model.safetensors belongs to someone else.
constexpr const char* kExportMark = "sinklab_export";
constexpr const char* kExportFiles[] = {"config.json", "model.safetensors"};

bool is_our_export(const fs::path& dir) {
    try {
        return SafetensorsFile((dir / "model.safetensors").string()).metadata().count(kExportMark) > 0;
    } catch (const Error&) {
        return false;
    }
}

void check_export_folder(const fs::path& dir, bool overwrite) {
    // A checkpoint's model.safetensors or a run's files must never be replaced, even with --overwrite.
    for (const char* own : {"state.json", "metrics.h5", "checkpoints"})
        SL_REQUIRE(!fs::exists(dir / own),
                   "--out {}: it is a sinklab run or checkpoint folder (it holds {}), which export must not write "
                   "into; give another --out (the default is RUN/hf)",
                   dir.string(), own);
    if (overwrite || is_our_export(dir)) return;
    std::vector<std::string> taken;
    for (const char* name : kExportFiles)
        if (fs::exists(dir / name)) taken.emplace_back(name);
    SL_REQUIRE(taken.empty(),
               "--out {}: it already holds {}, not written by sinklab export; give another --out, or pass "
               "--overwrite to replace them",
               dir.string(), fmt::join(taken, " and "));
}

struct HfTensor {
    TensorSpec spec;
    std::function<std::vector<float>()> data;  // made when written, so that one tensor is in memory at a time
};

// A float config value as the double of its shortest decimal, as the config says it: 1e-06, not 9.99999997e-07.
double decimal(float v) { return std::stod(fmt::format("{}", v)); }

}  // namespace

std::string hf_llama_refusal(const Config& cfg) {
    const AttentionConfig& a = cfg.attention;
    if (a.headnorm_on()) return "attention.variant has headnorm: LlamaAttention has no RMSNorm on each head's output";
    if (a.gated_on()) return "attention.variant has gated: LlamaAttention has no sigmoid gate on its output";
    if (a.score() == "sink_logit")
        return "attention.variant has sink_logit: HF's softmax has no learnable sink logit in its denominator";
    if (a.score() == "off_by_one") return "attention.variant has off_by_one: HF's softmax has no +1 in its denominator";
    if (a.score() == "sigmoid")
        return "attention.variant has sigmoid: LlamaAttention normalizes its scores with a softmax";
    if (a.qk_norm) return "attention.qk_norm is on: LlamaAttention has no RMSNorm on q and k";
    if (!cfg.intervention.isolate.empty()) return "intervention.isolate is set: HF's causal mask has no isolated rows";
    if (cfg.intervention.amplify.position >= 0)
        return "intervention.amplify is on: HF's Llama has no amplified position";
    return "";
}

void export_hf_llama(const std::string& checkpoint, const std::string& out_dir, bool overwrite,
                     const std::function<void()>& before_publish) {
    Config cfg;
    std::optional<SafetensorsFile> mapped;  // mapped now: it stays readable when a rotation deletes the checkpoint
    reading_checkpoint(checkpoint, [&] {
        verify_checkpoint(checkpoint, CheckpointUse::read);
        cfg = checkpoint_config(checkpoint, ConfigUse::eval);
        mapped.emplace((fs::path(checkpoint) / "model.safetensors").string());
    });
    const SafetensorsFile& ckpt = *mapped;
    FaultInjection::from_env(0).before_step(1);  // where the tests stop an export, before its folder is made
    const std::string why = hf_llama_refusal(cfg);
    SL_REQUIRE(why.empty(), "cannot export {} as a Hugging Face Llama: {}; only standard attention without QK-norm "
               "or interventions maps onto LlamaForCausalLM",
               checkpoint, why);
    // Two exports into one folder (mpirun starting several) would write the same temporary files. The folder is
    // looked at only under the lock: another export's half-renamed files read as someone else's.
    const FolderLock lock(out_dir, "export folder", "export", "give another --out");
    if (!lock.note().empty()) fmt::print(stderr, "sinklab: note: {}\n", lock.note());
    check_export_folder(out_dir, overwrite);
    const ModelConfig& m = cfg.model;
    const int H = m.n_head, Hkv = m.kv_heads(), hd = m.head_dim();
    const int64_t C = m.d_model, F = m.d_ff;
    const ParamTable table(cfg);
    auto get = [&](const std::string& name) -> const StoredTensor& {
        const ParamInfo& p = table.get(name);
        return ckpt.get(name, "F32", p.shape);
    };

    std::vector<HfTensor> out;
    auto add = [&](std::string name, std::vector<int64_t> shape, std::function<std::vector<float>()> data) {
        out.push_back({{std::move(name), "F32", std::move(shape)}, std::move(data)});
    };
    add("model.embed_tokens.weight", {m.vocab_size, C}, [&] { return whole(get("wte")); });
    for (int l = 0; l < m.n_layer; l++) {
        const std::string hf = fmt::format("model.layers.{}.", l);
        const StoredTensor& qkv = get(layer_param(l, "wqkv"));
        const StoredTensor& w13 = get(layer_param(l, "w13"));
        add(hf + "input_layernorm.weight", {C}, [&, l] { return whole(get(layer_param(l, "attn_norm"))); });
        add(hf + "self_attn.q_proj.weight", {int64_t(H) * hd, C}, [&] { return rope_rows(qkv, 0, H, hd); });
        add(hf + "self_attn.k_proj.weight", {int64_t(Hkv) * hd, C},
            [&] { return rope_rows(qkv, int64_t(H) * hd, Hkv, hd); });
        add(hf + "self_attn.v_proj.weight", {int64_t(Hkv) * hd, C},
            [&] { return rows(qkv, int64_t(H + Hkv) * hd, int64_t(Hkv) * hd); });
        add(hf + "self_attn.o_proj.weight", {C, int64_t(H) * hd}, [&, l] { return whole(get(layer_param(l, "wo"))); });
        add(hf + "post_attention_layernorm.weight", {C}, [&, l] { return whole(get(layer_param(l, "ffn_norm"))); });
        add(hf + "mlp.gate_proj.weight", {F, C}, [&] { return rows(w13, 0, F); });
        add(hf + "mlp.up_proj.weight", {F, C}, [&] { return rows(w13, F, F); });
        add(hf + "mlp.down_proj.weight", {C, F}, [&, l] { return whole(get(layer_param(l, "w2"))); });
    }
    add("model.norm.weight", {C}, [&] { return whole(get("norm_f")); });

    std::error_code ec;
    const bool made = !fs::exists(out_dir, ec);
    fs::create_directories(out_dir, ec);
    SL_REQUIRE(!ec, "cannot create the export folder {}: {}", out_dir, ec.message());
    const fs::path dir(out_dir);
    std::vector<TensorSpec> specs;
    for (const HfTensor& t : out) specs.push_back(t.spec);
    const int eot = cfg.data.tokenizer == "gpt2" ? 50256 : 256;  // the tokenizers' end-of-text id
    const nlohmann::ordered_json config = {
        {"architectures", {"LlamaForCausalLM"}},
        {"model_type", "llama"},
        {"vocab_size", m.vocab_size},
        {"hidden_size", m.d_model},
        {"intermediate_size", m.d_ff},
        {"num_hidden_layers", m.n_layer},
        {"num_attention_heads", H},
        {"num_key_value_heads", Hkv},
        {"head_dim", hd},
        {"hidden_act", "silu"},
        {"max_position_embeddings", m.seq_len},
        {"rms_norm_eps", decimal(m.norm_eps)},
        {"rope_theta", decimal(m.rope_theta)},
        {"rope_scaling", nullptr},
        {"attention_bias", false},
        {"attention_dropout", 0.0},
        {"mlp_bias", false},
        {"tie_word_embeddings", true},
        {"initializer_range", decimal(m.init_std)},
        {"bos_token_id", eot},
        {"eos_token_id", eot},
        {"torch_dtype", "float32"},
        {"use_cache", true}};
    // A failed write (a full disk) or a refused publication takes its temporary files and the folder it made with
    // it: a full-size file would stay otherwise.
    try {
        {
            SafetensorsWriter w((dir / "model.safetensors.tmp").string(), specs,
                                {{"format", "pt"}, {kExportMark, checkpoint}});
            for (const HfTensor& t : out) w.write_next(t.data().data());
            w.finish();
        }
        write_file_durably((dir / "config.json.tmp").string(), config.dump(2) + "\n");
        if (before_publish) before_publish();
    } catch (...) {
        std::error_code ignored;
        fs::remove(dir / "model.safetensors.tmp", ignored);
        fs::remove(dir / "config.json.tmp", ignored);
        if (made) fs::remove(dir, ignored);  // when empty
        throw;
    }
    fs::rename(dir / "model.safetensors.tmp", dir / "model.safetensors");
    fs::rename(dir / "config.json.tmp", dir / "config.json");
    sync_dir(out_dir);
}

}  // namespace sinklab
