// Export of a checkpoint as a Hugging Face Llama folder (config.json + model.safetensors, fp32), loadable with
// transformers' LlamaForCausalLM.from_pretrained(DIR). Our layout differs from HF's in three ways, undone here:
//   - wqkv is one matrix [q heads | k heads | v heads]: split into q_proj, k_proj, v_proj;
//   - RoPE rotates interleaved channel pairs (2i, 2i+1), HF's rotate_half rotates (i, i + hd/2) by the same
//     angle: the rows of each q and k head are reordered so that HF's pair i holds our pair i (q.k is unchanged
//     because q and k move alike);
//   - w13 is [w1 (gate) | w3 (up)]: split into gate_proj and up_proj.
// The embedding is tied (tie_word_embeddings: true; lm_head.weight is not written). Variants that HF's Llama
// cannot compute are refused with the reason.
#pragma once
#include <functional>
#include <string>

#include "config/config.h"

namespace sinklab {

// Why a run with this config cannot be a HF Llama, or "" when it can.
std::string hf_llama_refusal(const Config& cfg);

// Writes the HF folder of checkpoint folder `checkpoint` into out_dir (created). Refuses a run or checkpoint
// folder, and a config.json or model.safetensors that an earlier export did not write unless `overwrite`.
// `before_publish` runs with the files written aside, before they take their names; what it throws removes them.
void export_hf_llama(const std::string& checkpoint, const std::string& out_dir, bool overwrite = false,
                     const std::function<void()>& before_publish = {});

// Source row of HF row r inside one head of head_dim hd: HF pairs (i, i + hd/2), ours (2i, 2i + 1).
inline int hf_rope_source_row(int r, int hd) { return r < hd / 2 ? 2 * r : 2 * (r - hd / 2) + 1; }

}  // namespace sinklab
